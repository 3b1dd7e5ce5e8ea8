//! `zstd` (v3 core codec `zstd`; v2 numcodecs id `zstd`): Zstandard frames, with the content size
//! in the frame header. Spec: zarr-specs v3.0, codecs/zstd.
//!
//! Compression and decompression contexts are kept per thread and reused: creating one costs
//! more than decoding a small chunk.
//!
//! A read that needs only part of a chunk stops decoding once the bytes it needs are out: a
//! frame decodes front to back, so a point read costs on average half a chunk's decode. The
//! blocks after that are not looked at, so damage confined to them goes unnoticed by that
//! read. A frame with a content checksum is always decoded whole, so that the checksum is
//! checked: integrity needs a checksum (zstd's own, or a `crc32c` codec), with or without
//! partial reads.

use std::borrow::Cow;
use std::cell::RefCell;
use std::io::Read;
use std::ops::Range;
use std::ptr::NonNull;

use serde_json::{Map, Value};
use zstd::zstd_safe::{self, zstd_sys, CCtx, CParameter, DCtx};

use crate::alloc;
use crate::codec::{
    check_config_keys, check_len, codec_metadata, invalid_config, BytesToBytesCodec,
};
use crate::error::{CodecError, MetadataError};

const NAME: &str = "zstd";

/// The highest level Zarr's v3 zstd codec takes: zarr-python refuses higher ones, reading
/// and writing (numcodecs, and so v2 arrays, take any, which libzstd clamps).
const MAX_V3_LEVEL: i64 = 22;

/// Why a new v3 array must not have `codec` (a codec's metadata), if it is zstd at a level
/// past [`MAX_V3_LEVEL`]: written, zarr-python could not open the array. Arrays that have
/// one still open (see `from_config`).
pub(crate) fn refusal_for_new_array(codec: &Value) -> Option<String> {
    if codec.get("name").and_then(Value::as_str) != Some(NAME) {
        return None;
    }
    let level = codec.get("configuration")?.get("level")?.as_i64()?;
    (level > MAX_V3_LEVEL).then(|| {
        format!("zstd level {level} is past {MAX_V3_LEVEL}, the highest Zarr's zstd codec takes")
    })
}

thread_local! {
    static CCTX: RefCell<Option<CCtx<'static>>> = const { RefCell::new(None) };
    static DCTX: RefCell<Option<DCtx<'static>>> = const { RefCell::new(None) };
    /// A context for zstd's buffer-less decoding (block by block), which zstd-safe does not
    /// wrap.
    static PREFIX_DCTX: RefCell<Option<RawDCtx>> = const { RefCell::new(None) };
}

/// The magic number that opens every zstd frame (little endian on the wire).
const FRAME_MAGIC: u32 = 0xFD2F_B528;

/// An owned `ZSTD_DCtx` from zstd-sys.
struct RawDCtx(NonNull<zstd_sys::ZSTD_DCtx>);

impl RawDCtx {
    fn create() -> Option<Self> {
        // SAFETY: creating a context has no preconditions; null means out of memory.
        NonNull::new(unsafe { zstd_sys::ZSTD_createDCtx() }).map(Self)
    }
}

impl Drop for RawDCtx {
    fn drop(&mut self) {
        // SAFETY: the context was created by ZSTD_createDCtx and is freed once, here.
        unsafe {
            zstd_sys::ZSTD_freeDCtx(self.0.as_ptr());
        }
    }
}

fn is_error(code: usize) -> bool {
    // SAFETY: a pure function of its argument.
    unsafe { zstd_sys::ZSTD_isError(code) != 0 }
}

#[derive(Debug, Clone)]
pub struct Zstd {
    level: i32,
    checksum: bool,
}

fn zstd_error(code: usize) -> CodecError {
    CodecError::corrupt(NAME, zstd_safe::get_error_name(code))
}

impl Zstd {
    pub fn new(level: i32, checksum: bool) -> Self {
        Self { level, checksum }
    }

