//! `cargo run --release -p bench [-- --quick] [-- --runtime spin|test-host]`
//!
//! Builds the component, the hello-world fixture and the bcrypt probe
//! (`bench/bcrypt-probe`: one bcrypt verification per request, built as
//! the component is) as `spin build` does, serves each under `spin up` (or
//! the repository's test host when `spin` is not on PATH), drives them with
//! `wrk` (throughput) and a sequential client of its own (latency),
//! measures native bcrypt and counts store calls and variable reads per
//! route in-process, then prints one markdown table with the goals of issue
//! 8 and, where a goal is missed, what stands in the way (bcrypt inside a
//! component, measured on the probe and derived from the service's logins;
//! one host call). See `BENCHMARKS.md`.

mod artifacts;
mod floors;
mod load;
mod native;
mod report;
mod rounds;
mod seq;
mod server;

use anyhow::{bail, ensure, Context as _, Result};
use load::{Script, Wrk};
use server::{App, Runtime, Server};
use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

const USAGE: &str = "usage: cargo run --release -p bench -- [--quick] [--runtime spin|test-host] [--seconds N] [--state-base DIR]
  --quick            a few seconds per row (for development; rough figures)
  --runtime R        spin (default when `spin` is on PATH) or test-host (the wasmtime host in tests/host)
  --seconds N        seconds per throughput row (default 20, quick 3); the interleaved
                     rounds of hello, /auth/protected and its floors get ⌈N/4⌉ s per run
  --state-base DIR   where the servers' state directories (and so the SQLite store) go;
                     default <target dir>/bench-state (e.g. /dev/shm shows what disk writes cost)";

/// Client limits while benchmarking: the most the service accepts, per second,
/// so that they never throttle a load that bcrypt bounds far lower.
const RAISED_LIMITS: [(&str, &str); 4] = [
    ("login_rate_limit", "1000"),
    ("login_rate_window_seconds", "1"),
    ("register_rate_limit", "1000"),
    ("register_rate_window_seconds", "1"),
];

pub struct Options {
    pub quick: bool,
    pub runtime: Option<Runtime>,
    pub seconds: Option<u64>,
    pub state_base: Option<std::path::PathBuf>,
}

