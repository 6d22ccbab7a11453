//! The plugin store: installed plugins kept by digest.
//!
//! Layout under the store directory (`CAIRN_PLUGIN_DIR`):
//! `blobs/<sha256>.wasm` holds each component once; `installed/<name>.toml` records an
//! installed plugin (its digest and manifest). Installing the same name again replaces the
//! record; a blob no record names any more is deleted.
//!
//! Beside the installed ones, the store holds the plugins built into cairn ([`Builtin`]).
//! A name that is built in means the built-in plugin; an installed plugin of that name is
//! used instead only when it was installed with `override_builtin` (asked for by the
//! operator). Installing the very component that is built in records nothing.

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
    /// Installed to be used instead of the built-in plugin of the same name.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub override_builtin: bool,
    /// Where it comes from (not recorded: known from where it was found).
    #[serde(skip)]
    pub source: Source,
}

/// Where a plugin comes from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Source {
    /// Installed in the store.
    #[default]
    Installed,
    /// Built into cairn.
    Builtin,
    /// Installed, but the built-in plugin of its name is the one used (it was not installed
    /// to override it).
    Shadowed,
}

impl Source {
    /// Its name in listings: `installed`, `builtin`, `shadowed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Installed => "installed",
            Source::Builtin => "builtin",
            Source::Shadowed => "shadowed",
        }
    }
}

/// A plugin built into cairn: its component and manifest.
#[derive(Debug, Clone, Copy)]
pub struct Builtin {
    /// Its name.
    pub name: &'static str,
    /// The component.
    pub wasm: &'static [u8],
    /// Its manifest (TOML).
    pub manifest: &'static str,
}

/// The built-in plugins of this build, and the first-party plugins it lacks (and why).
#[derive(Debug, Clone, Default)]
pub struct Builtins {
    /// The built-in plugins.
    pub plugins: Vec<Builtin>,
    /// First-party plugins this build does not carry.
    pub lacking: Vec<&'static str>,
    /// Why it lacks them.
    pub why: &'static str,
}

/// The plugin store.
#[derive(Debug, Clone)]
pub struct PluginStore {
    dir: Option<PathBuf>,
    builtins: std::sync::Arc<Builtins>,
    /// Each built-in plugin's listing entry (its digest and parsed manifest), worked out
    /// once, in the order of `builtins.plugins`.
    entries: std::sync::Arc<std::sync::OnceLock<Vec<std::result::Result<Installed, String>>>>,
}

/// What [`PluginStore::install`] did.
pub struct Install {
    /// The plugin, compiled.
    pub plugin: Plugin,
    /// The installed version it replaced.
    pub replaced: Option<Installed>,
    /// False when the component is the built-in plugin itself: nothing was recorded.
    pub recorded: bool,
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
    /// The store in `dir` (created on first install), with no built-in plugins.
    pub fn new(dir: impl Into<PathBuf>) -> PluginStore {
        PluginStore {
            dir: Some(dir.into()),
            builtins: std::sync::Arc::default(),
            entries: std::sync::Arc::default(),
        }
    }

    /// Only `builtins`: no directory, nothing can be installed.
    pub fn builtin_only(builtins: Builtins) -> PluginStore {
        PluginStore {
            dir: None,
            builtins: std::sync::Arc::new(builtins),
            entries: std::sync::Arc::default(),
        }
    }

    /// The same store, with `builtins`.
    #[must_use]
    pub fn with_builtins(mut self, builtins: Builtins) -> PluginStore {
        self.builtins = std::sync::Arc::new(builtins);
        self.entries = std::sync::Arc::default();
        self
    }

    /// Where it is (`None`: built-in plugins only).
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// The built-in plugins, and what this build lacks.
    pub fn builtins(&self) -> &Builtins {
        &self.builtins
    }

    fn builtin(&self, name: &str) -> Option<&Builtin> {
        self.builtins.plugins.iter().find(|b| b.name == name)
    }

    fn installed_dir(&self) -> Result<&Path> {
        self.dir.as_deref().ok_or_else(|| {
            Error::invalid(
                "no plugin store is set (--plugin-dir or CAIRN_PLUGIN_DIR): only the built-in \
                 plugins can be used",
            )
        })
    }

    fn record(&self, name: &str) -> Result<PathBuf> {
        Ok(self
            .installed_dir()?
            .join("installed")
            .join(format!("{name}.toml")))
    }

