//! copy: a second copy in another repository with another password.

use cairn_testing::fixture::random_bytes;
use cairn_tests::TestEnv;

/// A source repository with two snapshots of a small tree.
fn source() -> (TestEnv, std::path::PathBuf) {
    let env = TestEnv::with_repo();
    let src = env.path("src");
    std::fs::create_dir_all(src.join("d")).unwrap();
    for i in 0..6 {
        std::fs::write(src.join(format!("d/f{i}.bin")), random_bytes(700_000, i)).unwrap();
    }
    std::fs::write(src.join("note.txt"), "v1").unwrap();
    back_up(&env, &src, &["--time", "2026-03-01T01:00:00Z"]);
    std::fs::write(src.join("note.txt"), "v2").unwrap();
    back_up(&env, &src, &["--time", "2026-03-02T01:00:00Z"]);
    (env, src)
}

/// A backup of the source tree `src` as [`source`] makes them, with `extra` arguments.
fn back_up(env: &TestEnv, src: &std::path::Path, extra: &[&str]) {
    let mut args = vec![
        "backup",
        "--quiet",
        "--tag",
        "nightly",
        "--app",
        "ns/db/data",
    ];
    args.extend_from_slice(extra);
    args.push(src.to_str().unwrap());
    env.run(&args).ok();
}

/// A destination with its own password and the source's chunker parameters.
fn destination(src: &TestEnv) -> TestEnv {
    let mut dst = TestEnv::new();
    dst.password = "another password".into();
    let pw = dst.path("from-pw");
    std::fs::write(&pw, &src.password).unwrap();
    dst.init_with(&[
        "--copy-chunker-params",
        "--from-repo",
        src.repo.to_str().unwrap(),
        "--from-password-file",
        pw.to_str().unwrap(),
    ])
    .ok();
    dst
}

fn copy(dst: &TestEnv, src: &TestEnv, extra: &[&str]) -> cairn_tests::Run {
    let pw = dst.path("from-pw");
    let mut args = vec![
        "copy",
        "--json",
        "--from-repo",
        src.repo.to_str().unwrap(),
        "--from-password-file",
        pw.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    dst.run(&args)
}

#[test]
fn copy_twice_the_second_adds_nothing() {
    let (src_env, src) = source();
    let dst = destination(&src_env);
    let first = copy(&dst, &src_env, &["--all"]).json();
    assert_eq!(first["copied"].as_array().unwrap().len(), 2, "{first}");
    assert!(first["blobs_added"].as_u64().unwrap() >= 7);
    let second = copy(&dst, &src_env, &["--all"]).json();
    assert_eq!(second["copied"].as_array().unwrap().len(), 0, "{second}");
    assert_eq!(second["skipped"].as_array().unwrap().len(), 2);
    assert_eq!(second["blobs_added"], 0);
    assert_eq!(second["blobs_read"], 0);

    let a = src_env.run(&["snapshots", "--json"]).json();
    let b = dst.run(&["snapshots", "--json"]).json();
    for (x, y) in a.as_array().unwrap().iter().zip(b.as_array().unwrap()) {
        for field in ["time", "hostname", "paths", "tags", "app"] {
            assert_eq!(x[field], y[field], "{field}");
        }
        assert_eq!(y["original"], x["id"]);
    }
    dst.run(&["check", "--read-data"]).ok();
    let out = dst.restore_verified("out");
    let restored = out.join(src.strip_prefix("/").unwrap());
    assert_eq!(
        std::fs::read_to_string(restored.join("note.txt")).unwrap(),
        "v2"
    );
    assert_eq!(
        std::fs::read(restored.join("d/f3.bin")).unwrap(),
        random_bytes(700_000, 3)
    );

    // A new source snapshot with one changed file: only that file's data is read. The new
    // content is below the minimum chunk size (512 KiB), so it is one blob whatever the
    // repository's chunker seed (700,000 bytes split in two under some seeds).
    std::fs::write(src.join("d/f0.bin"), random_bytes(400_000, 99)).unwrap();
    back_up(&src_env, &src, &[]);
    let third = copy(&dst, &src_env, &["latest"]).json();
    assert_eq!(third["copied"].as_array().unwrap().len(), 1);
    assert_eq!(
        third["blobs_read"], 1,
        "only the changed file is read: {third}"
    );
    dst.run(&["check", "--read-data"]).ok();
}

/// Into a repository of a plain `init` (another seed) whose largest chunk is smaller than the
/// source's chunks: the copy works with a warning saying how to get full deduplication; the
/// long chunks are stored in pieces the destination accepts.
#[test]
fn copy_across_chunker_parameters_warns_and_copies() {
    let (src_env, src) = source();
    let plain = TestEnv::new();
    plain.init_with(&["--chunker", "16K/64K/256K"]).ok();
    std::fs::write(plain.path("from-pw"), &src_env.password).unwrap();
    let r = copy(&plain, &src_env, &["--all"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("chunk differently") && r.stderr.contains("--copy-chunker-params"),
        "{}",
        r.stderr
    );
    let report = r.json();
    assert_eq!(report["copied"].as_array().unwrap().len(), 2, "{report}");
    // Six files of 700,000 bytes, one or two source chunks each, in pieces of at most 256 KiB.
    assert!(report["blobs_added"].as_u64().unwrap() >= 6 * 3, "{report}");
    plain.run(&["check", "--read-data"]).ok();
    let out = plain.restore_verified("out");
    let restored = out.join(src.strip_prefix("/").unwrap());
    for i in 0..6 {
        assert_eq!(
            std::fs::read(restored.join(format!("d/f{i}.bin"))).unwrap(),
            random_bytes(700_000, i)
        );
    }
    let again = copy(&plain, &src_env, &["--all"]).json();
    assert_eq!(again["blobs_read"], 0, "{again}");
    // A new file beside the split ones: only it is read (the split files were learnt from the
    // earlier copy, piece by piece).
    std::fs::write(src.join("d/new.bin"), random_bytes(400_000, 77)).unwrap();
    back_up(&src_env, &src, &[]);
    let third = copy(&plain, &src_env, &["latest"]).json();
    assert_eq!(third["copied"].as_array().unwrap().len(), 1, "{third}");
    assert_eq!(third["blobs_read"], 1, "{third}");
    plain.run(&["check", "--read-data"]).ok();
}

#[test]
fn copy_refuses_a_wrong_source_password() {
    let (src_env, _) = source();
    let dst = destination(&src_env);
    std::fs::write(dst.path("from-pw"), "not the source password").unwrap();
    let r = copy(&dst, &src_env, &["--all"]);
    assert_eq!(r.code, 12, "{}", r.stderr);
    assert!(
        r.stderr.contains("source repository") && r.stderr.contains(src_env.repo.to_str().unwrap()),
        "{}",
        r.stderr
    );
    let r = dst.run(&[
        "copy",
        "--from-repo",
        src_env.repo.to_str().unwrap(),
        "--from-insecure-no-password",
    ]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("--all"), "{}", r.stderr);
}

#[test]
fn copy_dry_run_writes_nothing() {
    let (src_env, _) = source();
    let dst = destination(&src_env);
    let files = (
        dst.repo_files("data"),
        dst.repo_files("snapshots"),
        dst.repo_files("index"),
    );
    let r = copy(&dst, &src_env, &["--all", "--dry-run"]).json();
    assert_eq!(r["copied"].as_array().unwrap().len(), 2);
    assert!(r["copied"][0][1].is_null());
    assert_eq!(
        (
            dst.repo_files("data"),
            dst.repo_files("snapshots"),
            dst.repo_files("index")
        ),
        files
    );
}
