//! spin-test-host's Redis key-value backend against a real spin-sdk 5.2
//! component (`../hello`) and a real Redis (`SECURE_BACKEND_TEST_REDIS`, e.g.
//! `redis://127.0.0.1:6390`; each test is skipped when it is unset), one test
//! per behaviour of Spin 4.0.2's Redis store that the host mirrors.

mod support;

use std::collections::BTreeSet;

use redis::Commands as _;
use serde_json::json;
use spin_test_host::{KeyValueBackend, RunningHost};
use support::{
    get, hello_config_on, increment_in_parallel, redis_connection, redis_db, request,
    start_hello_on_redis, Reply,
};

fn post(host: &RunningHost, target: &str, body: &[u8]) -> Reply {
    request(host.addr, "POST", target, &[], body)
}

fn bytes(value: &[u8]) -> serde_json::Value {
    json!(value.to_vec())
}

#[test]
fn a_counter_is_a_decimal_string_in_redis() {
    let Some(db) = redis_db("a_counter_is_a_decimal_string_in_redis") else {
        return;
    };
    let host = start_hello_on_redis(&db);
    for expected in 1..=5 {
        assert_eq!(get(host.addr, "/incr?key=hits").json()["value"], expected);
    }
    // INCRBY: `get` returns the decimal text, not SQLite's 8 LE bytes.
    assert_eq!(get(host.addr, "/get?key=hits").json()["value"], bytes(b"5"));
    // Keys are stored as given, without the store label.
    let stored: String = redis_connection(&db).get("hits").unwrap();
    assert_eq!(stored, "5");
}

#[test]
fn parallel_increments_are_exact() {
    let Some(db) = redis_db("parallel_increments_are_exact") else {
        return;
    };
    let host = start_hello_on_redis(&db);
    let addr = host.addr;
    let seen = increment_in_parallel(addr, "hits", 200, 16);
    assert_eq!(seen, (1..=200).collect::<BTreeSet<_>>());
    assert_eq!(get(addr, "/get?key=hits").json()["value"], bytes(b"200"));
}

#[test]
fn incrementing_a_value_that_is_not_an_integer_is_an_error_for_the_guest() {
    let Some(db) =
        redis_db("incrementing_a_value_that_is_not_an_integer_is_an_error_for_the_guest")
    else {
        return;
    };
    let host = start_hello_on_redis(&db);
    assert_eq!(post(&host, "/set?key=text", b"abc").status, 200);
    let reply = get(host.addr, "/try-incr?key=text");
    assert_eq!(reply.status, 200);
    let error = reply.json()["error"].as_str().unwrap().to_string();
    assert!(error.starts_with("Error::Other("), "{error}");
    assert!(error.contains("value is not an integer"), "{error}");
    assert!(host.host_errors().is_empty(), "{:?}", host.host_errors());
}

#[test]
fn set_get_exists_and_delete_round_trip() {
    let Some(db) = redis_db("set_get_exists_and_delete_round_trip") else {
        return;
    };
    let host = start_hello_on_redis(&db);
    assert_eq!(post(&host, "/set?key=k", b"v1").status, 200);
    assert_eq!(get(host.addr, "/get?key=k").json()["value"], bytes(b"v1"));
    assert_eq!(get(host.addr, "/exists?key=k").json()["value"], true);
    assert_eq!(get(host.addr, "/keys").json()["value"], json!(["k"]));
    assert_eq!(
        get(host.addr, "/delete?key=k").json(),
        json!({ "value": null })
    );
    assert_eq!(get(host.addr, "/exists?key=k").json()["value"], false);
    assert_eq!(get(host.addr, "/get?key=k").json()["value"], json!(null));

    assert_eq!(
        get(host.addr, "/set-many?keys=a,b").json(),
        json!({ "value": null })
    );
    assert_eq!(
        get(host.addr, "/get?key=b").json()["value"],
        bytes(b"b-value")
    );
    assert_eq!(
        get(host.addr, "/delete-many?keys=a,b").json(),
        json!({ "value": null })
    );
    assert_eq!(get(host.addr, "/keys").json()["value"], json!([]));
}

