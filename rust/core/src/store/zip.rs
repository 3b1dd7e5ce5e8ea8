//! A zip file as a read-only store, as zarr-python's `ZipStore` writes them (and zarrita.js
//! and others read them): each value is an entry named by its key.
//!
//! The central directory is read once, when the store is opened, with the `zip` crate; every
//! read then goes to the entry's bytes with positioned reads of the file, from many threads
//! at once. Entries stored without compression (zarr-python's choice, since chunks are
//! compressed already) serve byte ranges straight from the file, so a shard's index and its
//! inner chunks cost a read each, as in a directory. Deflated entries are inflated whole.
//! Whole values are checked against the entry's CRC-32. A zip may name an entry more than
//! once (zarr-python appends a new entry for a rewritten key): the last one counts, as in
//! Python's `zipfile`.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

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
    /// Another compression method (bzip2, zstd, ...), reported when the entry is read.
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
        }
    }
}

/// An entry as the central directory describes it, or why it cannot be read.
type Described = Result<Entry, Arc<str>>;

/// Where an entry's bytes are and how they are stored, checked against the file's length.
fn describe<R: Read>(entry: &zip::read::ZipFile<'_, R>, file_len: u64) -> Result<Entry, String> {
    let data_start = entry
        .data_start()
        .ok_or_else(|| "its bytes cannot be found".to_string())?;
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
        code => Method::Other(code),
    };
    if method == Method::Stored && compressed_size != entry.size() {
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

/// A zip file, read-only.
#[derive(Debug)]
pub struct ZipStore {
    path: PathBuf,
    file: File,
    entries: BTreeMap<String, Described>,
}

fn io_error(key: &str, source: std::io::Error) -> StorageError {
    StorageError::Io {
        key: key.to_string(),
        source,
    }
}

fn invalid_data(key: &str, message: String) -> StorageError {
    io_error(
        key,
        std::io::Error::new(std::io::ErrorKind::InvalidData, message),
    )
}

impl ZipStore {
    /// Opens the zip file at `path` and reads its central directory.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, StorageError> {
        let path = path.into();
        let shown = path.display().to_string();
        let file = File::open(&path).map_err(|e| io_error(&shown, e))?;
        let file_len = file.metadata().map_err(|e| io_error(&shown, e))?.len();
        // Buffered: the crate reads the directory in small pieces.
        let mut archive = zip::ZipArchive::new(std::io::BufReader::new(&file))
            .map_err(|e| invalid_data(&shown, format!("not a readable zip file: {e}")))?;
        let mut entries = BTreeMap::new();
        for i in 0..archive.len() {
            let Some(name) = archive.name_for_index(i).map(str::to_string) else {
                continue;
            };
            // An entry the directory describes wrongly is kept with the reason: reading it
            // fails, naming it, and the other entries read, as with Python's zipfile.
            let described = match archive.by_index_raw(i) {
                Ok(entry) if entry.is_dir() => continue,
                Ok(entry) => describe(&entry, file_len),
                Err(_) if name.ends_with('/') => continue,
                Err(e) => Err(e.to_string()),
            };
            entries.insert(name, described.map_err(Arc::from));
        }
        drop(archive);
        Ok(Self {
            path,
            file,
            entries,
        })
    }

    /// The path of the zip file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The entry at `key`, if any, as the error messages name it.
    fn entry(&self, key: &str) -> Result<Option<(Entry, String)>, StorageError> {
        validate_key(key)?;
        let shown = || format!("{key} in {}", self.describe());
        match self.entries.get(key) {
            None => Ok(None),
            Some(Ok(entry)) => Ok(Some((*entry, shown()))),
            Some(Err(why)) => Err(invalid_data(&shown(), format!("damaged entry: {why}"))),
        }
    }

    fn read_at(&self, shown: &str, offset: u64, dst: &mut [u8]) -> Result<(), StorageError> {
        self.file
            .read_exact_at(dst, offset)
            .map_err(|e| io_error(shown, e))
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
            Method::Deflated => {
                // Read one byte beyond the declared size, to tell a longer stream.
                let mut out = Vec::new();
                flate2::read::DeflateDecoder::new(&raw[..])
                    .take(entry.size.saturating_add(1))
                    .read_to_end(&mut out)
                    .map_err(|e| invalid_data(shown, format!("cannot inflate: {e}")))?;
                if out.len() as u64 != entry.size {
                    return Err(invalid_data(
                        shown,
                        format!(
                            "inflates to {} bytes where the directory says {}",
                            out.len(),
                            entry.size
                        ),
                    ));
                }
                out
            }
            Method::Other(code) => {
                return Err(invalid_data(
                    shown,
                    format!(
                        "compressed with zip method {code}, which oxzarr does not read \
                         (entries stored or deflated are read)"
                    ),
                ))
            }
        };
        let crc = crc32fast::hash(&value);
        if crc != entry.crc32 {
            return Err(invalid_data(
                shown,
                format!(
                    "CRC-32 {crc:08x} of the bytes read is not the {:08x} the zip records",
                    entry.crc32
                ),
            ));
        }
        Ok(value)
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

    fn keys_under<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = &'a String> + 'a {
        self.entries
            .range(prefix.to_string()..)
            .map(|(k, _)| k)
            .take_while(move |k| k.starts_with(prefix))
    }

    fn refuse(&self, key: &str) -> StorageError {
        StorageError::ReadOnly {
            key: format!("{key} in {} (zip files are read-only)", self.describe()),
        }
    }
}

impl ReadableStore for ZipStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let Some((entry, shown)) = self.entry(key)? else {
            return Ok(None);
        };
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
        if !Self::ranges_in_place(&entry) {
            let value = self.value(&entry, &shown)?;
            return ranges
                .iter()
                .map(|r| range_of(key, &value, *r))
                .collect::<Result<Vec<_>, _>>()
                .map(Some);
        }
        let mut out = Vec::with_capacity(ranges.len());
        for range in ranges {
            let (at, len) = Self::in_file(key, &entry, *range)?;
            let mut bytes = vec![0; len];
            self.read_at(&shown, at, &mut bytes)?;
            out.push(bytes);
        }
        Ok(Some(out))
    }

    fn get_range_and_version(
        &self,
        key: &str,
        range: ByteRange,
    ) -> Result<Option<(Vec<u8>, Version)>, StorageError> {
        let version = match self.entry(key)? {
            Some((entry, _)) => entry.version(),
            None => return Ok(None),
        };
        Ok(self
            .get_ranges(key, &[range])?
            .and_then(|mut r| r.pop())
            .map(|bytes| (bytes, version)))
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
        Ok(PartsRead::Done)
    }

    fn size(&self, key: &str) -> Result<Option<u64>, StorageError> {
        Ok(self.entry(key)?.map(|(e, _)| e.size))
    }

    fn version(&self, key: &str) -> Result<Option<Version>, StorageError> {
        Ok(self.entry(key)?.map(|(e, _)| e.version()))
    }
}

impl WritableStore for ZipStore {
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

impl ListableStore for ZipStore {
    fn list_prefix(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        validate_prefix(prefix)?;
        Ok(self.keys_under(prefix).cloned().collect())
    }

    fn list_dir(&self, prefix: &str) -> Result<ListDir, StorageError> {
        validate_prefix(prefix)?;
        Ok(list_dir_of(prefix, self.keys_under(prefix)))
    }
}

impl Store for ZipStore {
    fn describe(&self) -> String {
        format!("zip://{}", self.path.display())
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
}
