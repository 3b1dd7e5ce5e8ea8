//! Key-value stores, split by capability (read with byte ranges, write, list) so that a new
//! backend (zip, S3, HTTP) plugs in without touching the array code.
//!
//! Store keys are `/`-separated relative paths such as `group/array/zarr.json` or
//! `array/c/0/1`. They never start with `/` and never hold `.` or `..` components.

mod counting;
#[cfg(feature = "remote")]
mod credential_process;
mod filesystem;
mod memory;
mod prefix;
mod read_only;
#[cfg(feature = "remote")]
mod remote;
mod zip;

use std::fmt::Debug;
use std::sync::Arc;

pub use counting::{CountingStore, ReadCounters};
pub use filesystem::FilesystemStore;
pub use memory::MemoryStore;
pub use prefix::PrefixStore;
pub use read_only::ReadOnlyStore;
#[cfg(feature = "remote")]
pub use remote::RemoteStore;
pub use zip::{ZipMode, ZipStore};

use crate::concurrency::ForkSafeMutex;
use crate::error::StorageError;

/// A byte range of a stored value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// `length` bytes from `offset` (to the end when `None`).
    FromStart { offset: u64, length: Option<u64> },
    /// The last `n` bytes (a shard index at the end of a shard, say).
    Suffix(u64),
}

impl ByteRange {
    /// The `start..end` this range covers in a value of `size` bytes, or `None` if it reaches
    /// outside the value.
    pub fn to_range(self, size: u64) -> Option<std::ops::Range<u64>> {
        match self {
            Self::FromStart { offset, length } => {
                let end = match length {
                    Some(len) => offset.checked_add(len)?,
                    None => size,
                };
                (offset <= end && end <= size).then_some(offset..end)
            }
            Self::Suffix(n) => (n <= size).then(|| size - n..size),
        }
    }
}

/// As the error messages say it: "bytes 100..164", "bytes from 100", "the last 68 bytes".
impl std::fmt::Display for ByteRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::FromStart {
                offset,
                length: Some(len),
            } => write!(
                f,
                "bytes {offset}..{}",
                u128::from(*offset) + u128::from(*len)
            ),
            Self::FromStart {
                offset,
                length: None,
            } => write!(f, "bytes from {offset}"),
            Self::Suffix(n) => write!(f, "the last {n} bytes"),
        }
    }
}

/// The bytes of `value` (stored at `key`) in `range`; a range outside it is an error.
pub(crate) fn range_of(key: &str, value: &[u8], range: ByteRange) -> Result<Vec<u8>, StorageError> {
    let size = value.len() as u64;
    let r = range
        .to_range(size)
        .ok_or_else(|| StorageError::out_of_range(key, range, size))?;
    Ok(value[r.start as usize..r.end as usize].to_vec())
}

/// The immediate children of a prefix: the keys directly under it and its sub-prefixes.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ListDir {
    /// Full keys of the values directly under the prefix.
    pub keys: Vec<String>,
    /// Full sub-prefixes, each ending in `/`.
    pub prefixes: Vec<String>,
}

/// The keys and sub-prefixes directly under `prefix` among `keys` (sorted, all under
/// `prefix`): [`ListableStore::list_dir`] for stores that hold their keys in a sorted map.
pub(crate) fn list_dir_of<'a>(prefix: &str, keys: impl Iterator<Item = &'a String>) -> ListDir {
    let mut out = ListDir::default();
    for key in keys {
        match key[prefix.len()..].split_once('/') {
            None => out.keys.push(key.clone()),
            // A name with an empty part ("/x", "a//x": a zip file's entries can be named
            // anything) is no key, and its empty "directory" would list the prefix itself
            // as its own member, which a walk of the hierarchy follows without end.
            Some(("", _)) => {}
            Some((dir, _)) => {
                let p = format!("{prefix}{dir}/");
                if out.prefixes.last() != Some(&p) {
                    out.prefixes.push(p);
                }
            }
        }
    }
    out
}

/// One stored version of a value, as far as a store can tell: its size, and where the backend
/// has one, a tag that changes when the value is replaced (a file's inode and modification
/// time; a counter in memory). Something derived from a value and kept (a shard's index) is
/// checked against it before it is used again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version {
    pub size: u64,
    pub tag: Option<u64>,
    /// Whether the tag changes with every replacement (an inode, a counter, an entity tag),
    /// not only with those far enough apart (a web server's modification time, in seconds).
    pub exact: bool,
}

impl Version {
    /// A value of `size` bytes, whatever its tag.
    pub fn of_size(size: u64) -> Self {
        Self {
            size,
            tag: None,
            exact: false,
        }
    }
}

