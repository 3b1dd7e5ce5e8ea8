//! The local filesystem: a store key is a path relative to the store's root directory.

use std::cell::RefCell;
use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::Arc;

use super::{
    same_version, validate_key, validate_prefix, ByteRange, ListDir, ListableStore, PartsRead,
    ReadableStore, Store, Version, WritableStore,
};
use crate::concurrency::ForkSafeMutex;
use crate::error::StorageError;
use crate::metadata::v2::{ZARRAY, ZGROUP};
use crate::metadata::ZARR_JSON;

/// Temporary files of unfinished writes end in this; listings skip them (see
/// [`is_temporary`]).
const TMP_SUFFIX: &str = ".oxzarr-tmp";

/// Whether `name` is one of [`FilesystemStore::put`]'s temporary files,
/// `.{name}.{pid}-{number}.oxzarr-tmp` (see [`temporary_number`]; older versions counted
/// instead, in the same digits): only those are left out of listings, so that a node a user
/// named `x.oxzarr-tmp` is listed, as zarr-python lists it.
fn is_temporary(name: &str) -> bool {
    let Some(inner) = name
        .strip_prefix('.')
        .and_then(|n| n.strip_suffix(TMP_SUFFIX))
    else {
        return false;
    };
    let Some((_, writer)) = inner.rsplit_once('.') else {
        return false;
    };
    writer.split_once('-').is_some_and(|(pid, counter)| {
        [pid, counter]
            .iter()
            .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    })
}

/// Reads straight into the caller's buffer (uncompressed chunks into the output) at least this
/// large are split into pieces of [`READ_PIECE`] read on several threads: one core copies out
/// of the kernel's page cache at well under what two do (measured: 512 KiB files in 32 µs each
/// on one thread, 20 µs on two). Values read to be decoded are not split (see `get_into`).
const PARALLEL_READ_BYTES: usize = 256 << 10;
const READ_PIECE: usize = 128 << 10;

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// The number naming a temporary file, beside the process id: random, so that writers with
/// the same process id pick different names. A count alone was not enough: processes in
/// different PID namespaces sharing a directory (two containers on one volume, each writer
/// process 1 in its own) counted alike. std's `RandomState` is seeded from the system's
/// random source; the count, the time and the thread keep numbers apart within a process.
fn temporary_number() -> u64 {
    use std::hash::{BuildHasher, Hash, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    TMP_COUNTER
        .fetch_add(1, Ordering::Relaxed)
        .hash(&mut hasher);
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|since| since.as_nanos())
        .unwrap_or_default()
        .hash(&mut hasher);
    std::thread::current().id().hash(&mut hasher);
    hasher.finish()
}

/// Creates a temporary file in `dir` for the key named `name`, named with numbers from
/// `number`, and returns it open with its path (`dir` is made if missing). Created new
/// (`O_EXCL`): a file already at the name is another writer's and is left alone for another
/// name. Opened truncating, two writers that picked one name wrote into one file: the first
/// linked it to the key, the second went on writing into it and left the key torn.
fn create_temporary(
    dir: &Path,
    name: &str,
    mut number: impl FnMut() -> u64,
) -> std::io::Result<(fs::File, PathBuf)> {
    let mut made_dir = false;
    let mut taken = 0;
    loop {
        let tmp = dir.join(format!(
            ".{name}.{}-{}{TMP_SUFFIX}",
            std::process::id(),
            number()
        ));
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
        {
            Ok(file) => return Ok((file, tmp)),
            Err(e) if e.kind() == ErrorKind::NotFound && !made_dir => {
                fs::create_dir_all(dir)?;
                made_dir = true;
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists && taken < 100 => taken += 1,
            Err(e) => return Err(e),
        }
    }
}

/// A store in a directory of the local filesystem.
#[derive(Debug, Clone)]
pub struct FilesystemStore {
    root: PathBuf,
    /// The root's canonical path, as `file://` URL: see [`canonical_root`].
    namespace: String,
    waits: Arc<DeviceWaits>,
}

/// What reads learn about the page cache, shared by clones of a store.
#[derive(Debug, Default)]
struct DeviceWaits {
    /// Reads that found bytes outside the page cache ([`ReadableStore::device_waits`]).
    count: AtomicU64,
    /// Set when the kernel or filesystem refuses `RWF_NOWAIT`: reads then skip the probe.
    no_probe: AtomicBool,
}

/// The canonical path of `root` (symbolic links, `.` and `..` resolved), by which every handle
/// on one directory, however its path was spelled, shares caches and write claims. A root not
/// created yet is named by its nearest existing ancestor's canonical path and the rest as
/// given; failing that, `root` itself.
fn canonical_root(root: &Path) -> PathBuf {
    let mut existing = root;
    let mut rest = Vec::new();
    loop {
        if let Ok(mut canonical) = fs::canonicalize(existing) {
            canonical.extend(rest.iter().rev());
            return canonical;
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name);
                existing = parent;
            }
            _ => return root.to_path_buf(),
        }
    }
}

impl FilesystemStore {
    /// A store rooted at `root`. The directory is created on the first write. A relative root
    /// is made absolute now, so that the store stays where it was opened if the process
    /// changes its working directory.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        let root = std::path::absolute(&root).unwrap_or(root);
        Self {
            namespace: format!("file://{}", canonical_root(&root).display()),
            root,
            waits: Arc::default(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, key: &str) -> Result<PathBuf, StorageError> {
        validate_key(key)?;
        Ok(self.root.join(key))
    }

    fn prefix_path(&self, prefix: &str) -> Result<PathBuf, StorageError> {
        validate_prefix(prefix)?;
        Ok(self.root.join(prefix.trim_end_matches('/')))
    }

    fn io_error(path: &Path, source: std::io::Error) -> StorageError {
        StorageError::Io {
            key: path.display().to_string(),
            source,
        }
    }

    /// Opens a file for reading; `None` if it does not exist (or a parent is not a directory,
    /// which also means there is no such key). Opened without blocking, so that a FIFO in
    /// place of a value cannot hang the read (`O_NONBLOCK` changes nothing for regular
    /// files); callers check what they opened with [`Self::regular`].
    fn open(&self, key: &str) -> Result<Option<(fs::File, PathBuf)>, StorageError> {
        use std::os::unix::fs::OpenOptionsExt;
        let path = self.path(key)?;
        let opened = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&path);
        match opened {
            Ok(f) => Ok(Some((f, path))),
            Err(e) if is_missing(&e) => Ok(None),
            Err(e) => Err(Self::io_error(&path, e)),
        }
    }

    /// The metadata of an opened value: `None` for a directory (not a value: a prefix of
    /// others), an error for anything else that is not a regular file (a FIFO, a socket, a
    /// device), which reads could block on or never finish.
    fn regular(file: &fs::File, path: &Path) -> Result<Option<fs::Metadata>, StorageError> {
        let meta = file.metadata().map_err(|e| Self::io_error(path, e))?;
        if meta.is_dir() {
            return Ok(None);
        }
        if !meta.is_file() {
            return Err(Self::io_error(
                path,
                std::io::Error::new(ErrorKind::InvalidInput, "not a regular file"),
            ));
        }
        // `O_NONBLOCK` stays set: Linux ignores it for reads of regular files, and clearing
        // it is one more system call per read (0.5-1 us here, 5-10% of a point read).
        Ok(Some(meta))
    }

