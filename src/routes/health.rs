use super::Reply;
use crate::context::Ctx;
use crate::error::ApiError;
use crate::security::keys;
use serde_json::json;

/// 200 while the store answers and a request could sign a token; 503 when
/// the store fails, or while a claimed signing key is unwritten (see
/// [`keys::usable`]). Never creates the key: a probe must not change state.
pub fn check(ctx: &Ctx) -> Result<Reply, ApiError> {
    match keys::usable(ctx) {
        Ok(true) => Ok(Reply::ok(json!({ "status": "ok" }))),
        Ok(false) | Err(_) => Err(ApiError::Unavailable),
    }
}
