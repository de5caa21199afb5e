//! The `etcd` plugin: SkyDNS service discovery from etcd v3, answered as CoreDNS's `etcd`
//! plugin answers it.
//!
//! A name's records are the JSON messages (`{"host": ..., "port": ..., "priority": ...,
//! "weight": ..., "text": ..., "mail": ..., "ttl": ..., "targetstrip": ..., "group": ...}`)
//! stored at and below its path, `/PATH/` followed by its labels in reverse
//! (`a.skydns.local.` is `/skydns/local/skydns/a`): a query reads the whole subtree under the
//! name, or the key of the name itself when the subtree is empty. A host that is an address
//! gives A or AAAA records (and SRV/MX records targeting the key's own name, with the address as
//! additional record); a host that is a name gives CNAME records (followed inside the zone;
//! outside it, asked of the block the target routes to), and SRV/MX/NS/PTR targets. A label
//! `*` or `any` matches every key at its level. The zone apex's addresses live under
//! `apex.dns.ZONE`, its name servers under `ns.dns.ZONE`. Every answer is authoritative;
//! negative ones carry a synthesised SOA (`ns.dns.ZONE`, `hostmaster.ZONE`, the current time as
//! serial).
//!
//! Unlike CoreDNS, which asks etcd on every query, the keys under the path are mirrored in
//! memory by a list and a watch ([`client`]): queries are answered without a round trip, and
//! what was last read keeps being served while etcd is unreachable. Until the first list
//! succeeds, the plugin's zones answer SERVFAIL, as CoreDNS's do when etcd does not answer.

pub mod client;
mod setup;

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use arc_swap::ArcSwapOption;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{A, AAAA, CNAME, MX, NS, PTR, SOA, SRV, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};

pub use setup::EtcdConfig;

use crate::cluster::records::under;

use super::{Fast, Outcome, Phases, Reply, Request};
use crate::corefile::Fallthrough;
use crate::wire::{LightQuery, Owner, Zones};

/// When a service sets no TTL and has no lease.
const DEFAULT_TTL: u32 = 300;
/// A service's priority when it sets none.
const DEFAULT_PRIORITY: i64 = 10;
/// The longest chain of CNAMEs followed inside the zone.
const MAX_CNAME_CHAIN: usize = 10;
/// The SOA's TTL and minimum.
const SOA_MIN_TTL: u32 = 30;

/// The `etcd` plugin as it serves queries.
#[derive(Debug, Clone)]
pub struct Etcd(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    zones: Zones,
    /// The path prefix, `skydns` by default.
    prefix: String,
    fallthrough: Fallthrough,
    /// Bounds of a lease's remaining time as a TTL.
    min_lease: u32,
    max_lease: u32,
    /// What etcd held when last read; `None` until the first list.
    store: ArcSwapOption<Store>,
}

/// The keys under the path, as last read, and the remaining time of their leases.
#[derive(Debug, Clone, Default)]
pub struct Store {
    pub kvs: imbl::OrdMap<String, Arc<Entry>>,
    /// Each lease's remaining time (seconds; ≤ 0 when expired) when it was last asked.
    pub leases: Arc<HashMap<i64, (i64, Instant)>>,
}

/// One key's value.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The service its value decodes to, or why it does not.
    pub service: Result<Service, String>,
    /// Its lease, 0 for none.
    pub lease: i64,
}

impl Entry {
    pub fn new(value: &[u8], lease: i64) -> Self {
        Self {
            service: Service::decode(value),
            lease,
        }
    }
}

/// A SkyDNS service message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Service {
    pub host: String,
    pub port: i64,
    pub priority: i64,
    pub weight: i64,
    pub text: String,
    pub mail: bool,
    pub ttl: u32,
    pub target_strip: i64,
    pub group: String,
    /// The key it was read from (set when looked up).
    key: String,
}

impl Service {
    /// Decodes a value as Go's `encoding/json` does into SkyDNS's message: field names match
    /// regardless of letter case, unknown ones are ignored, `null` leaves a field unset, a
    /// value of the wrong type is an error.
    pub fn decode(value: &[u8]) -> Result<Self, String> {
        let v: serde_json::Value = serde_json::from_slice(value).map_err(|e| e.to_string())?;
        let mut s = Service::default();
        let fields = match v {
            serde_json::Value::Null => return Ok(s),
            serde_json::Value::Object(fields) => fields,
            other => return Err(format!("cannot unmarshal {} into a service", kind(&other))),
        };
        for (name, value) in fields {
            if value.is_null() {
                continue;
            }
            let wrong = |want: &str| {
                format!(
                    "field {name}: cannot unmarshal {} into {want}",
                    kind(&value)
                )
            };
            let int = |v: &serde_json::Value| v.as_i64().ok_or_else(|| wrong("int"));
            match name.to_ascii_lowercase().as_str() {
                "host" => s.host = value.as_str().ok_or_else(|| wrong("string"))?.to_string(),
                "text" => s.text = value.as_str().ok_or_else(|| wrong("string"))?.to_string(),
                "group" => s.group = value.as_str().ok_or_else(|| wrong("string"))?.to_string(),
                "port" => s.port = int(&value)?,
                "priority" => s.priority = int(&value)?,
                "weight" => s.weight = int(&value)?,
                "targetstrip" => s.target_strip = int(&value)?,
                "mail" => s.mail = value.as_bool().ok_or_else(|| wrong("bool"))?,
                "ttl" => {
                    s.ttl = value
                        .as_u64()
                        .and_then(|t| u32::try_from(t).ok())
                        .ok_or_else(|| wrong("uint32"))?
                }
                _ => {}
            }
        }
        Ok(s)
    }

    /// What its host makes of it: an address, or a name (CNAME, SRV/MX targets), or, with
    /// text and no address, a TXT record.
    fn kind(&self) -> Kind {
        match self.host.parse::<IpAddr>() {
            Ok(IpAddr::V4(a)) => Kind::A(a),
            Ok(IpAddr::V6(a)) => match a.to_ipv4_mapped() {
                Some(a) => Kind::A(a),
                None => Kind::Aaaa(a),
            },
            Err(_) if self.text.is_empty() => Kind::Name,
            Err(_) => Kind::Txt,
        }
    }
}

fn kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "bool",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "array",
        serde_json::Value::Object(_) => "object",
    }
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    A(std::net::Ipv4Addr),
    Aaaa(std::net::Ipv6Addr),
    Name,
    Txt,
}

