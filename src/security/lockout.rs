//! Account lockout: after `threshold` consecutive failed logins an account
//! is locked for a while; login then answers 423 without checking the
//! password. Exact under concurrency, built on the atomic increment alone.
//!
//! Before checking a password, an attempt claims a ticket from the account's
//! failure counter. Only tickets 1..=threshold get a password check, so no
//! burst of parallel attempts gets more checks than the threshold. A failure
//! keeps its ticket; a success deletes the counter (the streak is over); the
//! failure holding the last ticket sets the lock.
//!
//! Lock periods are numbered. The counter in use belongs to the period since
//! the last lock (`fail:<id>:<period % 2>`), so when a lock ends the next
//! period starts from a fresh counter with no reset to race over. The counter
//! of the period after next is cleared when a lock is set: every attempt still
//! using it started before the previous lock ended, a lock duration ago.

use crate::store::KeyValue;
use anyhow::Result;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    pub threshold: u32,
    pub lock_ms: u64,
}

/// A claimed ticket: this attempt may check the password.
#[derive(Debug)]
pub struct Ticket {
    id: String,
    period: u64,
    number: i64,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The account is locked; retry after this many seconds.
    Locked { retry_after: u64 },
    /// This attempt's ticket was over the threshold, and it set the lock
    /// (the earlier attempts are still running, or one of them died).
    LockedNow { retry_after: u64 },
}

fn lock_key(id: &str) -> String {
    format!("lock:{id}")
}

fn counter_key(id: &str, period: u64) -> String {
    format!("fail:{id}:{}", period % 2)
}

/// A lock record: `<period>:<locked until, ms>`.
fn read_lock(bytes: &[u8]) -> Option<(u64, u64)> {
    let (period, until) = std::str::from_utf8(bytes).ok()?.split_once(':')?;
    Some((period.parse().ok()?, until.parse().ok()?))
}

fn retry_secs(until_ms: u64, now_ms: u64) -> u64 {
    until_ms.saturating_sub(now_ms).div_ceil(1000).max(1)
}

/// Claims a ticket for account `id` (two store calls), or refuses.
pub fn begin(
    store: &dyn KeyValue,
    id: &str,
    policy: Policy,
    now_ms: u64,
) -> Result<Result<Ticket, Refusal>> {
    let record = store.get(&lock_key(id))?.as_deref().and_then(read_lock);
    let period = match record {
        Some((_, until)) if until > now_ms => {
            return Ok(Err(Refusal::Locked {
                retry_after: retry_secs(until, now_ms),
            }))
        }
        Some((locked_period, _)) => locked_period + 1,
        None => 0,
    };
    let number = store.increment(&counter_key(id, period), 1)?;
    let threshold = i64::from(policy.threshold);
    if number > threshold {
        // Only the first ticket past the threshold writes the lock; it matters
        // when an attempt holding a ticket died before it could fail.
        if number == threshold + 1 {
            lock(store, id, period, policy, now_ms)?;
        }
        return Ok(Err(Refusal::LockedNow {
            retry_after: retry_secs(now_ms + policy.lock_ms, now_ms),
        }));
    }
    Ok(Ok(Ticket {
        id: id.to_owned(),
        period,
        number,
    }))
}

/// The password was right: the streak of failures is over.
pub fn succeed(store: &dyn KeyValue, ticket: Ticket) -> Result<()> {
    store.delete(&counter_key(&ticket.id, ticket.period))
}

/// The password was wrong. Returns whether this failure locked the account.
pub fn fail(store: &dyn KeyValue, ticket: Ticket, policy: Policy, now_ms: u64) -> Result<bool> {
    if ticket.number < i64::from(policy.threshold) {
        return Ok(false);
    }
    lock(store, &ticket.id, ticket.period, policy, now_ms)?;
    Ok(true)
}

fn lock(store: &dyn KeyValue, id: &str, period: u64, policy: Policy, now_ms: u64) -> Result<()> {
    let until = now_ms + policy.lock_ms;
    store.set(&lock_key(id), format!("{period}:{until}").as_bytes())?;
    store.delete(&counter_key(id, period + 1))
}
