//! The fast path answers exactly as the full one does.
//!
//! Every query of a large corpus (each name the test cluster has, and names around them, times
//! query types, letter case, EDNS, header flags and transport; then malformed and randomly
//! mutated packets) is answered by [`Handler::handle`] (fast when it can) and by the full
//! parse alone ([`Handler::handle_full`] behind the same drop check), and the two responses
//! must be the same bytes. With `loadbalance` the address records may come in another order.
//! Where the fast path answers, its own output ([`Handler::handle_fast`] called directly) must
//! be that response too.

use std::collections::BTreeSet;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use hickory_proto::op::Message;

use super::{Handled, Handler, Transport};
use crate::plugin::Plugin;
use crate::wire::{self, HEADER_LEN};

use crate::plugin::testing::DATA;

/// The Corefile the benchmarks serve: one block, the cluster zones and both reverse zones.
const MAIN: &str = ".:0 {
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        manifests DATA
        pods insecure
    }
}";

/// Blocks sharing one port, routed by the longest zone: `prod.svc.cluster.local` and the
/// reverse zones have blocks of their own (other TTLs and pod modes, so a query routed to the
/// wrong block gets other bytes), a second cluster zone `example.org`, and `.` with `hosts`.
const ROUTED: &str = ".:0 {
    hosts {
        10.0.0.6 extra.example.com
        fallthrough
    }
}
cluster.local:0 example.org:0 {
    kubernetes cluster.local example.org {
        manifests DATA
        pods insecure
        ttl 10
    }
}
prod.svc.cluster.local:0 {
    kubernetes cluster.local {
        manifests DATA
        pods disabled
        ttl 20
    }
}
in-addr.arpa:0 ip6.arpa:0 {
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        manifests DATA
        ttl 30
    }
}";

/// `loadbalance`: the order of address records is random on both paths.
const LOADBALANCE: &str = ".:0 {
    loadbalance
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        manifests DATA
        pods insecure
    }
}";

/// `fallthrough` for the reverse zones, then `forward` (never contacted here: a forwarded
/// query comes back as [`Handled::Forward`]).
const FALLTHROUGH: &str = ".:0 {
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        manifests DATA
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }
    forward . 127.0.0.1:9
}";

/// `fallthrough` for every zone, with the loop detector between kubernetes and forward.
const FALLTHROUGH_ALL: &str = ".:0 {
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        manifests DATA
        pods verified
        endpoint_pod_names
        fallthrough
    }
    loop
    forward . 127.0.0.1:9
}";

/// k3s's stock Corefile (its NodeHosts inline here): `hosts` with `fallthrough` before
/// `kubernetes` in CoreDNS's order, every cluster query passing through it, then `forward`.
const K3S: &str = ".:0 {
    errors
    health :0
    ready :0
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        manifests DATA
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }
    hosts {
        10.0.0.11 k3s-server
        10.0.0.12 k3s-agent-1 Agent-1.Example.Internal
        fd00::12 k3s-agent-1
        10.0.0.13 k3s-agent-2
        ttl 60
        reload 15s
        fallthrough
    }
    prometheus :0
    forward . 127.0.0.1:9
    cache 30
    loop
    reload
    loadbalance
}";

/// The names the `hosts` entries above give, and names around them.
fn hosts_names() -> BTreeSet<QName> {
    [
        "k3s-server.",
        "k3s-agent-1.",
        "agent-1.example.internal.",
        "example.internal.",
        "k3s-agent-3.",
        "11.0.0.10.in-addr.arpa.",
        "12.0.0.10.in-addr.arpa.",
        "14.0.0.10.in-addr.arpa.",
        "2.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.",
    ]
    .into_iter()
    .map(QName::parse)
    .collect()
}

/// `hosts` before `kubernetes` (CoreDNS's order), and `log`: the fast path takes the first
/// block's queries (hosts passes them on, or answers them) and declines the second's.
const HOSTS_AND_LOG: &str = "cluster.local:0 {
    hosts {
        10.0.0.5 registry.cluster.local
        fallthrough
    }
    kubernetes cluster.local {
        manifests DATA
    }
}
in-addr.arpa:0 {
    log
    kubernetes cluster.local in-addr.arpa {
        manifests DATA
    }
}";

/// The handler serving `corefile` (`DATA` stands for the test cluster), as the benchmarks
/// build it: the manifests are loaded, and the plugin ready, before this returns.
fn handler(corefile: &str) -> Arc<Handler> {
    let handler = crate::plugin::testing::Served::new(corefile).handler;
    for block in &handler.blocks {
        for plugin in &block.plugins {
            if let Plugin::Kubernetes(k) = plugin {
                assert!(
                    k.ready_flag().load(Ordering::Relaxed),
                    "manifests not loaded"
                );
            }
        }
    }
    handler
}

// ---------------------------------------------------------------------------------------------
// Names

/// A name as labels of raw bytes (any byte, so names no text form spells can be asked).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct QName(Vec<Vec<u8>>);

impl QName {
    /// `a.b.c.` (or `.`): labels between dots, no escapes.
    fn parse(text: &str) -> Self {
        Self(
            text.split('.')
                .filter(|l| !l.is_empty())
                .map(|l| l.as_bytes().to_vec())
                .collect(),
        )
    }

    /// These labels, then `zone`'s.
    fn under(labels: &[&[u8]], zone: &str) -> Self {
        let mut name = Self(labels.iter().map(|l| l.to_vec()).collect());
        name.0.extend(Self::parse(zone).0);
        name
    }

    fn wire(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for label in &self.0 {
            out.push(label.len() as u8);
            out.extend_from_slice(label);
        }
        out.push(0);
        out
    }

    fn cased(&self, case: Case) -> Self {
        let mut letter = 0usize;
        Self(
            self.0
                .iter()
                .map(|label| {
                    label
                        .iter()
                        .map(|&b| match case {
                            Case::Lower => b.to_ascii_lowercase(),
                            Case::Upper => b.to_ascii_uppercase(),
                            Case::Mixed if b.is_ascii_alphabetic() => {
                                letter += 1;
                                if letter % 2 == 1 {
                                    b.to_ascii_uppercase()
                                } else {
                                    b.to_ascii_lowercase()
                                }
                            }
                            Case::Mixed => b,
                        })
                        .collect()
                })
                .collect(),
        )
    }
}

impl fmt::Display for QName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str(".");
        }
        for label in &self.0 {
            for &b in label {
                if b.is_ascii_graphic() && b != b'.' && b != b'\\' {
                    write!(f, "{}", b as char)?;
                } else {
                    write!(f, "\\{b:03}")?;
                }
            }
            f.write_str(".")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy)]
enum Case {
    Lower,
    Upper,
    Mixed,
}

/// The reverse name of an address.
fn reverse(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            format!("{d}.{c}.{b}.{a}.in-addr.arpa.")
        }
        IpAddr::V6(v6) => {
            let mut out = String::new();
            for byte in v6.octets().iter().rev() {
                out.push_str(&format!("{:x}.{:x}.", byte & 0xF, byte >> 4));
            }
            out + "ip6.arpa."
        }
    }
}

