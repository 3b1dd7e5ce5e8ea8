"""Data types beyond numbers: strings, bytes, datetimes, fixed-length bytes and text, records;
both formats, both directions with zarr-python."""

from __future__ import annotations

import json
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr

import oxzarr
from oxzarr._dtypes import STRING_DTYPE
from tests.conftest import assert_same


def values(dtype: Any) -> np.ndarray:
    n = 11
    dt = np.dtype(dtype)
    if dt.kind in "Mm":
        out = (np.arange(n) * 1000 - 3000).astype(dt)
        out[3] = np.array("NaT", dtype=dt)
        return out
    if dt.kind == "S":
        return np.array([b"", b"a", b"bc", b"abcde"] * 3, dtype=dt)[:n]
    if dt.kind == "U":
        return np.array(["", "é", "ab", "日本"] * 3, dtype=dt)[:n]
    if dt.kind == "V" and dt.fields is None:
        return np.frombuffer(bytes(range(n * dt.itemsize)), dtype=dt).copy()
    out = np.zeros(n, dtype=dt)
    out["a"] = np.arange(n)
    out["b"] = np.arange(n) / 4
    return out


FIXED = ["M8[s]", "M8[ns]", "m8[ms]", "S5", "U4", "V3", [("a", "<i4"), ("b", "<f8")]]


@pytest.mark.parametrize("dtype", FIXED, ids=str)
@pytest.mark.parametrize("zarr_format", [2, 3])
def test_fixed_size_types_both_ways(tmp_path: Path, dtype: Any, zarr_format: int) -> None:
    data = values(dtype)
    ours = oxzarr.create_array(
        tmp_path / "o.zarr", shape=data.shape, dtype=dtype, chunks=(4,), zarr_format=zarr_format
    )
    ours[...] = data
    assert_same(zarr.open_array(tmp_path / "o.zarr", mode="r")[...], data)
    theirs = zarr.create_array(
        tmp_path / "z.zarr", shape=data.shape, dtype=dtype, chunks=(4,), zarr_format=zarr_format
    )
    theirs[...] = data
    back = oxzarr.open_array(tmp_path / "z.zarr", mode="r")
    assert back.dtype == data.dtype
    assert_same(back[...], data)
    assert_same(back[2:9:3], data[2:9:3])


def test_big_endian_records_in_v2(tmp_path: Path) -> None:
    dtype = [("a", ">i4"), ("b", "<f8"), ("c", "|S2")]
    data = np.zeros(5, dtype=dtype)
    data["a"] = [1, -2, 3, -4, 5]
    data["b"] = [0.5, 1.5, 2.5, 3.5, 4.5]
    data["c"] = [b"x", b"yz", b"", b"q", b"rs"]
    z = zarr.create_array(tmp_path / "z.zarr", shape=(5,), dtype=dtype, chunks=(2,), zarr_format=2)
    z[...] = data
    back = oxzarr.open_array(tmp_path / "z.zarr", mode="r")[...]
    assert back["a"].tolist() == [1, -2, 3, -4, 5]
    assert back["b"].tolist() == [0.5, 1.5, 2.5, 3.5, 4.5]
    assert back["c"].tolist() == [b"x", b"yz", b"", b"q", b"rs"]


def test_big_endian_text_complex_and_records_of_them_in_v2_both_ways(tmp_path: Path) -> None:
    # Each unit of UTF-32 text and each half of a complex number is swapped on its own; in a
    # record they sit among fields of other widths and orders. A record's fill value is base64
    # of the element as stored (oxzarr wrote it in the machine's order, which zarr-python
    # read as other values).
    rec = np.dtype([("t", ">U3"), ("z", ">c8"), ("i", "<i2"), ("u", ">u4")])
    cases = [
        (np.dtype(">U4"), np.array(["", "ab", "héll", "日本語"] * 3, dtype=">U4"), "xy"),
        (np.dtype(">c16"), np.arange(12) * (1.5 - 2j), 3 - 1j),
        (rec, np.zeros(12, dtype=rec), np.array(("ab", 1 + 2j, -3, 4), dtype=rec)[()]),
    ]
    records = cases[2][1]
    records["t"] = ["ab", "héé", "", "日本"] * 3
    records["z"] = np.arange(12) * (0.5 + 1j)
    records["i"] = np.arange(12) - 6
    records["u"] = np.arange(12) * 100_000
    for i, (dtype, data, fill) in enumerate(cases):
        z = zarr.create_array(
            tmp_path / f"z{i}.zarr", shape=(14,), dtype=dtype, chunks=(4,), zarr_format=2,
            fill_value=fill,
        )  # fmt: skip
        z[:12] = data
        a = oxzarr.open_array(tmp_path / f"z{i}.zarr", mode="r")
        assert a.dtype == dtype
        assert a[...].tolist() == z[...].tolist()
        assert a[1:12:5].tolist() == data[1:12:5].tolist()
        ours = oxzarr.create_array(
            tmp_path / f"o{i}.zarr", shape=(14,), dtype=dtype, chunks=(4,), zarr_format=2,
            fill_value=fill,
        )  # fmt: skip
        ours[:12] = data
        back = zarr.open_array(tmp_path / f"o{i}.zarr", mode="r")
        assert back.dtype == dtype
        assert back[...].tolist() == z[...].tolist()


