"""The ``oxzarr`` command: convert (re-chunk, re-shard, re-compress, v2 <-> v3, data types,
groups, .npy and HDF5 sources), info, tree, verify; its errors, progress and Ctrl-C."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import zarr

import oxzarr
from oxzarr.codecs import ZstdCodec
from oxzarr.convert import MEMORY_BOUND_BYTES, convert
from tests.conftest import assert_same

SHAPE = (96, 80, 64)


def data(shape: tuple[int, ...] = SHAPE, dtype: str = "u2") -> np.ndarray:
    values = np.indices(shape).sum(axis=0) * 7 % 4096
    return values.astype(dtype)


def cli(
    *args: Any, check: bool = True, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Runs `oxzarr ARGS` as a user would, in a fresh process."""
    run = subprocess.run(
        [sys.executable, "-m", "oxzarr", *map(str, args)], capture_output=True, text=True, cwd=cwd
    )
    if check and run.returncode != 0:
        raise AssertionError(f"exit {run.returncode}: {run.stderr}")
    return run


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """A v3 array in long chunks, zstd level 1, with attributes and dimension names."""
    p = tmp_path / "src.zarr"
    a = oxzarr.create_array(
        p,
        shape=SHAPE,
        dtype="u2",
        chunks=(96, 10, 16),
        compressors=ZstdCodec(level=1),
        fill_value=7,
        attributes={"units": "K"},
        dimension_names=["z", "y", "x"],
    )
    a[...] = data()
    return p


def test_rechunks_decode_each_source_chunk_once_in_a_small_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Units starting in one source chunk go together, so its uses are consecutive even when
    # the cache holds only two decoded chunks (an order along whole rows of units came back
    # to each one after it was dropped: ten times the decoding in a 400³ rechunk).
    import oxzarr.convert

    values = np.arange(64**3, dtype="f8").reshape(64, 64, 64)
    src = tmp_path / "src.zarr"
    oxzarr.create_array(src, shape=values.shape, chunks=(32, 32, 32), dtype="f8")[...] = values
    monkeypatch.setattr(oxzarr.convert, "_CACHE_BYTES", 2 * 32**3 * 8)
    for chunks in [(4, 4, 4), (64, 4, 4), (8, 16, 32)]:
        out = tmp_path / f"{chunks}.zarr"
        report = convert(src, out, chunks=chunks)
        assert report.source_decodes == 8, chunks
        np.testing.assert_array_equal(oxzarr.open_array(out)[...], values)


def test_rechunks_decode_each_source_chunk_once_when_one_unit_reads_more_than_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each destination chunk reads all 12 source chunks, four times what the cache holds: the
    # cache was trimmed back to its budget after each unit, and the next unit decoded again
    # what was dropped (12 + 15 * 9 decodes); the chunks one unit reads are held anyway.
    import oxzarr.convert

    values = np.arange(24 * 8 * 8, dtype="u1").reshape(24, 8, 8)
    src = tmp_path / "src.zarr"
    oxzarr.create_array(src, shape=values.shape, chunks=(2, 8, 8), dtype="u1")[...] = values
    monkeypatch.setattr(oxzarr.convert, "_CACHE_BYTES", 3 * 2 * 8 * 8)
    for wave_bytes in [1, 32 << 20]:  # a unit a wave, and many
        monkeypatch.setattr(oxzarr.convert, "_WAVE_BYTES", wave_bytes)
        out = tmp_path / f"{wave_bytes}.zarr"
        report = convert(src, out, chunks=(24, 2, 2))
        assert report.source_decodes == 12, wave_bytes
        np.testing.assert_array_equal(oxzarr.open_array(out)[...], values)


def test_reshard_and_recompress(tmp_path: Path, source: Path) -> None:
    dst = tmp_path / "dst.zarr"
    cli(
        "convert",
        source,
        dst,
        "--chunks",
        "16,16,16",
        "--shards",
        "32,32,32",
        "--compressor",
        "blosc:lz4:5:shuffle",
    )
    out = zarr.open_array(str(dst), mode="r")  # zarr-python reads the result
    np.testing.assert_array_equal(out[...], data())
    assert out.chunks == (16, 16, 16) and out.shards == (32, 32, 32)
    blosc = out.compressors[0]
    assert (blosc.cname.value, blosc.clevel, blosc.shuffle.value) == ("lz4", 5, "shuffle")
    # What the options did not mention stays as it was.
    assert out.dtype == np.dtype("u2") and out.fill_value == 7
    assert dict(out.attrs) == {"units": "K"}
    assert out.metadata.dimension_names == ("z", "y", "x")
    assert cli("verify", source, dst).returncode == 0


def test_each_source_chunk_is_decoded_once(tmp_path: Path, source: Path) -> None:
    # Long source chunks span many output shards: each is still decoded only once.
    report = convert(source, tmp_path / "dst.zarr", chunks=(8, 8, 8), shards=(16, 16, 16))
    source_chunks = oxzarr.open_array(source).nchunks
    assert report.source_decodes == source_chunks
    assert report.units == 6 * 5 * 4


def test_v2_to_v3_and_back(tmp_path: Path) -> None:
    v2 = tmp_path / "v2.zarr"
    a = zarr.create_array(
        str(v2),
        shape=(50, 40),
        chunks=(10, 40),
        dtype=">i4",
        zarr_format=2,
        compressors=None,
        fill_value=-1,
        attributes={"_ARRAY_DIMENSIONS": ["t", "x"], "a": 1},
    )
    values = np.arange(2000, dtype=">i4").reshape(50, 40)
    a[...] = values
    v3 = tmp_path / "v3.zarr"
    cli("convert", v2, v3, "--zarr-format", "3", "--compressor", "zstd:3")
    b = zarr.open_array(str(v3), mode="r")
    assert b.metadata.zarr_format == 3
    np.testing.assert_array_equal(b[...], values)
    # xarray's dimension names move from the v2 attribute to v3 dimension_names, and its
    # missing-value marker (v2's fill value) to the v3 attribute xarray reads it from.
    assert b.metadata.dimension_names == ("t", "x")
    assert dict(b.attrs) == {"a": 1, "_FillValue": -1}
    assert b.fill_value == -1
    back = tmp_path / "back.zarr"
    cli("convert", v3, back, "--zarr-format", "2")
    c = zarr.open_array(str(back), mode="r")
    assert c.metadata.zarr_format == 2 and c.metadata.compressor.codec_id == "zstd"
    np.testing.assert_array_equal(c[...], values)
    assert dict(c.attrs) == {"_ARRAY_DIMENSIONS": ["t", "x"], "a": 1}
    assert c.fill_value == -1


def test_shards_none_and_v2_output_unshard(tmp_path: Path) -> None:
    src = tmp_path / "sharded.zarr"
    a = oxzarr.create_array(src, shape=(64, 64), chunks=(8, 8), shards=(32, 32), dtype="f4")
    a[...] = data((64, 64), "f4")
    cli("convert", src, tmp_path / "flat.zarr", "--shards", "none")
    flat = oxzarr.open_array(tmp_path / "flat.zarr")
    assert flat.shards is None and flat.chunks == (8, 8)
    cli("convert", src, tmp_path / "v2.zarr", "--zarr-format", "2")
    v2 = oxzarr.open_array(tmp_path / "v2.zarr")
    assert v2.zarr_format == 2 and v2.chunks == (8, 8)
    np.testing.assert_array_equal(v2[...], data((64, 64), "f4"))


def test_dtype_and_fill_value(tmp_path: Path) -> None:
    src = tmp_path / "f.zarr"
    values = np.linspace(-300.5, 300.5, 1000).astype("f8").reshape(10, 100)
    oxzarr.create_array(src, shape=values.shape, dtype="f8", chunks=(5, 50))[...] = values
    dst = tmp_path / "i.zarr"
    cli("convert", src, dst, "--dtype", "i2", "--fill-value", "-9")
    out = oxzarr.open_array(dst)
    assert out.dtype == np.dtype("i2") and out.fill_value == -9
    np.testing.assert_array_equal(out[...], values.astype("i2"))


def test_groups_convert_recursively(tmp_path: Path) -> None:
    src = tmp_path / "tree.zarr"
    root = oxzarr.open_group(src, mode="w", attributes={"title": "run"})
    sub = root.create_group("model", attributes={"version": 2})
    sub.create_array("temp", shape=(20, 30), dtype="f4", chunks=(5, 30))[...] = 1.5
    root.create_array("mask", shape=(7, 3), dtype="bool", chunks=(7, 3))[...] = True
    oxzarr.consolidate_metadata(src)
    dst = tmp_path / "out.zarr"
    cli("convert", src, dst, "--chunks", "10,10")  # one chunk shape for each 2-d array
    assert "model" in cli("tree", dst).stdout
    out = oxzarr.open_group(dst)
    assert dict(out.attrs) == {"title": "run"} and dict(out["model"].attrs) == {"version": 2}
    assert out["model/temp"].chunks == (10, 10)
    np.testing.assert_array_equal(out["model/temp"][...], np.full((20, 30), 1.5, "f4"))
    assert out.is_consolidated
    assert cli("verify", src, dst).returncode == 0


