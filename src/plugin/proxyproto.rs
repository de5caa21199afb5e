//! `proxyproto`: clients' own addresses from a load balancer's PROXY protocol header
//! (HAProxy's proxy-protocol.txt: version 1 on TCP, version 2 on TCP and UDP), as CoreDNS's
//! `proxyproto` reads them.
//!
//! `proxyproto { allow CIDR...; default use|ignore|reject|skip; udp_session_tracking DURATION
//! [MAX] }`. A source in `allow` (every source when `allow` is not given and `default` is not
//! set) has its header used: the query is answered as if it came from the address the header
//! names (`acl`, `whoami`, `log`, metadata and views see that one); the response still goes to
//! the load balancer. Other sources get the `default` policy: `ignore` (the header, if any, is
//! taken off and its address not used), `use`, `reject` (a query with a header is dropped, a
//! connection with one closed) or `skip` (nothing is read: the header stays part of the message).
//! `udp_session_tracking`: a datagram holding only a header (as Cloudflare Spectrum sends it)
//! names the client of the datagrams that follow from the same load balancer address, for the
//! duration (renewed by each), for at most MAX (10240) load balancer addresses at once.
//!
//! It acts for the whole listener (its first block with the directive), before routing: a
//! header has to come off before the question can be read.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::acl::Net;
use super::setup::{Building, Context, Setup, SetupError};
use super::{Phases, Plugin};
use crate::corefile::{ConfigError, Directive, directive_err, parse_duration};

const NAME: &str = "proxyproto";
/// Version 2's signature.
const SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// The longest version 1 header, CRLF included.
const V1_MAX: usize = 107;

/// What a source's header is worth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    Use,
    Ignore,
    Reject,
    Skip,
}

/// The `proxyproto` directive.
#[derive(Debug, Clone, PartialEq)]
pub struct ProxyConfig {
    pub allow: Vec<Net>,
    pub default: Option<Policy>,
    pub sessions: Option<(Duration, usize)>,
}

impl Setup for ProxyConfig {
    fn parse(d: &Directive, _: &Context<'_>) -> Result<Self, ConfigError> {
        let arg_err = |d: &Directive| crate::corefile::arg_count_err(d, NAME);
        if !d.args.is_empty() {
            return Err(arg_err(d));
        }
        let mut config = Self {
            allow: Vec::new(),
            default: None,
            sessions: None,
        };
        for o in &d.block {
            match o.name.as_str() {
                "allow" => {
                    for a in &o.args {
                        let net = a
                            .contains('/')
                            .then(|| Net::parse(a))
                            .flatten()
                            .ok_or_else(|| {
                                directive_err(o, NAME, format!("{a}: invalid CIDR address: {a}"))
                            })?;
                        config.allow.push(net);
                    }
                }
                "default" => {
                    let [policy] = o.args.as_slice() else {
                        return Err(arg_err(o));
                    };
                    config.default = Some(match policy.to_ascii_lowercase().as_str() {
                        "use" => Policy::Use,
                        "ignore" => Policy::Ignore,
                        "reject" => Policy::Reject,
                        "skip" => Policy::Skip,
                        _ => return Err(arg_err(o)),
                    });
                }
                "udp_session_tracking" => {
                    let (ttl, max) = match o.args.as_slice() {
                        [ttl] => (ttl, None),
                        [ttl, max] => (ttl, Some(max)),
                        _ => return Err(arg_err(o)),
                    };
                    let ttl = parse_duration(ttl).map_err(|e| {
                        directive_err(
                            o,
                            NAME,
                            format!("udp_session_tracking: invalid duration {ttl:?}: {e}"),
                        )
                    })?;
                    let max = match max {
                        None => 10240,
                        Some(m) => m.parse::<usize>().ok().filter(|n| *n > 0).ok_or_else(|| {
                            directive_err(
                                o,
                                NAME,
                                format!(
                                    "udp_session_tracking: invalid max sessions {m:?}: must be a positive integer"
                                ),
                            )
                        })?,
                    };
                    config.sessions = (!ttl.is_zero()).then_some((ttl, max));
                }
                other => {
                    return Err(directive_err(o, NAME, format!("unknown option '{other}'")));
                }
            }
        }
        Ok(config)
    }

