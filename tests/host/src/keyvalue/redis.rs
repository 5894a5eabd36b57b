//! Spin's Redis key-value backend (a runtime config's
//! `[key_value_store.default] type = "redis"`), mirroring Spin 4.0.2's
//! `crates/key-value-redis/src/store.rs`: the same commands, sent through
//! the same `redis` crate version (0.32.5), so replies are parsed, and fail,
//! exactly as under `spin up`. Errors reach the guest as `other(<the redis
//! error's Debug text>)`, as Spin's `log_error` makes them.
//!
//! Source: `spinframework/spin` `crates/key-value-redis/src/store.rs` at
//! commit 0bfcaef3 (the Spin 4.0.2 tag itself was not at hand; this version
//! has the result-size limits whose message, like redis 0.32.5, is in the
//! 4.0.2 binary) and `crates/factor-key-value/src/host.rs` (`log_error`, the
//! empty-list short cuts, the CAS retry).
//!
//! | operation | Redis | what the guest sees |
//! |---|---|---|
//! | `get` / `set` / `delete` / `exists` | `GET` / `SET` / `DEL` / `EXISTS` | as expected |
//! | `increment` | `INCRBY key delta` | the new value; the counter is stored as a decimal string, so `get` returns e.g. `b"5"`; a non-integer value or an overflow is `other("...")` |
//! | `set-many` / `delete-many` | `MSET` / `DEL k1 k2 ...` | as expected |
//! | `get-many` | `KEYS k1 k2 ...` (not `MGET`: Spin's bug) | several keys: `other("... wrong number of arguments for 'keys' command")`; one key, taken as a pattern: no match gives an empty list, an odd number of matches makes the redis crate panic (`internal error: entered unreachable code`), which kills Spin's request with a bare 500 and here traps the instance; an even number pairs key names up as (key, value) |
//! | `list-keys` / `get-keys` | `KEYS *` | every key of the database (the store label is not part of the key) |
//! | CAS `new` | a new connection for this CAS | a connection failure is `other(...)` |
//! | CAS `current` | `WATCH key`, `GET key` | the value |
//! | `swap` | `MULTI; SET key value; EXEC`, then `UNWATCH key` | `UNWATCH` takes no argument, so Redis 7 rejects it and `swap` reports `cas-failed` on every call, although the `SET` ran (unless the watched key changed); the retry handle is a new CAS whose `current` was already called |
//!
//! Differences from Spin, all on failure paths: Spin's one multiplexed
//! connection retries in the background and a request started during an
//! outage can hang for minutes; here a call fails with `other(...)` within
//! [`CONNECT_TIMEOUT`] or [`IO_TIMEOUT`]. Spin 4.0.2 also limits the size of
//! `get`, `get-keys` and `get-many` results (`query result exceeds limit of
//! N bytes`); that limit is not mirrored. The host must reach Redis at
//! start-up, where Spin connects on the first request.
//!
//! Connections: a small pool of blocking connections, each used by one
//! call at a time inside `tokio::task::block_in_place`; a connection whose
//! call failed without a reply from Redis is dropped, not reused.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Mutex;
use std::time::Duration;

use ::redis::{Client, Commands as _, Connection, ConnectionLike as _, RedisError, RedisResult};
use anyhow::Context as _;

use super::{KeyValues, StoreFailure};

/// How long opening a connection may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one command may wait for Redis.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections kept open between calls; more are opened under load.
const MAX_IDLE_CONNECTIONS: usize = 16;

/// One Redis database behind every store label.
pub struct RedisStore {
    client: Client,
    /// `host:port/db`, for messages (never the credentials).
    address: String,
    /// Connections not in use; `None` once the store is closed.
    idle: Mutex<Option<Vec<Connection>>>,
}

/// A compare-and-swap in progress: like Spin, a connection of its own, since
/// a `WATCH` belongs to the connection that sent it.
pub struct RedisCas {
    connection: Connection,
}

/// Spin's `log_error`: the guest sees the error's `Debug` text.
fn spin_error(e: RedisError) -> StoreFailure {
    StoreFailure::Other(format!("{e:?}"))
}

