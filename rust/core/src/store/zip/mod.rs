//! A zip file as a store, as zarr-python's `ZipStore` writes them (and zarrita.js and others
//! read them): each value is an entry named by its key.
//!
//! The central directory is read once, when the store is opened, with the `zip` crate; every
//! read then goes to the entry's bytes with positioned reads of the file, from many threads
//! at once. Entries stored without compression (zarr-python's choice, since chunks are
//! compressed already) serve byte ranges straight from the file, so a shard's index and its
//! inner chunks cost a read each, as in a directory. Compressed entries (deflate, bzip2 and
//! LZMA, as Python's `zipfile` writes them) are decompressed whole.
//! Whole values are checked against the entry's CRC-32. A read of a shard holds it whole
//! while it reads its parts (see [`ReadableStore::hold_for_parts`]) where it is compressed, so
//! that it is decompressed once, and where the read takes every part of it, so that it is
//! checked; parts read in place otherwise are not. A zip may name an entry more than once
//! (zarr-python appends a new entry for a rewritten key): the last one counts, as in Python's
//! `zipfile`.
//!
//! A zip opened for writing takes each value as a new stored entry at the end of the
//! entries, from many threads at once: a thread reserves the entry's place under a short
//! lock, then writes its header and bytes there with positioned writes. A rewritten key's
//! old entry and a deleted key's entry are dropped from the directory (their bytes stay
//! in the file, unreferenced), so each key has one entry, as every reader expects. The
//! central directory is written by [`ZipStore::flush`] and [`ZipStore::close`], and when
//! the store is dropped: until then the file is not a complete zip, as with Python's
//! `zipfile`. One handle per process may write a zip file; a second is refused.

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

mod records;
use records::{central_record, dos_time, end_records, local_header, Written};

use super::{
    list_dir_of, range_of, same_version, validate_key, validate_prefix, ByteRange, ListDir,
    ListableStore, PartsRead, ReadableStore, Store, Version, WritableStore,
};
use crate::error::StorageError;

/// How an entry's bytes are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    Stored,
    Deflated,
    /// bzip2 and LZMA: what Python's zipfile writes besides deflate (zarr-python's
    /// `ZipStore(compression=ZIP_BZIP2 | ZIP_LZMA)`).
    Bzip2,
    Lzma,
    /// Another compression method (zstd, ...), reported when the entry is read.
    Other(u16),
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// Where the entry's bytes start in the file.
    data_start: u64,
    compressed_size: u64,
    size: u64,
    crc32: u32,
    method: Method,
    encrypted: bool,
}

impl Entry {
    fn version(&self) -> Version {
        // The offset tells two entries of one key apart, should the file be replaced by one
        // where the key was written again.
        Version {
            size: self.size,
            tag: Some(self.data_start),
            exact: true,
        }
    }
}

/// An entry as the central directory describes it, or why it cannot be read.
type Described = Result<Entry, Arc<str>>;

/// Where an entry's bytes are and how they are stored, checked against the file's length and
/// against the entry's local header.
/// The name bytes of the central directory record at `at`, as stored.
fn recorded_name(file: &File, at: u64) -> Result<Vec<u8>, String> {
    let unreadable = |e: std::io::Error| format!("its directory record cannot be read: {e}");
    let mut record = [0u8; 46];
    file.read_exact_at(&mut record, at).map_err(unreadable)?;
    let mut name = vec![0u8; usize::from(u16::from_le_bytes([record[28], record[29]]))];
    file.read_exact_at(&mut name, at + 46).map_err(unreadable)?;
    Ok(name)
}

fn describe<R: Read>(
    entry: &zip::read::ZipFile<'_, R>,
    file: &File,
    file_len: u64,
) -> Result<Entry, String> {
    let data_start = entry
        .data_start()
        .ok_or_else(|| "its bytes cannot be found".to_string())?;
    // The bytes found through the directory must be this entry's: a damaged directory could
    // point at another's, and its values would be read as this key's (Python's zipfile
    // checks the same).
    let name = entry.name_raw();
    let unreadable = |e: std::io::Error| format!("its local header cannot be read: {e}");
    let mut header = vec![0u8; 30 + name.len()];
    file.read_exact_at(&mut header, entry.header_start())
        .map_err(unreadable)?;
    let name_len = usize::from(u16::from_le_bytes([header[26], header[27]]));
    let same_name = if name_len == name.len() && header[30..] == *name {
        true
    } else {
        // The crate gives the name from an Info-ZIP Unicode Path field when there is one (a
        // name in a DOS code page, and the same in UTF-8 beside it): the local header holds
        // the name as the directory's record does, before that field.
        let mut local_name = vec![0u8; name_len];
        file.read_exact_at(&mut local_name, entry.header_start() + 30)
            .map_err(unreadable)?;
        local_name == recorded_name(file, entry.central_header_start())?
    };
    if header[..4] != [0x50, 0x4b, 0x03, 0x04] || !same_name {
        return Err("the directory points at another entry's local header".into());
    }
    let compressed_size = entry.compressed_size();
    // Refused here, before any read sizes a buffer by it.
    if data_start
        .checked_add(compressed_size)
        .is_none_or(|end| end > file_len)
    {
        return Err("the zip's directory says it reaches past the end of the file".into());
    }
    // The method's code in the zip format (the crate names only the methods it was built to
    // decompress).
    #[allow(deprecated)]
    let method = match entry.compression().to_u16() {
        0 => Method::Stored,
        8 => Method::Deflated,
        12 => Method::Bzip2,
        14 => Method::Lzma,
        code => Method::Other(code),
    };
    // (An encrypted entry's stored bytes begin with its encryption header: it is refused as
    // encrypted when read, not as damaged.)
    if method == Method::Stored && !entry.encrypted() && compressed_size != entry.size() {
        return Err("it is stored with two different sizes".into());
    }
    Ok(Entry {
        data_start,
        compressed_size,
        size: entry.size(),
        crc32: entry.crc32(),
        method,
        encrypted: entry.encrypted(),
    })
}

/// One key's entry, and for a zip being written, its record in the central directory
/// (as read from the file, or as made when the entry was written).
#[derive(Debug)]
struct Slot {
    entry: Described,
    record: Vec<u8>,
}

/// How a zip file is opened for writing (Python's `zipfile` modes `w`, `x` and `a`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZipMode {
    /// A new, empty zip, replacing any file at the path.
    Create,
    /// A new, empty zip; an error if the path exists.
    CreateNew,
    /// The zip at the path with its entries, to add to (a new one if there is none).
    Append,
}

/// What a zip's directory holds besides the values' entries, kept as it was when a zip is
/// added to.
#[derive(Debug, Default)]
struct Kept {
    /// Records of entries that are not values (folders that other zip tools list), each
    /// with its name: a deleted prefix takes those below it along.
    records: Vec<(String, Vec<u8>)>,
    /// The zip's comment.
    comment: Vec<u8>,
}

/// The state of a zip open for writing.
#[derive(Debug)]
struct Writer {
    /// Where the next entry's local header goes: past every entry's bytes. The central
    /// directory is written here.
    end: u64,
    /// Whether the central directory in the file lags the entries.
    dirty: bool,
    /// Set by `close`: further writes are refused.
    closed: bool,
    /// Entries whose place is reserved and whose bytes are being written: the directory
    /// waits for them (they would be missing from it, and written over it).
    in_flight: usize,
    /// Of those, the ones of keys not in the directory yet: they count among its entries
    /// where their number is limited (a zip written without ZIP64 records).
    adding: usize,
    /// Flushes waiting for the entries in flight: new entries wait for them in turn, so
    /// that a flush is not put off for as long as other threads keep writing.
    flushes_waiting: usize,
    kept: Kept,
    /// The file's identity among the zips this process writes.
    id: FileId,
}

/// A file's device and inode: the same for every path that names it.
type FileId = (u64, u64);

/// The zip files this process has open for writing: two writers of one file would
/// overwrite each other's entries.
static WRITING: Mutex<Vec<FileId>> = Mutex::new(Vec::new());

fn writing() -> MutexGuard<'static, Vec<FileId>> {
    WRITING.lock().unwrap_or_else(|e| e.into_inner())
}

/// Takes the file off the zips this process has open for writing.
fn release(id: FileId) {
    writing().retain(|&other| other != id);
}

fn already_writing(shown: &str) -> StorageError {
    io_error(
        shown,
        std::io::Error::new(
            std::io::ErrorKind::ResourceBusy,
            "the zip file is already open for writing in this process (close that store first)",
        ),
    )
}

/// An error if this process has the file open for writing: replacing it would leave that
/// store writing to a file no longer at the path.
fn refuse_if_writing(shown: &str, id: FileId) -> Result<(), StorageError> {
    if writing().contains(&id) {
        return Err(already_writing(shown));
    }
    Ok(())
}

/// A zip file: read-only, or open for writing.
#[derive(Debug)]
pub struct ZipStore {
    path: PathBuf,
    /// The open file; none once writing ended without a complete zip (a close that failed,
    /// or [`ZipStore::abandon`]): the file is let go then, and reads are refused.
    file: RwLock<Option<File>>,
    entries: RwLock<BTreeMap<String, Slot>>,
    /// Set for a zip open for writing.
    writer: Option<Mutex<Writer>>,
    /// Signalled when the last entry in flight is written, and when a flush stops waiting.
    settled: Condvar,
    /// The process that opened the zip for writing. A child made by `fork` shares the file
    /// but not the parent's later entries: it must neither add entries nor write a
    /// directory over the parent's, and it never takes the writer's lock (a parent's
    /// thread may have held it at the fork).
    owner: u32,
    /// What caches know this zip's values by (see `cache_namespace`).
    namespace: String,
    /// New entries are deflated (zip method 8) rather than stored.
    deflate: bool,
    /// Writes that need ZIP64 records are allowed (else refused, as zipfile's
    /// `allowZip64=False` refuses them).
    zip64: bool,
    /// Values held whole for the reads of their parts (see `hold_whole`), by key.
    held: Mutex<HashMap<String, Held>>,
    /// Whether `held` holds anything: reads look there only then, without taking its lock.
    holding: AtomicBool,
}

/// A value held whole for the reads of its parts (see `hold_whole`), and how many reads hold
/// it.
#[derive(Debug)]
struct Held {
    /// Where its entry's bytes start: the entry's version (a key written again is another
    /// entry, read from the file). `None`: the key had no entry when it was first held.
    entry_at: Option<u64>,
    /// The value, read whole by the first read of a part of it (none if all come from caches
    /// of the engine's), decompressed and checked against its CRC-32; the reads meanwhile
    /// wait for it.
    value: Arc<Mutex<Option<Arc<Vec<u8>>>>>,
    holds: usize,
}