    pub fn from_config(config: &Map<String, Value>) -> Result<Self, MetadataError> {
        check_config_keys(NAME, config, &["level", "checksum"])?;
        // Any level a C int holds is taken: numcodecs stores whatever level it is given and
        // libzstd clamps it to its range, so arrays zarr-python wrote with level 23 (or
        // -200000) must open; the level only matters to writes, which clamp it the same way.
        let level = match config.get("level") {
            None => 0,
            Some(v) => v
                .as_i64()
                .and_then(|l| i32::try_from(l).ok())
                .ok_or_else(|| invalid_config(NAME, "level", v, "expected a 32-bit integer"))?,
        };
        let checksum = match config.get("checksum") {
            None => false,
            Some(v) => v
                .as_bool()
                .ok_or_else(|| invalid_config(NAME, "checksum", v, "expected true or false"))?,
        };
        Ok(Self { level, checksum })
    }

    /// The decoded size from the frame headers: `Ok(None)` if a frame does not record it.
    fn content_size(encoded: &[u8], max_decoded: usize) -> Result<Option<usize>, CodecError> {
        match zstd_safe::find_decompressed_size(encoded) {
            Ok(Some(n)) if n > max_decoded as u64 => Err(CodecError::TooLarge {
                codec: NAME,
                actual: n.min(usize::MAX as u64) as usize,
                limit: max_decoded,
            }),
            Ok(Some(n)) => Ok(Some(n as usize)),
            Ok(None) => Ok(None),
            Err(_) => Err(CodecError::corrupt(
                NAME,
                "not whole zstd frames (not zstd, cut short, or followed by other bytes)",
            )),
        }
    }

    /// Decodes frames that do not record their size, stopping one byte past the limit.
    fn decode_streaming(encoded: &[u8], max_decoded: usize) -> Result<Vec<u8>, CodecError> {
        let decoder =
            zstd::stream::read::Decoder::new(encoded).map_err(|e| CodecError::corrupt(NAME, e))?;
        let mut out = Vec::new();
        decoder
            .take(max_decoded as u64 + 1)
            .read_to_end(&mut out)
            .map_err(|e| CodecError::corrupt(NAME, e))?;
        if out.len() > max_decoded {
            return Err(CodecError::TooLarge {
                codec: NAME,
                actual: out.len(),
                limit: max_decoded,
            });
        }
        Ok(out)
    }

    /// Whether `encoded` is one zstd frame (as zarr writes them) whose header records
    /// `decoded_len` as its content size and that carries no content checksum (which only a
    /// whole decode can check): then a prefix of it can be decoded alone.
    fn prefix_decodable(encoded: &[u8], decoded_len: usize) -> bool {
        const CHECKSUM_FLAG: u8 = 1 << 2;
        let (Some(magic), Some(&descriptor)) = (encoded.get(..4), encoded.get(4)) else {
            return false;
        };
        magic == FRAME_MAGIC.to_le_bytes()
            && descriptor & CHECKSUM_FLAG == 0
            && matches!(zstd_safe::get_frame_content_size(encoded), Ok(Some(n)) if n == decoded_len as u64)
            && matches!(zstd_safe::find_frame_compressed_size(encoded), Ok(n) if n == encoded.len())
    }

    /// Decodes the frame block by block straight into `out` (its whole decoded length), and
    /// stops once the first `end` bytes are out.
    fn decode_prefix(encoded: &[u8], out: &mut [u8], end: usize) -> Result<(), CodecError> {
        PREFIX_DCTX.with(|cell| {
            let mut slot = cell.borrow_mut();
            if slot.is_none() {
                *slot = RawDCtx::create();
            }
            let Some(dctx) = slot.as_ref().map(|d| d.0.as_ptr()) else {
                return Err(CodecError::corrupt(NAME, "out of memory for a context"));
            };
            // SAFETY: `dctx` is this thread's live context. Buffer-less decoding reads the
            // `next` input bytes zstd asks for (checked to lie within `encoded`) and writes at
            // most the capacity it is given, which ends at the end of `out`; every block is
            // written right after the previous one, as this mode requires of back references.
            unsafe {
                let code = zstd_sys::ZSTD_decompressBegin(dctx);
                if is_error(code) {
                    return Err(zstd_error(code));
                }
                let (mut read, mut written) = (0usize, 0usize);
                while written < end {
                    let next = zstd_sys::ZSTD_nextSrcSizeToDecompress(dctx);
                    if next == 0 {
                        break;
                    }
                    if next > encoded.len() - read {
                        return Err(CodecError::corrupt(NAME, "truncated frame"));
                    }
                    let n = zstd_sys::ZSTD_decompressContinue(
                        dctx,
                        out.as_mut_ptr().add(written) as *mut std::ffi::c_void,
                        out.len() - written,
                        encoded.as_ptr().add(read) as *const std::ffi::c_void,
                        next,
                    );
                    if is_error(n) {
                        return Err(zstd_error(n));
                    }
                    read += next;
                    written += n;
                }
                if written < end {
                    return Err(CodecError::corrupt(
                        NAME,
                        format!("decoded to {written} bytes, expected {}", out.len()),
                    ));
                }
            }
            Ok(())
        })
    }