    /// The byte ranges of the file at `key` and its version, from one open and one `statx`.
    fn ranges_and_version(
        &self,
        key: &str,
        ranges: &[ByteRange],
    ) -> Result<Option<RangesAndVersion>, StorageError> {
        let Some((file, path)) = self.open(key)? else {
            return Ok(None);
        };
        let Some(meta) = Self::regular(&file, &path)? else {
            return Ok(None);
        };
        let size = meta.len();
        let mut out = Vec::with_capacity(ranges.len());
        for range in ranges {
            let r = range
                .to_range(size)
                .ok_or_else(|| StorageError::out_of_range(key, *range, size))?;
            let len = (r.end - r.start) as usize;
            let mut buf = crate::alloc::zeroed(len).map_err(|_| StorageError::OutOfMemory {
                key: key.to_string(),
                bytes: len as u64,
            })?;
            // SAFETY: `buf` holds `len` bytes.
            let read = unsafe { pread_full(&file, buf.as_mut_ptr(), len, r.start, &self.waits) }
                .map_err(|e| Self::io_error(&path, e))?;
            if read != len {
                // The file shrank since its size was taken.
                return Err(Self::io_error(&path, ErrorKind::UnexpectedEof.into()));
            }
            out.push(buf);
        }
        Ok(Some((out, version_of(&meta))))
    }
}

/// Byte ranges read from a value, and the value's version.
type RangesAndVersion = (Vec<Vec<u8>>, Version);

/// A file's version: its size, and a tag of its device, inode and modification time. Values
/// are replaced by renaming a new file into place (a new inode); writers of other libraries
/// that rewrite a file in place change its modification time.
fn version_of(meta: &fs::Metadata) -> Version {
    use std::hash::{Hash, Hasher};
    use std::os::unix::fs::MetadataExt;
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (meta.dev(), meta.ino(), meta.mtime(), meta.mtime_nsec()).hash(&mut hasher);
    Version {
        size: meta.len(),
        tag: Some(hasher.finish()),
        exact: true,
    }
}

fn is_missing(e: &std::io::Error) -> bool {
    matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory)
}

impl ReadableStore for FilesystemStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let mut buf = Vec::new();
        Ok(self.get_into(key, &mut buf, false)?.then_some(buf))
    }

    fn get_into(
        &self,
        key: &str,
        buf: &mut Vec<u8>,
        decoded_in_parallel: bool,
    ) -> Result<bool, StorageError> {
        let Some((mut file, path)) = self.open(key)? else {
            return Ok(false);
        };
        buf.clear();
        let Some(meta) = Self::regular(&file, &path)? else {
            return Ok(false);
        };
        let size = usize::try_from(meta.len()).unwrap_or(usize::MAX);
        if crate::alloc::reserve(buf, size).is_err() {
            return Err(StorageError::OutOfMemory {
                key: key.to_string(),
                bytes: meta.len(),
            });
        }
        let spare = buf.spare_capacity_mut().as_mut_ptr();
        // A value decoded on this thread alone is read on it in one piece: pieces another
        // core copied would sit in that core's cache (a zstd chunk read alone was 5% slower
        // so). One whose decoding is split between threads (blosc's blocks) is read in pieces
        // on them too: the calling thread no longer copies it all while the others wait.
        // SAFETY: the spare capacity holds `size` bytes.
        let read = unsafe {
            match decoded_in_parallel {
                true => read_in_pieces(&file, spare.cast(), size, 0, &self.waits),
                false => pread_full(&file, spare.cast(), size, 0, &self.waits),
            }
        }
        .map_err(|e| Self::io_error(&path, e))?;
        // Nothing past `size`, or the file grew under us.
        let mut past = [0u8; 1];
        let grew = file
            .read_at(&mut past, size as u64)
            .map_err(|e| Self::io_error(&path, e))?
            > 0;
        if read == size && !grew {
            // SAFETY: every one of the `size` bytes was written by the reads.
            unsafe { buf.set_len(size) };
            return Ok(true);
        }
        // The file changed size under us: read whatever it holds now.
        buf.clear();
        file.read_to_end(buf)
            .map_err(|e| Self::io_error(&path, e))?;
        Ok(true)
    }

    fn get_ranges(
        &self,
        key: &str,
        ranges: &[ByteRange],
    ) -> Result<Option<Vec<Vec<u8>>>, StorageError> {
        Ok(self
            .ranges_and_version(key, ranges)?
            .map(|(parts, _)| parts))
    }

    fn get_range_and_version(
        &self,
        key: &str,
        range: ByteRange,
    ) -> Result<Option<(Vec<u8>, Version)>, StorageError> {
        let got = self.ranges_and_version(key, &[range])?;
        Ok(got.and_then(|(mut parts, version)| Some((parts.pop()?, version))))
    }

    fn read_parts_into(
        &self,
        key: &str,
        parts: &mut [(u64, &mut [u8])],
        expected: Option<Version>,
    ) -> Result<PartsRead, StorageError> {
        let Some((file, path)) = self.open(key)? else {
            return Ok(PartsRead::Missing);
        };
        let Some(meta) = Self::regular(&file, &path)? else {
            return Ok(PartsRead::Missing);
        };
        if let Some(expected) = expected {
            // Checked on the open file, the one read below: a replacement renamed into place
            // after this point is not read from.
            let found = same_version(expected, version_of(&meta));
            if found != PartsRead::Done {
                return Ok(found);
            }
        }
        // One part (a whole chunk) is read with the probe that tells whether reads wait for
        // the device; scattered rows, a read of part of a chunk, are not.
        let read = match parts {
            [(offset, buf)] => {
                let len = buf.len();
                // SAFETY: `buf` is an exclusively borrowed buffer of `len` bytes.
                unsafe { read_in_pieces(&file, buf.as_mut_ptr(), len, *offset, &self.waits) }
                    .and_then(|n| {
                        if n == len {
                            Ok(())
                        } else {
                            Err(ErrorKind::UnexpectedEof.into())
                        }
                    })
            }
            _ => read_scattered(&file, parts),
        };
        read.map_err(|e| {
            if e.kind() == ErrorKind::UnexpectedEof {
                // What the parts span: worked out only here, off the path of reads that work.
                let start = parts.iter().map(|p| p.0).min().unwrap_or(0);
                let end = parts.iter().map(|p| p.0 + p.1.len() as u64).max();
                let range = ByteRange::FromStart {
                    offset: start,
                    length: Some(end.unwrap_or(start) - start),
                };
                let size = file.metadata().map(|m| m.len()).unwrap_or(0);
                StorageError::out_of_range(key, range, size)
            } else {
                Self::io_error(&path, e)
            }
        })?;
        Ok(PartsRead::Done)
    }

    fn size(&self, key: &str) -> Result<Option<u64>, StorageError> {
        let path = self.path(key)?;
        match fs::metadata(&path) {
            Ok(m) if m.is_file() => Ok(Some(m.len())),
            Ok(_) => Ok(None),
            Err(e) if is_missing(&e) => Ok(None),
            Err(e) => Err(Self::io_error(&path, e)),
        }
    }

    fn version(&self, key: &str) -> Result<Option<Version>, StorageError> {
        let path = self.path(key)?;
        match fs::metadata(&path) {
            Ok(m) if m.is_file() => Ok(Some(version_of(&m))),
            Ok(_) => Ok(None),
            Err(e) if is_missing(&e) => Ok(None),
            Err(e) => Err(Self::io_error(&path, e)),
        }
    }

    /// Has the kernel read the file into its page cache in the background, from the
    /// [`prefetch_thread`].
    fn prefetch(&self, key: &str) {
        if let Ok(path) = self.path(key) {
            prefetch_thread(path);
        }
    }

    fn device_waits(&self) -> u64 {
        self.waits.count.load(Ordering::Relaxed)
    }
}

