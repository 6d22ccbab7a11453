//! A directory that cairn writes into (a restore target, a volume receiving a marker), held
//! open as a descriptor. Every entry below it is reached relative to that descriptor or to a
//! descriptor of a directory below it, and no symbolic link is ever followed on the way — not
//! one that came with a snapshot, not one that somebody else made in the target meanwhile.
//!
//! Paths given to [`TargetDir`] are relative to it and made of plain names (tree entry names
//! are single components, checked when a tree is decoded); anything else is refused.
//! Resolution uses `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` where the kernel has it
//! (Linux 5.6) and one `openat(O_NOFOLLOW)` per component elsewhere.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, OpenHow, ResolveFlag, openat, openat2};
use nix::sys::stat::{FileStat, Mode, SFlag, fstatat, mkdirat};
use nix::unistd::{UnlinkatFlags, unlinkat};

pub use crate::fsmeta::{have_proc, proc_path};

/// Set once the kernel said it has no `openat2`.
static NO_OPENAT2: AtomicBool = AtomicBool::new(false);

/// A directory held open, with its path for messages.
#[derive(Debug)]
pub struct TargetDir {
    fd: OwnedFd,
    path: PathBuf,
}

/// Whether a stat is of a directory.
pub fn is_dir(st: &FileStat) -> bool {
    SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR
}

/// Whether a stat is of a regular file.
pub fn is_file(st: &FileStat) -> bool {
    SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFREG
}

fn plain(rel: &Path) -> io::Result<()> {
    if rel.components().all(|c| matches!(c, Component::Normal(_))) {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("`{}` is not a path of plain names", rel.display()),
        ))
    }
}

