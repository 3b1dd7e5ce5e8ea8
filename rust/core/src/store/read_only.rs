//! A read-only view of any store: reads pass through, writes are refused.

use super::{
    ByteRange, ListDir, ListableStore, PartsRead, ReadableStore, Store, StoreRef, Version,
    WritableStore,
};
use crate::error::StorageError;

/// Refuses every write to the store it wraps.
#[derive(Debug, Clone)]
pub struct ReadOnlyStore {
    inner: StoreRef,
    /// Why, when the user did not ask for it (a service oxzarr only reads).
    reason: Option<&'static str>,
}

impl ReadOnlyStore {
    pub fn new(inner: StoreRef) -> Self {
        Self {
            inner,
            reason: None,
        }
    }

    /// A view of a store that is read-only for `reason`, which its refusals give.
    pub fn because(inner: StoreRef, reason: &'static str) -> Self {
        Self {
            inner,
            reason: Some(reason),
        }
    }

    fn refuse(&self, key: &str) -> StorageError {
        let key = super::key_in(key, &self.inner.describe());
        StorageError::ReadOnly {
            key: match self.reason {
                Some(reason) => format!("{key} ({reason})"),
                None => key,
            },
        }
    }
}

impl ReadableStore for ReadOnlyStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        self.inner.get(key)
    }

    fn get_into(
        &self,
        key: &str,
        buf: &mut Vec<u8>,
        decoded_in_parallel: bool,
    ) -> Result<bool, StorageError> {
        self.inner.get_into(key, buf, decoded_in_parallel)
    }

    fn get_ranges(
        &self,
        key: &str,
        ranges: &[ByteRange],
    ) -> Result<Option<Vec<Vec<u8>>>, StorageError> {
        self.inner.get_ranges(key, ranges)
    }

    fn get_range_and_version(
        &self,
        key: &str,
        range: ByteRange,
    ) -> Result<Option<(Vec<u8>, Version)>, StorageError> {
        self.inner.get_range_and_version(key, range)
    }

    fn read_parts_into(
        &self,
        key: &str,
        parts: &mut [(u64, &mut [u8])],
        expected: Option<Version>,
    ) -> Result<PartsRead, StorageError> {
        self.inner.read_parts_into(key, parts, expected)
    }

    fn size(&self, key: &str) -> Result<Option<u64>, StorageError> {
        self.inner.size(key)
    }

    fn version(&self, key: &str) -> Result<Option<Version>, StorageError> {
        self.inner.version(key)
    }

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
        self.inner.hold_whole(key)
    }

    fn holds_for_parts(&self) -> bool {
        self.inner.holds_for_parts()
    }

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

impl WritableStore for ReadOnlyStore {
    fn set(&self, key: &str, _value: &[u8]) -> Result<(), StorageError> {
        Err(self.refuse(key))
    }

    fn delete(&self, key: &str) -> Result<(), StorageError> {
        Err(self.refuse(key))
    }

    fn delete_prefix(&self, prefix: &str) -> Result<(), StorageError> {
        Err(self.refuse(prefix))
    }
}

impl ListableStore for ReadOnlyStore {
    fn list_prefix(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        self.inner.list_prefix(prefix)
    }

    fn list_dir(&self, prefix: &str) -> Result<ListDir, StorageError> {
        self.inner.list_dir(prefix)
    }
}

impl Store for ReadOnlyStore {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn cache_namespace(&self) -> String {
        self.inner.cache_namespace()
    }
}
