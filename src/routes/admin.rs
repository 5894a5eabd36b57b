//! The admin API: the dashboard, and managing other users. Every action on
//! a user is an audit event naming both the admin and the target.
//!
//! The last admin can be neither demoted nor deleted. `stats:admins` counts
//! admins with increments, and is kept at or below the true number: it
//! goes up only after an admin record is written, and down before one is
//! demoted or deleted. A demotion or deletion takes its decrement first and
//! goes ahead only if at least one admin is left; otherwise it gives the
//! decrement back and refuses (409). Two admins demoting each other at once
//! each take one decrement, and only one of them can leave the count at 1.

use super::{Input, Reply};
use crate::audit::{self, Event, Outcome};
use crate::body::json_fields;
use crate::context::Ctx;
use crate::domain::{Role, User, Username};
use crate::error::ApiError;
use crate::security::guards::AdminUser;
use crate::security::lease::{self, Lease};
use crate::security::{lockout, mfa, name_claim, sessions};
use crate::stats::{self, Counter};
use crate::user_index;
use serde_json::{json, Map, Value};

pub const DEFAULT_PAGE: u64 = 20;
pub const MAX_PAGE: u64 = 100;

pub fn dashboard(ctx: &Ctx, admin: AdminUser, _input: &Input) -> Result<Reply, ApiError> {
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

/// The user named in the path: 400 when it cannot be a username.
fn target(input: &Input) -> Result<Username, ApiError> {
    Username::parse(input.param(0)).map_err(|rule| ApiError::Validation(rule.into()))
}

fn load(ctx: &Ctx, username: &Username) -> Result<User, ApiError> {
    User::from_record(ctx.store.get(&User::key(username))?)?.ok_or(ApiError::UserNotFound)
}

fn view(user: &User, locked_until: Option<u64>) -> Value {
    json!({
        "username": user.username,
        "role": user.role.as_str(),
        "created_at": audit::rfc3339_millis(user.created_at * 1000),
        "locked_until": locked_until.map(audit::rfc3339_millis),
        "mfa_enabled": user.mfa.is_some(),
    })
}

fn acted(ctx: &Ctx, event: Event, admin: &AdminUser, target: &Username) -> Result<(), ApiError> {
    stats::bump(ctx.store, Counter::AdminActions)?;
    ctx.audit_admin(
        event,
        Outcome::Success,
        admin.0.username.as_str(),
        target.as_str(),
    );
    Ok(())
}

/// GET /admin/users?limit=&cursor=
///
/// A page covers `limit` positions of the user index, in registration
/// order; a deleted account leaves its position empty, so a page may hold
/// fewer than `limit` users. `next_cursor` is null on the last page. Cost:
/// one read for the index's length and three per position, whatever the
/// number of users.
pub fn list_users(ctx: &Ctx, admin: AdminUser, input: &Input) -> Result<Reply, ApiError> {
    let (mut limit, mut cursor) = (DEFAULT_PAGE, 1);
    for &(name, value) in &input.query {
        // Digits only: `parse` would also take a leading `+`.
        let digits = !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit());
        let number = value.parse::<u64>().ok().filter(|n| digits && *n >= 1);
        match (name, number) {
            ("limit", Some(n)) if n <= MAX_PAGE => limit = n,
            ("limit", _) => {
                return Err(ApiError::Validation(format!(
                    "limit must be a whole number from 1 to {MAX_PAGE}"
                )))
            }
            (_, Some(n)) => cursor = n,
            (_, None) => {
                return Err(ApiError::Validation(
                    "cursor must be a next_cursor from an earlier page".into(),
                ))
            }
        }
    }
    ctx.client_ip()?;
    let last = user_index::last_position(ctx.store)?;
    let end = cursor.saturating_add(limit - 1).min(last);
    let now_ms = ctx.clock.now_ms();
    let mut users = Vec::new();
    for position in cursor..=end {
        let Some(name) = user_index::entry(ctx.store, position)? else {
            continue;
        };
        let Some(user) = User::from_record(ctx.store.get(&User::key(&name))?)? else {
            continue;
        };
        // Left by a deletion that died midway, and the name registered again.
        if user.index != Some(position) {
            continue;
        }
        let locked_until = lockout::locked_until(ctx.store, &User::key(&name), now_ms)?;
        users.push(view(&user, locked_until));
    }
    let next_cursor = (end < last).then(|| (end + 1).to_string());
    ctx.audit(
        Event::AdminAccess,
        Outcome::Success,
        Some(admin.0.username.as_str()),
        Some("list users"),
    );
    Ok(Reply::ok(
        json!({ "users": users, "next_cursor": next_cursor }),
    ))
}

