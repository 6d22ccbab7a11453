//! The built-in `rest:` backend against a real `rclone serve restic` on loopback, with HTTP
//! basic auth: the whole life of a repository, credentials from the URL or the environment,
//! refused credentials that are never shown, and an append-only server.

use std::path::{Path, PathBuf};

use cairn_testing::fixture::random_bytes;
use cairn_tests::TestEnv;
use cairn_tests::servers::Rclone;

const USER: &str = "cairn";
const PASS: &str = "rest-Secret-4711";

/// `rclone serve restic` over `dir/served` with the test credentials and `extra` flags.
fn server(dir: &Path, extra: &[&str]) -> Rclone {
    let mut args = vec!["--user", USER, "--pass", PASS];
    args.extend_from_slice(extra);
    Rclone::start_with("restic", &dir.join("served"), &args)
}

/// An environment for the repository `repo/` on `server`, with `userinfo` (`USER:PASS@` or
/// nothing) in its URL, and a cache.
fn env_on(server: &Rclone, userinfo: &str) -> TestEnv {
    let mut env = TestEnv::at(&format!(
        "rest:http://{userinfo}127.0.0.1:{}/repo/",
        server.port
    ));
    let cache = env.path("cache");
    env.envs.push(("CAIRN_CACHE_DIR".into(), cache.into()));
    env
}

fn source(env: &TestEnv) -> PathBuf {
    let src = env.path("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("big.bin"), random_bytes(5 << 20, 1)).unwrap();
    for i in 0..5 {
        std::fs::write(
            src.join(format!("sub/f{i}.bin")),
            random_bytes(300_000, 10 + i),
        )
        .unwrap();
    }
    std::fs::write(src.join("note.txt"), "over REST\n").unwrap();
    src
}

/// The latest snapshot restores to exactly `src`, and `check --read-data` finds nothing.
fn restores_exactly_and_checks_clean(env: &TestEnv, src: &Path) {
    let out = env.restore_verified("out");
    let restored = out.join(src.strip_prefix("/").unwrap());
    assert!(
        tree(&restored) == tree(src),
        "the restore equals the source"
    );
    let check = env.run(&["check", "--read-data", "--json"]).json();
    assert_eq!(check["errors"], 0, "{check}");
}

/// Every file below `dir` with its bytes, by path relative to `dir`.
fn tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let path = e.path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path.strip_prefix(root).unwrap().to_owned();
                out.push((rel, std::fs::read(&path).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

#[test]
fn rest_repository_lives_through_init_backups_restore_check_and_prune() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path(), &[]);
    let env = env_on(&server, &format!("{USER}:{PASS}@"));

    let init = env.init();
    init.ok();
    assert!(
        init.stderr.contains("does not refuse a second write"),
        "REST has no conditional create: {}",
        init.stderr
    );
    assert!(!init.stderr.contains(PASS), "{}", init.stderr);
    let location = format!("rest:http://127.0.0.1:{}/repo/", server.port);
    assert!(init.stderr.contains(&location), "{}", init.stderr);
    assert!(dir.path().join("served/repo/config").exists());

    let src = source(&env);
    let first = env.backup(&[&src]);
    assert_eq!(first["files_new"], 7, "{first}");
    std::fs::write(src.join("note.txt"), "over REST, again\n").unwrap();
    let second = env.backup(&[&src]);
    assert_eq!(second["files_new"], 0, "{second}");
    assert_eq!(second["files_changed"], 1, "{second}");
    assert_eq!(env.snapshot_ids().len(), 2);

    restores_exactly_and_checks_clean(&env, &src);

    let r = env.run(&["forget", "--keep-last", "1", "--prune"]);
    r.ok();
    assert_eq!(env.snapshot_ids().len(), 1);
    env.run(&["check", "--read-data"]).ok();
    let out = env.restore_verified("out2");
    assert!(tree(&out.join(src.strip_prefix("/").unwrap())) == tree(&src));

    // The location is never shown with its password, not even in debug logs.
    let r = env.run(&["-vv", "snapshots"]);
    r.ok();
    assert!(
        !r.stderr.contains(PASS) && !r.stdout.contains(PASS),
        "{}",
        r.stderr
    );

    // A place that holds a repository is not made into another one.
    let again = env.init();
    assert_eq!(again.code, 1, "{}", again.stderr);
    assert!(again.stderr.contains("not empty"), "{}", again.stderr);
    assert!(!again.stderr.contains(PASS), "{}", again.stderr);
}

#[test]
fn rest_credentials_come_from_the_environment_and_refusals_never_show_them() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path(), &[]);
    let mut env = env_on(&server, "");
    env.envs.push(("CAIRN_REST_USERNAME".into(), USER.into()));
    env.envs.push(("CAIRN_REST_PASSWORD".into(), PASS.into()));
    env.init().ok();
    let src = source(&env);
    env.backup(&[&src]);
    assert_eq!(env.snapshot_ids().len(), 1);

    // A wrong password, from the environment and from the URL.
    let wrong = "Wrong-Pass-0815";
    env.envs.retain(|(k, _)| k != "CAIRN_REST_PASSWORD");
    env.envs.push(("CAIRN_REST_PASSWORD".into(), wrong.into()));
    let in_url = env_on(&server, &format!("{USER}:{wrong}@"));
    for env in [&env, &in_url] {
        for args in [
            &["snapshots"][..],
            &["-vv", "backup", src.to_str().unwrap()],
        ] {
            let r = env.run(args);
            assert_ne!(r.code, 0, "{args:?}: {}", r.stdout);
            assert!(
                r.stderr.contains("refused the credentials")
                    && r.stderr.contains("CAIRN_REST_USERNAME")
                    && r.stderr.contains("CAIRN_REST_PASSWORD"),
                "{args:?}: {}",
                r.stderr
            );
            assert!(
                !r.stderr.contains(wrong) && !r.stdout.contains(wrong),
                "{args:?}: {}",
                r.stderr
            );
            assert!(!r.stderr.contains(PASS), "{args:?}: {}", r.stderr);
        }
    }

    // None at all.
    let none = env_on(&server, "");
    let r = none.run(&["snapshots"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("without credentials"), "{}", r.stderr);

    // Credentials in the URL win over the environment's.
    let mut both = env_on(&server, &format!("{USER}:{PASS}@"));
    both.envs.push(("CAIRN_REST_PASSWORD".into(), wrong.into()));
    assert_eq!(both.snapshot_ids().len(), 1);
}

