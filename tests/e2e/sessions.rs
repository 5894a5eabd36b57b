//! Sessions over HTTP (issue 9): refresh-token rotation and reuse
//! detection, logout, a password change and the admin's unlock and delete
//! ending sessions, and refresh races on one instance and across two.

use super::common::{assert_audit_fields, in_parallel};
use super::harness::{assert_error, Client, Reply, Server, Target};
use super::{start, two_instances, BOOTSTRAP, PASSWORD};
use reqwest::Method;
use serde_json::{json, Value};

const NEW_PASSWORD: &str = "a brand new passphrase 42";

/// The two tokens of a login or a refresh.
struct Pair {
    access: String,
    refresh: String,
}

/// Checks the exact shape of a login or refresh answer and takes its tokens.
fn token_pair(res: &Reply) -> Pair {
    assert_eq!(res.status, 200, "{}", res.body);
    let body = res.body.as_object().expect("a JSON object");
    let mut keys: Vec<&str> = body.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "access_token",
            "expires_in",
            "refresh_expires_in",
            "refresh_token",
            "token_type"
        ],
        "{}",
        res.body
    );
    assert_eq!(res.body["token_type"], "Bearer");
    assert_eq!(res.body["expires_in"], 900);
    let refresh_expires_in = res.body["refresh_expires_in"].as_u64().expect("a number");
    assert!(
        (604_700..=604_800).contains(&refresh_expires_in),
        "{}",
        res.body
    );
    let text = |field: &str| {
        let value = res.body[field].as_str().expect("a string");
        assert!(!value.is_empty(), "{}", res.body);
        value.to_owned()
    };
    Pair {
        access: text("access_token"),
        refresh: text("refresh_token"),
    }
}

fn login_pair(c: &Client, username: &str, password: &str) -> Pair {
    token_pair(&c.login(username, password))
}

fn refresh(c: &Client, refresh_token: &str) -> Reply {
    c.post_json("/auth/refresh", &json!({ "refresh_token": refresh_token }))
}

fn protected(c: &Client, access: &str) -> Reply {
    c.get_with_token("/auth/protected", access)
}

/// A session's access token and refresh token are both refused.
fn assert_session_ended(c: &Client, pair: &Pair) {
    assert_error(&protected(c, &pair.access), 401, "invalid_token");
    assert_error(&refresh(c, &pair.refresh), 401, "invalid_token");
}

/// A request with any method, from `127.0.0.1` (the harness's client builds
/// only GET and POST).
fn request(server: &Server, method: Method, path: &str) -> reqwest::blocking::RequestBuilder {
    reqwest::blocking::Client::new().request(method, format!("{}{path}", server.base))
}

/// 204 with nothing in the body.
fn assert_no_content(res: &Reply) {
    assert_eq!(res.status, 204, "{}", String::from_utf8_lossy(&res.raw));
    assert!(res.raw.is_empty(), "{}", String::from_utf8_lossy(&res.raw));
}

fn logout(c: &Client, access: &str) -> Reply {
    c.send(c.post("/auth/logout").bearer_auth(access))
}

/// Registers an admin with the bootstrap token and logs it in (from
/// `127.0.0.2`, so the case's own logins keep their rate limit).
fn admin_token(server: &Server) -> String {
    let c = server.client_from(2);
    let reg = c.send(
        c.post("/auth/register")
            .header("content-type", "application/json")
            .header("x-bootstrap-token", BOOTSTRAP)
            .body(json!({"username": "root", "password": PASSWORD, "role": "admin"}).to_string()),
    );
    assert_eq!(reg.status, 201, "{}", reg.body);
    login_pair(&c, "root", PASSWORD).access
}

fn events_named(server: &Server, name: &str) -> Vec<Value> {
    server
        .audit()
        .into_iter()
        .filter(|e| e["event"] == name)
        .collect()
}

/// An RFC 3339 UTC timestamp with milliseconds: `2026-11-27T00:00:00.000Z`.
fn assert_timestamp(value: &Value) {
    let text = value.as_str().unwrap_or_else(|| panic!("{value}"));
    let shape: String = text
        .chars()
        .map(|c| if c.is_ascii_digit() { '9' } else { c })
        .collect();
    assert_eq!(shape, "9999-99-99T99:99:99.999Z", "{text}");
}

