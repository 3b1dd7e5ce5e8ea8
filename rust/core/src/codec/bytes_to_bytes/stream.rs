//! Bounded reads from streaming decompressors (zlib, bz2), shared so that every one refuses
//! oversized output the same way: by reading at most one byte past the limit.

use std::io::{ErrorKind, Read};

use crate::codec::check_len;
use crate::error::CodecError;

/// Reads `reader` to its end, refusing more than `max` bytes. `hint` is a first allocation
/// (never trusted beyond `max`).
pub(crate) fn read_bounded(
    codec: &'static str,
    reader: impl Read,
    max: usize,
    hint: usize,
) -> Result<Vec<u8>, CodecError> {
    let mut out = crate::alloc::with_capacity(hint.min(max))?;
    reader
        .take(max as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| CodecError::corrupt(codec, e))?;
    if out.len() > max {
        return Err(CodecError::TooLarge {
            codec,
            actual: out.len(),
            limit: max,
        });
    }
    Ok(out)
}

/// Fills `out` from `reader` and checks that the stream ends exactly there.
pub(crate) fn read_exact_to_end(
    codec: &'static str,
    mut reader: impl Read,
    out: &mut [u8],
) -> Result<(), CodecError> {
    let mut filled = 0;
    while filled < out.len() {
        match reader.read(&mut out[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(CodecError::corrupt(codec, e)),
        }
    }
    check_len(codec, filled, out.len())?;
    let mut extra = [0u8; 1];
    loop {
        return match reader.read(&mut extra) {
            Ok(0) => Ok(()),
            Ok(_) => Err(CodecError::corrupt(
                codec,
                "decodes to more bytes than expected",
            )),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => Err(CodecError::corrupt(codec, e)),
        };
    }
}

/// Bytes from a hex string (reference vectors in tests).
#[cfg(test)]
pub(crate) fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}
