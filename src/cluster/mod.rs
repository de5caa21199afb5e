//! The cluster model: the parts of Kubernetes objects that DNS needs, and the records the
//! Kubernetes DNS specification gives them ([`records`]).
//!
//! Sources strip API objects down to these types at their boundary, so every source (manifest
//! files now, the API later) feeds the same model and gets the same answers. Nothing here does
//! I/O.

pub mod records;
pub mod writer;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use hickory_proto::rr::Name;

/// `pods insecure|verified|disabled`: whether and how pod names (`1-2-3-4.ns.pod...`) answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodMode {
    Disabled,
    Insecure,
    Verified,
}

/// A service port. Port names are what `_name._proto` SRV names are built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Port {
    pub name: String,
    pub port: u16,
    pub protocol: Protocol,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    /// The label of SRV names: `_tcp`, `_udp`, `_sctp` without the underscore.
    pub fn label(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
            Self::Sctp => "sctp",
        }
    }

    /// Parses Kubernetes's `TCP`/`UDP`/`SCTP`; absent means TCP.
    pub fn parse(s: Option<&str>) -> Option<Self> {
        match s {
            None | Some("TCP") => Some(Self::Tcp),
            Some("UDP") => Some(Self::Udp),
            Some("SCTP") => Some(Self::Sctp),
            Some(_) => None,
        }
    }
}

/// What a service name resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceKind {
    /// `spec.clusterIPs`: one per IP family.
    ClusterIp(Vec<IpAddr>),
    /// `clusterIP: None`: the ready endpoints' addresses.
    Headless,
    /// A CNAME to `spec.externalName`.
    ExternalName(Name),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub namespace: String,
    pub name: String,
    pub kind: ServiceKind,
    pub ports: Vec<Port>,
    /// `spec.publishNotReadyAddresses`: every endpoint counts as ready.
    pub publish_not_ready: bool,
    /// `spec.externalIPs`, then each `status.loadBalancer.ingress` IP (or, without one, its
    /// host name), as written: what `k8s_external` answers with.
    pub external: Box<[Box<str>]>,
}

/// One endpoint: a pod (or anything) behind a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub addresses: Box<[IpAddr]>,
    /// `hostname`: the endpoint's name under the service.
    pub hostname: Option<Box<str>>,
    /// `conditions.ready`, where unset counts as ready.
    pub ready: bool,
    /// `targetRef.name`, used as the name under `endpoint_pod_names`.
    pub target_name: Option<Box<str>>,
    /// The EndpointSlice's `zone` (the topology zone it runs in), for `zonal`.
    pub zone: Option<Box<str>>,
}

/// The endpoints of one service from one EndpointSlice (or one v1 Endpoints object).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointSet {
    pub namespace: String,
    pub service: String,
    pub endpoints: Endpoints,
    pub ports: Vec<Port>,
}

/// Endpoints packed in one allocation, about 7 bytes for the usual one (one IPv4 address, no
/// hostname) where an [`Endpoint`] takes 70: a cluster has millions. Each: a flag byte (bit 0
/// ready, bit 1 hostname, bit 2 pod name, bit 3 zone), the address count, each address as 4 or
/// 6 and its bytes, then the hostname, pod name and zone, each as its length and bytes.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Endpoints(Box<[u8]>);

/// One endpoint as read from [`Endpoints`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndpointRef<'a> {
    pub ready: bool,
    pub hostname: Option<&'a str>,
    pub target_name: Option<&'a str>,
    pub zone: Option<&'a str>,
    addresses: &'a [u8],
}

impl<'a> EndpointRef<'a> {
    /// The endpoint's addresses, in order.
    pub fn addresses(&self) -> impl Iterator<Item = IpAddr> + 'a {
        unpack_addresses(self.addresses)
    }

    pub fn to_endpoint(&self) -> Endpoint {
        Endpoint {
            addresses: self.addresses().collect(),
            hostname: self.hostname.map(Into::into),
            ready: self.ready,
            target_name: self.target_name.map(Into::into),
            zone: self.zone.map(Into::into),
        }
    }
}

