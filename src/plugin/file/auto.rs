//! The `auto` plugin: every zone file in a directory whose name matches a pattern, served as
//! `file` serves one (the same answers, [`super::serve_zone`]), the directory scanned again
//! every `reload` for files added, removed or given a new SOA serial.
//!
//! `auto [ZONES...] { directory DIR [REGEXP ORIGIN_TEMPLATE]; reload DURATION }`, as CoreDNS
//! reads it: REGEXP (unanchored, default `db\.(.*)`) is matched against each file's name and
//! ORIGIN_TEMPLATE (default `{1}`) makes the zone's origin from its groups. Zones are loaded
//! whatever their origin; only those inside ZONES are asked.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::rr::{LowerName, Name};
use regex::Regex;

use super::zone::Zone;
use super::{serve_zone, serve_zone_fast, setup::load};
use crate::corefile::{
    ConfigError, Directive, Fallthrough, directive_err, parse_duration, plugin_zones, resolve,
};
use crate::plugin::setup::{Building, Context, Setup, SetupError};
use crate::plugin::{Fast, Outcome, Phases, Plugin, Request};
use crate::table::RecordTable;
use crate::wire::Zones;

const NAME: &str = "auto";
/// CoreDNS's longest pattern.
const MAX_REGEXP: usize = 10_000;

/// The `auto` directive.
#[derive(Debug, Clone)]
pub struct AutoConfig {
    pub zones: Vec<LowerName>,
    pub directory: PathBuf,
    pub pattern: Regex,
    pub template: String,
    pub reload: Duration,
}

