//! (stub, to be written)

use std::sync::Arc;

use apogee_remoting::router::Router;

use crate::BrokerState;

/// Adds this module's request codes to `router`.
pub fn register(_router: &mut Router, _state: &Arc<BrokerState>) {}
