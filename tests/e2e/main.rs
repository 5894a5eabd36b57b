//! The built `.wasm` over real HTTP: every case runs under the wasmtime test
//! host (`tests/host`), and again under `spin up` when the Spin CLI is on
//! `PATH`; each on a SQLite file and on Redis when `SECURE_BACKEND_TEST_REDIS`
//! names a server (`.ci/run` starts one). Cases whose runtime or store is
//! missing print that they were skipped, and why.
//!
//! The first test to run builds the component and the host (cargo rebuilds
//! only what is stale), so a fresh clone needs nothing but `cargo test`.

// Shared with the router-level tests: `in_parallel`.
#[path = "../common/mod.rs"]
mod common;
mod harness;
mod sessions;
// Issue 10: the bad-input corpus over HTTP.
mod bad_input;
// Issue 11: two-factor login over HTTP.
mod mfa;

use bad_input::bad_input_corpus_over_http;
use common::{assert_audit_fields, in_parallel};
use harness::*;
use jwt_simple::prelude::{HS256Key, MACLike as _, NoCustomClaims};
use mfa::{
    twenty_parallel_verifications_with_one_code_give_one_session, two_factor_login_end_to_end,
    two_instances_refuse_a_code_used_on_the_other,
};
use serde_json::json;
use sessions::*;
use std::collections::HashSet;

const PASSWORD: &str = "correct horse battery";
const BOOTSTRAP: &str = "e2e-bootstrap-token-0123456789";

/// Each case as a test in module `$module`, served as `$target` says
/// (skipped, saying why, where that runtime or store is not available).
macro_rules! e2e {
    ($module:ident: $runtime:ident on $backend:ident { $($case:ident),* $(,)? }) => {
        mod $module {
            use super::harness::{Backend, Runtime, Target};
            const TARGET: Target = Target { runtime: Runtime::$runtime, backend: Backend::$backend };
            $( #[test] fn $case() {
                if TARGET.available(stringify!($case)) { super::$case(TARGET) }
            } )*
        }
    };
}

/// The whole suite under the test host and `spin up`, each on SQLite and
/// on Redis.
macro_rules! every_target {
    ($($case:ident),* $(,)?) => {
        e2e!(test_host: TestHost on Sqlite { $($case),* });
        e2e!(spin_up: Spin on Sqlite { $($case),* });
        e2e!(test_host_redis: TestHost on Redis { $($case),* });
        e2e!(spin_up_redis: Spin on Redis { $($case),* });
    };
}

every_target!(
    documented_flow_with_admin_bootstrap,
    every_error_code_over_http,
    security_headers_on_every_response,
    login_rate_limit_is_per_client_address,
    client_sent_spin_client_addr_does_not_escape_the_limit,
    lockout_answers_the_same_for_unknown_users,
    tokens_and_users_survive_a_restart,
    audit_lines_are_json_without_secrets,
    twenty_parallel_registrations_of_one_name_give_one_201,
    fifty_parallel_wrong_passwords_give_five_401_and_45_423,
    thirty_parallel_logins_from_one_address_let_exactly_five_past,
    a_lower_threshold_after_a_restart_locks_no_account_for_good,
    a_lock_shorter_than_a_login_is_refused,
    refresh_reuse_revokes_the_family_and_logout_ends_the_session,
    a_password_change_ends_other_sessions,
    an_admin_unlocks_a_locked_user,
    a_deleted_user_is_signed_out_and_the_name_is_free,
    twenty_parallel_refreshes_of_one_token_give_one_200,
    bad_input_corpus_over_http,
    two_factor_login_end_to_end,
    twenty_parallel_verifications_with_one_code_give_one_session,
);

// Several instances on one store, as a scaled-out deployment runs: only a
// shared backend (Redis) makes sense here.
e2e!(two_instances_test_host: TestHost on Redis {
    two_instances_share_users_tokens_and_one_signing_key,
    two_instances_racing_for_the_first_signing_key_agree_on_one,
    two_instances_twenty_parallel_registrations_give_one_201,
    two_instances_fifty_parallel_wrong_passwords_give_five_checks,
    two_instances_thirty_parallel_logins_from_one_address_let_five_past,
    two_instances_share_logout_and_refresh_rotation,
    two_instances_see_demotion_deletion_and_password_change_at_once,
    two_instances_refuse_a_code_used_on_the_other,
});
e2e!(two_instances_spin_up: Spin on Redis {
    two_instances_share_users_tokens_and_one_signing_key,
    two_instances_racing_for_the_first_signing_key_agree_on_one,
    two_instances_twenty_parallel_registrations_give_one_201,
    two_instances_fifty_parallel_wrong_passwords_give_five_checks,
    two_instances_thirty_parallel_logins_from_one_address_let_five_past,
    two_instances_share_logout_and_refresh_rotation,
    two_instances_see_demotion_deletion_and_password_change_at_once,
    two_instances_refuse_a_code_used_on_the_other,
});

