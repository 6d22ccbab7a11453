//! The agent's state in an embedded database (redb, one file under the state directory):
//! every run, its log's last lines, and each app's schedule position. At start, runs still
//! recorded as queued or running were cut short by the agent's end: they are marked
//! interrupted, and status and metrics are rebuilt from what is recorded.

use std::path::Path;

use cairn_repo::{Error, ErrorKind, Result};
use jiff::Timestamp;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

const RUNS: TableDefinition<u64, &[u8]> = TableDefinition::new("runs");
const LOGS: TableDefinition<u64, &[u8]> = TableDefinition::new("logs");
const APPS: TableDefinition<&str, &[u8]> = TableDefinition::new("apps");

/// What started a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Trigger {
    /// Its schedule.
    Schedule,
    /// Its schedule, once, for the slots missed while the agent was down.
    CatchUp,
    /// `cairn agent run` or `POST /apps/NAME/run`.
    Manual,
    /// The apps it runs after succeeded.
    After,
}

/// What a run does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Operation {
    /// Back up an app (then apply its retention).
    #[default]
    Backup,
    /// Prune a repository (the node's maintenance).
    Prune,
    /// Check a repository, reading part of its data (the node's maintenance).
    Check,
}

impl Operation {
    /// Its name (`backup`), as in the API and the metrics.
    pub fn name(self) -> &'static str {
        match self {
            Operation::Backup => "backup",
            Operation::Prune => "prune",
            Operation::Check => "check",
        }
    }
}

/// Where a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunState {
    /// Waiting for a slot.
    Queued,
    /// Running.
    Running,
    /// Done, every volume saved.
    Succeeded,
    /// Done, but some entries could not be read (restic's exit 3).
    Incomplete,
    /// Failed (see its error).
    Failed,
    /// Cut short: the agent stopped or died while it ran.
    Interrupted,
}

impl RunState {
    /// Whether the run has ended.
    pub fn ended(self) -> bool {
        !matches!(self, RunState::Queued | RunState::Running)
    }

    /// Whether it ended well enough to count as a success (its snapshots are saved).
    pub fn success(self) -> bool {
        matches!(self, RunState::Succeeded | RunState::Incomplete)
    }

    /// Its name (`succeeded`), as in the API and the metrics.
    pub fn name(self) -> &'static str {
        match self {
            RunState::Queued => "queued",
            RunState::Running => "running",
            RunState::Succeeded => "succeeded",
            RunState::Incomplete => "incomplete",
            RunState::Failed => "failed",
            RunState::Interrupted => "interrupted",
        }
    }

    /// The exit code `cairn agent run --wait` ends with (restic's: 0, 1, 3, 11 locked).
    pub fn exit_code(self, locked: bool) -> u8 {
        match self {
            RunState::Succeeded => 0,
            RunState::Incomplete => 3,
            RunState::Failed if locked => 11,
            RunState::Interrupted => 130,
            _ => 1,
        }
    }
}

/// One run: a backup of an app, or a maintenance job on a repository.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Run {
    /// Its number, increasing.
    pub id: u64,
    /// The app (of a maintenance job: the app whose settings open the repository).
    pub app: String,
    /// What it does.
    #[serde(default)]
    pub operation: Operation,
    /// A maintenance job's repository (credentials in its URL shown as `***`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// A maintenance job's key (which prune or check it is).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    /// What a check reads in full (`2/7`, `10%`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_data: Option<String>,
    /// What started it.
    pub trigger: Trigger,
    /// When it was queued.
    pub queued: Timestamp,
    /// When it started.
    pub started: Option<Timestamp>,
    /// When it ended.
    pub ended: Option<Timestamp>,
    /// Where it is.
    pub state: RunState,
    /// Why it failed.
    pub error: Option<String>,
    /// Whether it failed on a locked repository.
    #[serde(default)]
    pub locked: bool,
    /// The snapshots it saved.
    #[serde(default)]
    pub snapshots: Vec<String>,
    /// Files new in its snapshots.
    #[serde(default)]
    pub files_new: u64,
    /// Bytes it added to the repository (before compression).
    #[serde(default)]
    pub bytes_added: u64,
    /// How long it waited for its repository's lock.
    #[serde(default)]
    pub lock_wait_seconds: f64,
    /// Snapshots its retention removed.
    #[serde(default)]
    pub forgotten: u64,
}

