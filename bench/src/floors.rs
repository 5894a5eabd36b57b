//! The measurements that show what stands between the service and a goal it
//! misses (issue 8): what bcrypt costs inside a component (measured
//! directly on the bcrypt probe, `bench/bcrypt-probe`, and derived from the
//! service at its own cost and at the lowest; all interleaved with native
//! verifications), what one host call costs under the runtime (the hello
//! fixture making one store call or variable read per request), and the
//! sequential client they rely on, checked against a fresh connection per
//! request and `wrk -t1 -c1`.

use crate::load::{self, Load, Script, Wrk};
use crate::native::{BcryptTimer, PASSWORD};
use crate::seq::{Client, Latency, Mode, Request};
use crate::Timing;
use anyhow::{ensure, Context as _, Result};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// The lowest cost the service accepts (`bcrypt_cost`, 4 to 30).
pub const LOW_COST: u32 = 4;

/// The variables of the low-cost instance.
pub struct LowCost {
    pub variables: Vec<(String, String)>,
    /// How `lockout_duration_seconds` was chosen, for the report.
    pub note: String,
}

/// `bcrypt_cost=4`, and a `lockout_duration_seconds` the service accepts
/// with it (a lock must outlast a login at that cost: the shortest allowed
/// only shrinks with the cost, so the default normally stays).
pub fn low_cost_variables(defaults: &HashMap<String, String>, cost: u32) -> Result<LowCost> {
    ensure!(
        cost > LOW_COST,
        "spin.toml's bcrypt_cost ({cost}) must be above {LOW_COST} to tell bcrypt from the rest of a login"
    );
    let shortest = secure_backend::config::min_lockout_secs(LOW_COST);
    let default: u64 = defaults
        .get("lockout_duration_seconds")
        .and_then(|v| v.parse().ok())
        .unwrap_or(900);
    let mut variables = vec![("bcrypt_cost".to_owned(), LOW_COST.to_string())];
    let note = if default >= shortest {
        format!("lockout_duration_seconds={default} (spin.toml's default; cost {LOW_COST} needs ≥ {shortest})")
    } else {
        variables.push(("lockout_duration_seconds".into(), shortest.to_string()));
        format!("lockout_duration_seconds={shortest} (the shortest cost {LOW_COST} allows)")
    };
    Ok(LowCost { variables, note })
}

fn json_credentials(username: &str) -> String {
    serde_json::json!({ "username": username, "password": PASSWORD }).to_string()
}

/// Registers `username` on a fresh instance, logs in, checks the token on
/// `/auth/protected`: the token.
pub fn user_with_token(addr: SocketAddr, username: &str) -> Result<String> {
    let credentials = json_credentials(username);
    let json = [("Content-Type", "application/json")];
    let (status, body) = load::request(addr, "POST", "/auth/register", &json, &credentials)?;
    ensure!(
        status == 201,
        "register answered {status}: {}",
        String::from_utf8_lossy(&body)
    );
    let (status, body) = load::request(addr, "POST", "/auth/login", &json, &credentials)?;
    ensure!(
        status == 200,
        "login answered {status}: {}",
        String::from_utf8_lossy(&body)
    );
    let token = serde_json::from_slice::<serde_json::Value>(&body)?["access_token"]
        .as_str()
        .context("login gave no access_token")?
        .to_owned();
    let bearer = format!("Bearer {token}");
    let (status, body) = load::request(
        addr,
        "GET",
        "/auth/protected",
        &[("Authorization", &bearer)],
        "",
    )?;
    ensure!(
        status == 200,
        "protected answered {status}: {}",
        String::from_utf8_lossy(&body)
    );
    Ok(token)
}

/// Sequential logins on the service at its cost and at the lowest, and the
/// bcrypt probe's verifications at the service's cost, from the same rounds.
pub struct Logins {
    pub cost: u32,
    pub high: Latency,
    pub low: Latency,
    /// The probe's requests (`POST /verify`), first byte to last, as the
    /// logins are timed.
    pub probe: Latency,
    /// The verification alone, as the probe timed it inside the component.
    pub probe_inside: Latency,
}

