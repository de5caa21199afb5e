//! The fuzz targets' bodies: each takes any bytes and panics only when a property the server
//! promises does not hold. `fuzz/` (cargo-fuzz, libFuzzer) drives them; the test suite
//! replays the corpus and the regressions kept in `fuzz/` through them (`tests` below).
//!
//! - [`query`]: raw bytes through the whole handler of several Corefiles: never a panic, never
//!   an answer to a response, and every answer parses, carries the query's ID and echoes its
//!   question; the fast path gives the full parse's bytes.
//! - [`roundtrip`]: a message parsed, encoded and parsed again is the same message; where the
//!   fast path reads a query, it reads the question the full parse does.
//! - [`corefile`]: any text through the Corefile parser and its checks: a configuration or an
//!   error with a message, never a panic.
//! - [`manifests`]: any text as a YAML and as a JSON manifest file: objects or an error; the
//!   objects applied to a cluster, and its services' names asked, all answered well.
//! - [`answer`]: a cluster built from the bytes (services of every kind, ports, endpoints,
//!   pods, drawn from small pools so names and addresses collide) and queries for its names.
//! - [`zonefile`]: any text as a master file (`file`): records or an error naming the line;
//!   a zone made of them answers every type at each of its names, near names and a wildcard's,
//!   with and without DO, in sections that parse, the fast path's bytes parsing too.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RecordType};

use crate::answer::{Block, Handled, Handler, Transport};
use crate::cluster::ClusterObjects;
use crate::cluster::writer::Change;
use crate::config::Config;
use crate::plugin::{Kubernetes, Plugin};
use crate::wire::HEADER_LEN;

/// The test cluster the fixed handlers serve.
const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/cluster.yaml");

/// The Corefiles [`query`] tries each packet against (`DATA` stands for the test cluster):
/// one plain block; blocks on one port routed by zone, with `hosts` and a second cluster
/// zone; fallthrough to `forward` (never contacted: a forwarded query stops at
/// [`Handled::Forward`]); `loadbalance`, `autopath` and `pods verified`.
const COREFILES: [&str; 4] = [
    ".:0 {
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        manifests DATA
        pods insecure
    }
}",
    ".:0 {
    hosts {
        10.0.0.6 extra.example.com
        fd00::6 extra.example.com
        fallthrough
    }
}
cluster.local:0 example.org:0 {
    kubernetes cluster.local example.org {
        manifests DATA
        pods disabled
        ttl 10
    }
}
in-addr.arpa:0 ip6.arpa:0 {
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        manifests DATA
        endpoint_pod_names
    }
}",
    ".:0 {
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        manifests DATA
        pods verified
        fallthrough
    }
    loop
    forward . 127.0.0.1:9
}",
    ".:0 {
    loadbalance
    autopath @kubernetes
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        manifests DATA
        pods verified
        ttl 0
    }
    forward . 127.0.0.1:9
}",
];

/// Clients the queries come from: one with a pod's address in the test cluster (for
/// `autopath`), one IPv6.
fn sources() -> [SocketAddr; 2] {
    [
        SocketAddr::from(([10, 36, 0, 7], 40000)),
        SocketAddr::from(([0xfd00, 0, 0, 0, 0, 0, 0, 7], 40000)),
    ]
}

/// The handler of each of [`COREFILES`], built once.
fn handlers() -> &'static [(Arc<Handler>, bool)] {
    static HANDLERS: OnceLock<Vec<(Arc<Handler>, bool)>> = OnceLock::new();
    HANDLERS.get_or_init(|| {
        COREFILES
            .iter()
            .map(|c| {
                let text = c.replace("DATA", DATA);
                let config = Config::from_text(&text, 0, Path::new("."))
                    .unwrap_or_else(|e| panic!("{e}\n{text}"));
                let assembly = crate::assemble(&config).unwrap_or_else(|e| panic!("{e}"));
                let blocks = assembly.blocks.into_iter().map(|(_, b)| b).collect();
                (Arc::new(Handler::new(blocks)), text.contains("loadbalance"))
            })
            .collect()
    })
}

