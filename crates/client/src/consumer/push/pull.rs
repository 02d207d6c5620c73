//! The per-queue pull loop (spec behaviour §4.8): long-polling PULL_MESSAGE within the
//! flow-control limits, and what each broker answer means for the next pull (§4.9).

use std::sync::Arc;
use std::time::Duration;

use apogee_common::message::record::decode_all_shared;
use apogee_common::message::{property, MessageExt, RecordError};
use apogee_common::MessageQueue;
use apogee_remoting::body::heartbeat::SubscriptionData;
use apogee_remoting::flags::pull as pull_sys_flag;
use apogee_remoting::header::consumer::{PullMessageRequestHeader, PullMessageResponseHeader};
use apogee_remoting::{request_code, response_code, RemotingCommand};
use bytes::Bytes;

use super::Shared;
use crate::consumer::process_queue::ProcessQueue;
use crate::consumer::subscription::matches_tags;

/// How long the broker may hold a pull with no new messages.
pub const BROKER_SUSPEND_MAX: Duration = Duration::from_millis(15_000);
/// How long the client waits for a held pull's answer.
pub const PULL_REQUEST_TIMEOUT: Duration = Duration::from_millis(30_000);
/// Retry delay after a failed pull (`pullTimeDelayMillsWhenException`).
const PULL_DELAY_WHEN_EXCEPTION: Duration = Duration::from_millis(1000);
/// Retry delay while the cache exceeds a flow-control limit.
const PULL_DELAY_WHEN_FLOW_CONTROL: Duration = Duration::from_millis(50);
/// Retry delay after the broker answered FLOW_CONTROL.
const PULL_DELAY_WHEN_BROKER_FLOW_CONTROL: Duration = Duration::from_millis(20);
/// Retry delay while the consumer is suspended.
const PULL_DELAY_WHEN_SUSPENDED: Duration = Duration::from_millis(1000);
/// Retry delay when the queue's topic is no longer subscribed (the rebalance drops it).
const PULL_DELAY_WHEN_NO_SUBSCRIPTION: Duration = Duration::from_millis(3000);
/// A queue under flow control logs once per this many skipped pulls.
const FLOW_CONTROL_LOG_EVERY: u64 = 1000;

/// PullSysFlag bits of a push consumer's pull.
pub fn build_sys_flag(commit_offset: bool, suspend: bool, subscription: bool, class_filter: bool) -> i32 {
    let mut flag = 0;
    if commit_offset {
        flag |= pull_sys_flag::COMMIT_OFFSET;
    }
    if suspend {
        flag |= pull_sys_flag::SUSPEND;
    }
    if subscription {
        flag |= pull_sys_flag::SUBSCRIPTION;
    }
    if class_filter {
        flag |= pull_sys_flag::CLASS_FILTER;
    }
    flag
}

/// What a PULL_MESSAGE answer means for the queue.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum PullOutcome {
    /// SUCCESS: messages (the body) from the requested offset; continue at `next_begin`.
    Found { header: PullMessageResponseHeader, body: Bytes },
    /// PULL_NOT_FOUND or PULL_RETRY_IMMEDIATELY: nothing (matching) now; continue at
    /// `next_begin`.
    NoMessage { header: PullMessageResponseHeader },
    /// PULL_OFFSET_MOVED: the requested offset is outside the queue; restart at
    /// `next_begin`.
    OffsetIllegal { header: PullMessageResponseHeader },
    /// Anything else: pull again after `retry_after`.
    Failed { code: i32, remark: String, retry_after: Duration },
}

