//! The `rrl` directive, as CoreDNS's external `rrl` plugin (github.com/coredns/rrl) reads it:
//! response rate limiting in the manner of BIND 9 and Knot DNS.

use std::time::Duration;

use hickory_proto::rr::LowerName;

use super::Rrl;
use crate::corefile::{ConfigError, Directive, directive_err, plugin_zones};
use crate::plugin::Plugin;
use crate::plugin::setup::{Building, Context, Setup, SetupError};

const NAME: &str = "rrl";
/// The plugin's defaults.
const WINDOW: Duration = Duration::from_secs(15);
const IPV4_PREFIX: u8 = 24;
const IPV6_PREFIX: u8 = 56;
const MAX_TABLE_SIZE: usize = 100_000;
/// The longest `window` taken (BIND's limit): accounts never hold more debt than this.
const MAX_WINDOW: Duration = Duration::from_secs(3600);
/// The largest `max-table-size` taken: the table is allocated whole at start (24 bytes an
/// account), so this bounds what a typo can ask for.
const MAX_MAX_TABLE_SIZE: usize = 10_000_000;

/// `rrl [ZONES...] { ... }`. Allowances are per second; 0 leaves that kind unlimited.
#[derive(Debug, Clone, PartialEq)]
pub struct RrlConfig {
    /// Only questions under these zones are limited (the server block's zones by default).
    pub zones: Vec<LowerName>,
    /// How much debt an account may run up: a client over its allowance is answered again at
    /// most this long (plus one response's interval) after it stops.
    pub window: Duration,
    /// Clients are accounted by address prefix of these lengths.
    pub ipv4_prefix: u8,
    pub ipv6_prefix: u8,
    /// Answers with records.
    pub responses: f64,
    /// NOERROR without answers (nor a referral).
    pub nodata: f64,
    pub nxdomains: f64,
    /// NOERROR without answers whose authority section starts with NS records.
    pub referrals: f64,
    /// Any other rcode (SERVFAIL, REFUSED, ...).
    pub errors: f64,
    /// Queries, whatever their answer; over it a query is dropped unanswered.
    pub requests: f64,
    /// Every Nth limited response goes out empty with TC set (0: every one is dropped).
    pub slip_ratio: u32,
    /// The most accounts kept at once; when full, the one with the most credit goes.
    pub max_table_size: usize,
    /// Count what would be limited, and answer it anyway.
    pub report_only: bool,
}

impl RrlConfig {
    /// Whether anything at all is limited.
    pub fn limits_anything(&self) -> bool {
        [
            self.responses,
            self.nodata,
            self.nxdomains,
            self.referrals,
            self.errors,
            self.requests,
        ]
        .iter()
        .any(|&a| a > 0.0)
    }
}

