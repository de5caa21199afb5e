//! DNS over TCP (RFC 7766): several queries per connection, each answered as soon as it is
//! read, with CoreDNS's read, idle and write timeouts so a silent or stalled client does not hold
//! a connection for ever, and a cap on the connections served at once.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio::time::{Instant, timeout, timeout_at};
use tracing::{debug, warn};

use crate::answer::{Handled, Handler, Transport};
use crate::plugin::timeouts::Timeouts;

/// TCP limits: CoreDNS's timeouts (its server's defaults; the `timeouts` directive changes them
/// per port) and how many connections are served at once.
#[derive(Debug, Clone, Copy)]
pub struct TcpOptions {
    /// How long a connection may wait between one query and the next, whole (RFC 7766 asks
    /// for seconds, not minutes): `timeouts { idle }`, 10 s.
    pub idle_timeout: Duration,
    /// How long a new connection has to send its first query, whole: `timeouts { read }`, 3 s.
    pub read_timeout: Duration,
    /// How long writing one response may take before the connection is closed (a client that
    /// stops reading): `timeouts { write }`, 5 s.
    pub write_timeout: Duration,
    /// How many connections are served at once, per port (`-tcp.max_connections`); more wait
    /// in the kernel's backlog until one closes.
    pub max_connections: usize,
}

impl Default for TcpOptions {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(3),
            write_timeout: Duration::from_secs(5),
            max_connections: 1000,
        }
    }
}

impl TcpOptions {
    /// These options with the timeouts a `timeouts` directive sets in their place.
    pub fn with(self, t: &Timeouts) -> Self {
        Self {
            idle_timeout: t.idle.unwrap_or(self.idle_timeout),
            read_timeout: t.read.unwrap_or(self.read_timeout),
            write_timeout: t.write.unwrap_or(self.write_timeout),
            max_connections: self.max_connections,
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
            if let Err(error) = connection(stream, &handler, opts).await {
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
    opts: TcpOptions,
) -> std::io::Result<()> {
    let mut src = stream.peer_addr()?;
    stream.set_nodelay(true)?;
    let (mut reader, writer) = stream.into_split();
    // `proxyproto`: the connection's header, within the first query's read timeout, names
    // its client; what was read past it is the start of the first query.
    let mut first = Vec::new();
    if let Some(proxy) = handler.proxy() {
        let deadline = Instant::now() + opts.read_timeout;
        match proxy.connection(&mut reader, src, deadline).await {
            Ok((crate::plugin::proxyproto::Verdict::Answer(client, _), rest)) => {
                src = client;
                first = rest;
            }
            Ok((crate::plugin::proxyproto::Verdict::Refuse, _)) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        }
    }
    let mut reader = BufReader::new(std::io::Cursor::new(first).chain(reader));
    // Responses go through a channel to one writer, so an answer that waits on an upstream
    // never holds up the ones behind it.
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(MAX_PENDING);
    let write_timeout = opts.write_timeout;
    let timed_out = || std::io::Error::new(std::io::ErrorKind::TimedOut, "tcp write timeout");
    let mut writing = tokio::spawn(async move {
        let mut writer = BufWriter::new(writer);
        while let Some(response) = rx.recv().await {
            let write = async {
                writer.write_u16(response.len() as u16).await?;
                writer.write_all(&response).await?;
                // Flush when nothing else is ready to go.
                if rx.is_empty() {
                    writer.flush().await?;
                }
                Ok::<_, std::io::Error>(())
            };
            timeout(write_timeout, write)
                .await
                .map_err(|_| timed_out())??;
        }
        timeout(write_timeout, writer.flush())
            .await
            .map_err(|_| timed_out())?
    });
    let upstream = Arc::new(Semaphore::new(MAX_PENDING));
    let mut query = Vec::new();
    let mut response = Vec::new();
    let read = async {
        // As CoreDNS (miekg/dns) does: the first query must arrive whole within the read
        // timeout of the connection's start, each later one within the idle timeout of the one
        // before; a message begun but not finished counts against the same deadline.
        let mut wait = opts.read_timeout;
        loop {
            let deadline = Instant::now() + wait;
            let len = match timeout_at(deadline, reader.read_u16()).await {
                Ok(Ok(len)) => usize::from(len),
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(()),
            };
            if len == 0 {
                return Ok(());
            }
            query.resize(len, 0);
            match timeout_at(deadline, reader.read_exact(&mut query)).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(()),
            }
            wait = opts.idle_timeout;
            match handler.handle_guarded(&query, src, Transport::Tcp, &mut response) {
                Handled::Drop => {}
                Handled::Send => {
                    if tx.send(std::mem::take(&mut response)).await.is_err() {
                        return Ok(());
                    }
                }
                Handled::SendThen(after) => {
                    let sent = tx.send(std::mem::take(&mut response)).await;
                    after.run(&tokio::runtime::Handle::current());
                    if sent.is_err() {
                        return Ok(());
                    }
                }
                Handled::Later(delay) => {
                    // `erratic`: written by a task once the delay is over, as an answer from
                    // upstream is (it holds a place among those awaited).
                    let Ok(permit) = Arc::clone(&upstream).acquire_owned().await else {
                        return Ok(());
                    };
                    let (response, tx) = (std::mem::take(&mut response), tx.clone());
                    tokio::spawn(async move {
                        tokio::time::sleep(delay).await;
                        let _ = tx.send(response).await;
                        drop(permit);
                    });
                }
                Handled::Forward(pending) => {
                    // At most MAX_PENDING upstream answers awaited per connection: past
                    // that, the next query is read when one comes back.
                    let Ok(permit) = Arc::clone(&upstream).acquire_owned().await else {
                        return Ok(());
                    };
                    let (handler, tx) = (Arc::clone(handler), tx.clone());
                    tokio::spawn(async move {
                        if let Some(response) = handler.forward(pending).await {
                            let _ = tx.send(response).await;
                        }
                        drop(permit);
                    });
                }
            }
        }
    };
    // The writer ends first only when a write failed or timed out (the reader holds a sender
    // until it returns): then the connection is done, whatever the reader waits for.
    let result = tokio::select! {
        result = read => result,
        written = &mut writing => {
            return match written {
                Ok(Err(e)) => Err(e),
                _ => Ok(()),
            };
        }
    };
    drop(tx);
    // The writer ends once every answer, forwarded ones included, is written.
    match writing.await {
        Ok(Err(e)) => Err(e),
        _ => result,
    }
}
