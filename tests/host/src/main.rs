//! `spin-test-host`: serve a Spin component by hand, like `spin up`.
//!
//! ```text
//! spin-test-host --wasm X --manifest spin.toml --store FILE|redis://HOST:PORT[/DB]
//!                [--listen 127.0.0.1:3000] [--var name=value]... [--component ID]
//!                [--cache-dir DIR] [--workers N]
//! ```
//! `--store` names the key-value store `default`: a SQLite file (created if
//! missing), or a Redis database, as a runtime config's `url` would.
//! The component's stdout goes to this process's stdout, its stderr and the
//! host's own messages to stderr. Stop with Ctrl-C.

use std::path::PathBuf;

use anyhow::{bail, Context as _};
use spin_test_host::{HostConfig, KeyValueBackend, RunningHost};

const USAGE: &str = "usage: spin-test-host --wasm FILE --manifest spin.toml \
--store FILE|redis://HOST:PORT[/DB] [--listen ADDR] [--var name=value]... [--component ID] \
[--cache-dir DIR] [--workers N]
  --store FILE                  the key-value store is this SQLite file (Spin's default store)
  --store redis://HOST:PORT/DB  the key-value store is this Redis database (Spin's type = \"redis\")";

fn parse_args(mut args: impl Iterator<Item = String>) -> anyhow::Result<HostConfig> {
    let mut wasm = None;
    let mut manifest = None;
    let mut store = None;
    let mut cfg = HostConfig::new("", "", "");
    cfg.bind = "127.0.0.1:3000".parse()?;
    cfg.echo_output = true;
    while let Some(flag) = args.next() {
        let mut value = || args.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--wasm" => wasm = Some(PathBuf::from(value()?)),
            "--manifest" => manifest = Some(PathBuf::from(value()?)),
            "--store" => store = Some(KeyValueBackend::from_argument(&value()?)),
            "--listen" => cfg.bind = value()?.parse().context("--listen")?,
            "--component" => cfg.component = Some(value()?),
            "--cache-dir" => cfg.cache_dir = Some(PathBuf::from(value()?)),
            "--workers" => cfg.workers = value()?.parse().context("--workers")?,
            "--var" => {
                let pair = value()?;
                let (name, val) = pair
                    .split_once('=')
                    .with_context(|| format!("--var {pair}: expected name=value"))?;
                cfg.variables.insert(name.to_string(), val.to_string());
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    cfg.wasm = wasm.context("--wasm is required")?;
    cfg.manifest = manifest.context("--manifest is required")?;
    cfg.store = store.context("--store is required")?;
    Ok(cfg)
}

fn main() {
    let host = match parse_args(std::env::args().skip(1)).and_then(RunningHost::start) {
        Ok(host) => host,
        Err(e) => {
            eprintln!("Error: {e:#}");
            std::process::exit(1);
        }
    };
    eprintln!("Serving http://{}", host.addr);
    loop {
        std::thread::park();
    }
}
