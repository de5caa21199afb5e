//! The `k8s_external` plugin: services' external addresses (`spec.externalIPs` and load
//! balancer ingress) under a zone outside the cluster, as CoreDNS's `k8s_external` answers them.
//!
//! `k8s_external [ZONE...] { apex APEX; ttl TTL; headless; fallthrough [ZONES...] }`:
//! `SERVICE.NAMESPACE.ZONE` A/AAAA (a load balancer's host name is a CNAME, followed),
//! `_PORT._PROTO.SERVICE.NAMESPACE.ZONE` SRV, PTR for an external address (in a reverse zone
//! given as ZONE), the apex's SOA and NS (`ns1.APEX.ZONE`), and with `headless` a headless
//! service's ready endpoints (`SERVICE.NAMESPACE.ZONE`, `ENDPOINT.SERVICE.NAMESPACE.ZONE`). It
//! answers from the block's `kubernetes` plugin's view, which indexes what it needs.

use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{A, AAAA, CNAME, NS, PTR, SOA, SRV};
use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType};

use super::setup::{Building, Context, Setup, SetupError};
use super::{Fast, Outcome, Phases, Plugin, Reply, Request};
use crate::cluster::records::under;
use crate::cluster::writer::ClusterView;
use crate::corefile::{ConfigError, Directive, Fallthrough, directive_err, plugin_zones};
use crate::wire::{LightQuery, Owner, Zones};

const NAME: &str = "k8s_external";

/// The `k8s_external` directive.
#[derive(Debug, Clone, PartialEq)]
pub struct K8sExternalConfig {
    pub zones: Vec<LowerName>,
    /// The label of the apex's own names: `dns` (`ns1.dns.ZONE`).
    pub apex: String,
    pub ttl: u32,
    pub headless: bool,
    pub fallthrough: Fallthrough,
}

impl Setup for K8sExternalConfig {
    fn parse(d: &Directive, cx: &Context<'_>) -> Result<Self, ConfigError> {
        let mut config = Self {
            zones: plugin_zones(d, NAME, &d.args, cx.zones)?,
            apex: "dns".to_string(),
            ttl: 5,
            headless: false,
            fallthrough: Fallthrough::default(),
        };
        for o in &d.block {
            let first = || {
                o.args
                    .first()
                    .ok_or_else(|| crate::corefile::arg_count_err(o, NAME))
            };
            match o.name.as_str() {
                "ttl" => {
                    let value = first()?;
                    let ttl: i64 = value.parse().map_err(|_| {
                        directive_err(
                            o,
                            NAME,
                            format!("strconv.Atoi: parsing {value:?}: invalid syntax"),
                        )
                    })?;
                    if !(0..=3600).contains(&ttl) {
                        return Err(directive_err(
                            o,
                            NAME,
                            format!("ttl must be in range [0, 3600]: {ttl}"),
                        ));
                    }
                    config.ttl = ttl as u32;
                }
                "apex" => config.apex = first()?.to_ascii_lowercase(),
                "headless" => config.headless = true,
                "fallthrough" => config.fallthrough = Fallthrough::parse(&o.args, o, NAME)?,
                other => {
                    return Err(directive_err(
                        o,
                        NAME,
                        format!("unknown property '{other}'"),
                    ));
                }
            }
        }
        Ok(config)
    }

    fn build(&self, b: &mut Building<'_>) -> Result<(), SetupError> {
        if b.find::<super::kubernetes::KubernetesConfig>().is_none() {
            return Err(SetupError::File(format!(
                "{}: {NAME}: kubernetes plugin not loaded",
                b.pos
            )));
        }
        b.chain.push(Plugin::K8sExternal(Box::new(K8sExternal {
            zones: Zones::new(&self.zones),
            first: self
                .zones
                .first()
                .map(|z| Name::from(z.clone()))
                .unwrap_or_else(Name::root),
            apex: self.apex.clone(),
            ttl: self.ttl,
            headless: self.headless,
            fallthrough: self.fallthrough.clone(),
            view: OnceLock::new(),
        })));
        Ok(())
    }
}

