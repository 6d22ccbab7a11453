//! Backing up a tree that its owner changes while it is read (as a tenant may while root backs
//! up its volume): an entry swapped for a symlink is never followed, so nothing from outside
//! the tree is stored, and a FIFO, swapped in or not, never blocks the backup.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use cairn_repo::ops::backup::{BackupOptions, BackupProgress, BackupSource, ParentChoice, backup};
use cairn_repo::ops::walk::walk;
use cairn_repo::{IndexedRepository, Node, NodeKind, Repository, Snapshot};
use cairn_testing::InMemoryBackend;
use nix::fcntl::{AT_FDCWD, RenameFlags, renameat2};
use nix::sys::stat::Mode;

use crate::support::{actor, init};

const SECRET: &[u8] = b"SECRET of the host";
/// How many entries are swapped at once: more entries, more races per backup.
const SWAPPED: usize = 16;
/// A backup that takes longer than this is taken as hung.
const HANG: Duration = Duration::from_secs(20);

#[derive(Default)]
struct Warnings(Mutex<Vec<String>>);

impl BackupProgress for Warnings {
    fn warning(&self, _path: &Path, message: &str) {
        self.0.lock().unwrap().push(message.to_owned());
    }
}

/// A backup of `path` (reading every file), failing the test if it does not end in [`HANG`].
fn backup_with_deadline(repo: &Repository, path: &Path) -> (Snapshot, Vec<String>) {
    let (repo, path) = (repo.clone(), path.to_path_buf());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let repo = repo.to_indexed().expect("index");
        let mut opts = BackupOptions::new(actor());
        opts.parent = ParentChoice::None;
        let progress = Warnings::default();
        let out = backup(
            &repo,
            BackupSource::Paths(vec![path]),
            &opts,
            &progress,
            &AtomicBool::new(false),
        )
        .expect("backup");
        let _ = tx.send((out.snapshot, progress.0.into_inner().unwrap()));
    });
    rx.recv_timeout(HANG)
        .unwrap_or_else(|_| panic!("the backup hung (no end after {HANG:?})"))
}

/// Every node of `snapshot` by path, with a file's content.
fn nodes(repo: &IndexedRepository, snapshot: &Snapshot) -> Vec<(String, Node, Vec<u8>)> {
    let mut out = Vec::new();
    walk(repo, snapshot.tree, "", &mut |path, node| {
        let mut content = Vec::new();
        for id in node.content.iter().flatten() {
            content.extend(repo.read_blob(id)?);
        }
        out.push((path.to_owned(), node.clone(), content));
        Ok(true)
    })
    .expect("walk the snapshot");
    out
}

/// Keeps exchanging (`renameat2(RENAME_EXCHANGE)`, atomic) each pair of paths until dropped.
struct Swapper {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<u64>>,
}

