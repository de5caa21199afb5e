//! DNSSEC signing keys as BIND's `dnssec-keygen` writes them: `K<zone>+<alg>+<tag>.key` (the
//! DNSKEY record) and `.private` (`Private-key-format: v1.x`), signing with ring.
//!
//! Algorithms: RSASHA256 (8), RSASHA512 (10), ECDSAP256SHA256 (13), ECDSAP384SHA384 (14) and
//! ED25519 (15). The SHA-1 algorithms (5, 7) are refused: ring does not sign with them, and
//! RFC 8624 says they must not be used for signing.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hickory_proto::rr::{Name, Record, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};

/// A key that signs.
pub struct Key {
    /// The DNSKEY's owner, from the `.key` file.
    pub owner: Name,
    /// Its TTL in the `.key` file (3600 when it gives none).
    pub ttl: u32,
    pub flags: u16,
    pub algorithm: u8,
    /// The DNSKEY's public key field.
    pub public: Vec<u8>,
    pub tag: u16,
    signer: Signer,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("owner", &self.owner)
            .field("flags", &self.flags)
            .field("algorithm", &self.algorithm)
            .field("tag", &self.tag)
            .finish_non_exhaustive()
    }
}

enum Signer {
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
    Rsa(RsaKeyPair, &'static dyn signature::RsaEncoding),
}

impl Key {
    /// Reads `BASE.key` and `BASE.private`; errors name the file.
    pub fn read(base: &Path) -> Result<Self, String> {
        let public_path = base.with_file_name(format!("{}.key", file_name(base)));
        let private_path = base.with_file_name(format!("{}.private", file_name(base)));
        let public = std::fs::read_to_string(&public_path)
            .map_err(|e| format!("{}: {e}", public_path.display()))?;
        let private = std::fs::read_to_string(&private_path)
            .map_err(|e| format!("{}: {e}", private_path.display()))?;
        Self::parse(&public, &private).map_err(|e| format!("{}: {e}", base.display()))
    }