#[test]
fn rest_on_an_append_only_server_backs_up_but_removes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path(), &["--append-only"]);
    let env = env_on(&server, &format!("{USER}:{PASS}@"));
    env.init().ok();
    let src = source(&env);
    env.backup(&[&src]);
    std::fs::write(src.join("note.txt"), "two").unwrap();
    env.backup(&[&src]);
    let ids = env.snapshot_ids();
    assert_eq!(ids.len(), 2);
    let r = env.run(&["forget", &ids[0]]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(
        r.stderr.contains("refused to remove") && r.stderr.contains("append-only"),
        "{}",
        r.stderr
    );
    assert_eq!(env.snapshot_ids().len(), 2, "nothing was removed");
    env.run(&["check", "--read-data"]).ok();
}

/// `cairn cache` lists the repository's cache (marked as the current one) beside an old one,
/// and `--cleanup` removes only the old one.
#[test]
fn cache_lists_the_caches_and_cleans_up_old_ones() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path(), &[]);
    let env = env_on(&server, &format!("{USER}:{PASS}@"));
    env.init().ok();
    let src = source(&env);
    env.run(&["backup", "--quiet", src.to_str().unwrap()]).ok();
    let cache = env.path("cache");
    let old = cache.join("ab".repeat(32));
    std::fs::create_dir_all(old.join("snapshots")).unwrap();
    std::fs::write(old.join("snapshots/x"), [1u8; 1000]).unwrap();
    std::fs::File::open(&old)
        .unwrap()
        .set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(40 * 86_400))
        .unwrap();
    std::fs::create_dir_all(cache.join("not-a-cache")).unwrap();

    let list = env.run(&["cache", "--json"]).json();
    let caches = list.as_array().unwrap();
    assert_eq!(caches.len(), 2, "{list}");
    assert_eq!(caches[0]["current"], true, "{list}");
    assert_eq!(caches[0]["old"], false, "{list}");
    assert!(caches[0]["size"].as_u64().unwrap() > 0, "{list}");
    assert_eq!(caches[1]["id"], "ab".repeat(32));
    assert_eq!(caches[1]["old"], true);
    assert_eq!(caches[1]["size"], 1000);
    let text = env.run(&["cache"]);
    assert!(
        text.stderr.contains("cairn cache --cleanup"),
        "{}",
        text.stderr
    );
    assert!(!text.stdout.contains(PASS) && !text.stderr.contains(PASS));

    let out = env.run(&["cache", "--cleanup"]).ok().to_owned();
    assert!(out.contains("removed 1 old caches"), "{out}");
    assert!(!old.exists());
    assert!(cache.join("not-a-cache").exists());
    let list = env.run(&["cache", "--json", "--no-size"]).json();
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert!(list[0]["size"].is_null());
    env.run(&["snapshots"]).ok();
}

/// Packs of up to 32 MiB are held in memory until they are sent; a larger one is spooled to a
/// temporary file and sent from it, with memory bounded all the same.
#[test]
fn packs_in_memory_and_a_pack_spooled_to_a_file_both_arrive_whole() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path(), &[]);
    let env = env_on(&server, &format!("{USER}:{PASS}@"));
    env.init_with(&["--pack-size", "256M"]).ok();
    let src = env.path("big");
    std::fs::create_dir_all(&src).unwrap();
    let size = 160 << 20;
    std::fs::write(src.join("file.bin"), random_bytes(size, 3)).unwrap();
    std::fs::write(src.join("small.bin"), random_bytes(3 << 20, 4)).unwrap();
    let (out, peak) = env.backup_watching_memory(&src);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let packs: Vec<u64> = std::fs::read_dir(dir.path().join("served/repo/data"))
        .unwrap()
        .flat_map(|d| std::fs::read_dir(d.unwrap().path()).unwrap())
        .map(|f| f.unwrap().metadata().unwrap().len())
        .collect();
    assert!(
        packs.iter().any(|len| *len > size as u64),
        "one pack holds the big file: {packs:?}"
    );
    assert!(
        peak > 0 && peak < 140 << 20,
        "a 160 MiB pack was sent with a peak RSS of {} MiB",
        peak >> 20
    );
    restores_exactly_and_checks_clean(&env, &src);
}
