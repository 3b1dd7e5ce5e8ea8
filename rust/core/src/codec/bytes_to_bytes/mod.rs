//! Bytes→bytes codecs: compressors and checksums.
pub mod blosc;
pub mod crc32c;
pub mod gzip;
pub mod zstd;
