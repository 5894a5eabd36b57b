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
//!
//! Once `jwt_secret` is set, the stored key is retired for good: an operator
//! sets it because the stored key may be known, so a redeploy that loses the
//! variable must not bring that key back. Every request that signs or hashes
//! slots with the key ([`load_for_signing`]: login, registration, refresh;
//! [`retire_stored_key`]: a password change; [`usable`]: `/health`) reads
//! generation 0 (one `get`) and, unless it already holds [`RETIRED`],
//! overwrites it with that marker (one `set`, the first time), so a dump of
//! the store no longer yields the key; a failed write fails the request.
//! Verifying a token ([`load`], the guard's path) never writes, so
//! `/auth/protected` stays one `get` of the user. With `jwt_secret` unset,
//! every read of generation 0 that finds the marker refuses (a
//! configuration error: set `jwt_secret` again, or delete the keys to go
//! back to a generated key); the marker is never skipped for a higher
//! generation, and no key is made in its place.
//!
//! Instances with and without the variable on one store (a rolling deploy)
//! can race: a claimer without it may write generation 0 after the marker
//! (no compare-and-swap can stop it, `shared/SPIN-NOTES.md`). Instances with
//! the variable never use that key, and their next signing request or probe
//! retires it again; until then only instances without the variable, which
//! were using the stored key anyway, can. A request that reads the marker
//! refuses rather than fall back to a higher generation or a new key. So the
//! store converges to "retired" while instances with the variable run, and
//! no request that has read the marker verifies with a stored key. Higher
//! generations (written only after a lost write of a lower one) are left as
//! they are, unused below the marker.

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
    /// Also for tests and fuzzing.
    pub fn from_secret(secret: &[u8]) -> Self {
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

/// What generation 0 holds once `jwt_secret` has been set for this store.
/// Its length is not [`KEY_BYTES`], so it can never be taken for a key.
pub const RETIRED: &[u8] = b"retired: jwt_secret was set";
const _: () = assert!(RETIRED.len() != KEY_BYTES);

/// The key to verify tokens with: the `jwt_secret` variable (no store call),
/// or the lowest generation in the store (one `get` while generation 0
/// exists, plus the creation path the first time). Never retires the stored
/// key: the guard verifies on every protected request, and stays cheap.
pub fn load(ctx: &Ctx) -> Result<Keys, ApiError> {
    if let Some(secret) = ctx.config.jwt_secret()? {
        return Ok(Keys::from_secret(secret.expose()));
    }
    load_stored(ctx)
}

/// The key to sign tokens and hash slots with (login, registration,
/// refresh): as [`load`], and with `jwt_secret` set, first makes sure the
/// stored key is retired ([`retire_stored_key`]).
pub fn load_for_signing(ctx: &Ctx) -> Result<Keys, ApiError> {
    match ctx.config.jwt_secret()? {
        Some(secret) => {
            retire(ctx.store)?;
            Ok(Keys::from_secret(secret.expose()))
        }
        None => load_stored(ctx),
    }
}

/// With `jwt_secret` set, makes sure generation 0 holds [`RETIRED`]: one
/// `get`, and one `set` when it does not yet. Without it, nothing (no store
/// call). For a request that does not sign but changes an account.
pub fn retire_stored_key(ctx: &Ctx) -> Result<(), ApiError> {
    if ctx.config.jwt_secret()?.is_some() {
        retire(ctx.store)?;
    }
    Ok(())
}

fn retire(store: &dyn KeyValue) -> Result<(), ApiError> {
    // Overwritten whatever it holds (a key, or nothing yet), so that a key
    // written after an earlier marker, by an instance without the variable,
    // is retired again.
    if store.get(&stored_key(0))?.as_deref() != Some(RETIRED) {
        store.set(&stored_key(0), RETIRED)?;
    }
    Ok(())
}

fn load_stored(ctx: &Ctx) -> Result<Keys, ApiError> {
    let secret = match lowest_written(ctx.store)? {
        Some(secret) => secret,
        None => create_or_wait(ctx)?,
    };
    if secret.len() != KEY_BYTES {
        return Err(anyhow!("stored signing key has the wrong length").into());
    }
    Ok(Keys::from_secret(&secret))
}

/// Whether a request can sign now, for `/health`, without creating a key.
/// With `jwt_secret` set: yes, once the stored key is retired (as
/// [`retire_stored_key`]; the store must answer). Otherwise: a key exists,
/// or none was ever claimed (the first request creates it); false while a
/// claimed key is unwritten (being written, or its claimer failed: the next
/// request that needs the key recovers within about a second) and once
/// every generation is claimed and none written; a configuration error once
/// the key is retired. One `get` while generation 0 exists, two on a fresh
/// store.
pub fn usable(ctx: &Ctx) -> Result<bool, ApiError> {
    let store = ctx.store;
    if ctx.config.jwt_secret()?.is_some() {
        retire(store)?;
        return Ok(true);
    }
    if read_key(store, 0)?.is_some() || store.get(&claim_key(0))?.is_none() {
        return Ok(true);
    }
    for generation in 1..GENERATIONS {
        if read_key(store, generation)?.is_some() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The key stored for `generation`, if written; the configuration error of
/// a retired key (every request without `jwt_secret` that reads the marker
/// refuses, and nothing falls back to another key).
fn read_key(store: &dyn KeyValue, generation: u32) -> Result<Option<Vec<u8>>, ApiError> {
    match store.get(&stored_key(generation))? {
        Some(value) if value == RETIRED => Err(ApiError::Config(
            "variable jwt_secret was set for this store before and is now missing; set it \
             again, or delete the secret:jwt* and claim:secret:jwt* keys to go back to a \
             generated key"
                .into(),
        )),
        value => Ok(value),
    }
}

fn lowest_written(store: &dyn KeyValue) -> Result<Option<Vec<u8>>, ApiError> {
    for generation in 0..GENERATIONS {
        if let Some(secret) = read_key(store, generation)? {
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
        if let Some(secret) = read_key(ctx.store, generation)? {
            return Ok(Some(secret));
        }
    }
    Ok(None)
}
