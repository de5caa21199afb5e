//! The `cache` plugin: upstream answers kept for their TTL, as CoreDNS's `cache` keeps them.
//!
//! Only what `forward` brings back is cached: the cluster's and hosts' own answers are
//! already precompiled and change the moment the cluster does, so they are never served from
//! here (and never stale). An entry keeps the upstream's sections re-written once without
//! compression (owners whole, or the pointer to the question), so they can be copied into any
//! response and shuffled, with the offset of every TTL so answers count down.
//!
//! Positive answers live for the smallest TTL in them, negative ones (NXDOMAIN, NODATA) for
//! the SOA's TTL or MINIMUM, whichever is smaller (RFC 2308), SERVFAIL for `servfail`; each
//! capped and floored as configured. The store is bounded: past its capacity an entry of the
//! same kind goes. With `serve_stale`, an expired entry answers (TTL 30 s, RFC 8767): at once
//! while it is fetched again behind (`immediate`, the default), or when every upstream fails
//! (`verify`).

pub mod setup;

pub use setup::{CacheConfig, Prefetch};

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::LowerName;

use super::{Owners, Reply};
use crate::metrics::CacheCounters;
use crate::wire::{self, Header, HeaderMut, Section};

/// The TTL of a stale answer (RFC 8767's recommendation).
const STALE_TTL: u32 = 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Success,
    Denial,
    ServFail,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    /// The name in wire format, lowercase.
    name: Box<[u8]>,
    qtype: u16,
    dnssec_ok: bool,
}

impl Key {
    /// A query for this key, as a prefetch asks upstream (RD set, EDNS with DO as keyed).
    pub fn query(&self) -> Vec<u8> {
        let opt = wire::opt(wire::EDNS_PAYLOAD, 0, self.dnssec_ok);
        wire::query(rand::random(), &self.name, self.qtype, true, Some(opt))
    }

    /// The name, lowercase.
    pub fn name(&self) -> Option<LowerName> {
        crate::table::NameKey::from_lowercase_wire(self.name.to_vec())
            .to_name()
            .map(|n| LowerName::new(&n))
    }
}

impl Key {
    pub fn new(name: &LowerName, qtype: u16, dnssec_ok: bool) -> Self {
        Self {
            name: crate::table::NameKey::from(name).as_bytes().into(),
            qtype,
            dnssec_ok,
        }
    }
}

#[derive(Debug)]
pub struct Entry {
    kind: Kind,
    rcode: ResponseCode,
    authoritative: bool,
    recursion_available: bool,
    sections: [Section; 3],
    /// Where each record's TTL sits: section and offset.
    ttls: Vec<(u8, u32)>,
    stored: Instant,
    ttl: u32,
    /// For `prefetch`: hits in the current window, when the window began (ms after
    /// `stored`), and whether a refresh is under way.
    hits: AtomicU32,
    window_start: AtomicU64,
    refreshing: AtomicBool,
}

impl Entry {
    /// Counts a hit; true when it is time to fetch the entry again.
    fn wants_prefetch(&self, now: Instant, p: &Prefetch, remaining: u32) -> bool {
        let at = now.saturating_duration_since(self.stored).as_millis() as u64;
        let start = self.window_start.load(Ordering::Relaxed);
        let hits = if at.saturating_sub(start) > p.window.as_millis() as u64 {
            self.window_start.store(at, Ordering::Relaxed);
            self.hits.store(1, Ordering::Relaxed);
            1
        } else {
            self.hits.fetch_add(1, Ordering::Relaxed) + 1
        };
        hits >= p.amount
            && u64::from(remaining) * 100 < u64::from(self.ttl) * u64::from(p.percentage)
            && !self.refreshing.swap(true, Ordering::Relaxed)
    }

    fn remaining(&self, now: Instant) -> Option<u32> {
        let age = now.saturating_duration_since(self.stored).as_secs();
        u32::try_from(age)
            .ok()
            .and_then(|age| self.ttl.checked_sub(age))
            .filter(|r| *r > 0)
    }

