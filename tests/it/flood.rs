//! A flood of mutated queries over UDP, sent as fast as one thread can from four client
//! sockets, against the real `clusterdns` binary serving the test cluster.
//!
//! Every packet starts as one of a pool of real queries (A, AAAA, SRV, PTR, ANY, names that
//! exist and names that do not, in and out of the zones, with and without EDNS) and is mutated
//! by a seeded splitmix64 generator: bits flipped, bytes set, cut short, extended with junk,
//! regions duplicated or swapped, header counts and flags set (QR included), compression
//! pointers and odd label lengths written in, other queries' bodies and OPT records spliced
//! in. Packet `i` depends only on the seed and `i`, so any one can be made again.
//!
//! The ID is written after mutation and says what the packet is:
//!
//! | IDs             | sent                                                          |
//! |-----------------|---------------------------------------------------------------|
//! | `0x0000-0xBFFF` | packets of 12 bytes or more with QR clear, `0x3000` per socket |
//! | `0xC000-0xDFFF` | never                                                         |
//! | `0xE000-0xEFFF` | packets of 2 to 11 bytes (no complete header)                 |
//! | `0xF000-0xFFFF` | packets with QR set (a response, never to be answered)        |
//!
//! A thread per socket reads the replies while the flood goes on: each must parse as a DNS
//! message (hickory-proto) with QR set, and carry an ID this socket sent with QR clear in a
//! complete header. Which packet last carried each ID is kept (65536 entries, the set of IDs
//! sent), so a bad reply is reported with the packet that asked, replayed alone.
//!
//! Every 10,000 packets a valid query from a socket of its own must be answered correctly while
//! the flood goes on; a datagram may be dropped by the kernel at a full receive buffer, so each
//! is tried up to four times (a first try and three retries), a second each, and the retries
//! are counted. At the end the server must still be running and answering, its
//! `coredns_panics_total` must be 0 and its log must not mention a panic, and on SIGTERM it
//! must exit 0.
//!
//! `CLUSTERDNS_FLOOD_PACKETS` sets how many packets are sent (200,000 by default) and
//! `CLUSTERDNS_FLOOD_SEED` the seed; a summary line goes to stderr (`--nocapture` shows it).
//! Every wait is bounded; the process is killed when the test ends, passed or failed.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::sleep;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::RecordType;

use crate::cli::{Process, free_port};
use crate::harness::{data_dir, http_get, query_bytes, rendered};

/// Packets sent when `CLUSTERDNS_FLOOD_PACKETS` is not set.
const DEFAULT_PACKETS: u64 = 200_000;
/// The seed when `CLUSTERDNS_FLOOD_SEED` is not set.
const DEFAULT_SEED: u64 = 0x636c_7573_7465_7264;
/// Client sockets the flood is sent from.
const SOCKETS: usize = 4;
/// A valid query is asked after every this many packets.
const PROBE_EVERY: u64 = 10_000;
/// Tries for each valid query: the first and three retries.
const PROBE_TRIES: u32 = 4;
/// How long each try waits for its answer.
const PROBE_DEADLINE: Duration = Duration::from_secs(1);
/// Once the flood is sent: the readers stop when nothing came for this long...
const DRAIN_IDLE: Duration = Duration::from_millis(500);
/// ...or at the latest after this.
const DRAIN_DEADLINE: Duration = Duration::from_secs(15);
/// The largest UDP payload over IPv4.
const MAX_DATAGRAM: usize = 65_507;
/// How many bad replies are kept to be shown.
const EXAMPLES: usize = 5;

/// IDs of packets of 12 bytes or more with QR clear: `PER_SOCKET` for each socket, from 0.
const PER_SOCKET: u16 = 0x3000;
/// IDs of packets of 2 to 11 bytes.
const SHORT_IDS: u16 = 0xE000;
/// IDs of packets with QR set.
const RESPONSE_IDS: u16 = 0xF000;
/// How many IDs each of the two ranges above holds.
const RANGE: u16 = 0x1000;
/// "No packet sent with this ID yet."
const NONE: u64 = u64::MAX;

const COREFILE: &str = ".:PORT {
    prometheus 127.0.0.1:HTTP
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        manifests DATA/cluster.yaml
        pods insecure
    }
}
";

