//! An in-memory store: a sorted map from key to value, shared by every handle to it.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{
    Arc, Mutex, MutexGuard, Once, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard, Weak,
};

use super::{
    list_dir_of, range_of, read_parts_of, validate_key, validate_prefix, ByteRange, ListDir,
    ListableStore, PartsRead, ReadableStore, Store, Version, WritableStore,
};
use crate::error::StorageError;

type Map = BTreeMap<String, Stored>;

/// A value and its tag: unique to this `set` in the process, so a cached shard index can tell
/// the value it came from from a replacement of the same size.
#[derive(Debug)]
struct Stored {
    bytes: Arc<[u8]>,
    tag: u64,
}

impl Stored {
    fn version(&self) -> Version {
        Version {
            size: self.bytes.len() as u64,
            tag: Some(self.tag),
            exact: true,
        }
    }
}

static NEXT_TAG: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A store held in memory, shared by clones.
#[derive(Debug, Clone)]
pub struct MemoryStore {
    map: Arc<RwLock<Map>>,
    /// Tells stores apart in caches (clones share it, as they share the data).
    id: u64,
}

static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl Default for MemoryStore {
    fn default() -> Self {
        let map = Arc::default();
        register_for_fork(&map);
        Self {
            map,
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        }
    }
}

// Surviving `fork`. A process forked while another thread held a map's lock (reading or
// writing) inherits the lock taken and not the thread that would free it: the child's first
// use of the store hung for good (multiprocessing forks with a thread at work). Unlike the
// engine's pools and caches (`ForkSafeMutex`), the map cannot start afresh in the child: it
// holds the user's data, which the child's copy must keep. So a fork waits, as the classic
// `pthread_atfork` pattern has it, until no thread holds any map, holds them all across the
// fork, and frees them on both sides: the child's copy is whole.

/// Every memory store's map (by its shared lock), for a fork to hold.
static MAPS: Mutex<Vec<Weak<RwLock<Map>>>> = Mutex::new(Vec::new());
static ATFORK: Once = Once::new();

/// What a fork holds, from before it to after it, in the thread that forks (whose copy is
/// the child's one thread). The guards go before the maps they lock, and the registry last.
struct HeldForFork {
    guards: Vec<RwLockWriteGuard<'static, Map>>,
    _maps: Vec<Arc<RwLock<Map>>>,
    _registry: MutexGuard<'static, Vec<Weak<RwLock<Map>>>>,
}

thread_local! {
    static HELD_FOR_FORK: RefCell<Option<HeldForFork>> = const { RefCell::new(None) };
}

fn register_for_fork(map: &Arc<RwLock<Map>>) {
    ATFORK.call_once(|| {
        // SAFETY: registers handlers that only take and free this module's locks.
        unsafe {
            libc::pthread_atfork(Some(before_fork), Some(after_fork), Some(after_fork));
        }
    });
    let mut maps = MAPS.lock().unwrap_or_else(PoisonError::into_inner);
    // Dropped stores are pruned when the list doubles: making n stores stays linear.
    if maps.len() == maps.capacity() {
        maps.retain(|m| m.strong_count() > 0);
    }
    maps.push(Arc::downgrade(map));
}

extern "C" fn before_fork() {
    let registry = MAPS.lock().unwrap_or_else(PoisonError::into_inner);
    let maps: Vec<Arc<RwLock<Map>>> = registry.iter().filter_map(Weak::upgrade).collect();
    let guards = maps
        .iter()
        .map(|map| {
            let guard = map.write().unwrap_or_else(PoisonError::into_inner);
            // SAFETY: the guard is dropped (in `after_fork`) before `maps`, which keeps the
            // lock it borrows alive.
            unsafe {
                std::mem::transmute::<RwLockWriteGuard<'_, Map>, RwLockWriteGuard<'static, Map>>(
                    guard,
                )
            }
        })
        .collect();
    let held = HeldForFork {
        guards,
        _maps: maps,
        _registry: registry,
    };
    // (try_with: a thread-local torn down, in a fork from a destructor, is no panic across
    // the C boundary; the fork then goes unguarded.)
    let _ = HELD_FOR_FORK.try_with(|slot| {
        if let Ok(mut slot) = slot.try_borrow_mut() {
            *slot = Some(held);
        }
    });
}

extern "C" fn after_fork() {
    let _ = HELD_FOR_FORK.try_with(|slot| {
        if let Ok(mut slot) = slot.try_borrow_mut() {
            if let Some(mut held) = slot.take() {
                held.guards.clear();
            }
        }
    });
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    // A writer that panicked cannot leave a half-updated map (each update is one insert or
    // remove), so a poisoned lock is still safe to use.
    fn read(&self) -> RwLockReadGuard<'_, Map> {
        self.map.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Map> {
        self.map.write().unwrap_or_else(|e| e.into_inner())
    }

    fn keys_under<'a>(map: &'a Map, prefix: &'a str) -> impl Iterator<Item = &'a String> + 'a {
        map.range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
            .map(|(k, _)| k)
            .take_while(move |k| k.starts_with(prefix))
    }
}

