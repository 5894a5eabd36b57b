//! The signing key kept in the store (issue 7, finding 1): a claimer that
//! fails or dies before writing the key costs a bounded wait, never an
//! outage; every request agrees on one key; `/health` tells while no key
//! can be used; the number of stored keys stays bounded.

mod common;

use common::*;
use secure_backend::clock::Clock;
use secure_backend::security::keys::{claim_key, stored_key, GENERATIONS};
use secure_backend::store::KeyValue;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

/// How long a request may wait for a claimer that never writes.
const RECOVERY_MS: u64 = 1_500;

fn written_generations(app: &TestApp) -> Vec<u32> {
    (0..GENERATIONS)
        .filter(|g| app.store.get(&stored_key(*g)).unwrap().is_some())
        .collect()
}

/// A claim taken and its key never written: the claimer's write failed, or
/// its instance died in between.
fn lose_the_claim(app: &TestApp, generation: u32) {
    app.store.increment(&claim_key(generation), 1).unwrap();
}

#[test]
fn one_lost_write_of_the_signing_key_is_not_a_permanent_outage() {
    let app = TestApp::new();
    lose_the_claim(&app, 0);
    assert_error(&app.get("/health", None), 503, "unavailable");

    let before = app.clock.now_ms();
    let reg = app.register("alice", PASSWORD);
    assert_eq!(reg.status, 201, "{}", reg.body);
    let waited = app.clock.now_ms() - before;
    assert!(waited <= RECOVERY_MS, "recovered after {waited} ms");
    assert_eq!(app.get("/health", None).status, 200);

    // Recovered for good: no more waiting, and one key for everyone.
    let before = app.clock.now_ms();
    let token = app.login("alice", PASSWORD).token();
    let statuses = in_parallel(8, |_| app.get("/auth/protected", Some(&token)).status);
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(app.clock.now_ms(), before, "no request waited");
    assert_eq!(written_generations(&app), vec![1]);
}

#[test]
fn each_failed_store_call_while_creating_the_signing_key_recovers() {
    // Fails the i-th call on a signing-key entry, for every i the first
    // request reaches (its reads, the claim, the write of the key).
    for i in 0.. {
        let app = TestApp::new();
        let seen = Arc::new(AtomicUsize::new(0));
        let failed = Arc::new(AtomicBool::new(false));
        let (s, f) = (seen.clone(), failed.clone());
        app.store.fail_when(move |_, _, key| {
            let hit = key.contains("secret:jwt") && s.fetch_add(1, Ordering::SeqCst) == i;
            if hit {
                f.store(true, Ordering::SeqCst);
            }
            hit
        });
        let first = app.login("alice", "wrong password");
        app.store.stop_failing();
        if !failed.load(Ordering::SeqCst) {
            assert!(i >= 3, "the first request made only {i} key calls");
            break;
        }
        assert_error(&first, 500, "internal_error");

        let before = app.clock.now_ms();
        let reg = app.register("bob", PASSWORD);
        assert_eq!(reg.status, 201, "call {i}: {}", reg.body);
        let waited = app.clock.now_ms() - before;
        assert!(
            waited <= RECOVERY_MS,
            "call {i}: recovered after {waited} ms"
        );
        assert_eq!(app.get("/health", None).status, 200, "call {i}");

        let tokens = in_parallel(6, |t| {
            app.login_from("bob", PASSWORD, &format!("198.51.100.{t}"))
                .token()
        });
        for token in &tokens {
            assert_eq!(
                app.get("/auth/protected", Some(token)).status,
                200,
                "call {i}"
            );
        }
        assert_eq!(written_generations(&app).len(), 1, "call {i}");
    }
}

#[test]
fn parallel_first_requests_agree_on_one_signing_key() {
    let app = TestApp::new();
    let tokens = in_parallel(12, |i| {
        let (name, ip) = (format!("user{i}"), format!("198.51.100.{i}"));
        let reg = app.register_from(&name, PASSWORD, &ip);
        assert_eq!(reg.status, 201, "{}", reg.body);
        app.login_from(&name, PASSWORD, &ip).token()
    });
    for token in &tokens {
        assert_eq!(app.get("/auth/protected", Some(token)).status, 200);
    }
    assert_eq!(written_generations(&app), vec![0]);
}

#[test]
fn a_late_write_of_a_lower_generation_wins_for_every_later_request() {
    let app = TestApp::new();
    lose_the_claim(&app, 0);
    let early = app.user_token("alice");
    assert_eq!(written_generations(&app), vec![1]);

    // The claimer of generation 0 was only slow: its write lands now.
    app.store.set(&stored_key(0), &[7u8; 32]).unwrap();
    // Everyone signs and verifies with generation 0 from here on, so a
    // token of generation 1 must be renewed; no request keeps the old key.
    assert_error(
        &app.get("/auth/protected", Some(&early)),
        401,
        "invalid_token",
    );
    let token = app.login("alice", PASSWORD).token();
    let statuses = in_parallel(8, |_| app.get("/auth/protected", Some(&token)).status);
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
}

#[test]
fn signing_key_generations_are_bounded() {
    let mut app = TestApp::new();
    for generation in 0..GENERATIONS {
        lose_the_claim(&app, generation);
    }
    let keys_before = app.store.len();
    let before = app.clock.now_ms();
    assert_error(&app.register("alice", PASSWORD), 500, "internal_error");
    // Generations somebody already gave up on are skipped, not waited for.
    let waited = app.clock.now_ms() - before;
    assert!(waited <= RECOVERY_MS, "waited {waited} ms");
    assert_eq!(app.store.len(), keys_before, "no further generation");
    assert_error(&app.get("/health", None), 503, "unavailable");

    // Setting `jwt_secret` takes the store's key out of the question.
    app.vars.insert(
        "jwt_secret".into(),
        "0123456789abcdef0123456789abcdef".into(),
    );
    assert_eq!(app.get("/health", None).status, 200);
    assert_eq!(app.register("alice", PASSWORD).status, 201);
}

#[test]
fn health_never_creates_the_key_and_reads_one_key_once_it_exists() {
    let app = TestApp::new();
    let fresh = app.store_calls(|| assert_eq!(app.get("/health", None).status, 200));
    assert_eq!(fresh, 2);
    assert!(app.store.is_empty(), "{:?}", app.store.keys());
    assert_eq!(app.register("alice", PASSWORD).status, 201);
    let steady = app.store_calls(|| assert_eq!(app.get("/health", None).status, 200));
    assert_eq!(steady, 1);
}
