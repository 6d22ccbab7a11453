//! The node's settings: the `[agent]` table of the configuration file, and the apps — its
//! `[apps.NAME]` tables and one `NAME.toml` per app in `apps-dir` (an app's definition can
//! ship with the app; removing its file stops its backups at the next reload).
//!
//! ```toml
//! [agent]
//! state = "/var/lib/cairn/agent"        # redb database
//! listen = "127.0.0.1:9470"             # HTTP API and /metrics (or "unix:/run/cairn/agent.sock")
//! concurrency = 1                       # jobs at once on this node
//! repository-concurrency = 1            # backups into one repository at once
//! repository = "/srv/backup/repo"       # default for apps that name none
//! password-file = "/etc/cairn/password"
//! apps-dir = "/etc/cairn/apps.d"        # optional: one NAME.toml per app
//! prune = "0 4 * * 0"                   # each repository's prune (cron or alias)
//! check = "0 5 * * *"                   # and check, reading
//! check-read-data-subset = "1/7"        # a subset (n/t rotates: 1/7, 2/7, …), 10%, 2G
//! maintenance-credentials-file = "/etc/cairn/node.credential"  # NAME:TOKEN for `rest:`
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cairn_apps::units::{parse_duration, parse_read_data};
use cairn_apps::{App, ConfigFile, Hints, PasswordSource, Settings};
use cairn_repo::ops::check::ReadData;
use cairn_repo::{Error, Result};
use serde::Deserialize;

use crate::schedule::Schedule;
use crate::store::Operation;

/// The `[agent]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct AgentSettings {
    /// The state directory (database).
    pub state: PathBuf,
    /// Where the HTTP API listens: `HOST:PORT` or `unix:PATH`.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// A file holding the token the API wants (`Authorization: Bearer TOKEN`); none: open
    /// (bind it to loopback or a unix socket).
    pub token_file: Option<PathBuf>,
    /// Jobs at once on this node.
    #[serde(default = "one")]
    pub concurrency: usize,
    /// Backups into one repository at once (a prune or check of it always runs alone).
    #[serde(default = "one")]
    pub repository_concurrency: usize,
    /// The repository of apps that name none.
    pub repository: Option<String>,
    /// Its password file.
    pub password_file: Option<PathBuf>,
    /// One `NAME.toml` per app.
    pub apps_dir: Option<PathBuf>,
    /// The plugin store.
    pub plugin_dir: Option<PathBuf>,
    /// The cache directory (default: `<state>/cache`).
    pub cache_dir: Option<PathBuf>,
    /// Where the node's file system is seen (`/host` in a container).
    pub host_root: Option<String>,
    /// Built-in discovery plugins that no `[plugins.NAME]` names may read their layout
    /// directories (default true; false: only what the configuration grants).
    #[serde(default = "yes")]
    pub default_grants: bool,
    /// How long a run waits for its repository's lock before it fails (default 10m).
    pub lock_wait: Option<String>,
    /// How long running jobs may go on after SIGTERM before they are cancelled (default 60s).
    pub grace: Option<String>,
    /// A Prometheus textfile (`.prom`) with a status gauge per app, for node_exporter.
    pub textfile: Option<PathBuf>,
    /// When each repository is pruned (cron or alias, the node's time zone).
    pub prune: Option<String>,
    /// When each repository is checked.
    pub check: Option<String>,
    /// What a check reads in full: `n/t` (the agent goes on to the next subset each time),
    /// `x%` or a size; none: structure only.
    pub check_read_data_subset: Option<String>,
    /// The Kubernetes API, for the inventory of this node's pods and the claims they mount
    /// (none: discovery reads the node's directories alone).
    pub kubernetes: Option<KubernetesSettings>,
    /// The node's Nomad agent, for the inventory of this node's allocations (none:
    /// discovery reads the node's directories alone).
    pub nomad: Option<NomadSettings>,
    /// A file holding `NAME:TOKEN`: the node's credential for the maintenance of `rest:`
    /// repositories (retention, prune, check, stale locks), e.g. a `cairn gateway` node
    /// credential while the apps back up with app credentials that cannot delete.
    pub maintenance_credentials_file: Option<PathBuf>,
}

/// The `[agent.kubernetes]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct KubernetesSettings {
    /// This node's name (default: `CAIRN_NODE_NAME`, from the Downward API's
    /// `spec.nodeName`).
    pub node: Option<String>,
    /// A kubeconfig (default: the pod's service account, else `KUBECONFIG`).
    pub kubeconfig: Option<PathBuf>,
    /// How long a backup waits for the API's first lists after the agent starts (default
    /// 60s); later ones run on what the API last said.
    pub wait: Option<String>,
}

