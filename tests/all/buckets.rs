//! Buckets as backup sources and restore targets (`backup --bucket`, an app's `buckets`,
//! `restore --to-bucket`), on a real S3 server (SeaweedFS on loopback) that counts the
//! requests it answers.

use std::collections::BTreeMap;

use cairn_testing::fixture::random_bytes;
use cairn_tests::TestEnv;
use cairn_tests::servers::{S3_KEY, S3_SECRET, Seaweed, bucket, shared_seaweed};
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore as _, ObjectStoreExt as _};

/// A test's own S3 client (object_store, not cairn's code) on one bucket of the server.
/// Keys are taken as they are (`Path::from` would percent-encode what is not ASCII).
struct Objects {
    store: object_store::aws::AmazonS3,
    rt: tokio::runtime::Runtime,
}

fn key_path(key: &str) -> Path {
    Path::parse(key).unwrap_or_else(|e| panic!("{key}: {e}"))
}

impl Objects {
    fn new(server: &Seaweed, bucket: &str) -> Self {
        let store = object_store::aws::AmazonS3Builder::new()
            .with_endpoint(format!("http://127.0.0.1:{}", server.s3_port))
            .with_allow_http(true)
            .with_region("us-east-1")
            .with_bucket_name(bucket)
            .with_access_key_id(S3_KEY)
            .with_secret_access_key(S3_SECRET)
            .build()
            .unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        Objects { store, rt }
    }

    fn put(&self, key: &str, data: &[u8]) {
        self.rt
            .block_on(self.store.put(&key_path(key), data.to_vec().into()))
            .unwrap_or_else(|e| panic!("put {key}: {e}"));
    }

    /// When `key` was last written, in seconds since the epoch.
    fn modified(&self, key: &str) -> i64 {
        let meta = self.rt.block_on(self.store.head(&key_path(key))).unwrap();
        meta.last_modified.timestamp()
    }

    fn delete(&self, key: &str) {
        self.rt.block_on(self.store.delete(&key_path(key))).unwrap();
    }

    /// Every object below `prefix`: key (relative to it) → content.
    fn all(&self, prefix: &str) -> BTreeMap<String, Vec<u8>> {
        let metas: Vec<object_store::ObjectMeta> = self
            .rt
            .block_on(self.store.list(Some(&Path::from(prefix))).try_collect())
            .unwrap();
        metas
            .into_iter()
            .map(|m| {
                let key = m.location.as_ref()[prefix.len() + 1..].to_owned();
                let data = self
                    .rt
                    .block_on(async { self.store.get(&m.location).await?.bytes().await })
                    .unwrap();
                (key, data.to_vec())
            })
            .collect()
    }
}

/// The first objects of the source bucket: small ones in directories, one of several
/// parts, names with spaces and non-ASCII letters, and one outside the prefix.
fn fill(src: &Objects) -> usize {
    let mut n = 0;
    for i in 0..12 {
        src.put(
            &format!("media/img/{i:02}.jpg"),
            &random_bytes(20_000 + i, i as u64),
        );
        n += 1;
    }
    src.put("media/docs/deep/er/notes ü.txt", "grüße\n".as_bytes());
    src.put("media/big.bin", &random_bytes(13 << 20, 99));
    src.put("media/empty", b"");
    src.put("elsewhere/not-mine.txt", b"outside the prefix\n");
    n + 3
}

#[test]
fn a_bucket_is_backed_up_downloading_only_changed_objects_and_restored_into_another() {
    let server = shared_seaweed();
    let (src_name, dst_name) = (bucket("bucket-src"), bucket("bucket-dst"));
    let src = Objects::new(server, &src_name);
    let objects = fill(&src);
    let env = TestEnv::with_repo();
    let location = server.location(&src_name, "media");

    let gets = || server.requests(&src_name, "GET");
    let before = gets();
    let first = env.run(&["backup", "--json", "--bucket", &location]).json();
    assert_eq!(first["files_new"], objects, "{first}");
    assert_eq!(
        gets() - before,
        objects as u64,
        "the first backup downloads each object once"
    );

    // Two objects replaced (one by content of the same size), one added, one removed.
    src.put("media/img/03.jpg", &random_bytes(20_003, 1003));
    src.put("media/docs/deep/er/notes ü.txt", b"hello\n");
    src.put("media/img/new.jpg", b"new");
    src.delete("media/img/07.jpg");
    let before = gets();
    let second = env.run(&["backup", "--json", "--bucket", &location]).json();
    assert_eq!(
        gets() - before,
        3,
        "only the changed and the new objects are downloaded: {second}"
    );
    assert_eq!(second["files_changed"], 2, "{second}");
    assert_eq!(second["files_new"], 1, "{second}");
    assert_eq!(second["files_unmodified"], objects - 3, "{second}");
    let snaps = env.run(&["snapshots", "--json"]).json();
    assert_eq!(snaps[1]["paths"][0], location, "{snaps}");
    assert_eq!(snaps[1]["parent"], snaps[0]["id"], "{snaps}");

    // Back into another bucket: equal to the source below its prefix.
    let dst_location = server.location(&dst_name, "copy");
    let restored = env
        .run(&["restore", "latest", "--json", "--to-bucket", &dst_location])
        .last_json();
    assert_eq!(restored["files_restored"], objects, "{restored}");
    let want = src.all("media");
    assert!(want.contains_key("big.bin") && !want.contains_key("img/07.jpg"));
    let got = Objects::new(server, &dst_name).all("copy");
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
    assert!(got == want, "the restored objects' contents differ");

    // And into files: keys are paths, last-modified times are mtimes.
    let out = env.path("out");
    env.run(&["restore", "latest", "--target", out.to_str().unwrap()])
        .ok();
    assert_eq!(
        std::fs::read(out.join("docs/deep/er/notes ü.txt")).unwrap(),
        b"hello\n"
    );
    assert_eq!(
        std::fs::read(out.join("big.bin")).unwrap(),
        random_bytes(13 << 20, 99)
    );
    let mtime = std::fs::metadata(out.join("img/00.jpg"))
        .unwrap()
        .modified()
        .unwrap()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    assert_eq!(mtime.as_secs() as i64, src.modified("media/img/00.jpg"));
}

