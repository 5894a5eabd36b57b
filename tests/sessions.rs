//! Sessions (issue 9): rotated refresh tokens, reuse detection, session
//! limits and lifetimes, and logout in its three scopes.

mod common;

use common::*;
use ct_codecs::{Base64UrlSafeNoPadding as B64, Decoder, Encoder};
use http::{Method, Request};
use secure_backend::clock::Clock;
use secure_backend::domain::{Role, User, Username};
use secure_backend::store::{KeyValue, MemoryStore};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The rate limits are not what these tests test.
fn app_with(extra: &[(&str, &str)]) -> TestApp {
    TestApp::unthrottled(extra)
}

fn app() -> TestApp {
    app_with(&[])
}

fn send(app: &TestApp, req: Request<Vec<u8>>) -> TestResponse {
    app.send(req)
}

fn login(app: &TestApp, name: &str) -> Pair {
    pair(&app.login(name, PASSWORD))
}

fn refresh(app: &TestApp, token: &str) -> TestResponse {
    app.post_json(
        "/auth/refresh",
        &json!({ "refresh_token": token }),
        "192.0.2.40",
    )
}

fn refresh_raw(app: &TestApp, content_type: &str, body: &[u8]) -> TestResponse {
    send(
        app,
        app.request(Method::POST, "/auth/refresh", "192.0.2.40")
            .header("content-type", content_type)
            .body(body.to_vec())
            .unwrap(),
    )
}

/// POST /auth/logout{query} with `access` as Bearer and an optional JSON body.
fn logout(app: &TestApp, access: &str, query: &str, body: Option<&Value>) -> TestResponse {
    let mut req = app
        .request(Method::POST, &format!("/auth/logout{query}"), "192.0.2.50")
        .header("authorization", format!("Bearer {access}"));
    let bytes = match body {
        Some(body) => {
            req = req.header("content-type", "application/json");
            body.to_string().into_bytes()
        }
        None => Vec::new(),
    };
    send(app, req.body(bytes).unwrap())
}

fn stat(app: &TestApp, admin: &str, name: &str) -> i64 {
    let res = app.get("/admin/dashboard", Some(admin));
    assert_eq!(res.status, 200, "{}", res.body);
    res.body["stats"][name]
        .as_i64()
        .unwrap_or_else(|| panic!("no counter {name}: {}", res.body))
}

/// The claims of an access token, read without verifying it.
fn claims(access: &str) -> Value {
    let payload = access.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&B64::decode_to_vec(payload, None).unwrap()).unwrap()
}

/// A refresh token with some of its bytes changed: session number at 0..8,
/// sequence at 8..16, family secret at 16..48, token secret at 48..80, then
/// the username.
fn tamper(token: &str, edit: impl FnOnce(&mut Vec<u8>)) -> String {
    let mut bytes = B64::decode_to_vec(token, None).expect("base64url");
    edit(&mut bytes);
    B64::encode_to_string(bytes).unwrap()
}

fn set_number(bytes: &mut [u8], number: u64) {
    bytes[0..8].copy_from_slice(&number.to_be_bytes());
}

fn five_field_shape(res: &TestResponse, refresh_expires_in: u64) {
    assert_eq!(res.status, 200, "{}", res.body);
    let body = res.body.as_object().unwrap();
    let mut keys: Vec<&str> = body.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "access_token",
            "expires_in",
            "refresh_expires_in",
            "refresh_token",
            "token_type"
        ]
    );
    assert_eq!(res.body["token_type"], "Bearer");
    assert_eq!(res.body["expires_in"], 900);
    assert_eq!(res.body["refresh_expires_in"], refresh_expires_in);
    let access = res.body["access_token"].as_str().unwrap();
    assert_eq!(access.split('.').count(), 3, "the access token is a JWT");
    let refresh = res.body["refresh_token"].as_str().unwrap();
    assert!(!refresh.is_empty());
    assert!(!refresh.contains('.'), "never shaped like a JWT: {refresh}");
    assert!(
        refresh
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "base64url without padding: {refresh}"
    );
    assert_ne!(refresh, access);
}

// ---------------------------------------------------------------- shape

#[test]
fn login_answers_the_five_field_shape_with_an_opaque_refresh_token() {
    let app = app();
    app.register("alice", PASSWORD);
    let res = app.login("alice", PASSWORD);
    five_field_shape(&res, 604_800);
    let p = pair(&res);
    assert_access_works(&app, &p.access, "fresh login");
}

