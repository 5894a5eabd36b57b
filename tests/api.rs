//! The contract table, row by row: success bodies, status codes, headers.

mod common;

use common::*;
use http::Method;
use serde_json::json;

#[test]
fn every_response_is_json_with_the_security_headers() {
    let app = TestApp::new();
    let responses = [
        app.get("/health", None),
        app.get("/nope", None),
        app.get("/auth/protected", None),
        app.register("alice", PASSWORD),
        app.login("alice", "wrong password"),
    ];
    let mut ids = std::collections::HashSet::new();
    for res in &responses {
        assert_eq!(res.header("content-type"), "application/json");
        assert_eq!(res.header("cache-control"), "no-store");
        assert_eq!(res.header("x-content-type-options"), "nosniff");
        let id = res.header("x-request-id");
        assert!(id.len() >= 16, "request id: {id:?}");
        assert!(ids.insert(id.to_owned()), "request ids are unique");
    }
}

#[test]
fn register_creates_a_user() {
    let app = TestApp::new();
    let res = app.register("Alice", PASSWORD);
    assert_eq!(res.status, 201);
    assert_eq!(
        res.body,
        json!({"message": "User registered successfully", "user": {"username": "alice", "role": "user"}})
    );
}

#[test]
fn register_with_explicit_user_role() {
    let app = TestApp::new();
    let res = app.post_json(
        "/auth/register",
        &json!({"username": "bob", "password": PASSWORD, "role": "user"}),
        "192.0.2.1",
    );
    assert_eq!(res.status, 201);
    assert_eq!(res.body["user"]["role"], "user");
}

#[test]
fn usernames_are_unique_case_insensitively() {
    let app = TestApp::new();
    assert_eq!(app.register("TestUser", PASSWORD).status, 201);
    assert_error(&app.register("testuser", PASSWORD), 409, "username_taken");
    assert_error(
        &app.register("TESTUSER", "another password"),
        409,
        "username_taken",
    );
    // The original password still works, under any casing.
    assert_eq!(app.login("tEsTuSeR", PASSWORD).status, 200);
}

#[test]
fn login_returns_a_bearer_token_for_fifteen_minutes() {
    let app = TestApp::new();
    app.register("alice", PASSWORD);
    let res = app.login("alice", PASSWORD);
    assert_eq!(res.status, 200);
    assert_eq!(res.body["token_type"], "Bearer");
    assert_eq!(res.body["expires_in"], 900);
    assert_eq!(res.body["refresh_expires_in"], 7 * 86_400);
    assert_eq!(res.body.as_object().unwrap().len(), 5);
    assert_eq!(res.token().split('.').count(), 3);
    // An opaque refresh token, never shaped like a JWT.
    let refresh = res.body["refresh_token"].as_str().unwrap();
    assert!(refresh.len() >= 43 && !refresh.contains('.'), "{refresh}");
}

#[test]
fn wrong_password_is_invalid_credentials() {
    let app = TestApp::new();
    app.register("alice", PASSWORD);
    let res = app.login("alice", "not the password");
    assert_error(&res, 401, "invalid_credentials");
    assert_eq!(res.body["error"]["message"], "Invalid username or password");
}

#[test]
fn protected_route_greets_the_token_holder() {
    let app = TestApp::new();
    let token = app.user_token("alice");
    let res = app.get("/auth/protected", Some(&token));
    assert_eq!(res.status, 200);
    assert_eq!(
        res.body,
        json!({"message": "Access granted", "user": {"username": "alice", "role": "user"}})
    );
}

#[test]
fn protected_route_without_token_is_401_with_a_bearer_challenge() {
    let app = TestApp::new();
    let res = app.get("/auth/protected", None);
    assert_error(&res, 401, "missing_token");
    assert!(res.header("www-authenticate").starts_with("Bearer"));
    let basic = app.send(
        app.request(Method::GET, "/auth/protected", "192.0.2.1")
            .header("authorization", "Basic YWxpY2U6c2VjcmV0")
            .body(Vec::new())
            .unwrap(),
    );
    assert_error(&basic, 401, "missing_token");
}

