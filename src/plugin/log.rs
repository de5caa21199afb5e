//! The `log` and `errors` plugins: they see each query's response once it is made, whatever
//! path made it, and write CoreDNS's lines.
//!
//! `log [NAMES...] [FORMAT] { class CLASSES... }`, as CoreDNS's: each `log` line adds a rule
//! per name (`.` when none is given); a query is logged by the first rule whose name holds the
//! question's, when the response's class (`success`, `denial`, `error`; `all` by default) is
//! one the rule takes. FORMAT is CoreDNS's placeholders (`{common}` by default).

use std::borrow::Cow;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{DNSClass, LowerName, Name, RecordType};
use regex::Regex;
use tokio::sync::Notify;
use tracing::{debug, error, info, warn};

use super::setup::{Building, Context, Setup, SetupError};
use super::{Phases, Plugin, Seen};
use crate::corefile::{ConfigError, Directive, directive_err, parse_duration};
use crate::wire::{self, Header, Transport};

/// CoreDNS's Common Log Format.
const COMMON: &str = r#"{remote}:{port} - {>id} "{type} {class} {name} {proto} {size} {>do} {>bufsize}" {rcode} {>rflags} {rsize} {duration}"#;

/// `log`: its rules, in the order the block's `log` lines give them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Log {
    rules: Vec<Rule>,
}

impl Default for Log {
    fn default() -> Self {
        Self {
            rules: vec![Rule::new(Some(LowerName::from(Name::root())), COMMON)],
        }
    }
}

/// Which queries one rule logs, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    /// Names at or under it; `None` for a scope that is no name, which holds none.
    scope: Option<LowerName>,
    format: Vec<Part>,
    /// Bits of [`Class`]; all of them unless `class` says otherwise.
    classes: u8,
}

impl Rule {
    fn new(scope: Option<LowerName>, format: &str) -> Self {
        Self {
            scope,
            format: parse_format(format),
            classes: ALL,
        }
    }
}

/// A response's class, as CoreDNS's `response.Classify` tells them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Success = 1,
    Denial = 2,
    Error = 4,
}

const ALL: u8 = Class::Success as u8 | Class::Denial as u8 | Class::Error as u8;

/// A response's type, as CoreDNS's `response.Typify` names them (`{/log/type}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Type {
    NoError,
    NameError,
    ServerError,
    NoData,
    Delegation,
    Meta,
    Update,
    OtherError,
}

impl Type {
    fn name(self) -> &'static str {
        match self {
            Self::NoError => "NOERROR",
            Self::NameError => "NXDOMAIN",
            Self::ServerError => "SERVERERROR",
            Self::NoData => "NODATA",
            Self::Delegation => "DELEGATION",
            Self::Meta => "META",
            Self::Update => "UPDATE",
            Self::OtherError => "OTHERERROR",
        }
    }

    fn class(self) -> Class {
        match self {
            Self::NoError | Self::Delegation => Class::Success,
            Self::NameError | Self::NoData => Class::Denial,
            _ => Class::Error,
        }
    }
}

/// One piece of a format: text as written, or a placeholder.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Type,
    Name,
    QClass,
    Proto,
    Size,
    Remote,
    Port,
    Local,
    Id,
    Opcode,
    Do,
    Bufsize,
    Rcode,
    Rsize,
    Duration,
    Rflags,
    /// `{/LABEL}`: `log/class` and `log/type` are `log`'s own; any other is the block's
    /// metadata ([`crate::plugin::metadata`]), `-` when it has none.
    Metadata(String),
}

