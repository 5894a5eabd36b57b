//! Any request, or a few in a row, through `router::handle` against the
//! in-memory store: the service must not panic, and every answer must keep
//! the contract of `openapi.yaml` (see `contract`). With a healthy store
//! and valid variables there is no cause for a 500, so none may appear.
//! The input format is described in `src/request.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use secure_backend_fuzz::contract::Contract;
use secure_backend_fuzz::fixture::Fixture;
use secure_backend_fuzz::{request, shown};
use std::sync::OnceLock;

struct Setup {
    fixture: Fixture,
    contract: Contract,
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let fixture = Fixture::new(&[]);
        let contract = Contract::served(&fixture);
        Setup { fixture, contract }
    })
}

fuzz_target!(|data: &[u8]| {
    let Setup { fixture, contract } = setup();
    let world = fixture.world();
    for (i, step) in request::parse(data, fixture).into_iter().enumerate() {
        world.clock.advance_secs(step.wait_secs);
        let method = step.request.method().as_str().to_owned();
        let path = step.request.uri().path().to_owned();
        let asked = format!(
            "{method} {} {:?} body {}",
            step.request.uri(),
            step.request.headers(),
            shown(step.request.body())
        );
        let res = world.send(step.request);
        let status = res.status().as_u16();
        let verdict = match contract.check(&method, &path, &res) {
            Ok(()) if status == 500 => Err("a 500 from a healthy store and valid variables".into()),
            verdict => verdict,
        };
        if let Err(why) = verdict {
            panic!(
                "request {i}: {why}\n  asked: {asked}\n  answer: {status} {:?} {}\n  audit: {:#?}",
                res.headers(),
                shown(res.body()),
                world.audit.lines()
            );
        }
    }
    for line in world.audit.lines() {
        if serde_json::from_str::<serde_json::Value>(&line).is_err() {
            panic!("an audit line is not JSON: {line}");
        }
    }
});
