//! Issue 10: the bad-input corpus (`tests/corpus/bad_input.jsonl`) through
//! the router, and log injection. Every corpus request gets the 4xx the
//! contract documents for its route, with the JSON error body; none changes
//! a byte of the store; the service keeps serving; and no request, however
//! hostile its username, path or headers, forges or breaks an audit line.
//!
//! Each corpus request comes from a client address of its own (198.18.x.y,
//! the benchmarking range) under the default rate limits: a request that
//! slipped past validation to a limiter shows up as a store change, and
//! cannot throttle the entries after it.

mod common;
mod corpus;

use common::*;
use corpus::{Entry, Placeholders};
use http::{HeaderName, HeaderValue, Method, Request, Uri};
use secure_backend::context::Services;
use secure_backend::router;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

/// The state every corpus request meets: a user and an admin, each with a
/// live session, so guarded routes and existing names are exercised.
fn set_up() -> (TestApp, Placeholders) {
    let app = TestApp::new();
    assert_eq!(app.register("alice", PASSWORD).status, 201);
    let login = pair(&app.login("alice", PASSWORD));
    let admin_token = app.admin_token("root");
    let placeholders = Placeholders {
        user_token: login.access,
        admin_token,
        user_refresh: login.refresh,
    };
    (app, placeholders)
}

/// The `i`th corpus client: 198.18.0.0/15, one address per entry.
fn client_ip(i: usize) -> String {
    format!("198.18.{}.{}", i / 256 % 256, i % 256)
}

/// The entry as Spin would deliver it: its headers, then Spin's own
/// `spin-client-addr` (last, so it wins over one the client sent).
fn request(entry: &Entry, ip: &str) -> Result<Request<Vec<u8>>, String> {
    let method = Method::from_bytes(entry.method.as_bytes()).map_err(|e| e.to_string())?;
    let uri = Uri::try_from(entry.path.clone()).map_err(|e| e.to_string())?;
    let mut builder = Request::builder().method(method).uri(uri);
    for (name, value) in &entry.headers {
        let name = HeaderName::from_bytes(name).map_err(|e| e.to_string())?;
        let value = HeaderValue::from_bytes(value).map_err(|e| e.to_string())?;
        builder = builder.header(name, value);
    }
    builder
        .header("spin-client-addr", format!("{ip}:40000"))
        .body(entry.body.clone())
        .map_err(|e| e.to_string())
}

/// Serves `req` without `TestApp::send`'s assertions: the runner reports
/// every problem of every entry, not the first.
fn serve(app: &TestApp, req: Request<Vec<u8>>) -> http::Response<Vec<u8>> {
    let services = Services {
        store: &app.store,
        clock: &app.clock,
        audit: &app.audit,
        variables: &app.vars,
    };
    router::handle(req, services)
}

