//! Two-factor login (TOTP, RFC 6238, and recovery codes), through the
//! router with the movable clock: each rule of issue 11 pinned by a test
//! that fails when the rule is removed.

mod common;

use common::*;
use http::Method;
use secure_backend::clock::Clock;
use secure_backend::security::totp;
use secure_backend::store::KeyValue;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Barrier, Mutex};

const KEY: &str = "mfa-encryption-key-for-tests-0123456789";
const VERIFY_IP: &str = "192.0.2.40";

fn app() -> TestApp {
    TestApp::unthrottled(&[("mfa_encryption_key", KEY), ("mfa_rate_limit", "1000")])
}

/// A user with two-factor login on.
struct Enrolled {
    name: &'static str,
    secret: Vec<u8>,
    recovery: Vec<String>,
    /// An access token from before two-factor login was on.
    access: String,
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

fn enroll_start(app: &TestApp, token: &str) -> TestResponse {
    app.call(Method::POST, "/auth/mfa/totp/enroll", Some(token), None)
}

fn confirm(app: &TestApp, token: &str, code: &str) -> TestResponse {
    app.call(
        Method::POST,
        "/auth/mfa/totp/confirm",
        Some(token),
        Some(&json!({ "code": code })),
    )
}

fn secret_of(enrolment: &TestResponse) -> Vec<u8> {
    assert_eq!(enrolment.status, 200, "{}", enrolment.body);
    totp::decode_secret(enrolment.body["secret"].as_str().unwrap()).unwrap()
}

fn enrolled(app: &TestApp, name: &'static str) -> Enrolled {
    let access = app.user_token(name);
    let secret = secret_of(&enroll_start(app, &access));
    let code = fresh_code(app, &secret);
    let res = confirm(app, &access, &code);
    assert_eq!(res.status, 200, "{}", res.body);
    let recovery = res.body["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    Enrolled {
        name,
        secret,
        recovery,
        access,
    }
}

/// The password step: answers the `mfa_token`.
fn challenge(app: &TestApp, name: &str) -> String {
    let res = app.login(name, PASSWORD);
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.body["mfa_required"], true, "{}", res.body);
    res.body["mfa_token"].as_str().unwrap().to_owned()
}

fn verify_request(app: &TestApp, mfa_token: &str, code: &str) -> http::Request<Vec<u8>> {
    app.request(Method::POST, "/auth/mfa/verify", VERIFY_IP)
        .header("content-type", "application/json")
        .body(
            json!({ "mfa_token": mfa_token, "code": code })
                .to_string()
                .into_bytes(),
        )
        .unwrap()
}

fn verify(app: &TestApp, mfa_token: &str, code: &str) -> TestResponse {
    app.send(verify_request(app, mfa_token, code))
}

fn disable(app: &TestApp, access: &str, password: &str, code: &str) -> TestResponse {
    app.call(
        Method::POST,
        "/auth/mfa/totp/disable",
        Some(access),
        Some(&json!({ "password": password, "code": code })),
    )
}

