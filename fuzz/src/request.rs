//! The router target's input: up to eight requests in an HTTP/1-like text,
//! so that seeds are readable and byte mutations stay close to requests.
//!
//! ```text
//! METHOD TARGET
//! Name: value
//! @wait: 61
//!
//! body
//! %%
//! METHOD TARGET
//! ...
//! ```
//!
//! A line `%%` separates requests. `@wait: N` is no header: the clock moves
//! N seconds (at most a week) before the request. Placeholders stand for
//! what the fuzzer cannot guess: `$TOKEN`, `$REFRESH` (the user's tokens),
//! `$ADMIN_TOKEN`, `$ADMIN_REFRESH`, `$PASSWORD`, `$BOOTSTRAP` (the admin
//! bootstrap token) and `$BIG` (16 KiB of spaces, once: JSON whitespace
//! that pushes a body past the limit).
//!
//! The request is built as the component's entry point builds it
//! (`src/lib.rs`): an unknown method becomes CONNECT, a header that `http`
//! refuses is left out, a request that does not build at all becomes an
//! empty GET /, Spin's `spin-client-addr` comes last, and the body is cut
//! one byte past the limit.

use crate::fixture::{Fixture, CLIENT_ADDR};
use crate::replace;
use http::{HeaderName, HeaderValue, Method, Request};
use secure_backend::body::MAX_BODY_BYTES;

pub const MAX_REQUESTS: usize = 8;
const MAX_WAIT_SECS: u64 = 7 * 86_400;

pub struct Step {
    /// Seconds the clock moves before the request.
    pub wait_secs: u64,
    pub request: Request<Vec<u8>>,
}

pub fn parse(input: &[u8], fixture: &Fixture) -> Vec<Step> {
    let mut text = input.to_vec();
    let placeholders: [(&[u8], &[u8]); 6] = [
        (b"$ADMIN_TOKEN", fixture.admin.access.as_bytes()),
        (b"$ADMIN_REFRESH", fixture.admin.refresh.as_bytes()),
        (b"$TOKEN", fixture.user.access.as_bytes()),
        (b"$REFRESH", fixture.user.refresh.as_bytes()),
        (b"$PASSWORD", crate::fixture::PASSWORD.as_bytes()),
        (b"$BOOTSTRAP", crate::fixture::BOOTSTRAP.as_bytes()),
    ];
    for (name, value) in placeholders {
        text = replace(&text, name, value, 8);
    }
    text = replace(&text, b"$BIG", &[b' '; MAX_BODY_BYTES], 1);
    split(&text, b"\n%%\n")
        .into_iter()
        .take(MAX_REQUESTS)
        .map(step)
        .collect()
}

fn split<'a>(text: &'a [u8], separator: &[u8]) -> Vec<&'a [u8]> {
    let mut parts = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.windows(separator.len()).position(|w| w == separator) {
        parts.push(&rest[..at]);
        rest = &rest[at + separator.len()..];
    }
    parts.push(rest);
    parts
}

fn step(chunk: &[u8]) -> Step {
    let (head, body) = match chunk.windows(2).position(|w| w == b"\n\n") {
        Some(at) => (&chunk[..at], &chunk[at + 2..]),
        None => (chunk, &[][..]),
    };
    let mut lines = head
        .split(|b| *b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let request_line = lines.next().unwrap_or_default();
    let mut words = request_line.splitn(3, |b| *b == b' ');
    let method = words.next().unwrap_or_default();
    let target = words.next().unwrap_or_default();

    let mut builder = Request::builder()
        .method(Method::from_bytes(method).unwrap_or(Method::CONNECT))
        .uri(target);
    let mut wait_secs = 0;
    for line in lines {
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let name = &line[..colon];
        let value = line[colon + 1..].trim_ascii();
        if name == b"@wait" {
            let secs = std::str::from_utf8(value)
                .ok()
                .and_then(|v| v.parse::<u64>().ok());
            wait_secs = secs.unwrap_or(0).min(MAX_WAIT_SECS);
            continue;
        }
        if let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(name), HeaderValue::from_bytes(value))
        {
            builder = builder.header(name, value);
        }
    }
    // Spin appends the peer's address after anything the client sent.
    builder = builder.header("spin-client-addr", CLIENT_ADDR);
    let body = body[..body.len().min(MAX_BODY_BYTES + 1)].to_vec();
    // An invalid target, say: the entry point routes it as an unknown path.
    let request = builder
        .body(body)
        .unwrap_or_else(|_| Request::new(Vec::new()));
    Step { wait_secs, request }
}
