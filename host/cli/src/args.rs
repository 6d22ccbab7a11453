//! Command-line arguments (clap). Parsed here, resolved into settings in `settings.rs`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::env_vars::EnvVars;

/// cairn: deduplicating, encrypted backups of application volumes.
#[derive(Debug, Parser)]
#[command(name = "cairn", version, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Global Options")]
pub struct GlobalArgs {
    /// Repository location: a directory, `s3:http(s)://HOST:PORT/BUCKET/PREFIX`,
    /// `s3://BUCKET/PREFIX` (AWS), `az://CONTAINER/PREFIX`, `gs://BUCKET/PREFIX`,
    /// `webdav+http(s)://HOST/PATH`, `rest:http(s)://[USER:TOKEN@]HOST:PORT/PATH/` (restic's
    /// REST protocol: `cairn gateway`, rest-server, `rclone serve restic`), or
    /// `plugin:NAME` (a storage-backend plugin instance from the configuration file).
    #[arg(short = 'r', long = "repo", global = true, env = EnvVars::CAIRN_REPOSITORY, hide_env_values = true)]
    pub repo: Option<String>,
    /// Read the repository location from this file (first line; it may hold a `rest:`
    /// token, which a file keeps out of `ps` and the environment); it takes the place of -r.
    #[arg(long, global = true, env = EnvVars::CAIRN_REPOSITORY_FILE, hide_env_values = true, value_name = "FILE")]
    pub repository_file: Option<PathBuf>,
    /// Read the password from this file (first line).
    #[arg(long, global = true, env = EnvVars::CAIRN_PASSWORD_FILE, hide_env_values = true)]
    pub password_file: Option<PathBuf>,
    /// Run this shell command and use its output as the password.
    #[arg(long, global = true, env = EnvVars::CAIRN_PASSWORD_COMMAND, hide_env_values = true)]
    pub password_command: Option<String>,
    /// Use an empty password (for demos and tests: anyone can read the repository).
    #[arg(long, global = true)]
    pub insecure_no_password: bool,
    /// Print data as JSON (one object, or one object per line for lists and status).
    #[arg(long, global = true)]
    pub json: bool,
    /// No progress and no informational messages.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// More log output (repeat for more); RUST_LOG overrides it.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Local cache of small repository files of remote stores (default: the user's cache
    /// directory, `$XDG_CACHE_HOME/cairn` or `~/.cache/cairn`).
    #[arg(long, global = true, env = EnvVars::CAIRN_CACHE_DIR, hide_env_values = true, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Do not use a local cache.
    #[arg(long, global = true)]
    pub no_cache: bool,
    /// Also trust the CA certificates (PEM) in this file for https stores.
    #[arg(long, global = true, env = EnvVars::CAIRN_CA_CERT, hide_env_values = true, value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
    /// Concurrent uploads to a remote store (default 4).
    #[arg(long, global = true, value_name = "N")]
    pub connections: Option<usize>,
    /// The configuration file: plugin instances with their settings and grants (default
    /// `$XDG_CONFIG_HOME/cairn/config.toml` or `~/.config/cairn/config.toml`, if it exists).
    #[arg(long, global = true, env = EnvVars::CAIRN_CONFIG, hide_env_values = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// A setting for the plugin of a `plugin:NAME` repository (repeatable; overrides the
    /// configuration file).
    #[arg(short = 'o', long = "option", global = true, value_name = "KEY=VALUE")]
    pub options: Vec<String>,
    /// The plugin store (default `$XDG_DATA_HOME/cairn/plugins` or
    /// `~/.local/share/cairn/plugins`).
    #[arg(long, global = true, env = EnvVars::CAIRN_PLUGIN_DIR, hide_env_values = true, value_name = "DIR")]
    pub plugin_dir: Option<PathBuf>,
    /// Where the node's file system is mounted when cairn runs in a container (e.g. `/host`):
    /// discovery plugins find every known layout under it.
    #[arg(long, global = true, env = EnvVars::CAIRN_HOST_ROOT, hide_env_values = true, value_name = "DIR")]
    pub host_root: Option<String>,
    /// Run the built-in discovery plugins only when the configuration file grants them (by
    /// default, when it names no discovery plugin, they may read their known layout
    /// directories, read-only).
    #[arg(long, global = true)]
    pub no_default_grants: bool,
    /// Wait up to this long for a lock held by another process (e.g. `5m`, `30s`).
    #[arg(long, global = true, value_name = "DURATION")]
    pub retry_lock: Option<String>,
    /// Try key slots whose argon2id costs more than 1 GiB of memory, 4 GiB×passes of work or
    /// 16 lanes (skipped by default: a slot anyone can plant would hang or abort every
    /// command); also lets `init` and `key add` make such slots.
    #[arg(long, global = true)]
    pub allow_costly_kdf: bool,
}