fn panic_message(panic: &(dyn Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a panic without a message")
}

impl RedisStore {
    /// Parses `url` as Spin does and connects, so an unreachable server fails
    /// start-up rather than the first request.
    pub fn open(url: &str) -> anyhow::Result<Self> {
        let client = Client::open(url).with_context(|| format!("invalid Redis URL {url:?}"))?;
        let info = client.get_connection_info();
        let address = format!("{}/{}", info.addr, info.redis.db);
        let connection = Self::connect(&client)
            .and_then(|mut c| ::redis::cmd("PING").query::<()>(&mut c).map(|()| c))
            // The redis error repeats its I/O cause as its source: print it once.
            .map_err(|e| {
                anyhow::anyhow!("cannot reach the Redis key-value store at {address}: {e}")
            })?;
        Ok(Self {
            client,
            address,
            idle: Mutex::new(Some(vec![connection])),
        })
    }

    fn connect(client: &Client) -> RedisResult<Connection> {
        let connection = client.get_connection_with_timeout(CONNECT_TIMEOUT)?;
        connection.set_read_timeout(Some(IO_TIMEOUT))?;
        connection.set_write_timeout(Some(IO_TIMEOUT))?;
        Ok(connection)
    }

    /// Closes every idle connection; later operations fail with `other(...)`.
    pub fn close(&self) {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).take();
    }

    /// Runs one call on a pooled connection. A panic inside the redis crate
    /// (Spin's host would die with the request) becomes
    /// [`StoreFailure::HostPanic`] naming `operation`.
    fn with_connection<R>(
        &self,
        operation: &str,
        call: impl FnOnce(&mut Connection) -> RedisResult<R>,
    ) -> Result<R, StoreFailure> {
        tokio::task::block_in_place(|| {
            let pooled = self
                .idle
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .as_mut()
                .map(Vec::pop);
            let mut connection = match pooled {
                None => return Err(StoreFailure::Other("key-value store is closed".into())),
                Some(Some(connection)) => connection,
                Some(None) => Self::connect(&self.client).map_err(spin_error)?,
            };
            match catch_unwind(AssertUnwindSafe(|| call(&mut connection))) {
                Ok(result) => {
                    // A reply (even an error reply) leaves the connection in step.
                    let answered = match &result {
                        Ok(_) => true,
                        Err(e) => e.code().is_some(),
                    };
                    if answered {
                        self.put_back(connection);
                    }
                    result.map_err(spin_error)
                }
                Err(panic) => Err(StoreFailure::HostPanic(format!(
                    "{operation} on the Redis store at {}: the redis crate panicked ({}), as it \
                     does inside Spin 4.0.2's Redis store, where the request then dies with a \
                     bare 500",
                    self.address,
                    panic_message(panic.as_ref())
                ))),
            }
        })
    }

    fn put_back(&self, connection: Connection) {
        if !connection.is_open() {
            return;
        }
        if let Some(idle) = self.idle.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            if idle.len() < MAX_IDLE_CONNECTIONS {
                idle.push(connection);
            }
        }
    }

    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreFailure> {
        self.with_connection("get", |c| c.get(key))
    }

    pub fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreFailure> {
        self.with_connection("set", |c| c.set(key, value))
    }

    pub fn delete(&self, key: &str) -> Result<(), StoreFailure> {
        self.with_connection("delete", |c| c.del(key))
    }

    pub fn exists(&self, key: &str) -> Result<bool, StoreFailure> {
        self.with_connection("exists", |c| c.exists(key))
    }

    pub fn keys(&self) -> Result<Vec<String>, StoreFailure> {
        self.with_connection("get-keys", |c| c.keys("*"))
    }

    /// Spin's bug, kept: the key list goes to `KEYS`, and the reply (key
    /// names matching the one pattern) is parsed as (key, value) pairs.
    pub fn get_many(&self, keys: Vec<String>) -> Result<KeyValues, StoreFailure> {
        self.with_connection("wasi:keyvalue/batch.get-many (sent as KEYS)", |c| {
            c.keys(keys)
        })
    }

    pub fn set_many(&self, key_values: Vec<(String, Vec<u8>)>) -> Result<(), StoreFailure> {
        self.with_connection("set-many", |c| c.mset(&key_values))
    }

    pub fn delete_many(&self, keys: Vec<String>) -> Result<(), StoreFailure> {
        self.with_connection("delete-many", |c| c.del(keys))
    }

    pub fn increment(&self, key: &str, delta: i64) -> Result<i64, StoreFailure> {
        self.with_connection("increment", |c| c.incr(key, delta))
    }

    pub fn new_cas(&self) -> Result<RedisCas, StoreFailure> {
        tokio::task::block_in_place(|| {
            let connection = Self::connect(&self.client).map_err(spin_error)?;
            Ok(RedisCas { connection })
        })
    }

    pub fn cas_current(
        &self,
        cas: &mut RedisCas,
        key: &str,
    ) -> Result<Option<Vec<u8>>, StoreFailure> {
        tokio::task::block_in_place(|| {
            ::redis::cmd("WATCH")
                .arg(key)
                .exec(&mut cas.connection)
                .map_err(spin_error)?;
            cas.connection.get(key).map_err(spin_error)
        })
    }

    /// `true`: swapped; `false`: Spin's `CasFailed`. Mirrors Spin's order:
    /// the transaction's outcome counts only if the `UNWATCH key` that
    /// follows it succeeds, which Redis 7 never lets it do.
    pub fn swap(&self, cas: &mut RedisCas, key: &str, value: &[u8]) -> bool {
        tokio::task::block_in_place(|| {
            let written: RedisResult<()> = ::redis::pipe()
                .atomic()
                .set(key, value)
                .query(&mut cas.connection);
            let unwatched = ::redis::cmd("UNWATCH").arg(key).exec(&mut cas.connection);
            unwatched.is_ok() && written.is_ok()
        })
    }
}
