//! Account lockout: after `threshold` consecutive failed logins an account
//! is locked for a while; login then answers 423 without checking the
//! password. Built on the atomic increment alone (Spin has no usable
//! compare-and-swap), and exact under concurrency except where tickets are
//! given back late (below), where it errs only by counting more.
//!
//! Before checking a password, an attempt claims a ticket from the failure
//! counter of the account's current period. Only tickets 1..=threshold get a
//! password check, so no burst of parallel attempts gets more checks than the
//! threshold. A failure keeps its ticket; a success deletes the counter (the
//! streak is over). The lock is an idempotent `set` of
//! `<period it ends>:<locked until, ms>`, written by the failure holding
//! ticket `threshold` or above and by *every* ticket past the threshold, so a
//! lost lock write, a lowered threshold or a counter left over by anything is
//! made up by the next attempt: past the threshold with no lock in force
//! means "lock now", never "refuse forever". A lock's expiry is read from the
//! clock when it is written (after the password check), so a check that
//! takes longer than the lock still locks.
//!
//! A right password that does not end the login (a second factor is due, or
//! the second step found the record busy) gives its ticket back with
//! `increment(.., -1)`: see [`release`]. When a success deleted the counter
//! after that ticket was claimed, the release is *stale*: it lands on the
//! fresh counter, and takes back a ticket nobody gave. Landing on 0 it
//! drives the counter negative, and each unit below 1 would be one more
//! check before the lock, a credit that grows with every success straddled.
//! So a counter below 1 is never used: the ticket that finds one (only stale
//! releases make one) first pays the debt with a second increment of
//! `1 - number` and takes the larger of the result and 1. A stale release
//! therefore buys nothing unless it lands after new tickets were claimed
//! since the success: then it takes one of them back, one check at most,
//! for an attempt begun in the window between the success and that release
//! (about one password check long). Repairers racing on one debt may each
//! pay it in full, so the counter then counts more than the tickets out and
//! the account locks early: the safe direction, and only reachable through
//! stale releases, which need the right password. The normal path pays
//! nothing: two store calls.
//!
//! Periods are named by the expiry of the lock that opened them (the first
//! by 0): `fail:<id>:<period>`. Each lock write names a period no counter has
//! used, so nothing left behind (a missed cleanup, a late increment) can leak
//! into a later period. A failure writes the lock only while its own period
//! is current (the record is still the one its ticket started from, or a lock
//! of its period still in force), so a late failure from an older period
//! never rewrites a newer lock, and no lock path deletes the current counter.
//! The counter of the period before is deleted just before a lock is written
//! (every attempt still using it read the record more than a lock duration
//! ago); if that delete fails, the lock is not written and the next locker
//! tries both again. So an account keeps at most three keys: the record, the
//! counter of the period the last lock ended, and the current one.

use crate::clock::Clock;
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
    period: Period,
    number: i64,
}

/// The period an attempt belongs to, and the record it was read from.
#[derive(Clone, Copy, Debug)]
struct Period {
    /// The period's name: the expiry of the lock that opened it, or 0.
    id: u64,
    /// The period before, whose lock opened this one.
    before: Option<u64>,
}

/// A lock record: the period the lock ends, and until when (ms).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Lock {
    ends: u64,
    until: u64,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The account is locked; retry after this many seconds.
    Locked { retry_after: u64 },
    /// This attempt's ticket was over the threshold, and it (re)wrote the
    /// lock (earlier attempts are still running, one of them died or lost
    /// its write, or the threshold was lowered).
    LockedNow { retry_after: u64 },
}

fn lock_key(id: &str) -> String {
    format!("lock:{id}")
}

fn counter_key(id: &str, period: u64) -> String {
    format!("fail:{id}:{period}")
}

fn read_lock(bytes: &[u8]) -> Option<Lock> {
    let (ends, until) = std::str::from_utf8(bytes).ok()?.split_once(':')?;
    Some(Lock {
        ends: ends.parse().ok()?,
        until: until.parse().ok()?,
    })
}

