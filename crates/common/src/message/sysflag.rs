//! SYSFLAG bits of a message (spec remoting-protocol §4.4): how the body is compressed, which
//! transaction phase a record belongs to, and which address family each host uses (which in
//! turn decides the stored record layout).

use super::compression::CompressionType;

/// Bit 0: the body is compressed (algorithm in bits 8–10).
pub const COMPRESSED_FLAG: i32 = 0x1;
/// Bit 1: the topic uses the MULTI_TAG filter type (set by the broker).
pub const MULTI_TAGS_FLAG: i32 = 0x2;
/// Transaction type (bits 2–3): an ordinary, non-transactional message.
pub const TRANSACTION_NOT_TYPE: i32 = 0;
/// Transaction type: a half (prepared) message waiting for commit or rollback.
pub const TRANSACTION_PREPARED_TYPE: i32 = 0x4;
/// Transaction type: the commit of a half message.
pub const TRANSACTION_COMMIT_TYPE: i32 = 0x8;
/// Transaction type: the rollback of a half message.
pub const TRANSACTION_ROLLBACK_TYPE: i32 = 0xC;
/// Mask of the two transaction-type bits (equal to [`TRANSACTION_ROLLBACK_TYPE`]).
pub const TRANSACTION_TYPE_MASK: i32 = 0xC;
/// Bit 4: the born host is IPv6, so BORNHOST takes 20 bytes instead of 8.
pub const BORNHOST_V6_FLAG: i32 = 0x10;
/// Bit 5: the store host is IPv6, so STOREHOST takes 20 bytes instead of 8.
pub const STOREHOSTADDRESS_V6_FLAG: i32 = 0x20;
/// Bit 6: the record's body is a batch the client must unwrap (used together with bit 7).
pub const NEED_UNWRAP_FLAG: i32 = 0x40;
/// Bit 7: the record is an inner batch (BatchCQ topics).
pub const INNER_BATCH_FLAG: i32 = 0x80;
/// Compression type (bits 8–10): LZ4 frame.
pub const COMPRESSION_LZ4_TYPE: i32 = 0x100;
/// Compression type: Zstandard frame.
pub const COMPRESSION_ZSTD_TYPE: i32 = 0x200;
/// Compression type: zlib stream. A value of 0 with bit 0 set also means zlib (old clients).
pub const COMPRESSION_ZLIB_TYPE: i32 = 0x300;
/// Mask of the three compression-type bits.
pub const COMPRESSION_TYPE_MASK: i32 = 0x700;

/// The transaction type bits of `sys_flag`: one of the `TRANSACTION_*_TYPE` constants.
pub const fn transaction_type(sys_flag: i32) -> i32 {
    sys_flag & TRANSACTION_TYPE_MASK
}

/// `sys_flag` with its transaction type replaced by `ty` (one of `TRANSACTION_*_TYPE`), as the
/// broker does when it turns a half message into its commit or rollback record.
pub const fn reset_transaction_value(sys_flag: i32, ty: i32) -> i32 {
    (sys_flag & !TRANSACTION_TYPE_MASK) | (ty & TRANSACTION_TYPE_MASK)
}

/// Whether bit 0 says the body is compressed.
pub const fn is_compressed(sys_flag: i32) -> bool {
    sys_flag & COMPRESSED_FLAG != 0
}

/// `sys_flag` without the compressed bit, as clients leave it after inflating the body.
pub const fn clear_compressed_flag(sys_flag: i32) -> i32 {
    sys_flag & !COMPRESSED_FLAG
}

/// The algorithm a compressed body uses according to bits 8–10: LZ4, ZSTD, ZLIB, or ZLIB for
/// the value 0 (clients before 4.9.4 set only bit 0). `None` for the unassigned values 4–7.
///
/// This does not look at bit 0: check [`is_compressed`] to know whether the body is compressed
/// at all.
pub const fn compression_type(sys_flag: i32) -> Option<CompressionType> {
    match (sys_flag & COMPRESSION_TYPE_MASK) >> 8 {
        0 | 3 => Some(CompressionType::Zlib),
        1 => Some(CompressionType::Lz4),
        2 => Some(CompressionType::Zstd),
        _ => None,
    }
}

/// Whether the born host is IPv6 (BORNHOST is 20 bytes).
pub const fn born_host_v6(sys_flag: i32) -> bool {
    sys_flag & BORNHOST_V6_FLAG != 0
}

/// Whether the store host is IPv6 (STOREHOST is 20 bytes).
pub const fn store_host_v6(sys_flag: i32) -> bool {
    sys_flag & STOREHOSTADDRESS_V6_FLAG != 0
}

/// `sys_flag` with bits 4 and 5 set from the address families of the two hosts, as the broker
/// does before storing: the layout of a record must agree with the addresses written in it.
pub const fn with_host_flags(sys_flag: i32, born_v6: bool, store_v6: bool) -> i32 {
    let mut flag = sys_flag & !(BORNHOST_V6_FLAG | STOREHOSTADDRESS_V6_FLAG);
    if born_v6 {
        flag |= BORNHOST_V6_FLAG;
    }
    if store_v6 {
        flag |= STOREHOSTADDRESS_V6_FLAG;
    }
    flag
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transaction_bits() {
        let flag = COMPRESSED_FLAG | TRANSACTION_PREPARED_TYPE | BORNHOST_V6_FLAG;
        assert_eq!(transaction_type(flag), TRANSACTION_PREPARED_TYPE);
        let committed = reset_transaction_value(flag, TRANSACTION_COMMIT_TYPE);
        assert_eq!(transaction_type(committed), TRANSACTION_COMMIT_TYPE);
        assert_eq!(committed & !TRANSACTION_TYPE_MASK, flag & !TRANSACTION_TYPE_MASK);
        assert_eq!(transaction_type(reset_transaction_value(flag, TRANSACTION_NOT_TYPE)), 0);
    }

    #[test]
    fn compression_bits() {
        assert_eq!(compression_type(COMPRESSED_FLAG), Some(CompressionType::Zlib));
        assert_eq!(compression_type(COMPRESSION_ZLIB_TYPE | 1), Some(CompressionType::Zlib));
        assert_eq!(compression_type(COMPRESSION_LZ4_TYPE | 1), Some(CompressionType::Lz4));
        assert_eq!(compression_type(COMPRESSION_ZSTD_TYPE | 1), Some(CompressionType::Zstd));
        assert_eq!(compression_type(0x400 | 1), None);
        assert_eq!(compression_type(0x700), None);
        assert!(!is_compressed(clear_compressed_flag(COMPRESSION_LZ4_TYPE | 1)));
    }

    #[test]
    fn host_bits() {
        let flag = with_host_flags(0xFF, false, true);
        assert!(!born_host_v6(flag));
        assert!(store_host_v6(flag));
        assert_eq!(flag & !0x30, 0xFF & !0x30);
    }
}
