//! Token verification alone: any string as an access token, directly
//! through `tokens::verify` and as a Bearer token to GET /auth/protected.
//! Nothing but a token signed with our key, with claims we would issue and
//! live at the time, may verify; the router grants nothing that
//! `verify` refuses, and refuses everything else with a 401.
//!
//! An input is the token itself, or `SIGN\n<header>\n<payload>`: that
//! header and payload (any bytes; `$AID`, `$SID`, `$ADMIN_AID` and
//! `$ADMIN_SID` stand for the accounts' ids and sessions) signed with our
//! key, so the fuzzer reaches the claim checks behind the signature.
#![no_main]

use ct_codecs::{Base64UrlSafeNoPadding, Decoder, Encoder};
use http::{header, Method, Request};
use libfuzzer_sys::fuzz_target;
use secure_backend::domain::Username;
use secure_backend::security::keys::Keys;
use secure_backend::security::tokens::{self, AUDIENCE, CLOCK_TOLERANCE_SECS, ISSUER};
use secure_backend_fuzz::contract::Contract;
use secure_backend_fuzz::fixture::{unverified_claims, Fixture, CLIENT_ADDR, JWT_SECRET, NOW_MS};
use secure_backend_fuzz::replace;
use serde_json::Value;
use std::sync::OnceLock;

struct Setup {
    fixture: Fixture,
    contract: Contract,
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let fixture = Fixture::new(&[("jwt_secret", JWT_SECRET)]);
        let contract = Contract::served(&fixture);
        Setup { fixture, contract }
    })
}

fuzz_target!(|data: &[u8]| {
    let Setup { fixture, contract } = setup();
    // Cheap, and not `Sync` (it caches a derived key): one per input.
    let keys = &Keys::from_secret(JWT_SECRET.as_bytes());
    let token = match data.strip_prefix(b"SIGN\n") {
        Some(parts) => sign(parts, fixture),
        None => String::from_utf8_lossy(data).into_owned(),
    };

    if let Ok(verified) = tokens::verify(keys, &token, NOW_MS) {
        if let Err(why) = reference(&token) {
            panic!("verify accepted a token that {why}: {token:?}");
        }
        let claims = unverified_claims(&token).unwrap_or_default();
        let said = (
            claims["sub"].as_str().map(str::to_ascii_lowercase),
            claims["aid"].as_str(),
            claims["sid"].as_u64(),
        );
        let got = (
            Some(verified.subject.as_str().to_owned()),
            verified.account_id.as_deref(),
            Some(verified.session),
        );
        assert_eq!(
            said, got,
            "verify read other claims than the token holds: {token:?}"
        );
    }

    let authorization = format!("Bearer {token}");
    let Ok(request) = Request::builder()
        .method(Method::GET)
        .uri("/auth/protected")
        .header(header::AUTHORIZATION, authorization.as_str())
        .header("spin-client-addr", CLIENT_ADDR)
        .body(Vec::new())
    else {
        return;
    };
    let res = fixture.world().send(request);
    let body: Value = serde_json::from_slice(res.body()).unwrap_or_default();
    if let Err(why) = contract.check("GET", "/auth/protected", &res) {
        panic!("{why}: {} {body} for {token:?}", res.status());
    }
    // As the guard reads the header (RFC 6750 §2.1).
    let sent = authorization
        .trim()
        .split_once(' ')
        .map_or("", |(_, t)| t.trim());
    match res.status().as_u16() {
        200 => {
            let verified = tokens::verify(keys, sent, NOW_MS);
            assert!(
                verified.is_ok(),
                "the router granted a token verify refuses: {sent:?}"
            );
            if let Err(why) = reference(sent) {
                panic!("the router granted a token that {why}: {sent:?}");
            }
            let name = body["user"]["username"].as_str();
            let subject = verified.map(|v| v.subject.as_str().to_owned()).ok();
            assert_eq!(
                name,
                subject.as_deref(),
                "granted as someone else: {sent:?}"
            );
        }
        401 => {}
        status => panic!("{status} {body} for {sent:?}: only 200 or 401 fit"),
    }
});

