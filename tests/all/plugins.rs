//! Plugins: the store and its CLI, grants, the `dir` and `rest` storage plugins, and the
//! sandbox holding against misbehaving guests (each a component in tests/guests).

use std::ffi::OsStr;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use cairn_plugin_host::{
    Access, CompiledCache, DirGrant, Grants, Manifest, PluginBackend, Runtime,
};
use cairn_repo::{Backend, ErrorKind, FileType};
use cairn_tests::servers::Rclone;
use cairn_tests::{TestEnv, repo_root, wasm};

/// One runtime (one engine, one compiled-code cache) for the in-process tests.
fn runtime() -> Arc<Runtime> {
    static RUNTIME: OnceLock<Arc<Runtime>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            let cache =
                std::env::temp_dir().join(format!("cairn-test-compiled-{}", std::process::id()));
            let key = cache.with_extension("key");
            Runtime::new(Some(CompiledCache::new(cache, key))).expect("runtime")
        })
        .clone()
}

/// Test guest `name` opened as a store with `config` and `grants`.
fn guest(
    name: &str,
    config: &[(&str, &str)],
    grants: &Grants,
) -> cairn_repo::Result<PluginBackend> {
    let manifest = Manifest::load(
        &repo_root()
            .join("tests/guests")
            .join(name)
            .join("plugin.toml"),
    )?;
    let wasm = std::fs::read(wasm(&format!("guest_{name}"))).expect("guest component");
    let rt = runtime();
    let plugin = rt.load(&wasm, manifest)?;
    let config: Vec<(String, String)> = config
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let caps = grants.resolve(&plugin.manifest, &config, "")?;
    PluginBackend::open(rt, &plugin, name, config, caps, 2)
}

/// After a failure the same backend still serves: a write and a listing succeed.
#[track_caller]
fn still_serves(backend: &PluginBackend) {
    let name = format!("{:064x}", rand::random::<u128>());
    backend
        .write(FileType::Snapshot, &name, b"after")
        .expect("write after the failure");
    let listed = backend
        .list(FileType::Snapshot)
        .expect("list after the failure");
    assert!(
        listed.iter().any(|(n, size)| *n == name && *size == 5),
        "{listed:?}"
    );
}

#[test]
fn an_endless_loop_is_stopped_by_the_cpu_limit() {
    let grants = Grants {
        cpu_ms: Some(300),
        ..Grants::default()
    };
    let backend = guest("spin", &[("mode", "cpu")], &grants).unwrap();
    let e = backend.list(FileType::Lock).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Backend);
    let msg = e.to_string();
    assert!(
        msg.contains("plugin `spin`") && msg.contains("CPU limit of 300 ms"),
        "{msg}"
    );
    still_serves(&backend);
}

#[test]
fn a_guest_blocked_in_a_host_call_is_stopped_by_the_wall_clock_limit() {
    let grants = Grants {
        wall_ms: Some(500),
        ..Grants::default()
    };
    let backend = guest("spin", &[("mode", "sleep")], &grants).unwrap();
    let started = std::time::Instant::now();
    let e = backend.list(FileType::Lock).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("plugin `spin`") && msg.contains("wall-clock limit of 0.5 s"),
        "{msg}"
    );
    assert!(
        started.elapsed().as_secs() < 60,
        "the guest asked to sleep an hour"
    );
    still_serves(&backend);
}

#[test]
fn allocating_past_the_memory_cap_fails_that_call_only() {
    let backend = guest("hog", &[], &Grants::default()).unwrap();
    assert_eq!(backend.capabilities().limits.memory, 64 << 20);
    let msg = backend.list(FileType::Lock).unwrap_err().to_string();
    assert!(
        msg.contains("plugin `hog`") && msg.contains("memory limit of 64 MiB"),
        "{msg}"
    );
    still_serves(&backend);
}

