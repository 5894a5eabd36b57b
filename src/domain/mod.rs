//! Domain types. Each parses its raw input once; a value that exists is valid,
//! so handlers never re-check it.

mod password;
mod role;
mod user;
mod username;

pub use password::Password;
pub use role::Role;
pub use user::{User, SESSION_SLOTS};
pub use username::Username;
