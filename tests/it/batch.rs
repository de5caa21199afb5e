//! The UDP loop under load: a thread per `SO_REUSEPORT` socket answering `recvmmsg` batches
//! with one `sendmmsg`. Bursts from many client sockets each get every reply, once, at the
//! socket that asked; queries of every size up to the largest datagram are answered; and the
//! `-workers` flag sets how many sockets and threads serve a port.
//!
//! Every wait is bounded; every process started is killed when its test ends.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::RecordType;

use crate::cli::{Process, free_port};
use crate::harness::{TestServer, data_dir, query_bytes, rendered, tcp, udp};

/// How many queries each client socket sends without waiting.
const BURST: usize = 200;
/// How long a burst may take to be answered, and a process to start or exit.
const DEADLINE: Duration = Duration::from_secs(15);
/// After the last expected reply: how long to wait for one too many.
const GRACE: Duration = Duration::from_millis(300);
/// With replies missing: how long after the last one nothing more is expected.
const IDLE: Duration = Duration::from_secs(1);

const COREFILE: &str = ".:0 {
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        manifests DATA/cluster.yaml
        pods insecure
    }
}
";

const WEB: &str = "web.prod.svc.cluster.local.";

/// What a burst asks, in turn: plain answers (the fast path), NXDOMAIN, SRV, PTR, names the
/// full path answers (endpoints, pods, ANY), a truncated answer, and a refused name. Names
/// are sent in the case written here, which the replies must keep.
const MIX: &[(&str, RecordType, Option<u16>)] = &[
    (WEB, RecordType::A, Some(1232)),
    ("WEB.Prod.svc.cluster.local.", RecordType::AAAA, None),
    ("kubernetes.default.svc.cluster.local.", RecordType::A, None),
    (
        "kube-dns.kube-system.svc.cluster.local.",
        RecordType::A,
        Some(4096),
    ),
    (
        "nosuch.default.svc.cluster.local.",
        RecordType::A,
        Some(1232),
    ),
    ("nosuch.svc.cluster.local.", RecordType::AAAA, None),
    (
        "_http._tcp.web.prod.svc.cluster.local.",
        RecordType::SRV,
        Some(1232),
    ),
    (
        "_dns._udp.kube-dns.kube-system.svc.cluster.local.",
        RecordType::SRV,
        None,
    ),
    ("1.0.96.10.in-addr.arpa.", RecordType::PTR, None),
    (
        "sidecar-svc-headless.default.svc.cluster.local.",
        RecordType::A,
        Some(1232),
    ),
    ("db-0.db.prod.svc.cluster.local.", RecordType::A, None),
    ("10-36-0-7.default.pod.cluster.local.", RecordType::A, None),
    (WEB, RecordType::ANY, Some(1232)),
    ("big.prod.svc.cluster.local.", RecordType::A, None),
    ("big.prod.svc.cluster.local.", RecordType::A, Some(1232)),
    ("example.com.", RecordType::A, None),
];

fn parse(bytes: &[u8]) -> Message {
    Message::from_vec(bytes).unwrap_or_else(|e| panic!("not a DNS message ({e}): {bytes:02x?}"))
}

/// Where the question of a message ends.
fn question_end(m: &[u8]) -> usize {
    let mut at = 12;
    while m[at] != 0 {
        at += 1 + usize::from(m[at]);
    }
    at + 5
}

/// Whether this machine can talk IPv6 on loopback (the server then listens on `[::]`).
fn ipv6_loopback() -> bool {
    UdpSocket::bind((Ipv6Addr::LOCALHOST, 0)).is_ok()
}

