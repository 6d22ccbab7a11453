//! The volume-discovery world: find the application volumes on a node.
//!
//! Implement [`Discovery`] and export it with [`export_discovery!`](crate::export_discovery).
//! The plugin sees the node only through the read-only directories its manifest requests and
//! the operator grants; answer paths in that view (the host maps them back to the node and
//! refuses any path outside the granted directories).
//!
//! ```no_run
//! use cairn_sdk::discovery::{Discovery, Target, VolumeKind};
//! use cairn_sdk::{Config, Result};
//!
//! /// Every directory below `/volumes` is a volume of the app `demo`.
//! struct Demo;
//!
//! impl Discovery for Demo {
//!     fn discover(_config: Config, _inventory: Option<String>) -> Result<Vec<Target>> {
//!         let mut targets = Vec::new();
//!         for entry in std::fs::read_dir("/volumes").into_iter().flatten().flatten() {
//!             let name = entry.file_name().to_string_lossy().into_owned();
//!             targets.push(Target {
//!                 identity: format!("demo/{name}"),
//!                 app: "demo".into(),
//!                 path: format!("/volumes/{name}"),
//!                 kind: VolumeKind::Other,
//!                 labels: vec![],
//!             });
//!         }
//!         Ok(targets)
//!     }
//! }
//!
//! cairn_sdk::export_discovery!(Demo);
//! ```

use crate::{Config, Result};

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "cairn:plugin/volume-discovery@0.1.0",
        pub_export_macro: true,
        export_macro_name: "__export_volume_discovery",
        default_bindings_module: "cairn_sdk::discovery::bindings",
        with: {
            "cairn:plugin/types@0.1.0": crate::bindings::cairn::plugin::types,
            "cairn:plugin/log@0.1.0": crate::bindings::cairn::plugin::log,
        },
    });
}

use bindings::exports::cairn::plugin::discovery as wit;

pub use wit::{Target, VolumeKind};

/// Finds volumes.
pub trait Discovery: 'static {
    /// Lists the volumes on this node. `inventory` is the cluster's pods or allocations as its
    /// API returns them (JSON), when the host has one; discovery must work without it.
    ///
    /// # Errors
    /// `invalid-config` naming a bad setting or an inventory that does not parse; `not-found`
    /// when none of the roots the plugin knows is visible.
    fn discover(config: Config, inventory: Option<String>) -> Result<Vec<Target>>;
}

/// The names of the entries of directory `dir`, sorted; none when it cannot be read (a
/// layout that is not there, or not granted, is simply empty).
pub fn entries(dir: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Calls `T` (the [`export_discovery!`](crate::export_discovery) macro implements the
/// generated `Guest` trait through it).
#[doc(hidden)]
pub fn discover<T: Discovery>(request: wit::Request) -> Result<Vec<Target>> {
    T::discover(Config::from(request.config), request.inventory)
}

/// Exports a [`Discovery`] implementation as the component's `cairn:plugin/discovery`
/// interface. Use it once, at the crate's top level: `cairn_sdk::export_discovery!(MyScan);`.
#[macro_export]
macro_rules! export_discovery {
    ($ty:ty) => {
        #[doc(hidden)]
        struct __CairnDiscoveryExport;
        impl $crate::discovery::bindings::exports::cairn::plugin::discovery::Guest
            for __CairnDiscoveryExport
        {
            fn discover(
                request: $crate::discovery::bindings::exports::cairn::plugin::discovery::Request,
            ) -> $crate::Result<::std::vec::Vec<$crate::discovery::Target>> {
                $crate::discovery::discover::<$ty>(request)
            }
        }
        $crate::discovery::bindings::__export_volume_discovery!(
            __CairnDiscoveryExport with_types_in $crate::discovery::bindings
        );
    };
}
