//! Sources: where records come from. Each knows one outside format and yields the model
//! ([`crate::cluster`]) or plain records; none of them reads the table.

pub mod convert;
pub mod hosts;
pub mod kube;
pub mod manifests;

use std::path::PathBuf;
use std::time::Duration;

use tracing::{info, warn};

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
