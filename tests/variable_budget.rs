//! Variable reads per route. In Spin each read goes through the provider
//! chain and costs about as much as a small request (`shared/SPIN-NOTES.md`),
//! so a route reads only the variables it uses, each at most once. These
//! budgets fail loudly when a change adds a read.

mod common;

use common::*;
use http::Method;

/// The sorted names `f` read, after checking that none was read twice.
fn reads(app: &TestApp, f: impl FnOnce()) -> Vec<String> {
    let mut names = app.variable_reads(f);
    names.sort();
    let count = names.len();
    names.dedup();
    assert_eq!(names.len(), count, "a variable was read twice: {names:?}");
    names
}

#[test]
fn routes_without_settings_read_no_variable() {
    let app = TestApp::new();
    let names = reads(&app, || {
        assert_eq!(app.get("/nope", None).status, 404);
        assert_eq!(app.get("/auth/login", None).status, 405);
        assert_eq!(app.get("/openapi.json", None).status, 200);
    });
    assert!(names.is_empty(), "{names:?}");
}

/// The readiness probe checks the whole configuration, each variable once:
/// probes come seconds apart, and a broken variable must not pass one.
#[test]
fn health_reads_every_variable_once() {
    let app = TestApp::new();
    let names = reads(&app, || assert_eq!(app.get("/health", None).status, 200));
    let mut all = secure_backend::config::VARIABLES.map(String::from).to_vec();
    all.sort();
    assert_eq!(names, all);
}

#[test]
fn protected_reads_at_most_the_signing_key() {
    let app = TestApp::new();
    let token = app.user_token("alice");
    let names = reads(&app, || {
        assert_eq!(app.get("/auth/protected", Some(&token)).status, 200)
    });
    assert_eq!(names, ["jwt_secret"]);
    // A refused token is audited, and the audit line names the client.
    let names = reads(&app, || {
        assert_eq!(app.get("/auth/protected", Some("a.b.c")).status, 401)
    });
    assert!(names.len() <= 2, "{names:?}");
}

#[test]
fn dashboard_reads_the_key_and_who_is_asking() {
    let app = TestApp::new();
    let admin = app.admin_token("root");
    let names = reads(&app, || {
        assert_eq!(app.get("/admin/dashboard", Some(&admin)).status, 200)
    });
    assert_eq!(names, ["client_ip_header", "jwt_secret"]);
}

#[test]
fn login_reads_its_own_settings_once_each() {
    let app = TestApp::new();
    app.register("alice", PASSWORD);
    let expected = [
        "bcrypt_cost",
        "client_ip_header",
        "jwt_secret",
        "lockout_duration_seconds",
        "lockout_threshold",
        "login_rate_limit",
        "login_rate_window_seconds",
        "refresh_token_ttl_seconds",
        "session_ttl_seconds",
        "token_ttl_seconds",
    ];
    let names = reads(&app, || {
        assert_eq!(app.login("alice", PASSWORD).status, 200)
    });
    assert_eq!(names, expected);
    // A failure reads no more (the token's lifetime too: read up front, so
    // that a broken one refuses before anything is counted).
    let names = reads(&app, || {
        assert_eq!(app.login("alice", "wrong password").status, 401)
    });
    assert_eq!(names, expected);
}

#[test]
fn registration_reads_its_own_settings_once_each() {
    let app = TestApp::new();
    let names = reads(&app, || {
        assert_eq!(app.register("alice", PASSWORD).status, 201)
    });
    assert_eq!(
        names,
        [
            "bcrypt_cost",
            "client_ip_header",
            "jwt_secret",
            "register_rate_limit",
            "register_rate_window_seconds",
        ]
    );
    // The bootstrap token is read only when a request presents one.
    let names = reads(&app, || assert_eq!(app.register_admin("root").status, 201));
    assert!(names.contains(&"admin_bootstrap_token".to_owned()));
    assert_eq!(names.len(), 6, "{names:?}");
}

/// A broken variable refuses exactly the requests that need it, before
/// they count or change anything; the others go on.
#[test]
fn a_broken_variable_refuses_only_the_routes_that_read_it() {
    let app = TestApp::with_vars(&[("lockout_threshold", "many")]);
    // Registration does not use it.
    assert_eq!(app.register("alice", PASSWORD).status, 201);
    let before = app.store.snapshot();
    let res = app.login("alice", PASSWORD);
    assert_error(&res, 500, "internal_error");
    assert_eq!(
        app.store.snapshot(),
        before,
        "a refused login changes nothing"
    );
    let logged = app.events_named("config_error");
    assert_eq!(logged.len(), 1);
    assert!(logged[0]["reason"]
        .as_str()
        .unwrap()
        .contains("lockout_threshold"));
    // Routes that do not use it still serve; the readiness probe does not.
    assert_error(&app.get("/health", None), 500, "internal_error");
    let res = app.send(
        app.request(Method::GET, "/nope", "192.0.2.1")
            .body(Vec::new())
            .unwrap(),
    );
    assert_error(&res, 404, "not_found");
}