/// Why a lookup found nothing to answer with.
#[derive(Debug)]
enum Failure {
    /// No key at or under the name: NXDOMAIN.
    NotFound,
    /// A value that does not decode, an NS that is not an address: SERVFAIL.
    Backend(String),
}

/// What a lookup answers with.
#[derive(Debug, Default)]
struct Found {
    answers: Vec<Record>,
    additional: Vec<Record>,
    /// A CNAME target outside the zone, asked of the block it routes to.
    follow: Option<Name>,
}

impl Etcd {
    fn new(config: &EtcdConfig) -> Self {
        Self(Arc::new(Inner {
            zones: Zones::new(&config.zones),
            prefix: config.path.clone(),
            fallthrough: config.fallthrough.clone(),
            min_lease: config.min_lease_ttl,
            max_lease: config.max_lease_ttl,
            store: ArcSwapOption::empty(),
        }))
    }

    /// Serves `store` from now on (what the mirror read).
    pub fn publish(&self, store: Arc<Store>) {
        self.0.store.store(Some(store));
    }

    /// What is served now.
    pub fn store(&self) -> Option<Arc<Store>> {
        self.0.store.load_full()
    }

    /// The path prefix keys are read under.
    pub fn prefix(&self) -> &str {
        &self.0.prefix
    }
}

impl Phases for Etcd {
    const ANSWERS: bool = true;

    fn serve(&self, req: &Request) -> Outcome {
        let Some(zone) = self.0.zones.longest(&req.lower) else {
            return Outcome::Next;
        };
        let zone = Name::from(zone.clone());
        let Some(store) = self.0.store.load_full() else {
            return Outcome::Reply(negative(&zone, ResponseCode::ServFail));
        };
        let name = Name::from(req.lower.clone());
        let lookup = Lookup {
            inner: &self.0,
            store: &store,
            zone: &zone,
            now: Instant::now(),
        };
        let found = match req.qtype {
            RecordType::A | RecordType::AAAA | RecordType::TXT => {
                lookup.addresses(&name, &req.name, req.qtype, &[])
            }
            RecordType::CNAME => lookup.cname(&name, &req.name),
            RecordType::PTR => lookup.ptr(&name, &req.name),
            RecordType::MX => lookup.mx(&name, &req.name),
            RecordType::SRV => lookup.srv(&name, &req.name),
            RecordType::SOA => Ok(Found {
                answers: vec![soa(&zone)],
                ..Found::default()
            }),
            RecordType::NS if name == zone => lookup.ns(&req.name),
            // Whether the name exists, for NXDOMAIN or NODATA.
            _ => lookup
                .addresses(&name, &req.name, RecordType::A, &[])
                .map(|_| Found::default()),
        };
        match found {
            Err(Failure::NotFound) if self.0.fallthrough.through(&req.lower) => Outcome::Next,
            Err(Failure::NotFound) => Outcome::Reply(negative(&zone, ResponseCode::NXDomain)),
            Err(Failure::Backend(why)) => {
                tracing::debug!(name = %req.name, "etcd: {why}");
                Outcome::Reply(negative(&zone, ResponseCode::ServFail))
            }
            Ok(found) if found.answers.is_empty() => {
                Outcome::Reply(negative(&zone, ResponseCode::NoError))
            }
            Ok(found) => {
                let mut reply = Reply::authoritative(ResponseCode::NoError);
                for r in &found.answers {
                    reply.answers.push_record(Owner::Name(r.name()), r);
                }
                for r in &found.additional {
                    reply.additional.push_record(Owner::Name(r.name()), r);
                }
                reply.follow = found.follow;
                Outcome::Reply(reply)
            }
        }
    }

    /// Answers are made per query from the mirror: names in its zones go the full way, the
    /// rest pass on.
    fn serve_fast(&self, query: &LightQuery, _: &mut Vec<u8>) -> Fast {
        if self.0.zones.holds_wire(query.key()) {
            Fast::Slow
        } else {
            Fast::Next
        }
    }
}

/// An authoritative answer with no records and the zone's SOA.
fn negative(zone: &Name, rcode: ResponseCode) -> Reply {
    let mut reply = Reply::authoritative(rcode);
    let soa = soa(zone);
    reply.authority.push_record(Owner::Name(soa.name()), &soa);
    reply
}

/// The SOA CoreDNS makes up for a zone it serves from etcd.
fn soa(zone: &Name) -> Record {
    let serial = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as u32);
    let data = SOA::new(
        under(&["ns", "dns"], zone),
        under(&["hostmaster"], zone),
        serial,
        7200,
        1800,
        86400,
        SOA_MIN_TTL,
    );
    Record::from_rdata(zone.clone(), SOA_MIN_TTL, RData::SOA(data))
}

/// One query's lookups over one snapshot of the mirror.
struct Lookup<'a> {
    inner: &'a Inner,
    store: &'a Store,
    zone: &'a Name,
    now: Instant,
}

