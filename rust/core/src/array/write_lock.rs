//! Writes from several threads of this process to the same stored chunks, one at a time.
//!
//! A write that covers part of a chunk reads the chunk, overlays its values and stores it
//! again. Two threads doing that to one chunk at once would each store their overlay on the
//! chunk as it was, and the values of the first to finish would be lost (16 threads writing
//! disjoint slices of one chunk lost most of them). A write that replaces a whole chunk races
//! the same way with a partial one. So every write first claims the box of the chunk grid it
//! touches (the grid of shards, for a sharded array: a shard is read and rewritten whole) and
//! holds it until its last chunk is stored; a write whose box overlaps one claimed before it,
//! by any oxzarr handle on the same array in this process, waits. (zarr-python's handles, with
//! oxzarr as their codec pipeline, write as zarr-python does: unclaimed.) Claims are granted
//! in the order they were made, so a large write is not starved by a stream of small ones,
//! and none can wait on a later one: there is no cycle to deadlock on.
//!
//! Only writes started outside the engine's pools claim. A pool worker that waited could be
//! the thread whose stolen work holds the claim it waits for, or could leave no worker to run
//! the holder's chunks; the engine's own writes from the pool (conversion, one unit per
//! destination chunk or shard) never overlap.
//!
//! Other processes are not covered: as with zarr-python, processes writing one array should
//! write whole, distinct chunks.

use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::{Thread, ThreadId};
use std::time::Duration;

use crate::concurrency::{self, ForkSafeMutex};
use crate::error::{Error, Result};

