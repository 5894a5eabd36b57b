//! Login: at most 5 attempts per client IP in any rolling 60 seconds.
//! Registration: at most 10. Refused attempts count too.

mod common;

use common::*;
use http::Method;
use secure_backend::clock::Clock;
use secure_backend::store::{KeyValue, MemoryStore};
use serde_json::json;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

/// A failed login under a fresh username each time, so lockout stays out of the way.
fn login_attempt(app: &TestApp, ip: &str) -> TestResponse {
    static N: AtomicUsize = AtomicUsize::new(0);
    let user = format!("nobody{}", N.fetch_add(1, Ordering::SeqCst));
    app.login_from(&user, "wrong password", ip)
}

#[test]
fn sixth_login_within_a_minute_is_rate_limited() {
    let app = TestApp::new();
    for _ in 0..5 {
        assert_error(
            &login_attempt(&app, "198.51.100.1"),
            401,
            "invalid_credentials",
        );
        app.clock.advance_secs(1);
    }
    let res = login_attempt(&app, "198.51.100.1");
    assert_error(&res, 429, "rate_limited");
    // Refused attempts count, so the next one is allowed once the second
    // attempt (made at 1 s) is a minute old: 61 s, 56 s from now.
    assert_eq!(res.header("retry-after"), "56");
}

#[test]
fn the_limit_is_per_client_ip() {
    let app = TestApp::new();
    for _ in 0..5 {
        login_attempt(&app, "198.51.100.1");
    }
    assert_error(&login_attempt(&app, "198.51.100.1"), 429, "rate_limited");
    assert_error(
        &login_attempt(&app, "198.51.100.2"),
        401,
        "invalid_credentials",
    );
}

#[test]
fn the_window_rolls_instead_of_resetting_on_the_minute() {
    let app = TestApp::new();
    // Three attempts late in one clock minute, then three early in the next.
    app.clock.advance_secs(50);
    for _ in 0..3 {
        assert_eq!(login_attempt(&app, "198.51.100.3").status, 401);
    }
    app.clock.advance_secs(15); // 65 s: a fixed-minute counter would have reset
    for _ in 0..2 {
        assert_eq!(login_attempt(&app, "198.51.100.3").status, 401);
    }
    assert_error(&login_attempt(&app, "198.51.100.3"), 429, "rate_limited");
}

#[test]
fn retry_after_is_honest() {
    let app = TestApp::new();
    for _ in 0..5 {
        login_attempt(&app, "198.51.100.4");
        app.clock.advance_secs(2);
    }
    let res = login_attempt(&app, "198.51.100.4");
    assert_eq!(res.status, 429);
    let wait: u64 = res.header("retry-after").parse().unwrap();
    app.clock.advance_secs(wait - 1);
    assert_eq!(login_attempt(&app, "198.51.100.4").status, 429, "too early");
    // After a real pause of a full window, it is allowed again.
    app.clock.advance_secs(60);
    assert_eq!(login_attempt(&app, "198.51.100.4").status, 401);
}

#[test]
fn waiting_exactly_retry_after_is_enough() {
    let app = TestApp::new();
    for _ in 0..5 {
        login_attempt(&app, "198.51.100.5");
        app.clock.advance_secs(3);
    }
    let res = login_attempt(&app, "198.51.100.5");
    let wait: u64 = res.header("retry-after").parse().unwrap();
    app.clock.advance_secs(wait);
    assert_eq!(login_attempt(&app, "198.51.100.5").status, 401);
}

#[test]
fn hammering_keeps_a_client_limited_until_it_pauses() {
    let app = TestApp::new();
    for _ in 0..5 {
        login_attempt(&app, "198.51.100.6");
    }
    // One attempt every 10 s: there are always 5 within the last minute.
    for _ in 0..12 {
        app.clock.advance_secs(10);
        assert_eq!(login_attempt(&app, "198.51.100.6").status, 429);
    }
    app.clock.advance_secs(60);
    assert_eq!(login_attempt(&app, "198.51.100.6").status, 401);
}

