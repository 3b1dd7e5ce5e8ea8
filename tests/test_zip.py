"""Zip files as stores: what zarr-python's ZipStore writes, and the zipped fixtures of the
shared corpus (zarrita.js's), read as their unzipped copies read; zips oxzarr writes, read by
zarr-python and Python's zipfile."""

from __future__ import annotations

import gc
import json
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import zarr

import oxzarr
from oxzarr.convert import convert
from oxzarr.errors import LargeZipFileError, ReadOnlyError
from oxzarr.storage import CountingStore, ZipStore
from tests.conftest import assert_same


def zarr_python_zip(path: Path, zarr_format: int) -> dict[str, np.ndarray]:
    """A group written by zarr-python into a zip file, and the values of its arrays."""
    values = {
        "a": np.arange(100, dtype="i4").reshape(10, 10),
        "sub/b": np.linspace(0, 1, 24).reshape(4, 6),
    }
    store = zarr.storage.ZipStore(path, mode="w")
    root = zarr.open_group(store, mode="w", zarr_format=zarr_format, attributes={"k": 1})
    root.create_array("a", shape=(10, 10), chunks=(3, 3), dtype="i4")[...] = values["a"]
    sub = root.create_group("sub")
    sub.create_array("b", shape=(4, 6), chunks=(2, 4), dtype="f8")[...] = values["sub/b"]
    if zarr_format == 3:
        values["s"] = np.arange(64, dtype="u2")
        s = root.create_array(
            "s", shape=(64,), chunks=(4,), shards=(16,), dtype="u2", compressors=None
        )
        s[...] = values["s"]
    store.close()
    return values


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_what_zarr_python_zips_reads(tmp_path: Path, zarr_format: int) -> None:
    path = tmp_path / "data.zip"
    values = zarr_python_zip(path, zarr_format)
    for store in (path, str(path), f"file://{path}", ZipStore(path)):
        root = oxzarr.open_group(store, mode="r")
        assert root.attrs["k"] == 1
        assert sorted(root.keys()) == sorted({k.split("/")[0] for k in values})
        for name, expected in values.items():
            assert_same(root[name][...], expected)
    # zarr-python's own store object, and a path inside the zip.
    theirs = zarr.storage.ZipStore(path, mode="r")
    assert_same(oxzarr.open_array(theirs, path="sub/b", mode="r")[1:3], values["sub/b"][1:3])
    assert str(ZipStore(path)) == f"zip://{path}"


def test_part_of_a_shard_reads_its_byte_ranges_only(tmp_path: Path) -> None:
    # zarr-python stores entries uncompressed: an inner chunk is read in place, as from a
    # directory, not the whole shard.
    path = tmp_path / "data.zip"
    values = zarr_python_zip(path, 3)
    counting = CountingStore(ZipStore(path))
    s = oxzarr.open_array(counting, path="s", mode="r")
    counting.reset()
    assert_same(s[5:7], values["s"][5:7])
    # The shard's index (4 inner chunks of 16 bytes each, and its CRC-32C) and the two u2
    # asked for in their uncompressed inner chunk, of a shard of 100 bytes.
    assert counting.bytes_read == 4 * 16 + 4 + 2 * 2


def test_writes_to_a_zip_opened_read_only_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "data.zip"
    zarr_python_zip(path, 3)
    a = oxzarr.open_array(path, path="a", mode="a")
    with pytest.raises(ReadOnlyError):
        a[0, 0] = 5
    with pytest.raises(ReadOnlyError, match=r"zip.*mode='a'"):
        oxzarr.open_group(path, mode="a").create_group("new")
    with pytest.raises(ValueError, match="opened read-only"):
        ZipStore(path).with_read_only(False)
    with pytest.raises(ReadOnlyError):
        oxzarr.create_array(path, name="x", shape=(2,), dtype="i1")
    # Its root named as the zip itself (a write "to" it), not as an empty key.
    with pytest.raises(ReadOnlyError, match=r"cannot write to zip://\S*data\.zip \(the zip"):
        oxzarr.open_group(path, mode="w")
    # open() with mode "a" (or none) opens the group there read-only, as open_group does (it
    # refused its own read-only zip as a store object given with mode 'a').
    for mode in (None, "a"):
        group = oxzarr.open(path, mode=mode)  # type: ignore[arg-type]
        assert isinstance(group, oxzarr.Group) and group.read_only and "a" in group
    # Nothing changed, and a new path ending in ".zip" is a directory, as in zarr-python.
    assert oxzarr.open_array(path, path="a", mode="r")[0, 0] == 0
    d = oxzarr.create_array(tmp_path / "new.zip", shape=(2,), dtype="i1")
    assert (tmp_path / "new.zip").is_dir() and d.shape == (2,)


def test_deflated_entries_and_rewritten_keys(tmp_path: Path) -> None:
    # Entries compressed with deflate are inflated; a key written twice (zarr-python appends
    # a new entry when a chunk is rewritten) reads as its last entry, as Python's zipfile.
    path = tmp_path / "data.zip"
    a = oxzarr.create_array(tmp_path / "dir.zarr", shape=(6,), chunks=(3,), dtype="i2")
    a[...] = np.arange(6)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for file in sorted((tmp_path / "dir.zarr").rglob("*")):
            if file.is_file():
                z.write(file, file.relative_to(tmp_path / "dir.zarr").as_posix())
        with pytest.warns(UserWarning, match="Duplicate name"):
            z.writestr("c/1", (tmp_path / "dir.zarr" / "c" / "0").read_bytes())
    assert oxzarr.open_array(path, mode="r")[...].tolist() == [0, 1, 2, 0, 1, 2]


