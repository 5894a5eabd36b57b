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

const GOOD_SECRET: &str = "an-operator-secret-of-at-least-32-bytes!!";

/// Review of issue 8, finding 1: a refresh read `jwt_secret` only after
/// rotating, so a restart with a broken key spent every refreshing client's
/// token and the retry looked like theft. An operator restarts with a broken
/// `jwt_secret` (too short); a client refreshes and gets a 500; the operator
/// fixes the variable; the client retries the same refresh token, as it
/// never received a new one.
#[test]
fn a_refresh_refused_for_a_broken_jwt_secret_spends_nothing() {
    let mut app = TestApp::unthrottled(&[("jwt_secret", GOOD_SECRET)]);
    assert_eq!(app.register("alice", PASSWORD).status, 201);
    let p = pair(&app.login("alice", PASSWORD));

    app.vars.insert("jwt_secret".into(), "too-short".into());
    let before = app.store.snapshot();
    let broken = app.refresh(&p.refresh);
    let after = app.store.snapshot();
    let changed: Vec<_> = after
        .keys()
        .filter(|k| before.get(*k) != after.get(*k))
        .cloned()
        .collect();

    app.vars.insert("jwt_secret".into(), GOOD_SECRET.into());
    let retry = app.refresh(&p.refresh);
    assert!(app.events_named("refresh_token_reuse").is_empty());
    let access = app.get("/auth/protected", Some(&p.access));
    assert_error(&broken, 500, "internal_error");
    assert!(
        changed.is_empty(),
        "a request refused for a broken variable changed the store: {changed:?}"
    );
    assert_eq!(retry.status, 200, "the session was lost to a config error");
    assert_eq!(access.status, 200);
}

/// What one route answered with one variable broken, and which store keys
/// the request changed.
struct Refusal {
    var: &'static str,
    route: &'static str,
    status: u16,
    changed: Vec<String>,
}

/// Every route, with each variable broken in turn by `break_it` (given the
/// variable and a value that does not parse).
fn every_route_with_each_variable_broken(
    break_it: impl Fn(&mut TestApp, &str, &str),
) -> Vec<Refusal> {
    let broken: &[(&str, &str)] = &[
        ("jwt_secret", "short"),
        ("admin_bootstrap_token", "short"),
        ("bcrypt_cost", "x"),
        ("token_ttl_seconds", "x"),
        ("refresh_token_ttl_seconds", "x"),
        ("session_ttl_seconds", "x"),
        ("login_rate_limit", "x"),
        ("login_rate_window_seconds", "x"),
        ("register_rate_limit", "x"),
        ("register_rate_window_seconds", "x"),
        ("lockout_threshold", "x"),
        ("lockout_duration_seconds", "x"),
        ("client_ip_header", "bad header"),
    ];
    let routes = [
        "register",
        "register_admin",
        "login_ok",
        "login_bad",
        "refresh",
        "logout",
        "logout_global",
        "password",
        "password_wrong",
        "protected",
        "me",
        "dashboard",
        "list",
        "show",
        "unlock",
        "role",
        "revoke",
        "delete",
        "health",
    ];
    let mut refusals = Vec::new();
    for (var, value) in broken {
        for route in routes {
            let mut app = TestApp::unthrottled(&[("jwt_secret", GOOD_SECRET)]);
            let admin = app.admin_token("root");
            assert_eq!(app.register("alice", PASSWORD).status, 201);
            assert_eq!(app.register("bob", PASSWORD).status, 201);
            let p = pair(&app.login("alice", PASSWORD));
            break_it(&mut app, var, value);
            let before = app.store.snapshot();
            let res = match route {
                "register" => app.register("carol", PASSWORD),
                "register_admin" => app.register_admin("root2"),
                "login_ok" => app.login("alice", PASSWORD),
                "login_bad" => app.login("alice", "wrong password!!"),
                "refresh" => app.refresh(&p.refresh),
                "logout" => app.call(Method::POST, "/auth/logout", Some(&p.access), None),
                "logout_global" => {
                    app.call(Method::POST, "/auth/logout?scope=global", Some(&p.access), None)
                }
                "password" => app.call(
                    Method::POST,
                    "/auth/password",
                    Some(&p.access),
                    Some(&json!({"current_password": PASSWORD, "new_password": "another long one"})),
                ),
                "password_wrong" => app.call(
                    Method::POST,
                    "/auth/password",
                    Some(&p.access),
                    Some(&json!({"current_password": "nope nope nope", "new_password": "another long one"})),
                ),
                "protected" => app.get("/auth/protected", Some(&p.access)),
                "me" => app.get("/auth/me", Some(&p.access)),
                "dashboard" => app.get("/admin/dashboard", Some(&admin)),
                "list" => app.get("/admin/users", Some(&admin)),
                "show" => app.get("/admin/users/bob", Some(&admin)),
                "unlock" => app.call(Method::POST, "/admin/users/bob/unlock", Some(&admin), None),
                "role" => app.call(
                    Method::PUT,
                    "/admin/users/bob/role",
                    Some(&admin),
                    Some(&json!({"role": "admin"})),
                ),
                "revoke" => app.call(Method::POST, "/admin/users/bob/sessions/revoke", Some(&admin), None),
                "delete" => app.call(Method::DELETE, "/admin/users/bob", Some(&admin), None),
                "health" => app.get("/health", None),
                _ => unreachable!(),
            };
            let after = app.store.snapshot();
            let changed: Vec<_> = after
                .keys()
                .chain(before.keys())
                .filter(|k| before.get(*k) != after.get(*k))
                .cloned()
                .collect();
            refusals.push(Refusal {
                var,
                route,
                status: res.status,
                changed,
            });
        }
    }
    refusals
}

