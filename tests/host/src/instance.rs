//! The per-request store data ([`InstanceState`]): WASI, wasi-http, the
//! resource table and this host's own state. One is built for every request
//! (Spin gives every request a fresh instance) and dropped with it.
//!
//! Outbound HTTP is refused with `HttpRequestDenied`, as Spin does for a
//! component without `allowed_outbound_hosts` (this host honours none).

use std::future::Future;
use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiBody, WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

use crate::keyvalue::KeyValueAccess;
use crate::output::{Channel, OutputLog};
use crate::variables::ResolvedVariables;

/// Store data of one instance.
pub struct InstanceState {
    pub(crate) wasi: WasiCtx,
    pub(crate) http: WasiHttpCtx,
    pub(crate) table: ResourceTable,
    pub(crate) hooks: SpinHttpHooks,
    pub(crate) kv: KeyValueAccess,
    pub(crate) variables: Arc<ResolvedVariables>,
}

/// What every instance of one served component shares.
#[derive(Clone)]
pub struct InstanceTemplate {
    pub output: OutputLog,
    pub environment: Arc<Vec<(String, String)>>,
    pub kv: KeyValueAccess,
    pub variables: Arc<ResolvedVariables>,
}

impl InstanceTemplate {
    /// Fresh store data for one request.
    pub fn instantiate(&self) -> InstanceState {
        let wasi = WasiCtx::builder()
            .stdout(self.output.instance_output(Channel::Stdout))
            .stderr(self.output.instance_output(Channel::Stderr))
            .envs(&self.environment)
            .build();
        InstanceState {
            wasi,
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            hooks: SpinHttpHooks,
            kv: self.kv.clone(),
            variables: self.variables.clone(),
        }
    }
}

impl WasiView for InstanceState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for InstanceState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

/// wasi-http hooks: default header rules, no outbound requests.
pub struct SpinHttpHooks;

type BoxedIo = Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>;

impl WasiHttpHooks for SpinHttpHooks {
    fn send_request(
        &mut self,
        _request: http::Request<WasiBody>,
        _options: Option<wasmtime_wasi_http::RequestOptions>,
        _fut: BoxedIo,
    ) -> Box<
        dyn Future<Output = wasmtime_wasi_http::Result<(http::Response<WasiBody>, BoxedIo)>> + Send,
    > {
        Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) })
    }
}
