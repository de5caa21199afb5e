//! The `kubernetes` plugin: answers the cluster zones from the cluster view.

pub mod setup;

pub use setup::KubernetesConfig;

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{DNSClass, LowerName, Name, RData, Record, RecordType};

use super::authority::{self, At, Style};
use super::{Fast, FastReply, Outcome, Phases, Reply, Request};
use crate::cluster::PodMode;
use crate::cluster::records::{
    ClusterOptions, insecure_pod_address, reverse_address, reverse_address_wire,
};
use crate::cluster::writer::{ClusterView, ClusterWriter, Meta, ZonalEndpoint};
use crate::corefile::Fallthrough;
use crate::table::{EndpointName, NameKey, WireNode, record};
use crate::wire::{Owner, Zones};

/// As CoreDNS's kubernetes plugin: RA on answers, and ANY answered with every set.
const STYLE: Style = Style {
    recursion_available: true,
    any: true,
};

#[derive(Debug)]
pub struct Kubernetes {
    zones: Zones,
    ttl: u32,
    pods: PodMode,
    fallthrough: Fallthrough,
    view: Arc<ClusterView>,
    /// False until the source's first full list (or its startup timeout): SERVFAIL until then.
    ready: Arc<AtomicBool>,
    /// `zonal`: zone-scoped names of headless services are answered.
    zonal: bool,
}

impl Kubernetes {
    /// A plugin and the writer that keeps its records. `namespaces_listed`: see
    /// [`ClusterWriter::new`]. The plugin answers SERVFAIL until [`Self::ready_flag`] is set.
    pub fn new(config: &KubernetesConfig, namespaces_listed: bool) -> (Self, ClusterWriter) {
        Self::with_external(config, namespaces_listed, None, Vec::new())
    }

    /// [`Self::new`], with services' external addresses indexed for `k8s_external` (and
    /// headless services' endpoints when `external` is `Some(true)`), and the server's own
    /// addresses (`local_ips`), which the apex NS records follow.
    pub fn with_external(
        config: &KubernetesConfig,
        namespaces_listed: bool,
        external: Option<bool>,
        local_ips: Vec<IpAddr>,
    ) -> (Self, ClusterWriter) {
        let opts = ClusterOptions {
            zones: config.zones.iter().map(|z| Name::from(z.clone())).collect(),
            ttl: config.ttl,
            pods: config.pods,
            namespaces: config.namespaces.clone(),
            endpoint_pod_names: config.endpoint_pod_names,
            noendpoints: config.noendpoints,
            ignore_empty_service: config.ignore_empty_service,
            external,
            local_ips,
            zonal: config.zonal,
        };
        let writer = ClusterWriter::new(opts, namespaces_listed);
        let plugin = Self {
            zones: Zones::new(&config.zones),
            ttl: config.ttl,
            pods: config.pods,
            fallthrough: config.fallthrough.clone(),
            view: writer.view(),
            ready: Arc::new(AtomicBool::new(false)),
            zonal: config.zonal,
        };
        (plugin, writer)
    }

    /// What readers see of the cluster.
    pub fn view(&self) -> Arc<ClusterView> {
        Arc::clone(&self.view)
    }

    /// The TTL of its answers.
    pub fn ttl(&self) -> u32 {
        self.ttl
    }

    /// Under `zonal`, what a name of the shape `TOPOLOGY-ZONE.pin|prefer._zone.SERVICE.
    /// NAMESPACE.svc.ZONE` says, with the zone it is in.
    fn zonal_name(&self, name: &LowerName) -> Option<(LowerName, ZonalName)> {
        if !self.zonal {
            return None;
        }
        let zone = self.zones.longest(name)?;
        let labels: Vec<String> = name
            .iter()
            .map(|l| String::from_utf8_lossy(l).into_owned())
            .collect();
        let relative = labels.len().checked_sub(zone.num_labels() as usize)?;
        let rel = &labels[..relative];
        let n = rel.len();
        if n < 6 || rel[n - 1] != "svc" || rel[n - 4] != "_zone" {
            return None;
        }
        let prefer = match rel[n - 5].as_str() {
            "pin" => false,
            "prefer" => true,
            _ => return None,
        };
        Some((
            zone.clone(),
            ZonalName {
                topology: rel[..n - 5].join("."),
                prefer,
                namespace: rel[n - 2].clone(),
                service: rel[n - 3].clone(),
            },
        ))
    }

