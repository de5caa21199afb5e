//! Signing a zone's records with NSEC (RFC 4034, RFC 4035 §2) and writing the result as a
//! master file.
//!
//! As CoreDNS's `sign`: DNSKEY, RRSIG, CDS and CDNSKEY records in the input are dropped and made
//! anew from the keys (a DNSKEY, a CDNSKEY and a SHA-1 and a SHA-256 CDS per key at the apex,
//! with the SOA's TTL); the SOA serial becomes the signing time; every key signs every
//! authoritative set; each authoritative name gets an NSEC with the SOA minimum as its TTL.
//! Past CoreDNS, a delegation point is signed as RFC 4035 §2.2-2.3 asks (its NSEC says NS, DS,
//! RRSIG, NSEC; its DS set is signed, its NS set is not), where CoreDNS leaves delegation points
//! out of the NSEC chain, so that names under them cannot be proven insecure.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hickory_proto::rr::rdata::{NULL, SOA};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder, BinEncodable, BinEncoder};

use crate::plugin::dnssec::{Key, canonical_rrset, type_bitmap};

const DNSKEY: u16 = 48;
const RRSIG: u16 = 46;
const NSEC: u16 = 47;
const DS: u16 = 43;
const CDS: u16 = 59;
const CDNSKEY: u16 = 60;
const NS: u16 = 2;
const SOA_TYPE: u16 = 6;

/// A signed zone: its records in the order they are written, and its new SOA serial.
#[derive(Debug)]
pub struct Signed {
    pub records: Vec<Record>,
    pub serial: u32,
    /// Records of the input outside the zone, left out.
    pub outside: usize,
}

/// When the signatures are valid: RRSIG inception and expiration, seconds since the epoch.
#[derive(Debug, Clone, Copy)]
pub struct Validity {
    pub now: u32,
    pub inception: u32,
    pub expiration: u32,
}

fn raw(code: u16, bytes: Vec<u8>) -> RData {
    RData::Unknown {
        code: RecordType::from(code),
        rdata: NULL::with(bytes),
    }
}

fn record(owner: &Name, ttl: u32, code: u16, bytes: Vec<u8>) -> Record {
    Record::from_rdata(owner.clone(), ttl, raw(code, bytes))
}

/// The bytes of a record's data, as sent.
fn rdata_bytes(r: &Record) -> Vec<u8> {
    let mut out = Vec::new();
    let mut encoder = BinEncoder::new(&mut out);
    // Emitting into memory only fails for data that cannot be encoded at all.
    let _ = r.data().emit(&mut encoder);
    out
}

/// A DS digest of `key` at `owner` (RFC 4034 §5.1.4): 1 is SHA-1, 2 SHA-256.
fn ds_rdata(owner: &Name, key: &Key, digest_type: u8) -> Vec<u8> {
    let mut data = crate::wire::name_bytes(&owner.to_lowercase());
    data.extend(key.rdata());
    let algorithm = if digest_type == 1 {
        &ring::digest::SHA1_FOR_LEGACY_USE_ONLY
    } else {
        &ring::digest::SHA256
    };
    let digest = ring::digest::digest(algorithm, &data);
    let mut out = Vec::with_capacity(4 + digest.as_ref().len());
    out.extend_from_slice(&key.tag.to_be_bytes());
    out.push(key.algorithm);
    out.push(digest_type);
    out.extend_from_slice(digest.as_ref());
    out
}

