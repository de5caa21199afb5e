//! The `clusterdns` binary's command line, as CoreDNS has it: Go-style flags, the Corefile that
//! `-conf` names, `-dns.port`, and startup errors that name the file and line and bind nothing.
//!
//! Every test runs the real binary in a temporary working directory; every process it starts is
//! killed when the test ends, passed or failed, and every wait is bounded.

use std::fs::File;
use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};

const BIN: &str = env!("CARGO_BIN_EXE_clusterdns");

/// How long a client waits for one reply once the server is up.
const READ_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a process gets to exit by itself, or to start answering.
const DEADLINE: Duration = Duration::from_secs(15);

/// One service, `web.prod.svc.cluster.local` at 10.96.7.7.
const MANIFEST: &str = "\
apiVersion: v1
kind: Namespace
metadata:
  name: prod
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: prod
spec:
  clusterIP: 10.96.7.7
  clusterIPs:
  - 10.96.7.7
  ports:
  - name: http
    port: 80
    protocol: TCP
";

const WEB: &str = "web.prod.svc.cluster.local.";
const WEB_IP: Ipv4Addr = Ipv4Addr::new(10, 96, 7, 7);

/// A started `clusterdns`. Dropping it kills the process, so a failed assertion leaves nothing
/// running; its output goes to files in its working directory, shown when a test fails.
pub(crate) struct Process {
    child: Child,
    dir: PathBuf,
}

impl Process {
    pub(crate) fn spawn(dir: &Path, args: &[&str]) -> Self {
        Self::spawn_with_log(dir, args, Some("info"))
    }

    /// [`Self::spawn`] with `RUST_LOG` set to `log`, or unset (the binary's own filter).
    pub(crate) fn spawn_with_log(dir: &Path, args: &[&str], log: Option<&str>) -> Self {
        let stdout = File::create(dir.join("stdout.log")).unwrap();
        let stderr = File::create(dir.join("stderr.log")).unwrap();
        let mut command = Command::new(BIN);
        match log {
            Some(log) => command.env("RUST_LOG", log),
            None => command.env_remove("RUST_LOG"),
        };
        let child = command
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .expect("starting clusterdns");
        Self {
            child,
            dir: dir.to_path_buf(),
        }
    }

    pub(crate) fn stdout(&self) -> String {
        std::fs::read_to_string(self.dir.join("stdout.log")).unwrap_or_default()
    }

    pub(crate) fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.join("stderr.log")).unwrap_or_default()
    }

    /// Waits for the process to exit by itself.
    pub(crate) fn wait(&mut self) -> ExitStatus {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "clusterdns did not exit within {DEADLINE:?}\nstdout:\n{}\nstderr:\n{}",
                self.stdout(),
                self.stderr()
            );
            sleep(Duration::from_millis(20));
        }
    }

    /// Queries `name` (A) on `port` until the server answers, and returns the first answer.
    pub(crate) fn first_answer(&mut self, port: u16, name: &str) -> Message {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let query = query_bytes(name);
        let deadline = Instant::now() + DEADLINE;
        let mut buf = vec![0; 65535];
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "clusterdns exited ({status}) instead of serving\nstderr:\n{}",
                    self.stderr()
                );
            }
            socket.send_to(&query, ("127.0.0.1", port)).unwrap();
            if let Ok((len, _)) = socket.recv_from(&mut buf) {
                return Message::from_vec(&buf[..len]).expect("a DNS message");
            }
            assert!(
                Instant::now() < deadline,
                "no answer on port {port} within {DEADLINE:?}\nstdout:\n{}\nstderr:\n{}",
                self.stdout(),
                self.stderr()
            );
        }
    }
}

