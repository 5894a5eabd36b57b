//! Hostile and malformed input gets a clear 4xx JSON error, never a 500,
//! and never changes stored data.

mod common;

use common::*;
use http::Method;
use serde_json::json;

fn post_raw(app: &TestApp, path: &str, content_type: Option<&str>, body: &[u8]) -> TestResponse {
    let mut req = app.request(Method::POST, path, "192.0.2.1");
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    app.send(req.body(body.to_vec()).unwrap())
}

#[test]
fn malformed_json_is_invalid_json() {
    let app = TestApp::new();
    for path in ["/auth/register", "/auth/login"] {
        for body in [&b"{"[..], b"", b"{\"username\": }", b"\xff\xfe", b"nul"] {
            assert_error(
                &post_raw(&app, path, Some("application/json"), body),
                400,
                "invalid_json",
            );
        }
    }
}

#[test]
fn non_object_json_is_a_validation_error() {
    let app = TestApp::new();
    for body in ["[]", "\"alice\"", "42", "null"] {
        let res = post_raw(
            &app,
            "/auth/login",
            Some("application/json"),
            body.as_bytes(),
        );
        assert_error(&res, 400, "validation_error");
    }
}

#[test]
fn post_without_json_content_type_is_415() {
    let app = TestApp::new();
    let body = json!({"username": "alice", "password": PASSWORD}).to_string();
    for ct in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("application/jsonp"),
    ] {
        for path in ["/auth/register", "/auth/login"] {
            assert_error(
                &post_raw(&app, path, ct, body.as_bytes()),
                415,
                "unsupported_media_type",
            );
        }
    }
    let with_charset = post_raw(
        &app,
        "/auth/register",
        Some("Application/JSON; charset=utf-8"),
        body.as_bytes(),
    );
    assert_eq!(with_charset.status, 201);
}

#[test]
fn bodies_over_16_kib_are_413() {
    let app = TestApp::new();
    let filler = "x".repeat(16 * 1024);
    let body = json!({"username": "alice", "password": PASSWORD, "pad": filler}).to_string();
    assert_error(
        &post_raw(
            &app,
            "/auth/register",
            Some("application/json"),
            body.as_bytes(),
        ),
        413,
        "payload_too_large",
    );
    // Exactly 16 KiB of (invalid) JSON is within the limit.
    let at_limit = vec![b' '; 16 * 1024];
    assert_error(
        &post_raw(&app, "/auth/login", Some("application/json"), &at_limit),
        400,
        "invalid_json",
    );
}

#[test]
fn missing_or_mistyped_fields_name_the_field() {
    let app = TestApp::new();
    let cases = [
        (json!({"password": PASSWORD}), "username"),
        (json!({"username": "alice"}), "password"),
        (json!({"username": 42, "password": PASSWORD}), "username"),
        (json!({"username": "alice", "password": ["x"]}), "password"),
        (
            json!({"username": "alice", "password": PASSWORD, "role": 1}),
            "role",
        ),
    ];
    for (body, field) in cases {
        let res = app.post_json("/auth/register", &body, "192.0.2.1");
        assert_error(&res, 400, "validation_error");
        assert!(
            res.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains(field),
            "{}",
            res.body
        );
    }
    let res = app.post_json("/auth/login", &json!({"username": "alice"}), "192.0.2.1");
    assert_error(&res, 400, "validation_error");
}

#[test]
fn unknown_fields_are_rejected() {
    let app = TestApp::new();
    let res = app.post_json(
        "/auth/register",
        &json!({"username": "alice", "password": PASSWORD, "passwrod": "typo"}),
        "192.0.2.1",
    );
    assert_error(&res, 400, "validation_error");
    assert!(res.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("passwrod"));
    let res = app.post_json(
        "/auth/login",
        &json!({"username": "alice", "password": PASSWORD, "role": "admin"}),
        "192.0.2.1",
    );
    assert_error(&res, 400, "validation_error");
}

#[test]
fn username_rules() {
    let app = TestApp::new();
    for bad in [
        "ab",
        &"x".repeat(33),
        "has space",
        "semi;colon",
        "slash/",
        "ünï",
        "a\"b",
        "new\nline",
    ] {
        let res = app.register(bad, PASSWORD);
        assert_error(&res, 400, "validation_error");
        assert!(res.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("username"));
    }
    for good in ["abc", "a.b-c_d", &"y".repeat(32)] {
        assert_eq!(app.register(good, PASSWORD).status, 201, "{good}");
    }
}

