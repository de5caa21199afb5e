//! `multisocket [NUM_SOCKETS]`: how many UDP sockets (`SO_REUSEPORT`, each with its own worker)
//! listen on the block's port, as CoreDNS's `multisocket` sets its servers per port: the CPU
//! count by default, at most 1024. It overrides `-workers` for that port; blocks sharing a port
//! share it, the last one that sets it winning.

use super::setup::{Context, Setup};
use crate::corefile::{ConfigError, Directive, directive_err};

const MAX: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Multisocket {
    pub sockets: usize,
}

impl Setup for Multisocket {
    fn parse(d: &Directive, _: &Context<'_>) -> Result<Self, ConfigError> {
        let err = |m: String| directive_err(d, "multisocket", m);
        let sockets = match d.args.as_slice() {
            [] if d.block.is_empty() => std::thread::available_parallelism().map_or(1, usize::from),
            [n] if d.block.is_empty() => {
                let n: i64 = n.parse().map_err(|_| {
                    err(format!(
                        "invalid num sockets: strconv.Atoi: parsing \"{n}\": invalid syntax"
                    ))
                })?;
                if n < 1 {
                    return Err(err(format!("num sockets can not be zero or negative: {n}")));
                }
                if n > MAX as i64 {
                    return Err(err(format!("num sockets exceeds maximum ({MAX}): {n}")));
                }
                n as usize
            }
            _ => {
                return Err(err(
                    "Wrong argument count or unexpected line ending after 'multisocket'".into(),
                ));
            }
        };
        Ok(Self { sockets })
    }
}