fn io_error(key: &str, source: std::io::Error) -> StorageError {
    StorageError::Io {
        key: key.to_string(),
        source,
    }
}

/// All of `decoder`'s output, which must be the `size` bytes the directory says: one byte
/// more is read, to tell a longer stream.
fn sized(decoder: impl Read, size: u64, shown: &str, what: &str) -> Result<Vec<u8>, StorageError> {
    let mut out = Vec::new();
    decoder
        .take(size.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| invalid_data(shown, format!("cannot {what}: {e}")))?;
    if out.len() as u64 != size {
        return Err(invalid_data(
            shown,
            format!(
                "decompresses to {} bytes where the directory says {size}",
                out.len()
            ),
        ));
    }
    Ok(out)
}

/// The most memory an LZMA entry's decoder may take (its dictionary, mostly): zipfile's
/// default is 8 MiB; a damaged header asking for gigabytes is refused.
const LZMA_MEMORY: u64 = 1 << 30;

/// A reader of an LZMA entry's value. The zip format puts a 4-byte header (the LZMA SDK's
/// version, and the length of the properties that follow: 5) before the properties and the
/// stream; the .lzma format liblzma reads has the properties, then the value's size.
fn lzma_entry<'a>(raw: &'a [u8], size: u64, shown: &str) -> Result<impl Read + 'a, StorageError> {
    let damaged = |reason: &str| invalid_data(shown, format!("a damaged LZMA entry: {reason}"));
    let (header, rest) = raw
        .split_at_checked(4)
        .ok_or_else(|| damaged("shorter than its header"))?;
    if u16::from_le_bytes([header[2], header[3]]) != 5 {
        return Err(damaged("its properties are not 5 bytes"));
    }
    let (properties, stream) = rest
        .split_at_checked(5)
        .ok_or_else(|| damaged("shorter than its properties"))?;
    let mut start = Vec::with_capacity(13);
    start.extend_from_slice(properties);
    start.extend_from_slice(&size.to_le_bytes());
    let decoder = liblzma::stream::Stream::new_lzma_decoder(LZMA_MEMORY)
        .map_err(|e| damaged(&e.to_string()))?;
    Ok(liblzma::read::XzDecoder::new_stream(
        std::io::Cursor::new(start).chain(stream),
        decoder,
    ))
}

/// The largest size or offset Python's zipfile writes without ZIP64 records (a signed 32-bit
/// field's range, half what the format holds: some readers take them as signed).
const ZIP64_LIMIT: u64 = (1 << 31) - 1;

/// A write refused because `what` would need ZIP64 records, in zipfile's words.
fn needs_zip64(key: &str, what: &str) -> StorageError {
    io_error(
        key,
        std::io::Error::new(
            std::io::ErrorKind::FileTooLarge,
            format!(
                "{what} would require ZIP64 extensions, which the zip was opened without \
                 (allowZip64=False)"
            ),
        ),
    )
}

fn invalid_data(key: &str, message: String) -> StorageError {
    io_error(
        key,
        std::io::Error::new(std::io::ErrorKind::InvalidData, message),
    )
}

/// A zip's entries, read from its central directory, and where that directory starts.
struct Directory {
    entries: BTreeMap<String, Slot>,
    kept: Kept,
    start: u64,
}

/// Reads the central directory of the zip in `file`; with `records`, each entry's record
/// too, as it is in the file (for a zip that will be written to).
fn read_directory(file: &File, shown: &str, records: bool) -> Result<Directory, StorageError> {
    let file_len = file.metadata().map_err(|e| io_error(shown, e))?.len();
    if !has_end_record(file, file_len).map_err(|e| io_error(shown, e))? {
        return Err(invalid_data(
            shown,
            format!(
                "not a readable zip file: no end of central directory record in its last \
                 {END_RECORD_REACH} bytes (a zip whose writing stopped before it was closed, \
                 or a file cut short)"
            ),
        ));
    }
    // Buffered: the crate reads the directory in small pieces.
    let mut archive = zip::ZipArchive::new(std::io::BufReader::new(file))
        .map_err(|e| invalid_data(shown, format!("not a readable zip file: {e}")))?;
    let mut dir = Directory {
        entries: BTreeMap::new(),
        kept: Kept {
            comment: archive.comment().to_vec(),
            ..Kept::default()
        },
        start: archive.central_directory_start(),
    };
    if records && archive.offset() != 0 {
        return Err(invalid_data(
            shown,
            "the zip starts after other data, so oxzarr does not add to it".into(),
        ));
    }
    if records && dir.start > file_len {
        return Err(invalid_data(
            shown,
            "the zip's directory is said to start past the end of the file, so oxzarr does \
             not add to it"
                .into(),
        ));
    }
    check_directory_extent(file, shown, file_len, &dir, archive.offset())?;
    for i in 0..archive.len() {
        let Some(name) = archive.name_for_index(i).map(str::to_string) else {
            continue;
        };
        // An entry the directory describes wrongly is kept with the reason: reading it
        // fails, naming it, and the other entries read, as with Python's zipfile.
        let (described, record_at) = match archive.by_index_raw(i) {
            Ok(entry) => {
                let at = entry.central_header_start();
                if entry.is_dir() {
                    if records {
                        dir.kept.records.push((name, read_record(file, shown, at)?));
                    }
                    continue;
                }
                (describe(&entry, file, file_len), Some(at))
            }
            Err(_) if name.ends_with('/') => continue,
            Err(e) => (Err(e.to_string()), None),
        };
        let record = match (records, record_at) {
            (true, Some(at)) => read_record(file, shown, at)?,
            (true, None) => {
                return Err(invalid_data(
                    shown,
                    format!("entry {name} is damaged, so oxzarr does not add to the zip"),
                ))
            }
            (false, _) => Vec::new(),
        };
        if records {
            if let Ok(entry) = &described {
                if entry.data_start + entry.compressed_size > dir.start {
                    return Err(invalid_data(
                        shown,
                        format!(
                            "entry {name} lies after the central directory, so oxzarr does \
                             not add to the zip"
                        ),
                    ));
                }
            }
        }
        dir.entries.insert(
            name,
            Slot {
                entry: described.map_err(Arc::from),
                record,
            },
        );
    }
    Ok(dir)
}

/// How far from the end of a zip its end of central directory record can start: the record
/// (22 bytes) and the longest comment after it.
const END_RECORD_REACH: u64 = 22 + 0xFFFF;

/// Whether the end of the file holds an end of central directory record, where one can be (as
/// Python's zipfile looks: there alone). The zip crate looks back to the start of the file,
/// and with none there reads all of it: a second per GiB of a zip whose writer was killed
/// before closing it, or of a download cut short. (A ZIP64 end record comes before the
/// classic one, which every zip ends with.)
fn has_end_record(file: &File, file_len: u64) -> std::io::Result<bool> {
    let start = file_len.saturating_sub(END_RECORD_REACH);
    // At most END_RECORD_REACH bytes.
    let mut tail = vec![0u8; (file_len - start) as usize];
    file.read_exact_at(&mut tail, start)?;
    Ok(tail
        .windows(22)
        .any(|record| record[..4] == [0x50, 0x4b, 0x05, 0x06]))
}

/// Checks that the central directory's records fill its place exactly and are as many as
/// the end record says. The zip crate reads as many records as the end record gives: with a
/// count too small it would leave the rest out silently, so that their keys read as missing
/// chunks (fill values) and a write would drop them from the zip for good. Python's zipfile
/// reads records while the directory's size lasts; a zip where the two disagree is damaged.
fn check_directory_extent(
    file: &File,
    shown: &str,
    file_len: u64,
    dir: &Directory,
    archive_offset: u64,
) -> Result<(), StorageError> {
    const RECORD: [u8; 4] = [0x50, 0x4b, 0x01, 0x02];
    let Some((stated, end_at)) = stated_entries(
        file,
        file_len,
        dir.kept.comment.len() as u64,
        archive_offset,
    ) else {
        // An end record not where the crate's search found it (data after the zip, say):
        // nothing to compare with.
        return Ok(());
    };
    let damaged = |what: String| {
        invalid_data(
            shown,
            format!("the zip's central directory is damaged: {what}"),
        )
    };
    let mut reader = std::io::BufReader::new(file);
    std::io::Seek::seek(&mut reader, std::io::SeekFrom::Start(dir.start))
        .map_err(|e| io_error(shown, e))?;
    let (mut at, mut walked) = (dir.start, 0u64);
    let mut fixed = [0u8; 46];
    while at < end_at {
        if end_at - at < 46 {
            return Err(damaged(format!(
                "{} bytes at its end are no record",
                end_at - at
            )));
        }
        reader
            .read_exact(&mut fixed)
            .map_err(|e| io_error(shown, e))?;
        if fixed[..4] != RECORD {
            return Err(damaged(format!("no record at byte {at}")));
        }
        let field = |i: usize| u64::from(u16::from_le_bytes([fixed[i], fixed[i + 1]]));
        let rest = field(28) + field(30) + field(32);
        at += 46 + rest;
        if at > end_at {
            return Err(damaged(format!(
                "record {walked} runs past the directory's end"
            )));
        }
        std::io::Seek::seek_relative(&mut reader, rest as i64).map_err(|e| io_error(shown, e))?;
        walked += 1;
    }
    if walked != stated {
        return Err(damaged(format!(
            "it holds {walked} records where its end record says {stated}"
        )));
    }
    Ok(())
}

