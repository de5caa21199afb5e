//! The `route53` plugin: zones served from AWS Route 53's hosted zones, as CoreDNS's
//! `route53` plugin serves them.
//!
//! `route53 [ZONE:HOSTED_ZONE_ID...] { aws_access_key [ID SECRET]; aws_endpoint ENDPOINT;
//! credentials PROFILE [FILENAME]; fallthrough [ZONES...]; refresh DURATION }`. Every `refresh`
//! (1m) each hosted zone's record sets are listed ([`aws`]) and built into a zone, answered as
//! `file` answers one (alias records, which have no values, are left out; a set that does not
//! read is logged and left out). Several hosted zones under one name are asked in the order
//! given: the first with an answer or NODATA answers, else the last one's NXDOMAIN. Until a
//! name's zones are first listed it answers SERVFAIL (CoreDNS does not start until then);
//! after that a failed listing keeps what was served.

pub mod aws;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{LowerName, Name};

use super::file::zone::Zone;
use super::file::{Slot, serve_zone_fast, text};
use super::setup::{Building, Context, Setup, SetupError};
use super::{Fast, Outcome, Phases, Plugin, Reply, Request};
use crate::corefile::{
    ConfigError, Directive, Fallthrough, arg_count_err, directive_err, parse_duration, parse_zone,
    resolve,
};
use crate::table::{NameKey, RecordTable};
use crate::wire::Zones;
use aws::{CredentialSource, RecordSet, Route53Api};

const NAME: &str = "route53";
const DEFAULT_REFRESH: Duration = Duration::from_secs(60);

/// The `route53` line of a block.
#[derive(Debug, Clone)]
pub struct Route53Config {
    /// Each name and its hosted zones' IDs, in the order given.
    pub zones: Vec<(LowerName, Vec<String>)>,
    pub endpoint: Option<String>,
    pub credentials: CredentialSource,
    pub fallthrough: Fallthrough,
    pub refresh: Duration,
}