    fn build(&self, b: &mut Building<'_>) -> Result<(), SetupError> {
        b.chain.push(Plugin::ProxyProto(Arc::new(ProxyProto {
            config: self.clone(),
            sessions: papaya::HashMap::new(),
        })));
        Ok(())
    }
}

/// The PROXY protocol reader of a listener.
#[derive(Debug)]
pub struct ProxyProto {
    config: ProxyConfig,
    /// `udp_session_tracking`: each load balancer address's client, and until when.
    sessions: papaya::HashMap<SocketAddr, (SocketAddr, Instant)>,
}

/// A header read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The client it names (`None`: a LOCAL command, or an address family it has none of).
    pub client: Option<SocketAddr>,
    /// Its length.
    pub len: usize,
}

/// What to do with a message or connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Answer it as from this address, after this many bytes.
    Answer(SocketAddr, usize),
    /// Drop it (a query) or close it (a connection).
    Refuse,
}

/// A version 2 header at the start of `bytes`: `None` when there is none, `Some(Err)` when it
/// is broken.
pub fn v2(bytes: &[u8]) -> Option<Result<Header, ()>> {
    if bytes.len() < 16 || bytes[..12] != SIGNATURE {
        return None;
    }
    let (version, command) = (bytes[12] >> 4, bytes[12] & 0x0f);
    let len = 16 + usize::from(u16::from_be_bytes([bytes[14], bytes[15]]));
    if version != 2 || command > 1 || bytes.len() < len {
        return Some(Err(()));
    }
    let body = &bytes[16..len];
    let client = match (command, bytes[13] >> 4) {
        (0, _) => None,
        (_, 1) if body.len() >= 12 => Some(SocketAddr::new(
            IpAddr::V4(Ipv4Addr::new(body[0], body[1], body[2], body[3])),
            u16::from_be_bytes([body[8], body[9]]),
        )),
        (_, 2) if body.len() >= 36 => {
            let mut ip = [0u8; 16];
            ip.copy_from_slice(&body[..16]);
            Some(SocketAddr::new(
                IpAddr::V6(Ipv6Addr::from(ip)),
                u16::from_be_bytes([body[32], body[33]]),
            ))
        }
        (_, 0) => None,
        _ => return Some(Err(())),
    };
    Some(Ok(Header { client, len }))
}

/// A version 1 header (`PROXY TCP4 SRC DST SPORT DPORT\r\n`, or `PROXY UNKNOWN ...\r\n`) at the
/// start of `bytes`.
pub fn v1(bytes: &[u8]) -> Option<Result<Header, ()>> {
    if !bytes.starts_with(b"PROXY ") {
        return None;
    }
    let end = bytes.windows(2).take(V1_MAX).position(|w| w == b"\r\n")?;
    let line = std::str::from_utf8(&bytes[..end]).ok()?;
    let fields: Vec<&str> = line.split(' ').collect();
    let header = |client| {
        Some(Ok(Header {
            client,
            len: end + 2,
        }))
    };
    match fields.as_slice() {
        ["PROXY", "UNKNOWN", ..] => header(None),
        [
            "PROXY",
            family @ ("TCP4" | "TCP6"),
            src,
            _dst,
            sport,
            _dport,
        ] => {
            let ip: IpAddr = src.parse().ok()?;
            let port: u16 = sport.parse().ok()?;
            if ip.is_ipv4() != (*family == "TCP4") {
                return Some(Err(()));
            }
            header(Some(SocketAddr::new(ip, port)))
        }
        _ => Some(Err(())),
    }
}

