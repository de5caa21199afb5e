//! From query bytes to response bytes: protocol checks, routing to a server block, the plugin
//! chain, and encoding within the client's size limit.
//!
//! [`Handler::handle`] does no I/O and never waits: the packet loops call it inline. A query
//! the `forward` plugin takes comes back as [`Handled::Forward`], and [`Handler::forward`]
//! (async) answers it from a task of its own.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, LowerName, RecordType};
use tracing::error;

use crate::metrics::{Observed, Route};
use hickory_proto::rr::Name;

use crate::plugin::autopath::{self, Autopath};
use crate::plugin::dns64::Dns64;
use crate::plugin::forward::InFlight;
use crate::plugin::{
    Answered, Asker, Fast, Forward, Outcome, Owners, Plugin, Random, Reply, Request, Seen,
};
use crate::wire::{self, HEADER_LEN, Header, HeaderMut};

pub use crate::wire::EDNS_PAYLOAD;
/// The largest UDP response to a client that sent no OPT (RFC 1035).
const PLAIN_UDP_LIMIT: usize = 512;
/// The largest DNS message; TCP responses may use all of it.
const TCP_LIMIT: usize = 65535;

pub use crate::wire::Transport;

/// What the loop does with a query after [`Handler::handle`].
#[derive(Debug)]
pub enum Handled {
    /// Nothing to send.
    Drop,
    /// The response is in `out`.
    Send,
    /// The response is in `out`; once it is sent, the loop does this (a cache refresh as a
    /// task, or the `loop` plugin's stop), so that answering never spawns or exits.
    SendThen(crate::plugin::After),
    /// The query goes upstream: run [`Handler::forward`] in a task of its own and send what
    /// it returns.
    Forward(Box<Pending>),
    /// The response is in `out`; send it after this long (`erratic`'s delay), from a task.
    Later(std::time::Duration),
}

/// A query the `forward` plugin takes, with what its answer needs later: the query's own
/// context, the plugin that took it, and what the upstream's answer is for.
#[derive(Debug)]
pub struct Pending {
    query: Vec<u8>,
    src: SocketAddr,
    transport: Transport,
    limit: usize,
    started: Instant,
    block: usize,
    zone: u16,
    forward: Arc<Forward>,
    then: Then,
    /// The client's own question, when a plugin changed it.
    restore: Option<Box<Restore>>,
    /// Its place under `max_concurrent`, held until the answer is made.
    _slot: InFlight,
}

/// A query as its block's prepare phase left it ([`Handler::prepared`]).
#[derive(Debug)]
pub(crate) struct Prepared {
    pub query: Vec<u8>,
    /// How to give the client its own question back, when a plugin changed it.
    pub restore: Option<Restore>,
}

/// The client's query as it came, and how each plugin that changed its question undoes that.
#[derive(Debug, Clone)]
pub struct Restore {
    original: Vec<u8>,
    block: usize,
    /// The index of the block's zone the original question was routed by.
    zone: u16,
    /// By the plugin's index in the block.
    reverts: Vec<(usize, crate::plugin::Revert)>,
}

/// What a forwarded query's upstream answer is for.
#[derive(Debug)]
enum Then {
    /// The client's own question: the upstream's answer is the client's.
    Answer,
    /// An `autopath` walk, stopped at a candidate only the upstream can answer.
    Walk(Box<Walk>),
    /// A CNAME leaving the zones, whose target went upstream: the target's records go after
    /// the reply's.
    Follow(Box<Follow>),
    /// An AAAA question `dns64` may synthesize: what the upstream answers decides.
    Dns64,
    /// `dns64`'s A question for an AAAA answer (this one) without addresses: the upstream's
    /// A records are synthesized into it.
    Synthesize(Box<Reply>),
}

/// An `autopath` walk: the candidates, tried in turn until one is found.
#[derive(Debug)]
struct Walk {
    candidates: Vec<Name>,
    /// The candidate being asked.
    next: usize,
    /// The answer for the query's own name (the first candidate), once made.
    first: Option<Reply>,
}

/// Where a walk through the chain stopped.
enum Walked {
    /// A candidate was found: the answer, renamed to the query's name.
    Found(Reply),
    /// The chain sends the candidate at `walk.next` upstream.
    Upstream(Walk, Arc<Forward>, InFlight),
    /// No candidate was found.
    Exhausted(Walk),
}

/// An answer whose last CNAME leads out of the zones: the query for `target` went upstream,
/// and what comes back goes after `reply`'s records.
#[derive(Debug)]
struct Follow {
    reply: Reply,
    target: Name,
    /// The zone's SOA, when the target's rcode is to be the answer's ([`settle`]).
    negative: Option<Box<wire::Section>>,
}

/// What asking a block's chain for a name gave: the one way a query, an autopath candidate and
/// a CNAME's target are all asked.
enum Asked {
    Reply(Reply),
    /// This `forward` sends it upstream, holding its place under `max_concurrent`.
    Upstream(Arc<Forward>, InFlight),
    /// Every plugin passed it on.
    Nothing,
}

impl Pending {
    /// Who asked.
    pub fn src(&self) -> SocketAddr {
        self.src
    }
}

/// What the plugin chain made of a query.
enum Step {
    Reply(Reply),
    /// Nothing to send (`rrl`'s `requests-per-second`).
    Drop,
    Forward {
        forward: Arc<Forward>,
        slot: InFlight,
        then: Then,
    },
}

/// One server block: the zones it serves and its plugins in chain order.
#[derive(Debug)]
pub struct Block {
    pub zones: Vec<LowerName>,
    /// Every plugin of the block, in chain order (CoreDNS's `plugin.cfg` order): each phase
    /// of a query runs over them in turn.
    pub plugins: Vec<Plugin>,
    /// With `prometheus`: this block's index in the metrics registry.
    pub metrics: Option<u16>,
    /// With `autopath`: a pod's first search-path query gets the final answer.
    pub autopath: Option<Autopath>,
    /// Whether every plugin's phases can run on the fast path.
    fast: bool,
    /// Whether a plugin looks at how long a query took (`log`).
    timed: bool,
    /// Whether a plugin changes queries before the chain sees them (`bufsize`).
    prepares: bool,
    /// Whether a plugin keeps some queries off the fast path by who asks (`acl`).
    screens: bool,
    /// `view`: the block takes only the queries its expressions hold for.
    view: Option<Arc<crate::plugin::view::View>>,
}

impl Block {
    pub fn new(
        zones: Vec<LowerName>,
        plugins: Vec<Plugin>,
        metrics: Option<u16>,
        autopath: Option<Autopath>,
    ) -> Self {
        let fast = autopath.is_none() && plugins.iter().all(Plugin::fast);
        // What reads a query's start: the duration metrics, and plugins that say so.
        let timed = metrics.is_some() || plugins.iter().any(Plugin::timed);
        let prepares = plugins.iter().any(Plugin::prepares);
        let screens = plugins.iter().any(Plugin::screens);
        let view = plugins.iter().find_map(|p| match p {
            Plugin::View(v) => Some(Arc::clone(v)),
            _ => None,
        });
        Self {
            zones,
            plugins,
            metrics,
            autopath,
            fast,
            timed,
            prepares,
            screens,
            view,
        }
    }

    /// Its `view`'s name ("" without one), as the metrics label it.
    pub fn view_name(&self) -> String {
        self.view
            .as_ref()
            .map(|v| v.name.clone())
            .unwrap_or_default()
    }
}

/// Routing when some block has a `view`: for each zone, the blocks that may take its queries
/// in the order tried — that zone's in Corefile order, then each enclosing zone's, longest
/// first, as CoreDNS tries them.
#[derive(Debug)]
struct Views {
    candidates: Vec<Vec<(usize, u16)>>,
    /// The address the handler serves (its port; the wildcard address when it has none).
    local: SocketAddr,
}