/// The claims of this process's writes in progress or waiting, oldest first.
static CLAIMS: ForkSafeMutex<Vec<Claim>> = ForkSafeMutex::new(Vec::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

#[derive(Debug)]
struct Claim {
    id: u64,
    /// The array: its store's cache namespace (equal for every handle on the same data) and
    /// its path in the store, joined (see [`claim`]).
    array: String,
    /// Per dimension of the grid, the first and last chunk (inclusive).
    bounds: Vec<(u64, u64)>,
    /// The thread waiting for this claim, woken when an earlier claim is dropped.
    waiter: Option<Thread>,
    /// The thread that made it (and holds it, once granted).
    owner: ThreadId,
}

impl Claim {
    fn overlaps(&self, other: &Claim) -> bool {
        self.array == other.array
            && self.bounds.len() == other.bounds.len()
            && self
                .bounds
                .iter()
                .zip(&other.bounds)
                .all(|(a, b)| a.0 <= b.1 && b.0 <= a.1)
    }
}

/// A granted claim; dropping it lets the writes waiting on it go on.
#[derive(Debug)]
pub(super) struct WriteClaim {
    id: u64,
}

impl Drop for WriteClaim {
    fn drop(&mut self) {
        let mut claims = CLAIMS.lock();
        claims.retain(|c| c.id != self.id);
        // Each waiter looks again; those still blocked go back to waiting.
        for waiter in claims.iter().filter_map(|c| c.waiter.as_ref()) {
            waiter.unpark();
        }
    }
}

/// Claims the chunks from `bounds[d].0` to `bounds[d].1` (inclusive, per dimension of the
/// chunk grid) of the array at `path` in the store of cache namespace `namespace`, waiting for
/// earlier overlapping claims to be dropped. `None` on a worker of the engine's pools (see
/// the module's notes) or when there is nothing to claim. An overlapping claim this thread
/// holds is an error: the write holding it is suspended below this one on the thread's stack
/// (a Python signal handler runs while the engine works), so waiting would never end.
pub(super) fn claim(
    namespace: &str,
    path: &str,
    bounds: Vec<(u64, u64)>,
) -> Result<Option<WriteClaim>> {
    if concurrency::on_engine_worker() || bounds.iter().any(|b| b.0 > b.1) {
        return Ok(None);
    }
    // One name however the array was reached: a store at `x.zarr` with the array at `a`, or
    // a store at `x.zarr/a` with the array at its root.
    let array = [namespace, path]
        .iter()
        .map(|p| p.trim_matches('/'))
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("/");
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let mut mine = Claim {
        id,
        array,
        bounds,
        waiter: None,
        owner: std::thread::current().id(),
    };
    {
        let mut claims = CLAIMS.lock();
        if claims
            .iter()
            .any(|c| c.owner == mine.owner && c.overlaps(&mine))
        {
            return Err(Error::InvalidArgument(format!(
                "cannot write to {}: a write to the same chunks is under way on this thread \
                 (this one comes from a signal handler that interrupted it?) and would wait \
                 for this one to end",
                mine.array
            )));
        }
        let blocked = claims.iter().any(|c| c.overlaps(&mine));
        if blocked {
            mine.waiter = Some(std::thread::current());
        }
        claims.push(mine);
        if !blocked {
            return Ok(Some(WriteClaim { id }));
        }
    }
    // Queued: later overlapping writes wait behind this one. The list stays a
    // `ForkSafeMutex` (a child process forked meanwhile starts with no claims), so waiting is
    // parking, woken by every dropped claim, with a timeout as a backstop.
    let claim = WriteClaim { id };
    loop {
        std::thread::park_timeout(Duration::from_millis(5));
        let mut claims = CLAIMS.lock();
        let Some(at) = claims.iter().position(|c| c.id == id) else {
            // Only possible in a forked child, whose list starts afresh: nothing is held there.
            return Ok(Some(claim));
        };
        let (earlier, rest) = claims.split_at_mut(at);
        if !earlier.iter().any(|c| c.overlaps(&rest[0])) {
            rest[0].waiter = None;
            return Ok(Some(claim));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    fn bounds(b: &[(u64, u64)]) -> Vec<(u64, u64)> {
        b.to_vec()
    }

    #[test]
    fn disjoint_claims_do_not_wait_and_overlapping_ones_do() -> Result<()> {
        let name = "memory://write-lock-test-1".to_string();
        let first = claim(&name, "arr", bounds(&[(0, 3), (0, 0)]))?;
        assert!(first.is_some());
        // Another row of chunks, and another array: granted at once.
        let other_row = claim(&name, "arr", bounds(&[(0, 3), (1, 1)]))?;
        assert!(other_row.is_some());
        let other_array = claim(&name, "arr2", bounds(&[(0, 3), (0, 0)]))?;
        assert!(other_array.is_some());
        // Overlapping: waits until `first` is dropped.
        let done = Arc::new(AtomicBool::new(false));
        let waiter = {
            let (name, done) = (name.clone(), done.clone());
            std::thread::spawn(move || {
                let granted = matches!(claim(&name, "arr", bounds(&[(3, 5), (0, 0)])), Ok(Some(_)));
                done.store(true, Ordering::SeqCst);
                granted
            })
        };
        std::thread::sleep(Duration::from_millis(50));
        assert!(!done.load(Ordering::SeqCst), "granted while overlapping");
        drop(first);
        assert!(matches!(waiter.join(), Ok(true)));
        Ok(())
    }

    #[test]
    fn an_overlapping_claim_of_the_same_thread_is_refused() -> Result<()> {
        // As a write from a signal handler, while the write it interrupted holds its claim.
        let name = "memory://write-lock-test-3".to_string();
        let held = claim(&name, "arr", bounds(&[(0, 3)]))?;
        let err = claim(&name, "arr", bounds(&[(3, 4)]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("under way on this thread"), "{err}");
        assert!(
            claim(&name, "arr", bounds(&[(4, 9)]))?.is_some(),
            "disjoint"
        );
        drop(held);
        assert!(claim(&name, "arr", bounds(&[(3, 4)]))?.is_some());
        Ok(())
    }

    #[test]
    fn claims_are_granted_in_order() -> Result<()> {
        // A waits on the held claim; B, overlapping A but not the held claim, queues behind A.
        let name = "memory://write-lock-test-2".to_string();
        let held = claim(&name, "arr", bounds(&[(0, 0)]))?;
        let order = Arc::new(ForkSafeMutex::new(Vec::new()));
        let spawn = |b: Vec<(u64, u64)>, tag: &'static str| {
            let (name, order) = (name.clone(), order.clone());
            std::thread::spawn(move || {
                let c = claim(&name, "arr", b).ok().flatten();
                order.lock().push(tag);
                std::thread::sleep(Duration::from_millis(20));
                drop(c);
            })
        };
        let a = spawn(bounds(&[(0, 5)]), "a");
        std::thread::sleep(Duration::from_millis(30));
        let b = spawn(bounds(&[(5, 5)]), "b");
        std::thread::sleep(Duration::from_millis(30));
        assert!(order.lock().is_empty(), "B overtook A");
        drop(held);
        assert!(a.join().is_ok() && b.join().is_ok());
        assert_eq!(*order.lock(), vec!["a", "b"]);
        Ok(())
    }

    #[test]
    fn pool_workers_and_empty_boxes_claim_nothing() {
        assert!(matches!(claim("x", "", bounds(&[(1, 0)])), Ok(None)));
        let on_worker = crate::concurrency::in_pool(|| claim("x", "", bounds(&[(0, 0)])));
        assert!(matches!(on_worker, Ok(Ok(None))));
    }
}
