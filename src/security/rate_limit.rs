//! Per-client rate limits over a rolling window, exact under concurrency
//! and built on the store's atomic increment alone.
//!
//! Every attempt from a client, allowed or not, takes the next sequence
//! number of the client's slot and records its time in ring entry
//! `seq % limit`. Attempt `seq` is allowed only if attempt `seq - limit`
//! is recorded and at least a window old: then no more than `limit`
//! attempts ever fall in any rolling window. An attempt whose predecessor
//! has not been recorded yet is concurrent with it, so it is refused.
//! Refused attempts count too: a client that keeps hammering stays limited
//! until it pauses for a window.
//!
//! Clients are hashed into a fixed number of slots (see `keys::SLOTS`), so
//! the store holds at most `SLOTS * (limit + 1)` keys per scope.

use crate::config::RatePolicy;
use crate::security::keys::Keys;
use crate::store::KeyValue;
use anyhow::Result;

#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    /// Seconds until the next attempt would be allowed.
    Limited {
        retry_after: u64,
    },
}

/// Records an attempt by `client` in `scope` at `now_ms`: three store calls
/// when allowed, four when refused.
pub fn attempt(
    store: &dyn KeyValue,
    keys: &Keys,
    scope: &str,
    client: &str,
    policy: RatePolicy,
    now_ms: u64,
) -> Result<Decision> {
    let base = format!("rl:{scope}:{}", keys.slot(scope, client));
    let limit = i64::from(policy.limit);
    let window_ms = policy.window_secs * 1000;
    let entry = |seq: i64| format!("{base}:{}", seq.rem_euclid(limit));

    let seq = store.increment(&format!("{base}:seq"), 1)?;
    let decision = if seq <= limit {
        Decision::Allowed
    } else {
        // The attempt `limit` back decides this one; the one after it says
        // when a refused client may come back (read only when refusing).
        let recorded_at = |want: i64| -> Result<Option<u64>> {
            Ok(store
                .get(&entry(want))?
                .as_deref()
                .and_then(decode)
                .filter(|(s, _)| *s == want)
                .map(|(_, at)| at))
        };
        match recorded_at(seq - limit)? {
            Some(at) if now_ms >= at.saturating_add(window_ms) => Decision::Allowed,
            _ => {
                let free_at = recorded_at(seq - limit + 1)?
                    .map(|at| at.saturating_add(window_ms))
                    .unwrap_or(now_ms + window_ms);
                Decision::Limited {
                    retry_after: free_at.saturating_sub(now_ms).div_ceil(1000).max(1),
                }
            }
        }
    };
    store.set(&entry(seq), format!("{seq}:{now_ms}").as_bytes())?;
    Ok(decision)
}

fn decode(bytes: &[u8]) -> Option<(i64, u64)> {
    let (seq, at) = std::str::from_utf8(bytes).ok()?.split_once(':')?;
    Some((seq.parse().ok()?, at.parse().ok()?))
}
