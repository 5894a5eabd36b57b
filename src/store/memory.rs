//! An in-memory [`KeyValue`] for native tests. Its atomics are real (one
//! mutex over the map), so concurrency tests against it mean something.
//! Counters are stored as 8 little-endian bytes, like Spin's SQLite store.

use super::KeyValue;
use anyhow::{bail, Result};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

#[derive(Default)]
pub struct MemoryStore {
    map: Mutex<HashMap<String, Vec<u8>>>,
    calls: AtomicUsize,
    failing: AtomicBool,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Store calls made so far, for budget tests.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// Makes every later call fail, as an unreachable backend would.
    pub fn fail_from_now_on(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    pub fn len(&self) -> usize {
        self.lock().map(|m| m.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn keys(&self) -> Vec<String> {
        self.lock()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, HashMap<String, Vec<u8>>>> {
        self.map
            .lock()
            .map_err(|_| anyhow::anyhow!("memory store poisoned"))
    }

    fn begin(&self) -> Result<std::sync::MutexGuard<'_, HashMap<String, Vec<u8>>>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.failing.load(Ordering::SeqCst) {
            bail!("store unavailable (simulated)");
        }
        self.lock()
    }
}

impl KeyValue for MemoryStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.begin()?.get(key).cloned())
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<()> {
        self.begin()?.insert(key.to_owned(), value.to_vec());
        Ok(())
    }

    fn delete(&self, key: &str) -> Result<()> {
        self.begin()?.remove(key);
        Ok(())
    }

    fn increment(&self, key: &str, delta: i64) -> Result<i64> {
        let mut map = self.begin()?;
        let current = match map.get(key) {
            None => 0,
            Some(bytes) => match <[u8; 8]>::try_from(bytes.as_slice()) {
                Ok(raw) => i64::from_le_bytes(raw),
                Err(_) => bail!("value at {key} is not a counter"),
            },
        };
        let next = current
            .checked_add(delta)
            .ok_or_else(|| anyhow::anyhow!("counter overflow"))?;
        map.insert(key.to_owned(), next.to_le_bytes().to_vec());
        Ok(next)
    }
}
