"""Interoperability with the real peers, both directions: what zarr-python and TensorStore
write, oxzarr reads exactly; what oxzarr writes, they read exactly."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numcodecs
import numpy as np
import pytest
import tensorstore as ts
import zarr
import zarr.codecs as zc

import oxzarr
from tests.conftest import DTYPES, assert_same, sample

SHAPE = (11, 7, 5)
CHUNKS = (4, 3, 5)

#: Codec chains as JSON metadata (both sides take this form).
CHAINS: dict[str, list[dict[str, Any]]] = {
    "raw": [{"name": "bytes", "configuration": {"endian": "little"}}],
    "zstd": [
        {"name": "bytes", "configuration": {"endian": "little"}},
        {"name": "zstd", "configuration": {"level": 5, "checksum": True}},
    ],
    "blosc-lz4": [
        {"name": "bytes", "configuration": {"endian": "little"}},
        {
            "name": "blosc",
            "configuration": {
                "cname": "lz4",
                "clevel": 5,
                "shuffle": "shuffle",
                "typesize": 4,
                "blocksize": 0,
            },
        },
    ],
    "gzip-crc32c-big": [
        {"name": "bytes", "configuration": {"endian": "big"}},
        {"name": "gzip", "configuration": {"level": 3}},
        {"name": "crc32c"},
    ],
    "transpose-blosc-zstd": [
        {"name": "transpose", "configuration": {"order": [2, 0, 1]}},
        {"name": "bytes", "configuration": {"endian": "little"}},
        {
            "name": "blosc",
            "configuration": {
                "cname": "zstd",
                "clevel": 3,
                "shuffle": "bitshuffle",
                "typesize": 1,
                "blocksize": 0,
            },
        },
    ],
}


def _for_dtype(chain: list[dict[str, Any]], dtype: str) -> list[dict[str, Any]]:
    """The chain with the bytes codec's endian dropped for one-byte types (the spec and
    zarr-python leave it out there)."""
    out = []
    for c in chain:
        if c["name"] == "bytes" and np.dtype(dtype).itemsize == 1:
            c = {"name": "bytes"}
        out.append(c)
    return out


def _zarr_codecs(chain: list[dict[str, Any]]) -> dict[str, Any]:
    """create_array's filters/serializer/compressors for a chain, as zarr-python objects."""
    kinds: dict[str, Any] = {"filters": [], "serializer": None, "compressors": []}
    for c in chain:
        cfg = c.get("configuration", {})
        if c["name"] == "transpose":
            kinds["filters"].append(zc.TransposeCodec(**cfg))
        elif c["name"] == "bytes":
            kinds["serializer"] = zc.BytesCodec(**cfg)
        elif c["name"] == "zstd":
            kinds["compressors"].append(zc.ZstdCodec(**cfg))
        elif c["name"] == "gzip":
            kinds["compressors"].append(zc.GzipCodec(**cfg))
        elif c["name"] == "blosc":
            kinds["compressors"].append(zc.BloscCodec(**cfg))
        elif c["name"] == "crc32c":
            kinds["compressors"].append(zc.Crc32cCodec())
    return kinds


def _fill(dtype: str) -> Any:
    return {"b": False, "f": float("nan"), "c": complex(1, -1)}.get(np.dtype(dtype).kind, 3)


PARAMS = [(d, c) for d in DTYPES for c in CHAINS]


@pytest.mark.parametrize(("dtype", "chain"), PARAMS)
def test_oxzarr_reads_zarr_python(tmp_path: Path, dtype: str, chain: str) -> None:
    data = sample(SHAPE, dtype)
    p = tmp_path / "zp.zarr"
    z = zarr.create_array(
        p,
        shape=SHAPE,
        dtype=dtype,
        chunks=CHUNKS,
        fill_value=_fill(dtype),
        **_zarr_codecs(_for_dtype(CHAINS[chain], dtype)),
    )
    z[...] = data
    z[:4, :3, :] = _fill(dtype)  # a chunk zarr-python does not store
    expected = z[...]
    a = oxzarr.open_array(p, mode="r")
    assert_same(a[...], expected)
    assert_same(a[2:9:2, ::-1, 3], expected[2:9:2, ::-1, 3])


