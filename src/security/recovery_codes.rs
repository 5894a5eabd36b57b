//! Recovery codes: single-use codes that stand in for the second factor when
//! the authenticator is lost. Shown once at enrolment; only their hashes are
//! kept. It knows nothing of the store; the caller removes a used hash.
//!
//! A code is [`LENGTH`] characters from an alphabet without the characters
//! people confuse when copying a code from paper (`0`/`o`, `1`/`l`/`i`),
//! shown in groups of four: `xxxx-xxxx-xxxx-xxxx-xxxx-xxxx`. That leaves 31
//! symbols, so each is drawn by rejection (a 5-bit draw of 31 is drawn
//! again), never by a modulo: every symbol is equally likely, and a code
//! carries 24·log2(31) ≈ 118.9 random bits. Input is normalised before
//! hashing (case, the dashes, surrounding whitespace), so however the user
//! types a code it has one hash.
//!
//! ASVS 5.0 V6.5.2 lets a lookup secret of 112 bits or more be stored
//! under a plain hash (fewer would need a salted password hash: a dump
//! could otherwise be searched). Ours are above that, and the stored form
//! is moreover an HMAC under a per-account key derived from the sealing key
//! (`mfa`): without the key, a dump yields nothing to search.

use crate::security::{random_bytes, to_hex};
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};

pub const COUNT: usize = 10;
/// Characters in a code, not counting the dashes.
pub const LENGTH: usize = 24;
/// Characters between two dashes.
const GROUP: usize = 4;
/// Lowercase letters and digits less `0 o 1 l i`.
const ALPHABET: &[u8; 31] = b"23456789abcdefghjkmnpqrstuvwxyz";
/// A random source that stalls (returns the same bytes again and again)
/// fails generation after this many draws instead of looping for ever.
const MAX_DRAWS: usize = 64;

/// Ten fresh codes to show the user once: 24 characters from an unambiguous
/// lowercase alphabet (no 0/o/1/l/i), in dashed groups of four; all distinct.
pub fn generate() -> anyhow::Result<Vec<String>> {
    let mut codes: Vec<String> = Vec::with_capacity(COUNT);
    for _ in 0..MAX_DRAWS {
        if codes.len() == COUNT {
            break;
        }
        let symbols = random_symbols()?;
        let groups: Vec<&[u8]> = symbols.chunks(GROUP).collect();
        let code = String::from_utf8_lossy(&groups.join(&b'-')).into_owned();
        if !codes.contains(&code) {
            codes.push(code);
        }
    }
    if codes.len() < COUNT {
        anyhow::bail!("the random source repeats itself");
    }
    Ok(codes)
}

/// [`LENGTH`] symbols of [`ALPHABET`], each uniformly drawn.
fn random_symbols() -> anyhow::Result<[u8; LENGTH]> {
    let mut symbols = [0u8; LENGTH];
    let mut filled = 0;
    for _ in 0..MAX_DRAWS {
        let bytes: [u8; 32] = random_bytes()?;
        // 256 is a multiple of 32, so the low five bits are uniform on
        // 0..32; dropping 31 leaves them uniform on the alphabet.
        for index in bytes.map(|b| usize::from(b & 0x1f)) {
            if let (Some(&symbol), Some(slot)) = (ALPHABET.get(index), symbols.get_mut(filled)) {
                *slot = symbol;
                filled += 1;
            }
        }
        if filled == LENGTH {
            return Ok(symbols);
        }
    }
    anyhow::bail!("the random source repeats itself")
}

/// The code without dashes, in lowercase, when `input` is shaped like one:
/// [`LENGTH`] alphabet characters in either case, either with no dash or
/// with one between every two groups of four, surrounding whitespace ignored.
fn normalise(input: &str) -> Option<String> {
    let typed = input.trim().as_bytes();
    let dashed = LENGTH + LENGTH / GROUP - 1;
    let compact: Vec<u8> = if typed.len() == LENGTH {
        typed.to_vec()
    } else if typed.len() == dashed
        && typed
            .iter()
            .enumerate()
            .all(|(i, &b)| (b == b'-') == (i % (GROUP + 1) == GROUP))
    {
        typed.iter().copied().filter(|&b| b != b'-').collect()
    } else {
        return None;
    };
    let code = compact.to_ascii_lowercase();
    if code.iter().all(|b| ALPHABET.contains(b)) {
        String::from_utf8(code).ok()
    } else {
        None
    }
}

