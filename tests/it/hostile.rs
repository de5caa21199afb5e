//! Hostile packets over real sockets (UDP and TCP on IPv4 loopback), each built by hand: every
//! cut of a valid query, trailing garbage and datagrams of the largest size, compression
//! pointer loops, forward pointers and pointers past the end, labels over 63 and names over
//! 255 bytes, section counts that lie, the QR bit, unsupported opcodes, unknown classes and
//! types, broken EDNS (several OPTs, an OPT outside the additional section or owned by a name,
//! options that do not fit), and TCP framing (zero and 65535-byte lengths, a length prefix
//! sent byte by byte).
//!
//! Each case is either dropped or answered with the code RFC 1035/6891 and CoreDNS give it
//! (FORMERR with the ID echoed when the header is readable, NOTIMP for an opcode other than
//! QUERY, REFUSED for a class other than IN), and after every case the same socket or
//! connection must still answer a valid query correctly. Nothing the server sends is ever
//! anything but a response, and no response is ever answered.
//!
//! Where the server differs from miekg/dns (which CoreDNS uses), it is the stricter of the two
//! and follows the RFCs:
//! - miekg stops reading a section at the end of the message and answers as if the counts had
//!   said so (and a bare header with QDCOUNT 1 even reaches CoreDNS, which answers SERVFAIL);
//!   here a count claiming records that are not there, or a question cut short, is FORMERR.
//! - miekg follows compression pointers forwards (bounded by a count of jumps); RFC 1035 4.1.4
//!   says a pointer refers to a *prior* occurrence, so a pointer that does not point backwards
//!   is FORMERR here, which also rules out every loop.
//! - miekg (since it reads the length with `io.ReadFull`) drops a zero-length TCP message and
//!   keeps the connection open; here the connection is closed, as older miekg releases did
//!   (`ErrShortRead`): nothing that short is a query.
//!
//! Bytes after the last record a valid query's counts announce are ignored and the query is
//! answered, as miekg/dns (`Msg.Unpack` leaves them unread), BIND (which only logs "trailing
//! garbage") and hickory-proto do: RFC 1035 gives no rule for them, and a client that padded
//! its query should not lose its answer.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};

use crate::harness::{REPLY_TIMEOUT, TestServer};

const COREFILE: &str = ".:0 {
    kubernetes cluster.local in-addr.arpa {
        manifests DATA/cluster.yaml
        pods insecure
    }
}
";

/// A name the test cluster holds (one A record, 10.96.0.1) and one it does not.
const SERVED: &str = "kubernetes.default.svc.cluster.local";
const MISSING: &str = "nosuch.default.svc.cluster.local";
const SERVED_ADDRESS: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 1);

/// The ID of the valid query asked after every case; no case uses it.
const PROBE_ID: u16 = 0x600d;

/// Header flags: RD, and QR.
const RD: u16 = 0x0100;
const QR: u16 = 0x8000;
/// Types and classes by number.
const A: u16 = 1;
const OPT: u16 = 41;
const IN: u16 = 1;
/// The largest UDP payload over IPv4.
const MAX_DATAGRAM: usize = 65507;

/// What the server must do with a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Send nothing back.
    Dropped,
    /// An error without records (FORMERR, NOTIMP).
    Error(ResponseCode),
    /// REFUSED, the question echoed as sent.
    Refused,
    /// NOERROR with the served name's one address.
    Served,
    /// NOERROR without answers, the zone's SOA in the authority section.
    NoData,
    /// NXDOMAIN, the zone's SOA in the authority section.
    NxDomain,
}

const FORMERR: Expect = Expect::Error(ResponseCode::FormErr);
const NOTIMP: Expect = Expect::Error(ResponseCode::NotImp);

struct Case {
    what: String,
    bytes: Vec<u8>,
    expect: Expect,
}

fn case(what: impl Into<String>, bytes: Vec<u8>, expect: Expect) -> Case {
    Case {
        what: what.into(),
        bytes,
        expect,
    }
}

// ---------------------------------------------------------------------------------------------
// Building packets

/// A header: ID, flags, and the question, answer, authority and additional counts.
fn header(id: u16, flags: u16, counts: [u16; 4]) -> Vec<u8> {
    let mut v = id.to_be_bytes().to_vec();
    v.extend_from_slice(&flags.to_be_bytes());
    for c in counts {
        v.extend_from_slice(&c.to_be_bytes());
    }
    v
}

/// A name in wire format, uncompressed ("" is the root).
fn name(text: &str) -> Vec<u8> {
    let labels: Vec<&[u8]> = text
        .split('.')
        .filter(|l| !l.is_empty())
        .map(str::as_bytes)
        .collect();
    name_of(&labels)
}

