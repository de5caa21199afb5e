//! The limits on TCP clients and the signals, against the real binary on loopback sockets:
//! CoreDNS's `timeouts` directive (read, idle, write), `-tcp.max_connections`, a thousand idle
//! connections, and SIGHUP and SIGUSR1 loading the Corefile again (a bound block moving to
//! other addresses among it).
//!
//! Times appear only as deadlines that a working server meets with room to spare, and as
//! timeouts set short in the Corefile; nothing asserts how fast anything happened.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};

use crate::cli::{Process, free_port};
use crate::harness::{query_bytes, udp};

/// How long a client waits for one answer from a server that should give it.
const REPLY: Duration = Duration::from_secs(5);
/// Room on top of a timeout before a connection it should close counts as left open.
const MARGIN: Duration = Duration::from_secs(15);

fn workdir(corefile: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Corefile"), corefile).unwrap();
    dir
}

fn local(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// The one A record of an answer, if it is one.
fn address(m: &Message) -> Option<Ipv4Addr> {
    if m.response_code() != ResponseCode::NoError {
        return None;
    }
    m.answers().iter().find_map(|r| match r.data() {
        RData::A(a) => Some(a.0),
        _ => None,
    })
}

/// One UDP query for `name`: the address it answers, `None` if no answer came.
fn udp_a(port: u16, name: &str) -> Option<Ipv4Addr> {
    let bytes = udp(local(port), &query_bytes(name, RecordType::A, None))?;
    address(&Message::from_vec(&bytes).unwrap())
}

fn framed(name: &str) -> Vec<u8> {
    let q = query_bytes(name, RecordType::A, None);
    [&(q.len() as u16).to_be_bytes()[..], &q].concat()
}

fn connect(port: u16) -> TcpStream {
    let stream = TcpStream::connect(local(port)).unwrap();
    stream.set_read_timeout(Some(REPLY)).unwrap();
    stream
}

/// Reads one length-prefixed message.
fn read_reply(stream: &mut TcpStream) -> std::io::Result<Message> {
    let mut len = [0u8; 2];
    stream.read_exact(&mut len)?;
    let mut buf = vec![0; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut buf)?;
    Ok(Message::from_vec(&buf).expect("a DNS message"))
}

/// Asks `name` on the connection and returns the address it answers.
fn ask(stream: &mut TcpStream, name: &str) -> Option<Ipv4Addr> {
    stream.write_all(&framed(name)).unwrap();
    let reply = read_reply(stream).unwrap_or_else(|e| panic!("no answer over TCP: {e}"));
    address(&reply)
}

/// One query on a fresh TCP connection.
fn tcp_a(port: u16, name: &str) -> Option<Ipv4Addr> {
    ask(&mut connect(port), name)
}

/// Whether the server closes the connection by `deadline` (end of stream or reset), reading
/// and dropping whatever comes before.
fn closed_by(stream: &mut TcpStream, deadline: Instant) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        let Some(left) = deadline.checked_duration_since(Instant::now()) else {
            return false;
        };
        stream
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe) => {
                return true;
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false;
            }
            Err(e) => panic!("reading: {e}"),
        }
    }
}

/// Whether the server has closed the connection yet, without waiting: nothing unread is
/// expected on it.
fn still_open(stream: &TcpStream) -> bool {
    stream.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 1];
    let open = matches!(stream.peek(&mut buf), Err(e) if e.kind() == ErrorKind::WouldBlock);
    stream.set_nonblocking(false).unwrap();
    open
}

/// Sends `signal` (`HUP`, `USR1`) to the process.
fn send_signal(process: &Process, signal: &str) {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &process.pid().to_string()])
        .status()
        .expect("running kill");
    assert!(status.success(), "kill -{signal}");
}

/// Waits until `port` answers `name` with `want` over UDP.
fn wait_for_answer(process: &Process, port: u16, name: &str, want: Ipv4Addr) {
    let start = Instant::now();
    while udp_a(port, name) != Some(want) {
        assert!(
            start.elapsed() < MARGIN,
            "{name} never became {want}\nstdout:\n{}",
            process.stdout()
        );
        sleep(Duration::from_millis(50));
    }
}

/// Waits until the process's log holds `needle` `times` times.
fn wait_for_log(process: &Process, needle: &str, times: usize) {
    let start = Instant::now();
    while process.stdout().matches(needle).count() < times {
        assert!(
            start.elapsed() < MARGIN,
            "{needle:?} not logged {times} times\nstdout:\n{}",
            process.stdout()
        );
        sleep(Duration::from_millis(50));
    }
}

