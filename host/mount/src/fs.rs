//! The FUSE file system: the layout's directories and links, then each snapshot's trees and
//! files, read-only. Inodes are handed out as entries are first seen ([`crate::inodes`]): a
//! layout path keeps its inode across refreshes, a snapshot entry's goes when the kernel
//! forgets it. Trees are read with the state unlocked. File data is read blob by blob
//! through the repository (the same caches and checks as restore), with the last blobs read
//! kept in memory.

use std::collections::{HashMap, VecDeque};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cairn_repo::{
    Error, Id, IndexedRepository, Node, NodeKind, Repository, Result, Snapshot, SnapshotFilter,
};
use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner,
    OpenFlags, ReplyAttr, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyXattr,
    Request,
};

use crate::inodes::{Entry as NodeEntry, Inode, Inodes};
use crate::layout::{Dir, Entry, layout};

/// How long the kernel may keep what the layout says (it changes as snapshots come).
const LAYOUT_TTL: Duration = Duration::from_secs(1);
/// How long it may keep a snapshot's entries (they never change).
const TREE_TTL: Duration = Duration::from_secs(3600);
/// Plaintext of recently read blobs kept in memory.
const BLOB_CACHE_BYTES: usize = 64 << 20;

/// A file's blobs, where each ends, and the repository to read them from.
type Content = (Arc<IndexedRepository>, Vec<Id>, Arc<Vec<u64>>);

struct State {
    repo: Arc<IndexedRepository>,
    inodes: Inodes,
    /// Layout paths (and snapshot roots: path and id) → inode, kept across refreshes.
    by_path: HashMap<String, u64>,
    listed: Vec<Id>,
    listed_at: Instant,
    /// The newest snapshot's time: the layout directories' times.
    newest: SystemTime,
}

/// The file system of one repository's snapshots.
pub struct SnapshotFs {
    base: Repository,
    filter: SnapshotFilter,
    refresh: Duration,
    uid: u32,
    gid: u32,
    state: Mutex<State>,
    blobs: Mutex<VecDeque<(Id, Arc<Vec<u8>>)>>,
}

fn time_of(ns: i64) -> SystemTime {
    match u64::try_from(ns) {
        Ok(n) => UNIX_EPOCH + Duration::from_nanos(n),
        Err(_) => UNIX_EPOCH,
    }
}

fn file_type(kind: NodeKind) -> FileType {
    match kind {
        NodeKind::Dir => FileType::Directory,
        NodeKind::File => FileType::RegularFile,
        NodeKind::Symlink => FileType::Symlink,
        NodeKind::Fifo => FileType::NamedPipe,
        NodeKind::Socket => FileType::Socket,
        NodeKind::Chardev => FileType::CharDevice,
        NodeKind::Blockdev => FileType::BlockDevice,
    }
}

/// Whether a name from a tree can be a directory entry at all (a crafted tree may hold
/// anything).
fn usable(name: &[u8]) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name != b"."
        && name != b".."
        && !name.contains(&b'/')
        && !name.contains(&0)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn errno(e: &Error) -> Errno {
    tracing::warn!("{e}");
    match e.kind() {
        cairn_repo::ErrorKind::NotFound => Errno::ENOENT,
        _ => Errno::EIO,
    }
}

impl SnapshotFs {
    /// The file system of `repo`'s snapshots that pass `filter`, listed again at most every
    /// `refresh`.
    ///
    /// # Errors
    /// When the snapshots or the index cannot be read.
    pub fn new(repo: Repository, filter: SnapshotFilter, refresh: Duration) -> Result<Self> {
        let indexed = Arc::new(repo.clone().to_indexed()?);
        let state = State {
            repo: indexed,
            inodes: Inodes::new(),
            by_path: HashMap::new(),
            listed: Vec::new(),
            listed_at: Instant::now(),
            newest: UNIX_EPOCH,
        };
        let fs = SnapshotFs {
            base: repo,
            filter,
            refresh,
            // The mount's own directories belong to whoever runs it.
            uid: nix::unistd::geteuid().as_raw(),
            gid: nix::unistd::getegid().as_raw(),
            state: Mutex::new(state),
            blobs: Mutex::default(),
        };
        {
            let mut st = lock(&fs.state);
            let snaps = fs.snapshots()?;
            fs.install(&mut st, &snaps);
        }
        Ok(fs)
    }

    fn snapshots(&self) -> Result<Vec<(Id, Snapshot)>> {
        Ok(self
            .base
            .snapshots()?
            .into_iter()
            .filter(|(_, s)| self.filter.matches(s))
            .collect())
    }

