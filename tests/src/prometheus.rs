//! Debian's Prometheus tools as test servers: `promtool check metrics`, a Prometheus server
//! that scrapes targets on 127.0.0.1, and node_exporter's textfile collector.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::servers::{Watched, exchange, find_program, free_ports, spawn_watched, status_of};

const HINT: &str =
    "apt-get install prometheus prometheus-node-exporter (scripts/test-tools.sh does)";

/// Asserts that `promtool check metrics` accepts `exposition`.
pub fn promtool_check(exposition: &str) {
    let promtool = find_program("promtool", "PROMTOOL_BIN", HINT);
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    child
        .stdin
        .take()
        .expect("promtool's stdin")
        .write_all(exposition.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("wait for promtool");
    assert!(
        out.status.success(),
        "promtool refused the exposition: {}{}\n{exposition}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `GET path` (HTTP/1.0, so no chunked answer) on 127.0.0.1:`port` with `headers` (whole
/// lines, e.g. `Authorization: Bearer T`): status and body; status 0 when nothing listens.
pub fn http_get(port: u16, path: &str, headers: &[&str]) -> (u16, String) {
    let mut request = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n");
    for h in headers {
        request.push_str(h);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    let out = exchange(port, request.as_bytes()).unwrap_or_default();
    let body = out
        .find("\r\n\r\n")
        .map_or_else(String::new, |i| out[i + 4..].to_owned());
    (status_of(&out), body)
}

fn wait_until_ready(port: u16, path: &str, what: &str, log: &Path) {
    let start = Instant::now();
    while http_get(port, path, &[]).0 != 200 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{what} did not start: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A Prometheus server scraping targets every second.
pub struct Prometheus {
    /// Its port on 127.0.0.1.
    pub port: u16,
    _server: Watched,
}

impl Prometheus {
    /// Starts one under `dir` that scrapes `targets` (`127.0.0.1:PORT`, path `/metrics`,
    /// with `token` as a bearer token when given).
    pub fn start(dir: &Path, targets: &[String], token: Option<&Path>) -> Prometheus {
        let bin = find_program("prometheus", "PROMETHEUS_BIN", HINT);
        std::fs::create_dir_all(dir).expect("prometheus dir");
        let port = free_ports(1)[0];
        let list: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
        let auth = token.map_or_else(String::new, |t| {
            format!(
                "    authorization:\n      credentials_file: '{}'\n",
                t.display()
            )
        });
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  \
                 - job_name: cairn\n{auth}    static_configs:\n      - targets: [{}]\n",
                list.join(", ")
            ),
        )
        .expect("write prometheus.yml");
        let args = vec![
            format!("--config.file={}", config.display()),
            format!("--storage.tsdb.path={}", dir.join("data").display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
        ];
        let server = spawn_watched(&bin, &args, &[], dir, "prometheus");
        wait_until_ready(port, "/-/ready", "prometheus", &dir.join("prometheus.log"));
        Prometheus {
            port,
            _server: server,
        }
    }

    /// The result vector of the instant query `expr` (through `/api/v1/query`).
    pub fn query(&self, expr: &str) -> Vec<serde_json::Value> {
        let encoded: String = expr
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"_-.".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        let (status, body) = http_get(self.port, &format!("/api/v1/query?query={encoded}"), &[]);
        assert_eq!(status, 200, "query {expr}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("prometheus answers JSON");
        assert_eq!(v["status"], "success", "query {expr}: {body}");
        v["data"]["result"].as_array().cloned().unwrap_or_default()
    }
}

/// node_exporter with only its textfile collector, reading `.prom` files from a directory.
pub struct NodeExporter {
    /// Its port on 127.0.0.1.
    pub port: u16,
    _server: Watched,
}

impl NodeExporter {
    /// Starts one under `dir` reading the textfiles in `textfiles`.
    pub fn start(dir: &Path, textfiles: &Path) -> NodeExporter {
        let bin: PathBuf = find_program("prometheus-node-exporter", "NODE_EXPORTER_BIN", HINT);
        std::fs::create_dir_all(dir).expect("node_exporter dir");
        let port = free_ports(1)[0];
        let args = vec![
            "--collector.disable-defaults".to_owned(),
            "--collector.textfile".to_owned(),
            format!("--collector.textfile.directory={}", textfiles.display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
        ];
        let server = spawn_watched(&bin, &args, &[], dir, "node-exporter");
        wait_until_ready(
            port,
            "/metrics",
            "node_exporter",
            &dir.join("node-exporter.log"),
        );
        NodeExporter {
            port,
            _server: server,
        }
    }

    /// Its exposition.
    pub fn metrics(&self) -> String {
        let (status, body) = http_get(self.port, "/metrics", &[]);
        assert_eq!(status, 200, "node_exporter: {body}");
        body
    }
}
