//! What directives' arguments are made of: zones, durations, names, addresses, paths,
//! `fallthrough`, and the error that names the line.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hickory_proto::rr::{LowerName, Name};

use super::{ConfigError, Directive};

/// `fallthrough [ZONES...]`: names in these zones (all when empty) pass to the next plugin.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fallthrough {
    zones: Option<crate::wire::Zones>,
}

impl Fallthrough {
    /// Whether `name` falls through.
    pub fn through(&self, name: &LowerName) -> bool {
        self.zones
            .as_ref()
            .is_some_and(|zones| zones.is_empty() || zones.holds(name))
    }

    /// Whether `fallthrough` was given at all.
    pub fn is_set(&self) -> bool {
        self.zones.is_some()
    }

    /// [`Self::through`] for a name in lowercase wire format.
    pub fn through_wire(&self, key: &[u8]) -> bool {
        self.zones
            .as_ref()
            .is_some_and(|zones| zones.is_empty() || zones.holds_wire(key))
    }

    pub fn parse(args: &[String], d: &Directive, parent: &str) -> Result<Self, ConfigError> {
        let zones = zone_list(args, d, parent)?;
        Ok(Self {
            zones: Some(crate::wire::Zones::new(&zones)),
        })
    }
}

pub fn directive_err(d: &Directive, name: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Directive {
        pos: d.pos.to_string(),
        directive: name.to_string(),
        message: message.into(),
    }
}

/// Caddy's "Wrong argument count" error for line `d` of directive `parent`, as CoreDNS's
/// setups give it.
pub fn arg_count_err(d: &Directive, parent: &str) -> ConfigError {
    directive_err(
        d,
        parent,
        format!(
            "Wrong argument count or unexpected line ending after '{}'",
            d.name
        ),
    )
}

/// A zone as written in a Corefile: a name, or a CIDR for a reverse zone.
/// One zone: a name, or a CIDR as its reverse zone; a CIDR off an octet (IPv4) or nibble (IPv6)
/// boundary gives the first of the zones [`parse_zones`] makes of it (CoreDNS's `forward`
/// FROM takes it so, with a warning).
pub fn parse_zone(zone: &str) -> Result<LowerName, String> {
    let mut zones = parse_zones(zone)?;
    if zones.len() > 1 {
        tracing::warn!(
            "{zone} expands to {} reverse zones: only {} is used",
            zones.len(),
            zones[0]
        );
    }
    Ok(zones.swap_remove(0))
}

/// The zones of a Corefile zone argument: a name, or a CIDR as the reverse zones that cover
/// it exactly, as CoreDNS expands it (`10.96.0.0/12`: `96.10.in-addr.arpa.` through
/// `111.10.in-addr.arpa.`; `fd00::/7`: `c.f.ip6.arpa.` and `d.f.ip6.arpa.`).
pub fn parse_zones(zone: &str) -> Result<Vec<LowerName>, String> {
    if zone.is_empty() {
        return Err("empty zone".into());
    }
    if let Some((ip, len)) = zone.split_once('/') {
        return reverse_zones(ip, len).ok_or_else(|| format!("{zone}: not a CIDR"));
    }
    name_zone(zone).map(|z| vec![z])
}

fn name_zone(zone: &str) -> Result<LowerName, String> {
    let name = Name::from_ascii(zone).map_err(|e| format!("{zone}: bad zone: {e}"))?;
    let mut name = name.to_lowercase();
    name.set_fqdn(true);
    Ok(LowerName::new(&name))
}

/// The reverse zones of the network `ip/len`: one per octet- (IPv4) or nibble-aligned network
/// it splits into, in address order.
fn reverse_zones(ip: &str, len: &str) -> Option<Vec<LowerName>> {
    let ip: IpAddr = ip.parse().ok()?;
    let len: u32 = len.parse().ok()?;
    let (bits, step) = match ip {
        IpAddr::V4(_) => (32, 8),
        IpAddr::V6(_) => (128, 4),
    };
    if len > bits {
        return None;
    }
    let aligned = len.div_ceil(step) * step;
    let base = match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)) << 96,
        IpAddr::V6(v6) => u128::from(v6),
    };
    // The network's address, and each aligned network within it.
    let mask = |l: u32| if l == 0 { 0 } else { u128::MAX << (128 - l) };
    let network = base & mask(len);
    (0..1u128 << (aligned - len))
        .map(|i| {
            let address = network | i.checked_shl(128 - aligned).unwrap_or(0);
            let ip = match ip {
                IpAddr::V4(_) => IpAddr::from(std::net::Ipv4Addr::from((address >> 96) as u32)),
                IpAddr::V6(_) => IpAddr::from(std::net::Ipv6Addr::from(address)),
            };
            reverse_zone(&ip.to_string(), &aligned.to_string())
        })
        .collect()
}

