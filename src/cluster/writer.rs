//! Keeps the served records equal to the cluster, one change at a time.
//!
//! The [`ClusterWriter`] owns the cluster's objects and knows which names each part of the
//! cluster contributed: a service owns its name and everything under it, a namespace its
//! `ns.svc` and `ns.pod` names, an address its PTR, a pod its `a-b-c-d.ns.pod` name. A change
//! recomputes only the parts it touches and replaces only the names whose records changed, so
//! its cost is proportional to the change, not to the cluster. Readers look names up in the
//! [`ClusterView`] without locking; each name's node is replaced whole, so a query (which
//! reads one node) sees it before or after a change, never half-way.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use hickory_proto::rr::{LowerName, Name};

use super::PodMode;
use super::records::{
    Apex, Builder, ClusterOptions, NsTarget, address, dashed, holds_local, is_reverse, name,
    nameservers, ptrs_of,
};
use super::{Addresses, ClusterObjects, EndpointSet};
use crate::cluster::{Key, Kind, Object};
use crate::table::{NameKey, PtrIndex, PtrRow, PtrView, Records, WireNode};

/// What readers see: nodes by name, and the few things that span names.
#[derive(Debug)]
pub struct ClusterView {
    names: papaya::HashMap<NameKey, WireNode>,
    /// PTR targets by address: a reverse name is answered from the address it spells.
    ptrs: PtrIndex,
    /// `pods verified`: the namespace and name of the pod with each address.
    pod_namespaces: papaya::HashMap<IpAddr, (Arc<str>, Arc<str>)>,
    meta: ArcSwap<Meta>,
    /// `k8s_external`: what each service with external addresses (or, under its `headless`,
    /// each headless service with ready endpoints) answers with, by namespace and name.
    externals: papaya::HashMap<Key, Arc<External>>,
    /// `k8s_external`: the services with each external address, for PTR.
    external_ips: papaya::HashMap<IpAddr, Arc<[Key]>>,
    /// `zonal`: each headless service's ready endpoints with their zones.
    zonal: papaya::HashMap<Key, Arc<[ZonalEndpoint]>>,
    /// Whether the source has listed everything once (the API's first sync; files are whole
    /// from the start). Until then a name not found may yet exist: SERVFAIL, not NXDOMAIN.
    synced: std::sync::atomic::AtomicBool,
}

/// A service as `k8s_external` answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct External {
    /// External IPs and load balancer ingress addresses or host names, as written.
    pub hosts: Box<[Box<str>]>,
    pub ports: Vec<super::Port>,
    /// With `k8s_external`'s `headless`, a service without external addresses: its ready
    /// endpoints (label, address, their set's ports), and whether it is headless (only then
    /// does its own name answer with them; an endpoint's name answers for any service).
    pub endpoints: Vec<(String, IpAddr, Vec<super::Port>)>,
    pub headless: bool,
}

/// A headless service's ready endpoint as `zonal` answers it: its name under the service,
/// one address, its zone (none when its slice gives none), its set's ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZonalEndpoint {
    pub label: String,
    pub ip: IpAddr,
    pub zone: Option<Box<str>>,
    pub ports: Vec<super::Port>,
}

/// What a query needs beyond the node at its name.
#[derive(Debug, Default)]
pub struct Meta {
    /// Exposed namespaces that exist (for `pods insecure`).
    pub namespaces: BTreeSet<String>,
    pub apexes: Vec<Apex>,
    /// The services with a ready endpoint at one of the server's own addresses, and those
    /// addresses: who the server is (the apex NS; `k8s_external`'s `ns1`).
    pub local_services: Vec<Key>,
    pub local_ips: Vec<IpAddr>,
}

impl Meta {
    /// The apex of the zone that holds `name`, the longest match.
    pub fn apex_for(&self, name: &LowerName) -> Option<&Apex> {
        self.apexes
            .iter()
            .filter(|a| a.zone.zone_of(name))
            .max_by_key(|a| a.zone.num_labels())
    }

    /// [`Self::apex_for`] for a name in lowercase wire format.
    pub fn apex_for_wire(&self, key: &[u8]) -> Option<&Apex> {
        self.apexes
            .iter()
            .filter(|a| crate::wire::in_zone(key, &a.zone_wire))
            .max_by_key(|a| a.zone_wire.len())
    }
}

impl ClusterView {
    /// Pins the names for the length of one query: nodes read through the guard stay valid.
    pub fn names(
        &self,
    ) -> papaya::HashMapRef<'_, NameKey, WireNode, std::hash::RandomState, papaya::LocalGuard<'_>>
    {
        self.names.pin()
    }

