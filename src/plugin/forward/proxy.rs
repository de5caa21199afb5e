//! `proxy`, removed from CoreDNS in 1.6 and still found in old ConfigMaps: served as the
//! `forward` it became, with a warning naming the replacement and what was left out.

use std::path::Path;

use crate::corefile::{ConfigError, Directive, directive_err, one_arg};
use crate::plugin::setup::{Building, Context, Setup, SetupError};

use super::setup::{ForwardConfig, Forwards, Policy, except, stanza};

const NAME: &str = "proxy";

/// A block's `proxy` lines, each served as a `forward` line.
#[derive(Debug, Clone)]
pub struct Proxy(Forwards);

/// `proxy FROM TO... { policy; max_fails; except; protocol dns [force_tcp]; fail_timeout;
/// health_check; spray }` as the `forward` it became.
fn proxy(d: &Directive, dir: &Path) -> Result<ForwardConfig, ConfigError> {
    let mut f = stanza(d, NAME, dir)?;
    // proxy's own default.
    f.max_fails = 1;
    let mut ignored = Vec::new();
    for o in &d.block {
        match o.name.as_str() {
            "policy" => {
                f.policy = match one_arg(o, NAME)? {
                    "random" => Policy::Random,
                    "round_robin" => Policy::RoundRobin,
                    "sequential" | "first" => Policy::Sequential,
                    "least_conn" => {
                        ignored.push("policy least_conn (random instead)");
                        Policy::Random
                    }
                    other => {
                        return Err(directive_err(o, NAME, format!("unknown policy {other:?}")));
                    }
                };
            }
            "max_fails" => {
                f.max_fails = one_arg(o, NAME)?
                    .parse()
                    .map_err(|_| directive_err(o, NAME, "max_fails: not a number"))?;
            }
            "except" => f.except.extend(except(o, NAME)?),
            "protocol" => match o.args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
                ["dns"] => {}
                ["dns", "force_tcp"] => f.force_tcp = true,
                _ => {
                    return Err(directive_err(
                        o,
                        NAME,
                        format!(
                            "protocol {}: only dns is served; replace proxy with forward \
                             (tls:// upstreams for DNS over TLS)",
                            o.args.join(" ")
                        ),
                    ));
                }
            },
            "fail_timeout" => ignored.push("fail_timeout"),
            "health_check" => ignored.push("health_check (forward's DNS health checks instead)"),
            "spray" => ignored.push("spray (an upstream is always tried when all are down)"),
            other => {
                return Err(directive_err(
                    o,
                    NAME,
                    format!("unknown property {other:?}"),
                ));
            }
        }
    }
    let ignored = if ignored.is_empty() {
        String::new()
    } else {
        format!("; ignored: {}", ignored.join(", "))
    };
    tracing::warn!(
        "proxy at {}: removed in CoreDNS 1.6, served as `forward {}`: replace it with forward{ignored}",
        d.pos,
        d.args.join(" ")
    );
    Ok(f)
}

impl Setup for Proxy {
    fn parse(d: &Directive, cx: &Context<'_>) -> Result<Self, ConfigError> {
        Ok(Self(Forwards {
            stanzas: vec![proxy(d, cx.dir)?],
        }))
    }

    fn merge(&mut self, later: Self) -> bool {
        self.0.merge(later.0)
    }

    fn build(&self, b: &mut Building<'_>) -> Result<(), SetupError> {
        self.0.build(b)
    }
}
