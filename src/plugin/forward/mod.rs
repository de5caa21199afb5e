//! The `forward` plugin: names nothing here holds go to upstream resolvers, as CoreDNS's
//! `forward` sends them.
//!
//! Deciding is synchronous ([`Forward::serve`] says whether a query is forwarded, or REFUSED
//! over `max_concurrent`); the exchange is async ([`Forward::exchange`]), run by the packet
//! loops in a task of its own so a slow upstream never holds up other queries.
//!
//! Each upstream query gets a random ID and a fresh socket (a random source port); a UDP reply
//! is taken only from the upstream's address (the socket is connected), with the same ID, the
//! QR bit and the same question — anything else is ignored until the timeout. A truncated
//! reply is asked again over TCP. An upstream that fails `max_fails` times in a row is down
//! until a health check (`. IN NS`) gets an answer from it; while every upstream is down,
//! they are tried anyway.

pub mod grpc;
pub mod proxy;
pub mod setup;

pub use setup::{ForwardConfig, Forwards, Policy};

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::time::Duration;

use rand::Rng;
use rand::seq::SliceRandom;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tracing::{debug, warn};

use hickory_proto::rr::{LowerName, Name};

use super::cache::{Cache, Key, Lookup};
use super::{Outcome, Phases, Request};
use crate::wire::{self, HEADER_LEN, Header, HeaderMut};

/// How long a forwarded query may take over all upstreams tried.
pub(crate) const TOTAL_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest upstream reply read over UDP.
const UDP_BUFFER: usize = 65535;

/// Why an exchange with an upstream failed.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// Worded as Go's network errors end, so `errors { consolidate ... ".* i/o timeout$" }`
    /// rules written for CoreDNS match it.
    #[error("upstream {0}: i/o timeout")]
    Timeout(SocketAddr),
    #[error("upstream {addr}: {source}")]
    Io {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("upstream {0}: the reply does not match the query")]
    Mismatch(SocketAddr),
    #[error("every upstream failed")]
    AllFailed,
    /// Every upstream is down and `failfast_all_unhealthy_upstreams` is set (CoreDNS's words).
    #[error("no healthy proxies")]
    NoHealthy,
    #[error("the query cannot be forwarded: {0}")]
    BadQuery(&'static str),
    /// A gRPC call failed (`grpc`).
    #[error("upstream {addr}: {message}")]
    Grpc { addr: SocketAddr, message: String },
}

#[derive(Debug)]
struct Upstream {
    addr: SocketAddr,
    /// Consecutive failures; at `max_fails` the upstream is down.
    fails: AtomicU32,
    /// Whether a health checker is running for it.
    checking: AtomicBool,
}

#[derive(Debug)]
pub struct Forward {
    /// Itself, for the background refreshes `prefetch` starts.
    me: std::sync::Weak<Forward>,
    config: ForwardConfig,
    /// `cache` in the same server block: upstream answers kept for their TTL.
    cache: Option<Cache>,
    upstreams: Vec<Arc<Upstream>>,
    in_flight: Arc<AtomicUsize>,
    next: AtomicUsize,
    /// The block's next `forward` line: where `next RCODE...` sends a query on.
    successor: Option<Arc<Forward>>,
    /// The block's `dnstap`: each exchange with an upstream is tapped (FORWARDER_*).
    taps: Option<Arc<crate::plugin::dnstap::Dnstap>>,
    /// `grpc`: the upstreams are called over gRPC.
    grpc: Option<grpc::GrpcClient>,
}

/// How a query or a health check reaches one upstream.
#[derive(Debug, Clone, Copy)]
struct Link {
    /// How long the upstream has to answer (`read_timeout`).
    timeout: Duration,
    /// The address to send from (`source_address`).
    source: Option<IpAddr>,
}

impl Default for Link {
    /// CoreDNS's read timeout, from any address.
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(2),
            source: None,
        }
    }
}

/// A cached answer to fetch again in the background (`prefetch`, and `serve_stale`'s
/// immediate mode), so the next hits find it fresh: left by [`Forward::serve`] in the reply
/// ([`super::After`]) for the loop to run once the answer is sent.
#[derive(Debug, Clone)]
pub struct Refresh {
    forward: Arc<Forward>,
    key: Key,
}

