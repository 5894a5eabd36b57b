//! Starts the built component under a real runtime and talks HTTP to it.
//!
//! Two runtimes: the wasmtime-based test host in `tests/host` (always), and
//! the `spin` CLI when it is on `PATH`. Two stores: a SQLite file in the
//! case's own state directory, or a database of its own on the Redis server
//! named by `SECURE_BACKEND_TEST_REDIS` (as `.ci/run` starts one). Each
//! server gets a free loopback port and its own process group, and a case
//! fails if any process of a server outlives it.

use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Runtime {
    TestHost,
    Spin,
}

/// Where the key-value store `default` lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Redis,
}

/// One way of serving the component: a runtime over a store backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target {
    pub runtime: Runtime,
    pub backend: Backend,
}

/// The Redis server the Redis cases use (`redis://host:port`). Each case
/// takes a database of its own on it and flushes it first.
pub const REDIS_ENV: &str = "SECURE_BACKEND_TEST_REDIS";

/// Set (to anything) where every target must run, as in CI: a missing
/// runtime or store then fails the case instead of skipping it.
pub const REQUIRE_ALL_ENV: &str = "SECURE_BACKEND_E2E_REQUIRE_ALL";

impl Target {
    /// Whether this target can run here; if not, says so where the test
    /// runner shows it (straight to stderr: the harness captures print!).
    pub fn available(self, test: &str) -> bool {
        let missing = if self.runtime == Runtime::Spin && !spin_installed() {
            Some("no spin CLI on PATH")
        } else if self.backend == Backend::Redis && std::env::var_os(REDIS_ENV).is_none() {
            Some("SECURE_BACKEND_TEST_REDIS is not set")
        } else {
            None
        };
        if let Some(why) = missing {
            assert!(
                std::env::var_os(REQUIRE_ALL_ENV).is_none(),
                "{test} on {self:?} cannot run ({why}) and {REQUIRE_ALL_ENV} is set"
            );
            let runtime = match self.runtime {
                Runtime::TestHost => "the test host",
                Runtime::Spin => "`spin up`",
            };
            let _ = writeln!(
                std::io::stderr(),
                "skipped: {test} under {runtime} on {:?} ({why})",
                self.backend
            );
        }
        missing.is_none()
    }
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Cargo's target directory, wherever `CARGO_TARGET_DIR` or a cargo config
/// puts it.
pub fn target_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let out = Command::new(env!("CARGO"))
            .args(["metadata", "--format-version", "1", "--no-deps"])
            .current_dir(root())
            .stderr(Stdio::inherit())
            .output()
            .expect("run cargo metadata");
        assert!(out.status.success(), "cargo metadata failed");
        let meta: Value = serde_json::from_slice(&out.stdout).expect("cargo metadata JSON");
        PathBuf::from(meta["target_directory"].as_str().expect("target_directory"))
    })
}

/// Runs cargo as the outer `cargo test` does (cargo decides what is stale).
fn cargo(args: &[&str]) {
    let status = Command::new(env!("CARGO"))
        .args(args)
        .current_dir(root())
        .status()
        .expect("run cargo");
    assert!(status.success(), "cargo {args:?} failed");
}

/// The component, built (or rebuilt when stale) once per test run.
pub fn component() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        // As `spin build` does: cargo, then wasm-opt when installed.
        let status = Command::new(root().join("tools/build-component"))
            .env("CARGO_TARGET_DIR", target_dir())
            .current_dir(root())
            .status()
            .expect("run tools/build-component");
        assert!(status.success(), "tools/build-component failed");
        target_dir().join("wasm32-wasip1/release/secure_backend.opt.wasm")
    })
}

fn test_host_binary() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        // A debug build is enough: the component runs as compiled machine
        // code either way, and compiled components are cached on disk.
        cargo(&["build", "-p", "spin-test-host"]);
        target_dir().join("debug/spin-test-host")
    })
}

