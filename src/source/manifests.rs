//! The manifests source: Kubernetes objects read from YAML and JSON files.
//!
//! A file holds one object, several YAML documents, or a `v1 List` as
//! `kubectl get namespaces,services,endpointslices,pods -A -o yaml` prints it. Objects are
//! stripped to the [`crate::cluster`] model here, at the boundary; other kinds are skipped.
//! A set of files is read whole or not at all: any error names its file and line and yields
//! no objects, so the caller keeps serving the last good set.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde_json::Value;

use super::convert::add_object;
use crate::cluster::ClusterObjects;

/// A manifest that cannot be read or understood.
#[derive(Debug, thiserror::Error)]
#[error("{}:{line}: {message}", path.display())]
pub struct ManifestError {
    pub path: PathBuf,
    /// 1-based; 0 when the file could not be read at all.
    pub line: usize,
    pub message: String,
}

/// The files named by `paths`: files as they are, directories' `.yaml`, `.yml` and `.json`
/// files (not hidden ones, so a mounted ConfigMap's `..data` is skipped), sorted.
/// Manifest files as a source: all of them read at start (any error stops it), then read
/// again whole whenever one changes (checked every `reload`; a failed read keeps the last
/// good objects).
#[derive(Debug)]
pub struct ManifestSource {
    pub paths: Vec<PathBuf>,
    pub reload: std::time::Duration,
}

impl super::Source<crate::cluster::writer::ClusterWriter> for ManifestSource {
    fn load(
        &mut self,
        writer: &mut crate::cluster::writer::ClusterWriter,
    ) -> Result<bool, ManifestError> {
        let objects = load(&self.paths)?;
        writer.apply(vec![crate::cluster::writer::Change::ReplaceAll(objects)]);
        Ok(true)
    }

    fn run(
        self: Box<Self>,
        mut writer: crate::cluster::writer::ClusterWriter,
        _ready: std::sync::Arc<std::sync::atomic::AtomicBool>,
    ) -> super::Background {
        let Self { paths, reload } = *self;
        let read = paths.clone();
        Box::pin(super::watch_files("manifests", paths, reload, move || {
            let objects = load(&read).map_err(|e| e.to_string())?;
            writer.apply(vec![crate::cluster::writer::Change::ReplaceAll(objects)]);
            Ok(())
        }))
    }
}

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

/// What a change on disk is detected by: each file's path, modification time, size and inode.
pub type Fingerprint = Vec<(PathBuf, Option<SystemTime>, u64, u64)>;

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
            let len = meta.as_ref().map_or(0, |m| m.len());
            // The inode too: file times are coarse (a few ms), and a file replaced by rename
            // (as editors and ConfigMap updates do) within one tick keeps time and maybe size.
            let inode = meta.as_ref().map_or(0, std::os::unix::fs::MetadataExt::ino);
            (p, modified, len, inode)
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
                let (line, message) = yaml_error(doc, start, e);
                error(line, message)
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

/// A YAML syntax error's line in the file, and its message. The parser counts lines from the
/// start of the document it was given, in its message too ("at line 3 column 5"), so a failed
/// document is parsed again behind blank lines standing for the ones before it.
fn yaml_error(doc: &str, start: usize, first: serde_norway::Error) -> (usize, String) {
    let padded = "\n".repeat(start - 1) + doc;
    match serde_norway::from_str::<Value>(&padded) {
        Err(e) => (e.location().map_or(start, |l| l.line()), e.to_string()),
        Ok(_) => (
            start + first.location().map_or(1, |l| l.line()) - 1,
            first.to_string(),
        ),
    }
}

/// Splits YAML text into documents at `---` lines, each with its first line's number. A
/// document starts at its first line that is neither blank nor a comment, so that errors point
/// at the object rather than at what precedes it; documents with no such line are dropped.
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
    docs.into_iter()
        .filter_map(|(line, doc)| skip_blank_and_comments(line, doc))
        .collect()
}