/// Splits a format as CoreDNS's replacer does: from each `}` back to the nearest `{`; a known
/// placeholder or a `{/metadata}` label is a part of its own, anything else stays text.
fn parse_format(format: &str) -> Vec<Part> {
    let format = format
        .replace("{common}", COMMON)
        .replace("{combined}", &format!(r#"{COMMON} "{{>opcode}}""#));
    let mut parts = Vec::new();
    let mut text = String::new();
    let mut rest = format.as_str();
    while let Some(close) = rest.find('}') {
        let Some(open) = rest[..close].rfind('{') else {
            text.push_str(&rest[..=close]);
            rest = &rest[close + 1..];
            continue;
        };
        let label = &rest[open..=close];
        let part = match label {
            "{type}" => Some(Part::Type),
            "{name}" => Some(Part::Name),
            "{class}" => Some(Part::QClass),
            "{proto}" => Some(Part::Proto),
            "{size}" => Some(Part::Size),
            "{remote}" => Some(Part::Remote),
            "{port}" => Some(Part::Port),
            "{local}" => Some(Part::Local),
            "{>id}" => Some(Part::Id),
            "{>opcode}" => Some(Part::Opcode),
            "{>do}" => Some(Part::Do),
            "{>bufsize}" => Some(Part::Bufsize),
            "{rcode}" => Some(Part::Rcode),
            "{rsize}" => Some(Part::Rsize),
            "{duration}" => Some(Part::Duration),
            "{>rflags}" => Some(Part::Rflags),
            _ => label
                .strip_prefix("{/")
                .and_then(|l| l.strip_suffix('}'))
                .map(|l| Part::Metadata(l.to_string())),
        };
        match part {
            Some(part) => {
                text.push_str(&rest[..open]);
                if !text.is_empty() {
                    parts.push(Part::Text(std::mem::take(&mut text)));
                }
                parts.push(part);
            }
            None => text.push_str(&rest[..=close]),
        }
        rest = &rest[close + 1..];
    }
    text.push_str(rest);
    if !text.is_empty() {
        parts.push(Part::Text(text));
    }
    parts
}

/// `errors { stacktrace; consolidate DURATION REGEXP [LEVEL] [show_first] }`: a line for each
/// failed query (`RCODE NAME TYPE: ERROR`, as CoreDNS writes it: the upstream's error, or the
/// SERVFAIL), or, for errors matching a `consolidate` rule, one line per DURATION counting them.
#[derive(Debug, Clone, Default)]
pub struct Errors {
    rules: Arc<Vec<Consolidate>>,
}

impl PartialEq for Errors {
    fn eq(&self, other: &Self) -> bool {
        self.rules.len() == other.rules.len()
            && self.rules.iter().zip(other.rules.iter()).all(|(a, b)| {
                (a.period, a.regex.as_str(), a.level, a.show_first)
                    == (b.period, b.regex.as_str(), b.level, b.show_first)
            })
    }
}

/// Errors like REGEXP, counted over DURATION from the first and written as one line.
#[derive(Debug)]
struct Consolidate {
    period: Duration,
    regex: Regex,
    level: Level,
    /// The first error of each period is written as it comes, the count only when more did.
    show_first: bool,
    /// Errors counted in the current period (0: none began).
    count: AtomicU32,
    /// Wakes the task that writes the count once the period is over.
    begun: Notify,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Debug,
    Info,
    Warning,
    Error,
}

/// Writes `line` at `level`, under `errors`' target.
fn emit(level: Level, line: &str) {
    match level {
        Level::Debug => debug!(target: "clusterdns::errors", "{line}"),
        Level::Info => info!(target: "clusterdns::errors", "{line}"),
        Level::Warning => warn!(target: "clusterdns::errors", "{line}"),
        Level::Error => error!(target: "clusterdns::errors", "{line}"),
    }
}

/// CoreDNS's limit on a `consolidate` pattern's length.
const MAX_REGEXP: usize = 10000;

fn consolidate(o: &Directive) -> Result<Consolidate, ConfigError> {
    let err = |m: String| directive_err(o, "errors", m);
    if !(2..=4).contains(&o.args.len()) {
        return Err(err(
            "Wrong argument count or unexpected line ending after 'consolidate'".into(),
        ));
    }
    let period = parse_duration(&o.args[0]).map_err(err)?;
    let pattern = &o.args[1];
    if pattern.len() > MAX_REGEXP {
        return Err(err(format!(
            "regex pattern too long: {} > {MAX_REGEXP}",
            pattern.len()
        )));
    }
    let regex = Regex::new(pattern).map_err(|e| err(e.to_string()))?;
    let (mut level, mut show_first) = (None, false);
    for arg in &o.args[2..] {
        let named = match arg.as_str() {
            "warning" => Some(Level::Warning),
            "error" => Some(Level::Error),
            "info" => Some(Level::Info),
            "debug" => Some(Level::Debug),
            "show_first" => None,
            other => return Err(err(format!("unknown option in consolidate: {other}"))),
        };
        match named {
            Some(_) if level.is_some() => {
                return Err(err("multiple log levels specified in consolidate".into()));
            }
            Some(_) if show_first => {
                return Err(err(
                    "log level must come before show_first in consolidate".into()
                ));
            }
            Some(l) => level = Some(l),
            None => show_first = true,
        }
    }
    Ok(Consolidate {
        period,
        regex,
        level: level.unwrap_or(Level::Error),
        show_first,
        count: AtomicU32::new(0),
        begun: Notify::new(),
    })
}

impl Setup for Errors {
    fn parse(d: &Directive, _: &Context<'_>) -> Result<Self, ConfigError> {
        match d.args.as_slice() {
            [] => {}
            [out] if out == "stdout" => {}
            [out] => {
                return Err(directive_err(
                    d,
                    "errors",
                    format!("invalid log file: {out}"),
                ));
            }
            _ => {
                return Err(directive_err(
                    d,
                    "errors",
                    "Wrong argument count or unexpected line ending after 'errors'",
                ));
            }
        }
        let mut rules = Vec::new();
        for o in &d.block {
            match o.name.as_str() {
                // A panic is always logged, and caught; Rust prints its stack with
                // RUST_BACKTRACE=1.
                "stacktrace" => {}
                "consolidate" => rules.push(consolidate(o)?),
                other => {
                    return Err(directive_err(o, "errors", format!("Unknown field {other}")));
                }
            }
        }
        Ok(Errors {
            rules: Arc::new(rules),
        })
    }

    fn build(&self, b: &mut Building<'_>) -> Result<(), SetupError> {
        // One task per rule writes its count when a period that began is over.
        for i in 0..self.rules.len() {
            let rules = Arc::clone(&self.rules);
            b.background.push(Box::pin(async move {
                let rule = &rules[i];
                loop {
                    rule.begun.notified().await;
                    tokio::time::sleep(rule.period).await;
                    rule.flush();
                }
            }));
        }
        b.chain.push(Plugin::Errors(self.clone()));
        Ok(())
    }
}

impl Consolidate {
    /// The period is over: its count, unless only the first came and it was written.
    fn flush(&self) {
        let count = self.count.swap(0, Ordering::Relaxed);
        if count > 1 || (count == 1 && !self.show_first) {
            emit(
                self.level,
                &format!(
                    "{count} errors like '{}' occurred in last {}",
                    self.regex.as_str(),
                    go_duration(self.period)
                ),
            );
        }
    }
}

impl Errors {
    /// What is written, now, for a failed query: its line, at its level, or nothing when a
    /// `consolidate` rule counts it.
    fn line(&self, seen: &Seen<'_>) -> Option<(Level, String)> {
        let error = match seen.error {
            Some(error) => error,
            None if seen.rcode == u16::from(ResponseCode::ServFail) => "SERVFAIL",
            None => return None,
        };
        let msg = seen.message()?;
        let question = msg.queries().first()?;
        let mut level = Level::Error;
        if let Some(rule) = self.rules.iter().find(|r| r.regex.is_match(error)) {
            let count = rule.count.fetch_add(1, Ordering::Relaxed) + 1;
            if count == 1 {
                rule.begun.notify_one();
            }
            if count > 1 || !rule.show_first {
                return None;
            }
            level = rule.level;
        }
        let qtype = match question.query_type() {
            RecordType::Unknown(n) => format!("TYPE{n}"),
            t => t.to_string(),
        };
        let name = LowerName::new(question.name());
        Some((level, format!("{} {name} {qtype}: {error}", seen.rcode)))
    }
}

/// A duration as Go prints one (`5m0s`, `30s`, `1h0m0s`, `1.5s`, `250ms`).
fn go_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".into();
    }
    if nanos < 1_000_000_000 {
        let (unit, scale) = match nanos {
            n if n < 1_000 => ("ns", 1.0),
            n if n < 1_000_000 => ("µs", 1e3),
            _ => ("ms", 1e6),
        };
        return format!("{}{unit}", nanos as f64 / scale);
    }
    let secs = d.as_secs();
    let (h, m) = (secs / 3600, secs % 3600 / 60);
    let s = (secs % 60) as f64 + f64::from(d.subsec_nanos()) / 1e9;
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, m) => format!("{m}m{s}s"),
        (h, m) => format!("{h}h{m}m{s}s"),
    }
}

