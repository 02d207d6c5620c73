//! The tonic service: every RPC of `MessagingService`. Unary RPCs always end with gRPC OK and
//! carry their outcome in the body's status (spec §2.6); the RPCs the reference does not serve
//! (the pull-consumer ones) answer gRPC UNIMPLEMENTED.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use apogee_common::time::now_ms;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use crate::acl::CallSignature;
use crate::backend::Backend;
use crate::clients::{self, SettingsRefused};
use crate::context::CallContext;
use crate::metrics::Rpc;
use crate::pb::messaging_service_server::MessagingService;
use crate::pb::*;
use crate::status::{ok, Refusal};
use crate::{names, Messaging};

/// Commands waiting to be written to one client's Telemetry stream; a client that does not read
/// them is not waited for (a command that does not fit is dropped and logged).
pub const TELEMETRY_QUEUE: usize = 64;

/// A response that carries a body status.
trait WithStatus: Default {
    fn with_status(status: crate::pb::Status) -> Self;
    /// The body status code (0 when unset).
    fn status_code(&self) -> i32;
}

macro_rules! with_status {
    ($($response:ty),* $(,)?) => {
        $(impl WithStatus for $response {
            #[allow(clippy::needless_update)]
            fn with_status(status: crate::pb::Status) -> Self {
                Self { status: Some(status), ..Self::default() }
            }

            fn status_code(&self) -> i32 {
                self.status.as_ref().map_or(0, |status| status.code)
            }
        })*
    };
}

with_status!(
    QueryRouteResponse,
    HeartbeatResponse,
    SendMessageResponse,
    QueryAssignmentResponse,
    AckMessageResponse,
    ForwardMessageToDeadLetterQueueResponse,
    EndTransactionResponse,
    NotifyClientTerminationResponse,
    ChangeInvisibleDurationResponse,
    RecallMessageResponse,
);

/// The service tonic serves.
#[derive(Debug, Clone)]
pub struct Service(pub Arc<Messaging>);

impl Service {
    /// The answer of a unary RPC: its response, or its refusal in the body; counted.
    fn answer<T: WithStatus>(
        &self,
        rpc: Rpc,
        started: Instant,
        outcome: Result<T, Refusal>,
    ) -> Result<Response<T>, Status> {
        let response = outcome.unwrap_or_else(|refusal| {
            tracing::debug!(code = ?refusal.code, message = %refusal.message, "grpc request refused");
            T::with_status(refusal.status())
        });
        self.0.metrics.record(rpc, started.elapsed(), response.status_code() == Code::Ok as i32);
        Ok(Response::new(response))
    }

    /// A unary RPC: admits the call (client headers, ACL), serves the admitted request with
    /// `serve` and [answers](Service::answer) the outcome, timed from the call's start.
    async fn unary<Q: crate::acl::Guarded, A: WithStatus, F: Future<Output = Result<A, Refusal>>>(
        &self,
        rpc: Rpc,
        request: Request<Q>,
        serve: impl FnOnce(CallContext, Q) -> F,
    ) -> Result<Response<A>, Status> {
        let started = Instant::now();
        let outcome = match self.0.admit(&request) {
            Ok(context) => serve(context, request.into_inner()).await,
            Err(refusal) => Err(refusal),
        };
        self.answer(rpc, started, outcome)
    }
}

type ServerStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// The answer of an RPC the reference's proxy does not serve either (the pull-consumer ones):
/// gRPC UNIMPLEMENTED, naming the RPC.
fn not_served(rpc: &str) -> Status {
    Status::unimplemented(format!("{rpc} is not served (as in Apache RocketMQ's proxy)"))
}

/// The refusal of a call from a client that has sent no Settings (or has left).
fn unknown_client() -> Refusal {
    Refusal::new(Code::UnrecognizedClientType, "cannot find client settings for this client")
}

#[tonic::async_trait]
impl MessagingService for Service {
    async fn query_route(
        &self,
        request: Request<QueryRouteRequest>,
    ) -> Result<Response<QueryRouteResponse>, Status> {
        self.unary(Rpc::QueryRoute, request, |_, request| async move { self.0.query_route(&request).await })
            .await
    }

    async fn heartbeat(
        &self,
        request: Request<HeartbeatRequest>,
    ) -> Result<Response<HeartbeatResponse>, Status> {
        self.unary(
            Rpc::Heartbeat,
            request,
            |context, request| async move { self.0.heartbeat(&context, &request) },
        )
        .await
    }

    async fn send_message(
        &self,
        request: Request<SendMessageRequest>,
    ) -> Result<Response<SendMessageResponse>, Status> {
        self.unary(Rpc::SendMessage, request, |context, request| async move {
            self.0.send_message(&context, request).await
        })
        .await
    }

    async fn query_assignment(
        &self,
        request: Request<QueryAssignmentRequest>,
    ) -> Result<Response<QueryAssignmentResponse>, Status> {
        self.unary(Rpc::QueryAssignment, request, |_, request| async move {
            self.0.query_assignment(&request).await
        })
        .await
    }

