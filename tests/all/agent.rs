//! `cairn agent`: the real binary as the node's agent, its apps backed up from plain
//! directories into local repositories, driven and watched through its CLI and API.

use std::path::{Path, PathBuf};
use std::time::Duration;

use cairn_tests::agent::Agent;
use nix::sys::signal::Signal;

/// A directory with `files` files of `size` bytes (random, so nothing dedups).
fn data(dir: &Path, name: &str, files: usize, size: usize) -> PathBuf {
    let d = dir.join("data").join(name);
    std::fs::create_dir_all(&d).unwrap();
    for i in 0..files {
        let mut bytes = vec![0u8; size];
        rand::fill(&mut bytes[..]);
        std::fs::write(d.join(format!("f{i}")), bytes).unwrap();
    }
    d
}

/// `[agent]` lines: the password file (written) and a default repository under `dir`.
fn node(dir: &Path, extra: &str) -> String {
    let pass = dir.join("password");
    std::fs::write(&pass, "secret\n").unwrap();
    format!(
        "password-file = \"{}\"\nrepository = \"{}\"\n{extra}",
        pass.display(),
        dir.join("repo").display()
    )
}

fn app(name: &str, path: &Path, extra: &str) -> String {
    format!("[apps.{name}]\npaths = [\"{}\"]\n{extra}\n", path.display())
}

fn ts(v: &serde_json::Value) -> jiff::Timestamp {
    v.as_str()
        .unwrap_or_else(|| panic!("not a time: {v}"))
        .parse()
        .unwrap()
}

/// `cairn ARGS -r DIR/repo --password-file DIR/password`.
fn cairn(dir: &Path, args: &[&str]) -> cairn_tests::Run {
    std::process::Command::new(cairn_tests::cairn_bin())
        .args(args)
        .arg("-r")
        .arg(dir.join("repo"))
        .arg("--password-file")
        .arg(dir.join("password"))
        .output()
        .unwrap()
        .into()
}

fn snapshots(dir: &Path, app: &str) -> usize {
    let run = cairn(dir, &["--json", "snapshots", "--app", app]);
    run.json().as_array().map_or(0, Vec::len)
}

/// An exclusive lock on the repository at `repo`, held by "another host" until dropped.
fn hold_lock(repo: &Path) -> cairn_repo::lock::LockGuard {
    let backend = cairn_backend::open_location(repo.to_str().unwrap()).unwrap();
    let repo = cairn_repo::Repository::open(backend, b"secret").unwrap();
    let actor = cairn_repo::Actor {
        hostname: "elsewhere".into(),
        username: "test".into(),
    };
    cairn_repo::lock::lock(&repo, true, &actor, 1).unwrap()
}

/// B runs after A: it starts once A succeeded; when A fails, B is held back and says why.
/// A's retention keeps exactly what it says (keep-last 2 of three runs).
#[test]
fn an_app_after_another_starts_on_its_success_and_is_held_back_by_its_failure() {
    let tmp = tempfile::tempdir().unwrap();
    let a = data(tmp.path(), "a", 3, 1000);
    let b = data(tmp.path(), "b", 3, 1000);
    let apps = app("a", &a, "retention = { keep-last = 2 }") + &app("b", &b, "after = [\"a\"]");
    let agent = Agent::start(tmp.path(), &node(tmp.path(), ""), &apps);
    for round in 1..=3 {
        agent.cli(&["run", "a", "--wait"]).ok();
        agent.wait_for(60, "b's run after a", |g| {
            g.runs(Some("b"))
                .iter()
                .filter(|r| r["state"] == "succeeded")
                .count()
                == round
        });
    }
    let a_runs = agent.runs(Some("a"));
    let b_runs = agent.runs(Some("b"));
    assert_eq!(a_runs.len(), 3);
    assert_eq!(b_runs.len(), 3, "b ran once per success of a: {b_runs:?}");
    for (ra, rb) in a_runs.iter().zip(&b_runs) {
        assert_eq!(rb["trigger"], "after");
        assert!(
            ts(&rb["started"]) >= ts(&ra["ended"]),
            "b started before a ended"
        );
    }
    assert_eq!(
        snapshots(tmp.path(), "a"),
        2,
        "keep-last 2 kept two of a's three"
    );
    assert_eq!(snapshots(tmp.path(), "b"), 3, "b has no retention");

    std::fs::remove_dir_all(&a).unwrap();
    let failed = agent.cli(&["run", "a", "--wait"]);
    assert_eq!(failed.code, 1, "{failed:?}");
    let status = agent.app("b");
    assert_eq!(status["state"], "held", "{status}");
    assert!(
        status["held"].as_str().unwrap().contains("`a` failed"),
        "{status}"
    );
    assert_eq!(agent.runs(Some("b")).len(), 3, "b ran although a failed");
    assert_eq!(agent.app("a")["last_run"]["state"], "failed");
}

