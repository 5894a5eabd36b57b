//! Capture of the component's stdout and stderr.
//!
//! Spin writes them to `.spin/logs/<component>_stdout.txt` / `_stderr.txt`;
//! here they go to an in-memory [`OutputLog`] shared by all instances. Each
//! instance buffers its own partial line and appends only whole lines, under
//! one lock, so concurrent requests never interleave mid-line. A line is
//! visible as soon as the guest writes its newline (normally before the
//! response is complete); an unterminated last line is appended when the
//! instance is dropped.

use std::io::Write as _;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Which output stream of the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Channel {
    Stdout,
    Stderr,
}

/// Everything the component's instances wrote, shared by all of them.
#[derive(Clone, Default)]
pub struct OutputLog {
    captured: Arc<Mutex<Captured>>,
    echo: bool,
}

#[derive(Default)]
struct Captured {
    stdout_lines: Vec<String>,
    stderr: String,
}

impl OutputLog {
    /// A log that also copies each line to this process's stdout/stderr when
    /// `echo` is set.
    pub fn new(echo: bool) -> Self {
        Self {
            captured: Default::default(),
            echo,
        }
    }

    /// Complete stdout lines so far, without their line endings.
    pub fn stdout_lines(&self) -> Vec<String> {
        self.lock().stdout_lines.clone()
    }

    /// All stderr text so far.
    pub fn stderr_text(&self) -> String {
        self.lock().stderr.clone()
    }

    /// A fresh per-instance writer for `channel`.
    pub fn instance_output(&self, channel: Channel) -> InstanceOutput {
        InstanceOutput {
            pending: Arc::new(PendingLine {
                log: self.clone(),
                channel,
                buffer: Mutex::new(Vec::new()),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Captured> {
        self.captured.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends whole lines (`text` ends with a newline).
    fn append(&self, channel: Channel, text: &str) {
        let mut captured = self.lock();
        match channel {
            Channel::Stdout => {
                captured.stdout_lines.extend(
                    text.lines()
                        .map(|l| l.strip_suffix('\r').unwrap_or(l).to_string()),
                );
                if self.echo {
                    let _ = std::io::stdout().lock().write_all(text.as_bytes());
                }
            }
            Channel::Stderr => {
                captured.stderr.push_str(text);
                if self.echo {
                    let _ = std::io::stderr().lock().write_all(text.as_bytes());
                }
            }
        }
    }
}

/// The guest's stdout or stderr for one instance (give it to `WasiCtxBuilder`).
pub struct InstanceOutput {
    pending: Arc<PendingLine>,
}

struct PendingLine {
    log: OutputLog,
    channel: Channel,
    buffer: Mutex<Vec<u8>>,
}

impl PendingLine {
    fn write(&self, bytes: &[u8]) {
        let mut buffer = self.buffer.lock().unwrap_or_else(|e| e.into_inner());
        buffer.extend_from_slice(bytes);
        if let Some(last_newline) = buffer.iter().rposition(|b| *b == b'\n') {
            let complete: Vec<u8> = buffer.drain(..=last_newline).collect();
            self.log
                .append(self.channel, &String::from_utf8_lossy(&complete));
        }
    }
}

impl Drop for PendingLine {
    fn drop(&mut self) {
        let buffer = std::mem::take(self.buffer.get_mut().unwrap_or_else(|e| e.into_inner()));
        if !buffer.is_empty() {
            let mut text = String::from_utf8_lossy(&buffer).into_owned();
            text.push('\n');
            self.log.append(self.channel, &text);
        }
    }
}

impl IsTerminal for InstanceOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for InstanceOutput {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(LineWriter(self.pending.clone()))
    }

    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(LineWriter(self.pending.clone()))
    }
}

/// A stream handed to the guest; all of an instance's streams share one
/// pending line.
struct LineWriter(Arc<PendingLine>);

impl OutputStream for LineWriter {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.0.write(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for LineWriter {
    async fn ready(&mut self) {}
}

impl AsyncWrite for LineWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.0.write(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_whole_lines_are_published_and_the_rest_on_drop() {
        let log = OutputLog::new(false);
        let out = log.instance_output(Channel::Stdout);
        out.pending.write(b"one\ntw");
        assert_eq!(log.stdout_lines(), ["one"]);
        out.pending.write(b"o\r\nthree");
        assert_eq!(log.stdout_lines(), ["one", "two"]);
        drop(out);
        assert_eq!(log.stdout_lines(), ["one", "two", "three"]);
    }
}