impl KubernetesSettings {
    /// What the watches need: the node's name from the table or the environment.
    pub fn options(&self) -> cairn_kubernetes::ClusterOptions {
        cairn_kubernetes::ClusterOptions {
            kubeconfig: self.kubeconfig.clone(),
            node: self
                .node
                .clone()
                .or_else(|| std::env::var("CAIRN_NODE_NAME").ok())
                .unwrap_or_default(),
        }
    }

    /// The wait for the first lists.
    ///
    /// # Errors
    /// When `wait` is not a duration.
    pub fn wait(&self) -> Result<Duration> {
        first_lists_wait(self.wait.as_deref(), "[agent.kubernetes] wait")
    }
}

/// The `[agent.nomad]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct NomadSettings {
    /// The Nomad agent's address (default: `NOMAD_ADDR`, else `http://127.0.0.1:4646`).
    pub address: Option<String>,
    /// A file holding the ACL token (default: `NOMAD_TOKEN`).
    pub token_file: Option<PathBuf>,
    /// How long a backup waits for the first list after the agent starts (default 60s).
    pub wait: Option<String>,
}

impl NomadSettings {
    /// What the watch needs: the address, and the token from its file.
    ///
    /// # Errors
    /// When the token file cannot be read or is empty.
    pub fn options(&self) -> Result<cairn_nomad::NomadOptions> {
        let token = match &self.token_file {
            Some(f) => Some(crate::serve::read_token(f)?),
            None => None,
        };
        Ok(cairn_nomad::NomadOptions {
            address: self.address.clone(),
            token,
        })
    }

    /// The wait for the first list.
    ///
    /// # Errors
    /// When `wait` is not a duration.
    pub fn wait(&self) -> Result<Duration> {
        first_lists_wait(self.wait.as_deref(), "[agent.nomad] wait")
    }
}

/// A cluster table's `wait` (default 60s); `what` names it in an error.
fn first_lists_wait(wait: Option<&str>, what: &str) -> Result<Duration> {
    match wait {
        Some(d) => parse_duration(d).map_err(|e| e.context(what)),
        None => Ok(Duration::from_secs(60)),
    }
}

fn default_listen() -> String {
    "127.0.0.1:9470".into()
}

fn yes() -> bool {
    true
}

fn one() -> usize {
    1
}

/// An app as the agent runs it.
#[derive(Debug)]
pub struct AppDef {
    /// Its name.
    pub name: String,
    /// Its schedule.
    pub schedule: Option<Schedule>,
    /// The most one run may take.
    pub timeout: Option<Duration>,
    /// The apps it runs after.
    pub after: Vec<String>,
    /// Whether the scheduler leaves it alone.
    pub paused: bool,
    /// Its repository's location (its own, or the node's).
    pub repository: String,
}

/// A maintenance job of the node: one operation on one repository, on its schedule.
#[derive(Debug)]
pub struct MaintenanceDef {
    /// What it does.
    pub operation: Operation,
    /// The repository's location.
    pub repository: String,
    /// The location as shown (credentials as `***`).
    pub shown: String,
    /// The app whose settings (password, credentials) open the repository: the first by
    /// name of those that back up into it.
    pub app: String,
    /// Its schedule.
    pub schedule: Schedule,
    /// Which job it is: its runs carry it, and its schedule position is kept under it in the
    /// database. Made of the location without its credentials (a credential changed is the
    /// same repository).
    pub key: String,
}

/// Everything the agent runs on: the node's settings, the whole configuration (apps from
/// the file and the apps directory together), and each app as the scheduler sees it.
#[derive(Debug)]
pub struct NodeConfig {
    /// The `[agent]` table.
    pub agent: AgentSettings,
    /// The configuration file with every app.
    pub file: ConfigFile,
    /// The apps by name.
    pub apps: Vec<AppDef>,
    /// The maintenance jobs: prune and check of each repository the apps use.
    pub maintenance: Vec<MaintenanceDef>,
    /// What checks read in full.
    pub read_data: Option<ReadData>,
}

