//! `k8s_external` on the wire: services' external addresses under an outside zone, asked with
//! dig, following a change to the cluster.

use std::time::{Duration, Instant};

use crate::harness::{TestServer, data_dir};

#[test]
fn external_addresses_are_served_and_follow_the_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = dir.path().join("cluster.yaml");
    let original = std::fs::read_to_string(data_dir().join("external.yaml")).unwrap();
    std::fs::write(&cluster, &original).unwrap();
    let server = TestServer::start(&format!(
        ".:0 {{\n kubernetes cluster.local {{\n  manifests {}\n }}\n k8s_external example.org\n}}\n",
        cluster.display()
    ));
    let short = |args: &[&str]| {
        let mut all = vec!["+short"];
        all.extend_from_slice(args);
        server.dig(&all).trim().to_string()
    };
    assert_eq!(
        short(&["lb.prod.example.org", "A"]),
        "192.0.2.7\n203.0.113.10"
    );
    assert_eq!(
        short(&["_http._tcp.lb.prod.example.org", "SRV"]),
        "0 33 80 lb.prod.example.org."
    );
    assert_eq!(short(&["example.org", "NS"]), "ns1.dns.example.org.");
    let nx = server.dig(&["web.prod.example.org", "A"]);
    assert!(
        nx.contains("status: NXDOMAIN") && nx.contains("flags: qr aa rd"),
        "{nx}"
    );
    // The cluster's names are answered as ever.
    assert_eq!(short(&["lb.prod.svc.cluster.local", "A"]), "10.96.5.5");

    // `web` gets an external IP.
    std::fs::write(
        &cluster,
        original.replace(
            "spec: {clusterIP: 10.96.5.7,",
            "spec: {clusterIP: 10.96.5.7, externalIPs: [192.0.2.77],",
        ),
    )
    .unwrap();
    let start = Instant::now();
    while short(&["web.prod.example.org", "A"]) != "192.0.2.77" {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the change never showed"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