/// The plugin as it serves queries.
#[derive(Debug)]
pub struct K8sExternal {
    zones: Zones,
    /// The first zone: PTR targets are under it.
    first: Name,
    apex: String,
    ttl: u32,
    headless: bool,
    fallthrough: Fallthrough,
    /// The `kubernetes` plugin's view and TTL, set when that plugin is built.
    view: OnceLock<(Arc<ClusterView>, u32)>,
}

/// One answer of a service there: an address or host name, its port, and the name an SRV
/// record targets for an address.
struct Entry {
    host: String,
    port: Option<u16>,
    target: Name,
}

impl K8sExternal {
    /// Answers from `view` (the block's `kubernetes`), whose records have `ttl`.
    pub fn attach(&self, view: Arc<ClusterView>, ttl: u32) {
        let _ = self.view.set((view, ttl));
    }

    fn soa(&self, zone: &Name, view: &ClusterView) -> Record {
        let serial = view
            .meta()
            .apexes
            .first()
            .and_then(|a| match a.soa.data() {
                RData::SOA(soa) => Some(soa.serial()),
                _ => None,
            })
            .unwrap_or(0);
        let soa = SOA::new(
            under(&["ns1", &self.apex], zone),
            under(&["hostmaster", &self.apex], zone),
            serial,
            7200,
            1800,
            86400,
            self.ttl,
        );
        Record::from_rdata(zone.clone(), self.ttl, RData::SOA(soa))
    }

    fn negative(&self, zone: &Name, view: &ClusterView, rcode: ResponseCode) -> Reply {
        let mut reply = Reply::authoritative(rcode);
        let soa = self.soa(zone, view);
        reply.authority.push_record(Owner::Name(soa.name()), &soa);
        reply
    }

    /// The DNS server's own external addresses (`ns1.APEX.ZONE`), as CoreDNS's `nsAddrs`
    /// finds them for `k8s_external`: the external addresses (under `headless`, a headless
    /// service's endpoints) of the services with an endpoint at one of the server's own
    /// addresses; with none, those addresses themselves.
    fn own_addresses(&self, view: &ClusterView) -> Vec<IpAddr> {
        let meta = view.meta();
        if meta.local_services.is_empty() {
            return meta.local_ips.clone();
        }
        let mut out: Vec<IpAddr> = Vec::new();
        for (namespace, name) in &meta.local_services {
            let Some(e) = view.external(namespace, name) else {
                continue;
            };
            let ips = e.hosts.iter().filter_map(|h| h.parse().ok());
            // A headless service's endpoints, under `headless`; else its external addresses.
            let endpoints = e
                .endpoints
                .iter()
                .filter(|_| e.headless)
                .map(|(_, ip, _)| *ip);
            for ip in ips.chain(endpoints) {
                if !out.contains(&ip) {
                    out.push(ip);
                }
            }
        }
        out
    }

    /// The entries of the question's service (CoreDNS's `External`): NXDOMAIN when nothing
    /// matches, NOERROR with none for a namespace alone.
    fn entries(
        &self,
        req: &Request,
        zone: &Name,
        view: &ClusterView,
    ) -> (Vec<Entry>, ResponseCode) {
        // Labels counted by hand: hickory's count leaves out a leading `*`.
        let labels: Vec<String> = req
            .lower
            .iter()
            .map(|l| String::from_utf8_lossy(l).into_owned())
            .collect();
        let labels = &labels[..labels.len().saturating_sub(zone.iter().count())];
        let Some((namespace, rest)) = labels.split_last() else {
            return (Vec::new(), ResponseCode::ServFail);
        };
        if !view.meta().namespaces.contains(namespace) {
            return (Vec::new(), ResponseCode::NXDomain);
        }
        let Some((service, rest)) = rest.split_last() else {
            return (Vec::new(), ResponseCode::NoError);
        };
        let strip = |s: &str| s.strip_prefix('_').unwrap_or(s).to_string();
        let (endpoint, port, protocol) = match rest {
            [] => (String::new(), String::new(), String::new()),
            [endpoint] => (strip(endpoint), String::new(), String::new()),
            [port, protocol] => (String::new(), strip(port), strip(protocol)),
            _ => return (Vec::new(), ResponseCode::NXDomain),
        };
        let Some(svc) = view.external(namespace, service) else {
            return (Vec::new(), ResponseCode::NXDomain);
        };
        let base = under(&[service, namespace], zone);
        let mut entries = Vec::new();
        if self.headless && svc.hosts.is_empty() && (svc.headless || !endpoint.is_empty()) {
            for (label, ip, ports) in &svc.endpoints {
                if !endpoint.is_empty() && !matches(&endpoint, label) {
                    continue;
                }
                let target = under(&[label], &base);
                for p in sentinel(ports) {
                    if matched(&port, &protocol, p) {
                        entries.push(Entry {
                            host: ip.to_string(),
                            port: p.map(|p| p.port),
                            target: target.clone(),
                        });
                    }
                }
            }
        } else if endpoint.is_empty() {
            for host in svc.hosts.iter() {
                for p in sentinel(&svc.ports) {
                    if matched(&port, &protocol, p) {
                        entries.push(Entry {
                            host: host.to_string(),
                            port: p.map(|p| p.port),
                            target: base.clone(),
                        });
                    }
                }
            }
        }
        let rcode = if entries.is_empty() {
            ResponseCode::NXDomain
        } else {
            ResponseCode::NoError
        };
        (entries, rcode)
    }
}