/// What every reply to `query` must be, however malformed the query: a parseable message with
/// QR set and the query's ID; the question the query asked (byte for byte, unless the reply
/// says the query was malformed or not implemented); no longer than TCP allows.
fn check_reply(query: &[u8], reply: &[u8], transport: Transport) {
    assert!(reply.len() >= HEADER_LEN, "a reply shorter than a header");
    assert!(reply.len() <= usize::from(u16::MAX), "a reply over 64 KiB");
    assert_eq!(reply[..2], query[..2], "the reply's ID is not the query's");
    assert_ne!(reply[2] & 0x80, 0, "a reply without QR");
    let message =
        Message::from_vec(reply).unwrap_or_else(|e| panic!("a reply that does not parse: {e}"));
    if transport == Transport::Udp && reply[2] & 0x02 == 0 {
        let limit = Message::from_vec(query)
            .ok()
            .and_then(|q| q.extensions().as_ref().map(Edns::max_payload))
            .map_or(512, |size| usize::from(size.max(512)));
        assert!(
            reply.len() <= limit,
            "{} bytes over UDP to a client taking {limit}, without TC",
            reply.len()
        );
    }
    let rcode = message.response_code();
    if matches!(rcode, ResponseCode::FormErr | ResponseCode::NotImp) {
        return;
    }
    let asked = Message::from_vec(query).unwrap_or_else(|e| {
        panic!("{rcode} to a query that does not parse ({e}); FORMERR expected")
    });
    assert_eq!(
        asked.queries().len(),
        1,
        "{rcode} to a query without one question"
    );
    assert_eq!(message.queries().len(), 1, "the reply has no question");
    let end = crate::wire::question_end(query).expect("a question the full parse read");
    assert_eq!(
        reply.get(HEADER_LEN..end),
        Some(&query[HEADER_LEN..end]),
        "the question is not echoed as asked"
    );
    if rcode == ResponseCode::NXDomain {
        assert!(
            message
                .answers()
                .iter()
                .all(|r| r.record_type() == RecordType::CNAME),
            "NXDOMAIN with answers other than CNAMEs"
        );
    }
}

/// Answers `query` with `handler` over both transports, from both sources, and checks each
/// reply; where the answers are not shuffled, the fast path's bytes must be the full parse's.
fn ask(handler: &Handler, shuffled: bool, query: &[u8]) {
    let (mut got, mut want) = (Vec::new(), Vec::new());
    for transport in [Transport::Udp, Transport::Tcp] {
        for src in sources() {
            match handler.handle(query, src, transport, &mut got) {
                Handled::Drop => {}
                Handled::Send | Handled::SendThen(_) | Handled::Later(_) => {
                    assert!(query[2] & 0x80 == 0, "a reply to a response");
                    check_reply(query, &got, transport);
                    if !shuffled {
                        let prepared =
                            handler.prepared(query, &crate::plugin::Asker { src, transport });
                        let asked = prepared.as_ref().map_or(query, |p| p.query.as_slice());
                        let restore = prepared.as_ref().and_then(|p| p.restore.as_ref());
                        let full = handler.handle_full(
                            asked,
                            src,
                            transport,
                            &mut want,
                            Instant::now(),
                            restore,
                        );
                        assert!(
                            matches!(full, Handled::Send | Handled::SendThen(_)),
                            "the full parse: {full:?}"
                        );
                        assert_eq!(got, want, "the fast path and the full parse differ");
                    }
                }
                Handled::Forward(_) => assert!(query[2] & 0x80 == 0, "a response forwarded"),
            }
        }
    }
}

/// Raw bytes as a query, to every handler of [`COREFILES`].
pub fn query(data: &[u8]) {
    for (handler, shuffled) in handlers() {
        ask(handler, *shuffled, data);
    }
}