fn hosts_block(port: u16, timeouts: &str, ip: &str) -> String {
    format!(".:{port} {{\n    {timeouts}\n    hosts {{\n        {ip} a.example\n    }}\n}}\n")
}

const A: &str = "a.example.";
const A_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);

#[test]
fn bad_timeouts_and_max_connections_exit_one_and_say_why() {
    let port = free_port();
    for (timeouts, needle) in [
        (
            "timeouts",
            "Corefile:2: timeouts: timeouts block with no timeouts specified",
        ),
        (
            "timeouts {\n        idle 0s\n    }",
            "Corefile:3: timeouts: timeout provided '0s' needs to be between 1 second and 24 hours",
        ),
        (
            "timeouts {\n        read 25h\n    }",
            "Corefile:3: timeouts: timeout provided '25h' needs to be between 1 second and 24 hours",
        ),
        (
            "timeouts {\n        write soon\n    }",
            "Corefile:3: timeouts: failed to parse duration 'soon'",
        ),
        (
            "timeouts {\n        read 5s\n        giraffe 30s\n    }",
            "Corefile:4: timeouts: unknown option: 'giraffe'",
        ),
        (
            "timeouts {\n        idle\n    }",
            "Corefile:3: timeouts: Wrong argument count or unexpected line ending after 'idle'",
        ),
    ] {
        let dir = workdir(&hosts_block(port, timeouts, "10.0.0.1"));
        let mut process = Process::spawn(dir.path(), &[]);
        let status = process.wait();
        assert_eq!(status.code(), Some(1), "{timeouts}: {}", process.stderr());
        assert!(
            process.stderr().contains(needle),
            "{timeouts}: {}",
            process.stderr()
        );
        assert!(!process.stdout().contains("listening"), "{timeouts}");
    }
    let dir = workdir(&hosts_block(port, "errors", "10.0.0.1"));
    for (args, needle) in [
        (
            &["-tcp.max_connections", "0"][..],
            "-tcp.max_connections: not a count from 1 to 1000000: \"0\"",
        ),
        (
            &["-tcp.max_connections=1000001"],
            "-tcp.max_connections: not a count from 1 to 1000000: \"1000001\"",
        ),
        (
            &["--tcp.max_connections", "many"],
            "-tcp.max_connections: not a count from 1 to 1000000: \"many\"",
        ),
        (
            &["-tcp.max_connections"],
            "flag -tcp.max_connections needs a value",
        ),
    ] {
        let mut process = Process::spawn(dir.path(), args);
        let status = process.wait();
        assert_eq!(status.code(), Some(1), "{args:?}: {}", process.stderr());
        assert!(
            process.stderr().starts_with("clusterdns: ") && process.stderr().contains(needle),
            "{args:?}: {}",
            process.stderr()
        );
    }
}

#[test]
fn read_bounds_the_first_query_and_idle_each_one_after() {
    // A long read and a short idle timeout: a connection that has asked is closed, one that
    // has not is still served after that.
    let port = free_port();
    let dir = workdir(&hosts_block(
        port,
        "timeouts {\n        read 1h\n        idle 1s\n    }",
        "10.0.0.1",
    ));
    let mut process = Process::spawn(dir.path(), &[]);
    process.first_answer(port, A);
    let mut silent = connect(port);
    let mut asked = connect(port);
    assert_eq!(ask(&mut asked, A), Some(A_IP));
    let after = Instant::now() + Duration::from_secs(1) + MARGIN;
    assert!(
        closed_by(&mut asked, after),
        "idle 1s: still open after a query"
    );
    assert!(
        still_open(&silent),
        "read 1h: closed before its first query"
    );
    assert_eq!(ask(&mut silent, A), Some(A_IP));
    let after = Instant::now() + Duration::from_secs(1) + MARGIN;
    assert!(
        closed_by(&mut silent, after),
        "idle 1s: still open after its first query"
    );
    drop(process);

    // The other way round: a connection that sends nothing, or half a message, is closed
    // after the read timeout; one that has asked stays for its idle time.
    let port = free_port();
    let dir = workdir(&hosts_block(
        port,
        "timeouts {\n        read 1s\n        idle 1h\n    }",
        "10.0.0.1",
    ));
    let mut process = Process::spawn(dir.path(), &[]);
    process.first_answer(port, A);
    let mut asked = connect(port);
    assert_eq!(ask(&mut asked, A), Some(A_IP));
    let mut silent = connect(port);
    let mut half = connect(port);
    half.write_all(&framed(A)[..7]).unwrap();
    let after = Instant::now() + Duration::from_secs(1) + MARGIN;
    assert!(
        closed_by(&mut silent, after),
        "read 1s: a silent connection"
    );
    assert!(closed_by(&mut half, after), "read 1s: half a first query");
    assert!(still_open(&asked), "idle 1h: closed after one query");
    assert_eq!(ask(&mut asked, A), Some(A_IP));
    assert_eq!(udp_a(port, A), Some(A_IP));
}