pub fn rrl(d: &Directive, block_zones: &[LowerName]) -> Result<RrlConfig, ConfigError> {
    let mut c = RrlConfig {
        zones: plugin_zones(d, NAME, &d.args, block_zones)?,
        window: WINDOW,
        ipv4_prefix: IPV4_PREFIX,
        ipv6_prefix: IPV6_PREFIX,
        responses: 0.0,
        nodata: 0.0,
        nxdomains: 0.0,
        referrals: 0.0,
        errors: 0.0,
        requests: 0.0,
        slip_ratio: 0,
        max_table_size: MAX_TABLE_SIZE,
        report_only: false,
    };
    // nodata, nxdomains, referrals and errors default to responses-per-second.
    let (mut nodata, mut nxdomains, mut referrals, mut errors) = (None, None, None, None);
    for o in &d.block {
        let option = o.name.as_str();
        if !o.block.is_empty() {
            return Err(directive_err(o, NAME, format!("{option} takes no block")));
        }
        if option == "report-only" {
            if !o.args.is_empty() {
                return Err(arg_err(o));
            }
            c.report_only = true;
            continue;
        }
        let [arg] = o.args.as_slice() else {
            return Err(match option {
                "window"
                | "ipv4-prefix-length"
                | "ipv6-prefix-length"
                | "responses-per-second"
                | "nodata-per-second"
                | "nxdomains-per-second"
                | "referrals-per-second"
                | "errors-per-second"
                | "requests-per-second"
                | "slip-ratio"
                | "max-table-size" => arg_err(o),
                _ => unknown(o),
            });
        };
        let arg = arg.as_str();
        match option {
            "window" => {
                let seconds = float(o, arg)?;
                if seconds <= 0.0 {
                    return Err(directive_err(o, NAME, "window must be greater than zero"));
                }
                c.window = Duration::try_from_secs_f64(seconds)
                    .ok()
                    .filter(|w| *w <= MAX_WINDOW)
                    .ok_or_else(|| {
                        directive_err(
                            o,
                            NAME,
                            format!("window must be at most {} seconds", MAX_WINDOW.as_secs()),
                        )
                    })?;
            }
            "ipv4-prefix-length" => c.ipv4_prefix = prefix(o, arg, 32)?,
            "ipv6-prefix-length" => c.ipv6_prefix = prefix(o, arg, 128)?,
            "responses-per-second" => c.responses = allowance(o, arg)?,
            "nodata-per-second" => nodata = Some(allowance(o, arg)?),
            "nxdomains-per-second" => nxdomains = Some(allowance(o, arg)?),
            "referrals-per-second" => referrals = Some(allowance(o, arg)?),
            "errors-per-second" => errors = Some(allowance(o, arg)?),
            "requests-per-second" => c.requests = allowance(o, arg)?,
            "slip-ratio" => {
                c.slip_ratio = arg.parse().map_err(|_| {
                    directive_err(
                        o,
                        NAME,
                        format!("slip-ratio: {arg:?} is not a whole number from 0"),
                    )
                })?;
            }
            "max-table-size" => {
                let size: usize = arg.parse().map_err(|_| {
                    directive_err(
                        o,
                        NAME,
                        format!("max-table-size: {arg:?} is not a whole number"),
                    )
                })?;
                if !(1..=MAX_MAX_TABLE_SIZE).contains(&size) {
                    return Err(directive_err(
                        o,
                        NAME,
                        format!("max-table-size must be between 1 and {MAX_MAX_TABLE_SIZE}"),
                    ));
                }
                c.max_table_size = size;
            }
            _ => return Err(unknown(o)),
        }
    }
    c.nodata = nodata.unwrap_or(c.responses);
    c.nxdomains = nxdomains.unwrap_or(c.responses);
    c.referrals = referrals.unwrap_or(c.responses);
    c.errors = errors.unwrap_or(c.responses);
    Ok(c)
}

/// CoreDNS's message for an option with the wrong number of arguments.
fn arg_err(o: &Directive) -> ConfigError {
    directive_err(
        o,
        NAME,
        format!(
            "Wrong argument count or unexpected line ending after '{}'",
            o.name
        ),
    )
}

fn unknown(o: &Directive) -> ConfigError {
    directive_err(o, NAME, format!("unknown property '{}'", o.name))
}

/// A finite decimal number, as Go's `strconv.ParseFloat` reads the plugin's values.
fn float(o: &Directive, arg: &str) -> Result<f64, ConfigError> {
    arg.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .ok_or_else(|| directive_err(o, NAME, format!("{}: {arg:?} is not a number", o.name)))
}

/// A per-second allowance: a number from 0 (0: not limited).
fn allowance(o: &Directive, arg: &str) -> Result<f64, ConfigError> {
    let v = float(o, arg)?;
    if v < 0.0 {
        return Err(directive_err(
            o,
            NAME,
            format!("{} cannot be negative", o.name),
        ));
    }
    Ok(v)
}

/// A prefix length from 1 to `max` bits.
fn prefix(o: &Directive, arg: &str, max: u8) -> Result<u8, ConfigError> {
    arg.parse::<u8>()
        .ok()
        .filter(|v| (1..=max).contains(v))
        .ok_or_else(|| {
            directive_err(
                o,
                NAME,
                format!("{} must be between 1 and {max}: {arg:?}", o.name),
            )
        })
}

impl Setup for RrlConfig {
    fn parse(d: &Directive, cx: &Context<'_>) -> Result<Self, ConfigError> {
        rrl(d, cx.zones)
    }

