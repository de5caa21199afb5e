//! `rrl`: response rate limiting, against the real server over real UDP and TCP sockets.
//!
//! Counts are checked against bounds the accounting gives, not against timing: a fresh
//! account pays for one second's allowance at once and earns the allowance per second after
//! that, so `n` queries sent at once from one prefix get at least the allowance answered
//! (loopback loses nothing) and at most the allowance plus what was earned by the time the
//! last answer arrived. Each test uses client addresses of its own (all of 127/8 is loopback),
//! since the metrics are the process's.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;

use crate::harness::{TestServer, http_get, query_bytes, tcp};
use crate::upstream::Knot;

/// A name the kubernetes plugin answers on the fast path.
const CLUSTER_NAME: &str = "kubernetes.default.svc.cluster.local.";
/// A name the hosts plugin answers (the full parse).
const HOSTS_NAME: &str = "www.example.org.";
/// How long a burst's replies may keep coming after the last one.
const QUIET: Duration = Duration::from_millis(500);

/// `rrl` with `options` in a cluster block and in a hosts block, and a block without it.
fn start(options: &str) -> TestServer {
    TestServer::start(&format!(
        "cluster.local:0 {{
    prometheus 127.0.0.1:0
    rrl {{
{options}
    }}
    kubernetes cluster.local {{
        manifests DATA/cluster.yaml
    }}
}}
example.org:0 {{
    rrl {{
{options}
    }}
    hosts {{
        10.0.0.1 www.example.org
    }}
}}
free.test:0 {{
    hosts {{
        10.0.0.2 www.free.test
    }}
}}
"
    ))
}

/// What came back for a burst.
#[derive(Debug)]
struct Burst {
    sent: usize,
    /// Whole answers (no TC).
    answered: usize,
    /// Empty replies with TC.
    slipped: usize,
    /// From the first query sent to the last whole answer received.
    elapsed: Duration,
}

impl Burst {
    /// At least `rate` answered (a fresh account's second of credit), at most that and what
    /// the account earned until the last answer; every `slip`th of the rest slipped.
    fn check(&self, rate: f64, slip: usize) {
        let most = rate * (1.0 + self.elapsed.as_secs_f64()) + 1.0;
        assert!(
            self.answered as f64 >= rate && self.answered as f64 <= most,
            "{self:?}: {rate}/s answers {rate} to {most}"
        );
        let limited = self.sent - self.answered;
        match slip {
            0 => assert_eq!(self.slipped, 0, "{self:?}"),
            n => assert!(
                self.slipped <= limited / n && self.slipped + 1 >= limited / n,
                "{self:?}: every {n}th of {limited} limited should slip"
            ),
        }
    }
}

/// Sends `n` queries for `name` at once from a socket on `from`, and reads the replies until
/// none has come for [`QUIET`]. Slipped replies are checked for what a slip is.
fn burst(server: SocketAddr, from: &str, name: &str, n: usize) -> Burst {
    let socket = UdpSocket::bind((from.parse::<IpAddr>().unwrap(), 0)).unwrap();
    socket.set_read_timeout(Some(QUIET)).unwrap();
    let mut query = query_bytes(name, RecordType::A, Some(1232));
    let first = Instant::now();
    for id in 0..n as u16 {
        query[..2].copy_from_slice(&id.to_be_bytes());
        socket.send_to(&query, server).unwrap();
    }
    let (mut answered, mut slipped, mut last) = (0, 0, first);
    let mut seen = vec![false; n];
    let mut buf = vec![0; 65535];
    while let Ok((len, _)) = socket.recv_from(&mut buf) {
        let m = Message::from_vec(&buf[..len]).unwrap();
        let id = usize::from(m.id());
        assert!(id < n && !seen[id], "a reply to no query, or twice: {m:?}");
        seen[id] = true;
        assert_eq!(m.queries()[0].name().to_string(), name);
        if m.truncated() {
            assert!(
                m.answers().is_empty() && m.name_servers().is_empty(),
                "a slip has no records: {m:?}"
            );
            assert!(m.extensions().is_some(), "a slip keeps the OPT: {m:?}");
            slipped += 1;
        } else {
            assert_eq!(m.response_code(), ResponseCode::NoError, "{m:?}");
            assert!(!m.answers().is_empty(), "{m:?}");
            answered += 1;
            last = Instant::now();
        }
    }
    Burst {
        sent: n,
        answered,
        slipped,
        elapsed: last - first,
    }
}