fn name_of(labels: &[&[u8]]) -> Vec<u8> {
    let mut v = Vec::new();
    for label in labels {
        v.push(label.len() as u8);
        v.extend_from_slice(label);
    }
    v.push(0);
    v
}

/// A question: a name (already in wire format), its type and class.
fn question(name: &[u8], qtype: u16, class: u16) -> Vec<u8> {
    [name, &qtype.to_be_bytes(), &class.to_be_bytes()].concat()
}

/// An OPT record with a root owner: a payload size of 1232, EDNS version 0, and `rdata` as
/// its options.
fn opt(rdata: &[u8]) -> Vec<u8> {
    let mut v = vec![0];
    v.extend_from_slice(&OPT.to_be_bytes());
    v.extend_from_slice(&1232u16.to_be_bytes());
    v.extend_from_slice(&[0, 0, 0, 0]);
    v.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    v.extend_from_slice(rdata);
    v
}

/// One EDNS option: code, length, value.
fn option(code: u16, value: &[u8]) -> Vec<u8> {
    [
        &code.to_be_bytes()[..],
        &(value.len() as u16).to_be_bytes(),
        value,
    ]
    .concat()
}

/// An A record (10.0.0.1, TTL 30) under `owner` (wire format, maybe a pointer).
fn a_record(owner: &[u8]) -> Vec<u8> {
    [owner, &[0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 10, 0, 0, 1]].concat()
}

/// A query with RD set for one question of `name`, with an OPT (no options) when `edns`.
fn query(id: u16, name: &[u8], qtype: u16, class: u16, edns: bool) -> Vec<u8> {
    let mut v = header(id, RD, [1, 0, 0, u16::from(edns)]);
    v.extend(question(name, qtype, class));
    if edns {
        v.extend(opt(&[]));
    }
    v
}

/// The valid query asked after every case.
fn probe() -> Vec<u8> {
    query(PROBE_ID, &name(SERVED), A, IN, true)
}

/// `len` bytes of deterministic junk (xorshift64).
fn junk(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 32) as u8
        })
        .collect()
}

/// `bytes` with a 16-bit value written at `at`.
fn with_u16(mut bytes: Vec<u8>, at: usize, value: u16) -> Vec<u8> {
    bytes[at..at + 2].copy_from_slice(&value.to_be_bytes());
    bytes
}

// ---------------------------------------------------------------------------------------------
// Checking replies

/// Checks `reply` to `query` against what was expected.
fn check(what: &str, query: &[u8], reply: &[u8], expect: Expect) {
    assert_ne!(
        expect,
        Expect::Dropped,
        "{what}: answered, but must be dropped"
    );
    assert!(
        reply.len() >= 12,
        "{what}: a reply of {} bytes",
        reply.len()
    );
    assert_eq!(reply[..2], query[..2], "{what}: the ID is echoed");
    assert_eq!(reply[2] & 0x80, 0x80, "{what}: QR is set in the reply");
    assert_eq!(
        reply[2] & 0x78,
        query[2] & 0x78,
        "{what}: the opcode is echoed"
    );
    let m = Message::from_vec(reply).unwrap_or_else(|e| panic!("{what}: reply unreadable: {e}"));
    let rcode = m.response_code();
    let soa = |m: &Message| {
        let [soa] = m.name_servers() else {
            panic!("{what}: authority {:?}", m.name_servers());
        };
        assert_eq!(soa.record_type(), RecordType::SOA, "{what}");
        assert_eq!(soa.name().to_string(), "cluster.local.", "{what}");
    };
    match expect {
        Expect::Dropped => unreachable!(),
        Expect::Error(code) => {
            assert_eq!(rcode, code, "{what}");
            assert!(m.queries().len() <= 1, "{what}");
            assert!(
                m.answers().is_empty() && m.name_servers().is_empty(),
                "{what}"
            );
        }
        Expect::Refused => {
            assert_eq!(rcode, ResponseCode::Refused, "{what}");
            assert!(!m.authoritative(), "{what}");
            assert_eq!(m.queries().len(), 1, "{what}");
            let end = 12 + skip_name(&query[12..]) + 4;
            assert_eq!(reply[12..end], query[12..end], "{what}: question echoed");
            assert!(m.answers().is_empty(), "{what}");
        }
        Expect::Served => {
            assert_eq!(rcode, ResponseCode::NoError, "{what}");
            assert!(m.authoritative(), "{what}");
            let addresses: Vec<_> = m.answers().iter().map(|r| r.data().clone()).collect();
            assert_eq!(addresses, vec![RData::A(SERVED_ADDRESS.into())], "{what}");
        }
        Expect::NoData => {
            assert_eq!(rcode, ResponseCode::NoError, "{what}");
            assert!(m.authoritative(), "{what}");
            assert!(m.answers().is_empty(), "{what}");
            soa(&m);
        }
        Expect::NxDomain => {
            assert_eq!(rcode, ResponseCode::NXDomain, "{what}");
            assert!(m.authoritative(), "{what}");
            assert!(m.answers().is_empty(), "{what}");
            soa(&m);
        }
    }
}

