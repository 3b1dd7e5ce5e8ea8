//! A team that splits one chunk's work — its decode, or its read — between the calling thread
//! and helper threads, for calls that touch a single chunk (a Python loop reading chunk by
//! chunk, say).
//!
//! Why not the rayon pool: entering it from outside hands the whole job to a worker and puts
//! the caller to sleep, so a call pays two thread wake-ups, and on a virtual machine waking an
//! idle core costs tens of microseconds — as much as decoding half a 512 KiB chunk. Here the
//! caller works on the pieces itself and helpers join in, so a late helper costs nothing: the
//! caller simply does more pieces. Helpers spin for [`SPIN`] after their last piece before
//! they sleep, so in a run of calls they are already awake when the next one comes; OpenMP
//! runtimes do the same between parallel regions.

use std::any::Any;
use std::cell::UnsafeCell;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::*};
use std::sync::{Arc, Mutex};
use std::thread::Thread;
use std::time::{Duration, Instant};

/// How long an idle helper stays awake before it sleeps: longer than the gap between two calls
/// of a loop over chunks in Python, short enough that an idle process gives its cores back at
/// once. After the first [`BUSY_SPINS`] checks it yields the core between checks, so other
/// threads that want it (another process's, say) get it.
const SPIN: Duration = Duration::from_micros(100);
const BUSY_SPINS: u32 = 1 << 10;

/// The pieces of work of the current job, seen by every thread of the team.
type Work<'a> = dyn Fn(usize) + Sync + 'a;

thread_local! {
    /// 0 on any thread but a team's helpers, which are 1, 2, ...
    static MEMBER: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// Which member of a team the current thread is: 0 for the caller, 1.. for helpers.
pub(super) fn member() -> u32 {
    MEMBER.with(|m| m.get())
}

struct Shared {
    /// A caller holds the team (one job at a time; other callers work alone).
    busy: AtomicBool,
    /// Bumped for every job: helpers wait for it to change.
    epoch: AtomicU64,
    /// The current job takes new helpers.
    open: AtomicBool,
    /// Helpers inside the current job: the caller waits for none before it returns.
    active: AtomicUsize,
    next: AtomicUsize,
    pieces: AtomicUsize,
    /// What a piece that panicked on a helper panicked with, for the caller to re-raise.
    panicked: Mutex<Option<Box<dyn Any + Send>>>,
    /// The current job's work. Written by the caller before `epoch` is bumped, read by helpers
    /// only while they count in `active` for an open job of that epoch.
    work: UnsafeCell<Option<*const Work<'static>>>,
    sleeping: Vec<AtomicBool>,
    shutdown: AtomicBool,
}

// SAFETY: `work` is written only by the caller holding `busy` while no helper can read it (the
// job is closed and `active` is zero) and read by helpers only inside an open job; the work it
// points to is `Sync`.
unsafe impl Sync for Shared {}
unsafe impl Send for Shared {}

/// The caller's thread plus `helpers` threads.
pub(super) struct Team {
    shared: Arc<Shared>,
    threads: Vec<Thread>,
}

impl Team {
    pub(super) fn new(helpers: usize) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            busy: AtomicBool::new(false),
            epoch: AtomicU64::new(0),
            open: AtomicBool::new(false),
            active: AtomicUsize::new(0),
            next: AtomicUsize::new(0),
            pieces: AtomicUsize::new(0),
            panicked: Mutex::new(None),
            work: UnsafeCell::new(None),
            sleeping: (0..helpers).map(|_| AtomicBool::new(false)).collect(),
            shutdown: AtomicBool::new(false),
        });
        let mut team = Self {
            shared,
            threads: Vec::with_capacity(helpers),
        };
        for i in 0..helpers {
            let shared = team.shared.clone();
            // On failure `team` is dropped, which stops the helpers already started.
            let handle = std::thread::Builder::new()
                .name(format!("oxzarr-team-{i}"))
                .spawn(move || helper(&shared, i))?;
            team.threads.push(handle.thread().clone());
        }
        Ok(team)
    }

    /// Runs `work(i)` for every `i` in `0..pieces`, on this thread and any helper that joins.
    /// Returns false, having run nothing, when another caller holds the team.
    pub(super) fn run(&self, pieces: usize, work: &Work<'_>) -> bool {
        let s = &*self.shared;
        if s.busy
            .compare_exchange(false, true, Acquire, Relaxed)
            .is_err()
        {
            return false;
        }
        // SAFETY: the team is ours and no helper is inside a job, so nobody reads `work`; the
        // lifetime is erased, and `Close` below keeps every helper out of it before `run`
        // returns or unwinds.
        unsafe {
            *s.work.get() =
                Some(std::mem::transmute::<*const Work<'_>, *const Work<'static>>(work));
        }
        s.pieces.store(pieces, Relaxed);
        s.next.store(0, Relaxed);
        s.open.store(true, SeqCst);
        s.epoch.fetch_add(1, SeqCst);
        for (sleeping, thread) in s.sleeping.iter().zip(&self.threads) {
            if sleeping.load(SeqCst) {
                thread.unpark();
            }
        }
        let close = Close {
            shared: s,
            finished: false,
        };
        run_pieces(s, work);
        if let Some(payload) = close.finish() {
            resume_unwind(payload);
        }
        true
    }
}

