//! Two-factor login with TOTP (RFC 6238) and recovery codes: the rules
//! behind the `/auth/mfa/*` routes and the second step of a login.
//!
//! - **Secrets at rest** are sealed (`sealing`) under a key from the
//!   `mfa_encryption_key` variable, or derived from `jwt_secret`. Never from
//!   the stored signing key: a dump of the store would then open them, so
//!   with neither variable set, enrolment is refused (a configuration error).
//!   Once `mfa_encryption_key` is set, secrets sealed earlier under the key
//!   derived from `jwt_secret` still open with that one ([`SealKeys`]).
//! - **Challenges.** A right password on an account with two-factor login
//!   on answers with an `mfa_token` naming challenge `n`, the value the
//!   account's counter `mfa_challenge:<name>` took at that login. A
//!   verification spends challenge `n` only if the counter still reads `n`
//!   (no later login, no earlier spend) and its own `increment` returns
//!   `n + 1`: of any number of parallel presentations, exactly one. So an
//!   `mfa_token` works once, and only the latest login's does.
//! - **Codes.** A TOTP code is accepted for a time step later than the last
//!   accepted one (`Mfa::last_step`), one step of tolerance either side; a
//!   recovery code, if its hash is still listed. Either is then written off
//!   holding the record's lease (`lease`, built on the atomic increment), so
//!   of parallel uses of one code exactly one is accepted.
//! - **Lockout.** The password step does not end the account's streak of
//!   failures; only a right second factor does, and every wrong code counts
//!   like a wrong password (`routes::password_check`).

use crate::clock::Clock;
use crate::context::Ctx;
use crate::domain::{Mfa, User, Username};
use crate::error::ApiError;
use crate::security::sealing::{self, OpenError, SealKey};
use crate::security::{lease, recovery_codes, totp};
use crate::store::{decode_counter, KeyValue};
use anyhow::Result;

/// How long an enrolment waits for its first code.
pub const PENDING_SECS: u64 = 600;

/// A second factor as typed: a TOTP code or a recovery code.
pub enum Code {
    Totp(String),
    Recovery(String),
}

impl Code {
    pub const RULE: &'static str = "code must be a 6-digit code or a recovery code";

    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        if totp::is_code_shaped(raw) {
            Ok(Code::Totp(raw.to_owned()))
        } else if recovery_codes::is_shaped(raw) {
            Ok(Code::Recovery(raw.to_owned()))
        } else {
            Err(Self::RULE)
        }
    }

    /// A TOTP code only (enrolment is confirmed with the app's code).
    pub fn parse_totp(raw: &str) -> Result<String, &'static str> {
        if totp::is_code_shaped(raw) {
            Ok(raw.to_owned())
        } else {
            Err("code must be the 6-digit code the authenticator app shows")
        }
    }
}

/// The keys TOTP secrets are sealed under (see the module doc): `current`
/// seals every new enrolment; `earlier`, the key derived from `jwt_secret`
/// while `mfa_encryption_key` is set, still opens what was sealed before
/// the operator set `mfa_encryption_key`, so setting it breaks no enrolment.
pub struct SealKeys {
    pub current: SealKey,
    earlier: Option<SealKey>,
}

pub fn seal_keys(ctx: &Ctx) -> Result<SealKeys, ApiError> {
    let from_jwt = ctx
        .config
        .jwt_secret()?
        .map(|s| SealKey::derive(s.expose()));
    match (ctx.config.mfa_encryption_key()?, from_jwt) {
        (Some(key), earlier) => Ok(SealKeys {
            current: SealKey::derive(key.expose()),
            earlier,
        }),
        (None, Some(current)) => Ok(SealKeys {
            current,
            earlier: None,
        }),
        (None, None) => Err(ApiError::Config(
            "two-factor login needs variable mfa_encryption_key (or jwt_secret) set: a key \
             kept in the store would let a dump of the store read the TOTP secrets"
                .into(),
        )),
    }
}

/// What a sealed secret is bound to: it opens only in its own account's record.
fn aad(username: &Username) -> Vec<u8> {
    format!("secure-backend/totp/{username}").into_bytes()
}

pub fn seal_secret(key: &SealKey, username: &Username, secret: &[u8]) -> Result<String> {
    sealing::seal(key, secret, &aad(username))
}

/// The secret, and the key that opened it (its recovery codes are hashed
/// under the same one).
pub fn open_secret<'k>(
    keys: &'k SealKeys,
    username: &Username,
    sealed: &str,
) -> Result<(Vec<u8>, &'k SealKey), ApiError> {
    for key in std::iter::once(&keys.current).chain(&keys.earlier) {
        match sealing::open(key, sealed, &aad(username)) {
            Ok(secret) => return Ok((secret, key)),
            Err(OpenError::OtherKey) => continue,
            Err(OpenError::Corrupt) => {
                return Err(anyhow::anyhow!("a sealed TOTP secret does not open").into())
            }
        }
    }
    Err(ApiError::Config(
        "a TOTP secret was sealed under another key: mfa_encryption_key (or jwt_secret) \
         changed; restore it, or have an admin reset the account's two-factor login"
            .into(),
    ))
}

