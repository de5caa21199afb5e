//! `rewrite`: the question is changed before the rest of the chain, the cache and an upstream
//! see it, and the client gets its own question back, with the answer's names turned back as
//! the rule says (CoreDNS's `rewrite`: `name` with `exact`, `prefix`, `suffix`, `substring` and
//! `regex` matches and `answer auto|name|value`, `type`, `class`, the response's `ttl` and
//! `rcode` for matching questions, and the query's `edns0` options; `stop` and `continue`).
//!
//! Each `rewrite` line is one rule; rules are tried in order on the question as the earlier
//! ones left it, until one that fired says `stop` (the default). The response rules of the
//! rules that fired are applied to every record of the response, the last rule's first.

use hickory_proto::op::Message;
use hickory_proto::rr::rdata::{CNAME, MX, NS, PTR, SOA, SRV};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use regex::Regex;

use super::setup::{Building, Context, Setup, SetupError};
use super::{Asker, Phases, Plugin, Revert};
use crate::corefile::{ConfigError, Directive, directive_err};
use crate::wire::{self, HEADER_LEN};

/// CoreDNS's limit on a pattern's length.
const MAX_REGEXP: usize = 10000;

/// `rewrite`: its rules in the order the block's lines give them.
#[derive(Debug, Clone)]
pub struct Rewrite {
    rules: Vec<Rule>,
}

impl PartialEq for Rewrite {
    fn eq(&self, other: &Self) -> bool {
        format!("{self:?}") == format!("{other:?}")
    }
}

#[derive(Debug, Clone)]
struct Rule {
    stop: bool,
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    Name(NameRule),
    Type(RecordType, RecordType),
    Class(DNSClass, DNSClass),
    /// Every record's TTL of the response brought into `min..=max`.
    Ttl(Pattern, u32, u32),
    /// The response's rcode `from` becomes `to`.
    Rcode(Pattern, u16, u16),
    /// An EDNS0 option of the query set, added, replaced or removed.
    Edns0(Edns0Rule),
    /// A CNAME target of the response renamed, and the new target looked up.
    Cname(Matcher),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Edns0Action {
    Set,
    Append,
    Replace,
    Unset,
}

#[derive(Debug, Clone)]
struct Edns0Rule {
    action: Edns0Action,
    option: Edns0Option,
    /// `revert`: the response does not carry what the rule put into the query.
    revert: bool,
}

#[derive(Debug, Clone)]
enum Edns0Option {
    Local {
        code: u16,
        data: LocalData,
    },
    Nsid,
    /// The client's subnet (RFC 7871) at these prefix lengths.
    Subnet {
        v4: u8,
        v6: u8,
    },
}

#[derive(Debug, Clone)]
enum LocalData {
    Bytes(Vec<u8>),
    /// `{qname}`, `{qtype}`, `{client_ip}`, `{client_port}`, `{protocol}`, `{server_ip}`,
    /// `{server_port}`, or a metadata label (`{plugin/label}`).
    Variable(String),
}

const NSID: u16 = 3;
const SUBNET: u16 = 8;

/// A number as Go's `strconv.ParseUint(s, 0, 16)` reads it: decimal, `0x` hex, `0o`/`0`
/// octal or `0b` binary.
fn go_u16(s: &str) -> Option<u16> {
    let (digits, radix) = if let Some(h) = s.strip_prefix("0x").or(s.strip_prefix("0X")) {
        (h, 16)
    } else if let Some(b) = s.strip_prefix("0b").or(s.strip_prefix("0B")) {
        (b, 2)
    } else if let Some(o) = s.strip_prefix("0o").or(s.strip_prefix("0O")) {
        (o, 8)
    } else if s.len() > 1 && s.starts_with('0') {
        (&s[1..], 8)
    } else {
        (s, 10)
    };
    u16::from_str_radix(digits, radix).ok()
}

/// CoreDNS's `edns0` rule arguments: `local|nsid|subnet set|append|replace|unset ... [revert]`.
fn edns0_rule(args: &[String]) -> Result<Kind, String> {
    if args.len() < 2 {
        return Err("too few arguments for an EDNS0 rule".into());
    }
    let kind = args[0].to_lowercase();
    let action = match args[1].to_lowercase().as_str() {
        "set" => Edns0Action::Set,
        "append" => Edns0Action::Append,
        "replace" => Edns0Action::Replace,
        "unset" => Edns0Action::Unset,
        other => return Err(format!("invalid action: {other:?}")),
    };
    let number = |s: &String, what: &str| {
        go_u16(s).ok_or_else(|| format!("strconv.ParseUint: parsing {s:?}: invalid {what}"))
    };
    if action == Edns0Action::Unset {
        let option = match (kind.as_str(), args.len()) {
            ("local", 3) => Edns0Option::Local {
                code: number(&args[2], "syntax")?,
                data: LocalData::Bytes(Vec::new()),
            },
            ("local", _) => return Err("local unset action requires exactly two arguments".into()),
            ("nsid", 2) => Edns0Option::Nsid,
            ("nsid", _) => return Err("nsid unset action requires exactly one argument".into()),
            ("subnet", 2) => Edns0Option::Subnet { v4: 0, v6: 0 },
            ("subnet", _) => {
                return Err("subnet unset action requires exactly one argument".into());
            }
            _ => return Err(format!("invalid rule type {kind:?}")),
        };
        return Ok(Kind::Edns0(Edns0Rule {
            action,
            option,
            revert: false,
        }));
    }
    let revert = args.last().is_some_and(|a| a == "revert");
    let args = if revert {
        &args[..args.len() - 1]
    } else {
        args
    };
    let option = match kind.as_str() {
        "local" => {
            if args.len() != 4 {
                return Err("EDNS0 local rules require three or four args".into());
            }
            let code = number(&args[2], "syntax")?;
            let data = &args[3];
            let data = if data.starts_with('{') && data.ends_with('}') {
                let known = [
                    "{qname}",
                    "{qtype}",
                    "{client_ip}",
                    "{client_port}",
                    "{protocol}",
                    "{server_ip}",
                    "{server_port}",
                ];
                let label = &data[1..data.len() - 1];
                let metadata = label
                    .split_once('/')
                    .is_some_and(|(p, l)| !p.is_empty() && !l.is_empty());
                if !known.contains(&data.as_str()) && !metadata {
                    return Err(format!("unsupported variable name {data:?}"));
                }
                LocalData::Variable(data.clone())
            } else if let Some(hex) = data.strip_prefix("0x") {
                LocalData::Bytes(
                    (0..hex.len())
                        .step_by(2)
                        .map(|i| {
                            hex.get(i..i + 2)
                                .and_then(|b| u8::from_str_radix(b, 16).ok())
                        })
                        .collect::<Option<Vec<u8>>>()
                        .ok_or_else(|| format!("encoding/hex: invalid byte in {hex:?}"))?,
                )
            } else {
                LocalData::Bytes(data.as_bytes().to_vec())
            };
            Edns0Option::Local { code, data }
        }
        "nsid" => {
            if args.len() != 2 {
                return Err("EDNS0 NSID rules can accept no more than one arg".into());
            }
            Edns0Option::Nsid
        }
        "subnet" => {
            if args.len() != 4 {
                return Err("EDNS0 subnet rules require three or four args".into());
            }
            let v4 = number(&args[2], "syntax")?;
            if v4 > 32 {
                return Err(format!("invalid IPv4 bit mask length {v4}"));
            }
            let v6 = number(&args[3], "syntax")?;
            if v6 > 128 {
                return Err(format!("invalid IPv6 bit mask length {v6}"));
            }
            Edns0Option::Subnet {
                v4: v4 as u8,
                v6: v6 as u8,
            }
        }
        other => return Err(format!("invalid rule type {other:?}")),
    };
    Ok(Kind::Edns0(Edns0Rule {
        action,
        option,
        revert,
    }))
}

impl Edns0Rule {
    /// The option's data for this query, `None` when it cannot be had (a variable the query
    /// does not provide: the rule is then ignored, as CoreDNS ignores it).
    fn data(&self, name: &str, qtype: RecordType, from: &Asker) -> Option<Vec<u8>> {
        let ip = from.src.ip().to_canonical();
        match &self.option {
            Edns0Option::Local { data, .. } => match data {
                LocalData::Bytes(b) => Some(b.clone()),
                LocalData::Variable(v) => match v.as_str() {
                    "{qname}" => Some(name.as_bytes().to_vec()),
                    "{qtype}" => Some(u16::from(qtype).to_be_bytes().to_vec()),
                    "{client_ip}" => Some(match ip {
                        std::net::IpAddr::V4(a) => a.octets().to_vec(),
                        std::net::IpAddr::V6(a) => a.octets().to_vec(),
                    }),
                    "{client_port}" => Some(from.src.port().to_be_bytes().to_vec()),
                    "{protocol}" => Some(from.transport.as_str().as_bytes().to_vec()),
                    // The server's own address is not known where queries are prepared; no
                    // metadata is provided: the rule does nothing.
                    _ => None,
                },
            },
            Edns0Option::Nsid => Some(Vec::new()),
            Edns0Option::Subnet { v4, v6 } => {
                use super::acl::{v4_mask, v6_mask};
                // The address masked to its prefix.
                let (family, len, bytes): (u16, u8, Vec<u8>) = match ip {
                    std::net::IpAddr::V4(a) => {
                        (1, *v4, (u32::from(a) & v4_mask(*v4)).to_be_bytes().to_vec())
                    }
                    std::net::IpAddr::V6(a) => (
                        2,
                        *v6,
                        (u128::from(a) & v6_mask(*v6)).to_be_bytes().to_vec(),
                    ),
                };
                let mut out = family.to_be_bytes().to_vec();
                out.push(len);
                out.push(0);
                // In as many bytes as the prefix needs.
                out.extend_from_slice(&bytes[..usize::from(len).div_ceil(8)]);
                Some(out)
            }
        }
    }