@pytest.mark.parametrize(("dtype", "chain"), PARAMS)
def test_zarr_python_reads_oxzarr(tmp_path: Path, dtype: str, chain: str) -> None:
    data = sample(SHAPE, dtype)
    p = tmp_path / "ox.zarr"
    codecs = _for_dtype(CHAINS[chain], dtype)
    split = next(i for i, c in enumerate(codecs) if c["name"] == "bytes")
    a = oxzarr.create_array(
        p,
        shape=SHAPE,
        dtype=dtype,
        chunks=CHUNKS,
        fill_value=_fill(dtype),
        filters=codecs[:split],
        serializer=codecs[split],
        compressors=codecs[split + 1 :],
        attributes={"by": "oxzarr"},
        dimension_names=["z", "y", "x"],
    )
    a[...] = data
    a[:4, :3, :] = _fill(dtype)
    expected = a[...]
    z = zarr.open_array(p, mode="r")
    assert_same(z[...], expected)
    assert z.attrs["by"] == "oxzarr"
    assert z.metadata.dimension_names == ("z", "y", "x")


def _ts_spec(path: Path) -> dict[str, Any]:
    return {"driver": "zarr3", "kvstore": {"driver": "file", "path": str(path)}}


def _ts_fill(dtype: str) -> Any:
    fill = _fill(dtype)
    if isinstance(fill, complex):
        return [fill.real, fill.imag]
    if isinstance(fill, float):
        return "NaN"
    return fill


@pytest.mark.parametrize(("dtype", "chain"), PARAMS)
def test_oxzarr_reads_tensorstore(tmp_path: Path, dtype: str, chain: str) -> None:
    data = sample(SHAPE, dtype)
    p = tmp_path / "ts.zarr"
    t = ts.open(
        {
            **_ts_spec(p),
            "create": True,
            "metadata": {
                "shape": list(SHAPE),
                "data_type": dtype,
                "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": list(CHUNKS)}},
                "codecs": _for_dtype(CHAINS[chain], dtype),
                "fill_value": _ts_fill(dtype),
            },
        }
    ).result()
    t[4:, :, :].write(data[4:]).result()
    expected = t.read().result()
    assert_same(oxzarr.open_array(p, mode="r")[...], expected)


@pytest.mark.parametrize(("dtype", "chain"), PARAMS)
def test_tensorstore_reads_oxzarr(tmp_path: Path, dtype: str, chain: str) -> None:
    data = sample(SHAPE, dtype)
    p = tmp_path / "ox.zarr"
    codecs = _for_dtype(CHAINS[chain], dtype)
    split = next(i for i, c in enumerate(codecs) if c["name"] == "bytes")
    a = oxzarr.create_array(
        p,
        shape=SHAPE,
        dtype=dtype,
        chunks=CHUNKS,
        fill_value=_fill(dtype),
        filters=codecs[:split],
        serializer=codecs[split],
        compressors=codecs[split + 1 :],
    )
    a[4:] = data[4:]
    expected = a[...]
    t = ts.open({**_ts_spec(p), "open": True}).result()
    assert_same(t.read().result(), expected)


V2_COMPRESSORS = {
    "none": None,
    "zlib": {"id": "zlib", "level": 3},
    "blosc": {"id": "blosc", "cname": "lz4", "clevel": 5, "shuffle": 1, "blocksize": 0},
    "zstd": {"id": "zstd", "level": 1},
}


@pytest.mark.parametrize("compressor", list(V2_COMPRESSORS))
@pytest.mark.parametrize("dtype", ["<i2", ">i4", "<f4", ">f8", "|u1", "|b1", "<c8"])
def test_v2_with_tensorstore_both_ways(tmp_path: Path, dtype: str, compressor: str) -> None:
    # TensorStore's "zarr" driver (Zarr v2): both byte orders, both memory orders.
    # TensorStore takes and gives values in the machine's byte order.
    native = np.dtype(dtype).newbyteorder("=")
    data = sample((9, 7), native).astype(dtype)
    codec = V2_COMPRESSORS[compressor]
    for order in "CF":
        ours = tmp_path / f"ox-{order}.zarr"
        a = oxzarr.create_array(
            ours,
            shape=data.shape,
            chunks=(4, 3),
            dtype=dtype,
            compressors=codec,
            order=order,
            zarr_format=2,
        )
        a[2:] = data[2:]
        expected = a[...]
        spec = {"driver": "zarr", "kvstore": {"driver": "file", "path": str(ours)}}
        stored = ts.open({**spec, "open": True}).result().read().result()
        assert_same(stored, expected.astype(native))
        theirs = tmp_path / f"ts-{order}.zarr"
        metadata = {
            "shape": list(data.shape),
            "chunks": [4, 3],
            "dtype": dtype,
            "compressor": codec,
            "order": order,
            "fill_value": None,
        }
        spec = {"driver": "zarr", "kvstore": {"driver": "file", "path": str(theirs)}}
        t = ts.open({**spec, "create": True, "metadata": metadata}).result()
        t[2:].write(data[2:].astype(native)).result()
        # A chunk TensorStore left unwritten reads as zeros without a fill value, as there.
        back = oxzarr.open_array(theirs, mode="r")[...]
        assert back.dtype == np.dtype(dtype)
        assert_same(back.astype(native), t.read().result())


