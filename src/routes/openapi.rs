//! The API's contract, `openapi.yaml`, served as JSON. `build.rs` converts
//! it at build time and deflates it, so the component carries neither a
//! YAML parser nor 20 KB of JSON, and the served contract is always the one
//! in the repository.

use super::{Body, Input, Reply};
use crate::context::Ctx;
use crate::error::ApiError;
use anyhow::anyhow;
use http::StatusCode;

static DEFLATED: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/openapi.json.deflate"));

/// The contract as minified JSON.
pub fn spec_json() -> anyhow::Result<Vec<u8>> {
    miniz_oxide::inflate::decompress_to_vec_with_limit(DEFLATED, 1 << 20)
        .map_err(|_| anyhow!("the embedded contract does not inflate"))
}

/// GET /openapi.json
pub fn spec(_ctx: &Ctx, _input: &Input) -> Result<Reply, ApiError> {
    Ok(Reply {
        status: StatusCode::OK,
        body: Body::Serialized(spec_json()?),
    })
}
