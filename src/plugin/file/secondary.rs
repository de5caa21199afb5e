//! The `secondary` plugin: zones transferred in (AXFR, RFC 5936) from a primary and served as
//! `file` serves a zone file (the same answers, [`super::File`]), kept in memory only, as in
//! CoreDNS.
//!
//! `secondary [ZONES...] { transfer from ADDRESS...; fallthrough [ZONES...] }`: until a first
//! transfer succeeds (tried with a doubling pause up to 10 s) the zone answers SERVFAIL. Then,
//! every SOA refresh interval (plus up to 5 s of jitter), the primaries' SOA serial is asked over
//! TCP and, when it is newer (RFC 1982), the zone is transferred again and served whole; a failed
//! check or transfer is tried again every retry interval, and a zone not refreshed for its expire
//! time answers SERVFAIL.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType};
use rand::Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::zone::Zone;
use super::{File, Slot};
use crate::corefile::{ConfigError, Directive, Fallthrough, directive_err, plugin_zones};
use crate::plugin::Plugin;
use crate::plugin::setup::{Building, Context, Setup, SetupError};
use crate::table::RecordTable;
use crate::wire::Zones;

const NAME: &str = "secondary";
/// How long a primary may take to send the next message of a transfer, or an SOA check's.
const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one whole transfer may take.
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(600);
/// The bytes one transfer may bring, at most.
const MAX_BYTES: usize = 512 << 20;

/// The `secondary` directive.
#[derive(Debug, Clone)]
pub struct SecondaryConfig {
    pub zones: Vec<LowerName>,
    pub primaries: Vec<SocketAddr>,
    pub fallthrough: Fallthrough,
}

impl Setup for SecondaryConfig {
    fn parse(d: &Directive, cx: &Context<'_>) -> Result<Self, ConfigError> {
        let mut config = Self {
            zones: plugin_zones(d, NAME, &d.args, cx.zones)?,
            primaries: Vec::new(),
            fallthrough: Fallthrough::default(),
        };
        for o in &d.block {
            match o.name.as_str() {
                "transfer" => match o.args.split_first() {
                    Some((from, addresses)) if from == "from" && !addresses.is_empty() => {
                        for a in addresses {
                            config.primaries.push(primary(a).ok_or_else(|| {
                                directive_err(o, NAME, format!("{a:?} is not an address"))
                            })?);
                        }
                    }
                    Some((to, _)) if to == "to" => {
                        return Err(directive_err(
                            o,
                            NAME,
                            "transfer to is not supported yet: zone transfers out are refused",
                        ));
                    }
                    _ => {
                        return Err(directive_err(
                            o,
                            NAME,
                            "Wrong argument count or unexpected line ending after 'transfer'",
                        ));
                    }
                },
                "fallthrough" => config.fallthrough = Fallthrough::parse(&o.args, o, NAME)?,
                "catalog" => {
                    return Err(directive_err(
                        o,
                        NAME,
                        "catalog: not supported yet: list each member zone in the secondary's zones",
                    ));
                }
                // Accepted and ignored, as in CoreDNS.
                "upstream" => {}
                other => {
                    return Err(directive_err(
                        o,
                        NAME,
                        format!("unknown property '{other}'"),
                    ));
                }
            }
        }
        if config.primaries.is_empty() {
            return Err(directive_err(
                d,
                NAME,
                "secondary zones require a transfer from property",
            ));
        }
        Ok(config)
    }

    fn build(&self, b: &mut Building<'_>) -> Result<(), SetupError> {
        let mut slots = Vec::new();
        for origin in &self.zones {
            let slot: Slot = Arc::new(RecordTable::new(None));
            slots.push(Arc::clone(&slot));
            if !self.primaries.is_empty() {
                b.background.push(Box::pin(keep(
                    Name::from(origin.clone()),
                    self.primaries.clone(),
                    slot,
                )));
            }
        }
        b.chain.push(Plugin::Secondary(File::new(
            Zones::new(&self.zones),
            slots,
            self.fallthrough.clone(),
        )));
        Ok(())
    }
}

/// `ADDRESS[:PORT]` or `[ADDRESS]:PORT`, port 53 by default.
fn primary(text: &str) -> Option<SocketAddr> {
    let text = text.strip_prefix("dns://").unwrap_or(text);
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Some(addr);
    }
    text.parse::<std::net::IpAddr>()
        .ok()
        .map(|ip| SocketAddr::new(ip, 53))
}

