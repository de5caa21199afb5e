//! `acl [ZONES...] { ACTION [type QTYPE...] [net SOURCE...] }`: access control by the query's
//! source address and type, as CoreDNS's `acl` does it. Each `acl` line is a rule over its zones
//! (the block's by default); a rule's policies are tried in order and the first that matches
//! the query's type and source decides: `allow` ends the checking (the query is answered),
//! `block` answers REFUSED, `filter` answers NOERROR with nothing, both with an extended DNS
//! error (Blocked, Filtered), and `drop` answers nothing. A query no policy matches goes to
//! the next rule, and past the last one is allowed.
//!
//! `drop` is decided in the admit phase; `block` and `filter` answer in the chain (where
//! CoreDNS's acl sits, after `rewrite` and `autopath`); on the fast path, a query acl would
//! not allow is sent the full way ([`Phases::fast_for`]).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{LowerName, RecordType};

use super::setup::{Building, Context, Setup, SetupError};
use super::{Ede, Fast, Outcome, Phases, Plugin, Reply, Request, Seen};
use crate::corefile::{ConfigError, Directive, directive_err};
use crate::wire::{self, HEADER_LEN, LightQuery, Transport, Zones};

/// RFC 8914's INFO-CODEs CoreDNS gives.
const BLOCKED: u16 = 15;
const FILTERED: u16 = 17;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Allow,
    Block,
    Filter,
    Drop,
}

/// A network a policy matches: an address and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Net {
    address: IpAddr,
    len: u8,
}

/// The mask of an IPv4 prefix of `len` bits (at most 32).
pub fn v4_mask(len: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0)
}

/// The mask of an IPv6 prefix of `len` bits (at most 128).
pub fn v6_mask(len: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0)
}

impl Net {
    /// CIDR notation, or one address (a /32 or /128), as CoreDNS's acl takes it; the address
    /// is masked to its network as Go's ParseCIDR does.
    pub fn parse(text: &str) -> Option<Self> {
        let (address, len) = match text.split_once('/') {
            Some((a, l)) => (a.parse::<IpAddr>().ok()?, Some(l.parse::<u8>().ok()?)),
            None => (text.parse::<IpAddr>().ok()?, None),
        };
        let max = if address.is_ipv4() { 32 } else { 128 };
        let len = len.unwrap_or(max);
        if len > max {
            return None;
        }
        let address = match address {
            IpAddr::V4(a) => IpAddr::V4((u32::from(a) & v4_mask(len)).into()),
            IpAddr::V6(a) => IpAddr::V6((u128::from(a) & v6_mask(len)).into()),
        };
        Some(Self { address, len })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.address, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                u32::from(ip) & v4_mask(self.len) == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                u128::from(ip) & v6_mask(self.len) == u128::from(net)
            }
            _ => false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Policy {
    action: Action,
    /// `None`: every type (`type *`, or no `type`).
    types: Option<Vec<u16>>,
    /// `None`: every source (`net *`, or no `net`).
    nets: Option<Vec<Net>>,
}

impl Policy {
    fn matches(&self, qtype: u16, ip: IpAddr) -> bool {
        self.types.as_ref().is_none_or(|t| t.contains(&qtype))
            && self
                .nets
                .as_ref()
                .is_none_or(|n| n.iter().any(|n| n.contains(ip)))
    }
}

/// One `acl` line: its zones and policies.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    zones: Vec<LowerName>,
    policies: Vec<Policy>,
}

/// Every `acl` line of a block, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclConfig {
    rules: Vec<Rule>,
}

