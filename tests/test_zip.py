"""Zip files as read-only stores: what zarr-python's ZipStore writes, and the zipped fixtures
of the shared corpus (zarrita.js's), read as their unzipped copies read."""

from __future__ import annotations

import json
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import zarr

import oxzarr
from oxzarr.errors import ReadOnlyError
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


def test_writes_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "data.zip"
    zarr_python_zip(path, 3)
    a = oxzarr.open_array(path, path="a", mode="a")
    with pytest.raises(ReadOnlyError):
        a[0, 0] = 5
    with pytest.raises(ReadOnlyError, match="zip"):
        oxzarr.open_group(path, mode="a").create_group("new")
    with pytest.raises(ValueError, match="does not write them"):
        ZipStore(path, mode="w")
    with pytest.raises(ReadOnlyError):
        oxzarr.create_array(path, name="x", shape=(2,), dtype="i1")
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
