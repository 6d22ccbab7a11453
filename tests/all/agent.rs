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

/// Two apps backing up into one (new) repository with two slots on the node: with
/// `repository-concurrency = 2` their backups run side by side (the repository created
/// once), with the default of one never.
#[test]
fn backups_into_one_repository_share_it_up_to_the_limit() {
    for (limit, side_by_side) in [(2, true), (1, false)] {
        let tmp = tempfile::tempdir().unwrap();
        let apps = ["p", "q"]
            .iter()
            .map(|name| app(name, &data(tmp.path(), name, 30, 200_000), ""))
            .collect::<String>();
        let extra = format!("concurrency = 2\nrepository-concurrency = {limit}");
        let agent = Agent::start(tmp.path(), &node(tmp.path(), &extra), &apps);
        agent.cli(&["run", "p"]).ok();
        agent.cli(&["run", "q"]).ok();
        agent.wait_for(120, "two runs", |g| {
            let runs = g.runs(None);
            runs.len() == 2 && runs.iter().all(|r| r["state"] == "succeeded")
        });
        let spans: Vec<(jiff::Timestamp, jiff::Timestamp)> = agent
            .runs(None)
            .iter()
            .map(|r| (ts(&r["started"]), ts(&r["ended"])))
            .collect();
        let overlap = spans[0].0 < spans[1].1 && spans[1].0 < spans[0].1;
        assert_eq!(overlap, side_by_side, "limit {limit}: {spans:?}");
        assert_eq!(snapshots(tmp.path(), "p") + snapshots(tmp.path(), "q"), 2);
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

/// The pack files in the local repository at `repo` (temporary files not counted).
fn packs(repo: &Path) -> usize {
    let Ok(dirs) = std::fs::read_dir(repo.join("data")) else {
        return 0;
    };
    dirs.flatten()
        .filter_map(|d| std::fs::read_dir(d.path()).ok())
        .flat_map(|files| files.flatten())
        .filter(|f| !f.file_name().to_string_lossy().starts_with('.'))
        .count()
}

/// kill -9 of the agent while a run is uploading: the packs it finished are indexed by the
/// next run and not uploaded again (its `bytes_added` is less than the data by at least
/// what was stored before the kill), and the repository checks clean, reading everything.
#[test]
fn a_run_cut_by_kill_9_mid_upload_leaves_packs_the_next_run_reuses() {
    let tmp = tempfile::tempdir().unwrap();
    let size = 16 << 20;
    let big = data(tmp.path(), "big", 10, size);
    let repo = tmp.path().join("repo");
    let mut agent = Agent::start(tmp.path(), &node(tmp.path(), ""), &app("big", &big, ""));
    agent.cli(&["run", "big"]).ok();
    let start = std::time::Instant::now();
    while packs(&repo) < 3 {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no packs were stored"
        );
        assert_ne!(
            agent.runs(Some("big"))[0]["state"],
            "succeeded",
            "the run ended before it could be cut"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    agent.stop_with(Signal::SIGKILL);
    let stored = packs(&repo);
    agent.restart();
    assert_eq!(agent.runs(Some("big"))[0]["state"], "interrupted");
    agent.cli(&["run", "big", "--wait"]).ok();
    let run = &agent.runs(Some("big"))[0];
    assert_eq!(run["state"], "succeeded", "{run}");
    let total = (10 * size) as u64;
    let added = run["bytes_added"].as_u64().unwrap();
    let reused = total.saturating_sub(added);
    // Each finished pack held about one pack size (16 MiB) of this data.
    assert!(
        reused >= (stored as u64 - 1) * (12 << 20),
        "the next run uploaded {added} of {total} bytes again although {stored} packs were \
         stored before the kill"
    );
    cairn(tmp.path(), &["check", "--read-data"]).ok();
}

/// `/metrics` passes promtool; a real Prometheus server scrapes it and a query returns each
/// app's last success; node_exporter serves the textfile's status gauge (1 ok, 0 failed).
#[test]
fn prometheus_scrapes_the_agent_and_node_exporter_serves_its_textfile() {
    use cairn_tests::prometheus::{NodeExporter, Prometheus, http_get, promtool_check};
    let tmp = tempfile::tempdir().unwrap();
    let good = data(tmp.path(), "good", 2, 1000);
    let textfiles = tmp.path().join("textfiles");
    std::fs::create_dir_all(&textfiles).unwrap();
    let token = tmp.path().join("token");
    std::fs::write(&token, "agent-token-1234567890\n").unwrap();
    let extra = format!(
        "textfile = \"{}\"\ntoken-file = \"{}\"",
        textfiles.join("cairn.prom").display(),
        token.display()
    );
    let apps = app("good", &good, "") + &app("bad", &tmp.path().join("missing"), "");
    let mut agent = Agent::start(tmp.path(), &node(tmp.path(), &extra), &apps);
    agent.token = Some(token.clone());
    agent.cli(&["run", "good", "--wait"]).ok();
    assert_eq!(agent.cli(&["run", "bad", "--wait"]).code, 1);
    let port: u16 = agent.addr.rsplit(':').next().unwrap().parse().unwrap();
    assert_eq!(
        http_get(port, "/metrics", &[]).0,
        401,
        "the token is not asked"
    );

    let prometheus = Prometheus::start(
        &tmp.path().join("prometheus"),
        std::slice::from_ref(&agent.addr),
        Some(&token),
    );
    let start = std::time::Instant::now();
    let series = loop {
        let found = prometheus.query("cairn_agent_last_success_timestamp_seconds");
        if !found.is_empty() {
            break found;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "Prometheus scraped nothing: {:?}",
            prometheus.query("up")
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(series.len(), 1, "only `good` has succeeded: {series:?}");
    assert_eq!(series[0]["metric"]["app"], "good");
    let scraped: f64 = series[0]["value"][1].as_str().unwrap().parse().unwrap();
    let good_status = agent.app("good");
    let last_success = ts(&good_status["last_success"]).as_millisecond() as f64 / 1000.0;
    assert!(
        (scraped - last_success).abs() < 0.01,
        "Prometheus has {scraped}, the agent says {last_success}"
    );
    let failed = prometheus.query("cairn_agent_last_run_success == 0");
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["metric"]["app"], "bad");

    // promtool accepts what the agent exposes (read with the token).
    let (status, exposition) = http_get(
        port,
        "/metrics",
        &["Authorization: Bearer agent-token-1234567890"],
    );
    assert_eq!(status, 200);
    promtool_check(&exposition);
    assert!(exposition.contains("cairn_agent_runs_total{app=\"bad\",outcome=\"failed\"} 1"));

    let exporter = NodeExporter::start(&tmp.path().join("node-exporter"), &textfiles);
    let start = std::time::Instant::now();
    loop {
        let m = exporter.metrics();
        if m.contains("cairn_agent_app_status{app=\"good\"} 1")
            && m.contains("cairn_agent_app_status{app=\"bad\"} 0")
        {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "node_exporter does not serve the status gauge:\n{m}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Apps back up through `cairn gateway` with app credentials (which cannot delete); the
/// node's maintenance — retention after each backup, prune and check on their schedules —
/// uses the node credential: the gateway's audit log shows every delete by the node and none
/// by the app, prune removes the packs retention left unused, and checks rotate through
/// their subsets.
#[test]
fn apps_behind_the_gateway_back_up_with_app_credentials_and_the_node_maintains_them() {
    use cairn_tests::gateway::Gateway;
    let tmp = tempfile::tempdir().unwrap();
    let storage = tmp.path().join("storage");
    let gw = Gateway::start(tmp.path(), storage.to_str().unwrap(), &[]);
    let app_token = gw.token("shop", "app", &["apps/shop"]);
    let node_token = gw.token("node-1", "node", &[]);
    let app_cred = tmp.path().join("shop.credential");
    let node_cred = tmp.path().join("node.credential");
    std::fs::write(&app_cred, format!("shop:{app_token}\n")).unwrap();
    std::fs::write(&node_cred, format!("node-1:{node_token}\n")).unwrap();
    let shop = data(tmp.path(), "shop", 4, 300_000);
    let location = format!("rest:http://127.0.0.1:{}/apps/shop/", gw.port);
    let extra = format!(
        "prune = \"*/2 * * * * *\"\ncheck = \"*/2 * * * * *\"\n\
         check-read-data-subset = \"1/2\"\nmaintenance-credentials-file = \"{}\"",
        node_cred.display()
    );
    let apps = app(
        "shop",
        &shop,
        &format!(
            "repository = \"{location}\"\nrest-credentials-file = \"{}\"\n\
             retention = {{ keep-last = 1 }}",
            app_cred.display()
        ),
    );
    let agent = Agent::start(tmp.path(), &node(tmp.path(), &extra), &apps);
    for round in 0..3 {
        if round > 0 {
            // New data each round: what the old snapshots used becomes unused.
            std::fs::remove_dir_all(&shop).unwrap();
            data(tmp.path(), "shop", 4, 300_000);
        }
        let run = agent.cli(&["run", "shop", "--wait"]);
        assert_eq!(run.code, 0, "{run:?}");
    }
    let last_backup = ts(&agent
        .runs(Some("shop"))
        .into_iter()
        .find(|r| r["operation"] == "backup")
        .unwrap()["ended"]);
    agent.wait_for(60, "a prune and two checks after the last backup", |g| {
        let runs = g.runs(None);
        let after = |op: &str| {
            runs.iter()
                .filter(|r| {
                    r["operation"] == op
                        && r["state"] == "succeeded"
                        && ts(&r["started"]) > last_backup
                })
                .cloned()
                .collect::<Vec<_>>()
        };
        !after("prune").is_empty() && after("check").len() >= 2
    });
    let runs = agent.runs(None);
    let backups: Vec<_> = runs.iter().filter(|r| r["operation"] == "backup").collect();
    assert_eq!(backups.len(), 3);
    assert!(
        backups.iter().all(|r| r["state"] == "succeeded"),
        "{backups:?}"
    );
    assert_eq!(backups[0]["forgotten"], 1, "{:?}", backups[0]);
    // Prune freed what retention left unused.
    let pruned: u64 = runs
        .iter()
        .filter(|r| r["operation"] == "prune" && r["state"] == "succeeded")
        .map(|r| {
            let log = agent.cli(&["logs", &r["id"].to_string()]).stdout;
            log.split("deleted ")
                .nth(1)
                .and_then(|t| t.split(' ').next())
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0)
        })
        .sum();
    assert!(pruned >= 1, "no prune deleted an unused pack: {runs:?}");
    let subsets: std::collections::BTreeSet<String> = runs
        .iter()
        .filter(|r| r["operation"] == "check")
        .filter_map(|r| r["read_data"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        subsets,
        ["1/2".to_owned(), "2/2".to_owned()].into(),
        "checks do not rotate: {runs:?}"
    );
    for r in runs.iter().filter(|r| r["operation"] != "backup") {
        assert_eq!(r["repository"], location, "{r}");
    }
    // Maintenance never ran beside a backup.
    let span = |r: &serde_json::Value| (ts(&r["started"]), ts(&r["ended"]));
    for b in &backups {
        for m in runs
            .iter()
            .filter(|r| r["operation"] != "backup" && r["ended"].is_string())
        {
            let (bs, be) = span(b);
            let (ms, me) = span(m);
            assert!(
                me <= bs || ms >= be,
                "maintenance {m} overlapped backup {b}"
            );
        }
    }

    let audit = std::fs::read_to_string(gw.state.join("audit.log")).unwrap();
    let deletes: Vec<serde_json::Value> = audit
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["method"] == "DELETE" && e["reason"] == "deleted")
        .collect();
    let by = |who: &str, kind: &str| {
        deletes
            .iter()
            .filter(|e| e["credential"] == who && e["path"].as_str().unwrap().contains(kind))
            .count()
    };
    assert!(by("node-1", "/snapshots/") >= 2, "{audit}");
    assert!(by("node-1", "/data/") >= 1, "{audit}");
    assert_eq!(
        by("shop", "/snapshots/") + by("shop", "/data/"),
        0,
        "{audit}"
    );
    assert!(
        audit
            .lines()
            .all(|l| !l.contains(&app_token) && !l.contains(&node_token))
    );
    let agent_log = std::fs::read_to_string(&agent.log).unwrap();
    assert!(!agent_log.contains(&app_token) && !agent_log.contains(&node_token));
    let status = agent.cli(&["status"]).stdout;
    assert!(
        status.contains("prune") && status.contains(&location),
        "{status}"
    );
}