/// The queries the flood starts from; each is in the pool without EDNS, and with EDNS at the
/// payload size given.
const POOL: &[(&str, RecordType, u16)] = &[
    ("kubernetes.default.svc.cluster.local.", RecordType::A, 1232),
    ("web.prod.svc.cluster.local.", RecordType::A, 4096),
    ("WEB.Prod.svc.cluster.local.", RecordType::AAAA, 1232),
    (
        "kube-dns.kube-system.svc.cluster.local.",
        RecordType::A,
        512,
    ),
    (
        "_http._tcp.web.prod.svc.cluster.local.",
        RecordType::SRV,
        1232,
    ),
    (
        "_dns._udp.kube-dns.kube-system.svc.cluster.local.",
        RecordType::SRV,
        1232,
    ),
    ("1.0.96.10.in-addr.arpa.", RecordType::PTR, 1232),
    ("10.0.96.10.in-addr.arpa.", RecordType::PTR, 512),
    ("db-0.db.prod.svc.cluster.local.", RecordType::A, 1232),
    (
        "sidecar-svc-headless.default.svc.cluster.local.",
        RecordType::A,
        1232,
    ),
    ("10-36-0-7.default.pod.cluster.local.", RecordType::A, 1232),
    ("web.prod.svc.cluster.local.", RecordType::ANY, 1232),
    ("big.prod.svc.cluster.local.", RecordType::A, 1232),
    ("cluster.local.", RecordType::SOA, 1232),
    ("web.prod.svc.cluster.local.", RecordType::TXT, 1232),
    ("nosuch.default.svc.cluster.local.", RecordType::A, 1232),
    ("nosuch.svc.cluster.local.", RecordType::AAAA, 1232),
    (
        "a.b.c.nosuch.prod.svc.cluster.local.",
        RecordType::SRV,
        1232,
    ),
    ("example.com.", RecordType::A, 1232),
];

/// A valid query: the name, type and EDNS payload size asked, the response code and the
/// answer records (rendered, sorted) expected.
type Probe = (
    &'static str,
    RecordType,
    Option<u16>,
    ResponseCode,
    &'static [&'static str],
);

/// The valid queries asked during the flood, in turn, and their answers: the response code and
/// the answer records rendered, sorted.
const PROBES: &[Probe] = &[
    (
        "kubernetes.default.svc.cluster.local.",
        RecordType::A,
        None,
        ResponseCode::NoError,
        &["A 10.96.0.1"],
    ),
    (
        "web.prod.svc.cluster.local.",
        RecordType::A,
        Some(1232),
        ResponseCode::NoError,
        &["A 10.96.12.34"],
    ),
    (
        "web.prod.svc.cluster.local.",
        RecordType::AAAA,
        None,
        ResponseCode::NoError,
        &["AAAA fd00:10:96::1234"],
    ),
    (
        "_http._tcp.web.prod.svc.cluster.local.",
        RecordType::SRV,
        Some(1232),
        ResponseCode::NoError,
        &["SRV 0 50 80 web.prod.svc.cluster.local."],
    ),
    (
        "1.0.96.10.in-addr.arpa.",
        RecordType::PTR,
        None,
        ResponseCode::NoError,
        &["PTR kubernetes.default.svc.cluster.local."],
    ),
    (
        "nosuch.default.svc.cluster.local.",
        RecordType::A,
        Some(1232),
        ResponseCode::NXDomain,
        &[],
    ),
];

// ---------------------------------------------------------------------------------------------
// Packets

/// splitmix64.
struct Rng(u64);