/// Signs the zone `origin` of `records` (as the zone-file reader gives them) with `keys`.
pub fn sign(
    records: Vec<Record>,
    origin: &Name,
    keys: &[Arc<Key>],
    when: Validity,
) -> Result<Signed, String> {
    let origin = origin.to_lowercase();
    // Each name's sets by type, in canonical order (Name's order is RFC 4034 §6.1's).
    let mut names: BTreeMap<Name, BTreeMap<u16, Vec<Record>>> = BTreeMap::new();
    let mut soa: Option<(Record, SOA)> = None;
    let mut outside = 0;
    for mut r in records {
        let code = u16::from(r.record_type());
        if matches!(code, DNSKEY | RRSIG | CDS | CDNSKEY) {
            continue;
        }
        if !origin.zone_of(r.name()) {
            outside += 1;
            continue;
        }
        let owner = r.name().to_lowercase();
        r.set_name(owner.clone());
        if let RData::SOA(data) = r.data() {
            if owner == origin {
                soa = Some((r.clone(), data.clone()));
            } else {
                outside += 1;
            }
            continue;
        }
        names
            .entry(owner)
            .or_default()
            .entry(code)
            .or_default()
            .push(r);
    }
    let Some((soa_record, old)) = soa else {
        return Err("the zone has no SOA record".into());
    };
    let ttl = soa_record.ttl();
    let serial = when.now;
    let soa = SOA::new(
        old.mname().clone(),
        old.rname().clone(),
        serial,
        old.refresh(),
        old.retry(),
        old.expire(),
        old.minimum(),
    );
    let negative_ttl = old.minimum();
    let apex = names.entry(origin.clone()).or_default();
    apex.insert(
        SOA_TYPE,
        vec![Record::from_rdata(origin.clone(), ttl, RData::SOA(soa))],
    );
    for key in keys {
        for (code, rdata) in [
            (DNSKEY, key.rdata()),
            (CDS, ds_rdata(&origin, key, 1)),
            (CDS, ds_rdata(&origin, key, 2)),
            (CDNSKEY, key.rdata()),
        ] {
            apex.entry(code)
                .or_default()
                .push(record(&origin, ttl, code, rdata));
        }
    }

    // Names at or under a delegation below the apex: the cuts themselves stay in the chain,
    // what is under them (glue, occluded data) is not the zone's to sign.
    let cuts: Vec<Name> = names
        .iter()
        .filter(|(name, sets)| **name != origin && sets.contains_key(&NS))
        .map(|(name, _)| name.clone())
        .collect();
    let below_cut = |name: &Name| cuts.iter().any(|c| c != name && c.zone_of(name));
    let chain: Vec<Name> = names.keys().filter(|n| !below_cut(n)).cloned().collect();

    let sign_set = |set: &[Record]| -> Result<Vec<Record>, String> {
        let first = &set[0];
        let covered = first.record_type();
        let original_ttl = first.ttl();
        let canonical = canonical_rrset(set, original_ttl);
        keys.iter()
            .map(|key| {
                key.rrsig(
                    covered,
                    first.name().num_labels(),
                    original_ttl,
                    when.inception,
                    when.expiration,
                    &origin,
                    &canonical,
                )
                .map(|rdata| record(first.name(), original_ttl, RRSIG, rdata))
                .map_err(|e| format!("signing with key {}: {e}", key.tag))
            })
            .collect()
    };

    let mut out = Vec::new();
    // The SOA and the apex NS first, as CoreDNS writes them (and looks for the SOA's RRSIG).
    let apex = &names[&origin];
    for code in [SOA_TYPE, NS] {
        if let Some(set) = apex.get(&code) {
            out.extend(set.iter().cloned());
            out.extend(sign_set(set)?);
        }
    }
    for (i, name) in chain.iter().enumerate() {
        let sets = &names[name];
        let cut = cuts.contains(name);
        let mut types: Vec<RecordType> = if cut {
            sets.keys()
                .filter(|c| matches!(**c, NS | DS))
                .map(|c| RecordType::from(*c))
                .collect()
        } else {
            sets.keys().map(|c| RecordType::from(*c)).collect()
        };
        types.extend([RecordType::RRSIG, RecordType::NSEC]);
        for (code, set) in sets {
            if *name == origin && matches!(*code, SOA_TYPE | NS) {
                continue;
            }
            out.extend(set.iter().cloned());
            let signed = if cut { *code == DS } else { *code != NS };
            if signed {
                out.extend(sign_set(set)?);
            }
        }
        let next = &chain[(i + 1) % chain.len()];
        let mut rdata = crate::wire::name_bytes(next);
        rdata.extend(type_bitmap(&types));
        let nsec = record(name, negative_ttl, NSEC, rdata);
        let sigs = sign_set(std::slice::from_ref(&nsec))?;
        out.push(nsec);
        out.extend(sigs);
    }
    // Glue and occluded data, unsigned, after the chain.
    for (name, sets) in &names {
        if below_cut(name) {
            out.extend(sets.values().flatten().cloned());
        }
    }
    Ok(Signed {
        records: out,
        serial,
        outside,
    })
}