/// `doc` from its first line that is neither blank nor a comment, with that line's number.
fn skip_blank_and_comments(mut line: usize, mut doc: &str) -> Option<(usize, &str)> {
    while !doc.is_empty() {
        let (first, rest) = doc.split_once('\n').unwrap_or((doc, ""));
        let content = first.trim();
        if !content.is_empty() && !content.starts_with('#') {
            return Some((line, doc));
        }
        doc = rest;
        line += 1;
    }
    None
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

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;
    use hickory_proto::rr::Name;

    use crate::cluster::{Endpoint, EndpointSet, Endpoints, Port, Protocol, ServiceKind};

    /// What `kubectl get namespaces,services,endpointslices,pods -A -o yaml
    /// --show-managed-fields` prints, trimmed to a handful of objects.
    const KUBECTL_LIST: &str = r#"apiVersion: v1
items:
- apiVersion: v1
  kind: Namespace
  metadata:
    creationTimestamp: "2024-05-02T09:14:11Z"
    labels:
      kubernetes.io/metadata.name: default
    managedFields:
    - apiVersion: v1
      fieldsType: FieldsV1
      fieldsV1:
        f:metadata:
          f:labels:
            .: {}
            f:kubernetes.io/metadata.name: {}
      manager: kube-apiserver
      operation: Update
      time: "2024-05-02T09:14:11Z"
    name: default
    resourceVersion: "196"
    uid: 5f0c9a57-3c1e-4c1b-9d61-0f2b8a1f4a10
  spec:
    finalizers:
    - kubernetes
  status:
    phase: Active
- apiVersion: v1
  kind: Namespace
  metadata:
    annotations:
      kubectl.kubernetes.io/last-applied-configuration: |
        {"apiVersion":"v1","kind":"Namespace","metadata":{"annotations":{},"name":"prod"}}
    creationTimestamp: "2024-05-03T11:02:45Z"
    labels:
      kubernetes.io/metadata.name: prod
    name: prod
    resourceVersion: "51873"
    uid: 0a5bd7c2-8e0f-4b55-a7f4-0c3de1f0e6a2
  spec:
    finalizers:
    - kubernetes
  status:
    phase: Active
- apiVersion: v1
  kind: Service
  metadata:
    creationTimestamp: "2024-05-02T09:14:13Z"
    labels:
      component: apiserver
      provider: kubernetes
    name: kubernetes
    namespace: default
    resourceVersion: "233"
    uid: 3e9b6f61-2c1a-4a9e-8d8e-59c0e2f1d7b3
  spec:
    clusterIP: 10.96.0.1
    clusterIPs:
    - 10.96.0.1
    internalTrafficPolicy: Cluster
    ipFamilies:
    - IPv4
    ipFamilyPolicy: SingleStack
    ports:
    - name: https
      port: 443
      protocol: TCP
      targetPort: 6443
    sessionAffinity: None
    type: ClusterIP
  status:
    loadBalancer: {}
- apiVersion: v1
  kind: Service
  metadata:
    annotations:
      kubectl.kubernetes.io/last-applied-configuration: |
        {"apiVersion":"v1","kind":"Service","metadata":{"annotations":{},"name":"web","namespace":"prod"},"spec":{"ipFamilyPolicy":"PreferDualStack","ports":[{"name":"http","port":80,"targetPort":8080}],"selector":{"app":"web"}}}
    creationTimestamp: "2024-05-03T11:03:01Z"
    labels:
      app: web
    managedFields:
    - apiVersion: v1
      fieldsType: FieldsV1
      fieldsV1:
        f:metadata:
          f:annotations:
            .: {}
            f:kubectl.kubernetes.io/last-applied-configuration: {}
        f:spec:
          f:internalTrafficPolicy: {}
          f:ipFamilyPolicy: {}
          f:ports:
            .: {}
            k:{"port":80,"protocol":"TCP"}:
              .: {}
              f:name: {}
              f:port: {}
              f:protocol: {}
              f:targetPort: {}
          f:selector: {}
          f:sessionAffinity: {}
          f:type: {}
      manager: kubectl-client-side-apply
      operation: Update
      time: "2024-05-03T11:03:01Z"
    name: web
    namespace: prod
    resourceVersion: "51904"
    uid: 7c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f
  spec:
    clusterIP: 10.96.12.34
    clusterIPs:
    - 10.96.12.34
    - fd00:10:96::1234
    internalTrafficPolicy: Cluster
    ipFamilies:
    - IPv4
    - IPv6
    ipFamilyPolicy: PreferDualStack
    ports:
    - name: http
      port: 80
      protocol: TCP
      targetPort: 8080
    - name: dns
      port: 53
      protocol: UDP
      targetPort: 5353
    selector:
      app: web
    sessionAffinity: None
    type: ClusterIP
  status:
    loadBalancer: {}
- apiVersion: v1
  kind: Service
  metadata:
    creationTimestamp: "2024-05-03T11:03:02Z"
    labels:
      app: db
    name: db
    namespace: prod
    resourceVersion: "51911"
    uid: 1b2c3d4e-5f60-4718-9a0b-1c2d3e4f5a6b
  spec:
    clusterIP: None
    clusterIPs:
    - None
    internalTrafficPolicy: Cluster
    ipFamilies:
    - IPv4
    ipFamilyPolicy: SingleStack
    ports:
    - name: postgres
      port: 5432
      protocol: TCP
      targetPort: 5432
    publishNotReadyAddresses: true
    selector:
      app: db
    sessionAffinity: None
    type: ClusterIP
  status:
    loadBalancer: {}
- apiVersion: v1
  kind: Service
  metadata:
    creationTimestamp: "2024-05-03T11:03:03Z"
    name: search
    namespace: prod
    resourceVersion: "51920"
    uid: 9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a
  spec:
    externalName: search.example.com
    sessionAffinity: None
    type: ExternalName
  status:
    loadBalancer: {}
- addressType: IPv4
  apiVersion: discovery.k8s.io/v1
  endpoints:
  - addresses:
    - 10.244.1.5
    conditions:
      ready: true
      serving: true
      terminating: false
    nodeName: worker-1
    targetRef:
      kind: Pod
      name: web-7d4b9c-x2x9z
      namespace: prod
      uid: 2d3e4f5a-6b7c-4d8e-9f0a-1b2c3d4e5f6a
  - addresses:
    - 10.244.2.7
    conditions:
      ready: false
      serving: false
      terminating: false
    nodeName: worker-2
    targetRef:
      kind: Pod
      name: web-7d4b9c-q8r7t
      namespace: prod
      uid: 3e4f5a6b-7c8d-4e9f-8a1b-2c3d4e5f6a7b
  kind: EndpointSlice
  metadata:
    annotations:
      endpoints.kubernetes.io/last-change-trigger-time: "2024-05-03T11:05:12Z"
    creationTimestamp: "2024-05-03T11:03:01Z"
    generateName: web-
    generation: 4
    labels:
      endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io
      kubernetes.io/service-name: web
    name: web-abc12
    namespace: prod
    ownerReferences:
    - apiVersion: v1
      blockOwnerDeletion: true
      controller: true
      kind: Service
      name: web
      uid: 7c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f
    resourceVersion: "52210"
    uid: 4f5a6b7c-8d9e-4f0a-9b1c-2d3e4f5a6b7c
  ports:
  - name: http
    port: 8080
    protocol: TCP
  - name: dns
    port: 5353
    protocol: UDP
- addressType: IPv6
  apiVersion: discovery.k8s.io/v1
  endpoints:
  - addresses:
    - fd00:10:244:1::5
    conditions:
      ready: true
      serving: true
      terminating: false
    nodeName: worker-1
    targetRef:
      kind: Pod
      name: web-7d4b9c-x2x9z
      namespace: prod
      uid: 2d3e4f5a-6b7c-4d8e-9f0a-1b2c3d4e5f6a
  kind: EndpointSlice
  metadata:
    creationTimestamp: "2024-05-03T11:03:01Z"
    generateName: web-
    generation: 2
    labels:
      endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io
      kubernetes.io/service-name: web
    name: web-v6x9k
    namespace: prod
    resourceVersion: "52211"
    uid: 5a6b7c8d-9e0f-4a1b-8c2d-3e4f5a6b7c8d
  ports:
  - name: http
    port: 8080
    protocol: TCP
- addressType: IPv4
  apiVersion: discovery.k8s.io/v1
  endpoints:
  - addresses:
    - 10.244.3.9
    conditions: {}
    hostname: db-0
    nodeName: worker-3
    targetRef:
      kind: Pod
      name: db-0
      namespace: prod
      uid: 6b7c8d9e-0f1a-4b2c-9d3e-4f5a6b7c8d9e
  kind: EndpointSlice
  metadata:
    creationTimestamp: "2024-05-03T11:03:02Z"
    generateName: db-
    generation: 1
    labels:
      endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io
      kubernetes.io/service-name: db
      service.kubernetes.io/headless: ""
    name: db-m4n5p
    namespace: prod
    resourceVersion: "52300"
    uid: 7c8d9e0f-1a2b-4c3d-8e4f-5a6b7c8d9e0f
  ports:
  - name: postgres
    port: 5432
    protocol: TCP
- addressType: IPv4
  apiVersion: discovery.k8s.io/v1
  endpoints: null
  kind: EndpointSlice
  metadata:
    creationTimestamp: "2024-05-03T11:03:03Z"
    generateName: idle-
    labels:
      kubernetes.io/service-name: idle
    name: idle-z9y8x
    namespace: prod
    resourceVersion: "52301"
    uid: 8d9e0f1a-2b3c-4d4e-9f5a-6b7c8d9e0f1a
  ports: null
- apiVersion: v1
  kind: Pod
  metadata:
    creationTimestamp: "2024-05-03T11:03:05Z"
    generateName: web-7d4b9c-
    labels:
      app: web
      pod-template-hash: 7d4b9c
    name: web-7d4b9c-x2x9z
    namespace: prod
    ownerReferences:
    - apiVersion: apps/v1
      blockOwnerDeletion: true
      controller: true
      kind: ReplicaSet
      name: web-7d4b9c
      uid: 9e0f1a2b-3c4d-4e5f-8a6b-7c8d9e0f1a2b
    resourceVersion: "52208"
    uid: 2d3e4f5a-6b7c-4d8e-9f0a-1b2c3d4e5f6a
  spec:
    containers:
    - image: nginx:1.25
      imagePullPolicy: IfNotPresent
      name: web
      ports:
      - containerPort: 8080
        protocol: TCP
      resources: {}
    dnsPolicy: ClusterFirst
    nodeName: worker-1
    restartPolicy: Always
  status:
    conditions:
    - lastProbeTime: null
      lastTransitionTime: "2024-05-03T11:03:09Z"
      status: "True"
      type: Ready
    containerStatuses:
    - containerID: containerd://4b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c
      image: docker.io/library/nginx:1.25
      name: web
      ready: true
      restartCount: 0
      started: true
      state:
        running:
          startedAt: "2024-05-03T11:03:08Z"
    hostIP: 172.18.0.3
    hostIPs:
    - ip: 172.18.0.3
    phase: Running
    podIP: 10.244.1.5
    podIPs:
    - ip: 10.244.1.5
    - ip: fd00:10:244:1::5
    qosClass: BestEffort
    startTime: "2024-05-03T11:03:05Z"
- apiVersion: v1
  kind: Pod
  metadata:
    creationTimestamp: "2024-05-03T11:09:40Z"
    name: pending
    namespace: prod
    resourceVersion: "52400"
    uid: 0f1a2b3c-4d5e-4f6a-9b7c-8d9e0f1a2b3c
  spec:
    containers:
    - image: busybox
      name: c
  status:
    phase: Pending
    qosClass: BestEffort
kind: List
metadata:
  resourceVersion: ""
"#;

    fn parse(path: &str, text: &str) -> Result<ClusterObjects, ManifestError> {
        let mut objects = ClusterObjects::default();
        parse_into(text, Path::new(path), &mut objects)?;
        Ok(objects)
    }

    fn ips<T: FromIterator<IpAddr>>(list: &[&str]) -> T {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    fn key(ns: &str, name: &str) -> (String, String) {
        (ns.to_string(), name.to_string())
    }

    fn port(name: &str, port: u16, protocol: Protocol) -> Port {
        Port {
            name: name.into(),
            port,
            protocol,
        }
    }

    /// The 1-based number of the one line of `text` that contains `needle`.
    fn line_of(text: &str, needle: &str) -> usize {
        let found: Vec<usize> = text
            .lines()
            .enumerate()
            .filter(|(_, l)| l.contains(needle))
            .map(|(i, _)| i + 1)
            .collect();
        assert_eq!(found.len(), 1, "{needle:?} must be on exactly one line");
        found[0]
    }

    #[test]
    fn a_kubectl_list_yields_its_namespaces_services_slices_and_pods() {
        let o = parse("cluster.yaml", KUBECTL_LIST).unwrap();

        assert_eq!(
            o.namespaces.iter().map(String::as_str).collect::<Vec<_>>(),
            ["default", "prod"]
        );

        assert_eq!(o.services.len(), 4);
        let api = &o.services[&key("default", "kubernetes")];
        assert_eq!(api.kind, ServiceKind::ClusterIp(ips(&["10.96.0.1"])));
        assert_eq!(api.ports, [port("https", 443, Protocol::Tcp)]);
        assert!(!api.publish_not_ready);

        let web = &o.services[&key("prod", "web")];
        assert_eq!(
            web.kind,
            ServiceKind::ClusterIp(ips(&["10.96.12.34", "fd00:10:96::1234"]))
        );
        assert_eq!(
            web.ports,
            [
                port("http", 80, Protocol::Tcp),
                port("dns", 53, Protocol::Udp)
            ]
        );

        let db = &o.services[&key("prod", "db")];
        assert_eq!(db.kind, ServiceKind::Headless);
        assert!(db.publish_not_ready);
        assert_eq!(db.ports, [port("postgres", 5432, Protocol::Tcp)]);

        let search = &o.services[&key("prod", "search")];
        assert_eq!(
            search.kind,
            ServiceKind::ExternalName(Name::from_ascii("search.example.com.").unwrap())
        );
        assert!(search.ports.is_empty());

        assert_eq!(o.slices.len(), 4);
        let v4 = &o.slices[&key("prod", "web-abc12")];
        assert_eq!(v4.namespace, "prod");
        assert_eq!(v4.service, "web");
        assert_eq!(
            v4.endpoints.to_vec(),
            [
                Endpoint {
                    addresses: ips(&["10.244.1.5"]),
                    hostname: None,
                    ready: true,
                    target_name: Some("web-7d4b9c-x2x9z".into()),
                    zone: None,
                },
                Endpoint {
                    addresses: ips(&["10.244.2.7"]),
                    hostname: None,
                    ready: false,
                    target_name: Some("web-7d4b9c-q8r7t".into()),
                    zone: None,
                },
            ]
        );
        assert_eq!(
            v4.ports,
            [
                port("http", 8080, Protocol::Tcp),
                port("dns", 5353, Protocol::Udp)
            ]
        );
        let v6 = &o.slices[&key("prod", "web-v6x9k")];
        assert_eq!(v6.service, "web");
        assert_eq!(
            v6.endpoints.to_vec()[0].addresses,
            ips(&["fd00:10:244:1::5"])
        );

        let db_slice = &o.slices[&key("prod", "db-m4n5p")];
        assert_eq!(
            db_slice.endpoints.to_vec(),
            [Endpoint {
                addresses: ips(&["10.244.3.9"]),
                hostname: Some("db-0".into()),
                // `conditions: {}`: an unset ready counts as ready.
                ready: true,
                target_name: Some("db-0".into()),
                zone: None,
            }]
        );
        let idle = &o.slices[&key("prod", "idle-z9y8x")];
        assert!(idle.endpoints.is_empty() && idle.ports.is_empty());

        let sets = o.endpoint_sets("prod", "web");
        assert_eq!(sets.len(), 2, "both address families' slices belong to web");

        assert_eq!(o.pods.len(), 2);
        assert_eq!(
            o.pods[&key("prod", "web-7d4b9c-x2x9z")].ips,
            ips::<Vec<_>>(&["10.244.1.5", "fd00:10:244:1::5"])
        );
        assert!(o.pods[&key("prod", "pending")].ips.is_empty());
        assert!(o.endpoints.is_empty());
    }

    #[test]
    fn a_kubectl_list_reads_the_same_from_json() {
        let value: Value = serde_norway::from_str(KUBECTL_LIST).unwrap();
        let json = serde_json::to_string_pretty(&value).unwrap();
        assert_eq!(
            parse("cluster.json", &json).unwrap(),
            parse("cluster.yaml", KUBECTL_LIST).unwrap()
        );
    }

    const SERVICE_A: &str = "apiVersion: v1\nkind: Service\nmetadata:\n  name: a\n  namespace: ns\nspec:\n  clusterIP: 10.0.0.1\n";
    const SERVICE_B: &str = "apiVersion: v1\nkind: Service\nmetadata:\n  name: b\n  namespace: ns\nspec:\n  clusterIP: 10.0.0.2\n";

    #[test]
    fn documents_are_split_at_separators_and_empty_or_comment_only_ones_are_skipped() {
        let cases = [
            ("two documents", format!("{SERVICE_A}---\n{SERVICE_B}")),
            (
                "a leading separator",
                format!("---\n{SERVICE_A}---\n{SERVICE_B}"),
            ),
            (
                "a trailing separator",
                format!("{SERVICE_A}---\n{SERVICE_B}---\n"),
            ),
            (
                "empty documents between",
                format!("---\n---\n{SERVICE_A}---\n\n---\n---\n{SERVICE_B}"),
            ),
            (
                "comment-only documents",
                format!(
                    "# header\n---\n{SERVICE_A}---\n# nothing here\n  # indented\n---\n{SERVICE_B}---\n# trailer\n"
                ),
            ),
            (
                "separators with trailing text and end markers",
                format!("--- # first\n{SERVICE_A}...\n--- \n{SERVICE_B}...\n"),
            ),
            (
                "CRLF line ends",
                format!("{SERVICE_A}---\n{SERVICE_B}").replace('\n', "\r\n"),
            ),
            (
                "no final newline",
                format!("{SERVICE_A}---\n{}", SERVICE_B.trim_end()),
            ),
        ];
        for (what, text) in cases {
            let o = parse("m.yaml", &text).unwrap_or_else(|e| panic!("{what}: {e}"));
            let names: Vec<_> = o.services.keys().map(|(_, n)| n.as_str()).collect();
            assert_eq!(names, ["a", "b"], "{what}");
            assert_eq!(
                o.services[&key("ns", "b")].kind,
                ServiceKind::ClusterIp(ips(&["10.0.0.2"])),
                "{what}"
            );
        }
    }

    #[test]
    fn empty_and_comment_only_files_yield_nothing() {
        for text in [
            "",
            "\n\n",
            "# just a comment\n",
            "---\n",
            "---\n# c\n---\n...\n",
        ] {
            assert_eq!(
                parse("m.yaml", text).unwrap(),
                ClusterObjects::default(),
                "{text:?}"
            );
        }
    }

    #[test]
    fn json_files_hold_one_object_or_a_list() {
        let one = r#"{
  "apiVersion": "v1",
  "kind": "Service",
  "metadata": {"name": "web", "namespace": "prod", "uid": "x"},
  "spec": {"clusterIP": "10.0.0.7", "clusterIPs": ["10.0.0.7"],
           "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}]}
}"#;
        let o = parse("svc.json", one).unwrap();
        let web = &o.services[&key("prod", "web")];
        assert_eq!(web.kind, ServiceKind::ClusterIp(ips(&["10.0.0.7"])));
        assert_eq!(web.ports, [port("http", 80, Protocol::Tcp)]);

        let list = r#"{
    "apiVersion": "v1",
    "items": [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "prod"}},
        {"apiVersion": "v1", "kind": "Pod",
         "metadata": {"name": "p", "namespace": "prod"},
         "status": {"podIP": "10.1.2.3"}}
    ],
    "kind": "List",
    "metadata": {"resourceVersion": ""}
}"#;
        let o = parse("all.json", list).unwrap();
        assert!(o.namespaces.contains("prod"));
        assert_eq!(o.pods[&key("prod", "p")].ips, ips::<Vec<_>>(&["10.1.2.3"]));
    }

    #[test]
    fn typed_lists_and_lists_without_items_are_read() {
        let typed = "apiVersion: v1\nkind: ServiceList\nitems:\n- apiVersion: v1\n  kind: Service\n  metadata:\n    name: a\n  spec:\n    clusterIP: 10.0.0.1\nmetadata:\n  resourceVersion: \"1\"\n";
        let o = parse("m.yaml", typed).unwrap();
        // No namespace means `default`, as kubectl apply would have it.
        assert!(o.services.contains_key(&key("default", "a")));

        for text in [
            "apiVersion: v1\nkind: List\nitems: []\n",
            "apiVersion: v1\nkind: List\nitems: null\n",
            "apiVersion: v1\nkind: List\nmetadata:\n  resourceVersion: \"\"\n",
        ] {
            assert_eq!(parse("m.yaml", text).unwrap(), ClusterObjects::default());
        }
    }

    #[test]
    fn kinds_dns_does_not_use_are_skipped_without_error() {
        let text = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: prod
spec:
  replicas: 2
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: web
        image: nginx
        ports:
        - containerPort: 8080
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: coredns
  namespace: kube-system
data:
  Corefile: |
    .:53 {
        kubernetes cluster.local
    }
---
apiVersion: example.com/v1alpha1
kind: Gateway
metadata:
  name: Not_A_Label
spec:
  ports: "all of them"
  clusterIP: not-an-ip
---
apiVersion: networking.k8s.io/v1
kind: Service
metadata:
  name: same-kind-other-group
spec:
  ports:
  - port: 999999
---
apiVersion: v1
kind: Service
metadata:
  name: kept
  namespace: prod
spec:
  clusterIP: 10.0.0.9
"#;
        let o = parse("mixed.yaml", text).unwrap();
        assert_eq!(
            o.services.keys().collect::<Vec<_>>(),
            [&key("prod", "kept")]
        );
        assert!(o.namespaces.is_empty() && o.slices.is_empty() && o.pods.is_empty());
    }

    #[test]
    fn slices_without_a_service_label_or_with_fqdn_addresses_are_skipped() {
        let text = "addressType: IPv4\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: orphan\n  namespace: prod\nendpoints:\n- addresses: [10.0.0.1]\n---\naddressType: FQDN\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: ext\n  namespace: prod\n  labels:\n    kubernetes.io/service-name: ext\nendpoints:\n- addresses: [example.com]\n";
        assert!(parse("m.yaml", text).unwrap().slices.is_empty());
    }

    const ENDPOINTS: &str = r#"apiVersion: v1
