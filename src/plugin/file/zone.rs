//! One zone of the `file` plugin: its records precompiled per name ([`WireNode`], every set
//! with its additional records), and how a query is answered from them, as CoreDNS's file
//! plugin answers: the set at the name with the apex NS in the authority section; a referral
//! at a zone cut (not authoritative, with glue); a CNAME followed inside the zone; DNAME
//! substitution (RFC 6672); wildcards from the closest encloser (RFC 4592); NODATA and
//! NXDOMAIN with the SOA; with the DO bit, the RRSIGs and NSECs a signed zone holds.
//!
//! Names are keys in lowercase wire format; answers are owned by the names as the zone holds
//! them (lowercase), as CoreDNS writes them.

use std::collections::HashMap;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::super::{Fast, FastReply, Reply};
use crate::table::{NameKey, Node, WireNode};
use crate::wire::{self, Section};

/// The most additional records kept with one set (more than a 64 KiB response holds).
const MAX_ADDITIONAL: usize = 65_535 / 16;
/// How many CNAMEs an answer follows inside the zone (CoreDNS stops at 8).
const MAX_CHAIN: usize = 8;
const DNAME: RecordType = RecordType::Unknown(39);

/// A name of the zone as served.
#[derive(Debug, Default)]
struct Entry {
    node: WireNode,
    /// NS records below the apex: a zone cut.
    cut: bool,
    dname: bool,
    /// In a signed zone: each set's additional records with the RRSIGs that cover them, as
    /// whole records, for answers under DO.
    signed_additional: Vec<(RecordType, Vec<u8>, u16)>,
}

impl Entry {
    /// The additional records that go with the set of `rtype` (signed under `dnssec`).
    fn additional(&self, rtype: RecordType, dnssec: bool, section: &mut Section) {
        let signed = self.signed_additional.iter().find(|(t, _, _)| *t == rtype);
        if let (true, Some((_, bytes, count))) = (dnssec, signed) {
            section.push_full(bytes, *count);
        } else if let Some(set) = self.node.get(rtype) {
            section.push_full(set.additional, set.additional_count);
        }
    }
}

/// A zone read from its file.
#[derive(Debug)]
pub struct Zone {
    origin: Vec<u8>,
    pub serial: u32,
    /// The SOA's timers, in seconds (a secondary's refresh, retry and expire).
    pub refresh: u32,
    pub retry: u32,
    pub expire: u32,
    /// Names (lowercase wire format) to what they hold; empty non-terminals hold nothing.
    names: HashMap<NameKey, Entry>,
    /// The names with an NSEC in DNSSEC's canonical order, when the zone has NSEC records.
    canonical: Vec<NameKey>,
}

/// What a query made of the zone: a reply, or a name it does not hold that `fallthrough` may
/// pass on (NXDOMAIN, or an empty non-terminal).
#[derive(Debug)]
pub struct Answer {
    pub reply: Reply,
    pub missing: bool,
}