impl PartialEq for Refresh {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.forward, &other.forward) && self.key == other.key
    }
}

impl Refresh {
    /// The refresh, as a task to run.
    pub fn run(self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let Self { forward, key } = self;
        async move {
            let (Some(cache), Some(name)) = (&forward.cache, key.name()) else {
                return;
            };
            match forward.exchange(&key.query(), false).await {
                // Only an answer replaces what is kept (a SERVFAIL would not serve better).
                Ok(response)
                    if Header::of(&response).is_some_and(|h| matches!(h.rcode_low(), 0 | 3)) =>
                {
                    cache.store(key, &name, &response);
                }
                _ => cache.refresh_failed(&key),
            }
        }
    }
}

/// How many queries may wait on upstreams at once without `max_concurrent` (CoreDNS sets no
/// bound): each holds a socket and a task for up to 5 s, so a flood of queries to a silent
/// upstream must not pile them up without end. Beyond it: REFUSED, as over `max_concurrent`.
const IN_FLIGHT_CEILING: usize = 10_000;

/// A forwarded query's place under `max_concurrent`, given back when dropped.
#[derive(Debug)]
pub struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Phases for Forward {
    const ANSWERS: bool = true;

    /// Whether this query is forwarded: `Next` outside `from` or inside `except`; REFUSED
    /// beyond `max_concurrent`.
    fn serve(&self, req: &Request) -> Outcome {
        if !self.takes(&req.lower) {
            return Outcome::Next;
        }
        if let Some(cache) = &self.cache
            && cache.covers(&req.lower)
        {
            let key = Key::new(&req.lower, u16::from(req.qtype), req.dnssec_ok);
            if let Lookup::Fresh {
                mut reply,
                prefetch,
            } = cache.lookup(&key)
            {
                if prefetch && let Some(forward) = self.me.upgrade() {
                    // Done by the loop once the answer is sent: nothing is spawned here.
                    reply.after = Some(Box::new(super::After::Refresh(Refresh { forward, key })));
                }
                return Outcome::Reply(reply);
            }
        }
        let now = self.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        let slot = InFlight(Arc::clone(&self.in_flight));
        if now > self.config.max_concurrent.unwrap_or(IN_FLIGHT_CEILING) {
            drop(slot);
            crate::metrics::metrics().forward_refused();
            return Outcome::Reply(super::Reply::authoritative(
                hickory_proto::op::ResponseCode::Refused,
            ));
        }
        Outcome::Forward(slot)
    }
}

impl Forward {
    /// The plugin for one `forward` line, asking `to` (its upstreams, resolved); `successor`
    /// is the block's next line.
    pub fn new(
        config: &ForwardConfig,
        to: Vec<SocketAddr>,
        cache: Option<Cache>,
        successor: Option<Arc<Forward>>,
        taps: Option<Arc<crate::plugin::dnstap::Dnstap>>,
        grpc: Option<grpc::GrpcClient>,
    ) -> Arc<Self> {
        let upstreams = to
            .iter()
            .map(|&addr| {
                Arc::new(Upstream {
                    addr,
                    fails: AtomicU32::new(0),
                    checking: AtomicBool::new(false),
                })
            })
            .collect();
        Arc::new_cyclic(|me| Self {
            me: me.clone(),
            config: config.clone(),
            cache,
            upstreams,
            in_flight: Arc::new(AtomicUsize::new(0)),
            next: AtomicUsize::new(0),
            successor,
            taps,
            grpc,
        })
    }

    fn link(&self) -> Link {
        Link {
            timeout: self.config.read_timeout,
            source: self.config.source_address,
        }
    }

    /// Whether this `forward` line takes `name`: under FROM, outside its `except` zones.
    fn takes(&self, name: &LowerName) -> bool {
        self.config.from.zone_of(name) && !self.config.except.iter().any(|z| z.zone_of(name))
    }

    /// Whether `grpc { fallthrough }` sends the query for `name` on down the chain after
    /// this exchange: no answer, or NXDOMAIN. Free for a `forward` (no name is lower-cased).
    pub fn falls_through(&self, name: &Name, exchanged: &Result<Vec<u8>, ForwardError>) -> bool {
        let Some(fallthrough) = self
            .config
            .grpc
            .as_ref()
            .map(|g| &g.fallthrough)
            .filter(|f| f.is_set())
        else {
            return false;
        };
        let nxdomain = |r: &Vec<u8>| Header::of(r).is_some_and(|h| h.rcode_low() == 3);
        exchanged.as_ref().map_or(true, nxdomain) && fallthrough.through(&LowerName::new(name))
    }

