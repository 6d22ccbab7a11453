//! Helpers shared by the engine tests.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use cairn_repo::ops::backup::{BackupOptions, BackupOutcome, BackupSource, NoProgress, backup};
use cairn_repo::{Actor, Backend, InitOptions, KdfParams, Repository};

pub const PASSWORD: &[u8] = b"test password";

pub fn fast_kdf() -> KdfParams {
    KdfParams {
        memory_kib: 256,
        iterations: 1,
        parallelism: 1,
    }
}

pub fn actor() -> Actor {
    Actor {
        hostname: "test-host".into(),
        username: "tester".into(),
    }
}

pub fn init(backend: Arc<dyn Backend>) -> Repository {
    Repository::init(
        backend,
        PASSWORD,
        &InitOptions::default().kdf(fast_kdf()),
        &actor(),
    )
    .expect("init")
}

pub fn backup_path(repo: &Repository, path: &Path) -> BackupOutcome {
    let repo = repo.clone().to_indexed().expect("index");
    backup(
        &repo,
        BackupSource::Paths(vec![path.to_path_buf()]),
        &BackupOptions::new(actor()),
        &NoProgress,
        &AtomicBool::new(false),
    )
    .expect("backup")
}

/// Backs `root` up twice as the volume `volume` (the snapshot's tree is `root` itself), with
/// `root/a.txt` rewritten in between: two snapshots that share most of their blobs.
pub fn backup_volume_twice(repo: &Repository, root: &Path, volume: &str, mut opts: BackupOptions) {
    opts.volume = Some(volume.into());
    for round in 0..2 {
        if round == 1 {
            std::fs::write(root.join("a.txt"), "changed\n").unwrap();
        }
        backup(
            &repo.clone().to_indexed().unwrap(),
            BackupSource::Volume(root.to_path_buf()),
            &opts,
            &NoProgress,
            &AtomicBool::new(false),
        )
        .unwrap();
    }
}
