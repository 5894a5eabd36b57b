//! Serves a component under `spin up` or the repository's test host, as the
//! e2e harness (`tests/e2e/harness.rs`) does: a free loopback port, a fresh
//! state directory (Spin's default SQLite store lives in it), a copy of the
//! manifest whose `source` is the absolute path of the build, and a process
//! group of its own that is stopped with SIGTERM (`spin up` then stops its
//! `spin trigger http` child; SIGKILL would orphan it).
//!
//! Ctrl-C and SIGTERM to the benchmark stop every server it started too:
//! a signal handler raises a flag, and a watcher thread stops the load
//! generator and the servers' groups, then exits.

use anyhow::{bail, Context as _, Result};
use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Runtime {
    Spin,
    TestHost,
}

impl Runtime {
    pub fn label(self) -> &'static str {
        match self {
            Runtime::Spin => "spin up",
            Runtime::TestHost => {
                "spin-test-host (wasmtime; NOT Spin: proves behaviour, not Spin's speed)"
            }
        }
    }
}

/// Whether `spin` runs from `PATH`; its `--version` line if so.
pub fn spin_version() -> Option<String> {
    let out = Command::new("spin")
        .arg("--version")
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// What to serve.
pub struct App<'a> {
    /// The original `spin.toml` (variables, routes).
    pub manifest: &'a Path,
    /// The component's id in that manifest.
    pub component: &'a str,
    pub wasm: &'a Path,
    pub variables: &'a [(String, String)],
}

/// Process groups of running servers, for the signal watcher.
static GROUPS: Mutex<Vec<i32>> = Mutex::new(Vec::new());
/// Temporary directories to remove when interrupted (no destructor runs then).
static SCRATCH: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
/// The load generator's pid while it runs (0: none).
pub static LOAD_PID: AtomicI32 = AtomicI32::new(0);
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// Stops everything this run started on Ctrl-C or SIGTERM, then exits 130.
pub fn install_signal_handlers() {
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe {
            libc::signal(signal, on_signal as *const () as libc::sighandler_t);
        }
    }
    std::thread::spawn(|| loop {
        if STOP.load(Ordering::SeqCst) {
            eprintln!("\nbench: interrupted; stopping the load generator and servers");
            let load = LOAD_PID.load(Ordering::SeqCst);
            if load > 0 {
                // SAFETY: kill(2) on a child's pid.
                unsafe { libc::kill(load, libc::SIGTERM) };
            }
            let groups = GROUPS.lock().map(|g| g.clone()).unwrap_or_default();
            for &group in &groups {
                stop_group(group);
            }
            for dir in SCRATCH.lock().map(|d| d.clone()).unwrap_or_default() {
                let _ = std::fs::remove_dir_all(dir);
            }
            std::process::exit(130);
        }
        std::thread::sleep(Duration::from_millis(50));
    });
}

pub fn interrupted() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// A temporary directory in `base`, removed even when the run is interrupted.
pub fn scratch_dir(base: &Path) -> Result<tempfile::TempDir> {
    std::fs::create_dir_all(base)?;
    let dir = tempfile::tempdir_in(base)?;
    if let Ok(mut dirs) = SCRATCH.lock() {
        dirs.push(dir.path().to_owned());
    }
    Ok(dir)
}

pub struct Server {
    pub addr: SocketAddr,
    child: Child,
    stopped: bool,
    /// The last lines of the server's stderr, to explain a failure.
    stderr: Arc<Mutex<VecDeque<String>>>,
    /// The server's state directory (the SQLite store); removed after it stops.
    _state: tempfile::TempDir,
}

