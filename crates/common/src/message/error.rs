//! The one error type of the message codecs, so the store, the broker and the client can
//! report any malformed record, batch, id or compressed body the same way.

/// Why a message record, batch body, message id or compressed body was refused.
///
/// Every decoder in [`crate::message`] returns this instead of panicking, whatever the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The input ended before a field that the layout says must be there.
    #[error("truncated: {needed} bytes needed, only {available} available")]
    Truncated {
        /// Bytes the layout requires.
        needed: usize,
        /// Bytes the caller supplied.
        available: usize,
    },
    /// The TOTALSIZE field cannot describe a record (negative or below the fixed part).
    #[error("invalid total size {0}")]
    BadTotalSize(i32),
    /// MAGICCODE is neither v1 nor v2 (nor blank).
    #[error("unknown magic code {0:#010X}")]
    BadMagic(i32),
    /// The bytes hold a commit-log end-of-file blank marker, not a message.
    #[error("blank end-of-file record (total size {total_size})")]
    Blank {
        /// The TOTALSIZE of the blank: how many bytes to skip to reach the file end.
        total_size: i32,
    },
    /// A length field is negative or points past the end of its record.
    #[error("invalid {field} length {len}")]
    BadLength {
        /// Which length field (`body`, `topic`, `properties`, ...).
        field: &'static str,
        /// The value read.
        len: i64,
    },
    /// The fields do not add up to the record's TOTALSIZE.
    #[error("fields end at byte {parsed} but total size is {total_size}")]
    LengthMismatch {
        /// TOTALSIZE as written.
        total_size: usize,
        /// Where the last field actually ended.
        parsed: usize,
    },
    /// BODYCRC does not match the body.
    #[error("body CRC mismatch: stored {stored}, computed {computed}")]
    BodyCrcMismatch {
        /// The BODYCRC field.
        stored: i32,
        /// CRC32 & 0x7FFFFFFF of the body bytes.
        computed: i32,
    },
    /// A host port field is outside 0..=65535.
    #[error("invalid {field} port {port}")]
    BadPort {
        /// `born host` or `store host`.
        field: &'static str,
        /// The value read.
        port: i32,
    },
    /// A text field (topic, properties) is not UTF-8.
    #[error("{field} is not valid UTF-8")]
    InvalidUtf8 {
        /// Which field.
        field: &'static str,
    },
    /// A field is longer than its length prefix (or the protocol) allows.
    #[error("{field} is {len} bytes, limit is {max}")]
    TooLong {
        /// Which field (`topic`, `properties`, `body`, `record`, ...).
        field: &'static str,
        /// Its length in bytes.
        len: usize,
        /// The largest accepted length in bytes.
        max: usize,
    },
    /// A message id string is malformed.
    #[error("invalid message id {id:?}: {reason}")]
    BadMessageId {
        /// The offending id (truncated to a sane length for logs).
        id: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// SYSFLAG bits 8–10 name no known compression algorithm.
    #[error("unknown compression type {0} in sysflag")]
    UnknownCompression(i32),
    /// The compressed body is corrupt.
    #[error("cannot decompress body: {0}")]
    Decompress(String),
    /// The body inflates to more than the allowed size (a zip bomb or a misconfigured producer).
    #[error("decompressed body exceeds {limit} bytes")]
    DecompressedTooLarge {
        /// The cap in bytes.
        limit: usize,
    },
}
