//! The `file` directive: a zone file served as CoreDNS serves it, asked with dig; reloaded
//! when its SOA serial changes (and only then); a broken file stops the start with its line.

use std::time::{Duration, Instant};

use crate::cli::{assert_unbound, run};
use crate::harness::{TestServer, free_port};

fn zone(serial: u32, address: &str) -> String {
    format!(
        "$ORIGIN example.org.\n\
         @ 3600 IN SOA ns1 hostmaster ( {serial} 7200 3600 1209600 300 )\n\
         \x20 3600 IN NS ns1\n\
         ns1 3600 IN A 192.0.2.53\n\
         www 300 IN A {address}\n\
         alias 300 IN CNAME www\n\
         sub 3600 IN NS ns.sub\n\
         ns.sub 3600 IN A 192.0.2.77\n"
    )
}

#[test]
fn a_zone_file_is_served_to_dig_and_reloaded_when_its_serial_changes() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db.example.org");
    std::fs::write(&db, zone(1, "192.0.2.1")).unwrap();
    let server = TestServer::start(&format!(
        "example.org:0 {{\n file {} {{\n  reload 200ms\n }}\n}}\n",
        db.display()
    ));
    let short = |args: &[&str]| server.dig(args).trim().to_string();

    assert_eq!(
        short(&["+short", "alias.example.org", "A"]),
        "www.example.org.\n192.0.2.1"
    );
    let full = server.dig(&["+norec", "www.example.org", "A"]);
    assert!(full.contains("flags: qr aa;"), "{full}");
    assert!(full.contains("status: NOERROR"), "{full}");
    assert!(
        full.contains("example.org.\t\t3600\tIN\tNS\tns1.example.org."),
        "{full}"
    );
    let referral = server.dig(&["+norec", "host.sub.example.org", "A"]);
    assert!(referral.contains("flags: qr;"), "{referral}");
    assert!(
        referral.contains("AUTHORITY: 1, ADDITIONAL: 2"),
        "{referral}"
    );
    assert!(
        referral.contains("ns.sub.example.org.\t3600\tIN\tA\t192.0.2.77"),
        "{referral}"
    );
    let missing = server.dig(&["nope.example.org", "A"]);
    assert!(missing.contains("status: NXDOMAIN"), "{missing}");
    assert!(
        missing.contains("IN\tSOA\tns1.example.org. hostmaster.example.org. 1 7200"),
        "{missing}"
    );

    // A change without a new serial is not served (CoreDNS reloads on the serial).
    std::fs::write(&db, zone(1, "192.0.2.2")).unwrap();
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(short(&["+short", "www.example.org", "A"]), "192.0.2.1");
    // A new serial is.
    std::fs::write(&db, zone(2, "192.0.2.3")).unwrap();
    let start = Instant::now();
    while short(&["+short", "www.example.org", "A"]) != "192.0.2.3" {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the new serial was never served"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // A broken file keeps the zone as it was.
    std::fs::write(&db, "$ORIGIN example.org.\n@ SOA broken\n").unwrap();
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(short(&["+short", "www.example.org", "A"]), "192.0.2.3");
}

#[test]
fn a_broken_zone_file_stops_the_start_with_its_line_and_binds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    std::fs::write(
        dir.path().join("db.example.org"),
        "$ORIGIN example.org.\n@ 3600 IN SOA ns1 h 1 2 3 4 5\nwww 300 IN A 192.0.2.999\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("Corefile"),
        format!(
            "example.org:{port} {{\n root {}\n file db.example.org\n}}\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let out = run(dir.path(), &["-conf", "Corefile"]);
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("db.example.org:3: A record of www.example.org."),
        "{}",
        out.stderr
    );
    assert_unbound(port);
}

