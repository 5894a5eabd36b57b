//! Tickets given back (`lockout::release`) after the owner's success: a
//! right password on an account with two-factor login gives its lockout
//! ticket back, and when the owner's successful second step deleted the
//! counter in between, the release lands on a fresh counter. Such stale
//! releases must never buy an attacker extra guesses (issue 11 review).

mod common;

use common::*;
use http::Method;
use secure_backend::clock::Clock;
use secure_backend::security::totp;
use secure_backend::store::{decode_counter, KeyValue};
use serde_json::json;
use std::sync::{mpsc, Barrier, Mutex};
use std::time::Duration;

const KEY: &str = "mfa-encryption-key-for-tests-0123456789";
const VERIFY_IP: &str = "192.0.2.40";
/// The default `lockout_threshold`.
const THRESHOLD: usize = 5;
/// The attacker's logins in flight at each of the owner's logins: as many
/// as leave the owner's own two tickets under the threshold.
const IN_FLIGHT: usize = THRESHOLD - 1;

fn app() -> TestApp {
    TestApp::unthrottled(&[("mfa_encryption_key", KEY), ("mfa_rate_limit", "1000")])
}

fn step_now(app: &TestApp) -> u64 {
    app.clock.now_ms() / 1000 / totp::STEP_SECS
}

/// Moves to the start of the next time step, and answers its code: a code
/// no earlier request can have used.
fn fresh_code(app: &TestApp, secret: &[u8]) -> String {
    let into_step = app.clock.now_ms() % (totp::STEP_SECS * 1000);
    app.clock.advance_ms(totp::STEP_SECS * 1000 - into_step);
    totp::code_at(secret, step_now(app))
}

/// Registers `name`, turns two-factor login on, and answers its secret.
fn enrolled(app: &TestApp, name: &str) -> Vec<u8> {
    let access = app.user_token(name);
    let res = app.call(Method::POST, "/auth/mfa/totp/enroll", Some(&access), None);
    assert_eq!(res.status, 200, "{}", res.body);
    let secret = totp::decode_secret(res.body["secret"].as_str().unwrap()).unwrap();
    let code = json!({ "code": fresh_code(app, &secret) });
    let res = app.call(
        Method::POST,
        "/auth/mfa/totp/confirm",
        Some(&access),
        Some(&code),
    );
    assert_eq!(res.status, 200, "{}", res.body);
    secret
}

fn login_request(app: &TestApp, name: &str, ip: &str) -> http::Request<Vec<u8>> {
    app.request(Method::POST, "/auth/login", ip)
        .header("content-type", "application/json")
        .body(
            json!({ "username": name, "password": PASSWORD })
                .to_string()
                .into_bytes(),
        )
        .unwrap()
}

/// The password step: its mfa token.
fn challenge(app: &TestApp, name: &str) -> String {
    let res = app.login(name, PASSWORD);
    assert_eq!(res.body["mfa_required"], true, "{}", res.body);
    res.body["mfa_token"].as_str().unwrap().to_owned()
}

fn verify(app: &TestApp, mfa_token: &str, code: &str) -> TestResponse {
    app.post_json(
        "/auth/mfa/verify",
        &json!({ "mfa_token": mfa_token, "code": code }),
        VERIFY_IP,
    )
}

/// An attacker with alice's password (not her second factor) keeps
/// [`IN_FLIGHT`] right-password logins in flight at each of alice's
/// `owner_logins` logins; every one of those logins gives its ticket back
/// only after all of alice's logins are over. Answers the raw failure
/// counter afterwards.
fn straddle(app: &TestApp, secret: &[u8], owner_logins: usize) -> i64 {
    let (arrived, arrivals) = mpsc::channel();
    let gate = Barrier::new(owner_logins * IN_FLIGHT + 1);
    // Every release of a lockout ticket (`increment(fail:.., -1)`) says it
    // arrived, then waits at the gate.
    let arrived = Mutex::new(arrived);
    let held = BeforeIncrement {
        inner: &app.store,
        before: |key: &str, delta| {
            if key.starts_with("fail:") && delta == -1 {
                arrived.lock().unwrap().send(()).unwrap();
                gate.wait();
            }
        },
    };
    std::thread::scope(|s| {
        let mut attempts = Vec::new();
        for round in 0..owner_logins {
            for i in 0..IN_FLIGHT {
                let (held, ip) = (&held, format!("198.51.100.{}", round * IN_FLIGHT + i));
                attempts.push(
                    s.spawn(move || app.send_through(held, login_request(app, "alice", &ip))),
                );
            }
            for _ in 0..IN_FLIGHT {
                arrivals
                    .recv_timeout(Duration::from_secs(20))
                    .expect("each of the attacker's logins reaches lockout::release");
            }
            // Alice logs in through both steps meanwhile.
            let token = challenge(app, "alice");
            let res = verify(app, &token, &fresh_code(app, secret));
            assert_eq!(res.status, 200, "alice's login {round}: {}", res.body);
        }
        gate.wait();
        for attempt in attempts {
            let res = attempt.join().unwrap();
            assert_eq!(res.body["mfa_required"], true, "{}", res.body);
        }
    });
    app.store
        .get("fail:user:alice:0")
        .unwrap()
        .as_deref()
        .and_then(decode_counter)
        .unwrap_or(0)
}

/// The attacker's wrong codes until the account locks (at most 20).
fn guesses_before_lock(app: &TestApp, secret: &[u8]) -> usize {
    let mut guesses = 0;
    while app.events_named("account_locked").is_empty() && guesses < 20 {
        let token = challenge(app, "alice");
        let wrong = totp::code_at(secret, step_now(app) + 7);
        assert_error(&verify(app, &token, &wrong), 401, "invalid_mfa_code");
        guesses += 1;
    }
    guesses
}

/// Four right-password logins whose check straddles alice's successful
/// second step give their tickets back to the counter her success deleted,
/// driving it to -4: that must not give the attacker 9 code guesses before
/// the lock instead of 5.
#[test]
fn a_right_password_given_back_after_a_success_does_not_buy_extra_guesses() {
    let app = app();
    let secret = enrolled(&app, "alice");
    let counter = straddle(&app, &secret, 1);
    let guesses = guesses_before_lock(&app, &secret);
    assert_eq!(guesses, THRESHOLD, "counter after the releases: {counter}");
}

/// Straddling each of alice's logins adds to the debt (-4 per login, so
/// -12 after three and 17 guesses): whatever the debt, the fifth wrong
/// code locks.
#[test]
fn the_credit_does_not_grow_with_each_of_the_owners_logins() {
    let app = app();
    let secret = enrolled(&app, "alice");
    let counter = straddle(&app, &secret, 3);
    let guesses = guesses_before_lock(&app, &secret);
    assert_eq!(guesses, THRESHOLD, "counter after the releases: {counter}");
}
