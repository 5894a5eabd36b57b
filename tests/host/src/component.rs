//! Turning the `.wasm` on disk into something that can serve requests: the
//! shared [`Engine`], core-module → component encoding (as Spin does when it
//! loads a `wasm32-wasip1` build), the compiled-component caches, the
//! [`Linker`], and the import check that names every import this host does
//! not provide.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::Path;
use std::sync::{Mutex, OnceLock};

use anyhow::{anyhow, bail, Context as _};
use sha2::{Digest, Sha256};
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, HasSelf, Linker, ResourceType};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};
use wasmtime_wasi_http::p2::bindings::ProxyPre;

use crate::instance::InstanceState;

/// Instances that may exist at once across every host in this process.
const MAX_CONCURRENT_INSTANCES: u32 = 128;

/// The process-wide engine. One engine (and one instance pool) is shared by
/// every host so that many hosts in one test binary do not each reserve a
/// pool, and so that a compiled component can be reused between them.
pub fn engine() -> anyhow::Result<&'static Engine> {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    if let Some(engine) = ENGINE.get() {
        return Ok(engine);
    }
    let mut pooling = PoolingAllocationConfig::default();
    pooling
        .total_component_instances(MAX_CONCURRENT_INSTANCES)
        .total_core_instances(MAX_CONCURRENT_INSTANCES * 8)
        .total_memories(MAX_CONCURRENT_INSTANCES * 4)
        .total_tables(MAX_CONCURRENT_INSTANCES * 4);
    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pooling));
    let engine = Engine::new(&config).map_err(anyhow::Error::from)?;
    Ok(ENGINE.get_or_init(|| engine))
}

/// What kind of binary a `.wasm` file holds.
#[derive(Debug, PartialEq, Eq)]
enum WasmKind {
    CoreModule,
    Component,
}

fn wasm_kind(bytes: &[u8]) -> anyhow::Result<WasmKind> {
    match bytes.get(..8) {
        Some([0, b'a', b's', b'm', 1, 0, 0, 0]) => Ok(WasmKind::CoreModule),
        Some([0, b'a', b's', b'm', _, _, 1, 0]) => Ok(WasmKind::Component),
        _ => bail!("not a WebAssembly module or component"),
    }
}

/// Wraps a core module in a component with the WASI preview-1 reactor
/// adapter, which is what Spin does with a `wasm32-wasip1` build.
pub fn componentize(module: &[u8]) -> anyhow::Result<Vec<u8>> {
    wit_component::ComponentEncoder::default()
        .validate(true)
        .module(module)?
        .adapter(
            "wasi_snapshot_preview1",
            wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
        )?
        .encode()
}

/// Reads, (if needed) encodes and compiles `wasm`. Compiled components are
/// cached in memory for the process and, with `cache_dir`, on disk, keyed
/// by the SHA-256 of the component and the engine's compatibility hash.
pub fn load(engine: &Engine, wasm: &Path, cache_dir: Option<&Path>) -> anyhow::Result<Component> {
    static LOADED: OnceLock<Mutex<HashMap<String, Component>>> = OnceLock::new();
    let bytes = std::fs::read(wasm).with_context(|| format!("reading {}", wasm.display()))?;
    let bytes = match wasm_kind(&bytes).with_context(|| wasm.display().to_string())? {
        WasmKind::CoreModule => componentize(&bytes)
            .with_context(|| format!("turning core module {} into a component", wasm.display()))?,
        WasmKind::Component => bytes,
    };
    let key = cache_key(engine, &bytes);
    let loaded = LOADED.get_or_init(Default::default);
    if let Some(component) = loaded.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return Ok(component.clone());
    }
    let component = match cache_dir {
        Some(dir) => load_through_disk_cache(engine, &bytes, &dir.join(format!("{key}.cwasm")))?,
        None => compile(engine, &bytes)?,
    };
    loaded
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, component.clone());
    Ok(component)
}

fn compile(engine: &Engine, bytes: &[u8]) -> anyhow::Result<Component> {
    Component::from_binary(engine, bytes)
        .map_err(anyhow::Error::from)
        .context("compiling the component")
}

fn cache_key(engine: &Engine, component: &[u8]) -> String {
    let mut engine_hash = std::collections::hash_map::DefaultHasher::new();
    engine
        .precompile_compatibility_hash()
        .hash(&mut engine_hash);
    let digest = Sha256::new()
        .chain_update(component)
        .chain_update(engine_hash.finish().to_le_bytes())
        .finalize();
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn load_through_disk_cache(
    engine: &Engine,
    bytes: &[u8],
    path: &Path,
) -> anyhow::Result<Component> {
    if path.exists() {
        // SAFETY: the file was written by `Component::serialize` below, under
        // a name derived from the component's hash and the engine's
        // compatibility hash; wasmtime still checks the header and engine
        // settings and errors (then we recompile) on a mismatch.
        if let Ok(component) = unsafe { Component::deserialize_file(engine, path) } {
            return Ok(component);
        }
    }
    let component = compile(engine, bytes)?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating cache directory {}", dir.display()))?;
    }
    let serialized = component.serialize().map_err(anyhow::Error::from)?;
    // Write then rename, so a concurrent reader never sees half a file.
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, serialized).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(component)
}

