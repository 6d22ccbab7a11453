//! kill -9 at random points of backup, prune and copy: after each kill `check` is clean, no
//! snapshot is lost, and the next run succeeds and re-uses what was uploaded.
//!
//! Each operation is timed once uninterrupted; the kills fall at points drawn (seeded) over
//! that span, so they land in every phase: lock, reading, packing, uploading, index, snapshot.

use std::path::Path;
use std::time::{Duration, Instant};

use cairn_testing::fixture::random_bytes;
use cairn_tests::TestEnv;
use rand::{Rng, SeedableRng};

/// Kills per operation.
const KILLS: usize = 20;

fn check_clean(env: &TestEnv, after: &str) {
    let r = env.run(&["check", "--json"]);
    let report: serde_json::Value = serde_json::from_str(r.stdout.trim())
        .unwrap_or_else(|e| panic!("{after}: check printed no report ({e}): {}", r.stderr));
    assert_eq!(report["errors"], 0, "{after}: {}", r.stdout);
}

/// Runs `args` in `env` killed after `delay`; whether it was still running then.
fn kill_after(env: &TestEnv, args: &[&str], delay: Duration) -> bool {
    let mut child = env.cmd(args).spawn().unwrap();
    std::thread::sleep(delay);
    let running = child.try_wait().unwrap().is_none();
    let _ = child.kill();
    child.wait().unwrap();
    running
}

/// How long `args` takes uninterrupted (it runs once, to completion).
fn timed(env: &TestEnv, args: &[&str]) -> Duration {
    let start = Instant::now();
    env.run(args).ok();
    start.elapsed()
}

/// Kills at random points until [`KILLS`] of them hit a running process (at most three times
/// as many tries): `kill(i, delay)` runs one, kills it after `delay` and says whether it was
/// still running. A run that ended before its kill shows the operation is now shorter (data
/// already uploaded): later points are drawn within its time.
fn kill_points(seed: u64, span: Duration, mut kill: impl FnMut(usize, Duration) -> bool) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut span = span.as_micros().max(2_000) as u64;
    let mut hit = 0;
    for i in 0..3 * KILLS {
        let delay = rng.random_range(1_000..span.max(2_000));
        if kill(i, Duration::from_micros(delay)) {
            hit += 1;
            if hit == KILLS {
                return;
            }
        } else {
            span = delay;
        }
    }
    panic!("only {hit} of {} kills hit a running process", 3 * KILLS);
}

fn write_tree(dir: &Path, seed: u64) -> u64 {
    std::fs::create_dir_all(dir).unwrap();
    let mut total = 0;
    for i in 0..6 {
        let data = random_bytes(1_500_000, seed * 100 + i);
        total += data.len() as u64;
        std::fs::write(dir.join(format!("f{i}.bin")), data).unwrap();
    }
    total
}

#[test]
fn kill_9_at_random_points_of_backup() {
    let env = TestEnv::new();
    env.init_with(&["--pack-size", "1M"]).ok();
    let src = env.path("src");
    let total = write_tree(&src, 1);
    let s = src.to_str().unwrap();
    // Timed on a copy of the data in another repository, so this one starts empty.
    let probe = TestEnv::new();
    probe.init_with(&["--pack-size", "1M"]).ok();
    let span = timed(&probe, &["backup", "--quiet", s]);
    kill_points(11, span, |i, delay| {
        let ran = kill_after(&env, &["backup", "--quiet", "--force", s], delay);
        check_clean(&env, &format!("backup kill {i} at {delay:?}"));
        ran
    });
    let before = env.snapshot_ids().len();
    let summary = env.backup(&[&src]);
    assert_eq!(env.snapshot_ids().len(), before + 1);
    let added = summary["data_added"].as_u64().unwrap();
    assert!(added < total, "nothing re-used: {added} of {total} added");
    let check = env.run(&["check", "--read-data", "--json"]).json();
    assert_eq!(check["errors"], 0, "{check}");
    env.restore_verified("out");
}

#[test]
fn kill_9_at_random_points_of_prune() {
    let env = TestEnv::new();
    env.init_with(&["--pack-size", "1M"]).ok();
    let src = env.path("src");
    let backup = |seed: u64| {
        write_tree(&src, seed);
        env.run(&["backup", "--quiet", src.to_str().unwrap()]).ok();
    };
    let prune = ["prune", "--quiet", "--max-unused", "0%"];
    // Timed on a repository of the same shape.
    backup(1);
    backup(2);
    env.run(&["forget", "--keep-last", "1"]).ok();
    let span = timed(&env, &prune);
    let mut round = 0;
    kill_points(12, span, |i, delay| {
        // Garbage for each prune: a new snapshot, and the one before it forgotten.
        round += 1;
        backup(10 + round);
        env.run(&["forget", "--keep-last", "1"]).ok();
        let kept = env.snapshot_ids();
        let ran = kill_after(&env, &prune, delay);
        let after = format!("prune kill {i} at {delay:?}");
        check_clean(&env, &after);
        assert_eq!(env.snapshot_ids(), kept, "{after}: a snapshot was lost");
        ran
    });
    env.run(&["prune", "--max-unused", "0%"]).ok();
    let check = env.run(&["check", "--read-data", "--json"]).json();
    assert_eq!(check["errors"], 0, "{check}");
    assert!(check["problems"].as_array().unwrap().is_empty(), "{check}");
    env.restore_verified("out");
}

#[test]
fn kill_9_at_random_points_of_copy() {
    let src_env = TestEnv::with_repo();
    let src = src_env.path("src");
    for seed in 1..4 {
        write_tree(&src, seed);
        src_env
            .run(&["backup", "--quiet", src.to_str().unwrap()])
            .ok();
    }
    let mut dst = TestEnv::new();
    dst.password = "another password".into();
    let pw = dst.path("from-pw");
    std::fs::write(&pw, &src_env.password).unwrap();
    let from = src_env.repo.to_str().unwrap().to_owned();
    let pw = pw.to_str().unwrap().to_owned();
    let copy = [
        "copy",
        "--quiet",
        "--all",
        "--from-repo",
        &from,
        "--from-password-file",
        &pw,
    ];
    let init = |dst: &TestEnv| {
        dst.init_with(&[
            "--pack-size",
            "1M",
            "--copy-chunker-params",
            "--from-repo",
            &from,
            "--from-password-file",
            &pw,
        ])
        .ok();
    };
    init(&dst);
    let span = timed(&dst, &copy);
    let wanted = src_env.snapshot_ids().len();
    kill_points(13, span, |i, delay| {
        if dst.snapshot_ids().len() == wanted {
            // The last copy completed: start again on an empty destination.
            std::fs::remove_dir_all(&dst.repo).unwrap();
            init(&dst);
        }
        let copied = dst.snapshot_ids();
        let ran = kill_after(&dst, &copy, delay);
        let after = format!("copy kill {i} at {delay:?}");
        check_clean(&dst, &after);
        let now = dst.snapshot_ids();
        assert!(
            copied.iter().all(|id| now.contains(id)),
            "{after}: a snapshot was lost"
        );
        ran
    });
    dst.run(&copy).ok();
    assert_eq!(dst.snapshot_ids().len(), wanted);
    let check = dst.run(&["check", "--read-data", "--json"]).json();
    assert_eq!(check["errors"], 0, "{check}");
}
