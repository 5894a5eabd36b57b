//! Figures measured in-process: native bcrypt at the service's cost (the
//! floor a login cannot beat), and the store calls and variable reads each
//! route makes, counted by driving the service's router with the in-memory
//! store, a manual clock, counting variables and a discarding audit sink.

use anyhow::{ensure, Context as _, Result};
use http::{Method, Request};
use secure_backend::audit::AuditSink;
use secure_backend::clock::Clock as _;
use secure_backend::clock::ManualClock;
use secure_backend::config::{ConfigError, Variables};
use secure_backend::context::Services;
use secure_backend::router;
use secure_backend::security::totp;
use secure_backend::store::{KeyValue, MemoryStore};
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub const PASSWORD: &str = "correct horse battery";
/// The password a password change alternates with.
const OTHER_PASSWORD: &str = "another good passphrase";
/// The page of `GET /admin/users` counted (its default size).
const LIST_PAGE: usize = 20;
/// The `mfa_encryption_key` of the two-factor rows.
const MFA_KEY: &str = "bench-mfa-encryption-key-0123456789abcdef";

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

    /// The hash the verifications check, made here at the service's cost:
    /// the bcrypt probe is given it too.
    pub fn stored_hash(&self) -> &str {
        &self.stored
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
    fn get(&self, name: &str) -> Result<Option<String>, ConfigError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        Ok(self.values.get(name).filter(|v| !v.is_empty()).cloned())
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
/// none is refused yet the limiter has a full history to consult. A route
/// that uses up state gets it anew before each request, by requests that
/// are not counted: a refresh presents the token the one before answered
/// with, a logout or password change a fresh login's token, an unlock a
/// user just locked, a role change a user in the other role, a deletion a
/// user just registered.
pub fn route_costs(defaults: &HashMap<String, String>, samples: usize) -> Result<Vec<RouteCost>> {
    let mut values = defaults.clone();
    values.insert("admin_bootstrap_token".into(), BOOTSTRAP.into());
    // Two-factor enrolment needs a key outside the store.
    values.insert("mfa_encryption_key".into(), MFA_KEY.into());
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
    let tick = || app.clock.advance_secs(window_secs + 1);
    // Set-up logins tick first, so the limiter never refuses one.
    let login = |name: &str, password: &str| -> Result<Tokens> {
        tick();
        let (status, body, _, _) = app.send(json_post("/auth/login", name, password, &[]));
        ensure!(
            status == 200,
            "set-up: login of {name} answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
        let json = json_body(&body)?;
        let field = |name: &str| -> Result<String> {
            Ok(json[name]
                .as_str()
                .with_context(|| format!("set-up: login gave no {name}"))?
                .to_owned())
        };
        Ok(Tokens {
            bearer: format!("Bearer {}", field("access_token")?),
            refresh: field("refresh_token")?,
        })
    };
    let register = |name: &str| -> Result<()> {
        tick();
        let res = app.send(json_post("/auth/register", name, PASSWORD, &[]));
        ensure!(
            res.0 == 201,
            "set-up: registering {name} answered {}",
            res.0
        );
        Ok(())
    };
    // Sends a set-up request (not counted) and checks its status.
    let prepare = |req: Request<Vec<u8>>, expect: u16| -> Result<Vec<u8>> {
        let what = format!("{} {}", req.method(), req.uri());
        let (status, body, _, _) = app.send(req);
        ensure!(
            status == expect,
            "set-up: {what} answered {status}, expected {expect}: {}",
            String::from_utf8_lossy(&body)
        );
        Ok(body)
    };

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
    // And one user per route that changes its account's state: bob (an
    // admin's target), carol (logs out), dave (changes password), erin
    // (refreshes), frank (gets locked).
    for name in ["alice", "mallory", "bob", "carol", "dave", "erin", "frank"] {
        register(name)?;
    }

    // The body of the last measured response (empty for a 204), for the
    // requests that follow from it.
    let last = RefCell::new(Vec::new());
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
            *last.borrow_mut() = body;
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
    let user_auth = login("alice", PASSWORD)?.bearer;
    let admin_auth = login("root", PASSWORD)?.bearer;
    measure(
        "GET /auth/protected",
        "valid token",
        200,
        samples,
        &mut |_| Ok(get("/auth/protected", &user_auth)),
        false,
    )?;
    measure(
        "GET /auth/me",
        "valid token",
        200,
        samples,
        &mut |_| Ok(get("/auth/me", &user_auth)),
        false,
    )?;
    measure(
        "GET /admin/dashboard",
        "admin token",
        200,
        samples,
        &mut |_| Ok(get("/admin/dashboard", &admin_auth)),
        false,
    )?;

    // Sessions. Each rotation presents the refresh token the one before
    // answered with (the first, a login's).
    measure(
        "POST /auth/refresh",
        "rotation",
        200,
        samples,
        &mut |i| {
            let token = if i == 0 {
                login("erin", PASSWORD)?.refresh
            } else {
                json_body(&last.borrow())?["refresh_token"]
                    .as_str()
                    .context("refresh gave no refresh_token")?
                    .to_owned()
            };
            Ok(refresh(&token))
        },
        false,
    )?;
    measure(
        "POST /auth/refresh",
        "reuse of a spent token",
        401,
        samples,
        &mut |_| {
            // A fresh session whose first token is already spent.
            let spent = login("erin", PASSWORD)?.refresh;
            prepare(refresh(&spent), 200)?;
            Ok(refresh(&spent))
        },
        false,
    )?;
    for (path, what) in [
        ("/auth/logout", "local, a fresh login each"),
        (
            "/auth/logout?scope=global",
            "scope=global, a fresh login each",
        ),
        (
            "/auth/logout?scope=others",
            "scope=others, a fresh login each",
        ),
    ] {
        measure(
            "POST /auth/logout",
            what,
            204,
            samples,
            &mut |_| {
                let carol = login("carol", PASSWORD)?;
                Ok(request(
                    Method::POST,
                    path,
                    &[("authorization", &carol.bearer)],
                    "",
                ))
            },
            false,
        )?;
    }
    measure(
        "POST /auth/password",
        "two passwords in turn, a fresh login each",
        204,
        samples,
        &mut |i| {
            let (current, new) = match i % 2 {
                0 => (PASSWORD, OTHER_PASSWORD),
                _ => (OTHER_PASSWORD, PASSWORD),
            };
            let dave = login("dave", current)?;
            let body = serde_json::json!({"current_password": current, "new_password": new});
            Ok(request(
                Method::POST,
                "/auth/password",
                &[
                    ("authorization", &dave.bearer),
                    ("content-type", "application/json"),
                ],
                &body.to_string(),
            ))
        },
        false,
    )?;
    if samples % 2 == 1 {
        // Back to the password every other row logs in with.
        let dave = login("dave", OTHER_PASSWORD)?;
        let body =
            serde_json::json!({"current_password": OTHER_PASSWORD, "new_password": PASSWORD});
        prepare(
            request(
                Method::POST,
                "/auth/password",
                &[
                    ("authorization", &dave.bearer),
                    ("content-type", "application/json"),
                ],
                &body.to_string(),
            ),
            204,
        )?;
    }

    // Two-factor login: grace enrols, then logs in in two steps.
    register("grace")?;
    let grace = login("grace", PASSWORD)?;
    let auth = [("authorization", grace.bearer.as_str())];
    let enrolment = prepare(
        request(Method::POST, "/auth/mfa/totp/enroll", &auth, ""),
        200,
    )?;
    let secret = json_body(&enrolment)?["secret"]
        .as_str()
        .and_then(totp::decode_secret)
        .context("set-up: enrolment gave no secret")?;
    let code_now = || totp::code_at(&secret, app.clock.now_secs() / totp::STEP_SECS);
    let confirm = serde_json::json!({ "code": code_now() });
    let with_body = [auth[0], ("content-type", "application/json")];
    prepare(
        request(
            Method::POST,
            "/auth/mfa/totp/confirm",
            &with_body,
            &confirm.to_string(),
        ),
        200,
    )?;
    measure(
        "POST /auth/login",
        "two-factor on: the password step",
        200,
        samples,
        &mut |_| Ok(json_post("/auth/login", "grace", PASSWORD, &[])),
        true,
    )?;
    measure(
        "POST /auth/mfa/verify",
        "a TOTP code, a fresh password step each",
        200,
        samples,
        &mut |_| {
            let challenge = prepare(json_post("/auth/login", "grace", PASSWORD, &[]), 200)?;
            let token = json_body(&challenge)?["mfa_token"]
                .as_str()
                .context("set-up: no mfa_token")?
                .to_owned();
            // Each sample is a window later (`tick`), so each code is fresh.
            let body = serde_json::json!({ "mfa_token": token, "code": code_now() });
            Ok(request(
                Method::POST,
                "/auth/mfa/verify",
                &[("content-type", "application/json")],
                &body.to_string(),
            ))
        },
        true,
    )?;

    // The admin's user routes. A page of the list reads three keys per
    // position: fill more than a page, with no deleted account among them.
    for i in 0..=LIST_PAGE {
        register(&format!("listed{i}"))?;
    }
    let admin_auth = login("root", PASSWORD)?.bearer;
    measure(
        "GET /admin/users",
        "limit=20, the first page of more than 20 users",
        200,
        samples,
        &mut |_| Ok(get(&format!("/admin/users?limit={LIST_PAGE}"), &admin_auth)),
        false,
    )?;
    {
        let page = json_body(&last.borrow())?;
        let users = page["users"].as_array().map_or(0, Vec::len);
        ensure!(
            users == LIST_PAGE && page["next_cursor"].is_string(),
            "GET /admin/users?limit={LIST_PAGE} gave {users} users and next_cursor {}: not a full page of more",
            page["next_cursor"]
        );
    }
    measure(
        "GET /admin/users/{name}",
        "a user who has logged in",
        200,
        samples,
        &mut |_| Ok(get("/admin/users/alice", &admin_auth)),
        false,
    )?;
    // The admin's POSTs, PUTs and DELETEs set up with logins, which move
    // the clock: a fresh admin token for each.
    measure(
        "POST /admin/users/{name}/sessions/revoke",
        "a user with a live session",
        204,
        samples,
        &mut |_| {
            login("bob", PASSWORD)?;
            let admin = login("root", PASSWORD)?;
            Ok(admin_call(
                Method::POST,
                "/admin/users/bob/sessions/revoke",
                &admin,
                None,
            ))
        },
        false,
    )?;
    measure(
        "POST /admin/users/{name}/unlock",
        "a locked user, locked again each time",
        204,
        samples,
        &mut |_| {
            for _ in 0..values_threshold {
                let (status, ..) = {
                    tick();
                    app.send(json_post("/auth/login", "frank", "wrong password!", &[]))
                };
                ensure!(status == 401, "set-up: failed login answered {status}");
            }
            tick();
            let (status, ..) = app.send(json_post("/auth/login", "frank", PASSWORD, &[]));
            ensure!(status == 423, "set-up: frank is not locked ({status})");
            let admin = login("root", PASSWORD)?;
            Ok(admin_call(
                Method::POST,
                "/admin/users/frank/unlock",
                &admin,
                None,
            ))
        },
        false,
    )?;
    // Unlocked before: a lock record that has run out, as after any lock.
    let admin = login("root", PASSWORD)?;
    prepare(
        admin_call(Method::POST, "/admin/users/bob/unlock", &admin, None),
        204,
    )?;
    measure(
        "POST /admin/users/{name}/unlock",
        "a user not locked, unlocked before",
        204,
        samples,
        &mut |_| {
            let admin = login("root", PASSWORD)?;
            Ok(admin_call(
                Method::POST,
                "/admin/users/bob/unlock",
                &admin,
                None,
            ))
        },
        false,
    )?;
    for (what, from, to) in [
        ("promote: user → admin", "user", "admin"),
        ("demote: admin → user", "admin", "user"),
    ] {
        measure(
            "PUT /admin/users/{name}/role",
            what,
            200,
            samples,
            &mut |_| {
                let admin = login("root", PASSWORD)?;
                prepare(
                    admin_call(
                        Method::PUT,
                        "/admin/users/bob/role",
                        &admin,
                        Some(serde_json::json!({ "role": from })),
                    ),
                    200,
                )?;
                Ok(admin_call(
                    Method::PUT,
                    "/admin/users/bob/role",
                    &admin,
                    Some(serde_json::json!({ "role": to })),
                ))
            },
            false,
        )?;
    }
    measure(
        "DELETE /admin/users/{name}",
        "a fresh user with one session each time",
        204,
        samples,
        &mut |i| {
            let name = format!("doomed{i}");
            register(&name)?;
            login(&name, PASSWORD)?;
            let admin = login("root", PASSWORD)?;
            Ok(admin_call(
                Method::DELETE,
                &format!("/admin/users/{name}"),
                &admin,
                None,
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
        "GET /openapi.json",
        "",
        200,
        samples,
        &mut |_| Ok(request(Method::GET, "/openapi.json", &[], "")),
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

/// The tokens a login answers with.
struct Tokens {
    /// `Bearer <access token>`, ready for the header.
    bearer: String,
    refresh: String,
}

/// A response body as JSON; an empty one (a 204) is `null`.
fn json_body(body: &[u8]) -> Result<serde_json::Value> {
    if body.is_empty() {
        return Ok(serde_json::Value::Null);
    }
    serde_json::from_slice(body).with_context(|| {
        format!(
            "response body is not JSON: {}",
            String::from_utf8_lossy(body)
        )
    })
}

fn get(path: &str, bearer: &str) -> Request<Vec<u8>> {
    request(Method::GET, path, &[("authorization", bearer)], "")
}

fn refresh(token: &str) -> Request<Vec<u8>> {
    let body = serde_json::json!({ "refresh_token": token });
    request(
        Method::POST,
        "/auth/refresh",
        &[("content-type", "application/json")],
        &body.to_string(),
    )
}

fn admin_call(
    method: Method,
    path: &str,
    admin: &Tokens,
    body: Option<serde_json::Value>,
) -> Request<Vec<u8>> {
    match body {
        Some(body) => request(
            method,
            path,
            &[
                ("authorization", &admin.bearer),
                ("content-type", "application/json"),
            ],
            &body.to_string(),
        ),
        None => request(method, path, &[("authorization", &admin.bearer)], ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every row's request answers as the row expects (each `measure` and
    /// set-up step checks its status), so a change of the API that breaks a
    /// row fails here, not in the next benchmark run.
    #[test]
    fn every_route_cost_row_answers_as_expected() {
        let defaults = HashMap::from([("bcrypt_cost".to_owned(), "4".to_owned())]);
        let rows = route_costs(&defaults, 2).unwrap();
        for route in [
            "POST /auth/login",
            "POST /auth/mfa/verify",
            "GET /auth/protected",
        ] {
            assert!(rows.iter().any(|r| r.route == route), "no row for {route}");
        }
    }
}
