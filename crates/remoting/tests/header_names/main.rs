//! Every typed header held against the Java class it mirrors.
//!
//! The round-trip tests of the header modules encode and decode through the same key table, so
//! a key spelled differently from Java's passes them. Here the keys each header reads and writes
//! are compared with an oracle written independently of the code: the field names and
//! `@CFNotNull` flags of the Java classes, read from the Java sources at a named commit
//! (`tests/data/java_headers.txt`). A Rust header mirrors the Java class of the same name.

mod oracle;

use std::collections::BTreeSet;

use apogee_remoting::header::{admin, consumer, namesrv, pop, send, CommandHeader, HeaderError, HeaderKey};
use apogee_remoting::ExtFields;
use oracle::{Difference, Oracle};

/// One typed header of the crate, as the checks see it.
struct RustHeader {
    /// Module of `crate::header` declaring it.
    module: &'static str,
    /// Type name, which is the simple name of the Java class it mirrors.
    name: &'static str,
    /// Keys it reads and writes.
    keys: &'static [HeaderKey],
    /// Where its codec disagrees with `keys` (see [`codec_problems`]).
    codec_problems: fn() -> Vec<String>,
}

/// The list of headers from `module { Header, ... }` groups.
macro_rules! rust_headers {
    ($( $module:ident { $($header:ident),* $(,)? } )*) => {
        vec![$($(
            RustHeader {
                module: stringify!($module),
                name: stringify!($header),
                keys: <$module::$header as CommandHeader>::KEYS,
                codec_problems: codec_problems::<$module::$header>,
            },
        )*)*]
    };
}

/// Every header declared in `src/header`; [`every_declared_header_is_checked`] keeps the list
/// whole.
fn rust_headers() -> Vec<RustHeader> {
    rust_headers! {
        admin {
            CreateTopicRequestHeader, DeleteTopicRequestHeader, GetAllTopicConfigRequestHeader,
            GetAllTopicConfigResponseHeader, GetTopicStatsInfoRequestHeader,
            GetConsumeStatsRequestHeader, GetConsumerConnectionListRequestHeader,
            GetProducerConnectionListRequestHeader, DeleteSubscriptionGroupRequestHeader,
            GetTopicConfigRequestHeader, QueryTopicConsumeByWhoRequestHeader,
        }
        consumer {
            HeartbeatRequestHeader, UnregisterClientRequestHeader,
            GetConsumerListByGroupRequestHeader, PullMessageRequestHeader,
            PullMessageResponseHeader, QueryConsumerOffsetRequestHeader,
            QueryConsumerOffsetResponseHeader, UpdateConsumerOffsetRequestHeader,
            GetMaxOffsetRequestHeader, GetMaxOffsetResponseHeader, GetMinOffsetRequestHeader,
            GetMinOffsetResponseHeader, SearchOffsetRequestHeader, SearchOffsetResponseHeader,
            GetEarliestMsgStoretimeRequestHeader, GetEarliestMsgStoretimeResponseHeader,
            LockBatchMqRequestHeader, UnlockBatchMqRequestHeader,
            ConsumerSendMsgBackRequestHeader, NotifyConsumerIdsChangedRequestHeader,
            ViewMessageRequestHeader, QueryMessageRequestHeader, QueryMessageResponseHeader,
            GetConsumerRunningInfoRequestHeader, ResetOffsetRequestHeader,
            ConsumeMessageDirectlyResultRequestHeader,
        }
        namesrv {
            GetRouteInfoRequestHeader, RegisterBrokerRequestHeader, RegisterBrokerResponseHeader,
            UnRegisterBrokerRequestHeader, QueryDataVersionRequestHeader,
            QueryDataVersionResponseHeader, BrokerHeartbeatRequestHeader,
            GetTopicsByClusterRequestHeader, DeleteTopicFromNamesrvRequestHeader,
            RegisterTopicRequestHeader, PutKVConfigRequestHeader, GetKVConfigRequestHeader,
            GetKVConfigResponseHeader, DeleteKVConfigRequestHeader,
            GetKVListByNamespaceRequestHeader, WipeWritePermOfBrokerRequestHeader,
            WipeWritePermOfBrokerResponseHeader, AddWritePermOfBrokerRequestHeader,
            AddWritePermOfBrokerResponseHeader, GetBrokerMemberGroupRequestHeader,
        }
        pop {
            PopMessageRequestHeader, PopMessageResponseHeader, AckMessageRequestHeader,
            ChangeInvisibleTimeRequestHeader, ChangeInvisibleTimeResponseHeader,
            NotificationRequestHeader, NotificationResponseHeader, PollingInfoRequestHeader,
            PollingInfoResponseHeader,
        }
        send {
            SendMessageRequestHeader, SendMessageRequestHeaderV2, SendMessageResponseHeader,
            EndTransactionRequestHeader, CheckTransactionStateRequestHeader, ReplyMessageRequestHeader,
            RecallMessageRequestHeader, RecallMessageResponseHeader,
        }
    }
}

