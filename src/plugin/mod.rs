//! Plugins: each answers the names it is authoritative for, or passes the query on.
//!
//! A plugin reads one snapshot per query and returns a [`Reply`] or [`Outcome::Next`]
//! (CoreDNS's fallthrough). Plugins do no I/O on the query path.

pub mod acl;
pub mod any;
pub mod authority;
pub mod autopath;
pub mod bind;
pub mod bufsize;
pub mod cache;
pub mod cancel;
pub mod chaos;
pub mod debug;
pub mod dns64;
pub mod dnssec;
pub mod dnstap;
pub mod erratic;
pub mod etcd;
pub mod file;
pub mod forward;
pub mod forward_loop;
pub mod geoip;
pub mod header;
pub mod health;
pub mod hosts;
pub mod k8s_external;
pub mod kubernetes;
pub mod loadbalance;
pub mod local;
pub mod log;
pub mod metadata;
pub mod minimal;
pub mod multisocket;
pub mod nsid;
pub mod on;
pub mod prometheus;
pub mod proxyproto;
pub mod ready;
pub mod reload;
pub mod rewrite;
pub mod root;
pub mod route53;
pub mod rrl;
pub mod setup;
pub mod shed;
pub mod sign;
pub mod template;
#[cfg(test)]
pub mod testing;
pub mod timeouts;
pub mod tls_client;
pub mod trace;
pub mod view;
pub mod whoami;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{DNSClass, LowerName, Name, Record, RecordType};

use crate::wire::{self, Owner, Section, Transport};

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
    /// The question's class: IN but for the plugins that serve others
    /// ([`Phases::ANY_CLASS`]).
    pub class: DNSClass,
    /// How it came (`whoami` says it).
    pub transport: Transport,
}

impl Request {
    pub fn new(name: Name, qtype: RecordType) -> Self {
        Self {
            lower: LowerName::new(&name),
            name,
            qtype,
            dnssec_ok: false,
            src: None,
            class: DNSClass::IN,
            transport: Transport::Udp,
        }
    }

    /// The same question for another name (a search-path candidate, a CNAME's target), from
    /// the same client with the same DO bit.
    pub fn for_name(&self, name: Name) -> Self {
        Self {
            dnssec_ok: self.dnssec_ok,
            src: self.src,
            transport: self.transport,
            ..Self::new(name, self.qtype)
        }
    }

    /// The same question for another type (`dns64`'s A for an AAAA).
    pub fn for_type(&self, qtype: RecordType) -> Self {
        Self {
            qtype,
            class: self.class,
            ..self.for_name(self.name.clone())
        }
    }
}

/// The question a reply answers, as the finish phase sees it (`dnssec` signs for it).
#[derive(Debug, Clone, Copy)]
pub struct Answered<'a> {
    /// As the client wrote it.
    pub name: &'a Name,
    pub qtype: RecordType,
    /// The query's EDNS DO bit.
    pub dnssec_ok: bool,
}

/// Who sent a query, and how: what [`Phases::prepare`] may put into it (`rewrite edns0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Asker {
    pub src: std::net::SocketAddr,
    pub transport: Transport,
}

impl Asker {
    #[cfg(test)]
    pub fn test() -> Self {
        Self {
            src: "10.244.0.7:40000".parse().expect("an address"),
            transport: Transport::Udp,
        }
    }
}

/// What a plugin made of a query.
// A reply is what most queries come to: boxing it would cost an allocation per answer to
// spare the rarer outcomes a few hundred bytes of stack.
#[allow(clippy::large_enum_variant)]
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
    /// With `follow`: the zone's SOA, when the target's answer settles the rcode (NXDOMAIN and
    /// NODATA put it in the authority section), as CoreDNS's file plugin answers.
    pub follow_negative: Option<Box<Section>>,
    /// Work for the loop that sends the answer, once it is sent.
    pub after: Option<Box<After>>,
    /// An extended DNS error (RFC 8914) for the response's OPT record, when the query has one.
    pub ede: Option<Box<Ede>>,
    /// `erratic`: what happens to the response other than being sent at once.
    pub hold: Option<Box<Hold>>,
}

/// What `erratic` does to a response.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Hold {
    /// Nothing is sent.
    pub drop: bool,
    /// Sent after this long.
    pub delay: Option<std::time::Duration>,
    /// TC set, whatever its size.
    pub truncated: bool,
}

