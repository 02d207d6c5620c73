//! NameServer bodies other than routes: topic lists, KV tables and broker registration
//! (spec §3.2), plus the topic-config wrappers brokers also answer GET_ALL_TOPIC_CONFIG with.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};

use apogee_common::{DataVersion, TopicConfig, TopicFilterType};
use flate2::read::ZlibDecoder;
use flate2::write::ZlibEncoder;
use flate2::Compression;
use serde::{Deserialize, Serialize};

use super::static_topic::{TopicQueueMappingDetail, TopicQueueMappingInfo};
use crate::fastjson::{self, BodyError, Dialect};

/// Version ordinal V3_0_11: brokers older than this register with a bare
/// [`TopicConfigSerializeWrapper`] instead of a [`RegisterBrokerBody`].
pub const VERSION_REGISTER_BROKER_BODY: i32 = 37;

/// Version ordinal V5_0_0: from here on the compressed [`RegisterBrokerBody`] ends with the
/// static-topic mapping section.
pub const VERSION_COMPRESSED_MAPPINGS: i32 = 413;

/// Largest inflated size accepted for a compressed [`RegisterBrokerBody`], so that a small
/// hostile stream cannot make the namesrv allocate without bound. A broker with 100 000 topics
/// inflates to roughly 20 MiB.
pub const MAX_INFLATED_REGISTER_BODY: u64 = 256 * 1024 * 1024;

/// A set of topic names (Java `TopicList`): the response body of
/// GET_ALL_TOPIC_LIST_FROM_NAMESERVER, GET_TOPICS_BY_CLUSTER, GET_SYSTEM_TOPIC_LIST_FROM_NS and
/// the broker's GET_SYSTEM_TOPIC_LIST_FROM_BROKER.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TopicList {
    /// Set by system-topic listings to the answering broker's address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broker_addr: Option<String>,
    /// The topic names (a Java `Set`, written as an array).
    pub topic_list: BTreeSet<String>,
}

/// A string-to-string table (Java `KVTable`): the response body of GET_KVLIST_BY_NAMESPACE,
/// of REGISTER_BROKER (the `ORDER_TOPIC_CONFIG` namespace) and of GET_BROKER_RUNTIME_INFO
/// (broker statistics, every value a string).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct KVTable {
    /// Key → value.
    pub table: BTreeMap<String, String>,
}

/// A broker's topic table with its version (Java `TopicConfigSerializeWrapper`): the whole
/// REGISTER_BROKER body of brokers older than V3_0_11, and the broker's persisted
/// `topics.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TopicConfigSerializeWrapper {
    /// Version of the table.
    pub data_version: DataVersion,
    /// Topic name → configuration.
    pub topic_config_table: BTreeMap<String, TopicConfig>,
}

/// A broker's topic table plus its 5.x static-topic mappings (Java
/// `TopicConfigAndMappingSerializeWrapper`): the response body of GET_ALL_TOPIC_CONFIG and the
/// `topicConfigSerializeWrapper` of a [`RegisterBrokerBody`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TopicConfigAndMappingSerializeWrapper {
    /// Version of the topic table.
    pub data_version: DataVersion,
    /// Version of the mapping tables.
    pub mapping_data_version: DataVersion,
    /// Topic name → configuration.
    pub topic_config_table: BTreeMap<String, TopicConfig>,
    /// Topic → mapping detail (static topics hosted here).
    pub topic_queue_mapping_detail_map: BTreeMap<String, TopicQueueMappingDetail>,
    /// Topic → mapping summary.
    pub topic_queue_mapping_info_map: BTreeMap<String, TopicQueueMappingInfo>,
}

/// What a broker registers with every namesrv (Java `RegisterBrokerBody`): the request body of
/// REGISTER_BROKER. Sent as JSON, or zlib-compressed in a length-prefixed layout when the
/// request header says `compressed=true`; see [`RegisterBrokerBody::encode`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RegisterBrokerBody {
    /// Filter server addresses (a retired feature; normally empty).
    pub filter_server_list: Vec<String>,
    /// The broker's topics and mappings.
    pub topic_config_serialize_wrapper: TopicConfigAndMappingSerializeWrapper,
}

/// The pre-V3_0_11 body, written from borrowed parts.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LegacyRegisterBody<'a> {
    data_version: &'a DataVersion,
    topic_config_table: &'a BTreeMap<String, TopicConfig>,
}

