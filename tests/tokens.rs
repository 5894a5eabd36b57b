//! Token rules: 15-minute lifetime on the injected clock, HS256 pinned,
//! iss/aud/exp required, and the stored user (not the token) decides.

mod common;

use common::*;
use jwt_simple::prelude::*;
use secure_backend::clock::Clock;
use secure_backend::domain::{Role, User, Username};
use secure_backend::store::{KeyValue, MemoryStore};
use serde_json::json;
use std::collections::HashSet;

const SECRET: &str = "0123456789abcdef0123456789abcdef-test-key";

fn app_with_known_key() -> TestApp {
    TestApp::with_vars(&[("jwt_secret", SECRET)])
}

#[derive(Serialize, Deserialize)]
struct Custom {
    role: String,
    typ: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    aid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sid: Option<u64>,
}

/// The account id stored for `name`, if it has a record.
fn account_id(app: &TestApp, name: &str) -> Option<String> {
    let key = User::key(&Username::parse(name).unwrap());
    let record = app.store.get(&key).unwrap()?;
    serde_json::from_slice::<User>(&record).unwrap().account_id
}

/// A token signed with the service's key, with claims of the test's choosing
/// (by default those the service would issue to alice's account).
fn forge(app: &TestApp, edit: impl FnOnce(&mut JWTClaims<Custom>)) -> String {
    let now = Duration::from_millis(app.clock.now_ms());
    let mut claims = Claims::with_custom_claims(
        Custom {
            role: "admin".into(),
            typ: "access".into(),
            aid: account_id(app, "alice"),
            sid: Some(1),
        },
        Duration::from_secs(900),
    )
    .with_subject("alice")
    .with_issuer("secure-backend")
    .with_audience("secure-backend");
    claims.issued_at = Some(now);
    claims.invalid_before = Some(now);
    claims.expires_at = Some(now + Duration::from_secs(900));
    edit(&mut claims);
    HS256Key::from_bytes(SECRET.as_bytes())
        .authenticate(claims)
        .unwrap()
}

#[test]
fn tokens_expire_after_fifteen_minutes() {
    let app = TestApp::new();
    let token = app.user_token("alice");
    app.clock.advance_secs(899);
    assert_eq!(app.get("/auth/protected", Some(&token)).status, 200);
    // A few seconds of clock tolerance between instances, no more.
    app.clock.advance_secs(7);
    assert_error(
        &app.get("/auth/protected", Some(&token)),
        401,
        "invalid_token",
    );
}

#[test]
fn tokens_carry_the_documented_claims() {
    let app = app_with_known_key();
    let token = app.user_token("alice");
    let key = HS256Key::from_bytes(SECRET.as_bytes());
    let options = VerificationOptions {
        artificial_time: Some(Duration::from_millis(app.clock.now_ms())),
        ..Default::default()
    };
    let claims = key.verify_token::<Custom>(&token, Some(options)).unwrap();
    assert_eq!(claims.subject.as_deref(), Some("alice"));
    assert_eq!(claims.custom.role, "user");
    assert_eq!(claims.custom.aid, account_id(&app, "alice"));
    assert!(claims.custom.aid.is_some_and(|a| a.len() >= 32));
    assert_eq!(claims.issuer.as_deref(), Some("secure-backend"));
    assert!(claims
        .audiences
        .unwrap()
        .contains(&HashSet::from(["secure-backend".to_string()])));
    let iat = claims.issued_at.unwrap().as_secs();
    assert_eq!(iat, START_MS / 1000);
    assert_eq!(claims.invalid_before.unwrap().as_secs(), iat);
    assert_eq!(claims.expires_at.unwrap().as_secs(), iat + 900);
    assert!(claims.jwt_id.is_some_and(|j| j.len() >= 16));
    let metadata = Token::decode_metadata(&token).unwrap();
    assert_eq!(metadata.algorithm(), "HS256");
}

