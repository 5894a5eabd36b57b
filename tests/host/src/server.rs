//! The HTTP server ([`RunningHost`]): hyper 1 on a private multi-threaded
//! tokio runtime, one fresh component instance per request, Spin's request
//! preparation (routing, `spin-*` headers, absolute URI) and Spin's error
//! answers (plain 404 for unrouted paths, empty 500 when the component
//! fails). Owns start-up order and shutdown; the pieces live in the other
//! modules.

use std::collections::HashSet;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinSet;
use wasmtime::Store;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::WasiHttpView;

use crate::config::HostConfig;
use crate::instance::{InstanceState, InstanceTemplate};
use crate::keyvalue::{KeyValueAccess, KeyValueStore};
use crate::manifest::Manifest;
use crate::output::OutputLog;
use crate::routing::{RouteMatch, Router};
use crate::variables::ResolvedVariables;

/// A host serving one component; stops on [`RunningHost::stop`] or drop.
pub struct RunningHost {
    /// The address actually listened on.
    pub addr: SocketAddr,
    output: OutputLog,
    host_errors: Arc<Mutex<Vec<String>>>,
    store: Arc<KeyValueStore>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// What request handling needs, shared by all connections.
struct Server {
    component_id: String,
    router: Router,
    pre: ProxyPre<InstanceState>,
    template: InstanceTemplate,
    host_errors: Arc<Mutex<Vec<String>>>,
    echo: bool,
}

impl RunningHost {
    /// Loads everything, binds, and returns once the socket is listening.
    /// Fails (before serving anything) on a bad manifest, a required
    /// variable without a value, an import this host does not provide, or a
    /// key-value store that cannot be opened (an unreachable Redis).
    pub fn start(cfg: HostConfig) -> anyhow::Result<RunningHost> {
        let manifest = Manifest::load(&cfg.manifest)?;
        let component_id = manifest.served_component(cfg.component.as_deref())?;
        let component_decl = manifest.components[&component_id].clone();
        let variables =
            ResolvedVariables::resolve(&manifest, &component_id, &cfg.variables, |name| {
                std::env::var(name).ok()
            })?;
        let router = Router::build(&manifest.http_triggers)?;

        let engine = crate::component::engine()?;
        let component = crate::component::load(engine, &cfg.wasm, cfg.cache_dir.as_deref())?;
        let pre = crate::component::pre_instantiate(engine, &component)
            .with_context(|| format!("cannot serve {}", cfg.wasm.display()))?;

        let store = KeyValueStore::open(&cfg.store)?;
        let output = OutputLog::new(cfg.echo_output);
        let host_errors = Arc::new(Mutex::new(Vec::new()));
        let template = InstanceTemplate {
            output: output.clone(),
            environment: Arc::new(component_decl.environment.into_iter().collect()),
            kv: KeyValueAccess {
                store: store.clone(),
                allowed_labels: Arc::new(
                    component_decl
                        .key_value_stores
                        .into_iter()
                        .collect::<HashSet<_>>(),
                ),
            },
            variables: Arc::new(variables),
        };
        let server = Arc::new(Server {
            component_id,
            router,
            pre,
            template,
            host_errors: host_errors.clone(),
            echo: cfg.echo_output,
        });

        let listener = std::net::TcpListener::bind(cfg.bind)
            .with_context(|| format!("Unable to listen on {}", cfg.bind))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cfg.workers.max(1))
            .thread_name("spin-test-host-worker")
            .enable_all()
            .build()?;
        let (shutdown, shutdown_rx) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("spin-test-host".into())
            .spawn(move || {
                runtime.block_on(async move {
                    match TcpListener::from_std(listener) {
                        Ok(listener) => server.serve(listener, shutdown_rx).await,
                        Err(e) => server.record_error(format!("cannot listen: {e}")),
                    }
                });
                // Drops in-flight instances (and their store handles).
                runtime.shutdown_timeout(Duration::from_secs(5));
            })?;
        Ok(RunningHost {
            addr,
            output,
            host_errors,
            store,
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }

    /// `http://<addr><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Every complete line the component wrote to stdout, in order.
    pub fn stdout_lines(&self) -> Vec<String> {
        self.output.stdout_lines()
    }

    /// Everything the component wrote to stderr.
    pub fn stderr_text(&self) -> String {
        self.output.stderr_text()
    }

    /// Failures of the host or the component (traps, missing responses)
    /// that were answered with a 500: what `spin up` logs on its stderr.
    pub fn host_errors(&self) -> Vec<String> {
        self.host_errors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Stops serving, drops in-flight instances and closes the store (the
    /// SQLite file, or the Redis connections).
    pub fn stop(mut self) {
        self.shut_down();
    }

    fn shut_down(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.store.close();
    }
}

impl Drop for RunningHost {
    fn drop(&mut self) {
        self.shut_down();
    }
}

fn full(status: StatusCode, body: &'static str) -> Response<HyperOutgoingBody> {
    let body = if body.is_empty() {
        Empty::new()
            .map_err(|e: Infallible| match e {})
            .boxed_unsync()
    } else {
        Full::new(Bytes::from_static(body.as_bytes()))
            .map_err(|e: Infallible| match e {})
            .boxed_unsync()
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response
}

impl Server {
    async fn serve(self: Arc<Self>, listener: TcpListener, mut shutdown: oneshot::Receiver<()>) {
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, client_addr)) => {
                        let server = self.clone();
                        connections.spawn(async move {
                            let service = hyper::service::service_fn(move |req| {
                                server.clone().handle(req, client_addr)
                            });
                            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        });
                    }
                    Err(e) => {
                        self.record_error(format!("accept failed: {e}"));
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                },
            }
            while connections.try_join_next().is_some() {}
        }
        connections.shutdown().await;
    }