/// Hints that `path` will be read soon: one background thread opens hinted files and asks the
/// kernel to read them ahead (`POSIX_FADV_WILLNEED`). Opening a file whose inode is not cached
/// waits for the device, and submitting the readahead takes tens of microseconds (about 100 µs
/// a 512 KiB file here), which the threads decoding chunks should not pay. Hints are dropped
/// when the queue is full or the thread could not start, and failures to open are left for the
/// read that follows to report. A forked child starts a thread of its own.
fn prefetch_thread(path: PathBuf) {
    /// Hints waiting for the thread; more are dropped.
    const QUEUE: usize = 256;
    #[derive(Default)]
    enum Prefetcher {
        #[default]
        NotStarted,
        Running(SyncSender<PathBuf>),
        /// The thread could not start: not tried again in this process.
        Failed,
    }
    static HINTS: ForkSafeMutex<Prefetcher> = ForkSafeMutex::new(Prefetcher::NotStarted);
    let mut hints = HINTS.lock();
    if let Prefetcher::NotStarted = *hints {
        let (send, receive) = std::sync::mpsc::sync_channel::<PathBuf>(QUEUE);
        let started = std::thread::Builder::new()
            .name("oxzarr-prefetch".into())
            .spawn(move || {
                for path in receive {
                    will_need(&path);
                }
            });
        *hints = match started {
            Ok(_) => Prefetcher::Running(send),
            Err(_) => Prefetcher::Failed,
        };
    }
    if let Prefetcher::Running(send) = &*hints {
        let _ = send.try_send(path);
    }
}

/// `POSIX_FADV_WILLNEED` on the whole of the regular file at `path`, if it opens. Anything else
/// at a chunk's path (a FIFO, a device) is left alone: opening it could block the thread or
/// have effects of its own. Linux reads ahead at most the larger of the device's largest
/// request and its readahead window per call (4 MiB here), so a file larger than that (a
/// shard) is advised in steps of 2 MiB, the kernel's own unit: one advice for a whole 18 MiB
/// shard fetched its first 4 MiB.
fn will_need(path: &Path) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        use std::os::unix::fs::OpenOptionsExt;
        const ADVICE_STEP: u64 = 2 << 20;
        let size = match fs::metadata(path) {
            Ok(m) if m.is_file() => m.len(),
            _ => return,
        };
        let Ok(file) = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
        else {
            return;
        };
        let mut offset = 0u64;
        while offset < size {
            let (Ok(at), Ok(len)) = (
                libc::off_t::try_from(offset),
                libc::off_t::try_from(ADVICE_STEP.min(size - offset)),
            ) else {
                break;
            };
            // SAFETY: an advice call on a descriptor that stays open across it.
            unsafe { libc::posix_fadvise(file.as_raw_fd(), at, len, libc::POSIX_FADV_WILLNEED) };
            offset += ADVICE_STEP;
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = path;
}

/// Reads `len` bytes of `file` from `offset` into `dst`: from [`PARALLEL_READ_BYTES`] on, in
/// pieces on several threads ([`crate::concurrency::split`]), else in one [`pread_full`].
/// Returns how many bytes were read: fewer than `len` only if the file ends before
/// `offset + len`.
///
/// # Safety
/// `dst` must be valid for writes of `len` bytes, and not read or written by anything else
/// during the call.
unsafe fn read_in_pieces(
    file: &fs::File,
    dst: *mut u8,
    len: usize,
    offset: u64,
    waits: &DeviceWaits,
) -> std::io::Result<usize> {
    if len < PARALLEL_READ_BYTES {
        // SAFETY: the caller's buffer of `len` bytes.
        return unsafe { pread_full(file, dst, len, offset, waits) };
    }
    let dst = dst as usize;
    let read = std::sync::atomic::AtomicUsize::new(0);
    crate::concurrency::split(len.div_ceil(READ_PIECE), |i| {
        let start = i * READ_PIECE;
        let n = READ_PIECE.min(len - start);
        // SAFETY: pieces are disjoint ranges of the caller's buffer.
        let got = unsafe {
            pread_full(
                file,
                (dst + start) as *mut u8,
                n,
                offset + start as u64,
                waits,
            )
        }?;
        read.fetch_add(got, Ordering::Relaxed);
        Ok::<(), std::io::Error>(())
    })?;
    Ok(read.load(Ordering::Relaxed))
}

/// `pread` until `n` bytes are read or the file ends; returns how many were read.
///
/// The first read asks not to wait for the device (`RWF_NOWAIT`): with the bytes in the page
/// cache it is the same single read, and otherwise it fails at once, which is how the store
/// learns that its reads wait ([`DeviceWaits`]); the rest of the read then waits as usual.
///
/// # Safety
/// `dst` must be valid for writes of `n` bytes.
unsafe fn pread_full(
    file: &fs::File,
    dst: *mut u8,
    n: usize,
    offset: u64,
    waits: &DeviceWaits,
) -> std::io::Result<usize> {
    use std::os::fd::AsRawFd;
    let fd = file.as_raw_fd();
    let mut probe = cfg!(target_os = "linux") && !waits.no_probe.load(Ordering::Relaxed);
    let bounce = n >= BOUNCE_FROM && short_distance(dst as usize, offset);
    let mut done = 0usize;
    while done < n {
        // SAFETY: writes stay within the caller's `n` bytes.
        let (at, len) = (unsafe { dst.add(done) }, n - done);
        let pos = offset + done as u64;
        let r = if bounce {
            // SAFETY: `at` is valid for writes of `len` bytes.
            unsafe { read_bounced(fd, at, len, pos, probe) }
        } else {
            // SAFETY: `at` is valid for writes of `len` bytes.
            unsafe { read_at(fd, at, len, pos, probe) }
        };
        if r < 0 {
            let err = std::io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EINTR) => {}
                Some(libc::EAGAIN) if probe => {
                    waits.count.fetch_add(1, Ordering::Relaxed);
                    probe = false;
                }
                Some(libc::EOPNOTSUPP | libc::ENOSYS) if probe => {
                    waits.no_probe.store(true, Ordering::Relaxed);
                    probe = false;
                }
                // Any other failure is reported by the same read without the probe.
                _ if probe => probe = false,
                _ => return Err(err),
            }
            continue;
        }
        if r == 0 {
            // Only a waiting read's 0 is the end of the file: Linux 5.8 to 5.10 also return 0
            // to a probe that reaches a cached page marked for readahead.
            if probe {
                probe = false;
                continue;
            }
            break;
        }
        done += r as usize;
    }
    Ok(done)
}

/// Reads of at least this many bytes into a destination at a short distance past the source
/// go through [`read_bounced`]; below it the slowdown costs less than a second copy.
const BOUNCE_FROM: usize = 16 << 10;

/// How many bytes the bounce buffer of [`read_bounced`] takes at a time.
const BOUNCE_BYTES: usize = 128 << 10;

/// Whether the kernel's copy of a read at file offset `offset` into `dst` runs slow: the
/// destination 1 to 63 bytes past the source, modulo 4 KiB (the page cache's pages are 4 KiB
/// aligned, so the source sits at the offset's place in its page). On this project's AMD
/// machine such a copy (`rep movsb`) runs at a quarter to a third of its speed, and numpy's
/// large arrays start 16 bytes past a page boundary when glibc maps them on their own:
/// reading chunks into one reused `out=` array of 512 KiB took 97–125 ms for 512 chunks,
/// against 30–32 ms at a distance of 0, 32 or 2048 bytes. Measured on x86-64 only, so only
/// there is the copy avoided.
fn short_distance(dst: usize, offset: u64) -> bool {
    let distance = dst.wrapping_sub(offset as usize) % 4096;
    cfg!(target_arch = "x86_64") && (1..64).contains(&distance)
}

