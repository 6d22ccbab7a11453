//! Volume discovery: the `kubelet` and `nomad` plugins on fake node trees of every layout
//! (with and without an inventory), the host refusing answers outside the plugin's view,
//! `cairn discover`, backups of discovered volumes whose chain survives a recreated pod, and
//! restore markers.

use std::path::Path;

use cairn_tests::node::{Node, Nomad};
use cairn_tests::{Run, TestEnv};
use serde_json::{Value, json};

/// A test environment with `plugins` installed, each granted the whole fake node read-only,
/// and `--host-root` pointing at the node.
fn node_env(plugins: &[&str], extra: &str) -> (TestEnv, Node) {
    let mut env = TestEnv::with_plugins();
    let node = Node::new(env.path("node"));
    let mut config = String::new();
    for p in plugins {
        env.install_plugin(p).ok();
        config.push_str(&format!(
            "[plugins.{p}]\n[plugins.{p}.grant]\ndirs = [{{ path = \"{}\" }}]\n",
            node.root.display()
        ));
    }
    config.push_str(extra);
    env.configure(&config);
    env.envs
        .push(("CAIRN_HOST_ROOT".into(), node.root.clone().into()));
    (env, node)
}

/// Installs the test guest `liar`: a discovery plugin that answers what its settings say.
fn install_liar(env: &TestEnv) {
    let liar = cairn_tests::repo_root().join("tests/guests/liar/plugin.toml");
    let wasm = cairn_tests::wasm("guest_liar");
    env.run(&[
        "plugin".as_ref(),
        "install".as_ref(),
        wasm.as_os_str(),
        "--manifest".as_ref(),
        liar.as_os_str(),
    ])
    .ok();
}

/// `(identity, app, kind, path relative to the node)` of each target `discover --json`
/// printed, in its order.
fn targets(run: &Run, node: &Node) -> Vec<(String, String, String, String)> {
    let root = node.root.canonicalize().expect("node root");
    run.json()
        .as_array()
        .expect("a JSON array")
        .iter()
        .map(|t| {
            let path = Path::new(t["path"].as_str().expect("path"));
            let rel = path
                .strip_prefix(&root)
                .unwrap_or_else(|_| panic!("{} is outside the node", path.display()));
            (
                t["identity"].as_str().expect("identity").to_owned(),
                t["app"].as_str().expect("app").to_owned(),
                t["kind"].as_str().expect("kind").to_owned(),
                rel.display().to_string(),
            )
        })
        .collect()
}

fn expect(rows: &[(&str, &str, &str, &str)]) -> Vec<(String, String, String, String)> {
    rows.iter()
        .map(|(a, b, c, d)| ((*a).into(), (*b).into(), (*c).into(), (*d).into()))
        .collect()
}

const UID_WEB: &str = "1f0e7c1a-5b2d-4c3e-9f8a-0000000000a1";
const UID_AGENT: &str = "2a7d9e3b-6c4f-4d1a-8b2c-0000000000b2";
const UID_ORPHAN: &str = "3c8e0f4d-7d5a-4e2b-9c3d-0000000000c3";

