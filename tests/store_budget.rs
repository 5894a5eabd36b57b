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
            app.get("/openapi.json", None);
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

/// The session and account routes (issue 9). `/auth/protected` above stays
/// at two: ending sessions is state the guard reads anyway (the user record).
#[test]
fn session_and_account_routes_keep_their_budgets() {
    use http::Method;
    use serde_json::json;
    let app = TestApp::new();
    app.register("alice", PASSWORD);
    let login = app.login("alice", PASSWORD);
    let (access, refresh) = (login.token(), login.refresh_token());

    // Key, user.
    let me = app.store_calls(|| assert_eq!(app.get("/auth/me", Some(&access)).status, 200));
    assert_eq!(me, 2);
    // Family, user, key, the rotation's increment, the new family, counter.
    let mut next = String::new();
    let rotate = app.store_calls(|| {
        let res = app.refresh(&refresh);
        assert_eq!(res.status, 200);
        next = res.refresh_token();
    });
    assert_eq!(rotate, 6);
    // A spent token: family, the record, the record again under its lease
    // (two increments, get, set, two deletes), then revoking (family,
    // poison, delete), counter.
    let reuse = app.store_calls(|| assert_eq!(app.refresh(&refresh).status, 401));
    assert_eq!(reuse, 1 + 1 + 6 + 3 + 1);
    // Presented again: the record shows the session ended, so no lease.
    let again = app.store_calls(|| assert_eq!(app.refresh(&refresh).status, 401));
    assert!(again <= 1 + 1 + 3 + 1, "{again}");
    // An unknown token: one read.
    assert_eq!(
        app.store_calls(|| assert_eq!(app.refresh(&next[1..]).status, 401)),
        0
    );

    let access = app.login("alice", PASSWORD).token();
    // Key, user; the record under its lease; revoking the family; counter.
    let local = app.store_calls(|| {
        let res = app.call(Method::POST, "/auth/logout", Some(&access), None);
        assert_eq!(res.status, 204);
    });
    assert_eq!(local, 2 + 6 + 3 + 1);
    let access = app.login("alice", PASSWORD).token();
    // Key, user; the session counter; the record under its lease; counter.
    let global = app.store_calls(|| {
        let res = app.call(
            Method::POST,
            "/auth/logout?scope=global",
            Some(&access),
            None,
        );
        assert_eq!(res.status, 204);
    });
    assert_eq!(global, 2 + 1 + 6 + 1);

    let access = app.login("alice", PASSWORD).token();
    let body = json!({"current_password": PASSWORD, "new_password": "another good one"});
    // Key, user; lockout (lock, ticket, streak); the record under its
    // lease; counter.
    let change = app.store_calls(|| {
        let res = app.call(Method::POST, "/auth/password", Some(&access), Some(&body));
        assert_eq!(res.status, 204);
    });
    assert_eq!(change, 2 + 3 + 6 + 1);
}

#[test]
fn admin_user_routes_keep_their_budgets() {
    use http::Method;
    use serde_json::json;
    let app = TestApp::new();
    let admin = app.admin_token("root");
    for i in 0..30 {
        app.register(&format!("user{i}"), PASSWORD);
    }
    let calls = |method: Method, path: &str, body: Option<serde_json::Value>, status: u16| {
        app.store_calls(|| {
            let res = app.call(method, path, Some(&admin), body.as_ref());
            assert_eq!(res.status, status, "{path}: {}", res.body);
        })
    };
    // Key, admin; the index's length; entry, record and lock per position.
    assert_eq!(
        calls(Method::GET, "/admin/users?limit=10", None, 200),
        2 + 1 + 3 * 10
    );
    // Key, admin; record; lock and streak; one read per session slot.
    assert_eq!(
        calls(Method::GET, "/admin/users/user1", None, 200),
        2 + 1 + 2 + 10
    );
    // Key, admin; record; lock read and write; counter.
    assert!(calls(Method::POST, "/admin/users/user1/unlock", None, 204) <= 2 + 1 + 3 + 1);
    // Key, admin; session counter; the record under its lease; counter.
    assert_eq!(
        calls(
            Method::POST,
            "/admin/users/user1/sessions/revoke",
            None,
            204
        ),
        2 + 1 + 6 + 1
    );
    // Key, admin; the record under its lease; the admin count; counter;
    // the lock for the answer.
    let promote = calls(
        Method::PUT,
        "/admin/users/user1/role",
        Some(json!({"role": "admin"})),
        200,
    );
    assert_eq!(promote, 2 + 6 + 1 + 1 + 1);
    let demote = calls(
        Method::PUT,
        "/admin/users/user1/role",
        Some(json!({"role": "user"})),
        200,
    );
    assert_eq!(demote, 2 + 6 + 1 + 1 + 1);
    // Bounded, whatever the account did: every session slot and lockout
    // key is deleted by name, never found by listing keys.
    let delete = calls(Method::DELETE, "/admin/users/user2", None, 204);
    assert!(delete <= 29, "{delete}");
}

/// Review finding: the README's bound for a deletion missed a locked admin's
/// extra calls (the admin count, the lock's two counters).
#[test]
fn deleting_a_locked_admin_stays_within_the_bound() {
    use http::Method;
    let app = TestApp::with_vars(&[("login_rate_limit", "1000")]);
    let root = app.admin_token("root");
    assert_eq!(app.register_admin("deputy").status, 201);
    for _ in 0..5 {
        app.login("deputy", "wrong password here");
    }
    app.clock.advance_secs(901);
    for _ in 0..5 {
        app.login("deputy", "wrong password here");
    }
    let calls = app.store_calls(|| {
        let res = app.call(Method::DELETE, "/admin/users/deputy", Some(&root), None);
        assert_eq!(res.status, 204, "{}", res.body);
    });
    assert!(calls <= 30, "{calls}");
}

