//! The `hosts` plugin: static names from a hosts file and inline entries, with PTRs.

pub mod setup;

pub use setup::HostsConfig;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::PTR;
use hickory_proto::rr::{LowerName, Name, RData, RecordType};

use super::authority::{self, Style};
use super::{Fast, Outcome, Phases, Request};
use crate::corefile::Fallthrough;
use crate::source::hosts::{Entry, HostsWriter};
use crate::table::{NameKey, Node, RecordTable, WireNode, record};
use crate::wire::Zones;

/// As CoreDNS's hosts plugin: no RA, and ANY is a type a name lacks.
const STYLE: Style = Style {
    recursion_available: false,
    any: false,
};

/// Every name the hosts file and the inline entries give, with its records precompiled: a
/// name's addresses, and a reverse name's PTRs to the names listed for that address. Both
/// paths answer from these same nodes, through [`authority`].
#[derive(Debug, Default)]
pub struct HostsData {
    /// By lowercase wire-format name.
    names: HashMap<NameKey, WireNode>,
}

impl HostsData {
    fn build(entries: &[(IpAddr, Vec<Name>)], no_reverse: bool, ttl: u32) -> Self {
        // Per name: its addresses, and (a reverse name) the names listed for that address,
        // each once, in the order the entries give them, as CoreDNS lists them.
        let mut listed: HashMap<NameKey, (Vec<IpAddr>, Vec<Name>)> = HashMap::new();
        for (ip, names) in entries {
            for name in names {
                let ips = &mut listed.entry(NameKey::new(name)).or_default().0;
                if !ips.contains(ip) {
                    ips.push(*ip);
                }
                if !no_reverse {
                    let mut rev = Name::from(*ip);
                    rev.set_fqdn(true);
                    let targets = &mut listed.entry(NameKey::new(&rev)).or_default().1;
                    if !targets.contains(name) {
                        targets.push(name.clone());
                    }
                }
            }
        }
        let names = listed
            .into_iter()
            .map(|(key, (ips, targets))| {
                let mut node = Node::default();
                for ip in ips {
                    node.push(record(&Name::root(), ttl, RData::from(ip)));
                }
                for target in targets {
                    node.push(record(&Name::root(), ttl, RData::PTR(PTR(target))));
                }
                (key, WireNode::from(&node))
            })
            .collect();
        Self { names }
    }
}

#[derive(Debug)]
pub struct Hosts {
    zones: Zones,
    fallthrough: Fallthrough,
    fallthrough_unsupported: bool,
    table: Arc<RecordTable<HostsData>>,
}

impl Hosts {
    /// The plugin with its inline entries, and the writer its file's source feeds.
    pub fn new(config: &HostsConfig) -> (Self, Publisher) {
        let hosts = Self {
            zones: Zones::new(&config.zones),
            fallthrough: config.fallthrough.clone(),
            fallthrough_unsupported: config.fallthrough_unsupported,
            table: Arc::new(RecordTable::new(HostsData::default())),
        };
        let mut writer = Publisher {
            table: Arc::clone(&hosts.table),
            inline: config.inline.clone(),
            no_reverse: config.no_reverse,
            ttl: config.ttl,
        };
        writer.replace(Vec::new());
        (hosts, writer)
    }
}

/// Publishes `hosts`'s names whole: a file's entries, as its source gives them, with the
/// inline ones after them.
#[derive(Debug)]
pub struct Publisher {
    table: Arc<RecordTable<HostsData>>,
    inline: Vec<Entry>,
    no_reverse: bool,
    ttl: u32,
}

impl HostsWriter for Publisher {
    fn replace(&mut self, mut entries: Vec<Entry>) {
        entries.extend(self.inline.iter().cloned());
        self.table
            .publish(HostsData::build(&entries, self.no_reverse, self.ttl));
    }
}

/// A name the hosts data has, as CoreDNS counts them: one with addresses.
fn listed(node: Option<&WireNode>) -> Option<&WireNode> {
    node.filter(|n| n.get(RecordType::A).is_some() || n.get(RecordType::AAAA).is_some())
}