    /// The answer with every TTL set to `ttl` (or as received with `keepttl`).
    fn reply(&self, ttl: Option<u32>) -> Reply {
        let mut sections = self.sections.clone();
        if let Some(ttl) = ttl {
            for &(s, at) in &self.ttls {
                let at = at as usize;
                if let Some(field) = sections[usize::from(s)].bytes.get_mut(at..at + 4) {
                    field.copy_from_slice(&ttl.to_be_bytes());
                }
            }
        }
        let [answers, authority, additional] = sections;
        Reply {
            rcode: self.rcode,
            authoritative: self.authoritative,
            recursion_available: self.recursion_available,
            answers,
            authority,
            additional,
            follow: None,
            follow_negative: None,
            after: None,
            ede: None,
            hold: None,
        }
    }
}

/// `response` with every record's owner written whole, or as a pointer to the question when
/// it is the question's name: records that mean the same after any header and question of
/// the same name, in any order (so `loadbalance` may shuffle them), and names in record data
/// written whole. `None` if it does not parse or has more or less than one question.
fn self_contained(response: &[u8]) -> Option<Vec<u8>> {
    let reply = Reply::reowned(response, Owners::Question)?;
    let end = wire::question_end(response)?;
    let mut out = response[..end].to_vec();
    let sections = [&reply.answers, &reply.authority, &reply.additional];
    for s in sections {
        out.extend_from_slice(&s.bytes);
    }
    // The OPT is not kept: it is not cached anyway.
    let [answers, authority, additional] = sections.map(|s| s.count);
    HeaderMut::of(&mut out)?.set_counts(answers, authority, additional);
    Some(out)
}

fn slot(kind: Kind) -> usize {
    usize::from(kind != Kind::Success)
}

#[derive(Debug)]
pub struct Cache {
    config: CacheConfig,
    entries: papaya::HashMap<Key, Arc<Entry>>,
    counts: [AtomicUsize; 2],
    counters: Arc<CacheCounters>,
}

/// What the cache holds for a query. A hit is the common case and is returned by value:
/// boxing it would allocate once per hit to make the rare miss smaller.
#[allow(clippy::large_enum_variant)]
pub enum Lookup {
    /// An answer; `prefetch`: time to fetch it again in the background.
    Fresh { reply: Reply, prefetch: bool },
    /// Expired (perhaps within `serve_stale`), or absent: ask upstream.
    Miss,
}

impl Cache {
    /// `zones`: the server block's, used when the directive names none.
    pub fn new(config: &CacheConfig, zones: &[LowerName], counters: Arc<CacheCounters>) -> Self {
        let mut config = config.clone();
        if config.zones.is_empty() {
            config.zones = zones.to_vec();
        }
        Self {
            config,
            entries: papaya::HashMap::new(),
            counts: [AtomicUsize::new(0), AtomicUsize::new(0)],
            counters,
        }
    }

    /// Whether names like this one are cached at all.
    pub fn covers(&self, name: &LowerName) -> bool {
        self.config.zones.iter().any(|z| z.zone_of(name))
    }

    pub fn lookup(&self, key: &Key) -> Lookup {
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let entries = self.entries.pin();
        if let Some(entry) = entries.get(key)
            && let Some(remaining) = entry.remaining(now)
        {
            self.counters.hits[slot(entry.kind)].fetch_add(1, Ordering::Relaxed);
            let ttl = (!self.config.keep_ttl).then_some(remaining);
            let prefetch = entry.kind != Kind::ServFail
                && self
                    .config
                    .prefetch
                    .is_some_and(|p| entry.wants_prefetch(now, &p, remaining));
            if prefetch {
                self.counters.prefetches.fetch_add(1, Ordering::Relaxed);
            }
            return Lookup::Fresh {
                reply: entry.reply(ttl),
                prefetch,
            };
        }
        // `serve_stale` (immediate): an expired answer now, and a refresh behind it.
        if let (Some(window), false) = (self.config.serve_stale, self.config.stale_verify)
            && let Some(entry) = entries.get(key)
            && entry.kind != Kind::ServFail
            && now <= entry.stored + Duration::from_secs(u64::from(entry.ttl)) + window
        {
            self.counters.served_stale.fetch_add(1, Ordering::Relaxed);
            return Lookup::Fresh {
                reply: entry.reply(Some(STALE_TTL)),
                prefetch: !entry.refreshing.swap(true, Ordering::Relaxed),
            };
        }
        self.counters.misses.fetch_add(1, Ordering::Relaxed);
        Lookup::Miss
    }