TEXT = ["", "a", "héllo", "日本語", "x" * 300, "two words"]


@pytest.mark.parametrize("zarr_format", [2, 3])
@pytest.mark.parametrize("chunks", [(3,), (4,), (100,)])
def test_strings_both_ways(tmp_path: Path, zarr_format: int, chunks: tuple[int]) -> None:
    data = np.array(TEXT * 3, dtype=STRING_DTYPE)
    ours = oxzarr.create_array(
        tmp_path / "o.zarr", shape=data.shape, dtype=str, chunks=chunks, zarr_format=zarr_format
    )
    ours[...] = data
    assert ours.dtype == STRING_DTYPE
    got = zarr.open_array(tmp_path / "o.zarr", mode="r")[...]
    assert got.tolist() == data.tolist()
    theirs = zarr.create_array(
        tmp_path / "z.zarr", shape=data.shape, dtype=str, chunks=chunks, zarr_format=zarr_format
    )
    theirs[...] = data
    back = oxzarr.open_array(tmp_path / "z.zarr", mode="r")
    assert back[...].tolist() == data.tolist()
    assert back[1:17:4].tolist() == data[1:17:4].tolist()
    assert back[5].item() == data[5]
    assert back.fill_value == ""


@pytest.mark.parametrize("zarr_format", [2, 3])
@pytest.mark.parametrize("dtype", ["str", "string", "U"])
def test_text_dtypes_by_name_are_variable_length(
    tmp_path: Path, zarr_format: int, dtype: str
) -> None:
    # zarr-python takes "str" and "string" as str; numpy reads "str" and "U" as a U of no
    # length, which, like an S of no length for bytes, asks for variable-length text.
    a = oxzarr.create_array(tmp_path / "o.zarr", shape=(6,), dtype=dtype, zarr_format=zarr_format)
    a[...] = TEXT
    assert a.dtype == STRING_DTYPE
    assert zarr.open_array(tmp_path / "o.zarr", mode="r")[...].tolist() == TEXT
    if dtype != "U":  # zarr-python refuses a U of no length
        zarr.create_array(tmp_path / "z.zarr", shape=(6,), dtype=dtype, zarr_format=zarr_format)
        name, fields = ("zarr.json", ["data_type"]) if zarr_format == 3 else (".zarray", ["dtype"])
        ours, theirs = (json.loads((tmp_path / d / name).read_text()) for d in ("o.zarr", "z.zarr"))
        assert [ours[f] for f in fields] == [theirs[f] for f in fields]


# Data types written as the formats store them, which zarr-python also takes for a dtype.
FORMAT_JSON = [
    ({"name": "numpy.datetime64", "configuration": {"unit": "s", "scale_factor": 10}}, 3),
    ({"name": "numpy.timedelta64", "configuration": {"unit": "ms", "scale_factor": 1}}, 3),
    ({"name": "null_terminated_bytes", "configuration": {"length_bytes": 4}}, 3),
    ({"name": "fixed_length_utf32", "configuration": {"length_bytes": 8}}, 3),
    ({"name": "raw_bytes", "configuration": {"length_bytes": 3}}, 3),
    ({"name": "structured", "configuration": {"fields": [["a", "int32"], ["b", "float64"]]}}, 3),
    ("variable_length_bytes", 3),
    ([["a", "<i4"], ["b", ">f8"]], 2),
]


@pytest.mark.parametrize(("dtype", "zarr_format"), FORMAT_JSON, ids=lambda x: json.dumps(x))
def test_data_types_as_the_format_writes_them(tmp_path: Path, dtype: Any, zarr_format: int) -> None:
    ours = oxzarr.create_array(
        tmp_path / "o.zarr", shape=(3,), dtype=dtype, zarr_format=zarr_format
    )
    theirs = zarr.create_array(
        tmp_path / "z.zarr", shape=(3,), dtype=dtype, zarr_format=zarr_format
    )
    assert ours.dtype == theirs.dtype
    name, field = ("zarr.json", "data_type") if zarr_format == 3 else (".zarray", "dtype")
    ours_json, theirs_json = (
        json.loads((tmp_path / d / name).read_text()) for d in ("o.zarr", "z.zarr")
    )
    for doc in (ours_json, theirs_json):
        # zarr-python 3.1 names variable-length bytes as it did first; the registered name
        # (zarr-extensions), which oxzarr writes and zarr-python reads, is "bytes".
        if doc.get("data_type") == "variable_length_bytes":
            doc["data_type"] = "bytes"
    assert [ours_json[f] for f in (field, "fill_value")] == [
        theirs_json[f] for f in (field, "fill_value")
    ]
    data = theirs[...]
    ours[...] = data
    assert_same(zarr.open_array(tmp_path / "o.zarr", mode="r")[...], data)


