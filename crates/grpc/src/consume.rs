//! Consumption over POP (spec §5.7–§5.10, §6.3, §6.7): ReceiveMessage pops from the broker core
//! and streams the messages with their receipt handles; AckMessage, ChangeInvisibleDuration and
//! ForwardMessageToDeadLetterQueue act on a handle. A gRPC handle is the broker's POP extra
//! info with the message's commit-log offset appended (the ninth field), which forwarding to
//! the dead-letter queue needs. Messages delivered as often as the group allows are sent to the
//! group's dead-letter queue on receive instead of being returned.

use std::time::Duration;

use apogee_broker::core::pop::ack::{self, AckRequest};
use apogee_broker::core::pop::pop_message::PopRequest;
use apogee_common::message::MessageExt;
use apogee_common::time::now_ms;
use apogee_filter::tags::TagExpression;
use apogee_remoting::receipt::{self, ExtraInfo};

use crate::backend::{Backend, PopOutcome};

use crate::context::CallContext;
use crate::convert::{timestamp, to_pb_message};
use crate::pb::{
    receive_message_response, AckMessageRequest, AckMessageResponse, AckMessageResultEntry,
    ChangeInvisibleDurationRequest, ChangeInvisibleDurationResponse, Code, FilterType,
    ForwardMessageToDeadLetterQueueRequest, ForwardMessageToDeadLetterQueueResponse, ReceiveMessageRequest,
    ReceiveMessageResponse,
};
use crate::renew::RenewKey;
use crate::status::{ok, status, Refusal};
use crate::{names, Messaging};

/// Shortest long poll (`grpcClientConsumerMinLongPollingTimeoutMillis`).
pub const MIN_LONG_POLLING: Duration = Duration::from_secs(5);
/// Longest long poll (`grpcClientConsumerMaxLongPollingTimeoutMillis`).
pub const MAX_LONG_POLLING: Duration = crate::clients::CONSUMER_LONG_POLLING;
/// Shortest invisible time a receive may ask for (`minInvisibleTimeMillsForRecv`).
pub const MIN_INVISIBLE_MS: i64 = 10_000;
/// Longest invisible time (`maxInvisibleTimeMills`).
pub const MAX_INVISIBLE_MS: i64 = 12 * 3_600 * 1_000;
/// Most messages one pop returns.
pub const MAX_BATCH: i32 = 32;
/// Pop `initMode` of a group without an offset: start at the queue's end (new messages only).
const INIT_MODE_MAX: i32 = 1;
/// Delay level that sends a message straight to the dead-letter queue.
pub(crate) const DEAD_LETTER_DELAY_LEVEL: i32 = -1;
/// Attempts a group allows when neither the client nor the group says (`retryMaxTimes` 16 + 1).
const DEFAULT_MAX_ATTEMPTS: i32 = 17;

/// A gRPC receipt handle: the broker's extra info and the message's commit-log offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handle {
    /// Fields 1–8.
    pub extra: ExtraInfo,
    /// Field 9; −1 when absent.
    pub commit_log_offset: i64,
}

impl Handle {
    /// Parses a handle a client sent back; INVALID_RECEIPT_HANDLE when it is not one.
    pub fn parse(text: &str) -> Result<Handle, Refusal> {
        let invalid = || Refusal::new(Code::InvalidReceiptHandle, "receipt handle is illegal");
        let fields: Vec<&str> = text.split(' ').collect();
        let (extra_fields, commit_log_offset) = match fields.len() {
            8 => (&fields[..], -1),
            9 => (&fields[..8], fields[8].parse().map_err(|_| invalid())?),
            _ => return Err(invalid()),
        };
        let extra = ExtraInfo::parse(&extra_fields.join(" ")).ok_or_else(invalid)?;
        if extra.queue_offset.is_none() {
            return Err(invalid());
        }
        Ok(Handle { extra, commit_log_offset })
    }

    /// The text clients hold.
    pub fn to_text(&self) -> String {
        format!("{} {}", self.extra.to_text(), self.commit_log_offset)
    }

