//! Backing up an app: its hooks loaded (a hook it may not run stops it before anything ran),
//! its repository opened and locked, then the bracket — pre-backup hooks, one snapshot per
//! volume, post-backup hooks told the outcome. Nothing is printed: an [`Observer`] sees each
//! volume as it goes, and the caller gets a report.

use std::sync::Arc;

use cairn_plugin_host::{Target, VolumeKind};
use cairn_repo::ops::backup::{BackupOptions, BackupOutcome, BackupProgress, BackupSource, backup};
use cairn_repo::{ErrorKind, HookRun, IndexedRepository, Repository, Result};

use crate::hooks::{AppHooks, Bracketed, Operation, bracket};
use crate::session::Session;
use crate::sinks::StreamSinks;

/// Watches backups as they go (the CLI prints, the agent logs).
pub trait Observer: Sync {
    /// The backup of `target` starts: what watches it.
    fn volume(&self, target: &Target) -> Box<dyn VolumeObserver + '_>;

    /// Hooks of `app` wrote `files` (each one's identity and its snapshot, or why it was
    /// not kept).
    fn files(&self, app: &str, files: &[(String, Result<BackupOutcome>)]) {
        let _ = (app, files);
    }
}

/// Watches the backup of one volume.
pub trait VolumeObserver: Send + Sync {
    /// Its progress.
    fn progress(&self) -> &dyn BackupProgress;

    /// It ended so.
    fn done(self: Box<Self>, result: &Result<BackupOutcome>);
}

/// What backing up some volumes did.
#[derive(Debug, Default)]
pub struct Volumes {
    /// Each volume saved: its identity and outcome.
    pub saved: Vec<(String, BackupOutcome)>,
    /// The volumes that failed, with why.
    pub failed: Vec<(String, String)>,
    /// Block volumes, passed over (they are not backed up as files).
    pub skipped: Vec<String>,
    /// Whether the backup was interrupted (the rest was not tried).
    pub interrupted: bool,
}

impl Volumes {
    /// Whether a saved snapshot misses entries that could not be read.
    pub fn incomplete(&self) -> bool {
        self.saved
            .iter()
            .any(|(_, o)| o.snapshot.summary.as_ref().is_some_and(|s| s.errors > 0))
    }

    /// Why it failed, if it did.
    pub fn failure(&self) -> Option<String> {
        let mut names: Vec<&str> = self.failed.iter().map(|(v, _)| v.as_str()).collect();
        if self.interrupted {
            names.push("(interrupted)");
        }
        (!names.is_empty()).then(|| format!("the backup of {} failed", names.join(", ")))
    }
}

/// What backing up an app did.
pub struct AppBackup {
    /// The app.
    pub app: String,
    /// The identities of its volumes.
    pub volumes: Vec<String>,
    /// How long it waited for its repository's lock.
    pub lock_wait: std::time::Duration,
    /// Its hooks and its volumes (none when a pre-backup hook failed).
    pub run: Bracketed<Volumes>,
}

impl AppBackup {
    /// Why it failed, if it did: a pre-backup hook, a volume, or a post-backup hook.
    pub fn failure(&self) -> Option<String> {
        if let Some(why) = &self.run.pre.failure {
            return Some(why.clone());
        }
        self.run
            .step
            .as_ref()
            .and_then(Volumes::failure)
            .or_else(|| self.run.post.failure.clone())
    }

    /// Every hook run, pre then post.
    pub fn hook_runs(&self) -> Vec<&HookRun> {
        self.run.runs().collect()
    }
}

/// Backs up app `name` with its volumes `targets` (the plan's), with `opts`.
///
/// # Errors
/// When it cannot start: a hook it may not run, its repository cannot be opened (exit 10,
/// 12) or stays locked (11). A failure after that is in the report.
pub fn backup_app(
    session: &Session,
    name: &str,
    targets: &[Target],
    opts: &BackupOptions,
    observer: &dyn Observer,
) -> Result<AppBackup> {
    let app = session.config()?.app(name)?;
    let hooks = AppHooks::load(session, name, app)?;
    let repo = session.open_app(app)?;
    backup_app_in(session, name, &hooks, repo, targets, opts, observer)
}