ZARR_PYTHON_DTYPES: list[Any] = [
    lambda zd: zd.Int32(),
    lambda zd: zd.Int32(endianness="big"),
    lambda zd: zd.Float16(),
    lambda zd: zd.Bool(),
    lambda zd: zd.Complex64(),
    lambda zd: zd.VariableLengthUTF8(),
    lambda zd: zd.VariableLengthBytes(),
    lambda zd: zd.FixedLengthUTF32(length=3),
    lambda zd: zd.NullTerminatedBytes(length=4),
    lambda zd: zd.RawBytes(length=2),
    lambda zd: zd.DateTime64(unit="s", scale_factor=10),
    lambda zd: zd.TimeDelta64(unit="ms"),
    lambda zd: zd.Structured(fields=(("a", zd.Int16()), ("b", zd.Float64(endianness="big")))),
]


@pytest.mark.parametrize("zarr_format", [2, 3])
@pytest.mark.parametrize("make", ZARR_PYTHON_DTYPES)
def test_zarr_python_data_type_objects(tmp_path: Path, make: Any, zarr_format: int) -> None:
    # zarr-python's own data type objects (zarr.dtype.*) as dtype=: the array zarr-python
    # makes of them, byte order included where v2 keeps it.
    import zarr.dtype

    dtype = make(zarr.dtype)
    ours = oxzarr.create_array(tmp_path / "o", shape=(3,), dtype=dtype, zarr_format=zarr_format)
    zarr.create_array(tmp_path / "z", shape=(3,), dtype=dtype, zarr_format=zarr_format)
    name = "zarr.json" if zarr_format == 3 else ".zarray"
    ours_json, theirs_json = (json.loads((tmp_path / d / name).read_text()) for d in "oz")
    for doc in (ours_json, theirs_json):
        if doc.get("data_type") == "variable_length_bytes":  # as above
            doc["data_type"] = "bytes"
    assert ours_json == theirs_json
    data = zarr.open_array(tmp_path / "z")[...]
    ours[...] = data
    assert_same(zarr.open_array(tmp_path / "o", mode="r")[...], data)


def test_numpy_dict_dtypes_are_numpy_s(tmp_path: Path) -> None:
    # A dict without "name" is numpy's own spelling of a record, not a v3 data type.
    dtype = {"names": ["a", "b"], "formats": ["<i4", "<f8"]}
    a = oxzarr.create_array(tmp_path / "a.zarr", shape=(2,), dtype=dtype)
    assert a.dtype == np.dtype(dtype)


def test_data_types_the_format_does_not_know(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="not understood"):
        oxzarr.create_array(tmp_path / "a.zarr", shape=(3,), dtype="no_such_type")
    with pytest.raises(ValueError, match="data_type"):
        oxzarr.create_array(tmp_path / "b.zarr", shape=(3,), dtype={"name": "no_such_type"})
    with pytest.raises(ValueError, match="multiple of 4"):
        oxzarr.create_array(
            tmp_path / "c.zarr",
            shape=(3,),
            dtype={"name": "fixed_length_utf32", "configuration": {"length_bytes": 7}},
        )


@pytest.mark.parametrize("fill_value", ["ab", "é", b"ab"])
def test_variable_bytes_fill_value_as_text(tmp_path: Path, fill_value: Any) -> None:
    # As zarr-python: text is taken as its UTF-8.
    raw = fill_value.encode() if isinstance(fill_value, str) else fill_value
    a = oxzarr.create_array(tmp_path / "a.zarr", shape=(2,), dtype=bytes, fill_value=fill_value)
    assert a[...].tolist() == [raw, raw]
    assert zarr.open_array(tmp_path / "a.zarr", mode="r")[...].tolist() == [raw, raw]


@pytest.mark.parametrize("fill_value", [np.array("ab"), np.float64(2.0), np.int16(7), [1, 2]])
def test_variable_bytes_fill_values_that_are_not_bytes_are_refused(
    tmp_path: Path, fill_value: Any
) -> None:
    # Their memory was taken as the fill: a float's IEEE bytes, a 0-d text array's UTF-32.
    # zarr-python refuses them, as oxzarr's writes refuse them.
    with pytest.raises(TypeError, match="not bytes, text or an integer"):
        oxzarr.create_array(tmp_path / "a.zarr", shape=(2,), dtype=bytes, fill_value=fill_value)
    assert not (tmp_path / "a.zarr" / "zarr.json").exists()
    a = oxzarr.create_array(tmp_path / "b.zarr", shape=(2,), dtype=bytes, fill_value=3)
    assert a.fill_value == b"\x00" * 3  # bytes(3), as zarr-python takes an integer


