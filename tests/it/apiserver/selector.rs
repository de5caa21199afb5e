//! Label and field selectors, and the namespace restriction of a namespaced path.

use serde_json::Value;

/// What a LIST or WATCH selects: a namespace (from the path) plus label and field selectors.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Filter {
    pub namespace: Option<String>,
    labels: Vec<LabelReq>,
    fields: Vec<FieldReq>,
}

#[derive(Debug, Clone, PartialEq)]
enum LabelReq {
    Exists(String),
    NotExists(String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
struct FieldReq {
    path: String,
    value: String,
    equal: bool,
}

impl Filter {
    /// Parses `labelSelector` and `fieldSelector` query values.
    pub fn parse(
        namespace: Option<String>,
        labels: Option<&str>,
        fields: Option<&str>,
    ) -> Result<Self, String> {
        let labels = split_terms(labels.unwrap_or(""))
            .into_iter()
            .map(parse_label_req)
            .collect::<Result<_, _>>()?;
        let fields = split_terms(fields.unwrap_or(""))
            .into_iter()
            .map(parse_field_req)
            .collect::<Result<_, _>>()?;
        Ok(Filter {
            namespace,
            labels,
            fields,
        })
    }

    /// Restricts the filter to one object name (for watches of a single object).
    pub fn with_name(mut self, name: &str) -> Self {
        self.fields.push(FieldReq {
            path: "metadata.name".into(),
            value: name.into(),
            equal: true,
        });
        self
    }

    /// True without label and field selectors (the namespace does not count).
    pub fn is_empty_selector(&self) -> bool {
        self.labels.is_empty() && self.fields.is_empty()
    }

    pub fn matches(&self, obj: &Value) -> bool {
        let meta = &obj["metadata"];
        if let Some(ns) = &self.namespace
            && meta["namespace"].as_str() != Some(ns.as_str())
        {
            return false;
        }
        let label = |key: &str| meta["labels"][key].as_str();
        let labels_match = self.labels.iter().all(|req| match req {
            LabelReq::Exists(key) => label(key).is_some(),
            LabelReq::NotExists(key) => label(key).is_none(),
            LabelReq::In(key, values) => label(key).is_some_and(|v| values.iter().any(|x| x == v)),
            LabelReq::NotIn(key, values) => {
                !label(key).is_some_and(|v| values.iter().any(|x| x == v))
            }
        });
        labels_match
            && self
                .fields
                .iter()
                .all(|req| (field_value(obj, &req.path) == req.value) == req.equal)
    }
}

/// A field's value as a string: strings as they are, numbers and booleans printed, else "".
fn field_value(obj: &Value, path: &str) -> String {
    let value = path.split('.').fold(obj, |v, part| &v[part]);
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => String::new(),
    }
}

/// Splits a selector at commas outside parentheses; empty input gives no terms.
fn split_terms(selector: &str) -> Vec<&str> {
    let mut terms = Vec::new();
    let (mut depth, mut start) = (0usize, 0);
    for (i, c) in selector.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                terms.push(selector[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    let last = selector[start..].trim();
    if !last.is_empty() || !terms.is_empty() {
        terms.push(last);
    }
    terms
}

fn parse_label_req(term: &str) -> Result<LabelReq, String> {
    let bad = || format!("unable to parse requirement: {term:?}");
    let valid_key = |k: &str| {
        !k.is_empty()
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
    };
    let key = |k: &str| {
        if valid_key(k) {
            Ok(k.to_owned())
        } else {
            Err(bad())
        }
    };
    if let Some(open) = term.find('(') {
        let values = term[open + 1..].strip_suffix(')').ok_or_else(bad)?;
        let values = values.split(',').map(|v| v.trim().to_owned()).collect();
        let mut words = term[..open].split_whitespace();
        let (k, op) = (words.next().ok_or_else(bad)?, words.next().ok_or_else(bad)?);
        if words.next().is_some() {
            return Err(bad());
        }
        return match op {
            "in" => Ok(LabelReq::In(key(k)?, values)),
            "notin" => Ok(LabelReq::NotIn(key(k)?, values)),
            _ => Err(bad()),
        };
    }
    if let Some((k, v)) = term.split_once("!=") {
        return Ok(LabelReq::NotIn(key(k.trim())?, vec![v.trim().to_owned()]));
    }
    if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
        return Ok(LabelReq::In(key(k.trim())?, vec![v.trim().to_owned()]));
    }
    match term.strip_prefix('!') {
        Some(k) => Ok(LabelReq::NotExists(key(k.trim())?)),
        None => Ok(LabelReq::Exists(key(term)?)),
    }
}

fn parse_field_req(term: &str) -> Result<FieldReq, String> {
    let (path, value, equal) = if let Some((p, v)) = term.split_once("!=") {
        (p, v, false)
    } else if let Some((p, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
        (p, v, true)
    } else {
        return Err(format!("invalid field selector: {term:?}"));
    };
    let path = path.trim();
    if path.is_empty() {
        return Err(format!("invalid field selector: {term:?}"));
    }
    Ok(FieldReq {
        path: path.to_owned(),
        value: value.trim().to_owned(),
        equal,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(ns: &str, name: &str, labels: Value) -> Value {
        json!({ "metadata": { "namespace": ns, "name": name, "labels": labels } })
    }

    fn selects(labels: &str, fields: &str, obj: &Value) -> bool {
        Filter::parse(None, Some(labels), Some(fields))
            .unwrap()
            .matches(obj)
    }

    #[test]
    fn label_selectors() {
        let web = obj("default", "web", json!({ "app": "web", "tier": "front" }));
        let db = obj("default", "db", json!({ "app": "db" }));
        for (selector, want_web, want_db) in [
            ("", true, true),
            ("app=web", true, false),
            ("app==web", true, false),
            ("app!=web", false, true),
            ("tier", true, false),
            ("!tier", false, true),
            ("app in (web, db)", true, true),
            ("app in (db)", false, true),
            ("app notin (db)", true, false),
            ("app=web,tier=front", true, false),
            ("app in (web,db),!tier", false, true),
        ] {
            assert_eq!(selects(selector, "", &web), want_web, "{selector} on web");
            assert_eq!(selects(selector, "", &db), want_db, "{selector} on db");
        }
    }

    #[test]
    fn field_selectors() {
        let web = obj("prod", "web", json!({}));
        assert!(selects("", "metadata.name=web", &web));
        assert!(selects(
            "",
            "metadata.name==web,metadata.namespace=prod",
            &web
        ));
        assert!(!selects("", "metadata.namespace!=prod", &web));
        assert!(selects("", "metadata.name!=db", &web));
    }

    #[test]
    fn bad_selectors_are_rejected() {
        for labels in ["app in (a", "app on (a)", "a b c (x)", "bad key=1", "x,"] {
            assert!(Filter::parse(None, Some(labels), None).is_err(), "{labels}");
        }
        assert!(Filter::parse(None, None, Some("metadata.name")).is_err());
    }

    #[test]
    fn namespace_restricts() {
        let filter = Filter::parse(Some("prod".into()), None, None).unwrap();
        assert!(filter.matches(&obj("prod", "a", json!({}))));
        assert!(!filter.matches(&obj("dev", "a", json!({}))));
    }
}
