//! From an API change to the answer that shows it: the latency of the API source, measured
//! end to end (test API server → kube-rs watch → cluster writer → a DNS query over UDP), on a
//! 10k-service cluster while other services keep changing.
//!
//! `cargo bench --bench api_latency` prints the initial sync time and the p50/p99/max of the
//! event → answer latency over 300 changes, under 100 other changes a second.

#[allow(dead_code, unused_imports, unreachable_pub)]
#[path = "../tests/it/apiserver/mod.rs"]
mod apiserver;

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RData, RecordType};

const SERVICES: usize = 10_000;
const NAMESPACES: usize = 20;
const ROUNDS: usize = 300;
/// Other changes per second while measuring.
const CHURN_PER_SECOND: u64 = 100;
/// No single change may take longer than this to show.
const ROUND_BOUND: Duration = Duration::from_secs(10);

fn cluster_ip(i: usize, generation: usize) -> String {
    format!(
        "10.{}.{}.{}",
        96 + generation % 64,
        (i >> 8) & 0xff,
        i & 0xff
    )
}

fn name(i: usize) -> String {
    format!("svc-{i}.ns{}.svc.cluster.local.", i % NAMESPACES)
}

fn service(i: usize, generation: usize) -> serde_json::Value {
    apiserver::service(
        &format!("ns{}", i % NAMESPACES),
        &format!("svc-{i}"),
        &cluster_ip(i, generation),
        &[("http", 80, "TCP")],
    )
}

/// The A record the server gives for `name`, if any.
fn resolve(socket: &UdpSocket, server: SocketAddr, name: &str) -> Option<String> {
    let mut m = Message::new();
    m.set_id(1).set_recursion_desired(true);
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
    socket.send_to(&m.to_vec().unwrap(), server).ok()?;
    let mut buf = [0u8; 512];
    let (len, _) = socket.recv_from(&mut buf).ok()?;
    let reply = Message::from_vec(&buf[..len]).ok()?;
    reply.answers().iter().find_map(|r| match r.data() {
        RData::A(a) => Some(a.0.to_string()),
        _ => None,
    })
}

fn start_dns(api: &apiserver::ApiServer) -> (SocketAddr, tokio::runtime::Runtime) {
    let corefile = format!(
        ".:0 {{\n kubernetes cluster.local in-addr.arpa {{\n  endpoint {}\n  startup_timeout 60s\n }}\n}}\n",
        api.url()
    );
    let config = clusterdns::config::Config::from_text(&corefile, 0, Path::new(".")).unwrap();
    let assembly = clusterdns::assemble(&config).unwrap();
    let listeners = clusterdns::server::bind(assembly.blocks, 1).unwrap();
    let port = listeners[0].local_addr().unwrap().port();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.spawn(async move {
        for task in assembly.background {
            tokio::spawn(task);
        }
        let _ = clusterdns::server::run(listeners, Default::default()).await;
    });
    (SocketAddr::from(([127, 0, 0, 1], port)), runtime)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    // `cargo test --benches` runs benches once with no arguments; stay quick there.
    let quick = !std::env::args().any(|a| a == "--bench");
    let (services, rounds) = if quick { (200, 10) } else { (SERVICES, ROUNDS) };
    let api = apiserver::ApiServer::start();
    for ns in 0..NAMESPACES {
        api.apply(apiserver::namespace(&format!("ns{ns}")));
    }
    for i in 0..services {
        api.apply(service(i, 0));
    }
    let started = Instant::now();
    let (dns, _runtime) = start_dns(&api);
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let last = services - 1;
    while resolve(&socket, dns, &name(last)).as_deref() != Some(cluster_ip(last, 0).as_str()) {
        assert!(started.elapsed() < Duration::from_secs(120), "never synced");
        std::thread::sleep(Duration::from_millis(10));
    }
    let sync = started.elapsed();

    // Other services keep changing on another thread.
    let stop = Arc::new(AtomicBool::new(false));
    let api = Arc::new(api);
    let churn = {
        let (api, stop) = (Arc::clone(&api), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                // The upper half of the services churns; the lower half is measured.
                api.apply(service(services / 2 + n % (services / 2), n));
                std::thread::sleep(Duration::from_millis(1000 / CHURN_PER_SECOND));
            }
        })
    };
    let mut latencies = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let i = (round * 7919) % (services / 2);
        let want = cluster_ip(i, round + 1);
        let t0 = Instant::now();
        api.apply(service(i, round + 1));
        while resolve(&socket, dns, &name(i)).as_deref() != Some(want.as_str()) {
            assert!(t0.elapsed() < ROUND_BOUND, "change {round} never showed");
        }
        latencies.push(t0.elapsed());
    }
    stop.store(true, Ordering::Relaxed);
    churn.join().unwrap();
    latencies.sort();
    println!(
        "services  initial_sync_ms  changes  p50_ms  p99_ms  max_ms  (under {CHURN_PER_SECOND} other changes/s)"
    );
    println!(
        "{services:>8}  {:>15.0}  {:>7}  {:>6.2}  {:>6.2}  {:>6.2}",
        sync.as_secs_f64() * 1e3,
        rounds,
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().unwrap().as_secs_f64() * 1e3,
    );
}
