//! The test API server against real clients: kubectl and kube-rs.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::mpsc;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, ListParams, WatchEvent, WatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

/// Bound on every wait for an event.
const WAIT: Duration = Duration::from_secs(10);
const HTTP: Port<'static> = ("http", 80, "TCP");

fn svc(namespace: &str, name: &str, n: u8) -> Value {
    service(namespace, name, &format!("10.96.0.{n}"), &[HTTP])
}

// ---- kubectl ----

/// Runs kubectl against the server (no kubeconfig, a private cache dir), with a time bound.
/// None when kubectl is not installed.
fn kubectl(server: &ApiServer, args: &[&str]) -> Option<String> {
    let cache = tempfile::tempdir().unwrap();
    let mut child = match kubectl_command(server, cache.path(), args)
        .stdout(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("kubectl not installed; skipping");
            return None;
        }
        Err(err) => panic!("kubectl: {err}"),
    };
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        stdout.read_to_string(&mut out).map(|_| out)
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("kubectl {args:?} did not finish in 30s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = reader.join().unwrap().unwrap();
    assert!(
        status.success(),
        "kubectl {args:?}: {status}; stdout:\n{out}"
    );
    Some(out)
}

fn kubectl_command(server: &ApiServer, cache: &std::path::Path, args: &[&str]) -> Command {
    let mut command = Command::new("kubectl");
    command
        .args([
            "--kubeconfig",
            "/dev/null",
            "--server",
            &server.url(),
            "--request-timeout",
            "10s",
        ])
        .arg("--cache-dir")
        .arg(cache)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit());
    command
}

fn populated() -> ApiServer {
    let server = ApiServer::start();
    server.apply(namespace("default"));
    server.apply(namespace("prod"));
    server.apply(svc("default", "web", 10));
    server.apply(with_labels(svc("prod", "db", 11), &[("tier", "data")]));
    server.apply(headless_service("prod", "stateful", &[HTTP]));
    let endpoints = vec![
        slice_endpoint("10.1.0.1", true, Some("stateful-0")),
        slice_endpoint("10.1.0.2", false, None),
    ];
    server.apply(endpoint_slice(
        "prod",
        "stateful-abcde",
        "stateful",
        &[HTTP],
        endpoints,
    ));
    server.apply(pod("prod", "stateful-0", "10.1.0.1"));
    server
}

/// `namespace/name` of each row of a `kubectl get -A` table.
fn rows(table: &str) -> Vec<String> {
    table
        .lines()
        .skip(1)
        .map(|line| {
            line.split_whitespace()
                .take(2)
                .collect::<Vec<_>>()
                .join("/")
        })
        .collect()
}

#[test]
fn kubectl_get_lists_objects() {
    let server = populated();
    let Some(out) = kubectl(&server, &["get", "services", "-A"]) else {
        return;
    };
    assert!(out.starts_with("NAMESPACE"), "{out}");
    assert_eq!(
        rows(&out),
        ["default/web", "prod/db", "prod/stateful"],
        "{out}"
    );

    let out = kubectl(&server, &["get", "endpointslices", "-A"]).unwrap();
    assert_eq!(rows(&out), ["prod/stateful-abcde"], "{out}");

    let out = kubectl(&server, &["get", "namespaces", "-o", "name"]).unwrap();
    assert_eq!(out, "namespace/default\nnamespace/prod\n");

    // Short names, a namespaced list, selectors, JSON output, a single object.
    let out = kubectl(
        &server,
        &["get", "svc", "-n", "prod", "-l", "tier=data", "-o", "name"],
    )
    .unwrap();
    assert_eq!(out, "service/db\n");
    let out = kubectl(
        &server,
        &[
            "get",
            "pods",
            "-A",
            "--field-selector",
            "metadata.name=stateful-0",
        ],
    );
    assert_eq!(rows(&out.unwrap()), ["prod/stateful-0"]);
    let out = kubectl(&server, &["get", "services", "-A", "-o", "json"]).unwrap();
    let list: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 3);
    assert_eq!(list["items"][0]["spec"]["clusterIP"], "10.96.0.10");
    let ip = kubectl(
        &server,
        &["get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}"],
    )
    .unwrap();
    assert_eq!(ip, "10.96.0.10");
}

