//! Store outages (issue 7, finding 8): every store failure the component
//! sees is a 500 `internal_error` (on `/health`, 503 `unavailable`) with the
//! detail in the audit log only, and nothing half-written changes a later
//! answer beyond what the rules allow.
//!
//! One sweep per route and path: count the store calls the request makes on
//! a healthy store, then for each call in turn rebuild the same scene, make
//! that one call fail, send the request, and check the answer, the audit log
//! and what a careful user sees afterwards. Each call fails in two ways: the
//! call never happens (a lost write, a dropped connection before the command)
//! and it happens but its answer is lost (the connection drops after Redis
//! ran the command). The after-checks must hold on the healthy run too.

mod common;

use common::*;
use http::{Method, Request};
use secure_backend::clock::{Clock, ManualClock};
use secure_backend::domain::User;
use secure_backend::security::totp;
use secure_backend::store::{decode_counter, KeyValue, MemoryStore, Op};
use serde_json::json;
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

const THRESHOLD: u32 = 5;
const LOCK_SECS: u64 = 900;
const LOGIN_WINDOW_SECS: u64 = 60;
/// A name whose registration died after claiming it is free again after at
/// most this long (README, Security behaviour: Registration).
const NAME_FREED_AFTER_SECS: u64 = 600;
/// Where the request under test comes from.
const CLIENT_IP: &str = "198.51.100.77";

/// A scene to fail a request in: the app, the admin token the request may
/// need, and sessions of the user it is about.
struct Fixture {
    app: TestApp,
    token: String,
    pairs: Vec<Pair>,
    /// Alice's second factor, when the scene has one.
    factor: Factor,
}

/// A second factor as its owner holds it: the secret in the authenticator
/// app, the recovery codes written down, and the `mfa_token` of the latest
/// password step.
#[derive(Clone, Debug, Default)]
struct Factor {
    secret: Vec<u8>,
    recovery: Vec<String>,
    mfa_token: String,
}

/// One session's tokens, as a login or a refresh handed them out.
#[derive(Clone, Debug)]
struct Pair {
    access: String,
    refresh: String,
}

impl Fixture {
    fn of(app: TestApp) -> Self {
        Self {
            app,
            token: String::new(),
            pairs: Vec::new(),
            factor: Factor::default(),
        }
    }

    /// An independent copy of the scene (store, clock, variables), so that
    /// several after-checks can each start from the state a failure left.
    fn fork(&self) -> Fixture {
        let app = TestApp {
            store: MemoryStore::new(),
            clock: ManualClock::at(self.app.clock.now_ms()),
            audit: Default::default(),
            vars: self.app.vars.clone(),
        };
        for (key, value) in self.app.store.snapshot() {
            app.store.set(&key, &value).unwrap();
        }
        Fixture {
            app,
            token: self.token.clone(),
            pairs: self.pairs.clone(),
            factor: self.factor.clone(),
        }
    }
}

/// How the chosen store call fails.
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// The call never reaches the store.
    Lost,
    /// The store runs the call, but its answer never comes back.
    Unanswered,
}

/// The app's store, except that call number `at` is run and then reported
/// as failed.
struct Unanswered<'a> {
    inner: &'a MemoryStore,
    at: usize,
    seen: AtomicUsize,
}

impl Unanswered<'_> {
    fn after<T>(&self, result: anyhow::Result<T>) -> anyhow::Result<T> {
        if self.seen.fetch_add(1, Ordering::SeqCst) == self.at {
            anyhow::bail!("store answer lost (simulated)");
        }
        result
    }
}

impl KeyValue for Unanswered<'_> {
    fn get(&self, key: &str) -> anyhow::Result<Option<Vec<u8>>> {
        self.after(self.inner.get(key))
    }
    fn set(&self, key: &str, value: &[u8]) -> anyhow::Result<()> {
        self.after(self.inner.set(key, value))
    }
    fn delete(&self, key: &str) -> anyhow::Result<()> {
        self.after(self.inner.delete(key))
    }
    fn increment(&self, key: &str, delta: i64) -> anyhow::Result<i64> {
        self.after(self.inner.increment(key, delta))
    }
}

/// One route and path under the sweep.
struct Case {
    name: &'static str,
    setup: fn() -> Fixture,
    request: fn(&Fixture) -> Request<Vec<u8>>,
    /// Its answer on a healthy store.
    healthy: u16,
    /// Its answer when a store call fails.
    failed: (u16, &'static str),
    /// Whether the route must never change the store.
    read_only: bool,
    /// What a careful user must see afterwards, healthy or not.
    after: fn(&Fixture),
}

/// Runs `case` healthy, then with each of its store calls failing in turn,
/// in both ways; returns how many store calls it makes.
fn sweep(case: Case) -> usize {
    let fx = (case.setup)();
    let (before, calls) = (fx.app.store.snapshot(), fx.app.store.calls());
    let res = fx.app.send((case.request)(&fx));
    assert_eq!(res.status, case.healthy, "{}: {}", case.name, res.body);
    let n = fx.app.store.calls() - calls;
    assert!(n > 0, "{}: no store call", case.name);
    if case.read_only {
        assert_eq!(
            fx.app.store.snapshot(),
            before,
            "{}: store changed",
            case.name
        );
    }
    (case.after)(&fx);

    // Every failed run is tried, and the sweep fails listing each one that
    // went wrong, so one finding does not hide the next.
    let mut wrong = Vec::new();
    for fault in [Fault::Lost, Fault::Unanswered] {
        for i in 0..n {
            let mut at = format!("{}: {fault:?} call {i}", case.name);
            let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                fail_one(&case, fault, i, &mut at)
            }));
            if let Err(panic) = run {
                let message = panic
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| panic.downcast_ref::<&str>().copied())
                    .unwrap_or("(no message)");
                wrong.push(format!("{at}: {message}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} failed runs went wrong:\n{}",
        wrong.len(),
        2 * n,
        wrong.join("\n")
    );
    n
}

/// One run of `case` with store call `i` failing as `fault`; `at` names the
/// run (with the call's operation and key, once known) for the report.
fn fail_one(case: &Case, fault: Fault, i: usize, at: &mut String) {
    let fx = (case.setup)();
    let before = fx.app.store.snapshot();
    let lines = fx.app.audit.lines().len();
    let hit: Arc<Mutex<Option<(Op, String)>>> = Arc::default();
    let seen = hit.clone();
    fx.app.store.fail_when(move |call, op, key| {
        if call == i {
            *seen.lock().unwrap() = Some((op, key.to_owned()));
        }
        matches!(fault, Fault::Lost) && call == i
    });
    let res = match fault {
        Fault::Lost => fx.app.send((case.request)(&fx)),
        Fault::Unanswered => {
            let store = Unanswered {
                inner: &fx.app.store,
                at: i,
                seen: AtomicUsize::new(0),
            };
            fx.app.send_through(&store, (case.request)(&fx))
        }
    };
    fx.app.store.stop_failing();
    let (op, key) = hit
        .lock()
        .unwrap()
        .clone()
        .unwrap_or_else(|| panic!("{}: call {i} never made", case.name));
    *at = format!("{}: {fault:?} call {i} ({op:?} {key})", case.name);
    let at = at.clone();
    eprintln!("{at}");

    let (status, code) = case.failed;
    assert_error(&res, status, code);
    let text = String::from_utf8_lossy(&res.raw);
    assert!(
        !text.contains("simulated") && !text.contains(&key),
        "{at}: {text}"
    );
    let events: Vec<serde_json::Value> = fx.app.audit_events()[lines..].to_vec();
    let internal: Vec<_> = events
        .iter()
        .filter(|e| e["event"] == "internal_error")
        .collect();
    assert_eq!(internal.len(), 1, "{at}: {events:?}");
    assert_eq!(internal[0]["outcome"], "error", "{at}");
    assert!(
        internal[0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("simulated")),
        "{at}: the detail goes to the audit log: {events:?}"
    );
    assert!(
        events.iter().all(|e| e["outcome"] != "success"),
        "{at}: a failed request logged as a success: {events:?}"
    );
    if case.read_only {
        assert_eq!(fx.app.store.snapshot(), before, "{at}: store changed");
    }
    (case.after)(&fx);
}

// ---- requests -------------------------------------------------------------

fn json_request(app: &TestApp, path: &str, body: &serde_json::Value) -> Request<Vec<u8>> {
    app.request(Method::POST, path, CLIENT_IP)
        .header("content-type", "application/json")
        .body(body.to_string().into_bytes())
        .unwrap()
}

fn login_request(app: &TestApp, user: &str, password: &str) -> Request<Vec<u8>> {
    json_request(
        app,
        "/auth/login",
        &json!({ "username": user, "password": password }),
    )
}

fn register_request(app: &TestApp, user: &str, role: &str) -> Request<Vec<u8>> {
    json_request(
        app,
        "/auth/register",
        &json!({ "username": user, "password": PASSWORD, "role": role }),
    )
}

fn get_request(app: &TestApp, path: &str, token: &str) -> Request<Vec<u8>> {
    let mut req = app.request(Method::GET, path, CLIENT_IP);
    if !token.is_empty() {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    req.body(Vec::new()).unwrap()
}

/// A client address no other request of the test used, so neither rate
/// limit stands in the way of an after-check.
fn fresh_ip() -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::SeqCst);
    format!("10.{}.{}.{}", (n >> 16) & 255, (n >> 8) & 255, n & 255)
}

// ---- scenes ---------------------------------------------------------------

/// A user "alice" (so the signing key exists), and an admin "root" whose
/// token is the fixture's.
fn with_alice_and_root() -> Fixture {
    alice_and_root_in(TestApp::new())
}

/// [`with_alice_and_root`] in `app`.
fn alice_and_root_in(app: TestApp) -> Fixture {
    assert_eq!(
        app.register_from("alice", PASSWORD, &fresh_ip()).status,
        201
    );
    let token = app.admin_token("root");
    Fixture {
        app,
        token,
        pairs: Vec::new(),
        factor: Factor::default(),
    }
}

/// As [`with_alice_and_root`], with `failures` wrong passwords for alice.
fn alice_after_failures(failures: u32) -> Fixture {
    let fx = with_alice_and_root();
    for _ in 0..failures {
        let res = fx.app.login_from("alice", "wrong password", &fresh_ip());
        assert!([401, 423].contains(&res.status), "{}", res.body);
    }
    fx
}

