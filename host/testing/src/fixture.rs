//! Fixture trees and tree comparison.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::sys::stat::{Mode, SFlag, mknod};
use nix::sys::time::TimeSpec;
use rand::{Rng, SeedableRng};

/// Whether this process may create devices and change owners.
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Deterministic pseudo-random bytes.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut v = vec![0u8; len];
    rand::rngs::StdRng::seed_from_u64(seed).fill(&mut v[..]);
    v
}

fn set_times(p: &Path, secs: i64, nsec: i64) {
    let t = TimeSpec::new(secs, nsec);
    nix::sys::stat::utimensat(
        nix::fcntl::AT_FDCWD,
        p,
        &t,
        &t,
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    )
    .expect("set fixture times");
}

/// Builds under `root` a tree with every entry kind the format records: nested and empty
/// directories, 0-byte and multi-chunk files, a sparse 64 MiB file, unicode and 255-byte
/// names, hard links, symlinks (also dangling), a fifo, odd modes, xattrs where the filesystem
/// allows them, and (as root) devices and other owners.
pub fn build_everything(root: &Path) {
    let d = |p: &str| {
        let p = root.join(p);
        fs::create_dir_all(&p).expect("fixture dir");
        p
    };
    let f = |p: &str, data: &[u8]| {
        let p = root.join(p);
        fs::write(&p, data).expect("fixture file");
        p
    };
    d("a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q/r/s/t/u/v/w/x/y/z");
    f(
        "a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q/r/s/t/u/v/w/x/y/z/deep.txt",
        b"deep",
    );
    d("empty-dir");
    f("zero-bytes", b"");
    f("small.txt", b"hello cairn\n");
    f("random-3mib.bin", &random_bytes(3 * 1024 * 1024 + 17, 1));
    f(
        "compressible.txt",
        "lorem ipsum dolor sit amet ".repeat(100_000).as_bytes(),
    );
    d("unicode");
    f("unicode/日本語のファイル名.txt", "こんにちは".as_bytes());
    f("unicode/emoji-🎉-ünïcødé", b"party");
    f(&format!("unicode/{}", "n".repeat(255)), b"long name");
    f(
        &format!("unicode/{}", "é".repeat(127)),
        b"254 bytes of two-byte chars",
    );
    // Sparse: 64 MiB with a little data at 1 MiB and at the end.
    let sparse = root.join("sparse-64mib.img");
    {
        let mut s = fs::File::create(&sparse).expect("sparse");
        s.set_len(64 * 1024 * 1024).expect("sparse len");
        s.seek(SeekFrom::Start(1024 * 1024)).expect("seek");
        s.write_all(b"data in a hole").expect("sparse data");
        s.seek(SeekFrom::Start(64 * 1024 * 1024 - 5)).expect("seek");
        s.write_all(b"tail!").expect("sparse tail");
    }
    // Hard links.
    let h = f("hardlink-a", b"same inode");
    fs::hard_link(&h, root.join("hardlink-b")).expect("hard link");
    d("links");
    fs::hard_link(&h, root.join("links/hardlink-c")).expect("hard link");
    std::os::unix::fs::symlink("../small.txt", root.join("links/to-small")).expect("symlink");
    std::os::unix::fs::symlink("/nonexistent/target", root.join("links/dangling"))
        .expect("symlink");
    nix::unistd::mkfifo(&root.join("fifo"), Mode::from_bits_truncate(0o640)).expect("fifo");
    // Odd modes.
    d("odd-modes");
    let odd = f("odd-modes/setuid-exec", b"#!/bin/sh\n");
    fs::set_permissions(&odd, fs::Permissions::from_mode(0o4751)).expect("mode");
    let ro = f("odd-modes/read-only", b"ro");
    fs::set_permissions(&ro, fs::Permissions::from_mode(0o400)).expect("mode");
    let sticky = d("odd-modes/sticky-dir");
    fs::set_permissions(&sticky, fs::Permissions::from_mode(0o1777)).expect("mode");
    let nox = f("odd-modes/no-perms", b"none");
    fs::set_permissions(&nox, fs::Permissions::from_mode(0o000)).expect("mode");
    // xattrs, best effort (tmpfs without user xattrs says no; that is fine).
    let _ = xattr::set(
        root.join("small.txt"),
        "user.cairn.test",
        b"value\0with nul",
    );
    let _ = xattr::set(root.join("empty-dir"), "user.cairn.dir", b"d");
    if is_root() {
        let _ = mknod(
            &root.join("dev-null-copy"),
            SFlag::S_IFCHR,
            Mode::from_bits_truncate(0o666),
            nix::sys::stat::makedev(1, 3),
        );
        let _ = mknod(
            &root.join("dev-loop-copy"),
            SFlag::S_IFBLK,
            Mode::from_bits_truncate(0o660),
            nix::sys::stat::makedev(7, 200),
        );
        let owned = f("owned-by-other", b"owned");
        let _ = nix::unistd::chown(
            &owned,
            Some(nix::unistd::Uid::from_raw(4242)),
            Some(nix::unistd::Gid::from_raw(4343)),
        );
    }
    // Deterministic times on everything (children before parents).
    let mut all = Vec::new();
    collect(root, &mut all);
    all.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for (i, p) in all.iter().enumerate() {
        set_times(p, 1_600_000_000 + i as i64, 123_456_789);
    }
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).expect("read fixture dir").flatten() {
        let p = e.path();
        if e.file_type().expect("type").is_dir() {
            collect(&p, out);
        }
        out.push(p);
    }
}

