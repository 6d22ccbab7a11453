//! Back up a tree holding every entry kind and restore it equal in content and metadata.

use std::collections::BTreeMap;
use std::path::Path;

use cairn_testing::fixture::{EntryState, build_everything, is_root, snapshot_state};
use cairn_tests::TestEnv;

fn restored_state(restored_root: &Path) -> BTreeMap<String, EntryState> {
    snapshot_state(restored_root)
}

fn everything_round_trips(env: TestEnv) {
    let src = env.path("src");
    build_everything(&src);
    let before = snapshot_state(&src);
    let summary = env.backup(&[&src]);
    assert_eq!(summary["errors"], 0, "{summary}");
    let out = env.path("out");
    let r = env.run(&[
        "restore",
        "latest",
        "--target",
        out.to_str().unwrap(),
        "--verify",
        "--json",
    ]);
    let rs = r.last_json();
    assert_eq!(rs["warnings"], 0, "{}\n{}", r.stdout, r.stderr);
    assert!(rs["files_verified"].as_u64().unwrap() > 10);
    // The snapshot keeps absolute paths: the tree is below out/<src>.
    let restored = out.join(src.strip_prefix("/").unwrap());
    let after = restored_state(&restored);
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>()
    );
    for (path, b) in &before {
        let a = &after[path];
        assert_eq!(a.mode, b.mode, "mode of {path}");
        assert_eq!(a.content, b.content, "content of {path}");
        assert_eq!(a.mtime_ns, b.mtime_ns, "mtime of {path}");
        assert_eq!(a.xattrs, b.xattrs, "xattrs of {path}");
        assert_eq!(a.hardlink_group, b.hardlink_group, "hard links of {path}");
        assert_eq!(a.sparse, b.sparse, "sparseness of {path}");
        if is_root() {
            assert_eq!(a.uid_gid, b.uid_gid, "owner of {path}");
        }
    }
    assert!(
        before["sparse-64mib.img"].sparse,
        "the fixture's sparse file is sparse"
    );
    if is_root() {
        assert!(
            before.contains_key("dev-null-copy"),
            "devices are part of the fixture as root"
        );
    }
}

fn restore_subpath_include_exclude(env: TestEnv) {
    let src = env.path("src");
    std::fs::create_dir_all(src.join("a/b")).unwrap();
    std::fs::write(src.join("a/b/keep.txt"), "k").unwrap();
    std::fs::write(src.join("a/b/skip.log"), "s").unwrap();
    std::fs::write(src.join("a/top.txt"), "t").unwrap();
    std::fs::write(src.join("other.txt"), "o").unwrap();
    env.backup(&[&src]);
    let spec = format!("latest:{}/a", src.display());
    let out = env.path("sub");
    env.run(&[
        "restore",
        &spec,
        "--target",
        out.to_str().unwrap(),
        "--exclude",
        "*.log",
    ])
    .ok();
    assert!(out.join("b/keep.txt").exists());
    assert!(out.join("top.txt").exists());
    assert!(!out.join("b/skip.log").exists());
    assert!(!out.join("other.txt").exists());
    let out2 = env.path("inc");
    env.run(&[
        "restore",
        "latest",
        "--target",
        out2.to_str().unwrap(),
        "--include",
        "keep.txt",
    ])
    .ok();
    let base = out2.join(src.strip_prefix("/").unwrap());
    assert!(base.join("a/b/keep.txt").exists());
    assert!(!base.join("a/top.txt").exists());
    assert!(!base.join("other.txt").exists());
    // A single file as the subpath.
    let out3 = env.path("one");
    let spec = format!("latest:{}/other.txt", src.display());
    env.run(&["restore", &spec, "--target", out3.to_str().unwrap()])
        .ok();
    assert_eq!(
        std::fs::read_to_string(out3.join("other.txt")).unwrap(),
        "o"
    );
}

fn restore_overwrite_and_delete(env: TestEnv) {
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("f.txt"), "snapshot version").unwrap();
    env.backup(&[&src]);
    let spec = format!("latest:{}", src.display());
    let out = env.path("out");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("f.txt"), "local edit").unwrap();
    std::fs::write(out.join("extra.txt"), "not in the snapshot").unwrap();
    let t = out.to_str().unwrap();
    env.run(&["restore", &spec, "--target", t, "--overwrite", "never"])
        .ok();
    assert_eq!(
        std::fs::read_to_string(out.join("f.txt")).unwrap(),
        "local edit"
    );
    env.run(&["restore", &spec, "--target", t, "--overwrite", "if-changed"])
        .ok();
    assert_eq!(
        std::fs::read_to_string(out.join("f.txt")).unwrap(),
        "snapshot version"
    );
    let r = env
        .run(&[
            "restore",
            &spec,
            "--target",
            t,
            "--overwrite",
            "if-changed",
            "--json",
        ])
        .last_json();
    assert_eq!(r["files_skipped"], 1, "unchanged files are left alone: {r}");
    assert!(out.join("extra.txt").exists());
    let r = env
        .run(&["restore", &spec, "--target", t, "--delete", "--json"])
        .last_json();
    assert_eq!(r["deleted"], 1);
    assert!(!out.join("extra.txt").exists());
    assert!(out.join("f.txt").exists());
}

fn a_failed_restore_leaves_existing_files_as_they_were(env: TestEnv) {
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(
        src.join("big.bin"),
        cairn_testing::fixture::random_bytes(3 << 20, 2),
    )
    .unwrap();
    std::fs::write(src.join("small.txt"), "snapshot").unwrap();
    env.backup(&[&src]);
    let out = env.path("out");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("big.bin"), "mine, not in any snapshot").unwrap();
    std::fs::write(out.join("small.txt"), "also mine").unwrap();
    // Lose the data: every data pack goes (the tree packs stay readable).
    for p in env.repo_files("data") {
        if std::fs::metadata(&p).unwrap().len() > 1 << 20 {
            std::fs::remove_file(p).unwrap();
        }
    }
    let spec = format!("latest:{}", src.display());
    let r = env.run(&["restore", &spec, "--target", out.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(
        std::fs::read_to_string(out.join("big.bin")).unwrap(),
        "mine, not in any snapshot"
    );
    let names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().all(|n| !n.contains("cairn-restore")),
        "no temporary files stay: {names:?}"
    );
}

/// Every test above runs on the native local backend and on the `dir` plugin (the same
/// engine through the plugin boundary).
macro_rules! on_each_backend {
    ($($name:ident),* $(,)?) => {
        mod native {
            $(#[test]
            fn $name() {
                super::$name(cairn_tests::TestEnv::with_repo())
            })*
        }
        mod dir_plugin {
            $(#[test]
            fn $name() {
                super::$name(cairn_tests::TestEnv::with_dir_plugin())
            })*
        }
    };
}

on_each_backend!(
    everything_round_trips,
    restore_subpath_include_exclude,
    restore_overwrite_and_delete,
    a_failed_restore_leaves_existing_files_as_they_were
);