/// The answers one at a time, and the known ones checked: what each reply of a burst must be
/// (all but its ID).
fn references(server: SocketAddr) -> Vec<Vec<u8>> {
    let references: Vec<Vec<u8>> = MIX
        .iter()
        .map(|&(name, qtype, payload)| {
            udp(server, &query_bytes(name, qtype, payload))
                .unwrap_or_else(|| panic!("no answer for {name} {qtype}"))
        })
        .collect();
    let by_name = |name: &str, qtype: RecordType| {
        let i = MIX
            .iter()
            .position(|&(n, t, _)| n == name && t == qtype)
            .unwrap();
        parse(&references[i])
    };
    assert_eq!(rendered(&by_name(WEB, RecordType::A)), ["A 10.96.12.34"]);
    assert_eq!(
        rendered(&by_name("WEB.Prod.svc.cluster.local.", RecordType::AAAA)),
        ["AAAA fd00:10:96::1234"]
    );
    assert_eq!(
        rendered(&by_name(
            "kubernetes.default.svc.cluster.local.",
            RecordType::A
        )),
        ["A 10.96.0.1"]
    );
    assert_eq!(
        rendered(&by_name(
            "kube-dns.kube-system.svc.cluster.local.",
            RecordType::A
        )),
        ["A 10.96.0.10"]
    );
    assert_eq!(
        by_name("nosuch.default.svc.cluster.local.", RecordType::A).response_code(),
        ResponseCode::NXDomain
    );
    assert_eq!(
        rendered(&by_name(
            "_http._tcp.web.prod.svc.cluster.local.",
            RecordType::SRV
        )),
        ["SRV 0 50 80 web.prod.svc.cluster.local."]
    );
    assert_eq!(
        rendered(&by_name("1.0.96.10.in-addr.arpa.", RecordType::PTR)),
        ["PTR kubernetes.default.svc.cluster.local."]
    );
    assert_eq!(
        rendered(&by_name(
            "sidecar-svc-headless.default.svc.cluster.local.",
            RecordType::A
        )),
        ["A 10.36.0.0", "A 10.36.0.1", "A 10.39.0.1"]
    );
    assert_eq!(
        rendered(&by_name("db-0.db.prod.svc.cluster.local.", RecordType::A)),
        ["A 10.44.0.10"]
    );
    assert!(by_name("big.prod.svc.cluster.local.", RecordType::A).truncated());
    assert_eq!(
        by_name("example.com.", RecordType::A).response_code(),
        ResponseCode::ServFail
    );
    references
}

/// One client socket's burst: the queries it sent by ID (index into [`MIX`] and the bytes)
/// and the replies it got.
struct Client {
    local: SocketAddr,
    sent: BTreeMap<u16, (usize, Vec<u8>)>,
    replies: Vec<(SocketAddr, Vec<u8>)>,
}

/// Who sends a burst's queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Senders {
    /// One socket after the other: each sends all its queries, then gets its replies before
    /// the next one starts. At most one socket's burst waits in the server's receive buffers,
    /// which hold about 256 small datagrams at the system's default size.
    InTurn,
    /// One thread, a query from each socket in turn: every batch the server reads mixes the
    /// sockets.
    Interleaved,
    /// A thread per socket, all at once.
    ThreadEach,
}

/// What a burst found.
struct Burst {
    queries: usize,
    /// Anything wrong with the replies that came: a reply from elsewhere, to another socket's
    /// query, with another question or answer, or a second one.
    problems: Vec<String>,
    /// Queries that got no reply.
    missing: Vec<String>,
    /// Datagrams the kernel dropped for a full receive buffer, at the server's sockets and at
    /// the clients', during the burst.
    dropped_at_server: u64,
    dropped_at_clients: u64,
    took: Duration,
}

impl Burst {
    /// Fails unless every reply that came is right, and every query the server received got
    /// one: the queries without a reply are exactly the datagrams the kernel dropped at the
    /// server's full receive buffers (counted in `/proc/net/udp*`), which no server loop sees.
    fn assert_served(&self) {
        assert!(
            self.problems.is_empty() && self.dropped_at_clients == 0,
            "wrong replies (and {} dropped at the clients' sockets):\n{}",
            self.dropped_at_clients,
            self.problems[..self.problems.len().min(10)].join("\n")
        );
        assert_eq!(
            self.missing.len() as u64,
            self.dropped_at_server,
            "queries without a reply, and datagrams the kernel dropped at the server's sockets; \
             the first without one:\n{}",
            self.missing[..self.missing.len().min(10)].join("\n")
        );
        assert!(
            self.missing.len() < self.queries,
            "not one of {} queries answered",
            self.queries
        );
        if !self.missing.is_empty() {
            eprintln!(
                "{} of {} queries dropped by the kernel at the server's full receive buffers \
                 (the rest answered, in {:?})",
                self.dropped_at_server, self.queries, self.took
            );
        }
    }

