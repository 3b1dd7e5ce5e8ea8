//! `blosc` (v3 core codec `blosc`; v2 numcodecs id `blosc`): c-blosc 1.x frames, as numcodecs
//! writes them. Spec: zarr-specs v3.0, codecs/blosc.
//!
//! Compressors: blosclz, lz4, lz4hc, zlib, zstd — the ones c-blosc is built with here (snappy
//! is not). Blosc's own threads are never used: the engine parallelises over chunks.

use std::borrow::Cow;
use std::ffi::{c_int, c_void, CString};

use blosc_src::{
    blosc_cbuffer_sizes, blosc_cbuffer_validate, blosc_compress_ctx, blosc_decompress_ctx,
    BLOSC_MAX_OVERHEAD,
};
use serde_json::{Map, Value};

use crate::alloc;
use crate::codec::{
    check_config_keys, check_len, codec_metadata, invalid_config, BytesToBytesCodec, ChunkRows,
};
use crate::error::{CodecError, MetadataError};
use crate::metadata::DataType;

mod frame;
mod unshuffle;
use frame::Frame;

const NAME: &str = "blosc";
const CNAMES: [&str; 5] = ["blosclz", "lz4", "lz4hc", "zlib", "zstd"];
/// c-blosc 1.x cannot compress buffers larger than this.
const MAX_BUFFER: usize = i32::MAX as usize - BLOSC_MAX_OVERHEAD as usize;
const OVERHEAD: usize = BLOSC_MAX_OVERHEAD as usize;
/// Frames at least this large decode their blocks on several threads (a lone chunk read would
/// otherwise use one core); smaller ones are a few tens of microseconds of work.
const PARALLEL_BYTES: usize = 256 << 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shuffle {
    NoShuffle = 0,
    Shuffle = 1,
    BitShuffle = 2,
}

impl Shuffle {
    fn name(self) -> &'static str {
        match self {
            Self::NoShuffle => "noshuffle",
            Self::Shuffle => "shuffle",
            Self::BitShuffle => "bitshuffle",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Blosc {
    cname: CString,
    clevel: u8,
    shuffle: Shuffle,
    typesize: usize,
    /// Whether `typesize` was given in the metadata (it is written back only then).
    typesize_given: bool,
    blocksize: usize,
}

impl Blosc {
    pub fn from_config(
        config: &Map<String, Value>,
        data_type: &DataType,
    ) -> Result<Self, MetadataError> {
        check_config_keys(
            NAME,
            config,
            &["cname", "clevel", "shuffle", "typesize", "blocksize"],
        )?;
        let cname = match config.get("cname") {
            None => "lz4",
            Some(Value::String(s)) if CNAMES.contains(&s.as_str()) => s.as_str(),
            Some(v) => {
                return Err(MetadataError::Unsupported {
                    field: "codecs[blosc].configuration.cname".into(),
                    value: format!("{v} (supported: {})", CNAMES.join(", ")),
                })
            }
        };
        let clevel = match config.get("clevel") {
            None => 5,
            Some(v) => v
                .as_u64()
                .filter(|l| *l <= 9)
                .ok_or_else(|| invalid_config(NAME, "clevel", v, "expected 0..=9"))?
                as u8,
        };
        // `None`: numcodecs' AUTOSHUFFLE (-1), which depends on the type size.
        let shuffle = match config.get("shuffle") {
            None => Some(Shuffle::NoShuffle),
            Some(v) => match (v.as_str(), v.as_i64()) {
                (Some("noshuffle"), _) | (_, Some(0)) => Some(Shuffle::NoShuffle),
                (Some("shuffle"), _) | (_, Some(1)) => Some(Shuffle::Shuffle),
                (Some("bitshuffle"), _) | (_, Some(2)) => Some(Shuffle::BitShuffle),
                (_, Some(-1)) => None,
                _ => {
                    return Err(invalid_config(
                        NAME,
                        "shuffle",
                        v,
                        "expected noshuffle, shuffle or bitshuffle",
                    ))
                }
            },
        };
        let typesize = match config.get("typesize") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                // zarr-python writes an element's size, past blosc's 255 too (records,
                // long fixed-size strings): blosc shuffles those as single bytes.
                v.as_u64()
                    .filter(|t| (1..=u64::from(u32::MAX)).contains(t))
                    .ok_or_else(|| {
                        invalid_config(NAME, "typesize", v, "expected a positive integer")
                    })? as usize,
            ),
        };
        let blocksize = match config.get("blocksize") {
            None => 0,
            Some(v) => v
                .as_u64()
                .ok_or_else(|| invalid_config(NAME, "blocksize", v, "expected an integer >= 0"))?
                as usize,
        };
        let effective_typesize = typesize.unwrap_or(data_type.size().max(1));
        // numcodecs' AUTOSHUFFLE: bit shuffle for one-byte elements (byte shuffle would
        // leave them as they are), byte shuffle otherwise.
        let shuffle = shuffle.unwrap_or(if effective_typesize == 1 {
            Shuffle::BitShuffle
        } else {
            Shuffle::Shuffle
        });
        Ok(Self {
            cname: CString::new(cname).unwrap_or_default(),
            clevel,
            shuffle,
            typesize: effective_typesize,
            typesize_given: typesize.is_some(),
            blocksize,
        })
    }

