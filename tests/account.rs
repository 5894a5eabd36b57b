//! The signed-in user's own account (issue 9): GET /auth/me and
//! POST /auth/password.

mod common;

use common::*;
use ct_codecs::{Base64UrlSafeNoPadding as B64, Decoder};
use http::{Method, Request};
use secure_backend::domain::{Role, User, Username};
use secure_backend::store::KeyValue;
use serde_json::{json, Value};

const NEW_PASSWORD: &str = "a brand new passphrase";
const WRONG_PASSWORD: &str = "not the password at all";

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

fn login(app: &TestApp, name: &str, password: &str) -> Pair {
    pair(&app.login(name, password))
}

fn refresh(app: &TestApp, token: &str) -> TestResponse {
    app.post_json(
        "/auth/refresh",
        &json!({ "refresh_token": token }),
        "192.0.2.40",
    )
}

/// POST /auth/password with `access` as Bearer and a raw body.
fn password_raw(app: &TestApp, access: &str, content_type: &str, body: &[u8]) -> TestResponse {
    send(
        app,
        app.request(Method::POST, "/auth/password", "192.0.2.70")
            .header("authorization", format!("Bearer {access}"))
            .header("content-type", content_type)
            .body(body.to_vec())
            .unwrap(),
    )
}

fn change_password(app: &TestApp, access: &str, current: &str, new: &str) -> TestResponse {
    let body = json!({ "current_password": current, "new_password": new });
    password_raw(app, access, "application/json", body.to_string().as_bytes())
}

fn me(app: &TestApp, access: &str) -> TestResponse {
    app.get("/auth/me", Some(access))
}

fn stat(app: &TestApp, admin: &str, name: &str) -> i64 {
    let res = app.get("/admin/dashboard", Some(admin));
    assert_eq!(res.status, 200, "{}", res.body);
    res.body["stats"][name]
        .as_i64()
        .unwrap_or_else(|| panic!("no counter {name}: {}", res.body))
}

fn stored_hash(app: &TestApp, name: &str) -> String {
    let key = User::key(&Username::parse(name).unwrap());
    let record = app.store.get(&key).unwrap().expect("a user record");
    serde_json::from_slice::<User>(&record)
        .unwrap()
        .password_hash
}

// ---------------------------------------------------------------- /auth/me

#[test]
fn me_answers_exactly_username_role_created_at_and_whether_mfa_is_on() {
    let app = app();
    app.register("alice", PASSWORD);
    let p = login(&app, "alice", PASSWORD);
    let res = me(&app, &p.access);
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(
        res.body,
        json!({
            "username": "alice",
            "role": "user",
            "created_at": "2026-11-27T00:00:00.000Z",
            "mfa_enabled": false,
        })
    );
}

#[test]
fn me_created_at_is_the_registration_time_not_the_request_time() {
    let app = app();
    // 1 day, 1 hour, 1 minute and 1 second after START_MS.
    app.clock.advance_secs(90_061);
    app.register_admin("root");
    app.clock.advance_secs(3_600);
    let p = login(&app, "root", PASSWORD);
    let res = me(&app, &p.access);
    assert_eq!(
        res.body,
        json!({
            "username": "root",
            "role": "admin",
            "created_at": "2026-11-28T01:01:01.000Z",
            "mfa_enabled": false,
        })
    );
}

#[test]
fn me_reports_the_stored_role_not_the_tokens() {
    let app = app();
    app.register("alice", PASSWORD);
    let p = login(&app, "alice", PASSWORD);
    app.edit_user("alice", |u| u.role = Role::Admin);
    assert_eq!(me(&app, &p.access).body["role"], "admin");
    app.edit_user("alice", |u| u.role = Role::User);
    assert_eq!(me(&app, &p.access).body["role"], "user");
}

