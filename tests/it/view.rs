//! `view`: blocks of the same zone and port split the queries by what their expressions say
//! of each (the client's network, the type, the name), the first that holds in Corefile
//! order taking it, as CoreDNS's README examples do.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};

use crate::harness::{TestServer, http_get, query_bytes, tcp};

/// `name`/`qtype` asked of `server` over UDP from the local address `from`.
fn ask_from(server: &TestServer, from: Ipv4Addr, name: &str, qtype: RecordType) -> Message {
    let socket = UdpSocket::bind(SocketAddr::from((from, 0))).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    socket
        .send_to(&query_bytes(name, qtype, Some(1232)), server.addr)
        .unwrap();
    let mut buf = [0u8; 1500];
    let (n, _) = socket.recv_from(&mut buf).expect("an answer");
    Message::from_vec(&buf[..n]).unwrap()
}

fn addresses(m: &Message) -> Vec<String> {
    m.answers()
        .iter()
        .filter_map(|r| match r.data() {
            RData::A(a) => Some(a.0.to_string()),
            RData::AAAA(a) => Some(a.0.to_string()),
            _ => None,
        })
        .collect()
}

#[test]
fn split_dns_by_client_network_type_and_name_the_first_view_that_holds_answers() {
    let server = TestServer::start(
        ".:0 {\n prometheus 127.0.0.1:0\n view second {\n  expr incidr(client_ip(), '127.0.0.2/32')\n }\n hosts {\n  2.2.2.2 test\n }\n}\n\
         .:0 {\n view six {\n  expr type() in ['AAAA']\n  expr proto() == 'udp'\n }\n hosts {\n  2001:db8::1 test\n }\n}\n\
         .:0 {\n view abc {\n  expr name() matches '^abc\\\\..*\\\\.example\\\\.$'\n }\n hosts {\n  7.7.7.7 abc.x.example\n }\n}\n\
         .:0 {\n prometheus 127.0.0.1:0\n hosts {\n  3.3.3.3 test\n  4.4.4.4 abc.x.example\n  fallthrough\n }\n}\n",
    );
    let local = Ipv4Addr::LOCALHOST;
    let second = Ipv4Addr::new(127, 0, 0, 2);
    assert_eq!(
        addresses(&ask_from(&server, second, "test.", RecordType::A)),
        ["2.2.2.2"]
    );
    assert_eq!(
        addresses(&ask_from(&server, local, "test.", RecordType::A)),
        ["3.3.3.3"]
    );
    // From 127.0.0.2 the first view takes every question, AAAA too (hosts: NODATA there).
    let m = ask_from(&server, second, "test.", RecordType::AAAA);
    assert_eq!(
        (m.response_code(), m.answers().len()),
        (ResponseCode::NoError, 0)
    );
    assert_eq!(
        addresses(&ask_from(&server, local, "test.", RecordType::AAAA)),
        ["2001:db8::1"]
    );
    // Both of `six`'s expressions must hold: over TCP, the catch-all answers (NODATA).
    let over_tcp = Message::from_vec(
        &tcp(server.addr, &[query_bytes("test.", RecordType::AAAA, None)]).remove(0),
    )
    .unwrap();
    assert_eq!(
        (over_tcp.response_code(), over_tcp.answers().len()),
        (ResponseCode::NoError, 0)
    );
    assert_eq!(
        addresses(&ask_from(&server, local, "abc.x.example.", RecordType::A)),
        ["7.7.7.7"]
    );
    // The regex wants a label between abc and example.
    let m = ask_from(&server, local, "abc.example.", RecordType::A);
    assert_eq!(m.response_code(), ResponseCode::ServFail, "{m}");
    // Each block counts under its view's name.
    let (_, metrics) = http_get(server.http[0], "/metrics");
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("coredns_dns_requests_total{") && l.contains("view=\"second\"")),
        "{metrics}"
    );
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("coredns_plugin_enabled{name=\"hosts\",")
                && l.contains("view=\"second\"")),
        "{metrics}"
    );
}

#[test]
fn a_zone_with_no_view_that_holds_falls_to_the_enclosing_zone() {
    let server = TestServer::start(
        "example.org:0 {\n view inside {\n  expr incidr(client_ip(), '127.0.0.2/32')\n }\n hosts {\n  10.0.0.1 www.example.org\n }\n}\n\
         .:0 {\n hosts {\n  10.0.0.2 www.example.org\n }\n}\n",
    );
    let m = ask_from(
        &server,
        Ipv4Addr::new(127, 0, 0, 2),
        "www.example.org.",
        RecordType::A,
    );
    assert_eq!(addresses(&m), ["10.0.0.1"]);
    let m = ask_from(
        &server,
        Ipv4Addr::LOCALHOST,
        "www.example.org.",
        RecordType::A,
    );
    assert_eq!(addresses(&m), ["10.0.0.2"]);
}

/// GSLB as CoreDNS's geoip README shows it: a view picks the block by the country of the
/// client's subnet (`dig +subnet`), from a MaxMind test database.
#[test]
fn a_view_picks_the_block_by_the_clients_country() {
    let db = format!(
        "{}/tests/data/geoip/GeoLite2-City-Test.mmdb",
        env!("CARGO_MANIFEST_DIR")
    );
    let server = TestServer::start(&format!(
        "example.org:0 {{\n metadata\n geoip {db} {{\n  edns-subnet\n }}\n view uk {{\n  expr metadata('geoip/country/code') == 'GB'\n }}\n template IN A {{\n  answer \"{{{{ .Name }}}} 60 IN A 10.0.0.44\"\n }}\n}}\n\
         example.org:0 {{\n template IN A {{\n  answer \"{{{{ .Name }}}} 60 IN A 10.0.0.1\"\n }}\n}}\n"
    ));
    let short = |args: &[&str]| server.dig(args).trim().to_string();
    assert_eq!(
        short(&["+short", "+subnet=2.125.160.216/32", "www.example.org", "A"]),
        "10.0.0.44"
    );
    assert_eq!(
        short(&["+short", "+subnet=89.160.20.128/25", "www.example.org", "A"]),
        "10.0.0.1"
    );
    assert_eq!(short(&["+short", "www.example.org", "A"]), "10.0.0.1");
}
