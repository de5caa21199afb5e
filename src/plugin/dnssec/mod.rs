//! The `dnssec` plugin: answers signed on the fly, as CoreDNS's `dnssec` plugin signs them.
//!
//! `dnssec [ZONES...] { key file KEY...; cache_capacity CAPACITY }`. For a query with the DO bit
//! in its zones, each RRset of the reply owned by one of its zones gets an RRSIG from every key
//! (in split mode, when there are both key-signing keys (SEP bit) and zone-signing keys, DNSKEY
//! sets are signed by the first and the rest by the second), valid from three hours ago for
//! eight days, with an original TTL of 3600 (the plugin cannot know the records' own). Denial
//! is NSEC "black lies": NXDOMAIN and NODATA become NOERROR with the SOA, an NSEC at the question's
//! name whose next name is `\000.NAME` and whose bitmap lists every type but the one asked, and
//! their RRSIGs; a referral gets its DS signed, or an NSEC saying there is none. `DNSKEY` at a
//! zone's apex is answered with the keys. Signatures are kept (`cache_capacity`, 10000 by
//! default) and made again when they have less than two days left.
//!
//! Unlike CoreDNS, a set that already carries an RRSIG in the reply (a zone signed offline, the
//! plugin's own DNSKEY answer) is not signed a second time, and an upstream's answer passed on
//! whole by `forward` is not signed.

mod key;

use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::NULL;
use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType};

pub use key::{Key, canonical_rrset};

use super::setup::{Building, Context, Setup, SetupError};
use super::{Answered, Phases, Plugin, Random, Reply, Request};
use crate::corefile::{ConfigError, Directive, directive_err, plugin_zones, resolve};
use crate::wire::{LightQuery, Owner, Section, Zones};

const NAME: &str = "dnssec";
/// The original TTL every signature states.
const ORIGINAL_TTL: u32 = 3600;
const HOUR: u32 = 3600;
const DAY: u32 = 24 * HOUR;
const DEFAULT_CAPACITY: usize = 10_000;

/// The `dnssec` directive.
#[derive(Debug, Clone)]
pub struct DnssecConfig {
    pub zones: Vec<LowerName>,
    /// The keys' files, each without its `.key`/`.private` ending.
    pub keys: Vec<PathBuf>,
    pub capacity: usize,
    /// The keys, read when the directive is.
    loaded: Vec<Arc<Key>>,
}

impl Setup for DnssecConfig {
    fn parse(d: &Directive, cx: &Context<'_>) -> Result<Self, ConfigError> {
        let mut config = Self {
            zones: plugin_zones(d, NAME, &d.args, cx.zones)?,
            keys: Vec::new(),
            capacity: DEFAULT_CAPACITY,
            loaded: Vec::new(),
        };
        let dir = cx.root.unwrap_or(cx.dir);
        for o in &d.block {
            let arg_err = || crate::corefile::arg_count_err(o, NAME);
            match o.name.as_str() {
                "key" => match o.args.split_first() {
                    Some((source, files)) if source == "file" && !files.is_empty() => {
                        for f in files {
                            let base = f
                                .strip_suffix(".key")
                                .or_else(|| f.strip_suffix(".private"))
                                .unwrap_or(f);
                            let base = resolve(dir, base);
                            let key = Key::read(&base).map_err(|e| directive_err(o, NAME, e))?;
                            config.keys.push(base);
                            config.loaded.push(Arc::new(key));
                        }
                    }
                    Some((source, _)) if source == "aws_secretsmanager" => {
                        return Err(directive_err(
                            o,
                            NAME,
                            "key aws_secretsmanager is not supported: write the secret's key and \
                             private parts to files and use `key file`",
                        ));
                    }
                    _ => return Err(arg_err()),
                },
                "cache_capacity" => {
                    let [value] = o.args.as_slice() else {
                        return Err(arg_err());
                    };
                    let capacity: i64 = value.parse().map_err(|_| {
                        directive_err(
                            o,
                            NAME,
                            format!("strconv.Atoi: parsing {value:?}: invalid syntax"),
                        )
                    })?;
                    config.capacity = usize::try_from(capacity).unwrap_or(0);
                }
                other => {
                    return Err(directive_err(
                        o,
                        NAME,
                        format!("unknown property '{other}'"),
                    ));
                }
            }
        }
        // Each key must be able to sign one of the zones: its owner at or above it.
        for key in &config.loaded {
            let owner = LowerName::new(&key.owner);
            if !config.zones.iter().any(|z| owner.zone_of(z)) {
                return Err(directive_err(
                    d,
                    NAME,
                    format!(
                        "key {} (keyid: {}) can not sign any of the zones",
                        key.owner, key.tag
                    ),
                ));
            }
        }
        Ok(config)
    }