    /// Whether an upstream's answer goes on to the block's next `forward` (`next RCODE...`,
    /// `next_on_nodata`).
    fn passes_on(&self, reply: &[u8]) -> bool {
        let Some(header) = Header::of(reply) else {
            return false;
        };
        let rcode = u16::from(header.rcode_low());
        self.config.next.contains(&rcode)
            || (self.config.next_on_nodata && rcode == 0 && header.answers() == 0)
    }

    /// Keeps an answer from upstream (or the SERVFAIL given for none) in the cache; returns
    /// it as the cache serves it (TTLs capped) when it was kept.
    pub fn remember(
        &self,
        (name, qtype, dnssec_ok): (&Name, u16, bool),
        response: &[u8],
    ) -> Option<super::Reply> {
        let cache = self.cache.as_ref()?;
        let lower = LowerName::new(name);
        if !cache.covers(&lower) {
            return None;
        }
        cache.store(Key::new(&lower, qtype, dnssec_ok), &lower, response)
    }

    /// A stale answer from the cache, when every upstream failed (`serve_stale`).
    pub fn stale(&self, (name, qtype, dnssec_ok): (&Name, u16, bool)) -> Option<super::Reply> {
        let cache = self.cache.as_ref()?;
        let lower = LowerName::new(name);
        cache.stale(&Key::new(&lower, qtype, dnssec_ok))
    }

    /// Upstreams in the order this query tries them: the policy's order, those that are up
    /// first (all of them when none is, or none under `failfast_all_unhealthy_upstreams`).
    fn order(&self) -> Vec<Arc<Upstream>> {
        let mut all: Vec<Arc<Upstream>> = self.upstreams.clone();
        match self.config.policy {
            Policy::Random => all.shuffle(&mut rand::rng()),
            Policy::RoundRobin => {
                let n = self.next.fetch_add(1, Ordering::Relaxed) % all.len().max(1);
                all.rotate_left(n);
            }
            Policy::Sequential => {}
        }
        let max = self.config.max_fails;
        let down = |u: &Arc<Upstream>| max > 0 && u.fails.load(Ordering::Relaxed) >= max;
        let (up, down): (Vec<_>, Vec<_>) = all.into_iter().partition(|u| !down(u));
        if up.is_empty() {
            crate::metrics::metrics().health_check_broken();
            if self.config.failfast_all_unhealthy_upstreams {
                return Vec::new();
            }
            down
        } else {
            up
        }
    }

    /// Sends `query` (the client's message, as received) upstream and returns the reply,
    /// with the client's ID and question bytes. `tcp`: the client asked over TCP. An answer
    /// whose rcode `next` names (or NODATA, under `next_on_nodata`) is asked again of the
    /// block's next `forward` line that takes the name, as CoreDNS hands it on; none: SERVFAIL.
    pub async fn exchange(&self, query: &[u8], tcp: bool) -> Result<Vec<u8>, ForwardError> {
        let deadline = tokio::time::Instant::now() + TOTAL_TIMEOUT;
        let mut reply = self.exchange_here(query, tcp, deadline).await?;
        let mut this = self;
        while this.passes_on(&reply) {
            let Some(name) = query.get(HEADER_LEN..).and_then(|q| {
                let mut decoder = hickory_proto::serialize::binary::BinDecoder::new(q);
                <Name as hickory_proto::serialize::binary::BinDecodable>::read(&mut decoder).ok()
            }) else {
                break;
            };
            let name = LowerName::new(&name);
            let mut next = this.successor.as_deref();
            while let Some(f) = next.filter(|f| !f.takes(&name)) {
                next = f.successor.as_deref();
            }
            let Some(next) = next else {
                // CoreDNS's "no next plugin found".
                return Err(ForwardError::AllFailed);
            };
            reply = next.exchange_here(query, tcp, deadline).await?;
            this = next;
        }
        Ok(reply)
    }