/// Spin's Redis store breaks `wasi:keyvalue/batch` `get-many` (it panics the
/// host or fails; see `shared/SPIN-NOTES.md`): the component must not even
/// import it, while it does import the store and its atomic increment.
#[test]
fn the_component_imports_no_keyvalue_batch() {
    let wasm = std::fs::read(component()).expect("read the component");
    let mut modules = HashSet::new();
    for payload in wasmparser::Parser::new(0).parse_all(&wasm) {
        if let wasmparser::Payload::ImportSection(section) = payload.expect("valid wasm") {
            for group in section {
                for import in group.expect("import group") {
                    let (_, import) = import.expect("import");
                    modules.insert(import.module.to_owned());
                }
            }
        }
    }
    let imports = |prefix: &str| modules.iter().any(|m| m.starts_with(prefix));
    assert!(imports("wasi:keyvalue/store@"), "{modules:?}");
    assert!(imports("wasi:keyvalue/atomics@"), "{modules:?}");
    assert!(!imports("wasi:keyvalue/batch@"), "{modules:?}");
}

fn start(t: Target, vars: &[(&str, &str)]) -> (State, Server) {
    let state = State::new(t);
    let server = Server::start(&state, vars);
    (state, server)
}

fn documented_flow_with_admin_bootstrap(t: Target) {
    let (_state, server) = start(t, &[]);
    let c = server.client();

    let health = c.send(c.get("/health"));
    assert_eq!(
        (health.status, health.body.clone()),
        (200, json!({"status": "ok"}))
    );

    let reg = c.register("alice", PASSWORD);
    assert_eq!(reg.status, 201, "{}", reg.body);
    assert_eq!(
        reg.body,
        json!({"message": "User registered successfully", "user": {"username": "alice", "role": "user"}})
    );

    let login = c.login("alice", PASSWORD);
    assert_eq!(login.status, 200, "{}", login.body);
    assert_eq!(login.body["token_type"], "Bearer");
    assert_eq!(login.body["expires_in"], 900);
    let token = login.token();

    let protected = c.get_with_token("/auth/protected", &token);
    assert_eq!(
        protected.body,
        json!({"message": "Access granted", "user": {"username": "alice", "role": "user"}})
    );
    assert_error(
        &c.get_with_token("/admin/dashboard", &token),
        403,
        "forbidden",
    );

    // Bootstrap the first admin, then let it create another.
    let admin_reg = c.send(
        c.post("/auth/register")
            .header("content-type", "application/json")
            .header("x-bootstrap-token", BOOTSTRAP)
            .body(json!({"username": "root", "password": PASSWORD, "role": "admin"}).to_string()),
    );
    assert_eq!(admin_reg.status, 201, "{}", admin_reg.body);
    let admin = c.login("root", PASSWORD).token();
    let second = c.send(
        c.post("/auth/register")
            .header("content-type", "application/json")
            .bearer_auth(&admin)
            .body(json!({"username": "root2", "password": PASSWORD, "role": "admin"}).to_string()),
    );
    assert_eq!(second.status, 201, "{}", second.body);

    let dash = c.get_with_token("/admin/dashboard", &admin);
    assert_eq!(dash.status, 200, "{}", dash.body);
    assert_eq!(dash.body["message"], "Welcome to the admin dashboard");
    let stats = &dash.body["stats"];
    assert_eq!(
        (stats["users"].clone(), stats["admins"].clone()),
        (json!(3), json!(2))
    );
    assert_eq!(stats["successful_logins"], 2);
}

