//! The `kubernetes` plugin: answers the cluster zones from the cluster snapshot.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType};

use super::{Outcome, Reply, Request, matching_zone, owned_by};
use crate::cluster::ClusterObjects;
use crate::cluster::records::{self, ClusterOptions, ClusterSnapshot, insecure_pod_address};
use crate::config::{Fallthrough, KubernetesConfig, PodMode};
use crate::table::{RecordTable, record};

/// How many CNAMEs an answer follows inside the zone (CoreDNS stops at 8 too).
const MAX_CNAME_CHAIN: usize = 8;

#[derive(Debug)]
pub struct Kubernetes {
    zones: Vec<LowerName>,
    opts: ClusterOptions,
    fallthrough: Fallthrough,
    table: Arc<RecordTable<ClusterSnapshot>>,
    /// False until the source's first full list (or its startup timeout): SERVFAIL until then.
    ready: Arc<AtomicBool>,
}

impl Kubernetes {
    /// A plugin serving `objects`.
    pub fn new(config: &KubernetesConfig, objects: &ClusterObjects) -> Self {
        let opts = ClusterOptions {
            zones: config.zones.iter().map(|z| Name::from(z.clone())).collect(),
            ttl: config.ttl,
            pods: config.pods,
            namespaces: config.namespaces.clone(),
            endpoint_pod_names: config.endpoint_pod_names,
            noendpoints: config.noendpoints,
            ignore_empty_service: config.ignore_empty_service,
        };
        let snapshot = records::build(objects, &opts, serial());
        Self {
            zones: config.zones.clone(),
            opts,
            fallthrough: config.fallthrough.clone(),
            table: Arc::new(RecordTable::new(snapshot)),
            ready: Arc::new(AtomicBool::new(true)),
        }
    }

    /// A plugin that answers SERVFAIL until its source says it has synced.
    pub fn unsynced(config: &KubernetesConfig) -> Self {
        let plugin = Self::new(config, &ClusterObjects::default());
        plugin.ready.store(false, Ordering::Relaxed);
        plugin
    }

    /// The flag the source sets once it has synced.
    pub fn ready_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.ready)
    }

    /// Builds the records of `objects` and publishes them in one swap.
    pub fn publish(&self, objects: &ClusterObjects) {
        self.table
            .publish(records::build(objects, &self.opts, serial()));
    }

    /// A handle that publishes into this plugin's table from another task.
    pub fn publisher(&self) -> impl Fn(&ClusterObjects) + Send + Sync + 'static {
        let table = Arc::clone(&self.table);
        let opts = self.opts.clone();
        move |objects| table.publish(records::build(objects, &opts, serial()))
    }

    pub fn serve(&self, req: &Request) -> Outcome {
        if matching_zone(&self.zones, &req.lower).is_none() {
            return Outcome::Next;
        }
        if !self.ready.load(Ordering::Relaxed) {
            let mut reply = Reply::authoritative(ResponseCode::ServFail);
            reply.authoritative = false;
            return Outcome::Reply(reply);
        }
        let snap = self.table.load();
        match self.lookup(&snap, req) {
            Some(reply) => Outcome::Reply(reply),
            None if self.fallthrough.through(&req.lower) => Outcome::Next,
            None => Outcome::Reply(negative(&snap, &req.lower, ResponseCode::NXDomain)),
        }
    }

    /// The answer for an existing name, or `None` when the name does not exist.
    fn lookup(&self, snap: &ClusterSnapshot, req: &Request) -> Option<Reply> {
        let Some(node) = snap.records.get(&req.lower) else {
            return self.insecure_pod(snap, req);
        };
        let mut reply = Reply::authoritative(ResponseCode::NoError);
        match req.qtype {
            RecordType::ANY => {
                for set in node.sets() {
                    reply
                        .answers
                        .extend(set.records.iter().map(|r| owned_by(r, &req.name)));
                }
            }
            qtype => {
                if let Some(set) = node.get(qtype) {
                    reply
                        .answers
                        .extend(set.records.iter().map(|r| owned_by(r, &req.name)));
                    reply.additional.extend(set.additional.iter().cloned());
                } else if let Some(cname) = node
                    .get(RecordType::CNAME)
                    .filter(|_| matches!(qtype, RecordType::A | RecordType::AAAA | RecordType::TXT))
                {
                    let first = owned_by(&cname.records[0], &req.name);
                    self.chase(snap, first, qtype, &mut reply.answers);
                }
            }
        }
        if reply.answers.is_empty() {
            return Some(negative(snap, &req.lower, ResponseCode::NoError));
        }
        reply.recursion_available = true;
        Some(reply)
    }

    /// Adds a CNAME and, while its target is in our zones, what the target holds.
    fn chase(
        &self,
        snap: &ClusterSnapshot,
        cname: Record,
        qtype: RecordType,
        out: &mut Vec<Record>,
    ) {
        let mut next = cname;
        for _ in 0..MAX_CNAME_CHAIN {
            let RData::CNAME(target) = next.data() else {
                break;
            };
            let target = LowerName::new(&target.0);
            out.push(next);
            if matching_zone(&self.zones, &target).is_none() {
                return;
            }
            let Some(node) = snap.records.get(&target) else {
                return;
            };
            if let Some(set) = node.get(qtype) {
                out.extend(set.records.iter().cloned());
                return;
            }
            match node.get(RecordType::CNAME) {
                Some(set) if !out.iter().any(|r| r == &set.records[0]) => {
                    next = set.records[0].clone();
                }
                _ => return,
            }
        }
    }

    /// `A-B-C-D.NS.pod.ZONE` under `pods insecure`: the address written in the name.
    fn insecure_pod(&self, snap: &ClusterSnapshot, req: &Request) -> Option<Reply> {
        if self.opts.pods != PodMode::Insecure {
            return None;
        }
        let zone = matching_zone(&self.zones, &req.lower)?;
        let name = Name::from(req.lower.clone());
        if name.num_labels() != zone.num_labels() + 3 {
            return None;
        }
        let labels: Vec<&[u8]> = name.iter().collect();
        let (pod, ns, kind) = (labels[0], labels[1], labels[2]);
        let ns = std::str::from_utf8(ns).ok()?;
        if kind != b"pod" || !snap.namespaces.contains(ns) {
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
            _ => return Some(negative(snap, &req.lower, ResponseCode::NoError)),
        };
        let mut reply = Reply::authoritative(ResponseCode::NoError);
        reply.recursion_available = true;
        reply.answers.push(record(&req.name, self.opts.ttl, rdata));
        Some(reply)
    }
}

/// NXDOMAIN or NODATA, with the zone's SOA in the authority section.
fn negative(snap: &ClusterSnapshot, name: &LowerName, rcode: ResponseCode) -> Reply {
    let mut reply = Reply::authoritative(rcode);
    reply.authority.extend(snap.soa_for(name).cloned());
    reply
}

/// The SOA serial: the time of the change, in seconds, as CoreDNS sets it.
fn serial() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(1)
}