/// One query from `from`: whether a whole answer came back within `wait`.
fn answered(server: SocketAddr, from: &str, name: &str, wait: Duration) -> bool {
    let socket = UdpSocket::bind((from.parse::<IpAddr>().unwrap(), 0)).unwrap();
    socket.set_read_timeout(Some(wait)).unwrap();
    socket
        .send_to(&query_bytes(name, RecordType::A, Some(1232)), server)
        .unwrap();
    let mut buf = vec![0; 65535];
    socket.recv_from(&mut buf).is_ok_and(|(len, _)| {
        let m = Message::from_vec(&buf[..len]).unwrap();
        !m.truncated() && !m.answers().is_empty()
    })
}

/// `coredns_rrl_responses_exceeded_total` for `client`.
fn exceeded(server: &TestServer, client: &str) -> u64 {
    let (status, text) = http_get(server.http[0], "/metrics");
    assert_eq!(status, 200);
    let line = format!("coredns_rrl_responses_exceeded_total{{client_ip=\"{client}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&line))
        .map_or(0, |v| v.parse().unwrap())
}

#[test]
fn a_burst_gets_about_the_allowance_on_the_fast_and_the_full_path() {
    let server = start("        responses-per-second 10\n        window 30");
    let fast = burst(server.addr, "127.0.10.1", CLUSTER_NAME, 100);
    fast.check(10.0, 0);
    let full = burst(server.addr, "127.0.11.1", HOSTS_NAME, 100);
    full.check(10.0, 0);
    // Every limited response is counted, by client.
    assert_eq!(exceeded(&server, "127.0.10.1"), 100 - fast.answered as u64);
    assert_eq!(exceeded(&server, "127.0.11.1"), 100 - full.answered as u64);
    // A block without rrl answers the limited client.
    assert!(answered(
        server.addr,
        "127.0.10.1",
        "www.free.test.",
        Duration::from_secs(5)
    ));
}

#[test]
fn every_other_limited_response_slips_with_tc() {
    let server = start("        responses-per-second 10\n        window 30\n        slip-ratio 2");
    burst(server.addr, "127.0.12.1", CLUSTER_NAME, 100).check(10.0, 2);
    burst(server.addr, "127.0.13.1", HOSTS_NAME, 100).check(10.0, 2);
    let one = start("        responses-per-second 10\n        window 30\n        slip-ratio 1");
    let all = burst(one.addr, "127.0.14.1", CLUSTER_NAME, 100);
    all.check(10.0, 1);
    assert_eq!(all.answered + all.slipped, 100, "every limited one slips");
}

#[test]
fn another_prefix_is_unaffected_and_one_prefix_shares_its_account() {
    let server = start("        responses-per-second 10\n        window 30");
    burst(server.addr, "127.0.15.1", CLUSTER_NAME, 100).check(10.0, 0);
    // Another /24: its own allowance.
    burst(server.addr, "127.0.16.1", CLUSTER_NAME, 100).check(10.0, 0);
    // The same /24 from another address: in the first one's debt (30 s of it).
    let same = burst(server.addr, "127.0.15.200", CLUSTER_NAME, 20);
    assert_eq!((same.answered, same.slipped), (0, 0), "{same:?}");
    // Another name is another account.
    burst(
        server.addr,
        "127.0.15.1",
        "web.prod.svc.cluster.local.",
        100,
    )
    .check(10.0, 0);
}

#[test]
fn tcp_is_never_limited() {
    let server = start("        responses-per-second 10\n        window 30");
    // Over UDP, 127.0.0.1's prefix is in debt...
    burst(server.addr, "127.0.0.1", CLUSTER_NAME, 100).check(10.0, 0);
    assert!(!answered(
        server.addr,
        "127.0.0.1",
        CLUSTER_NAME,
        Duration::from_millis(500)
    ));
    // ... and over TCP every query is answered.
    let queries: Vec<Vec<u8>> = (0..200)
        .map(|_| query_bytes(CLUSTER_NAME, RecordType::A, Some(1232)))
        .collect();
    for reply in tcp(server.addr, &queries) {
        let m = Message::from_vec(&reply).unwrap();
        assert!(!m.truncated() && !m.answers().is_empty(), "{m:?}");
    }
}

#[test]
fn report_only_answers_everything_and_counts_what_it_would_limit() {
    let server = start("        responses-per-second 10\n        window 30\n        report-only");
    let b = burst(server.addr, "127.0.17.1", CLUSTER_NAME, 100);
    assert_eq!((b.answered, b.slipped), (100, 0), "{b:?}");
    let most = 10.0 * (1.0 + b.elapsed.as_secs_f64()) + 1.0;
    let counted = exceeded(&server, "127.0.17.1");
    assert!(
        counted <= 90 && counted as f64 >= 100.0 - most,
        "{counted} counted of {b:?}"
    );
}

#[test]
fn after_the_window_the_client_is_answered_again() {
    let server = start("        responses-per-second 10\n        window 3");
    burst(server.addr, "127.0.18.1", CLUSTER_NAME, 50).check(10.0, 0);
    // In debt for the window: right after the burst, nothing.
    assert!(!answered(
        server.addr,
        "127.0.18.1",
        CLUSTER_NAME,
        Duration::from_millis(200)
    ));
    // Asking at half the allowance, the debt is paid off and answers come again.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !answered(
        server.addr,
        "127.0.18.1",
        CLUSTER_NAME,
        Duration::from_millis(500),
    ) {
        assert!(Instant::now() < deadline, "never answered again");
    }
    // And then as a fresh client would be: the whole allowance at once.
    std::thread::sleep(Duration::from_millis(1100));
    burst(server.addr, "127.0.18.1", CLUSTER_NAME, 50).check(10.0, 0);
}