impl Zone {
    /// The zone of `origin` from its records; records outside it are left out. `None` without
    /// a SOA at the origin.
    pub fn new(origin: &Name, records: Vec<Record>) -> Result<Self, String> {
        let origin_key = NameKey::new(origin);
        let mut by_name: HashMap<NameKey, Node> = HashMap::new();
        // Each record once: by owner and wire body.
        let mut seen: std::collections::HashSet<(NameKey, Vec<u8>)> = Default::default();
        let mut soa_fields = None;
        let mut outside = 0usize;
        for record in records {
            if !origin.zone_of(record.name()) {
                outside += 1;
                continue;
            }
            let key = NameKey::new(record.name());
            if let RData::SOA(soa) = record.data() {
                if key != origin_key {
                    outside += 1;
                    continue;
                }
                if soa_fields.is_some() {
                    return Err(format!("{origin} has more than one SOA record"));
                }
                soa_fields = Some((soa.serial(), soa.refresh(), soa.retry(), soa.expire()));
            }
            let body = crate::wire::body(&record);
            if body.is_empty() {
                return Err(format!("{record}: its data does not encode"));
            }
            // Data held as bytes (from a transfer too) is what its type's form gives.
            if let RData::Unknown { rdata, .. } = record.data() {
                super::text::generic_valid(record.record_type(), rdata.anything())
                    .map_err(|m| format!("{}: {m}", record.name()))?;
            }
            if !seen.insert((key.clone(), body)) {
                continue;
            }
            let mut record = record;
            record.set_name(Name::root());
            by_name.entry(key).or_default().push(record);
        }
        let (serial, refresh, retry, expire) =
            soa_fields.ok_or_else(|| format!("no SOA record for origin {origin}"))?;
        let secs = |s: i32| u32::try_from(s).unwrap_or(0);
        let (refresh, retry, expire) = (secs(refresh), secs(retry), secs(expire));
        if outside > 0 {
            tracing::warn!(zone = %origin, records = outside, "records outside the zone are left out");
        }
        // Empty non-terminals: every name between a name and the apex exists.
        let origin_len = origin_key.as_bytes().len();
        let keys: Vec<NameKey> = by_name.keys().cloned().collect();
        for key in &keys {
            let bytes = key.as_bytes();
            for at in label_starts(bytes).into_iter().skip(1) {
                if bytes.len() - at <= origin_len {
                    break;
                }
                let ent = NameKey::from_lowercase_wire(bytes[at..].to_vec());
                // An ancestor already there has its own ancestors there too.
                if by_name.contains_key(ent.as_bytes()) {
                    break;
                }
                by_name.insert(ent, Node::default());
            }
        }
        let signed = by_name.values().any(|n| n.get(RecordType::NSEC).is_some());
        let has_sigs = by_name.values().any(|n| n.get(RecordType::RRSIG).is_some());
        let mut names = HashMap::with_capacity(by_name.len());
        for (key, node) in &by_name {
            let mut node = node.clone();
            let apex = key == &origin_key;
            let mut signed_additional = Vec::new();
            for rtype in [
                RecordType::NS,
                RecordType::MX,
                RecordType::SRV,
                RecordType::SVCB,
                RecordType::HTTPS,
            ] {
                let Some(set) = node.get(rtype) else { continue };
                let owner = key.to_name().unwrap_or_else(Name::root);
                let plain = additional(rtype, &set.records, &owner, origin, &by_name, false);
                if has_sigs {
                    let with_sigs = additional(rtype, &set.records, &owner, origin, &by_name, true);
                    let bytes: Vec<u8> = with_sigs.iter().flat_map(crate::wire::full).collect();
                    signed_additional.push((rtype, bytes, with_sigs.len() as u16));
                }
                node.set_additional(rtype, plain);
            }
            let entry = Entry {
                cut: !apex && node.get(RecordType::NS).is_some(),
                dname: node.get(DNAME).is_some(),
                node: WireNode::from(&node),
                signed_additional,
            };
            names.insert(key.clone(), entry);
        }
        let mut canonical = Vec::new();
        if signed {
            // The owners of NSECs: an empty non-terminal is covered, not named, by one.
            canonical = by_name
                .iter()
                .filter(|(_, node)| node.get(RecordType::NSEC).is_some())
                .map(|(key, _)| key.clone())
                .collect();
            canonical.sort_by(|a, b| canonical_cmp(a.as_bytes(), b.as_bytes()));
        }
        Ok(Self {
            origin: origin_key.as_bytes().to_vec(),
            serial,
            refresh,
            retry,
            expire,
            names,
            canonical,
        })
    }

    fn get(&self, key: &[u8]) -> Option<&Entry> {
        self.names.get(key)
    }

    fn apex(&self) -> Option<&WireNode> {
        self.get(&self.origin).map(|e| &e.node)
    }

