//! The scheduler: apps due by their schedule, by a manual trigger or by the success of the
//! apps they run `after`, queued, and started one slot at a time.
//!
//! - An app never runs twice at once: a slot that comes while it is queued or running is
//!   skipped and counted as missed.
//! - Slots missed while the agent was down are caught up by one run, not one per slot.
//! - An app with `after = [...]` runs once every app it names has succeeded since its own
//!   last run; a failure of one of them holds it back, and its status says which.
//! - At most `concurrency` jobs run at once, and at most `repository-concurrency` backups
//!   (default one) per repository; nothing of a queued job starts before it has its slot.
//! - The node's maintenance (prune and check of each repository) runs on its own schedule
//!   in the same queue, alone in its repository: never beside a backup into it.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use cairn_apps::Session;
use cairn_repo::{Error, ErrorKind, Result};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::cluster::Cluster;
use crate::job::{RunLog, execute};
use crate::schedule::Schedule;
use crate::settings::{AppDef, MaintenanceDef, NodeConfig};
use crate::store::{AppRecord, Operation, Run, RunState, Store, Trigger};

/// The node agent.
pub struct Agent {
    store: Store,
    /// The cluster's API, when the agent watches it.
    cluster: Option<Cluster>,
    state: Mutex<State>,
    wake: Condvar,
    started: Timestamp,
}

struct State {
    config: Arc<NodeConfig>,
    session: Arc<Session>,
    apps: BTreeMap<String, AppState>,
    maintenance: BTreeMap<String, MaintenanceState>,
    queue: VecDeque<Run>,
    running: BTreeMap<u64, Running>,
    next_id: u64,
    stopping: bool,
}

struct Running {
    app: String,
    /// A maintenance run's job key (none: a backup).
    job: Option<String>,
    repository: String,
    cancel: Arc<AtomicBool>,
    log: Arc<RunLog>,
}

/// What the agent knows of an app between runs.
#[derive(Default)]
struct AppState {
    next_slot: Option<Timestamp>,
    record: AppRecord,
    held: Option<String>,
    seen: LastRuns,
    outcomes: BTreeMap<&'static str, u64>,
    skipped_busy: bool,
}

/// Where a maintenance job is between runs.
#[derive(Default)]
struct MaintenanceState {
    next_slot: Option<Timestamp>,
    record: AppRecord,
    seen: LastRuns,
}

/// A maintenance job's status (`GET /maintenance`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MaintenanceStatus {
    /// `prune` or `check`.
    pub operation: Operation,
    /// The repository (credentials as `***`).
    pub repository: String,
    /// The app whose settings open it.
    pub app: String,
    /// Its schedule.
    pub schedule: String,
    /// When it runs next.
    pub next_run: Option<Timestamp>,
    /// Its last run.
    pub last_run: Option<Run>,
    /// When its last successful run ended.
    pub last_success: Option<Timestamp>,
}

/// An app's status, as `cairn agent status` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AppStatus {
    /// The app.
    pub app: String,
    /// `idle`, `queued`, `running`, `held` or `paused`.
    pub state: String,
    /// Why it is held back.
    pub held: Option<String>,
    /// Its schedule.
    pub schedule: Option<String>,
    /// The apps it runs after.
    pub after: Vec<String>,
    /// When it runs next by its schedule.
    pub next_run: Option<Timestamp>,
    /// Its last run.
    pub last_run: Option<Run>,
    /// When its last successful run ended.
    pub last_success: Option<Timestamp>,
    /// Scheduled runs that did not happen.
    pub missed: u64,
    /// Its runs by outcome.
    pub runs: BTreeMap<String, u64>,
    /// Whether its last scheduled slot was skipped because it was busy.
    pub skipped_busy: bool,
}

/// How many runs are read back at start to rebuild counters and status.
const HISTORY: usize = 100_000;

