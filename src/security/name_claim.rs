//! Who may create the account record for a name, when registrations race.
//!
//! The record itself (`user:<name>`) is the proof that a name is taken:
//! registration reads it first and never writes over one. The claim only
//! picks one writer among registrations racing for a name that has no record
//! yet, with `increment` alone (Spin has no usable compare-and-swap).
//!
//! Time is cut into epochs of [`EPOCH_SECS`]. A registration at epoch `e`
//! increments `claim:<name>:<e-1>` and then `claim:<name>:<e>`, and wins only
//! if both return 1; it stops at the first that does not. Two registrations
//! less than an epoch apart (same or adjacent epochs) share a key, and only
//! one caller ever gets 1 from a key: at most one of them wins. A loser
//! never touches a key newer than the winner's, so when the winner dies
//! before writing the record, the first registration at epoch `e+2` finds
//! both of its keys fresh: a dead claim frees the name after one to two
//! epochs, with no operator. A live registration keeps its claim for at
//! least one epoch, and writes its record only within [`WRITE_WITHIN_SECS`]
//! of its claim ([`Claim::still_ours`]), far inside that epoch, so a
//! takeover cannot race a registration that is still running. Instances'
//! clocks may differ by a few seconds: that only moves where each sees the
//! epoch boundary, well within the margin between the two constants.
//!
//! What no ordering of `get`, `increment` and `set` can close without
//! compare-and-swap: a record write that is issued in time but reaches the
//! store more than about four minutes later (a stuck host call) lands after
//! a takeover may have registered the name again, and replaces that record.

use crate::security::tokens::CLOCK_TOLERANCE_SECS;
use crate::store::KeyValue;
use anyhow::Result;

/// Length of a claim epoch. A dead claim holds its name for one to two epochs.
pub const EPOCH_SECS: u64 = 300;
/// A registration writes its record only this soon after taking the claim:
/// well inside the epoch that protects it, with room for clock skew between
/// instances and for a slow write.
pub const WRITE_WITHIN_SECS: u64 = 60;
// The earliest takeover comes an epoch after a claim: a record write must
// start well before it, even on an instance whose clock is ahead.
const _: () = assert!(WRITE_WITHIN_SECS + CLOCK_TOLERANCE_SECS < EPOCH_SECS);

/// The right to write the record for one name, won at `claimed_at`.
#[derive(Debug)]
pub struct Claim {
    claimed_at: u64,
}

impl Claim {
    /// Whether the record may still be written at `now_secs`; past this, a
    /// takeover could be near, and the registration must give up instead.
    pub fn still_ours(&self, now_secs: u64) -> bool {
        now_secs < self.claimed_at + WRITE_WITHIN_SECS
    }
}

/// Claims the name stored under `record_key` at `now_secs` (taken before the
/// record was read, so that a record written after that read conflicts with
/// this claim). `None`: another registration holds the name.
pub fn claim(store: &dyn KeyValue, record_key: &str, now_secs: u64) -> Result<Option<Claim>> {
    let epoch = now_secs / EPOCH_SECS;
    // The older key first: a loser stops there and leaves newer epochs untouched.
    for e in [epoch.saturating_sub(1), epoch] {
        if store.increment(&format!("claim:{record_key}:{e}"), 1)? != 1 {
            return Ok(None);
        }
    }
    Ok(Some(Claim {
        claimed_at: now_secs,
    }))
}

/// Frees the name of a deleted account at once, rather than one to two
/// epochs after its registration: deletes the keys its claim at
/// `claimed_at` used. Call only once its record is gone.
pub fn release(store: &dyn KeyValue, record_key: &str, claimed_at: u64) -> Result<()> {
    let epoch = claimed_at / EPOCH_SECS;
    for e in [epoch.saturating_sub(1), epoch] {
        store.delete(&format!("claim:{record_key}:{e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    const T0: u64 = 1_795_737_600; // an epoch boundary

    #[test]
    fn one_claim_per_name_within_an_epoch_of_each_other() {
        for start in [T0, T0 + 1, T0 + EPOCH_SECS - 1] {
            let store = MemoryStore::new();
            assert!(claim(&store, "user:a", start).unwrap().is_some());
            for later in [start, start + 1, start + EPOCH_SECS - 1] {
                assert!(claim(&store, "user:a", later).unwrap().is_none());
            }
            // Other names are independent.
            assert!(claim(&store, "user:b", start).unwrap().is_some());
        }
    }

    #[test]
    fn a_dead_claim_frees_the_name_within_two_epochs() {
        for start in [T0, T0 + EPOCH_SECS - 1] {
            let store = MemoryStore::new();
            assert!(claim(&store, "user:a", start).unwrap().is_some());
            // Repeated attempts while it is held do not extend the hold.
            for t in (start..start + EPOCH_SECS).step_by(7) {
                assert!(claim(&store, "user:a", t).unwrap().is_none());
            }
            let free_at = (start / EPOCH_SECS + 2) * EPOCH_SECS;
            for t in (start + EPOCH_SECS..free_at).step_by(7) {
                assert!(claim(&store, "user:a", t).unwrap().is_none(), "{t}");
            }
            assert!(free_at - start <= 2 * EPOCH_SECS);
            assert!(claim(&store, "user:a", free_at).unwrap().is_some());
        }
    }

    #[test]
    fn parallel_claims_across_an_epoch_boundary_give_one_winner() {
        for _ in 0..20 {
            let store = MemoryStore::new();
            let wins = std::thread::scope(|s| {
                let handles: Vec<_> = (0..16u64)
                    .map(|i| {
                        let store = &store;
                        // Clocks a little apart, on both sides of a boundary.
                        s.spawn(move || claim(store, "user:a", T0 - 2 + i % 4).unwrap())
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap())
                    .filter(Option::is_some)
                    .count()
            });
            assert_eq!(wins, 1);
        }
    }

    #[test]
    fn a_slow_registration_gives_up_long_before_a_takeover() {
        let c = claim(&MemoryStore::new(), "user:a", T0 + EPOCH_SECS - 1)
            .unwrap()
            .unwrap();
        assert!(c.still_ours(T0 + EPOCH_SECS - 1 + WRITE_WITHIN_SECS - 1));
        assert!(!c.still_ours(T0 + EPOCH_SECS - 1 + WRITE_WITHIN_SECS));
    }
}
