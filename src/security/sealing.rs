//! Authenticated encryption of secrets at rest (TOTP secrets): whoever reads
//! the store without the sealing key learns nothing of them and cannot
//! forge or swap one. It knows nothing of where the key material or the
//! sealed records live.
//!
//! XChaCha20-Poly1305 (RustCrypto's `chacha20poly1305`) with a fresh random
//! 24-byte nonce per seal: at 192 bits, random nonces never repeat in
//! practice, so no counter has to be kept anywhere. The additional data
//! binds a record to its owner (a secret copied onto another account does not
//! open there). A record names the key that sealed it by an id derived from
//! the key, so a record sealed under another key (a rotated or mistyped
//! variable) is told apart from a damaged one without revealing either key.
//!
//! The record format: `v1.<key id, 8 hex chars>.<base64url(nonce || ciphertext)>`.

use crate::security::{random_bytes, to_hex};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use ct_codecs::{Base64UrlSafeNoPadding, Decoder, Encoder};
use std::fmt;

const VERSION: &str = "v1";
/// The HMAC labels: one derivation per purpose, so neither value can stand
/// for the other or for any other use of the same material.
const KEY_LABEL: &[u8] = b"secure-backend/totp-seal/key/v1";
const KEY_ID_LABEL: &[u8] = b"secure-backend/totp-seal/key-id/v1";
const NONCE_BYTES: usize = 24;
const TAG_BYTES: usize = 16;
const KEY_ID_BYTES: usize = 4;

pub struct SealKey {
    key: [u8; 32],
    id: String,
}

impl SealKey {
    /// A key derived from secret material (an operator's variable): HMAC-SHA256 with a fixed label
    /// (the `hmac-sha256` crate already in Cargo.toml), so the material's length and form do not matter.
    pub fn derive(material: &[u8]) -> Self {
        let key = hmac_sha256::HMAC::mac(KEY_LABEL, material);
        let id = hmac_sha256::HMAC::mac(KEY_ID_LABEL, key);
        SealKey {
            key,
            id: to_hex(&id[..KEY_ID_BYTES]),
        }
    }

    /// A key for another purpose (`label`), derived from this one: whoever
    /// lacks this key cannot compute it.
    pub fn subkey(&self, label: &[u8]) -> [u8; 32] {
        hmac_sha256::HMAC::mac(label, self.key)
    }

    /// The key's public name, as written in every record it seals.
    pub fn id(&self) -> &str {
        &self.id
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&Key::from(self.key))
    }
}