    /// Fails unless every query got its one right reply.
    fn assert_complete(&self) {
        assert!(
            self.problems.is_empty() && self.missing.is_empty(),
            "a burst of {} queries (in {:?}): {} wrong replies, {} queries without a reply; \
             the kernel dropped {} datagrams at the server's sockets and {} at the clients'\n{}",
            self.queries,
            self.took,
            self.problems.len(),
            self.missing.len(),
            self.dropped_at_server,
            self.dropped_at_clients,
            self.problems
                .iter()
                .chain(&self.missing)
                .take(10)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

/// Fires `per_client` queries from each of the `clients` sockets (bound to the addresses
/// given) at `port` without waiting for replies, then checks the replies: each at the socket
/// that asked, from the server's address, once, with its ID and question (case kept), and the
/// answer `references` has for it.
fn burst(
    port: u16,
    clients: &[IpAddr],
    references: &[Vec<u8>],
    per_client: usize,
    senders: Senders,
) -> Burst {
    let started = Instant::now();
    let server_drops = socket_drops(port);
    let sockets: Vec<(UdpSocket, SocketAddr)> = clients
        .iter()
        .map(|&ip| {
            let socket = UdpSocket::bind((ip, 0)).unwrap();
            // Room for every reply, so the test measures the server, not this socket.
            let _ = socket2::SockRef::from(&socket).set_recv_buffer_size(4 << 20);
            (socket, SocketAddr::new(ip, port))
        })
        .collect();
    let reader = |k: usize| {
        let socket = sockets[k].0.try_clone().unwrap();
        std::thread::spawn(move || collect(socket, per_client))
    };
    // Each socket's reader starts before its first query goes.
    let readers: Vec<_> = (0..sockets.len())
        .map(|k| (senders != Senders::InTurn).then(|| reader(k)))
        .collect();
    let mut replies: Vec<Vec<(SocketAddr, Vec<u8>)>> = vec![Vec::new(); sockets.len()];
    // Query `i` of socket `k`: IDs differ across sockets too, so a reply sent to the wrong
    // socket shows.
    let query = |k: usize, i: usize| {
        let id = (k * 1000 + i) as u16;
        let which = (i + k) % MIX.len();
        let (name, qtype, payload) = MIX[which];
        let mut q = query_bytes(name, qtype, payload);
        q[..2].copy_from_slice(&id.to_be_bytes());
        (id, which, q)
    };
    let mut sent: Vec<BTreeMap<u16, (usize, Vec<u8>)>> = vec![BTreeMap::new(); sockets.len()];
    match senders {
        Senders::InTurn => {
            for (k, (socket, server)) in sockets.iter().enumerate() {
                let reader = reader(k);
                for i in 0..per_client {
                    let (id, which, q) = query(k, i);
                    socket.send_to(&q, server).unwrap();
                    sent[k].insert(id, (which, q));
                }
                replies[k] = reader.join().unwrap();
            }
        }
        Senders::Interleaved => {
            for i in 0..per_client {
                for (k, (socket, server)) in sockets.iter().enumerate() {
                    let (id, which, q) = query(k, i);
                    socket.send_to(&q, server).unwrap();
                    sent[k].insert(id, (which, q));
                }
            }
        }
        Senders::ThreadEach => {
            sent = std::thread::scope(|scope| {
                let threads: Vec<_> = sockets
                    .iter()
                    .enumerate()
                    .map(|(k, (socket, server))| {
                        scope.spawn(move || {
                            let mut sent = BTreeMap::new();
                            for i in 0..per_client {
                                let (id, which, q) = query(k, i);
                                socket.send_to(&q, server).unwrap();
                                sent.insert(id, (which, q));
                            }
                            sent
                        })
                    })
                    .collect();
                threads.into_iter().map(|t| t.join().unwrap()).collect()
            });
        }
    }
    for (k, reader) in readers.into_iter().enumerate() {
        if let Some(reader) = reader {
            replies[k] = reader.join().unwrap();
        }
    }
    let results: Vec<Client> = sockets
        .iter()
        .zip(sent)
        .zip(replies)
        .map(|(((socket, _), sent), replies)| Client {
            local: socket.local_addr().unwrap(),
            sent,
            replies,
        })
        .collect();
    let mut problems = Vec::new();
    let mut missing = Vec::new();
    for client in &results {
        let server = SocketAddr::new(client.local.ip(), port);
        let mut answered: BTreeMap<u16, usize> = BTreeMap::new();
        for (from, reply) in &client.replies {
            if *from != server {
                problems.push(format!("{}: a reply from {from}", client.local));
            }
            if reply.len() < 12 {
                problems.push(format!(
                    "{}: a reply of {} bytes",
                    client.local,
                    reply.len()
                ));
                continue;
            }
            let id = u16::from_be_bytes([reply[0], reply[1]]);
            *answered.entry(id).or_default() += 1;
            let Some((which, query)) = client.sent.get(&id) else {
                problems.push(format!(
                    "{}: a reply to ID {id}, not asked here",
                    client.local
                ));
                continue;
            };
            let (name, qtype, _) = MIX[*which];
            let m = parse(reply);
            if m.message_type() != MessageType::Response {
                problems.push(format!(
                    "{}: ID {id} ({name} {qtype}): not a response",
                    client.local
                ));
            }
            let end = question_end(query);
            if reply.get(12..end) != Some(&query[12..end]) {
                problems.push(format!(
                    "{}: ID {id}: question {:?}, asked {name} {qtype}",
                    client.local,
                    m.queries()
                ));
            }
            if reply[2..] != references[*which][2..] {
                problems.push(format!(
                    "{}: ID {id} ({name} {qtype}): got\n{m}\nexpected\n{}",
                    client.local,
                    parse(&references[*which])
                ));
            }
        }
        for (id, (which, _)) in &client.sent {
            let (name, qtype, _) = MIX[*which];
            match answered.get(id).copied().unwrap_or(0) {
                0 => missing.push(format!(
                    "{}: ID {id} ({name} {qtype}): no reply",
                    client.local
                )),
                1 => {}
                n => problems.push(format!(
                    "{}: ID {id} ({name} {qtype}): {n} replies",
                    client.local
                )),
            }
        }
    }
    Burst {
        queries: per_client * clients.len(),
        problems,
        missing,
        dropped_at_server: socket_drops(port).saturating_sub(server_drops),
        dropped_at_clients: results.iter().map(|c| socket_drops(c.local.port())).sum(),
        took: started.elapsed(),
    }
}

/// How many datagrams the kernel dropped at the UDP sockets bound to local `port` (the
/// `drops` column of `/proc/net/udp` and `/proc/net/udp6`; 0 where there is none).
fn socket_drops(port: u16) -> u64 {
    let port = format!(":{port:04X}");
    ["/proc/net/udp", "/proc/net/udp6"]
        .iter()
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .flat_map(|table| {
            table
                .lines()
                .skip(1)
                .filter_map(|line| {
                    let fields: Vec<&str> = line.split_whitespace().collect();
                    let local = fields.get(1)?;
                    local
                        .ends_with(&port)
                        .then(|| fields.last()?.parse::<u64>().ok())?
                })
                .collect::<Vec<_>>()
        })
        .sum()
}

/// Reads replies until `expected` came (and then for `GRACE` more, to catch extra ones),
/// none came for `IDLE`, or the deadline passes.
fn collect(socket: UdpSocket, expected: usize) -> Vec<(SocketAddr, Vec<u8>)> {
    let deadline = Instant::now() + DEADLINE;
    let mut replies = Vec::new();
    let mut buf = vec![0; 65535];
    let mut extra_until = None;
    let mut last = Instant::now();
    loop {
        let now = Instant::now();
        let until = extra_until.unwrap_or(last + IDLE).min(deadline);
        if now >= until {
            return replies;
        }
        socket
            .set_read_timeout(Some((until - now).min(Duration::from_millis(100))))
            .unwrap();
        if let Ok((len, from)) = socket.recv_from(&mut buf) {
            replies.push((from, buf[..len].to_vec()));
            last = Instant::now();
            if replies.len() >= expected && extra_until.is_none() {
                extra_until = Some(Instant::now() + GRACE);
            }
        }
    }
}

/// The client addresses of a burst: 8 sockets, half on `::1` when the machine has IPv6.
fn client_ips(count: usize) -> Vec<IpAddr> {
    let v6 = ipv6_loopback();
    (0..count)
        .map(|i| {
            if v6 && i % 2 == 1 {
                IpAddr::V6(Ipv6Addr::LOCALHOST)
            } else {
                IpAddr::V4(Ipv4Addr::LOCALHOST)
            }
        })
        .collect()
}

/// Eight sockets, IPv4 and IPv6, one after the other: each fires 200 queries without
/// waiting, and every one gets its one right reply.
#[test]
fn bursts_from_many_sockets_get_every_reply_once_at_the_socket_that_asked() {
    let server = TestServer::start(COREFILE);
    let references = references(server.addr);
    let clients = client_ips(8);
    // Twice: the second round finds the workers' buffers as the first left them.
    for _ in 0..2 {
        burst(
            server.addr.port(),
            &clients,
            &references,
            BURST,
            Senders::InTurn,
        )
        .assert_complete();
    }
}

/// The eight bursts at once, from one thread and from a thread each: 1600 queries can fill
/// the server's receive buffers (SO_RCVBUF is left at the system default) before its workers
/// get a CPU, and the kernel drops the rest. Every reply must still be right and go to the
/// socket that asked, and every query the server received must get one.
#[test]
fn simultaneous_bursts_lose_only_what_the_kernel_dropped() {
    let server = TestServer::start(COREFILE);
    let references = references(server.addr);
    let clients = client_ips(8);
    for senders in [Senders::Interleaved, Senders::ThreadEach] {
        burst(server.addr.port(), &clients, &references, BURST, senders).assert_served();
    }
}

/// A query for `web.prod.svc.cluster.local. A` padded (RFC 7830) to exactly `size` bytes.
fn padded_query(id: u16, size: usize) -> Vec<u8> {
    let mut q = query_bytes(WEB, RecordType::A, None);
    q[..2].copy_from_slice(&id.to_be_bytes());
    q[11] = 1;
    let padding = size - q.len() - 15;
    // OPT: root, type 41, payload 1232, version 0, no flags, one padding option.
    q.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0]);
    q.extend_from_slice(&((padding + 4) as u16).to_be_bytes());
    q.extend_from_slice(&12u16.to_be_bytes());
    q.extend_from_slice(&(padding as u16).to_be_bytes());
    q.resize(size, 0);
    q
}

fn assert_web_answer(reply: &[u8], query: &[u8], what: &str) {
    let m = parse(reply);
    assert_eq!(reply[..2], query[..2], "{what}: ID");
    assert_eq!(m.response_code(), ResponseCode::NoError, "{what}:\n{m}");
    assert_eq!(rendered(&m), ["A 10.96.12.34"], "{what}:\n{m}");
    assert_eq!(m.queries()[0].name().to_ascii(), WEB, "{what}");
    assert!(m.extensions().is_some(), "{what}: no OPT in the reply");
}

#[test]
fn queries_of_every_size_up_to_the_largest_datagram_are_answered() {
    let server = TestServer::start(COREFILE);
    let smallest = query_bytes(WEB, RecordType::A, None).len() + 15;
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut sizes: Vec<usize> = (smallest..=1600).collect();
    sizes.extend((1600..65507).step_by(997));
    // Around 4000, around 60000, and the largest UDP payload over IPv4.
    sizes.extend([4000, 4096, 4097, 8192, 32768, 60000, 65000, 65507]);
    let mut buf = vec![0; 65535];
    for (i, &size) in sizes.iter().enumerate() {
        let q = padded_query(i as u16, size);
        assert_eq!(q.len(), size);
        socket.send_to(&q, server.addr).unwrap();
        let (len, _) = socket
            .recv_from(&mut buf)
            .unwrap_or_else(|e| panic!("no answer to a query of {size} bytes: {e}"));
        assert_web_answer(&buf[..len], &q, &format!("UDP, {size} bytes"));
    }
    // The same sizes over TCP (a message there is at most 65535 bytes).
    let queries: Vec<Vec<u8>> = [smallest, 512, 4000, 60000, 65535]
        .iter()
        .enumerate()
        .map(|(i, &size)| padded_query(0x7000 + i as u16, size))
        .collect();
    for (q, reply) in queries.iter().zip(tcp(server.addr, &queries)) {
        assert_web_answer(&reply, q, &format!("TCP, {} bytes", q.len()));
    }
}

/// A working directory with a Corefile serving the test cluster on `port`.
fn workdir(port: u16) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let corefile = COREFILE
        .replace(".:0", &format!(".:{port}"))
        .replace("DATA", data_dir().to_str().unwrap());
    std::fs::write(dir.path().join("Corefile"), corefile).unwrap();
    dir
}

