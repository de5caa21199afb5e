//! `bind`: a server block listens only on the addresses it names, blocks on one port with
//! other addresses are other servers, and the wildcard takes what no bound address does —
//! as NodeLocal DNSCache relies on (169.254.20.10 and the kube-dns address on a node).

use std::net::{IpAddr, SocketAddr, TcpStream};

use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;

use crate::harness::{TestServer, free_port, http_get, query_bytes, tcp, udp_wait};

/// The A records `name` has at `addr`, over UDP (or `None` when nothing answers) and TCP.
fn a_at(addr: SocketAddr, name: &str) -> Option<(Vec<String>, Vec<String>)> {
    let query = query_bytes(name, RecordType::A, Some(1232));
    let over_udp = udp_wait(addr, &query, std::time::Duration::from_millis(500))?;
    let over_tcp = tcp(addr, &[query]).remove(0);
    let data = |bytes: &[u8]| -> Vec<String> {
        let m = Message::from_vec(bytes).unwrap();
        m.answers().iter().map(|r| r.data().to_string()).collect()
    };
    Some((data(&over_udp), data(&over_tcp)))
}

fn both(ip: &str) -> Option<(Vec<String>, Vec<String>)> {
    Some((vec![ip.to_string()], vec![ip.to_string()]))
}

#[test]
fn each_address_is_served_by_the_blocks_bound_to_it_and_the_wildcard_by_the_rest() {
    let port = free_port();
    let server = TestServer::start(&format!(
        "example.org:{port} {{
            bind 127.0.0.2
            hosts {{
                10.0.0.2 a.example.org
            }}
        }}
        example.org:{port} {{
            bind 127.0.0.3 127.0.0.5
            hosts {{
                10.0.0.3 a.example.org
            }}
        }}
        .:{port} {{
            hosts {{
                10.0.0.9 a.example.org
            }}
        }}"
    ));
    let at = |last: u8| SocketAddr::from(([127, 0, 0, last], port));
    assert_eq!(a_at(at(2), "a.example.org"), both("10.0.0.2"));
    assert_eq!(a_at(at(3), "a.example.org"), both("10.0.0.3"));
    assert_eq!(a_at(at(5), "a.example.org"), both("10.0.0.3"));
    // Every other address of the host reaches the wildcard's block.
    assert_eq!(a_at(at(1), "a.example.org"), both("10.0.0.9"));
    assert_eq!(a_at(at(4), "a.example.org"), both("10.0.0.9"));
    let mut listening = server.listening.clone();
    listening.sort();
    assert_eq!(listening, [at(1), at(2), at(3), at(5)]);
}

#[test]
fn a_bound_block_does_not_answer_on_other_addresses() {
    let port = free_port();
    let _server = TestServer::start(&format!(
        ".:{port} {{
            bind 127.0.0.2
            hosts {{
                10.0.0.2 a.example.org
            }}
        }}"
    ));
    assert_eq!(
        a_at(SocketAddr::from(([127, 0, 0, 2], port)), "a.example.org"),
        both("10.0.0.2")
    );
    let elsewhere = SocketAddr::from(([127, 0, 0, 1], port));
    let query = query_bytes("a.example.org", RecordType::A, Some(1232));
    assert_eq!(
        udp_wait(elsewhere, &query, std::time::Duration::from_millis(500)),
        None
    );
    assert!(TcpStream::connect(elsewhere).is_err());
}

#[test]
fn an_interface_name_binds_each_of_its_addresses_and_except_leaves_some_out() {
    let lo: Vec<IpAddr> = if_addrs::get_if_addrs()
        .unwrap()
        .into_iter()
        .filter(|i| i.name == "lo")
        .map(|i| i.ip())
        .collect();
    let server = TestServer::start(
        ".:0 {
            bind lo
            hosts {
                10.0.0.1 a.example.org
            }
        }",
    );
    let mut bound: Vec<IpAddr> = server.listening.iter().map(SocketAddr::ip).collect();
    bound.sort();
    let mut expected = lo.clone();
    expected.sort();
    assert_eq!(bound, expected);
    for addr in &server.listening {
        assert_eq!(a_at(*addr, "a.example.org"), both("10.0.0.1"), "{addr}");
    }
    let server = TestServer::start(
        ".:0 {
            bind lo {
                except ::1
            }
            hosts {
                10.0.0.1 a.example.org
            }
        }",
    );
    let bound: Vec<IpAddr> = server.listening.iter().map(SocketAddr::ip).collect();
    assert!(!bound.contains(&"::1".parse().unwrap()), "{bound:?}");
    assert!(bound.contains(&"127.0.0.1".parse().unwrap()), "{bound:?}");
}

