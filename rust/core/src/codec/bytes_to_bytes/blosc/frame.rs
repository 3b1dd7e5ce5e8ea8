//! Decoding a c-blosc 1.x frame block by block: the same compressors and unshuffle routines
//! c-blosc uses, driven from here.
//!
//! Why not `blosc_decompress_ctx`: it allocates its scratch on every call (and `blosc_getitem`
//! three blocks' worth), and in a loop reading one chunk at a time that scratch, freed next to
//! the caller's freshly freed output, makes glibc shrink and regrow its heap on every chunk —
//! measured on 512 KiB lz4 chunks: 350 µs a chunk against 100 µs with the output reused.
//! Driving the blocks ourselves, each thread keeps its scratch, blocks without shuffle decode
//! straight into the output, a frame's blocks can be decoded on several threads, and a read of
//! part of a chunk decodes only the blocks it needs.
//!
//! The frame (format version 2): a 16-byte header — format version, compressor version, flags,
//! typesize, then decoded size, block size and frame size as little-endian 32-bit integers;
//! then, unless the data is stored as is, one 32-bit offset per block; a block is one stream,
//! or `typesize` streams (one per byte of the elements, "splits"), each a 32-bit length and
//! that many bytes, stored raw when the length is the stream's decoded size.

use std::cell::RefCell;
use std::ffi::{c_int, c_void};

use crate::codec::bytes_to_bytes::zstd::Zstd;
use crate::codec::ChunkRows;
use crate::error::CodecError;
use crate::scratch;

use super::unshuffle::unshuffle_part;
use super::NAME;

const HEADER: usize = 16;
const FORMAT_VERSION: u8 = 2;
const DOSHUFFLE: u8 = 0x1;
const MEMCPYED: u8 = 0x2;
const DOBITSHUFFLE: u8 = 0x4;
/// Reserved in format 2: c-blosc refuses frames that set it.
const RESERVED: u8 = 0x8;
const DONT_SPLIT: u8 = 0x10;
/// c-blosc splits a block by byte only for element sizes up to this, and blocks of at least
/// `MIN_SPLIT_ELEMENTS` elements (blosc.c's MAX_SPLITS and MIN_BUFFERSIZE).
const MAX_SPLITS: usize = 16;
const MIN_SPLIT_ELEMENTS: usize = 128;
/// c-blosc's BLOSC_MAX_BLOCKSIZE.
const MAX_BLOCKSIZE: usize = (i32::MAX as usize - 255 * 4) / 3;

extern "C" {
    // From the c-blosc library blosc-src builds and links; the two unshuffle routines are
    // hidden from the shared library's exports, not from a static link.
    fn blosclz_decompress(
        input: *const c_void,
        length: c_int,
        output: *mut c_void,
        maxout: c_int,
    ) -> c_int;
    fn blosc_internal_unshuffle(typesize: usize, blocksize: usize, src: *const u8, dest: *mut u8);
    fn blosc_internal_bitunshuffle(
        typesize: usize,
        blocksize: usize,
        src: *const u8,
        dest: *mut u8,
        tmp: *mut u8,
    ) -> c_int;
}

thread_local! {
    /// A block's streams before unshuffling, and bitunshuffle's working space.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    /// A decoded block on its way to the rows of a chunk.
    static BLOCK: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    static INFLATE: RefCell<Option<flate2::Decompress>> = const { RefCell::new(None) };
}

/// Where a block's streams start in the frame and how the decoded streams become the block.
struct Layout {
    start: i32,
    splits: usize,
    unshuffle: bool,
    bitunshuffle: bool,
}

#[derive(Debug, Clone, Copy)]
enum Compressor {
    BloscLz,
    Lz4,
    Zlib,
    Zstd,
}

/// A frame whose header has been checked.
pub(super) struct Frame<'a> {
    /// The frame, exactly as long as its header says.
    data: &'a [u8],
    flags: u8,
    typesize: usize,
    nbytes: usize,
    blocksize: usize,
    nblocks: usize,
    /// `None`: the data is stored as is after the header.
    compressor: Option<Compressor>,
}

fn corrupt(reason: impl ToString) -> CodecError {
    CodecError::corrupt(NAME, reason)
}

fn le32(data: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]])
}

