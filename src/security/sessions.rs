//! Sessions: each login starts one, a family of rotated refresh tokens
//! (RFC 6749 §6, rotated as RFC 9700 §4.14.2 describes, with no grace).
//!
//! Sessions are numbered per account by `increment` of `sessions:<name>`;
//! session `n` keeps its state in slot `n % SESSION_SLOTS`, so an account
//! never has more than [`SESSION_SLOTS`] family records, and a login evicts
//! the session that many logins older. A slot holds:
//! - `session:<name>:<slot>`: the family (its number, account, a hash of the
//!   family secret, the current token's sequence number and hash, expiries);
//! - `rotation:<name>:<slot>`: a counter. Token `seq` of a family may be
//!   spent by exactly one request: the one whose `increment` returns
//!   `seq + 1`. Every other presentation of it is reuse.
//!
//! A refresh token is opaque to clients: the session number, the sequence
//! number, the family secret (256 random bits, the same in every token of
//! the family), the token secret (256 random bits, new at each rotation)
//! and the username, base64url. The store keeps only SHA-256 hashes of the
//! two secrets, so a store dump cannot refresh anything. The family secret
//! tells a retired token of the family (reuse: revoke the family) from a
//! value made up by someone who never held one (invalid, nothing revoked).
//!
//! Whether a session has been ended (logout, password change, an admin) is
//! kept in the user record (`User::session_alive`), which every
//! authenticated request reads anyway; this module keeps the families.

use crate::config::SessionPolicy;
use crate::domain::{User, Username, SESSION_SLOTS};
use crate::security::{random_bytes, to_hex};
use crate::store::{decode_counter, KeyValue};
use anyhow::{Context as _, Result};
use ct_codecs::{Base64UrlSafeNoPadding, Decoder, Encoder};
use subtle::ConstantTimeEq;

/// Added to a slot's rotation counter to revoke its family: no sequence
/// number of the family ever matches again.
const POISON: i64 = 1 << 40;
const FIXED_BYTES: usize = 8 + 8 + 32 + 32;
/// Longer values are refused before decoding.
const MAX_TOKEN_CHARS: usize = 200;

/// A refresh token as presented (parsed, not yet checked).
pub struct RefreshToken {
    pub username: Username,
    pub number: u64,
    seq: u64,
    family: [u8; 32],
    secret: [u8; 32],
}

impl RefreshToken {
    pub fn parse(raw: &str) -> Option<Self> {
        if raw.len() > MAX_TOKEN_CHARS {
            return None;
        }
        let bytes = Base64UrlSafeNoPadding::decode_to_vec(raw, None).ok()?;
        if bytes.len() <= FIXED_BYTES {
            return None;
        }
        let (fixed, name) = bytes.split_at(FIXED_BYTES);
        let u64_at = |at: usize| u64::from_be_bytes(fixed[at..at + 8].try_into().unwrap_or([0; 8]));
        Some(Self {
            username: Username::parse(std::str::from_utf8(name).ok()?).ok()?,
            number: u64_at(0),
            seq: u64_at(8),
            family: fixed[16..48].try_into().ok()?,
            secret: fixed[48..80].try_into().ok()?,
        })
    }

    fn encode(&self) -> Result<String> {
        let mut bytes = Vec::with_capacity(FIXED_BYTES + self.username.as_str().len());
        bytes.extend_from_slice(&self.number.to_be_bytes());
        bytes.extend_from_slice(&self.seq.to_be_bytes());
        bytes.extend_from_slice(&self.family);
        bytes.extend_from_slice(&self.secret);
        bytes.extend_from_slice(self.username.as_str().as_bytes());
        Base64UrlSafeNoPadding::encode_to_string(bytes).context("encode refresh token")
    }
}

/// The stored state of one session, kept as one line of text
/// (`v1:number:seq:started:ends:token_ends:family:current:account`) rather
/// than JSON: a serde decoder per record type costs component size.
pub struct Family {
    pub number: u64,
    pub account_id: Option<String>,
    /// SHA-256 of the family secret, hex.
    family: String,
    seq: u64,
    /// SHA-256 of the current token's secret, hex.
    current: String,
    pub started_ms: u64,
    /// The session ends then, however often it is refreshed.
    pub ends_ms: u64,
    /// The current refresh token expires then.
    token_ends_ms: u64,
}

impl Family {
    /// Whether `token` is one of this family's (the same session, and the
    /// family secret checks out).
    fn holds(&self, token: &RefreshToken) -> bool {
        self.number == token.number && same(&self.family, &digest(&token.family))
    }

    fn encode(&self) -> Vec<u8> {
        format!(
            "v1:{}:{}:{}:{}:{}:{}:{}:{}",
            self.number,
            self.seq,
            self.started_ms,
            self.ends_ms,
            self.token_ends_ms,
            self.family,
            self.current,
            self.account_id.as_deref().unwrap_or("-"),
        )
        .into_bytes()
    }

