//! A bucket (an object store's objects below a prefix) as a backup source: each object is
//! a file of the snapshot, its key the path (`a/b.txt` is the file `b.txt` in the directory
//! `a`), its size and last-modified time the file's, its ETag kept as the extended attribute
//! [`ETAG_XATTR`]. An object whose size and ETag match the parent snapshot's file of the same
//! path is not downloaded again: its content is the parent's.
//!
//! Keys come from whoever can write to the bucket. One that makes no clean path (an empty,
//! `.` or `..` part, a NUL, a part longer than a file name may be, deeper than
//! [`MAX_DEPTH`]) is skipped with a warning, and so is an object whose key is also the
//! prefix of others (`a` beside `a/b`) — unless it is empty, the "folder" marker some tools
//! make. A warning counts in the snapshot's `errors` (the snapshot is incomplete).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::sync::atomic::Ordering;

use base64::Engine as _;
use jiff::Timestamp;
use rayon::prelude::*;

use super::{Run, warn};
use crate::error::{ErrorKind, Result};
use crate::format::tree::{Name, Node, NodeKind, Xattr};
use crate::id::Id;
use crate::target_dir::MAX_DEPTH;

/// The extended attribute that holds an object's ETag in the snapshot.
pub const ETAG_XATTR: &str = "user.cairn.etag";

/// The longest key part kept (a file name's limit on Linux).
const NAME_MAX: usize = 255;

/// An object as its store describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Its key below the source's prefix (`a/b.txt`).
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
    /// When it was last written.
    pub modified: Timestamp,
    /// Its ETag, without quotes (`None` where the store has none).
    pub etag: Option<String>,
}

/// The objects of a bucket below a prefix, as a backup reads them.
pub trait ObjectSource: Send + Sync {
    /// Where they are, as the snapshot's path and in messages (never with credentials).
    fn location(&self) -> String;

    /// Every object below the prefix, keys relative to it.
    ///
    /// # Errors
    /// When the store cannot be listed.
    fn list(&self) -> Result<Vec<ObjectInfo>>;

