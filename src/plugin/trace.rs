//! `trace`: a span per query (one in `every`), sent to Zipkin (v2 JSON, `POST /api/v2/spans`)
//! or to a Datadog agent (`PUT /v0.4/traces`, JSON), as CoreDNS's `trace` sends them.
//!
//! `trace [zipkin|datadog] [ENDPOINT] { every AMOUNT; service NAME; client_server [BOOL];
//! datadog_analytics_rate RATE; zipkin_max_backlog_size SIZE; zipkin_max_batch_size SIZE;
//! zipkin_max_batch_interval DURATION }`. The span is named `servedns`, of kind SERVER, with
//! the tags `coredns.io/name`, `type`, `proto`, `remote` and `rcode` (`coredns.io@...` for
//! Datadog). Spans wait in a bounded queue (the backlog size: a full one drops) for a task that
//! sends them in batches (at the batch size, or every batch interval); a collector that does not
//! answer costs the queries nothing.
//!
//! Unlike CoreDNS, there are no child spans per plugin (the chain runs inline, in microseconds),
//! trace context from a DoH request's headers is not read, and `trace/traceid` metadata is not
//! set.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::Full;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::setup::{Building, Context, Setup, SetupError};
use super::{Phases, Plugin, Seen};
use crate::corefile::{ConfigError, Directive, directive_err, parse_duration};

const NAME: &str = "trace";

/// Where spans go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// The URL spans are posted to.
    Zipkin(String),
    /// The agent's `HOST:PORT`.
    Datadog(String),
}

/// The `trace` directive.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceConfig {
    pub endpoint: Endpoint,
    pub every: u64,
    pub service: String,
    pub client_server: bool,
    pub analytics_rate: f64,
    pub backlog: usize,
    pub batch: usize,
    pub interval: Duration,
}

impl Setup for TraceConfig {
    fn parse(d: &Directive, _: &Context<'_>) -> Result<Self, ConfigError> {
        let (kind, at) = match d.args.as_slice() {
            [] => ("zipkin".to_string(), None),
            [at] => ("zipkin".to_string(), Some(at.as_str())),
            [kind, at] => (kind.to_ascii_lowercase(), Some(at.as_str())),
            _ => return Err(arg_err(d)),
        };
        let endpoint = match kind.as_str() {
            "zipkin" => {
                let at = at.unwrap_or("localhost:9411");
                Endpoint::Zipkin(if at.contains("http") {
                    at.to_string()
                } else {
                    format!("http://{at}/api/v2/spans")
                })
            }
            "datadog" => Endpoint::Datadog(at.unwrap_or("localhost:8126").to_string()),
            other => {
                return Err(directive_err(
                    d,
                    NAME,
                    format!("tracing endpoint type '{other}' is not supported"),
                ));
            }
        };
        let mut config = Self {
            endpoint,
            every: 1,
            service: "coredns".to_string(),
            client_server: false,
            analytics_rate: 0.0,
            backlog: 1000,
            batch: 100,
            interval: Duration::from_secs(1),
        };
        for o in &d.block {
            let one = || match o.args.as_slice() {
                [one] => Ok(one.as_str()),
                _ => Err(arg_err(o)),
            };
            let bad = |e: String| directive_err(o, NAME, e);
            match o.name.as_str() {
                "every" => {
                    let v = one()?;
                    config.every = v.parse().map_err(|_| {
                        bad(format!("strconv.ParseUint: parsing {v:?}: invalid syntax"))
                    })?;
                }
                "service" => config.service = one()?.to_string(),
                "client_server" => {
                    config.client_server = match o.args.as_slice() {
                        [] => true,
                        [v] => go_bool(v).ok_or_else(|| {
                            bad(format!("strconv.ParseBool: parsing {v:?}: invalid syntax"))
                        })?,
                        _ => return Err(arg_err(o)),
                    };
                }
                "datadog_analytics_rate" => {
                    config.analytics_rate = match o.args.as_slice() {
                        [] => 0.0,
                        [v] => v.parse().map_err(|_| {
                            bad(format!("strconv.ParseFloat: parsing {v:?}: invalid syntax"))
                        })?,
                        _ => return Err(arg_err(o)),
                    };
                    if !(0.0..=1.0).contains(&config.analytics_rate) {
                        return Err(bad(format!(
                            "datadog analytics rate must be between 0 and 1, '{:.6}' is not supported",
                            config.analytics_rate
                        )));
                    }
                }
                "zipkin_max_backlog_size" | "zipkin_max_batch_size" => {
                    let v = one()?;
                    let n: i64 = v
                        .parse()
                        .map_err(|_| bad(format!("strconv.Atoi: parsing {v:?}: invalid syntax")))?;
                    // Zero or less: the reporter's default, as CoreDNS leaves it.
                    if n > 0 {
                        let n = usize::try_from(n).unwrap_or(usize::MAX).min(1 << 20);
                        if o.name == "zipkin_max_backlog_size" {
                            config.backlog = n;
                        } else {
                            config.batch = n;
                        }
                    }
                }
                "zipkin_max_batch_interval" => {
                    let v = one()?;
                    let interval = parse_duration(v).map_err(bad)?;
                    if !interval.is_zero() {
                        config.interval = interval;
                    }
                }
                other => return Err(bad(format!("unknown property '{other}'"))),
            }
        }
        Ok(config)
    }

