//! The inode table: what each inode number stands for, and when a snapshot entry's inode can
//! go. The layout's inodes live as long as the mount; a snapshot entry's inode is held while
//! the kernel holds it (its lookups) or its directory's listing names it, so that walking a
//! large tree does not keep every node in memory once the kernel lets go of it.

use std::collections::HashMap;
use std::sync::Arc;

use cairn_repo::Node;

/// A directory's entries: name and inode.
pub(crate) type Listing = Vec<(Vec<u8>, u64)>;

pub(crate) enum Inode {
    /// A directory of the layout: its entries, by name.
    Layout(Vec<(String, u64)>),
    /// A `latest` link.
    Link(String),
    /// An entry of a snapshot (its root is a directory node made for it).
    Node(Entry),
}

/// A snapshot entry: its node, its directory's inode, how many lookups the kernel holds, and
/// what was worked out for it (a directory's children once its tree was read, a file's blob
/// ends once it was opened).
pub(crate) struct Entry {
    pub(crate) node: Box<Node>,
    /// The inode whose listing names it (for a snapshot root, its layout directory's).
    pub(crate) parent: u64,
    /// Lookups answered and not yet forgotten by the kernel. A snapshot root is never
    /// removed whatever this says: the layout names it.
    pub(crate) lookups: u64,
    pub(crate) children: Option<Listing>,
    pub(crate) ends: Option<Arc<Vec<u64>>>,
}

impl Entry {
    pub(crate) fn new(node: Node, parent: u64) -> Self {
        Entry {
            node: Box::new(node),
            parent,
            lookups: 0,
            children: None,
            ends: None,
        }
    }
}

/// Every inode, and the next number to hand out.
pub(crate) struct Inodes {
    pub(crate) map: HashMap<u64, Inode>,
    next: u64,
}

impl Inodes {
    /// An empty table; inode 1 is the root, numbers start at 2.
    pub(crate) fn new() -> Self {
        Inodes {
            map: HashMap::new(),
            next: 2,
        }
    }

    /// A new inode number.
    pub(crate) fn allocate(&mut self) -> u64 {
        let ino = self.next;
        self.next += 1;
        ino
    }

    /// The entry of `ino`, when it is a snapshot entry.
    pub(crate) fn entry(&self, ino: u64) -> Option<&Entry> {
        match self.map.get(&ino) {
            Some(Inode::Node(e)) => Some(e),
            _ => None,
        }
    }

    /// As [`Inodes::entry`], to change.
    pub(crate) fn entry_mut(&mut self, ino: u64) -> Option<&mut Entry> {
        match self.map.get_mut(&ino) {
            Some(Inode::Node(e)) => Some(e),
            _ => None,
        }
    }

    /// Gives `nodes` (directory `parent`'s tree, read) their inodes and makes them its
    /// listing; when another thread got there first, its listing stands.
    pub(crate) fn adopt(&mut self, parent: u64, nodes: Vec<Node>) {
        if self.entry(parent).is_none_or(|e| e.children.is_some()) {
            return;
        }
        let mut children = Vec::with_capacity(nodes.len());
        for node in nodes {
            let ino = self.allocate();
            children.push((node.name.0.clone(), ino));
            self.map.insert(ino, Inode::Node(Entry::new(node, parent)));
        }
        if let Some(e) = self.entry_mut(parent) {
            e.children = Some(children);
        }
    }

    /// The kernel took a reference to `ino` (a lookup answered with it).
    pub(crate) fn looked_up(&mut self, ino: u64) {
        if let Some(e) = self.entry_mut(ino) {
            e.lookups += 1;
        }
    }

    /// The kernel dropped `n` references to `ino`. With none left, what was worked out for it
    /// goes (its listing and the entries in it that nobody holds, its blob ends), and so does
    /// the entry itself when no listing names it any more. Returns how many inodes went.
    pub(crate) fn forget(&mut self, ino: u64, n: u64) -> usize {
        let Some(e) = self.entry_mut(ino) else {
            return 0;
        };
        e.lookups = e.lookups.saturating_sub(n);
        if e.lookups > 0 {
            return 0;
        }
        let parent = e.parent;
        let mut removed = self.release(ino);
        let named = match self.map.get(&parent) {
            Some(Inode::Layout(entries)) => entries.iter().any(|(_, i)| *i == ino),
            Some(Inode::Node(p)) => p
                .children
                .as_ref()
                .is_some_and(|c| c.iter().any(|(_, i)| *i == ino)),
            _ => false,
        };
        if !named {
            self.map.remove(&ino);
            removed += 1;
        }
        removed
    }

