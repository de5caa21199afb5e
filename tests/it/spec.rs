//! The Kubernetes DNS specification, case by case, over UDP and TCP.

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;

use crate::harness::TestServer;

const COREFILE: &str = ".:0 {
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        manifests DATA/cluster.yaml
        pods insecure
        ttl 30
    }
}
";

/// One question and what the answer section must hold, as `TYPE RDATA` lines in any order.
struct Case {
    name: &'static str,
    qtype: RecordType,
    rcode: ResponseCode,
    answers: &'static [&'static str],
}

const fn case(
    name: &'static str,
    qtype: RecordType,
    rcode: ResponseCode,
    answers: &'static [&'static str],
) -> Case {
    Case {
        name,
        qtype,
        rcode,
        answers,
    }
}

use RecordType::{A, AAAA, CNAME, NS, PTR, SOA, SRV, TXT};
use ResponseCode::{NXDomain, NoError};

const CASES: &[Case] = &[
    // ClusterIP services: an address per cluster IP, dual-stack included.
    case(
        "kubernetes.default.svc.cluster.local.",
        A,
        NoError,
        &["A 10.96.0.1"],
    ),
    case("kubernetes.default.svc.cluster.local.", AAAA, NoError, &[]),
    case(
        "web.prod.svc.cluster.local.",
        A,
        NoError,
        &["A 10.96.12.34"],
    ),
    case(
        "web.prod.svc.cluster.local.",
        AAAA,
        NoError,
        &["AAAA fd00:10:96::1234"],
    ),
    case(
        "noports.prod.svc.cluster.local.",
        A,
        NoError,
        &["A 10.96.0.20"],
    ),
    case("pending.prod.svc.cluster.local.", A, NoError, &[]),
    // SRV: one per named port, weight 100/N, targeting the service.
    case(
        "_http._tcp.web.prod.svc.cluster.local.",
        SRV,
        NoError,
        &["SRV 0 50 80 web.prod.svc.cluster.local."],
    ),
    case(
        "_https._tcp.web.prod.svc.cluster.local.",
        SRV,
        NoError,
        &["SRV 0 50 443 web.prod.svc.cluster.local."],
    ),
    case(
        "_HTTPS._TCP.web.prod.svc.cluster.local.",
        SRV,
        NoError,
        &["SRV 0 50 443 web.prod.svc.cluster.local."],
    ),
    case(
        "web.prod.svc.cluster.local.",
        SRV,
        NoError,
        &[
            "SRV 0 25 80 web.prod.svc.cluster.local.",
            "SRV 0 25 443 web.prod.svc.cluster.local.",
        ],
    ),
    case(
        "_dns._udp.kube-dns.kube-system.svc.cluster.local.",
        SRV,
        NoError,
        &["SRV 0 100 53 kube-dns.kube-system.svc.cluster.local."],
    ),
    case(
        "_dns._tcp.kube-dns.kube-system.svc.cluster.local.",
        SRV,
        NXDomain,
        &[],
    ),
    case("_http._udp.web.prod.svc.cluster.local.", SRV, NXDomain, &[]),
    case("_tcp.web.prod.svc.cluster.local.", SRV, NoError, &[]),
    case("noports.prod.svc.cluster.local.", SRV, NoError, &[]),
    // Endpoint names under a ClusterIP service, as CoreDNS answers them.
    case(
        "10-44-1-1.web.prod.svc.cluster.local.",
        A,
        NoError,
        &["A 10.44.1.1"],
    ),
    // Headless: an address per ready endpoint, a name per endpoint, SRV per endpoint.
    case(
        "sidecar-svc-headless.default.svc.cluster.local.",
        A,
        NoError,
        &["A 10.36.0.0", "A 10.36.0.1", "A 10.39.0.1"],
    ),
    case(
        "10-36-0-1.sidecar-svc-headless.default.svc.cluster.local.",
        A,
        NoError,
        &["A 10.36.0.1"],
    ),
    case(
        "db.prod.svc.cluster.local.",
        A,
        NoError,
        &["A 10.44.0.10", "A 10.44.0.11"],
    ),
    case(
        "db-0.db.prod.svc.cluster.local.",
        A,
        NoError,
        &["A 10.44.0.10"],
    ),
    case(
        "DB-0.db.prod.svc.cluster.local.",
        A,
        NoError,
        &["A 10.44.0.10"],
    ),
    case("db-0.db.prod.svc.cluster.local.", AAAA, NoError, &[]),
    case("db-0.db.prod.svc.cluster.local.", TXT, NoError, &[]),
    case(
        "db-0.db.prod.svc.cluster.local.",
        SRV,
        NoError,
        &["SRV 0 100 3306 db-0.db.prod.svc.cluster.local."],
    ),
    case("x.db-0.db.prod.svc.cluster.local.", A, NXDomain, &[]),
    case(
        "10-44-1-1.web.prod.svc.cluster.local.",
        SRV,
        NoError,
        &["SRV 0 100 8080 10-44-1-1.web.prod.svc.cluster.local."],
    ),
    case("db-2.db.prod.svc.cluster.local.", A, NXDomain, &[]),
    case("10-44-0-10.db.prod.svc.cluster.local.", A, NXDomain, &[]),
    case(
        "_mysql._tcp.db.prod.svc.cluster.local.",
        SRV,
        NoError,
        &[
            "SRV 0 50 3306 db-0.db.prod.svc.cluster.local.",
            "SRV 0 50 3306 db-1.db.prod.svc.cluster.local.",
        ],
    ),
    case(
        "db.prod.svc.cluster.local.",
        SRV,
        NoError,
        &[
            "SRV 0 50 3306 db-0.db.prod.svc.cluster.local.",
            "SRV 0 50 3306 db-1.db.prod.svc.cluster.local.",
        ],
    ),
    case("db.prod.svc.cluster.local.", AAAA, NoError, &[]),
    case("empty.prod.svc.cluster.local.", A, NXDomain, &[]),
    case(
        "peers.prod.svc.cluster.local.",
        A,
        NoError,
        &["A 10.44.3.1", "A 10.44.3.2"],
    ),
    case(
        "_gossip._udp.peers.prod.svc.cluster.local.",
        SRV,
        NoError,
        &[
            "SRV 0 50 7946 10-44-3-1.peers.prod.svc.cluster.local.",
            "SRV 0 50 7946 10-44-3-2.peers.prod.svc.cluster.local.",
        ],
    ),
    case(
        "dual.prod.svc.cluster.local.",
        A,
        NoError,
        &["A 10.44.4.1", "A 10.44.4.2"],
    ),
    case(
        "dual.prod.svc.cluster.local.",
        AAAA,
        NoError,
        &["AAAA fd00:44::1"],
    ),
    case(
        "fd00-44--1.dual.prod.svc.cluster.local.",
        AAAA,
        NoError,
        &["AAAA fd00:44::1"],
    ),
    case(
        "legacy.prod.svc.cluster.local.",
        A,
        NoError,
        &["A 10.44.5.1"],
    ),
    case(
        "old-0.legacy.prod.svc.cluster.local.",
        A,
        NoError,
        &["A 10.44.5.1"],
    ),
    case("both.prod.svc.cluster.local.", A, NoError, &["A 10.44.6.1"]),
    // ExternalName: a CNAME; followed inside the zone.
    case(
        "search.prod.svc.cluster.local.",
        CNAME,
        NoError,
        &["CNAME search.example.com."],
    ),
    case(
        "search.prod.svc.cluster.local.",
        A,
        NoError,
        &["CNAME search.example.com."],
    ),
    case(
        "alias.prod.svc.cluster.local.",
        A,
        NoError,
        &["CNAME web.prod.svc.cluster.local.", "A 10.96.12.34"],
    ),
    case("search.prod.svc.cluster.local.", SRV, NoError, &[]),
    // Pods, insecure: the address in the name, when the namespace exists.
    case(
        "10-36-0-7.default.pod.cluster.local.",
        A,
        NoError,
        &["A 10.36.0.7"],
    ),
    case(
        "10-99-0-1.default.pod.cluster.local.",
        A,
        NoError,
        &["A 10.99.0.1"],
    ),
    case("10-36-0-7.default.pod.cluster.local.", AAAA, NoError, &[]),
    case(
        "fd00-44--99.prod.pod.cluster.local.",
        AAAA,
        NoError,
        &["AAAA fd00:44::99"],
    ),
    case("10-36-0-7.nosuchns.pod.cluster.local.", A, NXDomain, &[]),
    case("not-an-ip.default.pod.cluster.local.", A, NXDomain, &[]),
    // Reverse: a cluster IP names its service; an endpoint address names the endpoint.
    case(
        "1.0.96.10.in-addr.arpa.",
        PTR,
        NoError,
        &["PTR kubernetes.default.svc.cluster.local."],
    ),
    case(
        "1.0.36.10.in-addr.arpa.",
        PTR,
        NoError,
        &["PTR 10-36-0-1.sidecar-svc-headless.default.svc.cluster.local."],
    ),
    case(
        "10.0.44.10.in-addr.arpa.",
        PTR,
        NoError,
        &["PTR db-0.db.prod.svc.cluster.local."],
    ),
    case(
        "4.3.2.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.6.9.0.0.0.1.0.0.0.0.d.f.ip6.arpa.",
        PTR,
        NoError,
        &["PTR web.prod.svc.cluster.local."],
    ),
    case(
        "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.4.4.0.0.0.0.d.f.ip6.arpa.",
        PTR,
        NoError,
        &["PTR fd00-44--1.dual.prod.svc.cluster.local."],
    ),
    // A PTR name has no other types; a partial reverse name does not exist.
    case("10.0.44.10.in-addr.arpa.", A, NoError, &[]),
    case("0.44.10.in-addr.arpa.", PTR, NXDomain, &[]),
    case("010.0.44.10.in-addr.arpa.", PTR, NXDomain, &[]),
    case("12.0.44.10.in-addr.arpa.", PTR, NXDomain, &[]),
    case("8.8.8.8.in-addr.arpa.", PTR, NXDomain, &[]),
    // The zone itself, schema version, empty non-terminals, and names that do not exist.
    case("dns-version.cluster.local.", TXT, NoError, &["TXT 1.1.0"]),
    case("cluster.local.", A, NoError, &[]),
    case("svc.cluster.local.", A, NoError, &[]),
    case("prod.svc.cluster.local.", A, NoError, &[]),
    case("quiet.svc.cluster.local.", A, NoError, &[]),
    case("pod.cluster.local.", A, NoError, &[]),
    case("default.pod.cluster.local.", A, NoError, &[]),
    case("nosuchns.svc.cluster.local.", A, NXDomain, &[]),
    case("nosuch.default.svc.cluster.local.", A, NXDomain, &[]),
    case("nosuch.cluster.local.", A, NXDomain, &[]),
    case("a.b.c.web.prod.svc.cluster.local.", A, NXDomain, &[]),
];

