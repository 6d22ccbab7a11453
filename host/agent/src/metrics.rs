//! The agent's metrics in Prometheus' text format (`GET /metrics`), and the textfile for
//! node_exporter's textfile collector: one status gauge per app, as NS8 reads it (-1
//! running or unknown, 0 failed, 1 ok, 2 skipped because busy), written to a temporary name
//! and renamed so that node_exporter never reads half a file.

use std::fmt::Write as _;
use std::path::Path;

use cairn_repo::{Error, Result};

use crate::agent::{Agent, AppStatus, MaintenanceStatus};

/// One metric family: its samples as (labels, value).
struct Family {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    samples: Vec<(String, f64)>,
}

fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn write(out: &mut String, families: &[Family]) {
    for f in families {
        let _ = writeln!(out, "# HELP {} {}", f.name, f.help);
        let _ = writeln!(out, "# TYPE {} {}", f.name, f.kind);
        for (labels, value) in &f.samples {
            if labels.is_empty() {
                let _ = writeln!(out, "{} {value}", f.name);
            } else {
                let _ = writeln!(out, "{}{{{labels}}} {value}", f.name);
            }
        }
    }
}

fn per_app(
    apps: &[AppStatus],
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    value: impl Fn(&AppStatus) -> Option<f64>,
) -> Family {
    Family {
        name,
        kind,
        help,
        samples: apps
            .iter()
            .filter_map(|a| Some((format!("app=\"{}\"", label(&a.app)), value(a)?)))
            .collect(),
    }
}

fn per_job(
    jobs: &[MaintenanceStatus],
    name: &'static str,
    help: &'static str,
    value: impl Fn(&MaintenanceStatus) -> Option<f64>,
) -> Family {
    Family {
        name,
        kind: "gauge",
        help,
        samples: jobs
            .iter()
            .filter_map(|m| {
                let labels = format!(
                    "operation=\"{}\",repository=\"{}\"",
                    m.operation.name(),
                    label(&m.repository)
                );
                Some((labels, value(m)?))
            })
            .collect(),
    }
}

fn seconds(t: jiff::Timestamp) -> f64 {
    t.as_millisecond() as f64 / 1000.0
}

/// The exposition.
pub fn render(agent: &Agent) -> String {
    let apps = agent.status();
    let jobs = agent.maintenance();
    let last = |a: &AppStatus| a.last_run.clone();
    let mut runs = Family {
        name: "cairn_agent_runs_total",
        kind: "counter",
        help: "Runs that ended, by app and outcome.",
        samples: Vec::new(),
    };
    for a in &apps {
        for (outcome, n) in &a.runs {
            runs.samples.push((
                format!("app=\"{}\",outcome=\"{outcome}\"", label(&a.app)),
                *n as f64,
            ));
        }
    }
    let families = [
        per_app(
            &apps,
            "cairn_agent_last_success_timestamp_seconds",
            "gauge",
            "When the app's last successful run ended (Unix time).",
            |a| a.last_success.map(seconds),
        ),
        per_app(
            &apps,
            "cairn_agent_last_run_success",
            "gauge",
            "Whether the app's last run succeeded (1) or not (0).",
            |a| last(a).map(|r| f64::from(u8::from(r.state.success()))),
        ),
        per_app(
            &apps,
            "cairn_agent_last_run_duration_seconds",
            "gauge",
            "How long the app's last run took.",
            |a| last(a).map(|r| r.duration_seconds()),
        ),
        per_app(
            &apps,
            "cairn_agent_last_run_files_new",
            "gauge",
            "Files new in the snapshots of the app's last run.",
            |a| last(a).map(|r| r.files_new as f64),
        ),
        per_app(
            &apps,
            "cairn_agent_last_run_added_bytes",
            "gauge",
            "Bytes the app's last run added to its repository (before compression).",
            |a| last(a).map(|r| r.bytes_added as f64),
        ),
        per_app(
            &apps,
            "cairn_agent_last_run_lock_wait_seconds",
            "gauge",
            "How long the app's last run waited for its repository's lock.",
            |a| last(a).map(|r| r.lock_wait_seconds),
        ),
        per_app(
            &apps,
            "cairn_agent_missed_runs_total",
            "counter",
            "Scheduled runs that did not happen (busy, or the agent was down).",
            |a| Some(a.missed as f64),
        ),
        per_app(
            &apps,
            "cairn_agent_next_run_timestamp_seconds",
            "gauge",
            "When the app runs next by its schedule (Unix time).",
            |a| a.next_run.map(seconds),
        ),
        runs,
        per_job(
            &jobs,
            "cairn_agent_maintenance_last_success_timestamp_seconds",
            "When the repository's last successful prune or check ended (Unix time).",
            |m| m.last_success.map(seconds),
        ),
        per_job(
            &jobs,
            "cairn_agent_maintenance_last_run_success",
            "Whether the repository's last prune or check succeeded (1) or not (0).",
            |m| {
                m.last_run
                    .as_ref()
                    .map(|r| f64::from(u8::from(r.state.success())))
            },
        ),
        Family {
            name: "cairn_agent_queue_length",
            kind: "gauge",
            help: "Jobs waiting for a slot.",
            samples: vec![(String::new(), agent.queue_length() as f64)],
        },
        Family {
            name: "cairn_agent_running_jobs",
            kind: "gauge",
            help: "Jobs running.",
            samples: vec![(String::new(), agent.running() as f64)],
        },
    ];
    let mut out = String::new();
    write(&mut out, &families);
    out
}

/// NS8's status of an app: -1 running or unknown, 0 failed, 1 ok, 2 skipped because busy.
pub fn status_value(a: &AppStatus) -> i8 {
    if a.state == "running" {
        return -1;
    }
    if a.skipped_busy {
        return 2;
    }
    match &a.last_run {
        Some(r) if r.state.success() => 1,
        Some(r) if r.state.ended() => 0,
        _ => -1,
    }
}

/// Writes the textfile at `path` (a temporary file beside it, then renamed).
///
/// # Errors
/// When it cannot be written.
pub fn write_textfile(agent: &Agent, path: &Path) -> Result<()> {
    let apps = agent.status();
    let mut out = String::new();
    write(
        &mut out,
        &[per_app(
            &apps,
            "cairn_agent_app_status",
            "gauge",
            "The app's backup status: -1 running or unknown, 0 failed, 1 ok, 2 skipped because busy.",
            |a| Some(f64::from(status_value(a))),
        )],
    );
    let name = path
        .file_name()
        .ok_or_else(|| Error::invalid(format!("textfile {} has no file name", path.display())))?;
    let tmp = path.with_file_name(format!(".{}.tmp", name.to_string_lossy()));
    std::fs::write(&tmp, out)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| Error::io(format!("cannot write the textfile {}", path.display()), e))
}