/// The number of entries the zip's end record gives (zip64's when the classic field says to
/// look there), and where the central directory ends (where the end records begin); `None`
/// when the end record is not at the end of the file, before a comment of `comment_len`.
fn stated_entries(
    file: &File,
    file_len: u64,
    comment_len: u64,
    archive_offset: u64,
) -> Option<(u64, u64)> {
    let read = |at: u64, len: usize| -> Option<Vec<u8>> {
        let mut buf = vec![0u8; len];
        file.read_exact_at(&mut buf, at).ok()?;
        Some(buf)
    };
    let u16_at = |b: &[u8], i: usize| u64::from(u16::from_le_bytes([b[i], b[i + 1]]));
    let u64_at = |b: &[u8], i: usize| {
        let mut v = [0u8; 8];
        v.copy_from_slice(&b[i..i + 8]);
        u64::from_le_bytes(v)
    };
    let eocd_at = file_len.checked_sub(22 + comment_len)?;
    let eocd = read(eocd_at, 22)?;
    if eocd[..4] != [0x50, 0x4b, 0x05, 0x06] {
        return None;
    }
    let count = u16_at(&eocd, 10);
    // zip64 (many entries, or a directory past 4 GiB, whatever the classic count says): a
    // locator just before the end record gives the zip64 end record's place, where the
    // directory ends, and its count.
    let locator = eocd_at.checked_sub(20).and_then(|at| read(at, 20));
    let Some(locator) = locator.filter(|l| l[..4] == [0x50, 0x4b, 0x06, 0x07]) else {
        return (count != 0xFFFF).then_some((count, eocd_at));
    };
    let zip64_at = u64_at(&locator, 8).checked_add(archive_offset)?;
    let zip64 = read(zip64_at, 56)?;
    if zip64[..4] != [0x50, 0x4b, 0x06, 0x06] {
        return None;
    }
    Some((u64_at(&zip64, 32), zip64_at))
}

/// The central directory record starting at `at`, as it is in the file.
fn read_record(file: &File, shown: &str, at: u64) -> Result<Vec<u8>, StorageError> {
    let mut fixed = [0u8; 46];
    file.read_exact_at(&mut fixed, at)
        .map_err(|e| io_error(shown, e))?;
    if fixed[..4] != [0x50, 0x4b, 0x01, 0x02] {
        return Err(invalid_data(
            shown,
            format!("no central directory record at byte {at}"),
        ));
    }
    let field = |i: usize| u64::from(u16::from_le_bytes([fixed[i], fixed[i + 1]]));
    let len = 46 + field(28) + field(30) + field(32);
    let mut record = vec![0u8; len as usize];
    file.read_exact_at(&mut record, at)
        .map_err(|e| io_error(shown, e))?;
    Ok(record)
}

