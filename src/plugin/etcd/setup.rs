//! `etcd [ZONES...] { fallthrough [ZONES...]; path PATH; endpoint ENDPOINT...; credentials
//! USERNAME PASSWORD; tls [CERT KEY] [CA]; min-lease-ttl TTL; max-lease-ttl TTL }`, read as
//! CoreDNS's etcd setup reads it (`stubzones`, `debug` and `upstream` are accepted and do
//! nothing, as there).

use std::path::PathBuf;

use hickory_proto::rr::LowerName;

use super::Etcd;
use super::client::Mirror;
use crate::corefile::{ConfigError, Directive, Fallthrough, directive_err, plugin_zones, resolve};
use crate::plugin::Plugin;
use crate::plugin::setup::{Building, Context, Setup, SetupError};
use crate::plugin::tls_client::TlsFiles;

const NAME: &str = "etcd";

/// The `etcd` directive.
#[derive(Debug, Clone, PartialEq)]
pub struct EtcdConfig {
    pub zones: Vec<LowerName>,
    pub fallthrough: Fallthrough,
    /// `path`, without its leading slash: `skydns` by default.
    pub path: String,
    /// Base URLs (`http://localhost:2379` by default).
    pub endpoints: Vec<String>,
    pub credentials: Option<(String, String)>,
    pub tls: Option<TlsFiles>,
    pub min_lease_ttl: u32,
    pub max_lease_ttl: u32,
}

impl Setup for EtcdConfig {
    fn parse(d: &Directive, cx: &Context<'_>) -> Result<Self, ConfigError> {
        let mut config = Self {
            zones: plugin_zones(d, NAME, &d.args, cx.zones)?,
            fallthrough: Fallthrough::default(),
            path: "skydns".to_string(),
            endpoints: vec!["http://localhost:2379".to_string()],
            credentials: None,
            tls: None,
            min_lease_ttl: 30,
            max_lease_ttl: 86400,
        };
        let dir = cx.root.unwrap_or(cx.dir);
        for o in &d.block {
            let args = &o.args;
            match o.name.as_str() {
                "stubzones" | "debug" | "upstream" => {}
                "fallthrough" => config.fallthrough = Fallthrough::parse(args, o, NAME)?,
                "path" => {
                    let [path, ..] = args.as_slice() else {
                        return Err(arg_err(o));
                    };
                    config.path = path.clone();
                }
                "endpoint" => {
                    if args.is_empty() {
                        return Err(arg_err(o));
                    }
                    config.endpoints = args.clone();
                }
                "credentials" => match args.as_slice() {
                    [] => return Err(arg_err(o)),
                    [user, password] => config.credentials = Some((user.clone(), password.clone())),
                    _ => {
                        return Err(directive_err(
                            o,
                            NAME,
                            "credentials requires 2 arguments, username and password",
                        ));
                    }
                },
                "tls" => {
                    let files: Vec<PathBuf> = args.iter().map(|a| resolve(dir, a)).collect();
                    let tls = TlsFiles::from_args(&files).ok_or_else(|| arg_err(o))?;
                    // The files are read now, so a wrong one stops the start with this line.
                    tls.config().map_err(|e| directive_err(o, NAME, e))?;
                    config.tls = Some(tls);
                }
                "min-lease-ttl" | "max-lease-ttl" => {
                    let [value, ..] = args.as_slice() else {
                        return Err(arg_err(o));
                    };
                    let ttl = lease_ttl(value).map_err(|e| {
                        directive_err(o, NAME, format!("invalid {} value: {e}", o.name))
                    })?;
                    if o.name == "min-lease-ttl" {
                        config.min_lease_ttl = ttl;
                    } else {
                        config.max_lease_ttl = ttl;
                    }
                }
                other => {
                    return Err(directive_err(
                        o,
                        NAME,
                        format!("unknown property '{other}'"),
                    ));
                }
            }
        }
        let scheme = if config.tls.is_some() {
            "https"
        } else {
            "http"
        };
        config.endpoints = config
            .endpoints
            .iter()
            .map(|e| endpoint(e, scheme).map_err(|m| directive_err(d, NAME, m)))
            .collect::<Result<_, _>>()?;
        Ok(config)
    }

    fn build(&self, b: &mut Building<'_>) -> Result<(), SetupError> {
        let etcd = Etcd::new(self);
        // The system's certificates are read only for an `https://` endpoint.
        let https = self.endpoints.iter().any(|e| e.starts_with("https://"));
        let tls = match &self.tls {
            Some(files) => files.config(),
            None if https => TlsFiles::default().config(),
            None => TlsFiles::plain(),
        }
        .map_err(|e| SetupError::File(format!("etcd: {e}")))?;
        let mirror = Mirror::new(
            etcd.clone(),
            self.endpoints.clone(),
            self.credentials.clone(),
            tls,
        );
        b.background.push(Box::pin(mirror.run()));
        b.chain.push(Plugin::Etcd(etcd));
        Ok(())
    }
}

fn arg_err(d: &Directive) -> ConfigError {
    crate::corefile::arg_count_err(d, NAME)
}

/// An endpoint as a base URL: `http://` or `https://`, host and port, nothing after.
fn endpoint(e: &str, scheme: &str) -> Result<String, String> {
    let url = match e.split_once("://") {
        Some(("http" | "https", _)) => e.to_string(),
        Some(_) => {
            return Err(format!(
                "endpoint {e:?}: only http:// and https:// are supported"
            ));
        }
        None => format!("{scheme}://{e}"),
    };
    let uri: http::Uri = url
        .parse()
        .map_err(|_| format!("endpoint {e:?} is not a URL"))?;
    let Some(authority) = uri.authority() else {
        return Err(format!("endpoint {e:?} names no host"));
    };
    Ok(format!(
        "{}://{authority}",
        uri.scheme_str().unwrap_or(scheme)
    ))
}

/// A lease bound as CoreDNS reads it: seconds, or a Go duration.
fn lease_ttl(value: &str) -> Result<u32, String> {
    const FORMAT: &str = "invalid TTL format, use format like '30', '30s', '5m', '1h', or '2h30m'";
    let value = value.trim();
    if value.is_empty() {
        return Ok(0);
    }
    let seconds = if let Ok(n) = value.parse::<u64>() {
        n
    } else {
        if value.starts_with('-') {
            return Err("TTL must be non-negative".into());
        }
        crate::corefile::parse_duration(value)
            .map_err(|_| FORMAT.to_string())?
            .as_secs()
    };
    u32::try_from(seconds).map_err(|_| "TTL too large, maximum is 4294967295 seconds".to_string())
}
