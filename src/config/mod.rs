//! Configuration: the Corefile turned into validated settings, before any socket is bound.
//!
//! [`corefile`] parses the text into server blocks and directives; this module gives the
//! directives their meaning (CoreDNS's semantics and defaults) and rejects what it cannot serve,
//! naming the file and line.

pub mod cache;
pub mod corefile;
pub mod directives;
pub mod forward;
pub mod rrl;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hickory_proto::rr::{LowerName, Name};

pub use corefile::{Directive, Pos, ServerBlock};

/// Everything that can be wrong with a configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{pos}: {message}")]
    Syntax { pos: String, message: String },
    #[error("{pos}: {directive}: {message}")]
    Directive {
        pos: String,
        directive: String,
        message: String,
    },
}

/// The whole configuration: one entry per server block.
#[derive(Debug, Clone)]
pub struct Config {
    pub servers: Vec<ServerConfig>,
}

/// One server block: the zones it serves on a port, and its plugins.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub zones: Vec<LowerName>,
    pub port: u16,
    /// `bind ADDRESS|IFACE ... { except ADDRESS|IFACE ... }`: the addresses it listens on,
    /// interfaces resolved when the Corefile is read; empty listens on every address.
    pub bind: Vec<IpAddr>,
    pub errors: bool,
    pub log: bool,
    pub hosts: Option<HostsConfig>,
    pub kubernetes: Option<KubernetesConfig>,
    pub forward: Option<forward::ForwardConfig>,
    pub cache: Option<cache::CacheConfig>,
    /// `loop`: detect a forwarding loop at start.
    pub detect_loop: bool,
    pub autopath: Option<AutopathConfig>,
    /// `reload [INTERVAL [JITTER]]`: how often the Corefile is checked for changes.
    pub reload: Option<(Duration, Duration)>,
    /// `health [ADDR] { lameduck DURATION }`.
    pub health: Option<HealthConfig>,
    /// `ready [ADDR]`: the address of `/ready`.
    pub ready: Option<String>,
    /// `prometheus [ADDR]`: the address of `/metrics`.
    pub prometheus: Option<String>,
    /// `loadbalance [round_robin]`: address records in a random order.
    pub loadbalance: bool,
    /// `timeouts { read; write; idle }`: the TCP server's timeouts on this block's port.
    pub timeouts: Option<Timeouts>,
    /// `rrl [ZONES...] { ... }`: response rate limiting over UDP.
    pub rrl: Option<rrl::RrlConfig>,
    pub pos: Pos,
}

/// `timeouts { read DURATION; write DURATION; idle DURATION }`: CoreDNS's timeouts of the
/// DNS-over-TCP server on a port. One left out keeps its default (read 3s, write 5s, idle 10s).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timeouts {
    /// How long a new connection has to send its first query, whole.
    pub read: Option<Duration>,
    /// How long writing one response may take.
    pub write: Option<Duration>,
    /// How long a connection has to send each later query, whole.
    pub idle: Option<Duration>,
}

/// One address a server block listens on: an IP (`bind`) or every address, and a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Listen {
    /// `None`: the wildcard address.
    pub ip: Option<IpAddr>,
    pub port: u16,
}

impl std::fmt::Display for Listen {
    /// CoreDNS's server address, as in its logs and the `server` label of its metrics:
    /// `dns://:53`, `dns://169.254.20.10:53`, `dns://[::1]:53`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.ip {
            None => write!(f, "dns://:{}", self.port),
            Some(IpAddr::V4(ip)) => write!(f, "dns://{ip}:{}", self.port),
            Some(IpAddr::V6(ip)) => write!(f, "dns://[{ip}]:{}", self.port),
        }
    }
}

impl ServerConfig {
    /// Where this block listens: each `bind` address on its port, or the wildcard.
    pub fn listen(&self) -> Vec<Listen> {
        if self.bind.is_empty() {
            return vec![Listen {
                ip: None,
                port: self.port,
            }];
        }
        self.bind
            .iter()
            .map(|&ip| Listen {
                ip: Some(ip),
                port: self.port,
            })
            .collect()
    }
}

impl Timeouts {
    /// These timeouts with the ones `later` sets in their place.
    pub fn then(self, later: Timeouts) -> Timeouts {
        Timeouts {
            read: later.read.or(self.read),
            write: later.write.or(self.write),
            idle: later.idle.or(self.idle),
        }
    }
}

/// The `health` directive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthConfig {
    pub addr: String,
    /// How long to keep serving after a shutdown signal.
    pub lameduck: Duration,
}

