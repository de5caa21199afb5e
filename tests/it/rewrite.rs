//! The `rewrite` directive on the wire: dig asks one name, the upstream is asked the rewritten
//! one, and dig gets its own question back with the answer's names turned back, fresh from the
//! upstream and from the cache alike.

use std::net::Ipv4Addr;

use hickory_proto::op::Message;
use hickory_proto::rr::rdata::opt::EdnsOption;

use crate::harness::TestServer;
use crate::upstream::Fake;

fn dig(server: &TestServer, name: &str) -> String {
    server.dig(&["+noall", "+question", "+answer", "+comments", name, "A"])
}

/// The fake upstream's answer to `query`: 192.0.2.7 for the name asked, TTL 300.
fn answer(query: &Message) -> Vec<u8> {
    crate::upstream::answer(query, Some((Ipv4Addr::new(192, 0, 2, 7), 300)))
}

fn collapsed(out: &str, prefix: &str) -> Vec<String> {
    out.lines()
        .filter(|l| !l.is_empty() && (prefix.is_empty() || l.starts_with(prefix)))
        .filter(|l| prefix.starts_with(';') || !l.starts_with(';'))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

#[test]
fn dig_gets_its_own_name_back_while_the_upstream_is_asked_the_rewritten_one() {
    let (asked_tx, asked) = std::sync::mpsc::channel();
    let (fake, _) = Fake::start(
        move |query| {
            let name = query.queries()[0].name().clone();
            let _ = asked_tx.send(name.to_ascii());
            vec![answer(query)]
        },
        |_| None,
    );
    let server = TestServer::start(&format!(
        r".:0 {{
        rewrite stop {{
            name regex (.*)\.example\.com {{1}}.upstream.test
            answer name (.*)\.upstream\.test {{1}}.example.com
        }}
        cache 30
        forward . {}
    }}",
        fake.addr
    ));
    for round in ["fresh", "cached"] {
        let out = dig(&server, "Www.Example.com");
        assert!(out.contains("status: NOERROR"), "{round}: {out}");
        assert_eq!(
            collapsed(&out, ";Www"),
            [";Www.Example.com. IN A"],
            "{round}: the question as dig asked it\n{out}"
        );
        let answers = collapsed(&out, "");
        assert_eq!(answers.len(), 1, "{round}: {out}");
        assert!(
            answers[0].starts_with("www.example.com. ") && answers[0].ends_with(" IN A 192.0.2.7"),
            "{round}: {out}"
        );
    }
    // The upstream saw the rewritten name, once: the second answer came from the cache.
    let seen: Vec<String> = asked.try_iter().collect();
    assert_eq!(seen, ["www.upstream.test."]);
}

/// `ttl` and `rcode` rules on what Knot answers, fresh and from the cache: TTLs into the
/// range, an NXDOMAIN made NOERROR for one name only.
#[test]
fn dig_gets_ttls_and_rcodes_as_the_rules_say_from_upstream_and_the_cache() {
    let knot = crate::upstream::Knot::start();
    let server = TestServer::start(&format!(
        ".:0 {{
        rewrite continue ttl suffix example.test 10-20
        rewrite rcode exact gone.example.test NXDOMAIN NOERROR
        forward . {}
        cache
    }}",
        knot.addr
    ));
    for _ in 0..2 {
        let out = server.dig(&["+noall", "+answer", "www.example.test", "A"]);
        let fields: Vec<&str> = out.split_whitespace().collect();
        assert_eq!(fields[0], "www.example.test.", "{out}");
        assert_eq!(fields[1], "20", "Knot's 300, capped: {out}");
        assert_eq!(fields[4], "192.0.2.1", "{out}");
        let out = server.dig(&[
            "+noall",
            "+comments",
            "+authority",
            "gone.example.test",
            "A",
        ]);
        assert!(out.contains("status: NOERROR"), "{out}");
        let soa: Vec<&str> = out
            .lines()
            .find(|l| l.contains("SOA"))
            .unwrap_or_else(|| panic!("{out}"))
            .split_whitespace()
            .collect();
        let ttl: u32 = soa[1].parse().unwrap();
        assert!((10..=20).contains(&ttl), "{out}");
        let out = server.dig(&["+noall", "+comments", "other.example.test", "A"]);
        assert!(out.contains("status: NXDOMAIN"), "{out}");
    }
}

