//! Upstream resolvers for the forwarding tests: Knot DNS serving a test zone on a loopback
//! port, and a scripted fake for protocol details Knot will not misbehave on.

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;

use crate::harness::{query_bytes, udp_wait};

/// The test zone: a name, an IPv6 name, 100 addresses at one name (too many for 512 bytes),
/// and an SOA with a 60 s negative TTL.
pub fn test_zone() -> String {
    let mut zone = String::from(
        "$ORIGIN example.test.\n$TTL 300\n\
         @ SOA ns.example.test. admin.example.test. 1 3600 600 86400 60\n\
         @ NS ns\nns A 192.0.2.53\nwww A 192.0.2.1\nwww6 AAAA 2001:db8::1\n\
         alias CNAME www\nlocal A 127.0.0.1\n",
    );
    for i in 1..=100 {
        zone.push_str(&format!("big A 192.0.2.{i}\n"));
    }
    zone
}

/// A port free for both UDP and TCP on 127.0.0.1.
pub use crate::harness::free_port;

/// `knotd` serving `example.test` on 127.0.0.1; stopped when dropped.
pub struct Knot {
    pub addr: SocketAddr,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Knot {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let d = dir.path().display();
        std::fs::create_dir(dir.path().join("db")).unwrap();
        std::fs::write(dir.path().join("example.test.zone"), test_zone()).unwrap();
        let conf = format!(
            "server:\n    rundir: \"{d}\"\n    listen: 127.0.0.1@{port}\n\
             database:\n    storage: \"{d}/db\"\n\
             log:\n  - target: stderr\n    any: warning\n\
             template:\n  - id: default\n    storage: \"{d}\"\n    file: \"%s.zone\"\n\
             zone:\n  - domain: example.test\n"
        );
        let conf_path = dir.path().join("knot.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let child = Command::new(knotd())
            .arg("-c")
            .arg(&conf_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("knotd runs (scripts/test installs the knot package)");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let knot = Self {
            addr,
            child,
            _dir: dir,
        };
        let start = Instant::now();
        let probe = query_bytes("www.example.test.", RecordType::A, None);
        while udp_wait(addr, &probe, Duration::from_millis(200)).is_none() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "knotd did not start"
            );
        }
        knot
    }
}

impl Drop for Knot {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn knotd() -> &'static str {
    ["/usr/sbin/knotd", "/usr/bin/knotd"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or("knotd")
}

/// A scripted upstream's answer to `query`: its ID and question, RD and RA set, and, when
/// given, one A record (address, TTL) under the name asked.
pub fn answer(query: &Message, address: Option<(std::net::Ipv4Addr, u32)>) -> Vec<u8> {
    use hickory_proto::op::MessageType;
    use hickory_proto::rr::{RData, Record, rdata::A};
    let mut m = Message::new();
    m.set_id(query.id())
        .set_message_type(MessageType::Response)
        .set_recursion_desired(true)
        .set_recursion_available(true);
    m.add_queries(query.queries().to_vec());
    if let (Some((ip, ttl)), Some(q)) = (address, query.queries().first()) {
        m.add_answer(Record::from_rdata(q.name().clone(), ttl, RData::A(A(ip))));
    }
    m.to_vec().unwrap()
}

/// A scripted upstream on 127.0.0.1 (UDP and TCP on one port), run on its own threads until
/// dropped. `udp` gets each datagram and returns the datagrams to send back; `tcp` gets each
/// TCP query and returns the reply.
pub struct Fake {
    pub addr: SocketAddr,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Fake {
    pub fn start(
        mut udp: impl FnMut(&Message) -> Vec<Vec<u8>> + Send + 'static,
        mut tcp: impl FnMut(&Message) -> Option<Vec<u8>> + Send + 'static,
    ) -> (Self, std::sync::mpsc::Receiver<(SocketAddr, u16)>) {
        use std::io::{Read, Write};
        use std::sync::atomic::Ordering;
        let port = free_port();
        let socket = UdpSocket::bind(("127.0.0.1", port)).unwrap();
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        listener.set_nonblocking(true).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (seen_tx, seen) = std::sync::mpsc::channel();
        let stop_udp = stop.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while !stop_udp.load(Ordering::Relaxed) {
                let Ok((len, from)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                let Ok(query) = Message::from_vec(&buf[..len]) else {
                    continue;
                };
                let _ = seen_tx.send((from, query.id()));
                for reply in udp(&query) {
                    let _ = socket.send_to(&reply, from);
                }
            }
        });
        let stop_tcp = stop.clone();
        std::thread::spawn(move || {
            while !stop_tcp.load(Ordering::Relaxed) {
                let Ok((mut stream, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                stream.set_nonblocking(false).unwrap();
                stream
                    .set_read_timeout(Some(Duration::from_secs(2)))
                    .unwrap();
                let mut len = [0u8; 2];
                if stream.read_exact(&mut len).is_err() {
                    continue;
                }
                let mut query = vec![0; usize::from(u16::from_be_bytes(len))];
                if stream.read_exact(&mut query).is_err() {
                    continue;
                }
                let Ok(query) = Message::from_vec(&query) else {
                    continue;
                };
                if let Some(reply) = tcp(&query) {
                    let mut out = (reply.len() as u16).to_be_bytes().to_vec();
                    out.extend_from_slice(&reply);
                    let _ = stream.write_all(&out);
                }
            }
        });
        (
            Self {
                addr: SocketAddr::from(([127, 0, 0, 1], port)),
                stop,
            },
            seen,
        )
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}