/// An extended DNS error (RFC 8914): its INFO-CODE and EXTRA-TEXT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ede {
    pub code: u16,
    pub text: String,
}

impl Ede {
    /// The EDNS option (code 15) that carries it.
    pub fn option(&self) -> Vec<u8> {
        const EDE: u16 = 15;
        let text = self.text.as_bytes();
        let text = &text[..text.len().min(usize::from(u16::MAX) - 2)];
        let mut out = Vec::with_capacity(6 + text.len());
        out.extend_from_slice(&EDE.to_be_bytes());
        out.extend_from_slice(&(2 + text.len() as u16).to_be_bytes());
        out.extend_from_slice(&self.code.to_be_bytes());
        out.extend_from_slice(text);
        out
    }
}

/// Work an answer leaves for the loop that sends it: the answer path itself never spawns a
/// task nor stops the process (see [`crate::answer::Handled::SendThen`]).
#[derive(Debug, Clone, PartialEq)]
pub enum After {
    /// Fetch a cached answer again in the background.
    Refresh(forward::Refresh),
    /// Stop the process, with this message (the `loop` plugin found its probe coming back).
    Exit(String),
}

impl After {
    /// Does it: a refresh becomes a task on `runtime`; an exit logs the message as CoreDNS's
    /// `[FATAL]` line and ends the process with status 1.
    pub fn run(self, runtime: &tokio::runtime::Handle) {
        match self {
            Self::Refresh(refresh) => {
                runtime.spawn(refresh.run());
            }
            Self::Exit(message) => {
                tracing::error!("{message}");
                eprintln!("[FATAL] plugin/loop: {message}");
                std::process::exit(1);
            }
        }
    }
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
            follow_negative: None,
            after: None,
            ede: None,
            hold: None,
        }
    }

    /// The records of `message` (an upstream's response) written to stand on their own: names
    /// in record data whole, and each owner whole — or, with [`Owners::Question`], a pointer to
    /// the question where it is the question's name. So they mean the same after any header
    /// and question (of that name), in any order (`loadbalance` may shuffle them). The rcode,
    /// AA and RA are the message's; the OPT is left out. `None` if it does not parse, or, with
    /// [`Owners::Question`], has other than one question.
    ///
    /// The one place records from elsewhere are re-owned: the cache keeps upstream answers
    /// this way, `autopath` and the ExternalName follow answer other names with them, and a
    /// forwarded answer too large for the client is cut from them.
    pub fn reowned(message: &[u8], owners: Owners) -> Option<Self> {
        let msg = Message::from_vec(message).ok()?;
        let question = match (owners, msg.queries()) {
            (Owners::Whole, _) => None,
            (Owners::Question, [question]) => Some(LowerName::new(question.name())),
            (Owners::Question, _) => return None,
        };
        let section = |records: &[Record]| {
            let mut s = Section::default();
            for r in records {
                let owner = match &question {
                    Some(q) if LowerName::new(r.name()) == *q => Owner::Question,
                    _ => Owner::Name(r.name()),
                };
                s.push_record(owner, r);
            }
            s
        };
        Some(Self {
            authoritative: msg.authoritative(),
            recursion_available: msg.recursion_available(),
            answers: section(msg.answers()),
            authority: section(msg.name_servers()),
            additional: section(msg.additionals()),
            ..Self::authoritative(msg.response_code())
        })
    }

    /// This reply, made for a query for `asked` of `qtype` (its records may be owned by that
    /// question), with every record under its own name: records that can go into the answer
    /// to another question.
    pub fn reowned_whole(&self, asked: &Name, qtype: RecordType) -> Option<Self> {
        Some(Self {
            rcode: self.rcode,
            authoritative: self.authoritative,
            recursion_available: self.recursion_available,
            ..Self::reowned(&self.wire(asked, qtype), Owners::Whole)?
        })
    }

    /// `theirs`' answer records after this reply's (a CNAME's target's records after it).
    pub fn append_answers(&mut self, theirs: &Reply) {
        self.answers
            .push_full(&theirs.answers.bytes, theirs.answers.count);
    }

    /// This reply as a message answering `asked` of `qtype`, parsed: its records to read
    /// (`dns64`). `None` if its sections do not parse.
    pub fn message(&self, asked: &Name, qtype: RecordType) -> Option<Message> {
        Message::from_vec(&self.wire(asked, qtype)).ok()
    }

    /// A message of this reply's sections after the question `asked` of `qtype` (header flags
    /// other than QR and the rcode left out).
    fn wire(&self, asked: &Name, qtype: RecordType) -> Vec<u8> {
        let sections = [&self.answers, &self.authority, &self.additional];
        let mut message = vec![0, 0, 0x80, 0, 0, 1];
        for s in sections {
            message.extend_from_slice(&s.count.to_be_bytes());
        }
        message.extend(wire::name_bytes(asked));
        message.extend_from_slice(&u16::from(qtype).to_be_bytes());
        message.extend_from_slice(&1u16.to_be_bytes());
        for s in sections {
            message.extend_from_slice(&s.bytes);
        }
        message
    }
}

