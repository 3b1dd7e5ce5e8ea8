"""The public API: creation defaults, open modes, groups, attributes, pickling, config."""

from __future__ import annotations

import base64
import copy
import itertools
import json
import os
import pickle
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import zarr

import oxzarr
from oxzarr.codecs import BloscCodec, BytesCodec, Crc32cCodec, GzipCodec, ZstdCodec
from oxzarr.errors import (
    ArrayNotFoundError,
    ContainsArrayError,
    ContainsGroupError,
    CorruptChunkError,
    GroupNotFoundError,
    MetadataValidationError,
    NodeNotFoundError,
    ReadOnlyError,
)
from oxzarr.storage import CountingStore, LocalStore, ZipStore
from tests.conftest import assert_same, sample
from tests.test_hierarchy import _spoil


def doc(path: Path) -> dict:
    return json.loads((path / "zarr.json").read_text())


def test_create_array_defaults_match_zarr_python(tmp_path: Path) -> None:
    a = oxzarr.create_array(tmp_path / "a.zarr", shape=(100, 50), dtype="f4", chunks=(10, 10))
    meta = doc(tmp_path / "a.zarr")
    assert meta["codecs"] == [
        {"name": "bytes", "configuration": {"endian": "little"}},
        {"name": "zstd", "configuration": {"level": 0, "checksum": False}},
    ]
    assert meta["fill_value"] == 0.0
    assert meta["chunk_key_encoding"] == {"name": "default", "configuration": {"separator": "/"}}
    assert meta["zarr_format"] == 3 and meta["node_type"] == "array"
    assert a.fill_value == 0 and a.fill_value.dtype == np.float32
    assert a.compressors == (ZstdCodec(level=0, checksum=False),)
    assert a.serializer == BytesCodec(endian="little")
    assert a.filters == ()
    one_byte = oxzarr.create_array(tmp_path / "b.zarr", shape=(4,), dtype="u1", compressors=None)
    assert doc(tmp_path / "b.zarr")["codecs"] == [{"name": "bytes"}]
    assert one_byte.compressors == ()


def test_codecs_as_objects_dicts_and_zarr_codecs(tmp_path: Path) -> None:
    import zarr.codecs

    forms = [
        [ZstdCodec(level=3, checksum=True)],
        [{"name": "zstd", "configuration": {"level": 3, "checksum": True}}],
        [zarr.codecs.ZstdCodec(level=3, checksum=True)],
        ZstdCodec(level=3, checksum=True),
    ]
    for i, compressors in enumerate(forms):
        oxzarr.create_array(tmp_path / f"{i}.zarr", shape=(4,), dtype="i4", compressors=compressors)
        assert doc(tmp_path / f"{i}.zarr")["codecs"][1] == {
            "name": "zstd",
            "configuration": {"level": 3, "checksum": True},
        }
    # Blosc fills in the type size and picks a shuffle as zarr-python does.
    oxzarr.create_array(tmp_path / "b.zarr", shape=(4,), dtype="i4", compressors=BloscCodec())
    assert doc(tmp_path / "b.zarr")["codecs"][1]["configuration"] == {
        "typesize": 4,
        "cname": "zstd",
        "clevel": 5,
        "shuffle": "shuffle",
        "blocksize": 0,
    }
    oxzarr.create_array(
        tmp_path / "z.zarr", shape=(4,), dtype="u1", compressors=zarr.codecs.BloscCodec()
    )
    assert doc(tmp_path / "z.zarr")["codecs"][1]["configuration"]["shuffle"] == "bitshuffle"
    with pytest.raises(ValueError, match="snappy"):
        oxzarr.create_array(
            tmp_path / "s.zarr", shape=(4,), dtype="u1", compressors=BloscCodec(cname="snappy")
        )
    with pytest.raises(ValueError, match="nosuch"):
        oxzarr.create_array(tmp_path / "n.zarr", shape=(4,), dtype="u1", compressors="nosuch")


def test_auto_chunks(tmp_path: Path) -> None:
    a = oxzarr.create_array(tmp_path / "a.zarr", shape=(1000, 1000, 100), dtype="f8")
    chunk_bytes = np.prod(a.chunks) * 8
    assert 128 * 1024 <= chunk_bytes <= 64 * 2**20
    assert all(c <= s for c, s in zip(a.chunks, a.shape, strict=True))
    small = oxzarr.create_array(tmp_path / "s.zarr", shape=(10, 3), dtype="i1")
    assert small.chunks == (10, 3)
    assert oxzarr.create_array(tmp_path / "z.zarr", shape=(0,), dtype="i1").chunks == (1,)
    assert oxzarr.create_array(tmp_path / "i.zarr", shape=(9, 9), dtype="i1", chunks=4).chunks == (
        4,
        4,
    )
    with pytest.raises(ValueError, match="chunks"):
        oxzarr.create_array(tmp_path / "bad.zarr", shape=(9, 9), dtype="i1", chunks=(4,))


@pytest.mark.parametrize(
    ("dtype", "fill", "json_value"),
    [
        ("f4", np.nan, "NaN"),
        ("f8", np.inf, "Infinity"),
        ("f2", -np.inf, "-Infinity"),
        ("f8", 1.5, 1.5),
        ("c8", complex(1, np.nan), [1.0, "NaN"]),
        ("i8", -(2**63), -(2**63)),
        ("u8", 2**64 - 1, 2**64 - 1),
        ("bool", True, True),
        # Floats as the data type holds them, as zarr-python stores them: 1e40 was stored
        # as it was given, a number out of a float32's range.
        ("f4", 1e40, "Infinity"),
        ("c8", complex(-1e40, 0.1), ["-Infinity", 0.10000000149011612]),
        ("f4", 0.1, 0.10000000149011612),
        ("f8", -0.0, -0.0),
    ],
)
def test_fill_values(tmp_path: Path, dtype: str, fill: object, json_value: object) -> None:
    a = oxzarr.create_array(
        tmp_path / "a.zarr", shape=(5,), dtype=dtype, chunks=(2,), fill_value=fill
    )
    assert doc(tmp_path / "a.zarr")["fill_value"] == json_value
    with np.errstate(over="ignore"):  # zarr-python casts 1e40 with numpy's warning
        zarr.create_array(
            tmp_path / "z.zarr", shape=(5,), dtype=dtype, chunks=(2,), fill_value=fill
        )
        expected = np.full(5, fill, dtype=dtype)
    assert repr(doc(tmp_path / "z.zarr")["fill_value"]) == repr(json_value)
    assert_same(a[...], expected)
    assert_same(oxzarr.open_array(tmp_path / "a.zarr")[...], expected)
    with pytest.raises(ValueError, match="fill_value"):
        oxzarr.create_array(tmp_path / "b.zarr", shape=(5,), dtype="u1", fill_value=300)


@pytest.mark.parametrize("text", ["1e400", "-1e400"])
def test_fill_values_beyond_a_double_read_as_infinity(tmp_path: Path, text: str) -> None:
    # As Python's json reads them (and so zarr-python); the engine read them as NaN.
    oxzarr.create_array(tmp_path / "a.zarr", shape=(2,), dtype="f8", fill_value=1.5)
    document = tmp_path / "a.zarr" / "zarr.json"
    document.write_text(document.read_text().replace('"fill_value": 1.5', f'"fill_value": {text}'))
    expected = float(text)
    assert oxzarr.open_array(tmp_path / "a.zarr", mode="r")[...].tolist() == [expected] * 2
    assert zarr.open_array(tmp_path / "a.zarr", mode="r")[...].tolist() == [expected] * 2


def test_unsupported_dtype_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unsupported data type"):
        oxzarr.create_array(tmp_path / "a.zarr", shape=(5,), dtype="f16")
    # Not a data type at all: numpy's (and zarr-python's) TypeError, and nothing written.
    with pytest.raises(TypeError, match="not understood"):
        oxzarr.create_array(tmp_path / "b.zarr", shape=(5,), dtype="foo")
    assert not (tmp_path / "b.zarr").exists()


def test_open_modes(tmp_path: Path) -> None:
    p = tmp_path / "a.zarr"
    with pytest.raises(FileNotFoundError):
        oxzarr.open_array(p, mode="r")
    with pytest.raises(ArrayNotFoundError):
        oxzarr.open_array(p, mode="r+")
    with pytest.raises(ArrayNotFoundError):
        oxzarr.open_array(p, mode="a")
    a = oxzarr.open_array(p, mode="a", shape=(4,), dtype="i2", chunks=(2,))
    a[:] = [1, 2, 3, 4]
    assert oxzarr.open_array(p, mode="a")[...].tolist() == [1, 2, 3, 4]
    with pytest.raises(FileExistsError):
        oxzarr.open_array(p, mode="w-", shape=(4,), dtype="i2")
    w = oxzarr.open_array(p, mode="w", shape=(3,), dtype="u1")
    assert w.shape == (3,) and w[...].tolist() == [0, 0, 0]
    r = oxzarr.open_array(p, mode="r")
    assert r.read_only
    with pytest.raises(ReadOnlyError):
        r[0] = 1
    with pytest.raises(ReadOnlyError):
        r.attrs["x"] = 1
    with pytest.raises(ValueError, match="mode"):
        oxzarr.open_array(p, mode="q")  # type: ignore[arg-type]
    # A read-only store with a mode that may write is refused, as zarr-python refuses it;
    # with no mode given it is read, as zarr-python's open() reads it.
    read_only = oxzarr.storage.LocalStore(p, read_only=True)
    for mode in ("r+", "a", "w", "w-"):
        with pytest.raises(ValueError, match=re.escape(f"read-only but mode is '{mode}'")):
            oxzarr.open_array(read_only, mode=mode, shape=(3,), dtype="u1")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match=re.escape(f"read-only but mode is '{mode}'")):
            oxzarr.open_group(read_only, mode=mode)  # type: ignore[arg-type]
    assert oxzarr.open_array(read_only, mode="r").read_only
    with pytest.raises(ValueError, match=re.escape("read-only but mode is 'a'")):
        oxzarr.open(read_only, mode="a")
    with pytest.raises(ValueError, match=re.escape("read-only but mode is 'a'")):
        oxzarr.open_consolidated(read_only, mode="a")
    with pytest.raises(ValueError, match=re.escape("read-only but mode is 'a'")):
        oxzarr.group(read_only)
    assert oxzarr.open_array(read_only).read_only and oxzarr.open(read_only).read_only
    assert oxzarr.open_array(read_only)[...].tolist() == [0, 0, 0]
    assert oxzarr.open_array(p, mode="r")[...].tolist() == [0, 0, 0]


def test_open_array_without_a_mode_opens_an_existing_array_and_never_creates(
    tmp_path: Path,
) -> None:
    # With no mode, open_array took mode "a" and made a missing array from shape= and
    # dtype=; zarr-python 3.1.6's raises ArrayNotFoundError there (it creates only in modes
    # "a", "w" and "w-") and opens an existing array for writing.
    for lib in (zarr, oxzarr):
        missing = tmp_path / lib.__name__ / "missing"
        with pytest.raises(lib.errors.ArrayNotFoundError):
            lib.open_array(missing, shape=(3,), dtype="i4")
        assert not (missing / "zarr.json").exists()
        lib.create_array(tmp_path / lib.__name__ / "a", shape=(3,), dtype="i4")
        a = lib.open_array(tmp_path / lib.__name__ / "a", shape=(9,), dtype="i4")
        assert (a.shape, a.read_only) == ((3,), False)
        a[...] = 5
        assert lib.open_array(tmp_path / lib.__name__ / "a", mode="r")[...].tolist() == [5] * 3
    # open_like creates, as zarr-python 2's did (zarr-python 3.1.6's, handing no mode on,
    # cannot create, so without a store it always fails).
    like = oxzarr.open_like(np.zeros((2, 2), "i1"), "like", store=tmp_path / "s")
    assert (like.shape, like.dtype) == ((2, 2), np.dtype("i1"))


def test_open_picks_array_or_group(tmp_path: Path) -> None:
    assert isinstance(oxzarr.open(tmp_path / "g.zarr"), oxzarr.Group)
    assert isinstance(oxzarr.open(tmp_path / "a.zarr", shape=(2,), dtype="i1"), oxzarr.Array)
    assert isinstance(oxzarr.open(tmp_path / "a.zarr", mode="r"), oxzarr.Array)
    assert isinstance(oxzarr.open(tmp_path / "g.zarr", mode="r"), oxzarr.Group)
    with pytest.raises(FileNotFoundError):
        oxzarr.open(tmp_path / "none.zarr", mode="r")


def test_groups_and_nested_paths(tmp_path: Path) -> None:
    root = oxzarr.create_group(tmp_path / "g.zarr", attributes={"title": "t"})
    arr = root.create_array("a/b/c", shape=(3,), dtype="i4", chunks=(2,))
    arr[:] = [7, 8, 9]
    sub = root.create_group("x")
    assert root.attrs["title"] == "t"
    assert sorted(root.keys()) == ["a", "x"]
    assert isinstance(root["a"], oxzarr.Group) and isinstance(root["a/b/c"], oxzarr.Array)
    assert root["a"]["b/c"][...].tolist() == [7, 8, 9]
    assert "a/b/c" in root and "nope" not in root and len(root) == 2
    assert [n for n, _ in root.groups()] == ["a", "x"]
    assert [n for n, _ in root["a/b"].arrays()] == ["c"]
    assert arr.path == "a/b/c" and arr.name == "/a/b/c" and arr.basename == "c"
    with pytest.raises(KeyError):
        root["nope"]
    with pytest.raises(ContainsGroupError):
        root.create_group("x")
    assert root.require_group("x").path == sub.path
    assert root.require_group("y").path == "y"
    assert root.require_array("a/b/c", shape=(3,)).shape == (3,)
    with pytest.raises(TypeError):
        root.require_array("a/b/c", shape=(4,))
    with pytest.raises(ContainsArrayError):
        root.create_array("a/b/c/d", shape=(1,), dtype="i1")
    opened = oxzarr.open_group(tmp_path / "g.zarr", mode="r")
    assert opened.attrs.asdict() == {"title": "t"}
    with pytest.raises(GroupNotFoundError):
        oxzarr.open_group(tmp_path / "none.zarr", mode="r")
    with pytest.raises(ContainsArrayError):
        oxzarr.open_group(tmp_path / "g.zarr", path="a/b/c", mode="r")
    # zarr-python sees the same hierarchy.
    import zarr

    zg = zarr.open_group(tmp_path / "g.zarr", mode="r")
    assert zg["a/b/c"][...].tolist() == [7, 8, 9]
    assert sorted(zg.group_keys()) == ["a", "x", "y"]


def test_attributes_persist(tmp_path: Path) -> None:
    a = oxzarr.create_array(tmp_path / "a.zarr", shape=(2,), dtype="i1", attributes={"a": 1})
    a.attrs["b"] = [1, {"c": None}]
    a.attrs.update({"d": "x", "e": 2.5})
    del a.attrs["a"]
    expected = {"b": [1, {"c": None}], "d": "x", "e": 2.5}
    assert doc(tmp_path / "a.zarr")["attributes"] == expected
    assert oxzarr.open_array(tmp_path / "a.zarr").attrs.asdict() == expected
    a.attrs.put({"only": True})
    assert dict(oxzarr.open_array(tmp_path / "a.zarr").attrs) == {"only": True}
    assert a.update_attributes({"z": 0}).attrs["z"] == 0
    g = oxzarr.create_group(tmp_path / "g.zarr")
    g.attrs["k"] = "v"
    assert oxzarr.open_group(tmp_path / "g.zarr").attrs["k"] == "v"