#[test]
fn the_workers_flag_sets_the_udp_sockets_and_threads_per_port() {
    for (flag, workers) in [
        (vec!["-workers", "1"], 1),
        (vec!["-workers", "3"], 3),
        (vec!["--workers=2"], 2),
    ] {
        let port = free_port();
        let dir = workdir(port);
        let mut process = Process::spawn(dir.path(), &flag);
        process.first_answer(port, WEB);
        let server = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let references = references(server);
        let clients = client_ips(4);
        burst(port, &clients, &references, BURST, Senders::InTurn).assert_complete();
        burst(port, &clients, &references, BURST, Senders::Interleaved).assert_served();
        if cfg!(target_os = "linux") {
            let udp = format!("udp-{port}");
            let threads = process.threads();
            assert_eq!(
                threads.iter().filter(|t| **t == udp).count(),
                workers,
                "{flag:?}: threads {threads:?}"
            );
        }
    }
}

#[test]
fn a_workers_flag_that_is_not_a_count_exits_one_naming_it() {
    for args in [
        &["-workers", "0"][..],
        &["-workers", "x"],
        &["-workers=-1"],
        &["-workers", "1025"],
        &["-workers", ""],
        &["-workers"],
    ] {
        let port = free_port();
        let dir = workdir(port);
        let mut process = Process::spawn(dir.path(), args);
        let status = process.wait();
        let stderr = process.stderr();
        assert_eq!(status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.starts_with("clusterdns: "), "{args:?}: {stderr}");
        assert!(stderr.contains("-workers"), "{args:?}: {stderr}");
        // Nothing was bound.
        UdpSocket::bind(("127.0.0.1", port))
            .unwrap_or_else(|e| panic!("{args:?}: port {port} still bound: {e}"));
    }
}

