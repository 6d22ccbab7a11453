//! Stores that cannot refuse a second write: `rclone serve s3` ignores `If-None-Match`, and
//! WebDAV has no conditional create. `init` finds out and says so; cairn then checks before
//! every write, and backups and restores work.

use cairn_tests::TestEnv;
use cairn_tests::servers::Rclone;

fn round_trip(env: &TestEnv) {
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(
        src.join("a.bin"),
        cairn_testing::fixture::random_bytes(2 << 20, 1),
    )
    .unwrap();
    std::fs::write(src.join("b.txt"), "b").unwrap();
    env.backup(&[&src]);
    let second = env.backup(&[&src]);
    assert_eq!(second["data_blobs"], 0);
    env.restore_verified("out");
    let check = env.run(&["check", "--read-data", "--json"]).json();
    assert_eq!(check["errors"], 0, "{check}");
}

#[test]
fn rclone_s3_is_detected_as_not_enforcing_create_only() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("s3root");
    std::fs::create_dir_all(root.join("bucket")).unwrap();
    let server = Rclone::start("s3", &root);
    let env = TestEnv::at(&format!("s3:http://127.0.0.1:{}/bucket/repo", server.port));
    let init = env.init_with(&["--json"]);
    let v: serde_json::Value = serde_json::from_str(init.ok().trim()).unwrap();
    assert_eq!(
        v["atomic_create"], false,
        "rclone serve s3 overwrites despite If-None-Match"
    );
    assert!(
        init.stderr.contains("does not refuse a second write"),
        "{}",
        init.stderr
    );
    round_trip(&env);
}

#[test]
fn webdav_repository_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let server = Rclone::start("webdav", &dir.path().join("davroot"));
    let env = TestEnv::at(&format!(
        "webdav+http://127.0.0.1:{}/backups/repo",
        server.port
    ));
    let init = env.init_with(&["--json"]);
    assert!(
        init.stderr.contains("does not refuse a second write"),
        "{}",
        init.stderr
    );
    round_trip(&env);
    // The check-before-write still refuses an object that is there.
    let again = env.init();
    assert_eq!(again.code, 1);
    assert!(dir.path().join("davroot/backups/repo/config").exists());
}
