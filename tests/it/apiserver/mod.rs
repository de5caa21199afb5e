//! A Kubernetes API server for tests: plain HTTP on 127.0.0.1 ([`ApiServer::start`]), or HTTPS
//! with client certificate and/or bearer token authentication ([`ApiServer::start_tls`]), good
//! enough for kube-rs watchers and `kubectl get`.
//!
//! Serves namespaces, services, endpoints, pods (core/v1) and endpointslices
//! (discovery.k8s.io/v1): discovery, GET, LIST (paging, label and field selectors) and WATCH
//! (history replay from a resourceVersion, bookmarks, streaming lists, 410 after compaction).
//! Objects go in through the handle ([`ApiServer::apply`], [`ApiServer::delete`]); the API is
//! read-only. Faults are injected through the handle too.

mod builders;
mod http;
mod selector;
mod store;
#[cfg(test)]
mod tests;
mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

pub use builders::*;
use http::{Shared, bump, lock};
use store::Resource;
pub use tls::{TestPki, TlsOptions};

/// A running API server. It stops when dropped: open connections are closed, watches end, and
/// its thread is joined.
pub struct ApiServer {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    /// For a TLS server, what a client needs: the CA and the credentials the server requires.
    tls: Option<ClientCredentials>,
}

/// What [`ApiServer::kube_config`] gives a client of a TLS server.
struct ClientCredentials {
    ca_der: Vec<u8>,
    identity: Option<(PathBuf, PathBuf)>,
    token_file: Option<PathBuf>,
}

impl ApiServer {
    /// Starts a server on 127.0.0.1 (a free port), on its own thread with its own tokio runtime,
    /// so it works the same from sync and async tests.
    pub fn start() -> Self {
        Self::start_with(Shared::default(), None)
    }

    /// Starts an HTTPS server (otherwise as [`Self::start`]) with `pki`'s server certificate,
    /// authenticating clients as `options` says. A failed handshake closes the connection and is
    /// recorded ([`Self::tls_failures`]); a request without the required token gets a 401 with a
    /// `Status` body, as kube-apiserver answers it.
    pub fn start_tls(pki: &TestPki, options: TlsOptions) -> Self {
        let shared = Shared {
            bearer_token: options.bearer_token.then(|| pki.token.clone()),
            ..Shared::default()
        };
        let mut server = Self::start_with(shared, Some(pki.acceptor(options.client_cert)));
        server.tls = Some(ClientCredentials {
            ca_der: pki.ca_der(),
            identity: options
                .client_cert
                .then(|| (pki.client_cert.clone(), pki.client_key.clone())),
            token_file: options.bearer_token.then(|| pki.token_file.clone()),
        });
        server
    }

