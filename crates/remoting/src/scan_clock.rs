//! [`ScanClock`]: when a server's background scan runs its next round.

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::{Instant, Interval, MissedTickBehavior};

/// The schedule of a server's background scan (the NameServer's broker expiry, the
/// controller's liveness and election scan), kept in one place so that every scan starts,
/// paces and stops alike: the first round one period after start, the next ones a period
/// apart (a late round delays the following ones instead of bunching them up), and none
/// once the server's stop signal changes or its sender is gone.
#[derive(Debug)]
pub struct ScanClock {
    ticker: Interval,
    stopped: watch::Receiver<bool>,
}

impl ScanClock {
    /// A clock ticking every `period` from now, until `stopped` changes.
    pub fn new(period: Duration, stopped: watch::Receiver<bool>) -> Self {
        let mut ticker = tokio::time::interval_at(Instant::now() + period, period);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Self { ticker, stopped }
    }

    /// Waits for the next round: true when it is due, false once the server is stopping.
    pub async fn next_round(&mut self) -> bool {
        tokio::select! {
            _ = self.ticker.tick() => true,
            _ = self.stopped.changed() => false,
        }
    }

    /// Whether the server is stopping, for a round with several slow steps to end early.
    pub fn is_stopping(&self) -> bool {
        *self.stopped.borrow()
    }
}
