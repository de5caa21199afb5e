//! Sources: where records come from. Each knows one outside format and yields the model
//! ([`crate::cluster`]) or plain records; none of them reads the table.

pub mod convert;
pub mod hosts;
pub mod kube;
pub mod manifests;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tracing::{info, warn};

use crate::cluster::writer::{Change, ClusterWriter};

/// A task that keeps a source up to date while the server runs.
pub type Background = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Where a plugin's records come from, fed to its writer `W` the same way by every source: a
/// first load before anything is served, then a task that keeps the writer current. A new
/// source (zone files, ServiceImports) is one more implementation of this.
///
/// The `kubernetes` plugin's writer is the cluster's ([`ClusterWriter`], fed [`Change`]s):
/// from the API ([`kube::ApiSource`]), manifest files ([`manifests::ManifestSource`]), or
/// batches of changes from a channel ([`Events`], for tests without an API server). `hosts`'s
/// is its names' ([`hosts::HostsWriter`], fed a file's entries by [`hosts::HostsFile`]).
pub trait Source<W>: Send + 'static {
    /// What the source holds now, applied before anything is served: `Ok(true)` when that is
    /// all of it (the plugin is ready at once), `Ok(false)` when it comes later from
    /// [`Self::run`]. An error stops the start.
    fn load(&mut self, writer: &mut W) -> Result<bool, manifests::ManifestError>;

    /// Keeps the writer current while the server runs, and sets `ready` once it has synced.
    fn run(self: Box<Self>, writer: W, ready: Arc<AtomicBool>) -> Background;
}

/// Batches of changes sent by whoever holds the sender, as a watch would deliver them: the
/// first batch is the sync (ready once applied), the rest follow as they come.
#[derive(Debug)]
pub struct Events(pub tokio::sync::mpsc::UnboundedReceiver<Vec<Change>>);

impl Source<ClusterWriter> for Events {
    fn load(&mut self, _writer: &mut ClusterWriter) -> Result<bool, manifests::ManifestError> {
        Ok(false)
    }

    fn run(self: Box<Self>, mut writer: ClusterWriter, ready: Arc<AtomicBool>) -> Background {
        let Self(mut events) = *self;
        Box::pin(async move {
            while let Some(batch) = events.recv().await {
                writer.apply(batch);
                writer.mark_synced();
                ready.store(true, Ordering::Relaxed);
            }
        })
    }
}

/// Polls `paths` every `interval` and calls `reload` when any file under them changed.
/// `reload` returns an error to keep the last good state; it is logged once per change.
pub async fn watch_files<F>(
    what: &'static str,
    paths: Vec<PathBuf>,
    interval: Duration,
    mut reload: F,
) where
    F: FnMut() -> Result<(), String> + Send + 'static,
{
    if interval.is_zero() {
        return;
    }
    let mut seen = manifests::fingerprint(&paths);
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        let now = manifests::fingerprint(&paths);
        if now == seen {
            continue;
        }
        seen = now;
        match reload() {
            Ok(()) => info!(source = what, "reloaded after a change on disk"),
            Err(error) => {
                warn!(source = what, %error, "reload failed; keeping the last good records")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use hickory_proto::op::ResponseCode;
    use hickory_proto::rr::{Name, RecordType};
    use serde_json::json;

    use super::*;
    use crate::cluster::{Kind, Object};
    use crate::plugin::{Kubernetes, Outcome, Phases, Request};

    fn object(value: serde_json::Value) -> Object {
        convert::convert(&value).unwrap().unwrap()
    }

    /// Changes fed as a watch would deliver them, with no API server: SERVFAIL until the first
    /// batch, then each change shows in the answers.
    #[test]
    fn events_from_a_channel_feed_the_plugin_as_a_watch_does() {
        let config = crate::config::Config::from_text(
            ".:0 {\n kubernetes cluster.local\n}\n",
            0,
            Path::new("."),
        )
        .unwrap();
        let k = config.servers[0]
            .get::<crate::plugin::kubernetes::KubernetesConfig>()
            .cloned()
            .unwrap();
        let (kubernetes, writer) = Kubernetes::new(&k, true);
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let mut source: Box<dyn Source<ClusterWriter>> = Box::new(Events(rx));
        let mut writer = writer;
        assert!(!source.load(&mut writer).unwrap());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let task = runtime.spawn(source.run(writer, kubernetes.ready_flag()));
        let ask = |name: &str| {
            let req = Request::new(Name::from_ascii(name).unwrap(), RecordType::A);
            match kubernetes.serve(&req) {
                Outcome::Reply(reply) => (reply.rcode, reply.answers.count),
                other => panic!("{other:?}"),
            }
        };
        let name = "web.prod.svc.cluster.local.";
        assert_eq!(ask(name).0, ResponseCode::ServFail, "not synced yet");
        let service = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "prod"},
            "spec": {"clusterIP": "10.96.0.20", "ports": [{"name": "http", "port": 80}]}
        });
        let namespace =
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "prod"}});
        let settle = |until: &dyn Fn() -> bool| {
            for _ in 0..200 {
                runtime.block_on(async { tokio::time::sleep(Duration::from_millis(5)).await });
                if until() {
                    return;
                }
            }
            panic!("the change never showed");
        };
        tx.send(vec![
            Change::Upsert(object(namespace)),
            Change::Upsert(object(service)),
        ])
        .unwrap();
        settle(&|| ask(name) == (ResponseCode::NoError, 1));
        tx.send(vec![Change::Delete(
            Kind::Service,
            ("prod".into(), "web".into()),
        )])
        .unwrap();
        settle(&|| ask(name).0 == ResponseCode::NXDomain);
        drop(tx);
        runtime.block_on(task).unwrap();
    }
}