/// A service's ports, or one port-less entry when it has none (CoreDNS's sentinel port -1).
fn sentinel(ports: &[crate::cluster::Port]) -> Vec<Option<&crate::cluster::Port>> {
    if ports.is_empty() {
        vec![None]
    } else {
        ports.iter().map(Some).collect()
    }
}

/// Whether the question's `_port._proto` (empty: any) names this port.
fn matched(port: &str, protocol: &str, p: Option<&crate::cluster::Port>) -> bool {
    let (name, proto) = p.map_or(("", ""), |p| (p.name.as_str(), p.protocol.label()));
    matches(port, name) && matches(protocol, proto)
}

/// CoreDNS's `match`: empty, `*` and `any` match anything.
fn matches(asked: &str, have: &str) -> bool {
    let wild = |s: &str| s.is_empty() || s == "*" || s == "any";
    wild(asked) || wild(have) || asked.eq_ignore_ascii_case(have)
}

impl Phases for K8sExternal {
    const ANSWERS: bool = true;

    fn serve(&self, req: &Request) -> Outcome {
        let Some(zone) = self.zones.longest(&req.lower) else {
            return Outcome::Next;
        };
        let zone = Name::from(zone.clone());
        let Some((view, kube_ttl)) = self.view.get() else {
            return Outcome::Reply(Reply::authoritative(ResponseCode::ServFail));
        };
        let name = Name::from(req.lower.clone());
        let record = |ttl: u32, data: RData| Record::from_rdata(req.name.clone(), ttl, data);
        // The apex.
        if name == zone {
            let mut reply = Reply::authoritative(ResponseCode::NoError);
            match req.qtype {
                RecordType::SOA => {
                    reply
                        .answers
                        .push_record(Owner::Question, &self.soa(&zone, view));
                }
                RecordType::NS => {
                    let ns = under(&["ns1", &self.apex], &zone);
                    reply.answers.push_record(
                        Owner::Question,
                        &record(self.ttl, RData::NS(NS(ns.clone()))),
                    );
                    for ip in self.own_addresses(view) {
                        let glue = Record::from_rdata(ns.clone(), self.ttl, address(ip));
                        reply
                            .additional
                            .push_record(Owner::Name(glue.name()), &glue);
                    }
                }
                _ => return Outcome::Reply(self.negative(&zone, view, ResponseCode::NoError)),
            }
            return Outcome::Reply(reply);
        }
        // The apex's own names, `APEX.ZONE` and below.
        let apex = under(&[&self.apex], &zone);
        if apex.zone_of(&name) {
            let depth = name.iter().count().saturating_sub(zone.iter().count());
            let first = name.iter().next().unwrap_or_default();
            return Outcome::Reply(match depth {
                1 => self.negative(&zone, view, ResponseCode::NoError),
                2 if first == b"ns1" => {
                    let mut reply = Reply::authoritative(ResponseCode::NoError);
                    for ip in self.own_addresses(view) {
                        let wanted = matches!(
                            (ip, req.qtype),
                            (IpAddr::V4(_), RecordType::A) | (IpAddr::V6(_), RecordType::AAAA)
                        );
                        if wanted {
                            reply
                                .answers
                                .push_record(Owner::Question, &record(self.ttl, address(ip)));
                        }
                    }
                    if reply.answers.is_empty() {
                        self.negative(&zone, view, ResponseCode::NoError)
                    } else {
                        reply
                    }
                }
                _ => self.negative(&zone, view, ResponseCode::NXDomain),
            });
        }
        // PTR for an external address.
        if req.qtype == RecordType::PTR
            && let Some(ip) = crate::cluster::records::reverse_address(&name)
        {
            let exposed = view.meta();
            let targets: Vec<Name> = view
                .external_reverse(ip)
                .map(|keys| {
                    keys.iter()
                        .filter(|(ns, _)| exposed.namespaces.contains(ns))
                        .map(|(ns, svc)| under(&[svc, ns], &self.first))
                        .collect()
                })
                .unwrap_or_default();
            if targets.is_empty() {
                if self.fallthrough.through(&req.lower) {
                    return Outcome::Next;
                }
                return Outcome::Reply(self.negative(&zone, view, ResponseCode::NXDomain));
            }
            let mut reply = Reply::authoritative(ResponseCode::NoError);
            for t in targets {
                reply
                    .answers
                    .push_record(Owner::Question, &record(self.ttl, RData::PTR(PTR(t))));
            }
            return Outcome::Reply(reply);
        }
        let (entries, rcode) = self.entries(req, &zone, view);
        if entries.is_empty() {
            if rcode == ResponseCode::NXDomain && self.fallthrough.through(&req.lower) {
                return Outcome::Next;
            }
            return Outcome::Reply(self.negative(&zone, view, rcode));
        }
        let mut reply = Reply::authoritative(ResponseCode::NoError);
        let mut seen = std::collections::HashSet::new();
        match req.qtype {
            RecordType::A | RecordType::AAAA => {
                for e in &entries {
                    match e.host.parse::<IpAddr>() {
                        Ok(ip)
                            if matches!(
                                (ip, req.qtype),
                                (IpAddr::V4(_), RecordType::A) | (IpAddr::V6(_), RecordType::AAAA)
                            ) && seen.insert(e.host.clone()) =>
                        {
                            reply
                                .answers
                                .push_record(Owner::Question, &record(self.ttl, address(ip)));
                        }
                        Ok(_) => {}
                        // A load balancer's host name: a CNAME, followed through the block.
                        Err(_) => {
                            let Ok(mut target) = Name::from_ascii(&e.host) else {
                                continue;
                            };
                            target.set_fqdn(true);
                            if reply.follow.is_none() {
                                reply.answers.push_record(
                                    Owner::Question,
                                    &record(*kube_ttl, RData::CNAME(CNAME(target.clone()))),
                                );
                                reply.follow = Some(target);
                            }
                        }
                    }
                }
            }
            RecordType::SRV => {
                let with_port: Vec<&Entry> = entries.iter().filter(|e| e.port.is_some()).collect();
                let total = 100 * entries.len();
                let weight = ((100.0 / total as f64 * 100.0).floor() as u16).max(1);
                for e in with_port {
                    let port = e.port.unwrap_or_default();
                    let (target, glue) = match e.host.parse::<IpAddr>() {
                        Ok(ip) => (e.target.clone(), Some(ip)),
                        Err(_) => match Name::from_ascii(&e.host) {
                            Ok(mut n) => {
                                n.set_fqdn(true);
                                (n, None)
                            }
                            Err(_) => continue,
                        },
                    };
                    let key = (LowerName::new(&target), port);
                    if seen.insert(format!("{}:{}", key.0, key.1)) {
                        let srv = SRV::new(0, weight, port, target.clone());
                        reply
                            .answers
                            .push_record(Owner::Question, &record(*kube_ttl, RData::SRV(srv)));
                    }
                    if let Some(ip) = glue
                        && seen.insert(format!("{} {ip}", key.0))
                    {
                        let a = Record::from_rdata(target, self.ttl, address(ip));
                        reply.additional.push_record(Owner::Name(a.name()), &a);
                    }
                }
            }
            _ => {}
        }
        if reply.answers.is_empty() {
            return Outcome::Reply(self.negative(&zone, view, ResponseCode::NoError));
        }
        Outcome::Reply(reply)
    }