    fn record_error(&self, message: String) {
        if self.echo {
            eprintln!("{message}");
        }
        self.host_errors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(message);
    }

    /// Spin's `HttpServer::handle`: well-known paths, routing, execution.
    /// An `Err` makes hyper drop the connection, as Spin does when the
    /// request has no usable authority.
    async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        client_addr: SocketAddr,
    ) -> anyhow::Result<Response<HyperOutgoingBody>> {
        let path = req.uri().path().to_string();
        if let Some(well_known) = path.strip_prefix("/.well-known/spin/") {
            return Ok(match well_known {
                "health" => full(StatusCode::OK, "OK"),
                _ => full(StatusCode::NOT_FOUND, ""),
            });
        }
        let Some(route) = self.router.route(&path) else {
            return Ok(full(StatusCode::NOT_FOUND, ""));
        };
        if route.component_id != self.component_id {
            self.record_error(format!(
                "Error processing request: route {} belongs to component {:?}, which this host \
                 does not serve (it serves {:?})",
                route.raw_route, route.component_id, self.component_id
            ));
            return Ok(full(StatusCode::INTERNAL_SERVER_ERROR, ""));
        }
        let req = prepare_request(req, &route, client_addr)?;
        match self.execute(req).await {
            Ok(response) => Ok(response),
            Err(e) => {
                self.record_error(format!("Error processing request: {e:?}"));
                Ok(full(StatusCode::INTERNAL_SERVER_ERROR, ""))
            }
        }
    }

    /// Spin's `WasiHttpExecutor::execute`: a fresh instance, `handle` run on
    /// its own task so the body can stream after the head is sent.
    async fn execute(&self, req: Request<Incoming>) -> anyhow::Result<Response<HyperOutgoingBody>> {
        let mut store = Store::new(self.pre.engine(), self.template.instantiate());
        let request = store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, req)?;
        let (response_tx, response_rx) = oneshot::channel();
        let outparam = store.data_mut().http().new_response_outparam(response_tx)?;
        let pre = self.pre.clone();
        let guest = tokio::spawn(async move {
            let proxy = pre.instantiate_async(&mut store).await?;
            proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, request, outparam)
                .await
        });
        match response_rx.await {
            Ok(response) => {
                let host_errors = self.host_errors.clone();
                let echo = self.echo;
                tokio::spawn(async move {
                    let outcome = match guest.await {
                        Ok(Ok(())) => return,
                        Ok(Err(e)) => anyhow::Error::from(e).context("guest invocation failed"),
                        Err(e) => anyhow::Error::from(e).context("guest invocation panicked"),
                    };
                    let message = format!("Component error after response started: {outcome:?}");
                    if echo {
                        eprintln!("{message}");
                    }
                    host_errors
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(message);
                });
                response.map_err(|code| anyhow!("guest failed to produce a response: {code:?}"))
            }
            Err(_) => {
                guest
                    .await
                    .context("guest invocation panicked")?
                    .map_err(anyhow::Error::from)
                    .context("guest invocation failed")?;
                bail!("guest failed to produce a response prior to returning")
            }
        }
    }
}

/// Spin's `set_req_uri` + `prepare_request_headers`: an absolute URI from
/// the `Host` header, then the client's headers followed by Spin's own
/// (appended, so a client-sent `spin-client-addr` stays first). The `host`
/// header itself is removed later by wasmtime-wasi-http, as under Spin.
fn prepare_request(
    mut req: Request<Incoming>,
    route: &RouteMatch,
    client_addr: SocketAddr,
) -> anyhow::Result<Request<Incoming>> {
    let host_header = req
        .headers()
        .get(http::header::HOST)
        .map(|h| h.to_str().context("'Host' header is not valid UTF-8"))
        .transpose()?
        .map(str::to_string);
    let mut parts = req.uri().clone().into_parts();
    let authority = match (&host_header, parts.authority.take()) {
        (None, None) => bail!("no 'Host' header present in request"),
        (None, Some(a)) => a,
        (Some(h), uri_authority) => {
            let a: http::uri::Authority = h
                .parse()
                .context("'Host' header contains an invalid authority")?;
            if uri_authority.is_some_and(|u| u != a) {
                bail!("authority in 'Host' header does not match authority in URI");
            }
            a
        }
    };
    parts.scheme = Some(http::uri::Scheme::HTTP);
    parts.authority = Some(authority);
    if parts.path_and_query.is_none() {
        parts.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
    }
    let uri = Uri::from_parts(parts)?;
    let path_and_query = uri.path_and_query().map_or("/", |p| p.as_str()).to_string();

    let mut headers = HeaderMap::new();
    for (name, value) in req.headers() {
        value
            .to_str()
            .context("request header value is not valid UTF-8")?;
        headers.append(name.clone(), value.clone());
    }
    let host = host_header.as_deref().unwrap_or("localhost");
    for (name, value) in route.spin_headers(&path_and_query, host, client_addr) {
        if let (Ok(name), Ok(value)) = (name.parse::<HeaderName>(), HeaderValue::from_str(&value)) {
            headers.append(name, value);
        }
    }
    *req.uri_mut() = uri;
    *req.headers_mut() = headers;
    Ok(req)
}