/// `fallthrough [ZONES...]`: names in these zones (all when empty) pass to the next plugin.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fallthrough {
    zones: Option<crate::wire::Zones>,
}

impl Fallthrough {
    /// Whether `name` falls through.
    pub fn through(&self, name: &LowerName) -> bool {
        self.zones
            .as_ref()
            .is_some_and(|zones| zones.is_empty() || zones.holds(name))
    }

    /// [`Self::through`] for a name in lowercase wire format.
    pub fn through_wire(&self, key: &[u8]) -> bool {
        self.zones
            .as_ref()
            .is_some_and(|zones| zones.is_empty() || zones.holds_wire(key))
    }

    fn parse(args: &[String], d: &Directive, parent: &str) -> Result<Self, ConfigError> {
        let zones: Vec<LowerName> = args
            .iter()
            .map(|a| parse_zone(a).map_err(|m| directive_err(d, parent, m)))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            zones: Some(crate::wire::Zones::new(&zones)),
        })
    }
}

/// `pods insecure|verified|disabled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodMode {
    Disabled,
    Insecure,
    Verified,
}

/// The `kubernetes` directive.
#[derive(Debug, Clone)]
pub struct KubernetesConfig {
    /// The zones it answers, forward and reverse; the first forward one is primary.
    pub zones: Vec<LowerName>,
    pub manifests: Vec<PathBuf>,
    pub pods: PodMode,
    pub ttl: u32,
    /// Exposed namespaces; empty exposes every namespace.
    pub namespaces: Vec<String>,
    pub fallthrough: Fallthrough,
    pub endpoint_pod_names: bool,
    pub noendpoints: bool,
    /// `ignore empty_service`: NXDOMAIN for ClusterIP services without ready endpoints.
    pub ignore_empty_service: bool,
    /// How often the manifest files are checked for changes.
    pub reload: Duration,
    /// The live API source, when there are no `manifests`.
    pub api: Option<ApiConfig>,
}

/// Where and how the kubernetes plugin reaches the API server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiConfig {
    /// `endpoint URL`: the API server, without credentials unless `tls` gives them.
    pub endpoint: Option<String>,
    /// `tls CERT KEY CACERT`.
    pub tls: Option<(PathBuf, PathBuf, PathBuf)>,
    /// `kubeconfig PATH [CONTEXT]`.
    pub kubeconfig: Option<(PathBuf, Option<String>)>,
    /// `labels SELECTOR`: only services and endpoints matching it.
    pub labels: Option<String>,
    /// `namespace_labels SELECTOR`: only namespaces matching it are exposed.
    pub namespace_labels: Option<String>,
    /// `startup_timeout`: how long cluster names get SERVFAIL while the first list syncs.
    pub startup_timeout: Duration,
}

/// CoreDNS's default `startup_timeout`.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(5);

/// The `hosts` directive.
#[derive(Debug, Clone)]
pub struct HostsConfig {
    pub file: Option<PathBuf>,
    pub zones: Vec<LowerName>,
    pub inline: Vec<(IpAddr, Vec<Name>)>,
    pub ttl: u32,
    pub reload: Duration,
    pub no_reverse: bool,
    pub fallthrough: Fallthrough,
}

