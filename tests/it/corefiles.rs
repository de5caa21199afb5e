//! The corpus of real Corefiles (`tests/corefiles/`, each naming its source): every one starts
//! as written, apart from what a test machine cannot give it (its ports, the addresses it
//! binds, the API server: the cluster comes from manifest files), and answers a cluster name.
//! The few that use a directive not served yet are listed, with that directive, and must be
//! refused naming it.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};

use crate::harness::{TestServer, free_port, query_bytes, udp};

/// Corefiles that are refused for now, and the directive each is refused for.
const NOT_YET: &[(&str, &str)] = &[];

fn corpus() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corefiles");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("tests/corefiles")
        .map(|e| e.expect("an entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "Corefile"))
        .collect();
    files.sort();
    files
}

/// The Corefile as this machine can serve it: each port it names replaced by a free one,
/// `bind` to loopback (each address it names to an address of its own in 127.0.0.0/8), the HTTP
/// endpoints on free loopback ports, and the cluster from the test data. Also where the (last)
/// block with `kubernetes` listens, and its first zone.
fn adapted(text: &str) -> (String, Option<(SocketAddr, String)>) {
    let mut out = String::new();
    let mut depth = 0usize;
    let mut ports: HashMap<String, u16> = HashMap::new();
    let mut addresses: HashMap<String, Ipv4Addr> = HashMap::new();
    let mut block_port = 0;
    let mut block_address = Ipv4Addr::LOCALHOST;
    let mut serves_kubernetes = false;
    let mut kubernetes = None;
    let (mut block_zone, mut kube_zone) = (String::new(), String::new());
    for line in text.lines() {
        let trimmed = line.trim_start();
        let code = trimmed.split('#').next().unwrap_or("").trim_end();
        let mut line = line.to_string();
        if depth == 0 && code.ends_with('{') && !code.starts_with('(') {
            // A server block's keys: their ports become `:0`.
            let keys: Vec<String> = code
                .trim_end_matches('{')
                .split_whitespace()
                .map(|k| {
                    let (zone, port) = match k.rsplit_once(':') {
                        Some((zone, port)) if port.chars().all(|c| c.is_ascii_digit()) => {
                            (zone, port.to_string())
                        }
                        _ => (k, "53".to_string()),
                    };
                    block_port = *ports.entry(port).or_insert_with(free_port);
                    format!("{zone}:{block_port}")
                })
                .collect();
            block_zone = keys
                .first()
                .and_then(|k| k.rsplit_once(':'))
                .map(|(zone, _)| zone.trim_start_matches("dns://").to_string())
                .unwrap_or_default();
            line = format!("{} {{", keys.join(" "));
            block_address = Ipv4Addr::LOCALHOST;
            serves_kubernetes = false;
        } else if depth == 1 {
            let word = code.split_whitespace().next().unwrap_or("");
            let block = if code.ends_with('{') { " {" } else { "" };
            match word {
                "bind" => {
                    let mapped: Vec<Ipv4Addr> = code
                        .split_whitespace()
                        .skip(1)
                        .map(|a| {
                            let next = Ipv4Addr::from(
                                u32::from(Ipv4Addr::LOCALHOST) + addresses.len() as u32,
                            );
                            *addresses.entry(a.to_string()).or_insert(next)
                        })
                        .collect();
                    block_address = mapped.first().copied().unwrap_or(Ipv4Addr::LOCALHOST);
                    let mapped: Vec<String> = mapped.iter().map(|a| a.to_string()).collect();
                    line = format!("    bind {}", mapped.join(" "));
                }
                "prometheus" | "health" | "ready" => {
                    line = format!("    {word} 127.0.0.1:0{block}");
                }
                "kubernetes" => {
                    serves_kubernetes = true;
                    kube_zone = code
                        .split_whitespace()
                        .nth(1)
                        .filter(|z| *z != "{")
                        .unwrap_or(&block_zone)
                        .to_string();
                    let manifests =
                        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/cluster.yaml");
                    let manifests = manifests.display();
                    line = if code.ends_with('{') {
                        format!("{line}\n        manifests {manifests}")
                    } else {
                        format!("{line} {{\n        manifests {manifests}\n    }}")
                    };
                }
                _ => {}
            }
        }
        depth += code.matches('{').count();
        depth = depth.saturating_sub(code.matches('}').count());
        if depth == 0 && serves_kubernetes {
            kubernetes = Some((
                SocketAddr::from((block_address, block_port)),
                kube_zone.clone(),
            ));
            serves_kubernetes = false;
        }
        out.push_str(&line);
        out.push('\n');
    }
    (out, kubernetes)
}

#[test]
fn every_corefile_of_the_corpus_starts_and_answers_the_cluster() {
    let files = corpus();
    assert!(files.len() >= 20, "the corpus is there: {files:?}");
    for file in files {
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        let (text, kubernetes) = adapted(&std::fs::read_to_string(&file).unwrap());
        if let Some((_, directive)) = NOT_YET.iter().find(|(f, _)| *f == name) {
            let error = clusterdns::config::Config::from_text(&text, 0, Path::new("."))
                .err()
                .unwrap_or_else(|| panic!("{name} starts now: take it off NOT_YET"))
                .to_string();
            assert!(
                error.contains(&format!("{directive}: not supported")),
                "{name}: {error}"
            );
            continue;
        }
        let _server = TestServer::start(&text);
        if let Some((at, zone)) = kubernetes {
            // The test cluster's `web` service, under the block's cluster zone.
            let zone = zone.trim_end_matches('.');
            let name = if zone.is_empty() {
                "web.prod.svc.".to_string()
            } else {
                format!("web.prod.svc.{zone}.")
            };
            let query = query_bytes(&name, RecordType::A, Some(1232));
            let reply =
                udp(at, &query).unwrap_or_else(|| panic!("{name}: no answer on {at}\n{text}"));
            let m = Message::from_vec(&reply).unwrap();
            assert_eq!(m.response_code(), ResponseCode::NoError, "{name}\n{text}");
            let addresses: Vec<String> = m
                .answers()
                .iter()
                .filter_map(|r| match r.data() {
                    RData::A(a) => Some(a.to_string()),
                    _ => None,
                })
                .collect();
            assert_eq!(addresses, ["10.96.12.34"], "{name}\n{text}");
        }
    }
}
