//! TLS on the remoting port, with the settings of Java's `TlsSystemConfig` (spec §1.1).
//!
//! A server runs in one of three modes (`tls.server.mode`): `disabled` serves plaintext only;
//! `permissive` (Java's default) looks at the first byte of each new connection and serves it
//! over TLS when that byte starts a TLS handshake record (0x16), as plaintext otherwise;
//! `enforcing` closes connections that do not start with a handshake.
//!
//! The server's certificate comes from `tls.server.certPath` / `tls.server.keyPath` (PEM).
//! Without them, a self-signed certificate is generated at start, as Java does with its
//! default `tls.test.mode.enable=true` (Netty's `SelfSignedCertificate`); it is written to a
//! file so that clients that verify can be given it. Java uses the self-signed certificate
//! whenever test mode is on, even with paths configured; here configured paths win, which is
//! what someone who configured them expects.
//!
//! A client ([`ClientTls`]) either verifies the server against given CA certificates, or, only
//! when asked to ([`ServerTrust::Anything`], Java's `tls.test.mode.enable`), accepts any
//! certificate.
//!
//! The certificate helpers and the handshake sniffing serve the gRPC endpoint too.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio::net::TcpStream;
use tokio_rustls::rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use tokio_rustls::rustls::crypto::{self, CryptoProvider};
use tokio_rustls::rustls::{self, DigitallySignedStruct, SignatureScheme};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// The first byte of a TLS record carrying a handshake.
pub const TLS_HANDSHAKE_RECORD: u8 = 0x16;
/// How long a new connection may take to send its first byte, and then to finish a TLS
/// handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Name of the file a generated remoting certificate is written to.
pub const SELF_SIGNED_CERT_FILE: &str = "remoting-self-signed.crt";

/// `tls.server.mode`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TlsMode {
    /// Plaintext only.
    Disabled,
    /// TLS or plaintext, by the first byte of each connection.
    #[default]
    Permissive,
    /// TLS only: other connections are closed.
    Enforcing,
}

impl TlsMode {
    /// Java's names, case-insensitive.
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "disabled" => Some(Self::Disabled),
            "permissive" => Some(Self::Permissive),
            "enforcing" => Some(Self::Enforcing),
            _ => None,
        }
    }
}

/// Where a server's certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertificateSource {
    /// PEM files: the chain and its private key.
    Files {
        /// The certificate chain.
        cert: PathBuf,
        /// The private key (PKCS#8, PKCS#1 or SEC1; not encrypted).
        key: PathBuf,
    },
    /// Generated at start for these host names and addresses, written to `write_to`.
    SelfSigned {
        /// Subject alternative names.
        hosts: Vec<String>,
        /// Where the certificate (PEM) is written for clients that verify.
        write_to: PathBuf,
    },
}

/// The crypto provider: ring builds with cargo alone (aws-lc-rs, rustls' preferred provider,
/// needs cmake).
fn provider() -> Arc<CryptoProvider> {
    // Deprecated for lacking post-quantum key exchange, which the RocketMQ clients' TLS
    // stacks do not rely on.
    #[allow(deprecated)]
    Arc::new(crypto::ring::default_provider())
}

/// The certificate chain and key `source` names, generating (and writing) them when asked.
pub fn certified_key(
    source: &CertificateSource,
) -> io::Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    match source {
        CertificateSource::Files { cert, key } => Ok((read_certificates(cert)?, read_key(key)?)),
        CertificateSource::SelfSigned { hosts, write_to } => self_signed(hosts, write_to),
    }
}

/// A rustls server configuration for `source`, offering `alpn` protocols.
pub fn server_config(source: &CertificateSource, alpn: &[&[u8]]) -> io::Result<rustls::ServerConfig> {
    let (chain, key) = certified_key(source)?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error))?;
    config.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
    Ok(config)
}

/// Every certificate of a PEM file; none is an error.
pub fn read_certificates(path: &Path) -> io::Result<Vec<CertificateDer<'static>>> {
    let invalid = |error: rustls_pki_types::pem::Error| {
        io::Error::new(io::ErrorKind::InvalidData, format!("{}: {error}", path.display()))
    };
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(invalid)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(invalid)?;
    if chain.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: no certificate", path.display()),
        ));
    }
    Ok(chain)
}

/// The private key of a PEM file.
pub fn read_key(path: &Path) -> io::Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_file(path)
        .map_err(|error| io::Error::new(io::ErrorKind::InvalidData, format!("{}: {error}", path.display())))
}