#[test]
fn forwarded_answers_are_limited_too() {
    let knot = Knot::start();
    let server = TestServer::start(&format!(
        ".:0 {{
    rrl {{
        responses-per-second 10
        window 30
        slip-ratio 3
    }}
    forward . {}
}}
",
        knot.addr
    ));
    burst(server.addr, "127.0.19.1", "www.example.test.", 60).check(10.0, 3);
    // The cache of forwarded answers is behind rrl as well.
    let cached = TestServer::start(&format!(
        ".:0 {{
    rrl {{
        responses-per-second 10
        window 30
    }}
    cache
    forward . {}
}}
",
        knot.addr
    ));
    burst(cached.addr, "127.0.19.1", "www.example.test.", 60).check(10.0, 0);
}

#[test]
fn requests_per_second_drops_queries_whatever_they_ask() {
    let server = start("        requests-per-second 10\n        window 30");
    // Every name in the block counts against one allowance per prefix.
    let b = burst(server.addr, "127.0.23.1", CLUSTER_NAME, 50);
    b.check(10.0, 0);
    let other = burst(server.addr, "127.0.23.1", "web.prod.svc.cluster.local.", 20);
    assert_eq!((other.answered, other.slipped), (0, 0), "{other:?}");
    // Responses themselves are not limited without their allowance: another prefix gets
    // the requests' allowance, whatever it asks.
    burst(server.addr, "127.0.24.1", HOSTS_NAME, 50).check(10.0, 0);
}
