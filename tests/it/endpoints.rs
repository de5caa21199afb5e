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
