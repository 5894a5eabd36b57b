//! `openapi.yaml` is the contract: the component serves it, and it names
//! every route the router and `spin.toml` serve (and nothing else) and every
//! error code the API can answer with.

mod common;

use common::*;
use secure_backend::{error, router};
use serde_json::Value;
use std::collections::BTreeSet;

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn spec_file() -> Value {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.yaml"))
        .expect("openapi.yaml at the repository root");
    yaml_serde::from_str(&text).expect("openapi.yaml parses")
}

/// (method, path) of every operation the spec describes.
fn spec_operations(spec: &Value) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for method in METHODS {
            if item.get(method).is_some() {
                ops.insert((method.to_owned(), path.clone()));
            }
        }
    }
    ops
}

#[test]
fn the_component_serves_the_spec_in_the_repository() {
    let app = TestApp::new();
    let res = app.get("/openapi.json", None);
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.header("content-type"), "application/json");
    let served: Value = serde_json::from_slice(&res.raw).unwrap();
    assert_eq!(served, spec_file());
    assert_eq!(served["openapi"].as_str().map(|v| &v[..4]), Some("3.1."));
}

#[test]
fn the_spec_and_the_router_name_the_same_operations() {
    let router: BTreeSet<(String, String)> = router::operations()
        .map(|(method, path)| (method.as_str().to_ascii_lowercase(), path.to_owned()))
        .collect();
    let spec = spec_operations(&spec_file());
    let missing: Vec<_> = router.difference(&spec).collect();
    let extra: Vec<_> = spec.difference(&router).collect();
    assert!(
        missing.is_empty(),
        "routes missing from openapi.yaml: {missing:?}"
    );
    assert!(
        extra.is_empty(),
        "openapi.yaml describes routes the router lacks: {extra:?}"
    );
}

#[test]
fn every_route_in_spin_toml_is_in_the_spec() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/spin.toml")).unwrap();
    let manifest: toml::Table = toml::from_str(&text).unwrap();
    let spec = spec_file();
    let paths: Vec<&String> = spec["paths"].as_object().unwrap().keys().collect();
    for trigger in manifest["trigger"]["http"].as_array().unwrap() {
        let route = trigger["route"].as_str().unwrap();
        // The catch-all exists so unknown paths get the API's JSON 404.
        if route == "/..." {
            continue;
        }
        let covered = match route.strip_suffix("/...") {
            Some(prefix) => paths.iter().any(|p| p.starts_with(&format!("{prefix}/"))),
            None => paths.iter().any(|p| *p == route),
        };
        assert!(
            covered,
            "spin.toml routes {route}, which openapi.yaml does not describe"
        );
    }
}

#[test]
fn every_error_code_is_in_the_spec() {
    let spec = spec_file();
    let listed: BTreeSet<&str> = spec["components"]["schemas"]["Error"]["properties"]["error"]
        ["properties"]["code"]["enum"]
        .as_array()
        .expect("components.schemas.Error lists the codes in an enum")
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    let codes: BTreeSet<&str> = error::samples().iter().map(|e| e.code()).collect();
    assert_eq!(
        listed, codes,
        "openapi.yaml's error codes and ApiError's differ"
    );
}

/// Every status an operation documents as an error refers to the shared
/// error body, and the statuses every route can give are documented: 400
/// (a stray query parameter), the guard's 401 (and 403 for admin routes), a
/// JSON body's 413 and 415.
#[test]
fn each_operation_documents_the_errors_its_guard_and_body_can_give() {
    let spec = spec_file();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for method in METHODS {
            let Some(op) = item.get(method) else { continue };
            let responses = op["responses"].as_object().expect("responses");
            let has = |status: &str| responses.contains_key(status);
            // Guarded: some scheme is required (`{}` in the list makes it optional).
            let guarded = op
                .get("security")
                .and_then(Value::as_array)
                .is_some_and(|a| {
                    !a.is_empty()
                        && a.iter()
                            .all(|r| r.as_object().is_some_and(|o| !o.is_empty()))
                });
            // A query parameter the operation does not list, or a body cut
            // short, is refused on every route.
            assert!(has("400"), "{method} {path}: 400 undocumented");
            if guarded {
                assert!(has("401"), "{method} {path}: 401 undocumented");
            }
            if path.starts_with("/admin/") {
                assert!(guarded, "{method} {path}: admin route without security");
                assert!(has("403"), "{method} {path}: 403 undocumented");
            }
            if op.get("requestBody").is_some() {
                for status in ["400", "413", "415"] {
                    assert!(has(status), "{method} {path}: {status} undocumented");
                }
            }
        }
    }
}
