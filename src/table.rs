//! The record table: names to record sets, published as immutable snapshots.
//!
//! Readers ([`RecordTable::load`]) never wait for a writer: a writer builds a whole new
//! snapshot and swaps it in with one atomic store ([`RecordTable::publish`]), so a query sees
//! either the old records or the new ones, never a mix (the RCU scheme Knot DNS uses for zones).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType};

/// The records of one type at one name, and what goes in the additional section with them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RrSet {
    pub records: Vec<Record>,
    pub additional: Vec<Record>,
}

/// Everything at one name. A node with no sets is an empty non-terminal: the name exists.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Node {
    sets: Vec<(RecordType, RrSet)>,
}

impl Node {
    /// The record set of `rtype`, if the name has one.
    pub fn get(&self, rtype: RecordType) -> Option<&RrSet> {
        self.sets.iter().find(|(t, _)| *t == rtype).map(|(_, s)| s)
    }

    /// Every record set at this name.
    pub fn sets(&self) -> impl Iterator<Item = &RrSet> {
        self.sets.iter().map(|(_, s)| s)
    }

    fn set_mut(&mut self, rtype: RecordType) -> &mut RrSet {
        let i = match self.sets.iter().position(|(t, _)| *t == rtype) {
            Some(i) => i,
            None => {
                self.sets.push((rtype, RrSet::default()));
                self.sets.len() - 1
            }
        };
        &mut self.sets[i].1
    }
}

/// Names to nodes, with empty non-terminals filled in.
#[derive(Debug, Clone, Default)]
pub struct Records {
    nodes: HashMap<LowerName, Node>,
}

impl Records {
    /// The node at `name`.
    pub fn get(&self, name: &LowerName) -> Option<&Node> {
        self.nodes.get(name)
    }

    /// How many names the table holds.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the table holds no names.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Every name with its node.
    pub fn into_nodes(self) -> impl Iterator<Item = (LowerName, Node)> {
        self.nodes.into_iter()
    }

    /// Makes `name` exist, with every name between it and `zone` (empty non-terminals).
    pub fn ensure(&mut self, name: &Name, zone: &Name) -> &mut Node {
        let key = LowerName::new(name);
        if !self.nodes.contains_key(&key) {
            // A new name: its ancestors may be new too, up to the first that exists.
            let mut parent = name.base_name();
            while parent.num_labels() > zone.num_labels() {
                let parent_key = LowerName::new(&parent);
                if self.nodes.contains_key(&parent_key) {
                    break;
                }
                self.nodes.insert(parent_key, Node::default());
                parent = parent.base_name();
            }
        }
        self.nodes.entry(key).or_default()
    }

    /// Adds a record at its owner name, unless that exact record is there already.
    /// Returns whether it was added.
    pub fn add(&mut self, zone: &Name, record: Record) -> bool {
        let set = self
            .ensure(record.name(), zone)
            .set_mut(record.record_type());
        if set.records.iter().any(|r| r.data() == record.data()) {
            return false;
        }
        set.records.push(record);
        true
    }

    /// Adds a record to the additional section of the `rtype` set at `owner`, once.
    pub fn add_additional(&mut self, zone: &Name, owner: &Name, rtype: RecordType, record: Record) {
        let set = self.ensure(owner, zone).set_mut(rtype);
        if !set
            .additional
            .iter()
            .any(|r| r.name() == record.name() && r.data() == record.data())
        {
            set.additional.push(record);
        }
    }
}

/// Shorthand for a record with class IN.
pub fn record(name: &Name, ttl: u32, rdata: RData) -> Record {
    Record::from_rdata(name.clone(), ttl, rdata)
}

/// A value published as snapshots: readers load the current one without locking.
#[derive(Debug)]
pub struct RecordTable<T> {
    current: ArcSwap<T>,
}

impl<T> RecordTable<T> {
    pub fn new(initial: T) -> Self {
        Self {
            current: ArcSwap::from_pointee(initial),
        }
    }

    /// The current snapshot. Hold it for one query; it stays valid after a publish.
    pub fn load(&self) -> Arc<T> {
        self.current.load_full()
    }

