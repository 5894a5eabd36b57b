//! JWT forgeries, one per test, each refused at GET /auth/protected with 401
//! `invalid_token`. Tokens are composed by hand (base64url header, payload
//! and HMAC-SHA256 tag over the key the test knows) from the claims the
//! service really issued to alice, so her real `aid` and `sid` are in them:
//! the control with nothing changed is accepted, and each refusal is due to
//! the one thing its test changes.
//!
//! The Authorization header itself follows RFC 6750 §2.1 (`Bearer 1*SP
//! b64token`) with the scheme case-insensitive (RFC 9110 §11.1).

mod common;

use common::*;
use ct_codecs::{Base64UrlSafeNoPadding as B64, Decoder, Encoder};
use http::{HeaderValue, Method};
use jwt_simple::prelude::{HS384Key, HS512Key, JWTClaims, MACLike};
use secure_backend::clock::Clock;
use serde_json::{json, Map, Value};

const SECRET: &str = "0123456789abcdef0123456789abcdef-forgery-suite";
const ANOTHER_SECRET: &str = "fedcba9876543210fedcba9876543210-someone-else";
/// The header the service issues.
const HS256: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

/// alice, logged in on an app whose signing key the test knows.
struct Victim {
    app: TestApp,
    /// The access token the service issued to her.
    issued: String,
    /// Its claims, as the service wrote them.
    claims: Map<String, Value>,
    /// The refresh token of the same login.
    refresh: String,
}

fn alice() -> Victim {
    let app = TestApp::with_vars(&[("jwt_secret", SECRET)]);
    assert_eq!(app.register("alice", PASSWORD).status, 201);
    let tokens = pair(&app.login("alice", PASSWORD));
    let claims = claims_of(&tokens.access);
    assert!(claims["aid"].as_str().is_some_and(|a| a.len() >= 32));
    assert_eq!(claims["sid"], 1);
    Victim {
        app,
        issued: tokens.access,
        claims,
        refresh: tokens.refresh,
    }
}

fn b64(bytes: impl AsRef<[u8]>) -> String {
    B64::encode_to_string(bytes).unwrap()
}

fn claims_of(token: &str) -> Map<String, Value> {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&B64::decode_to_vec(payload, None).unwrap()).unwrap()
}

/// `header.payload.signature` from JSON texts, HMAC-SHA256 under `key`.
fn sign_raw(header: &str, payload: &str, key: &str) -> String {
    let input = format!("{}.{}", b64(header), b64(payload));
    let tag = hmac_sha256::HMAC::mac(input.as_bytes(), key.as_bytes());
    format!("{input}.{}", b64(tag))
}