def test_chunk_key_encodings_with_peers(tmp_path: Path) -> None:
    data = sample((6, 4), "u2")
    for i, enc in enumerate(
        [
            {"name": "default", "configuration": {"separator": "."}},
            {"name": "v2", "configuration": {"separator": "."}},
            {"name": "v2", "configuration": {"separator": "/"}},
        ]
    ):
        p = tmp_path / f"{i}.zarr"
        a = oxzarr.create_array(p, shape=(6, 4), dtype="u2", chunks=(4, 3), chunk_key_encoding=enc)
        a[...] = data
        assert_same(zarr.open_array(p, mode="r")[...], data)
        assert_same(ts.open({**_ts_spec(p), "open": True}).result().read().result(), data)
        q = tmp_path / f"zp{i}.zarr"
        z = zarr.create_array(q, shape=(6, 4), dtype="u2", chunks=(4, 3), chunk_key_encoding=enc)
        z[...] = data
        assert_same(oxzarr.open_array(q, mode="r")[...], data)


def test_zero_dimensional_with_peers(tmp_path: Path) -> None:
    p = tmp_path / "s.zarr"
    a = oxzarr.create_array(p, shape=(), dtype="f8", fill_value=1.0)
    a[...] = 42.5
    assert zarr.open_array(p, mode="r")[...] == 42.5
    assert ts.open({**_ts_spec(p), "open": True}).result().read().result() == 42.5
    q = tmp_path / "zs.zarr"
    z = zarr.create_array(q, shape=(), dtype="i4")
    z[...] = -7
    assert oxzarr.open_array(q, mode="r")[...] == -7


@pytest.mark.parametrize("writer", ["zarr-v3", "zarr-v3-sharded", "zarr-v2-F", "tensorstore"])
def test_parts_of_large_transposed_chunks(tmp_path: Path, writer: str) -> None:
    # Chunks of 512 KiB, so a zstd frame holds several blocks and a read of part of a chunk
    # can stop decoding early; oxzarr reads only the transposed place of what it needs.
    shape, chunks = (100, 70, 40), (64, 64, 32)
    data = sample(shape, "u4")
    p = tmp_path / "t.zarr"
    zstd = {"name": "zstd", "configuration": {"level": 1, "checksum": False}}
    order = [2, 0, 1]
    if writer == "tensorstore":
        t = ts.open(
            {
                **_ts_spec(p),
                "create": True,
                "metadata": {
                    "shape": list(shape),
                    "data_type": "uint32",
                    "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": chunks}},
                    "codecs": [
                        {"name": "transpose", "configuration": {"order": order}},
                        {"name": "bytes", "configuration": {"endian": "little"}},
                        zstd,
                    ],
                    "fill_value": 0,
                },
            }
        ).result()
        t.write(data).result()
    elif writer == "zarr-v2-F":
        z = zarr.create_array(
            p,
            shape=shape,
            dtype="<u4",
            chunks=chunks,
            zarr_format=2,
            order="F",
            compressors=numcodecs.Zstd(level=1),
        )
        z[...] = data
    else:
        z = zarr.create_array(
            p,
            shape=shape,
            dtype="u4",
            chunks=chunks,
            shards=(128, 128, 64) if writer == "zarr-v3-sharded" else None,
            filters=[zc.TransposeCodec(order=order)],
            compressors=[zc.ZstdCodec(level=1)],
        )
        z[...] = data
    a = oxzarr.open_array(p, mode="r")
    rng = np.random.default_rng(5)
    for _ in range(40):
        point = tuple(int(rng.integers(0, n)) for n in shape)
        assert a[point] == data[point]
    for sel in [
        np.s_[:, :, 31],
        np.s_[:, 63, :],
        np.s_[70, :, :],
        np.s_[10:90:3, 5:66, 20:39],
        np.s_[::-7, 1::9, ::2],
        np.s_[99, 69, 39],
    ]:
        assert_same(a[sel], data[sel])
    coords = tuple(rng.integers(0, n, 500) for n in shape)
    assert_same(a.vindex[coords], data[coords])


NON_FINITE = {"nan": float("nan"), "inf": float("inf"), "list": [float("-inf"), 1.5, "NaN"]}


