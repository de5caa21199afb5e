//! The `sign` directive: zone files signed with NSEC, as CoreDNS's `sign` plugin signs them.
//!
//! `sign DBFILE [ZONES...] { key file KEY...; directory DIR }`. Not a plugin of the chain: a
//! task beside the server that signs each zone of DBFILE with the keys (CSKs: KSK-flagged keys
//! that sign everything) into `DIR/db.ZONE.signed` (`/var/lib/coredns` by default), for `file`
//! or `auto` to serve. At start, and every five hours, the signed file's SOA signature is
//! checked; the zone is signed again when it is missing, when its inception is more than six
//! days ago (or in the future), or when it expires within seven days. Signatures are valid from
//! three hours (minus up to 18 hours of jitter) before signing until 32 days (plus up to five
//! days of jitter) after; the SOA serial becomes the signing time. The file is written beside
//! its final name and renamed into place, so `file` never reads half of it.

mod zone;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hickory_proto::rr::Name;

use super::dnssec::Key;
use super::setup::{Building, Context, Setup, SetupError};
use crate::corefile::{
    ConfigError, Directive, arg_count_err, directive_err, plugin_zones, resolve,
};
use crate::plugin::file::text;

pub use zone::{Signed, Validity, master_file, resign_reason, sign, signature_time};

const NAME: &str = "sign";
const HOUR: u32 = 3600;
const DAY: u32 = 24 * HOUR;
/// How often the signed files are checked.
const REFRESH: Duration = Duration::from_secs(5 * 3600);
const DEFAULT_DIRECTORY: &str = "/var/lib/coredns";

/// The `sign` lines of a block.
#[derive(Debug, Clone)]
pub struct SignConfig {
    pub signers: Vec<Arc<Signer>>,
}

/// One zone of one `sign` line.
#[derive(Debug)]
pub struct Signer {
    pub dbfile: PathBuf,
    pub origin: Name,
    pub keys: Vec<Arc<Key>>,
    /// Where the signed file goes: `DIRECTORY/db.ZONE.signed`.
    pub signed: PathBuf,
    /// Drawn once per zone, as CoreDNS draws them: up to 18 hours taken off the inception and
    /// up to five days added to the expiration.
    jitter_inception: u32,
    jitter_expiration: u32,
}

impl Setup for SignConfig {
    fn parse(d: &Directive, cx: &Context<'_>) -> Result<Self, ConfigError> {
        let Some((dbfile, zone_args)) = d.args.split_first() else {
            return Err(arg_count_err(d, NAME));
        };
        let base = cx.root.unwrap_or(cx.dir);
        let dbfile = resolve(base, dbfile);
        let zones = plugin_zones(d, NAME, zone_args, cx.zones)?;
        let mut keys = Vec::new();
        let mut directory = PathBuf::from(DEFAULT_DIRECTORY);
        for o in &d.block {
            match o.name.as_str() {
                "key" => keys.extend(read_keys(o, base)?),
                "directory" => {
                    let [dir] = o.args.as_slice() else {
                        return Err(directive_err(
                            o,
                            NAME,
                            "can only be one argument after \"directory\"",
                        ));
                    };
                    directory = resolve(base, dir);
                }
                other => {
                    return Err(directive_err(
                        o,
                        NAME,
                        format!("unknown property '{other}'"),
                    ));
                }
            }
        }
        if keys.is_empty() {
            tracing::warn!(file = %dbfile.display(), "sign: no keys: the zone gets NSEC records but no signatures");
        }
        let signers = zones
            .into_iter()
            .map(|zone| {
                let origin = Name::from(zone);
                Arc::new(Signer {
                    signed: directory.join(format!("db.{origin}signed")),
                    dbfile: dbfile.clone(),
                    origin,
                    keys: keys.clone(),
                    jitter_inception: rand::random_range(0..18 * HOUR),
                    jitter_expiration: rand::random_range(0..5 * DAY),
                })
            })
            .collect();
        Ok(Self { signers })
    }

    fn merge(&mut self, later: Self) -> bool {
        self.signers.extend(later.signers);
        true
    }