    /// A background refresh of `key` failed: the next hit may try again.
    pub fn refresh_failed(&self, key: &Key) {
        if let Some(entry) = self.entries.pin().get(key) {
            entry.refreshing.store(false, Ordering::Relaxed);
        }
    }

    /// An expired entry still within `serve_stale`, answered with the stale TTL.
    pub fn stale(&self, key: &Key) -> Option<Reply> {
        let window = self.config.serve_stale?;
        let entries = self.entries.pin();
        let entry = entries.get(key)?;
        if entry.kind == Kind::ServFail {
            return None;
        }
        let expired = entry.stored + Duration::from_secs(u64::from(entry.ttl));
        if Instant::now() > expired + window {
            return None;
        }
        self.counters.served_stale.fetch_add(1, Ordering::Relaxed);
        Some(entry.reply(Some(STALE_TTL)))
    }

    /// Keeps `response` (a whole message from upstream) if it can be cached, and returns
    /// the answer as the cache gives it (TTLs as capped), to send now.
    pub fn store(&self, key: Key, name: &LowerName, response: &[u8]) -> Option<Reply> {
        let entry = self.entry(name, response)?;
        let now = entry.reply((!self.config.keep_ttl).then_some(entry.ttl));
        let kind = entry.kind;
        let capacity = match kind {
            Kind::Success => self.config.success.capacity,
            Kind::Denial | Kind::ServFail => self.config.denial.capacity,
        };
        let entries = self.entries.pin();
        if self.counts[slot(kind)].load(Ordering::Relaxed) >= capacity
            && !entries.contains_key(&key)
        {
            // Full: one entry of the same kind goes (the map's order is the hash's: random).
            let victim = entries
                .iter()
                .find(|(_, e)| slot(e.kind) == slot(kind))
                .map(|(k, _)| k.clone());
            if let Some(victim) = victim
                && entries.remove(&victim).is_some()
            {
                self.counts[slot(kind)].fetch_sub(1, Ordering::Relaxed);
                self.counters.evictions[slot(kind)].fetch_add(1, Ordering::Relaxed);
            }
        }
        if let Some(old) = entries.insert(key, Arc::new(entry)) {
            self.counts[slot(old.kind)].fetch_sub(1, Ordering::Relaxed);
        }
        self.counts[slot(kind)].fetch_add(1, Ordering::Relaxed);
        for (i, count) in self.counts.iter().enumerate() {
            self.counters.entries[i].store(count.load(Ordering::Relaxed) as u64, Ordering::Relaxed);
        }
        Some(now)
    }

    /// What an upstream response becomes in the cache, if anything.
    fn entry(&self, name: &LowerName, response: &[u8]) -> Option<Entry> {
        let parsed = wire::parse_sections(&self_contained(response)?)?;
        let header = Header::of(response)?;
        if header.truncated() {
            return None;
        }
        let rcode = ResponseCode::from_low(header.rcode_low());
        let (kind, kept) = match rcode {
            ResponseCode::NoError if parsed.sections[0].count > 0 => {
                (Kind::Success, &self.config.success)
            }
            ResponseCode::NoError | ResponseCode::NXDomain => (Kind::Denial, &self.config.denial),
            ResponseCode::ServFail if !self.config.servfail.is_zero() => {
                (Kind::ServFail, &self.config.denial)
            }
            _ => return None,
        };
        if kept.disabled.iter().any(|z| z.zone_of(name)) {
            return None;
        }
        let ttl = match kind {
            Kind::ServFail => self.config.servfail.as_secs().max(1) as u32,
            Kind::Success => parsed.min_ttl.unwrap_or(kept.min_ttl),
            Kind::Denial => parsed.negative_ttl.unwrap_or(kept.min_ttl),
        };
        let ttl = match kind {
            Kind::ServFail => ttl,
            _ => ttl.min(kept.max_ttl).max(kept.min_ttl),
        };
        Some(Entry {
            kind,
            rcode,
            authoritative: header.authoritative(),
            recursion_available: header.recursion_available(),
            sections: parsed.sections,
            ttls: parsed.ttls,
            stored: Instant::now(),
            ttl,
            hits: AtomicU32::new(0),
            window_start: AtomicU64::new(0),
            refreshing: AtomicBool::new(false),
        })
    }
}