    /// The queue offset of the message.
    fn queue_offset(&self) -> i64 {
        self.extra.queue_offset.unwrap_or(-1)
    }

    /// Refuses a handle whose invisible time has passed.
    fn check_unexpired(&self, now_ms: i64) -> Result<(), Refusal> {
        if self.extra.pop_time_ms.saturating_add(self.extra.invisible_ms) <= now_ms {
            return Err(Refusal::new(Code::InvalidReceiptHandle, "receipt handle is expired"));
        }
        Ok(())
    }
}

/// What an ack or a change of invisible time names on the broker, read from a handle: the
/// topic the message was popped from (its pop retry topic for a redelivery), the broker's part
/// of the handle, the queue and the offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckTarget {
    /// The topic the message was popped from (its pop retry topic for a redelivery).
    pub real_topic: String,
    /// The broker's part of the handle (its extra info).
    pub extra: String,
    /// The queue of the message.
    pub queue_id: i32,
    /// The queue offset of the message.
    pub offset: i64,
    /// The broker holding the message (the handle's broker name).
    pub broker_name: String,
}

impl AckTarget {
    /// The target of `handle`, delivered from `topic` to `group`.
    pub fn of(handle: &Handle, topic: &str, group: &str) -> Self {
        AckTarget {
            real_topic: handle.extra.real_topic(topic, group),
            extra: handle.extra.to_text(),
            queue_id: handle.extra.queue_id,
            offset: handle.queue_offset(),
            broker_name: handle.extra.broker_name.clone(),
        }
    }

    pub(crate) fn request<'a>(&'a self, group: &'a str) -> AckRequest<'a> {
        AckRequest {
            group,
            topic: &self.real_topic,
            queue_id: self.queue_id,
            extra_info: &self.extra,
            offset: self.offset,
        }
    }

    /// The handle of the message after the broker changed its invisible time: the message's
    /// own offset as start, the new pop time, invisible time and revive queue.
    pub(crate) fn renewed(&self, handle: &Handle, changed: ack::Changed) -> Handle {
        Handle {
            extra: ExtraInfo {
                ck_start_offset: self.offset,
                pop_time_ms: changed.pop_time_ms,
                invisible_ms: changed.invisible_ms,
                revive_qid: changed.revive_qid,
                retry_flag: receipt::retry_flag(&self.real_topic).to_owned(),
                broker_name: handle.extra.broker_name.clone(),
                queue_id: self.queue_id,
                queue_offset: Some(self.offset),
            },
            commit_log_offset: handle.commit_log_offset,
        }
    }
}

impl Messaging {
    /// ReceiveMessage: the frames of the answer, status first and delivery timestamp last.
    pub(crate) async fn receive(
        &self,
        context: &CallContext,
        request: &ReceiveMessageRequest,
        remaining: Option<Duration>,
    ) -> Vec<ReceiveMessageResponse> {
        receive_frames(self.receive_messages(context, request, remaining).await)
    }

