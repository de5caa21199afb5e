//! Prometheus metrics under CoreDNS's names, so dashboards and alerts keep working.
//!
//! One process-wide registry ([`metrics`]). The query path only increments atomics in
//! lock-free maps keyed by small copyable keys; label strings are made when `/metrics` is
//! scraped.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

use hickory_proto::rr::RecordType;

/// CoreDNS's request-duration buckets: 0.25 ms doubling to about 8 s.
const DURATION_BUCKETS: [f64; 16] = exponential(0.00025);
/// CoreDNS's programming-duration buckets: 1 ms doubling to about 9 minutes.
const PROGRAMMING_BUCKETS: [f64; 20] = exponential(0.001);

const fn exponential<const N: usize>(start: f64) -> [f64; N] {
    let mut out = [0.0; N];
    let mut i = 0;
    let mut v = start;
    while i < N {
        out[i] = v;
        v *= 2.0;
        i += 1;
    }
    out
}

/// A histogram with fixed buckets, updated with atomics.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    counts: Vec<AtomicU64>,
    /// The sum in `1 / units` (nanoseconds for durations, bytes for sizes), so it can be an
    /// integer: 2^64 of them is 584 years of query time, or 2^48 queries of 64 KiB.
    sum_units: AtomicU64,
    units: f64,
    count: AtomicU64,
}

impl Histogram {
    /// A histogram of seconds.
    fn new(bounds: &'static [f64]) -> Self {
        Self::with_units(bounds, 1e9)
    }

    /// A histogram of bytes.
    fn bytes(bounds: &'static [f64]) -> Self {
        Self::with_units(bounds, 1.0)
    }

    fn with_units(bounds: &'static [f64], units: f64) -> Self {
        Self {
            bounds,
            counts: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            sum_units: AtomicU64::new(0),
            units,
            count: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, seconds: f64) {
        if let Some(i) = self.bounds.iter().position(|&b| seconds <= b) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        self.sum_units
            .fetch_add((seconds * self.units) as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        self.snapshot().render(out, name, labels);
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot {
            bounds: self.bounds,
            counts: self
                .counts
                .iter()
                .map(|c| c.load(Ordering::Relaxed))
                .collect(),
            sum: self.sum_units.load(Ordering::Relaxed) as f64 / self.units,
            count: self.count.load(Ordering::Relaxed),
        }
    }
}

/// A histogram's values at one moment; several add up into one series.
#[derive(Debug, Clone)]
struct Snapshot {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Snapshot {
    fn add(&mut self, other: &Snapshot) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.sum += other.sum;
        self.count += other.count;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (bound, count) in self.bounds.iter().zip(&self.counts) {
            cumulative += count;
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {cumulative}"
            );
        }
        let total = self.count;
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {total}");
        let sum = self.sum;
        let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
        let _ = writeln!(out, "{name}_count{{{labels}}} {total}");
    }
}

/// Which server block and zone a query went to, by index (see [`Metrics::register_block`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Route {
    pub block: u16,
    pub zone: u16,
}

/// Everything a query's series are labelled by: each metric sums the keys that share its
/// labels when scraped, so a query updates one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct QueryKey {
    route: Route,
    tcp: bool,
    v6: bool,
    qtype: u16,
    rcode: u16,
}

/// The series of one [`QueryKey`].
#[derive(Debug)]
struct QuerySeries {
    count: AtomicU64,
    duration: Histogram,
    request_size: Histogram,
    response_size: Histogram,
}

impl QuerySeries {
    fn new() -> Self {
        Self {
            count: AtomicU64::new(0),
            duration: Histogram::new(&DURATION_BUCKETS),
            request_size: Histogram::bytes(&SIZE_BUCKETS),
            response_size: Histogram::bytes(&SIZE_BUCKETS),
        }
    }
}

/// FxHash: the per-query map's keys are a few small integers, for which SipHash (the
/// default, built against hostile keys) costs more than the rest of the lookup.
#[derive(Debug, Default, Clone, Copy)]
struct FxHasher(u64);

