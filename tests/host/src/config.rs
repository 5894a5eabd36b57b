//! [`HostConfig`]: everything a caller chooses about one running host. Owns
//! no behaviour; [`crate::server`] interprets it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;

/// How to start a [`crate::RunningHost`].
#[derive(Clone, Debug)]
pub struct HostConfig {
    /// The core module (what `cargo build --target wasm32-wasip1` emits) or
    /// component to serve.
    pub wasm: PathBuf,
    /// `spin.toml`: routes, variable declarations, key-value labels.
    pub manifest: PathBuf,
    /// SQLite file holding the key-value store `default` (Spin's schema, so
    /// `spin up` could open it as `.spin/sqlite_key_value.db`).
    pub store_path: PathBuf,
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
        store_path: impl Into<PathBuf>,
    ) -> Self {
        Self {
            wasm: wasm.into(),
            manifest: manifest.into(),
            store_path: store_path.into(),
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