impl Views {
    fn route(
        &self,
        zone: usize,
        blocks: &[Arc<Block>],
        query: &[u8],
        src: SocketAddr,
        transport: Transport,
    ) -> Option<(usize, u16)> {
        // Worked out once, for the first view; a query that does not parse holds for none.
        let mut facts = None;
        for &(index, z) in self.candidates.get(zone)? {
            let Some(view) = &blocks[index].view else {
                return Some((index, z));
            };
            let f = facts.get_or_insert_with(|| self.facts(query, src, transport));
            let Some(f) = f.as_ref() else { continue };
            // `metadata(label)`: what the block's plugins give the query, as CoreDNS collects
            // it before the block's view is asked.
            let block = &blocks[index];
            let name = std::cell::OnceCell::new();
            let meta = |label: &str| {
                let name = name
                    .get_or_init(|| Name::from_ascii(&f.name).ok().map(|n| LowerName::new(&n)))
                    .as_ref()?;
                crate::plugin::metadata::Meta::new(&block.plugins).value(label, name, src, query)
            };
            if view.admits(f, Some(&meta)) {
                return Some((index, z));
            }
        }
        None
    }

    /// What a view's expressions may ask of `query`; `None` when it does not parse.
    fn facts(
        &self,
        query: &[u8],
        src: SocketAddr,
        transport: Transport,
    ) -> Option<crate::plugin::view::Facts> {
        let msg = Message::from_vec(query).ok()?;
        let q = msg.queries().first()?;
        let tcp = transport == Transport::Tcp;
        let edns = msg.extensions().as_ref();
        Some(crate::plugin::view::Facts {
            name: q.name().to_lowercase().to_string(),
            qtype: q.query_type().to_string(),
            class: q.query_class().to_string(),
            client: src,
            server: self.local,
            tcp,
            id: msg.id(),
            opcode: u8::from(msg.op_code()),
            dnssec_ok: edns.is_some_and(|e| e.flags().dnssec_ok),
            bufsize: if tcp {
                u16::MAX
            } else {
                edns.map_or(512, |e| e.max_payload().max(512))
            },
            size: query.len(),
        })
    }
}

/// A block made ready to serve, shared by the handlers of every address it listens on
/// (`bind`).
#[derive(Debug, Clone)]
pub struct Shared {
    block: Arc<Block>,
}

impl From<Block> for Shared {
    fn from(block: Block) -> Self {
        Self {
            block: Arc::new(block),
        }
    }
}

/// Everything served on one address.
#[derive(Debug)]
pub struct Handler {
    blocks: Vec<Arc<Block>>,
    /// Each block's index in the metrics registry on this address, when it has `prometheus`.
    metrics: Vec<Option<u16>>,
    /// Every block's zones, for routing a query to the longest; `routes[i]` is the block of
    /// zone `i` and the zone's index in that block.
    zones: wire::Zones,
    routes: Vec<(usize, u16)>,
    /// When a block has a `view`: the routes to try in turn.
    views: Option<Box<Views>>,
    /// Whether any block times its queries (`prometheus` or `log`); otherwise no clock is read
    /// per query and `created` stands in for the start.
    timed: bool,
    /// Whether any block prepares its queries; otherwise none is copied.
    prepares: bool,
    created: Instant,
    seed: std::sync::atomic::AtomicU64,
    /// `proxyproto`: the PROXY protocol reader of the listener (its first block's).
    proxy: Option<Arc<crate::plugin::proxyproto::ProxyProto>>,
}

impl Handler {
    /// `proxyproto`: the listener's PROXY protocol reader, when it has one.
    pub fn proxy(&self) -> Option<&Arc<crate::plugin::proxyproto::ProxyProto>> {
        self.proxy.as_ref()
    }

    /// Every block's plugins, in order: how a test reaches a plugin's state.
    #[cfg(test)]
    pub fn plugins(&self) -> impl Iterator<Item = &Plugin> {
        self.blocks.iter().flat_map(|b| b.plugins.iter())
    }

    /// The handler of blocks served on one address, each counted under its own `metrics`.
    pub fn new(blocks: Vec<Block>) -> Self {
        let blocks: Vec<Shared> = blocks.into_iter().map(Shared::from).collect();
        let metrics = blocks.iter().map(|b| b.block.metrics).collect();
        Self::with_metrics(blocks, metrics, SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// The handler of the blocks listening on `listen`, counted under its server label.
    pub fn shared(blocks: Vec<Shared>, listen: &crate::corefile::Listen) -> Self {
        let metrics = blocks
            .iter()
            .map(|b| {
                b.block.metrics.map(|_| {
                    crate::metrics::metrics().register_block(
                        listen.to_string(),
                        b.block.view_name(),
                        b.block.zones.iter().map(ToString::to_string).collect(),
                    )
                })
            })
            .collect();
        let local = SocketAddr::new(
            listen
                .ip
                .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)),
            listen.port,
        );
        Self::with_metrics(blocks, metrics, local)
    }

    fn with_metrics(blocks: Vec<Shared>, metrics: Vec<Option<u16>>, local: SocketAddr) -> Self {
        let blocks: Vec<Arc<Block>> = blocks.into_iter().map(|b| b.block).collect();
        // Each zone once, with the blocks that serve it in order (several only with views).
        let mut all: Vec<LowerName> = Vec::new();
        let mut owners: Vec<Vec<(usize, u16)>> = Vec::new();
        for (bi, b) in blocks.iter().enumerate() {
            for (zi, zone) in b.zones.iter().enumerate() {
                let route = (bi, zi as u16);
                match all.iter().position(|z| z == zone) {
                    Some(i) => owners[i].push(route),
                    None => {
                        all.push(zone.clone());
                        owners.push(vec![route]);
                    }
                }
            }
        }
        let routes = owners.iter().map(|o| o[0]).collect();
        let views = blocks.iter().any(|b| b.view.is_some()).then(|| {
            let candidates = all
                .iter()
                .enumerate()
                .map(|(i, zone)| {
                    let mut enclosing: Vec<usize> = (0..all.len())
                        .filter(|&j| j != i && all[j].zone_of(zone))
                        .collect();
                    enclosing.sort_by_key(|&j| std::cmp::Reverse(all[j].num_labels()));
                    std::iter::once(i)
                        .chain(enclosing)
                        .flat_map(|j| owners[j].iter().copied())
                        .collect()
                })
                .collect();
            Box::new(Views { candidates, local })
        });
        let timed = blocks.iter().any(|b| b.timed);
        let prepares = blocks.iter().any(|b| b.prepares);
        let proxy = blocks
            .iter()
            .flat_map(|b| b.plugins.iter())
            .find_map(|p| match p {
                Plugin::ProxyProto(p) => Some(Arc::clone(p)),
                _ => None,
            });
        Self {
            proxy,
            blocks,
            metrics,
            zones: wire::Zones::new(&all),
            routes,
            views,
            timed,
            prepares,
            created: Instant::now(),
            seed: std::sync::atomic::AtomicU64::new(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
                    | 1,
            ),
        }
    }

    /// The block, and the index of its zone, that takes a query whose longest zone is the
    /// handler's zone `zone`: that zone's block, or with views the first whose view holds.
    #[inline]
    fn route(
        &self,
        zone: usize,
        query: &[u8],
        src: SocketAddr,
        transport: Transport,
    ) -> Option<(usize, u16)> {
        match &self.views {
            None => self.routes.get(zone).copied(),
            Some(views) => views.route(zone, &self.blocks, query, src, transport),
        }
    }

    /// An `autopath` walk in block `index` found an answer: `coredns_autopath_success_total`.
    fn found(&self, index: usize) {
        if let Some(metrics) = self.metrics[index] {
            crate::metrics::metrics().autopath_success(metrics);
        }
    }

    /// The admit phase: whether block `block` answers the query at all.
    #[inline]
    fn admit(&self, block: &Block, query: &[u8], src: SocketAddr, transport: Transport) -> bool {
        block.plugins.iter().all(|p| p.admit(query, src, transport))
    }

    /// The finish phase for a reply made as sections (by the chain, the cache, or re-written
    /// from upstream), before it is encoded and cut to the client's size.
    fn finish(&self, block: &Block, msg: &Message, reply: &mut Reply) {
        let mut random = Random::new(&self.seed);
        let root = Name::root();
        let question = msg.queries().first();
        let asked = Answered {
            name: question.map_or(&root, |q| q.name()),
            qtype: question.map_or(RecordType::NULL, |q| q.query_type()),
            dnssec_ok: dnssec_ok(msg),
        };
        for p in &block.plugins {
            p.finish(reply, &asked, &mut random);
        }
    }