#[test]
fn password_rules_count_characters_and_never_truncate() {
    let app = TestApp::new();
    assert_error(&app.register("shorty", "1234567"), 400, "validation_error");
    // At the limits, and strong enough for the policy (issue 11).
    assert_eq!(app.register("eight", "tb7-qz4w").status, 201);
    assert_eq!(app.register("unicode", "éàüöçñøå").status, 201);
    let longest = format!("{}p", "pa".repeat(35));
    assert_eq!(app.register("longest", &longest).status, 201);
    let res = app.register("toolong", &"p".repeat(72));
    assert_error(&res, 400, "validation_error");
    assert!(res.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("password"));

    // Two passwords sharing their first 70 bytes are different passwords.
    let long = format!("{}q", "qr".repeat(35));
    assert_eq!(app.register("sharer", &long).status, 201);
    let almost = format!("{}r", &long[..70]);
    assert_error(&app.login("sharer", &almost), 401, "invalid_credentials");
    // A 72-byte login password is refused outright, not cut to 71 and accepted.
    assert_error(
        &app.login("sharer", &format!("{long}q")),
        400,
        "validation_error",
    );
    assert_eq!(app.login("sharer", &long).status, 200);
}

#[test]
fn any_other_role_is_400() {
    let app = TestApp::new();
    for role in ["superuser", "Admin", "", "root"] {
        let res = app.post_json(
            "/auth/register",
            &json!({"username": "alice", "password": PASSWORD, "role": role}),
            "192.0.2.1",
        );
        assert_error(&res, 400, "validation_error");
    }
}

#[test]
fn bad_input_never_changes_stored_data() {
    let app = TestApp::new();
    app.register("alice", PASSWORD);
    let before = app.store.len();
    post_raw(
        &app,
        "/auth/register",
        Some("application/json"),
        b"{\"username\":\"alice\",",
    );
    app.post_json(
        "/auth/register",
        &json!({"username": "alice", "password": 1}),
        "192.0.2.1",
    );
    post_raw(&app, "/auth/register", Some("text/plain"), b"x");
    assert_eq!(app.store.len(), before);
    assert_eq!(app.login("alice", PASSWORD).status, 200);
}

#[test]
fn errors_never_echo_what_the_client_sent() {
    let app = TestApp::new();
    let secret = "hunter2 very secret";
    let res = app.post_json(
        "/auth/register",
        &json!({"username": secret, "password": secret}),
        "192.0.2.1",
    );
    assert_eq!(res.status, 400);
    assert!(!String::from_utf8_lossy(&res.raw).contains(secret));
    let res = app.login("nobody", secret);
    assert!(!String::from_utf8_lossy(&res.raw).contains(secret));
}