impl Setup for Log {
    fn parse(d: &Directive, _: &Context<'_>) -> Result<Self, ConfigError> {
        let scope = |name: &str| {
            Name::from_ascii(name).ok().map(|mut n| {
                n.set_fqdn(true);
                LowerName::new(&n)
            })
        };
        let mut rules = match d.args.as_slice() {
            [] => vec![Rule::new(scope("."), COMMON)],
            // One argument is a name, whatever it holds.
            [name] => vec![Rule::new(scope(name), COMMON)],
            [names @ .., last] => {
                let (names, format) = if last.contains('{') {
                    (names, last.as_str())
                } else {
                    (d.args.as_slice(), COMMON)
                };
                names.iter().map(|n| Rule::new(scope(n), format)).collect()
            }
        };
        let mut classes = 0u8;
        for o in &d.block {
            if o.name != "class" {
                return Err(directive_err(
                    o,
                    "log",
                    format!("unknown property '{}'", o.name),
                ));
            }
            if o.args.is_empty() {
                return Err(directive_err(
                    o,
                    "log",
                    "Wrong argument count or unexpected line ending after 'class'",
                ));
            }
            for class in &o.args {
                classes |= match class.as_str() {
                    "all" => ALL,
                    "success" => Class::Success as u8,
                    "denial" => Class::Denial as u8,
                    "error" => Class::Error as u8,
                    other => {
                        return Err(directive_err(o, "log", format!("invalid Class: {other}")));
                    }
                };
            }
        }
        if classes != 0 {
            for rule in &mut rules {
                rule.classes = classes;
            }
        }
        Ok(Self { rules })
    }

