//! The security rules: password hashing, tokens and keys, the login rate
//! limit, account lockout, client identification and the route guards.

pub mod client_ip;
pub mod guards;
pub mod keys;
pub mod lease;
pub mod lockout;
pub mod mfa;
pub mod name_claim;
pub mod passwords;
pub mod rate_limit;
pub mod recovery_codes;
pub mod sealing;
pub mod sessions;
pub mod tokens;
pub mod totp;

/// Cryptographically random bytes (WASI random in the component).
pub fn random_bytes<const N: usize>() -> anyhow::Result<[u8; N]> {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).map_err(|e| anyhow::anyhow!("random source failed: {e}"))?;
    Ok(buf)
}

pub fn to_hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}
