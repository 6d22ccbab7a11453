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
