//! Starts the built component under a real runtime and talks HTTP to it.
//!
//! Two runtimes: the wasmtime-based test host in `tests/host` (always), and
//! the `spin` CLI when it is on `PATH`. Each server gets its own state
//! directory (so its own key-value store) and a free loopback port.

use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Runtime {
    TestHost,
    Spin,
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
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
        cargo(&[
            "build",
            "--release",
            "--target",
            "wasm32-wasip1",
            "-p",
            "secure-backend",
        ]);
        root().join("target/wasm32-wasip1/release/secure_backend.wasm")
    })
}

fn test_host_binary() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        // A debug build is enough: the component runs as compiled machine
        // code either way, and compiled components are cached on disk.
        cargo(&["build", "-p", "spin-test-host"]);
        root().join("target/debug/spin-test-host")
    })
}

/// Whether the `spin` CLI is installed; if not, say so where the test runner shows it.
pub fn spin_available(test: &str) -> bool {
    let found = Command::new("spin")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        // Straight to stderr: the test harness captures only print! output.
        let _ = writeln!(
            std::io::stderr(),
            "skipped: {test} against `spin up` (no spin CLI on PATH)"
        );
    }
    found
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A state directory that outlives server restarts within one test.
pub struct State {
    pub dir: tempfile::TempDir,
}

impl State {
    pub fn new() -> Self {
        let base = root().join("target/e2e-state");
        std::fs::create_dir_all(&base).expect("state base");
        Self {
            dir: tempfile::tempdir_in(base).expect("state dir"),
        }
    }
}

pub struct Server {
    pub runtime: Runtime,
    pub base: String,
    child: Child,
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
    pub fn start(runtime: Runtime, state: &State, vars: &[(&str, &str)]) -> Server {
        let mut merged: Vec<(String, String)> = DEFAULT_VARS
            .iter()
            .filter(|(k, _)| !vars.iter().any(|(o, _)| o == k))
            .chain(vars.iter())
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        merged.sort();
        let wasm = component();
        // The test host binds port 0 and says which port it got; Spin is
        // given a free port picked here.
        let listen = match runtime {
            Runtime::TestHost => "127.0.0.1:0".to_owned(),
            Runtime::Spin => format!("127.0.0.1:{}", free_port()),
        };
        let mut cmd = match runtime {
            Runtime::TestHost => {
                let mut cmd = Command::new(test_host_binary());
                cmd.arg("--wasm")
                    .arg(wasm)
                    .arg("--manifest")
                    .arg(root().join("spin.toml"))
                    .arg("--store")
                    .arg(state.dir.path().join("sqlite_key_value.db"))
                    .arg("--cache-dir")
                    .arg(root().join("target/e2e-cache"))
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
                    .arg(root().join("spin.toml"))
                    .arg("--state-dir")
                    .arg(state.dir.path())
                    .args(["--listen", &listen]);
                for (k, v) in &merged {
                    cmd.env(format!("SPIN_VARIABLE_{}", k.to_uppercase()), v);
                }
                cmd
            }
        };
        let mut child = cmd
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
        let log_file = (runtime == Runtime::Spin)
            .then(|| state.dir.path().join("logs/secure-backend_stdout.txt"));
        let mut server = Server {
            runtime,
            base: String::new(),
            child,
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
        self.kill();
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
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