/// Backs up app `name` as [`backup_app`] does, with its hooks loaded and its repository
/// opened by the caller (the agent, which creates a repository that does not exist yet and
/// applies the retention afterwards).
///
/// # Errors
/// When its repository stays locked (11) or its index cannot be read.
pub fn backup_app_in(
    session: &Session,
    name: &str,
    hooks: &AppHooks,
    repo: Repository,
    targets: &[Target],
    opts: &BackupOptions,
    observer: &dyn Observer,
) -> Result<AppBackup> {
    let waited = std::time::Instant::now();
    let _lock = session.lock(&repo, false)?;
    let lock_wait = waited.elapsed();
    let repo = Arc::new(repo.to_indexed()?);
    let identities: Vec<String> = targets.iter().map(|t| t.identity.clone()).collect();
    tracing::info!("app `{name}`: {} volumes", targets.len());
    let cancel = session.cancel().clone();
    let sinks = || StreamSinks::new(repo.clone(), opts.clone(), name, cancel.clone());
    let run = bracket(
        hooks,
        Operation::Backup,
        &identities,
        Some(&sinks),
        |hook_runs| {
            let done = backup_volumes(
                &repo,
                targets,
                opts,
                Some(name),
                hook_runs,
                session,
                observer,
            );
            let failure = done.failure();
            (done, failure)
        },
    );
    observer.files(name, &run.pre.files);
    observer.files(name, &run.post.files);
    if run.pre.failure.is_some() {
        tracing::warn!("app `{name}`: its volumes were not backed up: a pre-backup hook failed");
    }
    Ok(AppBackup {
        app: name.to_owned(),
        volumes: identities,
        lock_wait,
        run,
    })
}

/// Backs up volumes no app covers, into the session's repository.
///
/// # Errors
/// When the repository cannot be opened or stays locked.
pub fn backup_unowned(
    session: &Session,
    targets: &[Target],
    opts: &BackupOptions,
    observer: &dyn Observer,
) -> Result<Volumes> {
    let repo = session.open()?;
    let _lock = session.lock(&repo, false)?;
    let repo = repo.to_indexed()?;
    Ok(backup_volumes(
        &repo,
        targets,
        opts,
        None,
        &[],
        session,
        observer,
    ))
}

/// What `target` is read from: its directory, or its bucket's objects (with `app`'s keys).
fn source(target: &Target, app: Option<&str>, session: &Session) -> Result<BackupSource> {
    if target.kind != VolumeKind::Bucket {
        return Ok(BackupSource::Volume(target.path.clone()));
    }
    let app = match app {
        Some(name) => Some(session.config()?.app(name)?),
        None => None,
    };
    let bucket = session.bucket(&target.path.to_string_lossy(), app)?;
    Ok(BackupSource::Objects(Box::new(bucket)))
}

/// Backs up `targets`, one snapshot each, recorded as `app`'s (or the discovered app's) with
/// the pre-backup `hooks` runs.
fn backup_volumes(
    repo: &IndexedRepository,
    targets: &[Target],
    opts: &BackupOptions,
    app: Option<&str>,
    hooks: &[HookRun],
    session: &Session,
    observer: &dyn Observer,
) -> Volumes {
    let mut done = Volumes::default();
    for target in targets {
        if !target.kind.has_files() {
            tracing::warn!(
                "{} is a block volume: it is not backed up as files",
                target.identity
            );
            done.skipped.push(target.identity.clone());
            continue;
        }
        let mut opts = opts.clone();
        opts.app = Some(app.unwrap_or(&target.app).to_owned());
        opts.volume = Some(target.identity.clone());
        opts.hooks = hooks.to_vec();
        tracing::info!(
            "backing up {} from {}",
            target.identity,
            target.path.display()
        );
        let watch = observer.volume(target);
        let result = source(target, app, session)
            .and_then(|s| backup(repo, s, &opts, watch.progress(), session.cancel()));
        watch.done(&result);
        match result {
            Ok(outcome) => done.saved.push((target.identity.clone(), outcome)),
            Err(e) if e.kind() == ErrorKind::Interrupted => {
                done.interrupted = true;
                return done;
            }
            Err(e) => {
                tracing::error!("{}: {e}", target.identity);
                done.failed.push((target.identity.clone(), e.to_string()));
            }
        }
    }
    done
}
