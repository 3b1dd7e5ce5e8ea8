//! A view of the keys under one prefix of another store, as a store of its own: `memory://a/b`
//! names the keys under `a/b/` of the process's one memory store, as fsspec's memory
//! filesystem (which zarr-python opens such URLs with) is one per process, so a node written
//! through `memory://a` with path `b` opens through `memory://a/b` and the other way round.

use super::{
    validate_prefix, ByteRange, ListDir, ListableStore, PartsRead, ReadableStore, Store, StoreRef,
    Version, WritableStore,
};
use crate::error::StorageError;

#[derive(Debug, Clone)]
pub struct PrefixStore {
    inner: StoreRef,
    /// Ends in `/`, or is empty (the whole store).
    prefix: String,
    /// What `describe` gives: the URL the view was opened with.
    name: String,
}

impl PrefixStore {
    /// The keys of `inner` under `prefix` (a node path: components without `.`/`..`), named
    /// `name` in messages.
    pub fn new(inner: StoreRef, prefix: &str, name: &str) -> Result<Self, StorageError> {
        let prefix = prefix.trim_matches('/');
        let prefix = if prefix.is_empty() {
            String::new()
        } else {
            format!("{prefix}/")
        };
        validate_prefix(&prefix)?;
        Ok(Self {
            inner,
            prefix,
            name: name.to_string(),
        })
    }

    fn full(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// `keys` of the inner store (all under the prefix) as this view names them.
    fn strip(&self, keys: Vec<String>) -> Vec<String> {
        keys.into_iter()
            .map(|k| k[self.prefix.len()..].to_string())
            .collect()
    }
}

impl ReadableStore for PrefixStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        self.inner.get(&self.full(key))
    }

    fn get_into(
        &self,
        key: &str,
        buf: &mut Vec<u8>,
        decoded_in_parallel: bool,
    ) -> Result<bool, StorageError> {
        self.inner
            .get_into(&self.full(key), buf, decoded_in_parallel)
    }

    fn get_ranges(
        &self,
        key: &str,
        ranges: &[ByteRange],
    ) -> Result<Option<Vec<Vec<u8>>>, StorageError> {
        self.inner.get_ranges(&self.full(key), ranges)
    }

    fn get_range_and_version(
        &self,
        key: &str,
        range: ByteRange,
    ) -> Result<Option<(Vec<u8>, Version)>, StorageError> {
        self.inner.get_range_and_version(&self.full(key), range)
    }

    fn read_parts_into(
        &self,
        key: &str,
        parts: &mut [(u64, &mut [u8])],
        expected: Option<Version>,
    ) -> Result<PartsRead, StorageError> {
        self.inner.read_parts_into(&self.full(key), parts, expected)
    }

    fn size(&self, key: &str) -> Result<Option<u64>, StorageError> {
        self.inner.size(&self.full(key))
    }

    fn version(&self, key: &str) -> Result<Option<Version>, StorageError> {
        self.inner.version(&self.full(key))
    }

    fn exists(&self, key: &str) -> Result<bool, StorageError> {
        self.inner.exists(&self.full(key))
    }

    fn concurrent_requests(&self) -> usize {
        self.inner.concurrent_requests()
    }

    // Values held whole (a zip's compressed shards, a shard of a load-balanced service) are
    // held by the store viewed.
    fn hold_whole(&self, key: &str) -> Result<Option<u64>, StorageError> {
        self.inner.hold_whole(&self.full(key))
    }

    fn release_whole(&self, key: &str) {
        self.inner.release_whole(&self.full(key))
    }

    fn holds_for_parts(&self) -> bool {
        self.inner.holds_for_parts()
    }

    fn hold_for_parts(&self, key: &str, every_part: bool) -> Result<bool, StorageError> {
        self.inner.hold_for_parts(&self.full(key), every_part)
    }
}

impl WritableStore for PrefixStore {
    fn set(&self, key: &str, value: &[u8]) -> Result<(), StorageError> {
        self.inner.set(&self.full(key), value)
    }

    fn set_parts(&self, key: &str, parts: &[&[u8]]) -> Result<Option<Version>, StorageError> {
        self.inner.set_parts(&self.full(key), parts)
    }

    fn delete(&self, key: &str) -> Result<(), StorageError> {
        self.inner.delete(&self.full(key))
    }

    fn delete_prefix(&self, prefix: &str) -> Result<(), StorageError> {
        self.inner.delete_prefix(&self.full(prefix))
    }
}

impl ListableStore for PrefixStore {
    fn list_prefix(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        Ok(self.strip(self.inner.list_prefix(&self.full(prefix))?))
    }

    fn list_dir(&self, prefix: &str) -> Result<ListDir, StorageError> {
        let found = self.inner.list_dir(&self.full(prefix))?;
        Ok(ListDir {
            keys: self.strip(found.keys),
            prefixes: self.strip(found.prefixes),
        })
    }
}

impl Store for PrefixStore {
    fn describe(&self) -> String {
        self.name.clone()
    }

    fn set_if_absent(&self, key: &str, value: &[u8]) -> Result<bool, StorageError> {
        self.inner.set_if_absent(&self.full(key), value)
    }

    fn cache_namespace(&self) -> String {
        // Cached values are keyed by this view's keys: views of other prefixes name the same
        // value by other keys, so each view is its own namespace.
        format!("{}/{}", self.inner.cache_namespace(), self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::store::MemoryStore;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    #[test]
    fn a_view_reads_and_writes_under_its_prefix() -> TestResult {
        let memory: StoreRef = Arc::new(MemoryStore::new());
        let a = PrefixStore::new(memory.clone(), "a", "memory://a")?;
        let ab = PrefixStore::new(memory.clone(), "/a/b/", "memory://a/b")?;
        a.set("b/zarr.json", b"{}")?;
        a.set("c", b"1")?;
        assert_eq!(ab.get("zarr.json")?, Some(b"{}".to_vec()));
        assert_eq!(memory.list_prefix("")?, ["a/b/zarr.json", "a/c"]);
        assert_eq!(a.list_prefix("")?, ["b/zarr.json", "c"]);
        let listed = a.list_dir("")?;
        assert_eq!(
            (listed.keys, listed.prefixes),
            (vec!["c".into()], vec!["b/".into()])
        );
        ab.delete_prefix("")?;
        assert_eq!(memory.list_prefix("")?, ["a/c"]);
        assert_eq!(ab.describe(), "memory://a/b");
        assert!(PrefixStore::new(memory, "a/../b", "memory://a/../b").is_err());
        Ok(())
    }
}
