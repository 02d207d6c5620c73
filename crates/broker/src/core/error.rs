//! The one error of the broker core: a RocketMQ response code and the remark a person reads.
//! Every front turns it into its own answer (the remoting adapter into a response with that
//! code and remark; a gRPC front maps the code to its status).

use std::fmt;

use apogee_remoting::code::response_code;

/// A refused or failed operation, as RocketMQ reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// RocketMQ response code (see [`response_code`]).
    pub code: i32,
    /// Why, in words; fronts pass it on unchanged, so clients see Java's remarks.
    pub remark: String,
}

impl Error {
    /// An error with `code`.
    pub fn new(code: i32, remark: impl Into<String>) -> Self {
        Self { code, remark: remark.into() }
    }

    /// SYSTEM_ERROR, the generic failure.
    pub fn system(remark: impl Into<String>) -> Self {
        Self::new(response_code::SYSTEM_ERROR, remark)
    }

    /// INVALID_PARAMETER.
    pub fn invalid(remark: impl Into<String>) -> Self {
        Self::new(response_code::INVALID_PARAMETER, remark)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "code {}: {}", self.code, self.remark)
    }
}

impl std::error::Error for Error {}

/// What a core operation gives.
pub type CoreResult<T> = Result<T, Error>;