    pub(crate) fn with_dctx<T>(f: impl FnOnce(&mut DCtx<'static>) -> T) -> T {
        DCTX.with(|cell| {
            let mut slot = cell.borrow_mut();
            f(slot.get_or_insert_with(DCtx::create))
        })
    }
}

impl BytesToBytesCodec for Zstd {
    fn encode(&self, decoded: &[u8]) -> Result<Vec<u8>, CodecError> {
        CCTX.with(|cell| {
            let mut slot = cell.borrow_mut();
            let cctx = slot.get_or_insert_with(CCtx::create);
            let setup = |cctx: &mut CCtx<'static>| -> Result<(), usize> {
                cctx.reset(zstd_safe::ResetDirective::SessionAndParameters)?;
                let level = self
                    .level
                    .clamp(zstd_safe::min_c_level(), zstd_safe::max_c_level());
                cctx.set_parameter(CParameter::CompressionLevel(level))?;
                cctx.set_parameter(CParameter::ChecksumFlag(self.checksum))?;
                Ok(())
            };
            setup(cctx).map_err(|code| CodecError::Encode {
                codec: NAME,
                reason: zstd_safe::get_error_name(code).to_string(),
            })?;
            let mut out = alloc::with_capacity(zstd_safe::compress_bound(decoded.len()))?;
            cctx.compress2(&mut out, decoded)
                .map_err(|code| CodecError::Encode {
                    codec: NAME,
                    reason: zstd_safe::get_error_name(code).to_string(),
                })?;
            Ok(out)
        })
    }