    /// `zonal`: `TOPOLOGY-ZONE.pin|prefer._zone.SERVICE.NAMESPACE.svc.ZONE` for a headless
    /// service, as CoreDNS answers it: A, AAAA and SRV (with its targets' addresses) of the
    /// ready endpoints whose EndpointSlice zone is TOPOLOGY-ZONE (every label before the
    /// directive, joined); with none, `pin` is NODATA and `prefer` takes every endpoint. Other
    /// types are NODATA. `None` for anything else (a service that is not headless, or none:
    /// NXDOMAIN as for any name not found).
    fn zonal(&self, meta: &Meta, req: &Request) -> Option<Reply> {
        let (
            zone,
            ZonalName {
                topology,
                prefer,
                namespace,
                service,
            },
        ) = self.zonal_name(&req.lower)?;
        let endpoints = self.view.zonal(&namespace, &service)?;
        let mut chosen: Vec<&ZonalEndpoint> = endpoints
            .iter()
            .filter(|e| e.zone.as_deref() == Some(topology.as_str()))
            .collect();
        if chosen.is_empty() && prefer {
            chosen = endpoints.iter().collect();
        }
        let ttl = self.ttl;
        let mut reply = Reply::authoritative(ResponseCode::NoError);
        let address = |owner: &Name, ip: IpAddr| {
            let data = match ip {
                IpAddr::V4(v4) => RData::A(hickory_proto::rr::rdata::A(v4)),
                IpAddr::V6(v6) => RData::AAAA(hickory_proto::rr::rdata::AAAA(v6)),
            };
            Record::from_rdata(owner.clone(), ttl, data)
        };
        match req.qtype {
            RecordType::A | RecordType::AAAA => {
                let v4 = req.qtype == RecordType::A;
                for e in chosen.iter().filter(|e| e.ip.is_ipv4() == v4) {
                    reply
                        .answers
                        .push_record(Owner::Question, &address(&req.name, e.ip));
                }
            }
            RecordType::SRV => {
                let base = Name::from_labels([service.as_bytes(), namespace.as_bytes(), b"svc"])
                    .ok()?
                    .append_domain(&Name::from(zone.clone()))
                    .ok()?;
                let entries: Vec<(&ZonalEndpoint, &crate::cluster::Port)> = chosen
                    .iter()
                    .flat_map(|e| e.ports.iter().map(move |p| (*e, p)))
                    .collect();
                // As CoreDNS weighs SRV: 100 / entries, at least 1.
                let weight = ((100 / entries.len().max(1)) as u16).max(1);
                for (e, port) in entries {
                    let Ok(target) = Name::from_labels([e.label.as_bytes()])
                        .and_then(|l| l.append_domain(&base))
                    else {
                        continue;
                    };
                    let srv =
                        hickory_proto::rr::rdata::SRV::new(0, weight, port.port, target.clone());
                    reply.answers.push_record(
                        Owner::Question,
                        &Record::from_rdata(req.name.clone(), ttl, RData::SRV(srv)),
                    );
                    let glue = address(&target, e.ip);
                    reply
                        .additional
                        .push_record(Owner::Name(glue.name()), &glue);
                }
            }
            _ => {}
        }
        if reply.answers.is_empty() {
            return Some(negative(meta, &req.lower, ResponseCode::NoError));
        }
        reply.recursion_available = STYLE.recursion_available;
        Some(reply)
    }

    /// The flag a source sets once it has synced.
    pub fn ready_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.ready)
    }

    /// `autopath @kubernetes`: the search path of the pod at `src` (`pods verified` only),
    /// for a name in these zones: its namespace's, the cluster's, `host`'s domains, then "".
    pub fn search_path(
        &self,
        src: IpAddr,
        name: &LowerName,
        host: &[String],
    ) -> Option<Vec<String>> {
        let zone = self.zones.longest(name)?;
        if self.pods != PodMode::Verified {
            return None;
        }
        let ns = self.view.pod_namespace(src)?;
        let zone = zone.to_string();
        let mut search = if zone == "." {
            vec![format!("{ns}.svc."), "svc.".to_string(), ".".to_string()]
        } else {
            vec![format!("{ns}.svc.{zone}"), format!("svc.{zone}"), zone]
        };
        search.extend(host.iter().cloned());
        search.push(String::new());
        Some(search)
    }

    /// The answer at an existing name: an endpoint's, or what the node holds (see
    /// [`authority::answer`]); NODATA with the zone's SOA when it has nothing of the type.
    fn answer<'a>(
        &self,
        found: Found<'a>,
        meta: &Meta,
        req: &Request,
        lookup: &dyn Fn(&LowerName) -> Option<Found<'a>>,
    ) -> Reply {
        let answered = match found {
            Found::Endpoint(endpoint) => self.endpoint_answer(&endpoint, req),
            Found::Node(node) => {
                let at = |name: &LowerName| {
                    lookup(name).map(|found| match found {
                        Found::Node(node) => At::Node(node),
                        Found::Endpoint(endpoint) => {
                            let key = NameKey::from(name);
                            let (bodies, count) =
                                endpoint_bodies(&endpoint, req.qtype, self.ttl, key.as_bytes());
                            At::Bodies(bodies, count)
                        }
                    })
                };
                authority::answer(node, req.qtype, STYLE, &self.zones, &at)
            }
        };
        answered.unwrap_or_else(|| negative(meta, &req.lower, ResponseCode::NoError))
    }

    /// An endpoint's name: its addresses, or its SRV records (with their addresses as
    /// additional records); every one of them for ANY.
    fn endpoint_answer(&self, endpoint: &EndpointName<'_>, req: &Request) -> Option<Reply> {
        let mut reply = Reply::authoritative(ResponseCode::NoError);
        let target = NameKey::from(&req.lower);
        let types = match req.qtype {
            RecordType::ANY => &[RecordType::A, RecordType::AAAA, RecordType::SRV][..],
            qtype => &[qtype][..],
        };
        for &qtype in types {
            let (bodies, count) = endpoint_bodies(endpoint, qtype, self.ttl, target.as_bytes());
            reply.answers.push_bodies(Owner::Question, &bodies, count);
        }
        if req.qtype == RecordType::SRV && !reply.answers.is_empty() {
            let (bodies, count) = endpoint_additional(endpoint, self.ttl);
            reply
                .additional
                .push_bodies(Owner::Question, &bodies, count);
        }
        if reply.answers.is_empty() {
            return None;
        }
        reply.recursion_available = true;
        Some(reply)
    }

    /// A reverse name: the PTR targets of the address it spells.
    fn reverse(&self, meta: &Meta, req: &Request) -> Option<Reply> {
        let ip = reverse_address(&req.name)?;
        let ptrs = self.view.ptrs();
        let targets: Vec<_> = ptrs.get(ip)?.collect();
        if !matches!(req.qtype, RecordType::PTR | RecordType::ANY) {
            return Some(negative(meta, &req.lower, ResponseCode::NoError));
        }
        let mut bodies = Vec::with_capacity(targets.iter().map(|t| 10 + t.len()).sum());
        for target in &targets {
            ptr_body(&mut bodies, self.ttl, target);
        }
        let mut reply = Reply::authoritative(ResponseCode::NoError);
        reply.recursion_available = true;
        reply
            .answers
            .push_bodies(Owner::Question, &bodies, targets.len() as u16);
        Some(reply)
    }

    /// `A-B-C-D.NS.pod.ZONE` under `pods insecure`: the address written in the name.
    fn insecure_pod(&self, meta: &Meta, req: &Request) -> Option<Reply> {
        if self.pods != PodMode::Insecure {
            return None;
        }
        let zone = self.zones.longest(&req.lower)?;
        let name = Name::from(req.lower.clone());
        if name.num_labels() != zone.num_labels() + 3 {
            return None;
        }
        let labels: Vec<&[u8]> = name.iter().collect();
        let (pod, ns, kind) = (labels[0], labels[1], labels[2]);
        let ns = std::str::from_utf8(ns).ok()?;
        if kind != b"pod" || !meta.namespaces.contains(ns) {
            return None;
        }
        let ip = insecure_pod_address(std::str::from_utf8(pod).ok()?)?;
        let rdata = match (ip, req.qtype) {
            (std::net::IpAddr::V4(v4), RecordType::A | RecordType::ANY) => {
                RData::A(hickory_proto::rr::rdata::A(v4))
            }
            (std::net::IpAddr::V6(v6), RecordType::AAAA | RecordType::ANY) => {
                RData::AAAA(hickory_proto::rr::rdata::AAAA(v6))
            }
            _ => return Some(negative(meta, &req.lower, ResponseCode::NoError)),
        };
        let mut reply = Reply::authoritative(ResponseCode::NoError);
        reply.recursion_available = true;
        reply
            .answers
            .push_record(Owner::Question, &record(&req.name, self.ttl, rdata));
        Some(reply)
    }
}