impl Lookup<'_> {
    /// The services at and under `name` (lowercase), or only at it when `exact`, that a query
    /// of `qtype` can use, narrowed to one group.
    fn services(
        &self,
        name: &Name,
        exact: bool,
        qtype: RecordType,
    ) -> Result<Vec<Service>, Failure> {
        let (path, star) = path(&self.inner.prefix, name);
        let kvs = self.get(&path, !exact)?;
        let wanted: Vec<String> = if star {
            path_of(&self.inner.prefix, name, false)
                .split('/')
                .map(str::to_string)
                .collect()
        } else {
            Vec::new()
        };
        let mut services = Vec::new();
        'keys: for (key, entry) in kvs {
            if star {
                let parts: Vec<&str> = key.split('/').collect();
                for (i, part) in wanted.iter().enumerate() {
                    let Some(have) = parts.get(i) else {
                        continue 'keys;
                    };
                    if part != "*" && part != "any" && have != part {
                        continue 'keys;
                    }
                }
            }
            let mut service = match &entry.service {
                Ok(s) => s.clone(),
                Err(e) => return Err(Failure::Backend(format!("{key}: {e}"))),
            };
            service.key = key.clone();
            service.ttl = self.ttl(entry, &service);
            if service.priority == 0 {
                service.priority = DEFAULT_PRIORITY;
            }
            if (qtype == RecordType::TXT && !service.text.is_empty()) || !service.host.is_empty() {
                services.push(service);
            }
        }
        Ok(group(services))
    }

    /// The keys under `path/` (or, when there are none or not `recursive`, the key `path`).
    fn get(&self, path: &str, recursive: bool) -> Result<Vec<(&String, &Entry)>, Failure> {
        let kvs = &self.store.kvs;
        if recursive {
            let dir = if path.ends_with('/') {
                path.to_string()
            } else {
                format!("{path}/")
            };
            let under: Vec<(&String, &Entry)> = kvs
                .range(dir.clone()..)
                .take_while(|(k, _)| k.starts_with(&dir))
                .map(|(k, v)| (k, &**v))
                .collect();
            if !under.is_empty() {
                return Ok(under);
            }
            let exact = dir.trim_end_matches('/');
            return kvs
                .get_key_value(exact)
                .map(|(k, v)| vec![(k, &**v)])
                .ok_or(Failure::NotFound);
        }
        kvs.get_key_value(path)
            .map(|(k, v)| vec![(k, &**v)])
            .ok_or(Failure::NotFound)
    }

    /// The service's TTL, or its lease's remaining time within the configured bounds if that
    /// is smaller; 300 s if neither is set.
    fn ttl(&self, entry: &Entry, service: &Service) -> u32 {
        let leased = (entry.lease != 0)
            .then(|| self.store.leases.get(&entry.lease))
            .flatten()
            .map(|(ttl, asked)| ttl - self.now.saturating_duration_since(*asked).as_secs() as i64)
            .filter(|left| *left > 0)
            .map_or(0, |left| {
                // As CoreDNS bounds it: the minimum first, then the maximum (0: the default).
                let or =
                    |bound: u32, default: u32| i64::from(if bound == 0 { default } else { bound });
                let (min, max) = (
                    or(self.inner.min_lease, 30),
                    or(self.inner.max_lease, 86400),
                );
                let bounded = if left < min {
                    min
                } else if left > max {
                    max
                } else {
                    left
                };
                u32::try_from(bounded).unwrap_or(u32::MAX)
            });
        match (leased, service.ttl) {
            (0, 0) => DEFAULT_TTL,
            (0, ttl) | (ttl, 0) => ttl,
            (a, b) => a.min(b),
        }
    }

    /// The services of an A/AAAA/TXT query: at the apex, `apex.dns.ZONE`'s first.
    fn apex_or(&self, name: &Name, qtype: RecordType) -> Result<Vec<Service>, Failure> {
        if name != self.zone {
            return self.services(name, false, qtype);
        }
        match self.services(&under(&["apex", "dns"], self.zone), false, qtype) {
            Err(Failure::NotFound) => self.services(name, false, qtype),
            other => other,
        }
    }

    /// A, AAAA or TXT records of `name` (owned by `owner`), CNAMEs followed inside the zone:
    /// `chain` holds the targets followed so far.
    fn addresses(
        &self,
        name: &Name,
        owner: &Name,
        qtype: RecordType,
        chain: &[String],
    ) -> Result<Found, Failure> {
        let services = if qtype == RecordType::TXT {
            self.services(name, false, qtype)?
        } else {
            self.apex_or(name, qtype)?
        };
        let mut found = Found::default();
        let mut seen = HashSet::new();
        for s in services {
            let data = match (s.kind(), qtype) {
                (Kind::Name, _) => {
                    self.through_cname(&s, name, owner, qtype, chain, &mut found);
                    continue;
                }
                (Kind::A(a), RecordType::A) if seen.insert(s.host.clone()) => RData::A(A(a)),
                (Kind::Aaaa(a), RecordType::AAAA) if seen.insert(s.host.clone()) => {
                    RData::AAAA(AAAA(a))
                }
                (Kind::Txt, RecordType::TXT) if seen.insert(s.text.clone()) => {
                    RData::TXT(TXT::from_bytes(split255(&s.text)))
                }
                _ => continue,
            };
            found
                .answers
                .push(Record::from_rdata(owner.clone(), s.ttl, data));
        }
        Ok(found)
    }

    /// A service whose host is a name: a CNAME to it, and what the target has of `qtype`
    /// (inside the zone), or the target to follow (outside it).
    fn through_cname(
        &self,
        s: &Service,
        name: &Name,
        owner: &Name,
        qtype: RecordType,
        chain: &[String],
        found: &mut Found,
    ) {
        let target_text = fqdn(&s.host);
        let Ok(target) = Name::from_ascii(&target_text) else {
            return;
        };
        // x CNAME x, or a name under x, is a loop (the search reads the whole subtree).
        if name.zone_of(&target) || chain.len() > MAX_CNAME_CHAIN || chain.contains(&target_text) {
            return;
        }
        let cname = Record::from_rdata(owner.clone(), s.ttl, RData::CNAME(CNAME(target.clone())));
        if self.zone.zone_of(&target) {
            let mut chain = chain.to_vec();
            chain.push(target_text);
            if let Ok(next) = self.addresses(&target.to_lowercase(), &target, qtype, &chain)
                && !next.answers.is_empty()
            {
                found.answers.push(cname);
                found.answers.extend(next.answers);
                if found.follow.is_none() {
                    found.follow = next.follow;
                }
            }
            return;
        }
        // Outside the zone: asked of the block the target routes to (one target per answer).
        if found.follow.is_none() {
            found.answers.push(cname);
            found.follow = Some(target);
        }
    }

    fn cname(&self, name: &Name, owner: &Name) -> Result<Found, Failure> {
        let services = self.services(name, true, RecordType::CNAME)?;
        let mut found = Found::default();
        if let Some(s) = services.first()
            && matches!(s.kind(), Kind::Name | Kind::Txt)
            && let Ok(target) = Name::from_ascii(fqdn(&s.host))
        {
            found.answers.push(Record::from_rdata(
                owner.clone(),
                s.ttl,
                RData::CNAME(CNAME(target)),
            ));
        }
        Ok(found)
    }

    fn ptr(&self, name: &Name, owner: &Name) -> Result<Found, Failure> {
        let mut found = Found::default();
        let mut seen = HashSet::new();
        for s in self.services(name, true, RecordType::PTR)? {
            if matches!(s.kind(), Kind::Name | Kind::Txt)
                && seen.insert(s.host.clone())
                && let Ok(target) = Name::from_ascii(fqdn(&s.host))
            {
                found.answers.push(Record::from_rdata(
                    owner.clone(),
                    s.ttl,
                    RData::PTR(PTR(target)),
                ));
            }
        }
        Ok(found)
    }

    /// The A records of an internal target, for the additional section.
    fn internal_addresses(&self, target: &Name) -> Vec<Record> {
        self.addresses(&target.to_lowercase(), target, RecordType::A, &[])
            .map(|f| f.answers)
            .unwrap_or_default()
    }

    fn srv(&self, name: &Name, owner: &Name) -> Result<Found, Failure> {
        let services = self.services(name, false, RecordType::SRV)?;
        let mut totals: HashMap<i64, i64> = HashMap::new();
        for s in &services {
            *totals.entry(s.priority).or_default() += if s.weight == 0 { 100 } else { s.weight };
        }
        let mut found = Found::default();
        let mut dup = HashSet::new();
        let mut looked_up = HashSet::new();
        for s in &services {
            // A port of -1 means "no port".
            if s.port == -1 {
                continue;
            }
            let share = 100.0 / totals[&s.priority] as f64;
            let share = share
                * if s.weight == 0 {
                    100.0
                } else {
                    s.weight as f64
                };
            let weight = (share.floor() as u16).max(1);
            let (target, address) = match s.kind() {
                Kind::Name => (fqdn(&s.host), None),
                Kind::A(a) => (domain(&s.key), Some(RData::A(A(a)))),
                Kind::Aaaa(a) => (domain(&s.key), Some(RData::AAAA(AAAA(a)))),
                Kind::Txt => continue,
            };
            let Ok(target) = Name::from_ascii(target_strip(&target, s.target_strip)) else {
                continue;
            };
            let srv = SRV::new(s.priority as u16, weight, s.port as u16, target.clone());
            let record = Record::from_rdata(owner.clone(), s.ttl, RData::SRV(srv));
            match address {
                None => {
                    found.answers.push(record);
                    if looked_up.insert(target.to_lowercase()) && self.zone.zone_of(&target) {
                        found.additional.extend(self.internal_addresses(&target));
                    }
                }
                Some(address) => {
                    let key = target.to_lowercase().to_string();
                    if dup.insert((key.clone(), s.port as u16, String::new())) {
                        found.answers.push(record);
                    }
                    if dup.insert((key, 0, s.host.clone())) {
                        found
                            .additional
                            .push(Record::from_rdata(target, s.ttl, address));
                    }
                }
            }
        }
        Ok(found)
    }

    fn mx(&self, name: &Name, owner: &Name) -> Result<Found, Failure> {
        let services = self.services(name, false, RecordType::MX)?;
        let mut found = Found::default();
        let mut dup = HashSet::new();
        let mut looked_up = HashSet::new();
        for s in services.iter().filter(|s| s.mail) {
            let (host, address) = match s.kind() {
                Kind::Name => (fqdn(&s.host), None),
                Kind::A(a) => (domain(&s.key), Some(RData::A(A(a)))),
                Kind::Aaaa(a) => (domain(&s.key), Some(RData::AAAA(AAAA(a)))),
                Kind::Txt => continue,
            };
            let Ok(exchange) = Name::from_ascii(target_strip(&host, s.target_strip)) else {
                continue;
            };
            let preference = s.priority as u16;
            let record = Record::from_rdata(
                owner.clone(),
                s.ttl,
                RData::MX(MX::new(preference, exchange.clone())),
            );
            match address {
                None => {
                    found.answers.push(record);
                    if looked_up.insert(exchange.to_lowercase()) && self.zone.zone_of(&exchange) {
                        found.additional.extend(self.internal_addresses(&exchange));
                    }
                }
                Some(address) => {
                    if dup.insert((
                        exchange.to_lowercase().to_string(),
                        preference,
                        String::new(),
                    )) {
                        found.answers.push(record);
                    }
                    // The address is owned by the key's own name, before any target strip.
                    if let Ok(owner) = Name::from_ascii(&host)
                        && dup.insert((host.to_ascii_lowercase(), 0, s.host.clone()))
                    {
                        found
                            .additional
                            .push(Record::from_rdata(owner, s.ttl, address));
                    }
                }
            }
        }
        Ok(found)
    }

    /// The apex's name servers: the addresses under `ns.dns.ZONE`, each named by its key.
    fn ns(&self, owner: &Name) -> Result<Found, Failure> {
        let services = self.services(&under(&["ns", "dns"], self.zone), false, RecordType::NS)?;
        let mut found = Found::default();
        let mut seen = HashSet::new();
        for s in services {
            let address = match s.kind() {
                Kind::Name => {
                    return Err(Failure::Backend(format!(
                        "NS record must be an IP address: {}",
                        s.host
                    )));
                }
                Kind::Txt => continue,
                Kind::A(a) => RData::A(A(a)),
                Kind::Aaaa(a) => RData::AAAA(AAAA(a)),
            };
            let Ok(target) = Name::from_ascii(target_strip(&domain(&s.key), s.target_strip)) else {
                continue;
            };
            found
                .additional
                .push(Record::from_rdata(target.clone(), s.ttl, address));
            if seen.insert(target.to_lowercase()) {
                found.answers.push(Record::from_rdata(
                    owner.clone(),
                    s.ttl,
                    RData::NS(NS(target)),
                ));
            }
        }
        Ok(found)
    }
}

