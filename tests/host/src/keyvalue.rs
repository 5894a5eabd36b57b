//! The key-value store: `wasi:keyvalue/{store,atomics,batch}@0.2.0-draft2` and
//! `fermyon:spin/key-value@2.0.0`, over one of the two backends Spin 4.0.2
//! offers, chosen by [`crate::config::KeyValueBackend`]:
//! - [`sqlite`]: Spin's default store, a SQLite file with Spin's own schema
//!   and SQL (`crates/key-value-spin`);
//! - [`redis`]: a runtime config's `type = "redis"` store, with Spin's own
//!   commands (`crates/key-value-redis`), including its broken `get-many`
//!   and always-failing CAS `swap`.
//!
//! Each backend's module lists the quirks of Spin's implementation it keeps
//! (a counter is 8 little-endian bytes on SQLite but a decimal string on
//! Redis, for one). This module owns what Spin's host layer
//! (`crates/factor-key-value/src/host.rs`) does the same on both: opening a
//! label the component did not list in `key_value_stores` is
//! `access-denied`; the batch calls return at once on an empty list;
//! `list-keys` with a cursor is an error; a failed `swap` hands back a fresh
//! CAS whose `current` was already called; a store error is `other(...)`.
//! Where Spin's host panics instead (a SQLite `increment` of a value that is
//! not a counter, a Redis `get-many` whose reply the redis crate cannot
//! parse), the instance traps with a message saying so, and the request
//! fails with a 500 as under Spin.
//!
//! Only the label `default` is backed by a store; [`crate::manifest`]
//! rejects any other label at start-up, as Spin does.

pub mod redis;
pub mod sqlite;

use std::collections::HashSet;
use std::sync::Arc;

use wasmtime::component::Resource;

use self::redis::{RedisCas, RedisStore};
use self::sqlite::{SqliteCas, SqliteStore};
use crate::bindings::spin::key_value as spin_kv;
use crate::bindings::wasi_keyvalue::{atomics, batch, store};
use crate::config::KeyValueBackend;
use crate::instance::InstanceState;

/// What `get-many` yields: (key, value) pairs.
type KeyValues = Vec<(String, Option<Vec<u8>>)>;

/// Why a store operation failed.
pub enum StoreFailure {
    /// Reported to the guest as `other(message)`, as Spin does.
    Other(String),
    /// Spin's host panics here and the request dies with a bare 500; the
    /// instance traps with this message.
    HostPanic(String),
}

/// The store behind every label, shared by all instances of the host.
pub enum KeyValueStore {
    Sqlite(SqliteStore),
    Redis(RedisStore),
}

/// What a guest-visible store handle refers to: a store label.
pub struct BucketHandle {
    label: String,
}

/// A compare-and-swap in progress, as its backend keeps it.
pub struct CasHandle {
    label: String,
    key: String,
    state: CasState,
}

enum CasState {
    Sqlite(SqliteCas),
    Redis(RedisCas),
}

/// The per-instance view of the store: the shared store plus the labels
/// this component may open.
#[derive(Clone)]
pub struct KeyValueAccess {
    pub store: Arc<KeyValueStore>,
    pub allowed_labels: Arc<HashSet<String>>,
}

impl KeyValueStore {
    /// Opens the backend; fails if the SQLite file cannot be opened or the
    /// Redis server cannot be reached.
    pub fn open(backend: &KeyValueBackend) -> anyhow::Result<Arc<Self>> {
        Ok(Arc::new(match backend {
            KeyValueBackend::Sqlite(path) => Self::Sqlite(SqliteStore::open(path)?),
            KeyValueBackend::Redis(url) => Self::Redis(RedisStore::open(url)?),
        }))
    }

    /// Closes the store; later operations fail with `other(...)`.
    pub fn close(&self) {
        match self {
            Self::Sqlite(s) => s.close(),
            Self::Redis(r) => r.close(),
        }
    }

