//! Reading a file's metadata into a [`Node`] and putting it back on restore.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{File, Metadata};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::{Mutex, OnceLock};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use nix::sys::stat::{FchmodatFlags, Mode, UtimensatFlags, fchmodat, futimens, utimensat};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Group, Uid, User};
use xattr::FileExt as _;

use crate::format::tree::{Name, Node, NodeKind, Xattr};

/// Caches uid/gid → name lookups (each is a passwd/group file read).
#[derive(Default)]
pub(crate) struct OwnerNames {
    users: Mutex<HashMap<u32, Option<String>>>,
    groups: Mutex<HashMap<u32, Option<String>>>,
}

impl OwnerNames {
    fn user(&self, uid: u32) -> Option<String> {
        self.users
            .lock()
            .expect("owner cache")
            .entry(uid)
            .or_insert_with(|| {
                User::from_uid(Uid::from_raw(uid))
                    .ok()
                    .flatten()
                    .map(|u| u.name)
            })
            .clone()
    }

    fn group(&self, gid: u32) -> Option<String> {
        self.groups
            .lock()
            .expect("owner cache")
            .entry(gid)
            .or_insert_with(|| {
                Group::from_gid(Gid::from_raw(gid))
                    .ok()
                    .flatten()
                    .map(|g| g.name)
            })
            .clone()
    }
}

fn ns(secs: i64, nsec: i64) -> i64 {
    secs.saturating_mul(1_000_000_000).saturating_add(nsec)
}

/// The kind of a file from its metadata.
pub(crate) fn kind_of(meta: &Metadata) -> NodeKind {
    let ft = meta.file_type();
    if ft.is_dir() {
        NodeKind::Dir
    } else if ft.is_symlink() {
        NodeKind::Symlink
    } else if ft.is_fifo() {
        NodeKind::Fifo
    } else if ft.is_socket() {
        NodeKind::Socket
    } else if ft.is_char_device() {
        NodeKind::Chardev
    } else if ft.is_block_device() {
        NodeKind::Blockdev
    } else {
        NodeKind::File
    }
}

/// A node for `path` from its (lstat) metadata. Xattrs are read best effort.
pub(crate) fn node_from_metadata(
    name: Name,
    path: &Path,
    meta: &Metadata,
    owners: &OwnerNames,
) -> Node {
    let kind = kind_of(meta);
    let mut node = Node::new(name, kind);
    node.mode = meta.mode() & 0o7777;
    node.uid = meta.uid();
    node.gid = meta.gid();
    node.user = owners.user(meta.uid());
    node.group = owners.group(meta.gid());
    node.mtime = ns(meta.mtime(), meta.mtime_nsec());
    node.atime = ns(meta.atime(), meta.atime_nsec());
    node.ctime = ns(meta.ctime(), meta.ctime_nsec());
    node.inode = meta.ino();
    node.device_id = meta.dev();
    match kind {
        NodeKind::File => {
            node.size = meta.size();
            node.links = meta.nlink();
        }
        NodeKind::Chardev | NodeKind::Blockdev => node.rdev = meta.rdev(),
        NodeKind::Symlink => {
            node.link_target = std::fs::read_link(path)
                .ok()
                .map(|t| Name::from_os(t.as_os_str()));
        }
        _ => {}
    }
    node.xattrs = read_xattrs(path);
    node
}

