//! The gRPC clients the endpoint knows (spec §4.6, §4.7, §5.3, §5.4): each client's Settings
//! (sent on its Telemetry stream, kept as the reference keeps them) and the stream the server
//! writes commands to. Heartbeats and terminations are checked against it.

use std::collections::HashMap;
use std::time::Duration;

use apogee_remoting::body::{GroupRetryPolicyType, SubscriptionGroupConfig};
use parking_lot::Mutex;
use tokio::sync::mpsc;

use crate::pb::{
    retry_policy, settings, ClientType, CustomizedBackoff, ExponentialBackoff, Metric, RetryPolicy, Settings,
    Subscription, TelemetryCommand,
};

/// Clients known at once; a Settings from one more is refused until others leave or expire.
pub const MAX_CLIENTS: usize = 100_000;
/// A client heard from neither by heartbeat nor by Settings for this long is forgotten
/// (`channelExpiredTimeout`).
pub const CLIENT_EXPIRY_MS: i64 = 120_000;
/// Producer retries the Settings answer grants (`grpcClientProducerMaxAttempts`).
const PRODUCER_MAX_ATTEMPTS: i32 = 3;
/// Producer backoff: first delay, longest delay and factor (`grpcClientProducerBackoff*`).
const PRODUCER_BACKOFF: (Duration, Duration, f32) =
    (Duration::from_millis(10), Duration::from_millis(1_000), 2.0);
/// Messages a consumer receives per call (`grpcClientConsumerLongPollingBatchSize`).
const CONSUMER_BATCH_SIZE: i32 = 32;
/// Longest long poll of a consumer (`grpcClientConsumerMaxLongPollingTimeoutMillis`).
pub const CONSUMER_LONG_POLLING: Duration = Duration::from_secs(20);
/// Where a client's server-originated commands are written.
pub type CommandSender = mpsc::Sender<Result<TelemetryCommand, tonic::Status>>;

/// One client.
#[derive(Debug)]
struct Client {
    /// The stored copy of its Settings.
    settings: Settings,
    /// Its latest Telemetry stream.
    commands: Option<CommandSender>,
    /// When it was last heard from, in ms.
    last_seen_ms: i64,
}

/// Every known client, by client id.
#[derive(Debug, Default)]
pub struct Clients {
    by_id: Mutex<HashMap<String, Client>>,
}

/// Why Settings were not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettingsRefused {
    /// Neither publishing nor subscription.
    NoPubSub,
    /// [`MAX_CLIENTS`] reached.
    TooManyClients,
}

impl Clients {
    /// Stores `received` for `client_id` (a consumer's over the default consumer settings),
    /// with `commands` as its command stream.
    pub fn store_settings(
        &self,
        client_id: &str,
        received: &Settings,
        commands: CommandSender,
        now_ms: i64,
    ) -> Result<(), SettingsRefused> {
        let stored = match &received.pub_sub {
            Some(settings::PubSub::Publishing(_)) => received.clone(),
            Some(settings::PubSub::Subscription(_)) => overlay_consumer_defaults(received),
            None => return Err(SettingsRefused::NoPubSub),
        };
        let mut by_id = self.by_id.lock();
        if !by_id.contains_key(client_id) && by_id.len() >= MAX_CLIENTS {
            return Err(SettingsRefused::TooManyClients);
        }
        by_id.insert(
            client_id.to_owned(),
            Client { settings: stored, commands: Some(commands), last_seen_ms: now_ms },
        );
        Ok(())
    }

    /// The stored Settings of `client_id`, marking it alive.
    pub fn touch(&self, client_id: &str, now_ms: i64) -> Option<Settings> {
        let mut by_id = self.by_id.lock();
        let client = by_id.get_mut(client_id)?;
        client.last_seen_ms = now_ms;
        Some(client.settings.clone())
    }

    /// Forgets `client_id`; its stored Settings, if it had any.
    pub fn remove(&self, client_id: &str) -> Option<Settings> {
        self.by_id.lock().remove(client_id).map(|client| client.settings)
    }

    /// Producers of `topic` with an open command stream (where transaction checks go).
    pub fn producers_of(&self, topic: &str) -> Vec<(String, CommandSender)> {
        let by_id = self.by_id.lock();
        by_id
            .iter()
            .filter(|(_, client)| match &client.settings.pub_sub {
                Some(settings::PubSub::Publishing(publishing)) => {
                    publishing.topics.iter().any(|resource| resource.name == topic)
                }
                _ => false,
            })
            .filter_map(|(id, client)| {
                let sender = client.commands.clone().filter(|sender| !sender.is_closed())?;
                Some((id.clone(), sender))
            })
            .collect()
    }

    /// Forgets clients silent for [`CLIENT_EXPIRY_MS`]; their ids.
    pub fn expire(&self, now_ms: i64) -> Vec<String> {
        let mut by_id = self.by_id.lock();
        let expired: Vec<String> = by_id
            .iter()
            .filter(|(_, client)| now_ms - client.last_seen_ms >= CLIENT_EXPIRY_MS)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &expired {
            by_id.remove(id);
        }
        expired
    }
}

