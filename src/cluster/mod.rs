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
}

/// The endpoints of one service from one EndpointSlice (or one v1 Endpoints object).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointSet {
    pub namespace: String,
    pub service: String,
    pub endpoints: Vec<Endpoint>,
    pub ports: Vec<Port>,
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
