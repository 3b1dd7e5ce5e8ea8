//! The decoded-chunk cache: repeated reads of the same chunks skip fetching and decoding.
//!
//! Off by default (a budget of 0 bytes); `oxzarr.config` sets the budget. Entries are keyed by
//! the array's cache namespace (its store's, and how its chunks decode: an array replaced by
//! one of other codecs or chunks at the same path never takes the old one's) and the chunk's
//! store key (with the inner chunk's index for sharded arrays), and evicted least recently
//! used first. Each entry keeps the version of the stored chunk (or shard) it was decoded
//! from, and a read uses it only while the store still holds that version: one version check
//! (a `stat`) per cached chunk instead of a fetch and a decode. So a chunk rewritten or
//! deleted by any writer (another handle, zarr-python, another process; an array deleted,
//! replaced or resized) is read afresh, never served stale. A store whose versions do not tell
//! every replacement apart (sizes alone; a web server's modification time, in seconds, where
//! it sends no entity tag) gets no hits. Writes through this process also
//! drop what they change, freeing the budget at once.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::concurrency::ForkSafeMutex;
use crate::store::Version;

static BUDGET: AtomicUsize = AtomicUsize::new(0);

/// A cached chunk: its decoded bytes, or `None` for a chunk that is not stored.
pub(crate) type CachedChunk = Option<Arc<Vec<u8>>>;

/// A cache entry: the decoded chunk and the version of the stored value it came from (the
/// chunk's, or for an inner chunk its shard's; `None` when that value was not stored).
#[derive(Debug, Clone)]
pub(crate) struct Cached {
    pub(crate) chunk: CachedChunk,
    pub(crate) version: Option<Version>,
    /// Whether it was decoded with checksums checked (`validate_checksums`).
    pub(crate) checked: bool,
}

/// An array's cache namespace (shared by all its entries) and a chunk's key in it.
type Key = (Arc<str>, Arc<str>);

/// What an entry costs besides its chunk's bytes and its key's: its slot in the map (the key's
/// two pointers, the entry, the tick, the map's spare room), the chunk's `Arc<Vec>` header,
/// the key's allocation, and the uses `order` may hold of it (up to three, see `touch`).
/// Counted low, 16-byte chunks took 3-4 times the budget.
const ENTRY_OVERHEAD: usize = 320;

#[derive(Debug, Default)]
struct Entries {
    map: HashMap<Key, (Cached, u64)>,
    /// Keys in order of use, with the tick of that use; stale ticks are skipped on eviction.
    order: VecDeque<(Key, u64)>,
    bytes: usize,
    tick: u64,
}

impl Entries {
    fn touch(&mut self, key: &Key) {
        self.tick += 1;
        let tick = self.tick;
        if let Some(entry) = self.map.get_mut(key) {
            entry.1 = tick;
            self.order.push_back((key.clone(), tick));
        }
        // Uses pile up in `order`: drop the stale ones once they dominate.
        if self.order.len() > 2 * self.map.len() + 1024 {
            self.compact();
        }
    }

    /// Drops the uses in `order` that are not an entry's latest.
    fn compact(&mut self) {
        let map = &self.map;
        self.order
            .retain(|(k, t)| map.get(k).is_some_and(|(_, latest)| latest == t));
    }

    fn evict_to(&mut self, budget: usize) {
        while self.bytes > budget {
            let Some((key, tick)) = self.order.pop_front() else {
                break;
            };
            if self.map.get(&key).is_some_and(|(_, t)| *t == tick) {
                if let Some((cached, _)) = self.map.remove(&key) {
                    self.bytes -= entry_size(&key, &cached);
                }
            }
        }
    }
}

fn entry_size(key: &Key, cached: &Cached) -> usize {
    key.1.len() + cached.chunk.as_ref().map_or(0, |c| c.capacity()) + ENTRY_OVERHEAD
}

static CACHE: ForkSafeMutex<Option<Entries>> = ForkSafeMutex::new(None);

/// Sets the budget in bytes (0 turns the cache off and empties it).
pub fn set_budget(bytes: usize) {
    BUDGET.store(bytes, Ordering::Relaxed);
    let mut guard = CACHE.lock();
    let entries = guard.get_or_insert_with(Entries::default);
    entries.evict_to(bytes);
    // The room the evicted entries took goes back too (a budget set to 0 kept it).
    entries.compact();
    entries.map.shrink_to_fit();
    entries.order.shrink_to_fit();
}

pub fn budget() -> usize {
    BUDGET.load(Ordering::Relaxed)
}

pub(crate) fn enabled() -> bool {
    budget() > 0
}

/// The entry cached for `key`, whatever the store now holds: the caller checks its version.
pub(crate) fn get(namespace: &Arc<str>, key: &str) -> Option<Cached> {
    let k: Key = (namespace.clone(), key.into());
    let mut guard = CACHE.lock();
    let entries = guard.get_or_insert_with(Entries::default);
    let hit = entries.map.get(&k).map(|(cached, _)| cached.clone())?;
    entries.touch(&k);
    Some(hit)
}

/// Caches `cached` for `key`, replacing what was there.
pub(crate) fn insert(namespace: &Arc<str>, key: &str, cached: Cached) {
    let budget = budget();
    let k: Key = (namespace.clone(), key.into());
    let size = entry_size(&k, &cached);
    if size > budget {
        return;
    }
    let mut guard = CACHE.lock();
    let entries = guard.get_or_insert_with(Entries::default);
    if let Some((old, _)) = entries.map.remove(&k) {
        entries.bytes -= entry_size(&k, &old);
    }
    entries.bytes += size;
    entries.map.insert(k.clone(), (cached, 0));
    entries.touch(&k);
    entries.evict_to(budget);
}

/// Moves the entries at `keys` that were decoded from version `from` to version `to`: the
/// inner chunks a shard rewrite kept as they were stored. Other entries are left as they are
/// (a hit on one finds the shard changed, and reads it afresh).
pub(crate) fn carry_over(
    namespace: &Arc<str>,
    keys: impl Iterator<Item = String>,
    from: Version,
    to: Version,
) {
    if !enabled() {
        return;
    }
    // Built before taking the lock, which every cached read waits for.
    let keys: Vec<Key> = keys.map(|key| (namespace.clone(), key.into())).collect();
    let mut guard = CACHE.lock();
    let entries = guard.get_or_insert_with(Entries::default);
    for key in &keys {
        if let Some((cached, _)) = entries.map.get_mut(key) {
            if cached.version == Some(from) {
                cached.version = Some(to);
            }
        }
    }
}

pub(crate) fn invalidate(namespace: &Arc<str>, key: &str) {
    if !enabled() {
        return;
    }
    let k: Key = (namespace.clone(), key.into());
    let mut guard = CACHE.lock();
    let entries = guard.get_or_insert_with(Entries::default);
    if let Some((old, _)) = entries.map.remove(&k) {
        entries.bytes -= entry_size(&k, &old);
    }
}