/// The service's header with `extra` members after `alg` and `typ`.
fn header_with(extra: &str) -> String {
    format!(r#"{{"alg":"HS256","typ":"JWT",{extra}}}"#)
}

/// A JSON object's text with `extra` members appended (duplicates included).
fn with_members(object: &Map<String, Value>, extra: &str) -> String {
    let text = Value::Object(object.clone()).to_string();
    format!("{},{extra}}}", &text[..text.len() - 1])
}

impl Victim {
    fn now(&self) -> u64 {
        self.app.clock.now_secs()
    }

    /// alice's claims after `edit`, as JSON text.
    fn payload(&self, edit: impl FnOnce(&mut Map<String, Value>)) -> String {
        let mut claims = self.claims.clone();
        edit(&mut claims);
        Value::Object(claims).to_string()
    }

    /// alice's claims after `edit`, signed with the service's key.
    fn forge(&self, edit: impl FnOnce(&mut Map<String, Value>)) -> String {
        sign_raw(HS256, &self.payload(edit), SECRET)
    }

    /// The issued token with `from` replaced by `to` in its payload's JSON
    /// text, byte for byte otherwise, under the service's original signature.
    fn tamper(&self, from: &str, to: &str) -> String {
        let parts: Vec<&str> = self.issued.split('.').collect();
        let text = String::from_utf8(B64::decode_to_vec(parts[1], None).unwrap()).unwrap();
        assert!(text.contains(from), "{from} in {text}");
        let payload = text.replacen(from, to, 1);
        format!("{}.{}.{}", parts[0], b64(payload), parts[2])
    }

    fn protected(&self, token: &str) -> TestResponse {
        self.app.get("/auth/protected", Some(token))
    }

    /// GET /auth/protected with these Authorization header values, as bytes.
    fn with_authorization(&self, values: &[&[u8]]) -> TestResponse {
        let mut req = self
            .app
            .request(Method::GET, "/auth/protected", "192.0.2.1");
        for value in values {
            req = req.header("authorization", HeaderValue::from_bytes(value).unwrap());
        }
        self.app.send(req.body(Vec::new()).unwrap())
    }

    fn assert_accepted(&self, res: &TestResponse) {
        assert_eq!(res.status, 200, "{}", res.body);
        assert_eq!(res.body["user"]["username"], "alice");
    }
}

fn assert_refused(res: &TestResponse) {
    assert_error(res, 401, "invalid_token");
}

// The control.

#[test]
fn a_token_built_by_this_suite_with_nothing_changed_is_accepted() {
    let alice = alice();
    let rebuilt = alice.forge(|_| {});
    assert_eq!(
        rebuilt.split('.').next(),
        alice.issued.split('.').next(),
        "the service's own header"
    );
    assert_eq!(claims_of(&rebuilt), alice.claims);
    alice.assert_accepted(&alice.protected(&rebuilt));
    // And a "tampering" that changes nothing keeps the signature good.
    alice.assert_accepted(&alice.protected(&alice.tamper(r#""role":"user""#, r#""role":"user""#)));
}

// The algorithm.

#[test]
fn alg_none_with_an_empty_signature_is_refused() {
    let alice = alice();
    let token = format!(
        "{}.{}.",
        b64(r#"{"alg":"none","typ":"JWT"}"#),
        b64(alice.payload(|_| {}))
    );
    assert_refused(&alice.protected(&token));
}

#[test]
fn alg_none_with_a_signature_is_refused() {
    let alice = alice();
    let token = sign_raw(
        r#"{"alg":"none","typ":"JWT"}"#,
        &alice.payload(|_| {}),
        SECRET,
    );
    assert_refused(&alice.protected(&token));
}

#[test]
fn alg_capitalised_none_is_refused() {
    let alice = alice();
    let token = format!(
        "{}.{}.",
        b64(r#"{"alg":"None","typ":"JWT"}"#),
        b64(alice.payload(|_| {}))
    );
    assert_refused(&alice.protected(&token));
}

#[test]
fn alg_upper_case_none_is_refused() {
    let alice = alice();
    let token = format!(
        "{}.{}.",
        b64(r#"{"alg":"NONE","typ":"JWT"}"#),
        b64(alice.payload(|_| {}))
    );
    assert_refused(&alice.protected(&token));
}

/// alice's claims as jwt-simple reads them, to sign with its other MACs.
fn jwt_claims(alice: &Victim) -> JWTClaims<Map<String, Value>> {
    serde_json::from_value(Value::Object(alice.claims.clone())).unwrap()
}

#[test]
fn alg_hs384_with_a_valid_tag_under_the_same_secret_is_refused() {
    let alice = alice();
    let token = HS384Key::from_bytes(SECRET.as_bytes())
        .authenticate(jwt_claims(&alice))
        .unwrap();
    assert_refused(&alice.protected(&token));
}

#[test]
fn alg_hs512_with_a_valid_tag_under_the_same_secret_is_refused() {
    let alice = alice();
    let token = HS512Key::from_bytes(SECRET.as_bytes())
        .authenticate(jwt_claims(&alice))
        .unwrap();
    assert_refused(&alice.protected(&token));
}

#[test]
fn alg_rs256_with_an_hmac_tag_is_refused() {
    let alice = alice();
    let token = sign_raw(
        r#"{"alg":"RS256","typ":"JWT"}"#,
        &alice.payload(|_| {}),
        SECRET,
    );
    assert_refused(&alice.protected(&token));
}

#[test]
fn alg_es256_with_an_hmac_tag_is_refused() {
    let alice = alice();
    let token = sign_raw(
        r#"{"alg":"ES256","typ":"JWT"}"#,
        &alice.payload(|_| {}),
        SECRET,
    );
    assert_refused(&alice.protected(&token));
}

// Claims changed under the service's signature.

#[test]
fn a_role_raised_to_admin_under_the_original_signature_is_refused() {
    let alice = alice();
    let token = alice.tamper(r#""role":"user""#, r#""role":"admin""#);
    assert_refused(&alice.protected(&token));
}

#[test]
fn an_expiry_extended_under_the_original_signature_is_refused() {
    let alice = alice();
    let exp = alice.claims["exp"].as_u64().unwrap();
    let token = alice.tamper(
        &format!(r#""exp":{exp}"#),
        &format!(r#""exp":{}"#, exp + 86_400),
    );
    assert_refused(&alice.protected(&token));
}

#[test]
fn a_subject_swapped_to_another_user_under_the_original_signature_is_refused() {
    let alice = alice();
    assert_eq!(alice.app.register("bob", PASSWORD).status, 201);
    let token = alice.tamper(r#""sub":"alice""#, r#""sub":"bob""#);
    assert_refused(&alice.protected(&token));
}

#[test]
fn a_token_signed_with_another_key_is_refused() {
    let alice = alice();
    let token = sign_raw(HS256, &alice.payload(|_| {}), ANOTHER_SECRET);
    assert_refused(&alice.protected(&token));
}

// Required claims, each left out of an otherwise valid token.

fn assert_required(claim: &str) {
    let alice = alice();
    assert!(
        alice.claims.contains_key(claim),
        "issued tokens carry {claim}"
    );
    assert_refused(&alice.protected(&alice.forge(|c| {
        c.remove(claim);
    })));
}

#[test]
fn a_token_without_exp_is_refused() {
    assert_required("exp");
}

#[test]
fn a_token_without_iat_is_refused() {
    assert_required("iat");
}

#[test]
fn a_token_without_nbf_is_refused() {
    assert_required("nbf");
}

#[test]
fn a_token_without_iss_is_refused() {
    assert_required("iss");
}

#[test]
fn a_token_without_aud_is_refused() {
    assert_required("aud");
}

#[test]
fn a_token_without_typ_is_refused() {
    assert_required("typ");
}

#[test]
fn a_token_without_sub_is_refused() {
    assert_required("sub");
}

// Time, with the 5 s tolerance between instances and not a second more.

#[test]
fn a_token_expired_beyond_the_clock_tolerance_is_refused() {
    let alice = alice();
    let now = alice.now();
    alice.assert_accepted(&alice.protected(&alice.forge(|c| c["exp"] = json!(now - 5))));
    assert_refused(&alice.protected(&alice.forge(|c| c["exp"] = json!(now - 6))));
}

#[test]
fn a_token_not_valid_until_beyond_the_clock_tolerance_is_refused() {
    let alice = alice();
    let now = alice.now();
    alice.assert_accepted(&alice.protected(&alice.forge(|c| c["nbf"] = json!(now + 5))));
    assert_refused(&alice.protected(&alice.forge(|c| c["nbf"] = json!(now + 6))));
}

#[test]
fn a_token_issued_beyond_the_clock_tolerance_in_the_future_is_refused() {
    let alice = alice();
    let now = alice.now();
    alice.assert_accepted(&alice.protected(&alice.forge(|c| c["iat"] = json!(now + 5))));
    assert_refused(&alice.protected(&alice.forge(|c| c["iat"] = json!(now + 6))));
}

// Issuer and audience.

#[test]
fn a_token_from_another_issuer_is_refused() {
    let alice = alice();
    assert_refused(&alice.protected(&alice.forge(|c| {
        c["iss"] = json!("someone-else");
    })));
}

#[test]
fn a_token_for_another_audience_is_refused() {
    let alice = alice();
    assert_refused(&alice.protected(&alice.forge(|c| {
        c["aud"] = json!("other-service");
    })));
}

#[test]
fn a_token_for_an_audience_list_without_this_service_is_refused() {
    let alice = alice();
    assert_refused(&alice.protected(&alice.forge(|c| {
        c["aud"] = json!(["other-service", "secure-backend-staging"]);
    })));
}

// Tokens that were real once, or are real but not access tokens.

#[test]
fn a_token_of_a_deleted_user_is_refused() {
    let alice = alice();
    let admin = alice.app.admin_token("root");
    let res = alice
        .app
        .call(Method::DELETE, "/admin/users/alice", Some(&admin), None);
    assert_no_content(&res);
    assert_refused(&alice.protected(&alice.issued));
    // Nor does it come back for a new account of the same name.
    assert_eq!(alice.app.register("alice", PASSWORD).status, 201);
    assert_refused(&alice.protected(&alice.issued));
}

#[test]
fn a_refresh_token_presented_as_a_bearer_token_is_refused() {
    let alice = alice();
    assert_refused(&alice.protected(&alice.refresh));
}

#[test]
fn a_signed_token_of_type_refresh_is_refused() {
    let alice = alice();
    assert_refused(&alice.protected(&alice.forge(|c| {
        c["typ"] = json!("refresh");
    })));
}

#[test]
fn a_signed_token_of_another_type_is_refused() {
    let alice = alice();
    assert_refused(&alice.protected(&alice.forge(|c| {
        c["typ"] = json!("id");
    })));
}

#[test]
fn a_200_kb_token_is_refused() {
    let alice = alice();
    let token = alice.forge(|c| {
        c.insert("pad".into(), json!("x".repeat(150 * 1024)));
    });
    assert!(token.len() >= 200 * 1024, "{}", token.len());
    assert_refused(&alice.protected(&token));
}

// JSON tricks, all signed with the service's key.

#[test]
fn a_header_with_two_alg_members_is_refused() {
    let alice = alice();
    // A parser that keeps the first sees "none"; one that keeps the last, HS256.
    let header = r#"{"alg":"none","typ":"JWT","alg":"HS256"}"#;
    let token = sign_raw(header, &alice.payload(|_| {}), SECRET);
    assert_refused(&alice.protected(&token));
}

#[test]
fn a_payload_with_a_second_sub_naming_an_admin_is_refused() {
    let alice = alice();
    let root = alice.app.admin_token("root");
    let root_aid = &claims_of(&root)["aid"];
    // A parser that keeps the last member would see root's account.
    let payload = with_members(
        &alice.claims,
        &format!(r#""sub":"root","aid":{root_aid},"role":"admin""#),
    );
    let token = sign_raw(HS256, &payload, SECRET);
    assert_refused(&alice.protected(&token));
    assert_error(
        &alice.app.get("/admin/dashboard", Some(&token)),
        401,
        "invalid_token",
    );
}

#[test]
fn a_payload_with_a_second_role_of_admin_is_refused() {
    let alice = alice();
    let payload = with_members(&alice.claims, r#""role":"admin""#);
    let token = sign_raw(HS256, &payload, SECRET);
    assert_refused(&alice.protected(&token));
}

#[test]
fn a_crit_header_is_refused() {
    let alice = alice();
    // RFC 7797's unencoded payload: a verifier must understand it or refuse.
    let header = header_with(r#""crit":["b64"],"b64":false"#);
    let token = sign_raw(&header, &alice.payload(|_| {}), SECRET);
    assert_refused(&alice.protected(&token));
}

/// jwt-simple ignores key hints; a verifier that ever honoured them would
/// fetch or read its key where the token says. The service issues no
/// header but its own, so any other is refused.
fn assert_header_was_the_reason(alice: &Victim) {
    let rejected = alice.app.events_named("token_rejected");
    assert_eq!(rejected.last().unwrap()["reason"], "unexpected header");
}

/// Finding: accepted (jwt-simple ignores `kid`) until the header was pinned.
#[test]
fn a_kid_with_path_traversal_is_refused_not_ignored() {
    let alice = alice();
    let header = header_with(r#""kid":"../../secret""#);
    let token = sign_raw(&header, &alice.payload(|_| {}), SECRET);
    assert_refused(&alice.protected(&token));
    assert_header_was_the_reason(&alice);
}

/// Finding: accepted (jwt-simple ignores `jku`) until the header was pinned.
#[test]
fn a_jku_header_pointing_elsewhere_is_refused_not_ignored() {
    let alice = alice();
    let header = header_with(r#""jku":"https://attacker.example/jwks.json""#);
    let token = sign_raw(&header, &alice.payload(|_| {}), SECRET);
    assert_refused(&alice.protected(&token));
    assert_header_was_the_reason(&alice);
}

/// Finding: accepted (jwt-simple ignores `x5u`) until the header was pinned.
#[test]
fn an_x5u_header_pointing_elsewhere_is_refused_not_ignored() {
    let alice = alice();
    let header = header_with(r#""x5u":"https://attacker.example/cert.pem""#);
    let token = sign_raw(&header, &alice.payload(|_| {}), SECRET);
    assert_refused(&alice.protected(&token));
    assert_header_was_the_reason(&alice);
}

#[test]
fn a_jwk_header_embedding_a_key_is_refused() {
    let alice = alice();
    let jwk = json!({"kty": "oct", "k": b64(ANOTHER_SECRET)});
    let header = header_with(&format!(r#""jwk":{jwk}"#));
    let token = sign_raw(&header, &alice.payload(|_| {}), ANOTHER_SECRET);
    assert_refused(&alice.protected(&token));
    // Not even when the tag is made with the service's own key.
    let token = sign_raw(&header, &alice.payload(|_| {}), SECRET);
    assert_refused(&alice.protected(&token));
}

// The Authorization header.

/// Finding: accepted (the guard read only the first header) until the
/// guard refused more than one.
#[test]
fn two_authorization_headers_are_refused_even_when_the_first_is_valid() {
    let alice = alice();
    let valid = format!("Bearer {}", alice.issued);
    let res = alice.with_authorization(&[valid.as_bytes(), b"Bearer garbage"]);
    assert_refused(&res);
}

#[test]
fn two_authorization_headers_are_refused_when_the_second_is_valid() {
    let alice = alice();
    let valid = format!("Bearer {}", alice.issued);
    let res = alice.with_authorization(&[b"Bearer garbage", valid.as_bytes()]);
    assert_refused(&res);
}

/// Finding: accepted, as above.
#[test]
fn two_authorization_headers_are_refused_even_when_both_are_valid() {
    let alice = alice();
    let valid = format!("Bearer {}", alice.issued);
    let res = alice.with_authorization(&[valid.as_bytes(), valid.as_bytes()]);
    assert_refused(&res);
}

/// RFC 9110 §11.1: the auth scheme is case-insensitive.
#[test]
fn the_scheme_in_any_case_is_accepted() {
    let alice = alice();
    for scheme in ["bearer", "BEARER", "bEaReR"] {
        let value = format!("{scheme} {}", alice.issued);
        alice.assert_accepted(&alice.with_authorization(&[value.as_bytes()]));
    }
}

/// RFC 6750 §2.1: `"Bearer" 1*SP b64token`.
#[test]
fn several_spaces_after_the_scheme_are_accepted() {
    let alice = alice();
    let value = format!("Bearer   {}", alice.issued);
    alice.assert_accepted(&alice.with_authorization(&[value.as_bytes()]));
}

/// RFC 9110 §5.5: whitespace around a field value is not part of it (and
/// the HTTP layer strips it before the component sees the request).
#[test]
fn whitespace_around_the_whole_field_value_is_ignored() {
    let alice = alice();
    let value = format!(" \tBearer {}\t ", alice.issued);
    alice.assert_accepted(&alice.with_authorization(&[value.as_bytes()]));
}

/// Finding: answered `missing_token` (the guard split on a space only),
/// though the request plainly tried the Bearer scheme.
#[test]
fn a_tab_after_the_scheme_is_an_invalid_token_not_a_missing_one() {
    let alice = alice();
    let value = format!("Bearer\t{}", alice.issued);
    assert_refused(&alice.with_authorization(&[value.as_bytes()]));
}

#[test]
fn a_tab_and_more_after_the_token_is_refused() {
    let alice = alice();
    let value = format!("Bearer {}\tjunk", alice.issued);
    assert_refused(&alice.with_authorization(&[value.as_bytes()]));
}

#[test]
fn a_token_followed_by_extra_words_is_refused() {
    let alice = alice();
    let value = format!("Bearer {} extra words", alice.issued);
    assert_refused(&alice.with_authorization(&[value.as_bytes()]));
}

#[test]
fn junk_stuck_to_the_end_of_the_token_is_refused() {
    let alice = alice();
    for junk in [";", ",", "\"", "junk", "=x"] {
        let value = format!("Bearer {}{junk}", alice.issued);
        assert_refused(&alice.with_authorization(&[value.as_bytes()]));
    }
}

/// A quoted token is not a b64token (RFC 6750 §2.1).
#[test]
fn a_quoted_token_is_refused() {
    let alice = alice();
    let value = format!("Bearer \"{}\"", alice.issued);
    assert_refused(&alice.with_authorization(&[value.as_bytes()]));
}

/// Whatever comes before the scheme makes it another scheme: no Bearer
/// credentials at all, as for `Basic` (RFC 6750 §3.1: no error code).
#[test]
fn junk_before_the_scheme_is_answered_as_no_bearer_token() {
    let alice = alice();
    for prefix in ["x Bearer ", "xBearer ", "Bearer"] {
        let value = format!("{prefix}{}", alice.issued);
        let res = alice.with_authorization(&[value.as_bytes()]);
        assert_error(&res, 401, "missing_token");
    }
}

#[test]
fn bytes_outside_ascii_in_the_header_are_refused() {
    let alice = alice();
    let mut value = format!("Bearer {}", alice.issued).into_bytes();
    value.push(0xff);
    assert_refused(&alice.with_authorization(&[&value]));
}

/// A newline cannot even be put into a header value, here or by the host's
/// HTTP parser, so no request carrying one reaches the guard.
#[test]
fn a_newline_in_the_header_never_reaches_the_guard() {
    let alice = alice();
    for value in [
        format!("Bearer {}\r\nX-Injected: 1", alice.issued),
        format!("Bearer\r\n {}", alice.issued),
        format!("Bearer {}\n", alice.issued),
    ] {
        assert!(HeaderValue::from_str(&value).is_err(), "{value:?}");
    }
}
