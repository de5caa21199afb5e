//! The `loadbalance` plugin, as CoreDNS's: `round_robin` (the default) puts address records in
//! a random order in every successful response, however it was made (from the table, on the
//! fast path, from the cache or fresh from upstream); `weighted WEIGHTFILE { reload DURATION }`
//! instead picks the first address of an A, AAAA or SRV answer at random by the weights the
//! file gives each name's addresses (1 for an address it does not list); `prefer CIDR...` then
//! puts the addresses in the preferred networks first, in the order the networks are given.
//!
//! Round robin works on the reply's sections or whole message ([`Phases::finish`],
//! [`Phases::finish_wire`]); `weighted` and `prefer` reorder the encoded response
//! ([`Phases::respond`]): addresses of the same name and type trade places, data for data, so
//! no name or compression pointer moves and every path keeps its speed. Unlike CoreDNS, they
//! order what is sent: an answer cut to fit a UDP client is ordered among the records that fit
//! (the client asks again over TCP for the whole, ordered, answer).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hickory_proto::op::ResponseCode;

use super::acl::Net;
use super::setup::{Building, Context, Setup, SetupError};
use super::{Phases, Plugin, Random, Reply};
use crate::corefile::{ConfigError, Directive, directive_err, parse_duration};
use crate::wire::{self, Header, Transport};

const A: u16 = 1;
const AAAA: u16 = 28;
const SRV: u16 = 33;

/// `loadbalance [round_robin | weighted WEIGHTFILE { reload DURATION }] { prefer CIDR... }`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadbalanceConfig {
    /// `weighted`: the weight file and how often it is looked at (0: never again).
    weighted: Option<(PathBuf, Duration)>,
    prefer: Vec<Net>,
}

/// The weights of a weight file: by name (lower case, final dot), each listed address's.
pub type Weights = HashMap<String, Vec<(IpAddr, u8)>>;

/// Reads a weight file as CoreDNS does: a name on a line of its own, then `ADDRESS WEIGHT`
/// lines (weights 1 to 255) for it; blank lines and `#` comments skipped.
pub fn parse_weights(text: &str, file: &Path) -> Result<Weights, String> {
    let file = file.display();
    let mut weights = Weights::new();
    let mut name: Option<String> = None;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.split_whitespace().collect::<Vec<_>>().as_slice() {
            [domain] => {
                if domain.parse::<IpAddr>().is_ok() {
                    return Err(format!(
                        "wrong domain name:\"{domain}\" in weight file {file}. (Maybe a missing weight value?)"
                    ));
                }
                let mut domain = domain.to_lowercase();
                if !domain.ends_with('.') {
                    domain.push('.');
                }
                weights.entry(domain.clone()).or_default();
                name = Some(domain);
            }
            [address, weight] => {
                let address: IpAddr = address
                    .parse()
                    .map_err(|_| format!("wrong IP address:\"{address}\" in weight file {file}"))?;
                let weight = weight
                    .parse::<u8>()
                    .ok()
                    .filter(|w| *w > 0)
                    .ok_or_else(|| {
                        format!("wrong weight value:\"{weight}\" in weight file {file}")
                    })?;
                let Some(name) = &name else {
                    return Err(format!("missing domain name in weight file {file}"));
                };
                weights
                    .entry(name.clone())
                    .or_default()
                    .push((address, weight));
            }
            _ => {
                return Err(format!(
                    "could not parse weight line:\"{line}\" in weight file {file}"
                ));
            }
        }
    }
    Ok(weights)
}

