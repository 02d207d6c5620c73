//! `Router`: which handler serves which request code, and what to do when a connection ends.
//!
//! One router is given to a server (handlers for what clients send) or to a client (handlers
//! for what a broker sends back over the client's own connection). The transport looks the
//! code up for every inbound request; codes without a handler are answered
//! REQUEST_CODE_NOT_SUPPORTED by the transport itself.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::command::RemotingCommand;
use crate::connection::Connection;
use crate::responder::Responder;

/// What a handler returns: the response, or `None` to send nothing (the request was oneway,
/// or the handler answers later by other means). Boxed so handlers of any type fit one table.
pub type HandlerFuture = Pin<Box<dyn Future<Output = Option<RemotingCommand>> + Send>>;

/// Serves one request code. The transport runs every call in its own task, so a handler may
/// hold a request as long as it likes (long polling) without delaying other requests on the
/// same connection. The transport fills the returned response's `opaque`, response flag and
/// serialization type from the request, so a handler need only set code, header and body.
pub trait Handler: Send + Sync + 'static {
    /// Handles `request`, received on `connection` (which can also be used to send requests
    /// back to the peer).
    fn call(&self, connection: Connection, request: RemotingCommand) -> HandlerFuture;
}

impl<F, Fut> Handler for F
where
    F: Fn(Connection, RemotingCommand) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Option<RemotingCommand>> + Send + 'static,
{
    fn call(&self, connection: Connection, request: RemotingCommand) -> HandlerFuture {
        Box::pin(self(connection, request))
    }
}

/// Serves the common case of one request code without a task of its own: called on the
/// connection's reader as the request is decoded, it must not block. It answers through the
/// [`Responder`], at once or later from any thread (a store thread completing a send), or it
/// declines, and the request goes to the code's [`Handler`] as usual. Spawning a task,
/// a one-shot channel and a task wake per request is what this saves on the hottest paths.
pub trait FastPath: Send + Sync + 'static {
    /// Serves `request` or gives it back.
    fn try_serve(
        &self,
        connection: &Connection,
        request: RemotingCommand,
        responder: Responder,
    ) -> Result<(), Box<Declined>>;

    /// Called on a connection's reader after it served one or more requests here and before
    /// it waits for more bytes: work gathered from one socket read can be done together
    /// (the send path appends a read's worth of messages in one round). The default does
    /// nothing.
    fn end_of_batch(&self) {}
}

/// A request a [`FastPath`] leaves to the code's [`Handler`], with its responder.
#[derive(Debug)]
pub struct Declined {
    /// The request, unchanged.
    pub request: RemotingCommand,
    /// Its responder, unused.
    pub responder: Responder,
}

/// How a served request ended, for a [`RequestObserver`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestOutcome {
    /// Answered with this response code.
    Answered(i32),
    /// A oneway request: nothing is sent back.
    Oneway,
}

/// Told of every request a server answers, with the time from its dispatch to its response
/// being queued for writing: the input of `rocketmq_rpc_latency`. Called on the answering
/// thread (an append round, a writer task), so it must be quick and never block.
pub trait RequestObserver: Send + Sync + 'static {
    /// Request `request_code` ended with `outcome` after `elapsed`.
    fn observe(&self, request_code: i32, outcome: RequestOutcome, elapsed: Duration);
}

/// Decides, before a request reaches its fast path or handler, whether the peer may make it
/// at all: the broker's ACL. Runs on the connection's reader for every request whose code has
/// a handler, so it must be quick and never block; a router without one pays nothing.
pub trait RequestGuard: Send + Sync + 'static {
    /// `None` lets `request`, received on `connection`, through; otherwise the response that
    /// refuses it (its code and remark; the transport dresses it as the answer).
    fn refuse(&self, connection: &Connection, request: &RemotingCommand) -> Option<RemotingCommand>;
}

