//! DNS messages in wire format, written directly: answers are kept as record bytes ready to
//! copy, and a response is the query's header and question followed by those bytes.
//!
//! The question always sits at offset 12, in the query and in the response, so a record owned
//! by the question's name is written with the two-byte pointer `0xC00C` and stays valid in
//! every response. Names inside record data are written whole (no compression), so record
//! bytes can be copied anywhere. No I/O here.

use hickory_proto::rr::{LowerName, Name, Record, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};

/// How the query arrived, which decides how large the response may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Udp => "udp",
            Self::Tcp => "tcp",
        }
    }
}

/// The UDP payload size we advertise in OPT (the DNS Flag Day 2020 value).
pub const EDNS_PAYLOAD: u16 = 1232;

/// The header's length; the question starts here.
pub const HEADER_LEN: usize = 12;
/// A compression pointer to the question's name.
const QUESTION_POINTER: [u8; 2] = [0xC0, 0x0C];

/// A message's header (RFC 1035 4.1.1), read in place: the one place that knows which bit of
/// which byte is which flag and where each count sits.
#[derive(Debug, Clone, Copy)]
pub struct Header<'a>(&'a [u8; HEADER_LEN]);

impl<'a> Header<'a> {
    /// The header at the start of `message`; `None` if it is shorter than one.
    #[inline]
    pub fn of(message: &'a [u8]) -> Option<Self> {
        message.first_chunk().map(Header)
    }

    /// The ID, as its two bytes.
    #[inline]
    pub fn id(self) -> [u8; 2] {
        [self.0[0], self.0[1]]
    }

    /// QR: the message is a response.
    #[inline]
    pub fn is_response(self) -> bool {
        self.0[2] & 0x80 != 0
    }

    /// The opcode (0 is QUERY).
    #[inline]
    pub fn opcode(self) -> u8 {
        (self.0[2] >> 3) & 0x0F
    }

    /// QR clear and opcode QUERY: a standard query.
    #[inline]
    pub fn is_standard_query(self) -> bool {
        self.0[2] & 0xF8 == 0
    }

    /// AA.
    #[inline]
    pub fn authoritative(self) -> bool {
        self.0[2] & 0x04 != 0
    }

    /// TC.
    #[inline]
    pub fn truncated(self) -> bool {
        self.0[2] & 0x02 != 0
    }

    /// RD.
    #[inline]
    pub fn recursion_desired(self) -> bool {
        self.0[2] & 0x01 != 0
    }

    /// RA.
    #[inline]
    pub fn recursion_available(self) -> bool {
        self.0[3] & 0x80 != 0
    }

    /// Z, the bit RFC 1035 reserves.
    #[inline]
    pub fn zero(self) -> bool {
        self.0[3] & 0x40 != 0
    }

    /// AD (RFC 4035).
    #[inline]
    pub fn authentic_data(self) -> bool {
        self.0[3] & 0x20 != 0
    }

    /// CD (RFC 4035).
    #[inline]
    pub fn checking_disabled(self) -> bool {
        self.0[3] & 0x10 != 0
    }

    /// The low four bits of the rcode (the rest is in an OPT record).
    #[inline]
    pub fn rcode_low(self) -> u8 {
        self.0[3] & 0x0F
    }

    /// QDCOUNT.
    #[inline]
    pub fn questions(self) -> u16 {
        self.count(4)
    }

    /// ANCOUNT.
    #[inline]
    pub fn answers(self) -> u16 {
        self.count(6)
    }

    /// NSCOUNT.
    #[inline]
    pub fn authority(self) -> u16 {
        self.count(8)
    }

    /// ARCOUNT.
    #[inline]
    pub fn additional(self) -> u16 {
        self.count(10)
    }

    /// The two flag bytes of a response to this query: QR, the query's opcode, RD and CD,
    /// and the response's own AA, TC, RA and (low) rcode. AD and Z are clear.
    #[inline]
    pub fn response_flags(
        self,
        authoritative: bool,
        truncated: bool,
        rcode_low: u8,
        recursion_available: bool,
    ) -> [u8; 2] {
        let mut hi = 0x80 | (self.0[2] & 0x79);
        if authoritative {
            hi |= 0x04;
        }
        if truncated {
            hi |= 0x02;
        }
        let mut lo = (self.0[3] & 0x10) | (rcode_low & 0x0F);
        if recursion_available {
            lo |= 0x80;
        }
        [hi, lo]
    }

    #[inline]
    fn count(self, at: usize) -> u16 {
        u16::from_be_bytes([self.0[at], self.0[at + 1]])
    }
}

/// A message's header, written in place.
#[derive(Debug)]
pub struct HeaderMut<'a>(&'a mut [u8; HEADER_LEN]);

impl<'a> HeaderMut<'a> {
    /// The header at the start of `message`; `None` if it is shorter than one.
    #[inline]
    pub fn of(message: &'a mut [u8]) -> Option<Self> {
        message.first_chunk_mut().map(HeaderMut)
    }

