//! Converts `openapi.yaml` to minified JSON for `GET /openapi.json` and
//! deflates it, so the component embeds the contract in a fifth of the room
//! and without a YAML parser.

use std::{env, fs, path::Path};

fn main() {
    println!("cargo:rerun-if-changed=openapi.yaml");
    let yaml = fs::read_to_string("openapi.yaml").expect("openapi.yaml at the repository root");
    let spec: serde_json::Value = yaml_serde::from_str(&yaml)
        .expect("openapi.yaml is valid YAML with JSON-compatible values");
    let deflated = miniz_oxide::deflate::compress_to_vec(spec.to_string().as_bytes(), 10);
    let out = Path::new(&env::var("OUT_DIR").expect("OUT_DIR")).join("openapi.json.deflate");
    fs::write(out, deflated).expect("write openapi.json.deflate");
}
