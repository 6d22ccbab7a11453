//! `cairn agent serve` as a test process over a configuration file, and the CLI that talks
//! to it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::servers::{Watched, free_ports, spawn_watched};
use crate::{Run, cairn_bin};

/// A running agent.
pub struct Agent {
    /// Its address (`127.0.0.1:PORT`).
    pub addr: String,
    /// Its configuration file.
    pub config: PathBuf,
    /// Where its log goes.
    pub log: PathBuf,
    /// The token file the CLI is given (`--token-file`), when its API wants one.
    pub token: Option<PathBuf>,
    server: Option<Watched>,
    dir: PathBuf,
}

impl Agent {
    /// Writes `[agent]` (state under `dir`, a free port, `agent_extra` lines) and `apps`
    /// into `dir/agent.toml`, and starts the agent on it.
    pub fn start(dir: &Path, agent_extra: &str, apps: &str) -> Agent {
        let port = free_ports(1)[0];
        let addr = format!("127.0.0.1:{port}");
        let config = dir.join("agent.toml");
        std::fs::create_dir_all(dir).expect("agent dir");
        std::fs::write(
            &config,
            format!(
                "[agent]\nstate = \"{}\"\nlisten = \"{addr}\"\n{agent_extra}\n\n{apps}\n",
                dir.join("state").display()
            ),
        )
        .expect("write the agent's configuration");
        let mut agent = Agent {
            addr,
            config,
            log: dir.join("agent.log"),
            token: None,
            server: None,
            dir: dir.to_path_buf(),
        };
        agent.restart();
        agent
    }

    /// Starts it (again), waiting until it listens.
    pub fn restart(&mut self) {
        let _ = std::fs::remove_file(&self.log);
        let args = vec![
            "--config".to_owned(),
            self.config.to_string_lossy().into_owned(),
            "agent".to_owned(),
            "serve".to_owned(),
        ];
        self.server = Some(spawn_watched(cairn_bin(), &args, &[], &self.dir, "agent"));
        let start = Instant::now();
        while !std::fs::read_to_string(&self.log).is_ok_and(|l| l.contains("agent listening on")) {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "the agent did not start: {}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Ends it with `signal` and waits until it is gone.
    pub fn stop_with(&mut self, signal: nix::sys::signal::Signal) {
        if let Some(server) = self.server.take() {
            server.signal(signal);
            drop(server);
        }
    }

    /// `cairn [GLOBAL] agent ARGS --agent ADDR [--token-file FILE]`.
    fn command(&self, global: &[&str], args: &[&str]) -> Run {
        let mut c = Command::new(cairn_bin());
        c.args(global)
            .arg("agent")
            .args(args)
            .arg("--agent")
            .arg(&self.addr);
        if let Some(t) = &self.token {
            c.arg("--token-file").arg(t);
        }
        c.output().expect("run cairn agent").into()
    }

    /// `cairn agent ARGS --agent ADDR`.
    pub fn cli(&self, args: &[&str]) -> Run {
        self.command(&[], args)
    }

    /// Every app's status.
    pub fn status(&self) -> Vec<serde_json::Value> {
        let run = self.command(&["--json"], &["status"]);
        run.json().as_array().cloned().unwrap_or_default()
    }

    /// App `app`'s status.
    pub fn app(&self, app: &str) -> serde_json::Value {
        self.status()
            .into_iter()
            .find(|a| a["app"] == app)
            .unwrap_or_else(|| panic!("no app {app} in the agent's status"))
    }

    /// The runs (of `app`), newest first.
    pub fn runs(&self, app: Option<&str>) -> Vec<serde_json::Value> {
        let mut args = vec!["history", "--limit", "1000"];
        if let Some(a) = app {
            args.push(a);
        }
        let run = self.command(&["--json"], &args);
        run.json().as_array().cloned().unwrap_or_default()
    }

    /// Waits (up to `secs`) until `done` holds, naming `what` when it does not.
    pub fn wait_for(&self, secs: u64, what: &str, mut done: impl FnMut(&Agent) -> bool) {
        let start = Instant::now();
        while !done(self) {
            assert!(
                start.elapsed() < Duration::from_secs(secs),
                "{what} did not happen; status {:?}\nlog:\n{}",
                self.status(),
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
