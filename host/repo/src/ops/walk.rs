//! Walking a snapshot's trees depth-first, in name order.

use crate::error::Result;
use crate::format::tree::{Node, NodeKind};
use crate::id::Id;
use crate::indexed::IndexedRepository;

/// Calls `visit(path, node)` for every node below `tree`, parents before children; `path` is
/// `prefix` joined with the node's names by `/`. `visit` returns whether to descend into a
/// directory.
///
/// # Errors
/// Tree loading errors and those `visit` returns.
pub fn walk(
    repo: &IndexedRepository,
    tree: Id,
    prefix: &str,
    visit: &mut dyn FnMut(&str, &Node) -> Result<bool>,
) -> Result<()> {
    let t = repo.load_tree(&tree)?;
    for node in &t.nodes {
        let path = format!("{}/{}", prefix.trim_end_matches('/'), node.name.display());
        let descend = visit(&path, node)?;
        if descend
            && node.kind == NodeKind::Dir
            && let Some(sub) = node.subtree
        {
            walk(repo, sub, &path, visit)?;
        }
    }
    Ok(())
}
