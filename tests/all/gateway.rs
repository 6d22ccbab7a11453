//! `cairn gateway`: restic and cairn as its clients, the roles, and an adversarial suite of
//! an app credential against it, counting deletes and overwrites in the store.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use cairn_tests::gateway::Gateway;
use cairn_tests::restic::Restic;

/// Every file below `dir` with its bytes (the store, compared before and after).
fn contents(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut all = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let e = e.unwrap();
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                stack.push(p);
            } else {
                all.insert(
                    p.strip_prefix(dir).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    all
}

/// Some data to back up: small files and one of a few MiB.
fn source(dir: &Path) -> PathBuf {
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    for i in 0..20 {
        std::fs::write(
            src.join(format!("f{i}.txt")),
            format!("file {i}\n").repeat(i + 1),
        )
        .unwrap();
    }
    let big: Vec<u8> = (0..6u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(src.join("sub/big.bin"), big).unwrap();
    src
}

/// Files below `root` relative to it, with contents (for comparing a restore).
fn files(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    contents(root)
}

/// restic with an app credential: init, two backups, an exact restore, a clean
/// `check --read-data`; its `forget --prune` is refused and leaves the store as it was; the
/// node's works.
#[test]
fn restic_backs_up_through_the_gateway_and_only_the_node_prunes() {
    let tmp = tempfile::tempdir().unwrap();
    let storage = tmp.path().join("storage");
    let gw = Gateway::start(tmp.path(), storage.to_str().unwrap(), &[]);
    let app = gw.token("shop", "app", &["apps/shop"]);
    let node = gw.token("node-1", "node", &[]);
    let restic = Restic::new(tmp.path());
    let as_app = format!("rest:{}", gw.url("shop", &app, "apps/shop"));
    let src = source(tmp.path());
    restic.ok(&as_app, &["init"]);
    restic.ok(&as_app, &["backup", src.to_str().unwrap()]);
    std::fs::write(src.join("f0.txt"), "changed\n").unwrap();
    restic.ok(&as_app, &["backup", src.to_str().unwrap()]);
    let target = tmp.path().join("restored");
    restic.ok(
        &as_app,
        &["restore", "latest", "--target", target.to_str().unwrap()],
    );
    let restored = target.join(src.strip_prefix("/").unwrap());
    assert_eq!(
        files(&restored),
        files(&src),
        "the restore equals the source"
    );
    restic.ok(&as_app, &["check", "--read-data"]);

    let repo = storage.join("apps/shop");
    let before = contents(&repo);
    let refused = restic.run(&as_app, &["forget", "--keep-last", "1", "--prune"]);
    assert!(
        !refused.status.success(),
        "the app's forget --prune succeeded"
    );
    assert_eq!(
        contents(&repo),
        before,
        "the app's forget --prune changed the store"
    );

    let as_node = format!("rest:{}", gw.url("node-1", &node, "apps/shop"));
    restic.ok(&as_node, &["forget", "--keep-last", "1", "--prune"]);
    let snapshots = restic.ok(&as_node, &["snapshots", "--json"]);
    let n = serde_json::from_str::<serde_json::Value>(&snapshots)
        .unwrap()
        .as_array()
        .unwrap()
        .len();
    assert_eq!(n, 1);
    restic.ok(&as_node, &["check", "--read-data"]);
    let log = std::fs::read_to_string(gw.state.join("audit.log")).unwrap();
    assert!(
        !log.contains(&app) && !log.contains(&node),
        "a token is in the audit log"
    );
    assert!(log.contains("\"credential\":\"shop\""), "{log}");
}

const NAME: &str = "00000000000000000000000000000000000000000000000000000000000000aa";

/// An app credential against the gateway, every way it could try to destroy or reach what
/// it may not: each attempt is refused, and the store is byte for byte what it was.
#[test]
fn an_app_credential_can_neither_delete_nor_overwrite_nor_reach_other_repositories() {
    let tmp = tempfile::tempdir().unwrap();
    let storage = tmp.path().join("storage");
    let gw = Gateway::start(
        tmp.path(),
        storage.to_str().unwrap(),
        &["--max-object-size", "1M", "--idle-timeout", "2s"],
    );
    let app = gw.token("shop", "app", &["apps/shop"]);
    let other = gw.token("blog", "app", &["apps/blog"]);
    let restic = Restic::new(tmp.path());
    let src = source(tmp.path());
    // Two repositories with real content, by their own apps.
    for (name, token, repo) in [("shop", &app, "apps/shop"), ("blog", &other, "apps/blog")] {
        let url = format!("rest:{}", gw.url(name, token, repo));
        restic.ok(&url, &["init"]);
        restic.ok(&url, &["backup", src.to_str().unwrap()]);
    }
    // A lock of blog's, held while shop attacks.
    let blog_lock = b"blog's lock".to_vec();
    let blog_lock_name = sha256_hex(&blog_lock);
    let auth_blog = Some(("blog", other.as_str()));
    assert_eq!(
        gw.request(
            "POST",
            &format!("/apps/blog/locks/{blog_lock_name}"),
            auth_blog,
            &blog_lock
        )
        .0,
        200
    );
    let before = contents(&storage);
    let auth = Some(("shop", app.as_str()));
    let mut refused = 0;
    let mut expect = |what: &str, (status, response): (u16, String), wanted: &[u16]| {
        assert!(
            wanted.contains(&status),
            "{what}: answered {status}, wanted one of {wanted:?}:\n{response}"
        );
        refused += 1;
    };

    // Deletes of every kind of file, in its own repository and the other's.
    for repo in ["apps/shop", "apps/blog"] {
        for (tpe, dir) in [
            ("data", repo_dir(&storage, repo, "data")),
            ("index", repo_dir(&storage, repo, "index")),
            ("keys", repo_dir(&storage, repo, "keys")),
            ("snapshots", repo_dir(&storage, repo, "snapshots")),
        ] {
            for name in names_in(&dir) {
                expect(
                    &format!("DELETE {repo}/{tpe}/{name}"),
                    gw.request("DELETE", &format!("/{repo}/{tpe}/{name}"), auth, b""),
                    &[403],
                );
            }
        }
        expect(
            &format!("DELETE {repo}/config"),
            gw.request("DELETE", &format!("/{repo}/config"), auth, b""),
            &[403],
        );
    }
    expect(
        "DELETE another credential's lock",
        gw.request(
            "DELETE",
            &format!("/apps/blog/locks/{blog_lock_name}"),
            auth,
            b"",
        ),
        &[403],
    );
    // POST over every existing object with other bytes.
    for (path, _) in before.iter() {
        let path = path.to_string_lossy();
        let Some(url) = object_url(&path) else {
            continue;
        };
        expect(
            &format!("POST over {url}"),
            gw.request("POST", &url, auth, b"other bytes"),
            &[400, 403],
        );
    }
    // Traversal in every spelling; another repository; bad names.
    for path in [
        "/apps/shop/../blog/config",
        "/apps/shop/%2e%2e/blog/config",
        "/apps/shop%2F..%2Fblog/config",
        "/apps/shop/..%2Fblog/config",
        "/apps/shop/.%2E/blog/config",
        "/apps/shop/./config",
        "/apps//shop/config",
        "/apps/shop\\..\\blog/config",
        "/apps/shop/data/..",
        "/apps/shop/data/NOTHEX",
        &format!("/apps/shop/data/{}", NAME.to_uppercase()),
    ] {
        expect(
            &format!("POST {path}"),
            gw.request("POST", path, auth, b"x"),
            &[400],
        );
        expect(
            &format!("GET {path}"),
            gw.request("GET", path, auth, b""),
            &[400],
        );
    }
    // Refused by the HTTP layer before any handler (so not in the audit log, not counted).
    let nul = b"GET /apps/shop\0/config HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_eq!(gw.raw(nul).0, 400, "NUL in the path");
    for method in ["GET", "POST"] {
        expect(
            &format!("{method} another app's repository"),
            gw.request(method, "/apps/blog/config", auth, b"x"),
            &[403],
        );
        expect(
            &format!("{method} another app's listing"),
            gw.request(method, "/apps/blog/snapshots/", auth, b""),
            &[403],
        );
    }
    // Credentials: none, malformed, wrong.
    for (what, answer) in [
        (
            "no credentials",
            gw.request("GET", "/apps/shop/config", None, b""),
        ),
        (
            "wrong token",
            gw.request("GET", "/apps/shop/config", Some(("shop", "0000")), b""),
        ),
        (
            "unknown name",
            gw.request(
                "GET",
                "/apps/shop/config",
                Some(("nobody", app.as_str())),
                b"",
            ),
        ),
        (
            "malformed",
            gw.raw(
                b"GET /apps/shop/config HTTP/1.1\r\nHost: x\r\nAuthorization: Basic !!!\r\n\r\n",
            ),
        ),
        (
            "not basic",
            gw.raw(
                b"GET /apps/shop/config HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer abc\r\n\r\n",
            ),
        ),
    ] {
        assert!(
            answer.1.contains("WWW-Authenticate") || answer.1.contains("www-authenticate"),
            "{what}: {}",
            answer.1
        );
        expect(what, answer, &[401]);
    }
    // An expired restore grant.
    let grant = gw.admin(&[
        "grant",
        "restore",
        "late",
        "--repo",
        "apps/blog",
        "--ttl",
        "1s",
    ]);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    expect(
        "an expired restore grant",
        gw.request("GET", "/apps/blog/config", Some(("late", &grant)), b""),
        &[401],
    );
    // A body over the limit; a body that does not hash to its name; one that stops.
    let big = vec![7u8; (1 << 20) + 1];
    let big_name = sha256_hex(&big);
    expect(
        "an oversized body",
        gw.request("POST", &format!("/apps/shop/data/{big_name}"), auth, &big),
        &[413],
    );
    expect(
        "a body that does not hash to its name",
        gw.request(
            "POST",
            &format!("/apps/shop/data/{NAME}"),
            auth,
            b"not what the name says",
        ),
        &[400],
    );
    // A client that says its name is a BLAKE3 hash is held to it: a body whose SHA-256 is
    // the name is refused all the same.
    let declared = b"named by the other hash";
    let basic = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        format!("shop:{app}"),
    );
    let mut request = format!(
        "POST /apps/shop/data/{} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\
         Cairn-Hash: blake3\r\nAuthorization: Basic {basic}\r\n\r\n",
        sha256_hex(declared),
        declared.len()
    )
    .into_bytes();
    request.extend_from_slice(declared);
    expect(
        "a body that does not hash to its name by the hash it declares",
        gw.raw(&request),
        &[400],
    );
    let stalled = {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", gw.port)).unwrap();
        let body = b"only half";
        let head = format!(
            "POST /apps/shop/data/{} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\nAuthorization: Basic {}\r\n\r\n",
            sha256_hex(body),
            base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                format!("shop:{app}")
            )
        );
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(body).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(60)))
            .unwrap();
        let mut out = vec![0u8; 256];
        let n = s.read(&mut out).unwrap_or(0);
        let text = String::from_utf8_lossy(&out[..n]).into_owned();
        (
            text.split_whitespace()
                .nth(1)
                .and_then(|c| c.parse().ok())
                .unwrap_or(0),
            text,
        )
    };
    expect("a client that stops sending mid-body", stalled, &[408]);

    assert_eq!(
        contents(&storage),
        before,
        "the store changed: something was deleted, overwritten or added"
    );
    assert!(refused > 50, "only {refused} attempts were made");
    // What an app may do: remove the lock it made itself.
    let mine = b"shop's lock".to_vec();
    let mine_name = sha256_hex(&mine);
    // Twice: a retried upload is not an error.
    for _ in 0..2 {
        let path = format!("/apps/shop/locks/{mine_name}");
        assert_eq!(gw.request("POST", &path, auth, &mine).0, 200);
    }
    assert_eq!(
        gw.request(
            "DELETE",
            &format!("/apps/shop/locks/{mine_name}"),
            auth,
            b""
        )
        .0,
        200
    );

    let log = std::fs::read_to_string(gw.state.join("audit.log")).unwrap();
    let gateway_log = std::fs::read_to_string(&gw.log).unwrap();
    for secret in [&app, &other, &grant] {
        assert!(
            !log.contains(secret.as_str()),
            "a token is in the audit log"
        );
        assert!(
            !gateway_log.contains(secret.as_str()),
            "a token is in the gateway's output"
        );
    }
    let denials = log
        .lines()
        .filter(|l| !l.contains("\"reason\":\"deleted\""))
        .count();
    assert!(
        denials >= refused,
        "{denials} denials logged for {refused} refusals"
    );
    let (status, metrics) = gw.request("GET", "/metrics", None, b"");
    assert_eq!(status, 200);
    assert!(
        metrics.contains("cairn_gateway_denials_total{reason=\"delete\"}"),
        "{metrics}"
    );
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex_encode(&sha2::Sha256::digest(data))
}

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn repo_dir(storage: &Path, repo: &str, tpe: &str) -> PathBuf {
    storage.join(repo).join(tpe)
}

