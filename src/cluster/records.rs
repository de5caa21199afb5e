//! The records the Kubernetes DNS specification (1.1.0) gives a cluster, as CoreDNS's
//! `kubernetes` plugin serves them where the specification is silent.
//!
//! Records are built once per change of the cluster, not per query: the answer path is one
//! table lookup. Pod names under `pods insecure` are the exception: they are not stored
//! but synthesised from the query name ([`insecure_pod_address`]).

use std::collections::BTreeSet;
use std::net::IpAddr;

use hickory_proto::rr::rdata::{A, AAAA, CNAME, NS, SOA, SRV, TXT};
use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType};

use super::PodMode;
use super::{ClusterObjects, EndpointRef, Key, Port, Service, ServiceKind};
use crate::table::{EndpointNames, EndpointNamesBuilder, Records, record};

/// The schema version `dns-version.ZONE` answers.
pub const SCHEMA_VERSION: &str = "1.1.0";
/// CoreDNS's TTL for the `dns-version` TXT record.
const SCHEMA_TTL: u32 = 28800;
/// CoreDNS caps the SOA's own TTL at this.
const SOA_MAX_TTL: u32 = 300;

/// How records are made: the `kubernetes` directive's settings.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// The zones served, forward and reverse, lowercase and fully qualified.
    pub zones: Vec<Name>,
    pub ttl: u32,
    pub pods: PodMode,
    /// Exposed namespaces; empty exposes all.
    pub namespaces: Vec<String>,
    pub endpoint_pod_names: bool,
    pub noendpoints: bool,
    /// `ignore empty_service`: ClusterIP services without a ready endpoint do not exist.
    pub ignore_empty_service: bool,
    /// With `k8s_external` in the block: services' external addresses are indexed for it
    /// (`Some`), and with its `headless`, headless services' ready endpoints too (`Some(true)`).
    pub external: Option<bool>,
    /// The server's own addresses (its `bind` addresses, else its interfaces'), loopback
    /// left out: the apex NS names the services whose endpoints hold them.
    pub local_ips: Vec<IpAddr>,
    /// `zonal`: headless services answer `ZONE.pin|prefer._zone.SERVICE.NAMESPACE.svc.ZONE`.
    pub zonal: bool,
}

/// Who an apex NS record names, with one of its addresses as glue (CoreDNS's `nsAddrs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NsTarget {
    /// `ns.dns.ZONE`: no service's endpoints hold the server's addresses.
    Default,
    /// `SERVICE.NAMESPACE.svc.ZONE`, by a cluster IP.
    Service { namespace: String, name: String },
    /// `ENDPOINT.SERVICE.NAMESPACE.svc.ZONE`: a headless service's endpoint.
    Endpoint {
        namespace: String,
        name: String,
        label: String,
    },
}

impl NsTarget {
    pub fn name(&self, zone: &Name) -> Option<Name> {
        match self {
            Self::Default => name(&["ns", "dns"], zone),
            Self::Service {
                namespace,
                name: svc,
            } => name(&[svc, namespace, "svc"], zone),
            Self::Endpoint {
                namespace,
                name: svc,
                label,
            } => name(&[label, svc, namespace, "svc"], zone),
        }
    }
}

/// One zone's apex records, for the authority section of negative answers.
#[derive(Debug, Clone)]
pub struct Apex {
    pub zone: LowerName,
    /// The zone in lowercase wire format.
    pub zone_wire: Vec<u8>,
    pub soa: Record,
    /// The SOA as a whole record in wire format, for negative answers.
    pub soa_wire: Vec<u8>,
}

pub(super) fn is_reverse(zone: &Name) -> bool {
    let s = zone.to_ascii();
    s.ends_with("in-addr.arpa.") || s.ends_with("ip6.arpa.")
}

/// `labels` followed by `zone`, or the zone itself when that makes no name (too long, a bad
/// label): the names plugins synthesise under their zones (`ns.dns.ZONE`, `hostmaster.ZONE`).
pub fn under(labels: &[&str], zone: &Name) -> Name {
    name(labels, zone).unwrap_or_else(|| zone.clone())
}