    /// The frame at the start of `encoded` and its decoded size, from the frame's header,
    /// after checking that the frame fits in `encoded`. Bytes stored after the frame (padding
    /// some writers leave) are not part of it: numcodecs, and so zarr-python, decode such
    /// chunks from the frame alone.
    fn frame_of(encoded: &[u8]) -> Result<(&[u8], usize), CodecError> {
        if encoded.len() < OVERHEAD {
            return Err(CodecError::corrupt(NAME, "shorter than a blosc header"));
        }
        let (mut nbytes, mut cbytes, mut blocksize) = (0usize, 0usize, 0usize);
        // SAFETY: the buffer holds at least the 16-byte header these functions read.
        unsafe {
            blosc_cbuffer_sizes(
                encoded.as_ptr() as *const c_void,
                &mut nbytes,
                &mut cbytes,
                &mut blocksize,
            );
        }
        // The header holds the sizes as 32-bit fields, which c-blosc reads as signed and
        // widens: 2^31 and more would come back as sizes near 2^64.
        let (nbytes, cbytes) = (nbytes as u32 as usize, cbytes as u32 as usize);
        let invalid = || {
            CodecError::corrupt(
                NAME,
                format!(
                    "invalid header ({nbytes} bytes decoded from {cbytes} compressed, {} \
                     stored)",
                    encoded.len()
                ),
            )
        };
        let frame = encoded.get(..cbytes).ok_or_else(invalid)?;
        let mut checked = 0usize;
        // SAFETY: validate reads only the header and compares against the given length.
        let valid = unsafe {
            blosc_cbuffer_validate(frame.as_ptr() as *const c_void, frame.len(), &mut checked)
        };
        if valid < 0 {
            return Err(invalid());
        }
        Ok((frame, nbytes))
    }

    /// Decodes a whole frame into `out` (exactly its decoded size).
    fn decompress(encoded: &[u8], out: &mut [u8]) -> Result<(), CodecError> {
        if out.is_empty() {
            return Ok(());
        }
        match Frame::parse(encoded)? {
            Some(frame) => {
                check_len(NAME, frame.nbytes(), out.len())?;
                Self::decode_blocks(&frame, 0..frame.nblocks(), out)
            }
            None => Self::decompress_with_c_blosc(encoded, out),
        }
    }

    /// Decodes `blocks` of `frame` into their places in `out` (the whole decoded frame), on
    /// several threads when there is enough of them.
    fn decode_blocks(
        frame: &Frame<'_>,
        blocks: std::ops::Range<usize>,
        out: &mut [u8],
    ) -> Result<(), CodecError> {
        // The block ranges below lie inside the frame's decoded size, so inside `out`.
        check_len(NAME, frame.nbytes(), out.len())?;
        let base = out.as_mut_ptr() as usize;
        Self::each_block(frame, blocks, |j| {
            let range = frame.block_range(j);
            // SAFETY: in bounds (checked above); blocks cover disjoint ranges of `out`, and
            // each call decodes one block.
            let dst = unsafe {
                std::slice::from_raw_parts_mut((base + range.start) as *mut u8, range.len())
            };
            frame.decode_block(j, dst)
        })
    }

