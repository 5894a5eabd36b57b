//! Per-client rate limits over a rolling window, exact under concurrency
//! and built on the store's atomic increment alone.
//!
//! Every attempt from a client, allowed or not, takes the next sequence
//! number `n` of the client's slot and at once records `n:time`. Attempt
//! `n` is allowed only if the store shows that attempt `n - limit` was made
//! at least a window ago: by its own record, or by the record of any later
//! attempt (numbers are taken in time order, so a later attempt's time
//! bounds an earlier one's). Then no more than `limit` attempts ever fall
//! in any rolling window. A record that is missing or belongs to an older
//! attempt proves nothing (its attempt is still in flight, or its write was
//! lost), so uncertainty only ever refuses. Refused attempts count too: a
//! client that keeps hammering stays limited until it pauses for a window.
//!
//! A record is trusted only under its full sequence number, and the name
//! it is kept under (`n` modulo [`ring`]) comes round again only
//! `4 * (limit + 1)` attempts later, long after the attempts that read it
//! (`n + limit - 1` and `n + limit`). So a slow attempt's write cannot
//! replace a newer record unless it stalls while that many later attempts
//! of the slot take their numbers; even then it can only refuse, never
//! admit. A lost or late record costs at most one refusal: the attempt it
//! decides falls back on the next attempt's record, which also sets
//! `Retry-After`, so a client that waits what it is told passes.
//!
//! Clients are hashed into a fixed number of slots (see `keys::SLOTS`), so
//! the store holds at most `SLOTS * (4 * (limit + 1) + 1)` keys per scope.

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

/// How many record names a slot cycles through.
pub fn ring(policy: RatePolicy) -> i64 {
    4 * (i64::from(policy.limit) + 1)
}

/// Records an attempt by `client` in `scope` at `now_ms`: two store calls
/// for the first `limit` attempts of a slot, then three when allowed and
/// four when refused.
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
    let window_ms = policy.window_secs.saturating_mul(1000);
    let name = |seq: i64| format!("{base}:{}", seq.rem_euclid(ring(policy)));

    let seq = store.increment(&format!("{base}:seq"), 1)?;
    // Recorded before deciding, so a failure while deciding still counts it.
    store.set(&name(seq), format!("{seq}:{now_ms}").as_bytes())?;
    if seq <= limit {
        return Ok(Decision::Allowed);
    }

    // The latest time attempt `want` can have been made at, if the store
    // shows one: its own record, or a later attempt's under the same name.
    let made_by = |want: i64| -> Result<Option<u64>> {
        if want == seq {
            return Ok(Some(now_ms));
        }
        Ok(store
            .get(&name(want))?
            .as_deref()
            .and_then(decode)
            .filter(|(s, _)| *s >= want)
            .map(|(_, at)| at))
    };
    let a_window_ago = |at: &u64| now_ms >= at.saturating_add(window_ms);

    // Attempt `seq - limit` decides this one; the one after it decides the
    // next attempt, so it says when a refused client may come back, and it
    // stands in for a decider whose record is missing.
    if made_by(seq - limit)?.is_some_and(|at| a_window_ago(&at)) {
        return Ok(Decision::Allowed);
    }
    let next = made_by(seq - limit + 1)?;
    if next.is_some_and(|at| a_window_ago(&at)) {
        return Ok(Decision::Allowed);
    }
    // Without a record of the next decider, the attempt after it (no later
    // than this one) passes a window from now.
    let free_at = next.unwrap_or(now_ms).saturating_add(window_ms);
    Ok(Decision::Limited {
        retry_after: free_at.saturating_sub(now_ms).div_ceil(1000).max(1),
    })
}

fn decode(bytes: &[u8]) -> Option<(i64, u64)> {
    let (seq, at) = std::str::from_utf8(bytes).ok()?.split_once(':')?;
    Some((seq.parse().ok()?, at.parse().ok()?))
}