/// Which owners [`Reply::reowned`] writes as a pointer to the question.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owners {
    /// None: every owner whole (records for the answer to another question).
    Whole,
    /// Those that are the question's name (records for the answer to the same question).
    Question,
}

/// How a plugin that changed a question in [`Phases::prepare`] undoes it in the response.
#[derive(Debug, Clone)]
pub enum Revert {
    Rewrite(rewrite::Undo),
}

impl Revert {
    /// The changed question cannot be asked: the query is answered SERVFAIL.
    pub fn failed(&self) -> bool {
        match self {
            Self::Rewrite(undo) => undo.invalid,
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

/// What a plugin does at each phase of a query. Every method has a default that does nothing
/// (or passes the query on), so a plugin implements only the phases it acts in; the handler
/// runs each phase over the block's plugins in chain order (CoreDNS's `plugin.cfg` order).
///
/// The phases, in the order a query meets them:
/// 1. [`Self::prepare`]: change the query itself, before anything else sees it (`bufsize`).
/// 2. [`Self::admit`]: before the chain: may drop the query (`rrl`'s `requests-per-second`).
/// 3. [`Self::serve`] / [`Self::serve_fast`]: the chain proper; the first plugin that does not
///    pass the query on answers it, or sends it upstream.
/// 4. [`Self::finish`] / [`Self::finish_wire`]: change the reply, however it was made (from the
///    table, on the fast path, from the cache, from upstream): `loadbalance`.
/// 5. [`Self::respond`]: the encoded response, last: may cut or drop it (`rrl`'s slip).
/// 6. [`Self::observe`]: see what went out: `log`, `errors`.
pub trait Phases {
    /// Whether [`Self::serve`] ever answers: a plugin that does not is skipped by the fast
    /// path's chain too (the default [`Self::serve_fast`] passes for it, and declines for one
    /// that answers but has no fast path of its own).
    const ANSWERS: bool = false;

    /// Whether [`Self::serve`] sees questions of other classes than IN (`chaos`). Only such
    /// plugins do; a question of another class that none answers is REFUSED.
    const ANY_CLASS: bool = false;

    /// Whether [`Self::prepare`] ever changes a query: only a block with such a plugin copies
    /// its queries to prepare them.
    const PREPARES: bool = false;

    /// Whether [`Self::fast_for`] ever declines a query: only a block with such a plugin asks.
    const SCREENS: bool = false;

    /// Whether it reads when a query arrived (`log`'s duration, `cancel`'s deadline, `dnstap`'s
    /// query time): only then does the handler read the clock per query (metrics aside).
    const TIMED: bool = false;

    /// Whether this plugin's phases other than serving can all run on the fast path (`log`
    /// wants the parsed query).
    fn fast(&self) -> bool {
        true
    }

    /// Changes the query (the block's own copy of its bytes) before any other phase or path
    /// sees it: the chain, the cache, an upstream, the observers, and the question and flags
    /// echoed in the response all work from what it leaves, as CoreDNS's later plugins see the
    /// request an earlier one changed. It must leave a message of one question; the block that
    /// answers is the one the original question was routed to. A plugin that changes the
    /// question returns how to undo it: the client then gets its own question back, and each
    /// record of the response goes through [`Self::revert`] with it.
    fn prepare(&self, query: &mut Vec<u8>, from: &Asker) -> Option<Revert> {
        let _ = (query, from);
        None
    }

    /// Changes a record of the response back, as [`Self::prepare`]'s `revert` says.
    fn revert(&self, revert: &Revert, record: &mut Record) {
        let _ = (revert, record);
    }

    /// The new target of an answer's CNAME to `target`, as [`Self::prepare`]'s `revert` says
    /// (`rewrite cname`): the handler then asks the chain for it.
    fn retarget(&self, revert: &Revert, target: &Name) -> Option<Name> {
        let _ = (revert, target);
        None
    }

    /// The response's rcode (extended, up to 12 bits) as [`Self::prepare`]'s `revert` says.
    fn revert_rcode(&self, revert: &Revert, rcode: u16) -> u16 {
        let _ = revert;
        rcode
    }

    /// Whether the fast path may answer `query` from `src` (`acl` sends a query it blocks or
    /// filters the full way, where it answers it); asked before any plugin serves it there.
    fn fast_for(&self, query: &crate::wire::LightQuery, src: std::net::SocketAddr) -> bool {
        let _ = (query, src);
        true
    }

    /// Whether the query is answered at all; `false` drops it.
    fn admit(&self, query: &[u8], src: std::net::SocketAddr, transport: Transport) -> bool {
        let _ = (query, src, transport);
        true
    }

    fn serve(&self, req: &Request) -> Outcome {
        let _ = req;
        Outcome::Next
    }

    /// [`Self::serve`] for the common queries, writing the records after the question in
    /// `out`; [`Fast::Slow`] sends the query the full way.
    fn serve_fast(&self, query: &crate::wire::LightQuery, out: &mut Vec<u8>) -> Fast {
        let _ = (query, out);
        if Self::ANSWERS {
            Fast::Slow
        } else {
            Fast::Next
        }
    }

    /// Changes a reply made as sections, before it is encoded (and cut to the client's size):
    /// the answer to `asked`.
    fn finish(&self, reply: &mut Reply, asked: &Answered<'_>, random: &mut Random<'_>) {
        let _ = (reply, asked, random);
    }

    /// Changes a whole response message in place: the fast path's, or an upstream's kept as
    /// it came, both already within the client's size. It may shorten it (`minimal`), never
    /// lengthen it.
    fn finish_wire(&self, message: &mut Vec<u8>, random: &mut Random<'_>) {
        let _ = (message, random);
    }

    /// Whether the encoded response to `query` goes out; may change it in place, within
    /// `limit` bytes (cut it: `rrl`; add an EDNS option: `nsid`).
    fn respond(
        &self,
        response: &mut Vec<u8>,
        query: &[u8],
        src: std::net::SocketAddr,
        transport: Transport,
        limit: usize,
    ) -> bool {
        let _ = (response, query, src, transport, limit);
        true
    }

    /// Sees a response that went out (or was dropped by [`Self::respond`]).
    fn observe(&self, seen: &Seen<'_>) {
        let _ = seen;
    }

    /// The value of metadata `label` this plugin gives `query` (its question's name `name`)
    /// from `src` (`kubernetes/namespace`, `view/name`, `geoip/country/code`), read only when
    /// something asks for it.
    fn metadata(
        &self,
        label: &str,
        name: &LowerName,
        src: std::net::SocketAddr,
        query: &[u8],
    ) -> Option<String> {
        let _ = (label, name, src, query);
        None
    }
}

/// A query and its response, as [`Phases::observe`] sees them.
#[derive(Debug)]
pub struct Seen<'a> {
    /// The query as it came.
    pub query: &'a [u8],
    /// The query parsed, when the full path parsed it ([`Seen::message`] parses it otherwise).
    pub parsed: Option<&'a hickory_proto::op::Message>,
    pub src: std::net::SocketAddr,
    pub transport: Transport,
    /// CoreDNS's request size: the client's buffer, at least 512, 64K over TCP.
    pub size: usize,
    pub rcode: u16,
    pub response: &'a [u8],
    pub started: std::time::Instant,
    /// Why the query failed, when something said (an upstream's error): what `errors` writes
    /// after the question.
    pub error: Option<&'a str>,
    /// The block's metadata (`{/LABEL}` placeholders).
    pub meta: metadata::Meta<'a>,
}

/// Cheap random numbers for a query (`loadbalance`; not for anything that must be
/// unguessable), drawn only when a phase asks: splitmix64 over a counter the handler shares,
/// lock-free and different per query.
#[derive(Debug)]
pub struct Random<'a>(&'a std::sync::atomic::AtomicU64);

impl<'a> Random<'a> {
    pub fn new(seed: &'a std::sync::atomic::AtomicU64) -> Self {
        Self(seed)
    }

