//! Sequential latency: one request at a time from a small HTTP/1.1 client,
//! timed from the first byte written to the last byte of the response read.
//!
//! `wrk -t1 -c1` is not used for this: on routes whose response Spin writes
//! in two segments (those that await a host call before answering), the
//! server's Nagle algorithm holds the second segment until the client ACKs
//! the first, and a keep-alive connection that has left Linux's quick-ACK
//! mode delays that ACK (up to 40 ms). wrk then reports p50s of 20–45 ms for
//! requests that take 1–2 ms. This client sets `TCP_NODELAY` (its request
//! goes out in one write anyway) and, on Linux, re-arms `TCP_QUICKACK`
//! before every read, so that its ACKs are never delayed. The benchmark
//! checks it against a fresh connection per request (as `curl` does, which
//! the artefact cannot touch: a new connection starts in quick-ACK mode)
//! and against `wrk -t1 -c1` on the same route, and prints all three.

use anyhow::{bail, ensure, Context as _, Result};
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// One keep-alive connection, `TCP_NODELAY`, quick ACKs (Linux).
    KeepAlive,
    /// A new connection per request, closed after it (as `curl` does);
    /// the time includes the TCP handshake.
    Fresh,
}

/// One request, prepared once and sent many times.
pub struct Request {
    bytes: Vec<u8>,
    /// Shown when the answer is not the expected status.
    what: String,
    expect: u16,
}

impl Request {
    pub fn new(
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
        expect: u16,
    ) -> Request {
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: bench\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(body.as_bytes());
        Request {
            bytes,
            what: format!("{method} {path}"),
            expect,
        }
    }
}

pub struct Client {
    addr: SocketAddr,
    mode: Mode,
    conn: Option<BufReader<TcpStream>>,
    /// The body of the last response (the buffer is reused).
    body: Vec<u8>,
}

impl Client {
    pub fn new(addr: SocketAddr, mode: Mode) -> Client {
        Client {
            addr,
            mode,
            conn: None,
            body: Vec::new(),
        }
    }

    fn connect(&self) -> Result<BufReader<TcpStream>> {
        let stream = TcpStream::connect_timeout(&self.addr, Duration::from_secs(10))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        Ok(BufReader::new(stream))
    }

    /// Sends `req` and reads the whole answer: the time it took.
    pub fn time(&mut self, req: &Request) -> Result<Duration> {
        if crate::server::interrupted() {
            bail!("interrupted");
        }
        let reused = self.conn.is_some() && self.mode == Mode::KeepAlive;
        let (took, status, keep) = match self.exchange(req) {
            Ok(done) => done,
            // The server may have closed an idle keep-alive connection: one
            // more try on a new one.
            Err(_) if reused => {
                self.conn = None;
                self.exchange(req)?
            }
            Err(e) => return Err(e),
        };
        if !keep || self.mode == Mode::Fresh {
            self.conn = None;
        }
        ensure!(
            status == req.expect,
            "{} answered {status}, expected {}",
            req.what,
            req.expect
        );
        Ok(took)
    }

    /// One request and its whole answer: (time, status, keep-alive).
    fn exchange(&mut self, req: &Request) -> Result<(Duration, u16, bool)> {
        let start = Instant::now();
        if self.conn.is_none() || self.mode == Mode::Fresh {
            self.conn = Some(self.connect()?);
        }
        let conn = self.conn.as_mut().expect("connected");
        let answer = conn
            .get_mut()
            .write_all(&req.bytes)
            .map_err(anyhow::Error::from)
            .and_then(|()| read_response(conn, &mut self.body));
        match answer {
            Ok((status, keep)) => Ok((start.elapsed(), status, keep)),
            Err(e) => {
                self.conn = None;
                Err(e)
            }
        }
    }

    /// The body of the last answer [`Client::time`] read.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// `n` requests one after the other: their times, in order.
    pub fn times(&mut self, req: &Request, n: usize) -> Result<Vec<Duration>> {
        (0..n).map(|_| self.time(req)).collect()
    }
}

