//! `reload [INTERVAL [JITTER]]`: how often the Corefile is checked for changes (the check
//! itself runs in the binary, which owns the Corefile).

use std::time::Duration;

use super::setup::{Context, Setup};
use crate::corefile::{ConfigError, Directive, directive_err, parse_duration};

/// How often to look at the Corefile: every `interval`, give or take `jitter`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reload {
    pub interval: Duration,
    pub jitter: Duration,
}

/// `reload [INTERVAL [JITTER]]`, as CoreDNS reads it: 30s and 15s by default; the interval at
/// least 2s, the jitter at least 1s and at most half the interval.
fn reload(d: &Directive) -> Result<(Duration, Duration), ConfigError> {
    const NAME: &str = "reload";
    let duration = |s: &String| parse_duration(s).map_err(|m| directive_err(d, NAME, m));
    let (interval, jitter) = match d.args.as_slice() {
        [] => (Duration::from_secs(30), Duration::from_secs(15)),
        [i] => {
            let i = duration(i)?;
            (i, i / 2)
        }
        [i, j] => (duration(i)?, duration(j)?),
        _ => return Err(directive_err(d, NAME, "takes at most INTERVAL and JITTER")),
    };
    if interval < Duration::from_secs(2) {
        return Err(directive_err(d, NAME, "the interval must be at least 2s"));
    }
    if jitter < Duration::from_secs(1) || jitter > interval / 2 {
        return Err(directive_err(
            d,
            NAME,
            "the jitter must be at least 1s and at most half the interval",
        ));
    }
    Ok((interval, jitter))
}

impl Setup for Reload {
    fn parse(d: &Directive, _: &Context<'_>) -> Result<Self, ConfigError> {
        let (interval, jitter) = reload(d)?;
        Ok(Self { interval, jitter })
    }
}
