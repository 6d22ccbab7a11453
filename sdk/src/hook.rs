//! The hook world: work done around the backup or restore of one app's volumes.
//!
//! Implement [`Hook`] and export it with [`export_hook!`](crate::export_hook). Pre hooks run
//! before the app's volumes are read (or written), post hooks after, whatever the outcome
//! (given in [`Context::outcome`]). A hook may add files to the app's backup through
//! [`sink`]: bytes written become a file in a snapshot, kept only when the hook finishes the
//! file and then succeeds.
//!
//! ```no_run
//! use cairn_sdk::hook::{Context, Hook, Phase, Report, sink};
//! use cairn_sdk::Result;
//!
//! /// Saves a small status file before each backup.
//! struct Status;
//!
//! impl Hook for Status {
//!     fn run(context: Context) -> Result<Report> {
//!         if let Phase::PreBackup = context.phase {
//!             let file = sink("status.txt")?;
//!             file.write(format!("{} volumes\n", context.targets.len()).as_bytes())?;
//!             file.finish()?;
//!         }
//!         Ok(Report { message: Some("status saved".into()), details: vec![] })
//!     }
//! }
//!
//! cairn_sdk::export_hook!(Status);
//! ```

use crate::Result;

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "cairn:plugin/hook@0.1.0",
        pub_export_macro: true,
        export_macro_name: "__export_hook",
        default_bindings_module: "cairn_sdk::hook::bindings",
        with: {
            "cairn:plugin/types@0.1.0": crate::bindings::cairn::plugin::types,
            "cairn:plugin/log@0.1.0": crate::bindings::cairn::plugin::log,
        },
    });
}

use bindings::exports::cairn::plugin::hooks as wit;

pub use bindings::cairn::plugin::sink::FileSink;
pub use wit::{Context, Outcome, Phase, Report};

/// Runs for one phase of one app.
pub trait Hook: 'static {
    /// Does this hook's work for `context.phase`; `context.config` holds its settings
    /// (`Config::from(context.config.clone())` reads them).
    ///
    /// # Errors
    /// Any failure: the host fails the phase (or carries on, as the operator configured).
    fn run(context: Context) -> Result<Report>;
}

/// Opens a new file at `path` (relative, `/`-separated) in the app's backup. Write to it and
/// [`FileSink::finish`] it; a file dropped unfinished, or a hook that fails afterwards, fails
/// that snapshot.
///
/// # Errors
/// `denied` in phases that write no backup (restores), `invalid-config` for a bad path.
pub fn sink(path: &str) -> Result<FileSink> {
    bindings::cairn::plugin::sink::open(path)
}

/// Calls `T` (the [`export_hook!`](crate::export_hook) macro implements the generated `Guest`
/// trait through it).
#[doc(hidden)]
pub fn run<T: Hook>(context: Context) -> Result<Report> {
    T::run(context)
}

/// Exports a [`Hook`] implementation as the component's `cairn:plugin/hooks` interface. Use
/// it once, at the crate's top level: `cairn_sdk::export_hook!(MyHook);`.
#[macro_export]
macro_rules! export_hook {
    ($ty:ty) => {
        #[doc(hidden)]
        struct __CairnHookExport;
        impl $crate::hook::bindings::exports::cairn::plugin::hooks::Guest for __CairnHookExport {
            fn run(
                context: $crate::hook::Context,
            ) -> $crate::Result<$crate::hook::Report> {
                $crate::hook::run::<$ty>(context)
            }
        }
        $crate::hook::bindings::__export_hook!(
            __CairnHookExport with_types_in $crate::hook::bindings
        );
    };
}