    fn build(&self, b: &mut Building<'_>) -> Result<(), SetupError> {
        let server = b.server_label();
        let counter = |name, help| {
            crate::metrics::metrics().counter(name, help, format!("server=\"{server}\""))
        };
        let ksk = self.loaded.iter().filter(|k| k.is_ksk()).count();
        let zsk = self.loaded.iter().filter(|k| k.is_zsk()).count();
        b.chain.push(Plugin::Dnssec(Box::new(Dnssec {
            zones: Zones::new(&self.zones),
            keys: self.loaded.clone(),
            split: ksk > 0 && zsk > 0,
            capacity: self.capacity,
            cache: papaya::HashMap::new(),
            hits: counter(
                "coredns_dnssec_cache_hits_total",
                "The count of cache hits.",
            ),
            misses: counter(
                "coredns_dnssec_cache_misses_total",
                "The count of cache misses.",
            ),
        })));
        Ok(())
    }
}

/// One set's signatures: when they expire, and each key's RRSIG RDATA.
type Signatures = (u32, Vec<Vec<u8>>);

/// The plugin as it serves queries.
#[derive(Debug)]
pub struct Dnssec {
    zones: Zones,
    keys: Vec<Arc<Key>>,
    /// Key-signing keys sign DNSKEY sets, zone-signing keys the rest.
    split: bool,
    capacity: usize,
    /// Signatures by what they sign: each key's RRSIG RDATA, and when they expire.
    cache: papaya::HashMap<u64, Arc<Signatures>>,
    hits: Arc<AtomicU64>,
    misses: Arc<AtomicU64>,
}

impl Phases for Dnssec {
    const ANSWERS: bool = true;
    const SCREENS: bool = true;

    /// DNSKEY at a zone's apex.
    fn serve(&self, req: &Request) -> super::Outcome {
        if req.qtype != RecordType::DNSKEY || !self.zones.names().contains(&req.lower) {
            return super::Outcome::Next;
        }
        let mut reply = Reply::authoritative(ResponseCode::NoError);
        let keys: Vec<Record> = self
            .keys
            .iter()
            .map(|k| {
                let data = RData::Unknown {
                    code: RecordType::DNSKEY,
                    rdata: NULL::with(k.rdata()),
                };
                Record::from_rdata(req.name.clone(), k.ttl, data)
            })
            .collect();
        for k in &keys {
            reply.answers.push_record(Owner::Question, k);
        }
        if req.dnssec_ok {
            let zone = Name::from(req.lower.clone());
            let (inception, expiration) = validity(now());
            for sig in self.sign(&keys, &zone, ORIGINAL_TTL, inception, expiration) {
                reply.answers.push_record(Owner::Question, &sig);
            }
        }
        super::Outcome::Reply(reply)
    }

    /// Passes every query on but DNSKEY at a zone's apex.
    fn serve_fast(&self, query: &LightQuery, _: &mut Vec<u8>) -> super::Fast {
        let apex = self.zones.longest_wire(query.key()) == Some(query.key());
        if query.qtype == u16::from(RecordType::DNSKEY) && apex {
            super::Fast::Slow
        } else {
            super::Fast::Next
        }
    }

    /// A query with DO, or for DNSKEY, in the zones goes the full way to be signed.
    fn fast_for(&self, query: &LightQuery, _: std::net::SocketAddr) -> bool {
        let signed = query.edns.is_some_and(|(_, dnssec_ok)| dnssec_ok)
            || query.qtype == u16::from(RecordType::DNSKEY);
        !(signed && self.zones.holds_wire(query.key()))
    }

