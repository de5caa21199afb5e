//! Socket setup (socket2), and nothing else: the loops take sockets already bound.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use socket2::{Domain, Protocol, Socket, Type};

/// How many connections the kernel queues before we accept them.
const LISTEN_BACKLOG: i32 = 1024;

/// The wildcard addresses a port is served on: `[::]` taking IPv4 too, or `0.0.0.0` where the
/// machine has no IPv6.
pub fn wildcard(port: u16, v6: bool) -> SocketAddr {
    if v6 {
        SocketAddr::from((Ipv6Addr::UNSPECIFIED, port))
    } else {
        SocketAddr::from((Ipv4Addr::UNSPECIFIED, port))
    }
}

fn socket(addr: SocketAddr, ty: Type, protocol: Protocol) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), ty, Some(protocol))?;
    if addr.is_ipv6() {
        socket.set_only_v6(false)?;
    }
    socket.set_reuse_address(true)?;
    #[cfg(unix)]
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

/// The receive buffer each UDP socket asks for, so a burst of queries waits in the kernel
/// rather than being dropped. The kernel grants at most `net.core.rmem_max` (about 208 KiB
/// by default: some 250 small queries); raise that sysctl on the node for more.
const UDP_RECV_BUFFER: usize = 4 << 20;

fn udp_socket(addr: SocketAddr) -> io::Result<std::net::UdpSocket> {
    let socket = socket(addr, Type::DGRAM, Protocol::UDP)?;
    // Best effort: the kernel caps it, and a smaller buffer still works.
    let _ = socket.set_recv_buffer_size(UDP_RECV_BUFFER);
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// A UDP socket on `addr`, one of several sharing it through `SO_REUSEPORT`.
pub fn udp(addr: SocketAddr) -> io::Result<std::net::UdpSocket> {
    udp_socket(addr)
}

/// A UDP socket bound like the first one (`port` may have been 0: reuse what it got).
pub fn udp_like(first: &std::net::UdpSocket) -> io::Result<std::net::UdpSocket> {
    udp_socket(first.local_addr()?)
}

/// A TCP listener on `addr`.
pub fn tcp(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = socket(addr, Type::STREAM, Protocol::TCP)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(socket.into())
}

/// Whether this machine can open an IPv6 socket at all.
pub fn ipv6_available() -> bool {
    Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))
        .and_then(|s| s.bind(&SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)).into()))
        .is_ok()
}
