//! `dns64` on the wire, in kops's IPv6-only layout: dig over IPv6 asks AAAA of names that have
//! only IPv4 addresses, in the cluster and at Knot upstream (fresh and from the cache), and gets
//! them in the NAT64 prefix; names with IPv6 addresses keep theirs, missing names stay
//! NXDOMAIN, and an IPv4 client is left alone.

use crate::harness::{TestServer, http_get};
use crate::upstream::Knot;

/// dig's answer and header lines, whitespace collapsed.
fn answer(server: &TestServer, args: &[&str]) -> Vec<String> {
    server
        .dig(&[&["+noall", "+answer", "+comments"], args].concat())
        .lines()
        .filter(|l| !l.is_empty() && (!l.starts_with(';') || l.contains("status:")))
        .map(|l| match l.split_once("status: ") {
            Some((_, rest)) => rest.split(',').next().unwrap_or("").to_string(),
            None => l.split_whitespace().collect::<Vec<_>>().join(" "),
        })
        .collect()
}

#[test]
fn dig_over_ipv6_gets_synthesized_aaaa_from_the_cluster_and_upstream() {
    let knot = Knot::start();
    let mut server = TestServer::start(&format!(
        ".:0 {{
        bind ::1 127.0.0.1
        kubernetes cluster.local. in-addr.arpa ip6.arpa {{
            manifests DATA/cluster.yaml
            fallthrough in-addr.arpa ip6.arpa
        }}
        prometheus 127.0.0.1:0
        forward . {}
        cache 30
        dns64
    }}",
        knot.addr
    ));
    // dig asks over IPv6, but where said otherwise.
    let v4 = server.addr;
    server.addr = *server
        .listening
        .iter()
        .find(|a| a.is_ipv6())
        .expect("[::1]");
    assert!(v4.is_ipv4(), "{:?}", server.listening);
    for transport in ["+notcp", "+tcp"] {
        assert_eq!(
            answer(
                &server,
                &[transport, "kube-dns.kube-system.svc.cluster.local", "AAAA"]
            ),
            [
                "NOERROR",
                "kube-dns.kube-system.svc.cluster.local. 5 IN AAAA 64:ff9b::a60:a"
            ]
        );
        assert_eq!(
            answer(&server, &[transport, "web.prod.svc.cluster.local", "AAAA"]),
            [
                "NOERROR",
                "web.prod.svc.cluster.local. 5 IN AAAA fd00:10:96::1234"
            ]
        );
        // Twice: fresh from Knot, then from the cache (TTLs count down from 300).
        for _ in 0..2 {
            let got = answer(&server, &[transport, "www.example.test", "AAAA"]);
            assert_eq!(got[0], "NOERROR", "{got:?}");
            assert_eq!(got.len(), 2, "{got:?}");
            let fields: Vec<&str> = got[1].split(' ').collect();
            assert_eq!(fields[0], "www.example.test.", "{got:?}");
            assert!(
                fields[1].parse::<u32>().unwrap() <= 60,
                "the SOA's TTL caps it: {got:?}"
            );
            assert_eq!(fields[2..], ["IN", "AAAA", "64:ff9b::c000:201"], "{got:?}");
        }
        // A CNAME stays, its target's address is synthesized.
        let got = answer(&server, &[transport, "alias.example.test", "AAAA"]);
        assert_eq!(got.len(), 3, "{got:?}");
        assert!(got[1].ends_with("IN CNAME www.example.test."), "{got:?}");
        assert!(got[2].ends_with("IN AAAA 64:ff9b::c000:201"), "{got:?}");
        let got = answer(&server, &[transport, "www6.example.test", "AAAA"]);
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got[1].ends_with("IN AAAA 2001:db8::1"), "{got:?}");
        let got = answer(&server, &[transport, "missing.example.test", "AAAA"]);
        assert_eq!(got, ["NXDOMAIN"]);
        // A questions are untouched.
        let got = answer(&server, &[transport, "www.example.test", "A"]);
        assert!(got[1].ends_with("IN A 192.0.2.1"), "{got:?}");
    }
    // The same block from IPv4: no synthesis.
    let v4 = std::process::Command::new("dig")
        .args(["@127.0.0.1", "-p", &v4.port().to_string()])
        .args(["+noall", "+answer", "+tries=1", "+time=3"])
        .args(["kube-dns.kube-system.svc.cluster.local", "AAAA"])
        .output()
        .expect("dig runs");
    assert_eq!(String::from_utf8_lossy(&v4.stdout).trim(), "", "{v4:?}");
    let (_, metrics) = http_get(server.http[0], "/metrics");
    let translated: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("coredns_dns64_requests_translated_total{"))
        .collect();
    assert_eq!(translated.len(), 1, "{metrics}");
    // Per transport: kube-dns, www twice, alias.
    assert!(translated[0].ends_with(" 8"), "{translated:?}");
}