    fn blob(&self, digest: &str) -> Result<PathBuf> {
        let hex = digest.trim_start_matches("sha256:");
        Ok(self
            .installed_dir()?
            .join("blobs")
            .join(format!("{hex}.wasm")))
    }

    /// The built-in plugin `name` as a listing entry (digest and manifest worked out once).
    fn builtin_entry(&self, name: &str) -> Option<Result<Installed>> {
        let entries = self.entries.get_or_init(|| {
            self.builtins
                .plugins
                .iter()
                .map(|b| {
                    let manifest = Manifest::parse(b.manifest)
                        .map_err(|e| format!("the built-in plugin `{}`: {e}", b.name))?;
                    Ok(Installed {
                        digest: crate::runtime::digest(b.wasm),
                        manifest,
                        override_builtin: false,
                        source: Source::Builtin,
                    })
                })
                .collect()
        });
        let at = self.builtins.plugins.iter().position(|b| b.name == name)?;
        Some(entries[at].clone().map_err(Error::corrupt))
    }

    /// Checks and installs the component in `wasm` with `manifest`: it must be a component of
    /// a known world, the one its manifest names, importing only what cairn provides. A
    /// name that is built in takes `override_builtin` (the installed one is then used
    /// instead), unless the component is the built-in one (then nothing is recorded).
    /// Returns the loaded plugin (compiled, so its first use is fast) and the version it
    /// replaced.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] naming what is wrong; I/O errors naming the path.
    pub fn install(
        &self,
        runtime: &Runtime,
        wasm: &[u8],
        manifest: Manifest,
        override_builtin: bool,
    ) -> Result<Install> {
        let plugin = runtime.load(wasm, manifest)?;
        let name = plugin.manifest.name.clone();
        if override_builtin && self.builtin(&name).is_none() {
            return Err(Error::invalid(format!(
                "--override-builtin: no plugin `{name}` is built in; install it without the flag"
            )));
        }
        if let Some(entry) = self.builtin_entry(&name)
            && !override_builtin
        {
            let builtin = entry?.digest;
            if builtin == plugin.digest {
                // The built-in component itself: an override installed before goes, and the
                // built-in plugin is used again.
                let replaced = self.installed(&name)?;
                if replaced.is_some() {
                    self.remove(&name)?;
                }
                return Ok(Install {
                    plugin,
                    replaced,
                    recorded: false,
                });
            }
            return Err(Error::invalid(format!(
                "plugin `{name}` is built into cairn ({builtin}) and this component differs \
                 ({}); to use it instead of the built-in one, install it with \
                 --override-builtin",
                plugin.digest
            )));
        }
        let replaced = self.installed(&name)?;
        write_atomic(&self.blob(&plugin.digest)?, wasm)?;
        let record = Installed {
            digest: plugin.digest.clone(),
            manifest: plugin.manifest.clone(),
            override_builtin,
            source: Source::Installed,
        };
        let text = toml::to_string(&record)
            .map_err(|e| Error::invalid(format!("cannot record plugin: {e}")))?;
        write_atomic(&self.record(&name)?, text.as_bytes())?;
        if let Some(old) = &replaced {
            self.drop_blob_if_unused(&old.digest)?;
        }
        Ok(Install {
            plugin,
            replaced,
            recorded: true,
        })
    }

