//! DNS over TCP (RFC 7766): several queries per connection, each answered as soon as it is
//! read, and an idle timeout so a silent client does not hold a connection for ever.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tracing::{debug, warn};

use crate::answer::{Handler, Transport};

/// TCP limits.
#[derive(Debug, Clone, Copy)]
pub struct TcpOptions {
    /// How long a connection may sit without a complete query (CoreDNS's read timeout is
    /// 10 s; RFC 7766 asks for seconds, not minutes).
    pub idle_timeout: Duration,
    /// How many connections are served at once; more wait in the kernel's backlog.
    pub max_connections: usize,
}

impl Default for TcpOptions {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(10),
            max_connections: 1000,
        }
    }
}

/// Accepts connections on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, handler: Arc<Handler>, opts: TcpOptions) {
    let permits = Arc::new(Semaphore::new(opts.max_connections));
    loop {
        let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
            return;
        };
        let (stream, src) = match listener.accept().await {
            Ok(c) => c,
            Err(error) => {
                warn!(%error, "tcp accept");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let handler = Arc::clone(&handler);
        tokio::spawn(async move {
            if let Err(error) = connection(stream, &handler, opts.idle_timeout).await {
                debug!(%error, %src, "tcp connection closed");
            }
            drop(permit);
        });
    }
}

async fn connection(stream: TcpStream, handler: &Handler, idle: Duration) -> std::io::Result<()> {
    let src = stream.peer_addr()?;
    stream.set_nodelay(true)?;
    let (reader, writer) = stream.into_split();
    let mut reader = BufReader::new(reader);
    let mut writer = BufWriter::new(writer);
    let mut query = Vec::new();
    let mut response = Vec::new();
    loop {
        let len = match tokio::time::timeout(idle, reader.read_u16()).await {
            Ok(Ok(len)) => usize::from(len),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Ok(Err(e)) => return Err(e),
            Err(_) => return Ok(()),
        };
        if len == 0 {
            return Ok(());
        }
        query.resize(len, 0);
        match tokio::time::timeout(idle, reader.read_exact(&mut query)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => return Ok(()),
        }
        if handler.handle_guarded(&query, src, Transport::Tcp, &mut response) {
            writer.write_u16(response.len() as u16).await?;
            writer.write_all(&response).await?;
        }
        // Answer everything already read before waiting for more; flush when the client
        // has nothing else pipelined.
        if reader.buffer().is_empty() {
            writer.flush().await?;
        }
    }
}
