//! Plaintext and TLS on one port (spec §2.1, §2.2): Java, Go, C# and C++ clients speak TLS by
//! default and accept any certificate; Rust, Python and Node.js speak plaintext. Each accepted
//! connection's first bytes decide: a TLS handshake record is served over TLS (ALPN `h2`),
//! anything else as plaintext HTTP/2.
//!
//! The certificate comes from `tlsCertPath` / `tlsKeyPath` (PEM); without them a self-signed
//! certificate for the advertised host, `localhost` and loopback is generated at start and
//! written beside the store (`tls/apogee-self-signed.crt`) for clients that verify. Reading and
//! generating certificates is `apogee_remoting::tls`'s, shared with the remoting port.

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tonic::transport::server::{Connected, TcpConnectInfo};

/// The first byte of a TLS record carrying a handshake.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;
/// The major version byte every TLS record header carries (SSL 3.0 and TLS 1.x).
const TLS_MAJOR_VERSION: u8 = 0x03;
/// How long a new connection may take to send its first bytes, and then to finish a TLS
/// handshake.
pub const FIRST_BYTES_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections accepted but not yet taken by the server.
const ACCEPTED_QUEUE: usize = 256;
/// Name of the generated certificate's file, under the store's `tls/`.
pub const SELF_SIGNED_CERT_FILE: &str = "apogee-self-signed.crt";

/// One accepted connection, plaintext or TLS.
#[derive(Debug)]
pub enum Conn {
    /// Plaintext HTTP/2.
    Plain(TcpStream),
    /// HTTP/2 over TLS.
    Tls(Box<TlsStream<TcpStream>>),
}

impl Connected for Conn {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        let tcp = match self {
            Conn::Plain(stream) => stream,
            Conn::Tls(stream) => stream.get_ref().0,
        };
        TcpConnectInfo { local_addr: tcp.local_addr().ok(), remote_addr: tcp.peer_addr().ok() }
    }
}

impl AsyncRead for Conn {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(stream) => Pin::new(stream).poll_read(cx, buf),
            Conn::Tls(stream) => Pin::new(stream.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(stream) => Pin::new(stream).poll_write(cx, buf),
            Conn::Tls(stream) => Pin::new(stream.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(stream) => Pin::new(stream).poll_flush(cx),
            Conn::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(stream) => Pin::new(stream).poll_shutdown(cx),
            Conn::Tls(stream) => Pin::new(stream.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Where the certificate comes from (shared with the remoting port).
pub use apogee_remoting::tls::{self_signed_hosts, CertificateSource};

/// The TLS side of the port: the remoting crate's certificate handling, offering ALPN `h2`.
pub fn acceptor(source: &CertificateSource) -> io::Result<TlsAcceptor> {
    let config = apogee_remoting::tls::server_config(source, &[b"h2"])?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Accepts connections on `listener` until the receiver is dropped, deciding each one's
/// protocol on its own task (a silent or slow peer delays nobody else).
pub fn accept_loop(listener: TcpListener, tls: TlsAcceptor) -> mpsc::Receiver<io::Result<Conn>> {
    let (sender, receiver) = mpsc::channel(ACCEPTED_QUEUE);
    tokio::spawn(async move {
        loop {
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        tracing::warn!(%error, "grpc accept failed");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                },
                _ = sender.closed() => return,
            };
            let sender = sender.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(FIRST_BYTES_TIMEOUT, classify(stream, &tls)).await {
                    Ok(Ok(conn)) => {
                        let _ = sender.send(Ok(conn)).await;
                    }
                    Ok(Err(error)) => {
                        tracing::debug!(%peer, %error, "grpc connection dropped before serving")
                    }
                    Err(_) => tracing::debug!(%peer, "grpc connection sent nothing in time"),
                }
            });
        }
    });
    receiver
}

/// Serves `stream` over TLS when its first bytes start a TLS handshake.
async fn classify(stream: TcpStream, tls: &TlsAcceptor) -> io::Result<Conn> {
    let _ = stream.set_nodelay(true);
    let mut first = [0u8; 2];
    loop {
        let seen = stream.peek(&mut first).await?;
        if seen == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed before sending"));
        }
        if seen == first.len() || first[0] != TLS_HANDSHAKE_RECORD {
            break;
        }
        // One byte of a possible record header so far: wait for the next (the caller's
        // timeout bounds the wait).
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    if first == [TLS_HANDSHAKE_RECORD, TLS_MAJOR_VERSION] {
        Ok(Conn::Tls(Box::new(tls.accept(stream).await?)))
    } else {
        Ok(Conn::Plain(stream))
    }
}

/// Where a broker whose store is at `store_root` writes a generated certificate.
pub fn self_signed_path(store_root: &Path) -> PathBuf {
    store_root.join("tls").join(SELF_SIGNED_CERT_FILE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_certificate_is_written_for_clients_and_serves() {
        let dir = tempfile::tempdir().unwrap();
        let path = self_signed_path(dir.path());
        let source =
            CertificateSource::SelfSigned { hosts: self_signed_hosts("10.0.0.7"), write_to: path.clone() };
        acceptor(&source).expect("an acceptor");
        let pem = std::fs::read_to_string(&path).expect("the certificate is written");
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
        // The same files configured explicitly serve too, and a missing key is a clear error.
        let missing = CertificateSource::Files { cert: path.clone(), key: dir.path().join("absent.key") };
        let Err(error) = acceptor(&missing) else { panic!("a missing key must be refused") };
        assert!(error.to_string().contains("absent.key"), "{error}");
    }
}