#[test]
fn enrolment_hands_out_a_secret_apps_read_and_confirmation_turns_it_on() {
    let app = app();
    let access = app.user_token("alice");
    let res = enroll_start(&app, &access);
    assert_eq!(res.status, 200, "{}", res.body);
    let body = &res.body;
    let secret = secret_of(&res);
    assert_eq!(secret.len(), 20, "160 bits");
    assert_eq!(
        (&body["algorithm"], &body["digits"], &body["period"]),
        (&json!("SHA1"), &json!(6), &json!(30))
    );
    let uri = body["otpauth_uri"].as_str().unwrap();
    assert!(
        uri.starts_with("otpauth://totp/secure-backend:alice?"),
        "{uri}"
    );
    for part in [
        format!("secret={}", body["secret"].as_str().unwrap()),
        "issuer=secure-backend".into(),
    ] {
        assert!(uri.contains(&part), "{uri} lacks {part}");
    }
    // Not on until confirmed: login still answers tokens.
    assert!(app.login("alice", PASSWORD).body["access_token"].is_string());
    let me = app.get("/auth/me", Some(&access));
    assert_eq!(me.body["mfa_enabled"], false);

    let res = confirm(&app, &access, &fresh_code(&app, &secret));
    assert_eq!(res.status, 200, "{}", res.body);
    let codes = res.body["recovery_codes"].as_array().unwrap();
    assert_eq!(codes.len(), 10);
    assert_eq!(app.get("/auth/me", Some(&access)).body["mfa_enabled"], true);
    // Now the password alone answers a challenge, never tokens.
    let login = app.login("alice", PASSWORD);
    assert_eq!(login.status, 200);
    let fields: Vec<&String> = login.body.as_object().unwrap().keys().collect();
    assert_eq!(fields, ["expires_in", "mfa_required", "mfa_token"]);
    assert_eq!(login.body["expires_in"], 300);
}

#[test]
fn confirmation_needs_a_code_of_the_pending_secret_and_expires() {
    let app = app();
    let access = app.user_token("alice");
    // Nothing pending.
    assert_error(&confirm(&app, &access, "123456"), 409, "mfa_not_pending");
    let first = secret_of(&enroll_start(&app, &access));
    // A wrong code.
    let wrong = totp::code_at(&first, step_now(&app) + 5);
    assert_error(&confirm(&app, &access, &wrong), 401, "invalid_mfa_code");
    // Enrolling again replaces the pending secret: the first one's codes no longer confirm.
    let second = secret_of(&enroll_start(&app, &access));
    assert_ne!(first, second);
    let code = fresh_code(&app, &first);
    assert_error(&confirm(&app, &access, &code), 401, "invalid_mfa_code");
    // A pending secret waits ten minutes at most.
    app.clock.advance_secs(600);
    let code = fresh_code(&app, &second);
    assert_error(&confirm(&app, &access, &code), 409, "mfa_not_pending");
    // Only 6 digits confirm.
    assert_error(&confirm(&app, &access, "12345"), 400, "validation_error");
    // Once on, enrolling again is refused until it is turned off.
    let user = enrolled(&app, "bob");
    assert_error(
        &enroll_start(&app, &user.access),
        409,
        "mfa_already_enabled",
    );
}

#[test]
fn the_second_step_answers_a_session_like_a_login() {
    let app = app();
    let user = enrolled(&app, "alice");
    let token = challenge(&app, user.name);
    let res = verify(&app, &token, &fresh_code(&app, &user.secret));
    let tokens = pair(&res);
    assert_access_works(&app, &tokens.access, "after the second step");
    assert_refresh_works(&app, &tokens.refresh, "after the second step");
}

/// RFC 6238 §5.2: one step of tolerance either side, and no more.
#[test]
fn codes_of_the_current_step_and_one_either_side_pass_and_no_others() {
    let app = app();
    let user = enrolled(&app, "alice");
    // Each case at a later step than the one before, so none is a replay.
    let step_ms = totp::STEP_SECS * 1000;
    for (offset, passes) in [(-1i64, true), (0, true), (1, true), (-2, false), (2, false)] {
        // The first and the last millisecond of a step.
        for edge_ms in [0, step_ms - 1] {
            app.clock.advance_secs(10 * totp::STEP_SECS);
            let into_step = app.clock.now_ms() % step_ms;
            app.clock.advance_ms(step_ms - into_step + edge_ms);
            let step = (step_now(&app) as i64 + offset) as u64;
            let token = challenge(&app, user.name);
            let res = verify(&app, &token, &totp::code_at(&user.secret, step));
            if passes {
                assert_eq!(
                    res.status, 200,
                    "offset {offset}, edge {edge_ms}: {}",
                    res.body
                );
            } else {
                assert_error(&res, 401, "invalid_mfa_code");
            }
        }
    }
}

