//! The bad-input corpus, `tests/corpus/bad_input.jsonl`: hostile requests
//! kept as data, each with the answer the contract (`openapi.yaml`) gives
//! it. Replayed through the router by `tests/bad_input.rs` and over real
//! HTTP by `tests/e2e/bad_input.rs`; the format is in `tests/corpus/README.md`.
//! This module reads and expands entries, and holds the two checks both
//! runners make of what comes back: the error body, and the audit lines.
#![allow(dead_code)]

use ct_codecs::{Base64, Decoder as _};
use serde::Deserialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

pub const FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus/bad_input.jsonl");

/// What the component answers (the contract's status and error code).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    pub status: u16,
    pub code: String,
    /// The `Allow` header of a 405, exactly.
    pub allow: Option<String>,
    pub message_starts_with: Option<String>,
}

/// How a runtime answered, where it answers before the component can.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuntimeAnswer {
    /// Its own status (no JSON error body: the component never ran).
    Status(u16),
    /// It closed the connection without an answer.
    Closed,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    name: String,
    category: String,
    method: String,
    path: Value,
    #[serde(default)]
    headers: Vec<Value>,
    body: Option<Value>,
    expect: Expect,
    #[serde(default)]
    http_only: bool,
    chunked: Option<usize>,
    #[serde(default)]
    half_close: bool,
    #[serde(default)]
    no_host: bool,
    #[serde(default)]
    over_http: BTreeMap<String, Value>,
    note: Option<String>,
}

/// A header field as sent: name and value, byte for byte.
pub type Field = (Vec<u8>, Vec<u8>);

/// One corpus request, expanded: generators run, `b64:` decoded and the
/// `${...}` placeholders filled in.
#[derive(Clone, Debug)]
pub struct Entry {
    pub name: String,
    pub category: String,
    pub method: String,
    /// The request target, byte for byte.
    pub path: Vec<u8>,
    /// In order, repeated names kept.
    pub headers: Vec<Field>,
    pub body: Vec<u8>,
    pub expect: Expect,
    /// Only meaningful on the wire (framing, bytes `http` will not build).
    pub http_only: bool,
    /// Sent with `Transfer-Encoding: chunked`, in chunks of this size.
    pub chunked: Option<usize>,
    /// The client shuts its side down after sending.
    pub half_close: bool,
    /// Sent without a `Host` header.
    pub no_host: bool,
    /// Per runtime (`test_host`, `spin`): its own answer, allowed instead
    /// of the component's.
    pub over_http: BTreeMap<String, RuntimeAnswer>,
}

impl Entry {
    /// Whether the entry lists a header named `name` (ASCII case-insensitive).
    pub fn has_header(&self, name: &str) -> bool {
        self.headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
    }

    /// The path without its query, as text (lossy), to find the operation.
    pub fn path_only(&self) -> String {
        let text = String::from_utf8_lossy(&self.path);
        let end = text.find(['?', '#']).unwrap_or(text.len());
        text[..end].to_owned()
    }
}

/// The values of the corpus's placeholders, from the set-up each runner
/// does first: a user `alice` and an admin `root`, each logged in.
pub struct Placeholders {
    pub user_token: String,
    pub admin_token: String,
    pub user_refresh: String,
}

impl Placeholders {
    /// For reading the corpus without a server (counting, the contract check).
    pub fn dummy() -> Self {
        Self {
            user_token: "user.token.placeholder".into(),
            admin_token: "admin.token.placeholder".into(),
            user_refresh: "refresh-placeholder".into(),
        }
    }

    fn fill(&self, bytes: Vec<u8>) -> Vec<u8> {
        let mut out = bytes;
        for (name, value) in [
            ("${USER_TOKEN}", &self.user_token),
            ("${ADMIN_TOKEN}", &self.admin_token),
            ("${USER_REFRESH}", &self.user_refresh),
        ] {
            out = replace(&out, name.as_bytes(), value.as_bytes());
        }
        out
    }
}

fn replace(haystack: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(haystack.len());
    let mut rest = haystack;
    while let Some(at) = rest.windows(from.len()).position(|w| w == from) {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(to);
        rest = &rest[at + from.len()..];
    }
    out.extend_from_slice(rest);
    out
}

