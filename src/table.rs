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

    /// Adds `record` to the set of its type (a name's own records, with no empty
    /// non-terminals above it: `hosts`).
    pub fn push(&mut self, record: Record) {
        self.set_mut(record.record_type()).records.push(record);
    }

    /// Sets the additional records that go with the set of `rtype` (when it has one).
    pub fn set_additional(&mut self, rtype: RecordType, additional: Vec<Record>) {
        if let Some((_, set)) = self.sets.iter_mut().find(|(t, _)| *t == rtype) {
            set.additional = additional;
        }
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

    /// The current snapshot for one query, without touching its reference count (the fast
    /// path's read); drop it before the query ends.
    pub fn guard(&self) -> arc_swap::Guard<Arc<T>> {
        self.current.load()
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
    fn ptr_rows_sort_a_cluster_ip_wins_and_labels_are_derived() {
        let name = |s: &str| NameKey::new(&n(s));
        let (web, db) = (
            name("web.prod.svc.cluster.local."),
            name("db.prod.svc.cluster.local."),
        );
        let ip: IpAddr = "10.0.0.7".parse().unwrap();
        let row = |service, cluster_ip, label| PtrRow {
            ip,
            service,
            cluster_ip,
            label,
        };
        let index = PtrIndex::default();
        let targets = |index: &PtrIndex| -> Vec<String> {
            let view = index.pin();
            view.get(ip)
                .map(|t| t.map(|t| name_of(&t.to_vec())).collect())
                .unwrap_or_default()
        };
        fn name_of(wire: &[u8]) -> String {
            let key = NameKey::from_lowercase_wire(wire.to_vec());
            key.to_string()
        }
        // Web (number 2) then db (number 1): served in name order, the dashed label derived.
        index.replace_service(2, &web, &[], &[row(2, false, None)]);
        index.replace_service(1, &db, &[], &[row(1, false, Some(&b"db-0"[..]))]);
        assert_eq!(
            targets(&index),
            [
                "db-0.db.prod.svc.cluster.local.",
                "10-0-0-7.web.prod.svc.cluster.local."
            ]
        );
        // A cluster IP wins over endpoint names.
        index.replace_service(2, &web, &[ip], &[row(2, true, None)]);
        assert_eq!(targets(&index), ["web.prod.svc.cluster.local."]);
        // Taking everything back leaves nothing.
        index.replace_service(2, &web, &[ip], &[]);
        index.replace_service(1, &db, &[ip], &[]);
        assert!(targets(&index).is_empty());
        assert!(index.is_empty());
        assert!(index.pin().services.is_empty());
    }

    #[test]
    fn dashed_labels_of_every_width() {
        for (ip, label) in [
            ("1.2.3.4", "1-2-3-4"),
            ("10.96.0.10", "10-96-0-10"),
            ("255.100.9.0", "255-100-9-0"),
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            let row = PtrRow {
                ip,
                service: 0,
                cluster_ip: false,
                label: None,
            };
            let target = PtrTarget::new(row, &[0]);
            assert_eq!(target.label(), Some(label.as_bytes()));
            assert_eq!(target.len(), label.len() + 2);
        }
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
        // What `sets().find(..)` gives, reading only the headers until the set is found.
        let want = u16::from(rtype).to_be_bytes();
        let bytes = &self.0[..];
        let sets = usize::from(*bytes.first()?);
        let headers = bytes.get(1..1 + sets * SET_HEADER)?;
        let mut data = 1 + sets * SET_HEADER;
        for h in headers.chunks_exact(SET_HEADER) {
            let bodies_len = u32::from_be_bytes([h[4], h[5], h[6], h[7]]) as usize;
            let additional_len = u32::from_be_bytes([h[10], h[11], h[12], h[13]]) as usize;
            if h[..2] == want {
                let additional_at = data + bodies_len;
                return Some(WireSet {
                    count: u16::from_be_bytes([h[2], h[3]]),
                    bodies: bytes.get(data..additional_at)?,
                    additional_count: u16::from_be_bytes([h[8], h[9]]),
                    additional: bytes.get(additional_at..additional_at + additional_len)?,
                });
            }
            data += bodies_len + additional_len;
        }
        None
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

/// PTR targets by address, for millions of endpoint addresses in little memory: the rows of
/// about 1/16384th of the addresses (by hash) packed in one allocation per shard, and each
/// service's name kept once, by number. A row is a flag byte (bit 0: IPv6, bit 1: the
/// address is the service's cluster IP, bit 2: a label follows), the address, the service's
/// number, then the label (its length and bytes) unless the target's first label is the
/// address dashed (`10-0-0-1`, the usual endpoint) or the target is the service itself.
/// About 9 bytes for an IPv4 endpoint where a map entry with its target took 90.
///
/// Rows sort by address, then service name and label, so the answer does not depend on the
/// order changes came in. A shard is replaced whole; readers see it before or after.
#[derive(Debug, Default)]
pub struct PtrIndex {
    shards: papaya::HashMap<u16, Box<[u8]>>,
    /// The name (lowercase, wire format) of each service that gives a target, by number.
    services: papaya::HashMap<u32, NameKey>,
}

const PTR_SHARD_BITS: u32 = 14;
const ROW_V6: u8 = 1;
const ROW_CLUSTER_IP: u8 = 2;
const ROW_LABEL: u8 = 4;

fn ptr_shard(ip: IpAddr) -> u16 {
    let x = match ip {
        IpAddr::V4(v4) => u64::from(u32::from(v4)),
        IpAddr::V6(v6) => {
            let b = u128::from(v6);
            (b ^ (b >> 64)) as u64
        }
    };
    (x.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - PTR_SHARD_BITS)) as u16
}

/// One PTR target as kept: which address, which service, and how the target is spelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PtrRow<'a> {
    pub ip: IpAddr,
    pub service: u32,
    pub cluster_ip: bool,
    /// The target's first label when it is not the address dashed; `None` for a cluster IP.
    pub label: Option<&'a [u8]>,
}

impl PtrRow<'_> {
    fn parse(bytes: &[u8]) -> Option<(PtrRow<'_>, &[u8])> {
        let (&flags, rest) = bytes.split_first()?;
        let (ip, rest) = if flags & ROW_V6 != 0 {
            let (a, rest) = rest.split_first_chunk::<16>()?;
            (IpAddr::from(*a), rest)
        } else {
            let (a, rest) = rest.split_first_chunk::<4>()?;
            (IpAddr::from(*a), rest)
        };
        let (service, mut rest) = rest.split_first_chunk::<4>()?;
        let mut label = None;
        if flags & ROW_LABEL != 0 {
            let (&len, tail) = rest.split_first()?;
            let (l, tail) = tail.split_at_checked(usize::from(len))?;
            label = Some(l);
            rest = tail;
        }
        let row = PtrRow {
            ip,
            service: u32::from_be_bytes(*service),
            cluster_ip: flags & ROW_CLUSTER_IP != 0,
            label,
        };
        Some((row, rest))
    }

    fn write(&self, out: &mut Vec<u8>) {
        let mut flags = 0;
        if self.ip.is_ipv6() {
            flags |= ROW_V6;
        }
        if self.cluster_ip {
            flags |= ROW_CLUSTER_IP;
        }
        if self.label.is_some() {
            flags |= ROW_LABEL;
        }
        out.push(flags);
        match self.ip {
            IpAddr::V4(v4) => out.extend_from_slice(&v4.octets()),
            IpAddr::V6(v6) => out.extend_from_slice(&v6.octets()),
        }
        out.extend_from_slice(&self.service.to_be_bytes());
        if let Some(label) = self.label {
            out.push(label.len() as u8);
            out.extend_from_slice(label);
        }
    }
}