impl ProxyProto {
    /// The policy for a source.
    fn policy(&self, peer: SocketAddr) -> Policy {
        let allowed = self.config.allow.iter().any(|n| n.contains(peer.ip()));
        match (self.config.allow.is_empty(), self.config.default) {
            (true, Some(default)) => default,
            (true, None) => Policy::Use,
            (false, _) if allowed => Policy::Use,
            (false, default) => default.unwrap_or(Policy::Ignore),
        }
    }

    /// A datagram from `peer`: whom it is from and where its query starts.
    pub fn datagram(&self, datagram: &[u8], peer: SocketAddr) -> Verdict {
        let policy = self.policy(peer);
        if policy == Policy::Skip {
            return Verdict::Answer(peer, 0);
        }
        match v2(datagram) {
            None => {
                // A client named by an earlier header-only datagram.
                if policy == Policy::Use
                    && self.config.sessions.is_some()
                    && let Some(&(client, until)) = self.sessions.pin().get(&peer)
                    && until > Instant::now()
                {
                    self.track(peer, client);
                    return Verdict::Answer(client, 0);
                }
                Verdict::Answer(peer, 0)
            }
            Some(Err(())) => Verdict::Refuse,
            Some(Ok(_)) if policy == Policy::Reject => Verdict::Refuse,
            Some(Ok(header)) => {
                let client = match (policy, header.client) {
                    (Policy::Use, Some(client)) => client,
                    _ => peer,
                };
                if header.len == datagram.len() {
                    // A header alone: it names the client of what follows.
                    if policy == Policy::Use && header.client.is_some() {
                        self.track(peer, client);
                    }
                    return Verdict::Refuse;
                }
                Verdict::Answer(client, header.len)
            }
        }
    }

    fn track(&self, peer: SocketAddr, client: SocketAddr) {
        let Some((ttl, max)) = self.config.sessions else {
            return;
        };
        let sessions = self.sessions.pin();
        if sessions.len() >= max && sessions.get(&peer).is_none() {
            // Full: the expired go first; if none has, the newcomer is not tracked.
            let now = Instant::now();
            let expired: Vec<SocketAddr> = sessions
                .iter()
                .filter(|(_, (_, until))| *until <= now)
                .map(|(k, _)| *k)
                .collect();
            for k in expired {
                sessions.remove(&k);
            }
            if sessions.len() >= max {
                return;
            }
        }
        sessions.insert(peer, (client, Instant::now() + ttl));
    }

    /// Reads the header a TCP connection from `peer` starts with, within `deadline`: whom the
    /// connection is from, and the bytes read past the header (the start of its first query).
    pub async fn connection<R>(
        &self,
        reader: &mut R,
        peer: SocketAddr,
        deadline: tokio::time::Instant,
    ) -> std::io::Result<(Verdict, Vec<u8>)>
    where
        R: tokio::io::AsyncRead + Unpin,
    {
        use tokio::io::AsyncReadExt;
        let policy = self.policy(peer);
        if policy == Policy::Skip {
            return Ok((Verdict::Answer(peer, 0), Vec::new()));
        }
        let timed_out = || std::io::Error::new(std::io::ErrorKind::TimedOut, "no PROXY header");
        // Every DNS message over TCP is longer than 16 bytes with its length: reading that
        // many tells a header from a query.
        let mut start = vec![0u8; 16];
        tokio::time::timeout_at(deadline, reader.read_exact(&mut start))
            .await
            .map_err(|_| timed_out())??;
        if start[..12] == SIGNATURE {
            let len = 16 + usize::from(u16::from_be_bytes([start[14], start[15]]));
            start.resize(len, 0);
            tokio::time::timeout_at(deadline, reader.read_exact(&mut start[16..]))
                .await
                .map_err(|_| timed_out())??;
        } else if start.starts_with(b"PROXY ") {
            while !start.ends_with(b"\r\n") && start.len() < V1_MAX {
                let byte = tokio::time::timeout_at(deadline, reader.read_u8())
                    .await
                    .map_err(|_| timed_out())??;
                start.push(byte);
            }
        }
        let header = match (v2(&start), v1(&start)) {
            (Some(h), _) | (None, Some(h)) => h,
            (None, None) if start.starts_with(b"PROXY ") => Err(()),
            (None, None) => return Ok((Verdict::Answer(peer, 0), start)),
        };
        let verdict = match header {
            Err(()) => Verdict::Refuse,
            Ok(_) if policy == Policy::Reject => Verdict::Refuse,
            Ok(h) => match (policy, h.client) {
                (Policy::Use, Some(client)) => Verdict::Answer(client, h.len),
                _ => Verdict::Answer(peer, h.len),
            },
        };
        let rest = match verdict {
            Verdict::Answer(_, len) => start.get(len..).unwrap_or_default().to_vec(),
            Verdict::Refuse => Vec::new(),
        };
        Ok((verdict, rest))
    }
}