fn policy(o: &Directive) -> Result<Policy, ConfigError> {
    let err = |m: String| directive_err(o, "acl", m);
    let action = match o.name.to_ascii_lowercase().as_str() {
        "allow" => Action::Allow,
        "block" => Action::Block,
        "filter" => Action::Filter,
        "drop" => Action::Drop,
        _ => {
            return Err(err(format!(
                "unexpected token \"{}\"; expect 'allow', 'block', 'filter' or 'drop'",
                o.name
            )));
        }
    };
    let section = |t: &str| matches!(t.to_ascii_lowercase().as_str(), "type" | "net");
    let mut policy = Policy {
        action,
        types: None,
        nets: None,
    };
    let (mut has_types, mut has_nets) = (false, false);
    let mut rest = o.args.as_slice();
    while let Some((first, after)) = rest.split_first() {
        if !section(first) {
            return Err(err(format!(
                "unexpected token \"{first}\"; expect 'type | net'"
            )));
        }
        let n = after.iter().position(|t| section(t)).unwrap_or(after.len());
        let (tokens, next) = after.split_at(n);
        rest = next;
        let name = first.to_ascii_lowercase();
        if tokens.is_empty() {
            return Err(err(format!("no token specified in \"{name}\" section")));
        }
        if name == "type" {
            let types = policy.types.get_or_insert_with(Vec::new);
            has_types = true;
            for token in tokens {
                if token == "*" {
                    break;
                }
                // miekg/dns's type names: upper case only.
                let qtype = (token.to_ascii_uppercase() == *token)
                    .then(|| token.parse::<RecordType>().ok())
                    .flatten()
                    .filter(|t| !matches!(t, RecordType::Unknown(_)))
                    .ok_or_else(|| {
                        err(format!("unexpected token \"{token}\"; expect legal QTYPE"))
                    })?;
                types.push(u16::from(qtype));
            }
            if tokens.iter().any(|t| t == "*") {
                policy.types = None;
            }
        } else {
            let nets = policy.nets.get_or_insert_with(Vec::new);
            has_nets = true;
            for token in tokens {
                if token == "*" {
                    break;
                }
                nets.push(
                    Net::parse(token)
                        .ok_or_else(|| err(format!("illegal CIDR notation \"{token}\"")))?,
                );
            }
            if tokens.iter().any(|t| t == "*") {
                policy.nets = None;
            }
        }
    }
    if !has_types {
        policy.types = None;
    }
    if !has_nets {
        policy.nets = None;
    }
    Ok(policy)
}

impl Setup for AclConfig {
    fn parse(d: &Directive, cx: &Context<'_>) -> Result<Self, ConfigError> {
        let zones = crate::corefile::args::plugin_zones(d, "acl", &d.args, cx.zones)?;
        let policies = d.block.iter().map(policy).collect::<Result<_, _>>()?;
        Ok(Self {
            rules: vec![Rule { zones, policies }],
        })
    }

    /// CoreDNS takes any number of `acl` lines in a block, as rules in order.
    fn merge(&mut self, later: Self) -> bool {
        self.rules.extend(later.rules);
        true
    }

    fn build(&self, b: &mut Building<'_>) -> Result<(), SetupError> {
        let server = b
            .listen
            .first()
            .map(ToString::to_string)
            .unwrap_or_default();
        let counted = b.metrics;
        let counter = |kind: &'static str, help: &'static str, zone: Option<&LowerName>| {
            counted.then(|| {
                let labels = match zone {
                    Some(z) => format!("server=\"{server}\",view=\"\",zone=\"{z}\""),
                    None => format!("server=\"{server}\",view=\"\""),
                };
                crate::metrics::metrics().counter(kind, help, labels)
            })
        };
        let rules = self
            .rules
            .iter()
            .map(|r| RuleRuntime {
                zones: Zones::new(&r.zones),
                policies: r.policies.clone(),
                counters: r
                    .zones
                    .iter()
                    .map(|z| Counters {
                        blocked: counter(
                            "coredns_acl_blocked_requests_total",
                            "Counter of DNS requests being blocked.",
                            Some(z),
                        ),
                        filtered: counter(
                            "coredns_acl_filtered_requests_total",
                            "Counter of DNS requests being filtered.",
                            Some(z),
                        ),
                        dropped: counter(
                            "coredns_acl_dropped_requests_total",
                            "Counter of DNS requests being dropped.",
                            Some(z),
                        ),
                    })
                    .collect(),
            })
            .collect();
        b.chain.push(Plugin::Acl(Box::new(Acl {
            rules,
            allowed: counter(
                "coredns_acl_allowed_requests_total",
                "Counter of DNS requests being allowed.",
                None,
            ),
        })));
        Ok(())
    }
}

