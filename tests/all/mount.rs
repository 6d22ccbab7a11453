//! `cairn mount` on the real /dev/fuse: files read back byte for byte through every layout
//! directory, a snapshot made while mounted appears, Ctrl-C unmounts, and what the kernel
//! forgets is let go of.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use cairn_testing::fixture::random_bytes;
use cairn_tests::TestEnv;

/// The mounting process; killed and the mount lazily detached if the test stops early.
struct Mounted {
    child: Option<Child>,
    at: PathBuf,
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
            let _ = std::process::Command::new("fusermount")
                .args(["-u", "-z"])
                .arg(&self.at)
                .status();
        }
    }
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn mount_reads_back_every_file_and_shows_new_snapshots() {
    let env = TestEnv::with_repo();
    let src = env.path("src");
    std::fs::create_dir_all(src.join("sub/deeper")).unwrap();
    let big = random_bytes(5 << 20, 7);
    std::fs::write(src.join("big.bin"), &big).unwrap();
    std::fs::write(src.join("sub/note.txt"), b"hello\n").unwrap();
    std::fs::write(src.join("sub/deeper/empty"), b"").unwrap();
    std::os::unix::fs::symlink("../big.bin", src.join("sub/link")).unwrap();
    let s = src.to_str().unwrap();
    env.run(&["backup", "--quiet", "--tag", "daily", "--app", "shop/db", s])
        .ok();
    let first = env.snapshot_ids();
    let host = env.run(&["snapshots", "--json"]).json()[0]["hostname"]
        .as_str()
        .unwrap()
        .to_owned();

    let at = env.path("mnt");
    std::fs::create_dir(&at).unwrap();
    let child = env
        .cmd(&[
            "mount".as_ref(),
            at.as_os_str(),
            "--refresh".as_ref(),
            "1s".as_ref(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut mounted = Mounted {
        child: Some(child),
        at: at.clone(),
    };
    wait_for("the mount", || at.join("snapshots").is_dir());
    assert_eq!(
        names(&at),
        ["apps", "hosts", "ids", "snapshots", "tags", "volumes"]
    );
    let rel = s.trim_start_matches('/');
    for dir in [
        at.join("snapshots/latest"),
        at.join("ids").join(&first[0][..8]),
        at.join("hosts").join(&host).join("latest"),
        at.join("tags/daily/latest"),
        at.join("apps/shop/db/latest"),
    ] {
        let root = dir.join(rel);
        assert_eq!(
            std::fs::read(root.join("big.bin")).unwrap(),
            big,
            "{}",
            dir.display()
        );
        assert_eq!(
            std::fs::read(root.join("sub/note.txt")).unwrap(),
            b"hello\n"
        );
        assert_eq!(std::fs::read(root.join("sub/deeper/empty")).unwrap(), b"");
        assert_eq!(
            std::fs::read_link(root.join("sub/link")).unwrap(),
            Path::new("../big.bin")
        );
        assert_eq!(names(&root.join("sub")), ["deeper", "link", "note.txt"]);
    }
    // Reads at an offset inside the file, across blob boundaries.
    {
        use std::io::{Read, Seek, SeekFrom};
        let mut f =
            std::fs::File::open(at.join("snapshots/latest").join(rel).join("big.bin")).unwrap();
        f.seek(SeekFrom::Start(3_000_001)).unwrap();
        let mut part = vec![0u8; 1_500_000];
        f.read_exact(&mut part).unwrap();
        assert_eq!(part, big[3_000_001..4_500_001]);
    }
    let meta = std::fs::metadata(at.join("snapshots/latest").join(rel).join("big.bin")).unwrap();
    assert_eq!(meta.len(), big.len() as u64);
    assert!(
        std::fs::write(at.join("snapshots/x"), b"no").is_err(),
        "read-only"
    );

    // A backup while mounted: it appears, and `latest` moves to it.
    let old_latest = std::fs::read_link(at.join("snapshots/latest")).unwrap();
    std::fs::write(src.join("sub/note.txt"), b"changed\n").unwrap();
    env.run(&["backup", "--quiet", "--time", "2030-01-01T00:00:00Z", s])
        .ok();
    wait_for("the new snapshot", || {
        names(&at.join("snapshots")).len() == 3
    });
    let new_latest = std::fs::read_link(at.join("snapshots/latest")).unwrap();
    assert_ne!(new_latest, old_latest);
    assert_eq!(
        std::fs::read(at.join("snapshots/latest").join(rel).join("sub/note.txt")).unwrap(),
        b"changed\n"
    );
    assert_eq!(
        std::fs::read(
            at.join("snapshots")
                .join(&old_latest)
                .join(rel)
                .join("sub/note.txt")
        )
        .unwrap(),
        b"hello\n"
    );

    // Ctrl-C unmounts and exits 0.
    let mut child = mounted.child.take().unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "cairn mount did not stop");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "{status}");
    assert!(names(&at).is_empty(), "unmounted");

    let r = env.run(&["mount", src.to_str().unwrap()]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("is not empty"), "{}", r.stderr);
}

/// Every file below `root` with its bytes, by path relative to it.
fn tree(root: &Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
    let mut all = std::collections::BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                stack.push(p);
            } else {
                let data = std::fs::read(&p).unwrap();
                all.insert(p.strip_prefix(root).unwrap().to_path_buf(), data);
            }
        }
    }
    all
}

/// A tree walked through the mount, let go of by the kernel (caches dropped: it forgets the
/// inodes), and walked again: the mount lets the forgotten entries go — fewer inodes held
/// than the tree has — and the second walk reads the same bytes.
#[test]
fn the_mount_lets_go_of_what_the_kernel_forgets_and_reads_it_again() {
    let env = TestEnv::with_repo();
    let src = env.path("src");
    for d in 0..20 {
        for f in 0..15 {
            cairn_tests::write_file(
                &src.join(format!("d{d:02}/sub/f{f:02}.txt")),
                format!("file {d}/{f}\n").repeat(f + 1).as_bytes(),
            );
        }
    }
    let s = src.to_str().unwrap();
    env.run(&["backup", "--quiet", s]).ok();
    let at = env.path("mnt");
    std::fs::create_dir(&at).unwrap();
    let log = env.path("mount.log");
    let child = env
        .cmd(&["mount".as_ref(), at.as_os_str()])
        .env("RUST_LOG", "warn,cairn_mount=trace")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let _mounted = Mounted {
        child: Some(child),
        at: at.clone(),
    };
    wait_for("the mount", || at.join("snapshots").is_dir());
    let root = at.join("snapshots/latest").join(s.trim_start_matches('/'));
    let expected = tree(&src);
    assert_eq!(expected.len(), 300);
    assert_eq!(tree(&root), expected, "the first walk");

    // The kernel forgets what nobody uses when its caches are dropped (root may).
    std::fs::write("/proc/sys/vm/drop_caches", "2").expect("drop caches (the test runs as root)");
    let held = || -> Option<usize> {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let last = text
            .lines()
            .rev()
            .find(|l| l.contains("inodes forgotten"))?;
        last.split("held=")
            .nth(1)?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    wait_for("the mount to forget inodes", || {
        held().is_some_and(|n| n < expected.len())
    });
    assert_eq!(tree(&root), expected, "the walk after the kernel forgot");
}