impl Phases for Kubernetes {
    const ANSWERS: bool = true;

    /// CoreDNS's `kubernetes/...` labels: the client pod's namespace (`pods verified`), and
    /// what the question's name says (kind, namespace, service, endpoint, port, protocol).
    fn metadata(
        &self,
        label: &str,
        name: &LowerName,
        src: std::net::SocketAddr,
        _query: &[u8],
    ) -> Option<String> {
        match label.strip_prefix("kubernetes/")? {
            "client-namespace" => self
                .view
                .pod_namespace(src.ip().to_canonical())
                .map(|ns| ns.to_string()),
            "client-pod-name" => self
                .view
                .pod_name(src.ip().to_canonical())
                .map(|name| name.to_string()),
            // Under `zonal`: the topology zone a zone-scoped name asks for, else empty.
            "zone" if self.zonal && self.zones.holds(name) => Some(
                self.zonal_name(name)
                    .map(|(_, z)| z.topology)
                    .unwrap_or_default(),
            ),
            _ => {
                let zone = self.zones.longest(name)?;
                crate::plugin::metadata::kubernetes_label(label, name, zone, self.zonal)
            }
        }
    }

    fn serve(&self, req: &Request) -> Outcome {
        if !self.zones.holds(&req.lower) {
            return Outcome::Next;
        }
        if !self.ready.load(Ordering::Relaxed) {
            let mut reply = Reply::authoritative(ResponseCode::ServFail);
            reply.authoritative = false;
            return Outcome::Reply(reply);
        }
        let meta = self.view.meta();
        let names = self.view.names();
        let lookup = |n: &LowerName| find(&names, NameKey::from(n).as_bytes());
        let found = match lookup(&req.lower) {
            Some(found) => Some(self.answer(found, &meta, req, &lookup)),
            None => self
                .reverse(&meta, req)
                .or_else(|| self.insecure_pod(&meta, req))
                .or_else(|| self.zonal(&meta, req)),
        };
        // Past `startup_timeout` without a first sync, a name not found may yet exist:
        // SERVFAIL with the SOA rather than an NXDOMAIN clients would cache, as CoreDNS answers.
        let unsynced = !self.view.synced();
        let reply = match found {
            Some(mut reply) => {
                if unsynced && reply.rcode == ResponseCode::NXDomain {
                    reply.rcode = ResponseCode::ServFail;
                }
                reply
            }
            None if self.fallthrough.through(&req.lower) => return Outcome::Next,
            None if unsynced => negative(&meta, &req.lower, ResponseCode::ServFail),
            None => negative(&meta, &req.lower, ResponseCode::NXDomain),
        };
        Outcome::Reply(respelled(reply, req, &self.zones))
    }

