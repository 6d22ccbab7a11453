//! Plugins in the CLI: the operator's configuration file, the plugin store, and repositories
//! on storage-backend plugins (`-r plugin:NAME`).
//!
//! The configuration file (TOML) names plugin instances, each with its settings and grants:
//!
//! ```toml
//! [plugins.offsite]            # -r plugin:offsite
//! plugin = "rest"              # the installed plugin (default: the instance's name)
//! [plugins.offsite.config]
//! url = "http://127.0.0.1:8000/repo/"
//! user = "backup"
//! password = "…"               # secret settings are never logged or printed
//! [plugins.offsite.grant]
//! http = ["127.0.0.1:8000"]
//! memory-mib = 256
//!
//! [plugins.kubelet.grant]      # a discovery plugin: sees only what is granted, read-only
//! dirs = [{ path = "/var/lib/kubelet" }, { path = "/var/log/pods" }]
//!
//! [apps.shop]                  # an app and the discovered volumes it covers
//! volumes = ["k8s/shop/*"]     # identity globs (default: volumes whose app is `shop`)
//! ```

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use cairn_plugin_host::{
    Capabilities, CompiledCache, Grants, Manifest, Plugin, PluginBackend, PluginStore, Runtime,
};
use serde::Deserialize;

use crate::apps::App;
use crate::env_vars::EnvVars;
use crate::settings::{Ctx, xdg_dir};

/// The operator's configuration file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Plugin instances by name.
    #[serde(default)]
    pub plugins: BTreeMap<String, Instance>,
    /// Apps by name (`crate::apps`).
    #[serde(default)]
    pub apps: BTreeMap<String, App>,
    /// `cairn gateway serve`'s settings (the keys of its flags; read by that command).
    pub gateway: Option<toml::Table>,
}

/// One plugin instance: which plugin, its settings, its grants.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Instance {
    /// The installed plugin (default: the instance's name).
    pub plugin: Option<String>,
    /// Its settings (strings, numbers and booleans).
    #[serde(default)]
    pub config: BTreeMap<String, toml::Value>,
    /// What the operator allows it.
    #[serde(default)]
    pub grant: Grants,
}

impl ConfigFile {
    /// Reads `path`.
    ///
    /// # Errors
    /// When it cannot be read or is not a valid configuration file.
    pub fn load(path: &Path) -> Result<ConfigFile> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the configuration file {}", path.display()))?;
        toml::from_str(&text).map_err(|e| {
            anyhow!(
                "invalid configuration file {}: {}",
                path.display(),
                e.message()
            )
        })
    }
}

/// A setting from the configuration file as the plugin gets it.
pub fn setting_value(key: &str, value: &toml::Value) -> Result<String> {
    Ok(match value {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        _ => bail!("plugin setting `{key}` must be a string, number or boolean"),
    })
}

impl Ctx {
    /// The configuration file: `--config`, else the default one if it exists, else empty.
    pub fn config_file(&self) -> Result<ConfigFile> {
        if let Some(path) = &self.global.config {
            return ConfigFile::load(path);
        }
        match xdg_dir(EnvVars::XDG_CONFIG_HOME, ".config").map(|d| d.join("cairn/config.toml")) {
            Some(path) if path.exists() => ConfigFile::load(&path),
            _ => Ok(ConfigFile::default()),
        }
    }

    /// The plugin store.
    pub fn plugin_store(&self) -> Result<PluginStore> {
        let dir = self
            .global
            .plugin_dir
            .clone()
            .or_else(|| {
                xdg_dir(EnvVars::XDG_DATA_HOME, ".local/share").map(|d| d.join("cairn/plugins"))
            })
            .ok_or_else(|| {
                anyhow!(
                    "no plugin store: use --plugin-dir or set {} (or HOME)",
                    EnvVars::CAIRN_PLUGIN_DIR
                )
            })?;
        Ok(PluginStore::new(dir))
    }

