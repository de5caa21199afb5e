//! The `cache` directive, as CoreDNS's `cache` plugin reads it.

use std::time::Duration;

use hickory_proto::rr::LowerName;

use crate::corefile::{ConfigError, Directive, directive_err, parse_duration, zone_list};
use crate::plugin::setup::{Context, Setup};

const NAME: &str = "cache";
/// The entries CoreDNS's cache keeps at the least, whatever capacity it is given (256 shards
/// of 4).
const COREDNS_SMALLEST: usize = 1024;

/// CoreDNS's defaults: capacity per kind, TTL caps, and the floor.
const CAPACITY: usize = 9984;
const SUCCESS_TTL: u32 = 3600;
const DENIAL_TTL: u32 = 1800;
const MIN_TTL: u32 = 5;
const SERVFAIL_TTL: Duration = Duration::from_secs(5);
const MAX_SERVFAIL_TTL: Duration = Duration::from_secs(300);
const STALE_FOR: Duration = Duration::from_secs(3600);

/// How one kind of answer (positive or negative) is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    pub capacity: usize,
    pub max_ttl: u32,
    pub min_ttl: u32,
    /// Zones where this kind is not cached (`disable`).
    pub disabled: Vec<LowerName>,
}

/// `cache [TTL] [ZONES...] { ... }`.
#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// Only names under these zones are cached (empty: the server block's zones).
    pub zones: Vec<LowerName>,
    pub success: Kept,
    pub denial: Kept,
    /// How long SERVFAIL answers are kept (0: not at all).
    pub servfail: Duration,
    /// `serve_stale [DURATION]`: how long past expiry an entry may answer when every upstream
    /// fails.
    pub serve_stale: Option<Duration>,
    /// `serve_stale ... verify`: ask the upstream first and answer stale only when it fails;
    /// otherwise (`immediate`, CoreDNS's default) answer stale at once and refresh behind.
    pub stale_verify: bool,
    /// `keepttl`: answers carry the TTLs as received, not counted down.
    pub keep_ttl: bool,
    pub prefetch: Option<Prefetch>,
}

/// `prefetch AMOUNT [DURATION] [PERCENTAGE%]`: an entry asked for AMOUNT times within
/// DURATION is fetched again in the background once less than PERCENTAGE of its TTL is left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prefetch {
    pub amount: u32,
    pub window: Duration,
    pub percentage: u8,
}

