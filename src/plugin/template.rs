//! `template CLASS TYPE [ZONE...] { match REGEX...; answer|additional|authority RR...; rcode
//! CODE; ederror CODE [REASON]; fallthrough [ZONE...] }`: answers made from the question, as CoreDNS's `template`
//! makes them. The templates of a block are tried in order for a question in their zones, of
//! their class and type (`ANY` matches all): the first whose `match` holds answers, with `rcode`
//! (NOERROR by default) and `ederror`'s extended DNS error, authoritative, and each RR template rendered and read as a zone-file
//! line; a question in a template's zones that no regex matches goes on to the next template
//! under `fallthrough`, and is SERVFAIL without it.
//!
//! The RR templates are Go templates in CoreDNS; this build renders the fields real Corefiles
//! use (`.Name`, `.Zone`, `.Class`, `.Type`, `.Remote`, `.Regex`, `index .Match N`, `parseInt`,
//! `index .Group "NAME"`, `.Group.NAME`) and refuses any other action at start, naming it.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{DNSClass, LowerName, Name, Record, RecordType};
use regex::Regex;

use super::setup::{Building, Context, Setup, SetupError};
use super::{Fast, Outcome, Phases, Plugin, Reply, Request};
use crate::corefile::{ConfigError, Directive, Fallthrough, directive_err, zone_list};
use crate::plugin::view::expr::{Expr, Facts, Scope};
use crate::wire::{self, Owner, Zones};

/// CoreDNS's limit on a pattern's length.
const MAX_REGEXP: usize = 10000;

/// The block's `template` lines, in order.
#[derive(Debug, Clone)]
pub struct Template {
    templates: Vec<One>,
    /// Every template's zones: a question outside them passes on at once.
    zones: Zones,
    /// With `prometheus`: CoreDNS's template counters.
    counted: Option<Arc<Counted>>,
}

/// `coredns_template_matches_total` and `coredns_template_rr_failures_total`, a series per
/// label set, each made once.
#[derive(Debug)]
struct Counted {
    /// `server="...",` and `view="..."` as the block's metrics have them.
    server: String,
    view: String,
    series: papaya::HashMap<String, Arc<std::sync::atomic::AtomicU64>>,
}

impl Counted {
    fn count(&self, name: &'static str, help: &'static str, labels: String) {
        let pinned = self.series.pin();
        let counter = match pinned.get(&labels) {
            Some(c) => Arc::clone(c),
            None => {
                let c = crate::metrics::metrics().counter(name, help, labels.clone());
                pinned.insert(labels, Arc::clone(&c));
                c
            }
        };
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// A template matched: its zone, class and type as CoreDNS labels them.
    fn matched(&self, zone: &str, class: &str, qtype: &str) {
        self.count(
            "coredns_template_matches_total",
            "Counter of template regex matches.",
            format!(
                "class=\"{class}\",server=\"{}\",type=\"{qtype}\",view=\"{}\",zone=\"{zone}\"",
                self.server, self.view
            ),
        );
    }

    /// A template failed to render (`coredns_template_template_failures_total`).
    fn template_failed(&self, zone: &str, class: &str, qtype: &str, section: &str, template: &str) {
        self.failed(
            "coredns_template_template_failures_total",
            "Counter of go template failures.",
            [zone, class, qtype, section, template],
        );
    }

    /// A rendered RR did not read.
    fn rr_failed(&self, zone: &str, class: &str, qtype: &str, section: &str, template: &str) {
        self.failed(
            "coredns_template_rr_failures_total",
            "Counter of mis-templated RRs.",
            [zone, class, qtype, section, template],
        );
    }

    fn failed(&self, name: &'static str, help: &'static str, labels: [&str; 5]) {
        let [zone, class, qtype, section, template] = labels;
        let template = template.replace('\\', "\\\\").replace('"', "\\\"");
        self.count(
            name,
            help,
            format!(
                "class=\"{class}\",section=\"{section}\",server=\"{}\",template=\"{template}\",type=\"{qtype}\",view=\"{}\",zone=\"{zone}\"",
                self.server, self.view
            ),
        );
    }
}

impl PartialEq for Template {
    fn eq(&self, other: &Self) -> bool {
        format!("{self:?}") == format!("{other:?}")
    }
}

#[derive(Debug, Clone)]
struct One {
    /// `None`: ANY.
    class: Option<DNSClass>,
    qtype: Option<RecordType>,
    zones: Zones,
    /// `.*` when none is given.
    regexes: Vec<Regex>,
    /// `var NAME EXPRESSION`, in order: each may use the ones before.
    vars: Vec<(String, Expr)>,
    /// `expr EXPRESSION`: every one must hold for a match.
    exprs: Vec<Expr>,
    answer: Vec<Rr>,
    additional: Vec<Rr>,
    authority: Vec<Rr>,
    rcode: ResponseCode,
    /// `ederror CODE [REASON]`: an extended DNS error (RFC 8914) in the answer.
    ederror: Option<super::Ede>,
    fallthrough: Fallthrough,
}

/// One RR template: text and the fields put into it, and the template as written.
#[derive(Debug, Clone)]
struct Rr(Vec<Piece>, String);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Name,
    Zone,
    Class,
    Type,
    Remote,
    Regex,
    Match(usize),
    Group(String),
    /// `.Var.NAME`, `index .Var "NAME"`.
    Var(String),
    /// `parseInt FIELD BASE BITS`: Go's `strconv.ParseUint` of a field, printed in decimal.
    ParseInt(Box<Piece>, u32, u32),
}