impl ZipStore {
    /// Opens the zip file at `path`, read-only, and reads its central directory.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, StorageError> {
        let path = path.into();
        let shown = path.display().to_string();
        let file = File::open(&path).map_err(|e| io_error(&shown, e))?;
        let meta = file.metadata().map_err(|e| io_error(&shown, e))?;
        if meta.is_dir() {
            // Opened all the same (read-only), then unreadable as a file: EINVAL, where
            // Python's zipfile (so zarr-python) raises IsADirectoryError.
            let is_a_directory = std::io::Error::from_raw_os_error(libc::EISDIR);
            return Err(io_error(&shown, is_a_directory));
        }
        let dir = read_directory(&file, &shown, false)?;
        // An entry's version is its place in the file, which a zip written again may give
        // to other bytes of the same size: values cached from this file are known by the
        // file as it is now.
        let namespace = format!(
            "zip://{}#{}:{}:{}:{}:{}",
            path.display(),
            meta.dev(),
            meta.ino(),
            meta.mtime(),
            meta.mtime_nsec(),
            meta.len()
        );
        Ok(Self {
            path,
            file: RwLock::new(Some(file)),
            entries: RwLock::new(dir.entries),
            writer: None,
            settled: Condvar::new(),
            owner: 0,
            namespace,
            deflate: false,
            zip64: true,
            held: Mutex::default(),
            holding: AtomicBool::new(false),
        })
    }

    /// Opens the zip file at `path` for writing, as `mode` says. Refused if this process
    /// already has it open for writing.
    pub fn open_for_writing(path: impl Into<PathBuf>, mode: ZipMode) -> Result<Self, StorageError> {
        let path = path.into();
        let shown = path.display().to_string();
        let mut options = OpenOptions::new();
        options.read(true).write(true);
        // A file already at the path is replaced by a new one rather than cut short: a
        // store or program reading the old zip goes on reading all of it, never the new
        // entries where its directory says the old ones are. (A symbolic link is followed
        // and its target truncated below, as Python's zipfile does.)
        let old = std::fs::symlink_metadata(&path)
            .ok()
            .filter(|m| mode == ZipMode::Create && m.file_type().is_file());
        let mut replaced = false;
        if let Some(old) = &old {
            refuse_if_writing(&shown, (old.dev(), old.ino()))?;
            // A file its owner made read-only is refused, as Python's zipfile refuses it,
            // though its directory would let it be replaced.
            OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(|e| io_error(&shown, e))?;
            match std::fs::remove_file(&path) {
                Ok(()) => replaced = true,
                // A writable file in a directory that is not: cut short where it is, as
                // zipfile does.
                Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {}
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(io_error(&shown, e))
                }
                Err(_) => {}
            }
        }
        if let (true, Some(old)) = (replaced, &old) {
            // Made with the old file's permissions (less the umask) from the start: a private
            // zip is never readable by others, even for a moment.
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, old.mode() & 0o7777);
        }
        match mode {
            ZipMode::CreateNew => options.create_new(true),
            ZipMode::Create if replaced => options.create_new(true),
            ZipMode::Create | ZipMode::Append => options.create(true),
        };
        let file = options.open(&path).map_err(|e| io_error(&shown, e))?;
        if let (true, Some(old)) = (replaced, &old) {
            // The new file keeps the old one's permissions (a private zip stays private) and,
            // where this process may give them, its owner and group: as a file cut short in
            // place would, which is what zipfile and zarr-python do.
            // Best effort, both: some filesystems (vfat, some FUSE mounts) refuse them, and
            // the old file is gone by now, so failing would lose it for nothing.
            let _ = file.set_permissions(old.permissions());
            let _ = std::os::unix::fs::fchown(&file, Some(old.uid()), Some(old.gid()));
        }
        let meta = file.metadata().map_err(|e| io_error(&shown, e))?;
        let id = (meta.dev(), meta.ino());
        {
            let mut open = writing();
            if open.contains(&id) {
                return Err(already_writing(&shown));
            }
            open.push(id);
        }
        let failed = |e: StorageError| {
            release(id);
            e
        };
        let dir = if mode == ZipMode::Append && meta.len() > 0 {
            read_directory(&file, &shown, true).map_err(failed)?
        } else {
            // Only a file with contents is truncated (the target of a link): ext4 flushes a
            // file truncated to nothing when it is closed (in case it is being replaced),
            // which costs a new zip tens of milliseconds for nothing.
            if meta.len() > 0 {
                file.set_len(0).map_err(|e| failed(io_error(&shown, e)))?;
            }
            Directory {
                entries: BTreeMap::new(),
                kept: Kept::default(),
                start: 0,
            }
        };
        // Each writing handle's values are its own to cache (see `open`).
        static WRITERS: AtomicU64 = AtomicU64::new(0);
        let namespace = format!(
            "zip://{}#writer{}",
            path.display(),
            WRITERS.fetch_add(1, Ordering::Relaxed)
        );
        Ok(Self {
            path,
            file: RwLock::new(Some(file)),
            entries: RwLock::new(dir.entries),
            namespace,
            deflate: false,
            zip64: true,
            held: Mutex::default(),
            holding: AtomicBool::new(false),
            owner: std::process::id(),
            settled: Condvar::new(),
            writer: Some(Mutex::new(Writer {
                end: dir.start,
                // A new zip gets its (empty) directory even if nothing is written.
                dirty: meta.len() == 0 || mode != ZipMode::Append,
                closed: false,
                in_flight: 0,
                adding: 0,
                flushes_waiting: 0,
                kept: dir.kept,
                id,
            })),
        })
    }

    /// The same store, writing its new entries deflated (zip method 8, as zipfile's
    /// `ZIP_DEFLATED`) rather than stored. Ranges of a deflated entry are read by inflating
    /// all of it.
    pub fn with_deflated_entries(mut self) -> Self {
        self.deflate = true;
        self
    }

    /// The same store, refusing writes that would need ZIP64 records (as zipfile's
    /// `allowZip64=False` does): a value of 2 GiB or more, a zip past 2 GiB, 65535 entries.
    pub fn without_zip64(mut self) -> Self {
        self.zip64 = false;
        self
    }

    /// The number of records the directory would hold now, with the entries being added.
    fn entries_in_directory(&self, writer: &Writer) -> usize {
        self.read_entries().len() + writer.kept.records.len() + writer.adding
    }

    /// The writer, unless the zip is read-only or this is a process forked from the one
    /// that opened it.
    fn writer_here(&self) -> Option<&Mutex<Writer>> {
        self.writer
            .as_ref()
            .filter(|_| self.owner == std::process::id())
    }

    /// Writes the central directory, if entries changed since it was last written, once
    /// the entries being written are done: the file is then a complete zip.
    pub fn flush(&self) -> Result<(), StorageError> {
        let Some(writer) = self.writer_here() else {
            return Ok(());
        };
        let mut writer = self.settle(writer);
        self.write_directory(&mut writer)
    }

    /// Writes the central directory and ends writing, in one step: later writes are
    /// refused, and another handle may open the file for writing. Reads go on, once the
    /// directory is written.
    ///
    /// Writing ends even when the directory cannot be written (a full disk, a file-size
    /// limit), as in Python's zipfile: the error is reported by this call alone (a second
    /// close does nothing), and the file is let go, so that it can be written again at once
    /// and no descriptor stays open on it; reads of this store are refused from then on.
    pub fn close(&self) -> Result<(), StorageError> {
        let Some(writer) = self.writer_here() else {
            return Ok(());
        };
        let mut writer = self.settle(writer);
        if writer.closed {
            return Ok(());
        }
        let written = self.write_directory(&mut writer);
        if written.is_err() {
            self.let_go(Some(writer.end));
        }
        writer.closed = true;
        release(writer.id);
        written
    }

    /// Ends writing without writing the central directory, and lets go of the file: for a
    /// zip about to be deleted unfinished (a failed conversion's). Reads are refused from
    /// then on. Does nothing more to a zip already closed than let go of its file.
    pub fn abandon(&self) {
        if let Some(writer) = self.writer_here() {
            let mut writer = self.settle(writer);
            if !writer.closed {
                writer.closed = true;
                release(writer.id);
            }
        }
        // (A process forked from the writer's lets go of its own copy of the descriptor.)
        self.let_go(None);
    }

    /// Lets go of the file. With `end` (the end of the entries of a zip whose directory could
    /// not be written), whatever follows it is cut off first: a directory written in part, or
    /// what is left of one an earlier flush wrote, whose end record would make the file pass
    /// for a whole zip. The file itself stays, as zarr-python and Python's zipfile leave it:
    /// it holds the values written, which zip repair tools (`zip -FF`) recover, and any
    /// reader refuses it as a zip with no central directory rather than reading a zip with
    /// values missing.
    fn let_go(&self, end: Option<u64>) {
        let file = self.file.write().unwrap_or_else(|e| e.into_inner()).take();
        if let (Some(file), Some(end)) = (file, end) {
            // Best effort: the error to report is the one that stopped the directory; should
            // this fail too, the file is incomplete all the same.
            if file.metadata().is_ok_and(|m| m.len() > end) {
                let _ = file.set_len(end);
            }
        }
    }

    /// `io` done with the file; an error naming `shown` if the file was let go.
    fn with_file<T>(
        &self,
        shown: &str,
        io: impl FnOnce(&File) -> std::io::Result<T>,
    ) -> Result<T, StorageError> {
        let file = self.file.read().unwrap_or_else(|e| e.into_inner());
        let Some(file) = file.as_ref() else {
            return Err(io_error(
                shown,
                std::io::Error::other(
                    "the zip file was left unfinished (its central directory was not \
                     written) and is no longer open",
                ),
            ));
        };
        io(file).map_err(|e| io_error(shown, e))
    }

    /// The writer's lock, once no entry is being written.
    fn settle<'a>(&self, writer: &'a Mutex<Writer>) -> MutexGuard<'a, Writer> {
        let mut guard = lock(writer);
        guard.flushes_waiting += 1;
        while guard.in_flight > 0 {
            guard = self.wait(guard);
        }
        guard.flushes_waiting -= 1;
        // Entries waiting for this flush may go on once it lets go of the lock.
        self.settled.notify_all();
        guard
    }

    fn wait<'a>(&self, guard: MutexGuard<'a, Writer>) -> MutexGuard<'a, Writer> {
        self.settled.wait(guard).unwrap_or_else(|e| e.into_inner())
    }

    /// Writes the central directory where the entries end, and cuts the file there,
    /// unless it is up to date (or the zip was closed). The caller holds the writer's lock
    /// with no entry in flight.
    fn write_directory(&self, writer: &mut Writer) -> Result<(), StorageError> {
        if !writer.dirty || writer.closed {
            return Ok(());
        }
        let mut dir: Vec<u8> = writer
            .kept
            .records
            .iter()
            .flat_map(|(_, r)| r.clone())
            .collect();
        let mut count = writer.kept.records.len() as u64;
        for slot in self.read_entries().values() {
            dir.extend_from_slice(&slot.record);
            count += 1;
        }
        let start = writer.end;
        if !self.zip64 {
            // As zipfile refuses it when it closes the zip.
            let why = match () {
                _ if count >= u64::from(u16::MAX) => Some("Files count"),
                _ if start > ZIP64_LIMIT => Some("Central directory offset"),
                _ if dir.len() as u64 > ZIP64_LIMIT => Some("Central directory size"),
                _ => None,
            };
            if let Some(why) = why {
                return Err(needs_zip64(&self.describe(), why));
            }
        }
        let ends = end_records(count, dir.len() as u64, start, &writer.kept.comment);
        dir.extend(ends);
        self.with_file(&self.describe(), |file| {
            file.write_all_at(&dir, start)?;
            file.set_len(start.saturating_add(dir.len() as u64))
        })?;
        writer.dirty = false;
        Ok(())
    }

    fn read_entries(&self) -> RwLockReadGuard<'_, BTreeMap<String, Slot>> {
        self.entries.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write_entries(&self) -> RwLockWriteGuard<'_, BTreeMap<String, Slot>> {
        self.entries.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The writer, if the zip is open for writing and not closed; else the error for a
    /// write of `key`.
    fn writer_for(&self, key: &str) -> Result<MutexGuard<'_, Writer>, StorageError> {
        if self.writer.is_some() && self.writer_here().is_none() {
            return Err(StorageError::ReadOnly {
                key: format!(
                    "{} (the zip file is open for writing in process {}, not this one)",
                    super::key_in(key, &self.describe()),
                    self.owner
                ),
            });
        }
        match self.writer_here().map(lock) {
            Some(w) if !w.closed => Ok(w),
            Some(_) => Err(self.closed(key)),
            None => Err(self.refuse(key)),
        }
    }

    fn closed(&self, key: &str) -> StorageError {
        StorageError::ReadOnly {
            key: format!(
                "{} (the zip file was closed)",
                super::key_in(key, &self.describe())
            ),
        }
    }

    /// The path of the zip file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The entry at `key`, if any, as the error messages name it.
    fn entry(&self, key: &str) -> Result<Option<(Entry, String)>, StorageError> {
        validate_key(key)?;
        let shown = || format!("{key} in {}", self.describe());
        match self.read_entries().get(key).map(|slot| &slot.entry) {
            None => Ok(None),
            Some(Ok(entry)) => Ok(Some((*entry, shown()))),
            Some(Err(why)) => Err(invalid_data(&shown(), format!("damaged entry: {why}"))),
        }
    }

    fn read_at(&self, shown: &str, offset: u64, dst: &mut [u8]) -> Result<(), StorageError> {
        self.with_file(shown, |file| file.read_exact_at(dst, offset))
    }

    /// An entry's stored bytes, as they are in the file.
    fn raw(&self, entry: &Entry, shown: &str) -> Result<Vec<u8>, StorageError> {
        let len =
            usize::try_from(entry.compressed_size).map_err(|_| StorageError::OutOfMemory {
                key: shown.to_string(),
                bytes: entry.compressed_size,
            })?;
        let mut raw = Vec::new();
        raw.try_reserve_exact(len)
            .map_err(|_| StorageError::OutOfMemory {
                key: shown.to_string(),
                bytes: entry.compressed_size,
            })?;
        raw.resize(len, 0);
        self.read_at(shown, entry.data_start, &mut raw)?;
        Ok(raw)
    }

    /// An entry's value: its bytes, inflated if deflated, checked against its CRC-32.
    fn value(&self, entry: &Entry, shown: &str) -> Result<Vec<u8>, StorageError> {
        if entry.encrypted {
            return Err(invalid_data(shown, "the entry is encrypted".into()));
        }
        let raw = self.raw(entry, shown)?;
        let value = match entry.method {
            Method::Stored => raw,
            Method::Deflated => sized(
                flate2::read::DeflateDecoder::new(&raw[..]),
                entry.size,
                shown,
                "inflate",
            )?,
            Method::Bzip2 => sized(
                bzip2::read::BzDecoder::new(&raw[..]),
                entry.size,
                shown,
                "decompress bzip2",
            )?,
            Method::Lzma => sized(
                lzma_entry(&raw, entry.size, shown)?,
                entry.size,
                shown,
                "decompress LZMA",
            )?,
            Method::Other(code) => {
                return Err(invalid_data(
                    shown,
                    format!(
                        "compressed with zip method {code}, which oxzarr does not read \
                         (entries stored, deflated, bzip2 or LZMA are read)"
                    ),
                ))
            }
        };
        Self::check_crc(entry, shown, crc32fast::hash(&value))?;
        Ok(value)
    }

    /// An error unless `crc`, of the whole value read, is the one the zip records for it.
    /// (Only whole values can be checked: a part of one is read as it is.)
    fn check_crc(entry: &Entry, shown: &str, crc: u32) -> Result<(), StorageError> {
        if crc == entry.crc32 {
            return Ok(());
        }
        Err(invalid_data(
            shown,
            format!(
                "CRC-32 {crc:08x} of the bytes read is not the {:08x} the zip records",
                entry.crc32
            ),
        ))
    }

    /// Where `range` of a stored entry lies in the file, and its length; an error if it
    /// reaches outside the entry.
    fn in_file(key: &str, entry: &Entry, range: ByteRange) -> Result<(u64, usize), StorageError> {
        let r = range
            .to_range(entry.size)
            .ok_or_else(|| StorageError::out_of_range(key, range, entry.size))?;
        // Within the entry, which lies within the file (checked when it was opened).
        Ok((entry.data_start + r.start, (r.end - r.start) as usize))
    }

    /// Whether byte ranges of the entry can be read from the file as they are.
    fn ranges_in_place(entry: &Entry) -> bool {
        entry.method == Method::Stored && !entry.encrypted
    }

    /// The value of `entry`, the entry at `key` (named `shown`), if it is held whole (see
    /// `hold_whole`): read now if no read has yet.
    fn held_value(
        &self,
        key: &str,
        entry: &Entry,
        shown: &str,
    ) -> Result<Option<Arc<Vec<u8>>>, StorageError> {
        if !self.holding.load(Ordering::Acquire) {
            return Ok(None);
        }
        let slot = match self.held_values().get(key) {
            Some(held) if held.entry_at == Some(entry.data_start) => held.value.clone(),
            _ => return Ok(None),
        };
        // The reads of the value's other parts wait for this one (an error is met by each).
        let mut value = slot.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(value) = &*value {
            return Ok(Some(value.clone()));
        }
        let read = Arc::new(self.value(entry, shown)?);
        *value = Some(read.clone());
        Ok(Some(read))
    }

    fn held_values(&self) -> MutexGuard<'_, HashMap<String, Held>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Holds the entry at `key` (`entry_at`: where its bytes start, if there is one) once
    /// more. Nothing is read yet: the first read of a part of it reads it whole.
    fn hold(&self, key: &str, entry_at: Option<u64>) {
        let mut held = self.held_values();
        // Whatever entry of the key a read holds already: the reads of another go to the file.
        let held = held.entry(key.to_string()).or_insert_with(|| Held {
            entry_at,
            value: Arc::default(),
            holds: 0,
        });
        held.holds += 1;
        self.holding.store(true, Ordering::Release);
    }

    /// The keys under `prefix`, sorted.
    fn keys_under(&self, prefix: &str) -> Vec<String> {
        self.read_entries()
            .range(prefix.to_string()..)
            .map(|(k, _)| k)
            .take_while(|k| k.starts_with(prefix))
            .cloned()
            .collect()
    }

    fn refuse(&self, key: &str) -> StorageError {
        StorageError::ReadOnly {
            key: format!(
                "{} (the zip file was opened read-only; \
                 oxzarr.storage.ZipStore(path, mode='a') writes to it)",
                super::key_in(key, &self.describe())
            ),
        }
    }

    /// The given byte ranges of an entry: read in place if it is stored, else from its value.
    fn ranges_of(
        &self,
        key: &str,
        entry: &Entry,
        shown: &str,
        ranges: &[ByteRange],
    ) -> Result<Vec<Vec<u8>>, StorageError> {
        if let Some(value) = self.held_value(key, entry, shown)? {
            return ranges.iter().map(|r| range_of(key, &value, *r)).collect();
        }
        if !Self::ranges_in_place(entry) {
            let value = self.value(entry, shown)?;
            return ranges.iter().map(|r| range_of(key, &value, *r)).collect();
        }
        let mut out = Vec::with_capacity(ranges.len());
        for range in ranges {
            let (at, len) = Self::in_file(key, entry, *range)?;
            let mut bytes = vec![0; len];
            self.read_at(shown, at, &mut bytes)?;
            if len as u64 == entry.size {
                Self::check_crc(entry, shown, crc32fast::hash(&bytes))?;
            }
            out.push(bytes);
        }
        Ok(out)
    }

    /// Drops the entries at `keys` from the directory (their bytes stay in the file).
    fn drop_entries(&self, keys: &[String]) -> Result<(), StorageError> {
        let first = keys.first().map_or("", String::as_str);
        let mut writer = self.writer_for(first)?;
        let gone = match self.zip64 {
            true => 0,
            false => (keys.iter())
                .filter(|key| self.read_entries().contains_key(*key))
                .count(),
        };
        if gone > 0 {
            // The directory is written again: a zip opened without ZIP64 records that has
            // outgrown them already (one added to) could not be finished.
            let entries = self.entries_in_directory(&writer);
            if entries.saturating_sub(gone) >= usize::from(u16::MAX) {
                return Err(needs_zip64(&self.describe(), "Files count"));
            }
            if writer.end > ZIP64_LIMIT {
                return Err(needs_zip64(&self.describe(), "Central directory offset"));
            }
        }
        let mut entries = self.write_entries();
        for key in keys {
            writer.dirty |= entries.remove(key).is_some();
        }
        Ok(())
    }
}