/// The upstream layout without an inventory: every volume type, the skipped ones, names
/// from /var/log/pods, owner names without generated suffixes, and an unnamed pod.
#[test]
fn kubelet_finds_every_volume_type_without_an_inventory() {
    let (env, node) = node_env(&["kubelet"], "");
    let k = "/var/lib/kubelet";
    let web = node.pod(k, "shop", "web-7d4b9c8f6d-x2x9k", UID_WEB, true);
    web.csi("pvc-4b1c", "ebs.csi.aws.com", "Persistent", "orders.db");
    web.csi("scratch", "inline.csi.example.com", "Ephemeral", "tmp.bin");
    web.volume("kubernetes.io~empty-dir", "cache", "c.bin");
    web.block("pvc-9d2e");
    web.api_volumes();
    web.subpath("cache");
    let agent = node.pod(k, "infra", "agent-k9x2p", UID_AGENT, true);
    agent.volume("kubernetes.io~nfs", "pv-shared", "s.txt");
    agent.volume("kubernetes.io~local-volume", "local-pv-1", "l.txt");
    agent.volume("kubernetes.io~empty-dir", "buffer", "b.txt");
    agent.volume("kubernetes.io~git-repo", "src", "main.rs");
    let orphan = node.pod(k, "kube-system", "static-x", UID_ORPHAN, false);
    orphan.volume("kubernetes.io~empty-dir", "tmp", "t");

    let run = env.run(&["discover", "--json"]);
    let pods = "var/lib/kubelet/pods";
    assert_eq!(
        targets(&run, &node),
        expect(&[
            (
                &format!("k8s/_pod/{UID_ORPHAN}/tmp"),
                &format!("_pod/{UID_ORPHAN}"),
                "empty-dir",
                &format!("{pods}/{UID_ORPHAN}/volumes/kubernetes.io~empty-dir/tmp"),
            ),
            (
                "k8s/infra/agent/buffer",
                "infra",
                "empty-dir",
                &format!("{pods}/{UID_AGENT}/volumes/kubernetes.io~empty-dir/buffer"),
            ),
            (
                "k8s/infra/agent/src",
                "infra",
                "other",
                &format!("{pods}/{UID_AGENT}/volumes/kubernetes.io~git-repo/src"),
            ),
            (
                "k8s/infra/local-pv-1",
                "infra",
                "local-volume",
                &format!("{pods}/{UID_AGENT}/volumes/kubernetes.io~local-volume/local-pv-1"),
            ),
            (
                "k8s/infra/pv-shared",
                "infra",
                "nfs",
                &format!("{pods}/{UID_AGENT}/volumes/kubernetes.io~nfs/pv-shared"),
            ),
            (
                "k8s/shop/pvc-4b1c",
                "shop",
                "csi",
                &format!("{pods}/{UID_WEB}/volumes/kubernetes.io~csi/pvc-4b1c/mount"),
            ),
            (
                "k8s/shop/pvc-9d2e",
                "shop",
                "block",
                &format!("{pods}/{UID_WEB}/volumeDevices/kubernetes.io~csi/pvc-9d2e"),
            ),
            (
                "k8s/shop/web/cache",
                "shop",
                "empty-dir",
                &format!("{pods}/{UID_WEB}/volumes/kubernetes.io~empty-dir/cache"),
            ),
            (
                "k8s/shop/web/scratch",
                "shop",
                "csi",
                &format!("{pods}/{UID_WEB}/volumes/kubernetes.io~csi/scratch/mount"),
            ),
        ])
    );
    // Labels carry what the node knows: the CSI metadata and the pod's names.
    let all = run.json();
    let csi = all
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["identity"] == "k8s/shop/pvc-4b1c")
        .unwrap();
    assert_eq!(csi["plugin"], "kubelet");
    for (key, value) in [
        ("namespace", "shop"),
        ("pod", "web-7d4b9c8f6d-x2x9k"),
        ("pod-uid", UID_WEB),
        ("pv", "pvc-4b1c"),
        ("driver", "ebs.csi.aws.com"),
        ("volume-handle", "vol-pvc-4b1c"),
    ] {
        assert_eq!(csi["labels"][key], value, "label {key}: {csi}");
    }

    // The text listing shows the same, one line per volume.
    let text = env.run(&["discover"]);
    let out = text.ok();
    assert_eq!(out.lines().count(), 2 + 9, "{out}"); // header and rule, then one per volume
    assert!(
        out.contains("k8s/shop/web/cache") && out.contains("empty-dir"),
        "{out}"
    );
}

/// Every known kubelet layout is found under the host root without a setting, and a
/// configured `root` is scanned instead of them.
#[test]
fn kubelet_finds_every_known_layout_and_a_configured_root() {
    for layout in [
        "/var/lib/kubelet",
        "/var/lib/origin/openshift.local.volumes",
        "/opt/rke/var/lib/kubelet",
        "/var/vcap/data/kubelet",
        "/var/snap/microk8s/common/var/lib/kubelet",
        "/var/lib/k0s/kubelet",
    ] {
        let (env, node) = node_env(&["kubelet"], "");
        node.pod(layout, "blog", "ghost-0", UID_WEB, true).volume(
            "kubernetes.io~empty-dir",
            "content",
            "post.md",
        );
        let run = env.run(&["discover", "--json"]);
        assert_eq!(
            targets(&run, &node),
            expect(&[(
                "k8s/blog/ghost-0/content",
                "blog",
                "empty-dir",
                &format!(
                    "{}/pods/{UID_WEB}/volumes/kubernetes.io~empty-dir/content",
                    layout.trim_start_matches('/')
                ),
            )]),
            "layout {layout}"
        );
    }

    let (env, node) = node_env(
        &["kubelet"],
        "[plugins.kubelet.config]\nroot = \"/srv/kubelet\"\n",
    );
    node.pod("/var/lib/kubelet", "a", "a-0", UID_WEB, true)
        .volume("kubernetes.io~empty-dir", "ignored", "x");
    node.pod("/srv/kubelet", "b", "b-0", UID_AGENT, true)
        .volume("kubernetes.io~empty-dir", "used", "x");
    let run = env.run(&["discover", "--json"]);
    let found: Vec<String> = targets(&run, &node).into_iter().map(|t| t.0).collect();
    assert_eq!(found, ["k8s/b/b-0/used"]);
}