    /// The finish phase for a whole response message (the fast path's, an upstream's as it
    /// came), before it is cut to the client's size.
    #[inline]
    fn finish_wire(&self, block: &Block, message: &mut Vec<u8>) {
        let mut random = Random::new(&self.seed);
        for p in &block.plugins {
            p.finish_wire(message, &mut random);
        }
    }

    /// The last phases of every query block `index` answered, however its response was made:
    /// the metrics and the observers (`log`, `errors`), then the respond phase (`rrl`), which
    /// may cut the response or drop it. Returns whether it is sent.
    #[inline]
    #[allow(clippy::too_many_arguments)]
    fn done(
        &self,
        index: usize,
        zone: u16,
        query: &[u8],
        parsed: Option<&Message>,
        qtype: u16,
        src: SocketAddr,
        transport: Transport,
        rcode: u16,
        out: &mut Vec<u8>,
        started: Instant,
        limit: usize,
        error: Option<&str>,
    ) -> bool {
        let Some(block) = self.blocks.get(index) else {
            return true;
        };
        let seen = Seen {
            query,
            parsed,
            src,
            transport,
            size: limit,
            rcode,
            response: out,
            started,
            error,
            meta: crate::plugin::metadata::Meta::new(&block.plugins),
        };
        for p in &block.plugins {
            p.observe(&seen);
        }
        count(
            self.metrics[index],
            zone,
            src,
            transport,
            qtype,
            limit,
            rcode,
            out,
            started,
        );
        block
            .plugins
            .iter()
            .all(|p| p.respond(out, query, src, transport, limit))
    }

