//! `route53`: hosted zones listed from moto's Route 53 (the AWS API mock, from PyPI, set up with
//! boto3: `tests/data/route53/zone.py`), served, refreshed, paged, and several under one name.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use crate::harness::{TestServer, free_port};

/// The Python environment with moto and boto3 (`scripts/test` makes it).
fn venv() -> PathBuf {
    std::env::var_os("CLUSTERDNS_MOTO")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/target/moto")))
}

struct Moto {
    child: Child,
    endpoint: String,
}

impl Moto {
    fn start() -> Self {
        let port = free_port();
        let child = Command::new(venv().join("bin/moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server runs (scripts/test installs it in target/moto)");
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto_server never listened");
            std::thread::sleep(Duration::from_millis(100));
        }
        Self {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        }
    }

    /// `zone.py` with these arguments: what it printed, as JSON.
    fn zone_py(&self, args: &[&str]) -> serde_json::Value {
        let out = Command::new(venv().join("bin/python"))
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/data/route53/zone.py"
            ))
            .arg(&self.endpoint)
            .args(args)
            .output()
            .expect("the moto environment's python runs");
        assert!(out.status.success(), "zone.py {args:?}: {out:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        if text.trim().is_empty() {
            return serde_json::Value::Null;
        }
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The zone's ID, and the key allowed to read it.
struct Zone {
    id: String,
    key: String,
    secret: String,
}

fn create(moto: &Moto) -> Zone {
    let v = moto.zone_py(&["create"]);
    let s = |k: &str| v[k].as_str().unwrap().to_string();
    Zone {
        id: s("zone"),
        key: s("key"),
        secret: s("secret"),
    }
}

fn answer(server: &TestServer, name: &str, qtype: RecordType) -> (ResponseCode, Vec<String>) {
    let m = server.query(name, qtype);
    let mut answers: Vec<String> = m.answers().iter().map(|r| r.data().to_string()).collect();
    answers.sort();
    (m.response_code(), answers)
}

fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(Instant::now() < deadline, "{what}: not so after 20s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn ok(values: &[&str]) -> (ResponseCode, Vec<String>) {
    (
        ResponseCode::NoError,
        values.iter().map(|s| s.to_string()).collect(),
    )
}

#[test]
fn a_hosted_zone_is_served_paged_and_refreshed() {
    let moto = Moto::start();
    let zone = create(&moto);
    let server = TestServer::start(&format!(
        "example.org:0 {{\n route53 example.org.:{} {{\n  aws_endpoint {}\n  aws_access_key {} {}\n  refresh 1s\n }}\n}}\n",
        zone.id, moto.endpoint, zone.key, zone.secret
    ));
    eventually("the zone is listed", || {
        answer(&server, "www.example.org.", RecordType::A) == ok(&["192.0.2.1"])
    });
    for (name, qtype, want) in [
        ("www.example.org.", RecordType::AAAA, ok(&["2001:db8::1"])),
        ("txt.example.org.", RecordType::TXT, ok(&["hello world"])),
        ("x.wild.example.org.", RecordType::A, ok(&["192.0.2.9"])),
        // A CNAME followed inside the zone.
        (
            "alias.example.org.",
            RecordType::A,
            ok(&["192.0.2.1", "www.example.org."]),
        ),
        (
            "mail.example.org.",
            RecordType::MX,
            ok(&["10 mx.example.org."]),
        ),
        // The first page and the second (1000 sets a page).
        (
            "host0000.bulk.example.org.",
            RecordType::A,
            ok(&["10.1.0.0"]),
        ),
        (
            "host1099.bulk.example.org.",
            RecordType::A,
            ok(&["10.1.4.75"]),
        ),
        (
            "nope.example.org.",
            RecordType::A,
            (ResponseCode::NXDomain, vec![]),
        ),
        ("www.example.org.", RecordType::TXT, ok(&[])),
    ] {
        assert_eq!(answer(&server, name, qtype), want, "{name} {qtype}");
    }
    let nx = server.query("nope.example.org.", RecordType::A);
    assert!(nx.authoritative());
    assert!(
        nx.name_servers()
            .iter()
            .any(|r| r.record_type() == RecordType::SOA),
        "{nx:?}"
    );
    // dig through the resolver library, over TCP too.
    let out = server.dig(&["+tcp", "+short", "www.example.org", "A"]);
    assert_eq!(out.trim(), "192.0.2.1");
    // A change in Route 53 is served after the next refresh.
    moto.zone_py(&[
        "upsert",
        &zone.id,
        &zone.key,
        &zone.secret,
        "www.example.org.",
        "A",
        "192.0.2.2",
    ]);
    eventually("the change is served", || {
        answer(&server, "www.example.org.", RecordType::A) == ok(&["192.0.2.2"])
    });
}

