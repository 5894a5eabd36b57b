//! [`HostConfig`]: everything a caller chooses about one running host. Owns
//! no behaviour; [`crate::server`] interprets it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// How to start a [`crate::RunningHost`].
#[derive(Clone, Debug)]
pub struct HostConfig {
    /// The core module (what `cargo build --target wasm32-wasip1` emits) or
    /// component to serve.
    pub wasm: PathBuf,
    /// `spin.toml`: routes, variable declarations, key-value labels.
    pub manifest: PathBuf,
    /// What backs the key-value store `default`.
    pub store: KeyValueBackend,
    /// Per-test values for variables declared in `spin.toml` `[variables]`;
    /// they win over `SPIN_VARIABLE_*` and over the manifest default.
    pub variables: HashMap<String, String>,
    /// Where to listen, usually `127.0.0.1:0`.
    pub bind: SocketAddr,
    /// Which manifest component `wasm` is. `None`: the only component the
    /// manifest routes to (start-up fails if there are several).
    pub component: Option<String>,
    /// Directory for compiled-component cache files (`<sha256>.cwasm`).
    /// `None`: compile on every start (still cached in memory per process).
    pub cache_dir: Option<PathBuf>,
    /// Also copy the component's stdout/stderr lines to this process's
    /// stdout/stderr as they are written (the CLI turns this on).
    pub echo_output: bool,
    /// Request-serving threads. Spin uses one per core; a test that must
    /// see requests truly overlap (a CPU-bound handler holds its thread)
    /// asks for more.
    pub workers: usize,
}

impl HostConfig {
    /// A config with no variable overrides, listening on `127.0.0.1:0`.
    pub fn new(
        wasm: impl Into<PathBuf>,
        manifest: impl Into<PathBuf>,
        store: impl Into<KeyValueBackend>,
    ) -> Self {
        Self {
            wasm: wasm.into(),
            manifest: manifest.into(),
            store: store.into(),
            variables: HashMap::new(),
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            component: None,
            cache_dir: None,
            echo_output: false,
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
        }
    }

    /// Overrides one variable (builder style).
    pub fn variable(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.variables.insert(name.into(), value.into());
        self
    }
}

/// The two backends Spin 4.0.2 offers for a key-value store, and how each is
/// named: a file path, or a `redis://host:port[/db]` URL as in a runtime
/// config's `[key_value_store.default] type = "redis"`, `url = "..."`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyValueBackend {
    /// A SQLite file with Spin's schema (`spin up` would open it as
    /// `.spin/sqlite_key_value.db`); created if missing.
    Sqlite(PathBuf),
    /// A Redis database: `redis://[user:password@]host:port[/db]`, the db
    /// number selecting the database as in Spin's runtime config.
    Redis(String),
}

impl KeyValueBackend {
    /// The CLI's `--store` rule: a `redis://` URL names a Redis database,
    /// anything else is a SQLite file path.
    pub fn from_argument(argument: &str) -> Self {
        if argument.starts_with("redis://") {
            Self::Redis(argument.to_string())
        } else {
            Self::Sqlite(PathBuf::from(argument))
        }
    }
}

/// Strings follow the `--store` rule ([`KeyValueBackend::from_argument`]).
impl From<&str> for KeyValueBackend {
    fn from(argument: &str) -> Self {
        Self::from_argument(argument)
    }
}

impl From<String> for KeyValueBackend {
    fn from(argument: String) -> Self {
        Self::from_argument(&argument)
    }
}

/// A path is always a SQLite file.
impl From<PathBuf> for KeyValueBackend {
    fn from(path: PathBuf) -> Self {
        Self::Sqlite(path)
    }
}

impl From<&Path> for KeyValueBackend {
    fn from(path: &Path) -> Self {
        Self::Sqlite(path.to_path_buf())
    }
}

impl From<&PathBuf> for KeyValueBackend {
    fn from(path: &PathBuf) -> Self {
        Self::Sqlite(path.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_redis_url_selects_redis_and_anything_else_is_a_sqlite_file() {
        assert_eq!(
            KeyValueBackend::from("redis://127.0.0.1:6379/3"),
            KeyValueBackend::Redis("redis://127.0.0.1:6379/3".into())
        );
        assert_eq!(
            KeyValueBackend::from(".spin/sqlite_key_value.db"),
            KeyValueBackend::Sqlite(".spin/sqlite_key_value.db".into())
        );
        assert_eq!(
            KeyValueBackend::from(PathBuf::from("redis://not-a-url")),
            KeyValueBackend::Sqlite("redis://not-a-url".into())
        );
    }
}