#[test]
fn kubectl_get_watch_prints_added_service() {
    let server = populated();
    let cache = tempfile::tempdir().unwrap();
    let spawned = kubectl_command(&server, cache.path(), &["get", "services", "-A", "--watch"])
        .stdout(Stdio::piped())
        .spawn();
    let Ok(mut child) = spawned else {
        eprintln!("kubectl not installed; skipping");
        return;
    };
    let (tx, lines) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let mut wait_for_line = |needle: &str| {
        let deadline = Instant::now() + WAIT;
        while let Ok(line) = lines.recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            seen.push(line.clone());
            if line.contains(needle) {
                return true;
            }
        }
        false
    };
    let listed = wait_for_line("stateful");
    let watching = listed && server.wait_until(WAIT, |s| s.watch_count() == 1);
    if watching {
        server.apply(svc("default", "api", 12));
    }
    let added = watching && wait_for_line("api");
    child.kill().unwrap();
    child.wait().unwrap();
    reader.join().unwrap();
    assert!(
        added,
        "listed {listed}, watching {watching}; kubectl printed {seen:#?}"
    );
    assert!(seen.last().unwrap().starts_with("default "), "{seen:?}");
}

// ---- kube-rs ----

type Event = watcher::Event<Service>;

fn client(server: &ApiServer) -> kube::Client {
    kube::Client::try_from(server.kube_config()).unwrap()
}

fn key(svc: &Service) -> String {
    format!(
        "{}/{}",
        svc.metadata.namespace.as_deref().unwrap_or(""),
        svc.metadata.name.as_deref().unwrap_or("")
    )
}

/// A watcher event as a short string: "Init", "InitApply ns/name", "InitDone", "Apply ns/name"...
fn describe(event: &Event) -> String {
    match event {
        Event::Init => "Init".into(),
        Event::InitApply(svc) => format!("InitApply {}", key(svc)),
        Event::InitDone => "InitDone".into(),
        Event::Apply(svc) => format!("Apply {}", key(svc)),
        Event::Delete(svc) => format!("Delete {}", key(svc)),
    }
}

/// The HTTP status behind a watcher error, if any.
fn error_code(err: &watcher::Error) -> Option<u16> {
    match err {
        watcher::Error::WatchError(status) => Some(status.code),
        watcher::Error::InitialListFailed(kube::Error::Api(status))
        | watcher::Error::WatchStartFailed(kube::Error::Api(status))
        | watcher::Error::WatchFailed(kube::Error::Api(status)) => Some(status.code),
        _ => None,
    }
}

/// A watcher stream polled by a task of its own (a watcher only makes requests while polled).
struct Events {
    items: tokio::sync::mpsc::UnboundedReceiver<Result<Event, watcher::Error>>,
    task: tokio::task::JoinHandle<()>,
}

