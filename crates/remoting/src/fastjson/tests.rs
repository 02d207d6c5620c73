use std::collections::{BTreeMap, HashMap};

use apogee_common::MessageQueue;
use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::*;

fn text<T: Serialize + ?Sized>(value: &T, dialect: Dialect) -> String {
    String::from_utf8(to_vec(value, dialect).unwrap()).unwrap()
}

#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct Sample {
    // Declared out of order on purpose: the writer sorts like fastjson.
    zeta: i32,
    alpha: Option<String>,
    broker_addrs: BTreeMap<i64, String>,
    offsets: BTreeMap<MessageQueue, i64>,
    ratio: f64,
    flag: bool,
    names: Vec<String>,
}

#[test]
fn numeric_keys_are_bare_in_fastjson_and_quoted_in_standard() {
    let addrs: BTreeMap<i64, &str> = [(0, "10.0.0.1:10911"), (1, "10.0.0.2:10911")].into();
    assert_eq!(text(&addrs, Dialect::Fastjson), r#"{0:"10.0.0.1:10911",1:"10.0.0.2:10911"}"#);
    assert_eq!(text(&addrs, Dialect::Standard), r#"{"0":"10.0.0.1:10911","1":"10.0.0.2:10911"}"#);
}

#[test]
fn struct_keys_are_bare_objects_in_fastjson_and_quoted_text_in_standard() {
    let offsets: BTreeMap<MessageQueue, i64> = [(MessageQueue::new("T", "b", 0), 5)].into();
    assert_eq!(text(&offsets, Dialect::Fastjson), r#"{{"brokerName":"b","queueId":0,"topic":"T"}:5}"#);
    assert_eq!(
        text(&offsets, Dialect::Standard),
        r#"{"{\"brokerName\":\"b\",\"queueId\":0,\"topic\":\"T\"}":5}"#
    );
}

#[test]
fn struct_properties_are_sorted_and_nulls_left_out() {
    let sample = Sample { zeta: 1, ratio: 0.5, ..Sample::default() };
    assert_eq!(
        text(&sample, Dialect::Fastjson),
        r#"{"brokerAddrs":{},"flag":false,"names":[],"offsets":{},"ratio":0.5,"zeta":1}"#
    );
}

#[test]
fn null_map_values_are_left_out_but_null_list_items_kept() {
    let map: BTreeMap<&str, Option<i32>> = [("a", None), ("b", Some(1))].into();
    assert_eq!(text(&map, Dialect::Fastjson), r#"{"b":1}"#);
    let list = vec![None, Some(2)];
    assert_eq!(text(&list, Dialect::Fastjson), "[null,2]");
}

#[test]
fn standard_dialect_sorts_unsorted_maps_like_a_tree_map() {
    let numbers: HashMap<i64, i32> = (-5..20).map(|key| (key * 7, 0)).collect();
    let written = text(&numbers, Dialect::Standard);
    let keys: Vec<i64> = serde_json::from_str::<serde_json::Map<String, Value>>(&written)
        .unwrap()
        .keys()
        .map(|key| key.parse().unwrap())
        .collect();
    assert_eq!(written.find("\"-35\""), Some(1), "{written}");
    assert_eq!(keys.len(), 25);
    // UTF-16 order: U+FF5E sorts after U+1F600's high surrogate (0xD83D).
    let strings: HashMap<&str, i32> = [("\u{ff5e}", 1), ("\u{1f600}", 2), ("b", 3), ("a", 4)].into();
    assert_eq!(text(&strings, Dialect::Standard), r#"{"a":4,"b":3,"\uD83D\uDE00":2,"\uFF5E":1}"#);
}

#[test]
fn strings_are_escaped_like_fastjson() {
    let input = "q\"b\\s/\u{8}\u{c}\n\r\t\u{0}\u{b}\u{1f}\u{7f}\u{85}\u{a0}é\u{2028}\u{1f600}";
    assert_eq!(
        text(input, Dialect::Fastjson),
        "\"q\\\"b\\\\s/\\b\\f\\n\\r\\t\\u0000\\u000B\\u001F\\u007F\\u0085\u{a0}é\\u2028\u{1f600}\""
    );
    assert_eq!(
        text(input, Dialect::Standard),
        "\"q\\\"b\\\\s\\/\\b\\f\\n\\r\\t\\u0000\\u000B\\u001F\\u007F\\u0085\\u00A0\\u00E9\\u2028\\uD83D\\uDE00\""
    );
}

#[test]
fn numbers_are_written_like_java() {
    assert_eq!(text(&0.0f64, Dialect::Fastjson), "0.0");
    assert_eq!(text(&f64::NAN, Dialect::Fastjson), "null");
    assert_eq!(text(&1.0e7f64, Dialect::Fastjson), "1.0E7");
    assert_eq!(text(&9_007_199_254_740_991i64, Dialect::Standard), "9007199254740991");
    assert_eq!(text(&9_007_199_254_740_992i64, Dialect::Standard), "\"9007199254740992\"");
    assert_eq!(text(&i64::MIN, Dialect::Standard), "\"-9223372036854775808\"");
    assert_eq!(text(&i64::MIN, Dialect::Fastjson), "-9223372036854775808");
    assert_eq!(text(&u64::MAX, Dialect::Fastjson), "18446744073709551615");
}

#[test]
fn bytes_are_base64() {
    let bytes = serde_bytes_like(b"hi!");
    assert_eq!(text(&bytes, Dialect::Fastjson), "\"aGkh\"");
}

/// A `Vec<u8>` that serializes with `serialize_bytes`.
fn serde_bytes_like(data: &[u8]) -> impl Serialize + '_ {
    struct Bytes<'a>(&'a [u8]);
    impl Serialize for Bytes<'_> {
        fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.serialize_bytes(self.0)
        }
    }
    Bytes(data)
}

#[test]
fn reads_bare_and_quoted_number_keys() {
    let bare: BTreeMap<i64, String> = from_slice(br#"{0:"a", -1 : "b", 7L:"c"}"#).unwrap();
    let quoted: BTreeMap<i64, String> = from_slice(br#"{"0":"a","-1":"b","7":"c"}"#).unwrap();
    assert_eq!(bare, quoted);
    assert_eq!(bare.get(&-1).map(String::as_str), Some("b"));
    // Into untyped values the keys stay text.
    let value: Value = from_slice(br#"{0:{1:true}}"#).unwrap();
    assert_eq!(value, json!({"0": {"1": true}}));
}

#[test]
fn reads_bare_and_quoted_object_keys() {
    let expected: BTreeMap<MessageQueue, i64> =
        [(MessageQueue::new("T", "b", 0), 5), (MessageQueue::new("T", "b", 1), 6)].into();
    let bare = br#"{{"brokerName":"b","queueId":0,"topic":"T"}:5,{ "topic" : "T", "queueId":"1","brokerName":"b" }:6}"#;
    assert_eq!(from_slice::<BTreeMap<MessageQueue, i64>>(bare).unwrap(), expected);
    let quoted = br#"{"{\"brokerName\":\"b\",\"queueId\":0,\"topic\":\"T\"}":5,"{\"brokerName\":\"b\",\"queueId\":1,\"topic\":\"T\"}":6}"#;
    assert_eq!(from_slice::<BTreeMap<MessageQueue, i64>>(quoted).unwrap(), expected);
}

#[test]
fn converts_scalars_like_fastjson() {
    let sample: Sample = from_slice(
        br#"{"zeta":"42","ratio":"1.5","flag":"true","names":[1,true,"x",null],"alpha":7,"unknown":{"deep":[1,2]}}"#,
    )
    .unwrap();
    assert_eq!(sample.zeta, 42);
    assert_eq!(sample.ratio, 1.5);
    assert!(sample.flag);
    assert_eq!(sample.names, ["1", "true", "x", ""]);
    assert_eq!(sample.alpha.as_deref(), Some("7"));
    let truncated: Sample = from_slice(br#"{"zeta":3.9,"flag":1}"#).unwrap();
    assert_eq!((truncated.zeta, truncated.flag), (3, true));
    let blank: Sample = from_slice(br#"{"zeta":"","ratio":""}"#).unwrap();
    assert_eq!((blank.zeta, blank.ratio), (0, 0.0));
}

#[test]
fn null_reads_as_absent_anywhere() {
    let sample: Sample = from_slice(
        br#"{"zeta":null,"alpha":null,"brokerAddrs":null,"offsets":{{"brokerName":null,"queueId":null,"topic":"T"}:null},"flag":null,"names":null}"#,
    )
    .unwrap();
    let expected = Sample { offsets: [(MessageQueue::new("T", "", 0), 0)].into(), ..Sample::default() };
    assert_eq!(sample, expected);
    assert_eq!(from_slice::<Sample>(b"null").unwrap(), Sample::default());
    assert_eq!(from_slice::<Option<Sample>>(b" null ").unwrap(), None);
}

#[test]
fn accepts_fastjson_syntax_extensions() {
    let value: Value = from_slice(
        b"\xef\xbb\xbf{'a':'x\\'y', b : [1,2,], c:undefined, 'd':\"\\x41\\u00e9\\uD83D\\uDE00\",}",
    )
    .unwrap();
    assert_eq!(value, json!({"a": "x'y", "b": [1, 2], "c": null, "d": "Aé\u{1f600}"}));
    let lone: String = from_slice(br#""\uD800x""#).unwrap();
    assert_eq!(lone, "\u{fffd}x");
}

#[test]
fn errors_say_what_and_where() {
    let error =
        from_slice::<Sample>(br#"{"offsets":{{"brokerName":"b","queueId":0,"topic":"T"}:"x"}}"#).unwrap_err();
    assert_eq!(error.to_string(), r#"expected an integer, found the string "x" (at offsets.{...})"#);
    let error = from_slice::<Sample>(br#"{"names":["a",{"b":1}],"zeta":[]}"#).unwrap_err();
    assert_eq!(error.to_string(), "expected an integer, found an array (at zeta)");
    let error = from_slice::<Sample>(br#"{"zeta" 1}"#).unwrap_err();
    assert_eq!(
        error.to_string(),
        "invalid JSON body at byte 8: expected ':' after an object key (found '1')"
    );
    assert_eq!(from_slice::<Sample>(b"  ").unwrap_err().to_string(), "the body is empty");
    assert!(from_slice::<Sample>(b"{} x").unwrap_err().to_string().contains("after the end"));
    assert!(from_slice::<Value>(br#"{"a":"unterminated"#)
        .unwrap_err()
        .to_string()
        .contains("unterminated string"));
}

#[test]
fn nesting_is_limited() {
    let deep = |levels: usize| format!("{}{}", "[".repeat(levels), "]".repeat(levels));
    assert!(from_slice::<Value>(deep(128).as_bytes()).is_ok());
    let error = from_slice::<Value>(deep(129).as_bytes()).unwrap_err();
    assert!(error.to_string().contains("deeper than 128"), "{error}");
    let hostile = "[".repeat(1_000_000);
    assert!(from_slice::<Value>(hostile.as_bytes()).is_err());
    // Arrays inside an object key count towards the limit too.
    let deep_key = format!("{{{{\"a\":{}}}:1}}", deep(127));
    let error = from_slice::<Value>(deep_key.as_bytes()).unwrap_err();
    assert!(error.to_string().contains("deeper than 128"), "{error}");
    assert!(from_slice::<Value>(format!("{{{{\"a\":{}}}:1}}", deep(126)).as_bytes()).is_ok());
}

#[test]
fn enums_read_by_name_or_ordinal() {
    #[derive(Debug, PartialEq, Deserialize)]
    enum Mode {
        Pull,
        Push,
    }
    assert_eq!(from_slice::<Mode>(br#""Push""#).unwrap(), Mode::Push);
    assert_eq!(from_slice::<Mode>(b"0").unwrap(), Mode::Pull);
    assert!(from_slice::<Mode>(b"9").is_err());
}

fn mutated(base: Vec<u8>, edits: Vec<(usize, u8)>) -> Vec<u8> {
    let mut bytes = base;
    for (position, byte) in edits {
        if bytes.is_empty() {
            break;
        }
        let index = position % bytes.len();
        match byte % 3 {
            0 => bytes[index] = byte,
            1 => {
                bytes.remove(index);
            }
            _ => bytes.insert(index, byte),
        }
    }
    bytes
}

fn any_message_queue() -> impl Strategy<Value = MessageQueue> {
    (any::<String>(), any::<String>(), any::<i32>())
        .prop_map(|(topic, broker, id)| MessageQueue::new(topic, broker, id))
}

proptest! {
    #[test]
    fn reading_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = from_slice::<Value>(&bytes);
        let _ = from_slice::<Sample>(&bytes);
        let _ = from_slice::<BTreeMap<MessageQueue, i64>>(&bytes);
    }

    #[test]
    fn reading_json_like_noise_never_panics(
        bytes in proptest::collection::vec(proptest::sample::select(br#"{}[]:,"'0123456789-+.eEL tfnrul\/ux{}"#.to_vec()), 0..160),
    ) {
        let _ = from_slice::<Value>(&bytes);
        let _ = from_slice::<Sample>(&bytes);
        let _ = from_slice::<BTreeMap<MessageQueue, i64>>(&bytes);
        let _ = from_slice::<Vec<BTreeMap<i64, Option<String>>>>(&bytes);
    }

    #[test]
    fn reading_mutated_bodies_never_panics(
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        standard in any::<bool>(),
    ) {
        let sample = Sample {
            zeta: 5,
            alpha: Some("é\"x".into()),
            broker_addrs: [(0, "a:1".into()), (1, "b:2".into())].into(),
            offsets: [(MessageQueue::new("T", "b", 3), 9)].into(),
            ratio: 2.5,
            flag: true,
            names: vec!["n".into()],
        };
        let dialect = if standard { Dialect::Standard } else { Dialect::Fastjson };
        let bytes = mutated(to_vec(&sample, dialect).unwrap(), edits);
        let _ = from_slice::<Value>(&bytes);
        let _ = from_slice::<Sample>(&bytes);
    }

    #[test]
    fn strings_round_trip(value in any::<String>(), standard in any::<bool>()) {
        let dialect = if standard { Dialect::Standard } else { Dialect::Fastjson };
        let bytes = to_vec(&value, dialect).unwrap();
        prop_assert_eq!(from_slice::<String>(&bytes).unwrap(), value.clone());
        // What we write is also plain JSON whenever keys are strings.
        prop_assert_eq!(serde_json::from_slice::<String>(&bytes).unwrap(), value);
    }

    #[test]
    fn numbers_round_trip(integer in any::<i64>(), unsigned in any::<u64>(), decimal in any::<f64>(), standard in any::<bool>()) {
        let dialect = if standard { Dialect::Standard } else { Dialect::Fastjson };
        prop_assert_eq!(from_slice::<i64>(&to_vec(&integer, dialect).unwrap()).unwrap(), integer);
        prop_assert_eq!(from_slice::<u64>(&to_vec(&unsigned, dialect).unwrap()).unwrap(), unsigned);
        let read = from_slice::<f64>(&to_vec(&decimal, dialect).unwrap()).unwrap();
        if decimal.is_finite() {
            prop_assert_eq!(read.to_bits(), decimal.to_bits());
        } else {
            prop_assert_eq!(read, 0.0);
        }
    }

    #[test]
    fn keyed_maps_round_trip(
        by_id in proptest::collection::btree_map(any::<i64>(), any::<String>(), 0..6),
        by_queue in proptest::collection::btree_map(any_message_queue(), any::<i64>(), 0..6),
        by_name in proptest::collection::btree_map(any::<String>(), any::<bool>(), 0..6),
        standard in any::<bool>(),
    ) {
        let dialect = if standard { Dialect::Standard } else { Dialect::Fastjson };
        prop_assert_eq!(from_slice::<BTreeMap<i64, String>>(&to_vec(&by_id, dialect).unwrap()).unwrap(), by_id);
        prop_assert_eq!(from_slice::<BTreeMap<MessageQueue, i64>>(&to_vec(&by_queue, dialect).unwrap()).unwrap(), by_queue);
        prop_assert_eq!(from_slice::<BTreeMap<String, bool>>(&to_vec(&by_name, dialect).unwrap()).unwrap(), by_name);
    }

    #[test]
    fn standard_dialect_is_ascii_json(
        by_id in proptest::collection::btree_map(any::<i64>(), any::<String>(), 0..6),
        by_queue in proptest::collection::btree_map(any_message_queue(), any::<i64>(), 0..4),
    ) {
        for bytes in [to_vec(&by_id, Dialect::Standard).unwrap(), to_vec(&by_queue, Dialect::Standard).unwrap()] {
            prop_assert!(bytes.is_ascii());
            prop_assert!(serde_json::from_slice::<Value>(&bytes).is_ok());
        }
    }
}

#[test]
fn object_keys_inside_object_keys_do_not_blow_up() {
    let levels = 40;
    let hostile = format!("{}1{}", "{".repeat(levels), ":\"\\\"\"}".repeat(levels));
    let started = std::time::Instant::now();
    let result = from_slice::<Value>(hostile.as_bytes());
    assert!(started.elapsed() < std::time::Duration::from_secs(2), "{:?}", started.elapsed());
    let error = result.unwrap_err();
    assert!(error.to_string().contains("may not itself contain object keys"), "{error}");
    // One level of object keys, with object values inside, is what peers write and is fine.
    let fine: BTreeMap<MessageQueue, Value> =
        from_slice(br#"{{"brokerName":"b","queueId":0,"topic":"T"}:{"x":{1:2}}}"#).unwrap();
    assert_eq!(fine.values().next(), Some(&json!({"x": {"1": 2}})));
}
