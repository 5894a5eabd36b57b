//! Figures measured in-process: native bcrypt at the service's cost (the
//! floor a login cannot beat), and the store calls and variable reads each
//! route makes, counted by driving the service's router with the in-memory
//! store, a manual clock, counting variables and a discarding audit sink.

use anyhow::{ensure, Context as _, Result};
use http::{Method, Request};
use secure_backend::audit::AuditSink;
use secure_backend::clock::ManualClock;
use secure_backend::config::Variables;
use secure_backend::context::Services;
use secure_backend::router;
use secure_backend::store::{KeyValue, MemoryStore};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub const PASSWORD: &str = "correct horse battery";

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}

pub struct Bcrypt {
    pub cost: u32,
    pub verify: Duration,
    pub hash: Duration,
    pub verifies: usize,
    pub hashes: usize,
}

/// Times native bcrypt in batches, so that samples can be taken between
/// the service's own logins (the machine's load then weighs on both alike).
pub struct BcryptTimer {
    cost: u32,
    stored: String,
    verifies: Vec<Duration>,
    hashes: Vec<Duration>,
}

impl BcryptTimer {
    pub fn new(cost: u32) -> Result<Self> {
        let stored = bcrypt::hash(PASSWORD, cost)?;
        ensure!(bcrypt::verify(PASSWORD, &stored)?, "bcrypt does not verify");
        Ok(Self {
            cost,
            stored,
            verifies: Vec::new(),
            hashes: Vec::new(),
        })
    }

    pub fn verify(&mut self, n: usize) -> Result<()> {
        for _ in 0..n {
            let start = Instant::now();
            ensure!(
                bcrypt::verify(PASSWORD, &self.stored)?,
                "bcrypt does not verify"
            );
            self.verifies.push(start.elapsed());
        }
        Ok(())
    }

    pub fn hash(&mut self, n: usize) -> Result<()> {
        for _ in 0..n {
            let start = Instant::now();
            bcrypt::hash(PASSWORD, self.cost)?;
            self.hashes.push(start.elapsed());
        }
        Ok(())
    }

    /// Medians of every sample so far.
    pub fn summary(&self) -> Bcrypt {
        Bcrypt {
            cost: self.cost,
            verify: median(self.verifies.clone()),
            hash: median(self.hashes.clone()),
            verifies: self.verifies.len(),
            hashes: self.hashes.len(),
        }
    }
}

/// Store calls of one request, by operation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreOps {
    pub get: usize,
    pub set: usize,
    pub delete: usize,
    pub increment: usize,
}

impl StoreOps {
    pub fn total(&self) -> usize {
        self.get + self.set + self.delete + self.increment
    }
}

/// The in-memory store, counting each kind of call.
#[derive(Default)]
struct CountingStore {
    inner: MemoryStore,
    get: AtomicUsize,
    set: AtomicUsize,
    delete: AtomicUsize,
    increment: AtomicUsize,
}

impl CountingStore {
    fn ops(&self) -> StoreOps {
        StoreOps {
            get: self.get.load(Ordering::SeqCst),
            set: self.set.load(Ordering::SeqCst),
            delete: self.delete.load(Ordering::SeqCst),
            increment: self.increment.load(Ordering::SeqCst),
        }
    }
}

impl KeyValue for CountingStore {
    fn get(&self, key: &str) -> anyhow::Result<Option<Vec<u8>>> {
        self.get.fetch_add(1, Ordering::SeqCst);
        self.inner.get(key)
    }
    fn set(&self, key: &str, value: &[u8]) -> anyhow::Result<()> {
        self.set.fetch_add(1, Ordering::SeqCst);
        self.inner.set(key, value)
    }
    fn delete(&self, key: &str) -> anyhow::Result<()> {
        self.delete.fetch_add(1, Ordering::SeqCst);
        self.inner.delete(key)
    }
    fn increment(&self, key: &str, delta: i64) -> anyhow::Result<i64> {
        self.increment.fetch_add(1, Ordering::SeqCst);
        self.inner.increment(key, delta)
    }
}

/// Spin variables from a map, counting every read (set or not: Spin
/// resolves each one through its provider chain either way).
struct CountingVariables {
    values: HashMap<String, String>,
    reads: AtomicUsize,
}

