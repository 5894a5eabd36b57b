//! Real threads against the in-memory store, whose atomics are real: the
//! numbers here are exact, not "roughly".

mod common;

use common::*;
use secure_backend::store::{KeyValue, MemoryStore};

fn count(statuses: &[u16], status: u16) -> usize {
    statuses.iter().filter(|s| **s == status).count()
}

#[test]
fn memory_store_increments_are_atomic() {
    let store = MemoryStore::new();
    in_parallel(16, |_| {
        for _ in 0..50 {
            store.increment("n", 1).unwrap();
        }
    });
    assert_eq!(store.increment("n", 0).unwrap(), 800);
}

#[test]
fn twenty_simultaneous_registrations_of_one_name_give_exactly_one_201() {
    let app = TestApp::new();
    let statuses = in_parallel(20, |i| {
        app.register_from("samename", &format!("password-{i}"), &format!("10.2.0.{i}"))
            .status
    });
    assert_eq!(count(&statuses, 201), 1, "{statuses:?}");
    assert_eq!(count(&statuses, 409), 19, "{statuses:?}");
    let admin = app.admin_token("root");
    assert_eq!(
        app.get("/admin/dashboard", Some(&admin)).body["stats"]["users"],
        2
    );
}

#[test]
fn fifty_parallel_wrong_passwords_get_at_most_five_password_checks() {
    // Real bcrypt cost, so that every attempt is in flight before the first
    // check ends: the limit must come from the tickets, not from timing.
    let app = TestApp::with_vars(&[("bcrypt_cost", "10")]);
    app.register("victim", PASSWORD);
    let statuses = in_parallel(50, |i| {
        app.login_from("victim", "wrong password", &format!("10.3.0.{i}"))
            .status
    });
    assert_eq!(count(&statuses, 401), 5, "{statuses:?}");
    assert_eq!(count(&statuses, 423), 45, "{statuses:?}");
    assert_eq!(
        app.events_named("login_failure").len(),
        5,
        "one per password check"
    );
    // And the account is locked afterwards, even for the right password.
    assert_eq!(app.login_from("victim", PASSWORD, "10.3.1.1").status, 423);
}

#[test]
fn thirty_parallel_logins_from_one_address_let_five_past_the_limiter() {
    let app = TestApp::new();
    app.register("alice", PASSWORD);
    let statuses = in_parallel(30, |_| app.login_from("alice", PASSWORD, "10.4.0.1").status);
    assert_eq!(count(&statuses, 429), 25, "{statuses:?}");
    assert_eq!(count(&statuses, 200), 5, "{statuses:?}");
}

#[test]
fn parallel_first_requests_agree_on_one_signing_key() {
    let app = TestApp::new();
    let statuses = in_parallel(12, |i| {
        app.register_from(&format!("first{i}"), PASSWORD, &format!("10.5.0.{i}"))
            .status
    });
    assert!(statuses.iter().all(|s| *s == 201), "{statuses:?}");
    let tokens = in_parallel(12, |i| {
        app.login_from(&format!("first{i}"), PASSWORD, &format!("10.6.0.{i}"))
            .token()
    });
    for token in tokens {
        assert_eq!(app.get("/auth/protected", Some(&token)).status, 200);
    }
    assert_eq!(
        app.store
            .keys()
            .iter()
            .filter(|k| k.starts_with("secret:"))
            .count(),
        1
    );
}

#[test]
fn parallel_successful_logins_are_all_counted() {
    let app = TestApp::new();
    for i in 0..8 {
        app.register_from(&format!("user{i}"), PASSWORD, &format!("10.7.0.{i}"));
    }
    let statuses = in_parallel(40, |i| {
        app.login_from(
            &format!("user{}", i % 8),
            PASSWORD,
            &format!("10.8.{}.{}", i / 5, i % 5),
        )
        .status
    });
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let admin = app.admin_token("root");
    assert_eq!(
        app.get("/admin/dashboard", Some(&admin)).body["stats"]["successful_logins"],
        41
    );
}
