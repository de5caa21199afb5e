//! The Kubernetes manifests in `docker/kubernetes/`: the Corefiles they ship parse with this
//! build, and the objects agree with each other (the Service selects the Deployment's pods on
//! the ports they serve, the names they refer to exist).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use clusterdns::config::Config;
use serde::Deserialize;
use serde_norway::Value;

fn manifest_path(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("docker/kubernetes")
        .join(file)
}

/// Every YAML document in `docker/kubernetes/FILE`.
fn documents(file: &str) -> Vec<Value> {
    let path = manifest_path(file);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_norway::Deserializer::from_str(&text)
        .map(|doc| {
            Value::deserialize(doc).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
        })
        .filter(|v| !v.is_null())
        .collect()
}

/// The one object of `kind` in `file`.
fn object(file: &str, kind: &str) -> Value {
    let mut found: Vec<Value> = documents(file)
        .into_iter()
        .filter(|d| d["kind"].as_str() == Some(kind))
        .collect();
    assert_eq!(found.len(), 1, "{file}: expected one {kind}");
    found.remove(0)
}

fn str_at<'a>(v: &'a Value, what: &str) -> &'a str {
    v.as_str()
        .unwrap_or_else(|| panic!("{what}: not a string: {v:?}"))
}

fn seq<'a>(v: &'a Value, what: &str) -> &'a [Value] {
    v.as_sequence()
        .unwrap_or_else(|| panic!("{what}: not a list: {v:?}"))
}

/// A label map as (key, value) pairs.
fn labels(v: &Value, what: &str) -> BTreeSet<(String, String)> {
    v.as_mapping()
        .unwrap_or_else(|| panic!("{what}: not a map: {v:?}"))
        .iter()
        .map(|(k, v)| (str_at(k, what).to_string(), str_at(v, what).to_string()))
        .collect()
}

/// (port, protocol, name) of a list of container or Service ports.
fn ports(v: &Value, number_key: &str, what: &str) -> BTreeSet<(u64, String, String)> {
    seq(v, what)
        .iter()
        .map(|p| {
            let number = p[number_key]
                .as_u64()
                .unwrap_or_else(|| panic!("{what}: {number_key} in {p:?}"));
            let protocol = p["protocol"].as_str().unwrap_or("TCP").to_string();
            (number, protocol, str_at(&p["name"], what).to_string())
        })
        .collect()
}

/// The Corefile a ConfigMap carries, checked to parse as clusterdns reads it at start.
fn corefile_of(file: &str) -> String {
    let cm = object(file, "ConfigMap");
    let text = str_at(&cm["data"]["Corefile"], "data.Corefile").to_string();
    if let Err(e) = Config::from_text(&text, 53, Path::new("/etc/coredns")) {
        panic!("the Corefile in {file} does not parse with this build: {e}\n{text}");
    }
    text
}

/// Directives without indentation and comments, to compare Corefiles written apart.
fn normalized(corefile: &str) -> Vec<String> {
    corefile
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

#[test]
fn configmap_corefile_is_kubeadms_and_parses() {
    let shipped = corefile_of("configmap.yaml");
    // tests/e2e/Corefile.kubeadm is kubeadm's Corefile with a `manifests` line added (it runs
    // without an API server); without it the two must be the same.
    let e2e = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/Corefile.kubeadm"),
    )
    .unwrap();
    let kubeadm: Vec<String> = normalized(&e2e)
        .into_iter()
        .filter(|l| !l.starts_with("manifests "))
        .collect();
    assert_eq!(normalized(&shipped), kubeadm);
}

#[test]
fn nodelocal_corefile_parses_and_daemonset_mounts_it() {
    let corefile = corefile_of("nodelocal.yaml");
    let config = Config::from_text(&corefile, 53, Path::new("/etc/coredns")).unwrap();
    assert_eq!(
        config.servers.len(),
        4,
        "cluster.local, in-addr.arpa, ip6.arpa and ."
    );

    let cm = object("nodelocal.yaml", "ConfigMap");
    let ds = object("nodelocal.yaml", "DaemonSet");
    let pod = &ds["spec"]["template"]["spec"];
    assert_eq!(pod["hostNetwork"].as_bool(), Some(true));
    let volume = &seq(&pod["volumes"], "volumes")[0];
    assert_eq!(volume["configMap"]["name"], cm["metadata"]["name"]);
    let container = &seq(&pod["containers"], "containers")[0];
    // The liveness probe asks the `health` address the Corefile names.
    let port = container["livenessProbe"]["httpGet"]["port"]
        .as_u64()
        .unwrap();
    assert!(
        corefile.contains(&format!("health :{port}")),
        "the liveness probe's port {port} is not the Corefile's health address"
    );
    assert_eq!(
        labels(&ds["spec"]["selector"]["matchLabels"], "selector"),
        labels(&ds["spec"]["template"]["metadata"]["labels"], "pod labels")
    );
}

