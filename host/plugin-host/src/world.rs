//! The worlds of `cairn:plugin` this host knows, and how to tell which one a component is.

use cairn_repo::{Error, Result};

/// The version of the `cairn:plugin` package this host speaks.
pub const PACKAGE_VERSION: &str = "0.1.0";

/// A world of the `cairn:plugin` package.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum World {
    /// A store for a repository's files.
    StorageBackend,
    /// Finds application volumes on a node.
    VolumeDiscovery,
    /// Runs around the backup or restore of an app's volumes.
    Hook,
}

impl World {
    /// Every world.
    pub const ALL: [World; 3] = [World::StorageBackend, World::VolumeDiscovery, World::Hook];

    /// The world's name in WIT (`storage-backend`).
    pub fn name(self) -> &'static str {
        match self {
            World::StorageBackend => "storage-backend",
            World::VolumeDiscovery => "volume-discovery",
            World::Hook => "hook",
        }
    }

    /// The fully qualified name (`cairn:plugin/storage-backend@0.1.0`).
    pub fn wit_name(self) -> String {
        format!("cairn:plugin/{}@{PACKAGE_VERSION}", self.name())
    }

    /// The interface a component of this world exports, without version (`cairn:plugin/store`).
    fn export(self) -> &'static str {
        match self {
            World::StorageBackend => "cairn:plugin/store",
            World::VolumeDiscovery => "cairn:plugin/discovery",
            World::Hook => "cairn:plugin/hooks",
        }
    }

    /// Parses a world as a manifest names it.
    ///
    /// # Errors
    /// When it is not a world of this package version.
    pub fn from_wit_name(name: &str) -> Result<World> {
        if let Some(w) = World::ALL.iter().find(|w| w.wit_name() == name) {
            return Ok(*w);
        }
        let known: Vec<String> = World::ALL.iter().map(|w| w.wit_name()).collect();
        Err(Error::invalid(format!(
            "unknown plugin world `{name}`; this cairn runs {}",
            known.join(", ")
        )))
    }

    /// Which world a component implements, from the names of its exports.
    ///
    /// # Errors
    /// When it exports none of the worlds' interfaces (or another version of them).
    pub fn detect<'a>(exports: impl IntoIterator<Item = &'a str> + Clone) -> Result<World> {
        for world in World::ALL {
            let exact = format!("{}@{PACKAGE_VERSION}", world.export());
            if exports.clone().into_iter().any(|e| e == exact) {
                return Ok(world);
            }
        }
        let names: Vec<&str> = exports.into_iter().collect();
        if let Some(other) = names.iter().find(|e| e.starts_with("cairn:plugin/")) {
            return Err(Error::invalid(format!(
                "the component exports {other}, a version of cairn:plugin this cairn does not \
                 run (it runs {PACKAGE_VERSION}); rebuild the plugin against this cairn's SDK"
            )));
        }
        let wanted: Vec<String> = World::ALL
            .iter()
            .map(|w| format!("{}@{PACKAGE_VERSION} ({})", w.export(), w.name()))
            .collect();
        Err(Error::invalid(format!(
            "the component is not a cairn plugin: it exports {}, but a plugin exports one of {}",
            if names.is_empty() {
                "nothing".to_owned()
            } else {
                names.join(", ")
            },
            wanted.join(", ")
        )))
    }
}

impl std::fmt::Display for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_worlds_by_export() {
        assert_eq!(
            World::detect(["wasi:cli/run@0.2.0", "cairn:plugin/store@0.1.0"]).unwrap(),
            World::StorageBackend
        );
        assert_eq!(
            World::detect(["cairn:plugin/hooks@0.1.0"]).unwrap(),
            World::Hook
        );
        let e = World::detect(["cairn:plugin/store@0.2.0"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("0.2.0") && e.contains("rebuild"), "{e}");
        let e = World::detect(["example:thing/api"])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("not a cairn plugin") && e.contains("example:thing/api"),
            "{e}"
        );
    }
}
