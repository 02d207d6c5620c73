//! The receipt handle of a popped message (Java `ExtraInfoUtil`), defined once for the broker
//! that builds it and the clients that parse it, exactly as Java builds it since official
//! clients parse it too: space-separated
//! `<ck start offset> <pop time> <invisible time> <revive qid> <retry flag> <broker name>
//! <queue id> <queue offset>`. The retry flag is `0` for the topic itself and `1` for its pop
//! retry topic (`2`, retry topics v2, is read but never written). The response header's
//! `startOffsetInfo`, `msgOffsetInfo` and `orderCountInfo` are per-queue lists of the same
//! pieces, from which the client builds each message's handle.

use std::collections::HashMap;
use std::fmt::Write as _;

use apogee_common::topic::RETRY_GROUP_TOPIC_PREFIX;

/// Separator of v1 pop retry topics, `%RETRY%<group>_<topic>` (Java's default).
pub const RETRY_TOPIC_V1_SEPARATOR: char = '_';
/// Separator of v2 pop retry topics, `%RETRY%<group>+<topic>` (read, never created).
pub const RETRY_TOPIC_V2_SEPARATOR: char = '+';
/// The revive queue id that marks an orderly pop's receipt handle (Java
/// `KeyBuilder.POP_ORDER_REVIVE_QUEUE`).
pub const ORDER_REVIVE_QUEUE: i32 = 999;

/// The pop retry topic of `group` consuming `topic` (v1 naming).
pub fn retry_topic(topic: &str, group: &str) -> String {
    format!("{RETRY_GROUP_TOPIC_PREFIX}{group}{RETRY_TOPIC_V1_SEPARATOR}{topic}")
}

/// The v2 name of the pop retry topic.
pub fn retry_topic_v2(topic: &str, group: &str) -> String {
    format!("{RETRY_GROUP_TOPIC_PREFIX}{group}{RETRY_TOPIC_V2_SEPARATOR}{topic}")
}

/// Retry flag of a message from the topic itself.
pub const NORMAL_TOPIC_FLAG: &str = "0";
/// Retry flag of a message from the pop retry topic (v1 naming).
pub const RETRY_TOPIC_FLAG: &str = "1";
/// Retry flag of a message from a v2 pop retry topic.
pub const RETRY_TOPIC_V2_FLAG: &str = "2";

/// The retry flag of a topic a message was read from.
pub fn retry_flag(topic: &str) -> &'static str {
    if topic.starts_with(RETRY_GROUP_TOPIC_PREFIX) {
        if topic.contains(RETRY_TOPIC_V2_SEPARATOR) {
            RETRY_TOPIC_V2_FLAG
        } else {
            RETRY_TOPIC_FLAG
        }
    } else {
        NORMAL_TOPIC_FLAG
    }
}

/// A parsed receipt handle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraInfo {
    /// Start offset of the check point the message belongs to.
    pub ck_start_offset: i64,
    /// When it was popped, epoch ms.
    pub pop_time_ms: i64,
    /// Its invisible time, in ms.
    pub invisible_ms: i64,
    /// Revive queue of its check point (999 for orderly pops).
    pub revive_qid: i32,
    /// `0`, `1` or `2` (see the module).
    pub retry_flag: String,
    /// Broker that popped it.
    pub broker_name: String,
    /// Queue it was read from.
    pub queue_id: i32,
    /// Its queue offset, when the handle names it (5.x handles do).
    pub queue_offset: Option<i64>,
}

impl ExtraInfo {
    /// Builds the handle text.
    pub fn to_text(&self) -> String {
        let mut text = format!(
            "{} {} {} {} {} {} {}",
            self.ck_start_offset,
            self.pop_time_ms,
            self.invisible_ms,
            self.revive_qid,
            self.retry_flag,
            self.broker_name,
            self.queue_id
        );
        if let Some(offset) = self.queue_offset {
            let _ = write!(text, " {offset}");
        }
        text
    }

