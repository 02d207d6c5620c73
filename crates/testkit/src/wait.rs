//! Bounded waiting for something asynchronous (dispatch, registration, a rebalance).

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// Pause between two checks.
const POLL_PAUSE: Duration = Duration::from_millis(20);

/// How long [`wait_for`] waits: ample for a registration, a dispatch or a rebalance on a loaded
/// machine.
pub const WAIT_LIMIT: Duration = Duration::from_secs(30);

/// [`eventually`] with the usual limit, [`WAIT_LIMIT`].
pub async fn wait_for<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    eventually(what, WAIT_LIMIT, check).await
}

/// Calls `check` until it returns `Some`, for at most `limit`; fails the test naming `what`
/// after that.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(Instant::now() < deadline, "timed out after {limit:?} waiting for {what}");
        tokio::time::sleep(POLL_PAUSE).await;
    }
}