/// A hook run once when a connection ends, whatever the reason; lets the owner forget
/// per-connection state (registered clients, brokers, held long polls).
type DisconnectHook = Arc<dyn Fn(&Connection) + Send + Sync + 'static>;

/// The dispatch table of a server or client: request code → handler, plus disconnect hooks.
#[derive(Default, Clone)]
pub struct Router {
    handlers: HashMap<i32, Arc<dyn Handler>>,
    fast_paths: HashMap<i32, Arc<dyn FastPath>>,
    /// Each registered fast path once, for [`Router::end_of_batch`].
    distinct_fast_paths: Vec<Arc<dyn FastPath>>,
    disconnect_hooks: Vec<DisconnectHook>,
    observer: Option<Arc<dyn RequestObserver>>,
    guard: Option<Arc<dyn RequestGuard>>,
}

impl Router {
    /// An empty router: every request is answered REQUEST_CODE_NOT_SUPPORTED.
    pub fn new() -> Self {
        Self::default()
    }

    /// Serves requests with `code` by `handler`, replacing any handler registered before.
    pub fn register(&mut self, code: i32, handler: impl Handler) {
        self.handlers.insert(code, Arc::new(handler));
    }

    /// Tries `fast_path` first for requests with any of `codes`; those it declines go to the
    /// handler registered for the code, which must exist.
    pub fn register_fast_path(&mut self, codes: &[i32], fast_path: impl FastPath) {
        let fast_path: Arc<dyn FastPath> = Arc::new(fast_path);
        for &code in codes {
            self.fast_paths.insert(code, Arc::clone(&fast_path));
        }
        self.distinct_fast_paths.push(fast_path);
    }

    /// Runs `hook` when any connection served by this router ends (peer closed, idle, frame
    /// error, shutdown). Hooks run in registration order, on the connection's reader task.
    pub fn on_disconnect(&mut self, hook: impl Fn(&Connection) + Send + Sync + 'static) {
        self.disconnect_hooks.push(Arc::new(hook));
    }

    /// Times every request this router's server answers (metrics); without one nothing is
    /// timed.
    pub fn observe_requests(&mut self, observer: Arc<dyn RequestObserver>) {
        self.observer = Some(observer);
    }

    /// Checks every request with `guard` before it is served (access control); without one
    /// every request is served.
    pub fn guard_requests(&mut self, guard: Arc<dyn RequestGuard>) {
        self.guard = Some(guard);
    }

    /// The request guard, if any.
    pub(crate) fn guard(&self) -> Option<&Arc<dyn RequestGuard>> {
        self.guard.as_ref()
    }

    /// The request observer, if any.
    pub(crate) fn observer(&self) -> Option<&Arc<dyn RequestObserver>> {
        self.observer.as_ref()
    }

    /// The handler for `code`, if one is registered.
    pub(crate) fn handler(&self, code: i32) -> Option<Arc<dyn Handler>> {
        self.handlers.get(&code).cloned()
    }

    /// The fast path for `code`, if one is registered.
    pub(crate) fn fast_path(&self, code: i32) -> Option<&Arc<dyn FastPath>> {
        self.fast_paths.get(&code)
    }

    /// Ends a reader's batch on every fast path (see [`FastPath::end_of_batch`]).
    pub(crate) fn end_of_batch(&self) {
        for fast_path in &self.distinct_fast_paths {
            fast_path.end_of_batch();
        }
    }

    /// The disconnect hooks, in registration order.
    pub(crate) fn disconnect_hooks(&self) -> &[DisconnectHook] {
        &self.disconnect_hooks
    }
}

impl fmt::Debug for Router {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut codes: Vec<i32> = self.handlers.keys().copied().collect();
        codes.sort_unstable();
        f.debug_struct("Router")
            .field("codes", &codes)
            .field("fast_paths", &self.fast_paths.len())
            .field("disconnect_hooks", &self.disconnect_hooks.len())
            .field("guarded", &self.guard.is_some())
            .finish()
    }
}