def test_a_group_of_arrays_converts_in_one_thread_without_sleeping(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each array was copied by a thread of its own, which the caller polled with sleeps of
    # 10 ms: 500 small arrays took 5.6 s, mostly sleeping.
    import threading

    src = tmp_path / "many.zarr"
    root = oxzarr.open_group(src, mode="w")
    for i in range(20):
        root.create_array(f"a{i}", shape=(10,), dtype="i4", chunks=(5,))[...] = np.arange(10) + i
    started: list[str] = []
    sleeps: list[float] = []
    start = threading.Thread.start

    def counting_start(thread: threading.Thread) -> None:
        started.append(thread.name)
        start(thread)

    monkeypatch.setattr(threading.Thread, "start", counting_start)
    monkeypatch.setattr(time, "sleep", sleeps.append)
    report = convert(src, tmp_path / "out.zarr")
    monkeypatch.undo()
    assert report.arrays == 20
    assert started == ["oxzarr-convert"] and sleeps == []
    # The worker ends with the conversion.
    for thread in threading.enumerate():
        if thread.name == "oxzarr-convert":
            thread.join(timeout=10)
            assert not thread.is_alive()
    out = oxzarr.open_group(tmp_path / "out.zarr")
    for i in range(20):
        np.testing.assert_array_equal(out[f"a{i}"][...], np.arange(10) + i)


def test_a_destination_named_zip_is_a_zip_file(tmp_path: Path) -> None:
    src = tmp_path / "tree.zarr"
    root = oxzarr.open_group(src, mode="w", attributes={"title": "run"})
    root.create_array("temp", shape=(20, 30), dtype="f4", chunks=(5, 30))[...] = 1.5
    root.create_group("model").create_array("mask", shape=(7, 3), dtype="bool")[...] = True
    oxzarr.consolidate_metadata(src)
    dst = tmp_path / "out.zip"
    cli("convert", src, dst, "--chunks", "4,4", "--shards", "8,8")
    assert dst.is_file() and cli("verify", src, dst).returncode == 0
    theirs = zarr.open_group(zarr.storage.ZipStore(dst, mode="r"), mode="r")
    assert theirs.attrs["title"] == "run" and theirs["temp"].shards == (8, 8)
    np.testing.assert_array_equal(theirs["temp"][...], np.full((20, 30), 1.5, "f4"))
    np.testing.assert_array_equal(theirs["model/mask"][...], np.ones((7, 3), bool))
    # Replaced whole with --overwrite, and refused without it.
    assert cli("convert", src, dst, check=False).returncode == 2
    cli("convert", src / "temp", dst, "--overwrite")
    assert oxzarr.open_array(dst).chunks == (5, 30)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.zip", "tree.zarr"]


def test_chunks_of_the_wrong_rank_are_refused_for_a_group_member(tmp_path: Path) -> None:
    src = tmp_path / "tree.zarr"
    root = oxzarr.open_group(src, mode="w")
    root.create_array("a", shape=(4, 4), dtype="i1")
    root.create_array("b", shape=(4,), dtype="i1")
    run = cli("convert", src, tmp_path / "out.zarr", "--chunks", "2,2", check=False)
    assert run.returncode == 2 and "b: chunk shape (2, 2) has 2 dimensions" in run.stderr
    assert not (tmp_path / "out.zarr").exists()


def test_npy_source(tmp_path: Path) -> None:
    np.save(tmp_path / "a.npy", data())
    cli("convert", tmp_path / "a.npy", tmp_path / "a.zarr", "--chunks", "32,32,32")
    out = oxzarr.open_array(tmp_path / "a.zarr")
    assert out.chunks == (32, 32, 32)
    np.testing.assert_array_equal(out[...], data())


def test_hdf5_sources(tmp_path: Path) -> None:
    h5 = tmp_path / "d.h5"
    with h5py.File(h5, "w") as f:
        f.attrs["title"] = "obs"
        g = f.create_group("grid")
        g.attrs["n"] = np.int64(3)
        g.create_dataset("temp", data=data((40, 30), "f4"), chunks=(10, 15))
        f.create_dataset("flags", data=np.arange(9, dtype="i1"))
    cli("convert", h5, tmp_path / "all.zarr")
    root = oxzarr.open_group(tmp_path / "all.zarr")
    assert dict(root.attrs) == {"title": "obs"} and dict(root["grid"].attrs) == {"n": 3}
    assert root["grid/temp"].chunks == (10, 15)  # HDF5's chunks, unless told otherwise
    np.testing.assert_array_equal(root["grid/temp"][...], data((40, 30), "f4"))
    np.testing.assert_array_equal(root["flags"][...], np.arange(9, dtype="i1"))
    cli("convert", f"{h5}:/grid/temp", tmp_path / "one.zarr", "--dtype", "f8")
    one = oxzarr.open_array(tmp_path / "one.zarr")
    np.testing.assert_array_equal(one[...], data((40, 30), "f4").astype("f8"))


def test_hdf5_files_are_known_by_their_signature_whatever_their_name(tmp_path: Path) -> None:
    # Only names ending in .h5, .hdf5, .he5 or .hdf were read as HDF5: a netCDF-4 file
    # (.nc) was opened as a Zarr store, and failed with 'no node found at "/"'.
    for name, userblock in [("data.nc", 0), ("data", 0), ("with-userblock.nc", 1024)]:
        with h5py.File(tmp_path / name, "w", userblock_size=userblock) as f:
            f["g/x"] = np.arange(5)
        cli("convert", tmp_path / name, tmp_path / f"{name}.zarr")
        assert oxzarr.open_array(tmp_path / f"{name}.zarr/g/x")[...].tolist() == [0, 1, 2, 3, 4]
        cli("convert", f"{tmp_path / name}:/g/x", tmp_path / f"{name}-x.zarr")
        assert oxzarr.open_array(tmp_path / f"{name}-x.zarr")[...].tolist() == [0, 1, 2, 3, 4]
    # A regular file of neither kind is named as such, not as a store with no node in it.
    (tmp_path / "notes.nc").write_text("not HDF5")
    for source in (tmp_path / "notes.nc", f"{tmp_path / 'notes.nc'}:/x"):
        run = cli("convert", source, tmp_path / "out.zarr", check=False)
        assert run.returncode == 2 and run.stderr.count("\n") == 1, run.stderr
        assert f"{tmp_path / 'notes.nc'}: neither a Zarr store" in run.stderr, run.stderr
        assert "nor an HDF5 file" in run.stderr and not (tmp_path / "out.zarr").exists()


def test_info_tree_and_verify_name_a_plain_file_as_such(tmp_path: Path) -> None:
    # They said 'no node found at "/"', as if the file were a directory holding nothing.
    (tmp_path / "notes.txt").write_text("not a store")
    oxzarr.create_array(tmp_path / "a.zarr", shape=(2,), dtype="i1")
    for args in (("info",), ("tree",), ("verify", tmp_path / "a.zarr")):
        run = cli(*args, tmp_path / "notes.txt", check=False)
        assert run.returncode == 2 and run.stderr.count("\n") == 1, run.stderr
        assert f"{tmp_path / 'notes.txt'}: a file, not a Zarr store" in run.stderr, run.stderr
    # A .zip file is a store.
    with zipfile.ZipFile(tmp_path / "store.zip", "w") as z:
        z.write(tmp_path / "a.zarr" / "zarr.json", "zarr.json")
    assert re.search(r"shape +\(2,\)", cli("info", tmp_path / "store.zip").stdout)


def test_a_store_object_overlapping_the_source_is_refused(tmp_path: Path) -> None:
    # A destination given as a store, not a path, was not checked: --overwrite deleted the
    # source before it was read, and the copy held fill values.
    from oxzarr.storage import LocalStore

    source = tmp_path / "g.zarr"
    oxzarr.open_group(source, mode="w").create_array("a", shape=(4,), dtype="i4")[...] = 7
    for destination in (source, source / "a", tmp_path, tmp_path / "link"):
        if destination.name == "link":
            destination.symlink_to(source)
        with pytest.raises(ValueError, match="overlap"):
            convert(source, LocalStore(destination), overwrite=True)
    assert oxzarr.open_array(source / "a")[...].tolist() == [7] * 4
    # Sources in one file (.npy, HDF5, a zip) in the directory the store object names.
    from oxzarr.storage import ZipStore

    np.save(tmp_path / "d.npy", np.arange(3))
    with h5py.File(tmp_path / "d.h5", "w") as f:
        f.create_dataset("x", data=np.arange(3))
    zipped = ZipStore(tmp_path / "d.zip", mode="w")
    oxzarr.create_array(zipped, shape=(3,), dtype="i1")[...] = 1
    zipped.close()
    for name in ("d.npy", "d.h5", "d.h5:/x", "d.zip"):
        with pytest.raises(ValueError, match="overlap"):
            convert(str(tmp_path / name), LocalStore(tmp_path), overwrite=True)
    assert {"d.npy", "d.h5", "d.zip", "g.zarr"} <= {p.name for p in tmp_path.iterdir()}


def test_a_store_object_converts_as_a_source(tmp_path: Path) -> None:
    # The docstring says the source may be a Zarr store, as the destination may, but a store
    # object failed in os.fspath with a bare TypeError.
    from oxzarr.storage import LocalStore, MemoryStore

    memory = MemoryStore()
    oxzarr.create_array(memory, shape=(6,), chunks=(2,), dtype="i4")[...] = np.arange(6)
    report = convert(memory, tmp_path / "from_memory.zarr", chunks=(3,))
    copy = oxzarr.open_array(tmp_path / "from_memory.zarr", mode="r")
    assert (report.arrays, copy.chunks, copy[...].tolist()) == (1, (3,), list(range(6)))
    group = oxzarr.open_group(tmp_path / "g.zarr", mode="w", attributes={"k": 1})
    group.create_array("a/b", shape=(2,), dtype="u1")[...] = 9
    for name, source in (
        ("local", LocalStore(tmp_path / "g.zarr")),
        ("zarr_python", zarr.storage.LocalStore(tmp_path / "g.zarr", read_only=True)),
    ):
        convert(source, tmp_path / f"{name}.zarr", zarr_format=2)
        copied = oxzarr.open_group(tmp_path / f"{name}.zarr", mode="r")
        assert (copied.zarr_format, copied.attrs["k"]) == (2, 1)
        assert copied["a/b"][...].tolist() == [9, 9]
    # Its place is checked against the destination's, as a path's is.
    with pytest.raises(ValueError, match="overlap"):
        convert(LocalStore(tmp_path / "g.zarr"), tmp_path / "g.zarr" / "c", overwrite=True)


def test_memory_stores_overlap_only_where_they_share_keys() -> None:
    # Every MemoryStore made as an object described itself as "memory://", so a conversion
    # into a new MemoryStore from any memory source (another MemoryStore, a memory:// URL)
    # was refused: "memory: and the source memory: overlap".
    from oxzarr.storage import CountingStore, MemoryStore

    source = MemoryStore()
    oxzarr.create_array(source, shape=(4,), dtype="i4")[...] = 7
    oxzarr.create_array("memory://convert-source", shape=(4,), dtype="i4")[...] = 7
    for given, destination in (
        (source, MemoryStore()),
        ("memory://convert-source", MemoryStore()),
        (source, "memory://convert-destination"),
    ):
        convert(given, destination)
        assert oxzarr.open_array(destination, mode="r")[...].tolist() == [7] * 4
    # One store's views, counted or not, are that store.
    for destination in (source, source.with_read_only(False), CountingStore(source)):
        with pytest.raises(ValueError, match=re.escape("(a MemoryStore object) overlap")):
            convert(source, destination, overwrite=True)
    assert oxzarr.open_array(source, mode="r")[...].tolist() == [7] * 4


def test_a_dataset_converted_over_its_own_hdf5_file_is_refused(tmp_path: Path) -> None:
    # The overlap check resolved "d.h5:/a" as a path of its own, so --overwrite replaced the
    # HDF5 file (and every other dataset in it) with the converted one.
    h5 = tmp_path / "d.h5"
    with h5py.File(h5, "w") as f:
        f.create_dataset("a", data=np.arange(4))
        f.create_dataset("b", data=np.arange(3))
    run = cli("convert", "--overwrite", f"{h5}:/a", h5, check=False)
    assert run.returncode == 2 and "overlap" in run.stderr, run.stderr
    with h5py.File(h5, "r") as f:
        assert sorted(f) == ["a", "b"]


def test_hdf5_scalars_fill_values_and_variable_length_data(tmp_path: Path) -> None:
    h5 = tmp_path / "v.h5"
    with h5py.File(h5, "w") as f:
        f["scalar"] = 3.5
        f.create_dataset("filled", shape=(6,), dtype="i4", fillvalue=-1)[:2] = [4, 5]
        f.create_dataset("text", data=["a", "bcd"], dtype=h5py.string_dtype())
        f.create_dataset("raw", data=[b"x", b"yz"], dtype=h5py.vlen_dtype(bytes))
    cli("convert", h5, tmp_path / "v.zarr")
    root = oxzarr.open_group(tmp_path / "v.zarr")
    assert root["scalar"].shape == () and root["scalar"][()] == 3.5
    assert root["filled"].fill_value == -1
    np.testing.assert_array_equal(root["filled"][...], [4, 5, -1, -1, -1, -1])
    assert root["text"][...].tolist() == ["a", "bcd"]
    assert root["raw"][...].tolist() == [b"x", b"yz"]
    # Sequences of numbers have no Zarr data type: refused, not turned into text.
    with h5py.File(tmp_path / "seq.h5", "w") as f:
        f.create_dataset("seq", shape=(2,), dtype=h5py.vlen_dtype("i4"))[...] = [[1, 2], [3]]
    run = cli("convert", tmp_path / "seq.h5", tmp_path / "seq.zarr", check=False)
    assert run.returncode == 2 and "variable-length sequences of int32" in run.stderr
    assert not (tmp_path / "seq.zarr").exists()


def test_hdf5_named_types_long_doubles_and_text_fill_values(tmp_path: Path) -> None:
    # A named data type (netCDF-4 keeps its record types so) holds no data: left out, where
    # it stopped the conversion with a TypeError naming nothing. Long double attributes are
    # the nearest float (their item() is themselves: the conversion recursed without end).
    # A fill value typed for variable-length HDF5 text is that text, not bytes' repr.
    h5 = tmp_path / "n.h5"
    with h5py.File(h5, "w") as f:
        f["rec_t"] = np.dtype([("a", "i4"), ("b", "f8")])
        f.create_dataset("rec", shape=(2,), dtype=f["rec_t"])
        f.create_dataset("x", data=np.arange(3))
        f["x"].attrs["scale"] = np.longdouble(1.5)
        f["x"].attrs["scales"] = np.array([0.5, 2], dtype=np.longdouble)
        f["x"].attrs["phase"] = np.clongdouble(1 + 2j)
        f.create_dataset("text", data=["a", "béta"], dtype=h5py.string_dtype("utf-8"))
    cli("convert", h5, tmp_path / "n.zarr")
    root = zarr.open_group(tmp_path / "n.zarr", mode="r")
    assert sorted(root) == ["rec", "text", "x"]
    assert dict(root["x"].attrs) == {"scale": 1.5, "scales": [0.5, 2.0], "phase": "(1+2j)"}
    run = cli("convert", f"{h5}:/rec_t", tmp_path / "t.zarr", check=False)
    assert run.returncode == 2 and f"{h5}:/rec_t: an HDF5 named data type" in run.stderr
    for fmt in ("2", "3"):
        out = tmp_path / f"text{fmt}.zarr"
        cli("convert", "--zarr-format", fmt, "--fill-value", "xyz", f"{h5}:/text", out)
        text = zarr.open_array(out, mode="r+")
        assert text.fill_value == "xyz"
        text.resize((3,))
        assert text[...].tolist() == ["a", "béta", "xyz"]


def test_hdf5_and_npy_sources_oxzarr_cannot_take_are_named(tmp_path: Path) -> None:
    """One line naming the file and the HDF5 object: link cycles, links to nothing,
    array-typed elements, records with variable-length fields, text that is not UTF-8, and
    .npy files that are empty or cut short."""
    h5 = tmp_path / "bad.h5"
    with h5py.File(h5, "w") as f:
        f.create_group("g")["d"] = np.arange(3)
        f["g"]["parent"] = h5py.SoftLink("/")
        f.create_dataset("triples", shape=(4,), dtype=np.dtype(("f4", (3,))))
        f["record"] = np.array([(1, "ab")], dtype=[("a", "i4"), ("s", h5py.string_dtype())])
        f.create_dataset("text", shape=(1,), dtype=h5py.string_dtype("utf-8"))[0] = b"\xff"
    with h5py.File(tmp_path / "lost.h5", "w") as f:
        f["data"] = np.arange(3)
        f["lost"] = h5py.SoftLink("/nowhere")
    np.save(tmp_path / "full.npy", np.arange(1000.0))
    (tmp_path / "cut.npy").write_bytes((tmp_path / "full.npy").read_bytes()[:-100])
    (tmp_path / "empty.npy").write_bytes(b"")
    np.savez(tmp_path / "many.npz", a=np.arange(3))
    (tmp_path / "many.npz").rename(tmp_path / "many.npy")
    for source, message in [
        (h5, f"{h5}:/g/parent links back to a group above it"),
        (tmp_path / "lost.h5", f"{tmp_path / 'lost.h5'}:/lost: "),
        (f"{h5}:/triples", f"{h5}:/triples: array-typed elements have no Zarr data type"),
        (f"{h5}:/record", f"{h5}:/record: records with variable-length fields"),
        (f"{h5}:/text", f"{h5}:/text: 'utf-8' codec can't decode"),
        (tmp_path / "cut.npy", f"{tmp_path / 'cut.npy'}: not a .npy file of an array"),
        (tmp_path / "empty.npy", f"{tmp_path / 'empty.npy'}: not a .npy file of an array"),
        (tmp_path / "many.npy", f"{tmp_path / 'many.npy'}: an .npz archive of arrays"),
    ]:
        run = cli("convert", source, tmp_path / "out.zarr", check=False)
        assert run.returncode == 2 and run.stderr.count("\n") == 1, run.stderr
        assert message in run.stderr, (message, run.stderr)


def test_names_inside_hdf5_files_and_stores_named_like_files(tmp_path: Path) -> None:
    """FILE.h5:/path ends the file's name at the first ".h5:", so names inside may end in
    .npy or .h5; a directory is a Zarr store whatever its name ends in."""
    h5 = tmp_path / "r.h5"
    with h5py.File(h5, "w") as f:
        f["scan.npy"] = np.arange(3)
        f["run.h5/x"] = np.arange(2)
    cli("convert", f"{h5}:/scan.npy", tmp_path / "scan.zarr")
    assert oxzarr.open_array(tmp_path / "scan.zarr")[...].tolist() == [0, 1, 2]
    cli("convert", f"{h5}:/run.h5", tmp_path / "run.zarr")
    assert oxzarr.open_array(tmp_path / "run.zarr/x")[...].tolist() == [0, 1]
    for name in ("store.npy", "store.h5"):
        oxzarr.create_array(tmp_path / name, shape=(3,), dtype="i1")[...] = [1, 2, 3]
        cli("convert", tmp_path / name, tmp_path / f"{name}.zarr")
        assert oxzarr.open_array(tmp_path / f"{name}.zarr")[...].tolist() == [1, 2, 3]


@pytest.mark.parametrize(
    ("zarr_format", "encoding", "key"),
    [
        (2, {"name": "v2", "separator": "/"}, "1/0"),
        (3, {"name": "v2", "separator": "."}, "1.0"),
        (3, {"name": "default", "separator": "."}, "c.1.0"),
    ],
)
def test_the_chunk_key_encoding_is_kept(
    tmp_path: Path, zarr_format: int, encoding: dict[str, str], key: str
) -> None:
    src = tmp_path / "k.zarr"
    a = zarr.create_array(
        str(src),
        shape=(4, 4),
        chunks=(2, 2),
        dtype="i4",
        zarr_format=zarr_format,
        chunk_key_encoding=encoding,
    )
    a[...] = np.arange(16).reshape(4, 4)
    cli("convert", src, tmp_path / "out.zarr", "--compressor", "none")
    assert (tmp_path / "out.zarr" / key).is_file()
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "out.zarr"))[...], a[...])