impl std::hash::Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u8(&mut self, n: u8) {
        self.write_u64(u64::from(n));
    }

    fn write_u16(&mut self, n: u16) {
        self.write_u64(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type FxBuild = std::hash::BuildHasherDefault<FxHasher>;

/// One answered query, as the metrics see it.
#[derive(Debug, Clone, Copy)]
pub struct Observed {
    pub route: Route,
    pub tcp: bool,
    /// Whether the client's address is IPv6 (`family="2"`).
    pub v6: bool,
    pub qtype: u16,
    /// The client's buffer size: EDNS's, 512 without, 65535 over TCP.
    pub size: usize,
    pub rcode: u16,
    pub seconds: f64,
    /// The response's length in bytes.
    pub response_size: usize,
}

/// The registry.
#[derive(Debug)]
pub struct Metrics {
    /// Each block's server label, view and zones.
    blocks: RwLock<Vec<(String, String, Vec<String>)>>,
    /// Requests, responses, durations and sizes, all from one entry per query.
    queries: papaya::HashMap<QueryKey, QuerySeries, FxBuild>,
    programming: papaya::HashMap<&'static str, Histogram>,
    panics: AtomicU64,
    reload_failed: AtomicU64,
    forward: Forwarding,
    grpc: Calls,
    /// `autopath` walks that found an answer, by block.
    autopath: papaya::HashMap<u16, AtomicU64>,
    /// `dns64` answers synthesized, by block.
    dns64: papaya::HashMap<u16, AtomicU64>,
    /// Plugins' own counters (`acl`'s), registered at build time: name, help, labels.
    counters: RwLock<Vec<Counter>>,
    /// Each `cache`'s server and zones, and its counters.
    caches: RwLock<Vec<(String, String, Arc<CacheCounters>)>>,
    /// `rrl`: responses and requests over their allowance, by client address (the first
    /// [`RRL_CLIENTS`] seen; the rest together under `None`).
    rrl_responses: papaya::HashMap<Option<IpAddr>, AtomicU64>,
    rrl_requests: papaya::HashMap<Option<IpAddr>, AtomicU64>,
}

/// A plugin's counter: its name, help, rendered labels and value.
type Counter = (&'static str, &'static str, String, Arc<AtomicU64>);

/// How many clients `rrl`'s counters keep apart: sources can be forged, and each series is
/// memory that would otherwise grow with every address a flood claims to come from.
pub const RRL_CLIENTS: usize = 1024;

/// The `forward` plugin's counters, by upstream.
#[derive(Debug, Default)]
struct Forwarding {
    requests: papaya::HashMap<SocketAddr, AtomicU64>,
    /// By upstream and rcode.
    responses: papaya::HashMap<(SocketAddr, u8), AtomicU64>,
    durations: papaya::HashMap<(SocketAddr, u8), Histogram>,
    healthcheck_failures: papaya::HashMap<SocketAddr, AtomicU64>,
    healthcheck_broken: AtomicU64,
    max_concurrent_rejects: AtomicU64,
}

/// The `grpc` plugin's counters, by upstream.
#[derive(Debug, Default)]
struct Calls {
    requests: papaya::HashMap<SocketAddr, AtomicU64>,
    /// By upstream and rcode.
    responses: papaya::HashMap<(SocketAddr, u8), AtomicU64>,
    durations: papaya::HashMap<SocketAddr, Histogram>,
}

/// The process's registry.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| Metrics {
        blocks: RwLock::new(Vec::new()),
        queries: papaya::HashMap::with_hasher(FxBuild::default()),
        programming: papaya::HashMap::new(),
        panics: AtomicU64::new(0),
        reload_failed: AtomicU64::new(0),
        forward: Forwarding::default(),
        grpc: Calls::default(),
        caches: RwLock::new(Vec::new()),
        autopath: papaya::HashMap::new(),
        dns64: papaya::HashMap::new(),
        counters: RwLock::new(Vec::new()),
        rrl_responses: papaya::HashMap::new(),
        rrl_requests: papaya::HashMap::new(),
    })
}