fn read_xattrs(path: &Path) -> Vec<Xattr> {
    // Best effort: a filesystem without xattrs, or one we may not read, is not an error.
    let Ok(names) = xattr::list(path) else {
        return Vec::new();
    };
    let mut out: Vec<Xattr> = names
        .filter_map(|n| {
            let value = xattr::get(path, &n).ok().flatten()?;
            Some(Xattr {
                name: Name::from_os(&n),
                value: B64.encode(value),
            })
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Puts ownership (when `owner`), mode, xattrs and times back on entry `name` of directory
/// `dir` (a symlink itself, never what it points to). Returns the problems met (each a
/// message), so the caller can warn and go on.
pub(crate) fn apply_metadata_at(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    node: &Node,
    owner: bool,
) -> Vec<String> {
    apply(Target::At(dir, name), node, owner, true)
}

/// [`apply_metadata_at`] on a file or directory held open after its content was written: no path is
/// looked up again. `set_mode: false` when the file was created with its mode already (see
/// [`create_mode`]).
pub(crate) fn apply_metadata_to_file(
    file: &File,
    node: &Node,
    owner: bool,
    set_mode: bool,
) -> Vec<String> {
    apply(Target::File(file), node, owner, set_mode)
}

/// The mode to create a regular file with so that it needs no `chmod` afterwards: `None` when
/// the process umask would clear some of `mode`'s bits or `mode` has set-id or sticky bits
/// (which a later `chown` would clear).
pub(crate) fn create_mode(mode: u32) -> Option<u32> {
    static UMASK: OnceLock<Option<u32>> = OnceLock::new();
    // From /proc (reading it with umask(2) would change it for a moment, for every thread).
    let umask = (*UMASK.get_or_init(|| {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let line = status.lines().find_map(|l| l.strip_prefix("Umask:"))?;
        u32::from_str_radix(line.trim(), 8).ok()
    }))?;
    (mode & 0o7000 == 0 && mode & umask == 0).then_some(mode & 0o777)
}

#[derive(Clone, Copy)]
enum Target<'a> {
    At(BorrowedFd<'a>, &'a OsStr),
    File(&'a File),
}

fn apply(target: Target<'_>, node: &Node, owner: bool, set_mode: bool) -> Vec<String> {
    let mut problems = Vec::new();
    let is_link = node.kind == NodeKind::Symlink;
    if owner {
        let (uid, gid) = (Some(Uid::from_raw(node.uid)), Some(Gid::from_raw(node.gid)));
        let r = match target {
            Target::At(dir, name) => nix::unistd::fchownat(
                dir,
                name,
                uid,
                gid,
                nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
            ),
            Target::File(file) => nix::unistd::fchown(file, uid, gid),
        };
        if let Err(e) = r {
            problems.push(format!("cannot set owner {}:{}: {e}", node.uid, node.gid));
        }
    }
    if set_mode && !is_link {
        let r = match target {
            // Not through a link swapped in meanwhile: the C library opens the entry with
            // O_PATH|O_NOFOLLOW and changes the mode of what it opened.
            Target::At(dir, name) => fchmodat(
                dir,
                name,
                Mode::from_bits_truncate(node.mode),
                FchmodatFlags::NoFollowSymlink,
            )
            .map_err(std::io::Error::from),
            Target::File(file) => file.set_permissions(std::fs::Permissions::from_mode(node.mode)),
        };
        if let Err(e) = r {
            problems.push(format!("cannot set mode {:o}: {e}", node.mode));
        }
    }
    for x in &node.xattrs {
        let Ok(value) = B64.decode(&x.value) else {
            problems.push(format!("xattr {} has a malformed value", x.name.display()));
            continue;
        };
        let r = match target {
            // lsetxattr on the entry through its directory's descriptor: the last name is not
            // followed, and the descriptor is the directory this restore holds.
            Target::At(dir, name) => xattr::set(
                Path::new(&format!("/proc/self/fd/{}", dir.as_raw_fd())).join(name),
                x.name.to_os(),
                &value,
            ),
            Target::File(file) => file.set_xattr(x.name.to_os(), &value),
        };
        if let Err(e) = r {
            problems.push(format!("cannot set xattr {}: {e}", x.name.display()));
        }
    }
    let ts = |t: i64| TimeSpec::new(t.div_euclid(1_000_000_000), t.rem_euclid(1_000_000_000));
    let (atime, mtime) = (ts(node.atime), ts(node.mtime));
    let r = match target {
        Target::At(dir, name) => {
            utimensat(dir, name, &atime, &mtime, UtimensatFlags::NoFollowSymlink)
        }
        Target::File(file) => futimens(file, &atime, &mtime),
    };
    if let Err(e) = r {
        problems.push(format!("cannot set times: {e}"));
    }
    problems
}