/// Login, refresh, the old refresh token again (reuse: the whole family is
/// revoked), a fresh login, logout; `/auth/me`; 405 on the new paths; and
/// an audit log naming the reuse without a token or password in it.
pub fn refresh_reuse_revokes_the_family_and_logout_ends_the_session(t: Target) {
    let (_state, server) = start(t, &[]);
    let c = server.client();
    assert_eq!(c.register("alice", PASSWORD).status, 201);

    let first = login_pair(&c, "alice", PASSWORD);
    let me = c.get_with_token("/auth/me", &first.access);
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(me.body.as_object().map(|o| o.len()), Some(4), "{}", me.body);
    assert_eq!(
        (
            me.body["username"].clone(),
            me.body["role"].clone(),
            me.body["mfa_enabled"].clone()
        ),
        (json!("alice"), json!("user"), json!(false))
    );
    assert_timestamp(&me.body["created_at"]);

    // Rotation: a new pair, both tokens new, the new access token good.
    let second = token_pair(&refresh(&c, &first.refresh));
    assert_ne!(second.refresh, first.refresh);
    assert_ne!(second.access, first.access);
    assert_eq!(protected(&c, &second.access).status, 200);

    // The spent token again: reuse. The family is revoked, so the newest
    // tokens of the session are refused too.
    assert_error(&refresh(&c, &first.refresh), 401, "invalid_token");
    assert_session_ended(&c, &second);
    assert_error(&protected(&c, &first.access), 401, "invalid_token");

    // A fresh login is a new session, untouched by the revocation.
    let third = login_pair(&c, "alice", PASSWORD);
    assert_eq!(protected(&c, &third.access).status, 200);
    assert_no_content(&logout(&c, &third.access));
    assert_session_ended(&c, &third);
    assert_error(&logout(&c, &third.access), 401, "invalid_token");

    // The new paths say which methods they take.
    for (method, path, allow) in [
        (Method::GET, "/auth/refresh", "POST"),
        (Method::GET, "/auth/logout", "POST"),
        (Method::POST, "/auth/me", "GET"),
        (Method::GET, "/auth/password", "POST"),
        (Method::PUT, "/admin/users/alice", "GET, DELETE"),
        (Method::GET, "/admin/users/alice/unlock", "POST"),
        (Method::GET, "/admin/users/alice/sessions/revoke", "POST"),
        (Method::POST, "/admin/users/alice/role", "PUT"),
    ] {
        let res = c.send(request(&server, method.clone(), path));
        assert_error(&res, 405, "method_not_allowed");
        assert_eq!(res.header("allow"), allow, "{method} {path}");
    }

    let reuse = events_named(&server, "refresh_token_reuse");
    assert_eq!(reuse.len(), 1, "{reuse:?}");
    assert_audit_fields(&reuse[0]);
    assert_eq!(reuse[0]["username"], "alice", "{}", reuse[0]);
    assert_eq!(reuse[0]["outcome"], "denied", "{}", reuse[0]);
    let logouts = events_named(&server, "logout");
    assert_eq!(logouts.len(), 1, "{logouts:?}");
    assert_eq!(logouts[0]["username"], "alice");
    let log = server.stdout_lines().concat();
    for secret in [
        PASSWORD,
        &first.access,
        &first.refresh,
        &second.access,
        &second.refresh,
        &third.access,
        &third.refresh,
    ] {
        assert!(!log.contains(secret), "{secret} in the audit log");
    }
}

/// A password change (with session A's token) ends every session of the
/// account: B's tokens are refused on the next request, and only the new
/// password logs in.
pub fn a_password_change_ends_other_sessions(t: Target) {
    let (_state, server) = start(t, &[]);
    assert_eq!(server.client().register("bob", PASSWORD).status, 201);
    let (a, b) = (server.client_from(11), server.client_from(12));
    let session_a = login_pair(&a, "bob", PASSWORD);
    let session_b = login_pair(&b, "bob", PASSWORD);
    assert_eq!(protected(&b, &session_b.access).status, 200);

    let change = |current: &str| {
        a.send(
            a.post("/auth/password")
                .header("content-type", "application/json")
                .bearer_auth(&session_a.access)
                .body(
                    json!({"current_password": current, "new_password": NEW_PASSWORD}).to_string(),
                ),
        )
    };
    assert_error(&change("wrong password"), 401, "invalid_credentials");
    assert_no_content(&change(PASSWORD));

    assert_session_ended(&b, &session_b);
    // This session included, as documented.
    assert_session_ended(&a, &session_a);
    assert_error(
        &server.client_from(13).login("bob", PASSWORD),
        401,
        "invalid_credentials",
    );
    let c = server.client_from(14);
    let fresh = login_pair(&c, "bob", NEW_PASSWORD);
    assert_eq!(protected(&c, &fresh.access).status, 200);
    token_pair(&refresh(&c, &fresh.refresh));

    let changed = events_named(&server, "password_changed");
    assert_eq!(changed.len(), 1, "{changed:?}");
    assert_eq!(changed[0]["username"], "bob");
    let log = server.stdout_lines().concat();
    for secret in [PASSWORD, NEW_PASSWORD, "wrong password"] {
        assert!(!log.contains(secret), "{secret} in the audit log");
    }
}