    /// Parses a handle; `None` when it does not have Java's shape (the remark then says the
    /// handle is illegal).
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.split(' ');
        let mut next = || parts.next();
        let ck_start_offset = next()?.parse().ok()?;
        let pop_time_ms = next()?.parse().ok()?;
        let invisible_ms = next()?.parse().ok()?;
        let revive_qid = next()?.parse().ok()?;
        let retry_flag = next()?.to_owned();
        let broker_name = next()?.to_owned();
        let queue_id = next()?.parse().ok()?;
        let queue_offset = match next() {
            Some(offset) => Some(offset.parse().ok()?),
            None => None,
        };
        Some(Self {
            ck_start_offset,
            pop_time_ms,
            invisible_ms,
            revive_qid,
            retry_flag,
            broker_name,
            queue_id,
            queue_offset,
        })
    }

    /// The topic the message was read from: the consumed topic, or its pop retry topic.
    pub fn real_topic(&self, topic: &str, group: &str) -> String {
        match self.retry_flag.as_str() {
            RETRY_TOPIC_FLAG => retry_topic(topic, group),
            RETRY_TOPIC_V2_FLAG => retry_topic_v2(topic, group),
            _ => topic.to_owned(),
        }
    }
}

/// What a pop response says of all its messages, from which each message's handle is built.
#[derive(Debug, Clone, Copy)]
pub struct PopHeader<'a> {
    /// `startOffsetInfo`, parsed ([`parse_start_offsets`]).
    pub start_offsets: &'a HashMap<String, i64>,
    /// Pop time, epoch ms.
    pub pop_time_ms: i64,
    /// Invisible time, in ms.
    pub invisible_ms: i64,
    /// Revive queue of the pop's check points.
    pub revive_qid: i32,
    /// The broker that popped.
    pub broker_name: &'a str,
}

/// The receipt handle of one popped message, as Java's client builds it: the record's own
/// `POP_CK` when it carries one (a redelivery from the retry topic), else from the pop's start
/// offset of the message's queue. `None` when the response names no start offset for it.
pub fn popped_handle(
    header: &PopHeader<'_>,
    topic: &str,
    queue_id: i32,
    queue_offset: i64,
    pop_ck: Option<&str>,
) -> Option<String> {
    if let Some(handle) = pop_ck {
        return Some(handle.to_owned());
    }
    let start = header.start_offsets.get(&queue_key(topic, queue_id))?;
    Some(
        ExtraInfo {
            ck_start_offset: *start,
            pop_time_ms: header.pop_time_ms,
            invisible_ms: header.invisible_ms,
            revive_qid: header.revive_qid,
            retry_flag: retry_flag(topic).to_owned(),
            broker_name: header.broker_name.to_owned(),
            queue_id,
            queue_offset: Some(queue_offset),
        }
        .to_text(),
    )
}

/// The per-queue lists of a pop response, appended to queue by queue.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OffsetInfo {
    /// `startOffsetInfo`.
    pub start: String,
    /// `msgOffsetInfo`.
    pub messages: String,
    /// `orderCountInfo` (orderly pops only).
    pub order_count: String,
}

/// Appends `;` between entries, as Java's builders do.
fn separate(text: &mut String) {
    if !text.is_empty() {
        text.push(';');
    }
}

impl OffsetInfo {
    /// Records one queue read: its check point start and the offsets of its messages.
    pub fn add_queue(&mut self, topic: &str, queue_id: i32, start_offset: i64, offsets: &[i64]) {
        let flag = retry_flag(topic);
        separate(&mut self.start);
        let _ = write!(self.start, "{flag} {queue_id} {start_offset}");
        separate(&mut self.messages);
        let _ = write!(self.messages, "{flag} {queue_id} ");
        for (index, offset) in offsets.iter().enumerate() {
            if index > 0 {
                self.messages.push(',');
            }
            let _ = write!(self.messages, "{offset}");
        }
    }

