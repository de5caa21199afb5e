//! The `metadata` directive: labels other plugins give a query (`kubernetes/namespace`,
//! `view/name`, ...), read where a Corefile names them as `{/LABEL}` (`log` formats,
//! `dnstap`'s `extra`), as CoreDNS's `metadata` collects them.
//!
//! A value is worked out when it is read, from the query and the plugin that provides it
//! ([`super::Phases::metadata`]): nothing is computed for queries no one logs. Without a
//! `metadata` directive whose zones hold the question, every label is empty, as in CoreDNS.

use hickory_proto::rr::LowerName;

use super::{Phases, Plugin};
use crate::corefile::{ConfigError, Directive, plugin_zones};
use crate::plugin::setup::{Building, Context, Setup, SetupError};

/// `metadata [ZONES...]`.
#[derive(Debug, Clone)]
pub struct Metadata {
    zones: crate::wire::Zones,
}

impl Setup for Metadata {
    fn parse(d: &Directive, cx: &Context<'_>) -> Result<Self, ConfigError> {
        let zones = plugin_zones(d, "metadata", &d.args, cx.zones)?;
        Ok(Self {
            zones: crate::wire::Zones::new(&zones),
        })
    }

    fn build(&self, b: &mut Building<'_>) -> Result<(), SetupError> {
        b.chain.push(Plugin::Metadata(self.clone()));
        Ok(())
    }
}

impl Phases for Metadata {}

/// A block's metadata for one query, as its consumers read it.
#[derive(Debug, Clone, Copy)]
pub struct Meta<'a> {
    plugins: &'a [Plugin],
}

impl<'a> Meta<'a> {
    pub fn new(plugins: &'a [Plugin]) -> Self {
        Self { plugins }
    }

    /// No metadata at all (a query no block took).
    pub fn none() -> Self {
        Self { plugins: &[] }
    }

    /// The value of `label` for `query` (of `name`) from `src` (perhaps empty): `None` when no
    /// plugin sets it, or the block's `metadata` does not cover the name.
    pub fn value(
        &self,
        label: &str,
        name: &LowerName,
        src: std::net::SocketAddr,
        query: &[u8],
    ) -> Option<String> {
        let collected = self
            .plugins
            .iter()
            .any(|p| matches!(p, Plugin::Metadata(m) if m.zones.holds(name)));
        if !collected {
            return None;
        }
        // A label a plugin sets, even to nothing, prints as it is; one none sets is `-`.
        self.plugins
            .iter()
            .find_map(|p| p.metadata(label, name, src, query))
    }
}

/// The labels CoreDNS's `kubernetes` gives a question's name under `zone`: its kind (`svc`,
/// `pod`), namespace, service, endpoint, port and protocol (of `_port._proto.svc.ns.svc.zone`),
/// or `parse-error` when the name is none of those.
pub fn kubernetes_label(
    label: &str,
    name: &LowerName,
    zone: &LowerName,
    zonal: bool,
) -> Option<String> {
    let labels = name.num_labels().saturating_sub(zone.num_labels()) as usize;
    let name = name.to_string();
    let segs: Vec<&str> = name.trim_end_matches('.').split('.').take(labels).collect();
    let (mut kind, mut namespace, mut service) = ("", "", "");
    let (mut endpoint, mut port, mut protocol) = ("", "", "");
    let mut error = None;
    let mut rest = segs.as_slice();
    if let [before @ .., last] = rest {
        kind = last;
        rest = before;
        if kind != "svc" && kind != "pod" {
            error = Some("invalid request");
        }
    }
    if error.is_none() {
        if let [before @ .., ns] = rest {
            namespace = ns;
            rest = before;
        }
        if let [before @ .., svc] = rest {
            service = svc;
            rest = before;
        }
        match rest {
            [] => {}
            [one] => endpoint = one,
            [p, proto] => {
                port = p.trim_start_matches('_');
                protocol = proto.trim_start_matches('_');
            }
            // `zonal`: TOPOLOGY-ZONE.pin|prefer._zone.SERVICE.NAMESPACE.svc names a service.
            [_, .., "pin" | "prefer", "_zone"] if zonal && kind == "svc" => {}
            _ => error = Some("invalid request"),
        }
    }
    if label == "kubernetes/parse-error" {
        return error.map(str::to_string);
    }
    if error.is_some() {
        return None;
    }
    let value = match label {
        "kubernetes/kind" => kind,
        "kubernetes/namespace" => namespace,
        "kubernetes/service" => service,
        "kubernetes/endpoint" => endpoint,
        "kubernetes/port-name" => port,
        "kubernetes/protocol" => protocol,
        _ => return None,
    };
    Some(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lower(s: &str) -> LowerName {
        LowerName::from(hickory_proto::rr::Name::from_ascii(s).unwrap())
    }

    #[test]
    fn kubernetes_labels_of_a_name_as_coredns_parses_it() {
        let zone = lower("cluster.local.");
        let of = |name: &str, label: &str| kubernetes_label(label, &lower(name), &zone, false);
        let svc = "web.prod.svc.cluster.local.";
        assert_eq!(of(svc, "kubernetes/kind").as_deref(), Some("svc"));
        assert_eq!(of(svc, "kubernetes/namespace").as_deref(), Some("prod"));
        assert_eq!(of(svc, "kubernetes/service").as_deref(), Some("web"));
        assert_eq!(of(svc, "kubernetes/endpoint").as_deref(), Some(""));
        let srv = "_http._tcp.web.prod.svc.cluster.local.";
        assert_eq!(of(srv, "kubernetes/port-name").as_deref(), Some("http"));
        assert_eq!(of(srv, "kubernetes/protocol").as_deref(), Some("tcp"));
        assert_eq!(
            of("web-0.web.prod.svc.cluster.local.", "kubernetes/endpoint").as_deref(),
            Some("web-0")
        );
        assert_eq!(
            of("10-0-0-1.prod.pod.cluster.local.", "kubernetes/kind").as_deref(),
            Some("pod")
        );
        let bad = "a.b.c.d.prod.svc.cluster.local.";
        assert_eq!(
            of(bad, "kubernetes/parse-error").as_deref(),
            Some("invalid request")
        );
        assert_eq!(of(bad, "kubernetes/namespace"), None);
        assert_eq!(
            of("cluster.local.", "kubernetes/namespace").as_deref(),
            Some("")
        );
        assert_eq!(
            of("x.cluster.local.", "kubernetes/parse-error").as_deref(),
            Some("invalid request")
        );
        assert_eq!(of(svc, "kubernetes/parse-error"), None);
        // Under `zonal`, a zone-scoped name names its service; without, it is too long.
        let zonal = "us-west-2a.pin._zone.db.prod.svc.cluster.local.";
        let with = |label: &str| kubernetes_label(label, &lower(zonal), &zone, true);
        assert_eq!(with("kubernetes/service").as_deref(), Some("db"));
        assert_eq!(with("kubernetes/namespace").as_deref(), Some("prod"));
        assert_eq!(with("kubernetes/endpoint").as_deref(), Some(""));
        assert_eq!(with("kubernetes/parse-error"), None);
        assert_eq!(
            of(zonal, "kubernetes/parse-error").as_deref(),
            Some("invalid request")
        );
        let unknown = "us-west-2a.near._zone.db.prod.svc.cluster.local.";
        assert_eq!(
            kubernetes_label("kubernetes/parse-error", &lower(unknown), &zone, true).as_deref(),
            Some("invalid request")
        );
    }
}