impl<'a> Frame<'a> {
    /// Checks a frame's header. `None` for a frame this decoder leaves to c-blosc, which
    /// refuses it with its own error: another format version, a compressor not built here
    /// (snappy) or a block size that is not a whole number of elements.
    pub(super) fn parse(encoded: &'a [u8]) -> Result<Option<Self>, CodecError> {
        if encoded.len() < HEADER {
            return Err(corrupt("shorter than a blosc header"));
        }
        let (version, compversion, flags) = (encoded[0], encoded[1], encoded[2]);
        let typesize = encoded[3] as usize;
        let nbytes = le32(encoded, 4) as usize;
        let blocksize = le32(encoded, 8) as usize;
        let cbytes = le32(encoded, 12) as usize;
        if cbytes > encoded.len() || cbytes < HEADER {
            return Err(corrupt(format!(
                "header claims {cbytes} compressed bytes, {} stored",
                encoded.len()
            )));
        }
        if version != FORMAT_VERSION
            || flags & RESERVED != 0
            || typesize == 0
            || (blocksize > 0 && blocksize % typesize != 0)
        {
            return Ok(None);
        }
        let data = &encoded[..cbytes];
        if nbytes == 0 {
            return Ok(Some(Self {
                data,
                flags,
                typesize,
                nbytes,
                blocksize,
                nblocks: 0,
                compressor: None,
            }));
        }
        if blocksize == 0 || blocksize > nbytes || blocksize > MAX_BLOCKSIZE {
            return Err(corrupt(format!(
                "block size {blocksize} for {nbytes} bytes"
            )));
        }
        let nblocks = nbytes.div_ceil(blocksize);
        let compressor = if flags & MEMCPYED != 0 {
            if nbytes + HEADER != cbytes {
                return Err(corrupt(format!(
                    "{cbytes} bytes stored for {nbytes} uncompressed"
                )));
            }
            None
        } else {
            let compressor = match (flags >> 5, compversion) {
                (0, 1) => Compressor::BloscLz,
                (1, 1) => Compressor::Lz4,
                (3, 1) => Compressor::Zlib,
                (4, 1) => Compressor::Zstd,
                _ => return Ok(None),
            };
            if nblocks > (cbytes - HEADER) / 4 {
                return Err(corrupt(format!(
                    "{nblocks} blocks do not fit in {cbytes} bytes"
                )));
            }
            Some(compressor)
        };
        Ok(Some(Self {
            data,
            flags,
            typesize,
            nbytes,
            blocksize,
            nblocks,
            compressor,
        }))
    }

    pub(super) fn nbytes(&self) -> usize {
        self.nbytes
    }

    pub(super) fn blocksize(&self) -> usize {
        self.blocksize
    }

    pub(super) fn nblocks(&self) -> usize {
        self.nblocks
    }

    /// The bytes of the decoded data block `j` covers.
    pub(super) fn block_range(&self, j: usize) -> std::ops::Range<usize> {
        let start = j * self.blocksize;
        start..(start + self.blocksize).min(self.nbytes)
    }

    /// How block `j`, of `bsize` bytes, is stored: the same tests as c-blosc's blosc_d, so that
    /// every frame it reads reads the same.
    fn layout(&self, j: usize, bsize: usize) -> Layout {
        let typesize = self.typesize;
        let leftover = j == self.nblocks - 1 && self.nbytes % self.blocksize != 0;
        let unshuffle = self.flags & DOSHUFFLE != 0 && typesize > 1;
        let bitunshuffle = !unshuffle && self.flags & DOBITSHUFFLE != 0 && bsize >= typesize;
        let splits = if self.flags & DONT_SPLIT == 0
            && typesize <= MAX_SPLITS
            && bsize / typesize >= MIN_SPLIT_ELEMENTS
            && !leftover
        {
            typesize
        } else {
            1
        };
        Layout {
            start: le32(self.data, HEADER + 4 * j) as i32,
            splits,
            unshuffle,
            bitunshuffle,
        }
    }

    /// Decodes block `j` into `dst`, which is exactly as long as the block.
    pub(super) fn decode_block(&self, j: usize, dst: &mut [u8]) -> Result<(), CodecError> {
        let bsize = dst.len();
        debug_assert_eq!(bsize, self.block_range(j).len());
        let Some(compressor) = self.compressor else {
            let start = HEADER + j * self.blocksize;
            dst.copy_from_slice(&self.data[start..start + bsize]);
            return Ok(());
        };
        let typesize = self.typesize;
        let layout = self.layout(j, bsize);
        if !layout.unshuffle && !layout.bitunshuffle {
            return self.decode_streams(compressor, layout.start, layout.splits, dst);
        }
        scratch::with(&SCRATCH, |scratch| {
            scratch.resize(2 * bsize + typesize * 4, 0);
            let (streams, tmp) = scratch.split_at_mut(bsize);
            self.decode_streams(compressor, layout.start, layout.splits, streams)?;
            if layout.unshuffle {
                // SAFETY: both buffers hold `bsize` bytes.
                unsafe {
                    blosc_internal_unshuffle(typesize, bsize, streams.as_ptr(), dst.as_mut_ptr())
                };
                return Ok(());
            }
            // SAFETY: `streams` and `dst` hold `bsize` bytes and `tmp` more than that, as much
            // as c-blosc gives the routine.
            let n = unsafe {
                blosc_internal_bitunshuffle(
                    typesize,
                    bsize,
                    streams.as_ptr(),
                    dst.as_mut_ptr(),
                    tmp.as_mut_ptr(),
                )
            };
            if n < 0 {
                return Err(corrupt(format!("bitunshuffle failed ({n})")));
            }
            Ok(())
        })
    }

