//! A small HTTP/1.1 server on 127.0.0.1 standing in for an application's endpoints
//! (maintenance mode, an export): it records every request in order and answers from a
//! routing function, including answers cut short on purpose.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// A request the server received.
#[derive(Debug, Clone)]
pub struct Request {
    /// `GET`, `POST`, …
    pub method: String,
    /// The path with query.
    pub path: String,
    /// The body.
    pub body: Vec<u8>,
}

impl Request {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

/// How to answer.
pub enum Answer {
    /// A status and a whole body.
    Full(u16, Vec<u8>),
    /// Status 200 announcing `length` bytes, then only `sent` bytes of zeros, then the
    /// connection closes.
    CutShort {
        /// The announced content-length.
        length: usize,
        /// How many bytes are sent.
        sent: usize,
    },
}

type Route = dyn Fn(&Request) -> Answer + Send + Sync;

/// The server; it stops when the test process ends.
pub struct AppServer {
    /// Its port on 127.0.0.1.
    pub port: u16,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl AppServer {
    /// Starts a server answering with `route`.
    pub fn start(route: impl Fn(&Request) -> Answer + Send + Sync + 'static) -> AppServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let port = listener.local_addr().expect("local address").port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        let route: Arc<Route> = Arc::new(route);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let seen = seen.clone();
                let route = route.clone();
                std::thread::spawn(move || {
                    let _ = serve(stream, &seen, &*route);
                });
            }
        });
        AppServer { port, requests }
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every request so far, in the order they arrived.
    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().expect("requests").clone()
    }

    /// `METHOD PATH` of every request so far.
    pub fn calls(&self) -> Vec<String> {
        self.requests()
            .iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect()
    }
}

fn serve(stream: TcpStream, seen: &Mutex<Vec<Request>>, route: &Route) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let path = parts.next().unwrap_or_default().to_owned();
    let mut length = 0usize;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header)?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let request = Request { method, path, body };
    seen.lock().expect("requests").push(request.clone());
    let mut out = stream;
    match route(&request) {
        Answer::Full(status, body) => {
            write!(
                out,
                "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            )?;
            out.write_all(&body)?;
        }
        Answer::CutShort { length, sent } => {
            write!(
                out,
                "HTTP/1.1 200 OK\r\ncontent-length: {length}\r\nconnection: close\r\n\r\n"
            )?;
            out.write_all(&vec![0u8; sent])?;
            out.flush()?;
        }
    }
    out.flush()?;
    out.shutdown(std::net::Shutdown::Both)
}
