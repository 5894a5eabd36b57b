//! The load generator (Debian's `wrk`, driven by Lua scripts) and a tiny
//! HTTP/1.1 client for the set-up requests (register, log in).

use anyhow::{bail, ensure, Context as _, Result};
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Reports what wrk measured on one line the benchmark parses (latencies in
/// µs), and on a second the latency at the midpoints of [`QUANTILES`] equal
/// slices of the requests, so that several runs' percentiles can be pooled.
const DONE: &str = r#"
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d p50_us=%.0f p99_us=%.0f connect=%d read=%d write=%d status=%d timeout=%d\n",
    summary.requests, summary.duration, latency:percentile(50.0), latency:percentile(99.0),
    e.connect, e.read, e.write, e.status, e.timeout))
  local q = {}
  for k = 0, 999 do
    q[#q + 1] = string.format("%.0f", latency:percentile((k + 0.5) / 10))
  end
  io.write("BENCHQ " .. table.concat(q, " ") .. "\n")
end
"#;

/// How many quantiles `DONE` prints (every 0.1 % of the requests).
const QUANTILES: usize = 1000;

fn on_path(name: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path)
            .any(|dir| std::fs::metadata(dir.join(name)).is_ok_and(|m| m.is_file()))
    })
}

/// Makes sure `wrk` is installed (as root, installs Debian's package) and
/// returns its version line.
pub fn ensure_wrk() -> Result<String> {
    if !on_path("wrk") {
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        if !root || !on_path("apt-get") {
            bail!(
                "wrk (the load generator) is not installed. Install it with\n    \
                 sudo apt-get install -y wrk\n(Debian/Ubuntu; `brew install wrk` on macOS), then run this again."
            );
        }
        eprintln!("bench: wrk is missing; installing Debian's package (apt-get install -y wrk)");
        let install = || {
            Command::new("apt-get")
                .args(["install", "-y", "wrk"])
                .env("DEBIAN_FRONTEND", "noninteractive")
                .status()
                .is_ok_and(|s| s.success())
        };
        if !install() {
            let _ = Command::new("apt-get").arg("update").status();
            if !install() {
                bail!("apt-get install -y wrk failed; install wrk by hand and run this again");
            }
        }
    }
    // `wrk -v` prints its version and usage, and exits non-zero.
    let out = Command::new("wrk").arg("-v").output().context("run wrk")?;
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let first = text.lines().next().unwrap_or("wrk").trim();
    // "wrk debian/4.1.0-3+b2 [epoll] Copyright (C) 2012 Will Glozer"
    Ok(first.split(" Copyright").next().unwrap_or(first).to_owned())
}

/// The Lua script for one kind of load.
pub enum Script {
    /// The same GET again and again, with an optional Bearer token.
    Get { token: Option<String> },
    /// The same login again and again.
    Login { username: String, password: String },
    /// Registrations, each with a username no other request used.
    Register { prefix: String, password: String },
}

impl Script {
    fn lua(&self) -> String {
        let body = match self {
            Script::Get { token } => {
                let auth = token
                    .as_ref()
                    .map(|t| format!("wrk.headers[\"Authorization\"] = \"Bearer {t}\"\n"))
                    .unwrap_or_default();
                format!("wrk.method = \"GET\"\n{auth}")
            }
            Script::Login { username, password } => {
                let json = serde_json::json!({ "username": username, "password": password });
                format!(
                    "wrk.method = \"POST\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\n\
                     wrk.body = [[{json}]]\n"
                )
            }
            Script::Register { prefix, password } => {
                // Each wrk thread has its own Lua state: `setup` (in the main
                // state) numbers the threads, `request` numbers the requests.
                let password = serde_json::to_string(password).expect("a string");
                format!(
                    r#"local counter = 0
local threads = 0
function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end
function request()
  counter = counter + 1
  local body = '{{"username":"{prefix}' .. tid .. '_' .. counter .. '","password":{password}}}'
  return wrk.format("POST", nil, {{["Content-Type"] = "application/json"}}, body)
end
"#
                )
            }
        };
        body + DONE
    }
}

/// One wrk run's figures.
#[derive(Clone, Copy, Debug, Default)]
pub struct Load {
    pub requests: u64,
    pub seconds: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Socket errors (connect, read, write) and timeouts.
    pub socket_errors: u64,
    /// Responses with a status of 400 or more.
    pub status_errors: u64,
}

impl Load {
    /// Successful responses per second.
    pub fn ok_per_sec(&self) -> f64 {
        self.requests.saturating_sub(self.status_errors) as f64 / self.seconds
    }
}

/// One wrk run's figures and its latency quantiles, for pooling.
#[derive(Clone, Debug, Default)]
pub struct Run {
    pub load: Load,
    /// Latency (ms) at the midpoint of each of `QUANTILES` equal slices of
    /// the run's requests, in ascending order.
    pub quantiles_ms: Vec<f64>,
}