    fn code(&self) -> u16 {
        match &self.option {
            Edns0Option::Local { code, .. } => *code,
            Edns0Option::Nsid => NSID,
            Edns0Option::Subnet { .. } => SUBNET,
        }
    }

    /// Applies the rule to `query`'s OPT record (one is added, 4096 bytes and no DO, when it has
    /// none, as CoreDNS does for every edns0 rule): whether it fired.
    fn apply(&self, query: &mut Vec<u8>, name: &str, qtype: RecordType, from: &Asker) -> bool {
        let code = self.code();
        let data = match self.action {
            Edns0Action::Unset => Some(Vec::new()),
            _ => self.data(name, qtype, from),
        };
        let variable = matches!(
            self.option,
            Edns0Option::Local {
                data: LocalData::Variable(_),
                ..
            } | Edns0Option::Subnet { .. }
        );
        let mut fired = false;
        let edited = wire::edit_opt(query, 4096, 0, |opt| {
            let options = wire::edns_options(opt);
            let mut out: Vec<u8> = Vec::with_capacity(opt.len() + 16);
            let Some(data) = data else {
                return opt.to_vec();
            };
            let mut option = code.to_be_bytes().to_vec();
            option.extend_from_slice(&(data.len() as u16).to_be_bytes());
            option.extend_from_slice(&data);
            match self.action {
                Edns0Action::Unset => {
                    for &(c, start, end) in &options {
                        if c != code {
                            out.extend_from_slice(&opt[start..end]);
                        }
                    }
                    fired = true;
                }
                Edns0Action::Set | Edns0Action::Replace
                    if options.iter().any(|&(c, _, _)| c == code) =>
                {
                    // The first option of the code takes the new data.
                    let mut done = false;
                    for &(c, start, end) in &options {
                        if c == code && !done {
                            out.extend_from_slice(&option);
                            done = true;
                        } else {
                            out.extend_from_slice(&opt[start..end]);
                        }
                    }
                    fired = true;
                }
                // A variable's or a subnet's option is added only where none is.
                Edns0Action::Append if variable && options.iter().any(|&(c, _, _)| c == code) => {
                    return opt.to_vec();
                }
                Edns0Action::Set | Edns0Action::Append => {
                    out.extend_from_slice(opt);
                    out.extend_from_slice(&option);
                    fired = true;
                }
                Edns0Action::Replace => return opt.to_vec(),
            }
            out
        });
        edited && fired
    }
}

/// Which questions a `ttl` or `rcode` rule applies to (the name as earlier rules left it,
/// lower case with its final dot).
#[derive(Debug, Clone)]
enum Pattern {
    Exact(String),
    Prefix(String),
    Suffix(String),
    Substring(String),
    Regex(Regex),
}

impl Pattern {
    fn matches(&self, name: &str) -> bool {
        match self {
            Self::Exact(s) => name == s,
            Self::Prefix(s) => name.starts_with(s.as_str()),
            Self::Suffix(s) => name.ends_with(s.as_str()),
            Self::Substring(s) => name.contains(s.as_str()),
            Self::Regex(re) => re.is_match(name),
        }
    }

