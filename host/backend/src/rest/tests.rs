use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;

const SECRET: &str = "s3cr3t-T0ken";

/// A request the fake server got.
#[derive(Debug, Clone)]
struct Request {
    method: String,
    /// With the query.
    path: String,
    /// Names in lowercase.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn is(&self, method: &str, path: &str) -> bool {
        self.method == method && self.path == path
    }
}

fn read_request(reader: &mut impl BufRead) -> Option<Request> {
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next()?.to_owned(), parts.next()?.to_owned());
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':')?;
        headers.push((name.to_ascii_lowercase(), value.trim().to_owned()));
    }
    let mut request = Request {
        method,
        path,
        headers,
        body: Vec::new(),
    };
    let len: usize = request
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    request.body = vec![0; len];
    reader.read_exact(&mut request.body).ok()?;
    Some(request)
}

/// An HTTP/1.1 server on 127.0.0.1 answering each request with `answer` (a status and a
/// body; for `HEAD` only the body's length is sent), one connection at a time, each closed
/// after its answer. It remembers the requests.
struct Fake {
    port: u16,
    seen: Arc<Mutex<Vec<Request>>>,
}

impl Fake {
    fn start(answer: impl Fn(&Request) -> (u16, Vec<u8>) + Send + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let Some(request) = read_request(&mut reader) else {
                    continue;
                };
                let (status, body) = answer(&request);
                let head = request.method == "HEAD";
                log.lock().unwrap().push(request);
                let _ = stream.write_all(
                    format!(
                        "HTTP/1.1 {status} Fake\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    )
                    .as_bytes(),
                );
                if !head {
                    let _ = stream.write_all(&body);
                }
            }
        });
        Fake { port, seen }
    }

    /// A backend on this server at `/repo/`, with `userinfo` (`user:password@` or empty) and
    /// quick retries.
    fn backend(&self, userinfo: &str) -> RestBackend {
        let mut b = RestBackend::new(
            &format!("rest:http://{userinfo}127.0.0.1:{}/repo", self.port),
            &RemoteOptions::default(),
        )
        .unwrap();
        Arc::get_mut(&mut b.rest).unwrap().retry =
            RetryPolicy::new(3, Duration::from_millis(1), Duration::from_millis(2));
        b
    }

    fn seen(&self, method: &str, path: &str) -> Vec<Request> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.is(method, path))
            .cloned()
            .collect()
    }
}

#[test]
fn credentials_come_from_the_url() {
    let p = parse(
        "rest:http://alice:t%40ken%2F1@127.0.0.1:8000/repo",
        Some(&RestCredentials::new("env", "env-pw")),
    )
    .unwrap();
    assert_eq!(p.base.as_str(), "http://127.0.0.1:8000/repo/");
    assert_eq!(p.location, "rest:http://127.0.0.1:8000/repo/");
    assert_eq!(
        p.credentials,
        Some(RestCredentials::new("alice", "t@ken/1"))
    );
    // A user without a password is still the URL's.
    let p = parse(
        "rest:http://bob@127.0.0.1:8000/",
        Some(&RestCredentials::new("x", "y")),
    )
    .unwrap();
    assert_eq!(p.credentials, Some(RestCredentials::new("bob", "")));
    assert_eq!(p.location, "rest:http://127.0.0.1:8000/");
}

#[test]
fn credentials_from_the_options_apply_only_without_user_info() {
    let env = RestCredentials::new("env", "env-pw");
    let p = parse("rest:http://127.0.0.1:8000/repo/", Some(&env)).unwrap();
    assert_eq!(p.credentials, Some(env));
    assert_eq!(
        parse("rest:http://127.0.0.1:8000/repo/", None)
            .unwrap()
            .credentials,
        None
    );
}

#[test]
fn the_path_gets_its_trailing_slash_and_https_stays() {
    for (spec, base) in [
        (
            "rest:https://backup.example.org/",
            "https://backup.example.org/",
        ),
        (
            "rest:https://backup.example.org",
            "https://backup.example.org/",
        ),
        ("rest:https://h:8443/a/b", "https://h:8443/a/b/"),
        ("rest:http://h:8000/a/b/", "http://h:8000/a/b/"),
    ] {
        let p = parse(spec, None).unwrap();
        assert_eq!(p.base.as_str(), base, "{spec}");
        assert_eq!(p.location, format!("rest:{base}"));
        assert_eq!(p.credentials, None);
    }
}