    fn build(&self, b: &mut Building<'_>) -> Result<(), SetupError> {
        let signers = self.signers.clone();
        b.background.push(Box::pin(async move {
            let mut ticker = tokio::time::interval(REFRESH);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                for signer in &signers {
                    let signer = Arc::clone(signer);
                    // Reading, signing and writing a zone is work for a blocking thread.
                    let _ = tokio::task::spawn_blocking(move || signer.refresh()).await;
                }
            }
        }));
        Ok(())
    }
}

/// `key file KEY...`: each key's `.key` and `.private` files (named with either ending, or
/// none). CoreDNS refuses `key directory`, and takes any other kind as no keys at all.
fn read_keys(o: &Directive, base: &Path) -> Result<Vec<Arc<Key>>, ConfigError> {
    let Some((kind, files)) = o.args.split_first() else {
        return Err(arg_count_err(o, NAME));
    };
    match kind.as_str() {
        "file" if files.is_empty() => Err(arg_count_err(o, NAME)),
        "file" => files
            .iter()
            .map(|f| {
                let stem = f
                    .strip_suffix(".key")
                    .or_else(|| f.strip_suffix(".private"))
                    .unwrap_or(f);
                let key = Key::read(&resolve(base, stem)).map_err(|e| directive_err(o, NAME, e))?;
                if !key.is_ksk() {
                    return Err(directive_err(
                        o,
                        NAME,
                        format!("DNSKEY in {f:?} is not a CSK/KSK (flags 257)"),
                    ));
                }
                Ok(Arc::new(key))
            })
            .collect(),
        "directory" => Err(directive_err(
            o,
            NAME,
            "directory: not implemented: name each key with `key file`",
        )),
        other => {
            tracing::warn!("sign: key {other:?} is neither file nor directory: no keys read");
            Ok(Vec::new())
        }
    }
}

fn unix_now() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as u32)
}

impl Signer {
    /// Signs the zone again when its signed file says it is time; logs what it did.
    pub fn refresh(&self) {
        let now = unix_now();
        let why = match text::read(&self.signed, &self.origin) {
            Ok(records) => resign_reason(&records, now),
            Err(e) => Some(e.message),
        };
        let Some(why) = why else {
            tracing::info!(zone = %self.origin, file = %self.signed.display(), "sign: signatures are valid, not signing");
            return;
        };
        tracing::info!(zone = %self.origin, "sign: signing because {why}");
        let started = std::time::Instant::now();
        match self.sign_and_write(now) {
            Ok(serial) => tracing::info!(
                zone = %self.origin,
                file = %self.signed.display(),
                keys = ?self.keys.iter().map(|k| k.tag).collect::<Vec<_>>(),
                serial,
                elapsed = ?started.elapsed(),
                "sign: signed the zone"
            ),
            Err(error) => {
                tracing::warn!(zone = %self.origin, file = %self.dbfile.display(), %error, "sign: not signed; trying again in five hours")
            }
        }
    }

