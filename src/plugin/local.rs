//! `local [{ localhost_prefix on|off }]`: the local names answered here, never sent on, as
//! CoreDNS's `local` answers them. `localhost.` has 127.0.0.1 and ::1; so do names under
//! `.localhost.` (RFC 6761) and, with `localhost_prefix on` (the default), legacy names that start
//! with `localhost.` (such as `localhost.default.svc.cluster.local.`, which a pod's search path
//! makes). `1.0.0.127.in-addr.arpa.` has its PTR to `localhost.`; the zones `localhost.`,
//! `0.in-addr.arpa.`, `127.in-addr.arpa.` and `255.in-addr.arpa.` have their SOA and NS at the
//! apex and nothing else (NXDOMAIN with the SOA). Not authoritative, TTL a week.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{A, AAAA, NS, PTR, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::setup::{Building, Context, Setup, SetupError};
use super::{Fast, Outcome, Phases, Plugin, Reply, Request};
use crate::corefile::{ConfigError, Directive, directive_err};
use crate::wire::{LightQuery, Owner};

const TTL: u32 = 604_800;

/// The zones, in wire form (lowercase).
const ZONES: [&[u8]; 4] = [
    b"\x09localhost\x00",
    b"\x010\x07in-addr\x04arpa\x00",
    b"\x03127\x07in-addr\x04arpa\x00",
    b"\x03255\x07in-addr\x04arpa\x00",
];
const LOCALHOST: &[u8] = b"\x09localhost\x00";
const LOOPBACK_PTR: &[u8] = b"\x011\x010\x010\x03127\x07in-addr\x04arpa\x00";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalConfig {
    localhost_prefix: bool,
}

impl Setup for LocalConfig {
    fn parse(d: &Directive, _: &Context<'_>) -> Result<Self, ConfigError> {
        let wrong = |d: &Directive, after: &str| {
            directive_err(
                d,
                "local",
                format!("Wrong argument count or unexpected line ending after '{after}'"),
            )
        };
        if let Some(last) = d.args.last() {
            return Err(wrong(d, last));
        }
        let mut config = Self {
            localhost_prefix: true,
        };
        for o in &d.block {
            match (o.name.as_str(), o.args.as_slice()) {
                ("localhost_prefix", [on]) if on == "on" => config.localhost_prefix = true,
                ("localhost_prefix", [off]) if off == "off" => config.localhost_prefix = false,
                ("localhost_prefix", [other]) => {
                    return Err(directive_err(
                        o,
                        "local",
                        format!("localhost_prefix expects 'on' or 'off', got \"{other}\""),
                    ));
                }
                ("localhost_prefix", args) => {
                    return Err(wrong(
                        o,
                        args.last().map_or("localhost_prefix", String::as_str),
                    ));
                }
                (other, _) => {
                    return Err(directive_err(
                        o,
                        "local",
                        format!("unknown property '{other}'"),
                    ));
                }
            }
        }
        Ok(config)
    }

    fn build(&self, b: &mut Building<'_>) -> Result<(), SetupError> {
        let counted = b.metrics.then(|| {
            crate::metrics::metrics().counter(
                "coredns_local_localhost_requests_total",
                "Counter of localhost.<domain> requests.",
                String::new(),
            )
        });
        b.chain.push(Plugin::Local(Box::new(Local {
            localhost_prefix: self.localhost_prefix,
            counted,
        })));
        Ok(())
    }
}

#[derive(Debug)]
pub struct Local {
    localhost_prefix: bool,
    /// With `prometheus`: `coredns_local_localhost_requests_total`.
    counted: Option<Arc<AtomicU64>>,
}

/// What a name (lowercase wire form) is to `local`.
#[derive(Debug, PartialEq, Eq)]
enum Kind {
    /// A name under `.localhost.`, or a legacy `localhost.` prefixed one: loopback addresses.
    Localhost,
    /// In one of the zones, of `labels` labels.
    Zone {
        labels: u8,
    },
    Other,
}

impl Local {
    fn kind(&self, key: &[u8]) -> Kind {
        if key.len() > LOCALHOST.len()
            && (key.ends_with(LOCALHOST)
                || self.localhost_prefix && key.starts_with(&LOCALHOST[..10]))
        {
            return Kind::Localhost;
        }
        match ZONES
            .iter()
            .find(|z| key.ends_with(z) && labels_end(key, z.len()))
        {
            Some(zone) => Kind::Zone {
                labels: label_count(zone),
            },
            None => Kind::Other,
        }
    }
}

