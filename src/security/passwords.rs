//! Password hashing with bcrypt. Only the non-truncating functions are used:
//! the `Password` type already refuses anything bcrypt would cut short.

use crate::domain::Password;
use anyhow::{Context, Result};
use std::sync::atomic::{AtomicU64, Ordering};

/// bcrypt computations run by this process, so a test can check that every
/// login path pays the same bcrypt price (time itself is too noisy to test).
static BCRYPT_RUNS: AtomicU64 = AtomicU64::new(0);

pub fn bcrypt_runs() -> u64 {
    BCRYPT_RUNS.load(Ordering::Relaxed)
}

/// A fixed salt for the dummy check below; it protects nothing.
const DUMMY_SALT: [u8; 16] = *b"secure-backend-0";

pub fn hash(password: &Password, cost: u32) -> Result<String> {
    BCRYPT_RUNS.fetch_add(1, Ordering::Relaxed);
    bcrypt::non_truncating_hash(password.expose(), cost).context("bcrypt hash")
}

/// Checks a password against a stored hash. A malformed stored hash is an
/// internal error, not a failed login.
pub fn verify(password: &Password, stored_hash: &str) -> Result<bool> {
    BCRYPT_RUNS.fetch_add(1, Ordering::Relaxed);
    bcrypt::non_truncating_verify(password.expose(), stored_hash).context("bcrypt verify")
}

/// Burns the same bcrypt work as [`verify`] for a user that does not exist,
/// so that response time does not tell which usernames are registered.
pub fn verify_nobody(password: &Password, cost: u32) {
    BCRYPT_RUNS.fetch_add(1, Ordering::Relaxed);
    let _ = bcrypt::non_truncating_hash_with_salt(password.expose(), cost, DUMMY_SALT);
}
