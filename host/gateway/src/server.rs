//! Listening: plain HTTP or TLS (rustls, certificate and key files), HTTP/1.1 and HTTP/2,
//! credentials and certificates reloaded on SIGHUP without dropping connections, and a
//! clean stop on SIGTERM or Ctrl-C.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Router;
use cairn_repo::{Error, Result};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio_rustls::TlsAcceptor;

use crate::gateway::{Gateway, handle};

/// The longest a client may take to send a request's headers, or to finish a TLS handshake.
const HANDSHAKE: Duration = Duration::from_secs(30);

/// Where and how to listen.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The address (port 0: any free one).
    pub listen: SocketAddr,
    /// TLS certificate chain and private key (PEM files); none: plain HTTP.
    pub tls: Option<(PathBuf, PathBuf)>,
}

fn load_tls(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|i| i.collect::<std::result::Result<_, _>>())
        .map_err(|e| {
            Error::invalid(format!(
                "cannot read the certificate {}: {e}",
                cert.display()
            ))
        })?;
    if certs.is_empty() {
        return Err(Error::invalid(format!(
            "{} holds no PEM certificate",
            cert.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        Error::invalid(format!(
            "cannot read the private key {}: {e}",
            key.display()
        ))
    })?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| Error::invalid(format!("TLS: {e}")))?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| Error::invalid(format!("the certificate and key do not fit: {e}")))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Counts a connection while it is open.
struct Open(Arc<Gateway>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.metrics.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Serves `gw` until SIGTERM or Ctrl-C; `ready` gets the bound address.
///
/// # Errors
/// When the address cannot be bound or the TLS files cannot be read.
pub async fn serve(
    gw: Arc<Gateway>,
    opts: ServeOptions,
    ready: impl FnOnce(SocketAddr),
) -> Result<()> {
    let tls = match &opts.tls {
        Some((cert, key)) => Some(Arc::new(RwLock::new(load_tls(cert, key)?))),
        None => None,
    };
    let listener = TcpListener::bind(opts.listen)
        .await
        .map_err(|e| Error::io(format!("cannot listen on {}", opts.listen), e))?;
    let local = listener
        .local_addr()
        .map_err(|e| Error::io("cannot read the bound address", e))?;
    let router = Router::new().fallback(handle).with_state(gw.clone());
    let mut hup = signal(SignalKind::hangup()).map_err(|e| Error::io("cannot watch SIGHUP", e))?;
    let mut term =
        signal(SignalKind::terminate()).map_err(|e| Error::io("cannot watch SIGTERM", e))?;
    ready(local);
    tracing::info!(address = %local, tls = tls.is_some(), "gateway listening");
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors and the like: wait instead of spinning.
                    tracing::warn!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = hup.recv() => {
                gw.reload();
                if let (Some(current), Some((cert, key))) = (&tls, &opts.tls) {
                    match load_tls(cert, key) {
                        Ok(c) => {
                            *current.write().unwrap_or_else(|e| e.into_inner()) = c;
                            tracing::info!("TLS certificate reloaded");
                        }
                        Err(e) => tracing::error!("keeping the old certificate: {e}"),
                    }
                }
                continue;
            }
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        };
        let _ = tcp.set_nodelay(true);
        gw.metrics.connections.fetch_add(1, Ordering::Relaxed);
        let open = Open(gw.clone());
        let service = TowerToHyperService::new(router.clone());
        let acceptor = tls
            .as_ref()
            .map(|t| TlsAcceptor::from(t.read().unwrap_or_else(|e| e.into_inner()).clone()));
        tokio::spawn(async move {
            let _open = open;
            let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(HANDSHAKE);
            let served = match acceptor {
                Some(acceptor) => match tokio::time::timeout(HANDSHAKE, acceptor.accept(tcp)).await
                {
                    Ok(Ok(stream)) => {
                        builder
                            .serve_connection(TokioIo::new(stream), service)
                            .await
                    }
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, "TLS handshake failed: {e}");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake timed out");
                        return;
                    }
                },
                None => builder.serve_connection(TokioIo::new(tcp), service).await,
            };
            if let Err(e) = served {
                tracing::debug!(%peer, "connection: {e}");
            }
        });
    }
    tracing::info!("gateway stopping");
    Ok(())
}

/// [`serve`] on a runtime of its own, for a caller without one (the CLI). Requests still in
/// progress at the stop get a few seconds to finish.
///
/// # Errors
/// As [`serve`].
pub fn run(gw: Arc<Gateway>, opts: ServeOptions, ready: impl FnOnce(SocketAddr)) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .thread_name("cairn-gateway")
        .enable_all()
        .build()
        .map_err(|e| Error::io("cannot start the gateway's runtime", e))?;
    let served = rt.block_on(serve(gw, opts, ready));
    rt.shutdown_timeout(Duration::from_secs(5));
    served
}