// ---- after-checks ---------------------------------------------------------

fn counter(app: &TestApp, name: &str) -> i64 {
    app.store
        .get(&format!("stats:{name}"))
        .unwrap()
        .as_deref()
        .and_then(decode_counter)
        .unwrap_or(0)
}

/// Stored accounts: all of them, and the admins among them.
fn stored_accounts(app: &TestApp) -> (i64, i64) {
    let records: Vec<serde_json::Value> = app
        .store
        .snapshot()
        .into_iter()
        .filter(|(k, _)| k.starts_with("user:"))
        .map(|(_, v)| serde_json::from_slice(&v).unwrap())
        .collect();
    let admins = records.iter().filter(|u| u["role"] == "admin").count();
    (records.len() as i64, admins as i64)
}

/// Wrong passwords from fresh addresses until the first 423: how many got
/// 401. None ever gets in.
fn failures_left(app: &TestApp, user: &str) -> u32 {
    for k in 0..=THRESHOLD {
        let res = app.login_from(user, "wrong password", &fresh_ip());
        match res.status {
            401 => continue,
            423 => return k,
            _ => panic!("wrong password answered {}: {}", res.status, res.body),
        }
    }
    panic!("{user} never locked after {} failures", THRESHOLD + 1)
}

/// The owner's right password works now, or after the `Retry-After` of the
/// lock it finds, which is at most `within_secs`.
fn owner_gets_in(app: &TestApp, user: &str, within_secs: u64) {
    let first = app.login_from(user, PASSWORD, &fresh_ip());
    if first.status == 200 {
        return;
    }
    assert_error(&first, 423, "account_locked");
    let retry: u64 = first.header("retry-after").parse().unwrap();
    assert!((1..=within_secs).contains(&retry), "Retry-After {retry}");
    app.clock.advance_secs(retry);
    let res = app.login_from(user, PASSWORD, &fresh_ip());
    assert_eq!(res.status, 200, "{}", res.body);
}

/// After a login of alice from [`CLIENT_IP`]:
/// - the account takes a number of further wrong passwords in `left`
///   before it locks (the request counted at most once), and its lock ends
///   within one lock duration;
/// - the owner's password works within `lock_left` seconds, and then a
///   fresh streak of failures starts;
/// - the client address is limited (`limited_now`) or not, and is free
///   again within one window.
fn login_after(fx: &Fixture, left: RangeInclusive<u32>, lock_left: u64, limited_now: bool) {
    let a = fx.fork();
    let k = failures_left(&a.app, "alice");
    eprintln!("  failures left: {k}");
    assert!(left.contains(&k), "{k} failures left, want {left:?}");
    a.app.clock.advance_secs(LOCK_SECS);
    assert_eq!(a.app.login_from("alice", PASSWORD, &fresh_ip()).status, 200);

    let b = fx.fork();
    owner_gets_in(&b.app, "alice", lock_left);
    assert_eq!(failures_left(&b.app, "alice"), THRESHOLD);

    let c = fx.fork();
    let attempt = || c.app.login_from("nobody", "wrong password", CLIENT_IP);
    let res = free_within_a_window(&c.app, LOGIN_WINDOW_SECS, limited_now, attempt);
    assert_error(&res, 401, "invalid_credentials");
}

/// The client's next `attempt` is refused now (`limited_now`) or not, and
/// one window later it passes, at most after one more `Retry-After` (a lost
/// record costs at most one attempt of a later window). Returns the
/// answer that passed.
fn free_within_a_window(
    app: &TestApp,
    window_secs: u64,
    limited_now: bool,
    attempt: impl Fn() -> TestResponse,
) -> TestResponse {
    let now = attempt();
    assert_eq!(now.status == 429, limited_now, "{}", now.body);
    app.clock.advance_secs(window_secs);
    let res = attempt();
    if res.status != 429 {
        return res;
    }
    let retry: u64 = res.header("retry-after").parse().unwrap();
    assert!((1..=window_secs).contains(&retry), "Retry-After {retry}");
    app.clock.advance_secs(retry);
    let res = attempt();
    assert_ne!(res.status, 429, "{}", res.body);
    res
}

/// After a registration of `name` with `role`: a stranger's password never
/// gets in; the name is the owner's (password and role), or free for the
/// owner again within the documented time; the dashboard counts each
/// account at most one off (a counter bump can be the call that failed).
fn register_after(fx: &Fixture, name: &str, role: &str, again: fn(&Fixture) -> Request<Vec<u8>>) {
    let app = &fx.app;
    let stranger = app.login_from(name, "a stranger's password", &fresh_ip());
    assert_error(&stranger, 401, "invalid_credentials");
    let login = app.login_from(name, PASSWORD, &fresh_ip());
    eprintln!("  registered: {}", login.status == 200);
    let token = if login.status == 200 {
        let taken = app.register_from(name, "a stranger's password", &fresh_ip());
        assert_error(&taken, 409, "username_taken");
        login.token()
    } else {
        assert_error(&login, 401, "invalid_credentials");
        app.clock.advance_secs(NAME_FREED_AFTER_SECS);
        let res = app.send(again(fx));
        assert_eq!(res.status, 201, "{}", res.body);
        app.login_from(name, PASSWORD, &fresh_ip()).token()
    };
    let dashboard = app.get("/admin/dashboard", Some(&token)).status;
    assert_eq!(dashboard, if role == "admin" { 200 } else { 403 });
    // The admin who set the scene is untouched.
    assert_eq!(app.get("/admin/dashboard", Some(&fx.token)).status, 200);

    let (accounts, admins) = stored_accounts(app);
    let counted = (counter(app, "users"), counter(app, "admins"));
    eprintln!("  counted {counted:?}, stored {:?}", (accounts, admins));
    assert!(
        (accounts - 1..=accounts).contains(&counted.0)
            && (admins - 1..=admins).contains(&counted.1),
        "counted {counted:?}, stored {:?}",
        (accounts, admins)
    );
}

fn still_served(fx: &Fixture) {
    let res = fx.app.get("/auth/protected", Some(&fx.token));
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.body["user"]["username"], "root");
    let res = fx.app.get("/admin/dashboard", Some(&fx.token));
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(fx.app.get("/health", None).status, 200);
}

// ---- the sweep, route by route --------------------------------------------

#[test]
fn a_registration_failing_at_any_store_call_is_a_500_and_leaves_the_name_to_its_owner() {
    sweep(Case {
        name: "register user",
        setup: with_alice_and_root,
        request: |fx| register_request(&fx.app, "bob", "user"),
        healthy: 201,
        failed: (500, "internal_error"),
        read_only: false,
        after: |fx| {
            register_after(fx, "bob", "user", |fx| {
                register_request(&fx.app, "bob", "user")
            })
        },
    });
}

#[test]
fn a_registration_of_a_taken_name_failing_at_any_store_call_leaves_the_account_alone() {
    sweep(Case {
        name: "register taken name",
        setup: with_alice_and_root,
        request: |fx| {
            let body = json!({ "username": "alice", "password": "a stranger's password" });
            json_request(&fx.app, "/auth/register", &body)
        },
        healthy: 409,
        failed: (500, "internal_error"),
        read_only: false,
        after: |fx| register_after(fx, "alice", "user", |_| unreachable!("alice is registered")),
    });
}

/// [`CLIENT_IP`] has used its ten registrations of the window.
fn client_at_its_registration_limit() -> Fixture {
    let fx = with_alice_and_root();
    for i in 0..10 {
        let res = fx
            .app
            .register_from(&format!("early{i}"), PASSWORD, CLIENT_IP);
        assert_eq!(res.status, 201, "{}", res.body);
    }
    fx
}

#[test]
fn a_rate_limited_registration_failing_at_any_store_call_claims_nothing() {
    sweep(Case {
        name: "register rate-limited",
        setup: client_at_its_registration_limit,
        request: |fx| register_request(&fx.app, "bob", "user"),
        healthy: 429,
        failed: (500, "internal_error"),
        read_only: false,
        after: |fx| {
            // Refused before any claim: the name is free at once.
            let res = fx.app.register_from("bob", PASSWORD, &fresh_ip());
            assert_eq!(res.status, 201, "{}", res.body);
            assert_eq!(fx.app.login_from("bob", PASSWORD, &fresh_ip()).status, 200);
            let attempt = || fx.app.register_from("carol", PASSWORD, CLIENT_IP);
            assert_eq!(free_within_a_window(&fx.app, 60, true, attempt).status, 201);
            let (accounts, _) = stored_accounts(&fx.app);
            assert_eq!(counter(&fx.app, "users"), accounts);
        },
    });
}

fn bootstrap_admin(fx: &Fixture) -> Request<Vec<u8>> {
    let mut req = register_request(&fx.app, "deputy", "admin");
    req.headers_mut()
        .insert("x-bootstrap-token", BOOTSTRAP.parse().unwrap());
    req
}

fn admin_by_bearer(fx: &Fixture) -> Request<Vec<u8>> {
    let mut req = register_request(&fx.app, "deputy", "admin");
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {}", fx.token).parse().unwrap(),
    );
    req
}

#[test]
fn an_admin_registration_by_bootstrap_token_failing_at_any_store_call_is_a_500() {
    sweep(Case {
        name: "register admin (bootstrap)",
        setup: with_alice_and_root,
        request: bootstrap_admin,
        healthy: 201,
        failed: (500, "internal_error"),
        read_only: false,
        after: |fx| register_after(fx, "deputy", "admin", bootstrap_admin),
    });
}

#[test]
fn an_admin_registration_by_admin_token_failing_at_any_store_call_is_a_500() {
    sweep(Case {
        name: "register admin (Bearer)",
        setup: with_alice_and_root,
        request: admin_by_bearer,
        healthy: 201,
        failed: (500, "internal_error"),
        read_only: false,
        after: |fx| register_after(fx, "deputy", "admin", admin_by_bearer),
    });
}

#[test]
fn a_successful_login_failing_at_any_store_call_counts_at_most_one_failure() {
    sweep(Case {
        name: "login success",
        setup: || alice_after_failures(2),
        request: |fx| login_request(&fx.app, "alice", PASSWORD),
        healthy: 200,
        failed: (500, "internal_error"),
        read_only: false,
        // Healthy: the streak is over (5 left). Failed: untouched (3 left),
        // or this attempt counted as one failure (2 left).
        after: |fx| login_after(fx, 2..=5, LOCK_SECS, false),
    });
}

