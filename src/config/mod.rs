//! Configuration: the Corefile turned into validated settings, before any socket is bound.
//!
//! [`crate::corefile`] parses the text into server blocks and directives; each directive is
//! read by the settings type the registry ([`crate::plugin::DIRECTIVES`]) names for it, which
//! gives it CoreDNS's meaning and defaults and rejects what this build cannot serve, naming the
//! file and line.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use hickory_proto::rr::LowerName;

use crate::corefile::{self, directive_err, parse_zones};
pub use crate::corefile::{ConfigError, Directive, Listen, Pos, ServerBlock};
use crate::plugin::bind::Bind;
use crate::plugin::setup::{self, Context, Setup};
use crate::plugin::timeouts::Timeouts;
use crate::plugin::{DIRECTIVES, Entry};

/// The whole configuration: one entry per server block.
#[derive(Debug, Clone)]
pub struct Config {
    pub servers: Vec<ServerConfig>,
}

/// One server block: the zones it serves on a port, and its directives.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub zones: Vec<LowerName>,
    pub port: u16,
    /// More ports the same zones are served on (`.:53 .:5353`), by the same plugins.
    pub more_ports: Vec<u16>,
    /// Each directive of the block as read, in chain order (CoreDNS's `plugin.cfg`, whatever
    /// order the block lists them in).
    pub setups: Vec<(&'static str, Arc<dyn Setup>)>,
    pub pos: Pos,
}

impl ServerConfig {
    /// The settings of type `T`, when the block has its directive.
    pub fn get<T: Setup>(&self) -> Option<&T> {
        setup::find(&self.setups)
    }

    /// The block's directives, in chain order (`coredns_plugin_enabled`).
    pub fn enabled(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.setups.iter().map(|(name, _)| *name)
    }

    /// Where this block listens: each `bind` address (or the wildcard) on each of its ports.
    pub fn listen(&self) -> Vec<Listen> {
        let bind: Vec<Option<std::net::IpAddr>> = match self.get::<Bind>() {
            Some(b) if !b.0.is_empty() => b.0.iter().copied().map(Some).collect(),
            _ => vec![None],
        };
        std::iter::once(self.port)
            .chain(self.more_ports.iter().copied())
            .flat_map(|port| bind.iter().map(move |&ip| Listen { ip, port }))
            .collect()
    }
}

impl Config {
    /// Reads and validates the Corefile at `path`. `default_port` is `-dns.port`.
    pub fn load(path: &Path, default_port: u16) -> Result<Self, ConfigError> {
        let blocks = corefile::parse_file(path)?;
        let dir = path.parent().unwrap_or(Path::new("."));
        Self::from_blocks(blocks, default_port, dir)
    }

    /// Reads and validates Corefile text; `dir` is where relative paths are read from.
    pub fn from_text(text: &str, default_port: u16, dir: &Path) -> Result<Self, ConfigError> {
        let blocks = corefile::parse_str(text, "Corefile", Some(dir))?;
        Self::from_blocks(blocks, default_port, dir)
    }

    /// Validates parsed server blocks. Relative paths are taken from `dir`.
    pub fn from_blocks(
        blocks: Vec<ServerBlock>,
        default_port: u16,
        dir: &Path,
    ) -> Result<Self, ConfigError> {
        let mut servers: Vec<ServerConfig> = Vec::new();
        for server in blocks
            .iter()
            .map(|block| server_blocks(block, default_port, dir))
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .flatten()
        {
            let listen = server.listen();
            // Blocks with a `view` may share a zone and port: each takes the queries its
            // view holds for, the first in Corefile order first.
            let viewed = |s: &ServerConfig| s.get::<crate::plugin::view::View>().is_some();
            for zone in &server.zones {
                let twice = servers.iter().find_map(|s| {
                    if viewed(s) || viewed(&server) {
                        return None;
                    }
                    let same = s.listen().into_iter().find(|l| listen.contains(l))?;
                    s.zones.contains(zone).then_some(same)
                });
                if let Some(at) = twice {
                    return Err(ConfigError::Syntax {
                        pos: server.pos.to_string(),
                        message: format!("zone {zone} on {at} is defined twice"),
                    });
                }
            }
            servers.push(server);
        }
        if servers.is_empty() {
            return Err(ConfigError::Syntax {
                pos: "Corefile".into(),
                message: "no server blocks".into(),
            });
        }
        Ok(Self { servers })
    }