/// The key path of `name` (lowercase) under `prefix`, cut before the first `*` or `any` label
/// (and then whether it was).
fn path(prefix: &str, name: &Name) -> (String, bool) {
    let cut = name
        .iter()
        .rev()
        .any(|label| label == b"*" || label == b"any");
    (path_of(prefix, name, true), cut)
}

/// `/PREFIX/` and the labels of `name` in reverse, cleaned as Go's `path.Join` cleans; with
/// `wildcard_cut`, only the labels before the first `*` or `any`.
fn path_of(prefix: &str, name: &Name, wildcard_cut: bool) -> String {
    let mut parts = vec![format!("/{prefix}/")];
    for label in name.iter().rev() {
        if wildcard_cut && (label == b"*" || label == b"any") {
            break;
        }
        parts.push(presentation(label));
    }
    clean(&parts.join("/"))
}

/// A label as miekg/dns writes it in a name: special characters escaped with a backslash,
/// others outside printable ASCII as `\DDD`.
fn presentation(label: &[u8]) -> String {
    let mut out = String::with_capacity(label.len());
    for &b in label {
        match b {
            b'.' | b' ' | b'\'' | b'@' | b';' | b'(' | b')' | b'"' | b'\\' => {
                out.push('\\');
                out.push(b as char);
            }
            0x21..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\{b:03}")),
        }
    }
    out
}