    /// Pins the PTR targets for the length of one query.
    pub fn ptrs(&self) -> PtrView<'_> {
        self.ptrs.pin()
    }

    /// The namespace of the pod with this address (`pods verified` only).
    pub fn pod_namespace(&self, ip: IpAddr) -> Option<Arc<str>> {
        self.pod_namespaces
            .pin()
            .get(&ip)
            .map(|(ns, _)| Arc::clone(ns))
    }

    /// The name of the pod with this address (`pods verified` only).
    pub fn pod_name(&self, ip: IpAddr) -> Option<Arc<str>> {
        self.pod_namespaces
            .pin()
            .get(&ip)
            .map(|(_, name)| Arc::clone(name))
    }

    pub fn meta(&self) -> arc_swap::Guard<Arc<Meta>> {
        self.meta.load()
    }

    /// Whether the source has listed everything once.
    pub fn synced(&self) -> bool {
        self.synced.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// `k8s_external`: the service `namespace/name` as it answers there.
    pub fn external(&self, namespace: &str, name: &str) -> Option<Arc<External>> {
        self.externals
            .pin()
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
    }

    /// `zonal`: the ready endpoints of the headless service `namespace/name`; `None` for a
    /// service that is not headless, or does not exist.
    pub fn zonal(&self, namespace: &str, name: &str) -> Option<Arc<[ZonalEndpoint]>> {
        self.zonal
            .pin()
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
    }

    /// `k8s_external`: the services with the external address `ip`.
    pub fn external_reverse(&self, ip: IpAddr) -> Option<Arc<[Key]>> {
        self.external_ips.pin().get(&ip).cloned()
    }

    /// How many names are served (PTR names included).
    pub fn len(&self) -> usize {
        self.names.len() + self.ptrs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty() && self.ptrs.is_empty()
    }
}

/// The names a service owns, in one allocation: each is written as the forward zone it is
/// in and its labels before the service's own name there (most are one short label, or
/// none), so a service's thousand endpoint names do not cost a thousand full names.
#[derive(Debug, Default)]
struct OwnedNames(Box<[u8]>);

impl OwnedNames {
    /// `names`, each under one of `bases` (the service's name in each forward zone).
    fn new<'a>(names: impl Iterator<Item = &'a NameKey>, bases: &[Option<NameKey>]) -> Self {
        let mut out = Vec::new();
        for n in names {
            let n = n.as_bytes();
            let found = bases.iter().enumerate().find_map(|(i, base)| {
                let base = base.as_ref()?.as_bytes();
                let prefix = n.strip_suffix(base)?;
                (prefix.len() <= usize::from(u8::MAX)).then_some((i, prefix))
            });
            if let Some((i, prefix)) = found {
                out.push(i as u8);
                out.push(prefix.len() as u8);
                out.extend_from_slice(prefix);
            }
        }
        Self(out.into_boxed_slice())
    }

    /// The names again, whole.
    fn names(&self, bases: &[Option<NameKey>]) -> Vec<NameKey> {
        let mut out = Vec::new();
        let mut rest = &self.0[..];
        while let [zone, len, tail @ ..] = rest
            && let Some((prefix, after)) = tail.split_at_checked(usize::from(*len))
        {
            rest = after;
            if let Some(Some(base)) = bases.get(usize::from(*zone)) {
                let mut whole = prefix.to_vec();
                whole.extend_from_slice(base.as_bytes());
                out.push(NameKey::from_lowercase_wire(whole));
            }
        }
        out
    }
}

/// One change to the cluster's objects.
#[derive(Debug, Clone)]
pub enum Change {
    /// An object added or replaced.
    Upsert(Object),
    /// An object deleted.
    Delete(Kind, Key),
    /// Every object of a kind replaced (a relist).
    ReplaceKind(Kind, ClusterObjects),
    /// Everything replaced (a reload of all manifest files).
    ReplaceAll(ClusterObjects),
}

/// The single writer of a [`ClusterView`].
#[derive(Debug)]
pub struct ClusterWriter {
    opts: ClusterOptions,
    objects: ClusterObjects,
    view: Arc<ClusterView>,
    forward: Vec<Name>,
    reverse: Vec<Name>,
    namespaces: BTreeSet<String>,
    /// The names each service owns, and the PTRs it contributes.
    service_names: HashMap<Key, OwnedNames>,
    /// The number each service's PTR targets are kept under, and the addresses it gives one.
    service_ptrs: HashMap<Key, (u32, Addresses)>,
    /// The next number for a service's PTR targets (never reused: a reader may still hold a
    /// row of a service that went).
    next_ptr_service: u32,
    /// Whether `in-addr.arpa.` and `ip6.arpa.` are served whole (the common case: no need to
    /// check an address against the reverse zones).
    whole_reverse: [bool; 2],
    /// What the apexes were last built from: the SOA serial (a second's resolution) and the
    /// name servers. The same again (and the same namespaces) is no change.
    apex_inputs: Option<(u32, Vec<(NsTarget, IpAddr)>)>,
    /// The services with a ready endpoint at one of the server's own addresses: the apex NS
    /// names them (CoreDNS's reverse endpoint index, asked for the local addresses).
    local_services: BTreeSet<Key>,
    /// `pods verified`: the names each pod owns, and how many pods own each name.
    pod_names: HashMap<Key, Vec<NameKey>>,
    pod_refs: HashMap<NameKey, usize>,
    /// `pods verified`: the pods with each address (for `autopath`'s who-is-asking).
    ip_pods: HashMap<IpAddr, BTreeSet<Key>>,
    pod_addresses: HashMap<Key, Vec<IpAddr>>,
    /// `k8s_external`: the services with each external address.
    external_services: HashMap<IpAddr, BTreeSet<Key>>,
}

