//! Reading the tree to back up through descriptors, so that an entry swapped for a symlink, a
//! FIFO or another directory while the backup runs is never followed.
//!
//! Every entry is looked up relative to its parent directory's descriptor: listed with
//! `fdopendir` on a duplicate of that descriptor, `lstat`ed with `fstatat(AT_SYMLINK_NOFOLLOW)`,
//! and, for regular files and directories only, opened with `O_NOFOLLOW | O_NONBLOCK` and
//! `fstat`ed. The open entry must be the one listed (same device, inode and type), else it is
//! [`Opened::Changed`]. FIFOs, sockets and devices are never opened, so they cannot block the
//! walk. This is the read half of [`crate::fsmeta`]; putting metadata back is there.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;
use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat, readlinkat};
use nix::sys::stat::{FileStat, Mode, SFlag, fstat, fstatat};
use xattr::FileExt as _;

use crate::format::tree::{Name, Node, NodeKind, Xattr};
use crate::fsmeta::OwnerNames;

/// `lstat` of `name` in `dir` (`name` may be a path when `dir` is `AT_FDCWD`).
///
/// # Errors
/// The system call's.
pub(crate) fn lstat_at(dir: BorrowedFd<'_>, name: &OsStr) -> nix::Result<FileStat> {
    fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW)
}

fn file_type(st: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits())
}

/// The kind of a file from its stat.
pub(crate) fn kind_of(st: &FileStat) -> NodeKind {
    let t = file_type(st);
    if t == SFlag::S_IFDIR {
        NodeKind::Dir
    } else if t == SFlag::S_IFLNK {
        NodeKind::Symlink
    } else if t == SFlag::S_IFIFO {
        NodeKind::Fifo
    } else if t == SFlag::S_IFSOCK {
        NodeKind::Socket
    } else if t == SFlag::S_IFCHR {
        NodeKind::Chardev
    } else if t == SFlag::S_IFBLK {
        NodeKind::Blockdev
    } else {
        NodeKind::File
    }
}

/// Whether two stats are of the same file: device, inode and type.
pub(crate) fn same_file(a: &FileStat, b: &FileStat) -> bool {
    a.st_dev == b.st_dev && a.st_ino == b.st_ino && file_type(a) == file_type(b)
}

/// An entry opened for reading.
pub(crate) enum Opened {
    /// The entry listed, open, with its `fstat`.
    Same(File, FileStat),
    /// Something else is there now (a symlink, a FIFO, another file or directory).
    Changed,
}

/// Opens `name` in `dir`, which `lstat` said is a regular file or a directory (`lstat`'s type
/// picks which), without following a symlink or blocking on a FIFO, and checks that what was
/// opened is what `lstat` described. Regular files are opened with `O_NOATIME` where allowed.
///
/// # Errors
/// The open's, except those that mean the entry was swapped (`ELOOP`, `ENOTDIR`, `ENXIO`),
/// which are [`Opened::Changed`].
/// Opens `path` in `dir` with `flags` and `O_NOATIME`, which is refused (EPERM) on files this
/// process does not own unless it is root: then without.
fn open_noatime<P: ?Sized + nix::NixPath>(
    dir: BorrowedFd<'_>,
    path: &P,
    flags: OFlag,
) -> nix::Result<OwnedFd> {
    match openat(dir, path, flags | OFlag::O_NOATIME, Mode::empty()) {
        Err(Errno::EPERM) => openat(dir, path, flags, Mode::empty()),
        r => r,
    }
}

pub(crate) fn open_at(dir: BorrowedFd<'_>, name: &OsStr, lstat: &FileStat) -> nix::Result<Opened> {
    let base = OFlag::O_RDONLY
        | OFlag::O_NOFOLLOW
        | OFlag::O_NONBLOCK
        | OFlag::O_NOCTTY
        | OFlag::O_CLOEXEC;
    let is_dir = file_type(lstat) == SFlag::S_IFDIR;
    if !is_dir && crate::fsmeta::have_proc() {
        // Looked up O_PATH and checked before it is opened: a device swapped in for the file
        // is never opened (its driver's open could act: a watchdog, a tape), only looked at.
        let held = match openat(
            dir,
            name,
            OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(Errno::ENOENT | Errno::ELOOP) => return Ok(Opened::Changed),
            Err(e) => return Err(e),
        };
        let st = fstat(&held)?;
        if !same_file(lstat, &st) {
            return Ok(Opened::Changed);
        }
        let path = crate::fsmeta::proc_path(held.as_fd());
        let fd = open_noatime(nix::fcntl::AT_FDCWD, &path, base & !OFlag::O_NOFOLLOW)?;
        return Ok(Opened::Same(File::from(fd), st));
    }
    let opened = if is_dir {
        openat(dir, name, base | OFlag::O_DIRECTORY, Mode::empty())
    } else {
        open_noatime(dir, name, base)
    };
    let fd = match opened {
        Ok(fd) => fd,
        // A symlink (O_NOFOLLOW), a non-directory (O_DIRECTORY), a socket: swapped in.
        Err(Errno::ELOOP | Errno::ENOTDIR | Errno::ENXIO) => return Ok(Opened::Changed),
        Err(e) => return Err(e),
    };
    let st = fstat(&fd)?;
    Ok(if same_file(lstat, &st) {
        Opened::Same(File::from(fd), st)
    } else {
        Opened::Changed
    })
}

