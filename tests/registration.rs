//! Registration: a name belongs to at most one account at a time, a token
//! belongs to the account it was issued to, and a registration that fails
//! half-way never burns the name for good nor replaces an account.

mod common;

use common::*;
use secure_backend::store::{KeyValue, Op};

/// A name whose registration died after claiming it is free again after at
/// most this long (two claim epochs of five minutes).
const NAME_FREED_AFTER_SECS: u64 = 600;
/// ... and no other registration can take it for at least this long, since
/// that registration may still be in flight.
const NAME_HELD_FOR_SECS: u64 = 300;

/// Removes every claim the store holds on `name`, as an eviction, a partial
/// restore or an operator's mistake would.
fn forget_name_claims(app: &TestApp, name: &str) {
    let prefix = format!("claim:user:{name}");
    let claims: Vec<String> = app
        .store
        .keys()
        .into_iter()
        .filter(|k| k.starts_with(&prefix))
        .collect();
    assert!(!claims.is_empty(), "the name was claimed");
    for key in claims {
        app.store.delete(&key).unwrap();
    }
}

#[test]
fn a_re_used_name_does_not_accept_the_old_holders_token() {
    let app = TestApp::new();
    let old_token = app.user_token("alice");
    // The account is deleted (as the account-deletion route will) and its
    // name registered again by somebody else while the old token is unexpired.
    app.store.delete("user:alice").unwrap();
    forget_name_claims(&app, "alice");
    assert_eq!(
        app.register("alice", "the new owner's password").status,
        201
    );
    assert_error(
        &app.get("/auth/protected", Some(&old_token)),
        401,
        "invalid_token",
    );
    let new_token = app.login("alice", "the new owner's password").token();
    assert_eq!(app.get("/auth/protected", Some(&new_token)).status, 200);

    // The same when the name came free by itself, with no claim touched.
    let app = TestApp::new();
    let old_admin = app.admin_token("root");
    app.store.delete("user:root").unwrap();
    app.clock.advance_secs(NAME_FREED_AFTER_SECS);
    assert_eq!(app.register_admin("root").status, 201);
    assert_error(
        &app.get("/admin/dashboard", Some(&old_admin)),
        401,
        "invalid_token",
    );
}

#[test]
fn a_lost_name_claim_does_not_let_a_stranger_replace_an_account() {
    let app = TestApp::new();
    let admin = app.admin_token("root");
    let user = app.user_token("alice");
    forget_name_claims(&app, "root");
    forget_name_claims(&app, "alice");
    let stranger = "the stranger's password";
    for (i, name) in ["root", "alice"].into_iter().enumerate() {
        let ip = format!("198.51.100.{i}");
        assert_error(
            &app.register_from(name, stranger, &ip),
            409,
            "username_taken",
        );
        assert_error(
            &app.login_from(name, stranger, &ip),
            401,
            "invalid_credentials",
        );
    }
    // Not even as an admin, with the bootstrap token: the account stays.
    assert_error(&app.register_admin("alice"), 409, "username_taken");
    assert_eq!(app.get("/admin/dashboard", Some(&admin)).status, 200);
    assert_eq!(
        app.get("/auth/protected", Some(&user)).body["user"]["role"],
        "user"
    );
    // Nor later, once every claim epoch of the original registration is long past.
    app.clock.advance_secs(24 * 3600);
    assert_error(
        &app.register_from("root", stranger, "198.51.100.9"),
        409,
        "username_taken",
    );
    assert_eq!(app.login("root", PASSWORD).status, 200);
    assert_eq!(app.login("alice", PASSWORD).status, 200);
}

#[test]
fn a_name_whose_registration_died_after_claiming_it_is_free_again() {
    let app = TestApp::new();
    app.register("warmup", PASSWORD);
    app.store
        .fail_when(|_, op, key| op == Op::Set && key == "user:alice");
    assert_error(&app.register("alice", PASSWORD), 500, "internal_error");
    app.store.stop_failing();
    // Until then a registration of the name may still be in flight: held, not given away.
    app.clock.advance_secs(NAME_HELD_FOR_SECS - 1);
    assert_error(
        &app.register_from("alice", "somebody else's password", "198.51.100.1"),
        409,
        "username_taken",
    );
    assert_error(&app.login("alice", PASSWORD), 401, "invalid_credentials");
    app.clock
        .advance_secs(NAME_FREED_AFTER_SECS - NAME_HELD_FOR_SECS + 1);
    assert_eq!(app.register("alice", PASSWORD).status, 201);
    assert_eq!(app.login("alice", PASSWORD).status, 200);
}

