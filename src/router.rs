//! Path and method to handler, with each route's guard declared beside it,
//! and the one place where results become HTTP responses.

use crate::audit::{Event, Outcome};
use crate::context::{Ctx, RequestMeta, Services};
use crate::error::ApiError;
use crate::routes::{
    account, admin, auth, health, mfa, openapi, parse_query, sessions, Input, Reply,
};
use crate::security::guards::{require_admin, require_user, AdminUser, AuthUser};
use crate::security::{random_bytes, to_hex};
use http::{header, HeaderValue, Method, Request, Response, StatusCode};

type HandlerResult = Result<Reply, ApiError>;

/// What a route needs before its handler runs.
enum Handler {
    /// No guard.
    Public(fn(&Ctx, &Input) -> HandlerResult),
    /// A valid Bearer token of an existing user, whose session is alive.
    User(fn(&Ctx, AuthUser, &Input) -> HandlerResult),
    /// As `User`, and the user's stored role is admin.
    Admin(fn(&Ctx, AdminUser, &Input) -> HandlerResult),
}

struct Route {
    method: Method,
    /// Segments in braces (`{username}`) match any one non-empty segment,
    /// handed to the handler in order as [`Input::params`].
    path: &'static str,
    handler: Handler,
    /// The query parameters the route takes; any other is refused.
    query: &'static [&'static str],
}

const fn route(method: Method, path: &'static str, handler: Handler) -> Route {
    route_with_query(method, path, &[], handler)
}

const fn route_with_query(
    method: Method,
    path: &'static str,
    query: &'static [&'static str],
    handler: Handler,
) -> Route {
    Route {
        method,
        path,
        handler,
        query,
    }
}

/// Every route of the API. Keep `spin.toml` in step.
static ROUTES: [Route; 21] = [
    route(
        Method::POST,
        "/auth/register",
        Handler::Public(auth::register),
    ),
    route(Method::POST, "/auth/login", Handler::Public(auth::login)),
    route(
        Method::POST,
        "/auth/refresh",
        Handler::Public(sessions::refresh),
    ),
    route_with_query(
        Method::POST,
        "/auth/logout",
        &["scope"],
        Handler::User(sessions::logout),
    ),
    route(
        Method::GET,
        "/auth/protected",
        Handler::User(auth::protected),
    ),
    route(Method::GET, "/auth/me", Handler::User(account::me)),
    route(
        Method::POST,
        "/auth/password",
        Handler::User(account::change_password),
    ),
    route(
        Method::POST,
        "/auth/mfa/totp/enroll",
        Handler::User(mfa::enroll),
    ),
    route(
        Method::POST,
        "/auth/mfa/totp/confirm",
        Handler::User(mfa::confirm),
    ),
    route(
        Method::POST,
        "/auth/mfa/totp/disable",
        Handler::User(mfa::disable),
    ),
    route(
        Method::POST,
        "/auth/mfa/verify",
        Handler::Public(mfa::verify),
    ),
    route(
        Method::GET,
        "/admin/dashboard",
        Handler::Admin(admin::dashboard),
    ),
    route_with_query(
        Method::GET,
        "/admin/users",
        &["limit", "cursor"],
        Handler::Admin(admin::list_users),
    ),
    route(
        Method::GET,
        "/admin/users/{username}",
        Handler::Admin(admin::show_user),
    ),
    route(
        Method::DELETE,
        "/admin/users/{username}",
        Handler::Admin(admin::delete_user),
    ),
    route(
        Method::POST,
        "/admin/users/{username}/unlock",
        Handler::Admin(admin::unlock_user),
    ),
    route(
        Method::PUT,
        "/admin/users/{username}/role",
        Handler::Admin(admin::set_role),
    ),
    route(
        Method::POST,
        "/admin/users/{username}/sessions/revoke",
        Handler::Admin(admin::revoke_sessions),
    ),
    route(
        Method::POST,
        "/admin/users/{username}/mfa/reset",
        Handler::Admin(admin::reset_mfa),
    ),
    route(Method::GET, "/health", Handler::Public(health::check)),
    route(Method::GET, "/openapi.json", Handler::Public(openapi::spec)),
];

