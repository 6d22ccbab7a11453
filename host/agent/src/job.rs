//! One run: a backup of an app — its repository (created on its first backup), its volumes
//! (its `paths` and what discovery gives it), the backup in its hook bracket, then its
//! retention — or the node's prune or check of a repository. Retention, prune and check open
//! the repository with the node's maintenance credential when one is set. The run writes the
//! lines of its log as it goes; the scheduler records the outcome.

use std::collections::VecDeque;
use std::sync::Mutex;

use cairn_apps::backup::{Observer, VolumeObserver, backup_app_in};
use cairn_apps::plan::{Selection, plan};
use cairn_apps::{AppHooks, Session};
use cairn_plugin_host::Target;
use cairn_repo::ops::backup::{BackupOptions, BackupOutcome, BackupProgress, NoProgress};
use cairn_repo::ops::forget::{GroupBy, apply_policy, remove_snapshots};
use cairn_repo::{Error, ErrorKind, InitOptions, Repository, Result, SnapshotFilter};

use crate::cluster::Cluster;
use crate::settings::NodeConfig;
use crate::store::{Operation, Run, RunState};

/// Lines of a run's log kept.
pub const LOG_LINES: usize = 200;

/// A run's log: its last [`LOG_LINES`] lines.
#[derive(Default)]
pub struct RunLog {
    lines: Mutex<VecDeque<String>>,
}

impl RunLog {
    /// Adds a line (stamped with the time).
    pub fn line(&self, text: impl AsRef<str>) {
        let mut lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        if lines.len() >= LOG_LINES {
            lines.pop_front();
        }
        lines.push_back(format!("{} {}", jiff::Timestamp::now(), text.as_ref()));
    }

    /// The lines so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect()
    }
}

/// Writes what happens to the run's log.
struct Logged<'a> {
    log: &'a RunLog,
}

impl Observer for Logged<'_> {
    fn volume(&self, target: &Target) -> Box<dyn VolumeObserver + '_> {
        self.log.line(format!(
            "backing up {} from {}",
            target.identity,
            target.path.display()
        ));
        Box::new(LoggedVolume {
            log: self.log,
            identity: target.identity.clone(),
        })
    }

    fn files(&self, app: &str, files: &[(String, Result<BackupOutcome>)]) {
        for (identity, outcome) in files {
            match outcome {
                Ok(o) => self.log.line(summary(identity, o)),
                Err(e) => self.log.line(format!("app `{app}`: {identity}: {e}")),
            }
        }
    }
}

struct LoggedVolume<'a> {
    log: &'a RunLog,
    identity: String,
}

impl VolumeObserver for LoggedVolume<'_> {
    fn progress(&self) -> &dyn BackupProgress {
        &NoProgress
    }

    fn done(self: Box<Self>, result: &Result<BackupOutcome>) {
        match result {
            Ok(o) => self.log.line(summary(&self.identity, o)),
            Err(e) => self.log.line(format!("{}: {e}", self.identity)),
        }
    }
}

fn summary(identity: &str, o: &BackupOutcome) -> String {
    let id = o.id.map_or_else(|| "-".into(), |i| i.short());
    match &o.snapshot.summary {
        Some(s) => format!(
            "{identity}: snapshot {id}: {} files ({} new, {} changed), {} bytes added, {} \
             unreadable",
            s.total_files_processed, s.files_new, s.files_changed, s.data_added, s.errors
        ),
        None => format!("{identity}: snapshot {id}"),
    }
}

/// Runs `run` with `session` (whose cancel flag stops it) and fills in its outcome: state,
/// error, snapshots, counts.
pub fn execute(
    session: &Session,
    config: &NodeConfig,
    cluster: Option<&Cluster>,
    run: &mut Run,
    log: &RunLog,
) {
    let done = match run.operation {
        Operation::Backup => backup_and_forget(session, config, cluster, run, log),
        Operation::Prune => prune(session, config, run, log),
        Operation::Check => check(session, config, run, log),
    };
    match done {
        Ok(state) => run.state = state,
        Err(e) => {
            run.state = if e.kind() == ErrorKind::Interrupted {
                RunState::Interrupted
            } else {
                RunState::Failed
            };
            run.locked = e.kind() == ErrorKind::Locked;
            log.line(format!("error: {e}"));
            run.error = Some(e.to_string());
        }
    }
}

