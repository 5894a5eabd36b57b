//! Reading a JSON request body as hostile input: size, media type and syntax
//! are checked first, then each field is taken by name with its type, and
//! any field left over is an error, so a typo is not silently ignored.

use crate::error::ApiError;
use http::{header, HeaderMap};
use serde::de::{Deserialize, Deserializer, Error as _, MapAccess, Visitor};
use serde_json::{Map, Value};
use std::fmt;

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
    match serde_json::from_slice::<UniqueKeys>(body) {
        Ok(UniqueKeys(map)) => Ok(Fields(map)),
        // A shape error stops the parse where it is found: `[` or
        // `{"a":1,"a":2,` must still be told apart from JSON of the wrong
        // shape, so the whole body is parsed again (refusals only).
        Err(e) if e.is_data() && serde_json::from_slice::<Value>(body).is_ok() => {
            let message = e.to_string();
            let message = match message.strip_prefix(DUPLICATE) {
                Some(rest) => {
                    let field = rest.rsplit_once(" at line ").map_or(rest, |(f, _)| f);
                    format!("{DUPLICATE}{field}")
                }
                None => "request body must be a JSON object".into(),
            };
            Err(ApiError::Validation(message))
        }
        Err(_) => Err(ApiError::InvalidJson),
    }
}

const DUPLICATE: &str = "duplicate field: ";

/// A JSON object whose keys are all different. `serde_json::Map` keeps the
/// last of two equal keys, so `{"role": "user", "role": "admin"}` would mean
/// whatever one parser picks while a proxy or log reader picks the other:
/// refused instead.
struct UniqueKeys(Map<String, Value>);

impl<'de> Deserialize<'de> for UniqueKeys {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;
        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = Map<String, Value>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
                let mut map = Map::new();
                while let Some(key) = access.next_key::<String>()? {
                    let value = access.next_value::<Value>()?;
                    if map.contains_key(&key) {
                        let shown: String = key.chars().take(64).collect();
                        return Err(A::Error::custom(format!("{DUPLICATE}{shown:?}")));
                    }
                    map.insert(key, value);
                }
                Ok(map)
            }
        }
        deserializer.deserialize_map(ObjectVisitor).map(UniqueKeys)
    }
}

/// Exactly one `Content-Type`, naming JSON: with two, this service would
/// read the body by one while a proxy or firewall may have judged it by
/// the other.
fn is_json(headers: &HeaderMap) -> bool {
    let mut types = headers.get_all(header::CONTENT_TYPE).iter();
    let (Some(only), None) = (types.next(), types.next()) else {
        return false;
    };
    only.to_str()
        .ok()
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
