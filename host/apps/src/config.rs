//! The operator's configuration file (TOML): plugin instances, each with its settings and
//! grants, and apps, each with its volumes, hooks and repository.
//!
//! ```toml
//! [plugins.offsite]            # -r plugin:offsite
//! plugin = "rest"              # the installed plugin (default: the instance's name)
//! [plugins.offsite.config]
//! url = "http://127.0.0.1:8000/repo/"
//! password = "…"               # secret settings are never logged or printed
//! [plugins.offsite.grant]
//! http = ["127.0.0.1:8000"]
//!
//! [plugins.kubelet.grant]      # a discovery plugin: sees only what is granted, read-only
//! dirs = [{ path = "/var/lib/kubelet" }, { path = "/var/log/pods" }]
//!
//! [apps.shop]
//! volumes = ["k8s/shop/**"]        # identity globs (default: volumes discovery assigns to `shop`)
//! repository = "/srv/backup/shop"  # default: -r
//! password-file = "/etc/cairn/shop.pass"
//! [[apps.shop.hooks]]
//! plugin = "http-hook"             # an installed hook plugin
//! on-error = "fail"                # or "continue"
//! timeout = "30s"                  # per phase (capped by the grant's wall-ms)
//! config = { url = "http://127.0.0.1:8080", pre-backup = "/maintenance/on" }
//! grant = { http = ["127.0.0.1:8080"] }
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cairn_plugin_host::Grants;
use cairn_repo::{Error, ErrorKind, Result};
use serde::Deserialize;

/// The operator's configuration file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Plugin instances by name.
    #[serde(default)]
    pub plugins: BTreeMap<String, Instance>,
    /// Apps by name.
    #[serde(default)]
    pub apps: BTreeMap<String, App>,
    /// `cairn gateway serve`'s settings (the keys of its flags; read by that command).
    pub gateway: Option<toml::Table>,
    /// `cairn agent`'s node settings (read by the agent).
    pub agent: Option<toml::Table>,
}

/// One plugin instance: which plugin, its settings, its grants.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Instance {
    /// The installed plugin (default: the instance's name).
    pub plugin: Option<String>,
    /// Its settings (strings, numbers and booleans).
    #[serde(default)]
    pub config: BTreeMap<String, toml::Value>,
    /// What the operator allows it.
    #[serde(default)]
    pub grant: Grants,
}

/// An app.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct App {
    /// Globs over volume identities (`*` stays within one `/` part, `**` crosses them);
    /// empty: the volumes discovery assigns to the app's name.
    #[serde(default)]
    pub volumes: Vec<String>,
    /// Its repository (default: the global one).
    pub repository: Option<String>,
    /// The file holding its repository's password (default: the global password).
    pub password_file: Option<PathBuf>,
    /// For a `rest:` repository: a file holding `NAME:TOKEN`, the credential the app's
    /// backups use (e.g. its `cairn gateway` app credential). Credentials written in the URL
    /// win over it.
    pub rest_credentials_file: Option<PathBuf>,
    /// Its hooks, run in order (post hooks too).
    #[serde(default)]
    pub hooks: Vec<HookSpec>,
    /// Plain directories it backs up, each as a volume of its own (`paths/<app>/<path>`),
    /// for hosts without discovery.
    #[serde(default)]
    pub paths: Vec<PathBuf>,
    /// Buckets it backs up (`s3:http://HOST:PORT/BUCKET/PREFIX`, `s3://…`, `az://…`,
    /// `gs://…`), each as a volume of its own (`buckets/<app>/<store>/<bucket>/<prefix>`):
    /// objects become files, and an object whose size and ETag are unchanged is not
    /// downloaded again.
    #[serde(default)]
    pub buckets: Vec<String>,
    /// For its `s3:` buckets: a file holding `ACCESS_KEY:SECRET`, the keys they are read
    /// (and restored) with (default: the environment's `AWS_*`, or the AWS profile).
    pub bucket_credentials_file: Option<PathBuf>,
    /// When the agent backs it up: 5-field cron or an alias (`@daily`).
    pub schedule: Option<String>,
    /// The time zone of `schedule` (IANA name; default: the node's).
    pub time_zone: Option<String>,
    /// Up to how long after each scheduled time the run starts (spread over apps).
    pub jitter: Option<String>,
    /// What the agent keeps after each successful backup.
    pub retention: Option<Retention>,
    /// Apps whose success (since this app's last run) starts this one.
    #[serde(default)]
    pub after: Vec<String>,
    /// The most one run may take.
    pub timeout: Option<String>,
    /// Whether the agent leaves it alone (manual runs still work).
    #[serde(default)]
    pub paused: bool,
}

