//! The `log` and `errors` plugins: they see each query's response once it is made, whatever
//! path made it, and write CoreDNS's lines.

use std::borrow::Cow;

use hickory_proto::op::{Message, ResponseCode};
use tracing::{error, info};

use super::setup::{Building, Context, Setup, SetupError};
use super::{Phases, Plugin, Seen};
use crate::corefile::{ConfigError, Directive, directive_err};

/// `log`: one line per query in CoreDNS's default format.
#[derive(Debug, Default)]
pub struct Log;

/// `errors`: a line for each SERVFAIL.
#[derive(Debug, Default)]
pub struct Errors;

/// `errors` and `log` take no block in this build.
fn no_block(d: &Directive) -> Result<(), ConfigError> {
    if !d.block.is_empty() {
        return Err(directive_err(d, &d.name, "takes no block in this build"));
    }
    Ok(())
}

impl Setup for Errors {
    fn parse(d: &Directive, _: &Context<'_>) -> Result<Self, ConfigError> {
        no_block(d).map(|()| Errors)
    }

    fn build(&self, b: &mut Building<'_>) -> Result<(), SetupError> {
        b.chain.push(Plugin::Errors(Errors));
        Ok(())
    }
}

impl Setup for Log {
    fn parse(d: &Directive, _: &Context<'_>) -> Result<Self, ConfigError> {
        no_block(d).map(|()| Log)
    }

    fn build(&self, b: &mut Building<'_>) -> Result<(), SetupError> {
        b.chain.push(Plugin::Log(Log));
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
        if seen.rcode != u16::from(ResponseCode::ServFail) {
            return;
        }
        if let Some(msg) = seen.message()
            && let Some(question) = msg.queries().first()
        {
            error!(name = %question.name(), qtype = %question.query_type(), "SERVFAIL");
        }
    }
}

impl Phases for Log {
    /// The line wants the parsed query: such a block goes the full way.
    fn fast(&self) -> bool {
        false
    }

    /// `{remote}:{port} - {id} "{type} {class} {name} {proto} {size} {do} {bufsize}" {rcode} {rflags} {rsize} {duration}`.
    fn observe(&self, seen: &Seen<'_>) {
        let Some(msg) = seen.message() else {
            return;
        };
        let Some(question) = msg.queries().first() else {
            return;
        };
        let out = seen.response;
        let (dnssec_ok, bufsize) = match msg.extensions() {
            Some(e) => (e.flags().dnssec_ok, e.max_payload()),
            None => (false, 512),
        };
        let bit = |byte: usize, mask: u8| out.get(byte).is_some_and(|b| b & mask != 0);
        let mut flags = vec!["qr"];
        if bit(2, 0x04) {
            flags.push("aa");
        }
        if bit(2, 0x02) {
            flags.push("tc");
        }
        if msg.recursion_desired() {
            flags.push("rd");
        }
        if bit(3, 0x80) {
            flags.push("ra");
        }
        let src = seen.src;
        info!(
            target: "clusterdns::log",
            "{}:{} - {} \"{} {} {} {} {} {} {}\" {} {} {} {:.9}s",
            src.ip().to_canonical(),
            src.port(),
            msg.id(),
            question.query_type(),
            question.query_class(),
            question.name(),
            seen.transport.as_str(),
            seen.size,
            dnssec_ok,
            bufsize,
            crate::metrics::rcode_name(seen.rcode),
            flags.join(","),
            out.len(),
            seen.started.elapsed().as_secs_f64(),
        );
    }
}
