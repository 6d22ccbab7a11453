//! A small blocking HTTP client over `wasi:http`.
//!
//! The host sends the request only when the operator granted the URL's authority (`host:port`)
//! to this plugin; anything else fails with [`Error::Denied`](crate::Error::Denied) before a
//! socket opens. Bodies stream through the host in chunks of up to a mebibyte.

use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    ErrorCode, Fields, IncomingBody, Method, OutgoingBody, OutgoingRequest, Scheme,
};
use wasip2::io::streams::{InputStream, StreamError};

use crate::{Error, Result};

/// An HTTP response with its whole body.
#[derive(Debug)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Header names (lowercase) and values.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of header `name` (case-insensitive) as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }
}

/// A parsed `http://` or `https://` URL: what a request needs.
#[derive(Debug, Clone)]
pub struct Url {
    https: bool,
    authority: String,
    path: String,
}

impl Url {
    /// Parses `url`.
    ///
    /// # Errors
    /// `invalid-config` when it is not an absolute http(s) URL.
    pub fn parse(url: &str) -> Result<Url> {
        let (https, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(Error::InvalidConfig(format!(
                "`{url}` is not an http:// or https:// URL"
            )));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.is_empty() || authority.contains('@') {
            return Err(Error::InvalidConfig(format!(
                "`{url}` needs a host and must not carry credentials (configure them apart)"
            )));
        }
        Ok(Url {
            https,
            authority: authority.to_owned(),
            path: path.to_owned(),
        })
    }

    /// This URL with `segment` appended to its path (one `/` between them).
    pub fn join(&self, segment: &str) -> Url {
        let mut path = self.path.trim_end_matches('/').to_owned();
        path.push('/');
        path.push_str(segment.trim_start_matches('/'));
        Url {
            path,
            ..self.clone()
        }
    }

    /// `host:port` (or `host`) as written.
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// The path with query.
    pub fn path(&self) -> &str {
        &self.path
    }
}

impl std::fmt::Display for Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.https { "https" } else { "http" };
        write!(f, "{scheme}://{}{}", self.authority, self.path)
    }
}

/// Sends one request and reads the whole response.
///
/// # Errors
/// [`Error::Denied`] when the host refused the authority, [`Error::Unavailable`] for connection
/// failures and timeouts, [`Error::Other`] for protocol errors. HTTP error statuses are not
/// errors here: look at [`Response::status`].
pub fn send(method: &str, url: &Url, headers: &[(&str, &[u8])], body: &[u8]) -> Result<Response> {
    let mut streamed = open(method, url, headers, body)?;
    let mut all = Vec::new();
    while let Some(chunk) = streamed.body.next_chunk()? {
        all.extend_from_slice(&chunk);
    }
    Ok(Response {
        status: streamed.status,
        headers: std::mem::take(&mut streamed.headers),
        body: all,
    })
}

/// A response whose body is read chunk by chunk (for bodies too large to hold).
pub struct Streamed {
    /// The status code.
    pub status: u16,
    /// Header names (lowercase) and values.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The body.
    pub body: BodyReader,
}

/// The body of a [`Streamed`] response.
pub struct BodyReader {
    url: String,
    // Declared before `body`: a stream must go before the body it belongs to.
    stream: Option<InputStream>,
    body: Option<IncomingBody>,
    expected: Option<u64>,
    read: u64,
}

impl BodyReader {
    /// The next chunk (up to a mebibyte), `None` at the end of the body.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when the connection fails or ends before the `content-length`
    /// the server announced: a truncated body is never taken for a whole one.
    pub fn next_chunk(&mut self) -> Result<Option<Vec<u8>>> {
        let Some(stream) = &self.stream else {
            return Ok(None);
        };
        match stream.blocking_read(1 << 20) {
            Ok(chunk) => {
                self.read += chunk.len() as u64;
                Ok(Some(chunk))
            }
            Err(StreamError::Closed) => {
                self.stream = None;
                if let Some(body) = self.body.take() {
                    IncomingBody::finish(body);
                }
                match self.expected {
                    Some(n) if n != self.read => Err(Error::Unavailable(format!(
                        "{} ended the body after {} of {n} bytes",
                        self.url, self.read
                    ))),
                    _ => Ok(None),
                }
            }
            Err(StreamError::LastOperationFailed(e)) => Err(Error::Unavailable(format!(
                "reading the body from {} failed after {} bytes: {}",
                self.url,
                self.read,
                io_failure(&e)
            ))),
        }
    }
}

