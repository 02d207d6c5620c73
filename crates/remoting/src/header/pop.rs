//! POP consumption headers (5.x, behaviour spec §4.15): the broker keeps each consumer's
//! place, hands out messages that stay invisible to the group until acknowledged, and
//! redelivers what is not acknowledged in time. The receipt handle a consumer acknowledges
//! with is the `extraInfo` text (Java `ExtraInfoUtil`), carried in each message's `POP_CK`.

use crate::command_header;

command_header! {
    /// POP_MESSAGE (200050): takes up to `maxMsgNums` messages of a topic for a group, to be
    /// acknowledged within `invisibleTime`.
    pub struct PopMessageRequestHeader: RpcRequestHeader {
        /// Consumer group.
        consumer_group: String => "consumerGroup",
        /// Topic.
        topic: String => "topic",
        /// Queue to read; -1 reads every queue, starting at a random one.
        queue_id: i32 => "queueId",
        /// Most messages wanted (at most 32).
        max_msg_nums: i32 => "maxMsgNums",
        /// How long the messages stay invisible to the group, in ms.
        invisible_time: i64 => "invisibleTime",
        /// How long the broker may hold the request when nothing is there, in ms.
        poll_time: i64 => "pollTime",
        /// When the client sent the request (its clock), in epoch ms.
        born_time: i64 => "bornTime",
        /// Where a group without an offset starts: 0 the last message, 1 the first.
        init_mode: i32 => "initMode",
        /// `TAG` or `SQL92`.
        exp_type: Option<String> => "expType",
        /// Filter expression.
        exp: Option<String> => "exp",
        /// Orderly pop: one batch in flight per queue.
        order: Option<bool> => "order",
        /// Retries of one receive carry the same attempt id (orderly pop).
        attempt_id: Option<String> => "attemptId",
    }
}

command_header! {
    /// Answer to POP_MESSAGE: what the client needs to build each message's receipt handle.
    pub struct PopMessageResponseHeader {
        /// When the broker popped the messages, epoch ms.
        pop_time: i64 => "popTime",
        /// The invisible time granted, in ms.
        invisible_time: i64 => "invisibleTime",
        /// The revive queue holding the check point (999 for orderly pops).
        revive_qid: i32 => "reviveQid",
        /// Messages left behind in the queues read.
        rest_num: i64 => "restNum",
        /// `<retry flag> <queueId> <start offset>` per queue read, `;`-separated.
        start_offset_info: Option<String> => "startOffsetInfo",
        /// `<retry flag> <queueId> <offset>,<offset>...` per queue read, `;`-separated.
        msg_offset_info: Option<String> => "msgOffsetInfo",
        /// Orderly pop: how often each message was delivered before.
        order_count_info: Option<String> => "orderCountInfo",
    }
}

command_header! {
    /// ACK_MESSAGE (200051): the consumer is done with one popped message.
    pub struct AckMessageRequestHeader: RpcRequestHeader {
        /// Consumer group.
        consumer_group: String => "consumerGroup",
        /// Topic the message was popped from (the pop retry topic for a redelivery).
        topic: String => "topic",
        /// Queue of the message.
        queue_id: i32 => "queueId",
        /// The message's receipt handle (`POP_CK`).
        extra_info: String => "extraInfo",
        /// Queue offset of the message.
        offset: i64 => "offset",
    }
}

command_header! {
    /// CHANGE_MESSAGE_INVISIBLETIME (200053): the consumer needs longer (or wants the message
    /// back sooner).
    pub struct ChangeInvisibleTimeRequestHeader: RpcRequestHeader {
        /// Consumer group.
        consumer_group: String => "consumerGroup",
        /// Topic the message was popped from.
        topic: String => "topic",
        /// Queue of the message.
        queue_id: i32 => "queueId",
        /// The message's current receipt handle.
        extra_info: String => "extraInfo",
        /// Queue offset of the message.
        offset: i64 => "offset",
        /// The new invisible time from now, in ms.
        invisible_time: i64 => "invisibleTime",
    }
}

command_header! {
    /// Answer to CHANGE_MESSAGE_INVISIBLETIME: the pieces of the new receipt handle.
    pub struct ChangeInvisibleTimeResponseHeader {
        /// The new pop time, epoch ms.
        pop_time: i64 => "popTime",
        /// The new invisible time, in ms.
        invisible_time: i64 => "invisibleTime",
        /// The revive queue of the new check point.
        revive_qid: i32 => "reviveQid",
    }
}

command_header! {
    /// NOTIFICATION (200054): waits until the group could pop something from the topic.
    pub struct NotificationRequestHeader: RpcRequestHeader {
        /// Consumer group.
        consumer_group: String => "consumerGroup",
        /// Topic.
        topic: String => "topic",
        /// Queue, or -1 for any.
        queue_id: i32 => "queueId",
        /// How long the broker may hold the request, in ms.
        poll_time: i64 => "pollTime",
        /// When the client sent it, epoch ms.
        born_time: i64 => "bornTime",
        /// Orderly consumption: a blocked queue has nothing to offer.
        order: Option<bool> => "order",
        /// Attempt id of an orderly receive.
        attempt_id: Option<String> => "attemptId",
    }
}

command_header! {
    /// Answer to NOTIFICATION.
    pub struct NotificationResponseHeader {
        /// Whether a message is there to pop.
        has_msg: bool => "hasMsg",
        /// The broker holds too many waiting requests to hold this one.
        polling_full: Option<bool> => "pollingFull",
    }
}

command_header! {
    /// POLLING_INFO (200055): how many pop requests are parked for a queue.
    pub struct PollingInfoRequestHeader: RpcRequestHeader {
        /// Consumer group.
        consumer_group: String => "consumerGroup",
        /// Topic.
        topic: String => "topic",
        /// Queue.
        queue_id: i32 => "queueId",
    }
}

command_header! {
    /// Answer to POLLING_INFO.
    pub struct PollingInfoResponseHeader {
        /// Pop requests parked for the queue.
        polling_num: i32 => "pollingNum",
    }
}
