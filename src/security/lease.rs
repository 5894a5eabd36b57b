//! One writer at a time for a user record, on `increment` alone.
//!
//! A user record changes after registration (password, role, ended
//! sessions), and every change is read, modify, write. Without
//! compare-and-swap, two such changes in parallel would lose one: a logout
//! could put back the password a password change had just replaced. So every
//! change of an existing record holds the record's lease.
//!
//! The lease is [`crate::security::name_claim`]'s scheme with a release:
//! time is cut into epochs of [`EPOCH_SECS`]; a taker at epoch `e` increments
//! `lease:<record>:<e-1>` and then `lease:<record>:<e>`, and holds the lease
//! only if both return 1. Takers less than an epoch apart share a key, so at
//! most one holds it. A key belongs to whoever got 1 from it, and only its
//! owner deletes it: a taker that won the first key and lost the second gives
//! the first back at once, and a holder deletes both when it is done. A
//! holder writes only within [`HOLD_SECS`] of taking the lease
//! ([`Lease::set`]), far inside the epoch that protects it; a holder that
//! died leaves its keys, and the record is free again after one to two
//! epochs, when takers use keys it never touched.
//!
//! What remains without compare-and-swap, as for registration: a write that
//! is issued in time but reaches the store more than an epoch later can land
//! after a later holder's.

use crate::clock::Clock;
use crate::domain::{User, Username};
use crate::error::ApiError;
use crate::security::tokens::CLOCK_TOLERANCE_SECS;
use crate::store::KeyValue;
use anyhow::Result;

pub const EPOCH_SECS: u64 = 30;
/// A holder writes only this soon after taking the lease.
pub const HOLD_SECS: u64 = 10;
const _: () = assert!(HOLD_SECS + CLOCK_TOLERANCE_SECS < EPOCH_SECS);
/// How long a request waits for a lease held by another request.
const WAIT_ROUNDS: u32 = 25;
const WAIT_STEP_MS: u64 = 20;

/// The right to change one record, taken at `taken_at` (seconds).
pub struct Lease<'s> {
    store: &'s dyn KeyValue,
    keys: [String; 2],
    taken_at: u64,
}

impl Lease<'_> {
    /// Fails once the lease is too old to be sure no later holder exists:
    /// a holder checks before each write.
    pub fn check(&self, clock: &dyn Clock) -> Result<(), ApiError> {
        if clock.now_secs() >= self.taken_at + HOLD_SECS {
            return Err(anyhow::anyhow!("a record change outlived its lease").into());
        }
        Ok(())
    }

    /// Writes `value` under `key`, if the lease is still young enough.
    pub fn set(&self, clock: &dyn Clock, key: &str, value: &[u8]) -> Result<(), ApiError> {
        self.check(clock)?;
        self.store.set(key, value)?;
        Ok(())
    }

    /// Deletes `key` under the same condition as [`Lease::set`].
    pub fn delete(&self, clock: &dyn Clock, key: &str) -> Result<(), ApiError> {
        self.check(clock)?;
        self.store.delete(key)?;
        Ok(())
    }

    fn release(self) -> Result<()> {
        for key in &self.keys {
            self.store.delete(key)?;
        }
        Ok(())
    }
}

/// Runs `change` holding the lease of `record_key`, waiting a little for a
/// holder to finish; 503 (retry) when it does not. The lease is given back
/// whatever `change` returns.
pub fn with<T>(
    store: &dyn KeyValue,
    clock: &dyn Clock,
    record_key: &str,
    change: impl FnOnce(&Lease) -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    let mut rounds = 0;
    let lease = loop {
        if let Some(lease) = try_take(store, record_key, clock.now_secs())? {
            break lease;
        }
        rounds += 1;
        if rounds > WAIT_ROUNDS {
            return Err(ApiError::Busy);
        }
        clock.pause(WAIT_STEP_MS);
    };
    let result = change(&lease);
    let released = lease.release();
    let value = result?;
    released?;
    Ok(value)
}