/// Why a zone signed earlier should be signed again at `now`, judged by its SOA's RRSIGs among
/// its first 100 records (CoreDNS's rule): an inception more than six days ago or in the
/// future, or less than seven days to the expiration. `None`: its signatures are good.
pub fn resign_reason(records: &[Record], now: u32) -> Option<String> {
    const DAY: i64 = 86_400;
    let mut seen = false;
    for r in records.iter().take(100) {
        let RData::Unknown { code, rdata } = r.data() else {
            continue;
        };
        let bytes = rdata.anything();
        if u16::from(*code) != RRSIG || bytes.get(..2) != Some(&SOA_TYPE.to_be_bytes()[..]) {
            continue;
        }
        let Some(times) = bytes.get(8..16) else {
            return Some("a SOA RRSIG is cut short".into());
        };
        seen = true;
        let expiration = i64::from(u32::from_be_bytes([times[0], times[1], times[2], times[3]]));
        let inception = i64::from(u32::from_be_bytes([times[4], times[5], times[6], times[7]]));
        let now = i64::from(now);
        if now - inception > 6 * DAY {
            return Some(format!(
                "the inception {} was more than 6 days ago",
                signature_time(inception as u32)
            ));
        }
        if inception > now {
            return Some(format!(
                "the inception {} is in the future",
                signature_time(inception as u32)
            ));
        }
        if expiration - now < 7 * DAY {
            return Some(format!(
                "the expiration {} is less than 7 days away",
                signature_time(expiration as u32)
            ));
        }
    }
    (!seen).then(|| "no SOA RRSIG in the first 100 records".into())
}

/// `records` as a master file, one record per line.
pub fn master_file(records: &[Record]) -> String {
    let mut out = String::new();
    for r in records {
        let code = u16::from(r.record_type());
        let _ = writeln!(
            out,
            "{}\t{}\t{}\t{}\t{}",
            r.name(),
            r.ttl(),
            class(r.dns_class()),
            type_name(code),
            data_text(r)
        );
    }
    out
}

fn class(class: DNSClass) -> String {
    match class {
        DNSClass::IN => "IN".into(),
        DNSClass::CH => "CH".into(),
        DNSClass::HS => "HS".into(),
        other => format!("CLASS{}", u16::from(other)),
    }
}

/// A type's mnemonic, or RFC 3597's `TYPEnnn` for one without.
fn type_name(code: u16) -> String {
    crate::wire::type_mnemonic(RecordType::from(code))
}

/// The data of `r` in presentation form: the types whose text is names and numbers as hickory
/// writes them, TXT quoted and escaped, DNSSEC's types by RFC 4034, the rest in RFC 3597's
/// generic form (which every reader of master files takes for any type).
fn data_text(r: &Record) -> String {
    let bytes = rdata_bytes(r);
    let code = u16::from(r.record_type());
    match r.data() {
        RData::A(_)
        | RData::AAAA(_)
        | RData::NS(_)
        | RData::CNAME(_)
        | RData::PTR(_)
        | RData::MX(_)
        | RData::SOA(_)
        | RData::SRV(_) => r.data().to_string(),
        RData::TXT(txt) => txt.iter().map(|s| quoted(s)).collect::<Vec<_>>().join(" "),
        _ => dnssec_text(code, &bytes).unwrap_or_else(|| generic(&bytes)),
    }
}

fn quoted(s: &[u8]) -> String {
    let mut out = String::from("\"");
    for &b in s {
        match b {
            b'"' | b'\\' => {
                out.push('\\');
                out.push(char::from(b));
            }
            0x20..=0x7e => out.push(char::from(b)),
            _ => {
                let _ = write!(out, "\\{b:03}");
            }
        }
    }
    out.push('"');
    out
}

