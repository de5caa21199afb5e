//! The manifests source: Kubernetes objects read from YAML and JSON files.
//!
//! A file holds one object, several YAML documents, or a `v1 List` as
//! `kubectl get namespaces,services,endpointslices,pods -A -o yaml` prints it. Objects are
//! stripped to the [`crate::cluster`] model here, at the boundary; other kinds are skipped.
//! A set of files is read whole or not at all: any error names its file and line and yields
//! no objects, so the caller keeps serving the last good set.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use hickory_proto::rr::Name;
use serde::Deserialize;
use serde_json::Value;

use crate::cluster::{
    ClusterObjects, Endpoint, EndpointSet, Pod, Port, Protocol, Service, ServiceKind, is_dns_label,
};

/// A manifest that cannot be read or understood.
#[derive(Debug, thiserror::Error)]
#[error("{}:{line}: {message}", path.display())]
pub struct ManifestError {
    pub path: PathBuf,
    /// 1-based; 0 when the file could not be read at all.
    pub line: usize,
    pub message: String,
}

/// The label that ties an EndpointSlice to its service.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// The files named by `paths`: files as they are, directories' `.yaml`, `.yml` and `.json`
/// files (not hidden ones, so a mounted ConfigMap's `..data` is skipped), sorted.
pub fn files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, ManifestError> {
    let mut out = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path).map_err(|e| ManifestError {
            path: path.clone(),
            line: 0,
            message: e.to_string(),
        })?;
        if !meta.is_dir() {
            out.push(path.clone());
            continue;
        }
        let entries = std::fs::read_dir(path).map_err(|e| ManifestError {
            path: path.clone(),
            line: 0,
            message: e.to_string(),
        })?;
        let mut found: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                let name = p.file_name().and_then(|n| n.to_str()).unwrap_or(".");
                !name.starts_with('.')
                    && [".yaml", ".yml", ".json"].iter().any(|x| name.ends_with(x))
                    && p.is_file()
            })
            .collect();
        found.sort();
        out.extend(found);
    }
    Ok(out)
}

/// What a change on disk is detected by: each file's path, modification time and size.
pub type Fingerprint = Vec<(PathBuf, Option<SystemTime>, u64)>;

/// The current fingerprint of `paths`; unreadable paths count as absent.
pub fn fingerprint(paths: &[PathBuf]) -> Fingerprint {
    let mut all: Vec<PathBuf> = Vec::new();
    for p in paths {
        match files(std::slice::from_ref(p)) {
            Ok(f) => all.extend(f),
            Err(_) => all.push(p.clone()),
        }
    }
    all.into_iter()
        .map(|p| {
            let meta = std::fs::metadata(&p).ok();
            let modified = meta.as_ref().and_then(|m| m.modified().ok());
            let len = meta.map(|m| m.len()).unwrap_or(0);
            (p, modified, len)
        })
        .collect()
}

/// Reads every manifest under `paths` into one set of objects.
pub fn load(paths: &[PathBuf]) -> Result<ClusterObjects, ManifestError> {
    let mut objects = ClusterObjects::default();
    for file in files(paths)? {
        let text = std::fs::read_to_string(&file).map_err(|e| ManifestError {
            path: file.clone(),
            line: 0,
            message: e.to_string(),
        })?;
        parse_into(&text, &file, &mut objects)?;
    }
    Ok(objects)
}

/// Parses one file's text into `objects`. Later objects replace earlier ones with the same key.
pub fn parse_into(
    text: &str,
    path: &Path,
    objects: &mut ClusterObjects,
) -> Result<(), ManifestError> {
    let error = |line: usize, message: String| ManifestError {
        path: path.to_path_buf(),
        line,
        message,
    };
    let is_json = path.extension().is_some_and(|e| e == "json");
    for (start, doc) in documents(text, is_json) {
        let value: Value = if is_json {
            serde_json::from_str(doc)
                .map_err(|e| error(start + e.line().max(1) - 1, e.to_string()))?
        } else {
            serde_norway::from_str(doc).map_err(|e| {
                let line = e.location().map(|l| l.line()).unwrap_or(1);
                error(start + line - 1, e.to_string())
            })?
        };
        if value.is_null() {
            continue;
        }
        let kind = value.get("kind").and_then(Value::as_str).unwrap_or("");
        if kind.ends_with("List") {
            let items = match value.get("items") {
                None | Some(Value::Null) => continue,
                Some(Value::Array(items)) => items,
                Some(_) => return Err(error(start, format!("{kind}: items is not a list"))),
            };
            let lines = item_lines(doc);
            for (i, item) in items.iter().enumerate() {
                let line = lines.get(i).map_or(start, |l| start + l);
                add_object(item, objects).map_err(|m| error(line, format!("items[{i}]: {m}")))?;
            }
        } else {
            add_object(&value, objects).map_err(|m| error(start, m))?;
        }
    }
    Ok(())
}

