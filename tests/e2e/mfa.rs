//! Two-factor login over HTTP (issue 11): enrolment with a TOTP secret and
//! its confirmation, the second step of a login with a TOTP code and with a
//! recovery code, each code refused once used, turning it off; one code
//! raced by twenty verifications; and a code used on one instance refused
//! on the other, and an admin's reset seen by both.
//!
//! Codes follow the real clock, as the server's do: a code is accepted for
//! the current 30-second step and one either side, and only for a step
//! later than the last one accepted. [`Authenticator`] hands out such codes
//! without waiting for a new step (but for a few seconds at most).

use super::common::{assert_audit_fields, in_parallel};
use super::harness::{assert_error, Client, Reply, Server, Target};
use super::{start, two_instances, BOOTSTRAP, PASSWORD};
use secure_backend::security::totp::{code_at, decode_secret, STEP_SECS};
use serde_json::{json, Value};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Without a key outside the store (this, or `jwt_secret`), enrolment is
/// refused. Each case logs in and verifies more often than the default
/// per-address limits allow in a minute, and limits are not what it tests.
const VARS: &[(&str, &str)] = &[
    ("mfa_encryption_key", "e2e-mfa-key-0123456789abcdef0123456"),
    ("login_rate_limit", "100"),
    ("mfa_rate_limit", "100"),
];

fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_secs()
}

/// An authenticator app on the real clock: each code it hands out is of a
/// time step later than the one before, and inside the window the server
/// accepts (the current step ±1).
struct Authenticator {
    secret: Vec<u8>,
    last_step: Option<u64>,
}

impl Authenticator {
    fn new(base32: &str) -> Self {
        let secret = decode_secret(base32).unwrap_or_else(|| panic!("not base32: {base32}"));
        assert_eq!(secret.len(), 20, "160 bits");
        Self {
            secret,
            last_step: None,
        }
    }

    /// The code of the earliest step not yet used that the server will
    /// still accept when the request gets there: the previous step only
    /// with seconds to spare before the next one starts. When the current
    /// step and the next are both used, waits for the next step (three
    /// codes in a row wait at most a few seconds).
    fn next_code(&mut self) -> String {
        loop {
            let now = unix_secs();
            let current = now / STEP_SECS;
            let earliest = if now % STEP_SECS < STEP_SECS - 3 {
                current - 1
            } else {
                current
            };
            let step = self
                .last_step
                .map_or(earliest, |last| earliest.max(last + 1));
            if step <= current + 1 {
                self.last_step = Some(step);
                return code_at(&self.secret, step);
            }
            let into_step = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_millis() as u64
                % (STEP_SECS * 1000);
            std::thread::sleep(Duration::from_millis(STEP_SECS * 1000 - into_step + 50));
        }
    }
}

/// A user with two-factor login on, enrolled over HTTP.
struct Enrolled {
    /// An access token from the password-only login before enrolment.
    access: String,
    /// The secret as the enrolment answered it (base32).
    secret: String,
    app: Authenticator,
    /// The code that confirmed the enrolment.
    confirmed_with: String,
    recovery: Vec<String>,
}

fn post_with_token(c: &Client, path: &str, token: &str, body: Option<Value>) -> Reply {
    let mut req = c.post(path).bearer_auth(token);
    if let Some(body) = body {
        req = req
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    c.send(req)
}

/// The `mfa_enabled` of `/auth/me`.
fn mfa_enabled(c: &Client, access: &str) -> Value {
    let me = c.get_with_token("/auth/me", access);
    assert_eq!(me.status, 200, "{}", me.body);
    me.body["mfa_enabled"].clone()
}

/// Registers `name`, logs in with the password alone, enrols and confirms,
/// checking each answer's shape.
fn enrol(c: &Client, name: &str) -> Enrolled {
    assert_eq!(c.register(name, PASSWORD).status, 201);
    let login = c.login(name, PASSWORD);
    assert_eq!(login.status, 200, "{}", login.body);
    let access = login.token();
    assert_eq!(mfa_enabled(c, &access), json!(false));

    let res = post_with_token(c, "/auth/mfa/totp/enroll", &access, None);
    assert_eq!(res.status, 200, "{}", res.body);
    let body = &res.body;
    let secret = body["secret"].as_str().expect("secret").to_owned();
    let mut app = Authenticator::new(&secret);
    assert_eq!(
        (
            &body["issuer"],
            &body["algorithm"],
            &body["digits"],
            &body["period"],
            &body["expires_in"]
        ),
        (
            &json!("secure-backend"),
            &json!("SHA1"),
            &json!(6),
            &json!(30),
            &json!(600)
        ),
        "{body}"
    );
    // What an authenticator app scans: issuer and account in the label,
    // the secret and the issuer in the query.
    let uri = body["otpauth_uri"].as_str().expect("otpauth_uri");
    let label = format!("otpauth://totp/secure-backend:{name}?");
    assert!(uri.starts_with(&label), "{uri}");
    for part in [format!("secret={secret}"), "issuer=secure-backend".into()] {
        assert!(uri.contains(&part), "{uri} lacks {part}");
    }
    // Pending until confirmed: the password alone still logs in.
    assert!(c.login(name, PASSWORD).body["access_token"].is_string());

    let code = app.next_code();
    let res = post_with_token(
        c,
        "/auth/mfa/totp/confirm",
        &access,
        Some(json!({ "code": code })),
    );
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.body["mfa_enabled"], true, "{}", res.body);
    let recovery: Vec<String> = res.body["recovery_codes"]
        .as_array()
        .expect("recovery_codes")
        .iter()
        .map(|c| c.as_str().expect("a string").to_owned())
        .collect();
    assert_eq!(recovery.len(), 10, "{}", res.body);
    let distinct: std::collections::HashSet<&String> = recovery.iter().collect();
    assert_eq!(distinct.len(), 10, "{}", res.body);
    assert_eq!(mfa_enabled(c, &access), json!(true));
    Enrolled {
        access,
        secret,
        app,
        confirmed_with: code,
        recovery,
    }
}

