//! A repository with its index loaded: the state every data operation needs.

use std::ops::Deref;
use std::sync::Arc;

use crate::backend::FileType;
use crate::error::{Error, ErrorKind, Result};
use crate::format::pack::{BlobType, open_blob};
use crate::format::tree::{Node, NodeKind, Tree};
use crate::id::Id;
use crate::index::Index;
use crate::repository::Repository;

/// A repository whose index is in memory.
#[derive(Clone)]
pub struct IndexedRepository {
    repo: Repository,
    index: Arc<Index>,
}

impl Repository {
    /// Loads the index and moves to the indexed state.
    ///
    /// # Errors
    /// As [`Repository::load_index`].
    pub fn to_indexed(self) -> Result<IndexedRepository> {
        let index = Arc::new(self.load_index()?);
        Ok(IndexedRepository { repo: self, index })
    }
}

impl Deref for IndexedRepository {
    type Target = Repository;
    fn deref(&self) -> &Repository {
        &self.repo
    }
}

impl IndexedRepository {
    /// Pairs a repository with an index built elsewhere (e.g. by `check`, which tolerates
    /// damaged index files).
    pub fn from_parts(repo: Repository, index: Index) -> Self {
        Self {
            repo,
            index: Arc::new(index),
        }
    }

    /// The index.
    pub fn index(&self) -> &Arc<Index> {
        &self.index
    }

    /// The repository.
    pub fn repo(&self) -> &Repository {
        &self.repo
    }

    /// Reads, verifies and returns a blob's plaintext.
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`] when no pack holds it, [`ErrorKind::Corrupt`] naming the blob.
    pub fn read_blob(&self, id: &Id) -> Result<Vec<u8>> {
        let loc = self.index.get(id).ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                format!("blob {id} is not in the index (run `cairn check`)"),
            )
        })?;
        let (name, offset, length) = (
            loc.pack.to_hex(),
            u64::from(loc.entry.offset),
            u64::from(loc.entry.length),
        );
        // Read again when the blob fails authentication: a garbled answer is not damage.
        self.read_verified(
            || match loc.entry.tpe {
                BlobType::Tree => self.backend().read_tree_range(&name, offset, length),
                BlobType::Data => self
                    .backend()
                    .read_range(FileType::Pack, &name, offset, length),
            },
            |sealed| {
                open_blob(
                    self.key(),
                    self.blob_limits(),
                    &loc.entry,
                    &sealed,
                    &loc.pack,
                )
            },
        )
    }

    /// Loads a tree blob.
    ///
    /// # Errors
    /// As [`IndexedRepository::read_blob`], or a tree that does not parse.
    pub fn load_tree(&self, id: &Id) -> Result<Tree> {
        Tree::from_bytes(id, &self.read_blob(id)?)
    }

    /// The node at `path` (components separated by `/`) below the tree `root`; the empty path
    /// gives a directory node for `root` itself.
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`] naming the missing component.
    pub fn find_node(&self, root: Id, path: &str) -> Result<Node> {
        let mut node = Node::new(Default::default(), NodeKind::Dir);
        node.subtree = Some(root);
        node.mode = 0o755;
        let mut walked = String::new();
        for part in path.split('/').filter(|p| !p.is_empty() && *p != ".") {
            let Some(subtree) = node.subtree.filter(|_| node.kind == NodeKind::Dir) else {
                return Err(Error::new(
                    ErrorKind::NotFound,
                    format!("`{walked}` is not a directory in the snapshot"),
                ));
            };
            let tree = self.load_tree(&subtree)?;
            walked.push('/');
            walked.push_str(part);
            node = tree.find(part.as_bytes()).cloned().ok_or_else(|| {
                Error::new(
                    ErrorKind::NotFound,
                    format!("`{walked}` is not in the snapshot"),
                )
            })?;
        }
        Ok(node)
    }
}
