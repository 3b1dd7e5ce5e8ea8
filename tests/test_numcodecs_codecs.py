"""numcodecs codecs in Zarr v3 arrays, named ``numcodecs.<id>`` as zarr-python 3 writes them
(``zarr.codecs.numcodecs``): oxzarr reads what zarr-python writes, zarr-python reads what
oxzarr writes, and where the codec is deterministic both store the same chunk bytes."""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numcodecs
import numpy as np
import pytest
import zarr
import zarr.codecs.numcodecs as nc

import oxzarr
from tests.conftest import assert_same, sample

SHAPE = (13, 6)
#: 15 elements a chunk: an odd number of bytes for one-byte types (fletcher32's padding).
CHUNKS = (5, 3)

#: zarr-python's class for each numcodecs id.
CLASSES = {
    "zlib": nc.Zlib,
    "bz2": nc.BZ2,
    "lz4": nc.LZ4,
    "lzma": nc.LZMA,
    "shuffle": nc.Shuffle,
    "crc32": nc.CRC32,
    "adler32": nc.Adler32,
    "fletcher32": nc.Fletcher32,
    "crc32c": nc.CRC32C,
    "jenkins_lookup3": nc.JenkinsLookup3,
    "zstd": nc.Zstd,
    "gzip": nc.GZip,
    "blosc": nc.Blosc,
    "delta": nc.Delta,
    "fixedscaleoffset": nc.FixedScaleOffset,
    "quantize": nc.Quantize,
    "bitround": nc.BitRound,
    "astype": nc.AsType,
    "packbits": nc.PackBits,
}


def codec(id: str, **config: Any) -> dict[str, Any]:
    """A numcodecs codec's v3 metadata."""
    return {"name": f"numcodecs.{id}", "configuration": config}


@dataclass(frozen=True)
class Case:
    dtype: str
    filters: list[dict[str, Any]] = field(default_factory=list)
    compressors: list[dict[str, Any]] = field(default_factory=list)
    #: Whether decoding gives back the values written.
    lossless: bool = True
    #: Whether oxzarr writes the same chunk bytes as zarr-python (see the cases for why not).
    same_bytes: bool = True
    #: Values drawn uniformly from this range instead of `sample` (lossy filters that need
    #: their values in the encoded type's range).
    span: tuple[float, float] | None = None