def _check_non_finite(attrs: Any) -> None:
    assert np.isnan(attrs["nan"]) and attrs["inf"] == float("inf")
    # The string "NaN" stays a string; the numbers stay numbers.
    assert attrs["list"][0] == float("-inf") and attrs["list"][1:] == [1.5, "NaN"]


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_non_finite_attributes_with_zarr_python(tmp_path: Path, zarr_format: int) -> None:
    # Python's json writes NaN and Infinity as bare tokens, which strict JSON parsers refuse;
    # zarr-python stores attributes that way, so oxzarr reads and writes them as it does.
    theirs = tmp_path / "theirs.zarr"
    g = zarr.open_group(theirs, mode="w", zarr_format=zarr_format, attributes=NON_FINITE)
    g.create_array("a", shape=(2,), dtype="f4", attributes=NON_FINITE)
    zarr.consolidate_metadata(theirs)
    for opened in (oxzarr.open_group(theirs, mode="r"), oxzarr.open_consolidated(theirs)):
        _check_non_finite(opened.attrs)
        _check_non_finite(opened["a"].attrs)
    ours = tmp_path / "ours.zarr"
    og = oxzarr.open_group(ours, mode="w", zarr_format=zarr_format, attributes=NON_FINITE)
    oa = og.create_array("a", shape=(2,), dtype="f4", fill_value=0)
    oa.attrs.update(NON_FINITE)
    oxzarr.consolidate_metadata(ours)
    _check_non_finite(oxzarr.open_consolidated(ours)["a"].attrs)
    _check_non_finite(zarr.open_group(ours, mode="r").attrs)
    _check_non_finite(zarr.open_array(ours / "a", mode="r").attrs)
    _check_non_finite(zarr.open_consolidated(ours, mode="r")["a"].attrs)


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_strings_like_the_non_finite_markers(tmp_path: Path, zarr_format: int) -> None:
    # oxzarr reads bare NaN/Infinity as marker strings of a NUL and the token: real strings
    # of that text (attributes, string fill values) must stay strings, both ways.
    texts = {"a": "\x00NaN", "b": ["\x00\x00-Infinity", "\x00Infinity"], "c": float("nan")}
    ours, theirs = tmp_path / "ours.zarr", tmp_path / "theirs.zarr"
    for writer, path in ((oxzarr, ours), (zarr, theirs)):
        writer.create_array(
            path,
            shape=(2,),
            dtype="U5",
            fill_value="\x00NaN",
            attributes=texts,
            zarr_format=zarr_format,
        )
    for path in (ours, theirs):
        for lib in (oxzarr, zarr):
            a = lib.open_array(path, mode="r")
            attrs = dict(a.attrs)
            assert attrs["a"] == texts["a"] and attrs["b"] == texts["b"], (lib, path)
            assert np.isnan(attrs["c"])
            assert a.fill_value == "\x00NaN", (lib, path)


# Numbers JSON holds that neither a 64-bit integer nor a double holds exactly.
EXACT_NUMBERS = {
    "big": 2**70 + 1,
    "negative": -(2**65) - 3,
    "digits": 0.1000000000000000055511151231257827,
    "list": [2**64, -(2**63), 2**64 - 1],
}


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_attribute_numbers_stay_as_written(tmp_path: Path, zarr_format: int) -> None:
    # Attributes went through 64-bit numbers in the engine: 2**70 + 1 came back as a float,
    # where Python's json and zarr-python keep every digit of an integer.
    ours = tmp_path / "ours.zarr"
    og = oxzarr.open_group(ours, mode="w", zarr_format=zarr_format, attributes=EXACT_NUMBERS)
    og.create_array("a", shape=(2,), dtype="f4").attrs.update(EXACT_NUMBERS)
    oxzarr.consolidate_metadata(ours)
    for attrs in (
        oxzarr.open_group(ours, mode="r").attrs,
        oxzarr.open_consolidated(ours)["a"].attrs,
        zarr.open_group(ours, mode="r").attrs,
        zarr.open_consolidated(ours, mode="r")["a"].attrs,
    ):
        assert dict(attrs) == EXACT_NUMBERS
        assert type(attrs["big"]) is int
    theirs = tmp_path / "theirs.zarr"
    zarr.open_group(theirs, mode="w", zarr_format=zarr_format, attributes=EXACT_NUMBERS)
    assert dict(oxzarr.open_group(theirs, mode="r").attrs) == EXACT_NUMBERS


