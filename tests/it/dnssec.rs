//! The `dnssec` plugin's answers validated by BIND's `delv` from the keys alone: a zone file
//! served unsigned and the cluster's names, signed on the fly with a key pair made by
//! `dnssec-keygen` (a KSK for the DNSKEY set, a ZSK for the rest), denials proven by black lies.

use crate::harness::TestServer;

#[test]
fn answers_signed_on_the_fly_are_fully_validated_by_delv() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("db.example.org"),
        "$TTL 300\n$ORIGIN example.org.\n\
         @ IN SOA ns hostmaster 1 3600 600 86400 60\n\
         @ IN NS ns\nns IN A 192.0.2.53\nwww IN A 192.0.2.1\nalias IN CNAME www\n\
         deep.ent IN TXT \"deep\"\n",
    )
    .unwrap();
    // One key pair for both zones (a key may sign any zone at or below its owner's: `.`).
    let zsk = crate::harness::keygen(d, &["-q", "-a", "ECDSAP256SHA256", "-n", "ZONE", "."]);
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
            ".",
        ],
    );
    let anchor = crate::harness::static_key(&d.join(format!("{ksk}.key")));
    std::fs::write(
        d.join("anchors"),
        format!(
            "trust-anchors {{\n example.org. static-key {anchor};\n \
             cluster.local. static-key {anchor};\n}};\n"
        ),
    )
    .unwrap();
    let server = TestServer::start(&format!(
        "example.org:0 cluster.local:0 {{\n dnssec {{\n  key file {zsk} {ksk}.private\n }}\n \
         kubernetes cluster.local {{\n  manifests DATA/cluster.yaml\n }}\n \
         file {} example.org\n root {}\n}}\n",
        d.join("db.example.org").display(),
        d.display()
    ));
    let delv =
        |name: &str, qtype: &str, root: &str| crate::harness::delv(&server, d, root, name, qtype);
    for (name, qtype, root, want) in [
        (
            "www.example.org",
            "A",
            "example.org",
            "www.example.org.\t300\tIN\tA\t192.0.2.1",
        ),
        (
            "alias.example.org",
            "A",
            "example.org",
            "www.example.org.\t300\tIN\tA\t192.0.2.1",
        ),
        (
            "example.org",
            "DNSKEY",
            "example.org",
            "IN\tDNSKEY\t257 3 13",
        ),
        ("deep.ent.example.org", "TXT", "example.org", "\"deep\""),
        // Black lies: NXDOMAIN and NODATA alike are proven "no such type here".
        ("nope.example.org", "A", "example.org", "NXRRSET"),
        ("www.example.org", "TXT", "example.org", "NXRRSET"),
        ("ent.example.org", "A", "example.org", "NXRRSET"),
        // The cluster's names.
        (
            "web.prod.svc.cluster.local",
            "A",
            "cluster.local",
            "IN\tA\t10.96.12.34",
        ),
        (
            "nope.prod.svc.cluster.local",
            "A",
            "cluster.local",
            "NXRRSET",
        ),
    ] {
        let out = delv(name, qtype, root);
        assert!(out.contains("fully validated"), "{name} {qtype}: {out}");
        assert!(out.contains(want), "{name} {qtype}: {out}");
    }
    // Without DO nothing is signed, and NXDOMAIN stays NXDOMAIN.
    let plain = server.dig(&["nope.example.org", "A"]);
    assert!(
        plain.contains("status: NXDOMAIN") && !plain.contains("RRSIG"),
        "{plain}"
    );
    let signed = server.dig(&["+dnssec", "nope.example.org", "A"]);
    assert!(
        signed.contains("status: NOERROR") && signed.contains("NSEC"),
        "{signed}"
    );
}
