//! The `rewrite` directive on the wire: dig asks one name, the upstream is asked the rewritten
//! one, and dig gets its own question back with the answer's names turned back, fresh from the
//! upstream and from the cache alike.

use std::net::Ipv4Addr;
use std::process::Command;

use hickory_proto::op::{Message, MessageType};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record};

use crate::harness::TestServer;
use crate::upstream::Fake;

fn dig(server: &TestServer, name: &str) -> String {
    let out = Command::new("dig")
        .arg(format!("@{}", server.addr.ip()))
        .args(["-p", &server.addr.port().to_string()])
        .args([
            "+noall",
            "+question",
            "+answer",
            "+comments",
            "+tries=1",
            "+time=3",
        ])
        .args([name, "A"])
        .output()
        .expect("dig runs (bind9-dnsutils)");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).expect("dig writes text")
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
            let mut m = Message::new();
            m.set_id(query.id())
                .set_message_type(MessageType::Response)
                .set_recursion_desired(true)
                .set_recursion_available(true);
            m.add_queries(query.queries().to_vec());
            m.add_answer(Record::from_rdata(
                name,
                300,
                RData::A(A(Ipv4Addr::new(192, 0, 2, 7))),
            ));
            vec![m.to_vec().unwrap()]
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
