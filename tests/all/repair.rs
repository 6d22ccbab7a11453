//! `rewrite` (paths removed from existing snapshots), `repair index` (after index files are
//! deleted, and after a pack is lost) and `repair snapshots` (after a tree is damaged and
//! data is missing): what can be restored is, byte for byte, and the rest is named.

use std::path::{Path, PathBuf};

use cairn_testing::fixture::random_bytes;
use cairn_tests::{TestEnv, write_file};

/// Every file below `dir`, relative, with its bytes, sorted; directories as `dir/`.
fn tree_of(dir: &Path) -> Vec<(String, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let path = e.path();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            if path.is_dir() {
                out.push((format!("{rel}/"), Vec::new()));
                walk(root, &path, out);
            } else {
                out.push((rel, std::fs::read(&path).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// The pack file that holds blob `id` (hex) in the local repository.
fn pack_of(env: &TestEnv, id: &str) -> PathBuf {
    let repo = env.open_repo().to_indexed().unwrap();
    let pack = repo
        .index()
        .get(&id.parse().unwrap())
        .expect("the blob is indexed")
        .pack
        .to_hex();
    env.repo_files("data")
        .into_iter()
        .find(|p| p.file_name().unwrap().to_str() == Some(pack.as_str()))
        .expect("the pack file")
}

#[test]
fn rewrite_removes_paths_from_snapshots_and_forget_drops_the_old_ones() {
    let env = TestEnv::with_repo();
    let src = env.path("src");
    write_file(&src.join("app/config.yaml"), b"port: 80\n");
    write_file(&src.join("app/secret.key"), b"do not keep\n");
    write_file(&src.join("home/.cache/blob"), &random_bytes(100_000, 1));
    write_file(&src.join("home/notes.txt"), b"keep me\n");
    let s = src.to_str().unwrap();
    env.run(&["backup", "--quiet", s]).ok();
    let first = env.snapshot_ids();

    let dry = env.run(&["rewrite", "--exclude", "*.key", "--dry-run"]);
    assert!(dry.ok().contains("would be rewritten"), "{}", dry.stdout);
    assert_eq!(env.snapshot_ids(), first, "a dry run writes nothing");

    let exclude_file = env.path("exclude");
    std::fs::write(&exclude_file, "# caches\n*/.cache\n").unwrap();
    let out = env
        .run(&[
            "rewrite",
            "--exclude",
            "*.key",
            "--exclude-file",
            exclude_file.to_str().unwrap(),
        ])
        .ok()
        .to_owned();
    assert!(out.contains("rewritten as"), "{out}");
    let ids = env.snapshot_ids();
    assert_eq!(ids.len(), 2, "the old snapshot stays without --forget");
    let new = ids.iter().find(|i| !first.contains(i)).unwrap().clone();
    let snap = env.run(&["snapshots", "--json", &new]).json();
    assert_eq!(snap[0]["original"], first[0]);
    let listed = env.run(&["ls", &new]).ok().to_owned();
    assert!(
        listed.contains("notes.txt") && listed.contains("config.yaml"),
        "{listed}"
    );
    assert!(
        !listed.contains("secret.key") && !listed.contains(".cache"),
        "{listed}"
    );
    let out = env
        .run(&["rewrite", &new, "--exclude", "*.key"])
        .ok()
        .to_owned();
    assert!(out.contains("no snapshot needed a change"), "{out}");

    let out = env
        .run(&["rewrite", &first[0], "--exclude", "notes.txt", "--forget"])
        .ok()
        .to_owned();
    assert!(out.contains("the old one removed"), "{out}");
    let ids = env.snapshot_ids();
    assert_eq!(ids.len(), 2);
    assert!(!ids.contains(&first[0]));
    env.run(&["prune"]).ok();
    env.run(&["check", "--read-data"]).ok();
    let out = env.path("out");
    env.run(&["restore", &new, "--target", out.to_str().unwrap()])
        .ok();
    let restored = out.join(s.trim_start_matches('/'));
    assert_eq!(
        std::fs::read(restored.join("home/notes.txt")).unwrap(),
        b"keep me\n"
    );
    assert!(!restored.join("app/secret.key").exists());

    let r = env.run(&["rewrite"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("give --exclude"), "{}", r.stderr);
}

#[test]
fn repair_index_rebuilds_a_deleted_index_and_repair_snapshots_restores_what_is_left() {
    let env = TestEnv::with_repo();
    let src = env.path("src");
    write_file(&src.join("a/one.bin"), &random_bytes(400_000, 2));
    write_file(&src.join("a/two.txt"), b"two\n");
    let s = src.to_str().unwrap();
    env.run(&["backup", "--quiet", s]).ok();
    write_file(&src.join("b/three.bin"), &random_bytes(300_000, 3));
    write_file(&src.join("b/four.txt"), b"four\n");
    env.run(&["backup", "--quiet", s]).ok();
    let before = tree_of(&src);

    // Every index file gone: nothing can be found, until the index is rebuilt.
    for f in env.repo_files("index") {
        std::fs::remove_file(f).unwrap();
    }
    let r = env.run(&[
        "restore",
        "latest",
        "--target",
        env.path("x").to_str().unwrap(),
    ]);
    assert_ne!(r.code, 0, "{}", r.stderr);
    let dry = env.run(&["repair", "index", "--dry-run"]).ok().to_owned();
    assert!(dry.contains("would write"), "{dry}");
    assert!(env.repo_files("index").is_empty());
    let out = env.run(&["repair", "index"]).ok().to_owned();
    assert!(out.contains("wrote 1 index files"), "{out}");
    env.run(&["check", "--read-data"]).ok();
    let out = env.restore_verified("whole");
    assert_eq!(tree_of(&out.join(s.trim_start_matches('/'))), before);
    let out = env.run(&["repair", "snapshots"]).ok().to_owned();
    assert!(out.contains("no snapshot needed a change"), "{out}");

    // The data pack of the second backup lost: its files are named, the rest restores.
    let blob = env.tree_node(&format!("{s}/b"), "three.bin")["content"][0]
        .as_str()
        .unwrap()
        .to_owned();
    std::fs::remove_file(pack_of(&env, &blob)).unwrap();
    let out = env.run(&["repair", "index"]).ok().to_owned();
    assert!(out.contains("read"), "{out}");
    let repaired = env.run(&["repair", "snapshots", "--json"]).json();
    let changes: Vec<String> = repaired["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["path"].as_str().unwrap().to_owned())
        .collect();
    assert!(changes.contains(&format!("{s}/b/three.bin")), "{repaired}");
    assert!(!changes.iter().any(|p| p.contains("/a/")), "{repaired}");
    assert_eq!(
        repaired["snapshots"].as_array().unwrap().len(),
        1,
        "{repaired}"
    );
    // The repaired snapshot keeps the time of the one it repairs: find it by its tag.
    let new = repaired["snapshots"][0]["new"].as_str().unwrap().to_owned();
    let tagged = env
        .run(&["snapshots", "--json", "--tag", "repaired"])
        .json();
    assert_eq!(tagged[0]["id"], new.as_str(), "{tagged}");
    let out = env.path("left");
    env.run(&[
        "restore",
        &new,
        "--target",
        out.to_str().unwrap(),
        "--verify",
    ])
    .ok();
    let restored = out.join(s.trim_start_matches('/'));
    assert_eq!(
        std::fs::read(restored.join("a/one.bin")).unwrap(),
        std::fs::read(src.join("a/one.bin")).unwrap()
    );
    assert_eq!(std::fs::read(restored.join("a/two.txt")).unwrap(), b"two\n");
    assert!(
        std::fs::metadata(restored.join("b/three.bin"))
            .unwrap()
            .len()
            < 300_000,
        "what is missing is not made up"
    );
}

#[test]
fn repair_snapshots_replaces_an_unreadable_tree_with_an_empty_directory() {
    let env = TestEnv::with_repo();
    let src = env.path("src");
    write_file(&src.join("keep/a.bin"), &random_bytes(200_000, 4));
    write_file(&src.join("keep/b.txt"), b"bee\n");
    write_file(&src.join("lost/c.txt"), b"sea\n");
    write_file(&src.join("lost/deeper/d.txt"), b"dee\n");
    let s = src.to_str().unwrap();
    env.run(&["backup", "--quiet", s]).ok();
    let original = env.snapshot_ids();

    // Damage the sealed tree of `lost/` in its pack.
    let lost = env.tree_node(s, "lost")["subtree"]
        .as_str()
        .unwrap()
        .to_owned();
    let repo = env.open_repo().to_indexed().unwrap();
    let at = repo
        .index()
        .get(&lost.parse().unwrap())
        .unwrap()
        .entry
        .offset;
    drop(repo);
    let pack = pack_of(&env, &lost);
    let mut bytes = std::fs::read(&pack).unwrap();
    bytes[at as usize + 20] ^= 0xff;
    std::fs::write(&pack, bytes).unwrap();

    let r = env.run(&[
        "restore",
        "latest",
        "--target",
        env.path("x").to_str().unwrap(),
    ]);
    assert_ne!(r.code, 0, "the damage is seen: {}", r.stderr);
    let dry = env
        .run(&["repair", "snapshots", "--dry-run"])
        .ok()
        .to_owned();
    assert!(dry.contains("would be repaired"), "{dry}");
    assert_eq!(env.snapshot_ids(), original);
    let out = env
        .run(&["repair", "snapshots", "--forget"])
        .ok()
        .to_owned();
    assert!(
        out.contains(&format!("{s}/lost: directory: unreadable"))
            && out.contains("replaced with an empty directory"),
        "{out}"
    );
    let ids = env.snapshot_ids();
    assert_eq!(ids.len(), 1);
    assert_ne!(ids, original, "the damaged snapshot was removed");
    let out = env.restore_verified("out");
    let restored = out.join(s.trim_start_matches('/'));
    assert_eq!(
        tree_of(&restored),
        vec![
            ("keep/".to_owned(), Vec::new()),
            (
                "keep/a.bin".to_owned(),
                std::fs::read(src.join("keep/a.bin")).unwrap()
            ),
            ("keep/b.txt".to_owned(), b"bee\n".to_vec()),
            ("lost/".to_owned(), Vec::new()),
        ]
    );
    env.run(&["check"]).ok();
}
