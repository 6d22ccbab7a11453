//! `cairn agent serve | run | status | history | logs`

use std::io::Write;
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use cairn_agent::{AppStatus, Client, MaintenanceStatus, NodeConfig, Run, RunState};
use cairn_repo::{Error, ErrorKind};

use crate::Outcome;
use crate::args::{AgentCommand, AgentTarget};
use crate::output;
use crate::settings::Ctx;

pub fn run(ctx: &Ctx, cmd: AgentCommand) -> Result<Outcome> {
    match cmd {
        AgentCommand::Serve => {
            let path = config_path(ctx)?;
            cairn_agent::serve::serve(path, |addr| {
                let _ = writeln!(std::io::stderr().lock(), "agent listening on {addr}");
            })?;
            Ok(Outcome::Ok)
        }
        AgentCommand::Run(a) => {
            let client = client(ctx, &a.target)?;
            let (status, body) = client.post(&format!("/apps/{}/run", a.app))?;
            let answer: serde_json::Value = parse(&body)?;
            let run: Run = match status {
                202 => serde_json::from_value(answer)?,
                409 if a.wait => {
                    tracing::warn!("{}; waiting for it", error_of(&answer));
                    serde_json::from_value(answer["run"].clone())?
                }
                _ => bail!("{}", error_of(&answer)),
            };
            if !a.wait {
                if ctx.global.json {
                    output::json(&run)?;
                } else {
                    output::line(format!("run {} of app `{}` queued", run.id, run.app))?;
                }
                return Ok(Outcome::Ok);
            }
            let run = wait(ctx, &client, run.id)?;
            if ctx.global.json {
                output::json(&run)?;
            } else if !ctx.global.quiet {
                output::line(format!(
                    "run {} of app `{}` {}{}",
                    run.id,
                    run.app,
                    run.state.name(),
                    run.error
                        .as_deref()
                        .map(|e| format!(": {e}"))
                        .unwrap_or_default()
                ))?;
            }
            match run.state {
                RunState::Succeeded => Ok(Outcome::Ok),
                RunState::Incomplete => Ok(Outcome::Incomplete),
                state => {
                    let kind = match state {
                        RunState::Interrupted => ErrorKind::Interrupted,
                        _ if run.locked => ErrorKind::Locked,
                        _ => ErrorKind::InvalidInput,
                    };
                    Err(Error::new(
                        kind,
                        format!("run {} of app `{}` {}", run.id, run.app, state.name()),
                    )
                    .into())
                }
            }
        }
        AgentCommand::Status(target) => {
            let client = client(ctx, &target)?;
            let (status, body) = client.get("/apps")?;
            let apps: Vec<AppStatus> = answer(status, &body)?;
            if ctx.global.json {
                output::json(&apps)?;
                return Ok(Outcome::Ok);
            }
            let when = |t: Option<jiff::Timestamp>| t.map_or_else(|| "-".into(), output::time);
            let rows: Vec<Vec<String>> = apps
                .iter()
                .map(|a| {
                    vec![
                        a.app.clone(),
                        a.state.clone(),
                        a.last_run
                            .as_ref()
                            .map_or_else(|| "-".into(), |r| format!("{} {}", r.id, r.state.name())),
                        when(a.last_success),
                        when(a.next_run),
                        a.missed.to_string(),
                        a.held.clone().unwrap_or_default(),
                    ]
                })
                .collect();
            output::table(
                &[
                    "APP",
                    "STATE",
                    "LAST RUN",
                    "LAST SUCCESS",
                    "NEXT RUN",
                    "MISSED",
                    "NOTE",
                ],
                &rows,
            )?;
            let (status, body) = client.get("/maintenance")?;
            // An agent older than `/maintenance` has none.
            let jobs: Vec<MaintenanceStatus> = if status == 404 {
                Vec::new()
            } else {
                answer(status, &body)?
            };
            if !jobs.is_empty() {
                let last = |r: &Option<Run>| {
                    r.as_ref()
                        .map_or_else(|| "-".into(), |r| format!("{} {}", r.id, r.state.name()))
                };
                let rows: Vec<Vec<String>> = jobs
                    .iter()
                    .map(|m| {
                        vec![
                            m.operation.name().into(),
                            m.repository.clone(),
                            last(&m.last_run),
                            when(m.last_success),
                            when(m.next_run),
                        ]
                    })
                    .collect();
                output::line("")?;
                output::table(
                    &[
                        "MAINTENANCE",
                        "REPOSITORY",
                        "LAST RUN",
                        "LAST SUCCESS",
                        "NEXT RUN",
                    ],
                    &rows,
                )?;
            }
            Ok(Outcome::Ok)
        }
        AgentCommand::History(a) => {
            let mut path = format!("/runs?limit={}", a.limit);
            if let Some(app) = &a.app {
                path.push_str(&format!("&app={app}"));
            }
            let (status, body) = client(ctx, &a.target)?.get(&path)?;
            let runs: Vec<Run> = answer(status, &body)?;
            if ctx.global.json {
                output::json(&runs)?;
                return Ok(Outcome::Ok);
            }
            let rows: Vec<Vec<String>> = runs
                .iter()
                .map(|r| {
                    vec![
                        r.id.to_string(),
                        r.app.clone(),
                        r.operation.name().into(),
                        format!("{:?}", r.trigger).to_lowercase(),
                        r.started.map_or_else(|| "-".into(), output::time),
                        format!("{:.1}s", r.duration_seconds()),
                        r.state.name().into(),
                        output::bytes(r.bytes_added),
                        r.error.clone().unwrap_or_default(),
                    ]
                })
                .collect();
            output::table(
                &[
                    "RUN", "APP", "WHAT", "TRIGGER", "STARTED", "TOOK", "OUTCOME", "ADDED", "ERROR",
                ],
                &rows,
            )?;
            Ok(Outcome::Ok)
        }
        AgentCommand::Logs(a) => {
            let (status, body) = client(ctx, &a.target)?.get(&format!("/runs/{}/log", a.run))?;
            let log: serde_json::Value = answer(status, &body)?;
            if ctx.global.json {
                output::json(&log)?;
                return Ok(Outcome::Ok);
            }
            for l in log["lines"].as_array().into_iter().flatten() {
                output::line(l.as_str().unwrap_or_default())?;
            }
            Ok(Outcome::Ok)
        }
    }
}

