//! Repositories in Azure Blob Storage (Azurite on loopback).

use cairn_tests::TestEnv;
use cairn_tests::servers::Azurite;

#[test]
fn azure_round_trip_and_create_only() {
    let dir = tempfile::tempdir().unwrap();
    let server = Azurite::start(&dir.path().join("azurite"));
    server.create_container("backups");
    let env = TestEnv::at("az://backups/cairn/repo");
    let run = |args: &[&str]| -> cairn_tests::Run {
        env.cmd(args)
            .env("AZURE_STORAGE_USE_EMULATOR", "true")
            .env("AZURITE_BLOB_STORAGE_URL", server.url())
            .output()
            .unwrap()
            .into()
    };
    let init = run(&[
        "init",
        "--kdf-memory",
        "1024",
        "--kdf-iterations",
        "1",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(init.ok().trim()).unwrap();
    assert_eq!(
        v["atomic_create"], true,
        "Azure refuses a second create: {}",
        init.stderr
    );
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(
        src.join("a.bin"),
        cairn_testing::fixture::random_bytes(1_500_000, 8),
    )
    .unwrap();
    std::fs::write(src.join("b.txt"), "azure").unwrap();
    run(&["backup", "--quiet", src.to_str().unwrap()]).ok();
    run(&["backup", "--quiet", src.to_str().unwrap()]).ok();
    let out = env.path("out");
    run(&[
        "restore",
        "latest",
        "--target",
        out.to_str().unwrap(),
        "--verify",
    ])
    .ok();
    let check: serde_json::Value =
        serde_json::from_str(run(&["check", "--read-data", "--json"]).ok().trim()).unwrap();
    assert_eq!(check["errors"], 0, "{check}");
    assert_eq!(run(&["init"]).code, 1, "the place holds a repository");
}
