//! Kubernetes objects as JSON (as the API serves them and kubectl prints them) to the
//! [`crate::cluster`] model. Every source goes through here, so the same object gives the same
//! records whichever source brought it. Unknown fields are ignored; what DNS needs is checked.

use std::collections::BTreeMap;
use std::net::IpAddr;

use hickory_proto::rr::Name;
use serde::Deserialize;
use serde_json::Value;

use crate::cluster::{
    ClusterObjects, Endpoint, EndpointSet, Pod, Port, Protocol, Service, ServiceKind, is_dns_label,
};
pub use crate::cluster::{Key, Kind, Object};

/// The label that ties an EndpointSlice to its service.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// Where a Kubernetes kind is read: its `apiVersion` and `kind`.
impl Kind {
    /// The kind of an object from its `apiVersion` and `kind`; `None` for kinds DNS ignores.
    pub fn of(value: &Value) -> Option<Self> {
        let kind = value.get("kind").and_then(Value::as_str).unwrap_or("");
        let api = value
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("");
        match (api, kind) {
            ("v1", "Namespace") => Some(Self::Namespace),
            ("v1", "Service") => Some(Self::Service),
            ("discovery.k8s.io/v1" | "discovery.k8s.io/v1beta1", "EndpointSlice") => {
                Some(Self::EndpointSlice)
            }
            ("v1", "Endpoints") => Some(Self::Endpoints),
            ("v1", "Pod") => Some(Self::Pod),
            _ => None,
        }
    }
}