# zlib and gzip streams come from zlib-rs, not zlib 1.2: valid, but other bytes. blosc frames
# record a type size of the data type's (numcodecs in v2 does the same), where zarr-python's v3
# wrapper hands numcodecs bytes and so records 1.
CASES: dict[str, Case] = {
    "zlib": Case("int32", compressors=[codec("zlib", level=1)], same_bytes=False),
    "zlib-default": Case("float64", compressors=[codec("zlib")], same_bytes=False),
    "bz2": Case("int32", compressors=[codec("bz2", level=9)]),
    "bz2-default": Case("uint8", compressors=[codec("bz2")]),
    "lz4": Case("float64", compressors=[codec("lz4", acceleration=1)]),
    "lz4-default": Case("int16", compressors=[codec("lz4")]),
    "lzma": Case("uint16", compressors=[codec("lzma")]),
    "lzma-alone": Case("int64", compressors=[codec("lzma", format=2, preset=1)]),
    "lzma-crc32": Case("float32", compressors=[codec("lzma", check=1, preset=0)]),
    "shuffle-lz4": Case("float32", compressors=[codec("shuffle"), codec("lz4")]),
    "shuffle-6": Case("int16", compressors=[codec("shuffle", elementsize=6), codec("bz2")]),
    "crc32": Case("int16", compressors=[codec("crc32")]),
    "crc32-end": Case("uint8", compressors=[codec("crc32", location="end")]),
    "adler32": Case("float32", compressors=[codec("lz4"), codec("adler32")]),
    "adler32-end": Case("int8", compressors=[codec("adler32", location="end")]),
    "fletcher32": Case("int32", compressors=[codec("fletcher32")]),
    "fletcher32-odd": Case("uint8", compressors=[codec("fletcher32")]),
    "crc32c": Case("float64", compressors=[codec("crc32c")]),
    "crc32c-start": Case("int16", compressors=[codec("crc32c", location="start")]),
    # 15 bytes a chunk: one whole block of lookup3's 12 and a short last one.
    "jenkins_lookup3": Case("uint8", compressors=[codec("jenkins_lookup3")]),
    "jenkins_lookup3-seeded": Case(
        "float64", compressors=[codec("zstd"), codec("jenkins_lookup3", initval=4_000_000_000)]
    ),
    "zstd": Case("int32", compressors=[codec("zstd", level=3)]),
    "zstd-checksum": Case("float32", compressors=[codec("zstd", level=1, checksum=True)]),
    "gzip": Case("int32", compressors=[codec("gzip")], same_bytes=False),
    "blosc": Case("float32", compressors=[codec("blosc", cname="zstd", clevel=5, shuffle=2)]),
    # zarr-python hands numcodecs the chunk's bytes, whose typesize is 1: eight-byte elements
    # were shuffled as eight bytes wide.
    "blosc-wide-elements": Case("float64", compressors=[codec("blosc", cname="lz4")]),
    "blosc-typesize": Case(
        "int32", compressors=[codec("blosc", cname="lz4", clevel=5, shuffle=1, typesize=4)]
    ),
    # One-byte elements: the type sizes agree, and AUTOSHUFFLE is bit shuffle.
    "blosc-autoshuffle": Case("uint8", compressors=[codec("blosc", shuffle=-1)]),
    "delta": Case("int32", filters=[codec("delta", dtype="<i4")], compressors=[codec("bz2")]),
    "delta-wider": Case("int16", filters=[codec("delta", dtype="int16", astype="<i4")]),
    # Narrower or mixed types overflow: numcodecs wraps the differences and accumulates in the
    # promoted type (float64 for uint64 and int64), and so must oxzarr. numcodecs refuses a first
    # value that does not fit the encoded type.
    "delta-narrower": Case(
        "int16",
        filters=[codec("delta", dtype="<i2", astype="|i1")],
        lossless=False,
        span=(-128, 127),
    ),
    "delta-uint64-int64": Case(
        "uint64",
        filters=[codec("delta", dtype="<u8", astype="<i8")],
        lossless=False,
        span=(0, 2.0**62),
    ),
    "delta-float32-float64": Case(
        "float32", filters=[codec("delta", dtype="<f4", astype="<f8")], lossless=False
    ),
    "delta-float64": Case("float64", filters=[codec("delta", dtype="<f8")], lossless=False),
    "fixedscaleoffset": Case(
        "float64",
        filters=[codec("fixedscaleoffset", offset=1000, scale=10, dtype="<f8", astype="|u1")],
        compressors=[codec("zstd")],
        lossless=False,
        span=(1000, 1025),
    ),
    "fixedscaleoffset-filled-dtype": Case(
        "float32",
        filters=[codec("fixedscaleoffset", offset=0.1, scale=3.3, astype="<i2")],
        lossless=False,
        span=(-9000, 9000),
    ),
    "fixedscaleoffset-int": Case(
        "int32",
        filters=[codec("fixedscaleoffset", offset=3, scale=2, dtype="<i4", astype="<i4")],
        lossless=False,
    ),
    "fixedscaleoffset-int-float-scale": Case(
        "int16",
        filters=[codec("fixedscaleoffset", offset=-7, scale=0.25, dtype="<i2", astype="<i2")],
        lossless=False,
    ),
    "quantize": Case("float64", filters=[codec("quantize", digits=3, dtype="<f8")], lossless=False),
    # (zarr-python 3.1.6 cannot read Quantize with another astype: it keeps the array's dtype
    # for the encoded chunks.)
    "quantize-filled-dtype": Case("float32", filters=[codec("quantize", digits=1)], lossless=False),
    "bitround-float32": Case("float32", filters=[codec("bitround", keepbits=7)], lossless=False),
    "bitround-float64": Case("float64", filters=[codec("bitround", keepbits=20)], lossless=False),
    "bitround-float16": Case("float16", filters=[codec("bitround", keepbits=4)], lossless=False),
    "astype-float32": Case(
        "float64",
        filters=[codec("astype", encode_dtype="<f4", decode_dtype="<f8")],
        compressors=[codec("lz4")],
        lossless=False,
    ),
    "astype-filled-dtype": Case("int32", filters=[codec("astype", encode_dtype="<f8")]),
    "astype-narrower": Case(
        "int64", filters=[codec("astype", encode_dtype="<i2", decode_dtype="<i8")], lossless=False
    ),
    "packbits": Case(
        "bool", filters=[codec("packbits")], compressors=[codec("zlib")], same_bytes=False
    ),
    "packbits-raw": Case("bool", filters=[codec("packbits")]),
}


