//! Host bindings generated from `wit/` (the one copy of the contract) and the host side of
//! the interfaces plugins import.

use wasmtime::component::{HasSelf, Linker};

use crate::sandbox::State;

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "cairn:plugin/storage-backend@0.1.0",
    exports: { default: async },
});

pub(crate) use exports::cairn::plugin::store as wit_store;

/// The hook world, sharing `types` and `log` with the storage world's bindings; a file sink
/// is a [`crate::hooks::OpenSink`] in the instance's resource table.
pub(crate) mod hook {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "cairn:plugin/hook@0.1.0",
        exports: { default: async },
        with: {
            "cairn:plugin/types": super::cairn::plugin::types,
            "cairn:plugin/log": super::cairn::plugin::log,
            "cairn:plugin/sink.file-sink": crate::hooks::OpenSink,
        },
    });
}

/// The volume-discovery world, sharing `types` and `log` with the storage world's bindings.
pub(crate) mod discovery {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "cairn:plugin/volume-discovery@0.1.0",
        exports: { default: async },
        with: {
            "cairn:plugin/types": super::cairn::plugin::types,
            "cairn:plugin/log": super::cairn::plugin::log,
        },
    });
}

use cairn::plugin::log::{Host as LogHost, Level};

impl LogHost for State {
    fn log(&mut self, level: Level, message: String) {
        let level = match level {
            Level::Trace => tracing::Level::TRACE,
            Level::Debug => tracing::Level::DEBUG,
            Level::Info => tracing::Level::INFO,
            Level::Warn => tracing::Level::WARN,
            Level::Error => tracing::Level::ERROR,
        };
        State::log(self, level, &message);
    }
}

impl cairn::plugin::types::Host for State {}

/// Adds the interfaces cairn itself provides to plugins (`log`, `types`, `sink`).
pub(crate) fn add_host_interfaces(linker: &mut Linker<State>) -> wasmtime::Result<()> {
    cairn::plugin::log::add_to_linker::<State, HasSelf<State>>(linker, |s| s)?;
    cairn::plugin::types::add_to_linker::<State, HasSelf<State>>(linker, |s| s)?;
    hook::cairn::plugin::sink::add_to_linker::<State, HasSelf<State>>(linker, |s| s)
}
