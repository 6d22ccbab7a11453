//! Bad input gets a clear error and the right exit code, and loses nothing.

use std::os::unix::fs::PermissionsExt;

use cairn_tests::TestEnv;

fn small_source(env: &TestEnv) -> std::path::PathBuf {
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(
        src.join("file.bin"),
        cairn_testing::fixture::random_bytes(300_000, 5),
    )
    .unwrap();
    src
}

#[test]
fn wrong_password_exits_12_in_one_line() {
    let mut env = TestEnv::with_repo();
    env.password = "wrong".into();
    let r = env.run(&["snapshots"]);
    assert_eq!(r.code, 12);
    assert_eq!(r.stderr.trim().lines().count(), 1, "{}", r.stderr);
    assert!(r.stderr.contains("wrong password"), "{}", r.stderr);
}

#[test]
fn missing_repository_exits_10() {
    let env = TestEnv::new();
    let r = env.run(&["snapshots"]);
    assert_eq!(r.code, 10);
    assert!(r.stderr.contains("cairn init"), "{}", r.stderr);
}

#[test]
fn init_refuses_a_non_empty_place() {
    let env = TestEnv::new();
    std::fs::create_dir_all(&env.repo).unwrap();
    std::fs::write(env.repo.join("precious"), "data").unwrap();
    let r = env.run(&["init"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("not empty"), "{}", r.stderr);
    assert_eq!(
        std::fs::read_to_string(env.repo.join("precious")).unwrap(),
        "data"
    );
    // And a second init on a repository is refused too.
    let env = TestEnv::with_repo();
    assert_eq!(env.run(&["init"]).code, 1);
}

#[test]
fn no_password_source_says_how_to_give_one() {
    let env = TestEnv::with_repo();
    let r: cairn_tests::Run = env
        .cmd(&["snapshots"])
        .env_remove("CAIRN_PASSWORD")
        .output()
        .unwrap()
        .into();
    assert_eq!(r.code, 1);
    for hint in [
        "CAIRN_PASSWORD_FILE",
        "CAIRN_PASSWORD_COMMAND",
        "--password-file",
        "--insecure-no-password",
    ] {
        assert!(r.stderr.contains(hint), "missing {hint}: {}", r.stderr);
    }
}

#[test]
fn password_file_and_command_work() {
    let env = TestEnv::with_repo();
    let pw = env.path("pw");
    std::fs::write(&pw, format!("{}\n", env.password)).unwrap();
    let r: cairn_tests::Run = env
        .cmd(&["snapshots", "--password-file", pw.to_str().unwrap()])
        .env_remove("CAIRN_PASSWORD")
        .output()
        .unwrap()
        .into();
    r.ok();
    let r: cairn_tests::Run = env
        .cmd(&["snapshots"])
        .env_remove("CAIRN_PASSWORD")
        .env("CAIRN_PASSWORD_COMMAND", format!("cat {}", pw.display()))
        .output()
        .unwrap()
        .into();
    r.ok();
}

#[test]
fn unknown_and_ambiguous_snapshot_ids() {
    let env = TestEnv::with_repo();
    let src = small_source(&env);
    // Enough snapshots that two share a first hex digit.
    for _ in 0..17 {
        env.run(&["backup", "--quiet", "--force", src.to_str().unwrap()])
            .ok();
    }
    let r = env.run(&["ls", "zzzz"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains("no snapshot has an id starting with `zzzz`"),
        "{}",
        r.stderr
    );
    let ids: Vec<String> = env.snapshot_ids();
    let digit = (0..16)
        .map(|d| format!("{d:x}"))
        .find(|d| ids.iter().filter(|i| i.starts_with(d.as_str())).count() > 1)
        .unwrap();
    let r = env.run(&["ls", &digit]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("more than one snapshot"), "{}", r.stderr);
}

#[test]
fn locked_repository_exits_11() {
    let env = TestEnv::with_repo();
    let src = small_source(&env);
    // An exclusive lock of a live process on another host.
    let repo = env.open_repo();
    let holder = cairn_repo::Actor {
        hostname: "elsewhere".into(),
        username: "prune".into(),
    };
    let guard = cairn_repo::lock::lock(&repo, true, &holder, 1).unwrap();
    let r = env.run(&["backup", src.to_str().unwrap()]);
    assert_eq!(r.code, 11, "{}", r.stderr);
    assert!(
        r.stderr.contains("exclusive") && r.stderr.contains("elsewhere"),
        "{}",
        r.stderr
    );
    // With --retry-lock the backup waits for the lock to go away.
    let waiting = env
        .cmd(&[
            "backup",
            "--quiet",
            "--retry-lock",
            "30s",
            src.to_str().unwrap(),
        ])
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    drop(guard);
    let out = waiting.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn flip_byte(path: &std::path::Path, at: usize) {
    let mut d = std::fs::read(path).unwrap();
    let at = at.min(d.len() - 1);
    d[at] ^= 0x40;
    std::fs::write(path, d).unwrap();
}

#[test]
fn corrupt_objects_are_named() {
    let env = TestEnv::with_repo();
    let src = small_source(&env);
    env.backup(&[&src]);
    let out = env.path("out");
    let t = out.to_str().unwrap();
    // Pack: the restore fails and names the pack.
    let data_packs = env.repo_files("data");
    let biggest = data_packs
        .iter()
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap();
    let name = biggest.file_name().unwrap().to_str().unwrap().to_owned();
    let backup_copy = std::fs::read(biggest).unwrap();
    std::fs::set_permissions(biggest, std::fs::Permissions::from_mode(0o644)).unwrap();
    flip_byte(biggest, 1000);
    let r = env.run(&["restore", "latest", "--target", t]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains(&name), "{}", r.stderr);
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    std::fs::write(biggest, backup_copy).unwrap();
    // Index.
    let index = env.repo_files("index").remove(0);
    let name = index.file_name().unwrap().to_str().unwrap().to_owned();
    let keep = std::fs::read(&index).unwrap();
    flip_byte(&index, 50);
    let r = env.run(&["restore", "latest", "--target", t]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains(&format!("index {name}")), "{}", r.stderr);
    std::fs::write(&index, keep).unwrap();
    // Snapshot.
    let snap = env.repo_files("snapshots").remove(0);
    let name = snap.file_name().unwrap().to_str().unwrap().to_owned();
    let keep = std::fs::read(&snap).unwrap();
    flip_byte(&snap, 60);
    let r = env.run(&["snapshots"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains(&format!("snapshot {name}")),
        "{}",
        r.stderr
    );
    std::fs::write(&snap, keep).unwrap();
    // Key file.
    let key = env.repo_files("keys").remove(0);
    let name = key.file_name().unwrap().to_str().unwrap().to_owned();
    flip_byte(&key, 40);
    let r = env.run(&["snapshots"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains(&format!("key {name}")), "{}", r.stderr);
}

#[test]
fn failing_stdin_command_saves_no_snapshot() {
    let env = TestEnv::with_repo();
    let r = env.run(&[
        "backup",
        "--stdin-from-command",
        "--",
        "sh",
        "-c",
        "echo partial dump; exit 3",
    ]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("no snapshot was saved"), "{}", r.stderr);
    assert!(env.repo_files("snapshots").is_empty());
    let r = env.run(&[
        "backup",
        "--json",
        "--stdin-filename",
        "dump.sql",
        "--stdin-from-command",
        "--",
        "sh",
        "-c",
        "echo full dump",
    ]);
    let id = r.last_json()["snapshot_id"].as_str().unwrap().to_owned();
    let dumped = env.run(&["dump", &id, "/dump.sql"]);
    assert_eq!(dumped.ok(), "full dump\n");
}

#[test]
fn unreadable_file_warns_and_exits_3() {
    let env = TestEnv::with_repo();
    let src = small_source(&env);
    let secret = src.join("secret");
    std::fs::write(&secret, "no access").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o000)).unwrap();
    let mut cmd = env.cmd(&["backup", "--json", src.to_str().unwrap()]);
    if cairn_testing::fixture::is_root() {
        // Root reads everything: run as nobody, with the repository open to it.
        use std::os::unix::process::CommandExt;
        std::process::Command::new("chmod")
            .args(["-R", "a+rwX"])
            .arg(env.dir.path())
            .status()
            .unwrap();
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o000)).unwrap();
        cmd.uid(65534).gid(65534);
    }
    let r: cairn_tests::Run = cmd.output().unwrap().into();
    assert_eq!(r.code, 3, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("secret"), "{}", r.stderr);
    let summary: serde_json::Value =
        serde_json::from_str(r.stdout.lines().last().unwrap()).unwrap();
    assert_eq!(summary["errors"], 1);
    assert!(summary["snapshot_id"].is_string(), "the rest is saved");
}
