//! Key slots (`keys/<id>`): the master key wrapped under a password-derived key.
//!
//! A slot is plain JSON (it must be readable before any key is known): who made it and when, the
//! argon2id parameters and salt, and `data` = `seal(master key)` under the argon2id output, with
//! `cairn/key-slot` as associated data. Its file name is the BLAKE3 hash of its bytes.
//!
//! Anyone who can write to the store can plant a slot, so its parameters are not trusted:
//! [`KdfLimits`] bounds what a slot may cost before it is tried, and
//! [`KeyFile::open_cancellable`] runs the derivation on a thread of its own so that the caller
//! can give up on it (Ctrl-C, SIGTERM).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{RecvTimeoutError, sync_channel};
use std::time::Duration;

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

impl KdfParams {
    /// The work of one derivation: KiB of memory times passes over it (time grows with it).
    pub fn work(&self) -> u64 {
        u64::from(self.memory_kib) * u64::from(self.iterations)
    }
}

impl std::fmt::Display for KdfParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} KiB of memory, {} passes, {} lanes",
            self.memory_kib, self.iterations, self.parallelism
        )
    }
}

/// The most a key slot's argon2id may cost before cairn tries it. A slot planted by someone
/// without the password could otherwise ask for terabytes of memory (the process aborts) or
/// billions of passes (it hangs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct KdfLimits {
    /// Most memory, KiB.
    pub max_memory_kib: u32,
    /// Most work: memory in KiB times passes ([`KdfParams::work`]).
    pub max_work: u64,
    /// Most lanes.
    pub max_parallelism: u32,
}

impl KdfLimits {
    /// The default limits: 1 GiB of memory, 4 GiB of work (1 GiB × 4 passes, 256 MiB × 16,
    /// 64 MiB × 64; the default slot is 64 MiB × 3), 16 lanes. Each slot within them takes
    /// at most a few seconds.
    pub const DEFAULT: Self = Self {
        max_memory_kib: 1024 * 1024,
        max_work: 4 * 1024 * 1024,
        max_parallelism: 16,
    };

    /// No limits (every slot is tried, however costly).
    pub const UNLIMITED: Self = Self {
        max_memory_kib: u32::MAX,
        max_work: u64::MAX,
        max_parallelism: u32::MAX,
    };

    /// Why `p` is beyond these limits, or `None` when it is within them.
    pub fn exceeded_by(&self, p: &KdfParams) -> Option<String> {
        if p.memory_kib > self.max_memory_kib {
            Some(format!(
                "more memory than the limit of {} KiB",
                self.max_memory_kib
            ))
        } else if p.work() > self.max_work {
            Some(format!(
                "more work (memory in KiB times passes) than the limit of {}",
                self.max_work
            ))
        } else if p.parallelism > self.max_parallelism {
            Some(format!(
                "more lanes than the limit of {}",
                self.max_parallelism
            ))
        } else {
            None
        }
    }
}

impl Default for KdfLimits {
    fn default() -> Self {
        Self::DEFAULT
    }
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

/// As [`derive`], on a thread of its own, giving up when `cancel` is set. The thread then runs
/// on until the derivation ends (argon2 cannot be stopped midway) and its result is dropped;
/// the caller is free at once.
fn derive_cancellable(
    password: &[u8],
    salt: &[u8],
    p: &KdfParams,
    cancel: &AtomicBool,
) -> Result<Cipher> {
    let (tx, rx) = sync_channel(1);
    let (password, salt, p) = (password.to_vec(), salt.to_vec(), *p);
    std::thread::Builder::new()
        .name("cairn-kdf".into())
        .spawn(move || {
            let _ = tx.send(derive(&password, &salt, &p));
        })
        .map_err(|e| Error::new(ErrorKind::Io, "cannot start the key derivation").with_source(e))?;
    loop {
        if cancel.load(Ordering::Relaxed) {
            return Err(Error::new(
                ErrorKind::Interrupted,
                "opening the repository was cancelled during the key derivation",
            ));
        }
        match rx.recv_timeout(Duration::from_millis(20)) {
            Ok(r) => return r,
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                return Err(Error::corrupt(
                    "the key derivation stopped without a result",
                ));
            }
        }
    }
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
        let (salt, data) = self.decode()?;
        self.unseal(&derive(password, &salt, &self.kdf.params)?, &data)
    }

    /// As [`KeyFile::open`], with the derivation on a thread of its own that the caller stops
    /// waiting for as soon as `cancel` is set.
    ///
    /// # Errors
    /// As [`KeyFile::open`]; [`ErrorKind::Interrupted`] when cancelled.
    pub fn open_cancellable(&self, password: &[u8], cancel: &AtomicBool) -> Result<MasterKey> {
        let (salt, data) = self.decode()?;
        self.unseal(
            &derive_cancellable(password, &salt, &self.kdf.params, cancel)?,
            &data,
        )
    }

    /// The salt and the sealed key, once the KDF is known.
    fn decode(&self) -> Result<(Vec<u8>, Vec<u8>)> {
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
        Ok((salt, data))
    }

    fn unseal(&self, cipher: &Cipher, data: &[u8]) -> Result<MasterKey> {
        let raw = cipher
            .open(data, AAD)
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
        let no = AtomicBool::new(false);
        assert_eq!(
            kf.open_cancellable(b"pw", &no).unwrap().as_bytes(),
            m.as_bytes()
        );
    }

    /// The planted slots of the hardening issue (2^32 passes; 4 TiB) are beyond the default
    /// limits, the default slot and the cheapest ones within them.
    #[test]
    fn limits_refuse_what_hangs_or_aborts() {
        let l = KdfLimits::DEFAULT;
        let passes = KdfParams {
            iterations: u32::MAX,
            ..FAST
        };
        let memory = KdfParams {
            memory_kib: u32::MAX,
            ..FAST
        };
        let lanes = KdfParams {
            memory_kib: 1024 * 1024,
            iterations: 1,
            parallelism: 1024,
        };
        for p in [passes, memory, lanes] {
            assert!(l.exceeded_by(&p).is_some(), "{p}");
            assert!(KdfLimits::UNLIMITED.exceeded_by(&p).is_none(), "{p}");
        }
        for p in [FAST, KdfParams::default()] {
            assert_eq!(l.exceeded_by(&p), None, "{p}");
        }
    }

    /// A derivation of many seconds gives up as soon as the flag is set (the worker then runs
    /// to its end, so the test keeps it to seconds, not hours).
    #[test]
    fn a_slow_derivation_is_cancellable() {
        let slow = KdfParams {
            memory_kib: 8 * 1024,
            iterations: 1000,
            parallelism: 1,
        };
        let mut kf = KeyFile::create(&MasterKey::random(), b"pw", FAST, "h", "u").unwrap();
        kf.kdf.params = slow;
        let cancel = std::sync::Arc::new(AtomicBool::new(false));
        let flag = cancel.clone();
        let setter = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            flag.store(true, Ordering::Relaxed);
        });
        let start = std::time::Instant::now();
        let e = kf.open_cancellable(b"pw", &cancel).unwrap_err();
        setter.join().unwrap();
        assert_eq!(e.kind(), ErrorKind::Interrupted, "{e}");
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{:?}",
            start.elapsed()
        );
    }
}