impl RegisterBrokerBody {
    /// Encodes the body for a REGISTER_BROKER request of version `version` (the broker's own
    /// version ordinal) with header `compressed`.
    ///
    /// - `version` < 37 (V3_0_11): the bare [`TopicConfigSerializeWrapper`] JSON.
    /// - not compressed: this struct's JSON in the fastjson dialect.
    /// - compressed: a zlib stream (best compression) of, all integers big-endian `i32`:
    ///   `len` + DataVersion JSON; topic count; per topic `len` + TopicConfig text
    ///   (`name read write perm filterType attributesJSON`, space-separated);
    ///   `len` + filter-server-list JSON; and for `version` ≥ 413 (V5_0_0) the mapping count
    ///   followed by `len` + TopicQueueMappingInfo JSON for each `topicQueueMappingInfoMap`
    ///   entry. The compressed form does not carry `order`, `topicSysFlag`,
    ///   `mappingDataVersion` or the mapping details — the same loss as in Java.
    pub fn encode(&self, compressed: bool, version: i32) -> Result<Vec<u8>, BodyError> {
        let wrapper = &self.topic_config_serialize_wrapper;
        if version < VERSION_REGISTER_BROKER_BODY {
            let legacy = LegacyRegisterBody {
                data_version: &wrapper.data_version,
                topic_config_table: &wrapper.topic_config_table,
            };
            return fastjson::to_vec(&legacy, Dialect::Fastjson);
        }
        if !compressed {
            return fastjson::to_vec(self, Dialect::Fastjson);
        }
        let mut plain = Vec::new();
        push_block(&mut plain, &fastjson::to_vec(&wrapper.data_version, Dialect::Fastjson)?)?;
        push_count(&mut plain, wrapper.topic_config_table.len())?;
        for config in wrapper.topic_config_table.values() {
            push_block(&mut plain, topic_config_text(config)?.as_bytes())?;
        }
        push_block(&mut plain, &fastjson::to_vec(&self.filter_server_list, Dialect::Fastjson)?)?;
        if version >= VERSION_COMPRESSED_MAPPINGS {
            push_count(&mut plain, wrapper.topic_queue_mapping_info_map.len())?;
            for info in wrapper.topic_queue_mapping_info_map.values() {
                push_block(&mut plain, &fastjson::to_vec(info, Dialect::Fastjson)?)?;
            }
        }
        let mut encoder = ZlibEncoder::new(Vec::with_capacity(plain.len() / 4 + 64), Compression::best());
        encoder
            .write_all(&plain)
            .map_err(|error| BodyError::new(format!("zlib compression failed: {error}")))?;
        encoder.finish().map_err(|error| BodyError::new(format!("zlib compression failed: {error}")))
    }

    /// Decodes a REGISTER_BROKER body of request version `version` whose header says
    /// `compressed`; the inverse of [`RegisterBrokerBody::encode`]. An empty body reads as an
    /// empty registration (zero data version), as the Java namesrv treats a missing body.
    ///
    /// Reading the compressed form follows Java: a negative topic count means no topics, an
    /// unreadable filter-server list means an empty one, and bytes after the last section are
    /// ignored. A V5 stream that ends right before the mapping section is accepted too.
    pub fn decode(bytes: &[u8], compressed: bool, version: i32) -> Result<Self, BodyError> {
        if bytes.is_empty() {
            return Ok(Self::default());
        }
        if version < VERSION_REGISTER_BROKER_BODY {
            let legacy: TopicConfigSerializeWrapper = fastjson::from_slice(bytes)?;
            return Ok(Self {
                filter_server_list: Vec::new(),
                topic_config_serialize_wrapper: TopicConfigAndMappingSerializeWrapper {
                    data_version: legacy.data_version,
                    topic_config_table: legacy.topic_config_table,
                    ..TopicConfigAndMappingSerializeWrapper::default()
                },
            });
        }
        if !compressed {
            return fastjson::from_slice(bytes);
        }
        let mut stream = InflatedStream { reader: ZlibDecoder::new(bytes).take(MAX_INFLATED_REGISTER_BODY) };
        let mut body = Self::default();
        let wrapper = &mut body.topic_config_serialize_wrapper;
        wrapper.data_version = fastjson::from_slice(&stream.block("the data version")?)?;
        let topic_count = stream.int("the topic count")?;
        for _ in 0..topic_count.max(0) {
            let text = stream.block("a topic config")?;
            let config = parse_topic_config_text(&String::from_utf8_lossy(&text))?;
            wrapper.topic_config_table.insert(config.topic_name.clone(), config);
        }
        let filter_servers = stream.block("the filter server list")?;
        body.filter_server_list = fastjson::from_slice(&filter_servers).unwrap_or_default();
        if version >= VERSION_COMPRESSED_MAPPINGS {
            if let Some(mapping_count) = stream.int_unless_finished("the mapping count")? {
                for _ in 0..mapping_count.max(0) {
                    let info: TopicQueueMappingInfo =
                        fastjson::from_slice(&stream.block("a topic queue mapping")?)?;
                    let topic = info.topic.clone().ok_or_else(|| {
                        BodyError::new("a topic queue mapping in RegisterBrokerBody has no topic")
                    })?;
                    body.topic_config_serialize_wrapper.topic_queue_mapping_info_map.insert(topic, info);
                }
            }
        }
        Ok(body)
    }
}