    fn finish(&self, reply: &mut Reply, asked: &Answered<'_>, _: &mut Random<'_>) {
        if !asked.dnssec_ok {
            return;
        }
        let lower = LowerName::new(asked.name);
        let Some(zone) = self.zones.longest(&lower) else {
            return;
        };
        let zone = Name::from(zone.clone());
        let Some(msg) = reply.message(asked.name, asked.qtype) else {
            return;
        };
        let (inception, expiration) = validity(now());
        let authority = msg.name_servers();
        let soa = authority.iter().any(|r| r.record_type() == RecordType::SOA);
        let ns = authority.iter().any(|r| r.record_type() == RecordType::NS);
        let answers = !msg.answers().is_empty();
        let rcode = reply.rcode;
        let denial = !answers
            && ((soa && rcode == ResponseCode::NoError) || rcode == ResponseCode::NXDomain);
        let delegation = !answers && !soa && ns && rcode == ResponseCode::NoError;
        if delegation {
            let ttl = authority.first().map_or(ORIGINAL_TTL, Record::ttl);
            let ds: Vec<Record> = authority
                .iter()
                .filter(|r| r.record_type() == RecordType::DS)
                .cloned()
                .collect();
            let added = if ds.is_empty() {
                self.nsec(
                    asked,
                    &lower,
                    &zone,
                    Kind::Delegation,
                    ttl,
                    inception,
                    expiration,
                )
            } else {
                self.sign(&ds, &zone, ttl, inception, expiration)
            };
            push(&mut reply.authority, &added);
            return;
        }
        if denial {
            let [soa] = authority else { return };
            if soa.record_type() != RecordType::SOA {
                return;
            }
            let ttl = soa.ttl();
            let kind = if rcode == ResponseCode::NXDomain {
                Kind::NameError
            } else {
                Kind::NoData
            };
            let mut added = self.sign(std::slice::from_ref(soa), &zone, ttl, inception, expiration);
            added.extend(self.nsec(asked, &lower, &zone, kind, ttl, inception, expiration));
            if added.is_empty() {
                return;
            }
            reply.rcode = ResponseCode::NoError;
            if asked.qtype == RecordType::NSEC {
                // The NSEC itself is the answer (the last two records: its RRSIG and it).
                let mut all = vec![soa.clone()];
                all.extend(added);
                reply.answers = Section::default();
                push(&mut reply.answers, &all[all.len().saturating_sub(2)..]);
                reply.authority = Section::default();
            } else {
                push(&mut reply.authority, &added);
            }
            return;
        }
        for (section, records) in [
            (&mut reply.answers, msg.answers()),
            (&mut reply.authority, msg.name_servers()),
            (&mut reply.additional, msg.additionals()),
        ] {
            let mut added = Vec::new();
            for set in rrsets(records) {
                let owner = LowerName::new(set[0].name());
                let Some(signer) = self.zones.longest(&owner) else {
                    continue;
                };
                let signer = Name::from(signer.clone());
                added.extend(self.sign(&set, &signer, set[0].ttl(), inception, expiration));
            }
            push(section, &added);
        }
    }
}

/// What a denial denies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    NameError,
    NoData,
    Delegation,
}

