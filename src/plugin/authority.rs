//! The authoritative answerer: what a name's precompiled records ([`WireNode`]) make of a
//! query, on the full path and the fast path alike. Every plugin that answers from records of
//! its own uses it (`kubernetes`, `hosts`) and keeps only what is its own: where the records
//! come from, names it writes per query (kubernetes's endpoint names, reverse index, pod
//! names), and when it falls through (CoreDNS's plugins differ there).
//!
//! It decides: the set at a name, with the set's additional records; ANY (every set, for a
//! plugin that answers ANY so); a CNAME, followed inside the plugin's zones and left in
//! [`Reply::follow`] for the handler outside them; NODATA and NXDOMAIN, with the zone's SOA
//! when the plugin has one.

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{LowerName, Name, RecordType};

use super::{Fast, FastReply, Reply};
use crate::table::WireNode;
use crate::wire::{self, Owner, Zones};

/// How many CNAMEs an answer follows inside the zones (CoreDNS stops at 8 too).
const MAX_CNAME_CHAIN: usize = 8;

/// What a plugin's answers are like, beyond its records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    /// RA on answers with records (CoreDNS's kubernetes plugin sets it; hosts does not).
    pub recursion_available: bool,
    /// ANY gets every set at the name; otherwise ANY is a type the name lacks (NODATA).
    pub any: bool,
}

/// What a CNAME's target holds, for following it: a node, or records of the asked type a
/// plugin writes per query (kubernetes's endpoint names), as bodies.
#[derive(Debug)]
pub enum At<'a> {
    Node(&'a WireNode),
    Bodies(Vec<u8>, u16),
}

/// The answer at a name that has `node`: its set of `qtype` and the set's additional records,
/// every set for ANY (as `style` says), or its CNAME followed through `lookup` inside `zones`.
/// `None`: the name has nothing of that type (NODATA: see [`negative`]).
pub fn answer<'a>(
    node: &WireNode,
    qtype: RecordType,
    style: Style,
    zones: &Zones,
    lookup: &dyn Fn(&LowerName) -> Option<At<'a>>,
) -> Option<Reply> {
    let mut reply = Reply::authoritative(ResponseCode::NoError);
    if qtype == RecordType::ANY && style.any {
        for (_, set) in node.sets() {
            reply
                .answers
                .push_bodies(Owner::Question, set.bodies, set.count);
        }
    } else if let Some(set) = node.get(qtype) {
        reply
            .answers
            .push_bodies(Owner::Question, set.bodies, set.count);
        reply
            .additional
            .push_full(set.additional, set.additional_count);
    } else if let (Some(target), Some(cname)) = (node.cname(), node.get(RecordType::CNAME))
        && matches!(qtype, RecordType::A | RecordType::AAAA | RecordType::TXT)
    {
        reply.answers.push_bodies(Owner::Question, cname.bodies, 1);
        chase(zones, lookup, &target, qtype, &mut reply);
    }
    if reply.answers.is_empty() {
        return None;
    }
    reply.recursion_available = style.recursion_available;
    Some(reply)
}

/// Follows a CNAME while its target is in `zones`, adding what each target holds; a target
/// outside them is left in [`Reply::follow`] for the handler to ask.
fn chase<'a>(
    zones: &Zones,
    lookup: &dyn Fn(&LowerName) -> Option<At<'a>>,
    first: &Name,
    qtype: RecordType,
    reply: &mut Reply,
) {
    let mut target = first.clone();
    let mut seen: Vec<LowerName> = Vec::new();
    for _ in 0..MAX_CNAME_CHAIN {
        let lower = LowerName::new(&target);
        if !zones.holds(&lower) {
            reply.follow = Some(target);
            return;
        }
        if seen.contains(&lower) {
            return;
        }
        let node = match lookup(&lower) {
            None => return,
            Some(At::Bodies(bodies, count)) => {
                reply
                    .answers
                    .push_bodies(Owner::Name(&target), &bodies, count);
                return;
            }
            Some(At::Node(node)) => node,
        };
        if let Some(set) = node.get(qtype) {
            reply
                .answers
                .push_bodies(Owner::Name(&target), set.bodies, set.count);
            return;
        }
        let (Some(next), Some(cname)) = (node.cname(), node.get(RecordType::CNAME)) else {
            return;
        };
        reply
            .answers
            .push_bodies(Owner::Name(&target), cname.bodies, 1);
        seen.push(lower);
        target = next;
    }
}

/// NXDOMAIN or NODATA, with `soa` (a whole record, owned by the zone's apex) in the authority
/// section when the zone has one.
pub fn negative(soa: Option<&[u8]>, rcode: ResponseCode) -> Reply {
    let mut reply = Reply::authoritative(rcode);
    if let Some(soa) = soa {
        reply.authority.push_full(soa, 1);
    }
    reply
}

/// [`answer`] on the fast path, written after the question in `out`: the set of `qtype`
/// and its additional records, or NODATA with the SOA `soa` finds (asked only then). A CNAME
/// to follow, or ANY answered with every set, goes the full way.
#[inline(always)]
pub fn answer_fast<'a>(
    node: &WireNode,
    qtype: u16,
    style: Style,
    soa: impl FnOnce() -> Option<&'a [u8]>,
    out: &mut Vec<u8>,
) -> Fast {
    let rtype = RecordType::from(qtype);
    if rtype == RecordType::ANY && style.any {
        return Fast::Slow;
    }
    if let Some(set) = node.get(rtype) {
        if !wire::push_question_bodies(out, set.bodies, set.count) {
            return Fast::Slow;
        }
        out.extend_from_slice(set.additional);
        return Fast::Answered(FastReply {
            rcode: ResponseCode::NoError,
            authoritative: true,
            recursion_available: style.recursion_available,
            counts: [set.count, 0, set.additional_count],
        });
    }
    if node.get(RecordType::CNAME).is_some() {
        return Fast::Slow;
    }
    negative_fast(soa(), ResponseCode::NoError, out)
}

/// [`negative`] written after the question in `out`.
#[inline(always)]
pub fn negative_fast(soa: Option<&[u8]>, rcode: ResponseCode, out: &mut Vec<u8>) -> Fast {
    let mut authority = 0;
    if let Some(soa) = soa {
        out.extend_from_slice(soa);
        authority = 1;
    }
    Fast::Answered(FastReply {
        rcode,
        authoritative: true,
        recursion_available: false,
        counts: [0, authority, 0],
    })
}