/// The length of the uncompressed name at the start of `bytes`.
fn skip_name(bytes: &[u8]) -> usize {
    let mut at = 0;
    while bytes[at] != 0 {
        at += 1 + usize::from(bytes[at]);
    }
    at + 1
}

// ---------------------------------------------------------------------------------------------
// Running cases

/// Runs every case over UDP and over TCP.
fn run(server: &TestServer, cases: &[Case]) {
    assert!(!cases.is_empty());
    for c in cases {
        assert!(c.bytes.len() < 2 || c.bytes[..2] != PROBE_ID.to_be_bytes());
        if c.bytes.len() <= MAX_DATAGRAM {
            over_udp(server.addr, c);
        }
        // A zero-length message over TCP closes the connection: see its own test.
        if !c.bytes.is_empty() {
            over_tcp(server.addr, c);
        }
    }
}

/// Sends the case, then the probe, from one socket. The server reads a socket's datagrams in
/// order, so a dropped case shows as the probe's answer coming first; an answered case's reply
/// is waited for (until the deadline) even if it comes after.
fn over_udp(addr: SocketAddr, c: &Case) {
    let what = format!("{} (UDP)", c.what);
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
    socket.send_to(&c.bytes, addr).unwrap();
    let probe = probe();
    socket.send_to(&probe, addr).unwrap();
    let mut buf = vec![0; 65535];
    let (mut reply, mut probed) = (None, None);
    while probed.is_none() || (reply.is_none() && c.expect != Expect::Dropped) {
        let len = match socket.recv_from(&mut buf) {
            Ok((len, _)) => len,
            Err(e) => panic!(
                "{what}: no {} within {REPLY_TIMEOUT:?}: {e}",
                if probed.is_none() {
                    "answer to the valid query after it"
                } else {
                    "reply"
                }
            ),
        };
        let got = buf[..len].to_vec();
        assert!(
            len >= 3 && got[2] & 0x80 != 0,
            "{what}: sent a non-response {got:02x?}"
        );
        if probed.is_none() && got[..2] == PROBE_ID.to_be_bytes() {
            probed = Some(got);
        } else {
            assert!(
                probed.is_some() || c.expect != Expect::Dropped,
                "{what}: answered {got:02x?}"
            );
            assert!(reply.is_none(), "{what}: two replies");
            reply = Some(got);
        }
    }
    if let Some(reply) = reply {
        check(&what, &c.bytes, &reply, c.expect);
    }
    check(
        &format!("{what}, then a valid query"),
        &probe,
        &probed.unwrap(),
        Expect::Served,
    );
}

/// Sends the case, then the probe, on one TCP connection: the replies come in order.
fn over_tcp(addr: SocketAddr, c: &Case) {
    let what = format!("{} (TCP)", c.what);
    let mut stream = connect(addr);
    let probe = probe();
    let mut out = framed(&c.bytes);
    out.extend(framed(&probe));
    stream.write_all(&out).unwrap();
    let mut first = read_message(&mut stream, &what);
    if c.expect != Expect::Dropped {
        check(&what, &c.bytes, &first, c.expect);
        first = read_message(&mut stream, &what);
    }
    check(
        &format!("{what}, then a valid query"),
        &probe,
        &first,
        Expect::Served,
    );
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
    stream
}

/// A message with its two-byte length prefix.
fn framed(message: &[u8]) -> Vec<u8> {
    let mut v = (message.len() as u16).to_be_bytes().to_vec();
    v.extend_from_slice(message);
    v
}

fn read_message(stream: &mut TcpStream, what: &str) -> Vec<u8> {
    let mut len = [0u8; 2];
    stream
        .read_exact(&mut len)
        .unwrap_or_else(|e| panic!("{what}: no reply within {REPLY_TIMEOUT:?}: {e}"));
    let mut buf = vec![0; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut buf).unwrap();
    assert!(
        buf.len() >= 3 && buf[2] & 0x80 != 0,
        "{what}: sent a non-response"
    );
    buf
}

/// Reads until the server closes the connection (EOF or a reset) within `deadline`, and
/// returns what it sent before that.
fn read_until_closed(stream: &mut TcpStream, deadline: Duration, what: &str) -> Vec<u8> {
    stream.set_read_timeout(Some(deadline)).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return got,
            Err(e) => panic!("{what}: not closed within {deadline:?}: {e}"),
        }
    }
}

