use std::fmt;

/// A username: 3 to 32 ASCII letters, digits, `_`, `-` or `.`, stored in
/// lowercase so that `TestUser` and `testuser` are one account.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Username(String);

impl Username {
    pub const RULE: &'static str =
        "username must be 3 to 32 characters of ASCII letters, digits, '_', '-' or '.'";

    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
        if (3..=32).contains(&raw.len()) && raw.chars().all(allowed) {
            Ok(Self(raw.to_ascii_lowercase()))
        } else {
            Err(Self::RULE)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_normalized_to_lowercase() {
        assert_eq!(Username::parse("TestUser").unwrap().as_str(), "testuser");
    }

    #[test]
    fn allowed_characters_and_lengths() {
        for ok in ["abc", "a.b-c_d", "A1_", &"x".repeat(32)] {
            assert!(Username::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "ab",
            "",
            &"x".repeat(33),
            "a b",
            "ab/",
            "ab:c",
            "ümlaut",
            "a\nb",
            "abc\0",
        ] {
            assert!(Username::parse(bad).is_err(), "{bad:?}");
        }
    }
}