/// Whether a type has a `type` label of its own (the rest are `other`), as CoreDNS has it.
fn labelled(qtype: u16) -> bool {
    matches!(
        RecordType::from(qtype),
        RecordType::A
            | RecordType::AAAA
            | RecordType::CNAME
            | RecordType::HINFO
            | RecordType::TXT
            | RecordType::PTR
            | RecordType::SOA
            | RecordType::NS
            | RecordType::SRV
            | RecordType::MX
            | RecordType::DS
            | RecordType::DNSKEY
            | RecordType::NSEC3
            | RecordType::HTTPS
            | RecordType::SVCB
            | RecordType::AXFR
            | RecordType::IXFR
            | RecordType::ANY
            | RecordType::CAA
    )
}

/// The `type` label: common types by name, the rest as `other`, as CoreDNS does.
fn type_label(qtype: u16) -> String {
    if labelled(qtype) {
        RecordType::from(qtype).to_string()
    } else {
        "other".into()
    }
}

/// Response codes as CoreDNS (miekg/dns) names them.
pub fn rcode_name(rcode: u16) -> String {
    match rcode {
        0 => "NOERROR".into(),
        1 => "FORMERR".into(),
        2 => "SERVFAIL".into(),
        3 => "NXDOMAIN".into(),
        4 => "NOTIMP".into(),
        5 => "REFUSED".into(),
        16 => "BADVERS".into(),
        other => format!("RCODE{other}"),
    }
}

impl Metrics {
    /// Names a server block for the labels: its `server` (`dns://:53`) and its zones.
    /// A block already registered with the same labels (a reload) keeps its index, so its
    /// series go on rather than appear twice.
    pub fn register_block(&self, server: String, view: String, zones: Vec<String>) -> u16 {
        let mut blocks = self.blocks.write().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = blocks
            .iter()
            .position(|(s, v, z)| *s == server && *v == view && *z == zones)
        {
            return i as u16;
        }
        blocks.push((server, view, zones));
        (blocks.len() - 1) as u16
    }

    /// One answered query.
    pub fn query(&self, q: Observed) {
        let Observed {
            route,
            tcp,
            v6,
            qtype,
            size,
            rcode,
            seconds,
            response_size,
        } = q;
        // Types without a label of their own are kept as one ("other", type 0): a client
        // asking every type must not make 65,536 series.
        let qtype = if labelled(qtype) { qtype } else { 0 };
        let key = QueryKey {
            route,
            tcp,
            v6,
            qtype,
            rcode,
        };
        let queries = self.queries.pin();
        let series = queries.get_or_insert_with(key, QuerySeries::new);
        series.count.fetch_add(1, Ordering::Relaxed);
        series.duration.observe(seconds);
        series.request_size.observe(size as f64);
        series.response_size.observe(response_size as f64);
    }

    /// Time from a cluster change arriving to its records being served.
    pub fn programmed(&self, service_kind: &'static str, seconds: f64) {
        self.programming
            .pin()
            .get_or_insert_with(service_kind, || Histogram::new(&PROGRAMMING_BUCKETS))
            .observe(seconds);
    }

    pub fn panicked(&self) {
        self.panics.fetch_add(1, Ordering::Relaxed);
    }

    pub fn reload_failed(&self) {
        self.reload_failed.fetch_add(1, Ordering::Relaxed);
    }

    /// An `autopath` walk in block `block` found an answer.
    pub fn autopath_success(&self, block: u16) {
        count(&self.autopath, block);
    }

    /// `dns64` synthesized an answer in block `block`.
    pub fn dns64_translated(&self, block: u16) {
        count(&self.dns64, block);
    }