@pytest.mark.parametrize(
    ("zarr_format", "encoding", "key"),
    [
        # v2 names chunks as a v3 array with the "v2" encoding does: the separator stays.
        (3, {"name": "v2", "separator": "/"}, "1/0"),
        (3, {"name": "v2", "separator": "."}, "1.0"),
        # The others have no v2 form, and v2 arrays take v3's default, as zarr-python's
        # from_array gives them across formats.
        (3, {"name": "default", "separator": "/"}, "1.0"),
        (2, {"name": "v2", "separator": "/"}, "c/1/0"),
        (2, {"name": "v2", "separator": "."}, "c/1/0"),
    ],
)
def test_the_chunk_key_encoding_is_kept_where_the_other_format_has_it(
    tmp_path: Path, zarr_format: int, encoding: dict[str, str], key: str
) -> None:
    src = tmp_path / "k.zarr"
    a = zarr.create_array(
        str(src),
        shape=(4, 4),
        chunks=(2, 2),
        dtype="i4",
        zarr_format=zarr_format,
        chunk_key_encoding=encoding,
    )
    a[...] = np.arange(16).reshape(4, 4)
    out = tmp_path / "out.zarr"
    cli("convert", src, out, "--zarr-format", str(5 - zarr_format), "--compressor", "none")
    assert (out / key).is_file()
    b = zarr.open_array(str(out))
    assert b.metadata.zarr_format == 5 - zarr_format
    np.testing.assert_array_equal(b[...], a[...])


@pytest.mark.parametrize("to_format", [2, 3])
def test_records_change_format(tmp_path: Path, to_format: int) -> None:
    """A v2 record's fields carry their byte order, a v3 one's do not: the values are the
    same all the same."""
    dtype = np.dtype([("a", "i2"), ("b", "f4")])
    values = np.array([(1, 2.0), (3, 4.5), (5, 6.5)], dtype=dtype)
    src = tmp_path / "r.zarr"
    from_format = 5 - to_format
    a = zarr.create_array(str(src), shape=(3,), chunks=(2,), dtype=dtype, zarr_format=from_format)
    a[...] = values
    out = tmp_path / "out.zarr"
    cli("convert", src, out, "--zarr-format", str(to_format))
    b = zarr.open_array(str(out), mode="r")
    assert b.metadata.zarr_format == to_format
    np.testing.assert_array_equal(b[...], values)
    assert cli("verify", src, out).returncode == 0


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_variable_length_bytes_stay_bytes(tmp_path: Path, zarr_format: int) -> None:
    src = tmp_path / "b.zarr"
    a = oxzarr.create_array(src, shape=(5,), dtype=bytes, chunks=(2,), zarr_format=zarr_format)
    a[:3] = np.array([b"a", b"bb", b""], dtype=object)
    cli("convert", src, tmp_path / "out.zarr", "--chunks", "5")
    assert oxzarr.open_array(tmp_path / "out.zarr")[...].tolist() == a[...].tolist()
    assert cli("verify", src, tmp_path / "out.zarr").returncode == 0


def test_v2_shuffle_filter_and_f_order_with_a_new_dtype(tmp_path: Path) -> None:
    import numcodecs

    values = np.arange(60, dtype="f8").reshape(6, 10)
    src = tmp_path / "s.zarr"
    zarr.create_array(
        src,
        shape=values.shape,
        dtype="f8",
        chunks=(4, 4),
        zarr_format=2,
        filters=[numcodecs.Shuffle(elementsize=8)],
        compressors=numcodecs.Zlib(1),
    )[...] = values
    cli("convert", src, tmp_path / "copy.zarr")  # v2 to v2: the bytes filter stays a filter
    copy = zarr.open_array(tmp_path / "copy.zarr")
    assert copy.metadata.to_dict()["filters"] == [{"id": "shuffle", "elementsize": 8}]
    np.testing.assert_array_equal(copy[...], values)
    cli("convert", src, tmp_path / "v3.zarr", "--zarr-format", "3")
    cli("convert", tmp_path / "v3.zarr", tmp_path / "back.zarr", "--zarr-format", "2")
    np.testing.assert_array_equal(zarr.open_array(tmp_path / "back.zarr")[...], values)
    # An F-order, big-endian v2 array to v3 with another dtype: transpose moves values only.
    f = tmp_path / "f.zarr"
    zarr.create_array(f, shape=(6, 10), dtype=">i2", chunks=(4, 4), zarr_format=2, order="F")[
        ...
    ] = values.astype("i2")
    cli("convert", f, tmp_path / "f4.zarr", "--zarr-format", "3", "--dtype", "c8")
    np.testing.assert_array_equal(oxzarr.open_array(tmp_path / "f4.zarr")[...], values)
    cli("convert", f, tmp_path / "same.zarr", "--zarr-format", "3")
    assert cli("verify", f, tmp_path / "same.zarr").stdout == "equal\n"  # >i2 and <i2 values


def test_verify_takes_missing_values_as_equal(tmp_path: Path) -> None:
    stamps = np.array(["2020-01-01", "NaT", "2021-06-30"], dtype="M8[s]")
    records = np.array([(1, np.nan), (2, 0.5)], dtype=[("n", "i4"), ("x", "f8")])
    for name, values in (("t", stamps), ("r", records)):
        a = oxzarr.create_array(tmp_path / name, shape=values.shape, dtype=values.dtype)
        a[...] = values
        cli("convert", tmp_path / name, tmp_path / f"{name}2", "--chunks", "1")
        assert cli("verify", tmp_path / name, tmp_path / f"{name}2").returncode == 0