impl Setup for LoadbalanceConfig {
    fn parse(d: &Directive, cx: &Context<'_>) -> Result<Self, ConfigError> {
        let err = |d: &Directive, m: String| directive_err(d, "loadbalance", m);
        let mut config = Self::default();
        let mut block = d.block.as_slice();
        match d.args.as_slice() {
            [] => {}
            [policy] if policy == "round_robin" => {}
            [policy, ..] if policy == "round_robin" => {
                return Err(err(d, "unknown property for round_robin".into()));
            }
            [policy] if policy == "weighted" => {
                return Err(err(d, "missing weight file argument".into()));
            }
            [policy, file] if policy == "weighted" => {
                let mut reload = Duration::from_secs(30);
                // The block's `reload` lines are the policy's; `prefer` may follow them.
                let split = block
                    .iter()
                    .position(|o| o.name != "reload")
                    .unwrap_or(block.len());
                for o in &block[..split] {
                    reload = match o.args.as_slice() {
                        [] => return Err(err(o, "reload duration value is missing".into())),
                        [t] => parse_duration(t)
                            .map_err(|_| err(o, format!("invalid reload duration '{t}'")))?,
                        _ => return Err(err(o, "unexpected argument".into())),
                    };
                }
                block = &block[split..];
                let path = Path::new(file);
                let path = if path.is_absolute() {
                    path.to_path_buf()
                } else {
                    cx.dir.join(path)
                };
                config.weighted = Some((path, reload));
            }
            [policy, ..] if policy == "weighted" => {
                return Err(err(d, "unexpected argument(s)".into()));
            }
            [policy, ..] => return Err(err(d, format!("unknown policy: {policy}"))),
        }
        for o in block {
            match o.name.as_str() {
                "prefer" => {
                    for cidr in &o.args {
                        let net = cidr
                            .contains('/')
                            .then(|| Net::parse(cidr))
                            .flatten()
                            .ok_or_else(|| {
                                err(
                                    o,
                                    format!(
                                        "invalid CIDR \"{cidr}\": invalid CIDR address: {cidr}"
                                    ),
                                )
                            })?;
                        config.prefer.push(net);
                    }
                }
                other => return Err(err(o, format!("unknown property '{other}'"))),
            }
        }
        Ok(config)
    }

    fn build(&self, b: &mut Building<'_>) -> Result<(), SetupError> {
        let weighted = match &self.weighted {
            None => None,
            Some((path, reload)) => {
                let weights = Arc::new(RwLock::new(Weights::new()));
                let load = {
                    let (path, weights) = (path.clone(), Arc::clone(&weights));
                    move || -> Result<(), String> {
                        let text = std::fs::read_to_string(&path)
                            .map_err(|e| format!("{}: {e}", path.display()))?;
                        let parsed = parse_weights(&text, &path)?;
                        *weights.write().unwrap_or_else(|e| e.into_inner()) = parsed;
                        Ok(())
                    }
                };
                // A file that cannot be opened is tried again at each reload; one that does
                // not read stops the start, as CoreDNS does.
                match load() {
                    Err(error) if !path.exists() && !reload.is_zero() => {
                        tracing::warn!(
                            "Failed to open weight file:{error}. Will try again in {reload:?}"
                        );
                    }
                    Err(error) => {
                        return Err(SetupError::File(format!("loadbalance: {error}")));
                    }
                    Ok(()) => {}
                }
                b.background.push(Box::pin(crate::source::watch_files(
                    "loadbalance weight file",
                    vec![path.clone()],
                    *reload,
                    load,
                )));
                Some(weights)
            }
        };
        b.chain.push(Plugin::Loadbalance(Box::new(Loadbalance {
            weighted,
            prefer: self.prefer.clone(),
        })));
        Ok(())
    }
}

/// `loadbalance` as it serves.
#[derive(Debug)]
pub struct Loadbalance {
    weighted: Option<Arc<RwLock<Weights>>>,
    prefer: Vec<Net>,
}

/// An address record of a response: its section (answer 0, additional 1), owner (lowercase
/// wire form), type, and data.
struct Address {
    section: u8,
    owner: Vec<u8>,
    rtype: u16,
    data: std::ops::Range<usize>,
}

impl Address {
    fn ip(&self, message: &[u8]) -> Option<IpAddr> {
        let d = message.get(self.data.clone())?;
        match d.len() {
            4 => Some(IpAddr::from(<[u8; 4]>::try_from(d).ok()?)),
            16 => Some(IpAddr::from(<[u8; 16]>::try_from(d).ok()?)),
            _ => None,
        }
    }
}

