//! `nsid [DATA...]`: a query that asks for the name server identifier (RFC 5001, the EDNS
//! NSID option) gets DATA back in its response's OPT record, as CoreDNS's `nsid` gives it (the
//! host name by default; several words are joined with spaces). Other queries are untouched.

use super::setup::{Building, Context, Setup, SetupError};
use super::{Phases, Plugin};
use crate::corefile::{ConfigError, Directive};
use crate::wire::{self, Transport};

/// RFC 5001's option code.
const NSID: u16 = 3;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nsid {
    data: Vec<u8>,
}

impl Setup for Nsid {
    fn parse(d: &Directive, _: &Context<'_>) -> Result<Self, ConfigError> {
        let data = if d.args.is_empty() {
            super::chaos::hostname()
        } else {
            d.args.join(" ")
        };
        // An option's length is 16 bits; nothing near it fits a response anyway.
        let mut data = data.into_bytes();
        data.truncate(512);
        Ok(Self { data })
    }

    fn build(&self, b: &mut Building<'_>) -> Result<(), SetupError> {
        b.chain.push(Plugin::Nsid(self.clone()));
        Ok(())
    }
}

impl Phases for Nsid {
    /// Adds (or replaces, if an upstream gave one) the NSID option, when the query asked for
    /// it and the response has room for it within `limit`.
    fn respond(
        &self,
        response: &mut Vec<u8>,
        query: &[u8],
        _src: std::net::SocketAddr,
        _transport: Transport,
        limit: usize,
    ) -> bool {
        let asked = wire::last_opt(query).is_some_and(|o| {
            wire::edns_options(&query[o.data.clone()])
                .iter()
                .any(|&(code, _, _)| code == NSID)
        });
        if !asked {
            return true;
        }
        let mut option = NSID.to_be_bytes().to_vec();
        option.extend_from_slice(&(self.data.len() as u16).to_be_bytes());
        option.extend_from_slice(&self.data);
        // A response without an OPT (an upstream without EDNS) gets one, as CoreDNS adds it:
        // the client's size, DO set.
        let payload = wire::last_opt(query).map_or(512, |o| {
            let class = o.data.start - 8;
            u16::from_be_bytes([query[class], query[class + 1]])
        });
        let mut updated = response.clone();
        let edited = wire::edit_opt(&mut updated, payload, 0x8000, |data| {
            // An NSID already there (an upstream's) is replaced.
            let mut kept: Vec<u8> = wire::edns_options(data)
                .iter()
                .filter(|&&(code, _, _)| code != NSID)
                .flat_map(|&(_, start, end)| data[start..end].to_vec())
                .collect();
            kept.extend_from_slice(&option);
            kept
        });
        if !edited {
            return true;
        }
        if updated.len() <= limit {
            *response = updated;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::path::Path;

    use hickory_proto::op::{Edns, Message, Query};
    use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
    use hickory_proto::rr::{Name, RecordType};

    use super::*;
    use crate::answer::Handled;
    use crate::config::Config;
    use crate::plugin::testing::Served;

    fn query(nsid: bool, edns: bool) -> Vec<u8> {
        let mut m = Message::new();
        m.set_id(5).set_recursion_desired(true);
        m.add_query(Query::query(
            Name::from_ascii("web.prod.svc.cluster.local.").unwrap(),
            RecordType::A,
        ));
        if edns {
            let mut e = Edns::new();
            e.set_max_payload(1232);
            if nsid {
                e.options_mut()
                    .insert(EdnsOption::Unknown(u16::from(EdnsCode::NSID), Vec::new()));
            }
            m.set_edns(e);
        }
        m.to_vec().unwrap()
    }

    fn nsid_of(response: &[u8]) -> Option<Vec<u8>> {
        let o = wire::last_opt(response)?;
        let data = &response[o.data.clone()];
        wire::edns_options(data)
            .into_iter()
            .find(|&(code, _, _)| code == NSID)
            .map(|(_, start, end)| data[start + 4..end].to_vec())
    }

    #[test]
    fn gives_its_identifier_to_queries_that_ask_on_every_path() {
        let served = Served::new(
            ".:0 {
                nsid clusterdns pod-1
                kubernetes cluster.local {
                    manifests DATA
                }
            }",
        );
        let src: SocketAddr = "10.244.0.7:40000".parse().unwrap();
        for (nsid, edns, want) in [
            (true, true, Some(b"clusterdns pod-1".to_vec())),
            (false, true, None),
            (false, false, None),
        ] {
            let mut out = Vec::new();
            let handled = served
                .handler
                .handle(&query(nsid, edns), src, Transport::Udp, &mut out);
            assert!(matches!(handled, Handled::Send));
            assert_eq!(nsid_of(&out), want, "nsid {nsid}, edns {edns}");
            let m = Message::from_vec(&out).expect("still a message");
            assert_eq!(m.answers().len(), 1);
        }
    }

    #[test]
    fn replaces_an_upstreams_and_adds_an_opt_where_there_is_none() {
        let n = Nsid {
            data: b"me".to_vec(),
        };
        let src: SocketAddr = "10.0.0.1:5".parse().unwrap();
        let q = query(true, true);
        // A response with the upstream's own NSID and a cookie.
        let mut m = Message::from_vec(&q).unwrap();
        m.set_message_type(hickory_proto::op::MessageType::Response);
        let mut e = Edns::new();
        e.options_mut().insert(EdnsOption::Unknown(
            u16::from(EdnsCode::NSID),
            b"upstream".to_vec(),
        ));
        e.options_mut()
            .insert(EdnsOption::Unknown(10, vec![1, 2, 3, 4, 5, 6, 7, 8]));
        m.set_edns(e);
        let mut response = m.to_vec().unwrap();
        assert!(n.respond(&mut response, &q, src, Transport::Udp, 1232));
        assert_eq!(nsid_of(&response), Some(b"me".to_vec()));
        let parsed = Message::from_vec(&response).expect("still a message");
        assert!(
            parsed
                .extensions()
                .as_ref()
                .unwrap()
                .option(EdnsCode::Cookie)
                .is_some()
        );
        // No OPT at all: one is added.
        let mut bare = Message::from_vec(&q).unwrap();
        bare.set_message_type(hickory_proto::op::MessageType::Response);
        bare.set_edns(Edns::new());
        let mut response = bare.to_vec().unwrap();
        let without_opt = response.len() - 11;
        response.truncate(without_opt);
        crate::wire::HeaderMut::of(&mut response)
            .unwrap()
            .set_counts(0, 0, 0);
        assert!(n.respond(&mut response, &q, src, Transport::Udp, 1232));
        assert_eq!(nsid_of(&response), Some(b"me".to_vec()));
        assert!(Message::from_vec(&response).is_ok());
        // No room: left as it was.
        let mut small = Message::from_vec(&q).unwrap().to_vec().unwrap();
        let before = small.clone();
        let room = small.len();
        assert!(n.respond(&mut small, &q, src, Transport::Udp, room));
        assert_eq!(small, before);
    }

    #[test]
    fn the_host_name_by_default_and_words_joined() {
        let get = |line: &str| {
            let text = format!(".:0 {{\n{line}\n}}\n");
            Config::from_text(&text, 0, Path::new(".")).unwrap().servers[0]
                .get::<Nsid>()
                .unwrap()
                .clone()
        };
        assert_eq!(get("nsid localdns").data, b"localdns");
        assert_eq!(get("nsid a b").data, b"a b");
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
        assert_eq!(get("nsid").data, host.trim().as_bytes());
        let twice = Config::from_text(".:0 {\n nsid a\n nsid b\n}\n", 0, Path::new("."));
        assert!(twice.unwrap_err().to_string().contains("once"));
    }
}