/// With no configuration, the built-in discovery plugins read their known layouts (and
/// nothing else); `--no-default-grants` runs none, and a plugin installed over a built-in
/// one gets no default grants.
#[test]
fn discover_with_no_configuration_runs_the_built_in_plugins_on_their_layouts() {
    let mut env = TestEnv::with_plugins();
    let node = Node::new(env.path("node"));
    node.pod("/var/lib/kubelet", "blog", "ghost-0", UID_WEB, true)
        .volume("kubernetes.io~empty-dir", "content", "post.md");
    env.envs
        .push(("CAIRN_HOST_ROOT".into(), node.root.clone().into()));
    let run = env.run(&["discover", "--json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        targets(&run, &node),
        expect(&[(
            "k8s/blog/ghost-0/content",
            "blog",
            "empty-dir",
            &format!("var/lib/kubelet/pods/{UID_WEB}/volumes/kubernetes.io~empty-dir/content"),
        )])
    );

    let run = env.run(&["--no-default-grants", "discover"]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(
        run.stderr.contains("no discovery plugin is configured")
            && run.stderr.contains("--no-default-grants"),
        "{}",
        run.stderr
    );

    // The same component, installed to override the built-in one: it is not cairn's own
    // plugin any more as far as grants go.
    env.install_plugin("kubelet").ok();
    let wasm = cairn_tests::wasm("cairn_plugin_kubelet");
    let manifest = cairn_tests::repo_root().join("plugins/kubelet/plugin.toml");
    env.run(&[
        "plugin".as_ref(),
        "install".as_ref(),
        wasm.as_os_str(),
        "--manifest".as_ref(),
        manifest.as_os_str(),
        "--override-builtin".as_ref(),
    ])
    .ok();
    let run = env.run(&["discover", "--json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json(), json!([]), "{}", run.stderr);
    // Named, it runs, with nothing granted: it sees none of its layouts.
    let run = env.run(&["discover", "--plugin", "kubelet", "--json"]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(run.stderr.contains("plugin `kubelet`"), "{}", run.stderr);
}

/// Without grants the plugin sees nothing and says what to grant; an answer outside the
/// plugin's view is refused, whole.
#[test]
fn discovery_sees_only_what_is_granted() {
    let mut env = TestEnv::with_plugins();
    env.install_plugin("kubelet").ok();
    let node = Node::new(env.path("node"));
    node.pod("/var/lib/kubelet", "shop", "web-0", UID_WEB, true)
        .volume("kubernetes.io~empty-dir", "cache", "c");
    env.envs
        .push(("CAIRN_HOST_ROOT".into(), node.root.clone().into()));
    env.configure("[plugins.kubelet]\n");
    let run = env.run(&["discover", "--json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let there = node.root.join("var/lib/kubelet");
    assert!(
        run.stderr.contains("plugin `kubelet`")
            && run.stderr.contains("exist but are not granted")
            && run.stderr.contains(&there.display().to_string()),
        "{}",
        run.stderr
    );
    assert_eq!(run.json(), json!([]));
    // A grant names the node's path: under --host-root it covers that path there.
    env.configure(
        "[plugins.kubelet.grant]\ndirs = [{ path = \"/var/lib/kubelet\" }, { path = \"/var/log/pods\" }]\n",
    );
    let run = env.run(&["discover", "--json"]);
    assert_eq!(
        run.json()[0]["identity"],
        "k8s/shop/web-0/cache",
        "{}",
        run.stderr
    );

    // A plugin that answers paths outside its one directory.
    install_liar(&env);
    let data = env.path("data");
    std::fs::create_dir_all(data.join("ok")).unwrap();
    std::os::unix::fs::symlink("/etc", data.join("link")).unwrap();
    let configure = |answer: &str, identity: &str| {
        env.configure(&format!(
            "[plugins.liar.config]\npath = \"{0}\"\nanswer = \"{answer}\"\nidentity = \"{identity}\"\n\
             [plugins.liar.grant]\ndirs = [{{ path = \"{0}\" }}]\n",
            data.display()
        ));
    };
    configure("/data/ok", "test/ok");
    let run = env.run(&["discover", "--json"]);
    assert_eq!(
        run.json()[0]["path"],
        data.canonicalize().unwrap().join("ok").to_str().unwrap()
    );
    for answer in ["/etc/passwd", "/data/../../etc", "/data/link", "data/ok"] {
        configure(answer, "test/ok");
        let run = env.run(&["discover", "--json"]);
        assert_eq!(run.code, 1, "{answer}: {}", run.stdout);
        assert!(
            run.stderr.contains("plugin `liar` answered the path")
                && run.stderr.contains("refused"),
            "{answer}: {}",
            run.stderr
        );
        assert!(run.stdout.trim().is_empty(), "{answer}: {}", run.stdout);
    }
    configure("/data/ok", "../escape");
    let run = env.run(&["discover"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("identity `../escape`"),
        "{}",
        run.stderr
    );
}

/// Both first-party plugins on a Kubernetes node: Nomad's absent layouts are an info line, not
/// a failure; a third plugin that fails is named while the others' volumes are still listed
/// (exit 3), and a backup of discovered volumes refuses to run without its volumes.
#[test]
fn a_plugin_without_its_layouts_finds_nothing_and_a_failing_one_does_not_hide_the_others() {
    let (env, node) = node_env(&["kubelet", "nomad"], "");
    node.pod("/var/lib/kubelet", "blog", "ghost-0", UID_WEB, true)
        .volume("kubernetes.io~empty-dir", "content", "post.md");
    let run = env.run(&["-v", "discover", "--json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let found: Vec<String> = targets(&run, &node).into_iter().map(|t| t.0).collect();
    assert_eq!(found, ["k8s/blog/ghost-0/content"]);
    assert!(
        run.stderr.contains("plugin `nomad`") && run.stderr.contains("no Nomad data_dir"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("WARN"), "{}", run.stderr);
    // Named explicitly, a plugin that sees none of its layouts is an error.
    let run = env.run(&["discover", "--plugin", "nomad"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("no Nomad data_dir"), "{}", run.stderr);

    install_liar(&env);
    let root = node.root.display();
    env.configure(&format!(
        "[plugins.kubelet]\n[plugins.kubelet.grant]\ndirs = [{{ path = \"{root}\" }}]\n\
         [plugins.liar.config]\npath = \"{root}\"\nanswer = \"/etc/passwd\"\nidentity = \"t/x\"\n\
         [plugins.liar.grant]\ndirs = [{{ path = \"{root}\" }}]\n"
    ));
    let run = env.run(&["discover", "--json"]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    let listed: Value = serde_json::from_str(&run.stdout).expect("a JSON list");
    assert_eq!(
        listed[0]["identity"], "k8s/blog/ghost-0/content",
        "{listed}"
    );
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert!(
        run.stderr.contains("plugin `liar` answered the path"),
        "{}",
        run.stderr
    );
    env.init();
    let run = env.run(&["backup", "--all-discovered"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("plugin `liar`"), "{}", run.stderr);
    assert!(env.repo_files("snapshots").is_empty());
}

/// A PodList + PVCs inventory: PVC names, owners, hostPath volumes (seen through `/host`),
/// and the opt-in / opt-out annotations.
#[test]
fn kubelet_uses_an_inventory() {
    let (env, node) = node_env(&["kubelet"], "");
    let k = "/var/lib/kubelet";
    let web = node.pod(k, "shop", "web-7d4b9c8f6d-x2x9k", UID_WEB, false);
    web.csi("pvc-4b1c", "ebs.csi.aws.com", "Persistent", "orders.db");
    web.csi("scratch", "inline.csi.example.com", "Ephemeral", "tmp.bin");
    web.volume("kubernetes.io~empty-dir", "cache", "c.bin");
    std::fs::create_dir_all(node.path("/srv/shop-logs")).unwrap();
    let agent = node.pod(k, "infra", "agent-k9x2p", UID_AGENT, false);
    agent.volume("kubernetes.io~nfs", "shared", "s.txt");
    agent.volume("kubernetes.io~local-volume", "local-pv-1", "l.txt");
    agent.volume("kubernetes.io~empty-dir", "buffer", "b.txt");
    let inventory = json!({
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": "web-7d4b9c8f6d-x2x9k",
                    "namespace": "shop",
                    "uid": UID_WEB,
                    "annotations": { "backup.velero.io/backup-volumes-excludes": "scratch" },
                    "ownerReferences": [{ "kind": "ReplicaSet", "name": "web-7d4b9c8f6d", "controller": true }]
                },
                "spec": { "volumes": [
                    { "name": "data", "persistentVolumeClaim": { "claimName": "orders" } },
                    { "name": "scratch", "csi": { "driver": "inline.csi.example.com" } },
                    { "name": "cache", "emptyDir": {} },
                    { "name": "logs", "hostPath": { "path": "/srv/shop-logs" } },
                    { "name": "kube-api-access-7x9qz", "projected": { "sources": [] } }
                ] }
            },
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": "agent-k9x2p",
                    "namespace": "infra",
                    "uid": UID_AGENT,
                    "annotations": { "cairn.io/backup-volumes": "buffer" },
                    "ownerReferences": [{ "kind": "DaemonSet", "name": "agent", "controller": true }]
                },
                "spec": { "volumes": [
                    { "name": "shared", "nfs": { "server": "10.0.0.5", "path": "/export" } },
                    { "name": "local", "persistentVolumeClaim": { "claimName": "local-claim" } },
                    { "name": "buffer", "emptyDir": {} }
                ] }
            },
            {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": { "name": "orders", "namespace": "shop" },
                "spec": { "volumeName": "pvc-4b1c" }
            },
            {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": { "name": "local-claim", "namespace": "infra" },
                "spec": { "volumeName": "local-pv-1" }
            }
        ]
    });
    let file = env.path("inventory.json");
    std::fs::write(&file, inventory.to_string()).unwrap();
    let run = env.run(&[
        "discover".as_ref(),
        "--json".as_ref(),
        "--inventory".as_ref(),
        file.as_os_str(),
    ]);
    let pods = "var/lib/kubelet/pods";
    assert_eq!(
        targets(&run, &node),
        expect(&[
            (
                "k8s/infra/agent/buffer",
                "infra",
                "empty-dir",
                &format!("{pods}/{UID_AGENT}/volumes/kubernetes.io~empty-dir/buffer"),
            ),
            (
                "k8s/shop/orders",
                "shop",
                "csi",
                &format!("{pods}/{UID_WEB}/volumes/kubernetes.io~csi/pvc-4b1c/mount"),
            ),
            (
                "k8s/shop/web/cache",
                "shop",
                "empty-dir",
                &format!("{pods}/{UID_WEB}/volumes/kubernetes.io~empty-dir/cache"),
            ),
            ("k8s/shop/web/logs", "shop", "host-path", "srv/shop-logs"),
        ])
    );
    let orders = &run.json()[1];
    assert_eq!(orders["labels"]["pvc"], "orders", "{orders}");
    assert_eq!(orders["labels"]["volume"], "data", "{orders}");

    std::fs::write(&file, "{ not json").unwrap();
    let run = env.run(&[
        "discover".as_ref(),
        "--inventory".as_ref(),
        file.as_os_str(),
    ]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("inventory"), "{}", run.stderr);
}

/// Nomad: CSI publish dirs (namespace from staging), dynamic and static host volumes,
/// allocation data; task secrets never; then the same with an inventory.
#[test]
fn nomad_finds_csi_host_volumes_and_alloc_data() {
    let (env, node) = node_env(
        &["nomad"],
        "[plugins.nomad.config]\nhost-volumes = \"certs=/etc/ssl/shop,pg=/srv/pg\"\n",
    );
    let nomad = Nomad::new(&node, "/opt/nomad/data");
    let alloc = "5e1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
    nomad.csi("node", "aws-ebs0", alloc, "pgdata", Some("prod"));
    nomad.csi("monolith", "hostpath", alloc, "scratch", None);
    nomad.host_volume("8f14e45f-ceea-467f-a1b2-c3d4e5f6a7b8");
    nomad.alloc(alloc, "server");
    std::fs::create_dir_all(node.path("/srv/pg")).unwrap();
    // `certs` is configured but absent on this node: not a target.

    let run = env.run(&["discover", "--json"]);
    let csi = "opt/nomad/data/client/csi";
    let usage = "rw-file-system-single-node-writer";
    assert_eq!(
        targets(&run, &node),
        expect(&[
            (
                &format!("nomad/_alloc/{alloc}/alloc-data"),
                "default",
                "alloc-data",
                &format!("opt/nomad/data/alloc/{alloc}/alloc/data"),
            ),
            (
                "nomad/default/8f14e45f-ceea-467f-a1b2-c3d4e5f6a7b8",
                "default",
                "host-volume",
                "opt/nomad/data/host_volumes/8f14e45f-ceea-467f-a1b2-c3d4e5f6a7b8",
            ),
            ("nomad/default/pg", "default", "host-volume", "srv/pg"),
            (
                "nomad/default/scratch",
                "default",
                "csi",
                &format!("{csi}/monolith/hostpath/per-alloc/{alloc}/scratch/{usage}"),
            ),
            (
                "nomad/prod/pgdata",
                "prod",
                "csi",
                &format!("{csi}/node/aws-ebs0/per-alloc/{alloc}/pgdata/{usage}"),
            ),
        ])
    );
    assert!(!run.stdout.contains("secrets"), "{}", run.stdout);

    let inventory = json!({
        "Allocations": [{
            "ID": alloc,
            "Namespace": "prod",
            "JobID": "shop",
            "TaskGroup": "db",
            "Name": "shop.db[0]"
        }],
        "HostVolumes": [{
            "ID": "8f14e45f-ceea-467f-a1b2-c3d4e5f6a7b8",
            "Name": "uploads",
            "Namespace": "prod"
        }]
    });
    let file = env.path("allocs.json");
    std::fs::write(&file, inventory.to_string()).unwrap();
    let run = env.run(&[
        "discover".as_ref(),
        "--json".as_ref(),
        "--inventory".as_ref(),
        file.as_os_str(),
    ]);
    let found: Vec<(String, String)> = targets(&run, &node)
        .into_iter()
        .map(|t| (t.0, t.1))
        .collect();
    let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
        v.iter().map(|(a, b)| ((*a).into(), (*b).into())).collect()
    };
    assert_eq!(
        found,
        pairs(&[
            ("nomad/default/pg", "default"),
            ("nomad/prod/pgdata", "shop"),
            ("nomad/prod/scratch", "shop"),
            ("nomad/prod/shop/db/alloc-data", "shop"),
            ("nomad/prod/uploads", "prod"),
        ])
    );
}

/// `--unprotected` lists what no configured app covers.
#[test]
fn unprotected_lists_what_no_app_covers() {
    let (env, node) = node_env(
        &["kubelet"],
        "[apps.shop]\nvolumes = [\"k8s/shop/**\"]\n[apps.infra]\n",
    );
    let k = "/var/lib/kubelet";
    node.pod(k, "shop", "web-0", UID_WEB, true)
        .volume("kubernetes.io~empty-dir", "cache", "c");
    let agent = node.pod(k, "infra", "agent-k9x2p", UID_AGENT, true);
    agent.volume("kubernetes.io~empty-dir", "buffer", "b");
    node.pod(k, "blog", "ghost-0", UID_ORPHAN, true).volume(
        "kubernetes.io~empty-dir",
        "content",
        "c",
    );
    let all = env.run(&["discover", "--json"]).json();
    let apps: Vec<(String, Value)> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["identity"].as_str().unwrap().to_owned(),
                t["covering_apps"].clone(),
            )
        })
        .collect();
    assert_eq!(
        apps,
        [
            ("k8s/blog/ghost-0/content".to_owned(), json!([])),
            ("k8s/infra/agent/buffer".to_owned(), json!(["infra"])),
            ("k8s/shop/web-0/cache".to_owned(), json!(["shop"])),
        ]
    );
    let run = env.run(&["discover", "--unprotected", "--json"]);
    let found: Vec<String> = targets(&run, &node).into_iter().map(|t| t.0).collect();
    assert_eq!(found, ["k8s/blog/ghost-0/content"]);
}

/// A pod deleted and recreated (new UID, new name suffix) keeps its volumes' identities: the
/// next backup finds the first as its parent, and a restore goes into the new pod's volume,
/// marked complete for `wait-restore`.
#[test]
fn a_recreated_pod_continues_its_chain_and_restores_into_the_new_pod() {
    let (env, node) = node_env(&["kubelet"], "");
    env.init().ok();
    let k = "/var/lib/kubelet";
    let old = node.pod(k, "shop", "web-7d4b9c8f6d-x2x9k", UID_WEB, true);
    let cache = old.volume("kubernetes.io~empty-dir", "cache", "c.bin");
    std::fs::write(cache.join("big.bin"), vec![7u8; 300_000]).unwrap();
    old.csi("pvc-4b1c", "ebs.csi.aws.com", "Persistent", "orders.db");

    let first = env.run(&["backup", "--json", "--all-discovered"]);
    first.ok();
    let summaries: Vec<Value> = first
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &Value| v["message_type"] == "summary")
        .collect();
    assert_eq!(summaries.len(), 2, "{}", first.stdout);
    let first_cache = summaries
        .iter()
        .find(|s| s["volume"] == "k8s/shop/web/cache")
        .expect("cache backed up");
    assert_eq!(first_cache["app"], "shop");

    // The pod is deleted; its ReplicaSet makes a new one with another UID and suffix.
    std::fs::remove_dir_all(&old.dir).unwrap();
    std::fs::remove_dir_all(node.path("/var/log/pods")).unwrap();
    let new = node.pod(k, "shop", "web-7d4b9c8f6d-q8w2n", UID_AGENT, true);
    let new_cache = new.dir.join("volumes/kubernetes.io~empty-dir/cache");
    std::fs::create_dir_all(&new_cache).unwrap();
    // The new pod's cache starts with part of what the old one had.
    std::fs::write(new_cache.join("c.bin"), b"cache data\n").unwrap();

    let second = env.run(&["backup", "--json", "--volume", "k8s/shop/web/cache"]);
    let summary = second.last_json();
    assert_eq!(summary["volume"], "k8s/shop/web/cache");
    assert_eq!(
        summary["parent"], first_cache["snapshot_id"],
        "{}",
        second.stdout
    );

    let snaps = env
        .run(&["snapshots", "--json", "--volume", "k8s/shop/web/cache"])
        .json();
    assert_eq!(snaps.as_array().unwrap().len(), 2, "{snaps}");

    // Restore the first snapshot into the new pod's (emptied) volume, with a marker.
    std::fs::remove_dir_all(&new_cache).unwrap();
    std::fs::create_dir_all(&new_cache).unwrap();
    let waiter = env
        .cmd(&[
            "wait-restore".as_ref(),
            "--marker".as_ref(),
            "restore-1".as_ref(),
            new_cache.as_os_str(),
            "--timeout".as_ref(),
            "60s".as_ref(),
        ])
        .spawn()
        .unwrap();
    let id = first_cache["snapshot_id"].as_str().unwrap();
    env.run(&[
        "restore".as_ref(),
        id.as_ref(),
        "--target".as_ref(),
        new_cache.as_os_str(),
        "--marker".as_ref(),
        "restore-1".as_ref(),
        "--verify".as_ref(),
    ])
    .ok();
    assert_eq!(
        std::fs::read(new_cache.join("big.bin")).unwrap(),
        vec![7u8; 300_000]
    );
    assert!(new_cache.join("c.bin").is_file());
    let status = waiter.wait_with_output().unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let marker: Value =
        serde_json::from_slice(&std::fs::read(new_cache.join(".cairn/restore-1")).unwrap())
            .unwrap();
    assert_eq!(marker["snapshot"], id);

    // A directory no restore went into: wait-restore gives up after its timeout.
    let empty = env.path("empty-volume");
    std::fs::create_dir_all(&empty).unwrap();
    let run = env.run(&[
        "wait-restore".as_ref(),
        "--marker".as_ref(),
        "restore-1".as_ref(),
        new_cache.as_os_str(),
        empty.as_os_str(),
        "--timeout".as_ref(),
        "1s".as_ref(),
    ]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("empty-volume"), "{}", run.stderr);
    let run = env.run(&["restore", id, "--target", "/tmp/x", "--marker", "../evil"]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("marker `../evil`"), "{}", run.stderr);

    // A volume that is not on this node is named.
    let run = env.run(&["backup", "--volume", "k8s/shop/nope"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("no volume `k8s/shop/nope`"),
        "{}",
        run.stderr
    );
}
