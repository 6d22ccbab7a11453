//! Repositories in a real S3 server (SeaweedFS on loopback).

use std::sync::{Arc, Barrier};

use cairn_repo::{Backend, ErrorKind, FileType};
use cairn_testing::fixture::random_bytes;
use cairn_tests::TestEnv;
use cairn_tests::servers::{Seaweed, bucket, shared_seaweed};

fn s3(location: &str) -> cairn_backend::ObjectBackend {
    use cairn_tests::servers::{S3_KEY, S3_SECRET};
    cairn_backend::ObjectBackend::s3(
        location,
        &cairn_backend::RemoteOptions::default().keys(S3_KEY, S3_SECRET),
    )
    .unwrap()
}

fn source(env: &TestEnv, files: u64, size: usize) -> std::path::PathBuf {
    let src = env.path("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    for i in 0..files {
        std::fs::write(src.join(format!("sub/f{i}.bin")), random_bytes(size, i)).unwrap();
    }
    std::fs::write(src.join("text.txt"), "hello s3\n".repeat(1000)).unwrap();
    src
}

/// `cairn backup --json SRC` running, its output piped.
fn spawn_backup(env: &TestEnv, src: &std::path::Path) -> std::process::Child {
    env.cmd(&["backup", "--json", src.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn init_backup_restore_check_round_trip() {
    let server = shared_seaweed();
    let env = TestEnv::at(&server.location(&bucket("roundtrip"), "repos/one"));
    let init = env.init_with(&["--json"]).json();
    assert_eq!(
        init["atomic_create"], true,
        "SeaweedFS enforces If-None-Match: {init}"
    );
    let src = source(&env, 6, 700_000);
    let first = env.backup(&[&src]);
    assert_eq!(first["files_new"], 7);
    let second = env.backup(&[&src]);
    assert_eq!(
        second["data_blobs"], 0,
        "nothing new on an unchanged re-backup"
    );
    let out = env.restore_verified("out");
    let restored = out.join(src.strip_prefix("/").unwrap());
    assert_eq!(
        std::fs::read(restored.join("sub/f3.bin")).unwrap(),
        random_bytes(700_000, 3)
    );
    let check = env.run(&["check", "--read-data", "--json"]).json();
    assert_eq!(check["errors"], 0, "{check}");
    assert_eq!(env.snapshot_ids().len(), 2);
    // init refuses a place that holds a repository.
    let again = env.init();
    assert_eq!(again.code, 1);
    assert!(again.stderr.contains("not empty"), "{}", again.stderr);
}

#[test]
fn racing_writers_never_replace_an_object() {
    let server = shared_seaweed();
    let location = server.location(&bucket("race"), "r");
    let backend: Arc<dyn Backend> = Arc::new(s3(&location));
    backend.create().unwrap();
    assert!(backend.guarantees().atomic_create);
    for key in 0..12u8 {
        let name = format!("{key:02x}{}", "ab".repeat(31));
        let barrier = Arc::new(Barrier::new(8));
        let winners: Vec<(usize, bool)> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|t| {
                    let (backend, barrier, name) = (backend.clone(), barrier.clone(), name.clone());
                    s.spawn(move || {
                        barrier.wait();
                        match backend.write(FileType::Pack, &name, format!("writer {t}").as_bytes())
                        {
                            Ok(()) => (t, true),
                            Err(e) => {
                                assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
                                (t, false)
                            }
                        }
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let won: Vec<usize> = winners.iter().filter(|w| w.1).map(|w| w.0).collect();
        assert_eq!(
            won.len(),
            1,
            "exactly one writer of {name} wins: {winners:?}"
        );
        assert_eq!(
            backend.read(FileType::Pack, &name).unwrap(),
            format!("writer {}", won[0]).as_bytes()
        );
    }
}

#[test]
fn wrong_credentials_fail_clearly() {
    let server = shared_seaweed();
    let env = TestEnv::at(&server.location(&bucket("creds"), "repo"));
    env.init().ok();
    let r: cairn_tests::Run = env
        .cmd(&["snapshots"])
        .env("AWS_SECRET_ACCESS_KEY", "not-the-secret")
        .output()
        .unwrap()
        .into();
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("SignatureDoesNotMatch"), "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!("127.0.0.1:{}", server.s3_port)),
        "names the store: {}",
        r.stderr
    );
    assert!(
        !r.stderr.contains(cairn_tests::servers::S3_SECRET),
        "no secret in errors"
    );
}

/// Keys from `~/.aws/credentials` (the profile `AWS_PROFILE` names, else `default`) when the
/// environment has none; a profile that is not there, or a wrong secret in it, fails clearly.
#[test]
fn credentials_from_the_aws_shared_files() {
    use cairn_tests::servers::{S3_KEY, S3_SECRET};
    let server = shared_seaweed();
    let env = TestEnv::at(&server.location(&bucket("profiles"), "repo"));
    let home = env.path("home");
    std::fs::create_dir_all(home.join(".aws")).unwrap();
    std::fs::write(
        home.join(".aws/credentials"),
        format!(
            "[default]\naws_access_key_id = {S3_KEY}\naws_secret_access_key = {S3_SECRET}\n\n\
             [stale]\naws_access_key_id = {S3_KEY}\naws_secret_access_key = stale-secret-42\n"
        ),
    )
    .unwrap();
    let run = |args: &[&str], profile: Option<&str>| -> cairn_tests::Run {
        let mut c = env.cmd(args);
        c.env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env("HOME", &home);
        if let Some(p) = profile {
            c.env("AWS_PROFILE", p);
        }
        c.output().unwrap().into()
    };
    let init = run(
        &["init", "--kdf-memory", "1024", "--kdf-iterations", "1"],
        None,
    );
    assert_eq!(init.code, 0, "{}", init.stderr);
    let src = source(&env, 2, 10_000);
    let backup = run(&["backup", "--json", src.to_str().unwrap()], None);
    assert_eq!(backup.code, 0, "{}", backup.stderr);
    assert_eq!(backup.last_json()["files_new"], 3);
    let missing = run(&["snapshots"], Some("nightly"));
    assert_eq!(missing.code, 1, "{}", missing.stderr);
    assert!(
        missing.stderr.contains("`nightly`") && missing.stderr.contains("AWS_PROFILE"),
        "{}",
        missing.stderr
    );
    let stale = run(&["snapshots"], Some("stale"));
    assert_eq!(stale.code, 1, "{}", stale.stderr);
    assert!(
        stale.stderr.contains("SignatureDoesNotMatch"),
        "{}",
        stale.stderr
    );
    for r in [&init, &backup, &missing, &stale] {
        assert!(!r.stderr.contains(S3_SECRET) && !r.stderr.contains("stale-secret-42"));
        assert!(!r.stdout.contains(S3_SECRET));
    }
}

#[test]
fn server_killed_mid_backup_then_the_next_backup_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Seaweed::start(&dir.path().join("seaweed"));
    let env = TestEnv::at(&server.location("resume", "repo"));
    env.init_with(&["--pack-size", "1M"]).ok();
    let src = source(&env, 24, 4 << 20);
    let total: u64 = 24 * (4 << 20);
    let mut backup = spawn_backup(&env, &src);
    // Let some packs land, then kill the server.
    let backend = s3(&server.location("resume", "repo"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while backend.list(FileType::Pack).map(|l| l.len()).unwrap_or(0) < 8 {
        assert!(
            std::time::Instant::now() < deadline,
            "no packs were uploaded"
        );
        assert!(
            backup.try_wait().unwrap().is_none(),
            "the backup ended before the server was killed"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    server.kill();
    let out = backup.wait_with_output().unwrap();
    assert_ne!(out.status.code(), Some(0), "the backup must fail");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("error:") && !stderr.contains("panicked"),
        "{stderr}"
    );
    server.restart();
    let env2 = TestEnv::at(&server.location("resume", "repo"));
    assert!(
        env2.snapshot_ids().is_empty(),
        "no snapshot from the failed backup"
    );
    let summary = env2.backup(&[&src]);
    let added = summary["data_added"].as_u64().unwrap();
    assert!(
        added < total - (4 << 20),
        "uploaded packs were not re-used: added {added} of {total}"
    );
    let check = env2.run(&["check", "--read-data", "--json"]).json();
    assert_eq!(check["errors"], 0, "{check}");
}

#[test]
fn local_cache_of_small_files() {
    let server = shared_seaweed();
    let env = TestEnv::at(&server.location(&bucket("cache"), "repo"));
    let cache = env.path("cache");
    let c = cache.to_str().unwrap();
    env.init_with(&["--cache-dir", c]).ok();
    let src = source(&env, 2, 300_000);
    for _ in 0..2 {
        env.run(&[
            "backup",
            "--quiet",
            "--force",
            "--cache-dir",
            c,
            src.to_str().unwrap(),
        ])
        .ok();
    }
    let repo_cache = std::fs::read_dir(&cache)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let files = |dir: &str| -> Vec<std::path::PathBuf> {
        let mut v: Vec<_> = std::fs::read_dir(repo_cache.join(dir))
            .map(|rd| rd.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        v.sort();
        v
    };
    assert_eq!(files("snapshots").len(), 2);
    assert!(!files("index").is_empty() && files("keys").len() == 1);
    // Tree packs are cached (the backup read its parent's trees), and only they.
    let tree_packs: Vec<String> = env
        .run(&["list", "packs", "--no-cache"])
        .ok()
        .lines()
        .filter(|id| {
            let header = env.run(&["cat", "pack", id, "--no-cache"]).json();
            header["blobs"]
                .as_array()
                .unwrap()
                .iter()
                .all(|b| b["type"] == "tree")
        })
        .map(str::to_owned)
        .collect();
    env.run(&["ls", &env.snapshot_ids()[0], "--cache-dir", c])
        .ok();
    let cached_packs: Vec<String> = files("data")
        .iter()
        .map(|p| p.file_name().unwrap().to_str().unwrap().to_owned())
        .collect();
    assert!(!cached_packs.is_empty(), "tree packs are cached");
    for p in &cached_packs {
        assert!(
            tree_packs.contains(p),
            "{p} is not a tree pack: {tree_packs:?}"
        );
    }
    // A damaged tree pack in the cache is noticed and fetched again.
    let tree_pack = files("data")[0].clone();
    std::fs::write(&tree_pack, b"garbage").unwrap();
    let ls = env
        .run(&["ls", &env.snapshot_ids()[0], "--cache-dir", c])
        .ok()
        .to_owned();
    assert!(ls.contains("text.txt"), "{ls}");
    assert_eq!(
        cairn_repo::Id::hash_of(&std::fs::read(&tree_pack).unwrap()).to_hex(),
        tree_pack.file_name().unwrap().to_str().unwrap(),
        "the tree pack was healed"
    );
    // A damaged cache entry is noticed (hash ≠ name) and fetched again.
    let snap = files("snapshots")[0].clone();
    std::fs::write(&snap, b"garbage").unwrap();
    let listed = env.run(&["snapshots", "--json", "--cache-dir", c]).json();
    assert_eq!(listed.as_array().unwrap().len(), 2);
    assert_eq!(
        cairn_repo::Id::hash_of(&std::fs::read(&snap).unwrap()).to_hex(),
        snap.file_name().unwrap().to_str().unwrap(),
        "the entry was healed"
    );
    // What forget removes leaves the cache too.
    let first = listed[0]["id"].as_str().unwrap().to_owned();
    env.run(&["forget", "--cache-dir", c, &first]).ok();
    env.run(&["snapshots", "--cache-dir", c]).ok();
    assert_eq!(files("snapshots").len(), 1);
    // The cache can go at any time; --no-cache makes none.
    std::fs::remove_dir_all(&cache).unwrap();
    env.run(&["check", "--cache-dir", c]).ok();
    assert!(cache.exists());
    std::fs::remove_dir_all(&cache).unwrap();
    env.run(&["check", "--no-cache", "--cache-dir", c]).ok();
    assert!(!cache.exists());
}

#[test]
fn https_with_a_private_ca() {
    let dir = tempfile::tempdir().unwrap();
    let server = Seaweed::start_tls(&dir.path().join("tls"));
    let location = format!("s3:https://127.0.0.1:{}/tls/repo", server.https_port);
    let env = TestEnv::at(&location);
    let ca = server.ca_pem();
    let ca = ca.to_str().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", server.https_port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "no https listener");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // Without the CA the server's certificate is refused, with a clear error.
    let r = env.init();
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.to_lowercase().contains("certificate"),
        "{}",
        r.stderr
    );
    env.init_with(&["--ca-cert", ca]).ok();
    let src = source(&env, 1, 100_000);
    env.run(&["backup", "--quiet", "--ca-cert", ca, src.to_str().unwrap()])
        .ok();
    let r: cairn_tests::Run = env
        .cmd(&["check", "--read-data"])
        .env("CAIRN_CA_CERT", ca)
        .output()
        .unwrap()
        .into();
    r.ok();
    let bad = env.path("not-a-cert.pem");
    std::fs::write(&bad, "hello").unwrap();
    let r = env.run(&["snapshots", "--ca-cert", bad.to_str().unwrap()]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("PEM"), "{}", r.stderr);
}

#[test]
fn large_packs_go_up_in_parts_with_bounded_memory() {
    let server = shared_seaweed();
    let location = server.location(&bucket("multipart"), "repo");
    let env = TestEnv::at(&location);
    let init = env.init_with(&["--pack-size", "512M", "--json"]).json();
    assert_eq!(
        init["atomic_create"], true,
        "SeaweedFS refuses a conditional multipart completion too: {init}"
    );
    let src = env.path("big");
    std::fs::create_dir_all(&src).unwrap();
    let size = 320 << 20;
    std::fs::write(src.join("file.bin"), random_bytes(size, 7)).unwrap();
    let (out, peak) = env.backup_watching_memory(&src);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // One pack of the whole file, never held in memory: it went through a temporary file and
    // up in 16 MiB parts.
    let packs = s3(&location).list(FileType::Pack).unwrap();
    assert!(
        packs.iter().any(|(_, len)| *len > size as u64),
        "one pack holds the file: {packs:?}"
    );
    assert!(
        peak > 0 && peak < 200 << 20,
        "a 320 MiB pack was uploaded with a peak RSS of {} MiB",
        peak >> 20
    );
    let out = env.restore_verified("out");
    let restored = out.join(src.strip_prefix("/").unwrap()).join("file.bin");
    assert!(std::fs::read(restored).unwrap() == random_bytes(size, 7));
    let check = env.run(&["check", "--read-data", "--json"]).json();
    assert_eq!(check["errors"], 0, "{check}");
}

#[test]
fn a_multipart_upload_never_replaces_a_stored_object() {
    let server = shared_seaweed();
    let location = server.location(&bucket("race-multipart"), "r");
    let backend: Arc<dyn Backend> = Arc::new(s3(&location));
    backend.create().unwrap();
    let name = "cd".repeat(32);
    // Each writer's pack outgrows memory, so each commit is a multipart upload.
    let bodies: Vec<Vec<u8>> = (0..4).map(|t| random_bytes(40 << 20, 100 + t)).collect();
    let barrier = Arc::new(Barrier::new(bodies.len()));
    let results: Vec<bool> = std::thread::scope(|s| {
        let handles: Vec<_> = bodies
            .iter()
            .map(|body| {
                let (backend, barrier, name) = (backend.clone(), barrier.clone(), name.clone());
                s.spawn(move || {
                    let mut w = backend
                        .writer(FileType::Pack)
                        .unwrap()
                        .expect("S3 streams packs");
                    for piece in body.chunks(1 << 20) {
                        w.write(piece).unwrap();
                    }
                    barrier.wait();
                    match w.commit(&name) {
                        Ok(()) => true,
                        Err(e) => {
                            assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
                            false
                        }
                    }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    // SeaweedFS checks the condition of a completion without serializing completions, so two
    // that race within milliseconds can both succeed (seen under load: 2 of 4). What holds:
    // at least one completes, the object is exactly one winner's body (never a mix of
    // parts), and once it exists no completion replaces it. A pack's name is the hash of its
    // bytes, so racing writers of one name hold the same bytes and the race loses nothing.
    let won: Vec<usize> = (0..results.len()).filter(|&i| results[i]).collect();
    assert!(!won.is_empty(), "an upload completes: {results:?}");
    let stored = backend.read(FileType::Pack, &name).unwrap();
    let kept = won
        .iter()
        .copied()
        .find(|&i| stored == bodies[i])
        .unwrap_or_else(|| panic!("the object is one winner's body ({results:?})"));
    // A later upload of the same name is refused as well, and leaves the object as it was.
    let mut late = backend.writer(FileType::Pack).unwrap().unwrap();
    late.write(&random_bytes(40 << 20, 999)).unwrap();
    assert_eq!(
        late.commit(&name).unwrap_err().kind(),
        ErrorKind::AlreadyExists
    );
    assert!(backend.read(FileType::Pack, &name).unwrap() == bodies[kept]);
}