    /// A fresh random number.
    pub fn draw(&mut self) -> u64 {
        let mut z = self
            .0
            .fetch_add(0x9E37_79B9_7F4A_7C15, std::sync::atomic::Ordering::Relaxed);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// Declares the registry: every directive CoreDNS knows, in its `plugin.cfg` order (the order a
/// query meets them, whatever order a Corefile writes them in); for each one this build
/// serves, the type its settings are read into (`"name": Type`, a [`setup::Setup`]); and for
/// each that sees queries, its variant of [`Plugin`] (`=> Variant(RuntimeType)`) with each phase of [`Phases`] dispatched to it
/// statically (a `match`, inlined: no virtual call per query).
macro_rules! registry {
    ($($name:literal $(: $setup:ty $(=> $variant:ident($ty:ty))?)?),* $(,)?) => {
        /// One configured plugin, in chain order.
        #[derive(Debug)]
        pub enum Plugin {
            $($($($variant($ty),)?)?)*
        }

        /// Every directive, in chain order.
        pub static DIRECTIVES: &[Entry] = &[
            $(Entry { name: $name, read: registry!(@read $($setup)?) },)*
        ];

        impl Plugin {
            /// The directive it was configured by: its place in the chain is that
            /// directive's in [`DIRECTIVES`].
            pub fn name(&self) -> &'static str {
                match self { $($($(Self::$variant(_) => $name,)?)?)* }
            }

            #[inline]
            pub fn fast(&self) -> bool {
                match self { $($($(Self::$variant(p) => Phases::fast(p),)?)?)* }
            }

            pub fn any_class(&self) -> bool {
                match self { $($($(Self::$variant(_) => <$ty as Phases>::ANY_CLASS,)?)?)* }
            }

            pub fn prepares(&self) -> bool {
                match self { $($($(Self::$variant(_) => <$ty as Phases>::PREPARES,)?)?)* }
            }

            pub fn screens(&self) -> bool {
                match self { $($($(Self::$variant(_) => <$ty as Phases>::SCREENS,)?)?)* }
            }

            pub fn timed(&self) -> bool {
                match self { $($($(Self::$variant(_) => <$ty as Phases>::TIMED,)?)?)* }
            }

            #[inline]
            pub fn fast_for(&self, query: &crate::wire::LightQuery, src: std::net::SocketAddr) -> bool {
                match self { $($($(Self::$variant(p) => Phases::fast_for(p, query, src),)?)?)* }
            }

            #[inline]
            pub fn prepare(&self, query: &mut Vec<u8>, from: &Asker) -> Option<Revert> {
                match self { $($($(Self::$variant(p) => Phases::prepare(p, query, from),)?)?)* }
            }

            pub fn revert(&self, revert: &Revert, record: &mut Record) {
                match self { $($($(Self::$variant(p) => Phases::revert(p, revert, record),)?)?)* }
            }

            pub fn retarget(&self, revert: &Revert, target: &Name) -> Option<Name> {
                match self { $($($(Self::$variant(p) => Phases::retarget(p, revert, target),)?)?)* }
            }

            pub fn revert_rcode(&self, revert: &Revert, rcode: u16) -> u16 {
                match self { $($($(Self::$variant(p) => Phases::revert_rcode(p, revert, rcode),)?)?)* }
            }

            #[inline]
            pub fn admit(&self, query: &[u8], src: std::net::SocketAddr, transport: Transport) -> bool {
                match self { $($($(Self::$variant(p) => Phases::admit(p, query, src, transport),)?)?)* }
            }

            #[inline]
            pub fn serve(&self, req: &Request) -> Outcome {
                match self { $($($(Self::$variant(p) => Phases::serve(p, req),)?)?)* }
            }

            #[inline]
            pub fn serve_fast(&self, query: &crate::wire::LightQuery, out: &mut Vec<u8>) -> Fast {
                match self { $($($(Self::$variant(p) => Phases::serve_fast(p, query, out),)?)?)* }
            }

            #[inline]
            pub fn finish(&self, reply: &mut Reply, asked: &Answered<'_>, random: &mut Random<'_>) {
                match self { $($($(Self::$variant(p) => Phases::finish(p, reply, asked, random),)?)?)* }
            }

            #[inline]
            pub fn finish_wire(&self, message: &mut Vec<u8>, random: &mut Random<'_>) {
                match self { $($($(Self::$variant(p) => Phases::finish_wire(p, message, random),)?)?)* }
            }

            #[inline]
            pub fn respond(&self, response: &mut Vec<u8>, query: &[u8], src: std::net::SocketAddr, transport: Transport, limit: usize) -> bool {
                match self { $($($(Self::$variant(p) => Phases::respond(p, response, query, src, transport, limit),)?)?)* }
            }

            #[inline]
            pub fn observe(&self, seen: &Seen<'_>) {
                match self { $($($(Self::$variant(p) => Phases::observe(p, seen),)?)?)* }
            }

            pub fn metadata(&self, label: &str, name: &LowerName, src: std::net::SocketAddr, query: &[u8]) -> Option<String> {
                match self { $($($(Self::$variant(p) => Phases::metadata(p, label, name, src, query),)?)?)* }
            }
        }
    };
    (@read) => { None };
    (@read $setup:ty) => { Some(setup::read::<$setup> as setup::Read) };
}

/// One directive of the registry.
#[derive(Debug)]
pub struct Entry {
    pub name: &'static str,
    /// How it is read into a server block; `None` when it is known but not served yet.
    pub read: Option<setup::Read>,
}

// CoreDNS's `plugin.cfg`, with `rrl` (an external plugin) first: it accounts for a query before
// anything else looks at it. A directive this build serves names its settings type, and its
// plugin variant when it sees queries.
registry! {
    "rrl": rrl::RrlConfig => Rrl(Box<rrl::Rrl>),
    "root": root::Root,
    "metadata": metadata::Metadata => Metadata(metadata::Metadata),
    "geoip": geoip::GeoipConfig => Geoip(geoip::Geoip),
    "cancel": cancel::Cancel => Cancel(cancel::Cancel),
    "proxyproto": proxyproto::ProxyConfig => ProxyProto(std::sync::Arc<proxyproto::ProxyProto>),
    "quic",
    "grpc_server",
    "https",
    "https3",
    "timeouts": timeouts::Timeouts,
    "multisocket": multisocket::Multisocket,
    "reload": reload::Reload,
    "nsid": nsid::Nsid => Nsid(nsid::Nsid),
    "bufsize": bufsize::Bufsize => Bufsize(bufsize::Bufsize),
    "bind": bind::Bind,
    "debug": debug::Debug,
    "trace": trace::TraceConfig => Trace(std::sync::Arc<trace::Trace>),
    "ready": ready::Ready,
    "health": health::HealthConfig,
    "pprof",
    "shed": shed::Shed,
    "prometheus": prometheus::Prometheus,
    "errors": log::Errors => Errors(log::Errors),
    "log": log::Log => Log(log::Log),
    "dnstap": dnstap::DnstapConfig => Dnstap(std::sync::Arc<dnstap::Dnstap>),
    "local": local::LocalConfig => Local(Box<local::Local>),
    "dns64": dns64::Dns64 => Dns64(dns64::Dns64),
    "any": any::Any => Any(any::Any),
    "chaos": chaos::Chaos => Chaos(chaos::Chaos),
    "loadbalance": loadbalance::LoadbalanceConfig => Loadbalance(Box<loadbalance::Loadbalance>),
    "tsig",
    "rewrite": rewrite::Rewrite => Rewrite(rewrite::Rewrite),
    "autopath": autopath::AutopathConfig,
    "acl": acl::AclConfig => Acl(Box<acl::Acl>),
    "cache": cache::CacheConfig,
    "header": header::Header => Header(Box<header::Header>),
    "dnssec": dnssec::DnssecConfig => Dnssec(Box<dnssec::Dnssec>),
    "tls",
    "minimal": minimal::Minimal => Minimal(minimal::Minimal),
    "template": template::Template => Template(template::Template),
    "transfer",
    "hosts": hosts::HostsConfig => Hosts(Hosts),
    "route53": route53::Route53Config => Route53(Box<route53::Route53>),
    "azure",
    "clouddns",
    "k8s_external": k8s_external::K8sExternalConfig => K8sExternal(Box<k8s_external::K8sExternal>),
    "kubernetes": kubernetes::KubernetesConfig => Kubernetes(Kubernetes),
    "file": file::FileConfig => File(file::File),
    "auto": file::auto::AutoConfig => Auto(file::auto::Auto),
    "secondary": file::secondary::SecondaryConfig => Secondary(file::File),
    "etcd": etcd::EtcdConfig => Etcd(etcd::Etcd),
    "loop": forward_loop::Detect => Loop(forward_loop::Loop),
    "forward": forward::Forwards => Forward(std::sync::Arc<Forward>),
    // Removed from CoreDNS in 1.6, where it came after `forward`: served as one.
    "proxy": forward::proxy::Proxy,
    "grpc": forward::grpc::GrpcConfig => Grpc(std::sync::Arc<Forward>),
    "erratic": erratic::ErraticConfig => Erratic(std::sync::Arc<erratic::Erratic>),
    "whoami": whoami::Whoami => Whoami(whoami::Whoami),
    "on": on::On,
    "sign": sign::SignConfig,
    "view": view::View => View(std::sync::Arc<view::View>),
    "nomad",
}

impl Plugin {
    /// Tells the block's last plugin it is last (CoreDNS's `Next == nil`): `file`, `auto` and
    /// `secondary` then answer REFUSED for a name in no zone they hold, as CoreDNS's do.
    pub fn mark_last(&mut self) {
        match self {
            Self::File(f) | Self::Secondary(f) => f.last = true,
            Self::Auto(a) => a.last = true,
            _ => {}
        }
    }
}

/// A directive's place in the chain: its index in [`DIRECTIVES`].
pub fn order(name: &str) -> usize {
    DIRECTIVES
        .iter()
        .position(|e| e.name == name)
        .unwrap_or(DIRECTIVES.len())
}

/// The directives this build serves, in chain order.
pub fn supported() -> impl Iterator<Item = &'static str> {
    DIRECTIVES
        .iter()
        .filter(|e| e.read.is_some())
        .map(|e| e.name)
}

/// A plugin held behind a pointer (a large one boxed, one shared with background tasks) acts
/// as the plugin itself.
macro_rules! behind {
    ($($pointer:ident),*) => {$(
        impl<T: Phases + ?Sized> Phases for $pointer<T> {
            const ANSWERS: bool = T::ANSWERS;
            const ANY_CLASS: bool = T::ANY_CLASS;
            const PREPARES: bool = T::PREPARES;
            const SCREENS: bool = T::SCREENS;
            const TIMED: bool = T::TIMED;
            fn fast_for(&self, query: &crate::wire::LightQuery, src: std::net::SocketAddr) -> bool {
                (**self).fast_for(query, src)
            }
            fn fast(&self) -> bool {
                (**self).fast()
            }
            fn prepare(&self, query: &mut Vec<u8>, from: &Asker) -> Option<Revert> {
                (**self).prepare(query, from)
            }
            fn revert(&self, revert: &Revert, record: &mut Record) {
                (**self).revert(revert, record)
            }
            fn revert_rcode(&self, revert: &Revert, rcode: u16) -> u16 {
                (**self).revert_rcode(revert, rcode)
            }
            fn retarget(&self, revert: &Revert, target: &Name) -> Option<Name> {
                (**self).retarget(revert, target)
            }
            fn admit(&self, query: &[u8], src: std::net::SocketAddr, transport: Transport) -> bool {
                (**self).admit(query, src, transport)
            }
            fn serve(&self, req: &Request) -> Outcome {
                (**self).serve(req)
            }
            fn serve_fast(&self, query: &crate::wire::LightQuery, out: &mut Vec<u8>) -> Fast {
                (**self).serve_fast(query, out)
            }
            fn finish(&self, reply: &mut Reply, asked: &Answered<'_>, random: &mut Random<'_>) {
                (**self).finish(reply, asked, random)
            }
            fn finish_wire(&self, message: &mut Vec<u8>, random: &mut Random<'_>) {
                (**self).finish_wire(message, random)
            }
            fn respond(&self, response: &mut Vec<u8>, query: &[u8], src: std::net::SocketAddr, transport: Transport, limit: usize) -> bool {
                (**self).respond(response, query, src, transport, limit)
            }
            fn observe(&self, seen: &Seen<'_>) {
                (**self).observe(seen)
            }
            fn metadata(&self, label: &str, name: &LowerName, src: std::net::SocketAddr, query: &[u8]) -> Option<String> {
                (**self).metadata(label, name, src, query)
            }
        }
    )*};
}

use std::sync::Arc;
behind!(Box, Arc);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reowned_records_stand_on_their_own_under_the_question_or_their_names() {
        use hickory_proto::op::{MessageType, Query};
        use hickory_proto::rr::RData;
        use hickory_proto::rr::rdata::{A, CNAME};
        let name = |s: &str| Name::from_ascii(s).unwrap();
        let asked = name("WWW.example.org.");
        let target = name("cdn.example.net.");
        let mut m = Message::new();
        m.set_message_type(MessageType::Response);
        m.set_response_code(ResponseCode::NoError);
        m.set_recursion_available(true);
        m.add_query(Query::query(asked.clone(), RecordType::A));
        let cname = RData::CNAME(CNAME(target.clone()));
        m.add_answer(Record::from_rdata(name("www.example.org."), 60, cname));
        m.add_answer(Record::from_rdata(
            target.clone(),
            30,
            RData::A(A::new(192, 0, 2, 1)),
        ));
        // An upstream compresses the target in the CNAME's data and the A's owner.
        let upstream = m.to_vec().unwrap();

        let mine = Reply::reowned(&upstream, Owners::Question).unwrap();
        let whole = Reply::reowned(&upstream, Owners::Whole).unwrap();
        assert!(mine.recursion_available && !mine.authoritative);
        assert_eq!((mine.rcode, mine.answers.count), (ResponseCode::NoError, 2));
        let target_wire = wire::name_bytes(&target);
        let www_wire = wire::name_bytes(&name("www.example.org."));
        // The question's name (in any letter case) is the pointer to it; the rest is whole.
        assert!(mine.answers.bytes.starts_with(&[0xC0, 0x0C]));
        assert!(whole.answers.bytes.starts_with(&www_wire));
        for reply in [&mine, &whole] {
            let second = reply.answers.bytes.len() - (target_wire.len() + 14);
            assert!(reply.answers.bytes[second..].starts_with(&target_wire));
            // The target whole twice: in the CNAME's data and as the A's owner.
            let whole_target = |w: &[u8]| w == target_wire.as_slice();
            let times = reply.answers.bytes.windows(target_wire.len());
            assert_eq!(times.filter(|w| whole_target(w)).count(), 2);
        }
        // Two questions: nothing to point at.
        m.add_query(Query::query(target.clone(), RecordType::A));
        let two = m.to_vec().unwrap();
        assert!(Reply::reowned(&two, Owners::Question).is_none());
        assert!(Reply::reowned(&two, Owners::Whole).is_some());
        assert!(Reply::reowned(&upstream[..20], Owners::Whole).is_none());

        // A reply owned by a question, re-owned for another: the same records, names whole,
        // the reply's own flags.
        let mut nx = mine.clone();
        nx.rcode = ResponseCode::NXDomain;
        let moved = nx
            .reowned_whole(&name("www.example.org."), RecordType::A)
            .unwrap();
        assert_eq!(moved.answers, whole.answers);
        assert_eq!(moved.rcode, ResponseCode::NXDomain);
    }

    #[test]
    fn every_directive_once_and_the_chain_in_plugin_cfg_order() {
        let mut names: Vec<&str> = DIRECTIVES.iter().map(|e| e.name).collect();
        names.sort_unstable();
        let len = names.len();
        names.dedup();
        assert_eq!(names.len(), len, "a directive listed twice");
        // CoreDNS's order for the plugins of kubeadm's and k3s's Corefiles.
        let chain = [
            "prometheus",
            "errors",
            "log",
            "loadbalance",
            "autopath",
            "cache",
            "hosts",
            "kubernetes",
            "loop",
            "forward",
        ];
        assert!(chain.windows(2).all(|w| order(w[0]) < order(w[1])));
        assert_eq!(order("no-such-plugin"), DIRECTIVES.len());
    }
}
