use super::Reply;
use crate::audit::{Event, Outcome};
use crate::context::Ctx;
use crate::error::ApiError;
use crate::security::guards::AdminUser;
use crate::stats;
use serde_json::{json, Map, Value};

pub fn dashboard(ctx: &Ctx, admin: AdminUser) -> Result<Reply, ApiError> {
    // Its audit line names the client: refuse before reading on without one.
    ctx.client_ip()?;
    let counters = stats::read_all(ctx.store)?;
    let stats: Map<String, Value> = counters
        .into_iter()
        .map(|(counter, n)| (counter.name().to_owned(), json!(n)))
        .collect();
    ctx.audit(
        Event::AdminAccess,
        Outcome::Success,
        Some(admin.0.username.as_str()),
        None,
    );
    Ok(Reply::ok(json!({
        "message": "Welcome to the admin dashboard",
        "stats": stats,
    })))
}
