//! The `Status` every response body carries (spec §2.6, §5.14): unary RPCs always end with gRPC
//! OK and say how they went here. Broker-core failures are mapped from RocketMQ's response
//! codes to the protocol's `Code` as the reference proxy maps them.

use apogee_broker::core::Error as CoreError;
use apogee_remoting::code::response_code;

use crate::pb::{Code, Status};

/// A status with `code` and its message.
pub fn status(code: Code, message: impl Into<String>) -> Status {
    Status { code: code as i32, message: message.into() }
}

/// `OK "OK"`: success messages are the code's name.
pub fn ok() -> Status {
    status(Code::Ok, "OK")
}

/// A failure the front decides itself: its code and a message a person reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The body code.
    pub code: Code,
    /// Why.
    pub message: String,
}

impl Refusal {
    /// A refusal with `code`.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }

    /// The status of the refusal.
    pub fn status(&self) -> Status {
        status(self.code, self.message.clone())
    }
}

impl From<CoreError> for Refusal {
    fn from(error: CoreError) -> Self {
        Refusal::new(code_of(error.code), error.remark)
    }
}

/// The body code for a broker response code (spec §5.14).
pub fn code_of(response_code: i32) -> Code {
    match response_code {
        response_code::SUCCESS => Code::Ok,
        response_code::SYSTEM_BUSY => Code::TooManyRequests,
        response_code::REQUEST_CODE_NOT_SUPPORTED => Code::NotImplemented,
        response_code::SUBSCRIPTION_GROUP_NOT_EXIST => Code::ConsumerGroupNotFound,
        response_code::TOPIC_NOT_EXIST => Code::TopicNotFound,
        response_code::NO_PERMISSION => Code::Forbidden,
        response_code::FLUSH_DISK_TIMEOUT => Code::MasterPersistenceTimeout,
        response_code::FLUSH_SLAVE_TIMEOUT => Code::SlavePersistenceTimeout,
        response_code::SLAVE_NOT_AVAILABLE => Code::HaNotAvailable,
        response_code::MESSAGE_ILLEGAL => Code::BadRequest,
        _ => Code::InternalServerError,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_codes_map_as_the_reference_proxy_maps_them() {
        assert_eq!(code_of(response_code::SYSTEM_BUSY), Code::TooManyRequests);
        assert_eq!(code_of(response_code::TOPIC_NOT_EXIST), Code::TopicNotFound);
        assert_eq!(code_of(response_code::SUBSCRIPTION_GROUP_NOT_EXIST), Code::ConsumerGroupNotFound);
        assert_eq!(code_of(response_code::SYSTEM_ERROR), Code::InternalServerError);
        assert_eq!(Code::Ok as i32, 20_000);
        assert_eq!(ok().message, "OK");
    }
}
