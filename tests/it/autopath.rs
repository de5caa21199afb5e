//! `autopath @kubernetes`: a pod's first search-path query gets the final answer.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};

use crate::harness::{TestServer, query_bytes};
use crate::upstream::Knot;

/// A pod at 127.0.0.1 (where the tests ask from) in `default`, and two services.
const CLUSTER: &str = "\
apiVersion: v1
kind: Namespace
metadata: {name: default}
---
apiVersion: v1
kind: Namespace
metadata: {name: other}
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: default}
status: {podIPs: [{ip: 127.0.0.1}]}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec: {clusterIP: 10.0.0.5, ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: other}
spec: {clusterIP: 10.0.0.6, ports: [{port: 80}]}
";

fn start(pods: &str) -> (TestServer, Knot, tempfile::TempDir) {
    let knot = Knot::start();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cluster.yaml");
    std::fs::write(&file, CLUSTER).unwrap();
    let server = TestServer::start(&format!(
        ".:0 {{\n prometheus 127.0.0.1:0\n autopath @kubernetes\n kubernetes cluster.local in-addr.arpa {{\n  manifests {}\n  pods {pods}\n }}\n forward . {}\n}}\n",
        file.display(),
        knot.addr
    ));
    (server, knot, dir)
}

/// Each answer as "NAME TYPE DATA".
fn answers(m: &Message) -> Vec<String> {
    m.answers()
        .iter()
        .map(|r| format!("{} {} {}", r.name(), r.record_type(), r.data()))
        .collect()
}

#[test]
fn a_pods_first_search_path_query_gets_the_final_answer_with_a_cname() {
    let (server, _knot, _dir) = start("verified");
    // An external name, as a pod's resolver first asks for it under ndots:5.
    let m = server.query("www.example.test.default.svc.cluster.local.", RecordType::A);
    assert_eq!(m.response_code(), ResponseCode::NoError);
    assert_eq!(
        answers(&m),
        vec![
            "www.example.test.default.svc.cluster.local. CNAME www.example.test.",
            "www.example.test. A 192.0.2.1",
        ]
    );
    // Over TCP too, and for a service in another namespace (found in the cluster zone).
    let m = server.query_tcp("api.other.default.svc.cluster.local.", RecordType::A);
    assert_eq!(
        answers(&m),
        vec![
            "api.other.default.svc.cluster.local. CNAME api.other.svc.cluster.local.",
            "api.other.svc.cluster.local. A 10.0.0.6",
        ]
    );
    // A name that is what it seems needs nothing more.
    let m = server.query("web.default.svc.cluster.local.", RecordType::A);
    assert_eq!(
        answers(&m),
        vec!["web.default.svc.cluster.local. A 10.0.0.5"]
    );
    // Nothing anywhere: the first name's own NXDOMAIN, with the cluster's SOA.
    let m = server.query(
        "nosuch.example.test.default.svc.cluster.local.",
        RecordType::A,
    );
    assert_eq!(m.response_code(), ResponseCode::NXDomain);
    assert_eq!(m.name_servers()[0].name().to_string(), "cluster.local.");
    // NODATA upstream ends the walk as CoreDNS's does: no answers, the upstream's SOA.
    let m = server.query(
        "www.example.test.default.svc.cluster.local.",
        RecordType::AAAA,
    );
    assert_eq!(m.response_code(), ResponseCode::NoError);
    assert!(m.answers().is_empty());
}

#[test]
fn only_known_pods_get_it_and_only_under_pods_verified() {
    let (server, _knot, _dir) = start("verified");
    // From ::1, which no pod has: the name is simply not in the cluster.
    let socket = UdpSocket::bind("[::1]:0").unwrap();
    socket
        .set_read_timeout(Some(std::time::Duration::from_secs(2)))
        .unwrap();
    let to = SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, server.addr.port()));
    socket
        .send_to(
            &query_bytes(
                "www.example.test.default.svc.cluster.local.",
                RecordType::A,
                Some(1232),
            ),
            to,
        )
        .unwrap();
    let mut buf = vec![0; 4096];
    let (len, _) = socket.recv_from(&mut buf).expect("a reply over IPv6");
    let m = Message::from_vec(&buf[..len]).unwrap();
    assert_eq!(m.response_code(), ResponseCode::NXDomain);

    let (server, _knot, _dir) = start("insecure");
    let m = server.query("www.example.test.default.svc.cluster.local.", RecordType::A);
    assert_eq!(m.response_code(), ResponseCode::NXDomain);
    let address = server
        .query("www.example.test.", RecordType::A)
        .answers()
        .iter()
        .find_map(|r| match r.data() {
            RData::A(a) => Some(a.0),
            _ => None,
        });
    assert_eq!(address, Some(Ipv4Addr::new(192, 0, 2, 1)));
}