    /// Records how often the message at `offset` was delivered before (orderly pops).
    pub fn add_offset_count(&mut self, topic: &str, queue_id: i32, offset: i64, count: u32) {
        separate(&mut self.order_count);
        let _ = write!(self.order_count, "{} qo{queue_id}%{offset} {count}", retry_flag(topic));
    }

    /// Records the fewest deliveries of a queue's messages (what older clients read).
    pub fn add_queue_count(&mut self, topic: &str, queue_id: i32, count: u32) {
        separate(&mut self.order_count);
        let _ = write!(self.order_count, "{} {queue_id} {count}", retry_flag(topic));
    }
}

/// The `startOffsetInfo` of a pop response: `<flag>@<queueId>` → start offset. Malformed
/// entries are left out.
pub fn parse_start_offsets(text: &str) -> HashMap<String, i64> {
    entries(text).filter_map(|(key, value)| Some((key, value.parse().ok()?))).collect()
}

/// The `orderCountInfo` of a pop response: `<flag>@<queueId>` or `<flag>@qo<queueId>%<offset>`
/// → earlier deliveries. Malformed entries are left out.
pub fn parse_order_counts(text: &str) -> HashMap<String, u32> {
    entries(text).filter_map(|(key, value)| Some((key, value.parse().ok()?))).collect()
}

/// The key of a queue in the parsed lists.
pub fn queue_key(topic: &str, queue_id: i32) -> String {
    format!("{}@{queue_id}", retry_flag(topic))
}

/// The key of one message in the parsed order counts.
pub fn offset_key(topic: &str, queue_id: i32, offset: i64) -> String {
    format!("{}@qo{queue_id}%{offset}", retry_flag(topic))
}

/// `a b c;d e f` as (`a@b`, `c`) pairs.
fn entries(text: &str) -> impl Iterator<Item = (String, &str)> {
    text.split(';').filter_map(|entry| {
        let mut parts = entry.split(' ');
        let (flag, queue, value) = (parts.next()?, parts.next()?, parts.next()?);
        Some((format!("{flag}@{queue}"), value))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_are_javas_text() {
        let info = ExtraInfo {
            ck_start_offset: 5,
            pop_time_ms: 1_700_000_000_000,
            invisible_ms: 30_000,
            revive_qid: 3,
            retry_flag: "1".into(),
            broker_name: "broker-a".into(),
            queue_id: 0,
            queue_offset: Some(7),
        };
        // Java: ExtraInfoUtil.buildExtraInfo(5, 1700000000000, 30000, 3, "%RETRY%G_T", "broker-a", 0, 7).
        assert_eq!(info.to_text(), "5 1700000000000 30000 3 1 broker-a 0 7");
        assert_eq!(ExtraInfo::parse(&info.to_text()), Some(info.clone()));
        assert_eq!(info.real_topic("T", "G"), "%RETRY%G_T");
        let short = ExtraInfo::parse("5 1 2 3 0 b 1").unwrap();
        assert_eq!((short.queue_offset, short.real_topic("T", "G").as_str()), (None, "T"));
        assert_eq!(ExtraInfo::parse("5 1 2"), None);
        assert_eq!(ExtraInfo::parse("x 1 2 3 0 b 1 9"), None);
    }

    #[test]
    fn offset_lists_are_javas_text() {
        let mut info = OffsetInfo::default();
        info.add_queue("%RETRY%G_T", 0, 4, &[4, 6]);
        info.add_queue("T", 2, 10, &[10]);
        assert_eq!(info.start, "1 0 4;0 2 10");
        assert_eq!(info.messages, "1 0 4,6;0 2 10");
        info.add_offset_count("T", 2, 10, 1);
        info.add_queue_count("T", 2, 1);
        assert_eq!(info.order_count, "0 qo2%10 1;0 2 1");
        assert_eq!(parse_start_offsets(&info.start)[&queue_key("%RETRY%G_T", 0)], 4);
        let counts = parse_order_counts(&info.order_count);
        assert_eq!((counts[&offset_key("T", 2, 10)], counts[&queue_key("T", 2)]), (1, 1));
    }
}