    /// CoreDNS's `[exact|prefix|suffix|substring|regex] STRING` of a `what` rule; every string
    /// but a pattern is normalized (lower case, final dot), as CoreDNS does.
    fn parse(what: &str, kind: Option<&str>, s: &str) -> Result<Self, String> {
        Ok(match kind.map(str::to_lowercase).as_deref() {
            None | Some("exact") => Self::Exact(normalize(s)),
            Some("prefix") => Self::Prefix(normalize(s)),
            Some("suffix") => Self::Suffix(normalize(s)),
            Some("substring") => Self::Substring(normalize(s)),
            Some("regex") => {
                if s.len() > MAX_REGEXP {
                    return Err(format!(
                        "regex pattern too long in a {what} rule: {} > {MAX_REGEXP}",
                        s.len()
                    ));
                }
                Self::Regex(
                    Regex::new(s)
                        .map_err(|_| format!("invalid regex pattern in a {what} rule: {s}"))?,
                )
            }
            Some(_) => {
                return Err(format!(
                    "{what} rule supports only exact, prefix, suffix, substring, and regex name matching"
                ));
            }
        })
    }
}

/// CoreDNS's `ttl` rule arguments: `[MATCH] STRING SECONDS|MIN-MAX` (an open end: 0 or
/// 2147483647; `-` alone is refused).
fn ttl_rule(args: &[String]) -> Result<Kind, String> {
    if args.len() < 2 {
        return Err(format!("too few ({}) arguments for a ttl rule", args.len()));
    }
    if args.len() > 3 {
        return Err("many few arguments for a ttl rule".into());
    }
    let value = &args[args.len() - 1];
    let invalid = || format!("invalid TTL '{value}' for a ttl rule");
    let number = |s: &str| s.parse::<u32>().map_err(|_| invalid());
    let (min, max) = match value.split('-').collect::<Vec<_>>().as_slice() {
        [one] => (number(one)?, number(one)?),
        ["", ""] => return Err(invalid()),
        [low, high] => (
            if low.is_empty() { 0 } else { number(low)? },
            if high.is_empty() {
                2_147_483_647
            } else {
                number(high)?
            },
        ),
        _ => return Err(invalid()),
    };
    if min > max {
        return Err(invalid());
    }
    let pattern = match args {
        [name, _] => Pattern::parse("ttl", None, name)?,
        [kind, name, _] => Pattern::parse("ttl", Some(kind), name)?,
        _ => unreachable!("two or three arguments"),
    };
    Ok(Kind::Ttl(pattern, min, max))
}

/// An rcode as CoreDNS's `rcode` rule takes it: a number up to 23 or miekg/dns's name.
fn rcode(s: &str) -> Option<u16> {
    if let Ok(n) = s.parse::<u16>() {
        return (n <= 23).then_some(n);
    }
    crate::wire::rcode_named(&s.to_uppercase())
}

/// CoreDNS's `rcode` rule arguments: `[MATCH] STRING FROM TO`.
fn rcode_rule(args: &[String]) -> Result<Kind, String> {
    if args.len() < 3 {
        return Err(format!(
            "too few ({}) arguments for a rcode rule",
            args.len()
        ));
    }
    if args.len() > 4 {
        return Err("many few arguments for a rcode rule".into());
    }
    let (from, to) = (&args[args.len() - 2], &args[args.len() - 1]);
    let from_code =
        rcode(from).ok_or_else(|| format!("invalid matching RCODE '{from}' for a rcode rule"))?;
    let to_code =
        rcode(to).ok_or_else(|| format!("invalid replacement RCODE '{to}' for a rcode rule"))?;
    let pattern = match args {
        [name, _, _] => Pattern::parse("rcode", None, name)?,
        [kind, name, _, _] => Pattern::parse("rcode", Some(kind), name)?,
        _ => unreachable!("three or four arguments"),
    };
    Ok(Kind::Rcode(pattern, from_code, to_code))
}

#[derive(Debug, Clone)]
struct NameRule {
    matcher: Matcher,
    /// `answer auto` (always for `exact`): the new name turned back into the old one in the
    /// answer's names and values.
    auto: bool,
    /// `answer name` and `answer value` rules, in the order given.
    answers: Vec<Answer>,
}

#[derive(Debug, Clone)]
enum Matcher {
    Exact(String, String),
    Prefix(String, String),
    Suffix(String, String),
    Substring(String, String),
    Regex(Regex, String),
}

/// One response rule: a name or a record's value rewritten.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The record's value (a CNAME's, SRV's, MX's, NS's, PTR's or SOA's name) rather than
    /// its owner.
    value: bool,
    rewriter: Rewriter,
}

/// How a response rule maps a name (as text, with its final dot).
#[derive(Debug, Clone)]
enum Rewriter {
    /// `{N}` groups of the pattern's match put into the replacement.
    Regex(Regex, String),
    /// The name itself, or a name under it, to the replacement (or under it).
    Remap(String, String),
    /// A name ending in the first to the same ending in the second.
    Suffix(String, String),
}

impl Rewriter {
    fn apply(&self, name: &str) -> Option<String> {
        match self {
            Self::Regex(pattern, to) => {
                let groups = pattern.captures(name)?;
                Some(fill(to, &groups))
            }
            Self::Remap(from, to) => {
                if name == from {
                    return Some(to.clone());
                }
                let i = name.len().checked_sub(from.len()).filter(|&i| i > 0)?;
                (name.as_bytes()[i - 1] == b'.' && &name[i..] == from)
                    .then(|| format!("{}{to}", &name[..i]))
            }
            Self::Suffix(suffix, to) => name
                .strip_suffix(suffix.as_str())
                .map(|before| format!("{before}{to}")),
        }
    }
}

/// `to` with each `{N}` replaced by the match's group N.
fn fill(to: &str, groups: &regex::Captures<'_>) -> String {
    let mut out = to.to_string();
    for (i, group) in groups.iter().enumerate() {
        out = out.replace(&format!("{{{i}}}"), group.map_or("", |g| g.as_str()));
    }
    out
}

/// What the rules that fired do to the response: their answer rules, in the order they were
/// gathered (applied last first).
#[derive(Debug, Clone)]
pub struct Undo {
    answers: Vec<Answer>,
    /// `ttl` rules that fired: each record's TTL brought into each range, the last first.
    ttls: Vec<(u32, u32)>,
    /// `rcode` rules that fired: the response's rcode changed by each, the last first.
    rcodes: Vec<(u16, u16)>,
    /// `cname` rules that fired: the first that renames a CNAME target of the answer does.
    cnames: Vec<Matcher>,
    /// The new name is no domain name: the query is answered SERVFAIL, as CoreDNS does.
    pub invalid: bool,
}

/// CoreDNS's `plugin.Name(s).Normalize()`: lower case, with a final dot.
fn normalize(s: &str) -> String {
    let mut s = s.to_lowercase();
    if !s.ends_with('.') {
        s.push('.');
    }
    s
}

