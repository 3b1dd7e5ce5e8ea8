//! The shard indexes an open array has read or written, so that reading an inner chunk of a
//! known shard costs one range request.
//!
//! The cache belongs to the array object (and its clones). Each index is kept with the
//! version of the shard it was read from, and a read through it checks that version on the
//! file it reads (a `statx` of the open file): a shard rewritten since, by this array, another
//! handle or another process, has its index read again. Absent shards are not cached, so one
//! written later is found; nor are shards of stores whose versions cannot tell every rewrite
//! apart.

use std::collections::HashMap;
use std::sync::Arc;

use crate::codec::array_to_bytes::sharding::ShardIndex;
use crate::concurrency::ForkSafeMutex;
use crate::store::Version;

/// Cached indexes are dropped, all at once, when they exceed this many bytes.
const BUDGET_BYTES: usize = 64 << 20;

/// A stored shard's index, and the version of the shard it was read from.
#[derive(Debug, Clone)]
pub(crate) struct KnownShard {
    pub(crate) index: Arc<ShardIndex>,
    pub(crate) version: Version,
    /// Read from the store by the operation at hand, not taken from the cache: an inner chunk
    /// absent from it needs no check that the shard is still this version.
    pub(crate) just_read: bool,
}

#[derive(Debug, Default)]
struct Entries {
    map: HashMap<String, KnownShard>,
    bytes: usize,
}

#[derive(Debug, Default)]
pub(crate) struct ShardIndexCache {
    entries: ForkSafeMutex<Entries>,
}

impl ShardIndexCache {
    /// The cached index of the shard at `key`, if known.
    pub(crate) fn get(&self, key: &str) -> Option<KnownShard> {
        let known = self.entries.lock().map.get(key).cloned()?;
        Some(KnownShard {
            just_read: false,
            ..known
        })
    }

    /// Forgets the shard at `key` (rewritten, deleted, or found replaced).
    pub(crate) fn remove(&self, key: &str) {
        let mut entries = self.entries.lock();
        if let Some(old) = entries.map.remove(key) {
            entries.bytes = entries.bytes.saturating_sub(entry_size(key, &old));
        }
    }

    /// Records the index of the shard at `key` (replacing what was known); not kept where the
    /// shard's version does not tell every replacement apart (a size alone, or a web server's
    /// modification time in seconds): a shard rewritten to the same size would be read
    /// through the old index.
    pub(crate) fn insert(&self, key: &str, index: KnownShard) {
        let size = entry_size(key, &index);
        let mut entries = self.entries.lock();
        if let Some(old) = entries.map.remove(key) {
            entries.bytes = entries.bytes.saturating_sub(entry_size(key, &old));
        }
        if !index.version.exact {
            return;
        }
        if entries.bytes + size > BUDGET_BYTES {
            entries.map.clear();
            entries.bytes = 0;
        }
        entries.bytes += size;
        entries.map.insert(key.to_string(), index);
    }
}

/// The bytes an entry is counted as: its key, its index and the map's own share.
fn entry_size(key: &str, known: &KnownShard) -> usize {
    key.len() + known.index.heap_size() + 64
}
