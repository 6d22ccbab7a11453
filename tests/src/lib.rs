//! Support for the end-to-end tests: a temporary workspace, the real `cairn` binary, and real
//! servers (`servers`).

pub mod agent;
pub mod app_server;
pub mod gateway;
pub mod node;
pub mod prometheus;
pub mod restic;
pub mod servers;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use tempfile::TempDir;

/// The `cairn` binary of this build (built on first use if `cargo test` did not build it).
pub fn cairn_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        // target/<profile>/deps/all-<hash> → target/<profile>/cairn
        let exe = std::env::current_exe().expect("test binary path");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("target/<profile>");
        let bin = profile_dir.join("cairn");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut build = Command::new(cargo);
        build.args(["build", "--quiet", "-p", "cairn-cli", "--bin", "cairn"]);
        if profile_dir.file_name() == Some(OsStr::new("release")) {
            build.arg("--release");
        }
        let status = build.status().expect("run cargo build");
        assert!(status.success(), "building the cairn binary failed");
        assert!(bin.exists(), "{} was not built", bin.display());
        bin
    })
}

/// The repository's root directory.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is in the repository root")
        .to_path_buf()
}

/// A component the build script built (`cairn_plugin_dir`, `guest_spin`, …).
pub fn wasm(name: &str) -> PathBuf {
    let path = Path::new(env!("CAIRN_WASM_DIR")).join(format!("{name}.wasm"));
    assert!(path.exists(), "{} was not built", path.display());
    path
}

/// Writes `data` to `path`, making its directories.
#[track_caller]
pub fn write_file(path: &Path, data: &[u8]) {
    std::fs::create_dir_all(path.parent().expect("a file's directory")).expect("make directories");
    std::fs::write(path, data).expect("write a file");
}

/// A temporary directory with a repository path, a password and a helper to run `cairn`.
pub struct TestEnv {
    /// Scratch directory (deleted on drop).
    pub dir: TempDir,
    /// Repository location (what `-r` gets).
    pub repo: PathBuf,
    /// The directory holding the repository's files, when they are local (for a `plugin:`
    /// repository on the `dir` plugin, the plugin's directory).
    pub root: PathBuf,
    /// More environment for every `cairn` run.
    pub envs: Vec<(String, std::ffi::OsString)>,
    /// Password given through `CAIRN_PASSWORD`.
    pub password: String,
}

/// The outcome of one `cairn` run.
#[derive(Debug)]
pub struct Run {
    /// Exit code (-1 when killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Run {
    /// Asserts success and returns stdout.
    #[track_caller]
    pub fn ok(&self) -> &str {
        assert_eq!(
            self.code, 0,
            "cairn failed:\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        &self.stdout
    }

    /// Parses stdout as JSON.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.ok().trim()).expect("stdout is JSON")
    }

    /// Parses the last stdout line as JSON.
    #[track_caller]
    pub fn last_json(&self) -> serde_json::Value {
        let line = self.ok().lines().last().expect("a line");
        serde_json::from_str(line).expect("last line is JSON")
    }
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Default for TestEnv {
    fn default() -> Self {
        Self::new()
    }
}

impl TestEnv {
    /// A fresh environment for the repository at `location` (e.g. an `s3:` URL).
    pub fn at(location: &str) -> Self {
        let mut env = Self::new();
        env.repo = PathBuf::from(location);
        env.root = PathBuf::from(location);
        env
    }

    /// Initializes the repository (cheap KDF).
    #[track_caller]
    pub fn init(&self) -> Run {
        self.init_with(&[])
    }

    /// Initializes the repository (cheap KDF) with more `init` arguments.
    #[track_caller]
    pub fn init_with(&self, extra: &[&str]) -> Run {
        let mut args = vec!["init", "--kdf-memory", "1024", "--kdf-iterations", "1"];
        args.extend_from_slice(extra);
        self.run(&args)
    }