    /// Reads it back.
    #[inline]
    pub fn get(&self) -> Header<'_> {
        Header(self.0)
    }

    #[inline]
    pub fn set_id(&mut self, id: [u8; 2]) {
        self.0[..2].copy_from_slice(&id);
    }

    /// Clears QR: the message reads as a query.
    #[inline]
    pub fn clear_response(&mut self) {
        self.0[2] &= 0x7F;
    }

    /// Sets TC.
    #[inline]
    pub fn set_truncated(&mut self) {
        self.0[2] |= 0x02;
    }

    /// Both flag bytes at once (see [`Header::response_flags`]).
    #[inline]
    pub fn set_flags(&mut self, flags: [u8; 2]) {
        self.0[2..4].copy_from_slice(&flags);
    }

    /// ANCOUNT, NSCOUNT and ARCOUNT.
    #[inline]
    pub fn set_counts(&mut self, answers: u16, authority: u16, additional: u16) {
        self.0[6..8].copy_from_slice(&answers.to_be_bytes());
        self.0[8..10].copy_from_slice(&authority.to_be_bytes());
        self.0[10..12].copy_from_slice(&additional.to_be_bytes());
    }

    /// AA, RD or RA ([`Flag`]) set or cleared.
    #[inline]
    pub fn set_flag(&mut self, flag: Flag, on: bool) {
        let (byte, bit) = match flag {
            Flag::Authoritative => (2, 0x04),
            Flag::RecursionDesired => (2, 0x01),
            Flag::RecursionAvailable => (3, 0x80),
        };
        if on {
            self.0[byte] |= bit;
        } else {
            self.0[byte] &= !bit;
        }
    }

    /// QDCOUNT, ANCOUNT, NSCOUNT and ARCOUNT all zero.
    #[inline]
    pub fn clear_counts(&mut self) {
        self.0[4..].fill(0);
    }
}

/// The header flags a plugin may set or clear (`header`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flag {
    Authoritative,
    RecursionDesired,
    RecursionAvailable,
}

/// Whose name a record is written under.
#[derive(Debug, Clone, Copy)]
pub enum Owner<'a> {
    /// The question's name, as the client wrote it (a pointer to offset 12).
    Question,
    /// Another name, written whole.
    Name(&'a Name),
}

/// A record without its owner: type, class, TTL, length and data, ready to follow any owner.
pub fn body(record: &Record) -> Vec<u8> {
    let mut out = Vec::with_capacity(32);
    let mut encoder = BinEncoder::new(&mut out);
    encoder.set_canonical_names(true);
    let ok = u16::from(record.record_type()).emit(&mut encoder).is_ok()
        && u16::from(record.dns_class()).emit(&mut encoder).is_ok()
        && record.ttl().emit(&mut encoder).is_ok();
    let len_at = encoder.offset();
    let ok = ok && 0u16.emit(&mut encoder).is_ok() && record.data().emit(&mut encoder).is_ok();
    if !ok {
        return Vec::new();
    }
    let rdlen = (out.len() - len_at - 2) as u16;
    out[len_at..len_at + 2].copy_from_slice(&rdlen.to_be_bytes());
    out
}

/// A name written whole, without compression.
pub fn name_bytes(name: &Name) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len() + 2);
    for label in name.iter() {
        out.push(label.len() as u8);
        out.extend_from_slice(label);
    }
    out.push(0);
    out
}

/// A whole record: its owner's name, then its body.
pub fn full(record: &Record) -> Vec<u8> {
    let mut out = name_bytes(record.name());
    out.extend(body(record));
    out
}

/// One section of a response being built: how many records, and their bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Section {
    pub count: u16,
    pub bytes: Vec<u8>,
}

impl Section {
    /// Adds record bodies (as [`body`] writes them, `count` of them back to back) under `owner`.
    pub fn push_bodies(&mut self, owner: Owner<'_>, bodies: &[u8], count: u16) {
        let owned;
        let owner: &[u8] = match owner {
            Owner::Question => &QUESTION_POINTER,
            Owner::Name(name) => {
                owned = name_bytes(name);
                &owned
            }
        };
        self.count += push_owned(&mut self.bytes, owner, bodies, count);
    }

    /// Adds whole records (as [`full`] writes them).
    pub fn push_full(&mut self, records: &[u8], count: u16) {
        self.bytes.extend_from_slice(records);
        self.count += count;
    }

    /// Adds one record under `owner`.
    pub fn push_record(&mut self, owner: Owner<'_>, record: &Record) {
        self.push_bodies(owner, &body(record), 1);
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

/// Where the name starting at `at` ends: after its labels and their closing zero, or after a
/// compression pointer. `None` if the bytes end first.
pub(crate) fn skip_name(bytes: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let len = *bytes.get(at)?;
        if len == 0 {
            return Some(at + 1);
        }
        if len & 0xC0 == 0xC0 {
            return Some(at + 2);
        }
        at += 1 + usize::from(len);
    }
}

/// The records of a section, each as its bytes, in order; `None` if the bytes do not parse.
pub(crate) fn records(section: &[u8]) -> Option<Vec<&[u8]>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < section.len() {
        let start = at;
        at = skip_name(section, at)?;
        let rdlen = u16::from_be_bytes([*section.get(at + 8)?, *section.get(at + 9)?]);
        at += 10 + usize::from(rdlen);
        out.push(section.get(start..at)?);
    }
    Some(out)
}

/// The TTL of the first whole record in `section`.
pub fn first_ttl(section: &[u8]) -> Option<u32> {
    let at = skip_name(section, 0)?;
    let ttl = section.get(at + 4..at + 8)?;
    Some(u32::from_be_bytes([ttl[0], ttl[1], ttl[2], ttl[3]]))
}

/// The type of a whole record.
fn record_type(record: &[u8]) -> u16 {
    skip_name(record, 0)
        .and_then(|at| record.get(at..at + 2))
        .map_or(0, |t| u16::from_be_bytes([t[0], t[1]]))
}

