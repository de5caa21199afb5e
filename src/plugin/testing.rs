//! A sans-IO check for plugin authors: a Corefile, a query, and the expected answer written as
//! zone text, answered through [`Handler`] with no socket (both the fast path, when it
//! answers, and the full parse, which must agree byte for byte).
//!
//! ```text
//! let served = Served::new(".:0 { hosts { 10.0.0.5 registry.local } }");
//! served.expect("registry.local. A", ";; NOERROR aa rd
//!     registry.local. 3600 IN A 10.0.0.5");
//! ```
//!
//! The text is a first line `;; RCODE FLAGS` (flags among aa, tc, rd, ra, in that order), the
//! answer records one per line as `NAME TTL CLASS TYPE DATA`, then `;; authority` and
//! `;; additional` with theirs when they have any. A query the block sends upstream reads
//! `;; forwarded`, one it drops `;; dropped`.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use hickory_proto::op::{Edns, Message, Query};
use hickory_proto::rr::{Name, Record, RecordType};

use crate::answer::{Handled, Handler};
use crate::wire::Transport;

/// Where the test cluster's manifests are: `DATA` in a Corefile stands for them.
/// The settings `T` that the one block `.:0 { LINES }` reads into, or why it does not read:
/// how a plugin's tests check its setup.
pub fn settings<T: crate::plugin::setup::Setup + Clone>(lines: &str) -> Result<T, String> {
    let text = format!(".:0 {{\n{lines}\n}}\n");
    let config =
        crate::config::Config::from_text(&text, 0, Path::new(".")).map_err(|e| e.to_string())?;
    Ok(config.servers[0]
        .get::<T>()
        .expect("the block has the directive")
        .clone())
}

pub const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/cluster.yaml");

/// A Corefile's first port, served without sockets.
pub struct Served {
    pub handler: Arc<Handler>,
}

impl Served {
    /// Loads `corefile` (`DATA` stands for the test cluster) as the server would, sources
    /// included; panics with the configuration error if it does not load.
    pub fn new(corefile: &str) -> Self {
        let text = corefile.replace("DATA", DATA);
        let config = crate::config::Config::from_text(&text, 0, Path::new("."))
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        let assembly = crate::assemble(&config).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let listeners = crate::server::bind(assembly.blocks, 1).expect("binds");
        Self {
            handler: Arc::clone(&listeners[0].handler),
        }
    }

    /// `question` (`NAME TYPE`) asked over UDP with EDNS from a pod's address, the answer as
    /// zone text (see the module's documentation).
    pub fn ask(&self, question: &str) -> String {
        self.ask_query(question, query(question, false))
    }

    /// [`Self::ask`] with the DO bit set.
    pub fn ask_dnssec(&self, question: &str) -> String {
        self.ask_query(question, query(question, true))
    }

    fn ask_query(&self, question: &str, query: Vec<u8>) -> String {
        let src: SocketAddr = "10.244.0.7:40000".parse().expect("an address");
        let mut out = Vec::new();
        let handled = self.handler.handle(&query, src, Transport::Udp, &mut out);
        // The full parse of the query as the prepare phase leaves it, as `handle` answers it.
        let prepared = self.handler.prepared(
            &query,
            &crate::plugin::Asker {
                src,
                transport: Transport::Udp,
            },
        );
        let asked = prepared
            .as_ref()
            .map_or(query.as_slice(), |p| p.query.as_slice());
        let restore = prepared.as_ref().and_then(|p| p.restore.as_ref());
        let mut full = Vec::new();
        let by_full = self.handler.handle_full(
            asked,
            src,
            Transport::Udp,
            &mut full,
            Instant::now(),
            restore,
        );
        match (handled, by_full) {
            (Handled::Send, Handled::Send) => {
                assert_eq!(
                    rendered(&out),
                    rendered(&full),
                    "{question}: the fast path and the full parse differ"
                );
                rendered(&out)
            }
            (Handled::Forward(_), Handled::Forward(_)) => ";; forwarded".to_string(),
            (Handled::Drop, Handled::Drop) => ";; dropped".to_string(),
            (Handled::Later(delay), Handled::Later(_)) => {
                format!(";; after {delay:?}\n{}", rendered(&out))
            }
            (a, b) => panic!("{question}: handled {a:?}, the full parse {b:?}"),
        }
    }

