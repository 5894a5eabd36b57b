//! Time-based one-time passwords (RFC 6238) for two-factor login: the
//! secret, its base32 and `otpauth://` forms, and which time step a code
//! belongs to. It knows nothing of users, the store or replay; the caller
//! keeps the last accepted step per user and refuses a step not above it.
//!
//! The HOTP arithmetic (HMAC, dynamic truncation) is `totp-rs`'s, built in
//! one place, [`totp`], in the configuration every authenticator app reads:
//! HMAC-SHA1, 6 digits, 30-second steps, 160-bit secrets (RFC 4226 §4
//! recommends 160; `totp-rs` refuses under 128). Our API speaks in time steps
//! (`unix_secs / STEP_SECS`), so the crate is handed the step number itself
//! with a step length of 1: the one division by [`STEP_SECS`] is in
//! [`matching_step`], and no step number can overflow a multiplication back
//! into seconds. The RFC's test vectors below go through that same path.

use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};
use totp_rs::{Algorithm, Secret, TOTP};

pub const SECRET_BYTES: usize = 20;
pub const DIGITS: usize = 6;
pub const STEP_SECS: u64 = 30;
/// The issuer shown in authenticator apps.
pub const ISSUER: &str = "secure-backend";

/// Steps accepted either side of the current one: RFC 6238 §5.2 recommends
/// at most one step of network delay (and clock drift).
const WINDOW_STEPS: u64 = 1;

/// The crate's generator in our configuration, fed step numbers (its own
/// step is one unit). `digits` is [`DIGITS`] outside tests. None when the
/// crate refuses the secret (under 128 bits) or the digit count (not 6–8).
fn totp(secret: &[u8], digits: usize) -> Option<TOTP> {
    TOTP::new(Algorithm::SHA1, digits, 0, 1, secret.to_vec()).ok()
}

pub fn new_secret() -> anyhow::Result<[u8; SECRET_BYTES]> {
    crate::security::random_bytes()
}

/// RFC 4648 base32, uppercase, without padding: what authenticator apps
/// take, typed or in the `otpauth://` URI.
pub fn encode_secret(secret: &[u8]) -> String {
    Secret::Raw(secret.to_vec()).to_encoded().to_string()
}

/// The bytes of a base32 secret (either case, no padding); None when it is
/// not base32.
pub fn decode_secret(base32: &str) -> Option<Vec<u8>> {
    Secret::Encoded(base32.to_ascii_uppercase()).to_bytes().ok()
}

/// The Key Uri Format that authenticator apps scan from a QR code:
/// `otpauth://totp/<issuer>:<account>?secret=…&issuer=…&algorithm=SHA1&digits=6&period=30`,
/// label parts and issuer percent-encoded (so a `:` in the account cannot
/// split the label).
pub fn otpauth_uri(secret: &[u8], account: &str) -> String {
    let issuer = percent_encode(ISSUER);
    format!(
        "otpauth://totp/{issuer}:{account}?secret={secret}&issuer={issuer}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
        account = percent_encode(account),
        secret = encode_secret(secret),
    )
}

/// RFC 3986 percent-encoding of everything but the unreserved characters.
fn percent_encode(text: &str) -> String {
    use std::fmt::Write;
    text.bytes()
        .fold(String::with_capacity(text.len()), |mut out, b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                out.push(char::from(b));
            } else {
                let _ = write!(out, "%{b:02X}");
            }
            out
        })
}

/// Exactly [`DIGITS`] ASCII digits (no sign, space or other script's digits).
pub fn is_code_shaped(code: &str) -> bool {
    code.len() == DIGITS && code.bytes().all(|b| b.is_ascii_digit())
}

/// The code of time step `step` (`unix_secs / STEP_SECS`). Empty, which no
/// code matches, for a secret under 128 bits (RFC 4226 §4 forbids them and
/// `totp-rs` refuses them); ours are [`SECRET_BYTES`] long.
pub fn code_at(secret: &[u8], step: u64) -> String {
    totp(secret, DIGITS).map_or_else(String::new, |totp| totp.generate(step))
}