#[test]
fn metrics_name_the_bound_address_as_the_server() {
    let port = free_port();
    let server = TestServer::start(&format!(
        "bound.example:{port} {{
            bind 127.0.0.2 127.0.0.3
            prometheus 127.0.0.1:0
            hosts {{
                10.0.0.2 a.bound.example
            }}
        }}"
    ));
    for last in [2, 3, 3] {
        let addr = SocketAddr::from(([127, 0, 0, last], port));
        assert_eq!(a_at(addr, "a.bound.example"), both("10.0.0.2"));
    }
    let (status, text) = http_get(server.http[0], "/metrics");
    assert_eq!(status, 200);
    let count = |server: &str| -> Option<String> {
        text.lines()
            .find(|l| {
                l.starts_with("coredns_dns_requests_total{")
                    && l.contains(&format!("server=\"{server}\""))
                    && l.contains("proto=\"udp\"")
                    && l.contains("zone=\"bound.example.\"")
            })
            .and_then(|l| l.rsplit(' ').next())
            .map(str::to_string)
    };
    assert_eq!(
        count(&format!("dns://127.0.0.2:{port}")).as_deref(),
        Some("1")
    );
    assert_eq!(
        count(&format!("dns://127.0.0.3:{port}")).as_deref(),
        Some("2")
    );
    assert!(
        text.contains(&format!(
            "coredns_plugin_enabled{{name=\"hosts\",server=\"dns://127.0.0.3:{port}\",view=\"\",zone=\"bound.example.\"}} 1"
        )),
        "{text}"
    );
}

#[test]
fn an_address_the_host_does_not_have_stops_the_start_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = clusterdns::config::Config::from_text(
        ".:1053 {\n bind 192.0.2.1\n hosts {\n  10.0.0.1 a.example.org\n }\n}\n",
        53,
        dir.path(),
    )
    .unwrap();
    let assembly = clusterdns::assemble(&config).unwrap();
    let err = clusterdns::server::bind(assembly.blocks, 1)
        .err()
        .expect("bound an address this host does not have");
    let text = err.to_string();
    assert!(text.contains("dns://192.0.2.1:1053"), "{text}");
}

/// A query over a UDP socket connected to `addr`: the kernel delivers only datagrams whose
/// source is `addr`, so an answer from another address of the host is never seen.
fn connected_a(addr: SocketAddr, name: &str) -> Option<Vec<String>> {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.connect(addr).unwrap();
    socket
        .set_read_timeout(Some(std::time::Duration::from_secs(2)))
        .unwrap();
    socket
        .send(&query_bytes(name, RecordType::A, Some(1232)))
        .unwrap();
    let mut buf = vec![0; 65535];
    let len = socket.recv(&mut buf).ok()?;
    let m = Message::from_vec(&buf[..len]).unwrap();
    Some(m.answers().iter().map(|r| r.data().to_string()).collect())
}

#[test]
fn on_the_wildcard_udp_answers_leave_from_the_address_the_query_was_sent_to() {
    let knot = crate::upstream::Knot::start();
    let port = free_port();
    let _server = TestServer::start(&format!(
        ".:{port} {{
            hosts {{
                10.0.0.1 a.example.org
                fallthrough
            }}
            forward . {}
        }}",
        knot.addr
    ));
    // 127.0.0.2 and 127.0.0.3 are this host's too (all of 127/8 is on lo), but replies to
    // 127.0.0.1 would leave from 127.0.0.1 unless the server names the source.
    for last in [1, 2, 3] {
        let addr = SocketAddr::from(([127, 0, 0, last], port));
        // Answered in the batch, and by a task after the upstream answered.
        assert_eq!(
            connected_a(addr, "a.example.org."),
            Some(vec!["10.0.0.1".to_string()]),
            "{addr}"
        );
        assert_eq!(
            connected_a(addr, "www.example.test."),
            Some(vec!["192.0.2.1".to_string()]),
            "{addr}"
        );
    }
}
