//! DNS over TCP (RFC 7766): several queries per connection, each answered as soon as it is
//! read, and an idle timeout so a silent client does not hold a connection for ever.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tracing::{debug, warn};

use crate::answer::{Handled, Handler, Transport};

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

/// Responses waiting to be written on one connection; past this, reading waits.
const MAX_PENDING: usize = 64;

async fn connection(
    stream: TcpStream,
    handler: &Arc<Handler>,
    idle: Duration,
) -> std::io::Result<()> {
    let src = stream.peer_addr()?;
    stream.set_nodelay(true)?;
    let (reader, writer) = stream.into_split();
    let mut reader = BufReader::new(reader);
    // Responses go through a channel to one writer, so an answer that waits on an upstream
    // never holds up the ones behind it.
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(MAX_PENDING);
    let writing = tokio::spawn(async move {
        let mut writer = BufWriter::new(writer);
        while let Some(response) = rx.recv().await {
            writer.write_u16(response.len() as u16).await?;
            writer.write_all(&response).await?;
            // Flush when nothing else is ready to go.
            if rx.is_empty() {
                writer.flush().await?;
            }
        }
        writer.flush().await
    });
    let mut query = Vec::new();
    let mut response = Vec::new();
    let read = async {
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
            match handler.handle_guarded(&query, src, Transport::Tcp, &mut response) {
                Handled::Drop => {}
                Handled::Send => {
                    if tx.send(std::mem::take(&mut response)).await.is_err() {
                        return Ok(());
                    }
                }
                Handled::Forward(pending) => {
                    let (handler, tx) = (Arc::clone(handler), tx.clone());
                    tokio::spawn(async move {
                        if let Some(response) = handler.forward(pending).await {
                            let _ = tx.send(response).await;
                        }
                    });
                }
            }
        }
    };
    let result = read.await;
    drop(tx);
    // The writer ends once every answer, forwarded ones included, is written.
    match writing.await {
        Ok(Err(e)) => Err(e),
        _ => result,
    }
}