#[test]
fn me_needs_a_live_access_token() {
    let app = app();
    app.register("alice", PASSWORD);
    let p = login(&app, "alice", PASSWORD);
    let none = send(
        &app,
        app.request(Method::GET, "/auth/me", "192.0.2.1")
            .body(Vec::new())
            .unwrap(),
    );
    assert_error(&none, 401, "missing_token");
    assert_error(&me(&app, &p.refresh), 401, "invalid_token");
    assert_error(&me(&app, "garbage"), 401, "invalid_token");
    let logout = send(
        &app,
        app.request(Method::POST, "/auth/logout", "192.0.2.1")
            .header("authorization", format!("Bearer {}", p.access))
            .body(Vec::new())
            .unwrap(),
    );
    assert_no_content(&logout);
    assert_error(&me(&app, &p.access), 401, "invalid_token");
}

// ---------------------------------------------------------------- password change

#[test]
fn a_password_change_ends_every_session_including_its_own() {
    let app = app();
    app.register("alice", PASSWORD);
    app.register("bob", PASSWORD);
    let a = login(&app, "alice", PASSWORD);
    let b = login(&app, "alice", PASSWORD);
    let b2 = assert_refresh_works(&app, &b.refresh, "rotation before the change");
    let bob = login(&app, "bob", PASSWORD);

    assert_no_content(&change_password(&app, &a.access, PASSWORD, NEW_PASSWORD));
    for (access, what) in [
        (&a.access, "the token used for the change"),
        (&b.access, "another session"),
        (&b2.access, "another session, rotated"),
    ] {
        assert_access_refused(&app, access, what);
    }
    assert_refresh_refused(&app, &a.refresh, "the changing session's refresh token");
    assert_refresh_refused(&app, &b2.refresh, "another session's refresh token");
    assert_error(
        &change_password(&app, &a.access, NEW_PASSWORD, "yet another password"),
        401,
        "invalid_token",
    );
    // Another account is not touched.
    assert_access_works(&app, &bob.access, "bob");
    assert_refresh_works(&app, &bob.refresh, "bob");
}

#[test]
fn after_a_password_change_only_the_new_password_logs_in_and_at_once() {
    let app = app();
    app.register("alice", PASSWORD);
    let a = login(&app, "alice", PASSWORD);
    let old_hash = stored_hash(&app, "alice");
    assert_no_content(&change_password(&app, &a.access, PASSWORD, NEW_PASSWORD));
    assert_ne!(stored_hash(&app, "alice"), old_hash);
    // A new login right away works, and its session is not ended by the change.
    let fresh = login(&app, "alice", NEW_PASSWORD);
    assert_access_works(&app, &fresh.access, "a login after the change");
    let fresh2 = assert_refresh_works(&app, &fresh.refresh, "a login after the change");
    assert_access_works(&app, &fresh2.access, "refreshed after the change");
    assert_error(&app.login("alice", PASSWORD), 401, "invalid_credentials");
    // And the new password can be changed again from the new session.
    assert_no_content(&change_password(
        &app,
        &fresh2.access,
        NEW_PASSWORD,
        "third password here",
    ));
    assert_error(
        &app.login("alice", NEW_PASSWORD),
        401,
        "invalid_credentials",
    );
    assert_eq!(app.login("alice", "third password here").status, 200);
}

#[test]
fn a_wrong_current_password_is_refused_and_changes_nothing() {
    let app = app();
    app.register("alice", PASSWORD);
    let a = login(&app, "alice", PASSWORD);
    let b = login(&app, "alice", PASSWORD);
    let res = change_password(&app, &a.access, WRONG_PASSWORD, NEW_PASSWORD);
    assert_error(&res, 401, "invalid_credentials");
    assert_access_works(&app, &a.access, "the session that tried");
    assert_access_works(&app, &b.access, "another session");
    assert_refresh_works(&app, &b.refresh, "another session");
    assert_error(
        &app.login("alice", NEW_PASSWORD),
        401,
        "invalid_credentials",
    );
    assert_eq!(app.login("alice", PASSWORD).status, 200);
    let failures = app.events_named("password_change_failure");
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0]["username"], "alice");
    assert_audit_fields(&failures[0]);
    assert!(app.events_named("password_changed").is_empty());
}

