//! The `kubernetes` directive on an API server that wants HTTPS and credentials, as real clusters
//! do: `tls CERT KEY CACERT` (client certificate authentication, the API server's CA), and the
//! in-cluster service account (`KUBERNETES_SERVICE_HOST`/`_PORT`, the token and CA at
//! /var/run/secrets/kubernetes.io/serviceaccount) when the block names no endpoint, kubeconfig
//! or manifests. Every check is a DNS query over UDP, and every wait is bounded.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;

use crate::apiserver::{ApiServer, TestPki, TlsOptions, namespace, service};
use crate::harness::{self, TestServer};
use crate::kube_api::{
    HTTP, Process, WAIT, ask, corefile, expect, free_port, holds_for, log_of, same, start,
};

use RecordType::{A, TXT};
use ResponseCode::{NoError, ServFail};

const WEB: &str = "web.prod.svc.cluster.local.";
/// The longest a spawned server gets to start and sync.
const SPAWNED_WAIT: Duration = Duration::from_secs(20);
/// How long a server that cannot authenticate is watched staying unsynced.
const UNSYNCED_FOR: Duration = Duration::from_secs(3);
/// Where a pod has its service account's credentials.
const SERVICE_ACCOUNT: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// A namespace and a ClusterIP service: `web.prod.svc.cluster.local` is 10.96.1.1.
fn small_cluster(api: &ApiServer) {
    api.apply(namespace("prod"));
    api.apply(service("prod", "web", "10.96.1.1", &[HTTP]));
}

fn tls_directive(cert: &Path, key: &Path, ca: &Path) -> String {
    format!("tls {} {} {}", cert.display(), key.display(), ca.display())
}

// ---- tls CERT KEY CACERT ----

#[test]
fn the_tls_directive_syncs_over_https_with_a_client_certificate_and_follows_changes() {
    let pki = TestPki::generate();
    let options = TlsOptions {
        client_cert: true,
        ..TlsOptions::default()
    };
    let api = ApiServer::start_tls(&pki, options);
    assert!(api.url().starts_with("https://127.0.0.1:"), "{}", api.url());
    small_cluster(&api);

    let server = start(
        &api,
        &tls_directive(&pki.client_cert, &pki.client_key, &pki.ca_cert),
    );
    expect(&server, WEB, A, NoError, &["A 10.96.1.1"]);
    // The watches are live over TLS too.
    api.apply(service("prod", "api", "10.96.1.2", &[HTTP]));
    expect(
        &server,
        "api.prod.svc.cluster.local.",
        A,
        NoError,
        &["A 10.96.1.2"],
    );
    assert!(
        api.requests().iter().any(|r| r.contains("watch=true")),
        "no watch request: {:?}",
        api.requests()
    );
    assert_eq!(api.tls_failures(), Vec::<String>::new());
}

/// A pod image without system CA certificates (as `FROM scratch` or distroless/static, where
/// CoreDNS runs) must still reach the API server: `tls` names the CA to trust. The system store
/// is emptied for the spawned binary through rustls-native-certs' `SSL_CERT_FILE` and
/// `SSL_CERT_DIR`.
#[test]
fn the_tls_directive_needs_no_system_ca_certificates() {
    let pki = TestPki::generate();
    let options = TlsOptions {
        client_cert: true,
        ..TlsOptions::default()
    };
    let api = ApiServer::start_tls(&pki, options);
    small_cluster(&api);
    let empty = tempfile::tempdir().unwrap();
    let no_certs = empty.path().join("ca-certificates.crt");
    std::fs::write(&no_certs, "").unwrap();
    // `env` runs the binary that `Spawned::start` appends, in this environment.
    let mut env = Command::new("env");
    env.env("SSL_CERT_FILE", &no_certs)
        .env("SSL_CERT_DIR", empty.path());
    let mut server = Spawned::start(
        &format!(
            "endpoint {}\n        {}",
            api.url(),
            tls_directive(&pki.client_cert, &pki.client_key, &pki.ca_cert)
        ),
        env,
    );
    let want = (NoError, vec!["A 10.96.1.1".to_owned()]);
    eventually_spawned(&mut server, "web resolves", |s| same(s.ask(WEB, A)?, &want));
    assert_eq!(api.tls_failures(), Vec::<String>::new());
}

/// Cluster names stay SERVFAIL (not synced; the startup timeout is 60 s) and the server keeps
/// answering, while no request gets through the TLS handshake: every handshake fails, for
/// `reason` (as rustls words it).
fn stays_unsynced(server: &TestServer, api: &ApiServer, what: &str, reason: &str) {
    assert!(
        api.wait_until(WAIT, |a| !a.tls_failures().is_empty()),
        "{what}: clusterdns never tried the API server"
    );
    holds_for(UNSYNCED_FOR, &format!("{what}: SERVFAIL"), || {
        same(ask(server, WEB, A).0, &ServFail)?;
        same(ask(server, "dns-version.cluster.local.", TXT).0, &ServFail)
    });
    assert_eq!(api.requests(), Vec::<String>::new(), "{what}");
    let failures = api.tls_failures();
    assert!(
        failures.iter().all(|f| f.contains(reason)),
        "{what}: handshakes failed otherwise than with {reason}: {failures:?}"
    );
}