    /// Names in its zones are answered the full way; the rest pass on.
    fn serve_fast(&self, query: &LightQuery, _: &mut Vec<u8>) -> Fast {
        if self.zones.holds_wire(query.key()) {
            Fast::Slow
        } else {
            Fast::Next
        }
    }
}

fn address(ip: IpAddr) -> RData {
    match ip {
        IpAddr::V4(v4) => RData::A(A(v4)),
        IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
    }
}

#[cfg(test)]
mod tests {
    use crate::plugin::testing::Served;

    const EXTERNAL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/external.yaml");

    fn served(options: &str) -> Served {
        Served::new(&format!(
            ".:0 {{\n kubernetes cluster.local {{\n  manifests {EXTERNAL}\n }}\n \
             k8s_external example.org 192.168.200.0/24 {{\n{options}\n }}\n}}"
        ))
    }

    const SOA: &str = "example.org. 5 IN SOA ns1.dns.example.org. hostmaster.dns.example.org. SERIAL 7200 1800 86400 5";

    fn expect(s: &Served, question: &str, want: &str) {
        s.expect_unserialed(question, want);
    }

    /// The machine's own addresses, loopback left out, in the order the server takes them.
    fn own_addresses() -> Vec<std::net::IpAddr> {
        let mut out: Vec<std::net::IpAddr> = Vec::new();
        for ip in if_addrs::get_if_addrs()
            .unwrap()
            .iter()
            .map(if_addrs::Interface::ip)
        {
            if !ip.is_loopback() && !out.contains(&ip) {
                out.push(ip);
            }
        }
        out
    }