fn load_oracle() -> Oracle {
    Oracle::parse(oracle::TEXT).unwrap_or_else(|error| panic!("tests/data/java_headers.txt: {error}"))
}

/// Fails listing every problem at once, so one run shows the whole picture.
fn assert_no_problems(what: &str, problems: &[String]) {
    assert!(problems.is_empty(), "{what}: {} problem(s):\n  {}", problems.len(), problems.join("\n  "));
}

/// Where `KEYS` does not describe the codec of `H`: a default header must write exactly its
/// required keys, decode back, and fail to decode with that key missing when any one of them is
/// dropped. This ties the keys compared with Java to what actually travels.
fn codec_problems<H: CommandHeader + Default + std::fmt::Debug>() -> Vec<String> {
    let encode_default = || {
        let mut fields = ExtFields::default();
        H::default().encode(&mut fields);
        fields
    };
    let mut problems = Vec::new();
    let fields = encode_default();
    let written: BTreeSet<&str> = fields.keys().collect();
    let required: BTreeSet<&str> = H::KEYS.iter().filter(|key| key.required).map(|key| key.name).collect();
    if written != required {
        problems.push(format!("a default header writes {written:?}, its required keys are {required:?}"));
    }
    if let Err(error) = H::decode(&fields) {
        problems.push(format!("its own required keys do not decode: {error}"));
    }
    for key in required {
        let mut without = encode_default();
        without.remove(key);
        match H::decode(&without) {
            Err(HeaderError::Missing(missing)) if missing == key => {}
            other => problems.push(format!("without required key {key} decoding gives {other:?}")),
        }
    }
    problems
}

/// The index of the kept difference allowing `difference` on `field` of `class`, where the
/// field is declared by `declared_by` (the class itself or a superclass).
fn find_known(
    oracle: &Oracle,
    class: &str,
    declared_by: &str,
    field: &str,
    difference: Difference,
) -> Option<usize> {
    oracle.known.iter().position(|known| {
        (known.class == class || known.class == declared_by)
            && known.field == field
            && known.difference == difference
    })
}

/// Compares one header with its Java class, marking in `used` each kept difference it needed.
fn compare(header: &RustHeader, oracle: &Oracle, used: &mut BTreeSet<usize>) -> Vec<String> {
    let class = header.name;
    let java = match oracle.wire_fields(class) {
        Ok(fields) => fields,
        Err(error) => {
            return vec![format!("{}::{class}: no Java class to compare with ({error})", header.module)]
        }
    };
    let path = oracle.classes.get(class).map_or("", |java_class| java_class.path.as_str());
    let mut problems = Vec::new();
    let mut allow = |declared_by: &str, field: &str, difference: Difference, problem: String| {
        let known = find_known(oracle, class, declared_by, field, difference);
        match known {
            Some(index) => {
                used.insert(index);
            }
            None => problems.push(format!("{}::{class}: {problem} (Java: {path})", header.module)),
        }
    };
    for (name, inherited) in &java {
        let declared_by = inherited.declared_by.as_str();
        let from = if declared_by == class { String::new() } else { format!(" (from {declared_by})") };
        match header.keys.iter().find(|key| key.name == name) {
            None => {
                allow(declared_by, name, Difference::Absent, format!("Java field {name}{from} is not a key"))
            }
            Some(key) if key.required == inherited.field.required => {}
            Some(key) => {
                let (difference, what) = if key.required {
                    (Difference::Required, "required, Java's is not @CFNotNull")
                } else {
                    (Difference::Optional, "optional, Java's is @CFNotNull")
                };
                allow(declared_by, name, difference, format!("key {name}{from} is {what}"));
            }
        }
    }
    for key in header.keys.iter().filter(|key| !java.contains_key(key.name)) {
        allow(
            class,
            key.name,
            Difference::Extra,
            format!("key {} is not a field of the Java class", key.name),
        );
    }
    problems
}

