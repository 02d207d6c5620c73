//! Body compression (spec remoting-protocol §4.5): zlib streams, LZ4 frames and Zstandard
//! frames, chosen by SYSFLAG bits 8–10. The broker stores bodies as received; producers
//! compress and consumers inflate, always with an output cap so a hostile body cannot
//! exhaust memory.

use std::io::{Read, Write};

use super::error::RecordError;
use super::sysflag;

/// Largest body [`decompress`] will produce, in bytes (64 MiB): far above the 4 MiB default
/// message size, far below what would hurt a broker or a client.
pub const MAX_DECOMPRESSED_BYTES: usize = 64 * 1024 * 1024;
/// Compression level Java producers use unless `rocketmq.message.compressLevel` says otherwise.
pub const DEFAULT_LEVEL: i32 = 5;
/// Java producers compress bodies of at least this many bytes (`compressMsgBodyOverHowmuch`).
pub const DEFAULT_COMPRESS_OVER_BYTES: usize = 4096;

/// zlib's own default level, used for negative levels (Java `Deflater.DEFAULT_COMPRESSION`).
const ZLIB_DEFAULT_LEVEL: u32 = 6;
/// Largest deflate stored block, in bytes (its length field is a u16).
const DEFLATE_STORED_BLOCK_BYTES: usize = 65_535;
/// Largest Zstandard raw block we emit, in bytes (the format's block maximum, 128 KiB).
const ZSTD_RAW_BLOCK_BYTES: usize = 128 * 1024;
/// Largest LZ4 uncompressed block we emit, in bytes (matches the 64 KiB block-size id 4).
const LZ4_RAW_BLOCK_BYTES: usize = 64 * 1024;
/// Bytes reserved up front per input byte when inflating, before growth takes over.
const INFLATE_GUESS_FACTOR: usize = 4;

/// A body compression algorithm, as named by SYSFLAG bits 8–10.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompressionType {
    /// zlib stream (RFC 1950), Java `Deflater`; the default and the only one old clients know.
    Zlib,
    /// LZ4 frame format (lz4-java `LZ4FrameOutputStream`).
    Lz4,
    /// Zstandard frame (zstd-jni stream).
    Zstd,
}

impl CompressionType {
    /// The value in bits 8–10 (Java `CompressionType.getValue`): LZ4 1, ZSTD 2, ZLIB 3.
    pub const fn value(self) -> i32 {
        match self {
            CompressionType::Lz4 => 1,
            CompressionType::Zstd => 2,
            CompressionType::Zlib => 3,
        }
    }

    /// The SYSFLAG bits announcing this type (without [`sysflag::COMPRESSED_FLAG`]).
    pub const fn sys_flag_bits(self) -> i32 {
        self.value() << 8
    }

    /// Parses a configuration name (`zlib`, `LZ4`, ` zstd `), as `rocketmq.message.compressType`.
    pub fn from_name(name: &str) -> Option<Self> {
        match name.trim().to_ascii_uppercase().as_str() {
            "ZLIB" => Some(CompressionType::Zlib),
            "LZ4" => Some(CompressionType::Lz4),
            "ZSTD" => Some(CompressionType::Zstd),
            _ => None,
        }
    }
}

/// Compresses `body` with `ty` at `level`: zlib 0..=9 (negative = default 6, as Java), zstd
/// clamped to its range, LZ4 has a single level. Set `COMPRESSED_FLAG | ty.sys_flag_bits()` on the message alongside.
///
/// Never fails: should the encoder report an error (it cannot with in-memory buffers short of
/// allocation failure), the body is wrapped uncompressed in a valid container of the same
/// format, which every decoder accepts.
pub fn compress(body: &[u8], ty: CompressionType, level: i32) -> Vec<u8> {
    match ty {
        CompressionType::Zlib => zlib_compress(body, level).unwrap_or_else(|_| zlib_stored(body)),
        CompressionType::Lz4 => lz4_compress(body).unwrap_or_else(|_| lz4_stored(body)),
        CompressionType::Zstd => zstd_compress(body, level).unwrap_or_else(|_| zstd_stored(body)),
    }
}

