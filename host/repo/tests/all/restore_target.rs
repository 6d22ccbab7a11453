//! Restore into a target that others control: no link is followed, nothing outside the target
//! is written, changed or removed, secrets are not readable while written, and an interrupted
//! restore leaves no file of zeros under a real name.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use cairn_repo::format::tree::{Name, Node, NodeKind, Tree};
use cairn_repo::ops::backup::NoProgress;
use cairn_repo::ops::check::{ReadData, check};
use cairn_repo::ops::restore::{Overwrite, RestoreOptions, RestoreProgress, restore};
use cairn_repo::packer::BlobSaver;
use cairn_repo::{BlobType, Compression, FileType, Id, IndexedRepository, Repository};
use cairn_testing::InMemoryBackend;
use cairn_testing::fixture::random_bytes;

use crate::support::{backup_path, init};

fn options(target: &Path) -> RestoreOptions {
    let mut o = RestoreOptions::default();
    o.target = target.to_path_buf();
    o
}

fn run(repo: &Repository, tree: Id, opts: &RestoreOptions) -> cairn_repo::Result<()> {
    let repo = repo.clone().to_indexed().unwrap();
    restore(&repo, tree, opts, &NoProgress, &AtomicBool::new(false)).map(drop)
}

/// The root tree of the snapshot `backup_path` made of `src` (the tree holding `src`'s
/// absolute path, down to `src` itself).
fn tree_of(repo: &Repository, src: &Path) -> Id {
    let repo = repo.clone().to_indexed().unwrap();
    let (_, snap) = repo.repo().snapshots().unwrap().pop().unwrap();
    repo.find_node(snap.tree, &src.to_string_lossy())
        .unwrap()
        .subtree
        .unwrap()
}

/// Saves `trees` (each a list of nodes, as given: unsorted or with duplicates) as tree blobs.
fn save_trees(repo: &Repository, trees: &[Vec<Node>]) -> Vec<Id> {
    let indexed = repo.clone().to_indexed().unwrap();
    let saver = BlobSaver::new(repo, indexed.index().clone(), Compression::Auto, false);
    let ids = trees
        .iter()
        .map(|nodes| {
            let bytes = serde_json::to_vec(&Tree {
                nodes: nodes.clone(),
            })
            .unwrap();
            saver.save(BlobType::Tree, &bytes).unwrap().0
        })
        .collect();
    saver.finish().unwrap();
    ids
}

fn node(name: &str, kind: NodeKind, mode: u32) -> Node {
    let mut n = Node::new(Name(name.as_bytes().to_vec()), kind);
    n.mode = mode;
    n
}

/// A directory `a` holding `f`, then a link `a` to a host directory: restore used to make the
/// directory, replace it by the link and write `f` through it (setuid, world-writable).
#[test]
fn a_tree_naming_an_entry_twice_writes_nothing_outside() {
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("f"), b"host file").unwrap();
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("seed"), b"pwned").unwrap();
    let repo = init(Arc::new(InMemoryBackend::new()));
    let out = backup_path(&repo, src.path());
    let indexed = repo.clone().to_indexed().unwrap();
    let seed = indexed
        .load_tree(&tree_of(&repo, src.path()))
        .unwrap()
        .nodes
        .remove(0);
    let mut f = seed.clone();
    f.name = Name(b"f".to_vec());
    f.mode = 0o4777;
    let inner = save_trees(&repo, &[vec![f]])[0];
    let mut dir = node("a", NodeKind::Dir, 0o755);
    dir.subtree = Some(inner);
    let mut link = node("a", NodeKind::Symlink, 0o777);
    link.link_target = Some(Name(host.path().as_os_str().as_encoded_bytes().to_vec()));
    let root = save_trees(&repo, &[vec![dir, link]])[0];

    let target = tempfile::tempdir().unwrap();
    let mut opts = options(target.path());
    opts.delete = true;
    let err = run(&repo, root, &opts).unwrap_err().to_string();
    assert!(
        err.contains(&root.to_hex()) && err.contains("`a` twice"),
        "{err}"
    );
    assert_eq!(std::fs::read(host.path().join("f")).unwrap(), b"host file");
    let mode = std::fs::metadata(host.path().join("f")).unwrap().mode();
    assert_eq!(mode & 0o7000, 0, "mode of the host file changed: {mode:o}");

    // check names the tree and the entry.
    let mut snap = out.snapshot.clone();
    snap.tree = root;
    repo.save_file(FileType::Snapshot, &snap).unwrap();
    let report = check(&repo, ReadData::None, &NoProgress, &Default::default()).unwrap();
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.object.contains(&root.to_hex()) || p.message.contains("`a` twice")),
        "{:?}",
        report.problems
    );
    assert!(report.errors() > 0);
}

