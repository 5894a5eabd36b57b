//! What a handler works with: the outside world (store, clock, audit sink,
//! variables) and the facts of the request being served.

use crate::audit::{self, AuditSink, Event, Outcome, Subjects};
use crate::clock::Clock;
use crate::config::{Config, ConfigError, Variables};
use crate::security::client_ip::client_ip;
use crate::store::KeyValue;
use http::HeaderMap;
use std::cell::{Cell, OnceCell};

/// The outside world, provided by the Spin entry point or by a test.
#[derive(Clone, Copy)]
pub struct Services<'a> {
    pub store: &'a dyn KeyValue,
    pub clock: &'a dyn Clock,
    pub audit: &'a dyn AuditSink,
    pub variables: &'a dyn Variables,
}

/// Facts about the request that every audit line carries (the client IP
/// too, which [`Ctx::client_ip`] works out only when a line or a rule needs it).
#[derive(Clone, Debug)]
pub struct RequestMeta {
    pub request_id: String,
    pub method: String,
    pub path: String,
}

pub struct Ctx<'a> {
    pub store: &'a dyn KeyValue,
    pub clock: &'a dyn Clock,
    pub config: Config<'a>,
    pub meta: RequestMeta,
    headers: &'a HeaderMap,
    client_ip: OnceCell<Result<String, ConfigError>>,
    /// Whether this request has logged that `client_ip_header` is broken.
    ip_error_logged: Cell<bool>,
    sink: &'a dyn AuditSink,
}

impl<'a> Ctx<'a> {
    pub fn new(services: Services<'a>, meta: RequestMeta, headers: &'a HeaderMap) -> Self {
        Self {
            store: services.store,
            clock: services.clock,
            config: Config::new(services.variables),
            meta,
            headers,
            client_ip: OnceCell::new(),
            ip_error_logged: Cell::new(false),
            sink: services.audit,
        }
    }

    /// The client's IP, from the configured proxy header or Spin's own
    /// (reads `client_ip_header` on first use only).
    pub fn client_ip(&self) -> Result<&str, ConfigError> {
        let ip = self.client_ip.get_or_init(|| {
            let header = self.config.client_ip_header()?;
            Ok(client_ip(self.headers, header.as_ref()))
        });
        match ip {
            Ok(ip) => Ok(ip),
            Err(e) => Err(e.clone()),
        }
    }

    /// Writes one audit line. When `client_ip_header` is broken, the line
    /// names no client ("unknown"; Spin's address would be the proxy's), and
    /// the request also logs one `config_error` saying why.
    pub fn audit(
        &self,
        event: Event,
        outcome: Outcome,
        username: Option<&str>,
        reason: Option<&str>,
    ) {
        let subjects = Subjects {
            username,
            target: None,
        };
        self.audit_subjects(event, outcome, subjects, reason);
    }

    /// An admin's action on another user: the line names both.
    pub fn audit_admin(&self, event: Event, outcome: Outcome, admin: &str, target: &str) {
        let subjects = Subjects {
            username: Some(admin),
            target: Some(target),
        };
        self.audit_subjects(event, outcome, subjects, None);
    }

    fn audit_subjects(
        &self,
        event: Event,
        outcome: Outcome,
        subjects: Subjects,
        reason: Option<&str>,
    ) {
        let ip = match self.client_ip() {
            Ok(ip) => ip,
            Err(e) => {
                let first = !self.ip_error_logged.replace(true);
                if first && event != Event::ConfigError {
                    self.emit_line(
                        "unknown",
                        Event::ConfigError,
                        Outcome::Error,
                        Subjects::default(),
                        Some(&e.0),
                    );
                }
                "unknown"
            }
        };
        self.emit_line(ip, event, outcome, subjects, reason);
    }

    fn emit_line(
        &self,
        ip: &str,
        event: Event,
        outcome: Outcome,
        subjects: Subjects,
        reason: Option<&str>,
    ) {
        self.sink.write_line(&audit::line(
            self.clock.now_ms(),
            &self.meta,
            ip,
            event,
            outcome,
            subjects,
            reason,
        ));
    }
}