fn pattern(from: &str, to: &str) -> Result<Regex, String> {
    if from.len() > MAX_REGEXP {
        return Err(format!(
            "regex pattern too long: {} > {MAX_REGEXP}",
            from.len()
        ));
    }
    let re = Regex::new(from).map_err(|_| format!("invalid regex matching pattern: {from}"))?;
    let used = (0..=100)
        .filter(|i| to.contains(&format!("{{{i}}}")))
        .count();
    if used > re.captures_len() - 1 {
        return Err(format!(
            "the rewrite regex pattern ({to}) uses more subexpressions than its corresponding matching regex pattern ({from})"
        ));
    }
    Ok(re)
}

fn answer_rules(kind: &str, args: &[String]) -> Result<(bool, Vec<Answer>), String> {
    if args.len() < 2 {
        return Err(format!("invalid arguments for {kind} rule"));
    }
    let (mut auto, mut rules, mut names) = (false, Vec::new(), 0);
    let mut at = 0;
    let mut first = true;
    while at < args.len() {
        if first && args[at] != "answer" {
            return Err(format!(
                "exceeded the number of arguments for a non-answer rule argument for {kind} rule"
            ));
        }
        first = false;
        if args[at] == "answer" {
            at += 1;
        }
        let Some(what) = args.get(at) else {
            return Err(format!("type missing for answer rule for {kind} rule"));
        };
        at += 1;
        match what.as_str() {
            "auto" => auto = true,
            "name" | "value" => {
                let (Some(from), Some(to)) = (args.get(at), args.get(at + 1)) else {
                    return Err(format!(
                        "{what} answer rule for {kind} rule: 2 arguments required"
                    ));
                };
                let re = pattern(from, to)
                    .map_err(|e| format!("{what} answer rule for {kind} rule: {e}"))?;
                rules.push(Answer {
                    value: what == "value",
                    rewriter: Rewriter::Regex(re, normalize(to)),
                });
                names += usize::from(what == "name");
                at += 2;
            }
            other => {
                return Err(format!(
                    "invalid type {other:?} for answer rule for {kind} rule"
                ));
            }
        }
    }
    if auto && names > 0 {
        return Err(
            "auto name answer rule cannot be combined with explicit name anwer rules".into(),
        );
    }
    Ok((auto, rules))
}

/// CoreDNS's `cname [exact|prefix|suffix|substring|regex] FROM TO`: FROM and TO lower case,
/// an exact one's normalized.
fn cname_rule(args: &[String]) -> Result<Matcher, String> {
    let (kind, from, to) = match args {
        [from, to] => ("exact".to_string(), from.to_lowercase(), to.to_lowercase()),
        [kind, from, to] => (kind.to_lowercase(), from.to_lowercase(), to.to_lowercase()),
        _ => {
            return Err(format!(
                "too few ({}) arguments for a cname rule",
                args.len()
            ));
        }
    };
    Ok(match kind.as_str() {
        "exact" => Matcher::Exact(normalize(&from), normalize(&to)),
        "prefix" => Matcher::Prefix(from, to),
        "suffix" => Matcher::Suffix(from, to),
        "substring" => Matcher::Substring(from, to),
        "regex" => {
            if from.len() > MAX_REGEXP {
                return Err(format!(
                    "regex pattern too long in a cname rule: {} > {MAX_REGEXP}",
                    from.len()
                ));
            }
            let re = Regex::new(&from)
                .map_err(|e| format!("invalid cname rewrite regex pattern: {e}"))?;
            Matcher::Regex(re, to)
        }
        other => return Err(format!("unknown cname rewrite type: {other}")),
    })
}

fn name_rule(args: &[String]) -> Result<NameRule, String> {
    if args.len() < 2 {
        return Err("too few arguments for a name rule".into());
    }
    let (kind, from, to) = if args.len() == 2 {
        (
            "exact".to_string(),
            normalize(&args[0]),
            normalize(&args[1]),
        )
    } else {
        let kind = args[0].to_lowercase();
        if kind == "regex" {
            (kind, args[1].clone(), args[2].clone())
        } else {
            (kind, args[1].to_lowercase(), args[2].to_lowercase())
        }
    };
    let (auto, answers) = match args.get(3..) {
        Some(rest) if !rest.is_empty() => answer_rules(&kind, rest)?,
        _ => (false, Vec::new()),
    };
    let matcher = match kind.as_str() {
        "exact" => Matcher::Exact(normalize(&from), normalize(&to)),
        "prefix" => Matcher::Prefix(from, to),
        "suffix" => {
            let (from, to) = (with_dot(&from), with_dot(&to));
            Matcher::Suffix(from, to)
        }
        "substring" => Matcher::Substring(from, to),
        "regex" => Matcher::Regex(pattern(&from, &to)?, normalize(&to)),
        other => {
            return Err(format!(
                "name rule supports only exact, prefix, suffix, substring, and regex name matching, received: {other}"
            ));
        }
    };
    // A suffix rule's `auto` is its own suffix swapped back; exact ones are always reverted.
    let mut answers = answers;
    let auto = match &matcher {
        Matcher::Exact(..) => true,
        Matcher::Suffix(from, to) if auto => {
            let back = Rewriter::Suffix(to.clone(), from.clone());
            let mut both = vec![
                Answer {
                    value: false,
                    rewriter: back.clone(),
                },
                Answer {
                    value: true,
                    rewriter: back,
                },
            ];
            both.append(&mut answers);
            answers = both;
            false
        }
        _ => auto,
    };
    Ok(NameRule {
        matcher,
        auto,
        answers,
    })
}

fn with_dot(s: &str) -> String {
    if s.ends_with('.') {
        s.to_string()
    } else {
        format!("{s}.")
    }
}