#[test]
fn write_timeout_closes_a_connection_whose_client_stops_reading() {
    // 1000 addresses for one name: some 16 KB an answer, so the queries below bring far more
    // than the kernel buffers hold.
    let port = free_port();
    let mut hosts = String::new();
    for i in 0..1000u32 {
        let [_, _, b, c] = (0x0a00_0000 + i).to_be_bytes();
        hosts.push_str(&format!("        10.1.{b}.{c} big.example\n"));
    }
    let corefile = format!(
        ".:{port} {{\n    timeouts {{\n        read 1h\n        idle 1h\n        write 1s\n    }}\n    hosts {{\n{hosts}        10.0.0.1 a.example\n    }}\n}}\n"
    );
    let dir = workdir(&corefile);
    let mut process = Process::spawn(dir.path(), &[]);
    process.first_answer(port, A);

    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&local(port).into()).unwrap();
    let mut stream: TcpStream = socket.into();
    stream
        .set_write_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let query = framed("big.example.");
    let mut batch = Vec::new();
    for _ in 0..2000 {
        batch.extend_from_slice(&query);
    }
    // Never read: the server's writes stall, and it closes the connection a second later.
    // A write (of queries it no longer reads) then fails with a reset.
    let _ = stream.write_all(&batch);
    let start = Instant::now();
    loop {
        match stream.write(&query) {
            Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe) => {
                break;
            }
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => panic!("writing: {e}"),
        }
        assert!(
            start.elapsed() < Duration::from_secs(1) + MARGIN,
            "write 1s: a client that does not read was not disconnected"
        );
        sleep(Duration::from_millis(100));
    }
    // Everyone else is served all along.
    assert_eq!(udp_a(port, A), Some(A_IP));
    assert_eq!(tcp_a(port, A), Some(A_IP));
}

#[test]
fn connections_over_max_connections_wait_in_the_backlog_until_one_closes() {
    let port = free_port();
    let dir = workdir(&hosts_block(
        port,
        "timeouts {\n        read 1h\n        idle 1h\n    }",
        "10.0.0.1",
    ));
    let mut process = Process::spawn(dir.path(), &["-tcp.max_connections", "5"]);
    process.first_answer(port, A);
    // Five connections, each answered: all five are being served.
    let mut held: Vec<TcpStream> = (0..5)
        .map(|_| {
            let mut c = connect(port);
            assert_eq!(ask(&mut c, A), Some(A_IP));
            c
        })
        .collect();
    // A sixth: the kernel completes the handshake and queues it, but it is not accepted, so
    // its query waits. Nothing comes back however long it waits while the five stay open.
    let mut sixth = connect(port);
    sixth.write_all(&framed(A)).unwrap();
    sixth
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let mut byte = [0u8; 1];
    match sixth.peek(&mut byte) {
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        other => panic!("the sixth connection was served over the cap: {other:?}"),
    }
    // UDP is not held up, nor are the five.
    assert_eq!(udp_a(port, A), Some(A_IP));
    assert_eq!(ask(&mut held[4], A), Some(A_IP));
    // One of the five closes: the sixth is accepted and its waiting query answered.
    drop(held.remove(0));
    sixth.set_read_timeout(Some(MARGIN)).unwrap();
    let reply = read_reply(&mut sixth).expect("the sixth connection's answer");
    assert_eq!(address(&reply), Some(A_IP));
    assert_eq!(ask(&mut sixth, A), Some(A_IP));
    assert_eq!(udp_a(port, A), Some(A_IP));
}