/// Classifies a pull answer. A success code with an undecodable header is a failure.
pub(crate) fn classify(response: &RemotingCommand) -> PullOutcome {
    let header = || response.decode_header::<PullMessageResponseHeader>();
    let failed = |code: i32, remark: String| PullOutcome::Failed {
        code,
        remark,
        retry_after: if code == response_code::FLOW_CONTROL {
            PULL_DELAY_WHEN_BROKER_FLOW_CONTROL
        } else {
            PULL_DELAY_WHEN_EXCEPTION
        },
    };
    match response.code {
        response_code::SUCCESS
        | response_code::PULL_NOT_FOUND
        | response_code::PULL_RETRY_IMMEDIATELY
        | response_code::PULL_OFFSET_MOVED => match header() {
            Ok(header) => match response.code {
                response_code::SUCCESS => PullOutcome::Found { header, body: response.body.clone() },
                response_code::PULL_OFFSET_MOVED => PullOutcome::OffsetIllegal { header },
                _ => PullOutcome::NoMessage { header },
            },
            Err(error) => failed(response.code, format!("malformed pull response header: {error}")),
        },
        code => failed(code, response.remark.clone().unwrap_or_default()),
    }
}

/// Decodes a FOUND body: inflates compressed bodies, keeps only messages whose tag the
/// subscription names, and stamps the queue's bounds (`MIN_OFFSET`, `MAX_OFFSET`).
pub(crate) fn decode_found(
    body: &Bytes,
    subscription: &SubscriptionData,
    header: &PullMessageResponseHeader,
) -> Result<Vec<MessageExt>, RecordError> {
    let mut messages = decode_all_shared(body)?;
    messages.retain(|message| matches_tags(subscription, message));
    for message in &mut messages {
        if let Err(error) = message.decompress_body() {
            tracing::warn!(offset = message.queue_offset, %error, "cannot inflate a message body; delivered as stored");
        }
        message.message.properties.insert(property::MIN_OFFSET, header.min_offset.to_string());
        message.message.properties.insert(property::MAX_OFFSET, header.max_offset.to_string());
    }
    Ok(messages)
}