impl ClusterWriter {
    /// A writer for an empty cluster. `namespaces_listed`: namespaces exist only when listed
    /// (the API source), rather than also when something is in them (manifest files).
    pub fn new(opts: ClusterOptions, namespaces_listed: bool) -> Self {
        let forward = opts
            .zones
            .iter()
            .filter(|z| !is_reverse(z))
            .cloned()
            .collect();
        let reverse = opts
            .zones
            .iter()
            .filter(|z| is_reverse(z))
            .cloned()
            .collect();
        let whole = |z: &str| opts.zones.iter().any(|n| n.to_ascii() == z);
        let whole_reverse = [whole("in-addr.arpa."), whole("ip6.arpa.")];
        let mut writer = Self {
            opts,
            objects: ClusterObjects {
                namespaces_listed,
                ..ClusterObjects::default()
            },
            view: Arc::new(ClusterView {
                names: papaya::HashMap::new(),
                ptrs: PtrIndex::default(),
                pod_namespaces: papaya::HashMap::new(),
                meta: ArcSwap::from_pointee(Meta::default()),
                externals: papaya::HashMap::new(),
                external_ips: papaya::HashMap::new(),
                zonal: papaya::HashMap::new(),
                synced: std::sync::atomic::AtomicBool::new(!namespaces_listed),
            }),
            forward,
            reverse,
            namespaces: BTreeSet::new(),
            service_names: HashMap::new(),
            service_ptrs: HashMap::new(),
            next_ptr_service: 0,
            whole_reverse,
            apex_inputs: None,
            local_services: BTreeSet::new(),
            pod_names: HashMap::new(),
            pod_refs: HashMap::new(),
            ip_pods: HashMap::new(),
            pod_addresses: HashMap::new(),
            external_services: HashMap::new(),
        };
        writer.apply(Vec::new());
        writer
    }

