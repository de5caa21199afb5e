//! `erratic` on the wire: dropped queries get nothing, delayed ones arrive late over UDP and
//! TCP (without holding up the answers behind them on the connection).

use std::time::{Duration, Instant};

use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;

use crate::harness::{TestServer, query_bytes, tcp, udp_wait};

#[test]
fn dropped_queries_get_nothing_and_delayed_ones_come_late() {
    let q = query_bytes("e.example.", RecordType::A, None);
    let drop = TestServer::start(".:0 {\n erratic\n}\n");
    assert!(udp_wait(drop.addr, &q, Duration::from_millis(500)).is_none());
    let answer = udp_wait(drop.addr, &q, Duration::from_secs(2)).expect("the second is answered");
    assert_eq!(Message::from_vec(&answer).unwrap().answers().len(), 1);

    let delay = TestServer::start(".:0 {\n erratic {\n  delay 2 400ms\n }\n}\n");
    let started = Instant::now();
    assert!(udp_wait(delay.addr, &q, Duration::from_secs(2)).is_some());
    assert!(
        started.elapsed() >= Duration::from_millis(350),
        "{:?}",
        started.elapsed()
    );
    let started = Instant::now();
    assert!(udp_wait(delay.addr, &q, Duration::from_secs(2)).is_some());
    assert!(
        started.elapsed() < Duration::from_millis(350),
        "{:?}",
        started.elapsed()
    );
    // Over TCP both are answered, the delayed one from a task of its own.
    let answers = tcp(delay.addr, &[q.clone(), q.clone()]);
    assert_eq!(answers.len(), 2);
}