/// The password step of a login with two-factor login on: a challenge,
/// never tokens. Answers the `mfa_token`.
fn challenge(c: &Client, name: &str) -> String {
    let res = c.login(name, PASSWORD);
    assert_eq!(res.status, 200, "{}", res.body);
    let mut fields: Vec<&str> = res
        .body
        .as_object()
        .expect("a JSON object")
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        ["expires_in", "mfa_required", "mfa_token"],
        "{}",
        res.body
    );
    assert_eq!(res.body["mfa_required"], true);
    assert_eq!(res.body["expires_in"], 300);
    res.body["mfa_token"].as_str().expect("a string").to_owned()
}

fn verify(c: &Client, mfa_token: &str, code: &str) -> Reply {
    c.post_json(
        "/auth/mfa/verify",
        &json!({ "mfa_token": mfa_token, "code": code }),
    )
}

/// A session from the second step, as a login answers it: its access
/// token, checked on `/auth/protected`.
fn session(c: &Client, res: &Reply) -> String {
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.body["token_type"], "Bearer", "{}", res.body);
    assert!(res.body["refresh_token"].is_string(), "{}", res.body);
    let access = res.token();
    let protected = c.get_with_token("/auth/protected", &access);
    assert_eq!(protected.status, 200, "{}", protected.body);
    access
}

fn events_named(server: &Server, name: &str) -> Vec<Value> {
    server
        .audit()
        .into_iter()
        .filter(|e| e["event"] == name)
        .collect()
}

/// Registers an admin with the bootstrap token and logs it in (from
/// `127.0.0.2`, so the case's own logins keep their rate limit).
fn admin_token(server: &Server) -> String {
    let c = server.client_from(2);
    let reg = c.send(
        c.post("/auth/register")
            .header("content-type", "application/json")
            .header("x-bootstrap-token", BOOTSTRAP)
            .body(json!({"username": "root", "password": PASSWORD, "role": "admin"}).to_string()),
    );
    assert_eq!(reg.status, 201, "{}", reg.body);
    let login = c.login("root", PASSWORD);
    assert_eq!(login.status, 200, "{}", login.body);
    login.token()
}