impl Run {
    /// How long it ran (so far, when it runs).
    pub fn duration_seconds(&self) -> f64 {
        match self.started {
            Some(s) => {
                let end = self.ended.unwrap_or_else(Timestamp::now);
                end.duration_since(s).as_secs_f64().max(0.0)
            }
            None => 0.0,
        }
    }
}

/// An app's schedule position and counters, kept across restarts.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AppRecord {
    /// The newest scheduled slot already handled (run, or skipped and counted).
    pub last_slot: Option<Timestamp>,
    /// Scheduled runs that did not happen: the app was busy, or the agent was down.
    pub missed: u64,
    /// Checks that read their subset (which `n/t` subset the next one reads).
    #[serde(default)]
    pub checks: u64,
}

/// The database.
pub struct Store {
    db: Database,
}

fn db_error(what: &str, e: impl Into<redb::Error>) -> Error {
    Error::new(ErrorKind::Io, format!("agent database: {what}")).with_source(e.into())
}

fn decode<T: for<'de> Deserialize<'de>>(what: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes)
        .map_err(|e| Error::corrupt(format!("agent database: {what} is not readable: {e}")))
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

impl Store {
    /// Opens (or creates) the database in `dir`; the runs it found cut short are marked
    /// interrupted and returned.
    ///
    /// # Errors
    /// When the database cannot be opened (another agent holds it) or written.
    pub fn open(dir: &Path) -> Result<(Store, Vec<Run>)> {
        std::fs::create_dir_all(dir).map_err(|e| {
            Error::io(
                format!("cannot create the state directory {}", dir.display()),
                e,
            )
        })?;
        let path = dir.join("agent.redb");
        let db = Database::create(&path).map_err(|e| {
            db_error(
                &format!(
                    "cannot open {} (is another agent running on it?)",
                    path.display()
                ),
                e,
            )
        })?;
        let store = Store { db };
        let txn = store.db.begin_write().map_err(|e| db_error("write", e))?;
        let mut cut = Vec::new();
        {
            let mut runs = txn.open_table(RUNS).map_err(|e| db_error("runs", e))?;
            txn.open_table(LOGS).map_err(|e| db_error("logs", e))?;
            txn.open_table(APPS).map_err(|e| db_error("apps", e))?;
            for entry in runs.iter().map_err(|e| db_error("runs", e))? {
                let (_, v) = entry.map_err(|e| db_error("runs", e))?;
                let run: Run = decode("a run", v.value())?;
                if !run.state.ended() {
                    cut.push(run);
                }
            }
            for run in &mut cut {
                run.state = RunState::Interrupted;
                run.ended = Some(Timestamp::now());
                run.error = Some("the agent stopped while this run was queued or running".into());
                runs.insert(run.id, encode(&*run).as_slice())
                    .map_err(|e| db_error("runs", e))?;
            }
        }
        txn.commit().map_err(|e| db_error("commit", e))?;
        Ok((store, cut))
    }

    /// The number after the newest run's.
    ///
    /// # Errors
    /// When the database cannot be read.
    pub fn next_id(&self) -> Result<u64> {
        let txn = self.db.begin_read().map_err(|e| db_error("read", e))?;
        let runs = txn.open_table(RUNS).map_err(|e| db_error("runs", e))?;
        let last = runs.last().map_err(|e| db_error("runs", e))?;
        Ok(last.map_or(1, |(k, _)| k.value() + 1))
    }

    /// Records `run` (new or changed) and, when given, its log.
    ///
    /// # Errors
    /// When the database cannot be written.
    pub fn put_run(&self, run: &Run, log: Option<&[String]>) -> Result<()> {
        let txn = self.db.begin_write().map_err(|e| db_error("write", e))?;
        {
            let mut runs = txn.open_table(RUNS).map_err(|e| db_error("runs", e))?;
            runs.insert(run.id, encode(run).as_slice())
                .map_err(|e| db_error("runs", e))?;
            if let Some(lines) = log {
                let mut logs = txn.open_table(LOGS).map_err(|e| db_error("logs", e))?;
                logs.insert(run.id, encode(&lines).as_slice())
                    .map_err(|e| db_error("logs", e))?;
            }
        }
        txn.commit().map_err(|e| db_error("commit", e))
    }

    /// Run `id`.
    ///
    /// # Errors
    /// When the database cannot be read.
    pub fn run(&self, id: u64) -> Result<Option<Run>> {
        let txn = self.db.begin_read().map_err(|e| db_error("read", e))?;
        let runs = txn.open_table(RUNS).map_err(|e| db_error("runs", e))?;
        let found = runs.get(id).map_err(|e| db_error("runs", e))?;
        found.map(|v| decode("a run", v.value())).transpose()
    }

