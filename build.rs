//! Converts `openapi.yaml` to minified JSON for `GET /openapi.json` and
//! compresses it (LZ4), so the component embeds the contract in a third of
//! the room and without a YAML parser.

use std::{env, fs, path::Path};

fn main() {
    println!("cargo:rerun-if-changed=openapi.yaml");
    let yaml = fs::read_to_string("openapi.yaml").expect("openapi.yaml at the repository root");
    let spec: serde_json::Value = yaml_serde::from_str(&yaml)
        .expect("openapi.yaml is valid YAML with JSON-compatible values");
    let compressed = lz4_flex::compress_prepend_size(spec.to_string().as_bytes());
    let out = Path::new(&env::var("OUT_DIR").expect("OUT_DIR")).join("openapi.json.lz4");
    fs::write(out, compressed).expect("write openapi.json.lz4");
}
