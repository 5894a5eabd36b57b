//! Drives the API through its router with real `http::Request`s, against the
//! in-memory store and a clock that moves only when told to.
#![allow(dead_code)]

use http::{HeaderMap, Method, Request};
use secure_backend::audit::Recorder;
use secure_backend::clock::ManualClock;
use secure_backend::config::{ConfigError, Variables};
use secure_backend::context::Services;
use secure_backend::domain::{User, Username};
use secure_backend::router;
use secure_backend::store::{KeyValue, MemoryStore};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::ops::{Deref, DerefMut};
use std::sync::Barrier;
use std::sync::{Arc, Mutex};

/// 2026-11-27T00:00:00Z
pub const START_MS: u64 = 1_795_737_600_000;
pub const PASSWORD: &str = "correct horse battery";
pub const BOOTSTRAP: &str = "bootstrap-token-for-tests-0123456789";

pub struct TestApp {
    pub store: MemoryStore,
    pub clock: ManualClock,
    pub audit: Recorder,
    pub vars: TestVars,
}

/// Variables from a map, recording every read (each is a host call in Spin).
#[derive(Clone, Default)]
pub struct TestVars {
    map: HashMap<String, String>,
    reads: Arc<Mutex<Vec<String>>>,
    /// Names whose reads fail, as a Spin variables provider can (an outage,
    /// a secret store refusing): not the same as unset.
    unreadable: HashSet<String>,
}

impl TestVars {
    /// Makes every later read of `name` fail, whatever its value.
    pub fn make_unreadable(&mut self, name: &str) {
        self.unreadable.insert(name.to_owned());
    }
}

impl Deref for TestVars {
    type Target = HashMap<String, String>;
    fn deref(&self) -> &Self::Target {
        &self.map
    }
}

impl DerefMut for TestVars {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.map
    }
}

impl Variables for TestVars {
    fn get(&self, name: &str) -> Result<Option<String>, ConfigError> {
        self.reads.lock().unwrap().push(name.to_owned());
        if self.unreadable.contains(name) {
            return Err(ConfigError::unreadable(name, "provider error: test outage"));
        }
        Variables::get(&self.map, name)
    }
}

pub struct TestResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub raw: Vec<u8>,
    pub body: Value,
}

impl TestResponse {
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    pub fn token(&self) -> String {
        self.body["access_token"]
            .as_str()
            .expect("response has an access_token")
            .to_owned()
    }

    pub fn refresh_token(&self) -> String {
        self.body["refresh_token"]
            .as_str()
            .expect("response has a refresh_token")
            .to_owned()
    }
}

impl Default for TestApp {
    fn default() -> Self {
        Self::new()
    }
}

impl TestApp {
    /// bcrypt at its minimum cost: the cost itself is not what most tests test.
    pub fn new() -> Self {
        Self::with_vars(&[])
    }

    /// For tests of something other than the rate limits: many logins and
    /// registrations from one address.
    pub fn unthrottled(pairs: &[(&str, &str)]) -> Self {
        let mut vars = vec![
            ("login_rate_limit", "1000"),
            ("register_rate_limit", "1000"),
        ];
        vars.extend_from_slice(pairs);
        Self::with_vars(&vars)
    }

    pub fn with_vars(pairs: &[(&str, &str)]) -> Self {
        let mut vars: HashMap<String, String> = HashMap::from([
            ("bcrypt_cost".into(), "4".into()),
            ("admin_bootstrap_token".into(), BOOTSTRAP.into()),
        ]);
        for (k, v) in pairs {
            vars.insert(k.to_string(), v.to_string());
        }
        Self {
            store: MemoryStore::new(),
            clock: ManualClock::at(START_MS),
            audit: Recorder::default(),
            vars: TestVars {
                map: vars,
                ..Default::default()
            },
        }
    }

    /// How many store calls `f` makes (each is a host round trip in Spin).
    pub fn store_calls(&self, f: impl FnOnce()) -> usize {
        let before = self.store.calls();
        f();
        self.store.calls() - before
    }

    /// The variables `f` reads, in order (each is a host call in Spin).
    pub fn variable_reads(&self, f: impl FnOnce()) -> Vec<String> {
        let before = self.vars.reads.lock().unwrap().len();
        f();
        self.vars.reads.lock().unwrap()[before..].to_vec()
    }

    pub fn send(&self, req: Request<Vec<u8>>) -> TestResponse {
        self.send_through(&self.store, req)
    }