    /// [`Self::handle`], with a panic caught at this boundary: it is logged, counted in
    /// `coredns_panics_total`, answered SERVFAIL (as CoreDNS does), and the loop goes on serving.
    pub fn handle_guarded(
        &self,
        query: &[u8],
        src: SocketAddr,
        transport: Transport,
        out: &mut Vec<u8>,
    ) -> Handled {
        // `proxyproto`: a datagram's header names its client (a connection's was read when it
        // opened).
        let (query, src) = match (&self.proxy, transport) {
            (Some(proxy), Transport::Udp) => match proxy.datagram(query, src) {
                crate::plugin::proxyproto::Verdict::Answer(client, from) => {
                    (query.get(from..).unwrap_or_default(), client)
                }
                crate::plugin::proxyproto::Verdict::Refuse => {
                    out.clear();
                    return Handled::Drop;
                }
            },
            _ => (query, src),
        };
        let handled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.handle(query, src, transport, out)
        }));
        handled.unwrap_or_else(|_| {
            crate::metrics::metrics().panicked();
            error!(%src, len = query.len(), "panic while answering a query; SERVFAIL");
            // As CoreDNS recovers: the client gets SERVFAIL rather than a timeout.
            if Header::of(query).is_some_and(|h| !h.is_response()) {
                header_only(query, ResponseCode::ServFail, out);
                Handled::Send
            } else {
                out.clear();
                Handled::Drop
            }
        })
    }

    /// Answers `query` into `out`, or hands it to `forward`. Nothing is sent for a packet too
    /// short to carry an ID, or that is itself a response.
    pub fn handle(
        &self,
        query: &[u8],
        src: SocketAddr,
        transport: Transport,
        out: &mut Vec<u8>,
    ) -> Handled {
        out.clear();
        if Header::of(query).is_none_or(|h| h.is_response()) {
            return Handled::Drop;
        }
        #[cfg(test)]
        if tests::PANIC_NEXT.with(|p| p.replace(false)) {
            out.extend_from_slice(b"half a reply");
            panic!("a panic asked for by a test of handle_guarded");
        }
        let prepared = self.prepared(query, &Asker { src, transport });
        let (query, restore) = match &prepared {
            Some(p) => (p.query.as_slice(), p.restore.as_ref()),
            None => (query, None),
        };
        let started = if self.timed {
            Instant::now()
        } else {
            self.created
        };
        // A changed question is answered the full way, which gives the client its own back.
        if restore.is_none()
            && let Some(light) = wire::parse_light(query)
            && let Some(handled) = self.handle_fast(query, &light, src, transport, out, started)
        {
            return handled;
        }
        self.handle_full(query, src, transport, out, started, restore)
    }

    /// The prepare phase: the query as the block its question is routed to changes it, when
    /// that block has a plugin that does (`None`, and nothing copied, otherwise; also for a
    /// question that cannot be read, which the full parse refuses anyway).
    pub(crate) fn prepared(&self, query: &[u8], from: &Asker) -> Option<Prepared> {
        if !self.prepares {
            return None;
        }
        let mut key = [0u8; wire::MAX_NAME];
        let (len, _) = wire::read_name(query, HEADER_LEN, &mut key, wire::Pointers::Follow)?;
        let zone = self.zones.longest_index_wire(&key[..len])?;
        let (index, zone) = self.route(zone, query, from.src, from.transport)?;
        let block = &self.blocks[index];
        if !block.prepares {
            return None;
        }
        let mut prepared = query.to_vec();
        let mut reverts = Vec::new();
        for (i, plugin) in block.plugins.iter().enumerate() {
            if let Some(revert) = plugin.prepare(&mut prepared, from) {
                reverts.push((i, revert));
            }
        }
        let restore = (!reverts.is_empty()).then(|| Restore {
            original: query.to_vec(),
            block: index,
            zone,
            reverts,
        });
        Some(Prepared {
            query: prepared,
            restore,
        })
    }

    /// The client's own question back in `out` (a response to the prepared query), and each
    /// record changed back by the plugins that changed the question, within `limit`.
    fn restore(&self, restore: &Restore, limit: usize, out: &mut Vec<u8>) {
        let (Ok(response), Ok(original), Some(block)) = (
            Message::from_vec(out),
            Message::from_vec(&restore.original),
            self.blocks.get(restore.block),
        ) else {
            return;
        };
        let rcode = restore
            .reverts
            .iter()
            .rev()
            .fold(u16::from(response.response_code()), |rcode, (i, revert)| {
                block.plugins[*i].revert_rcode(revert, rcode)
            });
        let mut reply =
            Reply::authoritative(ResponseCode::from((rcode >> 4) as u8, (rcode & 0xF) as u8));
        reply.authoritative = response.authoritative();
        reply.recursion_available = response.recursion_available();
        let sections = [
            (&mut reply.answers, response.answers()),
            (&mut reply.authority, response.name_servers()),
            (&mut reply.additional, response.additionals()),
        ];
        for (section, records) in sections {
            for record in records {
                let mut record = record.clone();
                for (i, revert) in restore.reverts.iter().rev() {
                    block.plugins[*i].revert(revert, &mut record);
                }
                section.push_record(wire::Owner::Name(record.name()), &record);
            }
        }
        encode(&restore.original, &original, &reply, limit, out);
        if response.truncated()
            && let Some(mut header) = HeaderMut::of(out)
        {
            header.set_truncated();
        }
    }

    /// [`Self::handle`] without the fast path: the query parsed whole by hickory-proto.
    pub(crate) fn handle_full(
        &self,
        query: &[u8],
        src: SocketAddr,
        transport: Transport,
        out: &mut Vec<u8>,
        started: Instant,
        restore: Option<&Restore>,
    ) -> Handled {
        out.clear();
        // The opcode is the header's: one other than QUERY is NOTIMP whatever follows, as
        // miekg/dns answers it, not FORMERR for a body that would never be read.
        if Header::of(query).is_none_or(|h| h.opcode() != 0) {
            header_only(query, ResponseCode::NotImp, out);
            return Handled::Send;
        }
        let msg = match Message::from_vec(query) {
            Ok(msg) => msg,
            Err(_) => {
                header_only(query, ResponseCode::FormErr, out);
                return Handled::Send;
            }
        };
        let [question] = msg.queries() else {
            header_only(query, ResponseCode::FormErr, out);
            return Handled::Send;
        };
        // hickory-proto reads an OPT outside the additional section as any record, and drops
        // options that do not fit their OPT instead of failing: both are FORMERR here. So is
        // a compressed question name: nothing before it is a name (a pointer can only reach
        // the header or the name itself), and the response echoes the question as sent.
        if !wire::opt_well_formed(query) || wire::question_compressed(query) {
            header_only(query, ResponseCode::FormErr, out);
            return Handled::Send;
        }
        let limit = size_limit(
            transport,
            msg.extensions().as_ref().map(|e| e.max_payload()),
        );
        // TSIG (RFC 8945): no key is configured, so a signed query gets NOTAUTH with a TSIG
        // record saying BADKEY, unsigned (§5.2), never data; a TSIG anywhere but last is
        // FORMERR (§5.1).
        match tsig_of(query) {
            None => {}
            Some(Some(tsig)) => {
                let refused = Reply::authoritative(ResponseCode::NotAuth).not_authoritative();
                encode(query, &msg, &refused, limit, out);
                if !bad_key(query, &tsig, out) {
                    header_only(query, ResponseCode::FormErr, out);
                }
                return Handled::Send;
            }
            Some(None) => {
                header_only(query, ResponseCode::FormErr, out);
                return Handled::Send;
            }
        }
        // A question a plugin could not change into a name: SERVFAIL, as CoreDNS answers.
        if let Some(restore) = restore
            && restore.reverts.iter().any(|(_, r)| r.failed())
        {
            let failed = Reply::authoritative(ResponseCode::ServFail).not_authoritative();
            encode(query, &msg, &failed, limit, out);
            self.restore(restore, limit, out);
            return Handled::Send;
        }
        let (step, routed) = self.reply(query, &msg, question, src, transport, restore);
        let reply = match step {
            Step::Reply(reply) => reply,
            Step::Drop => return Handled::Drop,
            Step::Forward {
                forward,
                slot,
                then,
            } => {
                let (block, zone) = routed.expect("forwarded queries are routed");
                return Handled::Forward(Box::new(Pending {
                    query: query.to_vec(),
                    src,
                    transport,
                    limit,
                    started,
                    block,
                    zone,
                    forward,
                    then,
                    restore: restore.cloned().map(Box::new),
                    _slot: slot,
                }));
            }
        };
        encode(query, &msg, &reply, limit, out);
        if let Some(restore) = restore {
            self.restore(restore, limit, out);
        }
        let hold = reply.hold.as_deref().copied().unwrap_or_default();
        if hold.drop {
            out.clear();
            return Handled::Drop;
        }
        if hold.truncated
            && let Some(mut header) = HeaderMut::of(out)
        {
            header.set_truncated();
        }
        if let Some((block, zone)) = routed
            && !self.done(
                block,
                zone,
                query,
                Some(&msg),
                u16::from(question.query_type()),
                src,
                transport,
                u16::from(reply.rcode),
                out,
                started,
                limit,
                None,
            )
        {
            out.clear();
            return Handled::Drop;
        }
        match (reply.after, hold.delay) {
            (_, Some(delay)) => Handled::Later(delay),
            (Some(after), None) => Handled::SendThen(*after),
            (None, None) => Handled::Send,
        }
    }

    /// The fast path: a plain query answered by plugins that can write their records straight
    /// after the question (see [`Plugin::serve_fast`]). `None`, with `out` in any state, when
    /// the query needs the full way: it is then answered as if this had not run. Otherwise
    /// [`Handled::Send`], or [`Handled::Drop`] when `rrl` drops it.
    pub(crate) fn handle_fast(
        &self,
        query: &[u8],
        light: &wire::LightQuery,
        src: SocketAddr,
        transport: Transport,
        out: &mut Vec<u8>,
        started: Instant,
    ) -> Option<Handled> {
        let key = light.key();
        let (index, zone) =
            self.route(self.zones.longest_index_wire(key)?, query, src, transport)?;
        let block = &self.blocks[index];
        if !block.fast || block.screens && !block.plugins.iter().all(|p| p.fast_for(light, src)) {
            return None;
        }
        out.extend_from_slice(&query[..light.question_end]);
        let reply = block
            .plugins
            .iter()
            .find_map(|p| match p.serve_fast(light, out) {
                Fast::Next => None,
                done => Some(done),
            });
        let Some(Fast::Answered(reply)) = reply else {
            return None;
        };
        let [answers, authority, mut additional] = reply.counts;
        if let Some((_, dnssec_ok)) = light.edns {
            out.extend_from_slice(&wire::opt(EDNS_PAYLOAD, 0, dnssec_ok));
            additional += 1;
        }
        let limit = size_limit(transport, light.edns.map(|(payload, _)| payload));
        if out.len() > limit {
            return None;
        }
        // Decided here, where the fast path is sure to answer, so no query is counted twice.
        if !self.admit(block, query, src, transport) {
            out.clear();
            return Some(Handled::Drop);
        }
        let (Some(asked), Some(mut header)) = (Header::of(query), HeaderMut::of(out)) else {
            return None;
        };
        header.set_flags(asked.response_flags(
            reply.authoritative,
            false,
            reply.rcode.low(),
            reply.recursion_available,
        ));
        header.set_counts(answers, authority, additional);
        self.finish_wire(block, out);
        if !self.done(
            index,
            zone,
            query,
            None,
            light.qtype,
            src,
            transport,
            u16::from(reply.rcode),
            out,
            started,
            limit,
            None,
        ) {
            out.clear();
            return Some(Handled::Drop);
        }
        Some(Handled::Send)
    }

    /// Sends a query the `forward` plugin took upstream, and returns the response for the
    /// client: the upstream's answer under the client's ID and question, cut to the client's
    /// size with TC; SERVFAIL when no upstream answered.
    pub async fn forward(&self, pending: Box<Pending>) -> Option<Vec<u8>> {
        let Pending {
            query,
            src,
            transport,
            limit,
            started,
            block,
            zone,
            forward,
            then,
            restore,
            _slot,
        } = *pending;
        let msg = Message::from_vec(&query).ok()?;
        let question = msg.queries().first()?;
        let qtype = u16::from(question.query_type());
        let mut out = Vec::new();
        let mut failed = None;
        let answered = async {
            Some(match then {
                Then::Answer => {
                    let exchanged = forward.exchange(&query, transport == Transport::Tcp).await;
                    drop(_slot);
                    if let Err(error) = &exchanged {
                        failed = Some(error.to_string());
                    }
                    // `grpc { fallthrough }`: an NXDOMAIN, or no answer, goes on down the chain.
                    if forward.falls_through(question.name(), &exchanged) {
                        let req = self.request(&msg, question, src, transport);
                        if let Asked::Reply(mut reply) =
                            ask_after(&self.blocks[block], &forward, &req)
                        {
                            failed = None;
                            return Some(
                                self.written(block, &query, &msg, &mut reply, limit, &mut out),
                            );
                        }
                    }
                    let retargeted = match (&restore, &exchanged) {
                        (Some(restore), Ok(response)) => {
                            let req = self.request(&msg, question, src, transport);
                            Reply::reowned(response, Owners::Question).and_then(|mut reply| {
                                let target = self.retarget(restore, &mut reply, &req)?;
                                // The cache keeps the upstream's own answer: rewrite comes
                                // before it in the chain, as in CoreDNS.
                                let key = (question.name(), qtype, dnssec_ok(&msg));
                                let _ = forward.remember(key, response);
                                Some((reply, target, req))
                            })
                        }
                        _ => None,
                    };
                    match retargeted {
                        // `rewrite cname`: the new target's records after the CNAMEs.
                        Some((mut reply, target, req)) => {
                            let theirs =
                                match ask(&self.blocks[block], &req.for_name(target.clone())) {
                                    Asked::Reply(theirs) => {
                                        theirs.reowned_whole(&target, req.qtype)
                                    }
                                    Asked::Upstream(next, slot) => {
                                        let response = upstream(
                                            &next, &query, &msg, &target, req.qtype, transport,
                                        )
                                        .await;
                                        drop(slot);
                                        response.and_then(|r| Reply::reowned(&r, Owners::Whole))
                                    }
                                    Asked::Nothing => None,
                                };
                            if let Some(theirs) = theirs {
                                reply.append_answers(&theirs);
                            }
                            self.written(block, &query, &msg, &mut reply, limit, &mut out)
                        }
                        None => self.answer_forwarded(
                            block, &forward, &query, &msg, exchanged, limit, &mut out,
                        )?,
                    }
                }
                Then::Follow(follow) => {
                    let Follow {
                        mut reply,
                        target,
                        negative,
                    } = *follow;
                    let asked = upstream(
                        &forward,
                        &query,
                        &msg,
                        &target,
                        question.query_type(),
                        transport,
                    )
                    .await;
                    drop(_slot);
                    let theirs =
                        asked.and_then(|response| Reply::reowned(&response, Owners::Whole));
                    if let Some(theirs) = &theirs {
                        reply.append_answers(theirs);
                    }
                    settle(&mut reply, negative.as_deref(), theirs.as_ref());
                    self.written(block, &query, &msg, &mut reply, limit, &mut out)
                }
                Then::Dns64 => {
                    let exchanged = forward.exchange(&query, transport == Transport::Tcp).await;
                    drop(_slot);
                    if let Err(error) = &exchanged {
                        failed = Some(error.to_string());
                    }
                    let wanted = dns64(&self.blocks[block])
                        .filter(|d| exchanged.as_ref().is_ok_and(|r| d.wants_response(r)));
                    if let (Some(dns64), Ok(response)) = (wanted, &exchanged) {
                        let key = (question.name(), qtype, dnssec_ok(&msg));
                        let aaaa = forward
                            .remember(key, response)
                            .or_else(|| Reply::reowned(response, Owners::Question))?;
                        let req = self.request(&msg, question, src, transport);
                        let mut reply = match self.dns64_a(block, &req, &query, &msg).await {
                            Some(a) => {
                                self.translated(block);
                                dns64.synthesize(&req.name, &aaaa, &a)
                            }
                            None => {
                                Reply::authoritative(ResponseCode::ServFail).not_authoritative()
                            }
                        };
                        self.written(block, &query, &msg, &mut reply, limit, &mut out)
                    } else {
                        self.answer_forwarded(
                            block, &forward, &query, &msg, exchanged, limit, &mut out,
                        )?
                    }
                }
                Then::Synthesize(aaaa) => {
                    drop(_slot);
                    let req = self.request(&msg, question, src, transport);
                    let a = upstream(&forward, &query, &msg, &req.name, RecordType::A, transport)
                        .await
                        .and_then(|response| Reply::reowned(&response, Owners::Question));
                    let mut reply = match (a, dns64(&self.blocks[block])) {
                        (Some(a), Some(dns64)) => {
                            self.translated(block);
                            dns64.synthesize(&req.name, &aaaa, &a)
                        }
                        _ => Reply::authoritative(ResponseCode::ServFail).not_authoritative(),
                    };
                    self.written(block, &query, &msg, &mut reply, limit, &mut out)
                }
                Then::Walk(walk) => {
                    let req = self.request(&msg, question, src, transport);
                    let mut reply = self
                        .walk_on(block, &req, &query, &msg, transport, *walk, forward, _slot)
                        .await;
                    self.written(block, &query, &msg, &mut reply, limit, &mut out)
                }
            })
        };
        // `cancel`: past the block's deadline the wait is given up, with SERVFAIL.
        let deadline = self.blocks[block].plugins.iter().find_map(|p| match p {
            Plugin::Cancel(c) => Some(c.timeout.saturating_sub(started.elapsed())),
            _ => None,
        });
        let rcode = match deadline {
            None => answered.await?,
            Some(left) => match tokio::time::timeout(left, answered).await {
                Ok(rcode) => rcode?,
                Err(_) => {
                    failed = Some("context deadline exceeded".to_string());
                    let failed = Reply::authoritative(ResponseCode::ServFail).not_authoritative();
                    encode(&query, &msg, &failed, limit, &mut out);
                    u16::from(ResponseCode::ServFail)
                }
            },
        };
        if let Some(restore) = &restore {
            self.restore(restore, limit, &mut out);
        }
        self.done(
            block,
            zone,
            &query,
            Some(&msg),
            qtype,
            src,
            transport,
            rcode,
            &mut out,
            started,
            limit,
            failed.as_deref(),
        )
        .then_some(out)
    }

    /// The plugins' view of a forwarded query's question.
    fn request(
        &self,
        msg: &Message,
        question: &Query,
        src: SocketAddr,
        transport: Transport,
    ) -> Request {
        let mut req = Request::new(question.name().clone(), question.query_type());
        req.dnssec_ok = dnssec_ok(msg);
        req.src = Some(src);
        req.transport = transport;
        req
    }

    /// Goes on with an `autopath` walk from the candidate `forward` took: each candidate the
    /// chain sends upstream is asked of the upstream, the others of the chain (`walk`); the
    /// first found is the answer, else the query's own name's, else SERVFAIL.
    #[allow(clippy::too_many_arguments)]
    async fn walk_on(
        &self,
        index: usize,
        req: &Request,
        query: &[u8],
        msg: &Message,
        transport: Transport,
        mut walk: Walk,
        mut forward: Arc<Forward>,
        mut slot: InFlight,
    ) -> Reply {
        while let Some(candidate) = walk.candidates.get(walk.next).cloned() {
            let response = upstream(&forward, query, msg, &candidate, req.qtype, transport).await;
            drop(slot);
            if let Some(response) = response {
                let rcode = Header::of(&response).map_or(ResponseCode::ServFail, |h| {
                    ResponseCode::from_low(h.rcode_low())
                });
                if walk.next == 0 {
                    walk.first = autopath::renamed_upstream(&response, &req.name, &candidate);
                }
                if autopath::found(rcode)
                    && let Some(reply) =
                        autopath::renamed_upstream(&response, &req.name, &candidate)
                {
                    self.found(index);
                    return reply;
                }
            }
            walk.next += 1;
            match self.walk(index, req, walk) {
                Walked::Found(reply) => return reply,
                Walked::Upstream(rest, next, taken) => (walk, forward, slot) = (rest, next, taken),
                Walked::Exhausted(rest) => {
                    walk = rest;
                    break;
                }
            }
        }
        walk.first
            .unwrap_or_else(|| Reply::authoritative(ResponseCode::ServFail).not_authoritative())
    }

    /// An `autopath` walk through the chain from candidate `walk.next`, as far as it goes
    /// without the upstream.
    fn walk(&self, index: usize, req: &Request, mut walk: Walk) -> Walked {
        let block = &self.blocks[index];
        while let Some(candidate) = walk.candidates.get(walk.next).cloned() {
            match ask(block, &req.for_name(candidate.clone())) {
                Asked::Reply(reply) => {
                    if autopath::found(reply.rcode) {
                        self.found(index);
                        return Walked::Found(autopath::renamed(
                            &reply, &req.name, &candidate, req.qtype,
                        ));
                    }
                    if walk.next == 0 {
                        walk.first = Some(reply);
                    }
                }
                Asked::Upstream(forward, slot) => return Walked::Upstream(walk, forward, slot),
                Asked::Nothing => {}
            }
            walk.next += 1;
        }
        Walked::Exhausted(walk)
    }

    /// What the chain made of the query, and the server block (by index, with the index of
    /// its zone that matched) that made it.
    fn reply(
        &self,
        query: &[u8],
        msg: &Message,
        question: &Query,
        src: SocketAddr,
        transport: Transport,
        restore: Option<&Restore>,
    ) -> (Step, Option<(usize, u16)>) {
        let refused =
            || Step::Reply(Reply::authoritative(ResponseCode::Refused).not_authoritative());
        if msg.extensions().as_ref().is_some_and(|e| e.version() > 0) {
            return (
                Step::Reply(Reply::authoritative(ResponseCode::BADVERS).not_authoritative()),
                None,
            );
        }
        let qtype = question.query_type();
        if matches!(qtype, RecordType::OPT) {
            return (
                Step::Reply(Reply::authoritative(ResponseCode::FormErr).not_authoritative()),
                None,
            );
        }
        let mut req = Request::new(question.name().clone(), qtype);
        req.dnssec_ok = dnssec_ok(msg);
        req.src = Some(src);
        req.transport = transport;
        // The block with the longest zone holding the name; a question a plugin changed stays
        // with the block that changed it, as CoreDNS answers it in that block's chain.
        let routed_to = match restore {
            Some(r) => Some((r.block, r.zone)),
            None => self
                .zones
                .longest_index(&req.lower)
                .and_then(|i| self.route(i, query, src, transport)),
        };
        let Some((index, zone)) = routed_to else {
            return (refused(), None);
        };
        let block = &self.blocks[index];
        let routed = Some((index, zone));
        if !self.admit(block, query, src, transport) {
            return (Step::Drop, routed);
        }
        // Zone transfers are not offered.
        if matches!(qtype, RecordType::AXFR | RecordType::IXFR) {
            return (refused(), routed);
        }
        // Other classes than IN: only the plugins that serve them (`chaos`) see the question;
        // nothing else holds any.
        req.class = question.query_class();
        if req.class != DNSClass::IN {
            let answered = block
                .plugins
                .iter()
                .filter(|p| p.any_class())
                .find_map(|p| match p.serve(&req) {
                    Outcome::Reply(reply) => Some(reply),
                    _ => None,
                });
            let Some(mut reply) = answered else {
                return (refused(), routed);
            };
            self.finish(block, msg, &mut reply);
            return (Step::Reply(reply), routed);
        }
        let candidates = block.autopath.as_ref().and_then(|a| {
            let kubernetes = block.plugins.iter().find_map(|p| match p {
                Plugin::Kubernetes(k) => Some(k),
                _ => None,
            });
            a.candidates(&req.name, Some(src.ip()), kubernetes)
        });
        let walk = candidates.map(|candidates| Walk {
            candidates,
            next: 0,
            first: None,
        });
        let step = match walk.map(|walk| self.walk(index, &req, walk)) {
            Some(Walked::Found(reply)) => Step::Reply(reply),
            Some(Walked::Upstream(walk, forward, slot)) => Step::Forward {
                forward,
                slot,
                then: Then::Walk(Box::new(walk)),
            },
            Some(Walked::Exhausted(walk)) => match walk.first {
                Some(first) => Step::Reply(first),
                None => return (passed(block), routed),
            },
            None => match ask(block, &req) {
                Asked::Reply(reply) => Step::Reply(reply),
                Asked::Upstream(forward, slot) => Step::Forward {
                    forward,
                    slot,
                    then: Then::Answer,
                },
                // Every plugin passed: nothing here holds the name.
                Asked::Nothing => return (passed(block), routed),
            },
        };
        let step = match step {
            Step::Reply(reply) if reply.follow.is_some() => self.follow(block, &req, reply),
            // `rewrite cname`: the renamed target is looked up as an ExternalName's is.
            Step::Reply(mut reply) if restore.is_some() => {
                match restore.and_then(|r| self.retarget(r, &mut reply, &req)) {
                    Some(target) => {
                        reply.follow = Some(target);
                        self.follow(block, &req, reply)
                    }
                    None => Step::Reply(reply),
                }
            }
            step => step,
        };
        let step = match (req.qtype, dns64(block)) {
            (RecordType::AAAA, Some(dns64)) if dns64.applies(&req) => {
                self.dns64(index, dns64, &req, step)
            }
            _ => step,
        };
        match step {
            Step::Reply(mut reply) => {
                self.finish(block, msg, &mut reply);
                (Step::Reply(reply), routed)
            }
            forward => (forward, routed),
        }
    }
}