/// The probe's `POST /verify` body: the password and the native hash.
fn probe_body(hash: &str) -> String {
    format!("{PASSWORD}\n{hash}")
}

/// One request to the bcrypt probe: its time, and the verification's own
/// time as the probe reports it (`micros`).
fn probe_verify(client: &mut Client, req: &Request) -> Result<(Duration, Duration)> {
    let took = client.time(req)?;
    let answer: serde_json::Value = serde_json::from_slice(client.body()).with_context(|| {
        format!(
            "the bcrypt probe answered {:?}",
            String::from_utf8_lossy(client.body())
        )
    })?;
    ensure!(
        answer["ok"] == true,
        "the bcrypt probe did not verify: {answer}"
    );
    let micros = answer["micros"]
        .as_u64()
        .with_context(|| format!("the bcrypt probe gave no micros: {answer}"))?;
    Ok((took, Duration::from_micros(micros)))
}

/// Checks that the bcrypt probe at `addr` verifies the native hash.
pub fn check_probe(addr: SocketAddr, bcrypt: &BcryptTimer) -> Result<()> {
    let verify = probe_request(bcrypt);
    probe_verify(&mut Client::new(addr, Mode::KeepAlive), &verify)?;
    Ok(())
}

fn probe_request(bcrypt: &BcryptTimer) -> Request {
    Request::new(
        "POST",
        "/verify",
        &[("Content-Type", "text/plain")],
        &probe_body(bcrypt.stored_hash()),
        200,
    )
}

/// Rounds of one native verification, one verification on the bcrypt probe
/// (the same password and hash, over a keep-alive connection of its own),
/// one login at the service's cost and one at the lowest, for
/// `timing.login_sequential` seconds: all four see the same load. The
/// verifications come first, native and probe swapping places every other
/// round, and so do the two logins after them.
pub fn interleaved_logins(
    high: SocketAddr,
    low: SocketAddr,
    probe: SocketAddr,
    username: &str,
    bcrypt: &mut BcryptTimer,
    timing: &Timing,
) -> Result<Logins> {
    let login = Request::new(
        "POST",
        "/auth/login",
        &[("Content-Type", "application/json")],
        &json_credentials(username),
        200,
    );
    let verify = probe_request(bcrypt);
    let mut high_client = Client::new(high, Mode::KeepAlive);
    let mut low_client = Client::new(low, Mode::KeepAlive);
    let mut probe_client = Client::new(probe, Mode::KeepAlive);
    for _ in 0..timing.login_warmup_rounds {
        probe_verify(&mut probe_client, &verify)?;
        high_client.time(&login)?;
        low_client.time(&login)?;
    }
    let (mut highs, mut lows) = (Vec::new(), Vec::new());
    let (mut probes, mut insides) = (Vec::new(), Vec::new());
    let until = Instant::now() + Duration::from_secs(timing.login_sequential);
    while Instant::now() < until || highs.len() < 5 {
        let even = highs.len() % 2 == 0;
        if even {
            bcrypt.verify(1)?;
        }
        let (took, inside) = probe_verify(&mut probe_client, &verify)?;
        probes.push(took);
        insides.push(inside);
        if even {
            highs.push(high_client.time(&login)?);
            lows.push(low_client.time(&login)?);
        } else {
            bcrypt.verify(1)?;
            lows.push(low_client.time(&login)?);
            highs.push(high_client.time(&login)?);
        }
    }
    Ok(Logins {
        cost: bcrypt.summary().cost,
        high: Latency::of(&highs),
        low: Latency::of(&lows),
        probe: Latency::of(&probes),
        probe_inside: Latency::of(&insides),
    })
}

/// The same store read on hello three ways.
pub struct ClientCheck {
    pub path: &'static str,
    pub keep_alive: Latency,
    pub fresh: Latency,
    pub wrk: Load,
}

pub const CHECK_PATH: &str = "/get?key=k";

