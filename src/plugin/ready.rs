//! `ready [ADDR]`: `/ready`, OK once every plugin that reports readiness is ready, else 503
//! naming those that are not.

use super::setup::{Building, Context, Setup, SetupError};
use crate::corefile::{ConfigError, Directive, http_addr};

/// The address of `/ready`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ready(pub String);

impl Setup for Ready {
    fn parse(d: &Directive, _: &Context<'_>) -> Result<Self, ConfigError> {
        http_addr(d, ":8181").map(Ready)
    }

    fn build(&self, b: &mut Building<'_>) -> Result<(), SetupError> {
        b.endpoints.push((self.0.clone(), "/ready"));
        Ok(())
    }
}