    /// The SOA record, whole (with its signatures when `dnssec`), for a negative answer.
    fn soa(&self, section: &mut Section, dnssec: bool) {
        if let Some(apex) = self.apex() {
            push_set(section, &self.origin, apex, RecordType::SOA, dnssec);
        }
    }

    /// The apex NS records, for the authority section of a positive answer.
    fn ns(&self, section: &mut Section, dnssec: bool) {
        if let Some(apex) = self.apex() {
            push_set(section, &self.origin, apex, RecordType::NS, dnssec);
        }
    }

    /// The name before `key` in canonical order: the owner of the NSEC that covers it.
    fn covering(&self, key: &[u8]) -> Option<&NameKey> {
        let at = self
            .canonical
            .partition_point(|n| canonical_cmp(n.as_bytes(), key) != std::cmp::Ordering::Greater);
        at.checked_sub(1).map(|i| &self.canonical[i])
    }

    /// The NSEC at `owner`, with its signatures.
    fn nsec_at(&self, owner: Option<&NameKey>, section: &mut Section) {
        if let Some(entry) = owner.and_then(|o| self.get(o.as_bytes())) {
            push_set(
                section,
                owner.map_or(&[][..], |o| o.as_bytes()),
                &entry.node,
                RecordType::NSEC,
                true,
            );
        }
    }

    /// The NSEC that covers `key`.
    fn covering_nsec(&self, key: &[u8], section: &mut Section) {
        self.nsec_at(self.covering(key), section);
    }

    /// The answer to `qtype` at `key` (lowercase wire format, in the zone).
    pub fn lookup(&self, key: &[u8], qtype: RecordType, dnssec: bool) -> Answer {
        let starts = label_starts(key);
        let origin_depth = label_starts(&self.origin).len();
        let depth = starts.len();
        let suffix = |d: usize| suffix(key, &starts, d);
        // Down from the apex: a DNAME above the name substitutes, a cut delegates.
        let mut found = origin_depth;
        for d in origin_depth..=depth {
            let Some(entry) = self.get(suffix(d)) else {
                break;
            };
            found = d;
            if d < depth && entry.dname {
                return self.dname(key, suffix(d), entry, qtype, dnssec);
            }
            if d > origin_depth && entry.cut && !(qtype == RecordType::DS && d == depth) {
                return Answer {
                    reply: self.referral(suffix(d), entry, dnssec),
                    missing: false,
                };
            }
        }
        if found == depth
            && let Some(entry) = self.get(key)
        {
            return self.at(key, key, entry, qtype, dnssec);
        }
        // The closest encloser's wildcard, if it has one (RFC 4592).
        let encloser = suffix(found);
        let mut wildcard = vec![1, b'*'];
        wildcard.extend_from_slice(encloser);
        match self.get(&wildcard) {
            Some(entry) if entry.node.sets().next().is_some() => {
                let mut answer = self.at(key, &wildcard, entry, qtype, dnssec);
                if dnssec && !answer.reply.answers.is_empty() {
                    self.covering_nsec(key, &mut answer.reply.authority);
                }
                answer
            }
            Some(entry) => {
                let mut reply = Reply::authoritative(ResponseCode::NoError);
                self.soa(&mut reply.authority, dnssec);
                if dnssec {
                    push_set(
                        &mut reply.authority,
                        &wildcard,
                        &entry.node,
                        RecordType::NSEC,
                        true,
                    );
                }
                Answer {
                    reply,
                    missing: false,
                }
            }
            None => {
                let mut reply = Reply::authoritative(ResponseCode::NXDomain);
                self.soa(&mut reply.authority, dnssec);
                if dnssec {
                    // The NSEC covering the name, and the one covering the wildcard that
                    // would have stood for it, when that is another.
                    let (name, wild) = (self.covering(key), self.covering(&wildcard));
                    self.nsec_at(name, &mut reply.authority);
                    if wild != name {
                        self.nsec_at(wild, &mut reply.authority);
                    }
                }
                Answer {
                    reply,
                    missing: true,
                }
            }
        }
    }

