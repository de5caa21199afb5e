//! Manifest files change on disk: the new set replaces the old whole, or not at all.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use crate::harness::TestServer;

/// How long a change may take to show (the files are checked every second).
const CHANGE_BOUND: Duration = Duration::from_secs(10);

fn headless(ns: &str, name: &str, ips: &[String]) -> String {
    let mut s = format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: {ns}}}\nspec: {{clusterIP: None}}\n---\n\
         apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: {name}-1, namespace: {ns}, labels: {{kubernetes.io/service-name: {name}}}}}\n\
         addressType: IPv4\nendpoints:\n"
    );
    for ip in ips {
        s.push_str(&format!("- {{addresses: [{ip}]}}\n"));
    }
    s
}

/// Writes a file so that a reader sees either the old or the new content, never half.
fn replace(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn addresses(server: &TestServer, name: &str) -> BTreeSet<String> {
    server
        .query(name, RecordType::A)
        .answers()
        .iter()
        .map(|r| r.data().to_string())
        .collect()
}

fn wait_for(server: &TestServer, name: &str, want: &BTreeSet<String>) {
    let start = Instant::now();
    while &addresses(server, name) != want {
        assert!(
            start.elapsed() < CHANGE_BOUND,
            "{name} never became {want:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn set(ips: &[String]) -> BTreeSet<String> {
    ips.iter().cloned().collect()
}

fn ips(prefix: &str, n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("{prefix}.{i}")).collect()
}

#[test]
fn a_change_on_disk_is_served_and_a_broken_file_keeps_the_last_good_records() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cluster.yaml");
    let name = "app.default.svc.cluster.local.";
    replace(&file, &headless("default", "app", &ips("10.1.0", 2)));
    let server = TestServer::start(&format!(
        ".:0 {{\n kubernetes cluster.local {{\n  manifests {}\n }}\n}}\n",
        dir.path().display()
    ));
    assert_eq!(addresses(&server, name), set(&ips("10.1.0", 2)));

    replace(&file, &headless("default", "app", &ips("10.2.0", 3)));
    wait_for(&server, name, &set(&ips("10.2.0", 3)));

    // Broken: a bad address. The last good records stay.
    replace(
        &file,
        &headless("default", "app", &["10.3.0.300".to_string()]),
    );
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(addresses(&server, name), set(&ips("10.2.0", 3)));
    // Broken YAML, likewise.
    replace(&file, "apiVersion: v1\nkind: Service\nmetadata: {name: [\n");
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(addresses(&server, name), set(&ips("10.2.0", 3)));

    // A new file in the directory adds its objects; fixing the broken one is picked up.
    replace(
        &dir.path().join("more.yml"),
        &headless("default", "other", &ips("10.4.0", 1)),
    );
    replace(&file, &headless("default", "app", &ips("10.5.0", 1)));
    wait_for(&server, name, &set(&ips("10.5.0", 1)));
    assert_eq!(
        addresses(&server, "other.default.svc.cluster.local."),
        set(&ips("10.4.0", 1))
    );

    // Removing a service removes its name.
    replace(
        &file,
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: default}\n",
    );
    let start = Instant::now();
    while server.query(name, RecordType::A).response_code() != ResponseCode::NXDomain {
        assert!(start.elapsed() < CHANGE_BOUND);
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn queries_during_a_reload_see_the_old_set_or_the_new_never_a_mix() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cluster.yaml");
    let old = ips("10.6.0", 20);
    let new = ips("10.7.0", 20);
    replace(&file, &headless("default", "flip", &old));
    let server = TestServer::start(&format!(
        ".:0 {{\n kubernetes cluster.local {{\n  manifests {}\n }}\n}}\n",
        file.display()
    ));
    let name = "flip.default.svc.cluster.local.";
    let (old, new) = (set(&old), set(&new));
    let mut seen_new = 0;
    let mut flips = 0;
    let start = Instant::now();
    // Flip the file back and forth while querying; bounded in count and time.
    while flips < 6 && start.elapsed() < Duration::from_secs(30) {
        let got = addresses(&server, name);
        assert!(got == old || got == new, "a mix: {got:?}");
        let want_new = flips % 2 == 0;
        if (got == new) == want_new {
            flips += 1;
            seen_new += usize::from(got == new);
            let next = if want_new { &old } else { &new };
            let next: Vec<String> = next.iter().cloned().collect();
            replace(&file, &headless("default", "flip", &next));
            // Rename keeps the size; make sure the modification time moves too.
            std::thread::sleep(Duration::from_millis(20));
        } else if flips == 0 && got == old {
            let next: Vec<String> = new.iter().cloned().collect();
            replace(&file, &headless("default", "flip", &next));
        }
    }
    assert!(
        seen_new > 0 && flips >= 2,
        "the file changes were never served"
    );
}