fn rows(shard: &[u8]) -> impl Iterator<Item = PtrRow<'_>> {
    let mut rest = shard;
    std::iter::from_fn(move || {
        let (row, after) = PtrRow::parse(rest)?;
        rest = after;
        Some(row)
    })
}

/// A PTR target ready to write: a first label (given, or the address dashed) before the
/// service's name, or the service's name alone.
#[derive(Debug, Clone, Copy)]
pub struct PtrTarget<'a> {
    label: Option<TargetLabel<'a>>,
    /// The label's length byte (0 and unused without a label).
    label_len: [u8; 1],
    service: &'a [u8],
}

#[derive(Debug, Clone, Copy)]
enum TargetLabel<'a> {
    Given(&'a [u8]),
    Dashed([u8; 15], u8),
}

impl<'a> PtrTarget<'a> {
    fn new(row: PtrRow<'a>, service: &'a [u8]) -> Self {
        let label = match (row.cluster_ip, row.label, row.ip) {
            (true, _, _) => None,
            (false, Some(l), _) => Some(TargetLabel::Given(l)),
            (false, None, IpAddr::V4(v4)) => {
                let mut buf = [0u8; 15];
                let mut len = 0;
                for (i, octet) in v4.octets().into_iter().enumerate() {
                    if i > 0 {
                        buf[len] = b'-';
                        len += 1;
                    }
                    let digits = [octet / 100, octet / 10 % 10, octet % 10];
                    let skip = if octet >= 100 {
                        0
                    } else if octet >= 10 {
                        1
                    } else {
                        2
                    };
                    for d in &digits[skip..] {
                        buf[len] = b'0' + d;
                        len += 1;
                    }
                }
                Some(TargetLabel::Dashed(buf, len as u8))
            }
            // IPv6 rows always carry their label.
            (false, None, IpAddr::V6(_)) => Some(TargetLabel::Given(b"")),
        };
        let mut target = Self {
            label,
            label_len: [0],
            service,
        };
        target.label_len = [target.label().map_or(0, |l| l.len() as u8)];
        target
    }