#[test]
fn every_header_matches_its_java_class() {
    let oracle = load_oracle();
    let headers = rust_headers();
    let mut used = BTreeSet::new();
    let mut problems: Vec<String> =
        headers.iter().flat_map(|header| compare(header, &oracle, &mut used)).collect();
    for (index, known) in oracle.known.iter().enumerate().filter(|(index, _)| !used.contains(index)) {
        problems.push(format!(
            "known difference {index} ({} {} {:?}: {}) no longer holds or names no class: remove it",
            known.class, known.field, known.difference, known.reason
        ));
    }
    let mirrored: BTreeSet<&str> = headers.iter().map(|header| header.name).collect();
    let superclasses = oracle.superclasses();
    for name in oracle.classes.keys() {
        if !mirrored.contains(name.as_str()) && !superclasses.contains(&name.as_str()) {
            problems.push(format!("Java class {name} is listed but no Rust header mirrors it"));
        }
    }
    let fields_checked: usize =
        headers.iter().map(|header| oracle.wire_fields(header.name).map_or(0, |fields| fields.len())).sum();
    eprintln!(
        "{} headers checked against {} Java classes ({} with superclasses), {fields_checked} Java fields, {} kept differences; {} at {}",
        headers.len(),
        mirrored.len(),
        oracle.classes.len(),
        oracle.known.len(),
        oracle.source,
        oracle.commit,
    );
    assert_no_problems("headers against the Java classes", &problems);
}

#[test]
fn keys_describe_the_codec() {
    let problems: Vec<String> = rust_headers()
        .iter()
        .flat_map(|header| {
            (header.codec_problems)()
                .into_iter()
                .map(move |problem| format!("{}::{}: {problem}", header.module, header.name))
        })
        .collect();
    assert_no_problems("keys against the codec", &problems);
}

/// The names of the structs declared with `command_header!` in `source` (the macro's own
/// rules, which declare `pub struct $name`, name none).
fn declared_headers(source: &str) -> Vec<&str> {
    source
        .split("command_header! {")
        .skip(1)
        .filter_map(|block| {
            let after = block.split_once("pub struct ")?.1;
            after.split(|c: char| !c.is_alphanumeric() && c != '_').next().filter(|name| !name.is_empty())
        })
        .collect()
}

#[test]
fn every_declared_header_is_checked() {
    let header_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/header");
    let entries = std::fs::read_dir(&header_dir).expect("src/header is readable");
    let mut declared = BTreeSet::new();
    for entry in entries {
        let path = entry.expect("src/header lists").path();
        if path.extension().is_some_and(|extension| extension == "rs") {
            let source = std::fs::read_to_string(&path).expect("header source is readable");
            let module = path.file_stem().and_then(|stem| stem.to_str()).unwrap_or_default().to_owned();
            declared
                .extend(declared_headers(&source).into_iter().map(|name| (module.clone(), name.to_owned())));
        }
    }
    let listed: BTreeSet<(String, String)> =
        rust_headers().iter().map(|header| (header.module.to_owned(), header.name.to_owned())).collect();
    let mut problems: Vec<String> = declared
        .difference(&listed)
        .map(|(module, name)| format!("{module}::{name} is declared but not in rust_headers()"))
        .collect();
    problems.extend(
        listed
            .difference(&declared)
            .map(|(module, name)| format!("{module}::{name} is listed but not declared")),
    );
    assert_no_problems("the list of headers", &problems);
}

#[test]
fn the_oracle_reads_the_walk_java_does() {
    let oracle = load_oracle();
    let fields = oracle.wire_fields("PullMessageRequestHeader").expect("listed");
    let inherited = |name: &str| fields.get(name).map(|field| field.declared_by.as_str());
    assert_eq!(inherited("consumerGroup"), Some("PullMessageRequestHeader"));
    assert_eq!(inherited("lo"), Some("TopicRequestHeader"));
    assert_eq!(inherited("bname"), Some("RpcRequestHeader"));
    assert!(fields["topic"].field.required && !fields["subscription"].field.required);
}