impl Endpoints {
    pub fn iter(&self) -> impl Iterator<Item = EndpointRef<'_>> {
        let mut rest = &self.0[..];
        std::iter::from_fn(move || {
            let (&flags, tail) = rest.split_first()?;
            let (&count, mut tail) = tail.split_first()?;
            let mut size = 0;
            for _ in 0..count {
                size += 1 + if *tail.get(size)? == 6 { 16 } else { 4 };
            }
            let addresses;
            (addresses, tail) = tail.split_at_checked(size)?;
            let mut text = |present: bool| -> Option<Option<&str>> {
                if !present {
                    return Some(None);
                }
                let (&len, after) = tail.split_first()?;
                let (bytes, after) = after.split_at_checked(usize::from(len))?;
                tail = after;
                Some(std::str::from_utf8(bytes).ok())
            };
            let hostname = text(flags & 2 != 0)?;
            let target_name = text(flags & 4 != 0)?;
            let zone = text(flags & 8 != 0)?;
            rest = tail;
            Some(EndpointRef {
                ready: flags & 1 != 0,
                hostname,
                target_name,
                zone,
                addresses,
            })
        })
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn to_vec(&self) -> Vec<Endpoint> {
        self.iter().map(|e| e.to_endpoint()).collect()
    }

    /// The same endpoints with only what `kept` says is used beyond addresses, hostname and
    /// readiness (not copied when there is nothing to drop).
    pub fn keeping(self, kept: Kept) -> Self {
        let drops = |e: &EndpointRef<'_>| {
            (!kept.pod_names && e.target_name.is_some()) || (!kept.zones && e.zone.is_some())
        };
        if !self.iter().any(|e| drops(&e)) {
            return self;
        }
        self.iter()
            .map(|e| {
                let ep = e.to_endpoint();
                Endpoint {
                    target_name: ep.target_name.filter(|_| kept.pod_names),
                    zone: ep.zone.filter(|_| kept.zones),
                    ..ep
                }
            })
            .collect()
    }
}

/// What the options use of an endpoint beyond its addresses, hostname and readiness: its pod
/// name (`endpoint_pod_names`) and its zone (`zonal`). Sources drop the rest early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kept {
    pub pod_names: bool,
    pub zones: bool,
}

impl FromIterator<Endpoint> for Endpoints {
    /// Packs endpoints. At most 255 addresses are kept per endpoint (the API allows 100), and
    /// names longer than 255 bytes (not valid in DNS anyway) are dropped.
    fn from_iter<I: IntoIterator<Item = Endpoint>>(endpoints: I) -> Self {
        let mut out = Vec::new();
        for ep in endpoints {
            fn short(s: &Option<Box<str>>) -> Option<&str> {
                s.as_deref().filter(|s| s.len() <= 255)
            }
            let (hostname, target, zone) =
                (short(&ep.hostname), short(&ep.target_name), short(&ep.zone));
            out.push(
                u8::from(ep.ready)
                    | u8::from(hostname.is_some()) << 1
                    | u8::from(target.is_some()) << 2
                    | u8::from(zone.is_some()) << 3,
            );
            let addresses = &ep.addresses[..ep.addresses.len().min(255)];
            out.push(addresses.len() as u8);
            pack_addresses(&mut out, addresses.iter().copied());
            for text in [hostname, target, zone].into_iter().flatten() {
                out.push(text.len() as u8);
                out.extend_from_slice(text.as_bytes());
            }
        }
        Self(out.into_boxed_slice())
    }
}

/// Addresses packed: each as 4 or 6 and its bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Addresses(Box<[u8]>);