impl Process {
    /// The process's ID.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The names of the process's threads (Linux).
    pub(crate) fn threads(&self) -> Vec<String> {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{}/task", self.child.id())) else {
            return Vec::new();
        };
        tasks
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
            .map(|c| c.trim().to_string())
            .collect()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a process that exits by itself left behind.
pub(crate) struct Exited {
    pub(crate) status: ExitStatus,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

/// Runs `clusterdns ARGS` in `dir` to its end.
pub(crate) fn run(dir: &Path, args: &[&str]) -> Exited {
    let mut process = Process::spawn(dir, args);
    let status = process.wait();
    Exited {
        status,
        stdout: process.stdout(),
        stderr: process.stderr(),
    }
}

/// A port free on 127.0.0.1 for both UDP and TCP, released for the server to take.
pub(crate) use crate::harness::free_port;

/// Fails unless `port` can be bound again: nothing was left listening on it.
pub(crate) fn assert_unbound(port: u16) {
    UdpSocket::bind(("127.0.0.1", port))
        .unwrap_or_else(|e| panic!("UDP port {port} is still bound: {e}"));
    TcpListener::bind(("127.0.0.1", port))
        .unwrap_or_else(|e| panic!("TCP port {port} is still bound: {e}"));
}

fn query_bytes(name: &str) -> Vec<u8> {
    let mut m = Message::new();
    m.set_id(0x4c49)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true);
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
    m.to_vec().unwrap()
}

/// Asserts that `reply` answers our query for `name` with the one address `ip`.
fn assert_answers(reply: &Message, name: &str, ip: Ipv4Addr) {
    assert_eq!(reply.id(), 0x4c49);
    assert_eq!(reply.message_type(), MessageType::Response);
    assert_eq!(reply.response_code(), ResponseCode::NoError, "{reply}");
    let addresses: Vec<_> = reply
        .answers()
        .iter()
        .map(|r| (r.name().to_ascii(), r.data().clone()))
        .collect();
    assert_eq!(
        addresses,
        [(name.to_string(), RData::A(ip.into()))],
        "{reply}"
    );
}

/// A temporary working directory holding `Corefile` and `cluster.yaml`.
fn workdir(corefile: &str, manifest: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Corefile"), corefile).unwrap();
    std::fs::write(dir.path().join("cluster.yaml"), manifest).unwrap();
    dir
}

fn kubernetes_block(key: &str) -> String {
    format!(
        "{key} {{\n    errors\n    kubernetes cluster.local {{\n        manifests cluster.yaml\n    }}\n}}\n"
    )
}

#[test]
fn version_flags_print_the_version_and_exit_zero() {
    let dir = tempfile::tempdir().unwrap();
    for flag in ["-version", "--version"] {
        let out = run(dir.path(), &[flag]);
        assert_eq!(out.status.code(), Some(0), "{flag}: {}", out.stderr);
        assert!(
            out.stdout
                .starts_with(&format!("clusterdns-{}\n", env!("CARGO_PKG_VERSION"))),
            "{flag}: {:?}",
            out.stdout
        );
    }
}

#[test]
fn plugins_flag_lists_the_served_directives_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    for flag in ["-plugins", "--plugins"] {
        let out = run(dir.path(), &[flag]);
        assert_eq!(out.status.code(), Some(0), "{flag}: {}", out.stderr);
        let lines: Vec<&str> = out.stdout.lines().map(str::trim).collect();
        for plugin in [
            "dns.kubernetes",
            "dns.hosts",
            "dns.errors",
            "dns.log",
            "dns.forward",
        ] {
            assert!(
                lines.contains(&plugin),
                "{flag}: {plugin} missing from {lines:?}"
            );
        }
        assert!(lines.contains(&"dns.cache"), "{lines:?}");
        assert!(lines.contains(&"dns.reload"), "{lines:?}");
        assert!(lines.contains(&"dns.autopath"), "{lines:?}");
        assert!(lines.contains(&"dns.dnssec"), "{lines:?}");
        assert!(lines.contains(&"dns.etcd"), "{lines:?}");
        assert!(lines.contains(&"dns.sign"), "{lines:?}");
        assert!(lines.contains(&"dns.grpc"), "{lines:?}");
        assert!(!lines.contains(&"dns.nomad"), "{lines:?}");
    }
}

