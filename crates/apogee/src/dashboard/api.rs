//! The API's envelope and the bounds every call runs under.
//!
//! rocketmq-dashboard answers every call with HTTP 200 and `{"status":0,"data":…}` or
//! `{"status":-1,"errMsg":"…"}`; this does the same, so the page shows a failure (what was
//! asked, of which broker or NameServer, and its answer) where the user looks, and the
//! browser does not count it as a failed load.

use std::future::Future;
use std::sync::Arc;

use anyhow::{anyhow, bail, Result};
use axum::Json;
use serde::Serialize;
use serde_json::{json, Value};

use super::{Ctx, CALL_TIMEOUT};

/// Longest text accepted for a key, an id or a group (RocketMQ's group names stop at 255).
const MAX_PARAM_CHARS: usize = 255;

/// The answer to one API call.
pub(super) type Answer = Json<Value>;

/// Runs one API call under the dashboard's bounds (a free call slot, [`CALL_TIMEOUT`]) and
/// wraps its outcome in the envelope; `what` names the call in errors.
pub(super) async fn answer<T: Serialize>(
    ctx: &Arc<Ctx>,
    what: &str,
    call: impl Future<Output = Result<T>>,
) -> Answer {
    let bounded = async {
        let _slot = ctx.calls.acquire().await.map_err(|_| anyhow!("the dashboard is stopping"))?;
        call.await
    };
    let outcome = match tokio::time::timeout(CALL_TIMEOUT, bounded).await {
        Ok(outcome) => outcome,
        Err(_) => Err(anyhow!("{what} did not finish within {} s", CALL_TIMEOUT.as_secs())),
    };
    match outcome.and_then(|data| serde_json::to_value(data).map_err(anyhow::Error::from)) {
        Ok(data) => Json(json!({ "status": 0, "data": data })),
        Err(error) => {
            tracing::debug!(what, error = format!("{error:#}"), "dashboard call failed");
            Json(json!({ "status": -1, "errMsg": format!("{what}: {error:#}") }))
        }
    }
}

/// A query parameter that must be present and non-blank, trimmed, at most
/// [`MAX_PARAM_CHARS`] characters.
pub(super) fn required<'a>(value: &'a Option<String>, name: &str) -> Result<&'a str> {
    let Some(value) = value.as_deref().map(str::trim).filter(|value| !value.is_empty()) else {
        bail!("{name} is required");
    };
    if value.chars().count() > MAX_PARAM_CHARS {
        bail!("{name} is longer than {MAX_PARAM_CHARS} characters");
    }
    Ok(value)
}

/// An optional time parameter in epoch milliseconds.
pub(super) fn time_param(value: &Option<String>, name: &str) -> Result<Option<i64>> {
    match value.as_deref().map(str::trim).filter(|value| !value.is_empty()) {
        None => Ok(None),
        Some(text) => {
            text.parse().map(Some).map_err(|_| anyhow!("{name} {text:?} is not a time in epoch milliseconds"))
        }
    }
}

/// A required topic name, checked as brokers check them.
pub(super) fn topic_param(value: &Option<String>) -> Result<&str> {
    let name = required(value, "topic")?;
    apogee_common::topic::validate_topic_name(name).map_err(|error| anyhow!("topic {name:?}: {error}"))?;
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_trimmed_and_bounded() {
        assert_eq!(required(&Some(" g ".to_owned()), "group").unwrap(), "g");
        assert!(required(&None, "group").is_err());
        assert!(required(&Some("  ".to_owned()), "group").is_err());
        assert!(required(&Some("x".repeat(MAX_PARAM_CHARS + 1)), "group").is_err());
        assert_eq!(topic_param(&Some("T1".to_owned())).unwrap(), "T1");
        assert!(topic_param(&Some("has space".to_owned())).is_err());
        assert_eq!(time_param(&Some("1700000000000".to_owned()), "begin").unwrap(), Some(1_700_000_000_000));
        assert_eq!(time_param(&None, "begin").unwrap(), None);
        assert!(time_param(&Some("yesterday".to_owned()), "begin").is_err());
    }
}
