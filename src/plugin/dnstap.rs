//! The `dnstap` directive: each query the block answers and its response, as dnstap messages
//! (CLIENT_QUERY and CLIENT_RESPONSE), and each exchange of the block's `forward` with an
//! upstream (FORWARDER_QUERY and FORWARDER_RESPONSE), sent to a collector over Frame Streams,
//! as CoreDNS's `dnstap` plugin sends them.
//!
//! The answer path only copies what a message needs into a bounded queue (10,000 messages
//! times `queue`); a task beside the server encodes them (protobuf, with `prost`), keeps the
//! connection (a unix socket or TCP, Frame Streams' bidirectional handshake, reconnecting
//! every second while the collector is away) and writes them. A full queue drops messages,
//! counted and logged, never waits.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::sync::mpsc;

use super::{Phases, Seen};
use crate::corefile::{ConfigError, Directive, directive_err};
use crate::plugin::setup::{Building, Context, Setup, SetupError};
use crate::wire::Transport;

const NAME: &str = "dnstap";
/// Messages queued per `queue` unit (CoreDNS's buffer).
const QUEUE_UNIT: usize = 10_000;
/// Frame Streams' content type for dnstap.
const CONTENT_TYPE: &[u8] = b"protobuf:dnstap.Dnstap";
/// How long a collector has to accept the handshake, and the wait between connection tries.
const RETRY: Duration = Duration::from_secs(1);

/// Where messages go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sink {
    Unix(PathBuf),
    /// `HOST:PORT`.
    Tcp(String),
}

/// One `dnstap SOCKET [full] [WRITEBUFFER] [QUEUE] { identity; version; extra; skipverify }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tap {
    pub sink: Sink,
    /// Whether messages carry the wire-format query and response.
    pub full: bool,
    pub queue: usize,
    pub identity: Vec<u8>,
    pub version: Vec<u8>,
    /// With `{/LABEL}` metadata placeholders, filled per query.
    pub extra: Option<String>,
}

/// A block's `dnstap` lines: each gets every message.
#[derive(Debug, Clone)]
pub struct DnstapConfig {
    pub taps: Vec<Tap>,
}

fn err(d: &Directive, message: impl Into<String>) -> ConfigError {
    directive_err(d, NAME, message)
}

fn tap(d: &Directive) -> Result<Tap, ConfigError> {
    let [socket, rest @ ..] = d.args.as_slice() else {
        return Err(err(d, "needs a SOCKET"));
    };
    if socket == "listen" {
        return Err(err(
            d,
            "dnstap listen is not supported yet: run the collector as a server (fstrm_capture, \
             dnstap) and give its socket",
        ));
    }
    let sink = if let Some(path) = socket.strip_prefix("unix://") {
        Sink::Unix(PathBuf::from(path))
    } else if let Some(addr) = socket.strip_prefix("tcp://") {
        if !addr.contains(':') {
            return Err(err(d, format!("{socket}: needs a port")));
        }
        Sink::Tcp(addr.to_string())
    } else if socket.starts_with("tls://") {
        return Err(err(
            d,
            "tls:// sockets are not supported yet: use tcp:// or a unix socket",
        ));
    } else if socket.contains("://") {
        return Err(err(d, format!("{socket}: unknown scheme")));
    } else {
        Sink::Unix(PathBuf::from(socket))
    };
    // By position, as CoreDNS reads them: `full` second, then the write buffer and the queue.
    let full = rest.first().is_some_and(|a| a == "full");
    let number =
        |at: usize, what: &str, max: usize, unit: &str| -> Result<Option<usize>, ConfigError> {
            let Some(arg) = rest.get(at) else {
                return Ok(None);
            };
            let n: i64 = arg
                .parse()
                .map_err(|_| err(d, format!("dnstap: invalid {what} {arg:?}")))?;
            if !(1..=max as i64).contains(&n) {
                return Err(err(
                    d,
                    format!("dnstap: {what} must be between 1 and {max} ({unit}): {n}"),
                ));
            }
            Ok(Some(n as usize))
        };
    // The TCP write buffer in MiB: checked and accepted (writes are batched from the queue).
    let _write_buffer = number(1, "MultipleTcpWriteBuf", 1024, "MiB units")?;
    let queue = number(2, "MultipleQueue", 4096, "x10k messages")?.unwrap_or(1) * QUEUE_UNIT;
    let mut t = Tap {
        sink,
        full,
        queue,
        identity: super::chaos::hostname().into_bytes(),
        version: format!("clusterdns-{}", env!("CARGO_PKG_VERSION")).into_bytes(),
        extra: None,
    };
    for o in &d.block {
        let value = || match o.args.as_slice() {
            [v] => Ok(v.clone().into_bytes()),
            _ => Err(err(o, format!("{} takes one value", o.name))),
        };
        match o.name.as_str() {
            "identity" => t.identity = value()?,
            "version" => t.version = value()?,
            "extra" => t.extra = Some(String::from_utf8_lossy(&value()?).into_owned()),
            // Only for tls:// sockets, which are refused above.
            "skipverify" => {}
            other => return Err(err(o, format!("unknown property {other:?}"))),
        }
    }
    Ok(t)
}