    /// Each listening address's `timeouts`. Server blocks on one address share its TCP
    /// server, so, as in CoreDNS, a timeout a later block sets replaces what an earlier one set.
    pub fn timeouts(&self) -> BTreeMap<Listen, Timeouts> {
        let mut by_listen: BTreeMap<Listen, Timeouts> = BTreeMap::new();
        for s in &self.servers {
            for listen in s.listen() {
                let t = by_listen.entry(listen).or_default();
                *t = t.then(s.get::<Timeouts>().copied().unwrap_or_default());
            }
        }
        by_listen
    }

    /// Each address's listener options: its `timeouts` ([`Self::timeouts`]) and its
    /// `multisocket` count (the last block on it that sets one wins).
    pub fn listen_options(&self) -> BTreeMap<Listen, crate::server::ListenOptions> {
        let mut by_listen: BTreeMap<Listen, crate::server::ListenOptions> = self
            .timeouts()
            .into_iter()
            .map(|(listen, timeouts)| {
                let options = crate::server::ListenOptions {
                    timeouts,
                    sockets: None,
                };
                (listen, options)
            })
            .collect();
        for s in &self.servers {
            if let Some(m) = s.get::<crate::plugin::multisocket::Multisocket>() {
                for listen in s.listen() {
                    by_listen.entry(listen).or_default().sockets = Some(m.sockets);
                }
            }
        }
        by_listen
    }

    /// Whether any block has `debug`: the binary then logs clusterdns's debug messages.
    pub fn debug(&self) -> bool {
        self.servers
            .iter()
            .any(|s| s.get::<crate::plugin::debug::Debug>().is_some())
    }
}

/// A server block as the servers it makes: one per port its keys name (in the order first
/// named), each with the zones of its keys and every directive of the block, as CoreDNS gives
/// each key its own server.
fn server_blocks(
    block: &ServerBlock,
    default_port: u16,
    dir: &Path,
) -> Result<Vec<ServerConfig>, ConfigError> {
    let mut by_port: Vec<(u16, Vec<LowerName>)> = Vec::new();
    for key in &block.keys {
        let (zones, port) =
            parse_key(key, default_port).map_err(|message| ConfigError::Syntax {
                pos: block.pos.to_string(),
                message,
            })?;
        match by_port.iter_mut().find(|(p, _)| *p == port) {
            Some((_, known)) => known.extend(zones),
            None => by_port.push((port, zones)),
        }
    }
    // Ports with the same zones are one server listening on each, its plugins made once (one
    // API watch, one cache), as CoreDNS shares a block's plugins between its keys.
    let mut servers: Vec<(Vec<LowerName>, Vec<u16>)> = Vec::new();
    for (port, zones) in by_port {
        match servers.iter_mut().find(|(z, _)| *z == zones) {
            Some((_, ports)) => ports.push(port),
            None => servers.push((zones, vec![port])),
        }
    }
    servers
        .into_iter()
        .map(|(zones, ports)| {
            let mut server = server_block(block, ports[0], zones, dir)?;
            server.more_ports = ports[1..].to_vec();
            Ok(server)
        })
        .collect()
}

/// Why a directive CoreDNS knows is refused, and what to use instead.
fn refusal(name: &str) -> &'static str {
    match name {
        // Go's profiler has nothing to profile here.
        "pprof" => {
            "not supported: Go's profiler has no counterpart in clusterdns; remove the line \
            and profile the process from outside, with `perf record -g -p PID` (CPU) or \
            `heaptrack -p PID` (memory)"
        }
        "tls" | "tsig" | "quic" | "https" | "https3" | "grpc_server" => {
            "not supported yet: serve plain DNS (dns:// keys) and terminate encrypted \
            transports in front of clusterdns until it serves them itself"
        }
        "transfer" => {
            "not supported yet: zone transfers are refused; remove the line (secondaries can \
            be given the zone file itself)"
        }
        "azure" | "clouddns" => {
            "not supported: cloud DNS APIs are not read; `forward` the zone to the provider's \
            resolvers, or export it to a zone file and serve it with `file`"
        }
        "nomad" => {
            "not supported: records in Nomad are not read; serve them with `file` or \
            `hosts`, or `forward` the zone to a server that reads them"
        }
        _ => "not supported yet",
    }
}