/// Re-arms quick ACKs (Linux resets the flag as it sees fit), so that the
/// server's next segment is acknowledged at once.
#[cfg(target_os = "linux")]
fn quick_ack(stream: &TcpStream) {
    use std::os::fd::AsRawFd as _;
    let one: libc::c_int = 1;
    // SAFETY: setsockopt on an open socket with a pointer to a c_int and its size.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_QUICKACK,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn quick_ack(_stream: &TcpStream) {}

/// One line of the head, quick-ACKing whatever arrives.
fn line(conn: &mut BufReader<TcpStream>, buf: &mut String) -> Result<()> {
    buf.clear();
    quick_ack(conn.get_ref());
    let n = conn.read_line(buf)?;
    ensure!(n > 0, "the server closed the connection mid-response");
    Ok(())
}

/// Reads one response (Content-Length or chunked) into `body`: (status,
/// keep-alive).
fn read_response(conn: &mut BufReader<TcpStream>, body: &mut Vec<u8>) -> Result<(u16, bool)> {
    body.clear();
    let mut buf = String::new();
    line(conn, &mut buf)?;
    let status: u16 = buf
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("bad status line {buf:?}"))?;
    let (mut length, mut chunked, mut keep) = (None, false, true);
    loop {
        line(conn, &mut buf)?;
        let header = buf.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':').unwrap_or((header, ""));
        let (name, value) = (name.to_ascii_lowercase(), value.trim().to_ascii_lowercase());
        match name.as_str() {
            "content-length" => length = Some(value.parse::<u64>()?),
            "transfer-encoding" => chunked = value.contains("chunked"),
            "connection" => keep = !value.contains("close"),
            _ => {}
        }
    }
    // A 204, a 304 or a 1xx has no body, whatever the headers say (RFC 9112 §6.3).
    if status == 204 || status == 304 || status < 200 {
        return Ok((status, keep));
    }
    if chunked {
        loop {
            line(conn, &mut buf)?;
            let size_text = buf.trim_end().split(';').next().unwrap_or("").trim();
            let size = u64::from_str_radix(size_text, 16).context("bad chunk size")?;
            if size == 0 {
                // Trailers (none expected), then the empty line.
                loop {
                    line(conn, &mut buf)?;
                    if buf.trim_end().is_empty() {
                        break;
                    }
                }
                break;
            }
            read_exactly(conn, size, body)?;
            // The CRLF after the chunk.
            conn.read_exact(&mut [0u8; 2])?;
        }
    } else if let Some(length) = length {
        read_exactly(conn, length, body)?;
    } else {
        // Neither: the body runs to the end of the connection.
        quick_ack(conn.get_ref());
        conn.read_to_end(body)?;
        keep = false;
    }
    Ok((status, keep))
}

/// Appends the next `n` bytes to `out`.
fn read_exactly(conn: &mut BufReader<TcpStream>, n: u64, out: &mut Vec<u8>) -> Result<()> {
    quick_ack(conn.get_ref());
    let copied = conn.by_ref().take(n).read_to_end(out)?;
    ensure!(copied as u64 == n, "short body");
    Ok(())
}

/// Percentiles of sequential samples.
#[derive(Clone, Copy, Debug, Default)]
pub struct Latency {
    pub samples: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

impl Latency {
    /// Nearest-rank percentiles of `samples`.
    pub fn of(samples: &[Duration]) -> Latency {
        let mut sorted = samples.to_vec();
        sorted.sort();
        let rank = |p: f64| -> f64 {
            if sorted.is_empty() {
                return 0.0;
            }
            let i = ((p / 100.0 * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
            sorted[i - 1].as_secs_f64() * 1e3
        };
        Latency {
            samples: sorted.len(),
            p50_ms: rank(50.0),
            p99_ms: rank(99.0),
        }
    }
}
