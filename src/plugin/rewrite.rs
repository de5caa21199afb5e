//! `rewrite`: the question is changed before the rest of the chain, the cache and an upstream
//! see it, and the client gets its own question back, with the answer's names turned back as
//! the rule says (CoreDNS's `rewrite`: `name` with `exact`, `prefix`, `suffix`, `substring` and
//! `regex` matches and `answer auto|name|value`, `type`, `class`; `stop` and `continue`).
//!
//! Each `rewrite` line is one rule; rules are tried in order on the question as the earlier
//! ones left it, until one that fired says `stop` (the default). The response rules of the
//! rules that fired are applied to every record of the response, the last rule's first.

use hickory_proto::op::Message;
use hickory_proto::rr::rdata::{CNAME, MX, NS, PTR, SOA, SRV};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use regex::Regex;

use super::setup::{Building, Context, Setup, SetupError};
use super::{Phases, Plugin, Revert};
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
        "edns0" | "ttl" | "cname" | "rcode" => {
            return Err(format!("{field} rules are not supported yet"));
        }
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
    fn apply(&self, name: &str, qtype: RecordType, class: DNSClass) -> Option<Applied> {
        let mut now = Applied {
            name: name.to_string(),
            qtype,
            class,
            answers: Vec::new(),
        };
        let mut fired = false;
        for rule in &self.rules {
            let done = match &rule.kind {
                Kind::Type(from, to) => (now.qtype == *from).then(|| now.qtype = *to).is_some(),
                Kind::Class(from, to) => (now.class == *from).then(|| now.class = *to).is_some(),
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
}

impl NameRule {
    /// The new name, when this rule matches `name`.
    fn rewrite(&self, name: &str) -> Option<String> {
        match &self.matcher {
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
    fn prepare(&self, query: &mut Vec<u8>) -> Option<Revert> {
        let msg = Message::from_vec(query).ok()?;
        let [question] = msg.queries() else {
            return None;
        };
        let end = wire::question_end(query)?;
        let name = question.name().to_lowercase().to_ascii();
        let applied = self.apply(&name, question.query_type(), question.query_class())?;
        let answers = applied.answers;
        let Some(new) = Name::from_ascii(&applied.name)
            .ok()
            .filter(|n| n.is_fqdn() && n.len() <= 255)
        else {
            return Some(Revert::Rewrite(Undo {
                answers,
                invalid: true,
            }));
        };
        let mut rewritten = query[..HEADER_LEN].to_vec();
        rewritten.extend(wire::name_bytes(&new));
        rewritten.extend_from_slice(&u16::from(applied.qtype).to_be_bytes());
        rewritten.extend_from_slice(&u16::from(applied.class).to_be_bytes());
        rewritten.extend_from_slice(&query[end..]);
        *query = rewritten;
        Some(Revert::Rewrite(Undo {
            answers,
            invalid: false,
        }))
    }

    fn revert(&self, revert: &Revert, record: &mut Record) {
        let Revert::Rewrite(undo) = revert;
        Self::revert_record(undo, record);
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
        // Names no rule matches: untouched, on the fast path.
        let s = served("rewrite name exact a.example. web.prod.svc.cluster.local.");
        assert!(s.fast("web.prod.svc.cluster.local. A"));
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
                "rewrite stop {\n name regex (.*)\\.a {1}.b\n answer name (.*)\\.b {1}.a\n}",
                1,
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
        ] {
            let got = parsed(lines).expect_err(lines);
            assert!(got.contains(error), "{lines}: {got}");
        }
    }
}