/// Whether a zone of `len` bytes at the end of `key` starts at a label boundary.
fn labels_end(key: &[u8], len: usize) -> bool {
    let start = key.len() - len;
    let mut at = 0;
    while at < start {
        at += usize::from(key[at]) + 1;
    }
    at == start
}

fn label_count(zone: &[u8]) -> u8 {
    let mut at = 0;
    let mut n = 0;
    while zone[at] != 0 {
        at += usize::from(zone[at]) + 1;
        n += 1;
    }
    n
}

fn soa(owner: Name) -> Record {
    let localhost = Name::from_ascii("localhost.").expect("a static name");
    let root = Name::from_ascii("root.localhost.").expect("a static name");
    Record::from_rdata(
        owner,
        TTL,
        RData::SOA(SOA::new(localhost, root, 1, 0, 0, 0, TTL)),
    )
}

/// The loopback address of the question's type, or NODATA with an SOA of `name`.
fn loopback(reply: &mut Reply, name: &Name, qtype: RecordType) {
    let data = match qtype {
        RecordType::A => RData::A(A::new(127, 0, 0, 1)),
        RecordType::AAAA => RData::AAAA(AAAA::new(0, 0, 0, 0, 0, 0, 0, 1)),
        _ => {
            reply
                .authority
                .push_record(Owner::Question, &soa(name.clone()));
            return;
        }
    };
    reply.answers.push_record(
        Owner::Question,
        &Record::from_rdata(name.clone(), TTL, data),
    );
}

impl Phases for Local {
    const ANSWERS: bool = true;

    fn serve(&self, req: &Request) -> Outcome {
        let key = crate::wire::name_bytes(&Name::from(req.lower.clone()));
        let mut reply = Reply::authoritative(ResponseCode::NoError);
        reply.authoritative = false;
        let labels = match self.kind(&key) {
            Kind::Other => return Outcome::Next,
            Kind::Localhost => {
                tracing::debug!(
                    "Intercepting localhost query for {:?} {}, from {:?}",
                    req.name.to_string(),
                    req.qtype,
                    req.src.map(|s| s.ip())
                );
                if let Some(c) = &self.counted {
                    c.fetch_add(1, Ordering::Relaxed);
                }
                loopback(&mut reply, &req.name, req.qtype);
                return Outcome::Reply(reply);
            }
            Kind::Zone { labels } => labels,
        };
        // The zone as the question spells it.
        let zone = req.name.trim_to(usize::from(labels));
        let apex = req.name.num_labels() == labels;
        if apex {
            match req.qtype {
                RecordType::A | RecordType::AAAA if key == LOCALHOST => {
                    loopback(&mut reply, &req.name, req.qtype);
                }
                RecordType::SOA => {
                    reply
                        .answers
                        .push_record(Owner::Question, &soa(req.name.clone()));
                }
                RecordType::NS => {
                    let localhost = Name::from_ascii("localhost.").expect("a static name");
                    let ns = Record::from_rdata(req.name.clone(), TTL, RData::NS(NS(localhost)));
                    reply.answers.push_record(Owner::Question, &ns);
                }
                _ => reply
                    .authority
                    .push_record(Owner::Question, &soa(req.name.clone())),
            }
        } else if key == LOOPBACK_PTR {
            if req.qtype == RecordType::PTR {
                let localhost = Name::from_ascii("localhost.").expect("a static name");
                let ptr = Record::from_rdata(req.name.clone(), TTL, RData::PTR(PTR(localhost)));
                reply.answers.push_record(Owner::Question, &ptr);
            } else {
                reply
                    .authority
                    .push_record(Owner::Name(&zone), &soa(zone.clone()));
            }
        } else {
            reply.rcode = ResponseCode::NXDomain;
            reply
                .authority
                .push_record(Owner::Name(&zone), &soa(zone.clone()));
        }
        Outcome::Reply(reply)
    }

    /// Local names (rare) go the full way; every other name passes at the cost of comparing
    /// its ends.
    fn serve_fast(&self, query: &LightQuery, _: &mut Vec<u8>) -> Fast {
        match self.kind(query.key()) {
            Kind::Other => Fast::Next,
            _ => Fast::Slow,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::plugin::testing::Served;

    fn block(local: &str) -> Served {
        Served::new(&format!(
            ".:0 {{
            {local}
            kubernetes cluster.local in-addr.arpa {{
                manifests DATA
            }}
        }}"
        ))
    }

