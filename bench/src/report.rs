//! The one table the benchmark prints (markdown), with the goals of issue 8.

use crate::floors::{ClientCheck, HostCalls, Logins, LOW_COST};
use crate::load::Load;
use crate::native::{Bcrypt, RouteCost, StoreOps};
use crate::rounds::{self, Figure, Interleaved};
use crate::server::Runtime;
use crate::Timing;

/// Login p50 over one native bcrypt verification.
const LOGIN_GOAL: f64 = 1.15;
/// `/auth/protected` throughput over hello's.
const PROTECTED_GOAL: f64 = 0.60;
const WASM_GOAL_KIB: u64 = 512;

pub struct Report<'a> {
    pub quick: bool,
    pub timing: &'a Timing,
    pub date: String,
    pub machine: String,
    pub runtime: Runtime,
    pub runtime_version: String,
    pub wrk_version: String,
    pub raised_limits: &'a [(&'a str, &'a str)],
    pub bcrypt: &'a Bcrypt,
    pub cores: usize,
    /// Sequential logins at the service's cost and at the lowest, and the
    /// bcrypt probe's verifications, from the same rounds.
    pub logins: &'a Logins,
    /// How the bcrypt probe was built (`bench/bcrypt-probe`).
    pub probe_build: String,
    /// How the low-cost instance's lockout duration was chosen.
    pub low_lockout: String,
    pub client_check: &'a ClientCheck,
    pub host_calls: &'a HostCalls,
    /// hello's `/static` and, in this order, `/auth/protected`, the same on
    /// an instance with `jwt_secret` set, and hello's `/get?key=k`, in
    /// interleaved rounds.
    pub interleaved: &'a Interleaved,
    pub login_busy: Load,
    pub busy_connections: usize,
    pub register: Load,
    pub wasm_bytes: u64,
    /// The served file's name.
    pub wasm_name: String,
    /// cargo's own output, before the build command's post-processing.
    pub cargo_wasm_bytes: u64,
    pub build_command: String,
    /// Whether binaryen's wasm-opt was on PATH, and its version.
    pub wasm_opt: String,
    pub routes: &'a [RouteCost],
    /// 1-minute load averages when the run started and when it ended.
    pub load_average: (String, String),
    /// Where the servers' state directories (the SQLite store) were.
    pub state_base: String,
}

/// The 1-minute load average (`/proc/loadavg`), to show how busy the machine was.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

/// CPU model and core count, from /proc/cpuinfo and the scheduler.
pub fn machine(cores: usize) -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")?
                .split_once(':')
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let processors = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            let kb: u64 = m.lines().next()?.split_whitespace().nth(1)?.parse().ok()?;
            Some(format!(", {:.1} GiB RAM", kb as f64 / 1024.0 / 1024.0))
        })
        .unwrap_or_default();
    format!("{model}, {processors} logical CPUs in /proc/cpuinfo, {cores} usable (nproc){memory}")
}