    /// A key from the text of its `.key` and `.private` files.
    pub fn parse(public: &str, private: &str) -> Result<Self, String> {
        let line = public
            .lines()
            .map(|l| l.split(';').next().unwrap_or("").trim())
            .find(|l| !l.is_empty())
            .ok_or("no public key found")?;
        let fields: Vec<&str> = line.split_whitespace().collect();
        let at = fields
            .iter()
            .position(|f| f.eq_ignore_ascii_case("DNSKEY"))
            .filter(|&at| at > 0)
            .ok_or("no public key found")?;
        let owner = Name::from_ascii(fields[0])
            .map(|mut n| {
                n.set_fqdn(true);
                n
            })
            .map_err(|e| format!("owner {:?}: {e}", fields[0]))?;
        let ttl = fields[1..at]
            .iter()
            .find_map(|f| f.parse::<u32>().ok())
            .unwrap_or(3600);
        let [flags, protocol, algorithm, key @ ..] = &fields[at + 1..] else {
            return Err("a DNSKEY needs flags, protocol, algorithm and key".into());
        };
        let flags: u16 = flags.parse().map_err(|_| format!("flags {flags:?}"))?;
        if *protocol != "3" {
            return Err(format!("protocol {protocol:?}: must be 3"));
        }
        let algorithm: u8 = algorithm
            .parse()
            .map_err(|_| format!("algorithm {algorithm:?}"))?;
        let public = B64
            .decode(key.concat())
            .map_err(|e| format!("public key: {e}"))?;

        let mut fields = std::collections::HashMap::new();
        for line in private.lines() {
            if let Some((k, v)) = line.split_once(':') {
                fields.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
        }
        let private_algorithm = fields
            .get("algorithm")
            .and_then(|a| a.split_whitespace().next())
            .and_then(|a| a.parse::<u8>().ok())
            .ok_or("no private key found")?;
        if private_algorithm != algorithm {
            return Err(format!(
                "the private key is of algorithm {private_algorithm}, the public key of {algorithm}"
            ));
        }
        let field = |name: &str| -> Result<Vec<u8>, String> {
            let v = fields
                .get(name)
                .ok_or_else(|| format!("the private key has no {name}"))?;
            B64.decode(v).map_err(|e| format!("{name}: {e}"))
        };
        let rng = SystemRandom::new();
        let signer = match algorithm {
            13 | 14 => {
                let alg = if algorithm == 13 {
                    &signature::ECDSA_P256_SHA256_FIXED_SIGNING
                } else {
                    &signature::ECDSA_P384_SHA384_FIXED_SIGNING
                };
                let mut point = vec![4];
                point.extend_from_slice(&public);
                // The scalar as a big-endian number: BIND leaves out leading zero bytes.
                let size = if algorithm == 13 { 32 } else { 48 };
                let scalar = field("privatekey")?;
                if scalar.len() > size {
                    return Err("the private key is too long for its curve".into());
                }
                let mut padded = vec![0; size - scalar.len()];
                padded.extend_from_slice(&scalar);
                let pair =
                    EcdsaKeyPair::from_private_key_and_public_key(alg, &padded, &point, &rng)
                        .map_err(|e| {
                            format!("the private key does not match the public key: {e}")
                        })?;
                Signer::Ecdsa(pair)
            }
            15 => Signer::Ed25519(
                Ed25519KeyPair::from_seed_and_public_key(&field("privatekey")?, &public)
                    .map_err(|e| format!("the private key does not match the public key: {e}"))?,
            ),
            8 | 10 => {
                let components = ring::rsa::KeyPairComponents {
                    public_key: ring::rsa::PublicKeyComponents {
                        n: field("modulus")?,
                        e: field("publicexponent")?,
                    },
                    d: field("privateexponent")?,
                    p: field("prime1")?,
                    q: field("prime2")?,
                    dP: field("exponent1")?,
                    dQ: field("exponent2")?,
                    qInv: field("coefficient")?,
                };
                let pair = RsaKeyPair::from_components(&components)
                    .map_err(|e| format!("the RSA key is not usable: {e}"))?;
                let encoding: &'static dyn signature::RsaEncoding = if algorithm == 8 {
                    &signature::RSA_PKCS1_SHA256
                } else {
                    &signature::RSA_PKCS1_SHA512
                };
                Signer::Rsa(pair, encoding)
            }
            5 | 7 => {
                return Err(format!(
                    "algorithm {algorithm} (RSA with SHA-1) is not supported for signing: use \
                     ECDSAP256SHA256 (13)"
                ));
            }
            other => return Err(format!("algorithm {other} is not supported")),
        };
        let mut key = Self {
            owner,
            ttl,
            flags,
            algorithm,
            public,
            tag: 0,
            signer,
        };
        key.tag = key_tag(&key.rdata());
        if let Signer::Ecdsa(pair) = &key.signer
            && pair.public_key().as_ref().get(1..) != Some(&key.public[..])
        {
            return Err("the private key does not match the public key".into());
        }
        Ok(key)
    }

    /// The DNSKEY's RDATA.
    pub fn rdata(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + self.public.len());
        out.extend_from_slice(&self.flags.to_be_bytes());
        out.push(3);
        out.push(self.algorithm);
        out.extend_from_slice(&self.public);
        out
    }

    /// A zone key with the SEP bit: a key-signing key.
    pub fn is_ksk(&self) -> bool {
        self.flags & 0x0100 != 0 && self.flags & 1 == 1
    }

    /// A zone key without the SEP bit: a zone-signing key.
    pub fn is_zsk(&self) -> bool {
        self.flags & 0x0100 != 0 && self.flags & 1 == 0
    }