@pytest.mark.parametrize("dtype", ["u1", "f4", "i8"])
@pytest.mark.parametrize(
    "codec",
    [
        zc.BloscCodec(),
        zc.BloscCodec(cname="lz4", clevel=3),
        zc.BloscCodec(typesize=2, shuffle="noshuffle"),
        zc.ZstdCodec(level=5, checksum=True),
        zc.GzipCodec(level=2),
    ],
    ids=["blosc-default", "blosc-lz4", "blosc-fixed", "zstd", "gzip"],
)
def test_zarr_python_codec_objects_store_what_zarr_python_stores(
    tmp_path: Path, dtype: str, codec: Any
) -> None:
    # zarr-python's Blosc leaves typesize and shuffle to be set from the dtype; a codec
    # object handed to oxzarr must end up with the settings zarr-python itself would store.

    oxzarr.create_array(tmp_path / "o", shape=(4,), dtype=dtype, compressors=codec)
    zarr.create_array(tmp_path / "z", shape=(4,), dtype=dtype, compressors=codec)
    ours = json.loads((tmp_path / "o" / "zarr.json").read_text())["codecs"]
    theirs = json.loads((tmp_path / "z" / "zarr.json").read_text())["codecs"]
    assert ours == theirs
    # ... and the same document, byte for byte (the order of a codec's settings included).
    ours_doc, theirs_doc = (tmp_path / name / "zarr.json" for name in ("o", "z"))
    assert ours_doc.read_bytes() == theirs_doc.read_bytes()


@pytest.mark.parametrize(
    "dtype", ["S5", "V4", "U3", "i1", "bool", "<i2", ">f8", str, [("a", "<i4"), ("b", ">f8")]]
)
def test_default_codecs_as_zarr_python_writes_them(tmp_path: Path, dtype: Any) -> None:
    # The bytes codec's endian is written only for types with a byte order: not for bytes
    # and raw bytes (as zarr-python and the spec leave it out), nor one-byte numbers, nor
    # records (whose fields carry it). The whole zarr.json is the same bytes as zarr-python's:
    # vlen-utf8 with its empty configuration included.
    oxzarr.create_array(tmp_path / "o", shape=(4,), dtype=dtype)
    zarr.create_array(tmp_path / "z", shape=(4,), dtype=dtype)
    ours_doc, theirs_doc = (tmp_path / name / "zarr.json" for name in ("o", "z"))
    assert ours_doc.read_bytes() == theirs_doc.read_bytes()
    if np.dtype(dtype).names:
        values = np.array([(1, 2.5), (-3, 4.0), (5, 6.0), (7, -8.0)], dtype=dtype)
        oxzarr.open_array(tmp_path / "z", mode="r+")[:] = values
        np.testing.assert_array_equal(zarr.open_array(tmp_path / "z")[:], values)
        # (Cast first: zarr-python stores record fields in the byte order they are given.)
        theirs = zarr.open_array(tmp_path / "o", mode="r+")
        theirs[:] = values[::-1].astype(theirs.dtype)
        np.testing.assert_array_equal(oxzarr.open_array(tmp_path / "o")[:], values[::-1])