/// Generates a self-signed certificate for `hosts` and writes it (PEM) to `write_to`.
fn self_signed(
    hosts: &[String],
    write_to: &Path,
) -> io::Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    let generated = rcgen::generate_simple_self_signed(hosts.to_vec()).map_err(io::Error::other)?;
    if let Some(dir) = write_to.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(write_to, generated.cert.pem())?;
    tracing::info!(cert = %write_to.display(), "TLS uses a generated self-signed certificate");
    let key = PrivateKeyDer::try_from(generated.signing_key.serialize_der()).map_err(io::Error::other)?;
    Ok((vec![generated.cert.der().clone()], key))
}

/// The names a generated certificate covers: the advertised host, `localhost` and loopback.
pub fn self_signed_hosts(advertised: &str) -> Vec<String> {
    let mut hosts =
        vec![advertised.to_owned(), "localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
    hosts.sort();
    hosts.dedup();
    hosts
}

/// Waits for the first byte of a new connection (without consuming it) and tells whether it
/// starts a TLS handshake. An error when the peer closes first.
pub async fn starts_with_tls_handshake(stream: &TcpStream) -> io::Result<bool> {
    let mut first = [0u8; 1];
    if stream.peek(&mut first).await? == 0 {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed before sending"));
    }
    Ok(first[0] == TLS_HANDSHAKE_RECORD)
}

/// The TLS side of a remoting server: its mode and, unless disabled, its acceptor.
#[derive(Clone)]
pub struct ServerTls {
    mode: TlsMode,
    acceptor: Option<TlsAcceptor>,
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTls").field("mode", &self.mode).finish_non_exhaustive()
    }
}

impl ServerTls {
    /// A server in `mode` with the certificate of `source` (unused when disabled).
    pub fn new(mode: TlsMode, source: &CertificateSource) -> io::Result<Self> {
        let acceptor = match mode {
            TlsMode::Disabled => None,
            _ => Some(TlsAcceptor::from(Arc::new(server_config(source, &[])?))),
        };
        Ok(Self { mode, acceptor })
    }

    /// The mode.
    pub fn mode(&self) -> TlsMode {
        self.mode
    }

    /// Decides how to serve a just-accepted connection: TLS, plaintext, or not at all (an
    /// error, after which the caller drops the stream). Bounded by [`HANDSHAKE_TIMEOUT`].
    pub(crate) async fn accept(&self, stream: TcpStream) -> io::Result<crate::connection::Stream> {
        use crate::connection::Stream;
        let Some(acceptor) = &self.acceptor else { return Ok(Stream::Plain(stream)) };
        let deciding = async {
            if starts_with_tls_handshake(&stream).await? {
                let tls = acceptor.accept(stream).await?;
                Ok(Stream::Tls(Box::new(tokio_rustls::TlsStream::Server(tls))))
            } else if self.mode == TlsMode::Enforcing {
                Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    "plaintext connection refused: TLS is enforced",
                ))
            } else {
                Ok(Stream::Plain(stream))
            }
        };
        tokio::time::timeout(HANDSHAKE_TIMEOUT, deciding)
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no TLS decision in time"))?
    }
}

/// Which servers a client believes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerTrust {
    /// Any certificate (Java's `tls.test.mode.enable`): encryption without authentication,
    /// for tests and self-signed servers.
    Anything,
    /// Certificates signed by the CA certificates of this PEM file (a self-signed server's
    /// own certificate works too), for the name or address dialled.
    Certificates(PathBuf),
}

/// The TLS side of a remoting client.
#[derive(Clone)]
pub struct ClientTls {
    connector: TlsConnector,
    trust: ServerTrust,
}

impl fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTls").field("trust", &self.trust).finish_non_exhaustive()
    }
}

impl ClientTls {
    /// A client that believes servers by `trust`.
    pub fn new(trust: ServerTrust) -> io::Result<Self> {
        let provider = provider();
        let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(io::Error::other)?;
        let config = match &trust {
            ServerTrust::Anything => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
                .with_no_client_auth(),
            ServerTrust::Certificates(path) => {
                let mut roots = rustls::RootCertStore::empty();
                for certificate in read_certificates(path)? {
                    roots.add(certificate).map_err(|error| {
                        io::Error::new(io::ErrorKind::InvalidData, format!("{}: {error}", path.display()))
                    })?;
                }
                builder.with_root_certificates(roots).with_no_client_auth()
            }
        };
        Ok(Self { connector: TlsConnector::from(Arc::new(config)), trust })
    }

