//! The `bufsize` directive on the wire: dig asking for 4096 bytes gets no more than the
//! configured size over UDP (TC, then the whole answer over TCP), and a forwarded query asks
//! the upstream for no more either.

use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;

use crate::harness::{TestServer, query_bytes, udp};
use crate::upstream::Fake;

/// A name with 68 addresses: about 1,130 bytes over UDP.
fn big_hosts() -> String {
    (1..=68)
        .map(|i| format!("   10.0.0.{i} big.example\n"))
        .collect()
}

/// dig over UDP only (`+ignore`: no retry over TCP when truncated), asking for 4096 bytes.
fn dig_udp(server: &TestServer) -> String {
    server.dig(&["+notcp", "+ignore", "+bufsize=4096", "big.example", "A"])
}

/// dig's `;; MSG SIZE  rcvd: N`.
fn received(out: &str) -> usize {
    out.lines()
        .find_map(|l| l.strip_prefix(";; MSG SIZE  rcvd: "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no size in {out}"))
}

#[test]
fn dig_gets_no_more_than_bufsize_over_udp_and_everything_over_tcp() {
    let corefile = |bufsize: &str| {
        format!(
            "example:0 {{\n {bufsize}\n hosts {{\n{}  fallthrough\n }}\n}}\n",
            big_hosts()
        )
    };
    let limited = TestServer::start(&corefile("bufsize 512"));
    let out = dig_udp(&limited);
    let flags = out.lines().find(|l| l.contains("flags:")).expect("flags");
    assert!(flags.contains(" tc"), "{out}");
    assert!(received(&out) <= 512, "{out}");
    // Over TCP the size does not apply.
    let m = limited.query_tcp("big.example.", RecordType::A);
    assert!(!m.truncated());
    assert_eq!(m.answers().len(), 68);

    // The default, 1232, still holds this answer whole; without bufsize it is whole too.
    for corefile in [corefile("bufsize"), corefile("")] {
        let server = TestServer::start(&corefile);
        let out = dig_udp(&server);
        let flags = out.lines().find(|l| l.contains("flags:")).expect("flags");
        assert!(!flags.contains(" tc"), "{corefile}: {out}");
        assert!(received(&out) > 1000, "{out}");
    }
}

#[test]
fn a_forwarded_query_asks_the_upstream_for_no_more_than_bufsize() {
    let (sizes_tx, sizes) = std::sync::mpsc::channel();
    let (fake, _) = Fake::start(
        move |query| {
            let _ = sizes_tx.send(query.extensions().as_ref().map(|e| e.max_payload()));
            vec![crate::upstream::answer(query, None)]
        },
        |_| None,
    );
    let server = TestServer::start(&format!(
        ".:0 {{\n bufsize 1100\n forward . {}\n}}\n",
        fake.addr
    ));
    for (asked, seen) in [(4096, 1100), (1232, 1100), (800, 800)] {
        let name = format!("n{asked}.example.test.");
        let reply =
            udp(server.addr, &query_bytes(&name, RecordType::A, Some(asked))).expect("an answer");
        let m = Message::from_vec(&reply).unwrap();
        assert_eq!(m.queries()[0].name().to_ascii(), name);
        let got = sizes
            .recv_timeout(std::time::Duration::from_secs(2))
            .expect("the upstream was asked");
        assert_eq!(got, Some(seen), "the client asked for {asked}");
    }
    // Without an OPT record, none is added.
    let reply = udp(
        server.addr,
        &query_bytes("plain.example.test.", RecordType::A, None),
    );
    assert!(reply.is_some());
    let got = sizes.recv_timeout(std::time::Duration::from_secs(2));
    assert_eq!(got, Ok(None));
}
