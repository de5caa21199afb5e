//! `chaos`: TXT queries of class CH for the server's version, authors and host name, as
//! CoreDNS's `chaos` answers them (`version.bind`, `version.server`, `authors.bind`,
//! `hostname.bind`, `id.server`); any other query passes on. The block must be routed these
//! names (`.`, or a block of them: OpenShift's `hostname.bind:5353 { chaos }`).

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::TXT;
use hickory_proto::rr::{DNSClass, LowerName, Name, RData, Record, RecordType};

use super::setup::{Building, Context, Setup, SetupError};
use super::{Fast, Outcome, Phases, Plugin, Reply, Request};
use crate::corefile::{ConfigError, Directive, directive_err};
use crate::wire::{self, Owner};

/// `chaos [VERSION] [AUTHORS...]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chaos {
    version: String,
    authors: Vec<String>,
    /// The record bodies of each answer (type, class CH, TTL 0, text), written once the host
    /// name is known.
    bodies: Option<Bodies>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Bodies {
    version: Vec<u8>,
    authors: Vec<u8>,
    hostname: Vec<u8>,
}

/// A TXT string holds at most 255 bytes: longer ones are cut there, as CoreDNS cuts them.
fn trim(s: &str) -> String {
    let mut end = s.len().min(255);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

fn body(text: &str) -> Vec<u8> {
    let mut record = Record::from_rdata(Name::root(), 0, RData::TXT(TXT::new(vec![trim(text)])));
    record.set_dns_class(DNSClass::CH);
    wire::body(&record)
}

/// The host's name, as Go's `os.Hostname` reads it on Linux (`nsid`'s default too).
pub(crate) fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

impl Chaos {
    fn with_hostname(mut self, hostname: &str) -> Self {
        self.bodies = Some(Bodies {
            version: body(&self.version),
            authors: self.authors.iter().flat_map(|a| body(a)).collect(),
            hostname: body(hostname),
        });
        self
    }
}

impl Setup for Chaos {
    fn parse(d: &Directive, _: &Context<'_>) -> Result<Self, ConfigError> {
        if let Some(o) = d.block.first() {
            return Err(directive_err(
                o,
                "chaos",
                format!("unknown property '{}'", o.name),
            ));
        }
        let version = d.args.first().map_or_else(
            || concat!("clusterdns-", env!("CARGO_PKG_VERSION")).to_string(),
            |v| trim(v),
        );
        // Named authors, each once, sorted, as CoreDNS lists them; otherwise this project's.
        let mut authors: Vec<String> = d.args.iter().skip(1).map(|a| trim(a)).collect();
        if d.args.len() > 1 {
            authors.sort();
            authors.dedup();
        } else {
            authors = vec!["clusterdns".to_string()];
        }
        Ok(Self {
            version,
            authors,
            bodies: None,
        })
    }

    fn build(&self, b: &mut Building<'_>) -> Result<(), SetupError> {
        b.chain
            .push(Plugin::Chaos(self.clone().with_hostname(&hostname())));
        Ok(())
    }
}

impl Phases for Chaos {
    const ANSWERS: bool = true;
    const ANY_CLASS: bool = true;

    /// NOERROR, not authoritative, TTL 0, under the name as asked.
    fn serve(&self, req: &Request) -> Outcome {
        if req.class != DNSClass::CH || req.qtype != RecordType::TXT {
            return Outcome::Next;
        }
        let Some(bodies) = &self.bodies else {
            return Outcome::Next;
        };
        let is = |name: &str| req.lower == LowerName::new(&Name::from_ascii(name).expect("a name"));
        let (records, count) = if is("authors.bind.") {
            (&bodies.authors, self.authors.len())
        } else if is("version.bind.") || is("version.server.") {
            (&bodies.version, 1)
        } else if is("hostname.bind.") || is("id.server.") {
            (&bodies.hostname, 1)
        } else {
            return Outcome::Next;
        };
        let mut reply = Reply::authoritative(ResponseCode::NoError);
        reply.authoritative = false;
        reply
            .answers
            .push_bodies(Owner::Question, records, count as u16);
        Outcome::Reply(reply)
    }

    /// The fast path holds questions of class IN only ([`wire::parse_light`]): never chaos's.
    fn serve_fast(&self, _: &wire::LightQuery, _: &mut Vec<u8>) -> Fast {
        Fast::Next
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use hickory_proto::op::{Message, Query};

    use super::*;
    use crate::answer::Handled;
    use crate::plugin::testing::{Served, rendered};
    use crate::wire::Transport;

    fn parsed(line: &str) -> Result<Chaos, String> {
        crate::plugin::testing::settings(line)
    }

    #[test]
    fn reads_coredns_forms() {
        let chaos = |version: &str, authors: &[&str]| Chaos {
            version: version.into(),
            authors: authors.iter().map(|a| a.to_string()).collect(),
            bodies: None,
        };
        let own = concat!("clusterdns-", env!("CARGO_PKG_VERSION"));
        for (line, want) in [
            ("chaos", chaos(own, &["clusterdns"])),
            ("chaos CoreDNS-001", chaos("CoreDNS-001", &["clusterdns"])),
            (
                "chaos CoreDNS-001 info@coredns.io b@x a@x b@x",
                chaos("CoreDNS-001", &["a@x", "b@x", "info@coredns.io"]),
            ),
        ] {
            assert_eq!(parsed(line), Ok(want), "{line}");
        }
        assert_eq!(
            parsed(&format!("chaos {}", "v".repeat(300)))
                .unwrap()
                .version
                .len(),
            255
        );
        let error = parsed("chaos {\n version x\n}").unwrap_err();
        assert!(error.contains("unknown property 'version'"), "{error}");
    }

    /// `question` asked in class CH (TXT) through the handler, rendered.
    fn ask_ch(served: &Served, name: &str, qtype: RecordType) -> String {
        let mut m = Message::new();
        m.set_id(9).set_recursion_desired(true);
        let mut q = Query::query(Name::from_ascii(name).unwrap(), qtype);
        q.set_query_class(DNSClass::CH);
        m.add_query(q);
        let query = m.to_vec().unwrap();
        let src: SocketAddr = "10.244.0.7:40000".parse().unwrap();
        let mut out = Vec::new();
        let handled = served.handler.handle(&query, src, Transport::Udp, &mut out);
        assert!(matches!(handled, Handled::Send), "{handled:?}");
        rendered(&out)
    }

    #[test]
    fn answers_its_names_in_class_ch_and_passes_everything_else() {
        // OpenShift's block for it, beside a cluster block.
        let served = Served::new(
            "hostname.bind:0 version.bind:0 authors.bind:0 version.server:0 id.server:0 {
                chaos CoreDNS-001 info@coredns.io
            }
            .:0 {
                chaos
            }",
        );
        let host = hostname();
        for (name, answer) in [
            (
                "version.bind.",
                "version.bind. 0 CH TXT CoreDNS-001".to_string(),
            ),
            (
                "Version.Server.",
                "Version.Server. 0 CH TXT CoreDNS-001".to_string(),
            ),
            (
                "authors.bind.",
                "authors.bind. 0 CH TXT info@coredns.io".to_string(),
            ),
            ("hostname.bind.", format!("hostname.bind. 0 CH TXT {host}")),
            ("id.server.", format!("id.server. 0 CH TXT {host}")),
        ] {
            let got = ask_ch(&served, name, RecordType::TXT);
            assert_eq!(got, format!(";; NOERROR rd\n{answer}"), "{name}");
        }
        // Other types, other names in class CH: nothing holds them.
        for (name, qtype) in [
            ("version.bind.", RecordType::A),
            ("other.bind.", RecordType::TXT),
        ] {
            let got = ask_ch(&served, name, qtype);
            assert_eq!(got, ";; REFUSED rd", "{name} {qtype}");
        }
        // Class IN goes down the chain as before, on the fast path too.
        let served = Served::new(
            ".:0 {
                chaos
                hosts {
                    10.0.0.5 version.bind
                    fallthrough
                }
            }",
        );
        assert_eq!(
            ask_ch(&served, "version.bind.", RecordType::TXT),
            format!(
                ";; NOERROR rd\nversion.bind. 0 CH TXT clusterdns-{}",
                env!("CARGO_PKG_VERSION")
            )
        );
        served.expect(
            "version.bind. A",
            ";; NOERROR aa rd
            version.bind. 3600 IN A 10.0.0.5",
        );
        assert!(served.fast("version.bind. A"));
    }
}
