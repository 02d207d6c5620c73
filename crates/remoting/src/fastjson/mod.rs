//! The JSON dialect of request and response bodies: what fastjson 1.x writes and reads
//! (spec §3.1).
//!
//! Java peers encode bodies with `JSON.toJSONString`, which is not always JSON: a map whose
//! keys are numbers is written with bare number keys (`{0:"a"}`), and a map whose keys are
//! objects (`MessageQueue`) with bare object keys (`{{"brokerName":"b",...}:{...}}`). Old Go
//! clients split that text by hand and Java admin tools only accept object keys in object form,
//! so Apogee has to write exactly this. Clients at version 4.9.4 and later get route bodies in
//! fastjson's browser-compatible form instead, which is standard JSON.
//!
//! - [`to_vec`] writes any `Serialize` value in either [`Dialect`]. Map keys are told apart by
//!   their serde type: strings are quoted, numbers bare, structs written as objects. Struct
//!   properties come out in alphabetical order and null properties are left out, as fastjson does.
//! - [`from_slice`] reads everything Java, Go and C++ peers write: bare number keys, bare object
//!   keys, quoted number keys, numbers given as strings, unknown properties, `null` anywhere (a
//!   null property counts as absent), and plain JSON. Maps keyed by `i64` or by `MessageQueue`
//!   deserialize directly; no per-field helper is needed.

mod number;
mod parse;
mod read;
mod write;

#[cfg(test)]
mod tests;

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Which of fastjson's two outputs to produce. Bodies are written in [`Dialect::Fastjson`]
/// except the route body sent to clients that ask for standard JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Dialect {
    /// `JSON.toJSONString(obj)`: number and object map keys written bare, string keys quoted,
    /// map entries in the map's own order, only control characters (and U+007F..U+009F,
    /// U+2028, U+2029) escaped.
    #[default]
    Fastjson,
    /// The `BrowserCompatible` form GET_ROUTEINFO_BY_TOPIC uses for clients with version ≥ 401
    /// (or `acceptStandardJsonOnly=true`): every key a quoted string, map entries sorted by key,
    /// everything from U+007F up (and `/`) escaped as `\uXXXX` (surrogate pairs beyond the
    /// BMP), and integers beyond ±(2^53 − 1) written as strings.
    Standard,
}

/// Why a body could not be written or read. The text names the problem and, when reading,
/// where in the body it is (for example `at offsetTable.{...}.brokerOffset`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}{}", describe_location(.path))]
pub struct BodyError {
    message: String,
    /// Property names and array indexes from the outside in.
    path: Vec<String>,
    /// Set only by the map-key classifier of the writer, never seen outside this module.
    compound_key: bool,
}

impl BodyError {
    /// An error with a message of its own, for body codecs built on top of this module (such as
    /// the compressed RegisterBrokerBody).
    pub fn new(message: impl Into<String>) -> Self {
        Self { message: message.into(), path: Vec::new(), compound_key: false }
    }

    /// The message without the location.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Records that the error happened inside property or index `segment`.
    pub(crate) fn within(mut self, segment: impl Into<String>) -> Self {
        self.path.insert(0, segment.into());
        self
    }

    /// The marker the writer uses to learn that a map key is an object or an array.
    pub(crate) fn compound_key_marker() -> Self {
        Self {
            message: String::from("a map key is an object or an array"),
            path: Vec::new(),
            compound_key: true,
        }
    }

    /// Whether this is the marker of [`BodyError::compound_key_marker`].
    pub(crate) fn is_compound_key_marker(&self) -> bool {
        self.compound_key
    }
}

fn describe_location(path: &[String]) -> String {
    if path.is_empty() {
        return String::new();
    }
    // Keys that are whole objects would make the location unreadable; shorten them.
    let segments: Vec<&str> = path
        .iter()
        .map(|segment| if segment.starts_with('{') { "{...}" } else { segment.as_str() })
        .collect();
    format!(" (at {})", segments.join("."))
}

impl serde::ser::Error for BodyError {
    fn custom<T: std::fmt::Display>(message: T) -> Self {
        Self::new(message.to_string())
    }
}

impl serde::de::Error for BodyError {
    fn custom<T: std::fmt::Display>(message: T) -> Self {
        Self::new(message.to_string())
    }
}

/// Encodes `value` as a body in `dialect`.
///
/// Fails only when a `Serialize` implementation reports an error of its own.
pub fn to_vec<T: Serialize + ?Sized>(value: &T, dialect: Dialect) -> Result<Vec<u8>, BodyError> {
    write::to_vec(value, dialect)
}

/// Decodes a body written by any peer (fastjson dialect, browser-compatible or plain JSON).
///
/// Never panics; input nested deeper than 128 levels is refused. Members the type does not
/// know are ignored, members it has but the body lacks (or gives as `null`) take the type's
/// default, and numbers, booleans and strings are converted into each other the way fastjson
/// converts them.
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, BodyError> {
    let value = parse::parse(bytes)?;
    read::from_value(&value)
}
