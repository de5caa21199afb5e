//! The UDP loop: one thread per `SO_REUSEPORT` socket, blocking in `recvmmsg` for a batch of
//! queries, answering each inline into a buffer kept from the last batch, and sending the
//! batch's answers with one `sendmmsg`. Every buffer is allocated when the worker starts;
//! per packet there is no allocation, lock or log. Queries that go upstream are answered from
//! a task of their own on the async runtime, which sends its one answer itself.
//!
//! A socket on the wildcard address answers from the address each query was sent to: the
//! kernel reports it (`IP_PKTINFO`, `IPV6_PKTINFO`) and each answer names it as its source, as
//! CoreDNS does; otherwise a host with several addresses (a node-local cache's 169.254.20.10,
//! a Service address on a dummy interface) would answer from its primary address, and the
//! client would drop the answer.
//!
//! This file holds the crate's only `unsafe` code: the `recvmmsg`/`sendmmsg`/`sendmsg` calls,
//! the message headers that point into the worker's buffers, and their control messages.
#![allow(unsafe_code)]

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tracing::debug;

use crate::answer::{Handled, Handler, Transport};

/// How many datagrams one `recvmmsg` takes, and one `sendmmsg` sends, at most.
pub const BATCH: usize = 32;
/// The largest datagram: a UDP payload is never longer, so nothing is cut.
const SLOT: usize = 65535;
/// How often a worker waiting for queries looks whether it should stop.
const STOP_POLL: Duration = Duration::from_millis(100);
/// How long a stopping worker goes on answering the queries queued on its socket.
const DRAIN: Duration = Duration::from_millis(100);

/// What a worker does with each query: [`Handler`] for DNS, or anything else on the same loop
/// (the null responder the benchmarks compare against).
pub trait Respond: Send + Sync + 'static {
    /// Answers `query` from `src` into `out` (cleared first), as [`Handler::handle`] does.
    fn respond(&self, query: &[u8], src: SocketAddr, out: &mut Vec<u8>) -> Handled;
    /// Answers a query handed back as [`Handled::Forward`]; `None` sends nothing.
    fn forward(
        self: Arc<Self>,
        pending: Box<crate::answer::Pending>,
    ) -> impl Future<Output = Option<Vec<u8>>> + Send;
}

impl Respond for Handler {
    fn respond(&self, query: &[u8], src: SocketAddr, out: &mut Vec<u8>) -> Handled {
        self.handle_guarded(query, src, Transport::Udp, out)
    }

    async fn forward(self: Arc<Self>, pending: Box<crate::answer::Pending>) -> Option<Vec<u8>> {
        Handler::forward(&self, pending).await
    }
}

/// Starts a worker thread for each of `sockets` (one port's, sharing it through
/// `SO_REUSEPORT`), serving until `stop` is set. The sockets are made blocking with a receive
/// timeout, so the workers notice `stop` within [`STOP_POLL`]. How the kernel spreads the
/// port's queries over them is the [`Steering`]'s.
pub fn spawn<R: Respond>(
    sockets: Vec<std::net::UdpSocket>,
    responder: Arc<R>,
    runtime: tokio::runtime::Handle,
    stop: Arc<AtomicBool>,
) -> io::Result<Vec<std::thread::JoinHandle<()>>> {
    let steering = Arc::new(Steering::new(&sockets));
    let mut threads = Vec::with_capacity(sockets.len());
    for (index, socket) in sockets.into_iter().enumerate() {
        socket.set_nonblocking(false)?;
        socket.set_read_timeout(Some(STOP_POLL))?;
        let local = socket.local_addr()?;
        let pktinfo = local.ip().is_unspecified();
        if pktinfo {
            ask_destination(&socket, local.is_ipv6())?;
        }
        let port = socket.local_addr()?.port();
        let (responder, runtime, stop) =
            (Arc::clone(&responder), runtime.clone(), Arc::clone(&stop));
        let steering = Arc::clone(&steering);
        let running = Running::new();
        threads.push(
            std::thread::Builder::new()
                .name(format!("udp-{port}"))
                .spawn(move || {
                    let _running = running;
                    // Plugins may start background work (a prefetch) while answering.
                    let _entered = runtime.enter();
                    Worker::new(Arc::new(socket), steering, index, pktinfo).run(
                        &*responder,
                        &responder,
                        &runtime,
                        &stop,
                    )
                })?,
        );
    }
    Ok(threads)
}