/// The names in the open directory `dir` (without `.` and `..`), read through a duplicate of
/// its descriptor that is closed before returning.
///
/// # Errors
/// Those of `dup`, `fdopendir` and `readdir`.
pub(crate) fn list_dir(dir: &File) -> nix::Result<Vec<OsString>> {
    let mut d = nix::dir::Dir::from_fd(nix::unistd::dup(dir)?)?;
    let mut names = Vec::new();
    for e in d.iter() {
        let e = e?;
        let name = e.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push(OsString::from_vec(name.to_vec()));
        }
    }
    Ok(names)
}

/// The target of the symlink `name` in `dir`, or [`Opened::Changed`]'s meaning (`None`) when
/// `name` is not a symlink any more.
///
/// # Errors
/// Those of `readlinkat` other than `EINVAL` (not a symlink).
pub(crate) fn link_target_at(dir: BorrowedFd<'_>, name: &OsStr) -> nix::Result<Option<Name>> {
    match readlinkat(dir, name) {
        Ok(t) => Ok(Some(Name::from_os(&t))),
        Err(Errno::EINVAL) => Ok(None),
        Err(e) => Err(e),
    }
}

fn ns(secs: i64, nsec: i64) -> i64 {
    secs.saturating_mul(1_000_000_000).saturating_add(nsec)
}

/// A node from a stat, without xattrs or a symlink's target (see [`xattrs_of`],
/// [`xattrs_at`] and [`link_target_at`]).
#[allow(
    clippy::unnecessary_cast,
    clippy::useless_conversion,
    reason = "stat field types differ between targets"
)]
pub(crate) fn node_from_stat(name: Name, st: &FileStat, owners: &OwnerNames) -> Node {
    let kind = kind_of(st);
    let mut node = Node::new(name, kind);
    node.mode = (st.st_mode as u32) & 0o7777;
    node.uid = st.st_uid;
    node.gid = st.st_gid;
    node.user = owners.user(st.st_uid);
    node.group = owners.group(st.st_gid);
    node.mtime = ns(st.st_mtime as i64, st.st_mtime_nsec as i64);
    node.atime = ns(st.st_atime as i64, st.st_atime_nsec as i64);
    node.ctime = ns(st.st_ctime as i64, st.st_ctime_nsec as i64);
    node.inode = st.st_ino as u64;
    node.device_id = st.st_dev as u64;
    match kind {
        NodeKind::File => {
            node.size = u64::try_from(st.st_size).unwrap_or(0);
            node.links = st.st_nlink as u64;
        }
        NodeKind::Chardev | NodeKind::Blockdev => node.rdev = st.st_rdev as u64,
        _ => {}
    }
    node
}

fn sorted(mut out: Vec<Xattr>) -> Vec<Xattr> {
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

fn xattr(name: &OsStr, value: Vec<u8>) -> Xattr {
    Xattr {
        name: Name::from_os(name),
        value: B64.encode(value),
    }
}

/// The xattrs of an open file or directory. Best effort: a filesystem without xattrs, or one
/// we may not read, is not an error.
pub(crate) fn xattrs_of(file: &File) -> Vec<Xattr> {
    let Ok(names) = file.list_xattr() else {
        return Vec::new();
    };
    sorted(
        names
            .filter_map(|n| Some(xattr(&n, file.get_xattr(&n).ok().flatten()?)))
            .collect(),
    )
}

/// Whether `/proc/self/fd` can name an entry relative to an open directory.
fn proc_fd() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        let ok = std::path::Path::new("/proc/self/fd").is_dir();
        if !ok {
            tracing::warn!(
                "/proc is not mounted: symlinks and special files are saved without xattrs"
            );
        }
        ok
    })
}