fn every_error_code_over_http(t: Target) {
    let (_state, server) = start(t, &[]);
    let c = server.client();
    c.register("alice", PASSWORD);

    let raw = |ct: &str, body: &str| {
        c.send(
            c.post("/auth/login")
                .header("content-type", ct)
                .body(body.to_owned()),
        )
    };
    assert_error(&raw("application/json", "{"), 400, "invalid_json");
    assert_error(
        &raw("application/json", r#"{"username": "alice"}"#),
        400,
        "validation_error",
    );
    assert_error(&raw("text/plain", "{}"), 415, "unsupported_media_type");
    let big = format!(
        r#"{{"username": "alice", "password": "{}"}}"#,
        "x".repeat(20 * 1024)
    );
    assert_error(&raw("application/json", &big), 413, "payload_too_large");
    // The same without a Content-Length: the component stops reading a
    // chunked 1 MiB body at the cap and answers 413 at once, so the client
    // may instead see the connection cut while it is still sending. Either
    // way nothing breaks: the server answers the next request.
    let chunked = reqwest::blocking::Body::new(std::io::Cursor::new(vec![b' '; 1 << 20]));
    let sent = c
        .post("/auth/register")
        .header("content-type", "application/json")
        .body(chunked)
        .send();
    match sent {
        Ok(res) => assert_eq!(res.status().as_u16(), 413),
        Err(e) => assert!(e.is_body() || e.is_request(), "{e}"),
    }
    assert_eq!(c.send(c.get("/health")).status, 200);
    assert_error(
        &c.login("alice", "wrong password"),
        401,
        "invalid_credentials",
    );
    assert_error(&c.register("alice", PASSWORD), 409, "username_taken");
    let forbidden = c.post_json(
        "/auth/register",
        &json!({"username": "eve", "password": PASSWORD, "role": "admin"}),
    );
    assert_error(&forbidden, 403, "forbidden");

    let missing = c.send(c.get("/auth/protected"));
    assert_error(&missing, 401, "missing_token");
    assert!(missing.header("www-authenticate").starts_with("Bearer"));
    let invalid = c.get_with_token("/auth/protected", "not.a.token");
    assert_error(&invalid, 401, "invalid_token");
    assert!(invalid.header("www-authenticate").contains("invalid_token"));

    assert_error(&c.send(c.get("/no/such/path")), 404, "not_found");
    let wrong_method = c.send(c.get("/auth/login"));
    assert_error(&wrong_method, 405, "method_not_allowed");
    assert_eq!(wrong_method.header("allow"), "POST");

    // Lockout (423) and rate limit (429), from distinct addresses.
    for i in 0..5 {
        server.client_from(10 + i).login("alice", "wrong password");
    }
    let locked = server.client_from(20).login("alice", PASSWORD);
    assert_error(&locked, 423, "account_locked");
    assert!(locked.header("retry-after").parse::<u64>().unwrap() > 0);
    let hammer = server.client_from(30);
    for _ in 0..5 {
        hammer.login("nobody1", "wrong password");
    }
    let limited = hammer.login("nobody2", "wrong password");
    assert_error(&limited, 429, "rate_limited");
    assert!(limited.header("retry-after").parse::<u64>().unwrap() > 0);

    // Bad configuration fails closed: 500 with nothing leaked.
    drop(server);
    let (_state, broken) = start(t, &[("jwt_secret", "too-short")]);
    let res = broken.client().register("alice", PASSWORD);
    assert_error(&res, 500, "internal_error");
    assert!(!String::from_utf8_lossy(&res.raw).contains("too-short"));
}

fn security_headers_on_every_response(t: Target) {
    let (_state, server) = start(t, &[]);
    let c = server.client();
    let responses = [
        c.send(c.get("/health")),
        c.send(c.get("/nope")),
        c.send(c.get("/auth/protected")),
        c.register("alice", PASSWORD),
        c.login("alice", "wrong password"),
    ];
    let mut ids = HashSet::new();
    for res in &responses {
        assert_eq!(res.header("content-type"), "application/json");
        assert_eq!(res.header("cache-control"), "no-store");
        assert_eq!(res.header("x-content-type-options"), "nosniff");
        assert!(ids.insert(res.header("x-request-id").to_owned()));
        // Sent whole, with its length, not chunked.
        assert_eq!(res.header("content-length"), res.raw.len().to_string());
        assert_eq!(res.header("transfer-encoding"), "");
    }
}

fn login_rate_limit_is_per_client_address(t: Target) {
    let (_state, server) = start(t, &[]);
    let a = server.client_from(41);
    for i in 0..5 {
        assert_error(
            &a.login(&format!("ghost{i}"), "wrong password"),
            401,
            "invalid_credentials",
        );
    }
    assert_error(&a.login("ghost5", "wrong password"), 429, "rate_limited");
    let b = server.client_from(42);
    assert_error(
        &b.login("ghost6", "wrong password"),
        401,
        "invalid_credentials",
    );
}

fn client_sent_spin_client_addr_does_not_escape_the_limit(t: Target) {
    let (_state, server) = start(t, &[]);
    let c = server.client_from(43);
    let spoofed = |i: u32| {
        c.send(
            c.post("/auth/login")
                .header("content-type", "application/json")
                .header("spin-client-addr", format!("10.9.9.{i}:1234"))
                .body(
                    json!({"username": format!("ghost{i}"), "password": "wrong password"})
                        .to_string(),
                ),
        )
    };
    for i in 0..5 {
        assert_eq!(spoofed(i).status, 401);
    }
    assert_error(&spoofed(99), 429, "rate_limited");
}

fn lockout_answers_the_same_for_unknown_users(t: Target) {
    let (_state, server) = start(t, &[]);
    server.client().register("alice", PASSWORD);
    let attempts = |user: &str, first_octet: u8| -> Vec<Reply> {
        (0..6)
            .map(|i| {
                server
                    .client_from(first_octet + i)
                    .login(user, "wrong password")
            })
            .collect()
    };
    let known = attempts("alice", 50);
    let unknown = attempts("mallory", 60);
    for (k, u) in known.iter().zip(&unknown) {
        assert_eq!(k.status, u.status);
        assert_eq!(k.raw, u.raw);
    }
    assert_eq!(known[4].status, 401);
    assert_eq!(known[5].status, 423);
    assert_error(
        &server.client_from(70).login("alice", PASSWORD),
        423,
        "account_locked",
    );
}

fn tokens_and_users_survive_a_restart(t: Target) {
    let state = State::new(t);
    let server = Server::start(&state, &[]);
    let c = server.client();
    c.register("alice", PASSWORD);
    let token = c.login("alice", PASSWORD).token();
    for i in 0..5 {
        server.client_from(80 + i).login("bob", "wrong password");
    }
    server.stop();

    let server = Server::start(&state, &[]);
    let c = server.client();
    assert_eq!(
        c.get_with_token("/auth/protected", &token).status,
        200,
        "same signing key"
    );
    assert_eq!(c.login("alice", PASSWORD).status, 200, "same users");
    assert_error(&c.register("alice", PASSWORD), 409, "username_taken");
    assert_error(
        &server.client_from(90).login("bob", "wrong password"),
        423,
        "account_locked",
    );
}

/// Issue 7, finding 2: four failures, then a restart on the same store with
/// `lockout_threshold=3` and `lockout_duration_seconds=1` used to answer the
/// right password 423 `Retry-After: 1` forever. Now the account is locked at
/// most once, for the new duration.
fn a_lower_threshold_after_a_restart_locks_no_account_for_good(t: Target) {
    let state = State::new(t);
    let server = Server::start(&state, &[]);
    assert_eq!(server.client().register("dave", PASSWORD).status, 201);
    for i in 0..4 {
        let res = server.client_from(100 + i).login("dave", "wrong password");
        assert_error(&res, 401, "invalid_credentials");
    }
    server.stop();

    let server = Server::start(
        &state,
        &[
            ("lockout_threshold", "3"),
            ("lockout_duration_seconds", "1"),
        ],
    );
    let c = server.client_from(110);
    let first = c.login("dave", PASSWORD);
    if first.status != 200 {
        assert_error(&first, 423, "account_locked");
        assert_eq!(first.header("retry-after"), "1");
        std::thread::sleep(std::time::Duration::from_millis(1_100));
        let res = c.login("dave", PASSWORD);
        assert_eq!(res.status, 200, "{}", res.body);
    }
    // The new threshold holds from then on.
    for i in 0..3 {
        let res = server.client_from(120 + i).login("dave", "wrong password");
        assert_error(&res, 401, "invalid_credentials");
    }
    assert_error(&c.login("dave", PASSWORD), 423, "account_locked");
}

/// Issue 7, finding 3: a lock shorter than a password check never took
/// effect (1 s against about 1.75 s at cost 15). Such a configuration now
/// fails closed, naming the variable.
fn a_lock_shorter_than_a_login_is_refused(t: Target) {
    let (_state, server) = start(
        t,
        &[("bcrypt_cost", "15"), ("lockout_duration_seconds", "1")],
    );
    let c = server.client();
    assert_error(&c.login("dave", PASSWORD), 500, "internal_error");
    // The readiness check says so too, so such a rollout stops.
    assert_error(&c.send(c.get("/health")), 500, "internal_error");
    let refusals: Vec<_> = server
        .audit()
        .into_iter()
        .filter(|e| e["event"] == "config_error")
        .collect();
    assert!(!refusals.is_empty());
    assert!(refusals
        .iter()
        .all(|e| e.to_string().contains("lockout_duration_seconds")));
}

fn audit_lines_are_json_without_secrets(t: Target) {
    let (_state, server) = start(t, &[]);
    let c = server.client();
    c.register("alice", PASSWORD);
    let token = c.login("alice", PASSWORD).token();
    c.login("alice", "wrong password");
    c.get_with_token("/auth/protected", &token);
    c.get_with_token("/auth/protected", "bad.token.here");
    c.get_with_token("/admin/dashboard", &token);

    let events = server.audit();
    let names: HashSet<&str> = events.iter().filter_map(|e| e["event"].as_str()).collect();
    for name in [
        "registration",
        "login_success",
        "login_failure",
        "token_rejected",
        "access_denied",
    ] {
        assert!(names.contains(name), "no {name} in {names:?}");
    }
    for e in &events {
        assert_audit_fields(e);
        assert_eq!(e["client_ip"], "127.0.0.1", "{e}");
    }
    let log = server.stdout_lines().concat();
    for secret in [PASSWORD, "wrong password", &token, "$2b$", BOOTSTRAP] {
        assert!(!log.contains(secret), "{secret} in the audit log");
    }
}

fn twenty_parallel_registrations_of_one_name_give_one_201(t: Target) {
    let (_state, server) = start(t, &[]);
    registrations_of_one_name(&[&server]);
}

fn fifty_parallel_wrong_passwords_give_five_401_and_45_423(t: Target) {
    // Real bcrypt cost, so the attempts overlap in time.
    let (_state, server) = start(t, &[("bcrypt_cost", "10")]);
    wrong_passwords_for_one_account(&[&server]);
}

fn thirty_parallel_logins_from_one_address_let_exactly_five_past(t: Target) {
    let (_state, server) = start(t, &[]);
    logins_from_one_address(&[&server]);
}

// The bursts, with request `i` sent to server `i % servers.len()`.

fn registrations_of_one_name(servers: &[&Server]) {
    let statuses = in_parallel(20, |i| {
        servers[i % servers.len()]
            .client_from(100 + i as u8)
            .register("samename", &format!("password-{i}"))
            .status
    });
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        19,
        "{statuses:?}"
    );
}