pub(super) fn name(labels: &[&str], zone: &Name) -> Option<Name> {
    Name::from_labels(labels.iter().map(|l| l.as_bytes()))
        .ok()?
        .append_domain(zone)
        .ok()
}

pub(super) fn address(owner: &Name, ttl: u32, ip: IpAddr) -> Record {
    match ip {
        IpAddr::V4(v4) => record(owner, ttl, RData::A(A(v4))),
        IpAddr::V6(v6) => record(owner, ttl, RData::AAAA(AAAA(v6))),
    }
}

/// The name of an endpoint under its service: its hostname, its pod's name under
/// `endpoint_pod_names`, or its address with dashes (`10-36-0-1`, `fd00--1`).
pub fn endpoint_label(ep: &EndpointRef<'_>, ip: IpAddr, endpoint_pod_names: bool) -> String {
    if let Some(h) = ep.hostname {
        return h.to_string();
    }
    if endpoint_pod_names && let Some(t) = ep.target_name {
        return t.to_string();
    }
    // A label may not end in `-`: an IPv6 address ending in `::` gets a `0`, as CoreDNS names it.
    let mut label = dashed(ip);
    if label.ends_with('-') {
        label.push('0');
    }
    label
}

/// An address written as one label, as CoreDNS writes it.
pub fn dashed(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string().replace('.', "-"),
        IpAddr::V6(v6) => v6.to_string().replace(':', "-"),
    }
}

/// The address a pod name stands for under `pods insecure`: `10-0-0-1` or `fd00--1`
/// (CoreDNS's rule: three dashes and no `--` is IPv4, anything else is tried as IPv6).
pub fn insecure_pod_address(label: &str) -> Option<IpAddr> {
    let ip = if label.matches('-').count() == 3 && !label.contains("--") {
        label.replace('-', ".")
    } else {
        label.replace('-', ":")
    };
    ip.parse().ok()
}

/// The address a full reverse name spells: `4.3.2.1.in-addr.arpa.` or the 32 nibbles of
/// `ip6.arpa.`. Anything shorter, longer or not canonical (leading zeros, upper case) is not
/// an address.
pub fn reverse_address(name: &Name) -> Option<IpAddr> {
    let labels: Vec<&[u8]> = name.iter().collect();
    reverse_labels(&labels)
}

/// [`reverse_address`] for a name in wire format, without allocating.
pub fn reverse_address_wire(key: &[u8]) -> Option<IpAddr> {
    const MOST: usize = 34;
    let mut labels: [&[u8]; MOST] = [&[]; MOST];
    let (mut n, mut rest) = (0, key);
    while let Some((&len, tail)) = rest.split_first()
        && len != 0
    {
        let (label, after) = tail.split_at_checked(usize::from(len))?;
        *labels.get_mut(n)? = label;
        n += 1;
        rest = after;
    }
    reverse_labels(&labels[..n])
}

fn reverse_labels(labels: &[&[u8]]) -> Option<IpAddr> {
    match labels {
        [d, c, b, a, in_addr, arpa]
            if in_addr.eq_ignore_ascii_case(b"in-addr") && arpa.eq_ignore_ascii_case(b"arpa") =>
        {
            let octet = |l: &[u8]| -> Option<u8> {
                if l.is_empty() || l.len() > 3 || (l.len() > 1 && l[0] == b'0') {
                    return None;
                }
                std::str::from_utf8(l).ok()?.parse().ok()
            };
            Some(IpAddr::from([octet(a)?, octet(b)?, octet(c)?, octet(d)?]))
        }
        [nibbles @ .., ip6, arpa]
            if nibbles.len() == 32
                && ip6.eq_ignore_ascii_case(b"ip6")
                && arpa.eq_ignore_ascii_case(b"arpa") =>
        {
            let mut bits: u128 = 0;
            for label in nibbles.iter().rev() {
                let [digit] = label else { return None };
                let value = match digit {
                    b'0'..=b'9' => digit - b'0',
                    b'a'..=b'f' => digit - b'a' + 10,
                    b'A'..=b'F' => digit - b'A' + 10,
                    _ => return None,
                };
                bits = bits << 4 | u128::from(value);
            }
            Some(IpAddr::from(bits.to_be_bytes()))
        }
        _ => None,
    }
}

