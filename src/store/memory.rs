//! An in-memory [`KeyValue`] for native tests. Its atomics are real (one
//! mutex over the map), so concurrency tests against it mean something.
//! Counters are stored as 8 little-endian bytes, like Spin's SQLite store.
//! Chosen calls can be made to fail ([`MemoryStore::fail_when`]), as a lost
//! write, a dropped connection or an instance dying mid-request would.

use super::KeyValue;
use anyhow::{bail, Result};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

/// A store operation, as failure rules see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Get,
    Set,
    Delete,
    Increment,
}

/// Decides from (call number since the rule was set, operation, key) whether
/// a call fails. The failed call changes nothing.
type FailureRule = Box<dyn Fn(usize, Op, &str) -> bool + Send + Sync>;

#[derive(Default)]
pub struct MemoryStore {
    map: Mutex<HashMap<String, Vec<u8>>>,
    calls: AtomicUsize,
    failing: AtomicBool,
    rule: Mutex<Option<(usize, FailureRule)>>,
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

    /// Makes the calls for which `rule(n, op, key)` holds fail, `n` counting
    /// calls from 0 since this was set. Replaces any earlier rule.
    pub fn fail_when(&self, rule: impl Fn(usize, Op, &str) -> bool + Send + Sync + 'static) {
        let start = self.calls();
        *self.rule.lock().unwrap_or_else(|e| e.into_inner()) = Some((start, Box::new(rule)));
    }

    /// Removes the rule set by [`MemoryStore::fail_when`].
    pub fn stop_failing(&self) {
        *self.rule.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// A copy of every key and value, to compare states in tests.
    pub fn snapshot(&self) -> std::collections::BTreeMap<String, Vec<u8>> {
        self.lock()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default()
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

    fn begin(
        &self,
        op: Op,
        key: &str,
    ) -> Result<std::sync::MutexGuard<'_, HashMap<String, Vec<u8>>>> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        if self.failing.load(Ordering::SeqCst) {
            bail!("store unavailable (simulated)");
        }
        if let Some((start, rule)) = &*self.rule.lock().unwrap_or_else(|e| e.into_inner()) {
            if rule(n.wrapping_sub(*start), op, key) {
                bail!("store call failed (simulated): {op:?} {key}");
            }
        }
        self.lock()
    }
}

impl KeyValue for MemoryStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.begin(Op::Get, key)?.get(key).cloned())
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<()> {
        self.begin(Op::Set, key)?
            .insert(key.to_owned(), value.to_vec());
        Ok(())
    }

    fn delete(&self, key: &str) -> Result<()> {
        self.begin(Op::Delete, key)?.remove(key);
        Ok(())
    }

    fn increment(&self, key: &str, delta: i64) -> Result<i64> {
        let mut map = self.begin(Op::Increment, key)?;
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
