//! The records a zip writer lays down (APPNOTE.TXT, sections 4.3.7 to 4.3.16): an entry's
//! local header, its record in the central directory, and the end-of-directory records,
//! with the ZIP64 forms where a size, an offset or the number of entries outgrows the
//! classic fields.
//!
//! Entries are stored without compression unless the store was asked to deflate them: chunks
//! are compressed by their codecs already, and stored entries can be read by byte ranges in
//! place (zarr-python's default too).

use chrono::{Datelike, TimeZone, Timelike};

/// A field that does not fit its classic 16- or 32-bit slot is written as all ones there
/// and given in full in the ZIP64 extra field or record.
const FULL_16: u64 = 0xFFFF;
const FULL_32: u64 = 0xFFFF_FFFF;

/// "Made by" UNIX (3), spec version 4.5 (the one that defines ZIP64).
const MADE_BY: u16 = (3 << 8) | 45;
/// The version a reader needs: 2.0 for stored and deflated entries, 4.5 where ZIP64 fields
/// are used.
const NEEDS_20: u16 = 20;
const NEEDS_45: u16 = 45;
/// General purpose flag bit 11: the name is UTF-8.
const UTF8_NAME: u16 = 1 << 11;
/// A regular file, rw-r--r--, in the upper half of the external attributes (UNIX).
const REGULAR_FILE: u32 = 0o100644 << 16;

/// The compression methods written (4.4.5).
const METHOD_STORED: u16 = 0;
const METHOD_DEFLATED: u16 = 8;

/// What the records of one entry written say.
#[derive(Debug, Clone, Copy)]
pub(super) struct Written {
    /// The value's size, and its bytes' in the file (the same unless deflated).
    pub size: u64,
    pub compressed_size: u64,
    pub deflated: bool,
    pub crc32: u32,
    /// Where its local header starts in the file.
    pub header_at: u64,
    /// MS-DOS time and date of the write.
    pub dos_time: (u16, u16),
}

fn put16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// `v` for a 32-bit slot: itself, or all ones when it needs the ZIP64 field.
fn slot32(v: u64) -> u32 {
    u32::try_from(v)
        .ok()
        .filter(|&v| u64::from(v) < FULL_32)
        .unwrap_or(u32::MAX)
}

fn flags(name: &str) -> u16 {
    if name.is_ascii() {
        0
    } else {
        UTF8_NAME
    }
}

/// A ZIP64 extended information extra field (tag 1) holding `fields`, or nothing.
fn zip64_extra(fields: &[u64]) -> Vec<u8> {
    let mut extra = Vec::new();
    if !fields.is_empty() {
        put16(&mut extra, 1);
        put16(&mut extra, (fields.len() * 8) as u16);
        for &f in fields {
            put64(&mut extra, f);
        }
    }
    extra
}

/// The local header that precedes the entry's bytes in the file. The name is at most 65535
/// bytes (the store refuses longer keys), as are the names of the next function.
pub(super) fn local_header(name: &str, entry: &Written) -> Vec<u8> {
    let big = entry.size >= FULL_32 || entry.compressed_size >= FULL_32;
    // Both sizes, in that order, when either outgrows its slot (4.5.3).
    let sizes = [entry.size, entry.compressed_size];
    let extra = zip64_extra(if big { &sizes } else { &[] });
    let mut out = Vec::with_capacity(30 + name.len() + extra.len());
    put32(&mut out, 0x0403_4b50);
    put16(&mut out, if big { NEEDS_45 } else { NEEDS_20 });
    put_described(&mut out, name, entry, big, &extra);
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(&extra);
    out
}

/// The fields both headers give in the same order: flags, method, time and date, CRC-32,
/// both sizes (each all ones if it outgrows its slot, or both with `zip64_sizes`), and the
/// lengths of the name and the extra field.
fn put_described(out: &mut Vec<u8>, name: &str, entry: &Written, zip64_sizes: bool, extra: &[u8]) {
    put16(out, flags(name));
    put16(
        out,
        if entry.deflated {
            METHOD_DEFLATED
        } else {
            METHOD_STORED
        },
    );
    put16(out, entry.dos_time.0);
    put16(out, entry.dos_time.1);
    put32(out, entry.crc32);
    for size in [entry.compressed_size, entry.size] {
        put32(out, if zip64_sizes { u32::MAX } else { slot32(size) });
    }
    put16(out, name.len() as u16);
    put16(out, extra.len() as u16);
}