/// A valid query on a fresh connection is answered.
fn probe_tcp(addr: SocketAddr, what: &str) {
    let mut stream = connect(addr);
    let probe = probe();
    stream.write_all(&framed(&probe)).unwrap();
    let reply = read_message(&mut stream, what);
    check(
        &format!("{what}, then a valid query"),
        &probe,
        &reply,
        Expect::Served,
    );
}

// ---------------------------------------------------------------------------------------------
// The cases

#[test]
fn every_cut_of_a_valid_query_is_dropped_or_formerr() {
    let server = TestServer::start(COREFILE);
    // With an OPT, so the cuts go through the header, the question and the OPT record.
    let valid = query(0x7101, &name(SERVED), A, IN, true);
    let cases: Vec<Case> = (0..=valid.len())
        .map(|len| {
            let expect = match len {
                // Shorter than a header: nothing to answer with (CoreDNS drops these too).
                0..12 => Expect::Dropped,
                // A header whose question or OPT is cut short.
                _ if len < valid.len() => FORMERR,
                _ => Expect::Served,
            };
            case(format!("cut to {len} bytes"), valid[..len].to_vec(), expect)
        })
        .collect();
    run(&server, &cases);
}

#[test]
fn trailing_bytes_are_ignored_and_the_largest_datagrams_of_junk_are_formerr() {
    let server = TestServer::start(COREFILE);
    let valid = query(0x7201, &name(SERVED), A, IN, true);
    let padded = |len: usize| [valid.clone(), junk(len - valid.len(), 7)].concat();
    // Counts no message of this size can hold (every record takes at least 11 bytes), so the
    // junk after the header is FORMERR whatever it reads as.
    let counts = [1, 0xFFFF, 0xFFFF, 0xFFFF];
    let cases = vec![
        // Trailing bytes are not read: see the top of the file.
        case(
            "four bytes after a valid query",
            [&valid[..], &[0xde, 0xad, 0xbe, 0xef]].concat(),
            Expect::Served,
        ),
        case(
            "a valid query padded with junk to 65507 bytes",
            padded(MAX_DATAGRAM),
            Expect::Served,
        ),
        case(
            "65507 bytes: a header claiming 196605 records, then junk",
            [header(0x7202, RD, counts), junk(MAX_DATAGRAM - 12, 11)].concat(),
            FORMERR,
        ),
        case(
            "65507 bytes: one question, then 0xFF bytes (a pointer forwards)",
            [
                header(0x7203, RD, [1, 0, 0, 0]),
                vec![0xFF; MAX_DATAGRAM - 12],
            ]
            .concat(),
            FORMERR,
        ),
        case(
            "65507 bytes: one question, then labels of 63 for ever",
            [
                header(0x7204, RD, [1, 0, 0, 0]),
                vec![63; MAX_DATAGRAM - 12],
            ]
            .concat(),
            FORMERR,
        ),
    ];
    run(&server, &cases);
    // Over TCP a message may take all 65535 bytes.
    let cases = vec![
        case(
            "65535 bytes: a header claiming 196605 records, then junk",
            [header(0x7205, RD, counts), junk(65535 - 12, 13)].concat(),
            FORMERR,
        ),
        case(
            "a valid query padded with junk to 65535 bytes",
            padded(65535),
            Expect::Served,
        ),
    ];
    for c in &cases {
        over_tcp(server.addr, c);
    }
}