/// `extra` with each `{/LABEL}` placeholder as `value` gives it (`-` for none), as CoreDNS's
/// replacer fills it.
fn fill(text: &str, value: impl Fn(&str) -> Option<String>) -> Vec<u8> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find("{/") {
        out.push_str(&rest[..open]);
        match rest[open..].find('}') {
            Some(close) => {
                let label = &rest[open + 2..open + close];
                out.push_str(value(label).as_deref().unwrap_or("-"));
                rest = &rest[open + close + 1..];
            }
            None => {
                rest = &rest[open..];
                break;
            }
        }
    }
    out.push_str(rest);
    out.into_bytes()
}

impl Setup for DnstapConfig {
    fn parse(d: &Directive, _cx: &Context<'_>) -> Result<Self, ConfigError> {
        Ok(Self {
            taps: vec![tap(d)?],
        })
    }

    /// Several `dnstap` lines: each collector gets every message.
    fn merge(&mut self, later: Self) -> bool {
        self.taps.extend(later.taps);
        true
    }

    fn build(&self, b: &mut Building<'_>) -> Result<(), SetupError> {
        let listen = b.listen.first().copied();
        let mut senders = Vec::with_capacity(self.taps.len());
        for tap in &self.taps {
            let (tx, rx) = mpsc::channel(tap.queue);
            let dropped = Arc::new(AtomicU64::new(0));
            b.background.push(Box::pin(write(
                Arc::new(tap.clone()),
                rx,
                Arc::clone(&dropped),
            )));
            senders.push(Sender {
                tx,
                dropped,
                extra: tap.extra.clone(),
            });
        }
        b.chain.push(super::Plugin::Dnstap(Arc::new(Dnstap {
            full: self.taps.iter().any(|t| t.full),
            server: listen.map(|l| (l.ip, l.port)),
            senders,
        })));
        Ok(())
    }
}

#[derive(Debug)]
struct Sender {
    tx: mpsc::Sender<Event>,
    dropped: Arc<AtomicU64>,
    /// Its `extra`, filled per query.
    extra: Option<String>,
}

/// The plugin: what it keeps of each query for the writers.
#[derive(Debug)]
pub struct Dnstap {
    /// Whether any collector wants the messages themselves.
    full: bool,
    /// The block's address (`None`: the wildcard) and port, the response address.
    server: Option<(Option<std::net::IpAddr>, u16)>,
    senders: Vec<Sender>,
}

