use std::fmt;

/// A candidate password: at least 8 characters and fewer than 72 bytes of
/// UTF-8, because bcrypt reads at most 72 bytes and we never truncate.
/// It never prints itself.
pub struct Password(String);

impl Password {
    pub const MIN_CHARS: usize = 8;
    pub const MAX_BYTES: usize = 71;
    pub const RULE: &'static str = "password must be at least 8 characters and fewer than 72 bytes";

    pub fn parse(raw: String) -> Result<Self, &'static str> {
        if raw.chars().count() >= Self::MIN_CHARS && raw.len() <= Self::MAX_BYTES {
            Ok(Self(raw))
        } else {
            Err(Self::RULE)
        }
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
    fn debug_never_shows_the_password() {
        let p = Password::parse("supersecret".into()).unwrap();
        assert_eq!(format!("{p:?}"), "Password(***)");
    }
}
