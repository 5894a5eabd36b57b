//! The signing key kept in the store (issue 7, finding 1): a claimer that
//! fails or dies before writing the key costs a bounded wait, never an
//! outage; every request agrees on one key; `/health` tells while no key
//! can be used; the number of stored keys stays bounded.

mod common;

use common::*;
use http::Method;
use secure_backend::clock::Clock;
use secure_backend::security::keys::{claim_key, stored_key, GENERATIONS, RETIRED};
use secure_backend::store::{KeyValue, Op};
use serde_json::json;
use std::collections::BTreeMap;
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

const OPERATOR_SECRET: &str = "an-operator-secret-of-at-least-32-bytes!!";

/// The signing key's entries in the store (its generations and claims).
fn signing_key_entries(app: &TestApp) -> BTreeMap<String, Vec<u8>> {
    app.store
        .snapshot()
        .into_iter()
        .filter(|(key, _)| key.contains("secret:jwt"))
        .collect()
}

/// Review of the signing key, finding 1: a deployment ran without
/// `jwt_secret` (stored key K0); the operator set it because K0 was
/// suspect; a redeploy lost the variable, and K0 signed and verified again
/// while `/health` said ok. Now setting `jwt_secret` retires K0 in the
/// store, and losing the variable afterwards refuses (500, `config_error`
/// saying how to recover) instead of reviving K0 or making a new key.
#[test]
fn unsetting_jwt_secret_never_revives_the_stored_key() {
    let mut app = TestApp::new();
    assert_eq!(app.register("alice", PASSWORD).status, 201);
    let suspect = pair(&app.login("alice", PASSWORD));
    let k0 = app
        .store
        .get(&stored_key(0))
        .unwrap()
        .expect("a stored key");

    app.vars.insert("jwt_secret".into(), OPERATOR_SECRET.into());
    assert_access_refused(&app, &suspect.access, "a token of the suspect key");
    let operator = pair(&app.login("alice", PASSWORD));
    let dumped = app.store.snapshot();
    assert!(
        dumped.values().all(|value| *value != k0),
        "a dump of the store still yields the suspect key"
    );

    // The redeploy that lost the variable (an empty value is unset).
    app.vars.insert("jwt_secret".into(), String::new());
    let entries = signing_key_entries(&app);
    let logged_before = app.events_named("config_error").len();
    let login = app.login("alice", PASSWORD);
    let access = app.get("/auth/protected", Some(&suspect.access));
    let refresh = app.refresh(&operator.refresh);
    let register = app.register("bob", PASSWORD);
    let health = app.get("/health", None);
    for (what, res) in [
        ("login", &login),
        ("a token of the suspect key", &access),
        ("refresh", &refresh),
        ("registration", &register),
        ("/health", &health),
    ] {
        assert_eq!(res.status, 500, "{what}: {}", res.body);
        assert_error(res, 500, "internal_error");
    }
    assert_eq!(signing_key_entries(&app), entries, "no key was made");
    let logged = app.events_named("config_error");
    assert_eq!(logged.len() - logged_before, 5, "{logged:#?}");
    let reason = logged[logged_before]["reason"].as_str().unwrap();
    for needed in ["jwt_secret", "secret:jwt*", "claim:secret:jwt*"] {
        assert!(reason.contains(needed), "{reason}");
    }

    // Set again: the operator's session goes on, nothing was spent.
    app.vars.insert("jwt_secret".into(), OPERATOR_SECRET.into());
    assert_access_works(&app, &operator.access, "the operator's token");
    assert_refresh_works(&app, &operator.refresh, "the refresh refused while unset");
    assert_access_refused(&app, &suspect.access, "a token of the suspect key");
}

/// An instance with `jwt_secret` (`var`) and one without (`plain`), on one
/// store (`plain`'s): a rolling deploy from one to the other.
fn instances() -> (TestApp, TestApp) {
    let plain = TestApp::unthrottled(&[]);
    let var = TestApp::unthrottled(&[("jwt_secret", OPERATOR_SECRET)]);
    (plain, var)
}

fn login_on(app: &TestApp, store: &dyn KeyValue, name: &str) -> TestResponse {
    let body = json!({ "username": name, "password": PASSWORD });
    app.call_through(store, Method::POST, "/auth/login", None, Some(&body))
}