#[test]
fn a_used_code_is_refused_again() {
    let app = app();
    let user = enrolled(&app, "alice");
    let code = fresh_code(&app, &user.secret);
    assert_eq!(verify(&app, &challenge(&app, user.name), &code).status, 200);
    // The same code, within its window, with a new challenge.
    app.clock.advance_secs(20);
    let res = verify(&app, &challenge(&app, user.name), &code);
    assert_error(&res, 401, "invalid_mfa_code");
    // And a code of an earlier step than the used one.
    let earlier = totp::code_at(&user.secret, step_now(&app) - 1);
    let res = verify(&app, &challenge(&app, user.name), &earlier);
    assert_error(&res, 401, "invalid_mfa_code");
    // The code that confirmed the enrolment is used too.
    let app = self::app();
    let access = app.user_token("bob");
    let secret = secret_of(&enroll_start(&app, &access));
    let code = fresh_code(&app, &secret);
    assert_eq!(confirm(&app, &access, &code).status, 200);
    let res = verify(&app, &challenge(&app, "bob"), &code);
    assert_error(&res, 401, "invalid_mfa_code");
}

#[test]
fn twenty_parallel_verifications_with_one_code_give_exactly_one_session() {
    let app = app();
    let user = enrolled(&app, "alice");
    let code = fresh_code(&app, &user.secret);
    let token = challenge(&app, user.name);
    let results = in_parallel(20, |_| verify(&app, &token, &code));
    let ok: Vec<_> = results.iter().filter(|r| r.status == 200).collect();
    assert_eq!(
        ok.len(),
        1,
        "{:?}",
        results.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    for res in results.iter().filter(|r| r.status != 200) {
        assert_error(res, 401, "invalid_mfa_token");
    }
    assert_eq!(app.events_named("mfa_success").len(), 1);
}

#[test]
fn twenty_parallel_uses_of_one_code_turn_two_factor_login_off_exactly_once() {
    // Past the lockout threshold, parallel attempts would be refused before
    // their code is checked: raise it, so every one reaches the code.
    let app = TestApp::unthrottled(&[("mfa_encryption_key", KEY), ("lockout_threshold", "100")]);
    let user = enrolled(&app, "alice");
    let code = fresh_code(&app, &user.secret);
    let results = in_parallel(20, |_| disable(&app, &user.access, PASSWORD, &code));
    let statuses: Vec<u16> = results.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses.iter().filter(|&&s| s == 204).count(),
        1,
        "{statuses:?}"
    );
    for res in results.iter().filter(|r| r.status != 204) {
        // Refused as used (counted), as off already, or busy: never a second success.
        assert!(
            matches!(
                res.code(),
                "invalid_mfa_code" | "mfa_not_enabled" | "account_busy"
            ),
            "{}",
            res.body
        );
    }
    assert_eq!(app.events_named("mfa_disabled").len(), 1);
}

#[test]
fn each_recovery_code_works_once() {
    let app = app();
    let user = enrolled(&app, "alice");
    let first = &user.recovery[0];
    let res = verify(&app, &challenge(&app, user.name), first);
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(app.events_named("mfa_recovery_code_used").len(), 1);
    // Used: refused, also written otherwise (case, no dash).
    for again in [first.clone(), first.to_uppercase(), first.replace('-', "")] {
        let res = verify(&app, &challenge(&app, user.name), &again);
        assert_error(&res, 401, "invalid_mfa_code");
    }
    // The others still work, each once, whatever the case.
    let second = user.recovery[1].to_uppercase();
    assert_eq!(
        verify(&app, &challenge(&app, user.name), &second).status,
        200
    );
    assert_error(
        &verify(&app, &challenge(&app, user.name), &second),
        401,
        "invalid_mfa_code",
    );
    // A made-up one of the right shape.
    let res = verify(
        &app,
        &challenge(&app, user.name),
        "abcd-efgh-jkmn-pqrs-tuvw-xyz2",
    );
    assert_error(&res, 401, "invalid_mfa_code");
}