#[test]
fn session_and_account_routes_read_only_their_own_settings() {
    use serde_json::json;
    let app = TestApp::new();
    app.register("alice", PASSWORD);
    let login = app.login("alice", PASSWORD);
    let (access, refresh) = (login.token(), login.refresh_token());
    let names = reads(&app, || assert_eq!(app.refresh(&refresh).status, 200));
    assert_eq!(
        names,
        [
            "client_ip_header",
            "jwt_secret",
            "refresh_token_ttl_seconds",
            "session_ttl_seconds",
            "token_ttl_seconds",
        ]
    );
    let names = reads(&app, || {
        assert_eq!(app.get("/auth/me", Some(&access)).status, 200)
    });
    assert_eq!(names, ["jwt_secret"]);
    let body = json!({"current_password": PASSWORD, "new_password": "another good one"});
    let names = reads(&app, || {
        let res = app.call(Method::POST, "/auth/password", Some(&access), Some(&body));
        assert_eq!(res.status, 204);
    });
    assert_eq!(
        names,
        [
            "bcrypt_cost",
            "client_ip_header",
            "jwt_secret",
            "lockout_duration_seconds",
            "lockout_threshold",
        ]
    );
    let access = app.login("alice", "another good one").token();
    let names = reads(&app, || {
        let res = app.call(Method::POST, "/auth/logout", Some(&access), None);
        assert_eq!(res.status, 204);
    });
    assert_eq!(names, ["client_ip_header", "jwt_secret"]);
}

#[test]
fn admin_user_routes_read_the_key_and_who_is_asking() {
    let app = TestApp::new();
    let admin = app.admin_token("root");
    app.register("alice", PASSWORD);
    for path in ["/admin/users", "/admin/users/alice"] {
        let names = reads(&app, || assert_eq!(app.get(path, Some(&admin)).status, 200));
        assert_eq!(names, ["client_ip_header", "jwt_secret"], "{path}");
    }
}

/// With `jwt_secret` set, retiring the stored key (review of the signing
/// key, finding 1) reads no further variable: each route reads what it
/// reads without it, `jwt_secret` once.
#[test]
fn retiring_the_stored_key_reads_no_further_variable() {
    use serde_json::json;
    let reads_of_each_route = |app: &TestApp| {
        let mut all = Vec::new();
        all.push(reads(app, || {
            assert_eq!(app.register("alice", PASSWORD).status, 201)
        }));
        let mut login = None;
        all.push(reads(app, || {
            login = Some(pair(&app.login("alice", PASSWORD)))
        }));
        let p = login.unwrap();
        all.push(reads(app, || {
            assert_eq!(app.get("/auth/protected", Some(&p.access)).status, 200)
        }));
        all.push(reads(app, || {
            assert_eq!(app.get("/auth/me", Some(&p.access)).status, 200)
        }));
        all.push(reads(app, || {
            assert_eq!(app.refresh(&p.refresh).status, 200)
        }));
        let body = json!({"current_password": PASSWORD, "new_password": "another good one"});
        all.push(reads(app, || {
            let res = app.call(Method::POST, "/auth/password", Some(&p.access), Some(&body));
            assert_eq!(res.status, 204);
        }));
        all
    };
    let without = reads_of_each_route(&TestApp::new());
    let with = reads_of_each_route(&TestApp::with_vars(&[(
        "jwt_secret",
        "0123456789abcdef0123456789abcdef",
    )]));
    assert_eq!(with, without);
}

/// Two-factor login (issue 11): each step reads its own settings once, and
/// the key the TOTP secrets are sealed under.
#[test]
fn two_factor_routes_read_their_own_settings_once_each() {
    use http::Method;
    use secure_backend::clock::Clock;
    use secure_backend::security::totp;
    use serde_json::json;
    let app = TestApp::with_vars(&[(
        "mfa_encryption_key",
        "mfa-key-for-the-variable-budget-01234",
    )]);
    let access = app.user_token("alice");
    let mut secret = Vec::new();
    let names = reads(&app, || {
        let res = app.call(Method::POST, "/auth/mfa/totp/enroll", Some(&access), None);
        secret = totp::decode_secret(res.body["secret"].as_str().unwrap()).unwrap();
    });
    assert_eq!(
        names,
        ["client_ip_header", "jwt_secret", "mfa_encryption_key"]
    );
    let step = |app: &TestApp| app.clock.now_secs() / totp::STEP_SECS;
    let code = json!({ "code": totp::code_at(&secret, step(&app)) });
    let names = reads(&app, || {
        let res = app.call(
            Method::POST,
            "/auth/mfa/totp/confirm",
            Some(&access),
            Some(&code),
        );
        assert_eq!(res.status, 200, "{}", res.body);
    });
    assert_eq!(
        names,
        ["client_ip_header", "jwt_secret", "mfa_encryption_key"]
    );
    // The password step reads what a login reads.
    let mut token = String::new();
    let names = reads(&app, || {
        token = app.login("alice", PASSWORD).body["mfa_token"]
            .as_str()
            .unwrap()
            .to_owned();
    });
    assert_eq!(names.len(), 10, "{names:?}");
    app.clock.advance_secs(totp::STEP_SECS);
    let body = json!({ "mfa_token": token, "code": totp::code_at(&secret, step(&app)) });
    let names = reads(&app, || {
        let res = app.post_json("/auth/mfa/verify", &body, "192.0.2.40");
        assert_eq!(res.status, 200, "{}", res.body);
    });
    assert_eq!(
        names,
        [
            "bcrypt_cost",
            "client_ip_header",
            "jwt_secret",
            "lockout_duration_seconds",
            "lockout_threshold",
            "mfa_encryption_key",
            "mfa_rate_limit",
            "mfa_rate_window_seconds",
            "refresh_token_ttl_seconds",
            "session_ttl_seconds",
            "token_ttl_seconds",
        ]
    );
}
