//! One bcrypt verification inside a Spin component, and nothing else: the
//! benchmark's direct measure of what bcrypt costs in Wasm under the
//! runtime, next to native verifications in the same rounds.
//!
//! `POST /verify` with the body `<password>\n<bcrypt hash>` (the hash is
//! made natively by the benchmark at the service's cost) checks the
//! password with `bcrypt::non_truncating_verify`, the call the service's
//! login makes (`src/security/passwords.rs`), and answers 200
//! `{"ok":true,"micros":N}` when it verifies, 403 `{"ok":false,...}` when it
//! does not, and 400 for a body without a newline or a malformed hash.
//! `micros` is the verification alone, timed inside the component with
//! WASI's monotonic clock: no HTTP, no instantiation.

use http::{Method, Request, Response};
use std::time::Instant;

fn json(status: u16, body: String) -> anyhow::Result<Response<String>> {
    Ok(Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(body)?)
}

#[spin_sdk::http_component]
fn handle(req: Request<Vec<u8>>) -> anyhow::Result<Response<String>> {
    if req.method() != Method::POST || req.uri().path() != "/verify" {
        return json(404, r#"{"error":"POST /verify only"}"#.into());
    }
    let body = String::from_utf8_lossy(req.body());
    // The hash holds no newline; the password is everything before it.
    let Some((password, hash)) = body.rsplit_once('\n') else {
        return json(400, r#"{"error":"expected <password>\\n<hash>"}"#.into());
    };
    let start = Instant::now();
    let verified = bcrypt::non_truncating_verify(password, hash.trim_end());
    let micros = start.elapsed().as_micros();
    match verified {
        Ok(ok) => json(
            if ok { 200 } else { 403 },
            format!(r#"{{"ok":{ok},"micros":{micros}}}"#),
        ),
        // bcrypt's error quotes the input: a fixed message instead.
        Err(_) => json(400, r#"{"error":"malformed bcrypt hash"}"#.into()),
    }
}