/// One query and its response, as observed: a client's, or one `forward` exchanged with an
/// upstream.
#[derive(Debug, Clone)]
struct Event {
    /// Who asked: the client, or (an upstream's exchange) clusterdns's own socket.
    client: std::net::SocketAddr,
    server: Option<(Option<std::net::IpAddr>, u16)>,
    /// The upstream asked: FORWARDER_QUERY and, when it answered, FORWARDER_RESPONSE.
    upstream: Option<std::net::SocketAddr>,
    /// Whether there is a response (an upstream that did not answer has none).
    answered: bool,
    tcp: bool,
    query_time: SystemTime,
    response_time: SystemTime,
    query: Option<Arc<[u8]>>,
    response: Option<Arc<[u8]>>,
    extra: Option<Vec<u8>>,
}

impl Phases for Dnstap {
    /// Each message carries when its query arrived.
    const TIMED: bool = true;

    fn observe(&self, seen: &Seen<'_>) {
        let response_time = SystemTime::now();
        let event = Event {
            client: seen.src,
            server: self.server,
            upstream: None,
            answered: true,
            tcp: seen.transport == Transport::Tcp,
            query_time: response_time
                .checked_sub(seen.started.elapsed())
                .unwrap_or(response_time),
            response_time,
            query: self.full.then(|| Arc::from(seen.query)),
            response: self.full.then(|| Arc::from(seen.response)),
            extra: None,
        };
        let name = std::cell::OnceCell::new();
        for sender in &self.senders {
            let mut event = event.clone();
            event.extra = sender.extra.as_deref().map(|text| {
                fill(text, |label| {
                    let name = name.get_or_init(|| question_name(seen)).as_ref()?;
                    seen.meta.value(label, name, seen.src, seen.query)
                })
            });
            if sender.tx.try_send(event).is_err() {
                sender.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

impl Dnstap {
    /// `forward` asked `upstream` (from `local`, over TCP or UDP) the client's `query` at
    /// `started`, and got `reply` (or nothing): FORWARDER_QUERY and FORWARDER_RESPONSE, as
    /// CoreDNS's forward plugin taps them (their `extra` without metadata).
    pub fn forwarded(
        &self,
        local: Option<std::net::SocketAddr>,
        upstream: std::net::SocketAddr,
        tcp: bool,
        query: &[u8],
        reply: Option<&[u8]>,
        started: SystemTime,
    ) {
        let unspecified = if upstream.is_ipv6() {
            std::net::Ipv6Addr::UNSPECIFIED.into()
        } else {
            std::net::Ipv4Addr::UNSPECIFIED.into()
        };
        let event = Event {
            client: local.unwrap_or(std::net::SocketAddr::new(unspecified, 0)),
            server: None,
            upstream: Some(upstream),
            answered: reply.is_some(),
            tcp,
            query_time: started,
            response_time: SystemTime::now(),
            query: self.full.then(|| Arc::from(query)),
            response: self.full.then(|| Arc::from(reply.unwrap_or_default())),
            extra: None,
        };
        for sender in &self.senders {
            let mut event = event.clone();
            event.extra = sender.extra.as_deref().map(|text| fill(text, |_| None));
            if sender.tx.try_send(event).is_err() {
                sender.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// The question's name of what `observe` saw.
fn question_name(seen: &Seen<'_>) -> Option<hickory_proto::rr::LowerName> {
    let name = match seen.parsed {
        Some(msg) => msg.queries().first()?.name().clone(),
        None => hickory_proto::op::Message::from_vec(seen.query)
            .ok()?
            .queries()
            .first()?
            .name()
            .clone(),
    };
    Some(hickory_proto::rr::LowerName::new(&name))
}

/// The dnstap protobuf schema (dnstap.proto), the fields clusterdns writes.
mod schema {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Dnstap {
        #[prost(bytes = "vec", optional, tag = "1")]
        pub identity: Option<Vec<u8>>,
        #[prost(bytes = "vec", optional, tag = "2")]
        pub version: Option<Vec<u8>>,
        #[prost(bytes = "vec", optional, tag = "3")]
        pub extra: Option<Vec<u8>>,
        #[prost(message, optional, tag = "14")]
        pub message: Option<Message>,
        /// MESSAGE (1).
        #[prost(int32, required, tag = "15")]
        pub r#type: i32,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Message {
        /// CLIENT_QUERY (5), CLIENT_RESPONSE (6).
        #[prost(int32, required, tag = "1")]
        pub r#type: i32,
        /// INET (1), INET6 (2).
        #[prost(int32, optional, tag = "2")]
        pub socket_family: Option<i32>,
        /// UDP (1), TCP (2).
        #[prost(int32, optional, tag = "3")]
        pub socket_protocol: Option<i32>,
        #[prost(bytes = "vec", optional, tag = "4")]
        pub query_address: Option<Vec<u8>>,
        #[prost(bytes = "vec", optional, tag = "5")]
        pub response_address: Option<Vec<u8>>,
        #[prost(uint32, optional, tag = "6")]
        pub query_port: Option<u32>,
        #[prost(uint32, optional, tag = "7")]
        pub response_port: Option<u32>,
        #[prost(uint64, optional, tag = "8")]
        pub query_time_sec: Option<u64>,
        #[prost(fixed32, optional, tag = "9")]
        pub query_time_nsec: Option<u32>,
        #[prost(bytes = "vec", optional, tag = "10")]
        pub query_message: Option<Vec<u8>>,
        #[prost(uint64, optional, tag = "12")]
        pub response_time_sec: Option<u64>,
        #[prost(fixed32, optional, tag = "13")]
        pub response_time_nsec: Option<u32>,
        #[prost(bytes = "vec", optional, tag = "14")]
        pub response_message: Option<Vec<u8>>,
    }
}

const CLIENT_QUERY: i32 = 5;
const CLIENT_RESPONSE: i32 = 6;
const FORWARDER_QUERY: i32 = 7;
const FORWARDER_RESPONSE: i32 = 8;

/// An IP's bytes, as dnstap carries addresses.
fn ip_bytes(ip: std::net::IpAddr) -> Vec<u8> {
    match ip {
        std::net::IpAddr::V4(v4) => v4.octets().to_vec(),
        std::net::IpAddr::V6(v6) => v6.octets().to_vec(),
    }
}

fn seconds(t: SystemTime) -> (u64, u32) {
    let since = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    (since.as_secs(), since.subsec_nanos())
}

/// The dnstap payloads of an event: the query, then its response (when there is one).
fn encode(tap: &Tap, event: &Event) -> Vec<Vec<u8>> {
    use prost::Message as _;
    let v6 = event.upstream.unwrap_or(event.client).is_ipv6();
    let (server_ip, server_port) = match event.upstream {
        Some(upstream) => (upstream.ip(), upstream.port()),
        None => (
            event.server.and_then(|(ip, _)| ip).unwrap_or(if v6 {
                std::net::Ipv6Addr::UNSPECIFIED.into()
            } else {
                std::net::Ipv4Addr::UNSPECIFIED.into()
            }),
            event.server.map_or(0, |(_, port)| port),
        ),
    };
    let (query_type, response_type) = match event.upstream {
        Some(_) => (FORWARDER_QUERY, FORWARDER_RESPONSE),
        None => (CLIENT_QUERY, CLIENT_RESPONSE),
    };
    let (query_sec, query_nsec) = seconds(event.query_time);
    let (response_sec, response_nsec) = seconds(event.response_time);
    let base = schema::Message {
        r#type: query_type,
        socket_family: Some(if v6 { 2 } else { 1 }),
        socket_protocol: Some(if event.tcp { 2 } else { 1 }),
        query_address: Some(ip_bytes(event.client.ip())),
        response_address: Some(ip_bytes(server_ip)),
        query_port: Some(u32::from(event.client.port())),
        response_port: Some(u32::from(server_port)),
        query_time_sec: Some(query_sec),
        query_time_nsec: Some(query_nsec),
        ..Default::default()
    };
    let query = schema::Message {
        query_message: tap
            .full
            .then(|| event.query.as_deref().unwrap_or_default().to_vec()),
        ..base.clone()
    };
    let response = schema::Message {
        r#type: response_type,
        response_time_sec: Some(response_sec),
        response_time_nsec: Some(response_nsec),
        response_message: tap
            .full
            .then(|| event.response.as_deref().unwrap_or_default().to_vec()),
        ..base
    };
    let messages = if event.answered {
        vec![query, response]
    } else {
        vec![query]
    };
    messages
        .into_iter()
        .map(|message| {
            schema::Dnstap {
                identity: Some(tap.identity.clone()),
                version: Some(tap.version.clone()),
                extra: event.extra.clone(),
                message: Some(message),
                r#type: 1,
            }
            .encode_to_vec()
        })
        .collect()
}

/// Frame Streams control frames (fstrm's control types).
mod fstrm {
    pub const ACCEPT: u32 = 1;
    pub const START: u32 = 2;
    pub const STOP: u32 = 3;
    pub const READY: u32 = 4;
    /// The CONTENT_TYPE field of a control frame.
    const CONTENT_TYPE_FIELD: u32 = 1;

    /// A control frame of `kind` carrying `content_type`, escaped as Frame Streams sends it.
    pub fn control(kind: u32, content_type: Option<&[u8]>) -> Vec<u8> {
        let mut body = kind.to_be_bytes().to_vec();
        if let Some(ct) = content_type {
            body.extend_from_slice(&CONTENT_TYPE_FIELD.to_be_bytes());
            body.extend_from_slice(&(ct.len() as u32).to_be_bytes());
            body.extend_from_slice(ct);
        }
        let mut frame = 0u32.to_be_bytes().to_vec();
        frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
        frame.extend_from_slice(&body);
        frame
    }
}

#[derive(Debug, thiserror::Error)]
enum TapError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("the collector did not accept the handshake")]
    Handshake,
}

/// Frame Streams' bidirectional handshake: READY, the collector's ACCEPT, then START.
async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S) -> Result<(), TapError> {
    stream
        .write_all(&fstrm::control(fstrm::READY, Some(CONTENT_TYPE)))
        .await?;
    stream.flush().await?;
    let accepted = async {
        if stream.read_u32().await? != 0 {
            return Err(TapError::Handshake);
        }
        let len = stream.read_u32().await? as usize;
        if !(4..=512).contains(&len) {
            return Err(TapError::Handshake);
        }
        let mut body = vec![0; len];
        stream.read_exact(&mut body).await?;
        if body[..4] != fstrm::ACCEPT.to_be_bytes() {
            return Err(TapError::Handshake);
        }
        Ok(())
    };
    tokio::time::timeout(RETRY, accepted)
        .await
        .unwrap_or(Err(TapError::Handshake))?;
    stream
        .write_all(&fstrm::control(fstrm::START, Some(CONTENT_TYPE)))
        .await?;
    Ok(())
}

/// Writes queued events to one connection until it fails or the queue closes (`Ok(false)`).
async fn send<S: AsyncRead + AsyncWrite + Unpin>(
    tap: &Tap,
    stream: S,
    rx: &mut mpsc::Receiver<Event>,
    dropped: &AtomicU64,
    failing: &mut bool,
) -> Result<bool, TapError> {
    let mut stream = BufWriter::new(stream);
    handshake(&mut stream).await?;
    stream.flush().await?;
    tracing::info!(sink = ?tap.sink, "dnstap: connected");
    *failing = false;
    let mut reported = 0;
    while let Some(event) = rx.recv().await {
        let mut next = Some(event);
        // What is queued now goes in one write.
        while let Some(event) = next {
            for payload in encode(tap, &event) {
                stream.write_u32(payload.len() as u32).await?;
                stream.write_all(&payload).await?;
            }
            next = rx.try_recv().ok();
        }
        stream.flush().await?;
        let lost = dropped.load(Ordering::Relaxed);
        if lost != reported {
            tracing::warn!(
                "dnstap: dropped {} messages: the queue was full",
                lost - reported
            );
            reported = lost;
        }
    }
    stream.write_all(&fstrm::control(fstrm::STOP, None)).await?;
    stream.flush().await?;
    Ok(false)
}

/// The writer task of one collector: connects, sends, reconnects.
async fn write(tap: Arc<Tap>, mut rx: mpsc::Receiver<Event>, dropped: Arc<AtomicU64>) {
    let mut failing = false;
    loop {
        let sent = match &tap.sink {
            Sink::Unix(path) => match tokio::net::UnixStream::connect(path).await {
                Ok(stream) => send(&tap, stream, &mut rx, &dropped, &mut failing).await,
                Err(e) => Err(e.into()),
            },
            Sink::Tcp(addr) => match tokio::net::TcpStream::connect(addr.as_str()).await {
                Ok(stream) => {
                    let _ = stream.set_nodelay(true);
                    send(&tap, stream, &mut rx, &dropped, &mut failing).await
                }
                Err(e) => Err(e.into()),
            },
        };
        match sent {
            Ok(_) => return,
            Err(error) => {
                if !failing {
                    tracing::warn!(sink = ?tap.sink, %error, "dnstap: cannot send; trying again every second");
                    failing = true;
                }
            }
        }
        tokio::time::sleep(RETRY).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<Tap, String> {
        let config: DnstapConfig = crate::plugin::testing::settings(line)?;
        Ok(config.taps[0].clone())
    }

    #[test]
    fn sockets_options_and_errors_as_coredns_reads_them() {
        let t = parse("dnstap /tmp/tap.sock").unwrap();
        assert_eq!(t.sink, Sink::Unix("/tmp/tap.sock".into()));
        assert!(!t.full);
        assert_eq!(t.queue, QUEUE_UNIT);
        // By position: the second argument is `full` or not.
        let t = parse("dnstap /tmp/tap.sock 4").unwrap();
        assert!(!t.full);
        let t = parse("dnstap /tmp/tap.sock x 4 8").unwrap();
        assert_eq!((t.full, t.queue), (false, 8 * QUEUE_UNIT));
        let t = parse("dnstap unix:///tmp/tap.sock full 1024 2048").unwrap();
        assert_eq!(t.sink, Sink::Unix("/tmp/tap.sock".into()));
        assert!(t.full);
        assert_eq!(t.queue, 2048 * QUEUE_UNIT);
        let t = parse(
            "dnstap tcp://127.0.0.1:6000 full {\n identity my-dns\n version V-1\n extra \"up {/forward/upstream} x\"\n}",
        )
        .unwrap();
        assert_eq!(t.sink, Sink::Tcp("127.0.0.1:6000".into()));
        assert_eq!(
            (t.identity.as_slice(), t.version.as_slice()),
            (&b"my-dns"[..], &b"V-1"[..])
        );
        assert_eq!(t.extra.as_deref(), Some("up {/forward/upstream} x"));
        assert_eq!(
            fill(t.extra.as_deref().unwrap(), |l| (l == "view/name")
                .then(|| "v".into())),
            b"up - x"
        );
        assert_eq!(
            fill("{/view/name}:{/view/name}{/", |_| Some("v".into())),
            b"v:v{/"
        );
        for (line, error) in [
            ("dnstap", "needs a SOCKET"),
            (
                "dnstap /tmp/s full 0",
                "MultipleTcpWriteBuf must be between 1 and 1024 (MiB units): 0",
            ),
            (
                "dnstap /tmp/s full 1 4097",
                "MultipleQueue must be between 1 and 4096 (x10k messages): 4097",
            ),
            ("dnstap /tmp/s x y", "invalid MultipleTcpWriteBuf \"y\""),
            ("dnstap tcp://127.0.0.1", "needs a port"),
            ("dnstap tls://127.0.0.1:6000", "use tcp:// or a unix socket"),
            (
                "dnstap listen unix:///tmp/s",
                "dnstap listen is not supported yet",
            ),
            ("dnstap /tmp/s {\n nope 1\n}", "unknown property \"nope\""),
        ] {
            let e = parse(line).unwrap_err();
            assert!(e.contains(error), "{line}: {e}");
        }
    }

    #[test]
    fn messages_decode_as_dnstap_with_the_query_then_the_response() {
        use prost::Message as _;
        let tap = parse("dnstap /tmp/s full").unwrap();
        let event = Event {
            client: "10.244.0.7:40000".parse().unwrap(),
            server: Some((None, 53)),
            upstream: None,
            answered: true,
            tcp: false,
            query_time: SystemTime::UNIX_EPOCH + Duration::new(1_700_000_000, 5),
            response_time: SystemTime::UNIX_EPOCH + Duration::new(1_700_000_001, 6),
            query: Some(Arc::from(&b"query"[..])),
            response: Some(Arc::from(&b"response"[..])),
            extra: Some(b"extra".to_vec()),
        };
        let decoded = |event: &Event, tap: &Tap| -> Vec<schema::Dnstap> {
            encode(tap, event)
                .iter()
                .map(|p| schema::Dnstap::decode(&p[..]).unwrap())
                .collect()
        };
        let [q, r] = <[schema::Dnstap; 2]>::try_from(decoded(&event, &tap)).unwrap();
        assert_eq!(r.extra.as_deref(), Some(&b"extra"[..]));
        let (q, r) = (q.message.unwrap(), r.message.unwrap());
        assert_eq!((q.r#type, r.r#type), (CLIENT_QUERY, CLIENT_RESPONSE));
        assert_eq!(q.query_address.as_deref(), Some(&[10, 244, 0, 7][..]));
        assert_eq!(q.response_address.as_deref(), Some(&[0, 0, 0, 0][..]));
        assert_eq!((q.query_port, q.response_port), (Some(40000), Some(53)));
        assert_eq!((q.socket_family, q.socket_protocol), (Some(1), Some(1)));
        assert_eq!(q.query_message.as_deref(), Some(&b"query"[..]));
        assert_eq!(q.response_message, None);
        assert_eq!(r.response_message.as_deref(), Some(&b"response"[..]));
        assert_eq!(
            (r.query_time_sec, r.query_time_nsec),
            (Some(1_700_000_000), Some(5))
        );
        assert_eq!(
            (r.response_time_sec, r.response_time_nsec),
            (Some(1_700_000_001), Some(6))
        );
        // Without `full`, no messages.
        let plain = Tap {
            full: false,
            ..tap.clone()
        };
        let q = decoded(&event, &plain).remove(0);
        assert_eq!(q.message.unwrap().query_message, None);
        // An upstream's exchange: from clusterdns's socket to the upstream, FORWARDER_*; one
        // that did not answer has only its query.
        let forwarded = Event {
            client: "127.0.0.1:41000".parse().unwrap(),
            upstream: Some("[fd00::53]:5300".parse().unwrap()),
            ..event.clone()
        };
        let [q, r] = <[schema::Dnstap; 2]>::try_from(decoded(&forwarded, &tap)).unwrap();
        let (q, r) = (q.message.unwrap(), r.message.unwrap());
        assert_eq!((q.r#type, r.r#type), (FORWARDER_QUERY, FORWARDER_RESPONSE));
        assert_eq!(q.response_port, Some(5300));
        assert_eq!(q.socket_family, Some(2));
        let silent = Event {
            answered: false,
            ..forwarded
        };
        assert_eq!(decoded(&silent, &tap).len(), 1);
    }
}
