//! The broker's calls back into clients that another wire front serves. Remoting clients are
//! reached through their connection in the client registry; a client of the gRPC front has no
//! remoting connection, so that front attaches itself here and the core asks it.

use std::fmt;
use std::sync::{Arc, OnceLock};

use apogee_common::message::MessageExt;

/// What a front does for the core with the producers it serves.
pub trait ProducerCallbacks: Send + Sync + fmt::Debug {
    /// Asks one live producer of `group` about the half message `half` (under its real topic
    /// and queue, its unique key naming the transaction). False when the front has no live
    /// producer of the group.
    fn check_transaction(&self, group: &str, half: &MessageExt) -> bool;
}

/// The fronts attached to this broker.
#[derive(Debug, Default)]
pub struct Fronts {
    producers: OnceLock<Arc<dyn ProducerCallbacks>>,
}

impl Fronts {
    /// Attaches the front that serves producers without a remoting connection; false when one
    /// is attached already (the first stays).
    pub fn attach_producers(&self, callbacks: Arc<dyn ProducerCallbacks>) -> bool {
        self.producers.set(callbacks).is_ok()
    }

    /// The attached producer front, if any.
    pub fn producers(&self) -> Option<&Arc<dyn ProducerCallbacks>> {
        self.producers.get()
    }
}