impl Dnssec {
    /// The RRSIGs of `set` (one owner and type) by the keys that sign it, as records.
    fn sign(
        &self,
        set: &[Record],
        signer: &Name,
        ttl: u32,
        inception: u32,
        expiration: u32,
    ) -> Vec<Record> {
        let Some(first) = set.first() else {
            return Vec::new();
        };
        let covered = first.record_type();
        let keys: Vec<&Arc<Key>> = self
            .keys
            .iter()
            .filter(|k| !self.split || (covered == RecordType::DNSKEY) == k.is_ksk())
            .collect();
        let signer = signer.to_lowercase();
        let canonical = key::canonical_rrset(set, ORIGINAL_TTL);
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (u16::from(covered), signer.to_ascii(), &canonical).hash(&mut hasher);
        let id = hasher.finish();
        let cache = self.cache.pin();
        let fresh = cache
            .get(&id)
            .filter(|c| c.0 > now().saturating_add(2 * DAY))
            .cloned();
        let sigs = match fresh {
            Some(cached) => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                cached
            }
            None => {
                self.misses.fetch_add(1, Ordering::Relaxed);
                let labels = first.name().num_labels();
                let mut sigs = Vec::new();
                for key in keys {
                    match key.rrsig(
                        covered,
                        labels,
                        ORIGINAL_TTL,
                        inception,
                        expiration,
                        &signer,
                        &canonical,
                    ) {
                        Ok(rdata) => sigs.push(rdata),
                        Err(e) => {
                            tracing::warn!("dnssec: signing with key {}: {e}", key.tag);
                            return Vec::new();
                        }
                    }
                }
                let made = Arc::new((expiration, sigs));
                if self.capacity > 0 {
                    if cache.len() >= self.capacity
                        && let Some(old) = cache.keys().next().copied()
                    {
                        cache.remove(&old);
                    }
                    cache.insert(id, Arc::clone(&made));
                }
                made
            }
        };
        sigs.1
            .iter()
            .map(|rdata| {
                let data = RData::Unknown {
                    code: RecordType::RRSIG,
                    rdata: NULL::with(rdata.clone()),
                };
                Record::from_rdata(first.name().clone(), ttl, data)
            })
            .collect()
    }

    /// The black lie for the question: an NSEC at its name that covers only it, and its RRSIGs
    /// (the RRSIGs first, as CoreDNS adds them).
    #[allow(clippy::too_many_arguments)]
    fn nsec(
        &self,
        asked: &Answered<'_>,
        lower: &LowerName,
        zone: &Name,
        kind: Kind,
        ttl: u32,
        inception: u32,
        expiration: u32,
    ) -> Vec<Record> {
        let name = asked.name;
        let zero = Name::from_labels(vec![b"\0".to_vec()]).expect("a one-byte label");
        let mut next = if name.is_root() {
            zero.clone()
        } else {
            zero.append_domain(name).unwrap_or_else(|_| name.clone())
        };
        let apex = *lower == LowerName::new(zone);
        let bitmap: Vec<RecordType> = if apex {
            filtered(asked.qtype, APEX, kind)
        } else if kind == Kind::Delegation || asked.qtype == RecordType::DS {
            if kind == Kind::Delegation {
                let mut labels: Vec<Vec<u8>> = name.iter().map(<[u8]>::to_vec).collect();
                if let Some(first) = labels.first_mut() {
                    first.push(0);
                }
                if let Ok(n) = Name::from_labels(labels) {
                    next = n;
                }
            }
            DELEGATION.to_vec()
        } else {
            filtered(asked.qtype, ZONE, kind)
        };
        let mut rdata = crate::wire::name_bytes(&next);
        rdata.extend(type_bitmap(&bitmap));
        let nsec = Record::from_rdata(
            name.clone(),
            ttl,
            RData::Unknown {
                code: RecordType::NSEC,
                rdata: NULL::with(rdata),
            },
        );
        let mut out = self.sign(
            std::slice::from_ref(&nsec),
            zone,
            ttl,
            inception,
            expiration,
        );
        out.push(nsec);
        out
    }
}

const DELEGATION: &[RecordType] = &[
    RecordType::A,
    RecordType::NS,
    RecordType::HINFO,
    RecordType::TXT,
    RecordType::AAAA,
    RecordType::Unknown(29), // LOC
    RecordType::SRV,
    RecordType::CERT,
    RecordType::SSHFP,
    RecordType::RRSIG,
    RecordType::NSEC,
    RecordType::TLSA,
    RecordType::Unknown(55), // HIP
    RecordType::OPENPGPKEY,
    RecordType::Unknown(99), // SPF
];

const ZONE: &[RecordType] = &[
    RecordType::A,
    RecordType::HINFO,
    RecordType::TXT,
    RecordType::AAAA,
    RecordType::Unknown(29),
    RecordType::SRV,
    RecordType::CERT,
    RecordType::SSHFP,
    RecordType::RRSIG,
    RecordType::NSEC,
    RecordType::TLSA,
    RecordType::Unknown(55),
    RecordType::OPENPGPKEY,
    RecordType::Unknown(99),
];