/// `edns0` rules: the upstream sees the options the rules put into the query (a local option
/// with fixed data and one with the client's address, the client's subnet), and dig's own
/// NSID option removed; dig's answer is untouched.
#[test]
fn the_upstream_sees_the_edns0_options_the_rules_set() {
    let (seen_tx, seen) = std::sync::mpsc::channel();
    let (fake, _) = Fake::start(
        move |query| {
            let options: Vec<(u16, Vec<u8>)> = query
                .extensions()
                .as_ref()
                .map(|e| {
                    e.options()
                        .as_ref()
                        .iter()
                        .map(|(code, option)| match option {
                            EdnsOption::Subnet(subnet) => (
                                u16::from(*code),
                                format!("{}/{}", subnet.addr(), subnet.source_prefix())
                                    .into_bytes(),
                            ),
                            EdnsOption::Unknown(code, data) => (*code, data.clone()),
                            other => (u16::from(*code), format!("{other:?}").into_bytes()),
                        })
                        .collect()
                })
                .unwrap_or_default();
            let _ = seen_tx.send(options);
            vec![answer(query)]
        },
        |_| None,
    );
    let server = TestServer::start(&format!(
        r".:0 {{
        rewrite continue edns0 local set 0xffee 0x61626364
        rewrite continue edns0 local append 65002 {{client_ip}}
        rewrite continue edns0 subnet set 24 56
        rewrite edns0 nsid unset
        forward . {}
    }}",
        fake.addr
    ));
    let out = server.dig(&["+nsid", "+noall", "+answer", "www.example.org", "A"]);
    assert!(out.contains("IN\tA\t192.0.2.7"), "{out}");
    let options = seen
        .recv_timeout(std::time::Duration::from_secs(3))
        .expect("the upstream was asked");
    assert!(
        options.iter().all(|(code, _)| *code != 3),
        "NSID removed: {options:?}"
    );
    assert!(options.contains(&(0xffee, b"abcd".to_vec())), "{options:?}");
    assert!(
        options.contains(&(65002, vec![127, 0, 0, 1])),
        "{options:?}"
    );
    // The client's /24 (hickory reads the option's family, prefix and address bytes).
    assert!(
        options.contains(&(8, b"127.0.0.0/24".to_vec())),
        "{options:?}"
    );
}

/// `cname`: a CNAME target of the upstream's answer is renamed and the new target asked —
/// of `hosts` here when it holds it, of the upstream otherwise — its records following the
/// CNAME, fresh and from the cache alike; dig sees CoreDNS's answer.
#[test]
fn dig_gets_a_renamed_cname_target_with_its_records() {
    let knot = crate::upstream::Knot::start();
    let server = TestServer::start(&format!(
        ".:0 {{
        rewrite cname exact www.example.test. www6.example.test.
        hosts {{
            10.9.9.9 www6.example.test
            fallthrough
        }}
        forward . {}
        cache
    }}",
        knot.addr
    ));
    for _ in 0..2 {
        // Knot: alias CNAME www, www A 192.0.2.1. The target becomes www6: hosts has its A.
        let out = server.dig(&["+noall", "+answer", "alias.example.test", "A"]);
        assert_eq!(
            collapsed(&out, ""),
            [
                "alias.example.test. 300 IN CNAME www6.example.test.",
                "www6.example.test. 3600 IN A 10.9.9.9"
            ],
            "{out}"
        );
        // AAAA: hosts has no AAAA for it (NODATA, nothing added)...
        let out = server.dig(&["+noall", "+answer", "alias.example.test", "AAAA"]);
        let lines = collapsed(&out, "");
        assert_eq!(lines.len(), 1, "{out}");
        assert!(lines[0].starts_with("alias.example.test."), "{out}");
        assert!(lines[0].ends_with("CNAME www6.example.test."), "{out}");
    }
    // ...and without hosts the upstream is asked for the new target.
    let server = TestServer::start(&format!(
        ".:0 {{
        rewrite cname suffix www.example.test. www6.example.test.
        forward . {}
    }}",
        knot.addr
    ));
    let out = server.dig(&["+noall", "+answer", "alias.example.test", "AAAA"]);
    assert_eq!(
        collapsed(&out, ""),
        [
            "alias.example.test. 300 IN CNAME www6.example.test.",
            "www6.example.test. 300 IN AAAA 2001:db8::1"
        ],
        "{out}"
    );
    // A target no rule renames: the answer as it came.
    let out = server.dig(&["+noall", "+answer", "www.example.test", "A"]);
    assert_eq!(
        collapsed(&out, ""),
        ["www.example.test. 300 IN A 192.0.2.1"],
        "{out}"
    );
}

/// A rewritten question is answered by the block that rewrote it, not routed again by its new
/// name (CoreDNS's chain goes on in the same block), and a view sees the question as asked.
#[test]
fn a_rewritten_question_stays_with_the_block_that_rewrote_it() {
    let server = TestServer::start(
        ".:0 {
        rewrite name a.example. b.other.
        hosts {
            10.0.0.1 b.other
        }
    }
    other:0 {
        hosts {
            10.0.0.2 b.other
        }
    }",
    );
    let out = server.dig(&["+noall", "+answer", "a.example", "A"]);
    assert_eq!(
        collapsed(&out, ""),
        ["a.example. 3600 IN A 10.0.0.1"],
        "{out}"
    );
    let out = server.dig(&["+noall", "+answer", "b.other", "A"]);
    assert_eq!(
        collapsed(&out, ""),
        ["b.other. 3600 IN A 10.0.0.2"],
        "{out}"
    );
}
