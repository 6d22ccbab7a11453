//! check, forget, tag, unlock and list.

use cairn_tests::TestEnv;

fn backed_up(env: &TestEnv, n: usize) -> Vec<String> {
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    (0..n)
        .map(|i| {
            std::fs::write(
                src.join(format!("f{i}.bin")),
                cairn_testing::fixture::random_bytes(200_000, i as u64),
            )
            .unwrap();
            let time = format!("2026-01-{:02}T10:00:00Z", i + 1);
            env.run(&["backup", "--json", "--time", &time, src.to_str().unwrap()])
                .last_json()["snapshot_id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

#[test]
fn check_healthy_and_read_data_subsets() {
    let env = TestEnv::with_repo();
    backed_up(&env, 3);
    let r = env.run(&["check"]);
    assert!(r.ok().contains("no errors were found"), "{}", r.stdout);
    let all = env.run(&["check", "--read-data", "--json"]).json();
    assert_eq!(all["errors"], 0);
    let packs = all["packs"].as_u64().unwrap();
    assert_eq!(all["packs_read"].as_u64().unwrap(), packs);
    assert!(all["blobs_verified"].as_u64().unwrap() >= 6);
    // n/t subsets together read every pack exactly once.
    let mut sum = 0;
    for n in 1..=3 {
        sum += env
            .run(&["check", "--json", "--read-data-subset", &format!("{n}/3")])
            .json()["packs_read"]
            .as_u64()
            .unwrap();
    }
    assert_eq!(sum, packs);
    let pct = env
        .run(&["check", "--json", "--read-data-subset", "100%"])
        .json();
    assert_eq!(pct["packs_read"].as_u64().unwrap(), packs);
    let size = env
        .run(&["check", "--json", "--read-data-subset", "1K"])
        .json();
    assert_eq!(size["packs_read"], 1);
    for bad in ["0/3", "4/3", "0%", "lots"] {
        let r = env.run(&["check", "--read-data-subset", bad]);
        assert_eq!(r.code, 1, "{bad}");
    }
}

#[test]
fn check_finds_damage_and_names_it() {
    let env = TestEnv::with_repo();
    backed_up(&env, 2);
    let packs = env.repo_files("data");
    let biggest = packs
        .iter()
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap()
        .clone();
    let name = biggest.file_name().unwrap().to_str().unwrap().to_owned();
    let mut data = std::fs::read(&biggest).unwrap();
    data[100] ^= 1;
    std::fs::write(&biggest, &data).unwrap();
    // The structure is intact; reading the data finds the damage.
    env.run(&["check"]).ok();
    let r = env.run(&["check", "--read-data"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stdout.contains(&format!("error: pack {name}")),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("error: blob "), "{}", r.stdout);
    // A missing pack is found without reading data.
    std::fs::remove_file(&biggest).unwrap();
    let r = env.run(&["check"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stdout
            .contains(&format!("error: pack {name} is in the index but missing")),
        "{}",
        r.stdout
    );
}

#[test]
fn check_reports_orphans_without_failing_and_missing_index_as_errors() {
    let env = TestEnv::with_repo();
    backed_up(&env, 1);
    let index = env.repo_files("index");
    for i in &index {
        std::fs::remove_file(i).unwrap();
    }
    let r = env.run(&["check", "--json"]);
    assert_eq!(r.code, 1);
    let report: serde_json::Value = serde_json::from_str(r.stdout.trim()).unwrap();
    let problems = report["problems"].as_array().unwrap();
    assert!(
        problems.iter().any(
            |p| p["severity"] == "orphan" && p["object"].as_str().unwrap().starts_with("pack ")
        )
    );
    assert!(
        problems.iter().any(|p| p["severity"] == "error"
            && p["message"].as_str().unwrap().contains("is in no pack"))
    );
    // A backup re-indexes the orphaned packs; then all is well again.
    let src = env.path("src");
    env.run(&["backup", "--quiet", src.to_str().unwrap()]).ok();
    let r = env.run(&["check", "--json"]);
    let report: serde_json::Value = serde_json::from_str(r.stdout.trim()).unwrap();
    assert_eq!(report["errors"], 0, "{}", r.stdout);
    assert!(report["problems"].as_array().unwrap().is_empty());
}

#[test]
fn forget_by_policy_and_by_id() {
    let env = TestEnv::with_repo();
    let ids = backed_up(&env, 5);
    let r = env.run(&["forget"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("no keep rule"), "{}", r.stderr);
    let r = env.run(&["forget", "--keep-last", "2", &ids[0]]);
    assert_eq!(r.code, 1);
    let dry = env.run(&["forget", "--keep-last", "2", "--dry-run"]);
    assert!(
        dry.ok().contains("keep 2 snapshots") && dry.ok().contains("remove 3 snapshots"),
        "{}",
        dry.stdout
    );
    assert_eq!(env.repo_files("snapshots").len(), 5);
    let json = env
        .run(&[
            "forget",
            "--keep-last",
            "2",
            "--keep-tag",
            "never-used",
            "--json",
        ])
        .json();
    // restic's shape: the snapshots kept and removed, and why each is kept.
    assert_eq!(json[0]["keep"].as_array().unwrap().len(), 2);
    assert_eq!(
        json[0]["reasons"][0]["snapshot"]["id"],
        json[0]["keep"][0]["id"]
    );
    assert_eq!(
        json[0]["reasons"][0]["matches"],
        serde_json::json!(["last snapshot"])
    );
    assert_eq!(json[0]["remove"].as_array().unwrap().len(), 3);
    let left: Vec<String> = env.snapshot_ids();
    assert_eq!(left, ids[3..].to_vec());
    env.run(&["forget", &ids[3][..8]]).ok();
    assert_eq!(env.repo_files("snapshots").len(), 1);
    env.run(&["check"]).ok();
}

#[test]
fn tag_rewrites_snapshots() {
    let env = TestEnv::with_repo();
    let ids = backed_up(&env, 2);
    let changed = env
        .run(&["tag", "--add", "keep,prod", &ids[0]])
        .ok()
        .to_owned();
    assert!(changed.contains("changed 1 snapshots"), "{changed}");
    let snaps = env.run(&["snapshots", "--json", "--tag", "prod"]).json();
    assert_eq!(snaps.as_array().unwrap().len(), 1);
    let new_id = snaps[0]["id"].as_str().unwrap().to_owned();
    assert_ne!(new_id, ids[0]);
    assert_eq!(snaps[0]["original"], ids[0].as_str());
    assert_eq!(snaps[0]["tags"], serde_json::json!(["keep", "prod"]));
    env.run(&["tag", "--remove", "prod", &new_id]).ok();
    let s = env.run(&["snapshots", "--json", "--tag", "keep"]).json();
    assert_eq!(s[0]["tags"], serde_json::json!(["keep"]));
    assert_eq!(
        s[0]["original"],
        ids[0].as_str(),
        "the first id stays the original"
    );
    env.run(&["tag", "--set", "a,b"]).ok();
    let all = env
        .run(&["snapshots", "--json", "--tag", "a", "--tag", "b"])
        .json();
    assert_eq!(all.as_array().unwrap().len(), 2);
    assert_eq!(env.run(&["tag", &ids[1]]).code, 1, "no change requested");
    assert_eq!(env.repo_files("snapshots").len(), 2);
}

#[test]
fn unlock_and_list() {
    let env = TestEnv::with_repo();
    backed_up(&env, 1);
    let repo = env.open_repo();
    let me = cairn_repo::Actor {
        hostname: nix::unistd::gethostname().unwrap().into_string().unwrap(),
        username: "x".into(),
    };
    // A lock of a process of this host that is gone (pid beyond pid_max) is stale.
    let stale = cairn_repo::lock::lock(&repo, false, &me, 0x7fff_fff0).unwrap();
    std::mem::forget(stale);
    // A live lock of another host.
    let live = cairn_repo::lock::lock(
        &repo,
        false,
        &cairn_repo::Actor {
            hostname: "other".into(),
            username: "y".into(),
        },
        1,
    )
    .unwrap();
    let locks = env.run(&["list", "locks", "--json"]).json();
    assert_eq!(locks.as_array().unwrap().len(), 2);
    assert_eq!(
        locks
            .as_array()
            .unwrap()
            .iter()
            .filter(|l| l["stale"] == true)
            .count(),
        1
    );
    env.run(&["unlock"]).ok();
    assert_eq!(env.repo_files("locks").len(), 1, "only the stale lock goes");
    let r = env.run(&["unlock", "--remove-all"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("--yes-remove-live-locks"));
    env.run(&["unlock", "--remove-all", "--yes-remove-live-locks"])
        .ok();
    assert!(env.repo_files("locks").is_empty());
    std::mem::forget(live);
    assert_eq!(env.run(&["list", "snapshots"]).ok().lines().count(), 1);
    assert!(
        !env.run(&["list", "packs", "--json"])
            .json()
            .as_array()
            .unwrap()
            .is_empty()
    );
}
