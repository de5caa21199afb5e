//! `erratic`: a fixed answer to every query, some of them dropped, delayed or truncated, for
//! testing how clients cope, as CoreDNS's `erratic` answers.
//!
//! `erratic { drop [AMOUNT]; truncate [AMOUNT]; delay [AMOUNT [DURATION]] }`. A is answered
//! `192.0.2.53`, AAAA `2001:db8::53` (TTL 0, authoritative), every other type SERVFAIL. Queries
//! are counted from 0: one whose number is a multiple of the drop AMOUNT (2 by default, when
//! neither `delay` nor `truncate` is given) gets no answer; one whose number is a multiple of
//! the delay AMOUNT (2) is answered after DURATION (100ms); one whose number ANDed with the
//! truncate AMOUNT (2) is 0 has TC set — CoreDNS tests the bits rather than divides, and so does
//! this. Unlike CoreDNS, AXFR is refused (zone transfers are refused before any plugin).

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{RData, Record, RecordType};

use super::setup::{Building, Context, Setup, SetupError};
use super::{Fast, Hold, Outcome, Phases, Plugin, Reply, Request};
use crate::corefile::{ConfigError, Directive, arg_count_err, directive_err, parse_duration};
use crate::wire::{LightQuery, Owner};

const NAME: &str = "erratic";

/// The `erratic` directive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErraticConfig {
    pub drop: u64,
    pub truncate: u64,
    pub delay: u64,
    pub duration: Duration,
}

impl Setup for ErraticConfig {
    fn parse(d: &Directive, _: &Context<'_>) -> Result<Self, ConfigError> {
        let mut c = Self {
            drop: 2,
            truncate: 0,
            delay: 0,
            duration: Duration::ZERO,
        };
        let mut dropped = false;
        for o in &d.block {
            let amount = |v: &String| -> Result<u64, ConfigError> {
                let n: i32 = v.parse().map_err(|_| {
                    directive_err(
                        o,
                        NAME,
                        format!("strconv.ParseInt: parsing {v:?}: invalid syntax"),
                    )
                })?;
                u64::try_from(n).map_err(|_| {
                    directive_err(o, NAME, format!("illegal amount value given {v:?}"))
                })
            };
            match o.name.as_str() {
                "drop" => match o.args.as_slice() {
                    [] => {}
                    [v] => {
                        c.drop = amount(v)?;
                        dropped = true;
                    }
                    _ => return Err(arg_count_err(o, NAME)),
                },
                "delay" => {
                    if o.args.len() > 2 {
                        return Err(arg_count_err(o, NAME));
                    }
                    c.delay = 2;
                    c.duration = Duration::from_millis(100);
                    if let Some(v) = o.args.first() {
                        c.delay = amount(v)?;
                    }
                    if let Some(v) = o.args.get(1) {
                        c.duration = parse_duration(v).map_err(|e| directive_err(o, NAME, e))?;
                    }
                }
                "truncate" => match o.args.as_slice() {
                    [] => c.truncate = 2,
                    [v] => c.truncate = amount(v)?,
                    _ => return Err(arg_count_err(o, NAME)),
                },
                // CoreDNS's undocumented `large` (30 copies of the A record) is taken as it is.
                "large" => {}
                other => {
                    return Err(directive_err(
                        o,
                        NAME,
                        format!("unknown property '{other}'"),
                    ));
                }
            }
        }
        if (c.delay > 0 || c.truncate > 0) && !dropped {
            c.drop = 0;
        }
        Ok(c)
    }

    fn build(&self, b: &mut Building<'_>) -> Result<(), SetupError> {
        b.chain.push(Plugin::Erratic(Arc::new(Erratic {
            config: *self,
            count: AtomicU64::new(0),
        })));
        Ok(())
    }
}

/// The plugin as it answers.
#[derive(Debug)]
pub struct Erratic {
    config: ErraticConfig,
    count: AtomicU64,
}

impl Phases for Erratic {
    const ANSWERS: bool = true;