/// Every name the test cluster has under `zone`, and names around them: their SRV names with
/// right and wrong protocols, names below them, endpoint names by hostname and by address, pod
/// names of every address in every namespace, reverse names of every address, and names that
/// are not there.
fn cluster_names(zone: &str, manifests: &[PathBuf]) -> BTreeSet<QName> {
    use crate::cluster::records::dashed;
    let objects = crate::source::manifests::load(manifests).unwrap();
    let mut names = BTreeSet::new();
    let mut add = |text: String| {
        names.insert(QName::parse(&text));
    };
    let namespaces = objects.all_namespaces();
    let mut addresses: BTreeSet<IpAddr> = BTreeSet::new();
    for ns in &namespaces {
        add(format!("{ns}.svc.{zone}"));
        add(format!("{ns}.pod.{zone}"));
        add(format!("nosuch.{ns}.svc.{zone}"));
        add(format!("www.example.com.{ns}.svc.{zone}"));
        add(format!("_http._tcp.nosuch.{ns}.svc.{zone}"));
    }
    for ((ns, name), service) in &objects.services {
        let svc = format!("{name}.{ns}.svc.{zone}");
        add(svc.clone());
        add(format!("sub.{svc}"));
        add(format!("a.b.c.{svc}"));
        add(format!("{name}.{ns}.pod.{zone}"));
        add(format!("{name}.nosuch.svc.{zone}"));
        add(format!("_tcp.{svc}"));
        add(format!("_udp.{svc}"));
        add(format!("_nosuch._tcp.{svc}"));
        for port in &service.ports {
            add(format!("_{}._tcp.{svc}", port.name));
            add(format!("_{}._udp.{svc}", port.name));
            add(format!("_{}._sctp.{svc}", port.name));
            add(format!("_{}.{svc}", port.name));
            add(format!("x._{}._tcp.{svc}", port.name));
        }
        match &service.kind {
            crate::cluster::ServiceKind::ClusterIp(ips) => addresses.extend(ips),
            crate::cluster::ServiceKind::ExternalName(target) => add(target.to_ascii()),
            crate::cluster::ServiceKind::Headless => {}
        }
        for set in objects.endpoint_sets(ns, name) {
            for endpoint in set.endpoints.iter() {
                for label in [endpoint.hostname, endpoint.target_name]
                    .into_iter()
                    .flatten()
                {
                    add(format!("{label}.{svc}"));
                    add(format!("_http._tcp.{label}.{svc}"));
                    add(format!("x.{label}.{svc}"));
                }
                for ip in endpoint.addresses() {
                    add(format!("{}.{svc}", dashed(ip)));
                    add(format!("x.{}.{svc}", dashed(ip)));
                    addresses.insert(ip);
                }
            }
        }
    }
    for pod in objects.pods.values() {
        addresses.extend(&pod.ips);
        add(format!("{}.{}.pod.{zone}", pod.name, pod.namespace));
    }
    for (i, ip) in addresses.iter().enumerate() {
        add(reverse(*ip));
        add(format!("{}.default.pod.{zone}", dashed(*ip)));
        // A pod name's answer depends on its namespace, not on which address it spells: the
        // other namespaces (and one that does not exist) for some of the addresses.
        if i % 8 == 0 || ip.is_ipv6() {
            for ns in namespaces.iter().map(String::as_str).chain(["nosuch"]) {
                add(format!("{}.{ns}.pod.{zone}", dashed(*ip)));
            }
            add(format!("x.{}.default.pod.{zone}", dashed(*ip)));
        }
    }
    for text in [
        "",
        "svc.",
        "pod.",
        "nosuch.",
        "nosuch.svc.",
        "x.y.z.w.v.",
        "_http._tcp.",
        "_http._tcp.svc.",
        "*.default.svc.",
        "*.*.svc.",
        "1-2-3.default.pod.",
        "1-2-3-4-5.default.pod.",
        "01-02-03-04.default.pod.",
        "256-1-1-1.default.pod.",
        "not-an-ip.default.pod.",
        "fd00--1.default.pod.",
        "fd00--1--2.default.pod.",
        "--.default.pod.",
        "10-36-0-7.default.svc.",
        "10.36.0.7.default.pod.",
        "10-36-0-7.default.pod.nosuch.",
    ] {
        add(format!("{text}{zone}"));
    }
    names
}

/// Reverse names that are not addresses, or no address of the cluster, names outside every
/// zone, and names with bytes no text form writes.
fn other_names() -> BTreeSet<QName> {
    let mut names: BTreeSet<QName> = [
        ".",
        "arpa.",
        "in-addr.arpa.",
        "10.in-addr.arpa.",
        "96.10.in-addr.arpa.",
        "0.96.10.in-addr.arpa.",
        "01.0.96.10.in-addr.arpa.",
        "1.00.96.10.in-addr.arpa.",
        "256.0.96.10.in-addr.arpa.",
        "-1.0.96.10.in-addr.arpa.",
        "x.0.96.10.in-addr.arpa.",
        "1.1.0.96.10.in-addr.arpa.",
        "x.1.0.96.10.in-addr.arpa.",
        "1.1.1.1.in-addr.arpa.",
        "8.8.8.8.in-addr.arpa.",
        "foo.in-addr.arpa.",
        "1.0.96.10.in-addr.arpa.example.",
        "ip6.arpa.",
        "0.ip6.arpa.",
        "d.f.ip6.arpa.",
        "com.",
        "example.com.",
        "search.example.com.",
        "extra.example.com.",
        "local.",
        "xcluster.local.",
        "cluster.localx.",
        "cluster.local.example.",
        "svc.",
        "web.prod.svc.",
        "registry.cluster.local.",
        "registry.example.org.",
    ]
    .into_iter()
    .map(QName::parse)
    .collect();
    // Reverse names of the wrong length, with a two-digit nibble, a non-hex one, upper-case hex.
    let v6 = reverse("fd00:10:96::1234".parse().unwrap());
    let nibbles: Vec<&str> = v6.trim_end_matches("ip6.arpa.").split('.').collect();
    let nibbles = &nibbles[..32];
    let join = |n: &[&str]| format!("{}.ip6.arpa.", n.join("."));
    names.insert(QName::parse(&join(&nibbles[1..])));
    names.insert(QName::parse(&join(&[&["0"], nibbles].concat())));
    names.insert(QName::parse(&join(&[&["00"], &nibbles[1..]].concat())));
    names.insert(QName::parse(&join(&[&["g"], &nibbles[1..]].concat())));
    names.insert(QName::parse(&v6.to_ascii_uppercase()));
    // A label holding a dot, a zero byte, a byte above ASCII, and one ending in the bytes of
    // the zone (in_zone must go by labels, not bytes).
    names.insert(QName::under(&[b"web.prod"], "svc.cluster.local."));
    names.insert(QName::under(&[b"we\0b", b"prod", b"svc"], "cluster.local."));
    names.insert(QName::under(
        &[b"w\xC4b", b"prod", b"svc"],
        "cluster.local.",
    ));
    names.insert(QName::under(&[b"x\x07cluster\x05local"], "."));
    names.insert(QName::under(
        &[b"web", b"prod", b"svc\x07cluster\x05local"],
        ".",
    ));
    names.insert(QName::under(&[b"1.0.96.10"], "in-addr.arpa."));
    // Labels of 63 bytes; names of 253, 254 and 255 bytes (the longest a name may be).
    let long = vec![b'a'; 63];
    names.insert(QName::under(&[&long, b"prod", b"svc"], "cluster.local."));
    for total in [253, 254, 255] {
        // cluster.local. takes 15 bytes; each 63-byte label 64.
        let mut labels: Vec<Vec<u8>> = vec![long.clone(); 3];
        let rest = total - 15 - 3 * 64 - 1;
        labels.push(vec![b'b'; rest]);
        let refs: Vec<&[u8]> = labels.iter().map(Vec::as_slice).collect();
        let name = QName::under(&refs, "cluster.local.");
        assert_eq!(name.wire().len(), total);
        names.insert(name);
    }
    names
}