/// The address records of the answer and additional sections, by section, each section's
/// grouped by owner and type (the records that may trade data).
fn groups(message: &[u8]) -> Vec<Vec<Address>> {
    let Some(header) = Header::of(message) else {
        return Vec::new();
    };
    let answers = usize::from(header.answers());
    let additional_from = answers + usize::from(header.authority());
    let mut out: Vec<Vec<Address>> = Vec::new();
    let mut key = [0u8; wire::MAX_NAME];
    for r in wire::records_after_question(message).map_while(|r| r) {
        let section = if r.index < answers {
            0
        } else if r.index >= additional_from {
            1
        } else {
            continue;
        };
        let width = match r.rtype {
            A => 4,
            AAAA => 16,
            _ => continue,
        };
        if r.data.len() != width {
            continue;
        }
        let Some((len, _)) = wire::read_name(message, r.start, &mut key, wire::Pointers::Follow)
        else {
            continue;
        };
        let address = Address {
            section,
            owner: key[..len].to_vec(),
            rtype: r.rtype,
            data: r.data,
        };
        match out.iter_mut().find(|g| {
            g.first().is_some_and(|f| {
                f.section == address.section && f.owner == address.owner && f.rtype == address.rtype
            })
        }) {
            Some(group) => group.push(address),
            None => out.push(vec![address]),
        }
    }
    out
}

/// Writes `group`'s data in the order `order` gives (indices into the group).
fn reorder(message: &mut [u8], group: &[Address], order: &[usize]) {
    let datas: Vec<Vec<u8>> = order
        .iter()
        .map(|&i| message[group[i].data.clone()].to_vec())
        .collect();
    for (slot, data) in group.iter().zip(datas) {
        message[slot.data.clone()].copy_from_slice(&data);
    }
}

/// A lowercase wire-form name as text with its final dot.
fn text(key: &[u8]) -> String {
    let mut out = String::new();
    let mut at = 0;
    while let Some(&len) = key.get(at) {
        if len == 0 {
            break;
        }
        let label = key
            .get(at + 1..at + 1 + usize::from(len))
            .unwrap_or_default();
        out.push_str(&String::from_utf8_lossy(label));
        out.push('.');
        at += 1 + usize::from(len);
    }
    if out.is_empty() {
        out.push('.');
    }
    out
}

impl Loadbalance {
    /// The index of the address to put first, drawn by weight (a listed address's, else 1).
    fn top(&self, weights: &Weights, owner: &[u8], ips: &[IpAddr], random: u64) -> usize {
        let listed = weights.get(&text(owner));
        let weight = |ip: &IpAddr| {
            listed
                .and_then(|l| l.iter().find(|(a, _)| a == ip))
                .map_or(1u64, |(_, w)| u64::from(*w))
        };
        // Heavier first, as CoreDNS walks them.
        let mut by_weight: Vec<(usize, u64)> = ips
            .iter()
            .enumerate()
            .map(|(i, ip)| (i, weight(ip)))
            .collect();
        by_weight.sort_by_key(|&(_, w)| std::cmp::Reverse(w));
        let total: u64 = by_weight.iter().map(|(_, w)| w).sum();
        let mut pick = random % total.max(1);
        for (i, w) in by_weight {
            if pick < w {
                return i;
            }
            pick -= w;
        }
        0
    }
}

impl Phases for Loadbalance {
    fn finish(&self, reply: &mut Reply, _: &super::Answered<'_>, random: &mut Random<'_>) {
        if self.weighted.is_none()
            && reply.rcode == ResponseCode::NoError
            && reply.answers.count > 1
        {
            wire::shuffle_addresses(&mut reply.answers, &mut random.draw());
        }
    }

    fn finish_wire(&self, message: &mut Vec<u8>, random: &mut Random<'_>) {
        if self.weighted.is_none() {
            wire::shuffle_message_addresses(message, || random.draw());
        }
    }