/// The apex NS targets and their addresses, as CoreDNS's `nsAddrs` finds them: for each
/// service in `local` (those with an endpoint at one of the server's own addresses), its
/// cluster IPs under its name, or for a headless one each ready address of the endpoint sets
/// holding a local address under the endpoint's name; with no such service, `ns.dns` and the
/// server's own addresses.
pub fn nameservers<'a>(
    objects: &ClusterObjects,
    local: impl IntoIterator<Item = &'a Key>,
    opts: &ClusterOptions,
) -> Vec<(NsTarget, IpAddr)> {
    let mut out = Vec::new();
    let mut found = false;
    for (ns, svc_name) in local {
        found = true;
        let Some(svc) = objects.services.get(&(ns.clone(), svc_name.clone())) else {
            continue;
        };
        match &svc.kind {
            ServiceKind::ClusterIp(ips) => {
                for &ip in ips {
                    out.push((
                        NsTarget::Service {
                            namespace: ns.clone(),
                            name: svc_name.clone(),
                        },
                        ip,
                    ));
                }
            }
            ServiceKind::Headless => {
                for set in objects.endpoint_sets(ns, svc_name) {
                    if !holds_any(set, svc.publish_not_ready, &opts.local_ips) {
                        continue;
                    }
                    for ep in set.endpoints.iter() {
                        if !(ep.ready || svc.publish_not_ready) {
                            continue;
                        }
                        for ip in ep.addresses() {
                            out.push((
                                NsTarget::Endpoint {
                                    namespace: ns.clone(),
                                    name: svc_name.clone(),
                                    label: endpoint_label(&ep, ip, opts.endpoint_pod_names),
                                },
                                ip,
                            ));
                        }
                    }
                }
            }
            ServiceKind::ExternalName(_) => {}
        }
    }
    if !found {
        out.extend(opts.local_ips.iter().map(|&ip| (NsTarget::Default, ip)));
    }
    out
}

/// Whether a ready endpoint of `set` (any, under `publish_not_ready`) has one of `ips`.
fn holds_any(set: &super::EndpointSet, publish_not_ready: bool, ips: &[IpAddr]) -> bool {
    set.endpoints
        .iter()
        .any(|ep| (ep.ready || publish_not_ready) && ep.addresses().any(|ip| ips.contains(&ip)))
}

/// Whether one of the service's ready endpoints is at one of the server's own addresses.
pub fn holds_local(objects: &ClusterObjects, key: &Key, opts: &ClusterOptions) -> bool {
    if opts.local_ips.is_empty() {
        return false;
    }
    let publish = objects
        .services
        .get(key)
        .is_some_and(|s| s.publish_not_ready);
    objects
        .endpoint_sets(&key.0, &key.1)
        .iter()
        .any(|set| holds_any(set, publish, &opts.local_ips))
}

/// Whether any endpoint of the service is ready (or counts as ready).
fn has_ready(svc: &Service, objects: &ClusterObjects) -> bool {
    objects
        .endpoint_sets(&svc.namespace, &svc.name)
        .iter()
        .flat_map(|set| set.endpoints.iter())
        .any(|ep| (ep.ready || svc.publish_not_ready) && ep.addresses().next().is_some())
}

/// One SRV "entry" in CoreDNS's sense: an address and port behind a name. Weights are
/// computed over all entries, duplicates included, as CoreDNS does.
struct Entry<'a> {
    target: Name,
    ip: IpAddr,
    port: Option<&'a Port>,
}

/// Writes the records of one part of the cluster (a zone's apex, one service) into a scratch
/// table; the [`super::writer`] decides which names go where.
pub(super) struct Builder<'a> {
    pub opts: &'a ClusterOptions,
    pub records: Records,
}

