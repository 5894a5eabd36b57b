//! Who may create an admin: the bootstrap token, or an existing admin.

mod common;

use common::*;
use http::Method;
use serde_json::json;

fn register_admin_with(app: &TestApp, name: &str, headers: &[(&str, &str)]) -> TestResponse {
    let mut req = app
        .request(Method::POST, "/auth/register", "192.0.2.30")
        .header("content-type", "application/json");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    app.send(
        req.body(
            json!({"username": name, "password": PASSWORD, "role": "admin"})
                .to_string()
                .into_bytes(),
        )
        .unwrap(),
    )
}

#[test]
fn the_bootstrap_token_creates_the_first_admin() {
    let app = TestApp::new();
    let res = register_admin_with(&app, "root", &[("x-bootstrap-token", BOOTSTRAP)]);
    assert_eq!(res.status, 201);
    assert_eq!(
        res.body["user"],
        json!({"username": "root", "role": "admin"})
    );
    let token = app.login("root", PASSWORD).token();
    assert_eq!(app.get("/admin/dashboard", Some(&token)).status, 200);
}

#[test]
fn admin_role_without_authorization_is_forbidden() {
    let app = TestApp::new();
    assert_error(&register_admin_with(&app, "eve", &[]), 403, "forbidden");
    assert_error(
        &register_admin_with(
            &app,
            "eve",
            &[("x-bootstrap-token", "wrong-token-wrong-token")],
        ),
        403,
        "forbidden",
    );
    assert_error(
        &register_admin_with(&app, "eve", &[("x-bootstrap-token", "")]),
        403,
        "forbidden",
    );
    // A prefix of the right token is not the token.
    assert_error(
        &register_admin_with(&app, "eve", &[("x-bootstrap-token", &BOOTSTRAP[..10])]),
        403,
        "forbidden",
    );
    // Nothing was created.
    assert_error(&app.login("eve", PASSWORD), 401, "invalid_credentials");
    assert_eq!(app.events_named("registration")[0]["outcome"], "failure");
}

#[test]
fn bootstrap_is_off_when_the_variable_is_unset() {
    let app = TestApp::with_vars(&[("admin_bootstrap_token", "")]);
    assert_error(
        &register_admin_with(&app, "root", &[("x-bootstrap-token", BOOTSTRAP)]),
        403,
        "forbidden",
    );
    assert_error(
        &register_admin_with(&app, "root", &[("x-bootstrap-token", "")]),
        403,
        "forbidden",
    );
}

#[test]
fn a_short_bootstrap_token_fails_closed() {
    let app = TestApp::with_vars(&[("admin_bootstrap_token", "short")]);
    assert_error(
        &register_admin_with(&app, "root", &[("x-bootstrap-token", "short")]),
        500,
        "internal_error",
    );
    assert_eq!(app.events_named("config_error").len(), 1);
}

#[test]
fn an_admin_token_creates_another_admin() {
    let app = TestApp::new();
    let admin = app.admin_token("root");
    let bearer = format!("Bearer {admin}");
    let res = register_admin_with(&app, "second", &[("authorization", &bearer)]);
    assert_eq!(res.status, 201, "{}", res.body);
    assert_eq!(res.body["user"]["role"], "admin");
}

#[test]
fn a_plain_user_token_cannot_create_an_admin() {
    let app = TestApp::new();
    let user = app.user_token("alice");
    let bearer = format!("Bearer {user}");
    assert_error(
        &register_admin_with(&app, "eve", &[("authorization", &bearer)]),
        403,
        "forbidden",
    );
    assert_error(
        &register_admin_with(&app, "eve", &[("authorization", "Bearer junk.junk.junk")]),
        403,
        "forbidden",
    );
    assert_eq!(app.events_named("access_denied").len(), 1);
}

#[test]
fn plain_registration_ignores_authorization_headers() {
    let app = TestApp::new();
    let res = app.send(
        app.request(Method::POST, "/auth/register", "192.0.2.31")
            .header("content-type", "application/json")
            .header("authorization", "Bearer junk")
            .body(
                json!({"username": "carol", "password": PASSWORD})
                    .to_string()
                    .into_bytes(),
            )
            .unwrap(),
    );
    assert_eq!(res.status, 201);
    assert_eq!(res.body["user"]["role"], "user");
}

#[test]
fn admin_access_is_audited() {
    let app = TestApp::new();
    let admin = app.admin_token("root");
    app.get("/admin/dashboard", Some(&admin));
    let events = app.events_named("admin_access");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["username"], "root");
}
