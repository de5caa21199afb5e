//! HTTP/1.1 over TCP or TLS, by hand: keep-alive connections, JSON responses with
//! Content-Length, and watch responses as chunked streams of newline-delimited events.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{
    AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader,
};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_rustls::TlsAcceptor;

use super::selector::Filter;
use super::store::{ApiError, RESOURCES, Resource, Store, watch_event};

/// How often watches that allow bookmarks get one.
pub const BOOKMARK_INTERVAL: Duration = Duration::from_secs(1);
/// The watch timeout when the client sets none (kube-apiserver picks 30–60 minutes).
const DEFAULT_WATCH_TIMEOUT: Duration = Duration::from_secs(1800);
/// Limits on a request head, so a broken client cannot grow memory without bound.
const MAX_HEAD_LINE: usize = 16 * 1024;
const MAX_HEADERS: usize = 100;
/// Longest a TLS handshake may take before the connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest the server waits to close a connection cleanly (TLS close_notify, then FIN).
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// State shared by the test handle and the server tasks.
#[derive(Default)]
pub struct Shared {
    pub store: Mutex<Store>,
    /// Bumped after every write to the store; watches wake on it.
    pub changed: watch::Sender<u64>,
    /// Bumped to abort every open watch connection.
    pub drop_watches: watch::Sender<u64>,
    /// Bumped to make every open watch send a bookmark now.
    pub bookmark_now: watch::Sender<u64>,
    /// While true, requests are held without an answer.
    pub paused: watch::Sender<bool>,
    /// Set once, when the server stops.
    pub shutdown: watch::Sender<bool>,
    /// When set, every request fails with this HTTP status.
    pub fail_with: Mutex<Option<u16>>,
    pub requests: Mutex<Vec<String>>,
    /// The `Authorization` header of each request in `requests` (None when it had none).
    pub authorizations: Mutex<Vec<Option<String>>>,
    pub open_watches: AtomicUsize,
    /// When set, a request without `Authorization: Bearer <this>` gets 401 Unauthorized.
    pub bearer_token: Option<String>,
    /// Why each failed TLS handshake failed.
    pub tls_failures: Mutex<Vec<String>>,
}

/// Locks a mutex, ignoring poisoning (a panicking test must not break the other threads).
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

pub fn bump(counter: &watch::Sender<u64>) {
    counter.send_modify(|n| *n += 1);
}

/// Waits until a flag has the given value.
async fn until(flag: &mut watch::Receiver<bool>, value: bool) {
    let _ = flag.wait_for(|v| *v == value).await;
}

/// Accepts connections until shutdown; with `tls`, each one is a TLS connection (the handshake
/// runs in the connection's own task, so a stalled client holds up no other).
pub async fn serve(listener: TcpListener, shared: Arc<Shared>, tls: Option<TlsAcceptor>) {
    let mut shutdown = shared.shutdown.subscribe();
    loop {
        tokio::select! {
            _ = until(&mut shutdown, true) => return,
            accepted = listener.accept() => {
                let Ok((socket, _)) = accepted else { continue };
                let _ = socket.set_nodelay(true);
                match &tls {
                    None => {
                        tokio::spawn(connection(socket, shared.clone()));
                    }
                    Some(acceptor) => {
                        tokio::spawn(tls_connection(acceptor.clone(), socket, shared.clone()));
                    }
                }
            }
        }
    }
}

/// Completes the TLS handshake, then serves HTTP on the connection; a failed handshake is
/// recorded in [`Shared::tls_failures`].
async fn tls_connection(acceptor: TlsAcceptor, socket: tokio::net::TcpStream, shared: Arc<Shared>) {
    let mut shutdown = shared.shutdown.subscribe();
    let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(socket));
    let result = tokio::select! {
        result = handshake => result,
        _ = until(&mut shutdown, true) => return,
    };
    match result {
        Ok(Ok(stream)) => connection(stream, shared).await,
        Ok(Err(err)) => lock(&shared.tls_failures).push(err.to_string()),
        Err(_) => lock(&shared.tls_failures).push("handshake timed out".into()),
    }
}

