//! Access tokens: JWT, HS256 only, issued and verified with jwt-simple.
//! Verification pins the algorithm (jwt-simple checks the header's `alg`
//! against the key type), requires `exp`, `iat` and `nbf`, checks `iss` and
//! `aud`, and tolerates only a few seconds of clock skew between instances
//! (jwt-simple's default is 15 minutes).
//!
//! A token names an account, not just a username: `aid` carries the
//! account's random id (see `User::account_id`), and the guard accepts the
//! token only while the stored record holds that same id. A name deleted and
//! registered again is a new account, and a password change gives the
//! account a new id, so the tokens issued before either die.
//! `sid` names the session (see `sessions`) the token was issued for, so
//! ending that session ends the token too.
//!
//! The `mfa_token` a login with two-factor login on answers with is a JWT
//! too, but of another type (`typ` "mfa") for another audience: each check
//! refuses the other's tokens on both counts.

use crate::domain::{Role, Username};
use crate::security::{keys::Keys, random_bytes, to_hex};
use anyhow::Result;
use ct_codecs::{Base64UrlSafeNoPadding, Decoder};
use jwt_simple::prelude::*;
use serde::{Deserialize, Serialize};

pub const ISSUER: &str = "secure-backend";
pub const AUDIENCE: &str = "secure-backend";
pub const CLOCK_TOLERANCE_SECS: u64 = 5;
/// The access token's type; refresh tokens are not JWTs at all (see `sessions`).
pub const ACCESS: &str = "access";
/// The type and audience of an `mfa_token`.
pub const MFA: &str = "mfa";
pub const MFA_AUDIENCE: &str = "secure-backend/mfa";
/// How long an `mfa_token` lives.
pub const MFA_TOKEN_TTL_SECS: u64 = 300;
/// Longer tokens are refused before any parsing.
const MAX_TOKEN_LENGTH: usize = 4096;
/// The one header [`issue`] writes, `{"alg":"HS256","typ":"JWT"}` in
/// base64url: no `kid`, `jku`, `x5u` or other key hint.
const HEADER: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";

#[derive(Serialize, Deserialize)]
struct AccessClaims {
    role: Role,
    typ: String,
    /// The account id; absent only for accounts registered before ids existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    aid: Option<String>,
    /// The session's number. Tokens from before sessions existed have none
    /// and are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sid: Option<u64>,
}

#[derive(Serialize, Deserialize)]
struct MfaClaims {
    typ: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    aid: Option<String>,
    /// The login's number among the account's two-factor challenges
    /// (`security::mfa`): only the latest is valid, and only once.
    challenge: u64,
}

/// What a verified `mfa_token` says: who passed the password check, and
/// which challenge it answers.
#[derive(Debug)]
pub struct MfaChallenge {
    pub subject: Username,
    pub account_id: Option<String>,
    pub challenge: u64,
}

/// What a verified token says about its holder.
#[derive(Debug)]
pub struct Verified {
    pub subject: Username,
    /// Must equal the stored `User::account_id` (both `None` for old accounts).
    pub account_id: Option<String>,
    /// The session it was issued for.
    pub session: u64,
}

pub fn issue(
    keys: &Keys,
    username: &Username,
    role: Role,
    account_id: Option<&str>,
    session: u64,
    now_secs: u64,
    ttl_secs: u64,
) -> Result<String> {
    let custom = AccessClaims {
        role,
        typ: ACCESS.into(),
        aid: account_id.map(str::to_owned),
        sid: Some(session),
    };
    let claims = Claims::with_custom_claims(custom, Duration::from_secs(ttl_secs))
        .with_subject(username.as_str())
        .with_issuer(ISSUER)
        .with_audience(AUDIENCE)
        .with_jwt_id(to_hex(&random_bytes::<16>()?));
    sign(keys, claims, now_secs, ttl_secs)
}

/// An `mfa_token` for `username`, answering challenge number `challenge`.
pub fn issue_mfa(
    keys: &Keys,
    username: &Username,
    account_id: Option<&str>,
    challenge: u64,
    now_secs: u64,
) -> Result<String> {
    let custom = MfaClaims {
        typ: MFA.into(),
        aid: account_id.map(str::to_owned),
        challenge,
    };
    let claims = Claims::with_custom_claims(custom, Duration::from_secs(MFA_TOKEN_TTL_SECS))
        .with_subject(username.as_str())
        .with_issuer(ISSUER)
        .with_audience(MFA_AUDIENCE)
        .with_jwt_id(to_hex(&random_bytes::<16>()?));
    sign(keys, claims, now_secs, MFA_TOKEN_TTL_SECS)
}

