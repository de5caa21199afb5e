//! Protocol rules that hold for every answer: EDNS, sizes, truncation, errors, TCP.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use hickory_proto::op::{Message, OpCode, ResponseCode};
use hickory_proto::rr::{DNSClass, RecordType};

use crate::harness::{TestServer, query_bytes, query_message, tcp, udp, udp_wait};

const COREFILE: &str = ".:0 {
    kubernetes cluster.local in-addr.arpa {
        manifests DATA/cluster.yaml
        pods insecure
    }
}
";

const BIG: &str = "big.prod.svc.cluster.local.";

fn parse(bytes: &[u8]) -> Message {
    Message::from_vec(bytes).unwrap()
}

#[test]
fn opt_is_echoed_with_our_size_only_when_the_client_sent_one() {
    let server = TestServer::start(COREFILE);
    let m = parse(
        &udp(
            server.addr,
            &query_bytes(
                "kubernetes.default.svc.cluster.local.",
                RecordType::A,
                Some(4096),
            ),
        )
        .unwrap(),
    );
    assert_eq!(m.extensions().as_ref().unwrap().max_payload(), 1232);
    let m = parse(
        &udp(
            server.addr,
            &query_bytes("kubernetes.default.svc.cluster.local.", RecordType::A, None),
        )
        .unwrap(),
    );
    assert!(m.extensions().is_none());
    assert_eq!(m.answers().len(), 1);
}

#[test]
fn udp_answers_never_exceed_what_the_client_can_take() {
    let server = TestServer::start(COREFILE);
    // Without EDNS: 512 bytes, so of sixty addresses as many whole records as fit come back
    // (16 bytes each, the owner a pointer to the question), with TC, as CoreDNS's Truncate.
    let question = 12 + BIG.trim_end_matches('.').len() + 2 + 4;
    let bytes = udp(server.addr, &query_bytes(BIG, RecordType::A, None)).unwrap();
    assert!(bytes.len() <= 512);
    let m = parse(&bytes);
    assert!(m.truncated());
    assert_eq!(m.answers().len(), (512 - question) / 16);
    assert!(m.answers().iter().all(|r| r.record_type() == RecordType::A));
    assert_eq!(m.response_code(), ResponseCode::NoError);
    // A client that takes 600 bytes gets no more than that (its OPT, 11 bytes, included).
    let bytes = udp(server.addr, &query_bytes(BIG, RecordType::A, Some(600))).unwrap();
    assert!(bytes.len() <= 600);
    let m = parse(&bytes);
    assert!(m.truncated());
    assert_eq!(m.answers().len(), (600 - question - 11) / 16);
    assert!(m.extensions().is_some());
    // With room enough, everything; and over TCP always everything.
    let m = parse(&udp(server.addr, &query_bytes(BIG, RecordType::A, Some(4096))).unwrap());
    assert!(!m.truncated());
    assert_eq!(m.answers().len(), 60);
    let m = parse(&tcp(server.addr, &[query_bytes(BIG, RecordType::A, None)])[0]);
    assert!(!m.truncated());
    assert_eq!(m.answers().len(), 60);
}

#[test]
fn the_question_comes_back_exactly_as_sent() {
    let server = TestServer::start(COREFILE);
    let name = "SiDeCaR-SvC-HeAdLeSs.DeFaUlT.sVc.ClUsTeR.lOcAl.";
    let query = query_bytes(name, RecordType::A, None);
    let reply = udp(server.addr, &query).unwrap();
    // Byte for byte: the question section sits right after the header in both.
    let qlen = query.len() - 12;
    assert_eq!(&reply[12..12 + qlen], &query[12..]);
    let m = parse(&reply);
    assert_eq!(m.answers().len(), 3);
    assert_eq!(m.answers()[0].name().to_string(), name);
}

/// A header followed by `rest`, with the given ID, flags and counts.
fn raw(id: u16, flags: u16, counts: [u16; 4], rest: &[u8]) -> Vec<u8> {
    let mut v = id.to_be_bytes().to_vec();
    v.extend_from_slice(&flags.to_be_bytes());
    for c in counts {
        v.extend_from_slice(&c.to_be_bytes());
    }
    v.extend_from_slice(rest);
    v
}

/// The wire form of one question.
fn question(name: &str, qtype: u16, class: u16) -> Vec<u8> {
    let mut v = Vec::new();
    for label in name.trim_end_matches('.').split('.') {
        v.push(label.len() as u8);
        v.extend_from_slice(label.as_bytes());
    }
    v.push(0);
    v.extend_from_slice(&qtype.to_be_bytes());
    v.extend_from_slice(&class.to_be_bytes());
    v
}