/// `parts`, one after the other, deflated at zlib's default level (Python's zipfile's).
fn deflate(parts: &[&[u8]]) -> std::io::Result<Vec<u8>> {
    let size: usize = parts.iter().map(|p| p.len()).sum();
    let mut encoder = flate2::write::DeflateEncoder::new(
        Vec::with_capacity(size / 2 + 64),
        flate2::Compression::default(),
    );
    for part in parts {
        encoder.write_all(part)?;
    }
    encoder.finish()
}

fn lock(writer: &Mutex<Writer>) -> MutexGuard<'_, Writer> {
    writer.lock().unwrap_or_else(|e| e.into_inner())
}

impl Drop for ZipStore {
    fn drop(&mut self) {
        // A store dropped without `close` still leaves a complete zip. An error here has
        // no one to go to; `close` reports it.
        let _ = self.close();
    }
}

impl ReadableStore for ZipStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let Some((entry, shown)) = self.entry(key)? else {
            return Ok(None);
        };
        if let Some(value) = self.held_value(key, &entry, &shown)? {
            return Ok(Some(value.to_vec()));
        }
        self.value(&entry, &shown).map(Some)
    }

    fn get_ranges(
        &self,
        key: &str,
        ranges: &[ByteRange],
    ) -> Result<Option<Vec<Vec<u8>>>, StorageError> {
        let Some((entry, shown)) = self.entry(key)? else {
            return Ok(None);
        };
        self.ranges_of(key, &entry, &shown, ranges).map(Some)
    }

    fn get_range_and_version(
        &self,
        key: &str,
        range: ByteRange,
    ) -> Result<Option<(Vec<u8>, Version)>, StorageError> {
        // One look-up: the bytes and the version are of the same entry, even while the key
        // is written again.
        let Some((entry, shown)) = self.entry(key)? else {
            return Ok(None);
        };
        let bytes = self.ranges_of(key, &entry, &shown, &[range])?.pop();
        Ok(bytes.map(|bytes| (bytes, entry.version())))
    }

    fn read_parts_into(
        &self,
        key: &str,
        parts: &mut [(u64, &mut [u8])],
        expected: Option<Version>,
    ) -> Result<PartsRead, StorageError> {
        let Some((entry, shown)) = self.entry(key)? else {
            return Ok(PartsRead::Missing);
        };
        if let Some(expected) = expected {
            let same = same_version(expected, entry.version());
            if same != PartsRead::Done {
                return Ok(same);
            }
        }
        if let Some(value) = self.held_value(key, &entry, &shown)? {
            return super::read_parts_of(key, &value, entry.version(), parts, None);
        }
        if !Self::ranges_in_place(&entry) {
            let value = self.value(&entry, &shown)?;
            return super::read_parts_of(key, &value, entry.version(), parts, None);
        }
        for (offset, dst) in parts.iter_mut() {
            let range = ByteRange::FromStart {
                offset: *offset,
                length: Some(dst.len() as u64),
            };
            let (at, _) = Self::in_file(key, &entry, range)?;
            self.read_at(&shown, at, dst)?;
        }
        // Parts that make up the whole value (a whole chunk read straight into the rows of
        // the output) are checked as the value would be.
        let mut order: Vec<usize> = (0..parts.len()).collect();
        order.sort_unstable_by_key(|&i| parts[i].0);
        let mut end = 0;
        let whole = order.iter().all(|&i| {
            let (offset, dst) = &parts[i];
            let next = *offset == end;
            end = offset + dst.len() as u64;
            next
        }) && end == entry.size;
        if whole {
            let mut crc = crc32fast::Hasher::new();
            for &i in &order {
                crc.update(parts[i].1);
            }
            Self::check_crc(&entry, &shown, crc.finalize())?;
        }
        Ok(PartsRead::Done)
    }

    fn size(&self, key: &str) -> Result<Option<u64>, StorageError> {
        Ok(self.entry(key)?.map(|(e, _)| e.size))
    }

    fn version(&self, key: &str) -> Result<Option<Version>, StorageError> {
        Ok(self.entry(key)?.map(|(e, _)| e.version()))
    }

    /// Holds the entry, to be read whole by the first read of a part of it: none may come
    /// (a shard whose inner chunks a read takes from the engine's cache of decoded chunks).
    fn hold_whole(&self, key: &str) -> Result<Option<u64>, StorageError> {
        let entry = self.entry(key)?;
        self.hold(key, entry.as_ref().map(|(e, _)| e.data_start));
        Ok(Some(0))
    }

    fn release_whole(&self, key: &str) {
        let mut held = self.held_values();
        if let Some(value) = held.get_mut(key) {
            value.holds = value.holds.saturating_sub(1);
            if value.holds == 0 {
                held.remove(key);
            }
        }
        if held.is_empty() {
            self.holding.store(false, Ordering::Release);
        }
    }

    fn holds_for_parts(&self) -> bool {
        true
    }

    /// Holds an entry stored compressed, whose parts cost a decompression of all of it each
    /// (a shard of 1024 inner chunks deflated was inflated 17 times by a read of it all), and
    /// one stored as it is whose every part the read takes, so that it is checked against its
    /// CRC-32 before any part is used, as a whole value is: parts read one by one in place
    /// are never checked, and a flipped byte in a shard read whole that way went unnoticed.
    fn hold_for_parts(&self, key: &str, every_part: bool) -> Result<bool, StorageError> {
        let Some((entry, _)) = self.entry(key)? else {
            return Ok(false);
        };
        if Self::ranges_in_place(&entry) && !every_part {
            return Ok(false);
        }
        self.hold(key, Some(entry.data_start));
        Ok(true)
    }
}

impl WritableStore for ZipStore {
    fn set(&self, key: &str, value: &[u8]) -> Result<(), StorageError> {
        self.set_parts(key, &[value]).map(|_| ())
    }

    /// A new stored entry at the end of the entries, replacing the key's entry in the
    /// directory once its bytes are written.
    fn set_parts(&self, key: &str, parts: &[&[u8]]) -> Result<Option<Version>, StorageError> {
        validate_key(key)?;
        let shown = format!("{key} in {}", self.describe());
        if key.len() > usize::from(u16::MAX) {
            return Err(StorageError::InvalidKey {
                key: key.to_string(),
                reason: "a zip entry's name is at most 65535 bytes".into(),
            });
        }
        let mut hasher = crc32fast::Hasher::new();
        let mut size = 0u64;
        for part in parts {
            hasher.update(part);
            size += part.len() as u64;
        }
        let now = chrono::Utc::now().timestamp();
        if !self.zip64 && size.saturating_add(size / 20) > ZIP64_LIMIT {
            // zipfile's margin: a value deflated can come out larger.
            return Err(needs_zip64(&shown, "Filesize"));
        }
        // Deflated on this thread, before the entry's place is reserved: its size is known
        // then, and threads compress at once.
        let deflated = match self.deflate {
            true => Some(deflate(parts).map_err(|e| io_error(&shown, e))?),
            false => None,
        };
        let deflated_part: [&[u8]; 1];
        let parts = match &deflated {
            Some(bytes) => {
                deflated_part = [bytes.as_slice()];
                &deflated_part[..]
            }
            None => parts,
        };
        let mut stored = Written {
            size,
            compressed_size: parts.iter().map(|p| p.len() as u64).sum(),
            deflated: deflated.is_some(),
            crc32: hasher.finalize(),
            header_at: 0,
            dos_time: dos_time(now),
        };
        let header = local_header(key, &stored);
        // The entry's place, reserved under the lock; its bytes are written outside it, so
        // that threads write their entries at once.
        let adding;
        (stored.header_at, adding) = {
            let mut writer = self.writer_for(key)?;
            while writer.flushes_waiting > 0 {
                writer = self.wait(writer);
            }
            if writer.closed {
                return Err(self.closed(key));
            }
            let at = writer.end;
            let end = at
                .checked_add(header.len() as u64 + stored.compressed_size)
                .ok_or_else(|| invalid_data(&shown, "the zip would outgrow 2^64 bytes".into()))?;
            let adding = !self.read_entries().contains_key(key);
            if !self.zip64 {
                // Refused here rather than when the directory is written (as zipfile does),
                // which would leave no readable zip: an entry past the limit, or an entry
                // more than the classic end record counts (its 0xFFFF means "see the ZIP64
                // record", so one fewer than zipfile allows), or a directory past the limit.
                let entries = self.entries_in_directory(&writer) + usize::from(adding);
                if entries >= usize::from(u16::MAX) {
                    return Err(needs_zip64(&shown, "Files count"));
                }
                if end > ZIP64_LIMIT {
                    return Err(needs_zip64(&shown, "Zipfile size"));
                }
            }
            writer.end = end;
            writer.in_flight += 1;
            writer.adding += usize::from(adding);
            (at, adding)
        };
        let written = self.write_entry(key, &shown, &header, parts, &stored);
        if let Some(writer) = self.writer_here() {
            let mut writer = lock(writer);
            writer.in_flight -= 1;
            writer.adding -= usize::from(adding);
            // Set here, not at the reservation: a flush meanwhile has not seen this entry.
            writer.dirty = true;
            if writer.in_flight == 0 {
                self.settled.notify_all();
            }
        }
        written.map(|entry| Some(entry.version()))
    }