impl Events {
    fn spawn<S>(mut stream: S) -> Self
    where
        S: Stream<Item = Result<Event, watcher::Error>> + Unpin + Send + 'static,
    {
        let (tx, items) = tokio::sync::mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            while let Some(item) = stream.next().await {
                if tx.send(item).is_err() {
                    return;
                }
            }
        });
        Events { items, task }
    }

    /// The next event, or the HTTP status of the next error.
    async fn next(&mut self) -> Result<Event, Option<u16>> {
        let item = tokio::time::timeout(WAIT, self.items.recv()).await;
        let item = item.unwrap_or_else(|_| panic!("no watcher event within {WAIT:?}"));
        item.expect("watcher ended").map_err(|err| error_code(&err))
    }

    /// Events (described) up to `last` inclusive; errors appear as "Error CODE".
    async fn until(&mut self, last: &str) -> Vec<String> {
        let mut seen = Vec::new();
        loop {
            let next = tokio::time::timeout(WAIT, self.items.recv()).await;
            let item = next.unwrap_or_else(|_| panic!("no {last:?} within {WAIT:?}; saw {seen:?}"));
            let item =
                item.unwrap_or_else(|| panic!("watcher ended before {last:?}; saw {seen:?}"));
            let text = match &item {
                Ok(event) => describe(event),
                Err(err) => format!(
                    "Error {}",
                    error_code(err).map_or(err.to_string(), |c| c.to_string())
                ),
            };
            seen.push(text.clone());
            if text == last {
                return seen;
            }
        }
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Polls `condition` (without blocking the runtime) until it holds, for up to [`WAIT`].
async fn eventually(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn watcher_lists_then_follows_changes() {
    let server = ApiServer::start();
    server.apply(svc("default", "b", 2));
    server.apply(svc("default", "a", 1));
    let list_rv = server.apply(svc("other", "c", 3));
    let api = Api::<Service>::all(client(&server));
    let mut events = Events::spawn(watcher(api, watcher::Config::default()).boxed());

    let initial = events.until("InitDone").await;
    assert_eq!(
        initial,
        [
            "Init",
            "InitApply default/a",
            "InitApply default/b",
            "InitApply other/c",
            "InitDone"
        ]
    );

    server.apply(with_labels(svc("default", "a", 1), &[("version", "2")]));
    match events.next().await.unwrap() {
        Event::Apply(svc) => {
            assert_eq!(key(&svc), "default/a");
            assert_eq!(svc.metadata.labels.unwrap()["version"], "2");
            assert_eq!(
                svc.metadata.resource_version.unwrap(),
                (list_rv + 1).to_string()
            );
        }
        other => panic!("expected Apply, got {}", describe(&other)),
    }
    assert!(server.delete("Service", "default", "b"));
    assert_eq!(events.until("Delete default/b").await, ["Delete default/b"]);

    let requests = server.requests();
    assert!(requests[0].starts_with("GET /api/v1/services?") && requests[0].ends_with("limit=500"));
    assert!(requests[1].contains("watch=true") && requests[1].contains("allowWatchBookmarks=true"));
    assert!(
        requests[1].ends_with(&format!("&resourceVersion={list_rv}")),
        "{}",
        requests[1]
    );
}

#[tokio::test]
async fn watcher_relists_after_compaction() {
    let server = ApiServer::start();
    server.apply(svc("default", "a", 1));
    server.apply(svc("default", "b", 2));
    let mut events = Events::spawn(
        watcher(
            Api::<Service>::all(client(&server)),
            watcher::Config::default(),
        )
        .boxed(),
    );
    events.until("InitDone").await;
    eventually("the watch", || server.watch_count() == 1).await;

    // Changes the watcher misses while disconnected, then compaction: resuming gets 410.
    server.pause();
    server.drop_watches();
    eventually("the reconnect", || server.requests().len() == 3).await;
    assert!(server.delete("services", "default", "a"));
    server.apply(svc("default", "c", 3));
    server.compact();
    server.resume();

    let relist = events.until("InitDone").await;
    let expected = [
        "Init",
        "InitApply default/b",
        "InitApply default/c",
        "InitDone",
    ];
    assert!(relist.contains(&"Error 410".to_owned()), "{relist:?}");
    assert_eq!(
        relist[relist.len() - expected.len()..],
        expected,
        "{relist:?}"
    );
    let lists = server
        .requests()
        .iter()
        .filter(|r| !r.contains("watch="))
        .count();
    assert_eq!(lists, 2);

    // And it watches on from the new list.
    server.apply(svc("default", "d", 4));
    assert_eq!(events.until("Apply default/d").await, ["Apply default/d"]);
}

#[tokio::test]
async fn watcher_recovers_from_server_errors() {
    let server = ApiServer::start();
    server.apply(svc("default", "a", 1));
    let config = watcher::Config::default();
    let watcher = watcher(Api::<Service>::all(client(&server)), config).default_backoff();
    let mut events = Events::spawn(watcher.boxed());
    events.until("InitDone").await;
    eventually("the watch", || server.watch_count() == 1).await;

    // 503: the client retries by itself; the update arrives once the fault clears.
    server.fail_with(Some(503));
    let before = server.requests().len();
    server.drop_watches();
    eventually("retries", || server.requests().len() >= before + 3).await;
    server.apply(svc("default", "a", 9));
    server.fail_with(None);
    let recovered = events.until("Apply default/a").await;
    assert!(
        recovered
            .iter()
            .all(|e| e == "Error 503" || e == "Apply default/a"),
        "{recovered:?}"
    );

    // 500: the watcher sees errors, backs off and retries.
    server.fail_with(Some(500));
    server.drop_watches();
    assert_eq!(events.until("Error 500").await, ["Error 500"]);
    server.delete("svc", "default", "a");
    server.fail_with(None);
    let recovered = events.until("Delete default/a").await;
    assert!(
        recovered
            .iter()
            .all(|e| e == "Error 500" || e == "Delete default/a"),
        "{recovered:?}"
    );
    let status = server
        .requests()
        .iter()
        .filter(|r| r.contains("watch="))
        .count();
    assert!(status >= 4, "{:#?}", server.requests());
}

#[tokio::test]
async fn watcher_pages_the_initial_list() {
    let server = ApiServer::start();
    for (i, name) in ["a", "b", "c", "d", "e"].into_iter().enumerate() {
        server.apply(svc("default", name, i as u8));
    }
    let config = watcher::Config::default().page_size(2);
    let mut events = Events::spawn(watcher(Api::<Service>::all(client(&server)), config).boxed());
    let initial = events.until("InitDone").await;
    let names: Vec<_> = initial
        .iter()
        .filter_map(|e| e.strip_prefix("InitApply default/"))
        .collect();
    assert_eq!(names, ["a", "b", "c", "d", "e"]);

    let lists: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| !r.contains("watch="))
        .collect();
    assert_eq!(lists.len(), 3, "{lists:?}");
    assert!(lists.iter().all(|r| r.contains("limit=2")), "{lists:?}");
    assert!(
        lists[1].contains("continue=") && lists[2].contains("continue="),
        "{lists:?}"
    );

    server.delete("svc", "default", "c");
    assert_eq!(events.until("Delete default/c").await, ["Delete default/c"]);
}

#[tokio::test]
async fn watcher_streaming_list() {
    let server = ApiServer::start();
    server.apply(svc("default", "a", 1));
    server.apply(svc("prod", "b", 2));
    let config = watcher::Config::default().streaming_lists();
    let mut events = Events::spawn(watcher(Api::<Service>::all(client(&server)), config).boxed());
    let initial = events.until("InitDone").await;
    assert_eq!(
        initial,
        [
            "Init",
            "InitApply default/a",
            "InitApply prod/b",
            "InitDone"
        ]
    );
    server.apply(svc("prod", "c", 3));
    assert_eq!(events.until("Apply prod/c").await, ["Apply prod/c"]);
    let first = &server.requests()[0];
    assert!(
        first.contains("watch=true") && first.contains("sendInitialEvents=true"),
        "{first}"
    );
}

#[tokio::test]
async fn list_get_and_selectors() {
    let server = populated();
    let client = client(&server);
    let all = Api::<Service>::all(client.clone());
    let names =
        |list: kube::api::ObjectList<Service>| list.items.iter().map(key).collect::<Vec<_>>();

    let list = all.list(&ListParams::default()).await.unwrap();
    assert_eq!(
        list.metadata.resource_version,
        Some(server.resource_version().to_string())
    );
    assert_eq!(names(list), ["default/web", "prod/db", "prod/stateful"]);
    let list = all
        .list(&ListParams::default().labels("tier=data"))
        .await
        .unwrap();
    assert_eq!(names(list), ["prod/db"]);
    let list = all
        .list(&ListParams::default().labels("tier notin (data),!missing"))
        .await
        .unwrap();
    assert_eq!(names(list), ["default/web", "prod/stateful"]);
    let list = all
        .list(&ListParams::default().fields("metadata.namespace!=default"))
        .await
        .unwrap();
    assert_eq!(names(list), ["prod/db", "prod/stateful"]);
    let prod = Api::<Service>::namespaced(client.clone(), "prod");
    let list = prod
        .list(&ListParams::default().fields("metadata.name=stateful"))
        .await
        .unwrap();
    assert_eq!(names(list), ["prod/stateful"]);
    let bad = all
        .list(&ListParams::default().labels("a in (b"))
        .await
        .unwrap_err();
    assert!(
        matches!(bad, kube::Error::Api(ref s) if s.code == 400),
        "{bad:?}"
    );

    // Paging, and continue tokens expire with compaction.
    let page = all.list(&ListParams::default().limit(1)).await.unwrap();
    assert_eq!(page.metadata.remaining_item_count, Some(2));
    let token = page.metadata.continue_.clone().unwrap();
    let next = all
        .list(&ListParams::default().limit(1).continue_token(&token))
        .await
        .unwrap();
    assert_eq!(names(next), ["prod/db"]);
    server.compact();
    let expired = all
        .list(&ListParams::default().limit(1).continue_token(&token))
        .await
        .unwrap_err();
    assert!(
        matches!(expired, kube::Error::Api(ref s) if s.code == 410),
        "{expired:?}"
    );

    let db = prod.get("db").await.unwrap();
    assert_eq!(db.spec.unwrap().cluster_ip.as_deref(), Some("10.96.0.11"));
    assert_eq!(
        db.metadata.uid,
        server.get("svc", "prod", "db").unwrap()["metadata"]["uid"]
            .as_str()
            .map(String::from)
    );
    let missing = prod.get("nope").await.unwrap_err();
    assert!(matches!(missing, kube::Error::Api(ref s) if s.code == 404 && s.reason == "NotFound"));

    // Other kinds, typed.
    use k8s_openapi::api::core::v1::{Endpoints, Namespace, Pod};
    use k8s_openapi::api::discovery::v1::EndpointSlice;
    server.apply(endpoints("prod", "stateful", &["10.1.0.1"], &[HTTP]));
    server.apply(external_name_service("prod", "ext", "example.com"));
    let ns = Api::<Namespace>::all(client.clone())
        .list(&ListParams::default())
        .await
        .unwrap();
    assert_eq!(ns.items.len(), 2);
    let slices = Api::<EndpointSlice>::namespaced(client.clone(), "prod");
    let slice = slices.get("stateful-abcde").await.unwrap();
    assert_eq!(slice.endpoints[0].hostname.as_deref(), Some("stateful-0"));
    assert_eq!(
        slice.endpoints[1].conditions.as_ref().unwrap().ready,
        Some(false)
    );
    let ep = Api::<Endpoints>::namespaced(client.clone(), "prod")
        .get("stateful")
        .await
        .unwrap();
    assert_eq!(
        ep.subsets.unwrap()[0].addresses.as_ref().unwrap()[0].ip,
        "10.1.0.1"
    );
    let pod = Api::<Pod>::all(client.clone())
        .list(&ListParams::default())
        .await
        .unwrap();
    assert_eq!(
        pod.items[0].status.as_ref().unwrap().pod_ip.as_deref(),
        Some("10.1.0.1")
    );
    let ext = prod.get("ext").await.unwrap().spec.unwrap();
    assert_eq!(ext.external_name.as_deref(), Some("example.com"));
}

/// The next raw watch event, within [`WAIT`].
async fn next_raw<S>(stream: &mut S) -> Option<WatchEvent<Service>>
where
    S: Stream<Item = kube::Result<WatchEvent<Service>>> + Unpin,
{
    let next = tokio::time::timeout(WAIT, stream.next())
        .await
        .expect("watch event in time");
    next.map(|event| event.expect("watch event"))
}

fn raw_name(event: &WatchEvent<Service>) -> String {
    match event {
        WatchEvent::Added(s) => format!("ADDED {}", key(s)),
        WatchEvent::Modified(s) => format!("MODIFIED {}", key(s)),
        WatchEvent::Deleted(s) => format!("DELETED {}", key(s)),
        WatchEvent::Bookmark(b) => format!("BOOKMARK {}", b.metadata.resource_version),
        WatchEvent::Error(e) => format!("ERROR {} {}", e.code, e.reason),
    }
}

#[tokio::test]
async fn watch_protocol() {
    let server = populated();
    let api = Api::<Service>::all(client(&server));
    let start = server.resource_version().to_string();

    // A selector watch sees objects enter and leave the selection.
    let quiet = WatchParams::default().disable_bookmarks();
    let mut stream = api
        .watch(&quiet.clone().labels("tier=data"), &start)
        .await
        .unwrap()
        .boxed();
    server.apply(svc("default", "x", 20));
    server.apply(with_labels(svc("default", "x", 20), &[("tier", "data")]));
    server.apply(with_labels(svc("default", "x", 21), &[("tier", "data")]));
    server.apply(svc("default", "x", 21));
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(raw_name(&next_raw(&mut stream).await.unwrap()));
    }
    assert_eq!(
        seen,
        ["ADDED default/x", "MODIFIED default/x", "DELETED default/x"]
    );

    // Replay from an old RV; after compaction, 410 Expired, and the stream ends.
    let mut replay = api
        .watch(&quiet.clone().fields("metadata.name=x"), &start)
        .await
        .unwrap()
        .boxed();
    assert_eq!(
        raw_name(&next_raw(&mut replay).await.unwrap()),
        "ADDED default/x"
    );
    server.compact();
    let mut expired = api.watch(&quiet, &start).await.unwrap().boxed();
    assert_eq!(
        raw_name(&next_raw(&mut expired).await.unwrap()),
        "ERROR 410 Expired"
    );
    assert!(next_raw(&mut expired).await.is_none());

    // Bookmarks on demand carry the current RV; timeoutSeconds ends the stream.
    let now = server.resource_version().to_string();
    let params = WatchParams::default().timeout(1);
    let began = Instant::now();
    let mut marked = api.watch(&params, &now).await.unwrap().boxed();
    server.apply(namespace("other"));
    server.bookmark_now();
    let bookmark = format!("BOOKMARK {}", server.resource_version());
    assert_eq!(raw_name(&next_raw(&mut marked).await.unwrap()), bookmark);
    while let Some(event) = next_raw(&mut marked).await {
        assert!(matches!(event, WatchEvent::Bookmark(_)));
    }
    assert!(
        began.elapsed() < Duration::from_secs(5),
        "{:?}",
        began.elapsed()
    );
}