fn server_block(
    block: &ServerBlock,
    port: u16,
    zones: Vec<LowerName>,
    dir: &Path,
) -> Result<ServerConfig, ConfigError> {
    // `root` is read before the rest, wherever it stands: `file` lines read paths from it.
    let root = match block.directives.iter().rev().find(|d| d.name == "root") {
        Some(d) => Some(crate::plugin::root::Root::path_of(d, dir)?),
        None => None,
    };
    let cx = Context {
        zones: &zones,
        dir,
        root: root.as_deref(),
    };
    // One slot per directive of the registry, so the block comes out in chain order.
    let mut slots: Vec<Option<Box<dyn Setup>>> = DIRECTIVES.iter().map(|_| None).collect();
    for d in &block.directives {
        let name = d.name.as_str();
        let index = DIRECTIVES.iter().position(|e| e.name == name);
        match index.map(|i| (i, &DIRECTIVES[i])) {
            Some((
                i,
                Entry {
                    read: Some(read), ..
                },
            )) => read(d, &cx, &mut slots[i])?,
            Some(_) => return Err(directive_err(d, name, refusal(name))),
            None => return Err(directive_err(d, name, "unknown directive")),
        }
    }
    let setups = DIRECTIVES
        .iter()
        .zip(slots)
        .filter_map(|(e, slot)| slot.map(|s| (e.name, Arc::from(s))))
        .collect();
    Ok(ServerConfig {
        port,
        more_ports: Vec::new(),
        zones,
        setups,
        pos: block.pos.clone(),
    })
}

