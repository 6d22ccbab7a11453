//! Keys, sealing and blob ids.
//!
//! One random 32-byte master key per repository. Two subkeys are derived from it with BLAKE3's
//! key derivation (distinct context strings): the *encryption key* for XChaCha20-Poly1305 and the
//! *id key* for keyed BLAKE3 blob ids. A sealed object is `nonce (24) ‖ ciphertext ‖ tag (16)`
//! with a random nonce and associated data that binds what the object is.

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{Tag, XChaCha20Poly1305, XNonce};
use rand::RngCore;

use crate::error::{Error, Result};
use crate::id::Id;

/// Length of the random nonce that starts every sealed object.
pub const NONCE_LEN: usize = 24;
/// Length of the authentication tag that ends every sealed object.
pub const TAG_LEN: usize = 16;
/// Bytes a sealed object adds to its plaintext.
pub const OVERHEAD: usize = NONCE_LEN + TAG_LEN;

const ENCRYPTION_CONTEXT: &str = "cairn 2026-11 repository encryption key";
const ID_CONTEXT: &str = "cairn 2026-11 blob id key";
const CHUNKER_SEED_CONTEXT: &str = "cairn 2026-11 chunker gear seed";

/// The repository's master key and the subkeys derived from it.
#[derive(Clone)]
pub struct MasterKey {
    master: [u8; 32],
    cipher: XChaCha20Poly1305,
    id_key: [u8; 32],
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

impl MasterKey {
    /// A fresh random master key.
    pub fn random() -> Self {
        let mut master = [0u8; 32];
        rand::rng().fill_bytes(&mut master);
        Self::from_bytes(master)
    }

    /// The master key from its 32 raw bytes.
    pub fn from_bytes(master: [u8; 32]) -> Self {
        let enc = blake3::derive_key(ENCRYPTION_CONTEXT, &master);
        let id_key = blake3::derive_key(ID_CONTEXT, &master);
        Self {
            master,
            cipher: XChaCha20Poly1305::new(&enc.into()),
            id_key,
        }
    }

    /// The raw master key (only to be wrapped into a key slot).
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.master
    }

    /// The keyed BLAKE3 id of a blob's plaintext.
    pub fn blob_id(&self, plaintext: &[u8]) -> Id {
        Id(*blake3::keyed_hash(&self.id_key, plaintext).as_bytes())
    }

    /// A seed for the chunker's gear table, so chunk boundaries depend on the key.
    pub fn chunker_seed(&self) -> u64 {
        let k = blake3::derive_key(CHUNKER_SEED_CONTEXT, &self.master);
        u64::from_le_bytes(k[..8].try_into().expect("8 bytes"))
    }

    /// Seals `plaintext`, binding `aad`.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
        seal_with(&self.cipher, plaintext, aad)
    }

    /// Opens a sealed object; fails when it was altered or `aad` differs.
    ///
    /// # Errors
    /// [`crate::ErrorKind::Corrupt`] when the data is too short or does not authenticate.
    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        open_with(&self.cipher, sealed, aad)
    }
}

/// Seals with an explicit cipher (key slots use a password-derived one).
pub(crate) fn seal_with(cipher: &XChaCha20Poly1305, plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    rand::rng().fill_bytes(&mut nonce);
    let mut out = Vec::with_capacity(plaintext.len() + OVERHEAD);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(plaintext);
    let tag = cipher
        .encrypt_in_place_detached(XNonce::from_slice(&nonce), aad, &mut out[NONCE_LEN..])
        .expect("XChaCha20-Poly1305 encrypts any length a Vec can hold");
    out.extend_from_slice(&tag);
    out
}

/// Opens with an explicit cipher.
pub(crate) fn open_with(cipher: &XChaCha20Poly1305, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
    if sealed.len() < OVERHEAD {
        return Err(Error::corrupt(format!(
            "sealed data is {} bytes, shorter than the {OVERHEAD}-byte envelope",
            sealed.len()
        )));
    }
    let (nonce, rest) = sealed.split_at(NONCE_LEN);
    let (ct, tag) = rest.split_at(rest.len() - TAG_LEN);
    let mut out = ct.to_vec();
    cipher
        .decrypt_in_place_detached(
            XNonce::from_slice(nonce),
            aad,
            &mut out,
            Tag::from_slice(tag),
        )
        .map_err(|_| {
            Error::corrupt("data does not authenticate (altered, truncated or wrong key)")
        })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_and_tamper() {
        let k = MasterKey::random();
        let sealed = k.seal(b"hello", b"aad");
        assert_eq!(sealed.len(), 5 + OVERHEAD);
        assert_eq!(k.open(&sealed, b"aad").unwrap(), b"hello");
        assert!(k.open(&sealed, b"other").is_err());
        let mut bad = sealed.clone();
        bad[30] ^= 1;
        assert!(k.open(&bad, b"aad").is_err());
        assert!(k.open(&sealed[..10], b"aad").is_err());
        assert!(MasterKey::random().open(&sealed, b"aad").is_err());
    }

    #[test]
    fn blob_ids_are_keyed() {
        let a = MasterKey::random();
        let b = MasterKey::random();
        assert_eq!(a.blob_id(b"x"), a.blob_id(b"x"));
        assert_ne!(a.blob_id(b"x"), b.blob_id(b"x"));
        assert_ne!(a.blob_id(b"x"), Id::hash_of(b"x"));
    }
}
