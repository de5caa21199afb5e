//! The registry of directives: every directive CoreDNS knows, in its `plugin.cfg` order (the
//! order a query meets them, whatever order a Corefile writes them in), each with how this
//! build reads it into a server block, or `None` when it is known but not served yet.
//!
//! `-plugins`, `coredns_plugin_enabled`, the "not supported yet" and "unknown directive"
//! errors and the order of every block's chain all come from [`DIRECTIVES`].

use std::path::Path;

use super::{ConfigError, Directive, ServerConfig};

/// Reads one directive into the block being read; `Ok(true)` when the block had it already
/// (each of these directives may appear once per block).
pub type Parse = fn(&Directive, &mut ServerConfig, &Path) -> Result<bool, ConfigError>;

/// One directive of the registry.
#[derive(Debug)]
pub struct Entry {
    pub name: &'static str,
    /// How it is read, and whether a block read with it has it.
    pub setup: Option<Setup>,
}

#[derive(Debug)]
pub struct Setup {
    pub parse: Parse,
    /// Whether `server` has it (`coredns_plugin_enabled`).
    pub enabled: fn(&ServerConfig) -> bool,
}

const fn here(name: &'static str, parse: Parse, enabled: fn(&ServerConfig) -> bool) -> Entry {
    Entry {
        name,
        setup: Some(Setup { parse, enabled }),
    }
}

const fn not_yet(name: &'static str) -> Entry {
    Entry { name, setup: None }
}

/// A directive that may appear once: `Ok(true)` when it had a value already.
fn once<T>(slot: &mut Option<T>, value: T) -> Result<bool, ConfigError> {
    Ok(slot.replace(value).is_some())
}

/// CoreDNS's `plugin.cfg`, with `rrl` (an external plugin) first: it accounts for a query
/// before anything else looks at it.
pub static DIRECTIVES: &[Entry] = &[
    here(
        "rrl",
        |d, s, _| {
            let rrl = super::rrl::rrl(d, &s.zones)?;
            once(&mut s.rrl, rrl)
        },
        |s| s.rrl.is_some(),
    ),
    not_yet("root"),
    not_yet("metadata"),
    not_yet("geoip"),
    not_yet("cancel"),
    not_yet("proxyproto"),
    not_yet("quic"),
    not_yet("grpc_server"),
    not_yet("https"),
    not_yet("https3"),
    here(
        "timeouts",
        |d, s, _| once(&mut s.timeouts, super::timeouts(d)?),
        |s| s.timeouts.is_some(),
    ),
    not_yet("multisocket"),
    here(
        "reload",
        |d, s, _| once(&mut s.reload, super::reload(d)?),
        |s| s.reload.is_some(),
    ),
    not_yet("nsid"),
    not_yet("bufsize"),
    here("bind", super::bind_into, |s| !s.bind.is_empty()),
    not_yet("debug"),
    not_yet("trace"),
    here(
        "ready",
        |d, s, _| once(&mut s.ready, super::http_addr(d, ":8181")?),
        |s| s.ready.is_some(),
    ),
    here(
        "health",
        |d, s, _| once(&mut s.health, super::health(d)?),
        |s| s.health.is_some(),
    ),
    not_yet("pprof"),
    not_yet("shed"),
    here(
        "prometheus",
        |d, s, _| once(&mut s.prometheus, super::http_addr(d, ":9153")?),
        |s| s.prometheus.is_some(),
    ),
    here(
        "errors",
        |d, s, _| super::flag(d, &mut s.errors),
        |s| s.errors,
    ),
    here("log", |d, s, _| super::flag(d, &mut s.log), |s| s.log),
    not_yet("dnstap"),
    not_yet("local"),
    not_yet("dns64"),
    not_yet("any"),
    not_yet("chaos"),
    here("loadbalance", super::loadbalance, |s| s.loadbalance),
    not_yet("tsig"),
    not_yet("rewrite"),
    here(
        "autopath",
        |d, s, dir| {
            let autopath = super::autopath(d, &s.zones, dir)?;
            once(&mut s.autopath, autopath)
        },
        |s| s.autopath.is_some(),
    ),
    not_yet("acl"),
    here(
        "cache",
        |d, s, _| once(&mut s.cache, super::cache::cache(d)?),
        |s| s.cache.is_some(),
    ),
    not_yet("header"),
    not_yet("dnssec"),
    not_yet("tls"),
    not_yet("minimal"),
    not_yet("template"),
    not_yet("transfer"),
    here(
        "hosts",
        |d, s, dir| {
            let hosts = super::hosts(d, &s.zones, dir)?;
            once(&mut s.hosts, hosts)
        },
        |s| s.hosts.is_some(),
    ),
    not_yet("route53"),
    not_yet("azure"),
    not_yet("clouddns"),
    not_yet("k8s_external"),
    here(
        "kubernetes",
        |d, s, dir| {
            let kubernetes = super::kubernetes(d, &s.zones, dir)?;
            once(&mut s.kubernetes, kubernetes)
        },
        |s| s.kubernetes.is_some(),
    ),
    not_yet("file"),
    not_yet("auto"),
    not_yet("secondary"),
    not_yet("etcd"),
    here(
        "loop",
        |d, s, _| {
            if !d.args.is_empty() || !d.block.is_empty() {
                return Err(super::directive_err(d, "loop", "takes no arguments"));
            }
            Ok(std::mem::replace(&mut s.detect_loop, true))
        },
        |s| s.detect_loop,
    ),
    here(
        "forward",
        |d, s, dir| once(&mut s.forward, super::forward::forward(d, dir)?),
        |s| s.forward.is_some(),
    ),
    not_yet("grpc"),
    not_yet("erratic"),
    not_yet("whoami"),
    not_yet("on"),
    not_yet("sign"),
    not_yet("view"),
    not_yet("nomad"),
];

/// A directive's place in the chain: its index in [`DIRECTIVES`].
pub fn order(name: &str) -> usize {
    DIRECTIVES
        .iter()
        .position(|e| e.name == name)
        .unwrap_or(DIRECTIVES.len())
}

/// The directives this build serves, in chain order.
pub fn supported() -> impl Iterator<Item = &'static str> {
    DIRECTIVES
        .iter()
        .filter(|e| e.setup.is_some())
        .map(|e| e.name)
}

/// The directives `server` has, in chain order.
pub fn enabled(server: &ServerConfig) -> impl Iterator<Item = &'static str> + '_ {
    DIRECTIVES.iter().filter_map(move |e| {
        e.setup
            .as_ref()
            .is_some_and(|s| (s.enabled)(server))
            .then_some(e.name)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_directive_once_and_the_chain_in_plugin_cfg_order() {
        let mut names: Vec<&str> = DIRECTIVES.iter().map(|e| e.name).collect();
        names.sort_unstable();
        let len = names.len();
        names.dedup();
        assert_eq!(names.len(), len, "a directive listed twice");
        // CoreDNS's order for the plugins of kubeadm's and k3s's Corefiles.
        let chain = [
            "prometheus",
            "errors",
            "log",
            "loadbalance",
            "autopath",
            "cache",
            "hosts",
            "kubernetes",
            "loop",
            "forward",
        ];
        assert!(chain.windows(2).all(|w| order(w[0]) < order(w[1])));
        assert_eq!(order("no-such-plugin"), DIRECTIVES.len());
    }
}
