//! Keys, sealing and blob ids.
//!
//! One random 32-byte master key per repository. Two subkeys are derived from it with BLAKE3's
//! key derivation (distinct context strings): the *encryption key* for XChaCha20-Poly1305 and the
//! *id key* for keyed BLAKE3 blob ids. A sealed object is `nonce (24) ‖ ciphertext ‖ tag (16)`
//! with a random nonce and associated data that binds what the object is.

use chacha20::cipher::consts::U10;
use rand::RngCore;
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};

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
    cipher: Cipher,
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
            cipher: Cipher::new(enc),
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
        self.cipher.seal(plaintext, aad)
    }

    /// Opens a sealed object; fails when it was altered or `aad` differs.
    ///
    /// # Errors
    /// [`crate::ErrorKind::Corrupt`] when the data is too short or does not authenticate.
    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        self.cipher.open(sealed, aad)
    }

    /// As [`MasterKey::open`], decrypting in `sealed` itself; returns the plaintext within it.
    ///
    /// # Errors
    /// As [`MasterKey::open`]; `sealed` then holds garbage.
    pub fn open_in_place<'a>(&self, sealed: &'a mut [u8], aad: &[u8]) -> Result<&'a mut [u8]> {
        self.cipher.open_in_place(sealed, aad)
    }
}

/// XChaCha20-Poly1305 as draft-irtf-cfrg-xchacha-03 builds it: HChaCha20 turns the key and the
/// nonce's first 16 bytes into a subkey, and ChaCha20-Poly1305 (RFC 8439) seals with that subkey
/// and the nonce's last 8 bytes. The RFC 8439 step is ring's assembly (about 2.3× the portable
/// `chacha20poly1305` crate on this project's machines; the bytes are the same, see the tests).
#[derive(Clone)]
pub(crate) struct Cipher {
    key: [u8; 32],
}

impl Cipher {
    pub(crate) fn new(key: [u8; 32]) -> Self {
        Self { key }
    }

    /// The RFC 8439 key and nonce for one 24-byte nonce.
    fn inner(&self, nonce: &[u8; NONCE_LEN]) -> (LessSafeKey, Nonce) {
        let (head, tail) = nonce.split_at(16);
        let sub = chacha20::hchacha::<U10>(&self.key.into(), head.into());
        let key = LessSafeKey::new(
            UnboundKey::new(&CHACHA20_POLY1305, &sub).expect("a 32-byte ChaCha20 key"),
        );
        let mut n = [0u8; 12];
        n[4..].copy_from_slice(tail);
        (key, Nonce::assume_unique_for_key(n))
    }

    /// `nonce (24, random) ‖ ciphertext ‖ tag (16)`, binding `aad`.
    pub(crate) fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let mut out = Vec::with_capacity(plaintext.len() + OVERHEAD);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plaintext);
        let (key, n) = self.inner(&nonce);
        let tag = key
            .seal_in_place_separate_tag(n, Aad::from(aad), &mut out[NONCE_LEN..])
            .expect("ChaCha20-Poly1305 seals any length below 256 GiB");
        out.extend_from_slice(tag.as_ref());
        out
    }

    /// The plaintext of what [`Cipher::seal`] made with this key and `aad`.
    pub(crate) fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        let mut out = sealed.to_vec();
        let len = self.open_in_place(&mut out, aad)?.len();
        out.drain(..NONCE_LEN);
        out.truncate(len);
        Ok(out)
    }

    /// As [`Cipher::open`], decrypting in `sealed` itself; returns the plaintext within it.
    pub(crate) fn open_in_place<'a>(
        &self,
        sealed: &'a mut [u8],
        aad: &[u8],
    ) -> Result<&'a mut [u8]> {
        let len = sealed.len();
        let Some((nonce, rest)) = sealed
            .split_first_chunk_mut::<NONCE_LEN>()
            .filter(|(_, rest)| rest.len() >= TAG_LEN)
        else {
            return Err(Error::corrupt(format!(
                "sealed data is {len} bytes, shorter than the {OVERHEAD}-byte envelope"
            )));
        };
        let (key, n) = self.inner(nonce);
        key.open_in_place(n, Aad::from(aad), rest).map_err(|_| {
            Error::corrupt("data does not authenticate (altered, truncated or wrong key)")
        })
    }
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

    /// The sealing is XChaCha20-Poly1305 byte for byte: RustCrypto's implementation opens what
    /// ours seals and the other way round, for lengths around the block and tag boundaries.
    #[test]
    fn sealing_is_xchacha20_poly1305() {
        use chacha20poly1305::aead::{AeadInPlace, KeyInit};
        use chacha20poly1305::{Tag, XChaCha20Poly1305, XNonce};
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        let ours = Cipher::new(key);
        let theirs = XChaCha20Poly1305::new(&key.into());
        for len in [0, 1, 15, 16, 63, 64, 65, 255, 256, 1000, 4096, 70_000] {
            let mut plain = vec![0u8; len];
            rand::rng().fill_bytes(&mut plain);
            let sealed = ours.seal(&plain, b"aad");
            let (nonce, rest) = sealed.split_at(NONCE_LEN);
            let (ct, tag) = rest.split_at(rest.len() - TAG_LEN);
            let mut buf = ct.to_vec();
            theirs
                .decrypt_in_place_detached(
                    XNonce::from_slice(nonce),
                    b"aad",
                    &mut buf,
                    Tag::from_slice(tag),
                )
                .unwrap();
            assert_eq!(buf, plain, "RustCrypto opens ours, {len} bytes");
            let mut buf = plain.clone();
            let tag = theirs
                .encrypt_in_place_detached(XNonce::from_slice(nonce), b"aad", &mut buf)
                .unwrap();
            assert_eq!(
                [nonce, &buf, &tag].concat(),
                sealed,
                "same bytes, {len} bytes"
            );
            assert_eq!(ours.open(&sealed, b"aad").unwrap(), plain);
        }
    }

    /// A published test vector (draft-irtf-cfrg-xchacha-03, appendix A.3.1).
    #[test]
    fn xchacha_test_vector() {
        let hex = |s: &str| hex::decode(s).unwrap();
        let key: [u8; 32] = hex("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f")
            .try_into()
            .unwrap();
        let plain = b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.";
        let aad = hex("50515253c0c1c2c3c4c5c6c7");
        let mut sealed = hex("404142434445464748494a4b4c4d4e4f5051525354555657");
        sealed.extend(hex(concat!(
            "bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb",
            "731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b452",
            "2f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff9",
            "21f9664c97637da9768812f615c68b13b52e",
            "c0875924c1c7987947deafd8780acf49"
        )));
        let c = Cipher::new(key);
        assert_eq!(c.open(&sealed, &aad).unwrap(), plain);
        let mut bad = sealed.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert!(c.open(&bad, &aad).is_err());
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
