//! Thin handlers: they parse the request into domain types, call the
//! security rules and the store, and shape the success body. Business rules
//! live in `security/`; errors become responses in `error.rs`.

pub mod account;
pub mod admin;
pub mod auth;
pub mod health;
mod password_check;
pub mod sessions;

use crate::error::ApiError;
use http::{HeaderMap, StatusCode};
use serde_json::Value;

/// What a handler gets of the request, besides its guard's verdict.
pub struct Input<'r> {
    pub headers: &'r HeaderMap,
    pub body: &'r [u8],
    pub query: Option<&'r str>,
    /// The path segments that filled the route's `{...}` segments, in order.
    pub params: Vec<&'r str>,
}

impl Input<'_> {
    /// The query's parameters, each at most once and each in `known`;
    /// anything else is a 400, as an unknown body field is.
    pub fn query(&self, known: &[&str]) -> Result<Vec<(&str, &str)>, ApiError> {
        let mut pairs: Vec<(&str, &str)> = Vec::new();
        for pair in self
            .query
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
        {
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

    /// The `i`th path parameter (the router guarantees it exists).
    pub fn param(&self, i: usize) -> &str {
        self.params.get(i).copied().unwrap_or("")
    }
}

/// A successful answer; the router adds the common headers.
pub struct Reply {
    pub status: StatusCode,
    /// `None`: no body (204).
    pub body: Option<Value>,
}

impl Reply {
    pub fn ok(body: Value) -> Self {
        Self {
            status: StatusCode::OK,
            body: Some(body),
        }
    }

    pub fn created(body: Value) -> Self {
        Self {
            status: StatusCode::CREATED,
            body: Some(body),
        }
    }

    pub fn no_content() -> Self {
        Self {
            status: StatusCode::NO_CONTENT,
            body: None,
        }
    }
}
