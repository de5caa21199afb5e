//! clusterdns: a CoreDNS-compatible DNS server for Kubernetes.
//!
//! Code map (ARCHITECTURE.md has the long version):
//! - [`corefile`]: the Corefile language, and what directives' arguments are made of.
//! - [`config`]: the Corefile read into server blocks of directives' settings, validated
//!   before anything is bound.
//! - [`source`]: where data comes from (manifest files, the Kubernetes API, hosts files);
//!   strips it to the model.
//! - [`cluster`]: the Kubernetes model and the records the DNS specification gives it.
//! - [`table`]: records by name, published as snapshots that readers load without locking.
//! - [`plugin`]: the registry of directives, and each plugin's settings, setup and phases.
//! - [`answer`]: query bytes to response bytes: checks, routing, the chain, encoding.
//! - [`server`]: sockets and the UDP/TCP loops.

pub mod answer;
pub mod cluster;
pub mod config;
pub mod corefile;
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
use plugin::setup::Building;

pub use source::Background;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Setup(#[from] plugin::setup::SetupError),
    #[error(transparent)]
    Bind(#[from] server::BindError),
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
    /// `on shutdown`: commands run when the process stops.
    pub shutdown: Vec<plugin::on::Hook>,
}

/// Builds every server block: each directive in chain order adds its plugin, its background
/// tasks and its endpoints ([`plugin::setup::Setup::build`]). Any error here stops the start.
pub fn assemble(config: &Config) -> Result<Assembly, StartError> {
    let mut blocks = Vec::new();
    let mut background: Vec<Background> = Vec::new();
    let mut ready: Vec<(&'static str, Arc<AtomicBool>)> = Vec::new();
    let mut enabled: Vec<(u16, &'static str)> = Vec::new();
    let mut endpoints: BTreeMap<String, BTreeSet<&'static str>> = BTreeMap::new();
    let mut lameduck = std::time::Duration::ZERO;
    let mut shutdown = Vec::new();
    for server in &config.servers {
        let listen = server.listen();
        let mut building = Building::new(&server.zones, &listen, &server.pos, &server.setups);
        for (_, setup) in &server.setups {
            setup.build(&mut building)?;
        }
        let Building {
            mut chain,
            background: tasks,
            ready: flags,
            endpoints: paths,
            lameduck: wait,
            autopath,
            metrics: counted,
            shutdown: hooks,
            ..
        } = building;
        shutdown.extend(hooks);
        if let Some(last) = chain.last_mut() {
            last.mark_last();
        }
        background.extend(tasks);
        ready.extend(flags);
        for (addr, path) in paths {
            endpoints.entry(addr).or_default().insert(path);
        }
        lameduck = lameduck.max(wait);
        // One metrics series per address, as CoreDNS runs a server per address; `index` is
        // the first, and each address's handler finds its own (`Handler::shared`).
        let indices: Vec<u16> = listen
            .iter()
            .map(|l| {
                metrics::metrics().register_block(
                    l.to_string(),
                    server
                        .get::<plugin::view::View>()
                        .map(|v| v.name.clone())
                        .unwrap_or_default(),
                    server.zones.iter().map(ToString::to_string).collect(),
                )
            })
            .collect();
        for name in server.enabled() {
            enabled.extend(indices.iter().map(|&i| (i, name)));
        }
        blocks.push((
            listen,
            Block::new(
                server.zones.clone(),
                chain,
                counted.then_some(indices[0]),
                autopath,
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
        shutdown,
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
