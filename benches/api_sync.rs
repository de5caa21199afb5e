//! The API source at scale, as a pod runs it: the release binary, started against the test API
//! server holding a whole cluster, measured from outside. Initial sync time (start → `/ready`
//! says 200) and the process's peak RSS (`VmHWM` in /proc), then bytes per service and per
//! endpoint over the RSS of the same binary serving an empty cluster.
//!
//! `cargo bench --bench api_sync` prints a row for 1k, 10k and 100k services (10k, 100k and 1M
//! endpoints; a tenth of the services headless; 10 endpoints each, with pod references and
//! node names as the EndpointSlice controller writes them), and the RSS kept after the sync.

#[allow(dead_code, unused_imports, unreachable_pub)]
#[path = "../tests/it/apiserver/mod.rs"]
mod apiserver;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

const NAMESPACES: usize = 20;
const ENDPOINTS: usize = 10;
/// Longest a sync may take before the run is called failed.
const SYNC_BOUND: Duration = Duration::from_secs(600);

fn ip(n: u32) -> String {
    Ipv4Addr::from(n).to_string()
}

/// Loads `services` services and their slices into the API server.
fn load(api: &apiserver::ApiServer, services: usize) {
    for ns in 0..NAMESPACES {
        api.apply(apiserver::namespace(&format!("ns{ns}")));
    }
    let service_base = u32::from(Ipv4Addr::new(10, 96, 0, 0));
    let pod_base = u32::from(Ipv4Addr::new(10, 128, 0, 0));
    let ports = [("http", 8080, "TCP")];
    for i in 0..services {
        let ns = format!("ns{}", i % NAMESPACES);
        let name = format!("svc-{i}");
        let service = if i % 10 == 0 {
            apiserver::headless_service(&ns, &name, &[("http", 80, "TCP")])
        } else {
            apiserver::service(
                &ns,
                &name,
                &ip(service_base + i as u32),
                &[("http", 80, "TCP")],
            )
        };
        api.apply(service);
        let endpoints = (0..ENDPOINTS)
            .map(|j| {
                let mut ep = apiserver::slice_endpoint(
                    &ip(pod_base + (i * ENDPOINTS + j) as u32),
                    true,
                    None,
                );
                ep["nodeName"] = json!(format!("node-{}", (i + j) % 500));
                ep["targetRef"] = json!({
                    "kind": "Pod",
                    "namespace": ns,
                    "name": format!("{name}-7d4b9c-{j:05}"),
                    "uid": format!("00000000-0000-0000-{i:04x}-{j:012x}"),
                });
                ep
            })
            .collect();
        api.apply(apiserver::endpoint_slice(
            &ns,
            &format!("{name}-abcde"),
            &name,
            &ports,
            endpoints,
        ));
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The HTTP status of GET `path`, if the server answers.
fn status(port: u16, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut head = String::new();
    stream.read_to_string(&mut head).ok()?;
    head.split_whitespace().nth(1)?.parse().ok()
}

/// A kB field of /proc/PID/status, in bytes.
fn proc_status(child: &Child, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap_or_default();
    text.lines()
        .find_map(|l| {
            l.strip_prefix(field)?
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse()
                .ok()
        })
        .map_or(0, |kb: u64| kb * 1024)
}

struct Run {
    sync: Duration,
    peak_rss: u64,
    /// RSS once synced (what the process keeps, with what the allocator holds on to).
    rss: u64,
    /// CPU time clusterdns spent (user + system) until ready.
    cpu: Duration,
}

/// User + system CPU time of a process, from /proc/PID/stat (in clock ticks of 1/100 s).
fn cpu_time(child: &Child) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", child.id())).unwrap_or_default();
    // Fields after the command name (which is in parentheses): utime and stime are 12 and 13.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let ticks = field(11) + field(12);
    Duration::from_millis(ticks * 10)
}

/// Starts clusterdns against `api` and waits until it is ready.
fn run(api: &apiserver::ApiServer, dir: &std::path::Path) -> Run {
    let (dns, ready) = (free_port(), free_port());
    let corefile = dir.join("Corefile");
    std::fs::write(
        &corefile,
        format!(
            ".:{dns} {{\n ready 127.0.0.1:{ready}\n kubernetes cluster.local in-addr.arpa ip6.arpa {{\n  endpoint {}\n  startup_timeout 3600s\n }}\n}}\n",
            api.url()
        ),
    )
    .expect("write the Corefile");
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_clusterdns"))
        .arg("-conf")
        .arg(&corefile)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start clusterdns");
    while status(ready, "/ready") != Some(200) {
        assert!(started.elapsed() < SYNC_BOUND, "never became ready");
        assert!(
            child.try_wait().ok().flatten().is_none(),
            "clusterdns exited"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let sync = started.elapsed();
    let cpu = cpu_time(&child);
    // Let what the sync freed go back before reading the peak (it is a high-water mark).
    std::thread::sleep(Duration::from_millis(500));
    let peak_rss = proc_status(&child, "VmHWM:");
    // What it keeps: after the allocator has had time to give back what the sync freed.
    std::thread::sleep(Duration::from_secs(12));
    let rss = proc_status(&child, "VmRSS:");
    let _ = child.kill();
    let _ = child.wait();
    Run {
        sync,
        peak_rss,
        rss,
        cpu,
    }
}

fn main() {
    // `cargo test --benches` runs benches once with no arguments; stay quick there.
    let quick = !std::env::args().any(|a| a == "--bench");
    // Sizes may be given: `cargo bench --bench api_sync -- 10000`.
    let given: Vec<usize> = std::env::args().filter_map(|a| a.parse().ok()).collect();
    let sizes: &[usize] = match (quick, given.is_empty()) {
        (true, _) => &[200],
        (false, false) => &given,
        (false, true) => &[1_000, 10_000, 100_000],
    };
    let dir = tempfile::tempdir().expect("a temporary directory");
    let empty = run(&apiserver::ApiServer::start(), dir.path());
    println!("empty cluster: peak RSS {:.1} MiB", mib(empty.peak_rss));
    println!(
        "services  endpoints  sync_ms  sync_cpu_ms  peak_RSS_MiB  RSS_MiB  B/service  B/endpoint"
    );
    for &services in sizes {
        let api = apiserver::ApiServer::start();
        load(&api, services);
        let r = run(&api, dir.path());
        let endpoints = services * ENDPOINTS;
        let held = r.peak_rss.saturating_sub(empty.peak_rss) as usize;
        println!(
            "{services:>8}  {endpoints:>9}  {:>7.0}  {:>11.0}  {:>12.1}  {:>7.1}  {:>9}  {:>10}",
            r.sync.as_secs_f64() * 1e3,
            r.cpu.as_secs_f64() * 1e3,
            mib(r.peak_rss),
            mib(r.rss),
            held / services,
            held / endpoints,
        );
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}
