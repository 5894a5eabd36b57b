//! The API's contract, `openapi.yaml`, served as JSON. `build.rs` converts
//! it at build time and compresses it with LZ4 (whose decoder is a few KB,
//! where deflate's is about 12), so the component carries neither a YAML
//! parser nor 20 KB of JSON, and the served contract is always the one in
//! the repository.

use super::{Body, Input, Reply};
use crate::context::Ctx;
use crate::error::ApiError;
use anyhow::anyhow;
use http::StatusCode;

static COMPRESSED: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/openapi.json.lz4"));

/// The contract as minified JSON.
pub fn spec_json() -> anyhow::Result<Vec<u8>> {
    lz4_flex::decompress_size_prepended(COMPRESSED)
        .map_err(|_| anyhow!("the embedded contract does not decompress"))
}

/// GET /openapi.json
pub fn spec(_ctx: &Ctx, _input: &Input) -> Result<Reply, ApiError> {
    Ok(Reply {
        status: StatusCode::OK,
        body: Body::Serialized(spec_json()?),
    })
}