    fn respond(
        &self,
        response: &mut Vec<u8>,
        query: &[u8],
        _src: SocketAddr,
        _transport: Transport,
        _limit: usize,
    ) -> bool {
        if self.weighted.is_none() && self.prefer.is_empty() {
            return true;
        }
        let Some(header) = Header::of(response) else {
            return true;
        };
        if header.rcode_low() != 0 {
            return true;
        }
        let qtype = wire::question_end(query)
            .and_then(|end| query.get(end - 4..end - 2))
            .map_or(0, |t| u16::from_be_bytes([t[0], t[1]]));
        for group in groups(response) {
            let ips: Vec<IpAddr> = group.iter().filter_map(|a| a.ip(response)).collect();
            if ips.len() != group.len() || ips.len() < 2 {
                continue;
            }
            let mut order: Vec<usize> = (0..ips.len()).collect();
            if let Some(weights) = &self.weighted
                && matches!(qtype, A | AAAA | SRV)
            {
                let weights = weights.read().unwrap_or_else(|e| e.into_inner());
                let random = rand_u64(response);
                let top = self.top(&weights, &group[0].owner, &ips, random);
                order.swap(0, top);
            }
            if !self.prefer.is_empty() {
                // Stable: the first network's addresses, then the second's..., then the rest.
                let rank = |i: &usize| {
                    self.prefer
                        .iter()
                        .position(|n| n.contains(ips[*i]))
                        .unwrap_or(self.prefer.len())
                };
                order.sort_by_key(rank);
            }
            reorder(response, &group, &order);
        }
        true
    }
}