#[test]
fn a_refresh_answers_a_new_pair_and_retires_the_presented_token() {
    let app = app();
    app.register("alice", PASSWORD);
    let first = login(&app, "alice");
    let res = refresh(&app, &first.refresh);
    five_field_shape(&res, 604_800);
    let second = pair(&res);
    assert_ne!(second.refresh, first.refresh, "a new refresh token");
    assert_ne!(second.access, first.access, "a new access token");
    assert_access_works(&app, &second.access, "the refreshed access token");
    assert_eq!(claims(&second.access)["sub"], "alice");
    assert_eq!(
        claims(&second.access)["sid"],
        claims(&first.access)["sid"],
        "the same session"
    );
    // The new one refreshes in turn.
    let third = assert_refresh_works(&app, &second.refresh, "the rotated token");
    assert_access_works(&app, &third.access, "after two rotations");
    assert_eq!(app.events_named("token_refreshed").len(), 2);
}

// ---------------------------------------------------------------- reuse

#[test]
fn a_retired_refresh_token_revokes_the_whole_family() {
    let app = app();
    let admin = app.admin_token("root");
    app.register("alice", PASSWORD);
    let first = login(&app, "alice");
    let other = login(&app, "alice");
    let second = assert_refresh_works(&app, &first.refresh, "first rotation");
    let third = assert_refresh_works(&app, &second.refresh, "second rotation");
    assert_eq!(stat(&app, &admin, "refresh_token_reuse"), 0);

    // The first token comes back (two generations old): reuse.
    let reused = refresh(&app, &first.refresh);
    assert_error(&reused, 401, "invalid_token");

    // Every token of the family is dead on the very next request.
    assert_refresh_refused(&app, &third.refresh, "the family's current token");
    for (access, what) in [
        (&first.access, "first access"),
        (&second.access, "second access"),
        (&third.access, "current access"),
    ] {
        assert_access_refused(&app, access, what);
    }
    // The other session of the same account is not this family.
    assert_access_works(&app, &other.access, "another session");
    assert_refresh_works(&app, &other.refresh, "another session");

    let events = app.events_named("refresh_token_reuse");
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["username"], "alice");
    assert_audit_fields(&events[0]);
    assert_eq!(stat(&app, &admin, "refresh_token_reuse"), 1);
}

#[test]
fn the_just_retired_token_is_reuse_too() {
    let app = app();
    app.register("alice", PASSWORD);
    let first = login(&app, "alice");
    let second = assert_refresh_works(&app, &first.refresh, "rotation");
    assert_refresh_refused(&app, &first.refresh, "presented twice");
    assert_refresh_refused(&app, &second.refresh, "its successor");
    assert_access_refused(&app, &second.access, "its successor's access token");
    assert_eq!(app.events_named("refresh_token_reuse").len(), 1);
}

#[test]
fn twenty_parallel_refreshes_of_one_token_give_exactly_one_success() {
    let app = app();
    app.register("alice", PASSWORD);
    for round in 0..5 {
        let p = login(&app, "alice");
        let results = in_parallel(20, |_| refresh(&app, &p.refresh));
        let ok: Vec<&TestResponse> = results.iter().filter(|r| r.status == 200).collect();
        assert_eq!(
            ok.len(),
            1,
            "round {round}: {:?}",
            results.iter().map(|r| r.status).collect::<Vec<_>>()
        );
        for res in results.iter().filter(|r| r.status != 200) {
            assert_error(res, 401, "invalid_token");
        }
        // The token stays spent.
        assert_refresh_refused(&app, &p.refresh, "after the race");
    }
}

/// Holds every request's read of a session record until `n` requests have
/// read one, so that all of them see the token as current before any of
/// them spends it (bounded in real time: a request that never comes fails
/// the assertions instead of hanging the test).
struct Rendezvous<'s> {
    inner: &'s MemoryStore,
    arrived: AtomicUsize,
    n: usize,
}