impl Variables for CountingVariables {
    fn get(&self, name: &str) -> Option<String> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.values.get(name).filter(|v| !v.is_empty()).cloned()
    }
}

struct Discard;

impl AuditSink for Discard {
    fn write_line(&self, _line: &str) {}
}

/// What one route costs per request, over several requests.
pub struct RouteCost {
    pub route: &'static str,
    pub request: &'static str,
    pub status: u16,
    /// Fewest and most store calls seen (they can vary with the limiter's state).
    pub store: (StoreOps, StoreOps),
    pub variable_reads: (usize, usize),
    pub samples: usize,
    /// Median time of the handler run natively (in-memory store, no Wasm).
    pub native_time: Duration,
}

struct App {
    store: CountingStore,
    clock: ManualClock,
    vars: CountingVariables,
}

const BOOTSTRAP: &str = "bench-bootstrap-token-0123456789";
/// 2026-11-27T00:00:00Z
const START_MS: u64 = 1_795_737_600_000;

impl App {
    fn send(&self, req: Request<Vec<u8>>) -> (u16, Vec<u8>, StoreOps, usize) {
        let (ops, reads) = (self.store.ops(), self.vars.reads.load(Ordering::SeqCst));
        let services = Services {
            store: &self.store,
            clock: &self.clock,
            audit: &Discard,
            variables: &self.vars,
        };
        let response = router::handle(req, services);
        let after = self.store.ops();
        let used = StoreOps {
            get: after.get - ops.get,
            set: after.set - ops.set,
            delete: after.delete - ops.delete,
            increment: after.increment - ops.increment,
        };
        let reads = self.vars.reads.load(Ordering::SeqCst) - reads;
        (
            response.status().as_u16(),
            response.into_body(),
            used,
            reads,
        )
    }
}

fn request(method: Method, path: &str, headers: &[(&str, &str)], body: &str) -> Request<Vec<u8>> {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        // As Spin delivers it: the peer's address and port.
        .header("spin-client-addr", "203.0.113.7:40000");
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    req.body(body.as_bytes().to_vec()).expect("a valid request")
}

fn json_post(
    path: &str,
    username: &str,
    password: &str,
    extra: &[(&str, &str)],
) -> Request<Vec<u8>> {
    let mut headers = vec![("content-type", "application/json")];
    headers.extend_from_slice(extra);
    let body = serde_json::json!({ "username": username, "password": password });
    request(Method::POST, path, &headers, &body.to_string())
}