    /// The log of run `id`.
    ///
    /// # Errors
    /// When the database cannot be read.
    pub fn log(&self, id: u64) -> Result<Vec<String>> {
        let txn = self.db.begin_read().map_err(|e| db_error("read", e))?;
        let logs = txn.open_table(LOGS).map_err(|e| db_error("logs", e))?;
        let found = logs.get(id).map_err(|e| db_error("logs", e))?;
        Ok(found
            .map(|v| decode("a log", v.value()))
            .transpose()?
            .unwrap_or_default())
    }

    /// The newest runs first (of `app` only, when given), at most `limit`.
    ///
    /// # Errors
    /// When the database cannot be read.
    pub fn runs(&self, app: Option<&str>, limit: usize) -> Result<Vec<Run>> {
        let txn = self.db.begin_read().map_err(|e| db_error("read", e))?;
        let runs = txn.open_table(RUNS).map_err(|e| db_error("runs", e))?;
        let mut out = Vec::new();
        for entry in runs.iter().map_err(|e| db_error("runs", e))?.rev() {
            if out.len() >= limit {
                break;
            }
            let (_, v) = entry.map_err(|e| db_error("runs", e))?;
            let run: Run = decode("a run", v.value())?;
            if app.is_none_or(|a| a == run.app) {
                out.push(run);
            }
        }
        Ok(out)
    }

    /// App `name`'s record.
    ///
    /// # Errors
    /// When the database cannot be read.
    pub fn app(&self, name: &str) -> Result<Option<AppRecord>> {
        let txn = self.db.begin_read().map_err(|e| db_error("read", e))?;
        let apps = txn.open_table(APPS).map_err(|e| db_error("apps", e))?;
        let found = apps.get(name).map_err(|e| db_error("apps", e))?;
        found.map(|v| decode("an app", v.value())).transpose()
    }

    /// Records app `name`'s record.
    ///
    /// # Errors
    /// When the database cannot be written.
    pub fn put_app(&self, name: &str, record: &AppRecord) -> Result<()> {
        let txn = self.db.begin_write().map_err(|e| db_error("write", e))?;
        {
            let mut apps = txn.open_table(APPS).map_err(|e| db_error("apps", e))?;
            apps.insert(name, encode(record).as_slice())
                .map_err(|e| db_error("apps", e))?;
        }
        txn.commit().map_err(|e| db_error("commit", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(id: u64, app: &str, state: RunState) -> Run {
        Run {
            id,
            app: app.into(),
            operation: Operation::Backup,
            repository: None,
            job: None,
            read_data: None,
            trigger: Trigger::Manual,
            queued: Timestamp::now(),
            started: None,
            ended: None,
            state,
            error: None,
            locked: false,
            snapshots: vec![],
            files_new: 0,
            bytes_added: 0,
            lock_wait_seconds: 0.0,
            forgotten: 0,
        }
    }

    #[test]
    fn runs_cut_short_are_interrupted_at_the_next_open_and_the_rest_survives() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (s, cut) = Store::open(dir.path()).unwrap();
            assert!(cut.is_empty());
            assert_eq!(s.next_id().unwrap(), 1);
            s.put_run(&run(1, "a", RunState::Succeeded), Some(&["done".into()]))
                .unwrap();
            s.put_run(&run(2, "b", RunState::Running), None).unwrap();
            s.put_run(&run(3, "a", RunState::Queued), None).unwrap();
            s.put_app(
                "a",
                &AppRecord {
                    last_slot: None,
                    missed: 4,
                    checks: 0,
                },
            )
            .unwrap();
        }
        let (s, cut) = Store::open(dir.path()).unwrap();
        assert_eq!(cut.iter().map(|r| r.id).collect::<Vec<_>>(), [2, 3]);
        assert_eq!(s.run(2).unwrap().unwrap().state, RunState::Interrupted);
        assert_eq!(s.run(1).unwrap().unwrap().state, RunState::Succeeded);
        assert_eq!(s.log(1).unwrap(), ["done"]);
        assert_eq!(s.next_id().unwrap(), 4);
        let of_a: Vec<u64> = s
            .runs(Some("a"), 10)
            .unwrap()
            .iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(of_a, [3, 1]);
        assert_eq!(s.runs(None, 1).unwrap()[0].id, 3);
        assert_eq!(s.app("a").unwrap().unwrap().missed, 4);
        assert!(s.app("zzz").unwrap().is_none());
    }
}
