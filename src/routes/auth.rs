use super::{mfa, password_check, Input, Reply};
use crate::audit::{Event, Outcome};
use crate::body::json_fields;
use crate::config::RatePolicy;
use crate::context::Ctx;
use crate::domain::{Password, PasswordRefusal, Role, User, Username};
use crate::error::ApiError;
use crate::security::client_ip::rate_limit_key;
use crate::security::guards::{self, AuthUser};
use crate::security::keys::{self, Keys};
use crate::security::lockout;
use crate::security::rate_limit::{self, Decision};
use crate::security::{lease, name_claim, passwords, random_bytes, sessions, to_hex, tokens};
use crate::stats::{self, Counter};
use crate::user_index;
use http::HeaderMap;
use serde_json::json;
use subtle::ConstantTimeEq;

pub const BOOTSTRAP_HEADER: &str = "x-bootstrap-token";

/// POST /auth/register
pub fn register(ctx: &Ctx, input: &Input) -> Result<Reply, ApiError> {
    let (headers, body) = (input.headers, input.body);
    let (username, password, role) = parse_registration(headers, body).inspect_err(|e| {
        ctx.audit(Event::Registration, Outcome::Failure, None, Some(e.code()));
    })?;
    let refuse = |reason: &str| {
        ctx.audit(
            Event::Registration,
            Outcome::Failure,
            Some(username.as_str()),
            Some(reason),
        );
    };

    // As in login: every setting first, before any store call.
    let (rate, cost) = (ctx.config.register_rate()?, ctx.config.bcrypt_cost()?);
    ctx.client_ip()?;
    if role == Role::Admin && headers.contains_key(BOOTSTRAP_HEADER) {
        ctx.config.admin_bootstrap_token()?;
    }
    let keys = keys::load_for_signing(ctx)?;
    enforce_rate_limit(ctx, &keys, "register", rate, &username)?;
    if role == Role::Admin {
        match authorize_admin_creation(ctx, headers, &keys) {
            Ok(()) => {}
            // Not a refusal: the router logs these as errors.
            Err(e @ (ApiError::Internal(_) | ApiError::Config(_))) => return Err(e),
            Err(e) => {
                refuse("admin role not authorized");
                return Err(e);
            }
        }
    }

    // Hash before claiming the name, so a failure here cannot burn it.
    let password_hash = passwords::hash(&password, cost)?;
    let mut user = User {
        username: username.as_str().to_owned(),
        role,
        password_hash,
        created_at: ctx.clock.now_secs(),
        account_id: Some(to_hex(&random_bytes::<16>()?)),
        sessions_valid_from: 0,
        kept_session: None,
        ended_sessions: Vec::new(),
        index: None,
        mfa: None,
        mfa_pending: None,
        unknown: Default::default(),
    };
    let record_key = User::key(&username);
    // An existing record is never written over, whatever became of its
    // claim; the claim only orders registrations racing for a free name.
    // Its time is taken before the read (see `name_claim`).
    let claim = if ctx.store.get(&record_key)?.is_some() {
        None
    } else {
        name_claim::claim(ctx.store, &record_key, user.created_at)?
    };
    let Some(claim) = claim else {
        refuse("username taken");
        return Err(ApiError::UsernameTaken);
    };
    // Listed before the record exists: a registration that dies in between
    // leaves an entry the listing skips, never an account it cannot show.
    user.index = Some(user_index::append(ctx.store, &username)?);
    if !claim.still_ours(ctx.clock.now_secs()) {
        // Too slow to write safely: give the name up rather than race a takeover.
        return Err(ApiError::Internal(anyhow::anyhow!(
            "registration outlived its name claim"
        )));
    }
    ctx.store.set(&record_key, &user.to_record()?)?;
    stats::bump(ctx.store, Counter::Users)?;
    if role == Role::Admin {
        stats::bump(ctx.store, Counter::Admins)?;
    }
    ctx.audit(
        Event::Registration,
        Outcome::Success,
        Some(username.as_str()),
        Some(role.as_str()),
    );
    Ok(Reply::created(json!({
        "message": "User registered successfully",
        "user": { "username": username.as_str(), "role": role.as_str() },
    })))
}

fn parse_registration(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Username, Password, Role), ApiError> {
    let mut fields = json_fields(headers, body)?.only(&["username", "password", "role"])?;
    let username = Username::parse(&fields.string("username")?).map_err(invalid)?;
    let password = Password::parse_new(fields.string("password")?, &username).map_err(
        |refusal| match refusal {
            PasswordRefusal::Length(rule) => invalid(rule),
            PasswordRefusal::Weak(rule) => ApiError::WeakPassword(rule.message()),
        },
    )?;
    let role = match fields.optional_string("role")? {
        None => Role::User,
        Some(raw) => Role::parse(&raw).map_err(invalid)?,
    };
    Ok((username, password, role))
}

/// Creating an admin needs the bootstrap token or an admin's Bearer token.
fn authorize_admin_creation(ctx: &Ctx, headers: &HeaderMap, keys: &Keys) -> Result<(), ApiError> {
    const DENIED: ApiError =
        ApiError::Forbidden("Registering an admin requires an admin token or the bootstrap token");
    if let Some(given) = headers.get(BOOTSTRAP_HEADER) {
        let expected = ctx.config.admin_bootstrap_token()?.ok_or(DENIED)?;
        // Compare digests in constant time, so neither content nor length leaks.
        let given = hmac_sha256::Hash::hash(given.as_bytes());
        let expected = hmac_sha256::Hash::hash(expected.expose());
        return if bool::from(given.ct_eq(&expected)) {
            Ok(())
        } else {
            Err(DENIED)
        };
    }
    match guards::require_admin_with(ctx, headers, keys) {
        Ok(_) => Ok(()),
        Err(e @ (ApiError::Internal(_) | ApiError::Config(_))) => Err(e),
        Err(_) => Err(DENIED),
    }
}