const APEX: &[RecordType] = &[
    RecordType::A,
    RecordType::NS,
    RecordType::SOA,
    RecordType::HINFO,
    RecordType::MX,
    RecordType::TXT,
    RecordType::AAAA,
    RecordType::Unknown(29),
    RecordType::SRV,
    RecordType::CERT,
    RecordType::SSHFP,
    RecordType::RRSIG,
    RecordType::NSEC,
    RecordType::DNSKEY,
    RecordType::TLSA,
    RecordType::Unknown(55),
    RecordType::OPENPGPKEY,
    RecordType::Unknown(99),
];

/// `bitmap` without the type asked, for a denial (NSEC queries keep every type).
fn filtered(qtype: RecordType, bitmap: &[RecordType], kind: Kind) -> Vec<RecordType> {
    if kind == Kind::Delegation || qtype == RecordType::NSEC {
        return bitmap.to_vec();
    }
    let code = u16::from(qtype);
    bitmap
        .iter()
        .copied()
        .filter(|t| u16::from(*t) != code)
        .collect()
}

/// An NSEC type bitmap (RFC 4034 §4.1.2).
pub(crate) fn type_bitmap(types: &[RecordType]) -> Vec<u8> {
    let mut codes: Vec<u16> = types.iter().map(|t| u16::from(*t)).collect();
    codes.sort_unstable();
    codes.dedup();
    let mut out = Vec::new();
    let mut at = 0;
    while at < codes.len() {
        let window = codes[at] >> 8;
        let mut bits = [0u8; 32];
        let mut len = 0;
        while at < codes.len() && codes[at] >> 8 == window {
            let low = usize::from(codes[at] & 0xff);
            bits[low / 8] |= 0x80 >> (low % 8);
            len = low / 8 + 1;
            at += 1;
        }
        out.push(window as u8);
        out.push(len as u8);
        out.extend_from_slice(&bits[..len]);
    }
    out
}

/// The records of a section by owner and type, in order of first appearance; RRSIGs and sets
/// that already have one are left out.
fn rrsets(records: &[Record]) -> Vec<Vec<Record>> {
    let covered: Vec<(LowerName, u16)> = records
        .iter()
        .filter(|r| r.record_type() == RecordType::RRSIG)
        .filter_map(|r| match r.data() {
            RData::Unknown { rdata, .. } => rdata
                .anything()
                .get(..2)
                .map(|t| (LowerName::new(r.name()), u16::from_be_bytes([t[0], t[1]]))),
            _ => None,
        })
        .collect();
    let mut sets: Vec<Vec<Record>> = Vec::new();
    for r in records {
        let rtype = r.record_type();
        if matches!(rtype, RecordType::RRSIG | RecordType::OPT) {
            continue;
        }
        let owner = LowerName::new(r.name());
        if covered.contains(&(owner.clone(), u16::from(rtype))) {
            continue;
        }
        match sets
            .iter_mut()
            .find(|s| s[0].record_type() == rtype && LowerName::new(s[0].name()) == owner)
        {
            Some(set) => set.push(r.clone()),
            None => sets.push(vec![r.clone()]),
        }
    }
    sets
}

fn push(section: &mut Section, records: &[Record]) {
    for r in records {
        section.push_record(Owner::Name(r.name()), r);
    }
}

fn now() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as u32)
}

/// A signature's inception (three hours ago) and expiration (in eight days).
fn validity(now: u32) -> (u32, u32) {
    (now.wrapping_sub(3 * HOUR), now.wrapping_add(8 * DAY))
}

#[cfg(test)]
mod tests {
    use ring::signature::{self, UnparsedPublicKey};

    use super::*;
    use crate::plugin::testing::Served;

    fn data(file: &str) -> PathBuf {
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/dnssec")).join(file)
    }

