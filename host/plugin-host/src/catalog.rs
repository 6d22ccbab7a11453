//! The plugin store: installed plugins kept by digest.
//!
//! Layout under the store directory (`CAIRN_PLUGIN_DIR`):
//! `blobs/<sha256>.wasm` holds each component once; `installed/<name>.toml` records an
//! installed plugin (its digest and manifest). Installing the same name again replaces the
//! record; a blob no record names any more is deleted.

use std::path::{Path, PathBuf};

use cairn_repo::{Error, ErrorKind, Result};
use serde::{Deserialize, Serialize};

use crate::manifest::Manifest;
use crate::runtime::{Plugin, Runtime};

/// An installed plugin.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Installed {
    /// `sha256:HEX` of the component.
    pub digest: String,
    /// Its manifest.
    pub manifest: Manifest,
}

/// The plugin store.
#[derive(Debug, Clone)]
pub struct PluginStore {
    dir: PathBuf,
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))?;
    let temp = dir.join(format!(".tmp-{}", std::process::id()));
    std::fs::write(&temp, bytes)
        .and_then(|()| std::fs::rename(&temp, path))
        .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))
}

impl PluginStore {
    /// The store in `dir` (created on first install).
    pub fn new(dir: impl Into<PathBuf>) -> PluginStore {
        PluginStore { dir: dir.into() }
    }

    /// Where it is.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn record(&self, name: &str) -> PathBuf {
        self.dir.join("installed").join(format!("{name}.toml"))
    }

    fn blob(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.dir.join("blobs").join(format!("{hex}.wasm"))
    }

    /// Checks and installs the component in `wasm` with `manifest`: it must be a component of
    /// a known world, the one its manifest names, importing only what cairn provides. Returns
    /// the loaded plugin (compiled, so its first use is fast) and the version it replaced.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] naming what is wrong; I/O errors naming the path.
    pub fn install(
        &self,
        runtime: &Runtime,
        wasm: &[u8],
        manifest: Manifest,
    ) -> Result<(Plugin, Option<Installed>)> {
        let plugin = runtime.load(wasm, manifest)?;
        let previous = self.get(&plugin.manifest.name).ok();
        write_atomic(&self.blob(&plugin.digest), wasm)?;
        let record = Installed {
            digest: plugin.digest.clone(),
            manifest: plugin.manifest.clone(),
        };
        let text = toml::to_string(&record)
            .map_err(|e| Error::invalid(format!("cannot record plugin: {e}")))?;
        write_atomic(&self.record(&plugin.manifest.name), text.as_bytes())?;
        if let Some(old) = &previous {
            self.drop_blob_if_unused(&old.digest)?;
        }
        Ok((plugin, previous))
    }

    /// Every installed plugin, by name.
    ///
    /// # Errors
    /// When the store cannot be read or holds a damaged record.
    pub fn list(&self) -> Result<Vec<Installed>> {
        let dir = self.dir.join("installed");
        let entries = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(format!("cannot read {}", dir.display()), e)),
        };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let file = entry.file_name().to_string_lossy().into_owned();
            if let Some(name) = file.strip_suffix(".toml").filter(|n| !n.starts_with('.')) {
                out.push(self.get(name)?);
            }
        }
        out.sort_by(|a, b| a.manifest.name.cmp(&b.manifest.name));
        Ok(out)
    }

    /// The installed plugin `name`.
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`] when none is installed under that name.
    pub fn get(&self, name: &str) -> Result<Installed> {
        let path = self.record(name);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::new(
                    ErrorKind::NotFound,
                    format!(
                        "no plugin `{name}` is installed in {} (see `cairn plugin list`; install \
                         one with `cairn plugin install FILE`)",
                        self.dir.display()
                    ),
                ));
            }
            Err(e) => return Err(Error::io(format!("cannot read {}", path.display()), e)),
        };
        toml::from_str(&text).map_err(|e| {
            Error::corrupt(format!(
                "damaged plugin record {}: {}",
                path.display(),
                e.message()
            ))
        })
    }

    /// Loads installed plugin `name`, checking the stored component against its digest.
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`] when it is not installed, [`ErrorKind::Corrupt`] when its file
    /// was changed.
    pub fn load(&self, runtime: &Runtime, name: &str) -> Result<Plugin> {
        let installed = self.get(name)?;
        let path = self.blob(&installed.digest);
        let wasm = std::fs::read(&path).map_err(|e| {
            Error::io(
                format!("cannot read plugin `{name}` ({})", path.display()),
                e,
            )
        })?;
        let digest = crate::runtime::digest(&wasm);
        if digest != installed.digest {
            return Err(Error::corrupt(format!(
                "plugin `{name}`: {} does not match its digest {}; reinstall it",
                path.display(),
                installed.digest
            )));
        }
        runtime.load_digested(&wasm, digest, installed.manifest)
    }

    /// Removes installed plugin `name`.
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`] when it is not installed.
    pub fn remove(&self, name: &str) -> Result<Installed> {
        let installed = self.get(name)?;
        let path = self.record(name);
        std::fs::remove_file(&path)
            .map_err(|e| Error::io(format!("cannot remove {}", path.display()), e))?;
        self.drop_blob_if_unused(&installed.digest)?;
        Ok(installed)
    }

    fn drop_blob_if_unused(&self, digest: &str) -> Result<()> {
        if self.list()?.iter().any(|i| i.digest == digest) {
            return Ok(());
        }
        match std::fs::remove_file(self.blob(digest)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(
                format!("cannot remove {}", self.blob(digest).display()),
                e,
            )),
            _ => Ok(()),
        }
    }
}