/// Opens directory `name` in `dir` without following a link.
pub fn open_dir_in(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<OwnedFd> {
    Ok(openat(
        dir,
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?)
}

/// The lstat of `name` in `dir`; `None` when there is nothing by that name.
pub fn stat_in(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<Option<FileStat>> {
    match fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Makes directory `name` in `dir`, mode 0700 (restore widens it at the end, so nobody else
/// reaches what is written below it meanwhile).
pub fn mkdir_in(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    Ok(mkdirat(dir, name, Mode::from_bits_truncate(0o700))?)
}

/// Directories nested deeper than this are not descended into (by restore, by removal): a
/// tree or a tenant's directory chain of any depth must not exhaust the stack or the
/// descriptors.
pub const MAX_DEPTH: usize = 1024;

/// Removes whatever is named `name` in `dir`: a directory with everything below it, reached
/// through descriptors (a link inside is removed, never followed). Nothing there is fine.
pub fn remove_in(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    remove_below(dir, name, 0)
}

fn remove_below(dir: BorrowedFd<'_>, name: &OsStr, depth: usize) -> io::Result<()> {
    let Some(st) = stat_in(dir, name)? else {
        return Ok(());
    };
    if is_dir(&st) {
        if depth >= MAX_DEPTH {
            return Err(io::Error::other(format!(
                "directories nested more than {MAX_DEPTH} deep"
            )));
        }
        let sub = open_dir_in(dir, name)?;
        for entry in list(sub.as_fd())? {
            remove_below(sub.as_fd(), &entry, depth + 1)?;
        }
        unlinkat(dir, name, UnlinkatFlags::RemoveDir)?;
    } else {
        unlinkat(dir, name, UnlinkatFlags::NoRemoveDir)?;
    }
    Ok(())
}

/// The identity of an inode: (device, inode number).
pub type Ident = (u64, u64);

/// The identity of what a stat describes.
pub fn ident(st: &FileStat) -> Ident {
    (st.st_dev, st.st_ino)
}

/// An error saying `shown` is no longer what this process made there.
pub fn replaced(shown: &Path) -> io::Error {
    io::Error::other(format!(
        "{} was replaced by something else while cairn worked on it; it was left alone",
        shown.display()
    ))
}

/// The names in directory `dir` (without `.` and `..`).
pub fn list(dir: BorrowedFd<'_>) -> io::Result<Vec<std::ffi::OsString>> {
    use std::os::unix::ffi::OsStrExt;
    let mut d = Dir::from_fd(dir.try_clone_to_owned()?)?;
    let mut names = Vec::new();
    for entry in d.iter() {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push(OsStr::from_bytes(name).to_owned());
        }
    }
    Ok(names)
}

impl TargetDir {
    /// Opens directory `path`, creating it (and what leads to it) when missing. The path
    /// itself is resolved as given, links included: it is the operator's choice.
    ///
    /// # Errors
    /// When it cannot be created or opened as a directory.
    pub fn create(path: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(path)?;
        let fd = openat(
            nix::fcntl::AT_FDCWD,
            path,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        // A kernel without openat2 says ENOSYS; a seccomp filter that does not know it, EPERM.
        if !NO_OPENAT2.load(Ordering::Relaxed) {
            let how = OpenHow::new()
                .flags(OFlag::O_PATH | OFlag::O_CLOEXEC)
                .resolve(ResolveFlag::RESOLVE_BENEATH);
            if let Err(Errno::ENOSYS | Errno::EPERM) = openat2(fd.as_fd(), ".", how) {
                NO_OPENAT2.store(true, Ordering::Relaxed);
            }
        }
        Ok(Self {
            fd,
            path: path.to_owned(),
        })
    }

    /// Opens directory `path`, which must exist, without following any link in it (a
    /// canonical path has none, so a link there now was swapped in).
    ///
    /// # Errors
    /// When it is missing, not a directory, or a link is on the way (`ELOOP`).
    pub fn open_existing(path: &Path) -> io::Result<Self> {
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let how = OpenHow::new()
            .flags(flags)
            .resolve(ResolveFlag::RESOLVE_NO_SYMLINKS);
        let fd = match openat2(nix::fcntl::AT_FDCWD, path, how) {
            Err(Errno::ENOSYS | Errno::EPERM) => {
                openat(nix::fcntl::AT_FDCWD, path, flags, Mode::empty())?
            }
            r => r?,
        };
        Ok(Self {
            fd,
            path: path.to_owned(),
        })
    }

    /// Opens `rel` with `flags` only if it still is the inode `want` this process made or
    /// opened before: looked up `O_PATH` first (no device driver's open runs, no FIFO
    /// blocks), checked, then opened through `/proc/self/fd`. Without `/proc`: opened
    /// `O_NONBLOCK|O_NOCTTY` and checked after.
    ///
    /// # Errors
    /// [`replaced`] when something else is there now; the open's error.
    pub fn reopen(&self, rel: &Path, flags: OFlag, want: Ident) -> io::Result<OwnedFd> {
        let check = |fd: &OwnedFd| -> io::Result<()> {
            let st = nix::sys::stat::fstat(fd)?;
            if ident(&st) == want && (is_file(&st) || is_dir(&st)) {
                Ok(())
            } else {
                Err(replaced(&self.display(rel)))
            }
        };
        if crate::fsmeta::have_proc() {
            let held = self.open(rel, OFlag::O_PATH, 0)?;
            check(&held)?;
            return Ok(openat(
                nix::fcntl::AT_FDCWD,
                &crate::fsmeta::proc_path(held.as_fd()),
                flags | OFlag::O_CLOEXEC | OFlag::O_NOCTTY,
                Mode::empty(),
            )?);
        }
        let fd = self.open(rel, flags | OFlag::O_NONBLOCK | OFlag::O_NOCTTY, 0)?;
        check(&fd)?;
        Ok(fd)
    }

    /// The target's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The descriptor of the target itself.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// `rel` as a path for messages.
    pub fn display(&self, rel: &Path) -> PathBuf {
        if rel.as_os_str().is_empty() {
            self.path.clone()
        } else {
            self.path.join(rel)
        }
    }

    /// Opens `rel` with `flags` (`O_NOFOLLOW` and `O_CLOEXEC` added) and `mode` (when
    /// creating), refusing a link anywhere on the way: `ELOOP`, never the link's target.
    ///
    /// # Errors
    /// The open's error.
    pub fn open(&self, rel: &Path, flags: OFlag, mode: u32) -> io::Result<OwnedFd> {
        plain(rel)?;
        let flags = flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let mode = Mode::from_bits_truncate(mode);
        if rel.as_os_str().is_empty() {
            return Ok(openat(self.fd(), ".", flags, mode)?);
        }
        if !NO_OPENAT2.load(Ordering::Relaxed) {
            let how = OpenHow::new().flags(flags).mode(mode).resolve(
                ResolveFlag::RESOLVE_BENEATH
                    | ResolveFlag::RESOLVE_NO_SYMLINKS
                    | ResolveFlag::RESOLVE_NO_MAGICLINKS,
            );
            for _ in 0..8 {
                match openat2(self.fd(), rel, how) {
                    // A rename elsewhere raced the lookup: the kernel asks to try again.
                    Err(Errno::EAGAIN) => continue,
                    Err(Errno::ENOSYS) => {
                        NO_OPENAT2.store(true, Ordering::Relaxed);
                        break;
                    }
                    r => return Ok(r?),
                }
            }
        }
        let (dir, name) = self.walk_parent(rel)?;
        Ok(openat(dir.as_fd(), name, flags, mode)?)
    }

    /// Opens `rel` as a file (see [`TargetDir::open`]).
    ///
    /// # Errors
    /// The open's error.
    pub fn open_file(&self, rel: &Path, flags: OFlag, mode: u32) -> io::Result<File> {
        self.open(rel, flags, mode).map(File::from)
    }

    /// Opens directory `rel` (empty: the target itself).
    ///
    /// # Errors
    /// The open's error (`ELOOP` or `ENOTDIR` when a link or file is in the way).
    pub fn open_dir(&self, rel: &Path) -> io::Result<OwnedFd> {
        self.open(rel, OFlag::O_RDONLY | OFlag::O_DIRECTORY, 0)
    }

    /// The directory holding `rel`, opened, and `rel`'s last name.
    ///
    /// # Errors
    /// When `rel` has no name or its directory cannot be opened.
    pub fn parent<'a>(&self, rel: &'a Path) -> io::Result<(OwnedFd, &'a OsStr)> {
        let name = rel.file_name().ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "a path without a file name")
        })?;
        let dir = self.open_dir(rel.parent().unwrap_or(Path::new("")))?;
        Ok((dir, name))
    }

    /// Makes the directories of `rel` that are missing (mode 0700) and opens the last. An
    /// entry in the way that is not a directory (a link among them) is replaced when
    /// `replace`, else an `AlreadyExists` error.
    ///
    /// # Errors
    /// When a directory cannot be made or opened.
    pub fn make_dirs(&self, rel: &Path, replace: bool) -> io::Result<OwnedFd> {
        plain(rel)?;
        let mut dir = self.open_dir(Path::new(""))?;
        for c in rel.components() {
            let name = c.as_os_str();
            match stat_in(dir.as_fd(), name)? {
                Some(st) if is_dir(&st) => {}
                Some(_) if !replace => {
                    return Err(io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        format!("{} is not a directory", self.display(rel).display()),
                    ));
                }
                Some(_) => {
                    remove_in(dir.as_fd(), name)?;
                    mkdir_in(dir.as_fd(), name)?;
                }
                None => match mkdir_in(dir.as_fd(), name) {
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                    r => r?,
                },
            }
            dir = open_dir_in(dir.as_fd(), name)?;
        }
        Ok(dir)
    }

    /// Without `openat2`: the directory of `rel` one component at a time, each opened with
    /// `O_NOFOLLOW`.
    fn walk_parent<'a>(&self, rel: &'a Path) -> io::Result<(OwnedFd, &'a OsStr)> {
        let mut names = rel.components().map(|c| c.as_os_str());
        let last = names.next_back().unwrap_or(OsStr::new("."));
        let mut dir = self.fd.try_clone()?;
        for name in names {
            dir = open_dir_in(dir.as_fd(), name)?;
        }
        Ok((dir, last))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_in_the_target_are_never_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("f"), b"host").unwrap();
        let target = TargetDir::create(&tmp.path().join("t")).unwrap();
        std::os::unix::fs::symlink(&outside, target.path().join("d")).unwrap();
        std::os::unix::fs::symlink(outside.join("f"), target.path().join("l")).unwrap();
        for rel in ["d/f", "l"] {
            let e = target
                .open_file(Path::new(rel), OFlag::O_WRONLY, 0)
                .unwrap_err();
            assert_eq!(e.raw_os_error(), Some(Errno::ELOOP as i32), "{rel}: {e}");
        }
        assert!(target.open_dir(Path::new("../outside")).is_err());
        // Without openat2 the same.
        NO_OPENAT2.store(true, Ordering::Relaxed);
        let e = target
            .open_file(Path::new("d/f"), OFlag::O_WRONLY, 0)
            .unwrap_err();
        NO_OPENAT2.store(false, Ordering::Relaxed);
        // (O_DIRECTORY|O_NOFOLLOW on a link: ENOTDIR.)
        assert!(
            [Errno::ELOOP as i32, Errno::ENOTDIR as i32].contains(&e.raw_os_error().unwrap_or(0)),
            "{e}"
        );
        // make_dirs replaces the link by a directory, or refuses to.
        assert!(target.make_dirs(Path::new("d/x"), false).is_err());
        target.make_dirs(Path::new("d/x"), true).unwrap();
        assert!(
            std::fs::symlink_metadata(target.path().join("d"))
                .unwrap()
                .is_dir()
        );
        assert_eq!(std::fs::read(outside.join("f")).unwrap(), b"host");
        assert!(!outside.join("x").exists());
        // remove_in removes a link, not what it points to.
        remove_in(target.fd(), OsStr::new("l")).unwrap();
        assert!(outside.join("f").exists());
    }
}
