//! `debug`: the debug messages of the plugins (`local`'s intercepted names, and every other
//! `tracing` debug event of clusterdns) are logged, as CoreDNS's `debug` turns on its plugins'
//! debug logs. The binary raises its log filter to debug for clusterdns while any block of the
//! loaded Corefile has `debug` (unless `RUST_LOG` says otherwise). Unlike CoreDNS, a panic while
//! answering a query is still caught, logged and counted, and the query answered SERVFAIL: a
//! DNS server that exits on a bad packet is not what `debug` asks for.

use super::setup::{Context, Setup};
use crate::corefile::{ConfigError, Directive, directive_err};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Debug;

impl Setup for Debug {
    fn parse(d: &Directive, _: &Context<'_>) -> Result<Self, ConfigError> {
        if !d.args.is_empty() || !d.block.is_empty() {
            return Err(directive_err(
                d,
                "debug",
                "Wrong argument count or unexpected line ending after 'debug'",
            ));
        }
        Ok(Debug)
    }
}