def test_reading_all_attributes_copies_them_once_at_most(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every key read, the length and the iteration each copied the whole mapping, so
    # reading all of n attributes cost n copies of n keys (16,000 keys: 1.4 s).
    from oxzarr.array import Attributes

    stored = {f"k{i}": [i] for i in range(200)}
    a = oxzarr.create_array(tmp_path / "a.zarr", shape=(2,), dtype="i1", attributes=stored)
    g = oxzarr.create_group(tmp_path / "g.zarr", attributes=stored)
    copies = 0
    copy_all = Attributes._current

    def counting(self: Attributes) -> dict:
        nonlocal copies
        copies += 1
        return copy_all(self)

    monkeypatch.setattr(Attributes, "_current", counting)
    for node in (a, g):
        assert dict(node.attrs) == stored
        assert dict(node.attrs.items()) == stored
        assert list(node.attrs.values()) == list(stored.values())
        assert list(node.attrs) == list(stored) and len(node.attrs) == 200
        assert "k7" in node.attrs and "k200" not in node.attrs
        assert node.attrs.get("k3") == [3] and node.attrs.get("nope") is None
    assert copies == 0
    # What reads hand out is as before: asdict() is a copy of its own, and a key deleted
    # while iterating leaves the iteration going over the keys it started with.
    a.attrs.asdict()["k0"] = "changed"
    assert a.attrs["k0"] == [0]
    for key in a.attrs:
        if key != "k1":
            del a.attrs[key]
    assert dict(a.attrs) == {"k1": [1]} == doc(tmp_path / "a.zarr")["attributes"]


def test_dimension_names_and_metadata(tmp_path: Path) -> None:
    a = oxzarr.create_array(
        tmp_path / "a.zarr", shape=(2, 3), dtype="u2", dimension_names=["y", None]
    )
    assert doc(tmp_path / "a.zarr")["dimension_names"] == ["y", None]
    assert a.metadata.dimension_names == ("y", None)
    assert a.metadata.to_dict()["shape"] == [2, 3]
    assert a.metadata.data_type == "uint16"
    with pytest.raises(ValueError, match="dimension_names"):
        oxzarr.create_array(tmp_path / "b.zarr", shape=(2, 3), dtype="u2", dimension_names=["y"])


def test_properties(tmp_path: Path) -> None:
    a = oxzarr.create_array(tmp_path / "a.zarr", shape=(10, 7), dtype="c16", chunks=(4, 3))
    assert (a.ndim, a.size, a.nbytes, a.nchunks) == (2, 70, 70 * 16, 9)
    assert a.cdata_shape == (3, 3)
    assert a.dtype == np.complex128 and len(a) == 10
    assert a.shards is None and a.order == "C"
    assert "Chunk shape" in a.info and "(4, 3)" in a.info
    assert repr(a).startswith("<Array file://") and "shape=(10, 7)" in repr(a)
    data = sample((10, 7), "c16")
    a[...] = data
    assert_same(np.asarray(a), data)
    assert_same(np.stack(list(a)), data)


def test_chunk_key_encodings(tmp_path: Path) -> None:
    for enc, key in [
        ({"name": "default", "separator": "."}, "c.1.0"),
        ({"name": "v2", "configuration": {"separator": "/"}}, "1/0"),
        ({"name": "v2"}, "1.0"),
        (None, "c/1/0"),
    ]:
        p = tmp_path / f"{key.replace('/', '_')}.zarr"
        a = oxzarr.create_array(p, shape=(4, 2), dtype="i1", chunks=(2, 2), chunk_key_encoding=enc)
        a[...] = 1
        assert (p / key).is_file()
        import zarr

        assert zarr.open_array(p, mode="r")[...].tolist() == [[1, 1]] * 4
    # The (name, separator) pair zarr-python's create() takes.
    a = oxzarr.create(
        shape=(4, 4),
        chunks=(2, 2),
        dtype="i4",
        store=tmp_path / "t",
        chunk_key_encoding=("v2", "."),
    )
    a[...] = 1
    assert sorted(p.name for p in (tmp_path / "t").iterdir()) == [
        "0.0",
        "0.1",
        "1.0",
        "1.1",
        "zarr.json",
    ]


def test_zero_dimensional_and_zero_length(tmp_path: Path) -> None:
    s = oxzarr.create_array(tmp_path / "s.zarr", shape=(), dtype="f8", fill_value=2.5)
    assert s[...].shape == () and s[...] == 2.5
    s[...] = 4.0
    assert (tmp_path / "s.zarr" / "c").is_file()
    assert oxzarr.open_array(tmp_path / "s.zarr")[()] == 4.0
    with pytest.raises(TypeError):
        len(s)
    assert s  # as zarr-python's: every array is true, 0-d and empty ones too
    # numpy's conversions want an array where `s[...]` gives a scalar.
    assert_same(np.asarray(s), np.array(4.0))
    assert_same(np.array(s, dtype="f4"), np.array(4.0, dtype="f4"))
    e = oxzarr.create_array(tmp_path / "e.zarr", shape=(0, 4), dtype="i4", chunks=(2, 2))
    assert e[...].shape == (0, 4) and e.nchunks == 0
    e[...] = np.zeros((0, 4), "i4")
    assert e[:, 1:3].shape == (0, 2)
    assert e and len(e) == 0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"shape": (10.7, 10)},
        {"shape": (10, 10), "chunks": (5.5, 5)},
        {"shape": (10, 10), "chunks": (5, 5), "shards": (10.0, 10)},
        {"shape": "ten"},
    ],
)
def test_shapes_of_floats_are_refused_not_truncated(
    tmp_path: Path, kwargs: dict[str, object]
) -> None:
    # numpy's and zarr-python's TypeError; int() would have made 10.7 into 10.
    with pytest.raises(TypeError, match="integers"):
        oxzarr.create_array(tmp_path / "a.zarr", dtype="i4", **kwargs)
    assert not (tmp_path / "a.zarr").exists()


def test_resize_refuses_floats(tmp_path: Path) -> None:
    a = oxzarr.create_array(tmp_path / "a.zarr", shape=(10, 10), dtype="i4", chunks=(5, 5))
    with pytest.raises(TypeError, match="integers"):
        a.resize((5.9, 7.2))
    assert a.shape == (10, 10)
    a.resize(np.int64(3), np.int32(4))
    assert a.shape == (3, 4)


@pytest.mark.parametrize(
    ("dtype", "hex_fill"),
    [("f4", "0x1234"), ("f4", "0x3fc00000"), ("f8", "0x3fc00000"), ("f2", "0x3ff8000000000000")],
)
def test_hex_fill_values_read_as_zarr_python_reads_them(
    tmp_path: Path, dtype: str, hex_fill: str
) -> None:
    p = tmp_path / "a.zarr"
    zarr.create_array(p, shape=(2,), dtype=dtype, fill_value=0)
    doc = json.loads((p / "zarr.json").read_text())
    doc["fill_value"] = hex_fill
    (p / "zarr.json").write_text(json.dumps(doc))
    expected = zarr.open_array(p, mode="r")[...]
    assert_same(oxzarr.open_array(p, mode="r")[...], expected)


def test_append_only_along_an_axis_the_array_has(tmp_path: Path) -> None:
    a = oxzarr.create_array(tmp_path / "a.zarr", shape=(2, 3), dtype="i4", chunks=(2, 2))
    a[...] = np.arange(6).reshape(2, 3)
    for axis in (2, -3, 5):
        # numpy's AxisError, as np.concatenate's: both an IndexError and a ValueError.
        with pytest.raises(np.exceptions.AxisError):
            a.append(np.full((2, 3), 9), axis=axis)
    assert a.shape == (2, 3) and a[...].tolist() == [[0, 1, 2], [3, 4, 5]]
    assert a.append(np.full((2, 1), 9), axis=-1) == (2, 4)
    assert a[:, 3].tolist() == [9, 9]
    s = oxzarr.create_array(tmp_path / "s.zarr", shape=(), dtype="i4")
    with pytest.raises(np.exceptions.AxisError):
        s.append(np.array(1))


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_opening_a_group_reads_its_documents_once(tmp_path: Path, zarr_format: int) -> None:
    # open_group tried the group's consolidated metadata first and, finding none, opened
    # the group again: every document was read and parsed twice.
    p = tmp_path / "g.zarr"
    g = oxzarr.open_group(p, mode="w", zarr_format=zarr_format, attributes={"k": "v" * 1000})
    g.create_array("a", shape=(3,), dtype="i4")
    names = ["zarr.json"] if zarr_format == 3 else [".zgroup", ".zattrs"]
    for consolidated in (False, True):
        if consolidated:
            oxzarr.consolidate_metadata(p)
            names += [] if zarr_format == 3 else [".zmetadata"]
        documents = sum((p / name).stat().st_size for name in names)
        for mode, opener in itertools.product(("r", "r+", "a"), (oxzarr.open_group, oxzarr.open)):
            # oxzarr.open read the document to learn the node's kind, then open_group read it
            # again.
            store = CountingStore(LocalStore(p))
            opened = opener(store, mode=mode)
            assert isinstance(opened, oxzarr.Group)
            assert store.bytes_read == documents, (consolidated, mode, opener)
            assert opened.metadata.consolidated_metadata is not None or not consolidated
            assert opened.attrs["k"] == "v" * 1000 and list(opened) == ["a"]
    # Declined, consolidated metadata is neither read nor used.
    store = CountingStore(LocalStore(p))
    declined = oxzarr.open(store, mode="r", use_consolidated=False)
    assert isinstance(declined, oxzarr.Group)
    assert declined.metadata.consolidated_metadata is None
    assert store.bytes_read == sum((p / name).stat().st_size for name in names[:2])
    assert list(declined) == ["a"]


def test_a_growing_resize_lists_no_chunks(tmp_path: Path) -> None:
    # Every resize listed every stored chunk, to delete those outside the new shape: a loop
    # of appends was quadratic (42x zarr-python's time per append at 40,000 chunks), one
    # listing each on S3. As in zarr-python, only a shrink looks for chunks to delete.
    from oxzarr.storage import CountingStore, LocalStore

    store = CountingStore(LocalStore(tmp_path / "counted.zarr"))
    a = oxzarr.create_array(store, shape=(0, 4), chunks=(2, 4), dtype="i4")
    store.reset()
    for i in range(5):
        a.append(np.full((2, 4), i))
    a.resize((12, 8))
    assert store.listings == 0
    a.resize((4, 8))
    assert store.listings == 1
    assert a[...].tolist() == [[0] * 4 + [0] * 4, [0] * 4 + [0] * 4, *[[1] * 4 + [0] * 4] * 2]
    root = tmp_path / "counted.zarr"
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()) == [
        "c/1/0",
        "zarr.json",
    ]
    # A chunk stored beyond the shape by a stale handle stays through a growth, as in
    # zarr-python.
    for lib in (zarr, oxzarr):
        p = tmp_path / f"{lib.__name__}.zarr"
        a = lib.create_array(p, shape=(4, 4), chunks=(2, 2), dtype="i4", fill_value=0)
        a[...] = 1
        b = lib.open_array(p)
        b.resize((8, 4))
        b[6:, :] = 2  # chunks beyond the (4, 4) of the older handle a
        a.resize((6, 6))  # a growth for a
        assert sorted(os.listdir(p / "c")) == ["0", "1", "3"], lib
        assert a.append(np.full((2, 6), 3)) == (8, 6)
        assert a[6:, :].tolist() == [[3] * 6] * 2


def test_empty_chunks_are_not_written(tmp_path: Path) -> None:
    p = tmp_path / "a.zarr"
    a = oxzarr.create_array(p, shape=(8,), dtype="i4", chunks=(2,), fill_value=5)
    a[...] = 5
    assert not (p / "c").exists()
    a[3] = 1
    assert sorted(f.name for f in (p / "c").iterdir()) == ["1"]
    a[3] = 5
    assert not any((p / "c").iterdir())
    # As zarr-python's, an array keeps the setting configured when it was opened.
    with oxzarr.config.set({"write_empty_chunks": True}):
        a[...] = 5
        assert not any((p / "c").iterdir())
        oxzarr.open_array(p)[...] = 5
    assert len(list((p / "c").iterdir())) == 4
    assert a.config.write_empty_chunks is False
    b = oxzarr.create_array(
        tmp_path / "b.zarr",
        shape=(4,),
        dtype="i4",
        chunks=(2,),
        config={"write_empty_chunks": True},
    )
    b[...] = 0
    assert len(list((tmp_path / "b.zarr" / "c").iterdir())) == 2


@pytest.mark.parametrize("dtype", ["f2", "f4", "f8", "c8", "c16"])
@pytest.mark.parametrize("shards", [None, (4,)])
def test_chunks_of_nans_with_a_nan_fill_are_not_written(
    tmp_path: Path, dtype: str, shards: tuple[int, ...] | None
) -> None:
    """Any NaN is a NaN fill value's, as zarr-python compares them (numpy's equal_nan, a
    complex number with either part NaN): chunks of NaNs with the sign bit set (x86's NaN,
    0 * inf) or another payload were stored."""
    odd = np.array([0xFFF8000000000000, 0x7FF8000000000001], dtype="u8").view("f8")
    values = np.resize(odd, 8).astype(dtype)
    if values.dtype.kind == "c":
        values.imag = [0, np.nan, 1, 2, 3, 4, 5, 6]
    for lib in (oxzarr, zarr):
        path = tmp_path / f"{lib.__name__}.zarr"
        a = lib.create_array(
            path, shape=(8,), dtype=dtype, chunks=(2,), shards=shards, fill_value=np.nan
        )
        a[...] = values
        assert a.nchunks_initialized == 0, lib
        a[...] = np.where(np.arange(8) == 3, 1, values)
        stored = ["1"] if shards is None else ["0"]
        assert sorted(f.name for f in (path / "c").iterdir()) == stored
    # The same stays for a fill value that is no NaN: -0.0 is not 0.0, nor any NaN.
    a = oxzarr.create_array(tmp_path / "zero.zarr", shape=(2,), dtype=dtype, chunks=(2,))
    a[...] = -0.0
    assert a.nchunks_initialized == 1


def test_array_config_order(tmp_path: Path) -> None:
    a = oxzarr.create_array(tmp_path / "a.zarr", shape=(6, 5, 4), chunks=(4, 2, 3), dtype="f8")
    values = np.arange(120.0).reshape(6, 5, 4)
    a[...] = values
    f = a.with_config({"order": "F"})
    assert (a.config.order, f.config.order, f.order) == ("C", "F", "F")
    for key in [Ellipsis, (slice(1, 5), 2), (slice(None), slice(1, 4), slice(0, 4, 2)), 3]:
        got = f[key]
        assert got.flags.f_contiguous and np.array_equal(got, values[key]), key
        assert a[key].flags.c_contiguous
    # Into an `out` of either layout, and through pickling.
    out = np.empty((6, 5, 4), order="F")
    assert f.get_basic_selection(out=out) is out and np.array_equal(out, values)
    again = pickle.loads(pickle.dumps(f))
    assert again.config == f.config and again[...].flags.f_contiguous
    # Opened with a config, or under a configured order.
    opened = oxzarr.open_array(tmp_path / "a.zarr", mode="r", config={"order": "F"})
    assert opened[...].flags.f_contiguous
    with oxzarr.config.set({"order": "F"}):
        assert oxzarr.open_array(tmp_path / "a.zarr", mode="r").config.order == "F"
    assert oxzarr.open_array(tmp_path / "a.zarr", mode="r").config.order == "C"
    with pytest.raises(ValueError, match="'C' or 'F'"):
        oxzarr.config.set({"array.order": "A"})
    with pytest.raises(ValueError, match="'C' or 'F'"):
        oxzarr.open_array(tmp_path / "a.zarr", config={"order": "A"})


def info_rows(info: str) -> dict[str, str]:
    pairs = (line.split(":", 1) for line in info.splitlines())
    return {k.strip(): v.strip() for k, v in pairs}


def test_info_complete(tmp_path: Path) -> None:
    g = oxzarr.open_group(tmp_path / "g.zarr", mode="w")
    a = g.create_array("a", shape=(10, 10), chunks=(5, 5), dtype="u2", compressors=None)
    a[:5] = 1
    g.create_group("sub").create_group("deeper").create_array("b", shape=(2,), dtype="u1")
    rows = info_rows(a.info_complete())
    assert rows["Chunks Initialized"] == "2"
    assert rows["No. bytes stored"] == str(a.nbytes_stored())
    assert float(rows["Storage ratio"]) == round(200 / a.nbytes_stored(), 1)
    assert a.info_complete().startswith(a.info)
    rows = info_rows(g.info_complete())
    assert (rows["No. members"], rows["No. arrays"], rows["No. groups"]) == ("4", "2", "2")
    # Shown as rows, not as a quoted string, as zarr-python's info objects are.
    for summary in (a.info, a.info_complete(), g.info, g.info_complete()):
        assert repr(summary) == str(summary) and "\n" in repr(summary)