/// Several runs as one: their requests, errors and durations added, p50 and
/// p99 of all their requests together (each run's quantiles weighted by its
/// request count, so exact to about 0.1 % of the requests).
pub fn pool(runs: &[Run]) -> Load {
    let mut points: Vec<(f64, f64)> = runs
        .iter()
        .filter(|r| !r.quantiles_ms.is_empty())
        .flat_map(|r| {
            let weight = r.load.requests as f64 / r.quantiles_ms.len() as f64;
            r.quantiles_ms.iter().map(move |&ms| (ms, weight))
        })
        .collect();
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total: f64 = points.iter().map(|p| p.1).sum();
    let percentile = |p: f64| {
        let rank = p / 100.0 * total;
        let mut seen = 0.0;
        for &(ms, weight) in &points {
            seen += weight;
            if seen >= rank {
                return ms;
            }
        }
        points.last().map_or(0.0, |p| p.0)
    };
    let sum = |f: fn(&Load) -> u64| runs.iter().map(|r| f(&r.load)).sum::<u64>();
    Load {
        requests: sum(|l| l.requests),
        seconds: runs.iter().map(|r| r.load.seconds).sum(),
        p50_ms: percentile(50.0),
        p99_ms: percentile(99.0),
        socket_errors: sum(|l| l.socket_errors),
        status_errors: sum(|l| l.status_errors),
    }
}

pub struct Wrk {
    pub dir: PathBuf,
}

impl Wrk {
    /// `wrk -t threads -c connections -d secs` against `url` with `script`.
    pub fn run(
        &self,
        url: &str,
        script: &Script,
        threads: usize,
        connections: usize,
        secs: u64,
    ) -> Result<Load> {
        Ok(self.sample(url, script, threads, connections, secs)?.load)
    }

    /// As [`Wrk::run`], with the run's latency quantiles (for [`pool`]).
    pub fn sample(
        &self,
        url: &str,
        script: &Script,
        threads: usize,
        connections: usize,
        secs: u64,
    ) -> Result<Run> {
        let file = self.dir.join("script.lua");
        std::fs::write(&file, script.lua())?;
        run_wrk(&file, url, threads.min(connections), connections, secs)
    }
}

fn run_wrk(script: &Path, url: &str, threads: usize, connections: usize, secs: u64) -> Result<Run> {
    let child = Command::new("wrk")
        .arg(format!("-t{threads}"))
        .arg(format!("-c{connections}"))
        .arg(format!("-d{secs}s"))
        .args(["--timeout", "10s", "-s"])
        .arg(script)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("start wrk")?;
    crate::server::LOAD_PID.store(child.id() as i32, Ordering::SeqCst);
    let out = child.wait_with_output();
    crate::server::LOAD_PID.store(0, Ordering::SeqCst);
    let out = out.context("wait for wrk")?;
    if crate::server::interrupted() {
        // wrk stops early on Ctrl-C and still reports: not a measurement.
        bail!("interrupted");
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().find_map(|l| l.strip_prefix("BENCH "));
    let (true, Some(line)) = (out.status.success(), line) else {
        bail!(
            "wrk {url} failed ({}):\n{stdout}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let field = |name: &str| -> Result<f64> {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .with_context(|| format!("wrk output has no {name}: {line}"))?
            .parse::<f64>()
            .with_context(|| format!("wrk output: {name}"))
    };
    let quantiles_ms = stdout
        .lines()
        .find_map(|l| l.strip_prefix("BENCHQ "))
        .map(|l| {
            l.split_whitespace()
                .map(|us| us.parse::<f64>().map(|us| us / 1e3))
                .collect::<Result<Vec<f64>, _>>()
        })
        .transpose()
        .context("wrk output: quantiles")?
        .unwrap_or_default();
    ensure!(
        quantiles_ms.len() == QUANTILES,
        "wrk output has {} quantiles, not {QUANTILES}",
        quantiles_ms.len()
    );
    let load = Load {
        requests: field("requests")? as u64,
        seconds: field("duration_us")? / 1e6,
        p50_ms: field("p50_us")? / 1e3,
        p99_ms: field("p99_us")? / 1e3,
        socket_errors: (field("connect")? + field("read")? + field("write")? + field("timeout")?)
            as u64,
        status_errors: field("status")? as u64,
    };
    Ok(Run { load, quantiles_ms })
}

/// One HTTP/1.1 exchange on a fresh connection: (status, body).
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<(u16, Vec<u8>)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("HTTP response without a header end")?;
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("HTTP response without a status")?;
    let body = &raw[split + 4..];
    let body = if head.contains("transfer-encoding: chunked") {
        dechunk(body)?
    } else {
        body.to_vec()
    };
    Ok((status, body))
}

fn dechunk(mut raw: &[u8]) -> Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let end = raw
            .windows(2)
            .position(|w| w == b"\r\n")
            .context("bad chunk")?;
        let size_text = String::from_utf8_lossy(&raw[..end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .context("bad chunk size")?;
        raw = &raw[end + 2..];
        if size == 0 {
            return Ok(body);
        }
        body.extend_from_slice(raw.get(..size).context("short chunk")?);
        raw = raw.get(size + 2..).context("short chunk")?;
    }
}