def test_damaged_zips_name_the_entry(tmp_path: Path) -> None:
    path = tmp_path / "data.zip"
    values = zarr_python_zip(path, 3)
    raw = bytearray(path.read_bytes())
    # Flip a byte of the stored "a/zarr.json": its CRC-32 no longer matches.
    with zipfile.ZipFile(path) as z:
        info = z.getinfo("a/zarr.json")
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    raw[start + 2] ^= 0x20
    damaged = tmp_path / "damaged.zip"
    damaged.write_bytes(bytes(raw))
    with pytest.raises(OSError, match=r"CRC-32.*a/zarr\.json in zip://"):
        oxzarr.open_array(damaged, path="a", mode="r")
    # A damaged local header: the zip opens, its other entries read, and reading that one
    # fails, naming it (the whole zip failed to open).
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as z:
        info = z.getinfo("a/c/0/0")
    raw[info.header_offset] ^= 0xFF
    damaged.write_bytes(bytes(raw))
    a = oxzarr.open_array(damaged, path="a", mode="r")
    assert a[3:6, 3:6].tolist() == values["a"][3:6, 3:6].tolist()
    with pytest.raises(OSError, match=r"damaged entry.*a/c/0/0 in zip://"):
        a[0, 0]
    truncated = tmp_path / "truncated.zip"
    truncated.write_bytes(bytes(raw[: len(raw) // 2]))
    with pytest.raises(OSError, match=r"truncated\.zip"):
        ZipStore(truncated)


def test_a_directory_at_odds_with_its_end_record_is_damaged(tmp_path: Path) -> None:
    # The zip crate reads as many directory records as the end record says; Python's zipfile
    # reads them while the directory's size lasts. Where these disagree, entries were left
    # out silently (their chunks read as fill values, and a write dropped them for good):
    # now the zip is refused as damaged, naming it, for reading and for adding to it.
    import struct

    path = tmp_path / "data.zip"
    zarr_python_zip(path, 2)
    raw = path.read_bytes()
    end = raw.rfind(b"PK\x05\x06")
    (count,) = struct.unpack_from("<H", raw, end + 10)
    short = bytearray(raw)
    struct.pack_into("<HH", short, end + 8, count - 1, count - 1)
    # The last record's name said to be shorter: it ends before the directory does.
    overlong = bytearray(raw)
    last = raw.rfind(b"PK\x01\x02")
    (name_len,) = struct.unpack_from("<H", raw, last + 28)
    struct.pack_into("<H", overlong, last + 28, name_len - 1)
    for damaged, why in (
        (short, f"holds {count} records where its end record says {count - 1}"),
        (overlong, "bytes at its end are no record"),
    ):
        bad = tmp_path / "bad.zip"
        bad.write_bytes(bytes(damaged))
        for mode in ("r", "a"):
            with pytest.raises(OSError, match=f"central directory is damaged: .*{why}.*bad\\.zip"):
                ZipStore(bad, mode=mode)
        assert bad.read_bytes() == bytes(damaged)


def test_a_zip64_end_record_with_few_entries(tmp_path: Path) -> None:
    # A zip whose directory lies past 4 GiB has zip64 end records whatever its number of
    # entries: its directory ends where they begin (made here by moving a small zip's
    # directory offset into a zip64 end record, as such a zip has it).
    import struct

    path = tmp_path / "data.zip"
    values = zarr_python_zip(path, 2)
    raw = path.read_bytes()
    end = raw.rfind(b"PK\x05\x06")
    *_, count, size, offset = struct.unpack_from("<IHHHHII", raw, end)
    zip64 = struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, count, count, size, offset)
    locator = struct.pack("<IIQI", 0x07064B50, 0, end, 1)
    classic = bytearray(raw[end:])
    struct.pack_into("<I", classic, 16, 0xFFFFFFFF)
    path.write_bytes(raw[:end] + zip64 + locator + bytes(classic))
    with zipfile.ZipFile(path) as z:
        assert z.testzip() is None
    a = oxzarr.open_array(ZipStore(path), path="a", mode="r")
    assert a[...].tolist() == values["a"].tolist()


def test_stored_encrypted_entries_are_refused_as_encrypted(tmp_path: Path) -> None:
    # A stored entry with a password (as `zip -0 -P` writes it) begins with a 12-byte
    # encryption header, so its stored size is 12 more than its size: it was refused as
    # damaged. Written here as such a zip is laid out: flag bit 0 set, the size 12 less.
    path = tmp_path / "enc.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("zarr.json", b"x" * 12 + b'{"zarr_format": 3, "node_type": "group"}')
    raw = bytearray(path.read_bytes())
    central = raw.index(b"PK\x01\x02")
    for flags, size in ((6, 22), (central + 8, central + 24)):
        raw[flags] |= 1
        raw[size : size + 4] = (int.from_bytes(raw[size : size + 4], "little") - 12).to_bytes(
            4, "little"
        )
    path.write_bytes(bytes(raw))
    with pytest.raises(OSError, match=r"encrypted.*zarr\.json in zip://"):
        oxzarr.open_group(path, mode="r")


def test_names_in_a_dos_code_page_with_their_unicode_path(tmp_path: Path) -> None:
    # As Windows tools write names beyond ASCII: in code page 437, with an Info-ZIP Unicode
    # Path extra field (0x7075) holding the UTF-8 name. Every such entry was refused as
    # damaged, its local header's name compared with the UTF-8 one.
    import struct
    import zlib

    source = tmp_path / "src.zarr"
    oxzarr.create_array(source, shape=(4,), dtype="i2", compressors=None)[...] = np.arange(4)
    path = tmp_path / "oem.zip"
    with zipfile.ZipFile(path, "w") as z:
        for file in sorted(p for p in source.rglob("*") if p.is_file()):
            key = "grüße/" + file.relative_to(source).as_posix()
            info = zipfile.ZipInfo(key.replace("ü", "X").replace("ß", "Y"))
            body = b"\x01" + struct.pack("<I", zlib.crc32(key.encode("cp437"))) + key.encode()
            info.extra = struct.pack("<HH", 0x7075, len(body)) + body
            z.writestr(info, file.read_bytes())
    path.write_bytes(path.read_bytes().replace(b"grXYe", "grüße".encode("cp437")))
    expected = zarr.open_array(zarr.storage.ZipStore(path, mode="r"), path="grüße", mode="r")
    assert_same(oxzarr.open_array(path, path="grüße", mode="r")[...], expected[...])


def test_damaged_stored_chunks_are_found(tmp_path: Path) -> None:
    """Uncompressed chunks stored in a zip are read in place, straight into the output: a
    chunk read whole is still checked against the CRC-32 the zip records, and an entry the
    directory points at another's local header is refused (both as Python's zipfile does)."""
    path = tmp_path / "raw.zip"
    with ZipStore(path, mode="w") as store:
        a = oxzarr.create_array(store, shape=(20,), chunks=(10,), dtype="i4", compressors=None)
        a[:10] = np.arange(10)  # one at a time: c/1's record follows c/0's
        a[10:] = np.arange(10, 20)
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as z:
        assert [i.filename for i in z.infolist()].index("c/0") < z.namelist().index("c/1")
        info = z.getinfo("c/0")
    raw[info.header_offset + 30 + len(info.filename) + len(info.extra) + 4] ^= 1
    damaged = tmp_path / "damaged.zip"
    damaged.write_bytes(bytes(raw))
    a = oxzarr.open_array(ZipStore(damaged), mode="r")
    with pytest.raises(OSError, match=r"CRC-32.*c/0 in zip://"):
        a[:10]
    assert a[10:].tolist() == list(range(10, 20))

    # The directory's record of c/1 renamed c/0: two records of c/0, the last pointing at
    # c/1's bytes. Reading them as c/0's would give chunk 1's values for chunk 0.
    raw = bytearray(path.read_bytes())
    record = next(
        at
        for at in range(len(raw))
        if raw[at : at + 4] == b"PK\x01\x02" and raw[at + 46 : at + 49] == b"c/1"
    )
    raw[record + 46 : record + 49] = b"c/0"
    damaged.write_bytes(bytes(raw))
    a = oxzarr.open_array(ZipStore(damaged), mode="r")
    with pytest.raises(OSError, match=r"another entry's local header.*c/0 in zip://"):
        a[:]


def test_pickles(tmp_path: Path) -> None:
    path = tmp_path / "data.zip"
    values = zarr_python_zip(path, 3)
    a = oxzarr.open_array(path, path="a", mode="r")
    assert_same(pickle.loads(pickle.dumps(a))[...], values["a"])
    assert pickle.loads(pickle.dumps(ZipStore(path))) == ZipStore(path)


def _arrays_below(root: Path) -> list[str]:
    """The paths of the arrays under a directory store, by their metadata documents."""
    found = []
    for doc in sorted(root.rglob("*")):
        if doc.name == ".zarray" or (
            doc.name == "zarr.json" and json.loads(doc.read_text()).get("node_type") == "array"
        ):
            found.append(doc.parent.relative_to(root).as_posix())
    return found


@pytest.mark.parametrize(
    ("version", "name", "inside"),
    [
        ("v2", "data.zipped_from_within.zarr.zip", ""),
        ("v2", "data.zipped_from_parent.zarr.zip", "data.zarr"),
        ("v3", "data.zipped_from_within.zarr.zip", ""),
        ("v3", "data.zipped_from_parent.zarr.zip", "data.zarr"),
        ("v3", "data.uncompressed.zarr.zip", ""),
    ],
)
def test_zipped_fixtures_read_as_their_directories(
    shared: Path, version: str, name: str, inside: str
) -> None:
    fixtures = shared / "conformance/zarrita.js/fixtures" / version
    directory = fixtures / "data.zarr"
    zipped = ZipStore(fixtures / name)
    read = 0
    for path in _arrays_below(directory):
        try:
            expected = oxzarr.open_array(directory, path=path, mode="r")[...]
        except (ValueError, TypeError) as e:
            # What the directory cannot give (an object codec oxzarr does not know), the
            # zip cannot either, with the same message.
            with pytest.raises(type(e), match="unsupported"):
                oxzarr.open_array(zipped, path=f"{inside}/{path}".strip("/"), mode="r")[...]
            continue
        got = oxzarr.open_array(zipped, path=f"{inside}/{path}".strip("/"), mode="r")[...]
        assert_same(got, expected)
        read += 1
    assert read >= 10


def test_convert_from_a_zip(tmp_path: Path) -> None:
    # `oxzarr convert` takes a zip as its source: here its hierarchy, into a directory in v3.
    from oxzarr.convert import convert

    path = tmp_path / "data.zip"
    values = zarr_python_zip(path, 2)
    convert(path, tmp_path / "out.zarr", zarr_format=3)
    out = oxzarr.open_group(tmp_path / "out.zarr", mode="r")
    assert out.zarr_format == 3 and out.attrs["k"] == 1
    for name, expected in values.items():
        assert_same(out[name][...], expected)


# zarr-python writes the root's zarr.json again when it consolidates: a second entry of the
# same name, which the zip store reads as the last one, as Python's zipfile does.
@pytest.mark.filterwarnings("ignore:Duplicate name")
def test_xarray_opens_a_zipped_dataset(tmp_path: Path) -> None:
    import xarray as xr

    ds = xr.Dataset({"t": (("x", "y"), np.arange(12.0).reshape(3, 4))}, coords={"x": [10, 20, 30]})
    store = zarr.storage.ZipStore(tmp_path / "ds.zip", mode="w")
    ds.to_zarr(store, mode="w", zarr_format=3, consolidated=True)
    store.close()
    back = xr.open_dataset(tmp_path / "ds.zip", engine="oxzarr")
    xr.testing.assert_identical(back.load(), ds)


def oxzarr_zip(store: ZipStore, zarr_format: int) -> dict[str, np.ndarray]:
    """A group written by oxzarr into a zip store (left open), and the values of its arrays."""
    rng = np.random.default_rng(3)
    values = {
        "a": rng.integers(0, 1000, (40, 30), dtype="i4"),
        "sub/b": np.linspace(0, 1, 24).reshape(4, 6),
    }
    root = oxzarr.open_group(store, mode="w", zarr_format=zarr_format, attributes={"k": 1})
    root.create_array("a", shape=(40, 30), chunks=(7, 8), dtype="i4")[...] = values["a"]
    sub = root.create_group("sub")
    sub.create_array("b", shape=(4, 6), chunks=(2, 4), dtype="f8", compressors=None)[...] = values[
        "sub/b"
    ]
    if zarr_format == 3:
        values["s"] = np.arange(4096, dtype="u2").reshape(64, 64)
        s = root.create_array("s", shape=(64, 64), chunks=(8, 8), shards=(32, 32), dtype="u2")
        s[...] = values["s"]
    return values


def assert_zarr_python_reads(path: Path, values: dict[str, np.ndarray]) -> None:
    """zarr-python reads `values` from the zip, and Python's zipfile finds one entry per key,
    each matching its CRC-32."""
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        assert len(names) == len(set(names)), "a key has two entries"
        assert z.testzip() is None
    store = zarr.storage.ZipStore(path, mode="r")
    root = zarr.open_group(store, mode="r")
    assert root.attrs["k"] == 1
    for name, expected in values.items():
        assert_same(root[name][...], expected)
    store.close()


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_zarr_python_reads_what_oxzarr_zips(tmp_path: Path, zarr_format: int) -> None:
    path = tmp_path / "data.zip"
    with ZipStore(path, mode="w") as store:
        values = oxzarr_zip(store, zarr_format)
        # Read back through the open store, before the zip's directory is written.
        for name, expected in values.items():
            assert_same(oxzarr.open_array(store, path=name, mode="r")[...], expected)
    assert_zarr_python_reads(path, values)
    # And by oxzarr, from the path.
    root = oxzarr.open_group(path, mode="r")
    for name, expected in values.items():
        assert_same(root[name][...], expected)


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_deflated_zips(tmp_path: Path, zarr_format: int) -> None:
    """zipfile.ZIP_DEFLATED, as zarr-python's ZipStore takes it: every entry deflated, read
    back by oxzarr (parts of shards too), zipfile and zarr-python."""
    path = tmp_path / "deflated.zip"
    with ZipStore(path, mode="w", compression=zipfile.ZIP_DEFLATED) as store:
        values = oxzarr_zip(store, zarr_format)
        for name, expected in values.items():
            assert_same(oxzarr.open_array(store, path=name, mode="r")[...], expected)
    with zipfile.ZipFile(path) as z:
        infos = z.infolist()
        assert {i.compress_type for i in infos} == {zipfile.ZIP_DEFLATED}
        # The uncompressed float array shrinks.
        raw = [i for i in infos if i.filename.startswith("sub/b/") and i.file_size == 64]
        assert raw and all(i.compress_size < i.file_size for i in raw)
    assert_zarr_python_reads(path, values)
    root = oxzarr.open_group(path, mode="r")
    for name, expected in values.items():
        assert_same(root[name][...], expected)
    if zarr_format == 3:
        assert_same(root["s"][3:20, 40:41], values["s"][3:20, 40:41])
    # Adding stored entries to a deflated zip.
    with ZipStore(path, mode="a") as store:
        oxzarr.create_array(store, name="c", shape=(5,), dtype="i2")[...] = 3
    with zipfile.ZipFile(path) as z:
        assert z.getinfo("c/zarr.json").compress_type == zipfile.ZIP_STORED
        assert z.testzip() is None
    assert oxzarr.open_array(path, path="c")[...].tolist() == [3] * 5


def test_rewritten_and_deleted_keys_leave_the_directory(tmp_path: Path) -> None:
    path = tmp_path / "data.zip"
    store = ZipStore(path, mode="w")
    values = oxzarr_zip(store, 3)
    a = oxzarr.open_array(store, path="a", mode="r+")
    a[3:10, 5] = -1
    values["a"][3:10, 5] = -1
    a.resize((20, 30))
    values["a"] = values["a"][:20]
    s = oxzarr.open_array(store, path="s", mode="r+")
    s[40:50, :] = 7
    values["s"][40:50, :] = 7
    # An array replaced by another of the same name.
    oxzarr.create_array(store, name="sub/b", shape=(3,), dtype="u1", overwrite=True)[...] = 9
    values["sub/b"] = np.full(3, 9, dtype="u1")
    store.close()
    assert_zarr_python_reads(path, values)
    with zipfile.ZipFile(path) as z:
        names = set(z.namelist())
    # The chunks past the new edge, and the old array's, are gone.
    assert "a/c/3/0" not in names and "a/c/2/0" in names
    assert not any(n.startswith("sub/b/c/0/") for n in names)


def test_adding_to_a_zip_zarr_python_wrote(tmp_path: Path) -> None:
    path = tmp_path / "data.zip"
    values = zarr_python_zip(path, 3)
    with ZipStore(path, mode="a") as store:
        root = oxzarr.open_group(store, mode="r+")
        root.create_array("new", shape=(5,), dtype="f4")[...] = np.arange(5)
        root["a"][0, :] = 77
    values["new"] = np.arange(5, dtype="f4")
    values["a"][0, :] = 77
    assert_zarr_python_reads(path, values)
    # And zarr-python adds to what oxzarr wrote.
    store = zarr.storage.ZipStore(path, mode="a")
    with pytest.warns(UserWarning, match="Duplicate name"):
        zarr.open_array(store, path="new", mode="r+")[0] = 100
    store.close()
    assert oxzarr.open_array(path, path="new", mode="r")[...].tolist() == [100, 1, 2, 3, 4]


def test_many_entries_and_threads(tmp_path: Path) -> None:
    # 70000 chunks written on the engine's threads: more entries than the classic end of
    # directory record counts, so the zip has ZIP64 end records.
    path = tmp_path / "data.zip"
    data = np.arange(1, 70_001, dtype="u4")
    with ZipStore(path, mode="x") as store:
        with oxzarr.config.set({"threads": 4}):
            oxzarr.create_array(store, shape=data.shape, chunks=(1,), dtype="u4")[...] = data
    with zipfile.ZipFile(path) as z:
        assert len(z.namelist()) == 70_001
    theirs = zarr.open_array(zarr.storage.ZipStore(path, mode="r"), mode="r")
    assert_same(theirs[69_990:], data[69_990:])
    assert_same(oxzarr.open_array(path, mode="r")[...], data)


def test_modes_and_handles(tmp_path: Path) -> None:
    path = tmp_path / "data.zip"
    zarr_python_zip(path, 3)
    with pytest.raises(FileExistsError):
        ZipStore(path, mode="x")
    with pytest.raises(ValueError, match="mode 'q'"):
        ZipStore(path, mode="q")
    with pytest.raises(ValueError, match="contradicts"):
        ZipStore(path, mode="a", read_only=True)
    with pytest.raises(ValueError, match="contradicts"):
        ZipStore(path, mode="r", read_only=False)
    store = ZipStore(path, mode="a")
    assert not store.read_only and repr(store) == f"ZipStore('zip://{path}', mode='a')"
    # One writer per zip in a process: a second would overwrite the first's entries.
    with pytest.raises(OSError, match="already open for writing"):
        ZipStore(path, mode="w")
    view = store.with_read_only(True)
    # The same zip, as zarr-python's ZipStore compares them: by the file.
    assert view.read_only and view == store and view.with_read_only(False) == store
    with pytest.raises(ReadOnlyError):
        oxzarr.create_array(view, name="x", shape=(2,), dtype="i1")
    for handle in (store, view):
        with pytest.raises(TypeError, match="cannot be pickled"):
            pickle.dumps(handle)
    assert repr(view) == f"ZipStore('zip://{path}', mode='r')"
    with pytest.raises(ValueError, match="not 14"):
        ZipStore(tmp_path / "lzma.zip", mode="w", compression=zipfile.ZIP_LZMA)
    # Counting what a writable zip serves, and closing it through the counter.
    with CountingStore(ZipStore(tmp_path / "counted.zip", mode="w")) as counted:
        oxzarr.create_array(counted, shape=(3,), dtype="i1")[...] = 4
    assert oxzarr.open_array(tmp_path / "counted.zip")[...].tolist() == [4] * 3
    a = oxzarr.create_array(store, name="x", shape=(2,), dtype="i1")
    store.close()
    # Closed: reads go on, writes are refused, and another store may write the zip.
    assert a[...].tolist() == [0, 0]
    with pytest.raises(ReadOnlyError, match="closed"):
        a[...] = 1
    store.close()
    with ZipStore(path, mode="a") as again:
        oxzarr.open_array(again, path="x", mode="r+")[...] = 1
    assert oxzarr.open_array(path, path="x", mode="r")[...].tolist() == [1, 1]
    # Other stores close too, doing nothing.
    with oxzarr.storage.MemoryStore() as memory:
        memory.set("k", b"v")


def test_a_zip_never_closed_is_complete_after_exit_and_collection(tmp_path: Path) -> None:
    path = tmp_path / "exit.zip"
    script = (
        "import oxzarr, sys\n"
        "from oxzarr.storage import ZipStore\n"
        "store = ZipStore(sys.argv[1], mode='w')\n"
        "a = oxzarr.create_array(store, shape=(10,), chunks=(3,), dtype='i2')\n"
        "a[...] = range(10)\n"
    )
    subprocess.run([sys.executable, "-c", script, str(path)], check=True)
    theirs = zarr.open_array(zarr.storage.ZipStore(path, mode="r"), mode="r")
    assert theirs[...].tolist() == list(range(10))

    def write_and_forget(where: Path) -> None:
        store = ZipStore(where, mode="w")
        oxzarr.create_array(store, shape=(4,), dtype="i2")[...] = 5

    collected = tmp_path / "collected.zip"
    write_and_forget(collected)
    gc.collect()
    assert oxzarr.open_array(collected, mode="r")[...].tolist() == [5] * 4


def test_a_zip_written_again_is_not_read_from_the_chunk_cache(tmp_path: Path) -> None:
    # Written again with the same layout, by zarr-python or by oxzarr, the zip's entries land
    # at the same places with the same sizes: values cached from the zip before must not
    # answer reads of the new one.
    path = tmp_path / "data.zip"
    with oxzarr.config.set({"chunk_cache_bytes": 1 << 20}):
        for value in (1, 2, 3, 4):
            if value <= 2:
                theirs = zarr.storage.ZipStore(path, mode="w")
                z = zarr.create_array(theirs, shape=(8,), chunks=(4,), dtype="u1")
                z[...] = value
                theirs.close()
            else:
                with ZipStore(path, mode="w") as store:
                    a = oxzarr.create_array(store, shape=(8,), chunks=(4,), dtype="u1")
                    a[...] = value
                    assert a[...].tolist() == [value] * 8
            with ZipStore(path) as store:
                assert oxzarr.open_array(store, mode="r")[...].tolist() == [value] * 8


def test_a_forked_child_does_not_write_its_parents_zip(tmp_path: Path) -> None:
    # A child made by fork shares the zip file but not the entries its parent writes later:
    # its writes, and a directory written by its close, would land over the parent's.
    import os

    path = tmp_path / "data.zip"
    store = ZipStore(path, mode="w")
    a = oxzarr.create_array(store, shape=(6,), chunks=(2,), dtype="i2")
    a[...] = 1
    before = path.read_bytes()  # its entries, and no directory yet
    pid = os.fork()
    if pid == 0:  # the child: report by exit code, never return into pytest
        code = 0
        try:
            a[...] = 2
            code = 1
        except ReadOnlyError as e:
            code = 0 if "open for writing in process" in str(e) else 2
        except BaseException:
            code = 3
        try:
            assert a[...].tolist() == [1] * 6
            store.close()
        except BaseException:
            code = 4
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert path.read_bytes() == before  # the child's close wrote no directory
    a[2:] = 3
    store.close()
    assert_zarr_python_reads_array(path, [1, 1, 3, 3, 3, 3])


def assert_zarr_python_reads_array(path: Path, expected: list[int]) -> None:
    with zipfile.ZipFile(path) as z:
        assert z.testzip() is None
    assert zarr.open_array(zarr.storage.ZipStore(path, mode="r"))[...].tolist() == expected


def test_names_beyond_ascii(tmp_path: Path) -> None:
    # Entry names are UTF-8, flagged as such, so zipfile and zarr-python read them back.
    path = tmp_path / "data.zip"
    with ZipStore(path, mode="w") as store:
        root = oxzarr.open_group(store, mode="w", attributes={"k": 1})
        root.create_group("grüße").create_array("Δt", shape=(2,), dtype="u1")[...] = 7
    with zipfile.ZipFile(path) as z:
        assert "grüße/Δt/zarr.json" in z.namelist()
        assert all(i.flag_bits & 0x800 for i in z.infolist() if not i.filename.isascii())
    theirs = zarr.open_group(zarr.storage.ZipStore(path, mode="r"), mode="r")
    assert theirs["grüße/Δt"][...].tolist() == [7, 7]


def test_a_zip_written_again_leaves_its_readers_the_old_one(tmp_path: Path) -> None:
    # mode="w" puts a new file at the path: a store that has the old zip open goes on
    # reading it whole, never the new zip's bytes where its directory says its entries are.
    path = tmp_path / "data.zip"
    with ZipStore(path, mode="w") as store:
        oxzarr.create_array(store, shape=(64,), chunks=(8,), dtype="u2", compressors=None)[...] = (
            np.arange(64)
        )
    old = oxzarr.open_array(ZipStore(path), mode="r")
    with ZipStore(path, mode="w") as store:
        new = oxzarr.create_array(store, shape=(5, 7), chunks=(5, 1), dtype="f8")
        new[...] = -1.5
    assert old[...].tolist() == list(range(64))
    assert oxzarr.open_array(path, mode="r")[...].tolist() == [[-1.5] * 7] * 5
    # Through a symbolic link, the zip it points to is written.
    link = tmp_path / "link.zip"
    link.symlink_to(path)
    with ZipStore(link, mode="w") as store:
        oxzarr.create_array(store, shape=(2,), dtype="i1")[...] = 3
    assert link.is_symlink() and oxzarr.open_array(path, mode="r")[...].tolist() == [3, 3]


def test_a_zip_named_in_capitals_opens_by_its_path(tmp_path: Path) -> None:
    """convert writes DATA.ZIP as a zip file; opening that path looked for a directory and
    said no array was there."""
    values = np.arange(5, dtype="i2")
    source = oxzarr.create_array(tmp_path / "a.zarr", shape=(5,), dtype="i2")
    source[...] = values
    convert(tmp_path / "a.zarr", tmp_path / "DATA.ZIP")
    assert zipfile.is_zipfile(tmp_path / "DATA.ZIP")
    assert_same(oxzarr.open_array(tmp_path / "DATA.ZIP")[...], values)
    assert_same(oxzarr.open(str(tmp_path / "DATA.ZIP"), mode="r")[...], values)


@pytest.mark.parametrize("compression", [zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
def test_bzip2_and_lzma_entries(tmp_path: Path, compression: int) -> None:
    """zarr-python's ZipStore(compression=ZIP_BZIP2 | ZIP_LZMA) writes these, and reads them
    back; oxzarr refused them."""
    path = tmp_path / "packed.zip"
    values = zarr_python_zip(path, 3)
    with (
        zipfile.ZipFile(path) as plain,
        zipfile.ZipFile(tmp_path / "repacked.zip", "w", compression=compression) as repacked,
    ):
        for info in plain.infolist():
            repacked.writestr(info.filename, plain.read(info))
    with zipfile.ZipFile(tmp_path / "repacked.zip") as z:
        assert {i.compress_type for i in z.infolist()} == {compression}
    root = oxzarr.open_group(tmp_path / "repacked.zip", mode="r")
    for name, expected in values.items():
        assert_same(root[name][...], expected)
    # With zarr-python's own writer too.
    theirs = zarr.storage.ZipStore(tmp_path / "theirs.zip", mode="w", compression=compression)
    zarr.create_array(theirs, shape=(1000,), dtype="i8", chunks=(300,))[...] = np.arange(1000)
    theirs.close()
    assert_same(oxzarr.open_array(tmp_path / "theirs.zip")[...], np.arange(1000))

    # A damaged entry is named; a stream longer than the directory says is refused.
    data = bytearray((tmp_path / "theirs.zip").read_bytes())
    with zipfile.ZipFile(tmp_path / "theirs.zip") as z:
        info = z.getinfo("c/1")
    lengths = data[info.header_offset + 26 : info.header_offset + 30]
    start = info.header_offset + 30 + int.from_bytes(lengths[:2], "little")
    start += int.from_bytes(lengths[2:], "little")
    data[start + 12 : start + 20] = b"\xff" * 8
    (tmp_path / "damaged.zip").write_bytes(bytes(data))
    damaged = oxzarr.open_array(tmp_path / "damaged.zip")
    with pytest.raises(OSError, match=r"c/1 in zip://"):
        damaged[...]
    assert_same(damaged[:300], np.arange(300))


@pytest.mark.timeout(120)
@pytest.mark.parametrize("stray", ["/readme.txt", "sub//readme.txt"])
def test_entries_named_with_an_empty_part_are_no_members(tmp_path: Path, stray: str) -> None:
    """A stray entry "/readme.txt" made the root group list itself as its member "" (walks
    of the hierarchy then recursed without end), and "sub//readme.txt" made "sub" unlistable
    (its member "" had the invalid key "sub//zarr.json")."""
    path = tmp_path / "a.zip"
    store = zarr.storage.ZipStore(path, mode="w")
    root = zarr.open_group(store, mode="w")
    root.create_group("sub").create_array("a", shape=(4,), dtype="i4")[...] = np.arange(4)
    store.close()
    with zipfile.ZipFile(path, "a") as z:
        entry = zipfile.ZipInfo("x")
        entry.filename = stray  # ZipInfo would strip a leading "/" given to it
        z.writestr(entry, b"notes")
    group = oxzarr.open_group(ZipStore(path), mode="r")
    assert list(group.keys()) == ["sub"]
    assert list(group["sub"].keys()) == ["a"]
    assert sorted(name for name, _ in group.members(max_depth=None)) == ["sub", "sub/a"]
    assert str(group.tree()).splitlines()[1:] == ["└── sub", "    └── a (4,) int32"]
    convert(path, tmp_path / "copy.zarr")
    copied = oxzarr.open_array(tmp_path / "copy.zarr" / "sub" / "a")[...]
    assert_same(copied, np.arange(4, dtype="i4"))


_REWRITES_BY_MODE = """
import json, os, stat, sys, zipfile
from pathlib import Path
from oxzarr.storage import ZipStore

base = Path(sys.argv[1])
results = {}

def fresh(path, mode):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("zarr.json", '{"zarr_format": 3, "node_type": "group"}')
    os.chmod(path, mode)

read_only = base / "read-only.zip"
fresh(read_only, 0o440)
try:
    ZipStore(read_only, mode="w").close()
    results["read-only"] = "rewritten"
except PermissionError as e:
    results["read-only"] = "PermissionError" if str(read_only) in str(e) else str(e)
results["read-only kept"] = zipfile.ZipFile(read_only).namelist()

private = base / "private.zip"
fresh(private, 0o600)
ZipStore(private, mode="w").close()
results["private"] = oct(stat.S_IMODE(private.stat().st_mode))

locked = base / "locked"
locked.mkdir()
fresh(locked / "a.zip", 0o644)
os.chmod(locked, 0o555)
store = ZipStore(locked / "a.zip", mode="w")
store.set("x", b"new")
store.close()
results["in a read-only directory"] = zipfile.ZipFile(locked / "a.zip").namelist()
print(json.dumps(results))
"""


def test_a_zip_rewritten_with_mode_w_keeps_its_permissions(tmp_path: Path) -> None:
    """mode="w" replaced the file with a new one: a read-only zip was replaced where zipfile
    and zarr-python refuse it, a private one (0600) came back readable by all (0644), and
    a writable zip in a read-only directory was refused where they rewrite it."""
    import os
    import shutil

    command = [sys.executable, "-c", _REWRITES_BY_MODE, str(tmp_path)]
    if os.geteuid() == 0:
        # Root may write anything: without these capabilities, permissions bind it too.
        setpriv = shutil.which("setpriv")
        assert setpriv is not None, "setpriv (util-linux) drops root's override of permissions"
        caps = "-dac_override,-dac_read_search,-fowner"
        command = [setpriv, f"--bounding-set={caps}", f"--inh-caps={caps}", *command]
    run = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert json.loads(run.stdout) == {
        "read-only": "PermissionError",
        "read-only kept": ["zarr.json"],
        "private": "0o600",
        "in a read-only directory": ["x"],
    }


def test_deleting_a_member_takes_its_folder_entries_along(tmp_path: Path) -> None:
    """Zips made by zip tools (shutil.make_archive, zip -r) list folders as entries: deleting
    a member kept them, and zarr-python warned of each as a member it did not recognize."""
    import shutil

    source = zarr.open_group(tmp_path / "src.zarr", mode="w")
    source.create_array("x/y", shape=(4,), chunks=(2,), dtype="i4")[...] = 1
    source.create_array("keep", shape=(2,), dtype="i4")[...] = 2
    archive = shutil.make_archive(str(tmp_path / "a"), "zip", root_dir=tmp_path / "src.zarr")
    assert "x/y/" in zipfile.ZipFile(archive).namelist()
    with ZipStore(archive, mode="a") as store:
        del oxzarr.open_group(store)["x"]
    names = zipfile.ZipFile(archive).namelist()
    assert not [n for n in names if n.startswith("x/")], names
    assert "keep/" in names  # the others' stay
    theirs = zarr.open_group(zarr.storage.ZipStore(archive, mode="r"), mode="r")
    assert list(theirs.keys()) == ["keep"]  # and no warning (warnings are errors here)


_CLOSE_FAILS = """
import json, os, resource, sys, zipfile
import oxzarr
from oxzarr.storage import ZipStore

path = sys.argv[1]

def descriptors_on_the_zip():
    found = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            found += os.readlink(f"/proc/self/fd/{fd}").startswith(path)
        except OSError:
            pass
    return found

results = {}
# A file-size limit (Python ignores SIGXFSZ: a write past it fails with EFBIG) stands for a
# full disk: the chunk cannot be written, nor the central directory after it.
resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 16, resource.RLIM_INFINITY))
store = ZipStore(path, mode="w")
a = oxzarr.create_array(store, shape=(100_000,), chunks=(100_000,), dtype="f8", compressors=None)
try:
    a[...] = 1.5
except OSError as e:
    results["write"] = e.errno
try:
    store.close()
except OSError as e:
    results["close"] = [e.errno, path in str(e)]
try:
    store.close()
    results["closed again"] = "quietly"  # the failure is reported once
except OSError as e:
    results["closed again"] = str(e)
results["descriptors"] = descriptors_on_the_zip()
results["left, not a zip"] = [os.path.exists(path), zipfile.is_zipfile(path)]
results["read_only"] = store.read_only
# Written again while the failed store is still about: its close let go of the file.
with ZipStore(path, mode="w") as again:
    oxzarr.create_array(again, shape=(4,), dtype="i2")[...] = 7
results["again"] = oxzarr.open_array(path, mode="r")[...].tolist()
print(json.dumps(results))
"""


def test_a_close_that_fails_ends_writing_and_lets_go_of_the_file(tmp_path: Path) -> None:
    """A close whose central directory could not be written (EFBIG here, a full disk alike)
    left the zip open for writing in the process: close raised every time, the descriptor
    stayed open until collection (whose finaliser printed the error again), and every later
    ZipStore(path, mode="w") in the process was refused as "already open for writing"."""
    import errno

    path = tmp_path / "out.zip"
    command = [sys.executable, "-c", _CLOSE_FAILS, str(path)]
    run = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "Exception ignored" not in run.stderr, run.stderr[-2000:]
    assert json.loads(run.stdout) == {
        "write": errno.EFBIG,
        "close": [errno.EFBIG, True],
        "closed again": "quietly",
        "descriptors": 0,
        # Left as zarr-python leaves it, and no reader takes it for a whole zip.
        "left, not a zip": [True, False],
        "read_only": True,
        "again": [7, 7, 7, 7],
    }


_LOCAL_TIMES = """
import json, sys, time, zipfile
from datetime import datetime
from oxzarr.storage import ZipStore

with ZipStore(sys.argv[1], mode="w") as store:
    store.set("k", b"v")
stamped = datetime(*zipfile.ZipFile(sys.argv[1]).getinfo("k").date_time)
print(json.dumps(abs((datetime.now() - stamped).total_seconds())))
"""


@pytest.mark.parametrize("zone", ["JST-9", "Asia/Tokyo", "EST+5"])
def test_entry_times_are_local_times(tmp_path: Path, zone: str) -> None:
    """Entries were stamped with the time in UTC, where zipfile (so zarr-python), Info-ZIP and
    other zip tools write local time, which readers show as it is."""
    import os

    env = {**os.environ, "TZ": zone}
    command = [sys.executable, "-c", _LOCAL_TIMES, str(tmp_path / "t.zip")]
    run = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    assert run.returncode == 0, run.stderr[-2000:]
    assert json.loads(run.stdout) < 60


_UNFINISHED_ZIP = """
import json, sys
from oxzarr.storage import ZipStore

def bytes_read():
    with open("/proc/self/io") as io:
        return int(next(l for l in io if l.startswith("rchar:")).split()[1])

before = bytes_read()
try:
    ZipStore(sys.argv[1])
    error = None
except OSError as e:
    error = str(e)
print(json.dumps([error, bytes_read() - before]))
"""


def test_a_zip_with_no_end_record_is_refused_from_its_tail(tmp_path: Path) -> None:
    """A file with no end of central directory record (a zip whose writer was killed before
    closing it, a download cut short) was searched back to its start by the zip crate: all of
    it read (1 s for 1 GiB, 3.9 s for 4 GiB), where zipfile looks at its last 64 KiB."""
    path = tmp_path / "unfinished.zip"
    with open(path, "wb") as f:
        f.write(b"PK\x03\x04")
        f.truncate(64 << 20)  # sparse
    command = [sys.executable, "-c", _UNFINISHED_ZIP, str(path)]
    run = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    error, read = json.loads(run.stdout)
    assert error is not None and "not a readable zip file" in error and str(path) in error
    assert read < 1 << 20
    assert not zipfile.is_zipfile(path)
    # The end record is looked for where it can be: before a comment of 65535 bytes, after
    # data before the zip, with ZIP64 end records before it.
    comment = tmp_path / "comment.zip"
    with zipfile.ZipFile(comment, "w") as z:
        z.writestr("k", b"v")
        z.comment = b"c" * 65535
    prefixed = tmp_path / "prefixed.zip"
    prefixed.write_bytes(b"#!/bin/sh\n" * 1000 + comment.read_bytes())
    for zip_path in (comment, prefixed):
        assert ZipStore(zip_path).get("k") == b"v"


def _zip_past_2_gib(path: Path) -> None:
    """A zip (no ZIP64 records) whose one entry, "big", holds 2 GiB of zeros: its central
    directory starts past 2 GiB. The file is sparse."""
    import struct

    size = 1 << 31
    name = b"big"
    crc = 0  # not read
    header = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 0, 0, 33, crc, size, size, 3, 0)
    record = struct.pack(
        "<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 0, 0, 33, crc, size, size, 3, 0, 0, 0, 0, 0, 0
    )
    start = len(header) + len(name) + size
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(record) + 3, start, 0)
    with open(path, "wb") as f:
        f.write(header + name)
        f.seek(start)
        f.write(record + name + end)


def test_zipstore_takes_zarr_python_s_arguments_and_errors(tmp_path: Path) -> None:
    """A directory named *.zip raised a plain OSError (zarr-python: IsADirectoryError), the
    store had no compression and allowZip64 attributes, and allowZip64=False was refused with
    a message blaming compression: it is taken now, refusing what would need ZIP64 records
    as zipfile does (zipfile.LargeZipFile)."""
    directory = tmp_path / "dir.zip"
    directory.mkdir()
    for mode in ("r", "w", "a"):
        with pytest.raises(IsADirectoryError, match=str(directory)):
            ZipStore(directory, mode=mode)
    path = tmp_path / "data.zip"
    with ZipStore(path, mode="w", compression=zipfile.ZIP_DEFLATED, allowZip64=False) as store:
        assert (store.compression, store.allowZip64) == (zipfile.ZIP_DEFLATED, False)
        view = store.with_read_only(True)
        assert (view.compression, view.allowZip64) == (zipfile.ZIP_DEFLATED, False)
        oxzarr.create_array(store, shape=(4,), dtype="i2")[...] = 3
    with zipfile.ZipFile(path) as z:
        assert z.testzip() is None
    assert (ZipStore(path).compression, ZipStore(path).allowZip64) == (zipfile.ZIP_STORED, True)
    assert oxzarr.open_array(path)[...].tolist() == [3] * 4
    with pytest.raises(ValueError, match="not 14"):
        ZipStore(path, mode="a", compression=zipfile.ZIP_LZMA)
    # A zip past 2 GiB takes no more entries nor deletions without ZIP64 records, and is
    # left as it was.
    big = tmp_path / "big.zip"
    _zip_past_2_gib(big)

    def tail() -> bytes:
        with open(big, "rb") as f:
            f.seek(-200, 2)
            return f.read()

    before = tail()
    with ZipStore(big, mode="a", allowZip64=False) as store:
        with pytest.raises(LargeZipFileError, match=r"Zipfile size would require ZIP64.*big\.zip"):
            store.set("x", b"1")
        with pytest.raises(zipfile.LargeZipFile, match="Central directory offset"):
            store.delete("big")
    assert tail() == before
    assert zipfile.ZipFile(big).namelist() == ["big"]
    with ZipStore(big, mode="a") as store:
        store.set("x", b"1")
    assert zipfile.ZipFile(big).namelist() == ["big", "x"]


def _bytes_read() -> int:
    """The bytes this process has read from files so far (its read and pread calls)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


def test_a_deflated_shard_is_inflated_once_per_read(tmp_path: Path) -> None:
    """Every byte range the sharding reader asked of a deflated zip entry inflated the whole
    entry: a read of one shard of 256 inner chunks inflated it 17 times (its index, and 16
    runs of inner chunks), each time reading all its deflated bytes from the file (an 8 MiB
    shard of 1024 inner chunks: 0.41-0.67 s where zarr-python takes 0.10-0.16 s)."""
    path = tmp_path / "deflated.zip"
    data = np.random.default_rng(0).integers(0, 100, (256, 256), dtype="u2")
    with ZipStore(path, mode="w", compression=zipfile.ZIP_DEFLATED) as store:
        a = oxzarr.create_array(
            store,
            shape=data.shape,
            chunks=(16, 16),
            shards=(256, 128),
            dtype="u2",
            compressors=None,
        )
        a[...] = data
    with zipfile.ZipFile(path) as z:
        deflated = max(z.getinfo(k).compress_size for k in ("c/0/0", "c/0/1"))
    a = oxzarr.open_array(ZipStore(path), mode="r")
    for selection, shards in [
        (np.s_[...], 2),
        (np.s_[0:64, :], 2),
        (np.s_[::7, ::5], 2),
        (np.s_[:, 0:100], 1),
    ]:
        before = _bytes_read()
        assert_same(a[selection], data[selection])
        assert _bytes_read() - before < (shards + 1) * deflated, selection
    points = (np.arange(0, 256, 3), np.arange(0, 128, 1.5).astype(int)[:86])
    before = _bytes_read()
    assert_same(a.vindex[points], data[points])
    assert _bytes_read() - before < 2 * deflated
    # Text, whose inner chunks are read one by one.
    text = np.array([f"value {i}" * (i % 5) for i in range(4096)], dtype=object)
    with ZipStore(path, mode="w", compression=zipfile.ZIP_DEFLATED) as store:
        s = oxzarr.create_array(store, shape=(4096,), chunks=(64,), shards=(4096,), dtype=str)
        s[...] = text
    with zipfile.ZipFile(path) as z:
        deflated = z.getinfo("c/0").compress_size
    s = oxzarr.open_array(ZipStore(path), mode="r")
    every_ninth = np.arange(0, 4096, 9)
    for got, want in [
        (lambda: s[...], text),
        (lambda: s[100:3000], text[100:3000]),
        (lambda: s.vindex[every_ninth], text[every_ninth]),
    ]:
        before = _bytes_read()
        assert list(got()) == list(want)
        assert _bytes_read() - before < 2 * deflated


def test_a_shard_read_whole_from_a_stored_zip_is_checked_against_its_crc(
    tmp_path: Path,
) -> None:
    """zarr-python reads a shard whole through zipfile, which checks its CRC-32. oxzarr read a
    stored shard in pieces (its index, then runs of inner chunks), none of them the whole
    entry, so none was checked: a flipped byte in an uncompressed inner chunk came back as a
    wrong value (69 for 5) from a read of the whole array."""
    path = tmp_path / "shard.zip"
    store = zarr.storage.ZipStore(path, mode="w")
    a = zarr.create_array(
        store, shape=(64,), chunks=(8,), shards=(64,), dtype="u2", compressors=None
    )
    a[...] = np.arange(64)
    store.close()
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as z:
        info = z.getinfo("c/0")
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    raw[start + 10] ^= 0x40  # element 5, in inner chunk 0
    damaged = tmp_path / "damaged.zip"
    damaged.write_bytes(bytes(raw))
    with pytest.raises(zipfile.BadZipFile, match="CRC-32"):
        zarr.open_array(zarr.storage.ZipStore(damaged, mode="r"), mode="r")[...]
    ours = oxzarr.open_array(ZipStore(damaged), mode="r")
    for whole in (np.s_[...], np.s_[::-1], np.s_[0:64:1]):
        with pytest.raises(OSError, match=r"CRC-32.*c/0 in zip://"):
            ours[whole]
    with pytest.raises(OSError, match=r"CRC-32.*c/0 in zip://"):
        ours.vindex[np.arange(64)]
    # Through the decoded-chunk cache, every time: no inner chunk was decoded from the shard.
    with oxzarr.config.set({"chunk_cache_bytes": 1 << 20}):
        for _ in range(2):
            with pytest.raises(OSError, match=r"CRC-32.*c/0 in zip://"):
                ours[...]
    # A part of the shard is read in place, unchecked, as documented (chunk 1 is sound).
    assert_same(ours[8:16], np.arange(8, 16, dtype="u2"))
    # The sound zip reads, whole and in parts.
    sound = oxzarr.open_array(ZipStore(path), mode="r")
    assert_same(sound[...], np.arange(64, dtype="u2"))
    assert_same(sound[3:40], np.arange(3, 40, dtype="u2"))