    async fn receive_messages(
        &self,
        context: &CallContext,
        request: &ReceiveMessageRequest,
        remaining: Option<Duration>,
    ) -> Result<Vec<crate::pb::Message>, Refusal> {
        let poll = polling_time(request, remaining, &context.client_version)?;
        let queue = request.message_queue.as_ref();
        let topic = names::topic(queue.and_then(|queue| queue.topic.as_ref()))?;
        let group = names::group(request.group.as_ref())?;
        let renew = request.auto_renew && self.settings.enable_proxy_auto_renew;
        let invisible_ms = if renew {
            i64::try_from(self.settings.default_invisible_time_ms).unwrap_or(i64::MAX)
        } else {
            let asked = request.invisible_duration.as_ref().map(duration_ms).unwrap_or(0);
            check_invisible(asked, MIN_INVISIBLE_MS)?;
            asked
        };
        let filter = request.filter_expression.clone().unwrap_or_default();
        let expression_type = if filter.r#type == FilterType::Sql as i32 { "SQL92" } else { "TAG" };
        let expression = if filter.expression.trim().is_empty() { "*" } else { filter.expression.as_str() };
        let group_config = self.backend.group_config(group, Some(topic)).await;
        let fifo = group_config.as_ref().is_some_and(|config| config.consume_message_orderly);
        let max_attempts =
            self.max_attempts(context, group_config.as_ref().map(|config| config.retry_max_times));
        let pop = PopRequest {
            group,
            topic,
            queue_id: -1,
            max_msg_nums: request.batch_size.clamp(1, MAX_BATCH),
            invisible_ms,
            poll_ms: i64::try_from(poll.as_millis()).unwrap_or(i64::MAX),
            init_mode: INIT_MODE_MAX,
            expression_type: Some(expression_type),
            expression: Some(expression),
            order: fifo,
            attempt_id: request.attempt_id.as_deref().filter(|id| !id.is_empty()),
        };
        let popped = match self.backend.pop(context, &pop).await? {
            PopOutcome::Found(popped) => popped,
            PopOutcome::NotFound => return Ok(Vec::new()),
            PopOutcome::PollingFull => return Err(Refusal::new(Code::TooManyRequests, "polling full")),
        };
        let wanted_tags = match TagExpression::parse(expression) {
            Ok(TagExpression::Tags(list)) if expression_type == "TAG" => Some(list),
            _ => None,
        };
        let mut delivered = Vec::with_capacity(popped.len());
        for crate::backend::Popped { mut message, handle } in popped {
            if let Some(wanted) = &wanted_tags {
                // The broker filters by tag hash: a colliding tag is acked and dropped here.
                let tag = message.message.tags().unwrap_or_default();
                if !wanted.iter().any(|wanted_tag| wanted_tag == tag) {
                    self.ack_quietly(&context.client_id, group, topic, &handle).await;
                    continue;
                }
            }
            if message.reconsume_times.saturating_add(1) > max_attempts {
                self.dead_letter(context, group, topic, &handle, &message).await;
                continue;
            }
            if renew {
                if let Ok(parsed) = Handle::parse(&handle) {
                    let key = RenewKey::of(&context.client_id, group, topic, &parsed);
                    if !self.renewals.register(key, topic, parsed) {
                        tracing::warn!(group, "renewal table full; a message keeps its first invisible time");
                    }
                }
            }
            message.message.topic = topic.to_owned();
            delivered.push(to_pb_message(&message, Some(handle)));
        }
        Ok(delivered)
    }

    /// AckMessage: each entry on its own; the top-level status is theirs when they agree.
    pub(crate) async fn ack_messages(
        &self,
        context: &CallContext,
        request: &AckMessageRequest,
    ) -> Result<AckMessageResponse, Refusal> {
        let topic = names::topic(request.topic.as_ref())?;
        let group = names::group(request.group.as_ref())?;
        if request.entries.is_empty() {
            return Err(Refusal::new(Code::InternalServerError, "ack message result is empty"));
        }
        let mut entries = Vec::with_capacity(request.entries.len());
        for entry in &request.entries {
            let outcome = self.ack_one(&context.client_id, group, topic, &entry.receipt_handle).await;
            entries.push(AckMessageResultEntry {
                message_id: entry.message_id.clone(),
                receipt_handle: entry.receipt_handle.clone(),
                status: Some(match outcome {
                    Ok(()) => ok(),
                    Err(refusal) => refusal.status(),
                }),
            });
        }
        let first = entries[0].status.as_ref().map(|status| status.code);
        let top = if entries.iter().all(|entry| entry.status.as_ref().map(|status| status.code) == first) {
            entries[0].status.clone()
        } else {
            Some(status(Code::MultipleResults, "MULTIPLE_RESULTS"))
        };
        Ok(AckMessageResponse { status: top, entries })
    }

    async fn ack_one(&self, client_id: &str, group: &str, topic: &str, text: &str) -> Result<(), Refusal> {
        let handle = self.current_handle(client_id, group, topic, text)?;
        handle.check_unexpired(now_ms())?;
        let target = AckTarget::of(&handle, topic, group);
        self.backend.ack(group, &target).await
    }

