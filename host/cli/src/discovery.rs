//! Discovery in the CLI: the configured discovery plugin instances, run over this node.

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use cairn_plugin_host::{Target, World, discover};

use crate::args::DiscoverySource;
use crate::plugins::ConfigFile;
use crate::settings::Ctx;

impl Ctx {
    /// Every target the discovery instances of `source` find (by default every configured
    /// instance of a discovery plugin), sorted by identity. An identity two instances both
    /// report is an error: it would mix two volumes in one snapshot chain. With no discovery
    /// plugin configured: an error when `required`, else nothing (apps with hooks only).
    pub fn discover(
        &self,
        file: &ConfigFile,
        source: &DiscoverySource,
        required: bool,
    ) -> Result<Vec<Target>> {
        let runtime = self.plugin_runtime()?;
        let inventory = match &source.inventory {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read the inventory {}", path.display()))?,
            ),
            None => None,
        };
        let explicit = !source.plugins.is_empty();
        let names: Vec<String> = if explicit {
            source.plugins.clone()
        } else {
            file.plugins.keys().cloned().collect()
        };
        let mut found: BTreeMap<String, Target> = BTreeMap::new();
        let mut ran = 0;
        let store = self.plugin_store()?;
        for name in &names {
            // Other instances are passed over by their manifest, before anything is loaded
            // or granted; one named on the command line is checked by `discover` itself.
            let plugin = file.plugins.get(name).and_then(|i| i.plugin.as_deref());
            if !explicit
                && store.get(plugin.unwrap_or(name))?.manifest.world() != World::VolumeDiscovery
            {
                continue;
            }
            let ready = self.instance(file, &runtime, name, false)?;
            ran += 1;
            let targets = discover(
                &runtime,
                &ready.plugin,
                name,
                &ready.config,
                &ready.capabilities,
                inventory.as_deref(),
            )?;
            tracing::info!(plugin = name, "found {} volumes", targets.len());
            for t in targets {
                if let Some(other) = found.get(&t.identity) {
                    bail!(
                        "plugins `{}` and `{}` both report the volume `{}`; run one of them \
                         (--plugin NAME)",
                        other.plugin,
                        t.plugin,
                        t.identity
                    );
                }
                found.insert(t.identity.clone(), t);
            }
        }
        if ran == 0 && !required {
            tracing::debug!("no discovery plugin is configured: no volumes");
        } else if ran == 0 {
            bail!(
                "no discovery plugin is configured: add a [plugins.NAME] instance of a \
                 volume-discovery plugin (e.g. plugin = \"kubelet\") to the configuration file"
            );
        }
        Ok(found.into_values().collect())
    }
}