/// Names of the files below `dir` (packs are fanned out in subdirectories).
fn names_in(dir: &Path) -> Vec<String> {
    contents(dir)
        .keys()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect()
}

/// The REST path of a stored file (`apps/shop/data/ab/<id>` → `/apps/shop/data/<id>`).
fn object_url(rel: &str) -> Option<String> {
    let parts: Vec<&str> = rel.split('/').collect();
    let at = parts
        .iter()
        .position(|p| ["config", "data", "keys", "locks", "snapshots", "index"].contains(p))?;
    let repo = parts[..at].join("/");
    if parts[at] == "config" {
        return Some(format!("/{repo}/config"));
    }
    Some(format!("/{repo}/{}/{}", parts[at], parts.last()?))
}

/// cairn through `rest:` with an app credential, over SeaweedFS (S3) under the gateway: the
/// round trip, a refused `forget --prune` that removes nothing, and the node's that works.
#[test]
fn cairn_backs_up_through_the_gateway_over_s3_and_only_the_node_prunes() {
    let tmp = tempfile::tempdir().unwrap();
    let s3 = cairn_tests::servers::shared_seaweed();
    let storage = s3.location(&cairn_tests::servers::bucket("gateway"), "tenants");
    let gw = Gateway::start(tmp.path(), &storage, &[]);
    let app = gw.token("shop", "app", &["apps/shop"]);
    let node = gw.token("node-1", "node", &[]);
    let as_app = cairn_tests::TestEnv::at(&format!("rest:{}", gw.url("shop", &app, "apps/shop")));
    as_app.init().ok();
    let src = source(tmp.path());
    as_app.backup(&[&src]);
    std::fs::write(src.join("f1.txt"), "changed\n").unwrap();
    as_app.backup(&[&src]);
    let restored = as_app.restore_verified("restored");
    let got = restored.join(src.strip_prefix("/").unwrap());
    let got = if got.is_dir() {
        got
    } else {
        restored.join("src")
    };
    assert_eq!(files(&got), files(&src), "the restore equals the source");
    as_app.run(&["check", "--read-data"]).ok();

    let refused = as_app.run(&["forget", "--keep-last", "1", "--prune"]);
    assert_ne!(refused.code, 0, "the app's forget --prune succeeded");
    assert!(
        !refused.stderr.contains(&app),
        "the token is in an error: {}",
        refused.stderr
    );
    assert_eq!(as_app.snapshot_ids().len(), 2, "the app removed a snapshot");

    let mut as_node =
        cairn_tests::TestEnv::at(&format!("rest:{}", gw.url("node-1", &node, "apps/shop")));
    as_node.password = as_app.password.clone();
    as_node.run(&["forget", "--keep-last", "1", "--prune"]).ok();
    assert_eq!(as_node.snapshot_ids().len(), 1);
    as_node.run(&["check", "--read-data"]).ok();
}