#[test]
fn a_successful_login_counts_as_an_attempt() {
    let app = TestApp::new();
    app.register("alice", PASSWORD);
    for _ in 0..5 {
        assert_eq!(
            app.login_from("alice", PASSWORD, "198.51.100.7").status,
            200
        );
    }
    assert_error(
        &app.login_from("alice", PASSWORD, "198.51.100.7"),
        429,
        "rate_limited",
    );
}

#[test]
fn a_client_sent_spin_client_addr_does_not_escape_the_limit() {
    let app = TestApp::new();
    let send = |spoof: &str| {
        app.send(
            http::Request::builder()
                .method(Method::POST)
                .uri("/auth/login")
                .header("content-type", "application/json")
                // What the client sent comes first; Spin appends the real peer.
                .header("spin-client-addr", format!("{spoof}:1"))
                .header("spin-client-addr", "198.51.100.8:5555")
                .body(
                    json!({"username": "x-user", "password": "password1"})
                        .to_string()
                        .into_bytes(),
                )
                .unwrap(),
        )
    };
    for i in 0..5 {
        assert_eq!(send(&format!("10.0.0.{i}")).status, 401);
    }
    assert_error(&send("10.0.0.99"), 429, "rate_limited");
}

#[test]
fn ipv6_clients_share_a_limit_per_64() {
    let app = TestApp::new();
    for i in 0..5 {
        assert_eq!(
            login_attempt(&app, &format!("[2001:db8:7:7::{i:x}]")).status,
            401
        );
    }
    assert_error(
        &login_attempt(&app, "[2001:db8:7:7:ffff::1]"),
        429,
        "rate_limited",
    );
    assert_eq!(
        login_attempt(&app, "[2001:db8:7:8::1]").status,
        401,
        "another /64"
    );
}

#[test]
fn a_trusted_proxy_header_can_name_the_client() {
    let app = TestApp::with_vars(&[("client_ip_header", "true-client-ip")]);
    let send = |client: &str| {
        app.send(
            app.request(Method::POST, "/auth/login", "10.1.1.1")
                .header("content-type", "application/json")
                .header("true-client-ip", client)
                .body(
                    json!({"username": format!("x-{client}"), "password": "password1"})
                        .to_string()
                        .into_bytes(),
                )
                .unwrap(),
        )
    };
    for _ in 0..5 {
        send("203.0.113.1");
    }
    assert_eq!(send("203.0.113.1").status, 429);
    assert_eq!(
        send("203.0.113.2").status,
        401,
        "same proxy, different client"
    );
}

#[test]
fn registration_allows_ten_per_minute_per_ip() {
    let app = TestApp::new();
    for i in 0..10 {
        assert_eq!(
            app.register_from(&format!("user{i}"), PASSWORD, "198.51.100.9")
                .status,
            201
        );
    }
    let res = app.register_from("user10", PASSWORD, "198.51.100.9");
    assert_error(&res, 429, "rate_limited");
    assert!(res.header("retry-after").parse::<u64>().unwrap() >= 1);
    assert_eq!(
        app.register_from("user10", PASSWORD, "198.51.100.10")
            .status,
        201
    );
    app.clock.advance_secs(61);
    assert_eq!(
        app.register_from("user11", PASSWORD, "198.51.100.9").status,
        201
    );
}

#[test]
fn the_limits_are_configurable() {
    let app = TestApp::with_vars(&[
        ("login_rate_limit", "2"),
        ("login_rate_window_seconds", "10"),
        ("register_rate_limit", "1"),
    ]);
    login_attempt(&app, "198.51.100.11");
    login_attempt(&app, "198.51.100.11");
    assert_eq!(login_attempt(&app, "198.51.100.11").status, 429);
    app.clock.advance_secs(11);
    assert_eq!(login_attempt(&app, "198.51.100.11").status, 401);
    assert_eq!(
        app.register_from("one", PASSWORD, "198.51.100.12").status,
        201
    );
    assert_eq!(
        app.register_from("two", PASSWORD, "198.51.100.12").status,
        429
    );
}