impl Addresses {
    pub fn iter(&self) -> impl Iterator<Item = IpAddr> + '_ {
        unpack_addresses(&self.0)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromIterator<IpAddr> for Addresses {
    fn from_iter<I: IntoIterator<Item = IpAddr>>(ips: I) -> Self {
        let mut out = Vec::new();
        pack_addresses(&mut out, ips);
        Self(out.into_boxed_slice())
    }
}

fn pack_addresses(out: &mut Vec<u8>, ips: impl IntoIterator<Item = IpAddr>) {
    for ip in ips {
        match ip {
            IpAddr::V4(v4) => {
                out.push(4);
                out.extend_from_slice(&v4.octets());
            }
            IpAddr::V6(v6) => {
                out.push(6);
                out.extend_from_slice(&v6.octets());
            }
        }
    }
}

fn unpack_addresses(mut rest: &[u8]) -> impl Iterator<Item = IpAddr> + '_ {
    std::iter::from_fn(move || {
        let (&family, tail) = rest.split_first()?;
        let (ip, after) = if family == 6 {
            let (b, after) = tail.split_first_chunk::<16>()?;
            (IpAddr::from(*b), after)
        } else {
            let (b, after) = tail.split_first_chunk::<4>()?;
            (IpAddr::from(*b), after)
        };
        rest = after;
        Some(ip)
    })
}

impl From<Vec<Endpoint>> for Endpoints {
    fn from(endpoints: Vec<Endpoint>) -> Self {
        endpoints.into_iter().collect()
    }
}

impl std::fmt::Debug for Endpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pod {
    pub namespace: String,
    pub name: String,
    pub ips: Vec<IpAddr>,
}

/// Everything a source knows about the cluster, keyed as the API keys it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterObjects {
    pub namespaces: BTreeSet<String>,
    /// By (namespace, name).
    pub services: BTreeMap<(String, String), Service>,
    /// EndpointSlices by (namespace, slice name). Change them through `insert`/`remove`,
    /// which keep `slices_by_service` in step.
    pub slices: BTreeMap<(String, String), EndpointSet>,
    /// (namespace, service) to the names of its slices, sorted (a `Vec`: most services have
    /// one slice, and a one-element `BTreeSet` allocates a whole node).
    slices_by_service: BTreeMap<(String, String), Vec<String>>,
    /// v1 Endpoints by (namespace, service name), one set per subset; used only for services
    /// that have no EndpointSlice.
    pub endpoints: BTreeMap<(String, String), Vec<EndpointSet>>,
    /// By (namespace, name).
    pub pods: BTreeMap<(String, String), Pod>,
    /// Whether `namespaces` is the whole truth (the API source lists them): then a namespace
    /// exists only if listed. Manifest files may omit Namespace objects, so there a namespace
    /// also exists when any object is in it.
    pub namespaces_listed: bool,
}

impl ClusterObjects {
    /// Whether a namespace exists: named by a Namespace object, or holding any object.
    pub fn namespace_exists(&self, ns: &str) -> bool {
        self.namespaces.contains(ns)
            || !self.namespaces_listed
                && (self.services.keys().any(|(n, _)| n == ns)
                    || self.pods.keys().any(|(n, _)| n == ns))
    }

    /// Every namespace that exists.
    pub fn all_namespaces(&self) -> BTreeSet<String> {
        let mut all = self.namespaces.clone();
        if self.namespaces_listed {
            return all;
        }
        all.extend(self.services.keys().map(|(n, _)| n.clone()));
        all.extend(self.slices.values().map(|s| s.namespace.clone()));
        all.extend(self.pods.keys().map(|(n, _)| n.clone()));
        all
    }