/// The Settings the server answers with (spec §4.7), computed from the stored copy.
pub fn answer(stored: &Settings, max_body_bytes: usize, group: Option<&SubscriptionGroupConfig>) -> Settings {
    let mut answer = stored.clone();
    answer.metric = Some(Metric { on: false, endpoints: None });
    match &mut answer.pub_sub {
        Some(settings::PubSub::Publishing(publishing)) => {
            publishing.validate_message_type = true;
            publishing.max_body_size = i32::try_from(max_body_bytes).unwrap_or(i32::MAX);
            let (initial, max, multiplier) = PRODUCER_BACKOFF;
            answer.backoff_policy = Some(RetryPolicy {
                max_attempts: PRODUCER_MAX_ATTEMPTS,
                strategy: Some(retry_policy::Strategy::ExponentialBackoff(ExponentialBackoff {
                    initial: Some(duration(initial)),
                    max: Some(duration(max)),
                    multiplier,
                })),
            });
        }
        Some(settings::PubSub::Subscription(subscription)) => {
            if let Some(group) = group {
                subscription.receive_batch_size = Some(CONSUMER_BATCH_SIZE);
                subscription.long_polling_timeout = Some(duration(CONSUMER_LONG_POLLING));
                subscription.fifo = Some(group.consume_message_orderly);
                answer.backoff_policy = Some(group_backoff(group));
            }
        }
        None => {}
    }
    answer
}

/// The client kind of stored Settings.
pub fn client_type(settings: &Settings) -> ClientType {
    settings.client_type.and_then(|kind| ClientType::try_from(kind).ok()).unwrap_or(ClientType::Unspecified)
}

/// A consumer's stored copy: the default consumer settings with what the client set on top.
fn overlay_consumer_defaults(received: &Settings) -> Settings {
    let defaults = Subscription {
        receive_batch_size: Some(CONSUMER_BATCH_SIZE),
        long_polling_timeout: Some(duration(CONSUMER_LONG_POLLING)),
        fifo: Some(false),
        ..Subscription::default()
    };
    let mut stored = received.clone();
    if let Some(settings::PubSub::Subscription(subscription)) = &mut stored.pub_sub {
        subscription.receive_batch_size = subscription.receive_batch_size.or(defaults.receive_batch_size);
        subscription.long_polling_timeout =
            subscription.long_polling_timeout.or(defaults.long_polling_timeout);
        subscription.fifo = subscription.fifo.or(defaults.fifo);
    }
    if stored.backoff_policy.is_none() {
        stored.backoff_policy = Some(group_backoff(&SubscriptionGroupConfig::default()));
    }
    stored
}

/// The retry schedule of a group: `retryMaxTimes + 1` attempts, exponential or the customized
/// delays.
fn group_backoff(group: &SubscriptionGroupConfig) -> RetryPolicy {
    let policy = &group.group_retry_policy;
    let strategy = match policy.policy_type {
        GroupRetryPolicyType::Exponential => {
            let exponential = policy.exponential_retry_policy.clone().unwrap_or_default();
            retry_policy::Strategy::ExponentialBackoff(ExponentialBackoff {
                initial: Some(millis(exponential.initial)),
                max: Some(millis(exponential.max)),
                multiplier: exponential.multiplier as f32,
            })
        }
        _ => {
            let customized = policy.customized_retry_policy.clone().unwrap_or_default();
            retry_policy::Strategy::CustomizedBackoff(CustomizedBackoff {
                next: customized.next.into_iter().map(millis).collect(),
            })
        }
    };
    RetryPolicy { max_attempts: group.retry_max_times.saturating_add(1), strategy: Some(strategy) }
}

fn duration(value: Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: i64::try_from(value.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(value.subsec_nanos()).unwrap_or(0),
    }
}

fn millis(ms: i64) -> prost_types::Duration {
    prost_types::Duration { seconds: ms / 1_000, nanos: i32::try_from((ms % 1_000) * 1_000_000).unwrap_or(0) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::Publishing;

    fn producer() -> Settings {
        Settings {
            client_type: Some(ClientType::Producer as i32),
            pub_sub: Some(settings::PubSub::Publishing(Publishing::default())),
            ..Settings::default()
        }
    }

    #[test]
    fn producers_get_exponential_backoff_and_the_body_limit() {
        let answer = answer(&producer(), 4 * 1024 * 1024, None);
        let Some(settings::PubSub::Publishing(publishing)) = &answer.pub_sub else { panic!("publishing") };
        assert_eq!(publishing.max_body_size, 4_194_304);
        assert!(publishing.validate_message_type);
        let policy = answer.backoff_policy.expect("a backoff policy");
        assert_eq!(policy.max_attempts, 3);
        assert!(matches!(policy.strategy, Some(retry_policy::Strategy::ExponentialBackoff(_))));
    }

    #[test]
    fn consumers_get_the_group_schedule() {
        let received = Settings {
            client_type: Some(ClientType::PushConsumer as i32),
            pub_sub: Some(settings::PubSub::Subscription(Subscription::default())),
            ..Settings::default()
        };
        let stored = overlay_consumer_defaults(&received);
        let group = SubscriptionGroupConfig::default();
        let answer = answer(&stored, 1, Some(&group));
        let Some(settings::PubSub::Subscription(subscription)) = &answer.pub_sub else {
            panic!("subscription")
        };
        assert_eq!(subscription.receive_batch_size, Some(32));
        assert_eq!(subscription.long_polling_timeout.as_ref().map(|timeout| timeout.seconds), Some(20));
        let policy = answer.backoff_policy.expect("a backoff policy");
        assert_eq!(policy.max_attempts, group.retry_max_times + 1);
        let Some(retry_policy::Strategy::CustomizedBackoff(customized)) = policy.strategy else {
            panic!("customized")
        };
        assert_eq!(customized.next.len(), 18);
        assert_eq!(customized.next[0].seconds, 1);
    }

    #[test]
    fn settings_without_publishing_or_subscription_are_refused() {
        let clients = Clients::default();
        let (sender, _receiver) = mpsc::channel(1);
        let refused = clients.store_settings("c", &Settings::default(), sender, 0);
        assert_eq!(refused, Err(SettingsRefused::NoPubSub));
    }
}