    /// Lists the snapshots again when `refresh` has passed; a new set of snapshots reloads
    /// the index (their data is in new packs) and the layout.
    fn refresh(&self, st: &mut State) {
        if st.listed_at.elapsed() < self.refresh {
            return;
        }
        st.listed_at = Instant::now();
        let snaps = match self.snapshots() {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("cannot list the snapshots again: {e}");
                return;
            }
        };
        if snaps.iter().map(|(id, _)| id).eq(&st.listed) {
            return;
        }
        match self.base.clone().to_indexed() {
            Ok(repo) => st.repo = Arc::new(repo),
            Err(e) => {
                tracing::warn!("cannot read the index again: {e}");
                return;
            }
        }
        self.install(st, &snaps);
    }

    fn install(&self, st: &mut State, snaps: &[(Id, Snapshot)]) {
        st.listed = snaps.iter().map(|(id, _)| *id).collect();
        st.newest = snaps
            .iter()
            .map(|(_, s)| time_of(i64::try_from(s.time.as_nanosecond()).unwrap_or(0)))
            .max()
            .unwrap_or(UNIX_EPOCH);
        let root = layout(snaps);
        Self::install_dir(st, "", &root, 1);
    }

    fn ino_for(st: &mut State, key: String) -> u64 {
        if let Some(ino) = st.by_path.get(&key) {
            return *ino;
        }
        let ino = st.inodes.allocate();
        st.by_path.insert(key, ino);
        ino
    }

    fn install_dir(st: &mut State, path: &str, dir: &Dir, ino: u64) {
        let mut entries = Vec::with_capacity(dir.entries.len());
        for (name, entry) in &dir.entries {
            let child_path = format!("{path}/{name}");
            let child = match entry {
                Entry::Dir(d) => {
                    let child = Self::ino_for(st, child_path.clone());
                    Self::install_dir(st, &child_path, d, child);
                    child
                }
                Entry::Link(target) => {
                    let child = Self::ino_for(st, child_path);
                    st.inodes.map.insert(child, Inode::Link(target.clone()));
                    child
                }
                Entry::Snapshot { id, tree, time } => {
                    let child = Self::ino_for(st, format!("{child_path}\0{id}"));
                    st.inodes.map.entry(child).or_insert_with(|| {
                        let mut node = Node::new(Default::default(), NodeKind::Dir);
                        node.subtree = Some(*tree);
                        node.mode = 0o555;
                        node.mtime = *time;
                        node.atime = *time;
                        node.ctime = *time;
                        Inode::Node(NodeEntry::new(node, ino))
                    });
                    child
                }
            };
            entries.push((name.clone(), child));
        }
        st.inodes.map.insert(ino, Inode::Layout(entries));
    }

    fn attr(&self, st: &State, ino: u64) -> Option<FileAttr> {
        let layout = |kind: FileType, size: u64, perm: u16| FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: 0,
            atime: st.newest,
            mtime: st.newest,
            ctime: st.newest,
            crtime: st.newest,
            kind,
            perm,
            nlink: if kind == FileType::Directory { 2 } else { 1 },
            uid: self.uid,
            gid: self.gid,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        };
        Some(match st.inodes.map.get(&ino)? {
            Inode::Layout(_) => layout(FileType::Directory, 0, 0o555),
            Inode::Link(target) => layout(FileType::Symlink, target.len() as u64, 0o777),
            Inode::Node(NodeEntry { node, .. }) => {
                let size = match node.kind {
                    NodeKind::Symlink => node.link_target.as_ref().map_or(0, |t| t.0.len() as u64),
                    NodeKind::Dir => 0,
                    _ => node.size.min(i64::MAX as u64),
                };
                FileAttr {
                    ino: INodeNo(ino),
                    size,
                    blocks: size.div_ceil(512),
                    atime: time_of(node.atime),
                    mtime: time_of(node.mtime),
                    ctime: time_of(node.ctime),
                    crtime: time_of(node.mtime),
                    kind: file_type(node.kind),
                    perm: (node.mode & 0o7777) as u16,
                    nlink: if node.kind == NodeKind::Dir {
                        2
                    } else {
                        u32::try_from(node.links.max(1)).unwrap_or(u32::MAX)
                    },
                    uid: node.uid,
                    gid: node.gid,
                    rdev: u32::try_from(node.rdev).unwrap_or(0),
                    blksize: 4096,
                    flags: 0,
                }
            }
        })
    }

    fn ttl(st: &State, ino: u64) -> Duration {
        match st.inodes.map.get(&ino) {
            Some(Inode::Node(_)) => TREE_TTL,
            _ => LAYOUT_TTL,
        }
    }

    /// Makes sure directory `ino`'s entries are listed ([`SnapshotFs::listing`]), its tree
    /// read on first use — with the state unlocked, so that other requests go on meanwhile.
    fn listed<'a>(
        &'a self,
        mut st: MutexGuard<'a, State>,
        ino: u64,
    ) -> std::result::Result<MutexGuard<'a, State>, Errno> {
        let subtree = match st.inodes.map.get(&ino) {
            Some(
                Inode::Layout(_)
                | Inode::Node(NodeEntry {
                    children: Some(_), ..
                }),
            ) => {
                return Ok(st);
            }
            Some(Inode::Node(NodeEntry { node, .. })) if node.kind == NodeKind::Dir => node.subtree,
            Some(_) => return Err(Errno::ENOTDIR),
            None => return Err(Errno::ENOENT),
        };
        let mut nodes = Vec::new();
        if let Some(tree) = subtree {
            let repo = st.repo.clone();
            drop(st);
            let tree = repo.load_tree(&tree).map_err(|e| errno(&e))?;
            st = lock(&self.state);
            for node in tree.nodes {
                if usable(&node.name.0) {
                    nodes.push(node);
                } else {
                    tracing::warn!("an entry with an unusable name is left out of the mount");
                }
            }
        }
        if st.inodes.entry(ino).is_none() {
            // Forgotten while its tree was read.
            return Err(Errno::ENOENT);
        }
        st.inodes.adopt(ino, nodes);
        Ok(st)
    }

    /// The entries (name, inode) of directory `ino`, once [`SnapshotFs::listed`]; none else.
    fn listing(st: &State, ino: u64) -> impl Iterator<Item = (&[u8], u64)> {
        let layout: &[(String, u64)] = match st.inodes.map.get(&ino) {
            Some(Inode::Layout(entries)) => entries,
            _ => &[],
        };
        let tree: &[(Vec<u8>, u64)] = st
            .inodes
            .entry(ino)
            .and_then(|e| e.children.as_deref())
            .unwrap_or_default();
        layout
            .iter()
            .map(|(n, i)| (n.as_bytes(), *i))
            .chain(tree.iter().map(|(n, i)| (n.as_slice(), *i)))
    }

    fn kind_of(st: &State, ino: u64) -> FileType {
        match st.inodes.map.get(&ino) {
            Some(Inode::Layout(_)) | None => FileType::Directory,
            Some(Inode::Link(_)) => FileType::Symlink,
            Some(Inode::Node(e)) => file_type(e.node.kind),
        }
    }

    /// A file's content and where each blob ends, worked out once.
    fn content(&self, ino: u64) -> std::result::Result<Content, Errno> {
        let mut st = lock(&self.state);
        let repo = st.repo.clone();
        let Some(NodeEntry { node, ends, .. }) = st.inodes.entry_mut(ino) else {
            return Err(Errno::ENOENT);
        };
        if node.kind != NodeKind::File {
            return Err(Errno::EISDIR);
        }
        let content = node.content.clone().unwrap_or_default();
        if ends.is_none() {
            let mut at = 0u64;
            let mut list = Vec::with_capacity(content.len());
            for b in &content {
                let Some(loc) = repo.index().get(b) else {
                    tracing::warn!(
                        "blob {b} of a file is not in the index: the file cannot be read"
                    );
                    return Err(Errno::EIO);
                };
                at = at.saturating_add(u64::from(loc.entry.raw_length));
                list.push(at);
            }
            *ends = Some(Arc::new(list));
        }
        Ok((repo, content, ends.clone().expect("just set")))
    }

    fn blob(&self, repo: &IndexedRepository, id: &Id) -> Result<Arc<Vec<u8>>> {
        if let Some((_, data)) = lock(&self.blobs).iter().find(|(b, _)| b == id) {
            return Ok(data.clone());
        }
        let data = Arc::new(repo.read_blob(id)?);
        let mut cache = lock(&self.blobs);
        cache.push_front((*id, data.clone()));
        let mut total: usize = cache.iter().map(|(_, d)| d.len()).sum();
        while total > BLOB_CACHE_BYTES && cache.len() > 1 {
            if let Some((_, d)) = cache.pop_back() {
                total -= d.len();
            }
        }
        Ok(data)
    }

    fn read_range(&self, ino: u64, offset: u64, size: u32) -> std::result::Result<Vec<u8>, Errno> {
        let (repo, content, ends) = self.content(ino)?;
        let end = offset
            .saturating_add(u64::from(size))
            .min(ends.last().copied().unwrap_or(0));
        let mut out = Vec::with_capacity(end.saturating_sub(offset) as usize);
        let mut i = ends.partition_point(|e| *e <= offset);
        while i < content.len() && offset + (out.len() as u64) < end {
            let start = if i == 0 { 0 } else { ends[i - 1] };
            let data = self.blob(&repo, &content[i]).map_err(|e| errno(&e))?;
            // The blob must be as long as the index says, and the read inside it.
            let (Some(from), Some(to)) = (
                (offset + out.len() as u64).checked_sub(start),
                end.checked_sub(start),
            ) else {
                return Err(Errno::EIO);
            };
            let (from, to) = (from as usize, (to as usize).min(data.len()));
            if data.len() as u64 != ends[i] - start || from >= to {
                return Err(Errno::EIO);
            }
            out.extend_from_slice(&data[from..to]);
            i += 1;
        }
        Ok(out)
    }
}

