//! Array→array codecs.
pub mod transpose;