    /// A fresh environment (no repository yet).
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = dir.path().join("repo");
        Self {
            dir,
            root: repo.clone(),
            repo,
            envs: Vec::new(),
            password: "correct horse".into(),
        }
    }

    /// A fresh environment with its own plugin store, compiled-plugin cache and
    /// configuration file (`cairn.toml`, written by [`TestEnv::configure`]).
    pub fn with_plugins() -> Self {
        let mut env = Self::new();
        for (var, rel) in [
            ("CAIRN_PLUGIN_DIR", "plugins"),
            ("CAIRN_CACHE_DIR", "cache"),
            ("CAIRN_CONFIG", "cairn.toml"),
        ] {
            env.envs.push((var.into(), env.path(rel).into()));
        }
        env.configure("");
        env
    }

    /// Writes the configuration file of [`TestEnv::with_plugins`].
    pub fn configure(&self, toml: &str) {
        std::fs::write(self.path("cairn.toml"), toml).expect("write cairn.toml");
    }

    /// Installs first-party plugin `name` (`plugins/<name>`).
    #[track_caller]
    pub fn install_plugin(&self, name: &str) -> Run {
        let wasm = wasm(&format!("cairn_plugin_{}", name.replace('-', "_")));
        let manifest = repo_root().join("plugins").join(name).join("plugin.toml");
        self.run(&[
            OsStr::new("plugin"),
            OsStr::new("install"),
            wasm.as_os_str(),
            OsStr::new("--manifest"),
            manifest.as_os_str(),
        ])
    }

    /// A fresh environment whose repository `plugin:local` lives in `repo/` through the
    /// `dir` plugin, initialized (cheap KDF).
    pub fn with_dir_plugin() -> Self {
        Self::with_store_plugin("dir")
    }

    /// A fresh environment whose repository `plugin:local` lives in `repo/` through
    /// `plugin`, a directory store taking a `path` setting (`dir`, `dir-c`, `dir-py`),
    /// initialized (cheap KDF).
    pub fn with_store_plugin(plugin: &str) -> Self {
        let mut env = Self::with_plugins();
        env.install_plugin(plugin).ok();
        env.configure(&format!(
            "[plugins.local]\nplugin = \"{plugin}\"\n[plugins.local.config]\npath = \"{}\"\n\
             [plugins.local.grant]\ndirs = [{{ path = \"{}\", access = \"read-write\" }}]\n",
            env.root.display(),
            env.dir.path().display()
        ));
        env.repo = PathBuf::from("plugin:local");
        env.init().ok();
        env
    }

    /// A fresh environment with an initialized repository (cheap KDF).
    pub fn with_repo() -> Self {
        let env = Self::new();
        env.init().ok();
        env
    }

    /// The repository opened in this process (to set up states the CLI cannot make).
    pub fn open_repo(&self) -> cairn_repo::Repository {
        let backend =
            cairn_backend::open_location(self.root.to_str().expect("utf-8 path")).expect("backend");
        cairn_repo::Repository::open(backend, self.password.as_bytes()).expect("open repository")
    }