    /// The source has listed everything once: from now on a name not found does not exist.
    pub fn mark_synced(&self) {
        self.view
            .synced
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// The reader side.
    pub fn view(&self) -> Arc<ClusterView> {
        Arc::clone(&self.view)
    }

    /// The objects as they stand.
    pub fn objects(&self) -> &ClusterObjects {
        &self.objects
    }

    /// Applies changes and updates the names they touch.
    pub fn apply(&mut self, changes: Vec<Change>) {
        let mut services: BTreeSet<Key> = BTreeSet::new();
        let mut pods: BTreeSet<Key> = BTreeSet::new();
        let mut everything = false;
        for change in changes {
            let change = self.stripped(change);
            match change {
                Change::Upsert(object) => {
                    self.touched_by(&object, &mut services, &mut pods);
                    self.objects.insert(object);
                }
                Change::Delete(kind, key) => {
                    self.touched_by_key(kind, &key, &mut services, &mut pods);
                    self.objects.remove(kind, &key);
                }
                Change::ReplaceKind(kind, from) => {
                    everything = true;
                    self.objects.replace_kind(kind, from);
                }
                Change::ReplaceAll(mut all) => {
                    everything = true;
                    all.namespaces_listed = self.objects.namespaces_listed;
                    self.objects = all;
                }
            }
        }
        if everything {
            services.extend(self.service_names.keys().cloned());
            services.extend(self.service_ptrs.keys().cloned());
            services.extend(self.objects.services.keys().cloned());
            // Endpoints whose service does not exist still give PTRs.
            services.extend(
                self.objects
                    .slices
                    .values()
                    .map(|set| (set.namespace.clone(), set.service.clone())),
            );
            services.extend(self.objects.endpoints.keys().cloned());
            services.extend(self.view.externals.pin().keys().cloned());
            pods.extend(self.pod_names.keys().cloned());
            pods.extend(self.objects.pods.keys().cloned());
        }
        self.refresh_namespaces(&mut services, &mut pods);
        for key in &services {
            self.refresh_service(key);
        }
        for key in &pods {
            self.refresh_pod(key);
        }
        self.refresh_apexes();
    }

    /// What of an endpoint the options use (pod names under `endpoint_pod_names`, zones
    /// under `zonal`); sources may drop the rest.
    pub fn kept(&self) -> super::Kept {
        super::Kept {
            pod_names: self.opts.endpoint_pod_names,
            zones: self.opts.zonal,
        }
    }

    /// A change without what the options never use ([`Self::kept`]).
    fn stripped(&self, mut change: Change) -> Change {
        let kept = self.kept();
        if kept.pod_names && kept.zones {
            return change;
        }
        let strip = |set: &mut EndpointSet| {
            set.endpoints = std::mem::take(&mut set.endpoints).keeping(kept);
        };
        match &mut change {
            Change::Upsert(Object::Slice(_, Some(set))) => strip(set),
            Change::Upsert(Object::Endpoints(_, sets)) => sets.iter_mut().for_each(strip),
            Change::ReplaceKind(_, all) | Change::ReplaceAll(all) => {
                all.slices.values_mut().for_each(strip);
                all.endpoints.values_mut().flatten().for_each(strip);
            }
            Change::Upsert(_) | Change::Delete(..) => {}
        }
        change
    }

    /// The services and pods whose names an object's change can alter.
    fn touched_by(&self, object: &Object, services: &mut BTreeSet<Key>, pods: &mut BTreeSet<Key>) {
        match object {
            Object::Namespace(name) => self.touched_by_key(
                Kind::Namespace,
                &(String::new(), name.clone()),
                services,
                pods,
            ),
            Object::Service(svc) => {
                services.insert((svc.namespace.clone(), svc.name.clone()));
            }
            Object::Slice(key, set) => {
                self.touched_by_key(Kind::EndpointSlice, key, services, pods);
                if let Some(set) = set {
                    services.insert((set.namespace.clone(), set.service.clone()));
                }
            }
            Object::Endpoints(key, _) => {
                services.insert(key.clone());
            }
            Object::Pod(pod) => {
                pods.insert((pod.namespace.clone(), pod.name.clone()));
            }
        }
    }

    fn touched_by_key(
        &self,
        kind: Kind,
        key: &Key,
        services: &mut BTreeSet<Key>,
        pods: &mut BTreeSet<Key>,
    ) {
        match kind {
            // Namespaces are compared whole in `refresh_namespaces`.
            Kind::Namespace => {}
            Kind::Service | Kind::Endpoints => {
                services.insert(key.clone());
            }
            Kind::EndpointSlice => {
                if let Some(old) = self.objects.slices.get(key) {
                    services.insert((old.namespace.clone(), old.service.clone()));
                }
            }
            Kind::Pod => {
                pods.insert(key.clone());
            }
        }
    }

    /// Recomputes the exposed namespaces; a namespace that appears or goes takes its
    /// services and pods with it.
    fn refresh_namespaces(&mut self, services: &mut BTreeSet<Key>, pods: &mut BTreeSet<Key>) {
        let now: BTreeSet<String> = self
            .objects
            .all_namespaces()
            .into_iter()
            .filter(|ns| self.opts.namespaces.is_empty() || self.opts.namespaces.contains(ns))
            .collect();
        if now == self.namespaces {
            return;
        }
        let changed: BTreeSet<String> = now
            .symmetric_difference(&self.namespaces)
            .cloned()
            .collect();
        let names = self.view.names.pin();
        for ns in &changed {
            let exists = now.contains(ns);
            for zone in &self.forward {
                let mut kinds = vec!["svc"];
                if self.opts.pods != PodMode::Disabled {
                    kinds.push("pod");
                }
                for kind in kinds {
                    let Some(n) = name(&[ns, kind], zone) else {
                        continue;
                    };
                    let n = NameKey::new(&n);
                    if exists {
                        names.insert(n, WireNode::default());
                    } else {
                        names.remove(&n);
                    }
                }
            }
            let in_ns = |k: &&Key| &k.0 == ns;
            services.extend(self.objects.services.keys().filter(in_ns).cloned());
            services.extend(self.service_names.keys().filter(in_ns).cloned());
            pods.extend(self.objects.pods.keys().filter(in_ns).cloned());
            pods.extend(self.pod_names.keys().filter(in_ns).cloned());
        }
        self.namespaces = now;
    }

    /// `k8s_external`: replaces what the service answers there, and its external addresses.
    /// Keeps `zonal`'s index of a headless service's endpoints current.
    fn refresh_zonal(&mut self, key: &Key) {
        if !self.opts.zonal {
            return;
        }
        let fresh: Option<Arc<[ZonalEndpoint]>> = self
            .objects
            .services
            .get(key)
            .filter(|svc| {
                self.namespaces.contains(&svc.namespace) && svc.kind == super::ServiceKind::Headless
            })
            .map(|svc| {
                let mut endpoints = Vec::new();
                for set in self.objects.endpoint_sets(&svc.namespace, &svc.name) {
                    for ep in set.endpoints.iter() {
                        if !(ep.ready || svc.publish_not_ready) {
                            continue;
                        }
                        for ip in ep.addresses() {
                            endpoints.push(ZonalEndpoint {
                                label: super::records::endpoint_label(
                                    &ep,
                                    ip,
                                    self.opts.endpoint_pod_names,
                                ),
                                ip,
                                zone: ep.zone.map(Into::into),
                                ports: set.ports.clone(),
                            });
                        }
                    }
                }
                endpoints.into()
            });
        let zonal = self.view.zonal.pin();
        match fresh {
            Some(fresh) => {
                if zonal.get(key) != Some(&fresh) {
                    zonal.insert(key.clone(), fresh);
                }
            }
            None => {
                zonal.remove(key);
            }
        }
    }

    fn refresh_external(&mut self, key: &Key) {
        let Some(headless) = self.opts.external else {
            return;
        };
        let fresh = self
            .objects
            .services
            .get(key)
            .filter(|svc| self.namespaces.contains(&svc.namespace))
            .and_then(|svc| {
                let mut endpoints = Vec::new();
                let named = !matches!(svc.kind, super::ServiceKind::ExternalName(_));
                if headless && svc.external.is_empty() && named {
                    for set in self.objects.endpoint_sets(&svc.namespace, &svc.name) {
                        for ep in set.endpoints.iter() {
                            if !(ep.ready || svc.publish_not_ready) {
                                continue;
                            }
                            for ip in ep.addresses() {
                                let label = super::records::endpoint_label(
                                    &ep,
                                    ip,
                                    self.opts.endpoint_pod_names,
                                );
                                endpoints.push((label, ip, set.ports.clone()));
                            }
                        }
                    }
                }
                (!svc.external.is_empty() || !endpoints.is_empty()).then(|| External {
                    hosts: svc.external.clone(),
                    ports: svc.ports.clone(),
                    endpoints,
                    headless: svc.kind == super::ServiceKind::Headless,
                })
            });
        let ips = |e: Option<&External>| -> BTreeSet<IpAddr> {
            e.map(|e| e.hosts.iter().filter_map(|h| h.parse().ok()).collect())
                .unwrap_or_default()
        };
        let externals = self.view.externals.pin();
        let old = externals.get(key).cloned();
        if old.as_deref() == fresh.as_ref() {
            return;
        }
        let (before, after) = (ips(old.as_deref()), ips(fresh.as_ref()));
        match fresh {
            Some(fresh) => externals.insert(key.clone(), Arc::new(fresh)),
            None => externals.remove(key),
        };
        let reverse = self.view.external_ips.pin();
        for ip in before.symmetric_difference(&after) {
            let services = self.external_services.entry(*ip).or_default();
            if after.contains(ip) {
                services.insert(key.clone());
            } else {
                services.remove(key);
            }
            if services.is_empty() {
                self.external_services.remove(ip);
                reverse.remove(ip);
            } else {
                reverse.insert(*ip, services.iter().cloned().collect());
            }
        }
    }

    /// Replaces the names a service owns with what it owns now.
    fn refresh_service(&mut self, key: &Key) {
        self.refresh_external(key);
        self.refresh_zonal(key);
        if holds_local(&self.objects, key, &self.opts) {
            self.local_services.insert(key.clone());
        } else {
            self.local_services.remove(key);
        }
        let mut fresh: Vec<(LowerName, WireNode)> = Vec::new();
        let mut ptrs = Vec::new();
        if let Some(svc) = self.objects.services.get(key)
            && self.namespaces.contains(&svc.namespace)
        {
            for zone in &self.forward {
                let Some(base) = name(&[&svc.name, &svc.namespace, "svc"], zone) else {
                    continue;
                };
                let base = LowerName::new(&base);
                let mut b = Builder {
                    opts: &self.opts,
                    records: Records::default(),
                };
                let endpoints = b.service(svc, &self.objects, zone);
                fresh.extend(b.records.into_nodes().filter(|(n, _)| base.zone_of(n)).map(
                    |(n, node)| {
                        let wire = WireNode::from(&node);
                        let wire = if n == base {
                            wire.with_endpoints(&endpoints)
                        } else {
                            wire
                        };
                        (n, wire)
                    },
                ));
            }
            if let (false, Some(primary)) = (self.reverse.is_empty(), self.forward.first()) {
                ptrs = ptrs_of(svc, &self.objects, &self.opts, primary);
            }
        } else if let (false, Some(primary), None) = (
            self.reverse.is_empty(),
            self.forward.first(),
            self.objects.services.get(key),
        ) && (self.opts.namespaces.is_empty() || self.opts.namespaces.contains(&key.0))
        {
            // Endpoints whose service does not exist (yet): their addresses still answer PTR
            // with the name the slice gives them, as CoreDNS's reverse index answers it.
            let orphan = super::Service {
                namespace: key.0.clone(),
                name: key.1.clone(),
                kind: super::ServiceKind::Headless,
                ports: Vec::new(),
                publish_not_ready: false,
                external: Box::default(),
            };
            ptrs = ptrs_of(&orphan, &self.objects, &self.opts, primary);
        }
        let fresh: Vec<(NameKey, WireNode)> = fresh
            .into_iter()
            .map(|(n, node)| (NameKey::from(&n), node))
            .collect();
        let bases = self.service_bases(key);
        let old = self
            .service_names
            .remove(key)
            .map(|o| o.names(&bases))
            .unwrap_or_default();
        let names = self.view.names.pin();
        let kept: HashSet<&NameKey> = fresh.iter().map(|(n, _)| n).collect();
        for n in old.iter().filter(|n| !kept.contains(n)) {
            names.remove(n);
        }
        let owned = OwnedNames::new(fresh.iter().map(|(n, _)| n), &bases);
        for (n, node) in fresh {
            if names.get(&n) != Some(&node) {
                names.insert(n, node);
            }
        }
        if !owned.0.is_empty() {
            self.service_names.insert(key.clone(), owned);
        }
        let service = name(
            &[&key.1, &key.0, "svc"],
            self.forward.first().unwrap_or(&Name::root()),
        )
        .map(|n| NameKey::new(&n));
        let (number, old) = match self.service_ptrs.remove(key) {
            Some((number, old)) => (number, old),
            None => {
                self.next_ptr_service = self.next_ptr_service.wrapping_add(1);
                (self.next_ptr_service, Addresses::default())
            }
        };
        let targets: Vec<(IpAddr, NameKey, bool)> = ptrs
            .into_iter()
            .filter(|p| self.reverse_covers(p.ip))
            .map(|p| (p.ip, NameKey::new(&p.target), p.cluster_ip))
            .collect();
        let Some(service) = service else {
            return;
        };
        let rows: Vec<PtrRow<'_>> = targets
            .iter()
            .map(|(ip, target, cluster_ip)| PtrRow {
                ip: *ip,
                service: number,
                cluster_ip: *cluster_ip,
                label: ptr_label(*ip, target.as_bytes(), *cluster_ip),
            })
            .collect();
        let old: Vec<IpAddr> = old.iter().collect();
        self.view
            .ptrs
            .replace_service(number, &service, &old, &rows);
        let contributed: Addresses = targets.iter().map(|(ip, _, _)| *ip).collect();
        if !contributed.is_empty() {
            self.service_ptrs.insert(key.clone(), (number, contributed));
        }
    }

    /// A service's own name in each forward zone.
    fn service_bases(&self, key: &Key) -> Vec<Option<NameKey>> {
        self.forward
            .iter()
            .map(|zone| name(&[&key.1, &key.0, "svc"], zone).map(|n| NameKey::new(&n)))
            .collect()
    }

    /// Whether an address's PTR name falls in a reverse zone served here.
    fn reverse_covers(&self, ip: IpAddr) -> bool {
        if self.whole_reverse[usize::from(ip.is_ipv6())] {
            return true;
        }
        let mut owner = Name::from(ip);
        owner.set_fqdn(true);
        self.reverse.iter().any(|z| z.zone_of(&owner))
    }

    /// `pods verified`: a pod's `a-b-c-d.ns.pod.zone` names.
    fn refresh_pod(&mut self, key: &Key) {
        if self.opts.pods != PodMode::Verified {
            return;
        }
        self.refresh_pod_address(key);
        let names = self.view.names.pin();
        for n in self.pod_names.remove(key).unwrap_or_default() {
            if let Some(count) = self.pod_refs.get_mut(&n) {
                *count -= 1;
                if *count == 0 {
                    self.pod_refs.remove(&n);
                    names.remove(&n);
                }
            }
        }
        let Some(pod) = self.objects.pods.get(key) else {
            return;
        };
        if !self.namespaces.contains(&pod.namespace) {
            return;
        }
        let mut owned = Vec::new();
        for zone in &self.forward {
            for &ip in &pod.ips {
                let Some(n) = name(&[&dashed(ip), &pod.namespace, "pod"], zone) else {
                    continue;
                };
                let lower = LowerName::new(&n);
                let key = NameKey::from(&lower);
                let count = self.pod_refs.entry(key.clone()).or_default();
                *count += 1;
                if *count == 1 {
                    let mut records = Records::default();
                    records.add(zone, address(&n, self.opts.ttl, ip));
                    if let Some((_, node)) = records.into_nodes().find(|(x, _)| x == &lower) {
                        names.insert(key.clone(), WireNode::from(&node));
                    }
                }
                owned.push(key);
            }
        }
        self.pod_names.insert(key.clone(), owned);
    }

    /// Which pod each of this pod's addresses (old and new) belongs to now.
    fn refresh_pod_address(&mut self, key: &Key) {
        let mut touched: Vec<IpAddr> = self.pod_addresses.remove(key).unwrap_or_default();
        for ip in &touched {
            if let Some(pods) = self.ip_pods.get_mut(ip) {
                pods.remove(key);
                if pods.is_empty() {
                    self.ip_pods.remove(ip);
                }
            }
        }
        if let Some(pod) = self.objects.pods.get(key)
            && self.namespaces.contains(&pod.namespace)
        {
            for &ip in &pod.ips {
                self.ip_pods.entry(ip).or_default().insert(key.clone());
                touched.push(ip);
            }
            self.pod_addresses.insert(key.clone(), pod.ips.clone());
        }
        let view = self.view.pod_namespaces.pin();
        for ip in touched {
            match self.ip_pods.get(&ip).and_then(|pods| pods.first()) {
                Some((ns, name)) => {
                    view.insert(ip, (Arc::from(ns.as_str()), Arc::from(name.as_str())));
                }
                None => {
                    view.remove(&ip);
                }
            }
        }
    }

    /// Apex records (the SOA serial moves with every change), `svc`/`pod`, `ns.dns`,
    /// `dns-version`; then the meta readers need.
    fn refresh_apexes(&mut self) {
        let serial = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as u32)
            .unwrap_or(1);
        let servers = nameservers(&self.objects, &self.local_services, &self.opts);
        let inputs = Some((serial, servers));
        if inputs == self.apex_inputs && self.view.meta().namespaces == self.namespaces {
            return;
        }
        self.apex_inputs = inputs;
        let mut b = Builder {
            opts: &self.opts,
            records: Records::default(),
        };
        let mut apexes = Vec::new();
        let servers = self
            .apex_inputs
            .as_ref()
            .map(|(_, servers)| servers.as_slice())
            .unwrap_or_default();
        for zone in &self.opts.zones {
            apexes.push(b.apex(zone, servers, serial));
            if !is_reverse(zone) {
                b.ensure(&["svc"], zone);
                b.ensure(&["pod"], zone);
            }
        }
        let names = self.view.names.pin();
        for (n, node) in b.records.into_nodes() {
            let n = NameKey::from(&n);
            let node = WireNode::from(&node);
            if names.get(&n) != Some(&node) {
                names.insert(n, node);
            }
        }
        self.view.meta.store(Arc::new(Meta {
            namespaces: self.namespaces.clone(),
            apexes,
            local_services: self.local_services.iter().cloned().collect(),
            local_ips: self.opts.local_ips.clone(),
        }));
    }
}