/// Java `TopicConfig.encode()`: `name read write perm filterType attributesJSON`.
fn topic_config_text(config: &TopicConfig) -> Result<String, BodyError> {
    let attributes = fastjson::to_vec(&config.attributes, Dialect::Fastjson)?;
    Ok(format!(
        "{} {} {} {} {} {}",
        config.topic_name,
        config.read_queue_nums,
        config.write_queue_nums,
        config.perm,
        config.topic_filter_type.as_str(),
        String::from_utf8_lossy(&attributes)
    ))
}

/// Java `TopicConfig.decode(String)`: split on single spaces (trailing empty fields dropped),
/// at least five fields; the sixth, when present, is the attributes JSON and is ignored if it
/// does not parse (it is cut short when an attribute contains a space).
pub(crate) fn parse_topic_config_text(text: &str) -> Result<TopicConfig, BodyError> {
    let mut fields: Vec<&str> = text.split(' ').collect();
    while fields.last() == Some(&"") {
        fields.pop();
    }
    let [name, read, write, perm, filter_type, rest @ ..] = fields.as_slice() else {
        return Err(BodyError::new(format!("topic config text {text:?} has fewer than five fields")));
    };
    let number = |field: &str, what: &str| {
        field
            .parse::<i32>()
            .map_err(|_| BodyError::new(format!("topic config text {text:?} has a bad {what}")))
    };
    let mut config = TopicConfig::new(*name);
    config.read_queue_nums = number(read, "read queue count")?;
    config.write_queue_nums = number(write, "write queue count")?;
    config.perm = number(perm, "permission")?;
    config.topic_filter_type = TopicFilterType::parse(filter_type)
        .ok_or_else(|| BodyError::new(format!("topic config text {text:?} has an unknown filter type")))?;
    if let Some(attributes) = rest.first() {
        config.attributes = fastjson::from_slice(attributes.as_bytes()).unwrap_or_default();
    }
    Ok(config)
}

fn push_count(out: &mut Vec<u8>, count: usize) -> Result<(), BodyError> {
    let count = i32::try_from(count).map_err(|_| BodyError::new("too many entries for a compressed body"))?;
    out.extend_from_slice(&count.to_be_bytes());
    Ok(())
}

fn push_block(out: &mut Vec<u8>, block: &[u8]) -> Result<(), BodyError> {
    push_count(out, block.len())?;
    out.extend_from_slice(block);
    Ok(())
}

/// Reads the sections of an inflating compressed body, never allocating more than has been
/// inflated (and never more than [`MAX_INFLATED_REGISTER_BODY`] in total).
struct InflatedStream<'b> {
    reader: std::io::Take<ZlibDecoder<&'b [u8]>>,
}

impl InflatedStream<'_> {
    fn failure(&self, what: &str, error: Option<std::io::Error>) -> BodyError {
        if self.reader.limit() == 0 {
            return BodyError::new(format!(
                "compressed RegisterBrokerBody inflates beyond {MAX_INFLATED_REGISTER_BODY} bytes"
            ));
        }
        match error {
            Some(error) if error.kind() != std::io::ErrorKind::UnexpectedEof => {
                BodyError::new(format!("compressed RegisterBrokerBody is not a valid zlib stream: {error}"))
            }
            _ => BodyError::new(format!("compressed RegisterBrokerBody ends inside {what}")),
        }
    }

    /// Reads up to `buffer.len()` bytes; returns how many arrived before the end.
    fn fill(&mut self, buffer: &mut [u8], what: &str) -> Result<usize, BodyError> {
        let mut filled = 0;
        while filled < buffer.len() {
            match self.reader.read(&mut buffer[filled..]) {
                Ok(0) => break,
                Ok(count) => filled += count,
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
                Err(error) => return Err(self.failure(what, Some(error))),
            }
        }
        Ok(filled)
    }

    fn int(&mut self, what: &str) -> Result<i32, BodyError> {
        self.int_unless_finished(what)?.ok_or_else(|| self.failure(what, None))
    }

    /// A big-endian `i32`, or `None` if the stream ended cleanly before it.
    fn int_unless_finished(&mut self, what: &str) -> Result<Option<i32>, BodyError> {
        let mut word = [0u8; 4];
        match self.fill(&mut word, what)? {
            0 => Ok(None),
            4 => Ok(Some(i32::from_be_bytes(word))),
            _ => Err(self.failure(what, None)),
        }
    }

    /// A length-prefixed block.
    fn block(&mut self, what: &str) -> Result<Vec<u8>, BodyError> {
        let length = self.int(what)?;
        let length = u64::try_from(length).map_err(|_| {
            BodyError::new(format!("compressed RegisterBrokerBody gives {what} a negative length"))
        })?;
        let mut block = Vec::new();
        (&mut self.reader)
            .take(length)
            .read_to_end(&mut block)
            .map_err(|error| self.failure(what, Some(error)))?;
        if (block.len() as u64) < length {
            return Err(self.failure(what, None));
        }
        Ok(block)
    }
}
