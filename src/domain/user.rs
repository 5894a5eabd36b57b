use super::{Role, Username};
use serde::{Deserialize, Serialize};

/// A stored account. The record is JSON in the key-value store under
/// `user:<normalized username>`.
/// No `Debug`: it would print the hash.
#[derive(Clone, Serialize, Deserialize)]
pub struct User {
    pub username: String,
    pub role: Role,
    pub password_hash: String,
    /// Unix seconds.
    pub created_at: u64,
    /// Tokens issued before this Unix time (seconds) are refused. Room for
    /// logout and password change; 0 until those exist.
    #[serde(default)]
    pub tokens_valid_after: u64,
    /// Random, fixed at registration and carried in every token issued for
    /// the account (`aid`), so a token names one account, not a username
    /// that may be deleted and registered again. `None` only in records
    /// written before accounts had ids; their tokens carry none either.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
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
}
