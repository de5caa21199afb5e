//! `any`: an ANY query gets RFC 8482's short answer, one HINFO record under the name asked,
//! instead of everything the name has (as CoreDNS's `any` plugin answers); other queries pass
//! on. It sits early in the chain, so ANY queries never reach the cache, the cluster's names
//! or an upstream.

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::HINFO;
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

use super::setup::{Building, Context, Setup, SetupError};
use super::{Fast, Outcome, Phases, Plugin, Reply, Request};
use crate::corefile::{ConfigError, Directive, directive_err};
use crate::wire::{self, Owner};

/// RFC 8482's TTL for the answer, as CoreDNS gives it.
const TTL: u32 = 8482;

/// `any`: takes no arguments and no block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Any {
    /// The HINFO record's body (type, class, TTL, data), written once.
    body: Vec<u8>,
}

impl Default for Any {
    fn default() -> Self {
        let hinfo = HINFO::new("ANY obsoleted".into(), "See RFC 8482".into());
        let mut record = Record::from_rdata(Name::root(), TTL, RData::HINFO(hinfo));
        record.set_dns_class(DNSClass::IN);
        Self {
            body: wire::body(&record),
        }
    }
}

impl Setup for Any {
    fn parse(d: &Directive, _: &Context<'_>) -> Result<Self, ConfigError> {
        if !d.args.is_empty() {
            return Err(directive_err(
                d,
                "any",
                "Wrong argument count or unexpected line ending after 'any'",
            ));
        }
        if let Some(o) = d.block.first() {
            return Err(directive_err(
                o,
                "any",
                format!("unknown property '{}'", o.name),
            ));
        }
        Ok(Self::default())
    }

    fn build(&self, b: &mut Building<'_>) -> Result<(), SetupError> {
        b.chain.push(Plugin::Any(self.clone()));
        Ok(())
    }
}

impl Phases for Any {
    const ANSWERS: bool = true;

    /// ANY: NOERROR, not authoritative, the HINFO record under the name as the client wrote it.
    fn serve(&self, req: &Request) -> Outcome {
        if req.qtype != RecordType::ANY {
            return Outcome::Next;
        }
        let mut reply = Reply::authoritative(ResponseCode::NoError);
        reply.authoritative = false;
        reply.answers.push_bodies(Owner::Question, &self.body, 1);
        Outcome::Reply(reply)
    }

    /// The fast path never holds an ANY query ([`wire::parse_light`] leaves them to the full
    /// parse), so everything it asks passes on.
    fn serve_fast(&self, query: &wire::LightQuery, _: &mut Vec<u8>) -> Fast {
        if query.qtype == u16::from(RecordType::ANY) {
            Fast::Slow
        } else {
            Fast::Next
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::Config;
    use crate::plugin::testing::Served;

    /// `any` in front of the cluster and an upstream, as an operator adds it to kubeadm's
    /// Corefile.
    const COREFILE: &str = "
    .:0 {
        errors
        any
        kubernetes cluster.local in-addr.arpa {
            manifests DATA
            fallthrough in-addr.arpa
        }
        forward . 127.0.0.1:9
        cache 30
        loadbalance
    }";

    #[test]
    fn answers_any_with_rfc_8482_and_passes_everything_else_on() {
        let served = Served::new(COREFILE);
        for (question, answer) in [
            (
                "web.prod.svc.cluster.local. ANY",
                r#";; NOERROR rd
                 web.prod.svc.cluster.local. 8482 IN HINFO ANY obsoleted See RFC 8482"#,
            ),
            // Any name, in the cluster's zones or not, under the name as written.
            (
                "Example.COM. ANY",
                r#";; NOERROR rd
                 Example.COM. 8482 IN HINFO ANY obsoleted See RFC 8482"#,
            ),
            // Every other type goes on down the chain, on the fast path as on the full one.
            (
                "web.prod.svc.cluster.local. A",
                ";; NOERROR aa rd ra
                 web.prod.svc.cluster.local. 5 IN A 10.96.12.34",
            ),
            ("www.example.com. A", ";; forwarded"),
        ] {
            served.expect(question, answer);
        }
        // `any` keeps the fast path for the block's other queries.
        assert!(served.fast("web.prod.svc.cluster.local. A"));
        assert!(!served.fast("web.prod.svc.cluster.local. ANY"));
    }

    #[test]
    fn takes_no_arguments_and_no_block() {
        for (corefile, error) in [
            (
                ".:53 {\n any x\n}\n",
                "Corefile:2: any: Wrong argument count or unexpected line ending after 'any'",
            ),
            (
                ".:53 {\n any {\n  strict\n }\n}\n",
                "Corefile:3: any: unknown property 'strict'",
            ),
            (
                ".:53 {\n any\n any\n}\n",
                "Corefile:3: any: can only be used once per server block",
            ),
        ] {
            let err = Config::from_text(corefile, 53, Path::new(".")).unwrap_err();
            assert_eq!(err.to_string(), error, "{corefile}");
        }
    }
}