    /// Every plugin, by name: the built-in ones and the installed ones (an installed one
    /// that a built-in one shadows is listed too, as [`Source::Shadowed`]).
    ///
    /// # Errors
    /// When the store cannot be read or holds a damaged record.
    pub fn list(&self) -> Result<Vec<Installed>> {
        let mut out = Vec::new();
        if let Some(root) = &self.dir {
            let dir = root.join("installed");
            let entries: Vec<_> = match std::fs::read_dir(&dir) {
                Ok(rd) => rd.flatten().collect(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
                Err(e) => return Err(Error::io(format!("cannot read {}", dir.display()), e)),
            };
            for entry in entries {
                let file = entry.file_name().to_string_lossy().into_owned();
                if let Some(name) = file.strip_suffix(".toml").filter(|n| !n.starts_with('.'))
                    && let Some(mut i) = self.installed(name)?
                {
                    if self.builtin(name).is_some() && !i.override_builtin {
                        i.source = Source::Shadowed;
                    }
                    out.push(i);
                }
            }
        }
        // A built-in plugin is listed unless an override was installed.
        for b in &self.builtins.plugins {
            let overridden = out
                .iter()
                .any(|i| i.manifest.name == b.name && i.override_builtin);
            if !overridden && let Some(entry) = self.builtin_entry(b.name) {
                out.push(entry?);
            }
        }
        out.sort_by(|a, b| a.manifest.name.cmp(&b.manifest.name));
        Ok(out)
    }

    /// The plugin `name` means: the built-in one, unless one was installed to override it;
    /// else the installed one.
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`] when there is none of that name (and, for a first-party
    /// plugin this build lacks, how to get it).
    pub fn get(&self, name: &str) -> Result<Installed> {
        match (self.installed(name)?, self.builtin_entry(name)) {
            (Some(i), Some(_)) if i.override_builtin => Ok(i),
            (Some(_), Some(b)) => {
                tracing::info!(
                    "plugin `{name}` is built in; the one installed under that name is not used \
                     (install it with --override-builtin to use it)"
                );
                b
            }
            (None, Some(b)) => b,
            (Some(i), None) => Ok(i),
            (None, None) => Err(Error::new(ErrorKind::NotFound, self.not_found(name))),
        }
    }

    fn not_found(&self, name: &str) -> String {
        let place = match &self.dir {
            Some(d) => format!("installed in {}", d.display()),
            None => "built in, and no plugin store is set".to_owned(),
        };
        let mut text = format!(
            "no plugin `{name}` is {place} (see `cairn plugin list`; install one with `cairn \
             plugin install FILE`)"
        );
        if self.builtins.lacking.contains(&name) {
            text.push_str(&format!(
                "; `{name}` is a first-party plugin, but this cairn was built without them: {}. \
                 Or build `plugins/` (cargo build --release --target wasm32-wasip2) and install \
                 target/wasm32-wasip2/release/cairn_plugin_{}.wasm with --manifest \
                 plugins/{name}/plugin.toml",
                self.builtins.why,
                name.replace('-', "_")
            ));
        }
        text
    }

    /// The record of installed plugin `name`, if there is one.
    fn installed(&self, name: &str) -> Result<Option<Installed>> {
        if self.dir.is_none() {
            return Ok(None);
        }
        let path = self.record(name)?;
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(format!("cannot read {}", path.display()), e)),
        };
        toml::from_str(&text).map(Some).map_err(|e| {
            Error::corrupt(format!(
                "damaged plugin record {}: {}",
                path.display(),
                e.message()
            ))
        })
    }

    /// Loads plugin `name` (as [`PluginStore::get`] finds it), checking an installed
    /// component against its digest.
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`] when there is none, [`ErrorKind::Corrupt`] when its file was
    /// changed.
    pub fn load(&self, runtime: &Runtime, name: &str) -> Result<Plugin> {
        let installed = self.get(name)?;
        if installed.source == Source::Builtin
            && let Some(b) = self.builtin(name)
        {
            return runtime.load_digested(b.wasm, installed.digest, installed.manifest);
        }
        let path = self.blob(&installed.digest)?;
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

    /// Removes installed plugin `name` (a built-in one of that name is then used again).
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`] when it is not installed; [`ErrorKind::InvalidInput`] for a
    /// built-in plugin.
    pub fn remove(&self, name: &str) -> Result<Installed> {
        let Some(installed) = self.installed(name)? else {
            if self.builtin(name).is_some() {
                return Err(Error::invalid(format!(
                    "plugin `{name}` is built into cairn and cannot be removed (only a plugin \
                     installed to override it can)"
                )));
            }
            return Err(Error::new(ErrorKind::NotFound, self.not_found(name)));
        };
        let path = self.record(name)?;
        std::fs::remove_file(&path)
            .map_err(|e| Error::io(format!("cannot remove {}", path.display()), e))?;
        self.drop_blob_if_unused(&installed.digest)?;
        Ok(installed)
    }

    fn drop_blob_if_unused(&self, digest: &str) -> Result<()> {
        if self
            .list()?
            .iter()
            .any(|i| i.digest == digest && i.source != Source::Builtin)
        {
            return Ok(());
        }
        let blob = self.blob(digest)?;
        match std::fs::remove_file(&blob) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(Error::io(format!("cannot remove {}", blob.display()), e))
            }
            _ => Ok(()),
        }
    }
}