#[test]
fn five_wrong_current_passwords_lock_the_account() {
    let app = app();
    app.register("alice", PASSWORD);
    let a = login(&app, "alice", PASSWORD);
    for i in 0..5 {
        let res = change_password(&app, &a.access, WRONG_PASSWORD, NEW_PASSWORD);
        assert_eq!(res.status, 401, "attempt {i}: {}", res.body);
        assert_error(&res, 401, "invalid_credentials");
    }
    let sixth = change_password(&app, &a.access, PASSWORD, NEW_PASSWORD);
    assert_error(&sixth, 423, "account_locked");
    assert_eq!(sixth.header("retry-after"), "900");
    let login = app.login("alice", PASSWORD);
    assert_error(&login, 423, "account_locked");
    assert_eq!(app.events_named("account_locked").len(), 1);
    // The lock ends as a login lock does, and the password never changed.
    app.clock.advance_secs(900);
    assert_eq!(app.login("alice", PASSWORD).status, 200);
}

#[test]
fn password_change_failures_and_login_failures_share_one_count() {
    let app = app();
    app.register("alice", PASSWORD);
    let a = login(&app, "alice", PASSWORD);
    for _ in 0..2 {
        assert_eq!(
            change_password(&app, &a.access, WRONG_PASSWORD, NEW_PASSWORD).status,
            401
        );
    }
    for _ in 0..2 {
        assert_eq!(app.login("alice", WRONG_PASSWORD).status, 401);
    }
    assert_eq!(
        change_password(&app, &a.access, WRONG_PASSWORD, NEW_PASSWORD).status,
        401
    );
    assert_error(&app.login("alice", PASSWORD), 423, "account_locked");
    assert_error(
        &change_password(&app, &a.access, PASSWORD, NEW_PASSWORD),
        423,
        "account_locked",
    );
}

#[test]
fn four_wrong_current_passwords_do_not_lock() {
    let app = app();
    app.register("alice", PASSWORD);
    let a = login(&app, "alice", PASSWORD);
    for _ in 0..4 {
        assert_eq!(
            change_password(&app, &a.access, WRONG_PASSWORD, NEW_PASSWORD).status,
            401
        );
    }
    assert_no_content(&change_password(&app, &a.access, PASSWORD, NEW_PASSWORD));
    assert_eq!(app.login("alice", NEW_PASSWORD).status, 200);
}

#[test]
fn parallel_wrong_current_passwords_get_no_more_checks_than_the_threshold() {
    let app = app();
    app.register("alice", PASSWORD);
    let a = login(&app, "alice", PASSWORD);
    let results = in_parallel(12, |_| {
        change_password(&app, &a.access, WRONG_PASSWORD, NEW_PASSWORD)
    });
    let checked = results.iter().filter(|r| r.status == 401).count();
    assert!(
        checked <= 5,
        "{checked} password checks past a threshold of 5"
    );
    for res in results.iter().filter(|r| r.status != 401) {
        assert_error(res, 423, "account_locked");
    }
    assert_error(&app.login("alice", PASSWORD), 423, "account_locked");
}

#[test]
fn the_new_password_must_satisfy_the_registration_rules() {
    let app = app();
    app.register("alice", PASSWORD);
    let a = login(&app, "alice", PASSWORD);
    let too_long_in_bytes = format!("{}é", "a".repeat(70));
    for new in ["", "1234567", &"a".repeat(72), &too_long_in_bytes] {
        let res = change_password(&app, &a.access, PASSWORD, new);
        assert_error(&res, 400, "validation_error");
    }
    // The limits themselves are allowed (with passwords the policy takes).
    let b = login(&app, "alice", PASSWORD);
    assert_no_content(&change_password(&app, &b.access, PASSWORD, "tb7-qz4w"));
    let c = login(&app, "alice", "tb7-qz4w");
    let longest = format!("{}b", "ab".repeat(35));
    assert_no_content(&change_password(&app, &c.access, "tb7-qz4w", &longest));
    assert_eq!(app.login("alice", &longest).status, 200);
}