/// Inflates a body compressed as SYSFLAG bits 8–10 say (value 0 means zlib), producing at most
/// [`MAX_DECOMPRESSED_BYTES`]. Does not look at bit 0: the caller knows whether the body is
/// compressed. An empty body inflates to an empty body, as in Java.
pub fn decompress(body: &[u8], sys_flag: i32) -> Result<Vec<u8>, RecordError> {
    decompress_with_limit(body, sys_flag, MAX_DECOMPRESSED_BYTES)
}

/// [`decompress`] with a caller-chosen output cap in bytes.
pub fn decompress_with_limit(body: &[u8], sys_flag: i32, limit: usize) -> Result<Vec<u8>, RecordError> {
    let ty = sysflag::compression_type(sys_flag)
        .ok_or(RecordError::UnknownCompression((sys_flag & sysflag::COMPRESSION_TYPE_MASK) >> 8))?;
    decompress_as(body, ty, limit)
}

/// Inflates `body` known to be compressed with `ty`, producing at most `limit` bytes.
pub fn decompress_as(body: &[u8], ty: CompressionType, limit: usize) -> Result<Vec<u8>, RecordError> {
    if body.is_empty() {
        return Ok(Vec::new());
    }
    let hint = body.len().saturating_mul(INFLATE_GUESS_FACTOR);
    match ty {
        CompressionType::Zlib => read_capped(flate2::read::ZlibDecoder::new(body), limit, hint),
        CompressionType::Lz4 => read_capped(lz4_flex::frame::FrameDecoder::new(body), limit, hint),
        CompressionType::Zstd => {
            let decoder = zstd::stream::read::Decoder::with_buffer(body)
                .map_err(|err| RecordError::Decompress(err.to_string()))?;
            read_capped(decoder, limit, hint)
        }
    }
}

/// Reads `reader` to the end, refusing to hold more than `limit` bytes.
fn read_capped(reader: impl Read, limit: usize, hint: usize) -> Result<Vec<u8>, RecordError> {
    let mut out = Vec::with_capacity(hint.min(limit));
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    reader.take(cap).read_to_end(&mut out).map_err(|err| RecordError::Decompress(err.to_string()))?;
    if out.len() > limit {
        return Err(RecordError::DecompressedTooLarge { limit });
    }
    Ok(out)
}

fn zlib_compress(body: &[u8], level: i32) -> std::io::Result<Vec<u8>> {
    // Like Java's `Deflater`, a negative level means zlib's default (6); 0 stores, 9 is best.
    let level = u32::try_from(level).map_or(ZLIB_DEFAULT_LEVEL, |level| level.min(9));
    let mut encoder = flate2::write::ZlibEncoder::new(
        Vec::with_capacity(body.len() / 2 + 64),
        flate2::Compression::new(level),
    );
    encoder.write_all(body)?;
    encoder.finish()
}

fn lz4_compress(body: &[u8]) -> std::io::Result<Vec<u8>> {
    // Independent blocks: lz4-java's frame reader refuses linked ones.
    let info = lz4_flex::frame::FrameInfo::new().block_mode(lz4_flex::frame::BlockMode::Independent);
    let mut encoder =
        lz4_flex::frame::FrameEncoder::with_frame_info(info, Vec::with_capacity(body.len() / 2 + 64));
    encoder.write_all(body)?;
    encoder.finish().map_err(std::io::Error::other)
}

fn zstd_compress(body: &[u8], level: i32) -> std::io::Result<Vec<u8>> {
    let range = zstd::compression_level_range();
    zstd::bulk::compress(body, level.clamp(*range.start(), *range.end()))
}

/// Adler-32 checksum (RFC 1950), the trailer of a zlib stream.
fn adler32(data: &[u8]) -> u32 {
    const MOD: u32 = 65_521;
    // 5552 is the largest run for which the sums cannot overflow a u32 before reduction.
    let (mut a, mut b) = (1u32, 0u32);
    for chunk in data.chunks(5552) {
        for &byte in chunk {
            a += u32::from(byte);
            b += a;
        }
        a %= MOD;
        b %= MOD;
    }
    (b << 16) | a
}

