//! Spin's default key-value backend: one SQLite file shared by every
//! instance of the host, with the table, the SQL and the quirks of Spin 4's
//! `crates/key-value-spin/src/store.rs`, so results match `spin up` with its
//! default store:
//! - `increment` stores the counter as 8 little-endian bytes of an `i64`, so
//!   `get` on a counter returns those bytes; incrementing a value that is not
//!   8 bytes long makes Spin panic (`expect("incorrect length")`) and the
//!   request fails; here the instance traps with a message saying so;
//! - `get-many` returns only the keys that exist (SQL `IN rarray(...)`),
//!   in the order SQLite yields them, not one entry per requested key;
//! - CAS compares values, and "swap" of an absent key is an unconditional
//!   upsert.
//!
//! Every operation holds the connection's mutex, so `increment` is atomic
//! across concurrent requests.

use std::path::Path;
use std::rc::Rc;
use std::sync::Mutex;

use anyhow::Context as _;
use rusqlite::{named_params, Connection};

use super::{KeyValues, StoreFailure};

const UPSERT: &str = "INSERT INTO spin_key_value (store, key, value) VALUES ($1, $2, $3)
                      ON CONFLICT(store, key) DO UPDATE SET value=$3";

const SELECT: &str = "SELECT value FROM spin_key_value WHERE store=$1 AND key=$2";

/// The one SQLite database behind every store label.
pub struct SqliteStore {
    connection: Mutex<Option<Connection>>,
}

/// A compare-and-swap in progress: the value `current` saw, compared again
/// by `swap`.
pub struct SqliteCas {
    current: Option<Vec<u8>>,
}

impl SqliteStore {
    /// Opens (creating if needed) the SQLite file with Spin's schema.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
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
        Ok(Self {
            connection: Mutex::new(Some(connection)),
        })
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
    ) -> Result<R, StoreFailure> {
        // Like Spin: SQLite calls block, so tell tokio before making them.
        tokio::task::block_in_place(|| {
            let mut guard = self.connection.lock().unwrap_or_else(|e| e.into_inner());
            let connection = guard
                .as_mut()
                .ok_or_else(|| StoreFailure::Other("key-value store is closed".into()))?;
            f(connection).map_err(|e| StoreFailure::Other(e.to_string()))
        })
    }

    pub fn get(&self, label: &str, key: &str) -> Result<Option<Vec<u8>>, StoreFailure> {
        self.with_connection(|c| {
            c.prepare_cached(SELECT)?
                .query_map([label, key], |row| row.get::<_, Vec<u8>>(0))?
                .next()
                .transpose()
        })
    }

    pub fn set(&self, label: &str, key: &str, value: &[u8]) -> Result<(), StoreFailure> {
        self.with_connection(|c| {
            c.prepare_cached(UPSERT)?
                .execute(rusqlite::params![label, key, value])
                .map(drop)
        })
    }

    pub fn delete(&self, label: &str, key: &str) -> Result<(), StoreFailure> {
        self.with_connection(|c| {
            c.prepare_cached("DELETE FROM spin_key_value WHERE store=$1 AND key=$2")?
                .execute([label, key])
                .map(drop)
        })
    }

    pub fn exists(&self, label: &str, key: &str) -> Result<bool, StoreFailure> {
        self.with_connection(|c| {
            c.prepare_cached("SELECT 1 FROM spin_key_value WHERE store=$1 AND key=$2 LIMIT 1")?
                .exists([label, key])
        })
    }

    pub fn keys(&self, label: &str) -> Result<Vec<String>, StoreFailure> {
        self.with_connection(|c| {
            c.prepare_cached("SELECT key FROM spin_key_value WHERE store=$1")?
                .query_map([label], |row| row.get::<_, String>(0))?
                .collect()
        })
    }

    pub fn get_many(&self, label: &str, keys: Vec<String>) -> Result<KeyValues, StoreFailure> {
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

    pub fn set_many(
        &self,
        label: &str,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> Result<(), StoreFailure> {
        self.with_connection(|c| {
            let tx = c.transaction()?;
            for (key, value) in key_values {
                tx.prepare_cached(UPSERT)?
                    .execute(rusqlite::params![label, key, value])?;
            }
            tx.commit()
        })
    }

    pub fn delete_many(&self, label: &str, keys: Vec<String>) -> Result<(), StoreFailure> {
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

    pub fn increment(&self, label: &str, key: &str, delta: i64) -> Result<i64, StoreFailure> {
        let outcome = self.with_connection(|c| {
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
        })?;
        outcome.map_err(|len| {
            StoreFailure::HostPanic(format!(
                "wasi:keyvalue/atomics.increment on key {key:?}: the stored value is {len} bytes, \
                 not an 8-byte little-endian i64 counter (Spin's SQLite store panics here and \
                 the request fails)"
            ))
        })
    }

    /// A CAS does no I/O until `current`.
    pub fn new_cas(&self) -> SqliteCas {
        SqliteCas { current: None }
    }

    pub fn cas_current(
        &self,
        cas: &mut SqliteCas,
        label: &str,
        key: &str,
    ) -> Result<Option<Vec<u8>>, StoreFailure> {
        let current = self.get(label, key)?;
        cas.current.clone_from(&current);
        Ok(current)
    }

    /// `true`: swapped; `false`: the value changed since `current`.
    pub fn swap(
        &self,
        cas: &SqliteCas,
        label: &str,
        key: &str,
        value: &[u8],
    ) -> Result<bool, StoreFailure> {
        self.with_connection(|c| {
            let rows = match &cas.current {
                Some(old) => c
                    .prepare_cached(
                        "UPDATE spin_key_value SET value=:new_value
                         WHERE store=:name and key=:key and value=:old_value",
                    )?
                    .execute(named_params! {
                        ":name": label,
                        ":key": key,
                        ":old_value": old,
                        ":new_value": value,
                    })?,
                None => c
                    .prepare_cached(UPSERT)?
                    .execute(rusqlite::params![label, key, value])?,
            };
            Ok(rows == 1)
        })
    }
}
