//! Password hashing with bcrypt. Only the non-truncating functions are used:
//! the `Password` type already refuses anything bcrypt would cut short.
//!
//! Every failed login costs the bcrypt work of one check at the configured
//! cost, so its time does not tell whether the name has an account, whatever
//! the history of `bcrypt_cost` (issue 7, finding 7). A run at cost `c` does
//! `2^c` rounds. An unknown name runs one dummy check at the configured cost
//! `c`. A wrong password against a hash of a lower cost `s` is padded with
//! dummy runs at costs `s, s+1, .., c-1`: `2^s + (2^s + .. + 2^(c-1)) = 2^c`
//! rounds exactly, plus bcrypt's fixed set-up of each extra run (about 0.7
//! of a round: 0.07% of a cost-10 check per step of cost). A hash of a
//! *higher* cost (the cost was lowered) cannot be checked for less, and an
//! unknown name's price cannot follow it without a store read on every
//! login, so such an account costs its own, `2^(s-c)` times as much, until
//! its owner logs in. A successful login rehashes any hash not at the
//! configured cost, so each account pays for a change of cost once.

use crate::clock::Clock;
use crate::domain::Password;
use crate::error::ApiError;
use crate::security::lease::Lease;
use crate::store::KeyValue;
use anyhow::{Context, Result};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

/// bcrypt computations run by this process, so a test can check that every
/// login path pays the same bcrypt price (time itself is too noisy to test).
static BCRYPT_RUNS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// bcrypt rounds (`2^cost` per run) done on this thread: the work a
    /// request paid, for tests that compare login paths by work, not time.
    static ROUNDS: Cell<u64> = const { Cell::new(0) };
}

pub fn bcrypt_runs() -> u64 {
    BCRYPT_RUNS.load(Ordering::Relaxed)
}

/// bcrypt rounds run on the calling thread so far (a run at cost `c` is
/// `2^c`). A request runs on one thread, so the difference around it is the
/// work that request did.
pub fn rounds_on_this_thread() -> u64 {
    ROUNDS.with(Cell::get)
}

fn count(cost: u32) {
    BCRYPT_RUNS.fetch_add(1, Ordering::Relaxed);
    ROUNDS.with(|r| r.set(r.get().saturating_add(1u64 << cost.min(63))));
}

/// A fixed salt for the dummy checks below; it protects nothing.
const DUMMY_SALT: [u8; 16] = *b"secure-backend-0";

pub fn hash(password: &Password, cost: u32) -> Result<String> {
    count(cost);
    bcrypt::non_truncating_hash(password.expose(), cost)
        .map_err(|_| anyhow::anyhow!("bcrypt could not hash at cost {cost}"))
}

/// The cost a stored hash was made at. A malformed hash is an internal error.
pub fn cost_of(stored_hash: &str) -> Result<u32> {
    // bcrypt's error quotes the hash: it must not reach the audit log.
    let parts: bcrypt::HashParts = stored_hash
        .parse()
        .map_err(|_| anyhow::anyhow!("stored password hash is malformed"))?;
    Ok(parts.get_cost())
}

/// Checks a password against an account's stored hash. When it is wrong, the
/// work done is one check at `cost` (see the module doc), whatever cost the
/// hash was made at, as long as that is not above `cost`. A malformed stored
/// hash is an internal error, not a failed login.
pub fn verify(password: &Password, stored_hash: &str, cost: u32) -> Result<bool> {
    let stored_cost = cost_of(stored_hash)?;
    count(stored_cost);
    let right = bcrypt::non_truncating_verify(password.expose(), stored_hash)
        .map_err(|_| anyhow::anyhow!("stored password hash is malformed"))?;
    if !right {
        for pad in stored_cost..cost {
            burn(password, pad);
        }
    }
    Ok(right)
}

/// Burns the same bcrypt work as a wrong password against an account at
/// `cost`, for a name that has no account.
pub fn verify_nobody(password: &Password, cost: u32) {
    burn(password, cost);
}

fn burn(password: &Password, cost: u32) {
    count(cost);
    let _ = bcrypt::non_truncating_hash_with_salt(password.expose(), cost, DUMMY_SALT);
}

/// After a successful check: a new hash at `cost` when the stored one was
/// made at another cost, `None` when it is already right.
pub fn rehash_if_stale(
    password: &Password,
    stored_hash: &str,
    cost: u32,
) -> Result<Option<String>> {
    if cost_of(stored_hash)? == cost {
        return Ok(None);
    }
    hash(password, cost).map(Some)
}

