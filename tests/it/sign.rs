//! `sign`: a zone file signed with a key made by `dnssec-keygen`, written where `file` serves
//! it; BIND's `dnssec-verify` checks the whole signed file (NSEC chain, every signature, the
//! delegation) and `delv` validates answers and an NXDOMAIN from the KSK alone.

use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::harness::TestServer;

const ZONE: &str = "$TTL 300\n$ORIGIN example.org.\n\
    @ IN SOA ns hostmaster 7 3600 600 86400 60\n\
    @ IN NS ns\n\
    @ IN MX 10 mail\n\
    ns IN A 192.0.2.53\n\
    mail IN A 192.0.2.25\n\
    www IN A 192.0.2.1\n\
    www IN AAAA 2001:db8::1\n\
    alias IN CNAME www\n\
    *.wild IN TXT \"wildcard\"\n\
    deep.ent IN TXT \"deep\"\n\
    sub IN NS ns.sub\n\
    ns.sub IN A 192.0.2.99\n";

#[test]
fn a_signed_zone_file_passes_dnssec_verify_and_its_answers_validate_with_delv() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("db.example.org"), ZONE).unwrap();
    let ksk = crate::harness::keygen(
        d,
        &[
            "-q",
            "-a",
            "ECDSAP256SHA256",
            "-f",
            "KSK",
            "-n",
            "ZONE",
            "example.org",
        ],
    );
    let anchor = crate::harness::static_key(&d.join(format!("{ksk}.key")));
    std::fs::write(
        d.join("anchors"),
        format!("trust-anchors {{\n example.org. static-key {anchor};\n}};\n"),
    )
    .unwrap();
    let before = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let server = TestServer::start(&format!(
        "example.org:0 {{\n root {}\n file db.example.org.signed {{\n  reload 1s\n }}\n \
         sign db.example.org {{\n  key file {ksk}\n  directory .\n }}\n}}\n",
        d.display()
    ));
    let signed = d.join("db.example.org.signed");
    // Signed at start; `file` finds it at its next reload.
    let deadline = Instant::now() + Duration::from_secs(20);
    let soa = loop {
        let out = server.dig(&["+dnssec", "+short", "example.org", "SOA"]);
        if signed.exists() && out.contains("\nSOA 13 2 300 ") {
            break out;
        }
        assert!(Instant::now() < deadline, "never served signed: {out}");
        std::thread::sleep(Duration::from_millis(200));
    };
    // The serial is the signing time.
    let serial: u64 = soa
        .lines()
        .find(|l| l.starts_with("ns.example.org."))
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{soa}"));
    assert!(
        serial >= before && serial <= before + 60,
        "{serial} vs {before}"
    );

    let verify = Command::new("dnssec-verify")
        // `-z`: the one key is a CSK (KSK flag, signs everything), as CoreDNS's `sign` wants.
        .args(["-z", "-o", "example.org"])
        .arg(&signed)
        .output()
        .expect("dnssec-verify runs (bind9-utils)");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
    assert!(verify.status.success(), "{report}");
    assert!(report.contains("Zone fully signed"), "{report}");

    for (name, qtype, want) in [
        (
            "www.example.org",
            "A",
            "www.example.org.\t300\tIN\tA\t192.0.2.1",
        ),
        ("www.example.org", "AAAA", "2001:db8::1"),
        ("alias.example.org", "A", "192.0.2.1"),
        ("example.org", "MX", "10 mail.example.org."),
        ("example.org", "DNSKEY", "IN\tDNSKEY\t257 3 13"),
        ("example.org", "CDS", "CDS"),
        ("x.wild.example.org", "TXT", "\"wildcard\""),
        ("deep.ent.example.org", "TXT", "\"deep\""),
        // Denials proven by the NSEC chain.
        ("nope.example.org", "A", "NXDOMAIN"),
        ("www.example.org", "TXT", "NXRRSET"),
        ("ent.example.org", "A", "NXRRSET"),
    ] {
        let out = crate::harness::delv(&server, d, "example.org", name, qtype);
        assert!(
            out.contains("fully validated"),
            "{name} {qtype}: {out}\n{}",
            std::fs::read_to_string(&signed).unwrap()
        );
        assert!(out.contains(want), "{name} {qtype}: {out}");
    }
}
