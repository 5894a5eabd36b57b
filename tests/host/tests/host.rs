//! spin-test-host against a real spin-sdk 5.2 component (`../hello`, built
//! for wasm32-wasip1 by the tests), one test per Spin behaviour mirrored.

mod support;

use std::collections::BTreeSet;

use spin_test_host::{HostConfig, RunningHost};
use support::{
    fresh_dir, get, hello_config, hello_wasm, increment_in_parallel, request, start_hello,
};

#[test]
fn spin_headers_are_appended_after_the_clients_own() {
    let (host, _dir) = start_hello("headers");
    let reply = request(
        host.addr,
        "GET",
        "/foo/bar?x=1&y=2",
        &[("spin-client-addr", "6.6.6.6:1"), ("x-custom", "yes")],
        b"",
    );
    assert_eq!(reply.status, 200);
    let client_addr = reply.echoed("spin-client-addr");
    assert_eq!(client_addr.len(), 2, "{client_addr:?}");
    assert_eq!(client_addr[0], "6.6.6.6:1");
    assert_eq!(
        client_addr[1]
            .parse::<std::net::SocketAddr>()
            .unwrap()
            .ip()
            .to_string(),
        "127.0.0.1"
    );
    let one = |name: &str| {
        let values = reply.echoed(name);
        assert_eq!(values.len(), 1, "{name}: {values:?}");
        values[0].clone()
    };
    assert_eq!(
        one("spin-full-url"),
        format!("http://{}/foo/bar?x=1&y=2", host.addr)
    );
    assert_eq!(one("spin-path-info"), "/foo/bar");
    assert_eq!(one("spin-matched-route"), "/...");
    assert_eq!(one("spin-raw-component-route"), "/...");
    assert_eq!(one("spin-component-route"), "");
    assert_eq!(one("spin-base-path"), "/");
    assert_eq!(one("x-custom"), "yes");
    assert!(
        reply.echoed("host").is_empty(),
        "Spin strips the host header"
    );
}

#[test]
fn spin_sdk_http_request_keeps_only_the_last_value_of_a_header() {
    let (host, _dir) = start_hello("sdk-headers");
    let reply = request(
        host.addr,
        "GET",
        "/sdk-headers",
        &[("spin-client-addr", "6.6.6.6:1")],
        b"",
    );
    let values = reply.echoed("spin-client-addr");
    assert_eq!(values.len(), 1, "{values:?}");
    assert_ne!(values[0], "6.6.6.6:1");
}

#[test]
fn exact_and_named_wildcard_routes_come_from_the_manifest() {
    let (host, _dir) = start_hello("routes");
    let exact = get(host.addr, "/exact");
    assert_eq!(exact.echoed("spin-matched-route"), ["/exact"]);
    assert_eq!(exact.echoed("spin-component-route"), ["/exact"]);
    assert_eq!(exact.echoed("spin-path-info"), [""]);

    let named = get(host.addr, "/api/alice/rest/of/path?q=1");
    assert_eq!(named.echoed("spin-matched-route"), ["/api/:name/..."]);
    assert_eq!(named.echoed("spin-component-route"), ["/api/:name"]);
    assert_eq!(named.echoed("spin-path-info"), ["/rest/of/path"]);
    assert_eq!(named.echoed("spin-path-match-name"), ["alice"]);
}

#[test]
fn a_path_no_route_matches_gets_a_plain_404_from_the_host() {
    let dir = fresh_dir("unrouted");
    let manifest = dir.join("spin.toml");
    std::fs::write(
        &manifest,
        r#"
        spin_manifest_version = 2
        [application]
        name = "limited"
        [[trigger.http]]
        route = "/api/..."
        component = "hello"
        [[trigger.http]]
        route = "/health"
        component = "hello"
        [component.hello]
        source = "hello.wasm"
        "#,
    )
    .unwrap();
    let mut cfg = HostConfig::new(hello_wasm(""), &manifest, dir.join("store.db"));
    cfg.cache_dir = hello_config(&dir).cache_dir;
    let host = RunningHost::start(cfg).unwrap();
    let missing = get(host.addr, "/elsewhere");
    assert_eq!(missing.status, 404);
    assert!(missing.body.is_empty());
    assert_eq!(get(host.addr, "/healthz").status, 404);
    assert_eq!(get(host.addr, "/health").status, 200);
    assert_eq!(get(host.addr, "/api/x").echoed("spin-path-info"), ["/x"]);
    assert_eq!(get(host.addr, "/.well-known/spin/health").body, b"OK");
}