impl Agent {
    /// An agent over `config`: its database opened (runs cut short by the last agent's end
    /// marked interrupted, their stale locks removed), counters rebuilt from it.
    ///
    /// # Errors
    /// When the database cannot be opened or the settings are wrong.
    pub fn new(mut config: NodeConfig) -> Result<Arc<Agent>> {
        let (store, cut) = Store::open(&config.agent.state)?;
        let session = Arc::new(session_for(&mut config)?);
        let cluster = Cluster::start(&config.agent)?;
        let next_id = store.next_id()?;
        let agent = Arc::new(Agent {
            store,
            cluster,
            state: Mutex::new(State {
                config: Arc::new(NodeConfig {
                    agent: config.agent.clone(),
                    file: cairn_apps::ConfigFile::default(),
                    apps: Vec::new(),
                    maintenance: Vec::new(),
                    read_data: None,
                }),
                session: session.clone(),
                apps: BTreeMap::new(),
                maintenance: BTreeMap::new(),
                queue: VecDeque::new(),
                running: BTreeMap::new(),
                next_id,
                stopping: false,
            }),
            wake: Condvar::new(),
            started: Timestamp::now(),
        });
        for run in &cut {
            tracing::warn!(
                "run {} of app `{}` was cut short: marked interrupted",
                run.id,
                run.app
            );
        }
        let history = agent.store.runs(None, HISTORY)?;
        {
            let mut st = agent.lock();
            agent.install(&mut st, config, session)?;
            for run in history.iter().rev() {
                match &run.job {
                    None => {
                        if let Some(a) = st.apps.get_mut(&run.app) {
                            a.count(run);
                        }
                    }
                    Some(key) => {
                        if let Some(m) = st.maintenance.get_mut(key) {
                            m.seen.count(run);
                        }
                    }
                }
            }
        }
        // Locks the dead agent left: provably stale ones go (same host, its process gone).
        let apps: Vec<String> = cut.iter().map(|r| r.app.clone()).collect();
        agent.release_stale_locks(&apps);
        Ok(agent)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Puts `config` in place: apps added, changed or removed (their queued runs dropped),
    /// their schedule positions read from the database.
    fn install(&self, st: &mut State, config: NodeConfig, session: Arc<Session>) -> Result<()> {
        let mut apps = BTreeMap::new();
        for def in &config.apps {
            let mut a = st.apps.remove(&def.name).unwrap_or_default();
            (a.record, a.next_slot) = self.position(&def.name, def.schedule.as_ref())?;
            apps.insert(def.name.clone(), a);
        }
        let mut maintenance = BTreeMap::new();
        for def in &config.maintenance {
            let mut m = st.maintenance.remove(&def.key).unwrap_or_default();
            (m.record, m.next_slot) = self.position(&def.key, Some(&def.schedule))?;
            maintenance.insert(def.key.clone(), m);
        }
        let (kept, dropped): (VecDeque<Run>, VecDeque<Run>) = std::mem::take(&mut st.queue)
            .into_iter()
            .partition(|r| match &r.job {
                None => apps.contains_key(&r.app),
                Some(key) => maintenance.contains_key(key),
            });
        st.queue = kept;
        for mut run in dropped {
            run.state = RunState::Interrupted;
            run.ended = Some(Timestamp::now());
            run.error = Some("dropped: the new configuration no longer has it".into());
            self.store.put_run(&run, None)?;
        }
        st.apps = apps;
        st.maintenance = maintenance;
        st.config = Arc::new(config);
        st.session = session;
        self.wake.notify_all();
        Ok(())
    }

    /// The recorded schedule position of `key` and its next slot by `schedule`; a schedule
    /// seen for the first time counts its slots from now on (one missed while the agent is
    /// down is then caught up).
    fn position(
        &self,
        key: &str,
        schedule: Option<&Schedule>,
    ) -> Result<(AppRecord, Option<Timestamp>)> {
        let mut record = self.store.app(key)?.unwrap_or_default();
        let Some(s) = schedule else {
            return Ok((record, None));
        };
        if record.last_slot.is_none() {
            record.last_slot = Some(Timestamp::now());
            self.store.put_app(key, &record)?;
        }
        let next = record.last_slot.and_then(|t| s.next_after(t));
        Ok((record, next))
    }

    /// Reloads the configuration from `path` (SIGHUP). A configuration that does not load
    /// leaves the running one in place.
    ///
    /// # Errors
    /// When it does not load (the message says why).
    pub fn reload(&self, path: &std::path::Path) -> Result<()> {
        let mut config = NodeConfig::load(path)?;
        let session = Arc::new(session_for(&mut config)?);
        let mut st = self.lock();
        self.install(&mut st, config, session)
    }

    fn release_stale_locks(&self, apps: &[String]) {
        let (session, config) = {
            let st = self.lock();
            (st.session.clone(), st.config.clone())
        };
        let Ok(file) = session.config() else { return };
        for name in apps {
            let Ok(app) = file.app(name) else { continue };
            match session.open_app(config.maintenance_app(app).as_ref().unwrap_or(app)) {
                Ok(repo) => {
                    match cairn_repo::lock::remove_locks(&repo, &session.actor().hostname, false) {
                        Ok(0) => {}
                        Ok(n) => tracing::info!("app `{name}`: removed {n} stale locks"),
                        Err(e) => tracing::warn!("app `{name}`: cannot remove stale locks: {e}"),
                    }
                }
                Err(e) => tracing::debug!("app `{name}`: {e}"),
            }
        }
    }

    /// Queues a run of `app` now.
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`] for an app not configured; [`ErrorKind::Locked`] (with the
    /// run) when it is already queued or running; [`ErrorKind::Interrupted`] while stopping.
    pub fn trigger(&self, app: &str) -> std::result::Result<Run, (Error, Option<Box<Run>>)> {
        let mut st = self.lock();
        if st.stopping {
            return Err((
                Error::new(ErrorKind::Interrupted, "the agent is stopping"),
                None,
            ));
        }
        if !st.apps.contains_key(app) {
            return Err((
                Error::new(ErrorKind::NotFound, format!("no app `{app}` is configured")),
                None,
            ));
        }
        if let Some(run) = self.active_run(&st, app) {
            return Err((
                Error::new(
                    ErrorKind::Locked,
                    format!(
                        "app `{app}` is already {} as run {}",
                        run.state.name(),
                        run.id
                    ),
                ),
                Some(Box::new(run)),
            ));
        }
        let run = self
            .enqueue(&mut st, new_run(app, Trigger::Manual))
            .map_err(|e| (e, None))?;
        Ok(run)
    }

    fn active_run(&self, st: &State, app: &str) -> Option<Run> {
        if let Some(r) = st.queued_backup(app) {
            return Some(r.clone());
        }
        st.running_backup(app)
            .and_then(|id| self.store.run(id).ok().flatten())
    }

    fn enqueue(&self, st: &mut State, mut run: Run) -> Result<Run> {
        run.id = st.next_id;
        self.store.put_run(&run, None)?;
        st.next_id += 1;
        let app = run.app.clone();
        if run.job.is_none()
            && let Some(a) = st.apps.get_mut(&app)
        {
            a.held = None;
        }
        st.queue.push_back(run.clone());
        tracing::info!(
            "app `{app}`: {} run {} queued ({:?})",
            run.operation.name(),
            run.id,
            run.trigger
        );
        self.wake.notify_all();
        Ok(run)
    }

    /// Runs the scheduler until [`Agent::stop`] and every job has ended.
    pub fn run_scheduler(self: &Arc<Self>) {
        let mut st = self.lock();
        loop {
            if st.stopping {
                if st.running.is_empty() {
                    return;
                }
            } else {
                let now = Timestamp::now();
                self.fire_due(&mut st, now);
                self.dispatch(&mut st);
            }
            let wait = self.until_next(&st);
            st = self
                .wake
                .wait_timeout(st, wait)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    fn until_next(&self, st: &State) -> Duration {
        let now = Timestamp::now();
        let mut wait = Duration::from_secs(30);
        let mut consider = |s: &Schedule, slot: Option<Timestamp>, name: &str| {
            if let Some(slot) = slot {
                let start = s.start_of(slot, name);
                let d = Duration::try_from(start.duration_since(now)).unwrap_or(Duration::ZERO);
                wait = wait.min(d);
            }
        };
        for def in &st.config.apps {
            if let (Some(s), Some(a)) = (&def.schedule, st.apps.get(&def.name)) {
                consider(s, a.next_slot, &def.name);
            }
        }
        for def in &st.config.maintenance {
            if let Some(m) = st.maintenance.get(&def.key) {
                consider(&def.schedule, m.next_slot, &def.key);
            }
        }
        wait.max(Duration::from_millis(20))
    }

    /// When `schedule`'s next slot has come, moves the position past `now` and returns
    /// whether this run catches up slots missed (while the agent was down, or passed).
    fn advance(
        &self,
        schedule: &Schedule,
        name: &str,
        next_slot: &mut Option<Timestamp>,
        record: &mut AppRecord,
        now: Timestamp,
    ) -> Option<bool> {
        let slot = (*next_slot)?;
        if schedule.start_of(slot, name) > now {
            return None;
        }
        let (newest, more) = schedule.slots_between(slot, now);
        let newest = newest.unwrap_or(slot);
        record.missed += more;
        record.last_slot = Some(newest);
        *next_slot = schedule.next_after(newest);
        Some(more > 0 || slot < self.started)
    }

    fn fire_due(&self, st: &mut State, now: Timestamp) {
        let config = st.config.clone();
        for def in config.apps.iter().filter(|d| !d.paused) {
            let Some(schedule) = &def.schedule else {
                continue;
            };
            let busy = st.backup_active(&def.name);
            let Some(a) = st.apps.get_mut(&def.name) else {
                continue;
            };
            let Some(caught_up) =
                self.advance(schedule, &def.name, &mut a.next_slot, &mut a.record, now)
            else {
                continue;
            };
            if busy {
                a.record.missed += 1;
                a.skipped_busy = true;
                tracing::warn!(
                    "app `{}`: a scheduled run was skipped: it is still busy",
                    def.name
                );
            }
            let record = a.record.clone();
            if let Err(e) = self.store.put_app(&def.name, &record) {
                tracing::error!("app `{}`: {e}", def.name);
            }
            if !busy {
                let trigger = if caught_up {
                    Trigger::CatchUp
                } else {
                    Trigger::Schedule
                };
                if let Err(e) = self.enqueue(st, new_run(&def.name, trigger)) {
                    tracing::error!("app `{}`: cannot queue a run: {e}", def.name);
                }
            }
        }
        for def in &config.maintenance {
            self.fire_maintenance(st, def, now);
        }
    }

    fn fire_maintenance(&self, st: &mut State, def: &MaintenanceDef, now: Timestamp) {
        let key = &def.key;
        let busy = st.job_active(key);
        let Some(m) = st.maintenance.get_mut(key) else {
            return;
        };
        let Some(caught_up) =
            self.advance(&def.schedule, key, &mut m.next_slot, &mut m.record, now)
        else {
            return;
        };
        if let Err(e) = self.store.put_app(key, &m.record) {
            tracing::error!("{} of {}: {e}", def.operation.name(), def.shown);
        }
        if busy {
            tracing::info!(
                "{} of {}: still queued or running; this slot is passed over",
                def.operation.name(),
                def.shown
            );
            return;
        }
        let mut run = new_run(
            &def.app,
            if caught_up {
                Trigger::CatchUp
            } else {
                Trigger::Schedule
            },
        );
        run.operation = def.operation;
        run.repository = Some(def.shown.clone());
        run.job = Some(key.clone());
        if let Err(e) = self.enqueue(st, run) {
            tracing::error!(
                "{} of {}: cannot queue a run: {e}",
                def.operation.name(),
                def.shown
            );
        }
    }

    fn dispatch(self: &Arc<Self>, st: &mut State) {
        let limit = st.config.agent.concurrency.max(1);
        while st.running.len() < limit {
            let config = st.config.clone();
            let repository_of = |run: &Run| {
                match &run.job {
                    Some(key) => config
                        .maintenance
                        .iter()
                        .find(|d| d.key == *key)
                        .map(|d| d.repository.clone()),
                    None => config
                        .apps
                        .iter()
                        .find(|d| d.name == run.app)
                        .map(|d| d.repository.clone()),
                }
                .unwrap_or_default()
            };
            // Backups share a repository up to the limit; maintenance has it alone, and a
            // maintenance job waiting for it keeps backups queued after it from starting.
            let per_repository = config.agent.repository_concurrency.max(1);
            let mut waiting: Vec<String> = Vec::new();
            let free = st.queue.iter().position(|r| {
                let repo = repository_of(r);
                let there: Vec<&Running> = st
                    .running
                    .values()
                    .filter(|x| x.repository == repo)
                    .collect();
                if r.job.is_some() {
                    if there.is_empty() {
                        return true;
                    }
                    waiting.push(repo);
                    false
                } else {
                    !waiting.contains(&repo)
                        && there.len() < per_repository
                        && there.iter().all(|x| x.job.is_none())
                }
            });
            let Some(i) = free else { return };
            let Some(mut run) = st.queue.remove(i) else {
                return;
            };
            let repository = repository_of(&run);
            let cancel = Arc::new(AtomicBool::new(false));
            let log = Arc::new(RunLog::default());
            // An app's timeout is for its backups; maintenance has none (SIGTERM cancels it).
            let timeout = config
                .apps
                .iter()
                .find(|d| d.name == run.app && run.job.is_none())
                .and_then(|d| d.timeout);
            if run.operation == Operation::Check
                && let Some(m) = run.job.as_ref().and_then(|k| st.maintenance.get(k))
            {
                run.read_data = read_data_of(config.read_data, m.record.checks);
            }
            let session = st.session.fork(cancel.clone(), |_| {});
            run.state = RunState::Running;
            run.started = Some(Timestamp::now());
            if let Err(e) = self.store.put_run(&run, None) {
                tracing::error!("run {}: {e}", run.id);
            }
            st.running.insert(
                run.id,
                Running {
                    app: run.app.clone(),
                    job: run.job.clone(),
                    repository,
                    cancel: cancel.clone(),
                    log: log.clone(),
                },
            );
            let agent = self.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("cairn-run-{}", run.id))
                .spawn(move || agent.work(&session, &config, run, log, cancel, timeout));
            if let Err(e) = spawned {
                tracing::error!("cannot start a run: {e}");
                return;
            }
        }
    }

    fn work(
        self: Arc<Self>,
        session: &Session,
        config: &NodeConfig,
        mut run: Run,
        log: Arc<RunLog>,
        cancel: Arc<AtomicBool>,
        timeout: Option<Duration>,
    ) {
        tracing::info!("app `{}`: run {} started", run.app, run.id);
        log.line(match &run.repository {
            Some(repo) => format!(
                "run {}: {} of {repo} ({:?})",
                run.id,
                run.operation.name(),
                run.trigger
            ),
            None => format!("run {} of app `{}` ({:?})", run.id, run.app, run.trigger),
        });
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let timed_out = Arc::new(AtomicBool::new(false));
        if let Some(limit) = timeout {
            let (cancel, timed_out) = (cancel.clone(), timed_out.clone());
            let _ = std::thread::Builder::new()
                .name("cairn-run-timeout".into())
                .spawn(move || {
                    if done_rx.recv_timeout(limit)
                        == Err(std::sync::mpsc::RecvTimeoutError::Timeout)
                    {
                        timed_out.store(true, Ordering::SeqCst);
                        cancel.store(true, Ordering::SeqCst);
                    }
                });
        }
        execute(session, config, self.cluster.as_ref(), &mut run, &log);
        drop(done_tx);
        if timed_out.load(Ordering::SeqCst) {
            run.state = RunState::Failed;
            let why = format!(
                "timed out after {}s (the app's timeout)",
                timeout.unwrap_or_default().as_secs()
            );
            log.line(&why);
            run.error = Some(why);
        }
        run.ended = Some(Timestamp::now());
        tracing::info!(
            "app `{}`: run {} {}{}",
            run.app,
            run.id,
            run.state.name(),
            run.error
                .as_deref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        );
        if let Err(e) = self.store.put_run(&run, Some(&log.lines())) {
            tracing::error!("run {}: {e}", run.id);
        }
        let mut st = self.lock();
        st.running.remove(&run.id);
        self.finished(&mut st, &run);
        let idle = st.running.is_empty();
        drop(st);
        self.wake.notify_all();
        if idle {
            crate::memory::release_free();
        }
    }

    /// Counts a finished run and starts (or holds back) the apps that run after it.
    fn finished(&self, st: &mut State, run: &Run) {
        if let Some(key) = &run.job {
            if let Some(m) = st.maintenance.get_mut(key) {
                m.seen.count(run);
                // The next check reads the next subset once this one has read its own.
                if run.operation == Operation::Check
                    && run.state.success()
                    && run.read_data.is_some()
                {
                    m.record.checks += 1;
                    if let Err(e) = self.store.put_app(key, &m.record) {
                        tracing::error!("{key}: {e}");
                    }
                }
            }
            return;
        }
        if let Some(a) = st.apps.get_mut(&run.app) {
            a.count(run);
            a.skipped_busy = false;
        }
        if st.stopping {
            return;
        }
        let config = st.config.clone();
        for def in config.apps.iter().filter(|d| d.after.contains(&run.app)) {
            if !run.state.success() {
                if let Some(a) = st.apps.get_mut(&def.name) {
                    a.held = Some(format!("held back: `{}` failed (run {})", run.app, run.id));
                }
                continue;
            }
            if def.paused || st.backup_active(&def.name) || !self.deps_done(st, def) {
                continue;
            }
            if let Err(e) = self.enqueue(st, new_run(&def.name, Trigger::After)) {
                tracing::error!("app `{}`: cannot queue a run: {e}", def.name);
            }
        }
    }

    /// Whether every app `def` runs after has succeeded since `def`'s last run began.
    fn deps_done(&self, st: &State, def: &AppDef) -> bool {
        let since = st
            .apps
            .get(&def.name)
            .and_then(|a| a.seen.last.as_ref())
            .map(|r| r.queued);
        def.after.iter().all(|dep| {
            st.apps
                .get(dep)
                .and_then(|a| a.seen.last_success.as_ref())
                .and_then(|r| r.ended)
                .is_some_and(|end| since.is_none_or(|s| end > s))
        })
    }

    /// Stops: no new jobs; running ones get `grace` to finish, then are cancelled (their
    /// post hooks still run, no snapshot of a half-read volume is saved, their locks go).
    /// Returns when every job has ended.
    pub fn stop(&self, grace: Duration) {
        let mut st = self.lock();
        st.stopping = true;
        let dropped: Vec<Run> = st.queue.drain(..).collect();
        for mut run in dropped {
            run.state = RunState::Interrupted;
            run.ended = Some(Timestamp::now());
            run.error = Some("the agent stopped before this run started".into());
            let _ = self.store.put_run(&run, None);
        }
        let deadline = std::time::Instant::now() + grace;
        while !st.running.is_empty() {
            let now = std::time::Instant::now();
            if now >= deadline {
                for r in st.running.values() {
                    r.log.line("cancelled: the agent is stopping");
                    r.cancel.store(true, Ordering::SeqCst);
                }
                st = self.wake.wait(st).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            st = self
                .wake
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        self.wake.notify_all();
    }

    /// Every app's status.
    pub fn status(&self) -> Vec<AppStatus> {
        let st = self.lock();
        st.config
            .apps
            .iter()
            .filter_map(|def| Some(self.status_of(&st, def, st.apps.get(&def.name)?)))
            .collect()
    }

    /// App `name`'s status.
    pub fn app_status(&self, name: &str) -> Option<AppStatus> {
        let st = self.lock();
        let def = st.config.apps.iter().find(|d| d.name == name)?;
        Some(self.status_of(&st, def, st.apps.get(name)?))
    }

    fn status_of(&self, st: &State, def: &AppDef, a: &AppState) -> AppStatus {
        let state = if st.running_backup(&def.name).is_some() {
            "running"
        } else if st.queued_backup(&def.name).is_some() {
            "queued"
        } else if def.paused {
            "paused"
        } else if a.held.is_some() {
            "held"
        } else {
            "idle"
        };
        AppStatus {
            app: def.name.clone(),
            state: state.into(),
            held: a.held.clone(),
            schedule: def.schedule.as_ref().map(|s| s.pattern().to_owned()),
            after: def.after.clone(),
            next_run: def
                .schedule
                .as_ref()
                .zip(a.next_slot)
                .filter(|_| !def.paused)
                .map(|(s, slot)| s.start_of(slot, &def.name)),
            last_run: a.seen.last.clone(),
            last_success: a.seen.last_success.as_ref().and_then(|r| r.ended),
            missed: a.record.missed,
            runs: a
                .outcomes
                .iter()
                .map(|(k, v)| ((*k).to_owned(), *v))
                .collect(),
            skipped_busy: a.skipped_busy,
        }
    }

    /// The maintenance jobs' status.
    pub fn maintenance(&self) -> Vec<MaintenanceStatus> {
        let st = self.lock();
        st.config
            .maintenance
            .iter()
            .filter_map(|def| {
                let m = st.maintenance.get(&def.key)?;
                Some(MaintenanceStatus {
                    operation: def.operation,
                    repository: def.shown.clone(),
                    app: def.app.clone(),
                    schedule: def.schedule.pattern().to_owned(),
                    next_run: m
                        .next_slot
                        .map(|slot| def.schedule.start_of(slot, &def.key)),
                    last_run: m.seen.last.clone(),
                    last_success: m.seen.last_success.as_ref().and_then(|r| r.ended),
                })
            })
            .collect()
    }

    /// Jobs waiting for a slot.
    pub fn queue_length(&self) -> usize {
        self.lock().queue.len()
    }

    /// Jobs running.
    pub fn running(&self) -> usize {
        self.lock().running.len()
    }

    /// The newest runs (of `app`), at most `limit`.
    ///
    /// # Errors
    /// When the database cannot be read.
    pub fn runs(&self, app: Option<&str>, limit: usize) -> Result<Vec<Run>> {
        self.store.runs(app, limit)
    }

    /// Run `id`.
    ///
    /// # Errors
    /// When the database cannot be read.
    pub fn run(&self, id: u64) -> Result<Option<Run>> {
        self.store.run(id)
    }

    /// The log of run `id`: live while it runs, else as recorded.
    ///
    /// # Errors
    /// When the database cannot be read.
    pub fn log(&self, id: u64) -> Result<Vec<String>> {
        if let Some(r) = self.lock().running.get(&id) {
            return Ok(r.log.lines());
        }
        self.store.log(id)
    }

    /// The node's settings.
    pub fn config(&self) -> Arc<NodeConfig> {
        self.lock().config.clone()
    }
}

/// The last run and the last successful one.
#[derive(Default)]
struct LastRuns {
    last: Option<Run>,
    last_success: Option<Run>,
}

impl LastRuns {
    /// Takes `run` in when it has ended; whether it had.
    fn count(&mut self, run: &Run) -> bool {
        if !run.state.ended() {
            return false;
        }
        if run.state.success() {
            self.last_success = Some(run.clone());
        }
        self.last = Some(run.clone());
        true
    }
}

impl AppState {
    fn count(&mut self, run: &Run) {
        if self.seen.count(run) {
            *self.outcomes.entry(run.state.name()).or_default() += 1;
        }
    }
}

impl State {
    /// App `app`'s backup waiting in the queue.
    fn queued_backup(&self, app: &str) -> Option<&Run> {
        self.queue.iter().find(|r| r.app == app && r.job.is_none())
    }

    /// The id of app `app`'s running backup.
    fn running_backup(&self, app: &str) -> Option<u64> {
        self.running
            .iter()
            .find(|(_, r)| r.app == app && r.job.is_none())
            .map(|(id, _)| *id)
    }

    /// Whether app `app`'s backup is queued or running.
    fn backup_active(&self, app: &str) -> bool {
        self.queued_backup(app).is_some() || self.running_backup(app).is_some()
    }

    /// Whether maintenance job `key` is queued or running.
    fn job_active(&self, key: &str) -> bool {
        self.queue.iter().any(|r| r.job.as_deref() == Some(key))
            || self.running.values().any(|r| r.job.as_deref() == Some(key))
    }
}

/// A new queued run of `app`.
fn new_run(app: &str, trigger: Trigger) -> Run {
    Run {
        id: 0,
        app: app.to_owned(),
        operation: Operation::Backup,
        repository: None,
        job: None,
        read_data: None,
        trigger,
        queued: Timestamp::now(),
        started: None,
        ended: None,
        state: RunState::Queued,
        error: None,
        locked: false,
        snapshots: Vec::new(),
        files_new: 0,
        bytes_added: 0,
        lock_wait_seconds: 0.0,
        forgotten: 0,
    }
}

/// What check number `checks` (from 0) reads: `n/t` goes on to the next subset each time.
fn read_data_of(read: Option<cairn_repo::ops::check::ReadData>, checks: u64) -> Option<String> {
    use cairn_repo::ops::check::ReadData;
    match read? {
        ReadData::None => None,
        ReadData::All => Some("100%".into()),
        ReadData::Part { n, of } => {
            let of64 = u64::from(of.max(1));
            Some(format!("{}/{of}", (u64::from(n) - 1 + checks) % of64 + 1))
        }
        ReadData::Percent(p) => Some(format!("{p}%")),
        ReadData::Bytes(b) => Some(b.to_string()),
    }
}

/// The session of `config`'s runs; it takes the configuration file (apps and plugins).
fn session_for(config: &mut NodeConfig) -> Result<Session> {
    let settings = config.settings()?;
    let file = std::mem::take(&mut config.file);
    Ok(Session::new(settings, Arc::default()).with_config(file))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_repo::ops::check::ReadData;

    #[test]
    fn checks_go_on_to_the_next_subset_each_time() {
        let part = Some(ReadData::Part { n: 2, of: 3 });
        let seen: Vec<_> = (0..4).filter_map(|i| read_data_of(part, i)).collect();
        assert_eq!(seen, ["2/3", "3/3", "1/3", "2/3"]);
        assert_eq!(
            read_data_of(Some(ReadData::Percent(10.0)), 5).unwrap(),
            "10%"
        );
        assert_eq!(read_data_of(None, 0), None);
        assert_eq!(
            cairn_apps::units::parse_read_data(&read_data_of(Some(ReadData::All), 0).unwrap())
                .unwrap(),
            ReadData::Percent(100.0)
        );
    }
}
