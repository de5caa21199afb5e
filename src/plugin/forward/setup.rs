//! The `forward` directive, as CoreDNS's `forward` plugin reads it.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::rr::LowerName;

use super::Forward;
use crate::corefile::{
    ConfigError, Directive, directive_err, one_arg, parse_duration, parse_zone, resolve,
};
use crate::plugin::Plugin;
use crate::plugin::cache::{Cache, CacheConfig};
use crate::plugin::setup::{Building, Context, Setup, SetupError};

const NAME: &str = "forward";
/// CoreDNS's limit on upstreams per `forward`.
const MAX_UPSTREAMS: usize = 15;

/// How upstreams are picked for each query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    Random,
    RoundRobin,
    Sequential,
}

/// `forward FROM TO... { ... }`.
#[derive(Debug, Clone)]
pub struct ForwardConfig {
    /// Names under this zone are forwarded.
    pub from: LowerName,
    /// Upstreams, in the order given (a resolv.conf file contributes its nameservers; a host
    /// name is resolved when the block is built, [`resolved`]).
    pub to: Vec<Target>,
    /// `resolver`: where host names among the upstreams are looked up (the system's
    /// resolver when empty).
    pub resolvers: Vec<SocketAddr>,
    /// Names under these zones are not forwarded.
    pub except: Vec<LowerName>,
    pub force_tcp: bool,
    pub prefer_udp: bool,
    /// Accepted for compatibility: CoreDNS's idle-connection expiry. Upstream connections
    /// are not pooled here, so there is nothing to expire.
    pub expire: Duration,
    /// Consecutive failures after which an upstream is down until a health check succeeds.
    /// 0: never marked down.
    pub max_fails: u32,
    pub health_check: Duration,
    /// Health checks ask `. IN NS` with RD set unless `no_rec`.
    pub health_check_recursion: bool,
    /// The name health checks ask for (`.` by default).
    pub health_check_domain: hickory_proto::rr::Name,
    pub policy: Policy,
    /// In-flight forwarded queries allowed; more are answered REFUSED.
    pub max_concurrent: Option<usize>,
    /// How long one upstream has to answer one query (2s).
    pub read_timeout: Duration,
    /// Upstreams tried at most per query; `None`: each once (within CoreDNS's default of twice
    /// their number).
    pub max_connect_attempts: Option<u32>,
    /// Rcodes of an upstream's answer that send the query on to the next upstream (`failover`).
    pub failover: Vec<u16>,
    /// Rcodes of the answer that send the query on to the next `forward` of the block (`next`).
    pub next: Vec<u16>,
    /// A NODATA answer sends the query on to the next `forward` too (`next_on_nodata`).
    pub next_on_nodata: bool,
    /// While every upstream is down, SERVFAIL at once instead of trying one anyway.
    pub failfast_all_unhealthy_upstreams: bool,
    /// The address upstream queries and health checks leave from.
    pub source_address: Option<IpAddr>,
    /// Upstreams reached over gRPC (the `grpc` directive), not DNS.
    pub grpc: Option<super::grpc::GrpcTransport>,
}