/// Splits YAML text into documents at `---` lines, each with its first line's number.
fn documents(text: &str, is_json: bool) -> Vec<(usize, &str)> {
    if is_json {
        return vec![(1, text)];
    }
    let mut docs = Vec::new();
    let mut start_byte = 0;
    let mut start_line = 1;
    let mut offset = 0;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let trimmed = line.trim_end();
        if trimmed == "---" || trimmed.starts_with("--- ") || trimmed == "..." {
            docs.push((start_line, &text[start_byte..offset]));
            start_byte = offset + line.len();
            start_line = i + 2;
        }
        offset += line.len();
    }
    docs.push((start_line, &text[start_byte..]));
    docs.retain(|(_, d)| !d.trim().is_empty());
    docs
}

/// The 0-based line of each item of a List's `items:` sequence, found by indentation.
fn item_lines(doc: &str) -> Vec<usize> {
    let mut lines = doc.lines().enumerate();
    if !lines.any(|(_, l)| l.trim_end() == "items:") {
        return Vec::new();
    }
    let mut indent = None;
    let mut out = Vec::new();
    for (i, line) in lines {
        let trimmed = line.trim_start();
        let this = line.len() - trimmed.len();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if trimmed.starts_with("- ") || trimmed == "-" {
            match indent {
                None => {
                    indent = Some(this);
                    out.push(i);
                }
                Some(n) if n == this => out.push(i),
                _ => {}
            }
        } else if this == 0 {
            // The next top-level key: the sequence is over.
            break;
        }
    }
    out
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

/// Adds one object of a kind DNS uses; other kinds are skipped.
fn add_object(value: &Value, objects: &mut ClusterObjects) -> Result<(), String> {
    let kind = value.get("kind").and_then(Value::as_str).unwrap_or("");
    let api = value
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    let typed = |what: &str| format!("{kind} {what}");
    match (api, kind) {
        ("v1", "Namespace") => {
            let raw: RawNamespace = decode(value, kind)?;
            let name = raw
                .metadata
                .name
                .ok_or_else(|| typed("has no metadata.name"))?;
            check_label(&name, "metadata.name")?;
            objects.namespaces.insert(name);
        }
        ("v1", "Service") => {
            let raw: RawService = decode(value, kind)?;
            let svc = service(raw)?;
            objects
                .services
                .insert((svc.namespace.clone(), svc.name.clone()), svc);
        }
        ("discovery.k8s.io/v1" | "discovery.k8s.io/v1beta1", "EndpointSlice") => {
            let raw: RawSlice = decode(value, kind)?;
            if let Some((key, set)) = slice(raw)? {
                objects.slices.insert(key, set);
            }
        }
        ("v1", "Endpoints") => {
            let raw: RawEndpoints = decode(value, kind)?;
            let (key, sets) = endpoints(raw)?;
            objects.endpoints.insert(key, sets);
        }
        ("v1", "Pod") => {
            let raw: RawPod = decode(value, kind)?;
            let pod = pod(raw)?;
            objects
                .pods
                .insert((pod.namespace.clone(), pod.name.clone()), pod);
        }
        ("", _) if kind.is_empty() => return Err("not a Kubernetes object (no kind)".into()),
        _ => {}
    }
    Ok(())
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
            let ips = written
                .iter()
                .map(|s| ip(s, &format!("{what}: spec.clusterIPs")))
                .collect::<Result<_, _>>()?;
            ServiceKind::ClusterIp(ips)
        }
    };
    Ok(Service {
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

fn slice(raw: RawSlice) -> Result<Option<((String, String), EndpointSet)>, String> {
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
    let Some(service) = service else {
        return Ok(None);
    };
    let family = raw.address_type.unwrap_or_default();
    if family == "FQDN" {
        return Ok(None);
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
            addresses,
            hostname: hostname(ep.hostname, &what)?,
            ready: ep.conditions.and_then(|c| c.ready).unwrap_or(true),
            target_name: ep.target_ref.and_then(|t| t.name),
        });
    }
    Ok(Some((
        (namespace.clone(), name),
        EndpointSet {
            namespace,
            service,
            endpoints,
            ports: ports(raw.ports, &format!("{what}: ports"))?,
        },
    )))
}

fn endpoints(raw: RawEndpoints) -> Result<((String, String), Vec<EndpointSet>), String> {
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
                addresses: vec![ip(&a.ip, &format!("{what}: subsets.addresses"))?],
                hostname: hostname(a.hostname, &what)?,
                ready,
                target_name: a.target_ref.and_then(|t| t.name),
            });
        }
        sets.push(EndpointSet {
            namespace: namespace.clone(),
            service: name.clone(),
            endpoints,
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
    Ok(Pod {
        namespace,
        name,
        ips,
    })
}