def test_overwrite_replaces_the_node(tmp_path: Path) -> None:
    p = tmp_path / "a.zarr"
    a = oxzarr.create_array(p, shape=(4,), dtype="i4", chunks=(2,))
    a[...] = 3
    with pytest.raises(ContainsArrayError):
        oxzarr.create_array(p, shape=(4,), dtype="i4")
    b = oxzarr.create_array(p, shape=(4,), dtype="i4", chunks=(2,), overwrite=True)
    assert b[...].tolist() == [0, 0, 0, 0]
    assert not (p / "c").exists()


def test_zeros_ones_full_empty_array(tmp_path: Path) -> None:
    z = oxzarr.zeros((3, 2), chunks=(2, 2), store=tmp_path / "z.zarr")
    assert z.dtype == np.float64 and z[...].tolist() == [[0, 0]] * 3
    assert oxzarr.ones((2,), dtype="i2")[...].tolist() == [1, 1]
    f = oxzarr.full((2,), 7, dtype="u1", store=tmp_path / "f.zarr")
    assert oxzarr.open_array(tmp_path / "f.zarr")[...].tolist() == [7, 7]
    assert f.fill_value == 7
    assert oxzarr.empty((2,), dtype="f4").shape == (2,)
    data = sample((5, 5), "i8")
    assert_same(oxzarr.array(data, chunks=(2, 2))[...], data)
    src = oxzarr.array(data, chunks=(3, 3), compressors=GzipCodec(level=1))
    copy = oxzarr.from_array(tmp_path / "copy.zarr", data=src)
    assert copy.chunks == (3, 3) and copy.compressors == (GzipCodec(level=1),)
    assert_same(copy[...], data)


def test_data_argument(tmp_path: Path) -> None:
    data = sample((6, 4), "u2")
    a = oxzarr.create_array(tmp_path / "a.zarr", data=data, chunks=(4, 4))
    assert a.shape == (6, 4) and a.dtype == np.uint16
    assert_same(oxzarr.open_array(tmp_path / "a.zarr")[...], data)


def test_pickle_by_store_and_path(tmp_path: Path) -> None:
    a = oxzarr.create_array(tmp_path / "a.zarr", shape=(1000, 1000), dtype="f8", chunks=(100, 100))
    a[...] = 1.0
    blob = pickle.dumps(a)
    assert len(blob) < 1000, "an array pickles by reference, not by value"
    b = pickle.loads(blob)
    assert b.shape == a.shape and b.path == a.path
    b[0, 0] = 2.0
    assert a[0, 0] == 2.0
    g = pickle.loads(pickle.dumps(oxzarr.open_group(tmp_path / "g.zarr")))
    assert isinstance(g, oxzarr.Group) and not g.is_consolidated
    # A group opened through consolidated metadata is again (as zarr-python's); a member of
    # one opens from its own documents.
    g.create_group("sub")
    oxzarr.consolidate_metadata(tmp_path / "g.zarr")
    c = oxzarr.open_group(tmp_path / "g.zarr", mode="r")
    assert pickle.loads(pickle.dumps(c)).is_consolidated
    assert list(pickle.loads(pickle.dumps(c["sub"])).keys()) == []
    m = oxzarr.create_array(oxzarr.storage.MemoryStore(), shape=(3,), dtype="i1")
    m[...] = [1, 2, 3]
    assert pickle.loads(pickle.dumps(m))[...].tolist() == [1, 2, 3]
    # A counting store pickles as the store it counts for, counted anew (dask's processes).
    counted = oxzarr.open_array(CountingStore(LocalStore(tmp_path / "a.zarr")), mode="r")
    again = pickle.loads(pickle.dumps(counted))
    assert isinstance(again.store, CountingStore) and again.store.read_only
    assert again.store.requests == 0  # its metadata came with it
    assert again[0, :2].tolist() == [2.0, 1.0] and again.store.requests == 1


def test_pickled_nodes_are_the_nodes_pickled(tmp_path: Path) -> None:
    """As zarr-python's: a pickled array holds its metadata, so the copy is the array the
    handle held (a dask graph computes the shape it was built for) even after another writer
    resized it, and of the format it was opened as where a v2 and a v3 node share a path; a
    group too, and a member of a consolidated group lists what the consolidated metadata
    lists."""
    a = oxzarr.create_array(tmp_path / "a.zarr", shape=(6,), chunks=(3,), dtype="i4", fill_value=-1)
    a[...] = np.arange(6)
    oxzarr.open_array(tmp_path / "a.zarr", mode="r+").resize((3,))
    copy = pickle.loads(pickle.dumps(a))
    assert copy.shape == (6,) and copy[...].tolist() == [0, 1, 2, -1, -1, -1]

    both = tmp_path / "both.zarr"
    zarr.create_array(both, shape=(3,), dtype="i4", zarr_format=2, fill_value=0)[...] = 2
    # A v3 array beside it (as zarr-python's migration to v3 leaves both).
    v3 = oxzarr.create_array(tmp_path / "v3", shape=(5,), dtype="f8", fill_value=7.0)
    (both / "zarr.json").write_bytes((tmp_path / "v3" / "zarr.json").read_bytes())
    assert v3.shape == (5,)
    v2 = oxzarr.open_array(both, mode="r+", zarr_format=2)
    pickle.loads(pickle.dumps(v2))[...] = 9
    assert oxzarr.open_array(both, mode="r", zarr_format=2)[...].tolist() == [9, 9, 9]
    assert oxzarr.open_array(both, mode="r", zarr_format=3)[...].tolist() == [7.0] * 5
    oxzarr.open_group(tmp_path / "g", mode="w", zarr_format=2, attributes={"who": "v2"})
    zarr_json = {"zarr_format": 3, "node_type": "group", "attributes": {"who": "v3"}}
    (tmp_path / "g" / "zarr.json").write_text(json.dumps(zarr_json))
    g2 = pickle.loads(pickle.dumps(oxzarr.open_group(tmp_path / "g", mode="r", zarr_format=2)))
    assert g2.zarr_format == 2 and g2.attrs["who"] == "v2"

    root = oxzarr.open_group(tmp_path / "c.zarr", mode="w")
    root.create_group("sub").create_array("arr", shape=(3,), dtype="i1")
    oxzarr.consolidate_metadata(tmp_path / "c.zarr")
    sub = oxzarr.open_group(tmp_path / "c.zarr", mode="r")["sub"]
    oxzarr.open_group(tmp_path / "c.zarr", path="sub", use_consolidated=False).create_group("late")
    again = pickle.loads(pickle.dumps(sub))
    assert again.is_consolidated and list(again.keys()) == list(sub.keys()) == ["arr"]
    # A group pickled by an earlier version (whether it was consolidated, no format) loads.
    from oxzarr.group import _reopen_group

    old = _reopen_group(LocalStore(tmp_path / "c.zarr"), "", True)
    assert old.is_consolidated and old.zarr_format == 3


def test_a_pickled_group_is_the_group_pickled(tmp_path: Path) -> None:
    """As zarr-python's: a group pickles with its metadata and, opened through consolidated
    metadata (its own, or that of a group above it), with what that lists of the nodes below
    it. The copy has the attributes the group had when pickled (it had those another writer
    wrote since), unpickles when the group has since been removed (pickle.loads raised
    GroupNotFoundError, failing a dask task as it was unpickled), and neither unpickling nor
    member lookups read the store (unpickling read the group's documents again)."""
    for fmt in (3, 2):
        where = tmp_path / f"v{fmt}.zarr"
        g = oxzarr.open_group(where, mode="w", zarr_format=fmt, attributes={"version": 1})
        # Attributes that do not compress, to tell how many times a pickle holds them.
        noise = base64.b64encode(os.urandom(15_000)).decode()
        below = g.create_group("sub", attributes={"s": 1})
        below.create_array("leaf", shape=(3,), dtype="i1", attributes={"noise": noise})
        g.create_array("a", shape=(2,), dtype="i4", attributes={"noise": noise[::-1]})
        plain = oxzarr.open_group(CountingStore(LocalStore(where)), mode="r", zarr_format=fmt)
        oxzarr.consolidate_metadata(where, zarr_format=fmt)
        root = oxzarr.open_group(CountingStore(LocalStore(where)), mode="r", zarr_format=fmt)
        sub = root["sub"]
        unconsolidated = oxzarr.open_group(where, mode="r", use_consolidated=False)
        assert root.is_consolidated and sub.is_consolidated
        blobs = [pickle.dumps(node) for node in (plain, root, sub, unconsolidated)]
        oxzarr.open_group(where, mode="r+", zarr_format=fmt).attrs["version"] = 2
        shutil.rmtree(where)
        plain2, root2, sub2, unconsolidated2 = (pickle.loads(blob) for blob in blobs)
        for node in (plain2, root2, sub2, unconsolidated2):
            assert node.zarr_format == fmt and node.read_only
        assert dict(plain2.attrs) == dict(root2.attrs) == {"version": 1}
        assert not plain2.is_consolidated and not unconsolidated2.is_consolidated
        assert root2.is_consolidated and sub2.is_consolidated
        assert sorted(root2.keys()) == ["a", "sub"] and root2["sub/leaf"].shape == (3,)
        assert dict(sub2.attrs) == {"s": 1} and list(sub2.keys()) == ["leaf"]
        assert sub2["leaf"].shape == (3,) and dict(root2["sub"].attrs) == {"s": 1}
        # A delete through the member rewrites the document of the group above it.
        assert sub2._core.consolidated_root == sub._core.consolidated_root == ""
        assert root2.store.requests == sub2.store.requests == 0
        with pytest.raises(ReadOnlyError):
            root2.attrs["version"] = 3
        # Each document once (a v3 group's own holds its consolidated metadata), and a
        # member's pickle what lies below it alone.
        assert len(blobs[1]) < 2.4 * len(noise) and len(blobs[2]) < 1.2 * len(noise)
    # A member oxzarr cannot open is listed in the copy too, and opening it fails as it does
    # through the group pickled.
    spoilt = tmp_path / "spoilt.zarr"
    oxzarr.create_group(spoilt, zarr_format=2).create_array("bad", shape=(2,), dtype="i1")
    oxzarr.consolidate_metadata(spoilt)
    _spoil(spoilt, 2)
    spoilt_copy = pickle.loads(pickle.dumps(oxzarr.open_group(spoilt, mode="r")))
    assert spoilt_copy.is_consolidated and list(spoilt_copy.keys()) == ["bad"]
    with pytest.raises(ValueError, match=r"bad/\.zarray"):
        spoilt_copy["bad"]
    # A writable group's copy writes to the store.
    w = oxzarr.open_group(tmp_path / "w.zarr", mode="w")
    pickle.loads(pickle.dumps(w)).attrs["k"] = 1
    assert dict(oxzarr.open_group(tmp_path / "w.zarr", mode="r").attrs) == {"k": 1}
    with pytest.raises(MetadataValidationError, match="the metadata given for the group"):
        oxzarr._core.Group.from_documents(LocalStore(tmp_path)._core, "x", "[1]")


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_a_pickled_consolidated_group_holds_the_attributes_written_through_it(
    tmp_path: Path, zarr_format: int
) -> None:
    # Attributes written through a consolidated group's members are seen through the group
    # (as in zarr-python); its pickle held the documents as they were read, so the copy
    # showed the members' attributes of before the writes.
    p = tmp_path / "g.zarr"
    g = oxzarr.open_group(p, mode="w", zarr_format=zarr_format)
    g.create_group("sub").create_array("a", shape=(2,), dtype="i4")
    g.create_array("b", shape=(2,), dtype="i4")
    oxzarr.consolidate_metadata(p)
    g = oxzarr.open_group(p, mode="r+")
    g["b"].attrs["x"] = 1
    g["sub/a"].attrs["y"] = 2
    g["sub"].attrs["z"] = 3
    for again, prefix in (
        (pickle.loads(pickle.dumps(g)), "sub/"),
        (pickle.loads(pickle.dumps(g["sub"])), ""),
    ):
        assert dict(again[f"{prefix}a"].attrs) == {"y": 2}
        if prefix:
            assert dict(again["b"].attrs) == {"x": 1} and dict(again["sub"].attrs) == {"z": 3}
        else:
            assert dict(again.attrs) == {"z": 3}


def test_a_pickled_group_holds_its_metadata_compressed(tmp_path: Path) -> None:
    """The documents of a consolidated group's members repeat one another, and are pickled
    compressed: a group of 1,000 arrays pickled into 415 KB (v3) and 207 KB (v2) of JSON, as
    long as the documents; now 7 KB and 9 KB (zarr-python's: 144 KB and 103 KB)."""
    for fmt in (3, 2):
        where = tmp_path / f"v{fmt}.zarr"
        g = oxzarr.open_group(where, mode="w", zarr_format=fmt)
        for i in range(100):
            g.create_array(f"a{i}", shape=(4,), dtype="f8", attributes={"i": i})
        oxzarr.consolidate_metadata(where, zarr_format=fmt)
        group = oxzarr.open_group(where, mode="r", zarr_format=fmt)
        documents = group._core.metadata_json() + (group._core.consolidated_documents_json() or "")
        blob = pickle.dumps(group)
        assert len(blob) < len(documents) / 10
        again = pickle.loads(blob)
        assert again.is_consolidated and again["a99"].attrs["i"] == 99


def test_memory_store_views_stay_views_when_copied() -> None:
    # Views of one memory store pickled (or deep-copied) together are views of one copy, as
    # zarr-python's; copy.copy is another view of the same contents.
    store = oxzarr.storage.MemoryStore()
    w = oxzarr.create_array(store, shape=(3,), dtype="i4", fill_value=0)
    r = oxzarr.open_array(store, mode="r")
    w2, r2 = pickle.loads(pickle.dumps((w, r)))
    w2[...] = 7
    assert r2[...].tolist() == [7, 7, 7] and r[...].tolist() == [0, 0, 0]
    w3, r3 = copy.deepcopy((w, r))
    w3[...] = 8
    assert r3[...].tolist() == [8, 8, 8] and r[...].tolist() == [0, 0, 0]
    shallow = copy.copy(store)
    shallow.set("k", b"v")
    assert store.get("k") == b"v" and shallow == store and shallow is not store
    assert store.with_read_only(True) != store
    assert store.with_read_only(True) == store.with_read_only(True)
    oxzarr.open_group("memory://views", mode="w")
    assert oxzarr.open_group("memory://views", mode="r") == oxzarr.open_group(
        "memory://views", mode="r"
    )


def test_memory_stores(tmp_path: Path) -> None:
    store = oxzarr.storage.MemoryStore()
    a = oxzarr.create_array(store, name="x", shape=(5,), dtype="i2", chunks=(2,))
    a[...] = np.arange(5)
    assert oxzarr.open_array(store, path="x")[...].tolist() == [0, 1, 2, 3, 4]
    assert "x/c/2" in store.list_prefix("")
    ro = oxzarr.open_array(store, path="x", mode="r")
    with pytest.raises(ReadOnlyError):
        ro[0] = 1
    # A memory:// URL names one store in the process, as fsspec's memory filesystem does for
    # zarr-python: what is written through it opens through it again; None is a new store.
    named = oxzarr.open_group("memory://test_memory_stores", mode="w")
    named.create_array("y", shape=(2,), dtype="i1")[...] = [3, 4]
    again = oxzarr.open_group("memory://test_memory_stores/", mode="r")
    assert again["y"][...].tolist() == [3, 4]
    with pytest.raises(ReadOnlyError):
        again["y"][0] = 1
    assert "y" not in oxzarr.open_group("memory://another", mode="a")
    assert "y" not in oxzarr.open_group(None, mode="a")
    # The path after the scheme is a place in that one store, not another store's name: a
    # node opens through the URL of its parent with its path, and through its own URL.
    assert oxzarr.open_array("memory://test_memory_stores/y")[...].tolist() == [3, 4]
    oxzarr.create_array("memory://test_memory_stores/z/w", shape=(1,), dtype="i1")[...] = 9
    assert oxzarr.open_array("memory://test_memory_stores", path="z/w")[...].tolist() == [9]
    with pytest.raises(ArrayNotFoundError, match="memory://test_memory_stores/z"):
        oxzarr.open_array("memory://test_memory_stores/z", mode="r")
    # An array of such a URL pickles as the URL: what the copy writes lands in the store.
    copy = pickle.loads(pickle.dumps(oxzarr.open_array("memory://test_memory_stores/y")))
    copy[...] = [5, 6]
    assert again["y"][...].tolist() == [5, 6]
    with pytest.raises(ValueError, match="az://"):
        oxzarr.open_array("az://container/x")


