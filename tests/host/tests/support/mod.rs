//! Test helpers: building the `hello` fixture component, fresh directories,
//! a Redis database per test, starting hosts, and a minimal HTTP/1.1 client
//! (so the tests need no HTTP client crate).

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use spin_test_host::{HostConfig, KeyValueBackend, RunningHost};

/// The `hello` fixture crate (`SPIN_TEST_HOST_HELLO_DIR` overrides).
pub fn hello_dir() -> PathBuf {
    std::env::var_os("SPIN_TEST_HOST_HELLO_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("hello"))
}

/// Builds `hello` for `wasm32-wasip1` (release, its own target dir per
/// feature set) once per test process and returns the core module.
pub fn hello_wasm(features: &'static str) -> PathBuf {
    static BUILT: OnceLock<Mutex<Vec<(&'static str, PathBuf)>>> = OnceLock::new();
    let built = BUILT.get_or_init(Default::default);
    let mut built = built.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, path)) = built.iter().find(|(f, _)| *f == features) {
        return path.clone();
    }
    let target_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(if features.is_empty() {
        "hello-target".to_string()
    } else {
        format!("hello-target-{features}")
    });
    let mut cargo = Command::new(env!("CARGO"));
    cargo
        .args([
            "build",
            "--target",
            "wasm32-wasip1",
            "--release",
            "--manifest-path",
        ])
        .arg(hello_dir().join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", &target_dir);
    if !features.is_empty() {
        cargo.args(["--features", features]);
    }
    let status = cargo.status().expect("running cargo");
    assert!(status.success(), "building the hello component failed");
    let wasm = target_dir.join("wasm32-wasip1/release/hello.wasm");
    built.push((features, wasm.clone()));
    wasm
}

/// A new empty directory under the integration-test temp dir.
pub fn fresh_dir(name: &str) -> PathBuf {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "{name}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A config serving `hello` with its own manifest, a fresh store file and
/// the one required variable set.
pub fn hello_config(dir: &Path) -> HostConfig {
    hello_config_on(dir.join("store.db").into())
}

/// A config serving `hello` over the given key-value store.
pub fn hello_config_on(store: KeyValueBackend) -> HostConfig {
    let mut cfg = HostConfig::new(hello_wasm(""), hello_dir().join("spin.toml"), store)
        .variable("api_token", "test-token");
    cfg.cache_dir = Some(Path::new(env!("CARGO_TARGET_TMPDIR")).join("component-cache"));
    cfg
}

pub fn start_hello(name: &str) -> (RunningHost, PathBuf) {
    let dir = fresh_dir(name);
    let host = RunningHost::start(hello_config(&dir)).expect("starting the host");
    (host, dir)
}

/// The Redis server the Redis tests use, e.g. `redis://127.0.0.1:6390`.
pub const REDIS_ENV: &str = "SECURE_BACKEND_TEST_REDIS";

/// A Redis database of the calling test's own, emptied, as
/// `redis://host:port/N`. `None` when [`REDIS_ENV`] is not set: the test is
/// skipped, and says so on stderr. Panics when it is set but Redis cannot be
/// reached: a configured Redis that is down fails the test.
///
/// Databases are handed out by `INCR secure-backend-tests:next-db` on
/// database 0, as `1 + (n - 1) % 255` (CI's Redis has `--databases 256`), so
/// tests running at the same time, in any process, never share keys.
pub fn redis_db(test: &str) -> Option<String> {
    let Some(server) = std::env::var(REDIS_ENV).ok().filter(|s| !s.is_empty()) else {
        // CI sets this so that a lost Redis cannot pass as a skip.
        assert!(
            std::env::var_os("SECURE_BACKEND_E2E_REQUIRE_ALL").is_none(),
            "{test} needs {REDIS_ENV} and SECURE_BACKEND_E2E_REQUIRE_ALL is set"
        );
        // Straight to stderr, past libtest's capture, so a skip is visible.
        let _ = writeln!(
            std::io::stderr(),
            "skipped: {test} ({REDIS_ENV} is not set)"
        );
        return None;
    };
    let authority = server
        .strip_prefix("redis://")
        .unwrap_or_else(|| panic!("{REDIS_ENV}={server:?}: expected redis://host:port"))
        .split('/')
        .next()
        .unwrap();
    let connect = |db: i64| {
        let url = format!("redis://{authority}/{db}");
        redis::Client::open(url.as_str())
            .and_then(|client| client.get_connection_with_timeout(Duration::from_secs(5)))
            .unwrap_or_else(|e| panic!("{REDIS_ENV}: cannot reach Redis at {url}: {e}"))
    };
    let n: i64 = redis::cmd("INCR")
        .arg("secure-backend-tests:next-db")
        .query(&mut connect(0))
        .expect("allocating a Redis database");
    let db = 1 + (n - 1) % 255;
    redis::cmd("FLUSHDB")
        .exec(&mut connect(db))
        .expect("emptying the test's Redis database");
    Some(format!("redis://{authority}/{db}"))
}

/// A direct connection to a test's Redis database, to look behind the host.
pub fn redis_connection(db_url: &str) -> redis::Connection {
    redis::Client::open(db_url)
        .and_then(|client| client.get_connection_with_timeout(Duration::from_secs(5)))
        .expect("connecting to the test's Redis database")
}

/// Starts `hello` over the Redis database `db_url`.
pub fn start_hello_on_redis(db_url: &str) -> RunningHost {
    RunningHost::start(hello_config_on(KeyValueBackend::Redis(db_url.into())))
        .expect("starting the host on Redis")
}

/// A response as the tests see it.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }

    /// The `headers` the hello component echoed, as (name, value) pairs.
    pub fn echoed_headers(&self) -> Vec<(String, String)> {
        serde_json::from_value(self.json()["headers"].clone()).unwrap()
    }

    pub fn echoed(&self, name: &str) -> Vec<String> {
        self.echoed_headers()
            .into_iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v)
            .collect()
    }
}

/// One HTTP/1.1 request on a fresh connection.
pub fn request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    let mut stream = TcpStream::connect(addr).expect("connecting");
    let mut head = format!("{method} {target} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("reading the response");
    parse_response(&raw)
}

/// `total` `/incr?key=KEY` requests from `threads` threads at once: the
/// values they saw.
pub fn increment_in_parallel(
    addr: SocketAddr,
    key: &str,
    total: usize,
    threads: usize,
) -> BTreeSet<i64> {
    let remaining = AtomicUsize::new(total);
    let target = format!("/incr?key={key}");
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut seen = Vec::new();
                    while remaining
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                        .is_ok()
                    {
                        let reply = get(addr, &target);
                        assert_eq!(reply.status, 200);
                        seen.push(reply.json()["value"].as_i64().unwrap());
                    }
                    seen
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    })
}

pub fn get(addr: SocketAddr, target: &str) -> Reply {
    request(addr, "GET", target, &[], b"")
}

fn parse_response(raw: &[u8]) -> Reply {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let rest = &raw[split + 4..];
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_vec()
    };
    Reply {
        status,
        headers,
        body,
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n").unwrap();
        let size_text = String::from_utf8_lossy(&data[..line_end]).into_owned();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap();
        data = &data[line_end + 2..];
        if size == 0 {
            return body;
        }
        body.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}
