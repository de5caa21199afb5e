//! The `forward` directive, as CoreDNS's `forward` plugin reads it.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
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
    /// Upstreams, in the order given (a resolv.conf file contributes its nameservers).
    pub to: Vec<SocketAddr>,
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
    pub policy: Policy,
    /// In-flight forwarded queries allowed; more are answered REFUSED.
    pub max_concurrent: Option<usize>,
}

/// Parses a `forward` directive; relative resolv.conf paths are taken from `dir`.
pub fn forward(d: &Directive, dir: &Path) -> Result<ForwardConfig, ConfigError> {
    let [from, to @ ..] = d.args.as_slice() else {
        return Err(directive_err(d, NAME, "needs FROM and at least one TO"));
    };
    if to.is_empty() {
        return Err(directive_err(d, NAME, "needs at least one TO"));
    }
    let from = parse_zone(from).map_err(|m| directive_err(d, NAME, m))?;
    let mut upstreams = Vec::new();
    for t in to {
        upstreams.extend(upstream(t, dir).map_err(|m| directive_err(d, NAME, m))?);
    }
    if upstreams.is_empty() {
        return Err(directive_err(
            d,
            NAME,
            "no upstream (an empty resolv.conf?)",
        ));
    }
    if upstreams.len() > MAX_UPSTREAMS {
        return Err(directive_err(
            d,
            NAME,
            format!("more than {MAX_UPSTREAMS} upstreams"),
        ));
    }
    let mut f = ForwardConfig {
        from,
        to: upstreams,
        except: Vec::new(),
        force_tcp: false,
        prefer_udp: false,
        expire: Duration::from_secs(10),
        max_fails: 2,
        health_check: Duration::from_millis(500),
        health_check_recursion: true,
        policy: Policy::Random,
        max_concurrent: None,
    };
    for o in &d.block {
        match o.name.as_str() {
            "except" => {
                if o.args.is_empty() {
                    return Err(directive_err(o, NAME, "except needs at least one zone"));
                }
                for z in &o.args {
                    f.except
                        .push(parse_zone(z).map_err(|m| directive_err(o, NAME, m))?);
                }
            }
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
                match rest {
                    [] => {}
                    [no_rec] if no_rec == "no_rec" => f.health_check_recursion = false,
                    _ => {
                        return Err(directive_err(
                            o,
                            NAME,
                            "health_check: only no_rec is supported after the interval",
                        ));
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
                if n == 0 {
                    return Err(directive_err(o, NAME, "max_concurrent must be above 0"));
                }
                f.max_concurrent = Some(n);
            }
            "tls" | "tls_servername" | "next" | "failover" | "failfast_all_unhealthy_upstreams" => {
                return Err(directive_err(
                    o,
                    NAME,
                    format!("{} is not supported yet", o.name),
                ));
            }
            other => {
                return Err(directive_err(
                    o,
                    NAME,
                    format!("unknown property {other:?}"),
                ));
            }
        }
    }
    if f.force_tcp && f.prefer_udp {
        return Err(directive_err(
            d,
            NAME,
            "force_tcp and prefer_udp cannot both be set",
        ));
    }
    Ok(f)
}

fn duration(o: &Directive) -> Result<Duration, ConfigError> {
    parse_duration(one_arg(o, NAME)?)
        .map_err(|m| directive_err(o, NAME, format!("{}: {m}", o.name)))
}

/// One TO: `IP`, `IP:PORT`, `[IPv6]:PORT`, `dns://` before any of them, or a resolv.conf file.
fn upstream(to: &str, dir: &Path) -> Result<Vec<SocketAddr>, String> {
    if let Some(addr) = address(to)? {
        return Ok(vec![addr]);
    }
    let path = resolve(dir, to);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("{to}: not an address, and not a readable resolv.conf: {e}"))?;
    Ok(nameservers(&text))
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
    if scheme.is_some() {
        return Err(format!("{to}: not an address"));
    }
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
    /// counters; each forward keeps its own entries).
    fn build(&self, b: &mut Building<'_>) -> Result<(), SetupError> {
        for stanza in &self.stanzas {
            let cache = b.find::<CacheConfig>().map(|c| {
                let zones: Vec<String> = if c.zones.is_empty() {
                    b.zones.iter().map(ToString::to_string).collect()
                } else {
                    c.zones.iter().map(ToString::to_string).collect()
                };
                let counters = crate::metrics::metrics().register_cache(b.server_label(), zones);
                Cache::new(c, b.zones, counters)
            });
            b.chain.push(Plugin::Forward(Forward::new(stanza, cache)));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(address("tls://10.0.0.2").is_err());
        assert!(address("dns://nonsense").is_err());
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