impl NodeConfig {
    /// Reads `path` and the apps directory it names.
    ///
    /// # Errors
    /// When a file cannot be read or is not valid, an app is defined twice, or an app's
    /// schedule, `after` or repository is wrong (each message names the file or app).
    pub fn load(path: &Path) -> Result<NodeConfig> {
        let mut file = ConfigFile::load(path)?;
        let table = file.agent.take().ok_or_else(|| {
            Error::invalid(format!(
                "{} has no [agent] table: give at least `state = \"DIR\"`",
                path.display()
            ))
        })?;
        let agent: AgentSettings = table.try_into().map_err(|e: toml::de::Error| {
            Error::invalid(format!(
                "invalid [agent] table in {}: {}",
                path.display(),
                e.message()
            ))
        })?;
        if let Some(dir) = &agent.apps_dir {
            for (name, app) in apps_in(dir)? {
                if file.apps.contains_key(&name) {
                    return Err(Error::invalid(format!(
                        "app `{name}` is defined in {} and in {}: keep one",
                        path.display(),
                        dir.join(format!("{name}.toml")).display()
                    )));
                }
                file.apps.insert(name, app);
            }
        }
        let mut apps = Vec::new();
        for (name, app) in &file.apps {
            apps.push(app_def(name, app, &agent, &file)?);
        }
        refuse_cycles(&apps)?;
        let read_data = agent
            .check_read_data_subset
            .as_deref()
            .map(parse_read_data)
            .transpose()
            .map_err(|e| e.context("[agent] check-read-data-subset"))?;
        let maintenance = maintenance(&agent, &apps)?;
        Ok(NodeConfig {
            agent,
            file,
            apps,
            maintenance,
            read_data,
        })
    }

    /// `app` as the node's maintenance opens its repository (with the node's
    /// `maintenance-credentials-file`), when that differs from how its backups open it: a
    /// credentials file is set and the repository takes credentials.
    pub fn maintenance_app(&self, app: &App) -> Option<App> {
        let file = self.agent.maintenance_credentials_file.as_ref()?;
        let location = app.repository.as_ref().or(self.agent.repository.as_ref())?;
        cairn_apps::session::takes_rest_credentials(location).then(|| {
            let mut app = app.clone();
            app.rest_credentials_file = Some(file.clone());
            app
        })
    }

    /// The session settings for the node's runs.
    ///
    /// # Errors
    /// When `lock-wait` is not a duration.
    pub fn settings(&self) -> Result<Settings> {
        let a = &self.agent;
        Ok(Settings {
            repository: a.repository.clone(),
            password: PasswordSource {
                file: a.password_file.clone(),
                ..PasswordSource::default()
            },
            cache_dir: Some(a.cache_dir.clone().unwrap_or_else(|| a.state.join("cache"))),
            plugin_dir: a.plugin_dir.clone(),
            config: None,
            ca_cert: None,
            connections: None,
            rest_credentials: None,
            options: Vec::new(),
            host_root: a.host_root.clone().unwrap_or_default(),
            no_default_grants: !a.default_grants,
            retry_lock: match &a.lock_wait {
                Some(d) => parse_duration(d).map_err(|e| e.context("[agent] lock-wait"))?,
                None => Duration::from_secs(600),
            },
            allow_costly_kdf: false,
            actor: cairn_apps::actor(),
            hints: Hints {
                repository: "no repository: set `repository` in [agent] or in the app".into(),
                password: "no password: set `password-file` in [agent] or in the app".into(),
                plugin_dir: "no plugin store: set `plugin-dir` in [agent]".into(),
            },
        })
    }

    /// The grace period after SIGTERM.
    ///
    /// # Errors
    /// When `grace` is not a duration.
    pub fn grace(&self) -> Result<Duration> {
        match &self.agent.grace {
            Some(d) => parse_duration(d).map_err(|e| e.context("[agent] grace")),
            None => Ok(Duration::from_secs(60)),
        }
    }
}

/// The apps of `dir`: each `NAME.toml` (other files are passed over).
fn apps_in(dir: &Path) -> Result<Vec<(String, App)>> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| Error::io(format!("cannot read apps-dir {}", dir.display()), e))?;
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(format!("cannot read {}", dir.display()), e))?;
        let path = entry.path();
        let Some(name) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".toml"))
        else {
            continue;
        };
        if name.is_empty() || name.starts_with('.') {
            continue;
        }
        let text = std::fs::read_to_string(&path)
            .map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
        let app: App = toml::from_str(&text).map_err(|e| {
            Error::invalid(format!(
                "invalid app file {}: {}",
                path.display(),
                e.message()
            ))
        })?;
        out.push((name.to_owned(), app));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

