//! Two-factor login (TOTP): enrolment, its confirmation, the second step
//! of a login, and turning it off. The rules are in `security::mfa`.

use super::auth::{enforce_rate_limit, token_response};
use super::{password_check, Input, Reply};
use crate::audit::{Event, Outcome};
use crate::body::json_fields;
use crate::context::Ctx;
use crate::domain::{Mfa, Password, PendingMfa, User, Username};
use crate::error::ApiError;
use crate::security::guards::AuthUser;
use crate::security::keys::{self, Keys};
use crate::security::mfa::{self, After, Checked, Code, PENDING_SECS};
use crate::security::{lease, lockout, passwords, recovery_codes, sessions, tokens, totp};
use crate::stats::{self, Counter};
use serde_json::json;

/// POST /auth/mfa/totp/enroll: a new secret, pending until a code from it
/// confirms it. Enrolling again replaces a pending secret.
pub fn enroll(ctx: &Ctx, user: AuthUser, input: &Input) -> Result<Reply, ApiError> {
    if !input.body.is_empty() {
        json_fields(input.headers, input.body)?.only(&[])?;
    }
    ctx.client_ip()?;
    let keys = mfa::seal_keys(ctx)?;
    if user.record.mfa.is_some() {
        return Err(ApiError::MfaAlreadyEnabled);
    }
    let secret = totp::new_secret()?;
    let pending = PendingMfa {
        secret: mfa::seal_secret(&keys.current, &user.username, &secret)?,
        created_at: ctx.clock.now_secs(),
    };
    change(ctx, &user, &mut |record| {
        if record.mfa.is_some() {
            return Err(ApiError::MfaAlreadyEnabled);
        }
        record.mfa_pending = Some(pending.clone());
        Ok(())
    })?;
    ctx.audit(
        Event::MfaEnrollmentStarted,
        Outcome::Success,
        Some(user.username.as_str()),
        None,
    );
    Ok(Reply::ok(json!({
        "secret": totp::encode_secret(&secret),
        "otpauth_uri": totp::otpauth_uri(&secret, user.username.as_str()),
        "issuer": totp::ISSUER,
        "algorithm": "SHA1",
        "digits": totp::DIGITS,
        "period": totp::STEP_SECS,
        "expires_in": PENDING_SECS,
    })))
}

/// POST /auth/mfa/totp/confirm {"code"}: turns two-factor login on, ends
/// every other session of the account, and answers the recovery codes,
/// shown this once.
pub fn confirm(ctx: &Ctx, user: AuthUser, input: &Input) -> Result<Reply, ApiError> {
    let mut fields = json_fields(input.headers, input.body)?.only(&["code"])?;
    let code = Code::parse_totp(&fields.string("code")?).map_err(invalid)?;
    ctx.client_ip()?;
    let keys = mfa::seal_keys(ctx)?;
    let name = Some(user.username.as_str());
    if user.record.mfa.is_some() {
        return Err(ApiError::MfaAlreadyEnabled);
    }
    let now = ctx.clock.now_secs();
    let pending = user
        .record
        .mfa_pending
        .as_ref()
        .filter(|p| now < p.created_at.saturating_add(PENDING_SECS))
        .ok_or(ApiError::MfaNotPending)?;
    let (secret, key) = mfa::open_secret(&keys, &user.username, &pending.secret)?;
    let Some(step) = totp::matching_step(&secret, &code, now) else {
        ctx.audit(
            Event::MfaFailure,
            Outcome::Failure,
            name,
            Some("wrong code at confirmation"),
        );
        return Err(ApiError::InvalidMfaCode);
    };
    let latest = sessions::latest_number(ctx.store, &user.username)?;
    let codes = recovery_codes::generate()?;
    let recovery_key = mfa::recovery_key(key, &user.username);
    let hashes = codes
        .iter()
        .map(|c| recovery_codes::hash(&recovery_key, c))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| anyhow::anyhow!("a new recovery code does not hash"))?;
    change(ctx, &user, &mut |record| {
        if record.mfa.is_some() {
            return Err(ApiError::MfaAlreadyEnabled);
        }
        // Enrolled again meanwhile: this code is for the replaced secret.
        if record.mfa_pending.as_ref() != Some(pending) {
            return Err(ApiError::MfaNotPending);
        }
        record.mfa = Some(Mfa {
            secret: pending.secret.clone(),
            enabled_at: now,
            // The confirming code is used: it cannot also pass a login.
            last_step: step,
            recovery_codes: hashes.clone(),
        });
        record.mfa_pending = None;
        // Every other session ends: one started with the password alone
        // (by whoever else knew it) must not outlive the second factor.
        record.end_sessions_before(latest + 1, Some(user.session));
        Ok(())
    })?;
    ctx.audit(Event::MfaEnrolled, Outcome::Success, name, None);
    Ok(Reply::ok(json!({
        "mfa_enabled": true,
        "recovery_codes": codes,
    })))
}

