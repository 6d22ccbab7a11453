//! `gs://` repositories. No server that speaks Google Cloud Storage's XML API (what the
//! `object_store` client uses) installs from the package registries here — fake-gcs-server
//! answers a plain `PUT /bucket/object` with `400 invalid uploadType`, gcp-storage-emulator
//! has no XML listing — so these tests check what cairn sends and how it reports failure,
//! against a listener on loopback that records requests and answers like GCS does.

use std::io::{BufRead, BufReader, Read as _, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use cairn_tests::TestEnv;

/// A loopback listener that answers an object listing with an empty one and every other
/// request with `403 Forbidden`, keeping each request's head.
struct Recorder {
    port: u16,
    heads: Arc<Mutex<Vec<String>>>,
}

impl Recorder {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let seen = heads.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let seen = seen.clone();
                std::thread::spawn(move || answer(stream, &seen));
            }
        });
        Recorder { port, heads }
    }

    /// The service-account key that points the client here, without OAuth.
    fn key(&self) -> String {
        format!(
            r#"{{"gcs_base_url": "http://127.0.0.1:{}", "disable_oauth": true, "client_email": "", "private_key": "", "private_key_id": ""}}"#,
            self.port
        )
    }

    fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}

fn answer(stream: std::net::TcpStream, seen: &Mutex<Vec<String>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    loop {
        let mut head = String::new();
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            }
            head.push_str(&line);
        }
        std::io::copy(&mut (&mut reader).take(length as u64), &mut std::io::sink()).unwrap();
        let listing = head.starts_with("GET ") && head.contains("list-type=2");
        seen.lock().unwrap().push(head);
        let (status, body) = if listing {
            (
                "200 OK",
                "<?xml version='1.0' encoding='UTF-8'?><ListBucketResult><Name>backups</Name>\
                 <KeyCount>0</KeyCount><IsTruncated>false</IsTruncated></ListBucketResult>",
            )
        } else {
            (
                "403 Forbidden",
                "<?xml version='1.0' encoding='UTF-8'?><Error><Code>AccessDenied</Code>\
                 <Message>Access denied by the test.</Message></Error>",
            )
        };
        let mut s = &stream;
        if write!(
            s,
            "HTTP/1.1 {status}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .is_err()
        {
            return;
        }
    }
}

#[test]
fn gs_writes_are_create_only_and_failures_name_the_object() {
    let server = Recorder::start();
    let env = TestEnv::at("gs://backups/cairn/repo");
    let r: cairn_tests::Run = env
        .cmd(&["init", "--kdf-memory", "1024", "--kdf-iterations", "1"])
        .env("GOOGLE_SERVICE_ACCOUNT_KEY", server.key())
        .output()
        .unwrap()
        .into();
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("gs://backups/cairn/repo"), "{}", r.stderr);
    assert!(
        r.stderr.contains("Access denied by the test"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    let heads = server.heads();
    let put = heads
        .iter()
        .find(|h| h.starts_with("PUT /backups/cairn%2Frepo%2F"))
        .unwrap_or_else(|| panic!("no PUT under the prefix: {heads:#?}"));
    assert!(
        put.to_ascii_lowercase()
            .contains("x-goog-if-generation-match: 0"),
        "a create must be conditional: {put}"
    );
    // Permanent errors are not retried.
    assert_eq!(
        heads.iter().filter(|h| h.starts_with("PUT ")).count(),
        1,
        "{heads:#?}"
    );
}

#[test]
fn gs_locations_and_credentials_are_checked_before_any_request() {
    let env = TestEnv::at("gs://");
    let r = env.run(&["snapshots"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("names no bucket"), "{}", r.stderr);

    // A service-account key whose private key is not one: a clear error, and the key's
    // text never printed.
    let secret = "-----BEGIN PRIVATE KEY-----\\nnot-a-key-s3cr3t\\n-----END PRIVATE KEY-----\\n";
    let env = TestEnv::at("gs://backups/repo");
    let r: cairn_tests::Run = env
        .cmd(&["snapshots"])
        .env(
            "GOOGLE_SERVICE_ACCOUNT_KEY",
            format!(
                r#"{{"client_email": "cairn@example.iam.gserviceaccount.com", "private_key": "{secret}", "private_key_id": "k1"}}"#
            ),
        )
        .output()
        .unwrap()
        .into();
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("gs://backups/repo"), "{}", r.stderr);
    assert!(
        r.stderr.contains("GOOGLE_SERVICE_ACCOUNT_KEY"),
        "says what to check: {}",
        r.stderr
    );
    assert!(
        !r.stderr.contains("s3cr3t"),
        "no key in errors: {}",
        r.stderr
    );
}
