//! `grpc`: queries sent to a gRPC upstream served by grpcio (Debian's python3-grpcio, with
//! dnspython making the answers: `tests/data/grpc/upstream.py`), in clear and over TLS, with
//! its policies, `fallthrough` and metrics.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use crate::apiserver::TestPki;
use crate::harness::{TestServer, free_port, http_get};

/// The upstream, and what it printed: one line per call.
struct Upstream {
    child: Child,
    port: u16,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Upstream {
    /// In clear, or with the PKI's server certificate.
    fn start(tls: Option<&TestPki>) -> Self {
        let port = free_port();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/grpc/upstream.py");
        let mut command = Command::new("/usr/bin/python3");
        command.arg(script).arg(port.to_string());
        if let Some(pki) = tls {
            let dir = pki.ca_cert.parent().unwrap();
            command
                .arg(dir.join("server.crt"))
                .arg(dir.join("server.key"));
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 runs (python3-grpcio, python3-dnspython)");
        let stdout = child.stdout.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let kept = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line == "ready" {
                    let _ = ready_tx.send(());
                }
                kept.lock().unwrap().push(line);
            }
        });
        ready_rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the gRPC upstream starts");
        Self { child, port, lines }
    }

    fn calls(&self) -> Vec<String> {
        let lines = self.lines.lock().unwrap();
        lines
            .iter()
            .filter(|l| l.starts_with("call "))
            .cloned()
            .collect()
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rcode_and_answers(
    server: &TestServer,
    name: &str,
    qtype: RecordType,
    tcp: bool,
) -> (ResponseCode, Vec<String>) {
    let m = if tcp {
        server.query_tcp(name, qtype)
    } else {
        server.query(name, qtype)
    };
    let answers = m.answers().iter().map(|r| r.data().to_string()).collect();
    (m.response_code(), answers)
}

#[test]
fn answers_come_from_the_grpc_upstream_over_one_connection_with_coredns_metrics() {
    let up = Upstream::start(None);
    let server = TestServer::start(&format!(
        "example.org:0 {{\n prometheus 127.0.0.1:0\n grpc . 127.0.0.1:{}\n}}\n",
        up.port
    ));
    for tcp in [false, true] {
        for (name, qtype, rcode, answers) in [
            (
                "www.example.org.",
                RecordType::A,
                ResponseCode::NoError,
                vec!["192.0.2.1"],
            ),
            (
                "hello.example.org.",
                RecordType::TXT,
                ResponseCode::NoError,
                vec!["hello"],
            ),
            // gRPC NotFound is NXDOMAIN, as CoreDNS makes it; a failed call is SERVFAIL.
            (
                "nx.example.org.",
                RecordType::A,
                ResponseCode::NXDomain,
                vec![],
            ),
            (
                "nxdomain.example.org.",
                RecordType::A,
                ResponseCode::NXDomain,
                vec![],
            ),
            (
                "fail.example.org.",
                RecordType::A,
                ResponseCode::ServFail,
                vec![],
            ),
        ] {
            let want: Vec<String> = answers.iter().map(|s| s.to_string()).collect();
            assert_eq!(
                rcode_and_answers(&server, name, qtype, tcp),
                (rcode, want),
                "{name} {qtype} tcp={tcp}"
            );
        }
    }
    // dig, through the real resolver library.
    let out = server.dig(&["+short", "www.example.org", "A"]);
    assert_eq!(out.trim(), "192.0.2.1", "{out}");
    // Every call went over the one pooled HTTP/2 connection: one peer port.
    let calls = up.calls();
    assert_eq!(calls.len(), 11, "{calls:?}");
    let peers: std::collections::BTreeSet<&str> = calls
        .iter()
        .filter_map(|c| c.split_whitespace().nth(1))
        .collect();
    assert_eq!(peers.len(), 1, "{calls:?}");

    let (_, metrics) = http_get(server.http[0], "/metrics");
    let to = format!("to=\"127.0.0.1:{}\"", up.port);
    for want in [
        // Calls that brought an answer are counted (the failed ones are not, as in CoreDNS).
        format!("coredns_grpc_requests_total{{{to}}} 9"),
        format!("coredns_grpc_responses_total{{rcode=\"NOERROR\",{to}}} 5"),
        format!("coredns_grpc_responses_total{{rcode=\"NXDOMAIN\",{to}}} 4"),
        format!("coredns_grpc_request_duration_seconds_count{{{to}}} 9"),
        "coredns_plugin_enabled{name=\"grpc\"".to_string(),
    ] {
        assert!(metrics.contains(&want), "{want} in\n{metrics}");
    }
}

#[test]
fn a_dead_upstream_is_passed_over_and_the_policies_order_them() {
    let up = Upstream::start(None);
    let dead = free_port();
    let server = TestServer::start(&format!(
        "example.org:0 {{\n grpc . 127.0.0.1:{dead} 127.0.0.1:{} {{\n  policy sequential\n }}\n}}\n",
        up.port
    ));
    for _ in 0..3 {
        assert_eq!(
            rcode_and_answers(&server, "www.example.org.", RecordType::A, false),
            (ResponseCode::NoError, vec!["192.0.2.1".to_string()])
        );
    }
    // Every upstream dead: SERVFAIL.
    let server = TestServer::start(&format!("example.org:0 {{\n grpc . 127.0.0.1:{dead}\n}}\n"));
    assert_eq!(
        rcode_and_answers(&server, "www.example.org.", RecordType::A, false).0,
        ResponseCode::ServFail
    );
}

#[test]
fn tls_upstreams_are_verified_against_the_ca_and_the_server_name() {
    let pki = TestPki::generate();
    let up = Upstream::start(Some(&pki));
    let ca = pki.ca_cert.display();
    let ask = |options: &str| {
        let server = TestServer::start(&format!(
            "example.org:0 {{\n grpc . 127.0.0.1:{} {{\n{options}\n }}\n}}\n",
            up.port
        ));
        rcode_and_answers(&server, "www.example.org.", RecordType::A, false)
    };
    let answered = (ResponseCode::NoError, vec!["192.0.2.1".to_string()]);
    // The certificate names 127.0.0.1 and localhost.
    assert_eq!(ask(&format!("  tls {ca}")), answered);
    assert_eq!(
        ask(&format!("  tls {ca}\n  tls_servername localhost")),
        answered
    );
    // With the client certificate too (the upstream does not ask for it).
    assert_eq!(
        ask(&format!(
            "  tls {} {} {ca}",
            pki.client_cert.display(),
            pki.client_key.display()
        )),
        answered
    );
    // A name the certificate does not hold, the system's CAs, or no TLS at all: no answer.
    for options in [
        format!("  tls {ca}\n  tls_servername dns.example.net"),
        "  tls".to_string(),
        String::new(),
    ] {
        assert_eq!(ask(&options).0, ResponseCode::ServFail, "{options}");
    }
}

#[test]
fn fallthrough_sends_nxdomain_and_failures_on_down_the_chain() {
    let up = Upstream::start(None);
    let block = |options: &str| {
        TestServer::start(&format!(
            "example.org:0 {{\n grpc . 127.0.0.1:{} {{\n{options}\n }}\n whoami\n}}\n",
            up.port
        ))
    };
    // whoami comes after grpc in the chain: it answers what grpc lets fall through.
    let through = block("  fallthrough");
    let kept = block("  fallthrough other.example.org");
    for name in [
        "nxdomain.example.org.",
        "nx.example.org.",
        "fail.example.org.",
    ] {
        let m = through.query(name, RecordType::A);
        assert_eq!(m.response_code(), ResponseCode::NoError, "{name}: {m:?}");
        assert!(
            m.additionals()
                .iter()
                .any(|r| r.record_type() == RecordType::A),
            "whoami's answer for {name}: {m:?}"
        );
        // A name outside the fallthrough zones keeps the upstream's answer.
        let m = kept.query(name, RecordType::A);
        assert_ne!(m.response_code(), ResponseCode::NoError, "{name}: {m:?}");
    }
    // An answer is the upstream's.
    let m = through.query("www.example.org.", RecordType::A);
    assert_eq!(m.answers().len(), 1, "{m:?}");
    let deadline = Instant::now() + Duration::from_secs(1);
    while Instant::now() < deadline && up.calls().len() < 7 {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(up.calls().len(), 7, "{:?}", up.calls());
}