    /// The answer at a name the zone holds (`source` is where its records are: the name
    /// itself, or the wildcard that stands for it), owned by `key`.
    fn at(
        &self,
        key: &[u8],
        source: &[u8],
        entry: &Entry,
        qtype: RecordType,
        dnssec: bool,
    ) -> Answer {
        let node = &entry.node;
        let apex = key == self.origin.as_slice();
        let mut reply = Reply::authoritative(ResponseCode::NoError);
        if apex && qtype == RecordType::NS {
            push_set(&mut reply.answers, key, node, RecordType::NS, dnssec);
            entry.additional(RecordType::NS, dnssec, &mut reply.additional);
            return Answer {
                reply,
                missing: false,
            };
        }
        if qtype != RecordType::CNAME
            && let Some(target) = node.cname()
        {
            push_set(&mut reply.answers, key, node, RecordType::CNAME, dnssec);
            self.chase(target, qtype, dnssec, &mut reply);
            if reply.authority.is_empty() {
                self.ns(&mut reply.authority, dnssec);
            }
            return Answer {
                reply,
                missing: false,
            };
        }
        if node.get(qtype).is_some() && qtype != RecordType::ANY {
            push_set(&mut reply.answers, key, node, qtype, dnssec);
            self.ns(&mut reply.authority, dnssec);
            entry.additional(qtype, dnssec, &mut reply.additional);
            return Answer {
                reply,
                missing: false,
            };
        }
        // NODATA; an empty non-terminal is a name fallthrough may pass on, as in CoreDNS.
        let empty = node.sets().next().is_none();
        self.soa(&mut reply.authority, dnssec);
        if dnssec {
            if node.get(RecordType::NSEC).is_some() {
                push_set(&mut reply.authority, source, node, RecordType::NSEC, true);
            } else {
                self.covering_nsec(key, &mut reply.authority);
            }
        }
        Answer {
            reply,
            missing: empty && key == source,
        }
    }

    /// A referral to the zone cut at `cut`: its NS records and their glue, not authoritative.
    fn referral(&self, cut: &[u8], entry: &Entry, dnssec: bool) -> Reply {
        let mut reply = Reply::authoritative(ResponseCode::NoError);
        reply.authoritative = false;
        push_set(
            &mut reply.authority,
            cut,
            &entry.node,
            RecordType::NS,
            false,
        );
        if dnssec {
            push_set(&mut reply.authority, cut, &entry.node, RecordType::DS, true);
        }
        entry.additional(RecordType::NS, dnssec, &mut reply.additional);
        reply
    }

    /// RFC 6672: the DNAME at `owner`, a CNAME from `key` to the substituted name, and that
    /// name's records.
    fn dname(
        &self,
        key: &[u8],
        owner: &[u8],
        entry: &Entry,
        qtype: RecordType,
        dnssec: bool,
    ) -> Answer {
        let mut reply = Reply::authoritative(ResponseCode::NoError);
        push_set(&mut reply.answers, owner, &entry.node, DNAME, dnssec);
        let Some(set) = entry.node.get(DNAME) else {
            return Answer {
                reply,
                missing: false,
            };
        };
        let ttl = set.bodies.get(4..8).unwrap_or(&[0; 4]);
        let target_wire = set.bodies.get(10..).unwrap_or_default();
        let prefix = &key[..key.len() - owner.len()];
        let mut target = prefix.to_vec();
        target.extend_from_slice(&target_wire[..name_len(target_wire)]);
        if target.len() > 255 {
            reply.rcode = ResponseCode::YXDomain;
            return Answer {
                reply,
                missing: false,
            };
        }
        // A substitution that gives the name back can only loop: SERVFAIL, as CoreDNS answers.
        if target.to_ascii_lowercase() == key {
            let mut reply = Reply::authoritative(ResponseCode::ServFail);
            reply.authoritative = false;
            return Answer {
                reply,
                missing: false,
            };
        }
        let mut cname = Vec::with_capacity(10 + target.len());
        cname.extend_from_slice(&u16::from(RecordType::CNAME).to_be_bytes());
        cname.extend_from_slice(&1u16.to_be_bytes());
        cname.extend_from_slice(ttl);
        cname.extend_from_slice(&(target.len() as u16).to_be_bytes());
        cname.extend_from_slice(&target);
        reply.answers.bytes.extend_from_slice(key);
        reply.answers.bytes.extend_from_slice(&cname);
        reply.answers.count += 1;
        if qtype != RecordType::CNAME
            && let Some(name) = NameKey::from_lowercase_wire(target.to_ascii_lowercase()).to_name()
        {
            self.chase(name, qtype, dnssec, &mut reply);
        }
        if reply.authority.is_empty() {
            self.ns(&mut reply.authority, dnssec);
        }
        Answer {
            reply,
            missing: false,
        }
    }

