//! `prometheus [ADDR]`: the block's queries are counted, and `/metrics` serves CoreDNS's
//! metrics (the counters themselves are in [`crate::metrics`]).

use super::setup::{Building, Context, Setup, SetupError};
use crate::corefile::{ConfigError, Directive, http_addr};

/// The address of `/metrics`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prometheus(pub String);

impl Setup for Prometheus {
    fn parse(d: &Directive, _: &Context<'_>) -> Result<Self, ConfigError> {
        http_addr(d, ":9153").map(Prometheus)
    }

    fn build(&self, b: &mut Building<'_>) -> Result<(), SetupError> {
        b.endpoints.push((self.0.clone(), "/metrics"));
        b.metrics = true;
        Ok(())
    }
}
