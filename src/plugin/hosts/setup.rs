//! `hosts [FILE [ZONES...]] { ... }`: CoreDNS's options and defaults; building it reads the
//! file and starts watching it.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use hickory_proto::rr::{LowerName, Name};

use super::{Hosts, Publisher};
use crate::corefile::{
    ConfigError, Directive, Fallthrough, directive_err, host_name, number, one_arg, parse_duration,
    plugin_zones, resolve,
};
use crate::plugin::Plugin;
use crate::plugin::setup::{Building, Context, Setup, SetupError};
use crate::source::Source;
use crate::source::hosts::HostsFile;

/// The `hosts` directive.
#[derive(Debug, Clone)]
pub struct HostsConfig {
    /// The hosts file: `/etc/hosts` unless the directive names another, as in CoreDNS.
    pub file: Option<PathBuf>,
    pub zones: Vec<LowerName>,
    pub inline: Vec<(IpAddr, Vec<Name>)>,
    pub ttl: u32,
    pub reload: Duration,
    pub no_reverse: bool,
    pub fallthrough: Fallthrough,
    /// `fallthrough_unsupported`: queries of other types than A, AAAA and PTR pass on too
    /// (within `fallthrough`'s zones), even for a name the hosts data has.
    pub fallthrough_unsupported: bool,
}

/// CoreDNS's hosts file when the directive names none.
const HOSTS_DEFAULT_FILE: &str = "/etc/hosts";
/// CoreDNS's default TTL for the hosts plugin.
const HOSTS_DEFAULT_TTL: u32 = 3600;
/// CoreDNS's default interval for re-reading a hosts file.
const HOSTS_DEFAULT_RELOAD: Duration = Duration::from_secs(5);

fn hosts(d: &Directive, block_zones: &[LowerName], dir: &Path) -> Result<HostsConfig, ConfigError> {
    const NAME: &str = "hosts";
    let (file, zone_args) = match d.args.split_first() {
        Some((f, rest)) => (Some(resolve(dir, f)), rest),
        None => (Some(PathBuf::from(HOSTS_DEFAULT_FILE)), &[][..]),
    };
    let mut h = HostsConfig {
        file,
        zones: plugin_zones(d, NAME, zone_args, block_zones)?,
        inline: Vec::new(),
        ttl: HOSTS_DEFAULT_TTL,
        reload: HOSTS_DEFAULT_RELOAD,
        no_reverse: false,
        fallthrough: Fallthrough::default(),
        fallthrough_unsupported: false,
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
            "fallthrough_unsupported" => {
                if !o.args.is_empty() {
                    return Err(directive_err(
                        o,
                        NAME,
                        "Wrong argument count or unexpected line ending after 'fallthrough_unsupported'",
                    ));
                }
                h.fallthrough_unsupported = true;
            }
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
    if h.fallthrough_unsupported && !h.fallthrough.is_set() {
        return Err(directive_err(
            d,
            NAME,
            "fallthrough_unsupported requires fallthrough",
        ));
    }
    Ok(h)
}

impl Setup for HostsConfig {
    fn parse(d: &Directive, cx: &Context<'_>) -> Result<Self, ConfigError> {
        hosts(d, cx.zones, cx.dir)
    }

    fn build(&self, b: &mut Building<'_>) -> Result<(), SetupError> {
        let (hosts, mut writer) = Hosts::new(self);
        if let Some(path) = &self.file {
            let mut file: Box<dyn Source<Publisher>> = Box::new(HostsFile {
                path: path.clone(),
                reload: self.reload,
            });
            file.load(&mut writer)?;
            // Loaded whole: nothing for `ready` to wait on.
            let loaded = Arc::new(AtomicBool::new(true));
            b.background.push(file.run(writer, loaded));
        }
        b.chain.push(Plugin::Hosts(hosts));
        Ok(())
    }
}