    /// [`Self::exchange`] with this line's upstreams only.
    async fn exchange_here(
        &self,
        query: &[u8],
        tcp: bool,
        deadline: tokio::time::Instant,
    ) -> Result<Vec<u8>, ForwardError> {
        let question_end =
            wire::question_end(query).ok_or(ForwardError::BadQuery("no question"))?;
        let use_tcp = self.config.force_tcp || (tcp && !self.config.prefer_udp);
        let order = self.order();
        if order.is_empty() {
            return Err(ForwardError::NoHealthy);
        }
        // CoreDNS's cap on attempts that fail (twice the upstreams unless set; 0: none): each
        // upstream is tried once here, so only a smaller cap stops it early.
        let cap = self.config.max_connect_attempts.filter(|&n| n > 0);
        let failovers = order.len();
        let mut last = None;
        let mut kept = None;
        let (mut failed_over, mut errors) = (0, 0u32);
        for upstream in order {
            if tokio::time::Instant::now() >= deadline || cap.is_some_and(|cap| errors >= cap) {
                break;
            }
            let started = std::time::Instant::now();
            let result = tokio::time::timeout_at(
                deadline,
                self.ask(&upstream, query, question_end, use_tcp),
            )
            .await
            .unwrap_or(Err(ForwardError::Timeout(upstream.addr)));
            let rcode = result
                .as_ref()
                .ok()
                .and_then(|r| Header::of(r))
                .map(|h| h.rcode_low());
            let seconds = started.elapsed().as_secs_f64();
            match (&self.grpc, rcode) {
                // As CoreDNS's `grpc`, only calls that brought an answer are counted.
                (Some(_), Some(rcode)) => {
                    crate::metrics::metrics().grpc_called(&upstream.addr, rcode, seconds);
                }
                (Some(_), None) => {}
                (None, _) => crate::metrics::metrics().forwarded(&upstream.addr, rcode, seconds),
            }
            match result {
                Ok(mut reply) => {
                    upstream.fails.store(0, Ordering::Relaxed);
                    if let (Some(mut header), Some(asked)) =
                        (HeaderMut::of(&mut reply), Header::of(query))
                    {
                        header.set_id(asked.id());
                    }
                    reply[HEADER_LEN..question_end]
                        .copy_from_slice(&query[HEADER_LEN..question_end]);
                    // `failover`: this rcode is asked of the next upstream, while one is left;
                    // the last answer stands.
                    let rcode = Header::of(&reply).map_or(0, |h| u16::from(h.rcode_low()));
                    if self.config.failover.contains(&rcode) {
                        failed_over += 1;
                        if failed_over < failovers {
                            kept = Some(reply);
                            continue;
                        }
                    }
                    return Ok(reply);
                }
                Err(error) => {
                    debug!(%error, "forward");
                    self.failed(&upstream);
                    errors += 1;
                    last = Some(error);
                }
            }
        }
        if let Some(reply) = kept {
            return Ok(reply);
        }
        // As CoreDNS: the last upstream's error says why.
        Err(last.unwrap_or(ForwardError::AllFailed))
    }

    /// One upstream, one query: UDP (then TCP if truncated) or TCP.
    async fn ask(
        &self,
        upstream: &Upstream,
        query: &[u8],
        question_end: usize,
        tcp: bool,
    ) -> Result<Vec<u8>, ForwardError> {
        let mut outgoing = query.to_vec();
        let id: u16 = rand::rng().random();
        if let Some(mut header) = HeaderMut::of(&mut outgoing) {
            header.set_id(id.to_be_bytes());
        }
        let question = &query[HEADER_LEN..question_end];
        let link = self.link();
        if let Some(grpc) = &self.grpc {
            return self.call(grpc, upstream, &outgoing, id, question_end).await;
        }
        // The clock is read only for a block with `dnstap`.
        let started = self.taps.as_ref().map(|_| std::time::SystemTime::now());
        let mut local = None;
        let tap = |local: Option<SocketAddr>, tcp: bool, reply: Option<&[u8]>| {
            if let (Some(taps), Some(started)) = (&self.taps, started) {
                taps.forwarded(local, upstream.addr, tcp, query, reply, started);
            }
        };
        if !tcp {
            let reply =
                udp_exchange(upstream.addr, &outgoing, id, question, link, &mut local).await;
            match reply {
                Ok(reply) if Header::of(&reply).is_some_and(|h| !h.truncated()) => {
                    tap(local, false, Some(&reply));
                    return Ok(reply);
                }
                Ok(_) => {}
                Err(e) => {
                    tap(local, false, None);
                    return Err(e);
                }
            }
        }
        let reply = tcp_exchange(upstream.addr, &outgoing, id, question, link, &mut local).await;
        tap(local, true, reply.as_deref().ok());
        reply
    }