    type ReceiveMessageStream = ServerStream<ReceiveMessageResponse>;

    async fn receive_message(
        &self,
        request: Request<ReceiveMessageRequest>,
    ) -> Result<Response<Self::ReceiveMessageStream>, Status> {
        let started = Instant::now();
        let frames = match self.0.admit(&request) {
            Ok(context) => {
                let remaining = crate::consume::remaining_deadline(request.metadata());
                self.0.receive(&context, request.get_ref(), remaining).await
            }
            Err(refusal) => crate::consume::receive_frames(Err(refusal)),
        };
        let succeeded = matches!(
            frames.first().and_then(|frame| frame.content.as_ref()),
            Some(receive_message_response::Content::Status(status))
                if status.code == Code::Ok as i32 || status.code == Code::MessageNotFound as i32
        );
        self.0.metrics.record(Rpc::ReceiveMessage, started.elapsed(), succeeded);
        Ok(Response::new(Box::pin(tokio_stream::iter(frames.into_iter().map(Ok)))))
    }

    async fn ack_message(
        &self,
        request: Request<AckMessageRequest>,
    ) -> Result<Response<AckMessageResponse>, Status> {
        self.unary(Rpc::AckMessage, request, |context, request| async move {
            self.0.ack_messages(&context, &request).await
        })
        .await
    }

    async fn forward_message_to_dead_letter_queue(
        &self,
        request: Request<ForwardMessageToDeadLetterQueueRequest>,
    ) -> Result<Response<ForwardMessageToDeadLetterQueueResponse>, Status> {
        self.unary(Rpc::ForwardMessageToDeadLetterQueue, request, |context, request| async move {
            self.0.forward_to_dead_letter_queue(&context, &request).await
        })
        .await
    }

    type PullMessageStream = ServerStream<PullMessageResponse>;

    async fn pull_message(
        &self,
        _request: Request<PullMessageRequest>,
    ) -> Result<Response<Self::PullMessageStream>, Status> {
        Err(not_served("PullMessage"))
    }

    async fn update_offset(
        &self,
        _request: Request<UpdateOffsetRequest>,
    ) -> Result<Response<UpdateOffsetResponse>, Status> {
        Err(not_served("UpdateOffset"))
    }

    async fn get_offset(
        &self,
        _request: Request<GetOffsetRequest>,
    ) -> Result<Response<GetOffsetResponse>, Status> {
        Err(not_served("GetOffset"))
    }

    async fn query_offset(
        &self,
        _request: Request<QueryOffsetRequest>,
    ) -> Result<Response<QueryOffsetResponse>, Status> {
        Err(not_served("QueryOffset"))
    }

    async fn end_transaction(
        &self,
        request: Request<EndTransactionRequest>,
    ) -> Result<Response<EndTransactionResponse>, Status> {
        self.unary(Rpc::EndTransaction, request, |_, request| async move {
            self.0.end_transaction(&request).await
        })
        .await
    }

    type TelemetryStream = ServerStream<TelemetryCommand>;

    async fn telemetry(
        &self,
        request: Request<Streaming<TelemetryCommand>>,
    ) -> Result<Response<Self::TelemetryStream>, Status> {
        let (sender, receiver) = mpsc::channel(TELEMETRY_QUEUE);
        match CallContext::of(&request) {
            Ok(context) => {
                let messaging = Arc::clone(&self.0);
                // Each command is judged by ACL with the headers of this call, as it comes.
                let signature = CallSignature::of(request.metadata());
                tokio::spawn(read_telemetry(messaging, context, signature, request.into_inner(), sender));
            }
            Err(refusal) => {
                // One status, then the server completes the stream (spec §2.6).
                let _ =
                    sender.try_send(Ok(TelemetryCommand { status: Some(refusal.status()), command: None }));
            }
        }
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }

    async fn notify_client_termination(
        &self,
        request: Request<NotifyClientTerminationRequest>,
    ) -> Result<Response<NotifyClientTerminationResponse>, Status> {
        self.unary(Rpc::NotifyClientTermination, request, |context, request| async move {
            self.0.terminate(&context, &request).await
        })
        .await
    }

    async fn change_invisible_duration(
        &self,
        request: Request<ChangeInvisibleDurationRequest>,
    ) -> Result<Response<ChangeInvisibleDurationResponse>, Status> {
        self.unary(Rpc::ChangeInvisibleDuration, request, |context, request| async move {
            self.0.change_invisible_duration(&context, &request).await
        })
        .await
    }

    async fn recall_message(
        &self,
        request: Request<RecallMessageRequest>,
    ) -> Result<Response<RecallMessageResponse>, Status> {
        self.unary(Rpc::RecallMessage, request, |context, request| async move {
            self.0.recall_message(&context, &request).await
        })
        .await
    }

