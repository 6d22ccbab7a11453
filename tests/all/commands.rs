//! The browsing commands, backup options, keys, and JSON output.

use cairn_tests::TestEnv;

fn source(env: &TestEnv) -> std::path::PathBuf {
    let src = env.path("src");
    std::fs::create_dir_all(src.join("dir/cache")).unwrap();
    std::fs::write(src.join("a.txt"), "alpha\n").unwrap();
    std::fs::write(src.join("dir/b.txt"), "beta\n").unwrap();
    std::fs::write(src.join("dir/tmp.tmp"), "temporary").unwrap();
    std::fs::write(src.join("dir/cache/c.bin"), [7u8; 5000]).unwrap();
    src
}

#[test]
fn snapshots_filters_and_json() {
    let env = TestEnv::with_repo();
    let src = source(&env);
    let s = src.to_str().unwrap();
    env.run(&[
        "backup",
        "--quiet",
        "--tag",
        "daily,db",
        "--app",
        "ns/app/vol",
        s,
    ])
    .ok();
    env.run(&["backup", "--quiet", "--host", "other", s]).ok();
    let all = env.run(&["snapshots", "--json"]).json();
    assert_eq!(all.as_array().unwrap().len(), 2);
    let tagged = env.run(&["snapshots", "--json", "--tag", "db"]).json();
    assert_eq!(tagged.as_array().unwrap().len(), 1);
    assert_eq!(tagged[0]["app"], "ns/app/vol");
    assert_eq!(tagged[0]["tags"], serde_json::json!(["daily", "db"]));
    let by_app = env
        .run(&["snapshots", "--json", "--app", "ns/app/vol"])
        .json();
    assert_eq!(by_app.as_array().unwrap().len(), 1);
    let other = env.run(&["snapshots", "--json", "--host", "other"]).json();
    assert_eq!(other[0]["hostname"], "other");
    assert!(
        other[0]["parent"].is_null(),
        "another host's snapshot is not a parent"
    );
    let table = env.run(&["snapshots"]);
    assert!(table.ok().contains("ns/app/vol") && table.ok().contains("2 snapshots"));
    let latest = env.run(&["snapshots", "--json", "latest"]).json();
    assert_eq!(latest[0]["hostname"], "other");
}

#[test]
fn excludes_dry_run_and_parent() {
    let env = TestEnv::with_repo();
    let src = source(&env);
    let s = src.to_str().unwrap();
    let excl = env.path("excludes");
    std::fs::write(&excl, "# comment\n*/dir/cache\n").unwrap();
    let dry = env.run(&["backup", "--json", "--dry-run", s]).last_json();
    assert!(dry["snapshot_id"].is_null());
    assert!(env.repo_files("snapshots").is_empty() && env.repo_files("data").is_empty());
    let sum = env
        .run(&[
            "backup",
            "--json",
            "--exclude",
            "*.tmp",
            "--exclude-file",
            excl.to_str().unwrap(),
            s,
        ])
        .last_json();
    assert_eq!(sum["files_new"], 2, "{sum}");
    let ls = env.run(&["ls", "latest"]);
    assert!(
        !ls.ok().contains("tmp.tmp") && !ls.ok().contains("cache"),
        "{}",
        ls.stdout
    );
    assert!(ls.ok().contains("dir/b.txt"));
    std::fs::write(src.join("a.txt"), "alpha, changed\n").unwrap();
    let sum2 = env
        .run(&[
            "backup",
            "--json",
            "--exclude",
            "*.tmp",
            "--exclude",
            "cache",
            s,
        ])
        .last_json();
    assert_eq!(sum2["parent"], sum["snapshot_id"]);
    assert_eq!(
        (
            sum2["files_changed"].as_u64(),
            sum2["files_unmodified"].as_u64()
        ),
        (Some(1), Some(1))
    );
}

