//! The first-party plugins built into cairn: each one's component and manifest, embedded by
//! the build script from `plugins/` (built for wasm32-wasip2 there). A cairn built where that
//! target is missing (`cargo install --path host/cli` on a toolchain without it) carries none
//! of them: [`LACKING`] names them and [`WHY`] says why, for the messages that point the
//! user to the fix.

/// A built-in plugin.
#[derive(Debug, Clone, Copy)]
pub struct Component {
    /// Its name (`kubelet`), as in its manifest.
    pub name: &'static str,
    /// The component.
    pub wasm: &'static [u8],
    /// Its manifest (`plugin.toml`).
    pub manifest: &'static str,
}

include!(concat!(env!("OUT_DIR"), "/builtin.rs"));

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_first_party_plugin_is_embedded_or_named_as_lacking() {
        let mut names: Vec<&str> = COMPONENTS.iter().map(|c| c.name).collect();
        names.extend(LACKING);
        names.sort_unstable();
        assert_eq!(
            names,
            ["http-dump", "http-hook", "kubelet", "nomad", "rest"]
        );
        assert_eq!(WHY.is_empty(), LACKING.is_empty());
        for c in COMPONENTS {
            assert!(c.wasm.starts_with(b"\0asm"), "{} is a wasm binary", c.name);
            assert!(
                c.manifest.contains(&format!("name = \"{}\"", c.name)),
                "{}'s manifest names it",
                c.name
            );
        }
    }
}