impl Setup for Route53Config {
    fn parse(d: &Directive, cx: &Context<'_>) -> Result<Self, ConfigError> {
        let mut zones: Vec<(LowerName, Vec<String>)> = Vec::new();
        let mut seen: Vec<&str> = Vec::new();
        for arg in &d.args {
            let invalid = || directive_err(d, NAME, format!("invalid zone {arg:?}"));
            let (name, id) = arg.split_once(':').ok_or_else(invalid)?;
            if name.is_empty() || id.is_empty() {
                return Err(invalid());
            }
            if seen.contains(&arg.as_str()) {
                return Err(directive_err(d, NAME, format!("conflict zone {arg:?}")));
            }
            seen.push(arg);
            let name = parse_zone(name).map_err(|m| directive_err(d, NAME, m))?;
            match zones.iter_mut().find(|(n, _)| *n == name) {
                Some((_, ids)) => ids.push(id.to_string()),
                None => zones.push((name, vec![id.to_string()])),
            }
        }
        let mut config = Self {
            zones,
            endpoint: None,
            credentials: CredentialSource::default(),
            fallthrough: Fallthrough::default(),
            refresh: DEFAULT_REFRESH,
        };
        for o in &d.block {
            match o.name.as_str() {
                "aws_access_key" => {
                    let [id, secret, ..] = o.args.as_slice() else {
                        return Err(directive_err(
                            o,
                            NAME,
                            format!("invalid access key: '{:?}'", o.args),
                        ));
                    };
                    tracing::warn!(
                        "route53: aws_access_key in the Corefile is deprecated: use AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or a credentials file"
                    );
                    config.credentials.fixed = Some((id.clone(), secret.clone()));
                }
                "aws_endpoint" => {
                    let [endpoint, ..] = o.args.as_slice() else {
                        return Err(arg_count_err(o, NAME));
                    };
                    let uri: http::Uri = endpoint.parse().map_err(|_| {
                        directive_err(o, NAME, format!("aws_endpoint {endpoint:?} is not a URL"))
                    })?;
                    if !matches!(uri.scheme_str(), Some("http" | "https")) {
                        return Err(directive_err(
                            o,
                            NAME,
                            format!("aws_endpoint {endpoint:?}: only http:// and https://"),
                        ));
                    }
                    config.endpoint = Some(endpoint.clone());
                }
                // Accepted and ignored, as CoreDNS does.
                "upstream" => {}
                "credentials" => {
                    let [profile, rest @ ..] = o.args.as_slice() else {
                        return Err(arg_count_err(o, NAME));
                    };
                    config.credentials.profile = Some(profile.clone());
                    config.credentials.file = rest.first().map(|f| resolve(cx.dir, f));
                }
                "fallthrough" => config.fallthrough = Fallthrough::parse(&o.args, o, NAME)?,
                "refresh" => {
                    let [value, ..] = o.args.as_slice() else {
                        return Err(arg_count_err(o, NAME));
                    };
                    // Seconds when no unit is given.
                    let refresh = match value.parse::<u64>() {
                        Ok(secs) => Duration::from_secs(secs),
                        Err(_) => parse_duration(value).map_err(|m| {
                            directive_err(o, NAME, format!("Unable to parse duration: {m}"))
                        })?,
                    };
                    if refresh.is_zero() {
                        return Err(directive_err(
                            o,
                            NAME,
                            format!("refresh interval must be greater than 0: {value:?}"),
                        ));
                    }
                    config.refresh = refresh;
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
        Ok(config)
    }

    fn build(&self, b: &mut Building<'_>) -> Result<(), SetupError> {
        let api = Route53Api::new(self.endpoint.as_deref(), self.credentials.clone())
            .map_err(|e| SetupError::File(format!("route53: {e}")))?;
        let names: Vec<LowerName> = self.zones.iter().map(|(n, _)| n.clone()).collect();
        let hosted: Vec<Vec<(String, Slot)>> = self
            .zones
            .iter()
            .map(|(_, ids)| {
                ids.iter()
                    .map(|id| (id.clone(), Arc::new(RecordTable::new(None))))
                    .collect()
            })
            .collect();
        let ready = Arc::new(AtomicBool::new(false));
        let plugin = Route53 {
            zones: Zones::new(&names),
            slots: hosted
                .iter()
                .map(|h| h.iter().map(|(_, s)| Arc::clone(s)).collect())
                .collect(),
            fallthrough: self.fallthrough.clone(),
        };
        let watched: Vec<(LowerName, Vec<(String, Slot)>)> =
            names.into_iter().zip(hosted).collect();
        b.background.push(Box::pin(refresh(
            Arc::new(api),
            watched,
            self.refresh,
            Arc::clone(&ready),
        )));
        b.ready.push((NAME, ready));
        b.chain.push(Plugin::Route53(Box::new(plugin)));
        Ok(())
    }
}

/// The plugin as it serves queries.
#[derive(Debug)]
pub struct Route53 {
    zones: Zones,
    /// By zone name, each of its hosted zones in the order given.
    slots: Vec<Vec<Slot>>,
    fallthrough: Fallthrough,
}

impl Phases for Route53 {
    const ANSWERS: bool = true;

    fn serve(&self, req: &Request) -> Outcome {
        let Some(i) = self.zones.longest_index(&req.lower) else {
            return Outcome::Next;
        };
        let key = NameKey::from(&req.lower);
        let mut last = None;
        for slot in &self.slots[i] {
            let data = slot.guard();
            let Some(zone) = data.as_ref().as_deref() else {
                let mut failed = Reply::authoritative(ResponseCode::ServFail);
                failed.authoritative = false;
                return Outcome::Reply(failed);
            };
            let answer = zone.lookup(key.as_bytes(), req.qtype, req.dnssec_ok);
            let nodata = answer.reply.rcode == ResponseCode::NoError && !answer.missing;
            if !answer.reply.answers.is_empty() || nodata {
                return Outcome::Reply(answer.reply);
            }
            last = Some(answer);
        }
        match last {
            Some(answer) if answer.missing && self.fallthrough.through(&req.lower) => Outcome::Next,
            Some(answer) => Outcome::Reply(answer.reply),
            None => Outcome::Next,
        }
    }

    /// A name with one hosted zone is answered from its bytes, as `file` answers; with
    /// several, the full way.
    fn serve_fast(&self, query: &crate::wire::LightQuery, out: &mut Vec<u8>) -> Fast {
        let Some(i) = self.zones.longest_index_wire(query.key()) else {
            return Fast::Next;
        };
        let [slot] = self.slots[i].as_slice() else {
            return Fast::Slow;
        };
        let data = slot.guard();
        serve_zone_fast(data.as_ref().as_deref(), query, &self.fallthrough, out)
    }
}

/// Lists every hosted zone now and every `every` after, publishing each one that listed.
async fn refresh(
    api: Arc<Route53Api>,
    zones: Vec<(LowerName, Vec<(String, Slot)>)>,
    every: Duration,
    ready: Arc<AtomicBool>,
) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let mut all = true;
        for (name, hosted) in &zones {
            for (id, slot) in hosted {
                match api.record_sets(id).await {
                    Ok(sets) => {
                        let origin = Name::from(name.clone());
                        match zone_of(&origin, &sets) {
                            Ok(zone) => slot.publish(Some(Arc::new(zone))),
                            Err(error) => {
                                all = false;
                                tracing::error!(zone = %name, id, %error, "route53: the hosted zone does not make a zone");
                            }
                        }
                    }
                    Err(error) => {
                        all = false;
                        tracing::error!(zone = %name, id, %error, "route53: failed to list the hosted zone's records");
                    }
                }
            }
        }
        if all && !ready.swap(true, Ordering::Relaxed) {
            tracing::info!("route53: every hosted zone listed");
        }
    }
}

/// The zone `origin` of a hosted zone's record sets.
pub fn zone_of(origin: &Name, sets: &[RecordSet]) -> Result<Zone, String> {
    let mut records = Vec::new();
    for set in sets {
        for value in &set.values {
            let line = unescape(&set.name).and_then(|name| {
                let value = unescape(value)?;
                Ok(format!("{name} {} IN {} {value}\n", set.ttl, set.rtype))
            });
            // Names in values are absolute, whether or not they end in a dot, as CoreDNS
            // reads them (with the root as the origin).
            let parsed = line.and_then(|line| {
                text::parse(&line, std::path::Path::new("route53"), &Name::root())
                    .map_err(|e| e.message)
            });
            match parsed {
                Ok(mut r) => records.append(&mut r),
                // As CoreDNS: a set that does not read is logged and left out.
                Err(error) => {
                    tracing::warn!(name = set.name, rtype = set.rtype, %error, "route53: record set left out");
                }
            }
        }
    }
    Zone::new(origin, records)
}

/// Route 53's octal escapes (`\052` for `*`) taken back, as CoreDNS takes them: letters,
/// digits, `-`, `.`, and `*` as the leftmost character; any other escaped character is an
/// error.
pub fn unescape(s: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = s;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        let code = rest
            .get(at + 1..at + 4)
            .filter(|c| c.bytes().all(|b| (b'0'..=b'7').contains(&b)))
            .ok_or_else(|| format!("invalid escape sequence in {s:?}"))?;
        let c = char::from(u8::from_str_radix(code, 8).map_err(|e| e.to_string())?);
        match c {
            'a'..='z' | '0'..='9' | '-' | '.' => {}
            '*' if out.is_empty() => {}
            '*' => return Err("`*' only supported as wildcard (leftmost label)".into()),
            _ => return Err(format!("invalid character: \\{code}")),
        }
        out.push(c);
        rest = &rest[at + 4..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::testing::settings;

    #[test]
    fn lines_read_as_coredns_reads_them() {
        let c: Route53Config = settings(
            "route53 example.org.:Z1 example.org.:Z2 example.net:Z3 {\n aws_access_key AKID SECRET\n \
             aws_endpoint http://127.0.0.1:5000\n credentials dns /etc/aws/credentials\n \
             fallthrough example.net\n refresh 90\n upstream\n}",
        )
        .unwrap();
        let zones: Vec<(String, Vec<String>)> = c
            .zones
            .iter()
            .map(|(n, ids)| (n.to_string(), ids.clone()))
            .collect();
        assert_eq!(
            zones,
            [
                (
                    "example.org.".to_string(),
                    vec!["Z1".to_string(), "Z2".to_string()]
                ),
                ("example.net.".to_string(), vec!["Z3".to_string()]),
            ]
        );
        assert_eq!(c.credentials.fixed, Some(("AKID".into(), "SECRET".into())));
        assert_eq!(c.credentials.profile.as_deref(), Some("dns"));
        assert_eq!(
            c.credentials.file.as_deref(),
            Some(std::path::Path::new("/etc/aws/credentials"))
        );
        assert_eq!(c.endpoint.as_deref(), Some("http://127.0.0.1:5000"));
        assert_eq!(c.refresh, Duration::from_secs(90));
        let c: Route53Config = settings("route53 example.org.:Z1 {\n refresh 3m\n}").unwrap();
        assert_eq!(c.refresh, Duration::from_secs(180));
        assert!(c.credentials.fixed.is_none());
    }

    #[test]
    fn bad_lines_are_refused_with_coredns_reasons() {
        for (lines, want) in [
            ("route53 example.org", "invalid zone \"example.org\""),
            ("route53 :Z1", "invalid zone \":Z1\""),
            ("route53 example.org.:", "invalid zone"),
            ("route53 a.:Z1 a.:Z1", "conflict zone \"a.:Z1\""),
            (
                "route53 a.:Z1 {\n aws_access_key ONLY\n}",
                "invalid access key",
            ),
            ("route53 a.:Z1 {\n aws_endpoint\n}", "Wrong argument count"),
            ("route53 a.:Z1 {\n credentials\n}", "Wrong argument count"),
            ("route53 a.:Z1 {\n refresh\n}", "Wrong argument count"),
            (
                "route53 a.:Z1 {\n refresh soon\n}",
                "Unable to parse duration",
            ),
            ("route53 a.:Z1 {\n refresh 0\n}", "must be greater than 0"),
            ("route53 a.:Z1 {\n nope\n}", "unknown property \"nope\""),
        ] {
            let err = settings::<Route53Config>(lines).expect_err(lines);
            assert!(err.contains(want), "{lines}: {err}");
        }
    }

    #[test]
    fn escapes_are_taken_back_as_coredns_takes_them() {
        for (input, want) in [
            ("example.org.", Ok("example.org.")),
            ("\\052.example.org.", Ok("*.example.org.")),
            ("a\\055b.example.org.", Ok("a-b.example.org.")),
            ("a\\052.example.org.", Err("wildcard")),
            ("\\137sip.example.org.", Err("invalid character: \\137")),
            ("bad\\05", Err("invalid escape")),
        ] {
            match (unescape(input), want) {
                (Ok(got), Ok(want)) => assert_eq!(got, want),
                (Err(got), Err(want)) => assert!(got.contains(want), "{input}: {got}"),
                (got, want) => panic!("{input}: {got:?}, wanted {want:?}"),
            }
        }
    }

    #[test]
    fn record_sets_make_a_zone_and_bad_ones_are_left_out() {
        let set = |name: &str, rtype: &str, values: &[&str]| RecordSet {
            name: name.into(),
            rtype: rtype.into(),
            ttl: 300,
            values: values.iter().map(|v| v.to_string()).collect(),
        };
        let origin = Name::from_ascii("example.org.").unwrap();
        let zone = zone_of(
            &origin,
            &[
                set(
                    "example.org.",
                    "SOA",
                    &["ns-1.awsdns.com. hostmaster.example.org. 1 7200 900 1209600 86400"],
                ),
                set(
                    "example.org.",
                    "NS",
                    &["ns-1.awsdns.com.", "ns-2.awsdns.net."],
                ),
                set("www.example.org.", "A", &["192.0.2.1", "192.0.2.2"]),
                set("\\052.wild.example.org.", "TXT", &["\"wild\""]),
                set("bad.example.org.", "A", &["not-an-address"]),
                set("\\137x.example.org.", "A", &["192.0.2.3"]),
                set("alias.example.org.", "A", &[]),
            ],
        )
        .unwrap();
        let key = |n: &str| NameKey::from(&LowerName::from(Name::from_ascii(n).unwrap()));
        let www = zone.lookup(
            key("www.example.org.").as_bytes(),
            hickory_proto::rr::RecordType::A,
            false,
        );
        assert_eq!(www.reply.answers.count, 2);
        let wild = zone.lookup(
            key("x.wild.example.org.").as_bytes(),
            hickory_proto::rr::RecordType::TXT,
            false,
        );
        assert_eq!(wild.reply.answers.count, 1);
        let bad = zone.lookup(
            key("bad.example.org.").as_bytes(),
            hickory_proto::rr::RecordType::A,
            false,
        );
        assert_eq!(bad.reply.rcode, ResponseCode::NXDomain);
        // Without a SOA there is no zone.
        assert!(zone_of(&origin, &[set("www.example.org.", "A", &["192.0.2.1"])]).is_err());
    }
}
