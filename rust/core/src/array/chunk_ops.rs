//! Chunk-level work for callers that plan selections themselves: zarr-python's codec
//! pipeline hands over, per chunk, its stored bytes (or none), the region of the chunk it
//! wants and where that region goes. The decoding, encoding and copying run here in parallel,
//! as the engine's own reads and writes do.

use rayon::prelude::*;

use super::copy::{all_fill, fill_elements, for_each_row, SharedBuffer};
use super::selection::PieceMap;
use crate::codec::array_to_bytes::vlen::VlenChunk;
use crate::codec::CodecChain;
use crate::concurrency;
use crate::error::{Error, Result};

/// One dimension of a region: `len` indices from `start` by `step` (a positive step) in the
/// chunk, and from `other_start` with step 1 in the other buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegionDim {
    pub start: u64,
    pub step: i64,
    pub len: u64,
    pub other_start: u64,
}

/// A chunk's part in an operation: a label for errors (its store key), and its region.
#[derive(Debug, Clone)]
pub struct ChunkRegion {
    pub label: String,
    pub dims: Vec<RegionDim>,
}

impl ChunkRegion {
    fn maps(&self) -> Vec<PieceMap> {
        self.dims
            .iter()
            .map(|d| PieceMap::Run {
                out_start: d.other_start,
                chunk_start: d.start,
                step: d.step,
                len: d.len,
            })
            .collect()
    }

    /// Whether the region is the whole chunk, in order.
    fn is_whole(&self, chunk_shape: &[u64]) -> bool {
        self.dims
            .iter()
            .zip(chunk_shape)
            .all(|(d, &n)| d.start == 0 && d.step == 1 && d.len == n)
    }

    fn check(&self, chunk_shape: &[u64], other_shape: &[u64]) -> Result<()> {
        let bad = |what: &str| {
            Err(Error::InvalidArgument(format!(
                "{}: {what} (region {:?}, chunk {chunk_shape:?}, buffer {other_shape:?})",
                self.label, self.dims
            )))
        };
        if self.dims.len() != chunk_shape.len() || other_shape.len() != chunk_shape.len() {
            return bad("the region's dimensions do not match");
        }
        for ((d, &c), &o) in self.dims.iter().zip(chunk_shape).zip(other_shape) {
            if d.len == 0 {
                continue;
            }
            let last = d.start as i128 + (d.len as i128 - 1) * d.step as i128;
            if d.step <= 0 || last >= c as i128 || d.other_start + d.len > o {
                return bad("the region lies outside the chunk or the buffer");
            }
        }
        Ok(())
    }
}

fn run<T: Send>(n: usize, work: impl Fn(usize) -> Result<T> + Sync) -> Result<Vec<T>> {
    match n {
        0 => Ok(Vec::new()),
        1 => Ok(vec![work(0)?]),
        _ => concurrency::install(|| (0..n).into_par_iter().map(&work).collect()),
    }
}

fn corrupt(label: &str, source: crate::error::CodecError) -> Error {
    Error::CorruptChunk {
        key: label.to_string(),
        source,
    }
}

/// Decodes each chunk (`None`: not stored, so the fill value) and copies its region into
/// `out` (C order, shaped `out_shape`, native endian), in parallel.
pub fn decode_regions(
    chain: &CodecChain,
    items: &[(Option<&[u8]>, ChunkRegion)],
    out: &mut [u8],
    out_shape: &[u64],
) -> Result<()> {
    let repr = chain.decoded_repr();
    let size = repr.data_type.size();
    let expected: u64 = out_shape.iter().product::<u64>() * size as u64;
    if out.len() as u64 != expected {
        return Err(Error::InvalidArgument(format!(
            "the output holds {} bytes, its shape {out_shape:?} needs {expected}",
            out.len()
        )));
    }
    for (_, region) in items {
        region.check(&repr.shape, out_shape)?;
    }
    let shared = SharedBuffer::new(out);
    run(items.len(), |i| {
        let (stored, region) = &items[i];
        let maps = region.maps();
        let refs: Vec<&PieceMap> = maps.iter().collect();
        let mut chunk = vec![0u8; repr.nbytes()];
        match stored {
            Some(bytes) => chain
                .decode_into(bytes, &mut chunk)
                .map_err(|e| corrupt(&region.label, e))?,
            None => fill_elements(&mut chunk, &repr.fill_value),
        }
        for_each_row(&refs, &repr.shape, out_shape, size, &mut |o, c, n| {
            // SAFETY: the callers' regions write disjoint parts of the output (zarr-python's
            // indexers give each output element to one chunk).
            unsafe { shared.slice(o, n) }.copy_from_slice(&chunk[c..c + n]);
        });
        Ok(())
    })?;
    Ok(())
}