/// Counts store calls and variable reads per route with the manifest's
/// default variables (plus a bootstrap token, to create the admin the
/// dashboard needs). Each route is requested `samples` times in steady
/// state; between POSTs the clock moves past the rate-limit window, so
/// none is refused yet the limiter has a full history to consult.
pub fn route_costs(defaults: &HashMap<String, String>, samples: usize) -> Result<Vec<RouteCost>> {
    let mut values = defaults.clone();
    values.insert("admin_bootstrap_token".into(), BOOTSTRAP.into());
    let window_secs = ["login_rate_window_seconds", "register_rate_window_seconds"]
        .iter()
        .filter_map(|name| values.get(*name)?.parse::<u64>().ok())
        .max()
        .unwrap_or(60);
    let values_threshold = values
        .get("lockout_threshold")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(5);
    let app = App {
        store: CountingStore::default(),
        clock: ManualClock::at(START_MS),
        vars: CountingVariables {
            values,
            reads: AtomicUsize::new(0),
        },
    };
    let token_of = |(status, body, _, _): (u16, Vec<u8>, StoreOps, usize)| -> Result<String> {
        ensure!(status == 200, "set-up login answered {status}");
        let json: serde_json::Value = serde_json::from_slice(&body)?;
        Ok(json["access_token"]
            .as_str()
            .context("no access_token")?
            .to_owned())
    };
    let tick = || app.clock.advance_secs(window_secs + 1);

    // Set-up: an admin, a user who logs in, a user who fails to.
    let admin_body = serde_json::json!({"username": "root", "password": PASSWORD, "role": "admin"});
    let admin = app.send(request(
        Method::POST,
        "/auth/register",
        &[
            ("content-type", "application/json"),
            ("x-bootstrap-token", BOOTSTRAP),
        ],
        &admin_body.to_string(),
    ));
    ensure!(
        admin.0 == 201,
        "set-up: admin registration answered {}",
        admin.0
    );
    for name in ["alice", "mallory"] {
        tick();
        let res = app.send(json_post("/auth/register", name, PASSWORD, &[]));
        ensure!(
            res.0 == 201,
            "set-up: registering {name} answered {}",
            res.0
        );
    }

    let mut costs = Vec::new();
    let mut measure = |route: &'static str,
                       what: &'static str,
                       expect: u16,
                       samples: usize,
                       make: &mut dyn FnMut(usize) -> Result<Request<Vec<u8>>>,
                       post: bool|
     -> Result<()> {
        let mut seen: Vec<(StoreOps, usize)> = Vec::new();
        let mut times = Vec::new();
        for i in 0..samples {
            if post {
                tick();
            }
            let req = make(i)?;
            let start = Instant::now();
            let (status, body, ops, reads) = app.send(req);
            times.push(start.elapsed());
            ensure!(
                status == expect,
                "{route} ({what}) answered {status}, expected {expect}: {}",
                String::from_utf8_lossy(&body)
            );
            seen.push((ops, reads));
        }
        let by_total =
            |a: &&(StoreOps, usize), b: &&(StoreOps, usize)| a.0.total().cmp(&b.0.total());
        costs.push(RouteCost {
            route,
            request: what,
            status: expect,
            store: (
                seen.iter().min_by(by_total).context("no samples")?.0,
                seen.iter().max_by(by_total).context("no samples")?.0,
            ),
            variable_reads: (
                seen.iter().map(|s| s.1).min().unwrap_or(0),
                seen.iter().map(|s| s.1).max().unwrap_or(0),
            ),
            samples: seen.len(),
            native_time: median(times),
        });
        Ok(())
    };

    // Failures stay below the lockout threshold, so none locks: the lock
    // path is rarer and dearer, the common failure is what is counted here.
    let failures = values_threshold.saturating_sub(1).clamp(1, samples);
    measure(
        "POST /auth/register",
        "new user",
        201,
        samples,
        &mut |i| {
            Ok(json_post(
                "/auth/register",
                &format!("newuser{i}"),
                PASSWORD,
                &[],
            ))
        },
        true,
    )?;
    measure(
        "POST /auth/login",
        "success",
        200,
        samples,
        &mut |_| Ok(json_post("/auth/login", "alice", PASSWORD, &[])),
        true,
    )?;
    measure(
        "POST /auth/login",
        "wrong password",
        401,
        failures,
        &mut |_| Ok(json_post("/auth/login", "mallory", "wrong password!", &[])),
        true,
    )?;
    measure(
        "POST /auth/login",
        "unknown user",
        401,
        failures,
        &mut |_| Ok(json_post("/auth/login", "nobody", PASSWORD, &[])),
        true,
    )?;
    // Fresh tokens: the clock has moved a lot.
    let user = token_of(app.send(json_post("/auth/login", "alice", PASSWORD, &[])))?;
    let admin = token_of(app.send(json_post("/auth/login", "root", PASSWORD, &[])))?;
    let user_auth = format!("Bearer {user}");
    let admin_auth = format!("Bearer {admin}");
    measure(
        "GET /auth/protected",
        "valid token",
        200,
        samples,
        &mut |_| {
            Ok(request(
                Method::GET,
                "/auth/protected",
                &[("authorization", &user_auth)],
                "",
            ))
        },
        false,
    )?;
    measure(
        "GET /admin/dashboard",
        "admin token",
        200,
        samples,
        &mut |_| {
            Ok(request(
                Method::GET,
                "/admin/dashboard",
                &[("authorization", &admin_auth)],
                "",
            ))
        },
        false,
    )?;
    measure(
        "GET /health",
        "",
        200,
        samples,
        &mut |_| Ok(request(Method::GET, "/health", &[], "")),
        false,
    )?;
    measure(
        "GET /nope",
        "unknown path",
        404,
        samples,
        &mut |_| Ok(request(Method::GET, "/nope", &[], "")),
        false,
    )?;
    measure(
        "GET /auth/login",
        "wrong method",
        405,
        samples,
        &mut |_| Ok(request(Method::GET, "/auth/login", &[], "")),
        false,
    )?;
    Ok(costs)
}
