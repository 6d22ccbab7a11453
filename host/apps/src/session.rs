//! A session: the settings resolved once (by the CLI from its flags and environment, by the
//! agent from its configuration), and what they open — the configuration file, one plugin
//! runtime, backends, repositories, locks.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use cairn_plugin_host::{CompiledCache, Grants, PluginBackend, PluginStore, Runtime};
use cairn_repo::lock::LockGuard;
use cairn_repo::{Actor, Backend, Error, ErrorKind, KdfLimits, Repository, Result};

use crate::config::{App, ConfigFile, setting_value};
use crate::plugins::Ready;

/// A password, never printed, zeroed when dropped.
pub struct Password(Vec<u8>);

impl Password {
    /// A password of these bytes.
    pub fn new(bytes: Vec<u8>) -> Password {
        Password(bytes)
    }

    /// Its bytes.
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

/// Where a repository's password comes from; the first one given wins, in this order.
#[derive(Default, Clone)]
pub struct PasswordSource {
    /// The empty password (demos and tests).
    pub insecure_empty: bool,
    /// A file whose first line is the password.
    pub file: Option<PathBuf>,
    /// A shell command that prints the password.
    pub command: Option<String>,
    /// The password itself (from the environment).
    pub value: Option<Vec<u8>>,
}

impl std::fmt::Debug for PasswordSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordSource")
            .field("insecure_empty", &self.insecure_empty)
            .field("file", &self.file)
            .field("command", &self.command)
            .field("value", &self.value.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl PasswordSource {
    /// Only this file.
    pub fn file(path: PathBuf) -> PasswordSource {
        PasswordSource {
            file: Some(path),
            ..PasswordSource::default()
        }
    }

    /// The password from the first source given; `None` when none is.
    ///
    /// # Errors
    /// When the file cannot be read or the command fails.
    pub fn read(&self) -> Result<Option<Password>> {
        if self.insecure_empty {
            return Ok(Some(Password(Vec::new())));
        }
        if let Some(f) = &self.file {
            let data = std::fs::read(f).map_err(|e| {
                Error::io(format!("cannot read the password file {}", f.display()), e)
            })?;
            return Ok(Some(Password(first_line(data))));
        }
        if let Some(cmd) = &self.command {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(cmd)
                .stdin(Stdio::null())
                .stderr(Stdio::inherit())
                .output()
                .map_err(|e| Error::io("cannot run the password command", e))?;
            if !out.status.success() {
                return Err(Error::invalid(format!(
                    "the password command failed ({})",
                    out.status
                )));
            }
            return Ok(Some(Password(first_line(out.stdout))));
        }
        Ok(self.value.clone().map(Password))
    }
}

fn first_line(data: Vec<u8>) -> Vec<u8> {
    let end = data.iter().position(|&b| b == b'\n').unwrap_or(data.len());
    let mut line = data[..end].to_vec();
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    line
}

/// Asks for a password (the CLI on a terminal); `None` when it cannot ask.
pub type Prompt = dyn Fn(&str) -> Option<Result<Password>> + Send + Sync;

/// What to tell a user who left a required setting out, in the words of the caller's
/// interface (flags for the CLI, keys for the agent).
#[derive(Debug, Clone)]
pub struct Hints {
    /// No repository location.
    pub repository: String,
    /// No password.
    pub password: String,
    /// No plugin store.
    pub plugin_dir: String,
}

impl Default for Hints {
    fn default() -> Hints {
        Hints {
            repository: "no repository given".into(),
            password: "no password given".into(),
            plugin_dir: "no plugin store given".into(),
        }
    }
}

/// Everything resolved from flags, environment or configuration.
#[derive(Clone, Default)]
pub struct Settings {
    /// The repository location (`-r`), for what names none of its own.
    pub repository: Option<String>,
    /// Its password.
    pub password: PasswordSource,
    /// The cache directory (none: no cache).
    pub cache_dir: Option<PathBuf>,
    /// The plugin store.
    pub plugin_dir: Option<PathBuf>,
    /// The configuration file (none: an empty one).
    pub config: Option<PathBuf>,
    /// Extra CA certificates (PEM) for https stores.
    pub ca_cert: Option<PathBuf>,
    /// Connections to a remote store (none: its default).
    pub connections: Option<usize>,
    /// User name and password for `rest:` servers whose URL has none.
    pub rest_credentials: Option<(String, String)>,
    /// `-o KEY=VALUE` settings for the storage plugin of `-r plugin:NAME`.
    pub options: Vec<(String, String)>,
    /// Where the node's file system is seen (`/host` in a container; empty: `/`).
    pub host_root: String,
    /// Built-in discovery plugins the configuration file does not name get no grants (by
    /// default they may read their layout directories: [`Grants::layout_defaults`]).
    pub no_default_grants: bool,
    /// How long to wait for a conflicting lock to go away.
    pub retry_lock: Duration,
    /// Whether key slots may cost more than the default KDF limits.
    pub allow_costly_kdf: bool,
    /// Who acts (recorded in locks and snapshots).
    pub actor: Actor,
    /// What to tell the user when a required setting is missing.
    pub hints: Hints,
}

/// The settings, and what they open, each opened at most once.
pub struct Session {
    shared: Arc<Shared>,
    settings: Settings,
    cancel: Arc<AtomicBool>,
}

/// What forks of a session share.
struct Shared {
    prompt: Option<Box<Prompt>>,
    config: OnceLock<ConfigFile>,
    runtime: OnceLock<Arc<Runtime>>,
    store: OnceLock<PluginStore>,
}

impl Session {
    /// A session over `settings`, stopped by `cancel` (Ctrl-C, SIGTERM).
    pub fn new(settings: Settings, cancel: Arc<AtomicBool>) -> Session {
        Session::build(settings, cancel, None, None)
    }

    fn build(
        settings: Settings,
        cancel: Arc<AtomicBool>,
        prompt: Option<Box<Prompt>>,
        config: Option<ConfigFile>,
    ) -> Session {
        let shared = Shared {
            prompt,
            config: OnceLock::new(),
            runtime: OnceLock::new(),
            store: OnceLock::new(),
        };
        if let Some(c) = config {
            let _ = shared.config.set(c);
        }
        Session {
            shared: Arc::new(shared),
            settings,
            cancel,
        }
    }

    /// Asks `prompt` for a password no source gives.
    #[must_use]
    pub fn with_prompt(self, prompt: Box<Prompt>) -> Session {
        let config = Arc::into_inner(self.shared).and_then(|s| s.config.into_inner());
        Session::build(self.settings, self.cancel, Some(prompt), config)
    }

    /// With this configuration instead of reading `settings.config`.
    #[must_use]
    pub fn with_config(self, config: ConfigFile) -> Session {
        let prompt = Arc::into_inner(self.shared).and_then(|s| s.prompt);
        Session::build(self.settings, self.cancel, prompt, Some(config))
    }

    /// The same session (its configuration, its plugin runtime) stopped by `cancel`, with
    /// `settings` changed by `change`: one run of the agent, with its own cancel flag and
    /// its app's lock wait.
    #[must_use]
    pub fn fork(&self, cancel: Arc<AtomicBool>, change: impl FnOnce(&mut Settings)) -> Session {
        let mut settings = self.settings.clone();
        change(&mut settings);
        Session {
            shared: self.shared.clone(),
            settings,
            cancel,
        }
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The flag that stops long operations.
    pub fn cancel(&self) -> &Arc<AtomicBool> {
        &self.cancel
    }

    /// Who acts.
    pub fn actor(&self) -> Actor {
        self.settings.actor.clone()
    }

    /// The configuration file, read once.
    ///
    /// # Errors
    /// When it cannot be read or is not valid.
    pub fn config(&self) -> Result<&ConfigFile> {
        if let Some(c) = self.shared.config.get() {
            return Ok(c);
        }
        let file = match &self.settings.config {
            Some(path) => ConfigFile::load(path)?,
            None => ConfigFile::default(),
        };
        Ok(self.shared.config.get_or_init(|| file))
    }

    /// The repository location.
    ///
    /// # Errors
    /// When none is set.
    pub fn location(&self) -> Result<&str> {
        self.settings
            .repository
            .as_deref()
            .ok_or_else(|| Error::invalid(self.settings.hints.repository.clone()))
    }

    /// The backend of the repository location.
    ///
    /// # Errors
    /// When none is set or it cannot be opened.
    pub fn backend(&self) -> Result<Arc<dyn Backend>> {
        self.backend_at(self.location()?)
    }

    /// The backend for `location`, with the cache and connection settings.
    ///
    /// # Errors
    /// When the location is invalid or its store cannot be reached.
    pub fn backend_at(&self, location: &str) -> Result<Arc<dyn Backend>> {
        let s = &self.settings;
        if let Some(name) = location.strip_prefix("plugin:") {
            let backend: Arc<dyn Backend> = Arc::new(self.plugin_backend(name)?);
            return Ok(match &s.cache_dir {
                Some(dir) => Arc::new(cairn_backend::CachedBackend::new(backend, dir)),
                None => backend,
            });
        }
        let mut opts = cairn_backend::OpenOptions::default();
        opts.remote = self.remote_options()?;
        if takes_rest_credentials(location)
            && let Some((user, password)) = &s.rest_credentials
        {
            opts.remote = opts.remote.rest_credentials(user, password);
        }
        opts.cache_dir.clone_from(&s.cache_dir);
        cairn_backend::open_location_with(location, &opts)
    }

    /// How remote stores are reached: the connections and CA settings.
    ///
    /// # Errors
    /// When the CA certificate file cannot be read.
    pub fn remote_options(&self) -> Result<cairn_backend::RemoteOptions> {
        let s = &self.settings;
        let mut remote =
            cairn_backend::RemoteOptions::default().connections(s.connections.unwrap_or(0));
        if let Some(ca) = &s.ca_cert {
            let pem = std::fs::read(ca).map_err(|e| {
                Error::io(
                    format!("cannot read the CA certificate file {}", ca.display()),
                    e,
                )
            })?;
            remote = remote.ca_pem(pem);
        }
        Ok(remote)
    }

    /// The repository password.
    ///
    /// # Errors
    /// When no source gives one and no prompt can ask.
    pub fn password(&self, prompt: &str) -> Result<Password> {
        self.password_from(&self.settings.password, prompt)
    }

    /// The password from `source`, else asked with `prompt`.
    ///
    /// # Errors
    /// When no source gives one and no prompt can ask.
    pub fn password_from(&self, source: &PasswordSource, prompt: &str) -> Result<Password> {
        if let Some(p) = source.read()? {
            return Ok(p);
        }
        if let Some(asked) = self.shared.prompt.as_ref().and_then(|ask| ask(prompt)) {
            return asked;
        }
        Err(Error::invalid(self.settings.hints.password.clone()))
    }

    /// Opens the repository.
    ///
    /// # Errors
    /// As [`Repository::open_with`], and when no location or password is given.
    pub fn open(&self) -> Result<Repository> {
        let backend = self.backend()?;
        let password = self.password("enter repository password: ")?;
        self.open_backend(backend, password.bytes())
    }

    /// Opens the repository at `location` with the password from `source`.
    ///
    /// # Errors
    /// As [`Session::open`].
    pub fn open_at(
        &self,
        location: &str,
        source: &PasswordSource,
        prompt: &str,
    ) -> Result<Repository> {
        let backend = self.backend_at(location)?;
        let password = self.password_from(source, prompt)?;
        self.open_backend(backend, password.bytes())
    }

    /// The repository of `app`: its own location and password file when it names them.
    ///
    /// # Errors
    /// As [`Session::open`].
    pub fn open_app(&self, app: &App) -> Result<Repository> {
        let (location, source) = self.app_repository(app)?;
        let backend = self.app_backend(app, &location)?;
        let password = self.password_from(&source, "enter repository password: ")?;
        self.open_backend(backend, password.bytes())
    }

    /// The backend of `app`'s repository at `location`, with the app's `rest:` credential
    /// when it names a file for one.
    ///
    /// # Errors
    /// When the credentials file cannot be read, or as [`Session::backend_at`].
    pub fn app_backend(&self, app: &App, location: &str) -> Result<Arc<dyn Backend>> {
        match &app.rest_credentials_file {
            Some(file) if takes_rest_credentials(location) => {
                let credentials = read_rest_credentials(file)?;
                self.fork(self.cancel.clone(), |s| {
                    s.rest_credentials = Some(credentials);
                })
                .backend_at(location)
            }
            _ => self.backend_at(location),
        }
    }

    /// The bucket at `location` (a backup's source or a restore's target), with `app`'s
    /// bucket keys when it names a file for them.
    ///
    /// # Errors
    /// When the location is not a bucket's, or the keys file cannot be read or does not go
    /// with the location.
    pub fn bucket(&self, location: &str, app: Option<&App>) -> Result<cairn_backend::Bucket> {
        let mut remote = self.remote_options()?;
        if let Some(file) = app.and_then(|a| a.bucket_credentials_file.as_ref()) {
            if !location.starts_with("s3:") {
                return Err(Error::invalid(format!(
                    "bucket-credentials-file holds S3 keys, and `{location}` is not an s3: \
                     bucket; give Azure or Google credentials in the environment"
                )));
            }
            let (key, secret) = read_rest_credentials(file)?;
            remote = remote.keys(&key, &secret);
        }
        cairn_backend::Bucket::open(location, &remote)
    }

    /// Where `app`'s repository is and where its password comes from: its own location (and
    /// password file) when it names one, else the session's.
    ///
    /// # Errors
    /// When neither the app nor the session names a repository.
    pub fn app_repository(&self, app: &App) -> Result<(String, PasswordSource)> {
        let location = match &app.repository {
            Some(l) => l.clone(),
            None => self.location()?.to_owned(),
        };
        // An app's password file goes with its own repository.
        let source = match (&app.repository, &app.password_file) {
            (Some(_), Some(file)) => PasswordSource::file(file.clone()),
            _ => self.settings.password.clone(),
        };
        Ok((location, source))
    }

    /// Opens the repository on `backend` with `password`: key slots within the KDF limits,
    /// cheapest first, stopped by the cancel flag.
    ///
    /// # Errors
    /// As [`Repository::open_with`].
    pub fn open_backend(&self, backend: Arc<dyn Backend>, password: &[u8]) -> Result<Repository> {
        let opts =
            cairn_repo::OpenOptions::default().allow_costly_kdf(self.settings.allow_costly_kdf);
        Repository::open_with(backend, password, &opts, &self.cancel)
    }

    /// The KDF limits of new key slots.
    pub fn kdf_limits(&self) -> KdfLimits {
        if self.settings.allow_costly_kdf {
            KdfLimits::UNLIMITED
        } else {
            KdfLimits::DEFAULT
        }
    }

    /// Takes a repository lock, waiting up to the `retry_lock` setting for a conflicting one
    /// to go away.
    ///
    /// # Errors
    /// [`ErrorKind::Locked`] when it is still held then; backend errors.
    pub fn lock(&self, repo: &Repository, exclusive: bool) -> Result<LockGuard> {
        let deadline = Instant::now() + self.settings.retry_lock;
        loop {
            match cairn_repo::lock::lock(repo, exclusive, &self.settings.actor, std::process::id())
            {
                Ok(g) => return Ok(g.cancel_on_loss(self.cancel.clone())),
                Err(e) if e.kind() == ErrorKind::Locked && Instant::now() < deadline => {
                    tracing::info!("{e}; retrying");
                    std::thread::sleep(Duration::from_secs(2).min(deadline - Instant::now()));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The plugin store, with the plugins built into cairn.
    ///
    /// # Errors
    /// When none is set.
    pub fn plugin_store(&self) -> Result<PluginStore> {
        if self.settings.plugin_dir.is_none() {
            return Err(Error::invalid(self.settings.hints.plugin_dir.clone()));
        }
        Ok(self.plugins())
    }

    /// The plugin store, or only the built-in plugins when no store is set; made once per
    /// session (the built-in plugins' digests and manifests are worked out once).
    pub fn plugins(&self) -> PluginStore {
        self.shared
            .store
            .get_or_init(|| match &self.settings.plugin_dir {
                Some(dir) => PluginStore::new(dir.clone()).with_builtins(builtins()),
                None => PluginStore::builtin_only(builtins()),
            })
            .clone()
    }

    /// The plugin runtime, made once: one engine for every plugin of the session, caching
    /// compiled plugins under the cache directory, authenticated by a key kept in the plugin
    /// store (not in the cache, which may be easier to reach).
    ///
    /// # Errors
    /// When the engine cannot be made.
    pub fn plugin_runtime(&self) -> Result<Arc<Runtime>> {
        if let Some(r) = self.shared.runtime.get() {
            return Ok(r.clone());
        }
        let key_file = self
            .plugin_store()
            .ok()
            .and_then(|s| s.dir().map(|d| d.join("compiled-cache.key")));
        let cache = self
            .settings
            .cache_dir
            .clone()
            .zip(key_file)
            .map(|(d, key)| CompiledCache::new(d.join("compiled"), key));
        let runtime = Runtime::new(cache)?;
        Ok(self.shared.runtime.get_or_init(|| runtime).clone())
    }

    /// The store of plugin instance `name` (`-r plugin:NAME`): its plugin loaded from the
    /// store, its settings from the configuration file and the `options`, its grants checked.
    ///
    /// # Errors
    /// When the plugin is not installed, a setting or grant is refused, or it cannot start.
    pub fn plugin_backend(&self, name: &str) -> Result<PluginBackend> {
        self.plugin_backend_below(name, None)
    }

    /// The store of plugin instance `name` as [`Session::plugin_backend`], with `below`
    /// (`kind/app`) appended to its location setting: one repository of the many that
    /// `cairn gateway` serves from one instance.
    ///
    /// # Errors
    /// As [`Session::plugin_backend`], and when the plugin marks no setting as its location.
    pub fn plugin_backend_below(&self, name: &str, below: Option<&str>) -> Result<PluginBackend> {
        let ready = self
            .instance_below(name, true, below)
            .map_err(|e| self.no_instance(name, e))?;
        let connections = self.settings.connections.unwrap_or(4);
        PluginBackend::open(
            self.plugin_runtime()?,
            &ready.plugin,
            name,
            ready.config,
            ready.capabilities,
            connections,
        )
    }

    /// For `-r plugin:NAME` with no `[plugins.NAME]` table and no plugin of that name: an
    /// error that says the instance is missing and how to add it, not only that no plugin
    /// `NAME` is installed.
    fn no_instance(&self, name: &str, e: Error) -> Error {
        let in_file = self
            .config()
            .is_ok_and(|file| file.plugins.contains_key(name));
        if e.kind() != ErrorKind::NotFound || in_file {
            return e;
        }
        let file = match &self.settings.config {
            Some(path) => format!("the configuration file {}", path.display()),
            None => "no configuration file (--config FILE or CAIRN_CONFIG)".to_owned(),
        };
        Error::new(
            ErrorKind::NotFound,
            format!(
                "`plugin:{name}` names a storage plugin instance, but {file} has no \
                 [plugins.{name}] table, and no plugin `{name}` is installed or built in. Add \
                 one, for example:\n  [plugins.{name}]\n  plugin = \"dir\"\n  \
                 [plugins.{name}.config]\n  path = \"/srv/backups\"\n  [plugins.{name}.grant]\n  \
                 dirs = [{{ path = \"/srv/backups\", access = \"read-write\" }}]"
            ),
        )
    }

    /// Plugin instance `name` of the configuration file, ready to run: its plugin loaded,
    /// its settings (from the file, then the `options` when `options`) checked, its grants
    /// resolved.
    ///
    /// # Errors
    /// As [`Session::prepare`].
    pub fn instance(&self, name: &str, options: bool) -> Result<Ready> {
        self.instance_below(name, options, None)
    }

    fn instance_below(&self, name: &str, options: bool, below: Option<&str>) -> Result<Ready> {
        let file = self.config()?;
        if let Some(instance) = file.plugins.get(name) {
            let plugin_name = instance.plugin.as_deref().unwrap_or(name);
            return self.ready(
                plugin_name,
                &instance.config,
                &instance.grant,
                options,
                below,
            );
        }
        // Not in the file: a built-in discovery plugin may read its layouts.
        let defaults = self.default_grants(name)?;
        self.ready(name, &Default::default(), &defaults, options, below)
    }

    /// What plugin `name` is granted when the configuration file does not name it: for a
    /// built-in discovery plugin, its layout directories (unless `no_default_grants`);
    /// nothing for any other.
    ///
    /// # Errors
    /// When the plugin store cannot be read.
    pub fn default_grants(&self, name: &str) -> Result<Grants> {
        if self.settings.no_default_grants {
            return Ok(Grants::default());
        }
        let store = self.plugins();
        Ok(match store.get(name) {
            Ok(p)
                if p.source == cairn_plugin_host::Source::Builtin
                    && p.manifest.world() == cairn_plugin_host::World::VolumeDiscovery =>
            {
                Grants::layout_defaults(&p.manifest, &self.settings.host_root)
            }
            Ok(_) => Grants::default(),
            Err(e) if e.kind() == ErrorKind::NotFound => Grants::default(),
            Err(e) => return Err(e),
        })
    }

    /// Installed plugin `plugin_name` with settings `settings` (then the `options` when
    /// `options`) and `grants`, ready to run.
    ///
    /// # Errors
    /// When the plugin is not installed, a setting is not one it declares, or a grant is
    /// refused.
    pub fn prepare(
        &self,
        plugin_name: &str,
        settings: &std::collections::BTreeMap<String, toml::Value>,
        grants: &Grants,
        options: bool,
    ) -> Result<Ready> {
        self.ready(plugin_name, settings, grants, options, None)
    }

    fn ready(
        &self,
        plugin_name: &str,
        settings: &std::collections::BTreeMap<String, toml::Value>,
        grants: &Grants,
        options: bool,
        below: Option<&str>,
    ) -> Result<Ready> {
        let runtime = self.plugin_runtime()?;
        let plugin = self.plugins().load(&runtime, plugin_name)?;
        let mut config = Vec::new();
        for (k, v) in settings {
            config.push((k.clone(), setting_value(k, v)?));
        }
        if options {
            for (k, v) in &self.settings.options {
                config.retain(|(key, _)| key != k);
                config.push((k.clone(), v.clone()));
            }
        }
        if let Some(below) = below {
            let key = location_key(&plugin.manifest)?;
            // Without it every repository would be the same store: refused.
            let Some((_, value)) = config.iter_mut().find(|(k, _)| k == key) else {
                return Err(Error::invalid(format!(
                    "plugin `{plugin_name}` needs its location setting `{key}` to hold many \
                     repositories: set it in the configuration file"
                )));
            };
            *value = join_location(value, below);
        }
        plugin
            .manifest
            .check_config(config.iter().map(|(k, _)| k.as_str()))?;
        let caps = grants.resolve(&plugin.manifest, &config, &self.settings.host_root)?;
        Ok(Ready {
            plugin,
            config,
            capabilities: caps,
        })
    }
}

/// The plugins built into this cairn, and the first-party ones it lacks.
pub fn builtins() -> cairn_plugin_host::Builtins {
    cairn_plugin_host::Builtins {
        plugins: cairn_builtin::COMPONENTS
            .iter()
            .map(|c| cairn_plugin_host::Builtin {
                name: c.name,
                wasm: c.wasm,
                manifest: c.manifest,
            })
            .collect(),
        lacking: cairn_builtin::LACKING.to_vec(),
        why: cairn_builtin::WHY,
    }
}

/// The setting of a storage plugin that says where its repository is.
///
/// # Errors
/// When the manifest marks none: such a plugin cannot hold many repositories.
pub fn location_key(manifest: &cairn_plugin_host::Manifest) -> Result<&str> {
    manifest.location_key().ok_or_else(|| {
        Error::invalid(format!(
            "plugin `{}` marks none of its settings as its location (`location = true` in its \
             manifest), so it cannot hold many repositories",
            manifest.name
        ))
    })
}

/// `below` (`a/b`) appended to a location setting: `/srv/x` → `/srv/x/a/b`, a URL's trailing
/// slash kept (`http://h/r/` → `http://h/r/a/b/`) and its query after the path
/// (`http://h/r?t=1` → `http://h/r/a/b?t=1`).
fn join_location(value: &str, below: &str) -> String {
    let (path, rest) = match value.find("://") {
        Some(_) => value.split_at(value.find(['?', '#']).unwrap_or(value.len())),
        None => (value, ""),
    };
    let slash = if path.ends_with('/') { "/" } else { "" };
    format!("{}/{below}{slash}{rest}", path.trim_end_matches('/'))
}

/// Whether the store at `location` takes `rest:` credentials (user and token).
pub fn takes_rest_credentials(location: &str) -> bool {
    location.starts_with("rest:")
}

/// The `NAME:TOKEN` in `file` (one line; surrounding white space dropped). Neither part
/// appears in an error.
///
/// # Errors
/// When the file cannot be read or holds no `NAME:TOKEN`.
pub fn read_rest_credentials(file: &Path) -> Result<(String, String)> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        Error::io(
            format!("cannot read the credentials file {}", file.display()),
            e,
        )
    })?;
    match text.trim().split_once(':') {
        Some((name, token)) if !name.is_empty() && !token.is_empty() && !token.contains('\n') => {
            Ok((name.to_owned(), token.to_owned()))
        }
        _ => Err(Error::invalid(format!(
            "the credentials file {} does not hold one line NAME:TOKEN",
            file.display()
        ))),
    }
}

/// Who runs this process: the host name, and the effective user's name.
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

#[cfg(test)]
mod tests {
    #[test]
    fn a_location_is_extended_by_the_repository_path() {
        assert_eq!(super::join_location("/srv/x", "a/b"), "/srv/x/a/b");
        assert_eq!(super::join_location("/srv/x/", "a/b"), "/srv/x/a/b/");
        assert_eq!(
            super::join_location("http://h:1/r/", "k/app"),
            "http://h:1/r/k/app/"
        );
        assert_eq!(super::join_location("http://h:1", "k"), "http://h:1/k");
        assert_eq!(
            super::join_location("http://h:1/r/?t=1#f", "k/a"),
            "http://h:1/r/k/a/?t=1#f"
        );
        // A directory's name may hold a `?`.
        assert_eq!(super::join_location("/srv/a?b", "k"), "/srv/a?b/k");
    }
}