#[test]
fn compression_pointers_that_loop_or_do_not_point_backwards_are_formerr() {
    let server = TestServer::start(COREFILE);
    let served = name(SERVED);
    let after_question = |id: u16, qname: &[u8], counts: [u16; 4], rest: &[u8]| {
        [
            header(id, RD, counts),
            question(qname, A, IN),
            rest.to_vec(),
        ]
        .concat()
    };
    // The record after a question of two bytes (a pointer) starts at 12 + 2 + 4.
    let record_at: u8 = 18;
    // The answer record after the served name's question.
    let answer_at = 12 + served.len() + 4;
    let cases = vec![
        case(
            "a label, then a pointer back to the name's own start",
            after_question(0x7301, &[3, b'w', b'e', b'b', 0xC0, 12], [1, 0, 0, 0], &[]),
            FORMERR,
        ),
        case(
            "two pointers pointing at each other",
            after_question(0x7302, &[0xC0, 14, 0xC0, 12], [1, 0, 0, 0], &[]),
            FORMERR,
        ),
        case(
            "a pointer forwards, to a whole name in the additional section",
            after_question(0x7303, &[0xC0, record_at], [1, 0, 0, 1], &a_record(&served)),
            FORMERR,
        ),
        case(
            "a question name through a pointer into the header (`10` then the bytes at 2)",
            after_question(0x730a, &[2, b'1', b'0', 0xC0, 2], [1, 0, 0, 0], &[]),
            FORMERR,
        ),
        case(
            "a pointer past the end of the message",
            after_question(0x7304, &[0xC0, 0xFF], [1, 0, 0, 0], &[]),
            FORMERR,
        ),
        case(
            "a pointer to the largest offset",
            after_question(0x7305, &[0xFF, 0xFF], [1, 0, 0, 0], &[]),
            FORMERR,
        ),
        case(
            "an answer record's owner: two pointers pointing at each other",
            after_question(
                0x7306,
                &served,
                [1, 1, 0, 0],
                &a_record(&[0xC0, answer_at as u8 + 2, 0xC0, answer_at as u8]),
            ),
            FORMERR,
        ),
        case(
            "an additional record's owner: a pointer past the end",
            after_question(0x7307, &served, [1, 0, 0, 1], &a_record(&[0xC0, 0xF0])),
            FORMERR,
        ),
        // A pointer that does point backwards, to the question's name, is fine.
        case(
            "an answer record owned by a pointer to the question's name",
            after_question(0x7308, &served, [1, 1, 0, 0], &a_record(&[0xC0, 12])),
            Expect::Served,
        ),
    ];
    run(&server, &cases);
}

#[test]
fn labels_over_63_and_names_over_255_bytes_are_formerr() {
    let server = TestServer::start(COREFILE);
    let q = |id: u16, labels: &[&[u8]]| query(id, &name_of(labels), A, IN, false);
    let zone: [&[u8]; 2] = [b"cluster", b"local"];
    let a63 = [b'a'; 63];
    // Names under the zone of exactly `total` bytes in wire format: three labels of 63, one
    // that makes up the rest, then `cluster.local.` (15 bytes).
    let long = |id: u16, total: usize| {
        let rest = vec![b'b'; total - 3 * 64 - 15 - 1];
        q(id, &[&a63, &a63, &a63, &rest, zone[0], zone[1]])
    };
    // Or in labels of one byte.
    let many = |id: u16, count: usize| {
        let mut labels: Vec<&[u8]> = vec![b"a"; count];
        labels.extend(zone);
        q(id, &labels)
    };
    let mut cases = vec![
        case(
            "a label of 63 bytes (the most) under the zone",
            q(0x7401, &[&a63, zone[0], zone[1]]),
            Expect::NxDomain,
        ),
        case(
            "a name of 255 bytes (the most)",
            long(0x7402, 255),
            Expect::NxDomain,
        ),
        case("a name of 256 bytes", long(0x7403, 256), FORMERR),
        case(
            "five labels of 63 (321 bytes)",
            q(0x7404, &[&a63, &a63, &a63, &a63, &a63]),
            FORMERR,
        ),
        case(
            "120 labels of one byte under the zone (255 bytes)",
            many(0x7405, 120),
            Expect::NxDomain,
        ),
        case(
            "121 labels of one byte under the zone (257 bytes)",
            many(0x7406, 121),
            FORMERR,
        ),
    ];
    // Length bytes over 63 (0x40 and 0x80 are the extended and reserved label types of RFC
    // 6891 and RFC 1035), each followed by as many bytes as it would claim.
    for (i, len) in [65u8, 100, 127, 128, 191].into_iter().enumerate() {
        let label = vec![b'x'; usize::from(len & 0x3F)];
        let mut qname = vec![len];
        qname.extend(label);
        qname.extend(name("cluster.local"));
        cases.push(case(
            format!("a length byte of {len:#04x}"),
            query(0x7410 + i as u16, &qname, A, IN, false),
            FORMERR,
        ));
    }
    run(&server, &cases);
}

