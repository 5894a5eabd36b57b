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
}

impl Counter {
    pub const ALL: [Counter; 6] = [
        Counter::Users,
        Counter::Admins,
        Counter::LoginSuccesses,
        Counter::LoginFailures,
        Counter::Lockouts,
        Counter::RateLimited,
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
        }
    }

    fn key(self) -> String {
        format!("stats:{}", self.name())
    }
}

pub fn bump(store: &dyn KeyValue, counter: Counter) -> Result<()> {
    store.increment(&counter.key(), 1).map(|_| ())
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