#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant, reason = "parsed once per run")]
pub enum Command {
    /// Create a new repository.
    Init(InitArgs),
    /// Back up files and directories (or a stream) into a new snapshot.
    #[command(after_long_help = crate::help::BACKUP)]
    Backup(BackupArgs),
    /// List snapshots.
    Snapshots(SnapshotsArgs),
    /// List the files of a snapshot.
    Ls(LsArgs),
    /// Serve the snapshots as a read-only file system (FUSE) until Ctrl-C or unmount.
    #[command(after_long_help = crate::help::MOUNT)]
    Mount(MountArgs),
    /// Find files and directories in snapshots, by name, path, time, or the blob, tree or
    /// pack holding them.
    #[command(after_long_help = crate::help::FIND)]
    Find(FindArgs),
    /// Show what changed between two snapshots.
    Diff(DiffArgs),
    /// Show sizes and what deduplication saves.
    Stats(StatsArgs),
    /// Print a repository object (decrypted).
    Cat(CatArgs),
    /// Write one file of a snapshot to stdout.
    Dump(DumpArgs),
    /// Restore a snapshot into a directory.
    #[command(after_long_help = crate::help::RESTORE)]
    Restore(RestoreArgs),
    /// Check the repository's structure and, optionally, its data.
    Check(CheckArgs),
    /// Remove snapshots by id or by a retention policy.
    #[command(after_long_help = crate::help::FORGET)]
    Forget(ForgetArgs),
    /// Delete data no snapshot uses; repack partly used packs.
    Prune(PruneArgs),
    /// Add, remove or set snapshot tags.
    Tag(TagArgs),
    /// Remove files from existing snapshots: each changed one is saved anew.
    #[command(after_long_help = crate::help::REWRITE)]
    Rewrite(RewriteArgs),
    /// Rebuild the index from the packs, or make damaged snapshots restorable.
    #[command(subcommand)]
    Repair(RepairCommand),
    /// Remove stale locks.
    Unlock(UnlockArgs),
    /// List repository objects: keys, snapshots, index, packs, locks.
    List(ListArgs),
    /// Copy snapshots from another repository into this one.
    Copy(CopyArgs),
    /// Manage key slots (passwords).
    #[command(subcommand)]
    Key(KeyCommand),
    /// Install, list, inspect and remove plugins.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// List the application volumes on this node, found by the discovery plugins.
    #[command(after_long_help = crate::help::DISCOVER)]
    Discover(DiscoverArgs),
    /// Wait until `restore --marker ID` has completed into every given directory.
    WaitRestore(WaitRestoreArgs),
    /// The REST gateway in front of storage: serve it, manage its credentials and grants.
    #[command(subcommand)]
    Gateway(GatewayCommand),
    /// The node agent: serve it (`--config FILE` with an `[agent]` table), or ask the running
    /// one to run an app, for status, history and logs.
    #[command(subcommand)]
    Agent(AgentCommand),
    /// List the local caches (one per repository) and remove old ones.
    Cache(CacheArgs),
    /// Write shell completions and man pages.
    Generate(GenerateArgs),
    /// Print the version (and the platform it was built for).
    Version,
}

#[derive(Debug, Args)]
pub struct CacheArgs {
    /// Remove the caches not used for --max-age.
    #[arg(long)]
    pub cleanup: bool,
    /// How long unused makes a cache old.
    #[arg(long, value_name = "DURATION", default_value = "30d")]
    pub max_age: String,
    /// Do not add up the caches' sizes.
    #[arg(long)]
    pub no_size: bool,
}

#[derive(Debug, Args)]
#[command(after_long_help = crate::help::GENERATE)]
pub struct GenerateArgs {
    /// Write the bash completion to this file (`-` for stdout).
    #[arg(long, value_name = "FILE")]
    pub bash_completion: Option<PathBuf>,
    /// Write the zsh completion to this file (`-` for stdout).
    #[arg(long, value_name = "FILE")]
    pub zsh_completion: Option<PathBuf>,
    /// Write the fish completion to this file (`-` for stdout).
    #[arg(long, value_name = "FILE")]
    pub fish_completion: Option<PathBuf>,
    /// Write the PowerShell completion to this file (`-` for stdout).
    #[arg(long, value_name = "FILE")]
    pub powershell_completion: Option<PathBuf>,
    /// Write a man page per command into this directory (`cairn.1`, `cairn-backup.1`, …).
    #[arg(long, value_name = "DIR")]
    pub man: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// Run the agent of `--config FILE`: schedules, queue, state, HTTP API and metrics.
    Serve,
    /// Queue a run of an app now; with --wait, wait for it and exit with its code.
    Run(AgentRunArgs),
    /// Each app's state, last run, last success, next run and missed runs.
    Status(AgentTarget),
    /// Past runs, newest first.
    History(AgentHistoryArgs),
    /// The last lines of a run's log.
    Logs(AgentLogsArgs),
}

