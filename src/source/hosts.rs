//! The hosts source: `/etc/hosts`-format files and inline entries (CoreDNS's `hosts`).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use hickory_proto::rr::Name;
use tracing::warn;

use super::{Background, Source, manifests::ManifestError, watch_files};
use crate::corefile::host_name;

/// An address and the names listed for it.
pub type Entry = (IpAddr, Vec<Name>);

/// What a hosts file feeds: everything it lists now, in place of what it listed before.
pub trait HostsWriter: Send + 'static {
    fn replace(&mut self, entries: Vec<Entry>);
}

/// A hosts file as a source: read before anything is served, then again whenever it changes
/// (checked every `reload`; zero never). A missing or unreadable file lists nothing, with a
/// warning, as in CoreDNS: it never stops the start.
#[derive(Debug)]
pub struct HostsFile {
    pub path: PathBuf,
    pub reload: Duration,
}

impl<W: HostsWriter> Source<W> for HostsFile {
    fn load(&mut self, writer: &mut W) -> Result<bool, ManifestError> {
        writer.replace(read(&self.path));
        Ok(true)
    }

    fn run(self: Box<Self>, mut writer: W, _ready: Arc<AtomicBool>) -> Background {
        let Self { path, reload } = *self;
        Box::pin(watch_files(
            "hosts",
            vec![path.clone()],
            reload,
            move || {
                writer.replace(read(&path));
                Ok(())
            },
        ))
    }
}

fn read(path: &Path) -> Vec<Entry> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&text, &path.display().to_string()),
        Err(error) => {
            warn!(file = %path.display(), %error, "hosts file not read");
            Vec::new()
        }
    }
}

/// Parses hosts-file text: `IP NAME [ALIAS...]` per line, `#` comments. Lines that do not
/// parse are skipped with a warning naming `origin` and the line, as CoreDNS does.
pub fn parse(text: &str, origin: &str) -> Vec<Entry> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("");
        let mut fields = line.split_whitespace();
        let Some(addr) = fields.next() else { continue };
        // A zone index (`fe80::1%eth0`) is not part of the address DNS serves.
        let addr = addr.split('%').next().unwrap_or(addr);
        let Ok(ip) = addr.parse::<IpAddr>() else {
            warn!(
                file = origin,
                line = i + 1,
                "skipping a line that does not start with an address"
            );
            continue;
        };
        let names: Vec<Name> = fields.filter_map(|f| host_name(f).ok()).collect();
        if !names.is_empty() {
            out.push((ip, names));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records what the source feeds it.
    #[derive(Default)]
    struct Fed(Vec<Vec<Entry>>);

    impl HostsWriter for Fed {
        fn replace(&mut self, entries: Vec<Entry>) {
            self.0.push(entries);
        }
    }

    #[test]
    fn a_hosts_file_feeds_its_writer_whole_and_a_missing_one_feeds_nothing() {
        let dir = std::env::temp_dir().join(format!("clusterdns-hosts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("hosts");
        std::fs::write(&path, "10.0.0.1 a.example\n10.0.0.2 b.example\n").unwrap();
        let mut fed = Fed::default();
        let mut file = HostsFile {
            path: path.clone(),
            reload: Duration::ZERO,
        };
        assert!(
            Source::<Fed>::load(&mut file, &mut fed).unwrap(),
            "all of it at once"
        );
        assert_eq!(fed.0.len(), 1);
        assert_eq!(fed.0[0].len(), 2);
        std::fs::remove_file(&path).unwrap();
        let mut missing = HostsFile {
            path,
            reload: Duration::ZERO,
        };
        assert!(Source::<Fed>::load(&mut missing, &mut fed).unwrap());
        assert_eq!(
            fed.0[1],
            Vec::<Entry>::new(),
            "a missing file lists nothing"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn reads_addresses_names_and_aliases_and_skips_junk() {
        let entries = parse(
            "# comment\n127.0.0.1 localhost\n10.0.0.6  mirror.example.internal  Mirror # alias\nnot-an-ip foo\n\nfe80::1%eth0 link.local\n",
            "hosts",
        );
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[1].0, "10.0.0.6".parse::<IpAddr>().unwrap());
        let names: Vec<String> = entries[1].1.iter().map(|n| n.to_string()).collect();
        assert_eq!(names, vec!["mirror.example.internal.", "mirror."]);
        assert_eq!(entries[2].0, "fe80::1".parse::<IpAddr>().unwrap());
    }
}