    fn decode(raw: &[u8]) -> Result<Self> {
        let text = std::str::from_utf8(raw).context("session record is not text")?;
        let fields: Vec<&str> = text.split(':').collect();
        let [version, number, seq, started, ends, token_ends, family, current, account] =
            fields[..]
        else {
            anyhow::bail!("session record has the wrong shape");
        };
        let number_at = |s: &str| s.parse::<u64>().context("session record number");
        anyhow::ensure!(version == "v1", "unknown session record version");
        Ok(Self {
            number: number_at(number)?,
            seq: number_at(seq)?,
            started_ms: number_at(started)?,
            ends_ms: number_at(ends)?,
            token_ends_ms: number_at(token_ends)?,
            family: family.to_owned(),
            current: current.to_owned(),
            account_id: (account != "-").then(|| account.to_owned()),
        })
    }
}

/// A new refresh token, to hand to the client.
pub struct Issued {
    pub token: String,
    /// The session's number (the access token's `sid`).
    pub number: u64,
    /// Seconds until this refresh token expires.
    pub expires_in: u64,
}

/// What a presented refresh token turned out to be.
pub enum Presented {
    /// The family's current, unexpired token; it may be spent once.
    Current(Family),
    /// A token of this family that was already spent, or forged from one;
    /// the family was started by this account.
    Reused { account_id: Option<String> },
    /// Anything else; the reason goes to the audit log only.
    Invalid(&'static str),
}

fn family_key(username: &Username, slot: u64) -> String {
    format!("session:{username}:{slot}")
}

fn rotation_key(username: &Username, slot: u64) -> String {
    format!("rotation:{username}:{slot}")
}

fn counter_key(username: &Username) -> String {
    format!("sessions:{username}")
}

fn digest(bytes: &[u8]) -> String {
    to_hex(&hmac_sha256::Hash::hash(bytes))
}

fn same(a: &str, b: &str) -> bool {
    bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// The number the next session of `username` will be above: every session
/// started so far has a number at most this (one `get`).
pub fn latest_number(store: &dyn KeyValue, username: &Username) -> Result<u64> {
    let raw = store.get(&counter_key(username))?;
    Ok(raw.as_deref().and_then(decode_counter).unwrap_or(0).max(0) as u64)
}

/// Starts a session for `user` (three store calls).
pub fn start(
    store: &dyn KeyValue,
    username: &Username,
    user: &User,
    policy: SessionPolicy,
    now_ms: u64,
) -> Result<Issued> {
    let number = store.increment(&counter_key(username), 1)? as u64;
    let slot = number % SESSION_SLOTS;
    // Moving the slot's counter also spends whatever the evicted family held.
    let seq = store.increment(&rotation_key(username, slot), 1)? as u64;
    let family_secret = random_bytes::<32>()?;
    let ends_ms = now_ms + policy.session_secs * 1000;
    let family = Family {
        number,
        account_id: user.account_id.clone(),
        family: digest(&family_secret),
        seq,
        current: String::new(),
        started_ms: now_ms,
        ends_ms,
        token_ends_ms: 0,
    };
    write_next(store, username, family, family_secret, seq, policy, now_ms)
}

/// Looks up the family of `token` (one `get`) and says what the token is.
pub fn present(store: &dyn KeyValue, token: &RefreshToken, now_ms: u64) -> Result<Presented> {
    let slot = token.number % SESSION_SLOTS;
    let Some(raw) = store.get(&family_key(&token.username, slot))? else {
        return Ok(Presented::Invalid("no such session"));
    };
    let family = Family::decode(&raw)?;
    if !family.holds(token) {
        return Ok(Presented::Invalid("no such session"));
    }
    if now_ms >= family.ends_ms {
        return Ok(Presented::Invalid("session expired"));
    }
    if token.seq != family.seq || !same(&family.current, &digest(&token.secret)) {
        return Ok(Presented::Reused {
            account_id: family.account_id,
        });
    }
    if now_ms >= family.token_ends_ms {
        return Ok(Presented::Invalid("refresh token expired"));
    }
    Ok(Presented::Current(family))
}

/// Spends `token`, the current token of `family`, and writes its successor
/// (two store calls). `None`: another request spent it first, so this one
/// is reuse.
pub fn rotate(
    store: &dyn KeyValue,
    token: &RefreshToken,
    family: Family,
    policy: SessionPolicy,
    now_ms: u64,
) -> Result<Option<Issued>> {
    let slot = token.number % SESSION_SLOTS;
    let spent = store.increment(&rotation_key(&token.username, slot), 1)?;
    let next = token.seq + 1;
    if spent != next as i64 {
        return Ok(None);
    }
    write_next(
        store,
        &token.username,
        family,
        token.family,
        next,
        policy,
        now_ms,
    )
    .map(Some)
}

fn write_next(
    store: &dyn KeyValue,
    username: &Username,
    mut family: Family,
    family_secret: [u8; 32],
    seq: u64,
    policy: SessionPolicy,
    now_ms: u64,
) -> Result<Issued> {
    let secret = random_bytes::<32>()?;
    family.seq = seq;
    family.current = digest(&secret);
    family.token_ends_ms = (now_ms + policy.refresh_secs * 1000).min(family.ends_ms);
    let expires_in = (family.token_ends_ms - now_ms) / 1000;
    let number = family.number;
    store.set(
        &family_key(username, number % SESSION_SLOTS),
        &family.encode(),
    )?;
    let token = RefreshToken {
        username: username.clone(),
        number,
        seq,
        family: family_secret,
        secret,
    };
    Ok(Issued {
        token: token.encode()?,
        number,
        expires_in,
    })
}

/// The family `token` belongs to, if its slot still holds it and it was
/// started by `account` (one `get`): proof that the token was issued here,
/// whatever became of it since.
pub fn family_of(
    store: &dyn KeyValue,
    token: &RefreshToken,
    account: &Option<String>,
) -> Result<Option<Family>> {
    let slot = token.number % SESSION_SLOTS;
    let Some(raw) = store.get(&family_key(&token.username, slot))? else {
        return Ok(None);
    };
    let family = Family::decode(&raw)?;
    Ok((family.holds(token) && family.account_id == *account).then_some(family))
}

/// Revokes the family of session `number`, if its slot still holds it
/// (three store calls): nothing of it can be refreshed again, even a
/// rotation already under way. A slot taken over by a newer session is
/// left alone. Ending its access tokens is the user record's part
/// (`User::end_session`).
pub fn revoke(store: &dyn KeyValue, username: &Username, number: u64) -> Result<()> {
    let slot = number % SESSION_SLOTS;
    let key = family_key(username, slot);
    let Some(raw) = store.get(&key)? else {
        return Ok(());
    };
    if Family::decode(&raw).is_ok_and(|f| f.number == number) {
        store.increment(&rotation_key(username, slot), POISON)?;
        store.delete(&key)?;
    }
    Ok(())
}

/// Sessions of `username` whose family is still stored, started by this
/// account and not expired: one `get` per slot, for the admin view.
pub fn count_live(
    store: &dyn KeyValue,
    username: &Username,
    user: &User,
    now_ms: u64,
) -> Result<u64> {
    let mut live = 0;
    for slot in 0..SESSION_SLOTS {
        let Some(raw) = store.get(&family_key(username, slot))? else {
            continue;
        };
        let Ok(family) = Family::decode(&raw) else {
            continue;
        };
        if family.account_id == user.account_id
            && now_ms < family.ends_ms
            && now_ms < family.token_ends_ms
            && user.session_alive(family.number)
        {
            live += 1;
        }
    }
    Ok(live)
}

/// Deletes the session records of `username` (for a deleted account). The
/// counters stay (eleven per name): deleting them while the record might
/// survive a failure would let session numbers repeat, and a name
/// registered again simply counts on from them.
pub fn forget_all(store: &dyn KeyValue, username: &Username) -> Result<()> {
    for slot in 0..SESSION_SLOTS {
        store.delete(&family_key(username, slot))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_family_record_round_trips_and_garbage_does_not_decode() {
        for account_id in [Some("ab".repeat(16)), None] {
            let family = Family {
                number: 3,
                account_id,
                family: "f".repeat(64),
                seq: 4,
                current: "c".repeat(64),
                started_ms: 5,
                ends_ms: 6,
                token_ends_ms: 7,
            };
            let back = Family::decode(&family.encode()).unwrap();
            assert_eq!(back.encode(), family.encode());
            assert_eq!(back.account_id, family.account_id);
        }
        for bad in [
            &b""[..],
            b"v1:1:2",
            b"v2:1:2:3:4:5:f:c:-",
            b"v1:x:2:3:4:5:f:c:-",
            b"\xff",
        ] {
            assert!(Family::decode(bad).is_err());
        }
    }

    #[test]
    fn a_token_round_trips_and_garbage_does_not_parse() {
        let token = RefreshToken {
            username: Username::parse("alice").unwrap(),
            number: 7,
            seq: 9,
            family: [1; 32],
            secret: [2; 32],
        };
        let raw = token.encode().unwrap();
        assert!(!raw.contains('.'), "never shaped like a JWT: {raw}");
        let back = RefreshToken::parse(&raw).unwrap();
        assert_eq!(
            (
                back.username.as_str(),
                back.number,
                back.seq,
                back.family,
                back.secret
            ),
            ("alice", 7, 9, [1; 32], [2; 32])
        );
        for bad in ["", "abc", &raw[..raw.len() - 8], &"A".repeat(300), "a.b.c"] {
            assert!(RefreshToken::parse(bad).is_none(), "{bad}");
        }
    }
}