// ---------------------------------------------------------------------------------------------
// Queries

/// Query types: the common ones, ones nothing here holds, and the special ones (ANY, zone
/// transfers, OPT as a question, 0 and 65535).
const QTYPES: &[u16] = &[
    1, 28, 33, 12, 16, 15, 5, 6, 2, 255, 13, 257, 252, 251, 41, 0, 65535, 64, 65, 99,
];

fn type_name(qtype: u16) -> String {
    let name = hickory_proto::rr::RecordType::from(qtype).to_string();
    format!("{name}({qtype})")
}

/// How the query's OPT record looks, if it has one.
#[derive(Debug, Clone, Copy)]
enum Edns {
    None,
    Payload(u16),
    DnssecOk,
    /// A client cookie (RFC 7873).
    Cookie,
    /// A padding option (RFC 7830) and every OPT flag bit set.
    PaddingAllFlags,
    /// An option code nothing knows, and an extended rcode in the query's OPT.
    UnknownOption,
    /// A well-formed client subnet option (RFC 7871).
    ClientSubnet,
    /// EDNS version 1: BADVERS.
    Version1,
}

const EDNS: &[Edns] = &[
    Edns::None,
    Edns::Payload(512),
    Edns::Payload(1232),
    Edns::Payload(4096),
    Edns::Payload(0),
    Edns::DnssecOk,
    Edns::Cookie,
    Edns::PaddingAllFlags,
    Edns::UnknownOption,
    Edns::ClientSubnet,
    Edns::Version1,
];

impl Edns {
    fn opt(self) -> Option<Vec<u8>> {
        Some(match self {
            Self::None => return None,
            Self::Payload(p) => opt(p, 0, 0, 0, &[]),
            Self::DnssecOk => opt(1232, 0, 0, 0x8000, &[]),
            Self::Cookie => opt(1232, 0, 0, 0, &[(10, &[1, 2, 3, 4, 5, 6, 7, 8])]),
            Self::PaddingAllFlags => opt(4096, 0, 0, 0xFFFF, &[(12, &[0; 100])]),
            Self::UnknownOption => opt(1232, 1, 0, 0, &[(65001, &[1, 2, 3])]),
            Self::ClientSubnet => opt(1232, 0, 0, 0, &[(8, &[0, 1, 24, 0, 10, 36, 0])]),
            Self::Version1 => opt(1232, 0, 1, 0, &[]),
        })
    }
}

/// An OPT record: root owner, UDP payload size, extended rcode, version, flags, options.
fn opt(payload: u16, ext_rcode: u8, version: u8, flags: u16, options: &[(u16, &[u8])]) -> Vec<u8> {
    let mut data = Vec::new();
    for (code, value) in options {
        data.extend_from_slice(&code.to_be_bytes());
        data.extend_from_slice(&(value.len() as u16).to_be_bytes());
        data.extend_from_slice(value);
    }
    let mut out = vec![0];
    out.extend_from_slice(&41u16.to_be_bytes());
    out.extend_from_slice(&payload.to_be_bytes());
    out.extend_from_slice(&[ext_rcode, version]);
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(&(data.len() as u16).to_be_bytes());
    out.extend(data);
    out
}

/// Header flag bytes queries are sent with, in turn: RD, none, RD+AD, RD+CD, RD+TC, AA+Z.
const FLAGS: &[[u8; 2]] = &[
    [0x01, 0x00],
    [0x00, 0x00],
    [0x01, 0x20],
    [0x01, 0x10],
    [0x03, 0x00],
    [0x04, 0x40],
];

/// A query: one question, and the OPT record when given.
fn query(
    id: u16,
    flags: [u8; 2],
    name: &[u8],
    qtype: u16,
    class: u16,
    opt: Option<&[u8]>,
) -> Vec<u8> {
    let mut q = Vec::with_capacity(HEADER_LEN + name.len() + 4 + opt.map_or(0, <[u8]>::len));
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&flags);
    q.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, u8::from(opt.is_some())]);
    q.extend_from_slice(name);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&class.to_be_bytes());
    if let Some(opt) = opt {
        q.extend_from_slice(opt);
    }
    q
}

/// A small deterministic generator (xorshift64*), for mutations and the order of things.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

// ---------------------------------------------------------------------------------------------
// Comparing

/// One handler's comparisons: how many, how many the fast path answered, and what differed.
struct Run {
    label: &'static str,
    handler: Arc<Handler>,
    /// `loadbalance`: answers are compared as sets of records.
    shuffled: bool,
    compared: usize,
    fast: usize,
    failed: usize,
    failures: Vec<String>,
    id: u16,
    turn: usize,
    got: Vec<u8>,
    want: Vec<u8>,
    direct: Vec<u8>,
}

impl Run {
    fn new(label: &'static str, corefile: &str, shuffled: bool) -> Self {
        Self {
            label,
            handler: handler(corefile),
            shuffled,
            compared: 0,
            fast: 0,
            failed: 0,
            failures: Vec::new(),
            id: 0x2a00,
            turn: 0,
            got: Vec::new(),
            want: Vec::new(),
            direct: Vec::new(),
        }
    }

    /// A fresh ID and the next header flags.
    fn next_header(&mut self) -> (u16, [u8; 2]) {
        self.id = self.id.wrapping_add(0x0101);
        self.turn += 1;
        (self.id, FLAGS[self.turn % FLAGS.len()])
    }

    /// The query of `name` and `qtype` with these variants, compared.
    fn ask(
        &mut self,
        name: &QName,
        qtype: u16,
        case: Case,
        edns: Edns,
        transport: Transport,
    ) -> bool {
        let (id, flags) = self.next_header();
        let cased = name.cased(case);
        let q = query(id, flags, &cased.wire(), qtype, 1, edns.opt().as_deref());
        self.check(&q, transport, || {
            format!(
                "{cased} {} {case:?} {edns:?} {transport:?} flags {flags:02x?}",
                type_name(qtype)
            )
        })
    }

