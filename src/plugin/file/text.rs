//! RFC 1035 master files as CoreDNS's `file` plugin reads them: `$ORIGIN`, `$TTL`,
//! `$INCLUDE` (relative to the including file, seven deep at most), `@`, names relative to the
//! origin, a blank owner for the previous line's, TTL and class in either order, parentheses
//! across lines, quoted strings and `;` comments. Record data is read by hickory-proto for the
//! types it knows; DNSSEC's (RRSIG, NSEC, DS, DNSKEY, CDS, CDNSKEY), DNAME, SPF and RFC 3597's
//! generic `\# LENGTH HEX` are written here, as bytes. A record with no TTL takes `$TTL`, else
//! the last TTL given, else 3600.
//!
//! Every error names the file and the line.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use base64::Engine;
use hickory_proto::rr::rdata::NULL;
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_proto::serialize::txt::RDataParser;

/// How deep `$INCLUDE`s nest (miekg/dns's limit).
const MAX_INCLUDE_DEPTH: usize = 7;
/// The TTL of a record when nothing before it gives one.
const DEFAULT_TTL: u32 = 3600;

/// A master file that does not read: where, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}: {message}", file.display())]
pub struct ZoneFileError {
    pub file: PathBuf,
    pub line: usize,
    pub message: String,
}

/// One token of a line: its text (quotes taken off) and whether it was quoted.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Token {
    text: String,
    quoted: bool,
    /// A quoted string's bytes as written (`\DDD` may be any byte); the text's otherwise.
    bytes: Vec<u8>,
}

impl Token {
    fn word(text: String) -> Self {
        Self {
            bytes: text.as_bytes().to_vec(),
            text,
            quoted: false,
        }
    }
}

/// A logical line: its tokens (parentheses joined), whether it began with blank space (the
/// previous owner), and the physical line it began on.
#[derive(Debug)]
struct Line {
    tokens: Vec<Token>,
    blank_owner: bool,
    line: usize,
}

/// The records of the master file at `path`, read with `origin` as its first origin.
pub fn read(path: &Path, origin: &Name) -> Result<Vec<Record>, ZoneFileError> {
    let mut records = Vec::new();
    read_file(path, &mut State::new(origin), 0, &mut records, None)?;
    Ok(records)
}

/// The records of master-file `text` (as if read from `path`), with `origin`.
pub fn parse(text: &str, path: &Path, origin: &Name) -> Result<Vec<Record>, ZoneFileError> {
    let mut records = Vec::new();
    read_text(text, path, &mut State::new(origin), 0, &mut records)?;
    Ok(records)
}

#[derive(Debug, Clone)]
struct State {
    origin: Name,
    default_ttl: Option<u32>,
    last_ttl: Option<u32>,
    last_owner: Option<Name>,
}

impl State {
    /// A file's start: `origin`, and no TTL or owner yet.
    fn new(origin: &Name) -> Self {
        Self {
            origin: origin.clone(),
            default_ttl: None,
            last_ttl: None,
            last_owner: None,
        }
    }
}

fn read_file(
    path: &Path,
    state: &mut State,
    depth: usize,
    records: &mut Vec<Record>,
    from: Option<(&Path, usize)>,
) -> Result<(), ZoneFileError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        let (file, line) = from.map_or((path, 0), |(f, l)| (f, l));
        ZoneFileError {
            file: file.to_path_buf(),
            line,
            message: format!("reading {}: {e}", path.display()),
        }
    })?;
    read_text(&text, path, state, depth, records)
}

fn read_text(
    text: &str,
    path: &Path,
    state: &mut State,
    depth: usize,
    records: &mut Vec<Record>,
) -> Result<(), ZoneFileError> {
    let err = |line: usize, message: String| ZoneFileError {
        file: path.to_path_buf(),
        line,
        message,
    };
    for line in lines(text).map_err(|(l, m)| err(l, m))? {
        let at = line.line;
        let first = &line.tokens[0];
        if !line.blank_owner && !first.quoted && first.text.starts_with('$') {
            let args: Vec<&str> = line.tokens[1..].iter().map(|t| t.text.as_str()).collect();
            match first.text.to_ascii_uppercase().as_str() {
                "$ORIGIN" => {
                    let [name] = args[..] else {
                        return Err(err(at, "$ORIGIN takes one name".into()));
                    };
                    state.origin = name_in(name, &state.origin).map_err(|m| err(at, m))?;
                }
                "$TTL" => {
                    let [ttl] = args[..] else {
                        return Err(err(at, "$TTL takes one TTL".into()));
                    };
                    state.default_ttl = Some(
                        parse_ttl(ttl)
                            .ok_or_else(|| err(at, format!("$TTL: {ttl:?} is not a TTL")))?,
                    );
                }
                "$INCLUDE" => {
                    let (file, origin) = match args[..] {
                        [file] => (file, None),
                        [file, origin] => (file, Some(origin)),
                        _ => return Err(err(at, "$INCLUDE takes a file and an origin".into())),
                    };
                    if depth >= MAX_INCLUDE_DEPTH {
                        return Err(err(at, "$INCLUDE nested too deep".into()));
                    }
                    let included = Path::new(file);
                    let included = if included.is_absolute() {
                        included.to_path_buf()
                    } else {
                        path.parent().unwrap_or(Path::new(".")).join(included)
                    };
                    // The included file changes nothing of this one's origin (RFC 1035 §5.1).
                    let mut inner = state.clone();
                    if let Some(origin) = origin {
                        inner.origin = name_in(origin, &state.origin).map_err(|m| err(at, m))?;
                    }
                    // Nor its `$TTL` (miekg/dns reads an included file with a parser of its own).
                    read_file(&included, &mut inner, depth + 1, records, Some((path, at)))?;
                }
                "$GENERATE" => {
                    for line in generate(&line).map_err(|m| err(at, m))? {
                        let record = entry(&line, state).map_err(|m| err(at, m))?;
                        records.push(record);
                    }
                }
                other => {
                    return Err(err(at, format!("{other} is not supported")));
                }
            }
            continue;
        }
        let record = entry(&line, state).map_err(|m| err(at, m))?;
        records.push(record);
    }
    Ok(())
}

