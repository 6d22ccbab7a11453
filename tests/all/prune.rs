//! prune: frees what forgotten snapshots used, keeps the rest intact, stays consistent when
//! killed, and excludes concurrent backups.

use std::path::Path;
use std::time::Duration;

use cairn_testing::fixture::random_bytes;
use cairn_tests::TestEnv;

fn dir_bytes(p: &Path) -> u64 {
    let mut total = 0;
    for e in std::fs::read_dir(p).unwrap().flatten() {
        let m = e.metadata().unwrap();
        total += if m.is_dir() {
            dir_bytes(&e.path())
        } else {
            m.len()
        };
    }
    total
}

/// A repository with small packs and `n` snapshots. Each adds `files` random files of 100 KB
/// that stay in every later snapshot and `files` that the next snapshot drops, so that packs
/// hold both data that forgetting old snapshots frees and data that stays used.
fn history(n: usize, files: usize) -> TestEnv {
    let env = TestEnv::new();
    env.init_with(&["--pack-size", "1M"]).ok();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    for i in 0..n {
        for e in std::fs::read_dir(&src).unwrap().flatten() {
            if e.file_name().to_string_lossy().starts_with("drop-") {
                std::fs::remove_file(e.path()).unwrap();
            }
        }
        for j in 0..files {
            for (kind, seed) in [("keep", 0u64), ("drop", 1)] {
                let data = random_bytes(100_000, (i * 1000 + j * 2) as u64 + seed);
                std::fs::write(src.join(format!("{kind}-{i}-{j}.bin")), data).unwrap();
            }
        }
        let time = format!("2026-02-{:02}T10:00:00Z", i + 1);
        env.run(&["backup", "--quiet", "--time", &time, src.to_str().unwrap()])
            .ok();
    }
    env
}

#[test]
fn prune_after_forgetting_half_frees_space_and_keeps_data() {
    let env = history(6, 4);
    let before = dir_bytes(&env.repo.join("data"));
    let listing = |env: &TestEnv| {
        let mut v = env.repo_files("data");
        v.extend(env.repo_files("index"));
        v
    };
    let untouched = listing(&env);
    let dry = env.run(&["prune", "--dry-run", "--max-unused", "0%"]);
    assert_eq!(listing(&env), untouched, "a dry run changes nothing");
    assert!(
        dry.ok().contains("would delete 0 unused packs"),
        "{}",
        dry.stdout
    );

    env.run(&["forget", "--keep-last", "3"]).ok();
    let dry = env.run(&["prune", "--dry-run", "--max-unused", "0%"]);
    assert!(
        dry.ok().contains("would repack pack ") || dry.ok().contains("would delete pack "),
        "{}",
        dry.stdout
    );
    assert_eq!(listing(&env), untouched);

    let report = env.run(&["prune", "--json", "--max-unused", "0%"]).json();
    assert!(
        !report["repack"].as_array().unwrap().is_empty(),
        "small packs span snapshots: {report}"
    );
    assert!(!report["delete"].as_array().unwrap().is_empty(), "{report}");
    let after = dir_bytes(&env.repo.join("data"));
    // Three snapshots' 400 KB of dropped files were forgotten.
    assert!(
        before - after > 1_000_000,
        "freed only {} bytes",
        before - after
    );
    let check = env.run(&["check", "--read-data", "--json"]).json();
    assert_eq!(check["errors"], 0, "{check}");
    assert!(
        check["problems"].as_array().unwrap().is_empty(),
        "no orphans either: {check}"
    );
    // Nothing left to do.
    let again = env.run(&["prune", "--json", "--max-unused", "0%"]).json();
    assert!(
        again["delete"].as_array().unwrap().is_empty()
            && again["repack"].as_array().unwrap().is_empty(),
        "{again}"
    );
    // The kept snapshots restore.
    for id in env.snapshot_ids() {
        let out = env.path(&format!("out-{id}"));
        env.run(&[
            "restore",
            &id,
            "--target",
            out.to_str().unwrap(),
            "--verify",
        ])
        .ok();
    }
}

#[test]
fn forget_with_prune() {
    let env = history(4, 2);
    let r = env.run(&["forget", "--keep-last", "1", "--prune"]);
    assert!(
        r.ok().contains("removed 3 snapshots") && r.ok().contains("freed"),
        "{}",
        r.stdout
    );
    env.run(&["check", "--read-data"]).ok();
}

#[test]
fn prune_removes_what_killed_writers_left_behind() {
    let env = history(2, 2);
    let leftovers = [
        env.root.join("data/.tmp-3fa2c0de-00112233"),
        env.root.join("index/.tmp-9b1e0000-44556677"),
        env.root.join(".tmp-config-8899aabb"),
    ];
    for l in &leftovers {
        std::fs::write(l, "half a pack").unwrap();
    }
    let dry = env.run(&["prune", "--dry-run"]);
    dry.ok();
    assert!(
        leftovers.iter().all(|l| l.exists()),
        "a dry run removes nothing"
    );
    let r = env.run(&["prune", "--json"]);
    assert_eq!(r.json()["leftovers_removed"], 3, "{}", r.stdout);
    assert!(leftovers.iter().all(|l| !l.exists()));
    env.run(&["check", "--read-data"]).ok();
}

#[test]
fn a_corrupt_index_stops_prune_before_anything_is_deleted() {
    let env = history(3, 2);
    env.run(&["forget", "--keep-last", "1"]).ok();
    let index = env.repo_files("index");
    let mut data = std::fs::read(&index[0]).unwrap();
    data[40] ^= 1;
    std::fs::write(&index[0], data).unwrap();
    let packs = env.repo_files("data");
    let r = env.run(&["prune"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("prune stopped before changing anything"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains(index[0].file_name().unwrap().to_str().unwrap()),
        "{}",
        r.stderr
    );
    assert_eq!(env.repo_files("data"), packs);
    assert_eq!(env.repo_files("index").len(), index.len());
}

#[test]
fn prune_and_backup_exclude_each_other() {
    let env = history(2, 2);
    env.run(&["forget", "--keep-last", "1"]).ok();
    let big = env.path("big");
    std::fs::create_dir_all(&big).unwrap();
    for i in 0..16 {
        std::fs::write(big.join(format!("b{i}")), random_bytes(8 << 20, 500 + i)).unwrap();
    }
    let backup = env
        .cmd(&["backup", "--quiet", big.to_str().unwrap()])
        .spawn()
        .unwrap();
    while env.repo_files("locks").is_empty() {
        std::thread::sleep(Duration::from_millis(2));
    }
    let r = env.run(&["prune"]);
    assert_eq!(
        r.code, 11,
        "prune must not run beside a backup: {}",
        r.stderr
    );
    // With --retry-lock it waits for the backup and then runs.
    let r = env.run(&["prune", "--retry-lock", "2m", "--json"]);
    let out = backup.wait_with_output().unwrap();
    assert!(out.status.success());
    let report: serde_json::Value = serde_json::from_str(r.ok().trim()).unwrap();
    assert_eq!(
        report["snapshots"], 2,
        "prune ran after the backup saved its snapshot"
    );
    let check = env.run(&["check", "--read-data", "--json"]).json();
    assert_eq!(check["errors"], 0, "{check}");
    env.restore_verified("out");
}
