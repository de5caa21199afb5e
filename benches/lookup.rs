//! Lookups in the real cluster table, as the answer path does them, alone and while the
//! cluster writer keeps applying changes.
//!
//! The table is the one clusterdns serves: a [`ClusterWriter`] fed a cluster through its
//! public API, read through its [`ClusterView`]. A cluster here is `S` services over 20
//! namespaces, each with one TCP port `http` and one EndpointSlice of 10 ready endpoints
//! (every tenth service headless, the rest ClusterIP), zones `cluster.local.`,
//! `in-addr.arpa.` and `ip6.arpa.`. Each service gives 3 names (`svc-i.nsK.svc.cluster.local.`,
//! `_tcp.svc-i…` and `_http._tcp.svc-i…`; its endpoints' names live inside its node, and PTRs
//! in a map of their own), so `S = N / 3`: 333 services for `lookup/1000`, 33,333 for
//! `lookup/100000`, 333,333 (3.3M endpoints) for `lookup/1000000`. The actual name count is
//! printed when each table is built (1,051, 100,051 and 1,000,051; the PTR names come on top).
//! Each table is built once; the 1M one takes 20-30 s and about 1.5 GB.
//!
//! One lookup is what `plugin::kubernetes` does for a query name: pin the names
//! (`ClusterView::names`, once per query), `find` the key (the name's node, or else an
//! endpoint's name under its parent), then read the node's A set as the answer would. A probe
//! is the query name as the packet loop has it: lowercase wire format. Probes are the service
//! names of every 7th service (at most 4096; 48 at 1k), so they jump around the table; the
//! figure is per lookup (criterion's elements/s is lookups/s). 4096 distinct names stay in
//! the CPU's caches from batch to batch, so this is a warm-cache lookup at every size.
//!
//! - `lookup/{1000,100000,1000000}`: lookups on a table of about N names, writer idle.
//! - `lookup_under_churn/{idle,1000_changes_per_s,flat_out}`: the same lookups on the 100k-name
//!   table while a writer thread applies real changes one `apply` each: nine in ten are an
//!   EndpointSlice whose ready addresses change (half of them a headless service's, whose A
//!   set then changes), one in ten a service added or removed. Paced at 1000 changes/s, then
//!   as fast as the writer goes; `idle` is the same run with the writer thread asleep, and
//!   `idle_again` after the churn shows how far the machine itself drifted. At the end the
//!   slowdown (median time of a 4096-lookup batch, churn / idle) is printed, against the
//!   target of < 5% for readers under a steady stream of changes, with the changes/s the
//!   writer reached and the share of time the reader waited for a CPU (on a 2-core machine
//!   the flat-out writer and anything else running compete with it). Then idle and 1000
//!   changes/s alternate, half a second each, twenty times, and the median of the pairs'
//!   ratios is printed: the figure that cancels the drift.
//!
//! `cargo bench --bench lookup`

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use clusterdns::cluster::PodMode;
use clusterdns::cluster::records::ClusterOptions;
use clusterdns::cluster::writer::{Change, ClusterView, ClusterWriter};
use clusterdns::cluster::{
    ClusterObjects, Endpoint, EndpointSet, Port, Protocol, Service, ServiceKind,
};
use clusterdns::source::convert::{Kind, Object};
use clusterdns::table::{EndpointName, NameKey, WireNode};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hickory_proto::rr::{Name, RecordType};

const ENDPOINTS: usize = 10;
const NAMESPACES: usize = 20;
/// Names each service gives: its own, `_tcp.` and `_http._tcp.` under it.
const NAMES_PER_SERVICE: usize = 3;
const PROBE_STRIDE: usize = 7;
const MAX_PROBES: usize = 4096;

fn ip(n: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(n))
}

fn service_ip(i: usize) -> IpAddr {
    ip(u32::from(Ipv4Addr::new(10, 96, 0, 0)) + i as u32)
}

