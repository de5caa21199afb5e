//! `minimal`: a successful answer goes out with its answer section only, as CoreDNS's
//! `minimal` writes it (BIND's `minimal-responses`): the authority and additional records are
//! left out of every NOERROR response with answers, or with neither an SOA nor NS records in its
//! authority section. Negative answers (NXDOMAIN, NODATA with the SOA), errors and delegations
//! are untouched. The OPT record stays.

use hickory_proto::op::ResponseCode;

use super::setup::{Building, Context, Setup, SetupError};
use super::{Phases, Plugin, Random, Reply};
use crate::corefile::{ConfigError, Directive, directive_err};
use crate::wire::{self, Header, HeaderMut};

const NS: u16 = 2;
const SOA: u16 = 6;
const OPT: u16 = 41;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Minimal;

impl Setup for Minimal {
    fn parse(d: &Directive, _: &Context<'_>) -> Result<Self, ConfigError> {
        if !d.args.is_empty() || !d.block.is_empty() {
            return Err(directive_err(
                d,
                "minimal",
                "Wrong argument count or unexpected line ending after 'minimal'",
            ));
        }
        Ok(Minimal)
    }

    fn build(&self, b: &mut Building<'_>) -> Result<(), SetupError> {
        b.chain.push(Plugin::Minimal(Minimal));
        Ok(())
    }
}

/// The type of a record as bytes (its owner first, written whole or as a pointer).
fn rtype(record: &[u8]) -> Option<u16> {
    let at = wire::skip_name(record, 0)?;
    record
        .get(at..at + 2)
        .map(|t| u16::from_be_bytes([t[0], t[1]]))
}

/// As CoreDNS's response typing: whether a response is a plain success (NOERROR, and answers
/// or no SOA and no NS in authority), the only kind `minimal` shortens.
fn success(rcode_low: u8, answers: usize, mut authority: impl Iterator<Item = u16>) -> bool {
    rcode_low == 0 && (answers > 0 || !authority.any(|t| t == SOA || t == NS))
}

impl Phases for Minimal {
    fn finish(&self, reply: &mut Reply, _: &super::Answered<'_>, _: &mut Random<'_>) {
        let authority = wire::records(&reply.authority.bytes).unwrap_or_default();
        if reply.rcode == ResponseCode::NoError
            && success(
                0,
                usize::from(reply.answers.count),
                authority.iter().filter_map(|r| rtype(r)),
            )
        {
            reply.authority = Default::default();
            reply.additional = Default::default();
        }
    }

    fn finish_wire(&self, message: &mut Vec<u8>, _: &mut Random<'_>) {
        let Some(header) = Header::of(message) else {
            return;
        };
        let answers = usize::from(header.answers());
        let authority_end = answers + usize::from(header.authority());
        if header.authority() == 0 && header.additional() <= 1 {
            // Nothing to leave out but an OPT, which stays.
            return;
        }
        let spans: Vec<wire::RecordSpan> = wire::records_after_question(message)
            .map_while(|r| r)
            .collect();
        if spans.len() != authority_end + usize::from(header.additional()) {
            return;
        }
        let authority = spans[answers..authority_end].iter().map(|s| s.rtype);
        if !success(header.rcode_low(), answers, authority) {
            return;
        }
        let end = match answers {
            0 => wire::question_end(message),
            n => Some(spans[n - 1].data.end),
        };
        let Some(end) = end else {
            return;
        };
        let opt = spans[authority_end..]
            .iter()
            .rfind(|s| s.rtype == OPT)
            .map(|s| s.start..s.data.end);
        let mut out = message[..end].to_vec();
        if let Some(opt) = &opt {
            out.extend_from_slice(&message[opt.clone()]);
        }
        if let Some(mut h) = HeaderMut::of(&mut out) {
            h.set_counts(answers as u16, 0, u16::from(opt.is_some()));
        }
        *message = out;
    }
}

#[cfg(test)]
mod tests {
    use crate::plugin::testing::Served;

    #[test]
    fn successful_answers_lose_authority_and_additional_negative_ones_keep_them() {
        let served = Served::new(
            ".:0 {
            minimal
            kubernetes cluster.local {
                manifests DATA
            }
        }",
        );
        let plain = Served::new(
            ".:0 {
            kubernetes cluster.local {
                manifests DATA
            }
        }",
        );
        // An SRV answer's additional addresses go, on the fast path and the full one alike
        // (`ask` checks they agree).
        let srv = "_http._tcp.web.prod.svc.cluster.local. SRV";
        assert!(
            plain.ask(srv).contains(";; additional"),
            "{}",
            plain.ask(srv)
        );
        served.expect(
            srv,
            ";; NOERROR aa rd ra
            _http._tcp.web.prod.svc.cluster.local. 5 IN SRV 0 50 80 web.prod.svc.cluster.local.",
        );
        assert!(served.fast(srv), "minimal keeps the fast path");
        // NXDOMAIN and NODATA keep their SOA.
        for question in [
            "missing.prod.svc.cluster.local. A",
            "web.prod.svc.cluster.local. TXT",
        ] {
            let got = served.ask(question);
            assert!(got.contains(";; authority"), "{question}: {got}");
            // The same as without `minimal` (but the SOA's serial, each server's start time).
            let without_serial = |text: &str| -> Vec<String> {
                text.lines()
                    .map(|l| {
                        l.split(' ')
                            .filter(|w| w.len() != 10)
                            .collect::<Vec<_>>()
                            .join(" ")
                    })
                    .collect()
            };
            assert_eq!(
                without_serial(&got),
                without_serial(&plain.ask(question)),
                "{question}"
            );
        }
    }
}