#[test]
fn section_counts_that_lie_are_formerr() {
    let server = TestServer::start(COREFILE);
    let q = question(&name(SERVED), A, IN);
    let with = |id: u16, counts: [u16; 4], rest: &[&[u8]]| {
        let mut v = header(id, RD, counts);
        for part in rest {
            v.extend_from_slice(part);
        }
        v
    };
    let cases = vec![
        case(
            "QDCOUNT 0 before a question",
            with(0x7501, [0, 0, 0, 0], &[&q]),
            FORMERR,
        ),
        case(
            "QDCOUNT 2 and one question",
            with(0x7502, [2, 0, 0, 0], &[&q]),
            FORMERR,
        ),
        case(
            "QDCOUNT 65535",
            with(0x7503, [0xFFFF, 0, 0, 0], &[&q]),
            FORMERR,
        ),
        case(
            "NSCOUNT 1 without a record",
            with(0x7504, [1, 0, 1, 0], &[&q]),
            FORMERR,
        ),
        case(
            "ARCOUNT 1 without a record",
            with(0x7505, [1, 0, 0, 1], &[&q]),
            FORMERR,
        ),
        case(
            "ARCOUNT 2 and one OPT",
            with(0x7506, [1, 0, 0, 2], &[&q, &opt(&[])]),
            FORMERR,
        ),
        case(
            "ANCOUNT 1 and ARCOUNT 1 with only an OPT",
            with(0x7507, [1, 1, 0, 1], &[&q, &opt(&[])]),
            FORMERR,
        ),
        case(
            "every count 65535",
            with(0x7508, [0xFFFF; 4], &[&q, &opt(&[])]),
            FORMERR,
        ),
        // miekg/dns accepts one record in the answer (NOTIFY carries a SOA there); so does
        // this server, and the query is answered as if it were not there.
        case(
            "a real A record in the answer section",
            with(0x7509, [1, 1, 0, 0], &[&q, &a_record(&[0xC0, 12])]),
            Expect::Served,
        ),
    ];
    run(&server, &cases);
}

#[test]
fn responses_are_never_answered() {
    let server = TestServer::start(COREFILE);
    let q = question(&name(SERVED), A, IN);
    // Whatever else is wrong with them, and whatever they would get as queries: answering a
    // response could loop two servers into each other or reflect traffic at a victim.
    let cases = vec![
        case(
            "QR set on a valid query",
            with_u16(query(0x7601, &name(SERVED), A, IN, true), 2, QR | RD),
            Expect::Dropped,
        ),
        case(
            "QR set on a bare header",
            header(0x7602, QR, [0; 4]),
            Expect::Dropped,
        ),
        case(
            "QR set, the question cut short (else FORMERR)",
            [header(0x7603, QR, [1, 0, 0, 0]), q[..5].to_vec()].concat(),
            Expect::Dropped,
        ),
        case(
            "QR set, opcode UPDATE (else NOTIMP)",
            [header(0x7604, QR | 5 << 11, [1, 0, 0, 0]), q.clone()].concat(),
            Expect::Dropped,
        ),
        case(
            "QR set, EDNS version 1 (else BADVERS)",
            {
                let mut v = query(0x7605, &name(SERVED), A, IN, true);
                let at = v.len() - 11 + 6;
                v[at] = 1;
                with_u16(v, 2, QR)
            },
            Expect::Dropped,
        ),
        case(
            "QR set, class CHAOS (else REFUSED)",
            with_u16(query(0x7606, &name("version.bind"), 16, 3, false), 2, QR),
            Expect::Dropped,
        ),
        case(
            "a whole NXDOMAIN response with an answer and AA, RA",
            [
                header(0x7607, QR | RD | 0x0400 | 0x0080 | 3, [1, 1, 0, 0]),
                q.clone(),
                a_record(&[0xC0, 12]),
            ]
            .concat(),
            Expect::Dropped,
        ),
        case(
            "QR set with every count 65535 and junk",
            [header(0x7608, QR, [0xFFFF; 4]), junk(1000, 17)].concat(),
            Expect::Dropped,
        ),
    ];
    run(&server, &cases);
}

#[test]
fn opcodes_other_than_query_are_notimp_from_the_header_alone() {
    let server = TestServer::start(COREFILE);
    let q = question(&name(SERVED), A, IN);
    let op = |id: u16, opcode: u16, counts: [u16; 4], rest: &[u8]| {
        [header(id, opcode << 11 | RD, counts), rest.to_vec()].concat()
    };
    let cases = vec![
        case("IQUERY (1)", op(0x7701, 1, [1, 0, 0, 0], &q), NOTIMP),
        case("DSO (6)", op(0x7702, 6, [1, 0, 0, 0], &q), NOTIMP),
        case("opcode 15", op(0x7703, 15, [1, 0, 0, 0], &q), NOTIMP),
        // As miekg/dns does (its default accept function looks at the header first): the
        // opcode says the message is not for us, whatever its body holds.
        case(
            "UPDATE with its zone section cut short",
            op(0x7704, 5, [1, 0, 0, 0], &q[..7]),
            NOTIMP,
        ),
        case(
            "opcode 7, a bare header",
            op(0x7705, 7, [0; 4], &[]),
            NOTIMP,
        ),
        case(
            "NOTIFY with every count 65535",
            op(0x7706, 4, [0xFFFF; 4], &q),
            NOTIMP,
        ),
    ];
    run(&server, &cases);
}