@pytest.mark.parametrize(
    ("dtype", "codecs"),
    [
        ("i4", {"filters": ["delta"], "compressors": ["lz4"]}),
        ("i4", {"compressors": ["shuffle", "zlib"]}),
        ("f8", {"filters": ["quantize", "astype"], "compressors": ["bz2", "crc32"]}),
        ("i4", {"filters": ["fixedscaleoffset"], "compressors": ["zstd", "adler32"]}),
        ("u2", {"compressors": ["blosc", "jenkins"], "shards": (8,)}),
        ("f4", {"filters": ["bitround"], "compressors": ["gzip", "lzma"]}),
    ],
    ids=str,
)
def test_numcodecs_codecs_as_zarr_python_writes_them(
    tmp_path: Path, dtype: str, codecs: dict[str, Any]
) -> None:
    # zarr-python writes a numcodecs codec's configuration as it was given, adding only what
    # it takes from the array (a shuffle's element size), not numcodecs' other defaults.
    import zarr.codecs.numcodecs as nz

    made = {
        "delta": lambda: nz.Delta(dtype="<i4"),
        "lz4": nz.LZ4,
        "shuffle": nz.Shuffle,
        "zlib": lambda: nz.Zlib(level=3),
        "quantize": lambda: nz.Quantize(digits=3, dtype="<f8"),
        "astype": lambda: nz.AsType(encode_dtype="<f8", decode_dtype="<f8"),
        "bz2": nz.BZ2,
        "crc32": nz.CRC32,
        "fixedscaleoffset": lambda: nz.FixedScaleOffset(offset=1, scale=2, dtype="<i4"),
        "zstd": nz.Zstd,
        "adler32": nz.Adler32,
        "blosc": nz.Blosc,
        "jenkins": nz.JenkinsLookup3,
        "bitround": lambda: nz.BitRound(keepbits=5),
        "gzip": nz.GZip,
        "lzma": nz.LZMA,
    }
    kwargs: dict[str, Any] = {"shape": (16,), "chunks": (4,), "dtype": dtype}
    for key in ("filters", "compressors"):
        kwargs[key] = [made[name]() for name in codecs.get(key, [])]
    if "shards" in codecs:
        kwargs["shards"] = codecs["shards"]
    values = np.arange(16).astype(dtype)
    for lib, name in ((oxzarr, "o"), (zarr, "z")):
        lib.create_array(tmp_path / name, **kwargs)[...] = values
    ours, theirs = ((tmp_path / name / "zarr.json").read_bytes() for name in ("o", "z"))
    assert ours == theirs
    assert_same(zarr.open_array(tmp_path / "o")[...], zarr.open_array(tmp_path / "z")[...])


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_group_documents_as_zarr_python_writes_them(tmp_path: Path, zarr_format: int) -> None:
    # A hierarchy made and consolidated the same way by both libraries is stored as the same
    # bytes: group documents (v2 .zgroup indented; v3 consolidated_metadata before node_type,
    # with the empty nested consolidated_metadata zarr-python gives each subgroup's entry).
    for lib, name in ((oxzarr, "o"), (zarr, "z")):
        root = lib.open_group(tmp_path / name, mode="w", zarr_format=zarr_format)
        root.attrs["title"] = "t"
        sub = root.create_group("sub")
        sub.create_group("deeper")
        sub.create_array("inner", shape=(3,), dtype="i2", compressors=None)
        root.create_array("top", shape=(2, 2), dtype="f8", compressors=None)
        if zarr_format == 3:
            lib.consolidate_metadata(tmp_path / name)
    documents = ["sub/zarr.json", "sub/deeper/zarr.json", "top/zarr.json"]
    if zarr_format == 2:
        documents = [".zgroup", ".zattrs", "sub/.zgroup", "sub/deeper/.zgroup", "top/.zarray"]
    for key in documents:
        ours, theirs = ((tmp_path / name / key).read_bytes() for name in ("o", "z"))
        assert ours == theirs, key
    if zarr_format == 3:
        # The order of the consolidated entries is zarr-python's traversal order, which
        # varies; everything else, each entry's own key order included, is the same.
        ours, theirs = (
            json.loads((tmp_path / name / "zarr.json").read_text()) for name in ("o", "z")
        )
        assert list(ours) == list(theirs)
        ours_entries, theirs_entries = (
            d["consolidated_metadata"]["metadata"] for d in (ours, theirs)
        )
        assert sorted(ours_entries) == sorted(theirs_entries)
        for key, entry in theirs_entries.items():
            assert json.dumps(ours_entries[key]) == json.dumps(entry), key
    # Subgroups opened through the consolidated root and changed keep their own documents.
    sub = oxzarr.open_group(tmp_path / "z", mode="r+")["sub"]
    sub.attrs["changed"] = True
    assert sorted(zarr.open_group(tmp_path / "z" / "sub", use_consolidated=False)) == [
        "deeper",
        "inner",
    ]


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_zstd_levels_beyond_its_range(tmp_path: Path, zarr_format: int) -> None:
    # numcodecs stores any level and libzstd clamps it, so zarr-python writes arrays with
    # levels past zstd's range; they open, and writes to them clamp the level too.
    import numcodecs

    if zarr_format == 2:
        compressors: Any = numcodecs.Zstd(level=23)
    else:
        compressors = zc.ZstdCodec(level=-200000)
    z = zarr.create_array(
        tmp_path / "a", shape=(8,), chunks=(4,), dtype="i4",
        zarr_format=zarr_format, compressors=compressors,
    )  # fmt: skip
    z[...] = np.arange(8)
    a = oxzarr.open_array(tmp_path / "a", mode="r+")
    assert_same(a[...], np.arange(8, dtype="i4"))
    a[:4] = -1
    assert_same(zarr.open_array(tmp_path / "a")[...], np.r_[[-1] * 4, 4:8].astype("i4"))


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_attributes_with_lone_surrogates(tmp_path: Path, zarr_format: int) -> None:
    # Python's os.fsdecode gives file names that are not UTF-8 lone surrogates; zarr-python
    # stores them as JSON escapes and reads them back, and so must oxzarr, both ways.
    name = "data\udcff.nc"
    zarr.create_array(
        tmp_path / "a", shape=(2,), dtype="i1", attributes={"src": name}, zarr_format=zarr_format
    )
    ours = oxzarr.open_array(tmp_path / "a")
    assert ours.attrs["src"] == name
    ours.attrs["more"] = "b\udc80"
    assert zarr.open_array(tmp_path / "a").attrs.asdict() == {"src": name, "more": "b\udc80"}
    group = oxzarr.open_group(tmp_path / "g", mode="w", zarr_format=zarr_format)
    group.attrs["n"] = "\ud800 alone"
    assert zarr.open_group(tmp_path / "g").attrs["n"] == "\ud800 alone"


