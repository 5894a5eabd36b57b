//! [`KeyValue`] over Spin's `wasi:keyvalue` bucket "default". The bucket is
//! opened on first use, once per request: opening is the dearest single
//! store step in Spin, and routes that need no state never pay for it.

use super::KeyValue;
use anyhow::{anyhow, Result};
use spin_sdk::wit::wasi::keyvalue::{atomics, store};
use std::cell::OnceCell;

pub struct SpinStore {
    name: &'static str,
    bucket: OnceCell<store::Bucket>,
}

impl SpinStore {
    pub fn new(name: &'static str) -> Self {
        Self {
            name,
            bucket: OnceCell::new(),
        }
    }

    fn bucket(&self) -> Result<&store::Bucket> {
        if let Some(bucket) = self.bucket.get() {
            return Ok(bucket);
        }
        let opened = store::open(self.name).map_err(|e| anyhow!("open store: {e:?}"))?;
        Ok(self.bucket.get_or_init(|| opened))
    }
}

impl KeyValue for SpinStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.bucket()?.get(key).map_err(|e| anyhow!("get: {e:?}"))
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<()> {
        self.bucket()?
            .set(key, value)
            .map_err(|e| anyhow!("set: {e:?}"))
    }

    fn delete(&self, key: &str) -> Result<()> {
        self.bucket()?
            .delete(key)
            .map_err(|e| anyhow!("delete: {e:?}"))
    }

    fn increment(&self, key: &str, delta: i64) -> Result<i64> {
        atomics::increment(self.bucket()?, key, delta).map_err(|e| anyhow!("increment: {e:?}"))
    }
}
