//! cairn-testing: test support for cairn crates.
//!
//! [`InMemoryBackend`] stores a repository in memory (create-only like every backend);
//! [`fixture`] builds directory trees holding every kind of entry the format records;
//! [`faulty::FaultyBackend`] wraps any backend and injects the faults of an unreliable store;
//! [`alloc::TrackingAllocator`] measures the largest allocation a decoder asks for;
//! [`kube::FakeKube`] and [`nomad::FakeNomad`] are fake Kubernetes and Nomad APIs for the
//! cluster integration.

pub mod alloc;
pub mod faulty;
pub mod fixture;
pub mod kube;
pub mod nomad;
mod serving;
pub mod tls;

use std::collections::BTreeMap;
use std::sync::Mutex;

use cairn_repo::{Backend, Error, ErrorKind, FileType, Guarantees, Result};

/// A repository held in memory.
#[derive(Debug, Default)]
pub struct InMemoryBackend {
    files: Mutex<BTreeMap<(FileType, String), Vec<u8>>>,
}

impl InMemoryBackend {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Changes a stored file in place (for corruption tests).
    pub fn tamper(&self, tpe: FileType, name: &str, f: impl FnOnce(&mut Vec<u8>)) {
        f(self
            .files
            .lock()
            .expect("store lock")
            .get_mut(&(tpe, name.to_owned()))
            .expect("file to tamper with exists"));
    }
}

fn not_found(tpe: FileType, name: &str) -> Error {
    Error::new(ErrorKind::NotFound, format!("{tpe} {name} does not exist"))
}

impl Backend for InMemoryBackend {
    fn location(&self) -> String {
        "memory".into()
    }

    fn guarantees(&self) -> Guarantees {
        Guarantees {
            atomic_create: true,
        }
    }

    fn create(&self) -> Result<()> {
        if self.files.lock().expect("store lock").is_empty() {
            Ok(())
        } else {
            Err(Error::invalid("memory store is not empty"))
        }
    }

    fn list(&self, tpe: FileType) -> Result<Vec<(String, u64)>> {
        Ok(self
            .files
            .lock()
            .expect("store lock")
            .iter()
            .filter(|((t, _), _)| *t == tpe)
            .map(|((_, n), d)| (n.clone(), d.len() as u64))
            .collect())
    }

    fn read(&self, tpe: FileType, name: &str) -> Result<Vec<u8>> {
        self.files
            .lock()
            .expect("store lock")
            .get(&(tpe, name.to_owned()))
            .cloned()
            .ok_or_else(|| not_found(tpe, name))
    }

    fn read_range(&self, tpe: FileType, name: &str, offset: u64, length: u64) -> Result<Vec<u8>> {
        let data = self.read(tpe, name)?;
        data.get(offset as usize..(offset + length) as usize)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| Error::corrupt(format!("{tpe} {name} is truncated")))
    }

    fn write(&self, tpe: FileType, name: &str, data: &[u8]) -> Result<()> {
        let mut files = self.files.lock().expect("store lock");
        let key = (tpe, name.to_owned());
        if files.contains_key(&key) {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                format!("{tpe} {name} already exists"),
            ));
        }
        files.insert(key, data.to_vec());
        Ok(())
    }

    fn remove(&self, tpe: FileType, name: &str) -> Result<()> {
        self.files
            .lock()
            .expect("store lock")
            .remove(&(tpe, name.to_owned()))
            .map(|_| ())
            .ok_or_else(|| not_found(tpe, name))
    }
}