#[test]
fn bad_locations_are_named_without_the_token() {
    for (spec, shown, why) in [
        (
            "rest:ftp://u:SECRET@h/x",
            "rest:ftp://***@h/x",
            "http:// or https://",
        ),
        ("rest:http://u:SECRET@/x", "rest:http://***@/x", "host"),
        ("rest:u:SECRET@h/x", "rest:***@h/x", "http:// or https://"),
        (
            "rest:http://u:SECRET@h:99999/x",
            "rest:http://***@h:99999/x",
            "port",
        ),
        (
            "rest:http://u:SECRET@h/x?a=b",
            "rest:http://***@h/x?a=b",
            "query",
        ),
        ("rest:http://h/x#f", "rest:http://h/x#f", "fragment"),
    ] {
        let spec = spec.replace("SECRET", SECRET);
        let e = RestBackend::new(&spec, &RemoteOptions::default()).unwrap_err();
        let msg = e.to_string();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{msg}");
        assert!(
            msg.contains(&format!("`{shown}` is not a REST location")),
            "{msg}"
        );
        assert!(msg.contains(why), "{msg}");
        assert!(
            msg.contains("rest:http(s)://[USER:PASSWORD@]HOST:PORT/PATH/"),
            "{msg}"
        );
        assert!(!msg.contains(SECRET), "{msg}");
        assert!(!format!("{e:?}").contains(SECRET));
    }
}

#[test]
fn open_location_makes_a_cached_rest_backend() {
    let cache = tempfile::tempdir().unwrap();
    let opts = crate::OpenOptions {
        cache_dir: Some(cache.path().to_owned()),
        ..Default::default()
    };
    let spec = format!("rest:http://u:{SECRET}@127.0.0.1:1/repo");
    let b = crate::open_location_with(&spec, &opts).unwrap();
    assert_eq!(b.location(), "rest:http://127.0.0.1:1/repo/");
    assert!(b.retries_internally());
    assert!(!b.guarantees().atomic_create);
    assert_eq!(b.connections(), DEFAULT_CONNECTIONS);
    let e = crate::open_location(&format!("rest:gopher://u:{SECRET}@h/"))
        .err()
        .expect("not a REST location");
    assert!(!e.to_string().contains(SECRET), "{e}");
}

#[test]
fn debug_output_hides_the_password() {
    let opts = RemoteOptions::default().rest_credentials("alice", SECRET);
    let b = RestBackend::new("rest:http://127.0.0.1:1/r/", &opts).unwrap();
    let from_url = RestBackend::new(
        &format!("rest:http://alice:{SECRET}@127.0.0.1:1/r/"),
        &RemoteOptions::default(),
    )
    .unwrap();
    for shown in [
        format!("{opts:?}"),
        format!("{b:?}"),
        format!("{from_url:?}"),
        format!("{:?}", opts.rest_credentials),
        b.location(),
        from_url.location(),
    ] {
        assert!(!shown.contains(SECRET), "{shown}");
    }
    assert!(format!("{opts:?}").contains("alice"));
}

#[test]
fn basic_auth_is_sent_and_a_refusal_names_where_credentials_come_from() {
    let server = Fake::start(|r| {
        // "u:sekrit" in base64.
        if r.header("authorization") == Some("Basic dTpzZWtyaXQ=") {
            (200, b"the config".to_vec())
        } else {
            (401, Vec::new())
        }
    });
    let b = server.backend("u:sekrit@");
    assert_eq!(b.read(FileType::Config, "config").unwrap(), b"the config");

    let e = server
        .backend(&format!("u:{SECRET}@"))
        .read(FileType::Config, "config")
        .unwrap_err();
    let msg = e.to_string();
    assert_eq!(e.kind(), ErrorKind::Denied, "{msg}");
    assert!(msg.contains("refused the credentials"), "{msg}");
    assert!(msg.contains("401"), "{msg}");
    assert!(
        msg.contains("CAIRN_REST_USERNAME") && msg.contains("CAIRN_REST_PASSWORD"),
        "{msg}"
    );
    assert!(
        msg.contains(&format!("rest:http://127.0.0.1:{}/repo/", server.port)),
        "{msg}"
    );
    assert!(
        !msg.contains(SECRET) && !format!("{e:?}").contains(SECRET),
        "{msg}"
    );

    let e = server
        .backend("")
        .read(FileType::Config, "config")
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Denied);
    assert!(e.to_string().contains("without credentials"), "{e}");
    // Not retried: a refusal stays a refusal.
    assert_eq!(server.seen("GET", "/repo/config").len(), 3);
}