impl Builder<'_> {
    pub fn ensure(&mut self, labels: &[&str], zone: &Name) {
        if let Some(n) = name(labels, zone) {
            self.records.ensure(&n, zone);
        }
    }

    /// SOA and NS at the apex (the NS names each of `nameservers`' targets, with their
    /// addresses as glue), `ns.dns` (every one of their addresses), and `dns-version`.
    pub fn apex(&mut self, zone: &Name, nameservers: &[(NsTarget, IpAddr)], serial: u32) -> Apex {
        let ttl = self.opts.ttl;
        let ns_name = name(&["ns", "dns"], zone).expect("short name");
        let soa = record(
            zone,
            ttl.min(SOA_MAX_TTL),
            RData::SOA(SOA::new(
                ns_name.clone(),
                name(&["hostmaster"], zone).expect("short name"),
                serial,
                7200,
                1800,
                86400,
                ttl,
            )),
        );
        self.records.ensure(zone, zone);
        self.records.add(zone, soa.clone());
        self.records.ensure(&ns_name, zone);
        for (target, ip) in nameservers {
            let Some(target) = target.name(zone) else {
                continue;
            };
            self.records
                .add(zone, record(zone, ttl, RData::NS(NS(target.clone()))));
            self.records
                .add_additional(zone, zone, RecordType::NS, address(&target, ttl, *ip));
            self.records.add(zone, address(&ns_name, ttl, *ip));
        }
        if !is_reverse(zone) {
            let version = name(&["dns-version"], zone).expect("short name");
            self.records.add(
                zone,
                record(
                    &version,
                    SCHEMA_TTL,
                    RData::TXT(TXT::new(vec![SCHEMA_VERSION.to_string()])),
                ),
            );
        }
        Apex {
            zone: LowerName::new(zone),
            zone_wire: crate::table::NameKey::new(zone).as_bytes().to_vec(),
            soa_wire: crate::wire::full(&soa),
            soa,
        }
    }

    /// The service's records, and the names of its endpoints (kept in the service's node,
    /// see [`EndpointNames`]).
    pub fn service(
        &mut self,
        svc: &Service,
        objects: &ClusterObjects,
        zone: &Name,
    ) -> EndpointNames {
        let ttl = self.opts.ttl;
        let Some(base) = name(&[&svc.name, &svc.namespace, "svc"], zone) else {
            return EndpointNames::default();
        };
        // Endpoints are named under every kind of service but ExternalName (CoreDNS answers
        // `endpoint.service` for ClusterIP services too).
        let mut endpoint_entries: Vec<(Name, String, IpAddr, Vec<Option<&Port>>)> = Vec::new();
        if !matches!(svc.kind, ServiceKind::ExternalName(_)) && !self.opts.noendpoints {
            for set in objects.endpoint_sets(&svc.namespace, &svc.name) {
                let ports: Vec<Option<&Port>> = if set.ports.is_empty() {
                    vec![None]
                } else {
                    set.ports.iter().map(Some).collect()
                };
                for ep in set.endpoints.iter() {
                    if !(ep.ready || svc.publish_not_ready) {
                        continue;
                    }
                    for ip in ep.addresses() {
                        let label = endpoint_label(&ep, ip, self.opts.endpoint_pod_names);
                        let Ok(target) = Name::from_labels([label.as_bytes()])
                            .and_then(|l| l.append_domain(&base))
                        else {
                            continue;
                        };
                        endpoint_entries.push((target, label, ip, ports.clone()));
                    }
                }
            }
        }
        // Each endpoint name: its addresses, and SRV for its ports (weighted over them, as
        // `srv_set` weighs), with the address in the additional section.
        let mut endpoint_names = EndpointNamesBuilder::default();
        for (_, label, ip, ports) in &endpoint_entries {
            let named: Vec<&Port> = ports.iter().flatten().copied().collect();
            endpoint_names.address(label, *ip, !named.is_empty());
            let weight = ((100 / ports.len().max(1)) as u16).max(1);
            for port in named {
                endpoint_names.srv(label, weight, port.port);
            }
        }
        match &svc.kind {
            ServiceKind::ExternalName(target) => {
                self.records.add(
                    zone,
                    record(&base, ttl, RData::CNAME(CNAME(target.clone()))),
                );
            }
            ServiceKind::ClusterIp(_)
                if self.opts.ignore_empty_service && !has_ready(svc, objects) => {}
            ServiceKind::ClusterIp(ips) => {
                // A service without an address yet still exists (NODATA, as CoreDNS answers).
                self.records.ensure(&base, zone);
                let ports: Vec<Option<&Port>> = if svc.ports.is_empty() {
                    vec![None]
                } else {
                    svc.ports.iter().map(Some).collect()
                };
                let entries: Vec<Entry> = ports
                    .iter()
                    .flat_map(|&port| {
                        let base = &base;
                        ips.iter().map(move |&ip| Entry {
                            target: base.clone(),
                            ip,
                            port,
                        })
                    })
                    .collect();
                self.addressed(&base, &entries, zone);
            }
            ServiceKind::Headless => {
                let entries: Vec<Entry> = endpoint_entries
                    .iter()
                    .flat_map(|(target, _, ip, ports)| {
                        ports.iter().map(move |&port| Entry {
                            target: target.clone(),
                            ip: *ip,
                            port,
                        })
                    })
                    .collect();
                // No ready endpoint: the name does not exist.
                if !entries.is_empty() {
                    self.addressed(&base, &entries, zone);
                }
            }
        }
        endpoint_names.build()
    }

    /// A service name with its entries: A/AAAA, SRV over all ports, and `_port._proto` names.
    fn addressed(&mut self, base: &Name, entries: &[Entry], zone: &Name) {
        let ttl = self.opts.ttl;
        for e in entries {
            self.records.add(zone, address(base, ttl, e.ip));
        }
        self.srv_set(base, entries, zone);
        let named: BTreeSet<(&str, &str)> = entries
            .iter()
            .filter_map(|e| e.port)
            .filter(|p| !p.name.is_empty())
            .map(|p| (p.name.as_str(), p.protocol.label()))
            .collect();
        for (port_name, proto) in named {
            let Ok(owner) = Name::from_labels([
                format!("_{port_name}").as_bytes(),
                format!("_{proto}").as_bytes(),
            ])
            .and_then(|n| n.append_domain(base)) else {
                continue;
            };
            let matching: Vec<Entry> = entries
                .iter()
                .filter(|e| {
                    e.port
                        .is_some_and(|p| p.name == port_name && p.protocol.label() == proto)
                })
                .map(|e| Entry {
                    target: e.target.clone(),
                    ip: e.ip,
                    port: e.port,
                })
                .collect();
            // CoreDNS answers A/AAAA at the SRV name too.
            for e in &matching {
                self.records.add(zone, address(&owner, ttl, e.ip));
            }
            self.srv_set(&owner, &matching, zone);
        }
    }

    /// SRV records at `owner`, weighted as CoreDNS weighs them: 100 / entries, at least 1.
    fn srv_set(&mut self, owner: &Name, entries: &[Entry], zone: &Name) {
        let ttl = self.opts.ttl;
        if entries.is_empty() {
            return;
        }
        let weight = ((100 / entries.len()) as u16).max(1);
        for e in entries {
            let Some(port) = e.port else { continue };
            let srv = record(
                owner,
                ttl,
                RData::SRV(SRV::new(0, weight, port.port, e.target.clone())),
            );
            self.records.add(zone, srv);
            self.records.add_additional(
                zone,
                owner,
                RecordType::SRV,
                address(&e.target, ttl, e.ip),
            );
        }
    }
}

