//! `bind ADDRESS|IFACE ... { except ADDRESS|IFACE ... }`: the addresses a server block listens
//! on, interfaces resolved when the Corefile is read. It may repeat: each adds its addresses,
//! and its `except` takes only from its own.

use std::net::IpAddr;

use super::setup::{Context, Setup};
use crate::corefile::{ConfigError, Directive, directive_err};

/// The addresses named; none listens on every address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bind(pub Vec<IpAddr>);

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

impl Setup for Bind {
    fn parse(d: &Directive, _: &Context<'_>) -> Result<Self, ConfigError> {
        bind(d).map(Bind)
    }

    fn merge(&mut self, later: Self) -> bool {
        for ip in later.0 {
            if !self.0.contains(&ip) {
                self.0.push(ip);
            }
        }
        true
    }
}