impl Handler {
    /// `reply` after block `index`'s finish phase, encoded into `out` as the answer to `query`:
    /// how each continuation of a forwarded query ends. Returns its rcode.
    fn written(
        &self,
        index: usize,
        query: &[u8],
        msg: &Message,
        reply: &mut Reply,
        limit: usize,
        out: &mut Vec<u8>,
    ) -> u16 {
        self.finish(&self.blocks[index], msg, reply);
        encode(query, msg, reply, limit, out);
        u16::from(reply.rcode)
    }

    /// `rewrite cname`: the first CNAME of the answer whose target a plugin's revert renames
    /// gets the new target, and the answer is cut after it (the CNAMEs before it kept, as
    /// CoreDNS keeps them); returns the new target, whose records the caller appends.
    fn retarget(&self, restore: &Restore, reply: &mut Reply, req: &Request) -> Option<Name> {
        let block = self.blocks.get(restore.block)?;
        let msg = reply.message(&req.name, req.qtype)?;
        let mut kept = Vec::new();
        for record in msg.answers() {
            let hickory_proto::rr::RData::CNAME(cname) = record.data() else {
                continue;
            };
            let mut record = record.clone();
            let renamed = restore
                .reverts
                .iter()
                .find_map(|(i, revert)| block.plugins[*i].retarget(revert, &cname.0));
            if let Some(target) = &renamed {
                record.set_data(hickory_proto::rr::RData::CNAME(
                    hickory_proto::rr::rdata::CNAME(target.clone()),
                ));
            }
            kept.push(record);
            if renamed.is_some() {
                let mut answers = wire::Section::default();
                for r in &kept {
                    answers.push_record(wire::Owner::Name(r.name()), r);
                }
                reply.answers = answers;
                return renamed;
            }
        }
        None
    }
}