#[test]
fn with_the_wrong_ca_or_a_client_certificate_of_another_ca_cluster_names_stay_servfail() {
    let pki = TestPki::generate();
    let other = TestPki::generate();
    let options = TlsOptions {
        client_cert: true,
        ..TlsOptions::default()
    };
    // clusterdns trusts another CA: it rejects the API server's certificate.
    let api = ApiServer::start_tls(&pki, options);
    small_cluster(&api);
    let server = TestServer::start(&corefile(
        &api,
        &tls_directive(&pki.client_cert, &pki.client_key, &other.ca_cert),
    ));
    // clusterdns presents a certificate of another CA: the API server rejects it.
    let api_2 = ApiServer::start_tls(&pki, options);
    small_cluster(&api_2);
    let server_2 = TestServer::start(&corefile(
        &api_2,
        &tls_directive(&other.client_cert, &other.client_key, &pki.ca_cert),
    ));

    // clusterdns aborts the handshake with an unknown_ca alert; the API server finds no
    // issuer for the client certificate.
    stays_unsynced(&server, &api, "wrong CA", "UnknownCA");
    stays_unsynced(
        &server_2,
        &api_2,
        "client certificate of another CA",
        "UnknownIssuer",
    );
}

// ---- in-cluster: the service account ----

/// Why the in-cluster tests cannot run here, if they cannot: they need root and `unshare` to
/// put the service account files at their fixed path in a private mount namespace.
fn cannot_mount_privately() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .unwrap_or("?")
        .to_owned();
    if euid != "0" {
        return Some(format!("not root (effective uid {euid})"));
    }
    let probe = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "true"])
        .stdin(Stdio::null())
        .output();
    match probe {
        Err(err) => Some(format!("cannot run unshare: {err}")),
        Ok(out) if !out.status.success() => Some(format!(
            "unshare --mount fails ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Ok(_) => None,
    }
}

/// Mounts a tmpfs on /var/run (on what it links to, /run on most systems) in a private mount
/// namespace, writes the service account files there, and runs the rest of the arguments:
/// `$1` the mount point, `$2` the token file, `$3` the CA file.
const IN_POD: &str = r#"set -e
mount -t tmpfs -o mode=755 clusterdns-test "$1"
sa=/var/run/secrets/kubernetes.io/serviceaccount
mkdir -p "$sa"
cp "$2" "$sa/token"
cp "$3" "$sa/ca.crt"
printf default > "$sa/namespace"
shift 3
exec "$@"
"#;

/// The `clusterdns` binary, serving cluster.local on a port of its own from a `kubernetes`
/// block with `options` (and a 60 s startup timeout). Killed when dropped; its output goes to
/// `out.log` in its working directory.
struct Spawned {
    process: Process,
    dir: tempfile::TempDir,
    port: u16,
}

impl Spawned {
    /// Runs `command`, a wrapper that ends by running the arguments after its own (as `env`
    /// does), with `BIN -conf Corefile` appended.
    fn start(options: &str, mut command: Command) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        std::fs::write(
            dir.path().join("Corefile"),
            format!(
                ".:{port} {{\n    kubernetes cluster.local {{\n        {options}\n        startup_timeout 60s\n    }}\n}}\n"
            ),
        )
        .unwrap();
        let out = std::fs::File::create(dir.path().join("out.log")).unwrap();
        let child = command
            .args([env!("CARGO_BIN_EXE_clusterdns"), "-conf", "Corefile"])
            .current_dir(dir.path())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("starting clusterdns");
        Spawned {
            process: Process(child),
            dir,
            port,
        }
    }

    /// As a pod runs it: the API server's address in the environment, the token and CA at the
    /// service account path (seen by it alone), a `kubernetes` block that names no endpoint,
    /// kubeconfig or manifests.
    fn in_cluster(api: &ApiServer, token: &Path, ca: &Path) -> Self {
        let mount_point =
            std::fs::canonicalize("/var/run").unwrap_or_else(|_| PathBuf::from("/var/run"));
        let mut unshare = Command::new("unshare");
        unshare
            .args([
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                IN_POD,
                "sh",
            ])
            .arg(&mount_point)
            .arg(token)
            .arg(ca)
            .env("KUBERNETES_SERVICE_HOST", api.addr.ip().to_string())
            .env("KUBERNETES_SERVICE_PORT", api.addr.port().to_string());
        Self::start("", unshare)
    }

    /// The answer to `name` `qtype`, or why there is none; fails if the process has exited.
    fn ask(
        &mut self,
        name: &str,
        qtype: RecordType,
    ) -> Result<(ResponseCode, Vec<String>), String> {
        if let Some(status) = self.process.0.try_wait().unwrap() {
            panic!("clusterdns exited: {status}\n{}", self.log());
        }
        let query = harness::query_bytes(name, qtype, None);
        let reply = harness::udp_wait(
            ([127, 0, 0, 1], self.port).into(),
            &query,
            Duration::from_millis(200),
        )
        .ok_or("no reply")?;
        let msg = Message::from_vec(&reply).map_err(|e| e.to_string())?;
        Ok((msg.response_code(), harness::rendered(&msg)))
    }

    fn log(&self) -> String {
        log_of(self.dir.path())
    }
}