/// Whether the `spin` CLI is installed.
fn spin_installed() -> bool {
    static FOUND: OnceLock<bool> = OnceLock::new();
    *FOUND.get_or_init(|| {
        Command::new("spin")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A case's state: a directory and a store that outlive server restarts
/// within one test, shared by every server started on it.
pub struct State {
    pub target: Target,
    pub dir: tempfile::TempDir,
    /// `redis://host:port/db` of the case's own database, on Redis.
    pub redis_url: Option<String>,
    servers: std::sync::atomic::AtomicUsize,
}

impl State {
    pub fn new(target: Target) -> Self {
        let base = target_dir().join("e2e-state");
        std::fs::create_dir_all(&base).expect("state base");
        Self {
            target,
            dir: tempfile::tempdir_in(base).expect("state dir"),
            redis_url: (target.backend == Backend::Redis).then(redis_database),
            servers: Default::default(),
        }
    }

    /// Spin's state directory for the next server: on SQLite the case's
    /// directory (it holds the store, so a restart finds it); on Redis one
    /// of its own per server, as separate machines would have, so each
    /// instance's log is its own.
    fn spin_state_dir(&self) -> PathBuf {
        if self.redis_url.is_none() {
            return self.dir.path().to_owned();
        }
        let n = self
            .servers
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = self.dir.path().join(format!("instance-{n}"));
        std::fs::create_dir_all(&dir).expect("instance state dir");
        dir
    }

    /// A connection to the case's Redis database, to inspect what the
    /// component stored.
    pub fn redis(&self) -> redis::Connection {
        let url = self.redis_url.as_deref().expect("a Redis case");
        redis::Client::open(url)
            .and_then(|c| c.get_connection())
            .unwrap_or_else(|e| panic!("connect to {url}: {e}"))
    }
}

/// A fresh database on the test Redis: the number comes from an atomic
/// counter in database 0, so parallel cases (and test processes) never
/// share one; `.ci/run` starts Redis with 256 databases.
fn redis_database() -> String {
    let server = std::env::var(REDIS_ENV).expect(REDIS_ENV);
    let server = server.trim_end_matches('/');
    let connect = |url: &str| {
        redis::Client::open(url)
            .and_then(|c| c.get_connection())
            .unwrap_or_else(|e| panic!("{REDIS_ENV}={url}: cannot connect: {e}"))
    };
    let mut zero = connect(&format!("{server}/0"));
    let n: i64 = redis::cmd("INCR")
        .arg("secure-backend-tests:next-db")
        .query(&mut zero)
        .expect("allocate a Redis database");
    let url = format!("{server}/{}", 1 + (n - 1) % 255);
    let () = redis::cmd("FLUSHDB")
        .query(&mut connect(&url))
        .expect("flush the case's Redis database");
    url
}

pub struct Server {
    pub runtime: Runtime,
    pub base: String,
    /// Also the id of the server's process group.
    child: Child,
    stopped: bool,
    stdout: Arc<Mutex<Vec<String>>>,
    log_file: Option<PathBuf>,
}

/// Variables every server gets unless a test says otherwise: cheap bcrypt,
/// since the cost itself is not what most tests test.
pub const DEFAULT_VARS: &[(&str, &str)] = &[
    ("bcrypt_cost", "4"),
    ("admin_bootstrap_token", "e2e-bootstrap-token-0123456789"),
];

impl Server {
    pub fn start(state: &State, vars: &[(&str, &str)]) -> Server {
        let runtime = state.target.runtime;
        let mut merged: Vec<(String, String)> = DEFAULT_VARS
            .iter()
            .filter(|(k, _)| !vars.iter().any(|(o, _)| o == k))
            .chain(vars.iter())
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        merged.sort();
        let wasm = component();
        let spin_dir = state.spin_state_dir();
        // The test host binds port 0 and says which port it got; Spin is
        // given a free port picked here.
        let listen = match runtime {
            Runtime::TestHost => "127.0.0.1:0".to_owned(),
            Runtime::Spin => format!("127.0.0.1:{}", free_port()),
        };
        let mut cmd = match runtime {
            Runtime::TestHost => {
                let store = match &state.redis_url {
                    Some(url) => url.into(),
                    None => state.dir.path().join("sqlite_key_value.db"),
                };
                let mut cmd = Command::new(test_host_binary());
                cmd.arg("--wasm")
                    .arg(wasm)
                    .arg("--manifest")
                    .arg(root().join("spin.toml"))
                    .arg("--store")
                    .arg(store)
                    .arg("--cache-dir")
                    .arg(target_dir().join("e2e-cache"))
                    .args(["--listen", &listen])
                    // Many serving threads, so parallel requests really overlap
                    // even while one is busy in bcrypt.
                    .args(["--workers", "16"]);
                for (k, v) in &merged {
                    cmd.arg("--var").arg(format!("{k}={v}"));
                }
                cmd
            }
            Runtime::Spin => {
                let mut cmd = Command::new("spin");
                cmd.arg("up")
                    .arg("--from")
                    .arg(spin_manifest(state, wasm))
                    .arg("--state-dir")
                    .arg(&spin_dir)
                    .args(["--listen", &listen]);
                if let Some(url) = &state.redis_url {
                    let config = spin_dir.join("runtime-config.toml");
                    std::fs::write(
                        &config,
                        format!("[key_value_store.default]\ntype = \"redis\"\nurl = \"{url}\"\n"),
                    )
                    .expect("write runtime config");
                    cmd.arg("--runtime-config-file").arg(config);
                }
                for (k, v) in &merged {
                    cmd.env(format!("SPIN_VARIABLE_{}", k.to_uppercase()), v);
                }
                cmd
            }
        };
        // Its own process group, so stopping it reaches `spin up`'s child
        // `spin trigger http` too. Out of the test run's group, though, Ctrl-C
        // no longer reaches it, and a killed test runs no `Drop`: so it is
        // also told to stop when the thread that started it dies.
        stop_with_parent(&mut cmd);
        let mut child = cmd
            .process_group(0)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start server");
        // The test host announces "Serving http://ADDR" on stderr; keep the
        // rest of stderr to explain a failed start.
        let stderr = Arc::new(Mutex::new(String::new()));
        let (announced, address) = std::sync::mpsc::channel();
        if let Some(err) = child.stderr.take() {
            let text = Arc::clone(&stderr);
            std::thread::spawn(move || {
                for line in BufReader::new(err).lines().map_while(Result::ok) {
                    if let Some(addr) = line.strip_prefix("Serving http://") {
                        let _ = announced.send(addr.trim().to_owned());
                    }
                    let mut text = text.lock().unwrap();
                    text.push_str(&line);
                    text.push('\n');
                }
            });
        }
        let stdout = Arc::new(Mutex::new(Vec::new()));
        if let Some(out) = child.stdout.take() {
            let lines = Arc::clone(&stdout);
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    lines.lock().unwrap().push(line);
                }
            });
        }
        let log_file =
            (runtime == Runtime::Spin).then(|| spin_dir.join("logs/secure-backend_stdout.txt"));
        let mut server = Server {
            runtime,
            base: String::new(),
            child,
            stopped: false,
            stdout,
            log_file,
        };
        let addr = server.wait_until_ready(&listen, &address, &stderr);
        server.base = format!("http://{addr}");
        server
    }

    /// Waits for the server to listen, failing fast (with its stderr) if it exits.
    fn wait_until_ready(
        &mut self,
        listen: &str,
        announced: &std::sync::mpsc::Receiver<String>,
        stderr: &Mutex<String>,
    ) -> SocketAddr {
        let deadline = Instant::now() + Duration::from_secs(180);
        let mut addr: Option<SocketAddr> =
            listen.parse().ok().filter(|a: &SocketAddr| a.port() != 0);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "{:?} exited ({status}) before serving:\n{}",
                    self.runtime,
                    stderr.lock().unwrap()
                );
            }
            if addr.is_none() {
                addr = announced.try_recv().ok().and_then(|a| a.parse().ok());
            }
            if let Some(addr) = addr {
                if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                    return addr;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "{:?} did not start serving:\n{}",
            self.runtime,
            stderr.lock().unwrap()
        );
    }

    /// The component's stdout lines (the audit log) so far.
    pub fn stdout_lines(&self) -> Vec<String> {
        match &self.log_file {
            Some(path) => std::fs::read_to_string(path)
                .unwrap_or_default()
                .lines()
                .map(str::to_owned)
                .collect(),
            None => self.stdout.lock().unwrap().clone(),
        }
    }

    /// The audit events so far; every stdout line must be a JSON object.
    pub fn audit(&self) -> Vec<Value> {
        // Output is copied by another thread: give it a moment to catch up.
        std::thread::sleep(Duration::from_millis(200));
        self.stdout_lines()
            .iter()
            .map(|l| {
                serde_json::from_str(l).unwrap_or_else(|e| panic!("audit line not JSON ({e}): {l}"))
            })
            .collect()
    }

    pub fn client(&self) -> Client {
        Client::new(self, Ipv4Addr::new(127, 0, 0, 1))
    }

    /// A client whose connections come from `127.0.0.x`, a distinct client IP.
    pub fn client_from(&self, last_octet: u8) -> Client {
        Client::new(self, Ipv4Addr::new(127, 0, 0, last_octet))
    }

    pub fn stop(mut self) {
        self.shut_down();
    }

    /// SIGTERM to the whole process group (`spin up` then stops its
    /// `spin trigger http` child; SIGKILL would orphan it), then checks that
    /// no process of the group is left. One that is gets SIGKILL and fails
    /// the case.
    fn shut_down(&mut self) {
        if std::mem::replace(&mut self.stopped, true) {
            return;
        }
        let group = self.child.id() as i32;
        signal_group(group, libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) && live_in_group(group).is_empty() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let left = live_in_group(group);
        signal_group(group, libc::SIGKILL);
        let _ = self.child.wait();
        if !std::thread::panicking() {
            panic!(
                "{:?}: processes outlived their case after SIGTERM: {left:?}",
                self.runtime
            );
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shut_down();
    }
}

