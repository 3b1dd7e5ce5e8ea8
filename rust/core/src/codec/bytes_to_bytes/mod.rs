//! Bytes→bytes codecs: compressors and checksums.
pub mod blosc;
pub mod bz2;
pub mod checksum32;
pub mod crc32c;
pub mod gzip;
pub mod jenkins_lookup3;
pub mod lz4;
pub mod lzma;
pub mod numcodecs;
pub mod shuffle;
pub(crate) mod stream;
pub mod value_filter;
pub mod zlib;
pub mod zstd;