/// The (namespace, name) of an object, as written (namespace `default` when absent, and
/// empty for cluster-scoped kinds).
pub fn key_of(kind: Kind, value: &Value) -> Key {
    let meta = value.get("metadata");
    let field = |f: &str| {
        meta.and_then(|m| m.get(f))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let namespace = match kind {
        Kind::Namespace => String::new(),
        _ => field("namespace").unwrap_or_else(|| "default".into()),
    };
    (namespace, field("name").unwrap_or_default())
}

/// Adds one object to `objects` if it is of a kind DNS uses; other kinds are skipped.
pub fn add_object(value: &Value, objects: &mut ClusterObjects) -> Result<(), String> {
    if let Some(object) = convert(value)? {
        objects.insert(object);
    }
    Ok(())
}

/// Strips one object to the model; `Ok(None)` for kinds DNS does not read.
pub fn convert(value: &Value) -> Result<Option<Object>, String> {
    let kind_name = value.get("kind").and_then(Value::as_str).unwrap_or("");
    let Some(kind) = Kind::of(value) else {
        if kind_name.is_empty() {
            return Err("not a Kubernetes object (no kind)".into());
        }
        return Ok(None);
    };
    let object = match kind {
        Kind::Namespace => {
            let raw: RawNamespace = decode(value, kind_name)?;
            let name = raw
                .metadata
                .name
                .ok_or_else(|| format!("{kind_name} has no metadata.name"))?;
            check_label(&name, "metadata.name")?;
            Object::Namespace(name)
        }
        Kind::Service => Object::Service(service(decode(value, kind_name)?)?),
        Kind::EndpointSlice => {
            let raw: RawSlice = decode(value, kind_name)?;
            let (key, set) = slice(raw)?;
            Object::Slice(key, set)
        }
        Kind::Endpoints => {
            let (key, sets) = endpoints(decode(value, kind_name)?)?;
            Object::Endpoints(key, sets)
        }
        Kind::Pod => Object::Pod(pod(decode(value, kind_name)?)?),
    };
    Ok(Some(object))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Meta {
    name: Option<String>,
    namespace: Option<String>,
    labels: Option<BTreeMap<String, Value>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawService {
    metadata: Meta,
    spec: Option<ServiceSpec>,
    status: Option<ServiceStatus>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ServiceStatus {
    load_balancer: Option<LoadBalancerStatus>,
}

#[derive(Deserialize, Default)]
struct LoadBalancerStatus {
    ingress: Option<Vec<Ingress>>,
}

#[derive(Deserialize, Default)]
struct Ingress {
    ip: Option<String>,
    hostname: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ServiceSpec {
    #[serde(rename = "type")]
    kind: Option<String>,
    #[serde(rename = "clusterIP")]
    cluster_ip: Option<String>,
    #[serde(rename = "clusterIPs")]
    cluster_ips: Option<Vec<String>>,
    external_name: Option<String>,
    #[serde(rename = "externalIPs")]
    external_ips: Option<Vec<String>>,
    ports: Option<Vec<RawPort>>,
    publish_not_ready_addresses: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawPort {
    name: Option<String>,
    port: Option<i64>,
    protocol: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawSlice {
    metadata: Meta,
    address_type: Option<String>,
    endpoints: Option<Vec<RawEndpoint>>,
    ports: Option<Vec<RawPort>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawEndpoint {
    addresses: Option<Vec<String>>,
    conditions: Option<RawConditions>,
    hostname: Option<String>,
    target_ref: Option<RawRef>,
    zone: Option<String>,
}

#[derive(Deserialize)]
struct RawConditions {
    ready: Option<bool>,
}

#[derive(Deserialize)]
struct RawRef {
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawEndpoints {
    metadata: Meta,
    subsets: Option<Vec<RawSubset>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawSubset {
    addresses: Option<Vec<RawAddress>>,
    not_ready_addresses: Option<Vec<RawAddress>>,
    ports: Option<Vec<RawPort>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawAddress {
    ip: String,
    hostname: Option<String>,
    target_ref: Option<RawRef>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawPod {
    metadata: Meta,
    status: Option<PodStatus>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PodStatus {
    #[serde(rename = "podIP")]
    pod_ip: Option<String>,
    #[serde(rename = "podIPs")]
    pod_ips: Option<Vec<PodIp>>,
}

#[derive(Deserialize)]
struct PodIp {
    ip: String,
}

#[derive(Deserialize)]
struct RawNamespace {
    metadata: Meta,
}

fn decode<T: for<'de> Deserialize<'de>>(value: &Value, kind: &str) -> Result<T, String> {
    T::deserialize(value).map_err(|e| format!("{kind}: {e}"))
}

fn check_label(s: &str, field: &str) -> Result<(), String> {
    if is_dns_label(s) {
        Ok(())
    } else {
        Err(format!("{field} {s:?} is not a valid DNS label"))
    }
}

/// The namespace and name of an object, checked.
fn identity(meta: &Meta, kind: &str) -> Result<(String, String), String> {
    let name = meta
        .name
        .clone()
        .ok_or_else(|| format!("{kind} has no metadata.name"))?;
    let namespace = meta.namespace.clone().unwrap_or_else(|| "default".into());
    check_label(&namespace, "metadata.namespace")
        .map_err(|e| format!("{kind} {namespace}/{name}: {e}"))?;
    Ok((namespace, name))
}

fn ports(raw: Option<Vec<RawPort>>, what: &str) -> Result<Vec<Port>, String> {
    let mut out = Vec::new();
    for p in raw.unwrap_or_default() {
        let name = p.name.unwrap_or_default();
        // EndpointSlice ports may leave `port` unset ("all ports"): no SRV for those.
        let Some(number) = p.port else { continue };
        let port = u16::try_from(number)
            .ok()
            .filter(|&n| n != 0)
            .ok_or_else(|| format!("{what}: port {number} is out of range 1-65535"))?;
        let protocol = Protocol::parse(p.protocol.as_deref()).ok_or_else(|| {
            format!(
                "{what}: protocol {:?} is not TCP, UDP or SCTP",
                p.protocol.unwrap_or_default()
            )
        })?;
        if !name.is_empty() && !is_dns_label(&name) {
            return Err(format!(
                "{what}: port name {name:?} is not a valid DNS label"
            ));
        }
        out.push(Port {
            name,
            port,
            protocol,
        });
    }
    // Kept for the object's life: no room to grow (a first push reserves four).
    out.shrink_to_fit();
    Ok(out)
}

fn ip(s: &str, what: &str) -> Result<IpAddr, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("{what}: {s:?} is not an IP address"))
}

fn service(raw: RawService) -> Result<Service, String> {
    let (namespace, name) = identity(&raw.metadata, "Service")?;
    let what = format!("Service {namespace}/{name}");
    check_label(&name, "metadata.name").map_err(|e| format!("{what}: {e}"))?;
    let spec = raw.spec.unwrap_or_default();
    let kind = if spec.kind.as_deref() == Some("ExternalName") {
        let target = spec
            .external_name
            .filter(|t| !t.is_empty())
            .ok_or_else(|| format!("{what}: type ExternalName needs spec.externalName"))?;
        let mut target = Name::from_ascii(&target)
            .map_err(|e| format!("{what}: externalName {target:?}: {e}"))?;
        target.set_fqdn(true);
        ServiceKind::ExternalName(target)
    } else if spec.cluster_ip.as_deref() == Some("None") {
        ServiceKind::Headless
    } else {
        let listed = spec.cluster_ips.unwrap_or_default();
        let written: Vec<String> = if listed.is_empty() {
            spec.cluster_ip
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect()
        } else {
            listed
        };
        if written.iter().any(|s| s == "None") {
            ServiceKind::Headless
        } else {
            let mut ips: Vec<IpAddr> = written
                .iter()
                .map(|s| ip(s, &format!("{what}: spec.clusterIPs")))
                .collect::<Result<_, _>>()?;
            ips.shrink_to_fit();
            ServiceKind::ClusterIp(ips)
        }
    };
    // As CoreDNS takes them: the external IPs, then each load balancer ingress's IP, or its
    // host name when it has no IP.
    let ingress = raw
        .status
        .and_then(|s| s.load_balancer)
        .and_then(|l| l.ingress)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|i| i.ip.filter(|ip| !ip.is_empty()).or(i.hostname));
    let external: Box<[Box<str>]> = spec
        .external_ips
        .unwrap_or_default()
        .into_iter()
        .chain(ingress)
        .filter(|e| !e.is_empty())
        .map(String::into_boxed_str)
        .collect();
    Ok(Service {
        external,
        ports: ports(spec.ports, &format!("{what}: spec.ports"))?,
        namespace,
        name,
        kind,
        publish_not_ready: spec.publish_not_ready_addresses.unwrap_or(false),
    })
}

fn hostname(h: Option<String>, what: &str) -> Result<Option<String>, String> {
    match h {
        Some(h) if !h.is_empty() => {
            check_label(&h, "hostname").map_err(|e| format!("{what}: {e}"))?;
            Ok(Some(h))
        }
        _ => Ok(None),
    }
}

/// Something keyed by (namespace, name), as [`ClusterObjects`] keys it.
type Keyed<T> = (Key, T);

fn slice(raw: RawSlice) -> Result<Keyed<Option<EndpointSet>>, String> {
    let (namespace, name) = identity(&raw.metadata, "EndpointSlice")?;
    let what = format!("EndpointSlice {namespace}/{name}");
    let service = raw
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(SERVICE_NAME_LABEL))
        .and_then(Value::as_str)
        .map(str::to_string);
    // A slice without the label belongs to no service; FQDN slices carry no addresses.
    let key = (namespace.clone(), name.clone());
    let Some(service) = service else {
        return Ok((key, None));
    };
    let family = raw.address_type.unwrap_or_default();
    if family == "FQDN" {
        return Ok((key, None));
    }
    let mut endpoints = Vec::new();
    for ep in raw.endpoints.unwrap_or_default() {
        let addresses = ep
            .addresses
            .unwrap_or_default()
            .iter()
            .map(|a| ip(a, &format!("{what}: endpoints.addresses")))
            .collect::<Result<Vec<_>, _>>()?;
        endpoints.push(Endpoint {
            addresses: addresses.into(),
            hostname: hostname(ep.hostname, &what)?.map(Into::into),
            ready: ep.conditions.and_then(|c| c.ready).unwrap_or(true),
            target_name: ep.target_ref.and_then(|t| t.name).map(Into::into),
            zone: ep.zone.filter(|z| !z.is_empty()).map(Into::into),
        });
    }
    Ok((
        key,
        Some(EndpointSet {
            namespace,
            service,
            endpoints: endpoints.into(),
            ports: ports(raw.ports, &format!("{what}: ports"))?,
        }),
    ))
}

fn endpoints(raw: RawEndpoints) -> Result<Keyed<Vec<EndpointSet>>, String> {
    let (namespace, name) = identity(&raw.metadata, "Endpoints")?;
    let what = format!("Endpoints {namespace}/{name}");
    let mut sets = Vec::new();
    for subset in raw.subsets.unwrap_or_default() {
        let mut endpoints = Vec::new();
        let ready = subset
            .addresses
            .unwrap_or_default()
            .into_iter()
            .map(|a| (a, true));
        let not_ready = subset
            .not_ready_addresses
            .unwrap_or_default()
            .into_iter()
            .map(|a| (a, false));
        for (a, ready) in ready.chain(not_ready) {
            endpoints.push(Endpoint {
                addresses: [ip(&a.ip, &format!("{what}: subsets.addresses"))?].into(),
                hostname: hostname(a.hostname, &what)?.map(Into::into),
                ready,
                target_name: a.target_ref.and_then(|t| t.name).map(Into::into),
                // v1 Endpoints carry no zone.
                zone: None,
            });
        }
        sets.push(EndpointSet {
            namespace: namespace.clone(),
            service: name.clone(),
            endpoints: endpoints.into(),
            ports: ports(subset.ports, &format!("{what}: subsets.ports"))?,
        });
    }
    Ok(((namespace, name), sets))
}

fn pod(raw: RawPod) -> Result<Pod, String> {
    let (namespace, name) = identity(&raw.metadata, "Pod")?;
    let what = format!("Pod {namespace}/{name}");
    let status = raw.status;
    let mut ips: Vec<IpAddr> = Vec::new();
    if let Some(status) = status {
        let listed = status.pod_ips.unwrap_or_default();
        let written: Vec<String> = if listed.is_empty() {
            status
                .pod_ip
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect()
        } else {
            listed.into_iter().map(|p| p.ip).collect()
        };
        for s in written {
            ips.push(ip(&s, &format!("{what}: status.podIPs"))?);
        }
    }
    ips.shrink_to_fit();
    Ok(Pod {
        namespace,
        name,
        ips,
    })
}