/// As CoreDNS's hosts plugin answers:
/// - a PTR query is answered when the address it spells has names, and passes on otherwise,
///   whatever `fallthrough` says (reverse names need not be in the plugin's zones);
/// - other names outside its zones pass on;
/// - a listed name (one with addresses) gets its A or AAAA records, or NODATA for them and for
///   every other type, unless `fallthrough_unsupported` sends the other types on;
/// - a name it lacks passes on under `fallthrough`, else SERVFAIL (a hosts file has no SOA to
///   make an NXDOMAIN with, as CoreDNS says).
impl Phases for Hosts {
    const ANSWERS: bool = true;

    fn serve(&self, req: &Request) -> Outcome {
        let ptr = req.qtype == RecordType::PTR;
        if !ptr && !self.zones.holds(&req.lower) {
            return Outcome::Next;
        }
        let data = self.table.guard();
        let node = data.names.get(NameKey::from(&req.lower).as_bytes());
        let no_cnames = |_: &LowerName| None;
        if ptr {
            return match node
                .and_then(|n| authority::answer(n, req.qtype, STYLE, &self.zones, &no_cnames))
            {
                Some(reply) => Outcome::Reply(reply),
                None => Outcome::Next,
            };
        }
        if self.unsupported_through(u16::from(req.qtype), || {
            self.fallthrough.through(&req.lower)
        }) {
            return Outcome::Next;
        }
        match listed(node) {
            Some(node) => Outcome::Reply(
                authority::answer(node, req.qtype, STYLE, &self.zones, &no_cnames)
                    .unwrap_or_else(|| authority::negative(None, ResponseCode::NoError)),
            ),
            None if self.fallthrough.through(&req.lower) => Outcome::Next,
            None => {
                let mut reply = authority::negative(None, ResponseCode::ServFail);
                reply.authoritative = false;
                Outcome::Reply(reply)
            }
        }
    }

    /// [`Self::serve`] on the fast path: the same records, copied after the question; the
    /// rare SERVFAIL goes the full way.
    fn serve_fast(&self, query: &crate::wire::LightQuery, out: &mut Vec<u8>) -> Fast {
        let key = query.key();
        let ptr = query.qtype == u16::from(RecordType::PTR);
        if !ptr && !self.zones.holds_wire(key) {
            return Fast::Next;
        }
        let data = self.table.guard();
        let node = data.names.get(key);
        if ptr {
            return match node {
                Some(n) if n.get(RecordType::PTR).is_some() => {
                    authority::answer_fast(n, query.qtype, STYLE, || None, out)
                }
                _ => Fast::Next,
            };
        }
        if self.unsupported_through(query.qtype, || self.fallthrough.through_wire(key)) {
            return Fast::Next;
        }
        match listed(node) {
            Some(node) => authority::answer_fast(node, query.qtype, STYLE, || None, out),
            None if self.fallthrough.through_wire(key) => Fast::Next,
            None => Fast::Slow,
        }
    }
}

impl Hosts {
    /// `fallthrough_unsupported`: a type other than A and AAAA (PTR is handled before) passes
    /// on where `fallthrough` would.
    fn unsupported_through(&self, qtype: u16, through: impl FnOnce() -> bool) -> bool {
        self.fallthrough_unsupported
            && qtype != u16::from(RecordType::A)
            && qtype != u16::from(RecordType::AAAA)
            && through()
    }
}

#[cfg(test)]
mod tests {
    use crate::plugin::testing::Served;