/// The xattrs of the entry `name` in `dir`, itself, not what it may point to, without opening
/// it (for symlinks, special files and hard links already read). The entry is named as
/// `/proc/self/fd/<dir>/<name>` and read with the `l*xattr` calls: the directory is the one
/// held open and the last component is not followed. Without `/proc`, regular files and
/// directories are opened as in [`open_at`], and other entries get no xattrs.
pub(crate) fn xattrs_at(dir: BorrowedFd<'_>, name: &OsStr, lstat: &FileStat) -> Vec<Xattr> {
    let path = if dir.as_raw_fd() == nix::libc::AT_FDCWD {
        PathBuf::from(name)
    } else if proc_fd() {
        let mut p = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
        p.extend_from_slice(name.as_bytes());
        PathBuf::from(OsString::from_vec(p))
    } else {
        return match kind_of(lstat) {
            NodeKind::File | NodeKind::Dir => match open_at(dir.as_fd(), name, lstat) {
                Ok(Opened::Same(f, _)) => xattrs_of(&f),
                _ => Vec::new(),
            },
            _ => Vec::new(),
        };
    };
    // xattr::list and xattr::get are llistxattr and lgetxattr: they do not follow symlinks.
    let Ok(names) = xattr::list(&path) else {
        return Vec::new();
    };
    sorted(
        names
            .filter_map(|n| Some(xattr(&n, xattr::get(&path, &n).ok().flatten()?)))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::fcntl::AT_FDCWD;

    fn dir_of(p: &std::path::Path) -> File {
        File::open(p).unwrap()
    }

    #[test]
    fn a_file_swapped_for_a_fifo_is_changed_and_does_not_block() {
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join("f");
        std::fs::write(&f, "tenant").unwrap();
        let dir = dir_of(tmp.path());
        let lstat = lstat_at(dir.as_fd(), OsStr::new("f")).unwrap();
        std::fs::remove_file(&f).unwrap();
        nix::unistd::mkfifo(&f, Mode::from_bits_truncate(0o600)).unwrap();
        // Without O_NONBLOCK this open would wait for a writer forever.
        assert!(matches!(
            open_at(dir.as_fd(), OsStr::new("f"), &lstat),
            Ok(Opened::Changed)
        ));
    }

    #[test]
    fn a_file_swapped_for_a_symlink_or_another_file_is_changed() {
        let tmp = tempfile::tempdir().unwrap();
        let (f, other) = (tmp.path().join("f"), tmp.path().join("other"));
        std::fs::write(&f, "tenant").unwrap();
        std::fs::write(&other, "SECRET").unwrap();
        let dir = dir_of(tmp.path());
        let lstat = lstat_at(dir.as_fd(), OsStr::new("f")).unwrap();
        std::fs::remove_file(&f).unwrap();
        std::os::unix::fs::symlink(&other, &f).unwrap();
        assert!(matches!(
            open_at(dir.as_fd(), OsStr::new("f"), &lstat),
            Ok(Opened::Changed)
        ));
        std::fs::remove_file(&f).unwrap();
        std::fs::hard_link(&other, &f).unwrap();
        assert!(matches!(
            open_at(dir.as_fd(), OsStr::new("f"), &lstat),
            Ok(Opened::Changed)
        ));
    }

    #[test]
    fn a_directory_swapped_for_a_symlink_to_a_directory_is_changed() {
        let tmp = tempfile::tempdir().unwrap();
        let (d, host) = (tmp.path().join("d"), tmp.path().join("host"));
        std::fs::create_dir(&d).unwrap();
        std::fs::create_dir(&host).unwrap();
        let dir = dir_of(tmp.path());
        let lstat = lstat_at(dir.as_fd(), OsStr::new("d")).unwrap();
        std::fs::remove_dir(&d).unwrap();
        std::os::unix::fs::symlink(&host, &d).unwrap();
        assert!(matches!(
            open_at(dir.as_fd(), OsStr::new("d"), &lstat),
            Ok(Opened::Changed)
        ));
    }

    #[test]
    fn an_unchanged_entry_opens_with_its_stat() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("f"), "tenant").unwrap();
        std::fs::create_dir(tmp.path().join("d")).unwrap();
        let dir = dir_of(tmp.path());
        for name in ["f", "d"] {
            let lstat = lstat_at(dir.as_fd(), OsStr::new(name)).unwrap();
            let Ok(Opened::Same(_, st)) = open_at(dir.as_fd(), OsStr::new(name), &lstat) else {
                panic!("{name} should open");
            };
            assert!(same_file(&lstat, &st));
        }
        let mut names = list_dir(&dir).unwrap();
        names.sort();
        assert_eq!(names, [OsString::from("d"), OsString::from("f")]);
        let root = lstat_at(AT_FDCWD, tmp.path().as_os_str()).unwrap();
        assert_eq!(kind_of(&root), NodeKind::Dir);
    }
}