/// Concurrency 1: three apps triggered at once run one after the other, never overlapping.
#[test]
fn three_apps_triggered_at_once_never_overlap() {
    let tmp = tempfile::tempdir().unwrap();
    let mut apps = String::new();
    for name in ["x", "y", "z"] {
        let d = data(tmp.path(), name, 20, 200_000);
        let repo = tmp.path().join(format!("repo-{name}"));
        apps += &app(name, &d, &format!("repository = \"{}\"", repo.display()));
    }
    let agent = Agent::start(tmp.path(), &node(tmp.path(), "concurrency = 1"), &apps);
    for name in ["x", "y", "z"] {
        agent.cli(&["run", name]).ok();
    }
    agent.wait_for(120, "three runs", |g| {
        let runs = g.runs(None);
        runs.len() == 3 && runs.iter().all(|r| r["state"] == "succeeded")
    });
    let mut spans: Vec<(jiff::Timestamp, jiff::Timestamp)> = agent
        .runs(None)
        .iter()
        .map(|r| (ts(&r["started"]), ts(&r["ended"])))
        .collect();
    spans.sort();
    for w in spans.windows(2) {
        assert!(w[1].0 >= w[0].1, "runs overlapped: {spans:?}");
    }
}

/// A run waits for a lock another process holds, then succeeds once it goes; its lock
/// wait is recorded.
#[test]
fn a_locked_repository_is_waited_for() {
    let tmp = tempfile::tempdir().unwrap();
    let a = data(tmp.path(), "a", 2, 1000);
    let agent = Agent::start(
        tmp.path(),
        &node(tmp.path(), "lock-wait = \"2m\""),
        &app("a", &a, ""),
    );
    agent.cli(&["run", "a", "--wait"]).ok();
    // Another process (this test) holds an exclusive lock for a while.
    let held = hold_lock(&tmp.path().join("repo"));
    agent.cli(&["run", "a"]).ok();
    agent.wait_for(30, "the run to wait for the lock", |g| {
        g.app("a")["state"] == "running"
    });
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        agent.app("a")["state"],
        "running",
        "the run did not wait for the lock"
    );
    drop(held);
    agent.wait_for(60, "the run to end", |g| {
        g.runs(Some("a"))[0]["state"] != "running"
    });
    let run = &agent.runs(Some("a"))[0];
    assert_eq!(run["state"], "succeeded", "{run}");
    assert!(run["lock_wait_seconds"].as_f64().unwrap() >= 2.0, "{run}");
}

/// kill -9 of the agent mid-run (its run waiting for a lock another process holds, so the
/// kill lands inside the run whatever the machine's speed): at the restart the run is marked
/// interrupted and the counters are rebuilt from the database; the next run succeeds into a
/// repository that checks clean.
#[test]
fn a_run_cut_by_kill_9_is_interrupted_after_the_restart_and_the_next_succeeds() {
    let tmp = tempfile::tempdir().unwrap();
    let big = data(tmp.path(), "big", 10, 1_000_000);
    let mut agent = Agent::start(
        tmp.path(),
        &node(tmp.path(), "lock-wait = \"5m\""),
        &app("big", &big, ""),
    );
    agent.cli(&["run", "big", "--wait"]).ok();
    let held = hold_lock(&tmp.path().join("repo"));
    agent.cli(&["run", "big"]).ok();
    agent.wait_for(30, "the run to start", |g| {
        g.app("big")["state"] == "running"
    });
    agent.stop_with(Signal::SIGKILL);
    drop(held);
    agent.restart();
    let cut = &agent.runs(Some("big"))[0];
    assert_eq!(cut["state"], "interrupted", "{cut}");
    agent.cli(&["run", "big", "--wait"]).ok();
    cairn(tmp.path(), &["check"]).ok();
    let status = agent.app("big");
    assert_eq!(
        status["runs"]["interrupted"], 1,
        "the counters were not rebuilt from the database: {status}"
    );
    assert_eq!(status["runs"]["succeeded"], 2, "{status}");
}

/// A schedule every 2 s; the agent is down over three or more slots: one catch-up run at
/// the restart, the rest counted as missed.
#[test]
fn downtime_over_several_slots_gives_one_catch_up_run() {
    let tmp = tempfile::tempdir().unwrap();
    let a = data(tmp.path(), "a", 1, 100);
    let mut agent = Agent::start(
        tmp.path(),
        &node(tmp.path(), ""),
        &app("a", &a, "schedule = \"*/2 * * * * *\""),
    );
    agent.wait_for(30, "a scheduled run", |g| {
        g.runs(Some("a")).iter().any(|r| r["state"] == "succeeded")
    });
    agent.stop_with(Signal::SIGTERM);
    let before = std::time::Instant::now();
    std::thread::sleep(Duration::from_secs(7));
    agent.restart();
    let restarted = jiff::Timestamp::now();
    agent.wait_for(30, "the catch-up run", |g| {
        g.runs(Some("a")).iter().any(|r| r["trigger"] == "catch-up")
    });
    std::thread::sleep(Duration::from_millis(2500));
    let runs = agent.runs(Some("a"));
    let catch_up = runs.iter().filter(|r| r["trigger"] == "catch-up").count();
    assert_eq!(catch_up, 1, "{runs:?}");
    let first_after = runs
        .iter()
        .filter(|r| ts(&r["queued"]) >= restarted - jiff::SignedDuration::from_millis(500))
        .min_by_key(|r| r["id"].as_u64())
        .unwrap();
    assert_eq!(first_after["trigger"], "catch-up", "{runs:?}");
    let missed = agent.app("a")["missed"].as_u64().unwrap();
    let slots_down = before.elapsed().as_secs() / 2;
    assert!(
        missed >= 2 && missed <= slots_down + 1,
        "missed {missed} over {slots_down} slots"
    );
}
