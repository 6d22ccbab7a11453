//! Rewriting snapshots: a snapshot's trees rebuilt with nodes changed or dropped (`rewrite
//! --exclude`, `repair snapshots`), saved as a new snapshot whose `original` names the first
//! of its line. Trees that come out the same keep their ids (the same bytes), so a snapshot
//! nothing changed in is not saved again. New trees are saved before the snapshot that
//! names them, and the old snapshot is removed (with `forget`) only after the new one is
//! stored, so a crash leaves both, never neither.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::FileType;
use crate::error::{Error, Result};
use crate::format::pack::{BlobType, Compression};
use crate::format::snapshot::Snapshot;
use crate::format::tree::{Node, NodeKind, Tree};
use crate::id::Id;
use crate::indexed::IndexedRepository;
use crate::packer::BlobSaver;
use crate::target_dir::MAX_DEPTH;

/// How a rewrite changes a snapshot's trees.
pub trait TreeEdit: Sync {
    /// The node at `path` as it is to be kept, or `None` to leave it out (a directory with
    /// everything below it). Called before the node's subtree is rewritten.
    fn node(&self, path: &str, node: Node) -> Option<Node>;

    /// What to put in place of the tree at `path` that cannot be read (`error`): `Ok(true)`
    /// an empty directory, `Ok(false)` to fail with the error.
    fn unreadable(&self, path: &str, error: &Error) -> bool {
        let _ = (path, error);
        false
    }

    /// Whether what comes out depends on where a tree is (patterns do); when not, a tree is
    /// rewritten once whatever paths share it.
    fn by_path(&self) -> bool {
        true
    }
}

/// One snapshot rewritten.
#[derive(Debug, Clone)]
pub struct Rewritten {
    /// The snapshot as it was.
    pub old: Id,
    /// The new snapshot (`None` in a dry run).
    pub new: Option<Id>,
    /// Whether the old one was removed.
    pub forgotten: bool,
}

/// What to do with rewritten snapshots.
#[derive(Debug, Clone, Default)]
pub struct RewriteOptions {
    /// Remove each snapshot that was rewritten (after its new one is stored).
    pub forget: bool,
    /// Write nothing; say what would change.
    pub dry_run: bool,
    /// Tags to add to the new snapshots (`repair snapshots`: `repaired`).
    pub add_tags: Vec<String>,
}

struct Rewriter<'a> {
    repo: &'a IndexedRepository,
    saver: &'a BlobSaver,
    edit: &'a dyn TreeEdit,
    /// (path, tree) → rewritten tree: the same subtree at the same path comes out the same.
    memo: Mutex<HashMap<(String, Id), Id>>,
}

impl Rewriter<'_> {
    fn tree(&self, tree: Id, path: &str, depth: usize) -> Result<Id> {
        if depth >= MAX_DEPTH {
            return Err(Error::corrupt(format!(
                "{path} is nested more than {MAX_DEPTH} directories deep"
            )));
        }
        let key = (
            if self.edit.by_path() {
                path.to_owned()
            } else {
                String::new()
            },
            tree,
        );
        if let Some(done) = self.memo.lock().expect("memo lock").get(&key) {
            return Ok(*done);
        }
        let old = match self.repo.load_tree(&tree) {
            Ok(t) => t,
            Err(e) if self.edit.unreadable(path, &e) => return self.empty_tree(),
            Err(e) => return Err(e),
        };
        let mut nodes = Vec::with_capacity(old.nodes.len());
        for node in old.nodes {
            let child = format!("{}/{}", path.trim_end_matches('/'), node.name.display());
            let Some(mut node) = self.edit.node(&child, node) else {
                continue;
            };
            if node.kind == NodeKind::Dir
                && let Some(sub) = node.subtree
            {
                node.subtree = Some(self.tree(sub, &child, depth + 1)?);
            }
            nodes.push(node);
        }
        let mut new = Tree { nodes };
        new.sort();
        let (id, _) = self.saver.save(BlobType::Tree, &new.to_bytes())?;
        self.memo.lock().expect("memo lock").insert(key, id);
        Ok(id)
    }

    /// The empty tree (saved once: the saver stores a blob it already has only once).
    fn empty_tree(&self) -> Result<Id> {
        let (id, _) = self
            .saver
            .save(BlobType::Tree, &Tree { nodes: Vec::new() }.to_bytes())?;
        Ok(id)
    }
}

/// Rewrites `snapshots` with `edit` (the caller holds the lock: exclusive with `forget`).
/// A snapshot whose root tree cannot be read and that `edit` does not replace is left as
/// it is and named in [`RewriteReport::failed`]. Snapshots that come out the same are not in
/// the result.
///
/// # Errors
/// Write errors; what was saved before them stays (new snapshots, each complete).
pub fn rewrite(
    repo: &IndexedRepository,
    snapshots: &[(Id, Snapshot)],
    edit: &dyn TreeEdit,
    opts: &RewriteOptions,
) -> Result<RewriteReport> {
    let saver = BlobSaver::new(repo, repo.index().clone(), Compression::Auto, opts.dry_run);
    let rewriter = Rewriter {
        repo,
        saver: &saver,
        edit,
        memo: Mutex::default(),
    };
    let mut changed = Vec::new();
    let mut failed = Vec::new();
    for (id, snap) in snapshots {
        match rewriter.tree(snap.tree, "/", 0) {
            Ok(tree) if tree == snap.tree => {}
            Ok(tree) => changed.push((*id, snap, tree)),
            Err(e)
                if e.kind() == crate::ErrorKind::Corrupt
                    || e.kind() == crate::ErrorKind::NotFound =>
            {
                failed.push((*id, e));
            }
            Err(e) => {
                let _ = saver.abandon();
                return Err(e.context(format!("rewriting snapshot {}", id.short())));
            }
        }
    }
    saver.finish()?;
    let mut out = Vec::new();
    for (old, snap, tree) in changed {
        let mut new = snap.clone();
        new.tree = tree;
        new.original = Some(snap.original.unwrap_or(old));
        new.tags.extend(opts.add_tags.iter().cloned());
        new.tags.sort();
        new.tags.dedup();
        if opts.dry_run {
            out.push(Rewritten {
                old,
                new: None,
                forgotten: false,
            });
            continue;
        }
        let id = repo.save_file(FileType::Snapshot, &new)?;
        if opts.forget {
            repo.backend().remove(FileType::Snapshot, &old.to_hex())?;
        }
        out.push(Rewritten {
            old,
            new: Some(id),
            forgotten: opts.forget,
        });
    }
    Ok(RewriteReport {
        rewritten: out,
        failed,
    })
}

/// What [`rewrite`] did.
#[derive(Debug, Default)]
pub struct RewriteReport {
    /// The snapshots rewritten.
    pub rewritten: Vec<Rewritten>,
    /// Those that could not be read (left as they are), with why.
    pub failed: Vec<(Id, Error)>,
}

/// `rewrite --exclude`: leaves out every entry whose path (in the snapshot) matches, as
/// backup's excludes match.
pub struct Excluding(pub crate::glob::PathPatterns);

impl TreeEdit for Excluding {
    fn node(&self, path: &str, node: Node) -> Option<Node> {
        (!self.0.matches(std::path::Path::new(path))).then_some(node)
    }
}