fn wrong_passwords_for_one_account(servers: &[&Server]) {
    servers[0].client().register("victim", PASSWORD);
    let statuses = in_parallel(50, |i| {
        servers[i % servers.len()]
            .client_from(150 + i as u8)
            .login("victim", "wrong password")
            .status
    });
    // Exactly five tickets get a password check; every other attempt is 423.
    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count(),
        5,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 423).count(),
        45,
        "{statuses:?}"
    );
    let failures: usize = servers
        .iter()
        .map(|s| {
            s.audit()
                .iter()
                .filter(|e| e["event"] == "login_failure" && e["username"] == "victim")
                .count()
        })
        .sum();
    assert_eq!(failures, 5, "password checks across all instances");
}

fn logins_from_one_address(servers: &[&Server]) {
    servers[0].client_from(2).register("alice", PASSWORD);
    let statuses = in_parallel(30, |i| {
        servers[i % servers.len()]
            .client_from(3)
            .login("alice", PASSWORD)
            .status
    });
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        5,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        25,
        "{statuses:?}"
    );
}

/// Two servers (instances) on one store: the case's Redis database.
fn two_instances(t: Target, vars: &[(&str, &str)]) -> (State, Server, Server) {
    let state = State::new(t);
    let a = Server::start(&state, vars);
    let b = Server::start(&state, vars);
    (state, a, b)
}