    /// Runs the client handshake on `stream`, dialled as `addr` (`host:port`; the host names
    /// the server for verification).
    pub(crate) async fn connect(
        &self,
        addr: &str,
        stream: TcpStream,
    ) -> io::Result<crate::connection::Stream> {
        let host = host_of(addr);
        let name = ServerName::try_from(host.to_owned())
            .map_err(|error| io::Error::new(io::ErrorKind::InvalidInput, format!("{host}: {error}")))?;
        let tls = self.connector.connect(name, stream).await?;
        Ok(crate::connection::Stream::Tls(Box::new(tokio_rustls::TlsStream::Client(tls))))
    }
}

/// The host of `host:port` (`[v6]:port` too).
fn host_of(addr: &str) -> &str {
    let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
    host.trim_start_matches('[').trim_end_matches(']')
}

/// Believes every certificate, but still checks that the server holds its key.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The TLS keys of Java's `TlsSystemConfig`, as broker.conf / namesrv.conf keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// `tls.server.mode` (default permissive).
    pub server_mode: TlsMode,
    /// `tls.server.certPath`.
    pub server_cert_path: Option<PathBuf>,
    /// `tls.server.keyPath` (an unencrypted PEM key; `tls.server.keyPassword` is refused).
    pub server_key_path: Option<PathBuf>,
    /// `tls.test.mode.enable` (default true, as Java): the server generates a self-signed
    /// certificate when none is configured, and this side's outbound connections accept any
    /// certificate.
    pub test_mode_enable: bool,
    /// `tls.enable`: this side's outbound connections (a broker's to the NameServers) use TLS.
    pub client_enable: bool,
    /// `tls.client.authServer`: verify servers (against `tls.client.trustCertPath`) unless
    /// test mode is on. Java's default, false, accepts any server.
    pub client_auth_server: bool,
    /// `tls.client.trustCertPath`.
    pub client_trust_cert_path: Option<PathBuf>,
}

impl Default for TlsSettings {
    fn default() -> Self {
        Self {
            server_mode: TlsMode::Permissive,
            server_cert_path: None,
            server_key_path: None,
            test_mode_enable: true,
            client_enable: false,
            client_auth_server: false,
            client_trust_cert_path: None,
        }
    }
}

impl TlsSettings {
    /// Whether `key` is one of these settings.
    pub fn is_key(key: &str) -> bool {
        key.starts_with("tls.")
    }