    fn label(&self) -> Option<&[u8]> {
        match &self.label {
            None => None,
            Some(TargetLabel::Given(l)) => Some(l),
            Some(TargetLabel::Dashed(buf, len)) => Some(&buf[..usize::from(*len)]),
        }
    }

    /// The target in wire format, in pieces: the label's length and bytes (both empty when the
    /// target is the service's name), then the service's name.
    pub fn parts(&self) -> [&[u8]; 3] {
        match self.label() {
            Some(label) => [&self.label_len, label, self.service],
            None => [&[], &[], self.service],
        }
    }

    /// The target's length in wire format.
    pub fn len(&self) -> usize {
        self.parts().iter().map(|p| p.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends the target in wire format.
    pub fn write(&self, out: &mut Vec<u8>) {
        for part in self.parts() {
            out.extend_from_slice(part);
        }
    }

    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len());
        self.write(&mut out);
        out
    }
}

/// The index pinned for the length of one query.
pub struct PtrView<'a> {
    shards: papaya::HashMapRef<'a, u16, Box<[u8]>, std::hash::RandomState, papaya::LocalGuard<'a>>,
    services: papaya::HashMapRef<'a, u32, NameKey, std::hash::RandomState, papaya::LocalGuard<'a>>,
}

impl PtrView<'_> {
    /// The targets served for `ip`: the service whose cluster IP it is, else every endpoint
    /// name with that address; `None` when no service gives it one.
    pub fn get(&self, ip: IpAddr) -> Option<impl Iterator<Item = PtrTarget<'_>>> {
        let shard = self.shards.get(&ptr_shard(ip))?;
        let mine = move || rows(shard).filter(move |r| r.ip == ip);
        mine().next()?;
        let only = mine().find(|r| r.cluster_ip);
        let chosen = only
            .into_iter()
            .chain(mine().filter(move |_| only.is_none()));
        Some(chosen.filter_map(|row| {
            let service = self.services.get(&row.service)?;
            Some(PtrTarget::new(row, service.as_bytes()))
        }))
    }

    /// Every address with a target, in no particular order.
    pub fn addresses(&self) -> Vec<IpAddr> {
        let mut out: Vec<IpAddr> = self
            .shards
            .values()
            .flat_map(|s| rows(s).map(|r| r.ip))
            .collect();
        out.dedup();
        out
    }
}

impl PtrIndex {
    pub fn pin(&self) -> PtrView<'_> {
        PtrView {
            shards: self.shards.pin(),
            services: self.services.pin(),
        }
    }

    /// How many rows (address and service pairs) are kept.
    pub fn len(&self) -> usize {
        self.shards.pin().values().map(|s| rows(s).count()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.shards.is_empty()
    }

    /// Replaces the targets service number `service` (named `name`) gives: it gave targets
    /// for `old` addresses, it gives `rows` now (each with `service` as its number).
    /// Only the shards of those addresses are rewritten.
    pub fn replace_service(
        &self,
        service: u32,
        name: &NameKey,
        old: &[IpAddr],
        new: &[PtrRow<'_>],
    ) {
        let services = self.services.pin();
        if !new.is_empty() && services.get(&service) != Some(name) {
            services.insert(service, name.clone());
        }
        let mut touched: Vec<u16> = old
            .iter()
            .copied()
            .chain(new.iter().map(|r| r.ip))
            .map(ptr_shard)
            .collect();
        touched.sort_unstable();
        touched.dedup();
        let shards = self.shards.pin();
        let name_of = |number: u32| {
            if number == service {
                Some(name.as_bytes())
            } else {
                services.get(&number).map(NameKey::as_bytes)
            }
        };
        for shard in touched {
            let current = shards.get(&shard);
            let mut next: Vec<PtrRow<'_>> = current
                .iter()
                .flat_map(|s| rows(s))
                .filter(|r| r.service != service)
                .chain(new.iter().copied().filter(|r| ptr_shard(r.ip) == shard))
                .collect();
            // Names are looked up only to order the rows of one address.
            next.sort_by(|a, b| {
                a.ip.cmp(&b.ip).then_with(|| {
                    (name_of(a.service), a.label, a.cluster_ip).cmp(&(
                        name_of(b.service),
                        b.label,
                        b.cluster_ip,
                    ))
                })
            });
            next.dedup();
            if next.is_empty() {
                if current.is_some() {
                    shards.remove(&shard);
                }
                continue;
            }
            let mut bytes = Vec::with_capacity(next.len() * 9);
            for row in &next {
                row.write(&mut bytes);
            }
            if current.map(|c| &c[..]) != Some(&bytes[..]) {
                shards.insert(shard, bytes.into_boxed_slice());
            }
        }
        if new.is_empty() {
            services.remove(&service);
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