def zarr_codecs(chain: list[dict[str, Any]]) -> list[Any]:
    """zarr-python's codec objects for a list of numcodecs metadata."""
    return [CLASSES[c["name"].removeprefix("numcodecs.")](**c["configuration"]) for c in chain]


def values_for(case: Case) -> np.ndarray:
    if case.span is None:
        return sample(SHAPE, case.dtype)
    low, high = case.span
    return np.random.default_rng(0).uniform(low, high, SHAPE).astype(case.dtype)


def write_with_zarr(path: Path, case: Case, values: np.ndarray) -> None:
    z = zarr.create_array(
        str(path),
        shape=SHAPE,
        chunks=CHUNKS,
        dtype=case.dtype,
        filters=zarr_codecs(case.filters),
        compressors=zarr_codecs(case.compressors) or None,
    )
    z[...] = values


def chunk_files(path: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(path)): p.read_bytes() for p in (path / "c").rglob("*") if p.is_file()
    }


@pytest.mark.parametrize("name", CASES)
def test_oxzarr_reads_what_zarr_python_writes(tmp_path: Path, name: str) -> None:
    case = CASES[name]
    values = values_for(case)
    path = tmp_path / "theirs.zarr"
    write_with_zarr(path, case, values)
    expected = zarr.open_array(str(path), mode="r")[...]
    if case.lossless:
        assert_same(expected, values)
    a = oxzarr.open_array(str(path), mode="r")
    assert_same(a[...], expected)
    assert_same(a[2:9, 1:5], expected[2:9, 1:5])
    assert [c.to_dict()["name"] for c in a.filters] == [c["name"] for c in case.filters]
    assert [c.to_dict()["name"] for c in a.compressors] == [c["name"] for c in case.compressors]


@pytest.mark.parametrize("name", CASES)
def test_zarr_python_reads_what_oxzarr_writes(tmp_path: Path, name: str) -> None:
    case = CASES[name]
    values = values_for(case)
    ours, theirs = tmp_path / "ours.zarr", tmp_path / "theirs.zarr"
    a = oxzarr.create_array(
        str(ours),
        shape=SHAPE,
        chunks=CHUNKS,
        dtype=case.dtype,
        filters=case.filters or None,
        compressors=case.compressors or None,
    )
    a[...] = values
    write_with_zarr(theirs, case, values)
    # zarr-python decodes oxzarr's chunks to what it decodes its own to: for lossy filters,
    # this says oxzarr encoded the same values.
    expected = zarr.open_array(str(theirs), mode="r")[...]
    assert_same(zarr.open_array(str(ours), mode="r")[...], expected)
    assert_same(oxzarr.open_array(str(ours), mode="r")[...], expected)
    if case.same_bytes:
        assert chunk_files(ours) == chunk_files(theirs)
    # The codecs are written back with numcodecs' parameters, which numcodecs takes.
    for c in json.loads((ours / "zarr.json").read_text())["codecs"]:
        if c["name"].startswith("numcodecs."):
            numcodecs.get_codec({"id": c["name"].removeprefix("numcodecs."), **c["configuration"]})


@pytest.mark.parametrize(
    ("zarr_format", "given"),
    [
        (2, {"name": "delta"}),
        (2, {"id": "delta"}),
        (2, {"id": "astype", "encode_dtype": "<i8"}),
        (2, numcodecs.Delta(dtype="<i4")),
        (3, {"name": "numcodecs.delta"}),
        (3, {"name": "numcodecs.astype", "configuration": {"encode_dtype": "<i8"}}),
    ],
    ids=["v2 name", "v2 id", "v2 astype", "v2 numcodecs", "v3", "v3 astype"],
)
def test_filters_named_without_their_dtype_get_the_arrays(
    tmp_path: Path, zarr_format: int, given: Any
) -> None:
    # numcodecs cannot build these without the data type (`{"id": "delta"}` alone was written
    # as it was, and zarr-python could not open the array); oxzarr reads them with the array's.
    a = oxzarr.create_array(
        tmp_path / "a.zarr", shape=(6,), dtype="i4", filters=[given], zarr_format=zarr_format
    )
    a[...] = np.arange(6) * 5
    z = zarr.open_array(tmp_path / "a.zarr", mode="r")
    assert z[...].tolist() == [0, 5, 10, 15, 20, 25]
    doc = json.loads(
        (tmp_path / "a.zarr" / (".zarray" if zarr_format == 2 else "zarr.json")).read_text()
    )
    stored = doc["filters"][0] if zarr_format == 2 else doc["codecs"][0]["configuration"]
    assert stored["decode_dtype" if "astype" in str(given) else "dtype"] == "<i4"


