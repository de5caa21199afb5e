//! `geoip DBFILE { edns-subnet }`: metadata about the client's address from a MaxMind DB
//! (`.mmdb`) file, as CoreDNS's `geoip` plugin gives it: `geoip/city/name`,
//! `geoip/country/code`, `geoip/country/name`, `geoip/country/is_in_european_union`,
//! `geoip/continent/code`, `geoip/continent/name`, `geoip/subdivisions/code`,
//! `geoip/latitude`, `geoip/longitude`, `geoip/timezone`, `geoip/postalcode` (a City database)
//! and `geoip/asn/number`, `geoip/asn/org` (an ASN database). `view` selects blocks with them,
//! `log` and `dnstap` write them. With `edns-subnet` the address of the query's client subnet
//! option, when it has one, is looked up instead of the client's.
//!
//! The database is read whole when the Corefile is; values are looked up when a reader asks.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use hickory_proto::rr::LowerName;
use maxminddb::{Reader, geoip2};

use super::Phases;
use crate::corefile::{ConfigError, Directive, directive_err, resolve};
use crate::plugin::setup::{Building, Context, Setup, SetupError};
use crate::wire;

const NAME: &str = "geoip";

/// The `geoip` directive: the database, read.
#[derive(Clone)]
pub struct GeoipConfig {
    pub path: PathBuf,
    pub edns_subnet: bool,
    db: Arc<Db>,
}

impl std::fmt::Debug for GeoipConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeoipConfig")
            .field("path", &self.path)
            .field("edns_subnet", &self.edns_subnet)
            .finish_non_exhaustive()
    }
}

/// A database and the schemas it answers.
struct Db {
    reader: Reader<Vec<u8>>,
    city: bool,
    asn: bool,
}

impl Setup for GeoipConfig {
    fn parse(d: &Directive, cx: &Context<'_>) -> Result<Self, ConfigError> {
        let [file] = d.args.as_slice() else {
            return Err(directive_err(
                d,
                NAME,
                "Wrong argument count or unexpected line ending after 'geoip'",
            ));
        };
        let mut edns_subnet = false;
        for o in &d.block {
            match o.name.as_str() {
                "edns-subnet" if o.args.is_empty() => edns_subnet = true,
                other => {
                    return Err(directive_err(
                        o,
                        NAME,
                        format!("unknown property {other:?}"),
                    ));
                }
            }
        }
        let path = resolve(cx.dir, file);
        let reader = Reader::open_readfile(&path)
            .map_err(|e| directive_err(d, NAME, format!("failed to open database file: {e}")))?;
        // The schemas as CoreDNS tells them: by the database's type.
        let kind = reader.metadata().database_type.clone();
        let city = ["City", "Enterprise"].iter().any(|t| kind.contains(t));
        let asn = ["ASN", "ISP"].iter().any(|t| kind.contains(t));
        if !city && !asn {
            return Err(directive_err(
                d,
                NAME,
                format!(
                    "database does not provide any supported schema (city, asn): its type is {kind:?}"
                ),
            ));
        }
        Ok(Self {
            path,
            edns_subnet,
            db: Arc::new(Db { reader, city, asn }),
        })
    }

    fn build(&self, b: &mut Building<'_>) -> Result<(), SetupError> {
        b.chain.push(super::Plugin::Geoip(Geoip {
            db: Arc::clone(&self.db),
            edns_subnet: self.edns_subnet,
        }));
        Ok(())
    }
}

/// The plugin: it answers nothing, and gives metadata.
#[derive(Clone)]
pub struct Geoip {
    db: Arc<Db>,
    edns_subnet: bool,
}

impl std::fmt::Debug for Geoip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Geoip")
            .field("city", &self.db.city)
            .field("asn", &self.db.asn)
            .finish_non_exhaustive()
    }
}

