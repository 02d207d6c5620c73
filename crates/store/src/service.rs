//! Background threads: a named thread with a stop signal it can sleep on.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

/// A stop signal periodic threads wait on, so shutdown does not wait out their sleep.
#[derive(Debug, Default)]
pub struct StopSignal {
    stopped: Mutex<bool>,
    wake: Condvar,
}

impl StopSignal {
    /// Asks every waiter to stop.
    pub fn stop(&self) {
        *self.stopped.lock() = true;
        self.wake.notify_all();
    }

    /// True once stopped.
    pub fn is_stopped(&self) -> bool {
        *self.stopped.lock()
    }

    /// Sleeps up to `period`; returns false when stopped.
    pub fn sleep(&self, period: Duration) -> bool {
        let mut stopped = self.stopped.lock();
        if !*stopped {
            self.wake.wait_for(&mut stopped, period);
        }
        !*stopped
    }
}

/// Starts a named thread; a failure to spawn is an I/O error, as the OS reports it.
pub fn spawn(name: &str, body: impl FnOnce() + Send + 'static) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new().name(name.to_owned()).spawn(body)
}

/// Runs `tick` every `period` until `stop` is signalled.
pub fn periodic(stop: Arc<StopSignal>, period: Duration, mut tick: impl FnMut()) {
    while stop.sleep(period) {
        tick();
    }
}
