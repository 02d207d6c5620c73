//! `apogee bench grpc-send` and `grpc-receive`: the RocketMQ 5.x gRPC endpoint under load, with
//! the protocol's own client stubs (`apogee-grpc-proto`), so the figures sit beside the
//! remoting workloads' in the same report format.
//!
//! - [`send`]: closed-loop SendMessage, N HTTP/2 connections × M calls in flight, latency
//!   per call;
//! - [`receive`]: ReceiveMessage + AckMessage of a topic from its start, as fast as the
//!   endpoint answers.
//!
//! The topic is found (or created) over remoting through the NameServer, as every workload
//! does; the endpoint is given by `--grpc`.

pub mod receive;
pub mod send;

use std::time::Duration;

use anyhow::{Context, Result};
use apogee_grpc_proto::messaging_service_client::MessagingServiceClient;
use apogee_grpc_proto::{Code, Resource};
use tonic::transport::{Channel, Endpoint};

/// Timeout of connecting to the endpoint.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The language the bench names in `x-mq-language` (it is a Rust client).
const LANGUAGE: &str = "RUST";
/// The client version it names: at least 5.0.3, so a deadline too short for polling is told
/// as ILLEGAL_POLLING_TIME.
const CLIENT_VERSION: &str = "5.0.3-apogee-bench";

/// A client of the endpoint at `addr` (`host:port`) on its own HTTP/2 connection.
pub async fn connect(addr: &str) -> Result<MessagingServiceClient<Channel>> {
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))
        .with_context(|| format!("--grpc {addr} is not host:port"))?
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true);
    let channel =
        endpoint.connect().await.with_context(|| format!("connecting to the gRPC endpoint {addr}"))?;
    Ok(MessagingServiceClient::new(channel).max_decoding_message_size(usize::MAX))
}

/// `message` with the headers every 5.x call carries (the client id is required) and a
/// deadline of `timeout`.
pub fn request<T>(message: T, client_id: &str, timeout: Duration) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(timeout);
    let metadata = request.metadata_mut();
    for (name, value) in
        [("x-mq-client-id", client_id), ("x-mq-language", LANGUAGE), ("x-mq-client-version", CLIENT_VERSION)]
    {
        if let Ok(value) = value.parse() {
            metadata.insert(name, value);
        }
    }
    request
}

/// A client id unique to this process and `worker`.
pub fn client_id(worker: usize) -> String {
    format!("apogee-bench@{}@{worker}", std::process::id())
}

/// A topic or group as the protocol names it.
pub fn resource(name: &str) -> Resource {
    Resource { resource_namespace: String::new(), name: name.to_owned() }
}

/// The label an error is counted under: the body code's name (a bounded set), or the gRPC
/// status code when the call itself failed.
pub fn code_label(code: i32) -> String {
    Code::try_from(code).map_or_else(|_| format!("code {code}"), |code| code.as_str_name().to_owned())
}

/// The label of a failed call.
pub fn call_error_label(status: &tonic::Status) -> String {
    format!("grpc {:?}", status.code())
}