#[test]
fn unknown_classes_are_refused_and_unknown_types_answered_normally() {
    let server = TestServer::start(COREFILE);
    let served = name(SERVED);
    let missing = name(MISSING);
    // Nothing but IN is served, as CHAOS is refused (see protocol.rs).
    let mut cases = Vec::new();
    for (i, class) in [0u16, 2, 42, 254, 255, 0xFFFF].into_iter().enumerate() {
        cases.push(case(
            format!("class {class} for a served name"),
            query(0x7801 + i as u16, &served, A, class, true),
            Expect::Refused,
        ));
    }
    cases.push(case(
        "class 42 for a name outside every zone",
        query(0x7810, &name("example.org"), A, 42, false),
        Expect::Refused,
    ));
    // Unassigned, private-use and reserved types: the name exists but holds nothing of the
    // type (NODATA, with the SOA), or does not exist (NXDOMAIN); never an error.
    for (i, qtype) in [0u16, 4000, 65280, 65534, 65535].into_iter().enumerate() {
        cases.push(case(
            format!("type {qtype} for a served name"),
            query(0x7820 + i as u16, &served, qtype, IN, true),
            Expect::NoData,
        ));
        cases.push(case(
            format!("type {qtype} for a missing name"),
            query(0x7830 + i as u16, &missing, qtype, IN, false),
            Expect::NxDomain,
        ));
    }
    // OPT is no question to ask (RFC 6891 6.1.1: it is a pseudo-record).
    cases.push(case(
        "type OPT as the question",
        query(0x7840, &served, OPT, IN, true),
        FORMERR,
    ));
    run(&server, &cases);
}

#[test]
fn broken_edns_is_formerr() {
    let server = TestServer::start(COREFILE);
    let q = question(&name(SERVED), A, IN);
    let with = |id: u16, counts: [u16; 4], rest: &[&[u8]]| {
        let mut v = header(id, RD, counts);
        v.extend_from_slice(&q);
        for part in rest {
            v.extend_from_slice(part);
        }
        v
    };
    let cookie = option(10, &[1, 2, 3, 4, 5, 6, 7, 8]);
    // An OPT whose data is `rdata`, with a record length of `rdlen`.
    let opt_len = |rdata: &[u8], rdlen: u16| {
        let mut v = opt(rdata);
        v[9..11].copy_from_slice(&rdlen.to_be_bytes());
        v
    };
    let cases = vec![
        // RFC 6891 6.1.1.
        case(
            "two OPT records",
            with(0x7901, [1, 0, 0, 2], &[&opt(&[]), &opt(&[])]),
            FORMERR,
        ),
        // RFC 6891 6.1.1 puts the OPT in the additional section, and BIND answers FORMERR for
        // one anywhere else.
        case(
            "an OPT in the answer section",
            with(0x7902, [1, 1, 0, 0], &[&opt(&[])]),
            FORMERR,
        ),
        case(
            "an OPT in the authority section",
            with(0x7903, [1, 0, 1, 0], &[&opt(&[])]),
            FORMERR,
        ),
        case(
            "an OPT in the answer section and one in the additional",
            with(0x7904, [1, 1, 0, 1], &[&opt(&[]), &opt(&[])]),
            FORMERR,
        ),
        // RFC 6891 6.1.2: the owner MUST be the root.
        case(
            "an OPT owned by x.",
            with(0x7905, [1, 0, 0, 1], &[&[1, b'x'], &opt(&[])[1..]]),
            FORMERR,
        ),
        case(
            "an OPT owned by a pointer to the question's name",
            with(0x7906, [1, 0, 0, 1], &[&[0xC0, 12], &opt(&[])[1..]]),
            FORMERR,
        ),
        // Options must fill the OPT's data exactly (RFC 6891 6.1.2); miekg/dns fails the
        // message when one does not ("overflow unpacking opt").
        case(
            "an option running past the OPT's data",
            with(0x7907, [1, 0, 0, 1], &[&opt(&cookie[..6])]),
            FORMERR,
        ),
        case(
            "an option longer than the OPT's data",
            with(0x7908, [1, 0, 0, 1], &[&opt(&cookie[..4])]),
            FORMERR,
        ),
        case(
            "an option header of two bytes",
            with(0x7909, [1, 0, 0, 1], &[&opt(&[0, 10])]),
            FORMERR,
        ),
        case(
            "an option header of three bytes",
            with(0x790a, [1, 0, 0, 1], &[&opt(&[0, 10, 0])]),
            FORMERR,
        ),
        case(
            "a cookie, then an option header of two bytes",
            with(
                0x790b,
                [1, 0, 0, 1],
                &[&opt(&[&cookie[..], &[0, 12]].concat())],
            ),
            FORMERR,
        ),
        case(
            "an option running past the OPT, followed by an A record",
            with(
                0x790c,
                [1, 0, 0, 2],
                &[&opt(&cookie[..6]), &a_record(&[0xC0, 12])],
            ),
            FORMERR,
        ),
        case(
            "an OPT's data length past the end of the message",
            with(0x790d, [1, 0, 0, 1], &[&opt_len(&cookie, 40)]),
            FORMERR,
        ),
        // RFC 7871 7.1.1: a client subnet option that cannot be read.
        case(
            "a client subnet option of family 3",
            with(
                0x790e,
                [1, 0, 0, 1],
                &[&opt(&option(8, &[0, 3, 24, 0, 10, 36, 0]))],
            ),
            FORMERR,
        ),
        // What is well formed is served: unknown options are ignored (RFC 6891 6.1.2), a
        // payload size under 512 is taken as 512 (6.2.5), and the OPT may follow other records.
        case(
            "an unknown option and a cookie",
            with(
                0x7910,
                [1, 0, 0, 1],
                &[&opt(&[option(65001, &[1, 2, 3]), cookie.clone()].concat())],
            ),
            Expect::Served,
        ),
        case(
            "a payload size of 0",
            with(0x7911, [1, 0, 0, 1], &[&with_u16(opt(&[]), 3, 0)]),
            Expect::Served,
        ),
        case(
            "an A record before the OPT in the additional section",
            with(
                0x7912,
                [1, 0, 0, 2],
                &[&a_record(&[0xC0, 12]), &opt(&cookie)],
            ),
            Expect::Served,
        ),
    ];
    run(&server, &cases);
}

