//! A store wrapper that counts the read requests and bytes it serves, and its listings: how
//! tests (and users) see what a read really fetched.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::{
    ByteRange, ListDir, ListableStore, PartsRead, ReadableStore, Store, StoreRef, Version,
    WritableStore,
};
use crate::error::StorageError;

/// Read requests and bytes served so far, and listings.
#[derive(Debug, Default)]
pub struct ReadCounters {
    requests: AtomicU64,
    bytes: AtomicU64,
    listings: AtomicU64,
}

impl ReadCounters {
    fn add(&self, requests: u64, bytes: u64) {
        self.requests.fetch_add(requests, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// (requests, bytes) served since creation or the last reset.
    pub fn get(&self) -> (u64, u64) {
        (
            self.requests.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
        )
    }

    /// Listings (of keys under a prefix, or of a directory) served since creation or the
    /// last reset: each may cost many requests of a cloud service.
    pub fn listings(&self) -> u64 {
        self.listings.load(Ordering::Relaxed)
    }

    pub fn reset(&self) {
        self.requests.store(0, Ordering::Relaxed);
        self.bytes.store(0, Ordering::Relaxed);
        self.listings.store(0, Ordering::Relaxed);
    }
}

/// Counts every read of the store it wraps: a whole-value read or a size query is one
/// request, a read of n byte ranges is n requests.
#[derive(Debug, Clone)]
pub struct CountingStore {
    inner: StoreRef,
    counters: Arc<ReadCounters>,
}

impl CountingStore {
    pub fn new(inner: StoreRef) -> Self {
        Self {
            inner,
            counters: Arc::default(),
        }
    }

    pub fn counters(&self) -> Arc<ReadCounters> {
        self.counters.clone()
    }
}

impl ReadableStore for CountingStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let value = self.inner.get(key)?;
        self.counters
            .add(1, value.as_ref().map_or(0, |v| v.len() as u64));
        Ok(value)
    }

    fn get_into(
        &self,
        key: &str,
        buf: &mut Vec<u8>,
        decoded_in_parallel: bool,
    ) -> Result<bool, StorageError> {
        let found = self.inner.get_into(key, buf, decoded_in_parallel)?;
        self.counters
            .add(1, if found { buf.len() as u64 } else { 0 });
        Ok(found)
    }

    fn get_ranges(
        &self,
        key: &str,
        ranges: &[ByteRange],
    ) -> Result<Option<Vec<Vec<u8>>>, StorageError> {
        let parts = self.inner.get_ranges(key, ranges)?;
        let bytes = parts
            .as_ref()
            .map_or(0, |p| p.iter().map(|v| v.len() as u64).sum());
        self.counters.add(ranges.len().max(1) as u64, bytes);
        Ok(parts)
    }

    fn get_range_and_version(
        &self,
        key: &str,
        range: ByteRange,
    ) -> Result<Option<(Vec<u8>, Version)>, StorageError> {
        let got = self.inner.get_range_and_version(key, range)?;
        self.counters
            .add(1, got.as_ref().map_or(0, |(b, _)| b.len() as u64));
        Ok(got)
    }

    fn read_parts_into(
        &self,
        key: &str,
        parts: &mut [(u64, &mut [u8])],
        expected: Option<Version>,
    ) -> Result<PartsRead, StorageError> {
        let read = self.inner.read_parts_into(key, parts, expected)?;
        let bytes = if read == PartsRead::Done {
            parts.iter().map(|(_, b)| b.len() as u64).sum()
        } else {
            0
        };
        // Parts read together are one request, as one vectored read serves them.
        self.counters.add(1, bytes);
        Ok(read)
    }

    fn size(&self, key: &str) -> Result<Option<u64>, StorageError> {
        self.counters.add(1, 0);
        self.inner.size(key)
    }

    fn version(&self, key: &str) -> Result<Option<Version>, StorageError> {
        self.counters.add(1, 0);
        self.inner.version(key)
    }

    // Hints are not reads: passed on, and not counted.
    fn prefetch(&self, key: &str) {
        self.inner.prefetch(key)
    }

    fn hints_done(&self, keys: &[String]) {
        self.inner.hints_done(keys)
    }

    fn release_whole(&self, key: &str) {
        self.inner.release_whole(key)
    }

    fn hold_whole(&self, key: &str) -> Result<Option<u64>, StorageError> {
        let held = self.inner.hold_whole(key)?;
        if let Some(bytes) = held {
            self.counters.add(1, bytes);
        }
        Ok(held)
    }

    fn holds_for_parts(&self) -> bool {
        self.inner.holds_for_parts()
    }

    // A hold reads nothing itself: the reads of the parts that follow are counted.
    fn hold_for_parts(&self, key: &str, every_part: bool) -> Result<bool, StorageError> {
        self.inner.hold_for_parts(key, every_part)
    }

    fn concurrent_requests(&self) -> usize {
        self.inner.concurrent_requests()
    }

    fn device_waits(&self) -> u64 {
        self.inner.device_waits()
    }
}

impl WritableStore for CountingStore {
    fn set(&self, key: &str, value: &[u8]) -> Result<(), StorageError> {
        self.inner.set(key, value)
    }

    fn set_parts(&self, key: &str, parts: &[&[u8]]) -> Result<Option<Version>, StorageError> {
        self.inner.set_parts(key, parts)
    }

    fn delete(&self, key: &str) -> Result<(), StorageError> {
        self.inner.delete(key)
    }

    fn delete_prefix(&self, prefix: &str) -> Result<(), StorageError> {
        self.inner.delete_prefix(prefix)
    }
}

impl ListableStore for CountingStore {
    fn list_prefix(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        self.counters.listings.fetch_add(1, Ordering::Relaxed);
        self.inner.list_prefix(prefix)
    }

    fn list_dir(&self, prefix: &str) -> Result<ListDir, StorageError> {
        self.counters.listings.fetch_add(1, Ordering::Relaxed);
        self.inner.list_dir(prefix)
    }
}

impl Store for CountingStore {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn set_if_absent(&self, key: &str, value: &[u8]) -> Result<bool, StorageError> {
        self.inner.set_if_absent(key, value)
    }

    fn cache_namespace(&self) -> String {
        self.inner.cache_namespace()
    }
}