    fn build(&self, b: &mut Building<'_>) -> Result<(), SetupError> {
        let (tx, rx) = mpsc::channel(self.backlog.max(1));
        let trace = Trace {
            every: self.every,
            count: AtomicU64::new(0),
            tx,
            dropped: Arc::new(AtomicU64::new(0)),
        };
        let https = matches!(&self.endpoint, Endpoint::Zipkin(url) if url.starts_with("https://"));
        let tls = if https {
            super::tls_client::TlsFiles::default().config()
        } else {
            super::tls_client::TlsFiles::plain()
        }
        .map_err(|e| SetupError::File(format!("trace: {e}")))?;
        let reporter = Reporter {
            http: super::etcd::client::http_client(tls),
            endpoint: self.endpoint.clone(),
            batch: self.batch.max(1),
            interval: self.interval,
            service: self.service.clone(),
            analytics_rate: self.analytics_rate,
        };
        b.background.push(Box::pin(reporter.run(rx)));
        b.chain.push(Plugin::Trace(Arc::new(trace)));
        Ok(())
    }
}

fn arg_err(d: &Directive) -> ConfigError {
    crate::corefile::arg_count_err(d, NAME)
}

/// Go's `strconv.ParseBool`.
fn go_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// One finished span.
#[derive(Debug)]
struct Span {
    trace_id: u64,
    id: u64,
    /// Microseconds since the epoch.
    start: u64,
    duration: Duration,
    name: String,
    qtype: String,
    proto: &'static str,
    remote: String,
    rcode: String,
}

/// The plugin as it sees queries.
#[derive(Debug)]
pub struct Trace {
    every: u64,
    count: AtomicU64,
    tx: mpsc::Sender<Span>,
    dropped: Arc<AtomicU64>,
}

impl Phases for Trace {
    /// A span starts when the query arrived.
    const TIMED: bool = true;

    fn observe(&self, seen: &Seen<'_>) {
        if self.every == 0
            || !(self.count.fetch_add(1, Ordering::Relaxed) + 1).is_multiple_of(self.every)
        {
            return;
        }
        let Some(msg) = seen.message() else {
            return;
        };
        let Some(q) = msg.queries().first() else {
            return;
        };
        let now = SystemTime::now();
        let duration = seen.started.elapsed();
        let start = now
            .checked_sub(duration)
            .unwrap_or(now)
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        let random = rand::random::<(u64, u64)>();
        let span = Span {
            trace_id: random.0 | 1,
            id: random.1 | 1,
            start,
            duration,
            name: q.name().to_lowercase().to_ascii(),
            qtype: q.query_type().to_string(),
            proto: seen.transport.as_str(),
            remote: seen.src.ip().to_canonical().to_string(),
            rcode: crate::metrics::rcode_name(seen.rcode),
        };
        if self.tx.try_send(span).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Sends spans in batches.
struct Reporter {
    http: super::etcd::client::Http,
    endpoint: Endpoint,
    batch: usize,
    interval: Duration,
    service: String,
    analytics_rate: f64,
}

impl Reporter {
    async fn run(self, mut rx: mpsc::Receiver<Span>) {
        let mut pending: Vec<Span> = Vec::new();
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                span = rx.recv() => match span {
                    Some(span) => {
                        pending.push(span);
                        if pending.len() >= self.batch {
                            self.send(std::mem::take(&mut pending)).await;
                        }
                    }
                    None => {
                        self.send(pending).await;
                        return;
                    }
                },
                _ = tick.tick() => {
                    if !pending.is_empty() {
                        self.send(std::mem::take(&mut pending)).await;
                    }
                }
            }
        }
    }