#[test]
fn writes_look_first_and_statuses_map_to_kinds() {
    let server = Fake::start(|r| match (r.method.as_str(), r.path.as_str()) {
        ("HEAD", "/repo/keys/aa") => (200, vec![0; 5]),
        ("HEAD", _) => (404, Vec::new()),
        ("POST", "/repo/keys/bb") => (403, Vec::new()),
        ("POST", "/repo/data/cc") => (413, Vec::new()),
        ("POST", "/repo/data/dd") => (400, Vec::new()),
        ("POST", "/repo/snapshots/ee") => (200, Vec::new()),
        ("DELETE", "/repo/data/ee") => (403, Vec::new()),
        ("DELETE", "/repo/locks/ee") => (200, Vec::new()),
        _ => (404, Vec::new()),
    });
    let b = server.backend("");
    let kind = |r: Result<()>| r.unwrap_err().kind();

    assert_eq!(
        kind(b.write(FileType::Key, "aa", b"x")),
        ErrorKind::AlreadyExists
    );
    assert!(
        server.seen("POST", "/repo/keys/aa").is_empty(),
        "looked first"
    );
    assert_eq!(
        kind(b.write(FileType::Key, "bb", b"x")),
        ErrorKind::AlreadyExists
    );
    let e = b.write(FileType::Pack, "cc", b"x").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.to_string().contains("too large"), "{e}");
    let e = b.write(FileType::Pack, "dd", b"x").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Backend);
    assert!(e.to_string().contains("--no-verify-upload"), "{e}");
    assert_eq!(
        server.seen("POST", "/repo/data/dd").len(),
        1,
        "a 400 is not retried"
    );

    b.write(FileType::Snapshot, "ee", b"snapshot").unwrap();
    let posted = &server.seen("POST", "/repo/snapshots/ee")[0];
    assert_eq!(posted.body, b"snapshot");
    assert_eq!(posted.header("content-length"), Some("8"));

    let e = b.remove(FileType::Pack, "ee").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Denied);
    assert!(e.to_string().contains("append-only"), "{e}");
    b.remove(FileType::Lock, "ee").unwrap();
    assert_eq!(kind(b.remove(FileType::Lock, "ff")), ErrorKind::NotFound);
    assert_eq!(
        b.read(FileType::Snapshot, "ab").unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(b.size(FileType::Key, "aa").unwrap(), 5);
    assert_eq!(
        b.size(FileType::Key, "ab").unwrap_err().kind(),
        ErrorKind::NotFound
    );
    // Names that could reach another path are refused before any request.
    assert_eq!(
        kind(b.write(FileType::Key, "../x", b"")),
        ErrorKind::InvalidInput
    );
}

#[test]
fn transient_failures_are_retried_then_reported() {
    let flaky = Arc::new(AtomicUsize::new(0));
    let tries = flaky.clone();
    let server = Fake::start(move |r| match r.path.as_str() {
        "/repo/index/aa" => (503, Vec::new()),
        "/repo/index/bb" if tries.fetch_add(1, Ordering::SeqCst) == 0 => (500, Vec::new()),
        "/repo/index/bb" => (200, b"ok".to_vec()),
        _ => (404, Vec::new()),
    });
    let b = server.backend("");
    let e = b.read(FileType::Index, "aa").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Backend);
    assert!(e.to_string().contains("503"), "{e}");
    assert_eq!(
        server.seen("GET", "/repo/index/aa").len(),
        3,
        "1 + 2 retries"
    );
    assert_eq!(b.read(FileType::Index, "bb").unwrap(), b"ok");

    // Nobody listening.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let down = Fake {
        port,
        seen: Arc::default(),
    }
    .backend(&format!("u:{SECRET}@"));
    let e = down.list(FileType::Snapshot).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Backend);
    assert!(e.to_string().contains("cannot connect"), "{e}");
    assert!(!e.to_string().contains(SECRET), "{e}");
}

