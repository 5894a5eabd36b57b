//! Login: at most 5 attempts per client IP in any rolling 60 seconds.
//! Registration: at most 10. Refused attempts count too.

mod common;

use common::*;
use http::Method;
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};

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
            ["seq", "0"].contains(&parts[3]),
            "limit 1: one entry per slot: {key}"
        );
        slots.insert(parts[2].to_owned());
    }
    // The addresses really are told apart (not all "unknown" in one slot).
    assert!(slots.len() > 950, "{} slots", slots.len());
}
