//! The key-value store seen by the domain: a small trait over Spin's
//! `wasi:keyvalue` bucket, with an in-memory twin for native tests.
//!
//! Every rule that counts or claims something is built on [`KeyValue::increment`]
//! alone (see `shared/SPIN-NOTES.md`: compare-and-swap is unreliable in Spin),
//! so the same code is exact on the SQLite and the Redis backends.
//!
//! There is deliberately no batch read: Spin 4.0.2's Redis store implements
//! `wasi:keyvalue/batch` `get-many` with Redis's `KEYS` instead of `MGET`, so
//! it fails (several keys) or panics the host (one key). On SQLite it was no
//! faster than single `get`s. The component does not import `batch` at all.

mod memory;
#[cfg(target_arch = "wasm32")]
mod spin;

pub use memory::{MemoryStore, Op};
#[cfg(target_arch = "wasm32")]
pub use spin::SpinStore;

use anyhow::Result;

/// The store operations the service needs. Each call is a host round trip in
/// Spin, so callers keep them few (see the per-route budgets in the README).
pub trait KeyValue {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>>;
    fn set(&self, key: &str, value: &[u8]) -> Result<()>;
    fn delete(&self, key: &str) -> Result<()>;
    /// Atomically adds `delta` to the counter at `key` (absent counts as 0)
    /// and returns the new value. Never mix with `set` on the same key.
    fn increment(&self, key: &str, delta: i64) -> Result<i64>;
}

/// Decodes a counter read with `get`: Spin's SQLite store keeps
/// it as 8 little-endian bytes, Redis (INCRBY) as a decimal string. A decimal
/// string never holds a 0 byte; the 8-byte form of any count below 2^56 does.
pub fn decode_counter(bytes: &[u8]) -> Option<i64> {
    if !bytes.is_empty() && bytes.iter().all(|b| b.is_ascii_digit() || *b == b'-') {
        return std::str::from_utf8(bytes).ok()?.parse().ok();
    }
    let raw: [u8; 8] = bytes.try_into().ok()?;
    Some(i64::from_le_bytes(raw))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_decode_from_both_backends() {
        assert_eq!(decode_counter(&42i64.to_le_bytes()), Some(42));
        assert_eq!(decode_counter(&0i64.to_le_bytes()), Some(0));
        assert_eq!(decode_counter(b"42"), Some(42));
        assert_eq!(decode_counter(b"12345678"), Some(12_345_678));
        assert_eq!(decode_counter(b"x"), None);
        assert_eq!(decode_counter(b""), None);
    }
}