    /// Serves `req` with `store` in place of the app's own (a wrapper that
    /// delays or drops chosen calls, say).
    pub fn send_through(&self, store: &dyn KeyValue, req: Request<Vec<u8>>) -> TestResponse {
        let services = Services {
            store,
            clock: &self.clock,
            audit: &self.audit,
            variables: &self.vars,
        };
        let response = router::handle(req, services);
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let raw = response.into_body();
        // Every response is JSON, except a 204's, which has no body at all.
        let body = if status == 204 {
            assert!(raw.is_empty(), "a 204 has no body");
            assert!(headers.get("content-type").is_none(), "a 204 has no type");
            Value::Null
        } else {
            serde_json::from_slice(&raw).expect("every response is JSON")
        };
        TestResponse {
            status,
            headers,
            raw,
            body,
        }
    }

    /// A request from `ip`, as Spin would deliver it.
    pub fn request(&self, method: Method, path: &str, ip: &str) -> http::request::Builder {
        Request::builder()
            .method(method)
            .uri(path)
            .header("spin-client-addr", format!("{ip}:40000"))
    }

    pub fn post_json(&self, path: &str, body: &Value, ip: &str) -> TestResponse {
        self.send(
            self.request(Method::POST, path, ip)
                .header("content-type", "application/json")
                .body(body.to_string().into_bytes())
                .unwrap(),
        )
    }

    pub fn get(&self, path: &str, token: Option<&str>) -> TestResponse {
        let mut req = self.request(Method::GET, path, "192.0.2.1");
        if let Some(token) = token {
            req = req.header("authorization", format!("Bearer {token}"));
        }
        self.send(req.body(Vec::new()).unwrap())
    }

    pub fn register(&self, username: &str, password: &str) -> TestResponse {
        self.register_from(username, password, "192.0.2.10")
    }

    pub fn register_from(&self, username: &str, password: &str, ip: &str) -> TestResponse {
        self.post_json(
            "/auth/register",
            &json!({ "username": username, "password": password }),
            ip,
        )
    }

    pub fn register_admin(&self, username: &str) -> TestResponse {
        self.send(
            self.request(Method::POST, "/auth/register", "192.0.2.11")
                .header("content-type", "application/json")
                .header("x-bootstrap-token", BOOTSTRAP)
                .body(
                    json!({ "username": username, "password": PASSWORD, "role": "admin" })
                        .to_string()
                        .into_bytes(),
                )
                .unwrap(),
        )
    }

    pub fn login(&self, username: &str, password: &str) -> TestResponse {
        self.login_from(username, password, "192.0.2.20")
    }

    pub fn login_from(&self, username: &str, password: &str, ip: &str) -> TestResponse {
        self.post_json(
            "/auth/login",
            &json!({ "username": username, "password": password }),
            ip,
        )
    }

    /// Any request, with a Bearer token and a JSON body when given.
    pub fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> TestResponse {
        self.call_through(&self.store, method, path, token, body)
    }

