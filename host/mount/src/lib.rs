//! cairn-mount: `cairn mount MOUNTPOINT`, a repository's snapshots as a read-only FUSE file
//! system, laid out as restic's ([`layout`]): `snapshots/`, `ids/`, `hosts/`, `tags/`,
//! `apps/` and `volumes/`, each with `latest` links. New snapshots appear as they are made
//! (listed again at most every `refresh`).
//!
//! Mounted through /dev/fuse with fuser (no libfuse); read-only, `default_permissions` (the
//! kernel checks each entry's stored mode and owner), visible to the mounting user only
//! unless `allow_other`.

mod fs;
mod inodes;
pub mod layout;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use cairn_repo::{Error, Repository, Result, SnapshotFilter};

pub use fs::SnapshotFs;

/// How to mount.
#[derive(Debug, Clone)]
pub struct MountOptions {
    /// Let other users see the mount (needs `user_allow_other` in /etc/fuse.conf unless
    /// root).
    pub allow_other: bool,
    /// Only snapshots that pass.
    pub filter: SnapshotFilter,
    /// How often the snapshots are listed again.
    pub refresh: Duration,
}

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions {
            allow_other: false,
            filter: SnapshotFilter::default(),
            refresh: Duration::from_secs(5),
        }
    }
}

/// Mounts `repo`'s snapshots at `mountpoint` and serves them until `stop` is set (then
/// unmounts) or someone unmounts it (`fusermount -u`, `umount`). `mounted` is called once
/// the file system is there.
///
/// # Errors
/// When the mount point is not an empty directory, the repository cannot be read, or FUSE
/// is not available.
pub fn mount(
    repo: Repository,
    mountpoint: &Path,
    opts: &MountOptions,
    stop: &AtomicBool,
    mounted: impl FnOnce(),
) -> Result<()> {
    let entries = std::fs::read_dir(mountpoint).map_err(|e| {
        Error::io(
            format!("cannot use {} as the mount point", mountpoint.display()),
            e,
        )
    })?;
    if entries.count() > 0 {
        return Err(Error::invalid(format!(
            "{} is not empty: mount on an empty directory",
            mountpoint.display()
        )));
    }
    let fs = SnapshotFs::new(repo, opts.filter.clone(), opts.refresh)?;
    let mut config = fuser::Config::default();
    config.mount_options = vec![
        fuser::MountOption::RO,
        fuser::MountOption::FSName("cairn".into()),
        fuser::MountOption::Subtype("cairn".into()),
        fuser::MountOption::DefaultPermissions,
    ];
    if opts.allow_other {
        config.acl = fuser::SessionACL::All;
    }
    config.n_threads = Some(4);
    let session = fuser::spawn_mount2(fs, mountpoint, &config).map_err(|e| {
        Error::io(
            format!(
                "cannot mount at {} (FUSE needs /dev/fuse, and fusermount when not root)",
                mountpoint.display()
            ),
            e,
        )
    })?;
    mounted();
    loop {
        if stop.load(Ordering::Relaxed) {
            return session
                .umount_and_join()
                .map_err(|e| Error::io(format!("cannot unmount {}", mountpoint.display()), e));
        }
        if session.guard.is_finished() {
            // Unmounted from outside.
            return session
                .join()
                .map_err(|e| Error::io(format!("serving {}", mountpoint.display()), e));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
