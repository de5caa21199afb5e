//! `bufsize`: a query's EDNS(0) UDP payload size is lowered to at most SIZE before anything
//! else sees it, as CoreDNS's `bufsize` does, so answers over UDP stay within it and a query
//! sent upstream asks for no more (RFC 6891 6.2.5; against IP fragmentation). A larger
//! size is never raised to, and a query without an OPT record is left alone.

use super::setup::{Building, Context, Setup, SetupError};
use super::{Asker, Phases, Plugin, Revert};
use crate::corefile::{ConfigError, Directive, directive_err};
use crate::wire;

/// DNS Flag Day 2020's size, CoreDNS's default.
const DEFAULT: u16 = 1232;

/// `bufsize [SIZE]`: SIZE from 512 to 4096.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bufsize {
    size: u16,
}

impl Setup for Bufsize {
    fn parse(d: &Directive, _: &Context<'_>) -> Result<Self, ConfigError> {
        // CoreDNS answers every bad form with caddy's argument error.
        let wrong = || {
            directive_err(
                d,
                "bufsize",
                format!(
                    "Wrong argument count or unexpected line ending after '{}'",
                    d.args.last().map_or("bufsize", String::as_str)
                ),
            )
        };
        if !d.block.is_empty() {
            return Err(wrong());
        }
        let size = match d.args.as_slice() {
            [] => DEFAULT,
            [size] => size
                .parse::<u16>()
                .ok()
                .filter(|s| (512..=4096).contains(s))
                .ok_or_else(wrong)?,
            _ => return Err(wrong()),
        };
        Ok(Self { size })
    }

    fn build(&self, b: &mut Building<'_>) -> Result<(), SetupError> {
        b.chain.push(Plugin::Bufsize(*self));
        Ok(())
    }
}

impl Phases for Bufsize {
    const PREPARES: bool = true;

    /// The OPT record's class field is the payload size: lowered in place when over SIZE.
    fn prepare(&self, query: &mut Vec<u8>, _: &Asker) -> Option<Revert> {
        let opt = wire::last_opt(query)?;
        // Type, class, TTL and data length come before the data: the class is 8 bytes back.
        let class = opt.data.start - 8;
        let payload = u16::from_be_bytes([query[class], query[class + 1]]);
        if payload > self.size {
            query[class..class + 2].copy_from_slice(&self.size.to_be_bytes());
        }
        // The question is not changed: nothing to undo.
        None
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use hickory_proto::op::{Edns, Message, Query};
    use hickory_proto::rr::{Name, RecordType};

    use super::*;
    use crate::answer::Handled;
    use crate::plugin::testing::Served;
    use crate::wire::Transport;

    fn parsed(line: &str) -> Result<Bufsize, String> {
        crate::plugin::testing::settings(line)
    }

    #[test]
    fn reads_coredns_forms_and_refuses_the_rest() {
        for (line, size) in [
            ("bufsize", 1232),
            ("bufsize 512", 512),
            ("bufsize 4096", 4096),
        ] {
            assert_eq!(parsed(line), Ok(Bufsize { size }), "{line}");
        }
        for line in [
            "bufsize 511",
            "bufsize 4097",
            "bufsize big",
            "bufsize 1232 1232",
            "bufsize -1",
            "bufsize {\n1232\n}",
        ] {
            let error = parsed(line).expect_err(line);
            assert!(error.contains("bufsize"), "{line}: {error}");
            assert!(error.contains("Wrong argument count"), "{line}: {error}");
        }
    }

    fn query(name: &str, qtype: RecordType, payload: Option<u16>) -> Vec<u8> {
        let mut msg = Message::new();
        msg.set_id(7).set_recursion_desired(true);
        msg.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
        if let Some(payload) = payload {
            let mut edns = Edns::new();
            edns.set_max_payload(payload);
            msg.set_edns(edns);
        }
        msg.to_vec().unwrap()
    }

    #[test]
    fn lowers_a_larger_payload_and_leaves_a_smaller_one_or_none() {
        let b = Bufsize { size: 1100 };
        let payload = |q: &[u8]| {
            Message::from_vec(q)
                .unwrap()
                .extensions()
                .as_ref()
                .map(|e| e.max_payload())
        };
        for (asked, seen) in [
            (Some(4096), Some(1100)),
            (Some(1101), Some(1100)),
            (Some(1100), Some(1100)),
            (Some(600), Some(600)),
            (None, None),
        ] {
            let mut q = query("example.org.", RecordType::A, asked);
            let before = q.clone();
            b.prepare(&mut q, &Asker::test());
            assert_eq!(payload(&q), seen, "{asked:?}");
            assert_eq!(q.len(), before.len());
            assert_eq!(
                q[..q.len() - 11],
                before[..before.len() - 11.min(before.len())]
            );
        }
        // Nothing to do with a packet that does not parse.
        for mut junk in [
            vec![0u8; 5],
            vec![0; 12],
            vec![0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 9],
        ] {
            let before = junk.clone();
            b.prepare(&mut junk, &Asker::test());
            assert_eq!(junk, before);
        }
    }

    /// Many addresses for one name: a UDP answer of 68 records (over 1100 bytes).
    const COREFILE: &str = "
    .:0 {
        bufsize 512
        hosts {
            HOSTS
            fallthrough
        }
    }";

    fn served() -> Served {
        let hosts: String = (1..=68)
            .map(|i| format!("10.0.0.{i} big.example.\n"))
            .collect();
        Served::new(&COREFILE.replace("HOSTS", &hosts))
    }

    #[test]
    fn answers_within_the_lowered_size_on_both_paths() {
        let served = served();
        let src: SocketAddr = "10.244.0.7:40000".parse().unwrap();
        for (payload, transport, whole) in [
            (Some(4096), Transport::Udp, false),
            (Some(512), Transport::Udp, false),
            (None, Transport::Udp, false),
            (Some(4096), Transport::Tcp, true),
        ] {
            let q = query("big.example.", RecordType::A, payload);
            let mut out = Vec::new();
            let handled = served.handler.handle(&q, src, transport, &mut out);
            assert!(matches!(handled, Handled::Send), "{handled:?}");
            let m = Message::from_vec(&out).unwrap();
            let case = format!("{payload:?} {transport:?}");
            assert_eq!(m.truncated(), !whole, "{case}");
            assert_eq!(m.answers().len() == 68, whole, "{case}");
            if !whole {
                assert!(out.len() <= 512, "{case}: {} bytes", out.len());
            }
            // The question and ID are the client's.
            assert_eq!(m.id(), 7);
            assert_eq!(m.queries()[0].name().to_ascii(), "big.example.");
        }
        // A small answer is not touched.
        served.expect("big.example. TXT", ";; NOERROR aa rd");
    }
}