def test_bytes_under_vlen_utf8_must_be_text(tmp_path: Path) -> None:
    # zarrs writes bytes arrays with the vlen-utf8 codec, and they are read; but oxzarr wrote
    # any bytes into them, chunks zarr-python failed to decode (UnicodeDecodeError). A write
    # holding bytes that are not text is refused before any chunk is stored.
    old = [f"old{i}".encode() for i in range(20)]
    new = [f"né{i}".encode() for i in range(20)]
    layouts = ({"serializer": {"name": "vlen-utf8", "configuration": {}}}, {"shards": (4,)})
    for n, codecs in enumerate(layouts):
        path = tmp_path / f"{n}.zarr"
        a = oxzarr.create_array(path, shape=(20,), chunks=(2,), dtype=bytes, **codecs)  # type: ignore[arg-type]
        if "shards" in codecs:
            meta = json.loads((path / "zarr.json").read_text())
            meta["codecs"][0]["configuration"]["codecs"] = [{"name": "vlen-utf8"}]
            (path / "zarr.json").write_text(json.dumps(meta))
            a = oxzarr.open_array(path)
        a[...] = old
        for bad in ([*new[:19], b"\xff"], [b"\xff", *new[1:]]):
            with pytest.raises(ValueError, match=r"element (19|0) .*is not UTF-8 text"):
                a[...] = bad
            assert a[...].tolist() == old
        with pytest.raises(ValueError, match="not UTF-8 text"):
            a[...] = b"\xff"  # one value over every chunk
        assert a[...].tolist() == old
        a[...] = new
        assert a[...].tolist() == new
        # (zarr-python reads what vlen-utf8 holds as text.)
        assert zarr.open_array(path, mode="r")[...].tolist() == [v.decode() for v in new]
    # The engine refuses them as well, where a write reaches it unchecked.
    a = oxzarr.open_array(tmp_path / "0.zarr")
    with pytest.raises(ValueError, match=r"c/0.*element 1 of the chunk is not UTF-8"):
        a._core.write_vlen([(0, 1, 2)], [b"ok", b"\xff"], False)


@pytest.mark.parametrize("shards", [None, (4, 4)])
@pytest.mark.parametrize("dtype", [str, bytes])
def test_one_value_over_many_chunks_of_text(
    tmp_path: Path, dtype: type, shards: tuple[int, int] | None
) -> None:
    # One value over more than a chunk goes to the engine once, which repeats it chunk by
    # chunk: it must land as numpy's broadcast of it would.
    p = tmp_path / "t.zarr"
    a = oxzarr.create_array(p, shape=(7, 9), chunks=(2, 2), shards=shards, dtype=dtype)
    one, other = ("né", "x") if dtype is str else (b"n\xc3\xa9", b"x")
    model = np.full((7, 9), other, dtype=object)
    a[...] = other
    a[1:6, 2:9:2] = one
    model[1:6, 2:9:2] = one
    a[-1] = np.str_(one) if dtype is str else np.bytes_(one)
    model[-1] = one
    assert a[...].tolist() == model.tolist()
    assert zarr.open_array(p, mode="r")[...].tolist() == model.tolist()
    with pytest.raises(TypeError, match="takes bytes, not") if dtype is bytes else nullcontext():
        a[2:7, :] = 85
        model[2:7, :] = "85"
    assert a[...].tolist() == model.tolist()
    # Back to the fill value: the chunks are deleted, as by a write of as many values.
    a[...] = "" if dtype is str else b""
    assert a.nchunks_initialized == 0


@pytest.mark.parametrize("dtype", [str, bytes])
def test_variable_length_data_refuses_the_bytes_serializer(tmp_path: Path, dtype: Any) -> None:
    # As zarr-python: a bytes codec cannot encode variable-length elements, so metadata naming
    # one is refused when made, not at the first write.
    with pytest.raises(ValueError, match="vlen-utf8"):
        oxzarr.create_array(
            tmp_path / "a.zarr",
            shape=(2,),
            dtype=dtype,
            serializer={"name": "bytes", "configuration": {"endian": "little"}},
        )
    assert not (tmp_path / "a.zarr" / "zarr.json").exists()


def test_string_writes_and_fill(tmp_path: Path) -> None:
    a = oxzarr.create_array(
        tmp_path / "s.zarr", shape=(3, 4), dtype=str, chunks=(2, 2), fill_value="-"
    )
    assert a[...].tolist() == [["-"] * 4] * 3
    a[1, 1:3] = ["x", "y"]
    a[0] = "z"
    expected = [["z"] * 4, ["-", "x", "y", "-"], ["-"] * 4]
    assert a[...].tolist() == expected
    assert zarr.open_array(tmp_path / "s.zarr", mode="r")[...].tolist() == expected
    a[...] = "-"
    assert not [
        p for p in (tmp_path / "s.zarr").rglob("*") if p.is_file() and p.parent.name != "s.zarr"
    ]


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_variable_bytes_both_ways(tmp_path: Path, zarr_format: int) -> None:
    data = np.array([b"", b"\x00\x01", b"abc", b"\xff" * 40], dtype=object)
    from zarr.core.dtype import VariableLengthBytes

    theirs = zarr.create_array(
        tmp_path / "z.zarr",
        shape=(4,),
        dtype=VariableLengthBytes(),
        chunks=(3,),
        zarr_format=zarr_format,
    )
    theirs[...] = data
    back = oxzarr.open_array(tmp_path / "z.zarr", mode="r")[...]
    assert back.dtype == object and back.tolist() == data.tolist()
    ours = oxzarr.create_array(
        tmp_path / "o.zarr", shape=(4,), dtype=bytes, chunks=(3,), zarr_format=zarr_format
    )
    ours[...] = data
    assert list(zarr.open_array(tmp_path / "o.zarr", mode="r")[...]) == list(data)


