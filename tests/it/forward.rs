//! `forward`: names nothing here holds go to a real upstream (Knot DNS) or a scripted one.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};

use crate::harness::{TestServer, http_get, query_bytes, query_message, tcp, udp};
use crate::upstream::{Fake, Knot, free_port};

fn addresses(m: &Message) -> Vec<Ipv4Addr> {
    m.answers()
        .iter()
        .filter_map(|r| match r.data() {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect()
}

/// A reply to `query` from a scripted upstream: its ID and question, these answers.
fn reply_to(query: &Message, answers: &[Ipv4Addr], truncated: bool) -> Vec<u8> {
    let mut m = Message::new();
    m.set_id(query.id())
        .set_message_type(MessageType::Response)
        .set_recursion_desired(true)
        .set_recursion_available(true)
        .set_truncated(truncated);
    m.add_queries(query.queries().to_vec());
    let name = query.queries()[0].name().clone();
    for a in answers {
        m.add_answer(Record::from_rdata(name.clone(), 60, RData::A(A(*a))));
    }
    m.to_vec().unwrap()
}

#[test]
fn answers_come_from_the_upstream_under_the_clients_id_and_question() {
    let knot = Knot::start();
    let server = TestServer::start(&format!(".:0 {{\n forward . {}\n}}\n", knot.addr));
    let m = server.query("www.example.test.", RecordType::A);
    assert_eq!(m.id(), 0x1234);
    assert_eq!(m.response_code(), ResponseCode::NoError);
    assert_eq!(addresses(&m), vec![Ipv4Addr::new(192, 0, 2, 1)]);
    // The question comes back as the client wrote it.
    let m = server.query("WwW.Example.TEST.", RecordType::A);
    assert_eq!(m.queries()[0].name().to_string(), "WwW.Example.TEST.");
    assert_eq!(addresses(&m), vec![Ipv4Addr::new(192, 0, 2, 1)]);
    // NXDOMAIN and NODATA with the upstream's SOA; a CNAME with its target.
    let m = server.query("nosuch.example.test.", RecordType::A);
    assert_eq!(m.response_code(), ResponseCode::NXDomain);
    assert_eq!(m.name_servers()[0].record_type(), RecordType::SOA);
    let m = server.query("www.example.test.", RecordType::AAAA);
    assert_eq!(m.response_code(), ResponseCode::NoError);
    assert!(m.answers().is_empty());
    let m = server.query_tcp("alias.example.test.", RecordType::A);
    assert_eq!(m.answers()[0].record_type(), RecordType::CNAME);
    assert_eq!(addresses(&m), vec![Ipv4Addr::new(192, 0, 2, 1)]);
}

#[test]
fn an_answer_too_large_for_the_client_is_truncated_over_udp_and_whole_over_tcp() {
    let knot = Knot::start();
    let server = TestServer::start(&format!(".:0 {{\n forward . {}\n}}\n", knot.addr));
    let small = udp(
        server.addr,
        &query_bytes("big.example.test.", RecordType::A, None),
    )
    .expect("a reply");
    let small = Message::from_vec(&small).unwrap();
    assert!(small.truncated());
    // As many whole records as fit in 512 bytes, as CoreDNS's Truncate leaves: each 16 bytes,
    // its owner a pointer to the question (12 + 18 + 4 bytes).
    let fitted = addresses(&small);
    assert_eq!(fitted.len(), (512 - 34) / 16, "{fitted:?}");
    assert!(fitted.iter().all(|a| a.octets()[..3] == [192, 0, 2]));
    assert_eq!(small.id(), 0x1234);
    let whole = server.query_tcp("big.example.test.", RecordType::A);
    assert!(!whole.truncated());
    assert_eq!(addresses(&whole).len(), 100);
}

#[test]
fn the_cluster_is_answered_here_and_everything_else_upstream() {
    let knot = Knot::start();
    let server = TestServer::start(&format!(
        ".:0 {{\n kubernetes cluster.local in-addr.arpa ip6.arpa {{\n  manifests DATA/cluster.yaml\n  fallthrough in-addr.arpa ip6.arpa\n }}\n forward . {}\n}}\n",
        knot.addr
    ));
    let m = server.query("kubernetes.default.svc.cluster.local.", RecordType::A);
    assert!(m.authoritative());
    assert_eq!(addresses(&m), vec![Ipv4Addr::new(10, 96, 0, 1)]);
    // A name the cluster zone does not hold is NXDOMAIN here, not forwarded.
    let m = server.query("www.example.test.default.svc.cluster.local.", RecordType::A);
    assert_eq!(m.response_code(), ResponseCode::NXDomain);
    assert_eq!(
        m.name_servers()[0].name(),
        &Name::from_ascii("cluster.local.").unwrap()
    );
    let m = server.query("www.example.test.", RecordType::A);
    assert_eq!(addresses(&m), vec![Ipv4Addr::new(192, 0, 2, 1)]);
}

#[test]
fn stub_domains_route_by_the_longest_zone() {
    let knot = Knot::start();
    let dead = free_port();
    let server = TestServer::start(&format!(
        "example.test:0 {{\n forward . {}\n}}\n.:0 {{\n forward . 127.0.0.1:{dead}\n}}\n",
        knot.addr
    ));
    let m = server.query("www.example.test.", RecordType::A);
    assert_eq!(addresses(&m), vec![Ipv4Addr::new(192, 0, 2, 1)]);
    // The other block's upstream is not listening: SERVFAIL, soon (the port refuses).
    let started = Instant::now();
    let m = server.query("www.example.org.", RecordType::A);
    assert_eq!(m.response_code(), ResponseCode::ServFail);
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn a_failing_upstream_is_skipped_and_counted() {
    let knot = Knot::start();
    let dead = free_port();
    let server = TestServer::start(&format!(
        ".:0 {{\n prometheus 127.0.0.1:0\n forward . 127.0.0.1:{dead} {} {{\n  policy sequential\n  health_check 100ms\n }}\n}}\n",
        knot.addr
    ));
    for _ in 0..5 {
        let m = server.query("www.example.test.", RecordType::A);
        assert_eq!(addresses(&m), vec![Ipv4Addr::new(192, 0, 2, 1)]);
    }
    // After max_fails (2) the dead one is down: it is not asked any more, only probed.
    let (_, metrics) = http_get(server.http[0], "/metrics");
    let requests = |to: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with(&format!("coredns_forward_requests_total{{to=\"{to}\"}}")))
            .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .unwrap_or(0)
    };
    assert_eq!(requests(&format!("127.0.0.1:{dead}")), 2, "{metrics}");
    assert_eq!(requests(&knot.addr.to_string()), 5, "{metrics}");
    let start = Instant::now();
    loop {
        let (_, metrics) = http_get(server.http[0], "/metrics");
        if metrics.contains(&format!(
            "coredns_forward_healthcheck_failures_total{{to=\"127.0.0.1:{dead}\"}}"
        )) && metrics.contains(&format!(
            "coredns_proxy_healthcheck_failures_total{{proxy_name=\"forward\",to=\"127.0.0.1:{dead}\"}}"
        )) {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "{metrics}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn except_zones_and_names_outside_from_are_not_forwarded() {
    let knot = Knot::start();
    let server = TestServer::start(&format!(
        ".:0 {{\n forward example.test {} {{\n  except private.example.test\n }}\n}}\n",
        knot.addr
    ));
    let m = server.query("www.example.test.", RecordType::A);
    assert_eq!(addresses(&m), vec![Ipv4Addr::new(192, 0, 2, 1)]);
    // Passed on by forward with nothing after it: SERVFAIL, as CoreDNS's "no next plugin".
    for name in ["a.private.example.test.", "www.example.org."] {
        let m = server.query(name, RecordType::A);
        assert_eq!(m.response_code(), ResponseCode::ServFail, "{name}");
    }
}

#[test]
fn only_a_reply_with_the_queries_id_and_question_is_taken_and_ids_and_ports_vary() {
    let (fake, seen) = Fake::start(
        |query| {
            let mut wrong_id = reply_to(query, &[Ipv4Addr::new(6, 6, 6, 6)], false);
            wrong_id[..2].copy_from_slice(&query.id().wrapping_add(1).to_be_bytes());
            let mut other = query.clone();
            other.queries_mut()[0].set_name(Name::from_ascii("evil.example.").unwrap());
            let wrong_question = reply_to(&other, &[Ipv4Addr::new(6, 6, 6, 7)], false);
            let right = reply_to(query, &[Ipv4Addr::new(192, 0, 2, 99)], false);
            vec![wrong_id, wrong_question, right]
        },
        |_| None,
    );
    let server = TestServer::start(&format!(".:0 {{\n forward . {}\n}}\n", fake.addr));
    for _ in 0..3 {
        let m = server.query("www.example.test.", RecordType::A);
        assert_eq!(m.id(), 0x1234);
        assert_eq!(addresses(&m), vec![Ipv4Addr::new(192, 0, 2, 99)]);
    }
    let seen: Vec<_> = seen.try_iter().collect();
    assert_eq!(seen.len(), 3, "{seen:?}");
    let ids: std::collections::BTreeSet<u16> = seen.iter().map(|(_, id)| *id).collect();
    let ports: std::collections::BTreeSet<u16> = seen.iter().map(|(a, _)| a.port()).collect();
    assert!(ids.len() > 1 && !ids.contains(&0x1234), "{ids:?}");
    assert_eq!(ports.len(), 3, "{ports:?}");
}

#[test]
fn a_truncated_upstream_reply_is_asked_again_over_tcp() {
    let (fake, _) = Fake::start(
        |query| vec![reply_to(query, &[], true)],
        |query| {
            let many: Vec<Ipv4Addr> = (1..=40).map(|i| Ipv4Addr::new(192, 0, 2, i)).collect();
            Some(reply_to(query, &many, false))
        },
    );
    let server = TestServer::start(&format!(".:0 {{\n forward . {}\n}}\n", fake.addr));
    let m = server.query("many.example.test.", RecordType::A);
    assert!(!m.truncated());
    assert_eq!(addresses(&m).len(), 40);
}

#[test]
fn beyond_max_concurrent_queries_are_refused_at_once() {
    // An upstream that never answers holds every forwarded query until its timeout.
    let (fake, _) = Fake::start(|_| Vec::new(), |_| None);
    let server = TestServer::start(&format!(
        ".:0 {{\n prometheus 127.0.0.1:0\n forward . {} {{\n  max_concurrent 2\n }}\n}}\n",
        fake.addr
    ));
    let addr = server.addr;
    let held: Vec<_> = (0..2)
        .map(|i| {
            std::thread::spawn(move || {
                let q = query_message(&format!("held{i}.example.test."), RecordType::A, None);
                crate::harness::udp_wait(addr, &q.to_vec().unwrap(), Duration::from_secs(8))
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let m = server.query("third.example.test.", RecordType::A);
    assert_eq!(m.response_code(), ResponseCode::Refused);
    assert!(started.elapsed() < Duration::from_secs(1));
    // The held ones end in SERVFAIL when the upstream never answers.
    for h in held {
        let reply = h.join().unwrap().expect("a reply");
        let m = Message::from_vec(&reply).unwrap();
        assert_eq!(m.response_code(), ResponseCode::ServFail);
    }
    let (_, metrics) = http_get(server.http[0], "/metrics");
    assert!(
        metrics.contains("coredns_forward_max_concurrent_rejects_total 1"),
        "{metrics}"
    );
    // With the slots back, the limit lets queries through again (to SERVFAIL here).
    let again = tcp(
        server.addr,
        &[query_bytes("again.example.test.", RecordType::A, None)],
    );
    let m = Message::from_vec(&again[0]).unwrap();
    assert_eq!(m.response_code(), ResponseCode::ServFail);
}

/// A metric's value. The registry is the process's: tests give their caches zones of their
/// own so their lines do not mix.
fn metric(server: &TestServer, line_start: &str) -> Option<u64> {
    let (_, metrics) = http_get(server.http[0], "/metrics");
    metrics
        .lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[test]
fn cached_answers_are_served_again_with_their_ttl_counting_down() {
    let knot = Knot::start();
    let server = TestServer::start(&format!(
        ".:0 {{\n prometheus 127.0.0.1:0\n cache 30 example.test\n forward . {}\n}}\n",
        knot.addr
    ));
    let first = server.query("www.example.test.", RecordType::A);
    // Knot's TTL is 300; `cache 30` caps it.
    assert_eq!(first.answers()[0].ttl(), 30);
    std::thread::sleep(Duration::from_millis(2100));
    drop(knot);
    // The upstream is gone: the answer comes from the cache, two seconds older.
    let again = server.query("www.example.test.", RecordType::A);
    assert_eq!(addresses(&again), vec![Ipv4Addr::new(192, 0, 2, 1)]);
    let ttl = again.answers()[0].ttl();
    assert!((26..=28).contains(&ttl), "{ttl}");
    assert_eq!(again.id(), 0x1234);
    let hits = "coredns_cache_hits_total{server=\"dns://:0\",view=\"\",zones=\"example.test.\",type=\"success\"}";
    assert_eq!(metric(&server, hits), Some(1));
    let entries = "coredns_cache_entries{server=\"dns://:0\",view=\"\",zones=\"example.test.\",type=\"success\"}";
    assert_eq!(metric(&server, entries), Some(1));
}

#[test]
fn negative_answers_are_cached_for_the_soa_minimum() {
    let knot = Knot::start();
    let server = TestServer::start(&format!(
        ".:0 {{\n cache 1800 nosuch.example.test\n forward . {}\n}}\n",
        knot.addr
    ));
    let first = server.query("nosuch.example.test.", RecordType::A);
    assert_eq!(first.response_code(), ResponseCode::NXDomain);
    drop(knot);
    let again = server.query("nosuch.example.test.", RecordType::A);
    assert_eq!(again.response_code(), ResponseCode::NXDomain);
    // The zone's SOA has TTL 300 and MINIMUM 60: negative answers live 60 s (RFC 2308).
    let soa = &again.name_servers()[0];
    assert_eq!(soa.record_type(), RecordType::SOA);
    assert!((58..=60).contains(&soa.ttl()), "{}", soa.ttl());
}

#[test]
fn serve_stale_answers_when_every_upstream_fails_and_without_it_servfail() {
    for stale in [true, false] {
        let knot = Knot::start();
        let server = TestServer::start(&format!(
            ".:0 {{\n prometheus 127.0.0.1:0\n cache 3600 test {{\n  success 100 1 1\n{}\n }}\n forward . {}\n}}\n",
            if stale { "  serve_stale 1h" } else { "" },
            knot.addr
        ));
        let first = server.query("www.example.test.", RecordType::A);
        assert_eq!(first.answers()[0].ttl(), 1);
        drop(knot);
        std::thread::sleep(Duration::from_millis(1500));
        let m = server.query("www.example.test.", RecordType::A);
        if stale {
            assert_eq!(addresses(&m), vec![Ipv4Addr::new(192, 0, 2, 1)]);
            assert_eq!(m.answers()[0].ttl(), 30);
            let served =
                "coredns_cache_served_stale_total{server=\"dns://:0\",view=\"\",zones=\"test.\"}";
            assert_eq!(metric(&server, served), Some(1));
        } else {
            assert_eq!(m.response_code(), ResponseCode::ServFail);
        }
    }
}

#[test]
fn the_cache_holds_no_more_than_its_capacity() {
    let knot = Knot::start();
    let server = TestServer::start(&format!(
        ".:0 {{\n prometheus 127.0.0.1:0\n cache {{\n  success 2\n }}\n forward . {}\n}}\n",
        knot.addr
    ));
    for (name, qtype) in [
        ("www", RecordType::A),
        ("www6", RecordType::AAAA),
        ("ns", RecordType::A),
        ("alias", RecordType::A),
        ("big", RecordType::A),
    ] {
        let m = server.query_tcp(&format!("{name}.example.test."), qtype);
        assert!(!m.answers().is_empty(), "{name}");
    }
    let entries =
        "coredns_cache_entries{server=\"dns://:0\",view=\"\",zones=\".\",type=\"success\"}";
    assert_eq!(metric(&server, entries), Some(2));
    let evictions =
        "coredns_cache_evictions_total{server=\"dns://:0\",view=\"\",zones=\".\",type=\"success\"}";
    assert_eq!(metric(&server, evictions), Some(3));
}

#[test]
fn cluster_answers_are_never_cached_so_a_change_shows_at_once() {
    let knot = Knot::start();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cluster.yaml");
    let service = |ip: &str| {
        format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: web, namespace: default}}\nspec: {{clusterIP: {ip}, ports: [{{port: 80}}]}}\n"
        )
    };
    std::fs::write(&file, service("10.0.0.1")).unwrap();
    let server = TestServer::start(&format!(
        ".:0 {{\n cache 30 com\n kubernetes cluster.local {{\n  manifests {}\n }}\n forward . {}\n}}\n",
        file.display(),
        knot.addr
    ));
    let name = "web.default.svc.cluster.local.";
    let m = server.query(name, RecordType::A);
    assert_eq!(addresses(&m), vec![Ipv4Addr::new(10, 0, 0, 1)]);
    assert_eq!(m.answers()[0].ttl(), 5);
    let tmp = dir.path().join("next.tmp");
    std::fs::write(&tmp, service("10.0.0.2")).unwrap();
    std::fs::rename(&tmp, &file).unwrap();
    let start = Instant::now();
    while addresses(&server.query(name, RecordType::A)) != vec![Ipv4Addr::new(10, 0, 0, 2)] {
        // The manifest is polled every second; the cache's 30 s must not hold the old one.
        assert!(start.elapsed() < Duration::from_secs(5), "never changed");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_popular_answer_near_its_end_is_prefetched() {
    let knot = Knot::start();
    let server = TestServer::start(&format!(
        ".:0 {{\n prometheus 127.0.0.1:0\n cache 3600 www.example.test {{\n  success 100 10 10\n  prefetch 2 1m 50%\n }}\n forward . {}\n}}\n",
        knot.addr
    ));
    assert_eq!(
        server.query("www.example.test.", RecordType::A).answers()[0].ttl(),
        10
    );
    std::thread::sleep(Duration::from_millis(5500));
    // Asked twice with under half its TTL left: served from the cache, and fetched again.
    for _ in 0..2 {
        let ttl = server.query("www.example.test.", RecordType::A).answers()[0].ttl();
        assert!(ttl <= 5, "{ttl}");
    }
    let start = Instant::now();
    loop {
        let ttl = server.query("www.example.test.", RecordType::A).answers()[0].ttl();
        if ttl >= 9 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "not prefetched: TTL {ttl}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let prefetched =
        "coredns_cache_prefetch_total{server=\"dns://:0\",view=\"\",zones=\"www.example.test.\"}";
    assert_eq!(metric(&server, prefetched), Some(1));
}

#[test]
fn loadbalance_shuffles_forwarded_and_cached_answers_too() {
    let knot = Knot::start();
    let server = TestServer::start(&format!(
        ".:0 {{\n loadbalance\n cache 30 big.example.test\n forward . {}\n}}\n",
        knot.addr
    ));
    let orders: Vec<Vec<Ipv4Addr>> = (0..4)
        .map(|_| addresses(&server.query_tcp("big.example.test.", RecordType::A)))
        .collect();
    let mut sorted = orders[0].clone();
    sorted.sort();
    let all: Vec<Ipv4Addr> = (1..=100).map(|i| Ipv4Addr::new(192, 0, 2, i)).collect();
    for order in &orders {
        let mut set = order.clone();
        set.sort();
        assert_eq!(set, all);
    }
    assert!(orders.windows(2).any(|w| w[0] != w[1]), "never shuffled");
}

/// CoreDNS shuffles every response it writes: an answer fresh from upstream too, whether the
/// cache keeps it or there is no cache, over UDP (the upstream's message as it came, or cut to
/// the client's size) and TCP.
#[test]
fn loadbalance_shuffles_an_answer_fresh_from_upstream() {
    let knot = Knot::start();
    let asked = query_bytes("big.example.test.", RecordType::A, Some(4096));
    let upstream_order = |knot: &Knot| {
        let replies = tcp(knot.addr, std::slice::from_ref(&asked));
        addresses(&Message::from_vec(&replies[0]).unwrap())
    };
    // Knot gives its 100 addresses in one order, every time.
    let knots = upstream_order(&knot);
    assert_eq!(knots.len(), 100);
    assert_eq!(upstream_order(&knot), knots);
    let all: Vec<Ipv4Addr> = (1..=100).map(|i| Ipv4Addr::new(192, 0, 2, i)).collect();
    for cache in ["", "cache 30\n"] {
        // A fresh server per answer, so each is the upstream's, never a cache hit.
        for (transport, payload) in [("udp", Some(4096)), ("udp", None), ("tcp", None)] {
            let server = TestServer::start(&format!(
                ".:0 {{\n loadbalance\n {cache} forward . {}\n}}\n",
                knot.addr
            ));
            let answer = match transport {
                "tcp" => server.query_tcp("big.example.test.", RecordType::A),
                _ => Message::from_vec(
                    &udp(
                        server.addr,
                        &query_bytes("big.example.test.", RecordType::A, payload),
                    )
                    .expect("an answer"),
                )
                .unwrap(),
            };
            let got = addresses(&answer);
            let what = format!("{cache:?} {transport} {payload:?}");
            if payload.is_none() && transport == "udp" {
                // Cut to 512 bytes: as many as fit, drawn from the shuffled set.
                assert!(answer.truncated(), "{what}");
                assert!(!got.is_empty() && got.len() < 100, "{what}");
                assert_ne!(got, knots[..got.len()], "{what}: the upstream's first ones");
            } else {
                let mut set = got.clone();
                set.sort();
                assert_eq!(set, all, "{what}");
                assert_ne!(got, knots, "{what}: in the upstream's order");
            }
        }
    }
}

#[test]
fn serve_stale_answers_at_once_and_refreshes_behind_unless_verify() {
    for verify in [false, true] {
        let knot = Knot::start();
        let server = TestServer::start(&format!(
            ".:0 {{\n cache 3600 www.example.test {{\n  success 100 1 1\n  serve_stale 1h {}\n }}\n forward . {}\n}}\n",
            if verify { "verify" } else { "immediate" },
            knot.addr
        ));
        assert_eq!(
            server.query("www.example.test.", RecordType::A).answers()[0].ttl(),
            1
        );
        std::thread::sleep(Duration::from_millis(1500));
        // Expired, the upstream up: immediate answers stale (TTL 30) and refreshes behind;
        // verify asks the upstream first.
        let ttl = server.query("www.example.test.", RecordType::A).answers()[0].ttl();
        assert_eq!(ttl, if verify { 1 } else { 30 }, "verify: {verify}");
        if !verify {
            let start = Instant::now();
            while server.query("www.example.test.", RecordType::A).answers()[0].ttl() != 1 {
                assert!(start.elapsed() < Duration::from_secs(2), "never refreshed");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// ExternalName services in `prod` whose targets lie outside the cluster zone, as manifests.
fn external_names() -> String {
    let mut out = String::from("apiVersion: v1\nkind: Namespace\nmetadata: {name: prod}\n");
    for (name, target) in [
        ("ext", "www.example.test"),
        ("ext6", "www6.example.test"),
        ("chained", "alias.example.test"),
        ("gone", "nosuch.example.test"),
        ("local", "registry.example.internal"),
    ] {
        out.push_str(&format!(
            "---\napiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: prod}}\n\
             spec: {{type: ExternalName, externalName: {target}}}\n"
        ));
    }
    out
}

/// Each answer record as `NAME TYPE DATA`, in order.
fn records(m: &Message) -> Vec<String> {
    m.answers()
        .iter()
        .map(|r| format!("{} {} {}", r.name(), r.record_type(), r.data()))
        .collect()
}

#[test]
fn an_external_name_comes_with_its_targets_records_asked_through_the_chain() {
    let knot = Knot::start();
    let dir = tempfile::tempdir().unwrap();
    let manifests = dir.path().join("external.yaml");
    std::fs::write(&manifests, external_names()).unwrap();
    let server = TestServer::start(&format!(
        ".:0 {{
            hosts {{
                10.1.2.3 registry.example.internal
                fallthrough
            }}
            kubernetes cluster.local {{
                manifests {}
            }}
            forward . {}
        }}",
        manifests.display(),
        knot.addr
    ));
    let ext = "ext.prod.svc.cluster.local.";
    for m in [
        server.query(ext, RecordType::A),
        server.query_tcp(ext, RecordType::A),
        server.query(ext, RecordType::A),
    ] {
        assert_eq!(m.response_code(), ResponseCode::NoError);
        assert_eq!(
            records(&m),
            [
                format!("{ext} CNAME www.example.test."),
                "www.example.test. A 192.0.2.1".to_string()
            ]
        );
    }
    let m = server.query("ext6.prod.svc.cluster.local.", RecordType::AAAA);
    assert_eq!(
        records(&m),
        [
            "ext6.prod.svc.cluster.local. CNAME www6.example.test.",
            "www6.example.test. AAAA 2001:db8::1"
        ]
    );
    // The upstream's own CNAME comes along with what it leads to.
    let m = server.query("chained.prod.svc.cluster.local.", RecordType::A);
    assert_eq!(
        records(&m),
        [
            "chained.prod.svc.cluster.local. CNAME alias.example.test.",
            "alias.example.test. CNAME www.example.test.",
            "www.example.test. A 192.0.2.1"
        ]
    );
    // A target answered by a plugin of the chain (hosts) needs no upstream.
    let m = server.query("local.prod.svc.cluster.local.", RecordType::A);
    assert_eq!(
        records(&m),
        [
            "local.prod.svc.cluster.local. CNAME registry.example.internal.",
            "registry.example.internal. A 10.1.2.3"
        ]
    );
    // A target without the type, or without a name: the CNAME alone, NOERROR.
    for (name, qtype) in [
        (ext, RecordType::AAAA),
        ("gone.prod.svc.cluster.local.", RecordType::A),
    ] {
        let m = server.query(name, qtype);
        assert_eq!(m.response_code(), ResponseCode::NoError, "{name} {qtype}");
        assert_eq!(m.answers().len(), 1, "{name} {qtype}: {:?}", records(&m));
        assert_eq!(m.answers()[0].record_type(), RecordType::CNAME);
    }
}

/// `loadbalance weighted` and `prefer` on Knot's 100 addresses, fresh and cached, over UDP
/// and TCP: the preferred networks' addresses first, in their order; a weight file's heavy
/// address drawn first nearly every time.
#[test]
fn loadbalance_weighted_and_prefer_order_forwarded_answers() {
    let knot = Knot::start();
    let server = TestServer::start(&format!(
        ".:0 {{\n loadbalance {{\n  prefer 192.0.2.77/32 192.0.2.8/29\n }}\n cache 30\n forward . {}\n}}\n",
        knot.addr
    ));
    for _ in 0..3 {
        for got in [
            addresses(&server.query_tcp("big.example.test.", RecordType::A)),
            addresses(
                &Message::from_vec(
                    &udp(
                        server.addr,
                        &query_bytes("big.example.test.", RecordType::A, Some(4096)),
                    )
                    .expect("an answer"),
                )
                .unwrap(),
            ),
        ] {
            assert_eq!(got.len(), 100);
            assert_eq!(got[0], Ipv4Addr::new(192, 0, 2, 77), "{got:?}");
            let mut next: Vec<Ipv4Addr> = got[1..9].to_vec();
            next.sort();
            let block: Vec<Ipv4Addr> = (8..16).map(|i| Ipv4Addr::new(192, 0, 2, i)).collect();
            assert_eq!(next, block, "{got:?}");
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let weights = dir.path().join("weights");
    std::fs::write(&weights, "big.example.test.\n192.0.2.42 255\n").unwrap();
    let server = TestServer::start(&format!(
        ".:0 {{\n loadbalance weighted {} {{\n  reload 1s\n }}\n forward . {}\n}}\n",
        weights.display(),
        knot.addr
    ));
    // 255 against 99 others of weight 1: 72% first.
    let heavy = (0..50)
        .filter(|_| {
            addresses(&server.query_tcp("big.example.test.", RecordType::A))[0]
                == Ipv4Addr::new(192, 0, 2, 42)
        })
        .count();
    assert!(heavy >= 20, "{heavy} of 50");
}

/// Several `forward` lines in one block, as CoreDNS chains them: the first whose FROM holds the
/// name (less its `except` zones) takes it, the others pass it on; a name none takes is
/// SERVFAIL.
#[test]
fn several_forward_lines_each_take_their_own_names() {
    let knot = Knot::start();
    let (fake, _) = Fake::start(
        |query| {
            vec![crate::upstream::answer(
                query,
                Some((Ipv4Addr::new(198, 51, 100, 7), 60)),
            )]
        },
        |_| None,
    );
    let server = TestServer::start(&format!(
        ".:0 {{\n cache 30\n forward org {} {{\n  except private.org\n }}\n forward example.test {}\n}}\n",
        fake.addr, knot.addr
    ));
    for _ in 0..2 {
        let m = server.query("www.example.org.", RecordType::A);
        assert_eq!(addresses(&m), vec![Ipv4Addr::new(198, 51, 100, 7)]);
        let m = server.query("www.example.test.", RecordType::A);
        assert_eq!(addresses(&m), vec![Ipv4Addr::new(192, 0, 2, 1)]);
    }
    for name in ["a.private.org.", "www.example.com."] {
        let m = server.query(name, RecordType::A);
        assert_eq!(m.response_code(), ResponseCode::ServFail, "{name}");
    }
}

/// A scripted upstream's reply to `query` with `rcode` and no records.
fn rcode_reply(query: &Message, rcode: ResponseCode) -> Vec<u8> {
    let mut m = Message::from_vec(&crate::upstream::answer(query, None)).unwrap();
    m.set_response_code(rcode);
    m.to_vec().unwrap()
}

/// An upstream that answers every UDP query with `rcode` (an A record under NOERROR).
fn answering(rcode: ResponseCode, ip: Ipv4Addr) -> Fake {
    Fake::start(
        move |query| {
            vec![match rcode {
                ResponseCode::NoError => crate::upstream::answer(query, Some((ip, 60))),
                other => rcode_reply(query, other),
            }]
        },
        |_| None,
    )
    .0
}

#[test]
fn failover_asks_the_next_upstream_on_the_rcodes_it_names_and_the_last_answer_stands() {
    let servfail = answering(ResponseCode::ServFail, Ipv4Addr::UNSPECIFIED);
    let refused = answering(ResponseCode::Refused, Ipv4Addr::UNSPECIFIED);
    let good = answering(ResponseCode::NoError, Ipv4Addr::new(198, 51, 100, 9));
    let corefile = |options: &str, upstreams: &[&Fake]| {
        let to: Vec<String> = upstreams.iter().map(|f| f.addr.to_string()).collect();
        format!(
            ".:0 {{\n forward . {} {{\n  policy sequential\n  {options}\n }}\n}}\n",
            to.join(" ")
        )
    };
    let cases: [(&str, &[&Fake], ResponseCode, Option<Ipv4Addr>); 4] = [
        // Without failover the first answer stands, whatever its rcode.
        (
            "max_fails 2",
            &[&servfail, &good],
            ResponseCode::ServFail,
            None,
        ),
        (
            "failover SERVFAIL REFUSED",
            &[&servfail, &refused, &good],
            ResponseCode::NoError,
            Some(Ipv4Addr::new(198, 51, 100, 9)),
        ),
        // An rcode it does not name stands.
        (
            "failover SERVFAIL",
            &[&refused, &good],
            ResponseCode::Refused,
            None,
        ),
        // Every upstream failed over: the last one's answer.
        (
            "failover servfail refused",
            &[&servfail, &refused],
            ResponseCode::Refused,
            None,
        ),
    ];
    for (options, upstreams, rcode, address) in cases {
        let server = TestServer::start(&corefile(options, upstreams));
        let m = server.query("www.example.org.", RecordType::A);
        assert_eq!(m.response_code(), rcode, "{options}");
        assert_eq!(
            addresses(&m),
            address.into_iter().collect::<Vec<_>>(),
            "{options}"
        );
    }
}

#[test]
fn next_hands_an_answer_with_its_rcodes_to_the_blocks_next_forward_line() {
    let nxdomain = answering(ResponseCode::NXDomain, Ipv4Addr::UNSPECIFIED);
    let nodata = Fake::start(|query| vec![crate::upstream::answer(query, None)], |_| None).0;
    let good = answering(ResponseCode::NoError, Ipv4Addr::new(198, 51, 100, 10));
    let server = TestServer::start(&format!(
        ".:0 {{\n prometheus 127.0.0.1:0\n cache 30\n forward . {} {{\n  next NXDOMAIN\n }}\n forward example.org {} {{\n  next_on_nodata\n }}\n forward . {}\n}}\n",
        nxdomain.addr, nodata.addr, good.addr
    ));
    // NXDOMAIN from the first, NODATA from the second (it takes example.org), an answer from
    // the third; cached as the block's answer, so the second time no upstream is asked.
    for _ in 0..2 {
        let m = server.query("www.example.org.", RecordType::A);
        assert_eq!(m.response_code(), ResponseCode::NoError);
        assert_eq!(addresses(&m), vec![Ipv4Addr::new(198, 51, 100, 10)]);
    }
    let (_, metrics) = http_get(server.http[0], "/metrics");
    for upstream in [&nxdomain, &nodata, &good] {
        assert_eq!(
            metric(
                &server,
                &format!("coredns_forward_requests_total{{to=\"{}\"}}", upstream.addr)
            ),
            Some(1),
            "{metrics}"
        );
    }
    // The second line does not take example.com: from the first straight to the third.
    let m = server.query("www.example.com.", RecordType::A);
    assert_eq!(addresses(&m), vec![Ipv4Addr::new(198, 51, 100, 10)]);

    // `next` on the last line, and an rcode `next` does not name: the answer stands.
    let server = TestServer::start(&format!(
        ".:0 {{\n forward . {} {{\n  next SERVFAIL\n }}\n forward . {} {{\n  next NXDOMAIN\n }}\n}}\n",
        nxdomain.addr, nxdomain.addr
    ));
    let m = server.query("www.example.org.", RecordType::A);
    assert_eq!(m.response_code(), ResponseCode::NXDomain);
    // A line handing on to none that takes the name: SERVFAIL, as CoreDNS's
    // "no next plugin found".
    let server = TestServer::start(&format!(
        ".:0 {{\n forward . {} {{\n  next NXDOMAIN\n }}\n forward example.net {}\n}}\n",
        nxdomain.addr, good.addr
    ));
    let m = server.query("www.example.org.", RecordType::A);
    assert_eq!(m.response_code(), ResponseCode::ServFail);
}

#[test]
fn queries_and_health_checks_leave_from_source_address_and_ask_the_health_check_domain() {
    // Answers A queries for a.example.org only; everything else times out, so the upstream
    // goes down and is health checked.
    let asked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = asked.clone();
    let (fake, seen) = Fake::start(
        move |query| {
            let q = &query.queries()[0];
            log.lock()
                .unwrap()
                .push((q.name().to_string(), q.query_type()));
            if q.name().to_string() == "a.example.org." {
                vec![crate::upstream::answer(
                    query,
                    Some((Ipv4Addr::new(198, 51, 100, 11), 60)),
                )]
            } else {
                Vec::new()
            }
        },
        |_| None,
    );
    let server = TestServer::start(&format!(
        ".:0 {{\n forward . {} {{\n  source_address 127.0.0.2\n  read_timeout 200ms\n  health_check 100ms no_rec domain Health.Example.\n  failfast_all_unhealthy_upstreams\n }}\n}}\n",
        fake.addr
    ));
    let m = server.query("a.example.org.", RecordType::A);
    assert_eq!(addresses(&m), vec![Ipv4Addr::new(198, 51, 100, 11)]);
    let (from, _) = seen.recv_timeout(Duration::from_secs(1)).unwrap();
    assert_eq!(from.ip(), std::net::IpAddr::from([127, 0, 0, 2]));
    // Two timeouts (read_timeout each, well within the 5s a query may take): down.
    for _ in 0..2 {
        let started = Instant::now();
        let m = server.query("silent.example.org.", RecordType::A);
        assert_eq!(m.response_code(), ResponseCode::ServFail);
        assert!(started.elapsed() < Duration::from_secs(2));
    }
    let start = Instant::now();
    loop {
        let health: Vec<_> = asked
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, t)| *t == RecordType::NS)
            .cloned()
            .collect();
        if !health.is_empty() {
            assert!(
                health.iter().all(|(n, _)| n == "health.example."),
                "{health:?}"
            );
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "no health check");
        std::thread::sleep(Duration::from_millis(50));
    }
    for (from, _) in seen.try_iter() {
        assert_eq!(from.ip(), std::net::IpAddr::from([127, 0, 0, 2]));
    }
    // Every upstream down, failfast: SERVFAIL without asking it.
    let before = asked
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, t)| *t == RecordType::A)
        .count();
    let m = server.query("a.example.org.", RecordType::A);
    assert_eq!(m.response_code(), ResponseCode::ServFail);
    let after = asked
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, t)| *t == RecordType::A)
        .count();
    assert_eq!(before, after);
}

#[test]
fn cancel_counts_from_each_querys_arrival_not_from_the_start() {
    let good = answering(ResponseCode::NoError, Ipv4Addr::new(198, 51, 100, 12));
    let server = TestServer::start(&format!(
        ".:0 {{\n cancel 200ms\n forward . {}\n}}\n",
        good.addr
    ));
    // Well past the deadline since the server started: each query still has its own.
    std::thread::sleep(Duration::from_millis(400));
    let m = server.query("www.example.org.", RecordType::A);
    assert_eq!(addresses(&m), vec![Ipv4Addr::new(198, 51, 100, 12)], "{m}");
}

#[test]
fn a_host_name_upstream_is_resolved_at_start_with_the_resolver_given() {
    let knot = Knot::start();
    let good = answering(ResponseCode::NoError, Ipv4Addr::new(198, 51, 100, 13));
    // Knot holds local.example.test at 127.0.0.1: the upstream is the fake there.
    let server = TestServer::start(&format!(
        ".:0 {{\n forward . dns://local.example.test:{} {{\n  resolver {}\n }}\n}}\n",
        good.addr.port(),
        knot.addr
    ));
    let m = server.query("www.example.org.", RecordType::A);
    assert_eq!(addresses(&m), vec![Ipv4Addr::new(198, 51, 100, 13)], "{m}");
    // Reading the Corefile asks nothing; a name the resolver does not have stops the start,
    // naming it.
    let config = clusterdns::config::Config::from_text(
        &format!(
            ".:0 {{\n forward . nowhere.example.test {{\n  resolver {}\n }}\n}}\n",
            knot.addr
        ),
        0,
        std::path::Path::new("."),
    )
    .expect("it reads");
    let e = clusterdns::assemble(&config)
        .err()
        .expect("no start")
        .to_string();
    assert!(
        e.contains("failed to resolve \"nowhere.example.test\""),
        "{e}"
    );
}
