//! Reading a file's metadata into a [`Node`] and putting it back on restore.

use std::collections::HashMap;
use std::fs::Metadata;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::sync::Mutex;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use nix::sys::stat::{UtimensatFlags, utimensat};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Group, Uid, User};

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

/// Puts ownership (when `owner`), mode, xattrs and times back on `path`. Returns the problems
/// met (each a message), so the caller can warn and go on.
pub(crate) fn apply_metadata(path: &Path, node: &Node, owner: bool) -> Vec<String> {
    let mut problems = Vec::new();
    let is_link = node.kind == NodeKind::Symlink;
    if owner
        && let Err(e) = nix::unistd::fchownat(
            nix::fcntl::AT_FDCWD,
            path,
            Some(Uid::from_raw(node.uid)),
            Some(Gid::from_raw(node.gid)),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
    {
        problems.push(format!("cannot set owner {}:{}: {e}", node.uid, node.gid));
    }
    if !is_link {
        use std::os::unix::fs::PermissionsExt;
        if let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(node.mode)) {
            problems.push(format!("cannot set mode {:o}: {e}", node.mode));
        }
    }
    for x in &node.xattrs {
        let Ok(value) = B64.decode(&x.value) else {
            problems.push(format!("xattr {} has a malformed value", x.name.display()));
            continue;
        };
        if let Err(e) = xattr::set(path, x.name.to_os(), &value) {
            problems.push(format!("cannot set xattr {}: {e}", x.name.display()));
        }
    }
    let ts = |t: i64| TimeSpec::new(t.div_euclid(1_000_000_000), t.rem_euclid(1_000_000_000));
    if let Err(e) = utimensat(
        nix::fcntl::AT_FDCWD,
        path,
        &ts(node.atime),
        &ts(node.mtime),
        UtimensatFlags::NoFollowSymlink,
    ) {
        problems.push(format!("cannot set times: {e}"));
    }
    problems
}
