use super::password_policy::{self, Weakness};
use super::Username;
use std::fmt;

/// A candidate password: at least 8 characters and fewer than 72 bytes of
/// UTF-8, because bcrypt reads at most 72 bytes and we never truncate.
/// It never prints itself.
pub struct Password(String);

impl Password {
    pub const MIN_CHARS: usize = 8;
    pub const MAX_BYTES: usize = 71;
    pub const RULE: &'static str = "password must be at least 8 characters and fewer than 72 bytes";

    /// The length rule alone. A new password (registration, password
    /// change) goes through `parse_new`, which adds the policy.
    pub fn parse(raw: String) -> Result<Self, &'static str> {
        if raw.chars().count() >= Self::MIN_CHARS && raw.len() <= Self::MAX_BYTES {
            Ok(Self(raw))
        } else {
            Err(Self::RULE)
        }
    }

    /// A new password for `username`: the length rule first, then the
    /// policy of `password_policy` (common, contains the username, one
    /// character repeated).
    pub fn parse_new(raw: String, username: &Username) -> Result<Self, PasswordRefusal> {
        let password = Self::parse(raw).map_err(PasswordRefusal::Length)?;
        password_policy::check(&password.0, username).map_err(PasswordRefusal::Weak)?;
        Ok(password)
    }

    /// A password offered at login: any non-empty string bcrypt can take
    /// whole. The registration rules may change; old passwords still log in.
    pub fn parse_candidate(raw: String) -> Result<Self, &'static str> {
        if !raw.is_empty() && raw.len() <= Self::MAX_BYTES {
            Ok(Self(raw))
        } else {
            Err("password must be a non-empty string of fewer than 72 bytes")
        }
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// Why `Password::parse_new` refused: the length rule (a validation error)
/// or a rule of the policy (`weak_password`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PasswordRefusal {
    Length(&'static str),
    Weak(Weakness),
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_is_counted_in_characters_and_capped_in_bytes() {
        assert!(Password::parse("1234567".into()).is_err());
        assert!(Password::parse("12345678".into()).is_ok());
        assert!(Password::parse("é".repeat(8)).is_ok()); // 8 chars, 16 bytes
        assert!(Password::parse("a".repeat(71)).is_ok());
        assert!(Password::parse("a".repeat(72)).is_err());
        assert!(Password::parse(format!("{}é", "a".repeat(70))).is_err()); // 72 bytes
    }

    #[test]
    fn a_new_password_meets_the_length_rule_before_the_policy() {
        let bob = Username::parse("bob").unwrap();
        // Common and repeated, but the length rule speaks first.
        assert_eq!(
            Password::parse_new("123456".into(), &bob).unwrap_err(),
            PasswordRefusal::Length(Password::RULE)
        );
        assert_eq!(
            Password::parse_new("aaa".into(), &bob).unwrap_err(),
            PasswordRefusal::Length(Password::RULE)
        );
        assert_eq!(
            Password::parse_new("password".into(), &bob).unwrap_err(),
            PasswordRefusal::Weak(Weakness::Common)
        );
        assert!(Password::parse_new("bumpy-ferret-41".into(), &bob).is_ok());
    }

    #[test]
    fn a_login_takes_what_a_new_password_may_not() {
        assert!(Password::parse_candidate("password".into()).is_ok());
        assert!(Password::parse_candidate("aaaaaaaa".into()).is_ok());
    }

    #[test]
    fn debug_never_shows_the_password() {
        let p = Password::parse("supersecret".into()).unwrap();
        assert_eq!(format!("{p:?}"), "Password(***)");
    }
}