    /// Runs `work(j)` for every block `j` of `blocks`, on several threads when they span
    /// enough bytes to be worth it.
    fn each_block(
        frame: &Frame<'_>,
        blocks: std::ops::Range<usize>,
        work: impl Fn(usize) -> Result<(), CodecError> + Sync,
    ) -> Result<(), CodecError> {
        if blocks.is_empty() {
            return Ok(());
        }
        let span = frame.block_range(blocks.start).start..frame.block_range(blocks.end - 1).end;
        if blocks.len() < 2 || span.len() < PARALLEL_BYTES {
            return blocks.into_iter().try_for_each(work);
        }
        crate::concurrency::split(blocks.len(), |i| work(blocks.start + i))
    }

    /// Frames the block decoder leaves to c-blosc (another format version, say): it decodes
    /// them, or refuses them with its error code.
    fn decompress_with_c_blosc(encoded: &[u8], out: &mut [u8]) -> Result<(), CodecError> {
        // SAFETY: `out` is writable for its whole length, which is passed as the limit; the
        // frame was checked to lie within `encoded`.
        let n = unsafe {
            blosc_decompress_ctx(
                encoded.as_ptr() as *const c_void,
                out.as_mut_ptr() as *mut c_void,
                out.len(),
                1,
            )
        };
        if n < 0 {
            return Err(CodecError::corrupt(
                NAME,
                format!("decompression failed ({n})"),
            ));
        }
        check_len(NAME, n as usize, out.len())
    }
}

impl BytesToBytesCodec for Blosc {
    fn encode(&self, decoded: &[u8]) -> Result<Vec<u8>, CodecError> {
        if decoded.len() > MAX_BUFFER {
            return Err(CodecError::Encode {
                codec: NAME,
                reason: format!("chunks over {MAX_BUFFER} bytes are too large for blosc"),
            });
        }
        let mut out = alloc::zeroed(decoded.len() + OVERHEAD)?;
        // SAFETY: `out` has room for the input plus blosc's maximum overhead, so compression
        // always fits; the source and destination do not overlap.
        let n = unsafe {
            blosc_compress_ctx(
                self.clevel as c_int,
                self.shuffle as c_int,
                // As c-blosc itself takes a larger one: a stream of bytes.
                if self.typesize > 255 {
                    1
                } else {
                    self.typesize
                },
                decoded.len(),
                decoded.as_ptr() as *const c_void,
                out.as_mut_ptr() as *mut c_void,
                out.len(),
                self.cname.as_ptr(),
                self.blocksize,
                1,
            )
        };
        if n <= 0 {
            return Err(CodecError::Encode {
                codec: NAME,
                reason: format!("compression failed ({n})"),
            });
        }
        out.truncate(n as usize);
        Ok(out)
    }

