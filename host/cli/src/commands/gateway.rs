//! `cairn gateway serve | token add|list|remove | grant restore`.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use cairn_gateway::{Credentials, Gateway, Limits, RepoPath, Role, ServeOptions};
use serde::Deserialize;
use serde_json::json;

use crate::Outcome;
use crate::args::{GatewayCommand, GatewayGrantCommand, GatewayServeArgs, GatewayTokenCommand};
use crate::output;
use crate::settings::{Ctx, parse_duration, parse_size};

pub fn run(ctx: &Ctx, command: GatewayCommand) -> Result<Outcome> {
    match command {
        GatewayCommand::Serve(a) => serve(ctx, a),
        GatewayCommand::Token(t) => token(t),
        GatewayCommand::Grant(GatewayGrantCommand::Restore {
            name,
            repo,
            ttl,
            state,
        }) => {
            let ttl = parse_duration(&ttl)?;
            let expires = jiff::Timestamp::now()
                .checked_add(jiff::SignedDuration::try_from(ttl)?)
                .context("the --ttl is too long")?;
            let repo = RepoPath::parse(&repo).map_err(|e| anyhow!(e))?;
            add(
                &state.state,
                &name,
                Role::Restore,
                vec![repo],
                Some(expires),
            )
        }
    }
}

/// The `[gateway]` table of the configuration file: the flags' keys.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct ServeFile {
    listen: Option<String>,
    storage: Option<String>,
    state: Option<PathBuf>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    max_object_size: Option<String>,
    idle_timeout: Option<String>,
    max_requests_per_credential: Option<usize>,
}

fn serve(ctx: &Ctx, a: GatewayServeArgs) -> Result<Outcome> {
    let file: ServeFile = match ctx.config()?.gateway.clone() {
        Some(table) => table
            .try_into()
            .map_err(|e| anyhow!("invalid [gateway] table in the configuration file: {e}"))?,
        None => ServeFile::default(),
    };
    let listen = a
        .listen
        .or(file.listen)
        .unwrap_or_else(|| "127.0.0.1:8000".into());
    let listen: SocketAddr = listen
        .parse()
        .map_err(|_| anyhow!("--listen `{listen}` is not an address like 127.0.0.1:8000"))?;
    let storage = a
        .storage
        .or(file.storage)
        .ok_or_else(|| anyhow!("no storage given: use --storage LOCATION"))?;
    let state = a
        .state
        .or(file.state)
        .ok_or_else(|| anyhow!("no state directory given: use --state DIR"))?;
    let tls = match (a.tls_cert.or(file.tls_cert), a.tls_key.or(file.tls_key)) {
        (Some(c), Some(k)) => Some((c, k)),
        (None, None) => None,
        _ => bail!("TLS needs both --tls-cert and --tls-key"),
    };
    let mut limits = Limits::default();
    if let Some(s) = a.max_object_size.or(file.max_object_size) {
        limits.max_object = parse_size(&s)?;
    }
    if let Some(s) = a.idle_timeout.or(file.idle_timeout) {
        limits.idle = parse_duration(&s)?;
    }
    if let Some(n) = a
        .max_requests_per_credential
        .or(file.max_requests_per_credential)
    {
        limits.per_credential = n.max(1);
    }
    let gw = Gateway::new(storage_of(ctx, &storage)?, state, limits)?;
    cairn_gateway::run(gw, ServeOptions { listen, tls }, |addr| {
        let _ = writeln!(std::io::stderr().lock(), "gateway listening on {addr}");
    })?;
    Ok(Outcome::Ok)
}

/// Each repository's store below `storage`: `storage/<repo>` for a directory or an object
/// store (no client cache); for `plugin:NAME`, the instance with `/<repo>` appended to the
/// setting its manifest marks as its location.
fn storage_of(ctx: &Ctx, storage: &str) -> Result<Box<dyn cairn_gateway::Storage>> {
    if let Some(name) = storage.strip_prefix("plugin:") {
        let session = ctx.session.fork(ctx.cancel().clone(), |_| {});
        let name = name.to_owned();
        // Refused now rather than at the first request: not installed, no location setting,
        // a setting or grant that does not hold.
        let ready = session.instance(&name, true)?;
        cairn_apps::location_key(&ready.plugin.manifest)?;
        return Ok(Box::new(
            move |repo: &RepoPath| -> cairn_repo::Result<Arc<dyn cairn_repo::Backend>> {
                let backend = session.plugin_backend_below(&name, Some(&repo.to_string()))?;
                Ok(Arc::new(backend))
            },
        ));
    }
    let mut opts = cairn_backend::OpenOptions::default();
    opts.remote = ctx.remote_options()?;
    let base = storage.trim_end_matches('/').to_owned();
    Ok(Box::new(
        move |repo: &RepoPath| -> cairn_repo::Result<Arc<dyn cairn_repo::Backend>> {
            cairn_backend::open_location_with(&format!("{base}/{repo}"), &opts)
        },
    ))
}

fn add(
    state: &Path,
    name: &str,
    role: Role,
    repos: Vec<RepoPath>,
    expires: Option<jiff::Timestamp>,
) -> Result<Outcome> {
    let mut creds = Credentials::load(state)?;
    let token = creds.add(name, role, repos, expires)?;
    creds.save(state)?;
    output::line(token)?;
    Ok(Outcome::Ok)
}

fn token(command: GatewayTokenCommand) -> Result<Outcome> {
    match command {
        GatewayTokenCommand::Add {
            name,
            role,
            repos,
            state,
        } => {
            let role: Role = role.parse()?;
            let repos = repos
                .iter()
                .map(|r| RepoPath::parse(r).map_err(|e| anyhow!(e)))
                .collect::<Result<Vec<_>>>()?;
            if role == Role::Node && !repos.is_empty() {
                bail!("a node credential covers every repository: leave out --repo");
            }
            add(&state.state, &name, role, repos, None)
        }
        GatewayTokenCommand::List { json, state } => {
            let creds = Credentials::load(&state.state)?;
            if json {
                let all: Vec<_> = creds
                    .all()
                    .iter()
                    .map(|c| {
                        json!({
                            "name": c.name,
                            "role": c.role,
                            "repos": c.repos,
                            "created": c.created,
                            "expires": c.expires,
                        })
                    })
                    .collect();
                output::json(&all)?;
            } else {
                let rows: Vec<Vec<String>> = creds
                    .all()
                    .iter()
                    .map(|c| {
                        vec![
                            c.name.clone(),
                            c.role.as_str().to_owned(),
                            if c.repos.is_empty() {
                                "*".to_owned()
                            } else {
                                c.repos
                                    .iter()
                                    .map(ToString::to_string)
                                    .collect::<Vec<_>>()
                                    .join(",")
                            },
                            c.expires.map(|e| e.to_string()).unwrap_or_default(),
                        ]
                    })
                    .collect();
                output::table(&["name", "role", "repositories", "expires"], &rows)?;
            }
            Ok(Outcome::Ok)
        }
        GatewayTokenCommand::Remove { name, state } => {
            let mut creds = Credentials::load(&state.state)?;
            creds.remove(&name)?;
            creds.save(&state.state)?;
            Ok(Outcome::Ok)
        }
    }
}