    /// Every `log` line of a block adds its rules after the earlier ones'.
    fn merge(&mut self, later: Self) -> bool {
        self.rules.extend(later.rules);
        true
    }

    fn build(&self, b: &mut Building<'_>) -> Result<(), SetupError> {
        b.chain.push(Plugin::Log(self.clone()));
        Ok(())
    }
}

impl Seen<'_> {
    /// The query, parsed (once, by the full path, or here when it was not).
    pub fn message(&self) -> Option<Cow<'_, Message>> {
        match self.parsed {
            Some(msg) => Some(Cow::Borrowed(msg)),
            None => Message::from_vec(self.query).ok().map(Cow::Owned),
        }
    }
}

impl Phases for Errors {
    fn observe(&self, seen: &Seen<'_>) {
        if let Some((level, line)) = self.line(seen) {
            emit(level, &line);
        }
    }
}

impl Phases for Log {
    /// `{duration}`.
    const TIMED: bool = true;

    /// The line wants the parsed query: such a block goes the full way.
    fn fast(&self) -> bool {
        false
    }

    fn observe(&self, seen: &Seen<'_>) {
        if let Some(line) = self.line(seen) {
            info!(target: "clusterdns::log", "{line}");
        }
    }
}

impl Log {
    /// The line logged for this query, if any: the first rule whose names hold the question's
    /// decides, as in CoreDNS.
    fn line(&self, seen: &Seen<'_>) -> Option<String> {
        let msg = seen.message()?;
        let name = LowerName::new(msg.queries().first()?.name());
        let rule = self
            .rules
            .iter()
            .find(|r| r.scope.as_ref().is_some_and(|s| s.zone_of(&name)))?;
        let kind = typify(&msg, seen.response);
        (rule.classes & kind.class() as u8 != 0).then(|| render(&rule.format, seen, &msg, kind))
    }
}

/// The response's type, from its header and its authority records' types.
fn typify(query: &Message, response: &[u8]) -> Type {
    const SOA: u16 = 6;
    const NS: u16 = 2;
    let Some(header) = Header::of(response) else {
        return Type::OtherError;
    };
    match header.opcode() {
        5 => return Type::Update,
        4 => return Type::Meta,
        _ => {}
    }
    if query
        .queries()
        .first()
        .is_some_and(|q| matches!(q.query_type(), RecordType::AXFR | RecordType::IXFR))
    {
        return Type::Meta;
    }
    let rcode = header.rcode_low();
    match (header.answers() > 0, rcode) {
        (true, 0) => return Type::NoError,
        (true, 3) => return Type::OtherError,
        _ => {}
    }
    let answers = usize::from(header.answers());
    let authority = answers..answers + usize::from(header.authority());
    let (mut soa, mut ns) = (false, false);
    for record in wire::records_after_question(response).map_while(|r| r) {
        if authority.contains(&record.index) {
            soa |= record.rtype == SOA;
            ns |= record.rtype == NS;
        }
    }
    match rcode {
        0 if soa => Type::NoData,
        3 => Type::NameError,
        2 | 4 => Type::ServerError,
        0 if ns => Type::Delegation,
        0 => Type::NoError,
        _ => Type::OtherError,
    }
}