struct Request {
    method: String,
    /// Path and query as sent, for the request log.
    target: String,
    path: String,
    query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    keep_alive: bool,
}

impl Request {
    fn param(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn flag(&self, key: &str) -> Option<bool> {
        self.param(key).map(|v| matches!(v, "true" | "1"))
    }

    fn header(&self, name: &str) -> Option<&str> {
        let mut matching = self
            .headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name));
        matching.next().map(|(_, v)| v.as_str())
    }
}

/// What to answer: a complete response, or a watch stream.
enum Reply {
    Full {
        status: u16,
        content_type: &'static str,
        body: Vec<u8>,
    },
    Watch(WatchSpec),
}

impl Reply {
    fn json(value: &Value) -> Self {
        Reply::json_status(200, value)
    }

    fn error(err: &ApiError) -> Self {
        Reply::json_status(err.code, &err.status())
    }

    /// JSON ending in a newline, as Go's encoder writes it.
    fn json_status(status: u16, value: &Value) -> Self {
        let mut body = serde_json::to_vec(value).expect("JSON serializes");
        body.push(b'\n');
        Reply::Full {
            status,
            content_type: "application/json",
            body,
        }
    }
}

struct WatchSpec {
    res: &'static Resource,
    filter: Filter,
    /// The RV to start after; None for "now", with the current objects as ADDED events.
    start: Option<u64>,
    initial_events: bool,
    /// Streaming list: end the initial events with an `initial-events-end` bookmark.
    initial_events_end: bool,
    bookmarks: bool,
    timeout: Duration,
}

/// Serves requests on one connection (plain TCP or TLS) until either side closes it, then
/// closes it cleanly (for TLS, with a close_notify alert).
async fn connection<S>(stream: S, shared: Arc<Shared>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (reader, mut writer) = tokio::io::split(stream);
    let mut reader = BufReader::new(reader);
    exchange(&mut reader, &mut writer, &shared).await;
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, writer.shutdown()).await;
}

/// The request/response loop of [`connection`].
async fn exchange<R, W>(reader: &mut R, writer: &mut W, shared: &Shared)
where
    R: AsyncBufRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut shutdown = shared.shutdown.subscribe();
    loop {
        let request = tokio::select! {
            request = read_request(reader) => request,
            _ = until(&mut shutdown, true) => return,
        };
        let Ok(Some(request)) = request else { return };
        lock(&shared.requests).push(format!("{} {}", request.method, request.target));
        let authorization = request.header("authorization").map(str::to_owned);
        lock(&shared.authorizations).push(authorization.clone());

        let mut paused = shared.paused.subscribe();
        tokio::select! {
            _ = until(&mut paused, false) => {}
            _ = until(&mut shutdown, true) => return,
        }
        let authorized = match &shared.bearer_token {
            None => true,
            Some(token) => authorization.as_deref() == Some(format!("Bearer {token}").as_str()),
        };
        let reply = if !authorized {
            // As kube-apiserver answers a request that no authenticator accepts.
            Reply::error(&ApiError::new(401, "Unauthorized"))
        } else {
            match *lock(&shared.fail_with) {
                Some(code) => {
                    Reply::error(&ApiError::new(code, format!("injected failure {code}")))
                }
                None => route(shared, &request),
            }
        };
        let usable = match reply {
            Reply::Full {
                status,
                content_type,
                body,
            } => write_full(writer, status, content_type, &body)
                .await
                .is_ok(),
            Reply::Watch(spec) => {
                let _open = OpenWatch::new(shared);
                stream_watch(shared, reader, writer, spec)
                    .await
                    .unwrap_or(false)
            }
        };
        if !usable || !request.keep_alive {
            return;
        }
    }
}

/// Counts an open watch for as long as it lives.
struct OpenWatch<'a>(&'a Shared);

impl<'a> OpenWatch<'a> {
    fn new(shared: &'a Shared) -> Self {
        shared.open_watches.fetch_add(1, Ordering::SeqCst);
        OpenWatch(shared)
    }
}