    fn get(&self, label: &str, key: &str) -> Result<Option<Vec<u8>>, StoreFailure> {
        match self {
            Self::Sqlite(s) => s.get(label, key),
            Self::Redis(r) => r.get(key),
        }
    }

    fn set(&self, label: &str, key: &str, value: &[u8]) -> Result<(), StoreFailure> {
        match self {
            Self::Sqlite(s) => s.set(label, key, value),
            Self::Redis(r) => r.set(key, value),
        }
    }

    fn delete(&self, label: &str, key: &str) -> Result<(), StoreFailure> {
        match self {
            Self::Sqlite(s) => s.delete(label, key),
            Self::Redis(r) => r.delete(key),
        }
    }

    fn exists(&self, label: &str, key: &str) -> Result<bool, StoreFailure> {
        match self {
            Self::Sqlite(s) => s.exists(label, key),
            Self::Redis(r) => r.exists(key),
        }
    }

    fn keys(&self, label: &str) -> Result<Vec<String>, StoreFailure> {
        match self {
            Self::Sqlite(s) => s.keys(label),
            Self::Redis(r) => r.keys(),
        }
    }

    fn get_many(&self, label: &str, keys: Vec<String>) -> Result<KeyValues, StoreFailure> {
        match self {
            Self::Sqlite(s) => s.get_many(label, keys),
            Self::Redis(r) => r.get_many(keys),
        }
    }

    fn set_many(
        &self,
        label: &str,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> Result<(), StoreFailure> {
        match self {
            Self::Sqlite(s) => s.set_many(label, key_values),
            Self::Redis(r) => r.set_many(key_values),
        }
    }

    fn delete_many(&self, label: &str, keys: Vec<String>) -> Result<(), StoreFailure> {
        match self {
            Self::Sqlite(s) => s.delete_many(label, keys),
            Self::Redis(r) => r.delete_many(keys),
        }
    }

    fn increment(&self, label: &str, key: &str, delta: i64) -> Result<i64, StoreFailure> {
        match self {
            Self::Sqlite(s) => s.increment(label, key, delta),
            Self::Redis(r) => r.increment(key, delta),
        }
    }

    fn new_cas(&self, label: String, key: String) -> Result<CasHandle, StoreFailure> {
        let state = match self {
            Self::Sqlite(s) => CasState::Sqlite(s.new_cas()),
            Self::Redis(r) => CasState::Redis(r.new_cas()?),
        };
        Ok(CasHandle { label, key, state })
    }

    fn cas_current(&self, cas: &mut CasHandle) -> Result<Option<Vec<u8>>, StoreFailure> {
        match (self, &mut cas.state) {
            (Self::Sqlite(s), CasState::Sqlite(state)) => {
                s.cas_current(state, &cas.label, &cas.key)
            }
            (Self::Redis(r), CasState::Redis(state)) => r.cas_current(state, &cas.key),
            _ => Err(StoreFailure::Other(
                "compare and swap of another store".into(),
            )),
        }
    }

    /// `true`: swapped; `false`: Spin's `CasFailed`.
    fn swap(&self, cas: &mut CasHandle, value: &[u8]) -> Result<bool, StoreFailure> {
        match (self, &mut cas.state) {
            (Self::Sqlite(s), CasState::Sqlite(state)) => {
                s.swap(state, &cas.label, &cas.key, value)
            }
            (Self::Redis(r), CasState::Redis(state)) => Ok(r.swap(state, &cas.key, value)),
            _ => Err(StoreFailure::Other(
                "compare and swap of another store".into(),
            )),
        }
    }
}

/// A store result as the guest receives it: `Ok`, an `other(...)` error
/// built by `other`, or a trap where Spin's host panics.
fn reply<T, E>(
    result: Result<T, StoreFailure>,
    other: impl FnOnce(String) -> E,
) -> wasmtime::Result<Result<T, E>> {
    match result {
        Ok(value) => Ok(Ok(value)),
        Err(StoreFailure::Other(message)) => Ok(Err(other(message))),
        Err(StoreFailure::HostPanic(message)) => Err(wasmtime::format_err!("{message}")),
    }
}

impl InstanceState {
    fn bucket(&self, handle: &Resource<BucketHandle>) -> wasmtime::Result<String> {
        Ok(self.table.get(handle)?.label.clone())
    }