    /// Answers `query` both ways and records a difference. Returns whether the fast path
    /// answered it.
    fn check(&mut self, query: &[u8], transport: Transport, what: impl FnOnce() -> String) -> bool {
        self.compared += 1;
        let src: SocketAddr = if self.compared.is_multiple_of(2) {
            "10.36.0.7:40000".parse().unwrap()
        } else {
            "[fd00::7]:40000".parse().unwrap()
        };
        let h = &*self.handler;
        let handled = h.handle(query, src, transport, &mut self.got);
        // The full way, behind the same check `handle` makes first.
        let expected = if query.len() < HEADER_LEN || query[2] & 0x80 != 0 {
            self.want.clear();
            Handled::Drop
        } else {
            h.handle_full(query, src, transport, &mut self.want, Instant::now(), None)
        };
        // `handle` clears the buffer before trying the fast path; so does this.
        self.direct.clear();
        let fast = wire::parse_light(query).is_some_and(|light| {
            h.handle_fast(
                query,
                &light,
                src,
                transport,
                &mut self.direct,
                Instant::now(),
            )
            .is_some()
        });
        let mut problem = match (&handled, &expected) {
            (Handled::Drop, Handled::Drop) => None,
            (Handled::Send, Handled::Send) => differ(&self.got, &self.want, self.shuffled),
            (Handled::Forward(a), Handled::Forward(b)) => {
                let key = |p: &super::Pending| {
                    (
                        p.query.clone(),
                        p.src,
                        p.transport,
                        p.limit,
                        p.block,
                        p.zone,
                        Arc::as_ptr(&p.forward) as usize,
                        matches!(p.then, super::Then::Walk(_)),
                    )
                };
                (key(a) != key(b)).then(|| format!("forwarded differently:\n{a:?}\n{b:?}"))
            }
            _ => Some(format!(
                "handle: {handled:?}\nfull:   {expected:?}\n{}",
                shown("handle", &self.got) + &shown("full", &self.want)
            )),
        };
        if fast {
            self.fast += 1;
            if problem.is_none() {
                problem = match expected {
                    Handled::Send => differ(&self.direct, &self.want, self.shuffled)
                        .map(|d| format!("handle_fast's own output differs: {d}")),
                    _ => Some(format!(
                        "the fast path answered what the full way does not send: {expected:?}"
                    )),
                };
            }
        }
        if let Some(problem) = problem {
            self.failed += 1;
            if self.failures.len() < 8 {
                self.failures.push(format!(
                    "[{}] {} (fast path answered: {fast})\nquery {}\n{problem}",
                    self.label,
                    what(),
                    hex(query),
                ));
            }
        }
        fast
    }

    /// Most of a corpus is plain: the fast path must have taken a good share of it.
    fn mostly_fast(&self) {
        assert!(
            self.fast * 4 > self.compared,
            "the fast path answered only {} of {}",
            self.fast,
            self.compared
        );
    }

    /// Fails with the first differences found, if any.
    fn finish(&self) {
        assert!(
            self.failed == 0,
            "{} of {} queries answered differently by the fast and the full path; the first:\n\n{}",
            self.failed,
            self.compared,
            self.failures.join("\n\n")
        );
        eprintln!(
            "[{}] {} queries compared, {} answered on the fast path",
            self.label, self.compared, self.fast
        );
    }
}

/// A response, parsed by hickory (or why it does not parse), and its bytes.
fn shown(which: &str, bytes: &[u8]) -> String {
    let parsed = match Message::from_vec(bytes) {
        Ok(m) => m.to_string(),
        Err(e) => format!("(does not parse: {e})\n"),
    };
    format!(
        "--- {which}: {} bytes\n{parsed}{}\n",
        bytes.len(),
        hex(bytes)
    )
}

/// Bytes in hex, the first 512 of them.
fn hex(bytes: &[u8]) -> String {
    let shown: String = bytes.iter().take(512).map(|b| format!("{b:02x}")).collect();
    if bytes.len() > 512 {
        format!("{shown}... ({} more)", bytes.len() - 512)
    } else {
        shown
    }
}

/// `None` when the responses are the same (as sets of answer records when `shuffled`).
fn differ(fast: &[u8], full: &[u8], shuffled: bool) -> Option<String> {
    let same_set = || sorted_answers(fast).is_some_and(|f| Some(f) == sorted_answers(full));
    // Truncated after a shuffle, each keeps a different subset of the same size: the same
    // length, flags (TC) and counts.
    let same_size = || {
        fast.len() == full.len()
            && fast.get(2).is_some_and(|f| f & 0x02 != 0)
            && fast.get(2..12) == full.get(2..12)
    };
    if fast == full || shuffled && (same_set() || same_size()) {
        return None;
    }
    Some(shown("fast-capable path (handle)", fast) + &shown("full path (handle_full)", full))
}

/// A response without its answer records, and those records sorted.
fn sorted_answers(m: &[u8]) -> Option<(Vec<u8>, Vec<&[u8]>)> {
    let end = wire::question_end(m)?;
    let count = u16::from_be_bytes([*m.get(6)?, *m.get(7)?]);
    let mut at = end;
    let mut records = Vec::new();
    for _ in 0..count {
        let start = at;
        at = wire::skip_name(m, at)?;
        let rdlen = u16::from_be_bytes([*m.get(at + 8)?, *m.get(at + 9)?]);
        at += 10 + usize::from(rdlen);
        records.push(m.get(start..at)?);
    }
    records.sort_unstable();
    let mut rest = m[..end].to_vec();
    rest.extend_from_slice(m.get(at..)?);
    Some((rest, records))
}

const CASES: &[Case] = &[Case::Lower, Case::Upper, Case::Mixed];
const TRANSPORTS: &[Transport] = &[Transport::Udp, Transport::Tcp];

/// Every name of the corpus times every query type, case, EDNS variant and transport.
fn whole_corpus(run: &mut Run, names: &BTreeSet<QName>) {
    for name in names {
        for &qtype in QTYPES {
            for &case in CASES {
                for &edns in EDNS {
                    for &transport in TRANSPORTS {
                        run.ask(name, qtype, case, edns, transport);
                    }
                }
            }
        }
    }
}

/// A smaller product, for the other configurations.
fn lighter_corpus(run: &mut Run, names: &BTreeSet<QName>) {
    for name in names {
        for &qtype in QTYPES {
            for (i, &edns) in [
                Edns::None,
                Edns::Payload(1232),
                Edns::DnssecOk,
                Edns::Version1,
            ]
            .iter()
            .enumerate()
            {
                let case = CASES[i % CASES.len()];
                for &transport in TRANSPORTS {
                    run.ask(name, qtype, case, edns, transport);
                }
            }
        }
    }
}

fn all_names(zones: &[&str]) -> BTreeSet<QName> {
    all_names_of(zones, &[PathBuf::from(DATA)])
}

fn all_names_of(zones: &[&str], manifests: &[PathBuf]) -> BTreeSet<QName> {
    let mut names = other_names();
    for zone in zones {
        names.extend(cluster_names(zone, manifests));
    }
    names
}

// ---------------------------------------------------------------------------------------------
// Tests

#[test]
fn the_fast_path_answers_every_query_as_the_full_path_does() {
    let mut run = Run::new("main", MAIN, false);
    let names = all_names(&["cluster.local."]);
    whole_corpus(&mut run, &names);
    run.finish();
    run.mostly_fast();
}