    /// The batch as the endpoint takes it: Zipkin's v2 span list, or Datadog's list of traces.
    fn body(&self, spans: &[Span]) -> Value {
        match self.endpoint {
            Endpoint::Zipkin(_) => Value::Array(
                spans
                    .iter()
                    .map(|s| {
                        json!({
                            "traceId": format!("{:016x}", s.trace_id),
                            "id": format!("{:016x}", s.id),
                            "name": "servedns",
                            "kind": "SERVER",
                            "timestamp": s.start,
                            "duration": s.duration.as_micros().max(1) as u64,
                            "localEndpoint": {"serviceName": self.service},
                            "tags": {
                                "coredns.io/name": s.name,
                                "coredns.io/type": s.qtype,
                                "coredns.io/proto": s.proto,
                                "coredns.io/remote": s.remote,
                                "coredns.io/rcode": s.rcode,
                            },
                        })
                    })
                    .collect(),
            ),
            Endpoint::Datadog(_) => Value::Array(
                spans
                    .iter()
                    .map(|s| {
                        let mut metrics = json!({});
                        if self.analytics_rate > 0.0 {
                            metrics["_dd1.sr.eausr"] = json!(self.analytics_rate);
                        }
                        json!([{
                            "trace_id": s.trace_id,
                            "span_id": s.id,
                            "parent_id": 0,
                            "name": "servedns",
                            "resource": "servedns",
                            "service": self.service,
                            "type": "dns",
                            "start": s.start * 1000,
                            "duration": s.duration.as_nanos() as u64,
                            "error": 0,
                            "meta": {
                                "coredns.io@name": s.name,
                                "coredns.io@type": s.qtype,
                                "coredns.io@proto": s.proto,
                                "coredns.io@remote": s.remote,
                                "coredns.io@rcode": s.rcode,
                            },
                            "metrics": metrics,
                        }])
                    })
                    .collect(),
            ),
        }
    }

    async fn send(&self, spans: Vec<Span>) {
        if spans.is_empty() {
            return;
        }
        let (method, url) = match &self.endpoint {
            Endpoint::Zipkin(url) => (http::Method::POST, url.clone()),
            Endpoint::Datadog(agent) => (http::Method::PUT, format!("http://{agent}/v0.4/traces")),
        };
        let body = self.body(&spans).to_string();
        let request = http::Request::builder()
            .method(method)
            .uri(&url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header("X-Datadog-Trace-Count", spans.len().to_string())
            .body(Full::new(Bytes::from(body)));
        let Ok(request) = request else {
            tracing::warn!("trace: {url} is not a URL");
            return;
        };
        match tokio::time::timeout(Duration::from_secs(5), self.http.request(request)).await {
            Ok(Ok(response)) if response.status().is_success() => {}
            Ok(Ok(response)) => {
                tracing::warn!("trace: {url}: status {}", response.status());
            }
            Ok(Err(e)) => tracing::warn!("trace: {url}: {e}"),
            Err(_) => tracing::warn!("trace: {url}: timed out"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::testing::settings;

    #[test]
    fn reads_the_directive_as_coredns_does() {
        let c: TraceConfig = settings("trace").unwrap();
        assert_eq!(
            c.endpoint,
            Endpoint::Zipkin("http://localhost:9411/api/v2/spans".into())
        );
        assert_eq!(
            (c.every, c.service.as_str(), c.batch, c.backlog),
            (1, "coredns", 100, 1000)
        );
        let c: TraceConfig = settings("trace tracinghost:9253").unwrap();
        assert_eq!(
            c.endpoint,
            Endpoint::Zipkin("http://tracinghost:9253/api/v2/spans".into())
        );
        let c: TraceConfig =
            settings("trace http://tracinghost:9411/zipkin/api/v2/spans {\n every 10000\n service dnsproxy\n client_server\n}")
                .unwrap();
        assert_eq!(
            c.endpoint,
            Endpoint::Zipkin("http://tracinghost:9411/zipkin/api/v2/spans".into())
        );
        assert_eq!(
            (c.every, c.service.as_str(), c.client_server),
            (10000, "dnsproxy", true)
        );
        let c: TraceConfig = settings("trace DataDog localhost:8126").unwrap();
        assert_eq!(c.endpoint, Endpoint::Datadog("localhost:8126".into()));
        for (lines, why) in [
            (
                "trace jaeger localhost:1",
                "tracing endpoint type 'jaeger' is not supported",
            ),
            ("trace a b c", "Wrong argument count"),
            ("trace {\n every x\n}", "invalid syntax"),
            ("trace {\n client_server maybe\n}", "invalid syntax"),
            (
                "trace datadog {\n datadog_analytics_rate 2\n}",
                "must be between 0 and 1",
            ),
            ("trace {\n zipkin_max_batch_interval soon\n}", "soon"),
            ("trace {\n sampler 1\n}", "unknown property 'sampler'"),
        ] {
            let e = settings::<TraceConfig>(lines).unwrap_err();
            assert!(e.contains(why) && e.contains("trace"), "{lines}: {e}");
        }
    }
}