/// An app's buckets are volumes of its own, read with the app's bucket keys: the
/// environment's keys are wrong here, and without the app's file the backup fails, naming
/// neither secret.
#[test]
fn an_apps_buckets_are_its_volumes_read_with_its_keys() {
    let server = shared_seaweed();
    let src_name = bucket("app-bucket");
    let src = Objects::new(server, &src_name);
    src.put("shop/a.txt", b"a");
    src.put("shop/b/c.txt", b"c");
    let env = TestEnv::with_plugins();
    let keys = env.path("shop.s3");
    std::fs::write(&keys, format!("{S3_KEY}:{S3_SECRET}\n")).unwrap();
    let location = server.location(&src_name, "shop/");
    let config = |keys_line: &str| {
        format!(
            "[apps.shop]\nbuckets = [\"{location}\"]\nrepository = \"{}\"\n{keys_line}",
            env.path("repo").display()
        )
    };
    let backup = || {
        let out = env
            .cmd(&["backup", "--for-app", "shop", "--json"])
            .env("AWS_SECRET_ACCESS_KEY", "wrong-secret")
            .output()
            .unwrap();
        cairn_tests::Run::from(out)
    };
    env.configure(&config(""));
    env.init().ok();
    let denied = backup();
    assert_eq!(denied.code, 1, "{}", denied.stderr);
    assert!(denied.stderr.contains(&src_name), "{}", denied.stderr);
    for secret in ["wrong-secret", S3_SECRET] {
        assert!(!denied.stderr.contains(secret) && !denied.stdout.contains(secret));
    }

    env.configure(&config(&format!(
        "bucket-credentials-file = \"{}\"\n",
        keys.display()
    )));
    let run = backup();
    let identity = format!(
        "buckets/shop/s3/127.0.0.1:{}/{src_name}/shop",
        server.s3_port
    );
    assert!(run.stdout.contains(&identity), "{}", run.stdout);
    let before = server.requests(&src_name, "GET");
    backup().ok();
    assert_eq!(
        server.requests(&src_name, "GET"),
        before,
        "the app's second backup finds its parent by the bucket's identity"
    );
    let snaps = env.run(&["snapshots", "--json"]).json();
    assert_eq!(snaps[1]["volume"], identity.as_str(), "{snaps}");
    assert_eq!(snaps[1]["app"], "shop", "{snaps}");
}

#[test]
fn an_object_that_is_also_a_prefix_is_skipped_and_named() {
    let server = shared_seaweed();
    let src_name = bucket("hostile-keys");
    let src = Objects::new(server, &src_name);
    src.put("p/ok.txt", b"fine");
    // Both an object and the prefix of another: the one below it is kept.
    src.put("p/dir", b"i am a file");
    src.put("p/dir/inner.txt", b"inner");
    let env = TestEnv::with_repo();
    let run = env.run(&[
        "backup",
        "--json",
        "--bucket",
        &server.location(&src_name, "p"),
    ]);
    assert_eq!(run.code, 3, "incomplete: {}", run.stderr);
    assert!(
        run.stderr
            .contains("p/dir is also the prefix of other objects"),
        "{}",
        run.stderr
    );
    let ls = env.run(&["ls", "latest"]).ok().to_owned();
    assert!(
        ls.contains("/ok.txt") && ls.contains("/dir/inner.txt"),
        "{ls}"
    );
    assert!(!ls.contains("i am a file"), "{ls}");
}

#[test]
fn bad_bucket_locations_are_refused_by_name() {
    let env = TestEnv::with_repo();
    let run = env.run(&["backup", "--bucket", "/srv/data"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("`/srv/data` is not a bucket"),
        "{}",
        run.stderr
    );
    let run = env.run(&[
        "restore",
        "latest",
        "--to-bucket",
        "rest:http://127.0.0.1:1/x",
    ]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("is not a bucket"), "{}", run.stderr);
}
