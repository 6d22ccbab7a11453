//! Restore markers: `restore --marker ID` writes `<target>/.cairn/ID` once the restore is
//! complete, and `wait-restore --marker ID DIR...` waits for them (an init container runs it
//! so that the app starts only on restored data; Velero's `.velero/<restore-uid>` is the model).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// The directory markers live in, inside a restored volume.
pub const DIR: &str = ".cairn";

/// Checks a marker id: 1–128 letters, digits, `.`, `_` or `-`, not starting with `.`.
///
/// # Errors
/// Naming the id and what is allowed.
pub fn check(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if !ok {
        bail!(
            "marker `{id}` must be 1 to 128 letters, digits, `.`, `_` or `-` (not starting \
             with `.`), such as a restore's UID"
        );
    }
    Ok(())
}

/// Where marker `id` of `target` is.
pub fn path(target: &Path, id: &str) -> PathBuf {
    target.join(DIR).join(id)
}

/// Writes marker `id` into `target` (synced, so that a marker never precedes the data).
///
/// # Errors
/// When it cannot be written.
pub fn write(target: &Path, id: &str, snapshot: &str) -> Result<()> {
    let dir = target.join(DIR);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let file = path(target, id);
    let temp = dir.join(format!(".{id}.tmp"));
    let body = serde_json::json!({ "snapshot": snapshot, "time": jiff::Timestamp::now() });
    (|| -> std::io::Result<()> {
        let f = std::fs::File::create(&temp)?;
        serde_json::to_writer(&f, &body)?;
        f.sync_all()?;
        std::fs::rename(&temp, &file)?;
        std::fs::File::open(&dir)?.sync_all()
    })()
    .with_context(|| format!("cannot write the restore marker {}", file.display()))
}
