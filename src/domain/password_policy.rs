//! The policy a *new* password must pass (issue 11), after the length rule
//! of [`Password::parse`](super::Password::parse): not one of the most
//! common passwords, not containing the username, not one character
//! repeated. It judges new passwords only, never a login, so an account
//! whose password a rule now refuses still logs in.
//!
//! The common passwords are Django's list (`data/README.md`), embedded by
//! build.rs (`common_list`). Every rule compares in lowercase (`lowercase`),
//! as Django's validator does.

mod common_list;
mod lowercase;

use super::Username;
use common_list::CommonList;
use lowercase::lowercase;

/// The rule that refused a new password.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Weakness {
    Common,
    ContainsUsername,
    RepeatedCharacter,
    /// Under the minimum length once its surrounding whitespace is gone.
    Padded,
}

impl Weakness {
    /// Names the rule, never the password.
    pub fn message(self) -> &'static str {
        match self {
            Weakness::Common => {
                "password is too common: it is on a list of the most used passwords"
            }
            Weakness::ContainsUsername => "password must not contain the username",
            Weakness::RepeatedCharacter => "password must not be a single character repeated",
            Weakness::Padded => {
                "password must be at least 8 characters without its surrounding whitespace"
            }
        }
    }
}

/// The first rule that refuses `password` as a new password for `username`.
pub fn check(password: &str, username: &Username) -> Result<(), Weakness> {
    // Surrounding whitespace is no strength, and would let any common
    // password through padded (Django's validator strips it too).
    let lower = lowercase(password.trim());
    let mut chars = lower.chars();
    let first = chars.next();
    if chars.all(|c| Some(c) == first) {
        return Err(Weakness::RepeatedCharacter);
    }
    // The list keeps only entries of the minimum length or more, so a
    // short one padded to it would pass.
    let padded = password.trim().len() < password.len();
    if padded && lower.chars().count() < super::Password::MIN_CHARS {
        return Err(Weakness::Padded);
    }
    // `Username` is lowercase ASCII already.
    if lower.contains(username.as_str()) {
        return Err(Weakness::ContainsUsername);
    }
    if CommonList::embedded().contains(lower.as_bytes()) {
        return Err(Weakness::Common);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Password;

    const RAW: &str = include_str!("../../data/common-passwords.txt");

    fn user(name: &str) -> Username {
        Username::parse(name).unwrap()
    }

    /// What build.rs keeps, computed again from the raw list.
    fn kept() -> Vec<String> {
        let mut kept: Vec<String> = RAW
            .lines()
            .map(lowercase)
            .filter(|e| Password::parse(e.clone()).is_ok())
            .collect();
        kept.sort_unstable();
        kept.dedup();
        kept
    }

    fn is_common(password: &str) -> bool {
        CommonList::embedded().contains(lowercase(password).as_bytes())
    }

    #[test]
    fn the_embedded_list_holds_exactly_the_kept_entries_in_blocks_of_16() {
        let blocks = CommonList::embedded().entries();
        let kept: Vec<Vec<u8>> = kept().into_iter().map(String::into_bytes).collect();
        assert_eq!(blocks.concat(), kept);
        assert_eq!(blocks.len(), kept.len().div_ceil(16));
        assert!(blocks[..blocks.len() - 1].iter().all(|b| b.len() == 16));
    }

    #[test]
    fn every_kept_entry_is_found_in_any_case() {
        for entry in kept() {
            assert!(is_common(&entry), "{entry}");
            // Not every uppercase lowercases back (dotless ı, say).
            let upper = entry.to_uppercase();
            if lowercase(&upper) == entry {
                assert!(is_common(&upper), "{entry}");
            }
        }
    }

    #[test]
    fn the_first_and_last_entries_of_every_block_are_found() {
        let list = CommonList::embedded();
        for (i, block) in list.entries().iter().enumerate() {
            assert!(list.contains(&block[0]), "block {i}");
            assert!(list.contains(block.last().unwrap()), "block {i}");
        }
    }

    #[test]
    fn strings_next_to_entries_are_not_found() {
        let kept = kept();
        for entry in &kept {
            // Just after and just before an entry in byte order, across
            // block boundaries too.
            let mut shorter = entry.clone();
            shorter.pop();
            for near in [format!("{entry}\0"), format!("{entry}0"), shorter] {
                if kept.binary_search(&near).is_err() {
                    assert!(!is_common(&near), "{near:?}");
                }
            }
        }
        for absent in [
            "",
            "\0",
            "~~~~~~~~~~",
            "\u{10ffff}",
            "correct horse battery staple",
        ] {
            assert!(!is_common(absent), "{absent:?}");
        }
    }

    #[test]
    fn entries_shorter_than_the_length_rule_are_not_stored_nor_needed() {
        let short = RAW
            .lines()
            .map(lowercase)
            .filter(|e| e.chars().count() < Password::MIN_CHARS);
        for entry in short {
            assert!(!is_common(&entry), "{entry}");
            // Lowercasing never removes characters: whatever lowercases to
            // the entry is as short, and the length rule refuses it first.
            for spelling in [entry.clone(), entry.to_uppercase()] {
                if lowercase(&spelling) == entry {
                    assert!(Password::parse(spelling).is_err(), "{entry}");
                }
            }
        }
    }

    #[test]
    fn the_list_holds_at_least_the_10000_most_common_passwords() {
        assert!(RAW.lines().count() >= 10_000);
        assert!(kept().len() > 8_000);
    }

    #[test]
    fn a_common_password_is_refused_in_any_case() {
        let bob = user("bob");
        for common in [
            "password",
            "PASSWORD",
            "PassWord",
            "iloveyou",
            "qwertyuiop",
            "Sunshine1",
        ] {
            assert_eq!(check(common, &bob), Err(Weakness::Common), "{common}");
        }
    }

    #[test]
    fn a_password_containing_the_username_is_refused_in_any_case() {
        let alice = user("alice_w");
        for weak in ["alice_w", "ALICE_W", "my-Alice_W-pass", "xAlIcE_w2024"] {
            assert_eq!(
                check(weak, &alice),
                Err(Weakness::ContainsUsername),
                "{weak}"
            );
        }
        assert_eq!(check("alice-w is fine", &alice), Ok(()));
    }

    #[test]
    fn one_character_repeated_is_refused() {
        let bob = user("bob");
        for weak in ["qqqqqqqqqqqqq", "ééééééééé", "ÉéÉéÉéÉéÉ", "         "] {
            assert_eq!(
                check(weak, &bob),
                Err(Weakness::RepeatedCharacter),
                "{weak}"
            );
        }
        assert_eq!(check("qqqqqqqqqqqqr", &bob), Ok(()));
    }

    /// Review of issue 11: padding a common password with whitespace
    /// passed every rule.
    #[test]
    fn surrounding_whitespace_is_no_strength() {
        let bob = user("bob");
        for (weak, rule) in [
            ("password ", Weakness::Common),
            ("  PASSWORD", Weakness::Common),
            ("iloveyou\n", Weakness::Common),
            ("123456  ", Weakness::Padded),
            ("qwerty\t\t", Weakness::Padded),
            (" bob-rules ", Weakness::ContainsUsername),
        ] {
            assert_eq!(check(weak, &bob), Err(rule), "{weak:?}");
        }
        assert_eq!(check(" Tr0ub4dor&3 ", &bob), Ok(()));
    }

    #[test]
    fn a_strong_password_passes() {
        assert_eq!(check("Tr0ub4dor&3-staple", &user("bob")), Ok(()));
    }

    #[test]
    fn messages_name_the_rule() {
        assert!(Weakness::Common.message().contains("common"));
        assert!(Weakness::ContainsUsername.message().contains("username"));
        assert!(Weakness::RepeatedCharacter.message().contains("repeated"));
        assert!(Weakness::Padded.message().contains("whitespace"));
    }
}
