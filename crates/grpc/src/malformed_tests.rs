//! Malformed requests as a client that nobody here wrote may send them: any strings, unknown
//! enum values, missing fields, extreme timestamps and durations, bodies past the limit,
//! compressed bodies that are not. The request mapping must answer each with a refusal or a
//! mapping, never panic, and never hand the broker a body past its limit.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};

use proptest::prelude::*;

use crate::consume::{duration_ms, Handle};
use crate::context::CallContext;
use crate::names;
use crate::pb::{Digest, Message, Resource, SystemProperties};
use crate::send::{prepare, timestamp_ms};

const MAX_BODY_BYTES: usize = 1024;

fn context() -> CallContext {
    CallContext {
        client_id: "fuzz-client".to_owned(),
        language: String::new(),
        client_version: String::new(),
        remote_addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 1)),
    }
}

fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9_%|-]{0,12}",
        ".{0,40}",
        Just(String::new()),
        Just(" ".to_owned()),
        Just("a\u{1}b\u{2}c".to_owned()),
    ]
}

fn any_timestamp() -> impl Strategy<Value = Option<prost_types::Timestamp>> {
    proptest::option::of(
        (any::<i64>(), any::<i32>()).prop_map(|(seconds, nanos)| prost_types::Timestamp { seconds, nanos }),
    )
}

prop_compose! {
    fn any_message()(
        topic in proptest::option::of(any_text()),
        user_properties in proptest::collection::hash_map(any_text(), any_text(), 0..6),
        has_system in any::<bool>(),
        tag in proptest::option::of(any_text()),
        keys in proptest::collection::vec(any_text(), 0..3),
        message_id in any_text(),
        body_encoding in any::<i32>(),
        message_type in any::<i32>(),
        digest_type in any::<i32>(),
        born_timestamp in any_timestamp(),
        delivery_timestamp in any_timestamp(),
        message_group in proptest::option::of(any_text()),
        recovery in proptest::option::of((any::<i64>(), any::<i32>())),
        body in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..64),
            (MAX_BODY_BYTES - 2..MAX_BODY_BYTES + 64).prop_map(|len| vec![b'x'; len]),
        ],
    ) -> Message {
        let system = SystemProperties {
            tag,
            keys,
            message_id,
            body_digest: Some(Digest { r#type: digest_type, checksum: String::new() }),
            body_encoding,
            message_type,
            born_timestamp,
            delivery_timestamp,
            message_group,
            orphaned_transaction_recovery_duration: recovery
                .map(|(seconds, nanos)| prost_types::Duration { seconds, nanos }),
            ..SystemProperties::default()
        };
        Message {
            topic: topic.map(|name| Resource { resource_namespace: String::new(), name }),
            user_properties: user_properties.into_iter().collect::<HashMap<_, _>>(),
            system_properties: has_system.then_some(system),
            body,
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

    #[test]
    fn a_send_of_anything_is_mapped_or_refused(message in any_message()) {
        let topic = names::topic(message.topic.as_ref()).unwrap_or("FuzzTopic");
        if let Ok(outgoing) = prepare(&message, topic, &context(), MAX_BODY_BYTES) {
            prop_assert!(outgoing.body.len() <= MAX_BODY_BYTES, "{} bytes passed", outgoing.body.len());
            prop_assert!(!outgoing.body.is_empty());
        }
    }

    #[test]
    fn any_receipt_handle_parses_or_is_refused(text in ".{0,200}", fields in proptest::collection::vec("[0-9a-zA-Z_%-]{0,10}", 0..12)) {
        for candidate in [text, fields.join(" ")] {
            if let Ok(handle) = Handle::parse(&candidate) {
                // What parses is a handle that prints back to one that parses the same.
                let again = Handle::parse(&handle.to_text()).expect("a printed handle parses");
                prop_assert_eq!(again.to_text(), handle.to_text());
            }
        }
    }

    #[test]
    fn extreme_times_do_not_overflow(seconds in any::<i64>(), nanos in any::<i32>()) {
        let _ = timestamp_ms(&prost_types::Timestamp { seconds, nanos });
        let _ = duration_ms(&prost_types::Duration { seconds, nanos });
    }
}