/// The address of the query's EDNS client subnet option, if it has one.
fn client_subnet(query: &[u8]) -> Option<IpAddr> {
    let opt = wire::last_opt(query)?;
    let data = query.get(opt.data)?;
    let (_, start, end) = wire::edns_options(data)
        .into_iter()
        .find(|(code, _, _)| *code == 8)?;
    let option = data.get(start + 4..end)?;
    let family = u16::from_be_bytes([*option.first()?, *option.get(1)?]);
    let address = option.get(4..)?;
    match family {
        1 if address.len() <= 4 => {
            let mut octets = [0u8; 4];
            octets[..address.len()].copy_from_slice(address);
            Some(IpAddr::from(octets))
        }
        2 if address.len() <= 16 => {
            let mut octets = [0u8; 16];
            octets[..address.len()].copy_from_slice(address);
            Some(IpAddr::from(octets))
        }
        _ => None,
    }
}

impl Geoip {
    fn city(&self, ip: IpAddr, field: &str) -> Option<String> {
        let found = self.db.reader.lookup(ip).ok()?;
        // An address the database lacks gives empty values, as CoreDNS sets them.
        let city: geoip2::City<'_> = found.decode().ok()?.unwrap_or_default();
        let text = |s: Option<&str>| s.unwrap_or_default().to_string();
        Some(match field {
            "city/name" => text(city.city.names.english),
            "country/name" => text(city.country.names.english),
            "continent/name" => text(city.continent.names.english),
            "country/code" => text(city.country.iso_code),
            "continent/code" => text(city.continent.code),
            "subdivisions/code" => city
                .subdivisions
                .iter()
                .map(|s| s.iso_code.unwrap_or_default())
                .collect::<Vec<_>>()
                .join(","),
            "country/is_in_european_union" => city
                .country
                .is_in_european_union
                .unwrap_or(false)
                .to_string(),
            "latitude" => city
                .location
                .latitude
                .map(|l| l.to_string())
                .unwrap_or_default(),
            "longitude" => city
                .location
                .longitude
                .map(|l| l.to_string())
                .unwrap_or_default(),
            "timezone" => text(city.location.time_zone),
            "postalcode" => text(city.postal.code),
            _ => return None,
        })
    }

    fn asn(&self, ip: IpAddr, field: &str) -> Option<String> {
        let found = self.db.reader.lookup(ip).ok()?;
        let asn: Option<geoip2::Asn<'_>> = found.decode().ok()?;
        let number = asn.as_ref().and_then(|a| a.autonomous_system_number);
        let org = asn.as_ref().and_then(|a| a.autonomous_system_organization);
        Some(match field {
            "asn/number" => number.unwrap_or(0).to_string(),
            "asn/org" => org.unwrap_or_default().to_string(),
            _ => return None,
        })
    }
}