/// SIGTERM to the server when the thread that started it dies (`spin up`
/// then stops its own child). Linux only; elsewhere an interrupted run may
/// leave servers behind.
#[cfg(target_os = "linux")]
fn stop_with_parent(cmd: &mut Command) {
    // SAFETY: prctl is async-signal-safe, as pre_exec requires.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn stop_with_parent(_cmd: &mut Command) {}

fn signal_group(group: i32, signal: i32) {
    // SAFETY: kill(2) with a negative pid signals that process group only.
    unsafe {
        libc::kill(-group, signal);
    }
}

/// Processes of the group that are still running (zombies, already dead
/// and waiting to be reaped, do not count).
#[cfg(target_os = "linux")]
fn live_in_group(group: i32) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("stat")).ok())
        .filter_map(|stat| {
            // pid (comm) state ppid pgrp ...: comm may hold spaces, so split after ')'.
            let (head, rest) = stat.rsplit_once(')')?;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let (state, pgrp) = (*fields.first()?, fields.get(2)?.parse::<i32>().ok()?);
            (pgrp == group && state != "Z").then(|| format!("{head})"))
        })
        .collect()
}

#[cfg(not(target_os = "linux"))]
fn live_in_group(group: i32) -> Vec<String> {
    // SAFETY: signal 0 only asks whether any process of the group exists.
    if unsafe { libc::kill(-group, 0) } == 0 {
        vec![format!("process group {group}")]
    } else {
        Vec::new()
    }
}