/// The entry's record in the central directory.
pub(super) fn central_record(name: &str, entry: &Written) -> Vec<u8> {
    // Only the fields that outgrow their slots go into the extra field, in the order
    // uncompressed size, compressed size, local header offset (4.5.3).
    let mut fields = Vec::new();
    if entry.size >= FULL_32 {
        fields.push(entry.size);
    }
    if entry.compressed_size >= FULL_32 {
        fields.push(entry.compressed_size);
    }
    if entry.header_at >= FULL_32 {
        fields.push(entry.header_at);
    }
    let extra = zip64_extra(&fields);
    let mut out = Vec::with_capacity(46 + name.len() + extra.len());
    put32(&mut out, 0x0201_4b50);
    put16(&mut out, MADE_BY);
    put16(
        &mut out,
        if fields.is_empty() {
            NEEDS_20
        } else {
            NEEDS_45
        },
    );
    put_described(&mut out, name, entry, false, &extra);
    put16(&mut out, 0); // comment length
    put16(&mut out, 0); // disk number
    put16(&mut out, 0); // internal attributes
    put32(&mut out, REGULAR_FILE);
    put32(&mut out, slot32(entry.header_at));
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(&extra);
    out
}

/// The records that end the file after a central directory of `entries` records, `size`
/// bytes long, starting at `start`: the ZIP64 end record and its locator where a count or
/// offset outgrows the classic end record, then the classic one, with the zip's `comment`
/// (at most 65535 bytes: one read from a classic end record).
pub(super) fn end_records(entries: u64, size: u64, start: u64, comment: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    if entries >= FULL_16 || size >= FULL_32 || start >= FULL_32 {
        let zip64_end_at = start.saturating_add(size);
        put32(&mut out, 0x0606_4b50);
        put64(&mut out, 44); // the record's size after this field
        put16(&mut out, MADE_BY);
        put16(&mut out, NEEDS_45);
        put32(&mut out, 0); // this disk
        put32(&mut out, 0); // the disk where the directory starts
        put64(&mut out, entries);
        put64(&mut out, entries);
        put64(&mut out, size);
        put64(&mut out, start);
        // The locator.
        put32(&mut out, 0x0706_4b50);
        put32(&mut out, 0);
        put64(&mut out, zip64_end_at);
        put32(&mut out, 1); // disks in all
    }
    let count = u16::try_from(entries)
        .ok()
        .filter(|&n| u64::from(n) < FULL_16)
        .unwrap_or(u16::MAX);
    put32(&mut out, 0x0605_4b50);
    put16(&mut out, 0);
    put16(&mut out, 0);
    put16(&mut out, count);
    put16(&mut out, count);
    put32(&mut out, slot32(size));
    put32(&mut out, slot32(start));
    let comment = &comment[..comment.len().min(usize::from(u16::MAX))];
    put16(&mut out, comment.len() as u16);
    out.extend_from_slice(comment);
    out
}

/// `seconds` since the Unix epoch as an MS-DOS (time, date) in local time, as Python's zipfile
/// (so zarr-python), Info-ZIP and most zip tools write it: the format holds no time zone, and
/// readers show the time as it is (`unzip -l`, `ZipInfo.date_time`). Clamped to the years the
/// format can hold (1980 to 2107).
pub(super) fn dos_time(seconds: i64) -> (u16, u16) {
    // Of a time a change of offset gives twice (the hour repeated in autumn), the first; a
    // time outside chrono's range (not from a clock) is taken as the epoch.
    let local = chrono::Local
        .timestamp_opt(seconds, 0)
        .earliest()
        .map_or(chrono::DateTime::UNIX_EPOCH.naive_utc(), |t| {
            t.naive_local()
        });
    dos_fields(local)
}