impl Drop for OpenWatch<'_> {
    fn drop(&mut self) {
        self.0.open_watches.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Reads one request head (and discards any body); None at a clean end of the connection.
async fn read_request<R: AsyncBufRead + Unpin>(reader: &mut R) -> io::Result<Option<Request>> {
    let mut line = String::new();
    let request_line = loop {
        line.clear();
        if read_line(reader, &mut line).await? == 0 {
            return Ok(None);
        }
        if !line.trim().is_empty() {
            break line.trim().to_owned();
        }
    };
    let invalid = || io::Error::new(io::ErrorKind::InvalidData, "bad request line");
    let mut parts = request_line.split(' ');
    let method = parts.next().ok_or_else(invalid)?.to_owned();
    let target = parts.next().ok_or_else(invalid)?.to_owned();
    let version = parts.next().ok_or_else(invalid)?.to_owned();

    let mut headers = Vec::new();
    loop {
        line.clear();
        if read_line(reader, &mut line).await? == 0 || headers.len() > MAX_HEADERS {
            return Err(invalid());
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':').ok_or_else(invalid)?;
        headers.push((name.trim().to_owned(), value.trim().to_owned()));
    }
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let mut request = Request {
        method,
        path: percent_decode(path),
        query: parse_query(query),
        target: target.clone(),
        headers,
        keep_alive: true,
    };
    let connection = request
        .header("connection")
        .unwrap_or("")
        .to_ascii_lowercase();
    request.keep_alive = if version == "HTTP/1.0" {
        connection == "keep-alive"
    } else {
        connection != "close"
    };
    let length = request
        .header("content-length")
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(length) = length {
        tokio::io::copy(&mut reader.take(length), &mut tokio::io::sink()).await?;
    } else if request.header("transfer-encoding").is_some() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "chunked request bodies unsupported",
        ));
    }
    Ok(Some(request))
}

async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    line: &mut String,
) -> io::Result<usize> {
    let n = reader.take(MAX_HEAD_LINE as u64).read_line(line).await?;
    if n == MAX_HEAD_LINE && !line.ends_with('\n') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "request line too long",
        ));
    }
    Ok(n)
}

fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (
                percent_decode(&k.replace('+', " ")),
                percent_decode(&v.replace('+', " ")),
            )
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = (bytes[i] == b'%')
            .then(|| text.get(i + 1..i + 3))
            .flatten()
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match hex {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        410 => "Gone",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

async fn write_full<W: AsyncWrite + Unpin>(
    writer: &mut W,
    status: u16,
    content_type: &str,
    body: &[u8],
) -> io::Result<()> {
    // As kube-apiserver's flow control does (kube-rs honours it when retrying).
    let retry_after = if status == 429 {
        "Retry-After: 1\r\n"
    } else {
        ""
    };
    let head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Cache-Control: no-cache, private\r\n{retry_after}\r\n",
        reason_phrase(status),
        body.len(),
    );
    let mut response = head.into_bytes();
    response.extend_from_slice(body);
    send(writer, &response).await
}

/// Writes and flushes: a TLS stream may keep written bytes in its buffer until flushed.
async fn send<W: AsyncWrite + Unpin>(writer: &mut W, data: &[u8]) -> io::Result<()> {
    writer.write_all(data).await?;
    writer.flush().await
}

async fn write_chunk<W: AsyncWrite + Unpin>(writer: &mut W, data: &[u8]) -> io::Result<()> {
    let mut chunk = format!("{:x}\r\n", data.len()).into_bytes();
    chunk.extend_from_slice(data);
    chunk.extend_from_slice(b"\r\n");
    send(writer, &chunk).await
}

async fn write_events<W: AsyncWrite + Unpin>(writer: &mut W, events: &[Value]) -> io::Result<()> {
    let mut lines = Vec::new();
    for event in events {
        serde_json::to_writer(&mut lines, event).expect("JSON serializes");
        lines.push(b'\n');
    }
    if lines.is_empty() {
        Ok(())
    } else {
        write_chunk(writer, &lines).await
    }
}