/// Puts `new_hash` into the user record at `key`, holding its lease, only
/// if the record is still `checked`, the bytes the password was checked
/// against. A record changed meanwhile (deleted, re-registered, another
/// password or role) is left as it is: its next login upgrades it. Other
/// fields, known to this build or not, are kept as they are. Returns
/// whether it wrote.
pub fn store_upgraded_hash(
    store: &dyn KeyValue,
    lease: &Lease,
    clock: &dyn Clock,
    key: &str,
    checked: &[u8],
    new_hash: &str,
) -> Result<bool, ApiError> {
    if store.get(key)?.as_deref() != Some(checked) {
        return Ok(false);
    }
    let mut record: serde_json::Value =
        serde_json::from_slice(checked).context("decode user record")?;
    let fields = record
        .as_object_mut()
        .context("user record is not a JSON object")?;
    fields.insert("password_hash".into(), new_hash.into());
    lease.set(
        clock,
        key,
        &serde_json::to_vec(&record).context("encode user")?,
    )?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    fn password(raw: &str) -> Password {
        Password::parse_candidate(raw.into()).unwrap()
    }

    fn rounds(f: impl FnOnce()) -> u64 {
        let before = rounds_on_this_thread();
        f();
        rounds_on_this_thread() - before
    }

    #[test]
    fn a_wrong_password_costs_one_check_at_the_configured_cost_whatever_the_hash() {
        let (right, wrong) = (password("correct horse"), password("wrong horse"));
        for stored in 4..=7 {
            let stored_hash = hash(&right, stored).unwrap();
            for cost in stored..=7 {
                let work = rounds(|| assert!(!verify(&wrong, &stored_hash, cost).unwrap()));
                assert_eq!(work, 1 << cost, "hash at {stored}, configured {cost}");
                assert_eq!(work, rounds(|| verify_nobody(&wrong, cost)));
            }
            // Above the configured cost: its own price, no padding.
            let work = rounds(|| assert!(!verify(&wrong, &stored_hash, 4).unwrap()));
            assert_eq!(work, 1 << stored);
        }
    }

    #[test]
    fn a_right_password_is_not_padded_and_a_stale_hash_is_rehashed() {
        let right = password("correct horse");
        let old = hash(&right, 4).unwrap();
        assert_eq!(rounds(|| assert!(verify(&right, &old, 6).unwrap())), 1 << 4);
        let new = rehash_if_stale(&right, &old, 6).unwrap().unwrap();
        assert!(new.starts_with("$2b$06$"), "{new}");
        assert!(verify(&right, &new, 6).unwrap());
        assert!(rehash_if_stale(&right, &new, 6).unwrap().is_none());
        // Lowered costs are followed too.
        let lower = rehash_if_stale(&right, &new, 5).unwrap().unwrap();
        assert_eq!(cost_of(&lower).unwrap(), 5);
    }

    use crate::security::lease;

    fn upgrade(store: &MemoryStore, checked: &[u8], new_hash: &str) -> bool {
        let clock = crate::clock::ManualClock::at(1_795_737_600_000);
        lease::with(store, &clock, "user:alice", |lease| {
            store_upgraded_hash(store, lease, &clock, "user:alice", checked, new_hash)
        })
        .unwrap()
    }

    #[test]
    fn an_upgrade_never_writes_over_a_record_changed_since_the_check() {
        let store = MemoryStore::new();
        let checked = br#"{"username":"alice","role":"user","password_hash":"old","future":1}"#;
        store.set("user:alice", checked).unwrap();
        assert!(upgrade(&store, checked, "new"));
        let now: serde_json::Value =
            serde_json::from_slice(&store.get("user:alice").unwrap().unwrap()).unwrap();
        assert_eq!(now["password_hash"], "new");
        assert_eq!((&now["role"], &now["future"]), (&"user".into(), &1.into()));

        // Changed (another role) or gone since the check: left alone.
        let changed = br#"{"username":"alice","role":"admin","password_hash":"old"}"#;
        store.set("user:alice", changed).unwrap();
        assert!(!upgrade(&store, checked, "new"));
        assert_eq!(store.get("user:alice").unwrap().unwrap(), changed);
        store.delete("user:alice").unwrap();
        assert!(!upgrade(&store, checked, "new"));
        assert!(store.get("user:alice").unwrap().is_none());
    }
}