/// A date and time as MS-DOS (time, date) fields, clamped to 1980 to 2107.
fn dos_fields(t: chrono::NaiveDateTime) -> (u16, u16) {
    if t.year() < 1980 {
        return (0, (1 << 5) | 1);
    }
    if t.year() > 2107 {
        return ((23 << 11) | (59 << 5) | 29, (127 << 9) | (12 << 5) | 31);
    }
    // Seconds in steps of two; a leap second (60) as 58.
    let time = (t.hour() << 11) | (t.minute() << 5) | (t.second().min(59) / 2);
    let date = ((t.year() as u32 - 1980) << 9) | (t.month() << 5) | t.day();
    (time as u16, date as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dos_times() {
        let at = |y, mo, d, h, mi, sec| {
            chrono::NaiveDate::from_ymd_opt(y, mo, d)
                .and_then(|day| day.and_hms_opt(h, mi, sec))
                .unwrap_or_default()
        };
        let (time, date) = dos_fields(at(2026, 12, 3, 12, 34, 56));
        assert_eq!((date >> 9, (date >> 5) & 15, date & 31), (46, 12, 3));
        assert_eq!(
            (time >> 11, (time >> 5) & 63, (time & 31) * 2),
            (12, 34, 56)
        );
        assert_eq!(dos_fields(at(1970, 1, 1, 0, 0, 0)), (0, (1 << 5) | 1));
        assert_eq!(
            dos_fields(at(2200, 1, 1, 0, 0, 0)).1,
            (127 << 9) | (12 << 5) | 31
        );
        // The local time of the moment: what the process's time zone shows.
        let now = chrono::Local::now();
        let (time, date) = dos_time(now.timestamp());
        let local = now.naive_local();
        assert_eq!(
            (date >> 9, (date >> 5) & 15, date & 31),
            (
                local.year() as u16 - 1980,
                local.month() as u16,
                local.day() as u16
            )
        );
        assert_eq!(
            (time >> 11, (time >> 5) & 63),
            (local.hour() as u16, local.minute() as u16)
        );
    }

    #[test]
    fn zip64_fields_only_where_needed() {
        let small = Written {
            size: 10,
            compressed_size: 10,
            deflated: false,
            crc32: 1,
            header_at: 5,
            dos_time: (0, 33),
        };
        assert_eq!(local_header("a", &small).len(), 31);
        assert_eq!(central_record("a", &small).len(), 47);
        assert_eq!(end_records(3, 100, 200, b"").len(), 22);
        let far = Written {
            header_at: 1 << 33,
            ..small
        };
        // The offset alone: one 8-byte field after the 4-byte field header.
        let record = central_record("a", &far);
        assert_eq!(record.len(), 47 + 12);
        assert_eq!(&record[42..46], &[0xFF; 4]);
        assert_eq!(&record[47 + 4..], &(1u64 << 33).to_le_bytes());
        let big = Written {
            size: 1 << 32,
            compressed_size: 1 << 32,
            ..small
        };
        assert_eq!(local_header("a", &big).len(), 31 + 20);
        assert_eq!(central_record("a", &big).len(), 47 + 20);
        assert_eq!(end_records(70_000, 100, 200, b"").len(), 22 + 56 + 20);
    }

    #[test]
    fn deflated_entries_give_both_sizes() {
        let deflated = Written {
            size: (1 << 32) + 7,
            compressed_size: 1000,
            deflated: true,
            crc32: 9,
            header_at: 0,
            dos_time: (0, 33),
        };
        let header = local_header("a", &deflated);
        assert_eq!(&header[8..10], &8u16.to_le_bytes(), "the method: deflated");
        // The local header's slots are all ones and its extra field holds both sizes, the
        // uncompressed first, as soon as either outgrows its slot (4.5.3).
        assert_eq!(&header[18..26], &[0xFF; 8]);
        assert_eq!(&header[31 + 4..31 + 12], &((1u64 << 32) + 7).to_le_bytes());
        assert_eq!(&header[31 + 12..31 + 20], &1000u64.to_le_bytes());
        // The central record gives only the uncompressed size there; the compressed one
        // fits its slot.
        let record = central_record("a", &deflated);
        assert_eq!(&record[10..12], &8u16.to_le_bytes());
        assert_eq!(&record[20..24], &1000u32.to_le_bytes());
        assert_eq!(&record[24..28], &[0xFF; 4]);
        assert_eq!(record.len(), 47 + 12);
        assert_eq!(&record[47 + 4..], &((1u64 << 32) + 7).to_le_bytes());
    }
}
