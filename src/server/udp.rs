//! The UDP loop: receive into a buffer set up once, answer inline, send. Queries that go
//! upstream are answered from a task of their own.

use std::sync::Arc;

use tokio::net::UdpSocket;
use tracing::debug;

use crate::answer::{Handled, Handler, Transport};

/// The largest datagram we read; longer ones are cut and fail to parse (FORMERR).
const RECV_BUFFER: usize = 65535;

/// Serves queries on `socket` until the task is dropped.
pub async fn serve(socket: UdpSocket, handler: Arc<Handler>) {
    let socket = Arc::new(socket);
    let mut query = vec![0u8; RECV_BUFFER];
    let mut response = Vec::with_capacity(RECV_BUFFER);
    loop {
        let (len, src) = match socket.recv_from(&mut query).await {
            Ok(r) => r,
            Err(error) => {
                // ICMP errors from earlier sends surface here; they are not ours to act on.
                debug!(%error, "udp receive");
                continue;
            }
        };
        match handler.handle_guarded(&query[..len], src, Transport::Udp, &mut response) {
            Handled::Drop => {}
            Handled::Send => {
                if let Err(error) = socket.send_to(&response, src).await {
                    debug!(%error, %src, "udp send");
                }
            }
            Handled::Forward(pending) => {
                let (handler, socket) = (Arc::clone(&handler), Arc::clone(&socket));
                tokio::spawn(async move {
                    if let Some(response) = handler.forward(pending).await
                        && let Err(error) = socket.send_to(&response, src).await
                    {
                        debug!(%error, %src, "udp send");
                    }
                });
            }
        }
    }
}