/// Five wrong passwords lock the account (423 for the right one); an admin
/// unlocks it (204) and the right password logs in again.
pub fn an_admin_unlocks_a_locked_user(t: Target) {
    let (_state, server) = start(t, &[("admin_bootstrap_token", BOOTSTRAP)]);
    let admin = admin_token(&server);
    let c = server.client();
    assert_eq!(c.register("carol", PASSWORD).status, 201);
    for i in 0..5 {
        let res = server.client_from(20 + i).login("carol", "wrong password");
        assert_error(&res, 401, "invalid_credentials");
    }
    assert_error(
        &server.client_from(30).login("carol", PASSWORD),
        423,
        "account_locked",
    );

    let unlock = |name: &str, token: &str| {
        c.send(
            c.post(&format!("/admin/users/{name}/unlock"))
                .bearer_auth(token),
        )
    };
    assert_error(&unlock("nobody", &admin), 404, "user_not_found");
    assert_error(&unlock("carol", "not.a.token"), 401, "invalid_token");
    assert_no_content(&unlock("carol", &admin));

    let carol = login_pair(&server.client_from(31), "carol", PASSWORD);
    // A user is no admin: it cannot unlock anyone.
    assert_error(&unlock("carol", &carol.access), 403, "forbidden");

    let unlocked = events_named(&server, "user_unlocked");
    assert_eq!(unlocked.len(), 1, "{unlocked:?}");
    assert_eq!(
        (
            unlocked[0]["username"].clone(),
            unlocked[0]["target"].clone()
        ),
        (json!("root"), json!("carol")),
        "{}",
        unlocked[0]
    );
}

/// A deleted user's tokens are refused at once, and the name is free again;
/// the old tokens do not work for the new account of that name.
pub fn a_deleted_user_is_signed_out_and_the_name_is_free(t: Target) {
    let (_state, server) = start(t, &[("admin_bootstrap_token", BOOTSTRAP)]);
    let admin = admin_token(&server);
    let c = server.client();
    assert_eq!(c.register("dave", PASSWORD).status, 201);
    let dave = login_pair(&c, "dave", PASSWORD);
    assert_eq!(protected(&c, &dave.access).status, 200);

    let delete = |name: &str| {
        c.send(
            request(&server, Method::DELETE, &format!("/admin/users/{name}")).bearer_auth(&admin),
        )
    };
    assert_no_content(&delete("dave"));
    assert_error(&delete("dave"), 404, "user_not_found");
    assert_session_ended(&c, &dave);
    assert_error(&c.login("dave", PASSWORD), 401, "invalid_credentials");

    let again = c.register("dave", NEW_PASSWORD);
    assert_eq!(again.status, 201, "{}", again.body);
    // The old tokens name the old account, not this one.
    assert_session_ended(&c, &dave);
    let fresh = login_pair(&server.client_from(5), "dave", NEW_PASSWORD);
    assert_eq!(protected(&c, &fresh.access).status, 200);

    let deleted = events_named(&server, "user_deleted");
    assert_eq!(deleted.len(), 1, "{deleted:?}");
    assert_eq!(
        (deleted[0]["username"].clone(), deleted[0]["target"].clone()),
        (json!("root"), json!("dave"))
    );
}

/// One refresh token presented by `n` requests at once, request `i` sent to
/// server `i % servers.len()`: exactly one rotates it, every other is reuse,
/// which ends the session (the winner's new tokens with it). Found by CI on
/// a loaded machine: 8 of 19 reuses answered 503 `account_busy`, queued for
/// the lease to end a session an earlier one had ended; a reuse that finds
/// the session ended no longer queues.
fn parallel_refreshes_of_one_token(servers: &[&Server], n: usize) {
    let c = servers[0].client();
    assert_eq!(c.register("erin", PASSWORD).status, 201);
    let session = login_pair(&c, "erin", PASSWORD);
    let replies = in_parallel(n, |i| {
        refresh(
            &servers[i % servers.len()].client_from(100 + i as u8),
            &session.refresh,
        )
    });
    let statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    // Every other presentation is reuse: 401, or, when it found the
    // session still alive and could not take the account's lease in time
    // (the presentations ahead of it ending the same session on a loaded
    // machine), 503 `account_busy`, whose retry gets the 401. Either way
    // the session ends (below).
    assert!(
        statuses.contains(&401),
        "no presentation ended the session: {statuses:?}"
    );
    for reply in replies.iter().filter(|r| r.status != 200) {
        match reply.status {
            503 => assert_error(reply, 503, "account_busy"),
            _ => assert_error(reply, 401, "invalid_token"),
        }
    }
    let winner = token_pair(replies.iter().find(|r| r.status == 200).unwrap());
    for server in servers {
        let c = server.client();
        assert_session_ended(&c, &winner);
        assert_session_ended(&c, &session);
    }
    let reuses: usize = servers
        .iter()
        .map(|s| {
            events_named(s, "refresh_token_reuse")
                .iter()
                .filter(|e| e["username"] == "erin")
                .count()
        })
        .sum();
    assert!(reuses >= 1, "no refresh_token_reuse event");
    // The account itself is fine: a new login starts a new session.
    let fresh = login_pair(&servers[0].client_from(3), "erin", PASSWORD);
    for server in servers {
        assert_eq!(protected(&server.client(), &fresh.access).status, 200);
    }
}

