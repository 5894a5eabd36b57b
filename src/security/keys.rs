//! The signing key, and a slot key derived from it for hashing
//! attacker-chosen values (client IPs, unknown usernames) into a fixed
//! number of store keys.
//!
//! The key comes from the `jwt_secret` variable when set. Otherwise it is
//! generated on first use and kept in the store, in one of [`GENERATIONS`]
//! generations. Generation `g` has one possible writer: the request whose
//! `increment` of the generation's claim returns 1. Others wait a bounded
//! time for that write; a waiter that times out claims the next generation,
//! so a claimer that failed or died mid-way costs one wait, not an outage.
//!
//! Every request uses the lowest generation that exists. A written key is
//! never rewritten (one writer per generation), so any two requests that
//! read the same store agree, and no instance can keep a key of its own: a
//! late write of a lower generation switches everyone at once. Tokens signed
//! with the higher generation then stop verifying and their holders log in
//! again; that is the price of never splitting. Generation 0 keeps the
//! original key names, so existing deployments keep their key, and the
//! common path stays one `get`.

use crate::context::Ctx;
use crate::error::ApiError;
use crate::security::random_bytes;
use crate::store::KeyValue;
use anyhow::anyhow;
use jwt_simple::prelude::HS256Key;
use std::cell::OnceCell;

pub const KEY_BYTES: usize = 32;
/// At most this many keys (and claims) are ever stored, however many
/// claimers fail: once every generation is claimed and none written, only
/// an operator helps (set `jwt_secret`, or delete the claims).
pub const GENERATIONS: u32 = 4;
/// How long a request waits for another instance to write the key it claimed.
const WAIT_ROUNDS: u32 = 50;
const WAIT_STEP_MS: u64 = 20;

/// Number of slots attacker-chosen keys are hashed into, per scope.
pub const SLOTS: u32 = 1 << 16;

pub struct Keys {
    pub jwt: HS256Key,
    secret: Vec<u8>,
    /// Derived on first use: `/auth/protected`, the hottest route, never
    /// hashes a slot.
    slot_key: OnceCell<[u8; 32]>,
}

impl Keys {
    fn from_secret(secret: &[u8]) -> Self {
        Self {
            jwt: HS256Key::from_bytes(secret),
            secret: secret.to_vec(),
            slot_key: OnceCell::new(),
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
        let slot_key = self
            .slot_key
            .get_or_init(|| hmac_sha256::HMAC::mac(b"secure-backend/slot-key/v1", &self.secret));
        let mac = hmac_sha256::HMAC::mac(input, slot_key);
        let n = u32::from_be_bytes([mac[0], mac[1], mac[2], mac[3]]) % SLOTS;
        format!("{n:04x}")
    }
}

/// Where generation `g` of the key is stored (generation 0 under the
/// original name).
pub fn stored_key(generation: u32) -> String {
    match generation {
        0 => "secret:jwt".into(),
        g => format!("secret:jwt:{g}"),
    }
}

/// The counter whose increment returning 1 makes its caller the one writer
/// of generation `g`.
pub fn claim_key(generation: u32) -> String {
    format!("claim:{}", stored_key(generation))
}

/// The signing key: the `jwt_secret` variable, or the lowest generation in
/// the store (one `get` while generation 0 exists, plus the creation path
/// the first time).
pub fn load(ctx: &Ctx) -> Result<Keys, ApiError> {
    if let Some(secret) = ctx.config.jwt_secret()? {
        return Ok(Keys::from_secret(secret.expose()));
    }
    let secret = match lowest_written(ctx.store)? {
        Some(secret) => secret,
        None => create_or_wait(ctx)?,
    };
    if secret.len() != KEY_BYTES {
        return Err(anyhow!("stored signing key has the wrong length").into());
    }
    Ok(Keys::from_secret(&secret))
}

/// Whether a request can sign now, for `/health`, without creating anything:
/// a key exists, or none was ever claimed (the first request creates it).
/// False while a claimed key is unwritten (being written, or its claimer
/// failed: the next request that needs the key recovers within about a
/// second) and once every generation is claimed and none written. One `get`
/// while generation 0 exists, two on a fresh store.
pub fn usable(ctx: &Ctx) -> Result<bool, ApiError> {
    let store = ctx.store;
    if ctx.config.jwt_secret()?.is_some() {
        // The store key does not matter; the store must still answer.
        store.get(&stored_key(0))?;
        return Ok(true);
    }
    if store.get(&stored_key(0))?.is_some() || store.get(&claim_key(0))?.is_none() {
        return Ok(true);
    }
    for generation in 1..GENERATIONS {
        if store.get(&stored_key(generation))?.is_some() {
            return Ok(true);
        }
    }
    Ok(false)
}

fn lowest_written(store: &dyn KeyValue) -> Result<Option<Vec<u8>>, ApiError> {
    for generation in 0..GENERATIONS {
        if let Some(secret) = store.get(&stored_key(generation))? {
            return Ok(Some(secret));
        }
    }
    Ok(None)
}

/// No generation is written: claim the lowest one nobody has given up on,
/// and write it, or wait for its claimer.
fn create_or_wait(ctx: &Ctx) -> Result<Vec<u8>, ApiError> {
    let store = ctx.store;
    for generation in 0..GENERATIONS {
        if store.increment(&claim_key(generation), 1)? == 1 {
            let secret = random_bytes::<KEY_BYTES>()?;
            store.set(&stored_key(generation), &secret)?;
            return Ok(secret.to_vec());
        }
        // A claim on the next generation means somebody already waited the
        // full time for this one: its claimer has had its chance.
        let next = generation + 1;
        if next < GENERATIONS && store.get(&claim_key(next))?.is_some() {
            continue;
        }
        if let Some(secret) = wait_for(ctx, generation)? {
            return Ok(secret);
        }
    }
    Err(anyhow!("every signing-key generation was claimed and none written; set jwt_secret").into())
}

fn wait_for(ctx: &Ctx, generation: u32) -> Result<Option<Vec<u8>>, ApiError> {
    for _ in 0..WAIT_ROUNDS {
        ctx.clock.pause(WAIT_STEP_MS);
        if let Some(secret) = ctx.store.get(&stored_key(generation))? {
            return Ok(Some(secret));
        }
    }
    Ok(None)
}