/// A PTR contribution: an address, the name it points to, and whether the address is the
/// service's cluster IP (those win over endpoint names for the same address).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ptr {
    pub ip: IpAddr,
    pub target: Name,
    pub cluster_ip: bool,
}

/// The PTRs one service contributes, named in the primary zone: its cluster IPs name the
/// service, its ready endpoints' addresses name the endpoints.
pub fn ptrs_of(
    svc: &Service,
    objects: &ClusterObjects,
    opts: &ClusterOptions,
    primary: &Name,
) -> Vec<Ptr> {
    let mut out = Vec::new();
    let Some(base) = name(&[&svc.name, &svc.namespace, "svc"], primary) else {
        return out;
    };
    match &svc.kind {
        ServiceKind::ExternalName(_) => return out,
        ServiceKind::ClusterIp(ips) => out.extend(ips.iter().map(|&ip| Ptr {
            ip,
            target: base.clone(),
            cluster_ip: true,
        })),
        ServiceKind::Headless => {}
    }
    if opts.noendpoints {
        return out;
    }
    for set in objects.endpoint_sets(&svc.namespace, &svc.name) {
        for ep in set
            .endpoints
            .iter()
            .filter(|e| e.ready || svc.publish_not_ready)
        {
            for ip in ep.addresses() {
                let label = endpoint_label(&ep, ip, opts.endpoint_pod_names);
                if let Some(target) = name(&[&label], &base) {
                    out.push(Ptr {
                        ip,
                        target,
                        cluster_ip: false,
                    });
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{Endpoint, Endpoints};

    #[test]
    fn addresses_become_labels_as_coredns_writes_them() {
        for (ip, label) in [
            ("10.36.0.1", "10-36-0-1"),
            ("fd00::1", "fd00--1"),
            ("fd00:10:96::1234", "fd00-10-96--1234"),
            ("::1", "--1"),
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(dashed(ip), label);
            assert_eq!(insecure_pod_address(label), Some(ip), "{label}");
        }
    }

    #[test]
    fn reverse_names_spell_addresses() {
        for ip in [
            "10.96.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "fd00::1",
            "2001:db8::abcd:1",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            let mut name = Name::from(ip);
            name.set_fqdn(true);
            assert_eq!(reverse_address(&name), Some(ip), "{name}");
        }
        for name in [
            "96.10.in-addr.arpa.",
            "1.0.96.10.10.in-addr.arpa.",
            "01.0.96.10.in-addr.arpa.",
            "256.0.96.10.in-addr.arpa.",
            "x.0.96.10.in-addr.arpa.",
            "1.0.96.10.ip6.arpa.",
            "1.0.96.10.example.",
        ] {
            let name = Name::from_ascii(name).unwrap();
            assert_eq!(reverse_address(&name), None, "{name}");
        }
    }

    #[test]
    fn pod_labels_that_are_not_addresses_give_nothing() {
        for label in ["web-0", "10-0-0", "10-0-0-256", "a-b-c-d", ""] {
            assert_eq!(insecure_pod_address(label), None, "{label}");
        }
    }

    #[test]
    fn endpoint_names_prefer_hostname_then_pod_name_then_address() {
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let mut ep = Endpoint {
            addresses: [ip].into(),
            hostname: Some("db-0".into()),
            ready: true,
            target_name: Some("pod-a".into()),
            zone: None,
        };
        let label = |ep: &Endpoint, pod_names| {
            let packed = Endpoints::from(vec![ep.clone()]);
            endpoint_label(&packed.iter().next().unwrap(), ip, pod_names)
        };
        assert_eq!(label(&ep, true), "db-0");
        ep.hostname = None;
        assert_eq!(label(&ep, true), "pod-a");
        assert_eq!(label(&ep, false), "10-0-0-1");
        // IPv6, as CoreDNS writes it: never ending in `-`.
        for (address, want) in [
            (
                "2001:db8:3333:4444:5555:6666::",
                "2001-db8-3333-4444-5555-6666--0",
            ),
            ("fd00::1", "fd00--1"),
            ("::1", "--1"),
        ] {
            let ip: IpAddr = address.parse().unwrap();
            let ep = Endpoint {
                addresses: [ip].into(),
                hostname: None,
                ready: true,
                target_name: None,
                zone: None,
            };
            let packed = Endpoints::from(vec![ep]);
            assert_eq!(
                endpoint_label(&packed.iter().next().unwrap(), ip, false),
                want
            );
        }
    }
}
