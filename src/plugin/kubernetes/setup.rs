//! `kubernetes [ZONES...] { ... }`: CoreDNS's options, defaults and checks; building it loads
//! its source (manifest files or the API) and starts keeping it current.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Duration;

use hickory_proto::rr::LowerName;

use super::Kubernetes;
use crate::cluster::PodMode;
use crate::cluster::writer::ClusterWriter;
use crate::corefile::args::is_reverse;
use crate::corefile::{
    ConfigError, Directive, Fallthrough, directive_err, number, one_arg, parse_duration,
    plugin_zones, resolve,
};
use crate::plugin::Plugin;
use crate::plugin::setup::{Building, Context, Setup, SetupError};
use crate::source::Source;
use crate::source::kube::{ApiConfig, ApiSource};
use crate::source::manifests::ManifestSource;

/// The `kubernetes` directive.
#[derive(Debug, Clone)]
pub struct KubernetesConfig {
    /// The zones it answers, forward and reverse; the first forward one is primary.
    pub zones: Vec<LowerName>,
    pub manifests: Vec<PathBuf>,
    pub pods: PodMode,
    pub ttl: u32,
    /// Exposed namespaces; empty exposes every namespace.
    pub namespaces: Vec<String>,
    pub fallthrough: Fallthrough,
    pub endpoint_pod_names: bool,
    /// `zonal`: zone-scoped names for headless services.
    pub zonal: bool,
    pub noendpoints: bool,
    /// `ignore empty_service`: NXDOMAIN for ClusterIP services without ready endpoints.
    pub ignore_empty_service: bool,
    /// How often the manifest files are checked for changes.
    pub reload: Duration,
    /// The live API source, when there are no `manifests`.
    pub api: Option<ApiConfig>,
}

/// CoreDNS's default `startup_timeout`.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(5);

/// CoreDNS's default TTL for the kubernetes plugin.
const KUBERNETES_DEFAULT_TTL: u32 = 5;
/// CoreDNS's limit on the kubernetes plugin's `ttl`.
const KUBERNETES_MAX_TTL: u32 = 3600;

/// How often manifest files are checked for changes.
const MANIFESTS_RELOAD: Duration = Duration::from_secs(1);