@pytest.mark.parametrize("value", [85, [85, 85], "ab", np.array(["ab", "c"]), [None, b"x"]])
def test_variable_bytes_take_only_bytes(tmp_path: Path, value: Any) -> None:
    # As zarr-python, a TypeError: bytes(85) would have stored 85 zero bytes.
    a = oxzarr.create_array(tmp_path / "b.zarr", shape=(2,), dtype=bytes, chunks=(2,))
    a[...] = [b"keep", b"these"]
    with pytest.raises(TypeError, match="takes bytes, not"):
        a[...] = value
    with pytest.raises(TypeError, match="takes bytes, not"):
        a[[1, 0]] = value
    assert a[...].tolist() == [b"keep", b"these"]
    a[[1]] = [b"x"]
    assert a[...].tolist() == [b"keep", b"x"]


def test_strings_in_fortran_order_v2(tmp_path: Path) -> None:
    data = np.array([["a", "bb"], ["ccc", ""], ["é", "f"]], dtype=STRING_DTYPE)
    z = zarr.create_array(
        tmp_path / "z.zarr", shape=(3, 2), dtype=str, chunks=(2, 2), zarr_format=2, order="F"
    )
    z[...] = data
    assert oxzarr.open_array(tmp_path / "z.zarr", mode="r")[...].tolist() == data.tolist()


def test_sharded_strings_both_ways(tmp_path: Path) -> None:
    data = np.array([TEXT[i % len(TEXT)] + str(i) for i in range(40)], dtype=STRING_DTYPE)
    data = data.reshape(8, 5)
    ours = oxzarr.create_array(
        tmp_path / "o.zarr", shape=(8, 5), dtype=str, chunks=(2, 2), shards=(4, 4)
    )
    ours[...] = data
    ours[1, 1] = "changed"
    data[1, 1] = "changed"
    assert ours[...].tolist() == data.tolist()
    assert zarr.open_array(tmp_path / "o.zarr", mode="r")[...].tolist() == data.tolist()
    theirs = zarr.create_array(
        tmp_path / "z.zarr", shape=(8, 5), dtype=str, chunks=(2, 2), shards=(4, 4)
    )
    theirs[...] = data
    back = oxzarr.open_array(tmp_path / "z.zarr", mode="r")
    assert back[...].tolist() == data.tolist()
    assert back[3:7, ::2].tolist() == data[3:7, ::2].tolist()


@pytest.mark.parametrize("shards", [None, (6, 8)])
@pytest.mark.parametrize("kind", [str, bytes])
def test_variable_length_selections_in_slabs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: type, shards: tuple[int, int] | None
) -> None:
    """Selections of strings and bytes go to the engine in slabs of whole chunks (whole shards
    for writes), cut along one dimension: slabs of a few elements here, so that every kind of
    selection below is cut, along either dimension, with steps either way."""
    module = sys.modules["oxzarr.array"]  # (oxzarr.array is the function)
    monkeypatch.setattr(module, "_VLEN_SLAB_ELEMENTS", 7)
    cut: list[list[Any]] = []
    slabs = module.slabs
    monkeypatch.setattr(module, "slabs", lambda *args: cut.append(slabs(*args)) or cut[-1])

    def element(i: int) -> Any:
        return f"é{i}" * (i % 3) if kind is str else bytes([i % 256]) * (i % 4)

    shape = (20, 30)
    data = np.empty(shape, dtype=STRING_DTYPE if kind is str else object)
    data.reshape(-1)[:] = [element(i) for i in range(600)]
    want = np.full(shape, kind(), dtype=object)
    p = tmp_path / "a.zarr"
    a = oxzarr.create_array(p, shape=shape, chunks=(3, 4), shards=shards, dtype=kind)
    writes: list[tuple[Any, Any]] = [
        (..., data),
        ((slice(2, 17), slice(5, 29)), data[:15, :24]),
        ((slice(None, None, 3), slice(None, None, -2)), data[:7, :15]),
        ((slice(19, None, -2), 7), data[0, :10]),
        ((4, slice(None)), data[19]),
        ((slice(1, 19), slice(2, 28)), element(5)),
        ((slice(None), [0, 29, 4]), data[:, :3]),
        ((slice(3, 20), slice(None)), data[:17].astype(object)),  # objects into either type
    ]
    with oxzarr.config.set({"threads": 1}):
        for key, value in writes:
            cut.clear()
            a[key] = value
            want[key] = value
            # (One value goes to the engine once, which repeats it: no slabs.)
            assert cut == [] if np.ndim(value) == 0 else len(cut[0]) > 1, key
            assert a[...].tolist() == want.tolist(), key
            assert len(cut[-1]) > 1
            assert a[key].tolist() == want[key].tolist(), key
        assert zarr.open_array(p, mode="r")[...].tolist() == want.tolist()
        assert a.oindex[[1, 5, 19], 3:27].tolist() == want[[1, 5, 19]][:, 3:27].tolist()
        # A value refused in the last slab leaves the array as it was: each slab's values are
        # checked before the first is written.
        refused = data.astype(object)
        refused[-1, -1] = "text" if kind is bytes else b"\xff"
        with pytest.raises(TypeError if kind is bytes else UnicodeDecodeError):
            a[...] = refused
        assert a[...].tolist() == want.tolist()
        # A 0-d array: one slab, the selection itself.
        b = oxzarr.create_array(tmp_path / "b.zarr", shape=(), dtype=kind)
        b[...] = element(4)
        assert b[...] == b[()] == element(4)