    /// The endpoint sets of a service: its EndpointSlices, or its v1 Endpoints when it has none.
    pub fn endpoint_sets<'a>(&'a self, ns: &str, service: &str) -> Vec<&'a EndpointSet> {
        let key = (ns.to_string(), service.to_string());
        if let Some(names) = self.slices_by_service.get(&key) {
            let slices: Vec<_> = names
                .iter()
                .filter_map(|n| self.slices.get(&(ns.to_string(), n.clone())))
                .collect();
            if !slices.is_empty() {
                return slices;
            }
        }
        self.endpoints
            .get(&key)
            .map(|sets| sets.iter().collect())
            .unwrap_or_default()
    }

    /// Adds or replaces a slice, keeping the by-service index.
    pub fn insert_slice(&mut self, key: (String, String), set: EndpointSet) {
        self.remove_slice(&key);
        let names = self
            .slices_by_service
            .entry((set.namespace.clone(), set.service.clone()))
            .or_default();
        if let Err(at) = names.binary_search(&key.1) {
            names.insert(at, key.1.clone());
            // Most services have one slice: no room for three more.
            names.shrink_to_fit();
        }
        self.slices.insert(key, set);
    }

    /// Removes a slice, keeping the by-service index.
    pub fn remove_slice(&mut self, key: &(String, String)) {
        if let Some(old) = self.slices.remove(key) {
            let by = (old.namespace, old.service);
            if let Some(names) = self.slices_by_service.get_mut(&by) {
                names.retain(|n| *n != key.1);
                if names.is_empty() {
                    self.slices_by_service.remove(&by);
                }
            }
        }
    }

    /// Replaces every slice with `from`'s.
    pub fn replace_slices(&mut self, from: Self) {
        self.slices = from.slices;
        self.slices_by_service = from.slices_by_service;
    }
}

/// Whether `s` is a DNS label as Kubernetes allows it in names (RFC 1123, lowercase).
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// One object of a kind DNS reads, stripped to what DNS needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Object {
    Namespace(String),
    Service(Service),
    /// An EndpointSlice by (namespace, slice name); `None` when it serves no service.
    Slice(Key, Option<EndpointSet>),
    /// A v1 Endpoints object by (namespace, name), one set per subset.
    Endpoints(Key, Vec<EndpointSet>),
    Pod(Pod),
}

/// (namespace, name).
pub type Key = (String, String);

impl ClusterObjects {
    /// Adds or replaces an object.
    pub fn insert(&mut self, object: Object) {
        match object {
            Object::Namespace(name) => {
                self.namespaces.insert(name);
            }
            Object::Service(svc) => {
                self.services
                    .insert((svc.namespace.clone(), svc.name.clone()), svc);
            }
            Object::Slice(key, Some(set)) => self.insert_slice(key, set),
            Object::Slice(key, None) => self.remove_slice(&key),
            Object::Endpoints(key, sets) => {
                self.endpoints.insert(key, sets);
            }
            Object::Pod(pod) => {
                self.pods
                    .insert((pod.namespace.clone(), pod.name.clone()), pod);
            }
        }
    }

    /// Replaces every object of `kind` with those of that kind in `from` (a relist).
    pub fn replace_kind(&mut self, kind: Kind, from: Self) {
        match kind {
            Kind::Namespace => self.namespaces = from.namespaces,
            Kind::Service => self.services = from.services,
            Kind::EndpointSlice => self.replace_slices(from),
            Kind::Endpoints => self.endpoints = from.endpoints,
            Kind::Pod => self.pods = from.pods,
        }
    }

    /// Removes the object of `kind` with this key, if there is one.
    pub fn remove(&mut self, kind: Kind, key: &Key) {
        match kind {
            Kind::Namespace => {
                self.namespaces.remove(&key.1);
            }
            Kind::Service => {
                self.services.remove(key);
            }
            Kind::EndpointSlice => self.remove_slice(key),
            Kind::Endpoints => {
                self.endpoints.remove(key);
            }
            Kind::Pod => {
                self.pods.remove(key);
            }
        }
    }
}

/// The kinds DNS reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Namespace,
    Service,
    EndpointSlice,
    Endpoints,
    Pod,
}
