//! The key-value store: `wasi:keyvalue/{store,atomics,batch}@0.2.0-draft2` and
//! `fermyon:spin/key-value@2.0.0`, backed by one SQLite file shared by every
//! instance of the host.
//!
//! The table, the SQL and the error mapping are Spin 4's own
//! (`crates/key-value-spin/src/store.rs`, `crates/factor-key-value/src/host.rs`),
//! so results match `spin up` with its default SQLite store, including the
//! rough edges a component must live with:
//! - `increment` stores the counter as 8 little-endian bytes of an `i64`, so
//!   `get` on a counter returns those bytes; incrementing a value that is not
//!   8 bytes long makes Spin panic (`expect("incorrect length")`) and the
//!   request fails; here the instance traps with a message saying so;
//! - `get-many` returns only the keys that exist (SQL `IN rarray(...)`),
//!   in the order SQLite yields them, not one entry per requested key;
//! - `list-keys` with a cursor is an error; CAS compares values and "swap"
//!   of an absent key is an unconditional upsert.
//!
//! Opening a label the component did not list in `key_value_stores` is
//! `access-denied`, as in Spin. Only the label `default` is backed by a store;
//! [`crate::manifest`] rejects any other label at start-up, as Spin does.
//! Every operation holds the connection's mutex, so `increment` is atomic
//! across concurrent requests.

use std::collections::HashSet;
use std::path::Path;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use rusqlite::{named_params, Connection};
use wasmtime::component::Resource;

use crate::bindings::spin::key_value as spin_kv;
use crate::bindings::wasi_keyvalue::{atomics, batch, store};
use crate::instance::InstanceState;

const UPSERT: &str = "INSERT INTO spin_key_value (store, key, value) VALUES ($1, $2, $3)
                      ON CONFLICT(store, key) DO UPDATE SET value=$3";
/// What `get-many` yields: each found key with its value.
type KeyValues = Vec<(String, Option<Vec<u8>>)>;

const SELECT: &str = "SELECT value FROM spin_key_value WHERE store=$1 AND key=$2";

/// The one SQLite database behind every store label, shared by all instances.
pub struct KeyValueStore {
    connection: Mutex<Option<Connection>>,
}

/// What a guest-visible store handle refers to: a store label.
pub struct BucketHandle {
    label: String,
}

/// A compare-and-swap in progress (Spin's semantics: compares values).
pub struct CasHandle {
    label: String,
    key: String,
    current: Option<Vec<u8>>,
}

/// The per-instance view of the store: the shared database plus the labels
/// this component may open.
#[derive(Clone)]
pub struct KeyValueAccess {
    pub store: Arc<KeyValueStore>,
    pub allowed_labels: Arc<HashSet<String>>,
}

/// Why an `increment` failed.
enum IncrementError {
    /// A storage error, reported to the guest as `other(...)`.
    Store(String),
    /// The stored value is not an 8-byte counter: a trap (Spin panics).
    NotACounter(usize),
}