/// A message parsed, encoded and parsed again is the same; the fast path's reading of a query
/// is the full parse's.
pub fn roundtrip(data: &[u8]) {
    if let Some(light) = crate::wire::parse_light(data) {
        let full = Message::from_vec(data)
            .unwrap_or_else(|e| panic!("the fast path read a query the full parse refuses: {e}"));
        assert_eq!(full.queries().len(), 1);
        let q = &full.queries()[0];
        assert_eq!(u16::from(q.query_type()), light.qtype, "qtype");
        assert_eq!(q.query_class(), DNSClass::IN, "class");
        let mut key = q.name().to_lowercase();
        key.set_fqdn(true);
        assert_eq!(
            crate::table::NameKey::from(&hickory_proto::rr::LowerName::from(key)).as_bytes(),
            light.key(),
            "name"
        );
        assert_eq!(
            full.extensions()
                .as_ref()
                .map(|e| (e.max_payload(), e.flags().dnssec_ok)),
            // hickory reads a payload size under 512 as 512, as RFC 6891 says to treat it.
            light.edns.map(|(size, dnssec)| (size.max(512), dnssec)),
            "EDNS"
        );
        assert_eq!(
            crate::wire::question_end(data),
            Some(light.question_end),
            "question end"
        );
    }
    let Ok(message) = Message::from_vec(data) else {
        return;
    };
    let Ok(encoded) = message.to_vec() else {
        return;
    };
    let again = Message::from_vec(&encoded)
        .unwrap_or_else(|e| panic!("an encoded message does not parse: {e}"));
    assert_eq!(
        again.to_vec().ok().as_deref(),
        Some(&encoded[..]),
        "encode → parse → encode changed the bytes"
    );
}

/// Any text as a Corefile: a configuration or an error that says what is wrong.
pub fn corefile(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    match Config::from_text(&text, 53, Path::new("/nonexistent")) {
        Ok(config) => {
            for server in &config.servers {
                assert!(!server.zones.is_empty(), "a server block without zones");
            }
        }
        Err(e) => assert!(!e.to_string().is_empty(), "an error without a message"),
    }
}

/// Any text as a YAML and a JSON manifest file; what parses is served and its names asked.
pub fn manifests(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    for file in ["fuzz.yaml", "fuzz.json"] {
        let mut objects = ClusterObjects::default();
        match crate::source::manifests::parse_into(&text, Path::new(file), &mut objects) {
            Ok(()) => serve_and_ask(objects, &[]),
            Err(e) => assert!(!e.to_string().is_empty(), "an error without a message"),
        }
    }
}

/// Any text as a zone file for `example.org.`: records or an error with the file and line;
/// what reads, with a SOA, is asked at its names and near them.
pub fn zonefile(data: &[u8]) {
    use crate::plugin::file::{text, zone::Zone};
    let text = String::from_utf8_lossy(data);
    // Other files' contents are not the input's.
    if text.to_ascii_uppercase().contains("$INCLUDE") {
        return;
    }
    let origin = Name::from_ascii("example.org.").expect("a name");
    let records = match text::parse(&text, Path::new("fuzz.zone"), &origin) {
        Ok(records) => records,
        Err(e) => {
            assert!(
                e.to_string().starts_with("fuzz.zone:"),
                "an error without its line: {e}"
            );
            return;
        }
    };
    let mut names: Vec<Name> = records.iter().map(|r| r.name().clone()).collect();
    let Ok(zone) = Zone::new(&origin, records) else {
        return;
    };
    names.sort();
    names.dedup();
    names.truncate(32);
    let near: Vec<Name> = names
        .iter()
        .flat_map(|n| {
            let child = Name::from_ascii("x")
                .ok()
                .and_then(|x| x.append_domain(n).ok());
            [child, Some(n.base_name())]
        })
        .flatten()
        .collect();
    let types = [
        RecordType::A,
        RecordType::AAAA,
        RecordType::NS,
        RecordType::SOA,
        RecordType::CNAME,
        RecordType::MX,
        RecordType::TXT,
        RecordType::SRV,
        RecordType::DS,
        RecordType::ANY,
        RecordType::Unknown(39),
    ];
    for name in names.iter().chain(&near) {
        if !origin.zone_of(name) {
            continue;
        }
        let key = crate::table::NameKey::new(name);
        for qtype in types {
            for dnssec in [false, true] {
                let answer = zone.lookup(key.as_bytes(), qtype, dnssec);
                assert!(
                    answer.reply.message(name, qtype).is_some(),
                    "{name} {qtype}: the answer's sections do not parse"
                );
            }
            let mut out = Vec::new();
            if let crate::plugin::Fast::Answered(reply) =
                zone.lookup_fast(key.as_bytes(), u16::from(qtype), || false, &mut out)
            {
                let mut message = vec![0, 0, 0x84, 0, 0, 1];
                for count in reply.counts {
                    message.extend_from_slice(&count.to_be_bytes());
                }
                message.extend_from_slice(key.as_bytes());
                message.extend_from_slice(&u16::from(qtype).to_be_bytes());
                message.extend_from_slice(&[0, 1]);
                message.extend_from_slice(&out);
                assert!(
                    Message::from_vec(&message).is_ok(),
                    "{name} {qtype}: the fast path's records do not parse"
                );
            }
        }
    }
}

