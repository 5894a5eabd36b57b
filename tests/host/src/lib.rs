//! `spin-test-host`: serves a Spin (spin-sdk 5.2) HTTP component over real HTTP
//! the way `spin up` (Spin 4.0.2) does, so that integration tests can exercise
//! the built `.wasm` without the Spin CLI.
//!
//! What is mirrored from Spin, and where:
//! - [`manifest`]: reads `spin.toml` (manifest v2) for routes, variables,
//!   key-value store labels and environment.
//! - [`routing`]: Spin's router (the same `routefinder` crate, the same `/...`
//!   rewrite) and the `spin-*` request headers Spin appends.
//! - [`variables`]: `fermyon:spin/variables` and `wasi:config/store`, resolved
//!   per-test override → `SPIN_VARIABLE_*` → manifest default.
//! - [`keyvalue`]: `wasi:keyvalue` (store, atomics, batch) and
//!   `fermyon:spin/key-value` over SQLite (Spin's own schema and SQL) or
//!   Redis (Spin's own commands, the same `redis` crate version).
//! - [`output`]: the component's stdout/stderr, captured line by line.
//! - [`component`]: loading (core module → component with the WASI reactor
//!   adapter), the engine, the linker and the import check.
//! - [`server`]: hyper + tokio, a fresh instance per request.
//!
//! Start a host with [`RunningHost::start`] and a [`HostConfig`].

pub mod bindings;
pub mod component;
pub mod config;
pub mod instance;
pub mod keyvalue;
pub mod manifest;
pub mod output;
pub mod routing;
pub mod server;
pub mod variables;

pub use config::{HostConfig, KeyValueBackend};
pub use server::RunningHost;