impl Shared {
    /// Pulls `mq` from `next_offset` until the queue is dropped or the consumer stops.
    pub(crate) async fn pull_loop(
        self: Arc<Self>,
        mq: MessageQueue,
        pq: Arc<ProcessQueue>,
        mut next_offset: i64,
    ) {
        let mut delay = super::rebalance::FIRST_PULL_DELAY;
        let mut previously_locked = false;
        let mut flow_controlled: u64 = 0;
        loop {
            if !delay.is_zero() {
                tokio::select! {
                    _ = pq.cancelled() => return,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
            delay = Duration::ZERO;
            if pq.is_dropped() || pq.is_cancelled() {
                return;
            }
            pq.touch_pull();
            if self.paused.load(std::sync::atomic::Ordering::SeqCst) {
                delay = PULL_DELAY_WHEN_SUSPENDED;
                continue;
            }
            if let Some(reason) = pq.flow_control(&self.settings.flow_control) {
                if flow_controlled == 0 {
                    tracing::warn!(
                        group = %self.group, ?mq, ?reason, cached = pq.cached_count(), bytes = pq.cached_bytes(),
                        "flow control: pull delayed"
                    );
                }
                flow_controlled = (flow_controlled + 1) % FLOW_CONTROL_LOG_EVERY;
                delay = PULL_DELAY_WHEN_FLOW_CONTROL;
                continue;
            }
            if self.settings.orderly {
                if !pq.is_locked() {
                    delay = PULL_DELAY_WHEN_EXCEPTION;
                    continue;
                }
                if !previously_locked {
                    match self.compute_pull_from_where(&mq).await {
                        Ok(offset) => {
                            next_offset = offset;
                            previously_locked = true;
                        }
                        Err(error) => {
                            tracing::warn!(group = %self.group, ?mq, %error, "no start offset after locking");
                            delay = PULL_DELAY_WHEN_EXCEPTION;
                            continue;
                        }
                    }
                }
            }
            let Some(subscription) = self.subscription(&mq.topic) else {
                delay = PULL_DELAY_WHEN_NO_SUBSCRIPTION;
                continue;
            };
            let Some(response) = self.pull_once(&mq, &pq, next_offset, &subscription).await else {
                return;
            };
            let response = match response {
                Ok(response) => response,
                Err(error) => {
                    tracing::debug!(group = %self.group, ?mq, %error, "pull failed");
                    delay = PULL_DELAY_WHEN_EXCEPTION;
                    continue;
                }
            };
            if pq.is_dropped() {
                return;
            }
            match classify(&response) {
                PullOutcome::Found { header, body } => {
                    pq.set_suggested_broker_id(header.suggest_which_broker_id);
                    match decode_found(&body, &subscription, &header) {
                        Ok(messages) => {
                            next_offset = header.next_begin_offset;
                            if messages.is_empty() {
                                continue;
                            }
                            pq.put_messages(messages.clone());
                            if !self.settings.orderly {
                                self.submit_concurrently(&mq, &pq, messages);
                            }
                            delay = self.settings.pull_interval;
                        }
                        Err(error) => {
                            tracing::warn!(group = %self.group, ?mq, next_offset, %error, "undecodable pull body");
                            delay = PULL_DELAY_WHEN_EXCEPTION;
                        }
                    }
                }
                PullOutcome::NoMessage { header } => {
                    pq.set_suggested_broker_id(header.suggest_which_broker_id);
                    next_offset = header.next_begin_offset;
                    // Filtered-out ranges count as consumed once nothing is in flight.
                    if pq.cached_count() == 0 {
                        self.offset_store.update_offset(&mq, next_offset, true);
                    }
                }
                PullOutcome::OffsetIllegal { header } => {
                    tracing::warn!(
                        group = %self.group, ?mq, requested = next_offset, next = header.next_begin_offset,
                        "offset illegal; the queue restarts from the broker's offset"
                    );
                    pq.set_dropped();
                    self.offset_store.update_and_freeze_offset(&mq, header.next_begin_offset);
                    if let Err(error) = self.offset_store.persist_and_wait(&mq).await {
                        tracing::warn!(group = %self.group, ?mq, %error, "committing the corrected offset failed");
                    }
                    self.offset_store.remove_offset(&mq);
                    self.forget_queue(&mq, &pq);
                    self.rebalance_wakeup.notify_one();
                    return;
                }
                PullOutcome::Failed { code, remark, retry_after } => {
                    tracing::debug!(group = %self.group, ?mq, code, %remark, "pull refused");
                    delay = retry_after;
                }
            }
        }
    }

    /// Sends one PULL_MESSAGE; `None` when the queue was dropped meanwhile.
    async fn pull_once(
        &self,
        mq: &MessageQueue,
        pq: &ProcessQueue,
        offset: i64,
        subscription: &SubscriptionData,
    ) -> Option<Result<RemotingCommand, crate::ClientError>> {
        let addr = match self.instance.broker_addr(&mq.broker_name, pq.suggested_broker_id()) {
            Some(addr) => addr,
            None => match self.broker_addr_of(mq).await {
                Ok(addr) => addr,
                Err(error) => return Some(Err(error)),
            },
        };
        let from_master = self.instance.master_addr(&mq.broker_name).as_deref() == Some(addr.as_str());
        let commit_offset = if self.settings.clustering() {
            self.offset_store.read_memory(mq).filter(|offset| *offset > 0)
        } else {
            None
        };
        let header = PullMessageRequestHeader {
            consumer_group: self.group.clone(),
            topic: mq.topic.clone(),
            queue_id: mq.queue_id,
            queue_offset: offset,
            max_msg_nums: self.settings.pull_batch_size,
            sys_flag: build_sys_flag(
                commit_offset.is_some() && from_master,
                true,
                false,
                subscription.class_filter_mode,
            ),
            commit_offset: commit_offset.unwrap_or(0),
            suspend_timeout_millis: i64::try_from(BROKER_SUSPEND_MAX.as_millis()).unwrap_or(15_000),
            subscription: None,
            sub_version: subscription.sub_version,
            expression_type: Some(subscription.expression_type.name().to_owned()),
            bname: Some(mq.broker_name.clone()),
            ..PullMessageRequestHeader::default()
        };
        let request = RemotingCommand::request(request_code::PULL_MESSAGE).with_header(&header);
        tokio::select! {
            _ = pq.cancelled() => None,
            response = self.instance.invoke(&addr, request, PULL_REQUEST_TIMEOUT) => Some(response),
        }
    }
}

#[cfg(test)]
mod tests {
    use apogee_common::message::record;
    use apogee_remoting::body::enums::ExpressionType;

    use super::*;
    use crate::consumer::subscription::build_subscription;

    fn response(code: i32, next: i64) -> RemotingCommand {
        let header = PullMessageResponseHeader {
            suggest_which_broker_id: 0,
            next_begin_offset: next,
            min_offset: 0,
            max_offset: 100,
            ..PullMessageResponseHeader::default()
        };
        RemotingCommand::response(code, None).with_header(&header)
    }

    #[test]
    fn sys_flags() {
        assert_eq!(build_sys_flag(true, true, false, false), 3);
        assert_eq!(build_sys_flag(false, true, false, false), 2);
        assert_eq!(build_sys_flag(true, true, true, true), 0xF);
    }

    #[test]
    fn answers_are_classified() {
        assert!(
            matches!(classify(&response(0, 7)), PullOutcome::Found { header, .. } if header.next_begin_offset == 7)
        );
        for code in [19, 20] {
            assert!(
                matches!(classify(&response(code, 9)), PullOutcome::NoMessage { header } if header.next_begin_offset == 9)
            );
        }
        assert!(
            matches!(classify(&response(21, 3)), PullOutcome::OffsetIllegal { header } if header.next_begin_offset == 3)
        );
        let flow = RemotingCommand::response(response_code::FLOW_CONTROL, Some("busy".into()));
        assert_eq!(
            classify(&flow),
            PullOutcome::Failed { code: 215, remark: "busy".into(), retry_after: Duration::from_millis(20) }
        );
        let refused = RemotingCommand::response(response_code::SUBSCRIPTION_NOT_LATEST, None);
        assert!(
            matches!(classify(&refused), PullOutcome::Failed { code: 25, retry_after, .. } if retry_after == Duration::from_secs(1))
        );
        // A success without the header is a failure, not a panic.
        let bare = RemotingCommand::response(0, None);
        assert!(matches!(classify(&bare), PullOutcome::Failed { code: 0, .. }));
    }

    fn stored(offset: i64, tag: Option<&str>) -> Vec<u8> {
        let mut message = MessageExt { queue_offset: offset, ..MessageExt::default() };
        message.message.topic = "T".into();
        message.message.body = Bytes::from_static(b"hello");
        if let Some(tag) = tag {
            message.message.set_tags(tag);
        }
        let mut bytes = Vec::new();
        record::encode(&message, &mut bytes).unwrap();
        bytes
    }

    #[test]
    fn found_bodies_are_decoded_and_refiltered_by_tag() {
        let body: Vec<u8> =
            [stored(0, Some("TagA")), stored(1, Some("TagC")), stored(2, None), stored(3, Some("TagB"))]
                .concat();
        let header = PullMessageResponseHeader {
            min_offset: 0,
            max_offset: 4,
            next_begin_offset: 4,
            ..Default::default()
        };
        let subscription = build_subscription("T", "TagA || TagB", ExpressionType::Tag).unwrap();
        let messages = decode_found(&Bytes::from(body.clone()), &subscription, &header).unwrap();
        assert_eq!(messages.iter().map(|m| m.queue_offset).collect::<Vec<_>>(), [0, 3]);
        assert_eq!(messages[0].message.property(property::MAX_OFFSET), Some("4"));
        assert_eq!(messages[0].message.property(property::MIN_OFFSET), Some("0"));
        assert_eq!(&messages[0].message.body[..], b"hello");

        let everything = build_subscription("T", "*", ExpressionType::Tag).unwrap();
        assert_eq!(decode_found(&Bytes::from(body), &everything, &header).unwrap().len(), 4);
        assert!(decode_found(&Bytes::from_static(b"garbage"), &everything, &header).is_err());
    }
}
