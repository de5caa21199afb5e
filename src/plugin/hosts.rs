//! The `hosts` plugin: static names from a hosts file and inline entries, with PTRs.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{A, AAAA, PTR};
use hickory_proto::rr::{LowerName, Name, RData, RecordType};
use tracing::warn;

use super::{Outcome, Reply, Request, matching_zone};
use crate::config::{Fallthrough, HostsConfig};
use crate::source;
use crate::table::{RecordTable, record};
use crate::wire::Owner;

/// Names to addresses and addresses (as reverse names) to names.
#[derive(Debug, Default)]
pub struct HostsData {
    by_name: HashMap<LowerName, Vec<IpAddr>>,
    by_addr: HashMap<LowerName, Vec<Name>>,
}

impl HostsData {
    fn build(entries: &[(IpAddr, Vec<Name>)], no_reverse: bool) -> Self {
        let mut data = Self::default();
        for (ip, names) in entries {
            for name in names {
                let ips = data.by_name.entry(LowerName::new(name)).or_default();
                if !ips.contains(ip) {
                    ips.push(*ip);
                }
                if !no_reverse {
                    let mut rev = Name::from(*ip);
                    rev.set_fqdn(true);
                    let names = data.by_addr.entry(LowerName::new(&rev)).or_default();
                    if !names.contains(name) {
                        names.push(name.clone());
                    }
                }
            }
        }
        data
    }
}

#[derive(Debug)]
pub struct Hosts {
    zones: Vec<LowerName>,
    ttl: u32,
    fallthrough: Fallthrough,
    file: Option<PathBuf>,
    inline: Vec<(IpAddr, Vec<Name>)>,
    no_reverse: bool,
    table: Arc<RecordTable<HostsData>>,
}

impl Hosts {
    pub fn new(config: &HostsConfig) -> Self {
        let hosts = Self {
            zones: config.zones.clone(),
            ttl: config.ttl,
            fallthrough: config.fallthrough.clone(),
            file: config.file.clone(),
            inline: config.inline.clone(),
            no_reverse: config.no_reverse,
            table: Arc::new(RecordTable::new(HostsData::default())),
        };
        hosts.table.publish(hosts.read());
        hosts
    }

    /// Reads the file (a missing one is empty, with a warning, as in CoreDNS) and the
    /// inline entries.
    fn read(&self) -> HostsData {
        let mut entries = Vec::new();
        if let Some(path) = &self.file {
            match std::fs::read_to_string(path) {
                Ok(text) => {
                    entries.extend(source::hosts::parse(&text, &path.display().to_string()))
                }
                Err(error) => warn!(file = %path.display(), %error, "hosts file not read"),
            }
        }
        entries.extend(self.inline.iter().cloned());
        HostsData::build(&entries, self.no_reverse)
    }

    /// What the reload task needs: the file to watch and a way to re-read it.
    pub fn reloader(
        &self,
    ) -> Option<(PathBuf, impl FnMut() -> Result<(), String> + Send + 'static)> {
        let file = self.file.clone()?;
        let me = Self {
            zones: Vec::new(),
            ttl: self.ttl,
            fallthrough: Fallthrough::default(),
            file: Some(file.clone()),
            inline: self.inline.clone(),
            no_reverse: self.no_reverse,
            table: Arc::clone(&self.table),
        };
        Some((file, move || {
            me.table.publish(me.read());
            Ok(())
        }))
    }

    pub fn serve(&self, req: &Request) -> Outcome {
        // Reverse names need not be listed as zones (CoreDNS: PTR zones are implicit).
        if matching_zone(&self.zones, &req.lower).is_none() && req.qtype != RecordType::PTR {
            return Outcome::Next;
        }
        let data = self.table.load();
        let mut reply = Reply::authoritative(ResponseCode::NoError);
        match req.qtype {
            RecordType::A | RecordType::AAAA => {
                for ip in data.by_name.get(&req.lower).into_iter().flatten() {
                    let rdata = match (ip, req.qtype) {
                        (IpAddr::V4(v4), RecordType::A) => RData::A(A(*v4)),
                        (IpAddr::V6(v6), RecordType::AAAA) => RData::AAAA(AAAA(*v6)),
                        _ => continue,
                    };
                    reply
                        .answers
                        .push_record(Owner::Question, &record(&req.name, self.ttl, rdata));
                }
            }
            RecordType::PTR => {
                for name in data.by_addr.get(&req.lower).into_iter().flatten() {
                    let ptr = record(&req.name, self.ttl, RData::PTR(PTR(name.clone())));
                    reply.answers.push_record(Owner::Question, &ptr);
                }
            }
            _ => {}
        }
        if !reply.answers.is_empty() {
            return Outcome::Reply(reply);
        }
        if self.fallthrough.through(&req.lower) {
            return Outcome::Next;
        }
        // No SOA to give (hosts files have none): NODATA when the name has other records.
        let exists = data.by_name.contains_key(&req.lower) || data.by_addr.contains_key(&req.lower);
        if !exists {
            reply.rcode = ResponseCode::NXDomain;
        }
        Outcome::Reply(reply)
    }
}