#[test]
fn service_deployment_and_pdb_agree() {
    let service = object("service.yaml", "Service");
    let deployment = object("deployment.yaml", "Deployment");
    let pdb = object("pdb.yaml", "PodDisruptionBudget");
    let pod_labels = labels(
        &deployment["spec"]["template"]["metadata"]["labels"],
        "pod labels",
    );

    // The Service, the Deployment's selector and the PDB all select the pods it makes.
    for (what, selector) in [
        ("Service selector", &service["spec"]["selector"]),
        (
            "Deployment selector",
            &deployment["spec"]["selector"]["matchLabels"],
        ),
        ("PDB selector", &pdb["spec"]["selector"]["matchLabels"]),
    ] {
        let selector = labels(selector, what);
        assert!(!selector.is_empty(), "{what} is empty");
        assert!(
            selector.is_subset(&pod_labels),
            "{what} {selector:?} does not select the pods {pod_labels:?}"
        );
    }
    assert!(pod_labels.contains(&("k8s-app".into(), "kube-dns".into())));

    let want: BTreeSet<(u64, String, String)> = [
        (53, "UDP", "dns"),
        (53, "TCP", "dns-tcp"),
        (9153, "TCP", "metrics"),
    ]
    .into_iter()
    .map(|(n, p, name)| (n, p.to_string(), name.to_string()))
    .collect();
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &seq(&pod["containers"], "containers")[0];
    assert_eq!(
        ports(&container["ports"], "containerPort", "container ports"),
        want
    );
    assert_eq!(
        ports(&service["spec"]["ports"], "port", "Service ports"),
        want
    );
    for p in seq(&service["spec"]["ports"], "Service ports") {
        assert_eq!(p["targetPort"], p["port"], "Service port {p:?}");
    }

    // The names the pod refers to exist: the Corefile's ConfigMap and rbac.yaml's account.
    let cm = object("configmap.yaml", "ConfigMap");
    let volume = &seq(&pod["volumes"], "volumes")[0];
    assert_eq!(volume["configMap"]["name"], cm["metadata"]["name"]);
    let account = object("rbac.yaml", "ServiceAccount");
    assert_eq!(pod["serviceAccountName"], account["metadata"]["name"]);
    for o in [&service, &deployment, &pdb, &cm, &account] {
        assert_eq!(o["metadata"]["namespace"].as_str(), Some("kube-system"));
    }

    // The probes ask the Corefile's `health` and `ready` at their default addresses.
    let corefile = corefile_of("configmap.yaml");
    assert!(corefile.contains("health {") && corefile.contains("ready\n"));
    assert_eq!(
        container["livenessProbe"]["httpGet"]["port"].as_u64(),
        Some(8080)
    );
    assert_eq!(
        container["readinessProbe"]["httpGet"]["port"].as_u64(),
        Some(8181)
    );
}

#[test]
fn the_autoscaler_scales_the_shipped_deployment_with_coredns_parameters() {
    let deployment = object("deployment.yaml", "Deployment");
    let autoscaler = object("autoscaler.yaml", "Deployment");
    let pod = &autoscaler["spec"]["template"]["spec"];
    let command: Vec<&str> = seq(&pod["containers"][0]["command"], "autoscaler command")
        .iter()
        .map(|a| str_at(a, "autoscaler command"))
        .collect();
    let flag = |name: &str| {
        command
            .iter()
            .find_map(|a| a.strip_prefix(&format!("--{name}=")))
            .unwrap_or_else(|| panic!("autoscaler: no --{name} in {command:?}"))
    };
    assert_eq!(
        flag("target"),
        format!(
            "Deployment/{}",
            str_at(&deployment["metadata"]["name"], "deployment name")
        )
    );
    assert_eq!(
        flag("namespace"),
        str_at(&deployment["metadata"]["namespace"], "deployment namespace")
    );
    let params: serde_json::Value = serde_json::from_str(flag("default-params")).unwrap();
    assert_eq!(params["linear"]["coresPerReplica"], 256);
    assert_eq!(params["linear"]["nodesPerReplica"], 16);
    assert_eq!(params["linear"]["preventSinglePointFailure"], true);
    // Its account exists and may scale deployments and read the nodes.
    let account = str_at(&pod["serviceAccountName"], "autoscaler account");
    assert_eq!(
        str_at(
            &object("autoscaler.yaml", "ServiceAccount")["metadata"]["name"],
            "account"
        ),
        account
    );
    let rules = serde_json::to_string(&object("autoscaler.yaml", "ClusterRole")["rules"]).unwrap();
    for needed in ["deployments/scale", "nodes", "update", "list", "watch"] {
        assert!(
            rules.contains(needed),
            "ClusterRole lacks {needed}: {rules}"
        );
    }
}