/// `FROM TO...` of `forward` (or the legacy `proxy`, `name`), with CoreDNS's defaults for the
/// rest.
pub(super) fn stanza(d: &Directive, name: &str, dir: &Path) -> Result<ForwardConfig, ConfigError> {
    let [from, to @ ..] = d.args.as_slice() else {
        return Err(directive_err(d, name, "needs FROM and at least one TO"));
    };
    if to.is_empty() {
        return Err(directive_err(d, name, "needs at least one TO"));
    }
    let from = parse_zone(from).map_err(|m| directive_err(d, name, m))?;
    // `resolver` is read first: host names among the TOs are resolved with it.
    let mut resolvers = Vec::new();
    for o in d.block.iter().filter(|o| o.name == "resolver") {
        if o.args.is_empty() {
            return Err(directive_err(
                o,
                name,
                "resolver needs at least one address",
            ));
        }
        for r in &o.args {
            let addr = r
                .parse::<SocketAddr>()
                .or_else(|_| r.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
                .map_err(|_| directive_err(o, name, format!("resolver: {r} is not an address")))?;
            resolvers.push(addr);
        }
    }
    let mut upstreams: Vec<Target> = Vec::new();
    for t in to {
        for addr in upstream(t, dir).map_err(|m| directive_err(d, name, m))? {
            // Each address once, where first seen.
            if !upstreams.contains(&addr) {
                upstreams.push(addr);
            }
        }
    }
    if upstreams.is_empty() {
        return Err(directive_err(
            d,
            name,
            "no upstream (an empty resolv.conf?)",
        ));
    }
    if upstreams.len() > MAX_UPSTREAMS {
        return Err(directive_err(
            d,
            name,
            format!("more than {MAX_UPSTREAMS} upstreams"),
        ));
    }
    Ok(ForwardConfig {
        from,
        to: upstreams,
        resolvers,
        except: Vec::new(),
        force_tcp: false,
        prefer_udp: false,
        expire: Duration::from_secs(10),
        max_fails: 2,
        health_check: Duration::from_millis(500),
        health_check_recursion: true,
        health_check_domain: hickory_proto::rr::Name::root(),
        policy: Policy::Random,
        max_concurrent: None,
        read_timeout: Duration::from_secs(2),
        max_connect_attempts: None,
        failover: Vec::new(),
        next: Vec::new(),
        next_on_nodata: false,
        failfast_all_unhealthy_upstreams: false,
        source_address: None,
        grpc: None,
    })
}

/// Parses a `forward` directive; relative resolv.conf paths are taken from `dir`.
pub fn forward(d: &Directive, dir: &Path) -> Result<ForwardConfig, ConfigError> {
    let mut f = stanza(d, NAME, dir)?;
    let mut max_age = Duration::ZERO;
    for o in &d.block {
        match o.name.as_str() {
            "except" => f.except.extend(except(o, NAME)?),
            // Both may be given: force_tcp wins, as in CoreDNS.
            "force_tcp" => f.force_tcp = true,
            "prefer_udp" => f.prefer_udp = true,
            "expire" => f.expire = duration(o)?,
            "max_fails" => {
                f.max_fails = one_arg(o, NAME)?
                    .parse()
                    .map_err(|_| directive_err(o, NAME, "max_fails: not a number"))?;
            }
            "health_check" => {
                let (interval, rest) = o
                    .args
                    .split_first()
                    .ok_or_else(|| directive_err(o, NAME, "health_check needs a duration"))?;
                f.health_check = parse_duration(interval)
                    .map_err(|m| directive_err(o, NAME, format!("health_check: {m}")))?;
                if f.health_check.is_zero() {
                    return Err(directive_err(o, NAME, "health_check must be above 0"));
                }
                let mut rest = rest.iter();
                while let Some(option) = rest.next() {
                    match option.as_str() {
                        "no_rec" => f.health_check_recursion = false,
                        "domain" => {
                            let domain = rest.next().ok_or_else(|| {
                                directive_err(o, NAME, "health_check: domain needs a name")
                            })?;
                            f.health_check_domain = parse_zone(domain)
                                .map(|z| hickory_proto::rr::Name::from(&z))
                                .map_err(|_| {
                                    directive_err(
                                        o,
                                        NAME,
                                        format!("health_check: invalid domain name {domain}"),
                                    )
                                })?;
                        }
                        other => {
                            return Err(directive_err(
                                o,
                                NAME,
                                format!("health_check: unknown option {other}"),
                            ));
                        }
                    }
                }
            }
            "policy" => {
                f.policy = match one_arg(o, NAME)? {
                    "random" => Policy::Random,
                    "round_robin" => Policy::RoundRobin,
                    "sequential" => Policy::Sequential,
                    other => {
                        return Err(directive_err(o, NAME, format!("unknown policy {other:?}")));
                    }
                };
            }
            "max_concurrent" => {
                let n: usize = one_arg(o, NAME)?
                    .parse()
                    .map_err(|_| directive_err(o, NAME, "max_concurrent: not a number"))?;
                // 0, as in CoreDNS: no limit of its own.
                f.max_concurrent = (n > 0).then_some(n);
            }
            "read_timeout" => {
                f.read_timeout = duration(o)?;
                if f.read_timeout.is_zero() {
                    return Err(directive_err(o, NAME, "read_timeout must be positive"));
                }
            }
            "max_connect_attempts" => {
                let n: u32 = one_arg(o, NAME)?
                    .parse()
                    .map_err(|_| directive_err(o, NAME, "max_connect_attempts: not a number"))?;
                f.max_connect_attempts = Some(n);
            }
            "max_idle_conns" => {
                // Accepted: upstream connections are not pooled, so none idles.
                one_arg(o, NAME)?.parse::<u32>().map_err(|_| {
                    directive_err(o, NAME, "max_idle_conns: not a number of 0 or more")
                })?;
            }
            "max_age" => max_age = duration(o)?,
            "doh_method" => match one_arg(o, NAME)? {
                "GET" | "POST" => {}
                _ => {
                    return Err(directive_err(
                        o,
                        NAME,
                        "doh_method must be either GET or POST",
                    ));
                }
            },
            "failover" => {
                f.failover = rcodes(o)?;
                if f.failover.contains(&0) {
                    return Err(directive_err(o, NAME, "NoError cannot be used in failover"));
                }
            }
            "next" => f.next = rcodes(o)?,
            "next_on_nodata" => {
                no_args(o)?;
                f.next_on_nodata = true;
            }
            "failfast_all_unhealthy_upstreams" => {
                no_args(o)?;
                f.failfast_all_unhealthy_upstreams = true;
            }
            "source_address" => {
                let ip = one_arg(o, NAME)?;
                f.source_address = Some(ip.parse().map_err(|_| {
                    directive_err(
                        o,
                        NAME,
                        format!("source_address: {ip} is not an IP address"),
                    )
                })?);
            }
            "tls" | "tls_servername" => {
                return Err(directive_err(
                    o,
                    NAME,
                    format!(
                        "{} is not supported yet: forward to plain dns:// upstreams (a local \
                         DNS-over-TLS proxy in front of a TLS one)",
                        o.name
                    ),
                ));
            }
            // Read with the TOs (see `stanza`).
            "resolver" => {}
            other => {
                return Err(directive_err(
                    o,
                    NAME,
                    format!("unknown property {other:?}"),
                ));
            }
        }
    }
    if !max_age.is_zero() && max_age < f.expire {
        return Err(directive_err(
            d,
            NAME,
            format!(
                "max_age ({max_age:?}) must not be less than expire ({:?})",
                f.expire
            ),
        ));
    }
    Ok(f)
}

/// `except ZONES...`.
pub(super) fn except(o: &Directive, name: &str) -> Result<Vec<LowerName>, ConfigError> {
    if o.args.is_empty() {
        return Err(directive_err(o, name, "except needs at least one zone"));
    }
    crate::corefile::zone_list(&o.args, o, name)
}

fn no_args(o: &Directive) -> Result<(), ConfigError> {
    if o.args.is_empty() {
        Ok(())
    } else {
        Err(directive_err(
            o,
            NAME,
            format!("{} takes no arguments", o.name),
        ))
    }
}

/// `next` and `failover`'s RCODEs: miekg/dns's names, any case.
fn rcodes(o: &Directive) -> Result<Vec<u16>, ConfigError> {
    if o.args.is_empty() {
        return Err(directive_err(o, NAME, format!("{} needs an RCODE", o.name)));
    }
    o.args
        .iter()
        .map(|r| {
            crate::wire::rcode_named(&r.to_uppercase())
                .ok_or_else(|| directive_err(o, NAME, format!("{r} is not a valid rcode")))
        })
        .collect()
}

fn duration(o: &Directive) -> Result<Duration, ConfigError> {
    parse_duration(one_arg(o, NAME)?)
        .map_err(|m| directive_err(o, NAME, format!("{}: {m}", o.name)))
}

/// An upstream as a Corefile names it: an address, or a host name to resolve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Addr(SocketAddr),
    Host(String, u16),
}