fn stored_signing_key(redis: &mut redis::Connection) -> Option<Vec<u8>> {
    redis::cmd("GET").arg("secret:jwt").query(redis).unwrap()
}

fn key_claims(redis: &mut redis::Connection) -> i64 {
    redis::cmd("GET")
        .arg("claim:secret:jwt")
        .query(redis)
        .unwrap()
}

fn assert_accepted_by(servers: &[&Server], token: &str) {
    for server in servers {
        let res = server.client().get_with_token("/auth/protected", token);
        assert_eq!(res.status, 200, "{}", res.body);
    }
}

fn two_instances_share_users_tokens_and_one_signing_key(t: Target) {
    let (state, a, b) = two_instances(t, &[]);
    let mut redis = state.redis();
    assert_eq!(
        stored_signing_key(&mut redis),
        None,
        "no key before the first request"
    );

    assert_eq!(a.client().register("alice", PASSWORD).status, 201);
    let key = stored_signing_key(&mut redis).expect("the first request stored a signing key");
    let token_a = a.client().login("alice", PASSWORD).token();
    let token_b = b.client().login("alice", PASSWORD).token();
    for token in [&token_a, &token_b] {
        assert_accepted_by(&[&a, &b], token);
    }
    // Both instances sign with the one key the first request generated.
    let key = HS256Key::from_bytes(&key);
    for token in [&token_a, &token_b] {
        key.verify_token::<NoCustomClaims>(token, None)
            .expect("signed with the stored key");
    }
    assert_eq!(key_claims(&mut redis), 1, "one key generated in all");
    assert_eq!(stored_signing_key(&mut redis), Some(key.to_bytes()));

    assert_eq!(b.client().register("bob", PASSWORD).status, 201);
    assert_eq!(a.client().login("bob", PASSWORD).status, 200);
    assert_error(&a.client().register("bob", PASSWORD), 409, "username_taken");
}