    /// [`Self::serve`] for the common cases, without allocating: a set at a name, NODATA,
    /// NXDOMAIN, and PTRs; records written after the question in `out`. Endpoint names,
    /// CNAMEs to follow, ANY, pod names and a source not yet synced go the full way.
    #[inline]
    fn serve_fast(&self, query: &crate::wire::LightQuery, out: &mut Vec<u8>) -> Fast {
        let Some(zone) = self.zones.longest_wire(query.key()) else {
            return Fast::Next;
        };
        let zone_len = zone.len();
        let fast = self.serve_fast_lowercase(query, zone, out);
        // A question spelling the zone with capitals gets that spelling in its answer's names,
        // written over the lowercase ones (the question is at the start of `out`).
        if let Fast::Answered(reply) = &fast {
            // The question's spelling of the zone: the zone's bytes at the end of its name,
            // compared whole with their lowercase (the key's).
            let key = query.key();
            let from = crate::wire::HEADER_LEN + key.len() - zone_len;
            if let Some(spelled) = out.get(from..from + zone_len)
                && spelled != &key[key.len() - zone_len..]
            {
                let spelled = spelled.to_vec();
                let count = reply.counts.iter().map(|&c| usize::from(c)).sum();
                respell_records(out, query.question_end, count, &spelled);
            }
        }
        fast
    }
}

impl Kubernetes {
    /// [`Phases::serve_fast`] with every name written in lowercase.
    #[inline]
    fn serve_fast_lowercase(
        &self,
        query: &crate::wire::LightQuery,
        zone: &[u8],
        out: &mut Vec<u8>,
    ) -> Fast {
        let key = query.key();
        if !self.ready.load(Ordering::Relaxed)
            || !self.view.synced()
            || query.qtype == u16::from(RecordType::ANY)
        {
            return Fast::Slow;
        }
        let names = self.view.names();
        let meta = self.view.meta();
        let answered = |counts: [u16; 3]| {
            Fast::Answered(FastReply {
                rcode: ResponseCode::NoError,
                authoritative: true,
                recursion_available: true,
                counts,
            })
        };
        match find(&names, key) {
            // An endpoint's name, kept in its service's node.
            Some(Found::Endpoint(_)) => return Fast::Slow,
            Some(Found::Node(node)) => {
                let soa = || meta.apex_for_wire(key).map(|a| &a.soa_wire[..]);
                return authority::answer_fast(node, query.qtype, STYLE, soa, out);
            }
            None => {}
        }
        if let Some(ip) = reverse_address_wire(key) {
            let ptrs = self.view.ptrs();
            if let Some(targets) = ptrs.get(ip) {
                if query.qtype != u16::from(RecordType::PTR) {
                    return negative_fast(&meta, key, ResponseCode::NoError, out);
                }
                let mut count = 0;
                for target in targets {
                    out.extend_from_slice(&[0xC0, 0x0C]);
                    ptr_body(out, self.ttl, &target);
                    count += 1;
                }
                return answered([count, 0, 0]);
            }
        }
        if self.pods == PodMode::Insecure
            && crate::wire::label_count(key) == crate::wire::label_count(zone) + 3
        {
            return Fast::Slow;
        }
        // `zonal`: a name not in the table may be a zone-scoped one, answered the full way.
        if self.zonal && crate::wire::label_count(key) >= crate::wire::label_count(zone) + 6 {
            return Fast::Slow;
        }
        if self.fallthrough.through_wire(key) {
            Fast::Next
        } else {
            negative_fast(&meta, key, ResponseCode::NXDomain, out)
        }
    }
}

/// A zone-scoped name's parts (`zonal`).
struct ZonalName {
    /// Every label before the directive, joined.
    topology: String,
    /// `prefer` (every endpoint when none is in the zone), else `pin`.
    prefer: bool,
    namespace: String,
    service: String,
}

/// What is at a name: a node, or an endpoint's name kept in its service's node.
#[derive(Clone, Copy)]
enum Found<'a> {
    Node(&'a WireNode),
    Endpoint(EndpointName<'a>),
}

/// The name with wire-format lowercase `key`: its node, or else the endpoint its first label
/// names under its parent (a service).
fn find<'a>(
    names: &'a papaya::HashMapRef<
        '_,
        NameKey,
        WireNode,
        std::hash::RandomState,
        papaya::LocalGuard<'_>,
    >,
    key: &[u8],
) -> Option<Found<'a>> {
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

/// One record body: type, class IN, TTL, length, data.
fn push_body(out: &mut Vec<u8>, rtype: RecordType, ttl: u32, data: &[&[u8]]) {
    let len: usize = data.iter().map(|d| d.len()).sum();
    out.extend_from_slice(&u16::from(rtype).to_be_bytes());
    out.extend_from_slice(&u16::from(DNSClass::IN).to_be_bytes());
    out.extend_from_slice(&ttl.to_be_bytes());
    out.extend_from_slice(&(len as u16).to_be_bytes());
    for d in data {
        out.extend_from_slice(d);
    }
}

/// An endpoint name's records of `qtype`, as bodies; `target` is the name itself (lowercase,
/// wire format), the target of its SRV records.
fn endpoint_bodies(
    endpoint: &EndpointName<'_>,
    qtype: RecordType,
    ttl: u32,
    target: &[u8],
) -> (Vec<u8>, u16) {
    let mut out = Vec::new();
    let mut count = 0;
    match qtype {
        RecordType::A | RecordType::AAAA => {
            for (ip, _) in endpoint.addresses() {
                match (ip, qtype) {
                    (IpAddr::V4(v4), RecordType::A) => {
                        push_body(&mut out, qtype, ttl, &[&v4.octets()])
                    }
                    (IpAddr::V6(v6), RecordType::AAAA) => {
                        push_body(&mut out, qtype, ttl, &[&v6.octets()])
                    }
                    _ => continue,
                }
                count += 1;
            }
        }
        RecordType::SRV => {
            for (weight, port) in endpoint.srvs() {
                let fixed = [[0, 0], weight.to_be_bytes(), port.to_be_bytes()].concat();
                push_body(&mut out, qtype, ttl, &[&fixed, target]);
                count += 1;
            }
        }
        _ => {}
    }
    (out, count)
}