/// The reverse zone of `ip/len`, `len` on an octet (IPv4) or nibble (IPv6) boundary.
pub fn reverse_zone(ip: &str, len: &str) -> Option<LowerName> {
    let ip: IpAddr = ip.parse().ok()?;
    let len: usize = len.parse().ok()?;
    let labels: Vec<String> = match ip {
        IpAddr::V4(v4) if len <= 32 && len.is_multiple_of(8) => v4.octets()[..len / 8]
            .iter()
            .rev()
            .map(u8::to_string)
            .chain(["in-addr".into(), "arpa".into()])
            .collect(),
        IpAddr::V6(v6) if len <= 128 && len.is_multiple_of(4) => {
            let nibbles: Vec<String> = v6
                .octets()
                .iter()
                .flat_map(|b| [b >> 4, b & 0xf])
                .map(|n| format!("{n:x}"))
                .collect();
            nibbles[..len / 4]
                .iter()
                .rev()
                .cloned()
                .chain(["ip6".into(), "arpa".into()])
                .collect()
        }
        _ => return None,
    };
    let name = Name::from_ascii(labels.join(".") + ".").ok()?;
    Some(LowerName::new(&name))
}

pub fn is_reverse(zone: &LowerName) -> bool {
    let arpa = [
        LowerName::new(&Name::from_ascii("in-addr.arpa.").expect("static name")),
        LowerName::new(&Name::from_ascii("ip6.arpa.").expect("static name")),
    ];
    arpa.iter().any(|a| a.zone_of(zone))
}

/// Plugin zones: the arguments, or the server block's zones when there are none.
pub fn plugin_zones(
    d: &Directive,
    name: &str,
    args: &[String],
    block_zones: &[LowerName],
) -> Result<Vec<LowerName>, ConfigError> {
    if args.is_empty() {
        return Ok(block_zones.to_vec());
    }
    zone_list(args, d, name)
}

/// Every zone of `args` ([`parse_zones`]: a CIDR gives each of its reverse zones), in order.
pub fn zone_list(
    args: &[String],
    d: &Directive,
    name: &str,
) -> Result<Vec<LowerName>, ConfigError> {
    let zones = args
        .iter()
        .map(|a| parse_zones(a).map_err(|m| directive_err(d, name, m)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(zones.into_iter().flatten().collect())
}

pub fn one_arg<'a>(d: &'a Directive, parent: &str) -> Result<&'a str, ConfigError> {
    match d.args.as_slice() {
        [a] => Ok(a),
        _ => Err(directive_err(
            d,
            parent,
            format!("{} takes exactly one argument", d.name),
        )),
    }
}

pub fn number<T: std::str::FromStr>(d: &Directive, parent: &str) -> Result<T, ConfigError> {
    let a = one_arg(d, parent)?;
    a.parse().map_err(|_| {
        directive_err(
            d,
            parent,
            format!("{}: {a:?} is not a valid number", d.name),
        )
    })
}

pub fn resolve(dir: &Path, path: &str) -> PathBuf {
    let p = Path::new(path);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        dir.join(p)
    }
}

/// The address of an HTTP endpoint: `[HOST]:PORT`, or `default` when none is given.
pub fn http_addr(d: &Directive, default: &str) -> Result<String, ConfigError> {
    let addr = match d.args.as_slice() {
        [] => default.to_string(),
        [a] => a.clone(),
        _ => return Err(directive_err(d, &d.name, "takes at most one address")),
    };
    let bad = || directive_err(d, &d.name, format!("{addr:?} is not HOST:PORT or :PORT"));
    let (host, port) = addr.rsplit_once(':').ok_or_else(bad)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let host_ok = host.is_empty() || host.parse::<IpAddr>().is_ok() || host == "localhost";
    if port.parse::<u16>().is_err() || !host_ok {
        return Err(bad());
    }
    if d.name != "health" && !d.block.is_empty() {
        return Err(directive_err(d, &d.name, "takes no block"));
    }
    Ok(addr)
}

/// A name from a hosts entry, lowercased and fully qualified.
pub fn host_name(s: &str) -> Result<Name, String> {
    let mut name = Name::from_ascii(s)
        .map_err(|e| format!("{s:?} is not a valid name: {e}"))?
        .to_lowercase();
    if name.is_root() {
        return Err(format!("{s:?} is not a valid name"));
    }
    name.set_fqdn(true);
    Ok(name)
}

/// Parses a Go-style duration: `5s`, `1m30s`, `100ms`, `0`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    if rest.is_empty() {
        return Err("empty duration".into());
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .ok_or_else(|| format!("{s:?}: missing unit"))?;
        let value: f64 = rest[..digits]
            .parse()
            .map_err(|_| format!("{s:?} is not a duration"))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            u => return Err(format!("{s:?}: unknown unit {u:?}")),
        };
        total += Duration::try_from_secs_f64(value * scale)
            .map_err(|_| format!("{s:?} is out of range"))?;
        rest = &rest[unit_len..];
    }
    Ok(total)
}
