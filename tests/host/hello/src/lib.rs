//! A tiny Spin HTTP component for spin-test-host's tests. The last path
//! segment selects what it does; answers are JSON. It takes the raw
//! `IncomingRequest` so that it can show every header value exactly as the
//! host delivered it (spin-sdk's `http::Request` conversion goes through a
//! map and keeps only one value per header name).

use http::Response;
use spin_sdk::http::conversions::TryFromIncomingRequest;
use spin_sdk::http::IncomingRequest;
use spin_sdk::wit::wasi::keyvalue::{atomics, batch, store};

fn query_param(path_with_query: &str, name: &str) -> Option<String> {
    path_with_query
        .split_once('?')?
        .1
        .split('&')
        .find_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            (k == name).then(|| v.to_string())
        })
}

fn json(status: u16, value: serde_json::Value) -> anyhow::Result<Response<String>> {
    Ok(Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(value.to_string())?)
}

fn kv_error(e: store::Error) -> anyhow::Error {
    anyhow::anyhow!("{e:?}")
}

/// A store call's outcome, as JSON the tests can inspect:
/// `{"value": ...}`, or `{"error": "<the store::Error, Debug-printed>"}`.
fn outcome(result: Result<serde_json::Value, store::Error>) -> anyhow::Result<Response<String>> {
    json(
        200,
        match result {
            Ok(value) => serde_json::json!({ "value": value }),
            Err(e) => serde_json::json!({ "error": format!("{e:?}") }),
        },
    )
}

/// The comma-separated `keys` query parameter.
fn key_list(keys: Option<String>) -> Vec<String> {
    keys.unwrap_or_default()
        .split(',')
        .filter(|k| !k.is_empty())
        .map(str::to_string)
        .collect()
}