/// How many workers are running, in every generation.
static RUNNING: AtomicUsize = AtomicUsize::new(0);

/// Counts a worker as running from its spawn until its thread ends.
struct Running;

impl Running {
    fn new() -> Self {
        RUNNING.fetch_add(1, Ordering::SeqCst);
        Self
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        RUNNING.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Waits, at most `bound`, until every worker told to stop has answered what was queued on
/// its socket and closed it. Returns whether they all did.
pub fn wait_stopped(bound: Duration) -> bool {
    let start = Instant::now();
    while RUNNING.load(Ordering::SeqCst) > 0 {
        if start.elapsed() >= bound {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    true
}

/// How long a worker measures how busy it is before it reports.
const WINDOW: Duration = Duration::from_millis(20);
/// Above this share of a window spent answering (per mille), one worker is not enough.
const SPREAD_ABOVE: u32 = 750;
/// Below this sum of the workers' shares (per mille), one worker would do.
const GATHER_BELOW: u32 = 300;
/// How long the queries stay spread before they may be gathered again: every worker has
/// reported by then (an idle one wakes every [`STOP_POLL`]), and the load does not flap.
const SPREAD_AT_LEAST: Duration = Duration::from_millis(500);
/// How often the group's program is set again, in case another set of workers on the same
/// port (the generation a reload replaces, in its last moments) changed it.
const REASSERT: Duration = Duration::from_secs(1);

/// Where a port's queries go: all to one socket while one worker keeps up with them, over
/// all the sockets (the kernel's hash of the client's address and port) once it does not.
///
/// Every wake-up of a worker costs a context switch, and at moderate load a worker is woken
/// for one or two queries at a time: two workers each taking half the queries pay for twice
/// the wake-ups one worker does. So the queries are gathered on one socket (a classic BPF
/// program on the `SO_REUSEPORT` group returning its first socket) and spread (a program
/// returning no socket, so the kernel's hash decides) when a worker is busy more than three
/// quarters of a window; they are gathered again when all the workers together are busy less
/// than a third of one. Where the kernel refuses the program, its hash decides throughout.
pub struct Steering {
    /// Whether the queries are spread; `None` where the kernel cannot steer them.
    spread: Option<AtomicBool>,
    /// Each worker's share of its last window spent answering, per mille.
    busy: Box<[AtomicU32]>,
    /// When the queries were last spread, and when the program was last set (nanoseconds
    /// since `epoch`).
    spread_since: AtomicU64,
    attached_at: AtomicU64,
    epoch: Instant,
}

impl Steering {
    fn new(sockets: &[std::net::UdpSocket]) -> Self {
        let steerable = sockets.len() > 1 && attach(&sockets[0], false).is_ok();
        Self {
            spread: steerable.then(|| AtomicBool::new(false)),
            busy: sockets.iter().map(|_| AtomicU32::new(0)).collect(),
            spread_since: AtomicU64::new(0),
            attached_at: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    /// Worker `index`, whose socket is `socket`, spent `busy` per mille of its last window
    /// answering.
    fn report(&self, index: usize, busy: u32, socket: &std::net::UdpSocket) {
        let Some(spread) = &self.spread else { return };
        self.busy[index].store(busy, Ordering::Relaxed);
        let now = self.epoch.elapsed().as_nanos() as u64;
        let spreading = spread.load(Ordering::Relaxed);
        let change = if spreading {
            let since = now.saturating_sub(self.spread_since.load(Ordering::Relaxed));
            let total: u32 = self.busy.iter().map(|b| b.load(Ordering::Relaxed)).sum();
            since >= SPREAD_AT_LEAST.as_nanos() as u64 && total < GATHER_BELOW
        } else {
            busy > SPREAD_ABOVE
        };
        if change
            && spread
                .compare_exchange(spreading, !spreading, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            if spreading {
                debug!(busy, "udp queries gathered on one worker");
            } else {
                debug!(worker = index, busy, "udp queries spread over the workers");
                self.spread_since.store(now, Ordering::Relaxed);
            }
            self.set(socket, !spreading, now);
        } else {
            let last = self.attached_at.load(Ordering::Relaxed);
            if now.saturating_sub(last) >= REASSERT.as_nanos() as u64
                && self
                    .attached_at
                    .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
            {
                self.set(socket, spreading, now);
            }
        }
    }

    fn set(&self, socket: &std::net::UdpSocket, spread: bool, now: u64) {
        self.attached_at.store(now, Ordering::Relaxed);
        if let Err(error) = attach(socket, spread) {
            debug!(%error, "udp steering");
        }
    }
}

/// `SO_ATTACH_REUSEPORT_CBPF` (asm-generic, x86 and arm; not in the libc crate for Linux).
const SO_ATTACH_REUSEPORT_CBPF: libc::c_int = 51;

/// Sets the program of the `SO_REUSEPORT` group `socket` belongs to (the group has one):
/// every query to the group's first socket, or (`spread`) wherever the kernel's hash puts it.
fn attach(socket: &std::net::UdpSocket, spread: bool) -> io::Result<()> {
    // One instruction: BPF_RET | BPF_K, returning the index of the socket to deliver to. An
    // index past the group's sockets makes the kernel fall back to its hash.
    let index = if spread { u32::MAX } else { 0 };
    let mut code = [libc::sock_filter {
        code: (libc::BPF_RET | libc::BPF_K) as u16,
        jt: 0,
        jf: 0,
        k: index,
    }];
    let filter = libc::sock_fprog {
        len: 1,
        filter: code.as_mut_ptr(),
    };
    // SAFETY: `filter` points at `code`, one valid instruction, both alive for the call; the
    // kernel copies the program before returning.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_ATTACH_REUSEPORT_CBPF,
            std::ptr::from_ref(&filter).cast(),
            size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Asks the kernel to report each datagram's destination address: `IPV6_RECVPKTINFO` on a
/// dual-stack socket (IPv4 datagrams come with their address mapped), `IP_PKTINFO` on an IPv4
/// one. One control message per datagram: asking for both would give IPv4 datagrams two.
fn ask_destination(socket: &std::net::UdpSocket, v6: bool) -> io::Result<()> {
    let on: libc::c_int = 1;
    let options = if v6 {
        [(libc::SOL_IPV6, libc::IPV6_RECVPKTINFO)]
    } else {
        [(libc::SOL_IP, libc::IP_PKTINFO)]
    };
    for (level, name) in options {
        // SAFETY: `on` is a live c_int and the length given is its size.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                level,
                name,
                std::ptr::from_ref(&on).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Room for the control messages of one datagram, in `u64`s (aligned as `cmsghdr` needs):
/// one `IPV6_PKTINFO` takes 40 bytes, one `IP_PKTINFO` 32.
const CONTROL_WORDS: usize = 16;
type Control = [u64; CONTROL_WORDS];

/// The destination address of a received datagram, from its control messages.
fn destination(hdr: &libc::msghdr) -> Option<std::net::IpAddr> {
    let mut found = None;
    // SAFETY: `hdr` is a header the kernel filled in: msg_control points at a live buffer of
    // msg_controllen bytes holding well-formed control messages, and CMSG_FIRSTHDR/NXTHDR stay
    // within it (returning null at its end). Each data pointer is read unaligned, as the
    // structure it holds, only after its level and type say which one it is.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(hdr);
        while !cmsg.is_null() {
            let data = libc::CMSG_DATA(cmsg);
            match ((*cmsg).cmsg_level, (*cmsg).cmsg_type) {
                (libc::SOL_IP, libc::IP_PKTINFO) => {
                    let info = data.cast::<libc::in_pktinfo>().read_unaligned();
                    let ip = Ipv4Addr::from(u32::from_be(info.ipi_addr.s_addr));
                    return Some(ip.into());
                }
                (libc::SOL_IPV6, libc::IPV6_PKTINFO) => {
                    let info = data.cast::<libc::in6_pktinfo>().read_unaligned();
                    found = Some(Ipv6Addr::from(info.ipi6_addr.s6_addr).to_canonical());
                }
                _ => {}
            }
            cmsg = libc::CMSG_NXTHDR(hdr, cmsg);
        }
    }
    found
}

/// Writes into `control` the message making `source` an outgoing datagram's source address,
/// and returns its length.
fn source_control(control: &mut Control, source: std::net::IpAddr) -> usize {
    *control = [0; CONTROL_WORDS];
    let (level, kind, len) = match source {
        std::net::IpAddr::V4(_) => (
            libc::SOL_IP,
            libc::IP_PKTINFO,
            size_of::<libc::in_pktinfo>(),
        ),
        std::net::IpAddr::V6(_) => (
            libc::SOL_IPV6,
            libc::IPV6_PKTINFO,
            size_of::<libc::in6_pktinfo>(),
        ),
    };
    // SAFETY: CMSG_SPACE and CMSG_LEN are arithmetic on sizes.
    let (space, cmsg_len) = unsafe { (libc::CMSG_SPACE(len as u32), libc::CMSG_LEN(len as u32)) };
    let space = space as usize;
    debug_assert!(space <= size_of::<Control>());
    // SAFETY: msghdr is a plain C struct for which all-zero bytes are a valid value.
    let mut hdr: libc::msghdr = unsafe { zeroed() };
    hdr.msg_control = control.as_mut_ptr().cast();
    hdr.msg_controllen = space as _;
    // SAFETY: `control` is a zeroed buffer of at least `space` bytes (asserted), aligned for
    // cmsghdr (u64), which `hdr` describes; CMSG_FIRSTHDR returns its start, as it is long
    // enough for a header, and the header and `len` bytes of data fit in `space`. The
    // structures are written unaligned.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&hdr);
        (*cmsg).cmsg_level = level;
        (*cmsg).cmsg_type = kind;
        (*cmsg).cmsg_len = cmsg_len as _;
        let data = libc::CMSG_DATA(cmsg);
        match source {
            std::net::IpAddr::V4(ip) => {
                let mut info: libc::in_pktinfo = zeroed();
                info.ipi_spec_dst.s_addr = u32::from(ip).to_be();
                data.cast::<libc::in_pktinfo>().write_unaligned(info);
            }
            std::net::IpAddr::V6(ip) => {
                let mut info: libc::in6_pktinfo = zeroed();
                info.ipi6_addr.s6_addr = ip.octets();
                data.cast::<libc::in6_pktinfo>().write_unaligned(info);
            }
        }
    }
    space
}

/// One worker's buffers: `BATCH` receive slots with their source addresses, and `BATCH`
/// responses. The message headers point into them; they never move or grow after `new`,
/// except the responses, whose pointers are set again before each send.
struct Worker {
    socket: Arc<std::net::UdpSocket>,
    steering: Arc<Steering>,
    /// This worker's socket's place in its port's group.
    index: usize,
    slots: Box<[u8]>,
    addrs: Box<[libc::sockaddr_storage; BATCH]>,
    recv_iov: Box<[libc::iovec; BATCH]>,
    recv: Box<[libc::mmsghdr; BATCH]>,
    /// Whether queries come with their destination address (a wildcard socket), and the
    /// control messages that carry it, in and out.
    pktinfo: bool,
    recv_control: Box<[Control; BATCH]>,
    send_control: Box<[Control; BATCH]>,
    /// Each received query's destination address, when the kernel gave it.
    local: [Option<std::net::IpAddr>; BATCH],
    responses: Vec<Vec<u8>>,
    /// For each response to send: which received message (its address) it answers.
    reply_to: [usize; BATCH],
    send_iov: Box<[libc::iovec; BATCH]>,
    send: Box<[libc::mmsghdr; BATCH]>,
}

impl Worker {
    fn new(
        socket: Arc<std::net::UdpSocket>,
        steering: Arc<Steering>,
        index: usize,
        pktinfo: bool,
    ) -> Self {
        // SAFETY: sockaddr_storage, iovec and mmsghdr are plain C structs for which all-zero
        // bytes are a valid value (null pointers, zero lengths).
        let (addrs, recv_iov, recv, send_iov, send) = unsafe {
            (
                Box::new(zeroed::<[libc::sockaddr_storage; BATCH]>()),
                Box::new(zeroed::<[libc::iovec; BATCH]>()),
                Box::new(zeroed::<[libc::mmsghdr; BATCH]>()),
                Box::new(zeroed::<[libc::iovec; BATCH]>()),
                Box::new(zeroed::<[libc::mmsghdr; BATCH]>()),
            )
        };
        let mut worker = Self {
            socket,
            steering,
            index,
            slots: vec![0u8; BATCH * SLOT].into_boxed_slice(),
            addrs,
            recv_iov,
            recv,
            pktinfo,
            recv_control: Box::new([[0; CONTROL_WORDS]; BATCH]),
            send_control: Box::new([[0; CONTROL_WORDS]; BATCH]),
            local: [None; BATCH],
            responses: (0..BATCH).map(|_| Vec::with_capacity(512)).collect(),
            reply_to: [0; BATCH],
            send_iov,
            send,
        };
        for i in 0..BATCH {
            worker.recv_iov[i] = libc::iovec {
                iov_base: worker.slots[i * SLOT..].as_mut_ptr().cast(),
                iov_len: SLOT,
            };
            let hdr = &mut worker.recv[i].msg_hdr;
            hdr.msg_name = std::ptr::from_mut(&mut worker.addrs[i]).cast();
            hdr.msg_iov = std::ptr::from_mut(&mut worker.recv_iov[i]);
            hdr.msg_iovlen = 1;
            if pktinfo {
                hdr.msg_control = worker.recv_control[i].as_mut_ptr().cast();
            }
        }
        worker
    }

    fn run<R: Respond>(
        mut self,
        responder: &R,
        shared: &Arc<R>,
        runtime: &tokio::runtime::Handle,
        stop: &AtomicBool,
    ) {
        let fd = self.socket.as_raw_fd();
        // How busy this worker is: the time from a batch's arrival to its answers' sending,
        // and the time taken receiving a full batch (which did not wait: queries were queued).
        let (mut window, mut busy) = (Instant::now(), Duration::ZERO);
        let mut done = window;
        // Once told to stop, the worker answers what is already queued on its socket (without
        // waiting, for at most DRAIN) before it closes it: a query the kernel took is answered.
        let mut draining: Option<Instant> = None;
        loop {
            match draining {
                None if stop.load(Ordering::Relaxed) => draining = Some(Instant::now()),
                Some(since) if since.elapsed() >= DRAIN => break,
                _ => {}
            }
            let wait = if draining.is_some() {
                libc::MSG_DONTWAIT
            } else {
                libc::MSG_WAITFORONE
            };
            let control = if self.pktinfo {
                size_of::<Control>()
            } else {
                0
            };
            for hdr in self.recv.iter_mut() {
                hdr.msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
                hdr.msg_hdr.msg_controllen = control as _;
                hdr.msg_hdr.msg_flags = 0;
                hdr.msg_len = 0;
            }
            // SAFETY: `recv` holds BATCH headers, each pointing at its own iovec (a SLOT-long
            // region of `slots`), its own sockaddr_storage with msg_namelen its size and, with
            // `pktinfo`, its own control buffer with msg_controllen its size (else a null one
            // of length 0); all are owned by `self` and outlive the call. A null timeout is
            // allowed.
            let received = unsafe {
                libc::recvmmsg(
                    fd,
                    self.recv.as_mut_ptr(),
                    BATCH as libc::c_uint,
                    wait,
                    std::ptr::null_mut(),
                )
            };
            if received <= 0 && draining.is_some() {
                break;
            }
            let woke = Instant::now();
            if received == BATCH as i32 {
                busy += woke - done;
            }
            if woke - window >= WINDOW {
                let share = busy.as_micros() * 1000 / (woke - window).as_micros().max(1);
                self.steering.report(self.index, share as u32, &self.socket);
                (window, busy) = (woke, Duration::ZERO);
            }
            if received < 0 {
                let error = io::Error::last_os_error();
                if !matches!(
                    error.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) {
                    // ICMP errors from earlier sends surface here; they are not ours to act on.
                    debug!(%error, "udp receive");
                }
                continue;
            }
            let mut replies = 0;
            // What answers leave for after they are sent (rare: no allocation until then).
            let mut afterwards = Vec::new();
            for i in 0..received as usize {
                let len = self.recv[i].msg_len as usize;
                let Some(src) = socket_addr(&self.addrs[i], self.recv[i].msg_hdr.msg_namelen)
                else {
                    continue;
                };
                self.local[i] = if self.pktinfo {
                    destination(&self.recv[i].msg_hdr)
                } else {
                    None
                };
                let local = self.local[i];
                let query = &self.slots[i * SLOT..i * SLOT + len.min(SLOT)];
                match responder.respond(query, src, &mut self.responses[replies]) {
                    Handled::Drop => {}
                    Handled::Send => {
                        self.reply_to[replies] = i;
                        replies += 1;
                    }
                    Handled::SendThen(after) => {
                        self.reply_to[replies] = i;
                        replies += 1;
                        // After the batch is sent, as CoreDNS answers before it stops.
                        afterwards.push(after);
                    }
                    Handled::Later(delay) => {
                        // `erratic`: sent by a task once the delay is over.
                        let response = self.responses[replies].clone();
                        let socket = Arc::downgrade(&self.socket);
                        runtime.spawn(async move {
                            tokio::time::sleep(delay).await;
                            if let Some(socket) = socket.upgrade() {
                                send_one(&socket, &response, src, local);
                            }
                        });
                    }
                    Handled::Forward(pending) => {
                        // Weak: a socket whose worker stopped (a reload) must close at once,
                        // not stay in the port's group unread while an upstream answers.
                        let (shared, socket) = (Arc::clone(shared), Arc::downgrade(&self.socket));
                        runtime.spawn(async move {
                            if let Some(response) = shared.forward(pending).await
                                && let Some(socket) = socket.upgrade()
                            {
                                send_one(&socket, &response, src, local);
                            }
                        });
                    }
                }
            }
            self.send_batch(fd, replies);
            for after in afterwards {
                crate::plugin::After::run(after, runtime);
            }
            done = Instant::now();
            busy += done - woke;
        }
    }

    /// Sends the first `count` responses to the addresses they answer.
    fn send_batch(&mut self, fd: libc::c_int, count: usize) {
        for k in 0..count {
            let i = self.reply_to[k];
            self.send_iov[k] = libc::iovec {
                iov_base: self.responses[k].as_mut_ptr().cast(),
                iov_len: self.responses[k].len(),
            };
            let hdr = &mut self.send[k].msg_hdr;
            hdr.msg_name = self.recv[i].msg_hdr.msg_name;
            hdr.msg_namelen = self.recv[i].msg_hdr.msg_namelen;
            hdr.msg_iov = std::ptr::from_mut(&mut self.send_iov[k]);
            hdr.msg_iovlen = 1;
            match self.local[i] {
                Some(source) => {
                    let len = source_control(&mut self.send_control[k], source);
                    hdr.msg_control = self.send_control[k].as_mut_ptr().cast();
                    hdr.msg_controllen = len as _;
                }
                None => {
                    hdr.msg_control = std::ptr::null_mut();
                    hdr.msg_controllen = 0;
                }
            }
        }
        let mut sent = 0;
        while sent < count {
            // SAFETY: headers `sent..count` were set above to point at live iovecs over the
            // responses (not touched until this returns), at the senders' addresses with the
            // lengths the kernel gave for them, and at control messages written by
            // `source_control` (or none).
            let n = unsafe {
                libc::sendmmsg(
                    fd,
                    self.send[sent..].as_mut_ptr(),
                    (count - sent) as libc::c_uint,
                    0,
                )
            };
            if n <= 0 {
                let error = io::Error::last_os_error();
                if error.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                // This datagram cannot go (its sender's address is unreachable, the buffer is
                // full past the timeout): skip it, send the rest.
                debug!(%error, "udp send");
                sent += 1;
            } else {
                sent += n as usize;
            }
        }
    }
}

/// Sends one datagram without blocking the task that sends it (a full send buffer drops it,
/// as a congested network would), from `source` when the query named it.
fn send_one(
    socket: &std::net::UdpSocket,
    response: &[u8],
    dst: SocketAddr,
    source: Option<std::net::IpAddr>,
) {
    let Some(source) = source else {
        let sock = socket2::SockRef::from(socket);
        if let Err(error) = sock.send_to_with_flags(response, &dst.into(), libc::MSG_DONTWAIT) {
            debug!(%error, %dst, "udp send");
        }
        return;
    };
    let name = socket2::SockAddr::from(dst);
    let mut control: Control = [0; CONTROL_WORDS];
    let controllen = source_control(&mut control, source);
    let mut iov = libc::iovec {
        iov_base: response.as_ptr().cast_mut().cast(),
        iov_len: response.len(),
    };
    // SAFETY: msghdr is a plain C struct for which all-zero bytes are a valid value.
    let mut hdr: libc::msghdr = unsafe { zeroed() };
    hdr.msg_name = name.as_ptr().cast_mut().cast();
    hdr.msg_namelen = name.len();
    hdr.msg_iov = &mut iov;
    hdr.msg_iovlen = 1;
    hdr.msg_control = control.as_mut_ptr().cast();
    hdr.msg_controllen = controllen as _;
    // SAFETY: `hdr` points at `name`, `iov` (over `response`, which the kernel only reads)
    // and `control`, all alive for the call.
    let rc = unsafe { libc::sendmsg(socket.as_raw_fd(), &hdr, libc::MSG_DONTWAIT) };
    if rc < 0 {
        debug!(error = %io::Error::last_os_error(), %dst, "udp send");
    }
}

/// The address the kernel wrote into `storage` (`len` bytes of it).
fn socket_addr(storage: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    let len = len as usize;
    match libc::c_int::from(storage.ss_family) {
        libc::AF_INET if len >= size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family says the storage holds a sockaddr_in, which is smaller than
            // and aligned no stricter than sockaddr_storage.
            let a = unsafe { &*std::ptr::from_ref(storage).cast::<libc::sockaddr_in>() };
            let ip = Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 if len >= size_of::<libc::sockaddr_in6>() => {
            // SAFETY: as above, for sockaddr_in6.
            let a = unsafe { &*std::ptr::from_ref(storage).cast::<libc::sockaddr_in6>() };
            let ip = Ipv6Addr::from(a.sin6_addr.s6_addr);
            Some(SocketAddr::V6(SocketAddrV6::new(
                ip,
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}
