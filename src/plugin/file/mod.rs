//! The `file` plugin: zones served from RFC 1035 master files, as CoreDNS's `file` plugin
//! serves them (see [`zone`] for the answers), each reloaded when its SOA serial changes.

pub mod auto;
pub mod secondary;
pub mod setup;
pub mod text;
pub mod zone;

pub use setup::FileConfig;

use std::sync::Arc;

use hickory_proto::op::ResponseCode;

use super::{Fast, Outcome, Phases, Reply, Request};
use crate::corefile::Fallthrough;
use crate::table::{NameKey, RecordTable};
use crate::wire::Zones;
use zone::Zone;

/// One zone's data as served: `None` until its file has been read (a file missing at start,
/// with `reload` on).
pub type Slot = Arc<RecordTable<Option<Arc<Zone>>>>;

#[derive(Debug)]
pub struct File {
    /// Every zone of every `file` line, in order; `slots` holds each one's data.
    zones: Zones,
    slots: Vec<Slot>,
    fallthrough: Fallthrough,
    /// The block's last plugin (CoreDNS's `Next == nil`): a name in none of its zones is
    /// REFUSED, not passed on.
    pub last: bool,
}

impl File {
    pub fn new(zones: Zones, slots: Vec<Slot>, fallthrough: Fallthrough) -> Self {
        Self {
            zones,
            slots,
            fallthrough,
            last: false,
        }
    }
}

/// What a zone plugin with no next plugin answers for a name in none of its zones.
pub fn refused() -> Outcome {
    let mut reply = Reply::authoritative(ResponseCode::Refused);
    reply.authoritative = false;
    Outcome::Reply(reply)
}

/// As CoreDNS's file plugin: names outside its zones pass on; a zone whose file has not been
/// read yet answers SERVFAIL; a name the zone lacks (NXDOMAIN, or an empty non-terminal)
/// passes on under `fallthrough`. (Zone transfers never get here: the handler refuses them.)
impl Phases for File {
    const ANSWERS: bool = true;

    fn serve(&self, req: &Request) -> Outcome {
        let Some(i) = self.zones.longest_index(&req.lower) else {
            return if self.last { refused() } else { Outcome::Next };
        };
        let data = self.slots[i].guard();
        serve_zone(data.as_ref().as_deref(), req, &self.fallthrough)
    }

    /// [`Self::serve`] on the fast path for queries without the DO bit: a set at a name,
    /// NODATA and NXDOMAIN copied from the zone's bytes.
    fn serve_fast(&self, query: &crate::wire::LightQuery, out: &mut Vec<u8>) -> Fast {
        let Some(i) = self.zones.longest_index_wire(query.key()) else {
            return Fast::Next;
        };
        let data = self.slots[i].guard();
        serve_zone_fast(data.as_ref().as_deref(), query, &self.fallthrough, out)
    }
}

/// `req` answered from `zone` (`None`: not read yet, SERVFAIL), passed on under `fallthrough`
/// when the zone lacks the name.
pub fn serve_zone(zone: Option<&Zone>, req: &Request, fallthrough: &Fallthrough) -> Outcome {
    let Some(zone) = zone else {
        let mut reply = Reply::authoritative(ResponseCode::ServFail);
        reply.authoritative = false;
        return Outcome::Reply(reply);
    };
    let key = NameKey::from(&req.lower);
    let answer = zone.lookup(key.as_bytes(), req.qtype, req.dnssec_ok);
    if answer.missing && fallthrough.through(&req.lower) {
        return Outcome::Next;
    }
    Outcome::Reply(answer.reply)
}

/// [`serve_zone`] on the fast path.
pub fn serve_zone_fast(
    zone: Option<&Zone>,
    query: &crate::wire::LightQuery,
    fallthrough: &Fallthrough,
    out: &mut Vec<u8>,
) -> Fast {
    let Some(zone) = zone else {
        return Fast::Slow;
    };
    if query.edns.is_some_and(|(_, dnssec_ok)| dnssec_ok) {
        return Fast::Slow;
    }
    let key = query.key();
    zone.lookup_fast(key, query.qtype, || fallthrough.through_wire(key), out)
}

