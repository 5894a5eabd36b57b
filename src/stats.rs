//! Counters for the admin dashboard, kept with atomic increments and read
//! with one `get` each, never by scanning keys.

use crate::store::{decode_counter, KeyValue};
use anyhow::Result;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    Users,
    Admins,
    LoginSuccesses,
    LoginFailures,
    Lockouts,
    RateLimited,
    Refreshes,
    RefreshReuse,
    Logouts,
    PasswordChanges,
    AdminActions,
}

impl Counter {
    pub const ALL: [Counter; 11] = [
        Counter::Users,
        Counter::Admins,
        Counter::LoginSuccesses,
        Counter::LoginFailures,
        Counter::Lockouts,
        Counter::RateLimited,
        Counter::Refreshes,
        Counter::RefreshReuse,
        Counter::Logouts,
        Counter::PasswordChanges,
        Counter::AdminActions,
    ];

    /// The field name on the dashboard.
    pub fn name(self) -> &'static str {
        match self {
            Counter::Users => "users",
            Counter::Admins => "admins",
            Counter::LoginSuccesses => "successful_logins",
            Counter::LoginFailures => "failed_logins",
            Counter::Lockouts => "lockouts",
            Counter::RateLimited => "rate_limited_requests",
            Counter::Refreshes => "token_refreshes",
            Counter::RefreshReuse => "refresh_token_reuse",
            Counter::Logouts => "logouts",
            Counter::PasswordChanges => "password_changes",
            Counter::AdminActions => "admin_actions",
        }
    }

    fn key(self) -> String {
        format!("stats:{}", self.name())
    }
}

pub fn bump(store: &dyn KeyValue, counter: Counter) -> Result<()> {
    add(store, counter, 1).map(|_| ())
}

/// Adds `delta` (which may be negative) and returns the new value.
pub fn add(store: &dyn KeyValue, counter: Counter, delta: i64) -> Result<i64> {
    store.increment(&counter.key(), delta)
}

/// Every counter, in [`Counter::ALL`] order: one `get` each (a plain read;
/// `increment(key, 0)` would be a write on SQLite).
pub fn read_all(store: &dyn KeyValue) -> Result<Vec<(Counter, i64)>> {
    Counter::ALL
        .iter()
        .map(|c| {
            let value = store.get(&c.key())?;
            Ok((*c, value.as_deref().and_then(decode_counter).unwrap_or(0)))
        })
        .collect()
}
