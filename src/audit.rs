//! Security audit log: one JSON object per line on stdout (Spin collects the
//! component's stdout). Lines are built with serde_json, so every value is
//! escaped and a username cannot forge a line. Nothing secret is ever a field
//! here: events carry names, outcomes and reasons, never passwords, hashes,
//! tokens or keys.

use crate::context::RequestMeta;
use std::sync::Mutex;
use std::time::{Duration, UNIX_EPOCH};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    Registration,
    LoginSuccess,
    LoginFailure,
    AccountLocked,
    LockedAccountAttempt,
    RateLimited,
    TokenRejected,
    AccessDenied,
    AdminAccess,
    ConfigError,
    InternalError,
}

impl Event {
    pub fn name(self) -> &'static str {
        match self {
            Event::Registration => "registration",
            Event::LoginSuccess => "login_success",
            Event::LoginFailure => "login_failure",
            Event::AccountLocked => "account_locked",
            Event::LockedAccountAttempt => "locked_account_attempt",
            Event::RateLimited => "rate_limited",
            Event::TokenRejected => "token_rejected",
            Event::AccessDenied => "access_denied",
            Event::AdminAccess => "admin_access",
            Event::ConfigError => "config_error",
            Event::InternalError => "internal_error",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
    Denied,
    Error,
}

impl Outcome {
    fn name(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Denied => "denied",
            Outcome::Error => "error",
        }
    }
}

/// Where audit lines go: stdout in the component, a buffer in tests.
pub trait AuditSink {
    fn write_line(&self, line: &str);
}

pub struct Stdout;

impl AuditSink for Stdout {
    fn write_line(&self, line: &str) {
        use std::io::Write;
        // A failed write must not panic the instance (println! would).
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
}

/// Collects lines in memory, for tests.
#[derive(Default)]
pub struct Recorder(Mutex<Vec<String>>);

impl Recorder {
    pub fn lines(&self) -> Vec<String> {
        self.0.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

impl AuditSink for Recorder {
    fn write_line(&self, line: &str) {
        if let Ok(mut lines) = self.0.lock() {
            lines.push(line.to_owned());
        }
    }
}

/// Formats one audit line.
pub fn line(
    now_ms: u64,
    meta: &RequestMeta,
    client_ip: &str,
    event: Event,
    outcome: Outcome,
    username: Option<&str>,
    reason: Option<&str>,
) -> String {
    let ts = humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(now_ms));
    let mut record = serde_json::json!({
        "ts": ts.to_string(),
        "event": event.name(),
        "outcome": outcome.name(),
        "client_ip": client_ip,
        "request_id": meta.request_id,
        "method": meta.method,
        "path": meta.path,
    });
    if let Some(map) = record.as_object_mut() {
        if let Some(u) = username {
            map.insert("username".into(), u.into());
        }
        if let Some(r) = reason {
            map.insert("reason".into(), r.into());
        }
    }
    record.to_string()
}
