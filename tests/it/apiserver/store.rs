//! The object store: objects keyed like etcd keys, one global resourceVersion counter, and the
//! event history that watches replay. No I/O here.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use super::selector::Filter;

/// A resource type the server serves.
#[derive(Debug, PartialEq, Eq)]
pub struct Resource {
    pub plural: &'static str,
    pub singular: &'static str,
    pub kind: &'static str,
    pub group: &'static str,
    pub version: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
}

pub const RESOURCES: &[Resource] = &[
    Resource {
        plural: "namespaces",
        singular: "namespace",
        kind: "Namespace",
        group: "",
        version: "v1",
        namespaced: false,
        short_names: &["ns"],
    },
    Resource {
        plural: "services",
        singular: "service",
        kind: "Service",
        group: "",
        version: "v1",
        namespaced: true,
        short_names: &["svc"],
    },
    Resource {
        plural: "endpoints",
        singular: "endpoints",
        kind: "Endpoints",
        group: "",
        version: "v1",
        namespaced: true,
        short_names: &["ep"],
    },
    Resource {
        plural: "pods",
        singular: "pod",
        kind: "Pod",
        group: "",
        version: "v1",
        namespaced: true,
        short_names: &["po"],
    },
    Resource {
        plural: "endpointslices",
        singular: "endpointslice",
        kind: "EndpointSlice",
        group: "discovery.k8s.io",
        version: "v1",
        namespaced: true,
        short_names: &[],
    },
];

impl Resource {
    /// `v1` or `group/version`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_owned()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The resource served at `group/version/plural`.
    pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static Resource> {
        RESOURCES
            .iter()
            .find(|r| r.group == group && r.version == version && r.plural == plural)
    }

    /// The resource named by kind, plural or short name, case-insensitively (for the test handle).
    pub fn named(name: &str) -> Option<&'static Resource> {
        RESOURCES.iter().find(|r| {
            r.kind.eq_ignore_ascii_case(name)
                || r.plural.eq_ignore_ascii_case(name)
                || r.short_names.iter().any(|s| s.eq_ignore_ascii_case(name))
        })
    }

    /// A BOOKMARK event object: only kind, apiVersion and metadata.
    pub fn bookmark(&self, rv: u64, initial_events_end: bool) -> Value {
        let mut metadata = json!({ "resourceVersion": rv.to_string() });
        if initial_events_end {
            metadata["annotations"] = json!({ "k8s.io/initial-events-end": "true" });
        }
        json!({ "kind": self.kind, "apiVersion": self.api_version(), "metadata": metadata })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change, as retained in the history.
#[derive(Clone, Debug)]
pub struct Event {
    pub rv: u64,
    pub resource: &'static Resource,
    pub kind: EventType,
    /// The object after the change (for DELETED: the last state, with the deletion's RV).
    pub object: Value,
    /// The object before the change, to turn MODIFIED into ADDED/DELETED for selector watches.
    pub old: Option<Value>,
}

/// A watch event line's JSON: `{"type": ..., "object": ...}`.
pub fn watch_event(kind: &str, object: Value) -> Value {
    json!({ "type": kind, "object": object })
}

/// An error as the API server reports it: a `Status` object.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(code: u16, message: impl Into<String>) -> Self {
        let reason = match code {
            400 => "BadRequest",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "NotFound",
            405 => "MethodNotAllowed",
            409 => "Conflict",
            410 => "Expired",
            429 => "TooManyRequests",
            500 => "InternalError",
            503 => "ServiceUnavailable",
            504 => "Timeout",
            _ => "Unknown",
        };
        ApiError {
            code,
            reason,
            message: message.into(),
        }
    }

    pub fn status(&self) -> Value {
        json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        })
    }
}