/// GET /admin/users/{username}
pub fn show_user(ctx: &Ctx, admin: AdminUser, input: &Input) -> Result<Reply, ApiError> {
    let username = target(input)?;
    ctx.client_ip()?;
    let user = load(ctx, &username)?;
    let now_ms = ctx.clock.now_ms();
    let lock = lockout::status(ctx.store, &User::key(&username), now_ms)?;
    let mut body = view(&user, lock.locked_until);
    body["failed_attempts"] = json!(lock.failures);
    body["active_sessions"] = json!(sessions::count_live(ctx.store, &username, &user, now_ms)?);
    ctx.audit_admin(
        Event::AdminAccess,
        Outcome::Success,
        admin.0.username.as_str(),
        username.as_str(),
    );
    Ok(Reply::ok(body))
}

/// POST /admin/users/{username}/unlock: ends the lock and the failure streak.
pub fn unlock_user(ctx: &Ctx, admin: AdminUser, input: &Input) -> Result<Reply, ApiError> {
    let username = target(input)?;
    ctx.client_ip()?;
    load(ctx, &username)?;
    lockout::unlock(ctx.store, &User::key(&username), ctx.clock)?;
    acted(ctx, Event::UserUnlocked, &admin, &username)?;
    Ok(Reply::no_content())
}

/// POST /admin/users/{username}/sessions/revoke: ends every session.
pub fn revoke_sessions(ctx: &Ctx, admin: AdminUser, input: &Input) -> Result<Reply, ApiError> {
    let username = target(input)?;
    ctx.client_ip()?;
    let latest = sessions::latest_number(ctx.store, &username)?;
    lease::change_user(ctx.store, ctx.clock, &username, &mut |user| {
        user.end_sessions_before(latest + 1, None);
        Ok(())
    })?
    .ok_or(ApiError::UserNotFound)?;
    acted(ctx, Event::SessionsRevoked, &admin, &username)?;
    Ok(Reply::no_content())
}

/// POST /admin/users/{username}/mfa/reset: turns two-factor login off
/// (and drops a pending enrolment), for a user who lost their device.
pub fn reset_mfa(ctx: &Ctx, admin: AdminUser, input: &Input) -> Result<Reply, ApiError> {
    let username = target(input)?;
    ctx.client_ip()?;
    lease::change_user(ctx.store, ctx.clock, &username, &mut |user| {
        user.mfa = None;
        user.mfa_pending = None;
        Ok(())
    })?
    .ok_or(ApiError::UserNotFound)?;
    acted(ctx, Event::MfaReset, &admin, &username)?;
    Ok(Reply::no_content())
}

/// PUT /admin/users/{username}/role {"role"}
pub fn set_role(ctx: &Ctx, admin: AdminUser, input: &Input) -> Result<Reply, ApiError> {
    let username = target(input)?;
    let mut fields = json_fields(input.headers, input.body)?.only(&["role"])?;
    let role = Role::parse(&fields.string("role")?).map_err(|r| ApiError::Validation(r.into()))?;
    ctx.client_ip()?;
    // Read first: once the role has changed, a failing read must not turn
    // the answer into a 500 after the change was made and logged.
    let locked_until = lockout::locked_until(ctx.store, &User::key(&username), ctx.clock.now_ms())?;
    let key = User::key(&username);
    // All under the lease, the count's repair included: between a failed
    // write and the read that decides whether to give the admin back, no
    // other change of this user may land (a promotion would be counted twice).
    let user = lease::with(ctx.store, ctx.clock, &key, |lease| {
        let mut user = load(ctx, &username)?;
        let was = user.role;
        if was == role {
            return Ok(user);
        }
        user.role = role;
        let record = user.to_record()?;
        if was == Role::Admin {
            take_admin(ctx, &username)?;
        }
        // Too late to write: nothing was sent, so the admin goes back as is.
        if let Err(e) = lease.check(ctx.clock) {
            if was == Role::Admin {
                let _ = stats::add(ctx.store, Counter::Admins, 1);
            }
            return Err(e);
        }
        match lease.set(ctx.clock, &key, &record) {
            Ok(()) if was == Role::User => stats::bump(ctx.store, Counter::Admins)?,
            Ok(()) => {}
            Err(e) if was == Role::Admin => return Err(give_admin_back(ctx, lease, &username, e)),
            Err(e) => return Err(e),
        }
        Ok(user)
    })?;
    acted(ctx, Event::RoleChanged, &admin, &username)?;
    Ok(Reply::ok(view(&user, locked_until)))
}