#[test]
fn bad_command_lines_exit_one_and_say_why() {
    let dir = tempfile::tempdir().unwrap();
    for (args, needle) in [
        (&["-bogus"][..], "unknown flag -bogus"),
        (&["--frobnicate=1"], "unknown flag -frobnicate"),
        (&["serve"], "unexpected argument \"serve\""),
        (&["-conf"], "flag -conf needs a value"),
        (&["-dns.port", "seventy"], "-dns.port: bad port \"seventy\""),
        (&["-dns.port=70000"], "-dns.port: bad port \"70000\""),
    ] {
        let out = run(dir.path(), args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", out.stderr);
        assert!(
            out.stderr.starts_with("clusterdns: "),
            "{args:?}: {}",
            out.stderr
        );
        assert!(out.stderr.contains(needle), "{args:?}: {}", out.stderr);
    }
    let out = run(dir.path(), &["-bogus"]);
    assert!(out.stderr.contains("Usage: clusterdns"), "{}", out.stderr);
}

#[test]
fn a_corefile_error_exits_one_naming_the_path_as_given_and_binds_nothing() {
    let port = free_port();
    let corefile = format!(".:{port} {{\n    errors\n    frobnicate\n}}\n");
    let dir = workdir(&corefile, MANIFEST);
    std::fs::create_dir(dir.path().join("conf")).unwrap();
    std::fs::write(dir.path().join("conf/Corefile"), &corefile).unwrap();
    let absolute = dir.path().join("Corefile").display().to_string();

    for (args, given) in [
        (vec![], "Corefile"),
        (vec!["-conf", "Corefile"], "Corefile"),
        (vec!["-conf", "conf/Corefile"], "conf/Corefile"),
        (vec!["-conf", absolute.as_str()], absolute.as_str()),
    ] {
        let out = run(dir.path(), &args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", out.stderr);
        assert!(
            out.stderr.contains(&format!(
                "clusterdns: {given}:3: frobnicate: unknown directive"
            )),
            "{args:?}: {}",
            out.stderr
        );
        assert!(
            !out.stdout.contains("listening"),
            "{args:?}: {}",
            out.stdout
        );
        assert_unbound(port);
    }
}

#[test]
fn a_missing_corefile_exits_one_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["-conf", "nowhere/Corefile"]);
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains("cannot read nowhere/Corefile"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_manifest_error_exits_one_naming_the_manifest_and_line_and_binds_nothing() {
    let port = free_port();
    let manifest = format!(
        "{MANIFEST}---\napiVersion: v1\nkind: Service\nmetadata:\n  name: db\n  namespace: prod\nspec:\n  clusterIP: 10.96.0.999\n"
    );
    let line = MANIFEST.lines().count() + 2;
    assert_eq!(manifest.lines().nth(line - 1), Some("apiVersion: v1"));
    let dir = workdir(&kubernetes_block(&format!(".:{port}")), &manifest);

    let out = run(dir.path(), &["-conf", "Corefile"]);
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
    assert!(
        out.stderr
            .starts_with(&format!("clusterdns: cluster.yaml:{line}: ")),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("\"10.96.0.999\""), "{}", out.stderr);
    assert!(!out.stdout.contains("listening"), "{}", out.stdout);
    assert_unbound(port);
}

#[test]
fn every_form_of_the_conf_flag_starts_the_server() {
    for form in [
        &["-conf=Corefile"][..],
        &["--conf", "Corefile"],
        &["-conf", "Corefile"],
        &["--conf=Corefile"],
    ] {
        let port = free_port();
        let dir = workdir(&kubernetes_block(&format!(".:{port}")), MANIFEST);
        let mut server = Process::spawn(dir.path(), form);
        let reply = server.first_answer(port, WEB);
        assert_answers(&reply, WEB, WEB_IP);
        drop(server);
        assert_unbound(port);
    }
}

#[test]
fn dns_port_sets_the_port_of_server_blocks_that_name_none() {
    for flag in ["-dns.port", "-dns.port=", "--dns.port"] {
        let port = free_port();
        let other = std::iter::repeat_with(free_port)
            .find(|&p| p != port)
            .unwrap();
        let corefile = format!(
            "{}example.org:{other} {{\n    hosts {{\n        10.1.2.3 a.example.org\n    }}\n}}\n",
            kubernetes_block("cluster.local")
        );
        let dir = workdir(&corefile, MANIFEST);
        let port_arg = port.to_string();
        let args: Vec<String> = if let Some(flag) = flag.strip_suffix('=') {
            vec![format!("{flag}={port}")]
        } else {
            vec![flag.into(), port_arg]
        };
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut server = Process::spawn(dir.path(), &args);

        let reply = server.first_answer(port, WEB);
        assert_answers(&reply, WEB, WEB_IP);
        // A block that names its port keeps it.
        let reply = server.first_answer(other, "a.example.org.");
        assert_answers(&reply, "a.example.org.", Ipv4Addr::new(10, 1, 2, 3));

        // One more query with the ordinary timeout, now that the server is known to be up.
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        socket
            .send_to(&query_bytes(WEB), ("127.0.0.1", port))
            .unwrap();
        let mut buf = vec![0; 65535];
        let (len, _) = socket.recv_from(&mut buf).expect("a reply within 2 s");
        assert_answers(&Message::from_vec(&buf[..len]).unwrap(), WEB, WEB_IP);
    }
}

#[test]
fn the_log_directive_writes_coredns_default_line_per_query() {
    let port = free_port();
    let corefile = format!(
        ".:{port} {{\n    log\n    kubernetes cluster.local {{\n        manifests cluster.yaml\n    }}\n}}\n"
    );
    let dir = workdir(&corefile, MANIFEST);
    let mut server = Process::spawn(dir.path(), &["-conf", "Corefile"]);
    let reply = server.first_answer(port, WEB);
    assert_answers(&reply, WEB, WEB_IP);
    // `{remote}:{port} - {id} "{type} {class} {name} {proto} {size} {do} {bufsize}"
    //  {rcode} {rflags} {rsize} {duration}`
    let deadline = Instant::now() + DEADLINE;
    let line = loop {
        let out = server.stdout();
        if let Some(line) = out
            .lines()
            .find(|l| l.contains(&format!("\"A IN {WEB} udp ")))
        {
            break line.to_string();
        }
        assert!(Instant::now() < deadline, "no log line in\n{out}");
        sleep(Duration::from_millis(20));
    };
    let tail = line.split(" - ").nth(1).expect("`remote - id` in the line");
    let fields: Vec<&str> = tail.split_whitespace().collect();
    assert_eq!(fields[1], "\"A", "{line}");
    assert_eq!(fields[7], "512\"", "no EDNS: bufsize 512: {line}");
    assert_eq!(fields[8], "NOERROR", "{line}");
    assert_eq!(fields[9], "qr,aa,rd,ra", "{line}");
    assert!(fields[11].ends_with('s'), "duration in seconds: {line}");
    assert!(
        line.contains("127.0.0.1:"),
        "remote without the IPv6-mapped prefix: {line}"
    );
}

/// OpenShift's form, `log . { class error }`: answers and denials are not logged, errors are,
/// in the format asked for.
#[test]
fn log_with_a_class_and_a_format_writes_only_the_lines_asked_for() {
    let port = free_port();
    let corefile = format!(
        "example:{port} {{\n    log . \"{{name}} {{rcode}} {{/log/class}}\" {{\n        class error\n    }}\n    hosts {{\n        10.0.0.1 a.example\n    }}\n}}\n"
    );
    let dir = workdir(&corefile, MANIFEST);
    let mut server = Process::spawn(dir.path(), &["-conf", "Corefile"]);
    // A name `hosts` has, then one it lacks (without fallthrough: SERVFAIL).
    let ok = server.first_answer(port, "a.example.");
    assert_eq!(ok.response_code(), ResponseCode::NoError);
    let failed = server.first_answer(port, "b.example.");
    assert_eq!(failed.response_code(), ResponseCode::ServFail);
    let deadline = Instant::now() + DEADLINE;
    loop {
        let out = server.stdout();
        if out.contains("b.example. SERVFAIL error") {
            assert!(!out.contains("a.example."), "a success logged:\n{out}");
            break;
        }
        assert!(Instant::now() < deadline, "no log line in\n{out}");
        sleep(Duration::from_millis(20));
    }
}

/// `errors { consolidate }` as operators write it for CoreDNS: upstream timeouts counted into
/// one line per period, other failures written as they come.
#[test]
fn errors_consolidate_counts_upstream_timeouts_into_one_line() {
    let port = free_port();
    // An upstream that never answers: every query times out there.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let upstream = silent.local_addr().unwrap();
    let corefile = format!(
        ".:{port} {{\n    errors {{\n        consolidate 1s \".* i/o timeout$\" warning\n    }}\n    hosts {{\n        10.0.0.1 up.example\n        fallthrough\n    }}\n    forward . {upstream}\n}}\n"
    );
    let dir = workdir(&corefile, MANIFEST);
    let mut server = Process::spawn(dir.path(), &["-conf", "Corefile"]);
    server.first_answer(port, "up.example.");
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 0..3 {
        let q = query_bytes(&format!("down{i}.example."));
        socket.send_to(&q, ("127.0.0.1", port)).unwrap();
    }
    let deadline = Instant::now() + DEADLINE;
    loop {
        let out = server.stdout();
        if out.contains("3 errors like '.* i/o timeout$' occurred in last 1s") {
            assert!(
                !out.contains("down0.example. A: upstream"),
                "not consolidated:\n{out}"
            );
            assert!(out.contains("WARN"), "at the rule's level:\n{out}");
            break;
        }
        assert!(Instant::now() < deadline, "no consolidated line in\n{out}");
        sleep(Duration::from_millis(50));
    }
    drop(silent);
}

#[test]
fn unreadable_or_non_pem_tls_files_exit_one_naming_the_file_and_bind_nothing() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("garbage.pem"), "not a certificate\n").unwrap();
    for (files, named) in [
        ("missing.crt missing.key missing-ca.crt", "missing.crt"),
        ("garbage.pem garbage.pem garbage.pem", "garbage.pem"),
    ] {
        let corefile = format!(
            ".:{port} {{\n    kubernetes cluster.local {{\n        endpoint https://127.0.0.1:1\n        tls {files}\n    }}\n}}\n"
        );
        std::fs::write(dir.path().join("Corefile"), corefile).unwrap();
        let out = run(dir.path(), &[]);
        assert_eq!(out.status.code(), Some(1), "{files}: {}", out.stderr);
        assert!(
            out.stderr.contains(named) && out.stderr.contains("tls"),
            "{files}: {}",
            out.stderr
        );
        assert_unbound(port);
    }
}

