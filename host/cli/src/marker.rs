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
/// `.cairn` and the marker are reached through descriptors without following a link: a
/// `.cairn` link that came with the snapshot (or that the volume's owner made) is replaced,
/// never written through.
///
/// # Errors
/// When it cannot be written.
pub fn write(target: &Path, id: &str, snapshot: &str) -> Result<()> {
    use std::os::fd::AsFd;

    use cairn_repo::target_dir::{TargetDir, remove_in};
    use nix::fcntl::{OFlag, openat, renameat};
    use nix::sys::stat::Mode;

    let file = path(target, id);
    let temp = format!(".{id}.tmp");
    let body = serde_json::json!({ "snapshot": snapshot, "time": jiff::Timestamp::now() });
    (|| -> std::io::Result<()> {
        let volume = TargetDir::create(target)?;
        // The restored data on disk before the marker that says it is there.
        nix::unistd::syncfs(volume.fd())?;
        let dir = volume.make_dirs(Path::new(DIR), true)?;
        // Readable by the app's wait-restore, which need not run as root.
        nix::sys::stat::fchmod(&dir, Mode::from_bits_truncate(0o755))?;
        remove_in(dir.as_fd(), temp.as_ref())?;
        let f = std::fs::File::from(openat(
            dir.as_fd(),
            temp.as_str(),
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o644),
        )?);
        serde_json::to_writer(&f, &body)?;
        f.sync_all()?;
        renameat(dir.as_fd(), temp.as_str(), dir.as_fd(), id)?;
        std::fs::File::from(dir).sync_all()
    })()
    .with_context(|| format!("cannot write the restore marker {}", file.display()))
}