#[test]
fn malformed_and_unsupported_queries_get_the_right_code() {
    let server = TestServer::start(COREFILE);
    let q = question("kubernetes.default.svc.cluster.local", 1, 1);
    let two = [q.clone(), q.clone()].concat();
    let cases: Vec<(&str, Vec<u8>, ResponseCode)> = vec![
        (
            "no question",
            raw(0x0a0a, 0x0100, [0, 0, 0, 0], &[]),
            ResponseCode::FormErr,
        ),
        (
            "two questions",
            raw(0x0a0b, 0x0100, [2, 0, 0, 0], &two),
            ResponseCode::FormErr,
        ),
        (
            "cut-off question",
            raw(0x0a0c, 0x0100, [1, 0, 0, 0], &q[..9]),
            ResponseCode::FormErr,
        ),
        (
            "count beyond the data",
            raw(0x0a0d, 0x0100, [1, 3, 0, 0], &q),
            ResponseCode::FormErr,
        ),
        (
            "label over 63",
            raw(
                0x0a0e,
                0x0100,
                [1, 0, 0, 0],
                &[&[64u8][..], &[b'a'; 64], &[0, 0, 1, 0, 1]].concat(),
            ),
            ResponseCode::FormErr,
        ),
        (
            "pointer loop",
            raw(0x0a0f, 0x0100, [1, 0, 0, 0], &[0xc0, 12, 0, 1, 0, 1]),
            ResponseCode::FormErr,
        ),
        (
            "NOTIFY",
            raw(
                0x0b01,
                u16::from(u8::from(OpCode::Notify)) << 11,
                [1, 0, 0, 0],
                &q,
            ),
            ResponseCode::NotImp,
        ),
        (
            "UPDATE",
            raw(
                0x0b02,
                u16::from(u8::from(OpCode::Update)) << 11,
                [1, 0, 0, 0],
                &q,
            ),
            ResponseCode::NotImp,
        ),
        (
            "STATUS",
            raw(0x0b03, 2 << 11, [1, 0, 0, 0], &q),
            ResponseCode::NotImp,
        ),
        (
            "AXFR",
            raw(0x0c01, 0, [1, 0, 0, 0], &question("cluster.local", 252, 1)),
            ResponseCode::Refused,
        ),
        (
            "IXFR",
            raw(0x0c02, 0, [1, 0, 0, 0], &question("cluster.local", 251, 1)),
            ResponseCode::Refused,
        ),
        (
            "CHAOS class",
            raw(0x0c03, 0, [1, 0, 0, 0], &question("version.bind", 16, 3)),
            ResponseCode::Refused,
        ),
    ];
    for (what, bytes, rcode) in cases {
        for reply in [
            udp(server.addr, &bytes).expect(what),
            tcp(server.addr, std::slice::from_ref(&bytes)).remove(0),
        ] {
            assert_eq!(&reply[..2], &bytes[..2], "{what}: ID");
            assert_eq!(reply[2] & 0x80, 0x80, "{what}: QR");
            assert_eq!(u16::from(reply[3] & 0x0f), u16::from(rcode.low()), "{what}");
        }
    }
}

#[test]
fn edns_versions_above_zero_get_badvers() {
    let server = TestServer::start(COREFILE);
    let mut m = query_message(
        "kubernetes.default.svc.cluster.local.",
        RecordType::A,
        Some(1232),
    );
    m.extensions_mut().as_mut().unwrap().set_version(1);
    let reply = parse(&udp(server.addr, &m.to_vec().unwrap()).unwrap());
    // BADVERS and BADSIG share code 16; the parser names it BADSIG.
    assert_eq!(u16::from(reply.response_code()), 16);
    assert_eq!(reply.extensions().as_ref().unwrap().version(), 0);
    assert!(reply.answers().is_empty());
}

#[test]
fn short_packets_and_responses_are_dropped_and_service_goes_on() {
    let server = TestServer::start(COREFILE);
    let wait = Duration::from_millis(300);
    assert!(udp_wait(server.addr, &[0x12, 0x34, 0x01], wait).is_none());
    assert!(udp_wait(server.addr, &[], wait).is_none());
    let mut response = query_bytes("kubernetes.default.svc.cluster.local.", RecordType::A, None);
    response[2] |= 0x80;
    assert!(udp_wait(server.addr, &response, wait).is_none());
    assert_eq!(
        server
            .query("kubernetes.default.svc.cluster.local.", RecordType::A)
            .answers()
            .len(),
        1
    );
}