/// A random number for the weighted draw (the response's ID and the clock: nothing here
/// needs to be unguessable, only spread).
fn rand_u64(response: &[u8]) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let id = response
        .get(..2)
        .map_or(0, |i| u16::from_be_bytes([i[0], i[1]]));
    let mut z = u64::from(nanos) << 16 | u64::from(id);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::testing::Served;

    #[test]
    fn weight_files_read_as_coredns_reads_them() {
        let got = parse_weights(
            "# weights\n\nwww.example.org\n10.0.0.1 100\n10.0.0.2 1\nv6.Example.org.\n2001:db8::1 255\n",
            Path::new("w"),
        )
        .unwrap();
        assert_eq!(
            got["www.example.org."],
            [
                ("10.0.0.1".parse().unwrap(), 100),
                ("10.0.0.2".parse().unwrap(), 1)
            ]
        );
        assert_eq!(got["v6.example.org."].len(), 1);
        for (text, error) in [
            (
                "10.0.0.1\n",
                "wrong domain name:\"10.0.0.1\" in weight file w. (Maybe a missing weight value?)",
            ),
            ("a.\nnope 1\n", "wrong IP address:\"nope\" in weight file w"),
            ("a.\n10.0.0.1 0\n", "wrong weight value:\"0\""),
            ("a.\n10.0.0.1 256\n", "wrong weight value:\"256\""),
            ("10.0.0.1 5\n", "missing domain name in weight file w"),
            (
                "a.\n10.0.0.1 5 6\n",
                "could not parse weight line:\"10.0.0.1 5 6\"",
            ),
        ] {
            let got = parse_weights(text, Path::new("w")).unwrap_err();
            assert!(got.starts_with(error), "{text}: {got}");
        }
    }

    fn config(lines: &str) -> Result<LoadbalanceConfig, String> {
        let text = format!(".:0 {{\n{lines}\n}}\n");
        let config = crate::config::Config::from_text(&text, 0, Path::new("/etc/coredns"))
            .map_err(|e| e.to_string())?;
        Ok(config.servers[0]
            .get::<LoadbalanceConfig>()
            .unwrap()
            .clone())
    }

    #[test]
    fn setup_reads_policies_and_prefer() {
        let got =
            config("loadbalance weighted w.txt {\n reload 10s\n prefer 10.0.0.0/8\n}").unwrap();
        assert_eq!(
            got.weighted,
            Some((PathBuf::from("/etc/coredns/w.txt"), Duration::from_secs(10)))
        );
        assert_eq!(got.prefer, [Net::parse("10.0.0.0/8").unwrap()]);
        let got = config("loadbalance {\n prefer 192.168.0.0/16 fd00::/8\n}").unwrap();
        assert_eq!((got.weighted, got.prefer.len()), (None, 2));
        for (lines, error) in [
            ("loadbalance weighted", "missing weight file argument"),
            (
                "loadbalance round_robin x",
                "unknown property for round_robin",
            ),
            (
                "loadbalance weighted w {\n reload\n}",
                "reload duration value is missing",
            ),
            (
                "loadbalance weighted w {\n reload 1x\n}",
                "invalid reload duration '1x'",
            ),
            (
                "loadbalance {\n prefer 10.0.0.1\n}",
                "invalid CIDR \"10.0.0.1\"",
            ),
            ("loadbalance {\n shuffle\n}", "unknown property 'shuffle'"),
        ] {
            let got = config(lines).unwrap_err();
            assert!(got.contains(error), "{lines}: {got}");
        }
    }

    /// The answer's addresses, in order, for `name` A asked through the handler (the fast
    /// path where it answers: the order is random, so the two paths are not compared here).
    fn addresses(served: &Served, name: &str) -> Vec<String> {
        use hickory_proto::op::{Message, Query};
        let mut m = Message::new();
        m.add_query(Query::query(
            hickory_proto::rr::Name::from_ascii(name).unwrap(),
            hickory_proto::rr::RecordType::A,
        ));
        let mut out = Vec::new();
        served.handler.handle(
            &m.to_vec().unwrap(),
            "10.0.0.9:5353".parse().unwrap(),
            Transport::Udp,
            &mut out,
        );
        Message::from_vec(&out)
            .unwrap()
            .answers()
            .iter()
            .map(|r| r.data().to_string())
            .collect()
    }

    /// The first address of `name`'s answer, asked `n` times.
    fn firsts(served: &Served, name: &str, n: usize) -> Vec<String> {
        (0..n).map(|_| addresses(served, name).remove(0)).collect()
    }

    #[test]
    fn weighted_draws_the_first_address_by_weight() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("weights");
        std::fs::write(&file, "web.example.\n10.0.0.1 255\n10.0.0.2 1\n").unwrap();
        let served = Served::new(&format!(
            ".:0 {{
            loadbalance weighted {} {{
                reload 0
            }}
            hosts {{
                10.0.0.2 web.example
                10.0.0.1 web.example
                10.0.0.3 other.example
                10.0.0.4 other.example
            }}
        }}",
            file.display()
        ));
        let got = firsts(&served, "web.example.", 200);
        let heavy = got.iter().filter(|a| *a == "10.0.0.1").count();
        assert!(heavy >= 180, "255 to 1: {heavy} of 200 first");
        assert!(
            got.iter().all(|a| a == "10.0.0.1" || a == "10.0.0.2"),
            "{got:?}"
        );
        // Unlisted names: every address weighs 1, so each comes first some of the time.
        let got = firsts(&served, "other.example.", 200);
        for a in ["10.0.0.3", "10.0.0.4"] {
            assert!(got.iter().filter(|g| *g == a).count() >= 40, "{a}: {got:?}");
        }
        // Not shuffled but for the first: the answer keeps both addresses.
        assert_eq!(addresses(&served, "web.example.").len(), 2);
        assert!(served.fast("web.example. A"), "the fast path stays");
    }

    #[test]
    fn prefer_puts_the_preferred_networks_first_in_their_order() {
        let served = Served::new(
            ".:0 {
            loadbalance round_robin {
                prefer 192.168.0.0/16 172.16.0.0/12
            }
            hosts {
                10.0.0.1 multi.example
                172.16.0.1 multi.example
                192.168.1.1 multi.example
                10.0.0.2 multi.example
            }
        }",
        );
        for _ in 0..20 {
            let order = addresses(&served, "multi.example.");
            assert_eq!(order[..2], ["192.168.1.1", "172.16.0.1"], "{order:?}");
            assert_eq!(order.len(), 4, "{order:?}");
        }
        assert!(served.fast("multi.example. A"));
    }
}