#[tokio::test]
async fn faults_pause_and_shutdown() {
    let server = populated();
    let mut config = server.kube_config();
    config.default_retry = false;
    let api = Api::<Service>::all(kube::Client::try_from(config).unwrap());

    server.fail_with(Some(429));
    let err = api.list(&ListParams::default()).await.unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 429 && s.reason == "TooManyRequests")
    );
    server.fail_with(None);

    server.pause();
    let held = tokio::spawn({
        let api = api.clone();
        async move { api.list(&ListParams::default()).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!held.is_finished());
    server.resume();
    let list = tokio::time::timeout(WAIT, held)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(list.items.len(), 3);

    // Dropping the server ends open watches.
    let rv = server.resource_version().to_string();
    let mut stream = api
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    eventually("the watch", || server.watch_count() == 1).await;
    drop(server);
    let end = tokio::time::timeout(WAIT, async {
        while let Some(Ok(_)) = stream.next().await {}
    });
    end.await.expect("the watch ends when the server stops");
}

/// Sends raw HTTP requests on one connection (the last should close it); returns the responses.
fn raw_http(server: &ApiServer, requests: &str) -> String {
    let mut conn = TcpStream::connect(server.addr).unwrap();
    conn.set_read_timeout(Some(WAIT)).unwrap();
    conn.write_all(requests.as_bytes()).unwrap();
    let mut out = Vec::new();
    conn.read_to_end(&mut out)
        .expect("the server closes the connection");
    String::from_utf8(out).unwrap()
}

#[test]
fn raw_http_keep_alive_discovery_and_chunked_watch() {
    let server = populated();
    let out = raw_http(
        &server,
        concat!(
            "GET /version HTTP/1.1\r\nHost: x\r\n\r\n",
            "POST /api/v1/namespaces/prod/services HTTP/1.1\r\nHost: x\r\n",
            "Content-Length: 2\r\n\r\n{}",
            "GET /api/v1/namespaces/prod/services?watch=1&labelSelector=tier%3Ddata",
            "&timeoutSeconds=1 HTTP/1.1\r\nHost: x\r\n\r\n",
            // Pipelined: answered after the watch times out.
            "GET /api HTTP/1.1\r\nConnection: close\r\n\r\n",
        ),
    );
    let statuses: Vec<_> = out.lines().filter(|l| l.starts_with("HTTP/1.1")).collect();
    assert_eq!(
        statuses,
        [
            "HTTP/1.1 200 OK",
            "HTTP/1.1 405 Method Not Allowed",
            "HTTP/1.1 200 OK",
            "HTTP/1.1 200 OK",
        ],
        "{out}"
    );
    assert!(out.contains(r#""gitVersion":"v1.33.0""#), "{out}");
    let (_, watch) = out
        .split_once("Transfer-Encoding: chunked\r\n\r\n")
        .unwrap();
    let (watch, api) = watch.split_once("0\r\n\r\nHTTP/1.1 200 OK").unwrap();
    assert!(api.contains("APIVersions"), "{api}");
    let mut chunk = watch.lines();
    let size = usize::from_str_radix(chunk.next().unwrap(), 16).unwrap();
    let event: Value = serde_json::from_str(chunk.next().unwrap()).unwrap();
    assert_eq!(size, serde_json::to_string(&event).unwrap().len() + 1);
    assert_eq!(event["type"], "ADDED");
    assert_eq!(event["object"]["kind"], "Service");
    assert_eq!(event["object"]["metadata"]["name"], "db");

    for (path, kind) in [
        ("/api", "APIVersions"),
        ("/apis", "APIGroupList"),
        ("/apis/discovery.k8s.io", "APIGroup"),
        ("/api/v1", "APIResourceList"),
        ("/apis/discovery.k8s.io/v1", "APIResourceList"),
        ("/api/v1/namespaces/prod", "Namespace"),
        (
            "/apis/discovery.k8s.io/v1/endpointslices",
            "EndpointSliceList",
        ),
        ("/api/v1/namespaces/default/namespaces", "Status"),
    ] {
        let out = raw_http(
            &server,
            &format!("GET {path} HTTP/1.1\r\nConnection: close\r\n\r\n"),
        );
        let body: Value = serde_json::from_str(out.split_once("\r\n\r\n").unwrap().1).unwrap();
        assert_eq!(body["kind"], kind, "{path}: {out}");
    }
    assert_eq!(server.requests()[0], "GET /version");
    assert_eq!(
        server.requests()[2],
        "GET /api/v1/namespaces/prod/services?watch=1&labelSelector=tier%3Ddata&timeoutSeconds=1"
    );
}

// ---- TLS ----

fn list_names(services: kube::api::ObjectList<Service>) -> Vec<String> {
    services.items.iter().map(key).collect()
}

#[tokio::test]
async fn tls_with_client_certificates_serves_watches_and_refuses_clients_it_cannot_verify() {
    let pki = TestPki::generate();
    let options = TlsOptions {
        client_cert: true,
        ..TlsOptions::default()
    };
    let server = ApiServer::start_tls(&pki, options);
    assert_eq!(server.url(), format!("https://{}", server.addr));
    server.apply(svc("default", "a", 1));
    let api = Api::<Service>::all(client(&server));
    let mut events = Events::spawn(watcher(api, watcher::Config::default()).boxed());
    assert_eq!(
        events.until("InitDone").await,
        ["Init", "InitApply default/a", "InitDone"]
    );
    server.apply(svc("default", "b", 2));
    assert_eq!(events.until("Apply default/b").await, ["Apply default/b"]);
    assert_eq!(server.tls_failures(), Vec::<String>::new());
    let requests = server.requests().len();

    let other = TestPki::generate();
    let no_identity = {
        let mut c = server.kube_config();
        c.auth_info.client_certificate = None;
        c.auth_info.client_key = None;
        c
    };
    let other_identity = {
        let mut c = server.kube_config();
        c.auth_info.client_certificate = Some(other.client_cert.display().to_string());
        c.auth_info.client_key = Some(other.client_key.display().to_string());
        c
    };
    let other_ca = {
        let mut c = server.kube_config();
        c.root_cert = Some(vec![other.ca_der()]);
        c
    };
    for (what, config) in [
        ("no client certificate", no_identity),
        ("a client certificate of another CA", other_identity),
        ("trusting another CA", other_ca),
    ] {
        let failures = server.tls_failures().len();
        let api = Api::<Service>::all(kube::Client::try_from(config).unwrap());
        let result = tokio::time::timeout(WAIT, api.list(&ListParams::default())).await;
        let err = result
            .unwrap_or_else(|_| panic!("{what}: no answer within {WAIT:?}"))
            .map(list_names)
            .expect_err(what);
        assert!(
            !matches!(err, kube::Error::Api(_)),
            "{what}: an HTTP answer: {err}"
        );
        eventually(&format!("{what}: the failed handshake"), || {
            server.tls_failures().len() > failures
        })
        .await;
    }
    assert_eq!(server.requests().len(), requests, "{:?}", server.requests());
}

#[tokio::test]
async fn tls_with_a_bearer_token_answers_401_unauthorized_without_it() {
    let pki = TestPki::generate();
    let options = TlsOptions {
        bearer_token: true,
        ..TlsOptions::default()
    };
    let server = ApiServer::start_tls(&pki, options);
    server.apply(svc("default", "a", 1));
    let list = Api::<Service>::all(client(&server))
        .list(&ListParams::default())
        .await
        .unwrap();
    assert_eq!(list_names(list), ["default/a"]);
    let bearer = format!("Bearer {}", pki.token);
    assert_eq!(server.authorizations(), [Some(bearer)]);

    let mut config = server.kube_config();
    config.auth_info.token_file = None;
    let err = Api::<Service>::all(kube::Client::try_from(config).unwrap())
        .list(&ListParams::default())
        .await
        .unwrap_err();
    let kube::Error::Api(status) = err else {
        panic!("not an API error: {err}");
    };
    assert_eq!(
        (status.code, status.reason.as_str(), status.message.as_str()),
        (401, "Unauthorized", "Unauthorized")
    );
    assert_eq!(server.authorizations().last(), Some(&None));

    // The same over a raw TLS connection: the Status body as kube-apiserver writes it.
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.ca_der().into()).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    tls.write_all(b"GET /api/v1/services HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    tokio::time::timeout(WAIT, tls.read_to_string(&mut out))
        .await
        .expect("the server closes the connection")
        .expect("a clean TLS close");
    assert!(out.starts_with("HTTP/1.1 401 Unauthorized\r\n"), "{out}");
    let body: Value = serde_json::from_str(out.split_once("\r\n\r\n").unwrap().1).unwrap();
    assert_eq!(
        body,
        serde_json::json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": "Unauthorized",
            "reason": "Unauthorized",
            "code": 401,
        })
    );
}