impl Drop for Team {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, SeqCst);
        for thread in &self.threads {
            thread.unpark();
        }
    }
}

/// Closes the job, waits for the helpers inside it and frees the team for the next caller;
/// also when the caller's own piece panics (then as the caller unwinds).
struct Close<'a> {
    shared: &'a Shared,
    finished: bool,
}

impl Close<'_> {
    /// Ends the job; what a piece that panicked on a helper panicked with, if one did.
    fn finish(mut self) -> Option<Box<dyn Any + Send>> {
        self.finished = true;
        self.end()
    }

    fn end(&self) -> Option<Box<dyn Any + Send>> {
        let s = self.shared;
        s.open.store(false, SeqCst);
        // Nothing is left to claim once the caller's loop ends; when it unwinds, this stops
        // the helpers at their next piece.
        s.next.store(usize::MAX / 2, SeqCst);
        let mut spins = 0u32;
        while s.active.load(SeqCst) != 0 {
            spins += 1;
            if spins < 1 << 12 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        // SAFETY: the job is closed and no helper is inside it.
        unsafe { *s.work.get() = None };
        let panicked = s.panicked.lock().unwrap_or_else(|p| p.into_inner()).take();
        s.busy.store(false, Release);
        panicked
    }
}

impl Drop for Close<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.end();
        }
    }
}

fn run_pieces(s: &Shared, work: &Work<'_>) {
    let pieces = s.pieces.load(Relaxed);
    loop {
        let i = s.next.fetch_add(1, AcqRel);
        if i >= pieces {
            return;
        }
        work(i);
    }
}