fn rendered(msg: &Message) -> Vec<String> {
    let mut v: Vec<String> = msg
        .answers()
        .iter()
        .map(|r| {
            let data = r.data().to_string();
            let data = data.trim_matches('"').to_string();
            format!("{} {}", r.record_type(), data)
        })
        .collect();
    v.sort();
    v
}

fn check(msg: &Message, c: &Case, how: &str) {
    let what = format!("{} {} over {how}", c.name, c.qtype);
    assert_eq!(msg.response_code(), c.rcode, "{what}");
    let mut expected: Vec<String> = c.answers.iter().map(|s| s.to_string()).collect();
    expected.sort();
    assert_eq!(rendered(msg), expected, "{what}");
    assert!(msg.authoritative(), "{what}: AA");
    assert_eq!(
        msg.queries()[0].name().to_string(),
        c.name,
        "{what}: question echoed"
    );
    for r in msg.answers() {
        if r.record_type() != RecordType::TXT {
            assert_eq!(r.ttl(), 30, "{what}: ttl of {r}");
        }
    }
    if msg.answers().is_empty() {
        let soa = msg
            .name_servers()
            .first()
            .unwrap_or_else(|| panic!("{what}: no SOA"));
        assert_eq!(soa.record_type(), SOA, "{what}");
    }
}