/// The requests that answered 500 after changing the store.
fn changed_before_refusing(refusals: &[Refusal]) -> Vec<String> {
    refusals
        .iter()
        .filter(|r| r.status == 500 && !r.changed.is_empty())
        .map(|r| {
            format!(
                "{} broken, {}: 500 after changing {:?}",
                r.var, r.route, r.changed
            )
        })
        .collect()
}

/// Every route, with each variable broken in turn: a request that answers
/// 500 for the broken variable has not changed the store.
#[test]
fn no_route_changes_the_store_before_refusing_a_broken_variable() {
    let refusals = every_route_with_each_variable_broken(|app, var, value| {
        app.vars.insert(var.to_string(), value.to_string());
    });
    let failures = changed_before_refusing(&refusals);
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Review of the signing key, finding 2: the component read each variable
/// with `spin_sdk::variables::get(name).ok()`, so a read that failed (the
/// provider down, a secret store refusing: anything but "undefined") made
/// the variable unset, and its default applied. Behind a proxy, an
/// unreadable `client_ip_header` counted every client as the proxy; an
/// unreadable `jwt_secret` made a signing key in the store. Only undefined
/// and empty mean unset now: any other error refuses what needs the
/// variable, before any store change, and fails the readiness probe.
#[test]
fn a_variable_that_cannot_be_read_fails_closed_instead_of_taking_its_default() {
    let mut app = TestApp::with_vars(&[("client_ip_header", "true-client-ip")]);
    let token = app.user_token("alice");
    app.vars.make_unreadable("client_ip_header");
    let before = app.store.snapshot();
    let logged_before = app.events_named("config_error").len();
    let login = app.send(
        proxied(&app, Method::POST, "/auth/login")
            .header("content-type", "application/json")
            .body(
                json!({"username": "alice", "password": PASSWORD})
                    .to_string()
                    .into_bytes(),
            )
            .unwrap(),
    );
    let register = app.send(
        proxied(&app, Method::POST, "/auth/register")
            .header("content-type", "application/json")
            .body(
                json!({"username": "carol", "password": PASSWORD})
                    .to_string()
                    .into_bytes(),
            )
            .unwrap(),
    );
    let changed = app.store.snapshot() != before;
    let with_proxy_ip = app
        .audit_events()
        .iter()
        .filter(|e| e["client_ip"] == PROXY)
        .count();
    assert_error(&login, 500, "internal_error");
    assert_error(&register, 500, "internal_error");
    assert!(!changed, "refused after changing the store");
    assert_eq!(with_proxy_ip, 0, "the proxy was audited as the client");
    let logged = app.events_named("config_error");
    assert_eq!(logged.len() - logged_before, 2, "{logged:#?}");
    let reason = logged[logged_before]["reason"].as_str().unwrap();
    assert!(
        reason.contains("client_ip_header") && reason.contains("could not be read"),
        "{reason}"
    );
    // The readiness probe fails; a route that does not need it serves.
    assert_error(&app.get("/health", None), 500, "internal_error");
    assert_access_works(&app, &token, "a valid token");
    assert_eq!(app.get("/openapi.json", None).status, 200);

    // An unreadable `jwt_secret`, before any key exists: none is made.
    let mut app = TestApp::new();
    app.vars.make_unreadable("jwt_secret");
    assert_error(&app.register("alice", PASSWORD), 500, "internal_error");
    assert_error(&app.login("alice", PASSWORD), 500, "internal_error");
    assert_error(&app.get("/health", None), 500, "internal_error");
    assert!(app.store.is_empty(), "{:?}", app.store.keys());
    assert_eq!(app.get("/openapi.json", None).status, 200);
}

/// A variable that cannot be read refuses exactly the requests that a value
/// that does not parse refuses, each before it changes the store.
#[test]
fn an_unreadable_variable_refuses_what_a_broken_one_refuses() {
    let broken = every_route_with_each_variable_broken(|app, var, value| {
        app.vars.insert(var.to_string(), value.to_string());
    });
    let unreadable = every_route_with_each_variable_broken(|app, var, _| {
        app.vars.make_unreadable(var);
    });
    let failures = changed_before_refusing(&unreadable);
    assert!(failures.is_empty(), "{failures:#?}");
    let differing: Vec<_> = broken
        .iter()
        .zip(&unreadable)
        .filter(|(b, u)| b.status != u.status)
        .map(|(b, u)| {
            format!(
                "{} {}: broken {}, unreadable {}",
                b.var, b.route, b.status, u.status
            )
        })
        .collect();
    assert!(differing.is_empty(), "{differing:#?}");
    assert!(unreadable.iter().any(|r| r.status == 500));
}
