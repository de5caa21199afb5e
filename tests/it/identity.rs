//! `whoami` and `nsid` on the wire, in AKS's node-local layout: dig is told its own address and
//! port (over UDP and TCP), and `dig +nsid` gets the server's identifier, from the cluster's
//! precompiled answers, from Knot upstream and from the cache alike, while a query without NSID gets none.

use crate::harness::TestServer;
use crate::upstream::Knot;

/// The lines of dig's output that are not comments, whitespace collapsed.
fn records(out: &str) -> Vec<String> {
    out.lines()
        .filter(|l| !l.is_empty() && !l.starts_with(';'))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

#[test]
fn dig_is_told_its_own_address_and_port_over_udp_and_tcp() {
    let server = TestServer::start(
        "health-check.localdns.local:0 {
        whoami
    }",
    );
    for (transport, proto) in [("+notcp", "_udp"), ("+tcp", "_tcp")] {
        let out = server.dig(&[
            "+noall",
            "+comments",
            "+answer",
            "+additional",
            "+noedns",
            transport,
            "health-check.localdns.local",
            "A",
        ]);
        assert!(out.contains("status: NOERROR"), "{out}");
        let flags = out.lines().find(|l| l.contains("flags:")).expect("flags");
        assert!(flags.contains(" aa"), "{flags}");
        let lines = records(&out);
        assert_eq!(lines.len(), 2, "{out}");
        assert_eq!(
            lines[0], "health-check.localdns.local. 0 IN A 127.0.0.1",
            "{out}"
        );
        let srv: Vec<&str> = lines[1].split(' ').collect();
        assert_eq!(
            srv[..6],
            [
                &format!("{proto}.health-check.localdns.local.")[..],
                "0",
                "IN",
                "SRV",
                "0",
                "0"
            ],
            "{out}"
        );
        let port: u16 = srv[6].parse().expect("a port");
        assert_ne!(port, 0, "{out}");
        assert_ne!(
            port,
            server.addr.port(),
            "the client's port, not the server's: {out}"
        );
    }
}

/// dig's `; NSID: ...` line, if any.
fn nsid(out: &str) -> Option<String> {
    out.lines()
        .find_map(|l| l.strip_prefix("; NSID: "))
        .map(str::to_string)
}

#[test]
fn dig_nsid_gets_the_identifier_from_the_cluster_and_from_upstream() {
    let knot = Knot::start();
    let server = TestServer::start(&format!(
        ".:0 {{
        nsid localdns pod
        kubernetes cluster.local {{
            manifests DATA/cluster.yaml
        }}
        forward . {}
        cache
    }}",
        knot.addr
    ));
    for name in [
        "web.prod.svc.cluster.local",
        "www.example.test",
        "www.example.test",
    ] {
        for transport in ["+notcp", "+tcp"] {
            let out = server.dig(&[
                "+nsid",
                "+noall",
                "+comments",
                "+answer",
                transport,
                name,
                "A",
            ]);
            assert!(out.contains("status: NOERROR"), "{out}");
            assert_eq!(records(&out).len(), 1, "{out}");
            let got = nsid(&out).unwrap_or_else(|| panic!("no NSID for {name}: {out}"));
            assert!(got.contains("\"localdns pod\""), "{got}");
            let out = server.dig(&["+noall", "+comments", "+answer", transport, name, "A"]);
            assert_eq!(nsid(&out), None, "{out}");
        }
    }
}
