//! The password check's lockout, as login and a password change both run
//! it: claim a ticket (or answer 423), and count a wrong password (locking
//! the account at the threshold). Audited and counted the same way on both.

use crate::audit::{Event, Outcome};
use crate::config::LockoutPolicy;
use crate::context::Ctx;
use crate::error::ApiError;
use crate::security::lockout::{self, Refusal, Ticket};
use crate::stats::{self, Counter};

pub fn policy(policy: LockoutPolicy) -> lockout::Policy {
    lockout::Policy {
        threshold: policy.threshold,
        lock_ms: policy.lock_secs * 1000,
    }
}

/// A ticket for one password check of account `lock_id`, or 423.
pub fn begin(
    ctx: &Ctx,
    lock_id: &str,
    policy: lockout::Policy,
    name: Option<&str>,
) -> Result<Ticket, ApiError> {
    match lockout::begin(ctx.store, lock_id, policy, ctx.clock)? {
        Ok(ticket) => Ok(ticket),
        Err(Refusal::Locked { retry_after }) => {
            ctx.audit(Event::LockedAccountAttempt, Outcome::Denied, name, None);
            Err(ApiError::AccountLocked { retry_after })
        }
        Err(Refusal::LockedNow { retry_after }) => {
            ctx.audit(
                Event::AccountLocked,
                Outcome::Denied,
                name,
                Some("attempts in flight"),
            );
            stats::bump(ctx.store, Counter::Lockouts)?;
            Err(ApiError::AccountLocked { retry_after })
        }
    }
}

/// The password was wrong: counts it (and locks at the threshold), logs
/// `event`, and answers 401 `invalid_credentials`.
pub fn failed(
    ctx: &Ctx,
    ticket: Ticket,
    policy: lockout::Policy,
    name: Option<&str>,
    event: Event,
    reason: Option<&str>,
) -> ApiError {
    failed_with(
        ctx,
        ticket,
        policy,
        name,
        (event, reason),
        ApiError::InvalidCredentials,
    )
}

/// As [`failed`], answering `answer` (a wrong second factor counts exactly
/// as a wrong password, and answers `invalid_mfa_code`).
pub fn failed_with(
    ctx: &Ctx,
    ticket: Ticket,
    policy: lockout::Policy,
    name: Option<&str>,
    (event, reason): (Event, Option<&str>),
    answer: ApiError,
) -> ApiError {
    let counted = (|| -> Result<(), ApiError> {
        let locked = lockout::fail(ctx.store, ticket, policy, ctx.clock)?;
        stats::bump(ctx.store, Counter::LoginFailures)?;
        ctx.audit(event, Outcome::Failure, name, reason);
        if locked {
            stats::bump(ctx.store, Counter::Lockouts)?;
            ctx.audit(
                Event::AccountLocked,
                Outcome::Denied,
                name,
                Some("too many failures"),
            );
        }
        Ok(())
    })();
    match counted {
        Ok(()) => answer,
        Err(e) => e,
    }
}