#[derive(Debug)]
struct Counters {
    blocked: Option<Arc<AtomicU64>>,
    filtered: Option<Arc<AtomicU64>>,
    dropped: Option<Arc<AtomicU64>>,
}

#[derive(Debug)]
struct RuleRuntime {
    zones: Zones,
    policies: Vec<Policy>,
    /// By zone, as `zones` orders them.
    counters: Vec<Counters>,
}

/// A block's acl as it serves.
#[derive(Debug)]
pub struct Acl {
    rules: Vec<RuleRuntime>,
    /// With `prometheus`: `coredns_acl_allowed_requests_total`.
    allowed: Option<Arc<AtomicU64>>,
}

fn add(counter: &Option<Arc<AtomicU64>>) {
    if let Some(c) = counter {
        c.fetch_add(1, Ordering::Relaxed);
    }
}

impl Acl {
    /// What the rules decide for a question (its zone in each rule found by `zone_of`) of
    /// `qtype` from `ip`: the action of the first policy that matches, with the rule and zone
    /// that matched; `None` when the query is allowed.
    fn decide(
        &self,
        zone_of: impl Fn(&Zones) -> Option<usize>,
        qtype: u16,
        ip: IpAddr,
    ) -> Option<(Action, &Counters)> {
        for rule in &self.rules {
            let Some(zone) = zone_of(&rule.zones) else {
                continue;
            };
            match rule.policies.iter().find(|p| p.matches(qtype, ip)) {
                None => continue,
                Some(p) if p.action == Action::Allow => return None,
                Some(p) => return Some((p.action, &rule.counters[zone])),
            }
        }
        None
    }

    /// [`Self::decide`] for a query as it came (its question's name in wire form).
    fn decide_wire(&self, query: &[u8], ip: IpAddr) -> Option<(Action, &Counters)> {
        let mut key = [0u8; wire::MAX_NAME];
        let (len, end) = wire::read_name(query, HEADER_LEN, &mut key, wire::Pointers::Follow)?;
        let qtype = query.get(end..end + 2)?;
        let qtype = u16::from_be_bytes([qtype[0], qtype[1]]);
        self.decide(|z| z.longest_index_wire(&key[..len]), qtype, ip)
    }
}

impl Phases for Acl {
    const ANSWERS: bool = true;
    const SCREENS: bool = true;

    fn fast_for(&self, query: &LightQuery, src: SocketAddr) -> bool {
        self.decide(|z| z.longest_index_wire(query.key()), query.qtype, src.ip())
            .is_none()
    }

    /// A query on the fast path is one [`Self::fast_for`] let through: nothing to answer.
    fn serve_fast(&self, _: &LightQuery, _: &mut Vec<u8>) -> Fast {
        Fast::Next
    }

    /// `drop`: the query is not answered.
    fn admit(&self, query: &[u8], src: SocketAddr, _: Transport) -> bool {
        match self.decide_wire(query, src.ip()) {
            Some((Action::Drop, counters)) => {
                add(&counters.dropped);
                false
            }
            _ => true,
        }
    }

    /// `block` and `filter` answer; anything else goes on down the chain.
    fn serve(&self, req: &Request) -> Outcome {
        // CoreDNS blocks a query whose source it cannot read.
        let decided = match req.src {
            Some(src) => self.decide(
                |z| z.longest_index(&req.lower),
                u16::from(req.qtype),
                src.ip(),
            ),
            None => return Outcome::Reply(refused(BLOCKED)),
        };
        match decided {
            Some((Action::Block, counters)) => {
                add(&counters.blocked);
                Outcome::Reply(refused(BLOCKED))
            }
            Some((Action::Filter, counters)) => {
                add(&counters.filtered);
                let mut reply = refused(FILTERED);
                reply.rcode = ResponseCode::NoError;
                Outcome::Reply(reply)
            }
            _ => Outcome::Next,
        }
    }