/// Puts key `k` in hello's store, so that the reads below find it.
pub fn set_key(addr: SocketAddr) -> Result<()> {
    let (status, body) = load::request(addr, "POST", "/set?key=k", &[], "v")?;
    ensure!(
        status == 200 && !String::from_utf8_lossy(&body).contains("error"),
        "hello /set answered {status}: {}",
        String::from_utf8_lossy(&body)
    );
    Ok(())
}

/// hello's `GET /get?key=k` (a response Spin writes in two segments) with
/// this client on one keep-alive connection, with a fresh connection per
/// request, and with `wrk -t1 -c1`.
pub fn client_check(addr: SocketAddr, wrk: &Wrk, timing: &Timing) -> Result<ClientCheck> {
    set_key(addr)?;
    let req = Request::new("GET", CHECK_PATH, &[], "", 200);
    let sample = |mode| -> Result<Latency> {
        let mut client = Client::new(addr, mode);
        client.times(&req, 20)?;
        Ok(Latency::of(
            &client.times(&req, timing.client_check_requests)?,
        ))
    };
    let keep_alive = sample(Mode::KeepAlive)?;
    let fresh = sample(Mode::Fresh)?;
    let url = format!("http://{addr}{CHECK_PATH}");
    let wrk = wrk.run(
        &url,
        &Script::Get { token: None },
        1,
        1,
        timing.warmup.max(2),
    )?;
    Ok(ClientCheck {
        path: CHECK_PATH,
        keep_alive,
        fresh,
        wrk,
    })
}

/// One host call, as the hello fixture makes it.
pub struct HostCall {
    /// What the call is, for the report.
    pub call: &'static str,
    /// hello's request that makes it.
    pub request: String,
    pub latency: Latency,
}

pub struct HostCalls {
    pub rounds: usize,
    /// `GET /static`: no host call.
    pub baseline: Latency,
    pub calls: Vec<HostCall>,
}

/// `rounds` rounds of hello's `/static`, then one request per host call
/// (each opens the store, makes its one call, answers): `set` writes `k`,
/// `get` reads it back, `increment` bumps `c`, `delete` removes `k` (so
/// each call finds the state its kind meets on the login path), and a
/// variable read. Interleaved, so that a change of load weighs on all.
pub fn host_calls(addr: SocketAddr, rounds: usize) -> Result<HostCalls> {
    let kinds: [(&str, &str, &str, &str); 6] = [
        ("none", "GET", "/static", ""),
        ("store `set`", "POST", "/set?key=k", "v"),
        ("store `get`", "GET", "/get?key=k", ""),
        ("store `increment`", "GET", "/incr?key=c", ""),
        ("store `delete`", "GET", "/delete?key=k", ""),
        ("variable read", "GET", "/var?name=api_token", ""),
    ];
    // Each answers 200 with its error in the JSON: check the first of each.
    for (_, method, path, body) in kinds {
        let (status, answer) = load::request(addr, method, path, &[], body)?;
        let answer = String::from_utf8_lossy(&answer);
        ensure!(
            status == 200 && !answer.contains("\"error\""),
            "hello {method} {path} answered {status}: {answer}"
        );
    }
    let requests: Vec<Request> = kinds
        .iter()
        .map(|(_, method, path, body)| Request::new(method, path, &[], body, 200))
        .collect();
    let mut client = Client::new(addr, Mode::KeepAlive);
    for _ in 0..10 {
        for req in &requests {
            client.time(req)?;
        }
    }
    let mut samples = vec![Vec::with_capacity(rounds); requests.len()];
    for _ in 0..rounds {
        for (req, times) in requests.iter().zip(&mut samples) {
            times.push(client.time(req)?);
        }
    }
    let mut latencies = samples.iter().map(|s| Latency::of(s));
    let baseline = latencies.next().context("no baseline")?;
    let calls = kinds[1..]
        .iter()
        .zip(latencies)
        .map(|((call, method, path, _), latency)| HostCall {
            call,
            request: format!("{method} {path}"),
            latency,
        })
        .collect();
    Ok(HostCalls {
        rounds,
        baseline,
        calls,
    })
}
