//! Array→bytes codecs.
pub mod bytes;
pub mod sharding;
pub mod vlen;
