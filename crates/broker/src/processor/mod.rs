//! The remoting front: request handlers, one module per area, each a thin adapter that
//! decodes the header and body, calls [`crate::core`] and encodes the answer (response code,
//! remark, header fields and body as Java's broker gives them). Each module's `register` adds
//! its request codes to a router; the fast channel (`listenPort - 2`) gets everything but the
//! long-polling pulls, as in Java.

/// A routing table for handlers that compute an [`Outcome`](apogee_remoting::reply::Outcome):
/// the response, or a failure answered with its code and remark. After the router and the
/// state come the names the entries use for the state, the connection and the request; each
/// entry is a [`request_code`](apogee_remoting::request_code) name and the expression
/// computing its outcome (awaiting what it must), registered with [`route`]:
///
/// ```ignore
/// routes!(router, state, |state, connection, request| {
///     DELETE_TOPIC_IN_BROKER => topics::delete_topic(&state, &request).await;
/// });
/// ```
macro_rules! routes {
    ($router:expr, $state:expr, |$s:ident, $c:ident, $r:ident| {
        $($code:ident => $outcome:expr;)*
    }) => {
        $(
            $crate::processor::route(
                $router,
                apogee_remoting::request_code::$code,
                $state,
                |$s: std::sync::Arc<$crate::BrokerState>,
                 $c: apogee_remoting::connection::Connection,
                 $r: apogee_remoting::RemotingCommand| async move {
                    let _ = &$c;
                    let outcome = $outcome;
                    Some(apogee_remoting::reply::finish(&$r, outcome))
                },
            );
        )*
    };
}

pub mod admin;
pub mod consumer;
pub mod pop;
pub mod pull;
pub mod query;
pub mod recall;
pub mod send;
pub mod send_back;
pub mod transaction;

use std::future::Future;
use std::sync::Arc;

use apogee_remoting::connection::Connection;
use apogee_remoting::reply::Failure;
use apogee_remoting::router::Router;
use apogee_remoting::RemotingCommand;

use crate::core::caller::Caller;
use crate::BrokerState;

/// Adds every broker request code to `router`.
pub fn register(router: &mut Router, state: &Arc<BrokerState>, fast_channel: bool) {
    send::register(router, state);
    send_back::register(router, state);
    transaction::register(router, state);
    recall::register(router, state);
    consumer::register(router, state);
    query::register(router, state);
    admin::register(router, state);
    if !fast_channel {
        pull::register(router, state);
        pop::register(router, state);
    }
}

/// Registers `handler` for `code`, giving it the shared state.
pub(crate) fn route<F, Fut>(router: &mut Router, code: i32, state: &Arc<BrokerState>, handler: F)
where
    F: Fn(Arc<BrokerState>, Connection, RemotingCommand) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Option<RemotingCommand>> + Send + 'static,
{
    let state = Arc::clone(state);
    router.register(code, move |connection, request| handler(Arc::clone(&state), connection, request));
}

/// The core's view of the peer behind a remoting request.
pub(crate) fn caller(connection: &Connection, request: &RemotingCommand) -> Caller {
    Caller { remote_addr: connection.remote_addr(), session_id: connection.id(), version: request.version }
}

impl From<crate::core::Error> for Failure {
    fn from(error: crate::core::Error) -> Self {
        Failure::new(error.code, error.remark)
    }
}