impl Setup for AutoConfig {
    fn parse(d: &Directive, cx: &Context<'_>) -> Result<Self, ConfigError> {
        let mut config = Self {
            zones: plugin_zones(d, NAME, &d.args, cx.zones)?,
            directory: PathBuf::new(),
            pattern: Regex::new(r"db\.(.*)").expect("a valid pattern"),
            template: "{1}".into(),
            reload: Duration::from_secs(60),
        };
        let mut directory = None;
        for o in &d.block {
            match o.name.as_str() {
                "directory" => {
                    let (dir, rest) = o.args.split_first().ok_or_else(|| {
                        directive_err(
                            o,
                            NAME,
                            "Wrong argument count or unexpected line ending after 'directory'",
                        )
                    })?;
                    let dir = resolve(cx.root.unwrap_or(cx.dir), dir);
                    crate::plugin::root::may_be_missing(&dir, o, NAME, "directory")?;
                    match rest {
                        [] => {}
                        [pattern, template] => {
                            if pattern.len() > MAX_REGEXP {
                                return Err(directive_err(o, NAME, "regexp too large"));
                            }
                            let re = Regex::new(pattern)
                                .map_err(|e| directive_err(o, NAME, format!("{pattern}: {e}")))?;
                            if re.captures_len() < 2 {
                                return Err(directive_err(
                                    o,
                                    NAME,
                                    "Need at least one sub expression",
                                ));
                            }
                            config.pattern = re;
                            config.template = template.clone();
                        }
                        _ => {
                            return Err(directive_err(
                                o,
                                NAME,
                                "Wrong argument count or unexpected line ending after 'directory'",
                            ));
                        }
                    }
                    directory = Some(dir);
                }
                "reload" => {
                    let arg = o.args.first().ok_or_else(|| {
                        directive_err(o, NAME, "reload duration value is expected")
                    })?;
                    config.reload = parse_duration(arg)
                        .map_err(|m| directive_err(o, NAME, format!("reload: {m}")))?;
                }
                // Accepted and ignored, as CoreDNS does ("remove soon").
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
        // Without a directory CoreDNS walks the empty path, which finds nothing.
        config.directory = directory.unwrap_or_default();
        Ok(config)
    }

    fn build(&self, b: &mut Building<'_>) -> Result<(), SetupError> {
        let table = Arc::new(RecordTable::new(Loaded::default()));
        let scan = Arc::new(Scan {
            directory: self.directory.clone(),
            pattern: self.pattern.clone(),
            template: self.template.clone(),
        });
        table.publish(scan.walk(&Loaded::default()));
        if !self.reload.is_zero() {
            let (table, reload) = (Arc::clone(&table), self.reload);
            b.background.push(Box::pin(async move {
                let mut ticker = tokio::time::interval(reload);
                ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                ticker.tick().await;
                loop {
                    ticker.tick().await;
                    // Reading and building zones is work for a blocking thread.
                    let (scan, table) = (Arc::clone(&scan), Arc::clone(&table));
                    let _ = tokio::task::spawn_blocking(move || {
                        let now = table.load();
                        let next = scan.walk(&now);
                        if next.changed_from(&now) {
                            table.publish(next);
                        }
                    })
                    .await;
                }
            }));
        }
        b.chain.push(Plugin::Auto(Auto {
            zones: Zones::new(&self.zones),
            table,
            fallthrough: Fallthrough::default(),
            last: false,
        }));
        Ok(())
    }
}

/// The zones found in the directory: by origin, with the file each came from.
#[derive(Debug, Default)]
pub struct Loaded {
    zones: Zones,
    found: Vec<(PathBuf, Arc<Zone>)>,
}

impl Loaded {
    fn changed_from(&self, before: &Loaded) -> bool {
        self.zones != before.zones
            || self
                .found
                .iter()
                .zip(&before.found)
                .any(|((p, z), (q, y))| p != q || !Arc::ptr_eq(z, y))
    }
}

/// How the directory is read.
#[derive(Debug)]
struct Scan {
    directory: PathBuf,
    pattern: Regex,
    template: String,
}

impl Scan {
    /// The origin a file named `file` holds, if its name matches.
    fn origin(&self, file: &str) -> Option<LowerName> {
        let caps = self.pattern.captures(file)?;
        // As CoreDNS: each `{` of the template is a `${` of Go's (and the regex crate's)
        // expansion, so `{1}`, `{name}` and `$1` all name groups.
        let mut origin = String::new();
        caps.expand(&self.template.replace('{', "${"), &mut origin);
        let mut name = Name::from_ascii(&origin).ok()?;
        name.set_fqdn(true);
        Some(LowerName::new(&name))
    }

    /// The zones the directory holds now: each matching file's, keeping `before`'s zone where
    /// its file is the same and its serial has not changed. A file that does not read is left
    /// out (and logged), as CoreDNS leaves it.
    fn walk(&self, before: &Loaded) -> Loaded {
        let mut files = Vec::new();
        collect(&self.directory, &mut files, 0);
        files.sort();
        let mut by_origin: HashMap<LowerName, (PathBuf, Arc<Zone>)> = HashMap::new();
        let mut order = Vec::new();
        for path in files {
            let Some(origin) = path
                .file_name()
                .and_then(|f| f.to_str())
                .and_then(|f| self.origin(f))
            else {
                continue;
            };
            if let Some((previous, _)) = by_origin.get(&origin) {
                tracing::warn!(zone = %origin, using = %previous.display(), ignored = %path.display(), "several zone files match one origin");
                continue;
            }
            let served = before
                .zones
                .names()
                .iter()
                .position(|o| *o == origin)
                .map(|i| &before.found[i])
                .filter(|(p, _)| *p == path);
            let zone = match load(&path, &origin) {
                Ok(zone) => zone,
                // A file that no longer reads keeps the zone it gave, as `file` keeps it.
                Err(error) => {
                    tracing::warn!(zone = %origin, %error, "zone file not loaded");
                    if let Some((path, zone)) = served {
                        order.push(origin.clone());
                        by_origin.insert(origin, (path.clone(), Arc::clone(zone)));
                    }
                    continue;
                }
            };
            let kept = served
                .filter(|(_, z)| z.serial == zone.serial)
                .map(|(_, z)| Arc::clone(z));
            let zone = kept.unwrap_or_else(|| {
                tracing::info!(zone = %origin, file = %path.display(), serial = zone.serial, "loaded zone");
                Arc::new(zone)
            });
            order.push(origin.clone());
            by_origin.insert(origin, (path, zone));
        }
        let found = order.iter().filter_map(|o| by_origin.remove(o)).collect();
        Loaded {
            zones: Zones::new(&order),
            found,
        }
    }
}

/// Every file under `dir` (symbolic links followed, as a ConfigMap's mount needs), a few
/// directories deep.
fn collect(dir: &Path, out: &mut Vec<PathBuf>, depth: usize) {
    const MAX_DEPTH: usize = 8;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            // `..data`-style directories of a ConfigMap mount hold the same files again.
            let hidden = path
                .file_name()
                .and_then(|f| f.to_str())
                .is_some_and(|f| f.starts_with(".."));
            if depth < MAX_DEPTH && !hidden {
                collect(&path, out, depth + 1);
            }
        } else if meta.is_file() {
            out.push(path);
        }
    }
}