    /// Acks a message this endpoint decided not to deliver; a failure leaves it to redelivery.
    async fn ack_quietly(&self, client_id: &str, group: &str, topic: &str, handle: &str) {
        if let Err(refusal) = self.ack_one(client_id, group, topic, handle).await {
            tracing::warn!(group, topic, message = %refusal.message, "undelivered message not acked");
        }
    }

    /// ChangeInvisibleDuration: the message becomes visible again after the new duration; the
    /// answer carries the handle to use from now on.
    pub(crate) async fn change_invisible_duration(
        &self,
        context: &CallContext,
        request: &ChangeInvisibleDurationRequest,
    ) -> Result<ChangeInvisibleDurationResponse, Refusal> {
        let topic = names::topic(request.topic.as_ref())?;
        let group = names::group(request.group.as_ref())?;
        let invisible_ms = request.invisible_duration.as_ref().map(duration_ms).unwrap_or(0);
        check_invisible(invisible_ms, 0)?;
        let handle = self.current_handle(&context.client_id, group, topic, &request.receipt_handle)?;
        handle.check_unexpired(now_ms())?;
        let target = AckTarget::of(&handle, topic, group);
        let changed = self.backend.change_invisible(group, &target, invisible_ms).await?;
        let renewed = target.renewed(&handle, changed);
        Ok(ChangeInvisibleDurationResponse { status: Some(ok()), receipt_handle: renewed.to_text() })
    }

    /// ForwardMessageToDeadLetterQueue: the message goes to `%DLQ%<group>` and is acked.
    pub(crate) async fn forward_to_dead_letter_queue(
        &self,
        context: &CallContext,
        request: &ForwardMessageToDeadLetterQueueRequest,
    ) -> Result<ForwardMessageToDeadLetterQueueResponse, Refusal> {
        let topic = names::topic(request.topic.as_ref())?;
        let group = names::group(request.group.as_ref())?;
        self.send_to_dead_letters(context, group, topic, &request.receipt_handle).await?;
        Ok(ForwardMessageToDeadLetterQueueResponse { status: Some(ok()) })
    }

    async fn send_to_dead_letters(
        &self,
        context: &CallContext,
        group: &str,
        topic: &str,
        text: &str,
    ) -> Result<(), Refusal> {
        let handle = self.current_handle(&context.client_id, group, topic, text)?;
        if handle.commit_log_offset < 0 {
            return Err(Refusal::new(Code::InvalidReceiptHandle, "commit log offset is empty"));
        }
        let real_topic = handle.extra.real_topic(topic, group);
        self.backend.dead_letter(context, group, &real_topic, &handle).await?;
        // The message is in the dead-letter queue; an ack that fails only means one more
        // delivery attempt, which ends there again.
        self.ack_quietly(&context.client_id, group, topic, &handle.to_text()).await;
        Ok(())
    }

    /// Sends a message delivered too often to the dead-letter queue instead of returning it.
    async fn dead_letter(
        &self,
        context: &CallContext,
        group: &str,
        topic: &str,
        handle: &str,
        message: &MessageExt,
    ) {
        match self.send_to_dead_letters(context, group, topic, handle).await {
            Ok(()) => tracing::info!(
                group,
                topic,
                attempts = message.reconsume_times + 1,
                "message moved to the dead-letter queue after its last attempt"
            ),
            Err(refusal) => tracing::warn!(group, topic, message = %refusal.message, "dead-lettering failed"),
        }
    }

    /// The handle to act on for a handle a client sent: the latest renewal of it when the
    /// endpoint was renewing it (renewal stops now), else the handle itself.
    fn current_handle(
        &self,
        client_id: &str,
        group: &str,
        topic: &str,
        text: &str,
    ) -> Result<Handle, Refusal> {
        let sent = Handle::parse(text)?;
        if self.renewals.is_empty() {
            // Simple consumers never ask for renewal: no key to build.
            return Ok(sent);
        }
        let key = RenewKey::of(client_id, group, topic, &sent);
        Ok(self.renewals.take(&key).unwrap_or(sent))
    }