    fn kind(ip: &std::net::IpAddr) -> &'static str {
        if ip.is_ipv4() { "A" } else { "AAAA" }
    }

    #[test]
    fn answers_external_addresses_as_coredns_does() {
        let s = served("");
        let nx = format!(";; NXDOMAIN aa rd\n;; authority\n{SOA}");
        let nodata = format!(";; NOERROR aa rd\n;; authority\n{SOA}");
        let own = own_addresses();
        let own_of = |v4: bool| {
            let mine: Vec<String> = own
                .iter()
                .filter(|ip| ip.is_ipv4() == v4)
                .map(|ip| format!("\nns1.dns.example.org. 5 IN {} {ip}", kind(ip)))
                .collect();
            if mine.is_empty() {
                nodata.clone()
            } else {
                format!(";; NOERROR aa rd{}", mine.concat())
            }
        };
        for (question, want) in [
            (
                "test.default.example.org. A",
                ";; NOERROR aa rd\ntest.default.example.org. 5 IN A 192.168.200.123".to_string(),
            ),
            // External IPs first, then the load balancer's; each address once.
            (
                "LB.prod.example.org. A",
                ";; NOERROR aa rd
                LB.prod.example.org. 5 IN A 192.0.2.7
                LB.prod.example.org. 5 IN A 203.0.113.10"
                    .to_string(),
            ),
            (
                "lb.prod.example.org. AAAA",
                ";; NOERROR aa rd\nlb.prod.example.org. 5 IN AAAA 2001:db8::10".to_string(),
            ),
            (
                "_http._tcp.lb.prod.example.org. SRV",
                ";; NOERROR aa rd
                _http._tcp.lb.prod.example.org. 5 IN SRV 0 33 80 lb.prod.example.org.
                ;; additional
                lb.prod.example.org. 5 IN A 192.0.2.7
                lb.prod.example.org. 5 IN A 203.0.113.10
                lb.prod.example.org. 5 IN AAAA 2001:db8::10"
                    .to_string(),
            ),
            ("_http._udp.lb.prod.example.org. SRV", nx.clone()),
            ("lb.prod.example.org. TXT", nodata.clone()),
            // A load balancer known by host name: a CNAME to it.
            (
                "named.prod.example.org. A",
                ";; NOERROR aa rd\nnamed.prod.example.org. 5 IN CNAME lb-1234.elb.example.net."
                    .to_string(),
            ),
            // No external address: not there (and a headless one without `headless`).
            ("web.prod.example.org. A", nx.clone()),
            ("db.prod.example.org. A", nx.clone()),
            ("nope.prod.example.org. A", nx.clone()),
            ("prod.example.org. A", nodata.clone()),
            ("nowhere.example.org. A", nx.clone()),
            ("a.b.c.lb.prod.example.org. A", nx.clone()),
            // The apex and its own names.
            ("example.org. SOA", format!(";; NOERROR aa rd\n{SOA}")),
            // No endpoint at the server's own addresses (it listens on all of the machine's):
            // `ns1` is those addresses, as CoreDNS's nsAddrs falls back to.
            ("example.org. NS", {
                let mut ns =
                    ";; NOERROR aa rd\nexample.org. 5 IN NS ns1.dns.example.org.".to_string();
                if !own.is_empty() {
                    ns.push_str("\n;; additional");
                }
                for ip in &own {
                    ns.push_str(&format!("\nns1.dns.example.org. 5 IN {} {ip}", kind(ip)));
                }
                ns
            }),
            ("example.org. A", nodata.clone()),
            ("ns1.dns.example.org. A", own_of(true)),
            ("ns1.dns.example.org. AAAA", own_of(false)),
            ("dns.example.org. A", nodata.clone()),
            ("ns2.dns.example.org. A", nx.clone()),
            // PTR for an external address, under the first zone.
            (
                "123.200.168.192.in-addr.arpa. PTR",
                ";; NOERROR aa rd
                123.200.168.192.in-addr.arpa. 5 IN PTR test.default.example.org."
                    .to_string(),
            ),
        ] {
            expect(&s, question, &want);
        }
        // The cluster's own names keep the fast path.
        assert!(s.fast("web.prod.svc.cluster.local. A"));
        assert!(!s.fast("lb.prod.example.org. A"));
    }

    #[test]
    fn headless_services_answer_with_their_ready_endpoints() {
        let s = served("  headless\n  ttl 30");
        for (question, want) in [
            (
                "db.prod.example.org. A",
                ";; NOERROR aa rd
                db.prod.example.org. 30 IN A 10.44.2.1
                db.prod.example.org. 30 IN A 10.44.2.2",
            ),
            (
                "db-0.db.prod.example.org. A",
                ";; NOERROR aa rd\ndb-0.db.prod.example.org. 30 IN A 10.44.2.1",
            ),
            // A wildcard endpoint label matches them all.
            (
                "*.db.prod.example.org. A",
                ";; NOERROR aa rd
                *.db.prod.example.org. 30 IN A 10.44.2.1
                *.db.prod.example.org. 30 IN A 10.44.2.2",
            ),
            // An endpoint's name answers under any service without external addresses; the
            // service's own name only for a headless one.
            (
                "10-44-5-1.web.prod.example.org. A",
                ";; NOERROR aa rd\n10-44-5-1.web.prod.example.org. 30 IN A 10.44.5.1",
            ),
            (
                "_pg._tcp.db.prod.example.org. SRV",
                ";; NOERROR aa rd
                _pg._tcp.db.prod.example.org. 5 IN SRV 0 50 5432 db-0.db.prod.example.org.
                _pg._tcp.db.prod.example.org. 5 IN SRV 0 50 5432 10-44-2-2.db.prod.example.org.
                ;; additional
                db-0.db.prod.example.org. 30 IN A 10.44.2.1
                10-44-2-2.db.prod.example.org. 30 IN A 10.44.2.2",
            ),
        ] {
            expect(&s, question, want);
        }
        let web = s.ask("web.prod.example.org. A");
        assert!(web.starts_with(";; NXDOMAIN"), "{web}");
    }

    #[test]
    fn fallthrough_passes_missing_names_on() {
        let s = Served::new(&format!(
            ".:0 {{\n kubernetes cluster.local {{\n  manifests {EXTERNAL}\n }}\n \
             k8s_external example.org {{\n  fallthrough\n }}\n whoami\n}}"
        ));
        let got = s.ask("nope.prod.example.org. A");
        assert!(got.contains("_udp.nope.prod.example.org."), "{got}");
    }

    #[test]
    fn needs_kubernetes_and_reads_its_options_as_coredns_does() {
        let config = crate::config::Config::from_text(
            ".:0 {\n k8s_external example.org\n}\n",
            0,
            std::path::Path::new("."),
        )
        .unwrap();
        let e = crate::assemble(&config).err().expect("refused").to_string();
        assert!(e.contains("kubernetes plugin not loaded"), "{e}");
        for (lines, why) in [
            (
                "k8s_external {\n ttl 3601\n}",
                "ttl must be in range [0, 3600]: 3601",
            ),
            ("k8s_external {\n ttl x\n}", "invalid syntax"),
            ("k8s_external {\n apex\n}", "Wrong argument count"),
            ("k8s_external {\n nope\n}", "unknown property 'nope'"),
        ] {
            let e =
                crate::plugin::testing::settings::<super::K8sExternalConfig>(lines).unwrap_err();
            assert!(
                e.contains(why) && e.contains("k8s_external"),
                "{lines}: {e}"
            );
        }
    }

    /// `ns1.dns.example.org`'s addresses when the server's own addresses are `local`: the
    /// plugin asked directly, over the external test cluster.
    fn ns1(local: &[&str], headless: bool) -> String {
        use crate::plugin::kubernetes::{Kubernetes, KubernetesConfig};
        use crate::source::Source;

        let config: KubernetesConfig = crate::plugin::testing::settings(&format!(
            "kubernetes cluster.local {{\n manifests {EXTERNAL}\n}}"
        ))
        .unwrap();
        let ips = local.iter().map(|ip| ip.parse().unwrap()).collect();
        let (kubernetes, mut writer) =
            Kubernetes::with_external(&config, false, Some(headless), ips);
        crate::source::manifests::ManifestSource {
            paths: config.manifests.clone(),
            reload: std::time::Duration::ZERO,
        }
        .load(&mut writer)
        .unwrap();
        let zone = hickory_proto::rr::Name::from_ascii("example.org.").unwrap();
        let plugin = super::K8sExternal {
            zones: crate::wire::Zones::new(&[hickory_proto::rr::LowerName::from(zone.clone())]),
            first: zone,
            apex: "dns".into(),
            ttl: 5,
            headless,
            fallthrough: crate::corefile::Fallthrough::default(),
            view: std::sync::OnceLock::new(),
        };
        plugin.attach(kubernetes.view(), 5);
        let name = hickory_proto::rr::Name::from_ascii("ns1.dns.example.org.").unwrap();
        let qtype = hickory_proto::rr::RecordType::A;
        let req = crate::plugin::Request::new(name.clone(), qtype);
        match crate::plugin::Phases::serve(&plugin, &req) {
            crate::plugin::Outcome::Reply(reply) => {
                let text = crate::plugin::testing::reply_text(&name, qtype, &reply);
                text.lines()
                    .filter(|l| l.contains(" IN A "))
                    .map(|l| l.rsplit(' ').next().unwrap_or_default())
                    .collect::<Vec<_>>()
                    .join(" ")
            }
            _ => panic!("ns1 not answered"),
        }
    }

    #[test]
    fn ns1_is_the_external_address_of_the_service_the_server_is_an_endpoint_of() {
        // kube-dns's endpoint (tests/data/external.yaml) is 10.244.0.53: kube-dns's external
        // IP. Another address: that address itself. A headless service's endpoint, under
        // `headless`: its endpoints.
        for (local, headless, want) in [
            (&["10.244.0.53"][..], false, "198.51.100.53"),
            (&["192.0.2.99"][..], false, "192.0.2.99"),
            (&[][..], false, ""),
            (&["10.44.2.2"][..], true, "10.44.2.1 10.44.2.2"),
        ] {
            assert_eq!(ns1(local, headless), want, "{local:?} headless={headless}");
        }
    }
}
