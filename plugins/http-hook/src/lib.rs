//! An HTTP hook: in each phase that has a path configured, sends one request to the app
//! (`POST <url><path>` by default) with the context as JSON, and fails the phase unless the
//! status is one it expects. The host lets it reach only the authority of `url`.
//!
//! The body: `{"app": …, "phase": "pre-backup", "targets": […], "outcome": null |
//! {"success": bool, "message": …}}`.

use cairn_sdk::hook::{Context, Hook, Phase, Report};
use cairn_sdk::http::{Url, send};
use cairn_sdk::{Config, Error, Result, log};

struct HttpHook;

fn phase_name(phase: Phase) -> &'static str {
    match phase {
        Phase::PreBackup => "pre-backup",
        Phase::PostBackup => "post-backup",
        Phase::PreRestore => "pre-restore",
        Phase::PostRestore => "post-restore",
    }
}

/// Whether `status` is in `expect` (`200-299`, `204`, `200,202`).
fn expected(expect: &str, status: u16) -> Result<bool> {
    for part in expect.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let bad = || Error::InvalidConfig(format!("`expect` has a bad status or range `{part}`"));
        let (low, high) = match part.split_once('-') {
            Some((a, b)) => (
                a.trim().parse().map_err(|_| bad())?,
                b.trim().parse().map_err(|_| bad())?,
            ),
            None => {
                let n: u16 = part.parse().map_err(|_| bad())?;
                (n, n)
            }
        };
        if (low..=high).contains(&status) {
            return Ok(true);
        }
    }
    Ok(false)
}

impl Hook for HttpHook {
    fn run(context: Context) -> Result<Report> {
        let config = Config::from(context.config.clone());
        let phase = phase_name(context.phase);
        let Some(path) = config.get(phase) else {
            return Ok(Report {
                message: Some(format!("nothing to do in {phase}")),
                details: vec![],
            });
        };
        let base = Url::parse(config.require("url")?)?;
        let url = base.join(path);
        let method = config.get("method").unwrap_or("POST");
        let expect = config.get("expect").unwrap_or("200-299");
        let body = serde_json::json!({
            "app": context.app,
            "phase": phase,
            "targets": context.targets,
            "outcome": context.outcome.as_ref().map(|o| serde_json::json!({
                "success": o.success,
                "message": o.message,
            })),
        })
        .to_string();
        let bearer = config.get("token").map(|t| format!("Bearer {t}"));
        let mut headers: Vec<(&str, &[u8])> = vec![("content-type", b"application/json")];
        if let Some(b) = &bearer {
            headers.push(("authorization", b.as_bytes()));
        }
        log::debug(&format!("{phase}: {method} {url}"));
        let response = send(method, &url, &headers, body.as_bytes())?;
        let status = response.status;
        if !expected(expect, status)? {
            let said: String = String::from_utf8_lossy(&response.body)
                .chars()
                .take(200)
                .collect();
            return Err(Error::Other(format!(
                "{method} {url} answered {status}, not {expect}: {}",
                said.trim()
            )));
        }
        Ok(Report {
            message: Some(format!("{method} {url}: {status}")),
            details: vec![
                ("url".into(), url.to_string()),
                ("status".into(), status.to_string()),
            ],
        })
    }
}

cairn_sdk::export_hook!(HttpHook);
