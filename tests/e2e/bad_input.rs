//! Issue 10: the bad-input corpus (`tests/corpus/bad_input.jsonl`) over
//! real HTTP against the built component, one server per target, the
//! corpus sent in order. Each request gets the component's documented
//! answer, or the answer the runtime recorded for it where the runtime
//! answers first (`over_http` in the corpus); the server answers a health
//! check after every request and serves a normal flow after the corpus;
//! every stdout line is still one whole audit record; and on Redis the
//! store's keys and values are exactly what they were before the corpus.
//!
//! A request goes out with reqwest when reqwest sends it byte for byte (its
//! URL parser would normalize `..`, `%2e`, a backslash or a fragment, and
//! it frames bodies itself); otherwise, and for anything over 64 KiB (the
//! server may answer and close before it has read it all), it is written by
//! hand to a `TcpStream` while another thread reads the answer.
//!
//! The rate limits are raised (a raw socket cannot choose its source
//! address): were a corpus request to reach a limiter, its counter would
//! show on Redis as a changed key rather than throttle later entries.

#[path = "../corpus/mod.rs"]
mod corpus;

use super::harness::{Backend, Runtime, Server, State, Target};
use super::{start, BOOTSTRAP, PASSWORD};
use corpus::{Entry, Placeholders, RuntimeAnswer};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

/// What came back for one request.
#[derive(Debug)]
enum Answer {
    Response {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// The connection closed (or reset) before any answer.
    Closed(String),
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        match self {
            Answer::Response { headers, .. } => headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str()),
            Answer::Closed(_) => None,
        }
    }
}

struct Wire {
    /// `127.0.0.1:port`
    authority: String,
    base: String,
    http: reqwest::blocking::Client,
}

const RAW_ABOVE: usize = 64 * 1024;
const TIMEOUT: Duration = Duration::from_secs(20);

impl Wire {
    fn new(server: &Server) -> Self {
        let authority = server
            .base
            .strip_prefix("http://")
            .expect("an http:// base")
            .to_owned();
        let http = reqwest::blocking::Client::builder()
            .timeout(TIMEOUT)
            .build()
            .expect("http client");
        Self {
            authority,
            base: server.base.clone(),
            http,
        }
    }

    /// Sends `entry`; says whether reqwest sent it (else it went by hand).
    fn send(&self, entry: &Entry) -> (Answer, bool) {
        let answer = match self.by_reqwest(entry) {
            Some(request) => match request.send() {
                Ok(res) => {
                    let status = res.status().as_u16();
                    let headers = res
                        .headers()
                        .iter()
                        .map(|(n, v)| {
                            let value = String::from_utf8_lossy(v.as_bytes()).into_owned();
                            (n.as_str().to_owned(), value)
                        })
                        .collect();
                    match res.bytes() {
                        Ok(body) => Answer::Response {
                            status,
                            headers,
                            body: body.to_vec(),
                        },
                        Err(e) => Answer::Closed(format!("body cut off: {e}")),
                    }
                }
                Err(e) => Answer::Closed(format!("{e:?}")),
            },
            None => return (self.by_hand(entry), false),
        };
        (answer, true)
    }