    async fn sync_lite_subscription(
        &self,
        _request: Request<SyncLiteSubscriptionRequest>,
    ) -> Result<Response<SyncLiteSubscriptionResponse>, Status> {
        Err(not_served("SyncLiteSubscription"))
    }
}

/// Reads one client's Telemetry stream until it ends: each Settings is stored and answered on
/// the stream; the other client commands answer server requests this endpoint does not send
/// yet, and are logged.
async fn read_telemetry(
    messaging: Arc<Messaging>,
    context: CallContext,
    signature: CallSignature,
    mut inbound: Streaming<TelemetryCommand>,
    sender: mpsc::Sender<Result<TelemetryCommand, Status>>,
) {
    while let Some(command) = inbound.next().await {
        let command = match command {
            Ok(command) => command,
            Err(error) => {
                tracing::debug!(client = %context.client_id, %error, "telemetry stream ended");
                return;
            }
        };
        if let Err(refusal) = messaging.judge(&context, &signature, &command) {
            // One status, then the server completes the stream (spec §2.6).
            let _ = sender.send(Ok(TelemetryCommand { status: Some(refusal.status()), command: None })).await;
            return;
        }
        match command.command {
            Some(telemetry_command::Command::Settings(settings)) => {
                let reply = match messaging.take_settings(&context, &settings, sender.clone()).await {
                    Ok(answer) => Ok(TelemetryCommand {
                        status: Some(ok()),
                        command: Some(telemetry_command::Command::Settings(answer)),
                    }),
                    Err(refusal) => Err(Status::invalid_argument(refusal.message)),
                };
                let failed = reply.is_err();
                if sender.send(reply).await.is_err() || failed {
                    return;
                }
            }
            Some(other) => {
                tracing::debug!(client = %context.client_id, ?other, "telemetry command not awaited")
            }
            None => tracing::debug!(client = %context.client_id, "empty telemetry command"),
        }
    }
}

impl Messaging {
    /// Stores a client's Settings and computes the answer (spec §4.6, §4.7); a producer is
    /// announced to the brokers (cluster mode) so their transaction checks come here.
    async fn take_settings(
        &self,
        context: &CallContext,
        settings: &Settings,
        sender: clients::CommandSender,
    ) -> Result<Settings, Refusal> {
        match &settings.pub_sub {
            Some(settings::PubSub::Publishing(publishing)) => {
                for topic in &publishing.topics {
                    names::topic(Some(topic))?;
                }
            }
            Some(settings::PubSub::Subscription(subscription)) => {
                names::group(subscription.group.as_ref())?;
            }
            None => {}
        }
        self.clients.store_settings(&context.client_id, settings, sender, now_ms()).map_err(|refused| {
            match refused {
                SettingsRefused::NoPubSub => {
                    Refusal::new(Code::BadRequest, "there is no publishing or subscription data in settings")
                }
                SettingsRefused::TooManyClients => Refusal::new(Code::TooManyRequests, "too many clients"),
            }
        })?;
        let stored = self.clients.touch(&context.client_id, now_ms()).unwrap_or_else(|| settings.clone());
        self.backend.client_settled(&context.client_id, &stored).await;
        let group = match &stored.pub_sub {
            Some(settings::PubSub::Subscription(subscription)) => match &subscription.group {
                Some(group) => {
                    let topic = subscription
                        .subscriptions
                        .iter()
                        .find_map(|entry| entry.topic.as_ref().map(|topic| topic.name.as_str()));
                    self.backend.group_config(&group.name, topic).await
                }
                None => None,
            },
            _ => None,
        };
        Ok(clients::answer(&stored, self.max_body_bytes(), group.as_ref()))
    }

    /// Heartbeat: the client must have sent Settings; a consumer names a legal group.
    fn heartbeat(
        &self,
        context: &CallContext,
        request: &HeartbeatRequest,
    ) -> Result<HeartbeatResponse, Refusal> {
        let settings = self.clients.touch(&context.client_id, now_ms()).ok_or_else(unknown_client)?;
        match clients::client_type(&settings) {
            ClientType::Producer => {}
            ClientType::PushConsumer | ClientType::SimpleConsumer => {
                names::group(request.group.as_ref())?;
            }
            other => {
                return Err(Refusal::new(Code::UnrecognizedClientType, other.as_str_name()));
            }
        }
        Ok(HeartbeatResponse { status: Some(ok()) })
    }

    /// NotifyClientTermination: the client leaves; the messages renewed for it become visible
    /// again soon.
    async fn terminate(
        &self,
        context: &CallContext,
        request: &NotifyClientTerminationRequest,
    ) -> Result<NotifyClientTerminationResponse, Refusal> {
        let settings = self.clients.remove(&context.client_id).ok_or_else(unknown_client)?;
        if matches!(clients::client_type(&settings), ClientType::PushConsumer | ClientType::SimpleConsumer) {
            names::group(request.group.as_ref())?;
        }
        self.release_client(&context.client_id).await;
        Ok(NotifyClientTerminationResponse { status: Some(ok()) })
    }
}
