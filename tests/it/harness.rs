//! Starts the real server on loopback sockets and talks DNS to it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};

/// How long a client waits for an answer before the test fails.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(2);

/// The test data directory (`tests/data`).
pub fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

/// A running server; it stops when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    /// Every address served (`bind`), in order; the wildcard shows as 127.0.0.1.
    pub listening: Vec<SocketAddr>,
    /// The HTTP endpoints (`health`, `ready`, `prometheus`), in address order.
    pub http: Vec<SocketAddr>,
    _dir: tempfile::TempDir,
    runtime: Option<tokio::runtime::Runtime>,
}

impl TestServer {
    /// Serves `corefile` (`DATA` stands for the test data directory; blocks should use port 0).
    pub fn start(corefile: &str) -> Self {
        Self::start_with(corefile, clusterdns::server::TcpOptions::default())
    }

    pub fn start_with(corefile: &str, tcp: clusterdns::server::TcpOptions) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let text = corefile.replace("DATA", data_dir().to_str().unwrap());
        let path = dir.path().join("Corefile");
        std::fs::write(&path, text).unwrap();
        let config = clusterdns::config::Config::load(&path, 0).unwrap();
        let assembly = clusterdns::assemble(&config).unwrap();
        let listeners =
            clusterdns::server::bind_with(assembly.blocks, 2, &config.listen_options()).unwrap();
        let http = clusterdns::server::bind_http(assembly.http).unwrap();
        let http_addrs = http.iter().map(|(l, _)| l.local_addr().unwrap()).collect();
        let listening: Vec<SocketAddr> = listeners
            .iter()
            .map(|l| {
                let a = l.local_addr().unwrap();
                if a.ip().is_unspecified() {
                    SocketAddr::from(([127, 0, 0, 1], a.port()))
                } else {
                    a
                }
            })
            .collect();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.spawn(async move {
            for task in assembly.background {
                tokio::spawn(task);
            }
            tokio::spawn(clusterdns::server::run_http(http));
            clusterdns::server::run(listeners, tcp).await.unwrap();
        });
        Self {
            addr: listening[0],
            listening,
            http: http_addrs,
            _dir: dir,
            runtime: Some(runtime),
        }
    }

    /// A UDP query with EDNS (1232 bytes), parsed.
    pub fn query(&self, name: &str, qtype: RecordType) -> Message {
        let bytes = udp(self.addr, &query_bytes(name, qtype, Some(1232))).expect("no reply");
        Message::from_vec(&bytes).unwrap()
    }

    /// The same over TCP.
    pub fn query_tcp(&self, name: &str, qtype: RecordType) -> Message {
        let bytes = tcp(self.addr, &[query_bytes(name, qtype, Some(1232))]).remove(0);
        Message::from_vec(&bytes).unwrap()
    }

    /// `dig` at this server (one try, 3 s) with `args`: what it printed.
    pub fn dig(&self, args: &[&str]) -> String {
        let out = std::process::Command::new("dig")
            .arg(format!("@{}", self.addr.ip()))
            .args(["-p", &self.addr.port().to_string(), "+tries=1", "+time=3"])
            .args(args)
            .output()
            .expect("dig runs (bind9-dnsutils)");
        assert!(out.status.success(), "dig {args:?}: {out:?}");
        String::from_utf8(out.stdout).expect("dig writes text")
    }
}

/// An HTTP GET: the status code and the body.
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// A query message: ID 0x1234, RD set, EDNS with `payload` when given.
pub fn query_message(name: &str, qtype: RecordType, payload: Option<u16>) -> Message {
    let mut m = Message::new();
    m.set_id(0x1234)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true);
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    if let Some(payload) = payload {
        let mut edns = Edns::new();
        edns.set_max_payload(payload);
        m.set_edns(edns);
    }
    m
}

pub fn query_bytes(name: &str, qtype: RecordType, payload: Option<u16>) -> Vec<u8> {
    query_message(name, qtype, payload).to_vec().unwrap()
}

/// A port free on 127.0.0.1 for both UDP and TCP.
pub fn free_port() -> u16 {
    for _ in 0..50 {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no port free for both UDP and TCP");
}

/// Sends one datagram and waits for one back; `None` if none comes within the timeout.
pub fn udp(addr: SocketAddr, bytes: &[u8]) -> Option<Vec<u8>> {
    udp_wait(addr, bytes, REPLY_TIMEOUT)
}

pub fn udp_wait(addr: SocketAddr, bytes: &[u8], wait: Duration) -> Option<Vec<u8>> {
    let local = if addr.is_ipv6() {
        "[::1]:0"
    } else {
        "127.0.0.1:0"
    };
    let socket = UdpSocket::bind(local).unwrap();
    socket.set_read_timeout(Some(wait)).unwrap();
    socket.send_to(bytes, addr).unwrap();
    let mut buf = vec![0; 65535];
    let (len, _) = socket.recv_from(&mut buf).ok()?;
    buf.truncate(len);
    Some(buf)
}

/// Sends several queries on one TCP connection (pipelined) and reads one response each.
pub fn tcp(addr: SocketAddr, queries: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
    let mut out = Vec::new();
    for q in queries {
        out.extend_from_slice(&(q.len() as u16).to_be_bytes());
        out.extend_from_slice(q);
    }
    stream.write_all(&out).unwrap();
    queries
        .iter()
        .map(|_| {
            let mut len = [0u8; 2];
            stream.read_exact(&mut len).unwrap();
            let mut buf = vec![0; usize::from(u16::from_be_bytes(len))];
            stream.read_exact(&mut buf).unwrap();
            buf
        })
        .collect()
}

/// The answer records of a response, each as `TYPE DATA`, sorted.
pub fn rendered(m: &Message) -> Vec<String> {
    let mut out: Vec<String> = m
        .answers()
        .iter()
        .map(|r| format!("{} {}", r.record_type(), r.data()))
        .collect();
    out.sort();
    out
}

/// The public key of a `dnssec-keygen` key file (`K...key`), as a trust anchor's
/// `static-key` value: `FLAGS 3 ALGORITHM "BASE64"`.
pub fn static_key(key_file: &Path) -> String {
    let text = std::fs::read_to_string(key_file).unwrap();
    let fields: Vec<&str> = text
        .lines()
        .find(|l| !l.starts_with(';'))
        .unwrap()
        .split_whitespace()
        .collect();
    format!("{} 3 {} \"{}\"", fields[3], fields[5], fields[6..].concat())
}

/// `dnssec-keygen ARGS` run in `dir`: the base name of the key files it made.
pub fn keygen(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("dnssec-keygen")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("dnssec-keygen runs (bind9-utils)");
    assert!(out.status.success(), "dnssec-keygen {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// `delv` asking `server` for `name` of `qtype`, with the trust anchors in `dir/anchors` and
/// `root` as its root: what it printed, both streams.
pub fn delv(server: &TestServer, dir: &Path, root: &str, name: &str, qtype: &str) -> String {
    let out = std::process::Command::new("delv")
        .current_dir(dir)
        .arg(format!("@{}", server.addr.ip()))
        .args(["-p", &server.addr.port().to_string(), "-a", "anchors"])
        .arg(format!("+root={root}"))
        .args([name, qtype])
        .output()
        .expect("delv runs (bind9-dnsutils)");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