/// CoreDNS's `loadbalance round_robin`: CNAMEs and other records first, then the A and AAAA
/// records in a random order (`random` is a fresh random number).
pub fn shuffle_addresses(section: &mut Section, random: &mut u64) {
    const A: u16 = 1;
    const AAAA: u16 = 28;
    if section.count < 2 {
        return;
    }
    let Some(all) = records(&section.bytes) else {
        return;
    };
    let (mut addresses, rest): (Vec<&[u8]>, Vec<&[u8]>) = all
        .into_iter()
        .partition(|r| matches!(record_type(r), A | AAAA));
    if addresses.len() < 2 {
        return;
    }
    for i in (1..addresses.len()).rev() {
        addresses.swap(i, draw(random, i));
    }
    let bytes: Vec<u8> = rest
        .into_iter()
        .chain(addresses)
        .flatten()
        .copied()
        .collect();
    section.bytes = bytes;
}

/// A Fisher-Yates draw: an index from 0 to `i`, with the bits of `random` stirred (xorshift).
fn draw(random: &mut u64, i: usize) -> usize {
    *random ^= *random << 13;
    *random ^= *random >> 7;
    *random ^= *random << 17;
    (*random % (i as u64 + 1)) as usize
}

/// An rcode by miekg/dns's name for it (`NXDOMAIN`, `BADCOOKIE`, ...), upper case, as CoreDNS's
/// plugins read one from a Corefile.
pub fn rcode_named(name: &str) -> Option<u16> {
    const LOW: [&str; 11] = [
        "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "YXDOMAIN", "YXRRSET",
        "NXRRSET", "NOTAUTH", "NOTZONE",
    ];
    const HIGH: [&str; 8] = [
        "BADSIG",
        "BADKEY",
        "BADTIME",
        "BADMODE",
        "BADNAME",
        "BADALG",
        "BADTRUNC",
        "BADCOOKIE",
    ];
    match name {
        "NOTIMPL" => Some(4),
        "BADVERS" => Some(16),
        _ => LOW
            .iter()
            .position(|n| *n == name)
            .or_else(|| HIGH.iter().position(|n| *n == name).map(|i| 16 + i))
            .map(|i| i as u16),
    }
}

/// Where the question of a query ends: after its name (labels, ending in a zero or a pointer)
/// and its type and class. `None` if the bytes end first.
pub fn question_end(query: &[u8]) -> Option<usize> {
    let end = skip_name(query, HEADER_LEN)? + 4;
    (end <= query.len()).then_some(end)
}

/// Whether the question's name has a compression pointer (or is cut short).
pub fn question_compressed(query: &[u8]) -> bool {
    let mut at = HEADER_LEN;
    loop {
        match query.get(at) {
            None => return true,
            Some(0) => return false,
            Some(&len) if len & 0xC0 != 0 => return true,
            Some(&len) => at += 1 + usize::from(len),
        }
    }
}

/// A whole message's sections, as [`parse_sections`] reads them.
#[derive(Debug)]
pub struct ParsedSections {
    /// Answer, authority and additional, without the OPT record.
    pub sections: [Section; 3],
    /// Where each record's TTL sits: section index and offset in it.
    pub ttls: Vec<(u8, u32)>,
    /// The smallest TTL of any record.
    pub min_ttl: Option<u32>,
    /// For negative answers (RFC 2308): the smaller of the authority SOA's TTL and MINIMUM.
    pub negative_ttl: Option<u32>,
}

/// Splits a message into its sections, as bytes that stay valid after the same header and
/// question (compression pointers point backwards into either). `None` if the message does
/// not parse, or its OPT record is not the last one (the records after it would move).
pub fn parse_sections(message: &[u8]) -> Option<ParsedSections> {
    const OPT: u16 = 41;
    const SOA: u16 = 6;
    let header = Header::of(message)?;
    if header.questions() != 1 {
        return None;
    }
    let counts = [header.answers(), header.authority(), header.additional()];
    let mut at = question_end(message)?;
    let mut out = ParsedSections {
        sections: Default::default(),
        ttls: Vec::new(),
        min_ttl: None,
        negative_ttl: None,
    };
    for (s, &n) in counts.iter().enumerate() {
        for i in 0..n {
            let start = at;
            let fixed = skip_name(message, at)?;
            let header = message.get(fixed..fixed + 10)?;
            let rtype = u16::from_be_bytes([header[0], header[1]]);
            let ttl = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
            let rdlen = usize::from(u16::from_be_bytes([header[8], header[9]]));
            at = fixed + 10 + rdlen;
            let rdata = message.get(fixed + 10..at)?;
            if rtype == OPT {
                if s != 2 || i + 1 != n {
                    return None;
                }
                continue;
            }
            let section = &mut out.sections[s];
            out.ttls
                .push((s as u8, (section.bytes.len() + (fixed - start) + 4) as u32));
            section.bytes.extend_from_slice(&message[start..at]);
            section.count += 1;
            out.min_ttl = Some(out.min_ttl.map_or(ttl, |m| m.min(ttl)));
            if s == 1 && rtype == SOA && rdata.len() >= 4 {
                let minimum = u32::from_be_bytes(rdata[rdata.len() - 4..].try_into().ok()?);
                out.negative_ttl = Some(ttl.min(minimum));
            }
        }
    }
    (at == message.len()).then_some(out)
}