#[test]
fn wrong_codes_count_toward_the_lockout_like_wrong_passwords() {
    let app = app();
    let user = enrolled(&app, "alice");
    let wrong = |app: &TestApp| {
        let code = totp::code_at(&user.secret, step_now(app) + 7);
        verify(app, &challenge(app, user.name), &code)
    };
    // Four wrong codes and one wrong password: five failures lock.
    for _ in 0..4 {
        assert_error(&wrong(&app), 401, "invalid_mfa_code");
    }
    assert_error(
        &app.login(user.name, "wrong password"),
        401,
        "invalid_credentials",
    );
    assert_eq!(app.events_named("account_locked").len(), 1);
    let res = app.login(user.name, PASSWORD);
    assert_error(&res, 423, "account_locked");

    // A right second factor ends the streak; a right password alone does not.
    let app = self::app();
    let user = enrolled(&app, "alice");
    for _ in 0..4 {
        assert_error(&wrong(&app), 401, "invalid_mfa_code");
    }
    let code = fresh_code(&app, &user.secret);
    assert_eq!(verify(&app, &challenge(&app, user.name), &code).status, 200);
    for _ in 0..4 {
        assert_error(&wrong(&app), 401, "invalid_mfa_code");
    }
    // Password steps in between neither end nor extend the streak.
    for _ in 0..3 {
        challenge(&app, user.name);
    }
    assert!(app.events_named("account_locked").is_empty());
    assert_error(&wrong(&app), 401, "invalid_mfa_code");
    assert_eq!(app.events_named("account_locked").len(), 1);
}

#[test]
fn a_locked_account_refuses_the_second_step_too() {
    let app = app();
    let user = enrolled(&app, "alice");
    let token = challenge(&app, user.name);
    for _ in 0..5 {
        app.login(user.name, "wrong password");
    }
    let code = fresh_code(&app, &user.secret);
    assert_error(&verify(&app, &token, &code), 423, "account_locked");
}

#[test]
fn an_mfa_token_expires_and_works_once() {
    let app = app();
    let user = enrolled(&app, "alice");
    // Expired: five minutes, and the few seconds of tolerance between instances.
    let token = challenge(&app, user.name);
    app.clock.advance_secs(300 + 6);
    let code = totp::code_at(&user.secret, step_now(&app));
    assert_error(&verify(&app, &token, &code), 401, "invalid_mfa_token");
    // Just inside its life it works, and then never again.
    let token = challenge(&app, user.name);
    app.clock.advance_secs(299);
    let code = totp::code_at(&user.secret, step_now(&app));
    assert_eq!(verify(&app, &token, &code).status, 200);
    let next = fresh_code(&app, &user.secret);
    assert_error(&verify(&app, &token, &next), 401, "invalid_mfa_token");
    // A wrong code spends it too: guessing needs the password each time.
    let token = challenge(&app, user.name);
    let wrong = totp::code_at(&user.secret, step_now(&app) + 9);
    assert_error(&verify(&app, &token, &wrong), 401, "invalid_mfa_code");
    let right = fresh_code(&app, &user.secret);
    assert_error(&verify(&app, &token, &right), 401, "invalid_mfa_token");
    // Only the latest login's token is valid.
    let older = challenge(&app, user.name);
    let newer = challenge(&app, user.name);
    let code = fresh_code(&app, &user.secret);
    assert_error(&verify(&app, &older, &code), 401, "invalid_mfa_token");
    assert_eq!(verify(&app, &newer, &code).status, 200);
}

