//! `autopath [ZONES...] RESOLV-CONF`: where the search path it walks comes from.

use std::path::Path;

use hickory_proto::rr::LowerName;

use super::Autopath;
use crate::corefile::{ConfigError, Directive, directive_err, plugin_zones, resolve};
use crate::plugin::forward::setup::search_domains;
use crate::plugin::setup::{Building, Context, Setup, SetupError};

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
            .map(|text| search_domains(&text))
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

impl Setup for AutopathConfig {
    fn parse(d: &Directive, cx: &Context<'_>) -> Result<Self, ConfigError> {
        autopath(d, cx.zones, cx.dir)
    }

    fn build(&self, b: &mut Building<'_>) -> Result<(), SetupError> {
        b.autopath = Some(Autopath::new(self));
        Ok(())
    }
}