#[test]
fn a_registration_failing_at_any_store_call_leaves_the_name_registered_or_free() {
    // The calls of one registration, on a store that already holds the signing key.
    let calls = {
        let app = TestApp::new();
        app.register("warmup", PASSWORD);
        let before = app.store.calls();
        assert_eq!(app.register("alice", PASSWORD).status, 201);
        app.store.calls() - before
    };
    assert!(calls >= 3, "{calls}");
    for n in 0..calls {
        let app = TestApp::new();
        app.register("warmup", PASSWORD);
        app.store.fail_when(move |i, _, _| i == n);
        let first = app.register("alice", PASSWORD);
        app.store.stop_failing();
        assert!(
            [201, 500].contains(&first.status),
            "call {n}: {}",
            first.body
        );
        assert_error(
            &app.login_from("alice", "a stranger's password", "198.51.100.2"),
            401,
            "invalid_credentials",
        );
        if app.login("alice", PASSWORD).status == 200 {
            // Registered, despite the error: the name is the owner's.
            assert_error(
                &app.register_from("alice", "a stranger's password", "198.51.100.3"),
                409,
                "username_taken",
            );
        } else {
            // Not registered: never stuck, the owner can try again.
            app.clock.advance_secs(NAME_FREED_AFTER_SECS);
            let again = app.register_from("alice", PASSWORD, "198.51.100.4");
            assert_eq!(again.status, 201, "call {n}: {}", again.body);
            assert_eq!(
                app.login_from("alice", PASSWORD, "198.51.100.5").status,
                200
            );
        }
    }
}

#[test]
fn registration_makes_at_most_nine_store_calls() {
    let app = TestApp::new();
    let admin = app.admin_token("root2");
    // A full window behind every address used below, so the limiter takes
    // its full path (a read of the record `limit` attempts back).
    for ip in ["192.0.2.10", "192.0.2.11", "192.0.2.12"] {
        for i in 0..10 {
            app.register_from(&format!("warmup{i}-{}", &ip[8..]), PASSWORD, ip);
        }
    }
    app.clock.advance_secs(61);
    let calls = |f: &dyn Fn() -> u16, status: u16| {
        let before = app.store.calls();
        assert_eq!(f(), status);
        app.store.calls() - before
    };
    // Key, rate limit (three), record read, two claim increments, the
    // user index (an increment and a write), record write, user counter.
    assert!(calls(&|| app.register("alice", PASSWORD).status, 201) <= 11);
    // Plus the admin counter.
    assert!(calls(&|| app.register_admin("root").status, 201) <= 12);
    // A taken name stops at the record read: no claim, no account write
    // (the limiter still records the attempt).
    assert!(calls(&|| app.register("alice", PASSWORD).status, 409) <= 5);
    // An admin created with an admin's Bearer token: the key is read once,
    // for the rate limit and the token alike, plus the admin's record.
    let by_admin = || {
        app.send(
            app.request(http::Method::POST, "/auth/register", "192.0.2.12")
                .header("content-type", "application/json")
                .header("authorization", format!("Bearer {admin}"))
                .body(
                    serde_json::json!({"username": "root3", "password": PASSWORD, "role": "admin"})
                        .to_string()
                        .into_bytes(),
                )
                .unwrap(),
        )
        .status
    };
    assert!(calls(&by_admin, 201) <= 13);
}

/// A registration that stalls past its claim's write window after claiming
/// the name (here: 61 s pass at the last claim increment) gives the name up
/// instead of writing over a possible takeover.
#[test]
fn a_registration_too_slow_after_its_claim_writes_nothing() {
    let app: &'static TestApp = Box::leak(Box::new(TestApp::new()));
    app.store.fail_when(|_, op, key| {
        if op == Op::Increment && key.starts_with("claim:user:slow") {
            app.clock.advance_secs(31);
        }
        false
    });
    let res = app.register("slow", PASSWORD);
    app.store.stop_failing();
    assert_eq!(res.status, 500, "{}", res.body);
    assert!(
        !app.store.keys().contains(&"user:slow".to_owned()),
        "no record written"
    );
    assert_eq!(app.login("slow", PASSWORD).status, 401);
    // The name frees itself within two epochs, with no operator.
    app.clock.advance_secs(NAME_FREED_AFTER_SECS);
    assert_eq!(app.register("slow", PASSWORD).status, 201);
}