/// The addresses that go with an endpoint name's SRV answer, as bodies owned by the name.
fn endpoint_additional(endpoint: &EndpointName<'_>, ttl: u32) -> (Vec<u8>, u16) {
    let mut out = Vec::new();
    let mut count = 0;
    for (ip, additional) in endpoint.addresses() {
        if !additional {
            continue;
        }
        match ip {
            IpAddr::V4(v4) => push_body(&mut out, RecordType::A, ttl, &[&v4.octets()]),
            IpAddr::V6(v6) => push_body(&mut out, RecordType::AAAA, ttl, &[&v6.octets()]),
        }
        count += 1;
    }
    (out, count)
}

/// A PTR record's body (see [`crate::wire::body`]).
fn ptr_body(out: &mut Vec<u8>, ttl: u32, target: &crate::table::PtrTarget<'_>) {
    push_body(out, RecordType::PTR, ttl, &target.parts());
}

/// [`negative`] written after the question in `out`.
fn negative_fast(meta: &Meta, key: &[u8], rcode: ResponseCode, out: &mut Vec<u8>) -> Fast {
    let soa = meta.apex_for_wire(key).map(|a| &a.soa_wire[..]);
    authority::negative_fast(soa, rcode, out)
}

/// NXDOMAIN or NODATA, with the zone's SOA in the authority section.
/// `reply` with the zone written as the question spells it wherever a name in it ends in the
/// zone (owners, SOA, SRV and NS targets), as CoreDNS answers from the question's spelling of
/// the zone. Nothing is copied when the question spells the zone in lowercase.
fn respelled(mut reply: Reply, req: &Request, zones: &Zones) -> Reply {
    let Some(zone) = zones.longest(&req.lower) else {
        return reply;
    };
    // The question's labels that spell the zone, looked at without allocating: most
    // questions spell it in lowercase and leave here.
    let skip = req
        .name
        .iter()
        .count()
        .saturating_sub(usize::from(zone.num_labels()));
    if !req
        .name
        .iter()
        .skip(skip)
        .any(|l| l.iter().any(u8::is_ascii_uppercase))
    {
        return reply;
    }
    let mut spelled = Vec::new();
    for l in req.name.iter().skip(skip) {
        spelled.push(l.len() as u8);
        spelled.extend_from_slice(l);
    }
    spelled.push(0);
    // The sections after a question, as one message, patched in place (the same lengths).
    let sections = [&reply.answers, &reply.authority, &reply.additional];
    let mut message = vec![0, 0, 0x80, 0, 0, 1];
    for s in sections {
        message.extend_from_slice(&s.count.to_be_bytes());
    }
    message.extend(crate::wire::name_bytes(&req.name));
    message.extend_from_slice(&[0, 1, 0, 1]);
    let start = message.len();
    for s in sections {
        message.extend_from_slice(&s.bytes);
    }
    let count = sections.iter().map(|s| usize::from(s.count)).sum();
    respell_records(&mut message, start, count, &spelled);
    let mut at = start;
    for s in [
        &mut reply.answers,
        &mut reply.authority,
        &mut reply.additional,
    ] {
        let len = s.bytes.len();
        s.bytes.copy_from_slice(&message[at..at + len]);
        at += len;
    }
    reply
}

/// [`respell_name`] over the `count` records from `at` in `message`: their owners and the
/// names in SOA, NS, CNAME, PTR, DNAME, MX and SRV data.
fn respell_records(message: &mut [u8], mut at: usize, count: usize, spelled: &[u8]) {
    for _ in 0..count {
        let Some(fixed) = respell_name(message, at, spelled) else {
            return;
        };
        let Some(header) = message.get(fixed..fixed + 10) else {
            return;
        };
        let rtype = u16::from_be_bytes([header[0], header[1]]);
        let data = fixed + 10;
        at = data + usize::from(u16::from_be_bytes([header[8], header[9]]));
        let first = match rtype {
            6 | 2 | 5 | 12 | 39 => 0,
            15 => 2,
            33 => 6,
            _ => continue,
        };
        let end = respell_name(message, data + first, spelled);
        // SOA: RNAME after MNAME.
        if rtype == 6
            && let Some(end) = end
        {
            respell_name(message, end, spelled);
        }
    }
}

/// Writes `spelled` (a zone in wire format) over the end of the name at `at` when the name ends
/// in that zone (letter case aside); returns where the name ends. A name ending in a pointer
/// (the question's, already spelled) is left as it is.
fn respell_name(message: &mut [u8], at: usize, spelled: &[u8]) -> Option<usize> {
    let mut end = at;
    loop {
        let len = usize::from(*message.get(end)?);
        if len & 0xC0 == 0xC0 {
            return Some(end + 2);
        }
        end += 1 + len;
        if len == 0 {
            break;
        }
    }
    let name = message.get_mut(at..end)?;
    // The zone's labels start at a label boundary of the name.
    let mut boundary = 0;
    while boundary < name.len() {
        if name.len() - boundary == spelled.len() {
            if name[boundary..].eq_ignore_ascii_case(spelled) {
                name[boundary..].copy_from_slice(spelled);
            }
            break;
        }
        boundary += 1 + usize::from(name[boundary]);
    }
    Some(end)
}

