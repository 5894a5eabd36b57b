//! Thin handlers: they parse the request into domain types, call the
//! security rules and the store, and shape the success body. Business rules
//! live in `security/`; errors become responses in `error.rs`.

pub mod account;
pub mod admin;
pub mod auth;
pub mod health;
pub mod mfa;
pub mod openapi;
mod password_check;
pub mod sessions;

use crate::error::ApiError;
use http::{HeaderMap, StatusCode};
use serde_json::Value;

/// What a handler gets of the request, besides its guard's verdict.
pub struct Input<'r> {
    pub headers: &'r HeaderMap,
    pub body: &'r [u8],
    /// The query's parameters, each one the route declares and each at most
    /// once (the router refuses anything else).
    pub query: Vec<(&'r str, &'r str)>,
    /// The path segments that filled the route's `{...}` segments, in order.
    pub params: Vec<&'r str>,
}

impl Input<'_> {
    /// The `i`th path parameter (the router guarantees it exists).
    pub fn param(&self, i: usize) -> &str {
        self.params.get(i).copied().unwrap_or("")
    }
}

/// The parameters of `query`, each in `known` and each at most once;
/// anything else is a 400, as an unknown body field is. A route that
/// declares none refuses any query string.
pub fn parse_query<'q>(
    query: Option<&'q str>,
    known: &[&str],
) -> Result<Vec<(&'q str, &'q str)>, ApiError> {
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if !known.contains(&name) {
            let shown: String = name.chars().take(64).collect();
            return Err(ApiError::Validation(format!(
                "unknown query parameter: {shown}"
            )));
        }
        if pairs.iter().any(|(n, _)| *n == name) {
            return Err(ApiError::Validation(format!(
                "query parameter {name} given twice"
            )));
        }
        pairs.push((name, value));
    }
    Ok(pairs)
}

/// A successful answer; the router adds the common headers.
pub struct Reply {
    pub status: StatusCode,
    pub body: Body,
}

pub enum Body {
    /// No body at all (204).
    Empty,
    Json(Value),
    /// JSON serialized already, served as it is.
    Serialized(Vec<u8>),
}

impl Body {
    /// The bytes to send, if any.
    pub fn into_bytes(self) -> Option<Vec<u8>> {
        match self {
            Body::Empty => None,
            Body::Json(value) => Some(value.to_string().into_bytes()),
            Body::Serialized(json) => Some(json),
        }
    }
}

impl Reply {
    pub fn ok(body: Value) -> Self {
        Self {
            status: StatusCode::OK,
            body: Body::Json(body),
        }
    }

    pub fn created(body: Value) -> Self {
        Self {
            status: StatusCode::CREATED,
            body: Body::Json(body),
        }
    }

    pub fn no_content() -> Self {
        Self {
            status: StatusCode::NO_CONTENT,
            body: Body::Empty,
        }
    }
}