#[test]
fn a_forwarding_loop_is_detected_at_start_and_stops_the_process_with_coredns_message() {
    let port = free_port();
    let corefile = format!(".:{port} {{\n    loop\n    forward . 127.0.0.1:{port}\n}}\n");
    let dir = workdir(&corefile, MANIFEST);
    let out = run(dir.path(), &[]);
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains("plugin/loop: Loop (127.0.0.1:")
            && out
                .stderr
                .contains(&format!("-> :{port}) detected for zone \".\""))
            && out
                .stderr
                .contains("coredns.io/plugins/loop#troubleshooting. Query: \"HINFO "),
        "{}",
        out.stderr
    );
}

#[test]
fn without_a_loop_the_probe_passes_and_the_server_keeps_serving() {
    let knot = crate::upstream::Knot::start();
    let port = free_port();
    let corefile = format!(
        ".:{port} {{\n    loop\n    forward . {}\n    kubernetes cluster.local {{\n        manifests cluster.yaml\n    }}\n}}\n",
        knot.addr
    );
    let dir = workdir(&corefile, MANIFEST);
    let mut process = Process::spawn(dir.path(), &[]);
    assert_answers(&process.first_answer(port, WEB), WEB, WEB_IP);
    // Past the probe and its grace period, still up.
    sleep(Duration::from_secs(4));
    assert!(
        process.child.try_wait().unwrap().is_none(),
        "{}",
        process.stderr()
    );
    let answer = process.first_answer(port, "www.example.test.");
    assert_answers(&answer, "www.example.test.", Ipv4Addr::new(192, 0, 2, 1));
}

