//! The mirror of etcd's keys under the plugin's path: a list, then a watch from the list's
//! revision, through etcd v3's HTTP/JSON gateway (`/v3/kv/range`, `/v3/watch`,
//! `/v3/lease/timetolive`, `/v3/auth/authenticate`), spoken with hyper over the crate's HTTP
//! and TLS stacks.
//!
//! Each change the watch delivers is applied to a copy of the last snapshot (a persistent map:
//! a copy costs nothing) and published whole, so a query reads one consistent snapshot.
//! Every 10 s the session checks that its endpoint still answers and asks the remaining time of
//! the leases in use. Any failure (the endpoint unreachable, the watch closed or compacted
//! away, a check timing out) ends the session; the next one, on the next endpoint after a
//! growing pause (0.5 s to 30 s), lists everything again and replaces the snapshot whole, so
//! after a fault the mirror is what a fresh list gives. Until then the last snapshot is served.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

use super::{Entry, Etcd, Store};

/// How long one request may take (CoreDNS's etcd timeout).
const TIMEOUT: Duration = Duration::from_secs(5);
/// How often a session checks its endpoint and the leases.
const CHECK_EVERY: Duration = Duration::from_secs(10);
/// The most a list, or one watch message, may bring.
const MAX_BODY: usize = 256 << 20;
/// The pauses between sessions.
const FIRST_PAUSE: Duration = Duration::from_millis(500);
const LONGEST_PAUSE: Duration = Duration::from_secs(30);

/// An HTTP/1.1 client over plain TCP or TLS.
pub type Http = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// A client for `http://` and `https://` URLs, with `tls` for the second.
pub fn http_client(tls: rustls::ClientConfig) -> Http {
    // TCP keepalive: a peer gone silent (a connection dropped by a NAT or load balancer) is
    // found within a minute, so a long watch never waits on a dead connection for ever.
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_keepalive(Some(Duration::from_secs(30)));
    http.set_keepalive_interval(Some(Duration::from_secs(10)));
    http.set_keepalive_retries(Some(3));
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Client::builder(TokioExecutor::new()).build(connector)
}

/// Why a session with an endpoint ended.
#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    #[error("{0}: {1}")]
    Http(String, String),
    #[error("{0}: timed out")]
    Timeout(String),
    #[error("{0}: status {1}: {2}")]
    Status(String, u16, String),
    #[error("{0}: {1}")]
    Decode(String, String),
    #[error("the watch ended: {0}")]
    WatchEnded(String),
}

/// Keeps an [`Etcd`] plugin's snapshot equal to what etcd holds under its path.
pub struct Mirror {
    etcd: Etcd,
    endpoints: Vec<String>,
    credentials: Option<(String, String)>,
    http: Http,
    /// The range every key served lies in: the path and what sorts after it.
    key: String,
    range_end: String,
}

impl Mirror {
    /// A mirror of `endpoints` (base URLs) for `etcd`, with `tls` for `https://` ones.
    pub fn new(
        etcd: Etcd,
        endpoints: Vec<String>,
        credentials: Option<(String, String)>,
        tls: rustls::ClientConfig,
    ) -> Self {
        let http = http_client(tls);
        let prefix = super::clean(&format!("/{}", etcd.prefix()));
        Self {
            etcd,
            endpoints,
            credentials,
            http,
            key: B64.encode(prefix.as_bytes()),
            range_end: B64.encode(prefix_end(prefix.as_bytes())),
        }
    }

