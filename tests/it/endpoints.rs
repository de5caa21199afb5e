//! CoreDNS's HTTP endpoints: `/health`, `/ready` and `/metrics` with CoreDNS's metric names.

use std::time::{Duration, Instant};

use hickory_proto::rr::RecordType;

use crate::apiserver::{self, ApiServer};
use crate::harness::{TestServer, http_get};

fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < Duration::from_secs(15), "never: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The sum of the samples of `metric` whose labels contain every one of `labels` (tests share
/// one process, so several servers may report the same labels).
fn sample(text: &str, metric: &str, labels: &[&str]) -> Option<f64> {
    let values: Vec<f64> = text
        .lines()
        .filter(|l| l.starts_with(metric) && l[metric.len()..].starts_with('{'))
        .filter(|l| labels.iter().all(|x| l.contains(x)))
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

#[test]
fn health_ready_and_metrics_answer_as_coredns_does() {
    let server = TestServer::start(
        ".:0 {
        health 127.0.0.1:0
        ready 127.0.0.1:0
        prometheus 127.0.0.1:0
        kubernetes cluster.local in-addr.arpa {
            manifests DATA/cluster.yaml
        }
    }",
    );
    // One address for all three: one listener serves every path.
    let http = server.http[0];
    assert_eq!(http_get(http, "/health"), (200, "OK".to_string()));
    assert_eq!(http_get(http, "/ready"), (200, "OK".to_string()));
    assert_eq!(http_get(http, "/nothing").0, 404);
    for _ in 0..3 {
        server.query("kubernetes.default.svc.cluster.local.", RecordType::A);
    }
    server.query("nosuch.default.svc.cluster.local.", RecordType::AAAA);
    server.query_tcp("kubernetes.default.svc.cluster.local.", RecordType::SRV);
    let (status, text) = http_get(http, "/metrics");
    assert_eq!(status, 200);
    let at_least = |metric: &str, labels: &[&str], n: f64| {
        let v = sample(&text, metric, labels)
            .unwrap_or_else(|| panic!("no {metric} {labels:?} in\n{text}"));
        assert!(v >= n, "{metric} {labels:?} = {v}, want >= {n}");
    };
    at_least("coredns_build_info", &["version=\""], 1.0);
    at_least(
        "coredns_plugin_enabled",
        &["name=\"kubernetes\"", "zone=\".\""],
        1.0,
    );
    at_least(
        "coredns_dns_requests_total",
        &["proto=\"udp\"", "type=\"A\"", "family=\"1\"", "zone=\".\""],
        3.0,
    );
    at_least(
        "coredns_dns_requests_total",
        &["proto=\"tcp\"", "type=\"SRV\""],
        1.0,
    );
    at_least("coredns_dns_responses_total", &["rcode=\"NXDOMAIN\""], 1.0);
    at_least("coredns_dns_responses_total", &["rcode=\"NOERROR\""], 4.0);
    at_least(
        "coredns_dns_request_duration_seconds_count",
        &["type=\"A\""],
        3.0,
    );
    at_least(
        "coredns_dns_request_duration_seconds_bucket",
        &["type=\"A\"", "le=\"+Inf\""],
        3.0,
    );
    at_least(
        "coredns_dns_request_size_bytes_count",
        &["proto=\"udp\""],
        4.0,
    );
    for name in ["coredns_panics_total", "coredns_reload_failed_total"] {
        assert!(
            text.lines().any(|l| l.starts_with(&format!("{name} "))),
            "{name}"
        );
    }
    for family in [
        "coredns_dns_requests_total counter",
        "coredns_dns_responses_total counter",
        "coredns_dns_request_duration_seconds histogram",
        "coredns_kubernetes_dns_programming_duration_seconds histogram",
    ] {
        assert!(text.contains(&format!("# TYPE {family}")), "{family}");
    }
}

#[test]
fn ready_is_503_until_the_api_has_synced_and_programming_time_is_measured() {
    let api = ApiServer::start();
    api.apply(apiserver::namespace("default"));
    api.apply(apiserver::headless_service(
        "default",
        "db",
        &[("sql", 5432, "TCP")],
    ));
    api.pause();
    let server = TestServer::start(&format!(
        ".:0 {{
        ready 127.0.0.1:0
        prometheus 127.0.0.1:0
        kubernetes cluster.local {{
            endpoint {}
            startup_timeout 60s
        }}
    }}",
        api.url()
    ));
    let http = server.http[0];
    assert_eq!(http_get(http, "/ready"), (503, "kubernetes".to_string()));
    api.resume();
    eventually("ready", || http_get(http, "/ready").0 == 200);
    let count = || {
        let text = http_get(http, "/metrics").1;
        sample(
            &text,
            "coredns_kubernetes_dns_programming_duration_seconds_count",
            &["service_kind=\"headless_with_selector\""],
        )
        .unwrap_or(0.0)
    };
    let before = count();
    api.apply(apiserver::endpoint_slice(
        "default",
        "db-1",
        "db",
        &[("sql", 5432, "TCP")],
        vec![apiserver::slice_endpoint("10.9.0.1", true, None)],
    ));
    eventually("the slice to be served", || {
        server
            .query("db.default.svc.cluster.local.", RecordType::A)
            .answers()
            .len()
            == 1
    });
    eventually("the programming time to be counted", || count() > before);
}