/// BIND's `$GENERATE START-STOP[/STEP] LHS [TTL] [CLASS] TYPE RHS`, as miekg/dns reads it:
/// a record line per value, with `$` in LHS and RHS replaced by it (`${OFFSET,WIDTH,BASE}`
/// shifts and formats it: BASE `d`, `o`, `x` or `X`; `\$` is a `$`).
fn generate(line: &Line) -> Result<Vec<Line>, String> {
    /// At most this many records from one line (miekg/dns allows 65535).
    const MAX: u64 = 65_535;
    let args = &line.tokens[1..];
    let [range, lhs, middle @ .., rhs] = args else {
        return Err("$GENERATE takes a range, an owner, a type and data".into());
    };
    let bad_range = || format!("$GENERATE: bad range {:?}", range.text);
    let (span, step) = match range.text.split_once('/') {
        Some((span, step)) => (span, step.parse::<u64>().map_err(|_| bad_range())?),
        None => (range.text.as_str(), 1),
    };
    let (start, stop) = span
        .split_once('-')
        .and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?)))
        .ok_or_else(bad_range)?;
    if step == 0 || start > stop || (stop - start) / step >= MAX {
        return Err(bad_range());
    }
    let mut out = Vec::new();
    let mut i = start;
    while i <= stop {
        let mut tokens = vec![Token::word(substitute(&lhs.text, i)?)];
        tokens.extend(middle.iter().cloned());
        let text = substitute(&rhs.text, i)?;
        tokens.push(Token {
            bytes: text.as_bytes().to_vec(),
            text,
            quoted: rhs.quoted,
        });
        out.push(Line {
            tokens,
            blank_owner: false,
            line: line.line,
        });
        i += step;
    }
    Ok(out)
}

/// `template` with each `$` (or `${OFFSET,WIDTH,BASE}`) replaced by `value`.
fn substitute(template: &str, value: u64) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = template.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'$') => {
                chars.next();
                out.push('$');
            }
            '$' if chars.peek() == Some(&'{') => {
                chars.next();
                let spec: String = chars.by_ref().take_while(|&c| c != '}').collect();
                let bad = || format!("$GENERATE: bad modifier {{{spec}}}");
                let mut parts = spec.split(',').map(str::trim);
                let offset: i64 = parts.next().unwrap_or("0").parse().map_err(|_| bad())?;
                let width: usize = parts.next().unwrap_or("0").parse().map_err(|_| bad())?;
                if width > 255 {
                    return Err(bad());
                }
                let v = i64::try_from(value)
                    .ok()
                    .and_then(|v| v.checked_add(offset))
                    .filter(|v| *v >= 0)
                    .ok_or_else(bad)?;
                let text = match parts.next().unwrap_or("d") {
                    "d" => format!("{v:0width$}"),
                    "o" => format!("{v:0width$o}"),
                    "x" => format!("{v:0width$x}"),
                    "X" => format!("{v:0width$X}"),
                    _ => return Err(bad()),
                };
                out.push_str(&text);
            }
            '$' => out.push_str(&value.to_string()),
            c => out.push(c),
        }
    }
    Ok(out)
}

/// One record line, read with what the lines before it set.
fn entry(line: &Line, state: &mut State) -> Result<Record, String> {
    let mut tokens = line.tokens.iter().peekable();
    let owner = if line.blank_owner {
        state
            .last_owner
            .clone()
            .ok_or("no owner name: the first record of a file must name one")?
    } else {
        let t = tokens.next().ok_or("empty line")?;
        if t.text == "@" {
            state.origin.clone()
        } else {
            name_in(&t.text, &state.origin)?
        }
    };
    let (mut ttl, mut class) = (None, None);
    let rtype = loop {
        let t = tokens.next().ok_or("no record type")?;
        if ttl.is_none()
            && let Some(v) = parse_ttl(&t.text)
        {
            ttl = Some(v);
        } else if class.is_none()
            && let Some(c) = parse_class(&t.text)
        {
            class = Some(c);
        } else {
            break parse_type(&t.text)?;
        }
    };
    let rest: Vec<&Token> = tokens.collect();
    let ttl = match ttl {
        Some(t) => {
            state.last_ttl = Some(t);
            t
        }
        None => state.default_ttl.or(state.last_ttl).unwrap_or(DEFAULT_TTL),
    };
    let rdata = rdata(rtype, &rest, &state.origin)
        .map_err(|m| format!("{rtype} record of {owner}: {m}"))?;
    state.last_owner = Some(owner.clone());
    let mut record = Record::from_rdata(owner, ttl, rdata);
    record.set_dns_class(class.unwrap_or(DNSClass::IN));
    Ok(record)
}