fn kubernetes(
    d: &Directive,
    block_zones: &[LowerName],
    dir: &Path,
) -> Result<KubernetesConfig, ConfigError> {
    const NAME: &str = "kubernetes";
    let zones = plugin_zones(d, NAME, &d.args, block_zones)?;
    if !zones.iter().any(|z| !is_reverse(z)) {
        return Err(directive_err(
            d,
            NAME,
            "needs at least one forward zone (e.g. cluster.local)",
        ));
    }
    let mut k = KubernetesConfig {
        zones,
        manifests: Vec::new(),
        pods: PodMode::Disabled,
        ttl: KUBERNETES_DEFAULT_TTL,
        namespaces: Vec::new(),
        fallthrough: Fallthrough::default(),
        endpoint_pod_names: false,
        zonal: false,
        noendpoints: false,
        ignore_empty_service: false,
        reload: MANIFESTS_RELOAD,
        api: None,
    };
    let mut api = ApiConfig {
        startup_timeout: STARTUP_TIMEOUT,
        ..ApiConfig::default()
    };
    let mut api_named = false;
    let (mut qps, mut burst) = (0.0f32, 0u32);
    for o in &d.block {
        match o.name.as_str() {
            "manifests" => {
                if o.args.is_empty() {
                    return Err(directive_err(
                        o,
                        NAME,
                        "manifests needs at least one file or directory",
                    ));
                }
                k.manifests.extend(o.args.iter().map(|a| resolve(dir, a)));
            }
            "pods" => {
                k.pods = match one_arg(o, NAME)? {
                    "disabled" => PodMode::Disabled,
                    "insecure" => PodMode::Insecure,
                    "verified" => PodMode::Verified,
                    other => {
                        return Err(directive_err(
                            o,
                            NAME,
                            format!("pods: {other:?} is not one of disabled, insecure, verified"),
                        ));
                    }
                }
            }
            "ttl" => {
                let ttl: u32 = number(o, NAME)?;
                if ttl > KUBERNETES_MAX_TTL {
                    return Err(directive_err(
                        o,
                        NAME,
                        format!("ttl must be in range [0, {KUBERNETES_MAX_TTL}]: {ttl}"),
                    ));
                }
                k.ttl = ttl;
            }
            "namespaces" => {
                if o.args.is_empty() {
                    return Err(directive_err(
                        o,
                        NAME,
                        "namespaces needs at least one namespace",
                    ));
                }
                k.namespaces.extend(o.args.iter().cloned());
            }
            "fallthrough" => k.fallthrough = Fallthrough::parse(&o.args, o, NAME)?,
            "endpoint_pod_names" => k.endpoint_pod_names = true,
            "noendpoints" => k.noendpoints = true,
            "zonal" => {
                if !o.args.is_empty() {
                    return Err(crate::corefile::arg_count_err(o, NAME));
                }
                k.zonal = true;
            }
            "endpoint" => {
                let url = one_arg(o, NAME)?;
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(directive_err(
                        o,
                        NAME,
                        format!("endpoint {url:?} is not an http(s) URL"),
                    ));
                }
                api.endpoint = Some(url.to_string());
                api_named = true;
            }
            "tls" => match o.args.as_slice() {
                [cert, key, ca] => {
                    api.tls = Some((resolve(dir, cert), resolve(dir, key), resolve(dir, ca)));
                    api_named = true;
                }
                _ => return Err(directive_err(o, NAME, "tls takes CERT KEY CACERT")),
            },
            "kubeconfig" => match o.args.as_slice() {
                [path] => {
                    api.kubeconfig = Some((resolve(dir, path), None));
                    api_named = true;
                }
                [path, context] => {
                    api.kubeconfig = Some((resolve(dir, path), Some(context.clone())));
                    api_named = true;
                }
                _ => return Err(directive_err(o, NAME, "kubeconfig takes PATH [CONTEXT]")),
            },
            "labels" => api.labels = Some(selector(o, NAME)?),
            "namespace_labels" => api.namespace_labels = Some(selector(o, NAME)?),
            "startup_timeout" => {
                api.startup_timeout = parse_duration(one_arg(o, NAME)?)
                    .map_err(|m| directive_err(o, NAME, format!("startup_timeout: {m}")))?;
            }
            "ignore" => match o.args.as_slice() {
                [what] if what == "empty_service" => k.ignore_empty_service = true,
                _ => return Err(directive_err(o, NAME, "ignore takes empty_service")),
            },
            "apiserver_qps" => {
                let arg = one_arg(o, NAME)?;
                qps = arg
                    .parse::<f32>()
                    .ok()
                    .filter(|q| q.is_finite())
                    .ok_or_else(|| {
                        directive_err(o, NAME, format!("invalid apiserver_qps {arg:?}"))
                    })?;
                if qps < 0.0 {
                    return Err(directive_err(o, NAME, "apiserver_qps must be >= 0"));
                }
            }
            "apiserver_burst" => burst = count(o, "apiserver_burst")?,
            "apiserver_max_inflight" => {
                api.max_inflight = count(o, "apiserver_max_inflight")? as usize;
            }
            // Removed from CoreDNS (1.7); old ConfigMaps still have them: started anyway.
            "upstream" => tracing::warn!(
                "kubernetes at {}: `upstream` was removed in CoreDNS 1.7 and is ignored: \
                 ExternalName targets outside the cluster are asked of the block's `forward`",
                o.pos
            ),
            "resyncperiod" => {
                parse_duration(one_arg(o, NAME)?)
                    .map_err(|m| directive_err(o, NAME, format!("resyncperiod: {m}")))?;
                tracing::warn!(
                    "kubernetes at {}: `resyncperiod` was removed in CoreDNS 1.7 and is \
                     ignored: the watches keep every record current",
                    o.pos
                );
            }
            "multicluster" => {
                return Err(directive_err(
                    o,
                    NAME,
                    "multicluster: not supported yet (ServiceImports of the Multi-Cluster \
                     Services API are not watched); remove it to serve this cluster's names",
                ));
            }
            other => {
                return Err(directive_err(
                    o,
                    NAME,
                    format!("unknown property {other:?}"),
                ));
            }
        }
    }
    if k.zonal && k.noendpoints {
        return Err(directive_err(
            d,
            NAME,
            "zonal requires the endpoint cache; remove noendpoints",
        ));
    }
    api.rate = crate::source::kube::rate(qps, burst);
    if api.endpoint.is_some() && api.kubeconfig.is_some() {
        return Err(directive_err(
            d,
            NAME,
            "use `endpoint` or `kubeconfig`, not both",
        ));
    }
    if k.manifests.is_empty() {
        // No files: the API, in-cluster unless `endpoint` or `kubeconfig` says where.
        k.api = Some(api);
    } else if api_named {
        return Err(directive_err(
            d,
            NAME,
            "`manifests` and the API source (`endpoint`, `kubeconfig`, `tls`) exclude each other",
        ));
    }
    Ok(k)
}

