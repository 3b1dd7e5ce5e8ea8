//! The shard indexes an open array has read or written, so that reading an inner chunk of a
//! known shard costs one range request.
//!
//! The cache belongs to the array object (and its clones): writes through it keep it
//! current; writes by other processes are seen by arrays opened after them.

use std::collections::HashMap;
use std::sync::Arc;

use crate::codec::array_to_bytes::sharding::ShardIndex;
use crate::concurrency::ForkSafeMutex;

/// Cached indexes are dropped, all at once, when they exceed this many bytes.
const BUDGET_BYTES: usize = 64 << 20;

/// A cached lookup: the shard's index, or `None` for a shard that is not stored.
pub(crate) type CachedIndex = Option<Arc<ShardIndex>>;

#[derive(Debug, Default)]
struct Entries {
    map: HashMap<String, CachedIndex>,
    bytes: usize,
}

#[derive(Debug, Default)]
pub(crate) struct ShardIndexCache {
    entries: ForkSafeMutex<Entries>,
}

impl ShardIndexCache {
    /// The cached index of the shard at `key`, if known.
    pub(crate) fn get(&self, key: &str) -> Option<CachedIndex> {
        self.entries.lock().map.get(key).cloned()
    }

    /// Records the index of the shard at `key` (replacing what was known).
    pub(crate) fn insert(&self, key: &str, index: CachedIndex) {
        let size = key.len() + index.as_ref().map_or(0, |i| i.heap_size()) + 64;
        let mut entries = self.entries.lock();
        if entries.bytes + size > BUDGET_BYTES {
            entries.map.clear();
            entries.bytes = 0;
        }
        entries.bytes += size;
        entries.map.insert(key.to_string(), index);
    }
}