#[test]
fn blocks_sharing_a_port_are_routed_alike_by_both_paths() {
    let mut run = Run::new("routed", ROUTED, false);
    let names = all_names(&["cluster.local.", "example.org."]);
    lighter_corpus(&mut run, &names);
    run.finish();
    assert!(run.fast > 0);
}

#[test]
fn loadbalance_answers_the_same_records_on_both_paths_in_a_random_order() {
    let mut run = Run::new("loadbalance", LOADBALANCE, true);
    let names = all_names(&["cluster.local."]);
    lighter_corpus(&mut run, &names);
    run.finish();
    // The fast path shuffles too.
    let h = &run.handler;
    let name = QName::parse("sidecar-svc-headless.default.svc.cluster.local.");
    let q = query(7, [1, 0], &name.wire(), 1, 1, None);
    let light = wire::parse_light(&q).unwrap();
    let src = "10.36.0.7:40000".parse().unwrap();
    let mut orders = BTreeSet::new();
    for _ in 0..64 {
        let mut out = Vec::new();
        let handled = h.handle_fast(&q, &light, src, Transport::Udp, &mut out, Instant::now());
        assert!(matches!(handled, Some(Handled::Send)));
        orders.insert(out);
    }
    assert!(
        orders.len() > 1,
        "the fast path always gives the same order"
    );
}

#[test]
fn fallthrough_to_forward_is_taken_alike_by_both_paths() {
    for (label, corefile) in [
        ("fallthrough", FALLTHROUGH),
        ("fallthrough-all", FALLTHROUGH_ALL),
    ] {
        let mut run = Run::new(label, corefile, false);
        let names = all_names(&["cluster.local."]);
        lighter_corpus(&mut run, &names);
        run.finish();
        assert!(run.fast > 0, "{label}");
    }
}

#[test]
fn hosts_first_is_fast_and_log_sends_everything_the_full_way_with_the_same_answers() {
    let mut run = Run::new("hosts-and-log", HOSTS_AND_LOG, false);
    let mut names = all_names(&["cluster.local."]);
    names.insert(QName::parse("registry.cluster.local."));
    lighter_corpus(&mut run, &names);
    run.finish();
    assert!(
        run.fast * 4 > run.compared,
        "hosts before kubernetes: only {} of {} fast",
        run.fast,
        run.compared
    );
    // The `log` block's queries all go the full way.
    let mut logged = Run::new("log", HOSTS_AND_LOG, false);
    let reverse: BTreeSet<QName> = names
        .into_iter()
        .filter(|n| n.0.last().is_some_and(|l| l == b"arpa"))
        .collect();
    assert!(!reverse.is_empty());
    lighter_corpus(&mut logged, &reverse);
    logged.finish();
    assert_eq!(logged.fast, 0, "log wants the full parse");
}

#[test]
fn k3s_corefile_hosts_and_cluster_names_are_answered_alike_and_fast() {
    let mut run = Run::new("k3s", K3S, true);
    let mut names = all_names(&["cluster.local."]);
    names.extend(hosts_names());
    whole_corpus(&mut run, &names);
    run.finish();
    run.mostly_fast();
    // Both the hosts names and the cluster's, past hosts, are answered on the fast path.
    let h = &run.handler;
    let src: SocketAddr = "10.36.0.7:40000".parse().unwrap();
    for (name, qtype) in [
        ("k3s-agent-1.", 1),
        ("K3S-Agent-1.", 28),
        ("agent-1.example.internal.", 1),
        ("k3s-server.", 1),
        ("12.0.0.10.in-addr.arpa.", 12),
        ("web.prod.svc.cluster.local.", 1),
        ("sidecar-svc-headless.default.svc.cluster.local.", 1),
        ("nosuch.svc.cluster.local.", 1),
        ("1.0.96.10.in-addr.arpa.", 12),
    ] {
        let q = query(1, [1, 0], &QName::parse(name).wire(), qtype, 1, None);
        let light = wire::parse_light(&q).unwrap();
        let mut out = Vec::new();
        let handled = h.handle_fast(&q, &light, src, Transport::Udp, &mut out, Instant::now());
        assert!(
            matches!(handled, Some(Handled::Send)),
            "{name} {}: not fast",
            type_name(qtype)
        );
        let m = Message::from_vec(&out).unwrap();
        assert!(
            m.answer_count() > 0 || name.starts_with("nosuch"),
            "{name}: {m}"
        );
    }
}

#[test]
fn a_plugin_not_yet_ready_is_answered_the_full_way() {
    let mut run = Run::new("not-ready", MAIN, false);
    for block in &run.handler.blocks {
        for plugin in &block.plugins {
            if let Plugin::Kubernetes(k) = plugin {
                k.ready_flag().store(false, Ordering::Relaxed);
            }
        }
    }
    let names = all_names(&["cluster.local."]);
    lighter_corpus(&mut run, &names);
    run.finish();
    assert_eq!(run.fast, 0, "SERVFAIL until ready is the full path's");
}

/// The fast path runs for the plain queries, and leaves the rest to the full way.
#[test]
fn the_fast_path_takes_plain_queries_and_declines_the_others() {
    let handler = handler(MAIN);
    let src: SocketAddr = "10.36.0.7:40000".parse().unwrap();
    let fast = |name: &str, qtype: u16, edns: Edns| {
        let q = query(
            1,
            [1, 0],
            &QName::parse(name).wire(),
            qtype,
            1,
            edns.opt().as_deref(),
        );
        let mut out = Vec::new();
        wire::parse_light(&q).is_some_and(|light| {
            handler
                .handle_fast(&q, &light, src, Transport::Udp, &mut out, Instant::now())
                .is_some()
        })
    };
    let plain = [
        ("web.prod.svc.cluster.local.", 1),
        ("web.prod.svc.cluster.local.", 28),
        ("WEB.Prod.svc.cluster.local.", 1),
        ("kubernetes.default.svc.cluster.local.", 28),
        ("web.prod.svc.cluster.local.", 16),
        ("_http._tcp.web.prod.svc.cluster.local.", 33),
        ("sidecar-svc-headless.default.svc.cluster.local.", 1),
        ("search.prod.svc.cluster.local.", 5),
        ("nosuch.svc.cluster.local.", 1),
        ("www.example.com.default.svc.cluster.local.", 1),
        ("a.b.c.web.prod.svc.cluster.local.", 1),
        ("cluster.local.", 6),
        ("1.0.96.10.in-addr.arpa.", 12),
        ("1.0.96.10.in-addr.arpa.", 1),
        ("1.1.44.10.in-addr.arpa.", 12),
    ];
    for (name, qtype) in plain {
        for edns in [
            Edns::None,
            Edns::Payload(1232),
            Edns::DnssecOk,
            Edns::Cookie,
        ] {
            assert!(
                fast(name, qtype, edns),
                "{name} {} {edns:?}: not fast",
                type_name(qtype)
            );
        }
    }
    let declined = [
        ("web.prod.svc.cluster.local.", 255, Edns::None),
        ("web.prod.svc.cluster.local.", 1, Edns::Version1),
        ("web.prod.svc.cluster.local.", 252, Edns::None),
        ("web.prod.svc.cluster.local.", 41, Edns::None),
        // CNAMEs to follow, endpoint names, pod names: the full way.
        ("alias.prod.svc.cluster.local.", 1, Edns::None),
        ("db-0.db.prod.svc.cluster.local.", 1, Edns::None),
        ("10-44-1-1.web.prod.svc.cluster.local.", 1, Edns::None),
        ("10-36-0-7.default.pod.cluster.local.", 1, Edns::None),
        // Outside every zone of the block's plugins: refused the full way.
        ("example.com.", 1, Edns::None),
        // Too large for 512 bytes: truncated the full way.
        ("big.prod.svc.cluster.local.", 1, Edns::None),
    ];
    for (name, qtype, edns) in declined {
        assert!(
            !fast(name, qtype, edns),
            "{name} {} {edns:?}: fast",
            type_name(qtype)
        );
    }
    // Over EDNS the big answer fits, and is fast.
    assert!(fast("big.prod.svc.cluster.local.", 1, Edns::Payload(1232)));
}