fn generic(bytes: &[u8]) -> String {
    let mut out = format!("\\# {}", bytes.len());
    if !bytes.is_empty() {
        out.push(' ');
        for b in bytes {
            let _ = write!(out, "{b:02X}");
        }
    }
    out
}

fn name_at(bytes: &[u8]) -> Option<(Name, usize)> {
    let mut decoder = BinDecoder::new(bytes);
    let name = Name::read(&mut decoder).ok()?;
    Some((name, decoder.index()))
}

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

/// RRSIG, NSEC, DNSKEY/CDNSKEY and DS/CDS in RFC 4034's presentation forms.
fn dnssec_text(code: u16, b: &[u8]) -> Option<String> {
    match code {
        RRSIG => {
            let (signer, end) = name_at(b.get(18..)?)?;
            Some(format!(
                "{} {} {} {} {} {} {} {} {}",
                type_name(u16_at(b, 0)?),
                b.get(2)?,
                b.get(3)?,
                u32_at(b, 4)?,
                signature_time(u32_at(b, 8)?),
                signature_time(u32_at(b, 12)?),
                u16_at(b, 16)?,
                signer,
                B64.encode(b.get(18 + end..)?)
            ))
        }
        NSEC => {
            let (next, end) = name_at(b)?;
            let mut text = next.to_string();
            let mut at = end;
            while at < b.len() {
                let window = u16::from(*b.get(at)?);
                let len = usize::from(*b.get(at + 1)?);
                for (i, byte) in b.get(at + 2..at + 2 + len)?.iter().enumerate() {
                    for bit in 0..8 {
                        if byte & (0x80 >> bit) != 0 {
                            let t = window * 256 + (i * 8 + bit) as u16;
                            text.push(' ');
                            text.push_str(&type_name(t));
                        }
                    }
                }
                at += 2 + len;
            }
            Some(text)
        }
        DNSKEY | CDNSKEY => Some(format!(
            "{} {} {} {}",
            u16_at(b, 0)?,
            b.get(2)?,
            b.get(3)?,
            B64.encode(b.get(4..)?)
        )),
        DS | CDS => {
            let mut digest = String::new();
            for x in b.get(4..)? {
                let _ = write!(digest, "{x:02X}");
            }
            Some(format!(
                "{} {} {} {digest}",
                u16_at(b, 0)?,
                b.get(2)?,
                b.get(3)?
            ))
        }
        _ => None,
    }
}

