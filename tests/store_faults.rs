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

/// A scene to fail a request in: the app, and a token the request may need.
struct Fixture {
    app: TestApp,
    token: String,
}

impl Fixture {
    fn of(app: TestApp) -> Self {
        Self {
            app,
            token: String::new(),
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

    for fault in [Fault::Lost, Fault::Unanswered] {
        for i in 0..n {
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
            let at = format!("{}: {fault:?} call {i} ({op:?} {key})", case.name);
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
    }
    n
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
    let app = TestApp::new();
    assert_eq!(
        app.register_from("alice", PASSWORD, &fresh_ip()).status,
        201
    );
    let token = app.admin_token("root");
    Fixture { app, token }
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