/// Reads a Go template's text and actions (`{{ ... }}`, with `{{-`/`-}}` trimming), keeping the
/// actions this build renders.
fn compile(text: &str) -> Result<Rr, String> {
    let mut pieces = Vec::new();
    let mut rest = text;
    let mut trim_next = false;
    while let Some(open) = rest.find("{{") {
        let mut before = &rest[..open];
        if trim_next {
            before = before.trim_start();
        }
        let after = &rest[open + 2..];
        let close = after
            .find("}}")
            .ok_or_else(|| format!("unclosed action in {text:?}"))?;
        let mut action = &after[..close];
        if let Some(a) = action.strip_prefix('-') {
            before = before.trim_end();
            action = a;
        }
        trim_next = false;
        if let Some(a) = action.strip_suffix('-') {
            trim_next = true;
            action = a;
        }
        if !before.is_empty() {
            pieces.push(Piece::Text(before.to_string()));
        }
        pieces.push(piece(action.trim()).ok_or_else(|| {
            format!(
                "{{{{ {} }}}} is not supported in this build (it renders .Name, .Zone, .Class, .Type, .Remote, .Regex, index .Match N, index .Group \"NAME\", .Group.NAME, .Var.NAME and parseInt of them)",
                action.trim()
            )
        })?);
        rest = &after[close + 2..];
    }
    let rest = if trim_next { rest.trim_start() } else { rest };
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest.to_string()));
    }
    Ok(Rr(pieces, text.to_string()))
}

fn piece(action: &str) -> Option<Piece> {
    let words: Vec<&str> = action.split_whitespace().collect();
    if let ["parseInt", field @ .., base, bits] = words.as_slice() {
        let (base, bits) = (base.parse().ok()?, bits.parse().ok()?);
        if !(base == 0 || (2..=36).contains(&base)) || bits > 64 {
            return None;
        }
        let field = piece(&field.join(" "))?;
        if matches!(field, Piece::Text(_) | Piece::ParseInt(..)) {
            return None;
        }
        return Some(Piece::ParseInt(Box::new(field), base, bits));
    }
    Some(match words.as_slice() {
        [".Name"] => Piece::Name,
        [".Zone"] => Piece::Zone,
        [".Class"] => Piece::Class,
        [".Type"] => Piece::Type,
        [".Remote"] => Piece::Remote,
        [".Regex"] => Piece::Regex,
        ["index", ".Match", n] => Piece::Match(n.parse().ok()?),
        ["index", ".Group", name] => {
            Piece::Group(name.strip_prefix('"')?.strip_suffix('"')?.to_string())
        }
        ["index", ".Var", name] => {
            Piece::Var(name.strip_prefix('"')?.strip_suffix('"')?.to_string())
        }
        [field] if field.starts_with(".Var.") => Piece::Var(field[".Var.".len()..].to_string()),
        [field] => Piece::Group(field.strip_prefix(".Group.")?.to_string()),
        _ => return None,
    })
}

/// What a matched question puts into the templates.
struct Data<'a> {
    name: &'a str,
    zone: String,
    class: String,
    qtype: String,
    remote: String,
    regex: &'a str,
    groups: BTreeMap<String, String>,
    matches: Vec<String>,
    /// `var`s' values, rendered.
    vars: BTreeMap<String, String>,
}

impl Rr {
    /// The RR's text for `data`; an error where Go's template would fail (`parseInt` of what
    /// is not a number).
    fn render(&self, data: &Data<'_>) -> Result<String, String> {
        let mut out = String::new();
        for piece in &self.0 {
            render_piece(piece, data, &mut out)?;
        }
        Ok(out)
    }
}

