//! The Kubernetes API source: lists and watches the cluster through kube-rs.
//!
//! One watcher per kind (Services, EndpointSlices, Namespaces, and Pods when `pods verified`
//! needs them). kube-runtime's watcher does the lists, pages, resource versions, bookmarks,
//! relists after `410 Gone` and backoff; this module strips each object to the model at once
//! (nothing else of an API object is kept) and keeps one [`ClusterObjects`] current:
//! a relist (`Init` … `InitDone`) replaces its kind whole, as kube-runtime's reflector does,
//! so after any fault the state equals what a fresh list gives.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::stream::{BoxStream, SelectAll};
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{ApiResource, DynamicObject};
use kube::runtime::watcher::{self, Event};
use kube::runtime::{WatchStreamExt, watcher as watch};
use kube::{Api, Client, Resource};
use serde_json::Value;
use tokio::time::Instant;
use tracing::{info, warn};

use super::convert::{Kind, Object, convert, key_of};
use crate::cluster::writer::{Change, ClusterWriter};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Where and how the kubernetes plugin reaches the API server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiConfig {
    /// `endpoint URL`: the API server, without credentials unless `tls` gives them.
    pub endpoint: Option<String>,
    /// `tls CERT KEY CACERT`.
    pub tls: Option<(PathBuf, PathBuf, PathBuf)>,
    /// `kubeconfig PATH [CONTEXT]`.
    pub kubeconfig: Option<(PathBuf, Option<String>)>,
    /// `labels SELECTOR`: only services and endpoints matching it.
    pub labels: Option<String>,
    /// `namespace_labels SELECTOR`: only namespaces matching it are exposed.
    pub namespace_labels: Option<String>,
    /// `startup_timeout`: how long cluster names get SERVFAIL while the first list syncs.
    pub startup_timeout: Duration,
    /// `apiserver_qps` and `apiserver_burst`: at most this many requests to the API in each
    /// period of this length ([`rate`]; `None`: not limited).
    pub rate: Option<(u64, Duration)>,
    /// `apiserver_max_inflight`: requests waiting for the API's response headers at once
    /// (0: not limited).
    pub max_inflight: usize,
}

/// The rate limit `apiserver_qps` and `apiserver_burst` make: BURST requests per BURST/QPS
/// seconds, so the average is QPS and a quiet client may send BURST at once (client-go's token
/// bucket, in fixed windows). As CoreDNS leaves client-go's defaults for the one not given,
/// QPS is 5 and BURST 10 when 0; with neither given, nothing is limited (client-go's 5 a
/// second would slow a large cluster's paginated first list).
pub fn rate(qps: f32, burst: u32) -> Option<(u64, Duration)> {
    if qps <= 0.0 && burst == 0 {
        return None;
    }
    let qps = if qps > 0.0 { f64::from(qps) } else { 5.0 };
    let burst = if burst > 0 { burst } else { 10 };
    // A day at most: a tiny QPS must not make a period no clock can hold.
    let per = Duration::try_from_secs_f64(f64::from(burst) / qps)
        .unwrap_or(Duration::MAX)
        .min(Duration::from_secs(86_400));
    Some((u64::from(burst), per))
}

use crate::cluster::{ClusterObjects, ServiceKind};
use crate::metrics::metrics;

/// Why the API source could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("endpoint {url:?}: {message}")]
    Endpoint { url: String, message: String },
    // The causes are part of each message (not `source`), so a printed chain says them once.
    #[error("kubeconfig {path}: {error}")]
    Kubeconfig {
        path: String,
        error: kube::config::KubeconfigError,
    },
    #[error("no endpoint or kubeconfig, and not in a cluster: {0}")]
    InCluster(kube::config::InClusterError),
    #[error("tls {path}: {message}")]
    TlsFile { path: String, message: String },
    #[error("client: {0}")]
    Client(kube::Error),
}

/// Most events taken in one batch before they are applied.
const MAX_BATCH: usize = 4096;

/// Where to connect, checked before the server starts. The client itself is made inside the
/// runtime ([`ApiSource::run`]).
#[derive(Debug, Clone)]
pub struct ApiSource {
    config: ApiConfig,
    kubeconfig: Option<kube::config::Kubeconfig>,
    /// `tls`'s CA certificates (DER), read at start: kube-rs would otherwise begin from the
    /// system's CA store, which a minimal image does not have.
    tls_roots: Option<Vec<Vec<u8>>>,
    watch_pods: bool,
}