    /// `hosts` as k3s runs it, before `kubernetes`, and a second block without fallthrough.
    const COREFILE: &str = ".:0 {
        hosts {
            10.0.0.12 k3s-agent-1 Agent-1.Example.Internal
            fd00::12 k3s-agent-1
            10.0.0.13 k3s-agent-2
            ttl 60
            fallthrough
        }
        kubernetes cluster.local in-addr.arpa {
            manifests DATA
            fallthrough in-addr.arpa
        }
        forward . 127.0.0.1:9
    }
    example.internal:0 {
        hosts {
            10.0.0.12 Agent-1.Example.Internal
        }
    }";

    #[test]
    fn answers_from_its_names_and_passes_the_rest_on() {
        let served = Served::new(COREFILE);
        for (question, answer) in [
            (
                "k3s-agent-1. A",
                ";; NOERROR aa rd
                 k3s-agent-1. 60 IN A 10.0.0.12",
            ),
            (
                "K3S-Agent-1. AAAA",
                ";; NOERROR aa rd
                 K3S-Agent-1. 60 IN AAAA fd00::12",
            ),
            // PTR targets in lowercase, as CoreDNS normalizes the file's names.
            (
                "12.0.0.10.in-addr.arpa. PTR",
                ";; NOERROR aa rd
                 12.0.0.10.in-addr.arpa. 60 IN PTR k3s-agent-1.
                 12.0.0.10.in-addr.arpa. 60 IN PTR agent-1.example.internal.",
            ),
            // Not a hosts name: on to kubernetes, then to forward.
            (
                "web.prod.svc.cluster.local. A",
                ";; NOERROR aa rd ra
                 web.prod.svc.cluster.local. 5 IN A 10.96.12.34",
            ),
            // A name it has, asked for a type it lacks: NODATA, not passed on (CoreDNS
            // falls through only for names it lacks), whatever the type.
            ("k3s-agent-2. AAAA", ";; NOERROR aa rd"),
            ("k3s-agent-1. MX", ";; NOERROR aa rd"),
            ("k3s-agent-3. A", ";; forwarded"),
            ("www.example.com. A", ";; forwarded"),
            // Without fallthrough: NODATA for a name it has, and no SOA (a hosts file has
            // none).
            ("agent-1.example.internal. AAAA", ";; NOERROR aa rd"),
            // A name it lacks without fallthrough: SERVFAIL, as CoreDNS (no SOA to make
            // an NXDOMAIN with).
            ("agent-2.example.internal. A", ";; SERVFAIL rd"),
            (
                "AGENT-1.example.internal. A",
                ";; NOERROR aa rd
                 AGENT-1.example.internal. 3600 IN A 10.0.0.12",
            ),
        ] {
            served.expect(question, answer);
        }
    }

    #[test]
    fn pointers_of_unlisted_addresses_pass_on_whatever_fallthrough_says() {
        let served = Served::new(
            ".:0 {
            hosts {
                10.0.0.5 web.example
            }
            forward . 127.0.0.1:9
        }",
        );
        served.expect(
            "5.0.0.10.in-addr.arpa. PTR",
            ";; NOERROR aa rd
             5.0.0.10.in-addr.arpa. 3600 IN PTR web.example.",
        );
        // No names for the address: on to `forward`, though there is no fallthrough.
        served.expect("6.0.0.10.in-addr.arpa. PTR", ";; forwarded");
        // A reverse name asked for another type is not a listed name: SERVFAIL.
        served.expect("5.0.0.10.in-addr.arpa. A", ";; SERVFAIL rd");
    }

    #[test]
    fn fallthrough_unsupported_passes_other_types_on_for_listed_names() {
        let served = Served::new(
            ".:0 {
            hosts {
                10.0.0.5 web.example
                fallthrough
                fallthrough_unsupported
            }
            forward . 127.0.0.1:9
        }",
        );
        for (question, answer) in [
            (
                "web.example. A",
                ";; NOERROR aa rd
                 web.example. 3600 IN A 10.0.0.5",
            ),
            ("web.example. AAAA", ";; NOERROR aa rd"),
            ("web.example. TXT", ";; forwarded"),
            ("web.example. HTTPS", ";; forwarded"),
            ("other.example. A", ";; forwarded"),
        ] {
            served.expect(question, answer);
        }
    }

    #[test]
    fn hosts_options_as_coredns_reads_them() {
        let load = |text: &str| {
            crate::config::Config::from_text(text, 53, std::path::Path::new("/etc/coredns"))
        };
        let c = load(".:53 {\n hosts {\n  10.0.0.5 web.example\n }\n}\n").unwrap();
        let h = c.servers[0].get::<super::HostsConfig>().unwrap();
        // No file named: /etc/hosts, as CoreDNS.
        assert_eq!(h.file.as_deref(), Some(std::path::Path::new("/etc/hosts")));
        assert!(!h.fallthrough_unsupported);
        for (corefile, error) in [
            (
                ".:53 {\n hosts {\n  fallthrough_unsupported\n }\n}\n",
                "Corefile:2: hosts: fallthrough_unsupported requires fallthrough",
            ),
            (
                ".:53 {\n hosts {\n  fallthrough\n  fallthrough_unsupported x\n }\n}\n",
                "Corefile:4: hosts: Wrong argument count or unexpected line ending after 'fallthrough_unsupported'",
            ),
        ] {
            assert_eq!(load(corefile).unwrap_err().to_string(), error, "{corefile}");
        }
    }
}