    /// One query, one gRPC call (`grpc`): the upstream's answer, or NXDOMAIN for its
    /// NotFound status; an answer to another question is a failure.
    async fn call(
        &self,
        grpc: &grpc::GrpcClient,
        upstream: &Upstream,
        outgoing: &[u8],
        id: u16,
        question_end: usize,
    ) -> Result<Vec<u8>, ForwardError> {
        let addr = upstream.addr;
        let started = self.taps.as_ref().map(|_| std::time::SystemTime::now());
        let called = tokio::time::timeout(self.config.read_timeout, grpc.call(addr, outgoing))
            .await
            .map_err(|_| ForwardError::Timeout(addr))?;
        let reply = match called {
            Ok(reply) => reply,
            Err(grpc::CallError::NotFound) => {
                let mut reply = outgoing[..question_end].to_vec();
                // QR, the query's opcode and RD; NXDOMAIN.
                let flags = [0x80 | (reply[2] & 0x79), 3];
                if let Some(mut header) = HeaderMut::of(&mut reply) {
                    header.set_flags(flags);
                    header.set_counts(0, 0, 0);
                }
                reply
            }
            Err(grpc::CallError::Failed(message)) => {
                return Err(ForwardError::Grpc { addr, message });
            }
        };
        if let (Some(taps), Some(started)) = (&self.taps, started) {
            taps.forwarded(None, addr, true, outgoing, Some(&reply), started);
        }
        if !matches(&reply, id, &outgoing[HEADER_LEN..question_end]) {
            return Err(ForwardError::Mismatch(addr));
        }
        Ok(reply)
    }

    /// Counts a failure; at `max_fails` the upstream goes down and a health checker starts.
    fn failed(&self, upstream: &Arc<Upstream>) {
        let fails = upstream.fails.fetch_add(1, Ordering::Relaxed) + 1;
        let max = self.config.max_fails;
        if max == 0 || fails < max || upstream.checking.swap(true, Ordering::Relaxed) {
            return;
        }
        warn!(upstream = %upstream.addr, "forward: upstream down; health checking it");
        let upstream = Arc::clone(upstream);
        let interval = self.config.health_check;
        let check = Check {
            domain: wire::name_bytes(&self.config.health_check_domain),
            recursion: self.config.health_check_recursion,
            tcp: self.config.force_tcp,
            link: self.link(),
        };
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                if check.probe(upstream.addr).await {
                    upstream.fails.store(0, Ordering::Relaxed);
                    upstream.checking.store(false, Ordering::Relaxed);
                    warn!(upstream = %upstream.addr, "forward: upstream is back");
                    return;
                }
                crate::metrics::metrics().health_check_failed(&upstream.addr);
            }
        });
    }
}

/// A health check: `DOMAIN IN NS` (`.` by default), over TCP under `force_tcp`.
#[derive(Debug)]
struct Check {
    domain: Vec<u8>,
    recursion: bool,
    tcp: bool,
    link: Link,
}

impl Check {
    /// Whether `addr` answers it, whatever the rcode.
    async fn probe(&self, addr: SocketAddr) -> bool {
        let id: u16 = rand::rng().random();
        let query = wire::query(id, &self.domain, 2, self.recursion, None);
        let question = &query[HEADER_LEN..];
        if self.tcp {
            tcp_exchange(addr, &query, id, question, self.link, &mut None)
                .await
                .is_ok()
        } else {
            udp_exchange(addr, &query, id, question, self.link, &mut None)
                .await
                .is_ok()
        }
    }
}

/// Whether `query` (ours, with `id`) gets a reply from `addr` in time, whatever its rcode.
pub(crate) async fn answered(addr: SocketAddr, query: &[u8], id: u16) -> bool {
    let Some(end) = wire::question_end(query) else {
        return false;
    };
    udp_exchange(
        addr,
        query,
        id,
        &query[HEADER_LEN..end],
        Link::default(),
        &mut None,
    )
    .await
    .is_ok()
}

