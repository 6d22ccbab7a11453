//! A client of the agent's API, for `cairn agent run/status/history/logs`: one HTTP/1.1
//! request per call over TCP or a unix socket.

use bytes::Bytes;
use cairn_repo::{Error, ErrorKind, Result};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;

/// Where the agent is and how to prove who we are.
#[derive(Clone)]
pub struct Client {
    addr: String,
    token: Option<String>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// The most an answer may hold.
const MAX_ANSWER: usize = 64 << 20;

impl Client {
    /// A client of the agent at `addr` (`HOST:PORT` or `unix:PATH`), with its token.
    pub fn new(addr: &str, token: Option<String>) -> Client {
        Client {
            addr: addr.to_owned(),
            token,
        }
    }

    /// `GET path`: the status and the body.
    ///
    /// # Errors
    /// When the agent cannot be reached.
    pub fn get(&self, path: &str) -> Result<(u16, Vec<u8>)> {
        self.request(http::Method::GET, path)
    }

    /// `POST path` with no body: the status and the body.
    ///
    /// # Errors
    /// When the agent cannot be reached.
    pub fn post(&self, path: &str) -> Result<(u16, Vec<u8>)> {
        self.request(http::Method::POST, path)
    }

    fn request(&self, method: http::Method, path: &str) -> Result<(u16, Vec<u8>)> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::io("cannot start a runtime", e))?;
        runtime.block_on(self.send(method, path))
    }

    async fn send(&self, method: http::Method, path: &str) -> Result<(u16, Vec<u8>)> {
        let unreachable = |e: std::io::Error| {
            Error::new(
                ErrorKind::Backend,
                format!(
                    "cannot reach the agent at {} (is `cairn agent serve` running? give \
                     --agent ADDR or --config FILE): {e}",
                    self.addr
                ),
            )
        };
        let mut req = http::Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, "cairn-agent");
        if let Some(t) = &self.token {
            req = req.header(http::header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let req = req
            .body(Empty::<Bytes>::new())
            .map_err(|e| Error::invalid(format!("bad request {path}: {e}")))?;
        let response = if let Some(socket) = self.addr.strip_prefix("unix:") {
            let stream = tokio::net::UnixStream::connect(socket)
                .await
                .map_err(unreachable)?;
            exchange(stream, req).await?
        } else {
            let stream = tokio::net::TcpStream::connect(&self.addr)
                .await
                .map_err(unreachable)?;
            exchange(stream, req).await?
        };
        Ok(response)
    }
}

async fn exchange<S>(stream: S, req: http::Request<Empty<Bytes>>) -> Result<(u16, Vec<u8>)>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let failed = |e: hyper::Error| {
        Error::new(
            ErrorKind::Backend,
            format!("the agent's answer failed: {e}"),
        )
    };
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(failed)?;
    tokio::spawn(conn);
    let response = sender.send_request(req).await.map_err(failed)?;
    let status = response.status().as_u16();
    let body = http_body_util::Limited::new(response.into_body(), MAX_ANSWER)
        .collect()
        .await
        .map_err(|e| {
            Error::new(
                ErrorKind::Backend,
                format!("the agent's answer failed: {e}"),
            )
        })?
        .to_bytes();
    Ok((status, body.to_vec()))
}