/// Names the key, never shows it.
impl fmt::Debug for SealKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// `v1.<key id, 8 hex chars>.<base64url(nonce || ciphertext)>`; the key id is derived from the key with
/// another HMAC label (it identifies the key without revealing it), so a record sealed under another key
/// is told apart from a corrupt one.
pub fn seal(key: &SealKey, plaintext: &[u8], aad: &[u8]) -> anyhow::Result<String> {
    let nonce: [u8; NONCE_BYTES] = random_bytes()?;
    let ciphertext = key
        .cipher()
        .encrypt(
            &XNonce::from(nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .map_err(|_| anyhow::anyhow!("sealing failed"))?;
    let mut body = Vec::with_capacity(NONCE_BYTES + ciphertext.len());
    body.extend_from_slice(&nonce);
    body.extend_from_slice(&ciphertext);
    let body = Base64UrlSafeNoPadding::encode_to_string(&body)
        .map_err(|e| anyhow::anyhow!("encoding a sealed record failed: {e}"))?;
    Ok(format!("{VERSION}.{}.{body}", key.id))
}

#[derive(Debug, PartialEq, Eq)]
pub enum OpenError {
    /// Well formed, but sealed under a key with another id.
    OtherKey,
    /// Not a record, damaged, or bound to other additional data.
    Corrupt,
}

pub fn open(key: &SealKey, sealed: &str, aad: &[u8]) -> Result<Vec<u8>, OpenError> {
    let mut parts = sealed.split('.');
    let (Some(VERSION), Some(id), Some(body), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(OpenError::Corrupt);
    };
    let id_shaped =
        id.len() == KEY_ID_BYTES * 2 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if !id_shaped {
        return Err(OpenError::Corrupt);
    }
    if id != key.id {
        return Err(OpenError::OtherKey);
    }
    // ct-codecs refuses non-canonical base64 (stray trailing bits), so a
    // record has exactly one spelling and no altered character goes unseen.
    let body = Base64UrlSafeNoPadding::decode_to_vec(body, None).map_err(|_| OpenError::Corrupt)?;
    let (nonce, ciphertext) = body
        .split_first_chunk::<NONCE_BYTES>()
        .filter(|(_, ciphertext)| ciphertext.len() >= TAG_BYTES)
        .ok_or(OpenError::Corrupt)?;
    key.cipher()
        .decrypt(
            &XNonce::from(*nonce),
            Payload {
                msg: ciphertext,
                aad,
            },
        )
        .map_err(|_| OpenError::Corrupt)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ct_codecs::{Base64, Base64NoPadding, Base64UrlSafe};

    const AAD: &[u8] = b"user:0123456789abcdef";

    fn key() -> SealKey {
        SealKey::derive(b"an operator's totp_seal_key variable")
    }

    #[test]
    fn a_sealed_secret_opens_with_its_key_and_additional_data() {
        for plaintext in [&b""[..], b"x", b"twenty byte secret!!", &[0xffu8; 100]] {
            let sealed = seal(&key(), plaintext, AAD).unwrap();
            assert_eq!(open(&key(), &sealed, AAD).unwrap(), plaintext);
        }
    }

    #[test]
    fn the_record_is_version_key_id_and_base64url() {
        let sealed = seal(&key(), b"twenty byte secret!!", AAD).unwrap();
        let parts: Vec<&str> = sealed.split('.').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[0], "v1");
        assert_eq!(parts[1], key().id());
        assert_eq!(parts[1].len(), 8);
        // 24-byte nonce, 20 bytes of ciphertext, 16-byte tag: 60 bytes.
        assert_eq!(
            Base64UrlSafeNoPadding::decode_to_vec(parts[2], None)
                .unwrap()
                .len(),
            60
        );
    }

    #[test]
    fn each_seal_uses_a_fresh_nonce() {
        let a = seal(&key(), b"same secret", AAD).unwrap();
        let b = seal(&key(), b"same secret", AAD).unwrap();
        assert_ne!(a, b);
        // After `v1.<id>.`, the first 32 characters are the 24-byte nonce.
        assert_ne!(a[12..44], b[12..44], "the nonces differ");
    }

    #[test]
    fn other_additional_data_does_not_open() {
        let sealed = seal(&key(), b"secret", AAD).unwrap();
        assert_eq!(
            open(&key(), &sealed, b"user:another"),
            Err(OpenError::Corrupt)
        );
        assert_eq!(open(&key(), &sealed, b""), Err(OpenError::Corrupt));
    }

    #[test]
    fn a_record_under_another_key_is_told_apart_from_a_corrupt_one() {
        let other = SealKey::derive(b"another variable");
        assert_ne!(other.id(), key().id());
        let sealed = seal(&other, b"secret", AAD).unwrap();
        assert_eq!(open(&key(), &sealed, AAD), Err(OpenError::OtherKey));
        assert_eq!(open(&other, &sealed, AAD).unwrap(), b"secret");
    }

    #[test]
    fn the_key_is_derived_deterministically_and_never_printed() {
        assert_eq!(
            key().key,
            SealKey::derive(b"an operator's totp_seal_key variable").key
        );
        assert_eq!(
            key().id(),
            SealKey::derive(b"an operator's totp_seal_key variable").id()
        );
        let printed = format!("{:?}", key());
        assert!(printed.contains(key().id()), "{printed}");
        assert!(!printed.contains(&to_hex(&key().key)), "{printed}");
        assert!(!printed.contains("key:"), "{printed}");
    }

    #[test]
    fn any_altered_character_or_truncation_fails_to_open() {
        // Plaintext lengths with each remainder of the base64 grouping, so
        // the last character carries stray bits in some of them.
        for len in [0usize, 1, 2, 20, 21, 22] {
            let plaintext = vec![b's'; len];
            let sealed = seal(&key(), &plaintext, AAD).unwrap();
            let chars: Vec<char> = sealed.chars().collect();
            for i in 0..chars.len() {
                for replacement in ['A', 'B', 'Q', 'g', 'z', '0', '1', '-', '_', '.', '=', '/'] {
                    if chars[i] == replacement {
                        continue;
                    }
                    let mut altered = chars.clone();
                    altered[i] = replacement;
                    let altered: String = altered.into_iter().collect();
                    assert!(open(&key(), &altered, AAD).is_err(), "{altered}");
                }
            }
            for cut in 0..sealed.len() {
                assert!(open(&key(), &sealed[..cut], AAD).is_err(), "cut at {cut}");
            }
            assert!(open(&key(), &format!("{sealed}A"), AAD).is_err());
            assert!(open(&key(), &format!("{sealed}."), AAD).is_err());
        }
    }

    #[test]
    fn garbage_is_refused_without_panicking() {
        let id = key().id().to_string();
        let garbage = [
            String::new(),
            ".".into(),
            "..".into(),
            "v1..".into(),
            format!("v1.{id}."),
            format!("v1.{id}.AAAA"),
            format!("v1.{id}.{}", "A".repeat(53)),
            format!("v2.{id}.{}", "A".repeat(80)),
            format!("V1.{id}.{}", "A".repeat(80)),
            format!("v1.{}.{}", id.to_uppercase(), "A".repeat(80)),
            format!("v1.{id}.{}", "é".repeat(40)),
            format!("v1.{id}.{}.", "A".repeat(80)),
            "v1.zzzzzzzz.AAAA".into(),
            "\u{0}\u{ffff}".into(),
        ];
        for input in garbage {
            assert_eq!(
                open(&key(), &input, AAD),
                Err(OpenError::Corrupt),
                "{input:?}"
            );
        }
    }

    #[test]
    fn the_record_does_not_contain_the_plaintext_in_any_common_encoding() {
        let secret = *b"twenty byte secret!!";
        let sealed = seal(&key(), &secret, AAD).unwrap();
        let encodings = [
            String::from_utf8(secret.to_vec()).unwrap(),
            crate::security::totp::encode_secret(&secret),
            crate::security::totp::encode_secret(&secret).to_lowercase(),
            to_hex(&secret),
            Base64::encode_to_string(secret).unwrap(),
            Base64NoPadding::encode_to_string(secret).unwrap(),
            Base64UrlSafe::encode_to_string(secret).unwrap(),
            Base64UrlSafeNoPadding::encode_to_string(secret).unwrap(),
        ];
        for encoded in encodings {
            // Any 8-character window of it, not only the whole.
            for window in encoded.as_bytes().windows(8) {
                let window = std::str::from_utf8(window).unwrap();
                assert!(!sealed.contains(window), "{sealed} contains {window}");
            }
        }
    }
}