/// How a PTR row spells its target's first label: not at all for a cluster IP (the target
/// is the service) or an IPv4 endpoint named by its address (derived when answered).
fn ptr_label(ip: IpAddr, target: &[u8], cluster_ip: bool) -> Option<&[u8]> {
    if cluster_ip {
        return None;
    }
    let (&len, rest) = target.split_first()?;
    let label = rest.get(..usize::from(len))?;
    match ip {
        IpAddr::V4(_) if label == dashed(ip).as_bytes() => None,
        _ => Some(label),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use hickory_proto::rr::RecordType;

    use super::*;
    use crate::source::convert::convert;

    fn options(pods: PodMode) -> ClusterOptions {
        let zone = |s: &str| Name::from_ascii(s).unwrap();
        ClusterOptions {
            zones: vec![
                zone("cluster.local."),
                zone("in-addr.arpa."),
                zone("ip6.arpa."),
            ],
            ttl: 30,
            pods,
            namespaces: Vec::new(),
            endpoint_pod_names: false,
            noendpoints: false,
            ignore_empty_service: false,
            external: None,
            // An endpoint of prod/web: the apex NS follows it as it comes and goes.
            local_ips: vec!["10.44.1.1".parse().unwrap()],
            zonal: true,
        }
    }

    /// Every name and its records, SOAs left out (their serial is the time of the change).
    fn contents(view: &ClusterView) -> Vec<(String, Vec<String>)> {
        let names = view.names();
        let mut out: Vec<(String, Vec<String>)> = names
            .iter()
            .map(|(n, node)| {
                let mut records: Vec<String> = node
                    .sets()
                    .filter(|(t, _)| *t != RecordType::SOA)
                    .flat_map(|(t, s)| {
                        let mut answer = crate::wire::Section::default();
                        answer.push_bodies(crate::wire::Owner::Question, s.bodies, s.count);
                        [
                            format!("{t} {:?}", answer.bytes),
                            format!("+ {:?}", s.additional),
                        ]
                    })
                    .collect();
                records.extend(node.endpoints().map(|e| {
                    let addresses: Vec<_> = e.addresses().collect();
                    let srvs: Vec<_> = e.srvs().collect();
                    format!(
                        "endpoint {} {addresses:?} {srvs:?}",
                        String::from_utf8_lossy(e.label)
                    )
                }));
                records.sort();
                (n.to_string(), records)
            })
            .collect();
        // `zonal`'s index of headless services' endpoints.
        out.extend(
            view.zonal
                .pin()
                .iter()
                .map(|(k, e)| (format!("zonal {k:?}"), vec![format!("{e:?}")])),
        );
        let ptrs = view.ptrs();
        out.extend(ptrs.addresses().into_iter().map(|ip| {
            let targets = ptrs
                .get(ip)
                .into_iter()
                .flatten()
                .map(|t| format!("PTR {}", Name::from_labels(labels(&t.to_vec())).unwrap()))
                .collect();
            (Name::from(ip).to_string(), targets)
        }));
        out.sort();
        out
    }

    /// The labels of a wire-format name.
    fn labels(mut name: &[u8]) -> Vec<&[u8]> {
        let mut out = Vec::new();
        while let [len, rest @ ..] = name
            && *len > 0
        {
            let (label, tail) = rest.split_at(usize::from(*len));
            out.push(label);
            name = tail;
        }
        out
    }

    /// The objects of tests/data/cluster.yaml, one by one.
    fn objects() -> Vec<Object> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/cluster.yaml");
        let text = std::fs::read_to_string(path).unwrap();
        text.split("\n---\n")
            .filter_map(|doc| serde_norway::from_str::<serde_json::Value>(doc).ok())
            .filter_map(|v| convert(&v).ok().flatten())
            .collect()
    }

    fn all(objects: &[Object]) -> ClusterObjects {
        let mut all = ClusterObjects::default();
        for o in objects {
            all.insert(o.clone());
        }
        all
    }

    fn full(objects: &ClusterObjects, pods: PodMode) -> Vec<(String, Vec<String>)> {
        let mut w = ClusterWriter::new(options(pods), false);
        w.apply(vec![Change::ReplaceAll(objects.clone())]);
        contents(&w.view())
    }

    fn key(o: &Object) -> (Kind, Key) {
        match o {
            Object::Namespace(n) => (Kind::Namespace, (String::new(), n.clone())),
            Object::Service(s) => (Kind::Service, (s.namespace.clone(), s.name.clone())),
            Object::Slice(k, _) => (Kind::EndpointSlice, k.clone()),
            Object::Endpoints(k, _) => (Kind::Endpoints, k.clone()),
            Object::Pod(p) => (Kind::Pod, (p.namespace.clone(), p.name.clone())),
        }
    }

    #[test]
    fn one_change_at_a_time_ends_where_a_full_build_does() {
        let objects = objects();
        assert!(objects.len() > 30);
        for pods in [PodMode::Verified, PodMode::Insecure] {
            let mut w = ClusterWriter::new(options(pods), false);
            // Added one by one, in file order and in reverse.
            for o in objects.iter().rev() {
                w.apply(vec![Change::Upsert(o.clone())]);
            }
            let everything = full(&all(&objects), pods);
            assert_eq!(contents(&w.view()), everything);
            // `zonal`'s index is part of what is compared.
            assert!(everything.iter().any(|(n, _)| n.starts_with("zonal ")));
            // Endpoint names are part of what is compared.
            assert!(
                everything
                    .iter()
                    .any(|(n, r)| n == "db.prod.svc.cluster.local."
                        && r.iter().any(|r| r.starts_with("endpoint db-0 ")))
            );
            // Every other object deleted, one change each.
            let mut kept = Vec::new();
            for (i, o) in objects.iter().enumerate() {
                if i % 2 == 0 {
                    let (kind, k) = key(o);
                    w.apply(vec![Change::Delete(kind, k)]);
                } else {
                    kept.push(o.clone());
                }
            }
            assert_eq!(contents(&w.view()), full(&all(&kept), pods));
            // And back, as one batch.
            w.apply(objects.iter().cloned().map(Change::Upsert).collect());
            assert_eq!(contents(&w.view()), full(&all(&objects), pods));
        }
    }

    /// `k8s_external`'s index: each service's entry and each address's services.
    fn externals(view: &ClusterView) -> Vec<String> {
        let mut out: Vec<String> = view
            .externals
            .pin()
            .iter()
            .map(|(k, e)| format!("{k:?} {e:?}"))
            .collect();
        out.extend(
            view.external_ips
                .pin()
                .iter()
                .map(|(ip, keys)| format!("{ip} {keys:?}")),
        );
        out.sort();
        out
    }

    #[test]
    fn the_external_index_follows_changes_as_a_full_build_does() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/external.yaml");
        let text = std::fs::read_to_string(path).unwrap();
        let objects: Vec<Object> = text
            .split("\n---\n")
            .filter_map(|doc| serde_norway::from_str::<serde_json::Value>(doc).ok())
            .filter_map(|v| convert(&v).ok().flatten())
            .collect();
        for headless in [false, true] {
            let opts = || ClusterOptions {
                external: Some(headless),
                ..options(PodMode::Disabled)
            };
            let fresh = |objects: &[Object]| {
                let mut w = ClusterWriter::new(opts(), false);
                w.apply(vec![Change::ReplaceAll(all(objects))]);
                externals(&w.view())
            };
            let mut w = ClusterWriter::new(opts(), false);
            for o in objects.iter().rev() {
                w.apply(vec![Change::Upsert(o.clone())]);
            }
            let everything = fresh(&objects);
            assert_eq!(externals(&w.view()), everything);
            assert!(everything.iter().any(|e| e.starts_with("192.0.2.7 ")));
            assert_eq!(
                everything.iter().any(|e| e.contains("\"db-0\"")),
                headless,
                "{everything:?}"
            );
            let mut kept = Vec::new();
            for (i, o) in objects.iter().enumerate() {
                if i % 2 == 1 {
                    let (kind, k) = key(o);
                    w.apply(vec![Change::Delete(kind, k)]);
                } else {
                    kept.push(o.clone());
                }
            }
            assert_eq!(externals(&w.view()), fresh(&kept));
        }
        // Without k8s_external nothing is indexed.
        let mut w = ClusterWriter::new(options(PodMode::Disabled), false);
        w.apply(vec![Change::ReplaceAll(all(&objects))]);
        assert!(externals(&w.view()).is_empty());
    }

    #[test]
    fn a_relist_drops_what_was_deleted_while_the_watch_was_down() {
        let objects = objects();
        let mut w = ClusterWriter::new(options(PodMode::Insecure), false);
        w.apply(vec![Change::ReplaceAll(all(&objects))]);
        let services: Vec<Object> = objects
            .iter()
            .filter(|o| !matches!(o, Object::Service(s) if s.name == "web"))
            .cloned()
            .collect();
        w.apply(vec![Change::ReplaceKind(Kind::Service, all(&services))]);
        assert_eq!(
            contents(&w.view()),
            full(&all(&services), PodMode::Insecure)
        );
        let names = w.view();
        let names = names.names();
        let web = NameKey::new(&Name::from_ascii("web.prod.svc.cluster.local.").unwrap());
        assert!(names.get(&web).is_none());
    }

    #[test]
    fn removing_a_namespace_removes_everything_in_it() {
        let objects = objects();
        let mut w = ClusterWriter::new(options(PodMode::Insecure), true);
        w.apply(objects.iter().cloned().map(Change::Upsert).collect());
        let before = contents(&w.view());
        assert!(
            before
                .iter()
                .any(|(n, _)| n.ends_with("prod.svc.cluster.local."))
        );
        w.apply(vec![Change::Delete(
            Kind::Namespace,
            (String::new(), "prod".into()),
        )]);
        let after = contents(&w.view());
        assert!(
            !after
                .iter()
                .any(|(n, _)| n.contains("prod.svc.cluster.local."))
        );
        assert!(
            after
                .iter()
                .any(|(n, _)| n == "kubernetes.default.svc.cluster.local.")
        );
        // Its PTRs go too.
        assert!(
            !after
                .iter()
                .any(|(_, r)| r.iter().any(|r| r.contains(".prod.svc.")))
        );
        w.apply(vec![Change::Upsert(Object::Namespace("prod".into()))]);
        assert_eq!(contents(&w.view()), before);
    }
}