fn two_instances_racing_for_the_first_signing_key_agree_on_one(t: Target) {
    // Rounds reuse client addresses: keep the limiter out of the way.
    let (state, a, b) = two_instances(t, &[("login_rate_limit", "1000")]);
    let servers = [&a, &b];
    const RACERS: usize = 10;
    for i in 0..RACERS {
        let reg = servers[i % 2]
            .client_from(200 + i as u8)
            .register(&format!("user{i}"), PASSWORD);
        assert_eq!(reg.status, 201, "{}", reg.body);
    }
    let mut redis = state.redis();
    // Each round starts from a store without a key (registration creates
    // it but signs nothing), so the first token-issuing requests race on
    // both instances to create it. Rounds go on until one has really raced
    // (more than one claim ticket taken); every round must end with every
    // token valid on both instances and signed with the one stored key.
    let mut raced = false;
    for _round in 0..60 {
        // Every generation of the key and its claim (src/security/keys.rs).
        let () = redis::cmd("DEL")
            .arg(&["secret:jwt", "claim:secret:jwt"])
            .arg(
                (1..=3)
                    .flat_map(|g| [format!("secret:jwt:{g}"), format!("claim:secret:jwt:{g}")])
                    .collect::<Vec<_>>(),
            )
            .query(&mut redis)
            .unwrap();
        let start = std::sync::Barrier::new(RACERS);
        let tokens = in_parallel(RACERS, |i| {
            let client = servers[i % 2].client_from(210 + i as u8);
            // An open connection first, so the logins leave together.
            assert_eq!(client.send(client.get("/health")).status, 200);
            start.wait();
            client.login(&format!("user{i}"), PASSWORD).token()
        });
        let key = HS256Key::from_bytes(&stored_signing_key(&mut redis).expect("a key was stored"));
        for token in &tokens {
            key.verify_token::<NoCustomClaims>(token, None)
                .expect("signed with the one stored key");
            assert_accepted_by(&servers, token);
        }
        if key_claims(&mut redis) > 1 {
            raced = true;
            break;
        }
    }
    assert!(raced, "no round had two instances racing for the key");
}

fn two_instances_twenty_parallel_registrations_give_one_201(t: Target) {
    let (_state, a, b) = two_instances(t, &[]);
    registrations_of_one_name(&[&a, &b]);
}

fn two_instances_fifty_parallel_wrong_passwords_give_five_checks(t: Target) {
    let (_state, a, b) = two_instances(t, &[("bcrypt_cost", "10")]);
    wrong_passwords_for_one_account(&[&a, &b]);
}

fn two_instances_thirty_parallel_logins_from_one_address_let_five_past(t: Target) {
    let (_state, a, b) = two_instances(t, &[]);
    logins_from_one_address(&[&a, &b]);
}
