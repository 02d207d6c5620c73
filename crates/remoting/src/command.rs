//! `RemotingCommand`: one request or response of the remoting protocol, decoded.

use bytes::Bytes;

use crate::code::response_code;
use crate::language::LanguageCode;

pub use crate::ext_fields::ExtFields;

/// The version ordinal Apogee announces: Apache RocketMQ V5_3_3. Java consumers compare a
/// broker's heartbeat version against 232 before they allow SQL92 subscriptions.
pub const CURRENT_VERSION: i32 = 479;

/// Fields a header built here usually holds (a send response has six, a send request 13).
const TYPICAL_HEADER_FIELDS: usize = 8;

/// Flag bit 0: set on responses.
pub const FLAG_RESPONSE: i32 = 0x1;
/// Flag bit 1: the requester wants no response.
pub const FLAG_ONEWAY: i32 = 0x2;

/// How the header of a frame is serialized (the high byte of the header-length word).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SerializeType {
    /// fastjson text; what every client understands.
    #[default]
    Json,
    /// RocketMQ's compact binary header.
    RocketMq,
}

impl SerializeType {
    /// The type byte.
    pub fn code(self) -> u8 {
        match self {
            Self::Json => 0,
            Self::RocketMq => 1,
        }
    }

    /// Decodes the type byte.
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(Self::Json),
            1 => Some(Self::RocketMq),
            _ => None,
        }
    }
}

/// One command as it crosses the wire: a request or a response. The body is kept as
/// reference-counted bytes so a decoded frame's body is never copied.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RemotingCommand {
    /// Request code for requests, response code for responses.
    pub code: i32,
    /// Language of the sender.
    pub language: LanguageCode,
    /// Version ordinal of the sender.
    pub version: i32,
    /// Correlation id chosen by the requester and echoed by the responder.
    pub opaque: i32,
    /// [`FLAG_RESPONSE`] and [`FLAG_ONEWAY`] bits.
    pub flag: i32,
    /// Free text; the error description on failed responses.
    pub remark: Option<String>,
    /// The custom header; `None` is written as an absent `extFields`.
    pub ext_fields: Option<ExtFields>,
    /// The body; empty when there is none.
    pub body: Bytes,
    /// How the header was (or will be) serialized.
    pub serialize_type: SerializeType,
}

impl RemotingCommand {
    /// A request with `code`, announcing Apogee's language and version.
    pub fn request(code: i32) -> Self {
        Self { code, language: LanguageCode::Rust, version: CURRENT_VERSION, ..Self::default() }
    }

    /// A response to no request in particular; [`Self::respond_to`] is usually what you want.
    pub fn response(code: i32, remark: Option<String>) -> Self {
        Self {
            code,
            language: LanguageCode::Java,
            version: CURRENT_VERSION,
            flag: FLAG_RESPONSE,
            remark,
            ..Self::default()
        }
    }

    /// A response with `code` to `request`: same opaque and serialization. Answers with
    /// language JAVA, the one value every peer decodes.
    pub fn respond_to(request: &RemotingCommand, code: i32, remark: Option<String>) -> Self {
        let mut response = Self::response(code, remark);
        response.opaque = request.opaque;
        response.serialize_type = request.serialize_type;
        response
    }

    /// A SUCCESS response to `request`.
    pub fn success_for(request: &RemotingCommand) -> Self {
        Self::respond_to(request, response_code::SUCCESS, None)
    }

    /// Sets the body.
    pub fn with_body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// Sets one extFields entry, creating the map if needed.
    pub fn with_ext(mut self, key: impl AsRef<str>, value: impl AsRef<str>) -> Self {
        self.ext_fields_mut().insert(key, value);
        self
    }

    /// Sets the remark.
    pub fn with_remark(mut self, remark: impl Into<String>) -> Self {
        self.remark = Some(remark.into());
        self
    }

    /// True for responses.
    pub fn is_response(&self) -> bool {
        self.flag & FLAG_RESPONSE == FLAG_RESPONSE
    }

    /// True for requests that expect no answer.
    pub fn is_oneway(&self) -> bool {
        self.flag & FLAG_ONEWAY == FLAG_ONEWAY
    }

    /// Marks a request oneway.
    pub fn mark_oneway(&mut self) {
        self.flag |= FLAG_ONEWAY;
    }

    /// One extFields value.
    pub fn ext(&self, key: &str) -> Option<&str> {
        self.ext_fields.as_ref().and_then(|fields| fields.get(key))
    }

    /// The extFields map, created empty when absent.
    pub fn ext_fields_mut(&mut self) -> &mut ExtFields {
        // Room for a typical header, so building one does not grow the vector step by step.
        self.ext_fields.get_or_insert_with(|| ExtFields::with_capacity(TYPICAL_HEADER_FIELDS))
    }
}