/// For each of `port`'s UDP workers, a field of `/proc/PID/task/TID/schedstat`: 0, the
/// nanoseconds it ran; 2, how many times it was put on a CPU (a worker blocked in `recvmmsg`
/// runs once per wake-up).
fn schedstat(process: &Process, port: u16, field: usize) -> BTreeMap<String, u64> {
    let name = format!("udp-{port}");
    let tasks = std::fs::read_dir(format!("/proc/{}/task", process.pid())).unwrap();
    tasks
        .filter_map(|t| {
            let path = t.ok()?.path();
            let comm = std::fs::read_to_string(path.join("comm")).ok()?;
            (comm.trim() == name).then_some(())?;
            let stat = std::fs::read_to_string(path.join("schedstat")).ok()?;
            let runs = stat.split_whitespace().nth(field)?.parse().ok()?;
            Some((path.file_name()?.to_string_lossy().into_owned(), runs))
        })
        .collect()
}

/// How much of `field` (see [`schedstat`]) each worker gained while `load` ran, least first.
fn during(process: &Process, port: u16, field: usize, load: impl FnOnce()) -> Vec<u64> {
    let before = schedstat(process, port, field);
    load();
    let after = schedstat(process, port, field);
    let mut deltas: Vec<u64> = after
        .iter()
        .map(|(tid, runs)| runs - before.get(tid).copied().unwrap_or(0))
        .collect();
    deltas.sort_unstable();
    deltas
}