#[test]
fn garbage_token_is_invalid_token_with_rfc6750_error() {
    let app = TestApp::new();
    for token in ["garbage", "a.b.c", "Bearer", "eyJhbGciOiJIUzI1NiJ9.e30.x"] {
        let res = app.get("/auth/protected", Some(token));
        assert_error(&res, 401, "invalid_token");
        assert!(res
            .header("www-authenticate")
            .contains("error=\"invalid_token\""));
    }
    let empty = app.send(
        app.request(Method::GET, "/auth/protected", "192.0.2.1")
            .header("authorization", "Bearer ")
            .body(Vec::new())
            .unwrap(),
    );
    assert_eq!(empty.status, 401);
}

#[test]
fn admin_dashboard_shows_the_counters() {
    let app = TestApp::new();
    let admin = app.admin_token("root");
    app.register("alice", PASSWORD);
    app.login("alice", "wrong password");
    let res = app.get("/admin/dashboard", Some(&admin));
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.body["message"], "Welcome to the admin dashboard");
    let stats = &res.body["stats"];
    assert_eq!(stats["users"], 2);
    assert_eq!(stats["admins"], 1);
    assert_eq!(stats["successful_logins"], 1);
    assert_eq!(stats["failed_logins"], 1);
    assert_eq!(stats["lockouts"], 0);
    assert_eq!(stats["rate_limited_requests"], 0);
}

#[test]
fn admin_dashboard_refuses_plain_users() {
    let app = TestApp::new();
    let token = app.user_token("alice");
    assert_error(&app.get("/admin/dashboard", Some(&token)), 403, "forbidden");
    assert_error(&app.get("/admin/dashboard", None), 401, "missing_token");
    assert_error(
        &app.get("/admin/dashboard", Some("x.y.z")),
        401,
        "invalid_token",
    );
}

#[test]
fn health_reports_ok_while_the_store_answers() {
    let app = TestApp::new();
    let res = app.get("/health", None);
    assert_eq!(res.status, 200);
    assert_eq!(res.body, json!({"status": "ok"}));
    app.store.fail_from_now_on(true);
    assert_error(&app.get("/health", None), 503, "unavailable");
}

#[test]
fn unknown_paths_are_404() {
    let app = TestApp::new();
    for path in [
        "/",
        "/nope",
        "/auth",
        "/auth/login/",
        "/admin/dashboard/x",
        "/HEALTH",
    ] {
        assert_error(&app.get(path, None), 404, "not_found");
    }
}

#[test]
fn wrong_method_is_405_with_allow() {
    let app = TestApp::new();
    let res = app.get("/auth/login", None);
    assert_error(&res, 405, "method_not_allowed");
    assert_eq!(res.header("allow"), "POST");
    for method in [Method::POST, Method::DELETE, Method::PUT, Method::HEAD] {
        let res = app.send(
            app.request(method, "/health", "192.0.2.1")
                .body(Vec::new())
                .unwrap(),
        );
        assert_error(&res, 405, "method_not_allowed");
        assert_eq!(res.header("allow"), "GET");
    }
}

#[test]
fn store_failure_is_a_generic_500_with_the_detail_only_in_the_audit_log() {
    let app = TestApp::new();
    app.register("alice", PASSWORD);
    app.store.fail_from_now_on(true);
    let res = app.login("alice", PASSWORD);
    assert_error(&res, 500, "internal_error");
    assert_eq!(res.body["error"]["message"], "An internal error occurred");
    let text = String::from_utf8_lossy(&res.raw);
    assert!(
        !text.contains("simulated") && !text.contains("store"),
        "{text}"
    );
    let internal = app.events_named("internal_error");
    assert_eq!(internal.len(), 1);
    assert!(internal[0]["reason"]
        .as_str()
        .unwrap()
        .contains("simulated"));
}

#[test]
fn passwords_are_stored_as_bcrypt_cost_10_by_default() {
    use secure_backend::domain::{User, Username};
    use secure_backend::store::KeyValue;
    let app = TestApp::with_vars(&[("bcrypt_cost", "")]);
    app.register("alice", PASSWORD);
    let record = app
        .store
        .get(&User::key(&Username::parse("alice").unwrap()))
        .unwrap()
        .unwrap();
    let text = String::from_utf8(record).unwrap();
    assert!(!text.contains(PASSWORD));
    let user: User = serde_json::from_str(&text).unwrap();
    assert!(
        user.password_hash.starts_with("$2b$10$"),
        "{}",
        user.password_hash
    );
    assert_eq!(app.login("alice", PASSWORD).status, 200);
}