impl Rng {
    /// The generator for packet `index`.
    fn for_packet(seed: u64, index: u64) -> Self {
        let mut rng = Self(seed ^ index.wrapping_mul(0xD6E8_FEB8_6659_FD93));
        rng.next();
        rng
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number below `n` (which is not 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    /// An index into something `len` long, if it is not empty.
    fn index(&mut self, len: usize) -> Option<usize> {
        (len > 0).then(|| self.below(len))
    }

    /// A byte: half the time one of the values parsers look at twice.
    fn byte(&mut self) -> u8 {
        const INTERESTING: [u8; 12] = [
            0, 1, 2, 0x3f, 0x40, 0x7f, 0x80, 0xbf, 0xc0, 0xc1, 0xfe, 0xff,
        ];
        if self.one_in(2) {
            INTERESTING[self.below(INTERESTING.len())]
        } else {
            self.next() as u8
        }
    }

    /// A region of something `len` long (not empty): its start and length (at most 64).
    fn region(&mut self, len: usize) -> (usize, usize) {
        let start = self.below(len);
        (start, 1 + self.below((len - start).min(64)))
    }
}

/// The pool: every query of [`POOL`] without EDNS and with it, and a few with EDNS options
/// (a cookie, padding) and the DO bit.
fn pool() -> Vec<Vec<u8>> {
    let mut pool = Vec::new();
    for &(name, qtype, payload) in POOL {
        pool.push(query_bytes(name, qtype, None));
        pool.push(query_bytes(name, qtype, Some(payload)));
    }
    let cookie = [0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8];
    let padding = [0, 12, 0, 4, 0, 0, 0, 0];
    for (name, qtype, options) in [
        (
            "kubernetes.default.svc.cluster.local.",
            RecordType::A,
            &cookie[..],
        ),
        ("web.prod.svc.cluster.local.", RecordType::SRV, &padding[..]),
        ("nosuch.prod.svc.cluster.local.", RecordType::A, &[]),
    ] {
        let mut q = query_bytes(name, qtype, None);
        q[11] = 1;
        q.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0x80, 0]);
        q.extend_from_slice(&(options.len() as u16).to_be_bytes());
        q.extend_from_slice(options);
        pool.push(q);
    }
    pool
}

/// Packet `index`, its ID not yet written: a query of the pool, unchanged one time in 16,
/// otherwise mutated one to four times; and one time in 16, QR set.
fn packet(pool: &[Vec<u8>], seed: u64, index: u64, out: &mut Vec<u8>) {
    let mut rng = Rng::for_packet(seed, index);
    out.clear();
    out.extend_from_slice(&pool[rng.below(pool.len())]);
    if !rng.one_in(16) {
        for _ in 0..=rng.below(4) {
            mutate(&mut rng, out, pool);
        }
    }
    if rng.one_in(16) && out.len() > 2 {
        out[2] |= 0x80;
    }
    out.truncate(MAX_DATAGRAM);
}

/// Writes `value` at `at`, if it fits.
fn put_u16(p: &mut [u8], at: usize, value: u16) {
    if let Some(to) = p.get_mut(at..at + 2) {
        to.copy_from_slice(&value.to_be_bytes());
    }
}