#[cfg(test)]
mod tests {
    use crate::plugin::testing::Served;

    /// A zone with every kind of answer the plugin makes.
    const ZONE: &str = "\
$TTL 1800
$ORIGIN example.org.
@       IN SOA ns1.example.org. hostmaster.example.org. ( 2024010101 14400 3600 604800 14400 )
        IN NS  ns1.example.org.
        IN NS  ns.other.net.
        IN MX  10 mail.example.org.
        IN AAAA 2001:db8::1
ns1     IN A   192.0.2.53
mail    IN A   192.0.2.25
        IN AAAA 2001:db8::25
a       IN A   192.0.2.1
        IN AAAA 2001:db8::a
www     IN CNAME a
chain   IN CNAME www
ext     IN CNAME target.example.net.
_http._tcp.srv IN SRV 10 10 8080 a.example.org.
*.wild  IN A   192.0.2.99
*.cn    IN CNAME www.example.org.
deep.ent.under IN TXT \"deep\"
sub     IN NS  ns.sub.example.org.
ns.sub  IN A   192.0.2.77
dn      IN DNAME example.net.
";

    fn served(extra: &str) -> (tempfile::TempDir, Served) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.example.org");
        std::fs::write(&path, ZONE).unwrap();
        let corefile = format!(
            "example.org:0 {{\n file {} {extra}\n}}\nexample.net:0 {{\n template IN A example.net {{\n answer \"{{{{ .Name }}}} 60 IN A 198.51.100.1\"\n }}\n}}\n",
            path.display()
        );
        (dir, Served::new(&corefile))
    }

    #[test]
    fn answers_as_coredns_file_plugin() {
        let (_dir, s) = served("");
        const AUTH: &str = ";; authority
            example.org. 1800 IN NS ns1.example.org.
            example.org. 1800 IN NS ns.other.net.";
        const REFERRAL: &str = ";; NOERROR rd
            ;; authority
            sub.example.org. 1800 IN NS ns.sub.example.org.
            ;; additional
            ns.sub.example.org. 1800 IN A 192.0.2.77";
        const SOA: &str = ";; authority
            example.org. 1800 IN SOA ns1.example.org. hostmaster.example.org. 2024010101 14400 3600 604800 14400";
        let cases: &[(&str, String)] = &[
            // A set, the apex NS beside it; owners as the zone spells them.
            (
                "A.example.org. A",
                format!(";; NOERROR aa rd\na.example.org. 1800 IN A 192.0.2.1\n{AUTH}"),
            ),
            // The apex: SOA with NS; NS with its glue and no authority.
            (
                "example.org. SOA",
                format!(
                    ";; NOERROR aa rd\nexample.org. 1800 IN SOA ns1.example.org. hostmaster.example.org. 2024010101 14400 3600 604800 14400\n{AUTH}"
                ),
            ),
            (
                "example.org. NS",
                ";; NOERROR aa rd
                example.org. 1800 IN NS ns1.example.org.
                example.org. 1800 IN NS ns.other.net.
                ;; additional
                ns1.example.org. 1800 IN A 192.0.2.53"
                    .into(),
            ),
            // MX and SRV: their targets' addresses in the additional section.
            (
                "example.org. MX",
                format!(
                    ";; NOERROR aa rd\nexample.org. 1800 IN MX 10 mail.example.org.\n{AUTH}\n;; additional\nmail.example.org. 1800 IN A 192.0.2.25\nmail.example.org. 1800 IN AAAA 2001:db8::25"
                ),
            ),
            (
                "_http._tcp.srv.example.org. SRV",
                format!(
                    ";; NOERROR aa rd\n_http._tcp.srv.example.org. 1800 IN SRV 10 10 8080 a.example.org.\n{AUTH}\n;; additional\na.example.org. 1800 IN A 192.0.2.1\na.example.org. 1800 IN AAAA 2001:db8::a"
                ),
            ),
            // CNAMEs followed inside the zone.
            (
                "chain.example.org. AAAA",
                format!(
                    ";; NOERROR aa rd\nchain.example.org. 1800 IN CNAME www.example.org.\nwww.example.org. 1800 IN CNAME a.example.org.\na.example.org. 1800 IN AAAA 2001:db8::a\n{AUTH}"
                ),
            ),
            (
                "www.example.org. CNAME",
                format!(";; NOERROR aa rd\nwww.example.org. 1800 IN CNAME a.example.org.\n{AUTH}"),
            ),
            // A CNAME out of the zone: its target asked of the server (here another block).
            (
                "ext.example.org. A",
                format!(
                    ";; NOERROR aa rd\next.example.org. 1800 IN CNAME target.example.net.\ntarget.example.net. 60 IN A 198.51.100.1\n{AUTH}"
                ),
            ),
            // NODATA and NXDOMAIN with the SOA.
            ("a.example.org. MX", format!(";; NOERROR aa rd\n{SOA}")),
            ("nope.example.org. A", format!(";; NXDOMAIN aa rd\n{SOA}")),
            // An empty non-terminal exists: NODATA.
            ("under.example.org. A", format!(";; NOERROR aa rd\n{SOA}")),
            (
                "ent.under.example.org. TXT",
                format!(";; NOERROR aa rd\n{SOA}"),
            ),
            // Wildcards, from the closest encloser only.
            (
                "anything.wild.example.org. A",
                format!(
                    ";; NOERROR aa rd\nanything.wild.example.org. 1800 IN A 192.0.2.99\n{AUTH}"
                ),
            ),
            (
                "anything.wild.example.org. AAAA",
                format!(";; NOERROR aa rd\n{SOA}"),
            ),
            (
                "a.b.wild.example.org. A",
                format!(";; NOERROR aa rd\na.b.wild.example.org. 1800 IN A 192.0.2.99\n{AUTH}"),
            ),
            (
                "x.cn.example.org. A",
                format!(
                    ";; NOERROR aa rd\nx.cn.example.org. 1800 IN CNAME www.example.org.\nwww.example.org. 1800 IN CNAME a.example.org.\na.example.org. 1800 IN A 192.0.2.1\n{AUTH}"
                ),
            ),
            // A zone cut: a referral, not authoritative, with glue; DS is the parent's.
            ("host.sub.example.org. A", REFERRAL.into()),
            ("sub.example.org. NS", REFERRAL.into()),
            ("sub.example.org. DS", format!(";; NOERROR aa rd\n{SOA}")),
            // ANY is a type no name has.
            ("a.example.org. ANY", format!(";; NOERROR aa rd\n{SOA}")),
        ];
        for (question, want) in cases {
            s.expect(question, want);
        }
        // The plain answers are copied on the fast path.
        for question in [
            "a.example.org. A",
            "a.example.org. MX",
            "nope.example.org. A",
        ] {
            assert!(s.fast(question), "{question}");
        }
        for question in [
            "www.example.org. A",
            "x.wild.example.org. A",
            "host.sub.example.org. A",
        ] {
            assert!(!s.fast(question), "{question}");
        }
    }

    /// A signed zone (signatures made up: what is checked is which go where).
    const SIGNED: &str = "\
$TTL 300
$ORIGIN signed.test.
@   SOA ns.signed.test. h.signed.test. 7 3600 600 86400 300
@   RRSIG SOA 13 2 300 20300101000000 20200101000000 1 signed.test. AAAA
@   NS ns
@   RRSIG NS 13 2 300 20300101000000 20200101000000 1 signed.test. AAAB
@   NSEC a.signed.test. SOA NS RRSIG NSEC
@   RRSIG NSEC 13 2 300 20300101000000 20200101000000 1 signed.test. AAAC
a   A 192.0.2.1
a   RRSIG A 13 3 300 20300101000000 20200101000000 1 signed.test. AAAD
a   NSEC ns.signed.test. A RRSIG NSEC
a   RRSIG NSEC 13 3 300 20300101000000 20200101000000 1 signed.test. AAAE
ns  A 192.0.2.53
ns  NSEC signed.test. A NSEC
";

    #[test]
    fn a_signed_zone_answers_with_signatures_and_denials_under_do() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.signed");
        std::fs::write(&path, SIGNED).unwrap();
        let s = Served::new(&format!("signed.test:0 {{\n file {}\n}}", path.display()));
        let types = |text: &str, section: &str| -> Vec<String> {
            let body = match section {
                "answer" => text.split(";; authority").next().unwrap_or(""),
                "authority" => text.split(";; authority").nth(1).unwrap_or(""),
                _ => unreachable!(),
            };
            body.lines()
                .skip(usize::from(section == "answer"))
                .filter(|l| !l.is_empty() && !l.starts_with(";;"))
                .map(|l| {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    format!("{} {}", f[0], f[3])
                })
                .collect()
        };
        // Without DO: no signatures.
        let plain = s.ask("a.signed.test. A");
        assert_eq!(types(&plain, "answer"), ["a.signed.test. A"]);
        assert_eq!(types(&plain, "authority"), ["signed.test. NS"]);
        // With DO: each set with its RRSIG.
        let signed = s.ask_dnssec("a.signed.test. A");
        assert_eq!(
            types(&signed, "answer"),
            ["a.signed.test. A", "a.signed.test. RRSIG"]
        );
        assert_eq!(
            types(&signed, "authority"),
            ["signed.test. NS", "signed.test. RRSIG"]
        );
        // NODATA: the SOA and the name's NSEC, signed.
        let nodata = s.ask_dnssec("a.signed.test. TXT");
        assert_eq!(
            types(&nodata, "authority"),
            [
                "signed.test. SOA",
                "signed.test. RRSIG",
                "a.signed.test. NSEC",
                "a.signed.test. RRSIG"
            ]
        );
        // NXDOMAIN: the NSEC covering the name, and the one covering the wildcard.
        let nx = s.ask_dnssec("b.signed.test. A");
        assert!(nx.starts_with(";; NXDOMAIN aa"), "{nx}");
        assert_eq!(
            types(&nx, "authority"),
            [
                "signed.test. SOA",
                "signed.test. RRSIG",
                "a.signed.test. NSEC",
                "a.signed.test. RRSIG",
                "signed.test. NSEC",
                "signed.test. RRSIG"
            ]
        );
    }

    fn serve(origin: &str, zone: &str, key: &str) -> (tempfile::TempDir, Served) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        std::fs::write(&path, zone).unwrap();
        let corefile = format!("{key}:0 {{\n file {} {origin}\n}}\n", path.display());
        (dir, Served::new(&corefile))
    }

    #[test]
    fn the_root_zone_is_served() {
        let (_dir, s) = serve(
            ".",
            "@ 300 IN SOA a.root. h.root. 1 2 3 4 5\n@ 300 IN NS a.root.\na.root. 300 IN A 192.0.2.1\n",
            ".",
        );
        assert!(s.ask("a.root. A").contains("192.0.2.1"));
        assert!(s.ask(". NS").contains(". 300 IN NS a.root."));
        assert!(s.ask("nope. A").starts_with(";; NXDOMAIN aa"));
        assert!(s.fast("a.root. A"));
    }

    #[test]
    fn a_cname_target_settles_the_answer() {
        let zone = "$ORIGIN example.org.\n@ 300 IN SOA ns h 1 2 3 4 5\n@ 300 IN NS ns\nns 300 IN A 192.0.2.53\n\
                    gone 300 IN CNAME nothere\n\
                    hop 300 IN CNAME foo.dn\n\
                    dn 300 IN DNAME sub.example.org.\n\
                    foo.sub 300 IN A 192.0.2.7\n\
                    self 300 IN DNAME self.example.org.\n";
        let (_dir, s) = serve("example.org", zone, "example.org");
        // A missing target in the zone: NXDOMAIN, with the SOA, as CoreDNS's lookup makes it.
        s.expect(
            "gone.example.org. A",
            ";; NXDOMAIN aa rd
            gone.example.org. 300 IN CNAME nothere.example.org.
            ;; authority
            example.org. 300 IN SOA ns.example.org. h.example.org. 1 2 3 4 5",
        );
        // A target that is itself substituted: followed on.
        let hop = s.ask("hop.example.org. A");
        assert!(
            hop.contains("foo.sub.example.org. 300 IN A 192.0.2.7"),
            "{hop}"
        );
        assert!(hop.starts_with(";; NOERROR aa"), "{hop}");
        // A DNAME that gives the name back: SERVFAIL.
        assert!(s.ask("x.self.example.org. A").starts_with(";; SERVFAIL"));
    }

    #[test]
    fn hostile_signatures_do_not_break_answers() {
        let zone = "$ORIGIN example.org.\n@ 300 IN SOA ns h 1 2 3 4 5\n@ 300 IN NS ns\n\
                    @ 300 IN RRSIG \\# 1 00\n\
                    @ 300 IN RRSIG SOA 13 2 300 20300101000000 20200101000000 1 example.org. AAAA\n\
                    ns 300 IN A 192.0.2.53\n\
                    ns 300 IN RRSIG A 13 3 300 20300101000000 20200101000000 1 example.org. AAAB\n";
        let (_dir, s) = serve("example.org", zone, "example.org");
        let nx = s.ask_dnssec("nope.example.org. A");
        assert!(nx.starts_with(";; NXDOMAIN aa"), "{nx}");
        // The apex NS's glue comes with its signature under DO.
        let ns = s.ask_dnssec("example.org. NS");
        let additional = ns.split(";; additional").nth(1).unwrap_or_default();
        assert!(
            additional.contains("ns.example.org. 300 IN A 192.0.2.53"),
            "{ns}"
        );
        assert!(additional.contains("ns.example.org. 300 IN RRSIG"), "{ns}");
        let plain = s.ask("example.org. NS");
        assert!(!plain.contains("RRSIG"), "{plain}");
    }

    #[test]
    fn a_name_in_none_of_its_zones_is_refused_when_nothing_follows() {
        let zone = "$ORIGIN example.org.\n@ 300 IN SOA ns h 1 2 3 4 5\n@ 300 IN NS ns\nns 300 IN A 192.0.2.53\n";
        let (_dir, last) = serve("example.org", zone, ".");
        assert!(last.ask("ns.example.org. A").contains("192.0.2.53"));
        assert!(last.ask("other.example.com. A").starts_with(";; REFUSED"));
        // With a plugin after it, such a name is that plugin's.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("db"), zone).unwrap();
        let followed = Served::new(&format!(
            ".:0 {{\n file {} example.org\n whoami\n}}\n",
            dir.path().join("db").display()
        ));
        assert!(
            followed
                .ask("other.example.com. A")
                .starts_with(";; NOERROR")
        );
    }

    #[test]
    fn dname_substitutes_the_name() {
        let (_dir, s) = served("");
        let got = s.ask("www.dn.example.org. A");
        let lines: Vec<&str> = got.lines().collect();
        assert_eq!(lines[0], ";; NOERROR aa rd");
        assert!(lines[1].starts_with("dn.example.org. 1800 IN"), "{got}");
        assert_eq!(
            lines[2],
            "www.dn.example.org. 1800 IN CNAME www.example.net."
        );
        assert_eq!(lines[3], "www.example.net. 60 IN A 198.51.100.1");
    }

    #[test]
    fn fallthrough_passes_missing_names_only() {
        let (_dir, s) = served("{\n fallthrough\n }");
        // The next plugin: none here, so SERVFAIL, as CoreDNS answers when no plugin is left.
        assert!(s.ask("nope.example.org. A").starts_with(";; SERVFAIL"));
        assert!(s.ask("under.example.org. A").starts_with(";; SERVFAIL"));
        // NODATA for a name the zone has stays.
        assert!(s.ask("a.example.org. MX").starts_with(";; NOERROR aa"));
    }
}