/// 20 apps backing up at once, each into its own repository, while 5 readers restore: no
/// error, and every repository checks clean.
#[test]
fn twenty_app_backups_and_five_readers_share_one_gateway() {
    let tmp = tempfile::tempdir().unwrap();
    let storage = tmp.path().join("storage");
    let gw = Gateway::start(tmp.path(), storage.to_str().unwrap(), &[]);
    let src = source(tmp.path());
    let reader_token = gw.token("reader", "app", &["apps/read"]);
    let reader = cairn_tests::TestEnv::at(&format!(
        "rest:{}",
        gw.url("reader", &reader_token, "apps/read")
    ));
    reader.init().ok();
    reader.backup(&[&src]);
    let apps: Vec<cairn_tests::TestEnv> = (0..20)
        .map(|i| {
            let name = format!("app{i}");
            let repo = format!("apps/{name}");
            let token = gw.token(&name, "app", &[&repo]);
            cairn_tests::TestEnv::at(&format!("rest:{}", gw.url(&name, &token, &repo)))
        })
        .collect();
    std::thread::scope(|s| {
        for env in &apps {
            let src = &src;
            s.spawn(move || {
                env.init().ok();
                env.backup(&[src]);
            });
        }
        for i in 0..5 {
            let reader = &reader;
            s.spawn(move || {
                reader.restore_verified(&format!("read-{i}"));
            });
        }
    });
    for env in &apps {
        env.run(&["check"]).ok();
        assert_eq!(env.snapshot_ids().len(), 1);
    }
}

