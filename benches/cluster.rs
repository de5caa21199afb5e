//! The cluster table at scale: how long a full sync takes, how much memory it holds, and
//! what one change costs on the largest cluster.
//!
//! `cargo bench --bench cluster` prints, for 1k, 10k and 100k services (a tenth of them
//! headless with 10 endpoints each, the rest ClusterIP with 10 endpoints too): the time to
//! apply the whole cluster, the bytes it holds (counted by a wrapping allocator, so the figure
//! is exact rather than an RSS estimate), bytes per service and per endpoint, and the time
//! one endpoint change takes to apply. Then criterion measures the single change precisely.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use clusterdns::cluster::PodMode;
use clusterdns::cluster::records::ClusterOptions;
use clusterdns::cluster::writer::{Change, ClusterWriter};
use clusterdns::cluster::{
    ClusterObjects, Endpoint, EndpointSet, Port, Protocol, Service, ServiceKind,
};
use clusterdns::source::convert::Object;
use criterion::{Criterion, criterion_group, criterion_main};
use hickory_proto::rr::Name;

/// Counts live heap bytes (the `cap` crate's allocator wraps jemalloc, as the binary uses).
#[global_allocator]
static ALLOCATOR: cap::Cap<tikv_jemallocator::Jemalloc> =
    cap::Cap::new(tikv_jemallocator::Jemalloc, usize::MAX);

const ENDPOINTS: usize = 10;
const NAMESPACES: usize = 20;

fn ip(n: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(n))
}

fn options() -> ClusterOptions {
    let zone = |s: &str| Name::from_ascii(s).unwrap();
    ClusterOptions {
        zones: vec![
            zone("cluster.local."),
            zone("in-addr.arpa."),
            zone("ip6.arpa."),
        ],
        ttl: 30,
        pods: PodMode::Insecure,
        namespaces: Vec::new(),
        endpoint_pod_names: false,
        noendpoints: false,
        ignore_empty_service: false,
        external: None,
        // The server's own pod address, as in a cluster: every change checks it.
        local_ips: vec!["10.200.0.1".parse().unwrap()],
        zonal: false,
    }
}

fn slice(ns: &str, svc: &str, first_ip: u32, ready: bool) -> EndpointSet {
    EndpointSet {
        namespace: ns.to_string(),
        service: svc.to_string(),
        endpoints: (0..ENDPOINTS as u32)
            .map(|j| Endpoint {
                addresses: [ip(first_ip + j)].into(),
                hostname: None,
                ready,
                target_name: Some(format!("{svc}-pod-{j}").into()),
                zone: None,
            })
            .collect(),
        ports: vec![Port {
            name: "http".into(),
            port: 8080,
            protocol: Protocol::Tcp,
        }],
    }
}

/// `services` services over 20 namespaces; every tenth headless; 10 endpoints each.
fn cluster(services: usize) -> ClusterObjects {
    let mut objects = ClusterObjects::default();
    let service_ip = u32::from(Ipv4Addr::new(10, 96, 0, 0));
    let pod_ip = u32::from(Ipv4Addr::new(10, 128, 0, 0));
    for i in 0..services {
        let ns = format!("ns{}", i % NAMESPACES);
        let name = format!("svc-{i}");
        let kind = if i % 10 == 0 {
            ServiceKind::Headless
        } else {
            ServiceKind::ClusterIp(vec![ip(service_ip + i as u32)])
        };
        objects.insert(Object::Service(Service {
            namespace: ns.clone(),
            name: name.clone(),
            kind,
            ports: vec![Port {
                name: "http".into(),
                port: 80,
                protocol: Protocol::Tcp,
            }],
            publish_not_ready: false,
            external: Box::default(),
        }));
        let set = slice(&ns, &name, pod_ip + (i * ENDPOINTS) as u32, true);
        objects.insert(Object::Slice((ns.clone(), format!("{name}-x")), Some(set)));
        objects.namespaces.insert(ns);
    }
    objects
}

/// One endpoint change: a headless service's slice flips readiness.
fn flip(services: usize, round: usize) -> Change {
    let i = (round * 10) % services;
    let (ns, name) = (format!("ns{}", i % NAMESPACES), format!("svc-{i}"));
    let first = u32::from(Ipv4Addr::new(10, 128, 0, 0)) + (i * ENDPOINTS) as u32;
    let set = slice(&ns, &name, first, round % 2 == 1);
    Change::Upsert(Object::Slice((ns, format!("{name}-x")), Some(set)))
}

fn report() {
    println!(
        "services  endpoints  names      sync_ms  held_MiB  B/service  B/endpoint  one_change_us"
    );
    for services in [1_000, 10_000, 100_000] {
        // The objects count too: the writer keeps them to recompute what a change touches.
        let before = ALLOCATOR.allocated();
        let objects = cluster(services);
        let start = Instant::now();
        let mut writer = ClusterWriter::new(options(), true);
        writer.apply(vec![Change::ReplaceAll(objects)]);
        let sync = start.elapsed();
        let held = ALLOCATOR.allocated().saturating_sub(before);
        let rounds = 200;
        let start = Instant::now();
        for r in 0..rounds {
            writer.apply(vec![flip(services, r)]);
        }
        let change = start.elapsed() / rounds as u32;
        let endpoints = services * ENDPOINTS;
        println!(
            "{services:>8}  {endpoints:>9}  {:>9}  {:>7.0}  {:>8.1}  {:>9}  {:>10}  {:>13.1}",
            writer.view().len(),
            sync.as_secs_f64() * 1e3,
            held as f64 / (1 << 20) as f64,
            held / services,
            held / endpoints,
            change.as_secs_f64() * 1e6,
        );
        drop(writer);
    }
}

fn one_change(c: &mut Criterion) {
    report();
    let services = 100_000;
    let mut writer = ClusterWriter::new(options(), true);
    writer.apply(vec![Change::ReplaceAll(cluster(services))]);
    let mut round = 0;
    c.bench_function("one_endpoint_change_at_100k_services", |b| {
        b.iter(|| {
            round += 1;
            writer.apply(vec![black_box(flip(services, round))]);
        })
    });
}

criterion_group!(benches, one_change);
criterion_main!(benches);