/// Go's `path.Clean` for a rooted path: no empty or `.` elements, `..` removes the one before.
fn clean(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

/// The domain name a key stands for (SkyDNS's `msg.Domain`): its elements after the first in
/// reverse, the prefix's left out.
fn domain(key: &str) -> String {
    let mut parts: Vec<&str> = key.split('/').collect();
    if parts.last() == Some(&"") {
        parts.pop();
    }
    if parts.len() < 2 {
        return ".".to_string();
    }
    let labels: Vec<&str> = parts[2..].iter().rev().copied().collect();
    if labels.is_empty() {
        return ".".to_string();
    }
    format!("{}.", labels.join("."))
}

fn fqdn(name: &str) -> String {
    if name.ends_with('.') {
        name.to_string()
    } else {
        format!("{name}.")
    }
}

/// `name` without its first `n` labels, or whole when it has no more than `n`.
fn target_strip(name: &str, n: i64) -> String {
    if n <= 0 {
        return name.to_string();
    }
    let labels: Vec<&str> = name.trim_end_matches('.').split('.').collect();
    match usize::try_from(n) {
        Ok(n) if n < labels.len() => format!("{}.", labels[n..].join(".")),
        _ => name.to_string(),
    }
}

/// TXT strings of at most 255 bytes, cut as SkyDNS cuts them (bytes, not characters).
fn split255(text: &str) -> Vec<&[u8]> {
    let bytes = text.as_bytes();
    if bytes.len() < 255 {
        return vec![bytes];
    }
    let mut out = Vec::new();
    let mut at = 0;
    loop {
        let end = at + 255;
        if end > bytes.len() {
            out.push(&bytes[at..]);
            break;
        }
        out.push(&bytes[at..end]);
        at = end;
    }
    out
}

/// SkyDNS's groups: when the services nearest the name (fewest path elements) name a group,
/// only that group's services and those without a group are kept; when services at that level
/// disagree, all are kept.
fn group(services: Vec<Service>) -> Vec<Service> {
    let Some(first) = services.first() else {
        return services;
    };
    let mut group = first.group.clone();
    let mut slashes = first.key.matches('/').count();
    // As SkyDNS does: the depths past the service that stops the scan stay 0.
    let mut depth = vec![0; services.len()];
    for (i, s) in services.iter().enumerate() {
        let d = s.key.matches('/').count();
        depth[i] = d;
        if d < slashes {
            if s.group.is_empty() {
                break;
            }
            slashes = d;
            group = s.group.clone();
        }
    }
    if group.is_empty() {
        return services;
    }
    let mut kept = Vec::new();
    for (s, &d) in services.iter().zip(&depth) {
        if s.group.is_empty() {
            kept.push(s.clone());
            continue;
        }
        if d == slashes && s.group != group {
            return services;
        }
        if s.group == group {
            kept.push(s.clone());
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::Plugin;
    use crate::plugin::testing::Served;

    /// The keys of the tables below, as SkyDNS writes them under `/skydns`.
    const KEYS: &[(&str, &str)] = &[
        (
            "/skydns/test/skydns/region1/dev/server1/a",
            r#"{"host":"dev.server1","port":8080}"#,
        ),
        (
            "/skydns/test/skydns/region1/prod/server1/a",
            r#"{"host":"10.0.0.1","port":8080}"#,
        ),
        (
            "/skydns/test/skydns/region1/prod/server1/b",
            r#"{"host":"10.0.0.2","port":8080}"#,
        ),
        (
            "/skydns/test/skydns/region1/prod/server6/b",
            r#"{"host":"::1","port":8080}"#,
        ),
        (
            "/skydns/test/skydns/region1/prod/server1/txt/a",
            r#"{"text":"sometext"}"#,
        ),
        (
            "/skydns/test/skydns/region1/prod/server1/txt/b",
            r#"{"text":"moretext"}"#,
        ),
        (
            "/skydns/test/skydns/region1/prod/cname",
            r#"{"host":"unresolvable.skydns.test"}"#,
        ),
        (
            "/skydns/test/skydns/priority",
            r#"{"host":"priority.server1","priority":333,"port":8080}"#,
        ),
        (
            "/skydns/test/skydns/region1/sub/a",
            r#"{"host":"sub.server1","port":0}"#,
        ),
        (
            "/skydns/test/skydns/region1/sub/b",
            r#"{"host":"sub.server2","port":80}"#,
        ),
        (
            "/skydns/test/skydns/region1/sub/c",
            r#"{"host":"10.0.0.1","port":8080}"#,
        ),
        (
            "/skydns/test/skydns/targetstrip/a",
            r#"{"host":"10.0.0.1","port":8080,"targetstrip":1}"#,
        ),
        (
            "/skydns/test/skydns/cname/b",
            r#"{"host":"a.cname.skydns.test"}"#,
        ),
        (
            "/skydns/test/skydns/cname/a",
            r#"{"host":"b.cname.skydns.test"}"#,
        ),
        ("/skydns/test/skydns/dns/ns/a", r#"{"host":"10.0.0.2"}"#),
        ("/skydns/test/skydns/dns/ns/b", r#"{"host":"10.0.0.3"}"#),
        (
            "/skydns/test/skydns/dns/ns/c/ns1",
            r#"{"host":"10.0.0.4","targetstrip":1}"#,
        ),
        (
            "/skydns/test/skydns/dns/ns/c/ns2",
            r#"{"host":"10.0.0.5","targetstrip":1}"#,
        ),
        (
            "/skydns/test/skydns/mail/a",
            r#"{"host":"mx.skydns.test","priority":50,"mail":true}"#,
        ),
        (
            "/skydns/test/skydns/mail/b",
            r#"{"host":"10.0.0.9","priority":30,"mail":true}"#,
        ),
        (
            "/skydns/test/skydns/mx",
            r#"{"host":"a.ipaddr.skydns.test"}"#,
        ),
        ("/skydns/test/skydns/ipaddr/a", r#"{"host":"172.16.1.1"}"#),
        (
            "/skydns/test/skydns/ext",
            r#"{"Host":"www.example.org","TTL":60}"#,
        ),
        (
            "/skydns/test/skydns/group/dom/a",
            r#"{"host":"127.0.0.1","group":"g1"}"#,
        ),
        (
            "/skydns/test/skydns/group/dom/sub/b",
            r#"{"host":"127.0.0.2","group":"g1"}"#,
        ),
        (
            "/skydns/test/skydns/group/dom1/a",
            r#"{"host":"127.0.0.1","group":"g1"}"#,
        ),
        (
            "/skydns/test/skydns/group/dom1/sub/b",
            r#"{"host":"127.0.0.2","group":"g2"}"#,
        ),
        (
            "/skydns/test/skydns/group/dom2/a",
            r#"{"host":"127.0.0.1","group":"g1"}"#,
        ),
        (
            "/skydns/test/skydns/group/dom2/sub/b",
            r#"{"host":"127.0.0.2"}"#,
        ),
        (
            "/skydns/test/skydns/ttl/short",
            r#"{"host":"10.1.0.1","ttl":20}"#,
        ),
        (
            "/skydns/test/skydns/broken/a",
            r#"{"host":"10.2.0.1","port":"eighty"}"#,
        ),
        ("/skydns/test/zoneb/x", r#"{"host":"10.0.0.2"}"#),
        ("/skydns/test/zoneb/dns/apex", r#"{"host":"10.0.0.4"}"#),
        ("/skydns/test/zonea/x", r#"{"host":"10.0.0.2"}"#),
        ("/skydns/test/zonea/y", r#"{"host":"2001:db8::3"}"#),
        (
            "/skydns/arpa/in-addr/10/0/0/1",
            r#"{"host":"reverse.example.com"}"#,
        ),
    ];

    const COREFILE: &str = ".:0 {
        hosts /dev/null example.org {
            192.0.2.80 www.example.org
        }
        etcd skydns.test zonea.test zoneb.test 10.0.0.0/24 {
            endpoint http://127.0.0.1:9
        }
    }";

    fn etcd(served: &Served) -> Etcd {
        served
            .handler
            .plugins()
            .find_map(|p| match p {
                Plugin::Etcd(e) => Some(e.clone()),
                _ => None,
            })
            .expect("the block has etcd")
    }

    fn store(keys: &[(&str, &str)]) -> Store {
        let mut store = Store::default();
        for (key, value) in keys {
            store
                .kvs
                .insert(key.to_string(), Arc::new(Entry::new(value.as_bytes(), 0)));
        }
        store
    }

    fn served() -> Served {
        let served = Served::new(COREFILE);
        let large = format!(r#"{{"text":"{}"}}"#, "0".repeat(400));
        let mut keys = KEYS.to_vec();
        keys.push(("/skydns/test/skydns/large400", &large));
        etcd(&served).publish(Arc::new(store(&keys)));
        served
    }

    fn expect(served: &Served, question: &str, want: &str) {
        served.expect_unserialed(question, want);
    }

    const SOA: &str = "skydns.test. 30 IN SOA ns.dns.skydns.test. hostmaster.skydns.test. SERIAL 7200 1800 86400 30";

    #[test]
    fn answers_as_skydns_lays_records_out() {
        let s = served();
        let cases: &[(&str, String)] = &[
            (
                "a.server1.dev.region1.skydns.test. SRV",
                ";; NOERROR aa rd
                a.server1.dev.region1.skydns.test. 300 IN SRV 10 100 8080 dev.server1."
                    .into(),
            ),
            // The question's spelling owns the answer.
            (
                "a.SERVer1.dEv.region1.skydns.tEst. SRV",
                ";; NOERROR aa rd
                a.SERVer1.dEv.region1.skydns.tEst. 300 IN SRV 10 100 8080 dev.server1."
                    .into(),
            ),
            (
                "doesnotexist.skydns.test. A",
                format!(";; NXDOMAIN aa rd\n;; authority\n{SOA}"),
            ),
            (
                "a.server1.prod.region1.skydns.test. A",
                ";; NOERROR aa rd
                a.server1.prod.region1.skydns.test. 300 IN A 10.0.0.1"
                    .into(),
            ),
            // An address's SRV targets the key's own name, with the address beside it.
            (
                "a.server1.prod.region1.skydns.test. SRV",
                ";; NOERROR aa rd
                a.server1.prod.region1.skydns.test. 300 IN SRV 10 100 8080 a.server1.prod.region1.skydns.test.
                ;; additional
                a.server1.prod.region1.skydns.test. 300 IN A 10.0.0.1"
                    .into(),
            ),
            (
                "b.server6.prod.region1.skydns.test. AAAA",
                ";; NOERROR aa rd
                b.server6.prod.region1.skydns.test. 300 IN AAAA ::1"
                    .into(),
            ),
            // The whole subtree answers.
            (
                "server1.prod.region1.skydns.test. A",
                ";; NOERROR aa rd
                server1.prod.region1.skydns.test. 300 IN A 10.0.0.1
                server1.prod.region1.skydns.test. 300 IN A 10.0.0.2"
                    .into(),
            ),
            (
                "priority.skydns.test. SRV",
                ";; NOERROR aa rd
                priority.skydns.test. 300 IN SRV 333 100 8080 priority.server1."
                    .into(),
            ),
            // Weights share 100 within a priority.
            (
                "sub.region1.skydns.test. SRV",
                ";; NOERROR aa rd
                sub.region1.skydns.test. 300 IN SRV 10 33 0 sub.server1.
                sub.region1.skydns.test. 300 IN SRV 10 33 80 sub.server2.
                sub.region1.skydns.test. 300 IN SRV 10 33 8080 c.sub.region1.skydns.test.
                ;; additional
                c.sub.region1.skydns.test. 300 IN A 10.0.0.1"
                    .into(),
            ),
            (
                "targetstrip.skydns.test. SRV",
                ";; NOERROR aa rd
                targetstrip.skydns.test. 300 IN SRV 10 100 8080 targetstrip.skydns.test.
                ;; additional
                targetstrip.skydns.test. 300 IN A 10.0.0.1"
                    .into(),
            ),
            // A CNAME whose target has nothing, and a loop of CNAMEs: NODATA.
            (
                "cname.prod.region1.skydns.test. A",
                format!(";; NOERROR aa rd\n;; authority\n{SOA}"),
            ),
            ("a.cname.skydns.test. A", format!(";; NOERROR aa rd\n;; authority\n{SOA}")),
            (
                "txt.server1.prod.region1.skydns.test. TXT",
                ";; NOERROR aa rd
                txt.server1.prod.region1.skydns.test. 300 IN TXT sometext
                txt.server1.prod.region1.skydns.test. 300 IN TXT moretext"
                    .into(),
            ),
            // A wildcard label matches every key at its level.
            (
                "prod.*.skydns.test. SRV",
                ";; NOERROR aa rd
                prod.*.skydns.test. 300 IN SRV 10 25 0 unresolvable.skydns.test.
                prod.*.skydns.test. 300 IN SRV 10 25 8080 a.server1.prod.region1.skydns.test.
                prod.*.skydns.test. 300 IN SRV 10 25 8080 b.server1.prod.region1.skydns.test.
                prod.*.skydns.test. 300 IN SRV 10 25 8080 b.server6.prod.region1.skydns.test.
                ;; additional
                a.server1.prod.region1.skydns.test. 300 IN A 10.0.0.1
                b.server1.prod.region1.skydns.test. 300 IN A 10.0.0.2
                b.server6.prod.region1.skydns.test. 300 IN AAAA ::1"
                    .into(),
            ),
            // A name host outside the zone: its CNAME, and what the block has for the target
            // (nothing here).
            (
                "a.server1.dev.region1.skydns.test. TXT",
                ";; NOERROR aa rd
                a.server1.dev.region1.skydns.test. 300 IN CNAME dev.server1."
                    .into(),
            ),
            (
                "a.server1.dev.region1.skydns.test. HINFO",
                format!(";; NOERROR aa rd\n;; authority\n{SOA}"),
            ),
            (
                "a.server1.nonexistent.region1.skydns.test. HINFO",
                format!(";; NXDOMAIN aa rd\n;; authority\n{SOA}"),
            ),
            // Every name's SOA is the zone's.
            ("x.skydns.test. SOA", format!(";; NOERROR aa rd\n{SOA}")),
            (
                "skydns.test. NS",
                ";; NOERROR aa rd
                skydns.test. 300 IN NS a.ns.dns.skydns.test.
                skydns.test. 300 IN NS b.ns.dns.skydns.test.
                skydns.test. 300 IN NS c.ns.dns.skydns.test.
                ;; additional
                a.ns.dns.skydns.test. 300 IN A 10.0.0.2
                b.ns.dns.skydns.test. 300 IN A 10.0.0.3
                c.ns.dns.skydns.test. 300 IN A 10.0.0.4
                c.ns.dns.skydns.test. 300 IN A 10.0.0.5"
                    .into(),
            ),
            ("a.skydns.test. NS", format!(";; NXDOMAIN aa rd\n;; authority\n{SOA}")),
            (
                "ns.dns.skydns.test. A",
                ";; NOERROR aa rd
                ns.dns.skydns.test. 300 IN A 10.0.0.2
                ns.dns.skydns.test. 300 IN A 10.0.0.3
                ns.dns.skydns.test. 300 IN A 10.0.0.4
                ns.dns.skydns.test. 300 IN A 10.0.0.5"
                    .into(),
            ),
            // The apex: `apex.dns` first, else the zone's whole tree.
            (
                "zoneb.test. A",
                ";; NOERROR aa rd
                zoneb.test. 300 IN A 10.0.0.4"
                    .into(),
            ),
            (
                "zonea.test. AAAA",
                ";; NOERROR aa rd
                zonea.test. 300 IN AAAA 2001:db8::3"
                    .into(),
            ),
            (
                "1.0.0.10.in-addr.arpa. PTR",
                ";; NOERROR aa rd
                1.0.0.10.in-addr.arpa. 300 IN PTR reverse.example.com."
                    .into(),
            ),
            // Mail: a name target's addresses (through its CNAME) and an address's own name.
            (
                "mail.skydns.test. MX",
                ";; NOERROR aa rd
                mail.skydns.test. 300 IN MX 50 mx.skydns.test.
                mail.skydns.test. 300 IN MX 30 b.mail.skydns.test.
                ;; additional
                mx.skydns.test. 300 IN CNAME a.ipaddr.skydns.test.
                a.ipaddr.skydns.test. 300 IN A 172.16.1.1
                b.mail.skydns.test. 300 IN A 10.0.0.9"
                    .into(),
            ),
            // A target outside the zone is asked of the block (here `hosts`); field names
            // in any letter case, as Go's JSON reads them.
            (
                "ext.skydns.test. A",
                ";; NOERROR aa rd
                ext.skydns.test. 60 IN CNAME www.example.org.
                www.example.org. 3600 IN A 192.0.2.80"
                    .into(),
            ),
            ("large400.skydns.test. TXT", {
                let zeros = "0".repeat(255);
                let rest = "0".repeat(145);
                format!(";; NOERROR aa rd\nlarge400.skydns.test. 300 IN TXT {zeros}{rest}")
            }),
            // Groups: the nearest services' group and services without one.
            (
                "dom.group.skydns.test. A",
                ";; NOERROR aa rd
                dom.group.skydns.test. 300 IN A 127.0.0.1
                dom.group.skydns.test. 300 IN A 127.0.0.2"
                    .into(),
            ),
            (
                "dom1.group.skydns.test. A",
                ";; NOERROR aa rd
                dom1.group.skydns.test. 300 IN A 127.0.0.1"
                    .into(),
            ),
            (
                "dom2.group.skydns.test. A",
                ";; NOERROR aa rd
                dom2.group.skydns.test. 300 IN A 127.0.0.1
                dom2.group.skydns.test. 300 IN A 127.0.0.2"
                    .into(),
            ),
            (
                "short.ttl.skydns.test. A",
                ";; NOERROR aa rd
                short.ttl.skydns.test. 20 IN A 10.1.0.1"
                    .into(),
            ),
            // A value that does not decode fails the lookup that reads it.
            ("broken.skydns.test. A", format!(";; SERVFAIL aa rd\n;; authority\n{SOA}")),
            // Not its zone.
            ("other.test. A", ";; SERVFAIL rd".into()),
        ];
        for (question, want) in cases {
            expect(&s, question, want);
        }
    }

    #[test]
    fn servfail_until_the_first_list_and_fallthrough_on_missing_names() {
        let served = Served::new(COREFILE);
        expect(
            &served,
            "a.server1.prod.region1.skydns.test. A",
            &format!(";; SERVFAIL aa rd\n;; authority\n{SOA}"),
        );
        // With `fallthrough`, a name etcd lacks goes on to the next plugin (`whoami` here).
        let through = Served::new(
            ".:0 {
                etcd skydns.test {
                    fallthrough
                    endpoint http://127.0.0.1:9
                }
                whoami
            }",
        );
        etcd(&through).publish(Arc::new(store(KEYS)));
        expect(
            &through,
            "missing.skydns.test. A",
            ";; NOERROR aa rd
            ;; additional
            missing.skydns.test. 0 IN A 10.244.0.7
            _udp.missing.skydns.test. 0 IN SRV 0 0 40000 .",
        );
        expect(
            &through,
            "a.server1.prod.region1.skydns.test. A",
            ";; NOERROR aa rd\na.server1.prod.region1.skydns.test. 300 IN A 10.0.0.1",
        );
    }

    #[test]
    fn a_leased_key_lives_no_longer_than_its_lease_within_the_bounds() {
        let served = Served::new(
            ".:0 {
                etcd skydns.test {
                    endpoint http://127.0.0.1:9
                    min-lease-ttl 30
                    max-lease-ttl 1h
                }
            }",
        );
        let mut store = Store::default();
        let now = Instant::now();
        for (key, value, lease) in [
            ("/skydns/test/skydns/short", r#"{"host":"10.0.0.1"}"#, 1),
            ("/skydns/test/skydns/long", r#"{"host":"10.0.0.2"}"#, 2),
            (
                "/skydns/test/skydns/mid",
                r#"{"host":"10.0.0.3","ttl":100}"#,
                3,
            ),
            (
                "/skydns/test/skydns/gone",
                r#"{"host":"10.0.0.4","ttl":100}"#,
                4,
            ),
        ] {
            store
                .kvs
                .insert(key.into(), Arc::new(Entry::new(value.as_bytes(), lease)));
        }
        store.leases = Arc::new(HashMap::from([
            (1, (5, now)),
            (2, (86400, now)),
            (3, (600, now)),
            (4, (-1, now)),
        ]));
        etcd(&served).publish(Arc::new(store));
        for (name, ttl) in [("short", 30), ("long", 3600), ("mid", 100), ("gone", 100)] {
            let got = served.ask(&format!("{name}.skydns.test. A"));
            assert!(
                got.contains(&format!("{name}.skydns.test. {ttl} IN A")),
                "{name}: {got}"
            );
        }
        // A maximum under the minimum: bounded as CoreDNS bounds it, minimum first.
        let crossed = Served::new(
            ".:0 {\n etcd skydns.test {\n  endpoint http://127.0.0.1:9\n  max-lease-ttl 10\n }\n}",
        );
        etcd(&crossed).publish(etcd(&served).store().unwrap());
        let got = crossed.ask("long.skydns.test. A");
        assert!(got.contains("long.skydns.test. 10 IN A"), "{got}");
        let got = crossed.ask("short.skydns.test. A");
        assert!(got.contains("short.skydns.test. 30 IN A"), "{got}");
    }

    #[test]
    fn reads_the_directive_as_coredns_does() {
        use crate::plugin::testing::settings;
        let c: EtcdConfig = settings("etcd").unwrap();
        assert_eq!(c.path, "skydns");
        assert_eq!(c.endpoints, ["http://localhost:2379"]);
        assert_eq!((c.min_lease_ttl, c.max_lease_ttl), (30, 86400));
        let c: EtcdConfig = settings(
            "etcd skydns.local 10.0.0.0/24 {
                stubzones
                path /skydns
                endpoint http://etcd.default.svc.cluster.local:2379 127.0.0.1:4001
                credentials root secret
                min-lease-ttl 60
                max-lease-ttl 2h30m
                upstream
                debug
                fallthrough
            }",
        )
        .unwrap();
        assert_eq!(c.path, "/skydns");
        assert_eq!(
            c.endpoints,
            [
                "http://etcd.default.svc.cluster.local:2379",
                "http://127.0.0.1:4001"
            ]
        );
        assert_eq!(c.credentials, Some(("root".into(), "secret".into())));
        assert_eq!((c.min_lease_ttl, c.max_lease_ttl), (60, 9000));
        assert_eq!(
            c.zones.iter().map(|z| z.to_string()).collect::<Vec<_>>(),
            ["skydns.local.", "0.0.10.in-addr.arpa."]
        );
        for (lines, message) in [
            ("etcd {\n endpoint\n}", "Wrong argument count"),
            (
                "etcd {\n credentials root\n}",
                "credentials requires 2 arguments",
            ),
            (
                "etcd {\n min-lease-ttl soon\n}",
                "invalid min-lease-ttl value: invalid TTL format",
            ),
            ("etcd {\n max-lease-ttl -5\n}", "TTL must be non-negative"),
            ("etcd {\n nonsense\n}", "unknown property 'nonsense'"),
            (
                "etcd {\n endpoint unix:///run/etcd.sock\n}",
                "only http:// and https://",
            ),
            ("etcd {\n tls /nonexistent/ca.pem\n}", "/nonexistent/ca.pem"),
        ] {
            let e = settings::<EtcdConfig>(lines).unwrap_err();
            assert!(e.contains(message) && e.contains("etcd"), "{lines}: {e}");
        }
    }

    #[test]
    fn names_map_to_paths_and_back() {
        let name = |n: &str| Name::from_ascii(n).unwrap();
        assert_eq!(
            path("skydns", &name("a.b.skydns.local.")),
            ("/skydns/local/skydns/b/a".to_string(), false)
        );
        assert_eq!(
            path("/skydns", &name("x.*.skydns.local.")),
            ("/skydns/local/skydns".to_string(), true)
        );
        assert_eq!(path("skydns", &name(".")), ("/skydns".to_string(), false));
        assert_eq!(domain("/skydns/local/skydns/b/a"), "a.b.skydns.local.");
        assert_eq!(domain("/skydns/local/skydns/b/a/"), "a.b.skydns.local.");
        assert_eq!(
            target_strip("ns1.c.ns.dns.skydns.test.", 1),
            "c.ns.dns.skydns.test."
        );
        assert_eq!(target_strip("a.b.", 2), "a.b.");
        assert_eq!(split255(&"x".repeat(255)).len(), 2);
        assert_eq!(split255(&"x".repeat(254)).len(), 1);
        // Cut by bytes, as Go cuts strings: a character may straddle two strings.
        let text = format!("{}é", "a".repeat(254));
        assert_eq!(
            split255(&text).iter().map(|s| s.len()).collect::<Vec<_>>(),
            [255, 1]
        );
        assert_eq!(
            Service::decode(br#"{"HOST":"h","Port":-1,"extra":[1]}"#).unwrap(),
            Service {
                host: "h".into(),
                port: -1,
                ..Service::default()
            }
        );
        assert!(Service::decode(b"[1]").is_err());
        assert!(Service::decode(br#"{"ttl":-3}"#).is_err());
        assert_eq!(Service::decode(b"null").unwrap(), Service::default());
    }
}
