//! `cancel [TIMEOUT]`: no query of the block is worked on longer than TIMEOUT (5001ms by
//! default), as CoreDNS's `cancel` bounds each request's context. Answers from the cluster,
//! `hosts` and the cache are made at once; what can take time is waiting for an upstream, which
//! the handler gives up at the deadline with SERVFAIL, as `forward` does when its context is
//! cancelled.

use std::time::Duration;

use super::setup::{Building, Context, Setup, SetupError};
use super::{Phases, Plugin};
use crate::corefile::{ConfigError, Directive, directive_err, parse_duration};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cancel {
    pub timeout: Duration,
}

impl Setup for Cancel {
    fn parse(d: &Directive, _: &Context<'_>) -> Result<Self, ConfigError> {
        let timeout = match d.args.as_slice() {
            [] => Duration::from_millis(5001),
            [t] => {
                let negative = t.starts_with('-');
                let timeout = parse_duration(t.trim_start_matches('-')).map_err(|_| {
                    directive_err(d, "cancel", format!("invalid duration: \"{t}\""))
                })?;
                if negative || timeout.is_zero() {
                    return Err(directive_err(
                        d,
                        "cancel",
                        format!("invalid negative duration: \"{t}\""),
                    ));
                }
                timeout
            }
            _ => {
                return Err(directive_err(
                    d,
                    "cancel",
                    format!(
                        "Wrong argument count or unexpected line ending after '{}'",
                        d.args[d.args.len() - 1]
                    ),
                ));
            }
        };
        Ok(Self { timeout })
    }

    fn build(&self, b: &mut Building<'_>) -> Result<(), SetupError> {
        b.chain.push(Plugin::Cancel(*self));
        Ok(())
    }
}

/// Read by the handler where it waits (`answer::Handler::forward`); no phase of its own.
impl Phases for Cancel {
    /// Its deadline counts from each query's arrival.
    const TIMED: bool = true;
}