    /// Whether the fast path answers `question` by itself.
    pub fn fast(&self, question: &str) -> bool {
        let query = query(question, false);
        let src: SocketAddr = "10.244.0.7:40000".parse().expect("an address");
        let mut out = Vec::new();
        let prepared = self.handler.prepared(
            &query,
            &crate::plugin::Asker {
                src,
                transport: Transport::Udp,
            },
        );
        if prepared.as_ref().is_some_and(|p| p.restore.is_some()) {
            return false;
        }
        let query = prepared
            .as_ref()
            .map_or(query.as_slice(), |p| p.query.as_slice());
        crate::wire::parse_light(query).is_some_and(|light| {
            self.handler
                .handle_fast(query, &light, src, Transport::Udp, &mut out, Instant::now())
                .is_some()
        })
    }

    /// [`Self::ask`] with each SOA's serial (the time of a change, or the current time) written
    /// as `SERIAL`.
    pub fn ask_unserialed(&self, question: &str) -> String {
        let serial = regex::Regex::new(r"(SOA \S+ \S+) \d+ ").expect("a regex");
        serial
            .replace_all(&self.ask(question), "$1 SERIAL ")
            .into_owned()
    }

    /// [`Self::expect`] over [`Self::ask_unserialed`].
    pub fn expect_unserialed(&self, question: &str, expected: &str) {
        let want: Vec<&str> = expected
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        let got = self.ask_unserialed(question);
        assert_eq!(got.lines().collect::<Vec<_>>(), want, "{question}");
    }

    /// Asserts that `question` is answered as `expected` (lines compared trimmed).
    pub fn expect(&self, question: &str, expected: &str) {
        let want: Vec<&str> = expected
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        let got = self.ask(question);
        let got: Vec<&str> = got.lines().collect();
        assert_eq!(got, want, "{question}");
    }
}

/// `question` (`NAME TYPE`) as a query with RD and EDNS (1232 bytes), and DO when `dnssec`.
fn query(question: &str, dnssec: bool) -> Vec<u8> {
    let (name, qtype) = question
        .rsplit_once(' ')
        .unwrap_or_else(|| panic!("`NAME TYPE`: {question}"));
    let name = Name::from_ascii(name).expect("a name");
    let qtype: RecordType = qtype.parse().expect("a type");
    let mut msg = Message::new();
    msg.set_id(0x1234).set_recursion_desired(true);
    msg.add_query(Query::query(name, qtype));
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    edns.set_dnssec_ok(dnssec);
    msg.set_edns(edns);
    msg.to_vec().expect("encodes")
}

/// A response as zone text.
/// `reply`, a plugin's answer to `name` `qtype`, in a message as the handler makes one
/// (AA set), as [`rendered`] writes it.
pub fn reply_text(
    name: &hickory_proto::rr::Name,
    qtype: RecordType,
    reply: &crate::plugin::Reply,
) -> String {
    let mut message = vec![0, 0, 0x84, u16::from(reply.rcode) as u8, 0, 1];
    for section in [&reply.answers, &reply.authority, &reply.additional] {
        message.extend_from_slice(&section.count.to_be_bytes());
    }
    message.extend(crate::wire::name_bytes(name));
    message.extend_from_slice(&u16::from(qtype).to_be_bytes());
    message.extend_from_slice(&[0, 1]);
    for section in [&reply.answers, &reply.authority, &reply.additional] {
        message.extend_from_slice(&section.bytes);
    }
    rendered(&message)
}

pub fn rendered(response: &[u8]) -> String {
    let msg = Message::from_vec(response).expect("the response parses");
    let mut flags = vec![crate::metrics::rcode_name(u16::from(msg.response_code())).to_string()];
    for (on, flag) in [
        (msg.authoritative(), "aa"),
        (msg.truncated(), "tc"),
        (msg.recursion_desired(), "rd"),
        (msg.recursion_available(), "ra"),
    ] {
        if on {
            flags.push(flag.to_string());
        }
    }
    let mut lines = vec![format!(";; {}", flags.join(" "))];
    let record = |r: &Record| {
        format!(
            "{} {} {} {} {}",
            r.name(),
            r.ttl(),
            r.dns_class(),
            r.record_type(),
            r.data()
        )
    };
    lines.extend(msg.answers().iter().map(record));
    for (title, records) in [
        ("authority", msg.name_servers()),
        ("additional", msg.additionals()),
    ] {
        if !records.is_empty() {
            lines.push(format!(";; {title}"));
            lines.extend(records.iter().map(record));
        }
    }
    lines.join("\n")
}