/// CoreDNS's default TTL for the kubernetes plugin.
const KUBERNETES_DEFAULT_TTL: u32 = 5;
/// CoreDNS's limit on the kubernetes plugin's `ttl`.
const KUBERNETES_MAX_TTL: u32 = 3600;
/// CoreDNS's default TTL for the hosts plugin.
const HOSTS_DEFAULT_TTL: u32 = 3600;
/// CoreDNS's default interval for re-reading a hosts file.
const HOSTS_DEFAULT_RELOAD: Duration = Duration::from_secs(5);
/// How often manifest files are checked for changes.
const MANIFESTS_RELOAD: Duration = Duration::from_secs(1);

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
        for block in blocks {
            let server = server_block(&block, default_port, dir)?;
            let listen = server.listen();
            for zone in &server.zones {
                let twice = servers.iter().find_map(|s| {
                    let same = s.listen().into_iter().find(|l| listen.contains(l))?;
                    s.zones.contains(zone).then_some(same)
                });
                if let Some(at) = twice {
                    return Err(ConfigError::Syntax {
                        pos: block.pos.to_string(),
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
                *t = t.then(s.timeouts.unwrap_or_default());
            }
        }
        by_listen
    }
}

fn directive_err(d: &Directive, name: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Directive {
        pos: d.pos.to_string(),
        directive: name.to_string(),
        message: message.into(),
    }
}

fn server_block(
    block: &ServerBlock,
    default_port: u16,
    dir: &Path,
) -> Result<ServerConfig, ConfigError> {
    let mut zones = Vec::new();
    let mut port = None;
    for key in &block.keys {
        let (zone, p) = parse_key(key, default_port).map_err(|message| ConfigError::Syntax {
            pos: block.pos.to_string(),
            message,
        })?;
        if port.is_some_and(|q| q != p) {
            return Err(ConfigError::Syntax {
                pos: block.pos.to_string(),
                message: "all keys of a server block must use the same port".into(),
            });
        }
        port = Some(p);
        zones.push(zone);
    }
    let mut server = ServerConfig {
        zones,
        port: port.unwrap_or(default_port),
        bind: Vec::new(),
        errors: false,
        log: false,
        hosts: None,
        kubernetes: None,
        forward: None,
        cache: None,
        detect_loop: false,
        autopath: None,
        reload: None,
        health: None,
        ready: None,
        prometheus: None,
        loadbalance: false,
        timeouts: None,
        rrl: None,
        pos: block.pos.clone(),
    };
    for d in &block.directives {
        let name = d.name.as_str();
        let entry = directives::DIRECTIVES.iter().find(|e| e.name == name);
        let seen = match entry {
            Some(directives::Entry {
                setup: Some(setup), ..
            }) => (setup.parse)(d, &mut server, dir)?,
            Some(_) => return Err(directive_err(d, name, "not supported yet")),
            None => return Err(directive_err(d, name, "unknown directive")),
        };
        if seen {
            return Err(directive_err(
                d,
                name,
                "can only be used once per server block",
            ));
        }
    }
    Ok(server)
}

/// A directive that is on or off (`errors`, `log`): `Ok(true)` when it was on already.
fn flag(d: &Directive, on: &mut bool) -> Result<bool, ConfigError> {
    if !d.block.is_empty() {
        return Err(directive_err(d, &d.name, "takes no block in this build"));
    }
    Ok(std::mem::replace(on, true))
}

/// `loadbalance [round_robin]`.
fn loadbalance(d: &Directive, server: &mut ServerConfig, _: &Path) -> Result<bool, ConfigError> {
    if !matches!(d.args.as_slice(), [] | [_]) || d.args.first().is_some_and(|p| p != "round_robin")
    {
        return Err(directive_err(
            d,
            "loadbalance",
            "only the round_robin policy is supported",
        ));
    }
    Ok(std::mem::replace(&mut server.loadbalance, true))
}

/// `bind`: each adds its addresses; its `except` takes only from its own. May repeat.
fn bind_into(d: &Directive, server: &mut ServerConfig, _: &Path) -> Result<bool, ConfigError> {
    for ip in bind(d)? {
        if !server.bind.contains(&ip) {
            server.bind.push(ip);
        }
    }
    Ok(false)
}

/// Splits a server block key `[dns://]ZONE[:PORT]`.
fn parse_key(key: &str, default_port: u16) -> Result<(LowerName, u16), String> {
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
    Ok((parse_zone(zone)?, port))
}

/// A zone as written in a Corefile: a name, or a CIDR for a reverse zone.
pub fn parse_zone(zone: &str) -> Result<LowerName, String> {
    if zone.is_empty() {
        return Err("empty zone".into());
    }
    if let Some((ip, len)) = zone.split_once('/') {
        return reverse_zone(ip, len).ok_or_else(|| {
            format!("{zone}: only CIDRs on octet (IPv4) or nibble (IPv6) boundaries are supported")
        });
    }
    let name = Name::from_ascii(zone).map_err(|e| format!("{zone}: bad zone: {e}"))?;
    let mut name = name.to_lowercase();
    name.set_fqdn(true);
    Ok(LowerName::new(&name))
}

fn reverse_zone(ip: &str, len: &str) -> Option<LowerName> {
    let ip: IpAddr = ip.parse().ok()?;
    let len: usize = len.parse().ok()?;
    let labels: Vec<String> = match ip {
        IpAddr::V4(v4) if len <= 32 && len.is_multiple_of(8) => v4.octets()[..len / 8]
            .iter()
            .rev()
            .map(u8::to_string)
            .chain(["in-addr".into(), "arpa".into()])
            .collect(),
        IpAddr::V6(v6) if len <= 128 && len.is_multiple_of(4) => {
            let nibbles: Vec<String> = v6
                .octets()
                .iter()
                .flat_map(|b| [b >> 4, b & 0xf])
                .map(|n| format!("{n:x}"))
                .collect();
            nibbles[..len / 4]
                .iter()
                .rev()
                .cloned()
                .chain(["ip6".into(), "arpa".into()])
                .collect()
        }
        _ => return None,
    };
    let name = Name::from_ascii(labels.join(".") + ".").ok()?;
    Some(LowerName::new(&name))
}

fn is_reverse(zone: &LowerName) -> bool {
    let arpa = [
        LowerName::new(&Name::from_ascii("in-addr.arpa.").expect("static name")),
        LowerName::new(&Name::from_ascii("ip6.arpa.").expect("static name")),
    ];
    arpa.iter().any(|a| a.zone_of(zone))
}

/// Plugin zones: the arguments, or the server block's zones when there are none.
fn plugin_zones(
    d: &Directive,
    name: &str,
    args: &[String],
    block_zones: &[LowerName],
) -> Result<Vec<LowerName>, ConfigError> {
    if args.is_empty() {
        return Ok(block_zones.to_vec());
    }
    args.iter()
        .map(|a| parse_zone(a).map_err(|m| directive_err(d, name, m)))
        .collect()
}

fn one_arg<'a>(d: &'a Directive, parent: &str) -> Result<&'a str, ConfigError> {
    match d.args.as_slice() {
        [a] => Ok(a),
        _ => Err(directive_err(
            d,
            parent,
            format!("{} takes exactly one argument", d.name),
        )),
    }
}

