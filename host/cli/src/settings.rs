//! Resolving global arguments and the environment into what commands use: the backend, the
//! password, who is acting, locks, and the cancel flag set by Ctrl-C / SIGTERM.

use std::io::{IsTerminal, Write};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use cairn_repo::lock::LockGuard;
use cairn_repo::{Actor, Backend, ErrorKind, Repository};

use crate::args::GlobalArgs;
use crate::env_vars::EnvVars;

/// A password, never printed.
pub struct Password(Vec<u8>);

impl Password {
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

impl Drop for Password {
    fn drop(&mut self) {
        self.0.iter_mut().for_each(|b| *b = 0);
    }
}

/// The user name and password for a `rest:` server from `CAIRN_REST_USERNAME` and
/// `CAIRN_REST_PASSWORD`, when either is set (the other is then empty). Credentials in the
/// URL win over these (cairn-backend decides).
fn rest_credentials() -> Result<Option<(String, String)>> {
    let var = |name: &str| match std::env::var(name) {
        Ok(v) => Ok(Some(v)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(anyhow!("{name} is not valid UTF-8")),
    };
    let user = var(EnvVars::CAIRN_REST_USERNAME)?;
    let password = var(EnvVars::CAIRN_REST_PASSWORD)?;
    Ok((user.is_some() || password.is_some())
        .then(|| (user.unwrap_or_default(), password.unwrap_or_default())))
}

fn first_line(data: Vec<u8>) -> Vec<u8> {
    let end = data.iter().position(|&b| b == b'\n').unwrap_or(data.len());
    let mut line = data[..end].to_vec();
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    line
}

/// Everything a command needs from the global settings.
pub struct Ctx {
    pub global: GlobalArgs,
    pub cancel: Arc<AtomicBool>,
}

impl Ctx {
    pub fn location(&self) -> Result<&str> {
        self.global.repo.as_deref().ok_or_else(|| {
            anyhow!(
                "no repository given: use -r/--repo or set {}",
                EnvVars::CAIRN_REPOSITORY
            )
        })
    }

    pub fn backend(&self) -> Result<Arc<dyn Backend>> {
        self.backend_at(self.location()?)
    }

    /// The backend for `location`, with the cache and connection settings.
    pub fn backend_at(&self, location: &str) -> Result<Arc<dyn Backend>> {
        if let Some(name) = location.strip_prefix("plugin:") {
            let backend: Arc<dyn Backend> = Arc::new(self.plugin_backend(name)?);
            return Ok(match self.cache_dir() {
                Some(dir) => Arc::new(cairn_backend::CachedBackend::new(backend, &dir)),
                None => backend,
            });
        }
        let mut opts = cairn_backend::OpenOptions::default();
        opts.remote = cairn_backend::RemoteOptions::default()
            .connections(self.global.connections.unwrap_or(0));
        if let Some(ca) = &self.global.ca_cert {
            let pem = std::fs::read(ca)
                .with_context(|| format!("cannot read the CA certificate file {}", ca.display()))?;
            opts.remote = opts.remote.ca_pem(pem);
        }
        if location.starts_with("rest:")
            && let Some((user, password)) = rest_credentials()?
        {
            opts.remote = opts.remote.rest_credentials(&user, &password);
        }
        opts.cache_dir = self.cache_dir();
        Ok(cairn_backend::open_location_with(location, &opts)?)
    }

    /// The cache directory: none with `--no-cache`, else `--cache-dir`, else the user's
    /// (`$XDG_CACHE_HOME/cairn` or `~/.cache/cairn`).
    pub fn cache_dir(&self) -> Option<std::path::PathBuf> {
        if self.global.no_cache {
            return None;
        }
        self.global
            .cache_dir
            .clone()
            .or_else(|| xdg_dir(EnvVars::XDG_CACHE_HOME, ".cache").map(|d| d.join("cairn")))
    }

    /// The password, from (in order) `--insecure-no-password`, `--password-file`,
    /// `--password-command`, `CAIRN_PASSWORD`, or a prompt on a terminal.
    pub fn password(&self, prompt: &str) -> Result<Password> {
        read_password(
            self.global.insecure_no_password,
            self.global.password_file.as_deref(),
            self.global.password_command.as_deref(),
            std::env::var_os(EnvVars::CAIRN_PASSWORD).map(|v| v.into_encoded_bytes()),
            prompt,
        )
    }

    /// Opens the repository.
    pub fn open(&self) -> Result<Repository> {
        let backend = self.backend()?;
        let password = self.password("enter repository password: ")?;
        Ok(self.open_backend(backend, password.bytes())?)
    }

    /// Opens the repository on `backend` with `password`: key slots within the KDF limits
    /// (`--allow-costly-kdf`), cheapest first, stopped by Ctrl-C / SIGTERM.
    pub fn open_backend(
        &self,
        backend: Arc<dyn Backend>,
        password: &[u8],
    ) -> cairn_repo::Result<Repository> {
        let opts =
            cairn_repo::OpenOptions::default().allow_costly_kdf(self.global.allow_costly_kdf);
        Repository::open_with(backend, password, &opts, &self.cancel)
    }

    /// The KDF limits of new key slots (`--allow-costly-kdf`).
    pub fn kdf_limits(&self) -> cairn_repo::KdfLimits {
        if self.global.allow_costly_kdf {
            cairn_repo::KdfLimits::UNLIMITED
        } else {
            cairn_repo::KdfLimits::DEFAULT
        }
    }

    /// Opens the other repository of `copy` / `init --copy-chunker-params`.
    pub fn open_from(&self, from: &crate::args::FromRepoArgs) -> Result<Repository> {
        let location = from.from_repo.as_deref().ok_or_else(|| {
            anyhow!(
                "no source repository: use --from-repo or set {}",
                EnvVars::CAIRN_FROM_REPOSITORY
            )
        })?;
        let backend = self.backend_at(location)?;
        let password = read_password(
            from.from_insecure_no_password,
            from.from_password_file.as_deref(),
            from.from_password_command.as_deref(),
            std::env::var_os(EnvVars::CAIRN_FROM_PASSWORD).map(|v| v.into_encoded_bytes()),
            "enter the password of the source repository: ",
        )?;
        self.open_backend(backend, password.bytes())
            .map_err(|e| e.context("source repository").into())
    }

    pub fn actor(&self) -> Actor {
        actor()
    }

    /// Takes a repository lock, waiting up to `--retry-lock` for a conflicting one to go away.
    pub fn lock(&self, repo: &Repository, exclusive: bool) -> Result<LockGuard> {
        let wait = match &self.global.retry_lock {
            Some(d) => parse_duration(d)?,
            None => Duration::ZERO,
        };
        let deadline = Instant::now() + wait;
        loop {
            match cairn_repo::lock::lock(repo, exclusive, &self.actor(), std::process::id()) {
                Ok(g) => return Ok(g.cancel_on_loss(self.cancel.clone())),
                Err(e) if e.kind() == ErrorKind::Locked && Instant::now() < deadline => {
                    tracing::info!("{e}; retrying");
                    std::thread::sleep(Duration::from_secs(2).min(deadline - Instant::now()));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// The XDG base directory in `var`, else `$HOME/<fallback>`.
pub fn xdg_dir(var: &str, fallback: &str) -> Option<std::path::PathBuf> {
    std::env::var_os(var)
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os(EnvVars::HOME).map(|h| std::path::PathBuf::from(h).join(fallback))
        })
}

pub fn actor() -> Actor {
    let hostname = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into());
    let username = nix::unistd::User::from_uid(nix::unistd::geteuid())
        .ok()
        .flatten()
        .map(|u| u.name)
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_default();
    Actor { hostname, username }
}

/// Reads a password from the first source given.
pub fn read_password(
    insecure_empty: bool,
    file: Option<&std::path::Path>,
    command: Option<&str>,
    env: Option<Vec<u8>>,
    prompt: &str,
) -> Result<Password> {
    if insecure_empty {
        return Ok(Password(Vec::new()));
    }
    if let Some(f) = file {
        let data = std::fs::read(f)
            .with_context(|| format!("cannot read the password file {}", f.display()))?;
        return Ok(Password(first_line(data)));
    }
    if let Some(cmd) = command {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .context("cannot run the password command")?;
        if !out.status.success() {
            bail!("the password command failed ({})", out.status);
        }
        return Ok(Password(first_line(out.stdout)));
    }
    if let Some(p) = env {
        return Ok(Password(p));
    }
    if std::io::stdin().is_terminal() && std::io::stderr().is_terminal() {
        let _ = std::io::stderr().flush();
        let p = rpassword::prompt_password(prompt).context("cannot read the password")?;
        return Ok(Password(p.into_bytes()));
    }
    bail!(
        "no password given: use --password-file or {}, --password-command or {}, set {}, \
         or run on a terminal to be prompted (--insecure-no-password for demos and tests)",
        EnvVars::CAIRN_PASSWORD_FILE,
        EnvVars::CAIRN_PASSWORD_COMMAND,
        EnvVars::CAIRN_PASSWORD
    )
}

/// Parses `90s`, `5m`, `2h`, `1h30m`, or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration> {
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let sd: jiff::SignedDuration = s
        .parse::<jiff::Span>()
        .ok()
        .and_then(|sp| {
            sp.to_duration(jiff::SpanRelativeTo::days_are_24_hours())
                .ok()
        })
        .ok_or_else(|| anyhow!("`{s}` is not a duration (e.g. 30s, 5m, 1h30m)"))?;
    Duration::try_from(sd).map_err(|_| anyhow!("duration `{s}` must not be negative"))
}

/// Parses sizes like `512K`, `16M`, `1G` or bytes.
pub fn parse_size(s: &str) -> Result<u64> {
    let t = s.trim();
    let (num, mult) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let mult = match c.to_ascii_uppercase() {
                'K' => 1 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                'T' => 1 << 40,
                'B' => 1,
                _ => bail!("`{s}` is not a size (use a number with K, M, G or T)"),
            };
            (&t[..i], mult)
        }
        _ => (t, 1),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| anyhow!("`{s}` is not a size (use a number with K, M, G or T)"))?;
    n.checked_mul(mult)
        .ok_or_else(|| anyhow!("size `{s}` is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_size("512K").unwrap(), 512 * 1024);
        assert_eq!(parse_size("16M").unwrap(), 16 << 20);
        assert_eq!(parse_size("7").unwrap(), 7);
        assert!(parse_size("x").is_err());
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert!(parse_duration("soon").is_err());
    }
}
