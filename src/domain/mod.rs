//! Domain types. Each parses its raw input once; a value that exists is valid,
//! so handlers never re-check it.

mod password;
mod password_policy;
mod role;
mod user;
mod username;

pub use password::{Password, PasswordRefusal};
pub use password_policy::Weakness;
pub use role::Role;
pub use user::{Mfa, PendingMfa, User, SESSION_SLOTS};
pub use username::Username;
