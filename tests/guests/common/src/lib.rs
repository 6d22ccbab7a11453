//! An in-memory store whose `list(lock)` does whatever a test guest was written to do wrong.
//! Every other call behaves, so a test can show the host serving the next call.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::marker::PhantomData;

use cairn_sdk::storage::{Entry, Guarantees, Kind, Storage};
use cairn_sdk::{Config, Error, Result};

/// The misbehaviour.
pub trait Twist: 'static {
    /// Runs instead of listing locks.
    fn list_locks(config: &Config) -> Result<Vec<Entry>>;

    /// Post-processes a ranged read (garbage answers).
    fn ranged(data: Vec<u8>) -> Vec<u8> {
        data
    }
}

/// The store.
pub struct Mem<T> {
    config: Config,
    files: RefCell<BTreeMap<(u8, String), Vec<u8>>>,
    twist: PhantomData<T>,
}

impl<T: Twist> Storage for Mem<T> {
    fn open(config: Config) -> Result<Self> {
        Ok(Mem {
            config,
            files: RefCell::default(),
            twist: PhantomData,
        })
    }

    fn guarantees(&self) -> Guarantees {
        Guarantees {
            atomic_create: true,
        }
    }

    fn create(&self) -> Result<()> {
        Ok(())
    }

    fn list(&self, kind: Kind) -> Result<Vec<Entry>> {
        if kind == Kind::Lock {
            return T::list_locks(&self.config);
        }
        Ok(self
            .files
            .borrow()
            .iter()
            .filter(|((k, _), _)| *k == kind as u8)
            .map(|((_, name), data)| Entry {
                name: name.clone(),
                size: data.len() as u64,
            })
            .collect())
    }

    fn read(&self, kind: Kind, name: &str, offset: u64, length: Option<u64>) -> Result<Vec<u8>> {
        let files = self.files.borrow();
        let data = files
            .get(&(kind as u8, name.to_owned()))
            .ok_or_else(|| Error::NotFound(format!("{name} does not exist")))?;
        let part = cairn_sdk::storage::slice(data, offset, length).to_vec();
        Ok(if length.is_some() {
            T::ranged(part)
        } else {
            part
        })
    }

    fn write(&self, kind: Kind, name: &str, data: Vec<u8>) -> Result<()> {
        let mut files = self.files.borrow_mut();
        let key = (kind as u8, name.to_owned());
        if files.contains_key(&key) {
            return Err(Error::AlreadyExists(format!("{name} exists")));
        }
        files.insert(key, data);
        Ok(())
    }

    fn remove(&self, kind: Kind, name: &str) -> Result<()> {
        match self
            .files
            .borrow_mut()
            .remove(&(kind as u8, name.to_owned()))
        {
            Some(_) => Ok(()),
            None => Err(Error::NotFound(format!("{name} does not exist"))),
        }
    }
}