fn negative(meta: &Meta, name: &LowerName, rcode: ResponseCode) -> Reply {
    authority::negative(meta.apex_for(name).map(|a| &a.soa_wire[..]), rcode)
}

#[cfg(test)]
mod tests {
    use crate::plugin::testing::Served;

    /// A cluster in a manifest file, served from `.:0 { kubernetes cluster.local 10.0.0.0/8
    /// 2001:db8::/32 }`.
    fn served(manifest: &str) -> (Served, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cluster.yaml");
        std::fs::write(&path, manifest).unwrap();
        let served = Served::new(&format!(
            ".:0 {{\n kubernetes cluster.local in-addr.arpa ip6.arpa {{\n  manifests {}\n }}\n}}",
            path.display()
        ));
        (served, dir)
    }

    #[test]
    fn an_ipv6_endpoint_ending_in_double_colon_is_named_with_a_trailing_zero() {
        let (s, _dir) = served(
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: prod}\n---\n\
             apiVersion: v1\nkind: Service\nmetadata: {name: db, namespace: prod}\n\
             spec: {clusterIP: None, ports: [{name: pg, port: 5432}]}\n---\n\
             apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
             metadata: {name: db-1, namespace: prod, labels: {kubernetes.io/service-name: db}}\n\
             addressType: IPv6\n\
             endpoints: [{addresses: [\"2001:db8:3333:4444:5555:6666::\"], conditions: {ready: true}}]\n\
             ports: [{name: pg, port: 5432}]\n",
        );
        let name = "2001-db8-3333-4444-5555-6666--0.db.prod.svc.cluster.local.";
        s.expect(
            &format!("{name} AAAA"),
            &format!(";; NOERROR aa rd ra\n{name} 5 IN AAAA 2001:db8:3333:4444:5555:6666::"),
        );
        s.expect(
            "_pg._tcp.db.prod.svc.cluster.local. SRV",
            &format!(
                ";; NOERROR aa rd ra\n_pg._tcp.db.prod.svc.cluster.local. 5 IN SRV 0 100 5432 {name}\n\
                 ;; additional\n{name} 5 IN AAAA 2001:db8:3333:4444:5555:6666::"
            ),
        );
        let reverse = "0.0.0.0.0.0.0.0.6.6.6.6.5.5.5.5.4.4.4.4.3.3.3.3.8.b.d.0.1.0.0.2.ip6.arpa.";
        s.expect(
            &format!("{reverse} PTR"),
            &format!(";; NOERROR aa rd ra\n{reverse} 5 IN PTR {name}"),
        );
    }

    #[test]
    fn an_endpoint_slice_without_its_service_still_answers_ptr() {
        let (s, _dir) = served(
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: prod}\n---\n\
             apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
             metadata: {name: ghost-1, namespace: prod, labels: {kubernetes.io/service-name: ghost}}\n\
             addressType: IPv4\n\
             endpoints: [{addresses: [10.44.9.9], conditions: {ready: true}}]\n",
        );
        s.expect(
            "9.9.44.10.in-addr.arpa. PTR",
            ";; NOERROR aa rd ra\n9.9.44.10.in-addr.arpa. 5 IN PTR 10-44-9-9.ghost.prod.svc.cluster.local.",
        );
        // The service's own names do not exist until it does.
        let nx = s.ask("ghost.prod.svc.cluster.local. A");
        assert!(nx.starts_with(";; NXDOMAIN"), "{nx}");
    }
}

#[cfg(test)]
mod spelling {
    use crate::plugin::testing::Served;

    #[test]
    fn the_questions_spelling_of_the_zone_is_kept_in_soa_and_srv_targets() {
        let s = Served::new(".:0 {\n kubernetes cluster.local {\n  manifests DATA\n }\n}");
        let soa = |zone: &str| format!("{zone} 5 IN SOA ns.dns.{zone} hostmaster.{zone}");
        let nx = s.ask("nope.prod.svc.Cluster.LOCAL. A");
        assert!(nx.starts_with(";; NXDOMAIN aa rd"), "{nx}");
        assert!(nx.contains(&soa("Cluster.LOCAL.")), "{nx}");
        let srv = s.ask("_http._tcp.web.prod.svc.Cluster.Local. SRV");
        assert!(
            srv.contains("IN SRV 0 50 80 web.prod.svc.Cluster.Local."),
            "{srv}"
        );
        assert!(
            srv.contains("\nweb.prod.svc.Cluster.Local. 5 IN A 10.96.12.34"),
            "{srv}"
        );
        // The labels before the zone are the cluster's own (lowercase), as CoreDNS writes them.
        let upper = s.ask("_HTTP._TCP.WEB.PROD.SVC.cluster.local. SRV");
        assert!(upper.contains("80 web.prod.svc.cluster.local."), "{upper}");
        // Both paths spell it alike (`ask` compares them byte for byte).
        assert!(s.fast("web.prod.svc.cluster.local. A"));
        assert!(s.fast("web.prod.svc.Cluster.local. A"));
        assert!(s.fast("nope.prod.svc.Cluster.LOCAL. A"));
    }
}

#[cfg(test)]
mod apex_ns {
    use std::net::IpAddr;

    use hickory_proto::rr::{Name, RecordType};

    use super::Kubernetes;
    use crate::plugin::kubernetes::setup::KubernetesConfig;
    use crate::plugin::testing::{DATA, reply_text, settings};
    use crate::plugin::{Outcome, Phases, Request};
    use crate::source::Source;
    use crate::source::manifests::ManifestSource;

