//! `health [ADDR] { lameduck DURATION }`: `/health`, OK while the process runs, and how long
//! to keep serving after a shutdown signal.

use std::time::Duration;

use super::setup::{Building, Context, Setup, SetupError};
use crate::corefile::{ConfigError, Directive, directive_err, http_addr, one_arg, parse_duration};

/// The `health` directive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthConfig {
    pub addr: String,
    /// How long to keep serving after a shutdown signal.
    pub lameduck: Duration,
}

fn health(d: &Directive) -> Result<HealthConfig, ConfigError> {
    let mut h = HealthConfig {
        addr: http_addr(d, ":8080")?,
        lameduck: Duration::ZERO,
    };
    for o in &d.block {
        match o.name.as_str() {
            "lameduck" => {
                h.lameduck = parse_duration(one_arg(o, "health")?)
                    .map_err(|m| directive_err(o, "health", format!("lameduck: {m}")))?;
            }
            other => {
                return Err(directive_err(
                    o,
                    "health",
                    format!("unknown property {other:?}"),
                ));
            }
        }
    }
    Ok(h)
}

impl Setup for HealthConfig {
    fn parse(d: &Directive, _: &Context<'_>) -> Result<Self, ConfigError> {
        health(d)
    }

    fn build(&self, b: &mut Building<'_>) -> Result<(), SetupError> {
        b.endpoints.push((self.addr.clone(), "/health"));
        b.lameduck = b.lameduck.max(self.lameduck);
        Ok(())
    }
}