#[test]
fn a_wrong_password_failing_at_any_store_call_counts_at_most_once() {
    sweep(Case {
        name: "login wrong password",
        setup: || alice_after_failures(2),
        request: |fx| login_request(&fx.app, "alice", "wrong password"),
        healthy: 401,
        failed: (500, "internal_error"),
        read_only: false,
        after: |fx| login_after(fx, 2..=3, LOCK_SECS, false),
    });
}

#[test]
fn a_locking_failure_failing_at_any_store_call_locks_at_most_one_lock_duration() {
    sweep(Case {
        name: "login that locks",
        setup: || alice_after_failures(THRESHOLD - 1),
        request: |fx| login_request(&fx.app, "alice", "wrong password"),
        healthy: 401,
        failed: (500, "internal_error"),
        read_only: false,
        after: |fx| login_after(fx, 0..=1, LOCK_SECS, false),
    });
}

/// Locked, and 100 s of the lock gone.
fn alice_locked() -> Fixture {
    let fx = alice_after_failures(THRESHOLD);
    fx.app.clock.advance_secs(100);
    fx
}

#[test]
fn a_login_while_locked_failing_at_any_store_call_neither_ends_nor_extends_the_lock() {
    sweep(Case {
        name: "login while locked",
        setup: alice_locked,
        request: |fx| login_request(&fx.app, "alice", PASSWORD),
        healthy: 423,
        failed: (500, "internal_error"),
        read_only: false,
        after: |fx| login_after(fx, 0..=0, LOCK_SECS - 100, false),
    });
}

/// [`CLIENT_IP`] has used its five logins of the window (as bob).
fn client_at_its_limit() -> Fixture {
    let fx = with_alice_and_root();
    assert_eq!(
        fx.app.register_from("bob", PASSWORD, &fresh_ip()).status,
        201
    );
    for _ in 0..5 {
        assert_eq!(fx.app.login_from("bob", PASSWORD, CLIENT_IP).status, 200);
    }
    fx
}

#[test]
fn a_rate_limited_login_failing_at_any_store_call_lets_nobody_past_the_limit() {
    sweep(Case {
        name: "login rate-limited",
        setup: client_at_its_limit,
        request: |fx| login_request(&fx.app, "alice", PASSWORD),
        healthy: 429,
        failed: (500, "internal_error"),
        read_only: false,
        // Refused before the lockout: alice's count is untouched.
        after: |fx| login_after(fx, THRESHOLD..=THRESHOLD, LOCK_SECS, true),
    });
}

#[test]
fn the_protected_route_failing_at_any_store_call_changes_nothing() {
    sweep(Case {
        name: "protected",
        setup: with_alice_and_root,
        request: |fx| get_request(&fx.app, "/auth/protected", &fx.token),
        healthy: 200,
        failed: (500, "internal_error"),
        read_only: true,
        after: still_served,
    });
}

#[test]
fn the_dashboard_failing_at_any_store_call_changes_nothing() {
    let calls = sweep(Case {
        name: "admin dashboard",
        setup: with_alice_and_root,
        request: |fx| get_request(&fx.app, "/admin/dashboard", &fx.token),
        healthy: 200,
        failed: (500, "internal_error"),
        read_only: true,
        after: still_served,
    });
    assert_eq!(calls, 2 + 11, "key, user, eleven counters: each one failed");
}

#[test]
fn health_failing_at_any_store_call_is_a_503_logged_as_an_internal_error() {
    sweep(Case {
        name: "health",
        setup: with_alice_and_root,
        request: |fx| get_request(&fx.app, "/health", ""),
        healthy: 200,
        failed: (503, "unavailable"),
        read_only: true,
        after: still_served,
    });
    // On a store where no key was ever created: two reads, and never a write.
    sweep(Case {
        name: "health (fresh store)",
        setup: || Fixture::of(TestApp::new()),
        request: |fx| get_request(&fx.app, "/health", ""),
        healthy: 200,
        failed: (503, "unavailable"),
        read_only: true,
        after: |fx| {
            assert_eq!(fx.app.get("/health", None).status, 200);
            assert!(fx.app.store.is_empty());
        },
    });
}

// ---- sessions, accounts and the admin's actions on users -------------------
//
// Each change of an existing user record holds the record's lease; a lease
// a failure left behind blocks the record for at most two epochs.

/// A lease a failed request left frees its record after at most this long
/// (two 30-second epochs, and a second of margin).
const LEASE_FREED_AFTER_SECS: u64 = 61;
const NEW_PASSWORD: &str = "a brand new passphrase";

fn bearer_request(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    body: Option<&serde_json::Value>,
) -> Request<Vec<u8>> {
    let req = app
        .request(method, path, CLIENT_IP)
        .header("authorization", format!("Bearer {token}"));
    match body {
        Some(body) => req
            .header("content-type", "application/json")
            .body(body.to_string().into_bytes()),
        None => req.body(Vec::new()),
    }
    .unwrap()
}

fn refresh_request(app: &TestApp, refresh: &str) -> Request<Vec<u8>> {
    json_request(app, "/auth/refresh", &json!({ "refresh_token": refresh }))
}

/// POST /auth/logout?scope=`scope` as `this`, naming `body` in the body.
fn logout_request(
    app: &TestApp,
    scope: &str,
    this: &Pair,
    body: Option<&Pair>,
) -> Request<Vec<u8>> {
    let body = body.map(|p| json!({ "refresh_token": p.refresh }));
    let path = format!("/auth/logout?scope={scope}");
    bearer_request(app, Method::POST, &path, &this.access, body.as_ref())
}

fn password_request(app: &TestApp, access: &str, current: &str, new: &str) -> Request<Vec<u8>> {
    let body = json!({ "current_password": current, "new_password": new });
    bearer_request(app, Method::POST, "/auth/password", access, Some(&body))
}

fn role_request(app: &TestApp, admin: &str, user: &str, role: &str) -> Request<Vec<u8>> {
    let path = format!("/admin/users/{user}/role");
    bearer_request(
        app,
        Method::PUT,
        &path,
        admin,
        Some(&json!({ "role": role })),
    )
}

fn delete_request(app: &TestApp, admin: &str, user: &str) -> Request<Vec<u8>> {
    let path = format!("/admin/users/{user}");
    bearer_request(app, Method::DELETE, &path, admin, None)
}

fn unlock_request(app: &TestApp, admin: &str, user: &str) -> Request<Vec<u8>> {
    let path = format!("/admin/users/{user}/unlock");
    bearer_request(app, Method::POST, &path, admin, None)
}

fn revoke_request(app: &TestApp, admin: &str, user: &str) -> Request<Vec<u8>> {
    let path = format!("/admin/users/{user}/sessions/revoke");
    bearer_request(app, Method::POST, &path, admin, None)
}

fn pair_of(res: &TestResponse) -> Pair {
    assert_eq!(res.status, 200, "{}", res.body);
    Pair {
        access: res.token(),
        refresh: res.body["refresh_token"]
            .as_str()
            .expect("a refresh_token")
            .to_owned(),
    }
}

/// Sends what `make` builds, as a careful client would: on 503
/// `account_busy` (a lease a failure left), it waits out two lease epochs
/// and sends it once more, which must then not be busy.
fn send_retrying(app: &TestApp, make: impl Fn() -> Request<Vec<u8>>) -> TestResponse {
    let res = app.send(make());
    if res.status != 503 {
        return res;
    }
    assert_error(&res, 503, "account_busy");
    assert_eq!(res.header("retry-after"), "1");
    eprintln!("  busy: waiting out the lease");
    app.clock.advance_secs(LEASE_FREED_AFTER_SECS);
    let res = app.send(make());
    assert_ne!(
        res.status, 503,
        "busy beyond two lease epochs: {}",
        res.body
    );
    res
}

/// `user` logs in with `password` from a fresh address, after the lock it
/// finds (which ends within one lock duration), if any.
fn log_in(app: &TestApp, user: &str, password: &str) -> Pair {
    let first = app.login_from(user, password, &fresh_ip());
    if first.status == 423 {
        let retry: u64 = first.header("retry-after").parse().unwrap();
        assert!((1..=LOCK_SECS).contains(&retry), "Retry-After {retry}");
        app.clock.advance_secs(retry);
        return pair_of(&app.login_from(user, password, &fresh_ip()));
    }
    pair_of(&first)
}

/// Whether `access` is let in (otherwise it is refused as an invalid token).
fn access_works(app: &TestApp, access: &str) -> bool {
    let res = app.get("/auth/protected", Some(access));
    if res.status == 200 {
        return true;
    }
    assert_error(&res, 401, "invalid_token");
    false
}

/// Refreshes `refresh` (a careful client: it retries once a busy account
/// is free again): the new pair, or `None` when refused as invalid.
fn refresh_of(app: &TestApp, refresh: &str) -> Option<Pair> {
    let res = send_retrying(app, || refresh_request(app, refresh));
    if res.status == 200 {
        return Some(pair_of(&res));
    }
    assert_error(&res, 401, "invalid_token");
    None
}

/// Neither token of `pair` gets anything any more.
fn assert_session_over(app: &TestApp, pair: &Pair, what: &str) {
    assert!(!access_works(app, &pair.access), "{what}: access let in");
    assert!(
        refresh_of(app, &pair.refresh).is_none(),
        "{what}: refresh token refreshed"
    );
}

/// A login of `user` gives a session whose access works and whose refresh
/// token works exactly once.
fn assert_fresh_session_works(app: &TestApp, user: &str, password: &str) {
    let p = log_in(app, user, password);
    assert!(
        access_works(app, &p.access),
        "a fresh login's access refused"
    );
    let q = refresh_of(app, &p.refresh).expect("a fresh login's refresh works");
    assert!(access_works(app, &q.access), "a refreshed access refused");
    assert!(refresh_of(app, &q.refresh).is_some(), "a second rotation");
}

fn stored_role(app: &TestApp, user: &str) -> Option<String> {
    let record = app.store.get(&format!("user:{user}")).unwrap()?;
    let record: serde_json::Value = serde_json::from_slice(&record).unwrap();
    Some(record["role"].as_str().unwrap().to_owned())
}