/// One mutation.
fn mutate(rng: &mut Rng, p: &mut Vec<u8>, pool: &[Vec<u8>]) {
    match rng.below(12) {
        // Flip one to eight bits.
        0 => {
            for _ in 0..=rng.below(8) {
                if let Some(i) = rng.index(p.len()) {
                    p[i] ^= 1 << rng.below(8);
                }
            }
        }
        // Set one to four bytes.
        1 => {
            for _ in 0..=rng.below(4) {
                if let Some(i) = rng.index(p.len()) {
                    p[i] = rng.byte();
                }
            }
        }
        // Cut short: within the header a quarter of the time, anywhere otherwise.
        2 => {
            let cut = if rng.one_in(4) {
                rng.below(13)
            } else {
                rng.below(p.len() + 1)
            };
            p.truncate(cut);
        }
        // Extend with junk: random bytes, one byte repeated, or zeros; now and then kilobytes.
        3 => {
            let n = if rng.one_in(32) {
                rng.below(8192)
            } else {
                1 + rng.below(64)
            };
            let n = n.min(MAX_DATAGRAM.saturating_sub(p.len()));
            match rng.below(3) {
                0 => p.extend((0..n).map(|_| rng.next() as u8)),
                1 => {
                    let b = rng.byte();
                    p.resize(p.len() + n, b);
                }
                _ => p.resize(p.len() + n, 0),
            }
        }
        // Duplicate a region somewhere.
        4 => {
            if !p.is_empty() {
                let (start, len) = rng.region(p.len());
                let chunk = p[start..start + len].to_vec();
                let at = rng.below(p.len() + 1);
                p.splice(at..at, chunk);
            }
        }
        // Swap two regions of one length.
        5 => {
            if p.len() >= 2 {
                let len = 1 + rng.below((p.len() / 2).min(64));
                let a = rng.below(p.len() - 2 * len + 1);
                let b = a + len + rng.below(p.len() - a - 2 * len + 1);
                for i in 0..len {
                    p.swap(a + i, b + i);
                }
            }
        }
        // Set a header count.
        6 => {
            const COUNTS: [u16; 8] = [0, 1, 2, 3, 0x00ff, 0x0100, 0x7fff, 0xffff];
            let value = if rng.one_in(3) {
                rng.next() as u16
            } else {
                COUNTS[rng.below(COUNTS.len())]
            };
            put_u16(p, 4 + 2 * rng.below(4), value);
        }
        // Set header flags: both bytes, one bit (QR, AA, TC, RD, RA, Z, AD, CD, RCODE), or the
        // opcode.
        7 => {
            if p.len() >= 4 {
                match rng.below(4) {
                    0 => {
                        p[2] = rng.next() as u8;
                        p[3] = rng.next() as u8;
                    }
                    1 => p[2] ^= 1 << rng.below(8),
                    2 => p[3] ^= 1 << rng.below(8),
                    _ => p[2] = (p[2] & 0x87) | ((rng.below(16) as u8) << 3),
                }
            }
        }
        // A compression pointer, written over two bytes or inserted: to the question's name,
        // to itself, just ahead, or anywhere (past the end too).
        8 => {
            let at = 12 + rng.below(p.len().saturating_sub(12) + 1);
            let target = match rng.below(4) {
                0 => 12,
                1 => at,
                2 => at + 2 + rng.below(8),
                _ => rng.below(p.len() + 16),
            };
            let pointer = (0xC000 | (target & 0x3fff) as u16).to_be_bytes();
            if at + 2 <= p.len() && rng.one_in(2) {
                p[at..at + 2].copy_from_slice(&pointer);
            } else if at <= p.len() {
                p.splice(at..at, pointer);
            }
        }
        // A label length: over 63, of the reserved 01 and 10 kinds, or a zero ending a name
        // early; or a whole label inserted, up to 255 bytes long.
        9 => {
            if p.len() > 12 {
                let at = 12 + rng.below(p.len() - 12);
                if rng.one_in(2) {
                    const LENGTHS: [u8; 9] = [0, 1, 62, 63, 64, 0x41, 0x80, 0xbf, 0xff];
                    p[at] = LENGTHS[rng.below(LENGTHS.len())];
                } else {
                    let len = rng.below(256);
                    let mut label = vec![len as u8];
                    label.extend((0..len).map(|_| b'a' + rng.below(26) as u8));
                    p.splice(at..at, label);
                }
            }
        }
        // Another query's body (a second question, more records, another OPT) spliced in.
        10 => {
            let other = &pool[rng.below(pool.len())];
            let (start, len) = rng.region(other.len() - 12);
            let chunk = other[12 + start..12 + start + len].to_vec();
            let at = if rng.one_in(2) {
                p.len()
            } else {
                rng.below(p.len() + 1)
            };
            p.splice(at..at, chunk);
        }
        // An OPT record appended: any version, flags and payload size, options of any code
        // and length (true or not), and ARCOUNT counting it or not.
        _ => {
            p.extend_from_slice(&[0, 0, 41]);
            let payload = if rng.one_in(2) {
                1232
            } else {
                rng.next() as u16
            };
            p.extend_from_slice(&payload.to_be_bytes());
            let version = if rng.one_in(2) { 0 } else { rng.byte() };
            p.extend_from_slice(&[rng.byte(), version, rng.byte(), rng.byte()]);
            let mut rdata = Vec::new();
            for _ in 0..rng.below(4) {
                let code = [8u16, 10, 11, 12, 15, rng.next() as u16][rng.below(6)];
                let len = rng.below(40);
                rdata.extend_from_slice(&code.to_be_bytes());
                let claimed = if rng.one_in(4) {
                    rng.next() as u16
                } else {
                    len as u16
                };
                rdata.extend_from_slice(&claimed.to_be_bytes());
                rdata.extend((0..len).map(|_| rng.next() as u8));
            }
            p.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
            p.extend_from_slice(&rdata);
            if !rng.one_in(4) && p.len() >= 12 {
                let count = u16::from_be_bytes([p[10], p[11]]).wrapping_add(1);
                put_u16(p, 10, count);
            }
        }
    }
}

/// What an ID says about the packet that carried it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A packet of 12 bytes or more with QR clear, from this socket.
    Query(usize),
    /// An ID no packet is sent with.
    Never,
    /// A packet of 2 to 11 bytes.
    Short,
    /// A packet with QR set.
    Response,
}

