//! `dns64 [PREFIX] { prefix PREFIX; translate_all; allow_ipv4 }`: DNS64 (RFC 6147) as CoreDNS's
//! `dns64` does it. An AAAA question (class IN, from an IPv6 client unless `allow_ipv4`) whose
//! answer is not NXDOMAIN and holds no AAAA (or any answer, with `translate_all`) is asked again
//! for A, of the whole chain, and answered with those addresses embedded in PREFIX
//! (`64:ff9b::/96` by default; RFC 6052's layout).
//!
//! The plugin itself only keeps such questions off the fast path and says what to do; the
//! handler asks the chain again (the one re-asking mechanism, [`crate::answer`]), and
//! [`Dns64::synthesize`] makes the answer.

use std::net::{Ipv4Addr, Ipv6Addr};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::AAAA;
use hickory_proto::rr::{DNSClass, LowerName, Name, RData, Record, RecordType};

use super::setup::{Building, Context, Setup, SetupError};
use super::{Fast, Phases, Plugin, Reply, Request};
use crate::corefile::{ConfigError, Directive, directive_err};
use crate::wire::{LightQuery, Owner, Section};

/// RFC 6147 5.1.7: the TTL of a synthesized record when the AAAA answer had no SOA.
const NO_SOA_TTL: u32 = 600;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dns64 {
    prefix: Ipv6Addr,
    /// In bits: 32, 40, 48, 56, 64 or 96.
    len: u8,
    translate_all: bool,
    allow_ipv4: bool,
}

impl Default for Dns64 {
    fn default() -> Self {
        Self {
            prefix: Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0),
            len: 96,
            translate_all: false,
            allow_ipv4: false,
        }
    }
}

/// A PREFIX as CoreDNS takes it: an IPv6 network of a length RFC 6052 defines.
fn prefix(d: &Directive, text: &str) -> Result<(Ipv6Addr, u8), ConfigError> {
    let err = |m: String| directive_err(d, "dns64", m);
    let (address, len) = text
        .split_once('/')
        .ok_or_else(|| err(format!("invalid CIDR address: {text}")))?;
    let len: u8 = len
        .parse()
        .map_err(|_| err(format!("invalid CIDR address: {text}")))?;
    let address: std::net::IpAddr = address
        .parse()
        .map_err(|_| err(format!("invalid CIDR address: {text}")))?;
    let std::net::IpAddr::V6(address) = address else {
        return Err(err(format!("invalid netmask 32 IPv6 address: \"{text}\"")));
    };
    if len > 128 {
        return Err(err(format!("invalid CIDR address: {text}")));
    }
    if !len.is_multiple_of(8) || !(32..=96).contains(&len) {
        return Err(err(format!("invalid prefix length \"{text}\"")));
    }
    // The network itself: the bits past the length cleared, as Go's ParseCIDR gives it.
    let mask = u128::MAX << (128 - u32::from(len));
    Ok((Ipv6Addr::from(u128::from(address) & mask), len))
}

impl Setup for Dns64 {
    fn parse(d: &Directive, _: &Context<'_>) -> Result<Self, ConfigError> {
        let mut dns64 = Self::default();
        match d.args.as_slice() {
            [] => {}
            [p] => (dns64.prefix, dns64.len) = prefix(d, p)?,
            _ => {
                return Err(directive_err(
                    d,
                    "dns64",
                    format!(
                        "Wrong argument count or unexpected line ending after '{}'",
                        d.args.last().map_or("dns64", String::as_str)
                    ),
                ));
            }
        }
        for o in &d.block {
            match (o.name.as_str(), o.args.as_slice()) {
                ("prefix", [p]) => (dns64.prefix, dns64.len) = prefix(o, p)?,
                ("prefix", _) => {
                    return Err(directive_err(
                        o,
                        "dns64",
                        "Wrong argument count or unexpected line ending after 'prefix'",
                    ));
                }
                ("translate_all", _) => dns64.translate_all = true,
                ("allow_ipv4", _) => dns64.allow_ipv4 = true,
                (other, _) => {
                    return Err(directive_err(
                        o,
                        "dns64",
                        format!("unknown property '{other}'"),
                    ));
                }
            }
        }
        Ok(dns64)
    }

