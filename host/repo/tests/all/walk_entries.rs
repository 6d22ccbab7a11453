//! The backup walk records every entry kind as it is on disk: type, mode, owner, times,
//! content, link targets, device numbers, xattrs and hard links, also for files unchanged
//! since the parent snapshot (not read again).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use cairn_repo::ops::backup::{BackupOptions, BackupProgress, BackupSource, backup};
use cairn_repo::ops::walk::walk;
use cairn_repo::{Node, NodeKind, Repository, Snapshot};
use cairn_testing::InMemoryBackend;
use cairn_testing::fixture::{EntryState, build_everything, snapshot_state};

use crate::support::{actor, backup_path, init};

/// The nodes below `root` in `snapshot`, by path relative to `root`, with a file's content.
fn nodes_below(
    repo: &Repository,
    snapshot: &Snapshot,
    root: &Path,
) -> BTreeMap<String, (Node, Vec<u8>)> {
    let repo = repo.clone().to_indexed().unwrap();
    let prefix = format!("{}/", root.display());
    let mut out = BTreeMap::new();
    walk(&repo, snapshot.tree, "", &mut |path, node| {
        if let Some(rel) = path.strip_prefix(&prefix) {
            let mut content = Vec::new();
            for id in node.content.iter().flatten() {
                content.extend(repo.read_blob(id)?);
            }
            out.insert(rel.to_owned(), (node.clone(), content));
        }
        Ok(true)
    })
    .unwrap();
    out
}

fn kind_of_mode(mode: u32) -> NodeKind {
    match mode & 0o170_000 {
        0o040_000 => NodeKind::Dir,
        0o120_000 => NodeKind::Symlink,
        0o010_000 => NodeKind::Fifo,
        0o140_000 => NodeKind::Socket,
        0o020_000 => NodeKind::Chardev,
        0o060_000 => NodeKind::Blockdev,
        _ => NodeKind::File,
    }
}

/// Compares a node with what the fixture reads from the disk; returns what differs.
fn differences(rel: &str, want: &EntryState, node: &Node, content: &[u8]) -> Vec<String> {
    let mut diff = Vec::new();
    let mut check = |what: &str, ok: bool| {
        if !ok {
            diff.push(format!("{rel}: {what} differs: {want:?} vs {node:?}"));
        }
    };
    let kind = kind_of_mode(want.mode);
    check("kind", node.kind == kind);
    check("mode", node.mode == want.mode & 0o7777);
    check("owner", (node.uid, node.gid) == want.uid_gid);
    if kind != NodeKind::Symlink {
        check("mtime", node.mtime == want.mtime_ns);
    }
    let got = match kind {
        NodeKind::File => format!("{}:{}", blake3::hash(content).to_hex(), node.size),
        NodeKind::Symlink => node
            .link_target
            .as_ref()
            .map(|t| t.to_os().to_string_lossy().into_owned())
            .unwrap_or_default(),
        NodeKind::Dir => String::new(),
        _ => format!("rdev:{}", node.rdev),
    };
    check("content", got == want.content);
    let xattrs: Vec<(String, Vec<u8>)> = node
        .xattrs
        .iter()
        .map(|x| {
            let name = x.name.to_os().to_string_lossy().into_owned();
            (name, B64.decode(&x.value).unwrap())
        })
        .collect();
    check("xattrs", xattrs == want.xattrs);
    diff
}

fn assert_matches_disk(repo: &Repository, snapshot: &Snapshot, src: &Path) {
    let want = snapshot_state(src);
    let got = nodes_below(repo, snapshot, src);
    let missing: Vec<_> = want.keys().filter(|k| !got.contains_key(*k)).collect();
    let extra: Vec<_> = got.keys().filter(|k| !want.contains_key(*k)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:?}, extra {extra:?}"
    );
    let mut diff = Vec::new();
    for (rel, state) in &want {
        let (node, content) = &got[rel];
        diff.extend(differences(rel, state, node, content));
        if let Some(first) = &state.hardlink_group {
            check_same_inode(&mut diff, rel, node, &got[first].0);
        }
    }
    assert!(diff.is_empty(), "{diff:#?}");
}

fn check_same_inode(diff: &mut Vec<String>, rel: &str, node: &Node, first: &Node) {
    if node.inode != first.inode || node.content != first.content {
        diff.push(format!(
            "{rel}: not recorded as a hard link of {}",
            first.name.display()
        ));
    }
}

#[test]
fn every_entry_kind_is_recorded_as_on_disk_read_or_unchanged() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    build_everything(&src);
    let repo = init(Arc::new(InMemoryBackend::new()));
    let first = backup_path(&repo, &src).snapshot;
    assert_eq!(first.summary.as_ref().unwrap().errors, 0);
    assert_matches_disk(&repo, &first, &src);
    // Unchanged files (same inode, size, mtime and ctime) are taken from the parent, xattrs too.
    let second = backup_path(&repo, &src).snapshot;
    let s = second.summary.as_ref().unwrap();
    assert_eq!((s.errors, s.files_new, s.files_changed), (0, 0, 0));
    assert!(s.files_unmodified > 10, "{s:?}");
    assert_matches_disk(&repo, &second, &src);
}

/// Progress that wants totals and holds the first file until they are done, so that the
/// counting walk always ends before the backup.
#[derive(Default)]
struct Totals {
    done: std::sync::Mutex<Option<(u64, u64)>>,
    ready: std::sync::Condvar,
}

impl BackupProgress for Totals {
    fn wants_totals(&self) -> bool {
        true
    }
    fn totals(&self, files: u64, bytes: u64, done: bool) {
        if done {
            *self.done.lock().unwrap() = Some((files, bytes));
            self.ready.notify_all();
        }
    }
    fn file_started(&self, _path: &Path) {
        let done = self.done.lock().unwrap();
        let _ = self
            .ready
            .wait_timeout_while(done, Duration::from_secs(20), |d| d.is_none())
            .unwrap();
    }
}

#[test]
fn the_counting_walk_counts_files_and_bytes_without_following_symlinks() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, host) = (tmp.path().join("src"), tmp.path().join("host"));
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::create_dir(&host).unwrap();
    std::fs::write(src.join("a"), "12345").unwrap();
    std::fs::write(src.join("sub/b"), "123").unwrap();
    std::fs::write(host.join("secret"), "not counted").unwrap();
    std::os::unix::fs::symlink(&host, src.join("link")).unwrap();
    let repo = init(Arc::new(InMemoryBackend::new())).to_indexed().unwrap();
    let progress = Totals::default();
    backup(
        &repo,
        BackupSource::Paths(vec![src]),
        &BackupOptions::new(actor()),
        &progress,
        &AtomicBool::new(false),
    )
    .unwrap();
    assert_eq!(*progress.done.lock().unwrap(), Some((2, 8)));
}