#[test]
fn metrics_parse_as_prometheus_text_with_coredns_names_types_and_labels() {
    use prometheus_parse::{Scrape, Value};
    let knot = crate::upstream::Knot::start();
    let server = TestServer::start(&format!(
        ".:0 {{
        prometheus 127.0.0.1:0
        cache 30 www.example.test
        kubernetes cluster.local {{
            manifests DATA/cluster.yaml
        }}
        forward . {}
    }}",
        knot.addr
    ));
    server.query("kubernetes.default.svc.cluster.local.", RecordType::A);
    server.query("www.example.test.", RecordType::A);
    server.query("www.example.test.", RecordType::A);
    server.query_tcp("nosuch.example.test.", RecordType::A);
    let (status, text) = http_get(server.http[0], "/metrics");
    assert_eq!(status, 200);
    let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .unwrap_or_else(|e| panic!("not Prometheus text: {e}\n{text}"));
    // CoreDNS's names, types and label names.
    let expected: &[(&str, &str, &[&str])] = &[
        (
            "coredns_build_info",
            "gauge",
            &["goversion", "revision", "version"],
        ),
        (
            "coredns_plugin_enabled",
            "gauge",
            &["name", "server", "view", "zone"],
        ),
        (
            "coredns_dns_requests_total",
            "counter",
            &["family", "proto", "server", "type", "view", "zone"],
        ),
        (
            "coredns_dns_responses_total",
            "counter",
            &["plugin", "rcode", "server", "view", "zone"],
        ),
        (
            "coredns_dns_request_duration_seconds",
            "histogram",
            &["server", "type", "view", "zone"],
        ),
        (
            "coredns_dns_request_size_bytes",
            "histogram",
            &["proto", "server", "view", "zone"],
        ),
        (
            "coredns_dns_response_size_bytes",
            "histogram",
            &["proto", "server", "view", "zone"],
        ),
        (
            "coredns_cache_entries",
            "gauge",
            &["server", "type", "view", "zones"],
        ),
        (
            "coredns_cache_hits_total",
            "counter",
            &["server", "type", "view", "zones"],
        ),
        (
            "coredns_cache_misses_total",
            "counter",
            &["server", "view", "zones"],
        ),
        (
            "coredns_cache_requests_total",
            "counter",
            &["server", "view", "zones"],
        ),
        ("coredns_forward_requests_total", "counter", &["to"]),
        (
            "coredns_forward_responses_total",
            "counter",
            &["rcode", "to"],
        ),
        (
            "coredns_forward_request_duration_seconds",
            "histogram",
            &["rcode", "to"],
        ),
        (
            "coredns_proxy_request_duration_seconds",
            "histogram",
            &["proxy_name", "rcode", "to"],
        ),
        (
            "coredns_forward_max_concurrent_rejects_total",
            "counter",
            &[],
        ),
        ("coredns_forward_healthcheck_broken_total", "counter", &[]),
        ("coredns_panics_total", "counter", &[]),
        ("coredns_reload_failed_total", "counter", &[]),
    ];
    for &(name, kind, labels) in expected {
        assert!(
            text.contains(&format!("# TYPE {name} {kind}\n")),
            "{name} is not a {kind}"
        );
        let samples: Vec<_> = scrape.samples.iter().filter(|s| s.metric == name).collect();
        assert!(!samples.is_empty(), "no {name} sample in\n{text}");
        for s in samples {
            let mut got: Vec<&str> = s.labels.keys().map(String::as_str).collect();
            got.retain(|l| *l != "le");
            got.sort_unstable();
            assert_eq!(got, labels, "{name} labels");
            let typed = matches!(
                (&s.value, kind),
                (Value::Counter(_), "counter")
                    | (Value::Gauge(_), "gauge")
                    | (Value::Histogram(_), "histogram")
            );
            assert!(typed, "{name}: {:?}", s.value);
        }
    }
    let value = |name: &str, label: (&str, &str)| {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name && s.labels.get(label.0) == Some(label.1))
            .map(|s| match s.value {
                Value::Counter(v) | Value::Gauge(v) => v,
                _ => f64::NAN,
            })
    };
    // The registry is the process's: this cache's zone is its own.
    assert_eq!(
        value("coredns_cache_hits_total", ("zones", "www.example.test.")),
        Some(1.0)
    );
    let to = knot.addr.to_string();
    assert_eq!(
        value("coredns_forward_requests_total", ("to", to.as_str())),
        Some(2.0)
    );
}

/// Types without a label of their own are one series (`type="other"`), however many a client
/// asks: metrics cannot be made to grow by querying every type.
#[test]
fn every_unknown_type_asked_is_one_other_series() {
    let server = TestServer::start(
        "qtypes.test:0 {
        prometheus 127.0.0.1:0
        hosts {
            10.0.0.9 x.qtypes.test
        }
    }",
    );
    let asked = 3000;
    for t in 0..asked {
        let qtype = RecordType::from(1000 + t as u16);
        let mut q = crate::harness::query_bytes("x.qtypes.test.", qtype, None);
        q[..2].copy_from_slice(&(t as u16).to_be_bytes());
        crate::harness::udp(server.addr, &q).expect("an answer");
    }
    let (_, text) = http_get(server.http[0], "/metrics");
    let series: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("coredns_dns_requests_total{") && l.contains("qtypes.test."))
        .collect();
    assert_eq!(series.len(), 1, "{series:#?}");
    assert!(series[0].contains("type=\"other\""), "{}", series[0]);
    assert_eq!(
        sample(
            &text,
            "coredns_dns_requests_total",
            &["zone=\"qtypes.test.\""]
        ),
        Some(f64::from(asked))
    );
}