fn parse_args() -> Result<Options> {
    let mut opts = Options {
        quick: false,
        runtime: None,
        seconds: None,
        state_base: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => opts.quick = true,
            "--runtime" => {
                opts.runtime = Some(match args.next().as_deref() {
                    Some("spin") => Runtime::Spin,
                    Some("test-host") => Runtime::TestHost,
                    other => bail!("--runtime {other:?}: expected spin or test-host\n{USAGE}"),
                })
            }
            "--seconds" => {
                let n = args.next().and_then(|n| n.parse().ok()).filter(|&n| n > 0);
                opts.seconds = Some(n.context("--seconds needs a whole number above 0")?);
            }
            "--state-base" => {
                let dir = args.next().context("--state-base needs a directory")?;
                opts.state_base = Some(std::path::absolute(dir)?);
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    Ok(opts)
}

/// Signs tokens in the instance that measures `/auth/protected` without the
/// store read of the signing key (at least 32 bytes, as the service requires).
const JWT_SECRET: &str = "bench-jwt-secret-0123456789abcdefghijklmnop";

/// How long each part runs.
pub struct Timing {
    pub warmup: u64,
    pub row: u64,
    /// Interleaved rounds of hello, `/auth/protected` and its floors.
    pub rounds: usize,
    /// Seconds of each wrk run in those rounds.
    pub round: u64,
    /// Seconds of interleaved sequential logins (both costs, native verify,
    /// the bcrypt probe).
    pub login_sequential: u64,
    /// Interleaved rounds before those, not counted.
    pub login_warmup_rounds: usize,
    pub bcrypt_hashes: usize,
    /// Sequential requests per way in the client check (wrk gets `warmup` seconds).
    pub client_check_requests: usize,
    /// Rounds of one request per host call on the hello component.
    pub host_call_rounds: usize,
}

fn main() {
    server::install_signal_handlers();
    let started = Instant::now();
    let code = match parse_args().and_then(|opts| run(&opts)) {
        Ok(()) => {
            eprintln!("bench: done in {:.0} s", started.elapsed().as_secs_f64());
            0
        }
        Err(e) => {
            eprintln!("bench: error: {e:#}");
            1
        }
    };
    std::process::exit(code);
}

/// `[variables]` defaults of a manifest.
fn manifest_defaults(manifest: &Path) -> Result<HashMap<String, String>> {
    let text = std::fs::read_to_string(manifest)?;
    let table: toml::Table = toml::from_str(&text)?;
    let vars = table
        .get("variables")
        .and_then(|v| v.as_table())
        .context("no [variables] in spin.toml")?;
    Ok(vars
        .iter()
        .filter_map(|(name, v)| {
            let default = v.get("default")?.as_str()?;
            Some((name.clone(), default.to_owned()))
        })
        .collect())
}

fn run(opts: &Options) -> Result<()> {
    let spin = server::spin_version();
    let runtime = match (opts.runtime, &spin) {
        (Some(Runtime::Spin), None) => bail!("--runtime spin: no working `spin` on PATH"),
        (Some(r), _) => r,
        (None, Some(_)) => Runtime::Spin,
        (None, None) => {
            eprintln!(
                "bench: no `spin` on PATH: serving with the test host instead (not Spin's speed)"
            );
            Runtime::TestHost
        }
    };
    let timing = if opts.quick {
        Timing {
            warmup: 1,
            row: opts.seconds.unwrap_or(3),
            rounds: 3,
            round: opts.seconds.map_or(2, |s| s.div_ceil(4)),
            login_sequential: opts.seconds.unwrap_or(3) + 1,
            login_warmup_rounds: 3,
            bcrypt_hashes: 3,
            client_check_requests: 100,
            host_call_rounds: 100,
        }
    } else {
        Timing {
            warmup: 3,
            row: opts.seconds.unwrap_or(20),
            rounds: 6,
            round: opts.seconds.map_or(5, |s| s.div_ceil(4)),
            login_sequential: opts.seconds.map_or(30, |s| s * 3 / 2),
            login_warmup_rounds: 5,
            bcrypt_hashes: 10,
            client_check_requests: 200,
            host_call_rounds: 200,
        }
    };
    let wrk_version = load::ensure_wrk()?;
    let built = artifacts::build(runtime == Runtime::TestHost)?;
    // Serve and measure copies: a build running alongside (tests, another
    // engineer) may replace the files in the target directory mid-run.
    let scratch = server::scratch_dir(&built.target_dir.join("bench-state"))?;
    let state_base = opts
        .state_base
        .clone()
        .unwrap_or_else(|| built.target_dir.join("bench-state"));
    let service_wasm = scratch.path().join("secure_backend.wasm");
    let hello_wasm = scratch.path().join("hello.wasm");
    let probe_wasm = scratch.path().join("bcrypt_probe.wasm");
    std::fs::copy(&built.service_wasm, &service_wasm)?;
    std::fs::copy(&built.hello_wasm, &hello_wasm)?;
    std::fs::copy(&built.probe_wasm, &probe_wasm)?;
    let cargo_wasm_bytes = std::fs::metadata(&built.cargo_wasm).map_or(0, |m| m.len());
    let root = artifacts::repo_root();
    let manifest = root.join("spin.toml");
    let defaults = manifest_defaults(&manifest)?;
    let cost: u32 = defaults
        .get("bcrypt_cost")
        .context("spin.toml has no bcrypt_cost default")?
        .parse()?;
    let runtime_version = match runtime {
        Runtime::Spin => spin.clone().unwrap_or_default(),
        Runtime::TestHost => format!(
            "wasmtime {}, release build",
            artifacts::locked_version(&root, "wasmtime").unwrap_or_else(|| "?".into())
        ),
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());

    eprintln!(
        "bench: native bcrypt at cost {cost} ({} hashes now; verifies interleaved with the sequential logins)",
        timing.bcrypt_hashes
    );
    // After the builds, so that it shows the load measuring starts under
    // (a 1-minute average still remembers the builds, though).
    let load_at_start = report::load_average();
    let mut bcrypt = native::BcryptTimer::new(cost)?;
    bcrypt.hash(timing.bcrypt_hashes)?;
    eprintln!("bench: counting store calls and variable reads per route (in-process)");
    let routes = native::route_costs(&defaults, 6)?;

    let wrk = Wrk {
        dir: scratch.path().to_owned(),
    };
    let serve = |manifest: &Path, component: &str, wasm: &Path, vars: &[(String, String)]| {
        Server::start(
            runtime,
            &App {
                manifest,
                component,
                wasm,
                variables: vars,
            },
            built.test_host.as_deref(),
            &built.target_dir,
            &state_base,
        )
    };

    // The hello component stays up while the service's protected route is
    // measured: hello and the protected figures run in interleaved rounds.
    eprintln!(
        "bench: serving the hello component under {}",
        runtime.label()
    );
    let hello_vars = vec![("api_token".to_owned(), "bench-api-token".to_owned())];
    let hello_manifest = artifacts::hello_dir().join("spin.toml");
    let hello = serve(&hello_manifest, "hello", &hello_wasm, &hello_vars)?;
    // `/static` answers a small JSON body and touches neither store nor variables.
    let (status, _) = load::request(hello.addr, "GET", "/static", &[], "")?;
    ensure!(status == 200, "hello /static answered {status}");
    step("hello: sequential client check (keep-alive, fresh connections, wrk -t1 -c1)");
    let client_check = floors::client_check(hello.addr, &wrk, &timing)?;
    step(&format!(
        "hello: one host call each, {} interleaved sequential rounds",
        timing.host_call_rounds
    ));
    let host_calls = floors::host_calls(hello.addr, timing.host_call_rounds)?;

    eprintln!("bench: serving secure-backend under {}", runtime.label());
    let service_vars: Vec<(String, String)> = RAISED_LIMITS
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let service = serve(&manifest, "secure-backend", &service_wasm, &service_vars)?;
    // A second instance that signs with `jwt_secret`, so that its protected
    // route skips the store read of the signing key; stopped after the rounds.
    let mut keyed_vars = service_vars.clone();
    keyed_vars.push(("jwt_secret".into(), JWT_SECRET.into()));
    let keyed = serve(&manifest, "secure-backend", &service_wasm, &keyed_vars)?;
    let username = "benchuser";
    let token = floors::user_with_token(service.addr, username)?;
    let keyed_token = floors::user_with_token(keyed.addr, username)?;
    // The host-call rounds delete `k`: put it back for hello's `/get` figure.
    floors::set_key(hello.addr)?;
    let (status, body) = load::request(hello.addr, "GET", floors::CHECK_PATH, &[], "")?;
    let body = String::from_utf8_lossy(&body);
    ensure!(
        status == 200 && !body.contains("null"),
        "hello GET {} answered {status}: {body}",
        floors::CHECK_PATH
    );

    let target = |name: &str, url: String, token: Option<String>| rounds::Target {
        name: name.to_owned(),
        url,
        script: Script::Get { token },
    };
    let hello_static = target(
        "hello /static",
        format!("http://{}/static", hello.addr),
        None,
    );
    let figures = [
        target(
            "protected",
            format!("http://{}/auth/protected", service.addr),
            Some(token),
        ),
        target(
            "protected with jwt_secret set",
            format!("http://{}/auth/protected", keyed.addr),
            Some(keyed_token),
        ),
        target(
            "hello /get?key=k",
            format!("http://{}{}", hello.addr, floors::CHECK_PATH),
            None,
        ),
    ];
    let interleaved = rounds::measure(
        &wrk,
        &hello_static,
        &figures,
        timing.rounds,
        timing.round,
        timing.warmup,
    )?;
    keyed.stop();
    hello.stop();

    // The same service at the lowest bcrypt cost, fresh state (so the user's
    // hash is at that cost too): what a login costs besides bcrypt.
    let low = floors::low_cost_variables(&defaults, cost)?;
    let mut low_vars = service_vars.clone();
    low_vars.extend(low.variables.iter().cloned());
    step(&format!(
        "a second instance at bcrypt_cost={}",
        floors::LOW_COST
    ));
    let cheap = serve(&manifest, "secure-backend", &service_wasm, &low_vars)?;
    floors::user_with_token(cheap.addr, username)?;
    // One bcrypt verification per request and nothing else, under the same
    // runtime: bcrypt inside a component, measured rather than derived.
    step("the bcrypt probe (bench/bcrypt-probe)");
    let probe_manifest = artifacts::probe_dir().join("spin.toml");
    let probe = serve(&probe_manifest, "bcrypt-probe", &probe_wasm, &[])?;
    floors::check_probe(probe.addr, &bcrypt)?;
    step(&format!(
        "login: sequential, interleaved: native verify, bcrypt probe, cost {cost}, cost {} ({} s)",
        floors::LOW_COST,
        timing.login_sequential
    ));
    let logins = floors::interleaved_logins(
        service.addr,
        cheap.addr,
        probe.addr,
        username,
        &mut bcrypt,
        &timing,
    )?;
    probe.stop();
    cheap.stop();

    let base = format!("http://{}", service.addr);
    let login_url = format!("{base}/auth/login");
    let login = Script::Login {
        username: username.into(),
        password: native::PASSWORD.into(),
    };
    let busy = 2 * cores;
    step(&format!("login: -c{busy} (every core busy)"));
    let login_busy = wrk.run(&login_url, &login, cores, busy, timing.row)?;

    let register_url = format!("{base}/auth/register");
    let register = Script::Register {
        // Unique per run, so the rows never collide with the set-up user.
        prefix: format!("r{:x}t", std::process::id() % 0xfffff),
        password: native::PASSWORD.into(),
    };
    step(&format!("register: -c{busy}, a new username per request"));
    let register_load = wrk.run(&register_url, &register, cores, busy, timing.row)?;
    service.stop();

    let wasm_bytes = std::fs::metadata(&service_wasm)?.len();
    let report = report::Report {
        quick: opts.quick,
        timing: &timing,
        date: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        machine: report::machine(cores),
        runtime,
        runtime_version,
        wrk_version,
        raised_limits: &RAISED_LIMITS,
        bcrypt: &bcrypt.summary(),
        cores,
        logins: &logins,
        probe_build: built.probe_build.clone(),
        low_lockout: low.note.clone(),
        client_check: &client_check,
        host_calls: &host_calls,
        interleaved: &interleaved,
        login_busy,
        busy_connections: busy,
        register: register_load,
        wasm_bytes,
        wasm_name: built
            .service_wasm
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        cargo_wasm_bytes,
        build_command: built.build_command.clone(),
        wasm_opt: wasm_opt_version(),
        routes: &routes,
        load_average: (load_at_start, report::load_average()),
        state_base: state_base.display().to_string(),
    };
    println!("{}", report.markdown());
    Ok(())
}

fn step(what: &str) {
    eprintln!("bench:   {what}");
}

/// binaryen's `wasm-opt`, which the build command uses when installed.
fn wasm_opt_version() -> String {
    match std::process::Command::new("wasm-opt")
        .arg("--version")
        .output()
    {
        Ok(out) if out.status.success() => {
            format!("{} on PATH", String::from_utf8_lossy(&out.stdout).trim())
        }
        _ => "no wasm-opt on PATH".into(),
    }
}
