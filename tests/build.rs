//! Builds the WebAssembly components the tests run: the first-party plugins (`plugins/`) and
//! the misbehaving test guests (`tests/guests/`), each a workspace of its own, for
//! wasm32-wasip2, into `target/wasm`. The tests find them through `CAIRN_WASM_DIR`.
//! (The pattern of wasmtime's test-programs artifacts build script.)

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest_dir
        .parent()
        .expect("tests/ sits in the repository root")
        .to_path_buf();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join("wasm");
    for watched in ["wit", "sdk", "plugins", "tests/guests"] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    for workspace in [root.join("plugins"), root.join("tests/guests")] {
        build(&workspace, &target);
    }
    println!(
        "cargo:rustc-env=CAIRN_WASM_DIR={}",
        target.join("wasm32-wasip2/release").display()
    );
}

fn build(workspace: &Path, target: &Path) {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--target-dir",
        ])
        .arg(target);
    // What cargo sets for this build script must not leak into the nested build.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_PRIMARY_PACKAGE",
        "RUSTC_WORKSPACE_WRAPPER",
    ] {
        cmd.env_remove(var);
    }
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy().into_owned();
        if key.starts_with("CARGO_PROFILE_")
            || key.starts_with("CARGO_FEATURE_")
            || key.starts_with("CARGO_CFG_")
        {
            cmd.env_remove(key);
        }
    }
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("cannot run cargo for {}: {e}", workspace.display()));
    assert!(
        status.success(),
        "building {} for wasm32-wasip2 failed (is the target installed? `rustup target add wasm32-wasip2`)",
        workspace.display()
    );
}
