//! Refresh and logout: the session model is in `security::sessions` (the
//! families of refresh tokens) and `User::session_alive` (which sessions
//! have ended).

use super::{Input, Reply};
use crate::audit::{Event, Outcome};
use crate::body::json_fields;
use crate::context::Ctx;
use crate::domain::{User, Username};
use crate::error::ApiError;
use crate::routes::auth::token_response;
use crate::security::guards::AuthUser;
use crate::security::sessions::{self, Presented, RefreshToken};
use crate::security::{keys, lease};
use crate::stats::{self, Counter};

/// POST /auth/refresh
pub fn refresh(ctx: &Ctx, input: &Input) -> Result<Reply, ApiError> {
    let mut fields = json_fields(input.headers, input.body)?.only(&["refresh_token"])?;
    let raw = fields.string("refresh_token")?;
    let (ttl, policy) = (ctx.config.token_ttl_secs()?, ctx.config.sessions()?);
    // The signing key's setting too: a broken one must refuse before the
    // rotation below spends the token, or the session would be lost.
    ctx.config.jwt_secret()?;
    // Its audit line names the client: refuse before touching the store without one.
    ctx.client_ip()?;
    let reject = |username: Option<&str>, reason: &str| {
        ctx.audit(
            Event::RefreshRejected,
            Outcome::Denied,
            username,
            Some(reason),
        );
        ApiError::InvalidToken
    };
    let token = RefreshToken::parse(&raw).ok_or_else(|| reject(None, "malformed"))?;
    let name = Some(token.username.as_str());
    let now_ms = ctx.clock.now_ms();
    let family = match sessions::present(ctx.store, &token, now_ms)? {
        Presented::Current(family) => family,
        Presented::Invalid(reason) => return Err(reject(name, reason)),
        Presented::Reused { account_id } => return Err(reuse(ctx, &token, &account_id)?),
    };
    // The account as it is now: gone, replaced, or this session ended.
    let user = User::from_record(ctx.store.get(&User::key(&token.username))?)?;
    let user = match user {
        Some(user) if user.account_id != family.account_id => {
            return Err(reject(name, "issued to another account"))
        }
        Some(user) if !user.session_alive(family.number) => {
            return Err(reject(name, "session ended"))
        }
        Some(user) => user,
        None => return Err(reject(name, "user no longer exists")),
    };
    // Before the rotation spends the token: a key that cannot be loaded (a
    // store failure, a retired key) must leave it to be presented again.
    let keys = keys::load_for_signing(ctx)?;
    let account_id = family.account_id.clone();
    let Some(issued) = sessions::rotate(ctx.store, &token, family, policy, now_ms)? else {
        // Another request spent this token first: the same token twice.
        return Err(reuse(ctx, &token, &account_id)?);
    };
    stats::bump(ctx.store, Counter::Refreshes)?;
    ctx.audit(Event::TokenRefreshed, Outcome::Success, name, None);
    token_response(&keys, &token.username, &user, issued, ttl, now_ms)
}

/// A spent refresh token came back: it was stolen, or a client is broken.
/// Ends the whole session, refresh tokens and access tokens alike, and
/// answers as for any invalid token.
fn reuse(ctx: &Ctx, token: &RefreshToken, account: &Option<String>) -> Result<ApiError, ApiError> {
    // The record first: once the family is revoked, the spent token finds
    // no session, and a failure here could not be made good by presenting
    // it again; the other way round, it can. A record that has ended the
    // session already (an earlier presentation did) needs no change, so
    // this one does not queue for its lease: twenty parallel presentations
    // of one spent token would otherwise wait on each other until some
    // gave up (503).
    let record = User::from_record(ctx.store.get(&User::key(&token.username))?)?;
    let ended = record.is_none_or(|u| u.account_id != *account || !u.session_alive(token.number));
    if !ended {
        end_sessions(ctx, &token.username, account, &|user| {
            user.end_session(token.number)
        })?;
    }
    sessions::revoke(ctx.store, &token.username, token.number)?;
    stats::bump(ctx.store, Counter::RefreshReuse)?;
    ctx.audit(
        Event::RefreshTokenReuse,
        Outcome::Denied,
        Some(token.username.as_str()),
        Some("session revoked"),
    );
    Ok(ApiError::InvalidToken)
}