/// DELETE /admin/users/{username}: removes the account and everything
/// kept for it, ends its sessions, and frees the name.
pub fn delete_user(ctx: &Ctx, admin: AdminUser, input: &Input) -> Result<Reply, ApiError> {
    let username = target(input)?;
    ctx.client_ip()?;
    let key = User::key(&username);
    let user = lease::with(ctx.store, ctx.clock, &key, |lease| {
        let user = load(ctx, &username)?;
        if user.role == Role::Admin {
            take_admin(ctx, &username)?;
        }
        // The account's other keys first: once the record is gone the name
        // may be registered again, and the new account's keys are its own.
        // Each step only while the lease is young: a stalled deletion must
        // not unlock or sign out an account a later holder has changed.
        let cleared = lease
            .check(ctx.clock)
            .and_then(|()| Ok(sessions::forget_all(ctx.store, &username)?))
            .and_then(|()| lease.check(ctx.clock))
            .and_then(|()| Ok(lockout::forget(ctx.store, &key)?))
            .and_then(|()| Ok(mfa::forget(ctx.store, &username)?))
            .and_then(|()| lease.check(ctx.clock))
            .and_then(|()| lease.delete(ctx.clock, &key));
        match cleared {
            Ok(()) => Ok(user),
            Err(e) if user.role == Role::Admin => Err(give_admin_back(ctx, lease, &username, e)),
            Err(e) => Err(e),
        }
    })?;
    if let Some(position) = user.index {
        user_index::remove(ctx.store, position)?;
    }
    name_claim::release(ctx.store, &key, user.created_at)?;
    stats::add(ctx.store, Counter::Users, -1)?;
    acted(ctx, Event::UserDeleted, &admin, &username)?;
    Ok(Reply::no_content())
}

/// Takes one admin off the count before an admin is demoted or deleted;
/// refuses (and gives it back) when none would be left.
fn take_admin(ctx: &Ctx, username: &Username) -> Result<(), ApiError> {
    let left = stats::add(ctx.store, Counter::Admins, -1)?;
    if left < 1 {
        stats::add(ctx.store, Counter::Admins, 1)?;
        ctx.audit(
            Event::AccessDenied,
            Outcome::Denied,
            Some(username.as_str()),
            Some("last admin"),
        );
        return Err(ApiError::LastAdmin);
    }
    Ok(())
}

/// The demotion or deletion of `username` failed after [`take_admin`]:
/// put the admin back on the count, but only if the record shows it did
/// not happen, read while `lease` still holds it (no other change of the
/// user can land in between). A failure can come after the write landed
/// (its answer lost), and giving back then would count an admin who is
/// gone, which could let the last one go. When the lease is too old or the
/// record cannot be read, the count stays low, which only refuses more.
fn give_admin_back(ctx: &Ctx, lease: &Lease, username: &Username, error: ApiError) -> ApiError {
    if lease.check(ctx.clock).is_err() {
        return error;
    }
    if let Ok(Some(user)) = User::from_record(ctx.store.get(&User::key(username)).ok().flatten()) {
        if user.role == Role::Admin {
            let _ = stats::add(ctx.store, Counter::Admins, 1);
        }
    }
    error
}
