//! The signed-in user's own account: who am I, and a password change.

use super::{password_check, Input, Reply};
use crate::audit::{self, Event, Outcome};
use crate::body::json_fields;
use crate::context::Ctx;
use crate::domain::{Password, PasswordRefusal, User};
use crate::error::ApiError;
use crate::security::guards::AuthUser;
use crate::security::{keys, lease, lockout, passwords, random_bytes, to_hex};
use crate::stats::{self, Counter};
use serde_json::json;

/// GET /auth/me
pub fn me(_ctx: &Ctx, user: AuthUser, _input: &Input) -> Result<Reply, ApiError> {
    Ok(Reply::ok(json!({
        "username": user.username.as_str(),
        "role": user.role.as_str(),
        "created_at": audit::rfc3339_millis(user.record.created_at * 1000),
        "mfa_enabled": user.record.mfa.is_some(),
    })))
}

/// POST /auth/password: checks the current password as a login does (a
/// wrong one counts toward the account's lockout), applies the registration
/// rules to the new one, and ends every session the account has, this one
/// included, by giving the account a new id.
pub fn change_password(ctx: &Ctx, user: AuthUser, input: &Input) -> Result<Reply, ApiError> {
    let mut fields =
        json_fields(input.headers, input.body)?.only(&["current_password", "new_password"])?;
    let current = Password::parse_candidate(fields.string("current_password")?)
        .map_err(|rule| ApiError::Validation(format!("current_{rule}")))?;
    let new =
        Password::parse_new(fields.string("new_password")?, &user.username).map_err(|refusal| {
            match refusal {
                PasswordRefusal::Length(rule) => ApiError::Validation(format!("new_{rule}")),
                PasswordRefusal::Weak(rule) => ApiError::WeakPassword(rule.message()),
            }
        })?;
    let (policy, cost) = (ctx.config.lockout()?, ctx.config.bcrypt_cost()?);
    ctx.client_ip()?;
    let name = Some(user.username.as_str());
    let key = User::key(&user.username);
    // With `jwt_secret` set, the stored key is retired here too, before
    // anything is counted (see `keys`).
    keys::retire_stored_key(ctx)?;

    // The account's lockout, exactly as login counts it.
    let policy = password_check::policy(policy);
    let ticket = password_check::begin(ctx, &key, policy, name)?;
    if !passwords::verify(&current, &user.record.password_hash, cost)? {
        return Err(password_check::failed(
            ctx,
            ticket,
            policy,
            name,
            Event::PasswordChangeFailure,
            Some("wrong current password"),
        ));
    }
    lockout::succeed(ctx.store, ticket)?;
    let new_hash = passwords::hash(&new, cost)?;

    // A new account id ends every session at once: each token and refresh
    // family names the id it was issued under, including those of a login
    // that checked the old password and has not answered yet.
    let new_account_id = to_hex(&random_bytes::<16>()?);
    let mut new_hash = Some(new_hash);
    let changed = lease::change_user(ctx.store, ctx.clock, &user.username, &mut |record| {
        // Changed since the check (another password, another account): the
        // check no longer holds; the client retries against the new state.
        if record.account_id != user.record.account_id
            || record.password_hash != user.record.password_hash
        {
            return Err(ApiError::Busy);
        }
        record.password_hash = new_hash.take().unwrap_or_default();
        record.account_id = Some(new_account_id.clone());
        Ok(())
    })?;
    changed.ok_or(ApiError::InvalidToken)?;
    stats::bump(ctx.store, Counter::PasswordChanges)?;
    ctx.audit(Event::PasswordChanged, Outcome::Success, name, None);
    Ok(Reply::no_content())
}