    /// `rrl` limited a response (or, `request`, a query) to `client`: CoreDNS's
    /// `coredns_rrl_responses_exceeded_total` (`coredns_rrl_requests_exceeded_total`).
    pub fn rrl_exceeded(&self, request: bool, client: IpAddr) {
        let map = if request {
            &self.rrl_requests
        } else {
            &self.rrl_responses
        };
        let map = map.pin();
        let client = client.to_canonical();
        let counter = match map.get(&Some(client)) {
            Some(counter) => counter,
            None if map.len() < RRL_CLIENTS => {
                map.get_or_insert_with(Some(client), || AtomicU64::new(0))
            }
            None => map.get_or_insert_with(None, || AtomicU64::new(0)),
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counters for one `cache`, labelled with its server and zones.
    pub fn register_cache(&self, server: String, zones: Vec<String>) -> Arc<CacheCounters> {
        let mut caches = self.caches.write().unwrap_or_else(|e| e.into_inner());
        // After a reload the same cache keeps its series.
        if let Some(first) = zones.first()
            && let Some((_, _, counters)) =
                caches.iter().find(|(s, z, _)| *s == server && z == first)
        {
            return Arc::clone(counters);
        }
        let counters = Arc::new(CacheCounters::default());
        for zone in zones {
            caches.push((server.clone(), zone, Arc::clone(&counters)));
        }
        counters
    }

    /// A plugin's counter `name` with `labels` (rendered, `key="value",...`), which the plugin
    /// keeps and counts on; the same one again after a reload, so its series goes on.
    pub fn counter(
        &self,
        name: &'static str,
        help: &'static str,
        labels: String,
    ) -> Arc<AtomicU64> {
        let mut counters = self.counters.write().unwrap_or_else(|e| e.into_inner());
        if let Some((_, _, _, c)) = counters
            .iter()
            .find(|(n, _, l, _)| *n == name && *l == labels)
        {
            return Arc::clone(c);
        }
        let counter = Arc::new(AtomicU64::new(0));
        counters.push((name, help, labels, Arc::clone(&counter)));
        counter
    }

    /// One query sent upstream: its reply's rcode (`None`: no reply) and how long it took.
    pub fn forwarded(&self, to: &SocketAddr, rcode: Option<u8>, seconds: f64) {
        let f = &self.forward;
        count(&f.requests, *to);
        if let Some(rcode) = rcode {
            count(&f.responses, (*to, rcode));
            f.durations
                .pin()
                .get_or_insert_with((*to, rcode), || Histogram::new(&DURATION_BUCKETS))
                .observe(seconds);
        }
    }

    /// One gRPC call that brought an answer with `rcode`, and how long it took.
    pub fn grpc_called(&self, to: &SocketAddr, rcode: u8, seconds: f64) {
        let g = &self.grpc;
        count(&g.requests, *to);
        count(&g.responses, (*to, rcode));
        g.durations
            .pin()
            .get_or_insert_with(*to, || Histogram::new(&DURATION_BUCKETS))
            .observe(seconds);
    }

    /// `grpc`'s metrics under CoreDNS's names.
    fn render_grpc(&self, out: &mut String) {
        let g = &self.grpc;
        let requests: BTreeMap<SocketAddr, u64> = g
            .requests
            .pin()
            .iter()
            .map(|(k, v)| (*k, v.load(Ordering::Relaxed)))
            .collect();
        if requests.is_empty() {
            return;
        }
        out.push_str("# HELP coredns_grpc_requests_total Counter of requests made per upstream.\n# TYPE coredns_grpc_requests_total counter\n");
        for (a, v) in &requests {
            let _ = writeln!(out, "coredns_grpc_requests_total{{to=\"{a}\"}} {v}");
        }
        let responses: BTreeMap<(SocketAddr, u8), u64> = g
            .responses
            .pin()
            .iter()
            .map(|(k, v)| (*k, v.load(Ordering::Relaxed)))
            .collect();
        out.push_str("# HELP coredns_grpc_responses_total Counter of requests made per upstream.\n# TYPE coredns_grpc_responses_total counter\n");
        for ((a, rcode), v) in &responses {
            let _ = writeln!(
                out,
                "coredns_grpc_responses_total{{rcode=\"{}\",to=\"{a}\"}} {v}",
                rcode_name(u16::from(*rcode))
            );
        }
        let name = "coredns_grpc_request_duration_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Histogram of the time each request took.\n# TYPE {name} histogram"
        );
        let durations = g.durations.pin();
        let mut keys: Vec<&SocketAddr> = durations.keys().collect();
        keys.sort();
        for a in keys {
            if let Some(h) = durations.get(a) {
                h.render(out, name, &format!("to=\"{a}\""));
            }
        }
    }

    pub fn forward_refused(&self) {
        self.forward
            .max_concurrent_rejects
            .fetch_add(1, Ordering::Relaxed);
    }

    pub fn health_check_failed(&self, to: &SocketAddr) {
        count(&self.forward.healthcheck_failures, *to);
    }

    /// Every upstream of a `forward` was down when a query came.
    pub fn health_check_broken(&self) {
        self.forward
            .healthcheck_broken
            .fetch_add(1, Ordering::Relaxed);
    }

    /// The plugins' counters, each name's series together under one HELP and TYPE.
    fn render_counters(&self, out: &mut String) {
        let mut counters: Vec<(&'static str, &'static str, String, u64)> = self
            .counters
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(n, h, l, c)| (*n, *h, l.clone(), c.load(Ordering::Relaxed)))
            .collect();
        counters.sort_by(|a, b| (a.0, &a.2).cmp(&(b.0, &b.2)));
        let mut last = "";
        for (name, help, labels, value) in counters {
            if name != last {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
                last = name;
            }
            if labels.is_empty() {
                let _ = writeln!(out, "{name} {value}");
            } else {
                let _ = writeln!(out, "{name}{{{labels}}} {value}");
            }
        }
    }