#[test]
fn rate_limited_requests_are_counted_and_audited() {
    let app = TestApp::new();
    for _ in 0..7 {
        login_attempt(&app, "198.51.100.13");
    }
    let events = app.events_named("rate_limited");
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["client_ip"], "198.51.100.13");
    let admin = app.admin_token("root");
    assert_eq!(
        app.get("/admin/dashboard", Some(&admin)).body["stats"]["rate_limited_requests"],
        2
    );
}

#[test]
fn a_flood_of_client_addresses_keeps_the_store_bounded() {
    // Addresses are hashed into at most 65,536 slots per scope, each with at
    // most limit + 1 keys, whatever the number of addresses; no key names one.
    let app = TestApp::with_vars(&[("login_rate_limit", "1")]);
    let ips: Vec<String> = (0..1000u32)
        .map(|i| format!("10.{}.{}.7", i / 250, i % 250))
        .collect();
    for ip in &ips {
        app.login_from("nobody", "wrong password", ip);
    }
    let keys: Vec<String> = app
        .store
        .keys()
        .into_iter()
        .filter(|k| k.starts_with("rl:"))
        .collect();
    assert!(keys
        .iter()
        .all(|k| !ips.iter().any(|ip| k.contains(ip.as_str()))));
    let mut slots = std::collections::HashSet::new();
    for key in &keys {
        let parts: Vec<&str> = key.split(':').collect();
        assert_eq!(parts[..2], ["rl", "login"], "{key}");
        assert!(u32::from_str_radix(parts[2], 16).unwrap() < 65_536, "{key}");
        assert!(
            parts[3] == "seq" || parts[3].parse::<u32>().is_ok_and(|n| n < 8),
            "limit 1: records under at most 4 * (1 + 1) names per slot: {key}"
        );
        slots.insert(parts[2].to_owned());
    }
    // The addresses really are told apart (not all "unknown" in one slot).
    assert!(slots.len() > 950, "{} slots", slots.len());
}

#[test]
fn a_client_that_keeps_hammering_keeps_its_slot_bounded() {
    // Records are kept under 4 * (limit + 1) names that come round again:
    // however many attempts, a slot holds those and its sequence counter.
    let app = TestApp::new();
    for i in 0..300 {
        login_attempt(&app, "198.51.100.23");
        app.clock.advance_secs(i % 7);
    }
    let keys = app.store.keys();
    let slot_keys = keys.iter().filter(|k| k.starts_with("rl:login:")).count();
    assert!(slot_keys <= 4 * (5 + 1) + 1, "{slot_keys} keys");
}

// Finding 6 of issue 7: after a burst, the limiter refused more than it
// should and its `Retry-After` was wrong, because a slow old attempt could
// overwrite a newer attempt's record.

/// The app's store, except that while `holding` is on, the login limiter's
/// record writes are held back and land only when `land` is called: the
/// writes of slow attempts, landing after those of later attempts.
struct SlowWrites<'a> {
    inner: &'a MemoryStore,
    holding: AtomicBool,
    held: Mutex<Vec<(String, Vec<u8>)>>,
}

impl<'a> SlowWrites<'a> {
    fn new(inner: &'a MemoryStore) -> Self {
        Self {
            inner,
            holding: AtomicBool::new(false),
            held: Mutex::new(Vec::new()),
        }
    }

    fn hold(&self, on: bool) {
        self.holding.store(on, Ordering::SeqCst);
    }

    /// Lands the held writes, the latest attempt's first.
    fn land_newest_first(&self) {
        let held = std::mem::take(&mut *self.held.lock().unwrap());
        for (key, value) in held.into_iter().rev() {
            self.inner.set(&key, &value).unwrap();
        }
    }
}