/// Enrolment, the second step with a TOTP code and with a recovery code,
/// each refused once used, an `mfa_token` that works once and is no access
/// token, turning it off; and an audit log that names every step without
/// holding the secret, a code or an `mfa_token`.
pub fn two_factor_login_end_to_end(t: Target) {
    let (_state, server) = start(t, VARS);
    let c = server.client();
    let mut alice = enrol(&c, "alice");

    // The password alone no longer logs in: it answers a challenge.
    let first = challenge(&c, "alice");
    let code = alice.app.next_code();
    session(&c, &verify(&c, &first, &code));

    // The same code with a new challenge: a replay, refused.
    let second = challenge(&c, "alice");
    assert_error(&verify(&c, &second, &code), 401, "invalid_mfa_code");
    // An mfa_token works once, whether its code was right or wrong.
    for spent in [&first, &second] {
        assert_error(&verify(&c, spent, &code), 401, "invalid_mfa_token");
    }

    // A recovery code, once.
    let third = challenge(&c, "alice");
    let recovered = session(&c, &verify(&c, &third, &alice.recovery[0]));
    let fourth = challenge(&c, "alice");
    let again = verify(&c, &fourth, &alice.recovery[0]);
    assert_error(&again, 401, "invalid_mfa_code");

    // An mfa_token is no access token.
    let fifth = challenge(&c, "alice");
    for path in ["/auth/protected", "/auth/me"] {
        assert_error(&c.get_with_token(path, &fifth), 401, "invalid_token");
    }

    // Off with the password and a fresh code; the password alone logs in again.
    let off_code = alice.app.next_code();
    let off = post_with_token(
        &c,
        "/auth/mfa/totp/disable",
        &recovered,
        Some(json!({ "password": PASSWORD, "code": off_code })),
    );
    assert_eq!(off.status, 204, "{}", String::from_utf8_lossy(&off.raw));
    assert!(off.raw.is_empty());
    assert_eq!(mfa_enabled(&c, &alice.access), json!(false));
    session(&c, &c.login("alice", PASSWORD));

    let events = server.audit();
    let names: std::collections::HashSet<&str> =
        events.iter().filter_map(|e| e["event"].as_str()).collect();
    for name in [
        "mfa_enrollment_started",
        "mfa_enrolled",
        "mfa_challenge",
        "mfa_success",
        "mfa_failure",
        "mfa_recovery_code_used",
        "mfa_disabled",
    ] {
        assert!(names.contains(name), "no {name} in {names:?}");
    }
    for e in events.iter().filter(|e| {
        e["event"]
            .as_str()
            .is_some_and(|name| name.starts_with("mfa_"))
    }) {
        assert_audit_fields(e);
        assert_eq!(e["username"], "alice", "{e}");
        assert_eq!(e["client_ip"], "127.0.0.1", "{e}");
    }
    let count = |name: &str| events.iter().filter(|e| e["event"] == name).count();
    // Five challenges; two sessions from the second step.
    assert_eq!(count("mfa_challenge"), 5);
    assert_eq!(count("mfa_success"), 2);
    assert_eq!(count("mfa_recovery_code_used"), 1);
    // The replay is named as such (the audit log's reason, not the answer).
    let reasons: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "mfa_failure")
        .filter_map(|e| e["reason"].as_str())
        .collect();
    assert!(
        reasons.iter().any(|r| r.contains("already used")),
        "{reasons:?}"
    );

    // No secret in the log: the secret, a code (the request id, random hex,
    // may hold any six digits, so it is left out), a recovery code, an
    // mfa_token.
    let lines: Vec<String> = events
        .iter()
        .map(|e| {
            let mut e = e.clone();
            e.as_object_mut().expect("an object").remove("request_id");
            e.to_string()
        })
        .collect();
    let log = lines.join("\n");
    let mut secrets = vec![
        alice.secret.clone(),
        alice.secret.to_lowercase(),
        alice.confirmed_with.clone(),
        code.clone(),
        off_code.clone(),
        PASSWORD.to_owned(),
    ];
    secrets.extend(alice.recovery.iter().cloned());
    secrets.extend([first, second, third, fourth, fifth]);
    for secret in &secrets {
        assert!(!log.contains(secret.as_str()), "{secret} in the audit log");
    }
}

/// One `mfa_token` and one code presented by twenty requests at once: one
/// session, and every other request refused as a spent token.
pub fn twenty_parallel_verifications_with_one_code_give_one_session(t: Target) {
    let (_state, server) = start(t, VARS);
    let c = server.client();
    let mut alice = enrol(&c, "alice");
    let code = alice.app.next_code();
    let token = challenge(&c, "alice");
    let replies = in_parallel(20, |i| {
        verify(&server.client_from(100 + i as u8), &token, &code)
    });
    let statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    for reply in replies.iter().filter(|r| r.status != 200) {
        assert_error(reply, 401, "invalid_mfa_token");
    }
    session(&c, replies.iter().find(|r| r.status == 200).unwrap());
    assert_eq!(events_named(&server, "mfa_success").len(), 1);
    // The winner's code is used: a new challenge with it is refused.
    let again = verify(&c, &challenge(&c, "alice"), &code);
    assert_error(&again, 401, "invalid_mfa_code");
}

/// Two instances on one store: a code accepted on A is refused on B, and
/// an admin's reset through B turns two-factor login off on A at once.
pub fn two_instances_refuse_a_code_used_on_the_other(t: Target) {
    let (_state, a, b) = two_instances(t, VARS);
    let (on_a, on_b) = (a.client(), b.client());
    let mut alice = enrol(&on_a, "alice");
    assert_eq!(mfa_enabled(&on_b, &alice.access), json!(true));

    let code = alice.app.next_code();
    session(&on_a, &verify(&on_a, &challenge(&on_a, "alice"), &code));
    let on_b_challenge = challenge(&on_b, "alice");
    assert_error(
        &verify(&on_b, &on_b_challenge, &code),
        401,
        "invalid_mfa_code",
    );
    // A challenge from A, taken before the reset.
    let pending = challenge(&on_a, "alice");

    let admin = admin_token(&b);
    let reset = post_with_token(&on_b, "/admin/users/alice/mfa/reset", &admin, None);
    assert_eq!(reset.status, 204, "{}", String::from_utf8_lossy(&reset.raw));
    // Off on A at once: its challenge is void, the password alone logs in.
    let next = alice.app.next_code();
    assert_error(&verify(&on_a, &pending, &next), 401, "invalid_mfa_token");
    session(&on_a, &on_a.login("alice", PASSWORD));
    assert_eq!(mfa_enabled(&on_a, &alice.access), json!(false));
    let shown = on_a.get_with_token("/admin/users/alice", &admin);
    assert_eq!(shown.status, 200, "{}", shown.body);
    assert_eq!(shown.body["mfa_enabled"], false, "{}", shown.body);

    let reset = events_named(&b, "mfa_reset");
    assert_eq!(reset.len(), 1, "{reset:?}");
    assert_eq!(
        (&reset[0]["username"], &reset[0]["target"]),
        (&json!("root"), &json!("alice")),
        "{}",
        reset[0]
    );
}
