//! secure-backend: a security-focused authentication API, shipped as a Spin
//! WebAssembly HTTP component. All state lives in Spin's key-value store;
//! each request runs in a fresh instance.
//!
//! This file is the Spin entry point only: it turns Spin's request into an
//! `http::Request`, provides the real store, clock, audit sink and variables,
//! and calls the router.

pub mod audit;
pub mod body;
pub mod clock;
pub mod config;
pub mod context;
pub mod domain;
pub mod error;
pub mod router;
pub mod routes;
pub mod security;
pub mod stats;
pub mod store;
pub mod user_index;

#[cfg(target_arch = "wasm32")]
mod component {
    use crate::body::MAX_BODY_BYTES;
    use crate::{audit, clock, config, context::Services, router, store::SpinStore};
    use futures::StreamExt;
    use spin_sdk::http::{Fields, IncomingRequest, OutgoingResponse, ResponseOutparam};

    struct SpinVariables;

    impl config::Variables for SpinVariables {
        /// Undefined (declared without a value, or not mapped into the
        /// component) and empty mean unset; any other error is the variable's
        /// configuration error, never its default: a provider that fails for
        /// `client_ip_header` would otherwise rate-limit every client as the
        /// proxy, and one that fails for `jwt_secret` would make a stored key.
        fn get(&self, name: &str) -> Result<Option<String>, config::ConfigError> {
            use spin_sdk::variables::Error;
            let (kind, why) = match spin_sdk::variables::get(name) {
                Ok(value) => return Ok(Some(value).filter(|v| !v.is_empty())),
                Err(Error::Undefined(_)) => return Ok(None),
                Err(Error::Provider(why)) => ("provider error", why),
                Err(Error::InvalidName(why)) => ("invalid name", why),
                Err(Error::Other(why)) => ("error", why),
            };
            Err(config::ConfigError::unreadable(
                name,
                &format!("{kind}: {why}"),
            ))
        }
    }

    #[spin_sdk::http_component]
    async fn handle(req: IncomingRequest, out: ResponseOutparam) {
        let mut builder = http::Request::builder()
            // Spin only delivers valid method tokens; were one not, CONNECT
            // matches no route, so it gets a 404 or 405, never a handler.
            .method(
                http::Method::from_bytes(req.method().to_string().as_bytes())
                    .unwrap_or(http::Method::CONNECT),
            )
            .uri(req.path_with_query().unwrap_or_else(|| "/".into()));
        for (name, value) in req.headers().entries() {
            if let (Ok(name), Ok(value)) = (
                http::HeaderName::from_bytes(name.as_bytes()),
                http::HeaderValue::from_bytes(&value),
            ) {
                builder = builder.header(name, value);
            }
        }
        let (body, complete) = read_body_capped(req).await;
        if !complete {
            builder = builder.extension(router::IncompleteBody);
        }
        let request = match builder.body(body) {
            Ok(request) => request,
            // An unparseable request line: route it as an unknown path.
            Err(_) => http::Request::new(Vec::new()),
        };
        let store = SpinStore::new("default");
        let services = Services {
            store: &store,
            clock: &clock::SystemClock,
            audit: &audit::Stdout,
            variables: &SpinVariables,
        };
        respond(router::handle(request, services), out).await;
    }

    /// Hands the response to Spin as it is: spin-sdk's conversion from
    /// `http::Response` would copy the headers through a lowercasing
    /// `HashMap`, which costs the component its Unicode case tables (about
    /// 28 KiB with what comes with it, BENCHMARKS.md) and every request an
    /// allocation per header. Our header names are lowercase already.
    async fn respond(response: http::Response<Vec<u8>>, out: ResponseOutparam) {
        let (parts, body) = response.into_parts();
        // Only an invalid or forbidden header is refused, and ours are
        // neither; were one, it alone is left out, never the others.
        let fields = Fields::new();
        for (name, value) in &parts.headers {
            let _ = fields.append(name.as_str(), value.as_bytes());
        }
        // A known length: the answer goes out in one piece, not chunked.
        // A 204 has no body and must not say so (RFC 9110 §8.6).
        if parts.status != http::StatusCode::NO_CONTENT {
            let length = body.len().to_string().into_bytes();
            let _ = fields.append("content-length", &length);
        }
        let outgoing = OutgoingResponse::new(fields);
        // Every status the router gives is a valid one.
        let _ = outgoing.set_status_code(parts.status.as_u16());
        // The client may have gone; there is nobody left to tell.
        let _ = out.set_with_body(outgoing, body).await;
    }

    /// Reads at most one byte more than the limit, so an oversized body is
    /// refused (413) without holding it all in memory; and says whether the
    /// body arrived whole.
    async fn read_body_capped(req: IncomingRequest) -> (Vec<u8>, bool) {
        let mut body = Vec::new();
        let mut stream = req.into_body_stream();
        while let Some(chunk) = stream.next().await {
            // The client went away mid-body (fewer bytes than its
            // Content-Length, or no last chunk): what arrived is a prefix,
            // and a prefix can be valid JSON that means something else.
            let Ok(chunk) = chunk else {
                return (body, false);
            };
            let room = MAX_BODY_BYTES + 1 - body.len();
            body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if body.len() > MAX_BODY_BYTES {
                break;
            }
        }
        (body, true)
    }
}
