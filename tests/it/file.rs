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