fn kind(id: u16) -> Kind {
    match id {
        _ if id < PER_SOCKET * SOCKETS as u16 => Kind::Query(usize::from(id / PER_SOCKET)),
        _ if id >= RESPONSE_IDS => Kind::Response,
        _ if id >= SHORT_IDS => Kind::Short,
        _ => Kind::Never,
    }
}

/// The next ID of each kind, taken in turn.
#[derive(Default)]
struct Ids {
    query: [u16; SOCKETS],
    short: u16,
    response: u16,
}

impl Ids {
    /// The ID for `p`, sent from `socket`; `None` for a packet too short to carry one.
    fn take(&mut self, socket: usize, p: &[u8]) -> Option<u16> {
        let (next, base, range) = match p.len() {
            0 | 1 => return None,
            2..=11 => (&mut self.short, SHORT_IDS, RANGE),
            _ if p[2] & 0x80 != 0 => (&mut self.response, RESPONSE_IDS, RANGE),
            _ => (
                &mut self.query[socket],
                PER_SOCKET * socket as u16,
                PER_SOCKET,
            ),
        };
        let id = base + *next;
        *next = (*next + 1) % range;
        Some(id)
    }
}

// ---------------------------------------------------------------------------------------------
// Replies

/// A reply that should not have come.
struct Bad {
    what: String,
    socket: usize,
    reply: Vec<u8>,
    /// The last packet sent with the reply's ID when it came.
    packet: Option<u64>,
}

/// What one socket's reader saw.
#[derive(Default)]
struct Replies {
    count: u64,
    rcodes: BTreeMap<u16, u64>,
    malformed: u64,
    /// To a packet with QR set.
    to_responses: u64,
    /// To a packet without a complete header, or with no ID at all.
    to_short: u64,
    /// With an ID of another socket, or one never sent.
    unknown: u64,
    /// From an address other than the server's.
    foreign: u64,
    examples: Vec<Bad>,
}

impl Replies {
    fn bad(&mut self, what: String, socket: usize, reply: &[u8], last: &[AtomicU64]) {
        if self.examples.len() < EXAMPLES {
            let packet = reply
                .get(..2)
                .map(|id| {
                    last[usize::from(u16::from_be_bytes([id[0], id[1]]))].load(Ordering::Acquire)
                })
                .filter(|&index| index != NONE);
            self.examples.push(Bad {
                what,
                socket,
                reply: reply.to_vec(),
                packet,
            });
        }
    }

    fn add(&mut self, other: Replies) {
        self.count += other.count;
        for (rcode, n) in other.rcodes {
            *self.rcodes.entry(rcode).or_default() += n;
        }
        self.malformed += other.malformed;
        self.to_responses += other.to_responses;
        self.to_short += other.to_short;
        self.unknown += other.unknown;
        self.foreign += other.foreign;
        for bad in other.examples {
            if self.examples.len() < EXAMPLES {
                self.examples.push(bad);
            }
        }
    }

    fn problems(&self) -> u64 {
        self.malformed + self.to_responses + self.to_short + self.unknown + self.foreign
    }
}

/// Reads socket `index`'s replies until the flood is over and nothing came for [`DRAIN_IDLE`].
fn read_replies(
    socket: &UdpSocket,
    index: usize,
    server: SocketAddr,
    last: &[AtomicU64],
    flood_over: &AtomicBool,
) -> Replies {
    let mut seen = Replies::default();
    let mut buf = vec![0; 65_535];
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut last_reply = Instant::now();
    let mut over_at = None;
    loop {
        if let Ok((len, from)) = socket.recv_from(&mut buf) {
            last_reply = Instant::now();
            check_reply(&buf[..len], from, index, server, last, &mut seen);
            continue;
        }
        if flood_over.load(Ordering::Acquire) {
            let over = *over_at.get_or_insert_with(Instant::now);
            if last_reply.elapsed() >= DRAIN_IDLE || over.elapsed() >= DRAIN_DEADLINE {
                return seen;
            }
        }
    }
}