/// A Kubernetes label selector: kept as written, checked for the characters selectors use.
/// A count of 0 or more, as `apiserver_burst` and `apiserver_max_inflight` take it.
fn count(o: &Directive, what: &str) -> Result<u32, ConfigError> {
    let arg = one_arg(o, "kubernetes")?;
    match arg.parse::<i64>() {
        Ok(n) if n < 0 => Err(directive_err(
            o,
            "kubernetes",
            format!("{what} must be >= 0"),
        )),
        Ok(n) => u32::try_from(n)
            .map_err(|_| directive_err(o, "kubernetes", format!("invalid {what} {arg:?}"))),
        Err(_) => Err(directive_err(
            o,
            "kubernetes",
            format!("invalid {what} {arg:?}"),
        )),
    }
}

fn selector(d: &Directive, parent: &str) -> Result<String, ConfigError> {
    if d.args.is_empty() {
        return Err(directive_err(
            d,
            parent,
            format!("{} needs a selector", d.name),
        ));
    }
    let s = d.args.join(" ");
    let ok = s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || " ,=!()-_./".contains(c));
    if !ok {
        return Err(directive_err(
            d,
            parent,
            format!("{}: {s:?} is not a label selector", d.name),
        ));
    }
    Ok(s)
}

impl Setup for KubernetesConfig {
    fn parse(d: &Directive, cx: &Context<'_>) -> Result<Self, ConfigError> {
        kubernetes(d, cx.zones, cx.dir)
    }

    fn build(&self, b: &mut Building<'_>) -> Result<(), SetupError> {
        let mut source: Box<dyn Source<ClusterWriter>> = match &self.api {
            Some(api) => Box::new(
                ApiSource::new(api, self.pods == PodMode::Verified).map_err(SetupError::Api)?,
            ),
            None => Box::new(ManifestSource {
                paths: self.manifests.clone(),
                reload: self.reload,
            }),
        };
        let external = b
            .find::<crate::plugin::k8s_external::K8sExternalConfig>()
            .map(|e| e.headless);
        let (kubernetes, mut writer) =
            Kubernetes::with_external(self, self.api.is_some(), external, local_ips(b.listen));
        if source.load(&mut writer)? {
            kubernetes.ready_flag().store(true, Ordering::Relaxed);
        }
        b.background
            .push(source.run(writer, kubernetes.ready_flag()));
        b.ready.push(("kubernetes", kubernetes.ready_flag()));
        // `k8s_external` (before it in the chain) answers from the same view.
        for p in &b.chain {
            if let Plugin::K8sExternal(e) = p {
                e.attach(kubernetes.view(), kubernetes.ttl());
            }
        }
        b.chain.push(Plugin::Kubernetes(kubernetes));
        Ok(())
    }
}

/// The server's own addresses, loopback left out, as CoreDNS finds them: the addresses the
/// block is bound to, else every interface's.
fn local_ips(listen: &[crate::corefile::Listen]) -> Vec<std::net::IpAddr> {
    let bound: Vec<std::net::IpAddr> = listen.iter().filter_map(|l| l.ip).collect();
    let all = if bound.is_empty() {
        if_addrs::get_if_addrs()
            .map(|interfaces| interfaces.iter().map(if_addrs::Interface::ip).collect())
            .unwrap_or_default()
    } else {
        bound
    };
    let mut out: Vec<std::net::IpAddr> = Vec::new();
    for ip in all {
        if !ip.is_loopback() && !ip.is_unspecified() && !out.contains(&ip) {
            out.push(ip);
        }
    }
    out
}