kind: Endpoints
metadata:
  annotations:
    endpoints.kubernetes.io/last-change-trigger-time: "2024-05-03T11:05:12Z"
  creationTimestamp: "2024-05-03T11:03:01Z"
  labels:
    app: legacy
  name: legacy
  namespace: prod
  resourceVersion: "52212"
  uid: 1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d
subsets:
- addresses:
  - hostname: legacy-0
    ip: 10.244.3.3
    nodeName: worker-3
    targetRef:
      kind: Pod
      name: legacy-0
      namespace: prod
      uid: 2b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d6e
  notReadyAddresses:
  - ip: 10.244.3.4
    nodeName: worker-1
    targetRef:
      kind: Pod
      name: legacy-1
      namespace: prod
      uid: 3c4d5e6f-7a8b-4c9d-8e1f-2a3b4c5d6e7f
  ports:
  - name: http
    port: 80
    protocol: TCP
- addresses:
  - ip: 10.244.3.5
  ports:
  - name: metrics
    port: 9100
    protocol: TCP
"#;

    #[test]
    fn v1_endpoints_subsets_become_endpoint_sets_with_ready_and_not_ready_addresses() {
        let o = parse("ep.yaml", ENDPOINTS).unwrap();
        let sets = &o.endpoints[&key("prod", "legacy")];
        assert_eq!(
            sets,
            &[
                EndpointSet {
                    namespace: "prod".into(),
                    service: "legacy".into(),
                    endpoints: Endpoints::from(vec![
                        Endpoint {
                            addresses: ips(&["10.244.3.3"]),
                            hostname: Some("legacy-0".into()),
                            ready: true,
                            target_name: Some("legacy-0".into()),
                            zone: None,
                        },
                        Endpoint {
                            addresses: ips(&["10.244.3.4"]),
                            hostname: None,
                            ready: false,
                            target_name: Some("legacy-1".into()),
                            zone: None,
                        },
                    ]),
                    ports: vec![port("http", 80, Protocol::Tcp)],
                },
                EndpointSet {
                    namespace: "prod".into(),
                    service: "legacy".into(),
                    endpoints: Endpoints::from(vec![Endpoint {
                        addresses: ips(&["10.244.3.5"]),
                        hostname: None,
                        ready: true,
                        target_name: None,
                        zone: None,
                    }]),
                    ports: vec![port("metrics", 9100, Protocol::Tcp)],
                },
            ]
        );
        // With no EndpointSlice for the service, its v1 Endpoints are what it has.
        assert_eq!(o.endpoint_sets("prod", "legacy").len(), 2);
        assert!(o.endpoint_sets("prod", "nothing").is_empty());
    }

    #[test]
    fn endpoint_sets_prefer_slices_over_v1_endpoints_for_the_same_service() {
        let both = format!(
            "{}---\n{KUBECTL_LIST}",
            ENDPOINTS.replace("name: legacy\n", "name: web\n")
        );
        let o = parse("m.yaml", &both).unwrap();
        assert_eq!(o.endpoints[&key("prod", "web")].len(), 2);
        let sets = o.endpoint_sets("prod", "web");
        assert_eq!(sets.len(), 2);
        assert!(sets.iter().all(|s| s.ports[0].port == 8080), "{sets:?}");
    }

    #[test]
    fn later_objects_replace_earlier_ones_with_the_same_key() {
        let o = parse(
            "m.yaml",
            &format!(
                "{SERVICE_A}---\n{}",
                SERVICE_A.replace("10.0.0.1", "10.0.0.99")
            ),
        )
        .unwrap();
        assert_eq!(
            o.services[&key("ns", "a")].kind,
            ServiceKind::ClusterIp(ips(&["10.0.0.99"]))
        );
    }

    /// A List whose items are one per line of `items`, each a complete `- ` item.
    fn list(items: &[&str]) -> String {
        let mut s = String::from("apiVersion: v1\nitems:\n");
        for item in items {
            s.push_str(item);
        }
        s.push_str("kind: List\nmetadata:\n  resourceVersion: \"\"\n");
        s
    }

    const NS_ITEM: &str = "- apiVersion: v1\n  kind: Namespace\n  metadata:\n    name: prod\n";
    const POD_ITEM: &str = "- apiVersion: v1\n  kind: Pod\n  metadata:\n    name: p\n    namespace: prod\n  status:\n    podIPs:\n    - ip: 10.1.1.1\n";

    #[test]
    fn errors_name_the_file_and_the_line_of_the_offending_object() {
        let bad_ip_third = list(&[
            NS_ITEM,
            POD_ITEM,
            "- apiVersion: v1 # here\n  kind: Service\n  metadata:\n    name: bad\n    namespace: prod\n  spec:\n    clusterIP: 10.0.0.300\n    clusterIPs:\n    - 10.0.0.300\n",
        ]);
        let bad_port = list(&[
            NS_ITEM,
            "- apiVersion: v1 # here\n  kind: Service\n  metadata:\n    name: web\n    namespace: prod\n  spec:\n    clusterIP: 10.0.0.3\n    ports:\n    - port: 70000\n",
        ]);
        let bad_protocol = list(&[
            "- apiVersion: v1 # here\n  kind: Service\n  metadata:\n    name: web\n    namespace: prod\n  spec:\n    ports:\n    - port: 53\n      protocol: tcp\n",
            NS_ITEM,
        ]);
        let indented_list = "apiVersion: v1\nkind: List\nitems:\n  - apiVersion: v1\n    kind: Namespace\n    metadata:\n      name: prod\n  - apiVersion: v1 # here\n    kind: Pod\n    metadata:\n      name: p\n      namespace: prod\n    status:\n      podIP: 10.1.1\n";
        let bad_slice_after_separator = format!(
            "{SERVICE_A}---\n{SERVICE_B}---\naddressType: IPv4 # here\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: b-1\n  namespace: ns\n  labels:\n    kubernetes.io/service-name: b\nendpoints:\n- addresses:\n  - 10.0.0.1\n  - fe80::zz\n"
        );
        let list_after_separator = format!(
            "{SERVICE_A}---\n{}",
            list(&[
                NS_ITEM,
                "- apiVersion: v1 # here\n  kind: Namespace\n  metadata:\n    name: Prod\n"
            ])
        );
        let uppercase_service = format!(
            "{SERVICE_A}---\napiVersion: v1 # here\nkind: Service\nmetadata:\n  name: MyService\n  namespace: ns\n"
        );
        let commented_after_separator = format!(
            "{SERVICE_A}---\n\n# The web service.\n#\napiVersion: v1 # here\nkind: Service\nmetadata:\n  name: web\n  namespace: ns\nspec:\n  clusterIP: 10.0.0.1/32\n"
        );
        let cases: Vec<(&str, &str, String, &str)> = vec![
            (
                "comments between `---` and the object",
                "m.yaml",
                commented_after_separator,
                "\"10.0.0.1/32\" is not an IP address",
            ),
            (
                "a bad clusterIP in a List's third item",
                "m.yaml",
                bad_ip_third,
                "10.0.0.300",
            ),
            (
                "a port out of range",
                "m.yaml",
                bad_port,
                "port 70000 is out of range",
            ),
            (
                "a lowercase protocol",
                "m.yaml",
                bad_protocol,
                "protocol \"tcp\"",
            ),
            (
                "a bad pod IP in an indented List",
                "m.yaml",
                indented_list.into(),
                "\"10.1.1\" is not an IP address",
            ),
            (
                "a bad slice address after `---`",
                "m.yaml",
                bad_slice_after_separator,
                "\"fe80::zz\" is not an IP address",
            ),
            (
                "a bad item of a List after `---`",
                "m.yaml",
                list_after_separator,
                "\"Prod\" is not a valid DNS label",
            ),
            (
                "a service name with uppercase letters",
                "m.yaml",
                uppercase_service,
                "\"MyService\" is not a valid DNS label",
            ),
        ];
        for (what, path, text, needle) in cases {
            let e = parse(path, &text).expect_err(what);
            let line = line_of(&text, "# here");
            assert_eq!(e.line, line, "{what}: {e}");
            assert_eq!(e.path, Path::new(path), "{what}");
            assert!(
                e.to_string().starts_with(&format!("{path}:{line}: ")),
                "{what}: {e}"
            );
            assert!(e.message.contains(needle), "{what}: {e}");
        }
    }

    #[test]
    fn a_bad_item_points_at_its_own_dash_line() {
        let text = list(&[
            NS_ITEM,
            POD_ITEM,
            "- apiVersion: v1\n  kind: Service\n  metadata:\n    name: bad\n    namespace: prod\n  spec:\n    clusterIP: 10.0.0.300\n",
        ]);
        let e = parse("cluster.yaml", &text).unwrap_err();
        // Two header lines, four for the namespace, eight for the pod: the third item is on 15.
        assert_eq!(text.lines().nth(14), Some("- apiVersion: v1"));
        assert_eq!(e.line, 15);
        assert!(e.message.starts_with("items[2]: Service prod/bad"), "{e}");
        assert!(e.to_string().starts_with("cluster.yaml:15: "), "{e}");
    }

    #[test]
    fn yaml_syntax_errors_name_the_line_they_are_on() {
        let cases = [
            (
                "a bad indent",
                "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n    namespace: prod\n",
                5,
            ),
            (
                "an unclosed flow sequence",
                "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nstatus:\n  podIPs: [\n",
                6,
            ),
            (
                "a tab as indentation in the second document",
                "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n\tname: b\n",
                9,
            ),
            (
                "an unterminated quote after two separators",
                "---\n# one\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: \"b\n",
                8,
            ),
        ];
        for (what, text, line) in cases {
            let e = parse("bad.yaml", text).expect_err(what);
            assert_eq!(e.line, line, "{what}: {e}");
            assert!(
                e.to_string().starts_with(&format!("bad.yaml:{line}: ")),
                "{what}: {e}"
            );
            // The parser's own position must not contradict the line in front.
            if let Some(at) = e.message.find(" at line ") {
                let said: usize = e.message[at + 9..]
                    .split(' ')
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert_eq!(said, line, "{what}: {e}");
            }
        }
    }

    #[test]
    fn json_syntax_errors_name_the_line_they_are_on() {
        let text =
            "{\n  \"apiVersion\": \"v1\",\n  \"kind\": \"Namespace\"\n  \"metadata\": {}\n}\n";
        let e = parse("ns.json", text).unwrap_err();
        assert_eq!(e.line, 4, "{e}");
        assert!(e.to_string().starts_with("ns.json:4: "), "{e}");
    }

    #[test]
    fn documents_that_are_not_objects_are_rejected() {
        for (text, line) in [
            ("just a string\n", 1),
            ("- a\n- b\n", 1),
            (&format!("{SERVICE_A}---\nmetadata:\n  name: x\n")[..], 9),
        ] {
            let e = parse("m.yaml", text).unwrap_err();
            assert_eq!(e.line, line, "{text:?}: {e}");
            assert!(e.message.contains("no kind"), "{e}");
        }
    }

    #[test]
    fn files_in_a_directory_are_the_manifest_ones_sorted_without_hidden_names() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for name in [
            "b.yaml",
            "a.yml",
            "c.json",
            "notes.txt",
            "README",
            ".hidden.yaml",
            "yaml",
            "x.yaml.bak",
        ] {
            std::fs::write(d.join(name), "").unwrap();
        }
        // A mounted ConfigMap: `..data` and timestamped directories, files linked into them.
        std::fs::create_dir(d.join("..2024_05_03_11_03_01.123")).unwrap();
        std::fs::write(d.join("..2024_05_03_11_03_01.123/z.yaml"), "").unwrap();
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink("..2024_05_03_11_03_01.123", d.join("..data")).unwrap();
            std::os::unix::fs::symlink("..data/z.yaml", d.join("z.yaml")).unwrap();
        }
        std::fs::create_dir(d.join("nested.yaml")).unwrap();
        std::fs::write(d.join("nested.yaml/inner.yaml"), "").unwrap();

        let got = files(&[d.to_path_buf()]).unwrap();
        let mut want = vec![d.join("a.yml"), d.join("b.yaml"), d.join("c.json")];
        if cfg!(unix) {
            want.push(d.join("z.yaml"));
        }
        assert_eq!(got, want);

        // A file named directly is taken whatever its name.
        let got = files(&[d.join("notes.txt"), d.to_path_buf()]).unwrap();
        assert_eq!(got[0], d.join("notes.txt"));
        assert_eq!(got.len(), want.len() + 1);
    }

    #[test]
    fn a_missing_path_is_an_error_on_line_zero() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("absent.yaml");
        for e in [
            files(std::slice::from_ref(&missing)).unwrap_err(),
            load(std::slice::from_ref(&missing)).unwrap_err(),
        ] {
            assert_eq!(e.line, 0);
            assert_eq!(e.path, missing);
            assert!(
                e.to_string()
                    .starts_with(&format!("{}:0: ", missing.display())),
                "{e}"
            );
        }
    }

    #[test]
    fn load_reads_every_file_and_names_the_one_that_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("a.yaml"), SERVICE_A).unwrap();
        std::fs::write(
            d.join("b.json"),
            r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"json-ns"}}"#,
        )
        .unwrap();
        let o = load(&[d.to_path_buf()]).unwrap();
        assert!(o.services.contains_key(&key("ns", "a")));
        assert!(o.namespaces.contains("json-ns"));

        std::fs::write(
            d.join("c.yml"),
            format!("# bad\n{}", SERVICE_B.replace("10.0.0.2", "nope")),
        )
        .unwrap();
        let e = load(&[d.to_path_buf()]).unwrap_err();
        assert_eq!(e.path, d.join("c.yml"));
        assert_eq!(e.line, 2, "{e}");
    }
}