/// One TO: `IP`, `IP:PORT`, `[IPv6]:PORT`, `dns://` before any of them, a resolv.conf file,
/// or a host name (`[dns://]HOST[:PORT]`), left to resolve when the block is built, as CoreDNS
/// resolves one at start (so reading a Corefile sends nothing anywhere).
fn upstream(to: &str, dir: &Path) -> Result<Vec<Target>, String> {
    if let Some(addr) = address(to)? {
        return Ok(vec![Target::Addr(addr)]);
    }
    let path = resolve(dir, to);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(nameservers(&text).into_iter().map(Target::Addr).collect()),
        Err(e) => match host_name(to) {
            Some((host, port)) => Ok(vec![Target::Host(host.to_string(), port)]),
            None => Err(format!(
                "not an IP address, file, or valid domain: {to:?} ({e})"
            )),
        },
    }
}

/// `config`'s upstreams with each host name resolved (with its `resolver`s, or the system's),
/// each address once, where first seen.
pub fn resolved(config: &ForwardConfig) -> Result<Vec<SocketAddr>, String> {
    let mut out: Vec<SocketAddr> = Vec::new();
    for target in &config.to {
        let addrs = match target {
            Target::Addr(addr) => vec![*addr],
            Target::Host(host, port) => lookup(host, &config.resolvers)
                .map_err(|e| format!("forward: failed to resolve {host:?}: {e}"))?
                .into_iter()
                .map(|ip| SocketAddr::new(ip, *port))
                .collect(),
        };
        for addr in addrs {
            if !out.contains(&addr) {
                out.push(addr);
            }
        }
    }
    if out.len() > MAX_UPSTREAMS {
        return Err(format!("forward: more than {MAX_UPSTREAMS} upstreams"));
    }
    Ok(out)
}