#[derive(Debug)]
pub struct Auto {
    /// The zones it may answer for (the directive's, or the block's).
    zones: Zones,
    table: Arc<RecordTable<Loaded>>,
    fallthrough: Fallthrough,
    /// The block's last plugin: a name in no loaded zone is REFUSED (see [`super::File`]).
    pub last: bool,
}

/// As CoreDNS's auto plugin: a name outside its zones, or in none of the zones the directory
/// holds, passes on; the zone that holds it answers as `file` does.
impl Phases for Auto {
    const ANSWERS: bool = true;

    fn serve(&self, req: &Request) -> Outcome {
        if !self.zones.holds(&req.lower) {
            return Outcome::Next;
        }
        let loaded = self.table.guard();
        let Some(i) = loaded.zones.longest_index(&req.lower) else {
            return if self.last {
                super::refused()
            } else {
                Outcome::Next
            };
        };
        serve_zone(Some(&loaded.found[i].1), req, &self.fallthrough)
    }

    fn serve_fast(&self, query: &crate::wire::LightQuery, out: &mut Vec<u8>) -> Fast {
        if !self.zones.holds_wire(query.key()) {
            return Fast::Next;
        }
        let loaded = self.table.guard();
        let Some(i) = loaded.zones.longest_index_wire(query.key()) else {
            return Fast::Next;
        };
        serve_zone_fast(Some(&loaded.found[i].1), query, &self.fallthrough, out)
    }
}

#[cfg(test)]
mod tests {
    use crate::plugin::testing::Served;

    /// Writes `origin`'s zone (its `www` at `address`) as `file` in `dir`.
    fn put(dir: &std::path::Path, file: &str, origin: &str, serial: u32, address: &str) {
        std::fs::write(dir.join(file), zone(origin, serial, address)).unwrap();
    }

    fn zone(origin: &str, serial: u32, address: &str) -> String {
        format!(
            "$ORIGIN {origin}.\n@ 300 IN SOA ns h {serial} 1 1 1 300\n@ 300 IN NS ns\nwww 300 IN A {address}\n"
        )
    }

    #[test]
    fn serves_each_matching_file_as_its_zone() {
        let dir = tempfile::tempdir().unwrap();
        put(dir.path(), "db.example.org", "example.org", 1, "192.0.2.1");
        std::fs::create_dir(dir.path().join("more")).unwrap();
        put(
            dir.path(),
            "more/db.example.net",
            "example.net",
            1,
            "192.0.2.2",
        );
        // Does not read: left out, the rest served.
        std::fs::write(
            dir.path().join("db.broken.org"),
            "$ORIGIN broken.org.\nwww A 1\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not a zone").unwrap();
        let s = Served::new(&format!(
            ".:0 {{\n auto example.org example.net broken.org {{\n  directory {}\n }}\n}}\n",
            dir.path().display()
        ));
        s.expect(
            "www.example.org. A",
            ";; NOERROR aa rd
            www.example.org. 300 IN A 192.0.2.1
            ;; authority
            example.org. 300 IN NS ns.example.org.",
        );
        assert!(s.ask("www.example.net. A").contains("192.0.2.2"));
        assert!(s.fast("www.example.net. A"));
        // Nothing after it in the chain, as CoreDNS answers then: a name in its zones but in
        // no zone it loaded is REFUSED; one outside its zones is passed on, to nothing: SERVFAIL.
        assert!(s.ask("www.broken.org. A").starts_with(";; REFUSED"));
        assert!(s.ask("www.example.com. A").starts_with(";; SERVFAIL"));
    }

