//! The scheduler: apps due by their schedule, by a manual trigger or by the success of the
//! apps they run `after`, queued, and started one slot at a time.
//!
//! - An app never runs twice at once: a slot that comes while it is queued or running is
//!   skipped and counted as missed.
//! - Slots missed while the agent was down are caught up by one run, not one per slot.
//! - An app with `after = [...]` runs once every app it names has succeeded since its own
//!   last run; a failure of one of them holds it back, and its status says which.
//! - At most `concurrency` jobs run at once, and one per repository; nothing of a queued
//!   job starts before it has its slot.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use cairn_apps::Session;
use cairn_repo::{Error, ErrorKind, Result};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::job::{RunLog, execute};
use crate::settings::{AppDef, NodeConfig};
use crate::store::{AppRecord, Run, RunState, Store, Trigger};

/// The node agent.
pub struct Agent {
    store: Store,
    state: Mutex<State>,
    wake: Condvar,
    started: Timestamp,
}

struct State {
    config: Arc<NodeConfig>,
    session: Arc<Session>,
    apps: BTreeMap<String, AppState>,
    queue: VecDeque<Run>,
    running: BTreeMap<u64, Running>,
    next_id: u64,
    stopping: bool,
}

struct Running {
    app: String,
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
    last: Option<Run>,
    last_success: Option<Run>,
    outcomes: BTreeMap<&'static str, u64>,
    skipped_busy: bool,
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
        let next_id = store.next_id()?;
        let agent = Arc::new(Agent {
            store,
            state: Mutex::new(State {
                config: Arc::new(NodeConfig {
                    agent: config.agent.clone(),
                    file: cairn_apps::ConfigFile::default(),
                    apps: Vec::new(),
                }),
                session: session.clone(),
                apps: BTreeMap::new(),
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
                if let Some(a) = st.apps.get_mut(&run.app) {
                    a.count(run);
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
        let now = Timestamp::now();
        let mut apps = BTreeMap::new();
        for def in &config.apps {
            let mut a = st.apps.remove(&def.name).unwrap_or_default();
            a.record = self.store.app(&def.name)?.unwrap_or_default();
            if let Some(s) = &def.schedule {
                if a.record.last_slot.is_none() {
                    // Slots from now on count; one missed while down is then caught up.
                    a.record.last_slot = Some(now);
                    self.store.put_app(&def.name, &a.record)?;
                }
                a.next_slot = a.record.last_slot.and_then(|t| s.next_after(t));
            } else {
                a.next_slot = None;
            }
            apps.insert(def.name.clone(), a);
        }
        st.queue.retain(|r| apps.contains_key(&r.app));
        st.apps = apps;
        st.config = Arc::new(config);
        st.session = session;
        self.wake.notify_all();
        Ok(())
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
        let session = self.lock().session.clone();
        let Ok(file) = session.config() else { return };
        for name in apps {
            let Ok(app) = file.app(name) else { continue };
            match session.open_app(app) {
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
            .enqueue(&mut st, app, Trigger::Manual)
            .map_err(|e| (e, None))?;
        Ok(run)
    }

    fn active_run(&self, st: &State, app: &str) -> Option<Run> {
        if let Some(r) = st.queue.iter().find(|r| r.app == app) {
            return Some(r.clone());
        }
        st.running
            .iter()
            .find(|(_, r)| r.app == app)
            .and_then(|(id, _)| self.store.run(*id).ok().flatten())
    }

    fn busy(st: &State, app: &str) -> bool {
        st.queue.iter().any(|r| r.app == app) || st.running.values().any(|r| r.app == app)
    }

    fn enqueue(&self, st: &mut State, app: &str, trigger: Trigger) -> Result<Run> {
        let run = Run {
            id: st.next_id,
            app: app.to_owned(),
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
        };
        self.store.put_run(&run, None)?;
        st.next_id += 1;
        if let Some(a) = st.apps.get_mut(app) {
            a.held = None;
        }
        st.queue.push_back(run.clone());
        tracing::info!("app `{app}`: run {} queued ({trigger:?})", run.id);
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
        for def in &st.config.apps {
            let (Some(s), Some(a)) = (&def.schedule, st.apps.get(&def.name)) else {
                continue;
            };
            if let Some(slot) = a.next_slot {
                let start = s.start_of(slot, &def.name);
                let d = Duration::try_from(start.duration_since(now)).unwrap_or(Duration::ZERO);
                wait = wait.min(d);
            }
        }
        wait.max(Duration::from_millis(20))
    }

    fn fire_due(&self, st: &mut State, now: Timestamp) {
        let config = st.config.clone();
        for def in config.apps.iter().filter(|d| !d.paused) {
            let Some(schedule) = &def.schedule else {
                continue;
            };
            let busy = Self::busy(st, &def.name);
            let Some(a) = st.apps.get_mut(&def.name) else {
                continue;
            };
            let Some(slot) = a.next_slot else { continue };
            if schedule.start_of(slot, &def.name) > now {
                continue;
            }
            let (newest, more) = schedule.slots_between(slot, now);
            let newest = newest.unwrap_or(slot);
            let caught_up = more > 0 || slot < self.started;
            a.record.missed += more;
            a.record.last_slot = Some(newest);
            a.next_slot = schedule.next_after(newest);
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
                if let Err(e) = self.enqueue(st, &def.name, trigger) {
                    tracing::error!("app `{}`: cannot queue a run: {e}", def.name);
                }
            }
        }
    }

    fn dispatch(self: &Arc<Self>, st: &mut State) {
        let limit = st.config.agent.concurrency.max(1);
        while st.running.len() < limit {
            let repository_of = |app: &str| {
                st.config
                    .apps
                    .iter()
                    .find(|d| d.name == app)
                    .map(|d| d.repository.clone())
                    .unwrap_or_default()
            };
            let free = st.queue.iter().position(|r| {
                let repo = repository_of(&r.app);
                !st.running.values().any(|x| x.repository == repo)
            });
            let Some(i) = free else { return };
            let Some(mut run) = st.queue.remove(i) else {
                return;
            };
            let repository = repository_of(&run.app);
            let cancel = Arc::new(AtomicBool::new(false));
            let log = Arc::new(RunLog::default());
            let timeout = st
                .config
                .apps
                .iter()
                .find(|d| d.name == run.app)
                .and_then(|d| d.timeout);
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
                    repository,
                    cancel: cancel.clone(),
                    log: log.clone(),
                },
            );
            let agent = self.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("cairn-run-{}", run.id))
                .spawn(move || agent.work(session, run, log, cancel, timeout));
            if let Err(e) = spawned {
                tracing::error!("cannot start a run: {e}");
                return;
            }
        }
    }

    fn work(
        self: Arc<Self>,
        session: Session,
        mut run: Run,
        log: Arc<RunLog>,
        cancel: Arc<AtomicBool>,
        timeout: Option<Duration>,
    ) {
        tracing::info!("app `{}`: run {} started", run.app, run.id);
        log.line(format!(
            "run {} of app `{}` ({:?})",
            run.id, run.app, run.trigger
        ));
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
        execute(&session, &mut run, &log);
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
        drop(st);
        self.wake.notify_all();
    }

    /// Counts a finished run and starts (or holds back) the apps that run after it.
    fn finished(&self, st: &mut State, run: &Run) {
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
            if def.paused || Self::busy(st, &def.name) || !self.deps_done(st, def) {
                continue;
            }
            if let Err(e) = self.enqueue(st, &def.name, Trigger::After) {
                tracing::error!("app `{}`: cannot queue a run: {e}", def.name);
            }
        }
    }

    /// Whether every app `def` runs after has succeeded since `def`'s last run began.
    fn deps_done(&self, st: &State, def: &AppDef) -> bool {
        let since = st
            .apps
            .get(&def.name)
            .and_then(|a| a.last.as_ref())
            .map(|r| r.queued);
        def.after.iter().all(|dep| {
            st.apps
                .get(dep)
                .and_then(|a| a.last_success.as_ref())
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
        let state = if st.running.values().any(|r| r.app == def.name) {
            "running"
        } else if st.queue.iter().any(|r| r.app == def.name) {
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
            last_run: a.last.clone(),
            last_success: a.last_success.as_ref().and_then(|r| r.ended),
            missed: a.record.missed,
            runs: a
                .outcomes
                .iter()
                .map(|(k, v)| ((*k).to_owned(), *v))
                .collect(),
            skipped_busy: a.skipped_busy,
        }
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

impl AppState {
    fn count(&mut self, run: &Run) {
        if !run.state.ended() {
            return;
        }
        *self.outcomes.entry(run.state.name()).or_default() += 1;
        if run.state.success() {
            self.last_success = Some(run.clone());
        }
        self.last = Some(run.clone());
    }
}

/// The session of `config`'s runs; it takes the configuration file (apps and plugins).
fn session_for(config: &mut NodeConfig) -> Result<Session> {
    let settings = config.settings()?;
    let file = std::mem::take(&mut config.file);
    Ok(Session::new(settings, Arc::default()).with_config(file))
}