#[test]
fn sighup_and_sigusr1_load_the_corefile_again_and_a_broken_one_changes_nothing() {
    let port = free_port();
    let dir = workdir(&hosts_block(port, "errors", "10.0.0.1"));
    let corefile = dir.path().join("Corefile");
    let mut process = Process::spawn(dir.path(), &[]);
    process.first_answer(port, A);
    assert_eq!(udp_a(port, A), Some(A_IP));

    // No `reload`: a change alone is not seen; SIGHUP loads it.
    std::fs::write(&corefile, hosts_block(port, "errors", "10.0.0.2")).unwrap();
    assert_eq!(udp_a(port, A), Some(A_IP));
    send_signal(&process, "HUP");
    wait_for_answer(&process, port, A, Ipv4Addr::new(10, 0, 0, 2));
    wait_for_log(&process, "SIGHUP: serving the Corefile", 1);

    // SIGUSR1, as CoreDNS has it.
    std::fs::write(&corefile, hosts_block(port, "errors", "10.0.0.3")).unwrap();
    send_signal(&process, "USR1");
    wait_for_answer(&process, port, A, Ipv4Addr::new(10, 0, 0, 3));
    assert_eq!(tcp_a(port, A), Some(Ipv4Addr::new(10, 0, 0, 3)));

    // Unchanged, it is loaded all the same (files it names are read again).
    send_signal(&process, "USR1");
    wait_for_log(&process, "SIGUSR1: serving the Corefile", 2);
    assert_eq!(udp_a(port, A), Some(Ipv4Addr::new(10, 0, 0, 3)));

    // Broken: the last good configuration goes on serving, and the process with it.
    std::fs::write(
        &corefile,
        format!(".:{port} {{\n    errors\n    frobnicate\n}}\n"),
    )
    .unwrap();
    send_signal(&process, "HUP");
    wait_for_log(
        &process,
        "SIGHUP: the Corefile is not used, the last good one goes on",
        1,
    );
    assert!(
        process
            .stdout()
            .contains("Corefile:3: frobnicate: unknown directive"),
        "{}",
        process.stdout()
    );
    assert_eq!(udp_a(port, A), Some(Ipv4Addr::new(10, 0, 0, 3)));
    assert_eq!(tcp_a(port, A), Some(Ipv4Addr::new(10, 0, 0, 3)));

    // Mended: the next signal loads it.
    std::fs::write(&corefile, hosts_block(port, "errors", "10.0.0.4")).unwrap();
    send_signal(&process, "HUP");
    wait_for_answer(&process, port, A, Ipv4Addr::new(10, 0, 0, 4));
}

/// The soft and hard limits on open files (Linux's /proc/self/limits; `None` elsewhere).
fn nofile() -> Option<(u64, u64)> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let mut numbers = line
        .split_whitespace()
        .skip(3)
        .map(|n| n.parse().unwrap_or(u64::MAX));
    Some((numbers.next()?, numbers.next()?))
}

/// How many connections this test can hold: 1000, unless the open-file limit is too low even
/// after raising the soft limit (up to 4096, within the hard one) with `prlimit`. The server,
/// started after, inherits the limit.
fn connections_allowed() -> usize {
    const WANT: u64 = 1000;
    /// Left for the other tests running in this process, and the server's own files.
    const SPARE: u64 = 400;
    let Some((soft, hard)) = nofile() else {
        return WANT as usize;
    };
    if soft < WANT + SPARE {
        let raised = hard.min(4096);
        let _ = Command::new("prlimit")
            .args([
                "--pid",
                &std::process::id().to_string(),
                &format!("--nofile={raised}:{hard}"),
            ])
            .status();
    }
    let soft = nofile().map_or(soft, |(s, _)| s);
    let n = WANT.min(soft.saturating_sub(SPARE));
    if n < WANT {
        eprintln!("RLIMIT_NOFILE is {soft}: holding {n} connections, not {WANT}");
    }
    n as usize
}