#[test]
fn a_refused_password_change_body_changes_nothing() {
    let app = app();
    app.register("alice", PASSWORD);
    let a = login(&app, "alice", PASSWORD);
    let bodies: Vec<(&str, &str, String)> = vec![
        (
            "too short",
            "application/json",
            json!({"current_password": PASSWORD, "new_password": "short"}).to_string(),
        ),
        (
            "no new",
            "application/json",
            json!({"current_password": PASSWORD}).to_string(),
        ),
        (
            "no current",
            "application/json",
            json!({"new_password": NEW_PASSWORD}).to_string(),
        ),
        (
            "unknown field",
            "application/json",
            json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD, "username": "bob"})
                .to_string(),
        ),
        (
            "not a string",
            "application/json",
            json!({"current_password": PASSWORD, "new_password": 12345678}).to_string(),
        ),
        ("not an object", "application/json", "[]".to_string()),
    ];
    for (what, content_type, body) in &bodies {
        let res = password_raw(&app, &a.access, content_type, body.as_bytes());
        assert_eq!(res.status, 400, "{what}: {}", res.body);
        assert_error(&res, 400, "validation_error");
    }
    let json_body = json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD}).to_string();
    assert_error(
        &password_raw(&app, &a.access, "text/plain", json_body.as_bytes()),
        415,
        "unsupported_media_type",
    );
    assert_error(
        &password_raw(
            &app,
            &a.access,
            "application/json",
            b"{\"current_password\":",
        ),
        400,
        "invalid_json",
    );
    assert_access_works(&app, &a.access, "after the refused bodies");
    assert_refresh_works(&app, &a.refresh, "after the refused bodies");
    assert_eq!(app.login("alice", PASSWORD).status, 200);
    assert!(app.events_named("password_changed").is_empty());
}

#[test]
fn a_password_change_is_audited_and_counted() {
    let app = app();
    let admin = app.admin_token("root");
    app.register("alice", PASSWORD);
    assert_eq!(stat(&app, &admin, "password_changes"), 0);
    let a = login(&app, "alice", PASSWORD);
    assert_eq!(
        change_password(&app, &a.access, WRONG_PASSWORD, NEW_PASSWORD).status,
        401
    );
    assert_eq!(
        stat(&app, &admin, "password_changes"),
        0,
        "a failure is not a change"
    );
    assert_no_content(&change_password(&app, &a.access, PASSWORD, NEW_PASSWORD));
    let changed = app.events_named("password_changed");
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0]["username"], "alice");
    assert_eq!(changed[0]["outcome"], "success");
    assert_audit_fields(&changed[0]);
    let failed = app.events_named("password_change_failure");
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["username"], "alice");
    assert_eq!(stat(&app, &admin, "password_changes"), 1);
}