    fn open_bucket(&mut self, label: String) -> wasmtime::Result<Option<Resource<BucketHandle>>> {
        if !self.kv.allowed_labels.contains(&label) {
            return Ok(None);
        }
        Ok(Some(self.table.push(BucketHandle { label })?))
    }
}

fn other(message: String) -> store::Error {
    store::Error::Other(message)
}

impl store::Host for InstanceState {
    fn open(
        &mut self,
        identifier: String,
    ) -> wasmtime::Result<Result<Resource<BucketHandle>, store::Error>> {
        Ok(self
            .open_bucket(identifier)?
            .ok_or(store::Error::AccessDenied))
    }
}

impl store::HostBucket for InstanceState {
    fn get(
        &mut self,
        bucket: Resource<BucketHandle>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, store::Error>> {
        let label = self.bucket(&bucket)?;
        reply(self.kv.store.get(&label, &key), other)
    }

    fn set(
        &mut self,
        bucket: Resource<BucketHandle>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), store::Error>> {
        let label = self.bucket(&bucket)?;
        reply(self.kv.store.set(&label, &key, &value), other)
    }

    fn delete(
        &mut self,
        bucket: Resource<BucketHandle>,
        key: String,
    ) -> wasmtime::Result<Result<(), store::Error>> {
        let label = self.bucket(&bucket)?;
        reply(self.kv.store.delete(&label, &key), other)
    }

    fn exists(
        &mut self,
        bucket: Resource<BucketHandle>,
        key: String,
    ) -> wasmtime::Result<Result<bool, store::Error>> {
        let label = self.bucket(&bucket)?;
        reply(self.kv.store.exists(&label, &key), other)
    }

    fn list_keys(
        &mut self,
        bucket: Resource<BucketHandle>,
        cursor: Option<String>,
    ) -> wasmtime::Result<Result<store::KeyResponse, store::Error>> {
        let label = self.bucket(&bucket)?;
        if cursor.is_some() {
            return Ok(Err(other("list_keys: cursor not supported".into())));
        }
        reply(
            self.kv
                .store
                .keys(&label)
                .map(|keys| store::KeyResponse { keys, cursor: None }),
            other,
        )
    }

    fn drop(&mut self, bucket: Resource<BucketHandle>) -> wasmtime::Result<()> {
        self.table.delete(bucket)?;
        Ok(())
    }
}

impl batch::Host for InstanceState {
    fn get_many(
        &mut self,
        bucket: Resource<BucketHandle>,
        keys: Vec<String>,
    ) -> wasmtime::Result<Result<KeyValues, store::Error>> {
        let label = self.bucket(&bucket)?;
        if keys.is_empty() {
            return Ok(Ok(Vec::new()));
        }
        reply(self.kv.store.get_many(&label, keys), other)
    }

    fn set_many(
        &mut self,
        bucket: Resource<BucketHandle>,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> wasmtime::Result<Result<(), store::Error>> {
        let label = self.bucket(&bucket)?;
        if key_values.is_empty() {
            return Ok(Ok(()));
        }
        reply(self.kv.store.set_many(&label, key_values), other)
    }

    fn delete_many(
        &mut self,
        bucket: Resource<BucketHandle>,
        keys: Vec<String>,
    ) -> wasmtime::Result<Result<(), store::Error>> {
        let label = self.bucket(&bucket)?;
        if keys.is_empty() {
            return Ok(Ok(()));
        }
        reply(self.kv.store.delete_many(&label, keys), other)
    }
}

impl atomics::Host for InstanceState {
    fn increment(
        &mut self,
        bucket: Resource<BucketHandle>,
        key: String,
        delta: i64,
    ) -> wasmtime::Result<Result<i64, store::Error>> {
        let label = self.bucket(&bucket)?;
        reply(self.kv.store.increment(&label, &key, delta), other)
    }