fn helper(s: &Shared, me: usize) {
    MEMBER.with(|m| m.set(me as u32 + 1));
    let mut seen = s.epoch.load(Acquire);
    loop {
        // Wait for the next job: spin a while, then sleep until a caller wakes us.
        let mut since = Instant::now();
        let mut spins = 0u32;
        loop {
            if s.shutdown.load(Acquire) {
                return;
            }
            let epoch = s.epoch.load(Acquire);
            if epoch != seen {
                seen = epoch;
                break;
            }
            spins = spins.saturating_add(1);
            if spins < BUSY_SPINS {
                std::hint::spin_loop();
            } else if since.elapsed() < SPIN {
                std::thread::yield_now();
            } else {
                s.sleeping[me].store(true, SeqCst);
                if s.epoch.load(SeqCst) == seen && !s.shutdown.load(SeqCst) {
                    std::thread::park();
                }
                s.sleeping[me].store(false, SeqCst);
                since = Instant::now();
                spins = 0;
            }
        }
        // Count in before looking at the job, so a caller closing it waits for us.
        s.active.fetch_add(1, SeqCst);
        if s.open.load(SeqCst) && s.epoch.load(SeqCst) == seen {
            // SAFETY: the job of this epoch is open and we count in `active`, so its caller
            // has not returned and `work` points to its live work.
            if let Some(work) = unsafe { *s.work.get() } {
                let work = unsafe { &*work };
                if let Err(payload) = catch_unwind(AssertUnwindSafe(|| run_pieces(s, work))) {
                    s.next.store(usize::MAX / 2, SeqCst);
                    let mut slot = s.panicked.lock().unwrap_or_else(|p| p.into_inner());
                    slot.get_or_insert(payload);
                }
            }
        }
        s.active.fetch_sub(1, SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::sync::Mutex;

    /// Runs `pieces` pieces on `team`, or alone when it is busy, as `split` does.
    fn run_all(team: &Team, pieces: usize, work: &(dyn Fn(usize) + Sync)) {
        if !team.run(pieces, work) {
            (0..pieces).for_each(work);
        }
    }

    #[test]
    fn every_piece_runs_once_in_every_job() {
        for helpers in [1, 3] {
            let team = Team::new(helpers).unwrap();
            for pieces in [0, 1, 2, 5, 64] {
                for _ in 0..200 {
                    let counts: Vec<AtomicUsize> =
                        (0..pieces).map(|_| AtomicUsize::new(0)).collect();
                    run_all(&team, pieces, &|i| {
                        counts[i].fetch_add(1, SeqCst);
                    });
                    assert!(
                        counts.iter().all(|c| c.load(SeqCst) == 1),
                        "{helpers} {pieces}"
                    );
                }
            }
        }
    }

    #[test]
    fn helpers_take_pieces() {
        let team = Team::new(1).unwrap();
        let mut joined = false;
        // Pieces of a millisecond each: a sleeping helper wakes well within one job.
        for _ in 0..5 {
            let threads = Mutex::new(HashSet::new());
            run_all(&team, 16, &|_| {
                threads.lock().unwrap().insert(std::thread::current().id());
                let t = Instant::now();
                while t.elapsed() < Duration::from_millis(1) {
                    std::hint::spin_loop();
                }
            });
            if threads.lock().unwrap().len() > 1 {
                joined = true;
                break;
            }
        }
        assert!(joined, "no helper took part in five jobs");
    }

    #[test]
    fn a_panicking_piece_panics_the_caller_and_leaves_the_team_working() {
        let team = Team::new(2).unwrap();
        for bad in [0, 7, 15] {
            let result = catch_unwind(AssertUnwindSafe(|| {
                run_all(&team, 16, &|i| {
                    if i == bad {
                        panic!("piece {i}");
                    }
                });
            }));
            // The piece's own panic, whichever thread ran it.
            let payload = result.unwrap_err();
            assert_eq!(
                payload.downcast_ref::<String>(),
                Some(&format!("piece {bad}"))
            );
            let done = AtomicUsize::new(0);
            run_all(&team, 16, &|_| {
                done.fetch_add(1, SeqCst);
            });
            assert_eq!(done.load(SeqCst), 16);
        }
    }

    #[test]
    fn concurrent_callers_share_the_team() {
        let team = Team::new(1).unwrap();
        std::thread::scope(|scope| {
            for _ in 0..3 {
                scope.spawn(|| {
                    for _ in 0..500 {
                        let counts: Vec<AtomicUsize> =
                            (0..8).map(|_| AtomicUsize::new(0)).collect();
                        run_all(&team, 8, &|i| {
                            counts[i].fetch_add(1, SeqCst);
                        });
                        assert!(counts.iter().all(|c| c.load(SeqCst) == 1));
                    }
                });
            }
        });
    }
}