#[test]
fn parallel_password_changes_let_exactly_one_new_password_in() {
    let app = app();
    app.register("alice", PASSWORD);
    let a = login(&app, "alice", PASSWORD);
    let candidates: Vec<String> = (0..5).map(|i| format!("candidate password {i}")).collect();
    let results = in_parallel(5, |i| {
        change_password(&app, &a.access, PASSWORD, &candidates[i])
    });
    let won: Vec<usize> = (0..5).filter(|&i| results[i].status == 204).collect();
    assert_eq!(
        won.len(),
        1,
        "{:?}",
        results.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    for res in results.iter().filter(|r| r.status != 204) {
        assert!(
            res.status == 401 || res.status == 503,
            "a loser is refused: {} {}",
            res.status,
            res.body
        );
    }
    assert_access_refused(&app, &a.access, "the changing session");
    assert_eq!(app.login("alice", &candidates[won[0]]).status, 200);
    for (i, candidate) in candidates.iter().enumerate() {
        if i != won[0] {
            assert_eq!(app.login("alice", candidate).status, 401, "{candidate}");
        }
    }
    assert_eq!(app.login("alice", PASSWORD).status, 401);
}

#[test]
fn a_refresh_racing_a_password_change_never_outlives_it() {
    let app = app();
    app.register("alice", PASSWORD);
    let mut password = PASSWORD.to_string();
    for round in 0..8 {
        let a = login(&app, "alice", &password);
        let b = login(&app, "alice", &password);
        let next = format!("password number {round}");
        let results = in_parallel(2, |i| {
            if i == 0 {
                change_password(&app, &a.access, &password, &next)
            } else {
                refresh(&app, &b.refresh)
            }
        });
        assert_no_content(&results[0]);
        if results[1].status == 200 {
            let won = pair(&results[1]);
            assert_access_refused(&app, &won.access, "issued during the change");
            assert_refresh_refused(&app, &won.refresh, "issued during the change");
        } else {
            assert_error(&results[1], 401, "invalid_token");
        }
        password = next;
    }
}

// ---------------------------------------------------------------- secrets

#[test]
fn no_audit_line_holds_a_password_token_or_hash() {
    let app = app();
    let admin = app.admin_token("root");
    app.register("alice", PASSWORD);
    app.register("bob", PASSWORD);
    let mut secrets: Vec<String> = vec![
        PASSWORD.into(),
        NEW_PASSWORD.into(),
        WRONG_PASSWORD.into(),
        admin.clone(),
    ];
    let mut hashes = vec![stored_hash(&app, "alice")];

    let a = login(&app, "alice", PASSWORD);
    let b = login(&app, "alice", PASSWORD);
    let bob = login(&app, "bob", PASSWORD);
    let a2 = assert_refresh_works(&app, &a.refresh, "rotation");
    // Reuse, a refused logout body, a logout naming another session.
    assert_refresh_refused(&app, &a.refresh, "reuse");
    let c = login(&app, "alice", PASSWORD);
    let d = login(&app, "alice", PASSWORD);
    let logout = |access: &str, body: Value| {
        send(
            &app,
            app.request(Method::POST, "/auth/logout", "192.0.2.50")
                .header("authorization", format!("Bearer {access}"))
                .header("content-type", "application/json")
                .body(body.to_string().into_bytes())
                .unwrap(),
        )
    };
    assert_eq!(
        logout(&c.access, json!({"refresh_token": bob.refresh})).status,
        400
    );
    assert_no_content(&logout(&c.access, json!({"refresh_token": d.refresh})));
    // Refused refresh and access tokens of every kind.
    let made_up = "hunter2-made-up-refresh-value";
    assert_refresh_refused(&app, made_up, "made up");
    assert_refresh_refused(&app, &b.access, "an access token");
    assert_access_refused(&app, &b.refresh, "a refresh token");
    assert_access_refused(&app, &a2.access, "revoked by reuse");
    // Me, a wrong and a right password change, logins with old and new.
    assert_eq!(me(&app, &b.access).status, 200);
    assert_eq!(
        change_password(&app, &b.access, WRONG_PASSWORD, NEW_PASSWORD).status,
        401
    );
    assert_no_content(&change_password(&app, &b.access, PASSWORD, NEW_PASSWORD));
    hashes.push(stored_hash(&app, "alice"));
    assert_eq!(app.login("alice", PASSWORD).status, 401);
    let e = login(&app, "alice", NEW_PASSWORD);
    assert_refresh_refused(&app, &b.refresh, "ended by the change");
    assert_eq!(stat(&app, &admin, "password_changes"), 1);

    for p in [&a, &a2, &b, &bob, &c, &d, &e] {
        secrets.push(p.access.clone());
        secrets.push(p.refresh.clone());
        // The signature alone, and the refresh token's secret part.
        secrets.push(p.access.rsplit('.').next().unwrap().to_owned());
        let bytes = B64::decode_to_vec(&p.refresh, None).unwrap();
        secrets.push(hex(&bytes[48..80]));
    }
    secrets.push(made_up.into());
    for hash in &hashes {
        secrets.push(hash.clone());
        // The salt and digest without the `$2b$04$` prefix.
        secrets.push(hash[7..].to_owned());
    }

    let lines = app.audit.lines();
    assert!(lines.len() > 20, "the flows above were audited");
    for line in &lines {
        for secret in &secrets {
            assert!(
                !line.contains(secret.as_str()),
                "an audit line holds a secret ({secret}): {line}"
            );
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The store as the login sees it, running a password change at the moment
/// the login starts its session: after it checked the old password.
struct ChangeMidLogin<'a> {
    inner: &'a secure_backend::store::MemoryStore,
    change: std::sync::Mutex<Option<Box<dyn FnOnce() + 'a>>>,
}

impl KeyValue for ChangeMidLogin<'_> {
    fn get(&self, key: &str) -> anyhow::Result<Option<Vec<u8>>> {
        self.inner.get(key)
    }
    fn set(&self, key: &str, value: &[u8]) -> anyhow::Result<()> {
        self.inner.set(key, value)
    }
    fn delete(&self, key: &str) -> anyhow::Result<()> {
        self.inner.delete(key)
    }
    fn increment(&self, key: &str, delta: i64) -> anyhow::Result<i64> {
        if key == "sessions:alice" {
            if let Some(change) = self.change.lock().unwrap().take() {
                change();
            }
        }
        self.inner.increment(key, delta)
    }
}

/// A login that checked the old password before a change, and answers
/// after it, gets tokens that are already dead: the change ends every
/// session, including one still being started.
#[test]
fn a_login_racing_a_password_change_gets_no_working_session() {
    let app = app();
    app.register("alice", PASSWORD);
    let owner = login(&app, "alice", PASSWORD);
    let store = ChangeMidLogin {
        inner: &app.store,
        change: std::sync::Mutex::new(Some(Box::new(|| {
            assert_no_content(&change_password(
                &app,
                &owner.access,
                PASSWORD,
                "a new secret",
            ));
        }))),
    };
    let raced = app.send_through(
        &store,
        app.request(Method::POST, "/auth/login", "192.0.2.90")
            .header("content-type", "application/json")
            .body(
                json!({"username": "alice", "password": PASSWORD})
                    .to_string()
                    .into_bytes(),
            )
            .unwrap(),
    );
    // It checked the right password at the time, and answered.
    let raced = pair(&raced);
    assert_access_refused(&app, &raced.access, "a login that raced the change");
    assert_error(&refresh(&app, &raced.refresh), 401, "invalid_token");
    // The new password works.
    let after = login(&app, "alice", "a new secret");
    assert_access_works(&app, &after.access, "a login after the change");
}

/// A field this build does not know (a later build's, say a second factor
/// of another kind) survives every rewrite of the record: a rollback to
/// this build must not drop it (review of issue 11).
#[test]
fn fields_of_a_later_build_survive_a_record_change() {
    let app = app();
    app.register("alice", PASSWORD);
    let p = login(&app, "alice", PASSWORD);
    let key = "user:alice";
    let mut record: Value = serde_json::from_slice(&app.store.get(key).unwrap().unwrap()).unwrap();
    record["webauthn"] = json!({ "credentials": ["abc"] });
    app.store
        .set(key, &serde_json::to_vec(&record).unwrap())
        .unwrap();
    // A global logout rewrites the record under its lease.
    let res = app.call(
        Method::POST,
        "/auth/logout?scope=global",
        Some(&p.access),
        None,
    );
    assert_eq!(res.status, 204, "{}", res.body);
    let after: Value = serde_json::from_slice(&app.store.get(key).unwrap().unwrap()).unwrap();
    assert_eq!(after["webauthn"], json!({ "credentials": ["abc"] }));
    assert!(
        after["sessions_valid_from"].as_u64().unwrap() > 0,
        "{after}"
    );
}