def test_verify_compares_complex_numbers_part_by_part(tmp_path: Path) -> None:
    # numpy's equal_nan takes any complex number with a NaN part as equal to any other.
    for name, values in (("a", [complex("nan+1j"), 5 + 1j]), ("b", [complex("nan+2j"), 5 + 1j])):
        oxzarr.create_array(tmp_path / name, shape=(2,), dtype="c16")[...] = values
    for name, values in (("c", [complex("5+nanj")]), ("d", [complex("-7+nanj")])):
        oxzarr.create_array(tmp_path / name, shape=(1,), dtype="c8")[...] = values
    for x, y in (("a", "b"), ("c", "d")):
        run = cli("verify", tmp_path / x, tmp_path / y, check=False)
        assert run.returncode == 1 and "values differ" in run.stdout, run
    cli("convert", tmp_path / "a", tmp_path / "a2", "--chunks", "1")
    assert cli("verify", tmp_path / "a", tmp_path / "a2").stdout == "equal\n"


def test_stale_consolidated_metadata_does_not_hide_arrays(tmp_path: Path) -> None:
    src = tmp_path / "g.zarr"
    root = oxzarr.open_group(src, mode="w")
    root.create_array("a", shape=(3,), dtype="i1")[...] = 1
    oxzarr.consolidate_metadata(src)
    oxzarr.open_group(src, mode="r+", use_consolidated=False).create_array(
        "late", shape=(2,), dtype="i1"
    )[...] = 2
    cli("convert", src, tmp_path / "out.zarr")
    out = oxzarr.open_group(tmp_path / "out.zarr")
    assert out.is_consolidated and sorted(out.keys()) == ["a", "late"]
    np.testing.assert_array_equal(out["late"][...], [2, 2])
    assert cli("verify", src, tmp_path / "out.zarr").returncode == 0  # what the stores hold


def test_destination_through_a_symlink_and_negative_fill_values(
    tmp_path: Path, source: Path
) -> None:
    (tmp_path / "real").mkdir()
    link = tmp_path / "link.zarr"
    link.symlink_to(tmp_path / "real" / "target.zarr")  # dangling until written
    cli("convert", source, link, "--fill-value", "-inf", "--dtype", "f4")
    out = oxzarr.open_array(tmp_path / "real" / "target.zarr")
    assert out.fill_value == -np.inf and link.is_symlink()
    cli("convert", source, link, "--overwrite")  # replaces what the link points to
    assert link.is_symlink() and oxzarr.open_array(link).dtype == np.dtype("u2")
    assert not [p for p in tmp_path.rglob("*oxzarr-*")]


def test_an_option_after_fill_value_is_no_fill_value(tmp_path: Path) -> None:
    # Any word starting with "-" after --fill-value was taken as its value: a text array got
    # the fill value "--no-progress", and --overwrite was dropped.
    src = tmp_path / "src.zarr"
    oxzarr.create_array(src, shape=(3,), dtype=str)[...] = np.array(["a", "b", "c"])
    dst = tmp_path / "dst.zarr"
    for option in ("--no-progress", "--overwrite", "--over", "--chunks=2", "-h", "--"):
        run = cli("convert", src, dst, "--fill-value", option, check=False)
        assert run.returncode == 2, (option, run)
        assert "argument --fill-value: expected one argument" in run.stderr, (option, run)
        assert not dst.exists()
    # Values that are no option, numbers or text, are still the fill value.
    for value in ("-x", "--x", "-"):
        cli("convert", src, dst, "--fill-value", value, "--overwrite")
        assert zarr.open_array(dst, mode="r").fill_value == value
    oxzarr.create_array(tmp_path / "n.zarr", shape=(3,), dtype="f4")
    cli("convert", tmp_path / "n.zarr", dst, "--fill-value", "-1e5", "--overwrite")
    assert zarr.open_array(dst, mode="r").fill_value == -1e5


def test_info(tmp_path: Path, source: Path) -> None:
    out = cli("info", source).stdout
    for expected in (
        "Zarr v3",
        "(96, 80, 64)",
        "dimension names    ('z', 'y', 'x')",
        "uint16",
        "(96, 10, 16)",
        "shards",
        "Zstd",
        "stored bytes",
        "compression ratio",
        '"units": "K"',
    ):
        assert expected in out, (expected, out)
    stored = oxzarr.open_array(source).nbytes_stored()
    assert f"stored bytes       {stored}" in out


def test_verify_exit_codes(tmp_path: Path, source: Path) -> None:
    copy = tmp_path / "copy.zarr"
    cli("convert", source, copy)
    assert cli("verify", source, copy).returncode == 0
    oxzarr.open_array(copy, mode="r+")[95, 79, 63] = 0
    different = cli("verify", source, copy, check=False)
    assert different.returncode == 1 and "values differ" in different.stdout
    missing = cli("verify", source, tmp_path / "none.zarr", check=False)
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1


@pytest.mark.timeout(120)  # without the fix, the walk of the grid does not end
def test_verify_of_a_sparse_array_reads_only_its_stored_chunks(tmp_path: Path) -> None:
    """verify read every block of both arrays: one of 2**40 elements holding two chunks did
    not finish. Where neither stores a chunk and the fill values agree, nothing is read."""
    shapes = {"a": (2**40,), "b": (2**40,), "c": (2**40,), "d": (2**40,)}
    for name, shape in shapes.items():
        fill = 1 if name == "d" else 0
        a = oxzarr.create_array(
            tmp_path / name, shape=shape, chunks=(1000,), dtype="i4", fill_value=fill
        )
        a[0] = 5
        a[-1] = 7
    kept = oxzarr.open_array(tmp_path / "b", config={"write_empty_chunks": True})
    kept[123_456_789] = 0  # a chunk of the fill value, stored
    oxzarr.open_array(tmp_path / "c")[2**39] = 3  # a stored chunk only one side has
    assert cli("verify", tmp_path / "a", tmp_path / "b").stdout == "equal\n"
    different = cli("verify", tmp_path / "a", tmp_path / "c", check=False)
    assert different.returncode == 1 and "values differ" in different.stdout
    # Fill values that differ: the blocks are read, and the first differs.
    other_fill = cli("verify", tmp_path / "a", tmp_path / "d", check=False)
    assert other_fill.returncode == 1 and "values differ in [0:" in other_fill.stdout


@pytest.mark.timeout(120)  # without the fix, the plan of the grid is not made in memory
def test_convert_of_a_sparse_array_reads_and_writes_only_where_chunks_are_stored(
    tmp_path: Path,
) -> None:
    """convert planned and walked every unit of the destination's grid, about 500 bytes of
    plan each: a (10**6)² array in 10² chunks holding two was killed for memory. Where the
    other units can only hold the fill value, only the units reading a stored chunk are
    walked; the others are counted done."""
    huge = oxzarr.create_array(
        tmp_path / "huge.zarr", shape=(10**6, 10**6), chunks=(10, 10), dtype="i2", fill_value=3
    )
    huge[5, 5] = 1
    huge[-1, 123_456] = 2
    report = convert(tmp_path / "huge.zarr", tmp_path / "huge2.zarr", chunks=(8, 8))
    out = oxzarr.open_array(tmp_path / "huge2.zarr")
    assert (out[5, 5], out[-1, 123_456], out[6, 5], out[500_000, 7]) == (1, 2, 3, 3)
    assert out.nchunks_initialized == 2  # the units holding a written value
    # The units reading a stored chunk read the chunks beside it too: 2x2 around (5, 5), and
    # 2x3 around the other (its 8-element units straddle three source chunks' columns).
    assert report.source_decodes == 4 + 6 and report.units == out.nchunks

    # Fewer decodes than the source's chunks tells the walk apart from one of every unit.
    values = np.full((200, 300), 3, dtype="i2")
    values[17, 250] = 9
    values[100:120, 0:10] = 4
    small = oxzarr.create_array(
        tmp_path / "small.zarr", shape=values.shape, chunks=(10, 10), dtype="i2", fill_value=3
    )
    small[...] = values
    report = convert(
        tmp_path / "small.zarr", tmp_path / "sharded.zarr", chunks=(4, 5), shards=(8, 30)
    )
    np.testing.assert_array_equal(oxzarr.open_array(tmp_path / "sharded.zarr")[...], values)
    # The 3x3 source chunks the shards around (1, 25) and around (10:12, 0) read, of 600.
    assert report.source_decodes == 9 + 9
    # A fill value the source's does not convert to: every unit is written.
    report = convert(tmp_path / "small.zarr", tmp_path / "refilled.zarr", fill_value=0)
    np.testing.assert_array_equal(oxzarr.open_array(tmp_path / "refilled.zarr")[...], values)
    assert report.source_decodes == small.nchunks


@pytest.mark.parametrize(
    "layout",
    [
        {"chunks": (777,)},
        {"chunks": (777,), "shards": (777 * 5,)},
        {"chunks": (777,), "zarr_format": 2},
    ],
    ids=["chunks", "shards", "v2"],
)
def test_convert_keeps_the_last_chunk_of_an_axis_of_2_64_elements(
    tmp_path: Path, layout: dict[str, Any]
) -> None:
    # The destination's last chunk (or inner chunk) reaches past 2**64 - 1: the end of its
    # box overflowed, which a release build wrapped into a box ending before the data,
    # leaving that chunk holding the fill value; a debug build panicked.
    src = tmp_path / "src.zarr"
    a = oxzarr.create_array(src, shape=(2**64 - 1,), chunks=(2**20,), dtype="i2", fill_value=3)
    a[0] = 1
    a[-1] = 7
    convert(src, tmp_path / "dst.zarr", **layout)
    b = oxzarr.open_array(tmp_path / "dst.zarr")
    assert (b[0], b[-2], b[-1]) == (1, 3, 7)
    assert b.nchunks_initialized == 2


def test_convert_to_float16_rounds_once_as_numpy(tmp_path: Path) -> None:
    """float64 to float16 went through float32, rounding twice: 1 + 2**-11 + 2**-40 became
    1.0 (numpy's astype gives 1.001), and a fill value of it no longer matched the
    destination's, so every chunk was stored."""
    values = np.array([-0.17791747913638098, 3502.9999059102206, 1 + 2**-11 + 2**-40, 7.0])
    src = oxzarr.create_array(tmp_path / "v.zarr", shape=(4,), chunks=(4,), dtype="f8")
    src[...] = values
    convert(tmp_path / "v.zarr", tmp_path / "v16.zarr", dtype="f2")
    np.testing.assert_array_equal(
        oxzarr.open_array(tmp_path / "v16.zarr")[...].view("u2"), values.astype("f2").view("u2")
    )
    fill = 1 + 2**-11 + 2**-40
    sparse = oxzarr.create_array(
        tmp_path / "f.zarr", shape=(8,), chunks=(2,), dtype="f8", fill_value=fill
    )
    sparse[0] = 5.0
    convert(tmp_path / "f.zarr", tmp_path / "f16.zarr", dtype="f2")
    out = oxzarr.open_array(tmp_path / "f16.zarr")
    assert out.fill_value == np.float16(fill) and out[-1] == np.float16(fill)
    assert out.nchunks_initialized == 1