/// 400 queries from 16 sockets (16 different hashes), one at a time, each answered.
fn light_load(server: SocketAddr) {
    let clients: Vec<UdpSocket> = (0..16)
        .map(|_| {
            let s = UdpSocket::bind("127.0.0.1:0").unwrap();
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            s
        })
        .collect();
    let mut buf = [0u8; 2048];
    for i in 0..400u16 {
        let client = &clients[usize::from(i) % clients.len()];
        let mut q = query_bytes(WEB, RecordType::A, None);
        q[..2].copy_from_slice(&i.to_be_bytes());
        client.send_to(&q, server).unwrap();
        let (len, _) = client.recv_from(&mut buf).expect("an answer");
        assert_eq!(buf[..2], q[..2]);
        assert_eq!(parse(&buf[..len]).response_code(), ResponseCode::NoError);
    }
}

/// Four threads, four sockets each, sending queries without waiting for the answers (which
/// are left to overflow the clients' buffers) for half a second, 50,000 at most apiece.
fn heavy_load(server: SocketAddr) {
    let start = Instant::now();
    std::thread::scope(|scope| {
        for t in 0..4u16 {
            scope.spawn(move || {
                let clients: Vec<UdpSocket> = (0..4)
                    .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
                    .collect();
                let mut q = query_bytes(WEB, RecordType::A, None);
                for i in 0..50_000u16 {
                    if start.elapsed() > Duration::from_millis(500) {
                        break;
                    }
                    q[..2].copy_from_slice(&(t.wrapping_mul(50_000).wrapping_add(i)).to_be_bytes());
                    let _ = clients[usize::from(i) % 4].send_to(&q, server);
                }
            });
        }
    });
}