/// Two lease epochs on, `user`'s record can be changed (no lease a failure
/// left is permanent): the admin sets the role it has, which takes the lease
/// and writes the record.
fn changeable_later(fx: &Fixture, user: &str) {
    let app = &fx.app;
    app.clock.advance_secs(LEASE_FREED_AFTER_SECS);
    let role = stored_role(app, user).expect("the user exists");
    let res = app.send(role_request(app, &fx.token, user, &role));
    assert_eq!(res.status, 200, "{user} unchangeable: {}", res.body);
}

// ---- scenes ----

/// As [`with_alice_and_root`], with `sessions` logins of alice.
fn alice_signed_in(sessions: usize) -> Fixture {
    let mut fx = with_alice_and_root();
    fx.pairs = (0..sessions)
        .map(|_| log_in(&fx.app, "alice", PASSWORD))
        .collect();
    fx
}

/// Alice, signed in; her first refresh token already spent on a refresh.
/// `pairs`: the login's (its refresh token retired), then the refresh's.
fn alice_refreshed() -> Fixture {
    let mut fx = alice_signed_in(1);
    let next = refresh_of(&fx.app, &fx.pairs[0].refresh).unwrap();
    fx.pairs.push(next);
    fx
}

/// As [`with_alice_and_root`], with a second admin, "deputy".
fn with_deputy() -> Fixture {
    let mut fx = with_alice_and_root();
    assert_eq!(fx.app.register_admin("deputy").status, 201);
    fx.pairs = vec![log_in(&fx.app, "deputy", PASSWORD)];
    fx
}

// ---- login, with its session ----

/// After a successful login: alice can log in again, and that session's
/// tokens work, its refresh token exactly once (a second try is reuse, and
/// ends the session).
fn login_session_after(fx: &Fixture) {
    login_after(fx, THRESHOLD - 1..=THRESHOLD, LOCK_SECS, false);
    let app = &fx.app;
    let p = log_in(app, "alice", PASSWORD);
    assert!(access_works(app, &p.access));
    let q = refresh_of(app, &p.refresh).expect("a later login's refresh works");
    assert!(access_works(app, &q.access));
    assert!(refresh_of(app, &p.refresh).is_none(), "refreshed twice");
    assert_session_over(app, &q, "after reuse");
    assert_fresh_session_works(app, "alice", PASSWORD);
}

#[test]
fn a_login_failing_at_any_store_call_starts_no_session_and_spoils_no_later_one() {
    let calls = sweep(Case {
        name: "login with session",
        setup: with_alice_and_root,
        request: |fx| login_request(&fx.app, "alice", PASSWORD),
        healthy: 200,
        failed: (500, "internal_error"),
        read_only: false,
        after: login_session_after,
    });
    // The eight of a successful login before, and the session's three:
    // the family counter, the slot's rotation counter, the family record.
    assert_eq!(calls, 8 + 3, "login");
}

// ---- refresh ----

/// After a rotation of the login's refresh token: that token works at most
/// once more (when the rotation never happened); otherwise the session is
/// cleanly over. A fresh login always works.
fn rotation_after(fx: &Fixture) {
    let app = &fx.app;
    let p0 = &fx.pairs[0];
    match refresh_of(app, &p0.refresh) {
        Some(q) => {
            eprintln!("  old token refreshed once more");
            assert!(access_works(app, &q.access));
            assert!(refresh_of(app, &p0.refresh).is_none(), "refreshed twice");
            assert_session_over(app, &q, "after reuse");
        }
        None => {
            eprintln!("  session over");
            assert!(refresh_of(app, &p0.refresh).is_none());
        }
    }
    assert!(!access_works(app, &p0.access), "a reused session's access");
    assert_fresh_session_works(app, "alice", PASSWORD);
}

#[test]
fn a_refresh_failing_at_any_store_call_never_refreshes_one_token_twice() {
    let calls = sweep(Case {
        name: "refresh",
        setup: || alice_signed_in(1),
        request: |fx| refresh_request(&fx.app, &fx.pairs[0].refresh),
        healthy: 200,
        failed: (500, "internal_error"),
        read_only: false,
        after: rotation_after,
    });
    // Family, record, key, rotation counter, successor, counter.
    assert_eq!(calls, 6, "refresh");
}

/// After a retired refresh token came back: presented again, it ends the
/// session, access tokens and all; the current token (the thief's, say)
/// is refreshed at most once, however the two race.
fn reuse_after(fx: &Fixture) {
    let (retired, current) = (&fx.pairs[0], &fx.pairs[1]);
    let a = fx.fork();
    assert!(refresh_of(&a.app, &retired.refresh).is_none());
    assert_session_over(&a.app, current, "current, after the retired came back");
    assert!(!access_works(&a.app, &retired.access));
    assert_fresh_session_works(&a.app, "alice", PASSWORD);

    let b = fx.fork();
    if let Some(q) = refresh_of(&b.app, &current.refresh) {
        eprintln!("  current token refreshed once");
        assert!(refresh_of(&b.app, &current.refresh).is_none());
        assert!(refresh_of(&b.app, &retired.refresh).is_none());
        assert_session_over(&b.app, &q, "after the retired came back");
    } else {
        assert!(refresh_of(&b.app, &current.refresh).is_none());
    }
    assert!(!access_works(&b.app, &current.access));
}

#[test]
fn a_refresh_token_reuse_failing_at_any_store_call_leaves_the_session_revocable() {
    let calls = sweep(Case {
        name: "refresh reuse",
        setup: alice_refreshed,
        request: |fx| refresh_request(&fx.app, &fx.pairs[0].refresh),
        healthy: 401,
        failed: (500, "internal_error"),
        read_only: false,
        after: reuse_after,
    });
    // Family; the record; the record under its lease (two takes, read,
    // write, two releases); revoke (family, poison, delete); counter.
    assert_eq!(calls, 1 + 1 + 6 + 3 + 1, "refresh reuse");
}

// ---- logout ----

/// After a logout as session 0 (naming session 1 in the body if `named`),
/// in `scope`: the sessions it ends may not have ended yet, the others
/// have not; the logout retried (healthy) is done or finds itself done;
/// then the ended sessions stay ended, the others work, and the account can
/// be changed within two lease epochs.
fn logout_after(fx: &Fixture, scope: &str, named: bool) {
    let app = &fx.app;
    let (this, other) = (&fx.pairs[0], &fx.pairs[1]);
    let (ends_this, ends_other) = match scope {
        "local" => (true, named),
        "global" => (true, true),
        "others" => (false, true),
        _ => unreachable!(),
    };
    if !ends_this {
        assert!(access_works(app, &this.access), "this session ended");
    }
    if !ends_other {
        assert!(access_works(app, &other.access), "other session ended");
    }
    let body = named.then_some(other);
    let res = send_retrying(app, || logout_request(app, scope, this, body));
    if res.status != 204 {
        eprintln!("  logout was done");
        assert!(ends_this, "{}", res.body);
        assert_error(&res, 401, "invalid_token");
    }
    for _ in 0..2 {
        for (pair, ended, what) in [(this, ends_this, "this"), (other, ends_other, "other")] {
            if ended {
                assert_session_over(app, pair, what);
            } else {
                assert!(access_works(app, &pair.access), "{what} session ended");
            }
        }
        // Still so later.
        app.clock.advance_secs(LEASE_FREED_AFTER_SECS);
    }
    for (pair, ended) in [(this, ends_this), (other, ends_other)] {
        if !ended {
            let q = refresh_of(app, &pair.refresh).expect("a kept session refreshes");
            assert!(access_works(app, &q.access));
        }
    }
    changeable_later(fx, "alice");
    assert_fresh_session_works(app, "alice", PASSWORD);
}

#[test]
fn a_local_logout_failing_at_any_store_call_can_be_retried_and_then_holds() {
    let calls = sweep(Case {
        name: "logout local",
        setup: || alice_signed_in(2),
        request: |fx| logout_request(&fx.app, "local", &fx.pairs[0], None),
        healthy: 204,
        failed: (500, "internal_error"),
        read_only: false,
        after: |fx| logout_after(fx, "local", false),
    });
    // Key, record; the record under its lease; revoke; counter.
    assert_eq!(calls, 2 + 6 + 3 + 1, "logout local");
}

#[test]
fn a_local_logout_naming_another_session_failing_at_any_store_call_can_be_retried() {
    let calls = sweep(Case {
        name: "logout local, named",
        setup: || alice_signed_in(2),
        request: |fx| logout_request(&fx.app, "local", &fx.pairs[0], Some(&fx.pairs[1])),
        healthy: 204,
        failed: (500, "internal_error"),
        read_only: false,
        after: |fx| logout_after(fx, "local", true),
    });
    // Key, record, the named family; the record under its lease; two
    // revokes; counter.
    assert_eq!(calls, 3 + 6 + 2 * 3 + 1, "logout local, named");
}

#[test]
fn a_global_logout_failing_at_any_store_call_can_be_retried_and_then_holds() {
    let calls = sweep(Case {
        name: "logout global",
        setup: || alice_signed_in(2),
        request: |fx| logout_request(&fx.app, "global", &fx.pairs[0], None),
        healthy: 204,
        failed: (500, "internal_error"),
        read_only: false,
        after: |fx| logout_after(fx, "global", false),
    });
    // Key, record, session counter; the record under its lease; counter.
    assert_eq!(calls, 3 + 6 + 1, "logout global");
}

#[test]
fn an_others_logout_failing_at_any_store_call_can_be_retried_and_then_holds() {
    let calls = sweep(Case {
        name: "logout others",
        setup: || alice_signed_in(2),
        request: |fx| logout_request(&fx.app, "others", &fx.pairs[0], None),
        healthy: 204,
        failed: (500, "internal_error"),
        read_only: false,
        after: |fx| logout_after(fx, "others", false),
    });
    assert_eq!(calls, 3 + 6 + 1, "logout others");
}

// ---- password change ----