impl super::Source<ClusterWriter> for ApiSource {
    /// Nothing until the first list: the plugin answers SERVFAIL until then.
    fn load(
        &mut self,
        _writer: &mut ClusterWriter,
    ) -> Result<bool, super::manifests::ManifestError> {
        Ok(false)
    }

    fn run(self: Box<Self>, writer: ClusterWriter, ready: Arc<AtomicBool>) -> super::Background {
        Box::pin(self.watch(writer, ready))
    }
}

impl ApiSource {
    /// Checks what can be checked without the network: URLs, files, the service account.
    pub fn new(config: &ApiConfig, watch_pods: bool) -> Result<Self, ApiError> {
        let mut kubeconfig = None;
        if let Some(url) = &config.endpoint {
            url.parse::<http::Uri>().map_err(|e| ApiError::Endpoint {
                url: url.clone(),
                message: e.to_string(),
            })?;
        } else if let Some((path, _)) = &config.kubeconfig {
            kubeconfig = Some(kube::config::Kubeconfig::read_from(path).map_err(|error| {
                ApiError::Kubeconfig {
                    path: path.display().to_string(),
                    error,
                }
            })?);
        } else {
            kube::Config::incluster().map_err(ApiError::InCluster)?;
        }
        let mut tls_roots = None;
        if let Some((cert, key, ca)) = &config.tls {
            let fail = |path: &std::path::Path, message: String| ApiError::TlsFile {
                path: path.display().to_string(),
                message,
            };
            let certs = |path: &std::path::Path| -> Result<Vec<Vec<u8>>, ApiError> {
                let found = CertificateDer::pem_file_iter(path)
                    .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| fail(path, e.to_string()))?;
                if found.is_empty() {
                    return Err(fail(path, "no PEM certificate in it".into()));
                }
                Ok(found.into_iter().map(|c| c.to_vec()).collect())
            };
            certs(cert)?;
            PrivateKeyDer::from_pem_file(key).map_err(|e| fail(key, e.to_string()))?;
            tls_roots = Some(certs(ca)?);
        }
        Ok(Self {
            config: config.clone(),
            kubeconfig,
            tls_roots,
            watch_pods,
        })
    }

    async fn client(&self) -> Result<Client, ApiError> {
        let mut config = if let Some(url) = &self.config.endpoint {
            let uri = url.parse::<http::Uri>().map_err(|e| ApiError::Endpoint {
                url: url.clone(),
                message: e.to_string(),
            })?;
            kube::Config::new(uri)
        } else if let (Some(kc), Some((path, context))) =
            (&self.kubeconfig, &self.config.kubeconfig)
        {
            let options = kube::config::KubeConfigOptions {
                context: context.clone(),
                ..Default::default()
            };
            kube::Config::from_custom_kubeconfig(kc.clone(), &options)
                .await
                .map_err(|error| ApiError::Kubeconfig {
                    path: path.display().to_string(),
                    error,
                })?
        } else {
            kube::Config::incluster().map_err(ApiError::InCluster)?
        };
        if let Some((cert, key, ca)) = &self.config.tls {
            config.auth_info.client_certificate = Some(cert.display().to_string());
            config.auth_info.client_key = Some(key.display().to_string());
            config.root_cert_file = Some(ca.clone());
            config.root_cert.clone_from(&self.tls_roots);
        }
        let rate = self
            .config
            .rate
            .map(|(n, per)| tower::limit::RateLimitLayer::new(n, per));
        let inflight = (self.config.max_inflight > 0)
            .then(|| tower::limit::ConcurrencyLimitLayer::new(self.config.max_inflight));
        // The rate limit outside: a request waits for its turn before it takes a place in
        // flight, and holds that place only until the response's headers arrive.
        Ok(kube::client::ClientBuilder::try_from(config)
            .map_err(ApiError::Client)?
            .with_layer(&tower::util::option_layer(inflight))
            .with_layer(&tower::util::option_layer(rate))
            .build())
    }

    /// Watches the cluster for ever, applying each batch of changes to `writer`. `ready`
    /// turns true once every kind has synced or `startup_timeout` has passed.
    async fn watch(self, mut writer: ClusterWriter, ready: Arc<AtomicBool>) {
        let client = match self.client().await {
            Ok(c) => c,
            Err(error) => {
                warn!(%error, "kubernetes: cannot make an API client; cluster names stay SERVFAIL");
                return;
            }
        };
        let mut streams = self.streams(client);
        let kinds: BTreeSet<Kind> = self.kinds().into_iter().collect();
        let mut relisting: HashMap<Kind, ClusterObjects> = HashMap::new();
        let mut synced: BTreeSet<Kind> = BTreeSet::new();
        let kept = writer.kept();
        let mut failing: BTreeSet<Kind> = BTreeSet::new();
        let startup = tokio::time::sleep_until(Instant::now() + self.config.startup_timeout);
        tokio::pin!(startup);
        let mut marked = false;
        loop {
            tokio::select! {
                next = streams.next() => {
                    let Some(first) = next else { return };
                    let arrived = Instant::now();
                    let mut batch = vec![first];
                    while batch.len() < MAX_BATCH {
                        match streams.next().now_or_never() {
                            Some(Some(ev)) => batch.push(ev),
                            _ => break,
                        }
                    }
                    let mut changes = Vec::new();
                    for (kind, result) in batch {
                        match result {
                            Ok(event) => {
                                // `Init` comes before every list attempt; data means it worked.
                                if !matches!(event, Event::Init) && failing.remove(&kind) {
                                    info!(?kind, "kubernetes: watch recovered");
                                }
                                changes.extend(change(
                                    &mut relisting,
                                    &mut synced,
                                    kind,
                                    event,
                                    kept,
                                ));
                            }
                            Err(error) => {
                                // Logged once per change of state, not per retry.
                                if failing.insert(kind) {
                                    warn!(?kind, %error, "kubernetes: watch failed; serving the last known records and retrying");
                                }
                            }
                        }
                    }
                    if !changes.is_empty() {
                        let kinds: Vec<&'static str> = changes
                            .iter()
                            .filter_map(|c| programmed_kind(writer.objects(), c))
                            .collect();
                        writer.apply(changes);
                        // As CoreDNS: endpoint changes after the first sync, event to served.
                        if ready.load(Ordering::Relaxed) {
                            let seconds = arrived.elapsed().as_secs_f64();
                            for kind in kinds {
                                metrics().programmed(kind, seconds);
                            }
                        }
                    }
                }
                () = &mut startup, if !ready.load(Ordering::Relaxed) => {
                    warn!("kubernetes: starting to serve with an unsynced API");
                    ready.store(true, Ordering::Relaxed);
                }
            }
            if !marked && synced == kinds {
                info!("kubernetes: initial list synced");
                marked = true;
                writer.mark_synced();
                ready.store(true, Ordering::Relaxed);
            }
        }
    }

    fn kinds(&self) -> Vec<Kind> {
        let mut kinds = vec![Kind::Namespace, Kind::Service, Kind::EndpointSlice];
        if self.watch_pods {
            kinds.push(Kind::Pod);
        }
        kinds
    }

    fn streams(&self, client: Client) -> SelectAll<Events> {
        let labelled = || {
            let c = watcher::Config::default();
            match &self.config.labels {
                Some(l) => c.labels(l),
                None => c,
            }
        };
        let namespaces = match &self.config.namespace_labels {
            Some(l) => watcher::Config::default().labels(l),
            None => watcher::Config::default(),
        };
        let mut all: Vec<Events> = vec![
            events::<Namespace>(&client, namespaces, Kind::Namespace),
            events::<Service>(&client, labelled(), Kind::Service),
            events::<EndpointSlice>(&client, labelled(), Kind::EndpointSlice),
        ];
        if self.watch_pods {
            all.push(events::<Pod>(
                &client,
                watcher::Config::default(),
                Kind::Pod,
            ));
        }
        futures::stream::select_all(all)
    }
}