type Key = (&'static str, String, String);

/// Objects, history and the resourceVersion counter.
#[derive(Default)]
pub struct Store {
    /// The global resourceVersion: that of the latest write.
    pub rv: u64,
    objects: BTreeMap<Key, Value>,
    history: Vec<Event>,
    /// Watches and continue tokens from before this RV get 410 Gone.
    compacted_rv: u64,
    /// The newest event that compaction discarded; an open watch that has not seen it is broken.
    lost_rv: u64,
    uids: u64,
}

impl Store {
    /// Creates or replaces an object; returns its new RV (unchanged if the object did not change).
    pub fn apply(&mut self, mut obj: Value) -> Result<u64, String> {
        let kind = obj["kind"].as_str().ok_or("object has no kind")?;
        let res = RESOURCES
            .iter()
            .find(|r| r.kind == kind)
            .ok_or_else(|| format!("unknown kind {kind}"))?;
        if let Some(api_version) = obj["apiVersion"].as_str()
            && api_version != res.api_version()
        {
            return Err(format!(
                "{kind} is served as {}, not {api_version}",
                res.api_version()
            ));
        }
        obj["apiVersion"] = json!(res.api_version());
        if !obj["metadata"].is_object() {
            obj["metadata"] = json!({});
        }
        let meta = obj["metadata"]
            .as_object_mut()
            .expect("metadata is an object");
        let name = match meta.get("name").and_then(Value::as_str) {
            Some(name) if !name.is_empty() => name.to_owned(),
            _ => return Err("metadata.name is required".into()),
        };
        let namespace = if res.namespaced {
            let ns = meta.get("namespace").and_then(Value::as_str).unwrap_or("");
            let ns = if ns.is_empty() { "default" } else { ns }.to_owned();
            meta.insert("namespace".into(), json!(ns));
            ns
        } else {
            meta.remove("namespace");
            String::new()
        };

        let key = (res.plural, namespace, name);
        let old = self.objects.get(&key).cloned();
        match &old {
            Some(old) => {
                for field in ["uid", "creationTimestamp", "resourceVersion"] {
                    meta.insert(field.into(), old["metadata"][field].clone());
                }
                if *old == obj {
                    return Ok(self.object_rv(old));
                }
            }
            None => {
                self.uids += 1;
                let uid = format!("00000000-0000-4000-8000-{:012x}", self.uids);
                meta.insert("uid".into(), json!(uid));
                meta.insert("creationTimestamp".into(), json!(now_rfc3339()));
            }
        }
        self.rv += 1;
        set_rv(&mut obj, self.rv);
        self.objects.insert(key, obj.clone());
        let kind = if old.is_some() {
            EventType::Modified
        } else {
            EventType::Added
        };
        self.record(res, kind, obj, old);
        Ok(self.rv)
    }

    /// Deletes an object; returns the deletion's RV, or None if there was no such object.
    pub fn delete(&mut self, res: &'static Resource, namespace: &str, name: &str) -> Option<u64> {
        let ns = if res.namespaced { namespace } else { "" };
        let old = self
            .objects
            .remove(&(res.plural, ns.to_owned(), name.to_owned()))?;
        self.rv += 1;
        let mut obj = old.clone();
        set_rv(&mut obj, self.rv);
        self.record(res, EventType::Deleted, obj, Some(old));
        Some(self.rv)
    }

    fn record(
        &mut self,
        res: &'static Resource,
        kind: EventType,
        object: Value,
        old: Option<Value>,
    ) {
        self.history.push(Event {
            rv: self.rv,
            resource: res,
            kind,
            object,
            old,
        });
    }

    fn object_rv(&self, obj: &Value) -> u64 {
        obj["metadata"]["resourceVersion"]
            .as_str()
            .and_then(|rv| rv.parse().ok())
            .unwrap_or(self.rv)
    }

    pub fn get(&self, res: &'static Resource, namespace: &str, name: &str) -> Option<&Value> {
        let ns = if res.namespaced { namespace } else { "" };
        self.objects
            .get(&(res.plural, ns.to_owned(), name.to_owned()))
    }

    /// Discards all history, as etcd compaction does. Also advances the global RV as an unrelated
    /// write would, so that every watcher's last-seen RV is now too old to resume from.
    pub fn compact(&mut self) {
        if let Some(last) = self.history.last() {
            self.lost_rv = last.rv;
        }
        self.history.clear();
        self.rv += 1;
        self.compacted_rv = self.rv;
    }

    /// Objects of a type that match a filter, in key order, after `start` (ns, name).
    fn matching<'a>(
        &'a self,
        res: &'static Resource,
        filter: &'a Filter,
        start: Option<(String, String)>,
    ) -> impl Iterator<Item = (&'a Key, &'a Value)> {
        // Objects are kept by (resource, namespace, name): a page starts where the last ended.
        let from = match start {
            Some((ns, name)) => Bound::Excluded((res.plural, ns, name)),
            None => Bound::Included((res.plural, String::new(), String::new())),
        };
        self.objects
            .range((from, Bound::Unbounded))
            .take_while(move |(key, _)| key.0 == res.plural)
            .filter(move |(_, obj)| filter.matches(obj))
    }

    /// A `{Kind}List`, one page of it if `limit` is set.
    pub fn list(
        &self,
        res: &'static Resource,
        filter: &Filter,
        limit: Option<usize>,
        continue_token: Option<&str>,
    ) -> Result<Value, ApiError> {
        let (list_rv, start) = match continue_token {
            Some(token) => {
                let (rv, ns, name) = decode_continue(token)
                    .ok_or_else(|| ApiError::new(400, "continue key is not valid"))?;
                if rv < self.compacted_rv {
                    return Err(ApiError::new(
                        410,
                        "The provided continue parameter is too old to display a consistent \
                         list result. You can start a new list without the continue parameter.",
                    ));
                }
                (rv, Some((ns, name)))
            }
            None => (self.rv, None),
        };
        let mut items = Vec::new();
        let mut rest = self.matching(res, filter, start);
        let mut last_key = None;
        for (key, obj) in rest.by_ref().take(limit.unwrap_or(usize::MAX)) {
            let mut item = obj.clone();
            // Like kube-apiserver, list items carry no kind/apiVersion.
            if let Some(item) = item.as_object_mut() {
                item.remove("kind");
                item.remove("apiVersion");
            }
            items.push(item);
            last_key = Some(key);
        }
        let remaining = rest.count();
        let mut metadata = json!({ "resourceVersion": list_rv.to_string() });
        if remaining > 0
            && let Some(key) = last_key
        {
            metadata["continue"] = json!(encode_continue(list_rv, &key.1, &key.2));
            if filter.is_empty_selector() {
                metadata["remainingItemCount"] = json!(remaining);
            }
        }
        Ok(json!({
            "kind": format!("{}List", res.kind),
            "apiVersion": res.api_version(),
            "metadata": metadata,
            "items": items,
        }))
    }

    /// Starts a watch: checks the start RV against compaction and, if `initial_events`, returns
    /// synthetic ADDED events for the current objects, else the history after `start`. Returns
    /// the events and the cursor (RV) to continue from.
    pub fn watch_start(
        &self,
        res: &'static Resource,
        filter: &Filter,
        start: Option<u64>,
        initial_events: bool,
    ) -> Result<(Vec<Value>, u64), ApiError> {
        if initial_events {
            let events = self
                .matching(res, filter, None)
                .map(|(_, obj)| watch_event("ADDED", obj.clone()))
                .collect();
            return Ok((events, self.rv));
        }
        match start {
            Some(start) if start < self.compacted_rv => Err(too_old(start, self.compacted_rv)),
            Some(start) => self.watch_next(res, filter, start),
            None => Ok((Vec::new(), self.rv)),
        }
    }

    /// The watch events after `cursor` for a watch of `res` with `filter`, and the new cursor.
    /// A watch that missed events to compaction gets 410.
    pub fn watch_next(
        &self,
        res: &'static Resource,
        filter: &Filter,
        cursor: u64,
    ) -> Result<(Vec<Value>, u64), ApiError> {
        if cursor < self.lost_rv {
            return Err(too_old(cursor, self.compacted_rv));
        }
        let first = self.history.partition_point(|e| e.rv <= cursor);
        let events = self.history[first..]
            .iter()
            .filter(|e| std::ptr::eq(e.resource, res))
            .filter_map(|e| selector_view(e, filter))
            .collect();
        Ok((events, self.rv))
    }
}

