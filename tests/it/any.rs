//! The `any` directive on the wire: dig's ANY query, over UDP and TCP, gets RFC 8482's HINFO
//! answer; other types are answered by the rest of the chain.

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use crate::harness::TestServer;

/// `dig` at the test server: its answer section, one record per line.
fn dig(server: &TestServer, args: &[&str]) -> String {
    server.dig(&[&["+noall", "+answer", "+comments"], args].concat())
}

#[test]
fn dig_any_gets_the_rfc_8482_answer_over_udp_and_tcp() {
    let server = TestServer::start(
        "example.org:0 {
        any
        hosts {
            10.0.0.5 registry.example.org
        }
    }",
    );
    for transport in ["+notcp", "+tcp"] {
        let out = dig(&server, &[transport, "Registry.Example.org", "ANY"]);
        let answer: Vec<&str> = out
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with(';'))
            .collect();
        assert_eq!(
            answer
                .iter()
                .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
                .collect::<Vec<_>>(),
            [r#"Registry.Example.org. 8482 IN HINFO "ANY obsoleted" "See RFC 8482""#],
            "{transport}: {out}"
        );
        // NOERROR, and not authoritative: the flags line has qr rd and no aa.
        assert!(out.contains("status: NOERROR"), "{out}");
        let flags = out
            .lines()
            .find(|l| l.contains("flags:"))
            .expect("a flags line");
        assert!(!flags.contains(" aa"), "{flags}");
    }
    // Other types go on to `hosts`.
    let m = server.query("registry.example.org.", RecordType::A);
    assert_eq!(m.response_code(), ResponseCode::NoError);
    assert!(m.authoritative());
    assert_eq!(m.answers()[0].data().to_string(), "10.0.0.5");
}