    /// Follows a CNAME to `target` while the zone holds it by name: its set of `qtype`, or
    /// its own CNAME; a target under a zone cut gets the referral; one outside the zone, or
    /// not held by name here (a wildcard's, another zone's), is left in [`Reply::follow`] for
    /// the handler to ask of the chain, as CoreDNS looks it up through the server.
    fn chase(&self, first: Name, qtype: RecordType, dnssec: bool, reply: &mut Reply) {
        let mut target = first;
        for _ in 0..MAX_CHAIN {
            let key = NameKey::new(&target);
            let key = key.as_bytes();
            if !wire::in_zone(key, &self.origin) {
                self.leave(reply, target, dnssec);
                return;
            }
            let starts = label_starts(key);
            let origin_depth = label_starts(&self.origin).len();
            for d in origin_depth + 1..=starts.len() {
                let at = suffix(key, &starts, d);
                match self.get(at) {
                    Some(entry) if entry.cut && !(qtype == RecordType::DS && d == starts.len()) => {
                        let referral = self.referral(at, entry, dnssec);
                        reply.authority = referral.authority;
                        reply.additional = referral.additional;
                        return;
                    }
                    Some(_) => {}
                    None => break,
                }
            }
            let apex = key == self.origin.as_slice();
            let entry = match self.get(key) {
                Some(entry)
                    if entry.node.sets().next().is_some()
                        && !(apex && matches!(qtype, RecordType::SOA | RecordType::NS)) =>
                {
                    entry
                }
                _ => {
                    self.leave(reply, target, dnssec);
                    return;
                }
            };
            if entry.node.get(qtype).is_some() {
                push_set(&mut reply.answers, key, &entry.node, qtype, dnssec);
                entry.additional(qtype, dnssec, &mut reply.additional);
                return;
            }
            let Some(next) = entry.node.cname() else {
                return;
            };
            push_set(
                &mut reply.answers,
                key,
                &entry.node,
                RecordType::CNAME,
                dnssec,
            );
            target = next;
        }
    }

    /// Leaves `target` for the handler to ask, with the SOA for a negative answer: the
    /// target's rcode is the answer's, as CoreDNS's lookup through the server makes it.
    fn leave(&self, reply: &mut Reply, target: Name, dnssec: bool) {
        let mut soa = Section::default();
        self.soa(&mut soa, dnssec);
        reply.follow = Some(target);
        reply.follow_negative = Some(Box::new(soa));
    }

