//! A restore target that others control, end to end.

use cairn_tests::TestEnv;

/// A `.cairn` link that came with the snapshot: the restore marker replaces it by a directory
/// and is never written through it.
#[test]
fn the_restore_marker_does_not_follow_a_cairn_link_from_the_snapshot() {
    let env = TestEnv::with_repo();
    let outside = env.path("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let src = env.path("vol");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("data"), b"app data").unwrap();
    std::os::unix::fs::symlink(&outside, src.join(".cairn")).unwrap();
    env.backup(&[&src]);
    let target = env.path("target");
    env.run(&[
        "restore".as_ref(),
        format!("latest:{}", src.display()).as_ref(),
        "--target".as_ref(),
        target.as_os_str(),
        "--marker".as_ref(),
        "r1".as_ref(),
    ])
    .ok();
    assert_eq!(std::fs::read(target.join("data")).unwrap(), b"app data");
    assert!(
        std::fs::read_dir(&outside).unwrap().next().is_none(),
        "the marker went through the link"
    );
    let dot = std::fs::symlink_metadata(target.join(".cairn")).unwrap();
    assert!(dot.is_dir());
    assert!(target.join(".cairn/r1").is_file());
}

/// How long a command stuck on a FIFO may run before the test calls it hung (its plugins'
/// wall-clock limits are 2 s).
const HUNG: std::time::Duration = std::time::Duration::from_secs(120);

fn fifo(path: &std::path::Path) {
    let _ = std::fs::remove_file(path);
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
}

/// A discovery plugin that opens a FIFO planted in its read-only view blocks in a file call
/// on its own thread: the wall-clock limit still ends the command.
#[test]
fn a_discovery_plugin_blocked_on_a_fifo_is_stopped_by_the_wall_clock_limit() {
    let mut env = TestEnv::with_plugins();
    let node = cairn_tests::node::Node::new(env.path("node"));
    env.install_plugin("kubelet").ok();
    env.configure(&format!(
        "[plugins.kubelet]\n[plugins.kubelet.grant]\ndirs = [{{ path = \"{}\" }}]\nwall-ms = 2000\n",
        node.root.display()
    ));
    env.envs
        .push(("CAIRN_HOST_ROOT".into(), node.root.clone().into()));
    let pod = node.pod(
        "/var/lib/kubelet",
        "shop",
        "web-0",
        "1f0e7c1a-5b2d-4c3e-9f8a-0000000000a1",
        true,
    );
    let mount = pod.csi("pvc-1", "ebs.csi.aws.com", "Persistent", "db");
    fifo(&mount.parent().unwrap().join("vol_data.json"));
    let run = env
        .run_bounded(&["discover", "--json"], HUNG)
        .expect("discover hung on the FIFO");
    assert_ne!(run.code, 0, "{}", run.stdout);
    assert!(
        run.stderr.contains("wall-clock limit of 2 s"),
        "{}",
        run.stderr
    );
}

/// A storage plugin whose store holds a FIFO where the config should be: its file call
/// blocks in the blocking pool, and the wall-clock limit ends the command.
#[test]
fn a_storage_plugin_blocked_on_a_fifo_is_stopped_by_the_wall_clock_limit() {
    let env = TestEnv::with_dir_plugin();
    env.configure(&format!(
        "[plugins.local]\nplugin = \"dir\"\n[plugins.local.config]\npath = \"{}\"\n\
         [plugins.local.grant]\ndirs = [{{ path = \"{}\", access = \"read-write\" }}]\n\
         wall-ms = 2000\n",
        env.root.display(),
        env.path("").display()
    ));
    env.run(&["snapshots"]).ok();
    fifo(&env.root.join("config"));
    let run = env
        .run_bounded(&["snapshots"], HUNG)
        .expect("snapshots hung on the FIFO");
    assert_ne!(run.code, 0, "{}", run.stdout);
    assert!(
        run.stderr.contains("wall-clock limit of 2 s"),
        "{}",
        run.stderr
    );
}
