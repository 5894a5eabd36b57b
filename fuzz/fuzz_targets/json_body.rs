//! The JSON body reader (`body::json_fields`) and the `Fields` API on any
//! bytes under any Content-Type. Nothing panics; every refusal is one of the
//! four kinds a body can cause (413, 415, 400 `invalid_json`, 400
//! `validation_error` for anything but an object of distinct keys), decided
//! in that order; the fields taken are the ones serde_json reads; and no
//! message echoes unbounded input.
//!
//! An input is the Content-Type value on its first line (an empty line: no
//! header), then the body. `$BIG` in the body becomes 16 KiB of spaces
//! once: JSON whitespace that pushes a valid body past the limit.
#![no_main]

use http::{header, HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use secure_backend::body::{json_fields, MAX_BODY_BYTES};
use secure_backend::error::ApiError;
use secure_backend_fuzz::{replace, shown};
use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::{Map, Value};
use std::fmt;

/// The field sets the routes take (`only`), and none at all.
const KNOWN: [&[&str]; 6] = [
    &["username", "password", "role"],
    &["username", "password"],
    &["refresh_token"],
    &["current_password", "new_password"],
    &["role"],
    &[],
];
/// A field name in a message: at most 64 characters, each at most 10 bytes
/// escaped (`\u{10ffff}`), plus quotes and a short prefix.
const MAX_MESSAGE_BYTES: usize = 64 * 10 + 40;

fuzz_target!(|data: &[u8]| {
    let (line, body) = match data.iter().position(|b| *b == b'\n') {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let body = replace(body, b"$BIG", &[b' '; MAX_BODY_BYTES], 1);
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_bytes(line) {
        if !line.is_empty() {
            headers.insert(header::CONTENT_TYPE, value);
        }
    }
    let case = || {
        format!(
            "content-type {:?}, body {}",
            headers.get(header::CONTENT_TYPE),
            shown(&body)
        )
    };

    // What the body must come to, from the contract rather than the code.
    let expected: Result<Map<String, Value>, &str> = if body.len() > MAX_BODY_BYTES {
        Err("payload_too_large")
    } else if !is_json(line, &headers) {
        Err("unsupported_media_type")
    } else {
        match serde_json::from_slice::<Value>(&body) {
            // A key given twice: serde_json's map kept only the last.
            Ok(Value::Object(map)) if entries(&body) != Some(map.len()) => Err("validation_error"),
            Ok(Value::Object(map)) => Ok(map),
            Ok(_) => Err("validation_error"),
            Err(_) => Err("invalid_json"),
        }
    };
    let got = json_fields(&headers, &body);
    if let Err(e) = &got {
        check_error(
            e,
            &[
                "payload_too_large",
                "unsupported_media_type",
                "invalid_json",
                "validation_error",
            ],
            &case,
        );
    }
    let map = match (got, expected) {
        (Ok(_), Ok(map)) => map,
        (Err(e), Err(code)) if e.code() == code => return,
        // A value outside visible ASCII may be refused as not JSON (the
        // reader takes only `to_str` values); the contract allows that.
        (Err(ApiError::UnsupportedMediaType), _)
            if headers
                .get(header::CONTENT_TYPE)
                .is_some_and(|v| v.to_str().is_err()) =>
        {
            return
        }
        (got, expected) => panic!(
            "json_fields gave {:?}, expected {:?}: {}",
            got.as_ref().map(|_| "fields").map_err(ApiError::code),
            expected.as_ref().map(|_| "fields"),
            case()
        ),
    };

    for (n, known) in KNOWN.iter().enumerate() {
        let fields = json_fields(&headers, &body).expect("the same body reads the same");
        let unknown = map.keys().find(|k| !known.contains(&k.as_str()));
        let mut fields = match (fields.only(known), unknown) {
            (Ok(fields), None) => fields,
            (Err(e), Some(_)) => {
                check_error(&e, &["validation_error"], &case);
                continue;
            }
            (got, unknown) => panic!(
                "only({known:?}) gave {:?} with unknown field {unknown:?}: {}",
                got.err().map(|e| e.code()),
                case()
            ),
        };
        // Each name twice (the second time it is gone), and one never sent.
        let names = known
            .iter()
            .chain(known.iter())
            .chain(["never-sent"].iter());
        let mut taken = Vec::new();
        for name in names {
            let value = if taken.contains(name) {
                None
            } else {
                map.get(*name)
            };
            taken.push(*name);
            // Alternate between the two ways of taking a field.
            let (got, want) = if n % 2 == 0 {
                (fields.string(name).map(Some), reference(value, true))
            } else {
                (fields.optional_string(name), reference(value, false))
            };
            match (&got, want) {
                (Ok(got), Ok(want)) if *got == want => {}
                (Err(e), Err(())) => check_error(e, &["validation_error"], &case),
                _ => panic!(
                    "taking {name} gave {:?}, the body holds {value:?}: {}",
                    got.as_ref().map_err(ApiError::code),
                    case()
                ),
            }
        }
    }
});

/// The media type, before any parameter, is application/json in any case.
fn is_json(line: &[u8], headers: &HeaderMap) -> bool {
    if headers.get(header::CONTENT_TYPE).is_none() {
        return false;
    }
    let media = line.split(|b| *b == b';').next().unwrap_or_default();
    media.trim_ascii().eq_ignore_ascii_case(b"application/json")
}

/// A field's value as `string` (`required`) or `optional_string` must give it.
fn reference(value: Option<&Value>, required: bool) -> Result<Option<String>, ()> {
    match value {
        None | Some(Value::Null) if required => Err(()),
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(()),
    }
}

fn check_error(e: &ApiError, kinds: &[&str], case: &dyn Fn() -> String) {
    let status = e.status().as_u16();
    let message = e.message();
    let fits = kinds.contains(&e.code())
        && matches!(status, 400 | 413 | 415)
        && !message.is_empty()
        && message.len() <= MAX_MESSAGE_BYTES
        && e.headers().is_empty();
    assert!(
        fits,
        "error {e:?} ({status}, {message:?}) is not one a body may cause: {}",
        case()
    );
}

/// How many members the top-level object has, counting repeated keys.
fn entries(body: &[u8]) -> Option<usize> {
    struct Entries(usize);
    struct Counter;
    impl<'de> Visitor<'de> for Counter {
        type Value = Entries;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Entries, A::Error> {
            let mut n = 0;
            while access.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {
                n += 1;
            }
            Ok(Entries(n))
        }
    }
    impl<'de> Deserialize<'de> for Entries {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_map(Counter)
        }
    }
    serde_json::from_slice::<Entries>(body).ok().map(|e| e.0)
}
