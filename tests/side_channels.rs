//! Issue 7, finding 7: side channels that tell whether an account exists.
//! Work is measured in bcrypt rounds (`2^cost` per run) done by the request's
//! thread, never in time: the machines are too noisy for that.

mod common;

use common::*;
use secure_backend::domain::{User, Username};
use secure_backend::security::passwords::{cost_of, rounds_on_this_thread};
use secure_backend::store::{KeyValue, Op};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

/// A fresh client address per call, so the rate limiter never interferes.
fn next_ip() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!("198.51.{}.{}", n / 250, n % 250 + 1)
}

/// The status and the bcrypt rounds of one login.
fn login_work(app: &TestApp, user: &str, password: &str) -> (u16, u64) {
    let before = rounds_on_this_thread();
    let status = app.login_from(user, password, &next_ip()).status;
    (status, rounds_on_this_thread() - before)
}

fn record(app: &TestApp, user: &str) -> User {
    let key = User::key(&Username::parse(user).unwrap());
    serde_json::from_slice(&app.store.get(&key).unwrap().unwrap()).unwrap()
}

fn restart_with_cost(app: &mut TestApp, cost: &str) {
    app.vars.insert("bcrypt_cost".into(), cost.into());
}

#[test]
fn side_channel_after_raising_the_cost_known_and_unknown_names_cost_the_same_work() {
    let mut app = TestApp::with_vars(&[("bcrypt_cost", "4")]);
    app.register("alice", PASSWORD);
    restart_with_cost(&mut app, "7");

    let wrong_password = login_work(&app, "alice", "wrong password");
    let unknown_name = login_work(&app, "mallory", "wrong password");
    assert_eq!(wrong_password, (401, 1 << 7));
    assert_eq!(unknown_name, wrong_password);
}

#[test]
fn side_channel_a_successful_login_rehashes_at_the_configured_cost() {
    let mut app = TestApp::with_vars(&[("bcrypt_cost", "4")]);
    app.register("alice", PASSWORD);
    let before = record(&app, "alice");
    assert!(before.password_hash.starts_with("$2b$04$"));
    restart_with_cost(&mut app, "5");

    let calls = app.store.calls();
    assert_eq!(
        login_work(&app, "alice", PASSWORD),
        (200, (1 << 4) + (1 << 5))
    );
    let upgrading_calls = app.store.calls() - calls;
    let after = record(&app, "alice");
    assert!(after.password_hash.starts_with("$2b$05$"), "not upgraded");
    assert_eq!(
        (after.role, &after.account_id, after.created_at),
        (before.role, &before.account_id, before.created_at)
    );

    // Upgraded once: the next login checks at the new cost and writes nothing.
    let snapshot = app.store.snapshot();
    let calls = app.store.calls();
    assert_eq!(login_work(&app, "alice", PASSWORD), (200, 1 << 5));
    let plain_calls = app.store.calls() - calls;
    let record_key = User::key(&Username::parse("alice").unwrap());
    assert_eq!(app.store.snapshot()[&record_key], snapshot[&record_key]);
    // The upgrade costs one `get` and one `set` under the record's lease
    // (two increments to take it, two deletes to give it back), on that
    // one login only.
    assert_eq!(upgrading_calls, plain_calls + 6);
    assert_eq!(login_work(&app, "alice", "wrong password"), (401, 1 << 5));
}

/// The upgrade's own store calls (the second read of the record, its write)
/// may fail: the login answers 500, the account keeps a working hash, and the
/// next login upgrades it.
#[test]
fn side_channel_an_upgrade_that_loses_a_store_call_leaves_a_working_account() {
    for (failing_op, nth) in [(Op::Get, 2), (Op::Set, 1)] {
        let mut app = TestApp::with_vars(&[("bcrypt_cost", "4")]);
        app.register("alice", PASSWORD);
        restart_with_cost(&mut app, "5");
        let seen = AtomicUsize::new(0);
        app.store.fail_when(move |_, op, key| {
            op == failing_op
                && key == "user:alice"
                && seen.fetch_add(1, Ordering::SeqCst) + 1 == nth
        });
        assert_error(
            &app.login_from("alice", PASSWORD, &next_ip()),
            500,
            "internal_error",
        );
        app.store.stop_failing();
        assert_eq!(cost_of(&record(&app, "alice").password_hash).unwrap(), 4);
        assert_eq!(app.login_from("alice", PASSWORD, &next_ip()).status, 200);
        assert_eq!(cost_of(&record(&app, "alice").password_hash).unwrap(), 5);
    }
}

/// The rule for a lowered cost (documented in the README): an account whose
/// hash is above the configured cost costs its own until its owner logs in;
/// that login rehashes it, and from then on it costs what an unknown name does.
#[test]
fn side_channel_after_lowering_the_cost_only_accounts_not_logged_in_since_differ() {
    let mut app = TestApp::with_vars(&[("bcrypt_cost", "6")]);
    app.register("alice", PASSWORD);
    restart_with_cost(&mut app, "4");

    assert_eq!(login_work(&app, "alice", "wrong password"), (401, 1 << 6));
    assert_eq!(login_work(&app, "mallory", "wrong password"), (401, 1 << 4));

    assert_eq!(
        login_work(&app, "alice", PASSWORD),
        (200, (1 << 6) + (1 << 4))
    );
    assert_eq!(cost_of(&record(&app, "alice").password_hash).unwrap(), 4);
    assert_eq!(login_work(&app, "alice", "wrong password"), (401, 1 << 4));
    assert_eq!(login_work(&app, "mallory", "wrong password"), (401, 1 << 4));
}

/// Accepted and documented (README, security section): only an account's
/// owner can end its streak of failures, so "4 failures, the owner logs in,
/// 2 failures" differs between a real account and an unknown name. Seeing it
/// needs the owner to log in during the probe, and a probe that guessed
/// wrong locks the real account; registration's 409 tells the same directly.
#[test]
fn side_channel_only_an_owners_login_resets_the_failure_count() {
    let app = TestApp::new();
    app.register("alice", PASSWORD);
    let statuses = |user: &str, n: usize| -> Vec<u16> {
        (0..n)
            .map(|_| app.login_from(user, "wrong password", &next_ip()).status)
            .collect()
    };

    assert_eq!(statuses("alice", 4), [401; 4]);
    assert_eq!(app.login_from("alice", PASSWORD, &next_ip()).status, 200);
    assert_eq!(statuses("alice", 2), [401, 401]);

    assert_eq!(statuses("nobody", 4), [401; 4]);
    assert_eq!(statuses("nobody", 2), [401, 423]);
}