/// Skips (with a message) where the in-cluster tests cannot run; see [`cannot_mount_privately`].
fn in_cluster_supported(test: &str) -> bool {
    match cannot_mount_privately() {
        None => true,
        Some(why) => {
            eprintln!(
                "SKIPPED {test}: it needs root and `unshare --mount` to place the service \
                 account files at {SERVICE_ACCOUNT} privately, and here: {why}"
            );
            false
        }
    }
}

#[test]
fn in_a_pod_the_service_account_token_and_ca_authenticate_to_the_api_server() {
    if !in_cluster_supported(
        "in_a_pod_the_service_account_token_and_ca_authenticate_to_the_api_server",
    ) {
        return;
    }
    let pki = TestPki::generate();
    let options = TlsOptions {
        bearer_token: true,
        ..TlsOptions::default()
    };
    let api = ApiServer::start_tls(&pki, options);
    small_cluster(&api);
    let mut pod = Spawned::in_cluster(&api, &pki.token_file, &pki.ca_cert);

    let want = (NoError, vec!["A 10.96.1.1".to_owned()]);
    eventually_spawned(&mut pod, "web resolves", |pod| {
        same(pod.ask(WEB, A)?, &want)
    });
    let authorizations = api.authorizations();
    let bearer = format!("Bearer {}", pki.token);
    assert!(!authorizations.is_empty());
    assert!(
        authorizations.iter().all(|a| a.as_deref() == Some(&bearer)),
        "requests without the service account token: {authorizations:?}"
    );
    assert_eq!(api.tls_failures(), Vec::<String>::new());
    // The files were the pod's alone.
    let host_token = std::fs::read_to_string(Path::new(SERVICE_ACCOUNT).join("token"));
    assert_ne!(host_token.ok(), Some(pki.token.clone()));

    // And the watch is live: a new service shows.
    api.apply(service("prod", "api", "10.96.1.2", &[HTTP]));
    let want = (NoError, vec!["A 10.96.1.2".to_owned()]);
    eventually_spawned(&mut pod, "api resolves", |pod| {
        same(pod.ask("api.prod.svc.cluster.local.", A)?, &want)
    });
}

#[test]
fn in_a_pod_with_a_token_the_api_server_rejects_cluster_names_stay_servfail() {
    if !in_cluster_supported(
        "in_a_pod_with_a_token_the_api_server_rejects_cluster_names_stay_servfail",
    ) {
        return;
    }
    let pki = TestPki::generate();
    let other = TestPki::generate();
    let options = TlsOptions {
        bearer_token: true,
        ..TlsOptions::default()
    };
    let api = ApiServer::start_tls(&pki, options);
    small_cluster(&api);
    let mut pod = Spawned::in_cluster(&api, &other.token_file, &pki.ca_cert);

    eventually_spawned(&mut pod, "clusterdns serves", |pod| {
        pod.ask(WEB, A).map(drop)
    });
    assert!(
        api.wait_until(WAIT, |a| !a.requests().is_empty()),
        "clusterdns never asked the API server\n{}",
        pod.log()
    );
    holds_for(UNSYNCED_FOR, "SERVFAIL", || {
        same(pod.ask(WEB, A)?.0, &ServFail)
    });
    let wrong = format!("Bearer {}", other.token);
    assert!(
        api.authorizations()
            .iter()
            .all(|a| a.as_deref() == Some(&wrong)),
        "{:?}",
        api.authorizations()
    );
    assert!(pod.log().contains("401"), "{}", pod.log());
}

/// Polls `check` on a spawned server until it passes, for at most [`SPAWNED_WAIT`]; fails with
/// its last complaint and the server's log.
fn eventually_spawned(
    pod: &mut Spawned,
    what: &str,
    mut check: impl FnMut(&mut Spawned) -> Result<(), String>,
) {
    let deadline = Instant::now() + SPAWNED_WAIT;
    loop {
        let last = match check(pod) {
            Ok(()) => return,
            Err(last) => last,
        };
        assert!(
            Instant::now() < deadline,
            "{what}: not so after {SPAWNED_WAIT:?}; last: {last}\n{}",
            pod.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
