//! What a handler works with: the outside world (store, clock, audit sink,
//! variables) and the facts of the request being served.

use crate::audit::{self, AuditSink, Event, Outcome};
use crate::clock::Clock;
use crate::config::{Config, Variables};
use crate::store::KeyValue;

/// The outside world, provided by the Spin entry point or by a test.
#[derive(Clone, Copy)]
pub struct Services<'a> {
    pub store: &'a dyn KeyValue,
    pub clock: &'a dyn Clock,
    pub audit: &'a dyn AuditSink,
    pub variables: &'a dyn Variables,
}

/// Facts about the request that every audit line carries.
#[derive(Clone, Debug)]
pub struct RequestMeta {
    pub request_id: String,
    pub client_ip: String,
    pub method: String,
    pub path: String,
}

pub struct Ctx<'a> {
    pub store: &'a dyn KeyValue,
    pub clock: &'a dyn Clock,
    pub config: Config,
    pub meta: RequestMeta,
    sink: &'a dyn AuditSink,
}

impl<'a> Ctx<'a> {
    pub fn new(services: Services<'a>, config: Config, meta: RequestMeta) -> Self {
        Self {
            store: services.store,
            clock: services.clock,
            config,
            meta,
            sink: services.audit,
        }
    }

    pub fn audit(
        &self,
        event: Event,
        outcome: Outcome,
        username: Option<&str>,
        reason: Option<&str>,
    ) {
        emit(
            self.sink, self.clock, &self.meta, event, outcome, username, reason,
        );
    }
}

pub fn emit(
    sink: &dyn AuditSink,
    clock: &dyn Clock,
    meta: &RequestMeta,
    event: Event,
    outcome: Outcome,
    username: Option<&str>,
    reason: Option<&str>,
) {
    sink.write_line(&audit::line(
        clock.now_ms(),
        meta,
        event,
        outcome,
        username,
        reason,
    ));
}
