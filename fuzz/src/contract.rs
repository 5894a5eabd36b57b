//! What every response must be, by `openapi.yaml` as the component serves
//! it at GET /openapi.json:
//!
//! - a 204 has no body and no type; any other has a JSON body, typed
//!   `application/json`;
//! - a path the spec does not describe is a 404; a described path with a
//!   method the spec does not list for it is a 405 whose `Allow` names the
//!   listed ones; otherwise the status is one the operation documents;
//! - an error body is exactly `{"error": {"code", "message"}}` with a code
//!   from the spec's list, and carries the headers its code needs;
//! - every response has the common headers (`X-Request-Id`, `no-store`,
//!   `nosniff`).
//!
//! Path templates match as the router matches them: `{name}` is any one
//! non-empty segment.

use crate::fixture::{Fixture, CLIENT_ADDR};
use http::{header, Request, Response};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

pub struct Contract {
    /// Path template, and each documented method (upper case) with its
    /// documented response keys (`"200"`, `"4XX"`, `"default"`).
    paths: Vec<(String, BTreeMap<String, Vec<String>>)>,
    codes: BTreeSet<String>,
}

/// What the contract allows for one request.
#[derive(Debug)]
pub enum Expected {
    NotFound,
    MethodNotAllowed { allow: BTreeSet<String> },
    Documented { statuses: Vec<String> },
}

impl Contract {
    /// The spec as the component serves it, asked for once through the router.
    pub fn served(fixture: &Fixture) -> Self {
        let request = Request::get("/openapi.json")
            .header("spin-client-addr", CLIENT_ADDR)
            .body(Vec::new())
            .expect("a valid request");
        let res = fixture.world().send(request);
        assert_eq!(res.status(), 200, "GET /openapi.json");
        let text = std::str::from_utf8(res.body()).expect("the served spec is UTF-8");
        Self::from_json(text)
    }

    pub fn from_json(text: &str) -> Self {
        let spec: Value = serde_json::from_str(text).expect("the served spec is JSON");
        let paths = spec["paths"]
            .as_object()
            .expect("the spec has paths")
            .iter()
            .map(|(template, item)| {
                let operations = METHODS
                    .iter()
                    .filter_map(|m| {
                        let responses = item.get(*m)?["responses"].as_object()?;
                        Some((m.to_ascii_uppercase(), responses.keys().cloned().collect()))
                    })
                    .collect();
                (template.clone(), operations)
            })
            .collect();
        let codes = spec["components"]["schemas"]["Error"]["properties"]["error"]["properties"]
            ["code"]["enum"]
            .as_array()
            .expect("the spec lists the error codes")
            .iter()
            .filter_map(|c| c.as_str().map(str::to_owned))
            .collect();
        Self { paths, codes }
    }

    pub fn expected(&self, method: &str, path: &str) -> Expected {
        let on_path: Vec<_> = self
            .paths
            .iter()
            .filter(|(template, _)| matches(template, path))
            .collect();
        if on_path.is_empty() {
            return Expected::NotFound;
        }
        let statuses: Vec<String> = on_path
            .iter()
            .filter_map(|(_, ops)| ops.get(method))
            .flatten()
            .cloned()
            .collect();
        if statuses.is_empty() {
            let allow = on_path
                .iter()
                .flat_map(|(_, ops)| ops.keys().cloned())
                .collect();
            return Expected::MethodNotAllowed { allow };
        }
        Expected::Documented { statuses }
    }

    /// Whether `res`, the answer to `method` on `path`, keeps the contract.
    pub fn check(&self, method: &str, path: &str, res: &Response<Vec<u8>>) -> Result<(), String> {
        let status = res.status().as_u16();
        let headers = res.headers();
        let types: Vec<_> = headers.get_all(header::CONTENT_TYPE).iter().collect();
        let body: Value = if status == 204 {
            if !res.body().is_empty() {
                return Err("a 204 with a body".into());
            }
            if !types.is_empty() {
                return Err(format!("a 204 with a content-type: {types:?}"));
            }
            Value::Null
        } else {
            if types.len() != 1 || types[0] != "application/json" {
                return Err(format!("content-type is {types:?}, not application/json"));
            }
            serde_json::from_slice(res.body()).map_err(|e| format!("the body is not JSON ({e})"))?
        };
        for (name, value) in [
            (header::CACHE_CONTROL, "no-store"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ] {
            if headers.get(&name).is_none_or(|v| v != value) {
                return Err(format!("{name} is not {value}"));
            }
        }
        if headers.get("x-request-id").is_none_or(|v| v.is_empty()) {
            return Err("no x-request-id".into());
        }

        let code = if status >= 400 {
            Some(self.error_code(&body)?)
        } else {
            None
        };
        match self.expected(method, path) {
            Expected::NotFound => {
                if status != 404 || code != Some("not_found") {
                    return Err(format!(
                        "an undescribed path gave {status} {code:?}, not 404"
                    ));
                }
            }
            Expected::MethodNotAllowed { allow } => {
                if status != 405 {
                    return Err(format!("an undocumented method gave {status}, not 405"));
                }
                let given: BTreeSet<String> = headers
                    .get(header::ALLOW)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .split(',')
                    .map(|m| m.trim().to_owned())
                    .filter(|m| !m.is_empty())
                    .collect();
                if given != allow {
                    return Err(format!("405 allows {given:?}, the spec {allow:?}"));
                }
            }
            Expected::Documented { statuses } => {
                if !documents(&statuses, status) {
                    return Err(format!(
                        "status {status} is undocumented (documented: {statuses:?})"
                    ));
                }
            }
        }
        let needs = match code {
            Some("missing_token" | "invalid_token") => Some(header::WWW_AUTHENTICATE),
            Some("rate_limited" | "account_locked" | "account_busy") => Some(header::RETRY_AFTER),
            _ => None,
        };
        if let Some(name) = needs {
            if headers.get(&name).is_none() {
                return Err(format!("{code:?} without {name}"));
            }
        }
        Ok(())
    }

    /// The code of an error body, which must have exactly the documented shape.
    fn error_code<'b>(&self, body: &'b Value) -> Result<&'b str, String> {
        let shape = || format!("the error body is not {{error: {{code, message}}}}: {body}");
        let top = body.as_object().ok_or_else(shape)?;
        let error = top
            .get("error")
            .and_then(Value::as_object)
            .ok_or_else(shape)?;
        let code = error
            .get("code")
            .and_then(Value::as_str)
            .ok_or_else(shape)?;
        let message = error
            .get("message")
            .and_then(Value::as_str)
            .ok_or_else(shape)?;
        if top.len() != 1 || error.len() != 2 || message.is_empty() {
            return Err(shape());
        }
        if !self.codes.contains(code) {
            return Err(format!("error code {code} is not in the spec"));
        }
        Ok(code)
    }
}

/// Whether the router's path pattern rule matches `path` to `template`.
pub fn matches(template: &str, path: &str) -> bool {
    let (mut template, mut path) = (template.split('/'), path.split('/'));
    loop {
        match (template.next(), path.next()) {
            (None, None) => return true,
            (Some(t), Some(s)) if t.starts_with('{') && t.ends_with('}') && !s.is_empty() => {}
            (Some(t), Some(s)) if t == s => {}
            _ => return false,
        }
    }
}

/// Whether a response key documents `status` (`"404"`, `"4XX"`, `"default"`).
fn documents(keys: &[String], status: u16) -> bool {
    let exact = status.to_string();
    let range = format!("{}XX", status / 100);
    keys.iter()
        .any(|k| *k == exact || k.eq_ignore_ascii_case(&range) || k == "default")
}