def test_deeply_nested_attributes_zarr_python_writes(tmp_path: Path) -> None:
    """Attributes nested deeper than serde_json's default limit (128) are read, in the array's
    document and through the group's consolidated metadata, as deep as zarr-python writes them
    (they made the array, its group's listing and the consolidated group unreadable). A
    document nested past Python's own limit is refused as invalid metadata."""
    deep: Any = 1
    for _ in range(900):
        deep = [deep]
    g = zarr.open_group(tmp_path / "g", mode="w")
    g.create_array("a", shape=(2,), dtype="i1", attributes={"deep": deep})
    g.create_array("b", shape=(2,), dtype="i1", fill_value=3)
    assert oxzarr.open_array(tmp_path / "g" / "a").attrs["deep"] == deep
    assert sorted(oxzarr.open_group(tmp_path / "g").keys()) == ["a", "b"]
    zarr.consolidate_metadata(tmp_path / "g")
    consolidated = oxzarr.open_consolidated(tmp_path / "g")
    assert consolidated["a"].attrs["deep"] == deep
    assert consolidated["b"][...].tolist() == [3, 3]
    oxzarr.open_array(tmp_path / "g" / "b").attrs["deep"] = deep
    assert zarr.open_array(tmp_path / "g" / "b").attrs["deep"] == deep
    doc = tmp_path / "g" / "a" / "zarr.json"
    too_deep = "[" * 100_000 + "]" * 100_000
    doc.write_text(doc.read_text().replace('"attributes": {', f'"attributes": {{"x": {too_deep},'))
    with pytest.raises(oxzarr.errors.MetadataValidationError, match=r"zarr\.json.*nested"):
        oxzarr.open_array(tmp_path / "g" / "a")


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_metadata_hand_edited_on_windows_and_minus_zero(tmp_path: Path, zarr_format: int) -> None:
    # Editors on Windows save UTF-8 with a byte-order mark, which Python's json and
    # TensorStore skip; and "-0" is a JSON integer Python reads as 0.
    path = tmp_path / "a.zarr"
    zarr.create_array(path, shape=(4,), dtype="i4", zarr_format=zarr_format)[...] = [1, 2, 3, 4]
    document = path / ("zarr.json" if zarr_format == 3 else ".zarray")
    if zarr_format == 2:
        (path / ".zattrs").write_bytes(b"\xef\xbb\xbf" + json.dumps({"units": "m"}).encode())
    document.write_bytes(b"\xef\xbb\xbf" + document.read_bytes())
    assert zarr.open_array(path, mode="r")[...].tolist() == [1, 2, 3, 4]
    ours = oxzarr.open_array(path, mode="r")
    assert ours[...].tolist() == [1, 2, 3, 4]
    if zarr_format == 2:
        assert ours.attrs.asdict() == {"units": "m"}
    empty = tmp_path / "e.zarr"
    zarr.create_array(empty, shape=(0, 4), dtype="i4", zarr_format=zarr_format)
    document = empty / ("zarr.json" if zarr_format == 3 else ".zarray")
    doc = json.loads(document.read_text())
    document.write_text(json.dumps(doc).replace('"shape": [0, 4]', '"shape": [-0, 4]'))
    assert "[-0, 4]" in document.read_text()
    assert zarr.open_array(empty, mode="r").shape == (0, 4)
    assert oxzarr.open_array(empty, mode="r").shape == (0, 4)


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_blosc_typesize_past_255(tmp_path: Path, zarr_format: int) -> None:
    # zarr-python writes the element's size (300 for S300), which c-blosc takes as a stream
    # of bytes; oxzarr refused such arrays and could not make them.
    values = np.array([b"x" * 300, b"yz"], dtype="S300")
    theirs = zarr.create_array(
        tmp_path / "theirs",
        shape=(2,),
        dtype="S300",
        zarr_format=zarr_format,
        compressors=zc.BloscCodec() if zarr_format == 3 else numcodecs.Blosc(),
    )
    theirs[...] = values
    assert oxzarr.open_array(tmp_path / "theirs", mode="r")[...].tolist() == values.tolist()
    ours = oxzarr.create_array(
        tmp_path / "ours",
        shape=(2,),
        dtype="S300",
        zarr_format=zarr_format,
        compressors=oxzarr.codecs.BloscCodec() if zarr_format == 3 else numcodecs.Blosc(),
    )
    ours[...] = values
    assert zarr.open_array(tmp_path / "ours", mode="r")[...].tolist() == values.tolist()
    if zarr_format == 3:
        document = json.loads((tmp_path / "ours" / "zarr.json").read_text())
        assert document["codecs"][-1]["configuration"]["typesize"] == 300


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_text_that_looks_like_the_engines_markers_is_kept(tmp_path: Path, zarr_format: int) -> None:
    # The engine holds lone surrogates and bare NaN as NUL-led markers: real text made of a
    # NUL, U+0001 and hex digits was read as a surrogate, and two in a row wrote JSON that
    # nothing could read.
    texts = {
        "s": "\x00\x01abcd",
        "t": "x\x00\x01004e!",
        "u": "\x00\x01\x00\x01abcd",
        "v": "\x00\udc80\x00",
        "w": "\x00NaN",
        "x": "\x00\x00",
    }
    theirs = zarr.create_array(
        tmp_path / "a", shape=(1,), dtype="U6", zarr_format=zarr_format, fill_value="\x00\x01abcd"
    )
    theirs.attrs.update(texts)
    ours = oxzarr.open_array(tmp_path / "a", mode="r+")
    assert ours.attrs.asdict() == texts
    assert ours.fill_value == "\x00\x01abcd" and ours[0] == "\x00\x01abcd"
    ours.attrs["more"] = "\x00\x01dc80"
    expected = {**texts, "more": "\x00\x01dc80"}
    assert zarr.open_array(tmp_path / "a", mode="r").attrs.asdict() == expected
    assert oxzarr.open_array(tmp_path / "a", mode="r").attrs.asdict() == expected


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_metadata_text_past_ascii_is_written_as_zarr_python_writes_it(
    tmp_path: Path, zarr_format: int
) -> None:
    # Python's json escapes it (ensure_ascii), so zarr-python's documents are ASCII; the
    # engine wrote UTF-8, the same values in other bytes.
    attributes = {"name": "café 🎉", "é": "\x7f"}
    names = {"dimension_names": ["x é"]} if zarr_format == 3 else {}
    for lib in (oxzarr, zarr):
        lib.create_array(
            tmp_path / lib.__name__,
            shape=(2,),
            dtype="i1",
            zarr_format=zarr_format,
            attributes=attributes,
            **names,
        )
    documents = ["zarr.json"] if zarr_format == 3 else [".zarray", ".zattrs"]
    for document in documents:
        ours = (tmp_path / "oxzarr" / document).read_bytes()
        assert ours == (tmp_path / "zarr" / document).read_bytes()
        assert ours.isascii()
        if document != ".zarray":
            assert b"\\ud83c\\udf89" in ours
    assert oxzarr.open_array(tmp_path / "zarr", mode="r").attrs.asdict() == attributes