#[spin_sdk::http_component]
async fn handle(req: IncomingRequest) -> anyhow::Result<Response<String>> {
    let target = req.path_with_query().unwrap_or_default();
    let path = target.split('?').next().unwrap_or_default().to_string();
    let action = path.rsplit('/').next().unwrap_or_default();
    let param = |name: &str| query_param(&target, name);
    match action {
        "var" => {
            let name = param("name").unwrap_or_default();
            match spin_sdk::variables::get(&name) {
                Ok(value) => json(200, serde_json::json!({ "value": value })),
                Err(e) => json(200, serde_json::json!({ "error": format!("{e:?}") })),
            }
        }
        "incr" => {
            let key = param("key").unwrap_or_else(|| "counter".into());
            let bucket = store::open("default").map_err(kv_error)?;
            let value = atomics::increment(&bucket, &key, 1).map_err(kv_error)?;
            json(200, serde_json::json!({ "value": value }))
        }
        "get" => {
            let key = param("key").unwrap_or_default();
            let bucket = store::open("default").map_err(kv_error)?;
            let value = bucket.get(&key).map_err(kv_error)?;
            json(200, serde_json::json!({ "value": value }))
        }
        "set" => {
            let key = param("key").unwrap_or_default();
            let bucket = store::open("default").map_err(kv_error)?;
            let body = req.into_body().await?;
            bucket.set(&key, &body).map_err(kv_error)?;
            json(200, serde_json::json!({ "ok": true }))
        }
        // One store call each, its error reported in the JSON (not a 500).
        "try-incr" => {
            let key = param("key").unwrap_or_default();
            let bucket = store::open("default").map_err(kv_error)?;
            outcome(atomics::increment(&bucket, &key, 1).map(|v| serde_json::json!(v)))
        }
        "delete" => {
            let key = param("key").unwrap_or_default();
            let bucket = store::open("default").map_err(kv_error)?;
            outcome(bucket.delete(&key).map(|()| serde_json::json!(null)))
        }
        "exists" => {
            let key = param("key").unwrap_or_default();
            let bucket = store::open("default").map_err(kv_error)?;
            outcome(bucket.exists(&key).map(|v| serde_json::json!(v)))
        }
        "keys" => {
            let bucket = store::open("default").map_err(kv_error)?;
            outcome(bucket.list_keys(None).map(|r| serde_json::json!(r.keys)))
        }
        "get-many" => {
            let keys = key_list(param("keys"));
            let bucket = store::open("default").map_err(kv_error)?;
            outcome(batch::get_many(&bucket, &keys).map(|pairs| serde_json::json!(pairs)))
        }
        "set-many" => {
            // Each key is set to "<key>-value".
            let pairs: Vec<(String, Vec<u8>)> = key_list(param("keys"))
                .into_iter()
                .map(|k| (k.clone(), format!("{k}-value").into_bytes()))
                .collect();
            let bucket = store::open("default").map_err(kv_error)?;
            outcome(batch::set_many(&bucket, &pairs).map(|()| serde_json::json!(null)))
        }
        "delete-many" => {
            let keys = key_list(param("keys"));
            let bucket = store::open("default").map_err(kv_error)?;
            outcome(batch::delete_many(&bucket, &keys).map(|()| serde_json::json!(null)))
        }
        "cas" => {
            // One compare-and-swap of `key` to the body: new, current, swap;
            // then what the store holds.
            let key = param("key").unwrap_or_default();
            let bucket = store::open("default").map_err(kv_error)?;
            let value = req.into_body().await?;
            let cas = atomics::Cas::new(&bucket, &key).map_err(kv_error)?;
            let current = cas.current().map_err(kv_error)?;
            let (swap, retry_current) = match atomics::swap(cas, &value) {
                Ok(()) => ("ok".to_string(), None),
                Err(atomics::CasError::CasFailed(retry)) => {
                    ("cas-failed".to_string(), retry.current().map_err(kv_error)?)
                }
                Err(atomics::CasError::StoreError(e)) => (format!("{e:?}"), None),
            };
            let stored = bucket.get(&key).map_err(kv_error)?;
            json(
                200,
                serde_json::json!({
                    "current": current,
                    "swap": swap,
                    "retry_current": retry_current,
                    "stored": stored,
                }),
            )
        }
        "kv" => {
            // Every operation once: set, get, get-many, delete, exists.
            let bucket = store::open("default").map_err(kv_error)?;
            bucket.set("a", b"1").map_err(kv_error)?;
            batch::set_many(&bucket, &[("b".into(), b"2".to_vec())]).map_err(kv_error)?;
            let a = bucket.get("a").map_err(kv_error)?;
            let many = batch::get_many(&bucket, &["b".into(), "missing".into(), "a".into()])
                .map_err(kv_error)?;
            bucket.delete("a").map_err(kv_error)?;
            batch::delete_many(&bucket, &["b".into()]).map_err(kv_error)?;
            let a_exists = bucket.exists("a").map_err(kv_error)?;
            let other = store::open("other").err().map(|e| format!("{e:?}"));
            json(
                200,
                serde_json::json!({
                    "a": a,
                    "get_many": many,
                    "a_exists_after_delete": a_exists,
                    "open_other": other,
                }),
            )
        }
        "spin-kv" => {
            // The older fermyon:spin/key-value interface, through the SDK.
            let store = spin_sdk::key_value::Store::open_default()?;
            store.set("spin-kv", b"v")?;
            let value = store.get("spin-kv")?;
            let keys = store.get_keys()?;
            let other = spin_sdk::key_value::Store::open("other")
                .err()
                .map(|e| format!("{e:?}"));
            json(
                200,
                serde_json::json!({ "value": value, "keys": keys, "open_other": other }),
            )
        }
        "config" => {
            // wasi:config/store: `none` for unknown names, all mapped values.
            use spin_sdk::wit::wasi::config::store as config;
            let greeting = config::get("greeting").map_err(|e| anyhow::anyhow!("{e:?}"))?;
            let unknown = config::get("nope").map_err(|e| anyhow::anyhow!("{e:?}"))?;
            let all = config::get_all().map_err(|e| anyhow::anyhow!("{e:?}"))?;
            json(
                200,
                serde_json::json!({ "greeting": greeting, "unknown": unknown, "all": all }),
            )
        }
        "print" => {
            let message = param("msg").unwrap_or_default();
            println!("{message}");
            eprintln!("stderr: {message}");
            json(200, serde_json::json!({ "printed": message }))
        }
        "static" => {
            static mut CALLS: u32 = 0;
            // SAFETY: a component instance is single-threaded.
            let calls = unsafe {
                CALLS += 1;
                CALLS
            };
            json(200, serde_json::json!({ "calls": calls }))
        }
        #[cfg(feature = "uses-sqlite")]
        "sqlite" => {
            let _ = spin_sdk::sqlite::Connection::open_default();
            json(200, serde_json::json!({}))
        }
        "sdk-headers" => {
            // What a handler taking `http::Request` would see.
            let req = http::Request::<Vec<u8>>::try_from_incoming_request(req)
                .await
                .map_err(|e| anyhow::anyhow!("{e:?}"))?;
            let headers: Vec<(String, String)> = req
                .headers()
                .iter()
                .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into()))
                .collect();
            json(200, serde_json::json!({ "headers": headers }))
        }
        _ => {
            let headers: Vec<(String, String)> = req
                .headers()
                .entries()
                .into_iter()
                .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
                .collect();
            let env = std::env::var("HELLO_ENV").ok();
            json(
                200,
                serde_json::json!({ "path_with_query": target, "headers": headers, "env": env }),
            )
        }
    }
}