/// What is wrong with `res` as the answer to `entry` (nothing: empty).
fn problems(entry: &Entry, res: &http::Response<Vec<u8>>) -> Vec<String> {
    let mut found = Vec::new();
    let expect = &entry.expect;
    let header = |name: &str| {
        res.headers()
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    let status = res.status().as_u16();
    if status != expect.status {
        found.push(format!("status {status}, expected {}", expect.status));
    }
    for (name, value) in [
        ("cache-control", "no-store"),
        ("x-content-type-options", "nosniff"),
    ] {
        if header(name).as_deref() != Some(value) {
            found.push(format!("{name}: {:?}", header(name)));
        }
    }
    found.extend(corpus::error_body_problems(
        expect,
        header("content-type").as_deref(),
        res.body(),
    ));
    if status == 405 && header("allow") != expect.allow {
        found.push(format!(
            "Allow {:?}, expected {:?}",
            header("allow"),
            expect.allow
        ));
    }
    let challenged = ["missing_token", "invalid_token"].contains(&expect.code.as_str());
    if status == 401
        && challenged
        && !header("www-authenticate")
            .is_some_and(|c| c.starts_with("Bearer realm=\"secure-backend\""))
    {
        found.push(format!(
            "401 without the Bearer challenge: {:?}",
            header("www-authenticate")
        ));
    }
    found
}

/// What changed between two snapshots, by key.
fn store_diff(
    before: &BTreeMap<String, Vec<u8>>,
    after: &BTreeMap<String, Vec<u8>>,
) -> Vec<String> {
    let keys: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    keys.into_iter()
        .filter(|k| before.get(*k) != after.get(*k))
        .map(|k| match (before.get(k), after.get(k)) {
            (None, Some(_)) => format!("+{k}"),
            (Some(_), None) => format!("-{k}"),
            _ => format!("~{k}"),
        })
        .collect()
}

#[test]
fn every_corpus_request_gets_its_documented_refusal_and_changes_nothing() {
    let (app, placeholders) = set_up();
    let entries = corpus::load(&placeholders);
    let lines_before = app.audit.lines().len();
    let started = std::time::Instant::now();
    let mut failures = Vec::new();
    let mut sent = 0;
    for (i, entry) in entries.iter().enumerate() {
        if entry.http_only {
            continue;
        }
        let req = match request(entry, &client_ip(i)) {
            Ok(req) => req,
            Err(e) => {
                failures.push(format!(
                    "{}: `http` cannot build it ({e}): mark it http_only",
                    entry.name
                ));
                continue;
            }
        };
        sent += 1;
        let before = app.store.snapshot();
        let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| serve(&app, req)));
        let res = match res {
            Ok(res) => res,
            Err(_) => {
                failures.push(format!("{}: the router panicked", entry.name));
                continue;
            }
        };
        let mut found = problems(entry, &res);
        let changed = store_diff(&before, &app.store.snapshot());
        if !changed.is_empty() {
            found.push(format!("changed the store: {changed:?}"));
        }
        if !found.is_empty() {
            failures.push(format!("{}: {}", entry.name, found.join("; ")));
        }
    }
    let elapsed = started.elapsed();

    // Nothing the corpus sent was logged as a success, and every line is whole.
    let lines = app.audit.lines();
    for line in &lines[lines_before..] {
        let event = whole_audit_line(line);
        if event["outcome"] == "success" {
            failures.push(format!("a corpus request was logged as a success: {line}"));
        }
    }
    for line in &lines[..lines_before] {
        whole_audit_line(line);
    }

    // And the service keeps serving.
    assert_eq!(app.register("survivor", PASSWORD).status, 201);
    let token = app.login("survivor", PASSWORD).token();
    assert_access_works(&app, &token, "after the corpus");
    assert_access_works(&app, &placeholders.user_token, "the session from before");

    eprintln!(
        "bad_input: {sent} corpus requests through the router in {} ms",
        elapsed.as_millis()
    );
    assert!(
        failures.is_empty(),
        "{} of {sent} corpus requests went wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn the_corpus_holds_at_least_200_requests_covering_every_kind_of_bad_input() {
    let entries = corpus::load(&Placeholders::dummy());
    assert!(entries.len() >= 200, "only {} entries", entries.len());
    let mut names = BTreeSet::new();
    for entry in &entries {
        assert!(names.insert(&entry.name), "{} twice", entry.name);
        assert!(
            (400..500).contains(&entry.expect.status),
            "{}: a corpus request is refused with a 4xx",
            entry.name
        );
    }
    let categories: BTreeSet<&str> = entries.iter().map(|e| e.category.as_str()).collect();
    for kind in [
        "method",
        "json_malformed",
        "json_not_object",
        "json_deep",
        "wrong_type",
        "duplicate_key",
        "huge_number",
        "control_chars",
        "invalid_utf8",
        "overlong",
        "chunked",
        "framing",
        "content_type",
        "headers",
        "path",
        "query",
        "fields",
        "username",
        "password",
        "role",
        "authorization",
        "log_injection",
    ] {
        assert!(categories.contains(kind), "no {kind} entries");
    }
    // Every method on every path.
    let methods = [
        "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "FOO",
    ];
    for path in router::paths().chain(["/no/such/path"]) {
        let path = path.replace("{username}", "alice");
        for method in methods {
            let listed = entries
                .iter()
                .any(|e| e.category == "method" && e.method == method && e.path == path.as_bytes());
            let succeeds = method == "GET" && ["/health", "/openapi.json"].contains(&path.as_str());
            assert!(listed || succeeds, "no entry for {method} {path}");
        }
    }
}

fn spec() -> Value {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.yaml"))
        .expect("openapi.yaml");
    yaml_serde::from_str(&text).expect("openapi.yaml parses")
}

/// Whether `path` fills the spec's path template (`{name}`: one non-empty segment).
fn fills(template: &str, path: &str) -> bool {
    let (template, path): (Vec<&str>, Vec<&str>) =
        (template.split('/').collect(), path.split('/').collect());
    template.len() == path.len()
        && template
            .iter()
            .zip(&path)
            .all(|(t, s)| t == s || (t.starts_with('{') && !s.is_empty()))
}