    /// Decodes block `j` straight into the chunk's `rows`. A byte-shuffled block (the usual
    /// case) is unshuffled row by row from its streams, without a decoded copy of the block;
    /// any other block is decoded into scratch and copied out. The row-by-row unshuffle needs
    /// whole elements everywhere: a block that starts on an element boundary (`parse` refuses
    /// block sizes that are not whole elements, and this is checked again here), that holds
    /// whole elements (c-blosc leaves a short last block's odd bytes unshuffled at its end),
    /// and rows of whole elements.
    pub(super) fn decode_block_into_rows(
        &self,
        j: usize,
        rows: &ChunkRows<'_>,
    ) -> Result<(), CodecError> {
        let range = self.block_range(j);
        let bsize = range.len();
        let typesize = self.typesize;
        let unshuffled_in_place = self
            .compressor
            .map(|compressor| (compressor, self.layout(j, bsize)))
            .filter(|(_, layout)| {
                layout.unshuffle
                    && range.start % typesize == 0
                    && bsize % typesize == 0
                    && rows.row_len() % typesize == 0
            });
        let result = match unshuffled_in_place {
            Some((compressor, layout)) => {
                scratch::with(&SCRATCH, |streams| {
                    streams.resize(bsize, 0);
                    self.decode_streams(compressor, layout.start, layout.splits, streams)?;
                    // Row by row; a block's first and last rows may be shared with the
                    // blocks around it, whose elements other threads write.
                    let n = bsize / typesize;
                    let row_elements = rows.row_len() / typesize;
                    let mut first = 0;
                    rows.for_each_piece(range.clone(), |row, within, len, _| {
                        // Whole rows (all but a block's first and last) skip the division.
                        let count = if len == rows.row_len() {
                            row_elements
                        } else {
                            len / typesize
                        };
                        // SAFETY: this block's bytes are written by this call alone.
                        let dst = unsafe { rows.piece(row, within, len) };
                        unshuffle_part(streams, n, typesize, first, count, dst, rows.streaming());
                        first += count;
                    });
                    Ok(())
                })
            }
            None => scratch::with(&BLOCK, |block| {
                block.resize(bsize, 0);
                self.decode_block(j, block)?;
                // SAFETY: this block's bytes are written by this call alone.
                unsafe { rows.write(range.start, block) };
                Ok(())
            }),
        };
        rows.finish();
        result
    }

    /// Decodes a block's `splits` streams, starting at `start` in the frame, into `out`.
    fn decode_streams(
        &self,
        compressor: Compressor,
        start: i32,
        splits: usize,
        out: &mut [u8],
    ) -> Result<(), CodecError> {
        let cbytes = self.data.len();
        let stream_len = out.len() / splits;
        let mut offset = start as i64;
        for piece in out.chunks_exact_mut(stream_len).take(splits) {
            if offset < 0 || offset > (cbytes - 4) as i64 {
                return Err(corrupt(format!(
                    "a block stream starts at {offset}, outside the frame"
                )));
            }
            let at = offset as usize;
            let len = le32(self.data, at) as i32;
            let at = at + 4;
            if len < 0 || len as usize > cbytes - at {
                return Err(corrupt(format!(
                    "a block stream of {len} bytes at {at} overruns the frame"
                )));
            }
            let src = &self.data[at..at + len as usize];
            if src.len() == stream_len {
                piece.copy_from_slice(src);
            } else {
                decompress(compressor, src, piece)?;
            }
            offset = (at + src.len()) as i64;
        }
        Ok(())
    }
}

/// Decompresses one stream into `dst`, which it must fill exactly.
fn decompress(compressor: Compressor, src: &[u8], dst: &mut [u8]) -> Result<(), CodecError> {
    let expected = dst.len();
    let written = match compressor {
        // SAFETY: the lengths passed are those of `src` and `dst` (streams are under 2 GiB:
        // a block is at most MAX_BLOCKSIZE).
        Compressor::BloscLz => unsafe {
            blosclz_decompress(
                src.as_ptr() as *const c_void,
                src.len() as c_int,
                dst.as_mut_ptr() as *mut c_void,
                expected as c_int,
            ) as i64
        },
        // SAFETY: as above.
        Compressor::Lz4 => unsafe {
            lz4_sys::LZ4_decompress_safe(
                src.as_ptr() as *const _,
                dst.as_mut_ptr() as *mut _,
                src.len() as c_int,
                expected as c_int,
            ) as i64
        },
        Compressor::Zlib => INFLATE.with(|cell| {
            let mut slot = cell.borrow_mut();
            let inflate = slot.get_or_insert_with(|| flate2::Decompress::new(true));
            inflate.reset(true);
            match inflate.decompress(src, dst, flate2::FlushDecompress::Finish) {
                Ok(flate2::Status::StreamEnd) => inflate.total_out() as i64,
                _ => -1,
            }
        }),
        Compressor::Zstd => {
            Zstd::with_dctx(|dctx| dctx.decompress(dst, src)).map_or(-1, |n| n as i64)
        }
    };
    if written != expected as i64 {
        return Err(corrupt(format!(
            "a block stream decoded to {written} bytes, expected {expected}"
        )));
    }
    Ok(())
}
