//! `trace` sends its spans to a collector: a Zipkin or Datadog endpoint played by a small HTTP
//! server on loopback that records what it is sent.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::rr::RecordType;

use crate::harness::TestServer;

/// Requests received: method, path, body.
type Received = Arc<Mutex<Vec<(String, String, serde_json::Value)>>>;

/// An HTTP/1.1 server answering 202 to everything (connections kept open), until the test ends.
fn collector() -> (SocketAddr, Received) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let received: Received = Arc::default();
    let seen = Arc::clone(&received);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let seen = Arc::clone(&seen);
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut writer = stream;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let mut parts = line.split_whitespace();
                    let method = parts.next().unwrap_or("").to_string();
                    let path = parts.next().unwrap_or("").to_string();
                    let mut length = 0;
                    loop {
                        let mut header = String::new();
                        reader.read_line(&mut header).unwrap();
                        let header = header.trim_end();
                        if header.is_empty() {
                            break;
                        }
                        if let Some((k, v)) = header.split_once(':')
                            && k.eq_ignore_ascii_case("content-length")
                        {
                            length = v.trim().parse().unwrap();
                        }
                    }
                    let mut body = vec![0; length];
                    reader.read_exact(&mut body).unwrap();
                    let body = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
                    seen.lock().unwrap().push((method, path, body));
                    writer
                        .write_all(b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n")
                        .unwrap();
                }
            });
        }
    });
    (addr, received)
}

/// Waits until `count` spans have arrived (10 s at most).
fn spans(
    received: &Received,
    count: usize,
    of: impl Fn(&serde_json::Value) -> Vec<serde_json::Value>,
) -> Vec<(String, String, serde_json::Value)> {
    let start = Instant::now();
    loop {
        let got: Vec<(String, String, serde_json::Value)> = received
            .lock()
            .unwrap()
            .iter()
            .flat_map(|(m, p, b)| of(b).into_iter().map(|s| (m.clone(), p.clone(), s)))
            .collect();
        if got.len() >= count {
            return got;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{} of {count} spans",
            got.len()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn zipkin_gets_a_span_for_every_nth_query() {
    let (at, received) = collector();
    let server = TestServer::start(&format!(
        ".:0 {{\n trace zipkin {at} {{\n  every 2\n  zipkin_max_batch_interval 100ms\n }}\n whoami\n}}\n"
    ));
    for name in [
        "one.example.",
        "Two.Example.",
        "three.example.",
        "four.example.",
    ] {
        server.query(name, RecordType::A);
    }
    let got = spans(&received, 2, |b| b.as_array().cloned().unwrap_or_default());
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        received
            .lock()
            .unwrap()
            .iter()
            .map(|(_, _, b)| b.as_array().map_or(0, Vec::len))
            .sum::<usize>(),
        2
    );
    let (method, path, span) = &got[0];
    assert_eq!((method.as_str(), path.as_str()), ("POST", "/api/v2/spans"));
    assert_eq!(span["name"], "servedns");
    assert_eq!(span["kind"], "SERVER");
    assert_eq!(span["localEndpoint"]["serviceName"], "coredns");
    assert_eq!(span["traceId"].as_str().unwrap().len(), 16);
    let tags = &span["tags"];
    assert_eq!(tags["coredns.io/name"], "two.example.");
    assert_eq!(tags["coredns.io/type"], "A");
    assert_eq!(tags["coredns.io/proto"], "udp");
    assert_eq!(tags["coredns.io/remote"], "127.0.0.1");
    assert_eq!(tags["coredns.io/rcode"], "NOERROR");
    assert_eq!(got[1].2["tags"]["coredns.io/name"], "four.example.");
}

#[test]
fn datadog_gets_traces_with_its_own_tag_names() {
    let (at, received) = collector();
    let server = TestServer::start(&format!(
        ".:0 {{\n trace datadog {at} {{\n  service dns\n  datadog_analytics_rate 0.5\n }}\n whoami\n}}\n"
    ));
    server.query_tcp("dd.example.", RecordType::AAAA);
    let got = spans(&received, 1, |b| {
        b.as_array()
            .map(|traces| {
                traces
                    .iter()
                    .flat_map(|t| t.as_array().cloned().unwrap_or_default())
                    .collect()
            })
            .unwrap_or_default()
    });
    let (method, path, span) = &got[0];
    assert_eq!((method.as_str(), path.as_str()), ("PUT", "/v0.4/traces"));
    assert_eq!(span["service"], "dns");
    assert_eq!(span["name"], "servedns");
    assert_eq!(span["meta"]["coredns.io@type"], "AAAA");
    assert_eq!(span["meta"]["coredns.io@proto"], "tcp");
    assert_eq!(span["metrics"]["_dd1.sr.eausr"], 0.5);
}

#[test]
fn an_unreachable_collector_costs_the_answers_nothing() {
    let port = crate::harness::free_port();
    let server = TestServer::start(&format!(".:0 {{\n trace 127.0.0.1:{port}\n whoami\n}}\n"));
    for _ in 0..20 {
        let m = server.query("x.example.", RecordType::A);
        assert_eq!(m.response_code(), hickory_proto::op::ResponseCode::NoError);
    }
}