    /// [`Self::lookup`] on the fast path for the common answers (a set at a name, NODATA,
    /// NXDOMAIN without a wildcard), written after the question; anything else goes the full
    /// way. `missing` says whether a name it lacks may fall through (then [`Fast::Next`]).
    pub fn lookup_fast(
        &self,
        key: &[u8],
        qtype: u16,
        falls_through: impl FnOnce() -> bool,
        out: &mut Vec<u8>,
    ) -> Fast {
        let rtype = RecordType::from(qtype);
        let starts = label_starts(key);
        let origin_depth = label_starts(&self.origin).len();
        let depth = starts.len();
        let mut found = origin_depth;
        for d in origin_depth..=depth {
            let Some(entry) = self.get(suffix(key, &starts, d)) else {
                break;
            };
            found = d;
            if entry.dname || (d > origin_depth && entry.cut) {
                return Fast::Slow;
            }
        }
        let apex = self.apex();
        let soa = apex.and_then(|a| a.get(RecordType::SOA));
        let Some(soa) = soa else { return Fast::Slow };
        if found < depth {
            let mut wildcard = vec![1, b'*'];
            wildcard.extend_from_slice(suffix(key, &starts, found));
            if self.get(&wildcard).is_some() {
                return Fast::Slow;
            }
            if falls_through() {
                return Fast::Next;
            }
            return negative(
                out,
                &self.origin,
                soa.bodies,
                soa.count,
                ResponseCode::NXDomain,
            );
        }
        let Some(entry) = self.get(key) else {
            return Fast::Slow;
        };
        let node = &entry.node;
        let is_apex = key == self.origin.as_slice();
        if (is_apex && rtype == RecordType::NS)
            || rtype == RecordType::ANY
            || (rtype != RecordType::CNAME && node.get(RecordType::CNAME).is_some())
        {
            return Fast::Slow;
        }
        if let Some(set) = node.get(rtype) {
            let ns = apex.and_then(|a| a.get(RecordType::NS));
            let (ns_bodies, ns_count) = ns.map_or((&[][..], 0), |s| (s.bodies, s.count));
            if !wire::push_owned_bodies(out, key, set.bodies, set.count)
                || !wire::push_owned_bodies(out, &self.origin, ns_bodies, ns_count)
            {
                return Fast::Slow;
            }
            out.extend_from_slice(set.additional);
            return Fast::Answered(FastReply {
                rcode: ResponseCode::NoError,
                authoritative: true,
                recursion_available: false,
                counts: [set.count, ns_count, set.additional_count],
            });
        }
        if node.sets().next().is_none() && falls_through() {
            return Fast::Next;
        }
        negative(
            out,
            &self.origin,
            soa.bodies,
            soa.count,
            ResponseCode::NoError,
        )
    }
}

/// NXDOMAIN or NODATA with the SOA, on the fast path.
fn negative(out: &mut Vec<u8>, origin: &[u8], soa: &[u8], count: u16, rcode: ResponseCode) -> Fast {
    if !wire::push_owned_bodies(out, origin, soa, count) {
        return Fast::Slow;
    }
    Fast::Answered(FastReply {
        rcode,
        authoritative: true,
        recursion_available: false,
        counts: [0, count, 0],
    })
}

/// The set of `rtype` at `node`, owned by `owner` (wire format), with the RRSIGs covering it
/// when `dnssec`.
fn push_set(section: &mut Section, owner: &[u8], node: &WireNode, rtype: RecordType, dnssec: bool) {
    if let Some(set) = node.get(rtype) {
        section.count += wire::push_owned(&mut section.bytes, owner, set.bodies, set.count);
    }
    if dnssec
        && rtype != RecordType::RRSIG
        && let Some(sigs) = node.get(RecordType::RRSIG)
    {
        let covered = u16::from(rtype).to_be_bytes();
        let mut rest = sigs.bodies;
        while rest.len() >= 12 {
            let len = 10 + usize::from(u16::from_be_bytes([rest[8], rest[9]]));
            let Some((one, tail)) = rest.split_at_checked(len) else {
                break;
            };
            if one.get(10..12) == Some(&covered[..]) {
                section.bytes.extend_from_slice(owner);
                section.bytes.extend_from_slice(one);
                section.count += 1;
            }
            rest = tail;
        }
    }
}