    fn decode<'a>(
        &self,
        encoded: Cow<'a, [u8]>,
        max_decoded: usize,
    ) -> Result<Cow<'a, [u8]>, CodecError> {
        let Some(size) = Self::content_size(&encoded, max_decoded)? else {
            return Self::decode_streaming(&encoded, max_decoded).map(Cow::Owned);
        };
        // The frame's content size is the damaged chunk's word: allocated fallibly.
        let mut out = alloc::with_capacity(size)?;
        let written =
            Self::with_dctx(|dctx| dctx.decompress(&mut out, &encoded)).map_err(zstd_error)?;
        check_len(NAME, written, size)?;
        Ok(Cow::Owned(out))
    }

    fn decode_into(&self, encoded: &[u8], out: &mut [u8]) -> Result<(), CodecError> {
        match Self::content_size(encoded, out.len())? {
            Some(size) => {
                check_len(NAME, size, out.len())?;
                let written =
                    Self::with_dctx(|dctx| dctx.decompress(out, encoded)).map_err(zstd_error)?;
                check_len(NAME, written, out.len())
            }
            None => {
                let decoded = Self::decode_streaming(encoded, out.len())?;
                check_len(NAME, decoded.len(), out.len())?;
                out.copy_from_slice(&decoded);
                Ok(())
            }
        }
    }

    fn decode_range_into(
        &self,
        encoded: &[u8],
        out: &mut [u8],
        range: Range<usize>,
    ) -> Result<(), CodecError> {
        if range.end < out.len() && Self::prefix_decodable(encoded, out.len()) {
            return Self::decode_prefix(encoded, out, range.end);
        }
        self.decode_into(encoded, out)
    }

    fn max_encoded_size(&self, decoded_len: usize) -> usize {
        zstd_safe::compress_bound(decoded_len)
    }

    fn name(&self) -> &'static str {
        NAME
    }

    fn metadata(&self) -> Value {
        let mut config = Map::new();
        config.insert("level".into(), self.level.into());
        config.insert("checksum".into(), self.checksum.into());
        codec_metadata(NAME, config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn round_trip_and_limits() {
        let codec = Zstd::new(3, true);
        let data: Vec<u8> = (0..10_000u32)
            .flat_map(|i| (i % 97).to_le_bytes())
            .collect();
        let enc = codec.encode(&data).unwrap();
        assert!(enc.len() < data.len());
        let dec = codec.decode(Cow::Borrowed(&enc), data.len()).unwrap();
        assert_eq!(dec.as_ref(), &data[..]);
        let mut out = vec![0u8; data.len()];
        codec.decode_into(&enc, &mut out).unwrap();
        assert_eq!(out, data);
        assert!(matches!(
            codec.decode(Cow::Borrowed(&enc), data.len() - 1),
            Err(CodecError::TooLarge { .. })
        ));
        // A corrupted frame fails its checksum.
        let mut bad = enc.clone();
        let n = bad.len();
        bad[n / 2] ^= 0xff;
        assert!(codec.decode_into(&bad, &mut out).is_err());
    }

    /// Data that spans several zstd blocks (128 KiB each) and compresses.
    fn blocks_of_data() -> Vec<u8> {
        (0..150_000u32)
            .flat_map(|i| ((i / 7) % 1000 + i % 13).to_le_bytes())
            .collect()
    }

    #[test]
    fn a_prefix_decodes_alone() {
        let data = blocks_of_data();
        let codec = Zstd::new(3, false);
        let enc = codec.encode(&data).unwrap();
        assert!(Zstd::prefix_decodable(&enc, data.len()));
        for range in [
            0..1,
            5..9,
            100_000..100_004,
            131_071..131_073,
            400_000..599_999,
        ] {
            let mut out = vec![0u8; data.len()];
            codec
                .decode_range_into(&enc, &mut out, range.clone())
                .unwrap();
            assert_eq!(out[..range.end], data[..range.end], "{range:?}");
        }
        // The last byte needed is the chunk's last: a full decode.
        let mut out = vec![0u8; data.len()];
        codec
            .decode_range_into(&enc, &mut out, 0..data.len())
            .unwrap();
        assert_eq!(out, data);
    }

    #[test]
    fn prefixes_of_bad_or_checked_frames() {
        let data = blocks_of_data();
        let mut out = vec![0u8; data.len()];
        // A frame with a content checksum is decoded whole, so the checksum is still checked.
        let checked = Zstd::new(3, true).encode(&data).unwrap();
        assert!(!Zstd::prefix_decodable(&checked, data.len()));
        let mut bad = checked.clone();
        let n = bad.len();
        bad[n - 10] ^= 0xff;
        assert!(Zstd::new(3, true)
            .decode_range_into(&bad, &mut out, 0..4)
            .is_err());
        let codec = Zstd::new(3, false);
        let enc = codec.encode(&data).unwrap();
        // A content size other than the chunk's, a truncated frame, a corrupted block header,
        // random bytes: errors, never a panic.
        assert!(codec
            .decode_range_into(&enc, &mut vec![0u8; data.len() + 4], 0..4)
            .is_err());
        assert!(codec
            .decode_range_into(&enc[..enc.len() / 2], &mut out, 0..500_000)
            .is_err());
        for at in [6, 10, 20, enc.len() / 3, enc.len() - 3] {
            let mut bad = enc.clone();
            bad[at] ^= 0x5a;
            let _ = codec.decode_range_into(&bad, &mut out, 0..590_000);
        }
        let noise: Vec<u8> = (0..5000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        assert!(codec.decode_range_into(&noise, &mut out, 0..4).is_err());
    }

    #[test]
    fn frames_without_content_size_are_bounded() {
        let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 1).unwrap();
        enc.include_contentsize(false).unwrap();
        enc.write_all(&[7u8; 5000]).unwrap();
        let enc = enc.finish().unwrap();
        let codec = Zstd::new(1, false);
        assert_eq!(codec.decode(Cow::Borrowed(&enc), 5000).unwrap().len(), 5000);
        assert!(codec.decode(Cow::Borrowed(&enc), 4999).is_err());
        let mut out = vec![0u8; 5000];
        codec.decode_into(&enc, &mut out).unwrap();
        assert_eq!(out, vec![7u8; 5000]);
    }
}