    /// Replaces the snapshot. Readers that loaded the old one keep it until they drop it.
    pub fn publish(&self, next: T) {
        self.current.store(Arc::new(next));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::rdata::A;

    fn n(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    #[test]
    fn adding_a_record_fills_in_empty_non_terminals_up_to_the_zone() {
        let zone = n("cluster.local.");
        let mut t = Records::default();
        t.add(
            &zone,
            record(
                &n("web.prod.svc.cluster.local."),
                5,
                RData::A(A::new(10, 0, 0, 1)),
            ),
        );
        for ent in ["prod.svc.cluster.local.", "svc.cluster.local."] {
            let node = t.get(&LowerName::new(&n(ent))).unwrap();
            assert_eq!(node.sets().count(), 0, "{ent}");
        }
        assert!(t.get(&LowerName::new(&n("cluster.local."))).is_none());
        let web = t
            .get(&LowerName::new(&n("WEB.prod.svc.cluster.local.")))
            .unwrap();
        assert_eq!(web.get(RecordType::A).unwrap().records.len(), 1);
    }

    #[test]
    fn duplicate_records_are_kept_once() {
        let zone = n("cluster.local.");
        let mut t = Records::default();
        let r = record(&n("a.cluster.local."), 5, RData::A(A::new(10, 0, 0, 1)));
        assert!(t.add(&zone, r.clone()));
        assert!(!t.add(&zone, r));
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn ptr_sets_sort_their_entries_and_a_cluster_ip_wins() {
        let name = |s: &str| NameKey::new(&n(s));
        let (web, db) = (
            name("web.prod.svc.cluster.local."),
            name("db.prod.svc.cluster.local."),
        );
        let (web_0, db_0) = (
            name("web-0.web.prod.svc.cluster.local."),
            name("db-0.db.prod.svc.cluster.local."),
        );
        fn entry<'a>(service: &'a NameKey, target: &'a NameKey, cluster_ip: bool) -> PtrEntry<'a> {
            PtrEntry {
                service: service.as_bytes(),
                target: target.as_bytes(),
                cluster_ip,
            }
        }
        let endpoints = PtrSet::new(vec![
            entry(&web, &web_0, false),
            entry(&db, &db_0, false),
            entry(&web, &web_0, false),
        ]);
        assert_eq!(endpoints.served(), vec![db_0.as_bytes(), web_0.as_bytes()]);
        assert_eq!(endpoints.entries().count(), 2);
        let with_service = PtrSet::new(vec![entry(&db, &db_0, false), entry(&web, &web, true)]);
        assert_eq!(with_service.served(), vec![web.as_bytes()]);
        // A target outside its service is refused.
        assert!(PtrSet::new(vec![entry(&web, &db_0, false)]).is_empty());
    }

    #[test]
    fn readers_keep_their_snapshot_across_a_publish() {
        let table = RecordTable::new(1u32);
        let before = table.load();
        table.publish(2);
        assert_eq!(*before, 1);
        assert_eq!(*table.load(), 2);
    }
}

/// One record set as served: bodies ready to follow the question's name, and whole
/// additional records (see [`crate::wire`]). A view into its node's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireSet<'a> {
    pub count: u16,
    pub bodies: &'a [u8],
    pub additional_count: u16,
    pub additional: &'a [u8],
}

/// A node as served: each set precompiled in wire format when the records change, so a
/// query copies bytes instead of encoding records. One allocation: a set count, a 14-byte
/// header per set (type, count, bodies' length, additional count, additional length), then
/// each set's bodies and additional records. An empty non-terminal allocates nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WireNode(Box<[u8]>);

const SET_HEADER: usize = 14;

impl WireNode {
    /// The set of `rtype`, if the name has one.
    pub fn get(&self, rtype: RecordType) -> Option<WireSet<'_>> {
        self.sets().find(|(t, _)| *t == rtype).map(|(_, s)| s)
    }

    /// Every set at this name.
    pub fn sets(&self) -> impl Iterator<Item = (RecordType, WireSet<'_>)> {
        let bytes = &self.0[..];
        let sets = bytes.first().map_or(0, |n| usize::from(*n));
        let mut data = 1 + sets * SET_HEADER;
        (0..sets).map_while(move |i| {
            let h = bytes.get(1 + i * SET_HEADER..1 + (i + 1) * SET_HEADER)?;
            let u16_at = |at: usize| u16::from_be_bytes([h[at], h[at + 1]]);
            let u32_at = |at: usize| u32::from_be_bytes([h[at], h[at + 1], h[at + 2], h[at + 3]]);
            let (bodies_len, additional_len) = (u32_at(4) as usize, u32_at(10) as usize);
            let bodies = bytes.get(data..data + bodies_len)?;
            let additional = bytes.get(data + bodies_len..data + bodies_len + additional_len)?;
            data += bodies_len + additional_len;
            let set = WireSet {
                count: u16_at(2),
                bodies,
                additional_count: u16_at(8),
                additional,
            };
            Some((RecordType::from(u16_at(0)), set))
        })
    }

    /// Where the sets' bytes end (and the endpoint names begin).
    fn sets_end(&self) -> usize {
        let sets = self.0.first().map_or(0, |n| usize::from(*n));
        let mut end = 1 + sets * SET_HEADER;
        for i in 0..sets {
            let h = &self.0[1 + i * SET_HEADER..1 + (i + 1) * SET_HEADER];
            end += u32::from_be_bytes([h[4], h[5], h[6], h[7]]) as usize;
            end += u32::from_be_bytes([h[10], h[11], h[12], h[13]]) as usize;
        }
        end.min(self.0.len())
    }

    /// The node with the names of its endpoints appended (a service's node: its endpoints'
    /// names are answered from it, see [`EndpointNames`]).
    pub fn with_endpoints(self, endpoints: &EndpointNames) -> Self {
        if endpoints.0.is_empty() {
            return self;
        }
        let mut bytes = self.0.into_vec();
        if bytes.is_empty() {
            bytes.push(0);
        }
        bytes.extend_from_slice(&endpoints.0);
        Self(bytes.into_boxed_slice())
    }

    /// The endpoint named `label` under this node (lowercase), if there is one.
    pub fn endpoint(&self, label: &[u8]) -> Option<EndpointName<'_>> {
        self.endpoints().find(|e| e.label == label)
    }