/// The race of a rolling deploy: an instance without the variable claims
/// generation 0 and writes its key only after an instance with it wrote the
/// marker. The next signing request (or probe) of an instance with the
/// variable retires that key again; from then on no request without the
/// variable uses it, and none makes another.
#[test]
fn a_key_written_after_the_marker_is_retired_again() {
    let (plain, var) = instances();
    let store = &plain.store;
    lose_the_claim(&plain, 0);
    let body = json!({ "username": "alice", "password": PASSWORD });
    let reg = var.call_through(store, Method::POST, "/auth/register", None, Some(&body));
    assert_eq!(reg.status, 201, "{}", reg.body);
    assert_eq!(store.get(&stored_key(0)).unwrap().as_deref(), Some(RETIRED));

    // The slow claimer's write lands over the marker.
    store.set(&stored_key(0), &[7u8; 32]).unwrap();
    let health = var.call_through(store, Method::GET, "/health", None, None);
    assert_eq!(health.status, 200, "{}", health.body);
    assert_eq!(store.get(&stored_key(0)).unwrap().as_deref(), Some(RETIRED));

    let entries = signing_key_entries(&plain);
    assert_error(&login_on(&plain, store, "alice"), 500, "internal_error");
    assert_eq!(signing_key_entries(&plain), entries, "no key was made");
    assert_eq!(login_on(&var, store, "alice").status, 200);
}

/// Instances with and without the variable serving at once, from a store
/// with no key: whatever the interleaving, once an instance with the
/// variable has signed again, the store holds the marker, instances without
/// it refuse, and no token signed with a stored key verifies anywhere.
#[test]
fn instances_with_and_without_jwt_secret_on_one_store_converge_to_retired() {
    for _round in 0..20 {
        let (plain, var) = instances();
        let store = &plain.store;
        let tokens = in_parallel(8, |i| {
            let (app, name) = match i % 2 {
                0 => (&plain, format!("plain{i}")),
                _ => (&var, format!("var{i}")),
            };
            let body = json!({ "username": name, "password": PASSWORD });
            app.call_through(store, Method::POST, "/auth/register", None, Some(&body));
            let login = login_on(app, store, &name);
            (
                i % 2 == 1,
                login.status,
                login.body["access_token"].as_str().map(String::from),
            )
        });
        for (with_var, status, _) in &tokens {
            if *with_var {
                assert_eq!(*status, 200, "an instance with the variable failed");
            }
        }
        assert_eq!(
            var.call_through(store, Method::GET, "/health", None, None)
                .status,
            200
        );
        assert_eq!(store.get(&stored_key(0)).unwrap().as_deref(), Some(RETIRED));
        assert_error(&login_on(&plain, store, "plain0"), 500, "internal_error");
        for (with_var, _, token) in &tokens {
            let Some(token) = token else { continue };
            let on_var = var.call_through(store, Method::GET, "/auth/protected", Some(token), None);
            let on_plain =
                plain.call_through(store, Method::GET, "/auth/protected", Some(token), None);
            match with_var {
                true => assert_eq!(on_var.status, 200, "{}", on_var.body),
                false => assert_error(&on_var, 401, "invalid_token"),
            }
            assert_error(&on_plain, 500, "internal_error");
        }
    }
}

/// Retiring the stored key fails closed: when the marker cannot be written,
/// every request that would sign (or change a password) answers 500 and
/// changes nothing, `/health` answers 503; verifying a token goes on. Once
/// the store is back, each of them works, the refresh token was not spent.
#[test]
fn a_failed_write_of_the_marker_fails_the_request() {
    let app = TestApp::unthrottled(&[("jwt_secret", OPERATOR_SECRET)]);
    assert_eq!(app.register("alice", PASSWORD).status, 201);
    let p = pair(&app.login("alice", PASSWORD));
    // A key written after the marker (see above): the next request retires it.
    app.store.set(&stored_key(0), &[7u8; 32]).unwrap();
    app.store
        .fail_when(|_, op, key| op == Op::Set && key == stored_key(0));
    let before = app.store.snapshot();
    let change = json!({"current_password": PASSWORD, "new_password": "another long one"});
    let login = app.login("alice", PASSWORD);
    let register = app.register("bob", PASSWORD);
    let refresh = app.refresh(&p.refresh);
    let password = app.call(
        Method::POST,
        "/auth/password",
        Some(&p.access),
        Some(&change),
    );
    let health = app.get("/health", None);
    let access = app.get("/auth/protected", Some(&p.access));
    let changed = app.store.snapshot() != before;
    app.store.stop_failing();
    for (what, res) in [
        ("login", &login),
        ("registration", &register),
        ("refresh", &refresh),
        ("password change", &password),
    ] {
        assert_eq!(res.status, 500, "{what}: {}", res.body);
        assert_error(res, 500, "internal_error");
    }
    assert_error(&health, 503, "unavailable");
    assert_eq!(
        access.status, 200,
        "verifying never writes: {}",
        access.body
    );
    assert!(
        !changed,
        "a request refused for the marker changed the store"
    );

    assert_eq!(app.register("bob", PASSWORD).status, 201);
    let q = assert_refresh_works(&app, &p.refresh, "the refused refresh's token");
    let res = app.call(
        Method::POST,
        "/auth/password",
        Some(&q.access),
        Some(&change),
    );
    assert_no_content(&res);
    assert_eq!(app.get("/health", None).status, 200);
    assert_eq!(
        app.store.get(&stored_key(0)).unwrap().as_deref(),
        Some(RETIRED)
    );
}
