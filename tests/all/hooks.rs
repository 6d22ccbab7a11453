//! Apps and their hooks: `http-hook` and `http-dump` against an HTTP server on 127.0.0.1,
//! hooks strictly bracketing the read of the app's volumes (and the restore), a dump cut
//! short failing its snapshot, and each app's hooks holding only that app's grants.

use std::path::PathBuf;

use cairn_tests::TestEnv;
use cairn_tests::app_server::{Answer, AppServer};
use cairn_tests::node::Node;
use serde_json::Value;

const UID_SHOP: &str = "7b1d2e3f-4a5b-4c6d-8e9f-0000000000d4";
const UID_BLOG: &str = "8c2e3f4a-5b6c-4d7e-9f0a-0000000000e5";

/// An environment with the kubelet, http-hook and http-dump plugins, a fake node with one
/// pod in `shop` and one in `blog` (one emptyDir each), and an initialized repository.
/// `apps` is the `[apps.*]` part of the configuration.
fn env_with(apps: &str) -> (TestEnv, Node, PathBuf, PathBuf) {
    let mut env = TestEnv::with_plugins();
    for p in ["kubelet", "http-hook", "http-dump"] {
        env.install_plugin(p).ok();
    }
    let node = Node::new(env.path("node"));
    let shop = node
        .pod("/var/lib/kubelet", "shop", "web-0", UID_SHOP, true)
        .volume("kubernetes.io~empty-dir", "cache", "c.bin");
    let blog = node
        .pod("/var/lib/kubelet", "blog", "ghost-0", UID_BLOG, true)
        .volume("kubernetes.io~empty-dir", "content", "post.md");
    env.envs
        .push(("CAIRN_HOST_ROOT".into(), node.root.clone().into()));
    env.configure(&format!(
        "[plugins.kubelet.grant]\ndirs = [{{ path = \"{}\" }}]\n{apps}",
        node.root.display()
    ));
    env.init().ok();
    (env, node, shop, blog)
}

/// The JSON lines of a run's stdout.
fn lines(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

/// The volume identities of every snapshot in the repository.
fn volumes(env: &TestEnv) -> Vec<String> {
    let snaps = env.run(&["snapshots", "--json"]).json();
    let mut v: Vec<String> = snaps
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["volume"].as_str().map(str::to_owned))
        .collect();
    v.sort();
    v
}

/// Restores the latest snapshot of `volume` into a new directory.
fn restored(env: &TestEnv, volume: &str) -> PathBuf {
    let target = env.path(&format!("restored/{}", volume.replace('/', "_")));
    env.run(&[
        "restore".as_ref(),
        "latest".as_ref(),
        "--volume".as_ref(),
        volume.as_ref(),
        "--target".as_ref(),
        target.as_os_str(),
    ])
    .ok();
    target
}

fn export(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 251) as u8).collect()
}