/// The first A record of `name` on `port`, trying twice as a stub resolver would.
fn resolve_once(port: u16, name: &str) -> Option<Ipv4Addr> {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = vec![0; 4096];
    for _ in 0..2 {
        socket
            .send_to(&query_bytes(name), ("127.0.0.1", port))
            .unwrap();
        if let Ok((len, _)) = socket.recv_from(&mut buf) {
            let m = Message::from_vec(&buf[..len]).ok()?;
            return m.answers().iter().find_map(|r| match r.data() {
                RData::A(a) => Some(a.0),
                _ => None,
            });
        }
    }
    None
}

#[test]
fn reload_serves_a_changed_corefile_without_a_gap_and_keeps_the_last_good_one() {
    let (port, metrics) = (free_port(), free_port());
    let corefile = |ip: &str| {
        format!(
            ".:{port} {{\n    reload 2s 1s\n    prometheus 127.0.0.1:{metrics}\n    hosts {{\n        {ip} a.example\n    }}\n}}\n"
        )
    };
    let dir = workdir(&corefile("10.0.0.1"), MANIFEST);
    let mut process = Process::spawn(dir.path(), &[]);
    process.first_answer(port, "a.example.");
    assert_eq!(
        resolve_once(port, "a.example."),
        Some(Ipv4Addr::new(10, 0, 0, 1))
    );
    // Queries all along: every one is answered, by the old Corefile or the new.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let asking = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let (mut asked, mut unanswered) = (0, 0);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                asked += 1;
                if resolve_once(port, "a.example.").is_none() {
                    unanswered += 1;
                }
                sleep(Duration::from_millis(5));
            }
            (asked, unanswered)
        })
    };
    std::fs::write(dir.path().join("Corefile"), corefile("10.0.0.2")).unwrap();
    let start = Instant::now();
    while resolve_once(port, "a.example.") != Some(Ipv4Addr::new(10, 0, 0, 2)) {
        assert!(
            start.elapsed() < DEADLINE,
            "never reloaded\n{}",
            process.stdout()
        );
        sleep(Duration::from_millis(100));
    }
    sleep(Duration::from_millis(500));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (asked, unanswered) = asking.join().unwrap();
    assert!(asked > 100, "{asked}");
    assert_eq!(unanswered, 0, "of {asked}");

    // A broken Corefile: the last good one goes on, and the failure is counted.
    std::fs::write(
        dir.path().join("Corefile"),
        format!(".:{port} {{\n    reload 2s 1s\n    frobnicate\n}}\n"),
    )
    .unwrap();
    let start = Instant::now();
    while !process.stdout().contains("the last good one goes on") {
        assert!(start.elapsed() < DEADLINE, "{}", process.stdout());
        sleep(Duration::from_millis(100));
    }
    assert!(process.stdout().contains("frobnicate: unknown directive"));
    assert_eq!(
        resolve_once(port, "a.example."),
        Some(Ipv4Addr::new(10, 0, 0, 2))
    );
    let body = http_body(metrics, "/metrics");
    assert!(body.contains("coredns_reload_failed_total 1"), "{body}");
    assert!(process.child.try_wait().unwrap().is_none());
}

