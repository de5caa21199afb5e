//! Plugins: each answers the names it is authoritative for, or passes the query on.
//!
//! A plugin reads one snapshot per query and returns a [`Reply`] or [`Outcome::Next`]
//! (CoreDNS's fallthrough). Plugins do no I/O on the query path.

pub mod autopath;
pub mod cache;
pub mod forward;
pub mod forward_loop;
pub mod hosts;
pub mod kubernetes;
pub mod rrl;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{LowerName, Name, RecordType};

use crate::wire::Section;

pub use forward::Forward;
pub use hosts::Hosts;
pub use kubernetes::Kubernetes;

/// The question a plugin answers.
#[derive(Debug, Clone)]
pub struct Request {
    /// The name as the client wrote it; answers are owned by it, letter case included.
    pub name: Name,
    pub lower: LowerName,
    pub qtype: RecordType,
    /// The query's EDNS DO bit (part of what a cached answer is kept under).
    pub dnssec_ok: bool,
    /// Who asked, where known.
    pub src: Option<std::net::SocketAddr>,
}

impl Request {
    pub fn new(name: Name, qtype: RecordType) -> Self {
        Self {
            lower: LowerName::new(&name),
            name,
            qtype,
            dnssec_ok: false,
            src: None,
        }
    }

    /// The same question for another name (a search-path candidate, a CNAME's target), from
    /// the same client with the same DO bit.
    pub fn for_name(&self, name: Name) -> Self {
        Self {
            dnssec_ok: self.dnssec_ok,
            src: self.src,
            ..Self::new(name, self.qtype)
        }
    }
}

/// What a plugin made of a query.
#[derive(Debug)]
pub enum Outcome {
    Reply(Reply),
    /// Not this plugin's to answer: the next plugin gets it.
    Next,
    /// Sent upstream by the `forward` plugin: the answer comes later (see
    /// [`crate::answer::Handled::Forward`]).
    Forward(forward::InFlight),
}

/// An answer: flags, and its sections already in wire format.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub rcode: ResponseCode,
    pub authoritative: bool,
    pub recursion_available: bool,
    pub answers: Section,
    pub authority: Section,
    pub additional: Section,
    /// A CNAME target outside the plugin's zones (an ExternalName service's), which the
    /// handler asks of the block's chain and whose answers it adds after the CNAMEs, as
    /// CoreDNS's kubernetes plugin does through its upstream lookup.
    pub follow: Option<hickory_proto::rr::Name>,
}

impl Reply {
    /// An authoritative answer with no records yet.
    pub fn authoritative(rcode: ResponseCode) -> Self {
        Self {
            rcode,
            authoritative: true,
            recursion_available: false,
            answers: Section::default(),
            authority: Section::default(),
            additional: Section::default(),
            follow: None,
        }
    }
}

/// What a plugin made of a query on the fast path (see [`crate::wire::parse_light`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fast {
    /// Answered: the records are appended to the response after its question.
    Answered(FastReply),
    /// Not this plugin's name: the next plugin gets it.
    Next,
    /// This plugin answers it, but not on the fast path: the whole query goes the full way.
    Slow,
}

/// A fast answer's flags and record counts (its records are already written).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FastReply {
    pub rcode: ResponseCode,
    pub authoritative: bool,
    pub recursion_available: bool,
    /// Answer, authority and additional records written.
    pub counts: [u16; 3],
}

/// One configured plugin, in chain order.
#[derive(Debug)]
pub enum Plugin {
    Hosts(Hosts),
    Kubernetes(Kubernetes),
    Loop(forward_loop::Loop),
    Forward(std::sync::Arc<Forward>),
    /// `rrl`: not a link of the chain; [`crate::answer::Handler::new`] takes it out and
    /// applies it to the block's UDP queries and responses.
    Rrl(Box<rrl::Rrl>),
}

impl Plugin {
    pub fn serve(&self, req: &Request) -> Outcome {
        match self {
            Self::Hosts(h) => h.serve(req),
            Self::Kubernetes(k) => k.serve(req),
            Self::Loop(l) => l.serve(req),
            Self::Forward(f) => f.serve(req),
            Self::Rrl(_) => Outcome::Next,
        }
    }

    /// [`Self::serve`] for the common queries, writing the records after the question in
    /// `out`; [`Fast::Slow`] sends the query the full way.
    pub fn serve_fast(&self, query: &crate::wire::LightQuery, out: &mut Vec<u8>) -> Fast {
        match self {
            Self::Kubernetes(k) => k.serve_fast(query, out),
            Self::Loop(l) if l.is_probe(query.key()) => Fast::Slow,
            Self::Loop(_) => Fast::Next,
            Self::Hosts(_) | Self::Forward(_) => Fast::Slow,
            Self::Rrl(_) => Fast::Next,
        }
    }
}

/// The longest of `zones` that holds `name`.
pub fn matching_zone<'a>(zones: &'a [LowerName], name: &LowerName) -> Option<&'a LowerName> {
    zones
        .iter()
        .filter(|z| z.zone_of(name))
        .max_by_key(|z| z.num_labels())
}