fn sign<C: Serialize + serde::de::DeserializeOwned>(
    keys: &Keys,
    mut claims: JWTClaims<C>,
    now_secs: u64,
    ttl_secs: u64,
) -> Result<String> {
    let now = Duration::from_secs(now_secs);
    // Our clock, not jwt-simple's, so that time is the same everywhere (and movable in tests).
    claims.issued_at = Some(now);
    claims.invalid_before = Some(now);
    claims.expires_at = Some(now + Duration::from_secs(ttl_secs));
    keys.jwt.authenticate(claims)
}

/// The `sub` of a token, read *without* verifying it: a value without one
/// is refused before the signing key is read, and the name only ever goes
/// into the audit line of a token that fails verification.
pub fn unverified_subject(token: &str) -> Option<Username> {
    #[derive(Deserialize)]
    struct Sub {
        sub: String,
    }
    if token.len() > MAX_TOKEN_LENGTH {
        return None;
    }
    let payload = token.split('.').nth(1)?;
    let json = Base64UrlSafeNoPadding::decode_to_vec(payload, None).ok()?;
    let sub: Sub = serde_json::from_slice(&json).ok()?;
    Username::parse(&sub.sub).ok()
}

/// Why a token was refused; goes to the audit log, never to the client.
pub type Rejection = &'static str;

/// Verifies a token at `now_ms`. The caller still has to match the
/// account id, and check that the session is alive.
pub fn verify(keys: &Keys, token: &str, now_ms: u64) -> Result<Verified, Rejection> {
    let claims = verify_claims::<AccessClaims>(keys, token, now_ms, AUDIENCE)?;
    if claims.custom.typ != ACCESS {
        return Err("not an access token");
    }
    let subject = claims.subject.ok_or("missing sub")?;
    let session = claims
        .custom
        .sid
        .ok_or("no session (issued before sessions)")?;
    Ok(Verified {
        subject: Username::parse(&subject).map_err(|_| "malformed sub")?,
        account_id: claims.custom.aid,
        session,
    })
}

/// Verifies an `mfa_token` at `now_ms`. The caller still has to match the
/// account id and spend the challenge.
pub fn verify_mfa(keys: &Keys, token: &str, now_ms: u64) -> Result<MfaChallenge, Rejection> {
    let claims = verify_claims::<MfaClaims>(keys, token, now_ms, MFA_AUDIENCE)?;
    if claims.custom.typ != MFA {
        return Err("not an mfa token");
    }
    let subject = claims.subject.ok_or("missing sub")?;
    Ok(MfaChallenge {
        subject: Username::parse(&subject).map_err(|_| "malformed sub")?,
        account_id: claims.custom.aid,
        challenge: claims.custom.challenge,
    })
}

/// The checks every token of ours passes: the one header, the signature,
/// the times, the issuer and `audience`.
fn verify_claims<C: Serialize + serde::de::DeserializeOwned>(
    keys: &Keys,
    token: &str,
    now_ms: u64,
    audience: &str,
) -> Result<JWTClaims<C>, Rejection> {
    // jwt-simple ignores `kid`, `jku`, `x5u` and unknown header members.
    // We issue one header only, so any other (a key hint pointing
    // elsewhere, a member parsers may read differently) is refused, not
    // left for a later change to start honouring.
    if token.split('.').next() != Some(HEADER) {
        return Err("unexpected header");
    }
    // Issuer and audience are checked below rather than through jwt-simple's
    // options, which take `HashSet`s: their hasher seeds itself from a host
    // call in every fresh instance, that is on every request.
    let options = VerificationOptions {
        time_tolerance: Some(Duration::from_secs(CLOCK_TOLERANCE_SECS)),
        max_token_length: Some(MAX_TOKEN_LENGTH),
        artificial_time: Some(Duration::from_millis(now_ms)),
        ..Default::default()
    };
    let claims = keys
        .jwt
        .verify_token::<C>(token, Some(options))
        .map_err(|_| "signature, algorithm or time check failed")?;
    if claims.issuer.as_deref() != Some(ISSUER) {
        return Err("wrong issuer");
    }
    let audience_ok = match &claims.audiences {
        Some(Audiences::AsString(given)) => given == audience,
        Some(Audiences::AsSet(given)) => given.contains(audience),
        None => false,
    };
    if !audience_ok {
        return Err("wrong audience");
    }
    // jwt-simple accepts tokens without these; we never issue such tokens.
    let (Some(_), Some(_), Some(_)) = (claims.issued_at, claims.expires_at, claims.invalid_before)
    else {
        return Err("missing exp, iat or nbf");
    };
    Ok(claims)
}
