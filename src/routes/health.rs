use super::{Input, Reply};
use crate::audit::{Event, Outcome};
use crate::context::Ctx;
use crate::error::ApiError;
use crate::security::keys;
use serde_json::json;

/// 200 while the store answers and a request could sign a token; 503 when
/// the store fails, or while a claimed signing key is unwritten (see
/// [`keys::usable`]). Never creates the key: a probe must not change state.
/// Its one write: with `jwt_secret` set, it retires the stored key as a
/// signing request would, so the store converges while no one signs in.
/// With `jwt_secret` unset and the stored key retired: 500, `config_error`.
/// A store failure is still logged as an `internal_error` with its detail,
/// as on every other route: the 503 alone would not tell an operator why.
pub fn check(ctx: &Ctx, _input: &Input) -> Result<Reply, ApiError> {
    // A readiness probe: a variable that does not parse makes it fail (500,
    // `config_error`), so a broken configuration is not rolled out to every
    // replica while each route that reads it refuses. Every variable once
    // per probe; probes are seconds apart, not load.
    ctx.config.check_all()?;
    match keys::usable(ctx) {
        Ok(true) => Ok(Reply::ok(json!({ "status": "ok" }))),
        Ok(false) => Err(ApiError::Unavailable),
        // A broken `jwt_secret`: 500 and a `config_error` line, as elsewhere.
        Err(e @ ApiError::Config(_)) => Err(e),
        Err(e) => {
            let detail = match &e {
                ApiError::Internal(e) => format!("{e:#}"),
                other => other.code().to_owned(),
            };
            ctx.audit(Event::InternalError, Outcome::Error, None, Some(&detail));
            Err(ApiError::Unavailable)
        }
    }
}