/// A zlib stream of deflate "stored" blocks: valid for any inflater, no compression.
fn zlib_stored(body: &[u8]) -> Vec<u8> {
    let blocks = body.len() / DEFLATE_STORED_BLOCK_BYTES + 1;
    let mut out = Vec::with_capacity(body.len() + blocks * 5 + 6);
    out.extend_from_slice(&[0x78, 0x01]);
    let mut chunks = body.chunks(DEFLATE_STORED_BLOCK_BYTES).peekable();
    if chunks.peek().is_none() {
        out.extend_from_slice(&[0x01, 0x00, 0x00, 0xFF, 0xFF]);
    }
    while let Some(chunk) = chunks.next() {
        let last = chunks.peek().is_none();
        let len = u16::try_from(chunk.len()).unwrap_or(u16::MAX);
        out.push(u8::from(last));
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    out.extend_from_slice(&adler32(body).to_be_bytes());
    out
}

/// Header of an LZ4 frame with independent 64 KiB blocks and no checksums: magic, FLG 0x60,
/// BD 0x40, and the descriptor checksum byte (xxh32 of FLG+BD, bits 8–15).
const LZ4_STORED_HEADER: [u8; 7] = [0x04, 0x22, 0x4D, 0x18, 0x60, 0x40, 0x82];

/// An LZ4 frame of uncompressed blocks: valid for any LZ4 frame reader, no compression.
fn lz4_stored(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + body.len() / LZ4_RAW_BLOCK_BYTES * 4 + 16);
    out.extend_from_slice(&LZ4_STORED_HEADER);
    for chunk in body.chunks(LZ4_RAW_BLOCK_BYTES) {
        let len = u32::try_from(chunk.len()).unwrap_or(0) | 0x8000_0000;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(chunk);
    }
    out.extend_from_slice(&[0, 0, 0, 0]);
    out
}

