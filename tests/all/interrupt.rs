//! Interrupted backups (kill -9, SIGTERM) leave no snapshot, keep the repository consistent, and
//! the next backup re-uses what was uploaded.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use cairn_testing::fixture::random_bytes;
use cairn_tests::TestEnv;

fn setup() -> (TestEnv, PathBuf, u64) {
    let env = TestEnv::new();
    // Small packs, so that packs land early in the run.
    env.init_with(&["--pack-size", "1M"]).ok();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    let mut total = 0;
    for i in 0..24 {
        let data = random_bytes(8 << 20, i);
        total += data.len() as u64;
        std::fs::write(src.join(format!("f{i:02}.bin")), data).unwrap();
    }
    (env, src, total)
}

/// Starts a backup and waits until at least `packs` packs are stored.
fn start_and_wait(env: &TestEnv, src: &std::path::Path, packs: usize) -> std::process::Child {
    let child = env
        .cmd(&["backup", "--quiet", src.to_str().unwrap()])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while env.repo_files("data").len() < packs {
        assert!(Instant::now() < deadline, "no packs were written");
        std::thread::sleep(Duration::from_millis(5));
    }
    child
}

fn assert_resumes(env: &TestEnv, src: &std::path::Path, total: u64, packs_before: usize) {
    assert!(
        env.repo_files("snapshots").is_empty(),
        "an interrupted backup saves no snapshot"
    );
    let summary = env.backup(&[src]);
    let added = summary["data_added"].as_u64().unwrap();
    assert!(packs_before >= 4);
    assert!(
        added < total,
        "nothing was re-used: added {added} of {total}"
    );
    assert!(
        total - added >= (packs_before as u64 - 2) * 900_000,
        "the {packs_before} uploaded packs were not re-used: added {added} of {total}"
    );
    env.restore_verified("out");
}

#[test]
fn kill_9_mid_backup_then_resume() {
    let (env, src, total) = setup();
    let mut child = start_and_wait(&env, &src, 6);
    child.kill().unwrap();
    child.wait().unwrap();
    let packs = env.repo_files("data").len();
    assert!(
        !env.repo_files("locks").is_empty(),
        "kill -9 leaves its lock behind"
    );
    // The stale lock of a dead process on this host does not block the next run.
    assert_resumes(&env, &src, total, packs);
}

#[test]
fn sigterm_mid_backup_stops_cleanly() {
    let (env, src, total) = setup();
    let child = start_and_wait(&env, &src, 6);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("no snapshot was saved") && said.contains("does not upload it again"),
        "{said}"
    );
    assert!(
        env.repo_files("locks").is_empty(),
        "a clean stop removes its lock"
    );
    assert!(
        !env.repo_files("index").is_empty(),
        "a clean stop indexes what it uploaded"
    );
    let packs = env.repo_files("data").len();
    assert_resumes(&env, &src, total, packs);
}
