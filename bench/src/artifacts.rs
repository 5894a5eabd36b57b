//! Builds what the benchmark serves, as `spin build` would, and finds it
//! wherever cargo puts it (`CARGO_TARGET_DIR`, a cargo config, or the
//! default `target/`): the service, the hello fixture and the bcrypt probe
//! (`bench/bcrypt-probe`), the last built as the service is (the same
//! release profile, copied into its manifest, then `wasm-opt` with the
//! flags of `tools/build-component`).

use anyhow::{bail, Context as _, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The repository root (the workspace holding this crate).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("bench/ sits in the repository")
        .to_owned()
}

/// The hello-world fixture: its own cargo workspace with its own spin.toml.
pub fn hello_dir() -> PathBuf {
    repo_root().join("tests/host/hello")
}

/// The bcrypt probe: one bcrypt verification per request, nothing else. Its
/// own cargo workspace with its own spin.toml.
pub fn probe_dir() -> PathBuf {
    repo_root().join("bench/bcrypt-probe")
}

/// The version of `package` in the Cargo.lock of the workspace at `dir`.
pub fn locked_version(dir: &Path, package: &str) -> Option<String> {
    let lock: toml::Table =
        toml::from_str(&std::fs::read_to_string(dir.join("Cargo.lock")).ok()?).ok()?;
    lock.get("package")?
        .as_array()?
        .iter()
        .find(|p| p.get("name").and_then(|n| n.as_str()) == Some(package))?
        .get("version")?
        .as_str()
        .map(str::to_owned)
}

fn cargo() -> Command {
    // `cargo run` sets CARGO to the cargo it is; fall back to PATH's.
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(repo_root());
    cmd
}

/// The target directory of the workspace whose manifest is `manifest`
/// (wherever `CARGO_TARGET_DIR` or a cargo config puts it).
fn target_dir(manifest: &Path) -> Result<PathBuf> {
    let out = cargo()
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--manifest-path",
        ])
        .arg(manifest)
        .stderr(Stdio::inherit())
        .output()
        .context("run cargo metadata")?;
    if !out.status.success() {
        bail!(
            "cargo metadata --manifest-path {} failed",
            manifest.display()
        );
    }
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    Ok(PathBuf::from(
        meta["target_directory"]
            .as_str()
            .context("cargo metadata: no target_directory")?,
    ))
}

/// A fixture component (a workspace of its own in `dir`), built for
/// wasm32-wasip1 in release into `target`.
fn build_fixture(dir: &Path, target: &Path) -> Result<()> {
    let manifest = dir.join("Cargo.toml");
    run_cargo(&[
        "build",
        "--release",
        "--target",
        "wasm32-wasip1",
        "--manifest-path",
        manifest.to_str().context("UTF-8 path")?,
        "--target-dir",
        target.to_str().context("UTF-8 path")?,
    ])
}

fn run_cargo(args: &[&str]) -> Result<()> {
    eprintln!("bench: cargo {}", args.join(" "));
    let status = cargo().args(args).status().context("run cargo")?;
    if !status.success() {
        bail!("cargo {} failed", args.join(" "));
    }
    Ok(())
}

/// Everything the run serves.
pub struct Artifacts {
    /// The workspace's target directory (state and caches go under it too).
    pub target_dir: PathBuf,
    /// The component `spin.toml` names as its `source`: what Spin serves.
    pub service_wasm: PathBuf,
    /// cargo's own output, before any post-processing of the build command.
    pub cargo_wasm: PathBuf,
    /// The build command of `spin.toml`, as run.
    pub build_command: String,
    pub hello_wasm: PathBuf,
    /// The bcrypt probe, as served (after `wasm-opt` when it is installed).
    pub probe_wasm: PathBuf,
    /// How the probe was built, for the report.
    pub probe_build: String,
    /// The test host, when the run uses it.
    pub test_host: Option<PathBuf>,
}

/// `[component.ID]`'s `source` and `build.command` in a manifest.
fn component_build(manifest: &Path, id: &str) -> Result<(String, String)> {
    let text = std::fs::read_to_string(manifest)
        .with_context(|| format!("read {}", manifest.display()))?;
    let table: toml::Table = toml::from_str(&text)?;
    let component = table
        .get("component")
        .and_then(|c| c.get(id))
        .with_context(|| format!("no [component.{id}] in {}", manifest.display()))?;
    let source = component
        .get("source")
        .and_then(|s| s.as_str())
        .context("the component has no `source` path")?;
    let command = component
        .get("build")
        .and_then(|b| b.get("command"))
        .and_then(|c| c.as_str())
        .context("the component has no `build.command`")?;
    Ok((source.to_owned(), command.to_owned()))
}

