//! Small helpers every request handler uses: a failure carrying RocketMQ's response code and
//! a remark, typed header and body decoding that fails with the remark Java would give, and
//! body encoding. Shared by the NameServer and the broker.

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::code::response_code;
use crate::command::RemotingCommand;
use crate::fastjson::{self, Dialect};
use crate::header::{CommandHeader, HeaderError};

/// A request that failed: the response code and the remark a person reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Response code (see [`response_code`]).
    pub code: i32,
    /// Why, in words.
    pub remark: String,
}

impl Failure {
    /// A failure with `code`.
    pub fn new(code: i32, remark: impl Into<String>) -> Self {
        Self { code, remark: remark.into() }
    }

    /// SYSTEM_ERROR, the generic failure.
    pub fn system(remark: impl Into<String>) -> Self {
        Self::new(response_code::SYSTEM_ERROR, remark)
    }

    /// REQUEST_CODE_NOT_SUPPORTED with Java's remark, for a code a server's processor does
    /// not handle: the same answer the transport gives a code without a handler.
    pub fn not_supported(code: i32) -> Self {
        Self::new(response_code::REQUEST_CODE_NOT_SUPPORTED, crate::dispatch::not_supported_remark(code))
    }

    /// The answer carrying this failure, for a [`crate::responder::Responder`] (which makes
    /// it the response to its request).
    pub fn into_answer(self) -> RemotingCommand {
        RemotingCommand::response(self.code, Some(self.remark))
    }

    /// The response to `request` carrying this failure.
    pub fn into_response(self, request: &RemotingCommand) -> RemotingCommand {
        RemotingCommand::respond_to(request, self.code, Some(self.remark))
    }
}

impl From<HeaderError> for Failure {
    fn from(error: HeaderError) -> Self {
        Self::system(error.to_string())
    }
}

/// What a handler produces: a response, or a failure turned into one.
pub type Outcome = Result<RemotingCommand, Failure>;

/// Turns an outcome into the response to send.
pub fn finish(request: &RemotingCommand, outcome: Outcome) -> RemotingCommand {
    outcome.unwrap_or_else(|failure| failure.into_response(request))
}

/// The typed custom header of `request`.
pub fn header<H: CommandHeader>(request: &RemotingCommand) -> Result<H, Failure> {
    Ok(request.decode_header::<H>()?)
}

/// The JSON body of `request`; `what` names it in the remark.
pub fn decode_body<T: DeserializeOwned>(request: &RemotingCommand, what: &str) -> Result<T, Failure> {
    fastjson::from_slice(&request.body)
        .map_err(|error| Failure::system(format!("malformed {what} body: {error}")))
}

/// Encodes a body in `dialect`.
pub fn encode_body<T: Serialize + ?Sized>(value: &T, dialect: Dialect) -> Result<Bytes, Failure> {
    fastjson::to_vec(value, dialect)
        .map(Bytes::from)
        .map_err(|error| Failure::system(format!("cannot encode response body: {error}")))
}

/// SUCCESS with `body` in the fastjson dialect.
pub fn body_response<T: Serialize + ?Sized>(request: &RemotingCommand, body: &T) -> Outcome {
    Ok(RemotingCommand::success_for(request).with_body(encode_body(body, Dialect::Fastjson)?))
}