#[test]
fn tcp_framing_zero_and_65535_byte_lengths_and_a_prefix_sent_byte_by_byte() {
    let opts = clusterdns::server::TcpOptions {
        idle_timeout: Duration::from_millis(200),
        ..Default::default()
    };
    let server = TestServer::start_with(COREFILE, opts);
    // A deadline only: the server closes such connections after 200 ms of silence.
    let deadline = Duration::from_secs(10);

    // A zero-length message closes the connection; the query behind it is not answered.
    let what = "a zero-length message, then a valid query";
    let mut stream = connect(server.addr);
    stream
        .write_all(&[&[0, 0][..], &framed(&probe())].concat())
        .unwrap();
    assert_eq!(
        read_until_closed(&mut stream, deadline, what),
        Vec::<u8>::new(),
        "{what}"
    );
    probe_tcp(server.addr, what);

    // After a query answered, a length of 65535 followed by a few bytes, then silence: closed
    // by the idle timeout, without another answer.
    let what = "a length of 65535 and five bytes";
    let mut stream = connect(server.addr);
    let probe = probe();
    stream.write_all(&framed(&probe)).unwrap();
    let reply = read_message(&mut stream, what);
    check(what, &probe, &reply, Expect::Served);
    stream
        .write_all(&[0xFF, 0xFF, 0x12, 0x34, 0x01, 0x00, 0x00])
        .unwrap();
    assert_eq!(
        read_until_closed(&mut stream, deadline, what),
        Vec::<u8>::new(),
        "{what}"
    );
    probe_tcp(server.addr, what);

    // A length of 65535 with a whole body of junk after a header: FORMERR, and the query
    // behind it on the same connection is answered.
    over_tcp(
        server.addr,
        &case(
            "a length of 65535, a header and junk",
            [header(0x7a01, RD, [1, 0, 0, 0]), junk(65535 - 12, 19)].concat(),
            FORMERR,
        ),
    );
    over_tcp(
        server.addr,
        &case(
            "a length of 65535, a header and 0xFF bytes",
            [header(0x7a02, RD, [1, 0, 0, 0]), vec![0xFF; 65535 - 12]].concat(),
            FORMERR,
        ),
    );

    // Over a default server (idle timeout 10 s): the length prefix one byte at a time with
    // pauses, then the message in pieces; then a second query on the same connection.
    let server = TestServer::start(COREFILE);
    let what = "a length prefix sent byte by byte";
    let mut stream = connect(server.addr);
    let bytes = framed(&probe);
    for piece in [
        &bytes[..1],
        &bytes[1..2],
        &bytes[2..7],
        &bytes[7..20],
        &bytes[20..],
    ] {
        stream.write_all(piece).unwrap();
        stream.flush().unwrap();
        std::thread::sleep(Duration::from_millis(50));
    }
    let reply = read_message(&mut stream, what);
    check(what, &probe, &reply, Expect::Served);
    stream.write_all(&bytes).unwrap();
    let reply = read_message(&mut stream, what);
    check(
        &format!("{what}, then a valid query"),
        &probe,
        &reply,
        Expect::Served,
    );
}