/// Nothing per query: the listener reads the headers (see [`crate::answer::Handler`]).
impl Phases for ProxyProto {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::testing::settings;

    #[test]
    fn reads_headers_and_refuses_broken_ones_without_panicking() {
        let mut six = SIGNATURE.to_vec();
        six.extend_from_slice(&[0x21, 0x22, 0, 36]);
        six.extend_from_slice(&"2001:db8::7".parse::<Ipv6Addr>().unwrap().octets());
        six.extend_from_slice(&[0; 16]);
        six.extend_from_slice(&[0x12, 0x34, 0, 53]);
        assert_eq!(
            v2(&six),
            Some(Ok(Header {
                client: Some("[2001:db8::7]:4660".parse().unwrap()),
                len: 52
            }))
        );
        let mut local = SIGNATURE.to_vec();
        local.extend_from_slice(&[0x20, 0x00, 0, 0]);
        assert_eq!(
            v2(&local),
            Some(Ok(Header {
                client: None,
                len: 16
            }))
        );
        assert_eq!(v2(b"\x12\x34 a plain query"), None);
        // Every cut of a header is refused or waited for, never a panic.
        for cut in 0..six.len() {
            let _ = v2(&six[..cut]);
        }
        assert_eq!(
            v1(b"PROXY UNKNOWN\r\nrest"),
            Some(Ok(Header {
                client: None,
                len: 15
            }))
        );
        assert_eq!(v1(b"PROXY TCP6 10.0.0.1 10.0.0.2 1 2\r\n"), Some(Err(())));
        assert_eq!(v1(b"PROXY TCP4 10.0.0.1 10.0.0.2 99999 2\r\n"), None);
    }

    #[test]
    fn reads_the_directive_as_coredns_does() {
        let c: ProxyConfig = settings("proxyproto").unwrap();
        assert_eq!((c.allow.len(), c.default, c.sessions), (0, None, None));
        let c: ProxyConfig = settings(
            "proxyproto {\n allow 192.168.1.1/32 10.0.0.0/8\n default REJECT\n udp_session_tracking 28s\n}",
        )
        .unwrap();
        assert_eq!(c.allow.len(), 2);
        assert_eq!(c.default, Some(Policy::Reject));
        assert_eq!(c.sessions, Some((Duration::from_secs(28), 10240)));
        for (lines, why) in [
            ("proxyproto x", "Wrong argument count"),
            ("proxyproto {\n allow 10.0.0.1\n}", "invalid CIDR address"),
            ("proxyproto {\n default maybe\n}", "Wrong argument count"),
            (
                "proxyproto {\n udp_session_tracking 5s 0\n}",
                "must be a positive integer",
            ),
            (
                "proxyproto {\n udp_session_tracking soon\n}",
                "invalid duration",
            ),
            ("proxyproto {\n trust all\n}", "unknown option 'trust'"),
        ] {
            let e = settings::<ProxyConfig>(lines).unwrap_err();
            assert!(e.contains(why) && e.contains("proxyproto"), "{lines}: {e}");
        }
    }
}
