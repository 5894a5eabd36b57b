//! The password policy of issue 11, through the API: a new password (at
//! registration or in a password change) is refused with 400
//! `weak_password` when it is a common password, contains the username or
//! is one character repeated; the message names the rule, never the
//! password. Logins never apply the policy.

mod common;

use common::*;
use secure_backend::domain::Password;
use secure_backend::security::passwords;
use serde_json::json;

const STRONG: &str = "lucky-otter-grove-42";

/// The rate limits are not what these tests test.
fn app() -> TestApp {
    TestApp::unthrottled(&[])
}

fn change_password(app: &TestApp, access: &str, current: &str, new: &str) -> TestResponse {
    app.call(
        http::Method::POST,
        "/auth/password",
        Some(access),
        Some(&json!({ "current_password": current, "new_password": new })),
    )
}

/// A 400 `weak_password` whose message names the rule (`rule_word`) and
/// shows the password nowhere, in the body or the audit log.
fn assert_weak(app: &TestApp, res: &TestResponse, password: &str, rule_word: &str) {
    assert_error(res, 400, "weak_password");
    let message = res.body["error"]["message"].as_str().unwrap();
    assert!(message.contains(rule_word), "{message}");
    let shown = |text: &str| text.to_lowercase().contains(&password.to_lowercase());
    assert!(!shown(&String::from_utf8_lossy(&res.raw)), "{}", res.body);
    assert!(
        !shown(&app.audit.lines().join("\n")),
        "the audit log shows it"
    );
}

/// Logs `name` in with `password` and returns the access token.
fn login_ok(app: &TestApp, name: &str, password: &str) -> String {
    let res = app.login(name, password);
    assert_eq!(res.status, 200, "{}", res.body);
    res.token()
}

// ------------------------------------------------------------ common list

#[test]
fn a_common_password_is_refused_at_registration() {
    let app = app();
    for common in ["football", "iloveyou", "qwertyuiop"] {
        let res = app.register("alice", common);
        assert_weak(&app, &res, common, "common");
    }
}

#[test]
fn a_common_password_is_refused_whatever_its_case() {
    let app = app();
    for variant in ["FOOTBALL", "IloveYou", "qWeRtYuIoP", "BasketBall"] {
        let res = app.register("alice", variant);
        assert_weak(&app, &res, variant, "common");
    }
}

#[test]
fn a_common_password_is_refused_at_password_change() {
    let app = app();
    let access = app.user_token("alice");
    for common in ["starwars", "WhatEver"] {
        let res = change_password(&app, &access, PASSWORD, common);
        assert_weak(&app, &res, common, "common");
    }
}

// --------------------------------------------------------------- username

#[test]
fn a_password_containing_the_username_is_refused_at_registration() {
    let app = app();
    for (name, password) in [
        ("bartholomew", "bartholomew"),
        ("bartholomew", "BARTHOLOMEW"),
        ("marigold7", "my-Marigold7-and-more"),
        ("MariGold7", "xmarigold7x!"),
    ] {
        let res = app.register(name, password);
        assert_weak(&app, &res, password, "username");
    }
}

#[test]
fn a_password_containing_the_username_is_refused_at_password_change() {
    let app = app();
    let access = app.user_token("marigold7");
    let res = change_password(&app, &access, PASSWORD, "new-MARIGOLD7-pass");
    assert_weak(&app, &res, "new-MARIGOLD7-pass", "username");
}

// -------------------------------------------------------- one repeated char

#[test]
fn one_character_repeated_is_refused_at_registration() {
    let app = app();
    for repeated in ["zzzzzzzzzzzz", "ééééééééé", "ZzZzZzZzZzZz"] {
        let res = app.register("alice", repeated);
        assert_weak(&app, &res, repeated, "repeated");
    }
}

#[test]
fn one_character_repeated_is_refused_at_password_change() {
    let app = app();
    let access = app.user_token("alice");
    let res = change_password(&app, &access, PASSWORD, "ééééééééé");
    assert_weak(&app, &res, "ééééééééé", "repeated");
}

// ------------------------------------------------------------ what passes

#[test]
fn a_strong_password_is_accepted_at_registration_and_password_change() {
    let app = app();
    assert_eq!(app.register("alice", STRONG).status, 201);
    let access = login_ok(&app, "alice", STRONG);
    let res = change_password(&app, &access, STRONG, "quiet-meadow-lantern-7");
    assert_no_content(&res);
    login_ok(&app, "alice", "quiet-meadow-lantern-7");
}

#[test]
fn the_length_rule_speaks_before_the_policy() {
    let app = app();
    // Common and one repeated character, but too short first.
    let res = app.register("alice", "aaaa");
    assert_error(&res, 400, "validation_error");
    let access = app.user_token("bob");
    let res = change_password(&app, &access, PASSWORD, "123456");
    assert_error(&res, 400, "validation_error");
}

// --------------------------------------------------------- nothing changes

#[test]
fn a_refused_registration_creates_no_account_and_stores_nothing() {
    let app = app();
    let before = app.store.snapshot();
    for password in ["football", "alice-secret", "zzzzzzzzzzzz"] {
        let res = app.register("alice", password);
        assert_error(&res, 400, "weak_password");
    }
    assert_eq!(app.store.snapshot(), before);
    assert_error(&app.login("alice", "football"), 401, "invalid_credentials");
    // The name is still free.
    assert_eq!(app.register("alice", STRONG).status, 201);
}

#[test]
fn a_refused_password_change_keeps_the_old_password() {
    let app = app();
    let access = app.user_token("alice");
    let res = change_password(&app, &access, PASSWORD, "football");
    assert_error(&res, 400, "weak_password");
    assert_access_works(&app, &access, "the session a refused change leaves");
    login_ok(&app, "alice", PASSWORD);
    assert_error(&app.login("alice", "football"), 401, "invalid_credentials");
}

// ---------------------------------------------------------------- logins

/// Accounts made before the policy keep logging in: only new passwords
/// are judged.
#[test]
fn an_existing_account_with_a_now_refused_password_still_logs_in() {
    let app = app();
    for (name, weak) in [
        ("alice", "football"),
        ("bob", "bob-is-my-name"),
        ("carol", "zzzzzzzzzzzz"),
    ] {
        assert_eq!(app.register(name, STRONG).status, 201);
        let candidate = Password::parse_candidate(weak.into()).unwrap();
        let hash = passwords::hash(&candidate, 4).unwrap();
        app.edit_user(name, |user| user.password_hash = hash);
        let access = login_ok(&app, name, weak);
        // And changes it for a strong one, giving the old one as current.
        let res = change_password(&app, &access, weak, STRONG);
        assert_no_content(&res);
        login_ok(&app, name, STRONG);
    }
}
