//! `shed`: accepted, and nothing to do. CoreDNS's `shed` exists because each of its UDP queries
//! is a goroutine writing through one shared socket, and an overload piles up writers until Go's
//! per-socket limit kills the process. clusterdns answers UDP in one thread per socket that
//! reads a batch, answers it inline and sends it with one `sendmmsg`: there is no pile of
//! writers to shed, queries the thread has not read wait in the socket's own bounded buffer (the
//! kernel drops past it, as `shed` drops), and forwarded queries are bounded by `forward`'s
//! `max_concurrent`. So `coredns_shed_dropped_total` is not exported: nothing is dropped here.

use super::setup::{Context, Setup};
use crate::corefile::{ConfigError, Directive};

/// `shed`: no arguments.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Shed;

impl Setup for Shed {
    fn parse(d: &Directive, _: &Context<'_>) -> Result<Self, ConfigError> {
        if !d.args.is_empty() || !d.block.is_empty() {
            return Err(crate::corefile::arg_count_err(d, "shed"));
        }
        Ok(Shed)
    }
}

#[cfg(test)]
mod tests {
    use crate::plugin::testing::{Served, settings};

    #[test]
    fn is_accepted_without_arguments_and_changes_no_answer() {
        assert!(settings::<super::Shed>("shed").is_ok());
        for lines in ["shed 10", "shed {\n x\n}"] {
            let e = settings::<super::Shed>(lines).unwrap_err();
            assert!(
                e.contains("shed") && e.contains("Wrong argument count"),
                "{e}"
            );
        }
        let served = Served::new(".:0 {\n shed\n hosts {\n  10.0.0.1 a.example\n }\n}");
        served.expect(
            "a.example. A",
            ";; NOERROR aa rd\na.example. 3600 IN A 10.0.0.1",
        );
        assert!(served.fast("a.example. A"));
    }
}