impl ReadableStore for MemoryStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        validate_key(key)?;
        Ok(self.read().get(key).map(|v| v.bytes.to_vec()))
    }

    fn get_into(&self, key: &str, buf: &mut Vec<u8>, _: bool) -> Result<bool, StorageError> {
        validate_key(key)?;
        let map = self.read();
        let Some(value) = map.get(key) else {
            return Ok(false);
        };
        buf.clear();
        buf.extend_from_slice(&value.bytes);
        Ok(true)
    }

    fn get_ranges(
        &self,
        key: &str,
        ranges: &[ByteRange],
    ) -> Result<Option<Vec<Vec<u8>>>, StorageError> {
        validate_key(key)?;
        let Some(value) = self.read().get(key).map(|v| v.bytes.clone()) else {
            return Ok(None);
        };
        ranges
            .iter()
            .map(|r| range_of(key, &value, *r))
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    fn get_range_and_version(
        &self,
        key: &str,
        range: ByteRange,
    ) -> Result<Option<(Vec<u8>, Version)>, StorageError> {
        validate_key(key)?;
        let map = self.read();
        let Some(value) = map.get(key) else {
            return Ok(None);
        };
        Ok(Some((range_of(key, &value.bytes, range)?, value.version())))
    }

    fn read_parts_into(
        &self,
        key: &str,
        parts: &mut [(u64, &mut [u8])],
        expected: Option<Version>,
    ) -> Result<PartsRead, StorageError> {
        validate_key(key)?;
        let map = self.read();
        let Some(value) = map.get(key) else {
            return Ok(PartsRead::Missing);
        };
        read_parts_of(key, &value.bytes, value.version(), parts, expected)
    }

    fn size(&self, key: &str) -> Result<Option<u64>, StorageError> {
        validate_key(key)?;
        Ok(self.read().get(key).map(|v| v.bytes.len() as u64))
    }

    fn version(&self, key: &str) -> Result<Option<Version>, StorageError> {
        validate_key(key)?;
        Ok(self.read().get(key).map(Stored::version))
    }
}

impl WritableStore for MemoryStore {
    fn set(&self, key: &str, value: &[u8]) -> Result<(), StorageError> {
        self.set_parts(key, &[value]).map(drop)
    }

    fn set_parts(&self, key: &str, parts: &[&[u8]]) -> Result<Option<Version>, StorageError> {
        validate_key(key)?;
        let stored = Stored {
            bytes: Arc::from(parts.concat()),
            tag: NEXT_TAG.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        };
        let version = stored.version();
        self.write().insert(key.to_string(), stored);
        Ok(Some(version))
    }

    fn delete(&self, key: &str) -> Result<(), StorageError> {
        validate_key(key)?;
        self.write().remove(key);
        Ok(())
    }

    fn delete_prefix(&self, prefix: &str) -> Result<(), StorageError> {
        validate_prefix(prefix)?;
        let mut map = self.write();
        let doomed: Vec<String> = Self::keys_under(&map, prefix).cloned().collect();
        for key in doomed {
            map.remove(&key);
        }
        Ok(())
    }
}

impl ListableStore for MemoryStore {
    fn list_prefix(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        validate_prefix(prefix)?;
        Ok(Self::keys_under(&self.read(), prefix).cloned().collect())
    }

    fn list_dir(&self, prefix: &str) -> Result<ListDir, StorageError> {
        validate_prefix(prefix)?;
        let map = self.read();
        Ok(list_dir_of(prefix, Self::keys_under(&map, prefix)))
    }
}

impl Store for MemoryStore {
    fn describe(&self) -> String {
        "memory://".to_string()
    }

    fn cache_namespace(&self) -> String {
        format!("memory://{}", self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replaced_value_has_a_new_version() -> Result<(), StorageError> {
        let store = MemoryStore::new();
        store.set("s", b"abcd")?;
        let first = store.version("s")?;
        assert!(first.is_some_and(|v| v.size == 4 && v.tag.is_some()));
        store.set("s", b"wxyz")?;
        let mut buf = [0u8; 2];
        let read = store.read_parts_into("s", &mut [(1, &mut buf[..])], first)?;
        assert_eq!(read, PartsRead::Replaced, "same size, another value");
        let now = store.version("s")?;
        let read = store.read_parts_into("s", &mut [(1, &mut buf[..])], now)?;
        assert_eq!((read, &buf), (PartsRead::Done, b"xy"));
        store.delete("s")?;
        assert_eq!(store.version("s")?, None);
        Ok(())
    }

    #[test]
    fn writes_in_parts_tell_the_version_written() -> Result<(), StorageError> {
        let store = MemoryStore::new();
        let written = store.set_parts("s", &[b"ab", b"", b"cd"])?;
        assert_eq!(store.get("s")?.as_deref(), Some(&b"abcd"[..]));
        assert_eq!(written, store.version("s")?);
        assert!(written.is_some());
        Ok(())
    }

    #[test]
    fn set_get_list_delete() {
        let store = MemoryStore::new();
        store.set("a/b", b"hello").unwrap();
        store.set("a/c/d", b"x").unwrap();
        store.set("a/c/e", b"y").unwrap();
        store.set("ab", b"z").unwrap();
        let other = store.clone();
        assert_eq!(other.get("a/b").unwrap().unwrap(), b"hello");
        assert_eq!(
            store.list_prefix("a/").unwrap(),
            vec!["a/b", "a/c/d", "a/c/e"]
        );
        let listed = store.list_dir("a/").unwrap();
        assert_eq!(listed.keys, vec!["a/b"]);
        assert_eq!(listed.prefixes, vec!["a/c/"]);
        let root = store.list_dir("").unwrap();
        assert_eq!(root.keys, vec!["ab"]);
        assert_eq!(root.prefixes, vec!["a/"]);
        store.delete_prefix("a/").unwrap();
        assert_eq!(store.list_prefix("").unwrap(), vec!["ab"]);
        assert!(store.get("/x").is_err());
    }
}