/// Splits a server block key `[dns://]ZONE[:PORT]` (a CIDR ZONE gives its reverse zones).
fn parse_key(key: &str, default_port: u16) -> Result<(Vec<LowerName>, u16), String> {
    let key = key.strip_prefix("dns://").unwrap_or(key);
    if key.contains("://") {
        return Err(format!("{key}: only dns:// servers are supported"));
    }
    let (zone, port) = match key.rsplit_once(':') {
        Some((z, p)) => {
            let port = p
                .parse::<u16>()
                .map_err(|_| format!("{key}: bad port {p:?}"))?;
            (z, port)
        }
        None => (key, default_port),
    };
    Ok((parse_zones(zone)?, port))
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;
    use std::path::PathBuf;
    use std::time::Duration;

    use super::*;
    use crate::cluster::PodMode;
    use crate::corefile::{parse_duration, parse_zone};
    use crate::plugin::hosts::HostsConfig;
    use crate::plugin::kubernetes::KubernetesConfig;
    use crate::plugin::log::{Errors, Log};
    use crate::plugin::timeouts::TIMEOUT_MIN;

    fn load(text: &str) -> Result<Config, ConfigError> {
        Config::from_text(text, 53, Path::new("/etc/coredns"))
    }

    fn name(s: &str) -> LowerName {
        parse_zone(s).unwrap()
    }

    #[test]
    fn the_sample_shape_loads_with_coredns_defaults() {
        let c = load(
            ".:1053 {\n errors\n log\n kubernetes cluster.local in-addr.arpa ip6.arpa {\n  manifests a.yaml /abs/dir\n  pods insecure\n  ttl 30\n  namespaces prod default\n  fallthrough in-addr.arpa ip6.arpa\n }\n hosts /etc/hosts.extra {\n  10.0.0.5 registry.example.internal\n  fallthrough\n }\n}\n",
        )
        .unwrap();
        let s = &c.servers[0];
        assert_eq!(s.port, 1053);
        assert_eq!(s.zones, vec![name(".")]);
        assert!(s.get::<Errors>().is_some() && s.get::<Log>().is_some());
        let k = s.get::<KubernetesConfig>().unwrap();
        assert_eq!(
            k.zones,
            vec![
                name("cluster.local"),
                name("in-addr.arpa"),
                name("ip6.arpa")
            ]
        );
        assert_eq!(
            k.manifests,
            vec![
                PathBuf::from("/etc/coredns/a.yaml"),
                PathBuf::from("/abs/dir")
            ]
        );
        assert_eq!(k.pods, PodMode::Insecure);
        assert_eq!(k.ttl, 30);
        assert_eq!(k.namespaces, vec!["prod", "default"]);
        assert!(k.fallthrough.through(&name("1.0.0.10.in-addr.arpa")));
        assert!(!k.fallthrough.through(&name("x.cluster.local")));
        let h = s.get::<HostsConfig>().unwrap();
        assert_eq!(h.file, Some(PathBuf::from("/etc/hosts.extra")));
        assert_eq!(h.ttl, 3600);
        assert_eq!(h.inline[0].0, "10.0.0.5".parse::<IpAddr>().unwrap());
        assert!(h.fallthrough.through(&name("anything.example.org")));
    }

    #[test]
    fn defaults_port_and_ttl() {
        let c = load("cluster.local {\n kubernetes {\n  manifests m.yaml\n }\n}\n").unwrap();
        assert_eq!(c.servers[0].port, 53);
        let k = c.servers[0].get::<KubernetesConfig>().unwrap();
        assert_eq!(k.ttl, 5);
        assert_eq!(k.pods, PodMode::Disabled);
        assert_eq!(k.zones, vec![name("cluster.local")]);
    }

    #[test]
    fn bind_accumulates_addresses_and_interfaces_less_each_except() {
        let ips = |text: &str| -> Vec<String> {
            let c = load(text).unwrap();
            c.servers[0]
                .get::<Bind>()
                .map(|b| b.0.clone())
                .unwrap_or_default()
                .iter()
                .map(ToString::to_string)
                .collect()
        };
        assert_eq!(ips(".:53 {\n bind 1.2.3.4 ::5\n}\n"), ["1.2.3.4", "::5"]);
        // As CoreDNS: directives add up, and `except` takes only from its own directive.
        assert_eq!(
            ips(".:53 {\n bind 127.0.0.1 ::1 {\n  except ::1\n }\n bind ::1 127.0.0.1\n}\n"),
            ["127.0.0.1", "::1"]
        );
        // `lo` is every address of the loopback interface (IPv6 link-local ones left out).
        let lo: Vec<String> = if_addrs::get_if_addrs()
            .unwrap()
            .into_iter()
            .filter(|i| i.name == "lo")
            .map(|i| i.ip().to_string())
            .collect();
        assert!(lo.contains(&"127.0.0.1".to_string()), "{lo:?}");
        assert_eq!(ips(".:53 {\n bind lo\n}\n"), lo);
        assert_eq!(
            ips(".:53 {\n bind lo {\n  except ::1\n }\n}\n"),
            ["127.0.0.1"]
        );
        let c = load(".:53 {\n bind 10.0.0.1 10.0.0.2\n}\n").unwrap();
        let listen: Vec<String> = c.servers[0]
            .listen()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(listen, ["dns://10.0.0.1:53", "dns://10.0.0.2:53"]);
        let c = load(".:1053 {\n bind ::1\n}\n.:1053 {\n}\n").unwrap();
        assert_eq!(c.servers[0].listen()[0].to_string(), "dns://[::1]:1053");
        assert_eq!(c.servers[1].listen()[0].to_string(), "dns://:1053");
    }

    #[test]
    fn a_zone_may_repeat_on_a_port_only_on_other_addresses() {
        assert!(
            load(".:53 {\n bind 127.0.0.2\n}\n.:53 {\n bind 127.0.0.3\n}\n.:53 {\n}\n").is_ok()
        );
        let err = load(".:53 {\n bind 127.0.0.2 127.0.0.3\n}\n.:53 {\n bind 127.0.0.3\n}\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("zone . on dns://127.0.0.3:53 is defined twice"),
            "{err}"
        );
        let err = load(".:53 {\n}\n.:53 {\n}\n").unwrap_err().to_string();
        assert!(
            err.contains("zone . on dns://:53 is defined twice"),
            "{err}"
        );
    }

    #[test]
    fn api_limits_and_the_options_coredns_removed() {
        let api = |options: &str| {
            let text = format!(
                "cluster.local {{\n kubernetes {{\n  endpoint http://127.0.0.1:1\n{options}\n }}\n}}\n"
            );
            let c = load(&text).unwrap();
            let k = c.servers[0].get::<KubernetesConfig>().unwrap();
            k.api.clone().expect("the API source")
        };
        let a = api("  apiserver_qps 5\n  apiserver_burst 10\n  apiserver_max_inflight 3");
        assert_eq!(a.rate, Some((10, Duration::from_secs(2))));
        assert_eq!(a.max_inflight, 3);
        // One not given: client-go's default for it (burst 10, 5 a second); neither: none.
        assert_eq!(
            api("  apiserver_qps 0.5").rate,
            Some((10, Duration::from_secs(20)))
        );
        assert_eq!(
            api("  apiserver_qps 0\n  apiserver_burst 4").rate,
            Some((4, Duration::from_millis(800)))
        );
        assert_eq!(api("  apiserver_qps 0\n  apiserver_burst 0").rate, None);
        // A tiny rate is a day per window, not a panic.
        assert_eq!(
            api("  apiserver_qps 1e-20").rate,
            Some((10, Duration::from_secs(86_400)))
        );
        // Started anyway, with a warning.
        let a = api("  upstream 10.0.0.10\n  resyncperiod 30s");
        assert_eq!((a.rate, a.max_inflight), (None, 0));
    }

    #[test]
    fn reverse_zones_from_cidrs() {
        assert_eq!(parse_zone("10.0.0.0/8").unwrap(), name("10.in-addr.arpa"));
        assert_eq!(
            parse_zone("192.168.1.0/24").unwrap(),
            name("1.168.192.in-addr.arpa")
        );
        assert_eq!(parse_zone("fd00::/8").unwrap(), name("d.f.ip6.arpa"));
        let zones = |cidr: &str| -> Vec<String> {
            corefile::parse_zones(cidr)
                .unwrap()
                .iter()
                .map(ToString::to_string)
                .collect()
        };
        // Off a boundary: every aligned network it holds, the address masked first.
        let twelve = zones("10.96.0.0/12");
        assert_eq!(twelve.len(), 16);
        assert_eq!(twelve[0], "96.10.in-addr.arpa.");
        assert_eq!(twelve[15], "111.10.in-addr.arpa.");
        assert_eq!(
            zones("172.16.5.7/22"),
            [
                "4.16.172.in-addr.arpa.",
                "5.16.172.in-addr.arpa.",
                "6.16.172.in-addr.arpa.",
                "7.16.172.in-addr.arpa."
            ]
        );
        assert_eq!(zones("fd00::/7"), ["c.f.ip6.arpa.", "d.f.ip6.arpa."]);
        assert_eq!(zones("0.0.0.0/0"), ["in-addr.arpa."]);
        assert_eq!(zones("10.1.2.3/32"), ["3.2.1.10.in-addr.arpa."]);
        assert_eq!(
            zones("10.1.2.3/31"),
            ["2.2.1.10.in-addr.arpa.", "3.2.1.10.in-addr.arpa."]
        );
        assert_eq!(zones("2001:db8::/33").len(), 8);
        for bad in ["10.0.0.0/33", "fd00::/129", "nonsense/8", "10.0.0.0/x"] {
            assert!(corefile::parse_zones(bad).is_err(), "{bad}");
        }
        // The first of them where one zone is taken (forward's FROM).
        assert_eq!(
            parse_zone("10.0.0.0/12").unwrap(),
            name("0.10.in-addr.arpa")
        );
        // Server keys and plugin zones take them all; a block's keys may name several ports.
        let c = load(
            "10.96.0.0/12 cluster.local:1053 .:1054 {\n kubernetes cluster.local 10.96.0.0/12 {\n  manifests m.yaml\n }\n}\n",
        )
        .unwrap();
        assert_eq!(c.servers.len(), 3);
        assert_eq!(
            (c.servers[0].port, c.servers[0].zones.len()),
            (53, 16),
            "{:?}",
            c.servers[0].zones
        );
        assert_eq!((c.servers[1].port, c.servers[1].zones.len()), (1053, 1));
        assert_eq!((c.servers[2].port, c.servers[2].zones.len()), (1054, 1));
        let k = c.servers[1].get::<KubernetesConfig>().unwrap();
        assert_eq!(k.zones.len(), 17);
        // The same zones on several ports: one server, its plugins made once, on each port.
        let c = load(".:1053 .:1054 {\n whoami\n}\n").unwrap();
        assert_eq!(c.servers.len(), 1);
        let ports: Vec<u16> = c.servers[0].listen().iter().map(|l| l.port).collect();
        assert_eq!(ports, [1053, 1054]);
    }

    #[test]
    fn rejections_name_the_line() {
        for (text, line, needle) in [
            (".:53 {\n nomad\n}\n", 2, "records in Nomad are not read"),
            (
                ".:53 {\n dnssec {\n  key file /nonexistent/Kx\n }\n}\n",
                3,
                "/nonexistent/Kx.key",
            ),
            (
                ".:53 {\n nomad\n}\n",
                2,
                "nomad: not supported: records in Nomad",
            ),
            (
                ".:53 {\n etcd {\n  colour blue\n }\n}\n",
                3,
                "unknown property 'colour'",
            ),
            (".:53 {\n pprof\n}\n", 2, "perf record -g -p PID"),
            (".:53 {\n cancel 1x\n}\n", 2, "invalid duration: \"1x\""),
            (".:53 {\n cancel -1s\n}\n", 2, "invalid negative duration"),
            (".:53 {\n cancel 1s 2s\n}\n", 2, "Wrong argument count"),
            (
                ".:53 {\n multisocket 0\n}\n",
                2,
                "can not be zero or negative: 0",
            ),
            (
                ".:53 {\n multisocket 1025\n}\n",
                2,
                "exceeds maximum (1024): 1025",
            ),
            (".:53 {\n multisocket x\n}\n", 2, "invalid num sockets"),
            (".:53 {\n multisocket 1 2\n}\n", 2, "Wrong argument count"),
            (".:53 {\n debug on\n}\n", 2, "Wrong argument count"),
            (".:53 {\n prometheus nonsense\n}\n", 2, "HOST:PORT"),
            (
                ".:53 {\n loadbalance weighted f g\n}\n",
                2,
                "unexpected argument(s)",
            ),
            (
                ".:53 {\n loadbalance random\n}\n",
                2,
                "unknown policy: random",
            ),
            (".:53 {\n health {\n  lameduck x\n }\n}\n", 3, "lameduck"),
            (".:53 {\n reload 1s\n}\n", 2, "at least 2s"),
            (".:53 {\n frobnicate\n}\n", 2, "unknown directive"),
            (".:53 {\n bind\n}\n", 2, "at least one address"),
            (
                ".:53 {\n bind 1.2.3.invalid\n}\n",
                2,
                "neither an IP address",
            ),
            (".:53 {\n bind ::1 noone0\n}\n", 2, "\"noone0\""),
            (".:53 {\n bind 1.2.3.4 {\n  except\n }\n}\n", 3, "except"),
            (
                ".:53 {\n bind ::1 {\n  unknown ::1\n }\n}\n",
                3,
                "unknown property",
            ),
            (
                ".:53 {\n bind ::1 {\n  except ::1\n }\n}\n",
                2,
                "no address is left",
            ),
            (
                ".:53 {\n kubernetes {\n  manifests m\n  ttl 3601\n }\n}\n",
                4,
                "ttl",
            ),
            (
                ".:53 {\n kubernetes {\n  manifests m\n  ttl x\n }\n}\n",
                4,
                "ttl",
            ),
            (
                ".:53 {\n kubernetes {\n  manifests m\n  pods maybe\n }\n}\n",
                4,
                "pods",
            ),
            (
                ".:53 {\n kubernetes {\n  manifests m\n  bogus\n }\n}\n",
                4,
                "unknown property",
            ),
            (
                ".:53 {\n kubernetes {\n  endpoint ftp://x\n }\n}\n",
                3,
                "URL",
            ),
            (
                ".:53 {\n kubernetes {\n  manifests m\n  endpoint http://x\n }\n}\n",
                2,
                "exclude each other",
            ),
            (".:53 {\n errors\n errors\n}\n", 3, "once"),
            (".:53 {\n hosts {\n  10.0.0.1\n }\n}\n", 3, "no names"),
            (".:53 {\n hosts {\n  reload 5q\n }\n}\n", 3, "unit"),
            (".:x {\n log\n}\n", 1, "bad port"),
            (".:53 {\n log\n}\n.:53 {\n errors\n}\n", 4, "twice"),
            (
                ".:53 {\n timeouts\n}\n",
                2,
                "timeouts: timeouts block with no timeouts specified",
            ),
            (
                ".:53 {\n timeouts 5s {\n  read 5s\n }\n}\n",
                2,
                "Wrong argument count or unexpected line ending after 'timeouts'",
            ),
            (
                ".:53 {\n timeouts {\n  read 10s\n  giraffe 30s\n }\n}\n",
                4,
                "unknown option: 'giraffe'",
            ),
            (
                ".:53 {\n timeouts {\n  read 10s 20s\n }\n}\n",
                3,
                "Wrong argument count or unexpected line ending after 'read'",
            ),
            (
                ".:53 {\n timeouts {\n  write snake\n }\n}\n",
                3,
                "failed to parse duration 'snake'",
            ),
            (
                ".:53 {\n timeouts {\n  idle 0s\n }\n}\n",
                3,
                "timeout provided '0s' needs to be between 1 second and 24 hours",
            ),
            (
                ".:53 {\n timeouts {\n  read 48h\n }\n}\n",
                3,
                "needs to be between 1 second and 24 hours",
            ),
            (
                ".:53 {\n timeouts {\n  read 999ms\n }\n}\n",
                3,
                "needs to be between",
            ),
            (
                ".:53 {\n timeouts {\n  idle -5\n }\n}\n",
                3,
                "needs to be between",
            ),
            (
                ".:53 {\n timeouts {\n  max_queries 5\n }\n}\n",
                3,
                "max_queries: not supported yet",
            ),
            (
                ".:53 {\n timeouts {\n  idle 1s\n }\n timeouts {\n  idle 2s\n }\n}\n",
                5,
                "once",
            ),
            (
                "cluster.local {\n kubernetes {\n  apiserver_qps -1\n }\n}\n",
                3,
                "apiserver_qps must be >= 0",
            ),
            (
                "cluster.local {\n kubernetes {\n  apiserver_qps fast\n }\n}\n",
                3,
                "invalid apiserver_qps \"fast\"",
            ),
            (
                "cluster.local {\n kubernetes {\n  apiserver_burst -2\n }\n}\n",
                3,
                "apiserver_burst must be >= 0",
            ),
            (
                "cluster.local {\n kubernetes {\n  apiserver_max_inflight many\n }\n}\n",
                3,
                "invalid apiserver_max_inflight \"many\"",
            ),
            (
                "cluster.local {\n kubernetes {\n  resyncperiod often\n }\n}\n",
                3,
                "resyncperiod",
            ),
        ] {
            let e = load(text).unwrap_err().to_string();
            assert!(e.starts_with(&format!("Corefile:{line}:")), "{text:?}: {e}");
            assert!(e.contains(needle), "{text:?}: {e}");
        }
    }

    #[test]
    fn timeouts_as_coredns_reads_them_and_per_port() {
        let c = load(
            ".:53 {\n timeouts {\n  read 30s\n  idle 1h\n  idle 2m\n }\n}\n\
             example.org:53 {\n timeouts {\n  read 10\n  write 24h\n }\n}\n\
             .:54 {\n log\n}\n",
        )
        .unwrap();
        let t = c.servers[0].get::<Timeouts>().copied().unwrap();
        assert_eq!(t.read, Some(Duration::from_secs(30)));
        assert_eq!(t.write, None);
        assert_eq!(t.idle, Some(Duration::from_secs(120)), "the last line wins");
        assert_eq!(c.servers[2].get::<Timeouts>(), None);
        let by_port = c.timeouts();
        assert_eq!(
            by_port[&Listen { ip: None, port: 53 }],
            Timeouts {
                read: Some(Duration::from_secs(10)),
                write: Some(Duration::from_secs(24 * 3600)),
                idle: Some(Duration::from_secs(120)),
            },
            "a later block on the port replaces what it sets, keeps the rest"
        );
        assert_eq!(by_port[&Listen { ip: None, port: 54 }], Timeouts::default());
        let one = load(".:53 {\n timeouts {\n  read 1s\n }\n}\n").unwrap();
        assert_eq!(
            one.servers[0].get::<Timeouts>().copied().unwrap().read,
            Some(TIMEOUT_MIN)
        );
    }

    #[test]
    fn multisocket_and_debug_per_port_and_process() {
        let c = load(
            ".:53 {\n multisocket 4\n}\nexample.org:53 {\n multisocket 2\n debug\n}\n\
             .:54 {\n multisocket\n}\n.:55 {\n log\n}\n",
        )
        .unwrap();
        let options = c.listen_options();
        let sockets = |port| {
            options
                .get(&Listen { ip: None, port })
                .and_then(|o| o.sockets)
        };
        assert_eq!(sockets(53), Some(2), "the last block on the port wins");
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        assert_eq!(sockets(54), Some(cpus), "the CPU count by default");
        assert_eq!(sockets(55), None);
        assert!(c.debug());
        assert!(!load(".:53 {\n log\n}\n").unwrap().debug());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("s").is_err());
    }
}