/// A byte string: text as UTF-8, `b64:...` as the bytes it encodes, or a
/// generator `{"repeat": spec, "times": n, "prefix"?: spec, "suffix"?: spec}`.
pub fn bytes(spec: &Value) -> Result<Vec<u8>, String> {
    match spec {
        Value::String(text) => match text.strip_prefix("b64:") {
            Some(encoded) => Base64::decode_to_vec(encoded, None)
                .map_err(|e| format!("bad base64 {encoded:?}: {e}")),
            None => Ok(text.as_bytes().to_vec()),
        },
        Value::Object(generator) => {
            let part = |key: &str| generator.get(key).map(bytes).transpose();
            let unit = part("repeat")?.ok_or("a generator needs `repeat`")?;
            let times = generator
                .get("times")
                .and_then(Value::as_u64)
                .ok_or("a generator needs `times`")?;
            let mut out = part("prefix")?.unwrap_or_default();
            for _ in 0..times {
                out.extend_from_slice(&unit);
            }
            out.extend(part("suffix")?.unwrap_or_default());
            if let Some(unknown) = generator
                .keys()
                .find(|k| !["repeat", "times", "prefix", "suffix"].contains(&k.as_str()))
            {
                return Err(format!("unknown generator key {unknown:?}"));
            }
            Ok(out)
        }
        other => Err(format!("not a byte string: {other}")),
    }
}

/// `[name, value]`, or `{"name": "x-pad-{i}", "value": spec, "times": n}`
/// for `n` fields (`{i}` counting from 0).
fn header_fields(spec: &Value) -> Result<Vec<Field>, String> {
    match spec {
        Value::Array(pair) if pair.len() == 2 => Ok(vec![(bytes(&pair[0])?, bytes(&pair[1])?)]),
        Value::Object(generator) => {
            let name = generator
                .get("name")
                .and_then(Value::as_str)
                .ok_or("a header generator needs `name`")?;
            let value = bytes(
                generator
                    .get("value")
                    .ok_or("a header generator needs `value`")?,
            )?;
            let times = generator
                .get("times")
                .and_then(Value::as_u64)
                .ok_or("a header generator needs `times`")?;
            Ok((0..times)
                .map(|i| {
                    let name = name.replace("{i}", &i.to_string());
                    (name.into_bytes(), value.clone())
                })
                .collect())
        }
        other => Err(format!("not a header: {other}")),
    }
}

fn runtime_answer(value: &Value) -> Result<RuntimeAnswer, String> {
    match value {
        Value::String(s) if s == "closed" => Ok(RuntimeAnswer::Closed),
        Value::Number(n) => n
            .as_u64()
            .and_then(|n| u16::try_from(n).ok())
            .map(RuntimeAnswer::Status)
            .ok_or_else(|| format!("not a status: {n}")),
        other => Err(format!(
            "a runtime answer is a status or \"closed\": {other}"
        )),
    }
}

fn expand(raw: RawEntry, placeholders: &Placeholders) -> Result<Entry, String> {
    let mut headers = Vec::new();
    for spec in &raw.headers {
        for (name, value) in header_fields(spec)? {
            headers.push((name, placeholders.fill(value)));
        }
    }
    let over_http = raw
        .over_http
        .iter()
        .map(|(runtime, answer)| {
            if !["test_host", "spin"].contains(&runtime.as_str()) {
                return Err(format!("unknown runtime {runtime:?}"));
            }
            Ok((runtime.clone(), runtime_answer(answer)?))
        })
        .collect::<Result<_, String>>()?;
    let _ = raw.note;
    if (raw.chunked.is_some() || raw.half_close) && !raw.http_only {
        return Err("chunked and half_close entries are http_only".into());
    }
    Ok(Entry {
        name: raw.name,
        category: raw.category,
        method: raw.method,
        path: bytes(&raw.path)?,
        headers,
        body: placeholders.fill(
            raw.body
                .as_ref()
                .map(bytes)
                .transpose()?
                .unwrap_or_default(),
        ),
        expect: raw.expect,
        http_only: raw.http_only,
        chunked: raw.chunked,
        half_close: raw.half_close,
        no_host: raw.no_host,
        over_http,
    })
}