    /// The endpoints named under this node, by label.
    pub fn endpoints(&self) -> impl Iterator<Item = EndpointName<'_>> {
        let mut rest = self.0.get(self.sets_end()..).unwrap_or_default();
        std::iter::from_fn(move || {
            let (entry, after) = EndpointName::parse(rest)?;
            rest = after;
            Some(entry)
        })
    }

    /// The target of the node's CNAME, if it has one, for following it inside the zone.
    pub fn cname(&self) -> Option<Name> {
        let set = self.get(RecordType::CNAME)?;
        let mut rest = set.bodies.get(10..)?;
        let mut labels = Vec::new();
        while let [len, tail @ ..] = rest
            && *len > 0
        {
            let (label, after) = tail.split_at_checked(usize::from(*len))?;
            labels.push(label);
            rest = after;
        }
        Name::from_labels(labels).ok()
    }
}

impl From<&Node> for WireNode {
    fn from(node: &Node) -> Self {
        if node.sets.is_empty() {
            return Self::default();
        }
        let sets: Vec<(RecordType, &RrSet, Vec<u8>, Vec<u8>)> = node
            .sets
            .iter()
            .take(usize::from(u8::MAX))
            .map(|(t, set)| {
                let bodies = set.records.iter().flat_map(crate::wire::body).collect();
                let additional = set.additional.iter().flat_map(crate::wire::full).collect();
                (*t, set, bodies, additional)
            })
            .collect();
        let size: usize = sets
            .iter()
            .map(|(_, _, b, a)| SET_HEADER + b.len() + a.len())
            .sum();
        let mut out = Vec::with_capacity(1 + size);
        out.push(sets.len() as u8);
        for (t, set, bodies, additional) in &sets {
            out.extend_from_slice(&u16::from(*t).to_be_bytes());
            out.extend_from_slice(&(set.records.len() as u16).to_be_bytes());
            out.extend_from_slice(&(bodies.len() as u32).to_be_bytes());
            out.extend_from_slice(&(set.additional.len() as u16).to_be_bytes());
            out.extend_from_slice(&(additional.len() as u32).to_be_bytes());
        }
        for (_, _, bodies, additional) in sets {
            out.extend_from_slice(&bodies);
            out.extend_from_slice(&additional);
        }
        Self(out.into_boxed_slice())
    }
}

/// The names of a service's endpoints (`LABEL.SERVICE.NS.svc.ZONE`), kept in the service's
/// node instead of a node each: per endpoint its label, its addresses and its SRV ports, about
/// 25 bytes where a node of its own took 300. Answers are written from them per query (they
/// are a few fixed-size records owned by the question). Entries: label length and label,
/// address count and addresses (a flag byte, bit 0 IPv6, bit 1 "in the SRV answer's
/// additional section", then 4 or 16 bytes), SRV count and (weight, port) pairs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointNames(Vec<u8>);