pub fn twenty_parallel_refreshes_of_one_token_give_one_200(t: Target) {
    let (_state, server) = start(t, &[]);
    parallel_refreshes_of_one_token(&[&server], 20);
}

/// Two instances on one store: a logout on B is seen by A on the very next
/// request, and 20 parallel refreshes of one token spread over both give
/// one 200.
pub fn two_instances_share_logout_and_refresh_rotation(t: Target) {
    let (_state, a, b) = two_instances(t, &[]);
    let (on_a, on_b) = (a.client(), b.client());
    assert_eq!(on_a.register("frank", PASSWORD).status, 201);
    let session = login_pair(&on_a, "frank", PASSWORD);
    assert_eq!(protected(&on_a, &session.access).status, 200);
    assert_eq!(protected(&on_b, &session.access).status, 200);
    assert_no_content(&logout(&on_b, &session.access));
    assert_error(&protected(&on_a, &session.access), 401, "invalid_token");
    assert_error(&refresh(&on_a, &session.refresh), 401, "invalid_token");
    assert_error(&protected(&on_b, &session.access), 401, "invalid_token");

    // A refresh on A, the spent token again on B: reuse across instances.
    let other = login_pair(&on_a, "frank", PASSWORD);
    let rotated = token_pair(&refresh(&on_a, &other.refresh));
    assert_error(&refresh(&on_b, &other.refresh), 401, "invalid_token");
    assert_session_ended(&on_a, &rotated);

    parallel_refreshes_of_one_token(&[&a, &b], 20);
}

/// Demoting, deleting and a password change made through one instance take
/// effect on the other at the very next request.
pub fn two_instances_see_demotion_deletion_and_password_change_at_once(t: Target) {
    let (_state, a, b) = two_instances(t, &[("admin_bootstrap_token", BOOTSTRAP)]);
    let admin = admin_token(&b);
    let (on_a, on_b) = (a.client(), b.client());
    let send = |method: Method, path: &str, body: Option<Value>| {
        let mut req = request(&b, method, path).bearer_auth(&admin);
        if let Some(body) = body {
            req = req
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        on_b.send(req)
    };

    // A second admin, demoted through B: refused as admin on A at once.
    let promoted = on_a.register("grace", PASSWORD);
    assert_eq!(promoted.status, 201);
    let role = send(
        Method::PUT,
        "/admin/users/grace/role",
        Some(json!({"role": "admin"})),
    );
    assert_eq!(role.status, 200, "{}", role.body);
    let grace = login_pair(&on_a, "grace", PASSWORD);
    assert_eq!(
        on_a.send(on_a.get("/admin/dashboard").bearer_auth(&grace.access))
            .status,
        200
    );
    let role = send(
        Method::PUT,
        "/admin/users/grace/role",
        Some(json!({"role": "user"})),
    );
    assert_eq!(role.status, 200, "{}", role.body);
    let dashboard = on_a.send(on_a.get("/admin/dashboard").bearer_auth(&grace.access));
    assert_error(&dashboard, 403, "forbidden");

    // Deleted through B: signed out on A.
    assert_eq!(on_a.register("henry", PASSWORD).status, 201);
    let henry = login_pair(&on_a, "henry", PASSWORD);
    assert_no_content(&send(Method::DELETE, "/admin/users/henry", None));
    assert_session_ended(&on_a, &henry);

    // A password changed through B ends the session used on A.
    assert_eq!(on_a.register("irene", PASSWORD).status, 201);
    let on_a_session = login_pair(&on_a, "irene", PASSWORD);
    let on_b_session = login_pair(&on_b, "irene", PASSWORD);
    let change = on_b.send(
        on_b.post("/auth/password")
            .bearer_auth(&on_b_session.access)
            .header("content-type", "application/json")
            .body(json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD}).to_string()),
    );
    assert_no_content(&change);
    assert_session_ended(&on_a, &on_a_session);
}