/// A Zstandard frame of raw blocks with a 128 KiB window: valid for any zstd reader.
fn zstd_stored(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + body.len() / ZSTD_RAW_BLOCK_BYTES * 3 + 16);
    // Magic, frame header descriptor 0 (no content size, not single segment, no checksum),
    // window descriptor exponent 7 = 128 KiB.
    out.extend_from_slice(&[0x28, 0xB5, 0x2F, 0xFD, 0x00, 0x38]);
    let mut chunks = body.chunks(ZSTD_RAW_BLOCK_BYTES).peekable();
    if chunks.peek().is_none() {
        out.extend_from_slice(&[0x01, 0x00, 0x00]);
    }
    while let Some(chunk) = chunks.next() {
        let last = u32::from(chunks.peek().is_none());
        let header = last | (u32::try_from(chunk.len()).unwrap_or(0) << 3);
        out.extend_from_slice(&header.to_le_bytes()[..3]);
        out.extend_from_slice(chunk);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ALL: [CompressionType; 3] = [CompressionType::Zlib, CompressionType::Lz4, CompressionType::Zstd];

    fn flag(ty: CompressionType) -> i32 {
        sysflag::COMPRESSED_FLAG | ty.sys_flag_bits()
    }

    #[test]
    fn round_trips_every_type() {
        let body: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8 ^ (i / 1000) as u8).collect();
        for ty in ALL {
            for level in [-5, 0, 1, DEFAULT_LEVEL, 9, 22, 100] {
                let packed = compress(&body, ty, level);
                let stores = ty == CompressionType::Zlib && level == 0;
                assert!(stores || packed.len() < body.len(), "{ty:?} level {level} did not compress");
                assert_eq!(decompress(&packed, flag(ty)).as_deref(), Ok(&body[..]));
            }
            assert_eq!(decompress(&compress(b"", ty, 5), flag(ty)), Ok(Vec::new()));
        }
    }

    #[test]
    fn zlib_is_the_legacy_default() {
        let packed = compress(b"hello hello hello", CompressionType::Zlib, 5);
        assert_eq!(packed[0], 0x78, "zlib header expected");
        assert_eq!(decompress(&packed, sysflag::COMPRESSED_FLAG).as_deref(), Ok(&b"hello hello hello"[..]));
    }

    #[test]
    fn lz4_uses_independent_blocks() {
        let packed = compress(&[7u8; 10_000], CompressionType::Lz4, 5);
        assert_eq!(&packed[..4], &[0x04, 0x22, 0x4D, 0x18]);
        assert_ne!(packed[4] & 0x20, 0, "block independence bit");
    }

    #[test]
    fn stored_fallbacks_decode_with_the_real_decoders() {
        let long: Vec<u8> = (0..300_000u32).map(|i| (i * 7) as u8).collect();
        for body in [&b""[..], &b"x"[..], &long[..]] {
            let zlib = decompress_as(&zlib_stored(body), CompressionType::Zlib, MAX_DECOMPRESSED_BYTES);
            assert_eq!(zlib.as_deref(), Ok(body));
            let lz4 = decompress_as(&lz4_stored(body), CompressionType::Lz4, MAX_DECOMPRESSED_BYTES);
            assert_eq!(lz4.as_deref(), Ok(body));
            let zstd = decompress_as(&zstd_stored(body), CompressionType::Zstd, MAX_DECOMPRESSED_BYTES);
            assert_eq!(zstd.as_deref(), Ok(body));
        }
        // The empty input short-cut must not hide a broken empty container.
        let mut out = Vec::new();
        let read = lz4_flex::frame::FrameDecoder::new(&lz4_stored(b"")[..]).read_to_end(&mut out);
        assert!(read.is_ok());
        assert!(zstd::stream::decode_all(&zstd_stored(b"")[..]).is_ok_and(|v| v.is_empty()));
        assert!(flate2::read::ZlibDecoder::new(&zlib_stored(b"")[..]).read_to_end(&mut out).is_ok());
    }

    #[test]
    fn zip_bomb_is_capped() {
        let zeros = vec![0u8; 70 * 1024 * 1024];
        for ty in ALL {
            let bomb = compress(&zeros, ty, 9);
            assert!(bomb.len() < 1024 * 1024, "{ty:?} bomb is {} bytes", bomb.len());
            assert_eq!(
                decompress(&bomb, flag(ty)),
                Err(RecordError::DecompressedTooLarge { limit: MAX_DECOMPRESSED_BYTES })
            );
            let small = compress(&zeros[..1000], ty, 9);
            assert_eq!(
                decompress_with_limit(&small, flag(ty), 999),
                Err(RecordError::DecompressedTooLarge { limit: 999 })
            );
            assert_eq!(decompress_with_limit(&small, flag(ty), 1000).map(|v| v.len()), Ok(1000));
        }
    }

    #[test]
    fn unknown_type_and_garbage_are_errors() {
        assert_eq!(decompress(b"abc", 0x401), Err(RecordError::UnknownCompression(4)));
        for ty in ALL {
            assert!(matches!(
                decompress(b"definitely not compressed", flag(ty)),
                Err(RecordError::Decompress(_))
            ));
        }
        assert_eq!(CompressionType::from_name(" lz4 "), Some(CompressionType::Lz4));
        assert_eq!(CompressionType::from_name("Zstd"), Some(CompressionType::Zstd));
        assert_eq!(CompressionType::from_name("ZLIB"), Some(CompressionType::Zlib));
        assert_eq!(CompressionType::from_name("gzip"), None);
    }

    proptest! {
        #[test]
        fn round_trip_any_body(body in proptest::collection::vec(any::<u8>(), 0..2048), level in 0i32..10) {
            for ty in ALL {
                let packed = compress(&body, ty, level);
                prop_assert_eq!(decompress(&packed, flag(ty)), Ok(body.clone()));
            }
        }

        #[test]
        fn decompress_never_panics(body in proptest::collection::vec(any::<u8>(), 0..256), bits in 0i32..8) {
            let _ = decompress(&body, (bits << 8) | 1);
        }

        #[test]
        fn decompress_never_panics_on_mutated_frames(at in any::<prop::sample::Index>(), byte in any::<u8>()) {
            for ty in ALL {
                let mut packed = compress(b"some body that compresses some body that compresses", ty, 5);
                let index = at.index(packed.len());
                packed[index] = byte;
                let _ = decompress(&packed, flag(ty));
            }
        }
    }
}
