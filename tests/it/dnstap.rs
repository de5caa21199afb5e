//! `dnstap`: every query and response of the block, as a real collector receives them
//! (`fstrm_capture` from fstrm-bin, over a unix socket and over TCP) and `dnstap-read` (BIND's
//! tools) decodes them.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hickory_proto::rr::RecordType;

use crate::harness::TestServer;
use crate::upstream::free_port;

/// `fstrm_capture` writing what it receives to a file, stopped (and its file closed) when
/// dropped or by [`Capture::finish`].
struct Capture {
    child: Option<Child>,
    out: std::path::PathBuf,
}

impl Capture {
    fn start(dir: &Path, listen: &[&str]) -> Self {
        let out = dir.join("out.fstrm");
        let child = Command::new("fstrm_capture")
            .args(["-t", "protobuf:dnstap.Dnstap", "-w"])
            .arg(&out)
            .args(listen)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("fstrm_capture runs (fstrm-bin)");
        Self {
            child: Some(child),
            out,
        }
    }

    /// Stops the capture (SIGINT: it closes its file) and returns `dnstap-read -y`'s YAML.
    fn finish(mut self) -> String {
        let mut child = self.child.take().expect("running");
        let pid = child.id().to_string();
        Command::new("kill").args(["-INT", &pid]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "fstrm_capture did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
        let read = Command::new("dnstap-read")
            .arg("-y")
            .arg(&self.out)
            .output()
            .expect("dnstap-read runs (bind9-dnsutils)");
        assert!(
            read.status.success(),
            "{}",
            String::from_utf8_lossy(&read.stderr)
        );
        String::from_utf8(read.stdout).unwrap()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Waits until `ready` holds (the collector is listening), at most 5 s.
fn wait_for(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !ready() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The YAML documents of `yaml` that hold `needle`.
fn documents<'a>(yaml: &'a str, needle: &str) -> Vec<&'a str> {
    yaml.split("\n---").filter(|d| d.contains(needle)).collect()
}

#[test]
fn each_query_and_response_reach_a_collector_over_a_unix_socket_in_full() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("tap.sock");
    let capture = Capture::start(dir.path(), &["-u", socket.to_str().unwrap()]);
    wait_for("fstrm_capture's socket", || socket.exists());
    let server = TestServer::start(&format!(
        ".:0 {{\n dnstap unix://{} full {{\n  identity tap-test\n  version v-test\n }}\n whoami\n}}\n",
        socket.display()
    ));
    // The writer connects beside the server: ask until a query has gone through it.
    let udp = server.query("udp.example.", RecordType::A);
    assert_eq!(
        udp.response_code(),
        hickory_proto::op::ResponseCode::NoError
    );
    let tcp = server.query_tcp("tcp.example.", RecordType::AAAA);
    assert_eq!(
        tcp.response_code(),
        hickory_proto::op::ResponseCode::NoError
    );
    std::thread::sleep(Duration::from_millis(300));
    drop(server);
    let yaml = capture.finish();
    for (name, qtype, protocol) in [
        ("udp.example.", "A", "UDP"),
        ("tcp.example.", "AAAA", "TCP"),
    ] {
        let question = format!("- '{name} IN {qtype}'");
        let docs = documents(&yaml, &question);
        assert_eq!(docs.len(), 2, "{name}: a query and a response in\n{yaml}");
        let query = docs
            .iter()
            .find(|d| d.contains("type: CLIENT_QUERY"))
            .expect(name);
        let response = docs
            .iter()
            .find(|d| d.contains("type: CLIENT_RESPONSE"))
            .expect(name);
        for d in [query, response] {
            assert!(d.contains("identity: tap-test"), "{d}");
            assert!(d.contains("version: v-test"), "{d}");
            assert!(d.contains(&format!("socket_protocol: {protocol}")), "{d}");
            assert!(
                d.contains("query_address: \"127.0.0.1\"") || d.contains("::ffff:127.0.0.1"),
                "{d}"
            );
        }
        assert!(query.contains("query_message_data:"), "{query}");
        // whoami's answer: the client's address in the additional section.
        assert!(response.contains("flags: qr aa"), "{response}");
        assert!(
            response.contains("ADDITIONAL: 2") || response.contains("ADDITIONAL: 3"),
            "{response}"
        );
    }
}

#[test]
fn without_full_messages_carry_no_wire_data_and_tcp_sinks_work_too() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let capture = Capture::start(dir.path(), &["-a", "127.0.0.1", "-p", &port.to_string()]);
    wait_for("fstrm_capture's TCP port", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let server = TestServer::start(&format!(
        ".:0 {{\n dnstap tcp://127.0.0.1:{port}\n whoami\n}}\n"
    ));
    for i in 0..3 {
        let m = server.query(&format!("n{i}.example."), RecordType::A);
        assert_eq!(m.response_code(), hickory_proto::op::ResponseCode::NoError);
    }
    std::thread::sleep(Duration::from_millis(300));
    drop(server);
    let yaml = capture.finish();
    assert_eq!(documents(&yaml, "type: CLIENT_QUERY").len(), 3, "{yaml}");
    assert_eq!(documents(&yaml, "type: CLIENT_RESPONSE").len(), 3, "{yaml}");
    assert!(!yaml.contains("query_message_data"), "{yaml}");
    // The default identity is the host name, the version clusterdns's.
    assert!(yaml.contains("version: clusterdns-"), "{yaml}");
}

#[test]
fn forwarded_queries_are_tapped_as_forwarder_messages() {
    let knot = crate::upstream::Knot::start();
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("tap.sock");
    let capture = Capture::start(dir.path(), &["-u", socket.to_str().unwrap()]);
    wait_for("fstrm_capture's socket", || socket.exists());
    let server = TestServer::start(&format!(
        ".:0 {{\n dnstap unix://{} full\n forward . {}\n}}\n",
        socket.display(),
        knot.addr
    ));
    let m = server.query("www.example.test.", RecordType::A);
    assert_eq!(m.answers().len(), 1, "{m}");
    std::thread::sleep(Duration::from_millis(300));
    drop(server);
    let yaml = capture.finish();
    let docs = documents(&yaml, "- 'www.example.test. IN A'");
    let kinds: Vec<&str> = [
        "CLIENT_QUERY",
        "FORWARDER_QUERY",
        "FORWARDER_RESPONSE",
        "CLIENT_RESPONSE",
    ]
    .into_iter()
    .filter(|kind| docs.iter().any(|d| d.contains(&format!("type: {kind}"))))
    .collect();
    assert_eq!(kinds.len(), 4, "{yaml}");
    let forwarded = docs
        .iter()
        .find(|d| d.contains("type: FORWARDER_RESPONSE"))
        .unwrap();
    // From clusterdns's own socket to Knot's address and port.
    assert!(
        forwarded.contains("response_address: \"127.0.0.1\""),
        "{forwarded}"
    );
    assert!(
        forwarded.contains(&format!("response_port: {}", knot.addr.port())),
        "{forwarded}"
    );
    assert!(forwarded.contains("192.0.2.1"), "{forwarded}");
}
