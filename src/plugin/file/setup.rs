//! `file DBFILE [ZONES...] { reload DURATION; reload_by_mtime; fallthrough [ZONES...] }`:
//! CoreDNS's syntax and defaults. The files are read when the Corefile is (so a broken zone
//! stops the start, or `-validate`, with its file and line); building the plugin publishes them
//! and starts a task per file that reads it again every `reload` and serves it anew when its
//! SOA serial (or, with `reload_by_mtime`, its modification time) changed.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use hickory_proto::rr::{LowerName, Name};

use super::zone::Zone;
use super::{File, Slot, text};
use crate::corefile::{
    ConfigError, Directive, Fallthrough, directive_err, parse_duration, plugin_zones, resolve,
};
use crate::plugin::Plugin;
use crate::plugin::setup::{Building, Context, Setup, SetupError};
use crate::table::RecordTable;
use crate::wire::Zones;

const NAME: &str = "file";
/// CoreDNS's interval between checks of a zone file.
const DEFAULT_RELOAD: Duration = Duration::from_secs(60);

/// The `file` directives of a block (CoreDNS takes several: each adds its zones).
#[derive(Debug, Clone)]
pub struct FileConfig {
    pub files: Vec<ZoneFile>,
    pub fallthrough: Fallthrough,
}

/// One `file` line: the file, its zones and what was read of them.
#[derive(Debug, Clone)]
pub struct ZoneFile {
    pub path: PathBuf,
    pub zones: Vec<LowerName>,
    pub reload: Duration,
    pub by_mtime: bool,
    /// Each zone as read at start (`None`: the file was missing, and `reload` will look again).
    loaded: Vec<Option<Arc<Zone>>>,
}

/// Reads the zone `origin` from `path`.
pub fn load(path: &Path, origin: &LowerName) -> Result<Zone, String> {
    let origin = Name::from(origin.clone());
    let records = text::read(path, &origin).map_err(|e| e.to_string())?;
    Zone::new(&origin, records).map_err(|m| format!("{}: {m}", path.display()))
}

impl Setup for FileConfig {
    fn parse(d: &Directive, cx: &Context<'_>) -> Result<Self, ConfigError> {
        let Some((file, zone_args)) = d.args.split_first() else {
            return Err(directive_err(
                d,
                NAME,
                "Wrong argument count or unexpected line ending after 'file'",
            ));
        };
        let path = resolve(cx.root.unwrap_or(cx.dir), file);
        let zones = plugin_zones(d, NAME, zone_args, cx.zones)?;
        let mut fallthrough = Fallthrough::default();
        let (mut reload, mut by_mtime) = (DEFAULT_RELOAD, false);
        for o in &d.block {
            match o.name.as_str() {
                "reload" => {
                    let arg = o.args.first().ok_or_else(|| {
                        directive_err(o, NAME, "reload duration value is expected")
                    })?;
                    reload = parse_duration(arg)
                        .map_err(|m| directive_err(o, NAME, format!("reload: {m}")))?;
                }
                "reload_by_mtime" => by_mtime = true,
                "fallthrough" => fallthrough = Fallthrough::parse(&o.args, o, NAME)?,
                // Accepted and ignored by CoreDNS ("remove soon"): CNAME targets outside the
                // zone are always looked up through the server.
                "upstream" => {}
                other => {
                    return Err(directive_err(
                        o,
                        NAME,
                        format!("unknown property '{other}'"),
                    ));
                }
            }
        }
        let mut loaded = Vec::with_capacity(zones.len());
        for origin in &zones {
            if !path.exists() && !reload.is_zero() {
                // As CoreDNS: served as SERVFAIL until the file appears.
                tracing::warn!(file = %path.display(), zone = %origin, ?reload, "zone file missing: trying again every reload");
                loaded.push(None);
                continue;
            }
            let zone = load(&path, origin).map_err(|m| directive_err(d, NAME, m))?;
            loaded.push(Some(Arc::new(zone)));
        }
        Ok(Self {
            files: vec![ZoneFile {
                path,
                zones,
                reload,
                by_mtime,
                loaded,
            }],
            fallthrough,
        })
    }

    /// A later `file` line adds its zones; its `fallthrough`, when it has one, is the block's
    /// (CoreDNS keeps one for the plugin).
    fn merge(&mut self, later: Self) -> bool {
        self.files.extend(later.files);
        if later.fallthrough.is_set() {
            self.fallthrough = later.fallthrough;
        }
        true
    }

    fn build(&self, b: &mut Building<'_>) -> Result<(), SetupError> {
        let mut zones = Vec::new();
        let mut slots = Vec::new();
        for file in &self.files {
            let mut watched = Vec::new();
            for (origin, zone) in file.zones.iter().zip(&file.loaded) {
                let slot: Slot = Arc::new(RecordTable::new(zone.clone()));
                zones.push(origin.clone());
                slots.push(Arc::clone(&slot));
                watched.push((origin.clone(), slot));
            }
            if !file.reload.is_zero() {
                b.background.push(Box::pin(watch(
                    file.path.clone(),
                    watched,
                    file.reload,
                    file.by_mtime,
                )));
            }
        }
        b.chain.push(Plugin::File(File::new(
            Zones::new(&zones),
            slots,
            self.fallthrough.clone(),
        )));
        Ok(())
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Reads `path` every `reload` and publishes each zone whose SOA serial changed (or every zone,
/// when `by_mtime` and the file's modification time moved on); a file that does not read
/// leaves the zones as they were.
async fn watch(path: PathBuf, zones: Vec<(LowerName, Slot)>, reload: Duration, by_mtime: bool) {
    let mut ticker = tokio::time::interval(reload);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    let mut seen = modified(&path);
    loop {
        ticker.tick().await;
        if by_mtime {
            let now = modified(&path);
            if now.is_none() || now <= seen {
                continue;
            }
            seen = now;
        }
        for (origin, slot) in &zones {
            // Reading and building a zone is work for a blocking thread.
            let loaded = tokio::task::spawn_blocking({
                let (path, origin) = (path.clone(), origin.clone());
                move || load(&path, &origin)
            })
            .await
            .unwrap_or_else(|e| Err(e.to_string()));
            let zone = match loaded {
                Ok(zone) => zone,
                Err(error) => {
                    tracing::warn!(zone = %origin, %error, "zone file did not reload; keeping the zone as it was");
                    continue;
                }
            };
            let serial = slot.guard().as_ref().as_ref().map(|z| z.serial);
            if !by_mtime && serial == Some(zone.serial) {
                continue;
            }
            tracing::info!(zone = %origin, file = %path.display(), serial = zone.serial, "reloaded zone");
            slot.publish(Some(Arc::new(zone)));
        }
    }
}