/// Applies `end` to the stored record of `username`, if it is still the
/// record of `account` (holding its lease). Nothing when it is gone.
pub fn end_sessions(
    ctx: &Ctx,
    username: &Username,
    account: &Option<String>,
    end: &dyn Fn(&mut User),
) -> Result<(), ApiError> {
    lease::change_user(ctx.store, ctx.clock, username, &mut |user| {
        // Another account under the name now: nothing of this one is left.
        if user.account_id != *account {
            return Err(ApiError::InvalidToken);
        }
        end(user);
        Ok(())
    })
    .map(|_| ())
    .or_else(|e| match e {
        ApiError::InvalidToken => Ok(()),
        e => Err(e),
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Scope {
    Local,
    Global,
    Others,
}

/// POST /auth/logout[?scope=local|global|others]: GoTrue's scopes. `local`
/// ends the session of the token presented (and that of the refresh token
/// in the body, if one is given); `global` every session of the account;
/// `others` every one but this.
pub fn logout(ctx: &Ctx, user: AuthUser, input: &Input) -> Result<Reply, ApiError> {
    let scope = match input.query.first() {
        None | Some((_, "local")) => Scope::Local,
        Some((_, "global")) => Scope::Global,
        Some((_, "others")) => Scope::Others,
        Some(_) => {
            return Err(ApiError::Validation(
                "scope must be local, global or others".into(),
            ))
        }
    };
    let body_token = match input.body.is_empty() {
        true => None,
        false => json_fields(input.headers, input.body)?
            .only(&["refresh_token"])?
            .optional_string("refresh_token")?,
    };
    ctx.client_ip()?;
    let account = &user.record.account_id;
    let mut ending = vec![user.session];
    if let Some(raw) = body_token {
        // Only a refresh token this account was really issued: a made-up
        // one could otherwise name a session that has not started yet.
        let not_ours =
            || ApiError::Validation("refresh_token is not a refresh token of this account".into());
        let token = RefreshToken::parse(&raw)
            .filter(|t| t.username == user.username)
            .ok_or_else(not_ours)?;
        sessions::family_of(ctx.store, &token, account)?.ok_or_else(not_ours)?;
        if scope == Scope::Local && token.number != user.session {
            ending.push(token.number);
        }
    }
    match scope {
        Scope::Local => end_sessions(ctx, &user.username, account, &|u| {
            ending.iter().for_each(|&n| u.end_session(n))
        })?,
        Scope::Global | Scope::Others => {
            let latest = sessions::latest_number(ctx.store, &user.username)?;
            let keep = (scope == Scope::Others).then_some(user.session);
            // Nothing started since this session last ended the others: no
            // write, and no lease, so repeating it cannot keep the record
            // busy for the owner or an admin.
            let record = &user.record;
            let nothing_to_end = keep.is_some()
                && record.kept_session == keep
                && record.sessions_valid_from > latest;
            if !nothing_to_end {
                end_sessions(ctx, &user.username, account, &|u| {
                    u.end_sessions_before(latest + 1, keep)
                })?
            }
        }
    }
    // Their refresh tokens die with them (the record says so); revoking the
    // families also stops a rotation already under way.
    if scope == Scope::Local {
        for &number in &ending {
            sessions::revoke(ctx.store, &user.username, number)?;
        }
    }
    stats::bump(ctx.store, Counter::Logouts)?;
    let scope_name = match scope {
        Scope::Local => "local",
        Scope::Global => "global",
        Scope::Others => "others",
    };
    ctx.audit(
        Event::Logout,
        Outcome::Success,
        Some(user.username.as_str()),
        Some(scope_name),
    );
    Ok(Reply::no_content())
}