impl KeyValue for SlowWrites<'_> {
    fn get(&self, key: &str) -> anyhow::Result<Option<Vec<u8>>> {
        self.inner.get(key)
    }

    fn set(&self, key: &str, value: &[u8]) -> anyhow::Result<()> {
        if self.holding.load(Ordering::SeqCst) && key.starts_with("rl:login:") {
            self.held
                .lock()
                .unwrap()
                .push((key.to_owned(), value.to_vec()));
            return Ok(());
        }
        self.inner.set(key, value)
    }

    fn delete(&self, key: &str) -> anyhow::Result<()> {
        self.inner.delete(key)
    }

    fn increment(&self, key: &str, delta: i64) -> anyhow::Result<i64> {
        self.inner.increment(key, delta)
    }
}

/// A failed login from `ip` through `store`: (status, Retry-After seconds).
fn login_via(app: &TestApp, store: &dyn KeyValue, ip: &str) -> (u16, u64) {
    static N: AtomicUsize = AtomicUsize::new(0);
    let user = format!("slow{}", N.fetch_add(1, Ordering::SeqCst));
    let req = app
        .request(Method::POST, "/auth/login", ip)
        .header("content-type", "application/json")
        .body(
            json!({"username": user, "password": "wrong password"})
                .to_string()
                .into_bytes(),
        )
        .unwrap();
    let res = app.send_through(store, req);
    let retry_after = res.header("retry-after").parse().unwrap_or(0);
    (res.status, retry_after)
}

/// From a quiet start, sends one attempt at a time and obeys every
/// `Retry-After`: each attempt sent when the limiter said it would pass must
/// pass, and no rolling window may hold more than `limit` passed attempts.
fn obey_retry_after(app: &TestApp, store: &dyn KeyValue, ip: &str, limit: usize, window_ms: u64) {
    let mut passed_at: Vec<u64> = Vec::new();
    let mut told_it_would_pass = true;
    while passed_at.len() < 3 * limit {
        let now = app.clock.now_ms();
        let (status, retry_after) = login_via(app, store, ip);
        if status == 429 {
            assert!(
                !told_it_would_pass,
                "refused at +{} ms, when the limiter said it would pass",
                now - START_MS
            );
            assert!(retry_after >= 1);
            app.clock.advance_secs(retry_after);
            told_it_would_pass = true;
        } else {
            assert_eq!(status, 401);
            passed_at.push(now);
            let in_window = passed_at.iter().filter(|t| **t + window_ms > now).count();
            assert!(in_window <= limit, "{in_window} passed in one window");
            // Only the attempt after a refusal is promised to pass.
            told_it_would_pass = false;
        }
    }
}

#[test]
fn a_slow_old_attempt_cannot_overwrite_a_newer_record() {
    let app = TestApp::with_vars(&[("login_rate_window_seconds", "5")]);
    let store = SlowWrites::new(&app.store);
    let ip = "198.51.100.20";
    // Attempts 1-5 pass, but their records are slow to land ...
    store.hold(true);
    for _ in 0..5 {
        assert_eq!(login_via(&app, &store, ip).0, 401);
    }
    store.hold(false);
    // ... after attempts 6-10, refused, have recorded theirs.
    for _ in 0..5 {
        assert_eq!(login_via(&app, &store, ip).0, 429);
    }
    store.land_newest_first();
    // A quiet full window later, the next attempt passes: it is decided by
    // attempt 6, made more than a window ago.
    app.clock.advance_secs(6);
    assert_eq!(login_via(&app, &store, ip).0, 401);
}

#[test]
fn an_attempt_whose_record_never_lands_does_not_hold_the_window() {
    let app = TestApp::with_vars(&[("login_rate_window_seconds", "5")]);
    let store = SlowWrites::new(&app.store);
    let ip = "198.51.100.24";
    // Attempt 1's record is lost (its instance died after taking a number).
    store.hold(true);
    assert_eq!(login_via(&app, &store, ip).0, 401);
    store.hold(false);
    for _ in 0..4 {
        assert_eq!(login_via(&app, &store, ip).0, 401);
    }
    // A window later the client has a full window again: attempt 6, which
    // attempt 1 would decide, goes by attempt 2's record instead.
    app.clock.advance_secs(5);
    for i in 0..5 {
        assert_eq!(login_via(&app, &store, ip).0, 401, "attempt {i}");
    }
    assert_eq!(login_via(&app, &store, ip), (429, 5));
}

