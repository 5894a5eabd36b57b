//! Store calls are the main cost after bcrypt: each is a host round trip.
//! These budgets fail loudly when a change adds one. Every read is a single
//! `get`: there is no batch read (Spin's Redis store breaks `get-many`).

mod common;

use common::*;

#[test]
fn protected_reads_key_and_user_and_writes_nothing() {
    let app = TestApp::new();
    let token = app.user_token("alice");
    let before = app.store.len();
    assert_eq!(
        app.store_calls(|| assert_eq!(app.get("/auth/protected", Some(&token)).status, 200)),
        2
    );
    assert_eq!(app.store.len(), before);
    // With `jwt_secret` set, the key is not read: the user only.
    let app = TestApp::with_vars(&[("jwt_secret", "0123456789abcdef0123456789abcdef")]);
    let token = app.user_token("alice");
    assert_eq!(
        app.store_calls(|| assert_eq!(app.get("/auth/protected", Some(&token)).status, 200)),
        1
    );
}

#[test]
fn login_makes_at_most_twelve_store_calls() {
    let app = TestApp::new();
    app.register("alice", PASSWORD);
    let ip = "10.9.0.0";
    // A full window behind this address, so the limiter takes its full path.
    for _ in 0..5 {
        app.login_from("warmup", "wrong password", ip);
    }
    app.clock.advance_secs(61);
    let success = app.store_calls(|| assert_eq!(app.login_from("alice", PASSWORD, ip).status, 200));
    // Nine, plus starting a session: its number, its slot's rotation
    // counter, its family record.
    assert!(success <= 12, "success path: {success}");
    // One lock over already, so the next lock also clears the period before.
    for _ in 0..5 {
        app.clock.advance_secs(61);
        app.login_from("alice", "wrong password", ip);
    }
    app.clock.advance_secs(900);
    let mut worst = 0;
    for _ in 0..6 {
        app.clock.advance_secs(61);
        let n = app.store_calls(|| {
            app.login_from("alice", "wrong password", ip);
        });
        worst = worst.max(n);
    }
    eprintln!("login store calls: success {success}, worst failure {worst}");
    assert!(worst <= 12, "failure and lock paths: {worst}");
    app.clock.advance_secs(61);
    let locked = app.store_calls(|| assert_eq!(app.login_from("alice", PASSWORD, ip).status, 423));
    assert!(locked <= 11);
}

#[test]
fn dashboard_reads_key_user_and_its_counters() {
    let app = TestApp::new();
    let admin = app.admin_token("root");
    assert_eq!(
        app.store_calls(|| assert_eq!(app.get("/admin/dashboard", Some(&admin)).status, 200)),
        2 + 11
    );
}

#[test]
fn routes_without_state_never_touch_the_store() {
    let app = TestApp::new();
    assert_eq!(
        app.store_calls(|| {
            app.get("/nope", None);
            app.get("/auth/login", None);
            app.get("/auth/protected", None);
            app.post_json(
                "/auth/login",
                &serde_json::json!({"username": 1}),
                "10.0.0.1",
            );
        }),
        0
    );
    assert_eq!(
        app.store_calls(|| {
            app.get("/health", None);
        }),
        2
    );
}