#[test]
fn get_many_with_several_keys_is_an_error_for_the_guest() {
    let Some(db) = redis_db("get_many_with_several_keys_is_an_error_for_the_guest") else {
        return;
    };
    let host = start_hello_on_redis(&db);
    get(host.addr, "/set-many?keys=a,b");
    // Spin sends the keys to KEYS, which takes one pattern.
    let reply = get(host.addr, "/get-many?keys=a,b").json();
    let error = reply["error"].as_str().unwrap_or_else(|| panic!("{reply}"));
    assert!(error.starts_with("Error::Other("), "{error}");
    assert!(
        error.contains("wrong number of arguments for 'keys' command"),
        "{error}"
    );
}

#[test]
fn get_many_with_one_existing_key_fails_the_request() {
    let Some(db) = redis_db("get_many_with_one_existing_key_fails_the_request") else {
        return;
    };
    let host = start_hello_on_redis(&db);
    assert_eq!(post(&host, "/set?key=a", b"1").status, 200);
    // KEYS a answers ["a"], which the redis crate cannot pair up: Spin's
    // host panics and the request dies with a bare 500.
    let reply = get(host.addr, "/get-many?keys=a");
    assert_eq!(reply.status, 500);
    assert!(reply.body.is_empty());
    let errors = host.host_errors().join("\n");
    assert!(
        errors.contains("internal error: entered unreachable code"),
        "{errors}"
    );
    // The store keeps serving.
    assert_eq!(get(host.addr, "/get?key=a").json()["value"], bytes(b"1"));
}

#[test]
fn get_many_with_one_absent_key_returns_nothing() {
    let Some(db) = redis_db("get_many_with_one_absent_key_returns_nothing") else {
        return;
    };
    let host = start_hello_on_redis(&db);
    assert_eq!(
        get(host.addr, "/get-many?keys=missing").json(),
        json!({ "value": [] })
    );
}

#[test]
fn swap_reports_cas_failed_although_it_wrote_the_value() {
    let Some(db) = redis_db("swap_reports_cas_failed_although_it_wrote_the_value") else {
        return;
    };
    let host = start_hello_on_redis(&db);
    assert_eq!(post(&host, "/set?key=c", b"old").status, 200);
    // Spin ends the transaction with `UNWATCH c`, which Redis 7 rejects.
    let reply = post(&host, "/cas?key=c", b"new").json();
    assert_eq!(reply["current"], bytes(b"old"));
    assert_eq!(reply["swap"], "cas-failed");
    assert_eq!(reply["retry_current"], bytes(b"new"));
    assert_eq!(reply["stored"], bytes(b"new"));
}

#[test]
fn two_hosts_on_one_database_share_their_data() {
    let Some(db) = redis_db("two_hosts_on_one_database_share_their_data") else {
        return;
    };
    let first = start_hello_on_redis(&db);
    let second = start_hello_on_redis(&db);
    assert_eq!(post(&first, "/set?key=shared", b"from-first").status, 200);
    assert_eq!(
        get(second.addr, "/get?key=shared").json()["value"],
        bytes(b"from-first")
    );
    assert_eq!(get(first.addr, "/incr?key=n").json()["value"], 1);
    assert_eq!(get(second.addr, "/incr?key=n").json()["value"], 2);
    assert_eq!(get(first.addr, "/incr?key=n").json()["value"], 3);
}

#[test]
fn the_older_spin_key_value_interface_uses_the_same_database() {
    let Some(db) = redis_db("the_older_spin_key_value_interface_uses_the_same_database") else {
        return;
    };
    let host = start_hello_on_redis(&db);
    let reply = get(host.addr, "/spin-kv").json();
    assert_eq!(reply["value"], bytes(b"v"));
    // `get-keys` is `KEYS *`: every key of the database.
    assert_eq!(reply["keys"], json!(["spin-kv"]));
    assert_eq!(reply["open_other"], "Error::AccessDenied");
    assert_eq!(
        get(host.addr, "/get?key=spin-kv").json()["value"],
        bytes(b"v")
    );
}

#[test]
fn an_unreachable_redis_fails_start_up() {
    // Needs no Redis: nothing listens on port 1.
    let cfg = hello_config_on(KeyValueBackend::Redis("redis://127.0.0.1:1/3".into()));
    let err = format!(
        "{:#}",
        RunningHost::start(cfg).err().expect("start-up must fail")
    );
    assert!(
        err.contains("cannot reach the Redis key-value store at 127.0.0.1:1/3"),
        "{err}"
    );
}