/// 12345.6 -> "12,346"
fn thousands(n: f64) -> String {
    let digits = format!("{:.0}", n);
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn rate(n: f64) -> String {
    if n >= 100.0 {
        thousands(n)
    } else {
        format!("{n:.1}")
    }
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// "req/s, p50, p99", and any errors wrk saw.
fn throughput(load: &Load) -> String {
    format!(
        "{} req/s (p50 {:.2} ms, p99 {:.2} ms; {} requests){}",
        rate(load.ok_per_sec()),
        load.p50_ms,
        load.p99_ms,
        thousands(load.requests as f64),
        errors(load)
    )
}

fn errors(load: &Load) -> String {
    let mut notes = Vec::new();
    if load.status_errors > 0 {
        notes.push(format!(
            "**{} answered ≥ 400**, not counted",
            load.status_errors
        ));
    }
    if load.socket_errors > 0 {
        notes.push(format!(
            "**{} socket errors or timeouts**",
            load.socket_errors
        ));
    }
    if notes.is_empty() {
        String::new()
    } else {
        format!("; {}", notes.join(", "))
    }
}

/// "median of 6 interleaved rounds, range 0.52–0.61"
fn rounds_note(figure: &Figure) -> String {
    let (lo, hi) = figure.range();
    format!(
        "median of {} interleaved rounds, range {lo:.2}–{hi:.2}",
        figure.ratios.len()
    )
}

fn verdict(pass: bool) -> &'static str {
    if pass {
        "pass"
    } else {
        "**miss**"
    }
}

fn ops(o: &StoreOps) -> String {
    let parts: Vec<String> = [
        ("get", o.get),
        ("set", o.set),
        ("delete", o.delete),
        ("increment", o.increment),
    ]
    .iter()
    .filter(|(_, n)| *n > 0)
    .map(|(name, n)| format!("{n} {name}"))
    .collect();
    if parts.is_empty() {
        "0".into()
    } else {
        format!("{} ({})", o.total(), parts.join(", "))
    }
}

fn short_time(d: std::time::Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us >= 1000.0 {
        format!("{:.1} ms", us / 1000.0)
    } else {
        format!("{us:.0} µs")
    }
}

fn span(lo: usize, hi: usize) -> String {
    if lo == hi {
        lo.to_string()
    } else {
        format!("{lo}–{hi}")
    }
}

impl Report<'_> {
    pub fn markdown(&self) -> String {
        let mut rows: Vec<[String; 6]> = Vec::new();
        let mut row = |cells: [&str; 6]| rows.push(cells.map(str::to_owned));
        let t = self.timing;
        let rounds = format!(
            "hello `/static`, `/auth/protected` (two instances) and hello `/get` in {} interleaved rounds of {} s per run",
            self.interleaved.rounds, self.interleaved.round_secs
        );
        let run = if self.quick {
            format!(
                "quick (`--quick`: {} s per row; {rounds}; {} s warm-ups): rough figures",
                t.row, t.warmup
            )
        } else {
            format!(
                "full ({} s per row; {rounds}; {} s for sequential login, {} s warm-ups)",
                t.row, t.login_sequential, t.warmup
            )
        };
        row(["date", &self.date, "", "", "", ""]);
        row(["run", &run, "", "", "", ""]);
        row(["machine", &self.machine, "", "", "", ""]);
        // What the load at the start says; at the end it always includes
        // this run's own wrk and servers.
        let at_start = match self.load_average.0.parse::<f64>() {
            Ok(load) if load < self.cores as f64 => "below the core count: nothing else was busy",
            Ok(_) => "at or above the core count: something else was competing for the CPU",
            Err(_) => "unknown",
        };
        let busy = format!(
            "{} when measuring began ({at_start}), {} at the end (this run's own wrk and servers included)",
            self.load_average.0, self.load_average.1
        );
        row(["1-minute load average", &busy, "", "", "", ""]);
        let runtime = format!(
            "{}: {}; Spin's default key-value store (SQLite) in a fresh state dir under `{}`",
            self.runtime.label(),
            self.runtime_version,
            self.state_base
        );
        row(["runtime", &runtime, "", "", "", ""]);
        let limits: Vec<String> = self
            .raised_limits
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let generator = format!(
            "{}; login and register rate limits raised through Spin variables ({}) so they never throttle; every other variable at its spin.toml default",
            self.wrk_version,
            limits.join(", ")
        );
        row(["load generator", &generator, "", "", "", ""]);

        let check = self.client_check;
        row([
            "sequential latency: this benchmark's client",
            &format!(
                "one keep-alive HTTP/1.1 connection, `TCP_NODELAY`, quick ACKs re-armed before each read; hello `GET {}` (one store read): p50 {:.2} ms (p99 {:.2} ms, {} requests)",
                check.path, check.keep_alive.p50_ms, check.keep_alive.p99_ms, check.keep_alive.samples
            ),
            &format!(
                "same route, a fresh connection per request (as curl): p50 {:.2} ms (TCP handshake included); `wrk -t1 -c1`: p50 {:.2} ms ({} requests; the server's Nagle waits on wrk's delayed ACKs)",
                check.fresh.p50_ms, check.wrk.p50_ms, check.wrk.requests
            ),
            "",
            "",
            "",
        ]);

        let b = self.bcrypt;
        let verify_ms = ms(b.verify);
        let logins = self.logins;
        let login = &logins.high;
        let login_ratio = login.p50_ms / verify_ms;
        row([
            "login p50, sequential (this client)",
            &format!("{:.1} ms", login.p50_ms),
            &format!(
                "one native bcrypt verify at cost {} (the service's default): {:.1} ms (median of {}, interleaved with the logins)",
                b.cost, verify_ms, b.verifies
            ),
            &format!("{login_ratio:.2}"),
            &format!("≤ {LOGIN_GOAL:.2}"),
            verdict(login_ratio <= LOGIN_GOAL),
        ]);
        row([
            "login p99, sequential",
            &format!(
                "{:.1} ms ({} logins, in rounds of: one native verify, one verify on the bcrypt probe, one login at cost {}, one at cost {LOW_COST})",
                login.p99_ms, login.samples, logins.cost
            ),
            "",
            &format!("{:.2}", login.p99_ms / verify_ms),
            "",
            "",
        ]);
        let low = &logins.low;
        row([
            &format!("login p50, sequential, a second instance at bcrypt_cost={LOW_COST}"),
            &format!(
                "{:.2} ms (p99 {:.2} ms, {} logins)",
                low.p50_ms, low.p99_ms, low.samples
            ),
            &format!(
                "same manifest and variables but bcrypt_cost={LOW_COST} and {}; its own fresh store, its user registered at cost {LOW_COST}",
                self.low_lockout
            ),
            "",
            "",
            "",
        ]);
        // p50(c) = rest + B(c), and B(4) = B(c) / 2^(c-4): the difference
        // of the two p50s is B(c) × (1 − 2^(4-c)).
        let share = 2f64.powi(LOW_COST as i32 - logins.cost as i32);
        let in_wasm = (login.p50_ms - low.p50_ms) / (1.0 - share);
        let in_wasm_ratio = in_wasm / verify_ms;
        let denominator = 1u64 << (logins.cost - LOW_COST);

        // bcrypt in a component, measured: the probe's whole request (the
        // headline: timed as the logins are, nothing subtracted), the same
        // less hello's `/static` (comparable with the derived figure, which
        // cancels the request's cost too), and the probe's own clock.
        let probe = &logins.probe;
        let probe_ratio = probe.p50_ms / verify_ms;
        row([
            &format!(
                "bcrypt inside a Spin component at cost {}, measured directly: the bcrypt probe's `POST /verify` (one `bcrypt::non_truncating_verify`, the call a login makes, and nothing else), sequential (this client)",
                logins.cost
            ),
            &format!(
                "p50 {:.1} ms (p99 {:.1} ms, {} requests, in the login rounds)",
                probe.p50_ms, probe.p99_ms, probe.samples
            ),
            &format!(
                "one native verify at cost {}: {verify_ms:.1} ms (same rounds, same password and hash). The probe: {}; served under the same runtime beside the login instances, over a keep-alive connection of its own. A login is such a request plus its other work, so this ratio is the floor of the login ratio",
                logins.cost, self.probe_build
            ),
            &format!("{probe_ratio:.2}"),
            &format!("the login goal: ≤ {LOGIN_GOAL:.2}"),
            if probe_ratio > LOGIN_GOAL {
                "**a request doing only bcrypt misses it**"
            } else {
                "a request doing only bcrypt is within it"
            },
        ]);
        let bare = self.host_calls.baseline.p50_ms;
        let net = probe.p50_ms - bare;
        row([
            &format!(
                "bcrypt inside a Spin component at cost {}, measured directly, less the request's own cost (hello `/static`'s sequential p50)",
                logins.cost
            ),
            &format!("{:.1} − {bare:.2} = {net:.1} ms", probe.p50_ms),
            &format!(
                "native verify: {verify_ms:.1} ms. The derived figure (below; it cancels the request's cost too): {in_wasm:.1} ms, {in_wasm_ratio:.2}. `/static` was timed in the host-call rounds, not in the login rounds"
            ),
            &format!("{:.2}", net / verify_ms),
            "",
            "",
        ]);
        let inside = &logins.probe_inside;
        row([
            &format!(
                "bcrypt inside a Spin component at cost {}, timed inside the probe (WASI's monotonic clock around the verification: no HTTP, no instantiation)",
                logins.cost
            ),
            &format!(
                "p50 {:.1} ms (p99 {:.1} ms, {} verifications)",
                inside.p50_ms, inside.p99_ms, inside.samples
            ),
            &format!(
                "native verify: {verify_ms:.1} ms. The same requests as above, timed by the probe; its requests' p50 less this: {:.2} ms",
                probe.p50_ms - inside.p50_ms
            ),
            &format!("{:.2}", inside.p50_ms / verify_ms),
            "",
            "",
        ]);
        row([
            &format!(
                "bcrypt inside the component at cost {}, derived (not measured) ≈ (p50 at cost {} − p50 at cost {LOW_COST}) × {denominator}/{}",
                logins.cost,
                logins.cost,
                denominator - 1
            ),
            &format!(
                "({:.1} − {:.2}) × {denominator}/{} = {in_wasm:.1} ms",
                login.p50_ms,
                low.p50_ms,
                denominator - 1
            ),
            &format!(
                "native verify: {verify_ms:.1} ms. A login's p50 at cost c is the rest plus B(c), and B({LOW_COST}) = B({}) / {denominator}: the difference is B({}) × {}/{denominator}. Measured directly on the probe (above): {net:.1} ms less the request's cost, {:.1} ms with it",
                logins.cost,
                logins.cost,
                denominator - 1,
                probe.p50_ms
            ),
            &format!("{in_wasm_ratio:.2}"),
            &format!("the login goal: ≤ {LOGIN_GOAL:.2}"),
            if in_wasm_ratio > LOGIN_GOAL {
                "**bcrypt alone misses it**"
            } else {
                "bcrypt alone within it"
            },
        ]);
        let rest = low.p50_ms - in_wasm * share;
        let room = LOGIN_GOAL * verify_ms - in_wasm;
        let mut predicted = String::new();
        if let Some(route) = self
            .routes
            .iter()
            .find(|r| r.route == "POST /auth/login" && r.request == "success")
        {
            let extra = |call: &str| {
                self.host_calls
                    .calls
                    .iter()
                    .find(|c| c.call == call)
                    .map_or(0.0, |c| c.latency.p50_ms - self.host_calls.baseline.p50_ms)
            };
            let o = route.store.1;
            let vars = route.variable_reads.1;
            let parts = [
                (o.get, "store `get`", "get"),
                (o.set, "store `set`", "set"),
                (o.delete, "store `delete`", "delete"),
                (o.increment, "store `increment`", "increment"),
                (vars, "variable read", "variable reads"),
            ];
            let sum: f64 = parts
                .iter()
                .map(|(n, call, _)| *n as f64 * extra(call))
                .sum();
            let terms: Vec<String> = parts
                .iter()
                .filter(|(n, _, _)| *n > 0)
                .map(|(n, _, name)| format!("{n} {name}"))
                .collect();
            predicted = format!(
                "; hello's `/static` plus a successful login's host calls ({}) at the prices below (each with its own store open, so an upper bound): {:.2} + {sum:.2} = {:.2} ms",
                terms.join(", "),
                self.host_calls.baseline.p50_ms,
                self.host_calls.baseline.p50_ms + sum
            );
        }
        row([
            &format!(
                "the rest of a login ≈ p50 at cost {LOW_COST} − bcrypt at cost {LOW_COST} (the above ÷ {denominator})"
            ),
            &format!(
                "{:.2} − {:.2} = {rest:.2} ms",
                low.p50_ms,
                in_wasm * share
            ),
            &format!(
                "what the login goal leaves for it: {LOGIN_GOAL:.2} × {verify_ms:.1} − {in_wasm:.1} = {room:.1} ms{predicted}; measured directly: login p50 at cost {} − the probe's p50 = {:.2} ms (what a login adds to a request that only verifies)",
                logins.cost,
                login.p50_ms - probe.p50_ms
            ),
            "",
            "",
            "",
        ]);
        let inter = self.interleaved;
        let [protected, keyed, get] = &inter.figures[..] else {
            panic!("expected three interleaved figures");
        };
        let protected_ratio = protected.ratio();
        row([
            "`GET /auth/protected`, valid Bearer token (`-t2 -c32`)",
            &throughput(&protected.pooled),
            &format!(
                "hello component (`GET /static`), same runtime, served alongside: {}. Ratio: {} (each round's throughput over the mean of the hello rounds either side; {} s per run)",
                throughput(&inter.hello),
                rounds_note(protected),
                inter.round_secs
            ),
            &format!("{protected_ratio:.2}"),
            &format!("≥ {PROTECTED_GOAL:.2}"),
            verdict(protected_ratio >= PROTECTED_GOAL),
        ]);
        // The default instance against the keyed one, round by round.
        let against: Vec<f64> = protected
            .rounds
            .iter()
            .zip(&keyed.rounds)
            .map(|(p, k)| (p.ok_per_sec() / k.ok_per_sec() - 1.0) * 100.0)
            .collect();
        let (lo, hi) = against
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
                (lo.min(x), hi.max(x))
            });
        row([
            "`GET /auth/protected`, a second instance with `jwt_secret` set (`-t2 -c32`, in the same rounds): 1 variable read + 1 store `get` instead of 1 + 2",
            &throughput(&keyed.pooled),
            &format!(
                "hello, as above. Ratio: {}. The default instance, which also reads the signing key from the store (the row above): {} req/s, {:+.0}% against this one (median of the rounds, range {lo:+.0}% to {hi:+.0}%)",
                rounds_note(keyed),
                rate(protected.pooled.ok_per_sec()),
                rounds::median(&against)
            ),
            &format!("{:.2}", keyed.ratio()),
            "",
            "",
        ]);
        row([
            "hello `GET /get?key=k` (`-t2 -c32`, in the same rounds): opens the store, one `get`: the floor of a route that reads one stored record",
            &throughput(&get.pooled),
            &format!(
                "hello `GET /static`, as above. Ratio: {}. `/auth/protected` must read the user record (a store open and a `get` at least), so this is a ceiling for its ratio",
                rounds_note(get)
            ),
            &format!("{:.2}", get.ratio()),
            "",
            "",
        ]);
        let c = self.busy_connections;
        let verify_floor = self.cores as f64 / b.verify.as_secs_f64();
        row([
            &format!("login, every core busy (`-t{} -c{c}`)", self.cores.min(c)),
            &throughput(&self.login_busy),
            &format!(
                "cores ÷ native verify: {} ÷ {:.1} ms = {:.1} /s",
                self.cores, verify_ms, verify_floor
            ),
            &format!("{:.2}", self.login_busy.ok_per_sec() / verify_floor),
            "",
            "",
        ]);
        let hash_floor = self.cores as f64 / b.hash.as_secs_f64();
        row([
            &format!(
                "registration, a new username per request (`-t{} -c{c}`; each hashes with bcrypt)",
                self.cores.min(c)
            ),
            &throughput(&self.register),
            &format!(
                "cores ÷ native bcrypt hash: {} ÷ {:.1} ms (median of {}) = {:.1} /s",
                self.cores,
                ms(b.hash),
                b.hashes,
                hash_floor
            ),
            &format!("{:.2}", self.register.ok_per_sec() / hash_floor),
            "",
            "",
        ]);
        let kib = self.wasm_bytes as f64 / 1024.0;
        let cargo_kib = self.cargo_wasm_bytes as f64 / 1024.0;
        row([
            &format!("served component size (`{}`, spin.toml's `source`)", self.wasm_name),
            &format!("{} bytes ({kib:.1} KiB)", thousands(self.wasm_bytes as f64)),
            &format!(
                "built by `{}`; cargo's `secure_backend.wasm` before it: {} bytes ({cargo_kib:.1} KiB); {}",
                self.build_command,
                thousands(self.cargo_wasm_bytes as f64),
                self.wasm_opt
            ),
            "",
            &format!("≤ {WASM_GOAL_KIB} KiB"),
            verdict(self.wasm_bytes <= WASM_GOAL_KIB * 1024),
        ]);
        let calls = self.host_calls;
        row([
            "hello `GET /static`, sequential p50 (no host call)",
            &format!(
                "{:.2} ms (p99 {:.2} ms)",
                calls.baseline.p50_ms, calls.baseline.p99_ms
            ),
            &format!(
                "this client, {} rounds of one request of each kind below, interleaved",
                calls.rounds
            ),
            "",
            "",
            "",
        ]);
        for c in &calls.calls {
            row([
                &format!("one host call under this runtime: {}", c.call),
                &format!(
                    "{:+.2} ms over `/static` (p50 {:.2} ms, p99 {:.2} ms)",
                    c.latency.p50_ms - calls.baseline.p50_ms,
                    c.latency.p50_ms,
                    c.latency.p99_ms
                ),
                &format!(
                    "hello `{}`: {}",
                    c.request,
                    if c.call.starts_with("store") {
                        "opens the store, makes that one call, answers"
                    } else {
                        "reads one Spin variable, answers"
                    }
                ),
                "",
                "",
                "",
            ]);
        }
        for r in self.routes {
            let what = if r.request.is_empty() {
                format!("`{}` → {}", r.route, r.status)
            } else {
                format!("`{}` ({}) → {}", r.route, r.request, r.status)
            };
            let store = if r.store.0 == r.store.1 {
                ops(&r.store.0)
            } else {
                format!("{} to {}", ops(&r.store.0), ops(&r.store.1))
            };
            row([
                &format!("per request: {what}"),
                &format!(
                    "store calls: {store}; variable reads: {}",
                    span(r.variable_reads.0, r.variable_reads.1)
                ),
                &format!(
                    "counted in-process over {} requests; native handler time {}",
                    r.samples,
                    short_time(r.native_time)
                ),
                "",
                "",
                "",
            ]);
        }

        let header = [
            "figure",
            "measured",
            "compared with (same run)",
            "ratio",
            "goal",
            "result",
        ];
        let mut out = String::new();
        out.push_str(&format!("| {} |\n", header.join(" | ")));
        out.push_str(&format!("|{}\n", "---|".repeat(header.len())));
        for r in rows {
            let cells: Vec<String> = r.iter().map(|c| c.replace('|', "\\|")).collect();
            out.push_str(&format!("| {} |\n", cells.join(" | ")));
        }
        out
    }
}
