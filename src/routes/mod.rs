//! Thin handlers: they parse the request into domain types, call the
//! security rules and the store, and shape the success body. Business rules
//! live in `security/`; errors become responses in `error.rs`.

pub mod admin;
pub mod auth;
pub mod health;

use http::StatusCode;
use serde_json::Value;

/// A successful answer; the router adds the common headers.
pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
}

impl Reply {
    pub fn ok(body: Value) -> Self {
        Self {
            status: StatusCode::OK,
            body,
        }
    }
}
