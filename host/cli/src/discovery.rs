//! Discovery in the CLI: the configured discovery plugin instances run over this node, and
//! the apps of the configuration file that cover what they find.

use std::collections::BTreeMap;

use anyhow::{Context, Result, anyhow, bail};
use cairn_plugin_host::{Target, World, discover};
use globset::{GlobBuilder, GlobMatcher};

use crate::args::DiscoverySource;
use crate::plugins::ConfigFile;
use crate::settings::Ctx;

impl Ctx {
    /// Every target the discovery instances of `source` find (by default every configured
    /// instance of a discovery plugin), sorted by identity. An identity two instances both
    /// report is an error: it would mix two volumes in one snapshot chain.
    pub fn discover(&self, file: &ConfigFile, source: &DiscoverySource) -> Result<Vec<Target>> {
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
        for name in &names {
            let ready = self.instance(file, &runtime, name, false)?;
            if ready.plugin.world != World::VolumeDiscovery {
                if explicit {
                    bail!(
                        "plugin instance `{name}` is a {} plugin, not a discovery plugin",
                        ready.plugin.world
                    );
                }
                continue;
            }
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
        if ran == 0 {
            bail!(
                "no discovery plugin is configured: add a [plugins.NAME] instance of a \
                 volume-discovery plugin (e.g. plugin = \"kubelet\") to the configuration file"
            );
        }
        Ok(found.into_values().collect())
    }
}

/// The configured apps, each with its volume selectors compiled.
pub struct Apps {
    apps: Vec<(String, Vec<GlobMatcher>)>,
}

impl Apps {
    /// The apps of `file`.
    ///
    /// # Errors
    /// When a selector is not a valid glob (the message names the app).
    pub fn new(file: &ConfigFile) -> Result<Apps> {
        let mut apps = Vec::new();
        for (name, app) in &file.apps {
            let globs = app
                .volumes
                .iter()
                .map(|g| {
                    GlobBuilder::new(g)
                        .literal_separator(true)
                        .build()
                        .map(|g| g.compile_matcher())
                        .map_err(|e| anyhow!("app `{name}`: volume selector `{g}` is invalid: {e}"))
                })
                .collect::<Result<Vec<_>>>()?;
            apps.push((name.clone(), globs));
        }
        Ok(Apps { apps })
    }

    /// The apps that cover `target`.
    pub fn covering(&self, target: &Target) -> Vec<&str> {
        self.apps
            .iter()
            .filter(|(name, globs)| {
                if globs.is_empty() {
                    *name == target.app
                } else {
                    globs.iter().any(|g| g.is_match(&target.identity))
                }
            })
            .map(|(name, _)| name.as_str())
            .collect()
    }
}