@pytest.mark.parametrize(
    "given",
    [
        {"id": "delta"},
        {"id": "astype", "encode_dtype": ">i2"},
        {"id": "fixedscaleoffset", "offset": 1, "scale": 10},
    ],
    ids=lambda g: g["id"],
)
def test_v2_filters_of_big_endian_arrays_get_the_stored_dtype(
    tmp_path: Path, given: dict[str, Any]
) -> None:
    # numcodecs views the stored elements as the filter's dtype: "<i4" on a ">i4" array was
    # written when the array's dtype was filled in, and zarr-python read other values.
    a = oxzarr.create_array(
        tmp_path / "a.zarr", shape=(6,), dtype=">i4", filters=[given], zarr_format=2
    )
    a[...] = np.arange(6) * 5 - 7
    stored = json.loads((tmp_path / "a.zarr" / ".zarray").read_text())["filters"][0]
    assert stored["decode_dtype" if given["id"] == "astype" else "dtype"] == ">i4"
    assert zarr.open_array(tmp_path / "a.zarr", mode="r")[...].tolist() == [-7, -2, 3, 8, 13, 18]


def test_v2_filters_in_the_other_byte_order_are_refused(tmp_path: Path) -> None:
    # Delta(dtype="<i4") on a ">i4" array works, in numcodecs, on the elements' bytes
    # swapped. zarr-python reads its own such arrays back; oxzarr read other values, and now
    # refuses them.
    z = zarr.create_array(
        tmp_path / "z.zarr",
        shape=(6,),
        dtype=">i4",
        filters=[numcodecs.Delta(dtype="<i4")],
        zarr_format=2,
    )
    z[...] = np.arange(6)
    with pytest.raises(ValueError, match="other byte order"):
        oxzarr.open_array(tmp_path / "z.zarr", mode="r")[...]


def test_v2_shuffle_without_an_element_size(tmp_path: Path) -> None:
    # numcodecs reads `{"id": "shuffle"}` as Shuffle(elementsize=4), whatever the data type.
    # oxzarr read it with the data type's size, so a store written that way read wrong values;
    # and it wrote the filter without a size, which zarr-python then read wrong.
    data = np.linspace(0, 1, 12)  # float64: elements of 8 bytes
    theirs = zarr.create_array(
        tmp_path / "z.zarr", shape=(12,), dtype="f8", filters=[numcodecs.Shuffle()], zarr_format=2
    )
    theirs[...] = data
    zarray = tmp_path / "z.zarr" / ".zarray"
    doc = json.loads(zarray.read_text())
    assert doc["filters"] == [{"id": "shuffle", "elementsize": 4}]
    doc["filters"] = [{"id": "shuffle"}]
    zarray.write_text(json.dumps(doc))
    assert zarr.open_array(tmp_path / "z.zarr", mode="r")[...].tolist() == data.tolist()
    assert oxzarr.open_array(tmp_path / "z.zarr", mode="r")[...].tolist() == data.tolist()

    ours = oxzarr.create_array(
        tmp_path / "o.zarr", shape=(12,), dtype="f8", filters=[{"id": "shuffle"}], zarr_format=2
    )
    ours[...] = data
    stored = json.loads((tmp_path / "o.zarr" / ".zarray").read_text())["filters"]
    assert stored == [{"id": "shuffle", "elementsize": 8}]
    assert zarr.open_array(tmp_path / "o.zarr", mode="r")[...].tolist() == data.tolist()


def test_bitround_under_its_extension_name(tmp_path: Path) -> None:
    """zarr-extensions registers `bitround` with numcodecs' configuration (zarr-python 3.1.6
    does not know it yet)."""
    values = sample(SHAPE, "float32")
    ours, theirs = tmp_path / "ours.zarr", tmp_path / "theirs.zarr"
    a = oxzarr.create_array(
        str(ours),
        shape=SHAPE,
        chunks=CHUNKS,
        dtype="float32",
        filters=[{"name": "bitround", "configuration": {"keepbits": 7}}],
        compressors=None,
    )
    a[...] = values
    write_with_zarr(theirs, CASES["bitround-float32"], values)
    assert_same(a[...], zarr.open_array(str(theirs), mode="r")[...])
    assert chunk_files(ours) == chunk_files(theirs)
    assert [c.to_dict()["name"] for c in oxzarr.open_array(str(ours)).filters] == ["bitround"]