    fn build(&self, b: &mut Building<'_>) -> Result<(), SetupError> {
        b.chain.push(Plugin::Dns64(self.clone()));
        Ok(())
    }
}

impl Phases for Dns64 {
    /// AAAA questions go the full way, where the chain can be asked again; the rest is
    /// untouched.
    fn serve_fast(&self, query: &LightQuery, _out: &mut Vec<u8>) -> Fast {
        if query.qtype == u16::from(RecordType::AAAA) {
            Fast::Slow
        } else {
            Fast::Next
        }
    }
}

impl Dns64 {
    /// Whether the answer to `req` may be synthesized (RFC 6147 5.1: AAAA, class IN), and
    /// whether its client may have one (IPv6 only, unless `allow_ipv4`; an IPv4-mapped address
    /// is IPv4).
    pub fn applies(&self, req: &Request) -> bool {
        req.qtype == RecordType::AAAA
            && req.class == DNSClass::IN
            && (self.allow_ipv4 || req.src.is_some_and(|s| s.ip().to_canonical().is_ipv6()))
    }

    /// Whether an answer with `rcode` and these answer records is synthesized: not NXDOMAIN
    /// (5.1.2), and without an AAAA (5.1.1) unless `translate_all`.
    pub fn wants(&self, rcode: ResponseCode, answers: &[Record]) -> bool {
        rcode != ResponseCode::NXDomain
            && (self.translate_all || !answers.iter().any(|r| r.record_type() == RecordType::AAAA))
    }

    /// [`Self::wants`] for a reply made for the question `asked` AAAA.
    pub fn wants_reply(&self, reply: &Reply, asked: &Name) -> bool {
        reply.rcode != ResponseCode::NXDomain
            && (self.translate_all
                || reply
                    .message(asked, RecordType::AAAA)
                    .is_some_and(|m| self.wants(reply.rcode, m.answers())))
    }

    /// [`Self::wants`] for an upstream's whole response.
    pub fn wants_response(&self, response: &[u8]) -> bool {
        hickory_proto::op::Message::from_vec(response)
            .is_ok_and(|m| self.wants(m.response_code(), m.answers()))
    }

    /// The answer to `asked` AAAA made from `aaaa` (the chain's answer to it) and `a` (its
    /// answer for A), as CoreDNS makes it: NOERROR, not authoritative; each A record of the
    /// answer becomes an AAAA in the prefix, with the smaller of its TTL and the AAAA answer's
    /// SOA TTL (600 without one); every other record, and the A answer's authority and
    /// additional sections, unchanged (5.3.2, 5.3.3).
    pub fn synthesize(&self, asked: &Name, aaaa: &Reply, a: &Reply) -> Reply {
        let soa_ttl = aaaa
            .message(asked, RecordType::AAAA)
            .and_then(|m| {
                m.name_servers()
                    .iter()
                    .filter(|r| r.record_type() == RecordType::SOA)
                    .map(Record::ttl)
                    .next_back()
            })
            .unwrap_or(NO_SOA_TTL);
        let mut reply = Reply::authoritative(ResponseCode::NoError);
        reply.authoritative = false;
        let Some(message) = a.message(asked, RecordType::A) else {
            return reply;
        };
        let question = LowerName::new(asked);
        let push = |section: &mut Section, record: &Record| {
            let owner = if LowerName::new(record.name()) == question {
                Owner::Question
            } else {
                Owner::Name(record.name())
            };
            section.push_record(owner, record);
        };
        for record in message.answers() {
            match record.data() {
                RData::A(address) => {
                    let mut synthesized = Record::from_rdata(
                        record.name().clone(),
                        record.ttl().min(soa_ttl),
                        RData::AAAA(AAAA(self.embed(address.0))),
                    );
                    synthesized.set_dns_class(record.dns_class());
                    push(&mut reply.answers, &synthesized);
                }
                _ => push(&mut reply.answers, record),
            }
        }
        for record in message.name_servers() {
            push(&mut reply.authority, record);
        }
        for record in message.additionals() {
            push(&mut reply.additional, record);
        }
        reply
    }

