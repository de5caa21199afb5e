//! `template` on the wire: answers made from the question, and CoreDNS's template counters.

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use crate::harness::{TestServer, http_get};

#[test]
fn matches_and_broken_rrs_are_counted_as_coredns_counts_them() {
    let server = TestServer::start(
        ".:0 {\n prometheus 127.0.0.1:0\n template IN A example {\n  match ^ok[.]\n  answer \"{{ .Name }} 60 IN A 10.0.0.1\"\n }\n template IN TXT example {\n  answer \"{{ .Name }} 60 IN A not-an-address\"\n }\n template IN AAAA example {\n  answer \"{{ .Name }} 60 IN AAAA ::{{ parseInt .Name 10 8 }}\"\n }\n}\n",
    );
    for _ in 0..2 {
        let m = server.query("ok.example.", RecordType::A);
        assert_eq!(m.answers().len(), 1, "{m}");
    }
    let m = server.query("bad.example.", RecordType::TXT);
    assert_eq!(m.response_code(), ResponseCode::ServFail);
    // A template that fails to render (parseInt of a name).
    let m = server.query("bad.example.", RecordType::AAAA);
    assert_eq!(m.response_code(), ResponseCode::ServFail);
    let (_, metrics) = http_get(server.http[0], "/metrics");
    let value = |prefix: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
    };
    assert_eq!(
        value("coredns_template_matches_total{class=\"IN\",server=\"dns://:"),
        Some(2),
        "{metrics}"
    );
    assert!(
        metrics.contains("type=\"A\",view=\"\",zone=\"example.\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("type=\"TXT\",view=\"\",zone=\"example.\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("coredns_template_rr_failures_total{")
                && l.contains("section=\"answer\"")
                && l.contains("template=\"{{ .Name }} 60 IN A not-an-address\"")
                && l.ends_with(" 1")),
        "{metrics}"
    );
    assert!(
        metrics.lines().any(
            |l| l.starts_with("coredns_template_template_failures_total{")
                && l.contains("section=\"answer\"")
                && l.contains("type=\"AAAA\"")
                && l.ends_with(" 1")
        ),
        "{metrics}"
    );
}