    #[test]
    fn reads_bind_key_files_of_every_algorithm_and_signs_verifiably() {
        for (base, tag, ksk, verify) in [
            (
                "Kexample.org.+013+25999",
                25999,
                false,
                &signature::ECDSA_P256_SHA256_FIXED as &dyn signature::VerificationAlgorithm,
            ),
            (
                "Kexample.org.+013+47078",
                47078,
                true,
                &signature::ECDSA_P256_SHA256_FIXED,
            ),
            ("Kexample.org.+015+05140", 5140, false, &signature::ED25519),
            (
                "Kexample.org.+008+25021",
                25021,
                false,
                &signature::RSA_PKCS1_2048_8192_SHA256,
            ),
        ] {
            let key = Key::read(&data(base)).unwrap_or_else(|e| panic!("{base}: {e}"));
            assert_eq!(key.tag, tag, "{base}: the tag BIND computed");
            assert_eq!(key.is_ksk(), ksk, "{base}");
            assert_eq!(key.owner.to_ascii(), "example.org.");
            let signed = key.sign(b"what is signed").unwrap();
            let public = if key.algorithm == 8 {
                // RFC 3110: exponent length, exponent, modulus; ring wants PKCS#1 DER.
                let (e_len, rest) = (usize::from(key.public[0]), &key.public[1..]);
                let (e, n) = rest.split_at(e_len);
                let components = signature::RsaPublicKeyComponents { n, e };
                components
                    .verify(
                        &signature::RSA_PKCS1_2048_8192_SHA256,
                        b"what is signed",
                        &signed,
                    )
                    .unwrap_or_else(|_| panic!("{base}: the signature verifies"));
                continue;
            } else if key.algorithm == 13 {
                [&[4u8][..], &key.public].concat()
            } else {
                key.public.clone()
            };
            UnparsedPublicKey::new(verify, public)
                .verify(b"what is signed", &signed)
                .unwrap_or_else(|_| panic!("{base}: the signature verifies"));
        }
    }

    #[test]
    fn a_private_scalar_written_without_its_leading_zeros_is_read() {
        // A P-256 key whose scalar starts with a zero byte (BIND writes 31 bytes for it).
        let pair = (0..)
            .map(|_| {
                let rng = ring::rand::SystemRandom::new();
                let pkcs8 = ring::signature::EcdsaKeyPair::generate_pkcs8(
                    &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                    &rng,
                )
                .unwrap();
                pkcs8.as_ref().to_vec()
            })
            // The scalar sits at a fixed place in ring's PKCS#8 for P-256.
            .find(|der| der[36] == 0)
            .unwrap();
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD;
        let scalar = &pair[37..68];
        let public = &pair[pair.len() - 64..];
        let key = Key::parse(
            &format!("example.org. IN DNSKEY 256 3 13 {}", b64.encode(public)),
            &format!(
                "Private-key-format: v1.3\nAlgorithm: 13 (ECDSAP256SHA256)\nPrivateKey: {}\n",
                b64.encode(scalar)
            ),
        )
        .unwrap();
        assert!(key.sign(b"x").is_ok());
    }

    #[test]
    fn key_files_that_do_not_read_are_refused_with_why() {
        let public = std::fs::read_to_string(data("Kexample.org.+013+25999.key")).unwrap();
        let private = std::fs::read_to_string(data("Kexample.org.+013+25999.private")).unwrap();
        let other = std::fs::read_to_string(data("Kexample.org.+013+47078.private")).unwrap();
        let ed = std::fs::read_to_string(data("Kexample.org.+015+05140.private")).unwrap();
        for (public, private, why) in [
            ("; nothing\n", private.as_str(), "no public key found"),
            (
                "DNSKEY 256 3 13 AAAA",
                private.as_str(),
                "no public key found",
            ),
            (public.as_str(), other.as_str(), "does not match"),
            (public.as_str(), ed.as_str(), "algorithm 15"),
            (
                public.as_str(),
                "Private-key-format: v1.3\nAlgorithm: 13\n",
                "no privatekey",
            ),
            (
                "example.org. IN DNSKEY 256 3 5 AwEAAQ==",
                "Algorithm: 5 (RSASHA1)\n",
                "not supported",
            ),
        ] {
            let e = Key::parse(public, private).unwrap_err();
            assert!(e.contains(why), "{why}: {e}");
        }
    }