#[test]
fn ls_diff_dump_cat_stats() {
    let env = TestEnv::with_repo();
    let src = source(&env);
    let s = src.to_str().unwrap();
    let first = env.backup(&[&src])["snapshot_id"]
        .as_str()
        .unwrap()
        .to_owned();
    std::fs::write(src.join("dir/new.txt"), "new").unwrap();
    std::fs::remove_file(src.join("a.txt")).unwrap();
    std::fs::write(src.join("dir/b.txt"), "beta 2\n").unwrap();
    let second = env.backup(&[&src])["snapshot_id"]
        .as_str()
        .unwrap()
        .to_owned();

    let long = env.run(&["ls", "--long", &second[..8], &format!("{s}/dir")]);
    assert!(
        long.ok().contains("-rw-r--r--") && long.ok().contains("new.txt"),
        "{}",
        long.stdout
    );
    let json_lines: Vec<serde_json::Value> = env
        .run(&["ls", "--json", "latest"])
        .ok()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // restic's shape: the snapshot first, then one node a line.
    assert_eq!(json_lines[0]["struct_type"], "snapshot");
    assert_eq!(json_lines[0]["id"], second);
    assert!(json_lines[1..].iter().all(|e| e["struct_type"] == "node"
        && e["message_type"] == "node"
        && e["name"].is_string()
        && e["permissions"].is_string()));
    assert!(
        json_lines[1..]
            .iter()
            .any(|e| e["path"].as_str().unwrap().ends_with("dir/new.txt")
                && e["name"] == "new.txt"
                && e["type"] == "file"
                && e["size"] == 3)
    );

    let changes: Vec<serde_json::Value> = env
        .run(&["diff", "--json", &first, &second])
        .ok()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let (last, each) = changes.split_last().unwrap();
    assert!(
        each.iter().any(|c| c["message_type"] == "change"
            && c["modifier"] == "+"
            && c["path"] == format!("{s}/dir/new.txt")),
        "{changes:?}"
    );
    assert_eq!(last["message_type"], "statistics");
    assert_eq!(last["source_snapshot"], first);
    assert_eq!(last["added"]["files"], 1, "{last}");

    let diff = env.run(&["diff", &first, &second]);
    let out = diff.ok();
    assert!(out.contains(&format!("+  {s}/dir/new.txt")), "{out}");
    assert!(out.contains(&format!("-  {s}/a.txt")), "{out}");
    assert!(out.contains(&format!("M  {s}/dir/b.txt")), "{out}");

    assert_eq!(
        env.run(&["dump", "latest", &format!("{s}/dir/b.txt")]).ok(),
        "beta 2\n"
    );
    let r = env.run(&["dump", "latest", &format!("{s}/dir")]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("not a regular file"));

    let config = env.run(&["cat", "config"]).json();
    assert_eq!(config["chunker"]["avg_size"], 1 << 20);
    assert_eq!(config["pack_size"], 16 << 20);
    let snap = env.run(&["cat", "snapshot", &second[..10]]).json();
    assert_eq!(snap["id"], second.as_str());
    let tree = env.run(&["cat", "tree", &format!("latest:{s}/dir")]).json();
    assert!(
        tree["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["name"] == "new.txt")
    );
    let key = env
        .run(&[
            "cat",
            "key",
            &env.repo_files("keys")[0]
                .file_name()
                .unwrap()
                .to_string_lossy()[..6],
        ])
        .json();
    assert_eq!(key["data"], "<sealed>", "the wrapped key is not printed");
    assert_eq!(key["kdf"]["algorithm"], "argon2id");

    let stats = env.run(&["stats", "--json"]).json();
    assert_eq!(stats["snapshots"], 2);
    assert!(stats["dedup_ratio"].as_f64().unwrap() > 1.0, "{stats}");
    assert!(stats["restore_size"].as_u64().unwrap() > 10_000);
    // restic's modes: two snapshots of mostly the same files.
    let mode = |m: &str| env.run(&["stats", "--json", "--mode", m]).json();
    let restore = mode("restore-size");
    let by_contents = mode("files-by-contents");
    let raw = mode("raw-data");
    assert_eq!(restore["total_size"], stats["restore_size"]);
    assert_eq!(restore["snapshots_count"], 2);
    assert!(
        by_contents["total_file_count"].as_u64().unwrap()
            < restore["total_file_count"].as_u64().unwrap(),
        "{by_contents} {restore}"
    );
    assert!(by_contents["total_size"].as_u64().unwrap() < restore["total_size"].as_u64().unwrap());
    assert_eq!(raw["total_blob_count"], stats["blobs"]);
    assert!(mode("blobs-per-file")["total_size"].as_u64().unwrap() > 0);
    let text = env.run(&["stats", "--mode", "raw-data"]).ok().to_owned();
    assert!(text.contains("Stats in raw-data mode"), "{text}");
}

#[test]
fn one_file_system_stops_at_mount_points() {
    let env = TestEnv::with_repo();
    let src = source(&env);
    let mnt = src.join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "cairn-test", mnt.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(mounted.success(), "this test mounts a tmpfs and needs root");
    std::fs::write(mnt.join("on-other-fs.txt"), "x").unwrap();
    let s = src.to_str().unwrap();
    let with = env.run(&["backup", "--quiet", s]);
    let without = env.run(&["backup", "--quiet", "--one-file-system", "--force", s]);
    let ls_all = env.run(&["ls", "--json", "latest"]);
    std::process::Command::new("umount")
        .arg(&mnt)
        .status()
        .unwrap();
    with.ok();
    without.ok();
    assert!(!ls_all.ok().contains("on-other-fs.txt"));
    assert!(
        ls_all.ok().contains("\"type\":\"dir\"") && ls_all.ok().contains("/mnt\""),
        "the mount point stays, empty"
    );
    let snaps = env.run(&["snapshots", "--json"]).json();
    let first = snaps[0]["id"].as_str().unwrap();
    assert!(env.run(&["ls", first]).ok().contains("on-other-fs.txt"));
}

#[test]
fn key_slots() {
    let env = TestEnv::with_repo();
    let pw2 = env.path("pw2");
    std::fs::write(&pw2, "second password\n").unwrap();
    let keys = env.run(&["key", "list", "--json"]).json();
    assert_eq!(keys.as_array().unwrap().len(), 1);
    let first = keys[0]["id"].as_str().unwrap().to_owned();
    let r = env.run(&["key", "remove", &first]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("last key"), "{}", r.stderr);
    env.run(&["key", "add", "--new-password-file", pw2.to_str().unwrap()])
        .ok();
    assert_eq!(
        env.run(&["key", "list", "--json"])
            .json()
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let r = env.run(&["key", "remove", &first]);
    assert_eq!(r.code, 1, "the key in use is not removed");
    // Open with the second password and remove the first slot.
    let mut env2 = TestEnv {
        repo: env.repo.clone(),
        root: env.root.clone(),
        password: "second password".into(),
        ..TestEnv::new()
    };
    env2.run(&["key", "remove", &first[..10]]).ok();
    let mut old = TestEnv {
        repo: env.repo.clone(),
        root: env.root.clone(),
        password: env.password.clone(),
        ..TestEnv::new()
    };
    assert_eq!(
        old.run(&["snapshots"]).code,
        12,
        "the removed password no longer opens"
    );
    // passwd replaces the slot in use.
    let pw3 = env.path("pw3");
    std::fs::write(&pw3, "third").unwrap();
    env2.run(&[
        "key",
        "passwd",
        "--new-password-file",
        pw3.to_str().unwrap(),
    ])
    .ok();
    assert_eq!(env2.run(&["snapshots"]).code, 12);
    env2.password = "third".into();
    env2.run(&["snapshots"]).ok();
    old.password = "third".into();
    assert_eq!(
        old.run(&["key", "list", "--json"])
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn stdin_backup() {
    let env = TestEnv::with_repo();
    let mut child = env
        .cmd(&["backup", "--json", "--stdin", "--stdin-filename", "db.dump"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(&cairn_testing::fixture::random_bytes(3 << 20, 11))
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let dumped = env.cmd(&["dump", "latest", "/db.dump"]).output().unwrap();
    assert_eq!(
        dumped.stdout,
        cairn_testing::fixture::random_bytes(3 << 20, 11)
    );
    let snap = env.run(&["snapshots", "--json"]).json();
    assert_eq!(snap[0]["paths"], serde_json::json!(["/db.dump"]));
    assert_eq!(snap[0]["summary"]["total_bytes_processed"], 3 << 20);

    // A name with directories is stored with them; one that climbs is refused.
    let r = env.run(&[
        "backup",
        "--quiet",
        "--stdin-filename",
        "dumps/shop/db.sql",
        "--stdin-from-command",
        "--",
        "sh",
        "-c",
        "echo nested",
    ]);
    r.ok();
    assert_eq!(
        env.run(&["dump", "latest", "/dumps/shop/db.sql"]).ok(),
        "nested\n"
    );
    for bad in ["../x", "a//b", "a/./b", ""] {
        let r = env.run(&[
            "backup",
            "--stdin-filename",
            bad,
            "--stdin-from-command",
            "--",
            "true",
        ]);
        assert_eq!(r.code, 1, "{bad}: {}", r.stderr);
        assert!(
            r.stderr.contains("not a valid file name"),
            "{bad}: {}",
            r.stderr
        );
    }
}

/// The `paths` of the first snapshot of a `snapshots --json` list, sorted.
fn first_paths(list: &serde_json::Value) -> Vec<String> {
    let mut p: Vec<String> = list[0]["paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_owned())
        .collect();
    p.sort();
    p
}

/// Every file below `dir`, relative, with its content, sorted.
fn tree_of(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                out.push((rel, std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// Relative paths are stored as restic stores them (`backup .` puts the directory's contents
/// at the root, `sub/x` stays `sub/x`, `../x` is `x`), absolute ones at their place; the
/// snapshot's paths are absolute, and the next backup from the same place finds its parent.
/// restic runs beside cairn on the same trees and both restores are compared.
#[test]
fn relative_paths_are_stored_as_restic_stores_them() {
    let env = TestEnv::with_repo();
    std::fs::create_dir_all(env.path("src")).unwrap();
    let base = env.path("src").canonicalize().unwrap();
    let site = base.join("site");
    std::fs::create_dir_all(site.join("sub")).unwrap();
    std::fs::create_dir_all(base.join("other")).unwrap();
    std::fs::write(site.join("a.txt"), "alpha").unwrap();
    std::fs::write(site.join("sub/b.txt"), "beta").unwrap();
    std::fs::write(base.join("other/c.txt"), "gamma").unwrap();
    std::fs::write(site.join("x.tmp"), "excluded").unwrap();

    let peer = cairn_tests::restic::Restic::new(&env.path("restic-home"));
    let restic_repo = env.path("restic-repo");
    let restic =
        |cwd: &std::path::Path, args: &[&str]| peer.ok_in(cwd, restic_repo.to_str().unwrap(), args);
    restic(&base, &["init"]);
    let cairn = |cwd: &std::path::Path, args: &[&str]| {
        let out: cairn_tests::Run = env.cmd(args).current_dir(cwd).output().unwrap().into();
        out.ok();
        out
    };
    let other = base.join("other");
    let cases: [(&std::path::Path, &[&str]); 3] = [
        (&site, &[".", "--exclude", "*.tmp"]),
        (&base, &["site", "../src/other/c.txt"]),
        (&base, &["site/sub", other.to_str().unwrap()]),
    ];
    for (i, (cwd, paths)) in cases.iter().enumerate() {
        let mut args = vec!["backup", "--quiet"];
        args.extend_from_slice(paths);
        cairn(cwd, &args);
        restic(cwd, &args);
        let (ours, theirs) = (env.path(&format!("out{i}")), env.path(&format!("rout{i}")));
        cairn(
            &base,
            &["restore", "latest", "--target", ours.to_str().unwrap()],
        );
        restic(
            &base,
            &["restore", "latest", "--target", theirs.to_str().unwrap()],
        );
        assert_eq!(tree_of(&ours), tree_of(&theirs), "{cwd:?} {paths:?}");
        let excluded = !tree_of(&ours).iter().any(|(p, _)| p.ends_with("x.tmp"));
        assert_eq!(excluded, i != 1, "{paths:?}");
        let ours = cairn(&base, &["snapshots", "--json", "latest"]).json();
        let theirs: serde_json::Value =
            serde_json::from_str(&restic(&base, &["snapshots", "--json", "latest"])).unwrap();
        assert_eq!(
            first_paths(&ours),
            first_paths(&theirs),
            "{cwd:?} {paths:?}"
        );
    }
    // `backup .` again from the same place: the first one is its parent.
    let first = env.snapshot_ids()[0].clone();
    cairn(&site, &["backup", "--quiet", "."]);
    let snaps = env.run(&["snapshots", "--json"]).json();
    let last = snaps.as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["parent"].as_str(), Some(first.as_str()), "{last}");
}

/// `cairn generate` writes completions bash can load and a man page per command; `version`
/// says which cairn this is.
#[test]
fn generate_completions_and_man_pages_and_version() {
    let env = TestEnv::new();
    let (bash, man) = (env.path("cairn.bash"), env.path("man"));
    env.run(&[
        "generate".as_ref(),
        "--bash-completion".as_ref(),
        bash.as_os_str(),
        "--man".as_ref(),
        man.as_os_str(),
    ])
    .ok();
    let loaded = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!("source {} && complete -p cairn", bash.display()))
        .output()
        .unwrap();
    assert!(
        loaded.status.success() && String::from_utf8_lossy(&loaded.stdout).contains("cairn"),
        "{}",
        String::from_utf8_lossy(&loaded.stderr)
    );
    for page in [
        "cairn.1",
        "cairn-backup.1",
        "cairn-key-add.1",
        "cairn-agent-serve.1",
    ] {
        let text =
            std::fs::read_to_string(man.join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(
            text.starts_with(".ie") || text.contains(".TH"),
            "{page}: {text}"
        );
    }
    let fish = env.run(&["generate", "--fish-completion", "-"]);
    assert!(fish.ok().contains("complete -c cairn"), "{}", fish.stdout);
    let r = env.run(&["generate"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("--bash-completion"), "{}", r.stderr);
    let v = env.run(&["version", "--json"]).json();
    assert_eq!(v["message_type"], "version");
    let version = v["version"].as_str().expect("a version");
    let text = env.run(&["version"]);
    assert!(
        text.ok().starts_with(&format!("cairn {version} on linux/")),
        "{}",
        text.stdout
    );
}

/// Help shows which environment variable sets an option, never its value (a `rest:` location
/// carries a token).
#[test]
fn help_does_not_print_environment_values() {
    let env = TestEnv::at("rest:http://shop:s3cr3t-t0ken@127.0.0.1:9/apps/shop/");
    let help = env.run(&["backup", "--help"]);
    assert!(help.ok().contains("CAIRN_REPOSITORY"), "{}", help.stdout);
    assert!(!help.stdout.contains("s3cr3t-t0ken"), "{}", help.stdout);
}

/// restic's flags people type: `snapshots --latest N`, `--group-by`, `--compact`,
/// `--repository-file`, `backup --files-from` and `--files-from-raw`.
#[test]
fn restic_flags_people_type() {
    let env = TestEnv::with_repo();
    let src = source(&env);
    let s = src.to_str().unwrap();
    for time in [
        "2026-03-01T01:00:00Z",
        "2026-03-02T01:00:00Z",
        "2026-03-03T01:00:00Z",
    ] {
        env.run(&["backup", "--quiet", "--time", time, s]).ok();
    }
    env.run(&["backup", "--quiet", "--host", "other", s]).ok();
    let ids = env.snapshot_ids();

    let latest = env.run(&["snapshots", "--json", "--latest", "1"]).json();
    let mut hosts: Vec<&str> = latest
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["hostname"].as_str().unwrap())
        .collect();
    hosts.sort_unstable();
    assert_eq!(hosts.len(), 2, "{latest}");
    assert!(hosts.contains(&"other"), "{latest}");
    let times: Vec<&str> = latest
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["time"].as_str().unwrap())
        .collect();
    assert!(
        times.iter().any(|t| t.starts_with("2026-03-03")),
        "{latest}"
    );

    let grouped = env
        .run(&["snapshots", "--json", "--group-by", "host"])
        .json();
    let groups = grouped.as_array().unwrap();
    assert_eq!(groups.len(), 2, "{grouped}");
    let sizes: Vec<usize> = groups
        .iter()
        .map(|g| g["snapshots"].as_array().unwrap().len())
        .collect();
    assert_eq!(sizes.iter().sum::<usize>(), 4, "{grouped}");
    assert!(
        groups
            .iter()
            .all(|g| g["group_key"]["hostname"].is_string()),
        "{grouped}"
    );
    let text = env.run(&["snapshots", "--group-by", "host"]);
    assert!(
        text.ok().contains("snapshots for (host other)"),
        "{}",
        text.stdout
    );

    // By time: --as-of for `latest` and lists, --before/--after for `snapshots`.
    let here = env.run(&["snapshots", "--json"]).json()[0]["hostname"]
        .as_str()
        .unwrap()
        .to_owned();
    let count = |args: &[&str]| {
        let mut all = vec!["snapshots", "--json", "--host", &here];
        all.extend(args);
        env.run(&all).json().as_array().unwrap().len()
    };
    assert_eq!(count(&["--as-of", "2026-03-02T12:00:00Z"]), 2);
    assert_eq!(
        count(&["--as-of", "2026-03-02T01:00:00Z"]),
        2,
        "at or before"
    );
    assert_eq!(count(&["--before", "2026-03-02T01:00:00Z"]), 1);
    assert_eq!(count(&["--after", "2026-03-02T01:00:00Z"]), 2);
    assert_eq!(
        count(&["--after", "2026-03-01", "--before", "2026-03-03"]),
        2
    );
    let at = env
        .run(&[
            "snapshots",
            "--json",
            "latest",
            "--as-of",
            "2026-03-02T12:00:00+00:00",
        ])
        .json();
    assert_eq!(at[0]["time"], "2026-03-02T01:00:00Z", "{at}");
    let r = env.run(&["ls", ids[0].as_str(), "--as-of", "2d"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("give `latest`"), "{}", r.stderr);
    let r = env.run(&["ls", "latest", "--as-of", "2025-01-01"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("at or before 2025-"), "{}", r.stderr);
    // A usage error exits 1, as restic's.
    let r = env.run(&["snapshots", "--as-of", "last tuesday"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("is not a time"), "{}", r.stderr);
    assert_eq!(env.run(&["snapshots", "--no-such-flag"]).code, 1);
    assert_eq!(env.run(&["snapshots", "--help"]).code, 0);

    // forget --json: restic's groups of keep, remove and reasons.
    let groups = env
        .run(&[
            "forget",
            "--keep-last",
            "1",
            "--dry-run",
            "--json",
            "--host",
            &here,
        ])
        .json();
    let g = &groups[0];
    assert_eq!(g["host"], here.as_str(), "{groups}");
    assert_eq!(g["keep"].as_array().unwrap().len(), 1, "{groups}");
    assert_eq!(g["remove"].as_array().unwrap().len(), 2, "{groups}");
    assert_eq!(g["keep"][0]["time"], "2026-03-03T01:00:00Z");
    assert!(g["remove"][0]["id"].is_string());
    assert_eq!(g["reasons"][0]["snapshot"]["id"], g["keep"][0]["id"]);
    assert!(
        g["reasons"][0]["matches"].as_array().unwrap().len() == 1,
        "{groups}"
    );
    assert_eq!(env.snapshot_ids().len(), 4, "a dry run");

    let compact = env.run(&["snapshots", "--compact"]);
    let header = compact.ok().lines().next().unwrap().to_owned();
    assert!(
        header.contains("Tags") && !header.contains("Paths"),
        "{header}"
    );

    let location = env.path("repository-location");
    std::fs::write(&location, format!("{}\n", env.repo.display())).unwrap();
    let via_file: cairn_tests::Run = env
        .cmd(&[
            "snapshots".as_ref(),
            "--json".as_ref(),
            "--repository-file".as_ref(),
            location.as_os_str(),
        ])
        .env("CAIRN_REPOSITORY", env.path("nothing-here"))
        .output()
        .unwrap()
        .into();
    assert_eq!(via_file.json().as_array().unwrap().len(), ids.len());
    std::fs::write(&location, "\n").unwrap();
    let empty = env.run(&[
        "snapshots".as_ref(),
        "--repository-file".as_ref(),
        location.as_os_str(),
    ]);
    assert_eq!(empty.code, 1);
    assert!(empty.stderr.contains("is empty"), "{}", empty.stderr);

    // --files-from: globs expanded (white space around a line dropped), one that matches
    // nothing said; --files-from-verbatim: a path with a `*` in its name taken as it is.
    let list = env.path("list");
    std::fs::write(
        &list,
        format!(
            "# what to keep\n\n{}\n  {s}/dir/*.txt  \n{s}/nothing-*\n",
            src.join("a.txt").display(),
        ),
    )
    .unwrap();
    std::fs::write(src.join("dir/star*.tmp"), "literal").unwrap();
    let verbatim = env.path("list-verbatim");
    std::fs::write(&verbatim, format!("{s}/dir/star*.tmp\n")).unwrap();
    let raw = env.path("list0");
    std::fs::write(&raw, format!("{}/dir/cache\0", s)).unwrap();
    let r = env.run(&[
        "backup".as_ref(),
        "--files-from".as_ref(),
        list.as_os_str(),
        "--files-from-verbatim".as_ref(),
        verbatim.as_os_str(),
        "--files-from-raw".as_ref(),
        raw.as_os_str(),
    ]);
    r.ok();
    assert!(
        r.stderr.contains("nothing-*") && r.stderr.contains("matches no file"),
        "{}",
        r.stderr
    );
    let snap = env.run(&["snapshots", "--json", "latest"]).json();
    assert_eq!(
        first_paths(&snap),
        [
            src.join("a.txt").display().to_string(),
            src.join("dir/b.txt").display().to_string(),
            src.join("dir/cache").display().to_string(),
            src.join("dir/star*.tmp").display().to_string(),
        ]
    );
}

/// Include patterns of `restore SNAPSHOT:SUBPATH` apply below the subpath, as restic's: with
/// a leading `/` from its root, with another `/` at any depth, without one by name; a pattern
/// that matches nothing is said.
#[test]
fn restore_patterns_are_anchored_below_the_subpath() {
    let env = TestEnv::with_repo();
    let src = env.path("src");
    for (rel, data) in [
        ("sub/etc/app.yaml", "a"),
        ("sub/etc/nested/deep.conf", "d"),
        ("sub/var/etc/other.yaml", "o"),
        ("sub/top.txt", "t"),
    ] {
        cairn_tests::write_file(&src.join(rel), data.as_bytes());
    }
    let s = src.to_str().unwrap();
    env.run(&["backup", "--quiet", s]).ok();
    let spec = format!("latest:{s}/sub");
    let restored = |name: &str, include: &str| -> (Vec<String>, String) {
        let out = env.path(name);
        let r = env.run(&[
            "restore",
            &spec,
            "--target",
            out.to_str().unwrap(),
            "--include",
            include,
        ]);
        r.ok();
        let files = if out.exists() {
            tree_of(&out).into_iter().map(|(p, _)| p).collect()
        } else {
            Vec::new()
        };
        (files, r.stderr)
    };
    let under_etc = ["etc/app.yaml", "etc/nested/deep.conf"];
    let any_etc = ["etc/app.yaml", "etc/nested/deep.conf", "var/etc/other.yaml"];
    for (dir, include, want) in [
        ("a", "etc/*", &any_etc[..]),
        ("b", "/etc/*", &under_etc[..]),
        ("c", "etc/**", &any_etc[..]),
        ("d", "*.yaml", &["etc/app.yaml", "var/etc/other.yaml"][..]),
        ("e", "/etc", &under_etc[..]),
    ] {
        assert_eq!(restored(dir, include).0, want, "--include {include}");
    }
    let (files, stderr) = restored("f", "/sub/etc/*");
    assert!(files.is_empty(), "{files:?}");
    assert!(
        stderr.contains("--include `/sub/etc/*` matches nothing")
            && stderr.contains(&format!(
                "below /{}",
                format!("{s}/sub").trim_start_matches('/')
            )),
        "{stderr}"
    );
}
