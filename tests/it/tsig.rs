//! TSIG (RFC 8945): with no key configured, a query signed by any key is answered NOTAUTH with
//! an unsigned TSIG record carrying BADKEY (§5.2), never with data, as Knot DNS and NSD answer;
//! checked with dig and kdig signing their queries.

use std::process::Command;

use crate::harness::TestServer;

#[test]
fn a_query_signed_with_an_unknown_key_is_notauth_badkey_never_data() {
    let server = TestServer::start(".:0 {\n hosts {\n  192.0.2.1 www.example.org\n }\n}\n");
    let plain = server.dig(&["+short", "www.example.org", "A"]);
    assert_eq!(plain.trim(), "192.0.2.1");
    for args in [
        vec![
            "-y",
            "hmac-sha256:unknown-key:c2VjcmV0IGtleSBiYXNlNjQ=",
            "www.example.org",
            "A",
        ],
        vec![
            "+noedns",
            "-y",
            "hmac-sha512:other.key.:c2VjcmV0IGtleSBiYXNlNjQ=",
            "www.example.org",
            "A",
        ],
    ] {
        let out = server.dig(&args);
        assert!(out.contains("status: NOTAUTH"), "{args:?}: {out}");
        assert!(out.contains("BADKEY"), "{args:?}: {out}");
        assert!(!out.contains("192.0.2.1"), "{args:?}: {out}");
    }
    let out = Command::new("kdig")
        .arg(format!("@{}", server.addr.ip()))
        .args(["-p", &server.addr.port().to_string(), "+retry=0", "+time=3"])
        .args([
            "-y",
            "hmac-sha256:kdig-key:c2VjcmV0IGtleSBiYXNlNjQ=",
            "www.example.org",
            "A",
        ])
        .output()
        .expect("kdig runs (knot-dnsutils)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // kdig shows the TSIG error as the status.
    assert!(text.contains("status: BADKEY"), "{text}");
    assert!(text.contains("TSIG\thmac-sha256."), "{text}");
    assert!(!text.contains("192.0.2.1"), "{text}");
}