    /// The plugin over the test cluster, with `local` as the server's own addresses: its
    /// answer to `question` (`NAME TYPE`) as zone text, serials taken out.
    fn ask(local: &[&str], question: &str) -> String {
        let config: KubernetesConfig = settings(&format!(
            "kubernetes cluster.local in-addr.arpa {{\n manifests {DATA}\n}}"
        ))
        .unwrap();
        let ips: Vec<IpAddr> = local.iter().map(|ip| ip.parse().unwrap()).collect();
        let (plugin, mut writer) = Kubernetes::with_external(&config, false, None, ips);
        let mut source = ManifestSource {
            paths: config.manifests.clone(),
            reload: std::time::Duration::ZERO,
        };
        source.load(&mut writer).unwrap();
        plugin
            .ready_flag()
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let (name, qtype) = question.split_once(' ').unwrap();
        let name = Name::from_ascii(name).unwrap();
        let qtype: RecordType = qtype.parse().unwrap();
        let Outcome::Reply(reply) = plugin.serve(&Request::new(name.clone(), qtype)) else {
            panic!("{question}: not answered");
        };
        let text = reply_text(&name, qtype, &reply);
        // The SOA serial is the time of the last change.
        text.lines()
            .map(|l| match l.find(" IN SOA ") {
                Some(_) => l.split(' ').take(6).collect::<Vec<_>>().join(" "),
                None => l.to_string(),
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn the_apex_ns_names_the_services_whose_endpoints_hold_the_servers_addresses() {
        for (local, question, want) in [
            // No endpoint at the server's address: ns.dns.ZONE with the server's own addresses.
            (
                &["192.0.2.53", "2001:db8::53"][..],
                "cluster.local. NS",
                ";; NOERROR aa\n\
                 cluster.local. 5 IN NS ns.dns.cluster.local.\n\
                 ;; additional\n\
                 ns.dns.cluster.local. 5 IN A 192.0.2.53\n\
                 ns.dns.cluster.local. 5 IN AAAA 2001:db8::53",
            ),
            (
                &["192.0.2.53", "2001:db8::53"][..],
                "ns.dns.cluster.local. A",
                ";; NOERROR aa\nns.dns.cluster.local. 5 IN A 192.0.2.53",
            ),
            // The server is an endpoint of a ClusterIP service: its name, by its cluster IPs.
            (
                &["10.44.1.1"][..],
                "cluster.local. NS",
                ";; NOERROR aa\n\
                 cluster.local. 5 IN NS web.prod.svc.cluster.local.\n\
                 ;; additional\n\
                 web.prod.svc.cluster.local. 5 IN A 10.96.12.34\n\
                 web.prod.svc.cluster.local. 5 IN AAAA fd00:10:96::1234",
            ),
            (
                &["10.44.1.1"][..],
                "ns.dns.cluster.local. AAAA",
                ";; NOERROR aa\nns.dns.cluster.local. 5 IN AAAA fd00:10:96::1234",
            ),
            // Of a headless service: each ready endpoint of its slice, by name.
            (
                &["10.44.0.10"][..],
                "cluster.local. NS",
                ";; NOERROR aa\n\
                 cluster.local. 5 IN NS db-0.db.prod.svc.cluster.local.\n\
                 cluster.local. 5 IN NS db-1.db.prod.svc.cluster.local.\n\
                 ;; additional\n\
                 db-0.db.prod.svc.cluster.local. 5 IN A 10.44.0.10\n\
                 db-1.db.prod.svc.cluster.local. 5 IN A 10.44.0.11",
            ),
            // The reverse zones' apex too, under their own name (as CoreDNS writes it).
            (
                &["10.44.1.1"][..],
                "in-addr.arpa. NS",
                ";; NOERROR aa\n\
                 in-addr.arpa. 5 IN NS web.prod.svc.in-addr.arpa.\n\
                 ;; additional\n\
                 web.prod.svc.in-addr.arpa. 5 IN A 10.96.12.34\n\
                 web.prod.svc.in-addr.arpa. 5 IN AAAA fd00:10:96::1234",
            ),
            // No address of its own (bound to loopback only): no NS, NODATA.
            (
                &[][..],
                "cluster.local. NS",
                ";; NOERROR aa\n;; authority\n\
                 cluster.local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local.",
            ),
        ] {
            assert_eq!(ask(local, question), want, "{local:?} {question}");
        }
    }
}

#[cfg(test)]
mod zonal {
    use crate::plugin::testing::Served;

    const CLUSTER: &str = "
apiVersion: v1
kind: Namespace
metadata: {name: prod}
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: prod}
spec: {clusterIP: None, ports: [{name: mysql, port: 3306}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: db-1, namespace: prod, labels: {kubernetes.io/service-name: db}}
addressType: IPv4
endpoints:
- {addresses: [10.44.0.10], hostname: db-0, zone: us-west-2a}
- {addresses: [10.44.0.11], hostname: db-1, zone: us-west-2b}
- {addresses: [10.44.0.12], hostname: db-2}
- {addresses: [10.44.0.13], hostname: db-3, zone: corp.example.com}
- {addresses: [10.44.0.14], hostname: db-4, zone: us-west-2a, conditions: {ready: false}}
ports: [{name: mysql, port: 3306, protocol: TCP}]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: prod}
spec: {clusterIP: 10.96.0.80, ports: [{name: http, port: 80}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, namespace: prod, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
endpoints:
- {addresses: [10.44.1.1], zone: us-west-2a}
ports: [{name: http, port: 8080, protocol: TCP}]
";

    fn served(options: &str) -> (Served, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cluster.yaml");
        std::fs::write(&path, CLUSTER).unwrap();
        let served = Served::new(&format!(
            ".:0 {{\n kubernetes cluster.local {{\n  manifests {}\n{options}\n }}\n}}",
            path.display()
        ));
        (served, dir)
    }

    const SOA: &str = "cluster.local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. SERIAL 7200 1800 86400 5";

    #[test]
    fn zone_scoped_names_of_headless_services_answer_as_coredns_documents_them() {
        let (s, _dir) = served("  zonal");
        let name = |zone: &str, how: &str, svc: &str| {
            format!("{zone}.{how}._zone.{svc}.prod.svc.cluster.local.")
        };
        let nodata = format!(";; NOERROR aa rd\n;; authority\n{SOA}");
        let nx = format!(";; NXDOMAIN aa rd\n;; authority\n{SOA}");
        let a = |owner: &str, ips: &[&str]| {
            let mut out = ";; NOERROR aa rd ra".to_string();
            for ip in ips {
                out.push_str(&format!("\n{owner} 5 IN A {ip}"));
            }
            out
        };
        let pin_a = name("us-west-2a", "pin", "db");
        let prefer_c = name("us-west-2c", "prefer", "db");
        let dotted = name("corp.example.com", "pin", "db");
        for (question, want) in [
            // The ready endpoints in the zone (not the one not ready).
            (format!("{pin_a} A"), a(&pin_a, &["10.44.0.10"])),
            (
                format!("{} A", name("us-west-2a", "prefer", "db")),
                a(&name("us-west-2a", "prefer", "db"), &["10.44.0.10"]),
            ),
            // A zone no endpoint is in: `pin` is NODATA, `prefer` every endpoint.
            (
                format!("{} A", name("us-west-2c", "pin", "db")),
                nodata.clone(),
            ),
            (
                format!("{prefer_c} A"),
                a(
                    &prefer_c,
                    &["10.44.0.10", "10.44.0.11", "10.44.0.12", "10.44.0.13"],
                ),
            ),
            // A zone value with dots: every label before the directive.
            (format!("{dotted} A"), a(&dotted, &["10.44.0.13"])),
            // SRV, filtered the same way, with its targets' addresses.
            (
                format!("{pin_a} SRV"),
                format!(
                    ";; NOERROR aa rd ra\n{pin_a} 5 IN SRV 0 100 3306 db-0.db.prod.svc.cluster.local.\n\
                     ;; additional\ndb-0.db.prod.svc.cluster.local. 5 IN A 10.44.0.10"
                ),
            ),
            // Other types, and the other family: NODATA.
            (format!("{pin_a} TXT"), nodata.clone()),
            (format!("{pin_a} AAAA"), nodata.clone()),
            // Not headless, no such service, an unknown directive: NXDOMAIN.
            (
                format!("{} A", name("us-west-2a", "pin", "web")),
                nx.clone(),
            ),
            (
                format!("{} A", name("us-west-2a", "pin", "nope")),
                nx.clone(),
            ),
            (
                format!("{} A", name("us-west-2a", "near", "db")),
                nx.clone(),
            ),
            // The service's own name is untouched.
            (
                "db.prod.svc.cluster.local. A".to_string(),
                a(
                    "db.prod.svc.cluster.local.",
                    &["10.44.0.10", "10.44.0.11", "10.44.0.12", "10.44.0.13"],
                ),
            ),
        ] {
            s.expect_unserialed(&question, &want);
        }
        // `kubernetes/zone`: the zone asked for, empty for other names in the zones.
        let kubernetes = s
            .handler
            .plugins()
            .find_map(|p| match p {
                crate::plugin::Plugin::Kubernetes(k) => Some(k),
                _ => None,
            })
            .unwrap();
        let zone_of = |name: &str| {
            let lower = hickory_proto::rr::LowerName::from(
                hickory_proto::rr::Name::from_ascii(name).unwrap(),
            );
            crate::plugin::Phases::metadata(
                kubernetes,
                "kubernetes/zone",
                &lower,
                "10.0.0.1:53".parse().unwrap(),
                &[],
            )
        };
        assert_eq!(zone_of(&dotted).as_deref(), Some("corp.example.com"));
        assert_eq!(zone_of("db.prod.svc.cluster.local.").as_deref(), Some(""));
        assert_eq!(zone_of("example.org."), None);
        // Without the option the shape is an ordinary name that does not exist.
        let (plain, _dir) = served("");
        plain.expect_unserialed(&format!("{pin_a} A"), &nx);
    }

    #[test]
    fn zonal_is_read_as_coredns_reads_it() {
        use crate::plugin::kubernetes::KubernetesConfig;
        use crate::plugin::testing::settings;
        let ok: KubernetesConfig =
            settings("kubernetes cluster.local {\n manifests /dev/null\n zonal\n}").unwrap();
        assert!(ok.zonal);
        for (lines, want) in [
            (
                "kubernetes cluster.local {\n manifests /dev/null\n zonal\n noendpoints\n}",
                "zonal requires the endpoint cache; remove noendpoints",
            ),
            (
                "kubernetes cluster.local {\n manifests /dev/null\n zonal pin\n}",
                "Wrong argument count",
            ),
        ] {
            let err = settings::<KubernetesConfig>(lines).expect_err(lines);
            assert!(err.contains(want), "{lines}: {err}");
        }
    }
}
