//! Reading a JSON request body as hostile input: size, media type and syntax
//! are checked first, then each field is taken by name with its type, and
//! any field left over is an error, so a typo is not silently ignored.

use crate::error::ApiError;
use http::{header, HeaderMap};
use serde_json::{Map, Value};

pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// The fields of a JSON object body, taken one by one.
pub struct Fields(Map<String, Value>);

pub fn json_fields(headers: &HeaderMap, body: &[u8]) -> Result<Fields, ApiError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(ApiError::PayloadTooLarge);
    }
    if !is_json(headers) {
        return Err(ApiError::UnsupportedMediaType);
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(Fields(map)),
        Ok(_) => Err(ApiError::Validation(
            "request body must be a JSON object".into(),
        )),
        Err(_) => Err(ApiError::InvalidJson),
    }
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
}

impl Fields {
    /// Fails on any field not in `known`; call it before taking fields, so
    /// a misspelt field is reported as such rather than as a missing one.
    pub fn only(self, known: &[&str]) -> Result<Self, ApiError> {
        if let Some(unknown) = self.0.keys().find(|k| !known.contains(&k.as_str())) {
            let shown: String = unknown.chars().take(64).collect();
            return Err(ApiError::Validation(format!("unknown field: {shown}")));
        }
        Ok(self)
    }

    pub fn optional_string(&mut self, name: &str) -> Result<Option<String>, ApiError> {
        match self.0.remove(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(ApiError::Validation(format!("{name} must be a string"))),
        }
    }

    pub fn string(&mut self, name: &str) -> Result<String, ApiError> {
        self.optional_string(name)?
            .ok_or_else(|| ApiError::Validation(format!("{name} is required")))
    }
}