    fn build(&self, b: &mut Building<'_>) -> Result<(), SetupError> {
        if !self.limits_anything() {
            tracing::warn!(
                "rrl in the block at {}: every allowance is 0, nothing is limited",
                b.pos
            );
        }
        b.chain.push(Plugin::Rrl(Box::new(Rrl::new(self))));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::Config;
    use crate::corefile::parse_zone;

    fn load(text: &str) -> Result<Config, ConfigError> {
        Config::from_text(text, 53, Path::new("/etc/coredns"))
    }

    fn rrl_of(body: &str) -> RrlConfig {
        let c = load(&format!("example.org:53 {{\n rrl{body}\n}}\n")).unwrap();
        c.servers[0].get::<RrlConfig>().cloned().unwrap()
    }

    #[test]
    fn the_plugins_defaults() {
        let c = rrl_of("");
        assert_eq!(c.zones, vec![parse_zone("example.org").unwrap()]);
        assert_eq!(c.window, Duration::from_secs(15));
        assert_eq!((c.ipv4_prefix, c.ipv6_prefix), (24, 56));
        assert_eq!(c.responses, 0.0);
        assert_eq!(c.requests, 0.0);
        assert_eq!(c.slip_ratio, 0);
        assert_eq!(c.max_table_size, 100_000);
        assert!(!c.report_only);
        assert!(!c.limits_anything());
    }

    #[test]
    fn allowances_default_to_responses_per_second() {
        let c = rrl_of(
            " a.example.org b.example.org {\n  responses-per-second 10\n  nxdomains-per-second 0\n  errors-per-second 2.5\n  window 1.5\n  ipv4-prefix-length 32\n  ipv6-prefix-length 128\n  slip-ratio 2\n  requests-per-second 100\n  max-table-size 16\n  report-only\n }",
        );
        assert_eq!(
            c.zones,
            vec![
                parse_zone("a.example.org").unwrap(),
                parse_zone("b.example.org").unwrap()
            ]
        );
        assert_eq!(c.responses, 10.0);
        assert_eq!(c.nodata, 10.0, "defaults to responses-per-second");
        assert_eq!(c.referrals, 10.0, "defaults to responses-per-second");
        assert_eq!(c.nxdomains, 0.0, "set to 0: not limited");
        assert_eq!(c.errors, 2.5);
        assert_eq!(c.window, Duration::from_millis(1500));
        assert_eq!((c.ipv4_prefix, c.ipv6_prefix), (32, 128));
        assert_eq!(c.slip_ratio, 2);
        assert_eq!(c.requests, 100.0);
        assert_eq!(c.max_table_size, 16);
        assert!(c.report_only);
        assert!(c.limits_anything());
    }

    #[test]
    fn the_default_holds_wherever_responses_per_second_is_written() {
        let c = rrl_of(" {\n  nodata-per-second 3\n  responses-per-second 7\n }");
        assert_eq!((c.responses, c.nodata, c.nxdomains), (7.0, 3.0, 7.0));
    }

    #[test]
    fn bad_options_name_their_line() {
        for (body, line, needle) in [
            (" {\n  window 0\n }", 3, "window must be greater than zero"),
            (" {\n  window -1\n }", 3, "window must be greater than zero"),
            (" {\n  window 7200\n }", 3, "at most 3600"),
            (" {\n  window soon\n }", 3, "is not a number"),
            (" {\n  window\n }", 3, "Wrong argument count"),
            (" {\n  window 1 2\n }", 3, "Wrong argument count"),
            (" {\n  ipv4-prefix-length 0\n }", 3, "between 1 and 32"),
            (" {\n  ipv4-prefix-length 33\n }", 3, "between 1 and 32"),
            (" {\n  ipv6-prefix-length 129\n }", 3, "between 1 and 128"),
            (" {\n  responses-per-second -1\n }", 3, "cannot be negative"),
            (" {\n  nodata-per-second NaN\n }", 3, "not a number"),
            (" {\n  nxdomains-per-second inf\n }", 3, "not a number"),
            (" {\n  requests-per-second x\n }", 3, "not a number"),
            (" {\n  slip-ratio -1\n }", 3, "slip-ratio"),
            (" {\n  slip-ratio 1.5\n }", 3, "slip-ratio"),
            (" {\n  max-table-size 0\n }", 3, "between 1 and"),
            (" {\n  max-table-size 100000000\n }", 3, "between 1 and"),
            (" {\n  max-table-size lots\n }", 3, "max-table-size"),
            (" {\n  report-only yes\n }", 3, "Wrong argument count"),
            (" {\n  giraffe 1\n }", 3, "unknown property 'giraffe'"),
            (" {\n  giraffe\n }", 3, "unknown property 'giraffe'"),
            (" {\n  window 1 {\n   x\n  }\n }", 3, "takes no block"),
            (" bad..zone", 2, "rrl"),
        ] {
            let text = format!("example.org:53 {{\n rrl{body}\n}}\n");
            let e = load(&text).unwrap_err().to_string();
            assert!(e.starts_with(&format!("Corefile:{line}:")), "{text:?}: {e}");
            assert!(e.contains("rrl: "), "{text:?}: {e}");
            assert!(e.contains(needle), "{text:?}: {e}");
        }
        let twice = load("example.org:53 {\n rrl\n rrl\n}\n").unwrap_err();
        assert!(twice.to_string().contains("once"), "{twice}");
    }
}