/// The answer when every plugin of a block passed a query on, as CoreDNS gives it: SERVFAIL
/// (its last plugin finds no next one), or REFUSED from a block without any plugin that sees
/// queries (CoreDNS's zone without a plugin chain).
fn passed(block: &Block) -> Step {
    let rcode = if block.plugins.is_empty() && block.metrics.is_none() {
        ResponseCode::Refused
    } else {
        ResponseCode::ServFail
    };
    Step::Reply(Reply::authoritative(rcode).not_authoritative())
}

/// The block's `dns64`, if it has one.
fn dns64(block: &Block) -> Option<&Dns64> {
    block.plugins.iter().find_map(|p| match p {
        Plugin::Dns64(d) => Some(d),
        _ => None,
    })
}

impl Handler {
    /// `dns64` for an AAAA question it applies to, after the chain: an answer it wants
    /// synthesized has the chain asked again for A, and the answer made of those; where the
    /// chain sends either question upstream, [`Self::forward`] goes on.
    fn dns64(&self, index: usize, dns64: &Dns64, req: &Request, step: Step) -> Step {
        match step {
            Step::Reply(reply) if dns64.wants_reply(&reply, &req.name) => {
                match ask(&self.blocks[index], &req.for_type(RecordType::A)) {
                    Asked::Reply(a) => {
                        self.translated(index);
                        Step::Reply(dns64.synthesize(&req.name, &reply, &a))
                    }
                    Asked::Upstream(forward, slot) => Step::Forward {
                        forward,
                        slot,
                        then: Then::Synthesize(Box::new(reply)),
                    },
                    Asked::Nothing => Step::Reply(reply),
                }
            }
            Step::Forward {
                forward,
                slot,
                then: Then::Answer,
            } => Step::Forward {
                forward,
                slot,
                then: Then::Dns64,
            },
            step => step,
        }
    }

    /// `dns64` made an answer in block `index`: `coredns_dns64_requests_translated_total`.
    fn translated(&self, index: usize) {
        if let Some(metrics) = self.metrics[index] {
            crate::metrics::metrics().dns64_translated(metrics);
        }
    }

    /// The A answer for `dns64`'s synthesis of an AAAA answer, asked of block `index`'s chain
    /// and, when it sends it there, of the upstream. `None` when no upstream answered.
    async fn dns64_a(
        &self,
        index: usize,
        req: &Request,
        query: &[u8],
        msg: &Message,
    ) -> Option<Reply> {
        match ask(&self.blocks[index], &req.for_type(RecordType::A)) {
            Asked::Reply(a) => Some(a),
            Asked::Upstream(forward, slot) => {
                let response = upstream(
                    &forward,
                    query,
                    msg,
                    &req.name,
                    RecordType::A,
                    req.transport,
                )
                .await;
                drop(slot);
                Reply::reowned(&response?, Owners::Question)
            }
            // Nothing holds the name's addresses: no records to make.
            Asked::Nothing => Some(Reply::authoritative(ResponseCode::NoError)),
        }
    }
}