/// CoreDNS's `newRule`: `[continue|stop] FIELD ARGS...`.
fn rule(args: &[String]) -> Result<Rule, String> {
    let Some(first) = args.first() else {
        return Err("no rule type specified for rewrite".into());
    };
    let (stop, rest) = match first.to_lowercase().as_str() {
        mode @ ("continue" | "stop") => {
            if args.len() < 2 {
                return Err(format!("{mode} rule must begin with a rule type"));
            }
            (mode == "stop", &args[1..])
        }
        _ => (true, args),
    };
    let field = rest[0].to_lowercase();
    let args = &rest[1..];
    let kind = match field.as_str() {
        "answer" => return Err("response rewrites must begin with a name rule".into()),
        "name" => Kind::Name(name_rule(args)?),
        "type" | "class" if args.len() != 2 => {
            return Err(format!("{field} rules must have exactly two arguments"));
        }
        "type" => {
            let t = |s: &String| {
                let upper = s.to_uppercase();
                upper
                    .parse::<RecordType>()
                    .ok()
                    .filter(|t| !matches!(t, RecordType::Unknown(_)))
                    .ok_or(format!("invalid type {upper:?}"))
            };
            Kind::Type(t(&args[0])?, t(&args[1])?)
        }
        "class" => {
            let c = |s: &String| match s.to_uppercase().as_str() {
                "IN" => Ok(DNSClass::IN),
                "CH" => Ok(DNSClass::CH),
                "HS" => Ok(DNSClass::HS),
                other => Err(format!("invalid class {other:?}")),
            };
            Kind::Class(c(&args[0])?, c(&args[1])?)
        }
        "ttl" => ttl_rule(args)?,
        "rcode" => rcode_rule(args)?,
        "edns0" => edns0_rule(args)?,
        "cname" => Kind::Cname(cname_rule(args)?),
        _ => return Err(format!("invalid rule type {first:?}")),
    };
    Ok(Rule { stop, kind })
}

impl Setup for Rewrite {
    fn parse(d: &Directive, _: &Context<'_>) -> Result<Self, ConfigError> {
        let mut args = d.args.clone();
        // A block's tokens, line after line, are the rule's, as CoreDNS reads them.
        if args.len() < 2 {
            for o in &d.block {
                args.push(o.name.clone());
                args.extend(o.args.iter().cloned());
            }
        }
        let rule = rule(&args).map_err(|m| directive_err(d, "rewrite", m))?;
        Ok(Self { rules: vec![rule] })
    }

    /// Each `rewrite` line of a block is one more rule, after the earlier ones.
    fn merge(&mut self, later: Self) -> bool {
        self.rules.extend(later.rules);
        true
    }

    fn build(&self, b: &mut Building<'_>) -> Result<(), SetupError> {
        b.chain.push(Plugin::Rewrite(self.clone()));
        Ok(())
    }
}

impl Rewrite {
    /// The question after the rules: its name (lower case, final dot), type and class, and
    /// the response rules of those that fired; `None` when none fired.
    fn apply(
        &self,
        name: &str,
        qtype: RecordType,
        class: DNSClass,
        query: &mut Vec<u8>,
        from: &Asker,
    ) -> Option<Applied> {
        let mut now = Applied {
            name: name.to_string(),
            qtype,
            class,
            answers: Vec::new(),
            ttls: Vec::new(),
            rcodes: Vec::new(),
            cnames: Vec::new(),
            edns0_revert: false,
        };
        let mut fired = false;
        for rule in &self.rules {
            let done = match &rule.kind {
                Kind::Type(from, to) => (now.qtype == *from).then(|| now.qtype = *to).is_some(),
                Kind::Class(from, to) => (now.class == *from).then(|| now.class = *to).is_some(),
                Kind::Ttl(pattern, min, max) => pattern
                    .matches(&now.name)
                    .then(|| now.ttls.push((*min, *max)))
                    .is_some(),
                Kind::Rcode(pattern, from, to) => pattern
                    .matches(&now.name)
                    .then(|| now.rcodes.push((*from, *to)))
                    .is_some(),
                Kind::Edns0(rule) => {
                    let fired = rule.apply(query, &now.name, now.qtype, from);
                    now.edns0_revert |= fired && rule.revert;
                    fired
                }
                // Fires for every question, as CoreDNS's does: its work is on the response.
                Kind::Cname(m) => {
                    now.cnames.push(m.clone());
                    true
                }
                Kind::Name(r) => match r.rewrite(&now.name) {
                    Some(new) => {
                        if r.auto {
                            now.answers.push(Answer {
                                value: false,
                                rewriter: Rewriter::Remap(new.clone(), now.name.clone()),
                            });
                            now.answers.push(Answer {
                                value: true,
                                rewriter: Rewriter::Remap(new.clone(), now.name.clone()),
                            });
                        }
                        now.answers.extend(r.answers.iter().cloned());
                        now.name = new;
                        true
                    }
                    None => false,
                },
            };
            if done {
                fired = true;
                if rule.stop {
                    break;
                }
            }
        }
        fired.then_some(now)
    }

    /// Changes the answer's record as the rules that fired say, the last gathered first.
    fn revert_record(undo: &Undo, record: &mut Record) {
        for &(min, max) in undo.ttls.iter().rev() {
            record.set_ttl(record.ttl().clamp(min, max));
        }
        for answer in undo.answers.iter().rev() {
            let rewriter = &answer.rewriter;
            if answer.value {
                revert_value(rewriter, record);
            } else if let Some(new) = rewriter.apply(&record.name().to_ascii())
                && let Ok(name) = Name::from_ascii(&new)
            {
                record.set_name(name);
            }
        }
    }
}

/// A record's name-valued data (CNAME, SRV, MX, NS, PTR, SOA's MNAME) rewritten.
fn revert_value(rewriter: &Rewriter, record: &mut Record) {
    let map = |name: &Name| {
        rewriter
            .apply(&name.to_ascii())
            .and_then(|n| Name::from_ascii(&n).ok())
    };
    let data = match record.data() {
        RData::CNAME(c) => map(&c.0).map(|n| RData::CNAME(CNAME(n))),
        RData::PTR(p) => map(&p.0).map(|n| RData::PTR(PTR(n))),
        RData::NS(ns) => map(&ns.0).map(|n| RData::NS(NS(n))),
        RData::MX(mx) => map(mx.exchange()).map(|n| RData::MX(MX::new(mx.preference(), n))),
        RData::SRV(s) => {
            map(s.target()).map(|n| RData::SRV(SRV::new(s.priority(), s.weight(), s.port(), n)))
        }
        RData::SOA(soa) => map(soa.mname()).map(|n| {
            RData::SOA(SOA::new(
                n,
                soa.rname().clone(),
                soa.serial(),
                soa.refresh(),
                soa.retry(),
                soa.expire(),
                soa.minimum(),
            ))
        }),
        _ => None,
    };
    if let Some(data) = data {
        record.set_data(data);
    }
}

struct Applied {
    name: String,
    qtype: RecordType,
    class: DNSClass,
    answers: Vec<Answer>,
    ttls: Vec<(u32, u32)>,
    rcodes: Vec<(u16, u16)>,
    cnames: Vec<Matcher>,
    /// An `edns0` rule with `revert` fired: the response is written anew, without the query's
    /// options.
    edns0_revert: bool,
}

impl Applied {
    /// Whether the response needs anything turned back (else the query, its options changed
    /// in place, is answered as any other).
    fn undoes(&self, name: &str, qtype: RecordType, class: DNSClass) -> bool {
        self.name != name
            || self.qtype != qtype
            || self.class != class
            || !self.answers.is_empty()
            || !self.ttls.is_empty()
            || !self.rcodes.is_empty()
            || !self.cnames.is_empty()
            || self.edns0_revert
    }
}