/// POST /auth/login
pub fn login(ctx: &Ctx, input: &Input) -> Result<Reply, ApiError> {
    let mut fields = json_fields(input.headers, input.body)?.only(&["username", "password"])?;
    let username = Username::parse(&fields.string("username")?).map_err(invalid)?;
    let password = Password::parse_candidate(fields.string("password")?).map_err(invalid)?;
    let name = Some(username.as_str());
    // Every setting login needs, before any store call: a broken variable
    // refuses the request before it counts or changes anything.
    let (rate, policy, cost, ttl, sessions) = (
        ctx.config.login_rate()?,
        ctx.config.lockout()?,
        ctx.config.bcrypt_cost()?,
        ctx.config.token_ttl_secs()?,
        ctx.config.sessions()?,
    );
    ctx.client_ip()?;

    let keys = keys::load_for_signing(ctx)?;
    let record_key = User::key(&username);
    let record = ctx.store.get(&record_key)?;
    let user = User::from_record(record.clone())?;

    enforce_rate_limit(ctx, &keys, "login", rate, &username)?;
    let now_ms = ctx.clock.now_ms();

    // Known accounts are locked by name; unknown names share keyed slots, so
    // inventing names cannot grow the store. Both answer alike.
    let lock_id = match &user {
        Some(_) => record_key.clone(),
        None => format!("slot:{}", keys.slot("login-user", username.as_str())),
    };
    let policy = password_check::policy(policy);
    let ticket = password_check::begin(ctx, &lock_id, policy, name)?;

    // A wrong password and an unknown name cost the same bcrypt work, also
    // after a change of `bcrypt_cost` (see `passwords`).
    let verified = match &user {
        Some(user) => passwords::verify(&password, &user.password_hash, cost)?,
        None => {
            passwords::verify_nobody(&password, cost);
            false
        }
    };
    let user = match user {
        Some(user) if verified => user,
        _ => {
            return Err(password_check::failed(
                ctx,
                ticket,
                policy,
                name,
                Event::LoginFailure,
                None,
            ))
        }
    };

    // With two-factor login on, only the second factor ends the streak of
    // failures: a right password neither ends nor extends it.
    match user.mfa {
        Some(_) => lockout::release(ctx.store, ticket)?,
        None => lockout::succeed(ctx.store, ticket)?,
    }
    // A hash from before a change of `bcrypt_cost` is replaced now, so the
    // account pays the new cost from its next check on.
    if let (Some(new_hash), Some(checked)) = (
        passwords::rehash_if_stale(&password, &user.password_hash, cost)?,
        record.as_deref(),
    ) {
        let upgraded = lease::with(ctx.store, ctx.clock, &record_key, |lease| {
            passwords::store_upgraded_hash(
                ctx.store,
                lease,
                ctx.clock,
                &record_key,
                checked,
                &new_hash,
            )
        });
        // The account is being changed right now: its next login upgrades it.
        match upgraded {
            Ok(_) | Err(ApiError::Busy) => {}
            Err(e) => return Err(e),
        }
    }
    if user.mfa.is_some() {
        return mfa::challenge(ctx, &keys, &username, &user, now_ms);
    }
    stats::bump(ctx.store, Counter::LoginSuccesses)?;
    let session = sessions::start(ctx.store, &username, &user, sessions, now_ms)?;
    ctx.audit(Event::LoginSuccess, Outcome::Success, name, None);
    token_response(&keys, &username, &user, session, ttl, now_ms)
}

/// The body of a successful login or refresh (RFC 6749 §5.1).
pub fn token_response(
    keys: &Keys,
    username: &Username,
    user: &User,
    session: sessions::Issued,
    ttl: u64,
    now_ms: u64,
) -> Result<Reply, ApiError> {
    let account = user.account_id.as_deref();
    let access = tokens::issue(
        keys,
        username,
        user.role,
        account,
        session.number,
        now_ms / 1000,
        ttl,
    )?;
    Ok(Reply::ok(json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": ttl,
        "refresh_token": session.token,
        "refresh_expires_in": session.expires_in,
    })))
}

/// GET /auth/protected
pub fn protected(_ctx: &Ctx, user: AuthUser, _input: &Input) -> Result<Reply, ApiError> {
    Ok(Reply::ok(json!({
        "message": "Access granted",
        "user": { "username": user.username.as_str(), "role": user.role.as_str() },
    })))
}

/// Counts this attempt against the client's window in `scope`; refuses it
/// (429, audited and counted) when the window is full.
pub(super) fn enforce_rate_limit(
    ctx: &Ctx,
    keys: &Keys,
    scope: &'static str,
    policy: RatePolicy,
    username: &Username,
) -> Result<(), ApiError> {
    let client = rate_limit_key(ctx.client_ip()?);
    let now_ms = ctx.clock.now_ms();
    match rate_limit::attempt(ctx.store, keys, scope, &client, policy, now_ms)? {
        Decision::Allowed => Ok(()),
        Decision::Limited { retry_after } => {
            ctx.audit(
                Event::RateLimited,
                Outcome::Denied,
                Some(username.as_str()),
                Some(scope),
            );
            stats::bump(ctx.store, Counter::RateLimited)?;
            Err(ApiError::RateLimited { retry_after })
        }
    }
}

fn invalid(rule: &'static str) -> ApiError {
    ApiError::Validation(rule.into())
}