/// The endpoint names of one service as they are built.
#[derive(Debug, Default)]
pub struct EndpointNamesBuilder {
    entries: Vec<EndpointEntry>,
}

/// A label, its addresses (each with whether it goes with the SRV answer), its SRV
/// (weight, port) pairs.
type EndpointEntry = (Vec<u8>, Vec<(IpAddr, bool)>, Vec<(u16, u16)>);

impl EndpointNamesBuilder {
    fn entry(&mut self, label: &str) -> &mut EndpointEntry {
        let label = label.to_ascii_lowercase().into_bytes();
        let i = match self.entries.iter().position(|e| e.0 == label) {
            Some(i) => i,
            None => {
                self.entries.push((label, Vec::new(), Vec::new()));
                self.entries.len() - 1
            }
        };
        &mut self.entries[i]
    }

    /// An address at `label`; `additional`: it goes with the name's SRV answer.
    pub fn address(&mut self, label: &str, ip: IpAddr, additional: bool) {
        let addresses = &mut self.entry(label).1;
        match addresses.iter_mut().find(|(a, _)| *a == ip) {
            Some(found) => found.1 |= additional,
            None => addresses.push((ip, additional)),
        }
    }

    /// An SRV record at `label` (priority 0, the target is the name itself).
    pub fn srv(&mut self, label: &str, weight: u16, port: u16) {
        let srvs = &mut self.entry(label).2;
        if !srvs.contains(&(weight, port)) {
            srvs.push((weight, port));
        }
    }

    pub fn build(mut self) -> EndpointNames {
        self.entries.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out = Vec::new();
        for (label, addresses, srvs) in self.entries {
            if label.is_empty() || label.len() > 63 {
                continue;
            }
            out.push(label.len() as u8);
            out.extend_from_slice(&label);
            let addresses = &addresses[..addresses.len().min(255)];
            out.push(addresses.len() as u8);
            for (ip, additional) in addresses {
                out.push(u8::from(ip.is_ipv6()) | u8::from(*additional) << 1);
                match ip {
                    IpAddr::V4(v4) => out.extend_from_slice(&v4.octets()),
                    IpAddr::V6(v6) => out.extend_from_slice(&v6.octets()),
                }
            }
            let srvs = &srvs[..srvs.len().min(255)];
            out.push(srvs.len() as u8);
            for (weight, port) in srvs {
                out.extend_from_slice(&weight.to_be_bytes());
                out.extend_from_slice(&port.to_be_bytes());
            }
        }
        EndpointNames(out)
    }
}

/// One endpoint name, read from its service's node.
#[derive(Debug, Clone, Copy)]
pub struct EndpointName<'a> {
    pub label: &'a [u8],
    addresses: &'a [u8],
    srvs: &'a [u8],
}

impl<'a> EndpointName<'a> {
    fn parse(bytes: &'a [u8]) -> Option<(Self, &'a [u8])> {
        let (&len, rest) = bytes.split_first()?;
        let (label, rest) = rest.split_at_checked(usize::from(len))?;
        let (&count, rest) = rest.split_first()?;
        let mut size = 0;
        for _ in 0..count {
            let flag = *rest.get(size)?;
            size += 1 + if flag & 1 == 1 { 16 } else { 4 };
        }
        let (addresses, rest) = rest.split_at_checked(size)?;
        let (&count, rest) = rest.split_first()?;
        let (srvs, rest) = rest.split_at_checked(usize::from(count) * 4)?;
        Some((
            Self {
                label,
                addresses,
                srvs,
            },
            rest,
        ))
    }

    /// Its addresses, each with whether it goes with the SRV answer.
    pub fn addresses(&self) -> impl Iterator<Item = (IpAddr, bool)> + 'a {
        let mut rest = self.addresses;
        std::iter::from_fn(move || {
            let (&flag, tail) = rest.split_first()?;
            let (ip, after) = if flag & 1 == 1 {
                let (b, after) = tail.split_first_chunk::<16>()?;
                (IpAddr::from(*b), after)
            } else {
                let (b, after) = tail.split_first_chunk::<4>()?;
                (IpAddr::from(*b), after)
            };
            rest = after;
            Some((ip, flag & 2 == 2))
        })
    }

    /// Its SRV records' (weight, port).
    pub fn srvs(&self) -> impl Iterator<Item = (u16, u16)> + 'a {
        self.srvs.chunks_exact(4).map(|c| {
            (
                u16::from_be_bytes([c[0], c[1]]),
                u16::from_be_bytes([c[2], c[3]]),
            )
        })
    }
}