#[test]
fn an_mfa_token_is_neither_an_access_nor_a_refresh_token_nor_the_other_way_round() {
    let app = app();
    let user = enrolled(&app, "alice");
    let token = challenge(&app, user.name);
    for path in ["/auth/protected", "/auth/me"] {
        assert_error(&app.get(path, Some(&token)), 401, "invalid_token");
    }
    assert_error(
        &app.call(Method::POST, "/auth/mfa/totp/enroll", Some(&token), None),
        401,
        "invalid_token",
    );
    assert_refresh_refused(&app, &token, "an mfa_token as a refresh token");
    // And an access or refresh token is no mfa_token.
    let code = fresh_code(&app, &user.secret);
    let tokens = pair(&verify(&app, &token, &code));
    for not_mfa in [&tokens.access, &tokens.refresh, &user.access] {
        let code = fresh_code(&app, &user.secret);
        assert_error(&verify(&app, not_mfa, &code), 401, "invalid_mfa_token");
    }
    // Nor is another user's mfa_token good for this user's code.
    let bob = enrolled(&app, "bob");
    let bobs = challenge(&app, bob.name);
    let alices_code = fresh_code(&app, &user.secret);
    let res = verify(&app, &bobs, &alices_code);
    assert_error(&res, 401, "invalid_mfa_code");
}

#[test]
fn the_secret_is_sealed_at_rest() {
    let app = app();
    let user = enrolled(&app, "alice");
    let dump: Vec<u8> = app
        .store
        .snapshot()
        .into_iter()
        .flat_map(|(k, v)| [k.into_bytes(), v].concat())
        .collect();
    let dump = String::from_utf8_lossy(&dump).to_string();
    let encoded = totp::encode_secret(&user.secret);
    let hex: String = user.secret.iter().map(|b| format!("{b:02x}")).collect();
    for form in [&encoded, &encoded.to_lowercase(), &hex] {
        assert!(
            !dump.contains(form.as_str()),
            "the store holds the secret as {form}"
        );
    }
    assert!(
        !dump.contains(&user.recovery[0]),
        "recovery codes are stored as hashes only"
    );
    // The store alone does not open it: under another key, the code checks fail closed.
    let other = TestApp::unthrottled(&[
        ("mfa_encryption_key", "another-key-of-at-least-32-bytes-000"),
        ("mfa_rate_limit", "1000"),
    ]);
    for (key, value) in app.store.snapshot() {
        other.store.set(&key, &value).unwrap();
    }
    other
        .clock
        .advance_ms(app.clock.now_ms() - other.clock.now_ms());
    let token = challenge(&other, user.name);
    let code = fresh_code(&other, &user.secret);
    let res = verify(&other, &token, &code);
    assert_error(&res, 500, "internal_error");
    let errors = other.events_named("config_error");
    assert!(
        errors
            .iter()
            .any(|e| e["reason"].as_str().unwrap().contains("another key")),
        "{errors:?}"
    );
}

#[test]
fn without_a_key_outside_the_store_enrolment_is_refused() {
    let app = TestApp::unthrottled(&[]);
    let access = app.user_token("alice");
    assert_error(&enroll_start(&app, &access), 500, "internal_error");
    let errors = app.events_named("config_error");
    assert!(errors[0]["reason"]
        .as_str()
        .unwrap()
        .contains("mfa_encryption_key"));
    // jwt_secret is enough: the key is derived from it.
    let app = TestApp::unthrottled(&[("jwt_secret", "a-jwt-secret-of-at-least-32-bytes-0000")]);
    let access = app.user_token("alice");
    assert_eq!(enroll_start(&app, &access).status, 200);
}

