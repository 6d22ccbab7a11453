//! Builds the first-party plugins (`plugins/`, one wasm32-wasip2 workspace) and embeds the
//! built-in ones with their manifests. Where the wasm target is missing or the sources are
//! not there, cairn is built without them, and says so (a cargo warning here; a message
//! naming the fix when one is asked for).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The plugins cairn carries (directories of `plugins/`).
const BUILTIN: [&str; 5] = ["kubelet", "nomad", "rest", "http-hook", "http-dump"];

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest_dir
        .ancestors()
        .nth(2)
        .expect("host/builtin sits two levels below the repository root")
        .to_path_buf();
    for watched in ["wit", "sdk", "plugins"] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo"));
    let code = match build(&root) {
        Ok(dir) => embedded(&root, &dir),
        Err(why) => {
            println!("cargo:warning=cairn is built without its built-in plugins: {why}");
            lacking(&why)
        }
    };
    std::fs::write(out.join("builtin.rs"), code).expect("write builtin.rs");
}

/// Builds `plugins/`; the directory of the components, or why they cannot be built.
fn build(root: &Path) -> Result<PathBuf, String> {
    let workspace = root.join("plugins");
    if !workspace.join("Cargo.toml").is_file() {
        return Err(format!(
            "their sources ({}) are not here; build cairn from its repository",
            workspace.display()
        ));
    }
    if cairn_wasm_build::target_installed() == Some(false) {
        return Err(format!(
            "the Rust target {} is not installed (`rustup target add {}`, then rebuild)",
            cairn_wasm_build::TARGET,
            cairn_wasm_build::TARGET
        ));
    }
    let target = cairn_wasm_build::target_dir(root);
    cairn_wasm_build::cargo_build(&workspace, &target)?;
    Ok(cairn_wasm_build::out_dir(&target))
}

fn embedded(root: &Path, dir: &Path) -> String {
    let mut code =
        String::from("/// The built-in plugins.\npub static COMPONENTS: &[Component] = &[\n");
    for name in BUILTIN {
        let wasm = dir.join(format!("cairn_plugin_{}.wasm", name.replace('-', "_")));
        let manifest = root.join("plugins").join(name).join("plugin.toml");
        assert!(wasm.is_file(), "{} was not built", wasm.display());
        writeln!(
            code,
            "    Component {{ name: {name:?}, wasm: include_bytes!({:?}), manifest: include_str!({:?}) }},",
            wasm.display().to_string(),
            manifest.display().to_string()
        )
        .expect("write to a string");
    }
    code.push_str(
        "];\n/// The first-party plugins this build lacks.\npub static LACKING: &[&str] = &[];\n\
         /// Why it lacks them (empty: it lacks none).\npub static WHY: &str = \"\";\n",
    );
    code
}

fn lacking(why: &str) -> String {
    format!(
        "/// The built-in plugins.\npub static COMPONENTS: &[Component] = &[];\n\
         /// The first-party plugins this build lacks.\npub static LACKING: &[&str] = &{BUILTIN:?};\n\
         /// Why it lacks them (empty: it lacks none).\npub static WHY: &str = {why:?};\n"
    )
}