/// Which agent: `--agent ADDR` (`HOST:PORT` or `unix:PATH`), else the `listen` of the
/// `[agent]` table of `--config FILE`.
#[derive(Debug, Args)]
pub struct AgentTarget {
    /// The agent's address.
    #[arg(long, value_name = "ADDR")]
    pub agent: Option<String>,
    /// The file holding the agent's API token (default: the config's `token-file`).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct AgentRunArgs {
    /// The app.
    pub app: String,
    /// Wait for the run to end; exit with its code (0, 1, 3 incomplete, 11 locked).
    #[arg(long)]
    pub wait: bool,
    #[command(flatten)]
    pub target: AgentTarget,
}

#[derive(Debug, Args)]
pub struct AgentHistoryArgs {
    /// Only this app's runs.
    pub app: Option<String>,
    /// At most this many runs.
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
    #[command(flatten)]
    pub target: AgentTarget,
}

#[derive(Debug, Args)]
pub struct AgentLogsArgs {
    /// The run's number.
    pub run: u64,
    #[command(flatten)]
    pub target: AgentTarget,
}

#[derive(Debug, Subcommand)]
pub enum GatewayCommand {
    /// Serve restic's REST protocol for the repositories under a storage location.
    Serve(GatewayServeArgs),
    /// Add, list and remove credentials.
    #[command(subcommand)]
    Token(GatewayTokenCommand),
    /// Give time-limited access.
    #[command(subcommand)]
    Grant(GatewayGrantCommand),
}

/// The same keys (`listen`, `storage`, `state`, `tls-cert`, `tls-key`, `max-object-size`,
/// `idle-timeout`, `max-requests-per-credential`) may be set in the `[gateway]` table of the
/// configuration file (`--config FILE`); flags win.
#[derive(Debug, Args)]
pub struct GatewayServeArgs {
    /// The address to listen on (default 127.0.0.1:8000).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Where the repositories live: a directory, `s3:…`, `az://…`, `gs://…`, `webdav+…`,
    /// `plugin:NAME`; each repository is at `LOCATION/<path>`.
    #[arg(long, value_name = "LOCATION")]
    pub storage: Option<String>,
    /// The gateway's state: hashed credentials, grants, lock owners, the audit log.
    #[arg(long, value_name = "DIR")]
    pub state: Option<PathBuf>,
    /// TLS certificate chain (PEM); reloaded on SIGHUP.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM); reloaded on SIGHUP.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// The largest object accepted (default 1G).
    #[arg(long, value_name = "SIZE")]
    pub max_object_size: Option<String>,
    /// How long a request body may pause before it is refused (default 60s).
    #[arg(long, value_name = "DURATION")]
    pub idle_timeout: Option<String>,
    /// Requests one credential may have in progress at once; more wait (default 16).
    #[arg(long, value_name = "N")]
    pub max_requests_per_credential: Option<usize>,
}