#[test]
fn a_panic_is_reported_with_its_message_and_garbage_answers_are_caught() {
    let backend = guest("crash", &[], &Grants::default()).unwrap();
    let msg = backend.list(FileType::Lock).unwrap_err().to_string();
    assert!(
        msg.contains("plugin `crash`") && msg.contains("crashed"),
        "{msg}"
    );
    assert!(
        msg.contains("boom: this guest panics on purpose"),
        "the panic message is kept: {msg}"
    );
    still_serves(&backend);
    let name = format!("{:064x}", 7);
    backend.write(FileType::Pack, &name, &[1; 100]).unwrap();
    let e = backend
        .read_range(FileType::Pack, &name, 10, 20)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    assert!(e.to_string().contains("returned 19 bytes"), "{e}");
}

#[test]
fn paths_outside_the_grant_cannot_be_reached() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("inside.txt"), "granted").unwrap();
    std::fs::write(tmp.path().join("outside.txt"), "not granted").unwrap();
    let grants = Grants {
        dirs: vec![DirGrant {
            path: data.clone(),
            access: Access::ReadOnly,
        }],
        ..Grants::default()
    };
    let backend = guest("escape", &[("path", data.to_str().unwrap())], &grants).unwrap();
    let e = backend.list(FileType::Lock).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Denied, "nothing leaked: {e}");
    let msg = e.to_string();
    for attempt in [
        "read /etc/passwd",
        "read /data/../../etc/passwd",
        "read /data/../outside.txt",
        "write /data/new.txt",
        "write /new.txt",
    ] {
        assert!(msg.contains(attempt), "{attempt} was refused: {msg}");
    }
    assert!(!data.join("new.txt").exists() && !Path::new("/new.txt").exists());
    still_serves(&backend);
}

#[test]
fn http_to_an_authority_not_granted_is_refused_before_a_socket_opens() {
    let granted = TcpListener::bind("127.0.0.1:0").unwrap();
    let other = TcpListener::bind("127.0.0.1:0").unwrap();
    other.set_nonblocking(true).unwrap();
    let granted_url = format!("http://{}/", granted.local_addr().unwrap());
    let other_url = format!("http://{}/", other.local_addr().unwrap());
    let grants = Grants {
        http: vec![granted.local_addr().unwrap().to_string()],
        ..Grants::default()
    };
    let backend = guest(
        "wander",
        &[("url", &granted_url), ("other", &other_url)],
        &grants,
    )
    .unwrap();
    assert_eq!(
        backend.capabilities().http,
        [granted.local_addr().unwrap().to_string()]
    );
    let e = backend.list(FileType::Lock).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Denied, "{e}");
    assert!(e.to_string().contains("not granted to this plugin"), "{e}");
    assert!(
        matches!(other.accept(), Err(ref io) if io.kind() == std::io::ErrorKind::WouldBlock),
        "no connection reached the authority that was not granted"
    );
    still_serves(&backend);
}

#[test]
fn a_manifest_requesting_more_than_granted_is_refused_before_start() {
    let e = guest("greedy", &[], &Grants::default()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Denied);
    assert!(
        e.to_string()
            .contains("plugin `greedy` requests HTTP access to 127.0.0.1:9"),
        "{e}"
    );
    let some = Grants {
        http: vec!["127.0.0.1:9".into()],
        ..Grants::default()
    };
    let e = guest("greedy", &[], &some).unwrap_err().to_string();
    assert!(e.contains("read-only access to /etc"), "{e}");
    let more = Grants {
        http: vec!["127.0.0.1:9".into()],
        dirs: vec![DirGrant {
            path: "/etc".into(),
            access: Access::ReadOnly,
        }],
        ..Grants::default()
    };
    let e = guest("greedy", &[], &more).unwrap_err().to_string();
    assert!(
        e.contains("memory-mib = 4096, more than the 256 granted"),
        "{e}"
    );
}