/// With `fallthrough` for some zones, names in the others are still answered on the fast
/// path; with blocks sharing the port, each block's plain names are.
#[test]
fn the_fast_path_answers_past_fallthrough_zones_and_in_every_routed_block() {
    let src: SocketAddr = "10.36.0.7:40000".parse().unwrap();
    let fast = |handler: &Handler, name: &str, qtype: u16| {
        let q = query(1, [1, 0], &QName::parse(name).wire(), qtype, 1, None);
        let mut out = Vec::new();
        wire::parse_light(&q).is_some_and(|light| {
            handler
                .handle_fast(&q, &light, src, Transport::Udp, &mut out, Instant::now())
                .is_some()
        })
    };
    let fallthrough = handler(FALLTHROUGH);
    for (name, qtype, expected) in [
        ("web.prod.svc.cluster.local.", 1, true),
        // NXDOMAIN in cluster.local: no fallthrough there.
        ("nosuch.svc.cluster.local.", 1, true),
        ("a.b.c.web.prod.svc.cluster.local.", 28, true),
        ("1.0.96.10.in-addr.arpa.", 12, true),
        // A reverse name the cluster lacks falls through to forward: the full way.
        ("8.8.8.8.in-addr.arpa.", 12, false),
        (
            "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa.",
            12,
            false,
        ),
        ("example.com.", 1, false),
    ] {
        assert_eq!(
            fast(&fallthrough, name, qtype),
            expected,
            "fallthrough: {name}"
        );
    }
    let routed = handler(ROUTED);
    for (name, qtype, expected) in [
        ("web.prod.svc.cluster.local.", 1, true),
        ("nosuch.prod.svc.cluster.local.", 1, true),
        ("kubernetes.default.svc.cluster.local.", 1, true),
        ("web.prod.svc.example.org.", 1, true),
        ("1.0.96.10.in-addr.arpa.", 12, true),
        // The `.` block's hosts answers on the fast path too; a name it lacks passes on to
        // no other plugin: REFUSED, the full way.
        ("extra.example.com.", 1, true),
        ("other.example.com.", 1, false),
    ] {
        assert_eq!(fast(&routed, name, qtype), expected, "routed: {name}");
    }
}

/// Packets that are not plain queries: both ways must agree on them too (mostly by the fast
/// path declining them).
#[test]
fn malformed_and_unusual_packets_are_answered_alike() {
    let mut run = Run::new("malformed", MAIN, false);
    let bases: Vec<(QName, u16)> = [
        ("web.prod.svc.cluster.local.", 1),
        ("nosuch.prod.svc.cluster.local.", 1),
        ("_http._tcp.web.prod.svc.cluster.local.", 33),
        ("1.0.96.10.in-addr.arpa.", 12),
        ("big.prod.svc.cluster.local.", 1),
        ("example.com.", 1),
    ]
    .into_iter()
    .map(|(n, t)| (QName::parse(n), t))
    .collect();
    let edns_variants = [Edns::None, Edns::Payload(1232), Edns::Cookie];
    let mut packets: Vec<(String, Vec<u8>)> = Vec::new();
    for (name, qtype) in &bases {
        let wire_name = name.wire();
        for edns in edns_variants {
            let opt = edns.opt();
            let base = query(0x5151, [1, 0], &wire_name, *qtype, 1, opt.as_deref());
            let what = |change: &str| format!("{name} {} {edns:?}: {change}", type_name(*qtype));
            let set = |at: usize, value: &[u8]| {
                let mut q = base.clone();
                q[at..at + value.len()].copy_from_slice(value);
                q
            };
            // Cut short anywhere (the header, the question, the OPT).
            for len in 0..base.len() {
                packets.push((what(&format!("cut to {len} bytes")), base[..len].to_vec()));
            }
            let mut q = base.clone();
            q.push(0);
            packets.push((what("one trailing byte"), q));
            let mut q = base.clone();
            q.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
            packets.push((what("four trailing bytes"), q));
            packets.push((what("QR set"), set(2, &[0x81])));
            for opcode in [1u8, 2, 3, 4, 5, 6, 15] {
                packets.push((
                    what(&format!("opcode {opcode}")),
                    set(2, &[opcode << 3 | 1]),
                ));
            }
            packets.push((what("rcode 5 in the query"), set(3, &[0x05])));
            for class in [0u16, 3, 4, 254, 255] {
                let at = HEADER_LEN + wire_name.len() + 2;
                packets.push((
                    what(&format!("class {class}")),
                    set(at, &class.to_be_bytes()),
                ));
            }
            packets.push((what("qdcount 0"), set(4, &[0, 0])));
            packets.push((what("qdcount 2"), set(4, &[0, 2])));
            let mut q = set(4, &[0, 2]);
            let question = base[HEADER_LEN..HEADER_LEN + wire_name.len() + 4].to_vec();
            q.splice(
                HEADER_LEN + question.len()..HEADER_LEN + question.len(),
                question.clone(),
            );
            packets.push((what("two questions"), q));
            packets.push((what("ancount 1, no answer"), set(6, &[0, 1])));
            packets.push((what("nscount 1, no record"), set(8, &[0, 1])));
            // An answer record in the query.
            let record = [
                &[0xC0, 0x0C][..],
                &[0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 10, 0, 0, 1],
            ]
            .concat();
            let after = HEADER_LEN + question.len();
            let mut q = set(6, &[0, 1]);
            q.splice(after..after, record.clone());
            packets.push((what("an answer record"), q));
            let mut q = set(8, &[0, 1]);
            q.splice(after..after, record.clone());
            packets.push((what("an authority record"), q));
            // An A record in the additional section, before or instead of the OPT.
            let mut q = base.clone();
            let count = u16::from_be_bytes([q[10], q[11]]) + 1;
            q[10..12].copy_from_slice(&count.to_be_bytes());
            q.splice(after..after, record.clone());
            packets.push((what("an additional A record"), q));
            if let Some(opt) = &opt {
                let mut q = base.clone();
                q[10..12].copy_from_slice(&2u16.to_be_bytes());
                q.extend_from_slice(opt);
                packets.push((what("two OPT records"), q));
                let mut q = base.clone();
                q.extend_from_slice(&record);
                q[10..12].copy_from_slice(&2u16.to_be_bytes());
                packets.push((what("an A record after the OPT"), q));
                packets.push((what("arcount 0 with an OPT"), set(10, &[0, 0])));
                // An OPT owned by a name, an OPT whose options run past it, one cut short.
                let mut q = base[..after].to_vec();
                q.extend_from_slice(&[1, b'x']);
                q.extend_from_slice(opt);
                packets.push((what("an OPT owned by x."), q));
                let mut q = base[..after].to_vec();
                q.extend_from_slice(&[0xC0, 0x0C]);
                q.extend_from_slice(&opt[1..]);
                packets.push((what("an OPT owned by the question's name"), q));
                let mut q = base.clone();
                let rdlen = opt.len() as u16 - 11 + 4;
                q[after + 9..after + 11].copy_from_slice(&rdlen.to_be_bytes());
                packets.push((what("OPT rdlength past the end"), q));
                let mut q = base[..after].to_vec();
                q.extend_from_slice(&wire::opt(1232, 0, false)[..9]);
                q.extend_from_slice(&[0, 6, 0, 10, 0, 8, 1, 2]);
                packets.push((what("an option longer than the OPT"), q));
                let mut q = base[..after].to_vec();
                q.extend_from_slice(&wire::opt(1232, 0, false)[..9]);
                q.extend_from_slice(&[0, 2, 0, 10]);
                packets.push((what("an option without its length"), q));
                for version in [1u8, 2, 255] {
                    let mut q = base.clone();
                    q[after + 6] = version;
                    packets.push((what(&format!("EDNS version {version}")), q));
                }
            }
            // Compression pointers in the question: to itself, into the header, after a label.
            for pointer in [
                &[0xC0, 0x0C][..],
                &[0xC0, 0x00],
                &[0xC0, 0x02],
                &[3, b'w', b'e', b'b', 0xC0, 0x0C],
            ] {
                let mut q = base[..HEADER_LEN].to_vec();
                q.extend_from_slice(pointer);
                q.extend_from_slice(&base[HEADER_LEN + wire_name.len()..]);
                packets.push((what(&format!("question name {pointer:02x?}")), q));
            }
            // Extended label types (0x40, 0x80) and a label of 64 bytes.
            for first in [0x40u8, 0x41, 0x80, 0xBF] {
                packets.push((
                    what(&format!("label type {first:02x}")),
                    set(HEADER_LEN, &[first]),
                ));
            }
        }
    }
    // Names of 256 bytes and more, plain and with an OPT.
    let long = vec![b'a'; 63];
    for total in [256, 257, 300] {
        let mut labels: Vec<Vec<u8>> = vec![long.clone(); 3];
        labels.push(vec![b'b'; total - 15 - 3 * 64 - 1]);
        if total == 300 {
            labels = vec![long.clone(); 4];
            labels.push(vec![b'c'; 300 - 15 - 4 * 64 - 1]);
        }
        let refs: Vec<&[u8]> = labels.iter().map(Vec::as_slice).collect();
        let name = QName::under(&refs, "cluster.local.");
        assert_eq!(name.wire().len(), total);
        for edns in [Edns::None, Edns::Payload(1232)] {
            packets.push((
                format!("{} bytes long name {edns:?}", name.wire().len()),
                query(9, [1, 0], &name.wire(), 1, 1, edns.opt().as_deref()),
            ));
        }
    }
    let mut q = query(
        9,
        [1, 0],
        &[&[64][..], &[b'a'; 64], &[0]].concat(),
        1,
        1,
        None,
    );
    packets.push(("a label of 64 bytes".to_string(), q.clone()));
    q.truncate(5);
    packets.push(("a header of 5 bytes".to_string(), q));
    let n = packets.len();
    for (what, packet) in &packets {
        for &transport in TRANSPORTS {
            run.check(packet, transport, || format!("{what} {transport:?}"));
        }
    }
    run.finish();
    assert!(n > 1000, "{n}");
}