    /// Signs the zone at `now` and puts the file in place; the new SOA serial.
    pub fn sign_and_write(&self, now: u32) -> Result<u32, String> {
        let records = text::read(&self.dbfile, &self.origin).map_err(|e| e.to_string())?;
        let when = Validity {
            now,
            inception: now
                .wrapping_sub(3 * HOUR)
                .wrapping_sub(self.jitter_inception),
            expiration: now.wrapping_add(32 * DAY + self.jitter_expiration),
        };
        let signed = sign(records, &self.origin, &self.keys, when)?;
        if signed.outside > 0 {
            tracing::warn!(zone = %self.origin, records = signed.outside, "sign: records outside the zone are left out");
        }
        let text = master_file(&signed.records);
        let dir = self.signed.parent().unwrap_or(Path::new("."));
        let partial = dir.join(format!(
            ".{}.{}",
            self.signed
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            std::process::id()
        ));
        std::fs::write(&partial, text).map_err(|e| format!("{}: {e}", partial.display()))?;
        std::fs::rename(&partial, &self.signed).map_err(|e| {
            let _ = std::fs::remove_file(&partial);
            format!("moving the signed zone to {}: {e}", self.signed.display())
        })?;
        Ok(signed.serial)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::testing::settings;

    const KEYS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/dnssec");

    fn sign_lines(lines: &str) -> Result<SignConfig, String> {
        settings::<SignConfig>(&lines.replace("KEYS", KEYS))
    }

    #[test]
    fn lines_read_as_coredns_reads_them() {
        let c = sign_lines(
            "sign db.example.org example.org example.net {\n key file KEYS/Kexample.org.+013+47078.key\n directory /srv/signed\n}",
        )
        .unwrap();
        let zones: Vec<String> = c.signers.iter().map(|s| s.origin.to_string()).collect();
        assert_eq!(zones, ["example.org.", "example.net."]);
        assert_eq!(
            c.signers[1].signed,
            Path::new("/srv/signed/db.example.net.signed")
        );
        assert_eq!(c.signers[0].dbfile, Path::new("./db.example.org"));
        assert_eq!(c.signers[0].keys[0].tag, 47078);
        // The block's zones when the line names none; the default directory; `root` for
        // relative paths; several lines add up.
        let c = sign_lines(
            "root /zones\nsign db.a {\n key file KEYS/Kexample.org.+013+47078.private\n}\nsign /abs/db.b example.com",
        )
        .unwrap();
        assert_eq!(c.signers.len(), 2);
        assert_eq!(c.signers[0].origin.to_string(), ".");
        assert_eq!(
            c.signers[0].signed,
            Path::new("/var/lib/coredns/db..signed")
        );
        assert_eq!(c.signers[0].dbfile, Path::new("/zones/db.a"));
        assert_eq!(c.signers[1].dbfile, Path::new("/abs/db.b"));
        assert!(c.signers[1].keys.is_empty());
    }

    #[test]
    fn bad_lines_are_refused_with_coredns_reasons() {
        for (lines, want) in [
            ("sign", "Wrong argument count"),
            (
                "sign db {\n directory a b\n}",
                "can only be one argument after \"directory\"",
            ),
            (
                "sign db {\n directory\n}",
                "can only be one argument after \"directory\"",
            ),
            ("sign db {\n nope\n}", "unknown property 'nope'"),
            ("sign db {\n key\n}", "Wrong argument count"),
            ("sign db {\n key file\n}", "Wrong argument count"),
            (
                "sign db {\n key directory KEYS\n}",
                "directory: not implemented",
            ),
            // A zone-signing key cannot be a CSK.
            (
                "sign db {\n key file KEYS/Kexample.org.+013+25999\n}",
                "is not a CSK/KSK",
            ),
            ("sign db {\n key file KEYS/Knope\n}", "Knope.key"),
        ] {
            let err = sign_lines(lines).expect_err(lines);
            assert!(err.contains(want), "{lines}: {err}");
        }
    }

    #[test]
    fn a_zone_is_signed_into_its_file_and_left_alone_while_its_signatures_are_good() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(
            d.join("db.example.org"),
            "$TTL 300\n@ IN SOA ns hostmaster 1 3600 600 86400 60\n@ IN NS ns\nns IN A 192.0.2.53\n",
        )
        .unwrap();
        let c = sign_lines(&format!(
            "sign {}/db.example.org example.org {{\n key file KEYS/Kexample.org.+013+47078\n directory {}\n}}",
            d.display(),
            d.display()
        ))
        .unwrap();
        let signer = &c.signers[0];
        signer.refresh();
        let first = std::fs::read_to_string(&signer.signed).expect("signed at the first check");
        assert!(first.contains("\tRRSIG\tSOA 13 2 300 "), "{first}");
        // Nothing but the signed file is left in the directory.
        let mut names: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["db.example.org", "db.example.org.signed"]);
        // Good signatures: the next check leaves the file as it is (ECDSA signatures differ
        // every time, so a second signing would show).
        signer.refresh();
        assert_eq!(std::fs::read_to_string(&signer.signed).unwrap(), first);
        // Without the signed file it is signed again; a zone file that does not read then
        // writes nothing, not even a partial file.
        std::fs::remove_file(&signer.signed).unwrap();
        std::fs::write(d.join("db.example.org"), "@ IN SOA broken\n").unwrap();
        signer.refresh();
        let left: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(left, ["db.example.org"]);
    }
}
