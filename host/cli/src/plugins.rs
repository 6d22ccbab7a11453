//! Plugins in the CLI: finding the manifest of a component being installed. The plugin
//! store, instances and the configuration file are `cairn_apps`'.

use std::path::Path;

use anyhow::{Result, bail};
use cairn_plugin_host::Manifest;

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