    fn swap(
        &mut self,
        cas: Resource<CasHandle>,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), atomics::CasError>> {
        let mut cas = self.table.delete(cas)?;
        let store_error = |message: String| atomics::CasError::StoreError(other(message));
        match reply(self.kv.store.swap(&mut cas, &value), store_error)? {
            Ok(true) => Ok(Ok(())),
            Ok(false) => {
                // Spin's host: a new CAS on the same key, `current` already
                // called (on Redis: a new connection that WATCHes the key).
                let CasHandle { label, key, .. } = cas;
                let mut retry = match reply(self.kv.store.new_cas(label, key), store_error)? {
                    Ok(retry) => retry,
                    Err(e) => return Ok(Err(e)),
                };
                if let Err(e) = reply(self.kv.store.cas_current(&mut retry), store_error)? {
                    return Ok(Err(e));
                }
                let retry = self.table.push(retry)?;
                Ok(Err(atomics::CasError::CasFailed(retry)))
            }
            Err(e) => Ok(Err(e)),
        }
    }
}

impl atomics::HostCas for InstanceState {
    fn new(
        &mut self,
        bucket: Resource<BucketHandle>,
        key: String,
    ) -> wasmtime::Result<Result<Resource<CasHandle>, store::Error>> {
        let label = self.bucket(&bucket)?;
        match reply(self.kv.store.new_cas(label, key), other)? {
            Ok(cas) => Ok(Ok(self.table.push(cas)?)),
            Err(e) => Ok(Err(e)),
        }
    }

    fn current(
        &mut self,
        cas: Resource<CasHandle>,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, store::Error>> {
        let store = self.kv.store.clone();
        reply(store.cas_current(self.table.get_mut(&cas)?), other)
    }

    fn drop(&mut self, cas: Resource<CasHandle>) -> wasmtime::Result<()> {
        self.table.delete(cas)?;
        Ok(())
    }
}

fn spin_other(message: String) -> spin_kv::Error {
    spin_kv::Error::Other(message)
}

impl spin_kv::Host for InstanceState {}

impl spin_kv::HostStore for InstanceState {
    fn open(
        &mut self,
        label: String,
    ) -> wasmtime::Result<Result<Resource<BucketHandle>, spin_kv::Error>> {
        Ok(self.open_bucket(label)?.ok_or(spin_kv::Error::AccessDenied))
    }

    fn get(
        &mut self,
        store: Resource<BucketHandle>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, spin_kv::Error>> {
        let label = self.bucket(&store)?;
        reply(self.kv.store.get(&label, &key), spin_other)
    }

    fn set(
        &mut self,
        store: Resource<BucketHandle>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), spin_kv::Error>> {
        let label = self.bucket(&store)?;
        reply(self.kv.store.set(&label, &key, &value), spin_other)
    }

    fn delete(
        &mut self,
        store: Resource<BucketHandle>,
        key: String,
    ) -> wasmtime::Result<Result<(), spin_kv::Error>> {
        let label = self.bucket(&store)?;
        reply(self.kv.store.delete(&label, &key), spin_other)
    }

    fn exists(
        &mut self,
        store: Resource<BucketHandle>,
        key: String,
    ) -> wasmtime::Result<Result<bool, spin_kv::Error>> {
        let label = self.bucket(&store)?;
        reply(self.kv.store.exists(&label, &key), spin_other)
    }

    fn get_keys(
        &mut self,
        store: Resource<BucketHandle>,
    ) -> wasmtime::Result<Result<Vec<String>, spin_kv::Error>> {
        let label = self.bucket(&store)?;
        reply(self.kv.store.keys(&label), spin_other)
    }

    fn drop(&mut self, store: Resource<BucketHandle>) -> wasmtime::Result<()> {
        self.table.delete(store)?;
        Ok(())
    }
}