/// Whether `input` is shaped like a recovery code (after normalising: any
/// case, dashes between the groups or none, surrounding whitespace ignored).
pub fn is_shaped(input: &str) -> bool {
    normalise(input).is_some()
}

/// The stored form: hex HMAC-SHA256 of the normalised code under `key`
/// (the account's). None when not shaped like one.
pub fn hash(key: &[u8; 32], input: &str) -> Option<String> {
    normalise(input).map(|code| to_hex(&hmac_sha256::HMAC::mac(code.as_bytes(), key)))
}

/// Which stored hash `input` matches (the first, should two be equal). Every
/// stored hash is compared, in constant time, so the time taken does not say
/// which one matched.
pub fn position(key: &[u8; 32], hashes: &[String], input: &str) -> Option<usize> {
    let candidate = hash(key, input)?;
    let mut found = Choice::from(0);
    let mut position = 0u64;
    for (index, stored) in (0u64..).zip(hashes) {
        let equal = stored.as_bytes().ct_eq(candidate.as_bytes());
        position.conditional_assign(&index, equal & !found);
        found |= equal;
    }
    if bool::from(found) {
        usize::try_from(position).ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::totp;

    const KEY: [u8; 32] = [7; 32];

    #[test]
    fn ten_distinct_codes_of_dashed_groups_from_the_alphabet() {
        let codes = generate().unwrap();
        assert_eq!(codes.len(), COUNT);
        for code in &codes {
            assert_eq!(code.len(), 29, "{code}");
            let groups: Vec<&str> = code.split('-').collect();
            assert_eq!(groups.len(), 6, "{code}");
            assert!(groups.iter().all(|g| g.len() == 4), "{code}");
            assert!(
                code.bytes()
                    .filter(|&b| b != b'-')
                    .all(|b| ALPHABET.contains(&b)),
                "{code}"
            );
            assert!(!code.contains(['0', 'o', '1', 'l', 'i']), "{code}");
            assert!(is_shaped(code));
        }
        let mut distinct = codes.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), COUNT);
        assert_ne!(codes, generate().unwrap());
    }

    #[test]
    fn the_alphabet_has_31_distinct_unambiguous_symbols() {
        let mut symbols = ALPHABET.to_vec();
        symbols.sort();
        symbols.dedup();
        assert_eq!(symbols.len(), 31);
        assert!(symbols
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
        assert!(!symbols.iter().any(|b| b"0o1li".contains(b)));
    }

    #[test]
    fn every_symbol_is_drawn_about_equally_often() {
        // 100 codes, 2400 symbols: 77 of each expected. A symbol never
        // drawn, or drawn over three times its share, means a biased draw.
        let mut counts = [0usize; 256];
        for _ in 0..10 {
            for code in generate().unwrap() {
                for b in code.bytes().filter(|&b| b != b'-') {
                    counts[usize::from(b)] += 1;
                }
            }
        }
        for &symbol in ALPHABET {
            let count = counts[usize::from(symbol)];
            assert!(
                (1..232).contains(&count),
                "{} drawn {count} times",
                char::from(symbol)
            );
        }
    }

    #[test]
    fn the_hash_ignores_case_the_dashes_and_surrounding_whitespace() {
        let code = "abcd-efgh-jkmn-pqrs-tuvw-xyz2";
        let expected = hash(&KEY, code).unwrap();
        assert_eq!(expected.len(), 64);
        assert_eq!(
            expected,
            to_hex(&hmac_sha256::HMAC::mac(b"abcdefghjkmnpqrstuvwxyz2", KEY))
        );
        // Another account's key, another hash.
        assert_ne!(hash(&[8; 32], code).unwrap(), expected);
        for typed in [
            "abcdefghjkmnpqrstuvwxyz2",
            "ABCD-EFGH-JKMN-PQRS-TUVW-XYZ2",
            "AbCdEfGhJkMnPqRsTuVwXyZ2",
            "  abcd-efgh-jkmn-pqrs-tuvw-xyz2\n",
            "\tABCDEFGHJKMNPQRSTUVWXYZ2 ",
        ] {
            assert_eq!(
                hash(&KEY, typed).as_deref(),
                Some(expected.as_str()),
                "{typed:?}"
            );
        }
        assert_ne!(
            hash(&KEY, "abcd-efgh-jkmn-pqrs-tuvw-xyz3").unwrap(),
            expected
        );
    }

    #[test]
    fn misshapen_input_is_not_a_code() {
        let misshapen = [
            "",
            "abcd-efgh-jkmn-pqrs-tuvw-xyz",
            "abcd-efgh-jkmn-pqrs-tuvw-xyz23",
            "abcde-fgh-jkmn-pqrs-tuvw-xyz2",
            "abcd--efgh-jkmn-pqrs-tuvw-xyz2",
            "abcd efgh jkmn pqrs tuvw xyz2",
            "abcd_efgh_jkmn_pqrs_tuvw_xyz2",
            "-abcdefghjkmnpqrstuvwxyz2",
            "abcdefghjkmnpqrstuvwxyz2-",
            "abcd-efgh-jkmnpqrs-tuvw-xyz2",
            "abcd-efgh-jkmn-pqrs-tuvw-xyz0",
            "abcd-efgh-jkmn-pqrs-tuvw-xyzo",
            "abcd-efgh-jkmn-pqrs-tuvw-xyz1",
            "abcd-efgh-jkmn-pqrs-tuvw-xyzl",
            "abcd-efgh-jkmn-pqrs-tuvw-xyzi",
            "abcd-efgh-jkmn-pqrs-tuvw-xyzé",
            "ａｂｃｄ-ｅｆｇｈ-ｊｋｍｎ-ｐｑｒｓ-ｔｕｖｗ-ｘｙｚ２",
        ];
        for input in misshapen {
            assert!(!is_shaped(input), "{input:?}");
            assert_eq!(hash(&KEY, input), None, "{input:?}");
            assert_eq!(
                position(
                    &KEY,
                    &[hash(&KEY, "abcd-efgh-jkmn-pqrs-tuvw-xyz2").unwrap()],
                    input
                ),
                None,
                "{input:?}"
            );
        }
    }

    #[test]
    fn position_finds_the_matching_hash_and_no_other() {
        let codes = generate().unwrap();
        let hashes: Vec<String> = codes.iter().map(|c| hash(&KEY, c).unwrap()).collect();
        for (i, code) in codes.iter().enumerate() {
            assert_eq!(position(&KEY, &hashes, code), Some(i));
            assert_eq!(
                position(&KEY, &hashes, &code.to_uppercase().replace('-', "")),
                Some(i)
            );
            assert_eq!(position(&[8; 32], &hashes, code), None, "another key");
        }
        let unused = generate().unwrap();
        for code in unused.iter().filter(|c| !codes.contains(c)) {
            assert_eq!(position(&KEY, &hashes, code), None);
        }
        assert_eq!(position(&KEY, &[], &codes[0]), None);
        let doubled = [hashes[3].clone(), hashes[3].clone()];
        assert_eq!(position(&KEY, &doubled, &codes[3]), Some(0));
    }

    #[test]
    fn totp_codes_and_recovery_codes_cannot_be_mistaken() {
        for code in ["123456", "000000", "987654"] {
            assert!(totp::is_code_shaped(code));
            assert!(!is_shaped(code), "{code}");
        }
        for code in generate().unwrap() {
            assert!(!totp::is_code_shaped(&code), "{code}");
            assert!(!totp::is_code_shaped(&code.replace('-', "")), "{code}");
        }
        // Even an all-digit recovery code is too long to be a TOTP code.
        let digits = "2345-6789-2345-6789-2345-6789";
        assert!(is_shaped(digits));
        assert!(!totp::is_code_shaped(digits));
        assert!(!totp::is_code_shaped(&digits.replace('-', "")));
    }
}
