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
    pub inventory: Option<Inventory>,
}

/// Where an inventory comes from.
#[derive(Debug, Clone)]
pub enum Inventory {
    /// A file someone exported.
    File(PathBuf),
    /// The text itself (the agent's, from the cluster's API).
    Json(String),
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
    /// The instances were the built-in discovery plugins, run because the configuration
    /// names none, for a caller that does not require volumes: that none sees its layouts
    /// is no error (a plain host).
    pub implicit: bool,
}

impl Discovered {
    /// The targets when every instance answered and at least one saw its layouts, else the
    /// first failure (or every reason none saw its layouts): for a backup, which must not run an app with some of its volumes
    /// missing (a kubelet `root` mistyped must not make every app's backup empty).
    ///
    /// # Errors
    /// The first instance's failure, or why none saw its layouts.
    pub fn all(mut self) -> Result<Vec<Target>> {
        if !self.failed.is_empty() {
            return Err(self.failed.swap_remove(0));
        }
        if self.answered == 0 && !self.implicit && !self.absent.is_empty() {
            return Err(self.none_answered());
        }
        Ok(self.targets)
    }

    /// Why no instance saw its layouts: every instance's reason, in one error.
    pub fn none_answered(&self) -> Error {
        let reasons: Vec<String> = self.absent.iter().map(ToString::to_string).collect();
        Error::new(
            ErrorKind::NotFound,
            format!(
                "no discovery plugin sees its layouts on this node: {}",
                reasons.join("; ")
            ),
        )
    }
}

impl Session {
    /// The discovery instances that run when none is named: those of the configuration file,
    /// else (none there) the built-in discovery plugins with their default grants
    /// ([`Session::default_grants`]), unless `no_default_grants`.
    ///
    /// # Errors
    /// When an instance's plugin cannot be found.
    fn discovery_instances(&self) -> Result<(Vec<String>, bool)> {
        let file = self.config()?;
        let store = self.plugins();
        let mut names = Vec::new();
        for (name, instance) in &file.plugins {
            // Other instances are passed over by their manifest, before anything is loaded
            // or granted.
            let plugin = instance.plugin.as_deref().unwrap_or(name);
            if store.get(plugin)?.manifest.world() == World::VolumeDiscovery {
                names.push(name.clone());
            }
        }
        if !names.is_empty() || self.settings().no_default_grants {
            return Ok((names, false));
        }
        for p in store.list()? {
            let builtin = p.source == cairn_plugin_host::Source::Builtin;
            if builtin && p.manifest.world() == World::VolumeDiscovery {
                names.push(p.manifest.name);
            }
        }
        Ok((names, true))
    }

    /// Every target the discovery instances of `source` find, sorted by identity. An identity
    /// two instances both report is an error: it would mix two volumes in one snapshot
    /// chain. An instance that sees none of its layouts (a Nomad plugin on a Kubernetes node)
    /// finds nothing and says so (an info line, a warning when no instance answered); one that fails is in
    /// [`Discovered::failed`] while the others' targets are kept, unless every instance that
    /// ran failed. With no discovery instance configured, the built-in discovery plugins run
    /// with their default grants; with none of those either: an error when `required`, else
    /// nothing (apps with hooks or paths only).
    ///
    /// # Errors
    /// When an instance cannot be loaded, two report the same volume, or every instance that
    /// ran failed (the first one's error).
    pub fn discover(&self, source: &Discovery, required: bool) -> Result<Discovered> {
        let file = self.config()?;
        let volumes_named = file.apps.values().any(|a| !a.volumes.is_empty());
        if source.plugins.is_empty() && file.plugins.is_empty() && !required && !volumes_named {
            // Nothing to run: no plugin store or runtime is needed (apps with paths only).
            return Ok(Discovered::default());
        }
        let runtime = self.plugin_runtime()?;
        let inventory = match &source.inventory {
            Some(Inventory::File(path)) => Some(std::fs::read_to_string(path).map_err(|e| {
                Error::io(format!("cannot read the inventory {}", path.display()), e)
            })?),
            Some(Inventory::Json(text)) => Some(text.clone()),
            None => None,
        };
        let explicit = !source.plugins.is_empty();
        let (names, builtin) = if explicit {
            (source.plugins.clone(), false)
        } else {
            self.discovery_instances()?
        };
        // The built-in plugins, run for apps that may name volumes: on a plain host they see
        // nothing, and that is no error.
        let implicit = builtin && !required;
        let mut found: BTreeMap<String, Target> = BTreeMap::new();
        let mut ran = 0;
        let mut answered = 0;
        let (mut failed, mut absent) = (Vec::new(), Vec::new());
        for name in &names {
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
            let store = self.plugins();
            let lacking = &store.builtins().lacking;
            let why = if !lacking.is_empty() {
                format!(
                    "this cairn was built without its built-in plugins ({}): {}; or ",
                    lacking.join(", "),
                    store.builtins().why
                )
            } else if self.settings().no_default_grants {
                "the built-in ones are not run with --no-default-grants; ".to_owned()
            } else {
                String::new()
            };
            return Err(Error::invalid(format!(
                "no discovery plugin is configured: {why}add a [plugins.NAME] instance of a \
                 volume-discovery plugin (e.g. plugin = \"kubelet\") to the configuration file"
            )));
        }
        // Layouts absent are normal beside a plugin that answered; when none did, the caller
        // says so once ([`Discovered::none_answered`]).
        for e in &absent {
            tracing::info!("no volumes: {e}");
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
            implicit,
        })
    }
}
