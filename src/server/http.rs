//! A small HTTP/1.1 server for the health, readiness and metrics endpoints: GET only, one
//! request per connection, bounded in size and time.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tracing::debug;

/// The longest request head read.
const MAX_HEAD: usize = 8192;
/// How long a client may take to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// A response: status code, content type, body.
pub type Response = (u16, &'static str, String);

/// Answers a path (the query string removed); `None` is 404.
pub type Routes = Arc<dyn Fn(&str) -> Option<Response> + Send + Sync>;

/// Serves `routes` on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, routes: Routes) {
    loop {
        let Ok((stream, src)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let routes = Arc::clone(&routes);
        tokio::spawn(async move {
            if let Err(error) = connection(stream, &routes).await {
                debug!(%error, %src, "http connection");
            }
        });
    }
}

async fn connection(mut stream: TcpStream, routes: &Routes) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    let read = async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_HEAD {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        Ok::<_, std::io::Error>(())
    };
    if tokio::time::timeout(READ_TIMEOUT, read).await.is_err() {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&head);
    let mut parts = text.lines().next().unwrap_or("").split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let (status, kind, body) = match method {
        "GET" | "HEAD" => {
            routes(path).unwrap_or((404, "text/plain", "404 page not found\n".into()))
        }
        _ => (405, "text/plain", "method not allowed\n".into()),
    };
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
        503 => "Service Unavailable",
        _ => "",
    };
    let mut response = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if method != "HEAD" {
        response.push_str(&body);
    }
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

/// Binds an HTTP listener (`:8080` means every address).
pub fn bind(addr: &str) -> std::io::Result<std::net::TcpListener> {
    let bad = || std::io::Error::other(format!("bad address {addr:?}"));
    if let Some(port) = addr.strip_prefix(':') {
        // Every address: dual-stack where the machine has IPv6.
        let port: u16 = port.parse().map_err(|_| bad())?;
        return bind_addr(SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, port)))
            .or_else(|_| bind_addr(SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, port))));
    }
    let addr = addr.replace("localhost", "127.0.0.1");
    bind_addr(addr.parse().map_err(|_| bad())?)
}

fn bind_addr(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    if addr.is_ipv6() {
        socket.set_only_v6(false)?;
    }
    socket.set_reuse_address(true)?;
    // A reloaded configuration binds its endpoints before the old ones close.
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(128)?;
    Ok(socket.into())
}