    fn delete(&self, key: &str) -> Result<(), StorageError> {
        validate_key(key)?;
        self.drop_entries(&[key.to_string()])
    }

    fn delete_prefix(&self, prefix: &str) -> Result<(), StorageError> {
        validate_prefix(prefix)?;
        // Refused on a read-only zip even when nothing is under the prefix.
        let mut writer = self.writer_for(prefix)?;
        // Folder entries below the prefix go too: left, zarr-python takes each for a member
        // it does not recognize, and warns.
        let before = writer.kept.records.len();
        writer
            .kept
            .records
            .retain(|(name, _)| !name.starts_with(prefix));
        if writer.kept.records.len() != before {
            writer.dirty = true;
        }
        drop(writer);
        self.drop_entries(&self.keys_under(prefix))
    }
}

impl ZipStore {
    /// Writes an entry's header and bytes at the place reserved for it, then puts it in
    /// the directory in place of the key's old entry.
    fn write_entry(
        &self,
        key: &str,
        shown: &str,
        header: &[u8],
        parts: &[&[u8]],
        stored: &Written,
    ) -> Result<Entry, StorageError> {
        let data_start = stored.header_at + header.len() as u64;
        self.with_file(shown, |file| {
            let mut at = stored.header_at;
            for bytes in std::iter::once(header).chain(parts.iter().copied()) {
                file.write_all_at(bytes, at)?;
                at += bytes.len() as u64;
            }
            Ok(())
        })?;
        let entry = Entry {
            data_start,
            compressed_size: stored.compressed_size,
            size: stored.size,
            crc32: stored.crc32,
            method: match stored.deflated {
                true => Method::Deflated,
                false => Method::Stored,
            },
            encrypted: false,
        };
        let slot = Slot {
            entry: Ok(entry),
            record: central_record(key, stored),
        };
        self.write_entries().insert(key.to_string(), slot);
        Ok(entry)
    }
}

impl ListableStore for ZipStore {
    fn list_prefix(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        validate_prefix(prefix)?;
        Ok(self.keys_under(prefix))
    }

    fn list_dir(&self, prefix: &str) -> Result<ListDir, StorageError> {
        validate_prefix(prefix)?;
        Ok(list_dir_of(prefix, self.keys_under(prefix).iter()))
    }
}

impl Store for ZipStore {
    fn describe(&self) -> String {
        format!("zip://{}", self.path.display())
    }