/// Each corpus answer is one `openapi.yaml` documents for that request: a
/// status listed under its operation, 404 `not_found` for a path the spec
/// does not have, 405 `method_not_allowed` (with `Allow` naming the path's
/// operations) for a method it does not list there, and a code of the
/// error schema.
#[test]
fn every_expected_answer_is_documented_for_its_route() {
    let spec = spec();
    let codes: BTreeSet<&str> = spec["components"]["schemas"]["Error"]["properties"]["error"]
        ["properties"]["code"]["enum"]
        .as_array()
        .expect("error codes")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let paths = spec["paths"].as_object().expect("paths");
    let mut undocumented = Vec::new();
    for entry in corpus::load(&Placeholders::dummy()) {
        let expect = &entry.expect;
        let path = Uri::try_from(entry.path.clone())
            .map(|u| u.path().to_owned())
            .unwrap_or_else(|_| entry.path_only());
        let item = paths.iter().find(|(t, _)| fills(t, &path)).map(|(_, i)| i);
        let method = entry.method.to_ascii_lowercase();
        let operations: BTreeSet<String> = item
            .and_then(Value::as_object)
            .map(|i| {
                i.keys()
                    .filter(|k| k.as_str() != "parameters")
                    .map(|k| k.to_ascii_uppercase())
                    .collect()
            })
            .unwrap_or_default();
        let problem = if !codes.contains(expect.code.as_str()) {
            Some(format!("code {} is not in the error schema", expect.code))
        } else {
            match (expect.status, expect.code.as_str(), item) {
                (404, "not_found", None) => None,
                (404, "not_found", Some(_)) => Some("404 not_found on a documented path".into()),
                (405, "method_not_allowed", Some(_)) => {
                    let allow: BTreeSet<String> = expect
                        .allow
                        .iter()
                        .flat_map(|a| a.split(", "))
                        .map(str::to_owned)
                        .collect();
                    (operations.contains(&entry.method) || allow != operations)
                        .then(|| format!("405 with Allow {allow:?}; the spec lists {operations:?}"))
                }
                (_, _, None) => Some(format!("{} on a path the spec lacks", expect.status)),
                (status, _, Some(item)) => match item.get(&method) {
                    None => Some(format!("{status} for a method the spec lacks")),
                    Some(op) => op["responses"]
                        .get(status.to_string())
                        .is_none()
                        .then(|| format!("{method} {path} does not document {status}")),
                },
            }
        };
        if let Some(problem) = problem {
            undocumented.push(format!(
                "{}: {} {} ({})",
                entry.name, expect.status, expect.code, problem
            ));
        }
    }
    assert!(
        undocumented.is_empty(),
        "answers openapi.yaml does not document:\n{}",
        undocumented.join("\n")
    );
}

// Log injection: every audit line stays one JSON object with the documented
// fields, and carries only values the service vouches for.

/// A forged event: what an injection would try to add to the log.
const FORGED: &str = r#"","event":"login_success","outcome":"success","username":"root"#;

/// Parses an audit line as exactly one JSON object with the documented
/// fields (see [`corpus::audit_line`]); panics, naming the line, otherwise.
fn whole_audit_line(line: &str) -> Value {
    let event = corpus::audit_line(line).unwrap_or_else(|e| panic!("{e}"));
    assert_audit_fields(&event);
    event
}

fn assert_log_is_whole_and_unforged(app: &TestApp, logins: usize) {
    let lines = app.audit.lines();
    assert!(!lines.is_empty());
    let events: Vec<Value> = lines.iter().map(|l| whole_audit_line(l)).collect();
    let successes = events
        .iter()
        .filter(|e| e["event"] == "login_success")
        .count();
    assert_eq!(successes, logins, "a forged login_success: {lines:#?}");
}

fn hostile_strings() -> Vec<String> {
    vec![
        format!("alice{FORGED}"),
        "alice\n{\"event\":\"login_success\",\"outcome\":\"success\"}".into(),
        "root\r\n{\"ts\":\"x\"}\r\n".into(),
        "\u{1b}[31mroot\u{1b}[0m".into(),
        "\u{1b}]0;owned\u{7}root".into(),
        "root\"".into(),
        "root\\\"}".into(),
        "\"}{\"event\":\"login_success\"".into(),
        "alice\u{2028}root\u{2029}".into(),
        "\u{0}root".into(),
        "ro\u{202e}ot".into(),
    ]
}

/// Usernames that fail validation, in registration and login bodies, full
/// of newlines, quotes, ANSI escape sequences and JSON fragments.
#[test]
fn hostile_usernames_never_forge_or_break_an_audit_line() {
    let app = TestApp::unthrottled(&[]);
    for name in hostile_strings() {
        assert_error(&app.register(&name, PASSWORD), 400, "validation_error");
        assert_error(&app.login(&name, PASSWORD), 400, "validation_error");
        let res = app.post_json(
            "/auth/register",
            &json!({"username": "mallory", "password": PASSWORD, "role": name}),
            "192.0.2.1",
        );
        assert_error(&res, 400, "validation_error");
    }
    assert_log_is_whole_and_unforged(&app, 0);
    // The refusals are logged, naming no user: the name did not parse.
    let refusals = app.events_named("registration");
    assert_eq!(refusals.len(), 2 * hostile_strings().len());
    for refusal in refusals {
        assert_eq!(refusal["outcome"], "failure");
        assert!(refusal.get("username").is_none(), "{refusal}");
    }
}