/// `[dns://]HOST[:PORT]` when HOST is a domain name (not an address), with port 53 by default.
fn host_name(to: &str) -> Option<(&str, u16)> {
    let rest = to.strip_prefix("dns://").unwrap_or(to);
    if rest.contains("://") || rest.contains('/') {
        return None;
    }
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) => (h, p.parse().ok()?),
        None => (rest, 53),
    };
    let valid = !host.is_empty()
        && host.parse::<IpAddr>().is_err()
        && hickory_proto::rr::Name::from_ascii(host).is_ok()
        && host.split('.').filter(|l| !l.is_empty()).all(|l| {
            l.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        });
    valid.then_some((host, port))
}

/// `host`'s addresses: A and AAAA asked of each resolver in turn until one gives some, or
/// the system's resolver without any.
fn lookup(host: &str, resolvers: &[SocketAddr]) -> Result<Vec<IpAddr>, String> {
    use std::net::ToSocketAddrs;
    if resolvers.is_empty() {
        let ips: Vec<IpAddr> = (host, 0)
            .to_socket_addrs()
            .map_err(|e| e.to_string())?
            .map(|a| a.ip())
            .collect();
        return if ips.is_empty() {
            Err("no addresses found".into())
        } else {
            Ok(ips)
        };
    }
    let name = hickory_proto::rr::Name::from_ascii(host)
        .map(|mut n| {
            n.set_fqdn(true);
            n
        })
        .map_err(|e| e.to_string())?;
    let mut last = String::from("no addresses found");
    for &resolver in resolvers {
        let mut ips = Vec::new();
        for qtype in [
            hickory_proto::rr::RecordType::A,
            hickory_proto::rr::RecordType::AAAA,
        ] {
            match ask(resolver, &name, qtype) {
                Ok(found) => ips.extend(found),
                Err(e) => last = e,
            }
        }
        if !ips.is_empty() {
            return Ok(ips);
        }
    }
    Err(last)
}

/// One question to one resolver over UDP, 2 s to answer: the addresses it gives.
fn ask(
    resolver: SocketAddr,
    name: &hickory_proto::rr::Name,
    qtype: hickory_proto::rr::RecordType,
) -> Result<Vec<IpAddr>, String> {
    use hickory_proto::op::{Message, Query};
    use hickory_proto::rr::RData;
    let mut query = Message::new();
    query
        .set_id(rand::random())
        .set_recursion_desired(true)
        .add_query(Query::query(name.clone(), qtype));
    let bytes = query.to_vec().map_err(|e| e.to_string())?;
    let local: SocketAddr = if resolver.is_ipv6() {
        "[::]:0".parse().expect("an address")
    } else {
        "0.0.0.0:0".parse().expect("an address")
    };
    let socket = std::net::UdpSocket::bind(local).map_err(|e| e.to_string())?;
    socket.connect(resolver).map_err(|e| e.to_string())?;
    socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(|e| e.to_string())?;
    socket.send(&bytes).map_err(|e| e.to_string())?;
    let mut buf = [0u8; 4096];
    loop {
        let n = socket
            .recv(&mut buf)
            .map_err(|e| format!("{resolver}: {e}"))?;
        let Ok(reply) = Message::from_vec(&buf[..n]) else {
            continue;
        };
        if reply.id() != query.id() {
            continue;
        }
        return Ok(reply
            .answers()
            .iter()
            .filter_map(|r| match r.data() {
                RData::A(a) => Some(IpAddr::V4(a.0)),
                RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                _ => None,
            })
            .collect());
    }
}