/// `name`, absolute or relative to `origin`.
fn name_in(name: &str, origin: &Name) -> Result<Name, String> {
    if name == "@" {
        return Ok(origin.clone());
    }
    let mut parsed = Name::parse(name, Some(origin)).map_err(|e| format!("{name:?}: {e}"))?;
    parsed.set_fqdn(true);
    Ok(parsed)
}

/// A TTL: seconds, or BIND's units (`1h30m`, `2d`, `1w`).
fn parse_ttl(s: &str) -> Option<u32> {
    if s.is_empty() || !s.as_bytes()[0].is_ascii_digit() {
        return None;
    }
    if let Ok(n) = s.parse::<u32>() {
        return Some(n);
    }
    let (mut total, mut digits) = (0u64, String::new());
    for c in s.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c.to_ascii_lowercase() {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 604_800,
            _ => return None,
        };
        let n: u64 = std::mem::take(&mut digits).parse().ok()?;
        total = total.checked_add(n.checked_mul(unit)?)?;
    }
    if !digits.is_empty() {
        total = total.checked_add(digits.parse::<u64>().ok()?)?;
    }
    u32::try_from(total).ok()
}

fn parse_class(s: &str) -> Option<DNSClass> {
    match s.to_ascii_uppercase().as_str() {
        "IN" => Some(DNSClass::IN),
        "CH" | "CHAOS" => Some(DNSClass::CH),
        "HS" => Some(DNSClass::HS),
        "CS" => Some(DNSClass::Unknown(2)),
        "NONE" => Some(DNSClass::NONE),
        "ANY" => Some(DNSClass::ANY),
        upper => upper
            .strip_prefix("CLASS")
            .and_then(|n| n.parse::<u16>().ok())
            .map(DNSClass::from),
    }
}

/// A record type: its mnemonic or RFC 3597's `TYPEnnn`.
fn parse_type(s: &str) -> Result<RecordType, String> {
    let upper = s.to_ascii_uppercase();
    if let Some(n) = upper.strip_prefix("TYPE")
        && let Ok(code) = n.parse::<u16>()
    {
        return Ok(RecordType::from(code));
    }
    if let Ok(known) = RecordType::from_str(&upper) {
        return Ok(known);
    }
    // The mnemonics miekg/dns knows and hickory-proto does not.
    let code = match upper.as_str() {
        "MD" => 3,
        "MF" => 4,
        "MB" => 7,
        "MG" => 8,
        "MR" => 9,
        "WKS" => 11,
        "MINFO" => 14,
        "RP" => 17,
        "AFSDB" => 18,
        "X25" => 19,
        "ISDN" => 20,
        "RT" => 21,
        "NSAPPTR" | "NSAP-PTR" => 23,
        "PX" => 26,
        "GPOS" => 27,
        "LOC" => 29,
        "EID" => 31,
        "NIMLOC" => 32,
        "ATMA" => 34,
        "KX" => 36,
        "A6" => 38,
        "DNAME" => 39,
        "APL" => 42,
        "IPSECKEY" => 45,
        "DHCID" => 49,
        "SMIMEA" => 53,
        "HIP" => 55,
        "NINFO" => 56,
        "RKEY" => 57,
        "TALINK" => 58,
        "CDNSKEY" => 60,
        "ZONEMD" => 63,
        "SPF" => 99,
        "UINFO" => 100,
        "UID" => 101,
        "GID" => 102,
        "UNSPEC" => 103,
        "NID" => 104,
        "L32" => 105,
        "L64" => 106,
        "LP" => 107,
        "EUI48" => 108,
        "EUI64" => 109,
        "URI" => 256,
        "AVC" => 258,
        "DOA" => 259,
        "AMTRELAY" => 260,
        "TA" => 32768,
        "DLV" => 32769,
        _ => return Err(format!("{s:?} is not a record type")),
    };
    Ok(RecordType::from(code))
}