/// A source tree: `a/f` (two blobs, 0600 in a 0755 directory) and `b` (one blob).
fn source() -> (tempfile::TempDir, Repository, Id) {
    let src = tempfile::tempdir().unwrap();
    std::fs::create_dir(src.path().join("a")).unwrap();
    std::fs::write(src.path().join("a/f"), random_bytes(3 << 20, 9)).unwrap();
    std::fs::set_permissions(src.path().join("a/f"), PermissionsExt::from_mode(0o600)).unwrap();
    std::fs::set_permissions(src.path().join("a"), PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::write(src.path().join("b"), b"bee").unwrap();
    let repo = init(Arc::new(InMemoryBackend::new()));
    backup_path(&repo, src.path());
    let tree = tree_of(&repo, src.path());
    (src, repo, tree)
}

/// `a` in the target is a link to a host directory: with or without include patterns, with
/// `--delete`, the host directory is neither written nor emptied; the link is replaced.
#[test]
fn a_link_already_in_the_target_is_replaced_not_followed() {
    let (_src, repo, tree) = source();
    for includes in [vec![], vec!["/a/f".to_string()]] {
        let host = tempfile::tempdir().unwrap();
        std::fs::write(host.path().join("f"), b"host file").unwrap();
        std::fs::write(host.path().join("other"), b"keep me").unwrap();
        let target = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(host.path(), target.path().join("a")).unwrap();
        let mut opts = options(target.path());
        opts.includes = includes.clone();
        opts.delete = true;
        run(&repo, tree, &opts).unwrap();
        assert_eq!(
            std::fs::read(host.path().join("f")).unwrap(),
            b"host file",
            "{includes:?}"
        );
        assert!(host.path().join("other").exists(), "{includes:?}");
        let a = std::fs::symlink_metadata(target.path().join("a")).unwrap();
        assert!(
            a.is_dir(),
            "{includes:?}: the link was replaced by the directory"
        );
        assert_eq!(
            std::fs::read(target.path().join("a/f")).unwrap().len(),
            3 << 20
        );
    }
}

/// `--overwrite never` keeps a file where the snapshot has a directory.
#[test]
fn overwrite_never_keeps_a_file_in_the_place_of_a_directory() {
    let (_src, repo, tree) = source();
    for includes in [vec![], vec!["/a/f".to_string()]] {
        let target = tempfile::tempdir().unwrap();
        std::fs::write(target.path().join("a"), b"mine").unwrap();
        let mut opts = options(target.path());
        opts.overwrite = Overwrite::Never;
        opts.includes = includes.clone();
        run(&repo, tree, &opts).unwrap();
        assert_eq!(
            std::fs::read(target.path().join("a")).unwrap(),
            b"mine",
            "{includes:?}"
        );
    }
}

/// Watches the target while content is written.
struct Watch {
    target: PathBuf,
    cancel: Option<Arc<AtomicBool>>,
    seen: Mutex<Vec<String>>,
}

impl RestoreProgress for Watch {
    fn bytes(&self, _n: u64) {
        let mut seen = self.seen.lock().unwrap();
        for e in walk(&self.target) {
            let m = std::fs::symlink_metadata(&e).unwrap();
            seen.push(format!(
                "{} {:o}",
                e.strip_prefix(&self.target).unwrap().display(),
                m.mode() & 0o7777
            ));
        }
        if let Some(c) = &self.cancel {
            c.store(true, Ordering::Relaxed);
        }
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if e.file_type().unwrap().is_dir() {
            out.extend(walk(&p));
        }
        out.push(p);
    }
    out
}

fn restore_watched(repo: &IndexedRepository, tree: Id, watch: &Watch) -> cairn_repo::Result<()> {
    let never = AtomicBool::new(false);
    let cancel = watch.cancel.as_deref().unwrap_or(&never);
    restore(repo, tree, &options(&watch.target), watch, cancel).map(drop)
}

/// While content is written, new directories are 0700 and the 0600 file is never wider; at
/// the end each has its own mode.
#[test]
fn nothing_is_readable_by_others_while_it_is_written() {
    let (_src, repo, tree) = source();
    let target = tempfile::tempdir().unwrap();
    let watch = Watch {
        target: target.path().join("t"),
        cancel: None,
        seen: Mutex::default(),
    };
    restore_watched(&repo.clone().to_indexed().unwrap(), tree, &watch).unwrap();
    let seen = watch.seen.into_inner().unwrap();
    assert!(!seen.is_empty());
    for s in &seen {
        let (path, mode) = s.rsplit_once(' ').unwrap();
        let mode = u32::from_str_radix(mode, 8).unwrap();
        if path == "a" {
            assert_eq!(mode, 0o700, "{s}");
        } else if path.starts_with("a/") {
            assert_eq!(mode & 0o077, 0, "{s}");
        }
    }
    let mode = |p: &str| std::fs::metadata(watch.target.join(p)).unwrap().mode() & 0o7777;
    assert_eq!((mode("a"), mode("a/f")), (0o755, 0o600));
}

/// A restore stopped while a file of several blobs is written leaves no file under its name
/// (and no temporary one); a second run with `--overwrite never` then restores it whole.
#[test]
fn an_interrupted_restore_leaves_no_file_of_zeros() {
    let (_src, repo, tree) = source();
    let repo = repo.to_indexed().unwrap();
    let target = tempfile::tempdir().unwrap();
    let watch = Watch {
        target: target.path().to_path_buf(),
        cancel: Some(Arc::new(AtomicBool::new(false))),
        seen: Mutex::default(),
    };
    let err = restore_watched(&repo, tree, &watch).unwrap_err();
    assert_eq!(err.kind(), cairn_repo::ErrorKind::Interrupted, "{err}");
    assert!(!target.path().join("a/f").exists());
    let left: Vec<_> = walk(target.path())
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(".cairn-restore-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    let mut opts = options(target.path());
    opts.overwrite = Overwrite::Never;
    opts.verify = true;
    restore(&repo, tree, &opts, &NoProgress, &AtomicBool::new(false)).unwrap();
    assert_eq!(
        std::fs::read(target.path().join("a/f")).unwrap().len(),
        3 << 20
    );
}

/// Swaps entries of the target while content is written, once: each entry whose name starts
/// with `prefix` is renamed away and replaced by a hard link to `host`, outside the target.
struct Swap {
    target: PathBuf,
    host: PathBuf,
    prefix: &'static str,
    done: AtomicBool,
}

impl RestoreProgress for Swap {
    fn bytes(&self, _n: u64) {
        if self.done.load(Ordering::SeqCst) {
            return;
        }
        // Files are written in parallel: the first bytes may be another file's, written
        // while no entry with the prefix exists. The swap waits for one (else the restore
        // could succeed without having been attacked).
        let found: Vec<PathBuf> = walk(&self.target)
            .into_iter()
            .filter(|e| {
                e.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with(self.prefix)
            })
            .collect();
        if found.is_empty() || self.done.swap(true, Ordering::SeqCst) {
            return;
        }
        for e in found {
            // Gone since the walk (finished and renamed): nothing to swap there.
            if std::fs::rename(&e, e.with_extension("moved")).is_ok() {
                std::fs::hard_link(&self.host, &e).unwrap();
            }
        }
    }
}

/// A host file (0600) outside any target, and a swapper aiming at it.
fn swapper(target: &Path, prefix: &'static str) -> (tempfile::TempDir, Swap) {
    let host_dir = tempfile::tempdir().unwrap();
    let host = host_dir.path().join("shadow");
    std::fs::write(&host, b"host secret").unwrap();
    std::fs::set_permissions(&host, PermissionsExt::from_mode(0o600)).unwrap();
    let swap = Swap {
        target: target.to_path_buf(),
        host,
        prefix,
        done: AtomicBool::new(false),
    };
    (host_dir, swap)
}

fn assert_host_intact(swap: &Swap, what: &str) {
    assert!(swap.done.load(Ordering::SeqCst));
    assert_eq!(std::fs::read(&swap.host).unwrap(), b"host secret", "{what}");
    let mode = std::fs::metadata(&swap.host).unwrap().mode() & 0o7777;
    assert_eq!(mode, 0o600, "{what}");
}

/// A hard link to a host file put in place of the file being written (under its temporary
/// name) is not written through: restore checks the inode it made before every later open.
#[test]
fn a_file_swapped_while_written_is_not_written_through() {
    let (_src, repo, tree) = source();
    let repo = repo.to_indexed().unwrap();
    let target = tempfile::tempdir().unwrap();
    let (_host, swap) = swapper(target.path(), ".cairn-restore-");
    let result = restore(
        &repo,
        tree,
        &options(target.path()),
        &swap,
        &AtomicBool::new(false),
    );
    assert_host_intact(&swap, &format!("{result:?}"));
    let err = result.expect_err("the file being written was replaced");
    let why = std::error::Error::source(&err)
        .map(|s| s.to_string())
        .unwrap_or_default();
    assert!(why.contains("was replaced"), "{err}: {why}");
}

/// A FIFO swapped for a hard link to a host file before its mode is set: the host file keeps
/// its mode and owner, and the restore says what it left alone.
#[test]
fn a_special_file_swapped_before_its_metadata_is_left_alone() {
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("b"), b"bee").unwrap();
    let fifo = src.path().join("p");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    std::fs::set_permissions(&fifo, PermissionsExt::from_mode(0o666)).unwrap();
    let repo = init(Arc::new(InMemoryBackend::new()));
    backup_path(&repo, src.path());
    let tree = tree_of(&repo, src.path());
    let repo = repo.to_indexed().unwrap();
    let target = tempfile::tempdir().unwrap();
    let (_host, swap) = swapper(target.path(), "p");
    let mut opts = options(target.path());
    opts.owner = true;
    let summary = restore(&repo, tree, &opts, &swap, &AtomicBool::new(false)).unwrap();
    assert_host_intact(&swap, "after the FIFO's metadata");
    assert!(summary.warnings >= 1, "{summary:?}");
}

/// A tenant's chain of directories deeper than cairn descends: the backup warns about what it
/// leaves out (an incomplete snapshot), neither it nor the restore of that snapshot runs out of
/// stack, and removing the restored chain works through descriptors.
#[test]
fn a_chain_of_directories_deeper_than_the_limit_is_cut_with_a_warning() {
    use cairn_repo::target_dir::{MAX_DEPTH, TargetDir, remove_in};
    let src = tempfile::tempdir().unwrap();
    let top = src.path().join("deep");
    // Made through descriptors: the full path is longer than PATH_MAX.
    let root = TargetDir::create(&top).unwrap();
    let chain: PathBuf = std::iter::repeat_n("d", MAX_DEPTH + 50).collect();
    root.make_dirs(&chain, false).unwrap();
    let repo = init(Arc::new(InMemoryBackend::new()));
    let out = backup_path(&repo, src.path());
    assert_eq!(
        out.snapshot.summary.unwrap().errors,
        1,
        "the cut is counted"
    );
    let tree = tree_of(&repo, src.path());
    let target = tempfile::tempdir().unwrap();
    run(&repo, tree, &options(target.path())).unwrap();
    remove_in(
        TargetDir::create(target.path()).unwrap().fd(),
        std::ffi::OsStr::new("deep"),
    )
    .unwrap_or_else(|e| assert!(e.to_string().contains("nested"), "{e}"));
    remove_in(root.fd(), std::ffi::OsStr::new("d")).unwrap_err();
}