/// How a watch with a selector sees an event: objects entering the selection are ADDED, leaving
/// it DELETED, as kube-apiserver does.
fn selector_view(e: &Event, filter: &Filter) -> Option<Value> {
    let now = e.kind != EventType::Deleted && filter.matches(&e.object);
    let before = e.old.as_ref().is_some_and(|old| filter.matches(old));
    let kind = match (before, now) {
        (false, true) => EventType::Added,
        (true, true) => EventType::Modified,
        (true, false) => EventType::Deleted,
        (false, false) => return None,
    };
    Some(watch_event(kind.as_str(), e.object.clone()))
}

fn too_old(rv: u64, oldest: u64) -> ApiError {
    ApiError::new(410, format!("too old resource version: {rv} ({oldest})"))
}

fn set_rv(obj: &mut Value, rv: u64) {
    if let Some(meta) = obj["metadata"].as_object_mut() {
        meta.insert("resourceVersion".into(), json!(rv.to_string()));
    }
}

fn encode_continue(rv: u64, ns: &str, name: &str) -> String {
    format!("{rv}\0{ns}\0{name}")
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn decode_continue(token: &str) -> Option<(u64, String, String)> {
    let bytes = (0..token.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(token.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    let text = String::from_utf8(bytes).ok()?;
    let mut parts = text.split('\0');
    let rv = parts.next()?.parse().ok()?;
    let ns = parts.next()?.to_owned();
    let name = parts.next()?.to_owned();
    Some((rv, ns, name))
}

/// The current UTC time as RFC 3339 with seconds (`2025-01-31T12:00:00Z`).
pub fn now_rfc3339() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    // The server's `YYYYMMDDHHmmSS`, punctuated.
    let t = clusterdns::plugin::sign::signature_time(secs as u32);
    format!(
        "{}-{}-{}T{}:{}:{}Z",
        &t[..4],
        &t[4..6],
        &t[6..8],
        &t[8..10],
        &t[10..12],
        &t[12..]
    )
}