impl KeyValueStore {
    /// Opens (creating if needed) the SQLite file with Spin's schema.
    pub fn open(path: &Path) -> anyhow::Result<Arc<Self>> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating directory {}", dir.display()))?;
        }
        let connection = Connection::open(path)
            .with_context(|| format!("opening key-value store {}", path.display()))?;
        connection.execute(
            "CREATE TABLE IF NOT EXISTS spin_key_value (
                 store TEXT NOT NULL,
                 key   TEXT NOT NULL,
                 value BLOB NOT NULL,
                 PRIMARY KEY (store, key)
             )",
            [],
        )?;
        rusqlite::vtab::array::load_module(&connection)?;
        Ok(Arc::new(Self {
            connection: Mutex::new(Some(connection)),
        }))
    }

    /// Closes the database; later operations fail with `other(...)`.
    pub fn close(&self) {
        let connection = self
            .connection
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(connection) = connection {
            let _ = connection.close();
        }
    }

    fn with_connection<R>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<R>,
    ) -> Result<R, String> {
        // Like Spin: SQLite calls block, so tell tokio before making them.
        tokio::task::block_in_place(|| {
            let mut guard = self.connection.lock().unwrap_or_else(|e| e.into_inner());
            let connection = guard.as_mut().ok_or("key-value store is closed")?;
            f(connection).map_err(|e| e.to_string())
        })
    }

    fn get(&self, label: &str, key: &str) -> Result<Option<Vec<u8>>, String> {
        self.with_connection(|c| {
            c.prepare_cached(SELECT)?
                .query_map([label, key], |row| row.get::<_, Vec<u8>>(0))?
                .next()
                .transpose()
        })
    }

    fn set(&self, label: &str, key: &str, value: &[u8]) -> Result<(), String> {
        self.with_connection(|c| {
            c.prepare_cached(UPSERT)?
                .execute(rusqlite::params![label, key, value])
                .map(drop)
        })
    }

    fn delete(&self, label: &str, key: &str) -> Result<(), String> {
        self.with_connection(|c| {
            c.prepare_cached("DELETE FROM spin_key_value WHERE store=$1 AND key=$2")?
                .execute([label, key])
                .map(drop)
        })
    }

    fn exists(&self, label: &str, key: &str) -> Result<bool, String> {
        self.with_connection(|c| {
            c.prepare_cached("SELECT 1 FROM spin_key_value WHERE store=$1 AND key=$2 LIMIT 1")?
                .exists([label, key])
        })
    }

    fn keys(&self, label: &str) -> Result<Vec<String>, String> {
        self.with_connection(|c| {
            c.prepare_cached("SELECT key FROM spin_key_value WHERE store=$1")?
                .query_map([label], |row| row.get::<_, String>(0))?
                .collect()
        })
    }

    fn get_many(&self, label: &str, keys: Vec<String>) -> Result<KeyValues, String> {
        let keys = Rc::new(
            keys.into_iter()
                .map(rusqlite::types::Value::from)
                .collect::<Vec<_>>(),
        );
        self.with_connection(|c| {
            c.prepare_cached(
                "SELECT key, value FROM spin_key_value WHERE store=:name AND key IN rarray(:keys)",
            )?
            .query_map(named_params! {":name": label, ":keys": keys}, |row| {
                <(String, Option<Vec<u8>>)>::try_from(row)
            })?
            .collect()
        })
    }

    fn set_many(&self, label: &str, key_values: Vec<(String, Vec<u8>)>) -> Result<(), String> {
        self.with_connection(|c| {
            let tx = c.transaction()?;
            for (key, value) in key_values {
                tx.prepare_cached(UPSERT)?
                    .execute(rusqlite::params![label, key, value])?;
            }
            tx.commit()
        })
    }

    fn delete_many(&self, label: &str, keys: Vec<String>) -> Result<(), String> {
        let keys = Rc::new(
            keys.into_iter()
                .map(rusqlite::types::Value::from)
                .collect::<Vec<_>>(),
        );
        self.with_connection(|c| {
            c.prepare_cached(
                "DELETE FROM spin_key_value WHERE store=:name AND key IN rarray(:keys)",
            )?
            .execute(named_params! {":name": label, ":keys": keys})
            .map(drop)
        })
    }

    fn increment(&self, label: &str, key: &str, delta: i64) -> Result<i64, IncrementError> {
        let outcome = self
            .with_connection(|c| {
                let tx = c.transaction()?;
                let value: Option<Vec<u8>> = tx
                    .prepare_cached(SELECT)?
                    .query_map([label, key], |row| row.get(0))?
                    .next()
                    .transpose()?;
                let current = match value {
                    None => 0,
                    Some(bytes) => match <[u8; 8]>::try_from(bytes.as_slice()) {
                        Ok(le) => i64::from_le_bytes(le),
                        Err(_) => return Ok(Err(bytes.len())),
                    },
                };
                // Spin is built in release mode: overflow wraps.
                let new_value = current.wrapping_add(delta);
                tx.prepare_cached(UPSERT)?.execute(rusqlite::params![
                    label,
                    key,
                    new_value.to_le_bytes()
                ])?;
                tx.commit()?;
                Ok(Ok(new_value))
            })
            .map_err(IncrementError::Store)?;
        outcome.map_err(IncrementError::NotACounter)
    }

    fn swap(&self, cas: &CasHandle, value: &[u8]) -> Result<bool, String> {
        self.with_connection(|c| {
            let rows = match &cas.current {
                Some(old) => c
                    .prepare_cached(
                        "UPDATE spin_key_value SET value=:new_value
                         WHERE store=:name and key=:key and value=:old_value",
                    )?
                    .execute(named_params! {
                        ":name": cas.label,
                        ":key": cas.key,
                        ":old_value": old,
                        ":new_value": value,
                    })?,
                None => c
                    .prepare_cached(UPSERT)?
                    .execute(rusqlite::params![cas.label, cas.key, value])?,
            };
            Ok(rows == 1)
        })
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

    fn new_cas(&mut self, label: String, key: String) -> wasmtime::Result<Resource<CasHandle>> {
        Ok(self.table.push(CasHandle {
            label,
            key,
            current: None,
        })?)
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
        Ok(self.kv.store.get(&label, &key).map_err(other))
    }

    fn set(
        &mut self,
        bucket: Resource<BucketHandle>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), store::Error>> {
        let label = self.bucket(&bucket)?;
        Ok(self.kv.store.set(&label, &key, &value).map_err(other))
    }

    fn delete(
        &mut self,
        bucket: Resource<BucketHandle>,
        key: String,
    ) -> wasmtime::Result<Result<(), store::Error>> {
        let label = self.bucket(&bucket)?;
        Ok(self.kv.store.delete(&label, &key).map_err(other))
    }

    fn exists(
        &mut self,
        bucket: Resource<BucketHandle>,
        key: String,
    ) -> wasmtime::Result<Result<bool, store::Error>> {
        let label = self.bucket(&bucket)?;
        Ok(self.kv.store.exists(&label, &key).map_err(other))
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
        Ok(self
            .kv
            .store
            .keys(&label)
            .map(|keys| store::KeyResponse { keys, cursor: None })
            .map_err(other))
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
        Ok(self.kv.store.get_many(&label, keys).map_err(other))
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
        Ok(self.kv.store.set_many(&label, key_values).map_err(other))
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
        Ok(self.kv.store.delete_many(&label, keys).map_err(other))
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
        match self.kv.store.increment(&label, &key, delta) {
            Ok(value) => Ok(Ok(value)),
            Err(IncrementError::Store(message)) => Ok(Err(other(message))),
            Err(IncrementError::NotACounter(len)) => Err(wasmtime::format_err!(
                "wasi:keyvalue/atomics.increment on key {key:?}: the stored value is {len} bytes, \
                 not an 8-byte little-endian i64 counter (Spin's SQLite store panics here and \
                 the request fails)"
            )),
        }
    }

    fn swap(
        &mut self,
        cas: Resource<CasHandle>,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), atomics::CasError>> {
        let cas = self.table.delete(cas)?;
        match self.kv.store.swap(&cas, &value) {
            Ok(true) => Ok(Ok(())),
            Ok(false) => {
                // Like Spin: hand back a fresh CAS whose current value is loaded.
                let current = match self.kv.store.get(&cas.label, &cas.key) {
                    Ok(current) => current,
                    Err(message) => return Ok(Err(atomics::CasError::StoreError(other(message)))),
                };
                let retry = self.table.push(CasHandle { current, ..cas })?;
                Ok(Err(atomics::CasError::CasFailed(retry)))
            }
            Err(message) => Ok(Err(atomics::CasError::StoreError(other(message)))),
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
        Ok(Ok(self.new_cas(label, key)?))
    }

    fn current(
        &mut self,
        cas: Resource<CasHandle>,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, store::Error>> {
        let (label, key) = {
            let cas = self.table.get(&cas)?;
            (cas.label.clone(), cas.key.clone())
        };
        match self.kv.store.get(&label, &key) {
            Ok(current) => {
                self.table.get_mut(&cas)?.current.clone_from(&current);
                Ok(Ok(current))
            }
            Err(message) => Ok(Err(other(message))),
        }
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
        Ok(self.kv.store.get(&label, &key).map_err(spin_other))
    }

    fn set(
        &mut self,
        store: Resource<BucketHandle>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), spin_kv::Error>> {
        let label = self.bucket(&store)?;
        Ok(self.kv.store.set(&label, &key, &value).map_err(spin_other))
    }

    fn delete(
        &mut self,
        store: Resource<BucketHandle>,
        key: String,
    ) -> wasmtime::Result<Result<(), spin_kv::Error>> {
        let label = self.bucket(&store)?;
        Ok(self.kv.store.delete(&label, &key).map_err(spin_other))
    }

    fn exists(
        &mut self,
        store: Resource<BucketHandle>,
        key: String,
    ) -> wasmtime::Result<Result<bool, spin_kv::Error>> {
        let label = self.bucket(&store)?;
        Ok(self.kv.store.exists(&label, &key).map_err(spin_other))
    }

    fn get_keys(
        &mut self,
        store: Resource<BucketHandle>,
    ) -> wasmtime::Result<Result<Vec<String>, spin_kv::Error>> {
        let label = self.bucket(&store)?;
        Ok(self.kv.store.keys(&label).map_err(spin_other))
    }

    fn drop(&mut self, store: Resource<BucketHandle>) -> wasmtime::Result<()> {
        self.table.delete(store)?;
        Ok(())
    }
}