fn check_reply(
    reply: &[u8],
    from: SocketAddr,
    socket: usize,
    server: SocketAddr,
    last: &[AtomicU64],
    seen: &mut Replies,
) {
    seen.count += 1;
    if from != server {
        seen.foreign += 1;
        seen.bad(format!("a datagram from {from}"), socket, reply, last);
        return;
    }
    let m = match Message::from_vec(reply) {
        Ok(m) => m,
        Err(e) => {
            seen.malformed += 1;
            seen.bad(format!("does not parse: {e}"), socket, reply, last);
            return;
        }
    };
    if m.message_type() != MessageType::Response {
        seen.malformed += 1;
        seen.bad("QR is clear".to_string(), socket, reply, last);
        return;
    }
    *seen.rcodes.entry(u16::from(m.response_code())).or_default() += 1;
    let id = m.id();
    let sent = last[usize::from(id)].load(Ordering::Acquire) != NONE;
    match kind(id) {
        Kind::Query(s) if s == socket && sent => {}
        Kind::Query(s) if s == socket => {
            seen.unknown += 1;
            seen.bad(format!("ID {id:#06x} was never sent"), socket, reply, last);
        }
        Kind::Query(s) => {
            seen.unknown += 1;
            seen.bad(
                format!("ID {id:#06x} was sent from socket {s}, not this one"),
                socket,
                reply,
                last,
            );
        }
        Kind::Never => {
            seen.unknown += 1;
            seen.bad(format!("ID {id:#06x} is never sent"), socket, reply, last);
        }
        Kind::Short => {
            seen.to_short += 1;
            seen.bad(
                format!("ID {id:#06x}: a reply to a packet under 12 bytes"),
                socket,
                reply,
                last,
            );
        }
        Kind::Response => {
            seen.to_responses += 1;
            seen.bad(
                format!("ID {id:#06x}: a reply to a packet with QR set"),
                socket,
                reply,
                last,
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Valid queries

/// Asks valid query `k` (of [`PROBES`], in turn) from fresh sockets until it is answered, at
/// most [`PROBE_TRIES`] times: the retries it took, or what went wrong. A wrong answer is not
/// retried.
fn probe(server: SocketAddr, k: u64) -> Result<u64, String> {
    let (name, qtype, payload, rcode, answers) = PROBES[k as usize % PROBES.len()];
    let mut buf = vec![0; 65_535];
    for attempt in 0..PROBE_TRIES {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut query = query_bytes(name, qtype, payload);
        let id = 0x5000 + attempt as u16;
        query[..2].copy_from_slice(&id.to_be_bytes());
        socket.send_to(&query, server).unwrap();
        let deadline = Instant::now() + PROBE_DEADLINE;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            if left.is_zero() {
                break;
            }
            socket.set_read_timeout(Some(left)).unwrap();
            let Ok((len, from)) = socket.recv_from(&mut buf) else {
                break;
            };
            if from != server {
                continue;
            }
            let what = format!("valid query {k} ({name} {qtype}), try {}", attempt + 1);
            let m = Message::from_vec(&buf[..len])
                .map_err(|e| format!("{what}: unreadable reply ({e}): {}", hex(&buf[..len])))?;
            let problem = if m.id() != id {
                Some(format!("ID {:#06x}, asked {id:#06x}", m.id()))
            } else if m.message_type() != MessageType::Response {
                Some("QR clear".to_string())
            } else if m.queries().len() != 1
                || m.queries()[0].name().to_ascii() != name
                || m.queries()[0].query_type() != qtype
            {
                Some(format!("question {:?}", m.queries()))
            } else if m.response_code() != rcode || rendered(&m) != answers {
                Some(format!("expected {rcode} {answers:?}"))
            } else {
                None
            };
            return match problem {
                None => Ok(u64::from(attempt)),
                Some(problem) => Err(format!("{what}: {problem}; got\n{m}")),
            };
        }
    }
    Err(format!(
        "valid query {k} ({name} {qtype}): no answer to {PROBE_TRIES} tries of {PROBE_DEADLINE:?}"
    ))
}

/// What the valid queries found.
#[derive(Default)]
struct Probes {
    answered: u64,
    retries: u64,
    failures: Vec<String>,
}

// ---------------------------------------------------------------------------------------------
// The flood

fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(text) => {
            let text = text.replace(['_', ','], "");
            let parsed = match text.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => text.parse(),
            };
            parsed.unwrap_or_else(|e| panic!("{name}={text}: {e}"))
        }
        Err(_) => default,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Whether process `pid` is running (not gone, not a zombie); Linux only, true elsewhere.
fn running(pid: u32) -> bool {
    if !cfg!(target_os = "linux") {
        return true;
    }
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit(')')
            .next()
            .and_then(|rest| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X")
    })
}

/// `coredns_panics_total` in the server's metrics, if it is there.
fn panics(http: u16) -> Option<f64> {
    let (status, text) = http_get(SocketAddr::from((Ipv4Addr::LOCALHOST, http)), "/metrics");
    assert_eq!(status, 200, "GET /metrics:\n{text}");
    text.lines()
        .find_map(|l| l.strip_prefix("coredns_panics_total "))
        .map(|v| v.trim().parse().unwrap())
}

/// What the server answers to `packet` sent alone from a fresh socket (within a second).
fn replay(server: SocketAddr, packet: &[u8]) -> String {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    socket.send_to(packet, server).unwrap();
    let mut buf = vec![0; 65_535];
    match socket.recv_from(&mut buf) {
        Ok((len, _)) => format!("answered alone with {}", hex(&buf[..len])),
        Err(_) => "not answered alone".to_string(),
    }
}

#[test]
fn a_flood_of_mutated_packets_gets_well_formed_replies_only_to_queries_and_service_goes_on() {
    let packets = env_number("CLUSTERDNS_FLOOD_PACKETS", DEFAULT_PACKETS);
    let seed = env_number("CLUSTERDNS_FLOOD_SEED", DEFAULT_SEED);
    let port = free_port();
    let http = loop {
        let http = free_port();
        if http != port {
            break http;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let corefile = COREFILE
        .replace("PORT", &port.to_string())
        .replace("HTTP", &http.to_string())
        .replace("DATA", data_dir().to_str().unwrap());
    std::fs::write(dir.path().join("Corefile"), corefile).unwrap();
    let mut process = Process::spawn(dir.path(), &[]);
    process.first_answer(port, "kubernetes.default.svc.cluster.local.");
    let server = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    // Answered before the flood, as they must be during it.
    for k in 0..PROBES.len() as u64 {
        probe(server, k).unwrap();
    }
    assert_eq!(panics(http), Some(0.0));

    let pool = pool();
    let sockets: Vec<UdpSocket> = (0..SOCKETS)
        .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
        .collect();
    let last: Vec<AtomicU64> = (0..=u16::MAX).map(|_| AtomicU64::new(NONE)).collect();
    let flood_over = AtomicBool::new(false);
    let abort = AtomicBool::new(false);
    let probes_asked = AtomicU64::new(0);
    let probes_done = AtomicU64::new(0);
    let probes = Mutex::new(Probes::default());
    // Sent with QR set, sent under 12 bytes (with an ID and without), send errors.
    let (mut responses, mut short, mut idless, mut send_errors) = (0u64, 0u64, 0u64, 0u64);
    let mut sent = 0u64;
    let started = Instant::now();
    let mut flood_took = Duration::ZERO;

    let replies = std::thread::scope(|scope| {
        let readers: Vec<_> = sockets
            .iter()
            .enumerate()
            .map(|(i, socket)| {
                let (last, flood_over) = (&last, &flood_over);
                scope.spawn(move || read_replies(socket, i, server, last, flood_over))
            })
            .collect();
        // The valid queries: the k-th once the flood has sent k × PROBE_EVERY packets.
        scope.spawn(|| {
            let mut k = 0;
            loop {
                let over = flood_over.load(Ordering::Acquire);
                if k < probes_asked.load(Ordering::Acquire) {
                    let result = probe(server, k);
                    let mut p = probes.lock().unwrap();
                    match result {
                        Ok(retries) => {
                            p.answered += 1;
                            p.retries += retries;
                        }
                        Err(e) => {
                            p.failures.push(e);
                            abort.store(true, Ordering::Release);
                        }
                    }
                    k += 1;
                    probes_done.store(k, Ordering::Release);
                } else if over {
                    break;
                } else {
                    sleep(Duration::from_micros(500));
                }
            }
        });

        let mut ids = Ids::default();
        let mut buf = Vec::with_capacity(MAX_DATAGRAM);
        for i in 0..packets {
            if i > 0 && i % PROBE_EVERY == 0 {
                // One valid query at a time: the one asked at the last mark has been answered
                // (or has failed, each try bounded) before the next is asked.
                let k = i / PROBE_EVERY;
                while probes_done.load(Ordering::Acquire) + 1 < k {
                    sleep(Duration::from_micros(200));
                }
                probes_asked.store(k, Ordering::Release);
            }
            if abort.load(Ordering::Acquire) {
                break;
            }
            packet(&pool, seed, i, &mut buf);
            let socket = i as usize % SOCKETS;
            match ids.take(socket, &buf) {
                Some(id) => {
                    buf[..2].copy_from_slice(&id.to_be_bytes());
                    last[usize::from(id)].store(i, Ordering::Release);
                    match kind(id) {
                        Kind::Short => short += 1,
                        Kind::Response => responses += 1,
                        _ => {}
                    }
                }
                None => idless += 1,
            }
            if sockets[socket].send_to(&buf, server).is_err() {
                send_errors += 1;
            }
            sent += 1;
        }
        flood_took = started.elapsed();
        // The last mark's valid query, if the flood ended on one, right after the flood.
        probes_asked.fetch_max(sent / PROBE_EVERY, Ordering::Release);
        flood_over.store(true, Ordering::Release);
        let mut replies = Replies::default();
        for reader in readers {
            replies.add(reader.join().unwrap());
        }
        replies
    });
    let probes = probes.into_inner().unwrap();

    // Still running and answering, with no panic counted or logged.
    let alive = running(process.pid());
    let after = probe(server, 0);
    let panics_total = panics(http);
    let stderr = process.stderr();

    let rcodes: Vec<String> = replies
        .rcodes
        .iter()
        .map(|(&rcode, n)| format!("{} {n}", clusterdns::metrics::rcode_name(rcode)))
        .collect();
    let secs = flood_took.as_secs_f64();
    eprintln!(
        "flood: {sent} packets ({responses} with QR set, {} under 12 bytes) from {SOCKETS} \
         sockets in {secs:.2}s ({:.0}/s, {send_errors} send errors), seed {seed:#x}; \
         {} replies ({}); {} malformed, {} to QR-set packets, {} to short packets, {} unknown \
         IDs; {} valid queries answered, {} retries, {} failed; {:.2}s in all",
        short + idless,
        sent as f64 / secs.max(1e-9),
        replies.count,
        rcodes.join(", "),
        replies.malformed,
        replies.to_responses,
        replies.to_short,
        replies.unknown + replies.foreign,
        probes.answered,
        probes.retries,
        probes.failures.len(),
        started.elapsed().as_secs_f64(),
    );

    if replies.problems() > 0 {
        let mut report = String::new();
        for bad in &replies.examples {
            let _ = writeln!(
                report,
                "socket {}: {}\n  reply  {}",
                bad.socket,
                bad.what,
                hex(&bad.reply)
            );
            if let Some(index) = bad.packet {
                let mut p = Vec::new();
                packet(&pool, seed, index, &mut p);
                p[..2].copy_from_slice(&bad.reply[..2]);
                let _ = writeln!(
                    report,
                    "  packet {index}, the last sent with this ID when the reply came: {}\n  {}",
                    hex(&p),
                    replay(server, &p)
                );
            }
        }
        panic!(
            "{} bad replies (seed {seed:#x}), the first:\n{report}",
            replies.problems()
        );
    }
    assert!(
        probes.failures.is_empty(),
        "valid queries not answered during the flood:\n{}\nstderr:\n{}",
        probes.failures.join("\n"),
        stderr
    );
    assert_eq!(probes.answered, sent / PROBE_EVERY);
    assert!(
        alive,
        "clusterdns is not running after the flood\nstderr:\n{stderr}"
    );
    if let Err(e) = after {
        panic!("after the flood: {e}");
    }
    assert!(
        panics_total.is_none_or(|n| n == 0.0),
        "coredns_panics_total {panics_total:?}\nstderr:\n{stderr}"
    );
    assert!(
        !stderr.to_lowercase().contains("panic"),
        "stderr:\n{stderr}"
    );

    // And it stops cleanly when asked.
    let kill = Command::new("kill")
        .args(["-TERM", &process.pid().to_string()])
        .status()
        .expect("running kill");
    assert!(kill.success());
    let status = process.wait();
    assert_eq!(
        status.code(),
        Some(0),
        "{status}\nstderr:\n{}",
        process.stderr()
    );
}