/// Builds the service as `spin build` does (the manifest's build command, in
/// a shell at the repository root, with `CARGO_TARGET_DIR` pointing at the
/// workspace's target directory as the e2e harness does), the hello fixture
/// for `wasm32-wasip1` in release, the bcrypt probe as the service is built
/// ([`build_probe`]), and the test host when asked.
pub fn build(with_test_host: bool) -> Result<Artifacts> {
    let root = repo_root();
    let target = target_dir(&root.join("Cargo.toml"))?;
    let (source, command) = component_build(&root.join("spin.toml"), "secure-backend")?;
    eprintln!("bench: {command}   (spin.toml's build command)");
    let status = Command::new("sh")
        .args(["-c", &command])
        .current_dir(&root)
        .env("CARGO_TARGET_DIR", &target)
        .status()
        .context("run the build command")?;
    if !status.success() {
        bail!("the build command `{command}` failed");
    }
    // `source` is relative to the manifest; a path under `target/` is
    // wherever the target directory really is.
    let service_wasm = match Path::new(&source).strip_prefix("target") {
        Ok(rest) => target.join(rest),
        Err(_) => root.join(&source),
    };
    // The fixture is a workspace of its own; its build goes under ours (as
    // the test host's tests do), not into an untracked tests/host/hello/target.
    let hello_target = target.join("bench-hello");
    build_fixture(&hello_dir(), &hello_target)?;
    let (probe_wasm, probe_build) = build_probe(&root, &target)?;
    let test_host = if with_test_host {
        // Release: the host's own code (HTTP, SQLite) is part of what is timed.
        run_cargo(&["build", "--release", "-p", "spin-test-host"])?;
        Some(target.join("release/spin-test-host"))
    } else {
        None
    };
    let artifacts = Artifacts {
        service_wasm,
        cargo_wasm: target.join("wasm32-wasip1/release/secure_backend.wasm"),
        build_command: command,
        hello_wasm: hello_target.join("wasm32-wasip1/release/hello.wasm"),
        probe_wasm,
        probe_build,
        target_dir: target,
        test_host,
    };
    for file in [
        &artifacts.service_wasm,
        &artifacts.hello_wasm,
        &artifacts.probe_wasm,
    ]
    .into_iter()
    .chain(&artifacts.test_host)
    {
        if !file.is_file() {
            bail!("the build did not produce {}", file.display());
        }
    }
    Ok(artifacts)
}

/// The `wasm-opt` flags of `tools/build-component` (its `flags="…"`), so
/// that the probe gets the very step the service does.
fn build_component_flags(root: &Path) -> Result<Vec<String>> {
    let script = root.join("tools/build-component");
    let text =
        std::fs::read_to_string(&script).with_context(|| format!("read {}", script.display()))?;
    let flags = text
        .split_once("flags=\"")
        .and_then(|(_, rest)| rest.split_once('"'))
        .map(|(flags, _)| flags.split_whitespace().map(str::to_owned).collect())
        .filter(|flags: &Vec<String>| !flags.is_empty())
        .with_context(|| {
            format!(
                "no `flags=\"…\"` (the wasm-opt flags) in {}: the bcrypt probe must get the service's wasm-opt step",
                script.display()
            )
        })?;
    Ok(flags)
}

/// Builds the bcrypt probe as the service is built: cargo's release build
/// for `wasm32-wasip1` (the probe's manifest copies the service's release
/// profile: `opt-level = "z"`, LTO, one codegen unit, `bcrypt` and
/// `blowfish` at `opt-level = 3`), into `<target>/bench-bcrypt-probe`, then
/// binaryen's `wasm-opt` with `tools/build-component`'s flags when it is on
/// `PATH` (as that script does; without it the module is served as cargo
/// built it, as the service's would be). The script's other step,
/// `strip-wasi-worlds.py`, only drops custom sections that no code reads,
/// so it is left out. Refuses a probe whose locked `bcrypt` or `blowfish`
/// differs from the service's. Returns the served file and a description.
fn build_probe(root: &Path, target: &Path) -> Result<(PathBuf, String)> {
    let dir = probe_dir();
    let probe_target = target.join("bench-bcrypt-probe");
    build_fixture(&dir, &probe_target)?;
    let mut versions = Vec::new();
    for package in ["bcrypt", "blowfish"] {
        let service = locked_version(root, package);
        let probe = locked_version(&dir, package);
        if service.is_none() || service != probe {
            bail!(
                "{package}: the service's Cargo.lock has {service:?}, bench/bcrypt-probe/Cargo.lock {probe:?}: \
                 the probe must run the service's version (cargo update --manifest-path {} -p {package} --precise <version>)",
                dir.join("Cargo.toml").display()
            );
        }
        versions.push(format!("{package} {}", service.unwrap_or_default()));
    }
    let release = probe_target.join("wasm32-wasip1/release");
    let built = release.join("bcrypt_probe.wasm");
    let served = release.join("bcrypt_probe.opt.wasm");
    let flags = build_component_flags(root)?;
    let profile = "cargo's release build with the service's profile (opt-level z, LTO, 1 codegen unit; bcrypt and blowfish at opt-level 3)";
    let wasm_opt = std::process::Command::new("wasm-opt")
        .arg("--version")
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned());
    let step = match wasm_opt {
        Some(version) => {
            eprintln!(
                "bench: wasm-opt {} (tools/build-component's flags) on the bcrypt probe",
                flags.join(" ")
            );
            let status = std::process::Command::new("wasm-opt")
                .args(&flags)
                .arg(&built)
                .arg("-o")
                .arg(&served)
                .status()
                .context("run wasm-opt")?;
            if !status.success() {
                bail!("wasm-opt failed on {}", built.display());
            }
            format!(
                "then `wasm-opt {}` with the rest of `tools/build-component`'s flags ({version})",
                flags[0]
            )
        }
        None => {
            std::fs::copy(&built, &served)?;
            "no wasm-opt on PATH: served as cargo built it (as the service would be)".to_owned()
        }
    };
    Ok((
        served,
        format!(
            "`{}` ({}): {profile}, {step}",
            dir.strip_prefix(root).unwrap_or(&dir).display(),
            versions.join(", ")
        ),
    ))
}
