//! Plugin instances ready to run, and volume discovery over this node.

use std::collections::BTreeMap;
use std::path::PathBuf;

use cairn_plugin_host::{Capabilities, Plugin, Target, World, discover};
use cairn_repo::{Error, ErrorKind, Result};

use crate::session::Session;

/// A plugin instance ready to run.
pub struct Ready {
    /// The plugin, compiled and linked.
    pub plugin: Plugin,
    /// Its settings.
    pub config: Vec<(String, String)>,
    /// What it holds.
    pub capabilities: Capabilities,
}

/// Which discovery instances run, and over what.
#[derive(Debug, Clone, Default)]
pub struct Discovery {
    /// Only these instances (default: every configured instance of a discovery plugin).
    pub plugins: Vec<String>,
    /// The cluster's pods or allocations as JSON (`kubectl get pods,pvc -A -o json`, Nomad's
    /// `/v1/allocations`).
    pub inventory: Option<PathBuf>,
}

/// What the discovery instances found, and which of them failed.
#[derive(Debug, Default)]
pub struct Discovered {
    /// The targets of the instances that answered, sorted by identity.
    pub targets: Vec<Target>,
    /// The instances that failed, each error naming its instance. An instance that sees none
    /// of its layouts on this node (its `not-found`) is not a failure: it found nothing,
    /// unless it was named explicitly.
    pub failed: Vec<Error>,
    /// Why the instances that found nothing did (their `not-found`).
    pub absent: Vec<Error>,
    /// How many instances saw their layouts and answered.
    pub answered: usize,
}

impl Discovered {
    /// The targets when every instance answered and at least one saw its layouts, else the
    /// first failure: for a backup, which must not run an app with some of its volumes
    /// missing (a kubelet `root` mistyped must not make every app's backup empty).
    ///
    /// # Errors
    /// The first instance's failure, or why none saw its layouts.
    pub fn all(self) -> Result<Vec<Target>> {
        if let Some(e) = self.failed.into_iter().next() {
            return Err(e);
        }
        match self.absent.into_iter().next() {
            Some(e) if self.answered == 0 => Err(e),
            _ => Ok(self.targets),
        }
    }
}

impl Session {
    /// Every target the discovery instances of `source` find, sorted by identity. An identity
    /// two instances both report is an error: it would mix two volumes in one snapshot
    /// chain. An instance that sees none of its layouts (a Nomad plugin on a Kubernetes node)
    /// finds nothing and says so (an info line, a warning when no instance answered); one that fails is in
    /// [`Discovered::failed`] while the others' targets are kept, unless every instance that
    /// ran failed. With no discovery plugin configured: an error when `required`, else
    /// nothing (apps with hooks or paths only).
    ///
    /// # Errors
    /// When an instance cannot be loaded, two report the same volume, or every instance that
    /// ran failed (the first one's error).
    pub fn discover(&self, source: &Discovery, required: bool) -> Result<Discovered> {
        let file = self.config()?;
        if source.plugins.is_empty() && file.plugins.is_empty() && !required {
            // Nothing to run: no plugin store or runtime is needed (apps with paths only).
            return Ok(Discovered::default());
        }
        let runtime = self.plugin_runtime()?;
        let inventory = match &source.inventory {
            Some(path) => Some(std::fs::read_to_string(path).map_err(|e| {
                Error::io(format!("cannot read the inventory {}", path.display()), e)
            })?),
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
        let mut answered = 0;
        let (mut failed, mut absent) = (Vec::new(), Vec::new());
        let store = self.plugin_store()?;
        for name in &names {
            // Other instances are passed over by their manifest, before anything is loaded
            // or granted; one named explicitly is checked by `discover` itself.
            let plugin = file.plugins.get(name).and_then(|i| i.plugin.as_deref());
            if !explicit
                && store.get(plugin.unwrap_or(name))?.manifest.world() != World::VolumeDiscovery
            {
                continue;
            }
            let ready = self.instance(name, false)?;
            ran += 1;
            let targets = match discover(
                &runtime,
                &ready.plugin,
                name,
                &ready.config,
                &ready.capabilities,
                inventory.as_deref(),
            ) {
                Ok(targets) => {
                    answered += 1;
                    targets
                }
                Err(e) if e.kind() == ErrorKind::NotFound && !explicit => {
                    absent.push(e);
                    continue;
                }
                Err(e) => {
                    failed.push(e);
                    continue;
                }
            };
            tracing::info!(plugin = name, "found {} volumes", targets.len());
            for t in targets {
                if let Some(other) = found.get(&t.identity) {
                    return Err(Error::invalid(format!(
                        "plugins `{}` and `{}` both report the volume `{}`; run one of them \
                         (--plugin NAME)",
                        other.plugin, t.plugin, t.identity
                    )));
                }
                found.insert(t.identity.clone(), t);
            }
        }
        if ran == 0 && !required {
            tracing::debug!("no discovery plugin is configured: no volumes");
        } else if ran == 0 {
            return Err(Error::invalid(
                "no discovery plugin is configured: add a [plugins.NAME] instance of a \
                 volume-discovery plugin (e.g. plugin = \"kubelet\") to the configuration file",
            ));
        }
        // Layouts absent are normal beside a plugin that answered; when none did, they are
        // the only explanation of an empty list.
        for e in &absent {
            if answered == 0 && failed.is_empty() {
                tracing::warn!("no volumes: {e}");
            } else {
                tracing::info!("no volumes: {e}");
            }
        }
        if !failed.is_empty() && answered == 0 {
            for e in &failed[1..] {
                tracing::error!("{e}");
            }
            return Err(failed.swap_remove(0));
        }
        Ok(Discovered {
            targets: found.into_values().collect(),
            failed,
            absent,
            answered,
        })
    }
}