#[test]
fn variables_use_the_default_unless_overridden() {
    let (host, _dir) = start_hello("var-default");
    assert_eq!(
        get(host.addr, "/var?name=greeting").json()["value"],
        "hello, world"
    );
    assert_eq!(
        get(host.addr, "/var?name=api_token").json()["value"],
        "test-token"
    );
    let undefined = get(host.addr, "/var?name=nope").json();
    assert!(
        undefined["error"].as_str().unwrap().contains("Undefined"),
        "{undefined}"
    );
    let invalid = get(host.addr, "/var?name=Bad-Name").json();
    assert!(
        invalid["error"].as_str().unwrap().contains("InvalidName"),
        "{invalid}"
    );

    let dir = fresh_dir("var-override");
    let host = RunningHost::start(hello_config(&dir).variable("greeting", "hi")).unwrap();
    assert_eq!(
        get(host.addr, "/var?name=greeting").json()["value"],
        "hi, world"
    );
}

#[test]
fn a_required_variable_without_a_value_fails_start_up() {
    let dir = fresh_dir("var-required");
    let mut cfg = hello_config(&dir);
    cfg.variables.clear();
    let err = RunningHost::start(cfg).err().expect("start-up must fail");
    assert!(
        format!("{err:#}").contains("no provider resolved required variable \"api_token\""),
        "{err:#}"
    );
}

#[test]
fn parallel_increments_are_exact() {
    let (host, _dir) = start_hello("increments");
    let addr = host.addr;
    let seen = increment_in_parallel(addr, "hits", 200, 16);
    assert_eq!(seen, (1..=200).collect::<BTreeSet<_>>());
    // Spin's SQLite store keeps the counter as 8 little-endian bytes.
    let stored = get(addr, "/get?key=hits").json()["value"].clone();
    assert_eq!(stored, serde_json::json!([200, 0, 0, 0, 0, 0, 0, 0]));
}

#[test]
fn the_store_survives_a_restart_with_the_same_file() {
    let dir = fresh_dir("restart");
    let host = RunningHost::start(hello_config(&dir)).unwrap();
    assert_eq!(
        request(host.addr, "POST", "/set?key=kept", &[], b"value").status,
        200
    );
    assert_eq!(get(host.addr, "/incr?key=n").json()["value"], 1);
    host.stop();

    let host = RunningHost::start(hello_config(&dir)).unwrap();
    assert_eq!(
        get(host.addr, "/get?key=kept").json()["value"],
        serde_json::json!(b"value".to_vec())
    );
    assert_eq!(get(host.addr, "/incr?key=n").json()["value"], 2);
}

#[test]
fn key_value_operations_behave_like_spins_sqlite_store() {
    let (host, _dir) = start_hello("kv");
    let reply = get(host.addr, "/kv").json();
    assert_eq!(reply["a"], serde_json::json!([49]));
    // Spin's SQLite get-many returns only the keys that exist.
    let mut keys: Vec<String> = reply["get_many"]
        .as_array()
        .unwrap()
        .iter()
        .map(|pair| pair[0].as_str().unwrap().to_string())
        .collect();
    keys.sort();
    assert_eq!(keys, ["a", "b"]);
    assert_eq!(reply["a_exists_after_delete"], false);
    assert_eq!(reply["open_other"], "Error::AccessDenied");
}