/// `cmd args` in `dir`, which must succeed: its standard output.
fn sh(dir: &std::path::Path, cmd: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(cmd)
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd} runs (bind9-utils, bind9-dnsutils): {e}"));
    assert!(out.status.success(), "{cmd} {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn a_zone_signed_by_dnssec_signzone_is_fully_validated_by_delv() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("db.signed.test"),
        "$TTL 300\n$ORIGIN signed.test.\n\
         @ IN SOA ns hostmaster 1 3600 600 86400 300\n\
         @ IN NS ns\n\
         ns IN A 192.0.2.53\n\
         www IN A 192.0.2.1\n\
         alias IN CNAME www\n\
         *.wild IN TXT \"wild\"\n\
         deep.ent IN TXT \"deep\"\n",
    )
    .unwrap();
    let key = sh(
        d,
        "dnssec-keygen",
        &["-q", "-a", "ECDSAP256SHA256", "-f", "KSK", "signed.test"],
    );
    let key = key.trim();
    let mut zone = std::fs::read_to_string(d.join("db.signed.test")).unwrap();
    zone.push_str(&format!("$INCLUDE {key}.key\n"));
    std::fs::write(d.join("db.signed.test"), zone).unwrap();
    sh(
        d,
        "dnssec-signzone",
        &[
            "-z",
            "-q",
            "-o",
            "signed.test",
            "-f",
            "db.signed",
            "db.signed.test",
            key,
        ],
    );
    // The key as delv's trust anchor.
    let anchor = crate::harness::static_key(&d.join(format!("{key}.key")));
    std::fs::write(
        d.join("anchors"),
        format!("trust-anchors {{\n signed.test. static-key {anchor};\n}};\n"),
    )
    .unwrap();
    let server = TestServer::start(&format!(
        "signed.test:0 {{\n file {}\n}}\n",
        d.join("db.signed").display()
    ));
    let delv =
        |name: &str, qtype: &str| crate::harness::delv(&server, d, "signed.test", name, qtype);
    for (name, qtype, want) in [
        (
            "www.signed.test",
            "A",
            "www.signed.test.\t300\tIN\tA\t192.0.2.1",
        ),
        (
            "alias.signed.test",
            "A",
            "www.signed.test.\t300\tIN\tA\t192.0.2.1",
        ),
        (
            "signed.test",
            "SOA",
            "IN\tSOA\tns.signed.test. hostmaster.signed.test. 1",
        ),
        (
            "x.wild.signed.test",
            "TXT",
            "x.wild.signed.test.\t300\tIN\tTXT\t\"wild\"",
        ),
        // Denials: the NSECs prove them.
        ("nope.signed.test", "A", "NXDOMAIN"),
        ("www.signed.test", "TXT", "NXRRSET"),
        ("ent.signed.test", "A", "NXRRSET"),
        ("ent.signed.test", "DS", "NXRRSET"),
        (
            "deep.ent.signed.test",
            "TXT",
            "deep.ent.signed.test.\t300\tIN\tTXT\t\"deep\"",
        ),
        ("nope.wild.signed.test", "A", "NXRRSET"),
    ] {
        let out = delv(name, qtype);
        assert!(out.contains("fully validated"), "{name} {qtype}: {out}");
        assert!(out.contains(want), "{name} {qtype}: {out}");
    }
}

/// `knotd` as a primary for `example.org` (transfers allowed from anywhere), its zone file
/// rewritten and reloaded (SIGHUP) on demand.
struct Primary {
    addr: std::net::SocketAddr,
    zone: std::path::PathBuf,
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl Primary {
    fn start(zone: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let d = dir.path().display();
        std::fs::create_dir(dir.path().join("db")).unwrap();
        let path = dir.path().join("example.org.zone");
        std::fs::write(&path, zone).unwrap();
        let conf = format!(
            "server:\n    rundir: \"{d}\"\n    listen: 127.0.0.1@{port}\n\
             database:\n    storage: \"{d}/db\"\n\
             log:\n  - target: stderr\n    any: warning\n\
             acl:\n  - id: anyone\n    address: 127.0.0.0/8\n    action: transfer\n\
             template:\n  - id: default\n    storage: \"{d}\"\n    file: \"%s.zone\"\n    acl: anyone\n\
             zone:\n  - domain: example.org\n"
        );
        let conf_path = dir.path().join("knot.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let knotd = ["/usr/sbin/knotd", "/usr/bin/knotd"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .unwrap_or("knotd");
        let child = std::process::Command::new(knotd)
            .arg("-c")
            .arg(&conf_path)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("knotd runs (knot)");
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let probe =
            crate::harness::query_bytes("example.org.", hickory_proto::rr::RecordType::SOA, None);
        let start = Instant::now();
        while crate::harness::udp_wait(addr, &probe, Duration::from_millis(200)).is_none() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "knotd did not start"
            );
        }
        Self {
            addr,
            zone: path,
            child,
            _dir: dir,
        }
    }

    fn replace(&self, zone: &str) {
        std::fs::write(&self.zone, zone).unwrap();
        let status = std::process::Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Primary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn primary_zone(serial: u32, address: &str) -> String {
    format!(
        "$ORIGIN example.org.\n$TTL 300\n\
         @ SOA ns hostmaster {serial} 1 1 600 60\n\
         @ NS ns\nns A 192.0.2.53\nwww A {address}\nalias CNAME www\n"
    )
}

#[test]
fn a_secondary_transfers_from_knot_and_follows_its_serial() {
    let primary = Primary::start(&primary_zone(1, "192.0.2.1"));
    let server = TestServer::start(&format!(
        "example.org:0 {{\n secondary {{\n  transfer from {}\n }}\n}}\n",
        primary.addr
    ));
    let short = |name: &str| server.dig(&["+short", name, "A"]).trim().to_string();
    let wait_for = |name: &str, want: &str| {
        let start = Instant::now();
        while short(name) != want {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "{name} never answered {want}: {}",
                server.dig(&[name, "A"])
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    wait_for("www.example.org", "192.0.2.1");
    assert_eq!(short("alias.example.org"), "www.example.org.\n192.0.2.1");
    let full = server.dig(&["+norec", "nope.example.org", "A"]);
    assert!(full.contains("status: NXDOMAIN"), "{full}");
    assert!(full.contains("flags: qr aa;"), "{full}");
    // A new serial at the primary: transferred again within a refresh (1 s, plus jitter).
    primary.replace(&primary_zone(2, "192.0.2.2"));
    wait_for("www.example.org", "192.0.2.2");
}