impl Filesystem for SnapshotFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let mut st = lock(&self.state);
        if matches!(st.inodes.map.get(&parent.0), Some(Inode::Layout(_))) {
            self.refresh(&mut st);
        }
        let mut st = match self.listed(st, parent.0) {
            Ok(st) => st,
            Err(e) => return reply.error(e),
        };
        let Some((_, ino)) = Self::listing(&st, parent.0).find(|(n, _)| *n == name.as_bytes())
        else {
            return reply.error(Errno::ENOENT);
        };
        // What a layout name leads to changes as snapshots come and go.
        let ttl = if matches!(st.inodes.map.get(&parent.0), Some(Inode::Layout(_))) {
            LAYOUT_TTL
        } else {
            Self::ttl(&st, ino)
        };
        match self.attr(&st, ino) {
            Some(attr) => {
                st.inodes.looked_up(ino);
                reply.entry(&ttl, &attr, Generation(0));
            }
            None => reply.error(Errno::ENOENT),
        }
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        let mut st = lock(&self.state);
        let gone = st.inodes.forget(ino.0, nlookup);
        if gone > 0 {
            tracing::trace!(gone, held = st.inodes.len(), "inodes forgotten");
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let st = lock(&self.state);
        match self.attr(&st, ino.0) {
            Some(attr) => reply.attr(&Self::ttl(&st, ino.0), &attr),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let st = lock(&self.state);
        match st.inodes.map.get(&ino.0) {
            Some(Inode::Link(target)) => reply.data(target.as_bytes()),
            Some(Inode::Node(NodeEntry { node, .. })) if node.kind == NodeKind::Symlink => {
                reply.data(node.link_target.as_ref().map_or(&[][..], |t| &t.0));
            }
            _ => reply.error(Errno::EINVAL),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.content(ino.0) {
            Ok(_) => reply.opened(FileHandle(0), FopenFlags::FOPEN_KEEP_CACHE),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match self.read_range(ino.0, offset, size) {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(e),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    // Extended attributes are not served (yet): none, without a warning per `ls -l`.
    fn getxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _size: u32,
        reply: ReplyXattr,
    ) {
        reply.error(Errno::NO_XATTR);
    }

    fn listxattr(&self, _req: &Request, _ino: INodeNo, size: u32, reply: ReplyXattr) {
        if size == 0 {
            reply.size(0);
        } else {
            reply.data(&[]);
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let mut st = lock(&self.state);
        if offset == 0 && matches!(st.inodes.map.get(&ino.0), Some(Inode::Layout(_))) {
            self.refresh(&mut st);
        }
        let st = match self.listed(st, ino.0) {
            Ok(st) => st,
            Err(e) => return reply.error(e),
        };
        let mut all: Vec<(u64, FileType, &[u8])> = vec![
            (ino.0, FileType::Directory, b"."),
            (ino.0, FileType::Directory, b".."),
        ];
        all.extend(
            Self::listing(&st, ino.0).map(|(name, child)| (child, Self::kind_of(&st, child), name)),
        );
        for (i, (child, kind, name)) in all
            .iter()
            .enumerate()
            .skip(usize::try_from(offset).unwrap_or(usize::MAX))
        {
            if reply.add(
                INodeNo(*child),
                (i + 1) as u64,
                *kind,
                OsStr::from_bytes(name),
            ) {
                break;
            }
        }
        reply.ok();
    }
}
