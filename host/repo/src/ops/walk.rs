//! Walking a snapshot's trees depth-first, in name order.

use crate::error::{Error, Result};
use crate::format::tree::{Node, NodeKind};
use crate::id::Id;
use crate::indexed::IndexedRepository;
use crate::target_dir::MAX_DEPTH;

/// Calls `visit(path, node)` for every node below `tree`, parents before children; `path` is
/// `prefix` joined with the node's names by `/`. `visit` returns whether to descend into a
/// directory.
///
/// # Errors
/// Tree loading errors, those `visit` returns, and [`crate::ErrorKind::Corrupt`] for trees
/// nested more than [`MAX_DEPTH`] deep (a crafted repository must not exhaust the stack).
pub fn walk(
    repo: &IndexedRepository,
    tree: Id,
    prefix: &str,
    visit: &mut dyn FnMut(&str, &Node) -> Result<bool>,
) -> Result<()> {
    walk_at(
        repo,
        tree,
        prefix,
        &mut |path, node, _| visit(path, node),
        0,
    )
}

/// [`walk`], telling `visit` the id of the tree each node is in as well.
///
/// # Errors
/// As [`walk`].
pub fn walk_in_trees(
    repo: &IndexedRepository,
    tree: Id,
    prefix: &str,
    visit: &mut dyn FnMut(&str, &Node, &Id) -> Result<bool>,
) -> Result<()> {
    walk_at(repo, tree, prefix, visit, 0)
}

fn walk_at(
    repo: &IndexedRepository,
    tree: Id,
    prefix: &str,
    visit: &mut dyn FnMut(&str, &Node, &Id) -> Result<bool>,
    depth: usize,
) -> Result<()> {
    if depth >= MAX_DEPTH {
        return Err(Error::corrupt(format!(
            "{prefix} is nested more than {MAX_DEPTH} directories deep"
        )));
    }
    let t = repo.load_tree(&tree)?;
    for node in &t.nodes {
        let path = format!("{}/{}", prefix.trim_end_matches('/'), node.name.display());
        let descend = visit(&path, node, &tree)?;
        if descend
            && node.kind == NodeKind::Dir
            && let Some(sub) = node.subtree
        {
            walk_at(repo, sub, &path, visit, depth + 1)?;
        }
    }
    Ok(())
}
