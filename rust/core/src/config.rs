//! Process-wide settings of the engine, set from `oxzarr.config`.

use std::sync::atomic::{AtomicBool, Ordering};

static VALIDATE_CHECKSUMS: AtomicBool = AtomicBool::new(true);

/// Whether checksum codecs (crc32c) verify what they decode.
pub fn validate_checksums() -> bool {
    VALIDATE_CHECKSUMS.load(Ordering::Relaxed)
}

pub fn set_validate_checksums(on: bool) {
    VALIDATE_CHECKSUMS.store(on, Ordering::Relaxed);
}