fn backup_and_forget(
    session: &Session,
    config: &NodeConfig,
    cluster: Option<&Cluster>,
    run: &mut Run,
    log: &RunLog,
) -> Result<RunState> {
    let name = run.app.clone();
    let file = session.config()?;
    let app = file.app(&name)?;
    let hooks = AppHooks::load(session, &name, app)?;
    let repo = open_or_create(session, app, log)?;
    let source = match cluster {
        Some(c) => c.discovery()?,
        None => cairn_apps::Discovery::default(),
    };
    let found = session.discover(&source, false)?.all()?;
    let selection = Selection {
        apps: vec![name.clone()],
        ..Selection::default()
    };
    let targets = plan(file, found, &selection)?
        .remove(&Some(name.clone()))
        .unwrap_or_default();
    log.line(format!("app `{name}`: {} volumes", targets.len()));
    let mut opts = BackupOptions::new(session.actor());
    opts.uid_gid = (
        nix::unistd::geteuid().as_raw(),
        nix::unistd::getegid().as_raw(),
    );
    opts.app = Some(name.clone());
    let done = backup_app_in(
        session,
        &name,
        &hooks,
        repo.clone(),
        &targets,
        &opts,
        &Logged { log },
    )?;
    run.lock_wait_seconds = done.lock_wait.as_secs_f64();
    for r in done.hook_runs() {
        log.line(format!(
            "hook {} {}: {}{}",
            r.hook,
            r.phase,
            if r.success { "ok" } else { "failed" },
            r.message
                .as_deref()
                .map(|m| format!(": {m}"))
                .unwrap_or_default()
        ));
    }
    let mut outcomes: Vec<&BackupOutcome> = Vec::new();
    if let Some(v) = &done.run.step {
        outcomes.extend(v.saved.iter().map(|(_, o)| o));
    }
    for (_, o) in done.run.pre.files.iter().chain(&done.run.post.files) {
        if let Ok(o) = o {
            outcomes.push(o);
        }
    }
    for o in &outcomes {
        if let Some(id) = o.id {
            run.snapshots.push(id.to_string());
        }
        if let Some(s) = &o.snapshot.summary {
            run.files_new += s.files_new;
            run.bytes_added += s.data_added;
        }
    }
    if let Some(why) = done.failure() {
        run.error = Some(why.clone());
        log.line(format!("failed: {why}"));
        return Ok(RunState::Failed);
    }
    if let Some(rules) = &app.retention {
        let repo = match config.maintenance_app(app) {
            Some(node) => session.open_app(&node)?,
            None => repo,
        };
        run.forgotten = forget(session, &repo, &name, rules, log)?;
    }
    let incomplete = done
        .run
        .step
        .as_ref()
        .is_some_and(cairn_apps::backup::Volumes::incomplete);
    Ok(if incomplete {
        RunState::Incomplete
    } else {
        RunState::Succeeded
    })
}

/// The app's repository, created (with the node's default parameters) when it does not
/// exist yet: an app's first backup needs no manual `init`.
fn open_or_create(session: &Session, app: &cairn_apps::App, log: &RunLog) -> Result<Repository> {
    match session.open_app(app) {
        Err(e) if e.kind() == ErrorKind::RepositoryNotFound => {}
        other => return other,
    }
    // Two first backups into one repository (`repository-concurrency`) must not both create
    // it: one run of this agent at a time creates, and the others find it made.
    static CREATING: Mutex<()> = Mutex::new(());
    let _creating = CREATING.lock().unwrap_or_else(|e| e.into_inner());
    match session.open_app(app) {
        Err(e) if e.kind() == ErrorKind::RepositoryNotFound => {}
        other => return other,
    }
    let (location, source) = session.app_repository(app)?;
    let password = session.password_from(&source, "")?;
    let backend = session.app_backend(app, &location)?;
    let opts = InitOptions::default().kdf_limits(session.kdf_limits());
    match Repository::init(backend, password.bytes(), &opts, &session.actor()) {
        Ok(repo) => {
            log.line(format!(
                "created the repository {}",
                cairn_backend::redact_location(&location)
            ));
            Ok(repo)
        }
        // Another run created it meanwhile.
        Err(e) if e.kind() == ErrorKind::AlreadyExists => session.open_app(app),
        Err(e) => Err(e),
    }
}