/// A query of our own (a health check, a probe, a refresh): ID `id`, RD as given, one
/// question for `name` (wire format) of type `qtype`, class IN, and `opt` when given.
pub fn query(
    id: u16,
    name: &[u8],
    qtype: u16,
    recursion_desired: bool,
    opt: Option<[u8; 11]>,
) -> Vec<u8> {
    let mut q = Vec::with_capacity(HEADER_LEN + name.len() + 4 + 11);
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[u8::from(recursion_desired), 0, 0, 1, 0, 0, 0, 0, 0]);
    q.push(u8::from(opt.is_some()));
    q.extend_from_slice(name);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&1u16.to_be_bytes());
    if let Some(opt) = opt {
        q.extend_from_slice(&opt);
    }
    q
}

/// An OPT record: our UDP size, EDNS version 0, the high bits of the rcode, and DO.
pub fn opt(payload: u16, rcode_high: u8, dnssec_ok: bool) -> [u8; 11] {
    let mut o = [0u8; 11];
    // root owner (o[0] = 0), type OPT (41), class = payload size
    o[1..3].copy_from_slice(&41u16.to_be_bytes());
    o[3..5].copy_from_slice(&payload.to_be_bytes());
    // TTL: extended rcode, version 0, flags (DO is the top bit)
    o[5] = rcode_high;
    o[6] = 0;
    o[7] = if dnssec_ok { 0x80 } else { 0 };
    // o[8] = 0, rdlength 0
    o
}

/// The longest name in wire format (RFC 1035 2.3.4).
pub const MAX_NAME: usize = 255;

/// A query as far as a common answer needs it, read without allocating: the question's name
/// lowercased into a key, its type, and the OPT record's size and DO bit. See [`parse_light`].
#[derive(Debug, Clone, Copy)]
pub struct LightQuery {
    /// The question's name in wire format, lowercase, with the root's zero.
    pub key: [u8; MAX_NAME],
    pub key_len: usize,
    pub qtype: u16,
    /// Where the question ends (the response copies the query up to here).
    pub question_end: usize,
    /// The OPT record's UDP payload size and DO bit, when the query has one.
    pub edns: Option<(u16, bool)>,
}

impl LightQuery {
    pub fn key(&self) -> &[u8] {
        &self.key[..self.key_len]
    }
}

/// Reads a plain query: QR clear, opcode QUERY, one question of class IN with an uncompressed
/// name, no answer or authority records, and at most an EDNS(0) OPT (without a client subnet
/// option) as the only additional record, ending exactly where the packet does. Anything else (`None`) is for the full
/// parse, which knows every error code.
pub fn parse_light(query: &[u8]) -> Option<LightQuery> {
    const OPT: u16 = 41;
    let header = Header::of(query)?;
    if query.len() < HEADER_LEN + 5 || !header.is_standard_query() {
        return None;
    }
    if header.questions() != 1
        || header.answers() != 0
        || header.authority() != 0
        || header.additional() > 1
    {
        return None;
    }
    let mut out = LightQuery {
        key: [0; MAX_NAME],
        key_len: 0,
        qtype: 0,
        question_end: 0,
        edns: None,
    };
    // No compression in a plain question: a pointer goes the full way.
    let (key_len, mut at) = read_name(query, HEADER_LEN, &mut out.key, Pointers::Refuse)?;
    out.key_len = key_len;
    let fixed = query.get(at..at + 4)?;
    out.qtype = u16::from_be_bytes([fixed[0], fixed[1]]);
    // OPT as a question is an error; IXFR, AXFR, MAILB, MAILA and ANY are not plain.
    if out.qtype == OPT || (251..=255).contains(&out.qtype) {
        return None;
    }
    if u16::from_be_bytes([fixed[2], fixed[3]]) != 1 {
        return None;
    }
    out.question_end = at + 4;
    at = out.question_end;
    if header.additional() == 1 {
        // The OPT: root owner, type, payload size, extended rcode, version, flags, options.
        let opt = query.get(at..at + 11)?;
        if opt[0] != 0 || u16::from_be_bytes([opt[1], opt[2]]) != OPT || opt[6] != 0 {
            return None;
        }
        let payload = u16::from_be_bytes([opt[3], opt[4]]);
        let dnssec_ok = opt[7] & 0x80 != 0;
        let rdlen = usize::from(u16::from_be_bytes([opt[9], opt[10]]));
        at += 11;
        let mut options = query.get(at..at + rdlen)?;
        while !options.is_empty() {
            // A client subnet option has content to check (RFC 7871 7.1.1): the full parse.
            const CLIENT_SUBNET: u16 = 8;
            if u16::from_be_bytes([options[0], *options.get(1)?]) == CLIENT_SUBNET {
                return None;
            }
            let len = usize::from(u16::from_be_bytes([*options.get(2)?, *options.get(3)?]));
            options = options.get(4 + len..)?;
        }
        at += rdlen;
        out.edns = Some((payload, dnssec_ok));
    }
    (at == query.len()).then_some(out)
}

/// What [`read_name`] does with a compression pointer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pointers {
    Follow,
    /// The name must be written whole (a plain query's question).
    Refuse,
}