    /// The signature of `data`.
    pub fn sign(&self, data: &[u8]) -> Result<Vec<u8>, String> {
        let rng = SystemRandom::new();
        match &self.signer {
            Signer::Ecdsa(pair) => pair
                .sign(&rng, data)
                .map(|s| s.as_ref().to_vec())
                .map_err(|e| e.to_string()),
            Signer::Ed25519(pair) => Ok(pair.sign(data).as_ref().to_vec()),
            Signer::Rsa(pair, encoding) => {
                let mut out = vec![0; pair.public().modulus_len()];
                pair.sign(*encoding, &rng, data, &mut out)
                    .map_err(|e| e.to_string())?;
                Ok(out)
            }
        }
    }
}

impl Key {
    /// The RDATA of this key's RRSIG over `canonical` (a set as [`canonical_rrset`] gives it,
    /// with `original_ttl`): RFC 4034 §3.1 and §3.1.8.1. `labels` is the owner's label count
    /// without a leading `*`; `signer` is written as given (lower-case it first).
    #[allow(clippy::too_many_arguments)]
    pub fn rrsig(
        &self,
        covered: RecordType,
        labels: u8,
        original_ttl: u32,
        inception: u32,
        expiration: u32,
        signer: &Name,
        canonical: &[Vec<u8>],
    ) -> Result<Vec<u8>, String> {
        let mut rdata = Vec::new();
        rdata.extend_from_slice(&u16::from(covered).to_be_bytes());
        rdata.push(self.algorithm);
        rdata.push(labels);
        rdata.extend_from_slice(&original_ttl.to_be_bytes());
        rdata.extend_from_slice(&expiration.to_be_bytes());
        rdata.extend_from_slice(&inception.to_be_bytes());
        rdata.extend_from_slice(&self.tag.to_be_bytes());
        rdata.extend(crate::wire::name_bytes(signer));
        let mut data = rdata.clone();
        for rr in canonical {
            data.extend_from_slice(rr);
        }
        rdata.extend(self.sign(&data)?);
        Ok(rdata)
    }
}

/// Each record of `set` in canonical form (RFC 4034 §6.2) with `original_ttl`, sorted and
/// without duplicates (§6.3).
pub fn canonical_rrset(set: &[Record], original_ttl: u32) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = set
        .iter()
        .filter_map(|r| {
            let mut rdata = Vec::new();
            let mut encoder = BinEncoder::new(&mut rdata);
            encoder.set_canonical_names(true);
            r.data().emit(&mut encoder).ok()?;
            let mut rr = crate::wire::name_bytes(&r.name().to_lowercase());
            rr.extend_from_slice(&u16::from(r.record_type()).to_be_bytes());
            rr.extend_from_slice(&u16::from(r.dns_class()).to_be_bytes());
            rr.extend_from_slice(&original_ttl.to_be_bytes());
            rr.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
            rr.extend(rdata);
            Some(rr)
        })
        .collect();
    // Sorted by RDATA: every record of a set has the same owner, type, class and TTL, so
    // sorting the whole records sorts by RDATA (its length before it breaks no tie the RFC's
    // octet order would not).
    out.sort_by(|a, b| rdata_of(a).cmp(rdata_of(b)));
    out.dedup();
    out
}

/// The RDATA of a record as [`canonical_rrset`] writes it.
fn rdata_of(rr: &[u8]) -> &[u8] {
    let mut at = 0;
    while at < rr.len() && rr[at] != 0 {
        at += usize::from(rr[at]) + 1;
    }
    rr.get(at + 1 + 10..).unwrap_or(&[])
}

fn file_name(base: &Path) -> String {
    base.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// RFC 4034 Appendix B.
pub fn key_tag(rdata: &[u8]) -> u16 {
    let mut ac: u32 = 0;
    for (i, b) in rdata.iter().enumerate() {
        ac += if i & 1 == 1 {
            u32::from(*b)
        } else {
            u32::from(*b) << 8
        };
    }
    ac += (ac >> 16) & 0xffff;
    (ac & 0xffff) as u16
}