pub fn cache(d: &Directive) -> Result<CacheConfig, ConfigError> {
    let mut args = d.args.as_slice();
    let mut max_ttl = None;
    if let Some((first, rest)) = args.split_first()
        && let Ok(ttl) = first.parse::<u32>()
    {
        if ttl == 0 {
            return Err(directive_err(d, NAME, "TTL must be above 0"));
        }
        max_ttl = Some(ttl);
        args = rest;
    }
    let zones = zone_list(args, d, NAME)?;
    let kept = |max: u32| Kept {
        capacity: CAPACITY,
        max_ttl: max_ttl.unwrap_or(max),
        min_ttl: MIN_TTL,
        disabled: Vec::new(),
    };
    let mut c = CacheConfig {
        zones,
        success: kept(SUCCESS_TTL),
        denial: kept(DENIAL_TTL),
        servfail: SERVFAIL_TTL,
        serve_stale: None,
        stale_verify: false,
        keep_ttl: false,
        prefetch: None,
    };
    for o in &d.block {
        let number = |s: &str, what: &str| -> Result<u32, ConfigError> {
            s.parse()
                .map_err(|_| directive_err(o, NAME, format!("{what}: {s:?} is not a number")))
        };
        match o.name.as_str() {
            kind @ ("success" | "denial") => {
                let kept = if kind == "success" {
                    &mut c.success
                } else {
                    &mut c.denial
                };
                let [capacity, rest @ ..] = o.args.as_slice() else {
                    return Err(directive_err(o, NAME, format!("{kind} needs a capacity")));
                };
                // CoreDNS takes any integer: none at all (`denial 0`, which operators write
                // hoping to turn the kind off) leaves its smallest store, 256 shards of 4
                // entries. Here it is the same 1024 entries; any other count is kept exactly.
                let asked: i64 = capacity.parse().map_err(|_| {
                    directive_err(o, NAME, format!("capacity: {capacity:?} is not a number"))
                })?;
                kept.capacity = usize::try_from(asked)
                    .ok()
                    .filter(|&n| n > 0)
                    .unwrap_or(COREDNS_SMALLEST);
                match rest {
                    [] => {}
                    [ttl] => kept.max_ttl = number(ttl, "TTL")?,
                    [ttl, min] => {
                        kept.max_ttl = number(ttl, "TTL")?;
                        kept.min_ttl = number(min, "minimum TTL")?;
                    }
                    _ => {
                        return Err(directive_err(
                            o,
                            NAME,
                            format!("{kind}: too many arguments"),
                        ));
                    }
                }
                if kept.max_ttl == 0 || kept.min_ttl > kept.max_ttl {
                    return Err(directive_err(
                        o,
                        NAME,
                        format!("{kind}: the TTL must be above 0 and not below the minimum"),
                    ));
                }
            }
            "servfail" => {
                let [duration] = o.args.as_slice() else {
                    return Err(directive_err(o, NAME, "servfail needs a duration"));
                };
                c.servfail = parse_duration(duration)
                    .map_err(|m| directive_err(o, NAME, format!("servfail: {m}")))?;
                if c.servfail > MAX_SERVFAIL_TTL {
                    return Err(directive_err(o, NAME, "servfail: at most 5m"));
                }
            }
            "serve_stale" => {
                c.serve_stale = Some(match o.args.as_slice() {
                    [] => STALE_FOR,
                    [duration] | [duration, _] => parse_duration(duration)
                        .map_err(|m| directive_err(o, NAME, format!("serve_stale: {m}")))?,
                    _ => return Err(directive_err(o, NAME, "serve_stale: too many arguments")),
                });
                if let [_, mode] = o.args.as_slice() {
                    c.stale_verify = match mode.as_str() {
                        "verify" => true,
                        "immediate" => false,
                        _ => {
                            return Err(directive_err(
                                o,
                                NAME,
                                format!("serve_stale: unknown refresh mode {mode:?}"),
                            ));
                        }
                    };
                }
            }
            "disable" => {
                let [kind, zones @ ..] = o.args.as_slice() else {
                    return Err(directive_err(o, NAME, "disable needs success or denial"));
                };
                let kept = match kind.as_str() {
                    "success" => &mut c.success,
                    "denial" => &mut c.denial,
                    other => {
                        return Err(directive_err(
                            o,
                            NAME,
                            format!("disable: {other:?} is not success or denial"),
                        ));
                    }
                };
                if zones.is_empty() {
                    kept.disabled
                        .push(LowerName::from(hickory_proto::rr::Name::root()));
                }
                kept.disabled.extend(zone_list(zones, o, NAME)?);
            }
            "keepttl" => c.keep_ttl = true,
            "prefetch" => {
                let [amount, rest @ ..] = o.args.as_slice() else {
                    return Err(directive_err(o, NAME, "prefetch needs an amount"));
                };
                let mut p = Prefetch {
                    amount: number(amount, "prefetch amount")?,
                    window: Duration::from_secs(60),
                    percentage: 10,
                };
                if p.amount == 0 {
                    return Err(directive_err(o, NAME, "prefetch amount must be above 0"));
                }
                for arg in rest {
                    if let Some(pct) = arg.strip_suffix('%') {
                        p.percentage = pct
                            .parse()
                            .ok()
                            .filter(|v| (1..=100).contains(v))
                            .ok_or_else(|| {
                                directive_err(o, NAME, format!("prefetch: bad percentage {arg:?}"))
                            })?;
                    } else {
                        p.window = parse_duration(arg)
                            .map_err(|m| directive_err(o, NAME, format!("prefetch: {m}")))?;
                    }
                }
                c.prefetch = Some(p);
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
    Ok(c)
}
impl Setup for CacheConfig {
    fn parse(d: &Directive, _: &Context<'_>) -> Result<Self, ConfigError> {
        cache(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(lines: &str) -> Result<CacheConfig, String> {
        crate::plugin::testing::settings(lines)
    }

    #[test]
    fn capacities_as_coredns_takes_them() {
        let c = config("cache {\n denial 0\n success 2 60\n}").unwrap();
        assert_eq!(
            c.denial.capacity, COREDNS_SMALLEST,
            "denial 0 is CoreDNS's smallest store"
        );
        assert_eq!((c.success.capacity, c.success.max_ttl), (2, 60));
        let c = config("cache 30 {\n success -5\n}").unwrap();
        assert_eq!(c.success.capacity, COREDNS_SMALLEST);
        assert_eq!(c.denial.capacity, CAPACITY);
        let e = config("cache {\n denial lots\n}").unwrap_err();
        assert!(e.contains("capacity: \"lots\" is not a number"), "{e}");
    }
}
