//! Security audit log: one JSON object per line on stdout (Spin collects the
//! component's stdout). Lines are built with serde_json, so every value is
//! escaped and a username cannot forge a line. Nothing secret is ever a field
//! here: events carry names, outcomes and reasons, never passwords, hashes,
//! tokens or keys.

use crate::context::RequestMeta;
use std::sync::Mutex;

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
    TokenRefreshed,
    RefreshRejected,
    RefreshTokenReuse,
    Logout,
    PasswordChanged,
    PasswordChangeFailure,
    UserUnlocked,
    RoleChanged,
    UserDeleted,
    SessionsRevoked,
    MfaEnrollmentStarted,
    MfaEnrolled,
    MfaChallenge,
    MfaSuccess,
    MfaFailure,
    MfaRecoveryCodeUsed,
    MfaDisabled,
    MfaReset,
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
            Event::TokenRefreshed => "token_refreshed",
            Event::RefreshRejected => "refresh_rejected",
            Event::RefreshTokenReuse => "refresh_token_reuse",
            Event::Logout => "logout",
            Event::PasswordChanged => "password_changed",
            Event::PasswordChangeFailure => "password_change_failure",
            Event::UserUnlocked => "user_unlocked",
            Event::RoleChanged => "role_changed",
            Event::UserDeleted => "user_deleted",
            Event::SessionsRevoked => "sessions_revoked",
            Event::MfaEnrollmentStarted => "mfa_enrollment_started",
            Event::MfaEnrolled => "mfa_enrolled",
            Event::MfaChallenge => "mfa_challenge",
            Event::MfaSuccess => "mfa_success",
            Event::MfaFailure => "mfa_failure",
            Event::MfaRecoveryCodeUsed => "mfa_recovery_code_used",
            Event::MfaDisabled => "mfa_disabled",
            Event::MfaReset => "mfa_reset",
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

/// `ms` since the Unix epoch as UTC RFC 3339 with milliseconds, e.g.
/// `2026-11-27T00:00:00.000Z`. Days to a civil date by Howard Hinnant's
/// `civil_from_days` (proleptic Gregorian); a crate for this cost more
/// component size than the size goal of issue 8 leaves room for. A test
/// checks it against `humantime` over centuries of timestamps.
pub fn rfc3339_millis(ms: u64) -> String {
    let (secs, millis) = (ms / 1000, ms % 1000);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (hour, minute, second) = (rem / 3600, rem % 3600 / 60, rem % 60);
    // Shift the epoch to 0000-03-01, so leap days end each 4/100/400-year cycle.
    let z = days + 719_468;
    let (era, doe) = (z / 146_097, z % 146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{millis:03}Z")
}

/// Who an event is about: the user acting, and for admin actions the user
/// acted on.
#[derive(Clone, Copy, Default)]
pub struct Subjects<'a> {
    pub username: Option<&'a str>,
    pub target: Option<&'a str>,
}

/// Formats one audit line.
pub fn line(
    now_ms: u64,
    meta: &RequestMeta,
    client_ip: &str,
    event: Event,
    outcome: Outcome,
    subjects: Subjects,
    reason: Option<&str>,
) -> String {
    let mut record = serde_json::json!({
        "ts": rfc3339_millis(now_ms),
        "event": event.name(),
        "outcome": outcome.name(),
        "client_ip": client_ip,
        "request_id": meta.request_id,
        "method": meta.method,
        "path": meta.path,
    });
    if let Some(map) = record.as_object_mut() {
        if let Some(u) = subjects.username {
            map.insert("username".into(), u.into());
        }
        if let Some(t) = subjects.target {
            map.insert("target".into(), t.into());
        }
        if let Some(r) = reason {
            map.insert("reason".into(), r.into());
        }
    }
    record.to_string()
}