/// A cluster and queries drawn from the bytes.
pub fn answer(data: &[u8]) {
    let mut draw = Draw { data, at: 0 };
    let manifest = draw.cluster();
    let mut objects = ClusterObjects::default();
    crate::source::manifests::parse_into(&manifest, Path::new("drawn.json"), &mut objects)
        .unwrap_or_else(|e| panic!("a drawn manifest does not parse: {e}\n{manifest}"));
    let queries: Vec<Vec<u8>> = (0..draw.below(24)).map(|_| draw.query()).collect();
    serve_and_ask(objects, &queries);
}

/// The Corefile [`serve_and_ask`] builds its plugin from.
const SERVE: &str = ".:53 {
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        pods verified
        endpoint_pod_names
    }
}";

/// Serves `objects` as the kubernetes plugin does, and asks `queries` and each service's
/// names (A, AAAA, SRV, ANY).
fn serve_and_ask(objects: ClusterObjects, queries: &[Vec<u8>]) {
    let mut names: Vec<String> = objects
        .services
        .keys()
        .map(|(ns, name)| format!("{name}.{ns}.svc.cluster.local."))
        .collect();
    names.truncate(16);
    let config = Config::from_text(SERVE, 53, Path::new(".")).expect("the fuzz Corefile");
    let mut k = config.servers[0]
        .get::<crate::plugin::kubernetes::KubernetesConfig>()
        .cloned()
        .expect("kubernetes");
    k.api = None;
    let (plugin, mut writer) = Kubernetes::new(&k, false);
    writer.apply(vec![Change::ReplaceAll(objects)]);
    plugin.ready_flag().store(true, Ordering::Relaxed);
    let handler = Handler::new(vec![Block::new(
        vec![Name::root().into()],
        vec![Plugin::Kubernetes(plugin)],
        None,
        None,
    )]);
    for q in queries {
        ask(&handler, false, q);
    }
    for name in names {
        let Ok(name) = Name::from_ascii(&name) else {
            continue;
        };
        for qtype in [
            RecordType::A,
            RecordType::AAAA,
            RecordType::SRV,
            RecordType::ANY,
        ] {
            ask(&handler, false, &encode(&name, qtype, 1, None));
        }
    }
}

/// A query for `name` and `qtype` with ID `id`, with an OPT of `edns` bytes when given.
fn encode(name: &Name, qtype: RecordType, id: u16, edns: Option<u16>) -> Vec<u8> {
    let mut m = Message::new();
    m.set_id(id)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true)
        .add_query(Query::query(name.clone(), qtype));
    if let Some(size) = edns {
        let mut e = Edns::new();
        e.set_max_payload(size);
        m.set_edns(e);
    }
    m.to_vec().expect("a query encodes")
}