/// The data of a record of `rtype` from its tokens.
fn rdata(rtype: RecordType, tokens: &[&Token], origin: &Name) -> Result<RData, String> {
    let code = u16::from(rtype);
    let raw = |bytes: Vec<u8>| RData::Unknown {
        code: rtype,
        rdata: NULL::with(bytes),
    };
    let texts: Vec<&str> = tokens.iter().map(|t| t.text.as_str()).collect();
    if let Some(first) = tokens.first()
        && !first.quoted
        && first.text == "\\#"
    {
        let bytes = generic(&texts[1..])?;
        generic_valid(rtype, &bytes)?;
        return Ok(if bytes.is_empty() {
            // No data (RFC 3597 allows it where the type does): a record with RDLENGTH 0.
            RData::Update0(rtype)
        } else {
            raw(bytes)
        });
    }
    match code {
        // RRSIG, NSEC, DS, CDS, DNSKEY, CDNSKEY
        46 => rrsig(&texts, origin).map(raw),
        47 => nsec(&texts, origin).map(raw),
        43 | 59 => ds(&texts).map(raw),
        48 | 60 => dnskey(&texts).map(raw),
        50 | 51 => Err("NSEC3 zones are not supported (as in CoreDNS): sign with NSEC".into()),
        // SIG and KEY: RRSIG's and DNSKEY's forms.
        24 => rrsig(&texts, origin).map(raw),
        25 => dnskey(&texts).map(raw),
        // One name: DNAME, MB, MD, MF, MG, MR.
        39 | 3 | 4 | 7 | 8 | 9 => match texts[..] {
            [name] => Ok(raw(crate::wire::name_bytes(&name_in(name, origin)?))),
            _ => Err(format!("{rtype} takes one name")),
        },
        // Two names: RP, MINFO.
        17 | 14 => match texts[..] {
            [a, b] => {
                let mut out = crate::wire::name_bytes(&name_in(a, origin)?);
                out.extend(crate::wire::name_bytes(&name_in(b, origin)?));
                Ok(raw(out))
            }
            _ => Err(format!("{rtype} takes two names")),
        },
        // A number and a name: AFSDB, RT, KX.
        18 | 21 | 36 => match texts[..] {
            [n, name] => {
                let n: u16 = n.parse().map_err(|_| format!("{n:?} is not a number"))?;
                let mut out = n.to_be_bytes().to_vec();
                out.extend(crate::wire::name_bytes(&name_in(name, origin)?));
                Ok(raw(out))
            }
            _ => Err(format!("{rtype} takes a number and a name")),
        },
        // URI: priority, weight, target (RFC 7553).
        256 => match tokens {
            [p, w, target] => {
                let mut out = Vec::new();
                for n in [p, w] {
                    let n: u16 = n
                        .text
                        .parse()
                        .map_err(|_| format!("{:?} is not a number", n.text))?;
                    out.extend_from_slice(&n.to_be_bytes());
                }
                out.extend_from_slice(&target.bytes);
                Ok(raw(out))
            }
            _ => Err("URI takes a priority, a weight and a target".into()),
        },
        // EUI48, EUI64: hexadecimal pairs between dashes.
        108 | 109 => match texts[..] {
            [eui] => {
                let bytes = from_hex(&eui.replace('-', ""))?;
                let want = if code == 108 { 6 } else { 8 };
                if bytes.len() != want || eui.split('-').count() != want {
                    return Err(format!("{eui:?} is not an {rtype}"));
                }
                Ok(raw(bytes))
            }
            _ => Err(format!("{rtype} takes one address")),
        },
        // TXT and SPF: character strings of at most 255 bytes each; longer ones are cut into
        // several, as miekg/dns cuts them.
        16 | 99 => {
            let mut strings: Vec<&[u8]> = Vec::new();
            for t in tokens {
                if t.bytes.is_empty() {
                    strings.push(&[]);
                }
                strings.extend(t.bytes.chunks(255));
            }
            let txt = hickory_proto::rr::rdata::TXT::from_bytes(strings);
            if code == 16 {
                return Ok(RData::TXT(txt));
            }
            let mut bytes = Vec::new();
            let mut encoder = hickory_proto::serialize::binary::BinEncoder::new(&mut bytes);
            hickory_proto::serialize::binary::BinEncodable::emit(&txt, &mut encoder)
                .map_err(|e| e.to_string())?;
            Ok(raw(bytes))
        }
        // SVCB and HTTPS: the target is relative to the origin, as any name.
        64 | 65 => {
            // hickory-proto's reader of the parameters expects visible ASCII other than its
            // lexer's specials (and panics on the rest): anything else is refused here.
            let plain = |c: char| c.is_ascii_graphic() && !"()\";$@\\".contains(c);
            let empty_alpn = |t: &str| {
                t.get(..5).is_some_and(|k| k.eq_ignore_ascii_case("alpn="))
                    && t[5..].split(',').any(str::is_empty)
            };
            if let Some(bad) = texts
                .iter()
                .find(|t| !t.chars().all(plain) || empty_alpn(t))
            {
                return Err(format!("{bad:?}: not a parameter (visible ASCII only)"));
            }
            let mut texts: Vec<String> = texts.iter().map(|t| t.to_string()).collect();
            if let Some(target) = texts.get_mut(1)
                && target != "."
            {
                *target = name_in(target, origin)?.to_ascii();
            }
            RData::parse(rtype, texts.iter().map(String::as_str), Some(origin))
                .map_err(|e| e.to_string())
        }
        _ if matches!(rtype, RecordType::Unknown(_)) => Err(format!(
            "the data of type {code} is not read here: write it in RFC 3597's form, \\# LENGTH HEX"
        )),
        _ => {
            // Names in the data may be `@`, for the origin.
            let origin_text = origin.to_ascii();
            let texts = tokens.iter().map(|t| {
                if !t.quoted && t.text == "@" {
                    origin_text.as_str()
                } else {
                    t.text.as_str()
                }
            });
            RData::parse(rtype, texts, Some(origin)).map_err(|e| e.to_string())
        }
    }
}

