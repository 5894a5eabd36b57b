//! The list of accounts behind `GET /admin/users`, kept with increments and
//! single reads, never by enumerating the store's keys.
//!
//! Registration appends: `increment("users:count")` gives the account a
//! position no other registration gets, and `users:<position>` names it.
//! Positions only grow, so pages in position order stay stable while
//! accounts come and go. A deleted account's entry is deleted with it; an
//! entry whose record is gone, or whose record sits at another position
//! (the name was registered again), is skipped, so an entry left by a
//! registration or deletion that died midway never shows a wrong account.

use crate::domain::Username;
use crate::store::{decode_counter, KeyValue};
use anyhow::Result;

const COUNT: &str = "users:count";

fn entry_key(position: u64) -> String {
    format!("users:{position}")
}

/// Gives `username` the next position (two store calls).
pub fn append(store: &dyn KeyValue, username: &Username) -> Result<u64> {
    let position = store.increment(COUNT, 1)?.max(1) as u64;
    store.set(&entry_key(position), username.as_str().as_bytes())?;
    Ok(position)
}

/// The highest position given so far (positions start at 1).
pub fn last_position(store: &dyn KeyValue) -> Result<u64> {
    let raw = store.get(COUNT)?;
    Ok(raw.as_deref().and_then(decode_counter).unwrap_or(0).max(0) as u64)
}

/// The name at `position`, if an entry is there.
pub fn entry(store: &dyn KeyValue, position: u64) -> Result<Option<Username>> {
    Ok(store
        .get(&entry_key(position))?
        .and_then(|raw| Username::parse(std::str::from_utf8(&raw).ok()?).ok()))
}

pub fn remove(store: &dyn KeyValue, position: u64) -> Result<()> {
    store.delete(&entry_key(position))
}