/// What is compared of one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryState {
    /// File type and permission bits.
    pub mode: u32,
    /// Owner.
    pub uid_gid: (u32, u32),
    /// mtime in ns (not for symlinks' own times on filesystems that lack them).
    pub mtime_ns: i64,
    /// Content hash (files), link target (symlinks), rdev (devices).
    pub content: String,
    /// Sorted xattrs.
    pub xattrs: Vec<(String, Vec<u8>)>,
    /// Which other relative path shares the inode (hard links), lowest name first.
    pub hardlink_group: Option<String>,
    /// Allocated blocks ≪ size (sparse).
    pub sparse: bool,
}

/// The state of every entry below `root`, by relative path; directory times included.
pub fn snapshot_state(root: &Path) -> BTreeMap<String, EntryState> {
    let mut all = Vec::new();
    collect(root, &mut all);
    let mut by_inode: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    let rel = |p: &Path| {
        p.strip_prefix(root)
            .expect("below root")
            .to_string_lossy()
            .into_owned()
    };
    for p in &all {
        let m = fs::symlink_metadata(p).expect("stat");
        if m.is_file() && m.nlink() > 1 {
            by_inode.entry(m.ino()).or_default().push(rel(p));
        }
    }
    all.iter()
        .map(|p| {
            let m = fs::symlink_metadata(p).expect("stat");
            let ft = m.file_type();
            let content = if ft.is_file() {
                blake3::hash(&fs::read(p).unwrap_or_else(|_| {
                    // Mode 000 files: read as root, or compare size only.
                    Vec::new()
                }))
                .to_hex()
                .to_string()
                    + &format!(":{}", m.len())
            } else if ft.is_symlink() {
                fs::read_link(p)
                    .expect("readlink")
                    .to_string_lossy()
                    .into_owned()
            } else if ft.is_dir() {
                String::new()
            } else {
                format!("rdev:{}", m.rdev())
            };
            let mut xattrs: Vec<(String, Vec<u8>)> = xattr::list(p)
                .map(|l| {
                    l.filter_map(|n| {
                        xattr::get(p, &n)
                            .ok()
                            .flatten()
                            .map(|v| (n.to_string_lossy().into_owned(), v))
                    })
                    .collect()
                })
                .unwrap_or_default();
            xattrs.sort();
            let hardlink_group = by_inode
                .get(&m.ino())
                .filter(|_| m.is_file() && m.nlink() > 1)
                .map(|g| {
                    let mut g = g.clone();
                    g.sort();
                    g[0].clone()
                });
            let state = EntryState {
                mode: m.mode(),
                uid_gid: (m.uid(), m.gid()),
                mtime_ns: if ft.is_symlink() {
                    0
                } else {
                    m.mtime() * 1_000_000_000 + m.mtime_nsec()
                },
                content,
                xattrs,
                hardlink_group,
                sparse: ft.is_file() && m.len() > 1024 * 1024 && m.blocks() * 512 < m.len() / 2,
            };
            (rel(p), state)
        })
        .collect()
}