#[test]
fn turning_it_off_needs_the_password_and_a_code() {
    let app = app();
    let user = enrolled(&app, "alice");
    let code = fresh_code(&app, &user.secret);
    assert_error(
        &disable(&app, &user.access, "wrong password", &code),
        401,
        "invalid_credentials",
    );
    let wrong = totp::code_at(&user.secret, step_now(&app) + 8);
    assert_error(
        &disable(&app, &user.access, PASSWORD, &wrong),
        401,
        "invalid_mfa_code",
    );
    assert_error(
        &disable(&app, &user.access, PASSWORD, "nonsense"),
        400,
        "validation_error",
    );
    assert_no_content(&disable(&app, &user.access, PASSWORD, &code));
    assert_eq!(
        app.get("/auth/me", Some(&user.access)).body["mfa_enabled"],
        false
    );
    assert!(app.login(user.name, PASSWORD).body["access_token"].is_string());
    assert_error(
        &disable(&app, &user.access, PASSWORD, &code),
        409,
        "mfa_not_enabled",
    );
    // A recovery code does too (the device is lost), and enrolment can start over.
    let user = enrolled(&app, "bob");
    assert_no_content(&disable(&app, &user.access, PASSWORD, &user.recovery[3]));
    assert_eq!(enroll_start(&app, &user.access).status, 200);
    assert_eq!(app.events_named("mfa_disabled").len(), 2);
}

#[test]
fn an_admin_resets_it_for_a_user_who_lost_the_device() {
    let app = app();
    let admin = app.admin_token("root");
    let user = enrolled(&app, "alice");
    let path = "/admin/users/alice/mfa/reset";
    assert_error(
        &app.call(Method::POST, path, Some(&user.access), None),
        403,
        "forbidden",
    );
    assert_no_content(&app.call(Method::POST, path, Some(&admin), None));
    let reset = app.events_named("mfa_reset");
    assert_eq!(reset.len(), 1);
    assert_eq!(
        (&reset[0]["username"], &reset[0]["target"]),
        (&json!("root"), &json!("alice"))
    );
    assert!(app.login(user.name, PASSWORD).body["access_token"].is_string());
    let shown = app.get("/admin/users/alice", Some(&admin));
    assert_eq!(shown.body["mfa_enabled"], false);
    assert_error(
        &app.call(
            Method::POST,
            "/admin/users/nobody/mfa/reset",
            Some(&admin),
            None,
        ),
        404,
        "user_not_found",
    );
}

#[test]
fn the_second_step_has_its_own_rate_limit_per_client() {
    let app = TestApp::unthrottled(&[("mfa_encryption_key", KEY), ("mfa_rate_limit", "2")]);
    let user = enrolled(&app, "alice");
    for _ in 0..2 {
        let wrong = totp::code_at(&user.secret, step_now(&app) + 7);
        assert_error(
            &verify(&app, &challenge(&app, user.name), &wrong),
            401,
            "invalid_mfa_code",
        );
    }
    let token = challenge(&app, user.name);
    let code = totp::code_at(&user.secret, step_now(&app));
    let res = verify(&app, &token, &code);
    assert_error(&res, 429, "rate_limited");
    // Refused before the token was spent: once the window has passed, it still works.
    app.clock.advance_secs(60);
    let code = totp::code_at(&user.secret, step_now(&app));
    assert_eq!(verify(&app, &token, &code).status, 200);
}

#[test]
fn no_audit_line_holds_a_secret_or_a_code() {
    let app = app();
    let user = enrolled(&app, "alice");
    let code = fresh_code(&app, &user.secret);
    let token = challenge(&app, user.name);
    verify(&app, &token, &code);
    verify(&app, &challenge(&app, user.name), &user.recovery[0]);
    verify(&app, &challenge(&app, user.name), "000000");
    let lines = app.audit.lines().join("\n");
    let encoded = totp::encode_secret(&user.secret);
    for needle in [encoded.as_str(), &code, &user.recovery[0], "000000", &token] {
        assert!(!lines.contains(needle), "an audit line holds {needle}");
    }
    for event in [
        "mfa_enrollment_started",
        "mfa_enrolled",
        "mfa_challenge",
        "mfa_success",
        "mfa_failure",
        "mfa_recovery_code_used",
    ] {
        let events: Vec<Value> = app.events_named(event);
        assert!(!events.is_empty(), "no {event}");
        for e in &events {
            assert_audit_fields(e);
            assert_eq!(e["username"], "alice", "{e}");
        }
    }
}

