//! Fetching ahead of a read of many chunks whose bytes are not in the operating system's
//! cache.
//!
//! A read of many chunks runs on as many threads as there are cores, each fetching and then
//! decoding one chunk at a time. With the chunks in the page cache every core stays busy; when
//! they must come from the device, each thread waits for it before every decode and the cores
//! idle. Once the store reports that a read waited ([`ReadableStore::device_waits`] went up
//! since this read began), each thread hints the store about the chunks after its own, so the
//! device fetches them while the threads decode. Reads of cached chunks pay one counter load
//! per chunk.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use crate::store::ReadableStore;

/// About this many bytes of decoded chunks are hinted ahead of each thread's position: enough
/// to keep the device busy while the threads decode, without pulling in far more than the
/// read needs if it stops early.
const AHEAD_BYTES: u64 = 8 << 20;
/// The fewest and most chunks hinted ahead of a thread.
const MIN_AHEAD: usize = 2;
const MAX_AHEAD: usize = 64;

pub(super) struct ReadAhead<'a> {
    store: &'a dyn ReadableStore,
    waits_at_start: u64,
    total: usize,
    ahead: usize,
    /// One bit per chunk of the read: hinted already. Made at the first wait.
    hinted: OnceLock<Box<[AtomicU64]>>,
    /// The keys hinted, told back to the store when the read is over.
    hinted_keys: Mutex<Vec<String>>,
}

impl<'a> ReadAhead<'a> {
    /// For a read of `total` chunks (work items in the order the threads take them) of
    /// `chunk_bytes` decoded bytes each.
    pub(super) fn new(store: &'a dyn ReadableStore, total: usize, chunk_bytes: u64) -> Self {
        let ahead = (AHEAD_BYTES / chunk_bytes.max(1)) as usize;
        Self {
            store,
            waits_at_start: store.device_waits(),
            total,
            ahead: ahead.clamp(MIN_AHEAD, MAX_AHEAD),
            hinted: OnceLock::new(),
            hinted_keys: Mutex::new(Vec::new()),
        }
    }

    /// Called before fetching chunk `i`: once this read has waited for the device, hints the
    /// chunks after `i` not looked at yet. `key_of(j)` is the store key to hint for chunk `j`,
    /// if any (a sharded read hints each shard once).
    pub(super) fn before_fetch(&self, i: usize, key_of: impl Fn(usize) -> Option<String>) {
        if self.store.device_waits() == self.waits_at_start {
            return;
        }
        let hinted = self.hinted.get_or_init(|| {
            (0..self.total.div_ceil(64))
                .map(|_| AtomicU64::new(0))
                .collect()
        });
        for j in i + 1..self.total.min(i + 1 + self.ahead) {
            let (word, bit) = (&hinted[j / 64], 1u64 << (j % 64));
            // Most of the window was looked at from the chunk before: a load skips it without
            // contending for the line. Whichever thread sets the bit hints the chunk.
            if word.load(Ordering::Relaxed) & bit == 0
                && word.fetch_or(bit, Ordering::Relaxed) & bit == 0
            {
                if let Some(key) = key_of(j) {
                    self.store.prefetch(&key);
                    self.hinted_keys
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(key);
                }
            }
        }
    }
}

impl Drop for ReadAhead<'_> {
    fn drop(&mut self) {
        let keys = std::mem::take(
            self.hinted_keys
                .get_mut()
                .unwrap_or_else(|e| e.into_inner()),
        );
        if !keys.is_empty() {
            self.store.hints_done(&keys);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::error::StorageError;

    /// Records hints; its reads "wait" once `waits` is raised.
    #[derive(Debug, Default)]
    struct Recorder {
        waits: AtomicU64,
        hinted: Mutex<Vec<String>>,
        done: Mutex<Vec<String>>,
    }

    impl ReadableStore for Recorder {
        fn get(&self, _key: &str) -> Result<Option<Vec<u8>>, StorageError> {
            Ok(None)
        }
        fn prefetch(&self, key: &str) {
            self.hinted.lock().unwrap().push(key.to_string());
        }
        fn hints_done(&self, keys: &[String]) {
            self.done.lock().unwrap().extend_from_slice(keys);
        }
        fn device_waits(&self) -> u64 {
            self.waits.load(Ordering::Relaxed)
        }
    }

    #[test]
    fn hints_only_after_a_wait_and_each_chunk_once() {
        let store = Recorder::default();
        store.waits.store(5, Ordering::Relaxed);
        // 1 MiB chunks: 8 ahead.
        let ahead = ReadAhead::new(&store, 20, 1 << 20);
        let key = |j: usize| format!("c/{j}");
        ahead.before_fetch(0, |j| Some(key(j)));
        assert!(store.hinted.lock().unwrap().is_empty(), "no wait yet");
        store.waits.fetch_add(1, Ordering::Relaxed);
        ahead.before_fetch(1, |j| Some(key(j)));
        // Chunk 10 has nothing to hint.
        ahead.before_fetch(2, |j| (j != 10).then(|| key(j)));
        ahead.before_fetch(15, |j| Some(key(j)));
        let hinted = store.hinted.lock().unwrap().clone();
        let want: Vec<String> = (2..=9).chain(16..20).map(key).collect();
        assert_eq!(hinted, want);
        assert!(store.done.lock().unwrap().is_empty());
        drop(ahead);
        assert_eq!(
            *store.done.lock().unwrap(),
            want,
            "told back when the read is over"
        );
    }

    #[test]
    fn ahead_follows_the_chunk_size() {
        let store = Recorder::default();
        assert_eq!(ReadAhead::new(&store, 10, 64 << 10).ahead, MAX_AHEAD);
        assert_eq!(ReadAhead::new(&store, 10, 512 << 10).ahead, 16);
        assert_eq!(ReadAhead::new(&store, 10, 1 << 30).ahead, MIN_AHEAD);
        assert_eq!(ReadAhead::new(&store, 10, 0).ahead, MAX_AHEAD);
    }
}
