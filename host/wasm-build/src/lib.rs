//! For build scripts: builds a workspace of cairn plugins (`plugins/`, `tests/guests/`) for
//! wasm32-wasip2 with a nested cargo, the pattern of wasmtime's test-programs artifacts build
//! script. Used by the built-in plugins' crate (`host/builtin`) and the tests' build script,
//! which build `plugins/` with the same command into the same directory, so both get the
//! same components (the same digests).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The wasm target the plugins are built for.
pub const TARGET: &str = "wasm32-wasip2";

/// The directory nested wasm builds use: `wasm/` under `CARGO_TARGET_DIR` or `root/target`.
pub fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join("wasm")
}

/// Where the built components of a workspace built into `target` are.
pub fn out_dir(target: &Path) -> PathBuf {
    target.join(TARGET).join("release")
}

/// Whether the toolchain running this build script has the wasm target's standard library
/// (`rustup target add wasm32-wasip2`). `None` when that cannot be told.
pub fn target_installed() -> Option<bool> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let out = Command::new(rustc)
        .args(["--print", "sysroot"])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let sysroot = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    Some(sysroot.join("lib/rustlib").join(TARGET).is_dir())
}

/// Builds `workspace` (release, wasm32-wasip2) into `target`.
///
/// # Errors
/// What failed, and how to fix it, when cargo cannot run or the build fails.
pub fn cargo_build(workspace: &Path, target: &Path) -> Result<(), String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace)
        .args(["build", "--release", "--target", TARGET, "--target-dir"])
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
        if ["CARGO_PROFILE_", "CARGO_FEATURE_", "CARGO_CFG_"]
            .iter()
            .any(|p| key.starts_with(p))
        {
            cmd.env_remove(key);
        }
    }
    let what = format!("cargo build of {} for {TARGET}", workspace.display());
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what} failed ({status}); is the target installed? `rustup target add {TARGET}`"
        ))
    }
}
