//! Array→bytes codecs.
pub mod bytes;