def test_v2_attributes_of_null_are_none(tmp_path: Path) -> None:
    # zarr-python reads a .zattrs holding null as no attributes; the node could not open.
    zarr.create_array(tmp_path / "a", shape=(2,), dtype="i1", zarr_format=2)
    zarr.open_group(tmp_path / "g", mode="w", zarr_format=2)
    for node in ("a", "g"):
        (tmp_path / node / ".zattrs").write_text("null")
        assert zarr.open(tmp_path / node, mode="r").attrs.asdict() == {}
        assert oxzarr.open(tmp_path / node, mode="r").attrs.asdict() == {}


def test_blosc_on_variable_length_values_as_zarr_python_writes_it(tmp_path: Path) -> None:
    # They reach blosc as a stream of bytes: typesize 1 and bit shuffle, not numpy's size
    # of its references (16, 8) and byte shuffle.
    for lib, blosc in ((oxzarr, oxzarr.codecs.BloscCodec()), (zarr, zc.BloscCodec())):
        lib.create_array(tmp_path / lib.__name__, shape=(4,), dtype=str, compressors=blosc)
    ours, theirs = (
        json.loads((tmp_path / name / "zarr.json").read_text())["codecs"]
        for name in ("oxzarr", "zarr")
    )
    assert ours == theirs and ours[-1]["configuration"]["typesize"] == 1
    raw = oxzarr.create_array(
        tmp_path / "b", shape=(4,), dtype=bytes, compressors=oxzarr.codecs.BloscCodec()
    )
    assert raw.compressors[0].to_dict()["configuration"] == ours[-1]["configuration"]
