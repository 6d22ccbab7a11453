//! The global arguments and the environment, resolved once in `main` into the session every
//! command uses (`cairn_apps::Session`: backends, passwords, locks, plugins, the
//! configuration file), beside the output flags.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use cairn_apps::{Hints, Password, PasswordSource, Session, Settings};

use crate::args::GlobalArgs;
use crate::env_vars::EnvVars;

pub use cairn_apps::units::{parse_duration, parse_size};

/// What a command gets: the global arguments (for output: `--json`, `--quiet`) and the
/// session resolved from them. Session methods are called on it directly (`ctx.open()`).
pub struct Ctx {
    pub global: GlobalArgs,
    pub session: Session,
}

impl std::ops::Deref for Ctx {
    type Target = Session;

    fn deref(&self) -> &Session {
        &self.session
    }
}

impl Ctx {
    /// Resolves `global` and the environment.
    ///
    /// # Errors
    /// When a setting is malformed (`-o` not KEY=VALUE, `--retry-lock` not a duration, a
    /// `rest:` credential not UTF-8).
    pub fn new(global: GlobalArgs, cancel: Arc<AtomicBool>) -> Result<Ctx> {
        let settings = settings(&global)?;
        let session = Session::new(settings, cancel).with_prompt(Box::new(prompt));
        Ok(Ctx { global, session })
    }

    /// Opens the other repository of `copy` / `init --copy-chunker-params`.
    ///
    /// # Errors
    /// When none is given or it cannot be opened.
    pub fn open_from(&self, from: &crate::args::FromRepoArgs) -> Result<cairn_repo::Repository> {
        let location = from.from_repo.as_deref().ok_or_else(|| {
            anyhow!(
                "no source repository: use --from-repo or set {}",
                EnvVars::CAIRN_FROM_REPOSITORY
            )
        })?;
        let source = PasswordSource {
            insecure_empty: from.from_insecure_no_password,
            file: from.from_password_file.clone(),
            command: from.from_password_command.clone(),
            value: std::env::var_os(EnvVars::CAIRN_FROM_PASSWORD).map(|v| v.into_encoded_bytes()),
        };
        self.open_at(
            location,
            &source,
            "enter the password of the source repository: ",
        )
        .map_err(|e| e.context("source repository").into())
    }

    /// The flag Ctrl-C and SIGTERM set.
    pub fn cancel(&self) -> &Arc<AtomicBool> {
        self.session.cancel()
    }
}

fn settings(g: &GlobalArgs) -> Result<Settings> {
    let retry_lock = match &g.retry_lock {
        Some(d) => parse_duration(d)?,
        None => Duration::ZERO,
    };
    let options = g
        .options
        .iter()
        .map(|o| {
            o.split_once('=')
                .filter(|(k, _)| !k.is_empty())
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .ok_or_else(|| anyhow!("`-o {o}` is not KEY=VALUE"))
        })
        .collect::<Result<Vec<_>>>()?;
    let cache_dir = if g.no_cache {
        None
    } else {
        g.cache_dir
            .clone()
            .or_else(|| xdg_dir(EnvVars::XDG_CACHE_HOME, ".cache").map(|d| d.join("cairn")))
    };
    let plugin_dir = g.plugin_dir.clone().or_else(|| {
        xdg_dir(EnvVars::XDG_DATA_HOME, ".local/share").map(|d| d.join("cairn/plugins"))
    });
    // `--config`, else the default file when it exists.
    let config = g.config.clone().or_else(|| {
        xdg_dir(EnvVars::XDG_CONFIG_HOME, ".config")
            .map(|d| d.join("cairn/config.toml"))
            .filter(|p| p.exists())
    });
    let repository = match &g.repository_file {
        Some(file) => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read the repository file {}", file.display()))?;
            let location = text.lines().next().unwrap_or("").trim();
            if location.is_empty() {
                bail!(
                    "the repository file {} is empty: write the repository's location on its \
                     first line",
                    file.display()
                );
            }
            Some(location.to_owned())
        }
        None => g.repo.clone(),
    };
    Ok(Settings {
        repository,
        password: PasswordSource {
            insecure_empty: g.insecure_no_password,
            file: g.password_file.clone(),
            command: g.password_command.clone(),
            value: std::env::var_os(EnvVars::CAIRN_PASSWORD).map(|v| v.into_encoded_bytes()),
        },
        cache_dir,
        plugin_dir,
        config,
        ca_cert: g.ca_cert.clone(),
        connections: g.connections,
        rest_credentials: rest_credentials()?,
        options,
        host_root: g.host_root.clone().unwrap_or_default(),
        no_default_grants: g.no_default_grants,
        retry_lock,
        allow_costly_kdf: g.allow_costly_kdf,
        actor: cairn_apps::actor(),
        hints: Hints {
            repository: format!(
                "no repository given: use -r/--repo or --repository-file, or set {} or {}",
                EnvVars::CAIRN_REPOSITORY,
                EnvVars::CAIRN_REPOSITORY_FILE
            ),
            password: format!(
                "no password given: use --password-file or {}, --password-command or {}, set \
                 {}, or run on a terminal to be prompted (--insecure-no-password for demos \
                 and tests)",
                EnvVars::CAIRN_PASSWORD_FILE,
                EnvVars::CAIRN_PASSWORD_COMMAND,
                EnvVars::CAIRN_PASSWORD
            ),
            plugin_dir: format!(
                "no plugin store: use --plugin-dir or set {} (or HOME)",
                EnvVars::CAIRN_PLUGIN_DIR
            ),
        },
    })
}

/// Asks on the terminal, when stdin and stderr are one.
fn prompt(text: &str) -> Option<cairn_repo::Result<Password>> {
    if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
        return None;
    }
    let _ = std::io::stderr().flush();
    Some(
        rpassword::prompt_password(text)
            .map(|p| Password::new(p.into_bytes()))
            .map_err(|e| cairn_repo::Error::io("cannot read the password", e)),
    )
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

/// The XDG base directory in `var`, else `$HOME/<fallback>`.
pub fn xdg_dir(var: &str, fallback: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .map(PathBuf::from)
        .or_else(|| std::env::var_os(EnvVars::HOME).map(|h| PathBuf::from(h).join(fallback)))
}