fn challenge_key(username: &Username) -> String {
    format!("mfa_challenge:{username}")
}

/// Opens a challenge for a login that passed the password check (one
/// `increment`): its number goes into the `mfa_token`.
pub fn open_challenge(store: &dyn KeyValue, username: &Username) -> Result<u64> {
    Ok(store.increment(&challenge_key(username), 1)?.max(0) as u64)
}

/// Spends challenge `number`: true for exactly one caller, and only while
/// it is the account's latest (a `get`, then one `increment` if so).
pub fn spend_challenge(store: &dyn KeyValue, username: &Username, number: u64) -> Result<bool> {
    let key = challenge_key(username);
    let latest = store.get(&key)?.as_deref().and_then(decode_counter);
    if latest != Some(number as i64) {
        return Ok(false);
    }
    Ok(store.increment(&key, 1)? == number as i64 + 1)
}

/// Deletes the challenge counter (for a deleted account: an `mfa_token` of
/// the old account names its account id, so a number met again is harmless).
pub fn forget(store: &dyn KeyValue, username: &Username) -> Result<()> {
    store.delete(&challenge_key(username))
}

/// What a code turned out to be, against the record as read.
pub enum Checked {
    /// A TOTP code of this time step, later than the last accepted one.
    Totp { step: u64 },
    /// The recovery code stored under this hash.
    Recovery { hash: String },
    /// Wrong; the reason goes to the audit log only.
    Wrong(&'static str),
}

/// The key an account's recovery codes are hashed under (see `recovery_codes`).
pub fn recovery_key(key: &SealKey, username: &Username) -> [u8; 32] {
    key.subkey(format!("secure-backend/recovery-codes/v1/{username}").as_bytes())
}

/// Checks `code` against the account's second factor at `now_secs` (no
/// store call). The secret is opened whatever the code, so a key that
/// changed is a configuration error, never a wrong recovery code.
pub fn check(
    keys: &SealKeys,
    username: &Username,
    mfa: &Mfa,
    code: &Code,
    now_secs: u64,
) -> Result<Checked, ApiError> {
    let (secret, key) = open_secret(keys, username, &mfa.secret)?;
    Ok(match code {
        Code::Totp(code) => match totp::matching_step(&secret, code, now_secs) {
            None => Checked::Wrong("wrong code"),
            Some(step) if step <= mfa.last_step => Checked::Wrong("code already used"),
            Some(step) => Checked::Totp { step },
        },
        Code::Recovery(code) => {
            let hashes = &mfa.recovery_codes;
            match recovery_codes::position(&recovery_key(key, username), hashes, code) {
                Some(i) => Checked::Recovery {
                    hash: hashes[i].clone(),
                },
                None => Checked::Wrong("wrong recovery code"),
            }
        }
    })
}

/// What becomes of the second factor once a code is written off.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum After {
    Keep,
    /// Two-factor login is turned off (`/auth/mfa/totp/disable`).
    TurnOff,
}

/// Writes off a code [`check`] accepted against `checked`, holding the
/// record's lease: the record must still hold that second factor, the step
/// must still be later than the last accepted one, or the recovery code
/// still listed. False when another request used it first, or the factor
/// was reset meanwhile: the code is then refused. A lease held too long by
/// others is 503 (`Busy`), never a refusal.
pub fn use_code(
    store: &dyn KeyValue,
    clock: &dyn Clock,
    username: &Username,
    account_id: &Option<String>,
    checked: &Mfa,
    accepted: &Checked,
    after: After,
) -> Result<bool, ApiError> {
    let mut refused = false;
    let changed = lease::change_user(store, clock, username, &mut |user: &mut User| {
        let same_account = user.account_id == *account_id;
        let mfa = user
            .mfa
            .as_mut()
            .filter(|m| same_account && m.secret == checked.secret);
        let fresh = match (mfa, accepted) {
            (Some(mfa), Checked::Totp { step }) if *step > mfa.last_step => {
                mfa.last_step = *step;
                true
            }
            (Some(mfa), Checked::Recovery { hash }) => {
                let before = mfa.recovery_codes.len();
                mfa.recovery_codes.retain(|h| h != hash);
                mfa.recovery_codes.len() < before
            }
            _ => false,
        };
        if !fresh {
            // Leave the lease without writing.
            refused = true;
            return Err(ApiError::Busy);
        }
        if after == After::TurnOff {
            user.mfa = None;
            user.mfa_pending = None;
        }
        Ok(())
    });
    match changed {
        Ok(user) => Ok(user.is_some()),
        Err(ApiError::Busy) if refused => Ok(false),
        Err(e) => Err(e),
    }
}
