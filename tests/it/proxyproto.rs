//! `proxyproto`: queries behind a load balancer that speaks the PROXY protocol are answered as
//! from the client the header names (`whoami` says whom), over UDP (version 2) and TCP
//! (versions 1 and 2), with the `allow`/`default` policies and UDP session tracking.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

use hickory_proto::op::Message;
use hickory_proto::rr::{RData, RecordType};

use crate::harness::{TestServer, query_bytes};

/// A version 2 PROXY header for an IPv4 `client` (to 127.0.0.1:53), of `protocol` (1 TCP, 2 UDP).
fn v2(client: SocketAddr, protocol: u8) -> Vec<u8> {
    let SocketAddr::V4(client) = client else {
        panic!("IPv4")
    };
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.extend_from_slice(&[0x21, 0x10 | protocol, 0, 12]);
    h.extend_from_slice(&client.ip().octets());
    h.extend_from_slice(&[127, 0, 0, 1]);
    h.extend_from_slice(&client.port().to_be_bytes());
    h.extend_from_slice(&53u16.to_be_bytes());
    h
}

/// `whoami`'s answer to a datagram: the address it saw, or `None` without an answer.
fn udp(server: &TestServer, datagram: &[u8]) -> Option<String> {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(700)))
        .unwrap();
    socket.send_to(datagram, server.addr).unwrap();
    let mut buf = [0u8; 1500];
    let len = socket.recv(&mut buf).ok()?;
    Some(seen(&buf[..len]))
}

fn seen(response: &[u8]) -> String {
    let m = Message::from_vec(response).unwrap();
    let ip = m
        .additionals()
        .iter()
        .find_map(|r| match r.data() {
            RData::A(a) => Some(a.to_string()),
            _ => None,
        })
        .unwrap_or_default();
    let srv = m
        .additionals()
        .iter()
        .find_map(|r| match r.data() {
            RData::SRV(s) => Some(format!("{} {}", r.name(), s.port())),
            _ => None,
        })
        .unwrap_or_default();
    format!("{ip} {srv}")
}

/// `whoami`'s answer over a TCP connection that starts with `header`.
fn tcp(server: &TestServer, header: &[u8]) -> Option<String> {
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let query = query_bytes("who.example.", RecordType::A, None);
    let mut bytes = header.to_vec();
    bytes.extend_from_slice(&(query.len() as u16).to_be_bytes());
    bytes.extend_from_slice(&query);
    stream.write_all(&bytes).unwrap();
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).ok()?;
    let mut response = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut response).ok()?;
    Some(seen(&response))
}

fn server(options: &str) -> TestServer {
    TestServer::start(&format!(
        ".:0 {{\n proxyproto {{\n{options}\n }}\n whoami\n}}\n"
    ))
}

#[test]
fn the_header_names_the_client_over_udp_and_tcp() {
    let s = server("");
    let q = query_bytes("who.example.", RecordType::A, None);
    let client: SocketAddr = "203.0.113.7:5555".parse().unwrap();
    let with = [v2(client, 2), q.clone()].concat();
    assert_eq!(
        udp(&s, &with).unwrap(),
        "203.0.113.7 _udp.who.example. 5555"
    );
    // Without a header: the sender itself.
    assert!(udp(&s, &q).unwrap().starts_with("127.0.0.1 "));
    assert_eq!(
        tcp(&s, b"PROXY TCP4 198.51.100.9 127.0.0.1 40000 53\r\n").unwrap(),
        "198.51.100.9 _tcp.who.example. 40000"
    );
    let client: SocketAddr = "192.0.2.44:1234".parse().unwrap();
    assert_eq!(
        tcp(&s, &v2(client, 1)).unwrap(),
        "192.0.2.44 _tcp.who.example. 1234"
    );
    assert!(tcp(&s, b"").unwrap().starts_with("127.0.0.1 "));
    // A broken header: no answer.
    assert!(tcp(&s, b"PROXY TCP4 nonsense\r\n").is_none());
    let mut broken = v2(client, 2);
    broken[12] = 0x31;
    assert!(udp(&s, &[broken, q].concat()).is_none());
}

#[test]
fn sources_outside_allow_get_the_default_policy() {
    let client: SocketAddr = "203.0.113.7:5555".parse().unwrap();
    let q = query_bytes("who.example.", RecordType::A, None);
    let with = [v2(client, 2), q.clone()].concat();
    // Loopback is not allowed: its header is taken off and not used.
    let ignore = server("  allow 10.0.0.0/8");
    assert!(udp(&ignore, &with).unwrap().starts_with("127.0.0.1 "));
    let reject = server("  allow 10.0.0.0/8\n  default reject");
    assert!(udp(&reject, &with).is_none());
    assert!(udp(&reject, &q).unwrap().starts_with("127.0.0.1 "));
    let allowed = server("  allow 127.0.0.0/8 10.0.0.0/8\n  default reject");
    assert!(udp(&allowed, &with).unwrap().starts_with("203.0.113.7 "));
}

#[test]
fn a_header_alone_names_the_client_of_the_datagrams_that_follow() {
    let s = server("  udp_session_tracking 30s 16");
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(700)))
        .unwrap();
    let client: SocketAddr = "203.0.113.8:7777".parse().unwrap();
    socket.send_to(&v2(client, 2), s.addr).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    socket
        .send_to(&query_bytes("who.example.", RecordType::A, None), s.addr)
        .unwrap();
    let mut buf = [0u8; 1500];
    let len = socket.recv(&mut buf).unwrap();
    assert_eq!(seen(&buf[..len]), "203.0.113.8 _udp.who.example. 7777");
}
