//! The service as `tests/common` builds it: the in-memory store, a manual
//! clock, an audit recorder and variables from a map, bcrypt at its minimum
//! cost (4) so that a login costs about a millisecond. One user and one
//! admin are registered and logged in once; each input then gets a fresh
//! copy of that store, so no input sees another's effects.

use ct_codecs::{Base64UrlSafeNoPadding, Decoder};
use http::{Method, Request, Response};
use secure_backend::audit::Recorder;
use secure_backend::clock::ManualClock;
use secure_backend::context::Services;
use secure_backend::router;
use secure_backend::store::{KeyValue, MemoryStore};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};

/// 2026-11-27T00:00:00Z, as in `tests/common`: the fixture's logins happen then.
pub const START_MS: u64 = 1_795_737_600_000;
/// When every input starts: a second after the logins, so their tokens are live.
pub const NOW_MS: u64 = START_MS + 1_000;
pub const PASSWORD: &str = "correct horse battery";
pub const BOOTSTRAP: &str = "bootstrap-token-for-tests-0123456789";
/// The signing key of the token target (set as `jwt_secret`), so its seed
/// tokens verify in every run.
pub const JWT_SECRET: &str = "fuzz-only-signing-secret-0123456789abcdef";
pub const USER: &str = "alice";
pub const ADMIN: &str = "root";
/// Where fuzzed requests come from; the fixture's own requests use other
/// addresses, so every rate limit starts from zero for the fuzzer.
pub const CLIENT_ADDR: &str = "198.51.100.7:40000";

/// One login's tokens, and what its access token says about the account.
pub struct Session {
    pub access: String,
    pub refresh: String,
    pub account_id: String,
    pub session: u64,
}

/// The prepared store, and the variables every input runs with.
pub struct Fixture {
    vars: HashMap<String, String>,
    snapshot: BTreeMap<String, Vec<u8>>,
    pub user: Session,
    pub admin: Session,
}

/// What one input runs against.
pub struct World {
    pub store: MemoryStore,
    pub clock: ManualClock,
    pub audit: Recorder,
    vars: HashMap<String, String>,
}

impl Fixture {
    /// `bcrypt_cost` 4 and the bootstrap token, plus `extra` variables.
    pub fn new(extra: &[(&str, &str)]) -> Self {
        let mut vars: HashMap<String, String> = HashMap::from([
            ("bcrypt_cost".into(), "4".into()),
            ("admin_bootstrap_token".into(), BOOTSTRAP.into()),
        ]);
        for (name, value) in extra {
            vars.insert((*name).into(), (*value).into());
        }
        let world = World {
            store: MemoryStore::new(),
            clock: ManualClock::at(START_MS),
            audit: Recorder::default(),
            vars: vars.clone(),
        };
        let credentials = json!({ "username": USER, "password": PASSWORD });
        world.setup(201, "/auth/register", "192.0.2.10:1", None, &credentials);
        let admin = json!({ "username": ADMIN, "password": PASSWORD, "role": "admin" });
        world.setup(
            201,
            "/auth/register",
            "192.0.2.11:1",
            Some(BOOTSTRAP),
            &admin,
        );
        let user = world.login(USER);
        let admin = world.login(ADMIN);
        Self {
            vars,
            snapshot: world.store.snapshot(),
            user,
            admin,
        }
    }

    /// A fresh copy of the prepared store, the clock at [`NOW_MS`].
    pub fn world(&self) -> World {
        let store = MemoryStore::new();
        for (key, value) in &self.snapshot {
            store
                .set(key, value)
                .expect("the memory store accepts every write");
        }
        World {
            store,
            clock: ManualClock::at(NOW_MS),
            audit: Recorder::default(),
            vars: self.vars.clone(),
        }
    }
}

impl World {
    pub fn send(&self, req: Request<Vec<u8>>) -> Response<Vec<u8>> {
        let services = Services {
            store: &self.store,
            clock: &self.clock,
            audit: &self.audit,
            variables: &self.vars,
        };
        router::handle(req, services)
    }

    fn setup(
        &self,
        status: u16,
        path: &str,
        addr: &str,
        bootstrap: Option<&str>,
        body: &Value,
    ) -> Value {
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header("content-type", "application/json")
            .header("spin-client-addr", addr);
        if let Some(token) = bootstrap {
            req = req.header("x-bootstrap-token", token);
        }
        let res = self.send(req.body(body.to_string().into_bytes()).unwrap());
        let answer: Value = serde_json::from_slice(res.body()).unwrap_or(Value::Null);
        assert_eq!(res.status().as_u16(), status, "fixture {path}: {answer}");
        answer
    }

    fn login(&self, username: &str) -> Session {
        let credentials = json!({ "username": username, "password": PASSWORD });
        let answer = self.setup(200, "/auth/login", "192.0.2.20:1", None, &credentials);
        let access = answer["access_token"].as_str().expect("access_token");
        let claims = unverified_claims(access).expect("our token has a JSON payload");
        Session {
            access: access.to_owned(),
            refresh: answer["refresh_token"]
                .as_str()
                .expect("refresh_token")
                .to_owned(),
            account_id: claims["aid"].as_str().expect("aid").to_owned(),
            session: claims["sid"].as_u64().expect("sid"),
        }
    }
}

/// A JWT's payload, not verified.
pub fn unverified_claims(token: &str) -> Option<Value> {
    let payload = token.split('.').nth(1)?;
    let json = Base64UrlSafeNoPadding::decode_to_vec(payload, None).ok()?;
    serde_json::from_slice(&json).ok()
}