/// A second step that checked its code and waits for the record's lease,
/// and another login's second step with the same code (a phisher relaying
/// it): exactly one is accepted. The re-check of the step under the lease
/// decides it (review of issue 11: no other test failed without it).
#[test]
fn one_code_in_two_second_steps_in_flight_is_accepted_once() {
    let app = app();
    let user = enrolled(&app, "alice");
    let code = fresh_code(&app, &user.secret);
    let first = challenge(&app, user.name);
    let (tx, rx) = mpsc::channel();
    let go = Barrier::new(2);
    // The first `increment` of a lease key says it arrived, then waits.
    let (held, tx) = (AtomicBool::new(false), Mutex::new(tx));
    let held = BeforeIncrement {
        inner: &app.store,
        before: |key: &str, _| {
            if key.starts_with("lease:") && !held.swap(true, Ordering::SeqCst) {
                tx.lock().unwrap().send(()).unwrap();
                go.wait();
            }
        },
    };
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| app.send_through(&held, verify_request(&app, &first, &code)));
        rx.recv_timeout(std::time::Duration::from_secs(20))
            .expect("the first second step reaches the lease");
        let b = verify(&app, &challenge(&app, user.name), &code);
        go.wait();
        (a.join().unwrap(), b)
    });
    let ok = [&a, &b].iter().filter(|r| r.status == 200).count();
    assert_eq!(
        ok, 1,
        "first {} {}, second {} {}",
        a.status, a.body, b.status, b.body
    );
}

/// An `mfa_token` names the account it was issued for: after a password
/// change (a new account id), it opens nothing.
#[test]
fn an_mfa_token_from_before_a_password_change_is_refused() {
    let app = app();
    let user = enrolled(&app, "alice");
    let token = challenge(&app, user.name);
    let change = app.call(
        Method::POST,
        "/auth/password",
        Some(&user.access),
        Some(&json!({ "current_password": PASSWORD, "new_password": "a brand new passphrase" })),
    );
    assert_no_content(&change);
    let code = fresh_code(&app, &user.secret);
    assert_error(&verify(&app, &token, &code), 401, "invalid_mfa_token");
}

/// Tokens signed with the real key, each with both kinds' claims, so only
/// the type and audience checks tell them apart.
#[test]
fn only_type_and_audience_tell_an_mfa_token_from_an_access_token() {
    use jwt_simple::prelude::*;
    const JWT: &str = "a-jwt-secret-of-at-least-32-bytes-0000";
    let app = TestApp::unthrottled(&[("jwt_secret", JWT), ("mfa_rate_limit", "1000")]);
    let user = enrolled(&app, "alice");
    let challenge_number = {
        challenge(&app, user.name);
        let raw = app.store.get("mfa_challenge:alice").unwrap().unwrap();
        secure_backend::store::decode_counter(&raw).unwrap()
    };
    let mut account_id = None;
    app.edit_user("alice", |u| account_id = u.account_id.clone());
    let forge = |typ: &str, audience: &str| {
        let claims = json!({
            "role": "user", "typ": typ, "aid": account_id, "sid": 1, "challenge": challenge_number,
        });
        let now = Duration::from_secs(app.clock.now_secs());
        let mut claims = Claims::with_custom_claims(claims, Duration::from_secs(300))
            .with_subject("alice")
            .with_issuer("secure-backend")
            .with_audience(audience);
        claims.issued_at = Some(now);
        claims.invalid_before = Some(now);
        claims.expires_at = Some(now + Duration::from_secs(300));
        HS256Key::from_bytes(JWT.as_bytes())
            .authenticate(claims)
            .unwrap()
    };
    // The control: the real pairs pass.
    assert_access_works(&app, &forge("access", "secure-backend"), "control");
    // An access token's audience with the mfa type, and the other way round.
    for (typ, audience) in [("mfa", "secure-backend"), ("access", "secure-backend/mfa")] {
        assert_access_refused(
            &app,
            &forge(typ, audience),
            &format!("{typ} for {audience}"),
        );
    }
    for (typ, audience) in [
        ("access", "secure-backend/mfa"),
        ("mfa", "secure-backend"),
        ("access", "secure-backend"),
    ] {
        let code = fresh_code(&app, &user.secret);
        let res = verify(&app, &forge(typ, audience), &code);
        assert_error(&res, 401, "invalid_mfa_token");
    }
    let code = fresh_code(&app, &user.secret);
    let control = verify(&app, &forge("mfa", "secure-backend/mfa"), &code);
    assert_eq!(control.status, 200, "control: {}", control.body);
}

