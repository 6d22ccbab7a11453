//! Key slots (`keys/<id>`): the master key wrapped under a password-derived key.
//!
//! A slot is plain JSON (it must be readable before any key is known): who made it and when, the
//! argon2id parameters and salt, and `data` = `seal(master key)` under the argon2id output, with
//! `cairn/key-slot` as associated data. Its file name is the BLAKE3 hash of its bytes.

use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use jiff::Timestamp;
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::crypto::{Cipher, MasterKey};
use crate::error::{Error, ErrorKind, Result};

const AAD: &[u8] = b"cairn/key-slot";

/// argon2id cost parameters, stored per slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KdfParams {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes over memory.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl Default for KdfParams {
    /// 64 MiB, 3 passes, 1 lane: about 0.2 s on this class of machine.
    fn default() -> Self {
        Self {
            memory_kib: 64 * 1024,
            iterations: 3,
            parallelism: 1,
        }
    }
}

/// The key derivation of one slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Kdf {
    /// Always `argon2id`.
    pub algorithm: String,
    /// argon2 version (19 = 0x13).
    pub version: u32,
    /// Cost parameters.
    #[serde(flatten)]
    pub params: KdfParams,
    /// Random salt, base64.
    pub salt: String,
}

/// A key slot as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyFile {
    /// When the slot was made.
    pub created: Timestamp,
    /// Host that made it.
    pub hostname: String,
    /// User that made it.
    pub username: String,
    /// How the wrapping key is derived from the password.
    pub kdf: Kdf,
    /// The sealed master key, base64.
    pub data: String,
}

fn derive(password: &[u8], salt: &[u8], p: &KdfParams) -> Result<Cipher> {
    let params = Params::new(p.memory_kib, p.iterations, p.parallelism, Some(32))
        .map_err(|e| Error::corrupt(format!("key slot has invalid argon2id parameters: {e}")))?;
    let mut out = [0u8; 32];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(password, salt, &mut out)
        .map_err(|e| Error::corrupt(format!("argon2id failed: {e}")))?;
    Ok(Cipher::new(out))
}

impl KeyFile {
    /// Wraps `master` under `password`.
    ///
    /// # Errors
    /// When the KDF parameters are invalid.
    pub fn create(
        master: &MasterKey,
        password: &[u8],
        params: KdfParams,
        hostname: &str,
        username: &str,
    ) -> Result<Self> {
        let mut salt = [0u8; 16];
        rand::rng().fill_bytes(&mut salt);
        let cipher = derive(password, &salt, &params).map_err(|e| Error::invalid(e.to_string()))?;
        let data = cipher.seal(master.as_bytes(), AAD);
        Ok(Self {
            created: Timestamp::now(),
            hostname: hostname.to_owned(),
            username: username.to_owned(),
            kdf: Kdf {
                algorithm: "argon2id".into(),
                version: 0x13,
                params,
                salt: B64.encode(salt),
            },
            data: B64.encode(data),
        })
    }

    /// Unwraps the master key.
    ///
    /// # Errors
    /// [`ErrorKind::WrongPassword`] when the password does not open this slot;
    /// [`ErrorKind::Corrupt`] when the slot is malformed.
    pub fn open(&self, password: &[u8]) -> Result<MasterKey> {
        if self.kdf.algorithm != "argon2id" || self.kdf.version != 0x13 {
            return Err(Error::corrupt(format!(
                "key slot uses unsupported KDF {} v{}",
                self.kdf.algorithm, self.kdf.version
            )));
        }
        let salt = B64
            .decode(&self.kdf.salt)
            .map_err(|_| Error::corrupt("key slot salt is not base64"))?;
        let data = B64
            .decode(&self.data)
            .map_err(|_| Error::corrupt("key slot data is not base64"))?;
        let cipher = derive(password, &salt, &self.kdf.params)?;
        let raw = cipher
            .open(&data, AAD)
            .map_err(|_| Error::new(ErrorKind::WrongPassword, "wrong password"))?;
        let raw: [u8; 32] = raw
            .try_into()
            .map_err(|_| Error::corrupt("key slot holds a key of the wrong length"))?;
        Ok(MasterKey::from_bytes(raw))
    }

    /// Serialized bytes as stored.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("key file serializes")
    }

    /// Parses stored bytes.
    ///
    /// # Errors
    /// [`ErrorKind::Corrupt`] naming the slot.
    pub fn from_bytes(name: &str, data: &[u8]) -> Result<Self> {
        serde_json::from_slice(data)
            .map_err(|e| Error::corrupt(format!("key {name} does not parse")).with_source(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAST: KdfParams = KdfParams {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };

    #[test]
    fn wrap_and_unwrap() {
        let m = MasterKey::random();
        let kf = KeyFile::create(&m, b"pw", FAST, "h", "u").unwrap();
        let kf = KeyFile::from_bytes("k", &kf.to_bytes()).unwrap();
        assert_eq!(kf.open(b"pw").unwrap().as_bytes(), m.as_bytes());
        assert_eq!(
            kf.open(b"nope").unwrap_err().kind(),
            ErrorKind::WrongPassword
        );
    }
}