/// Serves a watch. Ok(true) if it ended cleanly (the connection can be reused), Ok(false) if it
/// was aborted, or the client went away.
async fn stream_watch<R, W>(
    shared: &Shared,
    reader: &mut R,
    writer: &mut W,
    spec: WatchSpec,
) -> io::Result<bool>
where
    R: AsyncBufRead + Unpin,
    W: AsyncWrite + Unpin,
{
    // Subscribe before reading the store, so no change between the two is missed.
    let mut changed = shared.changed.subscribe();
    let mut drops = shared.drop_watches.subscribe();
    let mut marks = shared.bookmark_now.subscribe();
    let mut shutdown = shared.shutdown.subscribe();
    let deadline = Instant::now() + spec.timeout;
    let mut ticker =
        tokio::time::interval_at(Instant::now() + BOOKMARK_INTERVAL, BOOKMARK_INTERVAL);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);

    send(
        writer,
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
              Cache-Control: no-cache, private\r\nTransfer-Encoding: chunked\r\n\r\n",
    )
    .await?;

    let res = spec.res;
    let start = lock(&shared.store).watch_start(res, &spec.filter, spec.start, spec.initial_events);
    let mut cursor = match start {
        Ok((events, cursor)) => {
            write_events(writer, &events).await?;
            if spec.initial_events_end {
                write_events(
                    writer,
                    &[watch_event("BOOKMARK", res.bookmark(cursor, true))],
                )
                .await?;
            }
            cursor
        }
        Err(gone) => {
            write_events(writer, &[watch_event("ERROR", gone.status())]).await?;
            send(writer, b"0\r\n\r\n").await?;
            return Ok(true);
        }
    };
    let mut client_open = true;
    loop {
        let bookmark = tokio::select! {
            _ = until(&mut shutdown, true) => return Ok(false),
            _ = drops.changed() => return Ok(false),
            _ = tokio::time::sleep_until(deadline) => break,
            read = reader.fill_buf(), if client_open => {
                match read {
                    Ok([]) | Err(_) => return Ok(false), // the client hung up
                    Ok(_) => client_open = false,       // pipelined request: stop polling
                }
                continue;
            }
            _ = changed.changed() => false,
            _ = marks.changed() => true,
            _ = ticker.tick(), if spec.bookmarks => {
                let bookmark = watch_event("BOOKMARK", res.bookmark(cursor, false));
                write_events(writer, &[bookmark]).await?;
                continue;
            }
        };
        let next = lock(&shared.store).watch_next(res, &spec.filter, cursor);
        match next {
            Ok((mut events, next_cursor)) => {
                cursor = next_cursor;
                if bookmark && spec.bookmarks {
                    events.push(watch_event("BOOKMARK", res.bookmark(cursor, false)));
                }
                write_events(writer, &events).await?;
            }
            Err(gone) => {
                write_events(writer, &[watch_event("ERROR", gone.status())]).await?;
                break;
            }
        }
    }
    send(writer, b"0\r\n\r\n").await?;
    Ok(true)
}

fn route(shared: &Shared, req: &Request) -> Reply {
    if req.method != "GET" {
        return Reply::error(&ApiError::new(
            405,
            format!("{} is not supported", req.method),
        ));
    }
    let segments: Vec<&str> = req.path.split('/').filter(|s| !s.is_empty()).collect();
    let result = match segments.as_slice() {
        ["version"] => Ok(Reply::json(&version())),
        ["api"] => Ok(Reply::json(&json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [
                { "clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1" },
            ],
        }))),
        ["apis"] => Ok(Reply::json(&json!({
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": [api_group("discovery.k8s.io", "v1")],
        }))),
        ["apis", "discovery.k8s.io"] => {
            let mut group = api_group("discovery.k8s.io", "v1");
            group["kind"] = json!("APIGroup");
            group["apiVersion"] = json!("v1");
            Ok(Reply::json(&group))
        }
        ["api", "v1"] => Ok(Reply::json(&resource_list("", "v1"))),
        ["apis", "discovery.k8s.io", "v1"] => {
            Ok(Reply::json(&resource_list("discovery.k8s.io", "v1")))
        }
        ["api", "v1", rest @ ..] => resource_request(shared, req, "", "v1", rest),
        ["apis", group, version, rest @ ..] => resource_request(shared, req, group, version, rest),
        _ => Err(not_found()),
    };
    result.unwrap_or_else(|err| Reply::error(&err))
}

