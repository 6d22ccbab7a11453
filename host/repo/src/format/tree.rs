//! Trees: one directory's entries with full metadata, serialized deterministically.
//!
//! A tree blob is the compact JSON of [`Tree`]: nodes sorted by name bytes, fields in
//! declaration order, absent/empty fields omitted, xattrs sorted by name. The same directory
//! state therefore always gives the same bytes, the same blob id, and deduplicates.
//! Names and link targets are raw bytes on Unix: valid UTF-8 is stored as a string, anything
//! else as an array of byte values.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};
use crate::id::Id;

/// Bytes of a file name or link target.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Name(pub Vec<u8>);

impl Name {
    /// From an OS string.
    pub fn from_os(s: &OsStr) -> Self {
        Self(s.as_bytes().to_vec())
    }

    /// As an OS string.
    pub fn to_os(&self) -> OsString {
        OsString::from_vec(self.0.clone())
    }

    /// Lossy UTF-8 for display.
    pub fn display(&self) -> String {
        String::from_utf8_lossy(&self.0).into_owned()
    }
}

impl Serialize for Name {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match std::str::from_utf8(&self.0) {
            Ok(text) => s.serialize_str(text),
            Err(_) => self.0.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Text(String),
            Bytes(Vec<u8>),
        }
        Ok(match Repr::deserialize(d)? {
            Repr::Text(t) => Name(t.into_bytes()),
            Repr::Bytes(b) => Name(b),
        })
    }
}

/// What a node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeKind {
    /// Regular file.
    File,
    /// Directory.
    Dir,
    /// Symbolic link.
    Symlink,
    /// Named pipe.
    Fifo,
    /// Unix socket (recorded; restored as nothing).
    Socket,
    /// Character device.
    Chardev,
    /// Block device.
    Blockdev,
}

/// One extended attribute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Xattr {
    /// Attribute name.
    pub name: Name,
    /// Value, base64.
    pub value: String,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// One directory entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// File name (one path component).
    pub name: Name,
    /// Kind.
    #[serde(rename = "type")]
    pub kind: NodeKind,
    /// Permission bits and setuid/setgid/sticky (`st_mode & 0o7777`).
    pub mode: u32,
    /// Owner uid.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
    /// Owner user name, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Owner group name, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Modification time, ns since the epoch.
    pub mtime: i64,
    /// Access time, ns since the epoch.
    pub atime: i64,
    /// Status change time, ns since the epoch.
    pub ctime: i64,
    /// Size in bytes (files).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub size: u64,
    /// Inode number.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub inode: u64,
    /// Device the inode lives on (`st_dev`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub device_id: u64,
    /// Hard link count; with `inode` and `device_id` the hardlink identity.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub links: u64,
    /// Device number (`st_rdev`) of char and block devices.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rdev: u64,
    /// Symlink target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_target: Option<Name>,
    /// Extended attributes, sorted by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub xattrs: Vec<Xattr>,
    /// Content blobs of a file, in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Vec<Id>>,
    /// Tree of a directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtree: Option<Id>,
}

impl Node {
    /// A node of `kind` named `name` with everything else zero.
    pub fn new(name: Name, kind: NodeKind) -> Self {
        Self {
            name,
            kind,
            mode: 0,
            uid: 0,
            gid: 0,
            user: None,
            group: None,
            mtime: 0,
            atime: 0,
            ctime: 0,
            size: 0,
            inode: 0,
            device_id: 0,
            links: 0,
            rdev: 0,
            link_target: None,
            xattrs: Vec::new(),
            content: None,
            subtree: None,
        }
    }

    /// Whether this is a hard-linked file (more than one name for the inode).
    pub fn is_hardlink(&self) -> bool {
        self.kind == NodeKind::File && self.links > 1 && self.inode != 0
    }

    /// Whether the file is unchanged compared to `other` by the cheap metadata test
    /// (type, size, mtime, ctime, inode).
    pub fn same_file_metadata(&self, other: &Node) -> bool {
        self.kind == other.kind
            && self.size == other.size
            && self.mtime == other.mtime
            && self.ctime == other.ctime
            && self.inode == other.inode
    }
}

/// A directory listing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tree {
    /// Entries, sorted by name bytes.
    pub nodes: Vec<Node>,
}

impl Tree {
    /// Sorts entries into canonical order.
    pub fn sort(&mut self) {
        self.nodes.sort_by(|a, b| a.name.cmp(&b.name));
    }