/// One line of `format` for this query.
fn render(format: &[Part], seen: &Seen<'_>, msg: &Message, kind: Type) -> String {
    let question = msg.queries().first();
    let edns = msg.extensions().as_ref();
    let mut out = String::with_capacity(128);
    for part in format {
        // Writing to a String does not fail.
        let _ = match part {
            Part::Text(text) => out.write_str(text),
            Part::Type => match question.map(|q| q.query_type()) {
                Some(RecordType::Unknown(n)) => write!(out, "TYPE{n}"),
                Some(t) => write!(out, "{t}"),
                None => out.write_str("-"),
            },
            Part::Name => match question {
                Some(q) => write!(out, "{}", LowerName::new(q.name())),
                None => out.write_str("."),
            },
            Part::QClass => match question.map(|q| q.query_class()) {
                Some(DNSClass::Unknown(n)) => write!(out, "CLASS{n}"),
                Some(c) => write!(out, "{c}"),
                None => out.write_str("-"),
            },
            Part::Proto => out.write_str(seen.transport.as_str()),
            Part::Size => write!(out, "{}", seen.query.len()),
            Part::Remote => match seen.src.ip().to_canonical() {
                std::net::IpAddr::V6(ip) => write!(out, "[{ip}]"),
                ip => write!(out, "{ip}"),
            },
            Part::Port => write!(out, "{}", seen.src.port()),
            // The address the query came to is not known here.
            Part::Local => out.write_str("-"),
            Part::Id => write!(out, "{}", msg.id()),
            Part::Opcode => write!(out, "{}", u8::from(msg.op_code())),
            Part::Do => write!(out, "{}", edns.is_some_and(|e| e.flags().dnssec_ok)),
            Part::Bufsize => {
                let size = match seen.transport {
                    Transport::Tcp => 65535,
                    Transport::Udp => edns.map_or(512, |e| e.max_payload().max(512)),
                };
                write!(out, "{size}")
            }
            Part::Rcode => out.write_str(&crate::metrics::rcode_name(seen.rcode)),
            Part::Rsize => write!(out, "{}", seen.response.len()),
            Part::Duration => write!(out, "{}s", seen.started.elapsed().as_secs_f64()),
            Part::Rflags => {
                out.push_str(&flags(seen.response));
                Ok(())
            }
            Part::Metadata(label) => match label.as_str() {
                "log/type" => out.write_str(kind.name()),
                "log/class" => out.write_str(match kind.class() {
                    Class::Success => "success",
                    Class::Denial => "denial",
                    Class::Error => "error",
                }),
                // Another plugin's, through `metadata`; `-` when it gives none.
                _ => {
                    let value = question.and_then(|q| {
                        seen.meta
                            .value(label, &LowerName::new(q.name()), seen.src, seen.query)
                    });
                    out.write_str(value.as_deref().unwrap_or("-"))
                }
            },
        };
    }
    out
}

