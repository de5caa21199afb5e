//! The `etcd` plugin against a real etcd (Debian's etcd-server), with records written by
//! `etcdctl` as SkyDNS users write them: served once listed, changes followed by the watch, the
//! last records kept while etcd is down and a fresh list when it is back, lease TTLs, and
//! credentials.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::apiserver::TestPki;
use crate::harness::{TestServer, free_port};

/// One etcd member on loopback, stopped when dropped.
struct Etcd {
    client: SocketAddr,
    peer: u16,
    data: PathBuf,
    /// With TLS: the PKI whose server certificate it serves, asking clients for theirs.
    pki: Option<TestPki>,
    child: Option<Child>,
    _dir: tempfile::TempDir,
}

impl Etcd {
    /// An etcd for `client`, not started yet.
    fn new(client: SocketAddr) -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self {
            client,
            peer: free_port(),
            data: dir.path().join("data"),
            pki: None,
            child: None,
            _dir: dir,
        }
    }

    /// The same over TLS, with client certificates.
    fn with_tls(client: SocketAddr) -> Self {
        let mut etcd = Self::new(client);
        etcd.pki = Some(TestPki::generate());
        etcd
    }

    fn url(&self) -> String {
        let scheme = if self.pki.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.client)
    }

    /// The TLS files: the CA, the server's certificate and key, a client's.
    fn tls_args(&self) -> Vec<String> {
        let Some(pki) = &self.pki else {
            return Vec::new();
        };
        let dir = pki.ca_cert.parent().expect("the PKI's directory");
        vec![
            pki.ca_cert.display().to_string(),
            dir.join("server.crt").display().to_string(),
            dir.join("server.key").display().to_string(),
            pki.client_cert.display().to_string(),
            pki.client_key.display().to_string(),
        ]
    }

    fn start(&mut self) {
        let peer = format!("http://127.0.0.1:{}", self.peer);
        let child = Command::new("etcd")
            .args(["--name", "t", "--data-dir"])
            .arg(&self.data)
            .args(["--listen-client-urls", &self.url()])
            .args(["--advertise-client-urls", &self.url()])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("t={peer}")])
            .args(match self.tls_args().as_slice() {
                [ca, cert, key, ..] => vec![
                    "--cert-file".to_string(),
                    cert.clone(),
                    "--key-file".to_string(),
                    key.clone(),
                    "--client-cert-auth".to_string(),
                    "--trusted-ca-file".to_string(),
                    ca.clone(),
                ],
                _ => Vec::new(),
            })
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("etcd runs (etcd-server)");
        self.child = Some(child);
        let start = Instant::now();
        while !self.ctl(&["endpoint", "health"]).status.success() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "etcd did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn ctl(&self, args: &[&str]) -> std::process::Output {
        Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .args(["--endpoints", &self.url(), "--command-timeout", "3s"])
            .args(match self.tls_args().as_slice() {
                [ca, _, _, cert, key] => {
                    vec![
                        format!("--cacert={ca}"),
                        format!("--cert={cert}"),
                        format!("--key={key}"),
                    ]
                }
                _ => Vec::new(),
            })
            .args(args)
            .output()
            .expect("etcdctl runs (etcd-client)")
    }

    /// `etcdctl ARGS...`, which must succeed: what it printed.
    fn must(&self, args: &[&str]) -> String {
        let out = self.ctl(args);
        assert!(out.status.success(), "etcdctl {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Asks `server` until `+short` gives `want` (20 s at most).
fn wait_for(server: &TestServer, args: &[&str], want: &str) {
    let start = Instant::now();
    loop {
        let mut all = vec!["+short"];
        all.extend_from_slice(args);
        let got = server.dig(&all);
        if got.trim() == want {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{args:?} never answered {want:?}: {}",
            server.dig(args)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `text` with every run of white space one space.
fn words(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn corefile(etcd: &Etcd, extra: &str) -> String {
    format!(
        "skydns.local:0 {{\n etcd {{\n  path /skydns\n  endpoint {}\n{extra} }}\n}}\n",
        etcd.url()
    )
}

#[test]
fn records_in_etcd_are_served_and_follow_its_changes_and_outages() {
    let mut etcd = Etcd::new(SocketAddr::from(([127, 0, 0, 1], free_port())));
    let server = TestServer::start(&corefile(&etcd, "  min-lease-ttl 30\n  max-lease-ttl 60\n"));
    // Nothing listed yet: SERVFAIL, as CoreDNS answers when etcd does not.
    let first = server.dig(&["www.skydns.local", "A"]);
    assert!(first.contains("status: SERVFAIL"), "{first}");

    etcd.start();
    etcd.must(&[
        "put",
        "/skydns/local/skydns/www/a",
        r#"{"host":"10.0.0.1","ttl":60}"#,
    ]);
    etcd.must(&[
        "put",
        "/skydns/local/skydns/www/b",
        r#"{"host":"10.0.0.2","ttl":60}"#,
    ]);
    etcd.must(&[
        "put",
        "/skydns/local/skydns/db",
        r#"{"host":"10.0.1.5","port":5432}"#,
    ]);
    etcd.must(&[
        "put",
        "/skydns/local/skydns/notes",
        r#"{"text":"hello from etcd"}"#,
    ]);
    etcd.must(&[
        "put",
        "/skydns/local/skydns/dns/apex/x1",
        r#"{"host":"10.0.9.9"}"#,
    ]);
    wait_for(&server, &["db.skydns.local", "A"], "10.0.1.5");
    wait_for(&server, &["www.skydns.local", "A"], "10.0.0.1\n10.0.0.2");
    wait_for(&server, &["skydns.local", "A"], "10.0.9.9");
    let srv = words(&server.dig(&["db.skydns.local", "SRV"]));
    assert!(srv.contains("flags: qr aa rd"), "{srv}");
    assert!(
        srv.contains("db.skydns.local. 300 IN SRV 10 100 5432 db.skydns.local."),
        "{srv}"
    );
    assert!(srv.contains("db.skydns.local. 300 IN A 10.0.1.5"), "{srv}");
    wait_for(
        &server,
        &["notes.skydns.local", "TXT"],
        "\"hello from etcd\"",
    );
    let missing = words(&server.dig(&["nothere.skydns.local", "A"]));
    assert!(missing.contains("status: NXDOMAIN"), "{missing}");
    assert!(
        missing.contains("skydns.local. 30 IN SOA ns.dns.skydns.local. hostmaster.skydns.local."),
        "{missing}"
    );

    // Changes arrive by the watch.
    etcd.must(&["put", "/skydns/local/skydns/new", r#"{"host":"10.0.2.1"}"#]);
    wait_for(&server, &["new.skydns.local", "A"], "10.0.2.1");
    etcd.must(&["del", "/skydns/local/skydns/www/b"]);
    wait_for(&server, &["www.skydns.local", "A"], "10.0.0.1");

    // A leased key: its TTL is the lease's remaining time, within the bounds.
    let lease = etcd.must(&["lease", "grant", "600"]);
    let id = lease
        .split_whitespace()
        .nth(1)
        .expect("lease ID")
        .to_string();
    etcd.must(&[
        "put",
        "--lease",
        &id,
        "/skydns/local/skydns/leased",
        r#"{"host":"10.0.3.1"}"#,
    ]);
    wait_for(&server, &["leased.skydns.local", "A"], "10.0.3.1");
    let leased = words(&server.dig(&["+noall", "+answer", "leased.skydns.local", "A"]));
    assert!(
        leased.contains("leased.skydns.local. 60 IN A 10.0.3.1"),
        "{leased}"
    );

    // etcd down: what was read is still served.
    etcd.stop();
    std::thread::sleep(Duration::from_millis(500));
    wait_for(&server, &["new.skydns.local", "A"], "10.0.2.1");
    // Back, with a change made while clusterdns was not watching: a fresh list sees it.
    etcd.start();
    etcd.must(&["del", "/skydns/local/skydns/new"]);
    etcd.must(&[
        "put",
        "/skydns/local/skydns/after",
        r#"{"host":"10.0.4.1"}"#,
    ]);
    let start = Instant::now();
    while !server
        .dig(&["after.skydns.local", "A"])
        .contains("10.0.4.1")
    {
        assert!(start.elapsed() < Duration::from_secs(45), "never relisted");
        std::thread::sleep(Duration::from_millis(250));
    }
    let gone = server.dig(&["new.skydns.local", "A"]);
    assert!(gone.contains("status: NXDOMAIN"), "{gone}");
}

#[test]
fn credentials_are_used_against_an_etcd_with_auth() {
    let mut etcd = Etcd::new(SocketAddr::from(([127, 0, 0, 1], free_port())));
    etcd.start();
    etcd.must(&["user", "add", "root:secret"]);
    etcd.must(&["auth", "enable"]);
    let put = |key: &str, value: &str| {
        let out = etcd.ctl(&["--user", "root:secret", "put", key, value]);
        assert!(out.status.success(), "{out:?}");
    };
    put("/skydns/local/skydns/secured", r#"{"host":"10.5.0.1"}"#);
    let wrong = TestServer::start(&corefile(&etcd, "  credentials root wrong\n"));
    let right = TestServer::start(&corefile(&etcd, "  credentials root secret\n"));
    wait_for(&right, &["secured.skydns.local", "A"], "10.5.0.1");
    let refused = wrong.dig(&["secured.skydns.local", "A"]);
    assert!(refused.contains("status: SERVFAIL"), "{refused}");
}

#[test]
fn tls_with_a_client_certificate_and_the_cluster_ca() {
    let mut etcd = Etcd::with_tls(SocketAddr::from(([127, 0, 0, 1], free_port())));
    etcd.start();
    etcd.must(&[
        "put",
        "/skydns/local/skydns/private",
        r#"{"host":"10.6.0.1"}"#,
    ]);
    let [ca, _, _, cert, key] = etcd.tls_args().try_into().expect("TLS files");
    let server = TestServer::start(&corefile(&etcd, &format!("  tls {cert} {key} {ca}\n")));
    wait_for(&server, &["private.skydns.local", "A"], "10.6.0.1");
    // Without a client certificate, etcd refuses the connection: nothing is listed.
    let anonymous = TestServer::start(&corefile(&etcd, &format!("  tls {ca}\n")));
    std::thread::sleep(Duration::from_secs(1));
    let refused = anonymous.dig(&["private.skydns.local", "A"]);
    assert!(refused.contains("status: SERVFAIL"), "{refused}");
}

#[test]
fn a_missing_tls_file_stops_the_start_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("Corefile");
    std::fs::write(
        &path,
        "skydns.local {\n etcd {\n  tls cert.pem key.pem ca.pem\n }\n}\n",
    )
    .unwrap();
    let e = clusterdns::config::Config::load(&path, 0)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("Corefile:3")
            && e.contains("etcd")
            && e.contains(&format!(
                "{}",
                Path::new(&dir.path().join("ca.pem")).display()
            )),
        "{e}"
    );
}