#[test]
fn hooks_bracket_the_backup_and_the_dump_is_streamed_into_it() {
    let volume_dir = std::sync::Arc::new(std::sync::Mutex::new(PathBuf::new()));
    let dir = volume_dir.clone();
    let server = AppServer::start(move |r| {
        let volume = dir.lock().unwrap().clone();
        match (r.method.as_str(), r.path.as_str()) {
            // Entering maintenance mode flushes the app's state into its volume.
            ("POST", "/maintenance/on") => {
                std::fs::write(volume.join("flushed.txt"), b"flushed by pre-backup").unwrap();
                Answer::Full(200, b"on".to_vec())
            }
            ("POST", "/maintenance/off") => {
                std::fs::write(volume.join("after.txt"), b"written after").unwrap();
                Answer::Full(204, Vec::new())
            }
            ("GET", "/export") => Answer::Full(200, export(3 << 20)),
            ("POST", "/restore/start" | "/restore/done") => Answer::Full(200, Vec::new()),
            _ => Answer::Full(404, b"no such endpoint".to_vec()),
        }
    });
    let url = server.url();
    let port = server.port;
    let (env, _node, shop, _blog) = env_with(&format!(
        r#"
[apps.shop]
volumes = ["k8s/shop/**"]
[[apps.shop.hooks]]
plugin = "http-hook"
timeout = "20s"
config = {{ url = "{url}", pre-backup = "/maintenance/on", post-backup = "/maintenance/off", pre-restore = "/restore/start", post-restore = "/restore/done", token = "s3cr3t-token" }}
grant = {{ http = ["127.0.0.1:{port}"] }}
[[apps.shop.hooks]]
plugin = "http-dump"
config = {{ url = "{url}/export", file = "db/export.bin" }}
grant = {{ http = ["127.0.0.1:{port}"] }}
"#
    ));
    *volume_dir.lock().unwrap() = shop.clone();

    let run = env.run(&["backup", "--json", "--for-app", "shop", "-v"]);
    let out = run.ok();
    assert_eq!(
        server.calls(),
        [
            "POST /maintenance/on",
            "GET /export",
            "POST /maintenance/off"
        ]
    );
    assert!(!run.stderr.contains("s3cr3t-token") && !out.contains("s3cr3t-token"));
    let post = &server.requests()[2].json();
    assert_eq!(post["phase"], "post-backup");
    assert_eq!(post["targets"], serde_json::json!(["k8s/shop/web-0/cache"]));
    assert_eq!(post["outcome"]["success"], true, "{post}");

    // The volume was read after the pre hook and before the post hook.
    let cache = restored(&env, "k8s/shop/web-0/cache");
    assert_eq!(
        std::fs::read(cache.join("flushed.txt")).unwrap(),
        b"flushed by pre-backup"
    );
    assert!(!cache.join("after.txt").exists());
    // The dump is its own snapshot, whole, at the path the hook named.
    let dump = restored(&env, "apps/shop/db/export.bin");
    assert_eq!(
        std::fs::read(dump.join("db/export.bin")).unwrap(),
        export(3 << 20)
    );
    assert_eq!(
        volumes(&env),
        ["apps/shop/db/export.bin", "k8s/shop/web-0/cache"]
    );

    // The hooks' results: in the app's summary line, and the pre-backup ones in the
    // volume's snapshot.
    let all = lines(out);
    let app = all.iter().find(|l| l["message_type"] == "app").unwrap();
    assert_eq!(app["success"], true);
    let runs: Vec<(String, String, bool)> = app["hooks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["hook"].as_str().unwrap().to_owned(),
                h["phase"].as_str().unwrap().to_owned(),
                h["success"].as_bool().unwrap(),
            )
        })
        .collect();
    let expected: Vec<(String, String, bool)> = [
        ("http-hook", "pre-backup"),
        ("http-dump", "pre-backup"),
        ("http-hook", "post-backup"),
        ("http-dump", "post-backup"),
    ]
    .iter()
    .map(|(h, p)| ((*h).to_owned(), (*p).to_owned(), true))
    .collect();
    assert_eq!(runs, expected);
    let snaps = env
        .run(&["snapshots", "--json", "--volume", "k8s/shop/web-0/cache"])
        .json();
    let hooks = &snaps[0]["summary"]["hooks"];
    assert_eq!(hooks[0]["hook"], "http-hook");
    assert_eq!(hooks[0]["details"]["status"], "200", "{hooks}");
    assert_eq!(
        hooks[1]["details"]["bytes"],
        (3 << 20).to_string(),
        "{hooks}"
    );
    assert_eq!(snaps[0]["app"], "shop");
    // `latest` among several volumes' snapshots names them and asks for one.
    let r = env.run(&["ls", "latest"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(
        r.stderr.contains("`latest` is ambiguous") && r.stderr.contains("--volume"),
        "{}",
        r.stderr
    );

    // A restore for the app runs its restore hooks around it.
    let target = env.path("new-pod-cache");
    env.run(&[
        "restore".as_ref(),
        "latest".as_ref(),
        "--volume".as_ref(),
        "k8s/shop/web-0/cache".as_ref(),
        "--target".as_ref(),
        target.as_os_str(),
        "--for-app".as_ref(),
        "shop".as_ref(),
    ])
    .ok();
    let calls = server.calls();
    assert_eq!(calls[3..], ["POST /restore/start", "POST /restore/done"]);
    let done = server.requests()[4].json();
    assert_eq!(done["outcome"]["success"], true, "{done}");
    assert!(target.join("flushed.txt").is_file());
}

#[test]
fn a_dump_cut_short_fails_its_snapshot_and_post_hooks_still_run() {
    let server = AppServer::start(|r| match r.path.as_str() {
        "/export" => Answer::CutShort {
            length: 2 << 20,
            sent: 1 << 20,
        },
        _ => Answer::Full(200, Vec::new()),
    });
    let url = server.url();
    let port = server.port;
    let (env, _node, _shop, _blog) = env_with(&format!(
        r#"
[apps.shop]
volumes = ["k8s/shop/**"]
[[apps.shop.hooks]]
plugin = "http-dump"
config = {{ url = "{url}/export", file = "export.bin" }}
grant = {{ http = ["127.0.0.1:{port}"] }}
[[apps.shop.hooks]]
plugin = "http-hook"
config = {{ url = "{url}", post-backup = "/after" }}
grant = {{ http = ["127.0.0.1:{port}"] }}
"#
    ));
    let run = env.run(&["backup", "--json", "--for-app", "shop"]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(run.stderr.contains("app `shop`"), "{}", run.stderr);
    assert!(run.stderr.contains("after 1048576 bytes"), "{}", run.stderr);
    for internal in ["hyper", "ErrorCode", "Debug"] {
        assert!(!run.stderr.contains(internal), "{}", run.stderr);
    }
    // No dump was saved, and the volumes were not read without their dump.
    assert_eq!(volumes(&env), Vec::<String>::new());
    // The post hook ran and was told.
    assert_eq!(server.calls(), ["GET /export", "POST /after"]);
    let after = server.requests()[1].json();
    assert_eq!(after["outcome"]["success"], false);
    assert!(
        after["outcome"]["message"]
            .as_str()
            .unwrap()
            .contains("http-dump"),
        "{after}"
    );
    let app = lines(&run.stdout)
        .into_iter()
        .find(|l| l["message_type"] == "app")
        .unwrap();
    assert_eq!(app["success"], false);

    // A hook whose endpoint answers an unexpected status fails the same way.
    let url2 = server.url();
    env.configure(&format!(
        "[plugins.kubelet.grant]\ndirs = [{{ path = \"{}\" }}]\n\
         [apps.shop]\nvolumes = [\"k8s/shop/**\"]\n[[apps.shop.hooks]]\nplugin = \"http-hook\"\n\
         config = {{ url = \"{url2}\", pre-backup = \"/on\", expect = \"204\" }}\n\
         grant = {{ http = [\"127.0.0.1:{port}\"] }}\n",
        env.path("node").display()
    ));
    let run = env.run(&["backup", "--for-app", "shop"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("answered 200, not 204"),
        "{}",
        run.stderr
    );
    assert_eq!(volumes(&env), Vec::<String>::new());

    // With `on-error = "continue"`, the volumes are backed up, and the cut-short dump is
    // still not kept.
    env.configure(&format!(
        "[plugins.kubelet.grant]\ndirs = [{{ path = \"{}\" }}]\n\
         [apps.shop]\nvolumes = [\"k8s/shop/**\"]\n[[apps.shop.hooks]]\nplugin = \"http-dump\"\n\
         on-error = \"continue\"\nconfig = {{ url = \"{url2}/export\", file = \"export.bin\" }}\n\
         grant = {{ http = [\"127.0.0.1:{port}\"] }}\n",
        env.path("node").display()
    ));
    env.run(&["backup", "--for-app", "shop"]).ok();
    assert_eq!(volumes(&env), ["k8s/shop/web-0/cache"]);

    // An app that does not listen: said in words, not as WASI's or hyper's names.
    let closed = cairn_tests::servers::free_ports(1)[0];
    env.configure(&format!(
        "[plugins.kubelet.grant]\ndirs = [{{ path = \"{}\" }}]\n\
         [apps.shop]\nvolumes = [\"k8s/shop/**\"]\n[[apps.shop.hooks]]\nplugin = \"http-hook\"\n\
         config = {{ url = \"http://127.0.0.1:{closed}\", pre-backup = \"/on\" }}\n\
         grant = {{ http = [\"127.0.0.1:{closed}\"] }}\n",
        env.path("node").display()
    ));
    let run = env.run(&["backup", "--for-app", "shop"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("the connection was refused"),
        "{}",
        run.stderr
    );
    for internal in ["hyper", "ErrorCode"] {
        assert!(!run.stderr.contains(internal), "{}", run.stderr);
    }
}

/// Each app's hooks run with that app's grants only: shop's hook cannot reach blog's server,
/// a hook without its grant stops its app before anything runs, and the other app is backed
/// up all the same, with only its own volumes.
#[test]
fn each_app_runs_in_its_own_sandbox() {
    let shop_server = AppServer::start(|_| Answer::Full(200, Vec::new()));
    let blog_server = AppServer::start(|_| Answer::Full(200, Vec::new()));
    let (shop_port, blog_port) = (shop_server.port, blog_server.port);
    let blog_url = blog_server.url();
    let apps = |shop_url: &str, shop_grant: &str| {
        format!(
            r#"
[apps.shop]
volumes = ["k8s/shop/**"]
[[apps.shop.hooks]]
plugin = "http-hook"
config = {{ url = "{shop_url}", pre-backup = "/steal" }}
{shop_grant}
[apps.blog]
[[apps.blog.hooks]]
plugin = "http-hook"
config = {{ url = "{blog_url}", pre-backup = "/on", post-backup = "/off" }}
grant = {{ http = ["127.0.0.1:{blog_port}"] }}
"#
        )
    };
    // shop's grant names only its own server; its config points at blog's.
    let (env, node, _shop, _blog) = env_with(&apps(
        &blog_url,
        &format!("grant = {{ http = [\"127.0.0.1:{shop_port}\"] }}"),
    ));
    let run = env.run(&["backup", "--all-apps"]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(
        run.stderr.contains("app `shop`")
            && run.stderr.contains(&format!(
                "HTTP access to 127.0.0.1:{blog_port}, which is not granted"
            )),
        "{}",
        run.stderr
    );
    assert_eq!(
        blog_server.calls(),
        ["POST /on", "POST /off"],
        "shop never reached blog"
    );
    assert_eq!(volumes(&env), ["k8s/blog/ghost-0/content"]);
    let snaps = env.run(&["snapshots", "--json", "--app", "blog"]).json();
    assert_eq!(snaps.as_array().unwrap().len(), 1);

    // Without its grant, shop's hook is refused before anything runs; blog runs again.
    let config = format!(
        "[plugins.kubelet.grant]\ndirs = [{{ path = \"{}\" }}]\n{}",
        node.root.display(),
        apps(&shop_server.url(), "")
    );
    env.configure(&config);
    let run = env.run(&["backup", "--all-apps"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("app `shop`, hook 1 (`http-hook`)")
            && run.stderr.contains(&format!(
                "HTTP access to 127.0.0.1:{shop_port}, which is not granted"
            )),
        "{}",
        run.stderr
    );
    assert_eq!(blog_server.calls().len(), 4);
    assert_eq!(shop_server.calls().len(), 0);
    assert_eq!(
        volumes(&env),
        ["k8s/blog/ghost-0/content", "k8s/blog/ghost-0/content"]
    );
}

/// A hook slower than its timeout is stopped; with `on-error = "continue"` the app's volumes
/// are backed up all the same and the failure is reported.
#[test]
fn a_slow_hook_times_out_and_on_error_continue_carries_on() {
    let server = AppServer::start(|r| {
        if r.path == "/slow" {
            std::thread::sleep(std::time::Duration::from_secs(5));
        }
        Answer::Full(200, Vec::new())
    });
    let url = server.url();
    let port = server.port;
    let (env, _node, _shop, _blog) = env_with(&format!(
        r#"
[apps.shop]
volumes = ["k8s/shop/**"]
[[apps.shop.hooks]]
plugin = "http-hook"
on-error = "continue"
timeout = "1s"
config = {{ url = "{url}", pre-backup = "/slow" }}
grant = {{ http = ["127.0.0.1:{port}"] }}
"#
    ));
    let run = env.run(&["backup", "--json", "--for-app", "shop"]);
    let out = run.ok();
    assert!(
        run.stderr.contains("wall-clock limit of 1 s"),
        "{}",
        run.stderr
    );
    assert_eq!(volumes(&env), ["k8s/shop/web-0/cache"]);
    let app = lines(out)
        .into_iter()
        .find(|l| l["message_type"] == "app")
        .unwrap();
    assert_eq!(app["success"], true);
    assert_eq!(app["hooks"][0]["success"], false);
}

/// An app with its own repository and password: its volumes go there, and nowhere else.
#[test]
fn an_app_backs_up_into_its_own_repository() {
    let mut env = TestEnv::with_plugins();
    env.install_plugin("kubelet").ok();
    let node = Node::new(env.path("node"));
    node.pod("/var/lib/kubelet", "shop", "web-0", UID_SHOP, true)
        .volume("kubernetes.io~empty-dir", "cache", "c.bin");
    node.pod("/var/lib/kubelet", "blog", "ghost-0", UID_BLOG, true)
        .volume("kubernetes.io~empty-dir", "content", "post.md");
    env.envs
        .push(("CAIRN_HOST_ROOT".into(), node.root.clone().into()));
    let blog_repo = env.path("blog-repo");
    let blog_pass = env.path("blog.pass");
    std::fs::write(&blog_pass, "blog's own password\n").unwrap();
    env.configure(&format!(
        "[plugins.kubelet.grant]\ndirs = [{{ path = \"{}\" }}]\n\
         [apps.shop]\nvolumes = [\"k8s/shop/**\"]\n\
         [apps.blog]\nrepository = \"{}\"\npassword-file = \"{}\"\n",
        node.root.display(),
        blog_repo.display(),
        blog_pass.display()
    ));
    env.init().ok();
    env.init_with(&[
        "-r",
        blog_repo.to_str().unwrap(),
        "--password-file",
        blog_pass.to_str().unwrap(),
    ])
    .ok();

    env.run(&["backup", "--all-apps"]).ok();
    assert_eq!(volumes(&env), ["k8s/shop/web-0/cache"]);
    let blog = env
        .run(&[
            "snapshots".as_ref(),
            "--json".as_ref(),
            "-r".as_ref(),
            blog_repo.as_os_str(),
            "--password-file".as_ref(),
            blog_pass.as_os_str(),
        ])
        .json();
    let in_blog: Vec<&str> = blog
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["volume"].as_str().unwrap())
        .collect();
    assert_eq!(in_blog, ["k8s/blog/ghost-0/content"]);
    // The default password does not open blog's repository.
    let run = env.run(&["snapshots".as_ref(), "-r".as_ref(), blog_repo.as_os_str()]);
    assert_eq!(run.code, 12, "{}", run.stderr);
}

/// An app may be only a dump: it needs no discovery plugin (backing up discovered volumes
/// does, and says so).
#[test]
fn an_app_of_only_a_dump_needs_no_discovery() {
    let server = AppServer::start(|_| Answer::Full(200, export(100_000)));
    let env = TestEnv::with_plugins();
    env.install_plugin("http-dump").ok();
    env.configure(&format!(
        "[apps.db]\n[[apps.db.hooks]]\nplugin = \"http-dump\"\n\
         config = {{ url = \"{}/export\", file = \"dumps/db.sql\" }}\n\
         grant = {{ http = [\"127.0.0.1:{}\"] }}\n",
        server.url(),
        server.port
    ));
    env.init().ok();
    env.run(&["backup", "--for-app", "db"]).ok();
    assert_eq!(volumes(&env), ["apps/db/dumps/db.sql"]);
    // Stored under the path the hook gave, with its size counted.
    let snap = env.run(&["snapshots", "--json", "latest"]).json();
    assert_eq!(snap[0]["paths"][0], "/dumps/db.sql", "{snap}");
    assert_eq!(
        snap[0]["summary"]["total_bytes_processed"], 100_000,
        "{snap}"
    );
    let dump = restored(&env, "apps/db/dumps/db.sql");
    assert_eq!(
        std::fs::read(dump.join("dumps/db.sql")).unwrap(),
        export(100_000)
    );
    // The built-in discovery plugins see nothing here: one error, with every reason.
    let run = env.run(&["backup", "--all-discovered"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr
            .contains("no discovery plugin sees its layouts on this node")
            && run.stderr.contains("plugin `kubelet`")
            && run.stderr.contains("plugin `nomad`"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("WARN"), "said once: {}", run.stderr);
    let run = env.run(&["--no-default-grants", "backup", "--all-discovered"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("no discovery plugin is configured"),
        "{}",
        run.stderr
    );
}