    /// Delivery attempts a group allows: the group's retries + 1 (what the Settings answer
    /// tells consumers), else the client's own Settings, else RocketMQ's default.
    fn max_attempts(&self, context: &CallContext, group_retries: Option<i32>) -> i32 {
        if let Some(retries) = group_retries {
            return retries.saturating_add(1);
        }
        self.clients
            .touch(&context.client_id, now_ms())
            .and_then(|settings| settings.backoff_policy)
            .map(|policy| policy.max_attempts)
            .filter(|attempts| *attempts > 0)
            .unwrap_or(DEFAULT_MAX_ATTEMPTS)
    }
}

/// The frames of a ReceiveMessage answer (spec §2.6): the status first (OK with the messages,
/// MESSAGE_NOT_FOUND when none came, or the refusal), the delivery timestamp last.
pub(crate) fn receive_frames(
    outcome: Result<Vec<crate::pb::Message>, Refusal>,
) -> Vec<ReceiveMessageResponse> {
    let mut frames = Vec::new();
    let status_frame =
        |status| ReceiveMessageResponse { content: Some(receive_message_response::Content::Status(status)) };
    match outcome {
        Ok(messages) if !messages.is_empty() => {
            frames.push(status_frame(ok()));
            frames.extend(messages.into_iter().map(|message| ReceiveMessageResponse {
                content: Some(receive_message_response::Content::Message(message)),
            }));
        }
        Ok(_) => frames.push(status_frame(status(Code::MessageNotFound, "no new message"))),
        Err(refusal) => frames.push(status_frame(refusal.status())),
    }
    frames.push(ReceiveMessageResponse {
        content: Some(receive_message_response::Content::DeliveryTimestamp(timestamp(now_ms()))),
    });
    frames
}

/// The long-polling time of a receive (spec §5.7 step 2).
fn polling_time(
    request: &ReceiveMessageRequest,
    remaining: Option<Duration>,
    client_version: &str,
) -> Result<Duration, Refusal> {
    let asked = request
        .long_polling_timeout
        .as_ref()
        .map(|timeout| Duration::from_millis(duration_ms(timeout).max(0) as u64));
    let poll = asked.unwrap_or(MAX_LONG_POLLING).clamp(MIN_LONG_POLLING, MAX_LONG_POLLING);
    let Some(remaining) = remaining else { return Ok(poll) };
    if poll <= remaining {
        return Ok(poll);
    }
    if remaining >= MIN_LONG_POLLING {
        return Ok(remaining);
    }
    let code = if client_version.is_empty() || client_version < "5.0.3" {
        Code::BadRequest
    } else {
        Code::IllegalPollingTime
    };
    Err(Refusal::new(
        code,
        "The deadline time remaining is not enough for polling, please check network condition",
    ))
}

/// Refuses an invisible time outside [`min_ms`, 12 h].
fn check_invisible(invisible_ms: i64, min_ms: i64) -> Result<(), Refusal> {
    if invisible_ms < min_ms {
        return Err(Refusal::new(
            Code::IllegalInvisibleTime,
            format!("the invisibleTime is too small. min is {min_ms}, but is {invisible_ms}"),
        ));
    }
    if invisible_ms > MAX_INVISIBLE_MS {
        return Err(Refusal::new(
            Code::IllegalInvisibleTime,
            format!("the invisibleTime is too large. max is {MAX_INVISIBLE_MS}, but is {invisible_ms}"),
        ));
    }
    Ok(())
}

/// A pop refusal, with a filter that does not compile named as such.
pub(crate) fn filter_refusal(error: apogee_broker::core::Error) -> Refusal {
    if error.code == apogee_remoting::code::response_code::SUBSCRIPTION_PARSE_FAILED {
        return Refusal::new(Code::IllegalFilterExpression, error.remark);
    }
    Refusal::from(error)
}