#[test]
fn each_token_has_its_own_id() {
    let app = app_with_known_key();
    app.register("alice", PASSWORD);
    let a = app.login("alice", PASSWORD).token();
    let b = app.login("alice", PASSWORD).token();
    assert_ne!(a, b);
}

#[test]
fn a_correctly_forged_token_is_accepted_so_the_forgeries_below_mean_something() {
    let app = app_with_known_key();
    app.register("alice", PASSWORD);
    assert_eq!(
        app.get("/auth/protected", Some(&forge(&app, |_| {})))
            .status,
        200
    );
}

#[test]
fn tampered_tokens_are_rejected() {
    let app = app_with_known_key();
    let token = app.user_token("alice");
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    // Flip the payload to another user, keep the signature.
    let payload = ct_codecs::Base64UrlSafeNoPadding::encode_to_string(
        json!({"sub": "mallory", "role": "admin", "typ": "access", "iss": "secure-backend", "aud": "secure-backend"})
            .to_string(),
    )
    .unwrap();
    parts[1] = payload;
    assert_error(
        &app.get("/auth/protected", Some(&parts.join("."))),
        401,
        "invalid_token",
    );
    let mut sig_flipped = token.clone();
    let last = sig_flipped.pop().unwrap();
    sig_flipped.push(if last == 'A' { 'B' } else { 'A' });
    assert_error(
        &app.get("/auth/protected", Some(&sig_flipped)),
        401,
        "invalid_token",
    );
}