/// How many CNAME targets outside the zones one answer follows (CoreDNS's lookup loop stops at
/// 8 too).
const MAX_FOLLOWS: usize = 8;

impl Handler {
    /// CoreDNS's upstream lookup for a CNAME that leaves the zones (an ExternalName service's,
    /// a zone file's): its target asked of the server as a query of its own, routed to the
    /// block with the longest zone holding it (the same block when the server has views, or
    /// none holds it), and the records found added after the CNAMEs; a target whose answer
    /// leaves its zones in turn is followed too, up to [`MAX_FOLLOWS`]. When a block forwards a
    /// target, the upstream's answer is added in [`Handler::forward`]. A target nothing
    /// answers leaves the CNAMEs alone. Where the reply asks for it (`Reply::follow_negative`,
    /// `file`), the last target's rcode is the answer's ([`settle`]).
    fn follow(&self, block: &Block, req: &Request, mut reply: Reply) -> Step {
        let negative = reply.follow_negative.take();
        let mut next = reply.follow.take();
        let mut hops = 0;
        while let Some(target) = next.take() {
            hops += 1;
            let lower = LowerName::new(&target);
            let routed = match &self.views {
                None => self
                    .zones
                    .longest_index(&lower)
                    .and_then(|zone| self.routes.get(zone))
                    .map(|&(index, _)| &*self.blocks[index]),
                Some(_) => None,
            };
            match ask(routed.unwrap_or(block), &req.for_name(target.clone())) {
                Asked::Reply(theirs) => {
                    if let Some(whole) = theirs.reowned_whole(&target, req.qtype) {
                        reply.append_answers(&whole);
                    }
                    if hops < MAX_FOLLOWS {
                        next.clone_from(&theirs.follow);
                    }
                    if next.is_none() {
                        settle(&mut reply, negative.as_deref(), Some(&theirs));
                    }
                }
                Asked::Upstream(forward, slot) => {
                    return Step::Forward {
                        forward,
                        slot,
                        then: Then::Follow(Box::new(Follow {
                            reply,
                            target,
                            negative,
                        })),
                    };
                }
                // A block holds the name and nothing in it answers: SERVFAIL, as the
                // server answers the lookup.
                Asked::Nothing if routed.is_some() => {
                    settle(&mut reply, negative.as_deref(), None);
                }
                Asked::Nothing => {}
            }
        }
        Step::Reply(reply)
    }
}

/// An answer's rcode and authority section from its last CNAME target's answer (`None`: the
/// lookup failed), as CoreDNS's file plugin makes them when `negative` (the zone's SOA) is
/// given: NXDOMAIN and NODATA with the SOA, SERVFAIL kept; otherwise left as they are.
fn settle(reply: &mut Reply, negative: Option<&wire::Section>, theirs: Option<&Reply>) {
    let Some(soa) = negative else {
        return;
    };
    match theirs.map_or(ResponseCode::ServFail, |t| t.rcode) {
        ResponseCode::NXDomain => {
            reply.rcode = ResponseCode::NXDomain;
            reply.authority = soa.clone();
        }
        ResponseCode::NoError if theirs.is_some_and(|t| t.answers.is_empty()) => {
            reply.authority = soa.clone();
        }
        ResponseCode::ServFail => reply.rcode = ResponseCode::ServFail,
        _ => {}
    }
}

impl Handler {
    /// Writes the client's answer from what the upstream gave (through the cache when there
    /// is one), after block `index`'s finish phase: as received, cut with TC when too large;
    /// a stale answer or SERVFAIL when no upstream answered. Returns its rcode.
    #[allow(clippy::too_many_arguments)]
    fn answer_forwarded(
        &self,
        index: usize,
        forward: &crate::plugin::Forward,
        query: &[u8],
        msg: &Message,
        exchanged: Result<Vec<u8>, crate::plugin::forward::ForwardError>,
        limit: usize,
        out: &mut Vec<u8>,
    ) -> Option<u16> {
        let block = self.blocks.get(index)?;
        let question = msg.queries().first()?;
        let key = (
            question.name(),
            u16::from(question.query_type()),
            dnssec_ok(msg),
        );
        let mut reply = match exchanged {
            Ok(mut response) => match forward.remember(key, &response) {
                Some(cached) => cached,
                None if response.len() <= limit => {
                    self.finish_wire(block, &mut response);
                    *out = response;
                    return Header::of(out).map(|h| u16::from(h.rcode_low()));
                }
                None => {
                    // Too large for the client over UDP: as many whole records as fit, with TC.
                    Reply::reowned(&response, Owners::Question).unwrap_or_else(|| {
                        let upstream = Header::of(&response);
                        let rcode = upstream.map_or(0, |h| h.rcode_low());
                        let mut header = Reply::authoritative(ResponseCode::from_low(rcode));
                        header.authoritative = upstream.is_some_and(|h| h.authoritative());
                        header.recursion_available =
                            upstream.is_some_and(|h| h.recursion_available());
                        header
                    })
                }
            },
            // The error goes to the observers (`errors`) with the response.
            Err(_) => match forward.stale(key) {
                Some(stale) => stale,
                None => {
                    let failed = Reply::authoritative(ResponseCode::ServFail).not_authoritative();
                    encode(query, msg, &failed, limit, out);
                    let _ = forward.remember(key, out);
                    return Some(u16::from(ResponseCode::ServFail));
                }
            },
        };
        self.finish(block, msg, &mut reply);
        encode(query, msg, &reply, limit, out);
        Some(u16::from(reply.rcode))
    }
}

/// `req` asked of `block`'s chain: the first plugin that does not pass it on answers it, or
/// sends it upstream.
fn ask(block: &Block, req: &Request) -> Asked {
    ask_plugins(&block.plugins, req)
}

/// [`ask`] of some of a block's plugins, in order.
fn ask_plugins(plugins: &[Plugin], req: &Request) -> Asked {
    for plugin in plugins {
        match (plugin.serve(req), plugin) {
            (Outcome::Next, _) => {}
            (Outcome::Reply(reply), _) => return Asked::Reply(reply),
            (Outcome::Forward(slot), Plugin::Forward(forward) | Plugin::Grpc(forward)) => {
                return Asked::Upstream(Arc::clone(forward), slot);
            }
            // Only `forward` and `grpc` send queries upstream.
            (Outcome::Forward(_), _) => return Asked::Nothing,
        }
    }
    Asked::Nothing
}

/// [`ask`] of the plugins after `forward` in `block`'s chain: where `grpc { fallthrough }`
/// sends a query its upstreams had no answer for.
fn ask_after(block: &Block, forward: &Arc<Forward>, req: &Request) -> Asked {
    let Some(at) = block.plugins.iter().position(|p| match p {
        Plugin::Forward(f) | Plugin::Grpc(f) => Arc::ptr_eq(f, forward),
        _ => false,
    }) else {
        return Asked::Nothing;
    };
    ask_plugins(&block.plugins[at + 1..], req)
}

/// The query's question asked again for `name` (an autopath candidate, a CNAME's target) of
/// `forward`'s upstreams, and the answer kept in its cache: how a walk or a follow goes on when
/// the chain sends a name upstream. `None` when no upstream answered.
async fn upstream(
    forward: &Forward,
    query: &[u8],
    msg: &Message,
    name: &Name,
    qtype: RecordType,
    transport: Transport,
) -> Option<Vec<u8>> {
    let asked = candidate_query(query, name, qtype)?;
    let response = forward
        .exchange(&asked, transport == Transport::Tcp)
        .await
        .ok()?;
    let _ = forward.remember((name, u16::from(qtype), dnssec_ok(msg)), &response);
    Some(response)
}

/// `query` with its question replaced by `name` of `qtype` (the rest, OPT included, as sent).
fn candidate_query(query: &[u8], name: &Name, qtype: RecordType) -> Option<Vec<u8>> {
    let end = wire::question_end(query)?;
    let mut out = query[..HEADER_LEN].to_vec();
    out.extend(wire::name_bytes(name));
    out.extend_from_slice(&u16::from(qtype).to_be_bytes());
    out.extend_from_slice(&query[end - 2..]);
    Some(out)
}