/// The name at `at` in `message`, lowercased into `key` in wire format (its labels, then the
/// root's zero): its length in `key`, and where it ends in `message` (after the first pointer,
/// when one is followed). `None` if it is cut short, longer than [`MAX_NAME`], has an extended
/// label type, loops (more than 32 pointers), or is compressed under [`Pointers::Refuse`].
#[inline]
pub fn read_name(
    message: &[u8],
    mut at: usize,
    key: &mut [u8; MAX_NAME],
    pointers: Pointers,
) -> Option<(usize, usize)> {
    let mut len = 0;
    let mut jumps = 0;
    let mut end = None;
    loop {
        let label = usize::from(*message.get(at)?);
        if label & 0xC0 == 0xC0 && pointers == Pointers::Follow {
            jumps += 1;
            if jumps > 32 {
                return None;
            }
            let low = usize::from(*message.get(at + 1)?);
            end.get_or_insert(at + 2);
            at = ((label & 0x3F) << 8) | low;
            continue;
        }
        if label > 63 || len + 1 + label > MAX_NAME {
            return None;
        }
        let bytes = message.get(at + 1..at + 1 + label)?;
        key[len] = label as u8;
        for (k, b) in key[len + 1..len + 1 + label].iter_mut().zip(bytes) {
            *k = b.to_ascii_lowercase();
        }
        len += 1 + label;
        at += 1 + label;
        if label == 0 {
            return Some((len, end.unwrap_or(at)));
        }
    }
}

/// One record after the question, as [`records_after_question`] finds it.
#[derive(Debug, Clone)]
pub struct RecordSpan {
    /// Its place among the answer, authority and additional records, counted together.
    pub index: usize,
    /// Where it starts (its owner name) and where its data is.
    pub start: usize,
    pub rtype: u16,
    pub data: std::ops::Range<usize>,
}

/// The records after the first question, as the header counts them; `None` in their place
/// (and nothing after it) where they do not parse.
pub fn records_after_question(message: &[u8]) -> impl Iterator<Item = Option<RecordSpan>> + '_ {
    let total = Header::of(message).map_or(0, |h| {
        usize::from(h.answers()) + usize::from(h.authority()) + usize::from(h.additional())
    });
    let mut at = question_end(message);
    (0..total).map_while(move |index| {
        let start = at?;
        let record = (|| {
            let fixed = skip_name(message, start)?;
            let header = message.get(fixed..fixed + 10)?;
            let rdlen = usize::from(u16::from_be_bytes([header[8], header[9]]));
            let data = fixed + 10..fixed + 10 + rdlen;
            message.get(data.clone())?;
            Some(RecordSpan {
                index,
                start,
                rtype: u16::from_be_bytes([header[0], header[1]]),
                data,
            })
        })();
        at = record.as_ref().map(|r| r.data.end);
        // One `None` for a record that does not parse, then the end.
        Some(record)
    })
}

/// The OPT record of `message` as miekg/dns's `IsEdns0` finds it: the last OPT of the
/// additional section.
pub fn last_opt(message: &[u8]) -> Option<RecordSpan> {
    const OPT: u16 = 41;
    let header = Header::of(message)?;
    let additional_from = usize::from(header.answers()) + usize::from(header.authority());
    records_after_question(message)
        .map_while(|r| r)
        .filter(|r| r.index >= additional_from && r.rtype == OPT)
        .last()
}

/// The whole options of an OPT record's data: each one's code, and where it starts and ends
/// (its code and length included). A last option that overruns the data is left out.
pub fn edns_options(data: &[u8]) -> Vec<(u16, usize, usize)> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(head) = data.get(at..at + 4) {
        let code = u16::from_be_bytes([head[0], head[1]]);
        let end = at + 4 + usize::from(u16::from_be_bytes([head[2], head[3]]));
        if end > data.len() {
            break;
        }
        out.push((code, at, end));
        at = end;
    }
    out
}

/// Replaces the data of `message`'s OPT record with what `edit` makes of it, or, when it has
/// none, adds one (UDP payload `payload`, flags `flags`: DO is 0x8000) holding what `edit`
/// makes of nothing. `false`, and nothing changed, when the new data does not fit an OPT.
pub fn edit_opt(
    message: &mut Vec<u8>,
    payload: u16,
    flags: u16,
    edit: impl FnOnce(&[u8]) -> Vec<u8>,
) -> bool {
    const OPT: u16 = 41;
    match last_opt(message) {
        Some(o) => {
            let data = edit(&message[o.data.clone()]);
            let Ok(len) = u16::try_from(data.len()) else {
                return false;
            };
            message[o.data.start - 2..o.data.start].copy_from_slice(&len.to_be_bytes());
            message.splice(o.data, data);
        }
        None => {
            let data = edit(&[]);
            let Ok(len) = u16::try_from(data.len()) else {
                return false;
            };
            let Some(additional) = Header::of(message).map(|h| h.additional()) else {
                return false;
            };
            let Some(additional) = additional.checked_add(1) else {
                return false;
            };
            message.push(0);
            message.extend_from_slice(&OPT.to_be_bytes());
            message.extend_from_slice(&payload.to_be_bytes());
            message.extend_from_slice(&[0, 0]);
            message.extend_from_slice(&flags.to_be_bytes());
            message.extend_from_slice(&len.to_be_bytes());
            message.extend_from_slice(&data);
            message[10..12].copy_from_slice(&additional.to_be_bytes());
        }
    }
    true
}

/// Whether a message with one question has its OPT records where RFC 6891 6.1.1 puts them (in
/// the additional section) and each one's options filling its data exactly, as 6.1.2 lays them
/// out (miekg/dns fails such a message too). `false` also if the records do not parse.
pub fn opt_well_formed(message: &[u8]) -> bool {
    const OPT: u16 = 41;
    let Some(header) = Header::of(message).filter(|_| question_end(message).is_some()) else {
        return false;
    };
    let before_additional = usize::from(header.answers()) + usize::from(header.authority());
    for record in records_after_question(message) {
        let Some(record) = record else {
            return false;
        };
        if record.rtype == OPT {
            if record.index < before_additional {
                return false;
            }
            let mut options = &message[record.data];
            while !options.is_empty() {
                let Some(len) = options.get(2..4) else {
                    return false;
                };
                let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
                let Some(rest) = options.get(4 + len..) else {
                    return false;
                };
                options = rest;
            }
        }
    }
    true
}