def test_bitround_of_integers_under_its_extension_name_only(tmp_path: Path) -> None:
    """The zarr-extensions codec rounds integers; numcodecs' refuses them, and so does oxzarr
    for arrays it makes under numcodecs' name, in both formats."""
    a = oxzarr.create_array(
        tmp_path / "ext.zarr",
        shape=(4,),
        dtype="uint8",
        filters=[{"name": "bitround", "configuration": {"keepbits": 3}}],
    )
    a[...] = [10, 12, 96, 255]
    assert a[...].tolist() == [10, 12, 96, 224]
    with pytest.raises(ValueError, match="floats only"):
        oxzarr.create_array(
            tmp_path / "v2.zarr",
            shape=(4,),
            dtype="uint8",
            filters=[{"id": "bitround", "keepbits": 3}],
            zarr_format=2,
        )
    assert not (tmp_path / "v2.zarr").exists()


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_numcodecs_bitround_checks_the_dtype_the_filters_before_it_give(
    tmp_path: Path, zarr_format: int
) -> None:
    # The "floats only" check looked at the array's dtype: integers cast to floats first were
    # refused (zarr-python writes them), and floats cast to integers first were stored
    # rounded as integers (numcodecs refuses to write them).
    def filters(encode: str, decode: str, keepbits: int) -> list[Any]:
        if zarr_format == 2:
            return [
                numcodecs.AsType(encode_dtype=encode, decode_dtype=decode),
                numcodecs.BitRound(keepbits=keepbits),
            ]
        return [
            codec("astype", encode_dtype=encode, decode_dtype=decode),
            codec("bitround", keepbits=keepbits),
        ]

    values = np.array([0, 1001, 2002, 3003], dtype="i4")
    a = oxzarr.create_array(
        tmp_path / "ints.zarr",
        shape=(4,),
        dtype="i4",
        filters=filters("<f8", "<i4", 10),
        zarr_format=zarr_format,
    )
    a[...] = values
    theirs = zarr.open_array(tmp_path / "ints.zarr", mode="r")[...]
    assert a[...].tolist() == theirs.tolist() == [0, 1001, 2002, 3004]
    with pytest.raises(ValueError, match=r"floats only.*not int32, the dtype the filters before"):
        oxzarr.create_array(
            tmp_path / "floats.zarr",
            shape=(4,),
            dtype="f8",
            filters=filters("<i4", "<f8", 3),
            zarr_format=zarr_format,
        )
    assert not (tmp_path / "floats.zarr").exists()


@pytest.mark.parametrize(
    ("name", "rounded"),
    [
        ("bitround_uint8", [0, 1, 10, 12, 96, 128, 192, 192, 224, 224]),
        ("bitround_float32", [0.0, 0.1015625, 1.25, 12.0, 120.0, 1280.0, np.nan, np.inf, -np.inf]),
    ],
)
def test_zarr_extensions_bitround_sample_data(
    shared: Path, name: str, rounded: list[float]
) -> None:
    """The codec's sample data (keepbits 3) reads as its README's table of rounded values:
    integers round from their most significant set bit, saturating."""
    path = shared / "conformance/zarr-extensions/codecs/bitround/sample_data" / f"{name}.zarr"
    a = oxzarr.open_array(str(path), mode="r")
    assert_same(a[...], np.array(rounded, dtype=a.dtype))