fn first_pod_ip(i: usize) -> u32 {
    u32::from(Ipv4Addr::new(10, 128, 0, 0)) + (i * ENDPOINTS) as u32
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

fn namespace(i: usize) -> String {
    format!("ns{}", i % NAMESPACES)
}

fn service(ns: &str, name: &str, kind: ServiceKind) -> Service {
    Service {
        namespace: ns.to_string(),
        name: name.to_string(),
        kind,
        ports: vec![Port {
            name: "http".into(),
            port: 80,
            protocol: Protocol::Tcp,
        }],
        publish_not_ready: false,
        external: Box::default(),
    }
}

/// The slice of service `i`; endpoint `j` is ready when `ready(j)`.
fn slice(i: usize, ready: impl Fn(usize) -> bool) -> Object {
    let (ns, name) = (namespace(i), format!("svc-{i}"));
    let set = EndpointSet {
        namespace: ns.clone(),
        service: name.clone(),
        endpoints: (0..ENDPOINTS)
            .map(|j| Endpoint {
                addresses: [ip(first_pod_ip(i) + j as u32)].into(),
                hostname: None,
                ready: ready(j),
                target_name: None,
                zone: None,
            })
            .collect(),
        ports: vec![Port {
            name: "http".into(),
            port: 8080,
            protocol: Protocol::Tcp,
        }],
    };
    Object::Slice((ns, format!("{name}-x")), Some(set))
}

/// A writer holding `services` services (see the module comment), applied as one full sync.
fn build(services: usize) -> ClusterWriter {
    let mut objects = ClusterObjects::default();
    for i in 0..services {
        let ns = namespace(i);
        let kind = if i.is_multiple_of(10) {
            ServiceKind::Headless
        } else {
            ServiceKind::ClusterIp(vec![service_ip(i)])
        };
        objects.insert(Object::Service(service(&ns, &format!("svc-{i}"), kind)));
        objects.insert(slice(i, |_| true));
        objects.namespaces.insert(ns);
    }
    let start = Instant::now();
    let mut writer = ClusterWriter::new(options(), true);
    writer.apply(vec![Change::ReplaceAll(objects)]);
    let view = writer.view();
    println!(
        "table: {services} services, {} endpoints: {} names (+{} PTR names), built in {:.1} s",
        services * ENDPOINTS,
        view.names().len(),
        view.ptrs().addresses().len(),
        start.elapsed().as_secs_f64(),
    );
    writer
}

/// Every 7th service's name, lowercase wire format, at most 4096.
fn probes(services: usize) -> Vec<Vec<u8>> {
    (0..services)
        .step_by(PROBE_STRIDE)
        .take(MAX_PROBES)
        .map(|i| {
            let name = format!("svc-{i}.{}.svc.cluster.local.", namespace(i));
            NameKey::new(&Name::from_ascii(&name).unwrap())
                .as_bytes()
                .to_vec()
        })
        .collect()
}

/// What is at a name: a node, or an endpoint's name kept in its service's node.
enum Found<'a> {
    Node(&'a WireNode),
    Endpoint(EndpointName<'a>),
}

type Names<'g> =
    papaya::HashMapRef<'g, NameKey, WireNode, std::hash::RandomState, papaya::LocalGuard<'g>>;

/// `plugin::kubernetes::find`: the node at `key`, else the endpoint its first label names
/// under its parent.
fn find<'a>(names: &'a Names<'_>, key: &[u8]) -> Option<Found<'a>> {
    if let Some(node) = names.get(key) {
        return Some(Found::Node(node));
    }
    let (&len, rest) = key.split_first()?;
    let (label, parent) = rest.split_at_checked(usize::from(len))?;
    if label.is_empty() {
        return None;
    }
    names.get(parent)?.endpoint(label).map(Found::Endpoint)
}

/// One query's lookup: pin, find, read the A set. Returns how many A records it found.
fn lookup(view: &ClusterView, probe: &[u8]) -> usize {
    let names = view.names();
    match find(&names, probe) {
        Some(Found::Node(node)) => node.get(RecordType::A).map_or(0, |s| usize::from(s.count)),
        Some(Found::Endpoint(e)) => e.addresses().count(),
        None => 0,
    }
}

/// Every probe once.
fn batch(view: &ClusterView, probes: &[Vec<u8>]) -> usize {
    probes
        .iter()
        .map(|p| lookup(view, black_box(p)))
        .sum::<usize>()
}

fn check(view: &ClusterView, probes: &[Vec<u8>]) {
    let names = view.names();
    let missing = probes
        .iter()
        .filter(|p| names.get(&p[..]).is_none())
        .count();
    assert_eq!(missing, 0, "probes not in the table");
}

fn lookups(c: &mut Criterion) {
    let mut group = c.benchmark_group("lookup");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for n in [1_000usize, 100_000, 1_000_000] {
        let services = n / NAMES_PER_SERVICE;
        let writer = build(services);
        let view = writer.view();
        let probes = probes(services);
        check(&view, &probes);
        group.throughput(Throughput::Elements(probes.len() as u64));
        group.bench_function(n.to_string(), |b| b.iter(|| batch(&view, &probes)));
        drop(view);
        drop(writer);
    }
    group.finish();
}

/// The writer thread's controls: how many changes a second (0: asleep, `u64::MAX`: as fast
/// as it goes), when to stop, how many it applied.
struct Churn {
    rate: AtomicU64,
    stop: AtomicBool,
    applied: AtomicU64,
}

const IDLE: u64 = 0;
const FLAT_OUT: u64 = u64::MAX;

/// Change `k` of the stream. Nine in ten: a service's slice with other endpoints ready (a
/// headless service's for even `k`, any service's for odd); one in ten: a service `churn-m`
/// added (even `m`) or removed again (odd `m`).
fn change(k: u64, services: usize) -> Change {
    if k % 10 == 9 {
        let m = k / 10;
        let (ns, name) = ("ns0".to_string(), format!("churn-{}", m / 2));
        if m.is_multiple_of(2) {
            let ip = service_ip(services + (m / 2) as usize % 100_000);
            let svc = service(&ns, &name, ServiceKind::ClusterIp(vec![ip]));
            Change::Upsert(Object::Service(svc))
        } else {
            Change::Delete(Kind::Service, (ns, name))
        }
    } else {
        let spread = (k as usize).wrapping_mul(7919);
        let i = if k.is_multiple_of(2) {
            spread % services.div_ceil(10) * 10
        } else {
            spread % services
        };
        // At least 6 of 10 stay ready, so the service name always has records.
        Change::Upsert(slice(i, |j| !(j + k as usize).is_multiple_of(3)))
    }
}

/// Applies `change`s at the rate `churn` asks for until it says stop.
fn churn_thread(mut writer: ClusterWriter, services: usize, churn: Arc<Churn>) {
    let mut k = 0;
    let mut next = Instant::now();
    while !churn.stop.load(Ordering::Relaxed) {
        let rate = churn.rate.load(Ordering::Relaxed);
        if rate == IDLE {
            thread::sleep(Duration::from_millis(1));
            next = Instant::now();
            continue;
        }
        if rate != FLAT_OUT {
            let now = Instant::now();
            if now < next {
                thread::sleep(next - now);
                continue;
            }
            // Paced by deadline, so sleep's overshoot does not lower the rate; a stall is
            // not made up with a burst.
            let floor = now.checked_sub(Duration::from_millis(10)).unwrap_or(now);
            next = (next + Duration::from_nanos(1_000_000_000 / rate)).max(floor);
        }
        writer.apply(vec![change(k, services)]);
        k += 1;
        churn.applied.fetch_add(1, Ordering::Relaxed);
    }
}

fn median(times: &mut [u64]) -> f64 {
    times.sort_unstable();
    times.get(times.len() / 2).copied().unwrap_or(0) as f64
}

fn median_f64(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn mean(times: &[u64]) -> f64 {
    times.iter().sum::<u64>() as f64 / times.len().max(1) as f64
}

/// This thread's time on a CPU and waiting for one, in ns (Linux's schedstat), to tell a
/// slower table from a reader that was not running: on a small shared machine the writer
/// and other processes take turns with it.
fn sched() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let mut fields = text.split_whitespace().map(|f| f.parse::<u64>().ok());
    Some((fields.next()??, fields.next()??))
}

/// One case of `lookup_under_churn`, measured.
struct Case {
    name: &'static str,
    rate: u64,
    /// Every 4096-lookup batch's time, ns.
    times: Vec<u64>,
    /// Changes a second the writer applied.
    achieved: f64,
    /// The share of the reader's wall time spent waiting for a CPU.
    waiting: Option<f64>,
}

fn lookups_under_churn(c: &mut Criterion) {
    let services = 100_000 / NAMES_PER_SERVICE;
    let mut writer = build(services);
    let view = writer.view();
    let probes = probes(services);
    check(&view, &probes);
    // The stream changes what is served: svc-0 (headless) goes from 10 addresses to 6.
    writer.apply(vec![change(0, services)]);
    assert_eq!(lookup(&view, &probes[0]), 6);
    let churn = Arc::new(Churn {
        rate: AtomicU64::new(IDLE),
        stop: AtomicBool::new(false),
        applied: AtomicU64::new(0),
    });
    let thread = {
        let churn = Arc::clone(&churn);
        thread::spawn(move || churn_thread(writer, services, churn))
    };

    let mut group = c.benchmark_group("lookup_under_churn");
    group
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .throughput(Throughput::Elements(probes.len() as u64));
    let mut cases = Vec::new();
    // Idle again at the end: how far the machine itself drifted during the run.
    for (name, rate) in [
        ("idle", IDLE),
        ("1000_changes_per_s", 1000),
        ("flat_out", FLAT_OUT),
        ("idle_again", IDLE),
    ] {
        churn.rate.store(rate, Ordering::Relaxed);
        thread::sleep(Duration::from_millis(100));
        let applied = churn.applied.load(Ordering::Relaxed);
        let (start, sched_start) = (Instant::now(), sched());
        let mut times = Vec::new();
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let t = Instant::now();
                    black_box(batch(&view, &probes));
                    let took = t.elapsed();
                    total += took;
                    times.push(took.as_nanos() as u64);
                }
                total
            })
        });
        let wall = start.elapsed();
        let waiting = sched()
            .zip(sched_start)
            .map(|((_, w1), (_, w0))| (w1 - w0) as f64 / wall.as_nanos() as f64);
        let applied = churn.applied.load(Ordering::Relaxed) - applied;
        cases.push(Case {
            name,
            rate,
            times,
            achieved: applied as f64 / wall.as_secs_f64(),
            waiting,
        });
    }
    group.finish();
    // Idle and churn in alternation, half a second each, twenty times: each pair's ratio
    // cancels the slow drift of the machine and of the table's layout.
    let mut ratios = Vec::new();
    let phase = |rate: u64| {
        churn.rate.store(rate, Ordering::Relaxed);
        let end = Instant::now() + Duration::from_millis(500);
        let mut times = Vec::new();
        while Instant::now() < end {
            let t = Instant::now();
            black_box(batch(&view, &probes));
            times.push(t.elapsed().as_nanos() as u64);
        }
        median(&mut times)
    };
    for _ in 0..20 {
        let idle = phase(IDLE);
        ratios.push(phase(1000) / idle);
    }
    churn.rate.store(IDLE, Ordering::Relaxed);
    let paired = median_f64(&mut ratios);
    churn.stop.store(true, Ordering::Relaxed);
    thread.join().expect("the writer thread panicked");

    // Nothing measured (a filter on the command line left these cases out).
    if cases.iter().any(|c| c.times.is_empty()) {
        return;
    }
    let probes = probes.len() as f64;
    let idle = &mut cases[0];
    let (idle_median, idle_mean) = (median(&mut idle.times), mean(&idle.times));
    let waiting = |case: &Case| {
        case.waiting
            .map(|w| format!(", reader waited for a CPU {:.1}% of the time", w * 100.0))
            .unwrap_or_default()
    };
    println!(
        "lookup idle: {:.1} ns per lookup (median of {} batches of {probes} lookups{})",
        idle_median / probes,
        cases[0].times.len(),
        waiting(&cases[0]),
    );
    for case in &mut cases[1..] {
        let (m, avg) = (median(&mut case.times), mean(&case.times));
        let what = match case.rate {
            IDLE => "idle again (the run's own drift):".to_string(),
            FLAT_OUT => format!(
                "lookup under churn flat-out ({:.0} changes/s):",
                case.achieved
            ),
            rate => format!(
                "lookup under churn at {rate} changes/s (writer reached {:.0}/s):",
                case.achieved
            ),
        };
        println!(
            "{what} {:.2}x idle (median; mean {:.2}x), {:.1} ns per lookup [{}{}]",
            m / idle_median,
            avg / idle_mean,
            m / probes,
            case.name,
            waiting(case),
        );
    }
    println!(
        "alternating idle and 1000 changes/s, 20 pairs of 0.5 s: {paired:.3}x idle (median of the pairs' ratios)"
    );
    println!("target: < 1.05x idle (median) under a steady stream of changes");
}

criterion_group!(benches, lookups, lookups_under_churn);
criterion_main!(benches);
