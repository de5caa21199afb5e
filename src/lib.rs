//! clusterdns: a CoreDNS-compatible DNS server for Kubernetes.
//!
//! Code map (ARCHITECTURE.md has the long version):
//! - [`config`]: the Corefile, parsed and validated before anything is bound.
//! - [`source`]: where data comes from (manifest files, the Kubernetes API, hosts files);
//!   strips it to the model.
//! - [`cluster`]: the Kubernetes model and the records the DNS specification gives it.
//! - [`table`]: records by name, published as snapshots that readers load without locking.
//! - [`plugin`]: the directives that answer (`kubernetes`, `hosts`), one snapshot per query.
//! - [`answer`]: query bytes to response bytes: checks, routing, the chain, encoding.
//! - [`server`]: sockets and the UDP/TCP loops.

pub mod answer;
pub mod cluster;
pub mod config;
#[doc(hidden)]
pub mod fuzzing;
pub mod metrics;
pub mod plugin;
pub mod server;
pub mod source;
pub mod table;
pub mod wire;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use answer::Block;
use config::Config;
use plugin::{Hosts, Kubernetes, Plugin};
use source::ClusterSource;
use source::kube::ApiSource;
use source::manifests::{ManifestError, ManifestSource};

pub use source::Background;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Bind(#[from] server::BindError),
    #[error("kubernetes: {0}")]
    Api(source::kube::ApiError),
}

/// Everything a configuration asks for, loaded: each server block with its addresses, and the
/// tasks that keep its sources current.
pub struct Assembly {
    /// Each server block with the addresses it listens on.
    pub blocks: Vec<(Vec<config::Listen>, Block)>,
    pub background: Vec<Background>,
    /// HTTP endpoints (`/health`, `/ready`, `/metrics`) by address.
    pub http: Vec<(String, server::http::Routes)>,
    /// `health { lameduck }`: how long to keep serving after a shutdown signal.
    pub lameduck: std::time::Duration,
}