/// GET `path` on 127.0.0.1:`port`: the body.
fn http_body(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\n\r\n").unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    text.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}

#[test]
fn on_sigterm_queries_are_answered_through_lameduck_while_ready_says_503_then_exit_0() {
    let (port, http) = (free_port(), free_port());
    let corefile = format!(
        ".:{port} {{\n    health 127.0.0.1:{http} {{\n        lameduck 2s\n    }}\n    ready 127.0.0.1:{http}\n    hosts {{\n        10.0.0.1 a.example\n    }}\n}}\n"
    );
    let dir = workdir(&corefile, MANIFEST);
    let mut process = Process::spawn(dir.path(), &[]);
    process.first_answer(port, "a.example.");
    assert_eq!(http_status(http, "/ready"), 200);
    let kill = Command::new("kill")
        .args(["-TERM", &process.child.id().to_string()])
        .status()
        .expect("running kill");
    assert!(kill.success());
    let signalled = Instant::now();
    sleep(Duration::from_millis(300));
    // Lameduck: not ready any more, still healthy, and every query answered.
    assert_eq!(http_status(http, "/ready"), 503);
    assert_eq!(http_status(http, "/health"), 200);
    while signalled.elapsed() < Duration::from_millis(1700) {
        assert_eq!(
            resolve_once(port, "a.example."),
            Some(Ipv4Addr::new(10, 0, 0, 1))
        );
        sleep(Duration::from_millis(20));
    }
    let status = process.wait();
    assert_eq!(status.code(), Some(0), "{}", process.stdout());
    assert!(signalled.elapsed() >= Duration::from_secs(2));
}

fn http_status(port: u16, path: &str) -> u16 {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\n\r\n").unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    text.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// `debug`, `cancel` and `multisocket`, which act on the process: clusterdns's debug messages
/// are logged (`local`'s intercepted names), a query waiting on a silent upstream is given up at
/// `cancel`'s deadline with SERVFAIL (and the error `errors` writes says so), and the port has
/// as many UDP workers as `multisocket` says, whatever `-workers` is.
#[test]
fn debug_cancel_and_multisocket_act_on_the_process() {
    let port = free_port();
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let upstream = silent.local_addr().unwrap();
    let corefile = format!(
        ".:{port} {{\n    debug\n    cancel 300ms\n    multisocket 3\n    errors\n    local\n    kubernetes cluster.local {{\n        manifests cluster.yaml\n    }}\n    forward . {upstream}\n}}\n"
    );
    let dir = workdir(&corefile, MANIFEST);
    let mut server =
        Process::spawn_with_log(dir.path(), &["-conf", "Corefile", "-workers", "1"], None);
    assert_answers(&server.first_answer(port, WEB), WEB, WEB_IP);
    let localhost = server.first_answer(port, "app.localhost.");
    assert_eq!(localhost.response_code(), ResponseCode::NoError);
    // Within the client's wait, far less than the forward plugin's own timeouts.
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    socket
        .send_to(&query_bytes("down.example."), ("127.0.0.1", port))
        .unwrap();
    let mut buf = [0u8; 512];
    let (n, _) = socket
        .recv_from(&mut buf)
        .expect("an answer before the client gives up");
    let reply = Message::from_vec(&buf[..n]).unwrap();
    assert_eq!(reply.response_code(), ResponseCode::ServFail);
    let deadline = Instant::now() + DEADLINE;
    loop {
        let out = server.stdout();
        if out.contains("Intercepting localhost query for \"app.localhost.\"")
            && out.contains("down.example. A: context deadline exceeded")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no debug or error line in\n{out}"
        );
        sleep(Duration::from_millis(20));
    }
    if cfg!(target_os = "linux") {
        let udp = format!("udp-{port}");
        let threads = server.threads();
        assert_eq!(
            threads.iter().filter(|t| **t == udp).count(),
            3,
            "{threads:?}"
        );
    }
    drop(silent);
}

/// An old ConfigMap's `proxy` and `kubernetes { upstream; resyncperiod }`, removed from CoreDNS
/// (1.6, 1.7): the server starts anyway, `proxy` forwards as the `forward` it became, and the
/// log names each replacement and what was ignored.
#[test]
fn an_old_configmaps_proxy_and_removed_kubernetes_options_start_with_warnings() {
    let knot = crate::upstream::Knot::start();
    let port = free_port();
    let corefile = format!(
        ".:{port} {{\n    kubernetes cluster.local {{\n        manifests cluster.yaml\n        upstream\n        resyncperiod 30s\n    }}\n    proxy . {} {{\n        policy first\n        fail_timeout 10s\n        health_check /health:8080\n    }}\n}}\n",
        knot.addr
    );
    let dir = workdir(&corefile, MANIFEST);
    let mut server = Process::spawn(dir.path(), &["-conf", "Corefile"]);
    assert_answers(&server.first_answer(port, WEB), WEB, WEB_IP);
    let external = server.first_answer(port, "www.example.test.");
    assert_eq!(
        external.response_code(),
        ResponseCode::NoError,
        "{external}"
    );
    assert_eq!(
        external.answers()[0].data(),
        &RData::A(hickory_proto::rr::rdata::A(Ipv4Addr::new(192, 0, 2, 1)))
    );
    let log = server.stdout() + &server.stderr();
    for needle in [
        &format!(
            "proxy at Corefile:7: removed in CoreDNS 1.6, served as `forward . {}`: replace it with forward; ignored: fail_timeout, health_check",
            knot.addr
        ),
        "kubernetes at Corefile:4: `upstream` was removed in CoreDNS 1.7 and is ignored",
        "kubernetes at Corefile:5: `resyncperiod` was removed in CoreDNS 1.7 and is ignored",
    ] {
        assert!(log.contains(needle), "{needle}\nnot in\n{log}");
    }
}

/// Keys as CoreDNS takes them: a CIDR off an octet boundary is each of its reverse zones (a
/// `/12` is sixteen), in a server key and in `kubernetes`, and one block's keys may name
/// several ports, each served with the block's directives.
#[test]
fn cidr_keys_and_keys_on_several_ports_serve_as_coredns_serves_them() {
    let (one, two) = (free_port(), free_port());
    let corefile = format!(
        "cluster.local:{one} 10.96.0.0/12:{one} .:{two} {{\n    kubernetes cluster.local 10.96.0.0/12 {{\n        manifests cluster.yaml\n    }}\n}}\n"
    );
    let dir = workdir(&corefile, MANIFEST);
    let mut server = Process::spawn(dir.path(), &["-conf", "Corefile"]);
    for port in [one, two] {
        assert_answers(&server.first_answer(port, WEB), WEB, WEB_IP);
    }
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    let ask = |port: u16, name: &str| {
        let mut m = Message::new();
        m.set_id(7).set_recursion_desired(true);
        m.add_query(Query::query(
            Name::from_ascii(name).unwrap(),
            RecordType::PTR,
        ));
        socket
            .send_to(&m.to_vec().unwrap(), ("127.0.0.1", port))
            .unwrap();
        let mut buf = [0u8; 1500];
        let (n, _) = socket.recv_from(&mut buf).expect("an answer");
        Message::from_vec(&buf[..n]).unwrap()
    };
    // 7.7.96.10.in-addr.arpa. is in 96.10.in-addr.arpa., one of the sixteen.
    let ptr = ask(one, "7.7.96.10.in-addr.arpa.");
    assert_eq!(ptr.response_code(), ResponseCode::NoError, "{ptr}");
    assert_eq!(
        ptr.answers()[0].data(),
        &RData::PTR(hickory_proto::rr::rdata::PTR(
            Name::from_ascii(WEB).unwrap()
        ))
    );
    // 10.112.0.0 is past the /12: no block of port `one` holds its reverse zone.
    let outside = ask(one, "1.0.112.10.in-addr.arpa.");
    assert_eq!(outside.response_code(), ResponseCode::Refused, "{outside}");
    // Inside the /12 but not a service's: the kubernetes zone's NXDOMAIN.
    let missing = ask(one, "1.0.100.10.in-addr.arpa.");
    assert_eq!(missing.response_code(), ResponseCode::NXDomain, "{missing}");
}

/// `metadata`: the labels `kubernetes` and `view` give a query, in a `log` format; without
/// `metadata` in the block (the second port), each is `-`, as in CoreDNS.
#[test]
fn metadata_labels_fill_log_placeholders_only_where_metadata_collects_them() {
    let (one, two) = (free_port(), free_port());
    let format = "\"META {name} {/kubernetes/kind} {/kubernetes/namespace} {/kubernetes/service} {/view/name} {/kubernetes/parse-error}\"";
    let corefile = format!(
        "cluster.local:{one} {{\n    metadata\n    view all {{\n        expr true\n    }}\n    log . {format}\n    kubernetes cluster.local {{\n        manifests cluster.yaml\n    }}\n}}\n\
         cluster.local:{two} {{\n    log . {format}\n    kubernetes cluster.local {{\n        manifests cluster.yaml\n    }}\n}}\n"
    );
    let dir = workdir(&corefile, MANIFEST);
    let mut server = Process::spawn(dir.path(), &["-conf", "Corefile"]);
    assert_answers(&server.first_answer(one, WEB), WEB, WEB_IP);
    server.first_answer(one, "x.a.b.c.prod.svc.cluster.local.");
    assert_answers(&server.first_answer(two, WEB), WEB, WEB_IP);
    let deadline = Instant::now() + DEADLINE;
    loop {
        let out = server.stdout();
        let lines: Vec<&str> = out.lines().filter(|l| l.contains("META ")).collect();
        if lines.len() >= 3 {
            let has = |line: &str| lines.iter().any(|l| l.ends_with(line));
            assert!(
                has("META web.prod.svc.cluster.local. svc prod web all -"),
                "{out}"
            );
            assert!(
                has("META x.a.b.c.prod.svc.cluster.local. - - - all invalid request"),
                "{out}"
            );
            assert!(has("META web.prod.svc.cluster.local. - - - - -"), "{out}");
            break;
        }
        assert!(Instant::now() < deadline, "no log lines in\n{out}");
        sleep(Duration::from_millis(20));
    }
}

/// `on startup` runs its command when the server starts serving, `on shutdown` when it stops.
#[test]
fn on_startup_and_shutdown_run_their_commands() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let (started, stopped) = (dir.path().join("started"), dir.path().join("stopped"));
    let corefile = format!(
        ".:{port} {{\n    on startup touch {}\n    on shutdown touch {}\n    whoami\n}}\n",
        started.display(),
        stopped.display()
    );
    std::fs::write(dir.path().join("Corefile"), corefile).unwrap();
    let mut process = Process::spawn(dir.path(), &[]);
    process.first_answer(port, "a.example.");
    let deadline = Instant::now() + DEADLINE;
    while !started.exists() {
        assert!(Instant::now() < deadline, "on startup did not run");
        sleep(Duration::from_millis(20));
    }
    assert!(!stopped.exists());
    let kill = Command::new("kill")
        .args(["-TERM", &process.child.id().to_string()])
        .status()
        .expect("running kill");
    assert!(kill.success());
    assert_eq!(process.wait().code(), Some(0), "{}", process.stderr());
    assert!(stopped.exists(), "on shutdown did not run");
}
