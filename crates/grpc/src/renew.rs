//! Receipt-handle renewal (spec §6.3): a push consumer receives with `auto_renew`, gets the
//! default invisible time, and the endpoint keeps its messages invisible for as long as the
//! consumer works on them. Every `renewSchedulePeriodMillis` each handle visible again within
//! `renewAheadTimeMillis` is renewed with a growing invisible time (1 m, 3 m, 5 m, 10 m, 30 m,
//! then 1 h). Renewal of a message stops when the consumer acks, nacks or dead-letters it (the
//! latest handle is then what the broker is told about, since the client still holds the
//! first one), after `maxRenewRetryTimes` failures, after `renewMaxTimeMillis` since its pop,
//! or when its client leaves (its handles are then left visible again after
//! `invisibleTimeMillisWhenClear`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use apogee_common::time::now_ms;
use parking_lot::Mutex;
use tokio::sync::watch;

use crate::backend::Backend;
use crate::consume::{AckTarget, Handle};
use crate::Messaging;

/// Invisible times of successive renewals, in ms; the last repeats.
pub const RENEW_STEPS_MS: [i64; 6] = [60_000, 180_000, 300_000, 600_000, 1_800_000, 3_600_000];
/// Handles renewed at once; beyond, a receive's messages keep only their first invisible time.
pub const MAX_RENEWED_HANDLES: usize = 200_000;

/// What identifies a delivered message for its client: the handle's broker, queue and offset
/// (behind a proxy, two broker groups hold the same queue ids and offsets of a topic).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RenewKey {
    client_id: String,
    group: String,
    broker_name: String,
    queue_id: i32,
    queue_offset: i64,
    real_topic: String,
}

impl RenewKey {
    /// The key of `handle`, delivered to `client_id` of `group` from `topic`.
    pub fn of(client_id: &str, group: &str, topic: &str, handle: &Handle) -> RenewKey {
        RenewKey {
            client_id: client_id.to_owned(),
            group: group.to_owned(),
            broker_name: handle.extra.broker_name.clone(),
            queue_id: handle.extra.queue_id,
            queue_offset: handle.extra.queue_offset.unwrap_or(-1),
            real_topic: handle.extra.real_topic(topic, group),
        }
    }
}

/// One message being renewed.
#[derive(Debug, Clone)]
struct Renewal {
    /// The consumed topic (the handle may name its retry topic).
    topic: String,
    /// The latest handle.
    handle: Handle,
    /// When it was first popped, epoch ms.
    first_pop_ms: i64,
    renewals: usize,
    failures: u32,
}

/// The handles being renewed.
#[derive(Debug, Default)]
pub struct Renewals {
    by_key: Mutex<HashMap<RenewKey, Renewal>>,
}

impl Renewals {
    /// Starts renewing `handle`; false when [`MAX_RENEWED_HANDLES`] are renewed already.
    pub fn register(&self, key: RenewKey, topic: &str, handle: Handle) -> bool {
        let mut by_key = self.by_key.lock();
        if by_key.len() >= MAX_RENEWED_HANDLES && !by_key.contains_key(&key) {
            return false;
        }
        let first_pop_ms = handle.extra.pop_time_ms;
        by_key
            .insert(key, Renewal { topic: topic.to_owned(), handle, first_pop_ms, renewals: 0, failures: 0 });
        true
    }

    /// Stops renewing the message of `key`; its latest handle, when it was renewed.
    pub fn take(&self, key: &RenewKey) -> Option<Handle> {
        self.by_key.lock().remove(key).map(|renewal| renewal.handle)
    }

    /// Stops renewing every message of `client_id`; their keys and latest handles.
    fn take_client(&self, client_id: &str) -> Vec<(RenewKey, Renewal)> {
        let mut by_key = self.by_key.lock();
        let keys: Vec<RenewKey> = by_key.keys().filter(|key| key.client_id == client_id).cloned().collect();
        keys.into_iter().filter_map(|key| by_key.remove(&key).map(|renewal| (key, renewal))).collect()
    }

    /// The handles visible again before `due_before_ms`.
    fn due(&self, due_before_ms: i64) -> Vec<(RenewKey, Renewal)> {
        let by_key = self.by_key.lock();
        by_key
            .iter()
            .filter(|(_, renewal)| {
                renewal.handle.extra.pop_time_ms.saturating_add(renewal.handle.extra.invisible_ms)
                    <= due_before_ms
            })
            .map(|(key, renewal)| (key.clone(), renewal.clone()))
            .collect()
    }

