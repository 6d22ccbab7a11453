//! Finding entries in snapshots: by name or path pattern, by modification time, or by the
//! blob, tree or pack that holds them (`cairn find`, as restic's).

use std::collections::HashSet;

use crate::error::{Error, Result};
use crate::format::tree::{Node, NodeKind};
use crate::glob::PathPatterns;
use crate::id::Id;
use crate::indexed::IndexedRepository;
use crate::ops::walk::walk_in_trees;

/// What to look for.
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// Names (a pattern without `/`) or whole paths (with `/`) to match; with `blobs` or
    /// `trees`, unused.
    pub patterns: Vec<String>,
    /// Match patterns without regard to case.
    pub ignore_case: bool,
    /// Only entries modified at or after this time (ns since the epoch).
    pub oldest: Option<i64>,
    /// Only entries modified at or before this time.
    pub newest: Option<i64>,
    /// Data or tree blob ids (hex, or prefixes of it): the files whose content holds them.
    pub blobs: Vec<String>,
    /// Tree ids (hex, or prefixes): the directories they are.
    pub trees: Vec<String>,
}

/// What a search is, compiled.
pub struct Search {
    mode: Mode,
    oldest: Option<i64>,
    newest: Option<i64>,
}

enum Mode {
    Pattern(PathPatterns, bool),
    Objects { blobs: Ids, trees: Ids },
}

/// Ids to look for: whole ones in a set (`--pack` gives thousands), prefixes in a list.
#[derive(Default)]
struct Ids {
    whole: HashSet<Id>,
    prefixes: Vec<String>,
}

impl Ids {
    fn new(given: &[String]) -> Ids {
        let mut ids = Ids::default();
        for s in given {
            let s = s.to_ascii_lowercase();
            match s.parse::<Id>() {
                Ok(id) => {
                    ids.whole.insert(id);
                }
                Err(_) => ids.prefixes.push(s),
            }
        }
        ids
    }
}

/// One entry found.
pub struct Hit<'a> {
    /// Its path in the snapshot.
    pub path: &'a str,
    /// The entry.
    pub node: &'a Node,
    /// The tree it is in.
    pub parent: &'a Id,
    /// The id that made it a hit, in a blob or tree search: a blob of its content, or its
    /// own subtree.
    pub object: Option<(ObjectKind, Id)>,
}

/// Which kind of object a blob or tree search found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    /// A data blob of a file's content.
    Blob,
    /// A directory's tree.
    Tree,
}

fn is_hex_prefix(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

impl Search {
    /// Compiles `query`.
    ///
    /// # Errors
    /// [`crate::ErrorKind::InvalidInput`] naming a bad pattern or id, or when there is
    /// nothing to look for.
    pub fn new(query: &Query) -> Result<Search> {
        let objects = !query.blobs.is_empty() || !query.trees.is_empty();
        for id in query.blobs.iter().chain(&query.trees) {
            if !is_hex_prefix(id) {
                return Err(Error::invalid(format!(
                    "`{id}` is not an id (hex digits, or the start of them)"
                )));
            }
        }
        let mode = if objects {
            Mode::Objects {
                blobs: Ids::new(&query.blobs),
                trees: Ids::new(&query.trees),
            }
        } else {
            if query.patterns.is_empty() {
                return Err(Error::invalid("nothing to find: give a pattern"));
            }
            let patterns: Vec<String> = if query.ignore_case {
                query.patterns.iter().map(|p| p.to_lowercase()).collect()
            } else {
                query.patterns.clone()
            };
            Mode::Pattern(PathPatterns::new(&patterns)?, query.ignore_case)
        };
        Ok(Search {
            mode,
            oldest: query.oldest,
            newest: query.newest,
        })
    }

    /// Calls `hit` for every entry below `tree` (a snapshot's root) that matches, in walk
    /// order. A tree search also finds the root itself (path `/`).
    ///
    /// # Errors
    /// Tree loading errors (a damaged repository), and those of `hit`.
    pub fn run(
        &self,
        repo: &IndexedRepository,
        tree: Id,
        hit: &mut dyn FnMut(Hit<'_>) -> Result<()>,
    ) -> Result<()> {
        if let Mode::Objects { trees, .. } = &self.mode
            && let Some(found) = matching(trees, &tree)
        {
            let mut root = Node::new(Default::default(), NodeKind::Dir);
            root.subtree = Some(tree);
            hit(Hit {
                path: "/",
                node: &root,
                parent: &tree,
                object: Some((ObjectKind::Tree, found)),
            })?;
        }
        walk_in_trees(repo, tree, "/", &mut |path, node, parent| {
            let object = self.object(node);
            if object.is_some() || self.matches(path, node) {
                hit(Hit {
                    path,
                    node,
                    parent,
                    object,
                })?;
            }
            Ok(true)
        })
    }

    fn in_time(&self, node: &Node) -> bool {
        self.oldest.is_none_or(|t| node.mtime >= t) && self.newest.is_none_or(|t| node.mtime <= t)
    }

    fn matches(&self, path: &str, node: &Node) -> bool {
        let Mode::Pattern(patterns, ignore_case) = &self.mode else {
            return false;
        };
        if !self.in_time(node) {
            return false;
        }
        if *ignore_case {
            patterns.matches(std::path::Path::new(&path.to_lowercase()))
        } else {
            patterns.matches(std::path::Path::new(path))
        }
    }

    fn object(&self, node: &Node) -> Option<(ObjectKind, Id)> {
        let Mode::Objects { blobs, trees } = &self.mode else {
            return None;
        };
        if !self.in_time(node) {
            return None;
        }
        if let Some(sub) = node.subtree
            && let Some(found) = matching(trees, &sub).or_else(|| matching(blobs, &sub))
        {
            return Some((ObjectKind::Tree, found));
        }
        node.content
            .iter()
            .flatten()
            .find_map(|b| matching(blobs, b))
            .map(|b| (ObjectKind::Blob, b))
    }
}

/// `id` when it is one of `ids` or starts with one of their prefixes.
fn matching(ids: &Ids, id: &Id) -> Option<Id> {
    if ids.whole.contains(id) {
        return Some(*id);
    }
    if ids.prefixes.is_empty() {
        return None;
    }
    let hex = id.to_string();
    ids.prefixes
        .iter()
        .any(|p| hex.starts_with(p.as_str()))
        .then_some(*id)
}

/// The ids of every blob stored in the packs whose ids start with `packs` (hex prefixes):
/// what `find --pack` looks for.
///
/// # Errors
/// [`crate::ErrorKind::InvalidInput`] for a bad id; [`crate::ErrorKind::NotFound`] naming a
/// pack the index does not know.
pub fn blobs_in_packs(repo: &IndexedRepository, packs: &[String]) -> Result<Vec<String>> {
    let mut wanted = HashSet::new();
    for p in packs {
        if !is_hex_prefix(p) {
            return Err(Error::invalid(format!("`{p}` is not a pack id")));
        }
        let lower = p.to_ascii_lowercase();
        let known: Vec<Id> = repo
            .index()
            .packs()
            .into_iter()
            .map(|(id, _)| id)
            .filter(|id| id.to_string().starts_with(&lower))
            .collect();
        if known.is_empty() {
            return Err(Error::new(
                crate::ErrorKind::NotFound,
                format!("no indexed pack has an id starting with `{p}`"),
            ));
        }
        wanted.extend(known);
    }
    Ok(repo
        .index()
        .all()
        .into_iter()
        .filter(|b| wanted.contains(&b.pack))
        .map(|b| b.entry.id.to_string())
        .collect())
}