/// Whether `reply` answers the query with `id` and `question` (the name compared without
/// regard to letter case).
fn matches(reply: &[u8], id: u16, question: &[u8]) -> bool {
    let Some(header) = Header::of(reply) else {
        return false;
    };
    reply.len() >= HEADER_LEN + question.len()
        && header.id() == id.to_be_bytes()
        && header.is_response()
        && header.questions() == 1
        && reply[HEADER_LEN..HEADER_LEN + question.len()].eq_ignore_ascii_case(question)
}

async fn udp_exchange(
    addr: SocketAddr,
    query: &[u8],
    id: u16,
    question: &[u8],
    link: Link,
    from: &mut Option<SocketAddr>,
) -> Result<Vec<u8>, ForwardError> {
    let io = |source| ForwardError::Io { addr, source };
    let local = SocketAddr::new(link.source.unwrap_or(unspecified(addr)), 0);
    let socket = UdpSocket::bind(local).await.map_err(io)?;
    socket.connect(addr).await.map_err(io)?;
    *from = socket.local_addr().ok();
    socket.send(query).await.map_err(io)?;
    let mut buf = vec![0u8; UDP_BUFFER];
    let wait = async {
        loop {
            let len = socket.recv(&mut buf).await.map_err(io)?;
            if matches(&buf[..len], id, question) {
                buf.truncate(len);
                return Ok(buf);
            }
            // Not the reply (spoofed, late, or garbled): keep waiting for the real one.
        }
    };
    tokio::time::timeout(link.timeout, wait)
        .await
        .unwrap_or(Err(ForwardError::Timeout(addr)))
}

/// The wildcard address of `addr`'s family.
fn unspecified(addr: SocketAddr) -> IpAddr {
    if addr.is_ipv6() {
        IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
    } else {
        IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
    }
}

async fn tcp_exchange(
    addr: SocketAddr,
    query: &[u8],
    id: u16,
    question: &[u8],
    link: Link,
    from: &mut Option<SocketAddr>,
) -> Result<Vec<u8>, ForwardError> {
    let io = |source| ForwardError::Io { addr, source };
    let exchange = async {
        let mut stream = match link.source {
            None => TcpStream::connect(addr).await.map_err(io)?,
            Some(source) => {
                let socket = if addr.is_ipv6() {
                    tokio::net::TcpSocket::new_v6()
                } else {
                    tokio::net::TcpSocket::new_v4()
                }
                .map_err(io)?;
                socket.bind(SocketAddr::new(source, 0)).map_err(io)?;
                socket.connect(addr).await.map_err(io)?
            }
        };
        *from = stream.local_addr().ok();
        let len = u16::try_from(query.len()).map_err(|_| ForwardError::BadQuery("too long"))?;
        let mut message = Vec::with_capacity(2 + query.len());
        message.extend_from_slice(&len.to_be_bytes());
        message.extend_from_slice(query);
        stream.write_all(&message).await.map_err(io)?;
        let len = stream.read_u16().await.map_err(io)?;
        let mut reply = vec![0u8; usize::from(len)];
        stream.read_exact(&mut reply).await.map_err(io)?;
        if matches(&reply, id, question) {
            Ok(reply)
        } else {
            Err(ForwardError::Mismatch(addr))
        }
    };
    tokio::time::timeout(link.timeout, exchange)
        .await
        .unwrap_or(Err(ForwardError::Timeout(addr)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_must_carry_the_id_the_qr_bit_and_the_question() {
        let question = b"\x03foo\x00\x00\x01\x00\x01";
        let mut reply = vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0];
        reply.extend_from_slice(b"\x03FOO\x00\x00\x01\x00\x01");
        assert!(matches(&reply, 0x1234, question));
        assert!(!matches(&reply, 0x1235, question));
        let mut query_bit = reply.clone();
        HeaderMut::of(&mut query_bit).unwrap().clear_response();
        assert!(!matches(&query_bit, 0x1234, question));
        assert!(!matches(&reply, 0x1234, b"\x03bar\x00\x00\x01\x00\x01"));
        assert!(!matches(&reply[..14], 0x1234, question));
    }
}