/// Setting `mfa_encryption_key` on a deployment whose secrets were sealed
/// under the key derived from `jwt_secret` breaks no enrolment; and a key
/// that opens nothing is the operator's error, never the user's: those
/// 500s count nothing toward the lockout.
#[test]
fn a_new_sealing_key_keeps_earlier_enrolments_and_a_wrong_one_counts_nothing() {
    let jwt = "a-jwt-secret-of-at-least-32-bytes-0000";
    let mut app = TestApp::unthrottled(&[("jwt_secret", jwt), ("mfa_rate_limit", "1000")]);
    let user = enrolled(&app, "alice");
    app.vars.insert("mfa_encryption_key".into(), KEY.into());
    for _ in 0..3 {
        let code = fresh_code(&app, &user.secret);
        assert_eq!(verify(&app, &challenge(&app, user.name), &code).status, 200);
    }
    let recovery = &user.recovery[0];
    assert_eq!(
        verify(&app, &challenge(&app, user.name), recovery).status,
        200
    );
    // New enrolments are sealed under the new key.
    let bob = enrolled(&app, "bob");
    let code = fresh_code(&app, &bob.secret);
    assert_eq!(verify(&app, &challenge(&app, bob.name), &code).status, 200);

    // jwt_secret rotated as well: alice's secret opens with neither key.
    app.vars.insert(
        "jwt_secret".into(),
        "another-jwt-secret-of-32-bytes-000000".into(),
    );
    for _ in 0..6 {
        let code = fresh_code(&app, &user.secret);
        let res = verify(&app, &challenge(&app, user.name), &code);
        assert_error(&res, 500, "internal_error");
        let res = verify(&app, &challenge(&app, user.name), &user.recovery[1]);
        assert_error(&res, 500, "internal_error");
    }
    // The operator puts jwt_secret back: no lock, nothing counted.
    app.vars.insert("jwt_secret".into(), jwt.into());
    let code = fresh_code(&app, &user.secret);
    assert_eq!(verify(&app, &challenge(&app, user.name), &code).status, 200);
    assert!(app.events_named("account_locked").is_empty());
}

/// Turning two-factor login on ends every other session (review of issue
/// 11): a session started with the password alone, by whoever else knew
/// it, must not keep refreshing for a month. The confirming one lives on.
#[test]
fn turning_two_factor_login_on_ends_the_other_sessions() {
    let app = app();
    assert_eq!(app.register("alice", PASSWORD).status, 201);
    let other = pair(&app.login("alice", PASSWORD));
    let mine = pair(&app.login("alice", PASSWORD));
    let secret = secret_of(&enroll_start(&app, &mine.access));
    let code = fresh_code(&app, &secret);
    assert_eq!(confirm(&app, &mine.access, &code).status, 200);
    assert_refresh_refused(&app, &other.refresh, "a session from before");
    assert_access_refused(&app, &other.access, "a session from before");
    assert_access_works(&app, &mine.access, "the confirming session");
    assert_refresh_works(&app, &mine.refresh, "the confirming session");
}