/// Applies `rules` to the app's snapshots (grouped as `forget` groups them: host, paths,
/// app, and each volume on its own) under an exclusive lock; how many were removed.
fn forget(
    session: &Session,
    repo: &Repository,
    app: &str,
    rules: &cairn_apps::config::Retention,
    log: &RunLog,
) -> Result<u64> {
    let policy = rules.policy()?;
    let _lock = session.lock(repo, true)?;
    let filter = SnapshotFilter {
        apps: vec![app.to_owned()],
        ..SnapshotFilter::default()
    };
    let snaps: Vec<_> = repo
        .snapshots()?
        .into_iter()
        .filter(|(_, s)| filter.matches(s))
        .collect();
    let groups = apply_policy(
        &snaps,
        GroupBy::parse("host,paths,app")?,
        &policy,
        &jiff::tz::TimeZone::system(),
    );
    let remove: Vec<_> = groups
        .iter()
        .flat_map(|g| g.remove.iter().map(|(id, _)| *id))
        .collect();
    let kept: usize = groups.iter().map(|g| g.keep.len()).sum();
    let removed = remove_snapshots(repo, &remove)?;
    log.line(format!(
        "retention: kept {kept} snapshots, removed {removed}"
    ));
    Ok(removed as u64)
}

/// The node's repository of `run` (opened with its maintenance credential), under a lock
/// (exclusive or not) taken within the lock wait; records how long it waited. None when the
/// repository does not exist yet (no backup so far): nothing to maintain.
fn maintained(
    session: &Session,
    config: &NodeConfig,
    run: &mut Run,
    exclusive: bool,
    log: &RunLog,
) -> Result<Option<(Repository, cairn_repo::lock::LockGuard)>> {
    let def = run
        .job
        .as_ref()
        .and_then(|k| config.maintenance.iter().find(|d| d.key == *k))
        .ok_or_else(|| Error::invalid("this maintenance job is no longer configured"))?;
    let app = session.config()?.app(&def.app)?;
    let repo = match session.open_app(config.maintenance_app(app).as_ref().unwrap_or(app)) {
        Ok(repo) => repo,
        Err(e) if e.kind() == ErrorKind::RepositoryNotFound => {
            log.line("the repository does not exist yet (no backup so far): nothing to do");
            run.read_data = None;
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    let asked = std::time::Instant::now();
    let lock = session.lock(&repo, exclusive)?;
    run.lock_wait_seconds = asked.elapsed().as_secs_f64();
    Ok(Some((repo, lock)))
}

/// Prunes the repository of `run` (what no snapshot uses goes, mostly unused packs are
/// repacked) under an exclusive lock.
fn prune(session: &Session, config: &NodeConfig, run: &mut Run, log: &RunLog) -> Result<RunState> {
    let Some((repo, _lock)) = maintained(session, config, run, true, log)? else {
        return Ok(RunState::Succeeded);
    };
    let opts = cairn_repo::ops::prune::PruneOptions::default();
    let r = cairn_repo::ops::prune::prune(&repo, &opts, session.cancel())?;
    log.line(format!(
        "prune: {} snapshots; deleted {} unused packs, repacked {}, deleted {} orphaned packs; \
         {} bytes freed",
        r.snapshots,
        r.delete.len(),
        r.repack.len(),
        r.orphans.len(),
        r.bytes_freed
    ));
    Ok(RunState::Succeeded)
}

/// Checks the repository of `run` (reading `run.read_data` in full) under a shared lock; a
/// problem found fails the run, naming the first ones.
fn check(session: &Session, config: &NodeConfig, run: &mut Run, log: &RunLog) -> Result<RunState> {
    use cairn_repo::ops::check::{ReadData, Severity};
    let read = match &run.read_data {
        Some(r) => cairn_apps::units::parse_read_data(r)?,
        None => ReadData::None,
    };
    let Some((repo, _lock)) = maintained(session, config, run, false, log)? else {
        return Ok(RunState::Succeeded);
    };
    let report = cairn_repo::ops::check::check(&repo, read, &NoProgress, session.cancel())?;
    for p in report.problems.iter().take(20) {
        log.line(format!("{:?}: {}: {}", p.severity, p.object, p.message));
    }
    let orphans = report
        .problems
        .iter()
        .filter(|p| p.severity == Severity::Orphan)
        .count();
    log.line(format!(
        "check: {} snapshots, {} packs, {} read in full ({} bytes); {} errors, {orphans} \
         unreferenced",
        report.snapshots,
        report.packs,
        report.packs_read,
        report.bytes_read,
        report.errors()
    ));
    if report.errors() > 0 {
        let first = report
            .problems
            .iter()
            .find(|p| p.severity == Severity::Error)
            .map(|p| format!("{}: {}", p.object, p.message))
            .unwrap_or_default();
        run.error = Some(format!(
            "check found {} errors (first: {first})",
            report.errors()
        ));
        return Ok(RunState::Failed);
    }
    Ok(RunState::Succeeded)
}