/// `header` and `payload` as a token signed with our key.
fn sign(parts: &[u8], fixture: &Fixture) -> String {
    let (header, payload) = match parts.iter().position(|b| *b == b'\n') {
        Some(at) => (&parts[..at], &parts[at + 1..]),
        None => (parts, &[][..]),
    };
    let mut payload = payload.to_vec();
    for (name, value) in [
        ("$ADMIN_AID", fixture.admin.account_id.clone()),
        ("$ADMIN_SID", fixture.admin.session.to_string()),
        ("$AID", fixture.user.account_id.clone()),
        ("$SID", fixture.user.session.to_string()),
    ] {
        payload = replace(&payload, name.as_bytes(), value.as_bytes(), 4);
    }
    let signing_input = format!("{}.{}", b64(header), b64(&payload));
    let mac = hmac_sha256::HMAC::mac(signing_input.as_bytes(), JWT_SECRET.as_bytes());
    format!("{signing_input}.{}", b64(&mac))
}

fn b64(bytes: &[u8]) -> String {
    Base64UrlSafeNoPadding::encode_to_string(bytes).expect("base64 of a small input")
}

fn json_part(part: &str) -> Option<Value> {
    serde_json::from_slice(&Base64UrlSafeNoPadding::decode_to_vec(part, None).ok()?).ok()
}

/// Why we would not have issued `token`, or would no longer accept it
/// now: the rules of `tokens.rs`, written out independently of jwt-simple.
/// Lenient by a second at the time limits, so only a clear breach counts.
fn reference(token: &str) -> Result<(), String> {
    let parts: Vec<&str> = token.split('.').collect();
    let [header, payload, signature] = parts[..] else {
        return Err(format!("has {} parts", parts.len()));
    };
    let header = json_part(header).ok_or("has no JSON header")?;
    if header["alg"] != "HS256" {
        return Err(format!("says alg {}", header["alg"]));
    }
    let signing_input = format!("{}.{payload}", parts[0]);
    let mac = hmac_sha256::HMAC::mac(signing_input.as_bytes(), JWT_SECRET.as_bytes());
    let given = Base64UrlSafeNoPadding::decode_to_vec(signature, None).unwrap_or_default();
    if given != mac {
        return Err("is not signed with our key".into());
    }
    let claims = json_part(payload).ok_or("has no JSON payload")?;
    if claims["iss"] != ISSUER {
        return Err(format!("has iss {}", claims["iss"]));
    }
    let audience_ok = match &claims["aud"] {
        Value::String(a) => a == AUDIENCE,
        Value::Array(a) => a.iter().any(|a| a == AUDIENCE),
        _ => false,
    };
    if !audience_ok {
        return Err(format!("has aud {}", claims["aud"]));
    }
    if claims["typ"] != tokens::ACCESS {
        return Err(format!("has typ {}", claims["typ"]));
    }
    if claims["sid"].as_u64().is_none() {
        return Err(format!("has sid {}", claims["sid"]));
    }
    if !matches!(claims["aid"], Value::String(_) | Value::Null) {
        return Err(format!("has aid {}", claims["aid"]));
    }
    if !matches!(claims["role"].as_str(), Some("user" | "admin")) {
        return Err(format!("has role {}", claims["role"]));
    }
    let sub = claims["sub"].as_str().ok_or("has no sub")?;
    if Username::parse(sub).is_err() {
        return Err(format!("has sub {sub:?}"));
    }
    let now = NOW_MS as f64 / 1000.0;
    let slack = CLOCK_TOLERANCE_SECS as f64 + 1.0;
    let time = |name: &str| {
        claims[name]
            .as_f64()
            .ok_or(format!("has {name} {}", claims[name]))
    };
    let (exp, nbf, _iat) = (time("exp")?, time("nbf")?, time("iat")?);
    if exp + slack < now {
        return Err(format!("expired at {exp}, now is {now}"));
    }
    if nbf - slack > now {
        return Err(format!("is not valid before {nbf}, now is {now}"));
    }
    Ok(())
}