fn not_found() -> ApiError {
    ApiError::new(404, "the server could not find the requested resource")
}

fn version() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "gitVersion": "v1.33.0",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-04-23T00:00:00Z",
        "goVersion": "go1.24.2",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

fn api_group(group: &str, version: &str) -> Value {
    let gv = json!({ "groupVersion": format!("{group}/{version}"), "version": version });
    json!({ "name": group, "versions": [gv], "preferredVersion": gv })
}

fn resource_list(group: &str, version: &str) -> Value {
    let resources: Vec<Value> = RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
        .map(|r| {
            json!({
                "name": r.plural,
                "singularName": r.singular,
                "namespaced": r.namespaced,
                "kind": r.kind,
                "verbs": ["get", "list", "watch"],
                "shortNames": r.short_names,
            })
        })
        .collect();
    let group_version = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    })
}

/// GET, LIST or WATCH of a resource: `[namespaces/{ns}/]{plural}[/{name}]` below the group version.
fn resource_request(
    shared: &Shared,
    req: &Request,
    group: &str,
    version: &str,
    rest: &[&str],
) -> Result<Reply, ApiError> {
    let (namespace, plural, name) = match *rest {
        ["namespaces", ns, plural] => (Some(ns), plural, None),
        ["namespaces", ns, plural, name] => (Some(ns), plural, Some(name)),
        [plural] => (None, plural, None),
        [plural, name] => (None, plural, Some(name)),
        _ => return Err(not_found()),
    };
    let res = Resource::find(group, version, plural).ok_or_else(not_found)?;
    if namespace.is_some() && !res.namespaced {
        return Err(not_found());
    }
    let bad_request = |msg: String| ApiError::new(400, msg);
    let mut filter = Filter::parse(
        namespace.map(str::to_owned),
        req.param("labelSelector"),
        req.param("fieldSelector"),
    )
    .map_err(bad_request)?;
    let watching = req.flag("watch") == Some(true);

    if let Some(name) = name
        && !watching
    {
        let store = lock(&shared.store);
        let obj = store
            .get(res, namespace.unwrap_or(""), name)
            .ok_or_else(|| ApiError::new(404, format!("{} \"{name}\" not found", res.plural)))?;
        return Ok(Reply::json(obj));
    }
    if let Some(name) = name {
        filter = filter.with_name(name);
    }

    let rv = match req.param("resourceVersion").unwrap_or("") {
        "" | "0" => None,
        rv => Some(
            rv.parse::<u64>()
                .map_err(|_| bad_request(format!("invalid resource version {rv:?}")))?,
        ),
    };
    if !watching {
        let limit = match req.param("limit") {
            Some(limit) => Some(
                limit
                    .parse::<usize>()
                    .map_err(|_| bad_request(format!("invalid limit {limit:?}")))?,
            ),
            None => None,
        };
        let continue_token = req.param("continue").filter(|c| !c.is_empty());
        let list =
            lock(&shared.store).list(res, &filter, limit.filter(|&l| l > 0), continue_token)?;
        return Ok(Reply::json(&list));
    }

    let bookmarks = req.flag("allowWatchBookmarks") == Some(true);
    let send_initial_events = req.flag("sendInitialEvents");
    if send_initial_events == Some(true) {
        if req.param("resourceVersionMatch") != Some("NotOlderThan") {
            return Err(bad_request(
                "sendInitialEvents requires resourceVersionMatch=NotOlderThan".into(),
            ));
        }
        if !bookmarks {
            return Err(bad_request(
                "sendInitialEvents requires allowWatchBookmarks=true".into(),
            ));
        }
    }
    let timeout = match req.param("timeoutSeconds") {
        Some(secs) => Duration::from_secs(
            secs.parse()
                .map_err(|_| bad_request(format!("invalid timeoutSeconds {secs:?}")))?,
        ),
        None => DEFAULT_WATCH_TIMEOUT,
    };
    Ok(Reply::Watch(WatchSpec {
        res,
        filter,
        start: rv,
        initial_events: send_initial_events.unwrap_or(rv.is_none()),
        initial_events_end: send_initial_events == Some(true),
        bookmarks,
        timeout,
    }))
}