    /// Runs sessions, one endpoint after another, for as long as the server runs.
    pub async fn run(self) {
        let mut pause = FIRST_PAUSE;
        for endpoint in self.endpoints.iter().cycle() {
            let started = Instant::now();
            match self.session(endpoint).await {
                Ok(()) => {}
                Err(e) => tracing::warn!("etcd: {e}"),
            }
            // A session that lasted a while earned a quick retry.
            if started.elapsed() > LONGEST_PAUSE {
                pause = FIRST_PAUSE;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(LONGEST_PAUSE);
        }
    }

    /// Lists, publishes, then follows the watch until something fails.
    async fn session(&self, endpoint: &str) -> Result<(), MirrorError> {
        let token = match &self.credentials {
            Some((user, password)) => {
                let reply = self
                    .call(
                        endpoint,
                        None,
                        "/v3/auth/authenticate",
                        json!({ "name": user, "password": password }),
                    )
                    .await?;
                reply["token"].as_str().map(str::to_string)
            }
            None => None,
        };
        let token = token.as_deref();
        let (revision, kvs) = self.list(endpoint, token).await?;
        let mut store = Store {
            kvs,
            leases: Arc::default(),
        };
        store.leases = Arc::new(self.leases(endpoint, token, lease_ids(&store)).await?);
        let count = store.kvs.len();
        self.etcd.publish(Arc::new(store.clone()));
        tracing::info!(endpoint, keys = count, revision, "etcd: listed");
        self.watch(endpoint, token, revision + 1, store).await
    }

    async fn list(
        &self,
        endpoint: &str,
        token: Option<&str>,
    ) -> Result<(i64, imbl::OrdMap<String, Arc<Entry>>), MirrorError> {
        let reply = self
            .call(
                endpoint,
                token,
                "/v3/kv/range",
                json!({ "key": self.key, "range_end": self.range_end }),
            )
            .await?;
        let revision = int(&reply["header"]["revision"]);
        let mut kvs = imbl::OrdMap::new();
        for kv in reply["kvs"].as_array().into_iter().flatten() {
            let (key, entry) =
                decode_kv(kv).map_err(|e| MirrorError::Decode(endpoint.into(), e))?;
            kvs.insert(key, Arc::new(entry));
        }
        Ok((revision, kvs))
    }

    /// The remaining time of the leases `ids`, asked 16 at a time.
    async fn leases(
        &self,
        endpoint: &str,
        token: Option<&str>,
        ids: Vec<i64>,
    ) -> Result<HashMap<i64, (i64, Instant)>, MirrorError> {
        use futures::StreamExt;
        let asked = futures::stream::iter(ids)
            .map(|id| async move {
                let reply = self
                    .call(
                        endpoint,
                        token,
                        "/v3/lease/timetolive",
                        json!({ "ID": id.to_string() }),
                    )
                    .await?;
                Ok::<_, MirrorError>((id, (int(&reply["TTL"]), Instant::now())))
            })
            .buffer_unordered(16);
        futures::pin_mut!(asked);
        let mut leases = HashMap::new();
        while let Some(lease) = asked.next().await {
            let (id, ttl) = lease?;
            leases.insert(id, ttl);
        }
        Ok(leases)
    }

    /// Follows the watch from `revision`, publishing each change.
    async fn watch(
        &self,
        endpoint: &str,
        token: Option<&str>,
        revision: i64,
        mut store: Store,
    ) -> Result<(), MirrorError> {
        let body = json!({ "create_request": {
            "key": self.key,
            "range_end": self.range_end,
            "start_revision": revision.to_string(),
            "progress_notify": true,
        }});
        let response = tokio::time::timeout(
            TIMEOUT,
            self.http
                .request(request(endpoint, token, "/v3/watch", &body)),
        )
        .await
        .map_err(|_| MirrorError::Timeout(endpoint.into()))?
        .map_err(|e| MirrorError::Http(endpoint.into(), e.to_string()))?;
        let status = response.status();
        let mut body = response.into_body();
        if !status.is_success() {
            return Err(MirrorError::Status(
                endpoint.into(),
                status.as_u16(),
                String::new(),
            ));
        }
        let mut pending: Vec<u8> = Vec::new();
        let mut check =
            tokio::time::interval_at(tokio::time::Instant::now() + CHECK_EVERY, CHECK_EVERY);
        loop {
            tokio::select! {
                frame = body.frame() => {
                    let frame = match frame {
                        None => return Err(MirrorError::WatchEnded("closed by the server".into())),
                        Some(Err(e)) => return Err(MirrorError::Http(endpoint.into(), e.to_string())),
                        Some(Ok(frame)) => frame,
                    };
                    let Some(data) = frame.data_ref() else { continue };
                    // Messages end with a newline: only complete ones are read, each once.
                    let scanned = pending.len();
                    pending.extend_from_slice(data);
                    if pending.len() > MAX_BODY {
                        return Err(MirrorError::Decode(endpoint.into(), "a watch message over 256 MiB".into()));
                    }
                    let Some(last) = pending[scanned..].iter().rposition(|&b| b == b'\n') else {
                        continue;
                    };
                    let end = scanned + last + 1;
                    let changed = self.apply(endpoint, &pending[..end], &mut store)?;
                    pending.drain(..end);
                    if changed {
                        let unknown: Vec<i64> = lease_ids(&store)
                            .into_iter()
                            .filter(|id| !store.leases.contains_key(id))
                            .collect();
                        if !unknown.is_empty() {
                            let mut leases = (*store.leases).clone();
                            leases.extend(self.leases(endpoint, token, unknown).await?);
                            store.leases = Arc::new(leases);
                        }
                        self.etcd.publish(Arc::new(store.clone()));
                    }
                }
                _ = check.tick() => {
                    // The endpoint still answers (a silent one would leave the watch hanging),
                    // and the leases' remaining times.
                    self.call(endpoint, token, "/v3/kv/range", json!({
                        "key": self.key, "range_end": self.range_end, "count_only": true,
                    })).await?;
                    store.leases = Arc::new(self.leases(endpoint, token, lease_ids(&store)).await?);
                    self.etcd.publish(Arc::new(store.clone()));
                }
            }
        }
    }

    /// Applies complete watch messages to `store`: whether a key changed.
    fn apply(
        &self,
        endpoint: &str,
        messages: &[u8],
        store: &mut Store,
    ) -> Result<bool, MirrorError> {
        let stream = serde_json::Deserializer::from_slice(messages).into_iter::<Value>();
        let mut changed = false;
        for message in stream {
            let message =
                message.map_err(|e| MirrorError::Decode(endpoint.into(), e.to_string()))?;
            if let Some(error) = message.get("error") {
                return Err(MirrorError::WatchEnded(error.to_string()));
            }
            let result = &message["result"];
            if result["canceled"].as_bool() == Some(true) {
                let reason = result["cancel_reason"].as_str().unwrap_or("canceled");
                let compacted = int(&result["compact_revision"]);
                return Err(MirrorError::WatchEnded(if compacted > 0 {
                    format!("compacted at revision {compacted}")
                } else {
                    reason.to_string()
                }));
            }
            for event in result["events"].as_array().into_iter().flatten() {
                let (key, entry) =
                    decode_kv(&event["kv"]).map_err(|e| MirrorError::Decode(endpoint.into(), e))?;
                if event["type"].as_str() == Some("DELETE") {
                    store.kvs.remove(&key);
                } else {
                    store.kvs.insert(key, Arc::new(entry));
                }
                changed = true;
            }
        }
        Ok(changed)
    }

    /// One request and its JSON reply, within [`TIMEOUT`].
    async fn call(
        &self,
        endpoint: &str,
        token: Option<&str>,
        path: &str,
        body: Value,
    ) -> Result<Value, MirrorError> {
        let exchange = async {
            let response = self
                .http
                .request(request(endpoint, token, path, &body))
                .await
                .map_err(|e| MirrorError::Http(endpoint.into(), e.to_string()))?;
            let status = response.status();
            let bytes = Limited::new(response.into_body(), MAX_BODY)
                .collect()
                .await
                .map_err(|e| MirrorError::Http(endpoint.into(), e.to_string()))?
                .to_bytes();
            if !status.is_success() {
                let text = String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned();
                return Err(MirrorError::Status(endpoint.into(), status.as_u16(), text));
            }
            serde_json::from_slice(&bytes)
                .map_err(|e| MirrorError::Decode(endpoint.into(), e.to_string()))
        };
        tokio::time::timeout(TIMEOUT, exchange)
            .await
            .map_err(|_| MirrorError::Timeout(endpoint.into()))?
    }
}

fn request(
    endpoint: &str,
    token: Option<&str>,
    path: &str,
    body: &Value,
) -> http::Request<Full<Bytes>> {
    let mut builder = http::Request::post(format!("{endpoint}{path}"))
        .header(http::header::CONTENT_TYPE, "application/json");
    if let Some(token) = token {
        builder = builder.header(http::header::AUTHORIZATION, token);
    }
    builder
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap_or_else(|_| http::Request::new(Full::new(Bytes::new())))
}

/// Every lease a key of `store` is under, once each.
fn lease_ids(store: &Store) -> Vec<i64> {
    let ids: std::collections::BTreeSet<i64> = store
        .kvs
        .values()
        .map(|e| e.lease)
        .filter(|&l| l != 0)
        .collect();
    ids.into_iter().collect()
}

/// One key and its value from the gateway's JSON (base64 key and value, the lease as a
/// decimal string).
fn decode_kv(kv: &Value) -> Result<(String, Entry), String> {
    let key = B64
        .decode(kv["key"].as_str().unwrap_or(""))
        .map_err(|e| format!("a key: {e}"))?;
    let key = String::from_utf8_lossy(&key).into_owned();
    let value = B64
        .decode(kv["value"].as_str().unwrap_or(""))
        .map_err(|e| format!("{key}: {e}"))?;
    Ok((key, Entry::new(&value, int(&kv["lease"]))))
}

/// An int64 of the gateway's JSON: a decimal string, or a number.
fn int(v: &Value) -> i64 {
    match v {
        Value::String(s) => s.parse().unwrap_or(0),
        Value::Number(n) => n.as_i64().unwrap_or(0),
        _ => 0,
    }
}

/// The end of the range of keys that start with `prefix` (etcd's `GetPrefixRangeEnd`).
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // Every byte 0xff: to the end of the keyspace.
    vec![0]
}
