"""Zarr v2: arrays and groups, read and written, both directions with zarr-python."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr

import oxzarr
from oxzarr.codecs import NumcodecsConfig
from tests.conftest import DTYPES, assert_same, sample

V2_COMPRESSORS: list[Any] = [
    None,
    {"id": "zstd", "level": 3},
    {"id": "blosc", "cname": "lz4", "clevel": 5, "shuffle": 1, "blocksize": 0},
    {"id": "blosc", "cname": "zstd", "clevel": 3, "shuffle": 2, "blocksize": 0},
    {"id": "gzip", "level": 5},
    {"id": "zlib", "level": 1},
    {"id": "bz2", "level": 5},
    {"id": "lz4", "acceleration": 1},
    {"id": "lzma", "preset": 1},
]


def _numcodecs(config: dict[str, Any] | None) -> Any:
    import numcodecs

    return None if config is None else numcodecs.get_codec(dict(config))


@pytest.mark.parametrize("compressor", V2_COMPRESSORS, ids=lambda c: c["id"] if c else "raw")
@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("byteorder", ["<", ">"])
def test_read_what_zarr_python_writes(
    tmp_path: Path, compressor: Any, order: str, byteorder: str
) -> None:
    dtype = np.dtype("f8").newbyteorder(byteorder)
    data = sample((9, 7), "f8").astype(dtype)
    p = tmp_path / "a.zarr"
    z = zarr.create_array(
        p,
        shape=data.shape,
        dtype=dtype,
        chunks=(4, 3),
        zarr_format=2,
        order=order,  # type: ignore[arg-type]
        compressors=_numcodecs(compressor),
        fill_value=-1.5,
        attributes={"k": [1, 2]},
    )
    z[:8] = data[:8]
    a = oxzarr.open_array(p, mode="r")
    assert a.zarr_format == 2 and a.shape == (9, 7) and a.chunks == (4, 3)
    assert a.attrs["k"] == [1, 2]
    assert a.dtype == z.dtype
    assert_same(a[...], z[...])
    assert_same(a[2:9:3, ::-2], z[...][2:9:3, ::-2])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("compressor", V2_COMPRESSORS[:5], ids=lambda c: c["id"] if c else "raw")
def test_zarr_python_reads_what_oxzarr_writes(tmp_path: Path, dtype: str, compressor: Any) -> None:
    data = sample((9, 7), dtype)
    p = tmp_path / "a.zarr"
    a = oxzarr.create_array(
        p,
        shape=data.shape,
        dtype=dtype,
        chunks=(4, 3),
        zarr_format=2,
        compressors=compressor,
        attributes={"title": "v2"},
        chunk_key_encoding={"name": "v2", "separator": "/"},
    )
    a[...] = data
    assert json.loads((p / ".zarray").read_text())["zarr_format"] == 2
    assert (p / "1" / "2").is_file()
    z = zarr.open_array(p, mode="r")
    assert z.metadata.zarr_format == 2
    assert_same(z[...], data)
    assert z.attrs["title"] == "v2"


def test_v2_defaults_match_zarr_python(tmp_path: Path) -> None:
    oxzarr.create_array(tmp_path / "o.zarr", shape=(10,), dtype="f4", chunks=(5,), zarr_format=2)
    zarr.create_array(tmp_path / "z.zarr", shape=(10,), dtype="f4", chunks=(5,), zarr_format=2)
    ours = json.loads((tmp_path / "o.zarr" / ".zarray").read_text())
    theirs = json.loads((tmp_path / "z.zarr" / ".zarray").read_text())
    assert ours == theirs


@pytest.mark.parametrize(
    "compressor",
    [
        {"id": "blosc"},
        {"id": "blosc", "cname": "zstd"},
        # numcodecs never writes a typesize, and tensorstore refuses one.
        {"id": "blosc", "cname": "lz4", "typesize": 4},
        {"id": "gzip"},
        {"id": "zstd", "level": 3, "checksum": False},
        "numcodecs.Zstd(level=3)",
    ],
    ids=str,
)
def test_v2_compressors_take_numcodecs_defaults(tmp_path: Path, compressor: Any) -> None:
    # A partial configuration means numcodecs' defaults (a blosc without `shuffle` shuffles
    # bytes, gzip's level is 1), written out as zarr-python writes them; zstd's checksum is
    # left out when false, as tensorstore refuses the key in v2.
    import numcodecs
    import tensorstore as ts

    if compressor == "numcodecs.Zstd(level=3)":
        compressor = numcodecs.Zstd(level=3)
    data = np.arange(10000, dtype="f8")
    for lib, name in ((oxzarr, "o.zarr"), (zarr, "z.zarr")):
        a = lib.create_array(
            tmp_path / name,
            shape=data.shape,
            chunks=data.shape,
            dtype="f8",
            zarr_format=2,
            compressors=compressor,
        )
        a[...] = data
    ours = json.loads((tmp_path / "o.zarr" / ".zarray").read_text())
    theirs = json.loads((tmp_path / "z.zarr" / ".zarray").read_text())
    assert ours["compressor"] == theirs["compressor"]
    chunk = (tmp_path / "o.zarr" / "0").read_bytes()
    if ours["compressor"]["id"] == "blosc":
        assert chunk[2] & 0x1, "blosc chunk without byte shuffle"
    else:
        # zstd frames match byte for byte; gzip's deflate stream differs between libraries,
        # its size at level 1 much less than at the core codec's 6.
        other = (tmp_path / "z.zarr" / "0").read_bytes()
        assert chunk == other or ours["compressor"]["id"] == "gzip"
    opened = ts.open(
        {"driver": "zarr", "kvstore": {"driver": "file", "path": str(tmp_path / "o.zarr")}}
    )
    assert_same(opened.result().read().result(), data)


@pytest.mark.parametrize(
    "compressor",
    [
        {"id": "zlib"},
        {"id": "bz2"},
        {"id": "lz4"},
        {"id": "lzma"},
        {"id": "lzma", "preset": 1},
        {"id": "blosc", "shuffle": 0, "cname": "zstd"},
    ],
    ids=str,
)
def test_v2_compressors_written_as_numcodecs_gives_them(tmp_path: Path, compressor: Any) -> None:
    # zarr-python writes numcodecs' get_config(): every setting, None included, in numcodecs'
    # order. The .zarray is the same text, and each library reads the other's chunks.
    data = np.arange(1000, dtype="i4")
    for lib, name in ((oxzarr, "o.zarr"), (zarr, "z.zarr")):
        lib.create_array(
            tmp_path / name, shape=data.shape, dtype="i4", zarr_format=2, compressors=compressor
        )[...] = data
    ours = (tmp_path / "o.zarr" / ".zarray").read_text()
    theirs = (tmp_path / "z.zarr" / ".zarray").read_text()
    assert json.loads(ours)["compressor"] == json.loads(theirs)["compressor"]
    assert list(json.loads(ours)["compressor"]) == list(json.loads(theirs)["compressor"])
    assert_same(zarr.open_array(tmp_path / "o.zarr", mode="r")[...], data)
    assert_same(oxzarr.open_array(tmp_path / "z.zarr", mode="r")[...], data)


def test_compressor_under_its_v2_name(tmp_path: Path) -> None:
    # zarr-python's deprecated Array.compressor: the v2 compressor or None; a TypeError in v3.
    for compressors in ("auto", None):
        path = tmp_path / f"{compressors}.zarr"
        ours = oxzarr.create_array(
            path, shape=(4,), dtype="i2", compressors=compressors, zarr_format=2
        )
        theirs = zarr.open_array(path, mode="r").compressors
        with pytest.warns(DeprecationWarning, match="compressors"):
            compressor = ours.compressor
        if not theirs:
            assert compressor is None
        else:
            stored = json.loads((path / ".zarray").read_text())
            assert isinstance(compressor, NumcodecsConfig)
            assert compressor.get_config() == stored["compressor"]
            assert compressor.codec_id == theirs[0].codec_id
            # The settings read as numcodecs codecs' attributes do.
            for setting in set(stored["compressor"]) - {"id"}:
                assert getattr(compressor, setting) == getattr(theirs[0], setting), setting
            with pytest.raises(AttributeError, match="no attribute 'nothing'"):
                compressor.nothing  # noqa: B018
    v3 = oxzarr.create_array(tmp_path / "v3.zarr", shape=(4,), dtype="i2")
    with pytest.warns(DeprecationWarning), pytest.raises(TypeError, match="format 3"):
        v3.compressor  # noqa: B018


def test_filters_and_checksums_both_ways(tmp_path: Path) -> None:
    import numcodecs

    data = np.arange(200, dtype="i4").reshape(20, 10) * 3
    filters = [numcodecs.Delta(dtype="<i4"), numcodecs.Shuffle(elementsize=4), numcodecs.CRC32()]
    z = zarr.create_array(
        tmp_path / "z.zarr",
        shape=data.shape,
        dtype="i4",
        chunks=(8, 4),
        zarr_format=2,
        filters=filters,
        compressors=numcodecs.Zlib(level=2),
    )
    z[...] = data
    assert_same(oxzarr.open_array(tmp_path / "z.zarr", mode="r")[...], data)
    a = oxzarr.create_array(
        tmp_path / "o.zarr",
        shape=data.shape,
        dtype="i4",
        chunks=(8, 4),
        zarr_format=2,
        filters=[f.get_config() for f in filters],
        compressors={"id": "zlib", "level": 2},
    )
    a[...] = data
    assert_same(zarr.open_array(tmp_path / "o.zarr", mode="r")[...], data)


def test_jenkins_lookup3_both_ways(tmp_path: Path) -> None:
    """numcodecs' lookup3 checksum, seeded: the same .zarray and chunk bytes as zarr-python's,
    read by each from the other, and a flipped bit found."""
    import numcodecs

    data = np.arange(100, dtype="<i4") * 7
    arrays = {}
    for name, create in [("z", zarr.create_array), ("o", oxzarr.create_array)]:
        arrays[name] = create(
            tmp_path / name,
            shape=(100,),
            chunks=(7,),
            dtype="<i4",
            zarr_format=2,
            compressors=numcodecs.JenkinsLookup3(initval=3),
        )
        arrays[name][...] = data
    assert (tmp_path / "o" / ".zarray").read_bytes() == (tmp_path / "z" / ".zarray").read_bytes()
    for key in ("0", "14"):
        assert (tmp_path / "o" / key).read_bytes() == (tmp_path / "z" / key).read_bytes()
    assert_same(oxzarr.open_array(tmp_path / "z", mode="r")[...], data)
    assert_same(zarr.open_array(tmp_path / "o", mode="r")[...], data)
    chunk = tmp_path / "o" / "3"
    stored = bytearray(chunk.read_bytes())
    stored[5] ^= 1
    chunk.write_bytes(bytes(stored))
    with pytest.raises(ValueError, match=r"corrupt chunk 3 .*checksum mismatch"):
        oxzarr.open_array(tmp_path / "o", mode="r")[...]


def test_v3_codecs_without_a_v2_form_are_type_errors(tmp_path: Path) -> None:
    # As zarr-python: v2 filters and compressors are numcodecs codecs. (zstd, blosc, gzip
    # and crc32c given as v3 codecs have numcodecs forms, and are stored as those.)
    for codecs in (
        {"filters": [zarr.codecs.TransposeCodec(order=(0,))]},
        {"filters": [{"name": "bytes", "configuration": {"endian": "little"}}]},
        {"compressors": [{"name": "sharding_indexed", "configuration": {}}]},
    ):
        with pytest.raises(TypeError, match="has no Zarr v2 form"):
            oxzarr.create_array(tmp_path / "a", shape=(8,), dtype="i4", zarr_format=2, **codecs)
        assert not (tmp_path / "a").exists()


@pytest.mark.parametrize("name", ["zstd", "blosc", "gzip", "numcodecs.zlib"])
def test_a_codec_name_is_one_numcodecs_codec_in_v2(tmp_path: Path, name: str) -> None:
    # A name was taken as a sequence of one-letter codecs: "zstd" was four compressors (a
    # ValueError), "delta" in filters the unknown codec "d".
    import numcodecs

    values = np.arange(40, dtype="i4") * 3
    ours = oxzarr.create_array(
        tmp_path / "o.zarr", shape=(40,), dtype="i4", zarr_format=2, compressors=name
    )
    ours[...] = values
    # As the numcodecs codec of that id with its defaults, as zarr-python writes it.
    zarr.create_array(
        tmp_path / "z.zarr",
        shape=(40,),
        dtype="i4",
        zarr_format=2,
        compressors=numcodecs.get_codec({"id": name.removeprefix("numcodecs.")}),
    )
    stored = json.loads((tmp_path / "o.zarr" / ".zarray").read_text())["compressor"]
    assert stored == json.loads((tmp_path / "z.zarr" / ".zarray").read_text())["compressor"]
    assert_same(zarr.open_array(tmp_path / "o.zarr", mode="r")[...], values)
    filtered = oxzarr.create_array(
        tmp_path / "f.zarr", shape=(40,), dtype="i4", zarr_format=2, filters="delta"
    )
    filtered[...] = values
    assert json.loads((tmp_path / "f.zarr" / ".zarray").read_text())["filters"] == [
        {"id": "delta", "dtype": "<i4"}
    ]
    assert_same(zarr.open_array(tmp_path / "f.zarr", mode="r")[...], values)


@pytest.mark.parametrize("zarr_format", [2, 3])
@pytest.mark.parametrize("codecs", ["filters", "compressors"])
@pytest.mark.parametrize("name", ["", "nosuch"])
def test_an_unknown_codec_name_is_refused_in_both_formats(
    tmp_path: Path, zarr_format: int, codecs: str, name: str
) -> None:
    # In v2 an empty name was no codec at all, stored without a word.
    with pytest.raises(ValueError, match="unsupported codec"):
        oxzarr.create_array(
            tmp_path / "a", shape=(4,), dtype="i4", zarr_format=zarr_format, **{codecs: name}
        )
    assert not (tmp_path / "a").exists()


def test_zarr_python_2s_default_compressor_is_refused_with_the_way_out(tmp_path: Path) -> None:
    # compressor="default" (zarr-python 2's default value, refused by zarr-python 3) was a
    # ValueError saying v2 takes one compressor, and in v3 an unknown codec "default".
    group = oxzarr.open_group(tmp_path / "g", mode="w", zarr_format=2)
    makers = [
        lambda: oxzarr.create((4,), store=tmp_path / "a", compressor="default", zarr_format=2),
        lambda: oxzarr.create((4,), store=tmp_path / "a", compressor="default", zarr_format=3),
        lambda: oxzarr.open_array(
            tmp_path / "a", mode="w", shape=(4,), compressor="default", zarr_format=2
        ),
        lambda: oxzarr.zeros((4,), store=tmp_path / "a", compressor="default", zarr_format=2),
        lambda: group.create_array("a", shape=(4,), dtype="i4", compressor="default"),
    ]
    for make in makers:
        with pytest.raises(ValueError, match="'auto' for the default compressor"):
            make()
        assert not (tmp_path / "a").exists()
        assert not (tmp_path / "g" / "a").exists()


def test_v2_fill_values(tmp_path: Path) -> None:
    for dtype, fill in [("f4", np.nan), ("f8", -np.inf), ("i2", -3), ("u1", None), ("b1", True)]:
        p = tmp_path / f"{dtype}.zarr"
        z = zarr.create_array(
            p, shape=(4,), dtype=dtype, chunks=(2,), zarr_format=2, fill_value=fill
        )
        assert_same(oxzarr.open_array(p, mode="r")[...], z[...])
        q = tmp_path / f"o{dtype}.zarr"
        oxzarr.create_array(q, shape=(4,), dtype=dtype, chunks=(2,), zarr_format=2, fill_value=fill)
        assert_same(zarr.open_array(q, mode="r")[...], z[...])


def test_v2_groups_both_ways(tmp_path: Path) -> None:
    g = zarr.open_group(tmp_path / "z.zarr", mode="w", zarr_format=2, attributes={"a": 1})
    g.create_array("x/y", shape=(3,), dtype="i4", chunks=(2,))[...] = [1, 2, 3]
    og = oxzarr.open_group(tmp_path / "z.zarr", mode="r")
    assert og.zarr_format == 2 and og.attrs["a"] == 1
    assert og["x/y"][...].tolist() == [1, 2, 3]
    assert isinstance(oxzarr.open(tmp_path / "z.zarr", mode="r"), oxzarr.Group)
    o = oxzarr.create_group(tmp_path / "o.zarr", zarr_format=2, attributes={"b": 2})
    o.create_array("p/q", shape=(2,), dtype="u2")[...] = [5, 6]
    assert (tmp_path / "o.zarr" / "p" / ".zgroup").is_file()
    zg = zarr.open_group(tmp_path / "o.zarr", mode="r")
    assert zg.attrs["b"] == 2 and zg["p/q"][...].tolist() == [5, 6]
    o.attrs["c"] = 3
    assert json.loads((tmp_path / "o.zarr" / ".zattrs").read_text()) == {"b": 2, "c": 3}


@pytest.mark.parametrize(
    ("dtype", "filters", "compressors", "stored"),
    [
        (str, None, [{"id": "vlen-utf8"}], (None, "vlen-utf8")),
        (
            str,
            [{"id": "vlen-utf8"}, {"id": "zlib", "level": 1}],
            None,
            (["vlen-utf8", "zlib"], None),
        ),
        (object, [{"id": "vlen-bytes"}], None, (["vlen-bytes"], None)),
        (object, None, [{"id": "vlen-bytes"}], (None, "vlen-bytes")),
        (object, [{"id": "vlen-utf8"}], None, (["vlen-utf8"], None)),
        (bytes, None, None, (["vlen-bytes"], None)),
    ],
)
def test_object_codecs_given_are_not_doubled(
    tmp_path: Path, dtype: Any, filters: Any, compressors: Any, stored: Any
) -> None:
    """An object codec given in the filters or as the compressor is the one stored, as
    zarr-python stores it; numpy's objects are the text or bytes it says. A second one was put
    in front of it (and objects were always text): zarr-python could not read the chunks."""
    a = oxzarr.create_array(
        tmp_path / "a", shape=(2,), chunks=(2,), dtype=dtype, zarr_format=2,
        filters=filters, compressors=compressors,
    )  # fmt: skip
    doc = json.loads((tmp_path / "a" / ".zarray").read_text())
    filter_ids = [f["id"] for f in doc["filters"]] if doc["filters"] else None
    assert (filter_ids, (doc["compressor"] or {}).get("id")) == stored
    is_bytes = "vlen-bytes" in str(stored)
    values = np.array([b"a", b"\xff"] if is_bytes else ["x", "y\u00e9"], dtype=object)
    a[...] = values
    for read in (a[...], zarr.open_array(tmp_path / "a", mode="r")[...]):
        assert read.tolist() == values.tolist()


@pytest.mark.parametrize(
    ("dtype", "filters", "compressors", "message"),
    [
        (str, [{"id": "vlen-bytes"}], None, "stored with vlen-utf8, not vlen-bytes"),
        (bytes, [{"id": "vlen-utf8"}], None, "stored with vlen-bytes, not vlen-utf8"),
        (object, [{"id": "vlen-utf8"}], [{"id": "vlen-bytes"}], "one object codec"),
        (str, [{"id": "zlib", "level": 1}, {"id": "vlen-utf8"}], None, "comes first"),
    ],
)
def test_object_codecs_that_cannot_store_the_elements(
    tmp_path: Path, dtype: Any, filters: Any, compressors: Any, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        oxzarr.create_array(
            tmp_path / "a", shape=(2,), dtype=dtype, zarr_format=2,
            filters=filters, compressors=compressors,
        )  # fmt: skip
    assert not (tmp_path / "a").exists()


def test_create_takes_zarr_python_2s_object_codec(tmp_path: Path) -> None:
    """zarr-python 2's object_codec= is the v2 codec of the elements (it was refused as an
    unknown keyword); v3 arrays take theirs from the dtype."""
    import numcodecs

    a = oxzarr.create(
        shape=(2,), store=tmp_path / "a", dtype=object, zarr_format=2,
        object_codec=numcodecs.VLenBytes(),
    )  # fmt: skip
    a[...] = np.array([b"x", b"\xff"], dtype=object)
    assert json.loads((tmp_path / "a" / ".zarray").read_text())["filters"] == [{"id": "vlen-bytes"}]
    assert zarr.open_array(tmp_path / "a", mode="r")[...].tolist() == [b"x", b"\xff"]
    with pytest.raises(ValueError, match="object_codec is a Zarr v2 setting"):
        oxzarr.create(
            shape=(2,), store=tmp_path / "b", dtype=str, object_codec=numcodecs.VLenUTF8()
        )


def test_a_filter_widening_one_byte_values_gets_a_byte_order_in_v3(tmp_path: Path) -> None:
    """The bytes codec took the array's dtype, not the filters': a uint8 array delta-coded
    into <i2 named no byte order, which v3 refuses (convert of zarr-python's v2 array failed)."""
    import numcodecs

    from oxzarr.convert import convert

    values = np.array([0, 200, 3, 255, 7, 9], dtype="u1")
    source = zarr.create_array(
        tmp_path / "v2.zarr",
        shape=(6,),
        chunks=(3,),
        dtype="u1",
        zarr_format=2,
        filters=[numcodecs.Delta(dtype="|u1", astype="<i2")],
    )
    source[...] = values
    convert(tmp_path / "v2.zarr", tmp_path / "v3.zarr", zarr_format=3)
    converted = oxzarr.open_array(tmp_path / "v3.zarr")
    assert_same(converted[...], values)
    codecs = json.loads((tmp_path / "v3.zarr" / "zarr.json").read_text())["codecs"]
    assert codecs[1] == {"name": "bytes", "configuration": {"endian": "little"}}
    # Without a filter that widens, a one-byte array's bytes codec names none, as before.
    plain = oxzarr.create_array(tmp_path / "plain.zarr", shape=(2,), dtype="u1")
    assert plain.metadata.to_dict()["codecs"][0] == {"name": "bytes"}


def _random_values(dtype: Any, shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Elements of any fixed-size `dtype` made of random bytes."""
    dt = np.dtype(dtype)
    raw = np.random.default_rng(seed).integers(0, 256, math.prod(shape) * dt.itemsize)
    return raw.astype("u1").view(dt).reshape(shape)


@pytest.mark.parametrize("dtype", [">f8", ">i4", ">U3", "<M8[s]", "S8", "V4"], ids=str)
def test_reads_of_v2_dtypes_are_not_copied_into_their_dtype(tmp_path: Path, dtype: str) -> None:
    # Results the engine fills in its own dtype were converted into the stored one with a
    # copy of their whole size: a big-endian one (now swapped in place), and dtypes equal to
    # the engine's but not numpy's one object of them (datetimes, bytes, void: now not at all).
    import tracemalloc

    shape, chunks = (400, 300), (128, 64)
    points = (np.arange(100_000) % 400, np.arange(100_000) % 300)

    def peaks(a: Any) -> dict[str, tuple[int, Any]]:
        """The traced peak of each read of `a`, and its result."""
        reads: dict[str, Any] = {
            "whole": lambda: a[...],
            "slices": lambda: a[1:399, 2:],
            "points": lambda: a.get_coordinate_selection(points),
        }
        measured = {}
        for name, read in reads.items():
            read()  # warm up: the engine's buffers exist before the measure
            tracemalloc.start()
            try:
                got = read()
                measured[name] = (tracemalloc.get_traced_memory()[1], got)
            finally:
                tracemalloc.stop()
        return measured

    z = zarr.create_array(tmp_path / "a", shape=shape, chunks=chunks, dtype=dtype, zarr_format=2)
    z[...] = _random_values(dtype, shape, 0)
    # The same reads of a v3 array of the engine's own dtype: what a read costs without any
    # conversion (its output, the selection's index arrays).
    native = np.dtype(dtype).newbyteorder("=")
    oxzarr.create_array(tmp_path / "b", shape=shape, chunks=chunks, dtype=native)
    baseline = peaks(oxzarr.open_array(tmp_path / "b", mode="r"))
    expected = {
        "whole": z[...],
        "slices": z[1:399, 2:],
        "points": z.get_coordinate_selection(points),
    }
    for name, (peak, got) in peaks(oxzarr.open_array(tmp_path / "a", mode="r")).items():
        assert got.dtype == z.dtype, name
        assert got.tobytes() == expected[name].tobytes(), name
        assert peak - baseline[name][0] < got.nbytes / 2, f"{name}: {peak} bytes at the peak"


@pytest.mark.parametrize("dtype", ["<i2", ">f8", "S3", [("a", "<u2"), ("b", ">f4")]], ids=str)
def test_fortran_ordered_selections_read_and_write_as_numpy(tmp_path: Path, dtype: Any) -> None:
    # An "F" array's reads and F-order writes go through the engine in F order (chunks as
    # they are stored, not transposed); every selection must still be numpy's.
    p = tmp_path / "f.zarr"
    shape, chunks = (7, 9, 5), (3, 4, 2)
    a = oxzarr.create_array(
        p, shape=shape, chunks=chunks, dtype=dtype, zarr_format=2, order="F",
        compressors={"id": "zstd", "level": 1}, fill_value=None,
    )  # fmt: skip
    model = _random_values(dtype, shape, 0)
    a[...] = np.asfortranarray(model)
    selections: list[Any] = [
        Ellipsis,
        (slice(1, 6), slice(None, None, 3), 4),
        (2, slice(8, 0, -2)),
        (slice(None), 3),
        (-1, -2, -3),
        (slice(2, 2), slice(None), slice(None)),
    ]
    for key in selections:
        got = a[key]
        # (An Ellipsis keeps a 0-d result an array, of the array's own byte order.)
        assert_same(got, model[key] if key is Ellipsis else model[(*key, ...)])
        assert got.flags.f_contiguous or np.ndim(got) < 2, key
        if np.ndim(model[key]) > 1:
            out = np.zeros(model[key].shape, dtype=model.dtype, order="F")
            assert a.get_basic_selection(key, out=out) is out
            assert_same(out, model[key])
    assert_same(a.oindex[[0, 6, 2], :, [4, 1]], model[np.ix_([0, 6, 2], range(9), [4, 1])])
    assert_same(a.blocks[1, 2, 0], model[3:6, 8:9, 0:2])
    # Writes of F-order values, of C-order ones, of a list and of one element.
    new = _random_values(dtype, (4, 9, 5), 1)
    a[2:6] = np.asfortranarray(new)
    model[2:6] = new
    a[:, 1:3, 1] = np.ascontiguousarray(new[0, :7, :2])
    model[:, 1:3, 1] = new[0, :7, :2]
    a[6, 4:6, :] = new[1, :2, :].tolist()
    model[6, 4:6, :] = new[1, :2, :]
    a[0, 0, 0] = model[6, 8, 4]
    model[0, 0, 0] = model[6, 8, 4]
    assert_same(a[...], model)
    assert_same(zarr.open_array(p, mode="r")[...], model)


def _value_filter_chains() -> list[Any]:
    import numcodecs

    shuffle = numcodecs.Shuffle
    blosc = numcodecs.Blosc(cname="lz4", clevel=5, shuffle=numcodecs.Blosc.SHUFFLE)
    return [
        ("<i4", [shuffle(elementsize=4), numcodecs.Delta(dtype="<i4")], None),
        (">i4", [shuffle(elementsize=4), numcodecs.Delta(dtype=">i4", astype=">i8")], None),
        ("<i4", [numcodecs.CRC32(), numcodecs.Delta(dtype="<u2")], None),
        ("<i8", [shuffle(elementsize=8), numcodecs.AsType("<i2", "<i8")], None),
        (
            "<i4",
            [
                shuffle(elementsize=4),
                numcodecs.FixedScaleOffset(offset=5, scale=2, dtype="<i4", astype="<i8"),
            ],
            None,
        ),
        ("<i4", [numcodecs.Adler32(), numcodecs.Delta(dtype=">i4")], None),
        # numcodecs' blosc takes its typesize from the filter's output: 8-byte values here.
        ("<i4", [shuffle(elementsize=4), numcodecs.Delta(dtype="<i4", astype="<i8")], blosc),
    ]


@pytest.mark.parametrize("chain", range(7))
def test_value_filters_after_filters_on_bytes_both_ways(tmp_path: Path, chain: int) -> None:
    # numcodecs hands a value filter (delta, astype...) whatever buffer the filter before it
    # left, viewed as the filter's own dtype: zarr-python writes such chains and reads them.
    # oxzarr refused them ("an array->array codec cannot follow the array->bytes codec").
    dtype, filters, compressor = _value_filter_chains()[chain]
    values = (np.arange(60).reshape(6, 10) * 3 - 40).astype(dtype)
    kwargs: dict[str, Any] = {"shape": values.shape, "chunks": (4, 4), "dtype": dtype}
    kwargs |= {"zarr_format": 2, "filters": filters, "fill_value": 0}
    kwargs["compressors"] = compressor
    theirs = zarr.create_array(tmp_path / "theirs.zarr", **kwargs)
    theirs[...] = values
    ours = oxzarr.create_array(tmp_path / "ours.zarr", **kwargs)
    ours[...] = values
    expected = zarr.open_array(tmp_path / "theirs.zarr", mode="r")[...]
    assert_same(oxzarr.open_array(tmp_path / "theirs.zarr", mode="r")[...], expected)
    assert_same(zarr.open_array(tmp_path / "ours.zarr", mode="r")[...], expected)
    for key in ("0.0", "1.2"):
        assert (tmp_path / "ours.zarr" / key).read_bytes() == (
            tmp_path / "theirs.zarr" / key
        ).read_bytes(), key


# The other byte order than the machine's: a v2 dtype stored in it is what zarr-python hands
# out, and oxzarr reads and writes its elements as stored.
_OTHER = ">" if np.little_endian else "<"
_OTHER_ORDER_DTYPES = [
    _OTHER + d for d in ["i2", "i4", "u8", "f4", "f8", "c8", "c16", "M8[s]", "m8[ms]", "U3"]
]


def _other_order_values(dtype: str, shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Values of `dtype` (in the other byte order) that zarr-python and numpy hold alike."""
    dt = np.dtype(dtype)
    rng = np.random.default_rng(seed)
    if dt.kind == "U":
        words = np.array(["", "a", "xyz", "é€", "\U0001f600b", "Zz "], dtype=dt)
        return words[rng.integers(0, len(words), shape)]
    if dt.kind in "Mm":
        ints = rng.integers(-(2**40), 2**40, shape, dtype=np.int64)
        ints.flat[0] = np.iinfo(np.int64).min  # NaT
        return ints.view(dt.newbyteorder("=")).astype(dt)
    return sample(shape, dt.newbyteorder("=")).astype(dt)


def _other_order_fills(dtype: str) -> list[Any]:
    """Fill values to try: the default, one of the type, NaN for floats."""
    kind = np.dtype(dtype).kind
    explicit = {"i": 7, "u": 7, "f": -1.5, "c": 1 - 2j, "M": 86400, "m": -5, "U": "ab"}[kind]
    return [None, explicit] + ([float("nan")] if kind in "fc" else [])


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("dtype", _OTHER_ORDER_DTYPES)
def test_other_byte_order_reads_as_zarr_python_reads(
    tmp_path: Path, dtype: str, order: str
) -> None:
    # Every kind of read of what zarr-python wrote, with and without the decoded-chunk cache:
    # the same values, in the stored dtype, byte for byte.
    shape, chunks = (9, 7), (4, 3)
    values = _other_order_values(dtype, shape, 0)
    mask = np.zeros(shape, dtype=bool)
    mask[[0, 3, 8, 8], [6, 0, 1, 2]] = True
    dense = np.zeros(shape, dtype=bool)
    dense[2:6, 1:5] = np.arange(16).reshape(4, 4) % 3 == 0
    case = 0
    for compressor in [None, {"id": "zstd", "level": 1}]:
        for fill in _other_order_fills(dtype):
            case += 1
            p = tmp_path / f"{case}.zarr"
            z = zarr.create_array(
                p, shape=shape, chunks=chunks, dtype=dtype, zarr_format=2, fill_value=fill,
                order=order, compressors=_numcodecs(compressor),  # type: ignore[arg-type]
            )  # fmt: skip
            z[:6] = values[:6]  # the last chunks are never written: the fill value
            expected = z[...]
            for budget in [0, 1 << 20]:
                with oxzarr.config.set({"chunk_cache_bytes": budget}):
                    a = oxzarr.open_array(p, mode="r")
                    assert a.dtype == z.dtype == np.dtype(dtype)
                    assert_same(np.asarray(a.fill_value), np.asarray(z.fill_value))
                    for _ in range(2):  # the second from the cache, when there is one
                        got = a[...]
                        assert_same(got, expected)
                        assert got.flags.f_contiguous == (order == "F")
                    assert_same(a[1:8:2, ::-3], expected[1:8:2, ::-3])
                    assert_same(a[7, 2], z[7, 2])
                    assert_same(a[np.int64(4)], expected[4])
                    assert_same(a.oindex[[0, 8, 3], [6, 0]], z.oindex[[0, 8, 3], [6, 0]])
                    assert_same(a.vindex[[0, 8, 3], [6, 0, 2]], z.vindex[[0, 8, 3], [6, 0, 2]])
                    assert_same(a.vindex[mask], z.vindex[mask])
                    assert_same(a.vindex[dense], z.vindex[dense])
                    assert_same(a.blocks[1, 2], z.blocks[1, 2])
                    assert_same(a.blocks[2, 0], z.blocks[2, 0])
                    # Into buffers of the stored dtype and of the machine's, in either order.
                    for out_dtype in [a.dtype, a.dtype.newbyteorder("=")]:
                        out = np.zeros((7, 7), dtype=out_dtype, order=order)
                        assert a.get_basic_selection(slice(2, 9), out=out) is out
                        assert_same(out, expected[2:9].astype(out_dtype))
                        points = np.zeros(3, dtype=out_dtype)
                        a.get_coordinate_selection(([0, 8, 3], [6, 0, 2]), out=points)
                        assert_same(points, z.vindex[[0, 8, 3], [6, 0, 2]].astype(out_dtype))


def _chunk_files(root: Path) -> dict[str, bytes]:
    return {
        str(f.relative_to(root)): f.read_bytes()
        for f in root.rglob("*")
        if f.is_file() and not f.name.startswith(".z")
    }


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("dtype", _OTHER_ORDER_DTYPES)
def test_other_byte_order_writes_as_zarr_python_writes(
    tmp_path: Path, dtype: str, order: str
) -> None:
    # The same writes of every kind, of values in the stored byte order and in the machine's,
    # by oxzarr and by zarr-python: the same chunks stored (uncompressed, the same bytes)
    # and the same values read back.
    shape, chunks = (9, 7), (4, 3)
    stored = np.dtype(dtype)
    machine = stored.newbyteorder("=")
    mask = np.zeros(shape, dtype=bool)
    mask[[0, 3, 8, 8], [6, 0, 1, 2]] = True
    case = 0
    for compressor in [None, {"id": "zstd", "level": 1}]:
        for fill in _other_order_fills(dtype):
            case += 1
            kwargs: dict[str, Any] = {"shape": shape, "chunks": chunks, "dtype": dtype}
            kwargs |= {"zarr_format": 2, "fill_value": fill, "order": order}
            theirs = zarr.create_array(
                tmp_path / f"theirs{case}", compressors=_numcodecs(compressor), **kwargs
            )
            ours = oxzarr.create_array(tmp_path / f"ours{case}", compressors=compressor, **kwargs)
            values = [_other_order_values(dtype, shape, seed) for seed in range(8)]
            # Not the default fill value (zero, "", NaT), which a v2 array without one stores.
            zero = np.zeros((), dtype=dtype)
            one = next(v for v in values[7].flat if v != zero and v == v)
            nan = np.dtype(dtype).kind in "fc" and fill is not None and np.isnan(fill)
            for x in (theirs, ours):
                x[...] = values[0]  # stored order
                x[1:5, 2:6] = values[1][1:5, 2:6].astype(machine)
                x[:, 1:4] = np.asfortranarray(values[2][:, 1:4])
                x[2:7:2, 1::2] = values[3][2:7:2, 1::2].astype(machine).tolist()
                x.vindex[[0, 8, 3], [6, 1, 3]] = values[4][0, :3]
                x.vindex[mask] = values[5][mask].astype(machine)
                x.oindex[[7, 1], [5, 0, 2]] = values[6][:2, :3]
                x.blocks[0, 1] = values[7][:4, 3:6].astype(machine)
                x[4, 4] = one
                # One value over more than a chunk: the fill value drops the chunks it
                # covers (NaNs of any sign or payload, for a NaN fill value).
                x[4:9, :] = theirs.fill_value if fill is not None else one
                if nan:
                    x[0:4, 0:3] = np.full((4, 3), np.copysign(np.nan, -1), dtype=stored)
                    x[0:4, 3:6] = np.full((4, 3), np.copysign(np.nan, -1), dtype=machine)
                # Handles made again by the metadata's changes write as the first did.
                x.attrs["k"] = 1
                x.resize((11, 7))
                x[9:11] = values[0][:2].astype(machine)
                x[8:11, 5] = values[1][:3, 0]
            assert sorted(_chunk_files(tmp_path / f"ours{case}")) == sorted(
                _chunk_files(tmp_path / f"theirs{case}")
            ), (compressor, fill)
            if compressor is None:
                assert _chunk_files(tmp_path / f"ours{case}") == _chunk_files(
                    tmp_path / f"theirs{case}"
                ), fill
            expected = zarr.open_array(tmp_path / f"theirs{case}", mode="r")[...]
            assert_same(zarr.open_array(tmp_path / f"ours{case}", mode="r")[...], expected)
            assert_same(oxzarr.open_array(tmp_path / f"ours{case}", mode="r")[...], expected)


@pytest.mark.parametrize("dtype", [_OTHER + "i4", _OTHER + "f8"])
def test_other_byte_order_reads_and_writes_convert_nothing(tmp_path: Path, dtype: str) -> None:
    # A v2 dtype in the other byte order than the machine's is read and written by the
    # engine in that order: reads into buffers of the stored dtype and writes of values in
    # it took a copy of their whole size (values converted to the machine's order for the
    # engine, and back). Values in the machine's order still go to the engine as they are.
    import tracemalloc

    shape, chunks = (400, 300), (128, 64)
    a = oxzarr.create_array(
        tmp_path / "a", shape=shape, chunks=chunks, dtype=dtype, zarr_format=2, compressors=None
    )
    stored = _other_order_values(dtype, shape, 0)
    machine = stored.astype(np.dtype(dtype).newbyteorder("="))

    def peak(operation: Any) -> int:
        operation()  # warm up: the engine's buffers exist before the measure
        tracemalloc.start()
        try:
            operation()
            return int(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()

    peaks = {}
    for values in (stored, machine):
        out = np.empty_like(values)
        fortran = np.asfortranarray(values)
        operations = {
            "write": lambda: a.__setitem__(Ellipsis, values),  # noqa: B023
            "write F": lambda: a.__setitem__(Ellipsis, fortran),  # noqa: B023
            "read out": lambda: a.get_basic_selection(Ellipsis, out=out),  # noqa: B023
        }
        for name, operation in operations.items():
            peaks[f"{values.dtype} {name}"] = peak(operation)
        assert_same(out, values)
        assert_same(a[...], stored)
    assert max(peaks.values()) < stored.nbytes / 4, f"bytes at the peak: {peaks}"