fn number<T: std::str::FromStr>(d: &Directive, parent: &str) -> Result<T, ConfigError> {
    let a = one_arg(d, parent)?;
    a.parse().map_err(|_| {
        directive_err(
            d,
            parent,
            format!("{}: {a:?} is not a valid number", d.name),
        )
    })
}

fn resolve(dir: &Path, path: &str) -> PathBuf {
    let p = Path::new(path);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        dir.join(p)
    }
}

fn kubernetes(
    d: &Directive,
    block_zones: &[LowerName],
    dir: &Path,
) -> Result<KubernetesConfig, ConfigError> {
    const NAME: &str = "kubernetes";
    let zones = plugin_zones(d, NAME, &d.args, block_zones)?;
    if !zones.iter().any(|z| !is_reverse(z)) {
        return Err(directive_err(
            d,
            NAME,
            "needs at least one forward zone (e.g. cluster.local)",
        ));
    }
    let mut k = KubernetesConfig {
        zones,
        manifests: Vec::new(),
        pods: PodMode::Disabled,
        ttl: KUBERNETES_DEFAULT_TTL,
        namespaces: Vec::new(),
        fallthrough: Fallthrough::default(),
        endpoint_pod_names: false,
        noendpoints: false,
        ignore_empty_service: false,
        reload: MANIFESTS_RELOAD,
        api: None,
    };
    let mut api = ApiConfig {
        startup_timeout: STARTUP_TIMEOUT,
        ..ApiConfig::default()
    };
    let mut api_named = false;
    for o in &d.block {
        match o.name.as_str() {
            "manifests" => {
                if o.args.is_empty() {
                    return Err(directive_err(
                        o,
                        NAME,
                        "manifests needs at least one file or directory",
                    ));
                }
                k.manifests.extend(o.args.iter().map(|a| resolve(dir, a)));
            }
            "pods" => {
                k.pods = match one_arg(o, NAME)? {
                    "disabled" => PodMode::Disabled,
                    "insecure" => PodMode::Insecure,
                    "verified" => PodMode::Verified,
                    other => {
                        return Err(directive_err(
                            o,
                            NAME,
                            format!("pods: {other:?} is not one of disabled, insecure, verified"),
                        ));
                    }
                }
            }
            "ttl" => {
                let ttl: u32 = number(o, NAME)?;
                if ttl > KUBERNETES_MAX_TTL {
                    return Err(directive_err(
                        o,
                        NAME,
                        format!("ttl must be in range [0, {KUBERNETES_MAX_TTL}]: {ttl}"),
                    ));
                }
                k.ttl = ttl;
            }
            "namespaces" => {
                if o.args.is_empty() {
                    return Err(directive_err(
                        o,
                        NAME,
                        "namespaces needs at least one namespace",
                    ));
                }
                k.namespaces.extend(o.args.iter().cloned());
            }
            "fallthrough" => k.fallthrough = Fallthrough::parse(&o.args, o, NAME)?,
            "endpoint_pod_names" => k.endpoint_pod_names = true,
            "noendpoints" => k.noendpoints = true,
            "endpoint" => {
                let url = one_arg(o, NAME)?;
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(directive_err(
                        o,
                        NAME,
                        format!("endpoint {url:?} is not an http(s) URL"),
                    ));
                }
                api.endpoint = Some(url.to_string());
                api_named = true;
            }
            "tls" => match o.args.as_slice() {
                [cert, key, ca] => {
                    api.tls = Some((resolve(dir, cert), resolve(dir, key), resolve(dir, ca)));
                    api_named = true;
                }
                _ => return Err(directive_err(o, NAME, "tls takes CERT KEY CACERT")),
            },
            "kubeconfig" => match o.args.as_slice() {
                [path] => {
                    api.kubeconfig = Some((resolve(dir, path), None));
                    api_named = true;
                }
                [path, context] => {
                    api.kubeconfig = Some((resolve(dir, path), Some(context.clone())));
                    api_named = true;
                }
                _ => return Err(directive_err(o, NAME, "kubeconfig takes PATH [CONTEXT]")),
            },
            "labels" => api.labels = Some(selector(o, NAME)?),
            "namespace_labels" => api.namespace_labels = Some(selector(o, NAME)?),
            "startup_timeout" => {
                api.startup_timeout = parse_duration(one_arg(o, NAME)?)
                    .map_err(|m| directive_err(o, NAME, format!("startup_timeout: {m}")))?;
            }
            "ignore" => match o.args.as_slice() {
                [what] if what == "empty_service" => k.ignore_empty_service = true,
                _ => return Err(directive_err(o, NAME, "ignore takes empty_service")),
            },
            "multicluster" | "apiserver_qps" | "apiserver_burst" | "apiserver_max_inflight" => {
                return Err(directive_err(
                    o,
                    NAME,
                    format!("{}: not supported yet", o.name),
                ));
            }
            other => {
                return Err(directive_err(
                    o,
                    NAME,
                    format!("unknown property {other:?}"),
                ));
            }
        }
    }
    if api.endpoint.is_some() && api.kubeconfig.is_some() {
        return Err(directive_err(
            d,
            NAME,
            "use `endpoint` or `kubeconfig`, not both",
        ));
    }
    if k.manifests.is_empty() {
        // No files: the API, in-cluster unless `endpoint` or `kubeconfig` says where.
        k.api = Some(api);
    } else if api_named {
        return Err(directive_err(
            d,
            NAME,
            "`manifests` and the API source (`endpoint`, `kubeconfig`, `tls`) exclude each other",
        ));
    }
    Ok(k)
}