    /// The plugin runtime, caching compiled plugins under the cache directory, authenticated
    /// by a key kept in the plugin store (not in the cache, which may be easier to reach).
    pub fn plugin_runtime(&self) -> Result<Arc<Runtime>> {
        let key_file = self
            .plugin_store()
            .ok()
            .map(|s| s.dir().join("compiled-cache.key"));
        let cache = self
            .cache_dir()
            .zip(key_file)
            .map(|(d, key)| CompiledCache::new(d.join("compiled"), key));
        Ok(Runtime::new(cache)?)
    }

    /// `-o KEY=VALUE` pairs.
    fn options(&self) -> Result<Vec<(String, String)>> {
        self.global
            .options
            .iter()
            .map(|o| {
                o.split_once('=')
                    .filter(|(k, _)| !k.is_empty())
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .ok_or_else(|| anyhow!("`-o {o}` is not KEY=VALUE"))
            })
            .collect()
    }

    /// The store of plugin instance `name` (`-r plugin:NAME`): its plugin loaded from the
    /// store, its settings from the configuration file and `-o`, its grants checked.
    pub fn plugin_backend(&self, name: &str) -> Result<PluginBackend> {
        let file = self.config_file()?;
        let runtime = self.plugin_runtime()?;
        let ready = self.instance(&file, &runtime, name, true)?;
        let connections = self.global.connections.unwrap_or(4);
        Ok(PluginBackend::open(
            runtime,
            &ready.plugin,
            name,
            ready.config,
            ready.capabilities,
            connections,
        )?)
    }

    /// Plugin instance `name` of `file`, ready to run: its plugin loaded, its settings (from
    /// the file, then `-o` when `options`) checked, its grants resolved.
    pub fn instance(
        &self,
        file: &ConfigFile,
        runtime: &Runtime,
        name: &str,
        options: bool,
    ) -> Result<Ready> {
        let instance = file.plugins.get(name);
        let plugin_name = instance.and_then(|i| i.plugin.as_deref()).unwrap_or(name);
        let empty = Instance::default();
        let instance = instance.unwrap_or(&empty);
        self.prepare(
            runtime,
            plugin_name,
            &instance.config,
            &instance.grant,
            options,
        )
    }

    /// Installed plugin `plugin_name` with settings `settings` (then `-o` when `options`)
    /// and `grants`, ready to run.
    pub fn prepare(
        &self,
        runtime: &Runtime,
        plugin_name: &str,
        settings: &BTreeMap<String, toml::Value>,
        grants: &Grants,
        options: bool,
    ) -> Result<Ready> {
        let plugin = self.plugin_store()?.load(runtime, plugin_name)?;
        let mut config = Vec::new();
        for (k, v) in settings {
            config.push((k.clone(), setting_value(k, v)?));
        }
        if options {
            for (k, v) in self.options()? {
                config.retain(|(key, _)| *key != k);
                config.push((k, v));
            }
        }
        plugin
            .manifest
            .check_config(config.iter().map(|(k, _)| k.as_str()))?;
        let host_root = self.global.host_root.as_deref().unwrap_or("");
        let caps = grants.resolve(&plugin.manifest, &config, host_root)?;
        Ok(Ready {
            plugin,
            config,
            capabilities: caps,
        })
    }
}

/// A plugin instance ready to run.
pub struct Ready {
    /// The plugin, compiled and linked.
    pub plugin: Plugin,
    /// Its settings.
    pub config: Vec<(String, String)>,
    /// What it holds.
    pub capabilities: Capabilities,
}

/// The manifest of component `file`: `manifest` if given, else `plugin.toml` next to it, else
/// `FILE` with the extension `.toml`.
pub fn manifest_for(file: &Path, manifest: Option<&Path>) -> Result<Manifest> {
    let path = match manifest {
        Some(m) => m.to_path_buf(),
        None => {
            let beside = file.with_file_name("plugin.toml");
            let same_stem = file.with_extension("toml");
            if beside.exists() {
                beside
            } else if same_stem.exists() {
                same_stem
            } else {
                bail!(
                    "no manifest for {}: put plugin.toml next to it or give --manifest FILE",
                    file.display()
                )
            }
        }
    };
    Ok(Manifest::load(&path)?)
}