    /// The Prometheus text exposition of everything.
    pub fn render(&self, plugins: &[(u16, &'static str)]) -> String {
        let blocks = self
            .blocks
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let route_labels = |r: Route| {
            let (server, view, zones) = blocks
                .get(usize::from(r.block))
                .cloned()
                .unwrap_or_default();
            let zone = zones
                .get(usize::from(r.zone))
                .cloned()
                .unwrap_or_else(|| "dropped".into());
            format!("server=\"{server}\",view=\"{view}\",zone=\"{zone}\"")
        };
        let mut out = String::new();
        out.push_str("# HELP coredns_build_info A metric with a constant '1' value labeled by version, revision, and goversion from which CoreDNS was built.\n# TYPE coredns_build_info gauge\n");
        let _ = writeln!(
            out,
            "coredns_build_info{{goversion=\"rust\",revision=\"clusterdns\",version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        out.push_str("# HELP coredns_plugin_enabled A metric that indicates whether a plugin is enabled on per server and zone basis.\n# TYPE coredns_plugin_enabled gauge\n");
        for &(block, name) in plugins {
            if let Some((server, view, zones)) = blocks.get(usize::from(block)) {
                for zone in zones {
                    let _ = writeln!(
                        out,
                        "coredns_plugin_enabled{{name=\"{name}\",server=\"{server}\",view=\"{view}\",zone=\"{zone}\"}} 1"
                    );
                }
            }
        }
        // Each metric sums the query series that share its labels.
        let mut requests: BTreeMap<(Route, bool, bool, u16), u64> = BTreeMap::new();
        let mut responses: BTreeMap<(Route, u16), u64> = BTreeMap::new();
        let mut durations: BTreeMap<(Route, u16), Snapshot> = BTreeMap::new();
        let mut request_sizes: BTreeMap<(Route, bool), Snapshot> = BTreeMap::new();
        let mut response_sizes: BTreeMap<(Route, bool), Snapshot> = BTreeMap::new();
        fn merge<K: Ord>(into: &mut BTreeMap<K, Snapshot>, key: K, h: &Histogram) {
            let snapshot = h.snapshot();
            match into.entry(key) {
                std::collections::btree_map::Entry::Occupied(mut e) => e.get_mut().add(&snapshot),
                std::collections::btree_map::Entry::Vacant(e) => {
                    e.insert(snapshot);
                }
            }
        }
        for (k, series) in self.queries.pin().iter() {
            let n = series.count.load(Ordering::Relaxed);
            *requests.entry((k.route, k.tcp, k.v6, k.qtype)).or_default() += n;
            *responses.entry((k.route, k.rcode)).or_default() += n;
            merge(&mut durations, (k.route, k.qtype), &series.duration);
            merge(&mut request_sizes, (k.route, k.tcp), &series.request_size);
            merge(&mut response_sizes, (k.route, k.tcp), &series.response_size);
        }
        out.push_str("# HELP coredns_dns_requests_total Counter of DNS requests made per zone, protocol and family.\n# TYPE coredns_dns_requests_total counter\n");
        for (&(route, tcp, v6, qtype), v) in &requests {
            let _ = writeln!(
                out,
                "coredns_dns_requests_total{{family=\"{}\",proto=\"{}\",{},type=\"{}\"}} {v}",
                if v6 { 2 } else { 1 },
                if tcp { "tcp" } else { "udp" },
                route_labels(route),
                type_label(qtype)
            );
        }
        out.push_str("# HELP coredns_dns_responses_total Counter of response status codes.\n# TYPE coredns_dns_responses_total counter\n");
        for (&(route, rcode), v) in &responses {
            let _ = writeln!(
                out,
                "coredns_dns_responses_total{{plugin=\"\",rcode=\"{}\",{}}} {v}",
                rcode_name(rcode),
                route_labels(route)
            );
        }
        out.push_str("# HELP coredns_dns_request_duration_seconds Histogram of the time (in seconds) each request took per zone.\n# TYPE coredns_dns_request_duration_seconds histogram\n");
        for (&(route, qtype), h) in &durations {
            let labels = format!("{},type=\"{}\"", route_labels(route), type_label(qtype));
            h.render(&mut out, "coredns_dns_request_duration_seconds", &labels);
        }
        for (name, help, sizes) in [
            (
                "coredns_dns_request_size_bytes",
                "Size of the EDNS0 UDP buffer in bytes (64K for TCP) per zone and protocol.",
                &request_sizes,
            ),
            (
                "coredns_dns_response_size_bytes",
                "Size of the returned response in bytes.",
                &response_sizes,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
            for (&(route, tcp), h) in sizes {
                let proto = if tcp { "tcp" } else { "udp" };
                let labels = format!("proto=\"{proto}\",{}", route_labels(route));
                h.render(&mut out, name, &labels);
            }
        }
        out.push_str("# HELP coredns_kubernetes_dns_programming_duration_seconds Histogram of the time (in seconds) it took to program a dns instance.\n# TYPE coredns_kubernetes_dns_programming_duration_seconds histogram\n");
        for (kind, h) in self.programming.pin().iter() {
            h.render(
                &mut out,
                "coredns_kubernetes_dns_programming_duration_seconds",
                &format!("service_kind=\"{kind}\""),
            );
        }
        for (name, help, counts) in [
            (
                "coredns_autopath_success_total",
                "Counter of requests that did autopath.",
                &self.autopath,
            ),
            (
                "coredns_dns64_requests_translated_total",
                "Counter of DNS requests translated by dns64.",
                &self.dns64,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            let counts: BTreeMap<u16, u64> = counts
                .pin()
                .iter()
                .map(|(k, v)| (*k, v.load(Ordering::Relaxed)))
                .collect();
            for (block, v) in counts {
                if let Some((server, _, _)) = blocks.get(usize::from(block)) {
                    let _ = writeln!(out, "{name}{{server=\"{server}\"}} {v}");
                }
            }
        }
        self.render_counters(&mut out);
        self.render_forward(&mut out);
        self.render_grpc(&mut out);
        self.render_caches(&mut out);
        self.render_rrl(&mut out);
        out.push_str("# HELP coredns_panics_total A metrics that counts the number of panics.\n# TYPE coredns_panics_total counter\n");
        let _ = writeln!(
            out,
            "coredns_panics_total {}",
            self.panics.load(Ordering::Relaxed)
        );
        out.push_str("# HELP coredns_reload_failed_total Counter of the number of failed reload attempts.\n# TYPE coredns_reload_failed_total counter\n");
        let _ = writeln!(
            out,
            "coredns_reload_failed_total {}",
            self.reload_failed.load(Ordering::Relaxed)
        );
        out
    }
}

impl Metrics {
    /// `forward`'s metrics under CoreDNS's current names (`coredns_proxy_*`,
    /// `coredns_forward_healthcheck_broken_total`, `coredns_forward_max_concurrent_rejects_total`)
    /// and the older `coredns_forward_*` names alert rules still use.
    fn render_forward(&self, out: &mut String) {
        let f = &self.forward;
        let to = |a: &SocketAddr| format!("to=\"{a}\"");
        let requests: BTreeMap<SocketAddr, u64> = f
            .requests
            .pin()
            .iter()
            .map(|(k, v)| (*k, v.load(Ordering::Relaxed)))
            .collect();
        out.push_str("# HELP coredns_forward_requests_total Counter of requests made per upstream.\n# TYPE coredns_forward_requests_total counter\n");
        for (a, v) in &requests {
            let _ = writeln!(out, "coredns_forward_requests_total{{{}}} {v}", to(a));
        }
        let responses: BTreeMap<(SocketAddr, u8), u64> = f
            .responses
            .pin()
            .iter()
            .map(|(k, v)| (*k, v.load(Ordering::Relaxed)))
            .collect();
        out.push_str("# HELP coredns_forward_responses_total Counter of responses received per upstream.\n# TYPE coredns_forward_responses_total counter\n");
        for ((a, rcode), v) in &responses {
            let _ = writeln!(
                out,
                "coredns_forward_responses_total{{rcode=\"{}\",{}}} {v}",
                rcode_name(u16::from(*rcode)),
                to(a)
            );
        }
        let durations = f.durations.pin();
        let mut keys: Vec<&(SocketAddr, u8)> = durations.keys().collect();
        keys.sort();
        for (name, prefix, help) in [
            (
                "coredns_proxy_request_duration_seconds",
                "proxy_name=\"forward\",",
                "Histogram of the time each request took.",
            ),
            (
                "coredns_forward_request_duration_seconds",
                "",
                "Histogram of the time each request took.",
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
            for k in &keys {
                let labels = format!(
                    "{prefix}rcode=\"{}\",{}",
                    rcode_name(u16::from(k.1)),
                    to(&k.0)
                );
                if let Some(h) = durations.get(*k) {
                    h.render(out, name, &labels);
                }
            }
        }
        let failures: BTreeMap<SocketAddr, u64> = f
            .healthcheck_failures
            .pin()
            .iter()
            .map(|(k, v)| (*k, v.load(Ordering::Relaxed)))
            .collect();
        for (name, prefix) in [
            (
                "coredns_proxy_healthcheck_failures_total",
                "proxy_name=\"forward\",",
            ),
            ("coredns_forward_healthcheck_failures_total", ""),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} Count of failed health checks per upstream.\n# TYPE {name} counter"
            );
            for (a, v) in &failures {
                let _ = writeln!(out, "{name}{{{prefix}{}}} {v}", to(a));
            }
        }
        out.push_str("# HELP coredns_forward_healthcheck_broken_total Counter of the number of complete failures of the healthchecks.\n# TYPE coredns_forward_healthcheck_broken_total counter\n");
        let _ = writeln!(
            out,
            "coredns_forward_healthcheck_broken_total {}",
            f.healthcheck_broken.load(Ordering::Relaxed)
        );
        out.push_str("# HELP coredns_forward_max_concurrent_rejects_total Counter of the number of queries rejected because the concurrent queries were at maximum.\n# TYPE coredns_forward_max_concurrent_rejects_total counter\n");
        let _ = writeln!(
            out,
            "coredns_forward_max_concurrent_rejects_total {}",
            f.max_concurrent_rejects.load(Ordering::Relaxed)
        );
    }
}

impl Metrics {
    /// `rrl`'s counters, by `client_ip` as the plugin labels them (`other` for the clients past
    /// [`RRL_CLIENTS`]).
    fn render_rrl(&self, out: &mut String) {
        for (name, help, map) in [
            (
                "coredns_rrl_responses_exceeded_total",
                "Counter of responses exceeding QPS limit.",
                &self.rrl_responses,
            ),
            (
                "coredns_rrl_requests_exceeded_total",
                "Counter of requests exceeding QPS limit.",
                &self.rrl_requests,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            let counts: BTreeMap<Option<IpAddr>, u64> = map
                .pin()
                .iter()
                .map(|(k, v)| (*k, v.load(Ordering::Relaxed)))
                .collect();
            for (client, v) in counts {
                let client = client.map_or_else(|| "other".to_string(), |c| c.to_string());
                let _ = writeln!(out, "{name}{{client_ip=\"{client}\"}} {v}");
            }
        }
    }

    /// `cache`'s metrics, per server and zone, as CoreDNS names them.
    fn render_caches(&self, out: &mut String) {
        let caches = self
            .caches
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let kinds = [(0, "success"), (1, "denial")];
        let labels =
            |server: &str, zone: &str| format!("server=\"{server}\",view=\"\",zones=\"{zone}\"");
        type Kinds = fn(&CacheCounters) -> &[AtomicU64; 2];
        type Total = fn(&CacheCounters) -> &AtomicU64;
        let per_kind = |out: &mut String, name: &str, help: &str, kind: &str, field: Kinds| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (server, zone, c) in &caches {
                for (i, kind) in kinds {
                    let value = load(&field(c)[i]);
                    let labels = labels(server, zone);
                    let _ = writeln!(out, "{name}{{{labels},type=\"{kind}\"}} {value}");
                }
            }
        };
        per_kind(
            out,
            "coredns_cache_entries",
            "The number of elements in the cache.",
            "gauge",
            |c| &c.entries,
        );
        per_kind(
            out,
            "coredns_cache_hits_total",
            "The count of cache hits.",
            "counter",
            |c| &c.hits,
        );
        let totals: [(&str, &str, Total); 4] = [
            (
                "coredns_cache_misses_total",
                "The count of cache misses. Deprecated, derive misses from cache hits/requests counters.",
                |c| &c.misses,
            ),
            (
                "coredns_cache_requests_total",
                "The count of cache requests.",
                |c| &c.requests,
            ),
            (
                "coredns_cache_served_stale_total",
                "The number of requests served from stale cache entries.",
                |c| &c.served_stale,
            ),
            (
                "coredns_cache_prefetch_total",
                "The number of times the cache has prefetched a cached item.",
                |c| &c.prefetches,
            ),
        ];
        for (name, help, field) in totals {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (server, zone, c) in &caches {
                let _ = writeln!(out, "{name}{{{}}} {}", labels(server, zone), load(field(c)));
            }
        }
        per_kind(
            out,
            "coredns_cache_evictions_total",
            "The count of cache evictions.",
            "counter",
            |c| &c.evictions,
        );
    }
}

fn count<K: std::hash::Hash + Eq>(map: &papaya::HashMap<K, AtomicU64>, key: K) {
    map.pin()
        .get_or_insert_with(key, || AtomicU64::new(0))
        .fetch_add(1, Ordering::Relaxed);
}

/// CoreDNS's size buckets (bytes).
const SIZE_BUCKETS: [f64; 14] = [
    0.0, 100.0, 200.0, 300.0, 400.0, 511.0, 1023.0, 2047.0, 4095.0, 8291.0, 16e3, 32e3, 48e3, 64e3,
];

/// One cache's counters for `coredns_cache_*` (success and denial where there are two).
#[derive(Debug, Default)]
pub struct CacheCounters {
    pub entries: [AtomicU64; 2],
    pub hits: [AtomicU64; 2],
    pub misses: AtomicU64,
    pub requests: AtomicU64,
    pub served_stale: AtomicU64,
    pub prefetches: AtomicU64,
    pub evictions: [AtomicU64; 2],
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_with_sum_and_count() {
        let h = Histogram::new(&DURATION_BUCKETS);
        h.observe(0.0001);
        h.observe(0.001);
        h.observe(100.0);
        let mut out = String::new();
        h.render(&mut out, "x", "a=\"b\"");
        assert!(
            out.contains("x_bucket{a=\"b\",le=\"0.00025\"} 1\n"),
            "{out}"
        );
        assert!(out.contains("x_bucket{a=\"b\",le=\"0.001\"} 2\n"), "{out}");
        assert!(out.contains("x_bucket{a=\"b\",le=\"+Inf\"} 3\n"), "{out}");
        assert!(out.contains("x_count{a=\"b\"} 3\n"), "{out}");
    }
}