#[test]
fn incrementing_a_value_that_is_not_a_counter_fails_the_request() {
    let (host, _dir) = start_hello("not-a-counter");
    assert_eq!(
        request(host.addr, "POST", "/set?key=text", &[], b"abc").status,
        200
    );
    let reply = get(host.addr, "/incr?key=text");
    assert_eq!(reply.status, 500);
    let errors = host.host_errors().join("\n");
    assert!(
        errors.contains("not an 8-byte little-endian i64 counter"),
        "{errors}"
    );
    // Unlike Spin (whose panic poisons the store), the store keeps working.
    assert_eq!(get(host.addr, "/incr?key=other").json()["value"], 1);
}

#[test]
fn every_request_gets_a_fresh_instance() {
    let (host, _dir) = start_hello("fresh");
    assert_eq!(get(host.addr, "/static").json()["calls"], 1);
    assert_eq!(get(host.addr, "/static").json()["calls"], 1);
}

#[test]
fn component_stdout_and_stderr_are_captured_in_whole_lines() {
    let (host, _dir) = start_hello("stdout");
    let addr = host.addr;
    let threads: Vec<_> = (0..8)
        .map(|t| {
            std::thread::spawn(move || {
                for i in 0..5 {
                    assert_eq!(get(addr, &format!("/print?msg=line-{t}-{i}")).status, 200);
                }
            })
        })
        .collect();
    threads.into_iter().for_each(|t| t.join().unwrap());
    let lines: BTreeSet<String> = host.stdout_lines().into_iter().collect();
    let expected: BTreeSet<String> = (0..8)
        .flat_map(|t| (0..5).map(move |i| format!("line-{t}-{i}")))
        .collect();
    assert_eq!(lines, expected);
    assert!(host.stderr_text().contains("stderr: line-3-4\n"));
}

#[test]
fn the_component_environment_comes_from_the_manifest() {
    let (host, _dir) = start_hello("env");
    assert_eq!(get(host.addr, "/").json()["env"], "from-manifest");
}

#[test]
fn unknown_imports_fail_start_up_naming_each_of_them() {
    let dir = fresh_dir("unknown-import");
    let wasm = dir.join("unknown.wasm");
    let component = wat::parse_str(
        r#"(component
             (import "example:unknown/thing@1.0.0" (instance (export "poke" (func))))
             (import "example:unknown/other@2.0.0" (instance (export "prod" (func (param "x" u32)))))
           )"#,
    )
    .unwrap();
    std::fs::write(&wasm, component).unwrap();
    let mut cfg = hello_config(&dir);
    cfg.wasm = wasm;
    let err = format!(
        "{:#}",
        RunningHost::start(cfg).err().expect("start-up must fail")
    );
    assert!(err.contains("example:unknown/thing@1.0.0"), "{err}");
    assert!(err.contains("example:unknown/other@2.0.0"), "{err}");
}

#[test]
fn a_spin_component_using_an_unprovided_spin_interface_fails_start_up() {
    let dir = fresh_dir("sqlite-import");
    let mut cfg = hello_config(&dir);
    cfg.wasm = hello_wasm("uses-sqlite");
    let err = format!(
        "{:#}",
        RunningHost::start(cfg).err().expect("start-up must fail")
    );
    assert!(err.contains("fermyon:spin/sqlite@2.0.0"), "{err}");
}

#[test]
fn the_older_spin_key_value_interface_shares_the_default_store() {
    let (host, _dir) = start_hello("spin-kv");
    let reply = get(host.addr, "/spin-kv").json();
    assert_eq!(reply["value"], serde_json::json!(b"v".to_vec()));
    assert_eq!(reply["keys"], serde_json::json!(["spin-kv"]));
    assert_eq!(reply["open_other"], "Error::AccessDenied");
    assert_eq!(
        get(host.addr, "/get?key=spin-kv").json()["value"],
        serde_json::json!(b"v".to_vec())
    );
}

#[test]
fn wasi_config_answers_none_for_unknown_names() {
    let (host, _dir) = start_hello("config");
    let reply = get(host.addr, "/config").json();
    assert_eq!(reply["greeting"], "hello, world");
    assert_eq!(reply["unknown"], serde_json::Value::Null);
    assert_eq!(reply["all"].as_array().unwrap().len(), 2);
}