/// A light load is answered by one worker (the others are not woken for it), a heavy one by
/// all of them, and once it is over the queries are gathered on one worker again. (A light
/// round may catch a moment the machine is busy enough to spread the queries for half a
/// second: one of three rounds must show them on one worker.)
#[test]
fn one_worker_answers_a_light_load_and_every_worker_a_heavy_one() {
    if !cfg!(target_os = "linux") {
        return;
    }
    let port = free_port();
    let dir = workdir(port);
    let mut process = Process::spawn(dir.path(), &["-workers", "2"]);
    process.first_answer(port, WEB);
    let server = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let gathered = |what: &str| {
        let mut seen = Vec::new();
        for _ in 0..3 {
            let w = during(&process, port, 2, || light_load(server));
            assert_eq!(w.len(), 2, "{what}: two workers, {w:?}");
            // The idle worker wakes every 100 ms to look whether it should stop.
            if w[1] >= 400 && w[0] <= 40 {
                return;
            }
            seen.push(w);
            std::thread::sleep(Duration::from_millis(700));
        }
        panic!("{what}: 400 queries from 16 sockets woke both workers (wake-ups: {seen:?})");
    };
    gathered("light load at the start");
    let w = during(&process, port, 0, || heavy_load(server));
    assert!(
        w[0] >= 20,
        "80,000 queries at once woke one worker only: wake-ups {w:?}"
    );
    std::thread::sleep(Duration::from_millis(1500));
    gathered("light load after the heavy one");
}