/// Every entry of the corpus, in file order. Panics, naming the line, on an
/// entry that does not read.
pub fn load(placeholders: &Placeholders) -> Vec<Entry> {
    let text = std::fs::read_to_string(FILE).expect("read tests/corpus/bad_input.jsonl");
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            let raw: RawEntry = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("bad_input.jsonl line {}: {e}", i + 1));
            let name = raw.name.clone();
            expand(raw, placeholders)
                .unwrap_or_else(|e| panic!("bad_input.jsonl line {} ({name}): {e}", i + 1))
        })
        .collect()
}

/// What is wrong with an answer's body as the contract's error body for
/// `expect`: `{"error": {"code", "message"}}` and nothing else, served as
/// `application/json`, with the expected code (and message, where given).
pub fn error_body_problems(expect: &Expect, content_type: Option<&str>, raw: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    if content_type != Some("application/json") {
        found.push(format!("content-type {content_type:?}"));
    }
    let body: Value = match serde_json::from_slice(raw) {
        Ok(body) => body,
        Err(e) => {
            found.push(format!(
                "body is not JSON ({e}): {:?}",
                String::from_utf8_lossy(raw)
            ));
            return found;
        }
    };
    let shaped = body.as_object().is_some_and(|o| o.len() == 1)
        && body["error"].as_object().is_some_and(|e| e.len() == 2)
        && body["error"]["code"].is_string()
        && body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty());
    if !shaped {
        found.push(format!("not the error shape: {body}"));
    }
    if body["error"]["code"] != expect.code.as_str() {
        found.push(format!(
            "code {}, expected {}",
            body["error"]["code"], expect.code
        ));
    }
    if let Some(prefix) = &expect.message_starts_with {
        let message = body["error"]["message"].as_str().unwrap_or("");
        if !message.starts_with(prefix.as_str()) {
            found.push(format!("message {message:?}, expected {prefix:?}..."));
        }
    }
    found
}

/// Every event `src/audit.rs` names.
pub const EVENTS: [&str; 21] = [
    "registration",
    "login_success",
    "login_failure",
    "account_locked",
    "locked_account_attempt",
    "rate_limited",
    "token_rejected",
    "access_denied",
    "admin_access",
    "token_refreshed",
    "refresh_rejected",
    "refresh_token_reuse",
    "logout",
    "password_changed",
    "password_change_failure",
    "user_unlocked",
    "role_changed",
    "user_deleted",
    "sessions_revoked",
    "config_error",
    "internal_error",
];

/// An audit line as exactly one JSON object with the documented fields,
/// each of the documented kind, and names only the username rule let
/// through; `Err` says what is wrong.
pub fn audit_line(line: &str) -> Result<Value, String> {
    if line.chars().any(char::is_control) {
        return Err(format!("a control character in an audit line: {line:?}"));
    }
    let mut values = serde_json::Deserializer::from_str(line).into_iter::<Value>();
    let event = match (values.next(), values.next()) {
        (Some(Ok(event)), None) if event.is_object() => event,
        _ => return Err(format!("not exactly one JSON object: {line:?}")),
    };
    let fields: BTreeSet<&str> = event
        .as_object()
        .into_iter()
        .flat_map(|o| o.keys())
        .map(String::as_str)
        .collect();
    let required = [
        "ts",
        "event",
        "outcome",
        "client_ip",
        "request_id",
        "method",
        "path",
    ];
    let optional = ["username", "target", "reason"];
    if let Some(missing) = required.iter().find(|f| !fields.contains(**f)) {
        return Err(format!("{missing} missing: {line}"));
    }
    if let Some(extra) = fields
        .iter()
        .find(|f| !required.contains(f) && !optional.contains(f))
    {
        return Err(format!("undocumented field {extra}: {line}"));
    }
    let text = |field: &str| event[field].as_str().unwrap_or("").to_owned();
    if !EVENTS.contains(&text("event").as_str()) {
        return Err(format!("unknown event: {line}"));
    }
    if !["success", "failure", "denied", "error"].contains(&text("outcome").as_str()) {
        return Err(format!("unknown outcome: {line}"));
    }
    let ip = text("client_ip");
    if ip != "unknown" && ip.parse::<IpAddr>().is_err() {
        return Err(format!("client_ip is not an address: {line}"));
    }
    // Names in the log are names the username rule let through, normalized.
    for field in ["username", "target"] {
        if event.get(field).is_some() {
            let name = text(field);
            let rule = (3..=32).contains(&name.len())
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b));
            if !rule {
                return Err(format!("{field} is not a username: {line}"));
            }
        }
    }
    Ok(event)
}