    /// A path below the temporary directory.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Runs `cairn backup --json SRC`, watching it: its output and its peak resident set
    /// size in bytes (the highest `VmHWM` seen while it ran).
    pub fn backup_watching_memory(&self, src: &Path) -> (std::process::Output, u64) {
        let mut backup = self
            .cmd(&["backup", "--json", src.to_str().unwrap()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut peak = 0;
        while backup.try_wait().unwrap().is_none() {
            peak = peak.max(peak_rss(backup.id()).unwrap_or(0));
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        (backup.wait_with_output().unwrap(), peak)
    }

    /// A `cairn` command against the repository, with the password in the environment.
    pub fn cmd<S: AsRef<OsStr>>(&self, args: &[S]) -> Command {
        let mut c = Command::new(cairn_bin());
        c.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("AWS_ACCESS_KEY_ID", servers::S3_KEY)
            .env("AWS_SECRET_ACCESS_KEY", servers::S3_SECRET)
            .env("CAIRN_REPOSITORY", &self.repo)
            .env("CAIRN_PASSWORD", &self.password)
            .envs(self.envs.iter().map(|(k, v)| (k, v)))
            .args(args)
            .stdin(Stdio::null());
        c
    }

    /// Runs `cairn` and waits.
    pub fn run<S: AsRef<OsStr>>(&self, args: &[S]) -> Run {
        self.cmd(args).output().expect("run cairn").into()
    }

    /// Runs `cairn args`, killing it after `limit`: `None` when it had to be killed (it hung).
    pub fn run_bounded<S: AsRef<OsStr>>(
        &self,
        args: &[S],
        limit: std::time::Duration,
    ) -> Option<Run> {
        let mut child = self
            .cmd(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start cairn");
        let start = std::time::Instant::now();
        while child.try_wait().expect("wait for cairn").is_none() {
            if start.elapsed() > limit {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Some(child.wait_with_output().expect("cairn's output").into())
    }

    /// Backs up `paths` with `--json` and returns the summary.
    #[track_caller]
    pub fn backup(&self, paths: &[&Path]) -> serde_json::Value {
        let mut args: Vec<&OsStr> = vec![OsStr::new("backup"), OsStr::new("--json")];
        args.extend(paths.iter().map(|p| p.as_os_str()));
        self.run(&args).last_json()
    }

    /// The ids of all snapshots, oldest first (from `snapshots --json`).
    #[track_caller]
    pub fn snapshot_ids(&self) -> Vec<String> {
        self.run(&["snapshots", "--json"])
            .json()
            .as_array()
            .expect("a list")
            .iter()
            .map(|s| s["id"].as_str().expect("an id").to_owned())
            .collect()
    }

    /// Restores `latest` with `--verify` into a new directory named `dir`; returns it.
    #[track_caller]
    pub fn restore_verified(&self, dir: &str) -> PathBuf {
        let out = self.path(dir);
        let target = out.to_str().expect("utf-8 path");
        self.run(&["restore", "latest", "--target", target, "--verify"])
            .ok();
        out
    }

    /// The node `name` of the directory `dir` in the latest snapshot (`cat tree`'s JSON).
    #[track_caller]
    pub fn tree_node(&self, dir: &str, name: &str) -> serde_json::Value {
        let tree = self.run(&["cat", "tree", &format!("latest:{dir}")]).json();
        tree["nodes"]
            .as_array()
            .expect("a tree's nodes")
            .iter()
            .find(|n| n["name"] == name)
            .unwrap_or_else(|| panic!("{dir} has no {name}: {tree}"))
            .clone()
    }

    /// Files of a type in the repository directory.
    pub fn repo_files(&self, dir: &str) -> Vec<PathBuf> {
        fn walk(p: &Path, out: &mut Vec<PathBuf>) {
            if let Ok(rd) = std::fs::read_dir(p) {
                for e in rd.flatten() {
                    let path = e.path();
                    if path.is_dir() {
                        walk(&path, out);
                    } else if !e.file_name().to_string_lossy().starts_with('.') {
                        out.push(path);
                    }
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.root.join(dir), &mut out);
        out.sort();
        out
    }
}

/// The highest resident set size a running process has reached, in bytes.
fn peak_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// `cairn snapshots --json` of the repository `repo` with `password_file`, oldest first.
///
/// # Panics
/// When the command fails.
pub fn snapshots_of(repo: &Path, password_file: &Path) -> Vec<serde_json::Value> {
    let out = Command::new(cairn_bin())
        .args(["--json", "snapshots", "-r"])
        .arg(repo)
        .arg("--password-file")
        .arg(password_file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    match serde_json::from_slice(&out.stdout).unwrap() {
        serde_json::Value::Array(a) => a,
        other => panic!("not a list: {other}"),
    }
}
