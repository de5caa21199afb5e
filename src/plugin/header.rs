//! `header { SELECTOR ACTION FLAGS... }`: header flags set or cleared, as CoreDNS's `header`
//! does: `query` rules change the query before anything else in the block sees it (so the
//! response echoes its RD as changed), `response` rules change every response the block sends,
//! however it was made. ACTION is `set` or `clear`, FLAGS among `aa`, `ra` and `rd`; rules apply
//! in order, so the last one for a flag wins.

use std::net::SocketAddr;

use super::setup::{Building, Context, Setup, SetupError};
use super::{Asker, Phases, Plugin, Revert};
use crate::corefile::{ConfigError, Directive, directive_err};
use crate::wire::{Flag, HeaderMut, Transport};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Header {
    query: Vec<(Flag, bool)>,
    response: Vec<(Flag, bool)>,
}

fn apply(message: &mut [u8], rules: &[(Flag, bool)]) {
    if let Some(mut header) = HeaderMut::of(message) {
        for &(flag, on) in rules {
            header.set_flag(flag, on);
        }
    }
}

impl Setup for Header {
    fn parse(d: &Directive, _: &Context<'_>) -> Result<Self, ConfigError> {
        let err =
            |o: &Directive, m: String| directive_err(o, "header", format!("setting up rule: {m}"));
        let mut header = Self::default();
        for o in &d.block {
            let selector = o.name.to_ascii_lowercase();
            let rules = match selector.as_str() {
                "query" => &mut header.query,
                "response" => &mut header.response,
                _ => {
                    return Err(directive_err(
                        o,
                        "header",
                        format!(
                            "setting up rule: invalid selector={selector} should be query or response"
                        ),
                    ));
                }
            };
            let Some((action, flags)) = o.args.split_first() else {
                return Err(err(o, "no flag action provided".into()));
            };
            if flags.is_empty() {
                return Err(err(
                    o,
                    "invalid length for flags, at least one should be provided".into(),
                ));
            }
            let on = match action.to_ascii_lowercase().as_str() {
                "set" => true,
                "clear" => false,
                other => {
                    return Err(err(
                        o,
                        format!("unknown flag action={other}, should be set or clear"),
                    ));
                }
            };
            for flag in flags {
                let flag = match flag.to_ascii_lowercase().as_str() {
                    "aa" => Flag::Authoritative,
                    "ra" => Flag::RecursionAvailable,
                    "rd" => Flag::RecursionDesired,
                    other => return Err(err(o, format!("unknown/unsupported flag={other}"))),
                };
                rules.push((flag, on));
            }
        }
        if header.query.is_empty() && header.response.is_empty() {
            return Err(directive_err(
                d,
                "header",
                "Wrong argument count or unexpected line ending after 'header'",
            ));
        }
        Ok(header)
    }

    fn build(&self, b: &mut Building<'_>) -> Result<(), SetupError> {
        b.chain.push(Plugin::Header(Box::new(self.clone())));
        Ok(())
    }
}

impl Phases for Header {
    const PREPARES: bool = true;

    fn prepare(&self, query: &mut Vec<u8>, _: &Asker) -> Option<Revert> {
        apply(query, &self.query);
        None
    }

    fn respond(
        &self,
        response: &mut Vec<u8>,
        _query: &[u8],
        _src: SocketAddr,
        _transport: Transport,
        _limit: usize,
    ) -> bool {
        apply(response, &self.response);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::testing::Served;

    fn parsed(block: &str) -> Result<Header, String> {
        crate::plugin::testing::settings(&format!("header {{\n{block}\n}}"))
    }

    #[test]
    fn setup_reads_rules_and_refuses_what_coredns_refuses() {
        let got = parsed("response set ra aa\nresponse clear rd\nquery set rd").unwrap();
        assert_eq!(
            got.response,
            [
                (Flag::RecursionAvailable, true),
                (Flag::Authoritative, true),
                (Flag::RecursionDesired, false)
            ]
        );
        assert_eq!(got.query, [(Flag::RecursionDesired, true)]);
        for (block, error) in [
            ("set ra", "invalid selector=set should be query or response"),
            ("response", "no flag action provided"),
            ("response set", "at least one should be provided"),
            ("response flip ra", "unknown flag action=flip"),
            ("response set cd", "unknown/unsupported flag=cd"),
            ("", "Wrong argument count"),
        ] {
            let got = parsed(block).expect_err(block);
            assert!(got.contains(error), "{block}: {got}");
        }
    }

    #[test]
    fn flags_change_on_every_path() {
        let served = Served::new(
            ".:0 {
            header {
                response clear ra aa
                query clear rd
            }
            kubernetes cluster.local {
                manifests DATA
            }
            hosts {
                10.0.0.5 registry.local
                fallthrough
            }
        }",
        );
        // Fast (cluster, hosts) and full (NXDOMAIN with the SOA) answers alike.
        served.expect(
            "web.prod.svc.cluster.local. A",
            ";; NOERROR
            web.prod.svc.cluster.local. 5 IN A 10.96.12.34",
        );
        assert!(served.fast("web.prod.svc.cluster.local. A"));
        served.expect(
            "registry.local. A",
            ";; NOERROR
            registry.local. 3600 IN A 10.0.0.5",
        );
        let missing = served.ask("missing.prod.svc.cluster.local. A");
        assert!(missing.starts_with(";; NXDOMAIN\n"), "{missing}");
        let set = Served::new(
            ".:0 {
            header {
                response set aa ra
            }
            hosts {
                10.0.0.5 registry.local
                fallthrough
            }
        }",
        );
        // SERVFAIL (nothing holds the name) gets the flags too.
        let failed = set.ask("elsewhere.example. A");
        assert!(failed.starts_with(";; SERVFAIL aa rd ra"), "{failed}");
    }
}