def test_a_refused_config_change_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    # A value past what the engine holds is refused before anything changes.
    with pytest.raises(ValueError, match="chunk_cache_bytes"):
        oxzarr.config.set({"write_empty_chunks": True, "chunk_cache_bytes": 2**64})
    assert oxzarr.config.get("write_empty_chunks") is False
    assert oxzarr.config.get("chunk_cache_bytes") == 0
    # One the engine refuses part way (here, made to) leaves every setting as it was, in the
    # engine too.
    threads = oxzarr.config.get("threads")

    def refuse(value: object) -> None:
        raise OSError("refused")

    monkeypatch.setattr(oxzarr._core, "set_output_huge_pages", refuse)
    with pytest.raises(OSError, match="refused"):
        oxzarr.config.set(
            {"threads": threads + 1, "write_empty_chunks": True, "output_huge_pages": True}
        )
    monkeypatch.undo()
    assert oxzarr.config.get("write_empty_chunks") is False
    assert oxzarr.config.get("threads") == threads == oxzarr._core.threads()
    with oxzarr.config.set({"chunk_cache_bytes": 1024}):
        assert oxzarr.config.get("chunk_cache_bytes") == 1024
    assert oxzarr.config.get("chunk_cache_bytes") == 0


def test_config(tmp_path: Path) -> None:
    import os

    assert oxzarr.config.get("threads") == os.cpu_count()
    with oxzarr.config.set({"threads": 1}):
        assert oxzarr.config.get("threads") == 1
        assert oxzarr.config.get("threading.max_workers") == 1
    assert oxzarr.config.get("threads") == os.cpu_count()
    oxzarr.config.set({"array.write_empty_chunks": True})
    assert oxzarr.config.get("write_empty_chunks") is True
    with pytest.raises(KeyError):
        oxzarr.config.set({"nope": 1})
    with pytest.raises(ValueError):
        oxzarr.config.set({"threads": 0})
    # Threads are made before any work: 100,000 took minutes and gigabytes.
    with pytest.raises(ValueError, match="at most 1024"):
        oxzarr.config.set({"threads": 100_000})
    assert oxzarr.config.get("nope", "default") == "default"
    assert oxzarr.config.get("nope", None) is None
    # A key oxzarr does not have (a typo) is a KeyError, as in zarr-python (it was None).
    with pytest.raises(KeyError):
        oxzarr.config.get("chunk_cache_byte")


def test_config_takes_what_zarr_pythons_takes(tmp_path: Path) -> None:
    # Nested sections, `__` keywords and `get` of a section were KeyErrors, numpy integers
    # ValueErrors, where zarr-python's config (donfig) takes them.
    config = oxzarr.config
    with config.set({"array": {"order": "F"}}):
        assert config.get("array.order") == "F" and config.get("order") == "F"
        assert config.get("array.write_empty_chunks") is False  # the rest of the section kept
    assert config.get("array.order") == "C"
    with config.set(array__order="F", threading__max_workers=np.int64(2)):
        assert config.get("array.order") == "F"
        assert config.get("threads") == 2 and type(config.get("threads")) is int
    assert config.get("array") == zarr.config.get("array")
    assert config.get("async") == zarr.config.get("async")
    assert config.get("threading") == {"max_workers": config.get("threads")}
    config.update({"array": {"write_empty_chunks": np.True_}, "chunk_cache_bytes": np.uint32(8)})
    assert config.get("array") == {
        "order": "C",
        "write_empty_chunks": True,
        "target_shard_size_bytes": None,
    }
    assert config.get("chunk_cache_bytes") == 8
    config.set({"codecs": {"numcodecs": {"zlib": "my.Zlib"}}})
    assert config.get("codecs") == {"numcodecs": {"zlib": "my.Zlib"}}
    assert config.get("codecs.numcodecs") == {"zlib": "my.Zlib"}
    # oxzarr's checks still apply, to values given any of these ways.
    with pytest.raises(ValueError, match="'order' must be 'C' or 'F'"):
        config.set({"array": {"order": "X"}})
    with pytest.raises(ValueError, match="'threads' must be a positive integer"):
        config.set(threading__max_workers=np.float64(2))
    with pytest.raises(ValueError, match="'array' is a section"):
        config.set({"array": "F"})
    with pytest.raises(KeyError, match=re.escape("array.nope")):
        config.set({"array": {"nope": 1}})
    assert config.get("array.order") == "C"


def test_config_reads_the_environment_as_zarr_python_does(monkeypatch: pytest.MonkeyPatch) -> None:
    # ZARR_* variables were not read: code run under ZARR_ARRAY__ORDER=F or
    # ZARR_DEFAULT_ZARR_FORMAT=2 for zarr-python got oxzarr's defaults.
    script = (
        "import oxzarr, zarr\n"
        "for key in ('array.order', 'default_zarr_format', 'threads', 'write_empty_chunks'):\n"
        "    print(key, repr(oxzarr.config.get(key)))\n"
        "print('zarr', zarr.config.get('array.order'), zarr.config.get('default_zarr_format'))\n"
        "a = oxzarr.create((2, 2), dtype='i4')  # (create_array makes v3 whatever the config)\n"
        "print('made', a.zarr_format, a.order)\n"
    )
    env = {
        **os.environ,
        "ZARR_ARRAY__ORDER": "F",
        "ZARR_DEFAULT_ZARR_FORMAT": "2",
        "ZARR_THREADING__MAX_WORKERS": "3",
        "OXZARR_THREADS": "2",  # oxzarr's own name wins
        "ZARR_ARRAY__WRITE_EMPTY_CHUNKS": "True",
        "ZARR_V3_EXPERIMENTAL_API": "1",  # zarr 2's: no setting, left alone
    }
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "array.order 'F'",
        "default_zarr_format 2",
        "threads 2",
        "write_empty_chunks True",
        "zarr F 2",
        "made 2 F",
    ]
    # A value a setting refuses is ignored, with a warning naming the variable; reset and
    # refresh read the environment again, as zarr-python's do.
    monkeypatch.setenv("ZARR_ARRAY__ORDER", "X")
    monkeypatch.setenv("OXZARR_CHUNK_CACHE_BYTES", "4096")
    with pytest.warns(RuntimeWarning, match="ZARR_ARRAY__ORDER='X' is ignored"):
        oxzarr.config.reset()
    assert oxzarr.config.get("order") == "C"
    assert oxzarr.config.get("chunk_cache_bytes") == 4096
    monkeypatch.delenv("ZARR_ARRAY__ORDER")
    monkeypatch.delenv("OXZARR_CHUNK_CACHE_BYTES")
    oxzarr.config.refresh()
    assert oxzarr.config.get("chunk_cache_bytes") == 0


def test_checksum_validation_can_be_switched_off(tmp_path: Path) -> None:
    p = tmp_path / "a.zarr"
    a = oxzarr.create_array(
        p, shape=(4,), dtype="u1", chunks=(4,), compressors=[Crc32cCodec()], fill_value=0
    )
    a[...] = [1, 2, 3, 4]
    raw = bytearray((p / "c" / "0").read_bytes())
    raw[-1] ^= 0xFF  # break the checksum only
    (p / "c" / "0").write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="checksum"):
        a[...]
    with oxzarr.config.set({"validate_checksums": False}):
        assert a[...].tolist() == [1, 2, 3, 4]


@pytest.mark.parametrize("shards", [None, (8, 8)])
def test_chunk_cache(tmp_path: Path, shards: tuple[int, int] | None) -> None:
    from oxzarr.storage import CountingStore, LocalStore

    p = tmp_path / "a.zarr"
    data = sample((16, 16), "f4")
    a = oxzarr.create_array(p, shape=(16, 16), dtype="f4", chunks=(4, 4), shards=shards)
    a[...] = data
    store = CountingStore(LocalStore(p))
    r = oxzarr.open_array(store)
    with oxzarr.config.set({"chunk_cache_bytes": 1 << 20}):
        assert_same(r[...], data)
        store.reset()
        assert_same(r[...], data)
        assert_same(r[1:3, 5], data[1:3, 5])
        # A cached chunk costs a version check (a stat), never its bytes: one per chunk, or
        # one per shard for each read of a sharded array (4 shards, then 1).
        assert store.bytes_read == 0, "cached chunks are not fetched again"
        assert store.requests == (4 + 1 if shards else 16 + 1)
        # Coordinate and mask selections use the same cache.
        store.reset()
        rows, cols = np.array([0, 5, 9, 15, 15]), np.array([1, 5, 14, 0, 15])
        assert_same(r.vindex[rows, cols], data[rows, cols])
        assert_same(r[data > 0.5], data[data > 0.5])
        assert store.bytes_read == 0
        assert store.requests == (3 + 4 if shards else 5 + 16)  # a stat per shard or chunk
        # A write through the same store updates what the cache holds.
        r[5, 5] = -1.0
        data[5, 5] = -1.0
        assert_same(r[4:8, 4:8], data[4:8, 4:8])
        # A budget smaller than a chunk caches nothing.
        oxzarr.config.set({"chunk_cache_bytes": 10})
        store.reset()
        assert_same(r[0:4, 0:4], data[0:4, 0:4])
        assert store.requests > 0
    assert oxzarr.config.get("chunk_cache_bytes") == 0


def test_v2_arrays_without_a_fill_value_store_every_chunk(tmp_path: Path) -> None:
    # With "fill_value": null no chunk is "empty": zarr-python 2 reads a missing chunk of
    # such an array as uninitialized memory, so zeros are stored. (zarr-python 3.1.6 drops
    # them, and reads missing chunks as zeros.)
    p = tmp_path / "a.zarr"
    a = oxzarr.create_array(p, shape=(6,), chunks=(2,), dtype="f4", zarr_format=2, fill_value=None)
    a[...] = 0
    assert a.nchunks_initialized == 3
    a.vindex[[0, 1]] = [0, 0]
    assert a.nchunks_initialized == 3
    s = oxzarr.create_array(
        tmp_path / "s.zarr", shape=(4,), chunks=(2,), dtype=str, zarr_format=2, fill_value=None
    )
    s[...] = ""
    assert s.nchunks_initialized == 2
    assert zarr.open_array(p, mode="r")[...].tolist() == [0.0] * 6
    # A fill value of 0 drops them, as before.
    b = oxzarr.create_array(tmp_path / "b.zarr", shape=(6,), chunks=(2,), dtype="f4", zarr_format=2)
    b[...] = 0
    assert b.nchunks_initialized == 0


def test_chunk_cache_keeps_the_inner_chunks_a_shard_write_left(tmp_path: Path) -> None:
    from oxzarr.storage import CountingStore, LocalStore

    p = tmp_path / "a.zarr"
    data = sample((16, 16), "f4")
    a = oxzarr.create_array(p, shape=(16, 16), dtype="f4", chunks=(4, 4), shards=(8, 8))
    a[...] = data
    store = CountingStore(LocalStore(p))
    r = oxzarr.open_array(store, mode="r+")
    with oxzarr.config.set({"chunk_cache_bytes": 1 << 20}):
        assert_same(r[...], data)
        r[5, 5] = -1.0  # inner chunk (1, 1) of shard (0, 0)
        data[5, 5] = -1.0
        store.reset()
        assert_same(r[0:8, 0:8], data[0:8, 0:8])
        # The shard's version, then only the inner chunk written (through the index the
        # write laid out): the other three are still cached.
        raw = (p / "c" / "0" / "0").read_bytes()
        index = np.frombuffer(raw[-(4 * 16 + 4) : -4], dtype="<u8").reshape(4, 2)
        assert store.requests == 2
        assert store.bytes_read == index[1 * 2 + 1][1]
        # Another writer's rewrite of the shard still reaches every inner chunk.
        zarr.open_array(p, mode="r+")[0:8, 0:8] = 2.5
        data[0:8, 0:8] = 2.5
        assert_same(r[...], data)


def test_chunk_cache_sees_a_same_size_rewrite(tmp_path: Path) -> None:
    # Uncompressed chunks keep their size when rewritten: only the file's tag (inode and
    # modification time) tells the versions apart.
    p = tmp_path / "raw.zarr"
    a = oxzarr.create_array(p, shape=(8,), dtype="i4", chunks=(4,), compressors=None)
    a[...] = np.arange(8, dtype="i4")
    with oxzarr.config.set({"chunk_cache_bytes": 1 << 20}):
        assert a[...].tolist() == list(range(8))
        zarr.open_array(p, mode="r+")[0:4] = -1
        assert a[...].tolist() == [-1] * 4 + [4, 5, 6, 7]


def _rewrite_with_zarr_python(path: Path, value: float) -> None:
    import zarr

    zarr.open_array(path, mode="r+")[0:4, 0:4] = value


@pytest.mark.parametrize("shards", [None, (8, 8)])
@pytest.mark.parametrize(
    "change",
    ["zarr-python rewrites", "overwrite", "resize", "store delete", "another handle deletes"],
)
def test_chunk_cache_never_serves_a_changed_chunk(
    tmp_path: Path, shards: tuple[int, int] | None, change: str
) -> None:
    # A cached chunk is used only while the store holds the version it was decoded from, so
    # every way of changing a chunk outside this handle's own writes is seen by its next read.
    p = tmp_path / "a.zarr"
    data = sample((16, 16), "f4")
    kwargs = dict(shape=(16, 16), dtype="f4", chunks=(4, 4), shards=shards, fill_value=0)
    a = oxzarr.create_array(p, **kwargs)
    a[...] = data
    with oxzarr.config.set({"chunk_cache_bytes": 1 << 20}):
        assert_same(a[...], data)
        if change == "zarr-python rewrites":
            _rewrite_with_zarr_python(p, -1.0)
            data[0:4, 0:4] = -1.0
        elif change == "overwrite":
            a = oxzarr.create_array(p, overwrite=True, **kwargs)
            data[...] = 0
        elif change == "resize":
            a.resize((2, 2))
            a.resize((16, 16))
            # As in zarr-python, the stored chunk (shard) holding (0, 0) is kept whole.
            kept = data[0:4, 0:4] if shards is None else data[0:8, 0:8]
            data = np.zeros_like(data)
            data[: kept.shape[0], : kept.shape[1]] = kept
        elif change == "store delete":
            key = "c/0/0"
            a.store.delete(key)
            if shards:
                data[0:8, 0:8] = 0
            else:
                data[0:4, 0:4] = 0
        else:
            b = oxzarr.open_array(p, mode="r+")
            b[0:8, 0:8] = 0
            data[0:8, 0:8] = 0
        assert_same(a[...], data)
        assert_same(a[0:4, 0:4], data[0:4, 0:4])


