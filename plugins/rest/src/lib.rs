//! A repository on a server that speaks the REST protocol of restic's rest-server (v2):
//! objects by type and name, `HEAD`, ranged `GET`, `POST` to create, `DELETE`, and listings in
//! the `application/vnd.x.restic.rest.v2` media type. Servers: rest-server, `rclone serve
//! restic`. Basic auth from the `user` and `password` settings.
//!
//! The protocol has no create-only write, so each write first asks whether the name exists
//! (the host is told that create-only is not atomic). An append-only server refuses deletes;
//! that surfaces as `denied`.

use base64::Engine as _;
use cairn_sdk::http::{self, Response, Url};
use cairn_sdk::storage::{Entry, Guarantees, Kind, Storage, dir};
use cairn_sdk::{Config, Error, Result, log};

const V2: &[u8] = b"application/vnd.x.restic.rest.v2";

struct Rest {
    base: Url,
    auth: Option<Vec<u8>>,
}

#[derive(serde::Deserialize)]
struct Listed {
    name: String,
    size: u64,
}

impl Rest {
    fn url(&self, kind: Kind, name: Option<&str>) -> Url {
        match (kind, name) {
            (Kind::Config, _) => self.base.join("config"),
            (_, Some(name)) => self.base.join(&format!("{}/{name}", dir(kind))),
            (_, None) => self.base.join(&format!("{}/", dir(kind))),
        }
    }

    fn send(
        &self,
        method: &str,
        url: &Url,
        extra: &[(&str, &[u8])],
        body: &[u8],
    ) -> Result<Response> {
        let mut headers: Vec<(&str, &[u8])> = extra.to_vec();
        if let Some(auth) = &self.auth {
            headers.push(("authorization", auth));
        }
        http::send(method, url, &headers, body)
    }

    /// Turns an error status into the matching error; 2xx passes.
    fn check(&self, what: &str, url: &Url, response: Response) -> Result<Response> {
        let status = response.status;
        if (200..300).contains(&status) {
            return Ok(response);
        }
        let detail = String::from_utf8_lossy(&response.body);
        let detail = detail.trim();
        let msg = format!("{what} {url}: HTTP {status} {detail}");
        Err(match status {
            401 => Error::Denied(format!("{msg} (check the user and password settings)")),
            403 => Error::Denied(msg),
            404 => Error::NotFound(msg),
            408 | 429 | 500..=599 => Error::Unavailable(msg),
            _ => Error::Other(msg),
        })
    }

    fn exists(&self, url: &Url) -> Result<Option<u64>> {
        let response = self.send("HEAD", url, &[], &[])?;
        if response.status == 404 {
            return Ok(None);
        }
        let response = self.check("cannot look up", url, response)?;
        Ok(Some(
            response
                .header("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
        ))
    }
}

impl Storage for Rest {
    fn open(config: Config) -> Result<Self> {
        let url = config.require("url")?;
        let mut base = Url::parse(url)?;
        if !base.path().ends_with('/') {
            base = base.join("");
        }
        let auth = match (config.get("user"), config.get("password")) {
            (None, None) => None,
            (user, password) => {
                let pair = format!("{}:{}", user.unwrap_or(""), password.unwrap_or(""));
                let token = base64::engine::general_purpose::STANDARD.encode(pair);
                Some(format!("Basic {token}").into_bytes())
            }
        };
        log::debug(&format!(
            "REST store at {base}{}",
            if auth.is_some() {
                " with basic auth"
            } else {
                ""
            }
        ));
        Ok(Rest { base, auth })
    }

    fn guarantees(&self) -> Guarantees {
        Guarantees {
            atomic_create: false,
        }
    }

    fn create(&self) -> Result<()> {
        let config = self.url(Kind::Config, None);
        if self.exists(&config)?.is_some() {
            return Err(Error::AlreadyExists(format!(
                "{} already holds a repository",
                self.base
            )));
        }
        let url = self.base.join("?create=true");
        let response = self.send("POST", &url, &[], &[])?;
        self.check("cannot create the repository at", &self.base, response)
            .map(drop)
    }

    fn list(&self, kind: Kind) -> Result<Vec<Entry>> {
        if kind == Kind::Config {
            let url = self.url(kind, None);
            return Ok(self
                .exists(&url)?
                .map(|size| Entry {
                    name: "config".into(),
                    size,
                })
                .into_iter()
                .collect());
        }
        let url = self.url(kind, None);
        let response = self.send("GET", &url, &[("accept", V2)], &[])?;
        if response.status == 404 {
            return Ok(Vec::new());
        }
        let response = self.check("cannot list", &url, response)?;
        let listed: Vec<Listed> = serde_json::from_slice(&response.body).map_err(|e| {
            Error::Other(format!(
                "{url} answered a listing that is not the v2 JSON format: {e}"
            ))
        })?;
        Ok(listed
            .into_iter()
            .map(|l| Entry {
                name: l.name,
                size: l.size,
            })
            .collect())
    }

    fn read(&self, kind: Kind, name: &str, offset: u64, length: Option<u64>) -> Result<Vec<u8>> {
        let url = self.url(kind, Some(name));
        let range = length.map(|n| format!("bytes={offset}-{}", offset + n.max(1) - 1));
        let headers: Vec<(&str, &[u8])> = match &range {
            Some(r) => vec![("range", r.as_bytes())],
            None => Vec::new(),
        };
        let response = self.send("GET", &url, &headers, &[])?;
        let response = self.check("cannot read", &url, response)?;
        let mut body = response.body;
        // A server that ignores Range answers 200 with the whole file.
        if response.status == 200 && length.is_some() {
            body = cairn_sdk::storage::slice(&body, offset, length).to_vec();
        }
        if length == Some(0) {
            body.clear();
        }
        Ok(body)
    }

    fn write(&self, kind: Kind, name: &str, data: Vec<u8>) -> Result<()> {
        let url = self.url(kind, Some(name));
        if self.exists(&url)?.is_some() {
            return Err(Error::AlreadyExists(format!("{url} exists")));
        }
        let response = self.send(
            "POST",
            &url,
            &[("content-type", b"application/octet-stream")],
            &data,
        )?;
        self.check("cannot write", &url, response).map(drop)
    }

    fn remove(&self, kind: Kind, name: &str) -> Result<()> {
        let url = self.url(kind, Some(name));
        let response = self.send("DELETE", &url, &[], &[])?;
        self.check("cannot remove", &url, response).map(drop)
    }
}

cairn_sdk::export_storage!(Rest);
