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

use crate::answer::{Block, Handler};
use crate::config::Timeouts;

/// A port with everything served on it, bound and ready to run.
pub struct Listener {
    pub handler: Arc<Handler>,
    udp: Vec<std::net::UdpSocket>,
    tcp: std::net::TcpListener,
    /// The port's `timeouts`, over the options [`run`] is given.
    timeouts: Timeouts,
}

impl Listener {
    /// The UDP (and TCP) address actually bound: useful when the port was 0.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.udp[0].local_addr()
    }
}

/// Errors binding a port.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on port {port}: {error}")]
pub struct BindError {
    pub port: u16,
    pub error: std::io::Error,
}

/// Binds UDP (`workers` sockets sharing the port) and TCP for each port. Blocks that share a
/// port are routed by zone within one handler. Port 0 picks a free port, the same for UDP
/// and TCP.
pub fn bind(blocks: Vec<(u16, Block)>, workers: usize) -> Result<Vec<Listener>, BindError> {
    bind_with(blocks, workers, &BTreeMap::new())
}

/// [`bind`], each port's TCP server with its `timeouts` ([`crate::config::Config::timeouts`]).
pub fn bind_with(
    blocks: Vec<(u16, Block)>,
    workers: usize,
    timeouts: &BTreeMap<u16, Timeouts>,
) -> Result<Vec<Listener>, BindError> {
    let mut by_port: BTreeMap<u16, Vec<Block>> = BTreeMap::new();
    for (port, block) in blocks {
        by_port.entry(port).or_default().push(block);
    }
    let v6 = socket::ipv6_available();
    let mut listeners = Vec::new();
    for (port, blocks) in by_port {
        let err = |error| BindError { port, error };
        let (first, tcp) = bind_pair(port, v6).map_err(err)?;
        let mut udp = vec![first];
        for _ in 1..workers.max(1) {
            udp.push(socket::udp_like(&udp[0]).map_err(err)?);
        }
        listeners.push(Listener {
            handler: Arc::new(Handler::new(blocks)),
            udp,
            tcp,
            timeouts: timeouts.get(&port).copied().unwrap_or_default(),
        });
    }
    Ok(listeners)
}

/// `workers` UDP sockets sharing `port` (0: a free one) through `SO_REUSEPORT`, for loops
/// that are not DNS (the null responder the benchmarks measure against).
pub fn udp_sockets(port: u16, workers: usize) -> std::io::Result<Vec<std::net::UdpSocket>> {
    let mut sockets = vec![socket::udp(port, socket::ipv6_available())?];
    for _ in 1..workers.max(1) {
        sockets.push(socket::udp_like(&sockets[0])?);
    }
    Ok(sockets)
}

/// A UDP socket and a TCP listener on the same port; for port 0, retries until the port the
/// kernel picked for UDP is free for TCP too.
fn bind_pair(port: u16, v6: bool) -> std::io::Result<(std::net::UdpSocket, std::net::TcpListener)> {
    const ATTEMPTS: usize = 20;
    let mut last = None;
    for _ in 0..ATTEMPTS {
        let udp = socket::udp(port, v6)?;
        let bound = udp.local_addr()?.port();
        match socket::tcp(bound, v6) {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) if port == 0 => last = Some(e),
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
            let port = addr
                .rsplit(':')
                .next()
                .and_then(|p| p.parse().ok())
                .unwrap_or(0);
            http::bind(&addr)
                .map(|l| (l, routes))
                .map_err(|error| BindError { port, error })
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