/// An upstream address, `None` when `to` does not look like one (a file, then).
fn address(to: &str) -> Result<Option<SocketAddr>, String> {
    let (scheme, rest) = match to.split_once("://") {
        Some((s, r)) => (Some(s), r),
        None => (None, to),
    };
    if let Some(s) = scheme
        && s != "dns"
    {
        return Err(format!("{to}: only dns:// upstreams are supported"));
    }
    if let Ok(ip) = rest.parse::<IpAddr>() {
        return Ok(Some(SocketAddr::new(ip, 53)));
    }
    if let Ok(addr) = rest.parse::<SocketAddr>() {
        return Ok(Some(addr));
    }
    // Not an address: a file, or a host name to resolve.
    Ok(None)
}

/// The domains of a resolv.conf's last `search` (or `domain`) line, in order.
pub fn search_domains(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            match words.next() {
                Some("search" | "domain") => Some(words.map(str::to_string).collect()),
                _ => None,
            }
        })
        .next_back()
        .unwrap_or_default()
}

/// The `nameserver` lines of a resolv.conf, port 53.
pub fn nameservers(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some("nameserver")).then(|| words.next())?
        })
        // A zone index (`fe80::1%eth0`) is dropped with the address.
        .filter_map(|ip| ip.parse::<IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

/// A block's `forward` lines, in the order written: CoreDNS chains them, each passing on what
/// it does not take (its FROM, less its `except` zones) to the next.
#[derive(Debug, Clone)]
pub struct Forwards {
    pub stanzas: Vec<ForwardConfig>,
}

impl Setup for Forwards {
    fn parse(d: &Directive, cx: &Context<'_>) -> Result<Self, ConfigError> {
        Ok(Self {
            stanzas: vec![forward(d, cx.dir)?],
        })
    }

    /// Another `forward` line: one more stanza, after the earlier ones.
    fn merge(&mut self, later: Self) -> bool {
        self.stanzas.extend(later.stanzas);
        true
    }

    /// Each `forward` with the block's `cache` in front of it, when it has one (the same
    /// counters; each forward keeps its own entries), and knowing the line after it.
    fn build(&self, b: &mut Building<'_>) -> Result<(), SetupError> {
        let mut built = Vec::with_capacity(self.stanzas.len());
        let mut successor = None;
        for stanza in self.stanzas.iter().rev() {
            let forward = self::built(b, stanza, successor.take(), None)?;
            successor = Some(Arc::clone(&forward));
            built.push(forward);
        }
        b.chain.extend(built.into_iter().rev().map(Plugin::Forward));
        Ok(())
    }
}

/// The plugin of one `forward` (or `grpc`) line of the block being built: with the block's
/// `cache` and `dnstap`, its upstreams resolved; `successor` is the block's next `forward`.
pub(super) fn built(
    b: &Building<'_>,
    stanza: &ForwardConfig,
    successor: Option<Arc<Forward>>,
    grpc: Option<super::grpc::GrpcClient>,
) -> Result<Arc<Forward>, SetupError> {
    let cache = b.find::<CacheConfig>().map(|c| {
        let zones: Vec<String> = if c.zones.is_empty() {
            b.zones.iter().map(ToString::to_string).collect()
        } else {
            c.zones.iter().map(ToString::to_string).collect()
        };
        let counters = crate::metrics::metrics().register_cache(b.server_label(), zones);
        Cache::new(c, b.zones, counters)
    });
    let to = resolved(stanza).map_err(SetupError::Resolve)?;
    let taps = b.chain.iter().find_map(|p| match p {
        Plugin::Dnstap(taps) => Some(Arc::clone(taps)),
        _ => None,
    });
    Ok(Forward::new(stanza, to, cache, successor, taps, grpc))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(options: &str) -> Result<ForwardConfig, String> {
        let forwards: Forwards = crate::plugin::testing::settings(&format!(
            "forward . 10.0.0.2 10.0.0.3 {{\n{options}\n}}"
        ))?;
        Ok(forwards.stanzas[0].clone())
    }

    #[test]
    fn options_as_coredns_reads_them() {
        let f = config(
            "failover servfail REFUSED\nnext NXDOMAIN\nnext_on_nodata\nread_timeout 300ms\n\
             max_connect_attempts 1\nmax_idle_conns 4\nmax_age 1m\ndoh_method GET\n\
             health_check 1s domain example.org no_rec\nfailfast_all_unhealthy_upstreams\n\
             source_address 10.0.0.9\nforce_tcp\nprefer_udp\nmax_concurrent 0",
        )
        .unwrap();
        assert_eq!(f.failover, vec![2, 5]);
        assert_eq!(f.next, vec![3]);
        assert!(f.next_on_nodata && f.failfast_all_unhealthy_upstreams);
        assert_eq!(f.read_timeout, Duration::from_millis(300));
        assert_eq!(f.max_connect_attempts, Some(1));
        assert_eq!(f.health_check_domain.to_string(), "example.org.");
        assert!(!f.health_check_recursion);
        assert_eq!(f.source_address, Some("10.0.0.9".parse().unwrap()));
        // Both given: force_tcp wins when forwarding; 0 concurrent: no limit of its own.
        assert!(f.force_tcp && f.prefer_udp);
        assert_eq!(f.max_concurrent, None);
        for (options, error) in [
            ("failover NOERROR", "NoError cannot be used in failover"),
            ("failover", "failover needs an RCODE"),
            ("next NOPE", "NOPE is not a valid rcode"),
            ("read_timeout 0s", "read_timeout must be positive"),
            ("doh_method PUT", "doh_method must be either GET or POST"),
            ("max_age 5s", "must not be less than expire"),
            ("max_idle_conns -1", "max_idle_conns: not a number"),
            ("health_check 1s domain", "domain needs a name"),
            (
                "health_check 1s often",
                "health_check: unknown option often",
            ),
            ("next_on_nodata please", "next_on_nodata takes no arguments"),
            ("source_address here", "here is not an IP address"),
            (
                "tls_servername dns.example",
                "forward to plain dns:// upstreams",
            ),
        ] {
            let e = config(options).unwrap_err();
            assert!(e.contains(error), "{options}: {e}");
        }
    }

    #[test]
    fn upstreams_are_addresses_with_or_without_port_or_a_resolv_conf() {
        for (to, want) in [
            ("10.0.0.2", "10.0.0.2:53"),
            ("10.0.0.2:5353", "10.0.0.2:5353"),
            ("dns://10.0.0.2:5353", "10.0.0.2:5353"),
            ("fd00::2", "[fd00::2]:53"),
            ("[fd00::2]:5353", "[fd00::2]:5353"),
        ] {
            assert_eq!(address(to).unwrap(), Some(want.parse().unwrap()), "{to}");
        }
        assert_eq!(address("/etc/resolv.conf").unwrap(), None);
        assert_eq!(
            host_name("dns.example.local"),
            Some(("dns.example.local", 53))
        );
        assert_eq!(host_name("dns://localhost:5353"), Some(("localhost", 5353)));
        assert_eq!(host_name("/etc/resolv.conf"), None);
        assert_eq!(host_name("tls://dns.example"), None);
        assert_eq!(host_name("bad name"), None);
        // The system's resolver knows localhost (/etc/hosts).
        let targets = upstream("dns://localhost:5353", Path::new(".")).unwrap();
        assert_eq!(targets, [Target::Host("localhost".into(), 5353)]);
        let ups = resolved(&ForwardConfig {
            to: targets,
            ..config("").unwrap()
        })
        .unwrap();
        assert!(ups.contains(&"127.0.0.1:5353".parse().unwrap()), "{ups:?}");
        let e = upstream("no file here", Path::new(".")).unwrap_err();
        assert!(
            e.contains("not an IP address, file, or valid domain"),
            "{e}"
        );
        assert!(address("tls://10.0.0.2").is_err());
        assert_eq!(address("dns://a.host.name").unwrap(), None);
        let conf = "# comment\nsearch a.b\nnameserver 10.0.0.10\nnameserver fd00::10\noptions ndots:5\nnameserver bogus\n";
        assert_eq!(
            nameservers(conf),
            vec![
                "10.0.0.10:53".parse::<SocketAddr>().unwrap(),
                "[fd00::10]:53".parse().unwrap()
            ]
        );
    }
}