    fn cache_namespace(&self) -> String {
        self.namespace.clone()
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    /// A zip of `entries` (name, bytes), stored without compression, as zarr-python writes.
    fn zip_of(entries: &[(&str, &[u8])]) -> (tempfile_path::TempZip, ZipStore) {
        let zip = tempfile_path::TempZip::new();
        let file = File::create(&zip.0).unwrap();
        let mut writer = zip::ZipWriter::new(file);
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        for (name, bytes) in entries {
            writer.start_file(*name, options).unwrap();
            writer.write_all(bytes).unwrap();
        }
        writer.finish().unwrap();
        let store = ZipStore::open(&zip.0).unwrap();
        (zip, store)
    }

    mod tempfile_path {
        /// A path for a zip file, removed when dropped.
        pub struct TempZip(pub std::path::PathBuf);

        impl TempZip {
            pub fn new() -> Self {
                static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
                let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Self(
                    std::env::temp_dir()
                        .join(format!("oxzarr-zip-test-{}-{n}.zip", std::process::id())),
                )
            }
        }

        impl Drop for TempZip {
            fn drop(&mut self) {
                let _ = std::fs::remove_file(&self.0);
            }
        }
    }

    #[test]
    fn reads_lists_and_refuses_writes() -> Result<(), StorageError> {
        let (_zip, store) = zip_of(&[
            ("zarr.json", b"{}"),
            ("a/c/0", b"0123456789"),
            ("a/c/1", b"ab"),
            ("a.b/x", b"y"),
        ]);
        assert_eq!(store.get("a/c/0")?.as_deref(), Some(&b"0123456789"[..]));
        assert_eq!(store.get("a/c/2")?, None);
        let ranges = [
            ByteRange::FromStart {
                offset: 2,
                length: Some(3),
            },
            ByteRange::Suffix(2),
        ];
        assert_eq!(
            store.get_ranges("a/c/0", &ranges)?,
            Some(vec![b"234".to_vec(), b"89".to_vec()])
        );
        let too_far = [ByteRange::FromStart {
            offset: 8,
            length: Some(3),
        }];
        assert!(store.get_ranges("a/c/0", &too_far).is_err());
        let version = store.version("a/c/0")?;
        let mut buf = [0u8; 4];
        let read = store.read_parts_into("a/c/0", &mut [(6, &mut buf[..])], version)?;
        assert_eq!((read, &buf), (PartsRead::Done, b"6789"));
        let other = Some(Version::of_size(11));
        let read = store.read_parts_into("a/c/0", &mut [(6, &mut buf[..])], other)?;
        assert_eq!(read, PartsRead::WrongSize(10));
        assert_eq!(store.list_prefix("a/")?, vec!["a/c/0", "a/c/1"]);
        let root = store.list_dir("")?;
        assert_eq!(root.keys, vec!["zarr.json"]);
        assert_eq!(root.prefixes, vec!["a.b/", "a/"]);
        assert!(matches!(
            store.set("a/c/0", b"x"),
            Err(StorageError::ReadOnly { .. })
        ));
        assert!(store.get("../x").is_err());
        Ok(())
    }

    /// Every entry of the zip at `path` as the `zip` crate reads it, checking CRC-32s.
    fn entries_of(path: &Path) -> Vec<(String, Vec<u8>)> {
        let mut archive = zip::ZipArchive::new(File::open(path).unwrap()).unwrap();
        (0..archive.len())
            .map(|i| {
                let mut entry = archive.by_index(i).unwrap();
                let mut bytes = Vec::new();
                entry.read_to_end(&mut bytes).unwrap();
                (entry.name().to_string(), bytes)
            })
            .collect()
    }

    #[test]
    fn writes_read_back_and_in_other_readers() -> Result<(), StorageError> {
        let zip = tempfile_path::TempZip::new();
        let store = ZipStore::open_for_writing(&zip.0, ZipMode::CreateNew)?;
        store.set("zarr.json", b"{}")?;
        store.set("a/c/0", b"0123456789")?;
        store.set_parts("a/c/1", &[b"ab", b"", b"cd"])?;
        store.set("a/c/2", b"gone")?;
        // Read back before the directory is written, ranges in place.
        assert_eq!(store.get("a/c/1")?.as_deref(), Some(&b"abcd"[..]));
        let v1 = store.version("a/c/0")?;
        store.set("a/c/0", b"replaced")?;
        assert_ne!(store.version("a/c/0")?, v1);
        assert_eq!(
            store.get_ranges("a/c/0", &[ByteRange::Suffix(3)])?,
            Some(vec![b"ced".to_vec()])
        );
        store.delete("a/c/2")?;
        store.delete("not/there")?;
        assert_eq!(store.list_prefix("a/")?, vec!["a/c/0", "a/c/1"]);
        store.close()?;
        // One entry per key, the last value, with right CRC-32s.
        let want = vec![
            ("a/c/0".to_string(), b"replaced".to_vec()),
            ("a/c/1".to_string(), b"abcd".to_vec()),
            ("zarr.json".to_string(), b"{}".to_vec()),
        ];
        assert_eq!(entries_of(&zip.0), want);
        // Closed: reads go on, writes are refused.
        assert_eq!(store.get("zarr.json")?.as_deref(), Some(&b"{}"[..]));
        let err = store.set("x", b"y").unwrap_err().to_string();
        assert!(err.contains("closed"), "{err}");
        let again = ZipStore::open(&zip.0)?;
        assert_eq!(again.get("a/c/0")?.as_deref(), Some(&b"replaced"[..]));
        assert!(matches!(
            again.set("a/c/0", b"x"),
            Err(StorageError::ReadOnly { .. })
        ));
        // x refuses an existing file.
        assert!(ZipStore::open_for_writing(&zip.0, ZipMode::CreateNew).is_err());
        Ok(())
    }

    #[test]
    fn one_writer_per_file_in_a_process() -> Result<(), StorageError> {
        let zip = tempfile_path::TempZip::new();
        let first = ZipStore::open_for_writing(&zip.0, ZipMode::Create)?;
        first.set("k", b"v")?;
        first.flush()?;
        let err = ZipStore::open_for_writing(&zip.0, ZipMode::Create).unwrap_err();
        assert!(
            err.to_string().contains("already open for writing"),
            "{err}"
        );
        first.close()?;
        // The refused open truncated nothing.
        assert_eq!(entries_of(&zip.0), vec![("k".to_string(), b"v".to_vec())]);
        let second = ZipStore::open_for_writing(&zip.0, ZipMode::Append)?;
        drop(second);
        drop(first);
        Ok(())
    }

    #[test]
    fn a_store_dropped_unclosed_leaves_a_complete_zip() -> Result<(), StorageError> {
        let zip = tempfile_path::TempZip::new();
        let store = ZipStore::open_for_writing(&zip.0, ZipMode::Create)?;
        store.set("k", b"v")?;
        drop(store);
        assert_eq!(entries_of(&zip.0), vec![("k".to_string(), b"v".to_vec())]);
        // An empty zip is still a zip.
        drop(ZipStore::open_for_writing(&zip.0, ZipMode::Create)?);
        assert_eq!(entries_of(&zip.0), vec![]);
        Ok(())
    }

    #[test]
    fn a_close_that_fails_ends_writing_all_the_same() -> Result<(), StorageError> {
        // Every write to /dev/full fails (ENOSPC), the directory's too: the zip stayed open
        // for writing in this process, and close failed again each time it was called.
        let full = Path::new("/dev/full");
        let store = ZipStore::open_for_writing(full, ZipMode::Create)?;
        assert!(store.set("k", b"v").is_err());
        let err = store.close().unwrap_err().to_string();
        assert!(err.contains("/dev/full"), "{err}");
        store.close()?;
        assert!(store
            .set("k", b"v")
            .unwrap_err()
            .to_string()
            .contains("closed"));
        let again = ZipStore::open_for_writing(full, ZipMode::Create)?;
        assert!(again.close().is_err());
        drop(store);
        Ok(())
    }

    #[test]
    fn an_abandoned_zip_lets_go_of_its_file() -> Result<(), StorageError> {
        let zip = tempfile_path::TempZip::new();
        let store = ZipStore::open_for_writing(&zip.0, ZipMode::Create)?;
        store.set("k", b"v")?;
        store.abandon();
        // No directory written, and no descriptor left on the file.
        assert!(zip::ZipArchive::new(File::open(&zip.0).unwrap()).is_err());
        let open_on_it = std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
            .filter(|target| *target == zip.0)
            .count();
        assert_eq!(open_on_it, 0);
        let err = store.get("k").unwrap_err().to_string();
        assert!(err.contains("no longer open"), "{err}");
        assert!(store
            .set("k", b"v")
            .unwrap_err()
            .to_string()
            .contains("closed"));
        store.close()?;
        // Another store may write the file.
        ZipStore::open_for_writing(&zip.0, ZipMode::Create)?.close()?;
        assert_eq!(entries_of(&zip.0), vec![]);
        Ok(())
    }

    #[test]
    fn appends_keep_what_was_there() -> Result<(), StorageError> {
        let (zip, _) = zip_of(&[("zarr.json", b"{}"), ("a/c/0", b"old"), ("b/", b"")]);
        let store = ZipStore::open_for_writing(&zip.0, ZipMode::Append)?;
        assert_eq!(store.get("a/c/0")?.as_deref(), Some(&b"old"[..]));
        store.set("a/c/0", b"new")?;
        store.set("a/c/1", b"more")?;
        store.close()?;
        let mut got = entries_of(&zip.0);
        got.sort();
        let want = [
            ("a/c/0", &b"new"[..]),
            ("a/c/1", b"more"),
            ("b/", b""),
            ("zarr.json", b"{}"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_vec()));
        assert_eq!(got, want);
        // Opened to add to and closed without a write: the file is left as it was.
        let before = std::fs::read(&zip.0).unwrap();
        ZipStore::open_for_writing(&zip.0, ZipMode::Append)?.close()?;
        assert_eq!(std::fs::read(&zip.0).unwrap(), before);
        // Not a zip: refused, naming the file, and the file is left alone.
        std::fs::write(&zip.0, b"not a zip").unwrap();
        let err = ZipStore::open_for_writing(&zip.0, ZipMode::Append).unwrap_err();
        assert!(err.to_string().contains("not a readable zip"), "{err}");
        assert_eq!(std::fs::read(&zip.0).unwrap(), b"not a zip");
        Ok(())
    }

    #[test]
    fn close_waits_for_the_entries_in_flight() -> Result<(), StorageError> {
        // Threads write while another closes the zip: every write that succeeded is in the
        // zip, and the directory is not written over by a write that came after it.
        for round in 0..20 {
            let zip = tempfile_path::TempZip::new();
            let store = ZipStore::open_for_writing(&zip.0, ZipMode::Create)?;
            let written = std::sync::Mutex::new(Vec::new());
            std::thread::scope(|s| {
                for t in 0..4u8 {
                    let (store, written) = (&store, &written);
                    s.spawn(move || {
                        for i in 0.. {
                            let key = format!("c/{t}/{i}");
                            match store.set(&key, &[t; 300]) {
                                Ok(()) => written.lock().unwrap().push(key),
                                Err(e) => {
                                    assert!(e.to_string().contains("closed"), "{e}");
                                    break;
                                }
                            }
                        }
                    });
                }
                std::thread::sleep(std::time::Duration::from_millis(1 + round % 3));
                store.close().unwrap();
            });
            let mut written = written.into_inner().unwrap();
            written.sort();
            let got: Vec<String> = entries_of(&zip.0).into_iter().map(|(k, _)| k).collect();
            let mut got = got;
            got.sort();
            assert_eq!(got, written, "round {round}");
        }
        Ok(())
    }

    #[test]
    fn additions_refused_keep_the_file_and_comments_are_kept() -> Result<(), StorageError> {
        // A zip with a comment keeps it when added to.
        let zip = tempfile_path::TempZip::new();
        let mut writer = zip::ZipWriter::new(File::create(&zip.0).unwrap());
        writer.set_comment("made by a test");
        writer
            .start_file("a", zip::write::SimpleFileOptions::default())
            .unwrap();
        writer.write_all(b"1").unwrap();
        writer.finish().unwrap();
        let store = ZipStore::open_for_writing(&zip.0, ZipMode::Append)?;
        store.set("b", b"2")?;
        store.close()?;
        let archive = zip::ZipArchive::new(File::open(&zip.0).unwrap()).unwrap();
        assert_eq!(archive.comment(), b"made by a test");
        assert_eq!(archive.len(), 2);
        drop(archive);
        // Data before the zip, and a directory said to start past the end of the file: the
        // zip is not added to, and the file is left as it was.
        let original = std::fs::read(&zip.0).unwrap();
        let mut prefixed = b"junk before".to_vec();
        prefixed.extend_from_slice(&original);
        let mut empty = Vec::new();
        zip::ZipWriter::new(std::io::Cursor::new(&mut empty))
            .finish()
            .unwrap();
        let at = empty.len() - 6;
        empty[at..at + 4].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
        for (bytes, why) in [(prefixed, "after other data"), (empty, "past the end")] {
            std::fs::write(&zip.0, &bytes).unwrap();
            let readable = ZipStore::open(&zip.0).is_ok();
            assert!(readable, "the zip crate reads it: {why}");
            let err = ZipStore::open_for_writing(&zip.0, ZipMode::Append).unwrap_err();
            assert!(err.to_string().contains(why), "{err}");
            assert_eq!(std::fs::read(&zip.0).unwrap(), bytes);
        }
        Ok(())
    }

    #[test]
    fn threads_write_at_once() -> Result<(), StorageError> {
        let zip = tempfile_path::TempZip::new();
        let store = ZipStore::open_for_writing(&zip.0, ZipMode::Create)?;
        std::thread::scope(|s| {
            for t in 0..8u8 {
                let store = &store;
                s.spawn(move || {
                    for i in 0..200u32 {
                        let value = vec![t; (i % 17) as usize + 1];
                        store.set(&format!("c/{t}/{i}"), &value).unwrap();
                        if i % 50 == 0 {
                            store.flush().unwrap();
                        }
                    }
                });
            }
        });
        store.close()?;
        let got = entries_of(&zip.0);
        assert_eq!(got.len(), 1600);
        for (name, bytes) in got {
            let mut parts = name.split('/').skip(1);
            let t: u8 = parts.next().unwrap().parse().unwrap();
            let i: u32 = parts.next().unwrap().parse().unwrap();
            assert_eq!(bytes, vec![t; (i % 17) as usize + 1], "{name}");
        }
        Ok(())
    }

    #[test]
    fn zip64_past_65535_entries_and_4_gib() -> Result<(), StorageError> {
        let zip = tempfile_path::TempZip::new();
        let store = ZipStore::open_for_writing(&zip.0, ZipMode::Create)?;
        for i in 0..70_000u32 {
            store.set(&format!("c/{i}"), &i.to_le_bytes())?;
        }
        store.close()?;
        let again = ZipStore::open(&zip.0)?;
        assert_eq!(again.list_prefix("")?.len(), 70_000);
        assert_eq!(
            again.get("c/69999")?,
            Some(69_999u32.to_le_bytes().to_vec())
        );
        drop(again);
        // Added to: its ZIP64 end records are read, and written again with one more.
        let more = ZipStore::open_for_writing(&zip.0, ZipMode::Append)?;
        more.set("c/70000", b"x")?;
        more.close()?;
        assert_eq!(entries_of(&zip.0).len(), 70_001);
        // An entry whose header lies past 4 GiB (the file is sparse up to it): its offset
        // and the directory's go into ZIP64 fields.
        let store = ZipStore::open_for_writing(&zip.0, ZipMode::Create)?;
        store.set("near", b"1")?;
        if let Some(writer) = &store.writer {
            lock(writer).end = 5 << 30;
        }
        store.set("far", b"2")?;
        store.close()?;
        // The directory's record of "far" gives its offset in the ZIP64 extra field only
        // (its sizes fit), and the end records are the ZIP64 ones, then the classic one with
        // the directory's offset all ones.
        // The file's tail only: the rest is 5 GiB of holes.
        let file = File::open(&zip.0).unwrap();
        let len = file.metadata().unwrap().len();
        let mut raw = vec![0u8; 512];
        file.read_exact_at(&mut raw, len - 512).unwrap();
        let record = raw
            .windows(49)
            .position(|w| w[..4] == *b"PK\x01\x02" && w[46..] == *b"far")
            .unwrap();
        let record = &raw[record..];
        assert_eq!(&record[42..46], &[0xFF; 4]);
        assert_eq!(&record[46..49], b"far");
        assert_eq!(&record[49..53], &[1, 0, 8, 0]);
        assert_eq!(
            u64::from_le_bytes(record[53..61].try_into().unwrap()),
            5 << 30
        );
        let classic = &raw[raw.len() - 22..];
        assert_eq!(&classic[..4], b"PK\x05\x06");
        assert_eq!(&classic[16..20], &[0xFF; 4]);
        assert_eq!(&raw[raw.len() - 42..raw.len() - 38], b"PK\x06\x07");
        let mut got = entries_of(&zip.0);
        got.sort();
        assert_eq!(
            got,
            vec![
                ("far".to_string(), b"2".to_vec()),
                ("near".to_string(), b"1".to_vec())
            ]
        );
        Ok(())
    }

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    #[test]
    fn whole_stored_values_are_checked_against_their_crc() -> TestResult {
        let (zip, _) = zip_of(&[("c/0", b"0123456789"), ("c/1", b"abcdefghij")]);
        let mut raw = std::fs::read(&zip.0)?;
        let at = raw
            .windows(10)
            .position(|w| w == b"0123456789")
            .ok_or("no c/0")?;
        raw[at + 4] = b'X';
        std::fs::write(&zip.0, &raw)?;
        let store = ZipStore::open(&zip.0)?;
        let crc = |r: Result<Vec<Vec<u8>>, StorageError>| match r {
            Err(e) => e.to_string().contains("CRC-32") && e.to_string().contains("c/0 in zip://"),
            Ok(_) => false,
        };
        let whole = [ByteRange::FromStart {
            offset: 0,
            length: None,
        }];
        assert!(crc(store.get("c/0").map(|v| vec![v.unwrap_or_default()])));
        assert!(crc(store
            .get_ranges("c/0", &whole)
            .map(Option::unwrap_or_default)));
        let (mut front, mut back) = ([0u8; 6], [0u8; 4]);
        let read = store.read_parts_into("c/0", &mut [(6, &mut back[..]), (0, &mut front)], None);
        assert!(crc(read.map(|_| Vec::new())));
        // A part of a value cannot be checked, and is read as it is.
        let part = [ByteRange::FromStart {
            offset: 0,
            length: Some(3),
        }];
        assert_eq!(store.get_ranges("c/0", &part)?, Some(vec![b"012".to_vec()]));
        let read = store.read_parts_into("c/0", &mut [(0, &mut front[..])], None)?;
        assert_eq!((read, &front), (PartsRead::Done, b"0123X5"));
        // The other entry is sound, read whole or in parts.
        assert_eq!(
            store.get_ranges("c/1", &whole)?,
            Some(vec![b"abcdefghij".to_vec()])
        );
        let read =
            store.read_parts_into("c/1", &mut [(6, &mut back[..]), (0, &mut front)], None)?;
        assert_eq!((read, &front, &back), (PartsRead::Done, b"abcdef", b"ghij"));
        Ok(())
    }

    #[test]
    fn entries_whose_local_header_is_another_entry_s_are_refused_when_read() -> TestResult {
        let (zip, _) = zip_of(&[("c/0", b"0123456789"), ("c/1", b"abcdefghij")]);
        // The directory's record of c/1 renamed c/2: it points at c/1's local header.
        let mut raw = std::fs::read(&zip.0)?;
        let central = raw
            .windows(4)
            .rposition(|w| w == b"PK\x01\x02")
            .ok_or("no record")?;
        raw[central + 46..central + 49].copy_from_slice(b"c/2");
        std::fs::write(&zip.0, &raw)?;
        let store = ZipStore::open(&zip.0)?;
        assert_eq!(store.list_prefix("c/")?, vec!["c/0", "c/2"]);
        assert_eq!(store.get("c/0")?.as_deref(), Some(&b"0123456789"[..]));
        let err = store
            .get("c/2")
            .err()
            .ok_or("c/1's bytes read as c/2")?
            .to_string();
        assert!(err.contains("another entry's local header") && err.contains("c/2 in zip://"));
        Ok(())
    }

    #[test]
    fn entries_past_the_end_of_the_file_are_refused_when_read() {
        let (zip, _) = zip_of(&[("a", &[7u8; 100])]);
        // Claim a larger size in both headers' size fields: the central directory then
        // points past the end of the file.
        let mut raw = std::fs::read(&zip.0).unwrap();
        let central = raw.windows(4).rposition(|w| w == b"PK\x01\x02").unwrap();
        raw[central + 20..central + 24].copy_from_slice(&u32::MAX.to_le_bytes());
        raw[central + 24..central + 28].copy_from_slice(&u32::MAX.to_le_bytes());
        std::fs::write(&zip.0, &raw).unwrap();
        // The zip opens; the entry is listed, and reading it fails, naming it.
        let store = ZipStore::open(&zip.0).unwrap();
        assert_eq!(store.list_prefix("").unwrap(), vec!["a"]);
        let err = store.get("a").unwrap_err().to_string();
        assert!(
            err.contains("past the end") && err.contains("a in zip://"),
            "{err}"
        );
    }

    #[test]
    fn values_held_whole_serve_their_parts() -> TestResult {
        // A deflated entry: held, it is inflated by the first read of a part, and the others
        // come from it (the file's bytes are not read again: garbled, they go unnoticed).
        let zip = tempfile_path::TempZip::new();
        let writer = ZipStore::open_for_writing(&zip.0, ZipMode::Create)?.with_deflated_entries();
        writer.set("c/0", b"0123456789")?;
        writer.close()?;
        let store = ZipStore::open(&zip.0)?;
        assert!(store.holds_for_parts());
        assert!(store.hold_for_parts("c/0", false)?);
        assert!(!store.hold_for_parts("c/1", false)?);
        let mut part = [0u8; 3];
        store.read_parts_into("c/0", &mut [(4, &mut part[..])], None)?;
        assert_eq!(&part, b"456");
        let entry = store.entry("c/0")?.ok_or("no c/0")?.0;
        let garbled = vec![0xAA; entry.compressed_size as usize];
        OpenOptions::new()
            .write(true)
            .open(&zip.0)?
            .write_all_at(&garbled, entry.data_start)?;
        assert_eq!(
            store.get_ranges("c/0", &[ByteRange::Suffix(2)])?,
            Some(vec![b"89".to_vec()])
        );
        assert_eq!(store.get("c/0")?.as_deref(), Some(&b"0123456789"[..]));
        // Held twice (another read), let go twice: then read from the file.
        assert_eq!(store.hold_whole("c/0")?, Some(0));
        store.release_whole("c/0");
        assert!(store.holding.load(Ordering::Acquire));
        store.release_whole("c/0");
        assert!(!store.holding.load(Ordering::Acquire) && store.held_values().is_empty());
        assert!(store.get("c/0").is_err());
        Ok(())
    }

    #[test]
    fn a_key_written_again_is_not_read_from_its_old_value_held() -> TestResult {
        let zip = tempfile_path::TempZip::new();
        let store = ZipStore::open_for_writing(&zip.0, ZipMode::Create)?.with_deflated_entries();
        store.set("k", b"old")?;
        assert_eq!(store.hold_whole("k")?, Some(0));
        assert_eq!(store.get("k")?.as_deref(), Some(&b"old"[..]));
        store.set("k", b"new!")?;
        assert_eq!(store.get("k")?.as_deref(), Some(&b"new!"[..]));
        assert_eq!(
            store.get_ranges("k", &[ByteRange::Suffix(4)])?,
            Some(vec![b"new!".to_vec()])
        );
        store.release_whole("k");
        // A key with no entry is held as none (and let go as often).
        assert_eq!(store.hold_whole("gone")?, Some(0));
        store.set("gone", b"here")?;
        assert_eq!(store.get("gone")?.as_deref(), Some(&b"here"[..]));
        store.release_whole("gone");
        assert!(store.held_values().is_empty());
        Ok(())
    }

    #[test]
    fn stored_entries_held_for_all_their_parts_are_checked() -> TestResult {
        let (zip, _) = zip_of(&[("c/0", b"0123456789")]);
        let mut raw = std::fs::read(&zip.0)?;
        let at = raw
            .windows(10)
            .position(|w| w == b"0123456789")
            .ok_or("no c/0")?;
        raw[at + 4] = b'X';
        std::fs::write(&zip.0, &raw)?;
        let store = ZipStore::open(&zip.0)?;
        // A read of some parts: read in place, as they are.
        assert!(!store.hold_for_parts("c/0", false)?);
        let mut part = [0u8; 6];
        store.read_parts_into("c/0", &mut [(4, &mut part[..])], None)?;
        assert_eq!(&part, b"X56789");
        // A read of every part: the first reads the entry whole, and every one is refused.
        assert!(store.hold_for_parts("c/0", true)?);
        let crc = |e: StorageError| e.to_string().contains("CRC-32 ");
        let index = store.get_ranges("c/0", &[ByteRange::Suffix(2)]);
        assert!(index.err().is_some_and(crc));
        let read = store.read_parts_into("c/0", &mut [(0, &mut part[..4])], None);
        assert!(read.err().is_some_and(crc));
        store.release_whole("c/0");
        // A sound entry reads.
        let (_zip, store) = zip_of(&[("c/0", b"0123456789")]);
        assert!(store.hold_for_parts("c/0", true)?);
        store.read_parts_into("c/0", &mut [(4, &mut part[..])], None)?;
        assert_eq!(&part, b"456789");
        store.release_whole("c/0");
        Ok(())
    }

    #[test]
    fn without_zip64_writes_that_need_it_are_refused() -> TestResult {
        let too_large = |r: Result<(), StorageError>, what: &str| match r {
            Err(StorageError::Io { source, key }) => {
                source.kind() == std::io::ErrorKind::FileTooLarge
                    && source.to_string().starts_with(what)
                    && key.contains("zip://")
            }
            _ => false,
        };
        let zip = tempfile_path::TempZip::new();
        let store = ZipStore::open_for_writing(&zip.0, ZipMode::Create)?.without_zip64();
        // As many entries as a classic end record counts (0xFFFF is "see the ZIP64 record").
        for i in 0..65_534u32 {
            store.set(&format!("c/{i}"), b"")?;
        }
        assert!(too_large(store.set("c/65534", b""), "Files count"));
        store.set("c/0", b"rewritten")?;
        store.delete("c/1")?;
        store.set("c/65534", b"")?;
        store.close()?;
        let archive = zip::ZipArchive::new(File::open(&zip.0)?)?;
        assert_eq!(archive.len(), 65_534);
        drop(archive);
        let mut raw = vec![0u8; 22];
        let file = File::open(&zip.0)?;
        file.read_exact_at(&mut raw, file.metadata()?.len() - 22)?;
        assert_eq!(&raw[..4], b"PK\x05\x06");
        assert_eq!(u16::from_le_bytes([raw[10], raw[11]]), 65_534);
        // An entry, or the directory, past 2 GiB.
        let store = ZipStore::open_for_writing(&zip.0, ZipMode::Create)?.without_zip64();
        store.set("near", b"1")?;
        if let Some(writer) = &store.writer {
            lock(writer).end = ZIP64_LIMIT - 40;
        }
        assert!(too_large(store.set("far", &[0; 10]), "Zipfile size"));
        store.set("close", b"2")?;
        if let Some(writer) = &store.writer {
            lock(writer).end = ZIP64_LIMIT + 1;
        }
        assert!(too_large(store.delete("near"), "Central directory offset"));
        let closed = store.close();
        assert!(too_large(closed, "Central directory offset"));
        Ok(())
    }
}
