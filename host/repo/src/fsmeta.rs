//! Owner names for the nodes backup reads (see [`crate::fsread`]) and putting a file's
//! metadata back on restore.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::{Mutex, OnceLock};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use nix::sys::stat::{FchmodatFlags, Mode, UtimensatFlags, fchmodat, futimens, utimensat};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Group, Uid, User};
use xattr::FileExt as _;

use crate::format::tree::{Node, NodeKind};

/// Caches uid/gid → name lookups (each is a passwd/group file read).
#[derive(Default)]
pub(crate) struct OwnerNames {
    users: Mutex<HashMap<u32, Option<String>>>,
    groups: Mutex<HashMap<u32, Option<String>>>,
}

impl OwnerNames {
    pub(crate) fn user(&self, uid: u32) -> Option<String> {
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

    pub(crate) fn group(&self, gid: u32) -> Option<String> {
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

/// [`apply_metadata_at`] on an entry held open with `O_PATH` (`held`, whose identity the
/// caller checked): owner, mode, xattrs and times go to that very inode (through
/// `/proc/self/fd`), whatever is named `name` in `dir` by now. A link's times are set by
/// name (without following it) and its xattrs are not restored.
pub(crate) fn apply_metadata_held(
    held: BorrowedFd<'_>,
    dir: BorrowedFd<'_>,
    name: &OsStr,
    node: &Node,
    owner: bool,
) -> Vec<String> {
    apply(Target::Held(held, dir, name), node, owner, true)
}

/// Whether `/proc/self/fd` can reach what a descriptor holds.
pub fn have_proc() -> bool {
    static HAVE: OnceLock<bool> = OnceLock::new();
    *HAVE.get_or_init(|| Path::new("/proc/self/fd").is_dir())
}

/// `/proc/self/fd/N`: the inode `fd` holds, reached again by a path (for calls that take
/// one).
pub fn proc_path(fd: BorrowedFd<'_>) -> std::path::PathBuf {
    std::path::PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
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
    /// Opened `O_PATH`, and its directory and name.
    Held(BorrowedFd<'a>, BorrowedFd<'a>, &'a OsStr),
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
            Target::Held(held, _, _) => {
                nix::unistd::fchownat(held, "", uid, gid, nix::fcntl::AtFlags::AT_EMPTY_PATH)
            }
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
            Target::Held(held, _, _) => fchmodat(
                nix::fcntl::AT_FDCWD,
                &proc_path(held),
                Mode::from_bits_truncate(node.mode),
                FchmodatFlags::FollowSymlink,
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
            Target::Held(..) if is_link => Err(std::io::Error::other(
                "extended attributes of a symbolic link are not restored",
            )),
            Target::Held(held, _, _) => xattr::set_deref(proc_path(held), x.name.to_os(), &value),
            Target::File(file) => file.set_xattr(x.name.to_os(), &value),
        };
        if let Err(e) = r {
            problems.push(format!("cannot set xattr {}: {e}", x.name.display()));
        }
    }
    let ts = |t: i64| TimeSpec::new(t.div_euclid(1_000_000_000), t.rem_euclid(1_000_000_000));
    let (atime, mtime) = (ts(node.atime), ts(node.mtime));
    let r = match target {
        Target::At(dir, name) | Target::Held(_, dir, name) if is_link => {
            utimensat(dir, name, &atime, &mtime, UtimensatFlags::NoFollowSymlink)
        }
        Target::At(dir, name) => {
            utimensat(dir, name, &atime, &mtime, UtimensatFlags::NoFollowSymlink)
        }
        Target::Held(held, _, _) => utimensat(
            nix::fcntl::AT_FDCWD,
            &proc_path(held),
            &atime,
            &mtime,
            UtimensatFlags::FollowSymlink,
        ),
        Target::File(file) => futimens(file, &atime, &mtime),
    };
    if let Err(e) = r {
        problems.push(format!("cannot set times: {e}"));
    }
    problems
}