impl Drop for BodyReader {
    fn drop(&mut self) {
        drop(self.stream.take());
        drop(self.body.take());
    }
}

/// Sends one request and returns the response with its body still to read.
///
/// # Errors
/// As [`send`].
pub fn open(method: &str, url: &Url, headers: &[(&str, &[u8])], body: &[u8]) -> Result<Streamed> {
    let fields = Fields::new();
    let has_body = !body.is_empty() || !matches!(method, "GET" | "HEAD" | "DELETE");
    if has_body {
        // A known length instead of chunked transfer encoding: every server takes it.
        let length = body.len().to_string();
        fields
            .append("content-length", length.as_bytes())
            .map_err(|e| Error::Other(format!("bad header `content-length`: {e:?}")))?;
    }
    for (name, value) in headers {
        fields
            .append(name, value)
            .map_err(|e| Error::Other(format!("bad header `{name}`: {e:?}")))?;
    }
    let request = OutgoingRequest::new(fields);
    let method = match method {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        other => Method::Other(other.to_owned()),
    };
    let bad = |what: &str| Error::Other(format!("cannot set the request's {what} for {url}"));
    request.set_method(&method).map_err(|()| bad("method"))?;
    let scheme = if url.https {
        Scheme::Https
    } else {
        Scheme::Http
    };
    request
        .set_scheme(Some(&scheme))
        .map_err(|()| bad("scheme"))?;
    request
        .set_authority(Some(&url.authority))
        .map_err(|()| bad("authority"))?;
    request
        .set_path_with_query(Some(&url.path))
        .map_err(|()| bad("path"))?;
    let outgoing = request.body().map_err(|()| bad("body"))?;
    let future = outgoing_handler::handle(request, None).map_err(|e| failure(url, &e))?;
    // When the body cannot be sent, the response (or the refusal) says why.
    let sent = write_body(outgoing, body, url);

    let response = loop {
        match future.get() {
            Some(result) => {
                break result
                    .map_err(|()| Error::Other(format!("response from {url} taken twice")))?
                    .map_err(|e| failure(url, &e))?;
            }
            None => future.subscribe().block(),
        }
    };
    let status = response.status();
    if let Err(e) = sent
        && (200..300).contains(&status)
    {
        return Err(e);
    }
    let headers = response.headers().entries();
    // A HEAD answer (and 204, 304) announces a length it does not send.
    let bodiless = matches!(method, Method::Head) || status == 204 || status == 304;
    let expected = headers
        .iter()
        .filter(|_| !bodiless)
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| std::str::from_utf8(v).ok()?.trim().parse().ok());
    let incoming = response
        .consume()
        .map_err(|()| Error::Other(format!("cannot read the body from {url}")))?;
    let stream = incoming
        .stream()
        .map_err(|()| Error::Other(format!("cannot read the body from {url}")))?;
    Ok(Streamed {
        status,
        headers,
        body: BodyReader {
            url: url.to_string(),
            stream: Some(stream),
            body: Some(incoming),
            expected,
            read: 0,
        },
    })
}

fn write_body(outgoing: OutgoingBody, mut body: &[u8], url: &Url) -> Result<()> {
    if !body.is_empty() {
        let stream = outgoing
            .write()
            .map_err(|()| Error::Other(format!("cannot write the body to {url}")))?;
        let broken = |e: StreamError| stream_error(url, e);
        while !body.is_empty() {
            let room = stream.check_write().map_err(broken)?;
            if room == 0 {
                stream.subscribe().block();
                continue;
            }
            let n = usize::try_from(room).unwrap_or(usize::MAX).min(body.len());
            stream.write(&body[..n]).map_err(broken)?;
            body = &body[n..];
        }
        // With a content-length the host closes the stream once it has every byte.
        match stream.blocking_flush() {
            Ok(()) | Err(StreamError::Closed) => {}
            Err(e) => return Err(broken(e)),
        }
    }
    OutgoingBody::finish(outgoing, None).map_err(|e| failure(url, &e))
}