/// RFC 4034 §3.2's `YYYYMMDDHHmmSS` (UTC).
pub fn signature_time(secs: u32) -> String {
    let secs = i64::from(secs);
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // The civil date of a day count (proleptic Gregorian, days since 1970-01-01).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}{:02}{:02}{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use ring::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};

    use super::*;
    use crate::plugin::file::text;

    const NOW: u32 = 1_796_000_000;
    const WHEN: Validity = Validity {
        now: NOW,
        inception: NOW - 3 * 3600,
        expiration: NOW + 32 * 86_400,
    };

    fn key() -> Arc<Key> {
        let base = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/dnssec"))
            .join("Kexample.org.+013+47078");
        Arc::new(Key::read(&base).expect("the test KSK reads"))
    }

    fn name(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    const ZONE: &str = "$TTL 30M\n$ORIGIN example.org.\n\
        @ IN SOA ns1.example.org. hostmaster.example.org. ( 1282630060 4H 1H 7D 4H )\n\
        @ IN NS ns1\n\
        @ IN MX 1 mail.example.net.\n\
        @ IN AAAA 2001:db8::1\n\
        @ IN DNSKEY 257 3 13 sfzRg5nDVxbeUc51su4MzjgwpOpUwnuu81SlRHqJuXe3SOYOeypR69tZ52XLmE56TAmPHsiB8Rgk+NTpf0o1Cw==\n\
        ns1 IN A 192.0.2.53\n\
        WWW IN CNAME a\n\
        a IN AAAA 2001:db8::2\n\
        a IN TXT \"quote \\\" and \\\\ and \\007\" second\n\
        bla IN NS ns1.bla.example.com.\n\
        bla IN NS ns2.bla\n\
        ns2.bla IN A 192.0.2.2\n\
        ns3.blaaat IN AAAA ::1\n\
        _sip._udp IN SRV 10 20 5060 sip.example.org.\n\
        caa IN CAA 0 issue \"ca.example.net\"\n\
        other.example.net. IN A 192.0.2.9\n";

    fn signed() -> Signed {
        let records =
            text::parse(ZONE, Path::new("db.example.org"), &name("example.org.")).unwrap();
        sign(records, &name("example.org."), &[key()], WHEN).unwrap()
    }

    fn at<'a>(s: &'a Signed, owner: &str, code: u16) -> Vec<&'a Record> {
        let owner = name(owner);
        s.records
            .iter()
            .filter(|r| r.name() == &owner && u16::from(r.record_type()) == code)
            .collect()
    }

    fn bytes(r: &Record) -> Vec<u8> {
        rdata_bytes(r)
    }

    /// The types an RRSIG record at `owner` covers.
    fn covered(s: &Signed, owner: &str) -> Vec<u16> {
        at(s, owner, RRSIG)
            .iter()
            .map(|r| u16_at(&bytes(r), 0).unwrap())
            .collect()
    }

    /// The NSEC at `owner`: its next name and its types.
    fn nsec(s: &Signed, owner: &str) -> Option<String> {
        at(s, owner, NSEC)
            .first()
            .map(|r| dnssec_text(NSEC, &bytes(r)).unwrap())
    }

    #[test]
    fn keys_serial_and_the_apex_are_made_as_coredns_makes_them() {
        let s = signed();
        assert_eq!(s.serial, NOW);
        assert_eq!(s.outside, 1, "other.example.net is outside the zone");
        let soa = at(&s, "example.org.", SOA_TYPE);
        assert_eq!(soa.len(), 1);
        let RData::SOA(data) = soa[0].data() else {
            panic!("{soa:?}")
        };
        assert_eq!(data.serial(), NOW);
        // The DNSKEY in the file is dropped; the key's own, a CDNSKEY and two CDS take its place,
        // all with the SOA's TTL.
        let dnskeys = at(&s, "example.org.", DNSKEY);
        assert_eq!(dnskeys.len(), 1);
        assert_eq!(bytes(dnskeys[0]), key().rdata());
        assert_eq!(dnskeys[0].ttl(), 1800);
        assert_eq!(at(&s, "example.org.", CDNSKEY).len(), 1);
        let cds: Vec<String> = at(&s, "example.org.", CDS)
            .iter()
            .map(|r| dnssec_text(CDS, &bytes(r)).unwrap())
            .collect();
        assert_eq!(cds.len(), 2);
        assert!(cds[0].starts_with("47078 13 1 ") && cds[0].len() == "47078 13 1 ".len() + 40);
        assert!(cds[1].starts_with("47078 13 2 ") && cds[1].len() == "47078 13 2 ".len() + 64);
        // The SOA first, its RRSIG right after it (where the resign check looks).
        assert_eq!(s.records[0].record_type(), RecordType::SOA);
        assert_eq!(u16::from(s.records[1].record_type()), RRSIG);
        let mut apex = covered(&s, "example.org.");
        apex.sort_unstable();
        assert_eq!(
            apex,
            vec![2, 6, 15, 28, 47, 48, 59, 60],
            "every apex set is signed"
        );
    }

    #[test]
    fn the_nsec_chain_is_in_canonical_order_and_skips_what_is_below_a_cut() {
        let s = signed();
        let chain = [
            (
                "example.org.",
                "_sip._udp.example.org. NS SOA MX AAAA RRSIG NSEC DNSKEY CDS CDNSKEY",
            ),
            ("_sip._udp.example.org.", "a.example.org. SRV RRSIG NSEC"),
            ("a.example.org.", "bla.example.org. TXT AAAA RRSIG NSEC"),
            // The cut: NS (and DS, were there one), never the glue's types.
            ("bla.example.org.", "ns3.blaaat.example.org. NS RRSIG NSEC"),
            (
                "ns3.blaaat.example.org.",
                "caa.example.org. AAAA RRSIG NSEC",
            ),
            ("caa.example.org.", "ns1.example.org. RRSIG NSEC CAA"),
            ("ns1.example.org.", "www.example.org. A RRSIG NSEC"),
            ("www.example.org.", "example.org. CNAME RRSIG NSEC"),
        ];
        for (owner, want) in chain {
            assert_eq!(nsec(&s, owner).as_deref(), Some(want), "{owner}");
            assert_eq!(at(&s, owner, NSEC)[0].ttl(), 4 * 3600, "the SOA minimum");
        }
        let all_nsec = s
            .records
            .iter()
            .filter(|r| u16::from(r.record_type()) == NSEC)
            .count();
        assert_eq!(all_nsec, chain.len());
        // Glue: no NSEC, no signature; the cut's NS set unsigned, its NSEC signed.
        assert_eq!(nsec(&s, "ns2.bla.example.org."), None);
        assert!(covered(&s, "ns2.bla.example.org.").is_empty());
        assert_eq!(at(&s, "ns2.bla.example.org.", 1).len(), 1, "glue is kept");
        assert_eq!(covered(&s, "bla.example.org."), vec![NSEC]);
        // Owners come out lower-cased.
        assert_eq!(at(&s, "www.example.org.", 5).len(), 1);
    }

    #[test]
    fn every_signature_verifies_with_the_key() {
        let s = signed();
        let key = key();
        let mut point = vec![4];
        point.extend_from_slice(&key.public);
        let public = UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point);
        let mut checked = 0;
        for sig in s
            .records
            .iter()
            .filter(|r| u16::from(r.record_type()) == RRSIG)
        {
            let b = bytes(sig);
            let covered = u16_at(&b, 0).unwrap();
            let original_ttl = u32_at(&b, 4).unwrap();
            assert_eq!(b[2], 13);
            assert_eq!(u32_at(&b, 8), Some(WHEN.expiration));
            assert_eq!(u32_at(&b, 12), Some(WHEN.inception));
            assert_eq!(u16_at(&b, 16), Some(key.tag));
            let (signer, end) = name_at(&b[18..]).unwrap();
            assert_eq!(signer, name("example.org."));
            let set: Vec<Record> = s
                .records
                .iter()
                .filter(|r| r.name() == sig.name() && u16::from(r.record_type()) == covered)
                .cloned()
                .collect();
            assert_eq!(b[3], sig.name().num_labels());
            assert_eq!(set[0].ttl(), original_ttl);
            let mut data = b[..18 + end].to_vec();
            for rr in canonical_rrset(&set, original_ttl) {
                data.extend(rr);
            }
            public
                .verify(&data, &b[18 + end..])
                .unwrap_or_else(|_| panic!("the RRSIG over {} {covered} verifies", sig.name()));
            checked += 1;
        }
        // SOA, NS, MX, AAAA, DNSKEY, CDS, CDNSKEY at the apex; SRV, TXT, AAAA, CAA, A, AAAA,
        // CNAME below; an NSEC at each of the eight names.
        assert_eq!(checked, 7 + 7 + 8);
    }

    #[test]
    fn the_written_file_reads_back_as_the_same_records() {
        let s = signed();
        let text = master_file(&s.records);
        assert!(
            text.contains("\"quote \\\" and \\\\ and \\007\" \"second\""),
            "{text}"
        );
        assert!(text.contains("\tCAA\t\\# "), "{text}");
        assert!(text.contains("\tRRSIG\tSOA 13 2 1800 "), "{text}");
        let back = text::parse(
            &text,
            Path::new("db.example.org.signed"),
            &name("example.org."),
        )
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
        let wire = |records: &[Record]| {
            let mut all: Vec<(String, u16, u32, Vec<u8>)> = records
                .iter()
                .map(|r| {
                    (
                        r.name().to_string(),
                        u16::from(r.record_type()),
                        r.ttl(),
                        bytes(r),
                    )
                })
                .collect();
            all.sort();
            all
        };
        assert_eq!(wire(&back), wire(&s.records));
    }

    #[test]
    fn a_zone_without_a_soa_is_refused_and_an_apex_alone_is_its_own_next_name() {
        let origin = name("example.org.");
        let none = text::parse("www 60 IN A 192.0.2.1\n", Path::new("db"), &origin).unwrap();
        assert!(sign(none, &origin, &[key()], WHEN).is_err());
        let apex = text::parse(
            "@ 1800 IN SOA ns1 hostmaster 1 4H 1H 7D 4H\n@ 1800 IN NS ns1.example.net.\n",
            Path::new("db"),
            &origin,
        )
        .unwrap();
        let s = sign(apex, &origin, &[key()], WHEN).unwrap();
        assert_eq!(
            nsec(&s, "example.org.").as_deref(),
            Some("example.org. NS SOA RRSIG NSEC DNSKEY CDS CDNSKEY")
        );
    }

    #[test]
    fn resigning_follows_the_soa_signature_dates() {
        let day = 86_400;
        let soa_sig = |inception: u32, expiration: u32| {
            let text = format!(
                "@ 60 IN SOA ns1 hostmaster 1 4H 1H 7D 4H\n\
                 @ 60 IN RRSIG SOA 13 2 60 {} {} 47078 example.org. AAAA\n",
                signature_time(expiration),
                signature_time(inception)
            );
            text::parse(&text, Path::new("db"), &name("example.org.")).unwrap()
        };
        for (inception, expiration, resign) in [
            (NOW - day, NOW + 30 * day, false),
            (NOW - 5 * day, NOW + 20 * day, false),
            (NOW - 7 * day, NOW + 30 * day, true),
            (NOW + 3600, NOW + 30 * day, true),
            (NOW - day, NOW + 6 * day, true),
        ] {
            assert_eq!(
                resign_reason(&soa_sig(inception, expiration), NOW).is_some(),
                resign,
                "inception {inception}, expiration {expiration}"
            );
        }
        let unsigned = text::parse(
            "@ 60 IN SOA ns1 hostmaster 1 4H 1H 7D 4H\n",
            Path::new("db"),
            &name("example.org."),
        )
        .unwrap();
        assert!(resign_reason(&unsigned, NOW).is_some());
        let fresh = signed();
        assert_eq!(resign_reason(&fresh.records, NOW), None);
    }

    #[test]
    fn signature_times_are_written_as_rfc_4034_says() {
        for (secs, text) in [
            (0, "19700101000000"),
            (951_782_400, "20000229000000"),
            (1_709_164_799, "20240228235959"),
            (1_709_251_199, "20240229235959"),
            (u32::MAX, "21060207062815"),
        ] {
            assert_eq!(signature_time(secs), text);
        }
    }

    #[test]
    fn names_sort_in_rfc_4034_canonical_order() {
        // RFC 4034 §6.1's example, in its order (labels from the left, raw bytes).
        let order: [&[&[u8]]; 9] = [
            &[b"example"],
            &[b"a", b"example"],
            &[b"yljkjljk", b"a", b"example"],
            &[b"Z", b"a", b"example"],
            &[b"zABC", b"a", b"EXAMPLE"],
            &[b"z", b"example"],
            &[b"\x01", b"z", b"example"],
            &[b"*", b"z", b"example"],
            &[b"\x80", b"z", b"example"],
        ];
        let want: Vec<Name> = order
            .iter()
            .map(|labels| Name::from_labels(labels.iter().map(|l| l.to_vec())).unwrap())
            .collect();
        let mut names = want.clone();
        names.reverse();
        names.sort();
        let bytes = |n: &[Name]| -> Vec<Vec<u8>> {
            n.iter()
                .map(|n| n.to_lowercase().to_bytes().unwrap())
                .collect()
        };
        let (sorted, want) = (bytes(&names), bytes(&want));
        assert_eq!(sorted, want);
    }
}
