//! The `loop` plugin: at start, a query for a random name is sent to this server; if it comes
//! back through `forward` more than twice, the upstream leads back here, and the process
//! stops with CoreDNS's message (a forwarding loop would otherwise burn every core and answer
//! nothing).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use hickory_proto::rr::{LowerName, Name};
use rand::Rng;
use tracing::warn;

use super::setup::{Building, Context, Setup, SetupError};
use super::{Fast, Outcome, Phases, Plugin, Request};
use crate::corefile::{ConfigError, Directive, directive_err};

/// How long probes are sent for at start.
const PROBE_FOR: Duration = Duration::from_secs(30);
/// How long after an answered probe the plugin keeps counting.
const GRACE: Duration = Duration::from_secs(2);

/// `loop`: takes no arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Detect;

impl Setup for Detect {
    fn parse(d: &Directive, _: &Context<'_>) -> Result<Self, ConfigError> {
        if !d.args.is_empty() || !d.block.is_empty() {
            return Err(directive_err(d, "loop", "takes no arguments"));
        }
        Ok(Detect)
    }

    /// Probes the block's first zone on its first address.
    fn build(&self, b: &mut Building<'_>) -> Result<(), SetupError> {
        if let (Some(zone), Some(&listen)) = (b.zones.first(), b.listen.first()) {
            let detector = Loop::new(zone, listen);
            b.background.push(Box::pin(detector.probe()));
            b.chain.push(Plugin::Loop(detector));
        }
        Ok(())
    }
}

#[derive(Debug)]
pub struct Loop {
    zone: LowerName,
    /// Where the block listens: the probe goes there (loopback for the wildcard).
    listen: crate::corefile::Listen,
    qname: Name,
    lower: LowerName,
    /// `lower` in wire format.
    key: Vec<u8>,
    state: Arc<State>,
}

#[derive(Debug, Default)]
struct State {
    seen: AtomicU32,
    disabled: AtomicBool,
}

impl Loop {
    /// A loop detector for the server block on `listen` whose first zone is `zone`.
    pub fn new(zone: &LowerName, listen: crate::corefile::Listen) -> Self {
        let mut rng = rand::rng();
        let (a, b): (u64, u64) = (rng.random::<u64>() >> 1, rng.random::<u64>() >> 1);
        let zone_name = Name::from(zone.clone());
        let qname = Name::from_ascii(format!("{a}.{b}"))
            .and_then(|n| n.append_domain(&zone_name))
            .unwrap_or_else(|_| Name::root());
        Self {
            zone: zone.clone(),
            listen,
            lower: LowerName::new(&qname),
            key: crate::table::NameKey::new(&qname).as_bytes().to_vec(),
            qname,
            // On port 0 (a port picked when binding) there is no address to probe: nothing
            // is counted, as CoreDNS's probe cannot reach such a server either.
            state: Arc::new(State {
                seen: AtomicU32::new(0),
                disabled: AtomicBool::new(listen.port == 0),
            }),
        }
    }

    /// Whether `key` (lowercase wire format) is the probe's name.
    pub fn is_probe(&self, key: &[u8]) -> bool {
        key == self.key
    }

    /// Sends the probe to this server (its first `bind` address, or loopback) until one is
    /// answered, then stops counting shortly after.
    pub fn probe(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let state = Arc::clone(&self.state);
        let port = self.listen.port;
        let ip = self
            .listen
            .ip
            .unwrap_or(std::net::IpAddr::from([127, 0, 0, 1]));
        let id: u16 = rand::rng().random();
        // HINFO, recursion desired, as CoreDNS's probe.
        let query = crate::wire::query(id, &crate::wire::name_bytes(&self.qname), 13, true, None);
        async move {
            if port == 0 {
                state.disabled.store(true, Ordering::Relaxed);
                return;
            }
            let deadline = tokio::time::Instant::now() + PROBE_FOR;
            let addr = SocketAddr::new(ip, port);
            while tokio::time::Instant::now() < deadline {
                if super::forward::answered(addr, &query, id).await {
                    break;
                }
                warn!("loop: probe not answered");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            tokio::time::sleep(GRACE).await;
            state.disabled.store(true, Ordering::Relaxed);
        }
    }
}

impl Phases for Loop {
    const ANSWERS: bool = true;

    /// Passes every query on; the probe's goes the full way, where it is counted.
    fn serve_fast(&self, query: &crate::wire::LightQuery, _out: &mut Vec<u8>) -> Fast {
        if self.is_probe(query.key()) {
            Fast::Slow
        } else {
            Fast::Next
        }
    }

    /// Counts our own probe passing; the third time, stops the process.
    fn serve(&self, req: &Request) -> Outcome {
        if self.state.disabled.load(Ordering::Relaxed) || req.lower != self.lower {
            return Outcome::Next;
        }
        let seen = self.state.seen.fetch_add(1, Ordering::Relaxed) + 1;
        if seen > 2 {
            let message = format!(
                "Loop ({} -> :{}) detected for zone {:?}, see https://coredns.io/plugins/loop#troubleshooting. Query: \"HINFO {}\"",
                req.src.map_or_else(
                    || "?".to_string(),
                    |s| SocketAddr::new(s.ip().to_canonical(), s.port()).to_string()
                ),
                self.listen.port,
                self.zone.to_string(),
                self.qname
            );
            // The loop that answers stops the process; nothing here does.
            let mut reply = super::Reply::authoritative(hickory_proto::op::ResponseCode::ServFail);
            reply.authoritative = false;
            reply.after = Some(Box::new(super::After::Exit(message)));
            return Outcome::Reply(reply);
        }
        Outcome::Next
    }
}