fn load(store: &dyn KeyValue, id: &str) -> Result<Option<Lock>> {
    Ok(store.get(&lock_key(id))?.as_deref().and_then(read_lock))
}

fn retry_secs(until_ms: u64, now_ms: u64) -> u64 {
    until_ms.saturating_sub(now_ms).div_ceil(1000).max(1)
}

/// Claims a ticket for account `id` (two store calls; a third to repay a
/// counter stale releases left below 1), or refuses.
pub fn begin(
    store: &dyn KeyValue,
    id: &str,
    policy: Policy,
    clock: &dyn Clock,
) -> Result<Result<Ticket, Refusal>> {
    let now_ms = clock.now_ms();
    let period = match load(store, id)? {
        Some(lock) if lock.until > now_ms => {
            return Ok(Err(Refusal::Locked {
                retry_after: retry_secs(lock.until, now_ms),
            }))
        }
        Some(lock) => Period {
            id: lock.until,
            before: Some(lock.ends),
        },
        None => Period {
            id: 0,
            before: None,
        },
    };
    let key = counter_key(id, period.id);
    let mut number = store.increment(&key, 1)?;
    if number < 1 {
        // Stale releases took back tickets a success had already deleted
        // (see the module doc): pay their debt, so they buy no check.
        number = store.increment(&key, 1 - number)?.max(1);
    }
    if number > i64::from(policy.threshold) {
        // Any ticket past the threshold writes the lock: the record it just
        // read held no lock in force for this period.
        let until = lock(store, id, period, policy, clock)?;
        return Ok(Err(Refusal::LockedNow {
            retry_after: retry_secs(until, clock.now_ms()),
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
    store.delete(&counter_key(&ticket.id, ticket.period.id))
}

/// The password was right but the login is not over: a second factor is
/// due, and only that ends the streak. Gives the ticket back, so the
/// attempt counts neither as a failure nor as a success. Given back late
/// (after a parallel failure took the next ticket), it can only have
/// locked one failure early; never given back (the request died), it
/// counts as one failure. Given back after a success deleted the counter
/// (stale), it lands on the fresh one: [`begin`] repays a counter it drove
/// below 1 (see the module doc).
pub fn release(store: &dyn KeyValue, ticket: Ticket) -> Result<()> {
    store.increment(&counter_key(&ticket.id, ticket.period.id), -1)?;
    Ok(())
}

/// The password was wrong. Returns whether this failure locked the account
/// (it does not when its period has already ended: a late failure).
pub fn fail(
    store: &dyn KeyValue,
    ticket: Ticket,
    policy: Policy,
    clock: &dyn Clock,
) -> Result<bool> {
    if ticket.number < i64::from(policy.threshold) {
        return Ok(false);
    }
    let Ticket { id, period, .. } = ticket;
    let current = match load(store, &id)? {
        // The record its ticket started from: this period is not locked yet.
        None => period.before.is_none(),
        Some(lock) if Some(lock.ends) == period.before => lock.until == period.id,
        // A lock of this period, written by a ticket past the threshold:
        // restart it from now, unless it already ran out.
        Some(lock) if lock.ends == period.id => lock.until > clock.now_ms(),
        Some(_) => false,
    };
    if !current {
        return Ok(false);
    }
    lock(store, &id, period, policy, clock)?;
    Ok(true)
}

/// Writes the lock ending `period`, from the clock as it is now; returns its
/// expiry. Clears the counter of the period before first (see the module doc).
fn lock(
    store: &dyn KeyValue,
    id: &str,
    period: Period,
    policy: Policy,
    clock: &dyn Clock,
) -> Result<u64> {
    if let Some(before) = period.before {
        store.delete(&counter_key(id, before))?;
    }
    let until = clock.now_ms() + policy.lock_ms;
    store.set(&lock_key(id), format!("{}:{until}", period.id).as_bytes())?;
    Ok(until)
}

/// An account's lockout as an admin sees it.
#[derive(Debug, PartialEq, Eq)]
pub struct Status {
    /// When the lock in force ends (ms), if one is.
    pub locked_until: Option<u64>,
    /// Failures counted in the current period (the locked one, while locked);
    /// never below 0 (a debt of stale releases is no failure).
    pub failures: i64,
}

/// When the lock of account `id` in force at `now_ms` ends, if one is
/// (one store call).
pub fn locked_until(store: &dyn KeyValue, id: &str, now_ms: u64) -> Result<Option<u64>> {
    Ok(load(store, id)?
        .filter(|lock| lock.until > now_ms)
        .map(|lock| lock.until))
}

/// The lockout of account `id` at `now_ms` (two store calls).
pub fn status(store: &dyn KeyValue, id: &str, now_ms: u64) -> Result<Status> {
    let (locked_until, period) = match load(store, id)? {
        Some(lock) if lock.until > now_ms => (Some(lock.until), lock.ends),
        Some(lock) => (None, lock.until),
        None => (None, 0),
    };
    let failures = store
        .get(&counter_key(id, period))?
        .as_deref()
        .and_then(crate::store::decode_counter)
        .unwrap_or(0)
        .max(0);
    Ok(Status {
        locked_until,
        failures,
    })
}

/// Ends the lock of account `id` and its streak of failures (an admin's
/// unlock): writes a lock that ends now, so the next attempt opens a new
/// period on a counter no attempt has used. Attempts already running count
/// in the old period and lock nothing (see [`fail`]).
pub fn unlock(store: &dyn KeyValue, id: &str, clock: &dyn Clock) -> Result<()> {
    let now_ms = clock.now_ms();
    let period = match load(store, id)? {
        // Its period's counter is the one being ended; the one before it
        // was cleared when this lock was written.
        Some(lock) if lock.until > now_ms => Period {
            id: lock.ends,
            before: None,
        },
        Some(lock) => Period {
            id: lock.until,
            before: Some(lock.ends),
        },
        None => Period {
            id: 0,
            before: None,
        },
    };
    if let Some(before) = period.before {
        store.delete(&counter_key(id, before))?;
    }
    // The next period needs a name no period has had (every earlier one is
    // at most the current one's) that is not in the future: the current
    // period can have begun this very millisecond, so wait one out.
    while clock.now_ms() <= period.id {
        clock.pause(1);
    }
    let next = clock.now_ms();
    store.set(&lock_key(id), format!("{}:{next}", period.id).as_bytes())?;
    Ok(())
}

/// Deletes every lockout key of account `id` (for a deleted account).
pub fn forget(store: &dyn KeyValue, id: &str) -> Result<()> {
    if let Some(lock) = load(store, id)? {
        store.delete(&counter_key(id, lock.ends))?;
        store.delete(&counter_key(id, lock.until))?;
    }
    store.delete(&counter_key(id, 0))?;
    store.delete(&lock_key(id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::store::MemoryStore;

    const POLICY: Policy = Policy {
        threshold: 5,
        lock_ms: 1_000,
    };

    fn ticket(store: &MemoryStore, clock: &ManualClock) -> Ticket {
        begin(store, "acct", POLICY, clock).unwrap().unwrap()
    }

    fn record(store: &MemoryStore) -> Option<Lock> {
        load(store, "acct").unwrap()
    }

    /// Issue 7, finding 3: a failure whose check outlasted its period's lock
    /// (the lock was written by a ticket past the threshold, expired, and a
    /// new period began) used to rewrite the newer record and delete the
    /// current counter.
    #[test]
    fn a_late_failure_from_an_older_period_changes_nothing() {
        let (store, clock) = (MemoryStore::new(), ManualClock::at(10_000));
        let mut tickets: Vec<Ticket> = (0..5).map(|_| ticket(&store, &clock)).collect();
        let late = tickets.pop().unwrap();
        for t in tickets {
            assert!(!fail(&store, t, POLICY, &clock).unwrap());
        }
        // Ticket 6 arrives while the fifth check still runs, and locks.
        assert!(matches!(
            begin(&store, "acct", POLICY, &clock).unwrap(),
            Err(Refusal::LockedNow { retry_after: 1 })
        ));
        clock.advance_ms(1_000);
        // The lock is over: a new period, one failure into it.
        let next = ticket(&store, &clock);
        assert!(!fail(&store, next, POLICY, &clock).unwrap());
        let before = (record(&store), store.snapshot());
        clock.advance_ms(500);
        // The fifth check of the old period ends only now.
        assert!(!fail(&store, late, POLICY, &clock).unwrap());
        assert_eq!((record(&store), store.snapshot()), before);
        assert_eq!(ticket(&store, &clock).number, 2, "the count goes on");
    }

    #[test]
    fn a_failure_restarts_its_own_periods_lock_from_when_it_is_written() {
        let (store, clock) = (MemoryStore::new(), ManualClock::at(10_000));
        let mut tickets: Vec<Ticket> = (0..5).map(|_| ticket(&store, &clock)).collect();
        let fifth = tickets.pop().unwrap();
        for t in tickets {
            fail(&store, t, POLICY, &clock).unwrap();
        }
        assert!(begin(&store, "acct", POLICY, &clock).unwrap().is_err());
        clock.advance_ms(700);
        assert!(fail(&store, fifth, POLICY, &clock).unwrap());
        let lock = record(&store).unwrap();
        assert_eq!((lock.ends, lock.until), (0, 11_700));
    }

    #[test]
    fn an_unlock_ends_the_lock_and_the_streak_and_late_failures_lock_nothing() {
        for locked_before in [false, true] {
            let (store, clock) = (MemoryStore::new(), ManualClock::at(10_000));
            if locked_before {
                // One lock over already, so a period-before counter exists.
                for _ in 0..5 {
                    let t = ticket(&store, &clock);
                    fail(&store, t, POLICY, &clock).unwrap();
                }
                clock.advance_ms(1_000);
            }
            for _ in 0..5 {
                let t = ticket(&store, &clock);
                fail(&store, t, POLICY, &clock).unwrap();
            }
            assert!(status(&store, "acct", clock.now_ms())
                .unwrap()
                .locked_until
                .is_some());
            unlock(&store, "acct", &clock).unwrap();
            let now = status(&store, "acct", clock.now_ms()).unwrap();
            assert_eq!(
                now,
                Status {
                    locked_until: None,
                    failures: 0
                }
            );
            // A fresh streak: four failures lock nothing, the fifth does.
            let fresh: Vec<bool> = (0..5)
                .map(|_| {
                    let t = ticket(&store, &clock);
                    fail(&store, t, POLICY, &clock).unwrap()
                })
                .collect();
            assert_eq!(fresh, [false, false, false, false, true]);
            assert!(store.len() <= 3, "{:?}", store.keys());
            forget(&store, "acct").unwrap();
            assert!(store.is_empty(), "{:?}", store.keys());
        }
    }

    #[test]
    fn a_failure_from_before_an_unlock_locks_nothing() {
        let (store, clock) = (MemoryStore::new(), ManualClock::at(10_000));
        let mut tickets: Vec<Ticket> = (0..5).map(|_| ticket(&store, &clock)).collect();
        let fifth = tickets.pop().unwrap();
        for t in tickets {
            fail(&store, t, POLICY, &clock).unwrap();
        }
        unlock(&store, "acct", &clock).unwrap();
        assert!(!fail(&store, fifth, POLICY, &clock).unwrap());
        assert_eq!(
            status(&store, "acct", clock.now_ms()).unwrap().locked_until,
            None
        );
    }

    /// The raw failure counter of the first period.
    fn counter(store: &MemoryStore) -> Option<i64> {
        store
            .get(&counter_key("acct", 0))
            .unwrap()
            .as_deref()
            .and_then(crate::store::decode_counter)
    }

    /// Per success, four tickets claimed before it are given back after
    /// it (stale releases): the counter ends at `-4 * successes`.
    fn stale_releases(store: &MemoryStore, clock: &ManualClock, successes: usize) {
        let mut held = Vec::new();
        for _ in 0..successes {
            held.extend((0..4).map(|_| ticket(store, clock)));
            succeed(store, ticket(store, clock)).unwrap();
        }
        for t in held {
            release(store, t).unwrap();
        }
    }

    /// Review of issue 11: a release landing on the counter a success
    /// deleted drove it below 0, and each unit below 1 was one more check
    /// before the lock.
    #[test]
    fn stale_releases_buy_no_check() {
        for successes in [1, 2, 3] {
            let (store, clock) = (MemoryStore::new(), ManualClock::at(10_000));
            stale_releases(&store, &clock, successes);
            assert_eq!(counter(&store), Some(-4 * successes as i64));
            // A debt is no failure.
            assert_eq!(status(&store, "acct", clock.now_ms()).unwrap().failures, 0);
            let numbers: Vec<i64> = (0..5).map(|_| ticket(&store, &clock).number).collect();
            assert_eq!(numbers, [1, 2, 3, 4, 5], "{successes} successes straddled");
            assert!(matches!(
                begin(&store, "acct", POLICY, &clock).unwrap(),
                Err(Refusal::LockedNow { .. })
            ));
        }
    }

    #[test]
    fn the_fifth_failure_after_stale_releases_locks() {
        let (store, clock) = (MemoryStore::new(), ManualClock::at(10_000));
        stale_releases(&store, &clock, 2);
        let locked: Vec<bool> = (0..5)
            .map(|_| {
                let t = ticket(&store, &clock);
                fail(&store, t, POLICY, &clock).unwrap()
            })
            .collect();
        assert_eq!(locked, [false, false, false, false, true]);
    }

    #[test]
    fn only_repaying_a_debt_costs_a_third_store_call() {
        let (store, clock) = (MemoryStore::new(), ManualClock::at(10_000));
        let calls = |store: &MemoryStore| {
            let before = store.calls();
            ticket(store, &clock);
            store.calls() - before
        };
        assert_eq!(calls(&store), 2, "a fresh counter");
        assert_eq!(calls(&store), 2, "a counter in use");
        let (store, clock) = (MemoryStore::new(), ManualClock::at(10_000));
        stale_releases(&store, &clock, 1);
        let before = store.calls();
        ticket(&store, &clock);
        assert_eq!(store.calls() - before, 3, "a debt repaid");
        assert_eq!(counter(&store), Some(1));
    }

    /// Two tickets repaying one debt at once both pay it in full: the
    /// counter counts more than the tickets out (the account locks early),
    /// never fewer.
    #[test]
    fn racing_repairs_count_more_never_less() {
        let (store, clock) = (MemoryStore::new(), ManualClock::at(10_000));
        stale_releases(&store, &clock, 1);
        let key = counter_key("acct", 0);
        // Another attempt's first increment, its repair still to come.
        let other = store.increment(&key, 1).unwrap();
        assert_eq!(other, -3);
        assert_eq!(ticket(&store, &clock).number, 1);
        let repaid = store.increment(&key, 1 - other).unwrap().max(1);
        assert_eq!(repaid, 5);
        assert!(counter(&store).unwrap() >= 2, "two tickets are out");
    }

    #[test]
    fn every_period_counts_on_a_key_no_earlier_period_used() {
        let (store, clock) = (MemoryStore::new(), ManualClock::at(10_000));
        let mut periods = Vec::new();
        for _ in 0..4 {
            let locked: Vec<bool> = (0..5)
                .map(|_| {
                    let t = ticket(&store, &clock);
                    periods.push(t.period.id);
                    fail(&store, t, POLICY, &clock).unwrap()
                })
                .collect();
            assert_eq!(locked, [false, false, false, false, true]);
            clock.advance_ms(1_000);
            // At most the record and two counters, whatever the history.
            assert!(store.len() <= 3, "{:?}", store.keys());
        }
        let mut distinct = periods.clone();
        distinct.dedup();
        assert_eq!(distinct.len(), 4, "{periods:?}");
        assert!(distinct.windows(2).all(|w| w[0] < w[1]), "{periods:?}");
    }
}