/// Choices read off the fuzzer's bytes (zeros once they run out).
struct Draw<'a> {
    data: &'a [u8],
    at: usize,
}

const NAMESPACES: [&str; 3] = ["default", "a", "kube-system"];
const SERVICES: [&str; 6] = ["web", "db", "x", "a-b", "web-0", "kube-dns"];
const HOSTNAMES: [&str; 4] = ["web-0", "h", "x", "a-b"];
const PORT_NAMES: [&str; 4] = ["http", "dns", "dns-tcp", "h"];
const PROTOCOLS: [&str; 3] = ["TCP", "UDP", "SCTP"];
const EXTERNAL: [&str; 4] = [
    "example.com",
    "web.default.svc.cluster.local",
    "x.a.svc.cluster.local.",
    "a.b.c.example.org",
];

impl Draw<'_> {
    fn byte(&mut self) -> u8 {
        let b = self.data.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        b
    }

    fn below(&mut self, n: usize) -> usize {
        usize::from(self.byte()) % n
    }

    fn pick<'s>(&mut self, from: &[&'s str]) -> &'s str {
        from[self.below(from.len())]
    }

    /// An address from a small pool (IPv4 most of the time).
    fn address(&mut self) -> String {
        let n = self.below(8);
        if self.below(4) == 0 {
            format!("fd00::{n}")
        } else {
            format!("10.0.0.{n}")
        }
    }

    /// A `List` of namespaces, services, slices and pods, as JSON.
    fn cluster(&mut self) -> String {
        let mut items = Vec::new();
        for ns in NAMESPACES {
            items.push(serde_json::json!({"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": ns}}));
        }
        for i in 0..self.below(6) {
            let (ns, name) = (self.pick(&NAMESPACES), self.pick(&SERVICES));
            let ports: Vec<_> = (0..self.below(3))
                .map(|_| {
                    serde_json::json!({"name": self.pick(&PORT_NAMES),
                        "port": 53 + self.below(3), "protocol": self.pick(&PROTOCOLS)})
                })
                .collect();
            let mut spec = serde_json::json!({"ports": ports.clone(),
                "publishNotReadyAddresses": self.below(4) == 0});
            match self.below(4) {
                0 => spec["clusterIP"] = format!("10.96.0.{}", self.byte()).into(),
                1 => {
                    let ips = [
                        format!("10.96.1.{}", self.byte()),
                        format!("fd00:96::{}", self.byte()),
                    ];
                    spec["clusterIP"] = ips[0].clone().into();
                    spec["clusterIPs"] = serde_json::json!(ips);
                }
                2 => spec["clusterIP"] = "None".into(),
                _ => {
                    spec["type"] = "ExternalName".into();
                    spec["externalName"] = self.pick(&EXTERNAL).into();
                }
            }
            items.push(serde_json::json!({"apiVersion": "v1", "kind": "Service",
                "metadata": {"namespace": ns, "name": name}, "spec": spec}));
            let endpoints: Vec<_> = (0..self.below(5))
                .map(|_| {
                    let mut e = serde_json::json!({"addresses": [self.address()]});
                    match self.below(3) {
                        0 => e["conditions"] = serde_json::json!({"ready": false}),
                        1 => e["conditions"] = serde_json::json!({"ready": true}),
                        _ => {}
                    }
                    if self.below(2) == 0 {
                        e["hostname"] = self.pick(&HOSTNAMES).into();
                    }
                    if self.below(2) == 0 {
                        e["targetRef"] = serde_json::json!({"kind": "Pod",
                            "name": self.pick(&HOSTNAMES), "namespace": ns});
                    }
                    e
                })
                .collect();
            let ports: Vec<_> = ports.iter().map(|p| {
                serde_json::json!({"name": p["name"], "port": p["port"], "protocol": p["protocol"]})
            }).collect();
            items.push(serde_json::json!({"apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice", "addressType": "IPv4",
                "metadata": {"namespace": ns, "name": format!("{name}-{i}"),
                    "labels": {"kubernetes.io/service-name": name}},
                "endpoints": endpoints, "ports": ports}));
        }
        for _ in 0..self.below(3) {
            let ip = self.address();
            items.push(serde_json::json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"namespace": self.pick(&NAMESPACES), "name": self.pick(&HOSTNAMES)},
                "status": {"podIP": ip, "podIPs": [{"ip": ip}]}}));
        }
        serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items}).to_string()
    }

    /// A query for a name of the kinds the cluster has, or near them.
    fn query(&mut self) -> Vec<u8> {
        let (ns, svc) = (self.pick(&NAMESPACES), self.pick(&SERVICES));
        let n = self.below(8);
        let name = match self.below(10) {
            0 => format!("{svc}.{ns}.svc.cluster.local."),
            1 => format!("{}.{svc}.{ns}.svc.cluster.local.", self.pick(&HOSTNAMES)),
            2 => format!(
                "_{}._{}.{svc}.{ns}.svc.cluster.local.",
                self.pick(&PORT_NAMES),
                self.pick(&["tcp", "udp", "sctp", "x"])
            ),
            3 => format!("10-0-0-{n}.{ns}.pod.cluster.local."),
            4 => format!("{n}.0.0.10.in-addr.arpa."),
            5 => {
                format!("{n}.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.")
            }
            6 => format!("{ns}.svc.cluster.local."),
            7 => "cluster.local.".to_string(),
            8 => format!("{svc}.{ns}.svc.cluster.local.default.svc.cluster.local."),
            _ => format!("{svc}.{ns}."),
        };
        let mut name: Vec<u8> = name.into_bytes();
        // Some letters upper case: names are matched without case, and echoed as asked.
        for (i, c) in name.iter_mut().enumerate() {
            if i % 3 == usize::from(self.byte() % 3) {
                c.make_ascii_uppercase();
            }
        }
        let name =
            Name::from_ascii(String::from_utf8_lossy(&name)).unwrap_or_else(|_| Name::root());
        let qtype =
            RecordType::from([1u16, 28, 33, 12, 5, 2, 6, 255, 16, 15, 0, 65280][self.below(12)]);
        let edns = [None, Some(512), Some(1232), Some(4096)][self.below(4)];
        encode(&name, qtype, u16::from(self.byte()), edns)
    }
}