/// With `jwt_secret` set (review of the signing key, finding 1): each
/// request that signs, hashes slots or changes a password reads the stored
/// key's entry once, to check that it holds the retired marker, and writes
/// the marker the first time; `/auth/protected` and `/auth/me` only verify,
/// and stay at the user's read, writing nothing, even while the marker is
/// missing.
#[test]
fn with_jwt_secret_signing_routes_check_the_retired_key_once() {
    use http::Method;
    use secure_backend::security::keys::{stored_key, RETIRED};
    use secure_backend::store::KeyValue;
    use serde_json::json;
    let app = TestApp::with_vars(&[("jwt_secret", "0123456789abcdef0123456789abcdef")]);
    // The first registration writes the marker; the next only reads it.
    let first = app.store_calls(|| assert_eq!(app.register("alice", PASSWORD).status, 201));
    let next = app.store_calls(|| assert_eq!(app.register("bob", PASSWORD).status, 201));
    assert_eq!(first, next + 1);
    // As many as without the variable: the marker's read for the key's.
    let plain = TestApp::new();
    plain.register("alice", PASSWORD);
    let without = plain.store_calls(|| assert_eq!(plain.register("bob", PASSWORD).status, 201));
    assert_eq!(next, without);
    let login = app.store_calls(|| assert_eq!(app.login("alice", PASSWORD).status, 200));
    assert!(login <= 12, "{login}");
    let p = pair(&app.login("alice", PASSWORD));

    // Verifying: the user only, nothing written, marker or not.
    app.store.delete(&stored_key(0)).unwrap();
    let protected =
        app.store_calls(|| assert_eq!(app.get("/auth/protected", Some(&p.access)).status, 200));
    let me = app.store_calls(|| assert_eq!(app.get("/auth/me", Some(&p.access)).status, 200));
    assert_eq!((protected, me), (1, 1));
    assert_eq!(app.store.get(&stored_key(0)).unwrap(), None);

    // The probe: the marker's read, and its write when missing.
    let health = |expected| {
        let calls = app.store_calls(|| assert_eq!(app.get("/health", None).status, 200));
        assert_eq!(calls, expected);
    };
    health(2);
    health(1);
    assert_eq!(
        app.store.get(&stored_key(0)).unwrap().as_deref(),
        Some(RETIRED)
    );

    // Family, user, marker, rotation counter, successor, counter.
    let refresh = app.store_calls(|| assert_eq!(app.refresh(&p.refresh).status, 200));
    assert_eq!(refresh, 6);
    // User; marker; lockout (lock, ticket, streak); the record under its
    // lease; counter.
    let body = json!({"current_password": PASSWORD, "new_password": "another good one"});
    let access = app.login("alice", PASSWORD).token();
    let change = app.store_calls(|| {
        let res = app.call(Method::POST, "/auth/password", Some(&access), Some(&body));
        assert_eq!(res.status, 204);
    });
    assert_eq!(change, 1 + 1 + 3 + 6 + 1);
}

/// Two-factor login (issue 11): the password step costs a login's calls
/// and one increment (the challenge); the second step a login's own
/// bookkeeping, the challenge's spend and the code written off under the
/// record's lease.
#[test]
fn two_factor_steps_stay_within_their_budgets() {
    use http::Method;
    use secure_backend::clock::Clock;
    use secure_backend::security::totp;
    use serde_json::json;
    let app =
        TestApp::unthrottled(&[("mfa_encryption_key", "mfa-key-for-the-store-budget-0123456")]);
    let access = app.user_token("alice");
    let step = |app: &TestApp| app.clock.now_secs() / totp::STEP_SECS;
    let enrol = app.store_calls(|| {
        let res = app.call(Method::POST, "/auth/mfa/totp/enroll", Some(&access), None);
        assert_eq!(res.status, 200, "{}", res.body);
    });
    let secret = {
        let res = app.call(Method::POST, "/auth/mfa/totp/enroll", Some(&access), None);
        totp::decode_secret(res.body["secret"].as_str().unwrap()).unwrap()
    };
    let code = json!({ "code": totp::code_at(&secret, step(&app)) });
    let confirm = app.store_calls(|| {
        let res = app.call(
            Method::POST,
            "/auth/mfa/totp/confirm",
            Some(&access),
            Some(&code),
        );
        assert_eq!(res.status, 200, "{}", res.body);
    });
    let mut token = String::new();
    let password_step = app.store_calls(|| {
        let res = app.login("alice", PASSWORD);
        token = res.body["mfa_token"].as_str().unwrap().to_owned();
    });
    app.clock.advance_secs(totp::STEP_SECS);
    let body = json!({ "mfa_token": token, "code": totp::code_at(&secret, step(&app)) });
    let second_step = app.store_calls(|| {
        let res = app.post_json("/auth/mfa/verify", &body, "192.0.2.40");
        assert_eq!(res.status, 200, "{}", res.body);
    });
    eprintln!("enrol {enrol}, confirm {confirm}, password step {password_step}, second step {second_step}");
    // Guard (key, user) and the record changed under its lease (two
    // increments, read, write, two deletes).
    assert!(enrol <= 8, "{enrol}");
    // And the session counter, to end every other session.
    assert!(confirm <= 9, "{confirm}");
    // The README's bounds: a limiter that allows takes at most 3 calls, one
    // more than here (a fresh slot).
    assert!(password_step < 9, "{password_step}");
    assert!(second_step < 20, "{second_step}");
}