impl NameRule {
    /// The new name, when this rule matches `name`.
    fn rewrite(&self, name: &str) -> Option<String> {
        self.matcher.rewrite(name)
    }
}

impl Matcher {
    /// The new name, when `name` matches.
    fn rewrite(&self, name: &str) -> Option<String> {
        match self {
            Matcher::Exact(from, to) => (name == from).then(|| to.clone()),
            Matcher::Prefix(from, to) => {
                name.strip_prefix(from.as_str()).map(|r| format!("{to}{r}"))
            }
            Matcher::Suffix(from, to) => name
                .strip_suffix(from.as_str())
                .map(|before| format!("{before}{to}")),
            Matcher::Substring(from, to) => name
                .contains(from.as_str())
                .then(|| name.replace(from.as_str(), to)),
            Matcher::Regex(pattern, to) => pattern.captures(name).map(|g| fill(to, &g)),
        }
    }
}

impl Phases for Rewrite {
    const PREPARES: bool = true;

    /// The question rewritten in place: its name, type and class as the rules leave them,
    /// the rest of the query after it as it was.
    fn prepare(&self, query: &mut Vec<u8>, from: &Asker) -> Option<Revert> {
        let msg = Message::from_vec(query).ok()?;
        let [question] = msg.queries() else {
            return None;
        };
        let name = question.name().to_lowercase().to_ascii();
        let (qtype, class) = (question.query_type(), question.query_class());
        let applied = self.apply(&name, qtype, class, query, from)?;
        if !applied.undoes(&name, qtype, class) {
            return None;
        }
        let end = wire::question_end(query)?;
        let undo = |invalid| Undo {
            answers: applied.answers.clone(),
            ttls: applied.ttls.clone(),
            rcodes: applied.rcodes.clone(),
            cnames: applied.cnames.clone(),
            invalid,
        };
        let Some(new) = Name::from_ascii(&applied.name)
            .ok()
            .filter(|n| n.is_fqdn() && n.len() <= 255)
        else {
            return Some(Revert::Rewrite(undo(true)));
        };
        let mut rewritten = query[..HEADER_LEN].to_vec();
        rewritten.extend(wire::name_bytes(&new));
        rewritten.extend_from_slice(&u16::from(applied.qtype).to_be_bytes());
        rewritten.extend_from_slice(&u16::from(applied.class).to_be_bytes());
        rewritten.extend_from_slice(&query[end..]);
        *query = rewritten;
        Some(Revert::Rewrite(undo(false)))
    }

    fn revert(&self, revert: &Revert, record: &mut Record) {
        let Revert::Rewrite(undo) = revert;
        Self::revert_record(undo, record);
    }

    fn retarget(&self, revert: &Revert, target: &Name) -> Option<Name> {
        let Revert::Rewrite(undo) = revert;
        let target = target.to_lowercase().to_ascii();
        undo.cnames
            .iter()
            .find_map(|m| m.rewrite(&target))
            .and_then(|new| Name::from_ascii(new).ok())
            .filter(Name::is_fqdn)
    }

    fn revert_rcode(&self, revert: &Revert, rcode: u16) -> u16 {
        let Revert::Rewrite(undo) = revert;
        undo.rcodes
            .iter()
            .rev()
            .fold(rcode, |now, &(from, to)| if now == from { to } else { now })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::Config;
    use crate::plugin::testing::Served;

    /// The cluster, with `RULES` in front.
    const COREFILE: &str = "
    .:0 {
        RULES
        kubernetes cluster.local in-addr.arpa {
            manifests DATA
            ttl 5
        }
    }";

    fn served(rules: &str) -> Served {
        Served::new(&COREFILE.replace("RULES", rules))
    }

    #[test]
    fn name_rules_of_every_match_type_give_the_client_its_own_name_back() {
        for (rules, asked, answer) in [
            // exact: always reverted (nodelocaldns's form).
            (
                "rewrite name git.my.domain web.prod.svc.cluster.local",
                "Git.My.Domain. A",
                "git.my.domain. 5 IN A 10.96.12.34",
            ),
            // suffix with answer auto.
            (
                "rewrite name suffix .example.org .prod.svc.cluster.local answer auto",
                "web.example.org. A",
                "web.example.org. 5 IN A 10.96.12.34",
            ),
            // prefix with answer auto.
            (
                "rewrite name prefix www- web. answer auto",
                "www-prod.svc.cluster.local. A",
                "www-prod.svc.cluster.local. 5 IN A 10.96.12.34",
            ),
            // substring with answer auto.
            (
                "rewrite name substring .staging. .prod. answer auto",
                "web.staging.svc.cluster.local. A",
                "web.staging.svc.cluster.local. 5 IN A 10.96.12.34",
            ),
            // AKS's documented regex form, with an explicit answer rule.
            (
                "rewrite stop {
                    name regex (.*)\\.example\\.com {1}.prod.svc.cluster.local
                    answer name (.*)\\.prod\\.svc\\.cluster\\.local {1}.example.com
                }",
                "web.example.com. A",
                "web.example.com. 5 IN A 10.96.12.34",
            ),
            // vcluster's: a regex without an answer rule. The question comes back as asked,
            // the records under the name that answered.
            (
                "rewrite name regex .*\\.nodes\\.vcluster\\.com web.prod.svc.cluster.local",
                "node1.nodes.vcluster.com. A",
                "web.prod.svc.cluster.local. 5 IN A 10.96.12.34",
            ),
        ] {
            let served = served(rules);
            let got = served.ask(asked);
            let want = format!(";; NOERROR aa rd ra\n{answer}");
            assert_eq!(got, want, "{rules}\n{asked}");
            assert!(
                !served.fast(asked),
                "a rewritten question goes the full way"
            );
        }
    }