#[test]
fn names_outside_every_zone_are_refused() {
    let server = TestServer::start(
        "cluster.local:0 {
        kubernetes {
            manifests DATA/cluster.yaml
        }
    }",
    );
    let m = server.query("example.org.", RecordType::A);
    assert_eq!(m.response_code(), ResponseCode::Refused);
    assert!(!m.authoritative());
    assert_eq!(
        server
            .query("kubernetes.default.svc.cluster.local.", RecordType::A)
            .answers()
            .len(),
        1
    );
}

#[test]
fn server_blocks_on_one_port_are_chosen_by_the_longest_zone() {
    let server = TestServer::start(
        ".:0 {
        hosts {
            10.0.0.1 a.example.org
        }
    }
    example.org:0 {
        hosts {
            10.0.0.2 a.example.org
        }
    }",
    );
    let m = server.query("a.example.org.", RecordType::A);
    assert_eq!(m.answers()[0].data().to_string(), "10.0.0.2");
}

#[test]
fn tcp_answers_pipelined_queries_on_one_connection() {
    let server = TestServer::start(COREFILE);
    let names = [
        "kubernetes.default.svc.cluster.local.",
        BIG,
        "nosuch.default.svc.cluster.local.",
    ];
    let queries: Vec<Vec<u8>> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let mut m = query_message(n, RecordType::A, None);
            m.set_id(100 + i as u16);
            m.to_vec().unwrap()
        })
        .collect();
    let replies: Vec<Message> = tcp(server.addr, &queries)
        .iter()
        .map(|b| parse(b))
        .collect();
    let ids: Vec<u16> = replies.iter().map(Message::id).collect();
    assert_eq!(ids, vec![100, 101, 102]);
    assert_eq!(replies[1].answers().len(), 60);
    assert_eq!(replies[2].response_code(), ResponseCode::NXDomain);
}

fn closed_within(addr: SocketAddr, send: &[u8], within: Duration) -> bool {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(within)).unwrap();
    stream.write_all(send).unwrap();
    let mut buf = [0u8; 1];
    matches!(stream.read(&mut buf), Ok(0))
}

#[test]
fn idle_half_sent_and_zero_length_tcp_connections_are_closed() {
    let opts = clusterdns::server::TcpOptions {
        idle_timeout: Duration::from_millis(200),
        read_timeout: Duration::from_millis(200),
        ..Default::default()
    };
    let server = TestServer::start_with(COREFILE, opts);
    let bound = Duration::from_secs(3);
    assert!(closed_within(server.addr, &[], bound), "idle");
    assert!(
        closed_within(server.addr, &[0, 40, 1, 2], bound),
        "half-sent"
    );
    assert!(closed_within(server.addr, &[0, 0], bound), "zero length");
    assert_eq!(
        server
            .query_tcp("kubernetes.default.svc.cluster.local.", RecordType::A)
            .answers()
            .len(),
        1
    );
}

#[test]
fn ipv6_clients_are_served_on_the_same_port() {
    let server = TestServer::start(COREFILE);
    let Ok(socket) = std::net::UdpSocket::bind("[::1]:0") else {
        eprintln!("skipped: no IPv6 loopback");
        return;
    };
    socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let addr = SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, server.addr.port()));
    socket
        .send_to(
            &query_bytes("kubernetes.default.svc.cluster.local.", RecordType::A, None),
            addr,
        )
        .unwrap();
    let mut buf = [0u8; 512];
    let (len, _) = socket.recv_from(&mut buf).unwrap();
    assert_eq!(parse(&buf[..len]).answers().len(), 1);
    let m = parse(
        &tcp(
            addr,
            &[query_bytes(
                "kubernetes.default.svc.cluster.local.",
                RecordType::A,
                None,
            )],
        )[0],
    );
    assert_eq!(m.answers().len(), 1);
}

#[test]
fn any_class_questions_are_refused_but_in_is_served() {
    let server = TestServer::start(COREFILE);
    let mut m = query_message("kubernetes.default.svc.cluster.local.", RecordType::A, None);
    m.queries_mut()[0].set_query_class(DNSClass::IN);
    assert_eq!(
        parse(&udp(server.addr, &m.to_vec().unwrap()).unwrap())
            .answers()
            .len(),
        1
    );
}