/// Milliseconds of a protobuf duration (saturating).
pub(crate) fn duration_ms(duration: &prost_types::Duration) -> i64 {
    duration.seconds.saturating_mul(1_000).saturating_add(i64::from(duration.nanos / 1_000_000))
}

/// The remaining deadline of a call (`grpc-timeout`: digits and a unit letter).
pub fn remaining_deadline(metadata: &tonic::metadata::MetadataMap) -> Option<Duration> {
    let text = metadata.get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = text.split_at(text.len().checked_sub(1)?);
    let value: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(value.saturating_mul(3_600)),
        "M" => Duration::from_secs(value.saturating_mul(60)),
        "S" => Duration::from_secs(value),
        "m" => Duration::from_millis(value),
        "u" => Duration::from_micros(value),
        "n" => Duration::from_nanos(value),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_round_trip_with_the_commit_log_offset() {
        let text = "10 1700000000000 60000 3 0 broker-a 2 15 4096";
        let handle = Handle::parse(text).expect("a handle");
        assert_eq!(handle.commit_log_offset, 4096);
        assert_eq!(handle.extra.queue_offset, Some(15));
        assert_eq!(handle.to_text(), text);
        let without_offset = Handle::parse("10 1700000000000 60000 3 0 broker-a 2 15").expect("8 fields");
        assert_eq!(without_offset.commit_log_offset, -1);
        for bad in ["", "1 2 3", "a b c d e f g h i", "10 1 1 3 0 b 2 15 x"] {
            assert_eq!(Handle::parse(bad).unwrap_err().code, Code::InvalidReceiptHandle, "{bad:?}");
        }
    }

    #[test]
    fn polling_is_clamped_and_fits_the_deadline() {
        let mut request = ReceiveMessageRequest::default();
        assert_eq!(polling_time(&request, None, "5.1.0").unwrap(), MAX_LONG_POLLING);
        request.long_polling_timeout = Some(prost_types::Duration { seconds: 40, nanos: 0 });
        assert_eq!(polling_time(&request, None, "5.1.0").unwrap(), Duration::from_secs(20));
        request.long_polling_timeout = Some(prost_types::Duration { seconds: 1, nanos: 0 });
        assert_eq!(polling_time(&request, None, "5.1.0").unwrap(), MIN_LONG_POLLING);
        assert_eq!(polling_time(&request, Some(Duration::from_secs(7)), "5.1.0").unwrap(), MIN_LONG_POLLING);
        request.long_polling_timeout = Some(prost_types::Duration { seconds: 15, nanos: 0 });
        assert_eq!(
            polling_time(&request, Some(Duration::from_secs(8)), "5.1.0").unwrap(),
            Duration::from_secs(8)
        );
        let short = polling_time(&request, Some(Duration::from_secs(2)), "5.1.0").unwrap_err();
        assert_eq!(short.code, Code::IllegalPollingTime);
        let old = polling_time(&request, Some(Duration::from_secs(2)), "5.0.0").unwrap_err();
        assert_eq!(old.code, Code::BadRequest);
    }

    #[test]
    fn invisible_times_outside_the_range_are_refused() {
        assert!(check_invisible(10_000, MIN_INVISIBLE_MS).is_ok());
        assert_eq!(check_invisible(9_999, MIN_INVISIBLE_MS).unwrap_err().code, Code::IllegalInvisibleTime);
        assert_eq!(check_invisible(MAX_INVISIBLE_MS + 1, 0).unwrap_err().code, Code::IllegalInvisibleTime);
    }

    #[test]
    fn deadlines_are_read_in_every_unit() {
        let mut metadata = tonic::metadata::MetadataMap::new();
        metadata.insert("grpc-timeout", "2999m".parse().unwrap());
        assert_eq!(remaining_deadline(&metadata), Some(Duration::from_millis(2999)));
        metadata.insert("grpc-timeout", "30S".parse().unwrap());
        assert_eq!(remaining_deadline(&metadata), Some(Duration::from_secs(30)));
        metadata.insert("grpc-timeout", "x".parse().unwrap());
        assert_eq!(remaining_deadline(&metadata), None);
    }
}