fn app_def(name: &str, app: &App, agent: &AgentSettings, file: &ConfigFile) -> Result<AppDef> {
    let ctx = |e: Error| e.context(format!("app `{name}`"));
    let jitter = match &app.jitter {
        Some(j) => parse_duration(j).map_err(ctx)?,
        None => Duration::ZERO,
    };
    let schedule = app
        .schedule
        .as_deref()
        .map(|p| Schedule::parse(p, app.time_zone.as_deref(), jitter))
        .transpose()
        .map_err(ctx)?;
    let timeout = app
        .timeout
        .as_deref()
        .map(parse_duration)
        .transpose()
        .map_err(ctx)?;
    for other in &app.after {
        if other == name {
            return Err(Error::invalid(format!(
                "app `{name}` cannot run after itself"
            )));
        }
        if !file.apps.contains_key(other) {
            return Err(Error::invalid(format!(
                "app `{name}` runs after `{other}`, which is not configured"
            )));
        }
    }
    if let Some(r) = &app.retention {
        r.policy().map_err(ctx)?;
    }
    let repository = app
        .repository
        .clone()
        .or_else(|| agent.repository.clone())
        .ok_or_else(|| {
            Error::invalid(format!(
                "app `{name}` has no repository: set `repository` in it or in [agent]"
            ))
        })?;
    Ok(AppDef {
        name: name.to_owned(),
        schedule,
        timeout,
        after: app.after.clone(),
        paused: app.paused,
        repository,
    })
}

/// The node's prune and check of every repository its apps use.
fn maintenance(agent: &AgentSettings, apps: &[AppDef]) -> Result<Vec<MaintenanceDef>> {
    let mut out = Vec::new();
    for (operation, pattern, key) in [
        (Operation::Prune, &agent.prune, "prune"),
        (Operation::Check, &agent.check, "check"),
    ] {
        let Some(pattern) = pattern else { continue };
        let schedule = Schedule::parse(pattern, None, Duration::ZERO)
            .map_err(|e| e.context(format!("[agent] {key}")))?;
        let mut repositories: BTreeMap<&str, &str> = BTreeMap::new();
        for def in apps {
            repositories.entry(&def.repository).or_insert(&def.name);
        }
        for (repository, app) in repositories {
            let shown = cairn_backend::redact_location(repository);
            let hash = blake3::hash(shown.as_bytes()).to_hex();
            out.push(MaintenanceDef {
                operation,
                repository: repository.to_owned(),
                key: format!("{key}:{}", &hash[..16]),
                shown,
                app: app.to_owned(),
                schedule: schedule.clone(),
            });
        }
    }
    Ok(out)
}

/// An `after` chain that comes back to where it started would never run: refused, naming it.
fn refuse_cycles(apps: &[AppDef]) -> Result<()> {
    fn visit<'a>(apps: &'a [AppDef], name: &'a str, path: &mut Vec<&'a str>) -> Result<()> {
        if let Some(i) = path.iter().position(|p| *p == name) {
            let mut cycle: Vec<&str> = path[i..].to_vec();
            cycle.push(name);
            return Err(Error::invalid(format!(
                "apps run after each other in a circle: {}",
                cycle.join(" → ")
            )));
        }
        let Some(def) = apps.iter().find(|d| d.name == name) else {
            return Ok(());
        };
        path.push(name);
        for dep in &def.after {
            visit(apps, dep, path)?;
        }
        path.pop();
        Ok(())
    }
    for def in apps {
        visit(apps, &def.name, &mut Vec::new())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<NodeConfig> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.toml");
        std::fs::write(&path, text).unwrap();
        NodeConfig::load(&path)
    }

    #[test]
    fn maintenance_is_one_job_per_repository_and_operation() {
        let c = load(
            "[agent]\nstate = \"/s\"\nrepository = \"/r\"\nprune = \"@weekly\"\n\
             check = \"@daily\"\ncheck-read-data-subset = \"1/7\"\n\
             [apps.b]\npaths = [\"/b\"]\n[apps.a]\npaths = [\"/a\"]\n\
             [apps.c]\npaths = [\"/c\"]\nrepository = \"rest:http://u:secret@h:1/c/\"\n",
        )
        .unwrap();
        let jobs: Vec<(&str, &str, &str)> = c
            .maintenance
            .iter()
            .map(|m| (m.operation.name(), m.shown.as_str(), m.app.as_str()))
            .collect();
        assert_eq!(
            jobs,
            [
                ("prune", "/r", "a"),
                ("prune", "rest:http://***@h:1/c/", "c"),
                ("check", "/r", "a"),
                ("check", "rest:http://***@h:1/c/", "c"),
            ]
        );
        assert_ne!(c.maintenance[0].key, c.maintenance[2].key);
        assert_eq!(c.read_data, Some(ReadData::Part { n: 1, of: 7 }));
    }

    #[test]
    fn a_bad_maintenance_setting_is_refused_naming_its_key() {
        let base = "[agent]\nstate = \"/s\"\nrepository = \"/r\"\n";
        let e = load(&format!("{base}check-read-data-subset = \"8/7\"\n")).unwrap_err();
        assert!(e.to_string().contains("check-read-data-subset"), "{e}");
        let e = load(&format!("{base}prune = \"every sunday\"\n")).unwrap_err();
        assert!(e.to_string().contains("[agent] prune"), "{e}");
    }
}