/// The query's EDNS DO bit.
fn dnssec_ok(msg: &Message) -> bool {
    msg.extensions()
        .as_ref()
        .is_some_and(|e| e.flags().dnssec_ok)
}

impl Reply {
    fn not_authoritative(mut self) -> Self {
        self.authoritative = false;
        self
    }
}

/// The largest response the client takes: its EDNS payload size (at least 512) over UDP, 512
/// without EDNS, 64K over TCP.
fn size_limit(transport: Transport, edns_payload: Option<u16>) -> usize {
    match (transport, edns_payload) {
        (Transport::Tcp, _) => TCP_LIMIT,
        (Transport::Udp, Some(payload)) => usize::from(payload).max(PLAIN_UDP_LIMIT),
        (Transport::Udp, None) => PLAIN_UDP_LIMIT,
    }
}

/// The per-query metrics of a block counted under `metrics`, when it has `prometheus`.
#[allow(clippy::too_many_arguments)]
fn count(
    metrics: Option<u16>,
    zone: u16,
    src: SocketAddr,
    transport: Transport,
    qtype: u16,
    limit: usize,
    rcode: u16,
    out: &[u8],
    started: Instant,
) {
    if let Some(index) = metrics {
        crate::metrics::metrics().query(Observed {
            route: Route { block: index, zone },
            tcp: transport == Transport::Tcp,
            v6: src.ip().to_canonical().is_ipv6(),
            qtype,
            // CoreDNS's request size: the client's buffer, at least 512, 64K over TCP.
            size: limit,
            rcode,
            seconds: started.elapsed().as_secs_f64(),
            response_size: out.len(),
        });
    }
}

/// The query's TSIG record: `None` without one, `Some(None)` when one is not the last record.
fn tsig_of(query: &[u8]) -> Option<Option<wire::RecordSpan>> {
    const TSIG: u16 = 250;
    let header = Header::of(query)?;
    let total = usize::from(header.answers())
        + usize::from(header.authority())
        + usize::from(header.additional());
    if total == 0 {
        return None;
    }
    // One pass, nothing allocated: the first TSIG, and how many records read.
    let mut read = 0;
    let mut found = None;
    for span in wire::records_after_question(query).map_while(|r| r) {
        if span.rtype == TSIG && found.is_none() {
            found = Some((read, span));
        }
        read += 1;
    }
    let (at, span) = found?;
    let last = at + 1 == read && read == total && header.additional() > 0;
    Some(last.then_some(span))
}

/// Appends to `out` (an encoded response to `query`) the unsigned TSIG record of RFC 8945 §5.2
/// for the query's `tsig`: its key and algorithm, time and fudge, no MAC, the original ID, error
/// BADKEY. `false` when the query's TSIG does not read.
fn bad_key(query: &[u8], tsig: &wire::RecordSpan, out: &mut Vec<u8>) -> bool {
    const BADKEY: u16 = 17;
    let mut key = [0u8; wire::MAX_NAME];
    let Some((key_len, _)) = wire::read_name(query, tsig.start, &mut key, wire::Pointers::Follow)
    else {
        return false;
    };
    let mut algorithm = [0u8; wire::MAX_NAME];
    let Some((alg_len, at)) = wire::read_name(
        query,
        tsig.data.start,
        &mut algorithm,
        wire::Pointers::Follow,
    ) else {
        return false;
    };
    // Time signed (6), fudge (2), MAC size (2), MAC, original ID (2).
    let Some(fixed) = query.get(at..at + 10) else {
        return false;
    };
    let mac_len = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
    let Some(original_id) = query.get(at + 10 + mac_len..at + 12 + mac_len) else {
        return false;
    };
    if at + 12 + mac_len > tsig.data.end {
        return false;
    }
    let mut data = algorithm[..alg_len].to_vec();
    data.extend_from_slice(&fixed[..8]);
    data.extend_from_slice(&[0, 0]);
    data.extend_from_slice(original_id);
    data.extend_from_slice(&BADKEY.to_be_bytes());
    data.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&key[..key_len]);
    out.extend_from_slice(&250u16.to_be_bytes());
    out.extend_from_slice(&255u16.to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(&(data.len() as u16).to_be_bytes());
    out.extend_from_slice(&data);
    let Some(mut header) = HeaderMut::of(out) else {
        return false;
    };
    let counts = header.get();
    let (answers, authority, additional) = (
        counts.answers(),
        counts.authority(),
        counts.additional() + 1,
    );
    header.set_counts(answers, authority, additional);
    true
}

/// A response of just a header: the query's ID, opcode and RD, the given rcode, no sections.
/// Used when the query cannot be parsed far enough to echo its question.
fn header_only(query: &[u8], rcode: ResponseCode, out: &mut Vec<u8>) {
    out.clear();
    let Some(query) = Header::of(query) else {
        return;
    };
    out.extend_from_slice(&query.id());
    // QR=1, the query's opcode and RD; AA, TC, RA, Z, AD, CD clear.
    let [hi, _] = query.response_flags(false, false, 0, false);
    out.extend_from_slice(&[hi, rcode.low()]);
    out.extend_from_slice(&[0; 8]);
}

/// Writes the response: the query's ID, opcode, RD and CD; the question exactly as sent;
/// the reply's sections; an OPT when the query had one. When that is over `limit`, the
/// sections are left out and TC is set.
fn encode(query: &[u8], msg: &Message, reply: &Reply, limit: usize, out: &mut Vec<u8>) {
    let (Some(question_end), Some(asked)) = (wire::question_end(query), Header::of(query)) else {
        header_only(query, ResponseCode::FormErr, out);
        return;
    };
    // The OPT record, with the reply's extended error as its option.
    let option = reply.ede.as_ref().map(|e| e.option()).unwrap_or_default();
    let opt = msg.extensions().as_ref().map(|e| {
        let mut o = wire::opt(EDNS_PAYLOAD, reply.rcode.high(), e.flags().dnssec_ok);
        o[9..11].copy_from_slice(&(option.len() as u16).to_be_bytes());
        o
    });
    let opt_len = opt.map_or(0, |o| o.len() + option.len());
    let flags = |truncated: bool| {
        asked.response_flags(
            reply.authoritative,
            truncated,
            reply.rcode.low(),
            reply.recursion_available,
        )
    };
    let header = |out: &mut Vec<u8>, truncated: bool, counts: [u16; 3]| {
        out.clear();
        out.extend_from_slice(&asked.id());
        out.extend_from_slice(&flags(truncated));
        out.extend_from_slice(&1u16.to_be_bytes());
        for c in counts {
            out.extend_from_slice(&c.to_be_bytes());
        }
        out.extend_from_slice(&query[HEADER_LEN..question_end]);
    };
    let opt_count = u16::from(opt.is_some());
    let sections = [&reply.answers, &reply.authority, &reply.additional];
    let whole = question_end + sections.iter().map(|s| s.bytes.len()).sum::<usize>() + opt_len;
    if whole <= limit {
        let counts = [
            reply.answers.count,
            reply.authority.count,
            reply.additional.count + opt_count,
        ];
        header(out, false, counts);
        for s in sections {
            out.extend_from_slice(&s.bytes);
        }
    } else {
        // Too large: as CoreDNS (miekg/dns's Truncate), whole records in order (answers,
        // authority, additional) while they fit, the OPT kept, and TC set.
        let room = limit.saturating_sub(opt_len);
        let mut counts = [0u16, 0, 0];
        let mut kept: Vec<&[u8]> = Vec::new();
        let mut len = question_end;
        'fill: for (count, section) in counts.iter_mut().zip(sections) {
            for record in wire::records(&section.bytes).unwrap_or_default() {
                if len + record.len() > room {
                    break 'fill;
                }
                len += record.len();
                *count += 1;
                kept.push(record);
            }
        }
        counts[2] += opt_count;
        header(out, true, counts);
        for record in kept {
            out.extend_from_slice(record);
        }
    }
    if let Some(o) = opt {
        out.extend_from_slice(&o);
        out.extend_from_slice(&option);
    }
}

#[cfg(test)]
mod tests;