fn render_piece(piece: &Piece, data: &Data<'_>, out: &mut String) -> Result<(), String> {
    match piece {
        Piece::Text(t) => out.push_str(t),
        Piece::Name => out.push_str(data.name),
        Piece::Zone => out.push_str(&data.zone),
        Piece::Class => out.push_str(&data.class),
        Piece::Type => out.push_str(&data.qtype),
        Piece::Remote => out.push_str(&data.remote),
        Piece::Regex => out.push_str(data.regex),
        Piece::Match(i) => out.push_str(data.matches.get(*i).map_or("", String::as_str)),
        Piece::Group(g) => out.push_str(data.groups.get(g).map_or("", String::as_str)),
        // Go prints a missing key of a map as `<no value>`.
        Piece::Var(v) => out.push_str(data.vars.get(v).map_or("<no value>", String::as_str)),
        Piece::ParseInt(field, base, bits) => {
            let mut text = String::new();
            render_piece(field, data, &mut text)?;
            out.push_str(&parse_uint(&text, *base, *bits)?.to_string());
        }
    }
    Ok(())
}

/// Go's `strconv.ParseUint(s, base, bits)`: base 0 reads a `0x`, `0o`, `0b` or `0` prefix (and
/// `_` between digits); bits 0 is 64.
fn parse_uint(s: &str, base: u32, bits: u32) -> Result<u64, String> {
    let bad = || format!("parseInt: invalid syntax: {s:?}");
    let (digits, radix) = if base == 0 {
        let lower = s.to_ascii_lowercase();
        let (rest, radix) = if let Some(r) = lower.strip_prefix("0x") {
            (r.to_string(), 16)
        } else if let Some(r) = lower.strip_prefix("0o") {
            (r.to_string(), 8)
        } else if let Some(r) = lower.strip_prefix("0b") {
            (r.to_string(), 2)
        } else if lower.len() > 1 && lower.starts_with('0') {
            (lower[1..].to_string(), 8)
        } else {
            (lower, 10)
        };
        if rest.starts_with('_') || rest.ends_with('_') || rest.contains("__") {
            return Err(bad());
        }
        (rest.replace('_', ""), radix)
    } else {
        (s.to_string(), base)
    };
    if digits.is_empty() || digits.starts_with('+') {
        return Err(bad());
    }
    let value = u64::from_str_radix(&digits, radix).map_err(|_| bad())?;
    let bits = if bits == 0 { 64 } else { bits };
    if bits < 64 && value >> bits != 0 {
        return Err(format!("parseInt: value out of range: {s:?}"));
    }
    Ok(value)
}

/// A rendered RR as miekg/dns's `NewRR` reads it: one zone-file line, names relative to the
/// root, TTL 3600 and class IN when left out.
fn read_rr(text: &str) -> Option<Record> {
    let line = text.trim();
    // A directive ($INCLUDE, $ORIGIN, $TTL) is no record.
    if line.starts_with('$') || line.is_empty() {
        return None;
    }
    let zone = format!("$TTL 3600\n{line}\n");
    let records =
        super::file::text::parse(&zone, std::path::Path::new("template"), &Name::root()).ok()?;
    let [record] = <[Record; 1]>::try_from(records).ok()?;
    Some(record)
}

/// An rcode as the template plugin reads it: miekg/dns's name, exactly (case counts); the ones
/// a header carries whole.
fn rcode(name: &str) -> Option<ResponseCode> {
    crate::wire::rcode_named(name)
        .filter(|&code| code <= 10)
        .map(|code| ResponseCode::from_low(code as u8))
}