type Events = BoxStream<'static, (Kind, Result<Event<Value>, watcher::Error>)>;

/// A watcher of the kind `K` names, retried with kube-runtime's default backoff. Objects are
/// decoded once, as `DynamicObject`s (JSON), into the form [`convert`] reads: no typed
/// Kubernetes structs in between.
fn events<K>(client: &Client, config: watcher::Config, kind: Kind) -> Events
where
    K: Resource<DynamicType = ()>,
{
    let resource = ApiResource::erase::<K>(&());
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
    let (api_version, kind_name) = (resource.api_version, resource.kind);
    watch(api, config)
        .default_backoff()
        .map(move |r| (kind, r.map(|e| to_json(e, &api_version, &kind_name))))
        .boxed()
}

/// An object as [`convert`] reads it: list items come without `apiVersion` and `kind`, and
/// only the metadata DNS reads is kept.
fn to_json(event: Event<DynamicObject>, api_version: &str, kind: &str) -> Event<Value> {
    let json = |o: DynamicObject| {
        let mut data = match o.data {
            Value::Object(map) => map,
            _ => serde_json::Map::new(),
        };
        let mut meta = serde_json::Map::new();
        if let Some(name) = o.metadata.name {
            meta.insert("name".into(), Value::String(name));
        }
        if let Some(namespace) = o.metadata.namespace {
            meta.insert("namespace".into(), Value::String(namespace));
        }
        if let Some(labels) = o.metadata.labels {
            let labels = labels.into_iter().map(|(k, v)| (k, Value::String(v)));
            meta.insert("labels".into(), Value::Object(labels.collect()));
        }
        data.insert("metadata".into(), Value::Object(meta));
        data.insert("apiVersion".into(), Value::String(api_version.into()));
        data.insert("kind".into(), Value::String(kind.into()));
        Value::Object(data)
    };
    match event {
        Event::Apply(o) => Event::Apply(json(o)),
        Event::Delete(o) => Event::Delete(json(o)),
        Event::Init => Event::Init,
        Event::InitApply(o) => Event::InitApply(json(o)),
        Event::InitDone => Event::InitDone,
    }
}