    /// Canonical serialization.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("trees serialize")
    }

    /// Parses a tree blob.
    ///
    /// # Errors
    /// [`crate::ErrorKind::Corrupt`] naming the tree id.
    pub fn from_bytes(id: &Id, data: &[u8]) -> Result<Self> {
        let tree: Tree = serde_json::from_slice(data)
            .map_err(|e| Error::corrupt(format!("tree {id} does not parse")).with_source(e))?;
        // A name is one path component: anything else could lead a restore out of its target.
        if let Some(bad) = tree.nodes.iter().find(|n| {
            n.name.0.is_empty()
                || n.name.0 == b"."
                || n.name.0 == b".."
                || n.name.0.contains(&b'/')
                || n.name.0.contains(&0)
        }) {
            return Err(Error::corrupt(format!(
                "tree {id} holds the entry name `{}`, which is not a single path component",
                bad.name.display()
            )));
        }
        // Names strictly increasing: no name twice (a directory `a` and then a link `a` would
        // let a restore write the directory's files through the link), and one canonical form.
        if let Some(pair) = tree.nodes.windows(2).find(|w| w[0].name >= w[1].name) {
            let what = if pair[0].name == pair[1].name {
                "twice"
            } else {
                "out of order"
            };
            return Err(Error::corrupt(format!(
                "tree {id} names the entry `{}` {what} (entries must be sorted and unique)",
                pair[1].name.display()
            )));
        }
        Ok(tree)
    }

    /// The entry named `name`.
    pub fn find(&self, name: &[u8]) -> Option<&Node> {
        self.nodes
            .binary_search_by(|n| n.name.0.as_slice().cmp(name))
            .ok()
            .map(|i| &self.nodes[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Golden test: pins the serialized form of a tree. A change here is a format change.
    #[test]
    fn golden_tree_serialization() {
        let mut file = Node::new(Name(b"caf\xc3\xa9.txt".to_vec()), NodeKind::File);
        file.mode = 0o644;
        file.uid = 1000;
        file.gid = 1000;
        file.user = Some("alice".into());
        file.mtime = 1_700_000_000_123_456_789;
        file.atime = 1_700_000_000_000_000_000;
        file.ctime = 1_700_000_001_000_000_000;
        file.size = 5;
        file.inode = 42;
        file.device_id = 2049;
        file.links = 1;
        file.xattrs = vec![Xattr {
            name: Name(b"user.k".to_vec()),
            value: "dg==".into(),
        }];
        file.content = Some(vec![Id([0xab; 32])]);
        let mut link = Node::new(Name(vec![0xff, b'x']), NodeKind::Symlink);
        link.mode = 0o777;
        link.link_target = Some(Name(b"../t".to_vec()));
        let mut tree = Tree {
            nodes: vec![link, file],
        };
        tree.sort();
        let json = String::from_utf8(tree.to_bytes()).unwrap();
        let golden = concat!(
            r#"{"nodes":[{"name":"café.txt","type":"file","mode":420,"uid":1000,"gid":1000,"#,
            r#""user":"alice","mtime":1700000000123456789,"atime":1700000000000000000,"#,
            r#""ctime":1700000001000000000,"size":5,"inode":42,"device_id":2049,"links":1,"#,
            r#""xattrs":[{"name":"user.k","value":"dg=="}],"content":["#,
            r#""abababababababababababababababababababababababababababababababab"]},"#,
            r#"{"name":[255,120],"type":"symlink","mode":511,"uid":0,"gid":0,"mtime":0,"#,
            r#""atime":0,"ctime":0,"link_target":"../t"}]}"#
        );
        assert_eq!(json, golden);
        let back = Tree::from_bytes(&Id::default(), json.as_bytes()).unwrap();
        assert_eq!(back, tree);
        for bad in ["..", ".", "", "a/b", "/etc"] {
            let t = format!(
                r#"{{"nodes":[{{"name":"{bad}","type":"file","mode":0,"uid":0,"gid":0,"mtime":0,"atime":0,"ctime":0}}]}}"#
            );
            assert!(
                Tree::from_bytes(&Id::default(), t.as_bytes()).is_err(),
                "{bad:?} must be refused"
            );
        }
        assert!(back.find(b"caf\xc3\xa9.txt").is_some());
    }

    fn entry(name: &str, kind: &str) -> String {
        format!(
            r#"{{"name":"{name}","type":"{kind}","mode":0,"uid":0,"gid":0,"mtime":0,"atime":0,"ctime":0}}"#
        )
    }

    /// A directory `a` and then a link `a`: restore would write the directory's files through
    /// the link. Decoding refuses it, naming the tree and the name.
    #[test]
    fn duplicate_and_unsorted_names_are_refused() {
        let id = Id([7; 32]);
        let dup = format!(
            r#"{{"nodes":[{},{}]}}"#,
            entry("a", "dir"),
            entry("a", "symlink")
        );
        let err = Tree::from_bytes(&id, dup.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&id.to_hex()) && err.contains("`a` twice"),
            "{err}"
        );
        let unsorted = format!(
            r#"{{"nodes":[{},{}]}}"#,
            entry("b", "file"),
            entry("a", "file")
        );
        let err = Tree::from_bytes(&id, unsorted.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(err.contains("`a` out of order"), "{err}");
        let fine = format!(
            r#"{{"nodes":[{},{}]}}"#,
            entry("a", "file"),
            entry("b", "file")
        );
        assert_eq!(
            Tree::from_bytes(&id, fine.as_bytes()).unwrap().nodes.len(),
            2
        );
    }
}
