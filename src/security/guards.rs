//! Route guards, the counterpart of Flask's `@login_required` and
//! `@admin_required`: a handler that needs a user receives an [`AuthUser`]
//! or an [`AdminUser`], and the router runs the guard before the handler.

use crate::audit::{Event, Outcome};
use crate::context::Ctx;
use crate::domain::{Role, User, Username};
use crate::error::ApiError;
use crate::security::keys::{self, Keys};
use crate::security::tokens;
use http::{header, HeaderMap};

/// A caller holding a valid access token for an account that still exists
/// (the account the token was issued to, not a later one of the same name),
/// from a session that has not been ended; the role is the user's current
/// stored role, not the one in the token.
pub struct AuthUser {
    pub username: Username,
    pub role: Role,
    /// The session the token was issued for.
    pub session: u64,
    /// The user record as this request read it.
    pub record: User,
}

/// An [`AuthUser`] whose stored role is admin.
pub struct AdminUser(pub AuthUser);

/// The Bearer token of a request (RFC 6750 §2.1), if it has one.
pub fn bearer_token(headers: &HeaderMap) -> Result<&str, ApiError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let value = values.next().ok_or(ApiError::MissingToken)?;
    // Two credentials are ambiguous (a proxy or a log may have seen the
    // other one), so neither is used.
    if values.next().is_some() {
        return Err(ApiError::InvalidToken);
    }
    let value = value.to_str().map_err(|_| ApiError::InvalidToken)?.trim();
    let scheme_end = value.find([' ', '\t']).ok_or(ApiError::MissingToken)?;
    let (scheme, rest) = value.split_at(scheme_end);
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(ApiError::MissingToken);
    }
    // `"Bearer" 1*SP b64token` and nothing else: no tab, no second word.
    let token = rest.trim_start_matches(' ');
    if !is_b64token(token) {
        return Err(ApiError::InvalidToken);
    }
    Ok(token)
}

/// RFC 6750 §2.1: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn is_b64token(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
}

pub fn require_user(ctx: &Ctx, headers: &HeaderMap) -> Result<AuthUser, ApiError> {
    authenticate(ctx, headers, None)
}

pub fn require_admin(ctx: &Ctx, headers: &HeaderMap) -> Result<AdminUser, ApiError> {
    admin_only(ctx, authenticate(ctx, headers, None)?)
}

/// [`require_admin`] for a handler that has loaded the signing key already,
/// so it is not read twice.
pub fn require_admin_with(
    ctx: &Ctx,
    headers: &HeaderMap,
    keys: &Keys,
) -> Result<AdminUser, ApiError> {
    admin_only(ctx, authenticate(ctx, headers, Some(keys))?)
}

fn authenticate(ctx: &Ctx, headers: &HeaderMap, keys: Option<&Keys>) -> Result<AuthUser, ApiError> {
    let token = match bearer_token(headers) {
        Ok(token) => token,
        Err(e) => {
            ctx.audit(Event::TokenRejected, Outcome::Denied, None, Some(e.code()));
            return Err(e);
        }
    };
    let reject = |username: Option<&str>, reason: &str| {
        ctx.audit(
            Event::TokenRejected,
            Outcome::Denied,
            username,
            Some(reason),
        );
        ApiError::InvalidToken
    };
    // A value that is not even shaped like one of our tokens costs no store
    // call (no signing key is read, or created on a fresh store). The name
    // it claims, unverified, is only for the audit line.
    let claimed =
        tokens::unverified_subject(token).ok_or_else(|| reject(None, "malformed token"))?;
    let loaded;
    let keys = match keys {
        Some(keys) => keys,
        None => {
            loaded = keys::load(ctx)?;
            &loaded
        }
    };
    // Verify before reading the user: a forged token costs no read of a
    // record the attacker names.
    let verified = tokens::verify(keys, token, ctx.clock.now_ms())
        .map_err(|reason| reject(Some(claimed.as_str()), reason))?;
    let subject = verified.subject;
    let user = User::from_record(ctx.store.get(&User::key(&subject))?)?;
    match user {
        // The same account, not merely the same name (see `tokens`).
        Some(user) if verified.account_id != user.account_id => {
            Err(reject(Some(subject.as_str()), "issued to another account"))
        }
        // Logout, a password change or an admin ended its session.
        Some(user) if !user.session_alive(verified.session) => {
            Err(reject(Some(subject.as_str()), "session ended"))
        }
        Some(user) => Ok(AuthUser {
            username: subject,
            role: user.role,
            session: verified.session,
            record: user,
        }),
        None => Err(reject(Some(subject.as_str()), "user no longer exists")),
    }
}

fn admin_only(ctx: &Ctx, user: AuthUser) -> Result<AdminUser, ApiError> {
    if user.role != Role::Admin {
        ctx.audit(
            Event::AccessDenied,
            Outcome::Denied,
            Some(user.username.as_str()),
            Some("admin role required"),
        );
        return Err(ApiError::Forbidden("Admin role required"));
    }
    Ok(AdminUser(user))
}