/// POST /auth/mfa/totp/disable {"password", "code"}: both are checked as
/// a login checks them, on one lockout ticket (a wrong one counts).
pub fn disable(ctx: &Ctx, user: AuthUser, input: &Input) -> Result<Reply, ApiError> {
    let mut fields = json_fields(input.headers, input.body)?.only(&["password", "code"])?;
    let password = Password::parse_candidate(fields.string("password")?).map_err(invalid)?;
    let code = Code::parse(&fields.string("code")?).map_err(invalid)?;
    let (policy, cost) = (ctx.config.lockout()?, ctx.config.bcrypt_cost()?);
    ctx.client_ip()?;
    let keys = mfa::seal_keys(ctx)?;
    let factor = user.record.mfa.as_ref().ok_or(ApiError::MfaNotEnabled)?;
    let name = Some(user.username.as_str());
    // Before any ticket: a secret that does not open (another key) is the
    // operator's to fix, and must not count toward the user's lockout.
    let now = ctx.clock.now_secs();
    let checked = mfa::check(&keys, &user.username, factor, &code, now)?;

    let policy = password_check::policy(policy);
    let ticket = password_check::begin(ctx, &User::key(&user.username), policy, name)?;
    if !passwords::verify(&password, &user.record.password_hash, cost)? {
        return Err(password_check::failed(
            ctx,
            ticket,
            policy,
            name,
            Event::MfaFailure,
            Some("wrong password at disable"),
        ));
    }
    let accepted = match checked {
        Checked::Wrong(reason) => return Err(wrong_code(ctx, ticket, policy, name, reason)),
        accepted => accepted,
    };
    let account = &user.record.account_id;
    let used = mfa::use_code(
        ctx.store,
        ctx.clock,
        &user.username,
        account,
        factor,
        &accepted,
        After::TurnOff,
    );
    let ticket = settle(ctx, ticket, used, |ticket| {
        wrong_code(ctx, ticket, policy, name, "code already used")
    })?;
    lockout::succeed(ctx.store, ticket)?;
    ctx.audit(Event::MfaDisabled, Outcome::Success, name, None);
    Ok(Reply::no_content())
}

/// POST /auth/mfa/verify {"mfa_token", "code"}: the second step of a
/// login; answers as a login does.
pub fn verify(ctx: &Ctx, input: &Input) -> Result<Reply, ApiError> {
    let mut fields = json_fields(input.headers, input.body)?.only(&["mfa_token", "code"])?;
    let token = fields.string("mfa_token")?;
    let code = Code::parse(&fields.string("code")?).map_err(invalid)?;
    // Every setting first, before any store call.
    let (rate, policy, ttl, session_policy) = (
        ctx.config.mfa_rate()?,
        ctx.config.lockout()?,
        ctx.config.token_ttl_secs()?,
        ctx.config.sessions()?,
    );
    ctx.client_ip()?;
    let seal_keys = mfa::seal_keys(ctx)?;
    let keys = keys::load_for_signing(ctx)?;
    let now_ms = ctx.clock.now_ms();
    let refuse = |username: Option<&Username>, reason: &str| {
        ctx.audit(
            Event::MfaFailure,
            Outcome::Denied,
            username.map(Username::as_str),
            Some(reason),
        );
        ApiError::InvalidMfaToken
    };
    // A forged or expired token costs no store call.
    let challenge = tokens::verify_mfa(&keys, &token, now_ms)
        .map_err(|reason| refuse(tokens::unverified_subject(&token).as_ref(), reason))?;
    let username = challenge.subject;
    enforce_rate_limit(ctx, &keys, "mfa", rate, &username)?;

    let record_key = User::key(&username);
    let user = User::from_record(ctx.store.get(&record_key)?)?
        .filter(|u| u.account_id == challenge.account_id)
        .ok_or_else(|| refuse(Some(&username), "account changed since the password check"))?;
    let Some(factor) = user.mfa.as_ref() else {
        return Err(refuse(Some(&username), "two-factor login was turned off"));
    };
    // Before the token is spent or a ticket taken: a secret that does not
    // open (another key) is the operator's to fix, not a failed login.
    let checked = mfa::check(&seal_keys, &username, factor, &code, now_ms / 1000)?;
    if !mfa::spend_challenge(ctx.store, &username, challenge.challenge)? {
        return Err(refuse(
            Some(&username),
            "mfa token already used or superseded",
        ));
    }

    let name = Some(username.as_str());
    let policy = password_check::policy(policy);
    let ticket = password_check::begin(ctx, &record_key, policy, name)?;
    let accepted = match checked {
        Checked::Wrong(reason) => return Err(wrong_code(ctx, ticket, policy, name, reason)),
        accepted => accepted,
    };
    let used = mfa::use_code(
        ctx.store,
        ctx.clock,
        &username,
        &user.account_id,
        factor,
        &accepted,
        After::Keep,
    );
    let ticket = settle(ctx, ticket, used, |ticket| {
        wrong_code(ctx, ticket, policy, name, "code already used")
    })?;
    lockout::succeed(ctx.store, ticket)?;
    stats::bump(ctx.store, Counter::LoginSuccesses)?;
    let session = sessions::start(ctx.store, &username, &user, session_policy, now_ms)?;
    // Logged once the session exists: a request that fails before is no success.
    if let Checked::Recovery { .. } = accepted {
        let left = factor.recovery_codes.len().saturating_sub(1);
        ctx.audit(
            Event::MfaRecoveryCodeUsed,
            Outcome::Success,
            name,
            Some(&format!("{left} recovery codes left")),
        );
    }
    ctx.audit(Event::MfaSuccess, Outcome::Success, name, None);
    token_response(&keys, &username, &user, session, ttl, now_ms)
}