/// The A and AAAA records of the names a set points at, as CoreDNS adds them: an NS set's
/// targets below its owner (glue), an MX, SRV, SVCB or HTTPS set's targets in the zone.
fn additional(
    rtype: RecordType,
    records: &[Record],
    owner: &Name,
    origin: &Name,
    names: &HashMap<NameKey, Node>,
    with_sigs: bool,
) -> Vec<Record> {
    let mut out = Vec::new();
    let mut seen: Vec<NameKey> = Vec::new();
    for r in records {
        let target = match r.data() {
            RData::NS(ns) if owner.zone_of(&ns.0) => &ns.0,
            RData::MX(mx) if rtype == RecordType::MX => mx.exchange(),
            RData::SRV(srv) => srv.target(),
            RData::SVCB(svcb) => svcb.target_name(),
            RData::HTTPS(https) => https.0.target_name(),
            _ => continue,
        };
        if rtype != RecordType::NS && !origin.zone_of(target) {
            continue;
        }
        let key = NameKey::new(target);
        if seen.contains(&key) {
            continue;
        }
        let Some(node) = names.get(&key) else {
            continue;
        };
        // No response holds more than 64 KiB: more glue than that is never sent.
        if out.len() >= MAX_ADDITIONAL {
            break;
        }
        let sigs = node
            .get(RecordType::RRSIG)
            .map(|s| s.records.as_slice())
            .unwrap_or_default();
        for t in [RecordType::A, RecordType::AAAA] {
            let records = node
                .get(t)
                .map(|s| s.records.as_slice())
                .unwrap_or_default();
            let covering = sigs
                .iter()
                .filter(|r| with_sigs && !records.is_empty() && covers(r, t));
            for rec in records.iter().chain(covering) {
                let mut rec = rec.clone();
                rec.set_name(key.to_name().unwrap_or_else(Name::root));
                out.push(rec);
            }
        }
        seen.push(key);
    }
    out
}

/// Whether `rrsig` (an RRSIG read as bytes) covers `rtype`.
fn covers(rrsig: &Record, rtype: RecordType) -> bool {
    match rrsig.data() {
        RData::Unknown { rdata, .. } => {
            rdata.anything().get(..2) == Some(&u16::from(rtype).to_be_bytes()[..])
        }
        _ => false,
    }
}

/// The last `d` labels of `key` (whose labels start at `starts`): the root's zero alone for 0.
fn suffix<'k>(key: &'k [u8], starts: &[usize], d: usize) -> &'k [u8] {
    match starts.len().checked_sub(d).and_then(|i| starts.get(i)) {
        Some(&at) => &key[at..],
        None => &key[key.len().saturating_sub(1)..],
    }
}

/// Where each label of a wire-format name starts, first to last (the root's zero excluded).
pub fn label_starts(key: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(&len) = key.get(at) {
        if len == 0 {
            break;
        }
        out.push(at);
        at += 1 + usize::from(len);
    }
    out
}

/// How long the uncompressed name at the start of `bytes` is, its zero included.
fn name_len(bytes: &[u8]) -> usize {
    let mut at = 0;
    while let Some(&len) = bytes.get(at) {
        at += 1 + usize::from(len);
        if len == 0 {
            break;
        }
    }
    at.min(bytes.len())
}

/// RFC 4034 §6.1: names compared label by label from the root, each label as lowercase bytes.
fn canonical_cmp(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    let labels = |k: &[u8]| -> Vec<std::ops::Range<usize>> {
        label_starts(k)
            .into_iter()
            .rev()
            .map(|s| s + 1..s + 1 + usize::from(k[s]))
            .collect()
    };
    let (la, lb) = (labels(a), labels(b));
    for (x, y) in la.iter().zip(&lb) {
        match a[x.clone()].cmp(&b[y.clone()]) {
            std::cmp::Ordering::Equal => {}
            other => return other,
        }
    }
    la.len().cmp(&lb.len())
}