/// The address of an HTTP endpoint: `[HOST]:PORT`, or `default` when none is given.
fn http_addr(d: &Directive, default: &str) -> Result<String, ConfigError> {
    let addr = match d.args.as_slice() {
        [] => default.to_string(),
        [a] => a.clone(),
        _ => return Err(directive_err(d, &d.name, "takes at most one address")),
    };
    let bad = || directive_err(d, &d.name, format!("{addr:?} is not HOST:PORT or :PORT"));
    let (host, port) = addr.rsplit_once(':').ok_or_else(bad)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let host_ok = host.is_empty() || host.parse::<IpAddr>().is_ok() || host == "localhost";
    if port.parse::<u16>().is_err() || !host_ok {
        return Err(bad());
    }
    if d.name != "health" && !d.block.is_empty() {
        return Err(directive_err(d, &d.name, "takes no block"));
    }
    Ok(addr)
}

/// `bind ADDRESS|IFACE ... { except ADDRESS|IFACE ... }`: the addresses named, an interface
/// standing for every address it has now except IPv6 link-local ones (as CoreDNS), less those
/// `except` names.
fn bind(d: &Directive) -> Result<Vec<IpAddr>, ConfigError> {
    if d.args.is_empty() {
        return Err(directive_err(
            d,
            "bind",
            "at least one address or interface name is expected",
        ));
    }
    let interfaces = if_addrs::get_if_addrs()
        .map_err(|e| directive_err(d, "bind", format!("cannot list the interfaces: {e}")))?;
    // An interface name stands for its addresses (only interfaces with one are listed).
    let resolve = |d: &Directive, arg: &str| -> Result<Vec<IpAddr>, ConfigError> {
        if interfaces.iter().any(|i| i.name == arg) {
            return Ok(interfaces
                .iter()
                .filter(|i| i.name == arg)
                .map(if_addrs::Interface::ip)
                .filter(|ip| !matches!(ip, IpAddr::V6(v6) if v6.is_unicast_link_local()))
                .collect());
        }
        arg.parse::<IpAddr>().map(|ip| vec![ip]).map_err(|_| {
            directive_err(
                d,
                "bind",
                format!("{arg:?} is neither an IP address nor an interface of this host"),
            )
        })
    };
    let mut all = Vec::new();
    for arg in &d.args {
        for ip in resolve(d, arg)? {
            if !all.contains(&ip) {
                all.push(ip);
            }
        }
    }
    for o in &d.block {
        if o.name != "except" {
            return Err(directive_err(
                o,
                "bind",
                format!("unknown property {:?}", o.name),
            ));
        }
        if o.args.is_empty() || !o.block.is_empty() {
            return Err(directive_err(
                o,
                "bind",
                "except: at least one address or interface name is expected",
            ));
        }
        for arg in &o.args {
            let out = resolve(o, arg)?;
            all.retain(|ip| !out.contains(ip));
        }
    }
    if all.is_empty() {
        return Err(directive_err(d, "bind", "no address is left to listen on"));
    }
    Ok(all)
}

