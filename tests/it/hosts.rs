//! The `hosts` directive: static names with PTRs, CoreDNS's NODATA and SERVFAIL without an SOA,
//! and a file re-read when it changes.

use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use crate::harness::TestServer;

fn answers(server: &TestServer, name: &str, qtype: RecordType) -> Vec<String> {
    let mut v: Vec<String> = server
        .query(name, qtype)
        .answers()
        .iter()
        .map(|r| r.data().to_string())
        .collect();
    v.sort();
    v
}

#[test]
fn hosts_entries_answer_addresses_and_pointers() {
    let server = TestServer::start(
        "example.org:0 in-addr.arpa:0 {
        hosts example.org {
            10.0.0.5 registry.example.org reg.example.org
            fd00::5 registry.example.org
            ttl 60
        }
    }",
    );
    let m = server.query("REGISTRY.example.org.", RecordType::A);
    assert!(m.authoritative());
    assert_eq!(m.answers()[0].ttl(), 60);
    assert_eq!(m.answers()[0].name().to_string(), "REGISTRY.example.org.");
    assert_eq!(
        answers(&server, "registry.example.org.", RecordType::AAAA),
        vec!["fd00::5"]
    );
    assert_eq!(
        answers(&server, "reg.example.org.", RecordType::A),
        vec!["10.0.0.5"]
    );
    // Reverse names need not be in the plugin's zones, only in the server block's.
    assert_eq!(
        answers(&server, "5.0.0.10.in-addr.arpa.", RecordType::PTR),
        vec!["reg.example.org.", "registry.example.org."]
    );
    // A name with other records: NODATA; an unknown one: SERVFAIL, as CoreDNS (a hosts file
    // has no SOA to make an NXDOMAIN with); no SOA in either.
    let m = server.query("reg.example.org.", RecordType::AAAA);
    assert_eq!(m.response_code(), ResponseCode::NoError);
    assert!(m.answers().is_empty() && m.name_servers().is_empty());
    let m = server.query("nosuch.example.org.", RecordType::A);
    assert_eq!(m.response_code(), ResponseCode::ServFail);
    assert!(!m.authoritative());
    assert!(m.name_servers().is_empty());
}

#[test]
fn a_hosts_file_is_served_and_re_read_when_it_changes() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hosts");
    std::fs::write(&file, "10.1.1.1 one.example.org\n").unwrap();
    let server = TestServer::start(&format!(
        ".:0 {{\n hosts {} {{\n  reload 200ms\n  10.9.9.9 inline.example.org\n }}\n}}\n",
        file.display()
    ));
    assert_eq!(
        answers(&server, "one.example.org.", RecordType::A),
        vec!["10.1.1.1"]
    );
    assert_eq!(
        answers(&server, "inline.example.org.", RecordType::A),
        vec!["10.9.9.9"]
    );
    std::fs::write(
        &file,
        "# changed\n10.2.2.2 one.example.org two.example.org\n",
    )
    .unwrap();
    let start = Instant::now();
    while answers(&server, "one.example.org.", RecordType::A) != vec!["10.2.2.2"] {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the change was never served"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        answers(&server, "two.example.org.", RecordType::A),
        vec!["10.2.2.2"]
    );
    assert_eq!(
        answers(&server, "inline.example.org.", RecordType::A),
        vec!["10.9.9.9"]
    );
}

#[test]
fn without_fallthrough_hosts_answers_for_its_whole_zone() {
    // CoreDNS's order puts hosts before kubernetes: a hosts block for `.` without
    // fallthrough makes every other name SERVFAIL, cluster names included.
    let server = TestServer::start(
        ".:0 {
        kubernetes cluster.local {
            manifests DATA/cluster.yaml
        }
        hosts {
            10.0.0.5 registry.example.org
        }
    }",
    );
    let m = server.query("kubernetes.default.svc.cluster.local.", RecordType::A);
    assert_eq!(m.response_code(), ResponseCode::ServFail);
}
