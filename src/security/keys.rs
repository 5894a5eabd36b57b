//! The signing key, and a slot key derived from it for hashing
//! attacker-chosen values (client IPs, unknown usernames) into a fixed
//! number of store keys.
//!
//! The key comes from the `jwt_secret` variable when set. Otherwise it is
//! generated once and kept in the store: the instance whose claim increment
//! returns 1 writes it, the others wait briefly for it. So every instance
//! signs with the same key and tokens survive restarts.

use crate::context::Ctx;
use crate::error::ApiError;
use crate::security::random_bytes;
use anyhow::anyhow;
use jwt_simple::prelude::HS256Key;

pub const KEY_BYTES: usize = 32;
const STORED_KEY: &str = "secret:jwt";
const CLAIM_KEY: &str = "claim:secret:jwt";
/// How long a request waits for another instance to write the new key.
const WAIT_ROUNDS: u32 = 50;
const WAIT_STEP_MS: u64 = 20;

/// Number of slots attacker-chosen keys are hashed into, per scope.
pub const SLOTS: u32 = 1 << 16;

pub struct Keys {
    pub jwt: HS256Key,
    slot_key: [u8; 32],
}

impl Keys {
    fn from_secret(secret: &[u8]) -> Self {
        Self {
            jwt: HS256Key::from_bytes(secret),
            slot_key: hmac_sha256::HMAC::mac(b"secure-backend/slot-key/v1", secret),
        }
    }

    /// A keyed hash of `value` into one of [`SLOTS`] slots, so the number of
    /// store keys stays bounded however many values an attacker invents, and
    /// the attacker cannot aim a value at somebody else's slot.
    pub fn slot(&self, scope: &str, value: &str) -> String {
        let mut input = Vec::with_capacity(scope.len() + value.len() + 1);
        input.extend_from_slice(scope.as_bytes());
        input.push(0);
        input.extend_from_slice(value.as_bytes());
        let mac = hmac_sha256::HMAC::mac(input, self.slot_key);
        let n = u32::from_be_bytes([mac[0], mac[1], mac[2], mac[3]]) % SLOTS;
        format!("{n:04x}")
    }
}

/// The signing key: the `jwt_secret` variable, or the key kept in the
/// store (one `get`, plus the creation path the first time).
pub fn load(ctx: &Ctx) -> Result<Keys, ApiError> {
    if let Some(secret) = &ctx.config.jwt_secret {
        return Ok(Keys::from_secret(secret.expose()));
    }
    let secret = match ctx.store.get(STORED_KEY)? {
        Some(bytes) => bytes,
        None => create_or_wait(ctx)?,
    };
    if secret.len() != KEY_BYTES {
        return Err(anyhow!("stored signing key has the wrong length").into());
    }
    Ok(Keys::from_secret(&secret))
}

fn create_or_wait(ctx: &Ctx) -> Result<Vec<u8>, ApiError> {
    if ctx.store.increment(CLAIM_KEY, 1)? == 1 {
        let secret = random_bytes::<KEY_BYTES>()?;
        ctx.store.set(STORED_KEY, &secret)?;
        return Ok(secret.to_vec());
    }
    for _ in 0..WAIT_ROUNDS {
        ctx.clock.pause(WAIT_STEP_MS);
        if let Some(secret) = ctx.store.get(STORED_KEY)? {
            return Ok(secret);
        }
    }
    // The claimer has not written the key (it may have died mid-way).
    Err(anyhow!("signing key was claimed but never written").into())
}