fn health(d: &Directive) -> Result<HealthConfig, ConfigError> {
    let mut h = HealthConfig {
        addr: http_addr(d, ":8080")?,
        lameduck: Duration::ZERO,
    };
    for o in &d.block {
        match o.name.as_str() {
            "lameduck" => {
                h.lameduck = parse_duration(one_arg(o, "health")?)
                    .map_err(|m| directive_err(o, "health", format!("lameduck: {m}")))?;
            }
            other => {
                return Err(directive_err(
                    o,
                    "health",
                    format!("unknown property {other:?}"),
                ));
            }
        }
    }
    Ok(h)
}

/// A Kubernetes label selector: kept as written, checked for the characters selectors use.
fn selector(d: &Directive, parent: &str) -> Result<String, ConfigError> {
    if d.args.is_empty() {
        return Err(directive_err(
            d,
            parent,
            format!("{} needs a selector", d.name),
        ));
    }
    let s = d.args.join(" ");
    let ok = s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || " ,=!()-_./".contains(c));
    if !ok {
        return Err(directive_err(
            d,
            parent,
            format!("{}: {s:?} is not a label selector", d.name),
        ));
    }
    Ok(s)
}

fn hosts(d: &Directive, block_zones: &[LowerName], dir: &Path) -> Result<HostsConfig, ConfigError> {
    const NAME: &str = "hosts";
    let (file, zone_args) = match d.args.split_first() {
        Some((f, rest)) => (Some(resolve(dir, f)), rest),
        None => (None, &[][..]),
    };
    let mut h = HostsConfig {
        file,
        zones: plugin_zones(d, NAME, zone_args, block_zones)?,
        inline: Vec::new(),
        ttl: HOSTS_DEFAULT_TTL,
        reload: HOSTS_DEFAULT_RELOAD,
        no_reverse: false,
        fallthrough: Fallthrough::default(),
    };
    for o in &d.block {
        match o.name.as_str() {
            "ttl" => {
                let ttl: u32 = number(o, NAME)?;
                if !(1..=65535).contains(&ttl) {
                    return Err(directive_err(
                        o,
                        NAME,
                        format!("ttl must be in range [1, 65535]: {ttl}"),
                    ));
                }
                h.ttl = ttl;
            }
            "reload" => {
                h.reload = parse_duration(one_arg(o, NAME)?)
                    .map_err(|m| directive_err(o, NAME, format!("reload: {m}")))?;
            }
            "no_reverse" => h.no_reverse = true,
            "fallthrough" => h.fallthrough = Fallthrough::parse(&o.args, o, NAME)?,
            ip if ip.parse::<IpAddr>().is_ok() => {
                let addr: IpAddr = ip.parse().expect("checked above");
                if o.args.is_empty() {
                    return Err(directive_err(o, NAME, format!("{ip}: no names")));
                }
                let names = o
                    .args
                    .iter()
                    .map(|n| host_name(n).map_err(|m| directive_err(o, NAME, m)))
                    .collect::<Result<_, _>>()?;
                h.inline.push((addr, names));
            }
            other => {
                return Err(directive_err(
                    o,
                    NAME,
                    format!("unknown property {other:?}"),
                ));
            }
        }
    }
    Ok(h)
}