#[test]
fn every_record_rule_over_udp_and_tcp() {
    let server = TestServer::start(COREFILE);
    for c in CASES {
        check(&server.query(c.name, c.qtype), c, "udp");
        check(&server.query_tcp(c.name, c.qtype), c, "tcp");
    }
}

#[test]
fn endpoint_names_answer_srv_with_their_address_any_and_through_a_cname() {
    let server = TestServer::start(COREFILE);
    let m = server.query("db-0.db.prod.svc.cluster.local.", SRV);
    let extra: Vec<String> = m
        .additionals()
        .iter()
        .map(|r| format!("{} {} {}", r.name(), r.record_type(), r.data()))
        .collect();
    assert_eq!(extra, vec!["db-0.db.prod.svc.cluster.local. A 10.44.0.10"]);
    assert_eq!(
        rendered(&server.query("db-0.db.prod.svc.cluster.local.", RecordType::ANY)),
        vec![
            "A 10.44.0.10",
            "SRV 0 100 3306 db-0.db.prod.svc.cluster.local."
        ]
    );
    let m = server.query("primary.prod.svc.cluster.local.", A);
    let chain: Vec<String> = m
        .answers()
        .iter()
        .map(|r| format!("{} {} {}", r.name(), r.record_type(), r.data()))
        .collect();
    assert_eq!(
        chain,
        vec![
            "primary.prod.svc.cluster.local. CNAME db-0.db.prod.svc.cluster.local.",
            "db-0.db.prod.svc.cluster.local. A 10.44.0.10",
        ]
    );
}

