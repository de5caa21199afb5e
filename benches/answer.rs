//! The answer path without sockets: query bytes to response bytes, ns per query, for each kind
//! of query in a pod's mix; then two of them in kubeadm's Corefile shape (metrics and
//! `loadbalance` on), and in k3s's (`hosts` with `fallthrough` before `kubernetes`, as
//! k3s's NodeHosts block), with a name `hosts` answers. `cargo bench --bench answer`

use std::hint::black_box;
use std::net::SocketAddr;
use std::path::Path;

use clusterdns::answer::{Handled, Transport};
use criterion::{Criterion, criterion_group, criterion_main};
use hickory_proto::op::{Edns, Message, Query};
use hickory_proto::rr::{Name, RecordType};

fn query(name: &str, qtype: RecordType) -> Vec<u8> {
    let mut m = Message::new();
    m.set_id(7).set_recursion_desired(true);
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    m.set_edns(Edns::new());
    m.to_vec().unwrap()
}

/// Benches each query against a handler serving the test cluster with `directives` before
/// the `kubernetes` block.
fn group(c: &mut Criterion, name: &str, directives: &str, queries: &[(&str, &str, RecordType)]) {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/cluster.yaml");
    let corefile = format!(
        ".:0 {{\n{directives} kubernetes cluster.local in-addr.arpa {{\n  manifests {}\n  pods insecure\n }}\n}}\n",
        data.display()
    );
    let config = clusterdns::config::Config::from_text(&corefile, 0, Path::new(".")).unwrap();
    let assembly = clusterdns::assemble(&config).unwrap();
    let listeners = clusterdns::server::bind(assembly.blocks, 1).unwrap();
    let handler = &listeners[0].handler;
    let src: SocketAddr = "127.0.0.1:5353".parse().unwrap();
    let mut group = c.benchmark_group(name);
    for &(what, name, qtype) in queries {
        let q = query(name, qtype);
        let mut out = Vec::with_capacity(4096);
        group.bench_function(what, |b| {
            b.iter(|| {
                assert!(matches!(
                    handler.handle(black_box(&q), src, Transport::Udp, &mut out),
                    Handled::Send
                ));
                black_box(out.len())
            })
        });
    }
    group.finish();
}

fn answer(c: &mut Criterion) {
    const CLUSTER_IP: (&str, &str, RecordType) =
        ("a_clusterip", "web.prod.svc.cluster.local.", RecordType::A);
    const HEADLESS: (&str, &str, RecordType) = (
        "a_headless",
        "sidecar-svc-headless.default.svc.cluster.local.",
        RecordType::A,
    );
    group(
        c,
        "answer",
        "",
        &[
            CLUSTER_IP,
            (
                "aaaa_nodata",
                "kubernetes.default.svc.cluster.local.",
                RecordType::AAAA,
            ),
            (
                "srv",
                "_http._tcp.web.prod.svc.cluster.local.",
                RecordType::SRV,
            ),
            ("ptr", "1.0.96.10.in-addr.arpa.", RecordType::PTR),
            HEADLESS,
            (
                "nxdomain",
                "www.example.com.default.svc.cluster.local.",
                RecordType::A,
            ),
        ],
    );
    // kubeadm's Corefile shape: `prometheus` counting every query, `loadbalance` shuffling.
    group(
        c,
        "answer_kubeadm",
        " errors\n prometheus 127.0.0.1:0\n loadbalance\n",
        &[CLUSTER_IP, HEADLESS],
    );
    group(
        c,
        "answer_k3s",
        " errors\n prometheus 127.0.0.1:0\n loadbalance\n hosts {\n  10.0.0.11 k3s-server\n  10.0.0.12 k3s-agent-1\n  ttl 60\n  fallthrough\n }\n",
        &[
            CLUSTER_IP,
            HEADLESS,
            ("a_hosts", "k3s-agent-1.", RecordType::A),
        ],
    );
}

criterion_group!(benches, answer);
criterion_main!(benches);