/// `autopath [ZONES...] RESOLV-CONF`: where a pod's search path comes from.
#[derive(Debug, Clone)]
pub struct AutopathConfig {
    pub zones: Vec<LowerName>,
    pub search: AutopathSearch,
}

#[derive(Debug, Clone)]
pub enum AutopathSearch {
    /// `@kubernetes`: the asking pod's namespace, then the cluster's, then these domains (the
    /// server's own resolv.conf search line).
    Kubernetes(Vec<String>),
    /// A resolv.conf's search line, for every client.
    Static(Vec<String>),
}

fn autopath(
    d: &Directive,
    block_zones: &[LowerName],
    dir: &Path,
) -> Result<AutopathConfig, ConfigError> {
    const NAME: &str = "autopath";
    let Some((source, zones)) = d.args.split_last() else {
        return Err(directive_err(d, NAME, "needs @kubernetes or a resolv.conf"));
    };
    let zones = plugin_zones(d, NAME, zones, block_zones)?;
    let read = |path: &Path| {
        std::fs::read_to_string(path)
            .map(|text| forward::search_domains(&text))
            .map_err(|e| directive_err(d, NAME, format!("{}: {e}", path.display())))
    };
    let search = match source.as_str() {
        "@kubernetes" => {
            AutopathSearch::Kubernetes(read(Path::new("/etc/resolv.conf")).unwrap_or_default())
        }
        s if s.starts_with('@') => {
            return Err(directive_err(
                d,
                NAME,
                format!("{s}: only @kubernetes is supported"),
            ));
        }
        path => {
            let domains = read(&resolve(dir, path))?;
            if domains.is_empty() {
                return Err(directive_err(d, NAME, format!("{path}: no search domains")));
            }
            AutopathSearch::Static(domains)
        }
    };
    Ok(AutopathConfig { zones, search })
}

/// `reload [INTERVAL [JITTER]]`, as CoreDNS reads it: 30s and 15s by default; the interval at
/// least 2s, the jitter at least 1s and at most half the interval.
fn reload(d: &Directive) -> Result<(Duration, Duration), ConfigError> {
    const NAME: &str = "reload";
    let duration = |s: &String| parse_duration(s).map_err(|m| directive_err(d, NAME, m));
    let (interval, jitter) = match d.args.as_slice() {
        [] => (Duration::from_secs(30), Duration::from_secs(15)),
        [i] => {
            let i = duration(i)?;
            (i, i / 2)
        }
        [i, j] => (duration(i)?, duration(j)?),
        _ => return Err(directive_err(d, NAME, "takes at most INTERVAL and JITTER")),
    };
    if interval < Duration::from_secs(2) {
        return Err(directive_err(d, NAME, "the interval must be at least 2s"));
    }
    if jitter < Duration::from_secs(1) || jitter > interval / 2 {
        return Err(directive_err(
            d,
            NAME,
            "the jitter must be at least 1s and at most half the interval",
        ));
    }
    Ok((interval, jitter))
}

/// CoreDNS's bounds on each of `timeouts`.
const TIMEOUT_MIN: Duration = Duration::from_secs(1);
const TIMEOUT_MAX: Duration = Duration::from_secs(24 * 3600);

/// `timeouts { read DURATION; write DURATION; idle DURATION }`, with CoreDNS's checks and
/// messages: at least one of them, each once in a line with one DURATION (a bare number is
/// seconds), between 1s and 24h.
fn timeouts(d: &Directive) -> Result<Timeouts, ConfigError> {
    const NAME: &str = "timeouts";
    let arg_err = |d: &Directive| {
        directive_err(
            d,
            NAME,
            format!(
                "Wrong argument count or unexpected line ending after '{}'",
                d.name
            ),
        )
    };
    if !d.args.is_empty() {
        return Err(arg_err(d));
    }
    if d.block.is_empty() {
        return Err(directive_err(
            d,
            NAME,
            "timeouts block with no timeouts specified",
        ));
    }
    let mut t = Timeouts::default();
    for o in &d.block {
        let slot = match o.name.as_str() {
            "read" => &mut t.read,
            "write" => &mut t.write,
            "idle" => &mut t.idle,
            "max_queries" | "maxtcpqueries" => {
                return Err(directive_err(
                    o,
                    NAME,
                    format!("{}: not supported yet", o.name),
                ));
            }
            other => {
                return Err(directive_err(o, NAME, format!("unknown option: '{other}'")));
            }
        };
        let [arg] = o.args.as_slice() else {
            return Err(arg_err(o));
        };
        *slot = Some(timeout(arg).map_err(|m| directive_err(o, NAME, m))?);
    }
    Ok(t)
}