/// Paths with percent-encoded newlines and escapes, raw quotes and braces
/// and JSON fragments reach the log as the one `path` value they are (the
/// first 256 characters), never as fields of their own.
#[test]
fn hostile_paths_never_forge_or_break_an_audit_line() {
    let app = TestApp::new();
    let paths = [
        "/admin/users/x%0D%0A%7B%22event%22%3A%22login_success%22%7D".to_owned(),
        "/admin/users/x%0A%0A".to_owned(),
        format!("/admin/users/x{FORGED}"),
        "/admin/users/{\"event\":\"login_success\"}".to_owned(),
        "/admin/users/%1B%5B31mroot%1B%5B0m".to_owned(),
        "/admin/users/\\\"}\\u000a".to_owned(),
        format!("/admin/users/{}", "\",".repeat(300)),
        "/auth/protected?x=%22%7D%0A".to_owned(),
    ];
    for path in &paths {
        let req = app
            .request(Method::GET, path, "192.0.2.1")
            .header("authorization", "Bearer a.b.c")
            .body(Vec::new())
            .unwrap();
        let res = app.send(req);
        assert!([400, 401].contains(&res.status), "{path}: {}", res.status);
    }
    assert_log_is_whole_and_unforged(&app, 0);
    let rejected = app.events_named("token_rejected");
    // Each guarded path was logged once, as itself (the query is not logged).
    let logged: Vec<&str> = rejected.iter().filter_map(|e| e["path"].as_str()).collect();
    for path in paths.iter().filter(|p| !p.contains('?')) {
        let shown: String = path.chars().take(256).collect();
        assert!(
            logged.contains(&shown.as_str()),
            "{shown} not logged: {logged:?}"
        );
    }
}

/// Headers the log reads (the configured `client_ip_header`) or must not
/// (User-Agent, Authorization) full of quotes, escape sequences and JSON
/// fragments: `http` refuses newlines and control characters in a value,
/// so these are what a client can put there.
#[test]
fn hostile_headers_never_forge_or_break_an_audit_line() {
    let app = TestApp::with_vars(&[("client_ip_header", "x-forwarded-for")]);
    let fragments = [
        FORGED.to_owned(),
        format!("203.0.113.9{FORGED}"),
        "1.2.3.4\", \"event\": \"login_success".to_owned(),
        "203.0.113.9, 1.2.3.4\"}{\"event\":\"login_success\"}".to_owned(),
        "[31m198.51.100.1[0m".to_owned(),
        "\\u000a{\"event\":\"login_success\"}".to_owned(),
        "\u{e9}\u{1f600}".to_owned(),
    ];
    let forged_subject = {
        use ct_codecs::{Base64UrlSafeNoPadding, Encoder as _};
        let part = |v: &Value| Base64UrlSafeNoPadding::encode_to_string(v.to_string()).unwrap();
        format!(
            "{}.{}.c2ln",
            part(&json!({"alg": "HS256", "typ": "JWT"})),
            part(&json!({"sub": FORGED, "exp": 4_102_444_800u64}))
        )
    };
    for fragment in &fragments {
        let value = HeaderValue::from_bytes(fragment.as_bytes()).unwrap();
        for (authorization, forwarded) in [
            (format!("Bearer {forged_subject}"), value.clone()),
            ("Bearer a.b.c".to_owned(), value.clone()),
            (
                format!("Bearer {fragment}"),
                HeaderValue::from_static("198.51.100.7"),
            ),
            (fragment.clone(), HeaderValue::from_static("198.51.100.7")),
        ] {
            let Ok(authorization) = HeaderValue::from_bytes(authorization.as_bytes()) else {
                continue;
            };
            let req = Request::builder()
                .uri("/auth/protected")
                .header("spin-client-addr", "192.0.2.1:40000")
                .header("x-forwarded-for", forwarded)
                .header("user-agent", value.clone())
                .header("authorization", authorization)
                .body(Vec::new())
                .unwrap();
            assert_eq!(app.send(req).status, 401);
        }
    }
    assert_log_is_whole_and_unforged(&app, 0);
    let rejected = app.events_named("token_rejected");
    assert_eq!(rejected.len(), 4 * fragments.len());
    for event in &rejected {
        assert!(event.get("username").is_none(), "{event}");
        let ip = event["client_ip"].as_str().unwrap();
        assert!(
            ["unknown", "198.51.100.7", "1.2.3.4"].contains(&ip),
            "{event}"
        );
    }
}