/// The outcome of [`ReadableStore::read_parts_into`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartsRead {
    /// Every part was read.
    Done,
    /// There is no value at the key.
    Missing,
    /// The value is not of the expected size (it holds this many bytes).
    WrongSize(u64),
    /// The value has the expected size but another tag: it was replaced.
    Replaced,
}

/// Reading values, whole or by byte ranges.
pub trait ReadableStore: Send + Sync + Debug {
    /// The value at `key`, or `None` if there is none.
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError>;

    /// The value at `key` into `buf` (replacing its contents, reusing its capacity). Returns
    /// false if there is no value. The third argument says the value's decoding is split
    /// between threads (see `CodecChain::decodes_in_parallel`): a store that can read a large
    /// value on several threads may then do so.
    fn get_into(
        &self,
        key: &str,
        buf: &mut Vec<u8>,
        _decoded_in_parallel: bool,
    ) -> Result<bool, StorageError> {
        match self.get(key)? {
            Some(value) => {
                *buf = value;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// The given byte ranges of the value at `key`, or `None` if there is no value. A range
    /// outside the value is an error.
    fn get_ranges(
        &self,
        key: &str,
        ranges: &[ByteRange],
    ) -> Result<Option<Vec<Vec<u8>>>, StorageError> {
        let Some(value) = self.get(key)? else {
            return Ok(None);
        };
        ranges
            .iter()
            .map(|r| range_of(key, &value, *r))
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    /// One byte range of the value at `key` and the value's version, or `None` if there is no
    /// value. A shard's index is read this way: its entries are checked against the shard's
    /// size, and the cached index against the version when it is used again. Backends that
    /// learn the size with the range (a file's length, an HTTP `Content-Range`) return it
    /// without asking twice.
    fn get_range_and_version(
        &self,
        key: &str,
        range: ByteRange,
    ) -> Result<Option<(Vec<u8>, Version)>, StorageError> {
        let Some(value) = self.get(key)? else {
            return Ok(None);
        };
        let version = Version::of_size(value.len() as u64);
        Ok(Some((range_of(key, &value, range)?, version)))
    }

    /// Reads parts of the value at `key` straight into the caller's buffers: each part is
    /// (offset in the value, destination), the destination's length saying how many bytes.
    /// With `expected`, a value of another size, or with another tag where both have one, is
    /// reported rather than read. A part reaching past the end of the value is an error.
    /// Backends that can read into scattered buffers (the filesystem, with `preadv`) do so
    /// without an intermediate copy.
    fn read_parts_into(
        &self,
        key: &str,
        parts: &mut [(u64, &mut [u8])],
        expected: Option<Version>,
    ) -> Result<PartsRead, StorageError> {
        let Some(value) = self.get(key)? else {
            return Ok(PartsRead::Missing);
        };
        let found = Version::of_size(value.len() as u64);
        read_parts_of(key, &value, found, parts, expected)
    }

    /// The size in bytes of the value at `key`, or `None` if there is none.
    fn size(&self, key: &str) -> Result<Option<u64>, StorageError> {
        Ok(self.get(key)?.map(|v| v.len() as u64))
    }

    /// The version of the value at `key`, or `None` if there is none.
    fn version(&self, key: &str) -> Result<Option<Version>, StorageError> {
        Ok(self.size(key)?.map(Version::of_size))
    }

    /// Whether a value is stored at `key`.
    fn exists(&self, key: &str) -> Result<bool, StorageError> {
        Ok(self.size(key)?.is_some())
    }

    /// Hints that the value at `key` will be read soon, so that a store whose reads wait on a
    /// device can start fetching it now. Only a hint: stores that cannot fetch ahead ignore
    /// it, and nothing is reported (the read that follows reports any error).
    fn prefetch(&self, _key: &str) {}

    /// How many requests this store serves best at once. Reads and writes of many chunks run
    /// on at least this many threads: more than the cores where each request waits on a
    /// network (the threads mostly wait), one otherwise.
    fn concurrent_requests(&self) -> usize {
        1
    }

    /// Says that the read which hinted `keys` is over. A store that keeps what it fetched
    /// ahead drops what is left of it, so that no later read is served a value that may have
    /// been replaced since.
    fn hints_done(&self, _keys: &[String]) {}

    /// Fetches the whole value at `key` with one request, and serves the reads of its parts
    /// that follow from it until [`ReadableStore::release_whole`] names it as often as it was
    /// held (or a write of it): a service that
    /// answers the requests of one value with different versions (load-balanced servers,
    /// each with its own entity tag) never lets a shard's index and inner chunks agree
    /// otherwise. The bytes held (0: no value), or `None` from a store whose versions are
    /// its values' own, which holds nothing.
    fn hold_whole(&self, _key: &str) -> Result<Option<u64>, StorageError> {
        Ok(None)
    }

    /// Lets go of a value [`ReadableStore::hold_whole`] or [`ReadableStore::hold_for_parts`]
    /// held, once.
    fn release_whole(&self, _key: &str) {}

    /// Whether [`ReadableStore::hold_for_parts`] may hold anything: reads ask it of each
    /// shard they take parts of only then.
    fn holds_for_parts(&self) -> bool {
        false
    }

    /// Holds the value at `key` whole, as [`ReadableStore::hold_whole`] does, if the reads of
    /// its parts that follow (a shard's index and inner chunks; `every_part`: all of them)
    /// are better served from it than from the store: a zip entry stored compressed, whose
    /// every part costs a decompression of all of it, is decompressed once; one whose every
    /// part is read is checked against its CRC-32, which parts read one by one never are.
    /// Whether it holds it (then let go with [`ReadableStore::release_whole`]).
    fn hold_for_parts(&self, _key: &str, _every_part: bool) -> Result<bool, StorageError> {
        Ok(false)
    }

    /// How many times reads of this store (and its clones) so far had to wait for a device
    /// because the bytes were not in the operating system's cache; a read in several pieces
    /// can count once per piece. Reads of many chunks watch it to decide whether to prefetch
    /// the chunks ahead of them; stores that never wait that way count nothing.
    fn device_waits(&self) -> u64 {
        0
    }
}

/// Writing and deleting values. A `set` is atomic: a reader sees the old value or the new
/// one, never a mix, and a writer killed part-way leaves the old value in place.
pub trait WritableStore: Send + Sync {
    fn set(&self, key: &str, value: &[u8]) -> Result<(), StorageError>;
    /// Stores the concatenation of `parts` at `key` (a shard: its inner chunks and index),
    /// which backends that can write scattered buffers (the filesystem, with `writev`) do
    /// without assembling it first. Returns the version of the value written, where the
    /// backend knows it without another request: a writer can then keep the shard's index
    /// it wrote, rather than read it back.
    fn set_parts(&self, key: &str, parts: &[&[u8]]) -> Result<Option<Version>, StorageError> {
        self.set(key, &parts.concat())?;
        Ok(None)
    }
    /// Deletes the value at `key`; deleting a missing key is not an error.
    fn delete(&self, key: &str) -> Result<(), StorageError>;
    /// Deletes every value whose key starts with `prefix` (`""` or ending in `/`).
    fn delete_prefix(&self, prefix: &str) -> Result<(), StorageError>;
}

/// Listing keys.
pub trait ListableStore: Send + Sync {
    /// Every key under `prefix` (`""` or ending in `/`), at any depth, sorted.
    fn list_prefix(&self, prefix: &str) -> Result<Vec<String>, StorageError>;
    /// The keys and sub-prefixes directly under `prefix` (`""` or ending in `/`), sorted.
    fn list_dir(&self, prefix: &str) -> Result<ListDir, StorageError>;
}

/// A store that can do everything: what arrays and groups are opened on. A read-only
/// backend implements the write methods by returning [`StorageError::ReadOnly`].
pub trait Store: ReadableStore + WritableStore + ListableStore {
    /// A short description for messages and repr, e.g. `file:///data/x.zarr`.
    fn describe(&self) -> String;

    /// What identifies the stored data for caches: equal for every handle on the same data
    /// (two filesystem stores at one root, views and wrappers of one store), different
    /// otherwise.
    fn cache_namespace(&self) -> String {
        self.describe()
    }

    /// Stores `value` at `key` only if nothing is stored there yet, and says whether it did:
    /// how a node's metadata is created, so that of two writers creating one node (or a
    /// missing parent group) one wins and the other learns of it, rather than overwrite it.
    /// Here, checked then written under one lock of the process; a backend that can create
    /// atomically across processes (a file system's hard link) does so instead.
    fn set_if_absent(&self, key: &str, value: &[u8]) -> Result<bool, StorageError> {
        static CREATING: ForkSafeMutex<()> = ForkSafeMutex::new(());
        let _held = CREATING.lock();
        if self.exists(key)? {
            return Ok(false);
        }
        self.set(key, value)?;
        Ok(true)
    }
}

/// A shared handle to a store.
pub type StoreRef = Arc<dyn Store>;

/// Whether a value of version `found` is the one `expected` describes: the same size, and the
/// same tag where both have one.
pub fn same_version(expected: Version, found: Version) -> PartsRead {
    if expected.size != found.size {
        PartsRead::WrongSize(found.size)
    } else if expected.tag.is_some() && found.tag.is_some() && expected.tag != found.tag {
        PartsRead::Replaced
    } else {
        PartsRead::Done
    }
}

/// Reads `parts` (as [`ReadableStore::read_parts_into`] takes them) out of `value`, the value
/// at `key`, of version `found`; unless `expected` describes another version. For stores that
/// hold the value in memory.
pub(crate) fn read_parts_of(
    key: &str,
    value: &[u8],
    found: Version,
    parts: &mut [(u64, &mut [u8])],
    expected: Option<Version>,
) -> Result<PartsRead, StorageError> {
    if let Some(expected) = expected {
        let same = same_version(expected, found);
        if same != PartsRead::Done {
            return Ok(same);
        }
    }
    let size = value.len() as u64;
    for (offset, dst) in parts.iter_mut() {
        let range = ByteRange::FromStart {
            offset: *offset,
            length: Some(dst.len() as u64),
        };
        let r = range
            .to_range(size)
            .ok_or_else(|| StorageError::out_of_range(key, range, size))?;
        dst.copy_from_slice(&value[r.start as usize..r.end as usize]);
    }
    Ok(PartsRead::Done)
}

/// Checks a store key: relative, `/`-separated, no empty, `.` or `..` components.
pub fn validate_key(key: &str) -> Result<(), StorageError> {
    if key.is_empty() {
        return Err(StorageError::invalid_key(key, "empty key"));
    }
    validate_components(key)
}

/// Checks a prefix: `""` or a valid key followed by `/`.
pub fn validate_prefix(prefix: &str) -> Result<(), StorageError> {
    if prefix.is_empty() {
        return Ok(());
    }
    match prefix.strip_suffix('/') {
        Some(p) if !p.is_empty() => validate_components(p),
        _ => Err(StorageError::invalid_key(
            prefix,
            "a prefix is empty or ends in '/'",
        )),
    }
}

fn validate_components(key: &str) -> Result<(), StorageError> {
    for part in key.split('/') {
        match part {
            "" => return Err(StorageError::invalid_key(key, "empty path component")),
            "." | ".." => {
                return Err(StorageError::invalid_key(
                    key,
                    "'.' and '..' are not allowed",
                ))
            }
            _ if part.contains('\0') || part.contains('\\') => {
                return Err(StorageError::invalid_key(
                    key,
                    "NUL and '\\' are not allowed",
                ))
            }
            _ => {}
        }
    }
    Ok(())
}

/// What a refused write names: `key` in `store`, or the store itself for its root (`""`,
/// a prefix deleted whole).
pub(crate) fn key_in(key: &str, store: &str) -> String {
    if key.is_empty() {
        format!("to {store}")
    } else {
        format!("{key} in {store}")
    }
}

/// Joins a node path (`""` for the root) and a key below it.
pub fn join_key(node_path: &str, key: &str) -> String {
    if node_path.is_empty() {
        key.to_string()
    } else {
        format!("{node_path}/{key}")
    }
}

/// The prefix holding everything of a node (`""` for the root, else `path/`).
pub fn node_prefix(node_path: &str) -> String {
    if node_path.is_empty() {
        String::new()
    } else {
        format!("{node_path}/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_ranges() {
        let r = ByteRange::FromStart {
            offset: 2,
            length: Some(3),
        };
        assert_eq!(r.to_range(10), Some(2..5));
        assert_eq!(r.to_range(4), None);
        assert_eq!(ByteRange::Suffix(4).to_range(10), Some(6..10));
        assert_eq!(ByteRange::Suffix(11).to_range(10), None);
        let open = ByteRange::FromStart {
            offset: 3,
            length: None,
        };
        assert_eq!(open.to_range(10), Some(3..10));
        assert_eq!(open.to_range(2), None);
    }

    #[test]
    fn keys_are_checked() {
        assert!(validate_key("a/b/zarr.json").is_ok());
        assert!(validate_key("").is_err());
        assert!(validate_key("/a").is_err());
        assert!(validate_key("a//b").is_err());
        assert!(validate_key("a/../b").is_err());
        assert!(validate_prefix("").is_ok());
        assert!(validate_prefix("a/b/").is_ok());
        assert!(validate_prefix("a/b").is_err());
        assert!(validate_prefix("/").is_err());
    }
}