/// RFC 3597 §5: data in the generic form must be what the type's own form would give. For
/// the types answers read (names in the data), it is checked.
pub(crate) fn generic_valid(rtype: RecordType, bytes: &[u8]) -> Result<(), String> {
    use hickory_proto::serialize::binary::{BinDecoder, Restrict};
    let code = u16::from(rtype);
    // One whole uncompressed name: DNAME, MB, MD, MF, MG, MR.
    if matches!(code, 39 | 3 | 4 | 7 | 8 | 9) {
        let mut at = 0;
        loop {
            let len = usize::from(*bytes.get(at).ok_or("the name does not end")?);
            if len > 63 {
                return Err("a label longer than 63 bytes".into());
            }
            at += 1 + len;
            if len == 0 {
                break;
            }
        }
        if at != bytes.len() || at > 255 {
            return Err(format!("not the data of a {rtype} record"));
        }
        return Ok(());
    }
    if matches!(rtype, RecordType::Unknown(_)) || matches!(code, 43 | 46 | 47 | 48 | 59 | 60) {
        return Ok(());
    }
    let len = u16::try_from(bytes.len()).map_err(|_| "too long")?;
    let mut decoder = BinDecoder::new(bytes);
    match RData::read(&mut decoder, rtype, Restrict::new(len)) {
        Ok(_) if decoder.is_empty() => Ok(()),
        _ => Err(format!("not the data of a {rtype} record")),
    }
}

/// RFC 3597: `LENGTH HEX...`.
fn generic(texts: &[&str]) -> Result<Vec<u8>, String> {
    let (len, hex) = texts.split_first().ok_or("\\# needs a length")?;
    let len: usize = len
        .parse()
        .map_err(|_| format!("\\#: {len:?} is not a length"))?;
    let bytes = from_hex(&hex.concat())?;
    if bytes.len() != len {
        return Err(format!("\\#: {len} bytes said, {} given", bytes.len()));
    }
    Ok(bytes)
}

fn from_hex(s: &str) -> Result<Vec<u8>, String> {
    if !s.len().is_multiple_of(2) {
        return Err(format!("{s:?} is not hexadecimal"));
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            s.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("{s:?} is not hexadecimal"))
        })
        .collect()
}

fn number<T: FromStr>(texts: &[&str], at: usize, what: &str) -> Result<T, String> {
    let s = texts.get(at).ok_or_else(|| format!("no {what}"))?;
    s.parse()
        .map_err(|_| format!("{what}: {s:?} is not a number"))
}

fn base64_of(parts: &[&str]) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::STANDARD
        .decode(parts.concat())
        .map_err(|e| format!("base64: {e}"))
}

/// RRSIG: covered type, algorithm, labels, original TTL, expiration, inception, key tag,
/// signer, signature.
fn rrsig(texts: &[&str], origin: &Name) -> Result<Vec<u8>, String> {
    if texts.len() < 9 {
        return Err("RRSIG needs nine fields".into());
    }
    let mut out = Vec::new();
    out.extend_from_slice(&u16::from(parse_type(texts[0])?).to_be_bytes());
    out.push(number(texts, 1, "algorithm")?);
    out.push(number(texts, 2, "labels")?);
    out.extend_from_slice(&number::<u32>(texts, 3, "original TTL")?.to_be_bytes());
    out.extend_from_slice(&signature_time(texts[4])?.to_be_bytes());
    out.extend_from_slice(&signature_time(texts[5])?.to_be_bytes());
    out.extend_from_slice(&number::<u16>(texts, 6, "key tag")?.to_be_bytes());
    out.extend(crate::wire::name_bytes(&name_in(texts[7], origin)?));
    out.extend(base64_of(&texts[8..])?);
    Ok(out)
}

/// [`signature_time`] for other readers of `YYYYMMDDHHmmSS` times.
pub(crate) fn signature_time_secs(s: &str) -> Option<u32> {
    signature_time(s).ok()
}