#[cfg(test)]
mod tests {
    //! The corpus and the regressions kept in `fuzz/`, replayed through the targets.

    use std::path::PathBuf;

    fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
        let mut out = Vec::new();
        for dir in ["corpus", "regressions"] {
            let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
                continue;
            };
            for e in entries.flatten() {
                out.push((e.path(), std::fs::read(e.path()).expect("a corpus file")));
            }
        }
        out.sort();
        out
    }

    use super::*;

    fn replay(target: &str, run: fn(&[u8]), at_least: usize) {
        let inputs = inputs(target);
        assert!(
            inputs.len() >= at_least,
            "fuzz/corpus/{target}: {} inputs, at least {at_least} expected",
            inputs.len()
        );
        for (path, data) in inputs {
            if let Err(panic) = std::panic::catch_unwind(|| run(&data)) {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_string()))
                    .unwrap_or_default();
                panic!("{}: {message}", path.display());
            }
        }
    }

    #[test]
    fn the_query_corpus_replays() {
        replay("query", query, 1);
    }

    #[test]
    fn the_roundtrip_corpus_replays() {
        replay("roundtrip", roundtrip, 1);
    }

    #[test]
    fn the_corefile_corpus_replays() {
        replay("corefile", corefile, 1);
    }

    #[test]
    fn the_manifests_corpus_replays() {
        replay("manifests", manifests, 1);
    }

    #[test]
    fn the_answer_corpus_replays() {
        replay("answer", answer, 1);
    }

    #[test]
    fn the_zonefile_corpus_replays() {
        replay("zonefile", zonefile, 3);
    }
}