/// After a password change: exactly one of the two passwords logs in; if
/// the old, nothing changed and a retry works; then only the new one logs
/// in, every earlier session is over, and the account can be changed again
/// within two lease epochs.
fn password_after(fx: &Fixture) {
    let app = &fx.app;
    let p0 = &fx.pairs[0];
    let old = app.login_from("alice", PASSWORD, &fresh_ip());
    let new = app.login_from("alice", NEW_PASSWORD, &fresh_ip());
    eprintln!("  old {}, new {}", old.status, new.status);
    let mut earlier = vec![p0.clone()];
    match (old.status, new.status) {
        (200, 401) => {
            assert!(
                access_works(app, &p0.access),
                "sessions ended, password kept"
            );
            earlier.push(pair_of(&old));
            let res = send_retrying(app, || {
                password_request(app, &p0.access, PASSWORD, NEW_PASSWORD)
            });
            assert_eq!(res.status, 204, "the retry: {}", res.body);
        }
        (401, 200) => earlier.push(pair_of(&new)),
        _ => panic!(
            "old password {}: {}, new {}: {}",
            old.status, old.body, new.status, new.body
        ),
    }
    assert_error(
        &app.login_from("alice", PASSWORD, &fresh_ip()),
        401,
        "invalid_credentials",
    );
    // The login with the new password just now was before the retry, or
    // the change was done before it: only p0 and the old login must be over.
    assert_session_over(app, p0, "the changing session");
    if old.status == 200 {
        assert_session_over(app, &earlier[1], "a session of the old password");
    }
    let p = log_in(app, "alice", NEW_PASSWORD);
    assert!(access_works(app, &p.access));
    app.clock.advance_secs(LEASE_FREED_AFTER_SECS);
    let res = app.send(password_request(app, &p.access, NEW_PASSWORD, PASSWORD));
    assert_eq!(res.status, 204, "changed back: {}", res.body);
    assert_fresh_session_works(app, "alice", PASSWORD);
}

#[test]
fn a_password_change_failing_at_any_store_call_leaves_exactly_one_password() {
    let calls = sweep(Case {
        name: "password change",
        setup: || alice_signed_in(1),
        request: |fx| password_request(&fx.app, &fx.pairs[0].access, PASSWORD, NEW_PASSWORD),
        healthy: 204,
        failed: (500, "internal_error"),
        read_only: false,
        after: password_after,
    });
    // Key, record; lockout (lock, ticket, streak over); the record under
    // its lease (a new password and account id); counter.
    assert_eq!(calls, 2 + 3 + 6 + 1, "password change");
}

// ---- the admin's actions on users ----

/// The admin count is never above the stored admins (or the last one could
/// go), and at most one below them: a failure whose store call ran but whose
/// answer was lost can leave it low, without compare-and-swap, and low only
/// ever refuses more (README, Sessions: the last admin). Then: demoting
/// every admin, root last, never demotes the last one; only a low count
/// refuses one who is not the last.
fn last_admin_stays(fx: &Fixture) {
    let app = &fx.app;
    let (_, admins) = stored_accounts(app);
    let counted = counter(app, "admins");
    eprintln!("  admins: counted {counted}, stored {admins}");
    assert!(
        (admins - 1..=admins).contains(&counted),
        "admins: counted {counted}, stored {admins}"
    );
    for name in ["alice", "deputy", "root"] {
        if stored_role(app, name).as_deref() != Some("admin") {
            continue;
        }
        let (_, before) = stored_accounts(app);
        let low = counter(app, "admins") < before;
        let res = send_retrying(app, || role_request(app, &fx.token, name, "user"));
        match res.status {
            200 => assert!(before > 1, "the last admin ({name}) demoted: {}", res.body),
            _ => {
                assert_error(&res, 409, "last_admin");
                assert!(before == 1 || low, "{name}, one of {before}, refused");
            }
        }
        let (_, after) = stored_accounts(app);
        assert!(after >= 1 && counter(app, "admins") <= after);
    }
    let res = send_retrying(app, || delete_request(app, &fx.token, "root"));
    assert_error(&res, 409, "last_admin");
    assert!(stored_accounts(app).1 >= 1);
}

fn promote_after(fx: &Fixture) {
    let app = &fx.app;
    let res = send_retrying(app, || role_request(app, &fx.token, "alice", "admin"));
    assert_eq!(res.status, 200, "the retry: {}", res.body);
    assert_eq!(res.body["role"], "admin");
    let p = log_in(app, "alice", PASSWORD);
    let dashboard = app.get("/admin/dashboard", Some(&p.access));
    assert_eq!(dashboard.status, 200, "{}", dashboard.body);
    last_admin_stays(fx);
}

#[test]
fn a_promotion_failing_at_any_store_call_can_be_retried_and_counts_admins_right() {
    let calls = sweep(Case {
        name: "promote",
        setup: with_alice_and_root,
        request: |fx| role_request(&fx.app, &fx.token, "alice", "admin"),
        healthy: 200,
        failed: (500, "internal_error"),
        read_only: false,
        after: promote_after,
    });
    // Key, admin; the record under its lease; admins, actions, lock.
    assert_eq!(calls, 2 + 6 + 3, "promote");
}

fn demote_after(fx: &Fixture) {
    let app = &fx.app;
    let low = counter(app, "admins") < stored_accounts(app).1;
    let res = send_retrying(app, || role_request(app, &fx.token, "deputy", "user"));
    if low && res.status == 409 {
        // The failure left the count low: the fail-safe direction.
        assert_error(&res, 409, "last_admin");
        last_admin_stays(fx);
        return;
    }
    assert_eq!(res.status, 200, "the retry: {}", res.body);
    assert_eq!(res.body["role"], "user");
    let dashboard = app.get("/admin/dashboard", Some(&fx.pairs[0].access));
    assert_error(&dashboard, 403, "forbidden");
    last_admin_stays(fx);
}

#[test]
fn a_demotion_failing_at_any_store_call_never_lets_the_last_admin_go() {
    let calls = sweep(Case {
        name: "demote",
        setup: with_deputy,
        request: |fx| role_request(&fx.app, &fx.token, "deputy", "user"),
        healthy: 200,
        failed: (500, "internal_error"),
        read_only: false,
        after: demote_after,
    });
    // Key, admin; the record under its lease, with the admins decrement
    // inside; actions, lock.
    assert_eq!(calls, 2 + 7 + 2, "demote");
}

/// Alice, signed in (session 2) after a global logout of session 1, so her
/// record ends sessions below 2.
fn alice_after_a_global_logout() -> Fixture {
    let mut fx = alice_signed_in(1);
    let res = fx
        .app
        .send(logout_request(&fx.app, "global", &fx.pairs[0], None));
    assert_eq!(res.status, 204, "{}", res.body);
    fx.pairs = vec![log_in(&fx.app, "alice", PASSWORD)];
    fx
}

/// After a deletion of alice: if she is still there, her account works
/// whole (a new session's tokens included); the delete retried is done or
/// finds her gone; then none of her tokens works, also once a stranger has
/// the name (within the documented time), and the listing and the users
/// count agree with the records.
fn delete_after(fx: &Fixture) {
    let app = &fx.app;
    let p0 = &fx.pairs[0];
    let mut sessions = vec![p0.clone()];
    if access_works(app, &p0.access) {
        eprintln!("  alice still there");
        let p = log_in(app, "alice", PASSWORD);
        assert!(
            access_works(app, &p.access),
            "alice is still there, but her new login's access token is refused"
        );
        sessions.push(p);
    } else {
        assert!(refresh_of(app, &p0.refresh).is_none());
        let res = app.login_from("alice", PASSWORD, &fresh_ip());
        assert_error(&res, 401, "invalid_credentials");
    }
    let res = send_retrying(app, || delete_request(app, &fx.token, "alice"));
    if res.status != 204 {
        eprintln!("  alice was gone");
        assert_error(&res, 404, "user_not_found");
    }
    for p in &sessions {
        assert_session_over(app, p, "deleted alice");
    }
    let stranger = "a stranger's password";
    let mut res = app.register_from("alice", stranger, &fresh_ip());
    if res.status == 409 {
        app.clock.advance_secs(NAME_FREED_AFTER_SECS);
        res = app.register_from("alice", stranger, &fresh_ip());
    }
    assert_eq!(res.status, 201, "{}", res.body);
    for p in &sessions {
        assert_session_over(app, p, "deleted alice, name taken again");
    }
    assert_error(
        &app.login_from("alice", PASSWORD, &fresh_ip()),
        401,
        "invalid_credentials",
    );
    assert_fresh_session_works(app, "alice", stranger);
    let res = app.get("/admin/users", Some(&fx.token));
    assert_eq!(res.status, 200, "{}", res.body);
    let listed = res.body["users"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["username"] == "alice")
        .count();
    assert_eq!(listed, 1, "{}", res.body);
    let (accounts, _) = stored_accounts(app);
    let users = counter(app, "users");
    eprintln!("  users: counted {users}, stored {accounts}");
    assert!((accounts..=accounts + 1).contains(&users));
}

#[test]
fn a_user_deletion_failing_at_any_store_call_can_be_retried_and_ends_every_token() {
    let calls = sweep(Case {
        name: "delete user",
        setup: alice_after_a_global_logout,
        request: |fx| delete_request(&fx.app, &fx.token, "alice"),
        healthy: 204,
        failed: (500, "internal_error"),
        read_only: false,
        after: delete_after,
    });
    // Key, admin; lease taken, record, ten session records, lockout (lock,
    // counter, lock), the two-factor challenge counter, record, lease given
    // back; index entry, two claim keys, users, actions.
    assert_eq!(calls, 2 + 3 + 10 + 3 + 1 + 1 + 2 + 5, "delete user");
}

fn delete_admin_after(fx: &Fixture) {
    let app = &fx.app;
    let low = counter(app, "admins") < stored_accounts(app).1;
    let res = send_retrying(app, || delete_request(app, &fx.token, "deputy"));
    if low && res.status == 409 {
        // The failure left the count low: the fail-safe direction.
        assert_error(&res, 409, "last_admin");
        last_admin_stays(fx);
        return;
    }
    assert!([204, 404].contains(&res.status), "the retry: {}", res.body);
    if res.status == 404 {
        assert_error(&res, 404, "user_not_found");
    }
    assert_session_over(app, &fx.pairs[0], "deleted deputy");
    last_admin_stays(fx);
}

