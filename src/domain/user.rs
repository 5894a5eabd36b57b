use super::{Role, Username};
use serde::{Deserialize, Serialize};

/// Sessions an account keeps at once: session `n` lives in slot
/// `n % SESSION_SLOTS`, and a new login takes the slot of the session
/// `SESSION_SLOTS` logins older, ending its refresh token.
pub const SESSION_SLOTS: u64 = 10;

/// A stored account. The record is JSON in the key-value store under
/// `user:<normalized username>`. Changed only while holding its lease
/// (`security::lease`), never by a blind write.
/// No `Debug`: it would print the hash.
#[derive(Clone, Serialize, Deserialize)]
pub struct User {
    pub username: String,
    pub role: Role,
    pub password_hash: String,
    /// Unix seconds.
    pub created_at: u64,
    /// Random, set at registration and replaced at each password change,
    /// and carried in every token and session issued for the account
    /// (`aid`): a token names one account under one password, not a
    /// username that may be deleted and registered again, or whose password
    /// was changed because it leaked. `None` only in records written before
    /// accounts had ids, and until their first password change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    /// Sessions are numbered by login (`sessions:<name>` counts them).
    /// Sessions numbered below this have ended: logout everywhere, a
    /// password change, an admin's revoke.
    #[serde(default)]
    pub sessions_valid_from: u64,
    /// The one session below `sessions_valid_from` that still lives: the
    /// one that logged out all the others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept_session: Option<u64>,
    /// Sessions ended one by one (logout, refresh-token reuse): at most one
    /// number per slot, the highest, which also ends every older session of
    /// that slot. So this never holds more than [`SESSION_SLOTS`] numbers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ended_sessions: Vec<u64>,
    /// Where the account sits in the user index (`admin/users` pages), if
    /// it was registered after the index existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u64>,
    /// Two-factor login, once an enrolment is confirmed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mfa: Option<Mfa>,
    /// A TOTP secret handed out by enrolment and not confirmed yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mfa_pending: Option<PendingMfa>,
    /// Fields this build does not know (written by a later one), kept as
    /// they are whenever it rewrites the record: a rollback must not drop,
    /// say, a second factor a later build added.
    #[serde(flatten)]
    pub unknown: serde_json::Map<String, serde_json::Value>,
}

/// An account's TOTP second factor (`security::mfa`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mfa {
    /// The TOTP secret, sealed (`security::sealing`): a dump of the store
    /// alone does not yield it.
    pub secret: String,
    /// Unix seconds.
    pub enabled_at: u64,
    /// The highest TOTP time step accepted so far: a code is accepted only
    /// for a later step, so each code works once.
    pub last_step: u64,
    /// SHA-256 of each recovery code not used yet.
    pub recovery_codes: Vec<String>,
}

/// A TOTP secret awaiting its first code.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingMfa {
    /// Sealed, as [`Mfa::secret`].
    pub secret: String,
    /// Unix seconds.
    pub created_at: u64,
}

impl User {
    pub fn key(username: &Username) -> String {
        format!("user:{username}")
    }

    /// The user in a record read from the store, if there was one.
    pub fn from_record(record: Option<Vec<u8>>) -> anyhow::Result<Option<User>> {
        use anyhow::Context as _;
        record
            .map(|bytes| serde_json::from_slice(&bytes).context("decode user record"))
            .transpose()
    }

    pub fn to_record(&self) -> anyhow::Result<Vec<u8>> {
        use anyhow::Context as _;
        serde_json::to_vec(self).context("encode user record")
    }

    /// Whether session `number` of this account has not been ended.
    pub fn session_alive(&self, number: u64) -> bool {
        let slot = number % SESSION_SLOTS;
        let ended_one_by_one = self
            .ended_sessions
            .iter()
            .any(|&n| n % SESSION_SLOTS == slot && n >= number);
        (number >= self.sessions_valid_from || self.kept_session == Some(number))
            && !ended_one_by_one
    }

    /// Ends session `number` (and any older session in its slot).
    pub fn end_session(&mut self, number: u64) {
        let slot = number % SESSION_SLOTS;
        let mut highest = number;
        self.ended_sessions.retain(|&n| {
            let same_slot = n % SESSION_SLOTS == slot;
            if same_slot {
                highest = highest.max(n);
            }
            !same_slot
        });
        self.ended_sessions.push(highest);
        if self.kept_session.is_some_and(|k| !self.session_alive(k)) {
            self.kept_session = None;
        }
    }

    /// Ends every session numbered below `first_alive`, except `keep`.
    pub fn end_sessions_before(&mut self, first_alive: u64, keep: Option<u64>) {
        let keep = keep.filter(|&k| self.session_alive(k));
        self.sessions_valid_from = self.sessions_valid_from.max(first_alive);
        self.kept_session = keep.filter(|&k| k < self.sessions_valid_from);
        // Numbers below the cut say nothing more, except about the kept one.
        let (valid_from, kept) = (self.sessions_valid_from, self.kept_session);
        self.ended_sessions.retain(|&n| {
            n >= valid_from || kept.is_some_and(|k| k % SESSION_SLOTS == n % SESSION_SLOTS)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> User {
        User {
            username: "alice".into(),
            role: Role::User,
            password_hash: String::new(),
            created_at: 0,
            account_id: None,
            sessions_valid_from: 0,
            kept_session: None,
            ended_sessions: Vec::new(),
            index: None,
            mfa: None,
            mfa_pending: None,
            unknown: Default::default(),
        }
    }

    #[test]
    fn ending_one_session_ends_it_and_older_ones_of_its_slot_only() {
        let mut u = user();
        u.end_session(13);
        assert!(!u.session_alive(13));
        assert!(!u.session_alive(3), "older, same slot");
        assert!(u.session_alive(23), "newer, same slot");
        assert!(u.session_alive(12) && u.session_alive(14));
        u.end_session(3);
        assert!(!u.session_alive(13), "an older number does not revive it");
        for n in 0..1000 {
            u.end_session(n);
        }
        assert!(u.ended_sessions.len() <= SESSION_SLOTS as usize);
        assert!((0..1000).all(|n| !u.session_alive(n)));
        assert!(u.session_alive(1000));
    }

    #[test]
    fn ending_all_but_one() {
        let mut u = user();
        u.end_session(5);
        u.end_sessions_before(9, Some(7));
        assert!(u.session_alive(7) && u.session_alive(9));
        assert!(!u.session_alive(6) && !u.session_alive(8) && !u.session_alive(5));
        // The kept one can still be ended on its own.
        u.end_session(7);
        assert!(!u.session_alive(7));
        assert_eq!(u.kept_session, None);
        // A cut never moves back, and an ended session cannot be kept.
        u.end_sessions_before(4, Some(5));
        assert_eq!(u.sessions_valid_from, 9);
        assert!(!u.session_alive(5));
        u.end_sessions_before(12, None);
        assert!(u.ended_sessions.is_empty() && u.kept_session.is_none());
    }
}