impl KeyValue for Rendezvous<'_> {
    fn get(&self, key: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let value = self.inner.get(key)?;
        if key.starts_with("session:") && self.arrived.fetch_add(1, Ordering::SeqCst) < self.n {
            let deadline = Instant::now() + Duration::from_secs(10);
            while self.arrived.load(Ordering::SeqCst) < self.n && Instant::now() < deadline {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
        Ok(value)
    }
    fn set(&self, key: &str, value: &[u8]) -> anyhow::Result<()> {
        self.inner.set(key, value)
    }
    fn delete(&self, key: &str) -> anyhow::Result<()> {
        self.inner.delete(key)
    }
    fn increment(&self, key: &str, delta: i64) -> anyhow::Result<i64> {
        self.inner.increment(key, delta)
    }
}

#[test]
fn twenty_refreshes_that_all_saw_the_token_as_current_still_give_exactly_one_success() {
    let app = app();
    app.register("alice", PASSWORD);
    for round in 0..3 {
        let p = login(&app, "alice");
        let store = Rendezvous {
            inner: &app.store,
            arrived: AtomicUsize::new(0),
            n: 20,
        };
        let results = in_parallel(20, |_| {
            app.send_through(
                &store,
                app.request(Method::POST, "/auth/refresh", "192.0.2.40")
                    .header("content-type", "application/json")
                    .body(
                        json!({ "refresh_token": p.refresh })
                            .to_string()
                            .into_bytes(),
                    )
                    .unwrap(),
            )
        });
        let ok = results.iter().filter(|r| r.status == 200).count();
        assert_eq!(
            ok,
            1,
            "round {round}: {:?}",
            results.iter().map(|r| r.status).collect::<Vec<_>>()
        );
        for res in results.iter().filter(|r| r.status != 200) {
            assert_error(res, 401, "invalid_token");
        }
    }
}

// ---------------------------------------------------------------- the user now

#[test]
fn a_deleted_users_refresh_token_fails() {
    let app = app();
    app.register("alice", PASSWORD);
    let p = login(&app, "alice");
    app.store
        .delete(&User::key(&Username::parse("alice").unwrap()))
        .unwrap();
    assert_refresh_refused(&app, &p.refresh, "record deleted");
    assert_access_refused(&app, &p.access, "record deleted");
}

#[test]
fn a_user_deleted_by_an_admin_cannot_refresh_even_after_the_name_returns() {
    let app = app();
    let admin = app.admin_token("root");
    app.register("alice", PASSWORD);
    let p = login(&app, "alice");
    let res = send(
        &app,
        app.request(Method::DELETE, "/admin/users/alice", "192.0.2.60")
            .header("authorization", format!("Bearer {admin}"))
            .body(Vec::new())
            .unwrap(),
    );
    assert_no_content(&res);
    assert_refresh_refused(&app, &p.refresh, "deleted by an admin");
    assert_eq!(app.register("alice", PASSWORD).status, 201);
    // The new account's first session takes the same number and slot.
    let fresh = login(&app, "alice");
    assert_refresh_refused(&app, &p.refresh, "name registered again");
    assert_refresh_works(&app, &fresh.refresh, "the new account's own session");
}

#[test]
fn a_refreshed_access_token_carries_the_users_current_role() {
    let app = app();
    app.register("alice", PASSWORD);
    let p = login(&app, "alice");
    assert_eq!(claims(&p.access)["role"], "user");
    app.edit_user("alice", |u| u.role = Role::Admin);
    let promoted = assert_refresh_works(&app, &p.refresh, "promoted");
    assert_eq!(claims(&promoted.access)["role"], "admin");
    assert_eq!(
        app.get("/admin/dashboard", Some(&promoted.access)).status,
        200
    );
    app.edit_user("alice", |u| u.role = Role::User);
    let demoted = assert_refresh_works(&app, &promoted.refresh, "demoted");
    assert_eq!(claims(&demoted.access)["role"], "user");
    assert_error(
        &app.get("/admin/dashboard", Some(&demoted.access)),
        403,
        "forbidden",
    );
}

// ---------------------------------------------------------------- refusals

#[test]
fn unknown_malformed_expired_and_revoked_refresh_tokens_get_the_same_answer() {
    let app = app_with(&[("refresh_token_ttl_seconds", "60")]);
    app.register("alice", PASSWORD);
    app.register("bob", PASSWORD);

    let expired = login(&app, "alice").refresh;
    app.clock.advance_secs(60);

    let revoked = login(&app, "alice");
    assert_no_content(&logout(&app, &revoked.access, "", None));

    let live = login(&app, "alice").refresh;
    let unknown_family = tamper(&live, |b| b[20] ^= 0xff);
    let unknown_number = tamper(&live, |b| set_number(b, 999));
    let unknown_user = tamper(&live, |b| {
        b.truncate(80);
        b.extend_from_slice(b"nobody");
    });
    let bob = login(&app, "bob").refresh;
    let bob_name_alice_secrets = tamper(&bob, |b| {
        let fixed = B64::decode_to_vec(&live, None).unwrap();
        b[..80].copy_from_slice(&fixed[..80]);
    });

    let cases: Vec<(&str, String)> = vec![
        ("expired", expired),
        ("revoked by logout", revoked.refresh),
        ("unknown family secret", unknown_family),
        ("unknown session number", unknown_number),
        ("unknown user", unknown_user),
        ("another user's name", bob_name_alice_secrets),
        ("malformed", "not a refresh token".into()),
        ("empty", String::new()),
        ("base64url but short", "AAAA".into()),
        ("JWT-shaped", "a.b.c".into()),
        ("too long", "A".repeat(5000)),
    ];
    let reference = refresh(&app, "not-even-close");
    assert_error(&reference, 401, "invalid_token");
    for (what, token) in &cases {
        let res = refresh(&app, token);
        assert_error(&res, 401, "invalid_token");
        assert_eq!(res.raw, reference.raw, "{what}: same body");
        assert_eq!(
            res.header("www-authenticate"),
            reference.header("www-authenticate"),
            "{what}: same challenge"
        );
    }
    // None of these was reuse: nothing was revoked, the live token still works.
    assert!(app.events_named("refresh_token_reuse").is_empty());
    assert_refresh_works(&app, &live, "untouched by the forgeries");
}

#[test]
fn an_access_token_is_not_a_refresh_token_and_a_refresh_token_is_not_an_access_token() {
    let app = app();
    app.register("alice", PASSWORD);
    let p = login(&app, "alice");
    assert_refresh_refused(&app, &p.access, "access token as refresh token");
    assert_access_refused(&app, &p.refresh, "refresh token as access token");
    assert_error(&app.get("/auth/me", Some(&p.refresh)), 401, "invalid_token");
    assert_error(&logout(&app, &p.refresh, "", None), 401, "invalid_token");
    // Neither refusal spent or ended anything.
    assert_access_works(&app, &p.access, "the real access token");
    assert_refresh_works(&app, &p.refresh, "the real refresh token");
}

#[test]
fn the_refresh_body_is_validated() {
    let app = app();
    app.register("alice", PASSWORD);
    let p = login(&app, "alice");
    assert_error(
        &refresh_raw(&app, "application/json", b"{}"),
        400,
        "validation_error",
    );
    assert_error(
        &refresh_raw(
            &app,
            "application/json",
            json!({ "refresh_token": p.refresh, "extra": 1 })
                .to_string()
                .as_bytes(),
        ),
        400,
        "validation_error",
    );
    assert_error(
        &refresh_raw(
            &app,
            "application/json",
            json!({ "token": p.refresh }).to_string().as_bytes(),
        ),
        400,
        "validation_error",
    );
    assert_error(
        &refresh_raw(&app, "application/json", br#"{"refresh_token": 5}"#),
        400,
        "validation_error",
    );
    assert_error(
        &refresh_raw(
            &app,
            "text/plain",
            json!({ "refresh_token": p.refresh }).to_string().as_bytes(),
        ),
        415,
        "unsupported_media_type",
    );
    assert_error(
        &refresh_raw(
            &app,
            "application/x-www-form-urlencoded",
            format!("refresh_token={}", p.refresh).as_bytes(),
        ),
        415,
        "unsupported_media_type",
    );
    assert_error(
        &refresh_raw(&app, "application/json", br#"{"refresh_token": "#),
        400,
        "invalid_json",
    );
    // No refused body spent the token.
    assert_refresh_works(&app, &p.refresh, "after the refused bodies");
}

// ---------------------------------------------------------------- lifetimes

#[test]
fn a_refresh_token_expires_after_its_ttl() {
    let app = app_with(&[("refresh_token_ttl_seconds", "60")]);
    app.register("alice", PASSWORD);
    let res = app.login("alice", PASSWORD);
    assert_eq!(res.body["refresh_expires_in"], 60);
    let first = pair(&res);
    app.clock.advance_secs(59);
    let second = assert_refresh_works(&app, &first.refresh, "one second before expiry");
    app.clock.advance_secs(59);
    let third = assert_refresh_works(&app, &second.refresh, "a rotated token has its own ttl");
    app.clock.advance_secs(60);
    assert_refresh_refused(&app, &third.refresh, "at its ttl");
    // An expired token is not reuse.
    assert!(app.events_named("refresh_token_reuse").is_empty());
}

#[test]
fn the_default_refresh_ttl_is_a_week() {
    let app = app();
    app.register("alice", PASSWORD);
    let p = login(&app, "alice");
    app.clock.advance_secs(604_799);
    let q = assert_refresh_works(&app, &p.refresh, "just inside a week");
    app.clock.advance_secs(604_800);
    assert_refresh_refused(&app, &q.refresh, "a week after its issue");
}

#[test]
fn a_session_ends_at_session_ttl_however_often_it_is_refreshed() {
    let app = app_with(&[
        ("refresh_token_ttl_seconds", "60"),
        ("session_ttl_seconds", "150"),
    ]);
    app.register("alice", PASSWORD);
    let mut p = login(&app, "alice");
    // (seconds since login, refresh_expires_in expected)
    for (at, expected) in [(50, 60), (100, 50), (140, 10), (149, 1)] {
        let since = (app.clock.now_ms() - START_MS) / 1000;
        app.clock.advance_secs(at - since);
        let res = refresh(&app, &p.refresh);
        assert_eq!(res.status, 200, "at {at}s: {}", res.body);
        assert_eq!(
            res.body["refresh_expires_in"], expected,
            "capped by the session's remaining time at {at}s"
        );
        p = pair(&res);
    }
    app.clock.advance_secs(1);
    assert_refresh_refused(&app, &p.refresh, "session_ttl after login");
    // A new login is a new session.
    let fresh = login(&app, "alice");
    assert_refresh_works(&app, &fresh.refresh, "a new session");
}

#[test]
fn the_default_session_lasts_thirty_days_from_login() {
    let app = app();
    app.register("alice", PASSWORD);
    let mut p = login(&app, "alice");
    // Refreshed every six days: still ends thirty days after the login.
    for _ in 0..4 {
        app.clock.advance_secs(6 * 86_400);
        p = assert_refresh_works(&app, &p.refresh, "within thirty days");
    }
    // 24 days in: six days left, less than the week a token would have.
    app.clock.advance_secs(3 * 86_400);
    let res = refresh(&app, &p.refresh);
    assert_eq!(res.body["refresh_expires_in"], 3 * 86_400, "{}", res.body);
    p = pair(&res);
    app.clock.advance_secs(3 * 86_400);
    assert_refresh_refused(&app, &p.refresh, "thirty days after login");
}

#[test]
fn refresh_expires_in_at_login_is_capped_by_the_session() {
    let app = app_with(&[("session_ttl_seconds", "60")]);
    app.register("alice", PASSWORD);
    let res = app.login("alice", PASSWORD);
    assert_eq!(res.body["refresh_expires_in"], 60, "{}", res.body);
    let p = pair(&res);
    app.clock.advance_secs(60);
    assert_refresh_refused(&app, &p.refresh, "the session is over");
}

// ---------------------------------------------------------------- slots

#[test]
fn an_account_keeps_at_most_ten_sessions() {
    let app = app();
    app.register("alice", PASSWORD);
    let sessions: Vec<Pair> = (0..11).map(|_| login(&app, "alice")).collect();
    assert_refresh_refused(&app, &sessions[0].refresh, "the oldest, evicted");
    for (i, p) in sessions.iter().enumerate().skip(1) {
        let next = assert_refresh_works(&app, &p.refresh, &format!("session {i}"));
        assert_access_works(&app, &next.access, &format!("session {i}"));
    }
    // Eviction is not reuse.
    assert!(app.events_named("refresh_token_reuse").is_empty());
}

#[test]
fn each_login_past_ten_evicts_the_then_oldest_session() {
    let app = app();
    app.register("alice", PASSWORD);
    let sessions: Vec<Pair> = (0..15).map(|_| login(&app, "alice")).collect();
    for (i, p) in sessions.iter().enumerate() {
        if i < 5 {
            assert_refresh_refused(&app, &p.refresh, &format!("session {i}"));
        } else {
            assert_refresh_works(&app, &p.refresh, &format!("session {i}"));
        }
    }
}

// ---------------------------------------------------------------- logout

#[test]
fn a_local_logout_ends_this_session_only() {
    let app = app();
    app.register("alice", PASSWORD);
    let a = login(&app, "alice");
    let b = login(&app, "alice");
    let c = login(&app, "alice");

    assert_no_content(&logout(&app, &a.access, "", None));
    assert_access_refused(&app, &a.access, "logged out (default scope)");
    assert_refresh_refused(&app, &a.refresh, "logged out (default scope)");
    assert_access_works(&app, &b.access, "another session");

    assert_no_content(&logout(&app, &b.access, "?scope=local", None));
    assert_access_refused(&app, &b.access, "logged out (scope=local)");
    assert_refresh_refused(&app, &b.refresh, "logged out (scope=local)");

    assert_access_works(&app, &c.access, "the session left");
    let c2 = assert_refresh_works(&app, &c.refresh, "the session left");
    assert_access_works(&app, &c2.access, "the session left, refreshed");
    // A logged-out refresh token is not reuse.
    assert!(app.events_named("refresh_token_reuse").is_empty());
}

#[test]
fn a_local_logout_of_a_refreshed_session_ends_its_earlier_access_tokens_too() {
    let app = app();
    app.register("alice", PASSWORD);
    let a = login(&app, "alice");
    let a2 = assert_refresh_works(&app, &a.refresh, "rotation");
    assert_no_content(&logout(&app, &a2.access, "", None));
    assert_access_refused(&app, &a.access, "the session's first access token");
    assert_access_refused(&app, &a2.access, "the session's current access token");
    assert_refresh_refused(&app, &a2.refresh, "the session's current refresh token");
}

#[test]
fn a_local_logout_with_a_body_token_also_ends_that_session() {
    let app = app();
    app.register("alice", PASSWORD);
    let a = login(&app, "alice");
    let b = login(&app, "alice");
    let c = login(&app, "alice");
    let body = json!({ "refresh_token": b.refresh });
    assert_no_content(&logout(&app, &a.access, "", Some(&body)));
    assert_access_refused(&app, &a.access, "this session");
    assert_refresh_refused(&app, &a.refresh, "this session");
    assert_access_refused(&app, &b.access, "the session named in the body");
    assert_refresh_refused(&app, &b.refresh, "the session named in the body");
    assert_access_works(&app, &c.access, "a third session");
    assert_refresh_works(&app, &c.refresh, "a third session");
}

#[test]
fn a_local_logout_naming_its_own_refresh_token_ends_just_this_session() {
    let app = app();
    app.register("alice", PASSWORD);
    let a = login(&app, "alice");
    let b = login(&app, "alice");
    let body = json!({ "refresh_token": a.refresh });
    assert_no_content(&logout(&app, &a.access, "?scope=local", Some(&body)));
    assert_access_refused(&app, &a.access, "this session");
    assert_refresh_refused(&app, &a.refresh, "this session");
    assert_access_works(&app, &b.access, "another session");
    assert_refresh_works(&app, &b.refresh, "another session");
}

#[test]
fn a_global_logout_ends_every_session_and_later_logins_work() {
    let app = app();
    app.register("alice", PASSWORD);
    app.register("bob", PASSWORD);
    let a = login(&app, "alice");
    let b = login(&app, "alice");
    let b2 = assert_refresh_works(&app, &b.refresh, "rotation before the logout");
    let c = login(&app, "alice");
    let bob = login(&app, "bob");

    assert_no_content(&logout(&app, &c.access, "?scope=global", None));
    for (access, what) in [
        (&a.access, "a"),
        (&b.access, "b"),
        (&b2.access, "b rotated"),
        (&c.access, "c (the one logging out)"),
    ] {
        assert_access_refused(&app, access, what);
    }
    for (token, what) in [(&a.refresh, "a"), (&b2.refresh, "b"), (&c.refresh, "c")] {
        assert_refresh_refused(&app, token, what);
    }
    assert_access_works(&app, &bob.access, "another user");

    // Sessions started after it work, and refresh.
    let d = login(&app, "alice");
    assert_access_works(&app, &d.access, "a login after the global logout");
    let d2 = assert_refresh_works(&app, &d.refresh, "a login after the global logout");
    assert_access_works(&app, &d2.access, "refreshed after the global logout");
    assert_access_refused(&app, &a.access, "still dead");
}

#[test]
fn an_others_logout_keeps_only_the_current_session() {
    let app = app();
    app.register("alice", PASSWORD);
    let a = login(&app, "alice");
    let b = login(&app, "alice");
    let c = login(&app, "alice");

    assert_no_content(&logout(&app, &b.access, "?scope=others", None));
    assert_access_refused(&app, &a.access, "an older session");
    assert_refresh_refused(&app, &a.refresh, "an older session");
    assert_access_refused(&app, &c.access, "a newer session");
    assert_refresh_refused(&app, &c.refresh, "a newer session");
    assert_access_works(&app, &b.access, "the current session");
    let b2 = assert_refresh_works(&app, &b.refresh, "the current session");
    assert_access_works(&app, &b2.access, "the current session, refreshed");

    let d = login(&app, "alice");
    assert_access_works(&app, &d.access, "a login after");
    assert_refresh_works(&app, &d.refresh, "a login after");
    assert_access_works(&app, &b2.access, "the kept session, still");
    // The kept session can still end on its own.
    assert_no_content(&logout(&app, &b2.access, "", None));
    assert_access_refused(&app, &b2.access, "the kept session, logged out");
    assert_access_works(&app, &d.access, "the newest session");
}

#[test]
fn a_bad_scope_or_an_unknown_query_parameter_is_refused_and_ends_nothing() {
    let app = app();
    app.register("alice", PASSWORD);
    let a = login(&app, "alice");
    let b = login(&app, "alice");
    for query in [
        "?scope=everywhere",
        "?scope=",
        "?scope",
        "?scope=GLOBAL",
        "?scope=local&scope=global",
        "?scope=global&extra=1",
        "?everywhere=1",
        "?refresh_token=x",
    ] {
        let res = logout(&app, &a.access, query, None);
        assert_error(&res, 400, "validation_error");
        assert_access_works(&app, &a.access, query);
    }
    assert_access_works(&app, &b.access, "another session");
    assert_refresh_works(&app, &a.refresh, "this session");
    assert_refresh_works(&app, &b.refresh, "another session");
    assert!(app.events_named("logout").is_empty());
}

#[test]
fn a_body_refresh_token_that_is_not_this_users_is_refused_and_ends_nothing() {
    let app = app();
    app.register("alice", PASSWORD);
    app.register("bob", PASSWORD);
    let a = login(&app, "alice");
    let bob = login(&app, "bob");
    for (what, token) in [
        ("bob's", bob.refresh.clone()),
        ("an access token", bob.access.clone()),
        ("garbage", "garbage".to_string()),
    ] {
        for query in ["", "?scope=global", "?scope=others"] {
            let res = logout(
                &app,
                &a.access,
                query,
                Some(&json!({ "refresh_token": token })),
            );
            assert_error(&res, 400, "validation_error");
            assert_access_works(&app, &a.access, what);
        }
    }
    assert_access_works(&app, &bob.access, "bob");
    assert_refresh_works(&app, &bob.refresh, "bob");
    assert_refresh_works(&app, &a.refresh, "alice");
}

/// A value made up from the user's own token, naming the session the next
/// login will start, is not a refresh token of this user: it must not end
/// a session that does not exist yet.
#[test]
fn a_logout_body_token_that_is_not_a_real_one_cannot_end_a_future_session() {
    let app = app();
    app.register("alice", PASSWORD);
    let a = login(&app, "alice");
    let next = claims(&a.access)["sid"].as_u64().unwrap() + 1;
    let forged = tamper(&a.refresh, |b| set_number(b, next));
    let res = logout(
        &app,
        &a.access,
        "",
        Some(&json!({ "refresh_token": forged })),
    );
    let status = res.status;
    let b = login(&app, "alice");
    let b_access = app.get("/auth/protected", Some(&b.access)).status;
    let b_refresh = refresh(&app, &b.refresh).status;
    assert!(
        status == 400 && b_access == 200 && b_refresh == 200,
        "logout with a forged body token answered {status} (want 400); \
         the next login's access token then got {b_access}, its refresh {b_refresh} (want 200)"
    );
}

/// Naming a session whose slot a newer login has taken must not touch the
/// newer session.
#[test]
fn logging_out_an_evicted_sessions_token_leaves_the_newer_session_in_its_slot_alone() {
    let app = app();
    app.register("alice", PASSWORD);
    let sessions: Vec<Pair> = (0..11).map(|_| login(&app, "alice")).collect();
    let (evicted, newest, current) = (&sessions[0], &sessions[10], &sessions[5]);
    let body = json!({ "refresh_token": evicted.refresh });
    let res = logout(&app, &current.access, "", Some(&body));
    assert!(
        res.status == 204 || res.status == 400,
        "{}: {}",
        res.status,
        res.body
    );
    assert_access_works(&app, &newest.access, "the session now in the slot");
    let again = assert_refresh_works(&app, &newest.refresh, "the session now in the slot");
    assert_access_works(
        &app,
        &again.access,
        "the session now in the slot, refreshed",
    );
    assert!(app.events_named("refresh_token_reuse").is_empty());
}

#[test]
fn a_second_logout_with_the_same_token_is_refused() {
    let app = app();
    app.register("alice", PASSWORD);
    for query in ["", "?scope=global", "?scope=others"] {
        let a = login(&app, "alice");
        assert_no_content(&logout(&app, &a.access, query, None));
        let again = logout(&app, &a.access, query, None);
        if query == "?scope=others" {
            // `others` keeps the current session; its second logout is fine.
            assert_no_content(&again);
            assert_no_content(&logout(&app, &a.access, "", None));
            assert_error(&logout(&app, &a.access, "", None), 401, "invalid_token");
        } else {
            assert_error(&again, 401, "invalid_token");
        }
    }
}

#[test]
fn logout_needs_a_bearer_token() {
    let app = app();
    app.register("alice", PASSWORD);
    let res = send(
        &app,
        app.request(Method::POST, "/auth/logout", "192.0.2.50")
            .body(Vec::new())
            .unwrap(),
    );
    assert_error(&res, 401, "missing_token");
}

#[test]
fn logouts_are_audited_with_their_scope_and_counted() {
    let app = app();
    let admin = app.admin_token("root");
    app.register("alice", PASSWORD);
    assert_eq!(stat(&app, &admin, "logouts"), 0);
    let a = login(&app, "alice");
    assert_no_content(&logout(&app, &a.access, "?scope=others", None));
    assert_no_content(&logout(&app, &a.access, "", None));
    let b = login(&app, "alice");
    assert_no_content(&logout(&app, &b.access, "?scope=global", None));
    let events = app.events_named("logout");
    let reasons: Vec<&str> = events
        .iter()
        .map(|e| e["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons, ["others", "local", "global"]);
    for event in &events {
        assert_audit_fields(event);
        assert_eq!(event["username"], "alice");
        assert_eq!(event["outcome"], "success");
    }
    assert_eq!(stat(&app, &admin, "logouts"), 3);
    // A refused logout is not counted.
    assert_eq!(logout(&app, &b.access, "", None).status, 401);
    assert_eq!(stat(&app, &admin, "logouts"), 3);
}

// ---------------------------------------------------------------- races

#[test]
fn a_refresh_racing_a_logout_never_outlives_it() {
    let app = app();
    app.register("alice", PASSWORD);
    for scope in ["", "?scope=global"] {
        for _ in 0..10 {
            let p = login(&app, "alice");
            let results = in_parallel(2, |i| {
                if i == 0 {
                    logout(&app, &p.access, scope, None)
                } else {
                    refresh(&app, &p.refresh)
                }
            });
            assert_no_content(&results[0]);
            let res = &results[1];
            if res.status == 200 {
                let won = pair(res);
                assert_access_refused(&app, &won.access, "issued during the logout");
                assert_refresh_refused(&app, &won.refresh, "issued during the logout");
            } else {
                assert_error(res, 401, "invalid_token");
            }
            assert_access_refused(&app, &p.access, "logged out");
        }
    }
}

#[test]
fn parallel_logins_each_get_a_working_session_up_to_ten() {
    let app = app();
    app.register("alice", PASSWORD);
    let pairs: Vec<Pair> = in_parallel(10, |_| login(&app, "alice"));
    let mut sids: Vec<u64> = pairs
        .iter()
        .map(|p| claims(&p.access)["sid"].as_u64().unwrap())
        .collect();
    sids.sort();
    sids.dedup();
    assert_eq!(sids.len(), 10, "distinct sessions");
    let refreshed = in_parallel(10, |i| refresh(&app, &pairs[i].refresh));
    for res in &refreshed {
        assert_eq!(res.status, 200, "{}", res.body);
    }
}

/// Review finding: a thief with one stolen session could repeat
/// `logout?scope=others` to keep the record's lease busy for the owner and
/// an admin. A repeat with nothing new to end takes no lease and writes
/// nothing.
#[test]
fn a_repeated_others_logout_with_nothing_to_end_takes_no_lease() {
    let app = TestApp::new();
    app.register("alice", PASSWORD);
    let thief = app.login("alice", PASSWORD).token();
    let res = app.call(
        Method::POST,
        "/auth/logout?scope=others",
        Some(&thief),
        None,
    );
    assert_eq!(res.status, 204);
    // Key, user, the session counter, the logout counter: no lease, no write.
    let calls = app.store_calls(|| {
        let res = app.call(
            Method::POST,
            "/auth/logout?scope=others",
            Some(&thief),
            None,
        );
        assert_eq!(res.status, 204);
    });
    assert_eq!(calls, 4);
    // A session started since is still ended by the next one.
    let owner = app.login("alice", PASSWORD).token();
    let res = app.call(
        Method::POST,
        "/auth/logout?scope=others",
        Some(&thief),
        None,
    );
    assert_eq!(res.status, 204);
    assert_error(
        &app.get("/auth/protected", Some(&owner)),
        401,
        "invalid_token",
    );
}
