//! Counters for the admin dashboard, kept with atomic increments and read
//! in one batch call, never by scanning keys.

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

/// Every counter, in [`Counter::ALL`] order, in one store call.
pub fn read_all(store: &dyn KeyValue) -> Result<Vec<(Counter, i64)>> {
    let keys: Vec<String> = Counter::ALL.iter().map(|c| c.key()).collect();
    let values = store.get_many(&keys)?;
    Ok(Counter::ALL
        .iter()
        .zip(values)
        .map(|(c, v)| (*c, v.as_deref().and_then(decode_counter).unwrap_or(0)))
        .collect())
}
