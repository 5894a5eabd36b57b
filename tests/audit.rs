//! One JSON line per security event, with the documented fields, and never
//! a password, hash, token or secret.

mod common;

use common::*;
use secure_backend::audit::{self, Event, Outcome, Subjects};
use secure_backend::context::RequestMeta;
use secure_backend::domain::{User, Username};
use secure_backend::store::KeyValue;

/// Runs every flow that should leave an audit trail.
fn eventful_app() -> (TestApp, String) {
    let app = TestApp::new();
    app.register("alice", PASSWORD);
    app.register("alice", PASSWORD); // taken
    app.register("x", PASSWORD); // invalid
    app.register_admin("root");
    let admin = app.login("root", PASSWORD).token();
    let user = app.login("alice", PASSWORD).token();
    app.get("/auth/protected", Some(&user));
    app.get("/auth/protected", Some("not.a.token"));
    app.get("/auth/protected", None);
    app.get("/admin/dashboard", Some(&user));
    app.get("/admin/dashboard", Some(&admin));
    for i in 0..6 {
        app.login_from("alice", "wrong password", &format!("192.0.2.{}", 100 + i));
    }
    for _ in 0..6 {
        app.login_from("bob-unknown", "wrong password", "192.0.2.200");
    }
    (app, user)
}

#[test]
fn every_security_event_is_logged() {
    let (app, _) = eventful_app();
    let config = TestApp::with_vars(&[("bcrypt_cost", "not a number")]);
    config.login("alice", PASSWORD);
    let broken = TestApp::new();
    broken.store.fail_from_now_on(true);
    broken.login("alice", PASSWORD);

    let mut names: Vec<String> = app
        .audit_events()
        .into_iter()
        .chain(config.audit_events())
        .chain(broken.audit_events())
        .map(|e| e["event"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names.dedup();
    for event in [
        "registration",
        "login_success",
        "login_failure",
        "account_locked",
        "locked_account_attempt",
        "rate_limited",
        "token_rejected",
        "access_denied",
        "admin_access",
        "config_error",
        "internal_error",
    ] {
        assert!(
            names.contains(&event.to_string()),
            "no {event} in {names:?}"
        );
    }
}

#[test]
fn each_line_has_the_documented_fields() {
    let (app, _) = eventful_app();
    let lines = app.audit.lines();
    assert!(lines.len() > 20);
    for line in &lines {
        assert!(!line.contains('\n'));
        let event: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_audit_fields(&event);
        let ts = event["ts"].as_str().unwrap();
        assert!(ts.ends_with('Z') && ts.len() >= 20, "UTC RFC 3339: {ts}");
        humantime::parse_rfc3339(ts).expect("RFC 3339");
    }
    let successes = app.events_named("login_success");
    let success = successes.iter().find(|e| e["username"] == "alice").unwrap();
    assert_eq!(success["username"], "alice");
    assert_eq!(success["outcome"], "success");
    assert_eq!(success["method"], "POST");
    assert_eq!(success["path"], "/auth/login");
    assert_eq!(success["client_ip"], "192.0.2.20");
    assert_eq!(success["ts"], "2026-11-27T00:00:00.000Z");
}

#[test]
fn no_password_hash_or_token_ever_reaches_the_log() {
    let (app, token) = eventful_app();
    let log = app.audit.lines().concat();
    let record = app
        .store
        .get(&User::key(&Username::parse("alice").unwrap()))
        .unwrap()
        .unwrap();
    let user: User = serde_json::from_slice(&record).unwrap();
    for secret in [
        PASSWORD,
        "wrong password",
        &user.password_hash,
        &token,
        BOOTSTRAP,
        "$2b$",
    ] {
        assert!(!log.contains(secret), "{secret} leaked");
    }
    let signature = token.rsplit('.').next().unwrap();
    assert!(!log.contains(signature));
}

#[test]
fn registration_failures_say_why() {
    let (app, _) = eventful_app();
    let reasons: Vec<String> = app
        .events_named("registration")
        .iter()
        .filter(|e| e["outcome"] == "failure")
        .map(|e| e["reason"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(reasons, ["username taken", "validation_error"]);
}

#[test]
fn values_are_escaped_so_a_line_cannot_be_forged() {
    let meta = RequestMeta {
        request_id: "r1".into(),
        method: "GET".into(),
        path: "/x\"}\n{\"event\":\"login_success\"".into(),
    };
    let line = audit::line(
        0,
        &meta,
        "1.2.3.4",
        Event::LoginFailure,
        Outcome::Failure,
        Subjects {
            username: Some("a\"\nb"),
            target: Some("t\"\n"),
        },
        None,
    );
    assert!(!line.contains('\n'));
    let parsed: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(parsed["event"], "login_failure");
    assert_eq!(parsed["username"], "a\"\nb");
    assert_eq!(parsed["target"], "t\"\n");
}

/// The audit timestamp formatter agrees with `humantime` from 1970 to 2400,
/// leap days and century years included.
#[test]
fn timestamps_are_rfc3339_utc_with_milliseconds() {
    use std::time::{Duration, UNIX_EPOCH};
    let day_ms = 86_400_000u64;
    let mut ms = 0u64;
    while ms < 430 * 365 * day_ms {
        let expected = humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms));
        assert_eq!(
            audit::rfc3339_millis(ms),
            expected.to_string(),
            "at {ms} ms"
        );
        // A step that is not a whole day, so every time of day comes round.
        ms += day_ms - 3_599_999;
    }
    assert_eq!(audit::rfc3339_millis(START_MS), "2026-11-27T00:00:00.000Z");
    assert_eq!(
        audit::rfc3339_millis(951_782_400_123),
        "2000-02-29T00:00:00.123Z"
    );
}

/// Review finding: bcrypt's error for a malformed hash quotes the hash, and
/// the `internal_error` line carried it. A corrupted record must not put
/// its hash in the log.
#[test]
fn a_malformed_stored_hash_never_reaches_the_audit_log() {
    let app = TestApp::new();
    let token = app.user_token("alice");
    for hash in [
        "$2b$10$not-a-real-hash-but-secret-looking",
        "plain-secret-looking-hash",
    ] {
        app.edit_user("alice", |u| u.password_hash = hash.to_owned());
        assert_error(&app.login("alice", PASSWORD), 500, "internal_error");
        let change = app.call(
            http::Method::POST,
            "/auth/password",
            Some(&token),
            Some(
                &serde_json::json!({"current_password": PASSWORD, "new_password": "another one!"}),
            ),
        );
        assert_error(&change, 500, "internal_error");
        for line in app.audit.lines() {
            assert!(!line.contains("secret-looking"), "{line}");
        }
    }
}