fn one(d: &Directive, cx: &Context<'_>) -> Result<One, ConfigError> {
    let err = |d: &Directive, m: String| directive_err(d, "template", m);
    let wrong = |d: &Directive| {
        err(
            d,
            format!(
                "Wrong argument count or unexpected line ending after '{}'",
                d.args.last().unwrap_or(&d.name)
            ),
        )
    };
    let [class, qtype, zones @ ..] = d.args.as_slice() else {
        return Err(wrong(d));
    };
    let class = match class.as_str() {
        "ANY" => None,
        "IN" => Some(DNSClass::IN),
        "CH" => Some(DNSClass::CH),
        "HS" => Some(DNSClass::HS),
        "NONE" => Some(DNSClass::NONE),
        other => return Err(err(d, format!("invalid query class {other}"))),
    };
    let qtype = match qtype.as_str() {
        "ANY" => None,
        other => Some(
            other
                .parse::<RecordType>()
                .ok()
                .filter(|t| !matches!(t, RecordType::Unknown(_)))
                .ok_or_else(|| err(d, format!("invalid RR class {other}")))?,
        ),
    };
    let zones = if zones.is_empty() {
        cx.zones.to_vec()
    } else {
        zone_list(zones, d, "template")?
    };
    let mut t = One {
        class,
        qtype,
        zones: Zones::new(&zones),
        regexes: Vec::new(),
        vars: Vec::new(),
        exprs: Vec::new(),
        answer: Vec::new(),
        additional: Vec::new(),
        authority: Vec::new(),
        rcode: ResponseCode::NoError,
        ederror: None,
        fallthrough: Fallthrough::default(),
    };
    for o in &d.block {
        match o.name.as_str() {
            "match" => {
                if o.args.is_empty() {
                    return Err(wrong(o));
                }
                for r in &o.args {
                    if r.len() > MAX_REGEXP {
                        return Err(err(
                            o,
                            format!("regex pattern too long: {} > {MAX_REGEXP}", r.len()),
                        ));
                    }
                    let re = Regex::new(r)
                        .map_err(|e| err(o, format!("could not parse regex: {r}, {e}")))?;
                    t.regexes.push(re);
                }
            }
            section @ ("answer" | "additional" | "authority") => {
                if o.args.is_empty() {
                    return Err(wrong(o));
                }
                let rrs = o
                    .args
                    .iter()
                    .map(|a| {
                        compile(a).map_err(|m| err(o, format!("could not compile template: {m}")))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                match section {
                    "answer" => t.answer.extend(rrs),
                    "additional" => t.additional.extend(rrs),
                    _ => t.authority.extend(rrs),
                }
            }
            "rcode" => {
                let [code] = o.args.as_slice() else {
                    return Err(wrong(o));
                };
                t.rcode = rcode(code).ok_or_else(|| err(o, format!("unknown rcode {code}")))?;
            }
            "fallthrough" => t.fallthrough = Fallthrough::parse(&o.args, o, "template")?,
            // Deprecated in CoreDNS and ignored there: answers' CNAMEs are not followed here.
            "upstream" => {}
            "ederror" => {
                let (code, text) = match o.args.as_slice() {
                    [code] => (code, String::new()),
                    [code, reason] => (code, reason.clone()),
                    _ => return Err(wrong(o)),
                };
                let code = code.parse::<u16>().map_err(|_| {
                    err(
                        o,
                        format!("error parsing extended DNS error code {code}, invalid syntax"),
                    )
                })?;
                t.ederror = Some(super::Ede { code, text });
            }
            "var" => {
                let [name, expression @ ..] = o.args.as_slice() else {
                    return Err(wrong(o));
                };
                if expression.is_empty() {
                    return Err(wrong(o));
                }
                if !crate::plugin::view::expr::variable_name_ok(name)
                    || t.vars.iter().any(|(v, _)| v == name)
                {
                    return Err(err(o, format!("invalid variable name '{name}'")));
                }
                let declared: Vec<String> = t.vars.iter().map(|(v, _)| v.clone()).collect();
                let text = expression.join(" ");
                let e = Expr::parse_in(&text, &declared, true)
                    .map_err(|e| err(o, format!("var {name}: {e}")))?;
                t.vars.push((name.clone(), e));
            }
            "expr" => {
                if o.args.is_empty() {
                    return Err(wrong(o));
                }
                let declared: Vec<String> = t.vars.iter().map(|(v, _)| v.clone()).collect();
                let text = o.args.join(" ");
                let e = Expr::parse_in(&text, &declared, true)
                    .map_err(|e| err(o, format!("expr {text}: {e}")))?;
                t.exprs.push(e);
            }
            other => return Err(err(o, format!("unknown property '{other}'"))),
        }
    }
    if t.regexes.is_empty() {
        t.regexes.push(Regex::new(".*").expect("a regex"));
    }
    Ok(t)
}

impl Setup for Template {
    fn parse(d: &Directive, cx: &Context<'_>) -> Result<Self, ConfigError> {
        let t = one(d, cx)?;
        let zones = Zones::new(t.zones.names());
        Ok(Self {
            templates: vec![t],
            zones,
            counted: None,
        })
    }

    /// Each `template` line of a block is one more template, tried after the earlier ones.
    fn merge(&mut self, later: Self) -> bool {
        self.templates.extend(later.templates);
        let all: Vec<LowerName> = self
            .templates
            .iter()
            .flat_map(|t| t.zones.names().iter().cloned())
            .collect();
        self.zones = Zones::new(&all);
        true
    }

    fn build(&self, b: &mut Building<'_>) -> Result<(), SetupError> {
        let counted = b.metrics.then(|| {
            Arc::new(Counted {
                server: b.server_label(),
                view: b
                    .find::<crate::plugin::view::View>()
                    .map(|v| v.name.clone())
                    .unwrap_or_default(),
                series: papaya::HashMap::new(),
            })
        });
        b.chain.push(Plugin::Template(Self {
            counted,
            ..self.clone()
        }));
        Ok(())
    }
}

fn class_name(class: DNSClass) -> String {
    match class {
        DNSClass::Unknown(n) => format!("CLASS{n}"),
        c => c.to_string(),
    }
}

impl Phases for Template {
    const ANSWERS: bool = true;
    const ANY_CLASS: bool = true;

    fn serve(&self, req: &Request) -> Outcome {
        if self.zones.longest(&req.lower).is_none() {
            return Outcome::Next;
        }
        let name = req.lower.to_string();
        'templates: for t in &self.templates {
            let Some(zone) = t.zones.longest(&req.lower) else {
                continue;
            };
            let class_ok = t
                .class
                .is_none_or(|c| req.class == DNSClass::ANY || req.class == c);
            let type_ok = t
                .qtype
                .is_none_or(|q| req.qtype == RecordType::ANY || req.qtype == q);
            if !class_ok || !type_ok {
                continue;
            }
            let Some((regex, groups)) = t
                .regexes
                .iter()
                .find_map(|r| r.captures(&name).map(|g| (r, g)))
            else {
                if t.fallthrough.through(&req.lower) {
                    continue;
                }
                return Outcome::Reply(
                    Reply::authoritative(ResponseCode::ServFail).not_authoritative_reply(),
                );
            };
            let matches: Vec<String> = groups
                .iter()
                .map(|m| m.map_or(String::new(), |m| m.as_str().to_string()))
                .collect();
            let mut named: BTreeMap<String, String> = matches
                .iter()
                .enumerate()
                .map(|(i, m)| (i.to_string(), m.clone()))
                .collect();
            for g in regex.capture_names().flatten() {
                if let Some(m) = groups.name(g) {
                    named.insert(g.to_string(), m.as_str().to_string());
                }
            }
            // `var`s in order, then every `expr`: one that fails is SERVFAIL, one that does
            // not hold is as no match (fallthrough decides), as CoreDNS takes them.
            let servfail = || {
                Outcome::Reply(
                    Reply::authoritative(ResponseCode::ServFail).not_authoritative_reply(),
                )
            };
            let mut vars = BTreeMap::new();
            if !t.vars.is_empty() || !t.exprs.is_empty() {
                let facts = facts(req, &name);
                let mut values = Vec::with_capacity(t.vars.len());
                for (var, e) in &t.vars {
                    let scope = Scope {
                        facts: &facts,
                        vars: &values,
                        groups: Some(&named),
                        meta: None,
                    };
                    let Ok(value) = e.value(&scope) else {
                        return servfail();
                    };
                    vars.insert(var.clone(), value.to_string());
                    values.push(value);
                }
                let scope = Scope {
                    facts: &facts,
                    vars: &values,
                    groups: Some(&named),
                    meta: None,
                };
                // Anything but `true` is no match; only a failure is SERVFAIL.
                for e in &t.exprs {
                    match e.value(&scope) {
                        Ok(crate::plugin::view::expr::Value::Bool(true)) => {}
                        Ok(_) if t.fallthrough.through(&req.lower) => continue 'templates,
                        _ => return servfail(),
                    }
                }
            }
            let data = Data {
                name: &name,
                zone: zone.to_string(),
                class: class_name(match (req.class, t.class) {
                    (DNSClass::ANY, Some(c)) => c,
                    (c, _) => c,
                }),
                qtype: crate::wire::type_mnemonic(match (req.qtype, t.qtype) {
                    (RecordType::ANY, Some(q)) => q,
                    (q, _) => q,
                }),
                remote: req
                    .src
                    .map_or(String::new(), |s| match s.ip().to_canonical() {
                        IpAddr::V4(ip) => ip.to_string(),
                        IpAddr::V6(ip) => ip.to_string(),
                    }),
                regex: regex.as_str(),
                groups: named,
                matches,
                vars,
            };
            if let Some(counted) = &self.counted {
                counted.matched(&data.zone, &data.class, &data.qtype);
            }
            if t.rcode == ResponseCode::ServFail {
                return servfail();
            }
            let mut reply = Reply::authoritative(t.rcode);
            reply.ede = t.ederror.clone().map(Box::new);
            for (rrs, section, label) in [
                (&t.answer, &mut reply.answers, "answer"),
                (&t.additional, &mut reply.additional, "additional"),
                (&t.authority, &mut reply.authority, "authority"),
            ] {
                for rr in rrs {
                    // A template that fails, or an RR that does not read, is SERVFAIL, as
                    // CoreDNS answers it.
                    let text = match rr.render(&data) {
                        Ok(text) => text,
                        Err(_) => {
                            if let Some(counted) = &self.counted {
                                counted.template_failed(
                                    &data.zone,
                                    &data.class,
                                    &data.qtype,
                                    label,
                                    &rr.1,
                                );
                            }
                            return Outcome::Reply(
                                Reply::authoritative(ResponseCode::ServFail)
                                    .not_authoritative_reply(),
                            );
                        }
                    };
                    let Some(record) = read_rr(&text) else {
                        if let Some(counted) = &self.counted {
                            counted.rr_failed(&data.zone, &data.class, &data.qtype, label, &rr.1);
                        }
                        return Outcome::Reply(
                            Reply::authoritative(ResponseCode::ServFail).not_authoritative_reply(),
                        );
                    };
                    section.push_record(Owner::Name(record.name()), &record);
                }
            }
            return Outcome::Reply(reply);
        }
        Outcome::Next
    }

    /// A question outside every template's zones passes on, on the fast path too; one inside
    /// them goes the full way.
    fn serve_fast(&self, query: &wire::LightQuery, _: &mut Vec<u8>) -> Fast {
        if self.zones.longest_index_wire(query.key()).is_some() {
            Fast::Slow
        } else {
            Fast::Next
        }
    }
}

/// What a `var` or `expr` may ask of the question (the request's ID, opcode and sizes are
/// not known here: 0, 0, the client's buffer as 512, 0).
fn facts(req: &Request, name: &str) -> Facts {
    let client = req
        .src
        .unwrap_or_else(|| std::net::SocketAddr::from(([0, 0, 0, 0], 0)));
    Facts {
        name: name.to_string(),
        qtype: crate::wire::type_mnemonic(req.qtype),
        class: class_name(req.class),
        client,
        server: std::net::SocketAddr::from(([0, 0, 0, 0], 0)),
        tcp: req.transport == crate::wire::Transport::Tcp,
        id: 0,
        opcode: 0,
        dnssec_ok: req.dnssec_ok,
        bufsize: if req.transport == crate::wire::Transport::Tcp {
            u16::MAX
        } else {
            512
        },
        size: 0,
    }
}

impl Reply {
    /// SERVFAIL as the handler writes an error: not authoritative.
    fn not_authoritative_reply(mut self) -> Self {
        self.authoritative = false;
        self
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::Config;
    use crate::plugin::testing::Served;

    #[test]
    fn answers_as_coredns_documents_and_aks_uses_it() {
        let served = Served::new(
            r#"
            .:0 {
                template ANY ANY internal.cloudapp.net {
                    match "^(?:[^.]+\.){4,}internal\.cloudapp\.net\.$"
                    rcode NXDOMAIN
                    fallthrough
                }
                template ANY ANY reddog.microsoft.com {
                    rcode NXDOMAIN
                }
                template IN A example {
                    match "^ip-(?P<a>[0-9]*)-(?P<b>[0-9]*)-(?P<c>[0-9]*)-(?P<d>[0-9]*)[.]example[.]$"
                    answer "{{ .Name }} 60 IN A {{ .Group.a }}.{{ .Group.b }}.{{ .Group.c }}.{{ .Group.d }}"
                    fallthrough
                }
                template ANY ANY invalid {
                    rcode NXDOMAIN
                    authority "invalid. 60 {{ .Class }} SOA ns.invalid. hostmaster.invalid. (1 60 60 60 60)"
                    ederror 21 "Blocked according to RFC2606"
                }
                template IN TXT strict.test {
                    match ^only[.]
                    answer "{{ .Name }} 30 IN TXT \"{{ index .Match 0 }}{{ .Zone }}\""
                }
                kubernetes cluster.local {
                    manifests DATA
                    ttl 5
                }
                forward . 127.0.0.1:9
            }"#,
        );
        for (question, answer) in [
            // AKS: search-path junk under internal.cloudapp.net is NXDOMAIN at once...
            ("a.b.c.d.internal.cloudapp.net. AAAA", ";; NXDOMAIN aa rd"),
            // ...a VM's own name goes on (here, upstream).
            ("vm1.internal.cloudapp.net. A", ";; forwarded"),
            ("x.reddog.microsoft.com. A", ";; NXDOMAIN aa rd"),
            (
                "IP-10-0-0-7.example. A",
                ";; NOERROR aa rd\nip-10-0-0-7.example. 60 IN A 10.0.0.7",
            ),
            // Another type falls through the A template: nothing else holds it.
            ("ip-10-0-0-7.example. AAAA", ";; forwarded"),
            (
                "www.invalid. A",
                ";; NXDOMAIN aa rd\n;; authority\ninvalid. 60 IN SOA ns.invalid. hostmaster.invalid. 1 60 60 60 60",
            ),
            (
                "only.strict.test. TXT",
                ";; NOERROR aa rd\nonly.strict.test. 30 IN TXT only.strict.test.",
            ),
            // In the zone, no match, no fallthrough: SERVFAIL.
            ("other.strict.test. TXT", ";; SERVFAIL rd"),
            // The cluster is untouched, and on the fast path.
            (
                "web.prod.svc.cluster.local. A",
                ";; NOERROR aa rd ra\nweb.prod.svc.cluster.local. 5 IN A 10.96.12.34",
            ),
        ] {
            let got = served.ask(question);
            assert_eq!(got, answer, "{question}");
        }
        assert!(served.fast("web.prod.svc.cluster.local. A"));
        assert!(!served.fast("x.reddog.microsoft.com. A"));
        // `ederror`: the extended error in the OPT record (code 15, INFO-CODE 21, the reason).
        let mut msg = hickory_proto::op::Message::new();
        msg.add_query(hickory_proto::op::Query::query(
            Name::from_ascii("www.invalid.").unwrap(),
            RecordType::A,
        ));
        msg.set_edns(hickory_proto::op::Edns::new());
        let mut out = Vec::new();
        served.handler.handle(
            &msg.to_vec().unwrap(),
            "10.0.0.1:5353".parse().unwrap(),
            crate::wire::Transport::Udp,
            &mut out,
        );
        let reason = b"Blocked according to RFC2606";
        let mut option = vec![0, 15, 0, 2 + reason.len() as u8, 0, 21];
        option.extend_from_slice(reason);
        assert!(out.ends_with(&option), "{out:?}");
    }

    #[test]
    fn the_classic_aaaa_filter_and_everything_nxdomain() {
        let served = Served::new(
            ".:0 {
                template ANY AAAA {
                    rcode NOERROR
                }
                template ANY ANY {
                    rcode NXDOMAIN
                }
            }",
        );
        served.expect("www.example.com. AAAA", ";; NOERROR aa rd");
        served.expect("www.example.com. A", ";; NXDOMAIN aa rd");
    }

    fn parsed(lines: &str) -> Result<usize, String> {
        let text = format!(".:0 {{\n{lines}\n}}\n");
        let config = Config::from_text(&text, 0, Path::new(".")).map_err(|e| e.to_string())?;
        Ok(config.servers[0]
            .get::<Template>()
            .expect("template")
            .templates
            .len())
    }

    #[test]
    fn var_and_expr_as_coredns_documents_them() {
        let served = Served::new(
            r#"
            .:0 {
                template IN A example {
                    match "^(?P<host>[a-z]+)-(?P<n>[0-9]+)[.]example[.]$"
                    var octet group('n')
                    var label group(1) + '-' + type()
                    expr incidr(client_ip(), '10.0.0.0/8')
                    expr octet != '0'
                    answer "{{ .Name }} 60 IN A 10.1.0.{{ .Var.octet }}"
                    answer "{{ .Name }} 60 IN TXT \"{{ index .Var \"label\" }}\""
                    fallthrough
                }
                template IN AAAA example {
                    var n 1 / 0
                    answer "{{ .Name }} 60 IN AAAA ::1"
                }
                forward . 127.0.0.1:9
            }"#,
        );
        for (question, answer) in [
            (
                "web-7.example. A",
                ";; NOERROR aa rd\nweb-7.example. 60 IN A 10.1.0.7\nweb-7.example. 60 IN TXT web-A",
            ),
            // An expr that does not hold: no match, and fallthrough passes it on.
            ("web-0.example. A", ";; forwarded"),
            // A var that fails to evaluate: SERVFAIL.
            ("web-7.example. AAAA", ";; SERVFAIL rd"),
        ] {
            served.expect(question, answer);
        }
    }

    #[test]
    fn reads_coredns_forms_and_refuses_the_rest() {
        assert_eq!(parsed("template ANY ANY {\n rcode NXDOMAIN\n}"), Ok(1));
        assert_eq!(
            parsed(
                "template IN A a.example b.example {\n match x y\n upstream\n}\ntemplate CH TXT"
            ),
            Ok(2)
        );
        for (lines, error) in [
            ("template", "Wrong argument count"),
            ("template IN", "Wrong argument count"),
            ("template XX A", "invalid query class XX"),
            ("template IN NOPE", "invalid RR class NOPE"),
            ("template IN A {\n match\n}", "Wrong argument count"),
            ("template IN A {\n match (\n}", "could not parse regex"),
            ("template IN A {\n rcode MAYBE\n}", "unknown rcode MAYBE"),
            (
                "template IN A {\n answer \"{{ .Meta \\\"x\\\" }}\"\n}",
                "not supported in this build",
            ),
            (
                "template IN A {\n answer \"{{ .Name \"\n}",
                "unclosed action",
            ),
            (
                "template IN A {\n var true 1\n}",
                "invalid variable name 'true'",
            ),
            (
                "template IN A {\n var name 1\n}",
                "invalid variable name 'name'",
            ),
            (
                "template IN A {\n var x 1\n var x 2\n}",
                "invalid variable name 'x'",
            ),
            ("template IN A {\n var x\n}", "Wrong argument count"),
            ("template IN A {\n expr y == 1\n}", "unknown name \"y\""),
            (
                "template IN A {\n expr x == 1\n var x 1\n}",
                "unknown name \"x\"",
            ),
            (
                "template IN A {\n ederror x\n}",
                "error parsing extended DNS error code x",
            ),
            (
                "template IN A {\n ederror 21 a b\n}",
                "Wrong argument count",
            ),
            (
                "template IN A {\n color blue\n}",
                "unknown property 'color'",
            ),
        ] {
            let got = parsed(lines).expect_err(lines);
            assert!(got.contains(error), "{lines}: {got}");
        }
    }

    #[test]
    fn parse_int_as_go_reads_it_and_a_failure_is_servfail() {
        // CoreDNS's README example: a hexadecimal address in the name.
        let served = Served::new(
            r#".:0 {
                template IN A example {
                    match "^ip0a(?P<b>[a-f0-9]{2})(?P<c>[a-f0-9]{2})(?P<d>[a-zA-Z0-9]{2})[.]example[.]$"
                    answer "{{ .Name }} 60 IN A 10.{{ parseInt .Group.b 16 8 }}.{{ parseInt .Group.c 16 8 }}.{{ parseInt .Group.d 16 8 }}"
                }
            }"#,
        );
        served.expect(
            "ip0a7b0cff.example. A",
            ";; NOERROR aa rd
            ip0a7b0cff.example. 60 IN A 10.123.12.255",
        );
        // `zz` is no hexadecimal number: the template fails.
        served.expect("ip0a7b0czz.example. A", ";; SERVFAIL rd");
        for (s, base, bits, want) in [
            ("ff", 16, 8, Ok(255)),
            ("100", 16, 8, Err(())),
            ("0x1F", 0, 0, Ok(31)),
            ("017", 0, 64, Ok(15)),
            ("0b1_01", 0, 8, Ok(5)),
            ("1_0", 10, 8, Err(())),
            ("-1", 10, 64, Err(())),
            ("", 10, 64, Err(())),
        ] {
            assert_eq!(
                parse_uint(s, base, bits).map_err(|_| ()),
                want,
                "{s} {base} {bits}"
            );
        }
        assert!(compile("{{ parseInt .Group.b 37 8 }}").is_err());
        assert!(compile("{{ parseInt .Group.b 16 }}").is_err());
    }

    #[test]
    fn go_template_trimming_and_rr_reading() {
        let rr = compile("{{- .Name -}}   60 IN A 10.0.0.1").unwrap();
        assert_eq!(rr.0[0], Piece::Name);
        assert_eq!(rr.0[1], Piece::Text("60 IN A 10.0.0.1".into()));
        assert!(read_rr("a.example. IN A 10.0.0.1").is_some_and(|r| r.ttl() == 3600));
        assert!(
            read_rr("relative IN A 10.0.0.1").is_some_and(|r| r.name().to_ascii() == "relative.")
        );
        // The SOA's own TTL, not its expire field.
        assert!(
            read_rr("example. 60 IN SOA ns.example. h.example. (1 7200 3600 1209600 300)")
                .is_some_and(|r| r.ttl() == 60)
        );
        for bad in [
            "",
            "$INCLUDE /etc/passwd",
            "a.example. 60 IN A not-an-address",
            "a. 60 IN A 1.2.3.4\nb. 60 IN A 1.2.3.4",
        ] {
            assert!(read_rr(bad).is_none(), "{bad}");
        }
    }
}
