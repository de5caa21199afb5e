//! The ceiling for the benchmarks: clusterdns's UDP loop (the same threads, `recvmmsg` and
//! `sendmmsg`, buffers) answering every query with one fixed packet, the query's ID copied in.
//! What it serves under dnsperf is what this machine and kernel allow any server with this
//! loop; `benches/peers/peers.sh --null` runs it beside the others.
//!
//! `cargo build --release --examples && target/release/examples/null_responder PORT [WORKERS]`

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use clusterdns::answer::{Handled, Pending};
use clusterdns::server::udp::{self, Respond};

/// A NOERROR response with no question and one A record for the root: 127.0.0.1, TTL 30.
const PACKET: [u8; 27] = [
    0, 0, 0x84, 0, 0, 0, 0, 1, 0, 0, 0, 0, // header: QR AA, one answer
    0, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 127, 0, 0, 1, // . A IN 30 127.0.0.1
];

struct Null;

impl Respond for Null {
    fn respond(&self, query: &[u8], _src: SocketAddr, out: &mut Vec<u8>) -> Handled {
        if query.len() < 2 {
            return Handled::Drop;
        }
        out.clear();
        out.extend_from_slice(&PACKET);
        out[..2].copy_from_slice(&query[..2]);
        Handled::Send
    }

    async fn forward(self: Arc<Self>, _pending: Box<Pending>) -> Option<Vec<u8>> {
        None
    }
}

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let port = args.next().and_then(|p| p.parse().ok()).unwrap_or(5399);
    let workers = args
        .next()
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
    let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    let stop = Arc::new(AtomicBool::new(false));
    let null = Arc::new(Null);
    let threads = udp::spawn(
        clusterdns::server::udp_sockets(port, workers)?,
        Arc::clone(&null),
        runtime.handle().clone(),
        Arc::clone(&stop),
    )?;
    eprintln!("null responder on udp port {port}, {workers} workers");
    for t in threads {
        let _ = t.join();
    }
    Ok(())
}
