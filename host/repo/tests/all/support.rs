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