def test_convert_counts_any_nan_as_a_nan_fill_value(tmp_path: Path) -> None:
    """A chunk of NaNs whose bits differ from the fill value's NaN (x86's has the sign set)
    was stored, where zarr-python and oxzarr's own writes leave it out; a source whose fill
    value is such a NaN had every chunk stored."""
    signed_nan = np.array([0xFFF8000000000000] * 2, dtype="u8").view("f8")
    assert np.signbit(signed_nan).all()
    src = zarr.create_array(
        tmp_path / "src",
        shape=(4,),
        chunks=(2,),
        dtype="f8",
        fill_value=np.nan,
        compressors=None,
        config={"write_empty_chunks": True},
    )
    src[:] = np.concatenate([signed_nan, [1.0, 2.0]])
    convert(tmp_path / "src", tmp_path / "dst")
    assert sorted(os.listdir(tmp_path / "dst" / "c")) == ["1"]
    hex_fill = zarr.create_array(
        tmp_path / "hex", shape=(1000,), chunks=(10,), dtype="f8", fill_value=np.nan
    )
    hex_fill[5] = 1.0
    document = json.loads((tmp_path / "hex" / "zarr.json").read_text())
    document["fill_value"] = "0xfff8000000000000"
    (tmp_path / "hex" / "zarr.json").write_text(json.dumps(document))
    report = convert(tmp_path / "hex", tmp_path / "hex2")
    assert os.listdir(tmp_path / "hex2" / "c") == ["0"] and report.source_decodes == 1


def test_convert_of_text_counts_the_source_chunks_each_unit_decodes(tmp_path: Path) -> None:
    # Variable-length elements have no cache: each destination unit decodes the source
    # chunks it reads. The count said one a unit, whatever it read.
    a = oxzarr.create_array(tmp_path / "s.zarr", shape=(20, 20), chunks=(10, 10), dtype=str)
    a[...] = np.full((20, 20), "x")
    assert convert(tmp_path / "s.zarr", tmp_path / "d.zarr", chunks=(2, 2)).source_decodes == 100
    report = convert(tmp_path / "s.zarr", tmp_path / "e.zarr", chunks=(15, 15))
    assert report.source_decodes == 1 + 2 + 2 + 4  # the corner unit reads one, the far one four
    np.testing.assert_array_equal(oxzarr.open_array(tmp_path / "e.zarr")[...], a[...])


@pytest.mark.parametrize("dtype", [str, bytes])
def test_verify_and_info_of_0d_text_and_bytes(tmp_path: Path, dtype: type) -> None:
    value: Any = dtype("hi", "ascii") if dtype is bytes else "hi"
    oxzarr.create_array(tmp_path / "a.zarr", shape=(), dtype=dtype)[()] = value
    cli("convert", tmp_path / "a.zarr", tmp_path / "b.zarr")
    assert cli("verify", tmp_path / "a.zarr", tmp_path / "b.zarr").stdout == "equal\n"
    oxzarr.open_array(tmp_path / "b.zarr", mode="r+")[()] = (
        dtype("ho", "ascii") if dtype is bytes else "ho"
    )
    different = cli("verify", tmp_path / "a.zarr", tmp_path / "b.zarr", check=False)
    assert different.returncode == 1 and "values differ" in different.stdout
    # The codec by its class, as zarr-python shows it.
    name = "VLenUTF8Codec()" if dtype is str else "VLenBytesCodec()"
    assert f"codecs             {name}, " in cli("info", tmp_path / "a.zarr").stdout


def test_closed_output_keeps_the_work_and_the_exit_status(tmp_path: Path, source: Path) -> None:
    """Output nobody reads (a reader that went away, a stream closed from the start) is
    dropped: no error, and verify still says 1 for arrays that differ."""
    copy = tmp_path / "copy.zarr"
    closed = ["sh", "-c", '"$0" -m oxzarr "$@" >&- 2>&-', sys.executable]
    assert subprocess.run([*closed, "convert", source, copy], timeout=300).returncode == 0
    np.testing.assert_array_equal(oxzarr.open_array(copy)[...], data())
    assert subprocess.run([*closed, "info", copy], timeout=300).returncode == 0
    oxzarr.open_array(copy, mode="r+")[0, 0, 0] = 1  # 0 in the source
    assert subprocess.run([*closed, "verify", source, copy], timeout=300).returncode == 1

    def with_reader_gone(*args: Any) -> subprocess.CompletedProcess[str]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "oxzarr", *map(str, args)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        proc.stdout.close()  # before the command starts writing
        _, stderr = proc.communicate(timeout=300)
        return subprocess.CompletedProcess(proc.args, proc.returncode, "", stderr)

    info = with_reader_gone("info", copy)
    assert (info.returncode, info.stderr) == (0, "")
    verify = with_reader_gone("verify", source, copy)
    assert (verify.returncode, verify.stderr) == (1, "")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{missing}", "{dst}"], "no node found"),
        (["{src}", "{existing}"], "exists (overwrite it with --overwrite)"),
        (
            ["{src}", "{dst}", "--chunks", "30,30,30", "--shards", "64,64,64"],
            "is not a multiple of the chunk shape",
        ),
        (["{src}", "{dst}", "--compressor", "lzma:3"], "unknown compressor 'lzma:3'"),
        (["{src}", "{dst}", "--compressor", "blosc:snappy:5:shuffle"], "not 'snappy'"),
        (["{src}", "{dst}", "--chunks", "a,b"], "--chunks takes integers"),
        (["{src}", "{dst}", "--chunks", "8,8"], "has 2 dimensions, the array 3"),
        (["{src}", "{src}/c/0/0/0/x.zarr"], "overlap"),
        (["{src}", "{tmp}", "--overwrite"], "overlap"),
        (["{src}", "", "--overwrite"], "must not be empty"),
        (["{src}", "{dst}", "--threads", "100000"], "from 1 to 1024"),
        (["{src}", "{dst}", "--dtype", "bool", "--fill-value", "no"], "'no' is not a bool"),
        (["{src}", "{dst}", "--dtype", "f4", "--fill-value", "1e400"], "out of range"),
        # Finite as a Python float, inf in the array's dtype.
        (["{src}", "{dst}", "--dtype", "f4", "--fill-value", "1e39"], "out of range"),
        (["{src}", "{dst}", "--dtype", "f2", "--fill-value", "70000"], "out of range"),
        (["{src}", "{dst}", "--dtype", "c8", "--fill-value", "1e39+1j"], "out of range"),
        (["{src}", "{dst}", "--chunks", ""], "--chunks takes integers"),
        (["{src}", "{dst}", "--fill-value", "abc"], "'abc' is not a number"),
        (["{src}", "{dst}", "--dtype", "float99"], "unknown data type"),
        (["{src}", "{dst}", "--zarr-format", "2", "--shards", "8,8,8"], "no shards"),
        (["{src}", "{dst}", "--dtype", "bool"], "the fill value 7 has no bool form"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, source: Path, args: list[str], message: str
) -> None:
    existing = tmp_path / "existing.zarr"
    existing.mkdir()
    names = {
        "src": source,
        "dst": tmp_path / "dst.zarr",
        "missing": tmp_path / "missing.zarr",
        "existing": existing,
        "tmp": tmp_path,
    }
    run = cli("convert", *(a.format(**names) for a in args), check=False, cwd=tmp_path)
    assert run.returncode == 2, run
    assert run.stderr.startswith("oxzarr: error: ") and run.stderr.count("\n") == 1, run.stderr
    assert message in run.stderr
    assert "Traceback" not in run.stderr
    assert not (tmp_path / "dst.zarr").exists()
    assert not [p for p in tmp_path.iterdir() if "oxzarr-partial" in p.name]


def test_an_unwritable_destination_is_named(source: Path) -> None:
    # /proc takes no new directories, even from root (for whom permission bits never say no).
    run = cli("convert", source, "/proc/oxzarr-test.zarr", check=False)
    assert run.returncode == 2 and run.stderr.count("\n") == 1, run.stderr
    assert (
        "cannot create /proc/oxzarr-test.zarr" in run.stderr
        or "cannot write in /proc" in run.stderr
    ), run.stderr


def test_overwrite_replaces_the_destination(tmp_path: Path, source: Path) -> None:
    dst = tmp_path / "dst.zarr"
    oxzarr.create_array(dst, shape=(3,), dtype="i1")
    cli("convert", source, dst, "--overwrite")
    np.testing.assert_array_equal(oxzarr.open_array(dst)[...], data())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dst.zarr", "src.zarr"]


def test_an_existing_remote_destination_is_refused_in_the_commands_words(
    tmp_path: Path, s3_bucket: tuple[str, dict[str, Any]]
) -> None:
    # An s3:// destination that exists was refused with the API's "(pass overwrite=True to
    # replace it)", where a local one says "(overwrite it with --overwrite)".
    bucket, options = s3_bucket
    flags = [f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in options.items()]
    reach = [part for value in flags for part in ("--destination-option", value)]
    oxzarr.create_array(tmp_path / "a.zarr", shape=(3,), dtype="i4")[...] = 1
    oxzarr.create_group(tmp_path / "g.zarr").create_array("x", shape=(2,), dtype="i1")
    for source in (tmp_path / "a.zarr", tmp_path / "g.zarr"):
        url = f"{bucket}/{source.name}"
        cli("convert", source, url, *reach)
        for other in (tmp_path / "a.zarr", tmp_path / "g.zarr"):  # an array or a group there
            run = cli("convert", other, url, *reach, check=False)
            assert run.returncode == 2, run
            assert run.stderr == f"oxzarr: error: {url} exists (overwrite it with --overwrite)\n"
    cli("convert", tmp_path / "g.zarr", f"{bucket}/a.zarr", "--overwrite", *reach)
    assert "x" in oxzarr.open_group(f"{bucket}/a.zarr", mode="r", storage_options=options)


def test_progress_on_request_and_quiet_when_piped(tmp_path: Path, source: Path) -> None:
    quiet = cli("convert", source, tmp_path / "a.zarr")
    assert quiet.stderr == "" and quiet.stdout == ""
    shown = cli("convert", source, tmp_path / "b.zarr", "--progress", "--chunks", "8,8,8")
    assert "units" in shown.stderr and "ETA" in shown.stderr and "/s" in shown.stderr
    assert f"{12 * 10 * 8}/{12 * 10 * 8} units" in shown.stderr


def test_ctrl_c_interrupts_the_command_once() -> None:
    """The second Ctrl-C of a run does nothing, wherever it lands: before, a press between
    two steps of the first one's cleanup, or as its message was written, cut the cleanup
    short or left a bare "interrupted" (1 run in about 30 of the test below)."""
    from oxzarr.cli import _interrupt_once

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    # _interrupt_once takes SIGTERM too: put back after, or this process's forked children
    # (multiprocessing pools) would outlive the SIGTERM their pool ends them with.
    previous_term = signal.getsignal(signal.SIGTERM)
    try:
        _interrupt_once()
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)  # the handler runs here, on the main thread
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
        # Where Ctrl-C is ignored or handled by someone else, it is left so.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        _interrupt_once()
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)
        signal.signal(signal.SIGTERM, previous_term)