    /// The request as reqwest would send it, if that is the entry byte for byte.
    fn by_reqwest(&self, entry: &Entry) -> Option<reqwest::blocking::RequestBuilder> {
        let size = entry.path.len()
            + entry.body.len()
            + entry
                .headers
                .iter()
                .map(|(n, v)| n.len() + v.len() + 4)
                .sum::<usize>();
        let framing = ["host", "content-length", "transfer-encoding", "connection"];
        if entry.http_only || entry.no_host || size > RAW_ABOVE {
            return None;
        }
        if framing.iter().any(|h| entry.has_header(h)) {
            return None;
        }
        let path = std::str::from_utf8(&entry.path).ok()?;
        let url = reqwest::Url::parse(&format!("{}{path}", self.base)).ok()?;
        let sent = match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        };
        let same_server = url.host_str() == Some("127.0.0.1")
            && url.port().map(|p| p.to_string())
                == self.authority.rsplit(':').next().map(str::to_owned);
        if sent != path || url.fragment().is_some() || !same_server {
            return None;
        }
        let method = reqwest::Method::from_bytes(entry.method.as_bytes()).ok()?;
        let mut headers = HeaderMap::new();
        for (name, value) in &entry.headers {
            headers.append(
                HeaderName::from_bytes(name).ok()?,
                HeaderValue::from_bytes(value).ok()?,
            );
        }
        Some(
            self.http
                .request(method, url)
                .headers(headers)
                .body(entry.body.clone()),
        )
    }

    /// The request written out as listed: its headers in order, `Host`
    /// unless it has one or must go without, the body framed by a
    /// `Content-Length` (or in chunks) unless the entry frames it itself.
    fn by_hand(&self, entry: &Entry) -> Answer {
        let mut wire = Vec::new();
        wire.extend_from_slice(entry.method.as_bytes());
        wire.push(b' ');
        wire.extend_from_slice(&entry.path);
        wire.extend_from_slice(b" HTTP/1.1\r\n");
        if !entry.no_host && !entry.has_header("host") {
            wire.extend_from_slice(format!("Host: {}\r\n", self.authority).as_bytes());
        }
        for (name, value) in &entry.headers {
            wire.extend_from_slice(name);
            wire.extend_from_slice(b": ");
            wire.extend_from_slice(value);
            wire.extend_from_slice(b"\r\n");
        }
        let framed = entry.has_header("content-length") || entry.has_header("transfer-encoding");
        let body = match entry.chunked {
            Some(size) => {
                wire.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
                let mut chunks = Vec::new();
                for chunk in entry.body.chunks(size.max(1)) {
                    chunks.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                    chunks.extend_from_slice(chunk);
                    chunks.extend_from_slice(b"\r\n");
                }
                chunks.extend_from_slice(b"0\r\n\r\n");
                chunks
            }
            None if framed => entry.body.clone(),
            None => {
                let length = format!("Content-Length: {}\r\n", entry.body.len());
                wire.extend_from_slice(length.as_bytes());
                entry.body.clone()
            }
        };
        wire.extend_from_slice(b"Connection: close\r\n\r\n");
        wire.extend_from_slice(&body);

        let stream = match TcpStream::connect(&self.authority) {
            Ok(stream) => stream,
            Err(e) => return Answer::Closed(format!("connect: {e}")),
        };
        let _ = stream.set_read_timeout(Some(TIMEOUT));
        let _ = stream.set_write_timeout(Some(TIMEOUT));
        // Written on its own thread: the server may answer (and close)
        // before it has read everything.
        let mut writer = stream.try_clone().expect("clone the socket");
        let half_close = entry.half_close;
        let sending = std::thread::spawn(move || {
            let sent = writer.write_all(&wire).and_then(|()| writer.flush());
            if half_close {
                let _ = writer.shutdown(Shutdown::Write);
            }
            sent
        });
        let mut received = Vec::new();
        let mut reader = stream;
        let mut buf = [0u8; 16 * 1024];
        let ended = loop {
            match reader.read(&mut buf) {
                Ok(0) => break None,
                Ok(n) => received.extend_from_slice(&buf[..n]),
                Err(e) => break Some(e),
            }
        };
        let _ = reader.shutdown(Shutdown::Both);
        let _ = sending.join();
        match parse_response(&received, &entry.method) {
            Some(answer) => answer,
            None => Answer::Closed(match ended {
                Some(e) => format!("{e} after {} bytes", received.len()),
                None => format!("closed after {} bytes", received.len()),
            }),
        }
    }

    fn healthy(&self) -> bool {
        self.http
            .get(format!("{}/health", self.base))
            .send()
            .is_ok_and(|r| r.status().as_u16() == 200)
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// An HTTP/1.1 response read to the end of the connection.
fn parse_response(raw: &[u8], method: &str) -> Option<Answer> {
    let end = find(raw, b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let rest = &raw[end + 4..];
    let body = if method == "HEAD" {
        Vec::new()
    } else if header("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
        let mut body = Vec::new();
        let mut rest = rest;
        while let Some(line_end) = find(rest, b"\r\n") {
            let size_text = String::from_utf8_lossy(&rest[..line_end]).into_owned();
            let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
            if size == 0 {
                break;
            }
            let start = line_end + 2;
            body.extend_from_slice(rest.get(start..start + size)?);
            rest = rest.get(start + size + 2..).unwrap_or_default();
        }
        body
    } else {
        match header("content-length").and_then(|l| l.parse::<usize>().ok()) {
            Some(length) => rest[..length.min(rest.len())].to_vec(),
            None => rest.to_vec(),
        }
    };
    Some(Answer::Response {
        status,
        headers,
        body,
    })
}

/// What is wrong with `answer` for `entry` under `runtime` (nothing:
/// empty). An answer with an `X-Request-Id` is the component's and must be
/// the expected one; any other is the runtime's own, and must be the one
/// recorded for this runtime in the corpus.
fn problems(entry: &Entry, runtime: &str, answer: &Answer) -> Vec<String> {
    let expect = &entry.expect;
    let recorded = entry.over_http.get(runtime).copied();
    let or_recorded = recorded.map_or(String::new(), |r| format!(" (or the runtime's {r:?})"));
    match answer {
        Answer::Response { status, body, .. } if answer.header("x-request-id").is_some() => {
            if *status != expect.status {
                return vec![format!(
                    "the component answered {status} {:?}, expected {} {}{or_recorded}",
                    String::from_utf8_lossy(&body[..body.len().min(200)]),
                    expect.status,
                    expect.code,
                )];
            }
            let mut found = Vec::new();
            // A HEAD answer has the headers of the JSON error, and no body.
            if entry.method == "HEAD" {
                if answer.header("content-type") != Some("application/json") {
                    found.push(format!("content-type {:?}", answer.header("content-type")));
                }
            } else {
                found.extend(corpus::error_body_problems(
                    expect,
                    answer.header("content-type"),
                    body,
                ));
            }
            if *status == 405 && answer.header("allow") != expect.allow.as_deref() {
                found.push(format!(
                    "Allow {:?}, expected {:?}",
                    answer.header("allow"),
                    expect.allow
                ));
            }
            found
        }
        Answer::Response { status, .. } if recorded == Some(RuntimeAnswer::Status(*status)) => {
            Vec::new()
        }
        Answer::Closed(_) if recorded == Some(RuntimeAnswer::Closed) => Vec::new(),
        Answer::Response { status, body, .. } => vec![format!(
            "{runtime} itself answered {status} {:?}, expected the component's {} {}{or_recorded}",
            String::from_utf8_lossy(&body[..body.len().min(200)]),
            expect.status,
            expect.code,
        )],
        Answer::Closed(why) => vec![format!(
            "{runtime} closed the connection ({why}), expected {} {}{or_recorded}",
            expect.status, expect.code,
        )],
    }
}

/// Every key on the case's Redis database, with its value.
fn redis_snapshot(state: &State) -> BTreeMap<String, Option<Vec<u8>>> {
    let mut redis = state.redis();
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut redis).unwrap();
    keys.into_iter()
        .map(|key| {
            let value: Option<Vec<u8>> = redis::cmd("GET").arg(&key).query(&mut redis).unwrap();
            (key, value)
        })
        .collect()
}

/// The audit lines so far (the output is copied by another thread, or
/// written to a file by Spin: give it a moment to catch up).
fn stdout_lines(server: &Server) -> Vec<String> {
    std::thread::sleep(Duration::from_millis(300));
    server.stdout_lines()
}

pub fn bad_input_corpus_over_http(t: Target) {
    let (state, server) = start(
        t,
        &[
            ("login_rate_limit", "1000"),
            ("register_rate_limit", "1000"),
        ],
    );
    let c = server.client();
    // A user and an admin, each logged in, as through the router.
    assert_eq!(c.register("alice", PASSWORD).status, 201);
    let login = c.login("alice", PASSWORD);
    assert_eq!(login.status, 200, "{}", login.body);
    let admin = c.send(
        c.post("/auth/register")
            .header("content-type", "application/json")
            .header("x-bootstrap-token", BOOTSTRAP)
            .body(json!({"username": "root", "password": PASSWORD, "role": "admin"}).to_string()),
    );
    assert_eq!(admin.status, 201, "{}", admin.body);
    let placeholders = Placeholders {
        user_token: login.token(),
        admin_token: c.login("root", PASSWORD).token(),
        user_refresh: login.body["refresh_token"]
            .as_str()
            .expect("refresh_token")
            .to_owned(),
    };
    let runtime = match t.runtime {
        Runtime::TestHost => "test_host",
        Runtime::Spin => "spin",
    };
    let entries = corpus::load(&placeholders);
    let wire = Wire::new(&server);
    let keys_before = (t.backend == Backend::Redis).then(|| redis_snapshot(&state));
    let lines_before = stdout_lines(&server).len();

    let started = Instant::now();
    let mut failures = Vec::new();
    let mut by_reqwest = 0;
    for entry in &entries {
        let (answer, reqwest_sent) = wire.send(entry);
        by_reqwest += usize::from(reqwest_sent);
        let found = problems(entry, runtime, &answer);
        if !found.is_empty() {
            failures.push(format!("{}: {}", entry.name, found.join("; ")));
        }
        if !wire.healthy() {
            failures.push(format!("{}: the server stopped answering", entry.name));
            break;
        }
    }
    let elapsed = started.elapsed();

    // Nothing written to the store, nothing logged as a success, and every
    // line of the log is still one whole record.
    if let Some(before) = keys_before {
        let after = redis_snapshot(&state);
        let changed: BTreeSet<&String> = before
            .keys()
            .chain(after.keys())
            .filter(|k| before.get(*k) != after.get(*k))
            .collect();
        if !changed.is_empty() {
            failures.push(format!("the corpus changed these Redis keys: {changed:?}"));
        }
    }
    let lines = stdout_lines(&server);
    assert!(
        lines.len() > lines_before,
        "no audit lines from the corpus to check (refused tokens are logged)"
    );
    for (i, line) in lines.iter().enumerate() {
        match corpus::audit_line(line) {
            Ok(event) if i >= lines_before && event["outcome"] == "success" => {
                failures.push(format!("a corpus request was logged as a success: {line}"))
            }
            Ok(_) => {}
            Err(e) => failures.push(e),
        }
    }

    // And it keeps serving.
    assert_eq!(c.register("survivor", PASSWORD).status, 201);
    let token = c.login("survivor", PASSWORD).token();
    assert_eq!(c.get_with_token("/auth/protected", &token).status, 200);

    eprintln!(
        "bad_input: {} corpus requests ({by_reqwest} by reqwest, the rest by hand) over HTTP \
         under {runtime} on {:?} in {} ms",
        entries.len(),
        t.backend,
        elapsed.as_millis()
    );
    assert!(
        failures.is_empty(),
        "{} of {} corpus requests went wrong under {runtime} on {:?}:\n{}",
        failures.len(),
        entries.len(),
        t.backend,
        failures.join("\n")
    );
}
