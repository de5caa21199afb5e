//! The hosts source: `/etc/hosts`-format files and inline entries (CoreDNS's `hosts`).

use std::net::IpAddr;

use hickory_proto::rr::Name;
use tracing::warn;

use crate::corefile::host_name;

/// Parses hosts-file text: `IP NAME [ALIAS...]` per line, `#` comments. Lines that do not
/// parse are skipped with a warning naming `origin` and the line, as CoreDNS does.
pub fn parse(text: &str, origin: &str) -> Vec<(IpAddr, Vec<Name>)> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("");
        let mut fields = line.split_whitespace();
        let Some(addr) = fields.next() else { continue };
        // A zone index (`fe80::1%eth0`) is not part of the address DNS serves.
        let addr = addr.split('%').next().unwrap_or(addr);
        let Ok(ip) = addr.parse::<IpAddr>() else {
            warn!(
                file = origin,
                line = i + 1,
                "skipping a line that does not start with an address"
            );
            continue;
        };
        let names: Vec<Name> = fields.filter_map(|f| host_name(f).ok()).collect();
        if !names.is_empty() {
            out.push((ip, names));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_addresses_names_and_aliases_and_skips_junk() {
        let entries = parse(
            "# comment\n127.0.0.1 localhost\n10.0.0.6  mirror.example.internal  Mirror # alias\nnot-an-ip foo\n\nfe80::1%eth0 link.local\n",
            "hosts",
        );
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[1].0, "10.0.0.6".parse::<IpAddr>().unwrap());
        let names: Vec<String> = entries[1].1.iter().map(|n| n.to_string()).collect();
        assert_eq!(names, vec!["mirror.example.internal.", "mirror."]);
        assert_eq!(entries[2].0, "fe80::1".parse::<IpAddr>().unwrap());
    }
}