/// RFC 4034 §3.2: `YYYYMMDDHHmmSS` (UTC), or seconds since the epoch, modulo 2^32.
fn signature_time(s: &str) -> Result<u32, String> {
    let bad = || format!("{s:?} is not a signature time");
    if s.len() != 14 {
        return s.parse().map_err(|_| bad());
    }
    let field = |r: std::ops::Range<usize>| s.get(r).and_then(|f| f.parse::<i64>().ok());
    let (Some(y), Some(mo), Some(d), Some(h), Some(mi), Some(sec)) = (
        field(0..4),
        field(4..6),
        field(6..8),
        field(8..10),
        field(10..12),
        field(12..14),
    ) else {
        return Err(bad());
    };
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return Err(bad());
    }
    // Days from the civil date (proleptic Gregorian).
    let (y, m) = if mo <= 2 {
        (y - 1, mo + 9)
    } else {
        (y, mo - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec;
    Ok(secs.rem_euclid(1 << 32) as u32)
}

/// NSEC: next name, then the types at the name as RFC 4034 §4.1.2's bitmap.
fn nsec(texts: &[&str], origin: &Name) -> Result<Vec<u8>, String> {
    let (next, types) = texts.split_first().ok_or("NSEC needs a next name")?;
    let mut out = crate::wire::name_bytes(&name_in(next, origin)?);
    let mut codes: Vec<u16> = types
        .iter()
        .map(|t| parse_type(t).map(u16::from))
        .collect::<Result<_, _>>()?;
    codes.sort_unstable();
    codes.dedup();
    let mut window: Option<(u8, [u8; 32], usize)> = None;
    let flush = |out: &mut Vec<u8>, w: (u8, [u8; 32], usize)| {
        out.push(w.0);
        out.push(w.2 as u8);
        out.extend_from_slice(&w.1[..w.2]);
    };
    for code in codes {
        let (hi, lo) = ((code >> 8) as u8, (code & 0xff) as usize);
        match &mut window {
            Some((w, _, _)) if *w == hi => {}
            _ => {
                if let Some(w) = window.take() {
                    flush(&mut out, w);
                }
                window = Some((hi, [0; 32], 0));
            }
        }
        let (_, bits, len) = window.as_mut().expect("set above");
        bits[lo / 8] |= 0x80 >> (lo % 8);
        *len = (*len).max(lo / 8 + 1);
    }
    if let Some(w) = window {
        flush(&mut out, w);
    }
    Ok(out)
}

/// DS and CDS: key tag, algorithm, digest type, digest (hexadecimal).
fn ds(texts: &[&str]) -> Result<Vec<u8>, String> {
    numbers_then(
        texts,
        "DS",
        ["key tag", "algorithm", "digest type"],
        |rest| from_hex(&rest.concat()),
    )
}

/// DNSKEY and CDNSKEY: flags, protocol, algorithm, key (base64).
fn dnskey(texts: &[&str]) -> Result<Vec<u8>, String> {
    numbers_then(
        texts,
        "DNSKEY",
        ["flags", "protocol", "algorithm"],
        base64_of,
    )
}

/// A 16-bit number, two 8-bit ones (named `fields`), then the rest of the fields as `rest`
/// reads them: the shape DS and DNSKEY share.
fn numbers_then(
    texts: &[&str],
    what: &str,
    fields: [&str; 3],
    rest: fn(&[&str]) -> Result<Vec<u8>, String>,
) -> Result<Vec<u8>, String> {
    if texts.len() < 4 {
        return Err(format!("{what} needs four fields"));
    }
    let mut out = Vec::new();
    out.extend_from_slice(&number::<u16>(texts, 0, fields[0])?.to_be_bytes());
    out.push(number(texts, 1, fields[1])?);
    out.push(number(texts, 2, fields[2])?);
    out.extend(rest(&texts[3..])?);
    Ok(out)
}

/// The logical lines of `text`, or the line and reason it does not split.
fn lines(text: &str) -> Result<Vec<Line>, (usize, String)> {
    let mut out = Vec::new();
    let mut tokens: Vec<Token> = Vec::new();
    let mut word = String::new();
    let (mut line, mut start, mut depth) = (1usize, 1usize, 0usize);
    let mut blank_owner = false;
    let mut at_line_start = true;
    let mut chars = text.chars().peekable();
    let end_word = |word: &mut String, tokens: &mut Vec<Token>| {
        if !word.is_empty() {
            tokens.push(Token::word(std::mem::take(word)));
        }
    };
    while let Some(c) = chars.next() {
        if at_line_start && depth == 0 && tokens.is_empty() && word.is_empty() {
            blank_owner = c == ' ' || c == '\t';
            start = line;
        }
        at_line_start = false;
        match c {
            ';' => {
                while chars.peek().is_some_and(|&n| n != '\n') {
                    chars.next();
                }
            }
            '"' => {
                let opened = line;
                let mut quoted: Vec<u8> = Vec::new();
                loop {
                    match chars.next() {
                        None => return Err((opened, "unterminated quoted string".into())),
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(d) if d.is_ascii_digit() => {
                                let mut code = String::from(d);
                                for _ in 0..2 {
                                    if let Some(n) = chars.next_if(char::is_ascii_digit) {
                                        code.push(n);
                                    }
                                }
                                let byte: u8 = code
                                    .parse()
                                    .map_err(|_| (line, format!("\\{code} is not a byte")))?;
                                quoted.push(byte);
                            }
                            Some(n) => {
                                quoted.extend_from_slice(n.encode_utf8(&mut [0; 4]).as_bytes())
                            }
                            None => return Err((opened, "unterminated quoted string".into())),
                        },
                        Some('\n') => {
                            line += 1;
                            quoted.push(b'\n');
                        }
                        Some(n) => quoted.extend_from_slice(n.encode_utf8(&mut [0; 4]).as_bytes()),
                    }
                }
                let text = String::from_utf8_lossy(&quoted).into_owned();
                if word.is_empty() {
                    tokens.push(Token {
                        text,
                        quoted: true,
                        bytes: quoted,
                    });
                } else {
                    // `key="value"` (SVCB's parameters) is one token.
                    word.push_str(&text);
                }
            }
            '(' => {
                end_word(&mut word, &mut tokens);
                depth += 1;
            }
            ')' => {
                end_word(&mut word, &mut tokens);
                depth = depth
                    .checked_sub(1)
                    .ok_or((line, "unbalanced parenthesis".to_string()))?;
            }
            '\n' => {
                end_word(&mut word, &mut tokens);
                line += 1;
                at_line_start = true;
                if depth == 0 && !tokens.is_empty() {
                    out.push(Line {
                        tokens: std::mem::take(&mut tokens),
                        blank_owner,
                        line: start,
                    });
                }
            }
            ' ' | '\t' | '\r' => end_word(&mut word, &mut tokens),
            '\\' => {
                word.push('\\');
                if let Some(n) = chars.next() {
                    word.push(n);
                }
            }
            c => word.push(c),
        }
    }
    end_word(&mut word, &mut tokens);
    if depth != 0 {
        return Err((start, "unbalanced parenthesis".into()));
    }
    if !tokens.is_empty() {
        out.push(Line {
            tokens,
            blank_owner,
            line: start,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(text: &str) -> Result<Vec<String>, String> {
        let origin = Name::from_ascii("example.org.").unwrap();
        parse(text, Path::new("db.example.org"), &origin)
            .map(|rs| rs.iter().map(ToString::to_string).collect())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn reads_coredns_readme_zone() {
        let got = records(
            "$ORIGIN example.org.\n\
             @\t3600 IN\tSOA sns.dns.icann.org. noc.dns.icann.org. (\n\
             \t\t2017042745 ; serial\n\
             \t\t7200 3600 1209600 3600 )\n\
             \t3600 IN NS a.iana-servers.net.\n\
             \t3600 IN NS b.iana-servers.net.\n\
             \n\
             www     IN A     127.0.0.1\n\
             \x20       IN AAAA  ::1\n",
        )
        .unwrap();
        assert_eq!(
            got,
            [
                "example.org. 3600 IN SOA sns.dns.icann.org. noc.dns.icann.org. 2017042745 7200 3600 1209600 3600",
                "example.org. 3600 IN NS a.iana-servers.net.",
                "example.org. 3600 IN NS b.iana-servers.net.",
                "www.example.org. 3600 IN A 127.0.0.1",
                "www.example.org. 3600 IN AAAA ::1",
            ]
        );
    }

    #[test]
    fn ttl_defaults_classes_types_and_quotes() {
        let got = records(
            "$TTL 1h\n\
             a 300 A 10.0.0.1\n\
             b A 10.0.0.2\n\
             c IN 60 TXT \"hello world\" \"a\\\"b\" ; comment\n\
             d CNAME @\n\
             e TYPE65534 \\# 3 010203\n\
             f DNAME example.net.\n",
        )
        .unwrap();
        assert_eq!(got[0], "a.example.org. 300 IN A 10.0.0.1");
        assert_eq!(got[1], "b.example.org. 3600 IN A 10.0.0.2");
        assert!(got[2].starts_with("c.example.org. 60 IN TXT"), "{}", got[2]);
        assert_eq!(got[3], "d.example.org. 3600 IN CNAME example.org.");
        assert!(got[4].starts_with("e.example.org. 3600 IN"), "{}", got[4]);
        assert!(got[5].starts_with("f.example.org. 3600 IN"), "{}", got[5]);
    }

    /// A TXT record's character strings.
    fn strings_of(record: &Record) -> Vec<&[u8]> {
        let RData::TXT(txt) = record.data() else {
            panic!("{record:?}");
        };
        txt.iter().map(|s| &s[..]).collect()
    }

    #[test]
    fn quoted_strings_are_character_strings() {
        let origin = Name::from_ascii("example.org.").unwrap();
        let rs = parse(
            "c TXT \"hello world\" \"a\\\"b\" \"\\065\" plain\n",
            Path::new("x"),
            &origin,
        )
        .unwrap();
        let strings = strings_of(&rs[0]);
        assert_eq!(strings, [&b"hello world"[..], b"a\"b", b"A", b"plain"]);
    }

    #[test]
    fn dnssec_records_are_read_as_bytes() {
        let origin = Name::from_ascii("example.org.").unwrap();
        let rs = parse(
            "a 3600 IN RRSIG A 8 3 3600 20300101000000 20200101000000 12345 example.org. AAECAw==\n\
             a 3600 IN NSEC b.example.org. A RRSIG NSEC\n\
             b 3600 IN DS 12345 8 2 0011AABB\n",
            Path::new("x"),
            &origin,
        )
        .unwrap();
        let RData::Unknown { rdata, .. } = rs[0].data() else {
            panic!("{:?}", rs[0]);
        };
        let bytes = rdata.anything();
        assert_eq!(&bytes[..4], &[0, 1, 8, 3]);
        // 2030-01-01T00:00:00Z
        assert_eq!(&bytes[8..12], &1_893_456_000u32.to_be_bytes());
        assert_eq!(&bytes[bytes.len() - 4..], &[0, 1, 2, 3]);
        let RData::Unknown { rdata, .. } = rs[1].data() else {
            panic!();
        };
        // next name, then window 0: A (1), RRSIG (46), NSEC (47): six bytes of bitmap.
        let bitmap = &rdata.anything()[15..];
        assert_eq!(bitmap, &[0, 6, 0x40, 0, 0, 0, 0, 0x03]);
        assert_eq!(u16::from(rs[2].record_type()), 43);
    }

    #[test]
    fn errors_name_the_line() {
        for (text, line, what) in [
            ("a A 10.0.0.1\nb A nope\n", 2, "A record of b.example.org."),
            ("a 300 IN (\nA 10.0.0.1\n", 1, "unbalanced parenthesis"),
            ("\n\nx 1 IN FROB 1\n", 3, "not a record type"),
            ("$FROB 1\n", 1, "$FROB is not supported"),
            ("$GENERATE 5-1 a$ A 10.0.0.$\n", 1, "bad range"),
            ("a NSEC3 1 0 0 - A\n", 1, "NSEC3"),
            ("  A 10.0.0.1\n", 1, "no owner name"),
            ("a \"open\n", 1, "unterminated"),
        ] {
            let e = records(text).unwrap_err();
            assert!(
                e.starts_with(&format!("db.example.org:{line}: ")) && e.contains(what),
                "{text:?}: {e}"
            );
        }
    }

    #[test]
    fn generate_makes_a_record_per_value() {
        let got = records(
            "$GENERATE 1-3 host-$ 60 A 10.0.0.$\n\
             $GENERATE 10-30/10 ${5,3,x} CNAME r-$.example.net.\n\
             $GENERATE 7-7 t TXT \"\\\\$-$\"\n",
        )
        .unwrap();
        assert_eq!(
            got,
            [
                "host-1.example.org. 60 IN A 10.0.0.1",
                "host-2.example.org. 60 IN A 10.0.0.2",
                "host-3.example.org. 60 IN A 10.0.0.3",
                "00f.example.org. 60 IN CNAME r-10.example.net.",
                "019.example.org. 60 IN CNAME r-20.example.net.",
                "023.example.org. 60 IN CNAME r-30.example.net.",
                "t.example.org. 60 IN TXT $-7",
            ]
        );
    }

    #[test]
    fn data_forms_miekg_reads() {
        let origin = Name::from_ascii("example.org.").unwrap();
        let long = "x".repeat(300);
        let text = format!(
            "t TXT \"{long}\" \"\\200\"\n\
             s 300 HTTPS 1 web alpn=\"h2,h3\"\n\
             r RP admin info\n\
             u URI 10 1 \"https://example.org/\"\n\
             e EUI48 00-00-5e-00-53-2a\n\
             z TYPE65534 \\# 0\n"
        );
        // A TTL past 32 bits is no TTL: `99999999999999999w` is read as the type.
        let overflow = format!("{text}big 99999999999999999w A 192.0.2.1\n");
        let e = parse(&overflow, Path::new("x"), &origin)
            .unwrap_err()
            .to_string();
        assert!(e.contains(":7:"), "{e}");
        let rs = parse(&text, Path::new("x"), &origin).unwrap();
        let strings = strings_of(&rs[0]);
        assert_eq!(
            strings.iter().map(|s| s.len()).collect::<Vec<_>>(),
            [255, 45, 1]
        );
        assert_eq!(strings[2], [200]);
        let RData::HTTPS(https) = rs[1].data() else {
            panic!("{:?}", rs[1]);
        };
        assert_eq!(https.0.target_name().to_ascii(), "web.example.org.");
        assert!(rs[1].to_string().contains("h2,h3"), "{}", rs[1]);
        for (i, code, len) in [(2, 17, 37), (3, 256, 24), (4, 108, 6), (5, 65534, 0)] {
            assert_eq!(u16::from(rs[i].record_type()), code, "{}", rs[i]);
            assert_eq!(crate::wire::body(&rs[i]).len() - 10, len, "{}", rs[i]);
        }
    }

    #[test]
    fn an_included_file_keeps_its_ttl_to_itself() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("inc"), "$TTL 60\ni A 192.0.2.2\n").unwrap();
        let main = dir.path().join("db");
        std::fs::write(&main, "$TTL 300\n$INCLUDE inc\nafter A 192.0.2.3\n").unwrap();
        let rs = read(&main, &Name::from_ascii("example.org.").unwrap()).unwrap();
        let ttls: Vec<u32> = rs.iter().map(|r| r.ttl()).collect();
        assert_eq!(ttls, [60, 300]);
    }

    #[test]
    fn signature_times() {
        assert_eq!(signature_time("19700101000000"), Ok(0));
        assert_eq!(signature_time("20000229120000"), Ok(951_825_600));
        assert_eq!(signature_time("1234"), Ok(1234));
        assert!(signature_time("20001301000000").is_err());
    }
}
