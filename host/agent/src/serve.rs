//! `cairn agent serve`: the scheduler on a thread of its own, the HTTP API on a small tokio
//! runtime, the textfile rewritten every few seconds, SIGHUP reloading the configuration,
//! SIGTERM (or SIGINT) stopping: no new jobs, running ones get the grace period, then are
//! cancelled cleanly; the API answers until they have ended.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cairn_repo::{Error, ErrorKind, Result};
use tokio::signal::unix::{SignalKind, signal};

use crate::agent::Agent;
use crate::api::{Api, router};
use crate::settings::NodeConfig;

/// How often the textfile is rewritten.
const TEXTFILE_EVERY: Duration = Duration::from_secs(2);

/// Runs the agent of the configuration file `path` until SIGTERM; `ready` is told the
/// address it listens on.
///
/// # Errors
/// When the configuration is wrong, the state cannot be opened or the address not bound.
pub fn serve(path: &Path, ready: impl FnOnce(&str)) -> Result<()> {
    crate::memory::fix_mmap_threshold();
    let config = NodeConfig::load(path)?;
    let grace = config.grace()?;
    let listen = config.agent.listen.clone();
    let textfile = config.agent.textfile.clone();
    let token = match &config.agent.token_file {
        Some(f) => Some(Arc::new(read_token(f)?)),
        None => None,
    };
    let agent = Agent::new(config)?;
    let scheduler = {
        let agent = agent.clone();
        std::thread::Builder::new()
            .name("cairn-scheduler".into())
            .spawn(move || agent.run_scheduler())
            .map_err(|e| Error::io("cannot start the scheduler", e))?
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::io("cannot start the agent's runtime", e))?;
    let api = Api {
        agent: agent.clone(),
        token,
    };
    let config_path = path.to_path_buf();
    runtime.block_on(async move {
        let app = router(api);
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let signals = tokio::spawn(signals(agent.clone(), config_path, grace, stop_tx));
        if let Some(file) = textfile {
            tokio::spawn(textfile_loop(agent.clone(), file));
        }
        let shutdown = async {
            let _ = stop_rx.await;
        };
        let served = if let Some(socket) = listen.strip_prefix("unix:") {
            let listener = bind_unix(Path::new(socket))?;
            ready(&listen);
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
        } else {
            let listener = tokio::net::TcpListener::bind(&listen)
                .await
                .map_err(|e| Error::io(format!("cannot listen on {listen}"), e))?;
            let addr = listener
                .local_addr()
                .map_err(|e| Error::io("cannot read the listen address", e))?;
            ready(&addr.to_string());
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
        };
        signals.abort();
        served.map_err(|e| Error::io("the agent's API failed", e))
    })?;
    let _ = scheduler.join();
    Ok(())
}

async fn signals(
    agent: Arc<Agent>,
    path: PathBuf,
    grace: Duration,
    stop: tokio::sync::oneshot::Sender<()>,
) -> Result<()> {
    let watch = |kind| signal(kind).map_err(|e| Error::io("cannot watch signals", e));
    let (mut hup, mut term, mut int) = (
        watch(SignalKind::hangup())?,
        watch(SignalKind::terminate())?,
        watch(SignalKind::interrupt())?,
    );
    loop {
        tokio::select! {
            _ = hup.recv() => {
                let (agent, path) = (agent.clone(), path.clone());
                match tokio::task::spawn_blocking(move || agent.reload(&path)).await {
                    Ok(Ok(())) => tracing::info!("configuration reloaded"),
                    Ok(Err(e)) => tracing::error!("configuration not reloaded, the old one stays: {e}"),
                    Err(e) => tracing::error!("configuration not reloaded: {e}"),
                }
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    tracing::info!(
        "stopping: no new jobs; running ones get {}s",
        grace.as_secs()
    );
    let a = agent.clone();
    let _ = tokio::task::spawn_blocking(move || a.stop(grace)).await;
    let _ = stop.send(());
    Ok(())
}

async fn textfile_loop(agent: Arc<Agent>, file: PathBuf) {
    let mut tick = tokio::time::interval(TEXTFILE_EVERY);
    loop {
        tick.tick().await;
        if let Err(e) = crate::metrics::write_textfile(&agent, &file) {
            tracing::warn!("{e}");
        }
    }
}

/// Binds a unix socket at `path` (a socket left by an earlier agent is replaced; any other
/// file there is an error), readable and writable by its owner and group only.
fn bind_unix(path: &Path) -> Result<tokio::net::UnixListener> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            std::fs::remove_file(path)
                .map_err(|e| Error::io(format!("cannot replace {}", path.display()), e))?;
        }
        Ok(_) => {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "{} exists and is not a socket: remove it or listen elsewhere",
                    path.display()
                ),
            ));
        }
        Err(_) => {}
    }
    let listener = tokio::net::UnixListener::bind(path)
        .map_err(|e| Error::io(format!("cannot listen on unix:{}", path.display()), e))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .map_err(|e| Error::io(format!("cannot restrict {}", path.display()), e))?;
    Ok(listener)
}

/// The token in `path` (its first line); an empty one is refused.
///
/// # Errors
/// When it cannot be read or is empty.
pub fn read_token(path: &Path) -> Result<String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::io(format!("cannot read the token file {}", path.display()), e))?;
    let token = text.lines().next().unwrap_or("").trim().to_owned();
    if token.is_empty() {
        return Err(Error::invalid(format!(
            "the token file {} is empty",
            path.display()
        )));
    }
    Ok(token)
}