#[test]
fn an_admin_deletion_failing_at_any_store_call_never_lets_the_last_admin_go() {
    let calls = sweep(Case {
        name: "delete admin",
        setup: with_deputy,
        request: |fx| delete_request(&fx.app, &fx.token, "deputy"),
        healthy: 204,
        failed: (500, "internal_error"),
        read_only: false,
        after: delete_admin_after,
    });
    // As a user's, and the admins decrement.
    assert_eq!(calls, 2 + 3 + 1 + 10 + 3 + 1 + 1 + 2 + 5, "delete admin");
}

/// After an unlock of alice: without a retry she gets in within the lock
/// she had; with one, at once, on a fresh streak.
fn unlock_after(fx: &Fixture) {
    let a = fx.fork();
    owner_gets_in(&a.app, "alice", LOCK_SECS - 100);
    let app = &fx.app;
    let res = app.send(unlock_request(app, &fx.token, "alice"));
    assert_eq!(res.status, 204, "the retry: {}", res.body);
    assert_eq!(failures_left(app, "alice"), THRESHOLD);
    // That streak locked her again; the admin's next unlock ends it too.
    let res = app.send(unlock_request(app, &fx.token, "alice"));
    assert_eq!(res.status, 204, "{}", res.body);
    assert_fresh_session_works(app, "alice", PASSWORD);
}

#[test]
fn an_unlock_failing_at_any_store_call_never_leaves_a_lasting_lock() {
    let calls = sweep(Case {
        name: "unlock",
        setup: alice_locked,
        request: |fx| unlock_request(&fx.app, &fx.token, "alice"),
        healthy: 204,
        failed: (500, "internal_error"),
        read_only: false,
        after: unlock_after,
    });
    // Key, admin, record, lock, the unlocking lock, actions.
    assert_eq!(calls, 6, "unlock");
}

/// After an admin's revoke of alice's sessions: both ended or neither; the
/// retry works; then neither works, ever, and a fresh login does.
fn revoke_after(fx: &Fixture) {
    let app = &fx.app;
    let (p0, p1) = (&fx.pairs[0], &fx.pairs[1]);
    let alive = (access_works(app, &p0.access), access_works(app, &p1.access));
    assert!(alive.0 == alive.1, "one session ended: {alive:?}");
    let res = send_retrying(app, || revoke_request(app, &fx.token, "alice"));
    assert_eq!(res.status, 204, "the retry: {}", res.body);
    assert_session_over(app, p0, "revoked");
    assert_session_over(app, p1, "revoked");
    changeable_later(fx, "alice");
    assert_session_over(app, p0, "revoked, later");
    assert_fresh_session_works(app, "alice", PASSWORD);
}

#[test]
fn a_sessions_revoke_failing_at_any_store_call_can_be_retried_and_then_holds() {
    let calls = sweep(Case {
        name: "revoke sessions",
        setup: || alice_signed_in(2),
        request: |fx| revoke_request(&fx.app, &fx.token, "alice"),
        healthy: 204,
        failed: (500, "internal_error"),
        read_only: false,
        after: revoke_after,
    });
    // Key, admin, session counter; the record under its lease; actions.
    assert_eq!(calls, 3 + 6 + 1, "revoke sessions");
}

// ---- reads ----

#[test]
fn the_account_and_admin_reads_failing_at_any_store_call_change_nothing() {
    let me = sweep(Case {
        name: "me",
        setup: || alice_signed_in(1),
        request: |fx| get_request(&fx.app, "/auth/me", &fx.pairs[0].access),
        healthy: 200,
        failed: (500, "internal_error"),
        read_only: true,
        after: |fx| {
            still_served(fx);
            assert!(access_works(&fx.app, &fx.pairs[0].access));
        },
    });
    let list = sweep(Case {
        name: "list users",
        setup: with_alice_and_root,
        request: |fx| get_request(&fx.app, "/admin/users", &fx.token),
        healthy: 200,
        failed: (500, "internal_error"),
        read_only: true,
        after: still_served,
    });
    let show = sweep(Case {
        name: "show user",
        setup: || alice_signed_in(1),
        request: |fx| get_request(&fx.app, "/admin/users/alice", &fx.token),
        healthy: 200,
        failed: (500, "internal_error"),
        read_only: true,
        after: still_served,
    });
    // me: key, record. list (two users): key, admin, length, then entry,
    // record and lock per position. show: key, admin, record, lock,
    // failure counter, ten session slots.
    assert_eq!((me, list, show), (2, 3 + 2 * 3, 5 + 10));
}

// ---- two-factor login (issue 11) ------------------------------------------
//
// Alice's second factor: TOTP codes from `factor.secret` and her recovery
// codes. A code is typed at the start of a time step no earlier request
// used, so it is right unless written off.

const MFA_KEY: &str = "mfa-encryption-key-for-tests-0123456789";

fn mfa_app() -> TestApp {
    TestApp::with_vars(&[("mfa_encryption_key", MFA_KEY)])
}

fn step_now(app: &TestApp) -> u64 {
    app.clock.now_ms() / 1000 / totp::STEP_SECS
}

/// Moves the clock to the start of the next time step.
fn next_step(app: &TestApp) {
    let step_ms = totp::STEP_SECS * 1000;
    app.clock.advance_ms(step_ms - app.clock.now_ms() % step_ms);
}

/// The code the app shows now.
fn code_now(app: &TestApp, secret: &[u8]) -> String {
    totp::code_at(secret, step_now(app))
}

/// The code of the next time step, once it has begun: never used before.
fn fresh_code(app: &TestApp, secret: &[u8]) -> String {
    next_step(app);
    code_now(app, secret)
}

/// A code of the right shape that is not the app's, now or near it.
fn wrong_code(app: &TestApp, secret: &[u8]) -> String {
    totp::code_at(secret, step_now(app) + 7)
}

fn enroll_request(app: &TestApp, access: &str) -> Request<Vec<u8>> {
    bearer_request(app, Method::POST, "/auth/mfa/totp/enroll", access, None)
}

fn confirm_request(app: &TestApp, access: &str, code: &str) -> Request<Vec<u8>> {
    let body = json!({ "code": code });
    bearer_request(
        app,
        Method::POST,
        "/auth/mfa/totp/confirm",
        access,
        Some(&body),
    )
}

fn disable_request(app: &TestApp, access: &str, code: &str) -> Request<Vec<u8>> {
    let body = json!({ "password": PASSWORD, "code": code });
    bearer_request(
        app,
        Method::POST,
        "/auth/mfa/totp/disable",
        access,
        Some(&body),
    )
}

fn reset_request(app: &TestApp, admin: &str, user: &str) -> Request<Vec<u8>> {
    let path = format!("/admin/users/{user}/mfa/reset");
    bearer_request(app, Method::POST, &path, admin, None)
}

fn verify_request(app: &TestApp, ip: &str, mfa_token: &str, code: &str) -> Request<Vec<u8>> {
    app.request(Method::POST, "/auth/mfa/verify", ip)
        .header("content-type", "application/json")
        .body(
            json!({ "mfa_token": mfa_token, "code": code })
                .to_string()
                .into_bytes(),
        )
        .unwrap()
}

/// The second step from a fresh address (so no rate limit is in the way).
fn verify_from(app: &TestApp, mfa_token: &str, code: &str) -> TestResponse {
    app.send(verify_request(app, &fresh_ip(), mfa_token, code))
}

fn stored_user(app: &TestApp, user: &str) -> User {
    let record = app.store.get(&format!("user:{user}")).unwrap();
    User::from_record(record).unwrap().expect("the user exists")
}

/// The answer of a right password with two-factor login on: a challenge,
/// and never a token.
fn assert_challenge(res: &TestResponse) -> String {
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.body["mfa_required"], true, "{}", res.body);
    for field in ["access_token", "refresh_token"] {
        assert!(
            res.body.get(field).is_none(),
            "tokens without the second step: {}",
            res.body
        );
    }
    res.body["mfa_token"]
        .as_str()
        .expect("an mfa_token")
        .to_owned()
}

/// The password step of `user` from a fresh address, after the lock it
/// finds (which ends within one lock duration), if any: its `mfa_token`.
fn password_step(app: &TestApp, user: &str) -> String {
    let mut res = app.login_from(user, PASSWORD, &fresh_ip());
    if res.status == 423 {
        let retry: u64 = res.header("retry-after").parse().unwrap();
        assert!((1..=LOCK_SECS).contains(&retry), "Retry-After {retry}");
        app.clock.advance_secs(retry);
        res = app.login_from(user, PASSWORD, &fresh_ip());
    }
    assert_challenge(&res)
}

/// `user` logs in through both steps as a careful user would, typing what
/// `code` gives at the time: after the lock the password step finds, if
/// any, and, when the second step finds the record busy (a lease a failure
/// left, free within two epochs), once more from a new login. Its session
/// works.
fn both_steps(app: &TestApp, user: &str, code: impl Fn(&TestApp) -> String) -> Pair {
    let mut res = verify_from(app, &password_step(app, user), &code(app));
    if res.status == 503 {
        assert_error(&res, 503, "account_busy");
        eprintln!("  busy: waiting out the lease");
        app.clock.advance_secs(LEASE_FREED_AFTER_SECS);
        res = verify_from(app, &password_step(app, user), &code(app));
    }
    let p = pair_of(&res);
    assert!(access_works(app, &p.access), "a two-step login's access");
    p
}

/// Alice, following the answers she gets: the password step, then the
/// second step with the app's code; on 503 `account_busy`, both again once
/// its `Retry-After` (1 s) has passed, until she gets in, which is within
/// two lease epochs. A busy second step is no failed login: it never locks
/// her out.
//
// Issue 11 review: a busy second step used to keep its lockout ticket, so
// the fifth 503 locked her out (Lost 12, 13 and Unanswered 9, 12 of both
// verify sweeps); it gives the ticket back now.
fn gets_in_following_retry_after(app: &TestApp, secret: &[u8]) {
    next_step(app);
    let until = app.clock.now_ms() + LEASE_FREED_AFTER_SECS * 1000;
    let mut busy = 0;
    loop {
        let res = app.login_from("alice", PASSWORD, &fresh_ip());
        assert_eq!(res.status, 200, "after {busy} busy answers: {}", res.body);
        let token = assert_challenge(&res);
        let res = verify_from(app, &token, &code_now(app, secret));
        if res.status == 200 {
            return;
        }
        assert_eq!(res.status, 503, "after {busy} busy answers: {}", res.body);
        assert_error(&res, 503, "account_busy");
        busy += 1;
        assert!(app.clock.now_ms() < until, "busy beyond two lease epochs");
        app.clock
            .advance_secs(res.header("retry-after").parse().unwrap());
    }
}

