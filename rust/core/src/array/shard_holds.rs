//! Shards held whole in the store while a read takes their parts (see
//! [`ReadableStore::hold_for_parts`]).
//!
//! A read of a sharded array takes each shard's index and inner chunks with requests of their
//! own, from many threads. Where a part of a value costs all of it (a zip entry stored
//! compressed), each request decompressed the whole shard again; and parts read one by one are
//! never checked against a checksum of the whole value (a zip entry's CRC-32). A store that
//! says so holds such a shard whole from the first of the read's items in it until the last is
//! done. The items then run shard by shard: in their own order (rows of inner chunks, which
//! cross every shard of a row of shards) each shard would be held from the read's first row to
//! its last, all at once.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use super::Array;
use crate::codec::array_to_bytes::sharding::Sharding;
use crate::concurrency;
use crate::error::Result;

/// A read's work items (`0..n`), each in one shard or none, and the shards held for them.
pub(super) struct ShardHolds<'a> {
    array: &'a Array,
    /// The items in the order they run, shard by shard; empty when nothing is held (the store
    /// holds nothing for parts): in their own order then.
    order: Vec<usize>,
    /// Per item, its shard's place in `shards`, if any.
    shard_of: Vec<Option<usize>>,
    shards: Vec<ShardHold>,
}

struct ShardHold {
    key: String,
    /// Whether the read takes every inner chunk of the shard that lies in the array.
    every_part: bool,
    /// The read's items in the shard not done yet, and whether the store holds it (`None`:
    /// not asked yet).
    state: Mutex<(usize, Option<bool>)>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A thread that panicked holding it left a count, which the read's end settles.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl<'a> ShardHolds<'a> {
    /// For a read of `n` items of `array`, item `i` in the shard at grid coordinates
    /// `located(i).0`, of which it takes `located(i).1` inner chunks (`None`: in no shard the
    /// read takes, as an item of a shard read again is when the read takes others again).
    pub(super) fn new(
        array: &'a Array,
        sharding: &Sharding,
        n: usize,
        located: impl Fn(usize) -> Option<(Vec<u64>, u64)>,
    ) -> Self {
        let mut holds = Self {
            array,
            order: Vec::new(),
            shard_of: Vec::new(),
            shards: Vec::new(),
        };
        if !array.store.holds_for_parts() {
            return holds;
        }
        let mut places: HashMap<Vec<u64>, usize> = HashMap::new();
        let mut taken: Vec<(Vec<u64>, u64, usize)> = Vec::new();
        holds.shard_of = (0..n)
            .map(|i| {
                let (shard, inner) = located(i)?;
                let place = *places.entry(shard.clone()).or_insert_with(|| {
                    taken.push((shard, 0, 0));
                    taken.len() - 1
                });
                taken[place].1 = taken[place].1.saturating_add(inner);
                taken[place].2 += 1;
                Some(place)
            })
            .collect();
        holds.shards = taken
            .into_iter()
            .map(|(shard, inner, items)| ShardHold {
                key: array.chunk_key(&shard),
                every_part: inner >= inner_chunks_inside(array, sharding, &shard),
                state: Mutex::new((items, None)),
            })
            .collect();
        holds.order = (0..n).collect();
        // Stable: a shard's items keep their order. Those in no shard go last.
        let shard_of = &holds.shard_of;
        holds
            .order
            .sort_by_key(|&i| shard_of[i].unwrap_or(usize::MAX));
        holds
    }

    /// The item that runs `k`-th.
    pub(super) fn item(&self, k: usize) -> usize {
        self.order.get(k).copied().unwrap_or(k)
    }

    /// Runs `work` for item `i`, its shard held by the store from the first of its items to
    /// run (the others of the shard wait for that) until the last is done.
    pub(super) fn run<T>(&self, i: usize, work: impl FnOnce() -> Result<T>) -> Result<T> {
        let Some(shard) = self.shard_of.get(i).copied().flatten() else {
            return work();
        };
        let shard = &self.shards[shard];
        {
            let mut state = lock(&shard.state);
            if state.1.is_none() {
                // In sequence, holding the lock: see `concurrency::sequentially`.
                let held = concurrency::sequentially(|| {
                    (self.array.store).hold_for_parts(&shard.key, shard.every_part)
                })
                .map_err(|e| self.array.chunk_storage_error(&shard.key, e))?;
                state.1 = Some(held);
            }
        }
        let done = work();
        let mut state = lock(&shard.state);
        state.0 = state.0.saturating_sub(1);
        if state.0 == 0 && state.1 == Some(true) {
            self.array.store.release_whole(&shard.key);
            state.1 = Some(false);
        }
        done
    }
}

impl Drop for ShardHolds<'_> {
    /// Lets go of the shards still held: a read that failed leaves items not run.
    fn drop(&mut self) {
        for shard in &mut self.shards {
            let state = shard.state.get_mut().unwrap_or_else(|e| e.into_inner());
            if state.1 == Some(true) {
                self.array.store.release_whole(&shard.key);
                state.1 = Some(false);
            }
        }
    }
}

/// How many inner chunks of the shard at grid coordinates `shard` lie in the array (a shard on
/// its edge holds fewer).
fn inner_chunks_inside(array: &Array, sharding: &Sharding, shard: &[u64]) -> u64 {
    let per_shard = sharding.chunks_per_shard();
    let dims = array.shape().iter().zip(array.inner_chunk_shape());
    (shard.iter().zip(per_shard).zip(dims))
        .map(|((&s, &n), (&len, &inner))| {
            let grid = len.div_ceil(inner.max(1));
            let start = s.saturating_mul(n);
            start.saturating_add(n).min(grid).saturating_sub(start)
        })
        .fold(1, u64::saturating_mul)
}

impl Array {
    /// Runs `work` for items `0..n` of a read, in parallel, each in the shard `located` says
    /// (see [`ShardHolds::new`]), holding those shards whole in the store while their items run
    /// where the store holds shards for their parts.
    pub(super) fn for_each_item_in_shards(
        &self,
        sharding: &Sharding,
        n: usize,
        located: impl Fn(usize) -> Option<(Vec<u64>, u64)>,
        work: impl Fn(usize) -> Result<()> + Sync,
    ) -> Result<()> {
        let holds = ShardHolds::new(self, sharding, n, located);
        super::io::for_each_item(n, |k| {
            let i = holds.item(k);
            holds.run(i, || work(i))
        })
    }

    /// `work` of items `0..n` of a read, in parallel, in item order, each in the shard
    /// `located` says (see [`ShardHolds::new`]), holding those shards whole in the store while
    /// their items run where the store holds shards for their parts.
    pub(super) fn map_items_in_shards<T: Send>(
        &self,
        sharding: &Sharding,
        n: usize,
        located: impl Fn(usize) -> Option<(Vec<u64>, u64)>,
        work: impl Fn(usize) -> Result<T> + Sync,
    ) -> Result<Vec<T>> {
        let holds = ShardHolds::new(self, sharding, n, located);
        let order: Vec<usize> = (0..n).map(|k| holds.item(k)).collect();
        let done = match n {
            1 => vec![holds.run(0, || work(0))?],
            _ => concurrency::try_map(&order, |&i| holds.run(i, || work(i)))?,
        };
        let mut in_order: Vec<Option<T>> = (0..n).map(|_| None).collect();
        for (i, value) in order.into_iter().zip(done) {
            in_order[i] = Some(value);
        }
        Ok(in_order.into_iter().flatten().collect())
    }
}
