//! Account lockout after 5 consecutive failures, for 15 minutes, and answers
//! that never tell whether an account exists.

mod common;

use common::*;

/// Failed logins from distinct addresses, so the rate limit stays out of the way.
fn fail(app: &TestApp, user: &str, n: u32) -> Vec<TestResponse> {
    (0..n)
        .map(|i| app.login_from(user, "wrong password", &format!("203.0.113.{}", 100 + i)))
        .collect()
}

fn login_ok(app: &TestApp, user: &str) -> TestResponse {
    app.login_from(user, PASSWORD, "203.0.113.250")
}

#[test]
fn five_consecutive_failures_lock_the_account() {
    let app = TestApp::new();
    app.register("alice", PASSWORD);
    for res in fail(&app, "alice", 5) {
        assert_error(&res, 401, "invalid_credentials");
    }
    let res = login_ok(&app, "alice");
    assert_error(&res, 423, "account_locked");
    assert_eq!(res.header("retry-after"), "900");
}

#[test]
fn a_locked_account_is_refused_without_checking_the_password() {
    let app = TestApp::new();
    app.register("alice", PASSWORD);
    fail(&app, "alice", 5);
    // Right or wrong password, same answer: the password is not looked at.
    let right = login_ok(&app, "alice");
    let wrong = app.login_from("alice", "still wrong", "203.0.113.251");
    assert_eq!(right.status, 423);
    assert_eq!(right.raw, wrong.raw);
    assert_eq!(app.events_named("locked_account_attempt").len(), 2);
}

#[test]
fn the_lock_lasts_fifteen_minutes_and_its_end_resets_the_count() {
    let app = TestApp::new();
    app.register("alice", PASSWORD);
    fail(&app, "alice", 5);
    app.clock.advance_secs(60);
    let res = login_ok(&app, "alice");
    assert_eq!(res.status, 423);
    assert_eq!(res.header("retry-after"), "840");
    app.clock.advance_secs(839);
    assert_eq!(login_ok(&app, "alice").status, 423);
    app.clock.advance_secs(1);
    // Unlocked, with a fresh count: four more failures do not lock it again.
    for res in fail(&app, "alice", 4) {
        assert_eq!(res.status, 401);
    }
    assert_eq!(login_ok(&app, "alice").status, 200);
}

#[test]
fn after_a_lock_ends_five_more_failures_lock_again() {
    let app = TestApp::new();
    app.register("alice", PASSWORD);
    fail(&app, "alice", 5);
    app.clock.advance_secs(900);
    for res in fail(&app, "alice", 5) {
        assert_eq!(res.status, 401);
    }
    assert_eq!(login_ok(&app, "alice").status, 423);
    app.clock.advance_secs(900);
    assert_eq!(login_ok(&app, "alice").status, 200);
}

#[test]
fn a_successful_login_resets_the_count() {
    let app = TestApp::new();
    app.register("alice", PASSWORD);
    fail(&app, "alice", 4);
    assert_eq!(login_ok(&app, "alice").status, 200);
    for res in fail(&app, "alice", 4) {
        assert_eq!(res.status, 401);
    }
    assert_eq!(login_ok(&app, "alice").status, 200);
}

#[test]
fn failures_are_only_consecutive_ones() {
    let app = TestApp::new();
    app.register("alice", PASSWORD);
    for _ in 0..3 {
        fail(&app, "alice", 2);
        assert_eq!(login_ok(&app, "alice").status, 200);
    }
}

#[test]
fn lockout_is_per_account() {
    let app = TestApp::new();
    app.register("alice", PASSWORD);
    app.register("bob", PASSWORD);
    fail(&app, "alice", 5);
    assert_eq!(login_ok(&app, "alice").status, 423);
    assert_eq!(login_ok(&app, "bob").status, 200);
}

#[test]
fn lockout_ignores_username_case() {
    let app = TestApp::new();
    app.register("alice", PASSWORD);
    fail(&app, "Alice", 3);
    fail(&app, "ALICE", 2);
    assert_eq!(login_ok(&app, "alice").status, 423);
}

#[test]
fn threshold_and_duration_are_configurable() {
    let app = TestApp::with_vars(&[
        ("lockout_threshold", "2"),
        ("lockout_duration_seconds", "30"),
    ]);
    app.register("alice", PASSWORD);
    fail(&app, "alice", 2);
    let res = login_ok(&app, "alice");
    assert_eq!(res.status, 423);
    assert_eq!(res.header("retry-after"), "30");
    app.clock.advance_secs(30);
    assert_eq!(login_ok(&app, "alice").status, 200);
}

#[test]
fn unknown_user_and_wrong_password_are_indistinguishable() {
    let app = TestApp::new();
    app.register("alice", PASSWORD);
    let known = fail(&app, "alice", 6);
    let unknown = fail(&app, "mallory", 6);
    for (k, u) in known.iter().zip(&unknown) {
        assert_eq!(k.status, u.status);
        assert_eq!(k.raw, u.raw, "byte-identical bodies");
        assert_eq!(k.header("retry-after"), u.header("retry-after"));
        assert_eq!(k.headers.len(), u.headers.len());
    }
    assert_eq!(known[4].status, 401);
    assert_eq!(known[5].status, 423, "unknown usernames lock too");
}

#[test]
fn lockouts_are_counted_and_audited() {
    let app = TestApp::new();
    app.register("alice", PASSWORD);
    fail(&app, "alice", 5);
    let locked = app.events_named("account_locked");
    assert_eq!(locked.len(), 1);
    assert_eq!(locked[0]["username"], "alice");
    assert_eq!(app.events_named("login_failure").len(), 5);
    let admin = app.admin_token("root");
    let stats = app.get("/admin/dashboard", Some(&admin)).body["stats"].clone();
    assert_eq!(stats["lockouts"], 1);
    assert_eq!(stats["failed_logins"], 5);
}

#[test]
fn a_flood_of_invented_usernames_keeps_the_store_bounded() {
    let app = TestApp::new();
    for i in 0..2000 {
        app.login_from(
            &format!("ghost{i}"),
            "wrong password",
            &format!("10.{}.{}.1", i / 250, i % 250),
        );
    }
    // Unknown names live in 65,536 keyed slots, never one key set per name.
    let per_name = app
        .store
        .keys()
        .into_iter()
        .filter(|k| k.contains("ghost"))
        .count();
    assert_eq!(per_name, 0);
    let slots = app
        .store
        .keys()
        .into_iter()
        .filter(|k| k.starts_with("fail:slot:"))
        .count();
    assert!(slots <= 65_536);
}