@pytest.mark.parametrize("shards", [None, (8,)])
def test_chunk_cache_serves_chunks_to_the_array_that_decoded_them(
    tmp_path: Path, shards: tuple[int, ...] | None
) -> None:
    """Entries were keyed by store key alone: an old handle of an array replaced by one of
    other chunks took the new one's decodings (a panic past their end, or other values), as
    did a v2 array whose .zarray was edited beside its chunks; and a chunk decoded with
    checksums unchecked was served once they were checked again."""
    import numcodecs

    p = tmp_path / "a.zarr"
    with oxzarr.config.set({"chunk_cache_bytes": 1 << 20}):
        for old_chunks, new_chunks in [((4,), (2,)), ((2,), (4,))]:
            settings: dict[str, object] = dict(shape=(8,), dtype="i4", compressors=None)
            if shards is not None:
                settings["shards"] = shards
            old = oxzarr.create_array(p, chunks=old_chunks, overwrite=True, **settings)
            old[...] = np.arange(8)
            new = oxzarr.create_array(p, chunks=new_chunks, overwrite=True, **settings)
            new[...] = np.arange(8) * 10
            assert new[...].tolist() == list(range(0, 80, 10))
            # The chunks are the new array's: what the old handle makes of them is an error
            # (as with the cache off), never the new array's decodings.
            with pytest.raises(CorruptChunkError):
                old[...]
            with pytest.raises(CorruptChunkError):
                old.get_coordinate_selection([1, 6])

        v2 = tmp_path / "v2.zarr"
        scaled = zarr.create_array(
            v2,
            shape=(4,),
            chunks=(4,),
            dtype="f8",
            zarr_format=2,
            filters=[numcodecs.FixedScaleOffset(offset=0, scale=10, dtype="f8", astype="i4")],
            compressors=None,
        )
        scaled[...] = [0.1, 0.2, 0.3, 0.4]
        assert oxzarr.open_array(v2)[...].tolist() == [0.1, 0.2, 0.3, 0.4]
        zarray = json.loads((v2 / ".zarray").read_text())
        zarray["filters"][0]["scale"] = 100
        (v2 / ".zarray").write_text(json.dumps(zarray))
        assert oxzarr.open_array(v2)[...].tolist() == [0.01, 0.02, 0.03, 0.04]

        checked = oxzarr.create_array(
            tmp_path / "c.zarr", shape=(4,), dtype="u1", compressors=oxzarr.codecs.Crc32cCodec()
        )
        checked[...] = [1, 2, 3, 4]
        chunk = tmp_path / "c.zarr" / "c" / "0"
        damaged = bytearray(chunk.read_bytes())
        damaged[0] ^= 0xFF
        chunk.write_bytes(bytes(damaged))
        with oxzarr.config.set({"validate_checksums": False}):
            assert checked[...].tolist() == [254, 2, 3, 4]
        with pytest.raises(CorruptChunkError, match="checksum"):
            checked[...]


@pytest.mark.parametrize(
    ("shape", "dtype"),
    [
        ((10000, 10000), "f4"),
        ((100, 200, 300), "u2"),
        ((5000, 3, 77), "f8"),
        ((7,), "i8"),
        ((0, 50), "i1"),
        ((1,), "c16"),
        ((2**20, 4), "bool"),
        ((64, 64, 64, 64), "f2"),
        ((10**6,), "u1"),
        ((3000, 700), "S3"),
        ((3000, 700), "U2"),
        ((10**6,), "str"),
    ],
)
@pytest.mark.parametrize("zarr_format", [2, 3])
def test_automatic_chunks_are_zarr_pythons(
    shape: tuple[int, ...], dtype: str, zarr_format: int
) -> None:
    import zarr

    kind = str if dtype == "str" else dtype
    theirs = zarr.create_array(
        zarr.storage.MemoryStore(), shape=shape, dtype=kind, zarr_format=zarr_format
    )
    ours = oxzarr.create_array(
        oxzarr.storage.MemoryStore(), shape=shape, dtype=kind, zarr_format=zarr_format
    )
    assert ours.chunks == theirs.chunks


def test_chunk_cache_sees_a_chunk_set_in_a_memory_store() -> None:
    # In memory, a value's version is a counter bumped by every set: a chunk replaced by the
    # same number of bytes through the store itself (no array write to drop the entry) is
    # still read afresh.
    from oxzarr.storage import MemoryStore

    store = MemoryStore()
    a = oxzarr.create_array(store, shape=(4,), dtype="i4", chunks=(4,), fill_value=0)
    a[...] = [1, 2, 3, 4]
    other = MemoryStore()
    b = oxzarr.create_array(other, shape=(4,), dtype="i4", chunks=(4,), fill_value=0)
    b[...] = [5, 6, 7, 8]
    with oxzarr.config.set({"chunk_cache_bytes": 1 << 20}):
        assert a[...].tolist() == [1, 2, 3, 4]
        replacement = other.get("c/0")
        assert replacement is not None and len(replacement) == len(store.get("c/0") or b"")
        store.set("c/0", replacement)
        assert a[...].tolist() == [5, 6, 7, 8]


def test_load_a_group_and_open_like(tmp_path: Path) -> None:
    # zarr-python 3.1 refuses to load a group; oxzarr gives its arrays by name, like numpy's
    # npz files. open_like opens (creating) an array shaped like another.
    oxzarr.save(tmp_path / "g", np.arange(3), x=np.ones(2))
    loaded = oxzarr.load(tmp_path / "g")
    assert sorted(loaded) == ["arr_0", "x"]
    assert_same(loaded["arr_0"], np.arange(3))
    src = oxzarr.create_array(tmp_path / "src", shape=(6, 4), dtype="u2", chunks=(3, 2))
    # As in zarr-python 3, the path is the array's in store= (a new memory store if none).
    like = oxzarr.open_like(src, "like", store=tmp_path / "s", mode="w")
    assert (like.shape, like.dtype, like.chunks) == ((6, 4), np.dtype("u2"), (3, 2))
    assert (like.path, like.store) == ("like", oxzarr.storage.LocalStore(tmp_path / "s"))
    assert (tmp_path / "s" / "like" / "zarr.json").is_file()
    in_memory = oxzarr.open_like(np.zeros((2, 2), "i1"), "inner")
    assert (in_memory.path, type(in_memory.store).__name__) == ("inner", "MemoryStore")


def test_cache_and_lock_settings_are_taken_at_any_value(tmp_path: Path) -> None:
    # create(cache_attrs=False) and create(synchronizer=...) raised TypeError: zarr-python
    # 3.1.6 takes cache_attrs, cache_metadata and synchronizer at any value and ignores them
    # (they tuned zarr-python 2's in-memory caches and locks, not what is stored).
    settings = {"cache_attrs": False, "cache_metadata": False, "synchronizer": object()}
    a = oxzarr.create((4,), dtype="i4", store=tmp_path / "c", **settings)
    a[...] = 3
    assert oxzarr.open_array(tmp_path / "c", mode="r")[...].tolist() == [3] * 4
    assert oxzarr.zeros((2,), store=tmp_path / "z", **settings)[...].tolist() == [0.0, 0.0]
    g = oxzarr.open_group(tmp_path / "g", mode="w", cache_attrs=False, synchronizer=object())
    assert g.attrs.asdict() == {}
    # chunk_store= would keep the chunks elsewhere: refused, before anything is written.
    with pytest.raises(TypeError, match="chunk_store="):
        oxzarr.create((4,), store=tmp_path / "d", chunk_store=tmp_path / "chunks")
    assert not (tmp_path / "d").exists()


def test_create_takes_a_numpy_meta_array_and_refuses_others(tmp_path: Path) -> None:
    # A numpy meta_array asks for numpy results, which oxzarr gives: zarr-python takes it.
    # Before, a 0-d one was refused and others failed in numpy's "truth value ... is
    # ambiguous" (the keyword checker compared the value elementwise with `in`).
    for i, meta in enumerate((np.empty(()), np.empty(0), np.empty(3))):
        a = oxzarr.create((3,), dtype="f8", store=tmp_path / f"c{i}", meta_array=meta)
        assert_same(a[...], np.zeros(3))
        assert_same(oxzarr.zeros((2,), store=tmp_path / f"z{i}", meta_array=meta)[...], np.zeros(2))
    # Another array type (cupy's, say) asks for what oxzarr does not give.
    for other in ([0.0], "numpy"):
        with pytest.raises(TypeError, match="meta_array"):
            oxzarr.create((3,), store=tmp_path / "other", meta_array=other)
        with pytest.raises(TypeError, match="meta_array"):
            oxzarr.zeros((3,), store=tmp_path / "other", meta_array=other)


def test_create_takes_a_mode(tmp_path: Path) -> None:
    # zarr.create's mode, as the other creation functions take it.
    p = tmp_path / "a"
    oxzarr.create((5,), store=p, dtype="i2")
    assert oxzarr.create((2,), store=p, mode="w", dtype="i2").shape == (2,)
    with pytest.raises(ContainsArrayError):
        oxzarr.create((3,), store=p, mode="a", dtype="i2")
    with pytest.raises(FileExistsError):
        oxzarr.create((3,), store=p, mode="w-", dtype="i2")
    assert oxzarr.open_array(p, mode="r").shape == (2,)
    assert oxzarr.create((4,), store=tmp_path / "new", mode="w-", dtype="i2").shape == (4,)


def test_dimension_separator_and_chunk_key_encoding_that_disagree_are_refused(
    tmp_path: Path,
) -> None:
    # Given both, chunk_key_encoding's separator was stored and the explicit
    # dimension_separator dropped without a word (zarr-python refuses the pair).
    both: dict[str, object] = {
        "dimension_separator": "/",
        "chunk_key_encoding": {"name": "v2", "separator": "."},
        "zarr_format": 2,
        "dtype": "i4",
    }
    group = oxzarr.open_group(tmp_path / "g", mode="w", zarr_format=2)
    makers = [
        lambda: oxzarr.create((10, 10), store=tmp_path / "a", chunks=(5, 5), **both),
        lambda: oxzarr.open_array(tmp_path / "a", mode="w", shape=(10, 10), **both),
        lambda: oxzarr.open(tmp_path / "a", mode="w", shape=(10, 10), **both),
        lambda: oxzarr.zeros((10, 10), store=tmp_path / "a", **both),
        lambda: group.zeros(name="a", shape=(10, 10), **both),
    ]
    for make in makers:
        with pytest.raises(ValueError, match=r"dimension_separator '/' and .* disagree"):
            make()
        assert not (tmp_path / "a").exists()
        assert not (tmp_path / "g" / "a").exists()
    with pytest.raises(ValueError, match="disagree"):
        oxzarr.create((4,), store=tmp_path / "a", dimension_separator="/", chunk_key_encoding="v2")
    # Both naming one separator, or chunk_key_encoding alone, are taken.
    for name, kwargs in {
        "agree": {
            "dimension_separator": "/",
            "chunk_key_encoding": {"name": "v2", "separator": "/"},
        },
        "encoding": {"chunk_key_encoding": {"name": "v2", "separator": "/"}},
    }.items():
        oxzarr.create((4,), store=tmp_path / name, dtype="i4", zarr_format=2, **kwargs)
        stored = json.loads((tmp_path / name / ".zarray").read_text())
        assert stored["dimension_separator"] == "/"


def test_copies_keep_fill_value_and_shards(tmp_path: Path) -> None:
    # Where zarr-python 3.1.6 drops them, oxzarr keeps a source Array's fill value (from_array,
    # array) and shard shape (the *_like functions): a copy has the source's layout.
    src = oxzarr.create_array(
        tmp_path / "s", shape=(8, 8), dtype="u1", chunks=(2, 2), shards=(4, 4), fill_value=9
    )
    like = oxzarr.zeros_like(src, store=tmp_path / "z")
    assert (like.chunks, like.shards) == ((2, 2), (4, 4))
    copy = oxzarr.from_array(tmp_path / "c", data=src)
    assert (copy.chunks, copy.shards, copy.fill_value) == ((2, 2), (4, 4), 9)
    assert_same(copy[...], np.full((8, 8), 9, dtype="u1"))
    # From a list, the dtype numpy's *_like give (a list has none of its own).
    for data in ([[1, 2], [3, 4]], [1.5], [True], 7):
        made = oxzarr.ones_like(data, store=tmp_path / "l", overwrite=True)
        assert_same(made[...], np.ones_like(data))


# A sparse array of 4 TiB (three stored chunks), copied by from_array in a child process;
# prints what the copies hold and how much the peak resident memory grew while copying.
SPARSE_COPY = """
import json, sys
import oxzarr
from oxzarr.storage import CountingStore

def peak_kib():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))

root, n = sys.argv[1], 2**20
made = oxzarr.create_array(
    root + "/src", shape=(n, n), chunks=(1024, 1024), dtype="i4", fill_value=-1
)
points = [(0, 0), (n // 2 + 3, 1000), (n - 1, n - 1)]
for i, p in enumerate(points):
    made[p] = i
counted = CountingStore(root + "/src")
src = oxzarr.open_array(counted, mode="r")
counted.reset()
before = peak_kib()
empty = oxzarr.from_array(root + "/empty", data=src, write_data=False)
out = {"reads": counted.requests, "empty_chunks": empty.nchunks_initialized}
copy = oxzarr.from_array(root + "/copy", data=src)
out["values"] = [int(copy[p]) for p in points] + [int(copy[5, 5])]
out["chunks"] = copy.nchunks_initialized
out["growth_mib"] = (peak_kib() - before) / 1024
print(json.dumps(out))
"""