/// The PTR targets services give one address, in one allocation: entries of a flag byte (1:
/// the address is that service's cluster IP), the offset of the service's name inside the
/// target, the target's length, and the target in wire format. Kept sorted, so the answer does
/// not depend on the order changes came in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PtrSet(Box<[u8]>);

/// One PTR target, and the service that gave it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct PtrEntry<'a> {
    /// The service's name in wire format (a suffix of `target`): entries sort by it first.
    pub service: &'a [u8],
    pub target: &'a [u8],
    pub cluster_ip: bool,
}

impl PtrSet {
    /// A set of these entries, sorted, without duplicates. Entries whose target is not a
    /// wire-format name of at most 255 bytes ending in `service` are left out.
    pub fn new(mut entries: Vec<PtrEntry<'_>>) -> Self {
        entries.retain(|e| e.target.len() <= 255 && e.target.ends_with(e.service));
        entries.sort();
        entries.dedup();
        let mut out = Vec::with_capacity(entries.iter().map(|e| 3 + e.target.len()).sum());
        for e in entries {
            out.push(u8::from(e.cluster_ip));
            out.push((e.target.len() - e.service.len()) as u8);
            out.push(e.target.len() as u8);
            out.extend_from_slice(e.target);
        }
        Self(out.into_boxed_slice())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every entry, in order.
    pub fn entries(&self) -> impl Iterator<Item = PtrEntry<'_>> {
        let mut rest = &self.0[..];
        std::iter::from_fn(move || {
            let [flag, offset, len, tail @ ..] = rest else {
                return None;
            };
            let (target, after) = tail.split_at_checked(usize::from(*len))?;
            rest = after;
            Some(PtrEntry {
                service: target.get(usize::from(*offset)..)?,
                target,
                cluster_ip: *flag == 1,
            })
        })
    }

    /// The targets served: the service whose cluster IP the address is, else every endpoint
    /// name with that address.
    pub fn served(&self) -> Vec<&[u8]> {
        match self.entries().find(|e| e.cluster_ip) {
            Some(e) => vec![e.target],
            None => self.entries().map(|e| e.target).collect(),
        }
    }
}

/// A name as a table key: its labels in wire format, lowercased. Half the size of a
/// `LowerName`, and comparable with bytes taken straight from a packet.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NameKey(Box<[u8]>);

impl std::borrow::Borrow<[u8]> for NameKey {
    fn borrow(&self) -> &[u8] {
        &self.0
    }
}

impl NameKey {
    pub fn new(name: &Name) -> Self {
        let mut out = Vec::with_capacity(name.len() + 1);
        for label in name.iter() {
            out.push(label.len() as u8);
            out.extend(label.iter().map(u8::to_ascii_lowercase));
        }
        out.push(0);
        Self(out.into_boxed_slice())
    }
}

impl NameKey {
    /// The labels, in order.
    fn labels(&self) -> impl Iterator<Item = &[u8]> {
        let mut rest = &self.0[..];
        std::iter::from_fn(move || {
            let (&len, tail) = rest.split_first()?;
            let len = usize::from(len);
            if len == 0 || tail.len() < len {
                return None;
            }
            let (label, after) = tail.split_at(len);
            rest = after;
            Some(label)
        })
    }

    /// A key from bytes that are already a lowercase name in wire format.
    pub(crate) fn from_lowercase_wire(bytes: Vec<u8>) -> Self {
        Self(bytes.into_boxed_slice())
    }

    /// The labels in wire format, lowercase, ending with the root's zero.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The name again (lowercase, fully qualified).
    pub fn to_name(&self) -> Option<Name> {
        Name::from_labels(self.labels()).ok()
    }
}

impl From<&LowerName> for NameKey {
    fn from(name: &LowerName) -> Self {
        Self::new(name)
    }
}

impl std::fmt::Display for NameKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for label in self.labels() {
            write!(f, "{}.", String::from_utf8_lossy(label))?;
        }
        Ok(())
    }
}
