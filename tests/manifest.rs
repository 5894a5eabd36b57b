//! `spin.toml` must route every API path to the component and declare every
//! variable the code reads: Spin would otherwise answer its own 404, or the
//! variable would silently keep its default.

use secure_backend::{config, router};
use toml::Value;

const COMPONENT: &str = "secure-backend";

fn manifest() -> Value {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/spin.toml")).unwrap();
    Value::Table(toml::from_str(&text).unwrap())
}

#[test]
fn every_api_path_and_a_catch_all_route_to_the_component() {
    let manifest = manifest();
    let routes: Vec<(&str, &str)> = manifest["trigger"]["http"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["route"].as_str().unwrap(),
                t["component"].as_str().unwrap(),
            )
        })
        .collect();
    for path in router::paths() {
        assert!(
            routes.contains(&(path, COMPONENT)),
            "{path} is not routed in spin.toml"
        );
    }
    // So that unknown paths get the API's JSON 404, not Spin's empty one.
    assert!(routes.contains(&("/...", COMPONENT)));
}

#[test]
fn every_variable_is_declared_and_mapped() {
    let manifest = manifest();
    let declared = manifest["variables"].as_table().unwrap();
    let mapped = manifest["component"][COMPONENT]["variables"]
        .as_table()
        .unwrap();
    for name in config::VARIABLES {
        assert!(declared.contains_key(name), "{name} not under [variables]");
        assert_eq!(
            mapped.get(name).and_then(Value::as_str),
            Some(format!("{{{{ {name} }}}}").as_str()),
            "{name} not mapped into the component"
        );
    }
    for secret in ["jwt_secret", "admin_bootstrap_token"] {
        assert_eq!(
            declared[secret]["secret"].as_bool(),
            Some(true),
            "{secret} must be secret"
        );
    }
    assert_eq!(
        declared.len(),
        config::VARIABLES.len(),
        "a declared variable nobody reads"
    );
}

#[test]
fn the_component_uses_the_default_store_and_builds_for_wasip1() {
    let manifest = manifest();
    let component = &manifest["component"][COMPONENT];
    assert_eq!(
        component["key_value_stores"].as_array().unwrap(),
        &[Value::from("default")]
    );
    assert_eq!(
        component["source"].as_str(),
        Some("target/wasm32-wasip1/release/secure_backend.wasm")
    );
    assert_eq!(
        component["build"]["command"].as_str(),
        Some("cargo build --target wasm32-wasip1 --release")
    );
}
