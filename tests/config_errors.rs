//! A broken variable, with settings read per route (issue 8): each request
//! that needs it fails closed before it counts or writes anything, the
//! readiness probe fails, and no audit line names the wrong client. Found by
//! the review of the lazy configuration; each test failed before its fix.

mod common;

use common::*;
use http::Method;
use serde_json::json;

const PROXY: &str = "10.0.0.1"; // the ingress; spin-client-addr
const CLIENT: &str = "203.0.113.7"; // the real client, in true-client-ip

fn proxied(app: &TestApp, method: Method, path: &str) -> http::request::Builder {
    app.request(method, path, PROXY)
        .header("true-client-ip", CLIENT)
}

/// An operator behind a proxy redeploys with a typo in `client_ip_header`
/// (a space is not allowed in a header name). The dashboard, whose audit
/// line names its client, refuses; a refused token and a rejected
/// registration still get their 4xx, but their lines name no client (it
/// used to be the proxy's address) and each request logs the config_error.
#[test]
fn a_broken_client_ip_header_never_audits_the_proxy_as_the_client() {
    let mut app = TestApp::with_vars(&[("client_ip_header", "true-client-ip")]);
    let admin = app.admin_token("root");
    // The redeploy: same store, same signing key, broken header variable.
    app.vars
        .insert("client_ip_header".into(), "true client ip".into());
    let before = app.audit_events().len();

    let dash = app.send(
        proxied(&app, Method::GET, "/admin/dashboard")
            .header("authorization", format!("Bearer {admin}"))
            .body(Vec::new())
            .unwrap(),
    );
    let bad_token = app.send(
        proxied(&app, Method::GET, "/auth/protected")
            .header("authorization", "Bearer a.b.c")
            .body(Vec::new())
            .unwrap(),
    );
    let bad_register = app.send(
        proxied(&app, Method::POST, "/auth/register")
            .header("content-type", "application/json")
            .body(
                json!({"username": "x", "password": PASSWORD})
                    .to_string()
                    .into_bytes(),
            )
            .unwrap(),
    );
    let new_events: Vec<_> = app.audit_events().split_off(before);
    eprintln!(
        "statuses: dashboard {} protected {} register {}",
        dash.status, bad_token.status, bad_register.status
    );
    for e in &new_events {
        eprintln!("audit: {e}");
    }
    let config_errors = new_events
        .iter()
        .filter(|e| e["event"] == "config_error")
        .count();
    let with_proxy_ip: Vec<_> = new_events
        .iter()
        .filter(|e| e["client_ip"] == PROXY)
        .map(|e| e["event"].as_str().unwrap_or("").to_owned())
        .collect();
    assert!(
        with_proxy_ip.is_empty(),
        "audit lines naming the proxy as the client: {with_proxy_ip:?} \
         (config_error lines: {config_errors}; statuses {} {} {})",
        dash.status,
        bad_token.status,
        bad_register.status
    );
    assert_error(&dash, 500, "internal_error");
    assert_error(&bad_token, 401, "invalid_token");
    assert_error(&bad_register, 400, "validation_error");
    assert_eq!(config_errors, 3, "one config_error per request");
    assert!(new_events
        .iter()
        .filter(|e| e["event"] != "config_error")
        .all(|e| e["client_ip"] == "unknown"));
}

/// With a too-short `admin_bootstrap_token`, a registration presenting the
/// bootstrap header is counted against the register rate limit (a store
/// write) and audited as "admin role not authorized" before the 500.
#[test]
fn a_broken_bootstrap_token_refuses_before_counting() {
    let app = TestApp::with_vars(&[("admin_bootstrap_token", "short")]);
    // Create the signing key first, so the only change left is the counting.
    assert_eq!(app.register("alice", PASSWORD).status, 201);
    let before = app.store.snapshot();
    let res = app.send(
        app.request(Method::POST, "/auth/register", "192.0.2.11")
            .header("content-type", "application/json")
            .header("x-bootstrap-token", "anything-at-all-0123456789")
            .body(
                json!({"username": "root", "password": PASSWORD, "role": "admin"})
                    .to_string()
                    .into_bytes(),
            )
            .unwrap(),
    );
    assert_error(&res, 500, "internal_error");
    let reasons: Vec<_> = app
        .audit_events()
        .iter()
        .map(|e| format!("{} {}", e["event"], e["reason"]))
        .collect();
    let after = app.store.snapshot();
    let changed: Vec<_> = after
        .keys()
        .filter(|k| before.get(*k) != after.get(*k))
        .cloned()
        .collect();
    let misaudited = reasons
        .iter()
        .any(|r| r.contains("admin role not authorized"));
    assert!(
        changed.is_empty() && !misaudited,
        "refused for a broken variable, yet store keys changed: {changed:?}; audit: {reasons:?}"
    );
}

/// The readiness probe (deploy/spinkube/spinapp.yaml) is /health. A rollout
/// with a broken limit passes it, while every login answers 500.
#[test]
fn health_is_not_ready_while_a_variable_is_broken() {
    let app = TestApp::with_vars(&[("bcrypt_cost", "12"), ("lockout_duration_seconds", "1")]);
    let health = app.get("/health", None);
    let login = app.login("alice", PASSWORD);
    assert_error(&login, 500, "internal_error");
    assert_ne!(
        health.status, 200,
        "/health says ready while login is refused for a config error"
    );
}