/// The response's flags as CoreDNS writes them: `qr,aa,tc,rd,ra,z,ad,cd`, those set.
fn flags(response: &[u8]) -> String {
    let Some(h) = Header::of(response) else {
        return "-".into();
    };
    let set = [
        (h.is_response(), "qr"),
        (h.authoritative(), "aa"),
        (h.truncated(), "tc"),
        (h.recursion_desired(), "rd"),
        (h.recursion_available(), "ra"),
        (h.zero(), "z"),
        (h.authentic_data(), "ad"),
        (h.checking_disabled(), "cd"),
    ];
    let on: Vec<&str> = set.iter().filter(|(on, _)| *on).map(|(_, f)| *f).collect();
    on.join(",")
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::path::Path;
    use std::time::Instant;

    use hickory_proto::op::{Edns, MessageType, Query};
    use hickory_proto::rr::rdata::{A, NS, SOA};
    use hickory_proto::rr::{RData, Record};

    use super::*;
    use crate::config::Config;

    fn log(lines: &str) -> Result<Log, String> {
        let text = format!(".:0 {{\n{lines}\n}}\n");
        let config = Config::from_text(&text, 0, Path::new(".")).map_err(|e| e.to_string())?;
        Ok(config.servers[0].get::<Log>().expect("log is set").clone())
    }

    fn name(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    fn query(qname: &str, qtype: RecordType, edns: Option<(u16, bool)>) -> Message {
        let mut m = Message::new();
        m.set_id(4321).set_recursion_desired(true);
        m.add_query(Query::query(name(qname), qtype));
        if let Some((payload, dnssec_ok)) = edns {
            let mut e = Edns::new();
            e.set_max_payload(payload).set_dnssec_ok(dnssec_ok);
            m.set_edns(e);
        }
        m
    }

    /// `query`'s response: rcode, answers, authority records.
    fn response(
        query: &Message,
        rcode: ResponseCode,
        answers: &[Record],
        ns: &[Record],
    ) -> Vec<u8> {
        let mut m = Message::new();
        m.set_id(query.id())
            .set_message_type(MessageType::Response)
            .set_recursion_desired(true)
            .set_authoritative(true)
            .set_response_code(rcode);
        m.add_queries(query.queries().to_vec());
        m.add_answers(answers.to_vec());
        m.add_name_servers(ns.to_vec());
        m.to_vec().unwrap()
    }

    fn soa() -> Record {
        let data = SOA::new(name("ns.dns.x."), name("h.x."), 1, 2, 3, 4, 5);
        Record::from_rdata(name("x."), 5, RData::SOA(data))
    }

    fn a(owner: &str) -> Record {
        Record::from_rdata(name(owner), 5, RData::A(A::new(10, 0, 0, 1)))
    }

    /// The line `log` writes for `query` answered by `response`.
    fn line(log: &Log, query: &Message, response: &[u8], transport: Transport) -> Option<String> {
        let bytes = query.to_vec().unwrap();
        let src: SocketAddr = "[::ffff:10.244.0.7]:40000".parse().unwrap();
        let seen = Seen {
            query: &bytes,
            parsed: Some(query),
            src,
            transport,
            size: 0,
            rcode: u16::from(Message::from_vec(response).unwrap().response_code()),
            response,
            started: Instant::now(),
            error: None,
            meta: crate::plugin::metadata::Meta::none(),
        };
        log.line(&seen)
    }

    #[test]
    fn reads_coredns_forms() {
        let root = |format: &str| Rule::new(Some(LowerName::from(Name::root())), format);
        let rule = |scope: &str, format: &str, classes: u8| Rule {
            classes,
            ..Rule::new(Some(LowerName::new(&name(scope))), format)
        };
        let (s, d, e) = (
            Class::Success as u8,
            Class::Denial as u8,
            Class::Error as u8,
        );
        for (lines, rules) in [
            ("log", vec![root(COMMON)]),
            ("log .", vec![root(COMMON)]),
            // One argument is a name even with a brace in it.
            ("log example.org", vec![rule("example.org.", COMMON, ALL)]),
            (
                "log a.org b.org",
                vec![rule("a.org.", COMMON, ALL), rule("b.org.", COMMON, ALL)],
            ),
            (
                r#"log . "{proto} Request: {name} {type} {>id}""#,
                vec![root("{proto} Request: {name} {type} {>id}")],
            ),
            ("log . {\n class error\n}", vec![rule(".", COMMON, e)]),
            (
                "log . {combined} {\n class denial error\n}",
                vec![rule(".", &format!("{COMMON} \"{{>opcode}}\""), d | e)],
            ),
            (
                "log . {\n class denial\n class success\n}",
                vec![rule(".", COMMON, d | s)],
            ),
            (
                "log . {\n class all denial\n}",
                vec![rule(".", COMMON, ALL)],
            ),
            // Several lines: their rules in order.
            (
                "log example.org {\n class denial\n}\nlog",
                vec![rule("example.org.", COMMON, d), root(COMMON)],
            ),
        ] {
            assert_eq!(log(lines).map(|l| l.rules), Ok(rules), "{lines}");
        }
        for (lines, error) in [
            ("log . {\n class\n}", "Wrong argument count"),
            ("log . {\n class nope\n}", "invalid Class: nope"),
            ("log . {\n format x\n}", "unknown property 'format'"),
        ] {
            let got = log(lines).expect_err(lines);
            assert!(got.contains(error), "{lines}: {got}");
        }
    }

    #[test]
    fn formats_split_as_coredns_replacer_does() {
        use Part::*;
        let text = |s: &str| Text(s.to_string());
        for (format, parts) in [
            ("{type}", vec![Type]),
            ("A {type} B", vec![text("A "), Type, text(" B")]),
            ("{ {name} }", vec![text("{ "), Name, text(" }")]),
            ("A } {port}", vec![text("A } "), Port]),
            ("{x} {rcode}", vec![text("{x} "), Rcode]),
            (
                "{/log/type}{/other}",
                vec![Metadata("log/type".into()), Metadata("other".into())],
            ),
            ("no placeholders {", vec![text("no placeholders {")]),
        ] {
            assert_eq!(parse_format(format), parts, "{format}");
        }
    }

    #[test]
    fn writes_coredns_lines_for_the_responses_its_classes_take() {
        let common = log("log").unwrap();
        let q = query("Web.Example.ORG.", RecordType::A, Some((4096, true)));
        let ok = response(&q, ResponseCode::NoError, &[a("web.example.org.")], &[]);
        let got = line(&common, &q, &ok, Transport::Udp).unwrap();
        let (head, tail) = got.split_once(" - ").unwrap();
        assert_eq!(head, "10.244.0.7:40000");
        let fields: Vec<&str> = tail.split(' ').collect();
        let len = q.to_vec().unwrap().len().to_string();
        assert_eq!(
            fields[..10],
            [
                "4321",
                "\"A",
                "IN",
                "web.example.org.",
                "udp",
                len.as_str(),
                "true",
                "4096\"",
                "NOERROR",
                "qr,aa,rd"
            ]
        );
        assert_eq!(fields[10], ok.len().to_string());
        assert!(
            fields[11].ends_with('s') && fields[11][..fields[11].len() - 1].parse::<f64>().is_ok()
        );
        // Over TCP the buffer is 64K; without EDNS, 512 over UDP.
        let plain = query("web.example.org.", RecordType::A, None);
        let ok_plain = response(&plain, ResponseCode::NoError, &[a("web.example.org.")], &[]);
        let tcp = line(&common, &q, &ok, Transport::Tcp).unwrap();
        assert!(
            tcp.contains(" tcp ") && tcp.contains(" true 65535\" "),
            "{tcp}"
        );
        let udp = line(&common, &plain, &ok_plain, Transport::Udp).unwrap();
        assert!(udp.contains(" false 512\" "), "{udp}");

        // Classes: success, denial (NXDOMAIN, NODATA with a SOA), error.
        let nx = response(&q, ResponseCode::NXDomain, &[], &[soa()]);
        let nodata = response(&q, ResponseCode::NoError, &[], &[soa()]);
        let servfail = response(&q, ResponseCode::ServFail, &[], &[]);
        let refused = response(&q, ResponseCode::Refused, &[], &[]);
        let delegation = {
            let ns = Record::from_rdata(name("example.org."), 5, RData::NS(NS(name("ns.x."))));
            response(&q, ResponseCode::NoError, &[], &[ns])
        };
        let format = r#"log . "{rcode} {/log/class} {/log/type} {/nope}" {
            class CLASS
        }"#;
        for (class, logged) in [
            ("all", [true, true, true, true, true, true]),
            ("success", [true, false, false, false, false, true]),
            ("denial", [false, true, true, false, false, false]),
            ("error", [false, false, false, true, true, false]),
            ("denial error", [false, true, true, true, true, false]),
        ] {
            let rules = log(&format.replace("CLASS", class)).unwrap();
            let lines: Vec<Option<String>> = [&ok, &nx, &nodata, &servfail, &refused, &delegation]
                .iter()
                .map(|r| line(&rules, &q, r, Transport::Udp))
                .collect();
            assert_eq!(
                lines.iter().map(Option::is_some).collect::<Vec<_>>(),
                logged,
                "{class}"
            );
        }
        let all = log(&format.replace("CLASS", "all")).unwrap();
        for (response, want) in [
            (&ok, "NOERROR success NOERROR -"),
            (&nx, "NXDOMAIN denial NXDOMAIN -"),
            (&nodata, "NOERROR denial NODATA -"),
            (&servfail, "SERVFAIL error SERVERERROR -"),
            (&refused, "REFUSED error OTHERERROR -"),
            (&delegation, "NOERROR success DELEGATION -"),
        ] {
            assert_eq!(line(&all, &q, response, Transport::Udp).unwrap(), want);
        }
    }

    fn errors(lines: &str) -> Result<Errors, String> {
        let text = format!(".:0 {{\n{lines}\n}}\n");
        let config = Config::from_text(&text, 0, Path::new(".")).map_err(|e| e.to_string())?;
        Ok(config.servers[0]
            .get::<Errors>()
            .expect("errors is set")
            .clone())
    }

    #[test]
    fn reads_errors_forms_as_coredns() {
        for lines in [
            "errors",
            "errors stdout",
            "errors {\n stacktrace\n}",
            "errors {\n consolidate 5m \".* i/o timeout$\" warning\n consolidate 30s \"^Failed to .+\"\n}",
            "errors {\n consolidate 5m \".* i/o timeout$\" warning show_first\n}",
            "errors {\n consolidate 1m x show_first\n}",
        ] {
            assert!(errors(lines).is_ok(), "{lines}: {:?}", errors(lines).err());
        }
        let rules =
            errors("errors {\n consolidate 5m \"a$\" warning show_first\n consolidate 30s b\n}")
                .unwrap()
                .rules;
        assert_eq!(rules.len(), 2);
        assert_eq!(
            (
                rules[0].period,
                rules[0].regex.as_str(),
                rules[0].level,
                rules[0].show_first
            ),
            (Duration::from_secs(300), "a$", Level::Warning, true)
        );
        assert_eq!((rules[1].level, rules[1].show_first), (Level::Error, false));
        for (lines, error) in [
            ("errors stderr", "invalid log file: stderr"),
            ("errors a b", "Wrong argument count"),
            ("errors {\n consolidate 5m\n}", "Wrong argument count"),
            (
                "errors {\n consolidate 5m a b c d\n}",
                "Wrong argument count",
            ),
            ("errors {\n consolidate five a\n}", "duration"),
            ("errors {\n consolidate 5m \"(\"\n}", "regex"),
            (
                "errors {\n consolidate 5m a loud\n}",
                "unknown option in consolidate: loud",
            ),
            (
                "errors {\n consolidate 5m a info debug\n}",
                "multiple log levels",
            ),
            (
                "errors {\n consolidate 5m a show_first info\n}",
                "must come before show_first",
            ),
            ("errors {\n format x\n}", "Unknown field format"),
            ("errors\nerrors", "once"),
        ] {
            let got = errors(lines).expect_err(lines);
            assert!(got.contains(error), "{lines}: {got}");
        }
        let long = format!(
            "errors {{\n consolidate 5m {}\n}}",
            "a".repeat(MAX_REGEXP + 1)
        );
        assert!(
            errors(&long)
                .unwrap_err()
                .contains("regex pattern too long")
        );
    }

    #[test]
    fn errors_write_each_failure_or_count_those_a_rule_consolidates() {
        let q = query("Down.Example.", RecordType::AAAA, None);
        let bytes = q.to_vec().unwrap();
        let failed = response(&q, ResponseCode::ServFail, &[], &[]);
        let seen = |error: Option<&'static str>, rcode: u16| Seen {
            query: &bytes,
            parsed: Some(&q),
            src: "10.0.0.1:53".parse().unwrap(),
            transport: Transport::Udp,
            size: 512,
            rcode,
            response: &failed,
            started: Instant::now(),
            error,
            meta: crate::plugin::metadata::Meta::none(),
        };
        let timeout = Some("upstream 10.0.0.9:53: i/o timeout");
        let plain = errors("errors").unwrap();
        assert_eq!(
            plain.line(&seen(timeout, 2)),
            Some((
                Level::Error,
                "2 down.example. AAAA: upstream 10.0.0.9:53: i/o timeout".into()
            ))
        );
        assert_eq!(
            plain.line(&seen(None, 2)),
            Some((Level::Error, "2 down.example. AAAA: SERVFAIL".into()))
        );
        assert_eq!(plain.line(&seen(None, 3)), None, "an NXDOMAIN is no error");

        let counted = errors("errors {\n consolidate 30s \".* i/o timeout$\" warning\n}").unwrap();
        let rule = &counted.rules[0];
        for _ in 0..3 {
            assert_eq!(counted.line(&seen(timeout, 2)), None);
        }
        assert_eq!(rule.count.load(Ordering::Relaxed), 3);
        // Others are written as they come.
        assert!(counted.line(&seen(None, 2)).is_some());
        rule.flush();
        assert_eq!(rule.count.load(Ordering::Relaxed), 0);

        let first = errors("errors {\n consolidate 30s \"timeout$\" info show_first\n}").unwrap();
        assert_eq!(
            first.line(&seen(timeout, 2)).map(|(level, _)| level),
            Some(Level::Info),
            "the first of a period is written, at the rule's level"
        );
        assert_eq!(first.line(&seen(timeout, 2)), None);
        assert_eq!(go_duration(rule.period), "30s");
    }

    #[test]
    fn durations_print_as_go_prints_them() {
        for (d, go) in [
            (Duration::from_secs(300), "5m0s"),
            (Duration::from_secs(30), "30s"),
            (Duration::from_secs(3600), "1h0m0s"),
            (Duration::from_millis(1500), "1.5s"),
            (Duration::from_millis(250), "250ms"),
            (Duration::from_secs(3725), "1h2m5s"),
        ] {
            assert_eq!(go_duration(d), go);
        }
    }

    #[test]
    fn the_first_rule_holding_the_name_decides() {
        let rules = log(
            "log example.org \"first {name}\" {\n class denial\n}\nlog . \"second {name} {remote}\"",
        )
        .unwrap();
        let inside = query("www.example.org.", RecordType::A, None);
        let ok = response(
            &inside,
            ResponseCode::NoError,
            &[a("www.example.org.")],
            &[],
        );
        // Under example.org: the first rule, which takes denials only.
        assert_eq!(line(&rules, &inside, &ok, Transport::Udp), None);
        let nx = response(&inside, ResponseCode::NXDomain, &[], &[soa()]);
        assert_eq!(
            line(&rules, &inside, &nx, Transport::Udp).as_deref(),
            Some("first www.example.org.")
        );
        let outside = query("other.net.", RecordType::Unknown(65280), None);
        let ok = response(&outside, ResponseCode::NoError, &[], &[]);
        assert_eq!(
            line(&rules, &outside, &ok, Transport::Udp).as_deref(),
            Some("second other.net. 10.244.0.7")
        );
        let typed = log(r#"log . "{type} {class} {>opcode} {local}""#).unwrap();
        assert_eq!(
            line(&typed, &outside, &ok, Transport::Udp).as_deref(),
            Some("TYPE65280 IN 0 -")
        );
        // Only names under the scope: none at all when it is not a name.
        let nowhere = log("log example.org").unwrap();
        assert_eq!(line(&nowhere, &outside, &ok, Transport::Udp), None);
    }
}