/// The path patterns the API serves (the manifest must route each to this component).
pub fn paths() -> impl Iterator<Item = &'static str> {
    ROUTES.iter().map(|r| r.path)
}

/// Every method and path pattern the API serves (`openapi.yaml` must
/// describe each, and nothing else).
pub fn operations() -> impl Iterator<Item = (&'static Method, &'static str)> {
    ROUTES.iter().map(|r| (&r.method, r.path))
}

/// Marks a request whose body stopped before its end (the client closed
/// the connection short of its `Content-Length`, or before the last chunk):
/// the router refuses it with 400 `invalid_json` before any handler runs.
#[derive(Clone, Copy, Debug)]
pub struct IncompleteBody;

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
    let result = dispatch(&ctx, &parts, &body);
    match result {
        Ok(reply) => respond(&ctx.meta, reply.status, reply.body.into_bytes(), Vec::new()),
        Err(error) => {
            let detail = match &error {
                ApiError::Internal(e) => Some((Event::InternalError, format!("{e:#}"))),
                ApiError::Config(msg) => Some((Event::ConfigError, msg.clone())),
                _ => None,
            };
            if let Some((event, detail)) = detail {
                ctx.audit(event, Outcome::Error, None, Some(&detail));
            }
            respond(
                &ctx.meta,
                error.status(),
                Some(error.body().to_string().into_bytes()),
                error.headers(),
            )
        }
    }
}

/// The segments of `path` that fill the pattern's `{...}` segments, if it matches.
fn matches<'p>(pattern: &str, path: &'p str) -> Option<Vec<&'p str>> {
    let (mut pattern, mut path) = (pattern.split('/'), path.split('/'));
    let mut params = Vec::new();
    loop {
        match (pattern.next(), path.next()) {
            (None, None) => return Some(params),
            (Some(p), Some(s)) if p.starts_with('{') && !s.is_empty() => params.push(s),
            (Some(p), Some(s)) if p == s => {}
            _ => return None,
        }
    }
}

fn dispatch(ctx: &Ctx, parts: &http::request::Parts, body: &[u8]) -> HandlerResult {
    let path = parts.uri.path();
    let on_path: Vec<(&Route, Vec<&str>)> = ROUTES
        .iter()
        .filter_map(|r| Some((r, matches(r.path, path)?)))
        .collect();
    let (route, params) = match on_path.iter().find(|(r, _)| r.method == parts.method) {
        Some(found) => found,
        None if on_path.is_empty() => return Err(ApiError::NotFound),
        None => {
            let mut allow: Vec<Method> = on_path.iter().map(|(r, _)| r.method.clone()).collect();
            allow.dedup();
            return Err(ApiError::MethodNotAllowed { allow });
        }
    };
    // Refused whatever the route: the handler would act on a prefix.
    if parts.extensions.get::<IncompleteBody>().is_some() {
        return Err(ApiError::InvalidJson);
    }
    let input = Input {
        headers: &parts.headers,
        body,
        query: parse_query(parts.uri.query(), route.query)?,
        params: params.clone(),
    };
    match route.handler {
        Handler::Public(handler) => handler(ctx, &input),
        Handler::User(handler) => handler(ctx, require_user(ctx, &parts.headers)?, &input),
        Handler::Admin(handler) => handler(ctx, require_admin(ctx, &parts.headers)?, &input),
    }
}

/// A `None` body is an empty response (204); any other is JSON.
fn respond(
    meta: &RequestMeta,
    status: StatusCode,
    body: Option<Vec<u8>>,
    extra: Vec<(header::HeaderName, HeaderValue)>,
) -> Response<Vec<u8>> {
    let has_body = body.is_some();
    let mut response = Response::new(body.unwrap_or_default());
    *response.status_mut() = status;
    let headers = response.headers_mut();
    if has_body {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
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
