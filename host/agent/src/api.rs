//! The agent's HTTP API (JSON) on its listen address, a TCP address or a unix socket:
//!
//! | | |
//! |---|---|
//! | `GET /healthz` | `ok` (no token needed) |
//! | `GET /apps`, `GET /apps/NAME` | each app's status |
//! | `POST /apps/NAME/run` | queue a run: 202 with the run; 409 with the run already queued or running |
//! | `GET /runs?app=NAME&limit=N`, `GET /runs/ID` | runs, newest first |
//! | `GET /runs/ID/log` | the last lines of a run's log |
//! | `GET /maintenance` | each repository's prune and check: schedule, last run, next run |
//! | `GET /metrics` | Prometheus text format |
//!
//! With a token file, every request but `/healthz` needs `Authorization: Bearer TOKEN`.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use cairn_repo::ErrorKind;
use serde::Deserialize;
use serde_json::json;

use crate::agent::Agent;

/// What the handlers share.
#[derive(Clone)]
pub struct Api {
    /// The agent.
    pub agent: Arc<Agent>,
    /// The token requests must bear, if any.
    pub token: Option<Arc<String>>,
}

/// The routes.
pub fn router(api: Api) -> Router {
    Router::new()
        .route("/apps", get(apps))
        .route("/apps/{name}", get(app))
        .route("/apps/{name}/run", post(run_app))
        .route("/runs", get(runs))
        .route("/runs/{id}", get(run))
        .route("/runs/{id}/log", get(log))
        .route("/maintenance", get(maintenance))
        .route("/metrics", get(metrics))
        .route_layer(axum::middleware::from_fn_with_state(api.clone(), auth))
        .route("/healthz", get(|| async { "ok\n" }))
        .with_state(api)
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, axum::Json(json!({ "error": message.into() }))).into_response()
}

async fn auth(State(api): State<Api>, req: Request, next: Next) -> Response {
    if let Some(want) = &api.token {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        let same: bool = subtle::ConstantTimeEq::ct_eq(given.as_bytes(), want.as_bytes()).into();
        if !same {
            let mut r = error(StatusCode::UNAUTHORIZED, "a valid bearer token is needed");
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"cairn agent\""),
            );
            return r;
        }
    }
    next.run(req).await
}

async fn apps(State(api): State<Api>) -> Response {
    axum::Json(api.agent.status()).into_response()
}

async fn maintenance(State(api): State<Api>) -> Response {
    axum::Json(api.agent.maintenance()).into_response()
}

async fn app(State(api): State<Api>, Path(name): Path<String>) -> Response {
    match api.agent.app_status(&name) {
        Some(s) => axum::Json(s).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            format!("no app `{name}` is configured"),
        ),
    }
}

async fn run_app(State(api): State<Api>, Path(name): Path<String>) -> Response {
    match api.agent.trigger(&name) {
        Ok(run) => (StatusCode::ACCEPTED, axum::Json(run)).into_response(),
        Err((e, existing)) => {
            let status = match e.kind() {
                ErrorKind::NotFound => StatusCode::NOT_FOUND,
                ErrorKind::Locked => StatusCode::CONFLICT,
                ErrorKind::Interrupted => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            (
                status,
                axum::Json(json!({ "error": e.to_string(), "run": existing })),
            )
                .into_response()
        }
    }
}

#[derive(Deserialize)]
struct RunsQuery {
    app: Option<String>,
    limit: Option<usize>,
}

async fn runs(State(api): State<Api>, Query(q): Query<RunsQuery>) -> Response {
    let limit = q.limit.unwrap_or(100).min(10_000);
    match api.agent.runs(q.app.as_deref(), limit) {
        Ok(r) => axum::Json(r).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn run(State(api): State<Api>, Path(id): Path<u64>) -> Response {
    match api.agent.run(id) {
        Ok(Some(r)) => axum::Json(r).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no run {id}")),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn log(State(api): State<Api>, Path(id): Path<u64>) -> Response {
    match (api.agent.run(id), api.agent.log(id)) {
        (Ok(Some(_)), Ok(lines)) => {
            axum::Json(json!({ "run": id, "lines": lines })).into_response()
        }
        (Ok(None), _) => error(StatusCode::NOT_FOUND, format!("no run {id}")),
        (Err(e), _) | (_, Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn metrics(State(api): State<Api>) -> Response {
    let mut r = crate::metrics::render(&api.agent).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    r
}