fn config_path(ctx: &Ctx) -> Result<&std::path::Path> {
    ctx.global
        .config
        .as_deref()
        .ok_or_else(|| anyhow!("give the agent's configuration file: --config FILE"))
}

/// The client of the agent `target` names, or of the one `--config` describes.
fn client(ctx: &Ctx, target: &AgentTarget) -> Result<Client> {
    let read = |f: &std::path::Path| -> Result<String> { Ok(cairn_agent::serve::read_token(f)?) };
    if let Some(addr) = &target.agent {
        let token = target.token_file.as_deref().map(read).transpose()?;
        return Ok(Client::new(addr, token));
    }
    let config =
        NodeConfig::load(config_path(ctx).map_err(|_| {
            anyhow!("which agent? give --agent ADDR or the agent's --config FILE")
        })?)?;
    let token_file = target
        .token_file
        .clone()
        .or(config.agent.token_file.clone());
    let token = token_file.as_deref().map(read).transpose()?;
    Ok(Client::new(&config.agent.listen, token))
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T> {
    serde_json::from_slice(body).map_err(|e| anyhow!("the agent's answer is not JSON: {e}"))
}

fn error_of(answer: &serde_json::Value) -> String {
    answer["error"]
        .as_str()
        .unwrap_or("the agent refused")
        .to_owned()
}

/// The body of a 200 answer; else the agent's error.
fn answer<T: serde::de::DeserializeOwned>(status: u16, body: &[u8]) -> Result<T> {
    if status != 200 {
        let v: serde_json::Value = parse(body).unwrap_or_default();
        bail!("the agent answered {status}: {}", error_of(&v));
    }
    parse(body)
}

/// Polls run `id` until it has ended.
fn wait(ctx: &Ctx, client: &Client, id: u64) -> Result<Run> {
    loop {
        let (status, body) = client.get(&format!("/runs/{id}"))?;
        let run: Run = answer(status, &body)?;
        if run.state.ended() {
            return Ok(run);
        }
        if ctx.cancel().load(std::sync::atomic::Ordering::Relaxed) {
            bail!("stopped waiting; run {id} goes on in the agent");
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}