/// Changes the stored record of `username` holding its lease: `change`
/// edits the record as it is now and the result is written back, unless
/// `change` fails. `None` when there is no record. One shared body for
/// every caller, so each change costs the component no more code than its
/// closure.
pub fn change_user(
    store: &dyn KeyValue,
    clock: &dyn Clock,
    username: &Username,
    change: &mut dyn FnMut(&mut User) -> Result<(), ApiError>,
) -> Result<Option<User>, ApiError> {
    let key = User::key(username);
    with(store, clock, &key, |lease| {
        let Some(mut user) = User::from_record(store.get(&key)?)? else {
            return Ok(None);
        };
        change(&mut user)?;
        lease.set(clock, &key, &user.to_record()?)?;
        Ok(Some(user))
    })
}

fn try_take<'s>(store: &'s dyn KeyValue, record_key: &str, now: u64) -> Result<Option<Lease<'s>>> {
    let epoch = now / EPOCH_SECS;
    let keys = [epoch.saturating_sub(1), epoch].map(|e| format!("lease:{record_key}:{e}"));
    if store.increment(&keys[0], 1)? != 1 {
        return Ok(None);
    }
    if store.increment(&keys[1], 1)? != 1 {
        // Ours alone, and useless now: give it back.
        store.delete(&keys[0])?;
        return Ok(None);
    }
    Ok(Some(Lease {
        store,
        keys,
        taken_at: now,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::store::MemoryStore;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const T0: u64 = 1_795_737_600; // an epoch boundary

    #[test]
    fn one_holder_at_a_time_and_free_again_after_release() {
        let store = MemoryStore::new();
        for start in [T0, T0 + 1, T0 + EPOCH_SECS - 1] {
            let held = try_take(&store, "user:a", start).unwrap().unwrap();
            for later in [start, start + 1, start + EPOCH_SECS - 1] {
                assert!(try_take(&store, "user:a", later).unwrap().is_none());
            }
            assert!(try_take(&store, "user:b", start).unwrap().is_some());
            held.release().unwrap();
            store
                .delete(&format!("lease:user:b:{}", start / EPOCH_SECS - 1))
                .unwrap();
            store
                .delete(&format!("lease:user:b:{}", start / EPOCH_SECS))
                .unwrap();
            assert!(store.is_empty(), "{:?}", store.keys());
        }
    }

    #[test]
    fn a_dead_holder_blocks_the_record_for_at_most_two_epochs() {
        let store = MemoryStore::new();
        let start = T0 + EPOCH_SECS - 1;
        std::mem::forget(try_take(&store, "user:a", start).unwrap().unwrap());
        let free_at = (start / EPOCH_SECS + 2) * EPOCH_SECS;
        for t in (start..free_at).step_by(3) {
            assert!(try_take(&store, "user:a", t).unwrap().is_none(), "{t}");
        }
        assert!(free_at - start <= 2 * EPOCH_SECS);
        assert!(try_take(&store, "user:a", free_at).unwrap().is_some());
    }

    #[test]
    fn a_holder_never_writes_late() {
        let (store, clock) = (MemoryStore::new(), ManualClock::at(T0 * 1000));
        let err = with(&store, &clock, "user:a", |lease| {
            clock.advance_secs(HOLD_SECS);
            lease.set(&clock, "user:a", b"late")
        });
        assert!(matches!(err, Err(ApiError::Internal(_))));
        assert!(store.is_empty(), "nothing written, lease given back");
    }

    #[test]
    fn parallel_changes_run_one_at_a_time_and_none_is_lost() {
        let (store, clock) = (MemoryStore::new(), ManualClock::at(T0 * 1000));
        let inside = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    with(&store, &clock, "user:a", |lease| {
                        assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "two holders");
                        let n = store
                            .get("user:a")
                            .unwrap()
                            .map_or(0, |b| String::from_utf8(b).unwrap().parse().unwrap());
                        std::thread::sleep(std::time::Duration::from_millis(2));
                        lease.set(&clock, "user:a", format!("{}", n + 1).as_bytes())?;
                        inside.fetch_sub(1, Ordering::SeqCst);
                        Ok(())
                    })
                    .unwrap();
                });
            }
        });
        assert_eq!(store.get("user:a").unwrap().unwrap(), b"8");
    }
}