    #[test]
    fn a_pattern_and_template_make_the_origin() {
        let dir = tempfile::tempdir().unwrap();
        put(
            dir.path(),
            "example.org.zone",
            "example.org",
            1,
            "192.0.2.9",
        );
        put(
            dir.path(),
            "example.org.zone.bak",
            "example.org",
            1,
            "192.0.2.8",
        );
        let s = Served::new(&format!(
            "example.org:0 {{\n auto {{\n  directory {} ^(.*)\\.zone$ {{1}}\n }}\n}}\n",
            dir.path().display()
        ));
        assert!(s.ask("www.example.org. A").contains("192.0.2.9"));
    }

    #[test]
    fn a_scan_keeps_unchanged_zones_and_sees_files_come_and_go() {
        use super::{Loaded, Scan};
        use std::sync::Arc;
        let dir = tempfile::tempdir().unwrap();
        let scan = Scan {
            directory: dir.path().to_path_buf(),
            pattern: regex::Regex::new(r"db\.(.*)").unwrap(),
            template: "{1}".into(),
        };
        put(dir.path(), "db.example.org", "example.org", 1, "192.0.2.1");
        let first = scan.walk(&Loaded::default());
        assert_eq!(first.found.len(), 1);
        // Nothing changed: the same zone, nothing to publish.
        let again = scan.walk(&first);
        assert!(Arc::ptr_eq(&again.found[0].1, &first.found[0].1));
        assert!(!again.changed_from(&first));
        // A new file, and a new serial: both taken.
        put(dir.path(), "db.example.net", "example.net", 1, "192.0.2.2");
        put(dir.path(), "db.example.org", "example.org", 2, "192.0.2.3");
        let next = scan.walk(&again);
        assert!(next.changed_from(&again));
        let serials: Vec<u32> = next.found.iter().map(|(_, z)| z.serial).collect();
        assert_eq!(next.zones.names().len(), 2);
        assert!(serials.contains(&2));
        // A file removed: its zone is gone.
        std::fs::remove_file(dir.path().join("db.example.net")).unwrap();
        let last = scan.walk(&next);
        assert_eq!(last.zones.names().len(), 1);
        assert!(last.changed_from(&next));
        // A file that no longer reads keeps its zone.
        std::fs::write(
            dir.path().join("db.example.org"),
            "$ORIGIN example.org.\nwww A 1\n",
        )
        .unwrap();
        let kept = scan.walk(&last);
        assert_eq!(kept.zones.names().len(), 1);
        assert!(!kept.changed_from(&last));
    }

    #[test]
    fn templates_name_groups_as_go_expands_them() {
        use super::Scan;
        let scan = |pattern: &str, template: &str| Scan {
            directory: Default::default(),
            pattern: regex::Regex::new(pattern).unwrap(),
            template: template.into(),
        };
        let origin = |s: &Scan, file: &str| s.origin(file).map(|o| o.to_string());
        assert_eq!(
            origin(&scan(r"db\.(.*)", "{1}"), "db.example.org").as_deref(),
            Some("example.org.")
        );
        assert_eq!(
            origin(&scan(r"^(?P<zone>.*)\.zone$", "{zone}"), "example.net.zone").as_deref(),
            Some("example.net.")
        );
        assert_eq!(
            origin(&scan(r"^(\w+)\.(\w+)$", "$2.{1}.test"), "a.b").as_deref(),
            Some("b.a.test.")
        );
        assert_eq!(origin(&scan(r"db\.(.*)", "{1}"), "notes.txt"), None);
    }

    #[test]
    fn auto_options_as_coredns_reads_them() {
        use super::AutoConfig;
        use crate::plugin::testing::settings;
        let c: AutoConfig =
            settings("auto example.org {\n directory /tmp www\\.db\\.(.*) {1}\n reload 45s\n}")
                .unwrap();
        assert_eq!(c.reload, std::time::Duration::from_secs(45));
        assert_eq!(c.template, "{1}");
        for (lines, needle) in [
            ("auto {\n directory /tmp ( {1}\n}", "regex"),
            (
                "auto {\n directory /tmp db {1}\n}",
                "Need at least one sub expression",
            ),
            (
                "auto {\n directory /tmp db\\.(.*)\n}",
                "Wrong argument count",
            ),
            ("auto {\n reload\n}", "reload duration value is expected"),
            ("auto {\n fallthrough\n}", "unknown property 'fallthrough'"),
        ] {
            let e = settings::<AutoConfig>(lines).unwrap_err();
            assert!(e.contains(needle), "{lines}: {e}");
        }
    }
}