    /// RFC 6052 2.2: the IPv4 address in the prefix, skipping bits 64 to 71.
    pub fn embed(&self, v4: Ipv4Addr) -> Ipv6Addr {
        let mut out = self.prefix.octets();
        let mut at = usize::from(self.len / 8);
        for byte in v4.octets() {
            if at == 8 {
                out[8] = 0;
                at = 9;
            }
            out[at] = byte;
            at += 1;
        }
        Ipv6Addr::from(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Dns64, String> {
        crate::plugin::testing::settings(text)
    }

    #[test]
    fn setup_takes_coredns_forms_and_refuses_bad_prefixes() {
        /// Prefix, length, translate_all, allow_ipv4; or what the error says.
        type Want = Result<(&'static str, u8, bool, bool), &'static str>;
        let table: &[(&str, Want)] = &[
            ("dns64", Ok(("64:ff9b::", 96, false, false))),
            ("dns64 64:1337::/96", Ok(("64:1337::", 96, false, false))),
            (
                "dns64 {\nprefix 2001:db8::/32\n}",
                Ok(("2001:db8::", 32, false, false)),
            ),
            (
                "dns64 {\ntranslate_all\nallow_ipv4\n}",
                Ok(("64:ff9b::", 96, true, true)),
            ),
            ("dns64 64:ff9b::1/96", Ok(("64:ff9b::", 96, false, false))),
            ("dns64 64:ff9b::/97", Err("invalid prefix length")),
            ("dns64 64:ff9b::/100", Err("invalid prefix length")),
            ("dns64 64:ff9b::/24", Err("invalid prefix length")),
            ("dns64 10.0.0.0/8", Err("invalid netmask 32 IPv6 address")),
            ("dns64 64:ff9b::", Err("invalid CIDR address")),
            ("dns64 a b", Err("Wrong argument count")),
            ("dns64 {\nprefix\n}", Err("Wrong argument count")),
            ("dns64 {\nbogus\n}", Err("unknown property 'bogus'")),
        ];
        for (line, want) in table {
            match (want, parse(line)) {
                (Ok((p, len, all, v4)), Ok(d)) => {
                    assert_eq!(d.prefix, p.parse::<Ipv6Addr>().unwrap(), "{line}");
                    assert_eq!((d.len, d.translate_all, d.allow_ipv4), (*len, *all, *v4));
                }
                (Err(want), Err(got)) => {
                    assert!(got.contains(want), "{line}: {got}");
                    assert!(got.contains("dns64"), "{line}: {got}");
                }
                (want, got) => panic!("{line}: want {want:?}, got {got:?}"),
            }
        }
    }

    /// RFC 6052 2.4's table of examples (192.0.2.33 in each prefix length).
    #[test]
    fn addresses_are_embedded_as_rfc_6052_lays_them_out() {
        let table = [
            ("2001:db8::/32", "2001:db8:c000:221::"),
            ("2001:db8:100::/40", "2001:db8:1c0:2:21::"),
            ("2001:db8:122::/48", "2001:db8:122:c000:2:2100::"),
            ("2001:db8:122:300::/56", "2001:db8:122:3c0:0:221::"),
            ("2001:db8:122:344::/64", "2001:db8:122:344:c0:2:2100:0"),
            ("2001:db8:122:344::/96", "2001:db8:122:344::192.0.2.33"),
            ("64:ff9b::/96", "64:ff9b::192.0.2.33"),
        ];
        for (p, want) in table {
            let d = parse(&format!("dns64 {p}")).unwrap();
            assert_eq!(
                d.embed(Ipv4Addr::new(192, 0, 2, 33)),
                want.parse::<Ipv6Addr>().unwrap(),
                "{p}"
            );
        }
    }

    #[test]
    fn applies_to_aaaa_in_questions_from_ipv6_clients_unless_allow_ipv4() {
        let d = Dns64::default();
        let all = Dns64 {
            allow_ipv4: true,
            ..Dns64::default()
        };
        let ask = |qtype, src: &str, class| {
            let mut r = Request::new(Name::from_ascii("a.example.").unwrap(), qtype);
            r.src = Some(src.parse().unwrap());
            r.class = class;
            r
        };
        let v6 = "[2001:db8::1]:5353";
        let v4 = "192.0.2.1:5353";
        let mapped = "[::ffff:192.0.2.1]:5353";
        assert!(d.applies(&ask(RecordType::AAAA, v6, DNSClass::IN)));
        assert!(!d.applies(&ask(RecordType::AAAA, v4, DNSClass::IN)));
        assert!(!d.applies(&ask(RecordType::AAAA, mapped, DNSClass::IN)));
        assert!(!d.applies(&ask(RecordType::A, v6, DNSClass::IN)));
        assert!(!d.applies(&ask(RecordType::AAAA, v6, DNSClass::CH)));
        assert!(all.applies(&ask(RecordType::AAAA, v4, DNSClass::IN)));
    }

    fn record(name: &str, ttl: u32, data: RData) -> Record {
        Record::from_rdata(Name::from_ascii(name).unwrap(), ttl, data)
    }

    fn reply(rcode: ResponseCode, answers: &[Record], authority: &[Record]) -> Reply {
        let mut r = Reply::authoritative(rcode);
        for a in answers {
            r.answers.push_record(Owner::Name(a.name()), a);
        }
        for a in authority {
            r.authority.push_record(Owner::Name(a.name()), a);
        }
        r
    }

    #[test]
    fn what_is_synthesized_and_with_which_ttl() {
        use hickory_proto::rr::rdata::{A, CNAME, SOA};
        let asked = Name::from_ascii("www.example.").unwrap();
        let soa = |ttl| {
            record(
                "example.",
                ttl,
                RData::SOA(SOA::new(
                    Name::from_ascii("ns.example.").unwrap(),
                    Name::from_ascii("admin.example.").unwrap(),
                    1,
                    2,
                    3,
                    4,
                    5,
                )),
            )
        };
        let v6 = record(
            "www.example.",
            300,
            RData::AAAA(AAAA("2001:db8::1".parse().unwrap())),
        );
        let d = Dns64::default();
        let all = Dns64 {
            translate_all: true,
            ..Dns64::default()
        };
        let nodata = reply(ResponseCode::NoError, &[], &[soa(60)]);
        let nxdomain = reply(ResponseCode::NXDomain, &[], &[soa(60)]);
        let has = reply(ResponseCode::NoError, std::slice::from_ref(&v6), &[]);
        let failed = reply(ResponseCode::ServFail, &[], &[]);
        assert!(d.wants_reply(&nodata, &asked));
        assert!(!d.wants_reply(&nxdomain, &asked));
        assert!(!all.wants_reply(&nxdomain, &asked));
        assert!(!d.wants_reply(&has, &asked));
        assert!(all.wants_reply(&has, &asked));
        assert!(d.wants_reply(&failed, &asked));

        let a = reply(
            ResponseCode::NoError,
            &[
                record(
                    "www.example.",
                    300,
                    RData::CNAME(CNAME(Name::from_ascii("web.example.").unwrap())),
                ),
                record("web.example.", 30, RData::A(A::new(192, 0, 2, 1))),
                record("web.example.", 3000, RData::A(A::new(192, 0, 2, 2))),
            ],
            &[],
        );
        let rendered = |r: &Reply| -> Vec<String> {
            r.message(&asked, RecordType::AAAA)
                .unwrap()
                .answers()
                .iter()
                .map(|r| format!("{} {} {}", r.name(), r.ttl(), r.data()))
                .collect()
        };
        let made = d.synthesize(&asked, &nodata, &a);
        assert_eq!(made.rcode, ResponseCode::NoError);
        assert!(!made.authoritative);
        assert_eq!(
            rendered(&made),
            [
                "www.example. 300 web.example.",
                "web.example. 30 64:ff9b::c000:201",
                "web.example. 60 64:ff9b::c000:202",
            ]
        );
        // No SOA in the AAAA answer: at most 600.
        let made = d.synthesize(&asked, &failed, &a);
        assert_eq!(rendered(&made)[2], "web.example. 600 64:ff9b::c000:202");
    }

    #[test]
    fn through_the_handler() {
        use crate::plugin::testing::Served;
        let block = |dns64: &str| {
            Served::new(&format!(
                ".:0 {{
                {dns64}
                hosts {{
                    192.0.2.1 both.example
                    2001:db8::1 both.example
                    192.0.2.2 four.example
                    fallthrough
                }}
                kubernetes cluster.local {{
                    manifests DATA
                }}
            }}"
            ))
        };
        let v4 = block("dns64 {\nallow_ipv4\n}");
        // A service with an IPv6 address keeps it; one without gets its IPv4 one in the
        // prefix, not authoritative, TTL the smaller of the A's and the SOA's.
        v4.expect(
            "web.prod.svc.cluster.local. AAAA",
            ";; NOERROR aa rd ra
            web.prod.svc.cluster.local. 5 IN AAAA fd00:10:96::1234",
        );
        v4.expect(
            "kube-dns.kube-system.svc.cluster.local. AAAA",
            ";; NOERROR rd
            kube-dns.kube-system.svc.cluster.local. 5 IN AAAA 64:ff9b::a60:a",
        );
        v4.expect(
            "db.prod.svc.cluster.local. AAAA",
            ";; NOERROR rd
            db.prod.svc.cluster.local. 5 IN AAAA 64:ff9b::a2c:a
            db.prod.svc.cluster.local. 5 IN AAAA 64:ff9b::a2c:b",
        );
        // A is untouched, and stays on the fast path; AAAA goes the full way.
        v4.expect(
            "web.prod.svc.cluster.local. A",
            ";; NOERROR aa rd ra
            web.prod.svc.cluster.local. 5 IN A 10.96.12.34",
        );
        assert!(v4.fast("web.prod.svc.cluster.local. A"));
        assert!(!v4.fast("kube-dns.kube-system.svc.cluster.local. AAAA"));
        // NXDOMAIN stays NXDOMAIN (RFC 6147 5.1.2).
        let missing = v4.ask("nothing.prod.svc.cluster.local. AAAA");
        assert!(missing.starts_with(";; NXDOMAIN aa rd\n"), "{missing}");
        // From hosts: an AAAA is kept; a NODATA without SOA synthesizes with at most 600.
        v4.expect(
            "both.example. AAAA",
            ";; NOERROR aa rd
            both.example. 3600 IN AAAA 2001:db8::1",
        );
        v4.expect(
            "four.example. AAAA",
            ";; NOERROR rd
            four.example. 600 IN AAAA 64:ff9b::c000:202",
        );
        // translate_all replaces even an AAAA; the prefix is the configured one.
        let all = block("dns64 64:1337::/96 {\nallow_ipv4\ntranslate_all\n}");
        all.expect(
            "both.example. AAAA",
            ";; NOERROR rd
            both.example. 600 IN AAAA 64:1337::c000:201",
        );
        // Without allow_ipv4, an IPv4 client (the harness's) gets the plain NODATA.
        block("dns64").expect("four.example. AAAA", ";; NOERROR aa rd");
    }
}