/// Issue 10: with two equal keys, serde_json kept the last one, so
/// `{"role": "user", "role": "admin"}` meant whatever this parser picked
/// while a proxy or a log reader might pick the other. Refused instead,
/// before anything is counted or stored.
#[test]
fn a_body_with_a_field_given_twice_is_refused() {
    let app = TestApp::new();
    let before = app.store.snapshot();
    for (path, body) in [
        (
            "/auth/register",
            r#"{"username":"alice","password":"correct horse battery","role":"user","role":"admin"}"#,
        ),
        (
            "/auth/register",
            r#"{"username":"alice","username":"bob","password":"correct horse battery"}"#,
        ),
        (
            "/auth/login",
            r#"{"username":"alice","password":"x","password":"correct horse battery"}"#,
        ),
        (
            "/auth/refresh",
            r#"{"refresh_token":"a","refresh_token":"b"}"#,
        ),
    ] {
        let res = post_raw(&app, path, Some("application/json"), body.as_bytes());
        assert_error(&res, 400, "validation_error");
        assert!(
            res.body["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("duplicate field: "),
            "{}",
            res.body
        );
    }
    assert_eq!(app.store.snapshot(), before);
    // Equal keys deeper down are the value's business, and every value of
    // ours is a string: such a body is refused for its type.
    let res = post_raw(
        &app,
        "/auth/login",
        Some("application/json"),
        br#"{"username":{"a":1,"a":2},"password":"x"}"#,
    );
    assert_error(&res, 400, "validation_error");
}

/// Issue 10: a query string on a route that takes none was ignored; it is
/// refused like an unknown body field, before the guard or the store.
#[test]
fn a_query_string_on_a_route_that_takes_none_is_refused() {
    let app = TestApp::new();
    let token = app.user_token("alice");
    let before = app.store.snapshot();
    for (method, path) in [
        (Method::POST, "/auth/register?role=admin"),
        (Method::POST, "/auth/login?username=alice"),
        (Method::POST, "/auth/refresh?x"),
        (Method::GET, "/auth/protected?debug=1"),
        (Method::GET, "/auth/me?a=b&c=d"),
        (Method::GET, "/health?verbose"),
        (Method::POST, "/auth/logout?scope=global&scope=local"),
        (Method::POST, "/auth/logout?everything=1"),
    ] {
        let req = app
            .request(method.clone(), path, "192.0.2.1")
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json");
        let res = app.send(req.body(b"{}".to_vec()).unwrap());
        assert_error(&res, 400, "validation_error");
    }
    assert_eq!(app.store.snapshot(), before);
    // An empty query is no query at all.
    assert_eq!(app.get("/auth/protected?", Some(&token)).status, 200);
}

/// Found by fuzzing (`fuzz/fuzz_targets/json_body.rs`): with duplicate keys
/// refused, a body that is not JSON at all (`[`) was answered as a shape
/// error, `validation_error`, because the object parse failed first.
#[test]
fn a_body_that_is_not_json_is_invalid_json_whatever_it_starts_with() {
    let app = TestApp::new();
    for body in [
        &b"["[..],
        b"[1,",
        b"1x",
        b"\"a\"]",
        b"1 2",
        b"{\"a\":1,\"a\":2,",
        // Invalid UTF-8 in a string of a non-object (found by the second run).
        b"[\"not\",\"\x9f\x91\"]",
    ] {
        let res = post_raw(&app, "/auth/login", Some("application/json"), body);
        assert_error(&res, 400, "invalid_json");
    }
}

/// Found by the bad-input corpus over HTTP (`framing_valid_json_cut_short_then_close`):
/// a client that sent part of its `Content-Length` and closed, or no last
/// chunk, had the prefix read as the whole body, and a valid prefix
/// registered a user. The component marks such a request; the router
/// refuses it before any handler, on every route.
#[test]
fn a_request_whose_body_was_cut_short_is_refused_before_any_handler() {
    let app = TestApp::new();
    let token = app.user_token("alice");
    let before = app.store.snapshot();
    for (method, path) in [
        (Method::POST, "/auth/register"),
        (Method::POST, "/auth/login"),
        (Method::POST, "/auth/logout"),
        (Method::GET, "/auth/protected"),
    ] {
        let req = app
            .request(method, path, "192.0.2.1")
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {token}"))
            .extension(secure_backend::router::IncompleteBody)
            .body(br#"{"username":"mallory","password":"correct horse battery"}"#.to_vec())
            .unwrap();
        assert_error(&app.send(req), 400, "invalid_json");
    }
    assert_eq!(app.store.snapshot(), before);
}

/// Issue 10 review: with two `Content-Type` headers the first was read, so
/// `application/json` then `text/plain` logged in while a proxy judging by
/// the last saw text. Two are refused, whatever their order.
#[test]
fn two_content_types_are_refused_whatever_their_order() {
    let app = TestApp::new();
    assert_eq!(app.register("alice", PASSWORD).status, 201);
    let before = app.store.snapshot();
    for (first, second) in [
        ("application/json", "text/plain"),
        ("text/plain", "application/json"),
        ("application/json", "application/json"),
    ] {
        let req = app
            .request(Method::POST, "/auth/login", "192.0.2.9")
            .header("content-type", first)
            .header("content-type", second)
            .body(format!(r#"{{"username":"alice","password":"{PASSWORD}"}}"#).into_bytes())
            .unwrap();
        assert_error(&app.send(req), 415, "unsupported_media_type");
    }
    assert_eq!(app.store.snapshot(), before);
}