impl Server {
    pub fn start(
        runtime: Runtime,
        app: &App,
        test_host: Option<&Path>,
        target_dir: &Path,
        state_base: &Path,
    ) -> Result<Server> {
        let state = scratch_dir(state_base)?;
        let listen = match runtime {
            // The test host binds port 0 and says which port it got.
            Runtime::TestHost => "127.0.0.1:0".to_owned(),
            Runtime::Spin => format!("127.0.0.1:{}", free_port()?),
        };
        let mut cmd = match runtime {
            Runtime::Spin => {
                let mut cmd = Command::new("spin");
                cmd.arg("up")
                    .arg("--from")
                    .arg(manifest_copy(app, state.path())?)
                    .arg("--state-dir")
                    .arg(state.path())
                    .args(["--listen", &listen]);
                for (name, value) in app.variables {
                    cmd.env(format!("SPIN_VARIABLE_{}", name.to_uppercase()), value);
                }
                cmd
            }
            Runtime::TestHost => {
                let host = test_host.context("the test host was not built")?;
                let mut cmd = Command::new(host);
                cmd.arg("--wasm")
                    .arg(app.wasm)
                    .arg("--manifest")
                    .arg(app.manifest)
                    .arg("--component")
                    .arg(app.component)
                    .arg("--store")
                    .arg(state.path().join("sqlite_key_value.db"))
                    .arg("--cache-dir")
                    .arg(target_dir.join("bench-cache"))
                    .args(["--listen", &listen]);
                for (name, value) in app.variables {
                    cmd.arg("--var").arg(format!("{name}={value}"));
                }
                cmd
            }
        };
        // Only the variables this run sets: none inherited from the shell.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("SPIN_VARIABLE_") {
                cmd.env_remove(name);
            }
        }
        stop_with_parent(&mut cmd);
        // Started and registered under the lock the signal watcher takes, so
        // a server is either in the watcher's list or never started.
        let mut groups = GROUPS.lock().unwrap_or_else(|e| e.into_inner());
        if interrupted() {
            bail!("interrupted");
        }
        let mut child = cmd
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("start {}", runtime.label()))?;
        groups.push(child.id() as i32);
        drop(groups);
        let stderr = Arc::new(Mutex::new(VecDeque::new()));
        let (announced, address) = std::sync::mpsc::channel();
        if let Some(err) = child.stderr.take() {
            let tail = Arc::clone(&stderr);
            std::thread::spawn(move || {
                for line in BufReader::new(err).lines().map_while(Result::ok) {
                    if let Some(addr) = line.strip_prefix("Serving http://") {
                        let _ = announced.send(addr.trim().to_owned());
                    }
                    let mut tail = tail.lock().unwrap_or_else(|e| e.into_inner());
                    if tail.len() == 40 {
                        tail.pop_front();
                    }
                    tail.push_back(line);
                }
            });
        }
        // The component's stdout (the audit log) and Spin's banner: drained
        // so that the server never blocks on a full pipe.
        if let Some(out) = child.stdout.take() {
            std::thread::spawn(move || {
                let mut out = BufReader::new(out);
                let _ = std::io::copy(&mut out, &mut std::io::sink());
            });
        }
        let mut server = Server {
            addr: "127.0.0.1:0".parse()?,
            child,
            stopped: false,
            stderr,
            _state: state,
        };
        server.addr = server.wait_until_ready(&listen, &address)?;
        Ok(server)
    }

    fn wait_until_ready(
        &mut self,
        listen: &str,
        announced: &std::sync::mpsc::Receiver<String>,
    ) -> Result<SocketAddr> {
        let deadline = Instant::now() + Duration::from_secs(180);
        let mut addr: Option<SocketAddr> =
            listen.parse().ok().filter(|a: &SocketAddr| a.port() != 0);
        while Instant::now() < deadline && !interrupted() {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "server exited ({status}) before serving:\n{}",
                    self.stderr_tail()
                );
            }
            if addr.is_none() {
                addr = announced.try_recv().ok().and_then(|a| a.parse().ok());
            }
            if let Some(addr) = addr {
                if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                    return Ok(addr);
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!("server did not start serving:\n{}", self.stderr_tail())
    }

    pub fn stderr_tail(&self) -> String {
        let tail = self.stderr.lock().unwrap_or_else(|e| e.into_inner());
        tail.iter().cloned().collect::<Vec<_>>().join("\n")
    }

    /// SIGTERM to the whole group; SIGKILL to whatever is left after 20 s.
    pub fn stop(mut self) {
        self.shut_down();
    }

    fn shut_down(&mut self) {
        if std::mem::replace(&mut self.stopped, true) {
            return;
        }
        let group = self.child.id() as i32;
        signal_group(group, libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut exited = false;
        while Instant::now() < deadline {
            exited = exited || matches!(self.child.try_wait(), Ok(Some(_)));
            if exited && live_in_group(group).is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let left = live_in_group(group);
        if !left.is_empty() {
            eprintln!("bench: SIGKILL to processes that outlived SIGTERM: {left:?}");
            signal_group(group, libc::SIGKILL);
        }
        let _ = self.child.wait();
        if let Ok(mut groups) = GROUPS.lock() {
            groups.retain(|&g| g != group);
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shut_down();
    }
}

/// Used by the signal watcher: SIGTERM, a grace period, then SIGKILL.
fn stop_group(group: i32) {
    signal_group(group, libc::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline && !live_in_group(group).is_empty() {
        std::thread::sleep(Duration::from_millis(20));
    }
    if !live_in_group(group).is_empty() {
        signal_group(group, libc::SIGKILL);
    }
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The manifest with the component's `source` set to the absolute path of
/// the build, written into the state directory.
fn manifest_copy(app: &App, dir: &Path) -> Result<PathBuf> {
    let text = std::fs::read_to_string(app.manifest)
        .with_context(|| format!("read {}", app.manifest.display()))?;
    let mut manifest: toml::Table = toml::from_str(&text)?;
    let component = manifest
        .get_mut("component")
        .and_then(|c| c.get_mut(app.component))
        .and_then(|c| c.as_table_mut())
        .with_context(|| format!("no [component.{}] in the manifest", app.component))?;
    component.insert(
        "source".into(),
        toml::Value::String(app.wasm.to_str().context("UTF-8 path")?.into()),
    );
    let path = dir.join("spin.toml");
    std::fs::write(&path, toml::to_string(&manifest)?)?;
    Ok(path)
}

/// SIGTERM to the server if the benchmark dies without cleaning up (Linux only).
#[cfg(target_os = "linux")]
fn stop_with_parent(cmd: &mut Command) {
    // SAFETY: prctl is async-signal-safe, as pre_exec requires.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn stop_with_parent(_cmd: &mut Command) {}

fn signal_group(group: i32, signal: i32) {
    // SAFETY: kill(2) with a negative pid signals that process group only.
    unsafe {
        libc::kill(-group, signal);
    }
}

/// Processes of the group still running (zombies do not count).
#[cfg(target_os = "linux")]
fn live_in_group(group: i32) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("stat")).ok())
        .filter_map(|stat| {
            // pid (comm) state ppid pgrp ...: comm may hold spaces, so split after ')'.
            let (head, rest) = stat.rsplit_once(')')?;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let (state, pgrp) = (*fields.first()?, fields.get(2)?.parse::<i32>().ok()?);
            (pgrp == group && state != "Z").then(|| format!("{head})"))
        })
        .collect()
}

#[cfg(not(target_os = "linux"))]
fn live_in_group(group: i32) -> Vec<String> {
    // SAFETY: signal 0 only asks whether any process of the group exists.
    if unsafe { libc::kill(-group, 0) } == 0 {
        vec![format!("process group {group}")]
    } else {
        Vec::new()
    }
}