/// What one watch event changes. A relist is buffered and replaces its kind whole at
/// `InitDone`, so objects deleted while the watch was down go too. Pod names are dropped
/// before buffering unless `endpoint_pod_names` uses them, zones unless `zonal` does (a large
/// relist holds less).
fn change(
    relisting: &mut HashMap<Kind, ClusterObjects>,
    synced: &mut BTreeSet<Kind>,
    kind: Kind,
    event: Event<Value>,
    kept: crate::cluster::Kept,
) -> Option<Change> {
    match event {
        Event::Init => {
            relisting.insert(kind, ClusterObjects::default());
            None
        }
        Event::InitApply(value) => {
            if let (Some(buffer), Some(mut object)) =
                (relisting.get_mut(&kind), stripped(kind, &value))
            {
                if let Object::Slice(_, Some(set)) = &mut object {
                    set.endpoints = std::mem::take(&mut set.endpoints).keeping(kept);
                }
                buffer.insert(object);
            }
            None
        }
        Event::InitDone => {
            synced.insert(kind);
            Some(Change::ReplaceKind(
                kind,
                relisting.remove(&kind).unwrap_or_default(),
            ))
        }
        Event::Apply(value) => stripped(kind, &value).map(Change::Upsert),
        Event::Delete(value) => Some(Change::Delete(kind, key_of(kind, &value))),
    }
}

/// The `service_kind` label of an endpoints change, as CoreDNS names it; `None` for other
/// changes.
fn programmed_kind(objects: &ClusterObjects, change: &Change) -> Option<&'static str> {
    let (namespace, service) = match change {
        Change::Upsert(Object::Slice(_, Some(set))) => (set.namespace.clone(), set.service.clone()),
        Change::Delete(Kind::EndpointSlice, key) => {
            let set = objects.slices.get(key)?;
            (set.namespace.clone(), set.service.clone())
        }
        _ => return None,
    };
    match objects.services.get(&(namespace, service)).map(|s| &s.kind) {
        Some(ServiceKind::ClusterIp(_)) => Some("cluster_ip"),
        Some(ServiceKind::Headless) => Some("headless_with_selector"),
        _ => None,
    }
}

/// The model of one object; an object DNS cannot use is logged and skipped, leaving the
/// last good version in place.
fn stripped(kind: Kind, value: &Value) -> Option<Object> {
    match convert(value) {
        Ok(object) => object,
        Err(error) => {
            let (namespace, name) = key_of(kind, value);
            warn!(?kind, %namespace, %name, %error, "kubernetes: object skipped");
            None
        }
    }
}