    fn start_with(shared: Shared, tls: Option<tokio_rustls::TlsAcceptor>) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let addr = listener.local_addr().expect("local address");
        let shared = Arc::new(shared);
        let server = shared.clone();
        let thread = std::thread::Builder::new()
            .name("test-apiserver".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("tokio runtime");
                runtime.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                    http::serve(listener, server, tls).await;
                });
                // Dropping the runtime here cancels every connection task.
            })
            .expect("spawn the API server thread");
        ApiServer {
            addr,
            shared,
            thread: Some(thread),
            tls: None,
        }
    }

    /// `http://127.0.0.1:PORT`, or `https://127.0.0.1:PORT` for a TLS server.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// A kube-rs config for this server (build the `kube::Client` inside a tokio runtime): for
    /// a TLS server, trusting its CA, with the client certificate and token it requires.
    pub fn kube_config(&self) -> kube::Config {
        let mut config = kube::Config::new(self.url().parse().expect("server URL"));
        if let Some(tls) = &self.tls {
            config.root_cert = Some(vec![tls.ca_der.clone()]);
            if let Some((cert, key)) = &tls.identity {
                config.auth_info.client_certificate = Some(cert.display().to_string());
                config.auth_info.client_key = Some(key.display().to_string());
            }
            config.auth_info.token_file = tls.token_file.as_ref().map(|p| p.display().to_string());
        }
        config
    }

    /// Creates or replaces an object (by kind, namespace and name; a namespaced object without a
    /// namespace goes to "default"). The server sets uid, resourceVersion and creationTimestamp.
    /// Returns the object's new resourceVersion; an unchanged object keeps its RV and makes no
    /// event, as with kube-apiserver. Panics on an object the server cannot store.
    pub fn apply(&self, obj: Value) -> u64 {
        let rv = lock(&self.shared.store)
            .apply(obj)
            .unwrap_or_else(|err| panic!("apply: {err}"));
        bump(&self.shared.changed);
        rv
    }

    /// Deletes an object; `kind` is a kind, plural or short name ("Service", "services", "svc").
    /// Returns whether it existed. Panics on an unknown kind.
    pub fn delete(&self, kind: &str, namespace: &str, name: &str) -> bool {
        let res = Resource::named(kind).unwrap_or_else(|| panic!("delete: unknown kind {kind}"));
        let deleted = lock(&self.shared.store)
            .delete(res, namespace, name)
            .is_some();
        bump(&self.shared.changed);
        deleted
    }

    /// The stored object, as a GET would return it.
    pub fn get(&self, kind: &str, namespace: &str, name: &str) -> Option<Value> {
        let res = Resource::named(kind).unwrap_or_else(|| panic!("get: unknown kind {kind}"));
        lock(&self.shared.store).get(res, namespace, name).cloned()
    }

    /// The current global resourceVersion.
    pub fn resource_version(&self) -> u64 {
        lock(&self.shared.store).rv
    }

    /// Makes every request from now on fail with `status` (a JSON `Status` body; 429 comes with
    /// `Retry-After: 1`), or, with None, stops failing. Open watches are not affected.
    ///
    /// Note that kube-rs clients retry 429, 503 and 504 themselves (up to 15 times, with
    /// exponential backoff from 5ms, or after `Retry-After`) before a watcher sees an error;
    /// 500 reaches the watcher at once.
    pub fn fail_with(&self, status: Option<u16>) {
        *lock(&self.shared.fail_with) = status;
    }

    /// Holds every request (those arriving from now on) without an answer until [`Self::resume`].
    pub fn pause(&self) {
        self.shared.paused.send_replace(true);
    }

    pub fn resume(&self) {
        self.shared.paused.send_replace(false);
    }

    /// Aborts every open watch connection (closed without the final chunk, like a broken link).
    pub fn drop_watches(&self) {
        bump(&self.shared.drop_watches);
    }

    /// Makes every open watch that allows bookmarks send one, with the current resourceVersion.
    pub fn bookmark_now(&self) {
        bump(&self.shared.bookmark_now);
    }

    /// Discards the event history, as etcd compaction does, and advances the resourceVersion as
    /// an unrelated write would: a watch from any RV seen so far then gets an ERROR event with a
    /// 410 Expired `Status`, and so do continue tokens. Open watches carry on (periodic bookmarks
    /// keep reporting their last RV, not the new one).
    pub fn compact(&self) {
        lock(&self.shared.store).compact();
    }

    /// The requests so far, as "METHOD path?query" (query as sent, percent-encoded).
    pub fn requests(&self) -> Vec<String> {
        lock(&self.shared.requests).clone()
    }

    /// The `Authorization` header of each request in [`Self::requests`] (None where it had none).
    pub fn authorizations(&self) -> Vec<Option<String>> {
        lock(&self.shared.authorizations).clone()
    }

    /// Why each failed TLS handshake failed (as the server's TLS library says), in order.
    pub fn tls_failures(&self) -> Vec<String> {
        lock(&self.shared.tls_failures).clone()
    }

    /// Open watch streams right now.
    pub fn watch_count(&self) -> usize {
        self.shared.open_watches.load(Ordering::SeqCst)
    }

    /// Waits (up to `timeout`) until `condition` holds; returns whether it did.
    pub fn wait_until(&self, timeout: Duration, mut condition: impl FnMut(&Self) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if condition(self) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.shared.shutdown.send_replace(true);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
