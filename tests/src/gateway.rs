//! `cairn gateway serve` as a test server, its credentials, and a raw HTTP client for
//! requests no well-behaved client sends.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::cairn_bin;
use crate::servers::{Watched, free_ports, spawn_watched};

/// A running gateway over `storage`, its state in `state`.
pub struct Gateway {
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Its state directory.
    pub state: PathBuf,
    /// Where its log goes.
    pub log: PathBuf,
    server: Watched,
}

impl Gateway {
    /// Starts a gateway over `storage` (a location), keeping state and log under `dir`.
    pub fn start(dir: &Path, storage: &str, extra: &[&str]) -> Gateway {
        let port = free_ports(1)[0];
        let state = dir.join("gateway-state");
        std::fs::create_dir_all(dir).expect("gateway dir");
        let mut args = vec![
            "gateway".to_owned(),
            "serve".to_owned(),
            "--listen".to_owned(),
            format!("127.0.0.1:{port}"),
            "--storage".to_owned(),
            storage.to_owned(),
            "--state".to_owned(),
            state.to_string_lossy().into_owned(),
        ];
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        let env = [
            ("AWS_ACCESS_KEY_ID", crate::servers::S3_KEY),
            ("AWS_SECRET_ACCESS_KEY", crate::servers::S3_SECRET),
        ];
        let server = spawn_watched(cairn_bin(), &args, &env, dir, "gateway");
        let log = dir.join("gateway.log");
        let start = Instant::now();
        // Ready when it says so (a TLS gateway does not answer plain HTTP).
        let listening = || {
            std::fs::read_to_string(dir.join("gateway.log"))
                .is_ok_and(|l| l.contains("gateway listening on"))
        };
        while !listening() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "the gateway did not start: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Gateway {
            port,
            state,
            log,
            server,
        }
    }

    /// Runs `cairn gateway ARGS --state STATE` and returns its stdout (asserting success).
    pub fn admin(&self, args: &[&str]) -> String {
        let out = Command::new(cairn_bin())
            .args(["gateway"])
            .args(args)
            .arg("--state")
            .arg(&self.state)
            .output()
            .expect("run cairn gateway");
        assert!(
            out.status.success(),
            "cairn gateway {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .expect("utf-8")
            .trim()
            .to_owned()
    }

    /// Adds a credential and returns its token.
    pub fn token(&self, name: &str, role: &str, repos: &[&str]) -> String {
        let mut args = vec!["token", "add", name, "--role", role];
        for r in repos {
            args.extend(["--repo", r]);
        }
        self.admin(&args)
    }

    /// `http://name:token@127.0.0.1:port/repo/` for `rest:` clients.
    pub fn url(&self, name: &str, token: &str, repo: &str) -> String {
        format!("http://{name}:{token}@127.0.0.1:{}/{repo}/", self.port)
    }

    /// Sends SIGHUP (reload credentials and certificate).
    pub fn hangup(&self) {
        self.server.signal(nix::sys::signal::Signal::SIGHUP);
    }

    /// Sends one raw HTTP/1.1 request (`Connection: close` is added) and returns the status
    /// and the whole response.
    pub fn raw(&self, request: &[u8]) -> (u16, String) {
        raw(self.port, request)
    }

    /// A request with HTTP Basic credentials: status and response.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        auth: Option<(&str, &str)>,
        body: &[u8],
    ) -> (u16, String) {
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n",
            body.len()
        );
        if let Some((user, token)) = auth {
            head.push_str(&format!(
                "Authorization: Basic {}\r\n",
                base64::Engine::encode(
                    &base64::engine::general_purpose::STANDARD,
                    format!("{user}:{token}")
                )
            ));
        }
        head.push_str("\r\n");
        let mut req = head.into_bytes();
        req.extend_from_slice(body);
        self.raw(&req)
    }
}

/// Sends `request` to 127.0.0.1:`port`, closing the connection after it.
pub fn raw(port: u16, request: &[u8]) -> (u16, String) {
    let text = String::from_utf8_lossy(request);
    let request: Vec<u8> = match text.find("\r\n\r\n") {
        Some(end) if !text[..end].to_ascii_lowercase().contains("connection:") => {
            let mut r = request[..end].to_vec();
            r.extend_from_slice(b"\r\nConnection: close");
            r.extend_from_slice(&request[end..]);
            r
        }
        _ => request.to_vec(),
    };
    let out = crate::servers::exchange(port, &request).expect("connect to the gateway");
    let status = crate::servers::status_of(&out);
    (status, out)
}