    /// [`TestApp::call`], with `store` in place of the app's own.
    pub fn call_through(
        &self,
        store: &dyn KeyValue,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> TestResponse {
        let mut req = self.request(method, path, "192.0.2.1");
        if let Some(token) = token {
            req = req.header("authorization", format!("Bearer {token}"));
        }
        let bytes = match body {
            Some(body) => {
                req = req.header("content-type", "application/json");
                body.to_string().into_bytes()
            }
            None => Vec::new(),
        };
        self.send_through(store, req.body(bytes).unwrap())
    }

    /// POST /auth/refresh with `refresh_token`.
    pub fn refresh(&self, refresh_token: &str) -> TestResponse {
        self.post_json(
            "/auth/refresh",
            &json!({ "refresh_token": refresh_token }),
            "192.0.2.30",
        )
    }

    /// Registers `username` and returns a fresh token for it.
    pub fn user_token(&self, username: &str) -> String {
        assert_eq!(self.register(username, PASSWORD).status, 201);
        let login = self.login(username, PASSWORD);
        assert_eq!(login.status, 200, "{}", login.body);
        login.token()
    }

    pub fn admin_token(&self, username: &str) -> String {
        let reg = self.register_admin(username);
        assert_eq!(reg.status, 201, "{}", reg.body);
        let login = self.login(username, PASSWORD);
        assert_eq!(login.status, 200, "{}", login.body);
        login.token()
    }

    pub fn audit_events(&self) -> Vec<Value> {
        self.audit
            .lines()
            .iter()
            .map(|l| serde_json::from_str(l).expect("audit line is JSON"))
            .collect()
    }

    pub fn events_named(&self, name: &str) -> Vec<Value> {
        self.audit_events()
            .into_iter()
            .filter(|e| e["event"] == name)
            .collect()
    }
}

/// One session's tokens, as login or refresh handed them out.
#[derive(Clone, Debug)]
pub struct Pair {
    pub access: String,
    pub refresh: String,
}

/// The tokens of a 200 from login or refresh.
pub fn pair(res: &TestResponse) -> Pair {
    assert_eq!(res.status, 200, "{}", res.body);
    Pair {
        access: res.token(),
        refresh: res.refresh_token(),
    }
}

/// A 204: no body at all.
pub fn assert_no_content(res: &TestResponse) {
    assert_eq!(res.status, 204, "body: {}", res.body);
    assert!(res.raw.is_empty(), "a 204 has no body: {:?}", res.raw);
}

pub fn assert_access_works(app: &TestApp, access: &str, what: &str) {
    let res = app.get("/auth/protected", Some(access));
    assert_eq!(res.status, 200, "{what}: {}", res.body);
}

pub fn assert_access_refused(app: &TestApp, access: &str, what: &str) {
    let res = app.get("/auth/protected", Some(access));
    assert_eq!(res.status, 401, "{what}: {}", res.body);
    assert_error(&res, 401, "invalid_token");
}

pub fn assert_refresh_works(app: &TestApp, token: &str, what: &str) -> Pair {
    let res = app.refresh(token);
    assert_eq!(res.status, 200, "{what}: {}", res.body);
    pair(&res)
}

pub fn assert_refresh_refused(app: &TestApp, token: &str, what: &str) {
    let res = app.refresh(token);
    assert_eq!(res.status, 401, "{what}: {}", res.body);
    assert_error(&res, 401, "invalid_token");
}

/// Every error body has exactly this shape.
pub fn assert_error(res: &TestResponse, status: u16, code: &str) {
    assert_eq!(res.status, status, "body: {}", res.body);
    assert_eq!(res.code(), code, "body: {}", res.body);
    let error = res.body["error"].as_object().expect("error object");
    assert_eq!(
        res.body.as_object().unwrap().len(),
        1,
        "only `error`: {}",
        res.body
    );
    assert_eq!(error.len(), 2, "only code and message: {}", res.body);
    assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
}

/// Runs `f(i)` on `n` threads released at once, and returns the results.
pub fn in_parallel<T: Send>(n: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let barrier = Barrier::new(n);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let (f, barrier) = (&f, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    f(i)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

impl TestApp {
    /// Rewrites a stored user record, as an admin tool or a later feature would.
    pub fn edit_user(&self, name: &str, edit: impl FnOnce(&mut User)) {
        let key = User::key(&Username::parse(name).unwrap());
        let mut user: User =
            serde_json::from_slice(&self.store.get(&key).unwrap().unwrap()).unwrap();
        edit(&mut user);
        self.store
            .set(&key, &serde_json::to_vec(&user).unwrap())
            .unwrap();
    }
}

/// Every audit line carries these fields (`username` and `reason` where they apply).
pub fn assert_audit_fields(event: &Value) {
    for field in [
        "ts",
        "event",
        "outcome",
        "client_ip",
        "request_id",
        "method",
        "path",
    ] {
        assert!(event.get(field).is_some(), "{field} missing: {event}");
    }
}

/// The app's store, with `before` run ahead of every `increment` (its key
/// and delta): a test holds or steers one chosen step of a request there.
pub struct BeforeIncrement<'a, F: Fn(&str, i64) + Sync> {
    pub inner: &'a MemoryStore,
    pub before: F,
}

impl<F: Fn(&str, i64) + Sync> KeyValue for BeforeIncrement<'_, F> {
    fn get(&self, key: &str) -> anyhow::Result<Option<Vec<u8>>> {
        self.inner.get(key)
    }
    fn set(&self, key: &str, value: &[u8]) -> anyhow::Result<()> {
        self.inner.set(key, value)
    }
    fn delete(&self, key: &str) -> anyhow::Result<()> {
        self.inner.delete(key)
    }
    fn increment(&self, key: &str, delta: i64) -> anyhow::Result<i64> {
        (self.before)(key, delta);
        self.inner.increment(key, delta)
    }
}