    /// Drops what was worked out for `ino`, and the entries of its listing that the kernel
    /// does not hold (and theirs, below them). Those it still holds stay until forgotten.
    fn release(&mut self, ino: u64) -> usize {
        let Some(e) = self.entry_mut(ino) else {
            return 0;
        };
        e.ends = None;
        let mut stack: Vec<u64> = e
            .children
            .take()
            .map(|c| c.into_iter().map(|(_, i)| i).collect())
            .unwrap_or_default();
        let mut removed = 0;
        while let Some(child) = stack.pop() {
            if self.entry(child).is_some_and(|c| c.lookups == 0)
                && let Some(Inode::Node(c)) = self.map.remove(&child)
            {
                removed += 1;
                if let Some(kids) = c.children {
                    stack.extend(kids.into_iter().map(|(_, i)| i));
                }
            }
        }
        removed
    }

    /// How many inodes there are.
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use cairn_repo::{Name, NodeKind};

    use super::*;

    fn node(name: &str, kind: NodeKind) -> Node {
        Node::new(Name(name.as_bytes().to_vec()), kind)
    }

    /// The inodes of directory `ino`'s listing.
    fn listed(t: &Inodes, ino: u64) -> Vec<u64> {
        let listing = t.entry(ino).and_then(|e| e.children.as_ref());
        listing.map_or(Vec::new(), |c| c.iter().map(|(_, i)| *i).collect())
    }

    /// A layout root (1) naming a snapshot root (2) whose tree holds `dir/` (with `f`) and `g`.
    fn table() -> (Inodes, u64, u64, u64) {
        let mut t = Inodes::new();
        let root = t.allocate();
        t.map.insert(1, Inode::Layout(vec![("snap".into(), root)]));
        t.map
            .insert(root, Inode::Node(Entry::new(node("", NodeKind::Dir), 1)));
        t.adopt(
            root,
            vec![node("dir", NodeKind::Dir), node("g", NodeKind::File)],
        );
        let dir = listed(&t, root)[0];
        t.adopt(dir, vec![node("f", NodeKind::File)]);
        let f = listed(&t, dir)[0];
        (t, root, dir, f)
    }

    #[test]
    fn a_listing_the_kernel_let_go_of_is_dropped_with_what_nobody_holds() {
        let (mut t, root, dir, f) = table();
        assert_eq!(t.len(), 5);
        t.looked_up(root);
        t.looked_up(dir);
        // The kernel holds the snapshot root and dir; nothing goes while it does.
        assert_eq!(t.forget(root, 0), 0);
        // It lets go of dir: dir's listing goes (f was never looked up), dir stays, named
        // by root's listing.
        assert_eq!(t.forget(dir, 1), 1);
        assert!(t.entry(f).is_none() && t.entry(dir).is_some_and(|e| e.children.is_none()));
        // Then of the root: its listing goes with dir and g; the root stays (the layout).
        assert_eq!(t.forget(root, 1), 2);
        assert_eq!(t.len(), 2);
        assert!(t.entry(root).is_some_and(|e| e.children.is_none()));
    }

    #[test]
    fn an_entry_still_held_outlives_its_listing_and_goes_when_forgotten() {
        let (mut t, root, dir, f) = table();
        t.looked_up(root);
        t.looked_up(f);
        // The root's listing goes; dir (not held) with it, but f, held, stays.
        assert_eq!(t.forget(root, 1), 2);
        assert!(t.entry(dir).is_none());
        assert!(t.entry(f).is_some());
        // Listed again later, dir gets a new inode; the old f is named by no listing and
        // goes when the kernel forgets it.
        t.adopt(root, vec![node("dir", NodeKind::Dir)]);
        assert_ne!(listed(&t, root)[0], dir);
        assert_eq!(t.forget(f, 1), 1);
        assert!(t.entry(f).is_none());
    }
}
