//! The only part that knows about sockets: binds every port the configuration names and runs
//! the UDP and TCP loops on it.

pub mod http;
mod socket;
pub mod tcp;
pub mod udp;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::answer::{Block, Handler, Shared};
use crate::config::Listen;
use crate::plugin::timeouts::Timeouts;

/// An address with everything served on it, bound and ready to run.
pub struct Listener {
    pub handler: Arc<Handler>,
    udp: Vec<std::net::UdpSocket>,
    tcp: std::net::TcpListener,
    /// The address's `timeouts`, over the options [`run`] is given.
    timeouts: Timeouts,
}

impl Listener {
    /// The UDP (and TCP) address actually bound: useful when the port was 0.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.udp[0].local_addr()
    }
}

/// What an address's listener is given beyond its blocks, from the blocks that listen there
/// ([`crate::config::Config::listen_options`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListenOptions {
    /// `timeouts`, over the TCP options [`run`] is given.
    pub timeouts: Timeouts,
    /// `multisocket`: how many UDP sockets, instead of the `workers` [`bind_with`] is given.
    pub sockets: Option<usize>,
}

/// Errors binding an address.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {listen}: {error}")]
pub struct BindError {
    pub listen: String,
    pub error: std::io::Error,
}

/// Binds UDP (`workers` sockets sharing the address) and TCP for each address a block
/// listens on. Blocks that share an address are routed by zone within one handler; a block
/// on several addresses (`bind`) is shared by their handlers. Port 0 picks a free port, the
/// same for UDP and TCP.
pub fn bind(blocks: Vec<(Vec<Listen>, Block)>, workers: usize) -> Result<Vec<Listener>, BindError> {
    bind_with(blocks, workers, &BTreeMap::new())
}

/// [`bind`], each address with its [`ListenOptions`] (`timeouts`, `multisocket`).
pub fn bind_with(
    blocks: Vec<(Vec<Listen>, Block)>,
    workers: usize,
    options: &BTreeMap<Listen, ListenOptions>,
) -> Result<Vec<Listener>, BindError> {
    let mut by_listen: BTreeMap<Listen, Vec<Shared>> = BTreeMap::new();
    for (listen, block) in blocks {
        let shared = Shared::from(block);
        for l in listen {
            by_listen.entry(l).or_default().push(shared.clone());
        }
    }
    let v6 = socket::ipv6_available();
    let mut listeners = Vec::new();
    for (listen, blocks) in by_listen {
        let err = |error| BindError {
            listen: listen.to_string(),
            error,
        };
        let addr = match listen.ip {
            Some(ip) => SocketAddr::new(ip, listen.port),
            None => socket::wildcard(listen.port, v6),
        };
        let (first, tcp) = bind_pair(addr).map_err(err)?;
        let options = options.get(&listen).copied().unwrap_or_default();
        let mut udp = vec![first];
        for _ in 1..options.sockets.unwrap_or(workers).max(1) {
            udp.push(socket::udp_like(&udp[0]).map_err(err)?);
        }
        listeners.push(Listener {
            handler: Arc::new(Handler::shared(blocks, &listen)),
            udp,
            tcp,
            timeouts: options.timeouts,
        });
    }
    Ok(listeners)
}

/// `workers` UDP sockets sharing `port` (0: a free one) through `SO_REUSEPORT`, for loops
/// that are not DNS (the null responder the benchmarks measure against).
pub fn udp_sockets(port: u16, workers: usize) -> std::io::Result<Vec<std::net::UdpSocket>> {
    let addr = socket::wildcard(port, socket::ipv6_available());
    let mut sockets = vec![socket::udp(addr)?];
    for _ in 1..workers.max(1) {
        sockets.push(socket::udp_like(&sockets[0])?);
    }
    Ok(sockets)
}

/// A UDP socket and a TCP listener on the same address; for port 0, retries until the port
/// the kernel picked for UDP is free for TCP too.
fn bind_pair(addr: SocketAddr) -> std::io::Result<(std::net::UdpSocket, std::net::TcpListener)> {
    const ATTEMPTS: usize = 20;
    let mut last = None;
    for _ in 0..ATTEMPTS {
        let udp = socket::udp(addr)?;
        let bound = SocketAddr::new(addr.ip(), udp.local_addr()?.port());
        match socket::tcp(bound) {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) if addr.port() == 0 => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no free port")))
}

pub use tcp::TcpOptions;

/// Binds the HTTP endpoints; an address in use stops the start like a DNS port does.
pub fn bind_http(
    endpoints: Vec<(String, http::Routes)>,
) -> Result<Vec<(std::net::TcpListener, http::Routes)>, BindError> {
    endpoints
        .into_iter()
        .map(|(addr, routes)| {
            http::bind(&addr)
                .map(|l| (l, routes))
                .map_err(|error| BindError {
                    listen: format!("http://{addr}"),
                    error,
                })
        })
        .collect()
}

/// Serves HTTP endpoints until the returned future is dropped.
pub async fn run_http(
    listeners: Vec<(std::net::TcpListener, http::Routes)>,
) -> std::io::Result<()> {
    let mut tasks = tokio::task::JoinSet::new();
    for (l, routes) in listeners {
        tasks.spawn(http::serve(tokio::net::TcpListener::from_std(l)?, routes));
    }
    while tasks.join_next().await.is_some() {}
    Ok(())
}

/// Runs every listener's loops until the returned future is dropped: a thread per UDP socket
/// (see [`udp`]), which stops within a tenth of a second after that, and tasks for TCP, with
/// `tcp`'s options under each port's `timeouts`.
pub async fn run(listeners: Vec<Listener>, tcp: TcpOptions) -> std::io::Result<()> {
    /// Tells the UDP workers to stop when the future running them is dropped.
    struct StopOnDrop(Arc<AtomicBool>);
    impl Drop for StopOnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    let stop = StopOnDrop(Arc::new(AtomicBool::new(false)));
    let runtime = tokio::runtime::Handle::current();
    let mut tasks = tokio::task::JoinSet::new();
    for l in listeners {
        udp::spawn(
            l.udp,
            Arc::clone(&l.handler),
            runtime.clone(),
            Arc::clone(&stop.0),
        )?;
        let listener = tokio::net::TcpListener::from_std(l.tcp)?;
        tasks.spawn(tcp::serve(
            listener,
            Arc::clone(&l.handler),
            tcp.with(&l.timeouts),
        ));
    }
    while tasks.join_next().await.is_some() {}
    drop(stop);
    Ok(())
}
