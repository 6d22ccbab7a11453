//! restic itself (Debian's 0.14), as a peer the tests compare with and as a client of the
//! gateway.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::servers::find_program;

/// restic with its own cache and password.
pub struct Restic {
    bin: PathBuf,
    cache: PathBuf,
}

impl Restic {
    /// restic with its cache below `dir`.
    pub fn new(dir: &Path) -> Restic {
        Restic {
            bin: find_program("restic", "CAIRN_TEST_RESTIC", "apt-get install restic"),
            cache: dir.join("restic-cache"),
        }
    }

    /// Runs `restic -r REPO ARGS` in `cwd` and waits.
    pub fn run_in(&self, cwd: &Path, repo: &str, args: &[&str]) -> Output {
        Command::new(&self.bin)
            .current_dir(cwd)
            .arg("-r")
            .arg(repo)
            .arg("--cache-dir")
            .arg(&self.cache)
            .args(args)
            .env("RESTIC_PASSWORD", "restic test password")
            .output()
            .expect("run restic")
    }

    /// Runs `restic -r REPO ARGS` and waits.
    pub fn run(&self, repo: &str, args: &[&str]) -> Output {
        self.run_in(Path::new("."), repo, args)
    }

    /// As [`Restic::run_in`], asserting success; its stdout.
    #[track_caller]
    pub fn ok_in(&self, cwd: &Path, repo: &str, args: &[&str]) -> String {
        let out = self.run_in(cwd, repo, args);
        assert!(
            out.status.success(),
            "restic {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// As [`Restic::run`], asserting success; its stdout.
    #[track_caller]
    pub fn ok(&self, repo: &str, args: &[&str]) -> String {
        self.ok_in(Path::new("."), repo, args)
    }
}
