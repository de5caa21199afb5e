//! `timeouts`: the read, write and idle timeouts of the DNS-over-TCP server on a port.

use std::time::Duration;

use super::setup::{Context, Setup};
use crate::corefile::{ConfigError, Directive, directive_err, parse_duration};

/// `timeouts { read DURATION; write DURATION; idle DURATION }`: CoreDNS's timeouts of the
/// DNS-over-TCP server on a port. One left out keeps its default (read 3s, write 5s, idle 10s).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timeouts {
    /// How long a new connection has to send its first query, whole.
    pub read: Option<Duration>,
    /// How long writing one response may take.
    pub write: Option<Duration>,
    /// How long a connection has to send each later query, whole.
    pub idle: Option<Duration>,
}

impl Timeouts {
    /// These timeouts with the ones `later` sets in their place.
    pub fn then(self, later: Timeouts) -> Timeouts {
        Timeouts {
            read: later.read.or(self.read),
            write: later.write.or(self.write),
            idle: later.idle.or(self.idle),
        }
    }
}

/// CoreDNS's bounds on each of `timeouts`.
pub const TIMEOUT_MIN: Duration = Duration::from_secs(1);
pub const TIMEOUT_MAX: Duration = Duration::from_secs(24 * 3600);

/// `timeouts { read DURATION; write DURATION; idle DURATION }`, with CoreDNS's checks and
/// messages: at least one of them, each once in a line with one DURATION (a bare number is
/// seconds), between 1s and 24h.
fn timeouts(d: &Directive) -> Result<Timeouts, ConfigError> {
    const NAME: &str = "timeouts";
    let arg_err = |d: &Directive| {
        directive_err(
            d,
            NAME,
            format!(
                "Wrong argument count or unexpected line ending after '{}'",
                d.name
            ),
        )
    };
    if !d.args.is_empty() {
        return Err(arg_err(d));
    }
    if d.block.is_empty() {
        return Err(directive_err(
            d,
            NAME,
            "timeouts block with no timeouts specified",
        ));
    }
    let mut t = Timeouts::default();
    for o in &d.block {
        let slot = match o.name.as_str() {
            "read" => &mut t.read,
            "write" => &mut t.write,
            "idle" => &mut t.idle,
            "max_queries" | "maxtcpqueries" => {
                return Err(directive_err(
                    o,
                    NAME,
                    format!("{}: not supported yet", o.name),
                ));
            }
            other => {
                return Err(directive_err(o, NAME, format!("unknown option: '{other}'")));
            }
        };
        let [arg] = o.args.as_slice() else {
            return Err(arg_err(o));
        };
        *slot = Some(timeout(arg).map_err(|m| directive_err(o, NAME, m))?);
    }
    Ok(t)
}

/// One of `timeouts`' durations: Go's syntax, or a bare number of seconds.
fn timeout(arg: &str) -> Result<Duration, String> {
    let out_of_bounds =
        || format!("timeout provided '{arg}' needs to be between 1 second and 24 hours");
    let duration = match arg.parse::<i64>() {
        Ok(secs) => Duration::from_secs(u64::try_from(secs).map_err(|_| out_of_bounds())?),
        Err(_) => parse_duration(arg).map_err(|_| format!("failed to parse duration '{arg}'"))?,
    };
    if !(TIMEOUT_MIN..=TIMEOUT_MAX).contains(&duration) {
        return Err(out_of_bounds());
    }
    Ok(duration)
}

impl Setup for Timeouts {
    fn parse(d: &Directive, _: &Context<'_>) -> Result<Self, ConfigError> {
        timeouts(d)
    }
}