/// The ticket back once the code is written off; a code another request
/// used first is a wrong code (`used_first`). A busy record (503: retry)
/// gives the ticket back, so following `Retry-After` never counts toward
/// the lockout.
fn settle(
    ctx: &Ctx,
    ticket: lockout::Ticket,
    used: Result<bool, ApiError>,
    used_first: impl FnOnce(lockout::Ticket) -> ApiError,
) -> Result<lockout::Ticket, ApiError> {
    match used {
        Ok(true) => Ok(ticket),
        Ok(false) => Err(used_first(ticket)),
        Err(ApiError::Busy) => {
            lockout::release(ctx.store, ticket)?;
            Err(ApiError::Busy)
        }
        Err(e) => Err(e),
    }
}

/// A wrong second factor: counted exactly as a wrong password.
fn wrong_code(
    ctx: &Ctx,
    ticket: lockout::Ticket,
    policy: lockout::Policy,
    name: Option<&str>,
    reason: &str,
) -> ApiError {
    password_check::failed_with(
        ctx,
        ticket,
        policy,
        name,
        (Event::MfaFailure, Some(reason)),
        ApiError::InvalidMfaCode,
    )
}

fn invalid(rule: &'static str) -> ApiError {
    ApiError::Validation(rule.into())
}

/// Changes the caller's own record, holding its lease: refused when the
/// account is no longer the one the token names.
fn change(
    ctx: &Ctx,
    user: &AuthUser,
    edit: &mut dyn FnMut(&mut User) -> Result<(), ApiError>,
) -> Result<(), ApiError> {
    lease::change_user(ctx.store, ctx.clock, &user.username, &mut |record| {
        if record.account_id != user.record.account_id {
            return Err(ApiError::InvalidToken);
        }
        edit(record)
    })?
    .ok_or(ApiError::InvalidToken)?;
    Ok(())
}

/// The answer to a right password on an account with two-factor login on:
/// a challenge instead of tokens.
pub fn challenge(
    ctx: &Ctx,
    keys: &Keys,
    username: &Username,
    user: &User,
    now_ms: u64,
) -> Result<Reply, ApiError> {
    let number = mfa::open_challenge(ctx.store, username)?;
    let token = tokens::issue_mfa(
        keys,
        username,
        user.account_id.as_deref(),
        number,
        now_ms / 1000,
    )?;
    ctx.audit(
        Event::MfaChallenge,
        Outcome::Success,
        Some(username.as_str()),
        None,
    );
    Ok(Reply::ok(json!({
        "mfa_required": true,
        "mfa_token": token,
        "expires_in": tokens::MFA_TOKEN_TTL_SECS,
    })))
}