impl Swapper {
    fn start(pairs: Vec<(PathBuf, PathBuf)>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut swaps = 0u64;
            while !flag.load(Ordering::Relaxed) {
                for (a, b) in &pairs {
                    renameat2(AT_FDCWD, a, AT_FDCWD, b, RenameFlags::RENAME_EXCHANGE)
                        .expect("exchange");
                    swaps += 1;
                }
            }
            swaps
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Swapper {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A tenant's volume `vol`, a staging directory beside it (same filesystem, not backed up)
/// and the host's files outside both.
struct Layout {
    _tmp: tempfile::TempDir,
    vol: PathBuf,
    staging: PathBuf,
    host: PathBuf,
}

fn layout() -> Layout {
    let tmp = tempfile::tempdir().unwrap();
    let (vol, staging, host) = (
        tmp.path().join("vol"),
        tmp.path().join("staging"),
        tmp.path().join("host"),
    );
    for d in [&vol, &staging, &host] {
        std::fs::create_dir(d).unwrap();
    }
    std::fs::write(host.join("secret"), SECRET).unwrap();
    std::fs::create_dir(host.join("dir")).unwrap();
    std::fs::write(host.join("dir/secret.txt"), SECRET).unwrap();
    std::fs::write(vol.join("stable"), "tenant").unwrap();
    Layout {
        _tmp: tmp,
        vol,
        staging,
        host,
    }
}

/// Runs backups of `vol` for a few seconds (at most `runs`) and calls `check` on each
/// snapshot's nodes and warnings.
fn backups_while_swapping(
    vol: &Path,
    pairs: Vec<(PathBuf, PathBuf)>,
    runs: usize,
    mut check: impl FnMut(&Snapshot, &[(String, Node, Vec<u8>)], &[String]),
) {
    let repo = init(Arc::new(InMemoryBackend::new()));
    let swapper = Swapper::start(pairs);
    let start = Instant::now();
    for _ in 0..runs {
        if start.elapsed() > Duration::from_secs(8) {
            break;
        }
        let (snapshot, warnings) = backup_with_deadline(&repo, vol);
        let indexed = repo.clone().to_indexed().unwrap();
        check(&snapshot, &nodes(&indexed, &snapshot), &warnings);
    }
    drop(swapper);
}

/// How many nodes of `nodes` named `prefix…` are of one of `kinds`.
fn kept(nodes: &[(String, Node, Vec<u8>)], prefix: &str, kinds: &[NodeKind]) -> usize {
    nodes
        .iter()
        .filter(|(p, n, _)| {
            p.rsplit('/').next().is_some_and(|n| n.starts_with(prefix)) && kinds.contains(&n.kind)
        })
        .count()
}

/// Whether `missing` entries left out of a snapshot were each warned about and counted as an
/// error: `Err` says what is wrong.
fn skips_warned(snapshot: &Snapshot, missing: usize, warnings: &[String]) -> Result<(), String> {
    let errors = snapshot.summary.as_ref().unwrap().errors;
    let changed = warnings
        .iter()
        .filter(|w| w.contains("changed while read"))
        .count();
    if (errors as usize) < missing || changed < missing {
        return Err(format!(
            "{missing} skipped, {errors} errors, warnings: {warnings:?}"
        ));
    }
    Ok(())
}

/// Panics unless [`skips_warned`].
fn skipped_with_warning(snapshot: &Snapshot, missing: usize, warnings: &[String]) {
    if let Err(e) = skips_warned(snapshot, missing, warnings) {
        panic!("{e}");
    }
}

#[test]
fn a_file_swapped_for_a_symlink_to_a_host_secret_never_stores_the_secret() {
    let l = layout();
    let mut pairs = Vec::new();
    for i in 0..SWAPPED {
        let (v, s) = (
            l.vol.join(format!("victim{i}")),
            l.staging.join(format!("{i}")),
        );
        std::fs::write(&v, "tenant").unwrap();
        symlink(l.host.join("secret"), &s).unwrap();
        pairs.push((v, s));
    }
    let (mut leaks, mut skipped, mut runs) = (0, 0, 0);
    let mut problems = Vec::new();
    let secret = l.host.join("secret");
    backups_while_swapping(&l.vol, pairs, 200, |snapshot, nodes, warnings| {
        runs += 1;
        let mut victims = 0;
        for (path, node, content) in nodes {
            if content.windows(SECRET.len()).any(|w| w == SECRET) {
                leaks += 1;
            }
            if !path.contains("/victim") {
                continue;
            }
            victims += 1;
            let target = node.link_target.as_ref().map(|t| PathBuf::from(t.to_os()));
            match node.kind {
                NodeKind::File if content == b"tenant" => {}
                NodeKind::Symlink if target.as_ref() == Some(&secret) => {}
                other => problems.push(format!("{path} saved as {other:?} {target:?}")),
            }
        }
        skipped += SWAPPED - victims;
        if let Err(e) = skips_warned(snapshot, SWAPPED - victims, warnings) {
            problems.push(e);
        }
    });
    assert_eq!(
        leaks, 0,
        "the host secret was stored {leaks} times in {runs} backups ({skipped} entries skipped)"
    );
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn a_directory_swapped_for_a_symlink_to_a_host_directory_never_stores_its_contents() {
    let l = layout();
    let mut pairs = Vec::new();
    for i in 0..SWAPPED {
        let (v, s) = (l.vol.join(format!("d{i}")), l.staging.join(format!("{i}")));
        std::fs::create_dir(&v).unwrap();
        std::fs::write(v.join("tenant.txt"), "tenant").unwrap();
        symlink(l.host.join("dir"), &s).unwrap();
        pairs.push((v, s));
    }
    let (mut leaks, mut runs) = (0, 0);
    backups_while_swapping(&l.vol, pairs, 200, |snapshot, nodes, warnings| {
        runs += 1;
        for (path, _, content) in nodes {
            if path.ends_with("/secret.txt") || content.windows(SECRET.len()).any(|w| w == SECRET) {
                leaks += 1;
            }
        }
        let dirs = kept(nodes, "d", &[NodeKind::Dir, NodeKind::Symlink]);
        skipped_with_warning(snapshot, SWAPPED - dirs, warnings);
    });
    assert_eq!(
        leaks, 0,
        "host files were stored {leaks} times in {runs} backups"
    );
}

#[test]
fn a_file_swapped_for_a_fifo_does_not_hang_the_backup() {
    let l = layout();
    let mut pairs = Vec::new();
    for i in 0..SWAPPED {
        let (v, s) = (l.vol.join(format!("f{i}")), l.staging.join(format!("{i}")));
        std::fs::write(&v, "tenant").unwrap();
        nix::unistd::mkfifo(&s, Mode::from_bits_truncate(0o600)).unwrap();
        pairs.push((v, s));
    }
    // Each backup ends within HANG or the test fails.
    backups_while_swapping(&l.vol, pairs, 200, |snapshot, nodes, warnings| {
        let files = kept(nodes, "f", &[NodeKind::File, NodeKind::Fifo]);
        skipped_with_warning(snapshot, SWAPPED - files, warnings);
    });
}

#[test]
fn fifos_and_devices_in_the_tree_are_recorded_without_being_opened() {
    let l = layout();
    nix::unistd::mkfifo(&l.vol.join("pipe"), Mode::from_bits_truncate(0o600)).unwrap();
    symlink("/dev/zero", l.vol.join("zero-link")).unwrap();
    if cairn_testing::fixture::is_root() {
        let dev = nix::sys::stat::makedev(1, 5);
        nix::sys::stat::mknod(
            &l.vol.join("zero"),
            nix::sys::stat::SFlag::S_IFCHR,
            Mode::from_bits_truncate(0o666),
            dev,
        )
        .unwrap();
    }
    let repo = init(Arc::new(InMemoryBackend::new()));
    let (snapshot, warnings) = backup_with_deadline(&repo, &l.vol);
    assert_eq!(snapshot.summary.as_ref().unwrap().errors, 0, "{warnings:?}");
    let nodes = nodes(&repo.to_indexed().unwrap(), &snapshot);
    let kind = |name: &str| {
        nodes
            .iter()
            .find(|(p, _, _)| p.ends_with(&format!("/{name}")))
            .map(|(_, n, _)| n.kind)
    };
    assert_eq!(kind("pipe"), Some(NodeKind::Fifo));
    assert_eq!(kind("zero-link"), Some(NodeKind::Symlink));
    if cairn_testing::fixture::is_root() {
        assert_eq!(kind("zero"), Some(NodeKind::Chardev));
    }
}