#[test]
fn the_algorithm_is_pinned_to_hs256() {
    use ct_codecs::{Base64UrlSafeNoPadding as B64, Encoder};
    let app = app_with_known_key();
    app.register("alice", PASSWORD);
    let now = app.clock.now_secs();
    let claims = json!({"sub": "alice", "role": "user", "typ": "access", "iss": "secure-backend",
        "aud": "secure-backend", "iat": now, "nbf": now, "exp": now + 900});
    let payload = B64::encode_to_string(claims.to_string()).unwrap();
    // alg=none with no signature.
    let none = format!(
        "{}.{payload}.",
        B64::encode_to_string(r#"{"alg":"none","typ":"JWT"}"#).unwrap()
    );
    assert_error(
        &app.get("/auth/protected", Some(&none)),
        401,
        "invalid_token",
    );
    // HS512 with the very same secret.
    let hs512 = HS512Key::from_bytes(SECRET.as_bytes());
    let mut c = Claims::with_custom_claims(
        Custom {
            role: "user".into(),
            typ: "access".into(),
            aid: account_id(&app, "alice"),
            sid: Some(1),
        },
        Duration::from_secs(900),
    )
    .with_subject("alice")
    .with_issuer("secure-backend")
    .with_audience("secure-backend");
    c.issued_at = Some(Duration::from_secs(now));
    c.expires_at = Some(Duration::from_secs(now + 900));
    c.invalid_before = Some(Duration::from_secs(now));
    let token = hs512.authenticate(c).unwrap();
    assert_error(
        &app.get("/auth/protected", Some(&token)),
        401,
        "invalid_token",
    );
}

#[test]
fn issuer_audience_and_expiry_are_required() {
    let app = app_with_known_key();
    app.register("alice", PASSWORD);
    let cases = [
        forge(&app, |c| c.issuer = Some("someone-else".into())),
        forge(&app, |c| c.issuer = None),
        forge(&app, |c| {
            c.audiences = Some(Audiences::AsString("other-service".into()))
        }),
        forge(&app, |c| c.audiences = None),
        forge(&app, |c| {
            c.audiences = Some(Audiences::AsSet(HashSet::from(["other-service".into()])))
        }),
        forge(&app, |c| c.expires_at = None),
        forge(&app, |c| c.issued_at = None),
        forge(&app, |c| c.invalid_before = None),
        forge(&app, |c| c.custom.typ = "refresh".into()),
        forge(&app, |c| c.subject = None),
        forge(&app, |c| c.subject = Some("../etc".into())),
    ];
    for token in cases {
        assert_error(
            &app.get("/auth/protected", Some(&token)),
            401,
            "invalid_token",
        );
    }
}

#[test]
fn tokens_from_the_future_are_rejected() {
    let app = app_with_known_key();
    app.register("alice", PASSWORD);
    let future = Duration::from_millis(app.clock.now_ms()) + Duration::from_secs(60);
    let token = forge(&app, |c| {
        c.issued_at = Some(future);
        c.invalid_before = Some(future);
    });
    assert_error(
        &app.get("/auth/protected", Some(&token)),
        401,
        "invalid_token",
    );
}

#[test]
fn a_token_signed_with_another_key_is_rejected() {
    let app = TestApp::with_vars(&[("jwt_secret", "ANOTHER-KEY-ANOTHER-KEY-ANOTHER-KEY")]);
    app.register("alice", PASSWORD);
    let other = app_with_known_key();
    let foreign = forge(&other, |_| {});
    assert_error(
        &app.get("/auth/protected", Some(&foreign)),
        401,
        "invalid_token",
    );
}

#[test]
fn a_deleted_user_token_stops_working_at_once() {
    let app = TestApp::new();
    let token = app.user_token("alice");
    app.store
        .delete(&User::key(&Username::parse("alice").unwrap()))
        .unwrap();
    assert_error(
        &app.get("/auth/protected", Some(&token)),
        401,
        "invalid_token",
    );
}

#[test]
fn the_stored_role_decides_not_the_token() {
    let app = TestApp::new();
    let token = app.admin_token("root");
    assert_eq!(app.get("/admin/dashboard", Some(&token)).status, 200);
    app.edit_user("root", |u| u.role = Role::User);
    assert_error(&app.get("/admin/dashboard", Some(&token)), 403, "forbidden");
    let res = app.get("/auth/protected", Some(&token));
    assert_eq!(res.body["user"]["role"], "user");

    // And a forged "admin" claim for a plain user grants nothing.
    let app = app_with_known_key();
    app.register("alice", PASSWORD);
    let token = forge(&app, |c| c.custom.role = "admin".into());
    assert_error(&app.get("/admin/dashboard", Some(&token)), 403, "forbidden");
}

/// An audience list that names this service is as good as the one name.
#[test]
fn an_audience_set_naming_this_service_is_accepted() {
    let app = app_with_known_key();
    app.register("alice", PASSWORD);
    let token = forge(&app, |c| {
        c.audiences = Some(Audiences::AsSet(HashSet::from([
            "other-service".into(),
            "secure-backend".into(),
        ])))
    });
    assert_eq!(app.get("/auth/protected", Some(&token)).status, 200);
}

/// A token is checked before any store read: a forged one costs none.
#[test]
fn a_forged_token_costs_no_store_read_beyond_the_key() {
    let app = TestApp::new();
    let forged = format!("{}x", app.user_token("alice"));
    let calls = app.store_calls(|| {
        assert_error(
            &app.get("/auth/protected", Some(&forged)),
            401,
            "invalid_token",
        );
    });
    assert_eq!(calls, 1, "only the signing key is read");
    // Its audit line names the user the token claims, unverified.
    let line = app.events_named("token_rejected").pop().unwrap();
    assert_eq!(line["username"], "alice");
    // Garbage costs nothing at all: no key is read, or created on a fresh store.
    let fresh = TestApp::new();
    let calls = fresh.store_calls(|| {
        assert_error(
            &fresh.get("/auth/protected", Some("garbage")),
            401,
            "invalid_token",
        );
    });
    assert_eq!(calls, 0);
}

#[test]
fn a_token_of_an_ended_session_is_refused() {
    let app = TestApp::new();
    let token = app.user_token("alice");
    // Another session ending changes nothing for this one.
    app.edit_user("alice", |u| u.end_session(2));
    assert_eq!(app.get("/auth/protected", Some(&token)).status, 200);
    app.edit_user("alice", |u| u.end_session(1));
    assert_error(
        &app.get("/auth/protected", Some(&token)),
        401,
        "invalid_token",
    );
    assert_eq!(
        app.events_named("token_rejected").pop().unwrap()["reason"],
        "session ended"
    );
}

#[test]
fn a_token_naming_no_session_is_refused() {
    let app = app_with_known_key();
    app.register("alice", PASSWORD);
    let sessionless = forge(&app, |c| c.custom.sid = None);
    assert_error(
        &app.get("/auth/protected", Some(&sessionless)),
        401,
        "invalid_token",
    );
}

#[test]
fn the_generated_key_is_kept_in_the_store_and_survives_a_restart() {
    let app = TestApp::new();
    let token = app.user_token("alice");
    // A "restart": new instance state, same store contents.
    let restarted = TestApp::new();
    for key in app.store.keys() {
        restarted
            .store
            .set(&key, &app.store.get(&key).unwrap().unwrap())
            .unwrap();
    }
    assert_eq!(restarted.get("/auth/protected", Some(&token)).status, 200);
    // A different store means a different key.
    let elsewhere = TestApp::new();
    elsewhere.register("alice", PASSWORD);
    assert_error(
        &elsewhere.get("/auth/protected", Some(&token)),
        401,
        "invalid_token",
    );
}

#[test]
fn a_short_jwt_secret_fails_closed() {
    let app = TestApp::with_vars(&[("jwt_secret", "short-secret")]);
    let res = app.register("alice", PASSWORD);
    assert_error(&res, 500, "internal_error");
    assert!(!String::from_utf8_lossy(&res.raw).contains("short-secret"));
    let logged = app.events_named("config_error");
    assert_eq!(logged.len(), 1);
    assert!(logged[0]["reason"].as_str().unwrap().contains("jwt_secret"));
    assert!(!app.audit.lines().concat().contains("short-secret"));
    assert_eq!(app.get("/health", None).status, 500);
    assert!(MemoryStore::is_empty(&app.store));
}

#[test]
fn a_token_is_valid_only_for_the_account_it_was_issued_to() {
    let app = app_with_known_key();
    app.register("alice", PASSWORD);
    for forged in [
        forge(&app, |c| c.custom.aid = None),
        forge(&app, |c| c.custom.aid = Some("another account".into())),
    ] {
        assert_error(
            &app.get("/auth/protected", Some(&forged)),
            401,
            "invalid_token",
        );
    }
    let rejected = app.events_named("token_rejected");
    assert_eq!(rejected.len(), 2);
    assert!(rejected
        .iter()
        .all(|e| e["reason"] == "issued to another account"));
    // Every registration is a new account, with an id of its own.
    app.register("bob", PASSWORD);
    assert_ne!(account_id(&app, "alice"), account_id(&app, "bob"));
}

#[test]
fn accounts_registered_before_account_ids_keep_working() {
    // A record written before accounts had ids, and a token issued for it.
    let app = app_with_known_key();
    app.register("alice", PASSWORD);
    app.edit_user("alice", |u| u.account_id = None);
    let stored = app
        .store
        .get(&User::key(&Username::parse("alice").unwrap()))
        .unwrap()
        .unwrap();
    assert!(!String::from_utf8(stored).unwrap().contains("account_id"));
    let old = forge(&app, |c| c.custom.role = "user".into());
    assert_eq!(app.get("/auth/protected", Some(&old)).status, 200);
    // It still logs in, and its new tokens carry no id either.
    let token = app.login("alice", PASSWORD).token();
    assert_eq!(app.get("/auth/protected", Some(&token)).status, 200);
    // A token naming an account it does not have is refused.
    let other = forge(&app, |c| c.custom.aid = Some("0".repeat(32)));
    assert_error(
        &app.get("/auth/protected", Some(&other)),
        401,
        "invalid_token",
    );
}