#[test]
fn srv_answers_carry_the_targets_addresses() {
    let server = TestServer::start(COREFILE);
    let m = server.query("_http._tcp.web.prod.svc.cluster.local.", SRV);
    let mut extra: Vec<String> = m
        .additionals()
        .iter()
        .map(|r| format!("{} {} {}", r.name(), r.record_type(), r.data()))
        .collect();
    extra.sort();
    assert_eq!(
        extra,
        vec![
            "web.prod.svc.cluster.local. A 10.96.12.34",
            "web.prod.svc.cluster.local. AAAA fd00:10:96::1234",
        ]
    );
    let m = server.query("db.prod.svc.cluster.local.", SRV);
    let mut extra: Vec<String> = m
        .additionals()
        .iter()
        .map(|r| format!("{} {}", r.name(), r.data()))
        .collect();
    extra.sort();
    assert_eq!(
        extra,
        vec![
            "db-0.db.prod.svc.cluster.local. 10.44.0.10",
            "db-1.db.prod.svc.cluster.local. 10.44.0.11",
        ]
    );
}

/// The machine's own addresses, as the server finds them when it listens on all of them:
/// every interface's, loopback left out.
fn own_addresses() -> Vec<std::net::IpAddr> {
    let mut out: Vec<std::net::IpAddr> = if_addrs::get_if_addrs()
        .unwrap()
        .iter()
        .map(if_addrs::Interface::ip)
        .filter(|ip| !ip.is_loopback())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Each additional record as `NAME TYPE DATA`, sorted.
fn additional(m: &Message) -> Vec<String> {
    let mut out: Vec<String> = m
        .additionals()
        .iter()
        .filter(|r| r.record_type() != RecordType::OPT)
        .map(|r| format!("{} {} {}", r.name(), r.record_type(), r.data()))
        .collect();
    out.sort();
    out
}

#[test]
fn the_apex_ns_is_the_server_itself_or_the_service_its_address_is_an_endpoint_of() {
    // Listening on every address, none an endpoint: `ns.dns.ZONE`, glued to the machine's own
    // addresses (CoreDNS's fallback), which `ns.dns.ZONE` also answers.
    let server = TestServer::start(COREFILE);
    let own = own_addresses();
    let m = server.query("cluster.local.", NS);
    assert_eq!(m.response_code(), NoError);
    let glue: Vec<String> = own
        .iter()
        .map(|ip| {
            let t = if ip.is_ipv4() { "A" } else { "AAAA" };
            format!("ns.dns.cluster.local. {t} {ip}")
        })
        .collect();
    let mut glue_sorted = glue.clone();
    glue_sorted.sort();
    assert_eq!(additional(&m), glue_sorted);
    if own.is_empty() {
        assert!(rendered(&m).is_empty(), "no address of its own: no NS");
    } else {
        assert_eq!(rendered(&m), ["NS ns.dns.cluster.local."]);
    }
    let v4: Vec<String> = own
        .iter()
        .filter(|ip| ip.is_ipv4())
        .map(|ip| format!("A {ip}"))
        .collect();
    assert_eq!(rendered(&server.query("ns.dns.cluster.local.", A)), v4);

    // Bound to an address that is an endpoint of kube-dns: kube-dns by name, glued to its
    // cluster IP, as in a cluster.
    let Some(mine) = own.iter().find(|ip| ip.is_ipv4()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let slice = dir.path().join("kube-dns-slice.yaml");
    std::fs::write(
        &slice,
        format!(
            "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
             metadata: {{name: kube-dns-x1, namespace: kube-system, labels: {{kubernetes.io/service-name: kube-dns}}}}\n\
             addressType: IPv4\nendpoints:\n- addresses: [{mine}]\n  conditions: {{ready: true}}\n\
             ports: [{{name: dns, port: 53, protocol: UDP}}]\n"
        ),
    )
    .unwrap();
    let server = TestServer::start(&format!(
        "cluster.local:0 {{\n bind {mine}\n kubernetes cluster.local {{\n  manifests DATA/cluster.yaml {}\n }}\n}}\n",
        slice.display()
    ));
    let m = server.query("cluster.local.", NS);
    assert_eq!(rendered(&m), ["NS kube-dns.kube-system.svc.cluster.local."]);
    assert_eq!(
        additional(&m),
        ["kube-dns.kube-system.svc.cluster.local. A 10.96.0.10"]
    );
    assert_eq!(
        rendered(&server.query("ns.dns.cluster.local.", A)),
        ["A 10.96.0.10"]
    );
}

#[test]
fn soa_is_written_as_coredns_writes_it() {
    let server = TestServer::start(COREFILE);
    let m = server.query("cluster.local.", SOA);
    let soa = &m.answers()[0];
    assert_eq!(soa.ttl(), 30);
    let text = soa.data().to_string();
    let fields: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(fields[0], "ns.dns.cluster.local.");
    assert_eq!(fields[1], "hostmaster.cluster.local.");
    assert_eq!(&fields[3..], ["7200", "1800", "86400", "30"]);
    // The reverse zones have their own apex.
    let m = server.query("nosuch.in-addr.arpa.", A);
    assert_eq!(m.response_code(), NXDomain);
    assert_eq!(m.name_servers()[0].name().to_string(), "in-addr.arpa.");
}

#[test]
fn the_namespaces_option_hides_other_namespaces() {
    let server = TestServer::start(
        ".:0 {
        kubernetes cluster.local in-addr.arpa {
            manifests DATA/cluster.yaml
            namespaces prod
            pods insecure
        }
    }",
    );
    assert_eq!(
        server
            .query("web.prod.svc.cluster.local.", A)
            .answers()
            .len(),
        1
    );
    for (name, qtype) in [
        ("kubernetes.default.svc.cluster.local.", A),
        ("default.svc.cluster.local.", A),
        ("10-36-0-7.default.pod.cluster.local.", A),
        ("1.0.96.10.in-addr.arpa.", PTR),
    ] {
        assert_eq!(
            server.query(name, qtype).response_code(),
            NXDomain,
            "{name}"
        );
    }
}

#[test]
fn pods_disabled_and_verified() {
    let disabled = TestServer::start(
        ".:0 {
        kubernetes cluster.local { 
            manifests DATA/cluster.yaml
        }
    }",
    );
    assert_eq!(
        disabled
            .query("10-36-0-7.default.pod.cluster.local.", A)
            .response_code(),
        NXDomain
    );
    let verified = TestServer::start(
        ".:0 {
        kubernetes cluster.local {
            manifests DATA/cluster.yaml
            pods verified
        }
    }",
    );
    let m = verified.query("10-36-0-7.default.pod.cluster.local.", A);
    assert_eq!(rendered(&m), vec!["A 10.36.0.7"]);
    assert_eq!(
        verified
            .query("10-99-0-1.default.pod.cluster.local.", A)
            .response_code(),
        NXDomain
    );
    assert_eq!(
        verified
            .query("10-36-0-7.prod.pod.cluster.local.", A)
            .response_code(),
        NXDomain
    );
}