#[test]
fn a_thousand_idle_connections_are_closed_by_the_idle_timeout_and_others_served_meanwhile() {
    let n = connections_allowed();
    let port = free_port();
    let dir = workdir(&hosts_block(
        port,
        "timeouts {\n        read 1s\n        idle 1s\n    }",
        "10.0.0.1",
    ));
    let mut process = Process::spawn(dir.path(), &["-tcp.max_connections", "1100"]);
    process.first_answer(port, A);
    let opened = Instant::now();
    let mut held = Vec::with_capacity(n);
    for i in 0..n {
        // Each one asks once (so it is being served, not waiting in the backlog), then
        // falls silent.
        let mut c = connect(port);
        assert_eq!(ask(&mut c, A), Some(A_IP), "connection {i}");
        held.push(c);
        if i % 100 == 99 {
            assert_eq!(udp_a(port, A), Some(A_IP), "over UDP with {} open", i + 1);
            assert_eq!(tcp_a(port, A), Some(A_IP), "over TCP with {} open", i + 1);
        }
    }
    assert_eq!(udp_a(port, A), Some(A_IP));
    assert_eq!(tcp_a(port, A), Some(A_IP));
    let open = held.iter().filter(|c| still_open(c)).count();
    let took = opened.elapsed();
    eprintln!("{n} connections opened and answered in {took:?}; {open} open after the checks");
    if took < Duration::from_secs(1) {
        // No connection has been idle for a second yet: none may have been closed.
        assert_eq!(open, n, "closed before their idle timeout");
    }
    let deadline = Instant::now() + Duration::from_secs(1) + MARGIN;
    let left_open = held
        .iter_mut()
        .filter_map(|c| (!closed_by(c, deadline)).then_some(()))
        .count();
    assert_eq!(left_open, 0, "of {n}, left open past the idle timeout");
    eprintln!(
        "all {n} closed by the server {:?} after the first was opened",
        opened.elapsed()
    );
    // The server let go of them: its open files fall back.
    let fds = || {
        std::fs::read_dir(format!("/proc/{}/fd", process.pid()))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    let start = Instant::now();
    while fds() > 200 {
        assert!(start.elapsed() < MARGIN, "the server holds {} files", fds());
        sleep(Duration::from_millis(50));
    }
    assert_eq!(udp_a(port, A), Some(A_IP));
    assert_eq!(tcp_a(port, A), Some(A_IP));
}

/// The address `ip:port` answers for `A` over UDP, or `None` when nothing answers.
fn a_at(ip: [u8; 4], port: u16) -> Option<Ipv4Addr> {
    let addr = SocketAddr::from((ip, port));
    let reply = crate::harness::udp_wait(
        addr,
        &query_bytes(A, RecordType::A, None),
        Duration::from_millis(300),
    )?;
    address(&Message::from_vec(&reply).unwrap())
}

#[test]
fn a_reload_moves_a_bound_block_to_its_new_addresses() {
    let port = free_port();
    let bound = |bind: &str, ip: &str| {
        format!(".:{port} {{\n    bind {bind}\n    hosts {{\n        {ip} a.example\n    }}\n}}\n")
    };
    let dir = workdir(&bound("127.0.0.2", "10.0.0.1"));
    let mut process = Process::spawn(dir.path(), &[]);
    let deadline = Instant::now() + MARGIN;
    while a_at([127, 0, 0, 2], port).is_none() {
        assert!(Instant::now() < deadline, "{}", process.stderr());
    }
    assert_eq!(a_at([127, 0, 0, 3], port), None);
    assert_eq!(a_at([127, 0, 0, 1], port), None);

    // Another address: the old one stops answering once the new one does.
    std::fs::write(
        dir.path().join("Corefile"),
        bound("127.0.0.3 127.0.0.4", "10.0.0.2"),
    )
    .unwrap();
    send_signal(&process, "HUP");
    wait_for_log(&process, "SIGHUP: serving the Corefile", 1);
    assert_eq!(a_at([127, 0, 0, 3], port), Some(Ipv4Addr::new(10, 0, 0, 2)));
    assert_eq!(a_at([127, 0, 0, 4], port), Some(Ipv4Addr::new(10, 0, 0, 2)));
    let deadline = Instant::now() + MARGIN;
    while a_at([127, 0, 0, 2], port).is_some() {
        assert!(
            Instant::now() < deadline,
            "127.0.0.2 still answers after the reload"
        );
    }

    // An address the host does not have: the reload is refused and the last good one serves.
    std::fs::write(dir.path().join("Corefile"), bound("192.0.2.1", "10.0.0.3")).unwrap();
    send_signal(&process, "HUP");
    wait_for_log(&process, "dns://192.0.2.1", 1);
    assert_eq!(a_at([127, 0, 0, 3], port), Some(Ipv4Addr::new(10, 0, 0, 2)));
    send_signal(&process, "TERM");
    assert!(process.wait().success());
}