/// Alice turns two-factor login off following the answers she gets: on 503
/// `account_busy`, once more with the app's code once its `Retry-After`
/// (1 s) has passed, until it is off, which is within two lease epochs. A
/// busy answer is no failed check: it never locks her out.
//
// Issue 11 review: as in the second step, a busy disable used to keep its
// ticket (Unanswered 5); it gives it back now.
fn turns_off_following_retry_after(fx: &Fixture) {
    let (app, secret) = (&fx.app, &fx.factor.secret);
    next_step(app);
    let until = app.clock.now_ms() + LEASE_FREED_AFTER_SECS * 1000;
    let mut busy = 0;
    loop {
        let code = code_now(app, secret);
        let res = app.send(disable_request(app, &fx.pairs[0].access, &code));
        if res.status == 204 {
            return;
        }
        assert_eq!(res.status, 503, "after {busy} busy answers: {}", res.body);
        assert_error(&res, 503, "account_busy");
        busy += 1;
        assert!(app.clock.now_ms() < until, "busy beyond two lease epochs");
        app.clock
            .advance_secs(res.header("retry-after").parse().unwrap());
    }
}

/// Alice logs in through both steps with the app's next code.
fn both_steps_with_app(app: &TestApp, secret: &[u8]) -> Pair {
    both_steps(app, "alice", |app| fresh_code(app, secret))
}

/// Enrols `access`'s user (as a careful client: once more after a busy
/// answer) and confirms it: the secret and recovery codes.
fn enrol(app: &TestApp, access: &str) -> (Vec<u8>, Vec<String>) {
    let res = send_retrying(app, || enroll_request(app, access));
    let secret = secret_of(&res);
    let res = app.send(confirm_request(app, access, &fresh_code(app, &secret)));
    (secret, recovery_codes_of(&res))
}

fn secret_of(enrolment: &TestResponse) -> Vec<u8> {
    assert_eq!(enrolment.status, 200, "{}", enrolment.body);
    totp::decode_secret(enrolment.body["secret"].as_str().unwrap()).unwrap()
}

fn recovery_codes_of(confirmation: &TestResponse) -> Vec<String> {
    assert_eq!(confirmation.status, 200, "{}", confirmation.body);
    assert_eq!(confirmation.body["mfa_enabled"], true);
    let codes: Vec<String> = confirmation.body["recovery_codes"]
        .as_array()
        .expect("recovery codes")
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(codes.len(), 10, "{}", confirmation.body);
    codes
}

/// Two-factor login as the user and the admin see it: `on` in the record,
/// on `/auth/me` and on the admin's view; the password alone answers a
/// challenge exactly when it is on, tokens otherwise.
fn assert_mfa(fx: &Fixture, on: bool) {
    let app = &fx.app;
    let user = stored_user(app, "alice");
    assert_eq!(user.mfa.is_some(), on, "two-factor login in the record");
    let shown = app.get("/admin/users/alice", Some(&fx.token));
    assert_eq!(shown.status, 200, "{}", shown.body);
    assert_eq!(shown.body["mfa_enabled"], on, "{}", shown.body);
    let a = fx.fork();
    if on {
        password_step(&a.app, "alice");
    } else {
        log_in(&a.app, "alice", PASSWORD);
    }
}

// ---- scenes ----

/// Alice signed in (`pairs[0]`) on an app that can seal TOTP secrets, and
/// root; two-factor login not on.
fn alice_ready_for_mfa() -> Fixture {
    let mut fx = alice_and_root_in(mfa_app());
    fx.pairs = vec![log_in(&fx.app, "alice", PASSWORD)];
    fx
}

/// As [`alice_ready_for_mfa`], with an enrolment pending: `factor.secret`
/// is its secret.
fn alice_enrolling() -> Fixture {
    let mut fx = alice_ready_for_mfa();
    let res = fx.app.send(enroll_request(&fx.app, &fx.pairs[0].access));
    fx.factor.secret = secret_of(&res);
    fx
}

/// Alice with two-factor login on (`pairs[0]` is from before), and the
/// clock at the start of a step whose code is unused.
fn alice_enrolled() -> Fixture {
    let mut fx = alice_enrolling();
    let app = &fx.app;
    let code = fresh_code(app, &fx.factor.secret);
    let res = app.send(confirm_request(app, &fx.pairs[0].access, &code));
    fx.factor.recovery = recovery_codes_of(&res);
    next_step(&fx.app);
    fx
}

/// As [`alice_enrolled`], with `failures` wrong passwords.
fn alice_enrolled_after_failures(failures: u32) -> Fixture {
    let fx = alice_enrolled();
    for _ in 0..failures {
        let res = fx.app.login_from("alice", "wrong password", &fresh_ip());
        assert_error(&res, 401, "invalid_credentials");
    }
    fx
}

/// As [`alice_enrolled`], past the password step: `factor.mfa_token`.
fn alice_challenged() -> Fixture {
    let mut fx = alice_enrolled();
    fx.factor.mfa_token = password_step(&fx.app, "alice");
    fx
}

// ---- the password step ----

/// After alice's password step: two-factor login is still on; the account
/// takes a number of further wrong passwords in `left` (the step given its
/// ticket back, or counted as the one failure a request that died is), and
/// then locks for one lock duration; alice gets in through both steps
/// within one lock duration, which ends the streak; a wrong code never
/// gets a token.
fn mfa_login_after(fx: &Fixture, left: RangeInclusive<u32>) {
    let secret = &fx.factor.secret;
    assert!(stored_user(&fx.app, "alice").mfa.is_some(), "turned off");

    let a = fx.fork();
    let k = failures_left(&a.app, "alice");
    eprintln!("  failures left: {k}");
    assert!(left.contains(&k), "{k} failures left, want {left:?}");
    a.app.clock.advance_secs(LOCK_SECS);
    both_steps_with_app(&a.app, secret);

    let b = fx.fork();
    both_steps_with_app(&b.app, secret);
    assert_eq!(failures_left(&b.app, "alice"), THRESHOLD, "streak not over");

    let c = fx.fork();
    let token = password_step(&c.app, "alice");
    let res = verify_from(&c.app, &token, &wrong_code(&c.app, secret));
    assert_error(&res, 401, "invalid_mfa_code");
    let p = both_steps_with_app(&c.app, secret);
    assert!(refresh_of(&c.app, &p.refresh).is_some());
}

#[test]
fn a_password_step_failing_at_any_store_call_never_skips_the_second_step() {
    let case = |name, setup: fn() -> Fixture, after: fn(&Fixture)| Case {
        name,
        setup,
        request: |fx| login_request(&fx.app, "alice", PASSWORD),
        healthy: 200,
        failed: (500, "internal_error"),
        read_only: false,
        after,
    };
    let fx = alice_enrolled();
    assert_challenge(&fx.app.send(login_request(&fx.app, "alice", PASSWORD)));
    let calls = [
        // Two failures before. Healthy: the step gives its ticket back (3
        // left). Failed: untouched (3), or its ticket never given back
        // counts as one failure (2).
        sweep(case(
            "mfa login",
            || alice_enrolled_after_failures(2),
            |fx| mfa_login_after(fx, 2..=3),
        )),
        // One failure short of the lock: the same (1 left, or 0). With
        // none left and no lock written, the owner's next attempt locks
        // (past the threshold), and she gets in one lock duration later.
        sweep(case(
            "mfa login, one failure short",
            || alice_enrolled_after_failures(THRESHOLD - 1),
            |fx| mfa_login_after(fx, 0..=1),
        )),
    ];
    // Key, record, rate limit (sequence, slot), lock, ticket, the ticket
    // given back, the challenge counter.
    assert_eq!(calls, [8, 8], "mfa login");
}

// ---- the second step ----

/// Which of alice's codes a second step types.
#[derive(Clone, Copy)]
enum Typed {
    /// The app's code of the step the clock is in.
    Totp,
    /// Her first recovery code.
    Recovery,
}

/// After alice's second step with the code `typed`:
/// - two-factor login is still on;
/// - the request's `mfa_token` works with a fresh code only if its
///   challenge was not spent; once spent, it needs a new login;
/// - the typed code, with a new login: refused if its write-off landed (a
///   TOTP step at or below the last accepted one, a recovery code no longer
///   listed); otherwise it works once (or finds the record busy: a lease
///   the failure left), and is refused after;
/// - a new login with a fresh code (the next recovery code) works, ends
///   the streak of failures, and a wrong code never gets a token.
fn verify_after(fx: &Fixture, typed: Typed) {
    let app = &fx.app;
    let factor = &fx.factor;
    let mfa = stored_user(app, "alice")
        .mfa
        .expect("a second step turned two-factor login off");
    let (code, written_off) = match typed {
        Typed::Totp => {
            let step = step_now(app);
            (totp::code_at(&factor.secret, step), mfa.last_step >= step)
        }
        Typed::Recovery => (
            factor.recovery[0].clone(),
            mfa.recovery_codes.len() < factor.recovery.len(),
        ),
    };
    eprintln!("  code written off: {written_off}");

    gets_in_following_retry_after(&fx.fork().app, &factor.secret);

    let a = fx.fork();
    let res = verify_from(
        &a.app,
        &factor.mfa_token,
        &fresh_code(&a.app, &factor.secret),
    );
    eprintln!("  the request's mfa_token, again: {}", res.status);
    match res.status {
        200 => assert!(access_works(&a.app, &pair_of(&res).access)),
        503 => assert_error(&res, 503, "account_busy"),
        _ => assert_error(&res, 401, "invalid_mfa_token"),
    }

    let again = verify_from(app, &password_step(app, "alice"), &code);
    eprintln!("  the code, again: {}", again.status);
    if written_off {
        assert_error(&again, 401, "invalid_mfa_code");
    } else if again.status == 503 {
        assert_error(&again, 503, "account_busy");
    } else {
        assert!(access_works(app, &pair_of(&again).access));
        let twice = verify_from(app, &password_step(app, "alice"), &code);
        assert_error(&twice, 401, "invalid_mfa_code");
    }

    let (p, used) = match typed {
        Typed::Totp => {
            let p = both_steps_with_app(app, &factor.secret);
            (p, code_now(app, &factor.secret))
        }
        Typed::Recovery => {
            let used = factor.recovery[1].clone();
            (both_steps(app, "alice", |_| used.clone()), used)
        }
    };
    assert!(refresh_of(app, &p.refresh).is_some());
    let b = fx.fork();
    assert_eq!(failures_left(&b.app, "alice"), THRESHOLD, "streak not over");

    // Wrong, used just now, and made up.
    for wrong in [
        wrong_code(app, &factor.secret),
        used,
        "abcd-efgh-jkmn-pqrs-tuvw-xyz2".into(),
    ] {
        let res = verify_from(app, &password_step(app, "alice"), &wrong);
        assert_error(&res, 401, "invalid_mfa_code");
    }
    assert!(stored_user(app, "alice").mfa.is_some());
    both_steps(app, "alice", |_| factor.recovery[2].clone());
}