#[test]
fn fallthrough_passes_nxdomain_to_the_next_plugin_only_in_its_zones() {
    let server = TestServer::start(
        ".:0 {
        hosts {
            10.0.0.5 registry.example.internal
            fallthrough
        }
        kubernetes cluster.local in-addr.arpa {
            manifests DATA/cluster.yaml
            fallthrough in-addr.arpa
        }
    }",
    );
    // A reverse name the cluster lacks falls through; with nothing after it, SERVFAIL (CoreDNS's
    // "no next plugin found").
    assert_eq!(
        server.query("8.8.8.8.in-addr.arpa.", PTR).response_code(),
        ResponseCode::ServFail
    );
    // A cluster name that does not exist is NXDOMAIN: no fallthrough for cluster.local.
    assert_eq!(
        server
            .query("nosuch.default.svc.cluster.local.", A)
            .response_code(),
        NXDomain
    );
    // The hosts plugin runs first and answers its own names, with PTRs.
    assert_eq!(
        rendered(&server.query("registry.example.internal.", A)),
        vec!["A 10.0.0.5"]
    );
    assert_eq!(
        rendered(&server.query("5.0.0.10.in-addr.arpa.", PTR)),
        vec!["PTR registry.example.internal."]
    );
}

#[test]
fn endpoint_pod_names_names_endpoints_after_their_pods() {
    let server = TestServer::start(
        ".:0 {
        kubernetes cluster.local {
            manifests DATA/cluster.yaml
            endpoint_pod_names
        }
    }",
    );
    let m = server.query(
        "sidecar-app-8zdkl.sidecar-svc-headless.default.svc.cluster.local.",
        A,
    );
    assert_eq!(rendered(&m), vec!["A 10.36.0.1"]);
}

#[test]
fn loadbalance_shuffles_addresses_and_keeps_the_set() {
    let server = TestServer::start(
        ".:0 {
        loadbalance
        kubernetes cluster.local {
            manifests DATA/cluster.yaml
        }
    }",
    );
    let mut firsts = std::collections::BTreeSet::new();
    for _ in 0..40 {
        let m = server.query("sidecar-svc-headless.default.svc.cluster.local.", A);
        assert_eq!(
            rendered(&m),
            vec!["A 10.36.0.0", "A 10.36.0.1", "A 10.39.0.1"]
        );
        firsts.insert(m.answers()[0].data().to_string());
    }
    assert!(firsts.len() > 1, "always the same order: {firsts:?}");
    // A CNAME stays ahead of the addresses it leads to.
    for _ in 0..10 {
        let m = server.query("alias.prod.svc.cluster.local.", A);
        assert_eq!(m.answers()[0].record_type(), CNAME);
    }
}
