//! An HTTP dump hook: in pre-backup, GETs `url` and streams the response body into the
//! app's backup as `file`, chunk by chunk (never the whole body in memory). Any status but
//! 200, a connection that fails, or a body shorter than its `content-length` leaves the file
//! unfinished, which fails its snapshot: a truncated dump is never saved as good.

use cairn_sdk::hook::{Context, Hook, Phase, Report, sink};
use cairn_sdk::http::{Url, open};
use cairn_sdk::{Config, Error, Result, log};

struct HttpDump;

impl Hook for HttpDump {
    fn run(context: Context) -> Result<Report> {
        if !matches!(context.phase, Phase::PreBackup) {
            return Ok(Report {
                message: None,
                details: vec![],
            });
        }
        let config = Config::from(context.config.clone());
        let url = Url::parse(config.require("url")?)?;
        let file = config.get("file").unwrap_or("dump");
        let bearer = config.get("token").map(|t| format!("Bearer {t}"));
        let mut headers: Vec<(&str, &[u8])> = Vec::new();
        if let Some(b) = &bearer {
            headers.push(("authorization", b.as_bytes()));
        }
        let mut response = open("GET", &url, &headers, &[])?;
        if response.status != 200 {
            return Err(Error::Other(format!(
                "GET {url} answered {}, not 200: nothing was saved",
                response.status
            )));
        }
        let out = sink(file)?;
        let mut bytes = 0u64;
        while let Some(chunk) = response.body.next_chunk()? {
            bytes += chunk.len() as u64;
            out.write(&chunk)?;
        }
        out.finish()?;
        log::info(&format!("saved {bytes} bytes from {url} as {file}"));
        Ok(Report {
            message: Some(format!("{file}: {bytes} bytes from {url}")),
            details: vec![
                ("file".into(), file.to_owned()),
                ("bytes".into(), bytes.to_string()),
            ],
        })
    }
}

cairn_sdk::export_hook!(HttpDump);
