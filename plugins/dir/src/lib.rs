//! A repository in a local directory: the host mounts the directory the operator configured
//! (`path`) at `/repo`, read-write, and nothing else. The layout is the native local backend's
//! (`config`, `keys/`, `snapshots/`, `index/`, `locks/`, `data/xx/`), so either can open it.
//!
//! A write goes to a temporary file in the same directory, is synced, then hard-linked to its
//! name: link(2) fails when the name exists, so create-only is atomic even between processes.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use cairn_sdk::storage::{Entry, Guarantees, Kind, Storage, dir};
use cairn_sdk::{Config, Error, Result};

const ROOT: &str = "/repo";

struct Dir {
    root: PathBuf,
}

fn io(what: impl std::fmt::Display, e: std::io::Error) -> Error {
    match e.kind() {
        ErrorKind::NotFound => Error::NotFound(format!("{what}: {e}")),
        ErrorKind::AlreadyExists => Error::AlreadyExists(format!("{what}: {e}")),
        ErrorKind::PermissionDenied => Error::Denied(format!("{what}: {e}")),
        _ => Error::Other(format!("{what}: {e}")),
    }
}

impl Dir {
    fn folder(&self, kind: Kind, name: &str) -> PathBuf {
        match kind {
            Kind::Config => self.root.clone(),
            Kind::Pack => self.root.join("data").join(name.get(..2).unwrap_or("xx")),
            _ => self.root.join(dir(kind)),
        }
    }

    fn path(&self, kind: Kind, name: &str) -> Result<PathBuf> {
        if kind == Kind::Config {
            return Ok(self.root.join("config"));
        }
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::InvalidConfig(format!(
                "`{name}` is not a valid file name"
            )));
        }
        Ok(self.folder(kind, name).join(name))
    }

    fn temp_name(&self, kind: Kind, name: &str) -> PathBuf {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let hint = name.get(..8).unwrap_or(name);
        let folder = match kind {
            Kind::Config => self.root.clone(),
            _ => self.root.join(dir(kind)),
        };
        folder.join(format!(".tmp-{hint}-{nanos:x}{n:x}"))
    }
}

impl Storage for Dir {
    fn open(config: Config) -> Result<Self> {
        // The host mounted `path` at /repo; the value itself is the host's business.
        config.require("path")?;
        Ok(Dir {
            root: PathBuf::from(ROOT),
        })
    }

    fn guarantees(&self) -> Guarantees {
        Guarantees {
            atomic_create: true,
        }
    }

    fn create(&self) -> Result<()> {
        if self.root.join("config").exists() {
            return Err(Error::AlreadyExists(
                "the directory already holds a repository".into(),
            ));
        }
        let mut dirs: Vec<PathBuf> = ["keys", "snapshots", "index", "locks", "data"]
            .iter()
            .map(|d| self.root.join(d))
            .collect();
        dirs.extend((0..=255u8).map(|i| self.root.join("data").join(format!("{i:02x}"))));
        for d in dirs {
            fs::create_dir_all(&d).map_err(|e| io(format!("cannot create {}", d.display()), e))?;
        }
        Ok(())
    }

    fn list(&self, kind: Kind) -> Result<Vec<Entry>> {
        if kind == Kind::Config {
            return Ok(match fs::metadata(self.root.join("config")) {
                Ok(m) => vec![Entry {
                    name: "config".into(),
                    size: m.len(),
                }],
                Err(_) => Vec::new(),
            });
        }
        let top = self.root.join(dir(kind));
        let folders = if kind == Kind::Pack {
            match fs::read_dir(&top) {
                Ok(rd) => rd
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| p.is_dir())
                    .collect(),
                Err(e) if e.kind() == ErrorKind::NotFound => Vec::new(),
                Err(e) => return Err(io(format!("cannot list {}", top.display()), e)),
            }
        } else {
            vec![top]
        };
        let mut out = Vec::new();
        for folder in folders {
            let rd = match fs::read_dir(&folder) {
                Ok(rd) => rd,
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(io(format!("cannot list {}", folder.display()), e)),
            };
            for entry in rd.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') {
                    continue;
                }
                let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
                out.push(Entry { name, size });
            }
        }
        Ok(out)
    }

    fn read(&self, kind: Kind, name: &str, offset: u64, length: Option<u64>) -> Result<Vec<u8>> {
        let path = self.path(kind, name)?;
        let mut file = File::open(&path).map_err(|e| io(format!("cannot open {name}"), e))?;
        let mut buf = Vec::new();
        match length {
            None => {
                file.read_to_end(&mut buf)
                    .map_err(|e| io(format!("cannot read {name}"), e))?;
            }
            Some(n) => {
                file.seek(SeekFrom::Start(offset))
                    .map_err(|e| io(format!("cannot read {name}"), e))?;
                buf.reserve(usize::try_from(n).unwrap_or(0));
                file.take(n)
                    .read_to_end(&mut buf)
                    .map_err(|e| io(format!("cannot read {name}"), e))?;
            }
        }
        Ok(buf)
    }

    fn write(&self, kind: Kind, name: &str, data: Vec<u8>) -> Result<()> {
        let path = self.path(kind, name)?;
        let temp = self.temp_name(kind, name);
        let result = (|| {
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&temp)
                .map_err(|e| io(format!("cannot create a temporary file for {name}"), e))?;
            file.write_all(&data)
                .and_then(|()| file.sync_all())
                .map_err(|e| io(format!("cannot write {name}"), e))?;
            fs::hard_link(&temp, &path).map_err(|e| io(format!("cannot store {name}"), e))
        })();
        let _ = fs::remove_file(&temp);
        result
    }

    fn remove(&self, kind: Kind, name: &str) -> Result<()> {
        let path = self.path(kind, name)?;
        fs::remove_file(&path).map_err(|e| io(format!("cannot remove {name}"), e))
    }
}

cairn_sdk::export_storage!(Dir);