@pytest.mark.parametrize(
    ("presses", "name", "signum"),
    [
        (1, "dst.zarr", signal.SIGINT),
        (2, "dst.zarr", signal.SIGINT),
        (1, "dst.zip", signal.SIGINT),
        (1, "dst.zarr", signal.SIGTERM),
    ],
)
def test_ctrl_c_stops_and_leaves_no_destination(
    tmp_path: Path, presses: int, name: str, signum: int
) -> None:
    """One Ctrl-C, or two in quick succession (the second during the stop or the cleanup);
    into a directory or a zip file; or SIGTERM, as kill, timeout and service managers send."""
    src = tmp_path / "big.zarr"
    rng = np.random.default_rng(0)
    n = 320
    a = oxzarr.create_array(src, shape=(n, n, n), dtype="u2", chunks=(64, 64, 64), compressors=None)
    a[...] = rng.integers(0, 65535, size=(n, n, n), dtype="u2")
    dst = tmp_path / name
    # gzip at level 9 on random values, one thread, small chunks: seconds of work. The
    # command starts with Ctrl-C's default handling even when this test runs where SIGINT is
    # ignored (a test run started in the background inherits that, and so would the command).
    restore_ctrl_c = (
        "import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
        "sys.argv[0] = 'oxzarr'; runpy.run_module('oxzarr', run_name='__main__')"
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            restore_ctrl_c,
            "convert",
            src,
            dst,
            "--compressor",
            "gzip:9",
            "--chunks",
            "16,16,16",
            "--threads",
            "1",
            "--progress",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if any("oxzarr-partial" in p.name for p in tmp_path.iterdir()):
                break
            time.sleep(0.02)
        time.sleep(0.2)
        assert proc.poll() is None, "the conversion ended before it could be interrupted"
        interrupted_at = time.monotonic()
        proc.send_signal(signum)
        if presses == 2:
            time.sleep(0.03)
            proc.send_signal(signum)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    assert time.monotonic() - interrupted_at < 10  # promptly: the units in flight, no more
    assert proc.returncode == 130, stderr
    assert "interrupted: stopped after" in stderr and "nothing was left at" in stderr
    done, total = re.search(r"stopped after (\d+) of (\d+) units", stderr).groups()
    assert int(done) < int(total)
    assert not dst.exists()
    assert not [p for p in tmp_path.iterdir() if "oxzarr-partial" in p.name]


# Peak resident memory of a conversion in a fresh process (VmHWM).
MEASURE = """
import json, sys
from oxzarr.convert import convert

convert(sys.argv[1], sys.argv[2], chunks=(32, 32, 32), shards=(128, 128, 128),
        compressors=[{"name": "blosc", "configuration": {"cname": "lz4", "clevel": 5,
                      "shuffle": "shuffle", "typesize": 2, "blocksize": 0}}])
for line in open("/proc/self/status"):
    if line.startswith("VmHWM:"):
        print(json.dumps({"peak": int(line.split()[1]) * 1024}))
"""


def test_memory_stays_bounded(tmp_path: Path) -> None:
    # 256 MiB of uint16 in long chunks (each spanning four output shards).
    n = 512
    src = tmp_path / "long.zarr"
    a = oxzarr.create_array(
        src, shape=(n, n, n), dtype="u2", chunks=(n, n // 8, 64), compressors=ZstdCodec(level=1)
    )
    for i in range(0, n, 64):
        a[:, :, i : i + 64] = data((n, n, 64))
    run = subprocess.run(
        [sys.executable, "-c", MEASURE, str(src), str(tmp_path / "dst.zarr")],
        capture_output=True,
        text=True,
        check=True,
    )
    peak = json.loads(run.stdout)["peak"]
    array_bytes = n**3 * 2
    # Under half the array, and under the stated bound plus the interpreter, numpy and the
    # engine (about 100 MiB before any data).
    assert peak < array_bytes / 2, (peak, array_bytes)
    assert peak < MEMORY_BOUND_BYTES + (128 << 20), peak
    out = oxzarr.open_array(tmp_path / "dst.zarr")
    np.testing.assert_array_equal(out[:, :, 64:128], data((n, n, 64)))


def test_help_states_the_memory_bound() -> None:
    text = cli("convert", "--help").stdout
    assert f"Memory: about {MEMORY_BOUND_BYTES >> 20} MiB" in text


def test_float_to_integer_casts_saturate_from_every_source(tmp_path: Path) -> None:
    values = np.array([-2.7, 300.0, np.nan, 41.9, -1e30, 1e30])
    expected = [0, 255, 0, 41, 0, 255]
    np.save(tmp_path / "f.npy", values)
    oxzarr.create_array(tmp_path / "f.zarr", shape=(6,), dtype="f8", chunks=(4,))[...] = values
    for src in ("f.npy", "f.zarr"):
        out = tmp_path / f"{src}.u1.zarr"
        cli("convert", tmp_path / src, out, "--dtype", "u1", "--fill-value", "0")
        assert oxzarr.open_array(out)[...].tolist() == expected, src
    run = cli("convert", tmp_path / "f.npy", tmp_path / "c.zarr", "--dtype", "c8")
    assert run.returncode == 0
    np.testing.assert_array_equal(oxzarr.open_array(tmp_path / "c.zarr")[...], values.astype("c8"))


def test_sharding_followed_by_a_compressor_converts_as_sharding(tmp_path: Path) -> None:
    # zarr-python writes [sharding_indexed, zstd] for serializer=ShardingCodec(...): its
    # chunks are shards of 4x4 inner chunks, which a conversion keeps, unshards or reshards
    # (it nested one sharding in another, or kept sharding under --shards none).
    from zarr.codecs import ShardingCodec

    values = np.arange(256, dtype="i4").reshape(16, 16)
    src = tmp_path / "src.zarr"
    zarr.create_array(
        str(src),
        shape=(16, 16),
        dtype="i4",
        chunks=(8, 8),
        serializer=ShardingCodec(chunk_shape=(4, 4)),
    )[...] = values
    layouts = {
        (): ((4, 4), (8, 8)),
        ("--shards", "none"): ((4, 4), None),
        ("--chunks", "2,2"): ((2, 2), (8, 8)),
        ("--chunks", "4,4", "--shards", "16,16"): ((4, 4), (16, 16)),
    }
    for i, (options, (chunks, shards)) in enumerate(layouts.items()):
        out = tmp_path / f"out{i}.zarr"
        cli("convert", src, out, *options)
        a = oxzarr.open_array(out)
        assert (a.chunks, a.shards) == (chunks, shards), options
        names = [c["name"] for c in json.loads((out / "zarr.json").read_text())["codecs"]]
        assert names == (["bytes", "zstd"] if shards is None else ["sharding_indexed"])
        np.testing.assert_array_equal(zarr.open_array(str(out))[...], values)


def test_v2_groups_as_zarr_python_makes_them_convert(tmp_path: Path) -> None:
    # A v2 member named "__meta" (v3 reserves the prefix, v2 does not) and an xarray
    # attribute that holds no names: the group converts, the attribute stays an attribute.
    g = zarr.open_group(str(tmp_path / "g.zarr"), mode="w", zarr_format=2)
    g.create_array("__meta", shape=(2,), dtype="i2")[...] = [1, 2]
    odd = {"_ARRAY_DIMENSIONS": [0, 1]}
    g.create_array("d", shape=(2, 2), dtype="i1", attributes=odd)[...] = 3
    cli("convert", tmp_path / "g.zarr", tmp_path / "v2.zarr")
    assert oxzarr.open_group(tmp_path / "v2.zarr")["__meta"][...].tolist() == [1, 2]
    cli("convert", tmp_path / "g.zarr/d", tmp_path / "v3.zarr", "--zarr-format", "3")
    d = zarr.open_array(str(tmp_path / "v3.zarr"), mode="r")
    assert d.metadata.dimension_names is None and dict(d.attrs) == odd
    assert d[...].tolist() == [[3, 3], [3, 3]]


def test_record_and_raw_fill_values_in_base64(tmp_path: Path) -> None:
    # As the metadata holds them: the element's bytes.
    record = np.dtype([("a", "<i2"), ("b", "u1")])
    oxzarr.create_array(tmp_path / "rec.zarr", shape=(2,), dtype=record)
    oxzarr.create_array(tmp_path / "raw.zarr", shape=(2,), dtype="V2", zarr_format=2)
    cli("convert", tmp_path / "rec.zarr", tmp_path / "r.zarr", "--fill-value", "AQAC")
    assert zarr.open_array(str(tmp_path / "r.zarr")).fill_value.tolist() == (1, 2)
    cli("convert", tmp_path / "raw.zarr", tmp_path / "v.zarr", "--fill-value", "AQI=")
    assert oxzarr.open_array(tmp_path / "v.zarr").fill_value == np.void(b"\x01\x02")
    for text, why in [("zz", "not base64"), ("AQI=", "holds 2 bytes")]:
        run = cli(
            "convert", tmp_path / "rec.zarr", tmp_path / "x.zarr", "--fill-value", text, check=False
        )
        assert run.returncode == 2 and why in run.stderr, run.stderr


def test_fill_values_longer_than_an_element_are_refused(tmp_path: Path) -> None:
    # numpy would cut them short without a word.
    for dtype in ("U3", "S3"):
        src, out = tmp_path / f"{dtype}.zarr", tmp_path / f"{dtype}-out.zarr"
        oxzarr.create_array(src, shape=(2,), dtype=dtype)
        run = cli("convert", src, out, "--fill-value", "2020-01-01", check=False)
        assert run.returncode == 2 and "longer than an element" in run.stderr, run.stderr
        assert not out.exists()
        cli("convert", src, out, "--fill-value", "abc")
        assert oxzarr.open_array(out).fill_value in ("abc", b"abc")


def test_fill_values_are_read_by_each_arrays_data_type(tmp_path: Path) -> None:
    # Text stays the text typed ("007", not 7), bytes are its bytes, and a bool array takes
    # only true/false/1/0; in a group, each array reads the same text its own way.
    root = oxzarr.open_group(tmp_path / "src.zarr", mode="w")
    root.create_array("text", shape=(2,), dtype=str)
    root.create_array("raw", shape=(2,), dtype=bytes)
    root.create_array("fixed", shape=(2,), dtype="U3", zarr_format=3)
    root.create_array("flags", shape=(2,), dtype=bool)
    root.create_array("number", shape=(2,), dtype="f8")
    root.create_array("wave", shape=(2,), dtype="c8")
    cli("convert", tmp_path / "src.zarr", tmp_path / "a.zarr", "--fill-value", "1")
    out = oxzarr.open_group(tmp_path / "a.zarr", mode="r")
    assert out["text"].fill_value == "1" and out["raw"].fill_value == b"1"
    assert out["fixed"].fill_value == "1" and out["flags"].fill_value is np.True_
    assert out["number"].fill_value == 1.0 and out["wave"].fill_value == 1 + 0j
    cli("convert", tmp_path / "src.zarr/wave", tmp_path / "w.zarr", "--fill-value", "1+2j")
    assert oxzarr.open_array(tmp_path / "w.zarr", mode="r").fill_value == 1 + 2j
    cli("convert", tmp_path / "src.zarr/text", tmp_path / "b.zarr", "--fill-value", "007")
    assert zarr.open_array(tmp_path / "b.zarr", mode="r").fill_value == "007"
    cli("convert", tmp_path / "src.zarr/flags", tmp_path / "c.zarr", "--fill-value", "FALSE")
    assert oxzarr.open_array(tmp_path / "c.zarr", mode="r").fill_value == np.False_


def test_a_web_server_that_cannot_list(tmp_path: Path) -> None:
    """A static web server answers no listing (WebDAV's PROPFIND): info says the stored bytes
    are not known, verify and convert go by a group's consolidated metadata, and a group
    without it is one line of error, not the server's error page."""
    from tests.test_remote import _RangeServer

    values = np.arange(40, dtype="i4").reshape(5, 8)
    consolidated = oxzarr.open_group(tmp_path / "c.zarr", mode="w")
    consolidated.create_array("x", shape=(5, 8), chunks=(2, 4), dtype="i4")[...] = values
    oxzarr.consolidate_metadata(tmp_path / "c.zarr")
    oxzarr.open_group(tmp_path / "plain.zarr", mode="w").create_group("g")
    server = _RangeServer(tmp_path)
    try:
        info = cli("info", f"{server.url}/c.zarr/x").stdout
        assert "stored bytes       unknown (not listed)" in info, info
        assert cli("verify", f"{server.url}/c.zarr", tmp_path / "c.zarr").stdout == "equal\n"
        cli("convert", f"{server.url}/c.zarr", tmp_path / "copy.zarr")
        assert_same(oxzarr.open_array(tmp_path / "copy.zarr/x")[...], values)
        failed = cli("tree", f"{server.url}/plain.zarr", check=False)
        assert failed.returncode == 2 and failed.stderr.count("\n") == 1, failed.stderr
        assert "the web server does not list its files" in failed.stderr
        with pytest.raises(io.UnsupportedOperation, match="does not list"):
            list(oxzarr.open_group(f"{server.url}/plain.zarr", mode="r").keys())
    finally:
        server.close()
    # A server failing to list (500, after retries) is an error, not a server that cannot
    # list: verify does not go by consolidated metadata that misses a member added since.
    oxzarr.open_group(tmp_path / "c.zarr", mode="a").create_array("y", shape=(2,), dtype="i1")
    server = _RangeServer(tmp_path, propfind_status=500)
    try:
        failed = cli("verify", f"{server.url}/c.zarr", tmp_path / "c.zarr", check=False)
        assert failed.returncode == 2 and "500" in failed.stderr, failed
        assert failed.stderr.count("\n") == 1 and "does not list" not in failed.stderr
    finally:
        server.close()


def test_text_the_output_cannot_encode_is_an_error(tmp_path: Path) -> None:
    """Not a reader gone away: the command fails, as it did before output nobody reads was
    dropped."""
    oxzarr.open_group(tmp_path / "u.zarr", mode="w").create_group("température")
    run = subprocess.run(
        [sys.executable, "-m", "oxzarr", "tree", str(tmp_path / "u.zarr")],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONIOENCODING": "ascii"},
        timeout=300,
    )
    assert run.returncode == 2 and "codec can't encode" in run.stderr, run


def test_complex_fill_values_written_out_as_nan_or_inf(tmp_path: Path) -> None:
    oxzarr.create_array(tmp_path / "c.zarr", shape=(3,), dtype="c8")
    for text, expected in (("nan", complex("nan")), ("1+infj", complex(1, np.inf))):
        cli(
            "convert", tmp_path / "c.zarr", tmp_path / "d.zarr", "--fill-value", text, "--overwrite"
        )
        fill = zarr.open_array(tmp_path / "d.zarr", mode="r").fill_value
        np.testing.assert_array_equal(fill, np.complex64(expected))


def test_a_zip_that_fills_the_disk_is_one_line_of_error(tmp_path: Path) -> None:
    """The zip's close failed once and the partial file is deleted: it is not closed again
    at exit, which would print a traceback after the error. (A file size limit stands in for
    a full disk: the same error, EFBIG for ENOSPC.)"""
    values = np.random.default_rng(1).random((256, 256))
    # Uncompressed, so that the zip cannot come out small.
    a = oxzarr.create_array(
        tmp_path / "src.zarr", shape=(256, 256), chunks=(32, 32), dtype="f8", compressors=None
    )
    a[...] = values
    limited = ["sh", "-c", 'ulimit -f 64; exec "$0" -m oxzarr "$@"', sys.executable]
    run = subprocess.run(
        [*limited, "convert", tmp_path / "src.zarr", tmp_path / "out.zip"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 2 and "File too large" in run.stderr, run
    assert run.stderr.count("\n") == 1 and "Traceback" not in run.stderr, run.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src.zarr"]


def test_overwrite_on_an_overlay_filesystem(
    tmp_path: Path, source: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An overlay filesystem (a container image's lower layer) refuses to move the old
    destination aside (EXDEV): it is removed where it is, and the conversion takes its
    place."""
    import errno

    old = oxzarr.create_array(tmp_path / "dst.zarr", shape=(8,), dtype="i4")
    old[...] = 7
    rename = Path.rename

    def overlay_rename(self: Path, target: Any) -> Any:
        if self == tmp_path / "dst.zarr":
            raise OSError(errno.EXDEV, "Invalid cross-device link", str(self))
        return rename(self, target)

    monkeypatch.setattr(Path, "rename", overlay_rename)
    convert(source, tmp_path / "dst.zarr", overwrite=True)
    assert_same(oxzarr.open_array(tmp_path / "dst.zarr")[...], data())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dst.zarr", "src.zarr"]


@pytest.mark.parametrize(
    ("name", "made"),
    [("dst.zarr", "a directory"), ("dst.zarr", "an empty directory"), ("dst.zip", "a file")],
)
def test_a_destination_made_during_the_conversion_is_left_alone(
    tmp_path: Path, source: Path, name: str, made: str
) -> None:
    """Without overwrite, what appears at the destination while the conversion runs stays:
    the conversion ends as if it had been there from the start. Before, it was renamed aside
    and deleted when the conversion moved into place."""
    dst = tmp_path / name

    def make_the_destination(progress: Any) -> None:
        if made == "a file" and not dst.exists():
            dst.write_text("user data")
        elif not dst.exists():
            dst.mkdir()
            if made == "a directory":
                (dst / "precious.txt").write_text("user data")

    with pytest.raises(FileExistsError, match=re.escape(f"{dst} exists")):
        convert(source, dst, progress=make_the_destination)
    if made == "a file":
        assert dst.read_text() == "user data"
    else:
        kept = [p.name for p in dst.iterdir()]
        assert kept == (["precious.txt"] if made == "a directory" else [])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([name, "src.zarr"])


def _members(parent: Path) -> list[list[str]]:
    """The members of the group at `parent`, as zarr-python and oxzarr list them."""
    return [
        sorted(zarr.open_group(parent, mode="r").keys()),
        sorted(oxzarr.open_group(parent, mode="r").keys()),
    ]


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_a_conversion_into_a_group_is_no_member_until_done(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, zarr_format: int
) -> None:
    """The copy being written, and with overwrite the old one moved aside, are hidden from
    the group the destination is in. Before, both lay beside the destination as nodes of
    their own, which zarr-python and oxzarr listed as members of the group."""
    src = tmp_path / "src.zarr"
    oxzarr.create_array(src, shape=(40,), chunks=(4,), dtype="i4")[...] = np.arange(40)
    parent = tmp_path / "parent.zarr"
    zarr.open_group(parent, mode="w", zarr_format=zarr_format)
    seen: list[list[list[str]]] = []
    convert(
        src, parent / "a", zarr_format=zarr_format, progress=lambda p: seen.append(_members(parent))
    )
    assert seen and all(members == [[], []] for members in seen), seen
    # Replacing it: looked at around each rename, where the old one is moved aside.
    seen.clear()
    rename = Path.rename

    def watched_rename(self: Path, target: Any) -> Any:
        seen.append(_members(parent))
        renamed = rename(self, target)
        seen.append(_members(parent))
        return renamed

    monkeypatch.setattr(Path, "rename", watched_rename)
    convert(src, parent / "a", zarr_format=zarr_format, overwrite=True)
    assert seen and all(members in ([[], []], [["a"], ["a"]]) for members in seen), seen
    assert _members(parent) == [["a"], ["a"]]


KILLED = """
import os, signal, sys
from oxzarr.convert import convert

convert(sys.argv[1], sys.argv[2], zarr_format=int(sys.argv[3]),
        progress=lambda p: os.kill(os.getpid(), signal.SIGKILL))
"""


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_a_killed_conversion_leaves_no_member_in_the_group(
    tmp_path: Path, zarr_format: int
) -> None:
    """A conversion killed outright (SIGKILL: no cleanup runs) leaves its copy where no
    reader takes it for a member of the group. Before, the half-written array stayed a
    member for good, and converting the group copied it."""
    src = tmp_path / "src.zarr"
    oxzarr.create_array(src, shape=(40,), chunks=(4,), dtype="i4")[...] = np.arange(40)
    parent = tmp_path / "parent.zarr"
    zarr.open_group(parent, mode="w", zarr_format=zarr_format)
    run = subprocess.run(
        [sys.executable, "-c", KILLED, src, parent / "a", str(zarr_format)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == -signal.SIGKILL, run
    assert any("oxzarr-partial" in p.name for p in parent.iterdir())  # it was killed midway
    assert _members(parent) == [[], []]
    convert(parent, tmp_path / "copy.zarr")
    assert _members(tmp_path / "copy.zarr") == [[], []]


@pytest.mark.parametrize("name", ["é" * 120 + ".zarr", "é" * 125 + ".zip", "x" * 250 + ".zarr"])
def test_a_destination_name_of_up_to_255_bytes(tmp_path: Path, name: str) -> None:
    """Names are limited in bytes: the hidden name the conversion is staged under is cut to
    fit in UTF-8 bytes. Before, it was cut at 200 characters, and a name of two-byte
    characters that the filesystem takes failed as too long."""
    src = tmp_path / "src.zarr"
    oxzarr.create_array(src, shape=(4,), dtype="i4")[...] = [1, 2, 3, 4]
    assert len(name.encode()) <= 255
    convert(src, tmp_path / name)
    convert(src, tmp_path / name, overwrite=True)  # with the old one moved aside
    assert oxzarr.open_array(tmp_path / name)[...].tolist() == [1, 2, 3, 4]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([name, "src.zarr"])


@pytest.mark.parametrize(
    "filter_",
    [
        {"id": "delta", "dtype": ">i4"},
        {"id": "fixedscaleoffset", "dtype": ">i4", "astype": ">i2", "scale": 1, "offset": 0},
        {"id": "astype", "encode_dtype": ">i2", "decode_dtype": ">i4"},
    ],
)
def test_big_endian_v2_filters_convert_to_v3_zarr_python_reads(
    tmp_path: Path, filter_: dict[str, Any]
) -> None:
    """A v3 array's filters get its values in the native order: a big-endian v2 filter type
    becomes its little-endian twin, or zarr-python decodes the filter's output wrongly."""
    import numcodecs

    values = np.arange(-5, 15, dtype=">i4")
    source = zarr.create_array(
        tmp_path / "v2.zarr",
        shape=values.shape,
        dtype=">i4",
        chunks=(8,),
        zarr_format=2,
        filters=[numcodecs.get_codec(filter_)],
        compressors=None,
    )
    source[...] = values
    cli("convert", tmp_path / "v2.zarr", tmp_path / "v3.zarr", "--zarr-format", "3")
    assert_same(zarr.open_array(tmp_path / "v3.zarr", mode="r")[...], values.astype("<i4"))
    assert_same(oxzarr.open_array(tmp_path / "v3.zarr")[...], values.astype("<i4"))


def test_dtype_converts_numbers_and_other_types_keep_theirs(tmp_path: Path) -> None:
    # As --help says: a group with times, text or records among its arrays failed whole.
    root = oxzarr.open_group(tmp_path / "g.zarr", mode="w")
    stamps = np.array(["2020-01-01", "NaT"], dtype="M8[s]")
    records = np.array([(1,), (2,)], dtype=[("a", "i4")])
    root.create_array("n", shape=(2,), dtype="f8")[...] = [1.5, -2.5]
    root.create_array("t", shape=(2,), dtype="M8[s]")[...] = stamps
    root.create_array("s", shape=(2,), dtype=str)[...] = ["a", "bc"]
    root.create_array("r", shape=(2,), dtype=records.dtype)[...] = records
    cli("convert", tmp_path / "g.zarr", tmp_path / "o.zarr", "--dtype", "i2")
    out = oxzarr.open_group(tmp_path / "o.zarr", mode="r")
    assert out["n"].dtype == np.dtype("i2") and out["n"][...].tolist() == [1, -2]
    np.testing.assert_array_equal(out["t"][...], stamps)
    assert out["s"][...].tolist() == ["a", "bc"]
    assert out["r"][...].tolist() == records.tolist()
    # Values convert only into those types; complex into real is refused, naming the array.
    for dtype in ("U2", "M8[s]", "S3"):
        run = cli(
            "convert", tmp_path / "g.zarr", tmp_path / "x.zarr", "--dtype", dtype, check=False
        )
        assert run.returncode == 2 and "is not a bool, integer, float or complex" in run.stderr
        assert "internal error" not in run.stderr
    root.create_array("c", shape=(2,), dtype="c8")
    run = cli("convert", tmp_path / "g.zarr", tmp_path / "x.zarr", "--dtype", "f4", check=False)
    assert run.returncode == 2 and "g.zarr/c: complex values are not converted" in run.stderr


def test_narrowing_floats_rounds_the_fill_value_as_the_values(tmp_path: Path) -> None:
    # numpy rounds 0.1 into float32 as it rounds the values equal to it, so the fill still
    # marks them; only a fill overflowing to infinity is refused.
    a = oxzarr.create_array(tmp_path / "a", shape=(3,), chunks=(1,), dtype="f8", fill_value=0.1)
    a[...] = [0.1, 1.0, 0.1]
    cli("convert", tmp_path / "a", tmp_path / "b", "--dtype", "f4")
    b = oxzarr.open_array(tmp_path / "b", mode="r")
    assert b.fill_value == np.float32(0.1) and b.nchunks_initialized == 1
    assert b[...].tolist() == np.array([0.1, 1.0, 0.1], dtype="f4").tolist()
    oxzarr.create_array(tmp_path / "big", shape=(1,), dtype="f8", fill_value=1e39)
    run = cli("convert", tmp_path / "big", tmp_path / "c", "--dtype", "f4", check=False)
    assert run.returncode == 2 and "has no float32 form" in run.stderr


def test_a_sharded_source_keeps_its_index_location_and_blosc_its_element_size(
    tmp_path: Path,
) -> None:
    from oxzarr.codecs import BloscCodec

    a = oxzarr.create_array(
        tmp_path / "a",
        shape=(8, 8),
        chunks=(2, 2),
        shards={"shape": (4, 4), "index_location": "start"},
        dtype="i4",
        compressors=BloscCodec(cname="lz4", shuffle="shuffle"),
    )
    a[...] = np.arange(64).reshape(8, 8)
    cli("convert", tmp_path / "a", tmp_path / "b", "--chunks", "4,4", "--shards", "8,8")
    cli("convert", tmp_path / "a", tmp_path / "c", "--dtype", "i2")
    for name in ("b", "c"):
        document = json.loads((tmp_path / name / "zarr.json").read_text())
        sharding = document["codecs"][0]["configuration"]
        assert sharding["index_location"] == "start"
        np.testing.assert_array_equal(
            zarr.open_array(tmp_path / name, mode="r")[...], np.arange(64).reshape(8, 8)
        )
    blosc = json.loads((tmp_path / "c" / "zarr.json").read_text())["codecs"][0]
    assert blosc["configuration"]["codecs"][-1]["configuration"]["typesize"] == 2


def test_a_fill_value_an_array_of_a_group_refuses_names_it(tmp_path: Path) -> None:
    """Refused when the array was created, midway through writing, the error did not say
    which array it was: each array is now made in memory first."""
    group = oxzarr.open_group(tmp_path / "g.zarr", mode="w")
    group.create_array("a", shape=(3,), dtype="f4")[...] = 1.5
    group.create_array("b", shape=(3,), dtype="u1")
    for fill, problem in [("300", "300"), ("-1", "-1"), ("1.5", "1.5")]:
        run = cli("convert", "g.zarr", "out.zarr", "--fill-value", fill, check=False, cwd=tmp_path)
        assert run.returncode == 2 and run.stderr.count("\n") == 1, run.stderr
        assert run.stderr.startswith("oxzarr: error: g.zarr/b: "), run.stderr
        assert problem in run.stderr and "uint8" in run.stderr, run.stderr
        assert not (tmp_path / "out.zarr").exists()


LOST_INTERRUPT = """
import signal, time, weakref
from oxzarr import cli
cli._interrupt_once()
class Handle: pass
def dropped(ref):
    signal.raise_signal(signal.SIGINT)
    time.sleep(0)  # the handler runs here, in a callback that swallows what it raises
handle = Handle()
ref = weakref.ref(handle, dropped)
try:
    del handle
    for _ in range(2500):  # 5 s at most: the interrupt comes back within 10 ms
        time.sleep(0.002)
    print("lost")
except KeyboardInterrupt:
    print("interrupted")
"""


def test_an_interrupt_python_swallows_is_raised_again() -> None:
    """A Ctrl-C landing in the callback of a weak reference to a dropped handle (every
    Array keeps one) was printed as "Exception ignored" and lost, and the presses after it
    ignored: convert and verify ran to the end and exited 0."""
    run = subprocess.run(
        [sys.executable, "-c", LOST_INTERRUPT],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (run.stdout, run.stderr) == ("interrupted\n", ""), run


def test_a_panic_of_the_engine_is_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """pyo3's PanicException is no Exception: it escaped with a traceback and status 1,
    which verify uses to say "differ". (Named so, it stands in for pyo3's own class, which
    pyo3 makes at the first panic.)"""
    from oxzarr import cli as module

    class PanicException(BaseException):
        pass

    def panics(*args: Any, **kwargs: Any) -> None:
        raise PanicException("index out of bounds")

    monkeypatch.setattr(module, "open", panics)
    with pytest.raises(SystemExit) as ended:
        module.main(["info", "anything.zarr"])
    assert ended.value.code == 2
    err = capsys.readouterr().err
    assert err == (
        "oxzarr: error: internal error (the engine panicked: index out of bounds); "
        "OXZARR_TRACEBACK=1 shows where\n"
    )


NUMPY_API_INTERRUPTED = """
import sys
import zipfile
import numpy as np
import numpy.lib._version as version
import oxzarr

def interrupted(self, text):
    raise KeyboardInterrupt  # a Ctrl-C landing in numpy's version check

version.NumpyVersion.__init__ = interrupted
a = oxzarr.create_array(sys.argv[1], shape=(3,), dtype="f8")
a[...] = 1.5
print(a[...].tolist())
"""


def test_numpys_api_is_fetched_at_import(tmp_path: Path) -> None:
    """The engine fetched NumPy's C API at its first read, running numpy's version check: a
    Ctrl-C landing there made rust-numpy panic (a traceback, and verify's status 1)."""
    run = subprocess.run(
        [sys.executable, "-c", NUMPY_API_INTERRUPTED, str(tmp_path / "a.zarr")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert (run.returncode, run.stdout, run.stderr) == (0, "[1.5, 1.5, 1.5]\n", ""), run


def test_tree_and_info_list_a_member_oxzarr_cannot_open(tmp_path: Path) -> None:
    """One member with a codec oxzarr does not know made `tree` and `info` of the whole
    group fail; it is listed with its error, the others as usual."""
    path = tmp_path / "g.zarr"
    root = oxzarr.create_group(path)
    root.create_array("bad", shape=(2,), dtype="i1")
    root.create_array("ok", shape=(3,), dtype="i2")
    doc = json.loads((path / "bad" / "zarr.json").read_text())
    doc["codecs"].append({"name": "no_such_codec"})
    (path / "bad" / "zarr.json").write_text(json.dumps(doc))
    tree = cli("tree", path).stdout
    # (The error names the document and its store.)
    unknown = r"\(cannot be opened: bad/zarr\.json in file://\S+g\.zarr: unsupported codec"
    assert re.search("├── bad " + unknown, tree)
    assert "└── ok (3,) int16" in tree
    info = cli("info", path).stdout
    assert re.search("  bad  " + unknown, info)
    assert "  ok  (array) (3,) int16" in info


def test_a_destination_under_the_home_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A destination starting with '~' is in the home directory, as the source is (it was
    written to a directory named '~' below the working one)."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    oxzarr.create_array("~/src.zarr", shape=(4,), dtype="i4")[...] = [1, 2, 3, 4]
    for destination in ("~/out.zarr", Path("~/path.zarr")):
        convert("~/src.zarr", destination)
    assert oxzarr.open_array(home / "out.zarr")[...].tolist() == [1, 2, 3, 4]
    assert oxzarr.open_array(home / "path.zarr")[...].tolist() == [1, 2, 3, 4]
    assert not (tmp_path / "~").exists()


def test_a_subgroups_stale_consolidated_metadata_hides_nothing(tmp_path: Path) -> None:
    """A subgroup consolidated on its own before an array was added to it: its member lists
    come from its document (as zarr-python's), but convert and verify read the store, as
    they read a stale root's (the subgroup opened through its document hid the array)."""
    src = tmp_path / "src.zarr"
    sub = oxzarr.create_group(src).create_group("s")
    sub.create_array("a", shape=(2,), dtype="i1")[...] = 1
    oxzarr.consolidate_metadata(src, path="s")
    sub.create_array("late", shape=(2,), dtype="i1")[...] = 2
    root = oxzarr.open_group(src, mode="r")
    assert [n for n, _ in root.members(max_depth=None)] == ["s", "s/a"]
    listed = root.members(max_depth=None, use_consolidated_for_children=False)
    assert [n for n, _ in listed] == ["s", "s/a", "s/late"]
    dst = tmp_path / "dst.zarr"
    cli("convert", src, dst)
    assert oxzarr.open_array(dst / "s" / "late")[...].tolist() == [2, 2]
    assert cli("verify", src, dst).returncode == 0
    oxzarr.open_array(src / "s" / "late")[0] = 5
    assert cli("verify", src, dst, check=False).returncode != 0


def test_a_failed_conversion_to_a_zip_keeps_no_deleted_file_open(tmp_path: Path) -> None:
    """A conversion into a zip that failed (here a damaged source chunk) kept the deleted
    partial zip open, its descriptor and its disk space, until Python's cyclic garbage
    collector ran: the worker's exception, kept in a list of the conversion's frame, made a
    reference cycle through its traceback that kept the zip's store alive; and the store was
    only closed, which keeps the file open for reads as long as the store is about."""
    import gc

    from oxzarr.errors import CorruptChunkError
    from oxzarr.storage import ZipStore

    src = tmp_path / "src.zarr"
    a = oxzarr.create_array(src, shape=(8, 4096), chunks=(1, 4096), dtype="f8", compressors=None)
    a[...] = 1.5
    (src / "c" / "7" / "0").write_bytes(b"junk")

    def deleted_files_open() -> list[str]:
        # Of this test's files (pytest holds deleted temporary files of its own).
        held = []
        for fd in os.listdir("/proc/self/fd"):
            try:
                target = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:
                continue
            if target.startswith(str(tmp_path)) and target.endswith("(deleted)"):
                held.append(target)
        return held

    def zip_stores() -> int:
        return sum(isinstance(o, ZipStore) for o in gc.get_objects())

    gc.collect()
    stores = zip_stores()
    gc.disable()
    try:
        with pytest.raises(CorruptChunkError, match="c/7/0") as failed:
            convert(src, tmp_path / "out.zip")
        # The failure, kept (as a log or an interactive session keeps it), holds the
        # conversion's frames and the store in them, but not the deleted zip's file.
        assert deleted_files_open() == []
        # Let go of, it takes the store along at once: no cycle is left for the collector.
        del failed
        assert zip_stores() == stores
    finally:
        gc.enable()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src.zarr"]