    /// How many handles are renewed.
    pub fn len(&self) -> usize {
        self.by_key.lock().len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Messaging {
    /// One renewal round: every handle due soon gets its next invisible time.
    pub(crate) async fn renew_due(&self) {
        let config = &self.settings;
        let now = now_ms();
        let ahead = i64::try_from(config.renew_ahead_time_ms).unwrap_or(i64::MAX);
        let max_hold = i64::try_from(config.renew_max_time_ms).unwrap_or(i64::MAX);
        for (key, renewal) in self.renewals.due(now.saturating_add(ahead)) {
            if now.saturating_sub(renewal.first_pop_ms) >= max_hold {
                // Held too long: left to become visible again when its time passes.
                tracing::info!(group = %key.group, topic = %renewal.topic, "receipt handle held too long; renewal stops");
                self.renewals.take(&key);
                continue;
            }
            let invisible_ms = RENEW_STEPS_MS[renewal.renewals.min(RENEW_STEPS_MS.len() - 1)];
            match self.change_handle(&key.group, &renewal.topic, &renewal.handle, invisible_ms).await {
                Ok(renewed) => {
                    let mut by_key = self.renewals.by_key.lock();
                    if let Some(current) = by_key.get_mut(&key) {
                        current.handle = renewed;
                        current.renewals += 1;
                        current.failures = 0;
                    }
                }
                Err(remark) => {
                    let mut by_key = self.renewals.by_key.lock();
                    let give_up = by_key.get_mut(&key).is_some_and(|current| {
                        current.failures += 1;
                        current.failures >= config.max_renew_retry_times
                    });
                    if give_up {
                        by_key.remove(&key);
                        tracing::warn!(group = %key.group, %remark, "receipt handle renewal given up");
                    }
                }
            }
        }
    }

    /// A client left: its renewed messages become visible again soon, for other consumers,
    /// and what the backend announced for it is withdrawn.
    pub(crate) async fn release_client(&self, client_id: &str) {
        self.backend.client_left(client_id).await;
        let invisible_ms = i64::try_from(self.settings.invisible_time_ms_when_clear).unwrap_or(1_000);
        for (key, renewal) in self.renewals.take_client(client_id) {
            if let Err(remark) =
                self.change_handle(&key.group, &renewal.topic, &renewal.handle, invisible_ms).await
            {
                tracing::debug!(client = client_id, %remark, "a departed client's message not released early");
            }
        }
    }

    /// Changes the invisible time of the message of `handle`; the new handle.
    pub(crate) async fn change_handle(
        &self,
        group: &str,
        topic: &str,
        handle: &Handle,
        invisible_ms: i64,
    ) -> Result<Handle, String> {
        let target = AckTarget::of(handle, topic, group);
        let changed = self
            .backend
            .change_invisible(group, &target, invisible_ms)
            .await
            .map_err(|refusal| refusal.message)?;
        Ok(target.renewed(handle, changed))
    }
}

/// Renews due handles every `renewSchedulePeriodMillis` until `stopped`.
pub async fn run(messaging: Arc<Messaging>, mut stopped: watch::Receiver<bool>) {
    let period = Duration::from_millis(messaging.settings.renew_schedule_period_ms.max(10));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = stopped.wait_for(|stop| *stop) => return,
        }
        if !messaging.renewals.is_empty() {
            messaging.renew_due().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_queue_and_offset_on_two_brokers_are_two_messages() {
        let on_a = Handle::parse("5 1000 60000 0 0 broker-a 1 5 100").expect("a handle");
        let on_b = Handle::parse("5 1000 60000 0 0 broker-b 1 5 900").expect("a handle");
        let key_a = RenewKey::of("client", "group", "T", &on_a);
        let key_b = RenewKey::of("client", "group", "T", &on_b);
        assert_ne!(key_a, key_b);
        let renewals = Renewals::default();
        assert!(renewals.register(key_a.clone(), "T", on_a.clone()));
        assert!(renewals.register(key_b.clone(), "T", on_b.clone()));
        assert_eq!(renewals.take(&key_a), Some(on_a));
        assert_eq!(renewals.take(&key_b), Some(on_b));
    }
}
