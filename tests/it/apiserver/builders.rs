//! Small builders for the objects tests put into the server.
//!
//! Ports are `(name, port, protocol)` tuples, e.g. `("dns", 53, "UDP")`.

use serde_json::{Value, json};

pub type Port<'a> = (&'a str, u16, &'a str);

pub fn namespace(name: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": { "name": name },
        "spec": { "finalizers": ["kubernetes"] },
        "status": { "phase": "Active" },
    })
}

/// A ClusterIP service (`cluster_ip` may be IPv4 or IPv6).
pub fn service(namespace: &str, name: &str, cluster_ip: &str, ports: &[Port]) -> Value {
    let family = ip_family(cluster_ip);
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": { "namespace": namespace, "name": name },
        "spec": {
            "type": "ClusterIP",
            "clusterIP": cluster_ip,
            "clusterIPs": [cluster_ip],
            "ipFamilies": [family],
            "ipFamilyPolicy": "SingleStack",
            "ports": service_ports(ports),
            "selector": { "app": name },
            "sessionAffinity": "None",
        },
        "status": { "loadBalancer": {} },
    })
}

/// A headless service (`clusterIP: None`).
pub fn headless_service(namespace: &str, name: &str, ports: &[Port]) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": { "namespace": namespace, "name": name },
        "spec": {
            "type": "ClusterIP",
            "clusterIP": "None",
            "clusterIPs": ["None"],
            "ports": service_ports(ports),
            "selector": { "app": name },
        },
        "status": { "loadBalancer": {} },
    })
}

/// An ExternalName service (a CNAME to `external_name`).
pub fn external_name_service(namespace: &str, name: &str, external_name: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": { "namespace": namespace, "name": name },
        "spec": { "type": "ExternalName", "externalName": external_name },
        "status": { "loadBalancer": {} },
    })
}

/// One endpoint of an EndpointSlice.
pub fn slice_endpoint(address: &str, ready: bool, hostname: Option<&str>) -> Value {
    let mut endpoint = json!({
        "addresses": [address],
        "conditions": { "ready": ready, "serving": ready, "terminating": false },
    });
    if let Some(hostname) = hostname {
        endpoint["hostname"] = json!(hostname);
    }
    endpoint
}

/// An EndpointSlice of `service` (the address type follows the first endpoint's address).
pub fn endpoint_slice(
    namespace: &str,
    name: &str,
    service: &str,
    ports: &[Port],
    endpoints: Vec<Value>,
) -> Value {
    let first = endpoints
        .first()
        .and_then(|e| e["addresses"][0].as_str())
        .unwrap_or("");
    let ports: Vec<Value> = ports
        .iter()
        .map(|&(name, port, protocol)| json!({ "name": name, "port": port, "protocol": protocol }))
        .collect();
    json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "namespace": namespace,
            "name": name,
            "labels": {
                "kubernetes.io/service-name": service,
                "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
            },
        },
        "addressType": ip_family(first),
        "endpoints": endpoints,
        "ports": ports,
    })
}

/// Core/v1 Endpoints of a service: all `addresses` ready, on all `ports`.
pub fn endpoints(namespace: &str, name: &str, addresses: &[&str], ports: &[Port]) -> Value {
    let addresses: Vec<Value> = addresses.iter().map(|ip| json!({ "ip": ip })).collect();
    let ports: Vec<Value> = ports
        .iter()
        .map(|&(name, port, protocol)| json!({ "name": name, "port": port, "protocol": protocol }))
        .collect();
    json!({
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": { "namespace": namespace, "name": name },
        "subsets": [{ "addresses": addresses, "ports": ports }],
    })
}

/// A running pod with one IP.
pub fn pod(namespace: &str, name: &str, ip: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": { "namespace": namespace, "name": name },
        "spec": { "containers": [{ "name": "main", "image": "registry.k8s.io/pause:3.10" }] },
        "status": { "phase": "Running", "podIP": ip, "podIPs": [{ "ip": ip }] },
    })
}

/// Adds labels to an object's metadata.
pub fn with_labels(mut obj: Value, labels: &[(&str, &str)]) -> Value {
    for &(key, value) in labels {
        obj["metadata"]["labels"][key] = json!(value);
    }
    obj
}

fn service_ports(ports: &[Port]) -> Vec<Value> {
    ports
        .iter()
        .map(|&(name, port, protocol)| {
            json!({ "name": name, "port": port, "protocol": protocol, "targetPort": port })
        })
        .collect()
}

fn ip_family(ip: &str) -> &'static str {
    if ip.contains(':') { "IPv6" } else { "IPv4" }
}
