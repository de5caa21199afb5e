//! The `chaos` directive on the wire, in OpenShift's layout (a `hostname.bind` block beside the
//! cluster's on the same port): dig's CH TXT queries get the host name and the version; the
//! cluster's block still answers class IN.

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use crate::harness::TestServer;

fn dig(server: &TestServer, args: &[&str]) -> String {
    server.dig(&[&["+noall", "+answer", "+comments"], args].concat())
}

/// The answer lines, whitespace collapsed.
fn answers(out: &str) -> Vec<String> {
    out.lines()
        .filter(|l| !l.is_empty() && !l.starts_with(';'))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

#[test]
fn dig_ch_txt_gets_the_host_name_and_version_beside_the_cluster_block() {
    let server = TestServer::start(
        "hostname.bind:0 version.bind:0 {
        chaos CoreDNS-001
    }
    .:0 {
        kubernetes cluster.local {
            manifests DATA/cluster.yaml
        }
    }",
    );
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string();
    for transport in ["+notcp", "+tcp"] {
        let out = dig(&server, &[transport, "hostname.bind", "CH", "TXT"]);
        assert_eq!(
            answers(&out),
            [format!("hostname.bind. 0 CH TXT \"{host}\"")],
            "{out}"
        );
        assert!(out.contains("status: NOERROR"), "{out}");
        let flags = out.lines().find(|l| l.contains("flags:")).expect("flags");
        assert!(!flags.contains(" aa"), "{flags}");
        let out = dig(&server, &[transport, "VERSION.bind", "CH", "TXT"]);
        assert_eq!(
            answers(&out),
            ["VERSION.bind. 0 CH TXT \"CoreDNS-001\""],
            "{out}"
        );
    }
    // A CH question chaos does not know is refused.
    let out = dig(&server, &["authors.bind", "CH", "TXT"]);
    assert!(out.contains("status: REFUSED"), "{out}");
    // Class IN in the chaos block: passed on, with nothing after it (CoreDNS's SERVFAIL).
    let out = dig(&server, &["hostname.bind", "IN", "TXT"]);
    assert!(out.contains("status: SERVFAIL"), "{out}");
    // The cluster's block answers class IN as before.
    let m = server.query("kubernetes.default.svc.cluster.local.", RecordType::A);
    assert_eq!(m.response_code(), ResponseCode::NoError);
    assert!(!m.answers().is_empty());
}
