//! `acl`, `header` and `minimal` on the wire, with dig: a client blocked by network and type
//! gets REFUSED with the Blocked extended error, a filtered one an empty NOERROR with Filtered,
//! a dropped one nothing, an allowed one the answer; the counters are CoreDNS's. `header` and
//! `minimal` change what every path sends.

use hickory_proto::rr::RecordType;

use crate::harness::{TestServer, http_get, query_bytes, udp};
use crate::upstream::Knot;

/// dig's status, flags line, EDE line and answers, whitespace collapsed.
fn lines(out: &str) -> Vec<String> {
    out.lines()
        .filter(|l| {
            !l.is_empty()
                && (!l.starts_with(';')
                    || l.contains("status:")
                    || l.starts_with("; EDE")
                    || l.contains("flags:") && !l.contains("udp:"))
        })
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

fn status(out: &str) -> &str {
    out.split("status: ")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .unwrap_or("none")
}

#[test]
fn dig_is_blocked_filtered_dropped_or_allowed_by_network_and_type() {
    let server = TestServer::start(
        ".:0 {
        prometheus 127.0.0.1:0
        acl {
            allow type A net 127.0.0.1
            block type AAAA net 127.0.0.0/8
            filter type TXT
        }
        acl cluster.local {
            drop type MX
        }
        kubernetes cluster.local {
            manifests DATA/cluster.yaml
        }
    }",
    );
    let name = "web.prod.svc.cluster.local";
    for transport in ["+notcp", "+tcp"] {
        let out = server.dig(&["+noall", "+comments", "+answer", transport, name, "A"]);
        assert_eq!(status(&out), "NOERROR", "{out}");
        assert!(
            lines(&out).iter().any(|l| l.ends_with("IN A 10.96.12.34")),
            "{out}"
        );
        let out = server.dig(&["+noall", "+comments", transport, name, "AAAA"]);
        assert_eq!(status(&out), "REFUSED", "{out}");
        assert!(out.contains("; EDE: 15 (Blocked)"), "{out}");
        let flags = lines(&out)
            .into_iter()
            .find(|l| l.contains("flags:"))
            .unwrap();
        assert!(!flags.contains(" aa"), "{flags}");
        let out = server.dig(&["+noall", "+comments", "+answer", transport, name, "TXT"]);
        assert_eq!(status(&out), "NOERROR", "{out}");
        assert!(out.contains("; EDE: 17 (Filtered)"), "{out}");
        assert!(lines(&out).iter().all(|l| !l.contains(" IN TXT ")), "{out}");
    }
    // Dropped: nothing comes back.
    let mx = query_bytes(&format!("{name}."), RecordType::MX, Some(1232));
    assert_eq!(udp(server.addr, &mx), None);
    let (_, metrics) = http_get(server.http[0], "/metrics");
    let value = |prefix: &str| -> u64 {
        metrics
            .lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{prefix} in {metrics}"))
    };
    assert_eq!(
        value("coredns_acl_blocked_requests_total{server=\"dns://:0\",view=\"\",zone=\".\"}"),
        2
    );
    assert_eq!(value("coredns_acl_filtered_requests_total{"), 2);
    assert_eq!(
        value(
            "coredns_acl_dropped_requests_total{server=\"dns://:0\",view=\"\",zone=\"cluster.local.\"}"
        ),
        1
    );
    assert_eq!(value("coredns_acl_allowed_requests_total{"), 2);
}

#[test]
fn header_and_minimal_change_what_every_path_sends() {
    let knot = Knot::start();
    let server = TestServer::start(&format!(
        ".:0 {{
        header {{
            response set aa
            response clear ra
        }}
        minimal
        kubernetes cluster.local {{
            manifests DATA/cluster.yaml
        }}
        forward . {}
    }}",
        knot.addr
    ));
    // The cluster's SRV answer (fast path) without its additional addresses, and Knot's answer
    // without its NS and glue: the answer only; AA set, no RA, on both.
    for question in [
        ["_http._tcp.web.prod.svc.cluster.local", "SRV"],
        ["www.example.test", "A"],
    ] {
        let out = server.dig(&[&["+comments"], &question[..]].concat());
        assert!(
            out.contains("ANSWER: 1, AUTHORITY: 0, ADDITIONAL: 1"),
            "{out}"
        );
        let flags = lines(&out)
            .into_iter()
            .find(|l| l.contains("flags:"))
            .unwrap();
        assert!(flags.contains(" aa") && !flags.contains(" ra"), "{flags}");
    }
    // A negative answer keeps its SOA.
    let out = server.dig(&["+comments", "missing.example.test", "A"]);
    assert!(out.contains("status: NXDOMAIN"), "{out}");
    assert!(out.contains("AUTHORITY: 1"), "{out}");
}
