//! `whoami`: every question is answered with who asked, as CoreDNS's `whoami` answers it: an
//! authoritative NOERROR with no answer and, in the additional section, the client's address
//! (A or AAAA under the name asked) and an SRV record `_PROTO.NAME` holding its port. Health
//! checks use it (AKS's node-local DNS, `health-check.localdns.local { whoami }`).

use std::net::IpAddr;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{A, AAAA, SRV};
use hickory_proto::rr::{Name, RData, Record};

use super::setup::{Building, Context, Setup, SetupError};
use super::{Fast, Outcome, Phases, Plugin, Reply, Request};
use crate::corefile::{ConfigError, Directive, directive_err};
use crate::wire::{self, Owner};

/// `whoami`: no arguments.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Whoami;

impl Setup for Whoami {
    fn parse(d: &Directive, _: &Context<'_>) -> Result<Self, ConfigError> {
        if !d.args.is_empty() || !d.block.is_empty() {
            return Err(directive_err(
                d,
                "whoami",
                "Wrong argument count or unexpected line ending after 'whoami'",
            ));
        }
        Ok(Whoami)
    }

    fn build(&self, b: &mut Building<'_>) -> Result<(), SetupError> {
        b.chain.push(Plugin::Whoami(Whoami));
        Ok(())
    }
}

impl Phases for Whoami {
    const ANSWERS: bool = true;
    const ANY_CLASS: bool = true;

    fn serve(&self, req: &Request) -> Outcome {
        let mut reply = Reply::authoritative(ResponseCode::NoError);
        let Some(src) = req.src else {
            return Outcome::Reply(reply);
        };
        let address = match src.ip().to_canonical() {
            IpAddr::V4(ip) => RData::A(A(ip)),
            IpAddr::V6(ip) => RData::AAAA(AAAA(ip)),
        };
        let mut record = Record::from_rdata(Name::root(), 0, address);
        record.set_dns_class(req.class);
        reply.additional.push_record(Owner::Question, &record);
        // `_udp.NAME` (`_udp.` for the root), target the root.
        let proto = req.transport.as_str();
        let owner = Name::from_ascii(format!("_{proto}"))
            .and_then(|label| label.append_domain(&req.name))
            .unwrap_or_else(|_| req.name.clone());
        let srv = SRV::new(0, 0, src.port(), Name::root());
        let mut record = Record::from_rdata(owner, 0, RData::SRV(srv));
        record.set_dns_class(req.class);
        reply
            .additional
            .push_record(Owner::Name(record.name()), &record);
        Outcome::Reply(reply)
    }

    /// The answer depends on who asks, which the fast path does not know.
    fn serve_fast(&self, _: &wire::LightQuery, _: &mut Vec<u8>) -> Fast {
        Fast::Slow
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use hickory_proto::op::{Message, Query};
    use hickory_proto::rr::RecordType;

    use super::*;
    use crate::answer::Handled;
    use crate::plugin::testing::{Served, rendered};
    use crate::wire::Transport;

    fn ask(served: &Served, name: &str, src: &str, transport: Transport) -> String {
        let mut m = Message::new();
        m.set_id(3).set_recursion_desired(true);
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
        let src: SocketAddr = src.parse().unwrap();
        let mut out = Vec::new();
        let handled = served
            .handler
            .handle(&m.to_vec().unwrap(), src, transport, &mut out);
        assert!(matches!(handled, Handled::Send), "{handled:?}");
        rendered(&out)
    }

    #[test]
    fn answers_with_the_askers_address_and_port() {
        let served = Served::new("health-check.localdns.local:0 .:0 {\n whoami\n}");
        assert_eq!(
            ask(
                &served,
                "Health-Check.localdns.local.",
                "10.244.0.7:40000",
                Transport::Udp
            ),
            ";; NOERROR aa rd
;; additional
Health-Check.localdns.local. 0 IN A 10.244.0.7
_udp.Health-Check.localdns.local. 0 IN SRV 0 0 40000 ."
        );
        assert_eq!(
            ask(&served, ".", "[fd00::7]:53000", Transport::Tcp),
            ";; NOERROR aa rd
;; additional
. 0 IN AAAA fd00::7
_tcp. 0 IN SRV 0 0 53000 ."
        );
        // An IPv4 client on a dual-stack socket is an IPv4 client.
        let got = ask(&served, "a.", "[::ffff:10.0.0.1]:5", Transport::Udp);
        assert!(got.contains("a. 0 IN A 10.0.0.1"), "{got}");
        assert!(!served.fast("a. A"));
    }

    #[test]
    fn takes_no_arguments() {
        for text in [".:0 {\n whoami x\n}", ".:0 {\n whoami {\n  x\n }\n}"] {
            let e = crate::config::Config::from_text(text, 0, std::path::Path::new("."))
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("whoami") && e.contains("Wrong argument count"),
                "{e}"
            );
        }
    }
}