#[test]
fn ranges_listings_create_and_streamed_packs() {
    const FILE: &[u8] = b"0123456789";
    let server = Fake::start(|r| {
        let range = r.header("range").and_then(|v| {
            let (a, b) = v.strip_prefix("bytes=")?.split_once('-')?;
            Some((a.parse::<usize>().ok()?, b.parse::<usize>().ok()?))
        });
        match (r.method.as_str(), r.path.as_str(), range) {
            ("GET", "/repo/data/aa", Some((a, b))) => (206, FILE[a..=b.min(9)].to_vec()),
            // Ignores the range.
            ("GET", "/repo/data/bb", _) => (200, FILE.to_vec()),
            // One byte short.
            ("GET", "/repo/data/cc", Some((a, b))) => (206, FILE[a..b].to_vec()),
            ("GET", "/repo/data/", _) if r.header("accept") == Some(V2) => (
                200,
                br#"[{"name":"aa","size":10},{"name":"bb","size":10}]"#.to_vec(),
            ),
            ("GET", "/repo/keys/", _) => (200, b"[]".to_vec()),
            ("GET", "/repo/locks/", _) => (200, b"not json".to_vec()),
            ("HEAD", "/repo/config", _) => (200, vec![0; 42]),
            ("HEAD", "/repo/data/aa", _) => (200, FILE.to_vec()),
            ("POST", "/repo/data/dd", _) | ("POST", "/repo/?create=true", _) => (200, Vec::new()),
            _ => (404, Vec::new()),
        }
    });
    let b = server.backend("");
    assert_eq!(b.read_range(FileType::Pack, "aa", 2, 3).unwrap(), b"234");
    assert_eq!(
        server.seen("GET", "/repo/data/aa")[0].header("range"),
        Some("bytes=2-4")
    );
    assert_eq!(b.read_range(FileType::Pack, "bb", 2, 3).unwrap(), b"234");
    let short = |name, offset, length| {
        b.read_range(FileType::Pack, name, offset, length)
            .unwrap_err()
            .kind()
    };
    assert_eq!(short("bb", 8, 5), ErrorKind::Corrupt);
    assert_eq!(short("cc", 2, 3), ErrorKind::Corrupt);
    assert_eq!(short("aa", 8, 5), ErrorKind::Corrupt);
    assert!(b.read_range(FileType::Pack, "aa", 3, 0).unwrap().is_empty());
    assert_eq!(short("dd", 3, 0), ErrorKind::NotFound);

    let mut packs = b.list(FileType::Pack).unwrap();
    packs.sort();
    assert_eq!(packs, vec![("aa".into(), 10), ("bb".into(), 10)]);
    assert!(b.list(FileType::Key).unwrap().is_empty());
    assert!(
        b.list(FileType::Snapshot).unwrap().is_empty(),
        "404: none yet"
    );
    assert_eq!(
        b.list(FileType::Config).unwrap(),
        vec![("config".into(), 42)]
    );
    let e = b.list(FileType::Lock).unwrap_err();
    assert!(e.to_string().contains("REST v2"), "{e}");

    // The config is there, so create refuses without asking the server to create anything.
    let e = b.create().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.to_string().contains("not empty"), "{e}");
    assert!(server.seen("POST", "/repo/?create=true").is_empty());

    // A pack goes up from its temporary file, in several chunks.
    let data: Vec<u8> = (0..(3 * CHUNK + 12345)).map(|i| (i % 251) as u8).collect();
    let mut w = b
        .writer(FileType::Pack)
        .unwrap()
        .expect("a streaming writer");
    for piece in data.chunks(700_000) {
        w.write(piece).unwrap();
    }
    w.commit("dd").unwrap();
    let posted = &server.seen("POST", "/repo/data/dd")[0];
    assert_eq!(
        posted.header("content-length"),
        Some(data.len().to_string().as_str())
    );
    assert!(posted.body == data, "the pack arrives whole");
    assert!(b.writer(FileType::Index).unwrap().is_none());
}

#[test]
fn create_posts_to_the_repository() {
    let server = Fake::start(|r| match (r.method.as_str(), r.path.as_str()) {
        ("POST", "/repo/?create=true") => (200, Vec::new()),
        ("GET", _) => (200, b"[]".to_vec()),
        _ => (404, Vec::new()),
    });
    server.backend("").create().unwrap();
    assert_eq!(server.seen("POST", "/repo/?create=true").len(), 1);
    assert_eq!(server.seen("HEAD", "/repo/config").len(), 1);
}