    /// A zone served by `file` and signed by the ZSK (and the KSK for DNSKEY).
    fn served(dir: &std::path::Path) -> Served {
        std::fs::write(
            dir.join("db.example.org"),
            "$TTL 300\n$ORIGIN example.org.\n\
             @ IN SOA ns hostmaster 1 3600 600 86400 60\n\
             @ IN NS ns\nns IN A 192.0.2.53\nwww IN A 192.0.2.1\nwww IN A 192.0.2.2\n\
             alias IN CNAME www\nsub IN NS ns.sub\nns.sub IN A 192.0.2.99\n",
        )
        .unwrap();
        Served::new(&format!(
            "example.org:0 {{\n dnssec {{\n  key file {} {}.key\n }}\n file {}\n}}",
            data("Kexample.org.+013+25999").display(),
            data("Kexample.org.+013+47078").display(),
            dir.join("db.example.org").display()
        ))
    }

    /// Each record's owner, TTL and type, with an RRSIG's covered type, algorithm, labels,
    /// original TTL, key tag and signer.
    fn shape(answer: &str) -> Vec<String> {
        use base64::Engine;
        answer
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                match f.as_slice() {
                    [";;", ..] => l.to_string(),
                    [owner, ttl, _, "RRSIG", data] => {
                        let d = base64::engine::general_purpose::STANDARD
                            .decode(data)
                            .unwrap();
                        let covered = RecordType::from(u16::from_be_bytes([d[0], d[1]]));
                        let orig = u32::from_be_bytes([d[4], d[5], d[6], d[7]]);
                        let tag = u16::from_be_bytes([d[16], d[17]]);
                        let signer = {
                            use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};
                            Name::read(&mut BinDecoder::new(&d[18..])).unwrap()
                        };
                        format!(
                            "{owner} {ttl} RRSIG {covered} {} {} {orig} {tag} {signer}",
                            d[2], d[3]
                        )
                    }
                    [owner, ttl, _, rtype, ..] => format!("{owner} {ttl} {rtype}"),
                    _ => l.to_string(),
                }
            })
            .collect()
    }

    #[test]
    fn signs_answers_and_lies_black_for_denials() {
        let dir = tempfile::tempdir().unwrap();
        let s = served(dir.path());
        // Without DO: as the zone is.
        let plain = s.ask("www.example.org. A");
        assert!(!plain.contains("RRSIG"), "{plain}");
        assert!(s.fast("www.example.org. A"));
        let cases: &[(&str, &[&str])] = &[
            (
                "www.example.org. A",
                &[
                    ";; NOERROR aa rd",
                    "www.example.org. 300 A",
                    "www.example.org. 300 A",
                    "www.example.org. 300 RRSIG A 13 3 3600 25999 example.org.",
                    ";; authority",
                    "example.org. 300 NS",
                    "example.org. 300 RRSIG NS 13 2 3600 25999 example.org.",
                ],
            ),
            // Each set of a CNAME chain signed on its own.
            (
                "alias.example.org. A",
                &[
                    ";; NOERROR aa rd",
                    "alias.example.org. 300 CNAME",
                    "www.example.org. 300 A",
                    "www.example.org. 300 A",
                    "alias.example.org. 300 RRSIG CNAME 13 3 3600 25999 example.org.",
                    "www.example.org. 300 RRSIG A 13 3 3600 25999 example.org.",
                    ";; authority",
                    "example.org. 300 NS",
                    "example.org. 300 RRSIG NS 13 2 3600 25999 example.org.",
                ],
            ),
            // NXDOMAIN becomes NOERROR: the name exists with every type but the one asked.
            (
                "nope.example.org. A",
                &[
                    ";; NOERROR aa rd",
                    ";; authority",
                    "example.org. 300 SOA",
                    "example.org. 300 RRSIG SOA 13 2 3600 25999 example.org.",
                    "nope.example.org. 300 RRSIG NSEC 13 3 3600 25999 example.org.",
                    "nope.example.org. 300 NSEC",
                ],
            ),
            (
                "www.example.org. TXT",
                &[
                    ";; NOERROR aa rd",
                    ";; authority",
                    "example.org. 300 SOA",
                    "example.org. 300 RRSIG SOA 13 2 3600 25999 example.org.",
                    "www.example.org. 300 RRSIG NSEC 13 3 3600 25999 example.org.",
                    "www.example.org. 300 NSEC",
                ],
            ),
            // DNSKEY: both keys, signed by the key-signing key only.
            (
                "example.org. DNSKEY",
                &[
                    ";; NOERROR aa rd",
                    "example.org. 3600 DNSKEY",
                    "example.org. 3600 DNSKEY",
                    "example.org. 3600 RRSIG DNSKEY 13 2 3600 47078 example.org.",
                ],
            ),
            // A referral: no DS, so an NSEC says so.
            (
                "www.sub.example.org. A",
                &[
                    ";; NOERROR rd",
                    ";; authority",
                    "sub.example.org. 300 NS",
                    "www.sub.example.org. 300 RRSIG NSEC 13 4 3600 25999 example.org.",
                    "www.sub.example.org. 300 NSEC",
                    ";; additional",
                    "ns.sub.example.org. 300 A",
                ],
            ),
        ];
        for (question, want) in cases {
            assert!(!s.fast(question) || !question.contains("DNSKEY"));
            assert_eq!(shape(&s.ask_dnssec(question)), *want, "{question}");
        }
        // The black lie's NSEC: next name `\000.NAME`, every zone type but A.
        let lie = s.ask_dnssec("nope.example.org. A");
        let nsec = lie.lines().last().unwrap();
        let data = {
            use base64::Engine;
            let b64 = nsec.split_whitespace().last().unwrap();
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap()
        };
        let mut want = b"\x01\x00\x04nope\x07example\x03org\x00".to_vec();
        want.extend(type_bitmap(&filtered(RecordType::A, ZONE, Kind::NameError)));
        assert_eq!(data, want, "{nsec}");
        assert!(!filtered(RecordType::A, ZONE, Kind::NameError).contains(&RecordType::A));
        // Asked for the NSEC itself: it is the answer.
        let own = shape(&s.ask_dnssec("nope.example.org. NSEC"));
        assert_eq!(
            own,
            [
                ";; NOERROR aa rd",
                "nope.example.org. 300 RRSIG NSEC 13 3 3600 25999 example.org.",
                "nope.example.org. 300 NSEC"
            ]
        );
        // A second signing of the same set comes from the cache: the same signature.
        let again = s.ask_dnssec("www.example.org. A");
        assert_eq!(again, s.ask_dnssec("www.example.org. A"));
    }

    #[test]
    fn reads_the_directive_as_coredns_does() {
        let key = data("Kexample.org.+013+25999");
        let key = key.display();
        let c: DnssecConfig = crate::plugin::testing::settings(&format!(
            "dnssec example.org {{\n key file {key}.private\n cache_capacity 50\n}}"
        ))
        .unwrap();
        assert_eq!((c.keys.len(), c.capacity), (1, 50));
        for (lines, why) in [
            (
                format!("dnssec other.test {{\n key file {key}\n}}"),
                "can not sign any of the zones",
            ),
            ("dnssec {\n key\n}".to_string(), "Wrong argument count"),
            ("dnssec {\n key file\n}".to_string(), "Wrong argument count"),
            (
                "dnssec {\n key aws_secretsmanager K\n}".to_string(),
                "use `key file`",
            ),
            (
                "dnssec {\n cache_capacity many\n}".to_string(),
                "invalid syntax",
            ),
            (
                "dnssec {\n nsec3\n}".to_string(),
                "unknown property 'nsec3'",
            ),
        ] {
            let e = crate::plugin::testing::settings::<DnssecConfig>(&lines).unwrap_err();
            assert!(e.contains(why) && e.contains("dnssec"), "{lines}: {e}");
        }
    }

    #[test]
    fn type_bitmaps_are_written_by_window() {
        assert_eq!(
            type_bitmap(&[
                RecordType::A,
                RecordType::MX,
                RecordType::RRSIG,
                RecordType::NSEC
            ]),
            [0, 6, 0x40, 0x01, 0, 0, 0, 0x03]
        );
        assert_eq!(
            type_bitmap(&[RecordType::A, RecordType::CAA]),
            [0, 1, 0x40, 1, 1, 0x40]
        );
    }
}