    fn decode<'a>(
        &self,
        encoded: Cow<'a, [u8]>,
        max_decoded: usize,
    ) -> Result<Cow<'a, [u8]>, CodecError> {
        let (frame, nbytes) = Self::frame_of(&encoded)?;
        if nbytes > max_decoded {
            return Err(CodecError::TooLarge {
                codec: NAME,
                actual: nbytes,
                limit: max_decoded,
            });
        }
        // The header's size is the damaged chunk's word: allocated fallibly.
        let mut out = crate::alloc::zeroed(nbytes)?;
        Self::decompress(frame, &mut out)?;
        Ok(Cow::Owned(out))
    }

    fn decode_into(&self, encoded: &[u8], out: &mut [u8]) -> Result<(), CodecError> {
        let (encoded, nbytes) = Self::frame_of(encoded)?;
        check_len(NAME, nbytes, out.len())?;
        Self::decompress(encoded, out)
    }

    /// Decodes only the blocks holding `range` (blosc compresses each block on its own): a
    /// point read of a chunk decodes one block rather than the chunk. Damage confined to the
    /// other blocks goes unnoticed by such a read, as it would by any read that does not
    /// decode them: blosc frames carry no checksum (a `crc32c` codec after blosc adds one,
    /// and then chunks are decoded whole).
    fn decode_range_into(
        &self,
        encoded: &[u8],
        out: &mut [u8],
        range: std::ops::Range<usize>,
    ) -> Result<(), CodecError> {
        let (encoded, nbytes) = Self::frame_of(encoded)?;
        check_len(NAME, nbytes, out.len())?;
        if range.start >= range.end || range.end > out.len() || range.len() * 2 > out.len() {
            // Half the chunk or more (or nothing, or anything odd): decode it all.
            return Self::decompress(encoded, out);
        }
        match Frame::parse(encoded)? {
            Some(frame) => {
                let first = range.start / frame.blocksize();
                let last = (range.end - 1) / frame.blocksize();
                Self::decode_blocks(&frame, first..last + 1, out)
            }
            None => Self::decompress_with_c_blosc(encoded, out),
        }
    }

    /// A whole chunk read into a larger output: each block is decoded straight into the
    /// output's rows (see `Frame::decode_block_into_rows`), on several threads for a large
    /// frame as `decompress` does. Frames left to c-blosc are not.
    fn decode_into_rows(&self, encoded: &[u8], rows: &ChunkRows<'_>) -> Result<bool, CodecError> {
        let (encoded, nbytes) = Self::frame_of(encoded)?;
        check_len(NAME, nbytes, rows.nbytes())?;
        let Some(frame) = Frame::parse(encoded)? else {
            return Ok(false);
        };
        Self::each_block(&frame, 0..frame.nblocks(), |j| {
            frame.decode_block_into_rows(j, rows)
        })?;
        Ok(true)
    }

    /// From [`PARALLEL_BYTES`] on, as `each_block` judges a frame of several blocks (one
    /// block alone is decoded on one thread; a read in pieces then costs little).
    fn decodes_in_parallel(&self, decoded_len: usize) -> bool {
        decoded_len >= PARALLEL_BYTES
    }

    fn writes_rows(&self) -> bool {
        true
    }

    fn max_encoded_size(&self, decoded_len: usize) -> usize {
        decoded_len + OVERHEAD
    }

    fn name(&self) -> &'static str {
        NAME
    }

    fn metadata(&self) -> Value {
        // In zarr-python's key order, so that zarr.json documents are the same bytes.
        let mut config = Map::new();
        if self.typesize_given || self.shuffle != Shuffle::NoShuffle {
            config.insert("typesize".into(), self.typesize.into());
        }
        config.insert(
            "cname".into(),
            self.cname.to_string_lossy().into_owned().into(),
        );
        config.insert("clevel".into(), self.clevel.into());
        config.insert("shuffle".into(), self.shuffle.name().into());
        config.insert("blocksize".into(), self.blocksize.into());
        codec_metadata(NAME, config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn blosc(config: Value) -> Blosc {
        Blosc::from_config(config.as_object().unwrap(), &DataType::UInt16).unwrap()
    }

    #[test]
    fn every_compressor_and_shuffle_round_trips() {
        let data: Vec<u8> = (0..40_000u32)
            .flat_map(|i| ((i % 300) as u16).to_le_bytes())
            .collect();
        for cname in CNAMES {
            for shuffle in ["noshuffle", "shuffle", "bitshuffle"] {
                let codec = blosc(json!({"cname": cname, "clevel": 5, "shuffle": shuffle,
                                         "typesize": 2, "blocksize": 0}));
                let enc = codec.encode(&data).unwrap();
                assert!(enc.len() < data.len(), "{cname} {shuffle}");
                let mut out = vec![0u8; data.len()];
                codec.decode_into(&enc, &mut out).unwrap();
                assert_eq!(out, data, "{cname} {shuffle}");
                assert!(codec.decode(Cow::Borrowed(&enc), data.len() - 1).is_err());
            }
        }
    }

    #[test]
    fn a_range_decodes_only_its_blocks() {
        let data: Vec<u8> = (0..300_000u32)
            .flat_map(|i| ((i / 5) % 700).to_le_bytes())
            .collect();
        for (cname, shuffle, typesize) in [("lz4", "shuffle", 4), ("zstd", "bitshuffle", 2)] {
            let codec = blosc(json!({"cname": cname, "clevel": 5, "shuffle": shuffle,
                                     "typesize": typesize, "blocksize": 16384}));
            let enc = codec.encode(&data).unwrap();
            for range in [
                0..1,
                3..4,
                16_383..16_385,
                700_001..700_003,
                1_199_990..1_200_000,
            ] {
                let mut out = vec![0u8; data.len()];
                codec
                    .decode_range_into(&enc, &mut out, range.clone())
                    .unwrap();
                assert_eq!(out[range.clone()], data[range.clone()], "{cname} {range:?}");
            }
            // Most of the chunk: decoded whole.
            let mut out = vec![0u8; data.len()];
            codec
                .decode_range_into(&enc, &mut out, 10..1_100_000)
                .unwrap();
            assert_eq!(out, data);
            // A frame of another length, or truncated: errors.
            let mut longer = vec![0u8; data.len() + 4];
            assert!(codec.decode_range_into(&enc, &mut longer, 0..4).is_err());
            assert!(codec
                .decode_range_into(&enc[..enc.len() / 2], &mut out, 0..4)
                .is_err());
        }
    }

    #[test]
    fn large_frames_decode_in_parallel() {
        crate::concurrency::with_threads(3, || {
            let data: Vec<u8> = (0..3_000_000u32)
                .map(|i| (i % 251) as u8 ^ (i >> 12) as u8)
                .collect();
            for blocksize in [0, 65536, 100_000] {
                let codec = blosc(json!({"cname": "lz4", "clevel": 5, "shuffle": "shuffle",
                                         "typesize": 2, "blocksize": blocksize}));
                let enc = codec.encode(&data).unwrap();
                let mut out = vec![0u8; data.len()];
                codec.decode_into(&enc, &mut out).unwrap();
                assert!(out == data, "blocksize {blocksize}");
                let mut bad = enc.clone();
                let n = bad.len();
                bad[n / 2] ^= 0x55;
                let _ = codec.decode_into(&bad, &mut out); // an error or garbage, never a crash
            }
        });
    }

    /// Decodes `enc` into rows of `row_len` bytes spread over a larger buffer (a gap of `gap`
    /// bytes after each), with `threads` threads, and checks them against `expected`; the gaps
    /// stay untouched. Returns what `decode_into_rows` returned.
    fn check_rows(
        codec: &Blosc,
        enc: &[u8],
        expected: &[u8],
        row_len: usize,
        gap: usize,
        streaming: bool,
        label: &str,
    ) -> Result<bool, CodecError> {
        let rows_n = expected.len() / row_len;
        let offsets: Vec<usize> = (0..rows_n).map(|r| 3 + r * (row_len + gap)).collect();
        let mut buf = vec![0xA5u8; 3 + rows_n * (row_len + gap)];
        // SAFETY: `buf` outlives `rows` and nothing else touches it meanwhile.
        let rows =
            unsafe { ChunkRows::new(buf.as_mut_ptr(), buf.len(), row_len, &offsets, streaming) }
                .unwrap();
        let done = codec.decode_into_rows(enc, &rows)?;
        if done {
            for (r, &o) in offsets.iter().enumerate() {
                assert!(
                    buf[o..o + row_len] == expected[r * row_len..(r + 1) * row_len],
                    "{label}: row {r}"
                );
                assert!(buf[o + row_len..o + row_len + gap]
                    .iter()
                    .all(|&b| b == 0xA5));
            }
            assert_eq!(&buf[..3], &[0xA5; 3]);
        }
        Ok(done)
    }

    #[test]
    fn whole_frames_decode_into_rows() {
        // Rows that divide the blocks and rows that straddle them, element sizes the vector
        // unshuffle takes (2, 4, 8) and ones it leaves to the scalar loop, a short last block,
        // large frames (decoded on several threads), every shuffle; streaming stores or not.
        crate::concurrency::with_threads(3, || {
            for shuffle in ["shuffle", "noshuffle", "bitshuffle"] {
                for (typesize, len, blocksize, row_len) in [
                    (2, 64 * 64 * 64 * 2, 0, 128),
                    (2, 100_000, 8192, 200),
                    (4, 120_000, 0, 48),
                    (8, 600_000, 65_536, 8 * 100),
                    (8, 40_000, 4096, 40),
                    (3, 30_000, 0, 30),
                    (16, 67_200, 4096, 16 * 7 * 4),
                    (2, 300_000, 0, 300_000),
                ] {
                    let codec = blosc(json!({"cname": "lz4", "clevel": 5, "shuffle": shuffle,
                                             "typesize": typesize, "blocksize": blocksize}));
                    let data = varied(len, len as u32);
                    let enc = codec.encode(&data).unwrap();
                    for (gap, streaming) in [(0, false), (5, false), (64, true), (7, true)] {
                        let label =
                            format!("{shuffle} {typesize} {len} {blocksize} {row_len} {gap}");
                        let done = check_rows(&codec, &enc, &data, row_len, gap, streaming, &label)
                            .unwrap();
                        assert!(done, "{label}");
                    }
                }
            }
        });
    }

    #[test]
    fn damaged_frames_fail_into_rows_as_into_a_buffer() {
        let codec = blosc(json!({"cname": "lz4", "clevel": 5, "shuffle": "shuffle",
                                 "typesize": 2, "blocksize": 4096}));
        let data = varied(60_000, 9);
        let enc = codec.encode(&data).unwrap();
        let mut x = 12345u32;
        for _ in 0..400 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let mut bad = enc.clone();
            let at = x as usize % bad.len();
            bad[at] ^= (x >> 8) as u8 | 1;
            let mut out = vec![0u8; data.len()];
            let whole = codec.decode_into(&bad, &mut out);
            match check_rows(&codec, &bad, &out, 120, 8, false, "damaged") {
                Ok(done) => {
                    // Read the same as into a buffer (checked in check_rows), or left to
                    // c-blosc, which the caller then asks through decode_into.
                    assert!(
                        whole.is_ok() || !done,
                        "byte {at}: rows read, buffer failed"
                    );
                }
                Err(_) => assert!(whole.is_err(), "byte {at}: rows failed, buffer read"),
            }
        }
        // A frame of another length is refused.
        assert!(check_rows(&codec, &enc, &data[..59_880], 120, 0, false, "short").is_err());
    }

    /// Data of `n` bytes that compresses a little (runs of small values with noise).
    fn varied(n: usize, seed: u32) -> Vec<u8> {
        let mut x = seed.wrapping_mul(2_654_435_761).max(1);
        (0..n)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                ((i / 7) as u8).wrapping_add((x % 4) as u8)
            })
            .collect()
    }

    #[test]
    fn block_decoder_matches_c_blosc() {
        // Element sizes on both sides of c-blosc's split limit (16), forced block sizes that
        // leave a short last block, sizes that are not whole elements, stored (clevel 0) and
        // incompressible frames, every compressor and shuffle.
        for cname in CNAMES {
            for shuffle in ["noshuffle", "shuffle", "bitshuffle"] {
                for (typesize, len, blocksize, clevel) in [
                    (1, 70_000, 0, 5),
                    (2, 100_002, 8192, 5),
                    (4, 1_001, 0, 9),
                    (8, 300_000, 65_536, 1),
                    (16, 65_536, 4096, 5),
                    (17, 34_000, 0, 5),
                    (4, 200_000, 0, 0),
                    (2, 6, 0, 5),
                ] {
                    let codec = blosc(json!({"cname": cname, "clevel": clevel, "shuffle": shuffle,
                                             "typesize": typesize, "blocksize": blocksize}));
                    let data = varied(len, typesize as u32 + len as u32);
                    let label = format!("{cname} {shuffle} {typesize} {len} {blocksize} {clevel}");
                    for data in [
                        data.clone(),
                        varied(len, 7).iter().map(|b| b.wrapping_mul(157)).collect(),
                    ] {
                        let enc = codec.encode(&data).unwrap();
                        assert!(Frame::parse(&enc).unwrap().is_some(), "{label}");
                        let mut ours = vec![0u8; len];
                        Blosc::decompress(&enc, &mut ours).unwrap();
                        assert!(ours == data, "{label}");
                        let mut theirs = vec![0u8; len];
                        Blosc::decompress_with_c_blosc(&enc, &mut theirs).unwrap();
                        assert!(theirs == data, "{label}");
                    }
                }
            }
        }
    }

    #[test]
    fn damaged_frames_fail_as_c_blosc_does_and_never_crash() {
        let data = varied(150_000, 3);
        for (cname, shuffle) in [
            ("lz4", "shuffle"),
            ("blosclz", "bitshuffle"),
            ("zstd", "noshuffle"),
            ("zlib", "shuffle"),
        ] {
            let codec = blosc(json!({"cname": cname, "clevel": 5, "shuffle": shuffle,
                                     "typesize": 4, "blocksize": 16384}));
            let enc = codec.encode(&data).unwrap();
            let mut x = 12345u32;
            for round in 0..600 {
                let mut bad = enc.clone();
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                // Header and block offsets often, the streams otherwise.
                let at = if round % 3 == 0 {
                    x as usize % 96
                } else {
                    x as usize % bad.len()
                };
                bad[at] ^= 1 << (x % 8);
                let mut ours = vec![0u8; data.len()];
                let mut theirs = vec![0u8; data.len()];
                // Both behind the header checks every decode makes first.
                let checked =
                    |out: &mut [u8], decode: fn(&[u8], &mut [u8]) -> Result<(), CodecError>| {
                        let (_, nbytes) = Blosc::frame_of(&bad)?;
                        check_len(NAME, nbytes, out.len())?;
                        decode(&bad, out)
                    };
                let a = checked(&mut ours, Blosc::decompress);
                let b = checked(&mut theirs, Blosc::decompress_with_c_blosc);
                assert_eq!(a.is_ok(), b.is_ok(), "{cname} byte {at}: {a:?} / {b:?}");
                if a.is_ok() {
                    assert!(ours == theirs, "{cname} byte {at}");
                }
            }
        }
    }

    #[test]
    fn bytes_stored_after_the_frame_are_not_read() -> Result<(), Box<dyn std::error::Error>> {
        // numcodecs decodes a chunk from its frame alone, so zarr-python reads chunks that
        // some writer padded; they were refused here as an invalid header.
        let data = varied(300_000, 9);
        for cname in ["lz4", "zstd", "blosclz", "zlib"] {
            let codec = blosc(json!({"cname": cname, "clevel": 5, "shuffle": "shuffle",
                                     "typesize": 2, "blocksize": 16384}));
            let mut padded = codec.encode(&data)?;
            padded.extend_from_slice(&[0, 0, 0, 7]);
            assert_eq!(codec.decode(Cow::Borrowed(&padded), data.len())?, data);
            let mut out = vec![0u8; data.len()];
            codec.decode_into(&padded, &mut out)?;
            assert_eq!(out, data, "{cname}");
            let mut part = vec![0u8; data.len()];
            codec.decode_range_into(&padded, &mut part, 20_000..20_010)?;
            assert_eq!(part[20_000..20_010], data[20_000..20_010], "{cname}");
            let rows = check_rows(&codec, &padded, &data, 600, 5, false, cname)?;
            assert!(rows, "{cname}");
        }
        Ok(())
    }

    #[test]
    fn header_sizes_past_2_31_are_read_unsigned() -> Result<(), Box<dyn std::error::Error>> {
        let codec = blosc(json!({"cname": "lz4", "clevel": 5, "shuffle": "shuffle",
                                 "typesize": 4, "blocksize": 0}));
        let mut enc = codec.encode(&varied(40, 3))?;
        enc[4..8].copy_from_slice(&(1u32 << 31).to_le_bytes());
        let err = Blosc::frame_of(&enc)
            .err()
            .ok_or("a frame claiming 2 GiB accepted")?;
        assert!(
            err.to_string().contains("(2147483648 bytes decoded"),
            "{err}"
        );
        Ok(())
    }

    #[test]
    fn numcodecs_autoshuffle() {
        let auto = |dt: &DataType, config: Value| {
            Blosc::from_config(config.as_object().unwrap(), dt)
                .unwrap()
                .shuffle
        };
        assert_eq!(
            auto(&DataType::UInt8, json!({"shuffle": -1})),
            Shuffle::BitShuffle
        );
        assert_eq!(
            auto(&DataType::Int32, json!({"shuffle": -1})),
            Shuffle::Shuffle
        );
        assert_eq!(
            auto(&DataType::Int32, json!({"shuffle": -1, "typesize": 1})),
            Shuffle::BitShuffle
        );
        assert!(Blosc::from_config(
            json!({"shuffle": -2}).as_object().unwrap(),
            &DataType::UInt8
        )
        .is_err());
    }

    #[test]
    fn bad_frames_and_configs() {
        let codec = blosc(json!({"cname": "lz4"}));
        let enc = codec.encode(&[1u8; 1000]).unwrap();
        let mut out = vec![0u8; 1000];
        assert!(codec.decode_into(&enc[..enc.len() - 1], &mut out).is_err());
        assert!(codec.decode_into(&enc[..10], &mut out).is_err());
        assert!(codec.decode_into(&enc, &mut out[..999]).is_err());
        let empty = codec.encode(&[]).unwrap();
        codec.decode_into(&empty, &mut []).unwrap();
        let err = Blosc::from_config(
            json!({"cname": "snappy"}).as_object().unwrap(),
            &DataType::UInt8,
        )
        .unwrap_err();
        assert!(err.to_string().contains("snappy"));
        assert!(
            Blosc::from_config(json!({"clevel": 10}).as_object().unwrap(), &DataType::UInt8)
                .is_err()
        );
    }
}