    #[test]
    fn values_types_and_the_order_of_rules() {
        // `answer value`: a PTR's target, under the question's name turned back.
        let s = served(
            "rewrite stop {
                name suffix .arpa .arpa
                answer value (.*)\\.svc\\.cluster\\.local\\. {1}.example.org.
            }",
        );
        s.expect(
            "34.12.96.10.in-addr.arpa. PTR",
            ";; NOERROR aa rd ra
            34.12.96.10.in-addr.arpa. 5 IN PTR web.prod.example.org.",
        );
        // `continue`: the next rule sees the name the first left; `stop` ends the walk.
        let s = served(
            "rewrite continue name exact a.example. b.example.
            rewrite name exact b.example. web.prod.svc.cluster.local.
            rewrite name exact web.prod.svc.cluster.local. nowhere.example.",
        );
        s.expect(
            "a.example. A",
            ";; NOERROR aa rd ra
            a.example. 5 IN A 10.96.12.34",
        );
        // type: the question's type changes, the client sees its own.
        let s =
            served("rewrite type MX A\nrewrite name exact m.example. web.prod.svc.cluster.local.");
        s.expect(
            "web.prod.svc.cluster.local. MX",
            ";; NOERROR aa rd ra
            web.prod.svc.cluster.local. 5 IN A 10.96.12.34",
        );
        // A name that is no domain name after the rule: SERVFAIL, the question as asked.
        let s = served(&format!(
            "rewrite name regex (.*)\\.long\\. {{1}}{}.prod.svc.cluster.local.",
            "x".repeat(70)
        ));
        s.expect("web.long. A", ";; SERVFAIL rd");
        // ttl: every record of a matching question's answer into the range (one value, or
        // either end open), the cluster's 5 s and an SOA's alike.
        for (rule, ttl) in [
            ("rewrite ttl web.prod.svc.cluster.local. 30", 30),
            ("rewrite ttl suffix .svc.cluster.local 10-20", 10),
            ("rewrite ttl regex ^web\\. -3", 3),
            ("rewrite ttl prefix web. 60-", 60),
            ("rewrite ttl substring prod 1-10", 5),
        ] {
            served(rule).expect(
                "web.prod.svc.cluster.local. A",
                &format!(
                    ";; NOERROR aa rd ra
                    web.prod.svc.cluster.local. {ttl} IN A 10.96.12.34"
                ),
            );
        }
        // rcode: NXDOMAIN made NOERROR for one name, its SOA's TTL set by a ttl rule that
        // fired first (`continue`); another name keeps its NXDOMAIN.
        let s = served(
            "rewrite continue ttl regex ^gone\\. 60
            rewrite rcode gone.prod.svc.cluster.local NXDOMAIN NOERROR",
        );
        let got = s.ask("gone.prod.svc.cluster.local. A");
        assert!(
            got.starts_with(";; NOERROR aa rd\n;; authority\ncluster.local. 60 IN SOA"),
            "{got}"
        );
        let got = s.ask("other.prod.svc.cluster.local. A");
        assert!(got.starts_with(";; NXDOMAIN aa rd\n"), "{got}");
        // A rule whose rcode does not match changes nothing.
        let s = served("rewrite rcode web.prod.svc.cluster.local SERVFAIL REFUSED");
        s.expect(
            "web.prod.svc.cluster.local. A",
            ";; NOERROR aa rd ra
            web.prod.svc.cluster.local. 5 IN A 10.96.12.34",
        );
        // Names no rule matches: untouched, on the fast path.
        let s = served("rewrite name exact a.example. web.prod.svc.cluster.local.");
        assert!(s.fast("web.prod.svc.cluster.local. A"));
    }

    /// The options of `query`'s OPT record: code and data.
    fn options(query: &[u8]) -> Option<Vec<(u16, Vec<u8>)>> {
        let opt = wire::last_opt(query)?;
        let data = &query[opt.data];
        Some(
            wire::edns_options(data)
                .into_iter()
                .map(|(code, start, end)| (code, data[start + 4..end].to_vec()))
                .collect(),
        )
    }

    #[test]
    fn edns0_rules_set_append_replace_and_unset_as_coredns() {
        let rewrite = |lines: &str| {
            let text = format!(".:0 {{\n{lines}\n}}\n");
            let config = Config::from_text(&text, 0, Path::new(".")).unwrap();
            config.servers[0].get::<Rewrite>().unwrap().clone()
        };
        let query = |with: &[(u16, &[u8])], edns: bool| {
            let mut m = Message::new();
            m.add_query(hickory_proto::op::Query::query(
                Name::from_ascii("www.example.org.").unwrap(),
                RecordType::A,
            ));
            let mut bytes = m.to_vec().unwrap();
            if edns {
                wire::edit_opt(&mut bytes, 1232, 0, |_| {
                    let mut out = Vec::new();
                    for (code, data) in with {
                        out.extend_from_slice(&code.to_be_bytes());
                        out.extend_from_slice(&(data.len() as u16).to_be_bytes());
                        out.extend_from_slice(data);
                    }
                    out
                });
            }
            bytes
        };
        let from = Asker {
            src: "[2001:db8:1234:5678::9]:5353".parse().unwrap(),
            transport: crate::wire::Transport::Tcp,
        };
        type Case<'a> = (&'a str, &'a [(u16, &'a [u8])], bool, Vec<(u16, Vec<u8>)>);
        let cases: Vec<Case<'_>> = vec![
            // No OPT: one is added, with the option.
            (
                "rewrite edns0 local set 0xffee abcd",
                &[],
                false,
                vec![(0xffee, b"abcd".to_vec())],
            ),
            // set replaces the first of its code; append adds another.
            (
                "rewrite edns0 local set 0xffee 0x01",
                &[(0xffee, b"x"), (10, b"k"), (0xffee, b"y")],
                true,
                vec![
                    (0xffee, vec![1]),
                    (10, b"k".to_vec()),
                    (0xffee, b"y".to_vec()),
                ],
            ),
            (
                "rewrite edns0 local append 0xffee 0x01",
                &[(0xffee, b"x")],
                true,
                vec![(0xffee, b"x".to_vec()), (0xffee, vec![1])],
            ),
            // replace only where one is.
            (
                "rewrite edns0 local replace 0xffee z",
                &[(10, b"k")],
                true,
                vec![(10, b"k".to_vec())],
            ),
            // unset removes every one of the code.
            (
                "rewrite edns0 local unset 0xffee",
                &[(0xffee, b"x"), (10, b"k"), (0xffee, b"y")],
                true,
                vec![(10, b"k".to_vec())],
            ),
            // Variables: the asker's and the question's.
            (
                "rewrite continue edns0 local set 1 {client_port}\nrewrite continue edns0 local set 2 {protocol}\nrewrite edns0 local set 3 {qtype}",
                &[],
                true,
                vec![
                    (1, 5353u16.to_be_bytes().to_vec()),
                    (2, b"tcp".to_vec()),
                    (3, vec![0, 1]),
                ],
            ),
            // A metadata label nobody provides: nothing.
            (
                "rewrite edns0 local set 1 {kubernetes/client-namespace}",
                &[],
                true,
                vec![],
            ),
            // nsid: an empty one; subnet: the client's /56, in seven bytes.
            (
                "rewrite edns0 nsid set",
                &[(3, b"old")],
                true,
                vec![(3, vec![])],
            ),
            (
                "rewrite edns0 subnet set 24 56",
                &[],
                true,
                vec![(
                    8,
                    vec![0, 2, 56, 0, 0x20, 0x01, 0x0d, 0xb8, 0x12, 0x34, 0x56],
                )],
            ),
            // A subnet is not appended where one is.
            (
                "rewrite edns0 subnet append 24 56",
                &[(8, &[0, 1, 8, 0, 10])],
                true,
                vec![(8, vec![0, 1, 8, 0, 10])],
            ),
        ];
        for (lines, with, edns, want) in cases {
            let mut q = query(with, edns);
            let revert = rewrite(lines).prepare(&mut q, &from);
            assert!(revert.is_none(), "{lines}: nothing to turn back");
            assert_eq!(options(&q), Some(want), "{lines}");
            assert!(Message::from_vec(&q).is_ok(), "{lines}: still a message");
        }
        // `revert`: the response is written anew.
        let mut q = query(&[], true);
        assert!(
            rewrite("rewrite edns0 local set 1 a revert")
                .prepare(&mut q, &from)
                .is_some()
        );
    }

    fn parsed(lines: &str) -> Result<usize, String> {
        let text = format!(".:0 {{\n{lines}\n}}\n");
        let config = Config::from_text(&text, 0, Path::new(".")).map_err(|e| e.to_string())?;
        Ok(config.servers[0]
            .get::<Rewrite>()
            .expect("rewrite")
            .rules
            .len())
    }

    #[test]
    fn reads_coredns_forms_and_refuses_the_rest_with_its_messages() {
        for (lines, rules) in [
            ("rewrite name a.example b.example", 1),
            (
                "rewrite stop name regex (.*)\\.a {1}.b answer name (.*)\\.b {1}.a",
                1,
            ),
            ("rewrite continue name suffix .a .b answer auto", 1),
            (
                "rewrite name regex (.*)\\.a {1}.b answer name (.*)\\.b {1}.a value x y",
                1,
            ),
            ("rewrite type ANY HINFO\nrewrite class CH IN", 2),
            (
                "rewrite ttl a.example 30\nrewrite ttl regex (.*)\\.b 10-\nrewrite ttl suffix b -30",
                3,
            ),
            (
                "rewrite continue {\n rcode regex (.*)\\.coredns\\.rocks SERVFAIL NOERROR\n}",
                1,
            ),
            (
                "rewrite rcode exact a.example 2 0\nrewrite rcode a.example BADCOOKIE nxdomain",
                2,
            ),
            (
                "rewrite stop {\n name regex (.*)\\.a {1}.b\n answer name (.*)\\.b {1}.a\n}",
                1,
            ),
            (
                "rewrite cname a.example b.example\nrewrite cname regex (.*)\\.a {1}.b\nrewrite continue cname suffix .a .b",
                3,
            ),
        ] {
            assert_eq!(parsed(lines), Ok(rules), "{lines}");
        }
        for (lines, error) in [
            ("rewrite", "no rule type specified"),
            ("rewrite stop", "stop rule must begin with a rule type"),
            (
                "rewrite answer name a b",
                "response rewrites must begin with a name rule",
            ),
            ("rewrite name a", "too few arguments for a name rule"),
            ("rewrite name fuzzy a b", "supports only exact, prefix"),
            ("rewrite name regex ( b", "invalid regex matching pattern"),
            ("rewrite name regex (a) {1}{2}", "uses more subexpressions"),
            (
                "rewrite name suffix a b answer auto answer name x y",
                "cannot be combined",
            ),
            ("rewrite name suffix a b answer weird", "invalid type"),
            (
                "rewrite name suffix a b extra",
                "invalid arguments for suffix rule",
            ),
            (
                "rewrite name suffix a b extra more",
                "exceeded the number of arguments",
            ),
            ("rewrite type A", "exactly two arguments"),
            ("rewrite type A NOPE", "invalid type \"NOPE\""),
            ("rewrite class IN XX", "invalid class"),
            ("rewrite bogus a b", "invalid rule type"),
            ("rewrite cname a", "too few (1) arguments for a cname rule"),
            (
                "rewrite cname fuzzy a b",
                "unknown cname rewrite type: fuzzy",
            ),
            (
                "rewrite cname regex ( b",
                "invalid cname rewrite regex pattern",
            ),
            ("rewrite ttl a", "too few (1) arguments for a ttl rule"),
            (
                "rewrite ttl exact a 1 2",
                "many few arguments for a ttl rule",
            ),
            ("rewrite ttl a x", "invalid TTL 'x' for a ttl rule"),
            ("rewrite ttl a -", "invalid TTL '-' for a ttl rule"),
            ("rewrite ttl a 30-10", "invalid TTL '30-10'"),
            ("rewrite ttl fuzzy a 10", "ttl rule supports only exact"),
            (
                "rewrite ttl regex ( 10",
                "invalid regex pattern in a ttl rule",
            ),
            (
                "rewrite rcode a 2",
                "too few (2) arguments for a rcode rule",
            ),
            ("rewrite rcode a BOGUS 0", "invalid matching RCODE 'BOGUS'"),
            ("rewrite rcode a 2 24", "invalid replacement RCODE '24'"),
            (
                "rewrite rcode fuzzy a 2 0",
                "rcode rule supports only exact",
            ),
            ("rewrite edns0 local", "too few arguments for an EDNS0 rule"),
            (
                "rewrite edns0 local toggle 1 2",
                "invalid action: \"toggle\"",
            ),
            (
                "rewrite edns0 local set 1",
                "EDNS0 local rules require three or four args",
            ),
            ("rewrite edns0 local set x 1", "invalid syntax"),
            ("rewrite edns0 local set 1 0xzz", "invalid byte"),
            (
                "rewrite edns0 local set 1 {nope}",
                "unsupported variable name \"{nope}\"",
            ),
            (
                "rewrite edns0 local unset",
                "local unset action requires exactly two arguments",
            ),
            (
                "rewrite edns0 nsid set 1",
                "EDNS0 NSID rules can accept no more than one arg",
            ),
            (
                "rewrite edns0 nsid unset 1",
                "nsid unset action requires exactly one argument",
            ),
            (
                "rewrite edns0 subnet set 33 56",
                "invalid IPv4 bit mask length 33",
            ),
            (
                "rewrite edns0 subnet set 24 129",
                "invalid IPv6 bit mask length 129",
            ),
            (
                "rewrite edns0 subnet set 24",
                "EDNS0 subnet rules require three or four args",
            ),
            ("rewrite edns0 cookie set", "invalid rule type \"cookie\""),
        ] {
            let got = parsed(lines).expect_err(lines);
            assert!(got.contains(error), "{lines}: {got}");
        }
    }
}