    #[test]
    fn answers_local_names_as_coredns() {
        let served = block("local");
        let soa = "604800 IN SOA localhost. root.localhost. 1 0 0 0 604800";
        for (question, want) in [
            (
                "localhost. A",
                ";; NOERROR rd\nlocalhost. 604800 IN A 127.0.0.1".to_string(),
            ),
            (
                "LocalHost. AAAA",
                ";; NOERROR rd\nLocalHost. 604800 IN AAAA ::1".into(),
            ),
            (
                "localhost. MX",
                format!(";; NOERROR rd\n;; authority\nlocalhost. {soa}"),
            ),
            (
                "localhost. NS",
                ";; NOERROR rd\nlocalhost. 604800 IN NS localhost.".into(),
            ),
            ("localhost. SOA", format!(";; NOERROR rd\nlocalhost. {soa}")),
            (
                "app.localhost. A",
                ";; NOERROR rd\napp.localhost. 604800 IN A 127.0.0.1".into(),
            ),
            (
                "app.localhost. TXT",
                format!(";; NOERROR rd\n;; authority\napp.localhost. {soa}"),
            ),
            (
                "localhost.default.svc.cluster.local. A",
                ";; NOERROR rd\nlocalhost.default.svc.cluster.local. 604800 IN A 127.0.0.1".into(),
            ),
            (
                "1.0.0.127.in-addr.arpa. PTR",
                ";; NOERROR rd\n1.0.0.127.in-addr.arpa. 604800 IN PTR localhost.".into(),
            ),
            (
                "1.0.0.127.In-Addr.arpa. A",
                format!(";; NOERROR rd\n;; authority\n127.In-Addr.arpa. {soa}"),
            ),
            (
                "2.0.0.127.in-addr.arpa. PTR",
                format!(";; NXDOMAIN rd\n;; authority\n127.in-addr.arpa. {soa}"),
            ),
            (
                "127.in-addr.arpa. NS",
                ";; NOERROR rd\n127.in-addr.arpa. 604800 IN NS localhost.".into(),
            ),
            (
                "0.in-addr.arpa. A",
                format!(";; NOERROR rd\n;; authority\n0.in-addr.arpa. {soa}"),
            ),
            (
                "255.255.255.255.in-addr.arpa. PTR",
                format!(";; NXDOMAIN rd\n;; authority\n255.in-addr.arpa. {soa}"),
            ),
        ] {
            served.expect(question, &want);
            assert!(!served.fast(question), "{question}");
        }
        // Everything else passes on, and keeps the fast path.
        let web = "web.prod.svc.cluster.local. A";
        assert!(served.ask(web).contains("IN A 10.96.12.34"));
        assert!(served.fast(web));
        let near = "mylocalhost.default.svc.cluster.local. A";
        assert!(
            served.ask(near).starts_with(";; NXDOMAIN aa"),
            "{}",
            served.ask(near)
        );
        // Without the legacy prefix, only RFC 6761's names.
        let strict = block("local {\nlocalhost_prefix off\n}");
        let legacy = "localhost.default.svc.cluster.local. A";
        assert!(
            strict.ask(legacy).starts_with(";; NXDOMAIN aa"),
            "{}",
            strict.ask(legacy)
        );
        strict.expect(
            "a.localhost. A",
            ";; NOERROR rd\na.localhost. 604800 IN A 127.0.0.1",
        );
    }

    #[test]
    fn setup_refuses_what_coredns_refuses() {
        for (text, error) in [
            ("local x", "Wrong argument count"),
            (
                "local {\nlocalhost_prefix maybe\n}",
                "localhost_prefix expects 'on' or 'off', got \"maybe\"",
            ),
            ("local {\nlocalhost_prefix\n}", "Wrong argument count"),
            ("local {\nbogus\n}", "unknown property 'bogus'"),
        ] {
            let text = format!(".:0 {{\n{text}\n}}\n");
            let e = crate::config::Config::from_text(&text, 0, std::path::Path::new("."))
                .unwrap_err()
                .to_string();
            assert!(e.contains(error) && e.contains("local"), "{text}: {e}");
        }
    }
}