#[test]
fn credentials_come_from_a_profile_and_several_hosted_zones_answer_in_order() {
    let moto = Moto::start();
    let zone = create(&moto);
    let second = moto.zone_py(&["second", &zone.key, &zone.secret])["zone"]
        .as_str()
        .unwrap()
        .to_string();
    let dir = tempfile::tempdir().unwrap();
    let credentials = dir.path().join("credentials");
    std::fs::write(
        &credentials,
        format!(
            "[default]\naws_access_key_id = unused\naws_secret_access_key = unused\n\n\
             [dns]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            zone.key, zone.secret
        ),
    )
    .unwrap();
    let server = TestServer::start(&format!(
        "example.org:0 {{\n route53 example.org.:{} example.org.:{second} {{\n  aws_endpoint {}\n  \
         credentials dns {}\n  fallthrough\n }}\n whoami\n}}\n",
        zone.id,
        moto.endpoint,
        credentials.display()
    ));
    eventually("both zones are listed", || {
        answer(&server, "only2.example.org.", RecordType::A) == ok(&["192.0.2.22"])
    });
    // The first zone that has the name answers.
    assert_eq!(
        answer(&server, "www.example.org.", RecordType::A),
        ok(&["192.0.2.1"])
    );
    // NODATA in the first zone is its answer.
    assert_eq!(
        answer(&server, "www.example.org.", RecordType::TXT),
        ok(&[])
    );
    // Neither has the name: under `fallthrough`, whoami answers.
    let m = server.query("nope.example.org.", RecordType::A);
    assert_eq!(m.response_code(), ResponseCode::NoError);
    assert!(
        m.additionals()
            .iter()
            .any(|r| r.record_type() == RecordType::A),
        "{m:?}"
    );

    // A profile the file does not hold: nothing is listed, the zone is SERVFAIL.
    let missing = TestServer::start(&format!(
        "example.org:0 {{\n route53 example.org.:{} {{\n  aws_endpoint {}\n  credentials nope {}\n }}\n}}\n",
        zone.id,
        moto.endpoint,
        credentials.display()
    ));
    let until = Instant::now() + Duration::from_secs(1);
    while Instant::now() < until {
        assert_eq!(
            answer(&missing, "www.example.org.", RecordType::A).0,
            ResponseCode::ServFail
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The process, killed when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_web_identity_is_exchanged_with_sts_for_credentials() {
    // As EKS's IAM roles for service accounts set the pod up: a role and a token file.
    let moto = Moto::start();
    let zone = create(&moto);
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "eyJhbGciOiJSUzI1NiJ9.e30.c2lnbmF0dXJl\n").unwrap();
    let port = free_port();
    std::fs::write(
        dir.path().join("Corefile"),
        format!(
            "example.org:{port} {{\n bind 127.0.0.1\n route53 example.org.:{} {{\n  aws_endpoint {}\n }}\n}}\n",
            zone.id, moto.endpoint
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.path().join("log")).unwrap();
    let _server = Killed(
        Command::new(env!("CARGO_BIN_EXE_clusterdns"))
            .args(["-conf", "Corefile"])
            .current_dir(dir.path())
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_SHARED_CREDENTIALS_FILE")
            .env("HOME", dir.path())
            .env("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/coredns")
            .env("AWS_WEB_IDENTITY_TOKEN_FILE", &token)
            .env("AWS_ENDPOINT_URL_STS", &moto.endpoint)
            .env("RUST_LOG", "info")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("clusterdns runs"),
    );
    let dig = || {
        let out = Command::new("dig")
            .args([
                "@127.0.0.1",
                "-p",
                &port.to_string(),
                "+short",
                "+time=1",
                "+tries=1",
            ])
            .args(["www.example.org", "A"])
            .output()
            .expect("dig runs");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while dig() != "192.0.2.1" {
        assert!(
            Instant::now() < deadline,
            "never served: {}",
            std::fs::read_to_string(dir.path().join("log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