/// Compiled code in the cache is native code: a file this host did not write and
/// authenticate is never loaded. Another plugin's compiled code put under a plugin's name, or
/// a changed byte, is recompiled (the file rewritten); a cache others may write is not used.
#[test]
fn the_compiled_cache_loads_only_what_this_host_wrote() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("compiled");
    let cache = CompiledCache::new(&dir, tmp.path().join("store/compiled-cache.key"));
    let load = |name: &str| {
        let manifest = Manifest::load(
            &repo_root()
                .join("tests/guests")
                .join(name)
                .join("plugin.toml"),
        )
        .unwrap();
        let wasm = std::fs::read(wasm(&format!("guest_{name}"))).unwrap();
        let rt = Runtime::new(Some(cache.clone())).unwrap();
        rt.load(&wasm, manifest).unwrap();
        cairn_plugin_host::digest(&wasm)
    };
    let file = |digest: &str| {
        let hex = digest.trim_start_matches("sha256:");
        dir.read_dir()
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.file_name().unwrap().to_string_lossy().starts_with(hex))
            .expect("cached")
    };
    let (a, b) = (load("crash"), load("liar"));
    let (fa, fb) = (file(&a), file(&b));
    let theirs = std::fs::read(&fb).unwrap();
    assert!(
        !dir.join("compiled-cache.key").exists(),
        "the key is not in the cache"
    );
    // Plugin b's compiled code under a's name: not loaded, recompiled, rewritten.
    std::fs::write(&fa, &theirs).unwrap();
    load("crash");
    assert_ne!(
        std::fs::read(&fa).unwrap(),
        theirs,
        "b's code was taken for a's"
    );
    // One byte changed.
    let mut bytes = std::fs::read(&fa).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 1;
    std::fs::write(&fa, &bytes).unwrap();
    load("crash");
    assert_ne!(
        std::fs::read(&fa).unwrap(),
        bytes,
        "a changed file was loaded"
    );
    // A cache directory others may write: not used at all.
    std::fs::remove_file(&fa).unwrap();
    std::fs::set_permissions(&dir, PermissionsExt::from_mode(0o777)).unwrap();
    load("crash");
    assert!(!fa.exists(), "a world-writable cache was used");
}