/// Retention rules, as restic's `forget --keep-*` (a count, or -1 for unlimited).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Retention {
    /// The newest n.
    pub keep_last: Option<i64>,
    /// The newest of each of the last n hours.
    pub keep_hourly: Option<i64>,
    /// … days.
    pub keep_daily: Option<i64>,
    /// … ISO weeks.
    pub keep_weekly: Option<i64>,
    /// … months.
    pub keep_monthly: Option<i64>,
    /// … years.
    pub keep_yearly: Option<i64>,
    /// Every snapshot within this calendar duration of the newest (`1y2m3d4h`).
    pub keep_within: Option<String>,
    /// The newest of each hour within this duration.
    pub keep_within_hourly: Option<String>,
    /// … day.
    pub keep_within_daily: Option<String>,
    /// … week.
    pub keep_within_weekly: Option<String>,
    /// … month.
    pub keep_within_monthly: Option<String>,
    /// … year.
    pub keep_within_yearly: Option<String>,
    /// Snapshots with any of these tags.
    #[serde(default)]
    pub keep_tag: Vec<String>,
}

impl Retention {
    /// The engine's policy for these rules.
    ///
    /// # Errors
    /// When a count is below -1 or a duration is not a calendar duration (the message names
    /// the rule as `keep-NAME`).
    pub fn policy(&self) -> Result<cairn_repo::ops::forget::KeepPolicy> {
        use cairn_repo::ops::forget::{CalendarDuration, Count, KeepPolicy, Period};
        let mut p = KeepPolicy::default();
        for (period, name, v) in [
            (Period::Last, "last", self.keep_last),
            (Period::Hourly, "hourly", self.keep_hourly),
            (Period::Daily, "daily", self.keep_daily),
            (Period::Weekly, "weekly", self.keep_weekly),
            (Period::Monthly, "monthly", self.keep_monthly),
            (Period::Yearly, "yearly", self.keep_yearly),
        ] {
            let count = match v {
                None => continue,
                Some(-1) => Count::Unlimited,
                Some(n) => Count::N(u32::try_from(n).map_err(|_| {
                    Error::invalid(format!(
                        "keep-{name} {n}: give a count, or -1 for unlimited"
                    ))
                })?),
            };
            p.counts.insert(period, count);
        }
        let within = |name: &str, v: &Option<String>| {
            v.as_deref()
                .map(|d| CalendarDuration::parse(d).map_err(|e| e.context(format!("keep-{name}"))))
                .transpose()
        };
        p.within = within("within", &self.keep_within)?;
        for (period, name, v) in [
            (Period::Hourly, "within-hourly", &self.keep_within_hourly),
            (Period::Daily, "within-daily", &self.keep_within_daily),
            (Period::Weekly, "within-weekly", &self.keep_within_weekly),
            (Period::Monthly, "within-monthly", &self.keep_within_monthly),
            (Period::Yearly, "within-yearly", &self.keep_within_yearly),
        ] {
            if let Some(d) = within(name, v)? {
                p.within_buckets.insert(period, d);
            }
        }
        p.tags.clone_from(&self.keep_tag);
        Ok(p)
    }
}

/// One hook of an app: a hook plugin with this app's settings and grants.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct HookSpec {
    /// The installed hook plugin.
    pub plugin: String,
    /// What a failure does: `fail` (the default) stops the app's backup or restore, after
    /// the post hooks; `continue` carries on.
    #[serde(default)]
    pub on_error: OnError,
    /// The most one phase may take (e.g. `30s`).
    pub timeout: Option<String>,
    /// Its settings.
    #[serde(default)]
    pub config: BTreeMap<String, toml::Value>,
    /// What this app allows it.
    #[serde(default)]
    pub grant: Grants,
}

/// What a failing hook does.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnError {
    /// Stop the app's step (post hooks still run).
    #[default]
    Fail,
    /// Note it and carry on.
    Continue,
}

impl ConfigFile {
    /// Reads `path`.
    ///
    /// # Errors
    /// When it cannot be read or is not a valid configuration file (the message names it).
    pub fn load(path: &Path) -> Result<ConfigFile> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::io(
                format!("cannot read the configuration file {}", path.display()),
                e,
            )
        })?;
        ConfigFile::parse(&text).map_err(|e| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("invalid configuration file {}: {e}", path.display()),
            )
        })
    }

    /// Parses a configuration file's text; the error says what is wrong where.
    ///
    /// # Errors
    /// When the text is not a valid configuration file.
    pub fn parse(text: &str) -> std::result::Result<ConfigFile, String> {
        toml::from_str(text).map_err(|e| e.message().to_owned())
    }

    /// App `name`, or an error saying it is not configured.
    ///
    /// # Errors
    /// When the file has no `[apps.NAME]`.
    pub fn app(&self, name: &str) -> Result<&App> {
        self.apps.get(name).ok_or_else(|| {
            Error::invalid(format!(
                "no app `{name}` in the configuration file ([apps.{name}])"
            ))
        })
    }
}

/// A setting from the configuration file as the plugin gets it.
///
/// # Errors
/// When the value is a table or an array.
pub fn setting_value(key: &str, value: &toml::Value) -> Result<String> {
    Ok(match value {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        _ => {
            return Err(Error::invalid(format!(
                "plugin setting `{key}` must be a string, number or boolean"
            )));
        }
    })
}