    /// Sets one setting by its Java name. Mutual TLS and encrypted keys are refused rather
    /// than ignored, so nobody believes they are on.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        let text = value.trim();
        let flag = || match text {
            t if t.eq_ignore_ascii_case("true") => Ok(true),
            t if t.eq_ignore_ascii_case("false") => Ok(false),
            _ => Err(format!("{key}: {text:?} is not true or false")),
        };
        let path = || Some(PathBuf::from(text)).filter(|path| !path.as_os_str().is_empty());
        match key {
            "tls.server.mode" => {
                self.server_mode = TlsMode::parse(text)
                    .ok_or_else(|| format!("{key}: {text:?} is not disabled, permissive or enforcing"))?
            }
            "tls.server.certPath" => self.server_cert_path = path(),
            "tls.server.keyPath" => self.server_key_path = path(),
            "tls.test.mode.enable" => self.test_mode_enable = flag()?,
            "tls.enable" => self.client_enable = flag()?,
            "tls.client.authServer" => self.client_auth_server = flag()?,
            "tls.client.trustCertPath" => self.client_trust_cert_path = path(),
            "tls.server.need.client.auth" if text.eq_ignore_ascii_case("none") || text.is_empty() => {}
            "tls.server.authClient" if !flag()? => {}
            "tls.server.keyPassword" | "tls.client.keyPassword" | "tls.server.trustCertPath"
                if text.is_empty() => {}
            "tls.server.need.client.auth"
            | "tls.server.authClient"
            | "tls.server.trustCertPath"
            | "tls.server.keyPassword"
            | "tls.client.keyPath"
            | "tls.client.certPath"
            | "tls.client.keyPassword" => {
                return Err(format!("{key}: client certificates and encrypted keys are not supported"))
            }
            "tls.config.file" => {
                return Err(format!("{key}: put the tls.* keys in this config file instead"))
            }
            _ => return Err(format!("unknown TLS key {key}")),
        }
        Ok(())
    }

    /// The server side, or `None` when `tls.server.mode=disabled`. Without a configured
    /// certificate a self-signed one for `self_signed_hosts` is written to `self_signed_path`
    /// (test mode), or the start fails (test mode off).
    pub fn server(
        &self,
        self_signed_hosts: Vec<String>,
        self_signed_path: PathBuf,
    ) -> io::Result<Option<ServerTls>> {
        if self.server_mode == TlsMode::Disabled {
            return Ok(None);
        }
        let source = match (&self.server_cert_path, &self.server_key_path) {
            (Some(cert), Some(key)) => CertificateSource::Files { cert: cert.clone(), key: key.clone() },
            (None, None) if self.test_mode_enable => {
                CertificateSource::SelfSigned { hosts: self_signed_hosts, write_to: self_signed_path }
            }
            _ => return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "TLS needs both tls.server.certPath and tls.server.keyPath (or tls.test.mode.enable=true \
                     for a self-signed certificate, or tls.server.mode=disabled)",
            )),
        };
        ServerTls::new(self.server_mode, &source).map(Some)
    }

    /// The client side of outbound connections, or `None` unless `tls.enable`.
    pub fn client(&self) -> io::Result<Option<ClientTls>> {
        if !self.client_enable {
            return Ok(None);
        }
        let trust = match &self.client_trust_cert_path {
            Some(path) if self.client_auth_server && !self.test_mode_enable => {
                ServerTrust::Certificates(path.clone())
            }
            None if self.client_auth_server && !self.test_mode_enable => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "tls.client.authServer needs tls.client.trustCertPath",
                ))
            }
            _ => ServerTrust::Anything,
        };
        ClientTls::new(trust).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_keys_and_defaults() {
        let mut settings = TlsSettings::default();
        assert_eq!(settings.server_mode, TlsMode::Permissive);
        assert!(settings.test_mode_enable && !settings.client_enable);
        settings.set("tls.server.mode", "ENFORCING").unwrap();
        settings.set("tls.server.certPath", "/a.crt").unwrap();
        settings.set("tls.server.keyPath", "/a.key").unwrap();
        settings.set("tls.enable", "true").unwrap();
        settings.set("tls.server.need.client.auth", "none").unwrap();
        assert_eq!(settings.server_mode, TlsMode::Enforcing);
        assert_eq!(settings.server_cert_path, Some(PathBuf::from("/a.crt")));
        assert!(settings.set("tls.server.mode", "sometimes").is_err());
        assert!(settings.set("tls.server.need.client.auth", "require").is_err());
        assert!(settings.set("tls.server.keyPassword", "secret").is_err());
        assert!(settings.set("tls.enable", "yes").is_err());
        assert!(TlsSettings::is_key("tls.server.mode") && !TlsSettings::is_key("listenPort"));
    }

    #[test]
    fn generated_certificates_are_written_and_configured_files_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tls").join(SELF_SIGNED_CERT_FILE);
        let settings = TlsSettings::default();
        let server = settings.server(self_signed_hosts("10.0.0.7"), path.clone()).unwrap().unwrap();
        assert_eq!(server.mode(), TlsMode::Permissive);
        let pem = std::fs::read_to_string(&path).unwrap();
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
        // The written certificate is a trust anchor a client can be given.
        ClientTls::new(ServerTrust::Certificates(path.clone())).unwrap();
        // A missing key is a clear error; so is test mode off without files.
        let missing = CertificateSource::Files { cert: path.clone(), key: dir.path().join("absent.key") };
        let Err(error) = server_config(&missing, &[]) else { panic!("a missing key must be refused") };
        assert!(error.to_string().contains("absent.key"), "{error}");
        let strict = TlsSettings { test_mode_enable: false, ..TlsSettings::default() };
        assert!(strict.server(vec![], path.clone()).is_err());
        let disabled = TlsSettings { server_mode: TlsMode::Disabled, ..TlsSettings::default() };
        assert!(disabled.server(vec![], path).unwrap().is_none());
    }

    #[test]
    fn client_trust_follows_java() {
        let mut settings = TlsSettings::default();
        assert!(settings.client().unwrap().is_none(), "off unless tls.enable");
        settings.client_enable = true;
        assert_eq!(settings.client().unwrap().unwrap().trust, ServerTrust::Anything);
        settings.test_mode_enable = false;
        assert_eq!(settings.client().unwrap().unwrap().trust, ServerTrust::Anything, "authServer off");
        settings.client_auth_server = true;
        assert!(settings.client().is_err(), "verifying needs a trust file");
    }

    #[test]
    fn hosts_of_addresses() {
        assert_eq!(host_of("127.0.0.1:10911"), "127.0.0.1");
        assert_eq!(host_of("[::1]:9876"), "::1");
        assert_eq!(host_of("broker-a.example:10911"), "broker-a.example");
    }
}
