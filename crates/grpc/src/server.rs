//! The listener: HTTP/2 gRPC on `grpcServerPort` (spec §2.1), bound before it is announced so
//! that port 0 gives the port the system chose, and stopped with the broker.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use apogee_broker::BrokerState;
use apogee_common::time::now_ms;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;

use crate::pb::messaging_service_server::MessagingServiceServer;
use crate::service::Service;
use crate::{tls, Endpoint, Messaging};

/// Largest request accepted, in bytes (`grpcMaxInboundMessageSize`, 130 MiB).
pub const MAX_INBOUND_MESSAGE_BYTES: usize = 130 * 1024 * 1024;
/// How often silent clients are forgotten.
const CLIENT_EXPIRY_SCAN: Duration = Duration::from_secs(10);

/// The ACL of `apogee proxy` (proxy.conf's `enableACL`): its validator and how often its
/// file is polled. Embedded, the endpoint shares the broker's validator instead.
#[derive(Debug)]
pub struct ProxyAcl {
    /// The policy every call is judged by.
    pub validator: Arc<apogee_broker::acl::AclValidator>,
    /// How often the file is read again.
    pub watch_interval: Duration,
}

/// A running gRPC endpoint.
#[derive(Debug)]
pub struct GrpcServer {
    local_addr: SocketAddr,
    messaging: Arc<Messaging>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl GrpcServer {
    /// Binds `addr` and serves the broker `state` on it (local mode).
    pub async fn start(state: Arc<BrokerState>, addr: SocketAddr) -> std::io::Result<GrpcServer> {
        let listener = TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        let endpoint = Endpoint { host: state.config.broker_ip1.to_string(), port: local_addr.port() };
        let messaging = Arc::new(Messaging::new(Arc::clone(&state), endpoint));
        let checks = crate::transaction::TransactionChecks(Arc::downgrade(&messaging));
        if !state.fronts.attach_producers(Arc::new(checks)) {
            tracing::warn!(
                "another front already serves this broker's producers; grpc producers get no checks"
            );
        }
        let tls = tls::acceptor(&certificate_source(&state))?;
        Ok(Self::serve(listener, local_addr, messaging, tls))
    }

    /// Serves the broker groups behind `relay` on `listener` (cluster mode, `apogee proxy`):
    /// `advertised_host` is the host routes name when a client's request names none,
    /// `certificate` the TLS certificate, `max_body_bytes` the body limit, `acl` the proxy's
    /// own ACL (its file is watched while the proxy runs).
    pub fn start_proxy(
        listener: std::net::TcpListener,
        relay: apogee_client::Relay,
        settings: apogee_broker::proxy_config::ProxyConfig,
        advertised_host: String,
        certificate: &tls::CertificateSource,
        max_body_bytes: usize,
        acl: Option<ProxyAcl>,
    ) -> std::io::Result<GrpcServer> {
        listener.set_nonblocking(true)?;
        let listener = TcpListener::from_std(listener)?;
        let local_addr = listener.local_addr()?;
        let endpoint = Endpoint { host: advertised_host, port: local_addr.port() };
        let validator = acl.as_ref().map(|acl| Arc::clone(&acl.validator));
        let messaging = Messaging::cluster(relay, settings, endpoint, max_body_bytes, validator);
        let tls = tls::acceptor(certificate)?;
        let mut server = Self::serve(listener, local_addr, messaging, tls);
        if let Some(acl) = acl {
            let stopping = server.stop.subscribe();
            server.tasks.push(tokio::spawn(apogee_broker::acl::watch_file(
                acl.validator,
                acl.watch_interval,
                stopping,
            )));
        }
        Ok(server)
    }

    fn serve(
        listener: TcpListener,
        local_addr: SocketAddr,
        messaging: Arc<Messaging>,
        tls: tokio_rustls::TlsAcceptor,
    ) -> GrpcServer {
        let incoming = tls::accept_loop(listener, tls);
        let (stop, stopped) = watch::channel(false);
        let service = MessagingServiceServer::new(Service(Arc::clone(&messaging)))
            .max_decoding_message_size(MAX_INBOUND_MESSAGE_BYTES);
        let mut serve_stop = stopped.clone();
        let serve = tokio::spawn(async move {
            let shutdown = async move {
                let _ = serve_stop.wait_for(|stop| *stop).await;
            };
            let result = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming_shutdown(ReceiverStream::new(incoming), shutdown)
                .await;
            if let Err(error) = result {
                tracing::error!(%error, "grpc server failed");
            }
        });
        let expiry = tokio::spawn(expire_clients(Arc::clone(&messaging), stopped.clone()));
        let renewal = tokio::spawn(crate::renew::run(Arc::clone(&messaging), stopped));
        tracing::info!(%local_addr, "apogee grpc listening on {local_addr}");
        GrpcServer { local_addr, messaging, stop, tasks: vec![serve, expiry, renewal] }
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The service state (for tests and the broker's callbacks).
    pub fn messaging(&self) -> &Arc<Messaging> {
        &self.messaging
    }

    /// Stops serving and waits for the tasks; a proxy's relay then leaves the brokers.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
        if let crate::backend::Brokers::Remote(remote) = self.messaging.backend() {
            remote.relay().shutdown().await;
        }
    }
}

/// The configured certificate, or a generated one beside the store.
fn certificate_source(state: &BrokerState) -> tls::CertificateSource {
    match (&state.config.proxy.tls_cert_path, &state.config.proxy.tls_key_path) {
        (Some(cert), Some(key)) => tls::CertificateSource::Files { cert: cert.clone(), key: key.clone() },
        _ => tls::CertificateSource::SelfSigned {
            hosts: tls::self_signed_hosts(&state.config.broker_ip1.to_string()),
            write_to: tls::self_signed_path(&state.config.store.store_path_root_dir),
        },
    }
}

async fn expire_clients(messaging: Arc<Messaging>, mut stopped: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(CLIENT_EXPIRY_SCAN) => {}
            _ = stopped.wait_for(|stop| *stop) => return,
        }
        let expired = messaging.clients().expire(now_ms());
        if !expired.is_empty() {
            tracing::info!(expired = expired.len(), "grpc clients expired");
        }
        for client_id in expired {
            messaging.release_client(&client_id).await;
        }
    }
}