@pytest.mark.parametrize(
    ("dtype", "filters", "compressors", "message"),
    [
        ("int32", [], [codec("zlib", level=1, wbits=15)], "unknown configuration key"),
        ("int32", [], [codec("lzma", filters=[{"id": 33}])], "filters"),
        ("int32", [], [codec("lzma", format=3)], "format"),
        ("int32", [], [codec("bz2", level=0)], "level"),
        ("int32", [codec("delta", dtype="<i2")], [], "dtype"),
        ("int32", [codec("quantize", digits=2)], [], "numcodecs.quantize"),
        ("float32", [codec("bitround", keepbits=24)], [], "keepbits"),
        ("bool", [codec("bitround", keepbits=2)], [], "numcodecs.bitround"),
        # numcodecs rounds only floats; zarr-python read such an array as zeros.
        ("int16", [codec("bitround", keepbits=3)], [], "floats only.*'bitround' rounds them"),
        ("complex64", [codec("bitround", keepbits=3)], [], "floats only"),
        ("int8", [codec("packbits")], [], "numcodecs.packbits"),
        ("float64", [codec("fixedscaleoffset", scale=2)], [], "offset"),
        ("float64", [codec("astype", encode_dtype="<c16")], [], "encode_dtype"),
        ("int32", [], [codec("crc32", location="middle")], "location"),
    ],
)
def test_bad_configurations_are_refused(
    tmp_path: Path,
    dtype: str,
    filters: list[dict[str, Any]],
    compressors: list[dict[str, Any]],
    message: str,
) -> None:
    with pytest.raises(ValueError, match=message):
        oxzarr.create_array(
            str(tmp_path / "a.zarr"),
            shape=SHAPE,
            chunks=CHUNKS,
            dtype=dtype,
            filters=filters or None,
            compressors=compressors or None,
        )


def test_corrupt_checksums_are_detected(tmp_path: Path) -> None:
    values = sample(SHAPE, "int32")
    for id in ("crc32", "adler32", "fletcher32", "crc32c", "jenkins_lookup3"):
        path = tmp_path / f"{id}.zarr"
        write_with_zarr(path, Case("int32", compressors=[codec(id)]), values)
        chunk = path / "c" / "1" / "1"
        data = bytearray(chunk.read_bytes())
        data[len(data) // 2] ^= 1
        chunk.write_bytes(bytes(data))
        a = oxzarr.open_array(str(path), mode="r")
        with pytest.raises(ValueError, match="checksum"):
            a[...]
        with oxzarr.config.set({"validate_checksums": False}):
            assert a[...].shape == SHAPE


@pytest.mark.parametrize("fill", [1.23, 1.0, np.nan])
@pytest.mark.parametrize(
    "filter_",
    [
        codec("fixedscaleoffset", offset=0, scale=10, dtype="<f8", astype="<i2"),
        codec("quantize", digits=1, dtype="<f8"),
        codec("astype", encode_dtype="<f4", decode_dtype="<f8"),
    ],
    ids=["fixedscaleoffset", "quantize", "astype"],
)
def test_inner_chunks_after_an_outer_filter_are_left_out_as_zarr_python_leaves_them_out(
    tmp_path: Path, filter_: Any, fill: float
) -> None:
    """With a filter before the sharding codec, oxzarr left out inner chunks equal to the
    fill value run through the filter; zarr-python compares them with the fill value cast to
    the filter's type, and reads a missing one as that. zarr-python read oxzarr's shards as
    0.1 where oxzarr read 1.2, or could not read them (a NaN fill into integers)."""
    sharding = {
        "name": "sharding_indexed",
        "configuration": {
            "chunk_shape": [2],
            "codecs": [{"name": "bytes", "configuration": {"endian": "little"}}],
            "index_codecs": [
                {"name": "bytes", "configuration": {"endian": "little"}},
                {"name": "crc32c"},
            ],
            "index_location": "end",
        },
    }
    for values in ([5.0, 5.0], [5.0, 5.0, 0.1, 0.1], [5.0, 5.0, 1.0, 1.0]):
        stored = {}
        for lib in (zarr, oxzarr):
            path = tmp_path / f"{lib.__name__}-{len(values)}-{values[-1]}.zarr"
            a = lib.create_array(
                path,
                shape=(4,),
                chunks=(4,),
                dtype="f8",
                fill_value=fill,
                filters=[filter_],
                serializer=sharding,
                compressors=None,
            )
            with warnings.catch_warnings():
                # numcodecs casting a NaN fill to integers, when zarr-python writes.
                warnings.simplefilter("ignore", RuntimeWarning)
                a[: len(values)] = values
            stored[lib.__name__] = (path / "c" / "0").read_bytes()
            ours = oxzarr.open_array(path, mode="r")[...]
            theirs = zarr.open_array(path, mode="r")[...]
            np.testing.assert_array_equal(ours, theirs)
        assert stored["oxzarr"] == stored["zarr"], values