/// `spin.toml` with the component's `source` pointing at the build wherever
/// cargo put it, written into the case's state directory.
fn spin_manifest(state: &State, wasm: &Path) -> PathBuf {
    let text = std::fs::read_to_string(root().join("spin.toml")).expect("read spin.toml");
    let mut manifest: toml::Table = toml::from_str(&text).expect("parse spin.toml");
    let component = manifest
        .get_mut("component")
        .and_then(|c| c.get_mut("secure-backend"))
        .and_then(|c| c.as_table_mut())
        .expect("[component.secure-backend] in spin.toml");
    component.insert(
        "source".into(),
        toml::Value::String(wasm.to_str().expect("UTF-8 path").into()),
    );
    let path = state.dir.path().join("spin.toml");
    std::fs::write(&path, toml::to_string(&manifest).expect("write TOML")).expect("write manifest");
    path
}

pub struct Client {
    http: reqwest::blocking::Client,
    base: String,
}

pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub raw: Vec<u8>,
    pub body: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    pub fn token(&self) -> String {
        self.body["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned()
    }
}

impl Client {
    fn new(server: &Server, from: Ipv4Addr) -> Self {
        let http = reqwest::blocking::Client::builder()
            .local_address(IpAddr::V4(from))
            .timeout(Duration::from_secs(60))
            .build()
            .expect("http client");
        Self {
            http,
            base: server.base.clone(),
        }
    }

    pub fn send(&self, req: reqwest::blocking::RequestBuilder) -> Reply {
        let res = req.send().expect("request");
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let raw = res.bytes().expect("body").to_vec();
        let body = serde_json::from_slice(&raw).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            raw,
            body,
        }
    }

    pub fn get(&self, path: &str) -> reqwest::blocking::RequestBuilder {
        self.http.get(format!("{}{path}", self.base))
    }

    pub fn post(&self, path: &str) -> reqwest::blocking::RequestBuilder {
        self.http.post(format!("{}{path}", self.base))
    }

    pub fn post_json(&self, path: &str, body: &Value) -> Reply {
        self.send(
            self.post(path)
                .header("content-type", "application/json")
                .body(body.to_string()),
        )
    }

    pub fn register(&self, username: &str, password: &str) -> Reply {
        self.post_json(
            "/auth/register",
            &serde_json::json!({"username": username, "password": password}),
        )
    }

    pub fn login(&self, username: &str, password: &str) -> Reply {
        self.post_json(
            "/auth/login",
            &serde_json::json!({"username": username, "password": password}),
        )
    }

    pub fn get_with_token(&self, path: &str, token: &str) -> Reply {
        self.send(self.get(path).bearer_auth(token))
    }
}

/// The exact error shape of the contract.
pub fn assert_error(res: &Reply, status: u16, code: &str) {
    assert_eq!(res.status, status, "body: {}", res.body);
    assert_eq!(res.code(), code, "body: {}", res.body);
    assert_eq!(
        res.body.as_object().map(|o| o.len()),
        Some(1),
        "{}",
        res.body
    );
    assert_eq!(
        res.body["error"].as_object().map(|o| o.len()),
        Some(2),
        "{}",
        res.body
    );
    assert_eq!(res.header("content-type"), "application/json");
}