/// The time step (unix seconds / STEP_SECS) whose code `code` is, among the
/// current step at `now_secs` and one step either side (RFC 6238 §5.2, ±1);
/// None when none matches. Compares in constant time; when several match, the highest.
pub fn matching_step(secret: &[u8], code: &str, now_secs: u64) -> Option<u64> {
    if !is_code_shaped(code) {
        return None;
    }
    let totp = totp(secret, DIGITS)?;
    let current = now_secs / STEP_SECS;
    // Every candidate is computed and compared, and the match is selected
    // without a branch, so the time taken does not say which step matched.
    let mut matched = Choice::from(0);
    let mut step_matched = 0u64;
    for step in current.saturating_sub(WINDOW_STEPS)..=current.saturating_add(WINDOW_STEPS) {
        let equal = totp.generate(step).as_bytes().ct_eq(code.as_bytes());
        step_matched.conditional_assign(&step, equal);
        matched |= equal;
    }
    bool::from(matched).then_some(step_matched)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B: the SHA-1 seed and its 8-digit codes.
    const RFC_SEED: &[u8] = b"12345678901234567890";
    const RFC_SHA1_VECTORS: [(u64, &str); 6] = [
        (59, "94287082"),
        (1111111109, "07081804"),
        (1111111111, "14050471"),
        (1234567890, "89005924"),
        (2000000000, "69279037"),
        (20000000000, "65353130"),
    ];

    fn secret() -> [u8; SECRET_BYTES] {
        *b"twenty byte secret!!"
    }

    #[test]
    fn rfc_6238_sha1_vectors_pass_through_our_configuration() {
        for (time, code8) in RFC_SHA1_VECTORS {
            let step = time / STEP_SECS;
            let eight = totp(RFC_SEED, 8).expect("8 digits and 160 bits are accepted");
            assert_eq!(eight.generate(step), code8, "8 digits at {time}");
            // At 6 digits a code is the same number mod 10^6.
            assert_eq!(code_at(RFC_SEED, step), &code8[2..], "6 digits at {time}");
            assert_eq!(matching_step(RFC_SEED, &code8[2..], time), Some(step));
        }
    }

    #[test]
    fn a_code_is_accepted_exactly_one_step_either_side() {
        let step = 1_000_000u64;
        let code = code_at(&secret(), step);
        let first_second_of = |s: u64| s * STEP_SECS;
        let last_second_of = |s: u64| s * STEP_SECS + STEP_SECS - 1;
        for s in [step - 1, step, step + 1] {
            for now in [first_second_of(s), last_second_of(s)] {
                assert_eq!(matching_step(&secret(), &code, now), Some(step), "at {now}");
            }
        }
        for now in [last_second_of(step - 2), first_second_of(step + 2)] {
            assert_eq!(matching_step(&secret(), &code, now), None, "at {now}");
        }
    }

    #[test]
    fn when_neighbouring_steps_share_a_code_the_highest_is_the_match() {
        // Steps 1818379 and 1818380 of `secret()` both have code 948014
        // (found by searching; about one pair of neighbours in 10^6 agree).
        let step = 1_818_379;
        let code = "948014";
        assert_eq!(code_at(&secret(), step), code);
        assert_eq!(code_at(&secret(), step + 1), code);
        assert_eq!(
            matching_step(&secret(), code, step * STEP_SECS),
            Some(step + 1)
        );
        assert_eq!(
            matching_step(&secret(), code, (step + 1) * STEP_SECS),
            Some(step + 1)
        );
        assert_eq!(
            matching_step(&secret(), code, (step + 2) * STEP_SECS),
            Some(step + 1)
        );
        assert_eq!(
            matching_step(&secret(), code, (step - 1) * STEP_SECS),
            Some(step)
        );
    }

    #[test]
    fn the_first_steps_of_the_epoch_do_not_underflow() {
        let code = code_at(&secret(), 0);
        assert_eq!(matching_step(&secret(), &code, 0), Some(0));
        assert_eq!(matching_step(&secret(), &code, STEP_SECS), Some(0));
        let last = u64::MAX / STEP_SECS;
        let code = code_at(&secret(), last);
        assert_eq!(matching_step(&secret(), &code, u64::MAX), Some(last));
    }

    #[test]
    fn a_wrong_code_is_refused() {
        let now = 1_700_000_000;
        let code = code_at(&secret(), now / STEP_SECS);
        let wrong = format!("{:06}", (code.parse::<u32>().unwrap() + 1) % 1_000_000);
        assert_eq!(matching_step(&secret(), &code, now), Some(now / STEP_SECS));
        assert_eq!(matching_step(&secret(), &wrong, now), None);
    }

    #[test]
    fn only_six_ascii_digits_are_code_shaped() {
        let now = 1_700_000_000;
        let code = code_at(&secret(), now / STEP_SECS);
        assert!(is_code_shaped(&code));
        let misshapen = [
            code[..5].to_string(),
            format!("{code}0"),
            format!(" {code}"),
            format!("{code}\n"),
            format!("+{}", &code[1..]),
            "12345a".to_string(),
            String::new(),
            // Arabic-Indic and fullwidth digits: digits, but not ASCII ones.
            "١٢٣٤٥٦".to_string(),
            "１２３４５６".to_string(),
        ];
        for input in misshapen {
            assert!(!is_code_shaped(&input), "{input:?}");
            assert_eq!(matching_step(&secret(), &input, now), None, "{input:?}");
        }
    }

    #[test]
    fn a_secret_under_128_bits_matches_nothing_and_does_not_panic() {
        let short = [7u8; 15];
        assert_eq!(code_at(&short, 1), "");
        assert_eq!(matching_step(&short, "123456", 30), None);
        assert_eq!(matching_step(&[], "123456", 30), None);
    }

    #[test]
    fn new_secrets_are_160_bits_and_differ() {
        let a = new_secret().unwrap();
        assert_eq!(a.len() * 8, 160);
        assert_ne!(a, new_secret().unwrap());
    }

    #[test]
    fn base32_is_rfc_4648_uppercase_unpadded_and_round_trips() {
        // RFC 4648 §10: BASE32("foobar") = "MZXW6YTBOI======".
        assert_eq!(encode_secret(b"foobar"), "MZXW6YTBOI");
        assert_eq!(encode_secret(RFC_SEED), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        assert_eq!(
            decode_secret("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ").unwrap(),
            RFC_SEED
        );
        assert_eq!(decode_secret("mzxw6ytboi").unwrap(), b"foobar");
        let secret = new_secret().unwrap();
        let encoded = encode_secret(&secret);
        assert_eq!(encoded.len(), 32);
        assert_eq!(decode_secret(&encoded).unwrap(), secret);
        for garbage in ["GEZDGNBV1", "GEZ DGNBV", "MZXW6YTBOI======", "é"] {
            assert_eq!(decode_secret(garbage), None, "{garbage:?}");
        }
    }

    #[test]
    fn the_otpauth_uri_names_issuer_account_and_parameters() {
        assert_eq!(
            otpauth_uri(RFC_SEED, "alice"),
            "otpauth://totp/secure-backend:alice?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
             &issuer=secure-backend&algorithm=SHA1&digits=6&period=30"
        );
        let uri = otpauth_uri(RFC_SEED, "a b:c/d?e&f=g@h.é");
        assert!(
            uri.starts_with(
                "otpauth://totp/secure-backend:a%20b%3Ac%2Fd%3Fe%26f%3Dg%40h.%C3%A9?secret="
            ),
            "{uri}"
        );
    }
}