    fn serve(&self, req: &Request) -> Outcome {
        let n = self.count.fetch_add(1, Ordering::Relaxed);
        let c = &self.config;
        let drop = c.drop > 0 && n.is_multiple_of(c.drop);
        let delay = c.delay > 0 && n.is_multiple_of(c.delay);
        let truncate = c.truncate > 0 && n & c.truncate == 0;
        let data = match req.qtype {
            RecordType::A => Some(RData::A(A(Ipv4Addr::new(192, 0, 2, 53)))),
            RecordType::AAAA => Some(RData::AAAA(AAAA(Ipv6Addr::new(
                0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x53,
            )))),
            _ => None,
        };
        let mut reply = match data {
            Some(data) => {
                let mut reply = Reply::authoritative(ResponseCode::NoError);
                let record = Record::from_rdata(req.name.clone(), 0, data);
                reply.answers.push_record(Owner::Question, &record);
                reply
            }
            // Other types: SERVFAIL, written by the server (no AA, no truncation).
            None => {
                let mut reply = Reply::authoritative(ResponseCode::ServFail);
                reply.authoritative = false;
                reply
            }
        };
        let hold = Hold {
            drop,
            delay: (delay && !drop).then_some(c.duration),
            // Only the answers it writes itself: a SERVFAIL is the server's.
            truncated: truncate && reply.rcode == ResponseCode::NoError,
        };
        reply.hold = (hold != Hold::default()).then(|| Box::new(hold));
        Outcome::Reply(reply)
    }

    /// Every answer is counted and may be held: the full way.
    fn serve_fast(&self, _: &LightQuery, _: &mut Vec<u8>) -> Fast {
        Fast::Slow
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use hickory_proto::op::{Message, Query};
    use hickory_proto::rr::Name;

    use super::*;
    use crate::answer::Handled;
    use crate::plugin::testing::{Served, rendered, settings};
    use crate::wire::Transport;

    /// Each query in turn, answered once (the counter moves with every query).
    fn answers(served: &Served, qtype: RecordType, count: usize) -> Vec<String> {
        let src: SocketAddr = "10.244.0.7:40000".parse().unwrap();
        (0..count)
            .map(|_| {
                let mut m = Message::new();
                m.set_id(9);
                m.add_query(Query::query(Name::from_ascii("e.example.").unwrap(), qtype));
                let mut out = Vec::new();
                match served
                    .handler
                    .handle(&m.to_vec().unwrap(), src, Transport::Udp, &mut out)
                {
                    Handled::Send => rendered(&out),
                    Handled::Drop => "dropped".into(),
                    Handled::Later(d) => format!("after {d:?}: {}", rendered(&out)),
                    other => panic!("{other:?}"),
                }
            })
            .collect()
    }

    #[test]
    fn drops_delays_and_truncates_as_coredns_counts() {
        let a = ";; NOERROR aa\ne.example. 0 IN A 192.0.2.53";
        let s = Served::new(".:0 {\n erratic\n}");
        assert_eq!(answers(&s, RecordType::A, 4), ["dropped", a, "dropped", a]);
        let s = Served::new(".:0 {\n erratic {\n  drop 3\n }\n}");
        assert_eq!(answers(&s, RecordType::A, 4), ["dropped", a, a, "dropped"]);
        let s = Served::new(".:0 {\n erratic {\n  delay 2 50ms\n }\n}");
        assert_eq!(
            answers(&s, RecordType::AAAA, 2),
            [
                "after 50ms: ;; NOERROR aa\ne.example. 0 IN AAAA 2001:db8::53".to_string(),
                ";; NOERROR aa\ne.example. 0 IN AAAA 2001:db8::53".to_string(),
            ]
        );
        // `truncate 2` tests the bits: queries 0 and 1 get TC, 2 and 3 not.
        let s = Served::new(".:0 {\n erratic {\n  truncate\n }\n}");
        let tc = ";; NOERROR aa tc\ne.example. 0 IN A 192.0.2.53";
        assert_eq!(answers(&s, RecordType::A, 4), [tc, tc, a, a]);
        // Other types: SERVFAIL.
        let s = Served::new(".:0 {\n erratic {\n  drop 0\n }\n}");
        assert_eq!(answers(&s, RecordType::MX, 1), [";; SERVFAIL"]);
    }

    #[test]
    fn reads_the_directive_as_coredns_does() {
        let c: ErraticConfig = settings("erratic").unwrap();
        assert_eq!((c.drop, c.delay, c.truncate), (2, 0, 0));
        let c: ErraticConfig = settings("erratic {\n delay 3 5ms\n truncate 5\n}").unwrap();
        assert_eq!((c.drop, c.delay, c.truncate), (0, 3, 5));
        assert_eq!(c.duration, Duration::from_millis(5));
        for (lines, why) in [
            (
                "erratic {\n drop -1\n}",
                "illegal amount value given \"-1\"",
            ),
            ("erratic {\n drop x\n}", "invalid syntax"),
            ("erratic {\n delay 1 2 3\n}", "Wrong argument count"),
            ("erratic {\n delay 1 soon\n}", "soon"),
            ("erratic {\n jitter\n}", "unknown property 'jitter'"),
        ] {
            let e = settings::<ErraticConfig>(lines).unwrap_err();
            assert!(e.contains(why) && e.contains("erratic"), "{lines}: {e}");
        }
    }
}