#[test]
fn a_second_step_with_a_totp_code_failing_at_any_store_call_never_allows_it_twice() {
    let calls = sweep(Case {
        name: "mfa verify (totp)",
        setup: alice_challenged,
        request: |fx| {
            let code = code_now(&fx.app, &fx.factor.secret);
            verify_request(&fx.app, CLIENT_IP, &fx.factor.mfa_token, &code)
        },
        healthy: 200,
        failed: (500, "internal_error"),
        read_only: false,
        after: |fx| verify_after(fx, Typed::Totp),
    });
    // Key; rate limit (sequence, slot); record; challenge (read, spend);
    // lock, ticket; the record under its lease (the step written off);
    // the streak over; counter; the session's three.
    assert_eq!(
        calls,
        1 + 2 + 1 + 2 + 2 + 6 + 1 + 1 + 3,
        "mfa verify (totp)"
    );
}

// Issue 11 review: `mfa_recovery_code_used` used to be logged before the
// counter and the session's calls (15 to 18), so a request that answered
// 500 left a success line; it is logged once the session exists now.
#[test]
fn a_second_step_with_a_recovery_code_failing_at_any_store_call_never_allows_it_twice() {
    let calls = sweep(Case {
        name: "mfa verify (recovery code)",
        setup: alice_challenged,
        request: |fx| {
            let code = &fx.factor.recovery[0];
            verify_request(&fx.app, CLIENT_IP, &fx.factor.mfa_token, code)
        },
        healthy: 200,
        failed: (500, "internal_error"),
        read_only: false,
        after: |fx| verify_after(fx, Typed::Recovery),
    });
    // As with a TOTP code: the code is struck from the record instead.
    assert_eq!(
        calls,
        1 + 2 + 1 + 2 + 2 + 6 + 1 + 1 + 3,
        "mfa verify (recovery)"
    );
}

// ---- enrolment and turning it off ----

/// After a confirmation of alice's pending secret: two-factor login is on
/// or off, alike everywhere.
/// - On: the write landed, but its answer (the recovery codes, shown only
///   then) may have been lost. Confirming again is refused; the pending
///   secret is her factor (both steps work with it); she turns it off with
///   her password and a code of the app, and enrols again, seeing codes
///   this time; or an admin resets it, and her password alone logs in.
/// - Off: nothing landed; her password alone logs in, and confirming again
///   with a fresh code of the same pending secret works.
fn confirm_after(fx: &Fixture) {
    let app = &fx.app;
    let (secret, access) = (&fx.factor.secret, &fx.pairs[0].access);
    let on = stored_user(app, "alice").mfa.is_some();
    eprintln!("  on: {on}");
    assert_mfa(fx, on);
    if !on {
        let res = send_retrying(app, || {
            confirm_request(app, access, &fresh_code(app, secret))
        });
        let codes = recovery_codes_of(&res);
        assert_mfa(fx, true);
        both_steps(app, "alice", |_| codes[0].clone());
        both_steps_with_app(app, secret);
        return;
    }
    let res = send_retrying(app, || {
        confirm_request(app, access, &fresh_code(app, secret))
    });
    assert_error(&res, 409, "mfa_already_enabled");
    both_steps_with_app(app, secret);

    let a = fx.fork();
    let res = send_retrying(&a.app, || {
        disable_request(&a.app, access, &fresh_code(&a.app, secret))
    });
    assert_no_content(&res);
    assert_mfa(&a, false);
    let (secret, codes) = enrol(&a.app, access);
    assert_mfa(&a, true);
    both_steps(&a.app, "alice", |_| codes[0].clone());
    both_steps_with_app(&a.app, &secret);

    let b = fx.fork();
    let res = send_retrying(&b.app, || reset_request(&b.app, &b.token, "alice"));
    assert_no_content(&res);
    assert_mfa(&b, false);
    assert_fresh_session_works(&b.app, "alice", PASSWORD);
}

#[test]
fn a_confirmation_failing_at_any_store_call_leaves_a_way_to_the_recovery_codes() {
    let calls = sweep(Case {
        name: "mfa confirm",
        setup: alice_enrolling,
        request: |fx| {
            let code = code_now(&fx.app, &fx.factor.secret);
            confirm_request(&fx.app, &fx.pairs[0].access, &code)
        },
        healthy: 200,
        failed: (500, "internal_error"),
        read_only: false,
        after: confirm_after,
    });
    // Key, record; the session counter; the record under its lease (the
    // factor on, the pending secret gone, the other sessions ended).
    assert_eq!(calls, 2 + 1 + 6, "mfa confirm");
}

/// After alice turned two-factor login off with her password and a code:
/// it is on or off, alike everywhere, and no enrolment is left pending;
/// the request counted at most one failure (its lockout ticket, when the
/// streak was not ended); on, both steps work and the retry turns it off;
/// off, turning it off again is refused. Then her password alone logs in,
/// and she can enrol again.
fn disable_after(fx: &Fixture) {
    let app = &fx.app;
    let (secret, access) = (&fx.factor.secret, &fx.pairs[0].access);
    let user = stored_user(app, "alice");
    assert!(user.mfa_pending.is_none(), "an enrolment left pending");
    let on = user.mfa.is_some();
    eprintln!("  on: {on}");
    assert_mfa(fx, on);

    let a = fx.fork();
    let k = failures_left(&a.app, "alice");
    eprintln!("  failures left: {k}");
    assert!(
        (THRESHOLD - 1..=THRESHOLD).contains(&k),
        "{k} failures left"
    );

    if on {
        let b = fx.fork();
        both_steps_with_app(&b.app, secret);
        turns_off_following_retry_after(&fx.fork());
        let res = send_retrying(app, || {
            disable_request(app, access, &fresh_code(app, secret))
        });
        assert_no_content(&res);
    } else {
        let res = send_retrying(app, || {
            disable_request(app, access, &fresh_code(app, secret))
        });
        assert_error(&res, 409, "mfa_not_enabled");
    }
    assert_mfa(fx, false);
    assert_fresh_session_works(app, "alice", PASSWORD);
    let (secret, _) = enrol(app, access);
    assert_mfa(fx, true);
    both_steps_with_app(app, &secret);
}

#[test]
fn turning_two_factor_login_off_failing_at_any_store_call_leaves_it_on_or_off() {
    let calls = sweep(Case {
        name: "mfa disable",
        setup: alice_enrolled,
        request: |fx| {
            let code = code_now(&fx.app, &fx.factor.secret);
            disable_request(&fx.app, &fx.pairs[0].access, &code)
        },
        healthy: 204,
        failed: (500, "internal_error"),
        read_only: false,
        after: disable_after,
    });
    // Key, record; lock, ticket; the record under its lease (the factor
    // gone); the streak over.
    assert_eq!(calls, 2 + 2 + 6 + 1, "mfa disable");
}

/// After an admin's reset of alice's two-factor login: on or off, alike
/// everywhere; the retry works; then it is off, her password alone logs
/// in, and she can enrol again.
fn reset_after(fx: &Fixture) {
    let app = &fx.app;
    let on = stored_user(app, "alice").mfa.is_some();
    eprintln!("  on: {on}");
    assert_mfa(fx, on);
    let res = send_retrying(app, || reset_request(app, &fx.token, "alice"));
    assert_no_content(&res);
    let user = stored_user(app, "alice");
    assert!(user.mfa.is_none() && user.mfa_pending.is_none());
    assert_mfa(fx, false);
    assert_fresh_session_works(app, "alice", PASSWORD);
    let (secret, _) = enrol(app, &fx.pairs[0].access);
    both_steps_with_app(app, &secret);
}

#[test]
fn an_admin_reset_of_two_factor_login_failing_at_any_store_call_can_be_retried() {
    let calls = sweep(Case {
        name: "mfa reset",
        setup: alice_enrolled,
        request: |fx| reset_request(&fx.app, &fx.token, "alice"),
        healthy: 204,
        failed: (500, "internal_error"),
        read_only: false,
        after: reset_after,
    });
    // Key, admin; the record under its lease; actions.
    assert_eq!(calls, 2 + 6 + 1, "mfa reset");
}

/// After alice started an enrolment: two-factor login is off (her password
/// alone logs in); a secret the failure may have left pending was never
/// shown, and the retry replaces it; the retried secret confirms, and then
/// the second step is required.
fn enroll_after(fx: &Fixture) {
    let app = &fx.app;
    assert_mfa(fx, false);
    let access = &fx.pairs[0].access;
    let res = send_retrying(app, || enroll_request(app, access));
    let secret = secret_of(&res);
    let res = app.send(confirm_request(app, access, &fresh_code(app, &secret)));
    let codes = recovery_codes_of(&res);
    assert_mfa(fx, true);
    both_steps_with_app(app, &secret);
    both_steps(app, "alice", |_| codes[0].clone());
}

#[test]
fn an_enrolment_failing_at_any_store_call_can_be_retried() {
    let calls = sweep(Case {
        name: "mfa enroll",
        setup: alice_ready_for_mfa,
        request: |fx| enroll_request(&fx.app, &fx.pairs[0].access),
        healthy: 200,
        failed: (500, "internal_error"),
        read_only: false,
        after: enroll_after,
    });
    // Key, record; the record under its lease (the pending secret).
    assert_eq!(calls, 2 + 6, "mfa enroll");
}
