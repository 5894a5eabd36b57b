//! Path and method to handler, with each route's guard declared beside it,
//! and the one place where results become HTTP responses.

use crate::audit::{Event, Outcome};
use crate::context::{Ctx, RequestMeta, Services};
use crate::error::ApiError;
use crate::routes::{admin, auth, health, Reply};
use crate::security::guards::{require_admin, require_user, AdminUser, AuthUser};
use crate::security::{random_bytes, to_hex};
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};

type HandlerResult = Result<Reply, ApiError>;

/// What a route needs before its handler runs.
enum Handler {
    /// No guard; the handler reads the body itself.
    Public(fn(&Ctx, &HeaderMap, &[u8]) -> HandlerResult),
    /// No guard and no body.
    Plain(fn(&Ctx) -> HandlerResult),
    /// A valid Bearer token of an existing user.
    User(fn(&Ctx, AuthUser) -> HandlerResult),
    /// As `User`, and the user's stored role is admin.
    Admin(fn(&Ctx, AdminUser) -> HandlerResult),
}

struct Route {
    method: Method,
    path: &'static str,
    handler: Handler,
}

/// Every route of the API. Keep `spin.toml` in step.
const ROUTES: [Route; 5] = [
    Route {
        method: Method::POST,
        path: "/auth/register",
        handler: Handler::Public(auth::register),
    },
    Route {
        method: Method::POST,
        path: "/auth/login",
        handler: Handler::Public(auth::login),
    },
    Route {
        method: Method::GET,
        path: "/auth/protected",
        handler: Handler::User(auth::protected),
    },
    Route {
        method: Method::GET,
        path: "/admin/dashboard",
        handler: Handler::Admin(admin::dashboard),
    },
    Route {
        method: Method::GET,
        path: "/health",
        handler: Handler::Plain(health::check),
    },
];

/// The paths the API serves (the manifest must route each to this component).
pub fn paths() -> impl Iterator<Item = &'static str> {
    ROUTES.iter().map(|r| r.path)
}

/// Serves one request. Never panics on anything the request holds.
pub fn handle(req: Request<Vec<u8>>, services: Services) -> Response<Vec<u8>> {
    let (parts, body) = req.into_parts();
    let meta = RequestMeta {
        request_id: random_bytes::<16>()
            .map(|b| to_hex(&b))
            .unwrap_or_else(|_| "unknown".into()),
        method: parts.method.as_str().chars().take(16).collect(),
        path: parts.uri.path().chars().take(256).collect(),
    };
    let ctx = Ctx::new(services, meta, &parts.headers);
    let result = dispatch(&ctx, &parts.method, parts.uri.path(), &parts.headers, &body);
    match result {
        Ok(reply) => respond(&ctx.meta, reply.status, &reply.body, Vec::new()),
        Err(error) => {
            let detail = match &error {
                ApiError::Internal(e) => Some((Event::InternalError, format!("{e:#}"))),
                ApiError::Config(msg) => Some((Event::ConfigError, msg.clone())),
                _ => None,
            };
            if let Some((event, detail)) = detail {
                ctx.audit(event, Outcome::Error, None, Some(&detail));
            }
            respond(&ctx.meta, error.status(), &error.body(), error.headers())
        }
    }
}

fn dispatch(
    ctx: &Ctx,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> HandlerResult {
    let on_path: Vec<&Route> = ROUTES.iter().filter(|r| r.path == path).collect();
    let route = match on_path.iter().find(|r| r.method == method) {
        Some(route) => route,
        None if on_path.is_empty() => return Err(ApiError::NotFound),
        None => {
            let allow = on_path.iter().map(|r| r.method.clone()).collect();
            return Err(ApiError::MethodNotAllowed { allow });
        }
    };
    match route.handler {
        Handler::Public(handler) => handler(ctx, headers, body),
        Handler::Plain(handler) => handler(ctx),
        Handler::User(handler) => handler(ctx, require_user(ctx, headers)?),
        Handler::Admin(handler) => handler(ctx, require_admin(ctx, headers)?),
    }
}

fn respond(
    meta: &RequestMeta,
    status: StatusCode,
    body: &serde_json::Value,
    extra: Vec<(header::HeaderName, HeaderValue)>,
) -> Response<Vec<u8>> {
    let mut response = Response::new(body.to_string().into_bytes());
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let Ok(id) = HeaderValue::try_from(meta.request_id.as_str()) {
        headers.insert("x-request-id", id);
    }
    for (name, value) in extra {
        headers.insert(name, value);
    }
    response
}