    /// Every query this block answers that acl let through is counted as allowed.
    fn observe(&self, seen: &Seen<'_>) {
        if self.allowed.is_some() && self.decide_wire(seen.query, seen.src.ip()).is_none() {
            add(&self.allowed);
        }
    }
}

/// CoreDNS's answer to a query acl stops: REFUSED, not authoritative, with the extended error.
fn refused(code: u16) -> Reply {
    let mut reply = Reply::authoritative(ResponseCode::Refused);
    reply.authoritative = false;
    reply.ede = Some(Box::new(Ede {
        code,
        text: String::new(),
    }));
    reply
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::testing::Served;

    fn parsed(lines: &str) -> Result<AclConfig, String> {
        crate::plugin::testing::settings(lines)
    }

    #[test]
    fn setup_reads_policies_and_refuses_what_coredns_refuses() {
        let got = parsed(
            "acl {\nallow net 192.168.1.0/24 10.0.0.1\nblock type A AAAA net *\nfilter\n}\nacl a.example.org {\ndrop type * net 2001:db8::/32\n}",
        )
        .unwrap();
        assert_eq!(got.rules.len(), 2);
        let [allow, block, filter] = got.rules[0].policies.as_slice() else {
            panic!("{got:?}");
        };
        assert_eq!(allow.action, Action::Allow);
        assert_eq!(allow.types, None);
        assert_eq!(
            allow.nets,
            Some(vec![
                Net::parse("192.168.1.0/24").unwrap(),
                Net::parse("10.0.0.1/32").unwrap()
            ])
        );
        assert_eq!(block.types, Some(vec![1, 28]));
        assert_eq!((block.action, &block.nets), (Action::Block, &None));
        assert_eq!(
            (filter.action, &filter.types, &filter.nets),
            (Action::Filter, &None, &None)
        );
        assert_eq!(got.rules[1].zones[0].to_string(), "a.example.org.");
        assert_eq!(got.rules[1].policies[0].action, Action::Drop);
        for (lines, error) in [
            (
                "acl {\npermit\n}",
                "expect 'allow', 'block', 'filter' or 'drop'",
            ),
            (
                "acl {\nblock name x\n}",
                "unexpected token \"name\"; expect 'type | net'",
            ),
            (
                "acl {\nblock type\n}",
                "no token specified in \"type\" section",
            ),
            (
                "acl {\nblock type BOGUS\n}",
                "unexpected token \"BOGUS\"; expect legal QTYPE",
            ),
            ("acl {\nblock type a\n}", "expect legal QTYPE"),
            (
                "acl {\nblock net 10.0.0.0/33\n}",
                "illegal CIDR notation \"10.0.0.0/33\"",
            ),
            ("acl {\nblock net example\n}", "illegal CIDR notation"),
        ] {
            let got = parsed(lines).expect_err(lines);
            assert!(got.contains(error), "{lines}: {got}");
        }
    }

    #[test]
    fn networks_match_as_cidr_says() {
        let net = Net::parse("10.244.1.9/16").unwrap();
        assert!(net.contains("10.244.200.1".parse().unwrap()));
        assert!(net.contains("::ffff:10.244.0.1".parse().unwrap()));
        assert!(!net.contains("10.245.0.1".parse().unwrap()));
        assert!(!net.contains("2001:db8::1".parse().unwrap()));
        let v6 = Net::parse("2001:db8::/32").unwrap();
        assert!(v6.contains("2001:db8:ffff::1".parse().unwrap()));
        assert!(!v6.contains("2001:db9::1".parse().unwrap()));
        assert!(
            Net::parse("0.0.0.0/0")
                .unwrap()
                .contains("192.0.2.1".parse().unwrap())
        );
        assert!(
            Net::parse("192.0.2.1")
                .unwrap()
                .contains("192.0.2.1".parse().unwrap())
        );
        assert!(
            !Net::parse("192.0.2.1")
                .unwrap()
                .contains("192.0.2.2".parse().unwrap())
        );
    }

    /// The test harness asks from 10.244.0.7.
    fn block(acl: &str) -> Served {
        Served::new(&format!(
            ".:0 {{
            {acl}
            hosts {{
                10.0.0.5 registry.local
                10.0.0.6 a.example.org
                fallthrough
            }}
            kubernetes cluster.local {{
                manifests DATA
            }}
        }}"
        ))
    }

    #[test]
    fn policies_decide_through_the_handler() {
        let web = "web.prod.svc.cluster.local. A";
        // Block A from the pods' network: REFUSED, not authoritative; AAAA still answered.
        let served = block("acl {\nblock type A net 10.244.0.0/16\n}");
        served.expect(web, ";; REFUSED rd");
        assert!(!served.fast(web));
        assert!(
            served
                .ask("web.prod.svc.cluster.local. AAAA")
                .starts_with(";; NOERROR aa")
        );
        assert!(served.fast("web.prod.svc.cluster.local. AAAA"));
        // Filter: NOERROR with nothing.
        block("acl {\nfilter net 10.244.0.7\n}").expect(web, ";; NOERROR rd");
        // Drop: no answer at all.
        block("acl {\ndrop\n}").expect(web, ";; dropped");
        // Allow first: the block after it never applies to this client, the next rule
        // neither.
        let allowed = block("acl {\nallow net 10.244.0.0/24\nblock\n}\nacl {\ndrop\n}");
        allowed.expect(
            web,
            ";; NOERROR aa rd ra\nweb.prod.svc.cluster.local. 5 IN A 10.96.12.34",
        );
        assert!(allowed.fast(web));
        // Another client is blocked, and a rule no policy matches passes to the next.
        let other = block(
            "acl {\nallow net 10.0.0.0/8 type MX\n}\nacl {\nblock net 192.0.2.0/24\nfilter type A\n}",
        );
        other.expect(web, ";; NOERROR rd");
        // Zones: only the rule's.
        let zoned = block("acl a.example.org {\nblock\n}");
        zoned.expect("a.example.org. A", ";; REFUSED rd");
        zoned.expect(
            "registry.local. A",
            ";; NOERROR aa rd\nregistry.local. 3600 IN A 10.0.0.5",
        );
    }

    #[test]
    fn blocked_and_filtered_answers_carry_the_extended_error() {
        use hickory_proto::op::{Edns, Message, Query};
        use hickory_proto::rr::Name;
        for (acl, rcode, code) in [
            ("acl {\nblock\n}", ResponseCode::Refused, BLOCKED),
            ("acl {\nfilter\n}", ResponseCode::NoError, FILTERED),
        ] {
            let served = block(acl);
            let mut msg = Message::new();
            msg.set_id(9).set_recursion_desired(true);
            msg.add_query(Query::query(
                Name::from_ascii("web.prod.svc.cluster.local.").unwrap(),
                RecordType::A,
            ));
            msg.set_edns(Edns::new());
            let mut out = Vec::new();
            let src: SocketAddr = "10.244.0.7:5353".parse().unwrap();
            served
                .handler
                .handle(&msg.to_vec().unwrap(), src, Transport::Udp, &mut out);
            let response = Message::from_vec(&out).unwrap();
            assert_eq!(response.response_code(), rcode, "{acl}");
            let opt = response.extensions().as_ref().expect("an OPT");
            let options: Vec<_> = opt.options().as_ref().iter().collect();
            assert_eq!(options.len(), 1, "{acl}: {options:?}");
            // The option's bytes: code 15, length 2, the INFO-CODE.
            let tail = &out[out.len() - 6..];
            assert_eq!(tail, [0, 15, 0, 2, 0, code as u8], "{acl}");
        }
    }
}
