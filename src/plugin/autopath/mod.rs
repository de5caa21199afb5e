//! The `autopath` plugin: a pod's first search-path query is answered with the final answer,
//! as CoreDNS's `autopath` does, so an external name costs one query instead of up to eight
//! under `ndots:5`.
//!
//! A query qualifies when its name lies under the first domain of the asker's search path
//! (`NS.svc.ZONE` for a pod in NS, known under `pods verified`); the name before that domain
//! is the one the pod asked for, and each search domain is tried with it, then the name alone.
//! The first answer that is not NXDOMAIN (nor SERVFAIL or REFUSED) is returned under the
//! query's name with a CNAME to the name that answered. The walk itself is in
//! [`crate::answer`], since later names may need the upstream.

pub mod setup;

pub use setup::{AutopathConfig, AutopathSearch};

use std::net::IpAddr;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::CNAME;
use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType};

use super::{Kubernetes, Owners, Reply};
use crate::wire::{self, Owner, Section};

#[derive(Debug)]
pub struct Autopath {
    zones: Vec<LowerName>,
    search: AutopathSearch,
}

impl Autopath {
    pub fn new(config: &AutopathConfig) -> Self {
        Self {
            zones: config.zones.clone(),
            search: config.search.clone(),
        }
    }

    /// The names to try for `name`, asked by `src`, in order; `None` when autopath does not
    /// apply (outside its zones, an asker that is not a known pod, a name not under the
    /// first search domain).
    pub fn candidates(
        &self,
        name: &Name,
        src: Option<IpAddr>,
        kubernetes: Option<&Kubernetes>,
    ) -> Option<Vec<Name>> {
        let lower = LowerName::new(name);
        if !self.zones.iter().any(|z| z.zone_of(&lower)) {
            return None;
        }
        let search: Vec<String> = match &self.search {
            AutopathSearch::Kubernetes(host) => {
                kubernetes?.search_path(src?.to_canonical(), &lower, host)?
            }
            AutopathSearch::Static(domains) => {
                let mut all = domains.clone();
                all.push(String::new());
                all
            }
        };
        let first = fqdn(search.first()?)?;
        if !first.is_root() && !first.zone_of(name) {
            return None;
        }
        let keep = name.num_labels().checked_sub(first.num_labels())?;
        if keep == 0 {
            return None;
        }
        let base = Name::from_labels(name.iter().take(usize::from(keep))).ok()?;
        Some(
            search
                .iter()
                .filter_map(|s| {
                    let domain = if s.is_empty() { Name::root() } else { fqdn(s)? };
                    base.clone().append_domain(&domain).ok()
                })
                .collect(),
        )
    }
}

fn fqdn(s: &str) -> Option<Name> {
    let mut n = Name::from_ascii(s).ok()?;
    n.set_fqdn(true);
    Some(n)
}

/// Whether a name that answered this way ends the walk.
pub fn found(rcode: ResponseCode) -> bool {
    !matches!(
        rcode,
        ResponseCode::NXDomain | ResponseCode::ServFail | ResponseCode::Refused
    )
}

/// `reply` (made for `candidate`, its records possibly owned by the question) as the answer
/// to `original`: records under their own names, and a CNAME from `original` to `candidate`
/// first when the candidate is another name.
pub fn renamed(reply: &Reply, original: &Name, candidate: &Name, qtype: RecordType) -> Reply {
    if LowerName::new(original) == LowerName::new(candidate) {
        return reply.clone();
    }
    match reply.reowned_whole(candidate, qtype) {
        Some(out) => Reply {
            follow: reply.follow.clone(),
            follow_negative: reply.follow_negative.clone(),
            ..with_cname(out, original, candidate)
        },
        None => reply.clone(),
    }
}

/// An upstream's answer for `candidate`, as the answer to `original`.
pub fn renamed_upstream(response: &[u8], original: &Name, candidate: &Name) -> Option<Reply> {
    let reply = Reply::reowned(response, Owners::Whole)?;
    Some(with_cname(reply, original, candidate))
}

/// CoreDNS's `cnamer`: when the first answer is not owned by `original`, a CNAME from
/// `original` to `candidate` (with that answer's TTL) goes first.
fn with_cname(mut reply: Reply, original: &Name, candidate: &Name) -> Reply {
    if reply.answers.is_empty() || LowerName::new(original) == LowerName::new(candidate) {
        return reply;
    }
    let ttl = wire::first_ttl(&reply.answers.bytes).unwrap_or(0);
    let cname = Record::from_rdata(
        original.clone(),
        ttl,
        RData::CNAME(CNAME(candidate.clone())),
    );
    let mut answers = Section::default();
    answers.push_record(Owner::Question, &cname);
    answers.push_full(&reply.answers.bytes, reply.answers.count);
    reply.answers = answers;
    reply
}