/// Seeded random damage to plain queries: bytes overwritten, counts changed, cut or extended.
#[test]
fn randomly_damaged_queries_are_answered_alike() {
    let mut run = Run::new("mutated", MAIN, false);
    let mut rng = Rng(0x00C0_FFEE_D15E_A5E5);
    let names: Vec<QName> = all_names(&["cluster.local."]).into_iter().collect();
    for i in 0..100_000 {
        let name = &names[rng.below(names.len())];
        let qtype = QTYPES[rng.below(QTYPES.len())];
        let edns = EDNS[rng.below(EDNS.len())];
        let case = CASES[rng.below(CASES.len())];
        let mut q = query(
            i as u16,
            FLAGS[rng.below(FLAGS.len())],
            &name.cased(case).wire(),
            qtype,
            1,
            edns.opt().as_deref(),
        );
        let original = q.clone();
        for _ in 0..1 + rng.below(3) {
            match rng.below(6) {
                0 | 1 => {
                    let at = rng.below(q.len());
                    q[at] = rng.next() as u8;
                }
                2 => {
                    let at = rng.below(q.len());
                    q[at] ^= 1 << rng.below(8);
                }
                3 if q.len() >= HEADER_LEN => {
                    // A section count of 0, 1 or 2.
                    let at = 4 + 2 * rng.below(4);
                    q[at..at + 2].copy_from_slice(&[0, rng.below(3) as u8]);
                }
                3 => {}
                4 => q.truncate(rng.below(q.len() + 1)),
                _ => q.push(rng.next() as u8),
            }
            if q.is_empty() {
                break;
            }
        }
        let transport = TRANSPORTS[rng.below(2)];
        run.check(&q, transport, || {
            format!(
                "{name} {} {case:?} {edns:?} {transport:?} damaged from {original:02x?}",
                type_name(qtype)
            )
        });
    }
    run.finish();
}