/// Why a transfer or an SOA check failed.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("timed out")]
    Timeout,
    #[error("answered {0}")]
    Rcode(ResponseCode),
    #[error("{0}")]
    Malformed(String),
}

/// One length-prefixed exchange's worth of reading: the next message on `stream`.
async fn read_message(stream: &mut TcpStream) -> Result<(Message, usize), TransferError> {
    let read = async {
        let len = stream.read_u16().await?;
        let mut buf = vec![0; usize::from(len)];
        stream.read_exact(&mut buf).await?;
        Ok::<_, TransferError>(buf)
    };
    let buf = tokio::time::timeout(READ_TIMEOUT, read)
        .await
        .map_err(|_| TransferError::Timeout)??;
    let message = Message::from_vec(&buf).map_err(|e| TransferError::Malformed(e.to_string()))?;
    Ok((message, buf.len()))
}

/// Sends `qtype` for `origin` to `primary` over TCP; the stream, and the query's ID.
async fn ask(
    primary: SocketAddr,
    origin: &Name,
    qtype: RecordType,
) -> Result<(TcpStream, u16), TransferError> {
    let mut stream = TcpStream::connect(primary).await?;
    let id: u16 = rand::rng().random();
    let mut query = Message::new();
    query
        .set_id(id)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .add_query(Query::query(origin.clone(), qtype));
    let bytes = query
        .to_vec()
        .map_err(|e| TransferError::Malformed(e.to_string()))?;
    let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&bytes);
    stream.write_all(&framed).await?;
    Ok((stream, id))
}

/// The primary's SOA serial for `origin`.
async fn serial(primary: SocketAddr, origin: &Name) -> Result<u32, TransferError> {
    let exchange = async {
        let (mut stream, id) = ask(primary, origin, RecordType::SOA).await?;
        let (reply, _) = read_message(&mut stream).await?;
        if reply.id() != id {
            return Err(TransferError::Malformed("another ID".into()));
        }
        if reply.response_code() != ResponseCode::NoError {
            return Err(TransferError::Rcode(reply.response_code()));
        }
        reply
            .answers()
            .iter()
            .find_map(|r| match r.data() {
                RData::SOA(soa) => Some(soa.serial()),
                _ => None,
            })
            .ok_or_else(|| TransferError::Malformed("no SOA in the answer".into()))
    };
    tokio::time::timeout(READ_TIMEOUT, exchange)
        .await
        .map_err(|_| TransferError::Timeout)?
}

/// `origin` transferred whole from `primary` (AXFR): its records, SOA first, the closing SOA
/// left out.
pub async fn axfr(primary: SocketAddr, origin: &Name) -> Result<Vec<Record>, TransferError> {
    let transfer = async {
        let (mut stream, id) = ask(primary, origin, RecordType::AXFR).await?;
        let mut records: Vec<Record> = Vec::new();
        let mut bytes = 0;
        loop {
            let (message, size) = read_message(&mut stream).await?;
            bytes += size;
            if bytes > MAX_BYTES {
                return Err(TransferError::Malformed("larger than 512 MiB".into()));
            }
            if message.id() != id {
                return Err(TransferError::Malformed("another ID".into()));
            }
            if message.response_code() != ResponseCode::NoError {
                return Err(TransferError::Rcode(message.response_code()));
            }
            for record in message.answers() {
                let soa = record.record_type() == RecordType::SOA;
                if records.is_empty() && !soa {
                    return Err(TransferError::Malformed(
                        "the transfer does not start with the SOA".into(),
                    ));
                }
                if soa && !records.is_empty() {
                    return Ok(records);
                }
                records.push(record.clone());
            }
            if message.answers().is_empty() {
                return Err(TransferError::Malformed(
                    "an empty message in the transfer".into(),
                ));
            }
        }
    };
    tokio::time::timeout(TRANSFER_TIMEOUT, transfer)
        .await
        .map_err(|_| TransferError::Timeout)?
}