fn stream_error(url: &Url, e: StreamError) -> Error {
    match e {
        StreamError::Closed => Error::Unavailable(format!("{url} closed the connection")),
        StreamError::LastOperationFailed(e) => {
            Error::Unavailable(format!("sending to {url} failed: {}", io_failure(&e)))
        }
    }
}

fn failure(url: &Url, e: &ErrorCode) -> Error {
    // The host's own detail, for whoever runs with -vv.
    crate::log::debug(&format!("request to {url}: {e:?}"));
    match e {
        ErrorCode::HttpRequestDenied => Error::Denied(format!(
            "the host refused a request to {}: that authority is not granted to this plugin",
            url.authority
        )),
        ErrorCode::DnsTimeout
        | ErrorCode::DnsError(_)
        | ErrorCode::ConnectionRefused
        | ErrorCode::ConnectionTerminated
        | ErrorCode::ConnectionReadTimeout
        | ErrorCode::ConnectionWriteTimeout
        | ErrorCode::ConnectionTimeout
        | ErrorCode::ConnectionLimitReached
        | ErrorCode::DestinationUnavailable
        | ErrorCode::DestinationNotFound => {
            Error::Unavailable(format!("cannot reach {url}: {}", describe(e)))
        }
        other => Error::Other(format!("request to {url} failed: {}", describe(other))),
    }
}

/// What went wrong, in words rather than WASI's variant names (and never the host HTTP
/// library's internals).
fn describe(e: &ErrorCode) -> &'static str {
    match e {
        ErrorCode::DnsTimeout => "the name lookup timed out",
        ErrorCode::DnsError(_) | ErrorCode::DestinationNotFound => "the host name does not resolve",
        ErrorCode::DestinationUnavailable => "the host is unreachable",
        ErrorCode::DestinationIpProhibited | ErrorCode::DestinationIpUnroutable => {
            "that address cannot be reached"
        }
        ErrorCode::ConnectionRefused => "the connection was refused (is the service listening?)",
        ErrorCode::ConnectionTerminated => "the connection was closed",
        ErrorCode::ConnectionTimeout => "connecting timed out",
        ErrorCode::ConnectionReadTimeout => "no answer came in time",
        ErrorCode::ConnectionWriteTimeout => "sending timed out",
        ErrorCode::ConnectionLimitReached => "too many connections are open",
        ErrorCode::TlsProtocolError | ErrorCode::TlsAlertReceived(_) => "the TLS handshake failed",
        ErrorCode::TlsCertificateError => "the server's TLS certificate is not trusted",
        ErrorCode::HttpRequestDenied => "the host did not allow the request",
        ErrorCode::HttpResponseIncomplete => "the response ended before it was complete",
        ErrorCode::HttpRequestBodySize(_) => "the request body's length is not its content-length",
        ErrorCode::HttpResponseBodySize(_) => {
            "the response body's length is not its content-length"
        }
        ErrorCode::HttpResponseTimeout => "no response came in time",
        ErrorCode::HttpProtocolError => "the server broke the HTTP protocol",
        ErrorCode::HttpRequestHeaderSectionSize(_)
        | ErrorCode::HttpRequestHeaderSize(_)
        | ErrorCode::HttpRequestUriTooLong => "the request is too large",
        ErrorCode::HttpResponseHeaderSectionSize(_) | ErrorCode::HttpResponseHeaderSize(_) => {
            "the response headers are too large"
        }
        _ => "the HTTP exchange failed",
    }
}

/// A failed stream operation in words: the HTTP error it stands for when the host gives one.
fn io_failure(e: &wasip2::io::error::Error) -> &'static str {
    match wasip2::http::types::http_error_code(e) {
        Some(code) => describe(&code),
        None => {
            // The host's own words, for whoever runs with -vv.
            crate::log::debug(&format!("stream error: {}", e.to_debug_string()));
            "the connection failed"
        }
    }
}