def test_slabs_of_a_selection_hold_whole_blocks() -> None:
    """Each block (chunk, shard) a selection takes elements from lies in one slab, and the
    slabs together are the selection, in order, whatever its steps."""
    from oxzarr._indexing import slabs

    rng = np.random.default_rng(5)
    for _ in range(2000):
        n, block = int(rng.integers(1, 80)), int(rng.integers(1, 9))
        step = int(rng.choice([-7, -3, -2, -1, 1, 2, 3, 10]))
        positions = list(range(n))[slice(int(rng.integers(0, n)), int(rng.integers(0, n)), step)]
        if not positions:
            continue
        run = (positions[0], step if len(positions) > 1 else 1, len(positions))
        pieces = slabs(
            [(0, 1, 1), run], (4, block), int(rng.integers(1, 20)), int(rng.integers(1, 4))
        )
        seen: list[int] = []
        slab_of_block: dict[int, int] = {}
        for k, (piece, where) in enumerate(pieces):
            assert piece[0] == (0, 1, 1) and isinstance(piece[1], tuple)
            start, piece_step, length = piece[1]
            if len(pieces) > 1:
                assert where == (slice(None), slice(len(seen), len(seen) + length), ...)
            for position in range(start, start + piece_step * length, piece_step):
                assert slab_of_block.setdefault(position // block, k) == k, (run, block, pieces)
                seen.append(position)
        assert seen == positions, (run, block, pieces)


@pytest.mark.parametrize("shards", [None, (8, 8)])
@pytest.mark.parametrize("kind", [str, bytes])
def test_point_writes_of_variable_length_arrays(
    tmp_path: Path, shards: tuple[int, int] | None, kind: type
) -> None:
    # Each chunk holding points is rewritten once (each shard once), by the engine.
    from oxzarr.storage import CountingStore, LocalStore

    p = tmp_path / "s.zarr"
    oxzarr.create_array(p, shape=(20, 20), dtype=kind, chunks=(4, 4), shards=shards)
    store = CountingStore(LocalStore(p))
    a = oxzarr.open_array(store, mode="r+")
    want = np.full((20, 20), kind(), dtype=object)
    rng = np.random.default_rng(3)
    rows, cols = rng.integers(0, 20, 300), rng.integers(0, 20, 300)
    values = [
        kind(f"v{i}" * (i % 4), "ascii") if kind is bytes else f"v{i}" * (i % 4) for i in range(300)
    ]
    a.vindex[rows, cols] = values
    for r, c, v in zip(rows, cols, values, strict=True):
        want[r, c] = v  # a point given twice keeps its last value, as in numpy
    assert a[...].tolist() == want.tolist()
    assert zarr.open_array(p, mode="r")[...].tolist() == want.tolist()
    # A mask write; then points set back to the fill value leave their chunks unstored.
    mask = np.zeros((20, 20), dtype=bool)
    mask[::3, 1::2] = True
    a[mask] = kind("m", "ascii") if kind is bytes else "m"
    want[mask] = kind("m", "ascii") if kind is bytes else "m"
    assert a[...].tolist() == want.tolist()
    a.vindex[np.nonzero(want != kind())] = kind()
    assert a.nchunks_initialized == 0
    # Points in one chunk: the chunk (or its shard) is read with one request.
    a.vindex[[0, 1, 2], [0, 1, 3]] = [kind(), kind(), kind()]
    store.reset()
    a.vindex[[0, 1, 2, 1], [0, 1, 3, 1]] = (
        [b"a", b"b", b"c", b"d"] if kind is bytes else ["a", "b", "c", "d"]
    )
    assert store.requests == 1
    assert a[0:3, 0:4].tolist() == [
        [kind(x, "ascii") if kind is bytes else x for x in row]
        for row in [["a", "", "", ""], ["", "d", "", ""], ["", "", "", "c"]]
    ]


@pytest.mark.parametrize("shards", [None, (8, 8)])
def test_points_of_string_arrays(tmp_path: Path, shards: tuple[int, int] | None) -> None:
    # Coordinate and mask reads of text go through the engine, each chunk decoded once.
    from oxzarr.storage import CountingStore, LocalStore

    p = tmp_path / "s.zarr"
    data = np.array([f"s{i}" * (i % 5) for i in range(400)], dtype=object).reshape(20, 20)
    a = oxzarr.create_array(p, shape=(20, 20), dtype=str, chunks=(4, 4), shards=shards)
    a[...] = data
    rng = np.random.default_rng(0)
    rows, cols = rng.integers(0, 20, 300), rng.integers(0, 20, 300)
    expected = data[rows, cols].astype(str).tolist()
    assert a.vindex[rows, cols].tolist() == expected
    assert zarr.open_array(p, mode="r").vindex[rows, cols].tolist() == expected
    mask = data != ""
    assert a[mask].tolist() == data[mask].astype(str).tolist()
    store = CountingStore(LocalStore(p, read_only=True))
    r = oxzarr.open_array(store, mode="r")
    store.reset()
    r.vindex[[0, 1, 2, 3], [0, 1, 2, 3]]  # four points of one chunk
    assert store.requests == (2 if shards else 1)  # the shard's index, then the inner chunk


@pytest.mark.parametrize("na", [None, np.nan])
def test_strings_with_a_missing_value_are_refused(tmp_path: Path, na: object) -> None:
    # numpy would turn each missing string into its sentinel's text ("None", "nan"), stored
    # as if it were data; zarr-python refuses such a dtype too.
    with_na = np.dtypes.StringDType(na_object=na)  # type: ignore[call-arg]
    values = np.array(["a", na, "c"], dtype=with_na)
    with pytest.raises(ValueError, match="na_object"):
        oxzarr.create_array(tmp_path / "made", shape=(3,), dtype=with_na)
    a = oxzarr.create_array(tmp_path / "a", shape=(3,), dtype=str, chunks=(2,))
    for write in (
        lambda: a.__setitem__(slice(None), values),
        lambda: a.vindex.__setitem__(([0, 1, 2],), values),
        lambda: a.set_mask_selection(np.ones(3, dtype=bool), values),
    ):
        with pytest.raises(ValueError, match="na_object"):
            write()
    assert a.nchunks_initialized == 0, "nothing was written"
    a[...] = values.astype(np.dtypes.StringDType())  # the sentinel's text, chosen on purpose
    assert a[...].tolist() == ["a", str(na), "c"]


@pytest.mark.parametrize(
    ("dtype", "value"),
    [
        ("M8", np.array(["2020-01-01", "2021-01-01", "2022-01-01"], dtype="M8[D]")),
        ("M8", np.datetime64("2020-01-01T00:00:00")),
        ("m8", np.array([1, 2, 3], dtype="m8[h]")),
        ("m8[ms]", np.timedelta64(1, "Y")),
        ("m8[ms]", np.array([1, 2, 3], dtype="m8[s]")),
        ("S4", np.datetime64("2020-01-01")),
        ("U4", np.datetime64("2020-01-01")),
        ("i1", 300),
        ("i4", [1.5, 2.5, -3.5]),
    ],
)
@pytest.mark.parametrize("how", ["slice", "points"])
def test_writes_cast_as_numpy_assigns(tmp_path: Path, dtype: str, value: Any, how: str) -> None:
    """Values are cast as numpy's assignment casts them. Datetimes of a unit written to a
    unitless datetime array are refused (their counts were stored as they were, days and
    seconds mixed in one array), a timedelta of years is not cast to milliseconds, and a
    datetime written to fixed-length text is its text (it raised RuntimeError)."""
    expected = np.zeros(3, dtype=dtype)
    try:
        expected[...] = value
        refused: type[Exception] | None = None
    except (TypeError, ValueError, OverflowError) as e:
        refused = type(e)
    a = oxzarr.create_array(tmp_path / "a", shape=(3,), dtype=dtype, chunks=(2,))
    before = a[...]

    def write() -> None:
        if how == "slice":
            a[...] = value
        else:
            a.vindex[[0, 1, 2]] = value

    if refused is not None:
        with pytest.raises(refused):
            write()
        assert_same(a[...], before)
    else:
        write()
        assert_same(a[...], expected)


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_text_fill_values_with_a_lone_surrogate(tmp_path: Path, zarr_format: int) -> None:
    # os.fsdecode of a file name that is not UTF-8 gives such text; its JSON escape was read
    # as the engine's internal marker, which became the fill value's characters.
    fill = "a\udc80"
    theirs = zarr.create_array(
        tmp_path / "theirs", shape=(2,), dtype="U8", fill_value=fill, zarr_format=zarr_format
    )
    ours = oxzarr.open_array(tmp_path / "theirs", mode="r")
    assert ours.fill_value == fill and ours[...].tolist() == [fill, fill]
    assert theirs[...].tolist() == ours[...].tolist()
    # Two code points fit U2; written back as the escape zarr-python reads.
    oxzarr.create_array(
        tmp_path / "ours", shape=(2,), dtype="U2", fill_value=fill, zarr_format=zarr_format
    )
    assert zarr.open_array(tmp_path / "ours", mode="r")[...].tolist() == [fill, fill]
    assert oxzarr.open_array(tmp_path / "ours", mode="r").fill_value == fill
    # UTF-8 (variable-length strings) cannot hold it: refused, as zarr-python cannot encode it.
    with pytest.raises(ValueError, match="lone surrogate"):
        oxzarr.create_array(
            tmp_path / "s", shape=(2,), dtype=str, fill_value=fill, zarr_format=zarr_format
        )


def test_time_fill_values_the_dtype_cannot_hold_are_refused(tmp_path: Path) -> None:
    import datetime

    # numpy wraps the year 3000 in nanoseconds around to 1830; a unitless dtype kept the
    # value's own unit, storing a count of nothing.
    for fill in (
        np.datetime64("3000-01-01"),
        "3000-01-01",
        datetime.datetime(3000, 1, 1),
    ):
        with pytest.raises(ValueError, match="is not a valid datetime64"):
            oxzarr.create_array(tmp_path / "t", shape=(1,), dtype="M8[ns]", fill_value=fill)
    for dtype, fill in (("m8", np.timedelta64(3, "s")), ("M8", np.datetime64("2020-01-01"))):
        with pytest.raises(ValueError, match="is not a valid"):
            oxzarr.create_array(tmp_path / "g", shape=(1,), dtype=dtype, fill_value=fill)
    with pytest.raises(ValueError, match="is not a valid datetime64"):
        oxzarr.create_array(tmp_path / "t", shape=(1,), dtype="M8[ns]", fill_value="1000-01-01")
    # Into a coarser unit, cut to it, as zarr-python cuts it.
    for fill in (np.datetime64("2000-01-01T00:00:00.5"), "2000-01-01T00:00:00.5"):
        cut = oxzarr.create_array(
            tmp_path / "cut", shape=(1,), dtype="M8[s]", fill_value=fill, overwrite=True
        )
        assert cut.fill_value == np.datetime64("2000-01-01T00:00:00", "s")
        assert zarr.open_array(tmp_path / "cut").fill_value == cut.fill_value
    a = oxzarr.create_array(tmp_path / "ok", shape=(1,), dtype="M8[ns]", fill_value="2020-01-01")
    assert a.fill_value == np.datetime64("2020-01-01", "ns") and a[0] == a.fill_value
    assert np.isnat(oxzarr.create_array(tmp_path / "nat", shape=(1,), dtype="M8[s]").fill_value)


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_padded_records_are_stored_packed(tmp_path: Path, zarr_format: int) -> None:
    # As zarr-python stores them (the formats have no padding); v3 refused them, and v2
    # wrote a fill value of the padded size its own data type could not take.
    aligned = np.dtype([("a", "i1"), ("b", "<i4")], align=True)
    values = np.array([(1, 100), (2, 200)], dtype=aligned)
    for lib in (oxzarr, zarr):
        lib.create_array(
            tmp_path / lib.__name__, shape=(2,), dtype=aligned, zarr_format=zarr_format
        )[...] = values
    for reader in (oxzarr, zarr):
        for writer in (oxzarr, zarr):
            read = reader.open_array(tmp_path / writer.__name__, mode="r")
            assert read.dtype == np.dtype([("a", "i1"), ("b", "<i4")])
            assert read[...].tolist() == values.tolist()
    # A record's fill value as a list is one record, as zarr-python reads it.
    record = np.dtype([("a", "<i4"), ("b", "<f8")])
    a = oxzarr.create_array(
        tmp_path / "fill", shape=(2,), dtype=record, fill_value=[1, 2.0], zarr_format=zarr_format
    )
    assert a[...].tolist() == [(1, 2.0), (1, 2.0)]
    with pytest.raises(ValueError, match="is not a valid"):
        oxzarr.create_array(
            tmp_path / "two", shape=(2,), dtype=record, fill_value=[(1, 2.0), (3, 4.0)]
        )


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_a_time_fill_value_for_durations_and_the_reverse_are_refused(
    tmp_path: Path, zarr_format: int
) -> None:
    import datetime

    # numpy casts a timedelta64 into a datetime64 (and the reverse) by its count: 3 days
    # were stored as 1970-01-01T00:00:03 in a datetime64[s] array, 2020-01-01 as 18262
    # hours in a timedelta64[h] one. zarr-python refuses both with a TypeError.
    refused = [
        ("M8[s]", np.timedelta64(3, "D"), "is a duration, and a datetime64"),
        ("M8[s]", np.timedelta64("NaT"), "is a duration"),
        ("M8[ns]", datetime.timedelta(days=1), "is a duration"),
        ("M8", np.array(np.timedelta64(3, "D")), "is a duration"),
        ("m8[h]", np.datetime64("2020-01-01"), "is a point in time, and a timedelta64"),
        ("m8[h]", datetime.datetime(2020, 1, 1), "is a point in time"),
        ("m8[h]", datetime.date(2020, 1, 1), "is a point in time"),
    ]
    for make in (oxzarr.create_array, zarr.create_array):
        for dtype, fill, message in refused:
            with pytest.raises(TypeError, match=message if make is oxzarr.create_array else None):
                make(
                    tmp_path / "t",
                    shape=(2,),
                    dtype=dtype,
                    fill_value=fill,
                    zarr_format=zarr_format,
                    overwrite=True,
                )
    # A time for times and a duration for durations are taken, as numbers and text are.
    for dtype, fill, expected in [
        ("M8[s]", np.datetime64("2020-01-01"), np.datetime64("2020-01-01T00:00:00")),
        ("m8[h]", np.timedelta64(3, "D"), np.timedelta64(72, "h")),
        ("M8[s]", 5, np.datetime64(5, "s")),
        ("m8[h]", "5", np.timedelta64(5, "h")),
    ]:
        a = oxzarr.create_array(
            tmp_path / "ok",
            shape=(2,),
            dtype=dtype,
            fill_value=fill,
            zarr_format=zarr_format,
            overwrite=True,
        )
        assert a.fill_value == expected and a[0] == expected
        assert zarr.open_array(tmp_path / "ok").fill_value == expected
