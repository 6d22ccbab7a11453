//! `cairn find`: by name and path patterns, case, time and snapshot; by blob, tree and pack;
//! restic's JSON shapes.

use cairn_tests::{TestEnv, write_file};
use serde_json::Value;

/// `(snapshot, [paths])` of each entry of `find --json`, paths relative to `root`.
fn hits(list: &Value, root: &str) -> Vec<(String, Vec<String>)> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|s| {
            assert_eq!(
                s["hits"].as_u64().unwrap() as usize,
                s["matches"].as_array().unwrap().len()
            );
            let paths = s["matches"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| {
                    let p = m["path"].as_str().unwrap();
                    p.strip_prefix(root).unwrap_or(p).to_owned()
                })
                .collect();
            (s["snapshot"].as_str().unwrap().to_owned(), paths)
        })
        .collect()
}

#[test]
fn find_by_pattern_time_snapshot_and_object() {
    let env = TestEnv::with_repo();
    let src = env.path("src");
    write_file(&src.join("etc/app.conf"), b"a=1\n");
    write_file(&src.join("etc/nginx/site.conf"), b"server {}\n");
    write_file(&src.join("home/README.md"), b"hello\n");
    write_file(&src.join("data/big.bin"), &vec![7u8; 300_000]);
    let s = src.to_str().unwrap();
    env.run(&["backup", "--quiet", "--time", "2026-03-01T01:00:00Z", s])
        .ok();
    write_file(&src.join("etc/new.conf"), b"b=2\n");
    env.run(&["backup", "--quiet", "--time", "2026-03-02T01:00:00Z", s])
        .ok();
    let ids = env.snapshot_ids();
    let find = |args: &[&str]| {
        let mut all = vec!["find", "--json"];
        all.extend(args);
        hits(&env.run(&all).json(), s)
    };

    let conf = find(&["*.conf"]);
    assert_eq!(
        conf,
        [
            (
                ids[0].clone(),
                vec![
                    "/etc/app.conf".to_owned(),
                    "/etc/nginx/site.conf".to_owned()
                ]
            ),
            (
                ids[1].clone(),
                vec![
                    "/etc/app.conf".to_owned(),
                    "/etc/new.conf".to_owned(),
                    "/etc/nginx/site.conf".to_owned()
                ]
            ),
        ]
    );
    let latest = find(&["*.conf", "--snapshot", "latest"]);
    assert_eq!(latest.len(), 1);
    assert_eq!(latest[0].0, ids[1]);
    assert_eq!(find(&["*/nginx/*"])[0].1, ["/etc/nginx/site.conf"]);
    assert!(find(&["readme*"]).is_empty(), "case matters by default");
    assert_eq!(find(&["-i", "readme*"])[0].1, ["/home/README.md"]);
    assert_eq!(
        find(&["*.conf", "--as-of", "2026-03-01T12:00:00Z"]).len(),
        1,
        "snapshot filters apply"
    );
    // Modification times: the files are new, so nothing is older than an hour ago.
    assert!(find(&["*.conf", "--newest", "1h"]).is_empty());
    assert_eq!(find(&["*.conf", "--oldest", "1h"]).len(), 2);

    // The JSON of a match is restic's.
    let m = &env.run(&["find", "--json", "big.bin"]).json()[0]["matches"][0];
    assert_eq!(m["type"], "file");
    assert_eq!(m["size"], 300_000);
    assert_eq!(m["permissions"].as_str().unwrap().len(), 10);

    // The text output names each snapshot.
    let text = env.run(&["find", "app.conf"]).ok().to_owned();
    assert!(
        text.contains(&format!(
            "Found matching entries in snapshot {}",
            &ids[0][..8]
        )),
        "{text}"
    );
    let long = env.run(&["find", "--long", "app.conf"]).ok().to_owned();
    assert!(long.contains("-rw"), "{long}");

    // By object: a data blob of big.bin, the tree of etc/, every pack.
    let blob = env.tree_node(&format!("{s}/data"), "big.bin")["content"][0]
        .as_str()
        .unwrap()
        .to_owned();
    let found = env.run(&["find", "--json", "--blob", &blob[..10]]).json();
    let paths: Vec<&str> = found
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["path"].as_str().unwrap())
        .collect();
    let big = format!("{s}/data/big.bin");
    assert_eq!(paths, [big.as_str(), big.as_str()], "once per snapshot");
    assert_eq!(found[0]["object_type"], "blob");
    assert_eq!(found[0]["id"], blob);
    assert_eq!(found[0]["snapshot"], ids[0]);
    let etc = env.tree_node(s, "etc")["subtree"]
        .as_str()
        .unwrap()
        .to_owned();
    let found = env.run(&["find", "--json", "--tree", &etc]).json();
    assert_eq!(found.as_array().unwrap().len(), 1, "{found}");
    assert_eq!(found[0]["path"], format!("{s}/etc"));
    assert_eq!(found[0]["object_type"], "tree");
    let packs = env.run(&["list", "packs"]).ok().to_owned();
    let mut all = vec!["find", "--json", "--pack"];
    all.extend(packs.lines());
    let found = env.run(&all).json();
    assert!(
        found
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["path"] == big.as_str()),
        "{found}"
    );

    for (args, want) in [
        (vec!["find", "--blob", "xyz"], "is not an id"),
        (vec!["find", "--pack", "abcdef12"], "no indexed pack"),
        (vec!["find", "[*"], "invalid"),
    ] {
        let r = env.run(&args);
        assert_eq!(r.code, 1, "{args:?}");
        assert!(r.stderr.contains(want), "{args:?}: {}", r.stderr);
    }
}