/// TLS: cairn trusts the gateway through `--ca-cert`; after the certificate files are
/// replaced (another CA) and SIGHUP, new connections get the new certificate.
#[test]
fn tls_is_served_and_a_new_certificate_is_taken_on_sighup() {
    let tmp = tempfile::tempdir().unwrap();
    let certs = tmp.path().join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    cairn_tests::servers::private_ca(&certs, "");
    cairn_tests::servers::private_ca(&certs, "new-");
    let cert = certs.join("srv.pem");
    let key = certs.join("srv.key");
    let storage = tmp.path().join("storage");
    let gw = Gateway::start(
        tmp.path(),
        storage.to_str().unwrap(),
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    let app = gw.token("shop", "app", &["apps/shop"]);
    let url = gw
        .url("shop", &app, "apps/shop")
        .replace("http://", "https://");
    let env = cairn_tests::TestEnv::at(&format!("rest:{url}"));
    let with_ca = |ca: &str, args: &[&str]| {
        let mut all = vec![
            "--ca-cert".to_owned(),
            certs.join(ca).to_string_lossy().into_owned(),
        ];
        all.extend(args.iter().map(|a| (*a).to_owned()));
        env.run(&all)
    };
    with_ca(
        "ca.pem",
        &["init", "--kdf-memory", "1024", "--kdf-iterations", "1"],
    )
    .ok();
    with_ca("ca.pem", &["snapshots"]).ok();
    let plain = gw.request("GET", "/apps/shop/config", Some(("shop", &app)), b"");
    assert_ne!(plain.0, 200, "plain HTTP was served beside TLS");

    // A connection opened before the reload: it must outlive it.
    let mut open = KeptConnection::open(gw.port, &certs.join("ca.pem"));
    open.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    open.wait_for_answers(1);

    std::fs::copy(certs.join("new-srv.pem"), &cert).unwrap();
    std::fs::copy(certs.join("new-srv.key"), &key).unwrap();
    gw.hangup();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let old = with_ca("ca.pem", &["snapshots"]);
        if old.code != 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the certificate was not reloaded"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    with_ca("new-ca.pem", &["snapshots"]).ok();
    open.send("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    open.wait_for_answers(2);
}

/// A TLS connection held open by `openssl s_client`, its answers collected as they come.
struct KeptConnection {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    answers: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
}

impl KeptConnection {
    fn open(port: u16, ca: &Path) -> KeptConnection {
        let mut child = Command::new("openssl")
            .args(["s_client", "-quiet", "-verify_return_error", "-connect"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("-CAfile")
            .arg(ca)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("run openssl s_client");
        let stdin = child.stdin.take().unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let answers = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = answers.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = std::io::Read::read(&mut stdout, &mut buf) {
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        KeptConnection {
            child,
            stdin,
            answers,
        }
    }

    fn send(&mut self, request: &str) {
        std::io::Write::write_all(&mut self.stdin, request.as_bytes()).unwrap();
        std::io::Write::flush(&mut self.stdin).unwrap();
    }

    /// Waits until `n` answers with status 200 came over this one connection.
    fn wait_for_answers(&self, n: usize) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let text = String::from_utf8_lossy(&self.answers.lock().unwrap()).into_owned();
            if text.matches("HTTP/1.1 200").count() >= n {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the connection opened before the reload did not answer {n} times: {text}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

impl Drop for KeptConnection {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A credential at its limit of concurrent requests waits for a slot (a slow client holds
/// its own slots, not everyone's): another credential is served meanwhile, and the waiting
/// request is answered once the slow one goes away.
#[test]
fn a_credential_over_its_request_limit_waits_while_others_are_served() {
    use std::io::{Read, Write};
    let tmp = tempfile::tempdir().unwrap();
    let storage = tmp.path().join("storage");
    let gw = Gateway::start(
        tmp.path(),
        storage.to_str().unwrap(),
        &["--max-requests-per-credential", "1"],
    );
    let slow = gw.token("slow", "app", &["apps/slow"]);
    let other = gw.token("other", "app", &["apps/other"]);
    for (name, token) in [("slow", &slow), ("other", &other)] {
        let (status, _) = gw.request(
            "POST",
            &format!("/apps/{name}/?create=true"),
            Some((name, token)),
            b"",
        );
        assert_eq!(status, 200, "create apps/{name}");
    }
    let auth = |name: &str, token: &str| {
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("{name}:{token}"),
        )
    };
    // The slow upload: headers and a few bytes of a 1 MiB body, then nothing.
    let mut held = std::net::TcpStream::connect(("127.0.0.1", gw.port)).unwrap();
    write!(
        held,
        "POST /apps/slow/data/{NAME} HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {}\r\n\
         Content-Length: 1048576\r\n\r\nsome bytes",
        auth("slow", &slow)
    )
    .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    // The same credential's next request waits for the slot.
    let mut queued = std::net::TcpStream::connect(("127.0.0.1", gw.port)).unwrap();
    write!(
        queued,
        "GET /apps/slow/keys/ HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {}\r\n\
         Connection: close\r\n\r\n",
        auth("slow", &slow)
    )
    .unwrap();
    queued
        .set_read_timeout(Some(std::time::Duration::from_secs(1)))
        .unwrap();
    let mut first = [0u8; 1];
    assert!(
        queued.read(&mut first).is_err(),
        "a request over the credential's limit was answered while its slot was held"
    );
    // Another credential is not held up by it.
    let (status, _) = gw.request("GET", "/apps/other/keys/", Some(("other", &other)), b"");
    assert_eq!(status, 200, "another credential waited for the slow one");
    // The slow client goes away: its slot frees, the waiting request is answered.
    drop(held);
    queued
        .set_read_timeout(Some(std::time::Duration::from_secs(120)))
        .unwrap();
    let mut answer = Vec::new();
    let _ = queued.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // Its temporary file goes when the connection's task is dropped, which may be just
    // after the slot is free; a file under a real name would never go.
    let start = std::time::Instant::now();
    while !names_in(&repo_dir(&storage, "apps/slow", "data")).is_empty() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(10),
            "the abandoned upload left {:?}",
            names_in(&repo_dir(&storage, "apps/slow", "data"))
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// `/metrics` passes `promtool check metrics` (Debian's prometheus) and counts what was done:
/// requests by role, a denial by its reason, bytes received.
#[test]
fn the_metrics_pass_promtool_and_count_requests_and_denials() {
    let tmp = tempfile::tempdir().unwrap();
    let storage = tmp.path().join("storage");
    let gw = Gateway::start(tmp.path(), storage.to_str().unwrap(), &[]);
    let app = gw.token("shop", "app", &["apps/shop"]);
    let auth = Some(("shop", app.as_str()));
    assert_eq!(
        gw.request("POST", "/apps/shop/?create=true", auth, b"").0,
        200
    );
    let body = b"the config";
    assert_eq!(gw.request("POST", "/apps/shop/config", auth, body).0, 200);
    assert_eq!(gw.request("DELETE", "/apps/shop/config", auth, b"").0, 403);
    let (status, response) = gw.request("GET", "/metrics", None, b"");
    assert_eq!(status, 200);
    let exposition = &response[response.find("\r\n\r\n").unwrap() + 4..];
    cairn_tests::prometheus::promtool_check(exposition);
    let value = |series: &str| -> f64 {
        exposition
            .lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no series {series} in\n{exposition}"))
    };
    assert_eq!(
        value(r#"cairn_gateway_requests_total{method="POST",status="200",role="app"}"#),
        2.0
    );
    assert_eq!(
        value(r#"cairn_gateway_denials_total{reason="delete"}"#),
        1.0
    );
    assert!(value("cairn_gateway_bytes_received_total") >= body.len() as f64);
    assert!(value("cairn_gateway_request_duration_seconds_count") >= 3.0);
}

/// A gateway over `plugin:NAME` storage, its plugin store and configuration those of `env`.
fn gateway_over_plugin(env: &cairn_tests::TestEnv, instance: &str) -> Gateway {
    let config = env.path("cairn.toml");
    let plugins = env.path("plugins");
    let cache = env.path("cache");
    Gateway::start(
        &env.path("gw"),
        &format!("plugin:{instance}"),
        &[
            "--config",
            config.to_str().unwrap(),
            "--plugin-dir",
            plugins.to_str().unwrap(),
            "--cache-dir",
            cache.to_str().unwrap(),
        ],
    )
}

/// A storage plugin behind the gateway: one instance of the `dir` plugin holds every
/// repository, each below the directory its `location` setting names; restic and cairn back
/// up into two apps' repositories, which land apart, restore exactly and check clean; an app
/// cannot reach the other's repository, and the node prunes.
#[test]
fn the_gateway_serves_many_repositories_from_one_storage_plugin() {
    let env = cairn_tests::TestEnv::with_plugins();
    env.install_plugin("dir").ok();
    let root = env.path("store");
    std::fs::create_dir(&root).unwrap();
    env.configure(&format!(
        "[plugins.store]\nplugin = \"dir\"\n[plugins.store.config]\npath = \"{root}\"\n\
         [plugins.store.grant]\ndirs = [{{ path = \"{root}\", access = \"read-write\" }}]\n",
        root = root.display()
    ));
    let gw = gateway_over_plugin(&env, "store");
    let shop = gw.token("shop", "app", &["apps/shop"]);
    let blog = gw.token("blog", "app", &["apps/blog"]);
    let node = gw.token("node-1", "node", &[]);
    let src = source(&env.path("data"));

    let restic = Restic::new(&env.path("restic"));
    let blog_url = format!("rest:{}", gw.url("blog", &blog, "apps/blog"));
    restic.ok(&blog_url, &["init"]);
    restic.ok(&blog_url, &["backup", src.to_str().unwrap()]);
    restic.ok(&blog_url, &["check", "--read-data"]);
    let target = env.path("restic-restored");
    restic.ok(
        &blog_url,
        &["restore", "latest", "--target", target.to_str().unwrap()],
    );
    assert_eq!(
        files(&target.join(src.strip_prefix("/").unwrap())),
        files(&src),
        "restic's restore through the plugin equals the source"
    );

    let as_shop = cairn_tests::TestEnv::at(&format!("rest:{}", gw.url("shop", &shop, "apps/shop")));
    as_shop.init().ok();
    as_shop.backup(&[&src]);
    std::fs::write(src.join("f2.txt"), "changed\n").unwrap();
    as_shop.backup(&[&src]);
    as_shop.run(&["check", "--read-data"]).ok();
    let restored = as_shop.restore_verified("restored");
    assert_eq!(
        files(&restored.join(src.strip_prefix("/").unwrap())),
        files(&src),
        "cairn's restore through the plugin equals the source"
    );

    // Each repository below the instance's directory, in the plugin's layout.
    for app in ["shop", "blog"] {
        let repo = root.join("apps").join(app);
        assert!(
            repo.join("config").is_file(),
            "no config in {}",
            repo.display()
        );
        assert!(
            !names_in(&repo.join("snapshots")).is_empty(),
            "no snapshot in {}",
            repo.display()
        );
    }
    let (status, _) = gw.request("GET", "/apps/blog/snapshots/", Some(("shop", &shop)), b"");
    assert_eq!(status, 403, "an app listed another app's repository");

    let before = contents(&root.join("apps/shop"));
    let refused = as_shop.run(&["forget", "--keep-last", "1", "--prune"]);
    assert_ne!(refused.code, 0, "the app's forget --prune succeeded");
    assert_eq!(
        contents(&root.join("apps/shop")),
        before,
        "the app's forget --prune changed the store"
    );
    let mut as_node =
        cairn_tests::TestEnv::at(&format!("rest:{}", gw.url("node-1", &node, "apps/shop")));
    as_node.password = as_shop.password.clone();
    as_node.run(&["forget", "--keep-last", "1", "--prune"]).ok();
    assert_eq!(as_node.snapshot_ids().len(), 1);
    as_node.run(&["check", "--read-data"]).ok();
}

/// A URL-located storage plugin behind the gateway: the `rest` plugin's `url` gets each
/// repository's path appended, onto a real `rclone serve restic`; and a gateway over a plugin
/// that is not installed does not start, saying so.
#[test]
fn the_gateway_over_the_rest_plugin_puts_each_repository_below_its_url() {
    let env = cairn_tests::TestEnv::with_plugins();
    env.install_plugin("rest").ok();
    let served = env.path("served");
    let server = cairn_tests::servers::Rclone::start_with("restic", &served, &[]);
    env.configure(&format!(
        "[plugins.offsite]\nplugin = \"rest\"\n[plugins.offsite.config]\n\
         url = \"http://127.0.0.1:{port}/tenants/\"\n[plugins.offsite.grant]\n\
         http = [\"127.0.0.1:{port}\"]\n",
        port = server.port
    ));
    let gw = gateway_over_plugin(&env, "offsite");
    let app = gw.token("shop", "app", &["apps/shop"]);
    let as_app = cairn_tests::TestEnv::at(&format!("rest:{}", gw.url("shop", &app, "apps/shop")));
    as_app.init().ok();
    let src = source(&env.path("data"));
    as_app.backup(&[&src]);
    as_app.run(&["check", "--read-data"]).ok();
    let restored = as_app.restore_verified("restored");
    assert_eq!(
        files(&restored.join(src.strip_prefix("/").unwrap())),
        files(&src)
    );
    let repo = served.join("tenants/apps/shop");
    assert!(
        repo.join("config").is_file(),
        "no config in {}",
        repo.display()
    );
    assert_eq!(names_in(&repo.join("snapshots")).len(), 1);

    let out = Command::new(cairn_tests::cairn_bin())
        .args([
            "gateway",
            "serve",
            "--listen",
            "127.0.0.1:1",
            "--storage",
            "plugin:nope",
        ])
        .arg("--state")
        .arg(env.path("state"))
        .arg("--config")
        .arg(env.path("cairn.toml"))
        .arg("--plugin-dir")
        .arg(env.path("plugins"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("`nope`"), "{stderr}");
}