/// More cluster shapes than the test cluster has: a cluster IP that is also another service's
/// endpoint address, an address behind two headless services, many IPv6 endpoints (AAAA
/// answers past 512 bytes), CNAME chains inside the zone, a CNAME loop, and targets written
/// in upper case or with the final dot.
fn extra_manifest() -> String {
    let mut yaml = String::from(
        "apiVersion: v1
kind: Service
metadata: {name: overlap, namespace: prod}
spec: {clusterIP: 10.44.0.10, clusterIPs: [10.44.0.10], ports: [{name: http, port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: twin-a, namespace: quiet}
spec: {clusterIP: None, ports: [{name: http, port: 80}, {name: metrics, port: 9090}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: twin-a-1, namespace: quiet, labels: {kubernetes.io/service-name: twin-a}}
addressType: IPv4
endpoints:
- {addresses: [10.45.0.1], hostname: one}
- {addresses: [10.47.0.2]}
ports: [{name: http, port: 80, protocol: TCP}, {name: metrics, port: 9090, protocol: TCP}]
---
apiVersion: v1
kind: Service
metadata: {name: twin-b, namespace: quiet}
spec: {clusterIP: None, ports: [{name: http, port: 80}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: twin-b-1, namespace: quiet, labels: {kubernetes.io/service-name: twin-b}}
addressType: IPv4
endpoints:
- {addresses: [10.47.0.2], hostname: two}
- {addresses: [10.45.0.1]}
ports: [{name: http, port: 80, protocol: TCP}]
---
apiVersion: v1
kind: Service
metadata: {name: chain, namespace: prod}
spec: {type: ExternalName, externalName: alias.prod.svc.cluster.local}
---
apiVersion: v1
kind: Service
metadata: {name: loop-a, namespace: prod}
spec: {type: ExternalName, externalName: loop-b.prod.svc.cluster.local}
---
apiVersion: v1
kind: Service
metadata: {name: loop-b, namespace: prod}
spec: {type: ExternalName, externalName: loop-a.prod.svc.cluster.local}
---
apiVersion: v1
kind: Service
metadata: {name: shouting, namespace: prod}
spec: {type: ExternalName, externalName: WEB.PROD.SVC.CLUSTER.LOCAL}
---
apiVersion: v1
kind: Service
metadata: {name: dotted, namespace: prod}
spec: {type: ExternalName, externalName: dual.prod.svc.cluster.local.}
---
apiVersion: v1
kind: Service
metadata: {name: to-headless, namespace: prod}
spec: {type: ExternalName, externalName: sidecar-svc-headless.default.svc.cluster.local}
---
apiVersion: v1
kind: Service
metadata: {name: v6many, namespace: prod}
spec: {clusterIP: None, ports: [{name: http, port: 80}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: v6many-1, namespace: prod, labels: {kubernetes.io/service-name: v6many}}
addressType: IPv6
ports: [{name: http, port: 80, protocol: TCP}]
endpoints:
",
    );
    for i in 1..=40 {
        yaml.push_str(&format!("- {{addresses: [\"fd00:47::{i:x}\"]}}\n"));
    }
    yaml.push_str(
        "---
apiVersion: v1
kind: Pod
metadata: {name: six, namespace: quiet}
status: {podIPs: [{ip: \"fd00:47::99\"}]}
",
    );
    yaml
}

#[test]
fn more_cluster_shapes_are_answered_alike() {
    let dir = tempfile::tempdir().unwrap();
    let extra = dir.path().join("extra.yaml");
    std::fs::write(&extra, extra_manifest()).unwrap();
    let corefile = MAIN.replace(
        "manifests DATA",
        &format!("manifests DATA {}", extra.display()),
    );
    for (label, corefile, shuffled) in [
        ("extra", corefile.clone(), false),
        (
            "extra-loadbalance",
            corefile.replace(".:0 {", ".:0 {\n    loadbalance"),
            true,
        ),
    ] {
        let mut run = Run::new(label, &corefile, shuffled);
        let names = all_names_of(&["cluster.local."], &[PathBuf::from(DATA), extra.clone()]);
        lighter_corpus(&mut run, &names);
        run.finish();
        assert!(run.fast > 0);
    }
}

/// A client subnet option (RFC 7871) hickory cannot read makes the full parse fail (FORMERR,
/// which RFC 7871 7.1.1 asks for); `wire::parse_light` leaves every query with a client subnet
/// option to the full parse, so both answer alike.
#[test]
fn malformed_client_subnet_options_are_answered_alike() {
    let mut run = Run::new("client-subnet", MAIN, false);
    let name = QName::parse("web.prod.svc.cluster.local.");
    for (what, value) in [
        ("family 3", &[0, 3, 24, 0, 10, 36, 0][..]),
        ("empty", &[]),
        ("IPv4 /40", &[0, 1, 40, 0, 10, 36, 0, 7, 1]),
        ("address cut short", &[0, 1, 24, 0, 10]),
    ] {
        let opt = opt(1232, 0, 0, 0, &[(8, value)]);
        let q = query(3, [1, 0], &name.wire(), 1, 1, Some(&opt));
        run.check(&q, Transport::Udp, || {
            format!("{name} A, client subnet option {what}")
        });
    }
    run.finish();
}

thread_local! {
    /// Makes the next [`Handler::handle`] on this thread panic (the only way to reach the
    /// panic boundary: no input does).
    pub(super) static PANIC_NEXT: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// A panic while answering is caught at `handle_guarded`: counted, answered SERVFAIL under
/// the query's ID (nothing half-written goes out), and the next query is answered as ever.
#[test]
fn a_panic_while_answering_is_servfail_counted_and_the_handler_goes_on() {
    let h = handler(MAIN);
    let src: SocketAddr = "10.36.0.7:40000".parse().unwrap();
    let name = hickory_proto::rr::Name::from_ascii("web.prod.svc.cluster.local.").unwrap();
    let q = query(0x4242, [1, 0], &wire::name_bytes(&name), 1, 1, None);
    let panics = || {
        crate::metrics::metrics()
            .render(&[])
            .lines()
            .find_map(|l| l.strip_prefix("coredns_panics_total ")?.parse::<u64>().ok())
            .expect("coredns_panics_total")
    };
    let before = panics();
    let mut out = Vec::new();
    PANIC_NEXT.with(|p| p.set(true));
    let handled = h.handle_guarded(&q, src, Transport::Udp, &mut out);
    assert!(matches!(handled, Handled::Send), "{handled:?}");
    let reply = hickory_proto::op::Message::from_vec(&out).expect("a SERVFAIL that parses");
    assert_eq!(reply.id(), 0x4242);
    assert_eq!(
        reply.response_code(),
        hickory_proto::op::ResponseCode::ServFail
    );
    assert!(reply.answers().is_empty());
    assert!(panics() > before, "coredns_panics_total did not count it");
    let handled = h.handle_guarded(&q, src, Transport::Udp, &mut out);
    assert!(matches!(handled, Handled::Send));
    let reply = hickory_proto::op::Message::from_vec(&out).unwrap();
    assert_eq!(
        reply.response_code(),
        hickory_proto::op::ResponseCode::NoError
    );
    assert_eq!(reply.answers().len(), 1);
}

#[test]
fn the_client_pod_labels_come_from_pods_verified() {
    use crate::plugin::Phases;
    let handler = handler(
        ".:0 {
    metadata
    kubernetes cluster.local {
        manifests DATA
        pods verified
    }
}",
    );
    let kubernetes = handler.blocks[0]
        .plugins
        .iter()
        .find_map(|p| match p {
            Plugin::Kubernetes(k) => Some(k),
            _ => None,
        })
        .expect("the kubernetes plugin");
    let name = hickory_proto::rr::LowerName::from(
        hickory_proto::rr::Name::from_ascii("web.prod.svc.cluster.local.").unwrap(),
    );
    let of = |label: &str, src: &str| kubernetes.metadata(label, &name, src.parse().unwrap(), &[]);
    // `curl` in `default` has 10.36.0.7; `web-0` in `prod` has fd00:44::99 among others.
    assert_eq!(
        of("kubernetes/client-pod-name", "10.36.0.7:5353").as_deref(),
        Some("curl")
    );
    assert_eq!(
        of("kubernetes/client-namespace", "10.36.0.7:5353").as_deref(),
        Some("default")
    );
    assert_eq!(
        of("kubernetes/client-pod-name", "[fd00:44::99]:53").as_deref(),
        Some("web-0")
    );
    assert_eq!(of("kubernetes/client-pod-name", "10.9.9.9:53"), None);
}