/// The zone from the first primary that transfers it.
async fn transfer(primaries: &[SocketAddr], origin: &Name) -> Result<Zone, String> {
    let mut last = String::from("no primary");
    for &primary in primaries {
        match axfr(primary, origin).await {
            // Building the zone is work for a blocking thread.
            Ok(records) => match tokio::task::spawn_blocking({
                let origin = origin.clone();
                move || Zone::new(&origin, records)
            })
            .await
            .unwrap_or_else(|e| Err(e.to_string()))
            {
                Ok(zone) => {
                    tracing::info!(zone = %origin, %primary, serial = zone.serial, "transferred");
                    return Ok(zone);
                }
                Err(e) => last = format!("{primary}: {e}"),
            },
            Err(e) => last = format!("{primary}: {e}"),
        }
    }
    Err(last)
}

/// RFC 1982: whether serial `a` is before `b`.
fn before(a: u32, b: u32) -> bool {
    a != b && b.wrapping_sub(a) < (1 << 31)
}

/// The SOA timers of `zone`: refresh, retry, expire (at least a second each).
fn timers(zone: &Zone) -> (Duration, Duration, Duration) {
    let secs = |s: u32| Duration::from_secs(u64::from(s.max(1)));
    (secs(zone.refresh), secs(zone.retry), secs(zone.expire))
}

fn jitter(max_ms: u64) -> Duration {
    Duration::from_millis(rand::rng().random_range(0..max_ms))
}

/// Keeps `slot` holding `origin` as the primaries have it, for as long as the server runs.
async fn keep(origin: Name, primaries: Vec<SocketAddr>, slot: Slot) {
    // The first transfer, tried until it succeeds.
    let mut pause = Duration::from_millis(250);
    let mut zone = loop {
        match transfer(&primaries, &origin).await {
            Ok(zone) => break Arc::new(zone),
            Err(error) => {
                tracing::warn!(zone = %origin, %error, ?pause, "all primaries failed to transfer; trying again");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(10));
            }
        }
    };
    slot.publish(Some(Arc::clone(&zone)));
    let mut refreshed = tokio::time::Instant::now();
    let mut wait = timers(&zone).0 + jitter(5000);
    loop {
        tokio::time::sleep(wait).await;
        let (_, retry, expire) = timers(&zone);
        let mut newest = None;
        let mut failed = true;
        for &primary in &primaries {
            match serial(primary, &origin).await {
                Ok(serial) => {
                    failed = false;
                    newest = Some(serial);
                    break;
                }
                Err(error) => tracing::warn!(zone = %origin, %primary, %error, "SOA check failed"),
            }
        }
        if let Some(serial) = newest.filter(|&s| before(zone.serial, s)) {
            match transfer(&primaries, &origin).await {
                Ok(fresh) => {
                    zone = Arc::new(fresh);
                    slot.publish(Some(Arc::clone(&zone)));
                }
                Err(error) => {
                    tracing::warn!(zone = %origin, serial, %error, "transfer failed");
                    failed = true;
                }
            }
        }
        if failed {
            if refreshed.elapsed() >= expire {
                tracing::error!(zone = %origin, "zone expired: answering SERVFAIL until a transfer succeeds");
                slot.publish(None);
            }
            wait = retry + jitter(2000);
        } else {
            refreshed = tokio::time::Instant::now();
            if slot.guard().is_none() {
                slot.publish(Some(Arc::clone(&zone)));
            }
            wait = timers(&zone).0 + jitter(5000);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::testing::settings;

    #[test]
    fn serial_arithmetic_and_settings() {
        assert!(before(1, 2));
        assert!(before(u32::MAX, 1));
        assert!(!before(2, 1));
        assert!(!before(5, 5));
        let c: SecondaryConfig = settings("secondary example.org {\n transfer from 10.0.0.1 [fd00::1]:5300 dns://10.0.0.2:53\n fallthrough\n}").unwrap();
        let want: Vec<SocketAddr> = ["10.0.0.1:53", "[fd00::1]:5300", "10.0.0.2:53"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        assert_eq!(c.primaries, want);
        for (lines, needle) in [
            ("secondary {\n transfer from\n}", "Wrong argument count"),
            ("secondary {\n transfer from nowhere\n}", "not an address"),
            (
                "secondary {\n transfer to *\n}",
                "transfer to is not supported",
            ),
            ("secondary {\n catalog\n}", "catalog: not supported yet"),
            ("secondary {\n frob\n}", "unknown property 'frob'"),
            ("secondary example.org", "require a transfer from"),
        ] {
            let e = settings::<SecondaryConfig>(lines).unwrap_err();
            assert!(e.contains(needle), "{lines}: {e}");
        }
    }
}