/// The linker: WASI p2 and `wasi:http` from wasmtime, plus this host's
/// Spin, key-value and config interfaces. Nothing else.
pub fn linker(engine: &Engine) -> anyhow::Result<Linker<InstanceState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    crate::bindings::HostImports::add_to_linker::<_, HasSelf<InstanceState>>(&mut linker, |s| s)?;
    Ok(linker)
}

/// Checks every import against the linker and pre-instantiates the
/// component for `wasi:http/incoming-handler`. Fails naming each import the
/// host does not provide (instead of trapping later).
pub fn pre_instantiate(
    engine: &Engine,
    component: &Component,
) -> anyhow::Result<ProxyPre<InstanceState>> {
    let linker = linker(engine)?;
    let pre = match linker.instantiate_pre(component) {
        Ok(pre) => pre,
        Err(first) => return Err(missing_imports(engine, component, first.into())),
    };
    ProxyPre::new(pre)
        .map_err(anyhow::Error::from)
        .context("the component does not export wasi:http/incoming-handler@0.2.x")
}

/// Finds every unsatisfied import by stubbing each one the linker rejects
/// (with shadowing allowed) and trying again, then reports them all.
fn missing_imports(engine: &Engine, component: &Component, first: anyhow::Error) -> anyhow::Error {
    let component_type = component.component_type();
    let imports: Vec<(String, ComponentItem)> = component_type
        .imports(engine)
        .map(|(name, ext)| (name.to_string(), ext.ty))
        .collect();
    let mut problems = Vec::new();
    let mut error = first;
    let mut probe = match linker(engine) {
        Ok(probe) => probe,
        Err(e) => return e,
    };
    probe.allow_shadowing(true);
    for _ in 0..=imports.len() {
        let message = format!("{error:#}");
        let culprit = imports
            .iter()
            .filter(|(name, _)| message.contains(&format!("`{name}`")))
            .max_by_key(|(name, _)| name.len());
        let Some((name, item)) = culprit else {
            problems.push(message);
            break;
        };
        problems.push(format!("`{name}`: {message}"));
        if let Err(e) = stub_import(&mut probe, engine, name, item) {
            problems.push(format!("(could not look further: {e:#})"));
            break;
        }
        match probe.instantiate_pre(component) {
            Ok(_) => break,
            Err(next) => error = next.into(),
        }
    }
    anyhow!(
        "the component has {} import(s) spin-test-host does not provide:\n  - {}",
        problems.len(),
        problems.join("\n  - ")
    )
}

/// A resource type standing in for a missing import's resource.
struct MissingResource;

fn stub_import(
    linker: &mut Linker<InstanceState>,
    engine: &Engine,
    name: &str,
    item: &ComponentItem,
) -> anyhow::Result<()> {
    fn trap(
        name: String,
    ) -> impl Fn(
        wasmtime::StoreContextMut<'_, InstanceState>,
        wasmtime::component::types::ComponentFunc,
        &[wasmtime::component::Val],
        &mut [wasmtime::component::Val],
    ) -> wasmtime::Result<()>
           + Send
           + Sync
           + 'static {
        move |_, _, _, _| Err(wasmtime::format_err!("import `{name}` is not provided"))
    }
    let mut root = linker.root();
    match item {
        ComponentItem::ComponentFunc(_) => root.func_new(name, trap(name.to_string()))?,
        ComponentItem::Resource(_) => {
            root.resource(name, ResourceType::host::<MissingResource>(), |_, _| Ok(()))?
        }
        ComponentItem::ComponentInstance(instance) => {
            let mut stub = root.instance(name)?;
            for (export, ext) in instance.exports(engine) {
                match ext.ty {
                    ComponentItem::ComponentFunc(_) => {
                        stub.func_new(export, trap(format!("{name}#{export}")))?
                    }
                    ComponentItem::Resource(_) => {
                        stub.resource(export, ResourceType::host::<MissingResource>(), |_, _| {
                            Ok(())
                        })?
                    }
                    _ => {}
                }
            }
        }
        _ => bail!("cannot stand in for import `{name}`"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_modules_and_components_are_told_apart() {
        let core = wat::parse_str("(module)").unwrap();
        let component = wat::parse_str("(component)").unwrap();
        assert_eq!(wasm_kind(&core).unwrap(), WasmKind::CoreModule);
        assert_eq!(wasm_kind(&component).unwrap(), WasmKind::Component);
        assert!(wasm_kind(b"not wasm").is_err());
    }
}