def test_from_array_copies_a_huge_sparse_array_in_bounded_memory(tmp_path: Path) -> None:
    # from_array read an Array source whole into memory, even with write_data=False: a
    # MemoryError here (4 TiB). Now write_data=False reads no chunk, and the copy goes block by
    # block, only where the source has stored chunks.
    run = subprocess.run(
        [sys.executable, "-c", SPARSE_COPY, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    out = json.loads(run.stdout)
    assert out["reads"] == 0 and out["empty_chunks"] == 0
    assert out["values"] == [0, 1, 2, -1] and out["chunks"] == 3
    assert out["growth_mib"] < 500


def test_points_of_chunks_never_stored_read_the_fill_value_without_a_chunk_buffer(
    tmp_path: Path,
) -> None:
    # A coordinate selection filled a buffer of the whole chunk with the fill value for a chunk
    # not stored: a MemoryError for these 4 TiB chunks (1 TiB inner chunks), where zarr-python
    # reads [7, 7]; a chunk that fits cost its size in memory for a few points.
    a = oxzarr.create_array(
        tmp_path / "a.zarr", shape=(2**42,), chunks=(2**42,), dtype="u1", fill_value=7
    )
    assert a.vindex[[5, 9]].tolist() == [7, 7]
    assert a.get_coordinate_selection(np.array([9, 5, 9])).tolist() == [7, 7, 7]
    s = oxzarr.create_array(
        tmp_path / "s.zarr",
        shape=(2**44,),
        chunks=(2**40,),
        shards=(2**42,),
        dtype="u1",
        fill_value=7,
    )
    # Two inner chunks of one shard (read as a run) and one of another shard.
    assert s.vindex[[5, 2**40 + 5, 2**43]].tolist() == [7, 7, 7]
    with oxzarr.config.set({"chunk_cache_bytes": 1 << 20}):
        assert a.vindex[[5, 9]].tolist() == [7, 7]
        assert s.vindex[[5, 2**40 + 5, 2**43]].tolist() == [7, 7, 7]


def test_copies_across_formats_and_save_modes(tmp_path: Path) -> None:
    import json

    v2 = oxzarr.create_array(
        tmp_path / "v2",
        shape=(4, 4),
        dtype="f4",
        chunks=(2, 2),
        zarr_format=2,
        chunk_key_encoding={"name": "v2", "separator": "/"},
    )
    oxzarr.from_array(tmp_path / "c", data=v2)
    assert json.loads((tmp_path / "c" / ".zarray").read_text())["dimension_separator"] == "/"
    # Into the other format, a source's codecs (numcodecs configurations) and shards stay out.
    z = oxzarr.zeros_like(v2, zarr_format=3, store=tmp_path / "z")
    names = [c["name"] for c in json.loads((tmp_path / "z" / "zarr.json").read_text())["codecs"]]
    assert names == ["bytes", "zstd"] and z.zarr_format == 3
    sharded = oxzarr.create_array(
        tmp_path / "sh", shape=(8, 8), dtype="u1", chunks=(2, 2), shards=(4, 4)
    )
    g = oxzarr.open_group(tmp_path / "g2", mode="w", zarr_format=2)
    assert g.zeros_like(name="x", data=sharded).zarr_format == 2
    oxzarr.save_array(tmp_path / "s", np.arange(3))
    oxzarr.save_array(tmp_path / "s", np.arange(2), mode="w")
    assert oxzarr.load(tmp_path / "s").tolist() == [0, 1]


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_a_bare_nan_fill_value_reads(tmp_path: Path, zarr_format: int) -> None:
    # Python's json writes a float NaN fill value as a bare token; it means NaN.
    p = tmp_path / "n.zarr"
    oxzarr.create_array(p, shape=(4,), dtype="f8", chunks=(2,), zarr_format=zarr_format)
    doc_path = p / (".zarray" if zarr_format == 2 else "zarr.json")
    doc = json.loads(doc_path.read_text())
    doc["fill_value"] = float("nan")
    doc_path.write_text(json.dumps(doc))
    assert "NaN" in doc_path.read_text()
    a = oxzarr.open_array(p, mode="r")
    assert np.isnan(a[...]).all() and np.isnan(a.fill_value)


def test_handles_on_one_node_are_equal(tmp_path: Path) -> None:
    # As zarr-python's: the same store, path and metadata make equal arrays and groups.
    group = oxzarr.open_group(tmp_path / "g.zarr", mode="w")
    a = group.create_array("x", shape=(3,), dtype="i4")
    again = oxzarr.open_group(tmp_path / "g.zarr")["x"]
    assert a == again and hash(a) == hash(again) and not (a != again)
    assert group == oxzarr.open_group(tmp_path / "g.zarr")
    assert {a, again} == {a} and a != group
    assert a != group.create_array("y", shape=(3,), dtype="i4")
    again.resize((5,))
    assert a != again, "a handle that has not seen the resize differs"
    theirs = zarr.open_group(tmp_path / "g.zarr")
    assert theirs["x"] != theirs["y"] and theirs["x"] == theirs["x"]


def test_handles_opened_read_only_equal_the_writable_ones(tmp_path: Path) -> None:
    # Equality counted the store's read-only mode: an array or group opened with mode "r"
    # differed from the handle that created it (zarr-python's are equal).
    a = oxzarr.create_array(tmp_path / "a.zarr", shape=(3,), dtype="i4")
    r = oxzarr.open_array(tmp_path / "a.zarr", mode="r")
    assert a == r and hash(a) == hash(r) and {a, r} == {a}
    theirs = zarr.open_array(tmp_path / "a.zarr", mode="r")
    assert theirs == zarr.open_array(tmp_path / "a.zarr") and theirs.store == theirs.store
    g = oxzarr.create_group(tmp_path / "g.zarr")
    assert g == oxzarr.open_group(tmp_path / "g.zarr", mode="r")
    assert hash(g) == hash(oxzarr.open_group(tmp_path / "g.zarr", mode="r"))
    # As zarr-python's LocalStore and ZipStore, oxzarr's are compared by their place.
    local = LocalStore(tmp_path)
    assert local == LocalStore(tmp_path, read_only=True)
    assert hash(local) == hash(LocalStore(tmp_path, read_only=True))
    assert zarr.storage.LocalStore(tmp_path) == zarr.storage.LocalStore(tmp_path, read_only=True)
    with ZipStore(tmp_path / "z.zip", mode="w") as zipped:
        z = oxzarr.create_array(zipped, shape=(3,), dtype="i4")
        assert zipped.with_read_only(True) == zipped
        assert hash(zipped.with_read_only(True)) == hash(zipped)
        assert oxzarr.open_array(zipped, mode="r") == z
    # Memory and remote stores count the mode, as zarr-python's do; handles on one node
    # through them are equal all the same.
    memory = oxzarr.storage.MemoryStore()
    m = oxzarr.create_array(memory, shape=(3,), dtype="i4")
    mr = oxzarr.open_array(memory, mode="r")
    assert mr.store != m.store and m == mr and hash(m) == hash(mr)
    memory = oxzarr.storage.MemoryStore()
    gm = oxzarr.create_group(memory)
    assert gm == oxzarr.open_group(memory, mode="r")


@pytest.mark.parametrize("shareable", [True, False])
def test_copies_of_zarr_python_arrays_keep_their_settings(tmp_path: Path, shareable: bool) -> None:
    # As copies of oxzarr's own arrays do (and zarr-python's from_array and *_like): the
    # format, grid and fill value, whether oxzarr can open the source's store or not.
    def source(name: str, **kwargs: object) -> zarr.Array:
        store = str(tmp_path / name) if shareable else zarr.storage.MemoryStore()
        return zarr.create_array(store, **kwargs)  # type: ignore[arg-type]

    v2 = source("v2", shape=(5,), chunks=(2,), dtype="f4", fill_value=np.nan, zarr_format=2)
    v2[:3] = [1, 2, 3]
    for copied in (
        oxzarr.from_array(tmp_path / "copy", data=v2),
        oxzarr.array(v2, store=tmp_path / "array_copy"),
    ):
        assert (copied.metadata.zarr_format, copied.chunks) == (2, (2,))
        assert np.isnan(copied.fill_value)
        assert_same(copied[...], np.array([1, 2, 3, np.nan, np.nan], dtype="f4"))
    v3 = source("v3", shape=(8,), chunks=(2,), shards=(4,), dtype="i2", fill_value=7)
    for like in (oxzarr.empty_like, oxzarr.full_like):
        made = like(v3, store=tmp_path / like.__name__)
        assert (made.fill_value, made.chunks, made.shards) == (7, (2,), (4,)), like
    # None given is a value, as zarr-python's full_like takes it: the data type's default.
    made = oxzarr.full_like(v3, fill_value=None, store=tmp_path / "full_none")
    theirs = zarr.full_like(v3, fill_value=None, store=tmp_path / "full_none_zarr")
    assert made.fill_value == theirs.fill_value == 0 and made[...].tolist() == [0] * 8
    made = oxzarr.empty_like(v2, store=tmp_path / "empty_v2")
    assert made.metadata.zarr_format == 2 and np.isnan(made.fill_value)


def test_zarr_version_and_unknown_keywords(tmp_path: Path) -> None:
    # zarr-python's older name for zarr_format is taken (with its deprecation warning); a
    # misspelt keyword is refused rather than dropped.
    with pytest.warns(DeprecationWarning, match="zarr_version"):
        oxzarr.group(tmp_path / "g", zarr_version=2)
    with pytest.warns(DeprecationWarning):
        oxzarr.open_group(tmp_path / "h", mode="w", zarr_version=2)
    with pytest.warns(DeprecationWarning):
        oxzarr.save(tmp_path / "s", np.arange(3), zarr_version=2)
    assert sorted(p.name for p in (tmp_path / "g").iterdir()) == [".zgroup"]
    assert sorted(p.name for p in (tmp_path / "h").iterdir()) == [".zgroup"]
    saved = oxzarr.open(tmp_path / "s", mode="r")
    assert isinstance(saved, oxzarr.Array) and saved.metadata.zarr_format == 2
    for call in (
        lambda: oxzarr.open_group(tmp_path / "x", mode="w", zarr_fromat=2),
        lambda: oxzarr.group(tmp_path / "x", atributes={}),
        lambda: oxzarr.open(tmp_path / "x", mode="w", atributes={}),
    ):
        with pytest.raises(TypeError, match="unexpected keyword"):
            call()
    with pytest.raises(ValueError, match="differ"):
        oxzarr.open_group(tmp_path / "x", zarr_format=3, zarr_version=2)


def test_mode_w_minus_refuses_any_data_there(tmp_path: Path) -> None:
    # As zarr-python: chunks left without metadata would read as the new array's values.
    left = zarr.create_array(tmp_path / "a", shape=(4,), chunks=(2,), dtype="i4")
    left[:] = 7
    (tmp_path / "a" / "zarr.json").unlink()
    with pytest.raises(FileExistsError, match="already holds data"):
        oxzarr.open_array(tmp_path / "a", mode="w-", shape=(4,), chunks=(2,), dtype="i4")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        oxzarr.open_group(tmp_path / "b", mode="w-")
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "zarr.json").write_text("{not json")
    with pytest.raises(FileExistsError):
        oxzarr.open_group(tmp_path / "c", mode="w-")
    assert oxzarr.open_group(tmp_path / "d", mode="w-").path == ""


def test_open_consolidated_takes_the_mode(tmp_path: Path) -> None:
    oxzarr.open_group(tmp_path, mode="w").create_array("a", shape=(2,), dtype="i4")
    oxzarr.consolidate_metadata(tmp_path)
    assert list(oxzarr.open_consolidated(tmp_path, mode="r").keys()) == ["a"]
    # "w" starts an empty group, as zarr-python's does.
    assert list(oxzarr.open_consolidated(tmp_path, mode="w").keys()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["zarr.json"]
    # "a" creates a missing group, as zarr-python's does; a group there without consolidated
    # metadata is refused.
    made = oxzarr.open_consolidated(tmp_path / "none", mode="a")
    assert (made.path, list(made.keys())) == ("", [])
    assert oxzarr.open_group(tmp_path, path="new", mode="a", use_consolidated=True).path == "new"
    with pytest.raises(NodeNotFoundError, match="no consolidated metadata"):
        oxzarr.open_consolidated(tmp_path / "none", mode="a")
    with pytest.raises(GroupNotFoundError):
        oxzarr.open_consolidated(tmp_path / "other", mode="r+")


def test_open_passes_use_consolidated_on_to_groups(tmp_path: Path) -> None:
    g = oxzarr.open_group(tmp_path / "g", mode="w")
    g.create_array("old", shape=(2,), dtype="i1")
    oxzarr.consolidate_metadata(tmp_path / "g")
    g.create_array("new", shape=(2,), dtype="i1")
    opened = oxzarr.open(tmp_path / "g", mode="r", use_consolidated=False)
    assert sorted(opened.keys()) == ["new", "old"]
    assert sorted(oxzarr.open(tmp_path / "g", mode="r").keys()) == ["old"]
    oxzarr.open_group(tmp_path / "plain", mode="w")
    with pytest.raises(NodeNotFoundError, match="no consolidated metadata"):
        oxzarr.open(tmp_path / "plain", mode="r", use_consolidated=True)


def test_open_with_a_shape_refuses_a_group(tmp_path: Path) -> None:
    oxzarr.open_group(tmp_path, mode="w").create_group("g")
    with pytest.raises(ContainsGroupError, match="a group exists at 'g'"):
        oxzarr.open(tmp_path, path="g", mode="a", shape=(9,), dtype="f4")


def test_v2_consolidated_metadata_beside_a_v3_group(tmp_path: Path) -> None:
    """Asked for v2, the group's .zmetadata is found though a v3 zarr.json lies beside it, as
    zarr-python finds it."""
    g = zarr.open_group(tmp_path, mode="w", zarr_format=2)
    g.create_array("a", shape=(2,), dtype="i1")
    zarr.consolidate_metadata(tmp_path)
    g.create_array("b", shape=(2,), dtype="i1")  # after consolidating
    oxzarr.open_group(tmp_path / "v3", mode="w")
    (tmp_path / "v3" / "zarr.json").rename(tmp_path / "zarr.json")
    for use_consolidated, keys in ((None, ["a"]), (True, ["a"]), (False, ["a", "b"])):
        opened = oxzarr.open_group(
            tmp_path, mode="r", zarr_format=2, use_consolidated=use_consolidated
        )
        assert sorted(opened.keys()) == keys
    assert oxzarr.open_group(tmp_path, mode="r").zarr_format == 3


@pytest.mark.parametrize("lib", [oxzarr, zarr])
def test_consolidating_a_group_of_the_other_format(tmp_path: Path, lib: ModuleType) -> None:
    oxzarr.open_group(tmp_path, mode="w", zarr_format=2).create_array("a", shape=(2,), dtype="i4")
    with pytest.raises(FileNotFoundError):
        lib.consolidate_metadata(tmp_path, zarr_format=3)
    assert not (tmp_path / "zarr.json").exists()
    assert lib.consolidate_metadata(tmp_path, zarr_format=2).metadata is not None
    assert (tmp_path / ".zmetadata").exists()


def test_open_hands_an_existing_array_its_keywords(tmp_path: Path) -> None:
    # As zarr-python's open: keywords go to the node found, so an array's are not refused
    # for not being a group's.
    oxzarr.create_array(tmp_path / "a", shape=(2,), dtype="i4")
    opened = oxzarr.open(tmp_path / "a", mode="r+", config={"write_empty_chunks": True})
    assert isinstance(opened, oxzarr.Array)
    oxzarr.open_group(tmp_path / "g", mode="w")
    with pytest.raises(TypeError, match="'config'"):
        oxzarr.open(tmp_path / "g", config={"write_empty_chunks": True})


def test_node_paths_as_zarr_python_takes_them(tmp_path: Path) -> None:
    """Text, pathlib paths and ASCII bytes, with '\\' read as '/'."""
    oxzarr.create_group(tmp_path).create_group("a").create_group("b")
    for path in (Path("a/b"), b"a/b", "a\\b", "/a/b/"):
        assert oxzarr.open_group(tmp_path, path=path, mode="r").path == "a/b"
    z = oxzarr.zeros((2,), store=tmp_path, path=b"z")
    assert oxzarr.open_array(tmp_path, path=Path("z")).path == z.path == "z"
    with pytest.raises(TypeError, match="a node path is text, not int"):
        oxzarr.open_group(tmp_path, path=5)  # type: ignore[arg-type]
    # A group's members by the same rule.
    g = oxzarr.open_group(tmp_path)
    assert g["a\\b"].path == "a/b" and "a\\b" in g and g.get("a\\c") is None
    assert g.create_group("c\\d").path == g.require_group("c\\d").path == "c/d"
    assert g.require_array("c\\e", shape=(2,), dtype="i1").path == "c/e"
    del g["c\\e"]
    assert sorted(g["c"].keys()) == ["d"]


def test_file_urls_take_fsspecs_auto_mkdir(tmp_path: Path) -> None:
    """zarr-python needs it to create an array at a file:// URL; oxzarr makes directories
    as it writes."""
    url = f"file://{tmp_path}/new/a.zarr"
    a = oxzarr.create_array(url, shape=(3,), dtype="i4", storage_options={"auto_mkdir": True})
    a[...] = [1, 2, 3]
    assert_same(oxzarr.open_array(tmp_path / "new" / "a.zarr")[...], np.array([1, 2, 3], "i4"))
    with pytest.raises(ValueError, match="auto_mkdir only"):
        oxzarr.open_array(url, storage_options={"anon": True})


def test_a_folder_named_with_a_backslash_is_left_out_of_listings(tmp_path: Path) -> None:
    """'\\' is a plain character in a Linux file name (a folder unzipped from Windows), but no
    store key: the folder is left out, as zarr-python leaves out what is not Zarr."""
    g = oxzarr.create_group(tmp_path / "data.zarr")
    g.create_array("temperature", shape=(2,), dtype="f4")
    (tmp_path / "data.zarr" / "Backup\\old").mkdir()
    g = oxzarr.open_group(tmp_path / "data.zarr", mode="r")
    assert list(g.keys()) == ["temperature"]
    assert "temperature" in g.tree()
    oxzarr.consolidate_metadata(tmp_path / "data.zarr")
    assert list(oxzarr.open_group(tmp_path / "data.zarr", mode="r").keys()) == ["temperature"]


def test_the_older_creation_functions_take_zarr_python_2_chunks(tmp_path: Path) -> None:
    # zarr-python keeps zarr 2's forms in create, zeros, full and open_array: False for one
    # chunk, a short tuple (the other dimensions whole), dask's chunks (their first sizes,
    # as in zeros(shape=x.shape, chunks=x.chunks)); create_array takes none of them.
    dask_chunks = ((2, 2, 1), (3, 3, 1))
    cases = [
        (lambda lib, p: lib.zeros((5, 7), chunks=False, store=p), (5, 7)),
        (lambda lib, p: lib.create((5, 7), chunks=(3,), store=p), (3, 7)),
        (lambda lib, p: lib.full((5, 7), 1, chunks=dask_chunks, store=p), (2, 3)),
        (
            lambda lib, p: lib.open_array(p, mode="w", shape=(5, 7), chunks=dask_chunks),
            (2, 3),
        ),
    ]
    for i, (make, chunks) in enumerate(cases):
        for lib in (oxzarr, zarr):
            assert make(lib, tmp_path / f"{lib.__name__}{i}").chunks == chunks, (i, lib)
    for lib in (oxzarr, zarr):
        with pytest.raises(TypeError):
            lib.create_array(
                tmp_path / f"{lib.__name__}", shape=(5, 7), dtype="i4", chunks=dask_chunks
            )


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_like_functions_given_another_dtype_take_its_codecs(
    tmp_path: Path, zarr_format: int
) -> None:
    # The source's serializer and filters work on its own dtype (vlen-utf8 on text, delta
    # on numbers): they were copied anyway, and the new array could not be made.
    import numcodecs

    text = oxzarr.create_array(tmp_path / "t", shape=(3,), dtype=str, zarr_format=zarr_format)
    numbers = oxzarr.create_array(
        tmp_path / "n",
        shape=(3,),
        dtype="f4",
        zarr_format=zarr_format,
        filters=[numcodecs.Delta(dtype="f4")] if zarr_format == 2 else None,
    )
    for i, (source, dtype, expected) in enumerate(
        ((text, "f8", [0.0] * 3), (text, "S3", [b"0"] * 3), (numbers, "i1", [0] * 3))
    ):
        made = oxzarr.zeros_like(source, dtype=dtype, store=tmp_path / f"like{i}")
        assert made.dtype == np.dtype(dtype) and made.zarr_format == zarr_format
        assert made[...].tolist() == expected
        assert zarr.open_array(tmp_path / f"like{i}", mode="r")[...].tolist() == expected
    # The same dtype keeps them.
    same = oxzarr.zeros_like(numbers, dtype="f4", store=tmp_path / "same")
    assert same.filters == numbers.filters


def test_copies_given_zarr_format_none_keep_the_source_format_and_settings(
    tmp_path: Path,
) -> None:
    # zarr_format=None is "the source's format" (zarr-python's reading): given explicitly, it
    # replaced the source's format, so the copy was made in the default format (v3) without
    # the source's shards, codecs and dimension names.
    v3 = oxzarr.create_array(
        tmp_path / "v3",
        shape=(8, 8),
        chunks=(2, 2),
        shards=(4, 4),
        dtype="i2",
        compressors=None,
        dimension_names=["y", "x"],
    )
    v3[...] = 3
    v2 = oxzarr.create_array(
        tmp_path / "v2", shape=(8, 8), chunks=(2, 2), dtype="i2", zarr_format=2, compressors=None
    )
    for name, make in {
        "from_array": lambda src, p: oxzarr.from_array(p, data=src, zarr_format=None),
        "array": lambda src, p: oxzarr.array(src, store=p, zarr_format=None),
        "full_like": lambda src, p: oxzarr.full_like(src, 3, store=p, zarr_format=None),
    }.items():
        copy = make(v3, tmp_path / f"{name}3")
        assert (copy.zarr_format, copy.chunks, copy.shards) == (3, (2, 2), (4, 4)), name
        assert copy.compressors == () and copy[...].tolist() == v3[...].tolist(), name
        if name != "full_like":
            # As zarr-python's: its *_like functions do not take dimension names.
            assert copy.metadata.dimension_names == ("y", "x"), name
        copy = make(v2, tmp_path / f"{name}2")
        assert (copy.zarr_format, copy.shards, copy.compressors) == (2, None, ()), name


def test_from_array_takes_shards_keep_as_its_default(tmp_path: Path) -> None:
    # shards="keep" is from_array's default in zarr-python; given explicitly it was refused
    # ("shards must be an integer or a sequence of integers, not 'keep'").
    sharded = oxzarr.create_array(
        tmp_path / "src", shape=(8, 8), chunks=(2, 2), shards=(4, 4), dtype="i2"
    )
    sharded[...] = 1
    theirs = zarr.create_array({}, shape=(8, 8), chunks=(2, 2), shards=(4, 4), dtype="i2")
    theirs[...] = 1
    for i, source in enumerate((sharded, theirs)):
        copy = oxzarr.from_array(tmp_path / f"a{i}", data=source, chunks="keep", shards="keep")
        assert (copy.chunks, copy.shards, copy[...].sum()) == ((2, 2), (4, 4), 64)
    # Into Zarr v2, which has no shards, and from numpy data: none.
    v2 = oxzarr.from_array(tmp_path / "v2", data=sharded, shards="keep", zarr_format=2)
    assert (v2.zarr_format, v2.chunks, v2.shards) == (2, (2, 2), None)
    ones = np.ones((8, 8), "i2")
    made = oxzarr.from_array(tmp_path / "np", data=ones, chunks="keep", shards="keep")
    expected = zarr.from_array({}, data=ones, chunks="keep", shards="keep")
    assert (made.chunks, made.shards) == (expected.chunks, expected.shards) == ((8, 8), None)


def test_codec_settings_are_taken_as_given_or_refused(tmp_path: Path) -> None:
    import zarr.codecs as zc

    from oxzarr.codecs import ShardingCodec, TransposeCodec

    # Non-integers were truncated (1.7 -> 1) or read digit by digit ("10" -> (1, 0)).
    for order in ([1.7, 0.2], "10", [True, False]):
        with pytest.raises(TypeError, match="transpose order must be integers"):
            TransposeCodec(order=order)
    with pytest.raises(TypeError, match="chunk_shape must be integers"):
        ShardingCodec(chunk_shape=[2.5, 5])
    assert TransposeCodec(order=np.array([1, 0])).order == (1, 0)
    # zarr-python's v2 arrays take no serializer: a byte order or sharding asked for was
    # dropped without a word.
    for serializer in (zc.BytesCodec(endian="big"), zc.ShardingCodec(chunk_shape=(2,))):
        with pytest.raises(ValueError, match="take no serializer"):
            oxzarr.create_array(
                tmp_path / "v2", shape=(4,), dtype="i4", zarr_format=2, serializer=serializer
            )
    # A blosc inside zarr-python's ShardingCodec is fitted to the dtype as one outside is
    # (its metadata holds zarr-python's placeholders, typesize 1 and bitshuffle).
    sharding = zc.ShardingCodec(chunk_shape=(10,), codecs=[zc.BytesCodec(), zc.BloscCodec()])
    for lib in (oxzarr, zarr):
        lib.create_array(tmp_path / lib.__name__, shape=(100,), dtype="f8", serializer=sharding)
    documents = [
        json.loads((tmp_path / lib.__name__ / "zarr.json").read_text()) for lib in (oxzarr, zarr)
    ]
    ours, theirs = (d["codecs"][0]["configuration"]["codecs"][1] for d in documents)
    assert ours == theirs and ours["configuration"]["typesize"] == 8, ours


def test_zarr_python_2_keywords_in_the_functions_that_hand_them_to_create(
    tmp_path: Path,
) -> None:
    # zarr-python's zeros, full, array, *_like and open_array pass their keywords to its
    # create(), and its groups take compressor=: code written for zarr-python 2 passes
    # compressor=, dimension_separator=, write_empty_chunks=, synchronizer=.
    import numcodecs

    zlib = numcodecs.Zlib(level=2)
    source = oxzarr.create_array(tmp_path / "src", shape=(4,), dtype="i4", zarr_format=2)
    makes = {
        "zeros": lambda lib, p: lib.zeros((4,), store=p, zarr_format=2, compressor=zlib),
        "ones": lambda lib, p: lib.ones(
            (4,), store=p, zarr_format=2, dimension_separator="/", chunks=(2,)
        ),
        "full": lambda lib, p: lib.full((4,), 3, store=p, write_empty_chunks=True),
        "array": lambda lib, p: lib.array(
            np.arange(4), store=p, zarr_format=2, compressor=None, synchronizer=None
        ),
        "zeros_like": lambda lib, p: lib.zeros_like(
            lib.open_array(tmp_path / "src"), store=p, zarr_format=2, compressor=zlib
        ),
        "open_array": lambda lib, p: lib.open_array(
            p, mode="w", shape=(4,), dtype="i2", write_empty_chunks=False
        ),
        "create_dataset": lambda lib, p: lib.open_group(p, mode="w", zarr_format=2).create_dataset(
            "d", shape=(4,), dtype="i4", compressor=zlib
        ),
        "Group.create_array": lambda lib, p: lib.open_group(p, mode="w").create_array(
            "d", shape=(4,), dtype="i4", compressor=None
        ),
    }
    assert source.zarr_format == 2
    for name, make in makes.items():
        with warnings.catch_warnings():
            # Both libraries' deprecation of create_dataset, and zarr-python's of others.
            warnings.simplefilter("ignore", DeprecationWarning)
            made = {oxzarr: make(oxzarr, tmp_path / f"{name}-oxzarr")}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # zarr-python's deprecation of some of them
            made[zarr] = make(zarr, tmp_path / f"{name}-zarr")
        assert made[oxzarr][...].tolist() == made[zarr][...].tolist(), name
        # The documents written, byte for byte.
        documents = [
            sorted(
                (str(f.relative_to(tmp_path / f"{name}-{lib.__name__}")), f.read_bytes())
                for f in (tmp_path / f"{name}-{lib.__name__}").rglob("*")
                if f.name in ("zarr.json", ".zarray")
            )
            for lib in (oxzarr, zarr)
        ]
        assert documents[0] == documents[1] and documents[0], name
    # Settings create_array has in other forms keep the source's layout.
    sharded = oxzarr.create_array(
        tmp_path / "sharded", shape=(20,), chunks=(5,), shards=(10,), dtype="i4"
    )
    like = oxzarr.zeros_like(sharded, store=tmp_path / "like", write_empty_chunks=True)
    assert (like.shards, like.chunks, like.config.write_empty_chunks) == ((10,), (5,), True)


@pytest.mark.parametrize(
    ("shape", "names"),
    [((), []), ((), ()), ((), None), ((3,), []), ((3,), [None]), ((3, 2), ["y", None])],
)
def test_no_dimension_names_are_left_out_as_zarr_python_leaves_them(
    tmp_path: Path, shape: tuple[int, ...], names: list[str | None] | tuple[()] | None
) -> None:
    # An empty list was written as "dimension_names": [] (a 1-d array refused it), where
    # zarr-python writes none, as for None: the documents are now the same, byte for byte.
    for lib in (oxzarr, zarr):
        lib.create_array(tmp_path / lib.__name__, shape=shape, dtype="f4", dimension_names=names)
    ours, theirs = ((tmp_path / n / "zarr.json").read_bytes() for n in ("oxzarr", "zarr"))
    assert ours == theirs
    expected = tuple(names) if names else None
    assert oxzarr.open_array(tmp_path / "oxzarr").metadata.dimension_names == expected


def test_dimension_names_that_are_not_text_are_a_type_error(tmp_path: Path) -> None:
    for lib in (oxzarr, zarr):
        with pytest.raises(TypeError):
            lib.create_array(
                tmp_path / lib.__name__, shape=(1, 2), dtype="i1", dimension_names=[1, 2]
            )
    assert not (tmp_path / "oxzarr").exists()


def test_zarr_pythons_codec_names_and_enums(tmp_path: Path) -> None:
    # As zarr-python's user guide writes them: serializer=VLenUTF8Codec(), blosc settings as
    # enum members (oxzarr's, or zarr-python's own, whose str() is not their value).
    import zarr.codecs as zc

    from oxzarr import codecs as oc

    ways = {
        "oxzarr": (oxzarr, oc.VLenUTF8Codec(), oc.BloscCodec, oc.BloscCname, oc.BloscShuffle),
        "mixed": (oxzarr, zc.VLenUTF8Codec(), oc.BloscCodec, zc.BloscCname, zc.BloscShuffle),
        "zarr": (zarr, zc.VLenUTF8Codec(), zc.BloscCodec, zc.BloscCname, zc.BloscShuffle),
    }
    made = {
        name: lib.create_array(
            tmp_path / name,
            shape=(3,),
            dtype=str,
            serializer=serializer,
            compressors=blosc(cname=cname.lz4, shuffle=shuffle.shuffle),
        )
        for name, (lib, serializer, blosc, cname, shuffle) in ways.items()
    }
    documents = {n: (tmp_path / n / "zarr.json").read_bytes() for n in made}
    assert documents["oxzarr"] == documents["mixed"] == documents["zarr"]
    made["oxzarr"][...] = ["a", "bc", ""]
    assert zarr.open_array(tmp_path / "oxzarr", mode="r")[...].tolist() == ["a", "bc", ""]
    assert made["oxzarr"].serializer == oc.VLenUTF8Codec()
    assert (
        oc.ShardingCodec(
            chunk_shape=(2,), index_location=oc.ShardingCodecIndexLocation.start
        ).to_dict()["configuration"]["index_location"]
        == "start"
    )
    assert oc.BytesCodec(endian=oc.Endian.big).to_dict() == {
        "name": "bytes",
        "configuration": {"endian": "big"},
    }


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_data_the_new_array_cannot_hold_leaves_the_store_as_it_was(
    tmp_path: Path, zarr_format: int
) -> None:
    """create_array(data=...) made the array (overwrite=True deleting the old one) before
    finding the data did not fit: the old values were lost, an empty array left."""
    path = tmp_path / "a.zarr"
    old = np.array([7, 8], dtype="i4")
    oxzarr.create_array(path, data=old, zarr_format=zarr_format)
    with pytest.raises(ValueError, match="broadcast"):
        oxzarr.create_array(
            path, data=[1, 2, 3], shape=(5,), overwrite=True, zarr_format=zarr_format
        )
    with pytest.raises(ValueError, match="invalid literal"):
        oxzarr.create_array(
            path, data=["a", "b"], dtype="i4", overwrite=True, zarr_format=zarr_format
        )
    group = oxzarr.open_group(tmp_path / "g.zarr", mode="w", zarr_format=zarr_format)
    group["b"] = old
    with pytest.raises(ValueError, match="broadcast"):
        group.create_array("b", data=[1, 2, 3], shape=(2,), overwrite=True)
    with pytest.raises(ValueError, match="broadcast"):
        oxzarr.open_array(
            tmp_path / "new.zarr", mode="w", data=[1, 2, 3], shape=(2,), zarr_format=zarr_format
        )
    assert_same(oxzarr.open_array(path)[...], old)
    assert_same(zarr.open_array(path)[...], old)
    assert_same(group["b"][...], old)
    assert not (tmp_path / "new.zarr").exists()
    # Text into a bytes array is refused as the values are readied too.
    texts = tmp_path / "bytes.zarr"
    oxzarr.create_array(texts, data=np.array([b"old1", b"old2"], dtype=object), dtype=bytes)
    with pytest.raises(TypeError, match="takes bytes, not str"):
        oxzarr.create_array(
            texts, data=np.array([b"a", "x"], dtype=object), dtype=bytes, overwrite=True
        )
    assert oxzarr.open_array(texts)[...].tolist() == [b"old1", b"old2"]
    # What fits is written as before: a list cast to the dtype asked for, broadcast rows.
    written = oxzarr.create_array(path, data=[[1, 2]], shape=(3, 2), dtype="u1", overwrite=True)
    assert_same(written[...], np.array([[1, 2]] * 3, dtype="u1"))


def test_data_given_as_python_values_is_cast_as_numpy_assigns_it(tmp_path: Path) -> None:
    # A list went through np.asarray first: 300 into uint8 was stored as 44, NaN into int32
    # as its minimum; numpy and zarr-python refuse both. create() takes data= too.
    g = oxzarr.open_group(tmp_path / "g.zarr", mode="w")
    with pytest.raises(OverflowError):
        g.create_array("x", data=[1, 2, 300], dtype="u1")
    with pytest.raises(ValueError, match="NaN"):
        oxzarr.create_array(tmp_path / "y.zarr", data=[1.0, float("nan")], dtype="i4")
    assert "x" not in g and not (tmp_path / "y.zarr").exists()
    assert g.create_array("z", data=[1, 2, 255], dtype="u1")[...].tolist() == [1, 2, 255]
    made = oxzarr.create(shape=(3,), dtype="i2", store=tmp_path / "c.zarr", data=np.arange(3))
    assert made[...].tolist() == [0, 1, 2]


def test_use_consolidated_naming_a_key(tmp_path: Path) -> None:
    """zarr-python takes a string as the key of v2 consolidated metadata: its default reads
    as True; another key is refused (it was read as '.zmetadata'); v3 takes none."""
    path = tmp_path / "g.zarr"
    oxzarr.create_group(path, zarr_format=2).create_array("a", shape=(2,), dtype="i1")
    oxzarr.consolidate_metadata(path)
    assert oxzarr.open_group(path, mode="r", use_consolidated=".zmetadata").is_consolidated
    with pytest.raises(ValueError, match=re.escape("use_consolidated='.zmeta2'")):
        oxzarr.open_group(path, mode="r", use_consolidated=".zmeta2")
    with pytest.raises(TypeError, match="bool or None for Zarr format 3"):
        oxzarr.open_group(path, mode="r", use_consolidated=".zmetadata", zarr_format=3)


def test_group_open_and_array_open_read_a_read_only_store(tmp_path: Path) -> None:
    """They opened with mode 'r+', which a read-only store object refused; zarr-python reads
    it (oxzarr's own read-only zip too)."""
    path = tmp_path / "g.zarr"
    oxzarr.create_group(path).create_array("a", shape=(3,), dtype="i4")[...] = 5
    for store in (oxzarr.storage.LocalStore, zarr.storage.LocalStore):
        group = oxzarr.Group.open(store(path, read_only=True))
        assert group.read_only and list(group.keys()) == ["a"]
        array = oxzarr.Array.open(store(path / "a", read_only=True))
        assert array.read_only and array[...].tolist() == [5, 5, 5]
    with oxzarr.storage.ZipStore(tmp_path / "g.zip", mode="w") as zipped:
        oxzarr.group(zipped)
    assert oxzarr.Group.open(oxzarr.storage.ZipStore(tmp_path / "g.zip")).read_only
    # A writable store, or a path, opens for writing as before.
    assert not oxzarr.Group.open(path).read_only
    assert not oxzarr.Array.open(oxzarr.storage.LocalStore(path / "a")).read_only


def test_a_tilde_before_a_name_is_a_directory_of_that_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every path had "~name" expanded as a user's home: "~games/x.zarr" was written to
    # /usr/games/x.zarr, and "~nosuchuser/x.zarr" raised RuntimeError ("Could not determine
    # home directory"). zarr-python takes it as a directory below the working one; only "~"
    # and "~/..." are the home directory, as oxzarr's documentation says.
    from oxzarr.convert import convert

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    # A user that does not exist first: the old expansion failed there before writing to
    # another user's home below.
    for user in ("nosuchuser", "games"):
        oxzarr.create_array(f"~{user}/x.zarr", shape=(2,), dtype="i4")[...] = [1, 2]
        assert zarr.open_array(tmp_path / f"~{user}" / "x.zarr")[...].tolist() == [1, 2]
        assert LocalStore(f"~{user}/x.zarr").root == tmp_path / f"~{user}" / "x.zarr"
        with ZipStore(f"~{user}/d.zip", mode="w") as zipped:
            oxzarr.create_array(zipped, shape=(2,), dtype="i4")[...] = [3, 4]
        assert (tmp_path / f"~{user}" / "d.zip").is_file()
        assert oxzarr.open_array(f"~{user}/d.zip")[...].tolist() == [3, 4]
        convert(f"~{user}/x.zarr", f"~{user}/copy.zarr")
        assert zarr.open_array(tmp_path / f"~{user}" / "copy.zarr")[...].tolist() == [1, 2]
    oxzarr.create_array("~/x.zarr", shape=(1,), dtype="i4")
    assert (tmp_path / "home" / "x.zarr" / "zarr.json").is_file()
    assert not (tmp_path / "~").exists()


def test_counting_store_views_and_what_it_counts(tmp_path: Path) -> None:
    """with_read_only(False) of a read-only CountingStore stayed read-only; a path or
    zarr-python's store to count was an AttributeError."""
    path = tmp_path / "a.zarr"
    counted = CountingStore(LocalStore(path, read_only=True))
    writable = counted.with_read_only(False)
    assert not writable.read_only
    oxzarr.create_array(writable, shape=(2,), dtype="i1")[...] = 3
    assert counted.with_read_only(True) is counted and counted.read_only
    for store in (path, str(path), zarr.storage.LocalStore(path, read_only=True)):
        seen = CountingStore(store)
        assert oxzarr.open_array(seen, mode="r")[...].tolist() == [3, 3]
        assert seen.requests > 0


def test_objects_that_are_not_text_are_refused_as_data(tmp_path: Path) -> None:
    """Numpy objects given as data with no dtype were stored as the text of each (str() of
    a dict, of None, of a generator numpy made a 0-d array of; bytes decoded); zarr-python
    refuses objects. Strings stay text, and a dtype given says what the objects are."""
    group = oxzarr.open_group(tmp_path / "g.zarr", mode="w")
    for make in (
        lambda: group.__setitem__("dict", {"a": 1}),
        lambda: oxzarr.save_array(tmp_path / "none.zarr", None),
        lambda: oxzarr.array(i for i in range(3)),
        lambda: oxzarr.array(np.array(["a", 1], dtype=object)),
        lambda: oxzarr.array(np.array([b"a", b"bc"], dtype=object)),
        # The *_like functions made a text array of them: full_like stored the text "b'bb'"
        # as the fill value, and the source's own values could not be written into it.
        lambda: oxzarr.zeros_like(np.array([b"a", b"bc"], dtype=object)),
        lambda: oxzarr.full_like(np.array([b"a", b"bc"], dtype=object), fill_value=b"bb"),
        lambda: group.empty_like(name="empty", data=np.array([b"a", None], dtype=object)),
    ):
        with pytest.raises(ValueError, match="cannot tell the data type of numpy objects"):
            make()
    assert list(group.keys()) == []
    like = oxzarr.zeros_like(np.array([b"a", b"bc"], dtype=object), dtype=bytes)
    assert like.dtype == np.dtype(object) and like.shape == (2,)
    # (Strings are text; zeros of text are the text "0", as zarr-python's are.)
    assert oxzarr.zeros_like(np.array(["a"], dtype=object))[...].tolist() == ["0"]
    assert oxzarr.array(np.array(["a", "bc"], dtype=object))[...].tolist() == ["a", "bc"]
    raw = oxzarr.array(np.array([b"a", b"bc"], dtype=object), dtype=bytes)
    assert raw[...].tolist() == [b"a", b"bc"]


def test_zstd_levels_past_22_are_refused_in_new_arrays(tmp_path: Path) -> None:
    """A v3 zstd level past 22 was written, and zarr-python could not open the array (it
    refuses them); arrays with such levels still open (numcodecs writes any level)."""
    for compressors in (
        {"name": "zstd", "configuration": {"level": 1000, "checksum": False}},
        oxzarr.codecs.ZstdCodec(level=23),
    ):
        with pytest.raises(ValueError, match=r"zstd level \d+ is past 22"):
            oxzarr.create_array(
                tmp_path / "a.zarr", shape=(4,), dtype="i4", compressors=compressors
            )
        assert not (tmp_path / "a.zarr").exists()
    with pytest.raises(ValueError, match="zstd level 23"):
        oxzarr.create_array(
            tmp_path / "s.zarr",
            shape=(4,),
            dtype="i4",
            chunks=(2,),
            shards=(4,),
            compressors=oxzarr.codecs.ZstdCodec(level=23),
        )
    a = oxzarr.create_array(
        tmp_path / "b.zarr", shape=(4,), dtype="i4", compressors=oxzarr.codecs.ZstdCodec(level=22)
    )
    a[...] = 1
    assert zarr.open_array(tmp_path / "b.zarr", mode="r")[...].tolist() == [1, 1, 1, 1]
    doc = json.loads((tmp_path / "b.zarr" / "zarr.json").read_text())
    doc["codecs"][1]["configuration"]["level"] = 23
    (tmp_path / "b.zarr" / "zarr.json").write_text(json.dumps(doc))
    assert oxzarr.open_array(tmp_path / "b.zarr")[...].tolist() == [1, 1, 1, 1]


def test_a_store_takes_bytes_and_buffers_and_refuses_numbers(tmp_path: Path) -> None:
    """set(5) stored five zero bytes (bytes(5)); a zarr-python Buffer failed with an error
    about slices. zarr-python refuses all but its Buffers."""
    from zarr.core.buffer import cpu

    for store in (oxzarr.storage.MemoryStore(), LocalStore(tmp_path / "s")):
        for value in (5, np.int64(3), True, 1.5, "text"):
            with pytest.raises(TypeError, match=f"'k' must be bytes.*not {type(value).__name__}"):
                store.set("k", value)
        assert not store.exists("k")
        store.set("k", cpu.Buffer.from_bytes(b"hi"))
        assert store.get("k") == b"hi"
        store.set("k", bytearray(b"ab"))
        assert store.get("k") == b"ab"
        store.set("k", np.array([1, 2], dtype="<u2"))
        assert store.get("k") == b"\x01\x00\x02\x00"


def test_with_read_only_with_no_argument_is_writable_as_in_zarr_python(tmp_path: Path) -> None:
    """oxzarr's default was True: code written for zarr-python, asking for a writable copy,
    got a read-only one."""
    for theirs, ours in [
        (zarr.storage.LocalStore(tmp_path, read_only=True), LocalStore(tmp_path, read_only=True)),
        (zarr.storage.MemoryStore(read_only=True), oxzarr.storage.MemoryStore(read_only=True)),
    ]:
        assert ours.with_read_only().read_only is theirs.with_read_only().read_only is False
        assert ours.with_read_only(True).read_only and theirs.with_read_only(True).read_only


def test_deleting_a_directory_of_a_local_store(tmp_path: Path) -> None:
    """delete("a") of a directory raised IsADirectoryError; zarr-python's LocalStore removes
    the directory, with what it holds."""
    from zarr.core.sync import sync

    for lib_store in (zarr.storage.LocalStore(tmp_path / "z"), LocalStore(tmp_path / "o")):
        root = Path(lib_store.root)
        for key in ("a/b", "a/c/d", "ab"):
            (root / key).parent.mkdir(parents=True, exist_ok=True)
            (root / key).write_bytes(b"1")
        if isinstance(lib_store, LocalStore):
            lib_store.delete("a")
        else:
            sync(lib_store.delete("a"))
        assert sorted(p.name for p in root.iterdir()) == ["ab"]


def test_subclasses_of_oxzarr_stores_are_refused() -> None:
    """The engine reads and writes oxzarr's stores itself: a subclass's own set (say, a log)
    was passed by without a word, and a store of its own making failed with an
    AttributeError about _core."""

    class Logging(oxzarr.storage.MemoryStore):
        def set(self, key: str, value: object) -> None:
            super().set(key, value)

    class Mine(oxzarr.storage.Store):
        def __init__(self) -> None:
            self.values: dict[str, bytes] = {}

    with pytest.raises(TypeError, match=r"Logging .*MemoryStore.*its own set"):
        oxzarr.create_array(Logging(), shape=(4,), dtype="i4")
    with pytest.raises(TypeError, match=r"Mine .*no engine store"):
        oxzarr.open_group(Mine(), mode="r")

    class Named(oxzarr.storage.MemoryStore):
        """Adds nothing the engine passes by."""

    oxzarr.create_array(Named(), shape=(4,), dtype="i4")[...] = 1


def test_a_closed_zip_store_is_read_only_and_pickles(tmp_path: Path) -> None:
    """Closed, a zip being written still said it was writable (open_group(mode="a") took
    it, then failed at the first write), and could not be pickled though it was complete."""
    path = tmp_path / "z.zip"
    with oxzarr.storage.ZipStore(path, mode="w") as store:
        a = oxzarr.create_array(store, shape=(3,), dtype="i1")
        a[...] = 1
        assert not store.read_only
    assert store.read_only and repr(store).endswith("mode='r')")
    with pytest.raises(ValueError, match="is closed: open it with mode='a'"):
        store.with_read_only(False)
    with pytest.raises(ValueError, match="read-only"):
        oxzarr.open_group(store, mode="a")
    assert pickle.loads(pickle.dumps(a))[...].tolist() == [1, 1, 1]


def test_from_array_overwriting_its_source_or_a_group_holding_it(tmp_path: Path) -> None:
    """The copy is made empty before the source is read (so that arrays larger than memory
    copy): overwriting the source's own place, or a group holding it, deleted the source
    first, and the copy held only fill values. Such a source is read first."""
    a = oxzarr.create_array(tmp_path / "a", shape=(20,), chunks=(5,), dtype="i4")
    a[...] = np.arange(20)
    rechunked = oxzarr.from_array(tmp_path / "a", data=a, overwrite=True, chunks=(10,))
    assert rechunked.chunks == (10,)
    assert_same(rechunked[...], np.arange(20, dtype="i4"))
    group = oxzarr.open_group(tmp_path / "g", mode="w")
    x = group.create_array("x", shape=(4,), dtype="i4")
    x[...] = 7
    assert oxzarr.from_array(tmp_path / "g", data=x, overwrite=True)[...].tolist() == [7] * 4


def test_from_array_overwriting_its_source_spelt_another_way(tmp_path: Path) -> None:
    # The source was recognised by its path as written: through "sub/../" or a symbolic link
    # to its directory, the copy emptied the source before reading it and held [0, 0, 0, 0].
    (tmp_path / "sub").mkdir()
    (tmp_path / "link").symlink_to(tmp_path)
    for spelling in (f"{tmp_path}/sub/../a.zarr", f"{tmp_path}/link/a.zarr"):
        a = oxzarr.create_array(
            tmp_path / "a.zarr", shape=(4,), chunks=(2,), dtype="i4", overwrite=True
        )
        a[...] = [1, 2, 3, 4]
        source = oxzarr.open_array(tmp_path / "a.zarr")
        copy = oxzarr.from_array(spelling, data=source, overwrite=True)
        assert copy[...].tolist() == [1, 2, 3, 4], spelling
        assert oxzarr.open_array(tmp_path / "a.zarr")[...].tolist() == [1, 2, 3, 4], spelling


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_arrays_made_from_0d_data_hold_it(tmp_path: Path, zarr_format: int) -> None:
    # A 0-d value of the array's dtype was made 1-d on its way to the write, which refuses a
    # sequence for one element: create_array(data=np.array(5)), array(np.float64(2.5)) and
    # from_array of a 0-d array all failed.
    made = {
        "create_array": lambda p: oxzarr.create_array(p, data=np.array(5), zarr_format=zarr_format),
        "array": lambda p: oxzarr.array(np.float64(2.5), store=p, zarr_format=zarr_format),
        "from_array": lambda p: oxzarr.from_array(p, data=np.array("hi"), zarr_format=zarr_format),
    }
    for name, make in made.items():
        a = make(tmp_path / name)
        theirs = zarr.open_array(tmp_path / name, mode="r")
        assert a.shape == theirs.shape == ()
        assert a[()] == theirs[()] == {"create_array": 5, "array": 2.5, "from_array": "hi"}[name]


def test_the_readme_first_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The README's first example made an array at "data.zarr" and then opened it with
    # open_group, which raised ContainsArrayError (zarr-python raises it too): each line of
    # it must run as written, in a directory of its own.
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    example = re.search(r"```python\n(.*?)```", readme, re.DOTALL)
    assert example is not None
    monkeypatch.chdir(tmp_path)
    exec(compile(example.group(1), "README.md", "exec"), {})
    assert oxzarr.open_group(tmp_path / "data.zarr")["t"].attrs["units"] == "m"