/// Loads every source the configuration names. Any error here stops the start.
pub fn assemble(config: &Config) -> Result<Assembly, StartError> {
    let mut blocks = Vec::new();
    let mut background: Vec<Background> = Vec::new();
    let mut ready: Vec<(&'static str, Arc<AtomicBool>)> = Vec::new();
    let mut enabled: Vec<(u16, &'static str)> = Vec::new();
    let mut endpoints: BTreeMap<String, BTreeSet<&'static str>> = BTreeMap::new();
    let mut lameduck = std::time::Duration::ZERO;
    for server in &config.servers {
        let listen = server.listen();
        let mut plugins = Vec::new();
        if let Some(r) = &server.rrl {
            if !r.limits_anything() {
                tracing::warn!(
                    "rrl in the block at {}: every allowance is 0, nothing is limited",
                    server.pos
                );
            }
            plugins.push(Plugin::Rrl(Box::new(plugin::rrl::Rrl::new(r))));
        }
        if server.errors {
            plugins.push(Plugin::Errors(plugin::log::Errors));
        }
        if server.log {
            plugins.push(Plugin::Log(plugin::log::Log));
        }
        if server.loadbalance {
            plugins.push(Plugin::Loadbalance(plugin::loadbalance::Loadbalance));
        }
        if let Some(h) = &server.hosts {
            let hosts = Hosts::new(h);
            if let Some((file, reload)) = hosts.reloader() {
                background.push(Box::pin(source::watch_files(
                    "hosts",
                    vec![file],
                    h.reload,
                    reload,
                )));
            }
            plugins.push(Plugin::Hosts(hosts));
        }
        if let Some(k) = &server.kubernetes {
            let mut source: Box<dyn ClusterSource> = match &k.api {
                Some(api) => Box::new(
                    ApiSource::new(api, k.pods == config::PodMode::Verified)
                        .map_err(StartError::Api)?,
                ),
                None => Box::new(ManifestSource {
                    paths: k.manifests.clone(),
                    reload: k.reload,
                }),
            };
            let (kubernetes, mut writer) = Kubernetes::new(k, k.api.is_some());
            if source.load(&mut writer)? {
                kubernetes.ready_flag().store(true, Ordering::Relaxed);
            }
            background.push(source.run(writer, kubernetes.ready_flag()));
            plugins.push(Plugin::Kubernetes(kubernetes));
        }
        if server.detect_loop
            && let Some(zone) = server.zones.first()
        {
            let detector = plugin::forward_loop::Loop::new(zone, listen[0]);
            background.push(Box::pin(detector.probe()));
            plugins.push(Plugin::Loop(detector));
        }
        if let Some(f) = &server.forward {
            let server_label = listen[0].to_string();
            let cache = server.cache.as_ref().map(|c| {
                let zones: Vec<String> = if c.zones.is_empty() {
                    server.zones.iter().map(ToString::to_string).collect()
                } else {
                    c.zones.iter().map(ToString::to_string).collect()
                };
                let counters = metrics::metrics().register_cache(server_label, zones);
                plugin::cache::Cache::new(c, &server.zones, counters)
            });
            plugins.push(Plugin::Forward(plugin::Forward::new(f, cache)));
        }
        // The chain runs in CoreDNS's order, whatever order the Corefile lists them in.
        plugins.sort_by_key(|p| config::directives::order(p.name()));
        for p in &plugins {
            if let Plugin::Kubernetes(k) = p {
                ready.push((p.name(), k.ready_flag()));
            }
        }
        // One metrics series per address, as CoreDNS runs a server per address; `index` is
        // the first, and each address's handler finds its own (`Handler::shared`).
        let indices: Vec<u16> = listen
            .iter()
            .map(|l| {
                metrics::metrics().register_block(
                    l.to_string(),
                    server.zones.iter().map(ToString::to_string).collect(),
                )
            })
            .collect();
        let index = indices[0];
        for name in config::directives::enabled(server) {
            enabled.extend(indices.iter().map(|&i| (i, name)));
        }
        if let Some(h) = &server.health {
            endpoints
                .entry(h.addr.clone())
                .or_default()
                .insert("/health");
            lameduck = lameduck.max(h.lameduck);
        }
        if let Some(addr) = &server.ready {
            endpoints.entry(addr.clone()).or_default().insert("/ready");
        }
        if let Some(addr) = &server.prometheus {
            endpoints
                .entry(addr.clone())
                .or_default()
                .insert("/metrics");
        }
        blocks.push((
            listen,
            Block::new(
                server.zones.clone(),
                plugins,
                server.prometheus.as_ref().map(|_| index),
                server
                    .autopath
                    .as_ref()
                    .map(plugin::autopath::Autopath::new),
            ),
        ));
    }
    let http = endpoints
        .into_iter()
        .map(|(addr, paths)| (addr, routes(paths, ready.clone(), enabled.clone())))
        .collect();
    Ok(Assembly {
        blocks,
        background,
        http,
        lameduck,
    })
}

/// Set when the process has been told to stop: `/ready` answers 503 from then on (through the
/// lameduck period), so load balancers stop sending queries while they are still answered.
pub static STOPPING: AtomicBool = AtomicBool::new(false);

/// What an HTTP endpoint answers: CoreDNS's `/health` (always OK while running), `/ready` (OK
/// once every plugin that reports readiness is ready, else 503 naming them) and `/metrics`.
fn routes(
    paths: BTreeSet<&'static str>,
    ready: Vec<(&'static str, Arc<AtomicBool>)>,
    enabled: Vec<(u16, &'static str)>,
) -> server::http::Routes {
    Arc::new(move |path: &str| {
        if !paths.contains(path) {
            return None;
        }
        Some(match path {
            "/health" => (200, "text/plain", "OK".to_string()),
            "/ready" if STOPPING.load(Ordering::Relaxed) => {
                (503, "text/plain", "shutting down".to_string())
            }
            "/ready" => {
                // As CoreDNS: the plugins not ready yet, by name, comma-separated.
                let mut waiting: Vec<&str> = ready
                    .iter()
                    .filter(|(_, r)| !r.load(Ordering::Relaxed))
                    .map(|(name, _)| *name)
                    .collect();
                waiting.sort_unstable();
                waiting.dedup();
                if waiting.is_empty() {
                    (200, "text/plain", "OK".to_string())
                } else {
                    (503, "text/plain", waiting.join(","))
                }
            }
            _ => (
                200,
                "text/plain; version=0.0.4",
                metrics::metrics().render(&enabled),
            ),
        })
    })
}