/// Decodes whole chunks (`None` in, `None` out), in parallel.
pub fn decode_chunks(
    chain: &CodecChain,
    items: &[(Option<&[u8]>, String)],
) -> Result<Vec<Option<Vec<u8>>>> {
    let n = chain.decoded_repr().nbytes();
    run(items.len(), |i| {
        let (stored, label) = &items[i];
        let Some(bytes) = stored else {
            return Ok(None);
        };
        let mut chunk = vec![0u8; n];
        chain
            .decode_into(bytes, &mut chunk)
            .map_err(|e| corrupt(label, e))?;
        Ok(Some(chunk))
    })
}

/// Encodes whole decoded chunks, in parallel.
pub fn encode_chunks(chain: &CodecChain, items: &[(&[u8], String)]) -> Result<Vec<Vec<u8>>> {
    run(items.len(), |i| {
        let (chunk, label) = &items[i];
        chain
            .encode(chunk)
            .map(|c| c.into_owned())
            .map_err(|source| Error::EncodeChunk {
                key: label.clone(),
                source,
            })
    })
}

/// For each chunk: its current stored bytes (`None`: not stored, or about to be rewritten
/// whole) and the region `data` (shaped `data_shape`) writes into it. Returns the new stored
/// bytes of each chunk — `None` when it holds only the fill value and `write_empty_chunks` is
/// off (the caller deletes it).
pub fn encode_regions(
    chain: &CodecChain,
    items: &[(Option<&[u8]>, ChunkRegion)],
    data: &[u8],
    data_shape: &[u64],
    write_empty_chunks: bool,
) -> Result<Vec<Option<Vec<u8>>>> {
    let repr = chain.decoded_repr();
    let size = repr.data_type.size();
    let expected: u64 = data_shape.iter().product::<u64>() * size as u64;
    if data.len() as u64 != expected {
        return Err(Error::InvalidArgument(format!(
            "the values hold {} bytes, their shape {data_shape:?} needs {expected}",
            data.len()
        )));
    }
    for (_, region) in items {
        region.check(&repr.shape, data_shape)?;
    }
    run(items.len(), |i| {
        let (stored, region) = &items[i];
        let maps = region.maps();
        let refs: Vec<&PieceMap> = maps.iter().collect();
        let mut chunk = vec![0u8; repr.nbytes()];
        match stored {
            Some(bytes) if !region.is_whole(&repr.shape) => chain
                .decode_into(bytes, &mut chunk)
                .map_err(|e| corrupt(&region.label, e))?,
            _ => fill_elements(&mut chunk, &repr.fill_value),
        }
        for_each_row(&refs, &repr.shape, data_shape, size, &mut |o, c, n| {
            chunk[c..c + n].copy_from_slice(&data[o..o + n]);
        });
        if !write_empty_chunks && all_fill(&chunk, &repr.fill_value) {
            return Ok(None);
        }
        chain
            .encode(&chunk)
            .map(|c| Some(c.into_owned()))
            .map_err(|source| Error::EncodeChunk {
                key: region.label.clone(),
                source,
            })
    })
}

/// Decodes whole chunks of a variable-length data type (`None` in, `None` out), in parallel.
pub fn decode_vlen_chunks(
    chain: &CodecChain,
    items: &[(Option<&[u8]>, String)],
) -> Result<Vec<Option<VlenChunk>>> {
    let n = chain.decoded_repr().num_elements() as usize;
    run(items.len(), |i| {
        let (stored, label) = &items[i];
        let Some(bytes) = stored else {
            return Ok(None);
        };
        let chunk = chain.decode_vlen(bytes).map_err(|e| corrupt(label, e))?;
        if chunk.len() != n {
            return Err(corrupt(
                label,
                crate::error::CodecError::corrupt(
                    "vlen",
                    format!("{} elements, the chunk holds {n}", chunk.len()),
                ),
            ));
        }
        Ok(Some(chunk))
    })
}

/// Encodes whole chunks of a variable-length data type, in parallel.
pub fn encode_vlen_chunks(
    chain: &CodecChain,
    items: &[(VlenChunk, String)],
) -> Result<Vec<Vec<u8>>> {
    let n = chain.decoded_repr().num_elements() as usize;
    run(items.len(), |i| {
        let (chunk, label) = &items[i];
        if chunk.len() != n {
            return Err(Error::InvalidArgument(format!(
                "{label}: {} elements given, the chunk holds {n}",
                chunk.len()
            )));
        }
        chain
            .encode_vlen(chunk)
            .map_err(|source| Error::EncodeChunk {
                key: label.clone(),
                source,
            })
    })
}