#[test]
fn the_plugin_store_installs_lists_inspects_and_removes() {
    let env = TestEnv::with_plugins();
    let out = env.install_plugin("dir").ok().to_owned();
    assert!(
        out.contains("installed dir 0.1.0 (storage-backend) sha256:"),
        "{out}"
    );
    assert!(out.contains("read-write dir config:path at /repo"), "{out}");
    assert!(
        env.path("cache/compiled").read_dir().unwrap().count() >= 1,
        "install caches the compiled code"
    );
    env.install_plugin("rest").ok();

    let list = env.run(&["plugin", "list", "--json"]).json();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    // The first-party plugins are built in; `rest` (the same component) was not recorded.
    assert_eq!(
        names,
        ["dir", "http-dump", "http-hook", "kubelet", "nomad", "rest"]
    );
    assert!(list[5]["digest"].as_str().unwrap().starts_with("sha256:"));
    assert_eq!(list[0]["source"], "installed");
    assert_eq!(list[5]["source"], "builtin");

    env.configure(
        "[plugins.offsite]\nplugin = \"rest\"\n[plugins.offsite.config]\nurl = \"http://127.0.0.1:1/r/\"\n\
         user = \"backup\"\npassword = \"hunter2-very-secret\"\n[plugins.offsite.grant]\nhttp = [\"127.0.0.1:1\"]\n",
    );
    let inspect = env.run(&["plugin", "inspect", "rest", "--json"]);
    assert!(
        !inspect.stdout.contains("hunter2") && !inspect.stderr.contains("hunter2"),
        "{}",
        inspect.stdout
    );
    let v = inspect.json();
    assert_eq!(v["world"], "cairn:plugin/storage-backend@0.1.0");
    assert!(
        v["exports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e == "cairn:plugin/store@0.1.0")
    );
    assert!(v["imports"].as_array().unwrap().iter().any(|i| {
        i.as_str()
            .unwrap()
            .starts_with("wasi:http/outgoing-handler")
    }));
    assert_eq!(v["instances"][0]["config"]["password"], "<redacted>");
    assert_eq!(v["instances"][0]["config"]["user"], "backup");
    let text = env.run(&["plugin", "inspect", "rest"]).ok().to_owned();
    assert!(
        text.contains("password (secret)")
            && text.contains("<redacted>")
            && !text.contains("hunter2"),
        "{text}"
    );

    // Inspecting a file works without installing it.
    let file = wasm("cairn_plugin_dir");
    let manifest = repo_root().join("plugins/dir/plugin.toml");
    let v = env
        .run(&[
            "plugin",
            "inspect",
            file.to_str().unwrap(),
            "--manifest",
            manifest.to_str().unwrap(),
            "--json",
        ])
        .json();
    assert_eq!(v["name"], "dir");

    env.run(&["plugin", "remove", "dir"]).ok();
    let list = env.run(&["plugin", "list", "--json"]).json();
    assert_eq!(list.as_array().unwrap().len(), 5, "{list}");
    let blobs = env.path("plugins/blobs").read_dir().unwrap().count();
    assert_eq!(blobs, 0, "the removed plugin's component is gone");
    let r = env.run(&["plugin", "remove", "dir"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("no plugin `dir` is installed"),
        "{}",
        r.stderr
    );
}

/// The first-party plugins are usable with no install; installing one of their names takes
/// `--override-builtin` unless it is the same component, and removing the override brings the
/// built-in one back.
#[test]
fn built_in_plugins_need_no_install_and_are_overridden_only_when_asked() {
    let env = TestEnv::with_plugins();
    let source = |name: &str| -> (String, String) {
        let list = env.run(&["plugin", "list", "--json"]).json();
        let p = list
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("{name} is listed: {list}"))
            .clone();
        (
            p["source"].as_str().unwrap().to_owned(),
            p["digest"].as_str().unwrap().to_owned(),
        )
    };
    let (kind, builtin) = source("kubelet");
    assert_eq!(kind, "builtin");
    let text = env.run(&["plugin", "inspect", "kubelet"]).ok().to_owned();
    assert!(text.contains("source:      builtin"), "{text}");

    // The very component that is built in: nothing to record.
    let out = env.install_plugin("kubelet").ok().to_owned();
    assert!(out.contains("is built in: nothing to install"), "{out}");
    assert!(!env.path("plugins/installed/kubelet.toml").exists());

    // Another component under a built-in name.
    let manifest = env.path("kubelet.toml");
    let liar = std::fs::read_to_string(repo_root().join("tests/guests/liar/plugin.toml")).unwrap();
    std::fs::write(
        &manifest,
        liar.replace("name = \"liar\"", "name = \"kubelet\""),
    )
    .unwrap();
    let other = wasm("guest_liar");
    let install = |extra: &[&str]| {
        let mut args = vec![
            "plugin",
            "install",
            other.to_str().unwrap(),
            "--manifest",
            manifest.to_str().unwrap(),
        ];
        args.extend(extra);
        env.run(&args)
    };
    let r = install(&[]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(
        r.stderr.contains("is built into cairn") && r.stderr.contains("--override-builtin"),
        "{}",
        r.stderr
    );
    assert_eq!(source("kubelet"), ("builtin".to_owned(), builtin.clone()));
    let out = install(&["--override-builtin"]).ok().to_owned();
    assert!(out.contains("instead of the built-in one"), "{out}");
    let (kind, digest) = source("kubelet");
    assert_eq!(kind, "installed");
    assert_ne!(digest, builtin);

    env.run(&["plugin", "remove", "kubelet"]).ok();
    assert_eq!(source("kubelet"), ("builtin".to_owned(), builtin));
    let r = env.run(&["plugin", "remove", "kubelet"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("built into cairn and cannot be removed"),
        "{}",
        r.stderr
    );
}

#[test]
fn install_refuses_what_is_not_a_cairn_plugin() {
    let env = TestEnv::with_plugins();
    let refused = |file: &Path, manifest: &Path, needles: &[&str]| {
        let r = env.run(&[
            OsStr::new("plugin"),
            OsStr::new("install"),
            file.as_os_str(),
            OsStr::new("--manifest"),
            manifest.as_os_str(),
        ]);
        assert_eq!(r.code, 1, "{}", r.stdout);
        for needle in needles {
            assert!(r.stderr.contains(needle), "{needle}: {}", r.stderr);
        }
    };
    let manifest = repo_root().join("tests/guests/stranger/plugin.toml");
    refused(
        &wasm("guest_stranger"),
        &manifest,
        &["not a cairn plugin", "example:stranger/api"],
    );
    let junk = env.path("junk.wasm");
    std::fs::write(&junk, b"\0asm\x01\0\0\0").unwrap();
    refused(&junk, &manifest, &["core WebAssembly module"]);
    std::fs::write(&junk, b"hello").unwrap();
    refused(&junk, &manifest, &["not WebAssembly"]);
    // A manifest that names another world than the component implements.
    let lying = env.path("lying.toml");
    let dir_manifest =
        std::fs::read_to_string(repo_root().join("plugins/dir/plugin.toml")).unwrap();
    std::fs::write(
        &lying,
        dir_manifest
            .replace("storage-backend", "volume-discovery")
            .replace("location = true\n", ""),
    )
    .unwrap();
    refused(
        &wasm("cairn_plugin_dir"),
        &lying,
        &["says it is a volume-discovery plugin"],
    );
    // Nothing was installed: only the built-in plugins are listed.
    let list = env.run(&["plugin", "list", "--json"]).json();
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .all(|p| p["source"] == "builtin"),
        "{list}"
    );
}

#[test]
fn a_plugin_repository_needs_its_grants_and_settings() {
    let env = TestEnv::with_plugins();
    env.install_plugin("dir").ok();
    let repo = env.path("repo");
    let mut env = env;
    env.repo = PathBuf::from("plugin:dir");
    // No grant at all.
    let r = env.run(&["-o", &format!("path={}", repo.display()), "snapshots"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains(&format!(
            "plugin `dir` requests read-write access to {}",
            repo.display()
        )),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("grant"),
        "the error says where to grant it: {}",
        r.stderr
    );
    // A missing setting, an unknown one.
    let r = env.run(&["snapshots"]);
    assert!(
        r.code == 1 && r.stderr.contains("needs the setting `path`"),
        "{}",
        r.stderr
    );
    let r = env.run(&["-o", "paht=/x", "snapshots"]);
    assert!(
        r.code == 1 && r.stderr.contains("no setting `paht`"),
        "{}",
        r.stderr
    );
    // An instance whose plugin is not installed.
    env.configure("[plugins.offsite]\nplugin = \"nothing\"\n");
    env.repo = PathBuf::from("plugin:offsite");
    let r = env.run(&["snapshots"]);
    assert!(
        r.code == 1 && r.stderr.contains("no plugin `nothing` is installed"),
        "{}",
        r.stderr
    );
    // An instance that the configuration file lacks: said so, with the table to add.
    env.repo = PathBuf::from("plugin:elsewhere");
    let r = env.run(&["snapshots"]);
    assert!(
        r.code == 1
            && r.stderr.contains("has no [plugins.elsewhere] table")
            && r.stderr.contains("plugin = \"dir\""),
        "{}",
        r.stderr
    );
}

fn rest_env(extra: &[&str]) -> (TestEnv, Rclone) {
    let env = TestEnv::with_plugins();
    env.install_plugin("rest").ok();
    let mut args = vec!["--user", "cairn", "--pass", "rest-secret-pw"];
    args.extend_from_slice(extra);
    let server = Rclone::start_with("restic", &env.path("served"), &args);
    env.configure(&format!(
        "[plugins.offsite]\nplugin = \"rest\"\n[plugins.offsite.config]\nurl = \"http://127.0.0.1:{port}/repo/\"\n\
         user = \"cairn\"\npassword = \"rest-secret-pw\"\n[plugins.offsite.grant]\nhttp = [\"127.0.0.1:{port}\"]\n",
        port = server.port
    ));
    let mut env = env;
    env.repo = PathBuf::from("plugin:offsite");
    (env, server)
}

#[test]
fn rest_plugin_round_trips_through_rclone_serve_restic() {
    let (env, _server) = rest_env(&[]);
    let init = env.init();
    init.ok();
    assert!(
        init.stderr
            .contains("does not refuse a second write of the same name"),
        "init warns that REST cannot enforce create-only: {}",
        init.stderr
    );
    let src = env.path("src");
    std::fs::create_dir_all(src.join("d")).unwrap();
    std::fs::write(src.join("d/f.bin"), vec![7u8; 3 << 20]).unwrap();
    std::fs::write(src.join("small.txt"), "over REST").unwrap();
    env.backup(&[&src]);
    std::fs::write(src.join("small.txt"), "over REST, again").unwrap();
    env.backup(&[&src]);
    assert_eq!(env.snapshot_ids().len(), 2);
    env.run(&["check", "--read-data"]).ok();
    let out = env.restore_verified("out");
    let restored = out.join(src.strip_prefix("/").unwrap());
    assert_eq!(
        std::fs::read_to_string(restored.join("small.txt")).unwrap(),
        "over REST, again"
    );
    assert!(
        env.path("served/repo/config").exists(),
        "the server holds the repository"
    );
    // Forget and prune delete through the plugin.
    env.run(&["forget", "--keep-last", "1", "--prune"]).ok();
    assert_eq!(env.snapshot_ids().len(), 1);
    env.run(&["check"]).ok();

    // The plugin's log reaches the host's, tagged with the instance; no secret in it.
    let r = env.run(&["-vv", "snapshots"]);
    r.ok();
    assert!(
        r.stderr.contains("REST store at http://127.0.0.1") && r.stderr.contains("offsite"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("rest-secret-pw"), "{}", r.stderr);
    // A wrong password for the server is a clear error, never showing the password.
    env.configure(
        &std::fs::read_to_string(env.path("cairn.toml"))
            .unwrap()
            .replace("rest-secret-pw", "wrong-pw-123"),
    );
    let r = env.run(&["snapshots"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("HTTP 401") && r.stderr.contains("check the user and password"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("wrong-pw-123"), "{}", r.stderr);
}

#[test]
fn rest_plugin_on_an_append_only_server_backs_up_but_cannot_delete() {
    let (env, _server) = rest_env(&["--append-only"]);
    env.init().ok();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a"), "one").unwrap();
    env.backup(&[&src]);
    std::fs::write(src.join("a"), "two").unwrap();
    env.backup(&[&src]);
    let ids = env.snapshot_ids();
    assert_eq!(ids.len(), 2);
    let r = env.run(&["forget", &ids[0]]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(
        r.stderr.contains("plugin `offsite` removing snapshot") && r.stderr.contains("HTTP 403"),
        "{}",
        r.stderr
    );
    assert_eq!(env.snapshot_ids().len(), 2, "nothing was deleted");
    env.run(&["check", "--read-data"]).ok();
}

/// The round trip every directory-store plugin passes, whatever language it is written in:
/// init, two backups, check with data, verified restore, forget with prune, and the native
/// local backend reading what the plugin wrote.
fn directory_store_round_trip(plugin: &str) {
    let env = TestEnv::with_store_plugin(plugin);
    let src = env.path("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(
        src.join("sub/big.bin"),
        (0..(3u32 << 20))
            .map(|i| (i * 7 % 251) as u8)
            .collect::<Vec<u8>>(),
    )
    .unwrap();
    std::fs::write(src.join("note.txt"), format!("written through {plugin}")).unwrap();
    env.backup(&[&src]);
    std::fs::write(src.join("note.txt"), "changed").unwrap();
    env.backup(&[&src]);
    env.run(&["check", "--read-data"]).ok();
    let out = env.restore_verified("out");
    let restored = out.join(src.strip_prefix("/").unwrap());
    assert_eq!(
        std::fs::read_to_string(restored.join("note.txt")).unwrap(),
        "changed"
    );
    env.run(&["forget", "--keep-last", "1", "--prune"]).ok();
    assert_eq!(env.snapshot_ids().len(), 1);
    let native = TestEnv {
        repo: env.root.clone(),
        root: env.root.clone(),
        password: env.password.clone(),
        ..TestEnv::new()
    };
    assert_eq!(native.snapshot_ids(), env.snapshot_ids());
    native.run(&["check", "--read-data"]).ok();
}

#[test]
fn the_rust_dir_plugin_passes_the_round_trip() {
    directory_store_round_trip("dir");
}

#[test]
fn a_storage_plugin_written_in_c_passes_the_round_trip() {
    directory_store_round_trip("dir-c");
}

#[test]
fn a_storage_plugin_written_in_python_passes_the_round_trip() {
    directory_store_round_trip("dir-py");
}

#[test]
fn a_storage_plugin_written_in_javascript_passes_the_round_trip() {
    directory_store_round_trip("dir-js");
}
