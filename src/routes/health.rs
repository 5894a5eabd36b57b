use super::Reply;
use crate::context::Ctx;
use crate::error::ApiError;
use serde_json::json;

/// 200 while the store answers, 503 otherwise.
pub fn check(ctx: &Ctx) -> Result<Reply, ApiError> {
    match ctx.store.get("health") {
        Ok(_) => Ok(Reply::ok(json!({ "status": "ok" }))),
        Err(_) => Err(ApiError::Unavailable),
    }
}