#[derive(Debug, Args)]
pub struct GatewayStateArgs {
    /// The gateway's state directory.
    #[arg(long, value_name = "DIR")]
    pub state: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum GatewayTokenCommand {
    /// Make a credential; its token is printed once, alone, on stdout.
    Add {
        /// The credential's name (the HTTP Basic user).
        name: String,
        /// `node` (everything) or `app` (its repositories: read, add, remove its own locks).
        #[arg(long)]
        role: String,
        /// A repository the credential may use (an app's; repeatable). Its id is the global
        /// `--repo`'s, so that this one (a path below the storage) takes its place here.
        #[arg(id = "repo", long = "repo", value_name = "PATH")]
        repos: Vec<String>,
        #[command(flatten)]
        state: GatewayStateArgs,
    },
    /// List credentials (never their tokens).
    List {
        /// As JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        state: GatewayStateArgs,
    },
    /// Remove a credential.
    Remove {
        /// The credential's name.
        name: String,
        #[command(flatten)]
        state: GatewayStateArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum GatewayGrantCommand {
    /// Read-only access to one repository for a time; its token is printed once on stdout.
    Restore {
        /// The grant's name (the HTTP Basic user).
        name: String,
        /// The repository it may read (a path below the storage; it takes the global
        /// `--repo`'s place here).
        #[arg(id = "repo", long = "repo", value_name = "PATH")]
        repo: String,
        /// How long it works (e.g. `30m`, `2h`).
        #[arg(long, value_name = "DURATION")]
        ttl: String,
        #[command(flatten)]
        state: GatewayStateArgs,
    },
}

#[derive(Debug, Args)]
pub struct WaitRestoreArgs {
    /// The restore's marker id.
    #[arg(long, value_name = "ID")]
    pub marker: String,
    /// The restored directories (volumes) to wait for.
    #[arg(required = true, value_name = "DIR")]
    pub dirs: Vec<PathBuf>,
    /// Give up after this long (e.g. `10m`; default: wait forever).
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<String>,
}

#[derive(Debug, Args)]
pub struct DiscoverySource {
    /// Run only this discovery plugin instance (repeatable; default: every configured one).
    #[arg(long = "plugin", value_name = "NAME")]
    pub plugins: Vec<String>,
    /// The cluster's pods or allocations as JSON (`kubectl get pods,pvc -A -o json`, Nomad's
    /// `/v1/allocations`): names, owners, PVCs and annotations.
    #[arg(long, value_name = "FILE")]
    pub inventory: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DiscoverArgs {
    #[command(flatten)]
    pub source: DiscoverySource,
    /// Only the volumes no configured app covers.
    #[arg(long)]
    pub unprotected: bool,
}

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Check a plugin component and add it to the plugin store.
    #[command(after_long_help = crate::help::PLUGIN_INSTALL)]
    Install(PluginInstallArgs),
    /// List the built-in and installed plugins.
    List,
    /// Show a plugin's world, imports, exports, requested capabilities and digest.
    Inspect(PluginInspectArgs),
    /// Remove an installed plugin (a built-in one of its name is used again).
    Remove(PluginRemoveArgs),
}

#[derive(Debug, Args)]
pub struct PluginInstallArgs {
    /// The component (`.wasm`).
    pub file: PathBuf,
    /// Its manifest (default: `plugin.toml`, then `FILE` with `.toml`, next to the file).
    #[arg(long, value_name = "FILE")]
    pub manifest: Option<PathBuf>,
    /// Use it instead of the built-in plugin of the same name.
    #[arg(long)]
    pub override_builtin: bool,
}

#[derive(Debug, Args)]
pub struct PluginInspectArgs {
    /// A plugin's name (built in or installed), or a component file.
    pub plugin: String,
    /// The manifest of a component file (default as for `install`).
    #[arg(long, value_name = "FILE")]
    pub manifest: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct PluginRemoveArgs {
    /// The installed plugin's name.
    pub name: String,
}

/// Another repository to read from (`copy`, `init --copy-chunker-params`).
#[derive(Debug, Args, Clone, Default)]
pub struct FromRepoArgs {
    /// The other repository.
    #[arg(long, env = EnvVars::CAIRN_FROM_REPOSITORY, hide_env_values = true, value_name = "REPO")]
    pub from_repo: Option<String>,
    /// Read its password from this file.
    #[arg(long, env = EnvVars::CAIRN_FROM_PASSWORD_FILE, hide_env_values = true, value_name = "FILE")]
    pub from_password_file: Option<PathBuf>,
    /// Run this shell command for its password.
    #[arg(long, env = EnvVars::CAIRN_FROM_PASSWORD_COMMAND, hide_env_values = true, value_name = "CMD")]
    pub from_password_command: Option<String>,
    /// Its password is empty.
    #[arg(long)]
    pub from_insecure_no_password: bool,
}

#[derive(Debug, Args)]
pub struct CopyArgs {
    #[command(flatten)]
    pub from: FromRepoArgs,
    /// Snapshots of the other repository to copy (`latest` or id prefixes).
    pub ids: Vec<String>,
    /// Copy every snapshot (that passes the filters).
    #[arg(long, conflicts_with = "ids")]
    pub all: bool,
    /// Show what would be copied; write nothing.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub filter: FilterArgs,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Use the chunker parameters of the repository given with --from-repo, so that `copy`
    /// between the two deduplicates.
    #[arg(long, requires = "from_repo")]
    pub copy_chunker_params: bool,
    #[command(flatten)]
    pub from: FromRepoArgs,
    /// Chunker sizes as MIN/AVG/MAX in bytes (K, M suffixes allowed), e.g. `512K/1M/8M`.
    #[arg(long, value_name = "MIN/AVG/MAX")]
    pub chunker: Option<String>,
    /// Target pack size (e.g. `16M`).
    #[arg(long, value_name = "SIZE")]
    pub pack_size: Option<String>,
    /// argon2id memory for the first key slot, KiB (default 65536).
    #[arg(long, value_name = "KIB")]
    pub kdf_memory: Option<u32>,
    /// argon2id passes for the first key slot (default 3).
    #[arg(long, value_name = "N")]
    pub kdf_iterations: Option<u32>,
}

#[derive(Debug, Clone, Copy, ValueEnum, Default)]
pub enum CompressionArg {
    Off,
    #[default]
    Auto,
    Max,
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Files and directories to back up.
    #[arg(value_name = "PATH", required_unless_present_any = ["stdin", "stdin_from_command", "volume", "all_discovered", "for_app", "all_apps", "bucket", "files_from", "files_from_verbatim", "files_from_raw"])]
    pub paths: Vec<PathBuf>,
    /// Also back up the paths listed in this file, one per line, each a glob pattern that is
    /// expanded (`*`, `?`, `[...]`, `**`; one that matches nothing is a warning); white space
    /// around a line, empty lines and `#` comments are skipped (repeatable), as restic's.
    #[arg(long, value_name = "FILE")]
    pub files_from: Vec<PathBuf>,
    /// Also back up the paths listed in this file, one per line, taken literally (only empty
    /// lines skipped; repeatable).
    #[arg(long, value_name = "FILE")]
    pub files_from_verbatim: Vec<PathBuf>,
    /// Also back up the paths in this file, separated by NUL bytes (`find -print0`; repeatable).
    #[arg(long, value_name = "FILE")]
    pub files_from_raw: Vec<PathBuf>,
    /// Back up the objects of this bucket below its prefix (`s3:http://HOST:PORT/BUCKET/PREFIX`,
    /// `s3://…`, `az://…`, `gs://…`) as files; objects whose size and ETag are the parent's are
    /// not downloaded again.
    #[arg(long, value_name = "LOCATION", conflicts_with_all = ["paths", "files_from", "files_from_verbatim", "files_from_raw", "stdin", "stdin_from_command", "volume", "all_discovered", "for_app", "all_apps", "exclude", "exclude_file", "one_file_system"])]
    pub bucket: Option<String>,
    /// Tag the snapshot (repeatable; or comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub tag: Vec<String>,
    /// Host name to record (default: this host).
    #[arg(long)]
    pub host: Option<String>,
    /// Back up this discovered volume (its identity; repeatable): its contents become the
    /// snapshot, and its app and identity are recorded.
    #[arg(long, value_name = "IDENTITY", conflicts_with_all = ["paths", "stdin", "stdin_from_command", "app"])]
    pub volume: Vec<String>,
    /// Back up every discovered volume (block devices are skipped); a volume an app covers is
    /// backed up in that app's run (its hooks, its repository).
    #[arg(long, conflicts_with_all = ["paths", "stdin", "stdin_from_command", "app", "volume"])]
    pub all_discovered: bool,
    /// Back up this configured app (repeatable): its hooks run around the backup of its
    /// discovered volumes, into its repository.
    #[arg(long, value_name = "APP", conflicts_with_all = ["paths", "stdin", "stdin_from_command", "app", "volume", "all_discovered"])]
    pub for_app: Vec<String>,
    /// Back up every configured app.
    #[arg(long, conflicts_with_all = ["paths", "stdin", "stdin_from_command", "app", "volume", "all_discovered", "for_app"])]
    pub all_apps: bool,
    #[command(flatten)]
    pub discovery: DiscoverySource,
    /// App identity to record, e.g. `namespace/app/volume`.
    #[arg(long)]
    pub app: Option<String>,
    /// Exclude paths matching this glob (repeatable).
    #[arg(short = 'e', long, value_name = "GLOB")]
    pub exclude: Vec<String>,
    /// Read exclude globs from this file, one per line (`#` comments).
    #[arg(long, value_name = "FILE")]
    pub exclude_file: Vec<PathBuf>,
    /// Do not cross filesystem boundaries.
    #[arg(short = 'x', long)]
    pub one_file_system: bool,
    /// Compare against this snapshot (default: latest with the same host, paths and app; for
    /// a volume, the latest of its identity).
    #[arg(long, value_name = "SNAPSHOT", conflicts_with_all = ["volume", "all_discovered", "for_app", "all_apps"])]
    pub parent: Option<String>,
    /// Read every file, ignoring any parent snapshot.
    #[arg(long, conflicts_with = "parent")]
    pub force: bool,
    /// Do everything but write to the repository.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// Compression.
    #[arg(long, value_enum, default_value_t)]
    pub compression: CompressionArg,
    /// Back up standard input as one file.
    #[arg(long, conflicts_with = "stdin_from_command")]
    pub stdin: bool,
    /// Name of the file for `--stdin` / `--stdin-from-command`.
    #[arg(long, default_value = "stdin")]
    pub stdin_filename: String,
    /// Back up the standard output of a command (`-- CMD ARGS...`); a non-zero exit saves nothing.
    #[arg(long, requires = "command")]
    pub stdin_from_command: bool,
    /// The command for `--stdin-from-command`.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
    /// Snapshot time (RFC 3339), default now.
    #[arg(long)]
    pub time: Option<String>,
}

#[derive(Debug, Args, Default, Clone)]
pub struct FilterArgs {
    /// Only snapshots of this host (repeatable).
    #[arg(long)]
    pub host: Vec<String>,
    /// Only snapshots with this tag (repeatable; all must match).
    #[arg(long)]
    pub tag: Vec<String>,
    /// Only snapshots of this path (repeatable; all must match).
    #[arg(long)]
    pub path: Vec<String>,
    /// Only snapshots of this app (repeatable).
    #[arg(long)]
    pub app: Vec<String>,
    /// Only snapshots of this discovered volume identity (repeatable).
    #[arg(long, value_name = "IDENTITY")]
    pub volume: Vec<String>,
    /// Only snapshots taken at or before TIME: `latest` is the newest up to it (RFC 3339, a
    /// local `2026-11-30 12:00`, a date, or how long ago: `36h`, `2d`).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub as_of: Option<jiff::Timestamp>,
}

/// A time argument (`cairn_apps::units::parse_time`).
fn parse_time(s: &str) -> Result<jiff::Timestamp, String> {
    cairn_apps::units::parse_time(s, jiff::Timestamp::now()).map_err(|e| e.to_string())
}

#[derive(Debug, Args)]
pub struct SnapshotsArgs {
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Snapshot ids (prefixes) or `latest`; default all.
    pub ids: Vec<String>,
    /// Only the last N snapshots of each group (by `--group-by`, default each host, paths
    /// and app; a volume's snapshots are one group).
    #[arg(long, value_name = "N")]
    pub latest: Option<usize>,
    /// Group the list by these (comma-separated: host, paths, app, tags); `--json` then
    /// prints `[{"group_key": …, "snapshots": […]}]` as restic does.
    #[arg(short, long, value_name = "KEYS")]
    pub group_by: Option<String>,
    /// Fewer columns: ID, time, host and tags.
    #[arg(short, long)]
    pub compact: bool,
    /// Only snapshots taken before TIME (as --as-of).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub before: Option<jiff::Timestamp>,
    /// Only snapshots taken at or after TIME.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub after: Option<jiff::Timestamp>,
}

#[derive(Debug, Args)]
pub struct MountArgs {
    /// An empty directory to mount on.
    pub mountpoint: PathBuf,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Let other users see the mount (for non-root users, `user_allow_other` in
    /// /etc/fuse.conf).
    #[arg(long)]
    pub allow_other: bool,
    /// How often to look for new snapshots.
    #[arg(long, value_name = "DURATION", default_value = "5s")]
    pub refresh: String,
}

#[derive(Debug, Args)]
pub struct FindArgs {
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Name patterns (`*.conf`; one with a `/` matches the whole path: `/etc/*`), or with
    /// `--blob`/`--tree`/`--pack` ids (hex, or their start).
    #[arg(required = true, value_name = "PATTERN")]
    pub patterns: Vec<String>,
    /// Only in this snapshot (id prefix or `latest`; repeatable; default every snapshot the
    /// filters pass).
    #[arg(short, long = "snapshot", value_name = "ID")]
    pub snapshots: Vec<String>,
    /// Match patterns without regard to case.
    #[arg(short, long)]
    pub ignore_case: bool,
    /// Only entries modified at or after TIME (as --as-of).
    #[arg(short = 'O', long, value_name = "TIME", value_parser = parse_time)]
    pub oldest: Option<jiff::Timestamp>,
    /// Only entries modified at or before TIME.
    #[arg(short = 'N', long, value_name = "TIME", value_parser = parse_time)]
    pub newest: Option<jiff::Timestamp>,
    /// The patterns are blob ids: find the files whose content holds them.
    #[arg(long, conflicts_with_all = ["tree", "pack"])]
    pub blob: bool,
    /// The patterns are tree ids: find the directories they are.
    #[arg(long, conflicts_with = "pack")]
    pub tree: bool,
    /// The patterns are pack ids: find the files and directories whose blobs they hold.
    #[arg(long)]
    pub pack: bool,
    /// Mode, owner, size and time as well.
    #[arg(short, long)]
    pub long: bool,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Snapshot id (prefix) or `latest`.
    pub snapshot: String,
    /// Only below this path.
    #[arg(value_name = "PATH")]
    pub dir: Option<String>,
    /// Mode, owner, size and time as well.
    #[arg(short, long)]
    pub long: bool,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// First snapshot.
    pub a: String,
    /// Second snapshot.
    pub b: String,
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Snapshots (default: all).
    pub ids: Vec<String>,
    /// One of restic's counts, in its words (default: cairn's whole report).
    #[arg(long, value_enum)]
    pub mode: Option<StatsMode>,
}

/// restic's `stats --mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatsMode {
    /// What a restore of each snapshot would write.
    RestoreSize,
    /// Files with distinct content, each counted once.
    FilesByContents,
    /// The distinct blobs, as stored before compression.
    RawData,
    /// Each distinct file's distinct blobs.
    BlobsPerFile,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum CatKind {
    Config,
    Key,
    Snapshot,
    Index,
    Tree,
    Blob,
    Pack,
}

#[derive(Debug, Args)]
pub struct CatArgs {
    /// What to print.
    #[arg(value_enum)]
    pub kind: CatKind,
    /// Its id (prefix for files; full id for blobs and trees; `SNAPSHOT:PATH` for trees).
    pub id: Option<String>,
}

#[derive(Debug, Args)]
pub struct DumpArgs {
    /// Snapshot id (prefix) or `latest`.
    pub snapshot: String,
    /// Path of a file in the snapshot.
    #[arg(value_name = "PATH")]
    pub file: String,
    #[command(flatten)]
    pub filter: FilterArgs,
}

#[derive(Debug, Clone, Copy, ValueEnum, Default)]
pub enum OverwriteArg {
    #[default]
    Always,
    IfChanged,
    Never,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// Snapshot id (prefix) or `latest`, optionally `:SUBPATH`.
    pub snapshot: String,
    /// Directory to restore into.
    #[arg(short, long, required_unless_present = "to_bucket")]
    pub target: Option<PathBuf>,
    /// Put the files back as objects of this bucket below its prefix (keys are their paths
    /// in the snapshot, below SUBPATH), replacing objects of the same key.
    #[arg(long, value_name = "LOCATION", conflicts_with_all = ["target", "verify", "overwrite", "delete", "marker"])]
    pub to_bucket: Option<String>,
    /// Only paths matching this glob (repeatable).
    #[arg(short, long, value_name = "GLOB")]
    pub include: Vec<String>,
    /// Not paths matching this glob (repeatable).
    #[arg(short, long, value_name = "GLOB")]
    pub exclude: Vec<String>,
    /// Read back every restored file and check it against the snapshot.
    #[arg(long)]
    pub verify: bool,
    /// What to do with existing files.
    #[arg(long, value_enum, default_value_t)]
    pub overwrite: OverwriteArg,
    /// Delete files in the target that the snapshot does not have.
    #[arg(long)]
    pub delete: bool,
    /// When the restore is complete, write `.cairn/ID` into the target (`wait-restore`
    /// waits for it).
    #[arg(long, value_name = "ID")]
    pub marker: Option<String>,
    /// Run this configured app's pre-restore and post-restore hooks around the restore.
    #[arg(long, value_name = "APP")]
    pub for_app: Option<String>,
    #[command(flatten)]
    pub filter: FilterArgs,
}

#[derive(Debug, Args)]
pub struct ForgetArgs {
    /// Snapshots to forget (instead of a policy).
    pub ids: Vec<String>,
    /// Keep the newest N snapshots (-1: all).
    #[arg(short = 'l', long, value_name = "N", allow_negative_numbers = true)]
    pub keep_last: Option<i64>,
    /// Keep the newest snapshot of each of the newest N hours (-1: all).
    #[arg(short = 'H', long, value_name = "N", allow_negative_numbers = true)]
    pub keep_hourly: Option<i64>,
    /// Keep the newest snapshot of each of the newest N days (-1: all).
    #[arg(short = 'd', long, value_name = "N", allow_negative_numbers = true)]
    pub keep_daily: Option<i64>,
    /// Keep the newest snapshot of each of the newest N ISO weeks (-1: all).
    #[arg(short = 'w', long, value_name = "N", allow_negative_numbers = true)]
    pub keep_weekly: Option<i64>,
    /// Keep the newest snapshot of each of the newest N months (-1: all).
    #[arg(short = 'm', long, value_name = "N", allow_negative_numbers = true)]
    pub keep_monthly: Option<i64>,
    /// Keep the newest snapshot of each of the newest N years (-1: all).
    #[arg(short = 'y', long, value_name = "N", allow_negative_numbers = true)]
    pub keep_yearly: Option<i64>,
    /// Keep every snapshot within this duration (e.g. `1y2m3d4h`) of the group's newest.
    #[arg(long, value_name = "DURATION")]
    pub keep_within: Option<String>,
    /// Keep the newest snapshot of each hour within this duration.
    #[arg(long, value_name = "DURATION")]
    pub keep_within_hourly: Option<String>,
    /// Keep the newest snapshot of each day within this duration.
    #[arg(long, value_name = "DURATION")]
    pub keep_within_daily: Option<String>,
    /// Keep the newest snapshot of each week within this duration.
    #[arg(long, value_name = "DURATION")]
    pub keep_within_weekly: Option<String>,
    /// Keep the newest snapshot of each month within this duration.
    #[arg(long, value_name = "DURATION")]
    pub keep_within_monthly: Option<String>,
    /// Keep the newest snapshot of each year within this duration.
    #[arg(long, value_name = "DURATION")]
    pub keep_within_yearly: Option<String>,
    /// Always keep snapshots with this tag (repeatable).
    #[arg(long, value_name = "TAG")]
    pub keep_tag: Vec<String>,
    /// Group snapshots by these (comma-separated: host, paths, app, tags).
    #[arg(short, long, default_value = "host,paths,app")]
    pub group_by: String,
    /// Show what would be removed; remove nothing.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// Prune after forgetting.
    #[arg(long)]
    pub prune: bool,
    /// Repack partly used packs until at most this share of the used data is unused (with --prune).
    #[arg(long, default_value = "5%", value_name = "PERCENT")]
    pub max_unused: String,
    /// Repack at most this much (with --prune).
    #[arg(long, value_name = "SIZE")]
    pub max_repack_size: Option<String>,
    #[command(flatten)]
    pub filter: FilterArgs,
}

#[derive(Debug, Args, Clone)]
pub struct PruneArgs {
    /// Repack partly used packs until at most this share of the used data is unused.
    #[arg(long, default_value = "5%", value_name = "PERCENT")]
    pub max_unused: String,
    /// Repack at most this much (e.g. `2G`).
    #[arg(long, value_name = "SIZE")]
    pub max_repack_size: Option<String>,
    /// Show what would be deleted and repacked; change nothing.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct RewriteArgs {
    /// Snapshots to rewrite (default: all that pass the filters).
    pub ids: Vec<String>,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Leave out what matches (as backup's --exclude; repeatable).
    #[arg(short, long, value_name = "PATTERN")]
    pub exclude: Vec<String>,
    /// Patterns to leave out, one per line (repeatable).
    #[arg(long, value_name = "FILE")]
    pub exclude_file: Vec<PathBuf>,
    /// Remove each snapshot that was rewritten (its new one keeps `original`).
    #[arg(long)]
    pub forget: bool,
    /// Say what would change; write nothing.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
}

#[derive(Debug, Subcommand)]
pub enum RepairCommand {
    /// Build a new index from the packs' headers and remove the old index files.
    Index(RepairIndexArgs),
    /// Rewrite the snapshots that need missing blobs or unreadable trees: files keep what
    /// can be read, unreadable directories become empty, the new snapshots are tagged
    /// `repaired`.
    Snapshots(RepairSnapshotsArgs),
}

#[derive(Debug, Args)]
pub struct RepairIndexArgs {
    /// Read the packs and say what would be written; change nothing.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct RepairSnapshotsArgs {
    /// Snapshots to repair (default: all that pass the filters).
    pub ids: Vec<String>,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Remove each damaged snapshot once its repaired one is stored.
    #[arg(long)]
    pub forget: bool,
    /// Say what would change; write nothing.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct TagArgs {
    /// Snapshots to change (default: all that pass the filters).
    pub ids: Vec<String>,
    /// Tags to add (repeatable).
    #[arg(long = "add", value_name = "TAG", value_delimiter = ',')]
    pub add: Vec<String>,
    /// Tags to remove (repeatable).
    #[arg(long = "remove", value_name = "TAG", value_delimiter = ',')]
    pub remove: Vec<String>,
    /// Replace all tags with these.
    #[arg(long = "set", value_name = "TAG", value_delimiter = ',', num_args = 0..)]
    pub set: Option<Vec<String>>,
    #[command(flatten)]
    pub filter: FilterArgs,
}

#[derive(Debug, Args)]
pub struct UnlockArgs {
    /// Remove every lock, also those of running processes.
    #[arg(long)]
    pub remove_all: bool,
    /// Confirms --remove-all.
    #[arg(long)]
    pub yes_remove_live_locks: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ListKind {
    Keys,
    Snapshots,
    Index,
    Packs,
    Locks,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// What to list.
    #[arg(value_enum)]
    pub kind: ListKind,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Read and verify every pack (all data).
    #[arg(long)]
    pub read_data: bool,
    /// Read and verify a subset: `n/t` (e.g. `2/7`), `x%` (random) or a size (random, e.g. `2G`).
    #[arg(long, value_name = "SUBSET")]
    pub read_data_subset: Option<String>,
}

#[derive(Debug, Args)]
pub struct NewPasswordArgs {
    /// Read the new password from this file.
    #[arg(long)]
    pub new_password_file: Option<PathBuf>,
    /// Use an empty new password (demos and tests only).
    #[arg(long)]
    pub new_insecure_no_password: bool,
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// List key slots.
    List,
    /// Add a key slot with a new password.
    Add(NewPasswordArgs),
    /// Remove a key slot (not the last one, nor the one in use).
    Remove {
        /// Key id (prefix).
        id: String,
    },
    /// Change the password of the key slot in use (adds a new slot, removes the old).
    Passwd(NewPasswordArgs),
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