#[test]
fn after_a_burst_the_limiter_does_not_over_refuse_and_retry_after_is_honest() {
    // The reproduction, with the manual clock: window 5 s, 100
    // "parallel" logins from one address whose record writes land out of
    // order (each batch of ten lands newest first, after the batch), then
    // one attempt at a time obeying Retry-After.
    let app = TestApp::with_vars(&[("login_rate_window_seconds", "5")]);
    let store = SlowWrites::new(&app.store);
    let ip = "198.51.100.21";
    let mut last = (0, 0);
    store.hold(true);
    for i in 0..100 {
        last = login_via(&app, &store, ip);
        assert_eq!(last.0, if i < 5 { 401 } else { 429 }, "attempt {i}");
        if i % 10 == 9 {
            store.land_newest_first();
        }
    }
    store.hold(false);
    // The burst's last answer says when the next attempt passes: a window on.
    assert_eq!(last.1, 5);
    app.clock.advance_secs(last.1);
    obey_retry_after(&app, &store, ip, 5, 5_000);
}

#[test]
fn a_store_fault_in_any_call_of_an_attempt_neither_lets_a_client_past_nor_limits_it_beyond_a_window(
) {
    let ip = "198.51.100.22";
    // The faulty attempt is the first, the fifth (the last that passes
    // unread), the sixth (the first the limiter decides from a record) or
    // the seventh (refused while the window is full).
    for (history, hammer) in [0, 4, 5, 6]
        .into_iter()
        .flat_map(|h| [(h, true), (h, false)])
    {
        let calls_of_one_attempt = {
            let app = TestApp::with_vars(&[("login_rate_window_seconds", "5")]);
            for _ in 0..history {
                login_via(&app, &app.store, ip);
            }
            let before = app.store.calls();
            login_via(&app, &app.store, ip);
            app.store.calls() - before
        };
        for fail in 0..calls_of_one_attempt {
            let app = TestApp::with_vars(&[("login_rate_window_seconds", "5")]);
            let mut passed = 0;
            for _ in 0..history {
                passed += usize::from(login_via(&app, &app.store, ip).0 == 401);
            }
            app.store.fail_when(move |n, _, _| n == fail);
            let (status, _) = login_via(&app, &app.store, ip);
            app.store.stop_failing();
            passed += usize::from(status == 401);
            // Hammering in the same instant: never more than the limit pass.
            for _ in 0..if hammer { 10 } else { 0 } {
                passed += usize::from(login_via(&app, &app.store, ip).0 == 401);
            }
            assert!(
                passed <= 5,
                "history {history}, call {fail}: {passed} passed"
            );
            // After a quiet window the client is not limited any more: it
            // passes, and obeying Retry-After it is never refused wrongly.
            // A lost record costs at most one of the next window's attempts.
            app.clock.advance_secs(5);
            assert_eq!(
                login_via(&app, &app.store, ip).0,
                401,
                "history {history}, call {fail}"
            );
            let passed = 1
                + (1..5)
                    .filter(|_| login_via(&app, &app.store, ip).0 == 401)
                    .count();
            assert!(passed >= 4, "history {history}, call {fail}: {passed}");
            app.clock.advance_secs(5);
            obey_retry_after(&app, &app.store, ip, 5, 5_000);
        }
    }
}

#[test]
fn after_a_parallel_burst_waiting_retry_after_is_enough() {
    // The same with real threads: 100 logins from one address at once.
    let app = TestApp::with_vars(&[("login_rate_window_seconds", "5")]);
    let ip = "198.51.100.25";
    let answers = in_parallel(100, |_| login_via(&app, &app.store, ip));
    assert_eq!(answers.iter().filter(|(s, _)| *s == 401).count(), 5);
    let wait = answers.iter().map(|(_, r)| *r).max().unwrap();
    assert!((1..=5).contains(&wait), "Retry-After {wait}");
    app.clock.advance_secs(wait);
    obey_retry_after(&app, &app.store, ip, 5, 5_000);
}