impl Phases for Geoip {
    fn metadata(
        &self,
        label: &str,
        _: &LowerName,
        src: SocketAddr,
        query: &[u8],
    ) -> Option<String> {
        let field = label.strip_prefix("geoip/")?;
        let ip = self
            .edns_subnet
            .then(|| client_subnet(query))
            .flatten()
            .unwrap_or(src.ip().to_canonical());
        if field.starts_with("asn/") {
            return self.db.asn.then(|| self.asn(ip, field)).flatten();
        }
        self.db.city.then(|| self.city(ip, field)).flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::testing::settings;

    fn data(file: &str) -> String {
        format!("{}/tests/data/geoip/{file}", env!("CARGO_MANIFEST_DIR"))
    }

    fn plugin(lines: &str) -> Geoip {
        let c: GeoipConfig = settings(lines).unwrap();
        Geoip {
            db: c.db,
            edns_subnet: c.edns_subnet,
        }
    }

    #[test]
    fn city_and_asn_labels_as_coredns_gives_them() {
        let city = plugin(&format!("geoip {}", data("GeoLite2-City-Test.mmdb")));
        let name = LowerName::from(hickory_proto::rr::Name::root());
        let of = |g: &Geoip, label: &str, ip: &str| {
            g.metadata(
                label,
                &name,
                SocketAddr::new(ip.parse().unwrap(), 5353),
                &[],
            )
        };
        for (label, want) in [
            ("geoip/city/name", "Boxford"),
            ("geoip/country/code", "GB"),
            ("geoip/country/name", "United Kingdom"),
            ("geoip/continent/code", "EU"),
            ("geoip/subdivisions/code", "ENG,WBK"),
            ("geoip/latitude", "51.75"),
            ("geoip/longitude", "-1.25"),
            ("geoip/timezone", "Europe/London"),
            ("geoip/postalcode", "OX1"),
            ("geoip/country/is_in_european_union", "false"),
        ] {
            assert_eq!(
                of(&city, label, "2.125.160.216").as_deref(),
                Some(want),
                "{label}"
            );
        }
        assert_eq!(
            of(&city, "geoip/city/name", "89.160.20.112").as_deref(),
            Some("Linköping")
        );
        assert_eq!(
            of(&city, "geoip/country/is_in_european_union", "89.160.20.112").as_deref(),
            Some("true")
        );
        // Not in the database: empty values, as CoreDNS sets them.
        assert_eq!(
            of(&city, "geoip/city/name", "10.0.0.1").as_deref(),
            Some("")
        );
        assert_eq!(
            of(&city, "geoip/country/is_in_european_union", "10.0.0.1").as_deref(),
            Some("false")
        );
        // Another plugin's label, the other schema: nothing.
        assert_eq!(of(&city, "kubernetes/namespace", "2.125.160.216"), None);
        assert_eq!(of(&city, "geoip/asn/number", "2.125.160.216"), None);
        let asn = plugin(&format!("geoip {}", data("GeoLite2-ASN-Test.mmdb")));
        assert_eq!(
            of(&asn, "geoip/asn/number", "1.128.0.1").as_deref(),
            Some("1221")
        );
        assert_eq!(
            of(&asn, "geoip/asn/org", "1.128.0.1").as_deref(),
            Some("Telstra Pty Ltd")
        );
        assert_eq!(of(&asn, "geoip/city/name", "1.128.0.1"), None);
    }

    #[test]
    fn edns_subnet_looks_up_the_client_subnet() {
        use hickory_proto::op::{Edns, Message, Query};
        use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsOption};
        let g = plugin(&format!(
            "geoip {} {{\n edns-subnet\n}}",
            data("GeoLite2-City-Test.mmdb")
        ));
        let mut msg = Message::new();
        msg.add_query(Query::query(
            hickory_proto::rr::Name::from_ascii("example.org.").unwrap(),
            hickory_proto::rr::RecordType::A,
        ));
        let mut edns = Edns::new();
        edns.options_mut()
            .insert(EdnsOption::Subnet(ClientSubnet::new(
                "89.160.20.128".parse().unwrap(),
                25,
                0,
            )));
        msg.set_edns(edns);
        let query = msg.to_vec().unwrap();
        assert_eq!(
            client_subnet(&query),
            Some("89.160.20.128".parse().unwrap())
        );
        let name = LowerName::from(hickory_proto::rr::Name::root());
        let src: SocketAddr = "2.125.160.216:5353".parse().unwrap();
        assert_eq!(
            g.metadata("geoip/country/code", &name, src, &query)
                .as_deref(),
            Some("SE")
        );
        // Without the option, the client's own address.
        assert_eq!(
            g.metadata("geoip/country/code", &name, src, &[]).as_deref(),
            Some("GB")
        );
    }

    #[test]
    fn refusals_name_the_line() {
        for (lines, needle) in [
            ("geoip".to_string(), "Wrong argument count"),
            (
                "geoip /nonexistent.mmdb".to_string(),
                "failed to open database file",
            ),
            (
                format!("geoip {} {{\n frob\n}}", data("GeoLite2-City-Test.mmdb")),
                "unknown property \"frob\"",
            ),
        ] {
            let e = settings::<GeoipConfig>(&lines).unwrap_err();
            assert!(e.contains(needle), "{lines}: {e}");
        }
    }
}