/// A set of zones, asked "is this name in them, and which is the longest" either as a name or
/// as lowercase wire format (the fast path's key): each zone is kept both ways.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Zones {
    names: Vec<LowerName>,
    wire: Vec<Vec<u8>>,
}

impl Zones {
    pub fn new(zones: &[LowerName]) -> Self {
        Self {
            names: zones.to_vec(),
            wire: zones
                .iter()
                .map(|z| name_bytes(&Name::from(z.clone())))
                .collect(),
        }
    }

    pub fn names(&self) -> &[LowerName] {
        &self.names
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The longest zone holding `name`.
    pub fn longest(&self, name: &LowerName) -> Option<&LowerName> {
        self.longest_index(name).map(|i| &self.names[i])
    }

    /// The longest zone holding `key` (lowercase wire format), in wire format.
    pub fn longest_wire(&self, key: &[u8]) -> Option<&[u8]> {
        self.longest_index_wire(key)
            .map(|i| self.wire[i].as_slice())
    }

    /// [`Self::longest`], by its place in the zones given to [`Self::new`].
    pub fn longest_index(&self, name: &LowerName) -> Option<usize> {
        (0..self.names.len())
            .filter(|&i| self.names[i].zone_of(name))
            .max_by_key(|&i| self.names[i].num_labels())
    }

    /// [`Self::longest_wire`], by its place in the zones given to [`Self::new`].
    pub fn longest_index_wire(&self, key: &[u8]) -> Option<usize> {
        (0..self.wire.len())
            .filter(|&i| in_zone(key, &self.wire[i]))
            .max_by_key(|&i| self.wire[i].len())
    }

    /// Whether some zone holds `name`.
    pub fn holds(&self, name: &LowerName) -> bool {
        self.names.iter().any(|z| z.zone_of(name))
    }

    /// Whether some zone holds `key` (lowercase wire format).
    pub fn holds_wire(&self, key: &[u8]) -> bool {
        self.wire.iter().any(|z| in_zone(key, z))
    }
}

/// Whether the name `key` (lowercase wire format) is `zone` or below it.
pub fn in_zone(key: &[u8], zone: &[u8]) -> bool {
    if zone.len() > key.len() {
        return false;
    }
    let start = key.len() - zone.len();
    let mut at = 0;
    while at < start {
        at += 1 + usize::from(key[at]);
    }
    at == start && key[start..] == *zone
}

/// How many labels a lowercase wire-format name has (the root has none).
pub fn label_count(key: &[u8]) -> usize {
    let (mut at, mut n) = (0, 0);
    while let Some(&len) = key.get(at)
        && len != 0
    {
        at += 1 + usize::from(len);
        n += 1;
    }
    n
}

/// Appends record `bodies` (`count` of them back to back, as [`body`] writes them) under the
/// question's name; `false` if they do not split into `count` records.
pub fn push_question_bodies(out: &mut Vec<u8>, bodies: &[u8], count: u16) -> bool {
    push_owned(out, &QUESTION_POINTER, bodies, count) == count
}

/// Appends `count` record bodies, each after `owner` (a name in wire format, written whole);
/// `false` if fewer were whole.
pub fn push_owned_bodies(out: &mut Vec<u8>, owner: &[u8], bodies: &[u8], count: u16) -> bool {
    push_owned(out, owner, bodies, count) == count
}

/// Appends up to `count` record bodies from `bodies`, each after `owner` (a name in wire
/// format or a pointer); returns how many it found whole.
pub fn push_owned(out: &mut Vec<u8>, owner: &[u8], bodies: &[u8], count: u16) -> u16 {
    let mut rest = bodies;
    for pushed in 0..count {
        // type, class, ttl, rdlength, then rdata
        if rest.len() < 10 {
            return pushed;
        }
        let len = 10 + usize::from(u16::from_be_bytes([rest[8], rest[9]]));
        let Some((one, tail)) = rest.split_at_checked(len) else {
            return pushed;
        };
        out.extend_from_slice(owner);
        out.extend_from_slice(one);
        rest = tail;
    }
    count
}

/// `loadbalance` on records of one size in place (address records under the question's name):
/// the same shuffle as [`shuffle_addresses`], without allocating.
pub fn shuffle_fixed(records: &mut [u8], size: usize, random: &mut u64) {
    let n = records.len() / size;
    for i in (1..n).rev() {
        let j = draw(random, i);
        if i != j {
            let (low, high) = records.split_at_mut(i * size);
            low[j * size..(j + 1) * size].swap_with_slice(&mut high[..size]);
        }
    }
}

/// `loadbalance` on a whole response message in place (the fast path's, or an upstream's as it
/// came): in a successful response, each run of A or AAAA answer records with the same owner
/// bytes comes in a random order; `random` is asked for a number only when there is such a run.
/// The records of a run are the same size and differ only in TTL and address, so swapping them
/// whole moves no owner and no compression pointer: the message stays valid, its length too.
pub fn shuffle_message_addresses(message: &mut [u8], mut random: impl FnMut() -> u64) {
    const A: u16 = 1;
    const AAAA: u16 = 28;
    let Some(header) = Header::of(message).filter(|h| h.rcode_low() == 0) else {
        return;
    };
    let answers = header.answers();
    if answers < 2 {
        return;
    }
    let Some(mut at) = question_end(message) else {
        return;
    };
    let mut seed: Option<u64> = None;
    // The current run: where it starts, its records' size, owner length and type, and length.
    let mut run: Option<(usize, usize, usize, u16, usize)> = None;
    let mut shuffle = |message: &mut [u8], run: Option<(usize, usize, usize, u16, usize)>| {
        if let Some((start, size, _, _, n)) = run
            && n > 1
        {
            let seed = seed.get_or_insert_with(&mut random);
            shuffle_fixed(&mut message[start..start + size * n], size, seed);
        }
    };
    for _ in 0..answers {
        let start = at;
        let Some(fixed) = skip_name(message, at) else {
            break;
        };
        let Some(header) = message.get(fixed..fixed + 10) else {
            break;
        };
        let rtype = u16::from_be_bytes([header[0], header[1]]);
        let size = fixed + 10 + usize::from(u16::from_be_bytes([header[8], header[9]])) - start;
        if start + size > message.len() {
            break;
        }
        at = start + size;
        let owner = fixed - start;
        let continues = run.is_some_and(|(first, s, o, t, _)| {
            s == size
                && o == owner
                && t == rtype
                && message[first..first + o] == message[start..fixed]
        });
        if continues {
            if let Some(r) = run.as_mut() {
                r.4 += 1;
            }
            continue;
        }
        shuffle(message, run.take());
        if matches!(rtype, A | AAAA) {
            run = Some((start, size, owner, rtype, 1));
        }
    }
    shuffle(message, run);
}

/// A type's mnemonic, or RFC 3597's `TYPEnnn` for one without.
pub fn type_mnemonic(t: RecordType) -> String {
    match t {
        RecordType::Unknown(n) => format!("TYPE{n}"),
        t => t.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use hickory_proto::op::Message;
    use hickory_proto::rr::rdata::{A, SRV};
    use hickory_proto::rr::{RData, RecordType};

    use super::*;

    fn n(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    #[test]
    fn precompiled_records_parse_back_under_any_owner() {
        let a = Record::from_rdata(
            n("x.example.org."),
            30,
            RData::A(A(Ipv4Addr::new(10, 0, 0, 1))),
        );
        let srv = Record::from_rdata(
            n("x.example.org."),
            30,
            RData::SRV(SRV::new(0, 50, 80, n("t.example.org."))),
        );
        // A header, the question `Q.example.org. A IN`, then two answers under the question.
        let query = {
            let mut m = Message::new();
            m.add_query(hickory_proto::op::Query::query(
                n("Q.example.org."),
                RecordType::A,
            ));
            m.to_vec().unwrap()
        };
        let mut answer = Section::default();
        let bodies = [body(&a), body(&srv)].concat();
        answer.push_bodies(Owner::Question, &bodies, 2);
        let mut additional = Section::default();
        additional.push_full(&full(&a), 1);
        let mut msg = query.clone();
        msg[6..8].copy_from_slice(&answer.count.to_be_bytes());
        msg[10..12].copy_from_slice(&additional.count.to_be_bytes());
        msg.extend(&answer.bytes);
        msg.extend(&additional.bytes);
        let parsed = Message::from_vec(&msg).unwrap();
        assert_eq!(parsed.answers()[0].name().to_string(), "Q.example.org.");
        assert_eq!(parsed.answers()[0].data(), a.data());
        assert_eq!(parsed.answers()[1].data(), srv.data());
        assert_eq!(parsed.additionals()[0], a);
        assert_eq!(question_end(&query), Some(query.len()));
    }

    #[test]
    fn opts_only_in_the_additional_section_with_options_that_fit() {
        // A question for `a.` A IN, the given counts, then `records`.
        let message = |counts: [u16; 3], records: &[&[u8]]| {
            let mut m = vec![0, 1, 1, 0, 0, 1];
            for c in counts {
                m.extend_from_slice(&c.to_be_bytes());
            }
            m.extend_from_slice(&[1, b'a', 0, 0, 1, 0, 1]);
            for r in records {
                m.extend_from_slice(r);
            }
            m
        };
        let opt_with = |options: &[u8]| {
            let mut o = opt(1232, 0, false).to_vec();
            o[9..11].copy_from_slice(&(options.len() as u16).to_be_bytes());
            o.extend_from_slice(options);
            o
        };
        let a = [0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 10, 0, 0, 1];
        let cookie = [0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8];
        for (counts, records, ok) in [
            ([0, 0, 0], vec![], true),
            ([0, 0, 1], vec![opt_with(&[])], true),
            (
                [1, 0, 2],
                vec![a.to_vec(), a.to_vec(), opt_with(&cookie)],
                true,
            ),
            ([1, 0, 0], vec![opt_with(&[])], false),
            ([0, 1, 0], vec![opt_with(&[])], false),
            ([0, 0, 1], vec![opt_with(&cookie[..6])], false),
            ([0, 0, 1], vec![opt_with(&cookie[..2])], false),
            ([0, 0, 1], vec![opt_with(&cookie[..3])], false),
            ([0, 0, 2], vec![opt_with(&[])], false),
        ] {
            let records: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
            let m = message(counts, &records);
            assert_eq!(opt_well_formed(&m), ok, "{counts:?} {m:02x?}");
        }
    }

    #[test]
    fn one_name_reader_for_plain_and_compressed_names() {
        let mut key = [0; MAX_NAME];
        // "Web.Example." at 12, then "www" + a pointer to it at 25.
        let mut m = vec![0; HEADER_LEN];
        m.extend_from_slice(b"\x03Web\x07Example\x00");
        m.extend_from_slice(b"\x03www\xc0\x0c");
        let read = |m: &[u8], at, pointers, key: &mut [u8; MAX_NAME]| {
            read_name(m, at, key, pointers).map(|(len, end)| (key[..len].to_vec(), end))
        };
        assert_eq!(
            read(&m, 12, Pointers::Refuse, &mut key),
            Some((b"\x03web\x07example\x00".to_vec(), 25))
        );
        // A pointer is followed, and the name ends after it in the message.
        assert_eq!(
            read(&m, 25, Pointers::Follow, &mut key),
            Some((b"\x03www\x03web\x07example\x00".to_vec(), 31))
        );
        assert_eq!(read(&m, 25, Pointers::Refuse, &mut key), None);
        // A pointer to itself loops; a name cut short; a label type 0x40.
        let looped = [&m[..HEADER_LEN], b"\xc0\x0c"].concat();
        assert_eq!(read(&looped, 12, Pointers::Follow, &mut key), None);
        assert_eq!(read(&m[..20], 12, Pointers::Follow, &mut key), None);
        let extended = [&m[..HEADER_LEN], b"\x41a\x00"].concat();
        assert_eq!(read(&extended, 12, Pointers::Follow, &mut key), None);
        // Longer than 255 bytes in wire format.
        let mut long = m[..HEADER_LEN].to_vec();
        for _ in 0..5 {
            long.push(63);
            long.extend_from_slice(&[b'a'; 63]);
        }
        long.push(0);
        assert_eq!(read(&long, 12, Pointers::Refuse, &mut key), None);
    }

    #[test]
    fn the_header_view_reads_and_writes_each_field_where_rfc_1035_puts_it() {
        assert!(Header::of(&[0; 11]).is_none());
        // ID 0x1234; QR, opcode 2 (STATUS), AA, TC, RD; RA, CD, rcode 3; counts 1, 2, 3, 4.
        let mut m = vec![0x12, 0x34, 0x97, 0x93, 0, 1, 0, 2, 0, 3, 0, 4, 0xFF];
        let h = Header::of(&m).unwrap();
        assert_eq!(h.id(), [0x12, 0x34]);
        assert!(h.is_response() && h.authoritative() && h.truncated());
        assert!(h.recursion_desired() && h.recursion_available() && !h.is_standard_query());
        assert!(h.checking_disabled() && !h.zero() && !h.authentic_data());
        assert_eq!((h.opcode(), h.rcode_low()), (2, 3));
        let counts = (h.questions(), h.answers(), h.authority(), h.additional());
        assert_eq!(counts, (1, 2, 3, 4));
        // A response keeps the query's opcode, RD and CD, and says its own AA, TC, RA, rcode.
        assert_eq!(h.response_flags(false, false, 0, false), [0x91, 0x10]);
        assert_eq!(h.response_flags(true, true, 0x15, true), [0x97, 0x95]);
        let mut w = HeaderMut::of(&mut m).unwrap();
        w.set_id([0xAB, 0xCD]);
        w.clear_response();
        w.set_counts(5, 6, 7);
        assert!(!w.get().is_response() && w.get().truncated());
        w.set_flags([0, 0]);
        w.set_truncated();
        assert_eq!(m[..12], [0xAB, 0xCD, 0x02, 0, 0, 1, 0, 5, 0, 6, 0, 7]);
        HeaderMut::of(&mut m).unwrap().clear_counts();
        assert_eq!(m[4..], [0, 0, 0, 0, 0, 0, 0, 0, 0xFF]);
    }

    #[test]
    fn question_end_stops_at_the_end_of_the_bytes() {
        assert_eq!(question_end(&[0; 12]), None);
        let mut q = vec![0; 12];
        q.extend([1, b'a', 0, 0, 1, 0]);
        assert_eq!(question_end(&q), None);
        q.push(1);
        assert_eq!(question_end(&q), Some(19));
    }

    #[test]
    fn sections_split_with_their_ttls_and_an_opt_only_at_the_end() {
        use hickory_proto::op::{Edns, Message, MessageType};
        use hickory_proto::rr::rdata::{A, SOA};
        use hickory_proto::rr::{Name, RData, Record};
        let name = Name::from_ascii("www.example.").unwrap();
        let zone = Name::from_ascii("example.").unwrap();
        let mut m = Message::new();
        m.set_id(7).set_message_type(MessageType::Response);
        m.add_query(hickory_proto::op::Query::query(
            name.clone(),
            hickory_proto::rr::RecordType::A,
        ));
        m.add_answer(Record::from_rdata(
            name.clone(),
            300,
            RData::A(A::new(192, 0, 2, 1)),
        ));
        let soa = SOA::new(zone.clone(), zone.clone(), 1, 2, 3, 4, 60);
        m.add_name_server(Record::from_rdata(zone, 120, RData::SOA(soa)));
        m.set_edns(Edns::new());
        let bytes = m.to_vec().unwrap();
        let parsed = parse_sections(&bytes).expect("parses");
        assert_eq!(parsed.sections.each_ref().map(|s| s.count), [1, 1, 0]);
        assert_eq!(parsed.min_ttl, Some(120));
        assert_eq!(parsed.negative_ttl, Some(60));
        let (s, at) = parsed.ttls[0];
        let at = at as usize;
        assert_eq!(
            parsed.sections[usize::from(s)].bytes[at..at + 4],
            300u32.to_be_bytes()
        );
        // Cut short: no parse.
        assert!(parse_sections(&bytes[..bytes.len() - 1]).is_none());
    }
}
