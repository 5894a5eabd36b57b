//! The one table the benchmark prints (markdown), with the goals of issue 8.

use crate::load::Load;
use crate::native::{Bcrypt, RouteCost, StoreOps};
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
    pub login_sequential: Load,
    pub hello: Load,
    pub protected: Load,
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
        let run = if self.quick {
            format!(
                "quick (`--quick`: {} s per row, {} s warm-ups): rough figures",
                t.row, t.warmup
            )
        } else {
            format!(
                "full ({} s per row, {} s for sequential login, {} s warm-ups)",
                t.row, t.login_sequential, t.warmup
            )
        };
        row(["date", &self.date, "", "", "", ""]);
        row(["run", &run, "", "", "", ""]);
        row(["machine", &self.machine, "", "", "", ""]);
        let busy = format!(
            "{} when measuring began, {} at the end (above the core count, something else competed for the CPU)",
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

        let b = self.bcrypt;
        let verify_ms = ms(b.verify);
        let login = &self.login_sequential;
        let login_ratio = login.p50_ms / verify_ms;
        row([
            "login p50, sequential (`-t1 -c1`)",
            &format!("{:.1} ms{}", login.p50_ms, errors(login)),
            &format!(
                "one native bcrypt verify at cost {} (the service's default): {:.1} ms (median of {})",
                b.cost, verify_ms, b.verifies
            ),
            &format!("{login_ratio:.2}"),
            &format!("≤ {LOGIN_GOAL:.2}"),
            verdict(login_ratio <= LOGIN_GOAL),
        ]);
        row([
            "login p99, sequential",
            &format!(
                "{:.1} ms ({} logins, {} ok/s)",
                login.p99_ms,
                login.requests,
                rate(login.ok_per_sec())
            ),
            "",
            &format!("{:.2}", login.p99_ms / verify_ms),
            "",
            "",
        ]);
        let protected_ratio = self.protected.ok_per_sec() / self.hello.ok_per_sec();
        row([
            "`GET /auth/protected`, valid Bearer token (`-t2 -c32`)",
            &throughput(&self.protected),
            &format!(
                "hello component (`GET /static`), same runtime: {}",
                throughput(&self.hello)
            ),
            &format!("{protected_ratio:.2}"),
            &format!("≥ {PROTECTED_GOAL:.2}"),
            verdict(protected_ratio >= PROTECTED_GOAL),
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