thread_local! {
    /// [`read_bounced`]'s buffer, a page longer than a piece so that a piece can start at any
    /// place in a page.
    static BOUNCE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// [`read_at`] through a buffer of this thread for a destination at a short distance
/// ([`short_distance`]): at most [`BOUNCE_BYTES`] are read into the buffer half a page past
/// the source, then copied to `dst`, at a distance of half a page plus the short one. Both
/// copies run at full speed, and together take a third of the time of the slow one.
///
/// # Safety
/// `dst` must be valid for writes of `len` bytes.
unsafe fn read_bounced(fd: libc::c_int, dst: *mut u8, len: usize, pos: u64, probe: bool) -> isize {
    let len = len.min(BOUNCE_BYTES);
    let bounced = BOUNCE.try_with(|bounce| {
        // Not reentered (nothing here reads through a store); should it be, or should the
        // thread's buffer be gone (the thread ending), the read goes straight to `dst`.
        let Ok(mut bounce) = bounce.try_borrow_mut() else {
            return None;
        };
        if bounce.len() < BOUNCE_BYTES + 4096 {
            bounce.resize(BOUNCE_BYTES + 4096, 0);
        }
        let base = bounce.as_mut_ptr() as usize;
        let start = (pos as usize).wrapping_add(2048).wrapping_sub(base) % 4096;
        let buf = &mut bounce[start..start + len];
        // SAFETY: `buf` holds `len` bytes.
        let r = unsafe { read_at(fd, buf.as_mut_ptr(), len, pos, probe) };
        if r > 0 {
            // SAFETY: the read wrote `r` bytes of `buf`; the caller's `dst` holds `len` and is
            // not the thread's buffer.
            unsafe { std::ptr::copy_nonoverlapping(buf.as_ptr(), dst, r as usize) };
        }
        Some(r)
    });
    match bounced {
        Ok(Some(r)) => r,
        // SAFETY: `dst` is valid for writes of `len` bytes.
        _ => unsafe { read_at(fd, dst, len, pos, probe) },
    }
}

/// One positioned read; with `probe`, one that does not wait for the device
/// (`preadv2(RWF_NOWAIT)`: it reads what the page cache holds from `pos` on, or fails with
/// `EAGAIN`). The system call is made directly rather than through libc's `preadv2`, which
/// glibc only has from 2.26 on: wheels built against an older glibc could not load.
///
/// # Safety
/// `dst` must be valid for writes of `len` bytes.
#[cfg(target_os = "linux")]
unsafe fn read_at(fd: libc::c_int, dst: *mut u8, len: usize, pos: u64, probe: bool) -> isize {
    if !probe {
        // SAFETY: the caller's buffer of `len` bytes.
        return unsafe { libc::pread(fd, dst.cast(), len, pos as libc::off_t) };
    }
    let iov = libc::iovec {
        iov_base: dst.cast(),
        iov_len: len,
    };
    // The offset goes in two halves, the high one empty on 64-bit targets.
    #[cfg(target_pointer_width = "64")]
    let (low, high) = (pos as libc::c_long, 0 as libc::c_long);
    #[cfg(not(target_pointer_width = "64"))]
    let (low, high) = (
        (pos & 0xffff_ffff) as libc::c_long,
        (pos >> 32) as libc::c_long,
    );
    // SAFETY: one iovec over the caller's buffer.
    unsafe { libc::syscall(libc::SYS_preadv2, fd, &iov, 1, low, high, libc::RWF_NOWAIT) as isize }
}

/// Elsewhere there is no `RWF_NOWAIT`: a plain `pread` (so reads never count a wait).
///
/// # Safety
/// `dst` must be valid for writes of `len` bytes.
#[cfg(not(target_os = "linux"))]
unsafe fn read_at(fd: libc::c_int, dst: *mut u8, len: usize, pos: u64, _probe: bool) -> isize {
    // SAFETY: the caller's buffer of `len` bytes.
    unsafe { libc::pread(fd, dst.cast(), len, pos as libc::off_t) }
}

/// Parts of a scattered read at most this far apart are read by one `preadv`, the bytes
/// between them into a sink ([`read_scattered`]).
const MAX_GAP: usize = 16 << 10;

thread_local! {
    /// Where [`read_scattered`] puts the bytes between parts.
    static GAP_SINK: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Reads each part `(offset, buf)` of `file`. A run of parts in file order, each at most
/// [`MAX_GAP`] bytes past the one before, is read by one `preadv`, the gaps into a sink: a
/// small box of an uncompressed chunk is many short rows a short way apart, and a call per
/// row cost more than copying the bytes between them (measured, 500 boxes in 64³ uint16
/// chunks: an 8³ box in 22-34 µs against 52-70 µs, a 16³ box in 49-59 against 182-240; with
/// at most 4 KiB gaps 31-37 and 66-81 µs, with 64 KiB no better than 16).
fn read_scattered(file: &fs::File, parts: &mut [(u64, &mut [u8])]) -> std::io::Result<()> {
    crate::scratch::with(&GAP_SINK, |sink| read_scattered_with(file, parts, sink))
}

fn read_scattered_with(
    file: &fs::File,
    parts: &mut [(u64, &mut [u8])],
    sink: &mut Vec<u8>,
) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // The most buffers one preadv takes (IOV_MAX on Linux).
    const MAX_IOV: usize = 1024;
    let mut i = 0;
    while i < parts.len() {
        // A run of parts in file order, each at most [`MAX_GAP`] bytes past the one before (a
        // part before the end of the last, as in a read with a negative step, starts a run).
        let start = parts[i].0;
        let mut end = start + parts[i].1.len() as u64;
        let mut iovs = 1;
        let mut j = i + 1;
        while j < parts.len() {
            let Some(gap) = parts[j].0.checked_sub(end) else {
                break;
            };
            let needed = iovs + usize::from(gap > 0) + 1;
            if gap > MAX_GAP as u64 || needed > MAX_IOV {
                break;
            }
            iovs = needed;
            end = parts[j].0 + parts[j].1.len() as u64;
            j += 1;
        }
        if j == i + 1 {
            file.read_exact_at(parts[i].1, start)?;
            i = j;
            continue;
        }
        if iovs > j - i && sink.len() < MAX_GAP {
            sink.resize(MAX_GAP, 0);
        }
        let mut iov: Vec<libc::iovec> = Vec::with_capacity(iovs);
        let mut at = start;
        for (offset, buf) in parts[i..j].iter_mut() {
            if *offset > at {
                // The gap's bytes go to the sink (every gap's into the same bytes).
                iov.push(libc::iovec {
                    iov_base: sink.as_mut_ptr().cast(),
                    iov_len: (*offset - at) as usize,
                });
            }
            iov.push(libc::iovec {
                iov_base: buf.as_mut_ptr().cast(),
                iov_len: buf.len(),
            });
            at = *offset + buf.len() as u64;
        }
        let mut offset = start;
        let mut first = 0usize;
        while first < iov.len() {
            // SAFETY: every iovec points into a live, exclusively borrowed buffer of its
            // length, or into `sink` (no gap is longer than it); the count is at
            // most IOV_MAX.
            let n = unsafe {
                libc::preadv(
                    file.as_raw_fd(),
                    iov[first..].as_ptr(),
                    (iov.len() - first) as libc::c_int,
                    offset as libc::off_t,
                )
            };
            if n < 0 {
                let err = std::io::Error::last_os_error();
                if err.kind() == ErrorKind::Interrupted {
                    continue;
                }
                return Err(err);
            }
            if n == 0 {
                return Err(ErrorKind::UnexpectedEof.into());
            }
            // Skip what was read: whole buffers, then part of the next one.
            let mut left = n as usize;
            offset += n as u64;
            while left > 0 && first < iov.len() {
                if left >= iov[first].iov_len {
                    left -= iov[first].iov_len;
                    first += 1;
                } else {
                    // SAFETY: advancing within the same buffer.
                    iov[first].iov_base =
                        unsafe { iov[first].iov_base.cast::<u8>().add(left) }.cast();
                    iov[first].iov_len -= left;
                    left = 0;
                }
            }
        }
        i = j;
    }
    Ok(())
}

/// Writes every byte of `parts`, in order, with as few `writev` calls as the kernel allows.
fn write_all_vectored(f: &mut fs::File, parts: &[&[u8]]) -> std::io::Result<()> {
    let mut slices: Vec<std::io::IoSlice<'_>> = parts
        .iter()
        .filter(|p| !p.is_empty())
        .map(|p| std::io::IoSlice::new(p))
        .collect();
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        // writev takes at most IOV_MAX (1024 on Linux) buffers at a time.
        let n = rest.len().min(1024);
        match f.write_vectored(&rest[..n]) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(written) => std::io::IoSlice::advance_slices(&mut rest, written),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Whether `path` is a directory holding a node's metadata document.
fn is_node_directory(path: &Path) -> bool {
    [ZARR_JSON, ZARRAY, ZGROUP]
        .iter()
        .any(|key| path.join(key).is_file())
}

/// Gives the written file `tmp` the name `path` unless that name is taken, and says whether
/// it did: a hard link, which fails on a taken name, so that of two writers (of any process)
/// the first wins. `tmp` keeps its own name too.
fn place_new(tmp: &Path, path: &Path) -> std::io::Result<bool> {
    match fs::hard_link(tmp, path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => match fs::metadata(path) {
            // A directory holds the name, which no value can take: said as it is (it read as
            // a node another writer had just made).
            Ok(found) if found.is_dir() => Err(std::io::Error::from_raw_os_error(libc::EISDIR)),
            Ok(_) => Ok(false),
            // A symbolic link leading nowhere holds the name but no value: replaced, as
            // zarr-python's rename replaces it.
            Err(e)
                if is_missing(&e)
                    && fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) =>
            {
                fs::rename(tmp, path).map(|()| true)
            }
            Err(e) => Err(e),
        },
        // A file system without hard links (some network and FUSE ones): checked, then
        // renamed, under the process's lock.
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::Unsupported | ErrorKind::PermissionDenied
            ) =>
        {
            static CREATING: ForkSafeMutex<()> = ForkSafeMutex::new(());
            let _held = CREATING.lock();
            match fs::symlink_metadata(path) {
                Ok(_) => Ok(false),
                Err(e) if is_missing(&e) => fs::rename(tmp, path).map(|()| true),
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
    }
}

/// How a written temporary file takes the key's place.
#[derive(Clone, Copy, PartialEq)]
enum Placing {
    /// Renamed over whatever is there.
    Replace,
    /// Linked to the key's name, which fails if the name is taken: the one of two writers
    /// that links first wins, across processes too.
    CreateNew,
}

impl FilesystemStore {
    /// Writes `parts` to a temporary file in the key's directory, then puts it in the key's
    /// place (see [`WritableStore::set`] and [`Placing`]). Returns whether it took the place
    /// (always, when replacing) and, with `want_version`, the version written.
    fn put(
        &self,
        key: &str,
        parts: &[&[u8]],
        want_version: bool,
        placing: Placing,
    ) -> Result<(bool, Option<Version>), StorageError> {
        let path = self.path(key)?;
        let dir = path.parent().unwrap_or(&self.root);
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let write = || -> std::io::Result<(bool, Option<Version>)> {
            let (mut f, tmp) = create_temporary(dir, &name, temporary_number)?;
            // The renamed file keeps this device, inode and modification time: the version a
            // later read of the key finds.
            let written = write_all_vectored(&mut f, parts).and_then(|()| match want_version {
                true => f.metadata().map(|meta| Some(version_of(&meta))),
                false => Ok(None),
            });
            drop(f);
            let placed = written.and_then(|version| {
                let placed = match placing {
                    Placing::Replace => fs::rename(&tmp, &path).map(|()| true),
                    Placing::CreateNew => place_new(&tmp, &path),
                };
                placed.map(|placed| (placed, version))
            });
            // The temporary name, unless a rename took it: a link's other name, or what a
            // failed write left. Only this writer's file is removed: one created elsewhere
            // at a name picked here is never opened (see `create_temporary`).
            if placing == Placing::CreateNew || placed.is_err() {
                let _ = fs::remove_file(&tmp);
            }
            placed
        };
        // A directory removed by another writer (a node replaced meanwhile) while this one
        // made it (AlreadyExists, from `create_dir_all` finding it gone again) or before the
        // file took its place (NotFound) is made again, several times, each time with a new
        // temporary file.
        let mut attempts = 0;
        loop {
            attempts += 1;
            match write() {
                Ok(done) => return Ok(done),
                Err(e) => {
                    let transient =
                        matches!(e.kind(), ErrorKind::NotFound | ErrorKind::AlreadyExists);
                    if attempts >= 10 || !transient {
                        return Err(Self::io_error(&path, e));
                    }
                    std::thread::yield_now();
                }
            }
        }
    }
}

impl WritableStore for FilesystemStore {
    /// Writes to a temporary file in the same directory, then renames it over the key: a
    /// crash or kill part-way leaves the old value (or none), never a torn one.
    fn set(&self, key: &str, value: &[u8]) -> Result<(), StorageError> {
        self.put(key, &[value], false, Placing::Replace).map(drop)
    }

    fn set_parts(&self, key: &str, parts: &[&[u8]]) -> Result<Option<Version>, StorageError> {
        self.put(key, parts, true, Placing::Replace)
            .map(|(_, version)| version)
    }

    fn delete(&self, key: &str) -> Result<(), StorageError> {
        let path = self.path(key)?;
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if is_missing(&e) => Ok(()),
            Err(e) => Err(Self::io_error(&path, e)),
        }
    }

    fn delete_prefix(&self, prefix: &str) -> Result<(), StorageError> {
        let path = self.prefix_path(prefix)?;
        if prefix.is_empty() {
            // The root itself stays: it may be a directory the user made.
            let entries = match fs::read_dir(&path) {
                Ok(entries) => entries,
                Err(e) if is_missing(&e) => return Ok(()),
                Err(e) => return Err(Self::io_error(&path, e)),
            };
            for entry in entries {
                let entry = entry.map_err(|e| Self::io_error(&path, e))?;
                let p = entry.path();
                let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
                let res = if is_dir {
                    fs::remove_dir_all(&p)
                } else {
                    fs::remove_file(&p)
                };
                res.map_err(|e| Self::io_error(&p, e))?;
            }
            return Ok(());
        }
        // A writer putting a file below meanwhile (another thread replacing the same node)
        // makes a directory non-empty again after its files went: tried a few times.
        let mut attempts = 0;
        loop {
            attempts += 1;
            match fs::remove_dir_all(&path) {
                Ok(()) => return Ok(()),
                Err(e) if is_missing(&e) => return Ok(()),
                Err(e) if e.kind() == ErrorKind::DirectoryNotEmpty && attempts < 20 => {
                    std::thread::yield_now();
                }
                Err(e) => return Err(Self::io_error(&path, e)),
            }
        }
    }
}

impl ListableStore for FilesystemStore {
    fn list_prefix(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        let dir = self.prefix_path(prefix)?;
        let mut keys = Vec::new();
        let mut stack = vec![(dir, prefix.to_string())];
        while let Some((dir, prefix)) = stack.pop() {
            let listed = self.list_dir_at(&dir, &prefix)?;
            keys.extend(listed.keys);
            for p in listed.prefixes {
                let sub = self.root.join(p.trim_end_matches('/'));
                stack.push((sub, p));
            }
        }
        keys.sort();
        Ok(keys)
    }

    fn list_dir(&self, prefix: &str) -> Result<ListDir, StorageError> {
        let dir = self.prefix_path(prefix)?;
        self.list_dir_at(&dir, prefix)
    }
}

impl FilesystemStore {
    /// An error if the symbolic link `link`, in `dir`, leads to `dir` or a directory holding
    /// it: the keys below would repeat without end (two such links made listings take
    /// forever, doubling at each level; one made consolidation record made-up members).
    fn refuse_loop(&self, dir: &Path, link: &Path) -> Result<(), StorageError> {
        let (Ok(target), Ok(here)) = (fs::canonicalize(link), fs::canonicalize(dir)) else {
            return Ok(()); // gone meanwhile: listed, or not, as it is found
        };
        // Back to a directory holding this one, or to one the walk came through (a loop
        // through a sibling: A/to_b -> ../B, B/to_a -> ../A).
        let walked = || {
            dir.ancestors()
                .take_while(|d| d.starts_with(&self.root))
                .any(|d| fs::canonicalize(d).is_ok_and(|d| d == target))
        };
        if here.starts_with(&target) || walked() {
            let loop_error = std::io::Error::other(format!(
                "the symbolic link leads back to {}, which holds it: a loop",
                target.display()
            ));
            return Err(Self::io_error(link, loop_error));
        }
        Ok(())
    }

    fn list_dir_at(&self, dir: &Path, prefix: &str) -> Result<ListDir, StorageError> {
        let mut out = ListDir::default();
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if is_missing(&e) => return Ok(out),
            Err(e) => return Err(Self::io_error(dir, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| Self::io_error(dir, e))?;
            let name = match entry.file_name().into_string() {
                Ok(name) => name,
                // A name that is not UTF-8 is no Zarr key: left out, unless it is a node
                // (its directory holds node metadata), which zarr-python names with escapes
                // (a Latin-1 "café"): refused, as leaving it out would drop it from copies
                // unseen.
                Err(_) if !is_node_directory(&entry.path()) => continue,
                Err(raw) => {
                    return Err(StorageError::InvalidKey {
                        key: format!("{prefix}{}", raw.to_string_lossy()),
                        reason: format!(
                            "the directory {} is named in bytes that are not UTF-8, which no \
                             Zarr key is (rename it to list the nodes beside it)",
                            entry.path().display()
                        ),
                    })
                }
            };
            if validate_key(&name).is_err() {
                // A name with '\' (a folder unzipped from Windows): no key names it, so
                // it is left out, as names that are not UTF-8 are, rather than failing
                // the listing of everything beside it.
                continue;
            }
            if is_temporary(&name) {
                continue;
            }
            // Follow symlinks: a linked chunk directory is part of the store. A link to
            // nothing (or an entry gone since the directory was read) holds no value: a read
            // finds none there, so a listing counting it among the stored chunks would differ.
            // Nor does a link to itself, or a chain of links leading back (ELOOP), which no
            // read gets through: zarr-python's is_file() is False for both. Other failures
            // (permission denied) leave the entry listed, for its read to say what is wrong.
            let is_dir = match fs::metadata(entry.path()) {
                Ok(m) => m.is_dir(),
                Err(e) if is_missing(&e) || e.raw_os_error() == Some(libc::ELOOP) => continue,
                Err(_) => false,
            };
            if is_dir && entry.file_type().is_ok_and(|t| t.is_symlink()) {
                self.refuse_loop(dir, &entry.path())?;
            }
            if is_dir {
                out.prefixes.push(format!("{prefix}{name}/"));
            } else {
                out.keys.push(format!("{prefix}{name}"));
            }
        }
        out.keys.sort();
        out.prefixes.sort();
        Ok(out)
    }
}

impl Store for FilesystemStore {
    fn describe(&self) -> String {
        format!("file://{}", self.root.display())
    }

    fn set_if_absent(&self, key: &str, value: &[u8]) -> Result<bool, StorageError> {
        self.put(key, &[value], false, Placing::CreateNew)
            .map(|(placed, _)| placed)
    }

    fn cache_namespace(&self) -> String {
        self.namespace.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_writes_in_progress_are_temporary() {
        assert!(is_temporary(".zarr.json.123-0.oxzarr-tmp"));
        assert!(is_temporary("..zattrs.9-42.oxzarr-tmp"));
        assert!(is_temporary(&format!(
            ".zarr.json.{}-{}.oxzarr-tmp",
            std::process::id(),
            temporary_number()
        )));
        for name in [
            "run.oxzarr-tmp",
            ".run.oxzarr-tmp",
            ".x.12.oxzarr-tmp",
            ".x.a-1.oxzarr-tmp",
            ".x.1-.oxzarr-tmp",
            "x.1-2.oxzarr-tmp",
        ] {
            assert!(!is_temporary(name), "{name}");
        }
    }

    #[test]
    fn handles_on_one_directory_share_a_namespace() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let made = dir.path().join("made");
        fs::create_dir(&made)?;
        let spellings = [
            made.clone(),
            dir.path().join("made/../made/."),
            dir.path().join("made/"),
        ];
        let names: Vec<String> = spellings
            .iter()
            .map(|p| FilesystemStore::new(p).cache_namespace())
            .collect();
        assert!(names.iter().all(|n| n == &names[0]), "{names:?}");
        // Not created yet: the same name before and after it is.
        let later = dir.path().join("./later");
        let before = FilesystemStore::new(&later).cache_namespace();
        fs::create_dir(dir.path().join("later"))?;
        assert_eq!(before, FilesystemStore::new(&later).cache_namespace());
        assert_ne!(before, names[0]);
        Ok(())
    }

    #[test]
    fn set_get_list_delete() {
        let dir = tempfile::tempdir().unwrap();
        let store = FilesystemStore::new(dir.path());
        assert_eq!(store.get("a/b").unwrap(), None);
        store.set("a/b", b"hello").unwrap();
        store.set("a/c/d", b"x").unwrap();
        store.set("e", b"").unwrap();
        assert_eq!(store.get("a/b").unwrap().as_deref(), Some(&b"hello"[..]));
        assert_eq!(store.size("a/b").unwrap(), Some(5));
        assert_eq!(store.get("a").unwrap(), None, "a directory is not a value");
        assert_eq!(store.get("a/b/c").unwrap(), None);
        let ranges = store
            .get_ranges(
                "a/b",
                &[
                    ByteRange::Suffix(2),
                    ByteRange::FromStart {
                        offset: 1,
                        length: Some(2),
                    },
                ],
            )
            .unwrap()
            .unwrap();
        assert_eq!(ranges, vec![b"lo".to_vec(), b"el".to_vec()]);
        assert!(store.get_ranges("a/b", &[ByteRange::Suffix(9)]).is_err());
        assert_eq!(store.list_prefix("").unwrap(), vec!["a/b", "a/c/d", "e"]);
        let listed = store.list_dir("a/").unwrap();
        assert_eq!(listed.keys, vec!["a/b"]);
        assert_eq!(listed.prefixes, vec!["a/c/"]);
        store.delete("a/b").unwrap();
        store.delete("a/b").unwrap();
        store.delete_prefix("a/").unwrap();
        assert_eq!(store.list_prefix("").unwrap(), vec!["e"]);
        store.delete_prefix("").unwrap();
        assert!(store.list_prefix("").unwrap().is_empty());
        assert!(dir.path().exists());
    }

    #[test]
    fn writes_in_parts_tell_the_version_written() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let store = FilesystemStore::new(dir.path());
        for round in 0..3u8 {
            let written = store.set_parts("c/0/0", &[b"ab", &[round], b"cd"])?;
            assert_eq!(
                store.get("c/0/0")?,
                Some(vec![b'a', b'b', round, b'c', b'd'])
            );
            // What a reader of the key finds after the rename.
            assert_eq!(written, store.version("c/0/0")?);
            assert!(written.is_some_and(|v| v.size == 5 && v.tag.is_some()));
        }
        Ok(())
    }

    /// Drops the file's pages from the page cache: `Some(true)` if none stay, `Some(false)` if
    /// all do (tmpfs keeps them), `None` for some of each.
    fn evict(path: &Path) -> Option<bool> {
        use std::os::fd::AsRawFd;
        let file = fs::File::open(path).unwrap();
        file.sync_all().unwrap();
        let len = file.metadata().unwrap().len() as usize;
        // SAFETY: advice, then a read-only mapping of the whole file that is never touched,
        // only asked which of its pages are resident, and unmapped.
        let resident = unsafe {
            libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED);
            let map = libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            );
            assert_ne!(map, libc::MAP_FAILED);
            let page = libc::sysconf(libc::_SC_PAGESIZE) as usize;
            let mut resident = vec![0u8; len.div_ceil(page)];
            assert_eq!(libc::mincore(map, len, resident.as_mut_ptr()), 0);
            libc::munmap(map, len);
            resident
        };
        match resident.iter().filter(|r| *r & 1 == 1).count() {
            0 => Some(true),
            n if n == resident.len() => Some(false),
            _ => None,
        }
    }

    /// Evicts `path` and runs `read` on it until the read counts a wait for the device, at most
    /// 50 times: a read that asks not to wait can still find its bytes when the readahead it
    /// starts completes before it looks (a fast device, a host's cache), so one attempt proves
    /// nothing. Returns whether a wait was counted, or `None` where none can be: no probe, a
    /// filesystem that keeps its pages in memory (where no read may count one), or a file
    /// never wholly evicted.
    fn counts_a_wait(
        store: &FilesystemStore,
        path: &Path,
        read: &dyn Fn() -> Result<(), String>,
    ) -> Result<Option<bool>, String> {
        let mut evicted_once = false;
        for _ in 0..50 {
            let before = store.device_waits();
            let evicted = evict(path);
            read()?;
            let counted = store.device_waits() - before;
            if store.waits.no_probe.load(Ordering::Relaxed) || evicted == Some(false) {
                return match counted {
                    0 => Ok(None),
                    n => Err(format!("{n} waits counted where reads cannot wait")),
                };
            }
            if evicted == Some(true) {
                if counted > 0 {
                    return Ok(Some(true));
                }
                evicted_once = true;
            }
        }
        // Never wholly evicted (some pages kept each time): nothing to tell.
        Ok(evicted_once.then_some(false))
    }

    #[test]
    fn reads_count_the_waits_for_the_device() -> Result<(), String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let store = FilesystemStore::new(dir.path());
        let value: Vec<u8> = (0..4_000_000u32).map(|i| (i % 251) as u8).collect();
        let small = &value[..1000];
        let fail = |e: StorageError| e.to_string();
        store.set("c/big", &value).map_err(fail)?;
        store.set("c/small", small).map_err(fail)?;
        // Just written, so cached: nothing waits.
        assert_eq!(store.get("c/big").map_err(fail)?, Some(value.clone()));
        assert_eq!(store.get("c/small").map_err(fail)?, Some(small.to_vec()));
        assert_eq!(store.device_waits(), 0);
        // Hints for missing and invalid keys are harmless.
        for key in ["c/missing", "../outside", "", "c"] {
            store.prefetch(key);
        }
        // A whole value, one into a reused buffer, and a whole chunk read into the caller's
        // buffer each count their wait. Each reads the larger file: the smaller a file, the
        // likelier the readahead a non-waiting read starts is done before the read looks (on
        // this machine a one-page file could go 20 evictions in a row without a wait, and a
        // 300 KB file could too with another process busy on every core).
        let read_big = || {
            let got = store.get("c/big").map_err(fail)?;
            assert_eq!(got.as_deref(), Some(&value[..]));
            Ok(())
        };
        let read_big_into_buffer = || {
            let mut buf = Vec::new();
            assert!(store.get_into("c/big", &mut buf, false).map_err(fail)?);
            assert_eq!(buf, value);
            Ok(())
        };
        let read_big_into_parts = || {
            let mut out = vec![0u8; value.len()];
            let read = store.read_parts_into(
                "c/big",
                &mut [(0, &mut out[..])],
                Some(Version::of_size(value.len() as u64)),
            );
            assert_eq!(read.map_err(fail)?, PartsRead::Done);
            assert_eq!(out, value);
            Ok(())
        };
        let (big_path, small_path) = (dir.path().join("c/big"), dir.path().join("c/small"));
        for read in [
            &read_big as &dyn Fn() -> Result<(), String>,
            &read_big_into_buffer,
            &read_big_into_parts,
        ] {
            assert_ne!(counts_a_wait(&store, &big_path, read)?, Some(false));
        }
        // A small file read after its eviction reads right, whether or not it waited.
        evict(&small_path);
        let mut out = vec![0u8; 1000];
        let read = store.read_parts_into(
            "c/small",
            &mut [(0, &mut out[..])],
            Some(Version::of_size(1000)),
        );
        assert_eq!(read.map_err(fail)?, PartsRead::Done);
        assert_eq!(out, small);
        // A hint for a file read just now changes nothing.
        let before = store.device_waits();
        store.prefetch("c/big");
        read_big()?;
        assert_eq!(store.device_waits(), before, "{big_path:?} was just read");
        Ok(())
    }

    #[test]
    fn reads_at_a_short_distance_from_the_source_are_exact(
    ) -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("v");
        let value: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
        fs::write(&path, &value)?;
        let file = fs::File::open(&path)?;
        let waits = DeviceWaits::default();
        // Room for any place in a page, and for a read past the end of the file.
        let mut buf = vec![0u8; value.len() + 8192];
        let page = (4096 - buf.as_ptr() as usize % 4096) % 4096;
        for offset in [0u64, 5, 4095, 70_000] {
            for distance in [0usize, 1, 16, 63, 64, 2048] {
                let at = page + (offset as usize + distance) % 4096;
                let dst = buf[at..].as_mut_ptr();
                assert_eq!(
                    short_distance(dst as usize, offset),
                    cfg!(target_arch = "x86_64") && (1..64).contains(&distance)
                );
                for len in [20_000usize, BOUNCE_BYTES + 5000, value.len()] {
                    buf.fill(0);
                    // SAFETY: `buf` holds `len` bytes from `at`.
                    let read = unsafe { pread_full(&file, dst, len, offset, &waits) }?;
                    // Up to the end of the file, nothing written past what was read.
                    let want = len.min(value.len() - offset as usize);
                    assert_eq!(
                        read, want,
                        "offset {offset}, distance {distance}, len {len}"
                    );
                    assert_eq!(&buf[at..at + want], &value[offset as usize..][..want]);
                    assert!(buf[at + want..].iter().all(|b| *b == 0));
                }
            }
        }
        Ok(())
    }

    #[test]
    fn hints_leave_what_is_not_a_regular_file_alone() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let name = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0);
        // Opening a FIFO for reading would wait for a writer: this returns at once.
        will_need(&fifo);
        will_need(dir.path());
        will_need(&dir.path().join("missing"));
    }

    #[test]
    fn scattered_reads() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let store = FilesystemStore::new(dir.path());
        let value: Vec<u8> = (0..=255).collect();
        store.set("v", &value)?;
        let (mut a, mut b, mut c) = (vec![0u8; 10], vec![0u8; 5], vec![0u8; 3]);
        let mut parts: Vec<(u64, &mut [u8])> = vec![(0, &mut a), (10, &mut b), (100, &mut c)];
        assert_eq!(
            store.read_parts_into("v", &mut parts, Some(Version::of_size(256)))?,
            PartsRead::Done
        );
        assert_eq!(a, (0..10).collect::<Vec<u8>>());
        assert_eq!(b, (10..15).collect::<Vec<u8>>());
        assert_eq!(c, vec![100, 101, 102]);
        let mut parts: Vec<(u64, &mut [u8])> = vec![(0, &mut a)];
        assert_eq!(
            store.read_parts_into("v", &mut parts, Some(Version::of_size(7)))?,
            PartsRead::WrongSize(256)
        );
        assert_eq!(
            store.read_parts_into("w", &mut parts, None)?,
            PartsRead::Missing
        );
        let mut parts: Vec<(u64, &mut [u8])> = vec![(250, &mut a)];
        assert!(store.read_parts_into("v", &mut parts, None).is_err());
        // Many small buffers back to back, more than one preadv takes.
        let mut bufs: Vec<Vec<u8>> = (0..2000).map(|_| vec![0u8; 1]).collect();
        let big: Vec<u8> = (0..2000u32).map(|i| (i % 251) as u8).collect();
        store.set("big", &big)?;
        let mut parts: Vec<(u64, &mut [u8])> = bufs
            .iter_mut()
            .enumerate()
            .map(|(i, b)| (i as u64, b.as_mut_slice()))
            .collect();
        assert_eq!(
            store.read_parts_into("big", &mut parts, None)?,
            PartsRead::Done
        );
        assert!(bufs
            .iter()
            .enumerate()
            .all(|(i, b)| b[0] == (i % 251) as u8));
        // Parts with gaps between them of none, one byte, some bytes, up to and past
        // `MAX_GAP`; then the same parts in reverse file order, and parts that overlap.
        let len = 8 * MAX_GAP;
        let wide: Vec<u8> = (0..len)
            .map(|i| (i % 251) as u8 ^ (i >> 12) as u8)
            .collect();
        store.set("wide", &wide)?;
        let mut offsets = vec![0usize, 7, 15, 100];
        for gap in [MAX_GAP - 1, MAX_GAP, MAX_GAP + 1, 5] {
            offsets.push(offsets[offsets.len() - 1] + 7 + gap);
        }
        let check = |order: &[usize]| -> Result<(), Box<dyn std::error::Error>> {
            let mut bufs: Vec<Vec<u8>> = order.iter().map(|_| vec![0u8; 7]).collect();
            let mut parts: Vec<(u64, &mut [u8])> = order
                .iter()
                .zip(bufs.iter_mut())
                .map(|(&o, b)| (o as u64, b.as_mut_slice()))
                .collect();
            assert_eq!(
                store.read_parts_into("wide", &mut parts, None)?,
                PartsRead::Done
            );
            for (&o, b) in order.iter().zip(&bufs) {
                assert_eq!(b[..], wide[o..o + 7], "{order:?}");
            }
            Ok(())
        };
        check(&offsets)?;
        check(&offsets.iter().rev().copied().collect::<Vec<_>>())?;
        // Parts 3 and 4 overlap the one before (7 bytes long); so does a repeat.
        check(&[0, 3, 3, 200, 100, 101])?;
        // More parts with gaps than one preadv takes.
        let many: Vec<usize> = (0..1500).map(|i| i * 9).collect();
        check(&many)?;
        // A gapped run that reaches past the end fails as a read past the end.
        let mut a = vec![0u8; 7];
        let mut b = vec![0u8; 7];
        let mut parts: Vec<(u64, &mut [u8])> =
            vec![((len - 100) as u64, &mut a), ((len - 3) as u64, &mut b)];
        assert!(store.read_parts_into("wide", &mut parts, None).is_err());
        Ok(())
    }

    #[test]
    fn large_reads_in_pieces() -> Result<(), Box<dyn std::error::Error>> {
        crate::concurrency::with_threads(2, || {
            let dir = tempfile::tempdir()?;
            let store = FilesystemStore::new(dir.path());
            // Not a whole number of pieces, and a piece boundary one byte from the end.
            for len in [PARALLEL_READ_BYTES, 1_000_003, 3 * READ_PIECE + 1] {
                let value: Vec<u8> = (0..len)
                    .map(|i| (i % 253) as u8 ^ (i >> 16) as u8)
                    .collect();
                store.set("v", &value)?;
                for decoded_in_parallel in [false, true] {
                    let mut buf = vec![7u8; 3];
                    assert!(store.get_into("v", &mut buf, decoded_in_parallel)?);
                    assert!(buf == value, "{len} {decoded_in_parallel}");
                }
                // One large part from an offset, and one that runs past the end.
                let mut part = vec![0u8; len - 1000];
                let mut parts: Vec<(u64, &mut [u8])> = vec![(1000, &mut part)];
                assert_eq!(
                    store.read_parts_into("v", &mut parts, Some(Version::of_size(len as u64)))?,
                    PartsRead::Done
                );
                assert!(part == value[1000..], "{len}");
                let mut parts: Vec<(u64, &mut [u8])> = vec![(1001, &mut part)];
                assert!(matches!(
                    store.read_parts_into("v", &mut parts, None),
                    Err(StorageError::OutOfRange { .. })
                ));
            }
            Ok(())
        })
    }

    #[test]
    fn writes_leave_no_temporary_files() {
        let dir = tempfile::tempdir().unwrap();
        let store = FilesystemStore::new(dir.path().join("new"));
        for i in 0..10u8 {
            store.set("x/y", &[i; 100]).unwrap();
        }
        let names: Vec<_> = fs::read_dir(dir.path().join("new/x"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec!["y"]);
        assert_eq!(store.get("x/y").unwrap().unwrap(), vec![9u8; 100]);
    }

    /// Another writer with this process's id (in another PID namespace) holding its
    /// temporary file for `zarr.json` open, at each name this process's next writes would
    /// have taken under counted names: the files were opened truncating, so a write went
    /// into the other's file, linked it to `zarr.json`, and the other's later writes tore it.
    #[test]
    fn writes_leave_another_writers_temporary_file_alone() -> Result<(), Box<dyn std::error::Error>>
    {
        use std::io::Seek;
        let dir = tempfile::tempdir()?;
        let store = FilesystemStore::new(dir.path());
        let next = TMP_COUNTER.load(Ordering::Relaxed);
        let counted = |n: u64| {
            dir.path()
                .join(format!(".zarr.json.{}-{n}.oxzarr-tmp", std::process::id()))
        };
        let mut theirs = fs::OpenOptions::new()
            .create_new(true)
            .read(true)
            .write(true)
            .open(counted(next))?;
        // Ahead of the count by as many writes as other tests may make meanwhile.
        for n in next + 1..next + 1000 {
            fs::hard_link(counted(next), counted(n))?;
        }
        theirs.write_all(b"{\"theirs\": ")?;
        assert!(store.set_if_absent("zarr.json", b"{\"ours\": 1}")?);
        theirs.write_all(b"2}")?;
        let mut held = String::new();
        theirs.rewind()?;
        theirs.read_to_string(&mut held)?;
        assert_eq!(held, "{\"theirs\": 2}");
        assert_eq!(store.get("zarr.json")?, Some(b"{\"ours\": 1}".to_vec()));
        Ok(())
    }

    /// A name already taken is passed over for the next one, and what is there is kept.
    #[test]
    fn a_temporary_file_is_created_at_a_name_not_taken() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let sub = dir.path().join("c");
        let taken = sub.join(format!(".0.{}-7.oxzarr-tmp", std::process::id()));
        fs::create_dir(&sub)?;
        fs::write(&taken, b"theirs")?;
        let mut numbers = [7, 8].into_iter();
        let (mut file, tmp) = create_temporary(&sub, "0", || numbers.next().unwrap_or(9))?;
        file.write_all(b"ours")?;
        assert_eq!(
            tmp,
            sub.join(format!(".0.{}-8.oxzarr-tmp", std::process::id()))
        );
        assert_eq!(fs::read(&taken)?, b"theirs");
        assert_eq!(fs::read(&tmp)?, b"ours");
        // A directory not made yet is made.
        let (_, made) = create_temporary(&dir.path().join("new/c"), "0", || 1)?;
        assert!(made.is_file());
        Ok(())
    }

    #[test]
    fn read_only_views_refuse_writes() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            super::super::ReadOnlyStore::new(std::sync::Arc::new(FilesystemStore::new(dir.path())));
        assert!(matches!(
            store.set("a", b""),
            Err(StorageError::ReadOnly { .. })
        ));
        assert!(store.delete("a").is_err());
        assert!(store.delete_prefix("").is_err());
        assert_eq!(store.get("a").unwrap(), None);
    }
}