/// One of `timeouts`' durations: Go's syntax, or a bare number of seconds.
fn timeout(arg: &str) -> Result<Duration, String> {
    let out_of_bounds =
        || format!("timeout provided '{arg}' needs to be between 1 second and 24 hours");
    let duration = match arg.parse::<i64>() {
        Ok(secs) => Duration::from_secs(u64::try_from(secs).map_err(|_| out_of_bounds())?),
        Err(_) => parse_duration(arg).map_err(|_| format!("failed to parse duration '{arg}'"))?,
    };
    if !(TIMEOUT_MIN..=TIMEOUT_MAX).contains(&duration) {
        return Err(out_of_bounds());
    }
    Ok(duration)
}

/// A name from a hosts entry, lowercased and fully qualified.
pub fn host_name(s: &str) -> Result<Name, String> {
    let mut name = Name::from_ascii(s)
        .map_err(|e| format!("{s:?} is not a valid name: {e}"))?
        .to_lowercase();
    if name.is_root() {
        return Err(format!("{s:?} is not a valid name"));
    }
    name.set_fqdn(true);
    Ok(name)
}

/// Parses a Go-style duration: `5s`, `1m30s`, `100ms`, `0`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    if rest.is_empty() {
        return Err("empty duration".into());
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .ok_or_else(|| format!("{s:?}: missing unit"))?;
        let value: f64 = rest[..digits]
            .parse()
            .map_err(|_| format!("{s:?} is not a duration"))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            u => return Err(format!("{s:?}: unknown unit {u:?}")),
        };
        total += Duration::try_from_secs_f64(value * scale)
            .map_err(|_| format!("{s:?} is out of range"))?;
        rest = &rest[unit_len..];
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(s.errors && s.log);
        let k = s.kubernetes.as_ref().unwrap();
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
        let h = s.hosts.as_ref().unwrap();
        assert_eq!(h.file, Some(PathBuf::from("/etc/hosts.extra")));
        assert_eq!(h.ttl, 3600);
        assert_eq!(h.inline[0].0, "10.0.0.5".parse::<IpAddr>().unwrap());
        assert!(h.fallthrough.through(&name("anything.example.org")));
    }

    #[test]
    fn defaults_port_and_ttl() {
        let c = load("cluster.local {\n kubernetes {\n  manifests m.yaml\n }\n}\n").unwrap();
        assert_eq!(c.servers[0].port, 53);
        let k = c.servers[0].kubernetes.as_ref().unwrap();
        assert_eq!(k.ttl, 5);
        assert_eq!(k.pods, PodMode::Disabled);
        assert_eq!(k.zones, vec![name("cluster.local")]);
    }

    #[test]
    fn bind_accumulates_addresses_and_interfaces_less_each_except() {
        let ips = |text: &str| -> Vec<String> {
            let c = load(text).unwrap();
            c.servers[0].bind.iter().map(ToString::to_string).collect()
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
    fn reverse_zones_from_cidrs() {
        assert_eq!(parse_zone("10.0.0.0/8").unwrap(), name("10.in-addr.arpa"));
        assert_eq!(
            parse_zone("192.168.1.0/24").unwrap(),
            name("1.168.192.in-addr.arpa")
        );
        assert_eq!(parse_zone("fd00::/8").unwrap(), name("d.f.ip6.arpa"));
        assert!(parse_zone("10.0.0.0/12").is_err());
    }

    #[test]
    fn rejections_name_the_line() {
        for (text, line, needle) in [
            (".:53 {\n dnssec\n}\n", 2, "not supported yet"),
            (".:53 {\n prometheus nonsense\n}\n", 2, "HOST:PORT"),
            (".:53 {\n loadbalance weighted f\n}\n", 2, "round_robin"),
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
            (".:53 {\n log\n log\n}\n", 3, "once"),
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
        let t = c.servers[0].timeouts.unwrap();
        assert_eq!(t.read, Some(Duration::from_secs(30)));
        assert_eq!(t.write, None);
        assert_eq!(t.idle, Some(Duration::from_secs(120)), "the last line wins");
        assert_eq!(c.servers[2].timeouts, None);
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
        assert_eq!(one.servers[0].timeouts.unwrap().read, Some(TIMEOUT_MIN));
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
