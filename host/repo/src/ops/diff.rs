//! `diff`: what changed between two snapshots.

use serde::Serialize;

use crate::error::Result;
use crate::format::tree::{Node, NodeKind, Tree};
use crate::id::Id;
use crate::indexed::IndexedRepository;

/// How an entry differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    /// Only in the second snapshot.
    Added,
    /// Only in the first.
    Removed,
    /// Content or type differs.
    Modified,
    /// Only metadata (mode, owner, times, xattrs) differs.
    Metadata,
}

impl Change {
    /// The one-letter marker restic uses (`+`, `-`, `M`, `U`).
    pub fn marker(self) -> &'static str {
        match self {
            Change::Added => "+",
            Change::Removed => "-",
            Change::Modified => "M",
            Change::Metadata => "U",
        }
    }
}

/// One difference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiffEntry {
    /// Path in the snapshot (`/`-separated; directories end with `/`).
    pub path: String,
    /// What changed.
    pub change: Change,
}

fn display(prefix: &str, n: &Node) -> String {
    let slash = if n.kind == NodeKind::Dir { "/" } else { "" };
    format!("{prefix}/{}{slash}", n.name.display())
}

fn load(repo: &IndexedRepository, id: Option<Id>) -> Result<Tree> {
    match id {
        Some(id) => repo.load_tree(&id),
        None => Ok(Tree::default()),
    }
}

fn all_below(
    repo: &IndexedRepository,
    prefix: &str,
    n: &Node,
    change: Change,
    out: &mut Vec<DiffEntry>,
) -> Result<()> {
    out.push(DiffEntry {
        path: display(prefix, n),
        change,
    });
    if n.kind == NodeKind::Dir {
        let p = format!("{prefix}/{}", n.name.display());
        for c in load(repo, n.subtree)?.nodes {
            all_below(repo, &p, &c, change, out)?;
        }
    }
    Ok(())
}

fn diff_trees(
    repo: &IndexedRepository,
    prefix: &str,
    a: Option<Id>,
    b: Option<Id>,
    out: &mut Vec<DiffEntry>,
) -> Result<()> {
    if a == b {
        return Ok(());
    }
    let (ta, tb) = (load(repo, a)?, load(repo, b)?);
    let (mut i, mut j) = (0, 0);
    while i < ta.nodes.len() || j < tb.nodes.len() {
        let order = match (ta.nodes.get(i), tb.nodes.get(j)) {
            (Some(x), Some(y)) => x.name.cmp(&y.name),
            (Some(_), None) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        };
        match order {
            std::cmp::Ordering::Less => {
                all_below(repo, prefix, &ta.nodes[i], Change::Removed, out)?;
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                all_below(repo, prefix, &tb.nodes[j], Change::Added, out)?;
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                let (x, y) = (&ta.nodes[i], &tb.nodes[j]);
                if x.kind != y.kind {
                    all_below(repo, prefix, x, Change::Removed, out)?;
                    all_below(repo, prefix, y, Change::Added, out)?;
                } else if x.kind == NodeKind::Dir {
                    let p = format!("{prefix}/{}", x.name.display());
                    diff_trees(repo, &p, x.subtree, y.subtree, out)?;
                } else if x.content != y.content
                    || x.link_target != y.link_target
                    || x.rdev != y.rdev
                {
                    out.push(DiffEntry {
                        path: display(prefix, x),
                        change: Change::Modified,
                    });
                } else if x.mode != y.mode
                    || x.uid != y.uid
                    || x.gid != y.gid
                    || x.mtime != y.mtime
                    || x.xattrs != y.xattrs
                {
                    out.push(DiffEntry {
                        path: display(prefix, x),
                        change: Change::Metadata,
                    });
                }
                i += 1;
                j += 1;
            }
        }
    }
    Ok(())
}

/// The differences from tree `a` to tree `b`, in path order.
///
/// # Errors
/// Tree loading errors.
pub fn diff(repo: &IndexedRepository, a: Id, b: Id) -> Result<Vec<DiffEntry>> {
    let mut out = Vec::new();
    diff_trees(repo, "", Some(a), Some(b), &mut out)?;
    Ok(out)
}
