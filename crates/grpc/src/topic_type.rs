//! A topic's message type (`message.type` attribute, spec §5.2 step 4 and §5.5 step 11): what
//! the route advertises as accepted and what a send must match.

use apogee_broker::core::admin::attributes::MESSAGE_TYPE;
use apogee_common::message::property;
use apogee_common::message::Properties;
use apogee_common::topic::TopicConfig;

use crate::pb::MessageType;

/// The kinds a topic accepts. A topic without the attribute takes NORMAL messages; MIXED takes
/// every kind.
pub fn accepted(config: &TopicConfig) -> Vec<MessageType> {
    match config.attributes.get(MESSAGE_TYPE).map(String::as_str) {
        Some("FIFO") => vec![MessageType::Fifo],
        Some("DELAY") => vec![MessageType::Delay],
        Some("TRANSACTION") => vec![MessageType::Transaction],
        Some("MIXED") => {
            vec![MessageType::Normal, MessageType::Fifo, MessageType::Delay, MessageType::Transaction]
        }
        _ => vec![MessageType::Normal],
    }
}

/// The kind of a message by its stored properties, as the reference derives it: a transaction
/// flag, then a delivery time, then a message group.
pub fn of_message(properties: &Properties) -> MessageType {
    let is_true = |key| properties.get(key).is_some_and(|value| value.eq_ignore_ascii_case("true"));
    if is_true(property::TRAN_MSG) {
        MessageType::Transaction
    } else if [
        property::DELAY,
        property::TIMER_DELIVER_MS,
        property::TIMER_DELAY_SEC,
        property::TIMER_DELAY_MS,
    ]
    .iter()
    .any(|key| properties.get(key).is_some())
    {
        MessageType::Delay
    } else if properties.get(property::SHARDING_KEY).is_some() {
        MessageType::Fifo
    } else {
        MessageType::Normal
    }
}

/// The type name the refusal names.
pub fn name(kind: MessageType) -> &'static str {
    match kind {
        MessageType::Normal => "NORMAL",
        MessageType::Fifo => "FIFO",
        MessageType::Delay => "DELAY",
        MessageType::Transaction => "TRANSACTION",
        MessageType::Lite => "LITE",
        MessageType::Priority => "PRIORITY",
        MessageType::Unspecified => "UNSPECIFIED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(kind: Option<&str>) -> TopicConfig {
        let mut config = TopicConfig::new("T");
        if let Some(kind) = kind {
            config.attributes.insert(MESSAGE_TYPE.to_owned(), kind.to_owned());
        }
        config
    }

    #[test]
    fn topics_accept_their_type_and_mixed_accepts_all() {
        assert_eq!(accepted(&topic(None)), [MessageType::Normal]);
        assert_eq!(accepted(&topic(Some("FIFO"))), [MessageType::Fifo]);
        assert_eq!(accepted(&topic(Some("MIXED"))).len(), 4);
    }

    #[test]
    fn a_message_type_follows_its_properties() {
        let mut properties = Properties::new();
        assert_eq!(of_message(&properties), MessageType::Normal);
        properties.insert(property::SHARDING_KEY, "g");
        assert_eq!(of_message(&properties), MessageType::Fifo);
        properties.insert(property::TIMER_DELIVER_MS, "1");
        assert_eq!(of_message(&properties), MessageType::Delay);
        properties.insert(property::TRAN_MSG, "true");
        assert_eq!(of_message(&properties), MessageType::Transaction);
    }
}