    /// The object `key`: what the store says of it now (the size and ETag of what the
    /// reader gives, which may differ from the listing when it was replaced meanwhile) and
    /// its content.
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`] when it is gone, other store errors.
    fn open(&self, key: &str) -> Result<(ObjectInfo, Box<dyn Read + Send>)>;
}

/// A directory of the snapshot made from keys.
#[derive(Default)]
struct Dir {
    files: BTreeMap<Vec<u8>, ObjectInfo>,
    dirs: BTreeMap<Vec<u8>, Dir>,
}

enum Entry<'a> {
    File(&'a ObjectInfo),
    Dir(&'a Dir),
}

/// Why `key` makes no clean path, if it does not.
fn bad_key(key: &str) -> Option<&'static str> {
    if key.split('/').count() > MAX_DEPTH {
        return Some("is nested too deep");
    }
    for part in key.split('/') {
        match part {
            "" => return Some("has an empty part"),
            "." | ".." => return Some("has a `.` or `..` part"),
            p if p.len() > NAME_MAX => return Some("has a part longer than a file name may be"),
            p if p.contains('\0') => return Some("holds a NUL byte"),
            _ => {}
        }
    }
    None
}

impl Dir {
    /// The directories and files of `objects`, with what cannot be a path warned about.
    fn of(run: &Run<'_>, location: &str, objects: Vec<ObjectInfo>) -> Dir {
        let mut root = Dir::default();
        for object in objects {
            // A trailing `/` is a "folder" marker: the directory is made by what it holds.
            if object.key.is_empty() || (object.key.ends_with('/') && object.size == 0) {
                continue;
            }
            if let Some(why) = bad_key(&object.key) {
                let shown = format!("{location}/{}", object.key.escape_debug());
                warn(
                    run,
                    Path::new(&shown),
                    format!("object {shown} {why}: it is not backed up"),
                );
                continue;
            }
            let mut parts: Vec<&str> = object.key.split('/').collect();
            let name = parts.pop().expect("split gives one part at least");
            let mut dir = &mut root;
            for p in parts {
                dir = dir.dirs.entry(p.as_bytes().to_vec()).or_default();
            }
            // Stores that drop a leading or trailing `/` can list one key twice (`a` and an
            // empty marker `a/`): the object with content wins.
            match dir.files.entry(name.as_bytes().to_vec()) {
                std::collections::btree_map::Entry::Vacant(v) => {
                    v.insert(object);
                }
                std::collections::btree_map::Entry::Occupied(mut o) => {
                    if o.get().size > 0 && object.size > 0 {
                        let shown = format!("{location}/{}", object.key.escape_debug());
                        warn(
                            run,
                            Path::new(&shown),
                            format!("object {shown} is listed twice: the first one is kept"),
                        );
                    } else if o.get().size == 0 {
                        o.insert(object);
                    }
                }
            }
        }
        root.resolve(run, location);
        root
    }

    /// Drops objects whose key is also a directory: empty ones silently (folder markers),
    /// others with a warning.
    fn resolve(&mut self, run: &Run<'_>, location: &str) {
        for (name, sub) in &mut self.dirs {
            if let Some(object) = self.files.remove(name)
                && object.size > 0
            {
                let shown = format!("{location}/{}", object.key.escape_debug());
                warn(
                    run,
                    Path::new(&shown),
                    format!(
                        "object {shown} is also the prefix of other objects: it is not backed \
                         up (they are)"
                    ),
                );
            }
            sub.resolve(run, location);
        }
    }

    fn entries(&self) -> Vec<(&[u8], Entry<'_>)> {
        let files = self
            .files
            .iter()
            .map(|(n, o)| (n.as_slice(), Entry::File(o)));
        let dirs = self.dirs.iter().map(|(n, d)| (n.as_slice(), Entry::Dir(d)));
        files.chain(dirs).collect()
    }

    /// The newest modification below (a directory's mtime, so that an unchanged directory
    /// makes the same tree).
    fn newest(&self) -> i64 {
        let files = self.files.values().map(|o| nanos(o.modified));
        let dirs = self.dirs.values().map(Dir::newest);
        files.chain(dirs).max().unwrap_or(0)
    }
}

fn nanos(t: Timestamp) -> i64 {
    i64::try_from(t.as_nanosecond()).unwrap_or(i64::MAX)
}

/// The ETag recorded in `node`, if any.
fn etag_of(node: &Node) -> Option<String> {
    let x = node
        .xattrs
        .iter()
        .find(|x| x.name.0 == ETAG_XATTR.as_bytes())?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(&x.value)
        .ok()?;
    String::from_utf8(raw).ok()
}

impl Run<'_> {
    /// Saves the objects of `source` as the snapshot's tree; `parent` is the parent
    /// snapshot's tree.
    pub(super) fn save_objects(&self, source: &dyn ObjectSource, parent: Option<Id>) -> Result<Id> {
        let location = source.location();
        let objects = source.list()?;
        if self.progress.wants_totals() {
            let bytes = objects.iter().map(|o| o.size).sum();
            self.progress.totals(objects.len() as u64, bytes, true);
        }
        let root = Dir::of(self, &location, objects);
        self.save_object_dir(source, &root, "", parent)
    }

    fn save_object_dir(
        &self,
        source: &dyn ObjectSource,
        dir: &Dir,
        prefix: &str,
        parent: Option<Id>,
    ) -> Result<Id> {
        self.check_cancel()?;
        let ptree = self.load_parent_tree(parent);
        let nodes = dir
            .entries()
            .into_par_iter()
            .map(|(name, entry)| {
                let pnode = ptree.as_ref().and_then(|t| t.find(name));
                let name_text = String::from_utf8_lossy(name);
                let key = format!("{prefix}{name_text}");
                match entry {
                    Entry::File(object) => self.save_object(source, object, pnode),
                    Entry::Dir(sub) => {
                        let psub = pnode
                            .filter(|p| p.kind == NodeKind::Dir)
                            .and_then(|p| p.subtree);
                        let subtree =
                            self.save_object_dir(source, sub, &format!("{key}/"), psub)?;
                        let mut node = Node::new(Name(name.to_vec()), NodeKind::Dir);
                        node.mode = 0o755;
                        (node.uid, node.gid) = self.uid_gid;
                        let t = sub.newest();
                        (node.mtime, node.atime, node.ctime) = (t, t, t);
                        node.subtree = Some(subtree);
                        Ok(Some(node))
                    }
                }
            })
            .collect::<Result<Vec<_>>>()?;
        self.save_tree(nodes.into_iter().flatten().collect(), parent)
    }

    /// The node of `object`: the parent's content when its size and ETag are the parent's,
    /// else its content as downloaded now.
    fn save_object(
        &self,
        source: &dyn ObjectSource,
        object: &ObjectInfo,
        parent: Option<&Node>,
    ) -> Result<Option<Node>> {
        self.check_cancel()?;
        let path = Path::new(&object.key);
        let name = object.key.rsplit('/').next().unwrap_or(&object.key);
        self.counts.files.fetch_add(1, Ordering::Relaxed);
        self.counts.bytes.fetch_add(object.size, Ordering::Relaxed);
        let parent = parent.filter(|p| p.kind == NodeKind::File);
        if let Some(p) = parent
            && object.etag.is_some()
            && p.size == object.size
            && etag_of(p) == object.etag
            && let Some(content) = self.reuse(p, path)
        {
            let mut node = object_node(name, object, self.uid_gid);
            node.content = Some(content);
            return Ok(Some(node));
        }
        self.progress.file_started(path);
        let (now, reader) = match source.open(&object.key) {
            Ok(r) => r,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                warn(
                    self,
                    path,
                    format!(
                        "object {} went away before it was read: skipped",
                        object.key.escape_debug()
                    ),
                );
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        let (content, size) = match self.save_stream(reader) {
            Ok(r) => r,
            Err(e) if e.kind() == ErrorKind::Io => {
                warn(
                    self,
                    path,
                    format!(
                        "cannot read object {}: {e}: {}",
                        object.key.escape_debug(),
                        super::source_text(&e)
                    ),
                );
                return Ok(None);
            }
            Err(e) => {
                let key = object.key.escape_debug();
                return Err(e.context(format!("while reading object {key}")));
            }
        };
        if size != now.size {
            let m = format!(
                "object {} changed while it was read ({} bytes read of {})",
                object.key.escape_debug(),
                size,
                now.size
            );
            tracing::debug!("{m}");
            self.progress.warning(path, &m);
        }
        self.count_read(parent.is_some());
        self.progress.file_done(path);
        let mut node = object_node(name, &now, self.uid_gid);
        node.size = size;
        node.content = Some(content);
        Ok(Some(node))
    }
}

/// A file node for `object` (without content).
fn object_node(name: &str, object: &ObjectInfo, (uid, gid): (u32, u32)) -> Node {
    let mut node = Node::new(Name(name.as_bytes().to_vec()), NodeKind::File);
    node.mode = 0o644;
    (node.uid, node.gid) = (uid, gid);
    let t = nanos(object.modified);
    (node.mtime, node.atime, node.ctime) = (t, t, t);
    node.size = object.size;
    if let Some(etag) = &object.etag {
        node.xattrs = vec![Xattr {
            name: Name(ETAG_XATTR.as_bytes().to_vec()),
            value: base64::engine::general_purpose::STANDARD.encode(etag),
        }];
    }
    node
}

#[cfg(test)]
mod tests {
    use super::bad_key;

    #[test]
    fn keys_that_make_no_clean_path_are_named() {
        for good in ["a", "a/b.txt", "ü/ß", "a b/c"] {
            assert_eq!(bad_key(good), None, "{good}");
        }
        for bad in ["", "/a", "a//b", "a/./b", "../x", "a/..", "a\0b"] {
            assert!(bad_key(bad).is_some(), "{bad:?}");
        }
        assert!(bad_key(&"x".repeat(256)).is_some());
        assert!(bad_key(&"a/".repeat(2000)).is_some());
    }
}
