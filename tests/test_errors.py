"""Bad input gets a clear exception naming the store key or path — never a panic, a crash or
wrong values."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
import zarr

import oxzarr
from oxzarr.codecs import BloscCodec, Crc32cCodec, GzipCodec, ZstdCodec
from oxzarr.errors import (
    ArrayNotFoundError,
    BoundsCheckError,
    CorruptChunkError,
    MetadataValidationError,
    NodeTypeValidationError,
    UnknownCodecError,
)


def make(tmp_path: Path, compressors: object = None, **kw: object) -> tuple[oxzarr.Array, Path]:
    p = tmp_path / "a.zarr"
    a = oxzarr.create_array(
        p, shape=(10, 10), dtype="i4", chunks=(5, 5), compressors=compressors, **kw
    )
    a[...] = np.arange(100, dtype="i4").reshape(10, 10)
    return a, p


def edit_metadata(p: Path, **changes: object) -> None:
    doc = json.loads((p / "zarr.json").read_text())
    doc.update(changes)
    (p / "zarr.json").write_text(json.dumps(doc))


def test_missing_nodes(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nope\.zarr"):
        oxzarr.open_array(tmp_path / "nope.zarr", mode="r")
    with pytest.raises(ArrayNotFoundError, match="sub/arr"):
        oxzarr.open_array(tmp_path, path="sub/arr", mode="r")
    oxzarr.create_group(tmp_path / "g.zarr")
    with pytest.raises(NodeTypeValidationError):
        oxzarr.open_array(tmp_path / "g.zarr", mode="r")
    g = oxzarr.open_group(tmp_path / "g.zarr")
    with pytest.raises(KeyError, match="missing"):
        g["missing"]


def test_a_v2_node_of_the_other_kind_is_not_found_when_v2_is_asked_for(tmp_path: Path) -> None:
    # With zarr_format=2, a v2 array where a group was asked for raised ContainsArrayError,
    # and a v2 group where an array was asked for NodeTypeValidationError: zarr-python reads
    # only the v2 documents of the kind asked for, and finds none.
    array, group = tmp_path / "array", tmp_path / "group"
    zarr.create_array(array, shape=(2,), dtype="i1", zarr_format=2)
    zarr.create_group(group, zarr_format=2)
    stored = sorted(str(p) for p in tmp_path.rglob("*"))
    for lib in (oxzarr, zarr):
        for mode in ("r", "r+"):
            with pytest.raises(lib.errors.GroupNotFoundError):
                lib.open_group(array, mode=mode, zarr_format=2)
            with pytest.raises(lib.errors.ArrayNotFoundError):
                lib.open_array(group, mode=mode, zarr_format=2)
        # Mode "a" cannot make the node asked for where the other is.
        with pytest.raises(lib.errors.ContainsArrayError):
            lib.open_group(array, mode="a", zarr_format=2)
        with pytest.raises(lib.errors.ContainsGroupError):
            lib.open_array(group, mode="a", zarr_format=2, shape=(2,), dtype="i1")
    assert sorted(str(p) for p in tmp_path.rglob("*")) == stored
    with pytest.raises(FileNotFoundError, match=r"no Zarr v2 group .*array.*there is a v2 array"):
        oxzarr.open_group(array, mode="r", zarr_format=2)
    with pytest.raises(FileNotFoundError, match=r"no Zarr v2 array .*group.*there is a v2 group"):
        oxzarr.open_array(group, mode="r", zarr_format=2)
    # Not asked for a format, oxzarr says what is there.
    with pytest.raises(oxzarr.errors.ContainsArrayError):
        oxzarr.open_group(array, mode="r")
    with pytest.raises(NodeTypeValidationError):
        oxzarr.open_array(group, mode="r")


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("data_type", "float128", "data_type"),
        ("data_type", {"name": "int8", "configuration": {"x": 1}}, "data_type"),
        ("shape", [10, -1], "shape"),
        ("shape", "ten", "shape"),
        ("chunk_grid", {"name": "irregular"}, "chunk_grid"),
        ("chunk_grid", {"name": "regular", "configuration": {"chunk_shape": [5]}}, "chunk_shape"),
        ("chunk_grid", {"name": "regular", "configuration": {"chunk_shape": [5, 0]}}, "chunk"),
        ("chunk_key_encoding", {"name": "fancy"}, "chunk_key_encoding"),
        ("fill_value", "lots", "fill_value"),
        ("fill_value", 2**40, "fill_value"),
        ("zarr_format", 4, "zarr_format"),
        ("node_type", "thing", "node_type"),
        ("storage_transformers", [{"name": "t"}], "storage_transformers"),
        ("dimension_names", ["a"], "dimension_names"),
        ("surprise", {"x": 1}, "surprise"),
        ("codecs", [{"name": "zstd"}], "codecs"),
        ("codecs", [{"name": "bytes", "configuration": {"endian": "middle"}}], "endian"),
        ("codecs", [{"name": "bytes", "configuration": {"endian": "little", "x": 1}}], "x"),
    ],
)
def test_bad_metadata_names_the_field(
    tmp_path: Path, field: str, value: object, named: str
) -> None:
    _, p = make(tmp_path)
    edit_metadata(p, **{field: value})
    with pytest.raises(ValueError, match=named) as info:
        oxzarr.open_array(p, mode="r")
    assert "zarr.json" in str(info.value)
    assert isinstance(info.value, MetadataValidationError)


def test_unknown_codec(tmp_path: Path) -> None:
    _, p = make(tmp_path)
    edit_metadata(
        p, codecs=[{"name": "bytes", "configuration": {"endian": "little"}}, {"name": "lzfse"}]
    )
    with pytest.raises(UnknownCodecError, match="lzfse"):
        oxzarr.open_array(p, mode="r")


def test_optional_unknown_fields_are_allowed(tmp_path: Path) -> None:
    _, p = make(tmp_path)
    edit_metadata(p, future={"must_understand": False, "anything": [1]})
    a = oxzarr.open_array(p)
    assert a[0, 0] == 0
    a.attrs["k"] = 1  # rewriting zarr.json keeps the extension
    assert json.loads((p / "zarr.json").read_text())["future"]["anything"] == [1]


def test_metadata_that_is_not_json(tmp_path: Path) -> None:
    _, p = make(tmp_path)
    (p / "zarr.json").write_text("{ not json")
    with pytest.raises(ValueError, match=r"zarr\.json is not valid JSON"):
        oxzarr.open_array(p)


def test_v2_documents_that_are_wrong_name_themselves(tmp_path: Path) -> None:
    # The document, and the store it is in (only the document was named, unlike chunks).
    oxzarr.create_array(tmp_path / "a", shape=(4,), dtype="i4", zarr_format=2)
    (tmp_path / "a" / ".zattrs").write_text("{")
    with pytest.raises(
        MetadataValidationError, match=r"^\.zattrs in file://\S+/a: .*not valid JSON"
    ):
        oxzarr.open_array(tmp_path / "a")
    oxzarr.create_group(tmp_path / "g", zarr_format=2)
    (tmp_path / "g" / ".zgroup").write_text("[]")
    with pytest.raises(
        MetadataValidationError, match=r"^\.zgroup in file://\S+/g: .*expected a JSON object"
    ):
        oxzarr.open_group(tmp_path / "g")
    oxzarr.create_group(tmp_path / "p").create_array("x", shape=(2,), dtype="i1")
    doc = json.loads((tmp_path / "p" / "x" / "zarr.json").read_text())
    doc["shape"] = "two"
    (tmp_path / "p" / "x" / "zarr.json").write_text(json.dumps(doc))
    with pytest.raises(MetadataValidationError, match=r"^x/zarr\.json in file://\S+/p: "):
        oxzarr.open_group(tmp_path / "p", mode="r")["x"]


def test_out_of_range_selections(tmp_path: Path) -> None:
    a, _ = make(tmp_path)
    for key in [10, -11, (0, 10), (slice(None), 12), ([0, 10],), (np.array([-11]),)]:
        with pytest.raises(IndexError):
            a[key]
        with pytest.raises(IndexError):
            a[key] = 0
    with pytest.raises(BoundsCheckError, match="out of bounds"):
        a[10]
    with pytest.raises(IndexError, match="too many indices"):
        a[0, 0, 0]
    with pytest.raises(IndexError):
        a[..., ...]
    with pytest.raises(IndexError):
        a["x"]
    with pytest.raises(ValueError, match="step"):
        a[::0]
    # Empty index arrays of more than one dimension are refused as other such arrays are.
    for index in (np.zeros((3, 0), int), np.zeros((0, 3), int), np.zeros((2, 2), int)):
        with pytest.raises(IndexError, match="one-dimensional"):
            a[index]
        with pytest.raises(IndexError, match="one-dimensional"):
            a.oindex[index]
        with pytest.raises(IndexError, match="one-dimensional"):
            a[index] = 0
    # A shape past 64-bit sizes is a ValueError in resize, as in create_array.
    with pytest.raises(ValueError, match=r"2\*\*64"):
        a.resize((2**64,) * a.ndim)


def test_unsigned_indices_beyond_int64_are_out_of_bounds(tmp_path: Path) -> None:
    # 2**64 - 1 as int64 is -1, the last element: it must not read or write it.
    a, _ = make(tmp_path)
    huge = np.array([2**64 - 1], dtype=np.uint64)
    ok = np.array([9], dtype=np.uint64)
    for name, get, put in [
        ("[]", lambda k: a[k, 0], lambda k: a.__setitem__((k, 0), -5)),
        ("oindex", lambda k: a.oindex[k, 0], lambda k: a.oindex.__setitem__((k, 0), -5)),
        ("vindex", lambda k: a.vindex[k, ok], lambda k: a.vindex.__setitem__((k, ok), -5)),
    ]:
        with pytest.raises(BoundsCheckError, match="18446744073709551615 is out of bounds"):
            get(huge)
        with pytest.raises(BoundsCheckError):
            put(huge)
        assert get(ok).tolist() == [90 if name != "vindex" else 99], name
    assert a[...].tolist() == np.arange(100).reshape(10, 10).tolist()


def test_values_of_the_wrong_shape(tmp_path: Path) -> None:
    a, _ = make(tmp_path)
    with pytest.raises(ValueError, match="broadcast"):
        a[:2, :2] = np.ones((3, 2))
    with pytest.raises(ValueError):
        a[...] = np.ones(7)
    assert a[0, 1] == 1, "a failed write changes nothing"


@pytest.mark.parametrize(
    "compressors",
    [None, ZstdCodec(level=1), GzipCodec(level=1), BloscCodec(cname="lz4"), Crc32cCodec()],
    ids=["raw", "zstd", "gzip", "blosc", "crc32c"],
)
def test_corrupt_chunks_name_the_key(tmp_path: Path, compressors: object) -> None:
    a, p = make(tmp_path, compressors)
    chunk = p / "c" / "1" / "0"
    good = chunk.read_bytes()
    broken_forms = [good[: len(good) // 2], good[:3], b""]
    if isinstance(compressors, BloscCodec):
        # numcodecs decodes a blosc chunk from its frame alone: bytes stored after it are
        # read past, by zarr-python and by oxzarr.
        chunk.write_bytes(good + b"\x00" * 7)
        assert a[5, 0] == 50
    else:
        broken_forms.append(good + b"\x00" * 7)
    if compressors is not None:
        # Garbage of the right length is undecodable, except for raw chunks where any bytes
        # of the right length are valid values.
        broken_forms.append(b"\xff" * len(good))
    for broken in broken_forms:
        chunk.write_bytes(broken)
        with pytest.raises(CorruptChunkError, match="c/1/0") as info:
            a[...]
        assert isinstance(info.value, ValueError)
        # The other chunks still read.
        assert a[:5, :5][0, 1] == 1
    chunk.write_bytes(good)
    assert a[5, 0] == 50


def test_checksum_mismatch(tmp_path: Path) -> None:
    a, p = make(tmp_path, [ZstdCodec(level=1), Crc32cCodec()])
    chunk = p / "c" / "0" / "1"
    raw = bytearray(chunk.read_bytes())
    raw[2] ^= 0x10
    chunk.write_bytes(bytes(raw))
    with pytest.raises(CorruptChunkError, match=r"c/0/1.*checksum mismatch"):
        a[...]


def _zstd_frame_claiming(size: int) -> bytes:
    """A valid zstd frame header that claims `size` decoded bytes, then one tiny RLE block."""
    magic = struct.pack("<I", 0xFD2FB528)
    descriptor = bytes([0xE0])  # single segment, 8-byte content size
    block = struct.pack("<I", 1 | (1 << 1) | (16 << 3))[:3] + b"\x00"  # last, RLE, 16 bytes
    return magic + descriptor + struct.pack("<Q", size) + block


def _blosc_header_claiming(size: int, stored: int) -> bytes:
    header = struct.pack("<BBBBIII", 2, 1, 0x1, 4, size, 65536, stored)
    return header + b"\x00" * (stored - 16)


@pytest.mark.parametrize(
    ("compressors", "payload"),
    [
        (ZstdCodec(level=1), _zstd_frame_claiming(1 << 45)),
        (BloscCodec(cname="lz4"), _blosc_header_claiming(2**31 - 1000, 64)),
    ],
    ids=["zstd", "blosc"],
)
def test_decompression_bombs_are_refused_before_allocating(
    tmp_path: Path, compressors: object, payload: bytes
) -> None:
    a, p = make(tmp_path, compressors)
    (p / "c" / "0" / "0").write_bytes(payload)
    # 32 TiB (zstd) or 2 GiB (blosc) would be allocated if the claim were believed.
    with pytest.raises(CorruptChunkError, match=r"c/0/0.*(exceeds|claims|expected)"):
        a[...]


def test_gzip_bomb_stops_at_the_limit(tmp_path: Path) -> None:
    import gzip

    a, p = make(tmp_path, GzipCodec(level=1))
    (p / "c" / "0" / "0").write_bytes(gzip.compress(b"\x00" * (64 << 20), 9))
    with pytest.raises(CorruptChunkError, match="c/0/0"):
        a[...]


def test_io_errors_are_os_errors(tmp_path: Path) -> None:
    import os

    a, p = make(tmp_path)
    chunk = p / "c" / "0" / "0"
    os.chmod(chunk, 0)
    try:
        if os.access(chunk, os.R_OK):
            # Running as root: permissions do not stop reads; make the key a directory instead.
            os.chmod(chunk, 0o644)
            chunk.unlink()
            (chunk / "inner").mkdir(parents=True)
            (chunk / "inner" / "x").write_bytes(b"")
            with pytest.raises(OSError, match=r"c/0/0"):
                a[0, 0] = 5
        else:
            with pytest.raises(PermissionError, match=r"c/0/0"):
                a[...]
    finally:
        if chunk.is_file():
            os.chmod(chunk, 0o644)


@pytest.mark.parametrize("sharded", [False, True], ids=["chunk", "shard"])
@pytest.mark.parametrize("compressed", [False, True], ids=["raw", "zstd"])
def test_a_fifo_in_place_of_a_chunk_is_an_os_error_not_a_hang(
    tmp_path: Path, sharded: bool, compressed: bool
) -> None:
    import os

    p = tmp_path / "a.zarr"
    a = oxzarr.create_array(
        p,
        shape=(8, 8),
        dtype="i4",
        chunks=(2, 2) if sharded else (4, 4),
        shards=(4, 4) if sharded else None,
        compressors=[ZstdCodec(level=1)] if compressed else None,
    )
    a[...] = 1
    chunk = p / "c" / "0" / "0"
    chunk.unlink()
    os.mkfifo(chunk)  # no writer: an open that waits for one would never return
    for read in (lambda: a[...], lambda: a[1, 1], lambda: oxzarr.open_array(p)[0:2, 0:2]):
        with pytest.raises(OSError, match=r"not a regular file.*c/0/0"):
            read()
    with pytest.raises(OSError, match=r"not a regular file.*c/0/0"):
        a[0, 0] = 5  # a partial write reads the chunk first
    assert (a[4:, 4:] == 1).all(), "the other chunks read as before"


def test_invalid_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="zarr_format"):
        oxzarr.create_array(tmp_path / "a.zarr", shape=(2,), dtype="i1", zarr_format=4)
    with pytest.raises(ValueError, match="negative"):
        oxzarr.create_array(tmp_path / "a.zarr", shape=(-2,), dtype="i1")
    with pytest.raises(ValueError, match="chunk"):
        oxzarr.create_array(tmp_path / "a.zarr", shape=(2,), dtype="i1", chunks=(0,))
    for name in ["__x", "...", ".zattrs", "g/.zmetadata", "zarr.json"]:
        with pytest.raises(ValueError, match="name"):
            oxzarr.create_array(tmp_path / "a.zarr", name=name, shape=(2,), dtype="i1")
    # Names that only begin as metadata documents do are names like any other; v2 does not
    # reserve the "__" prefix v3 does.
    g = oxzarr.open_group(tmp_path / "g.zarr", mode="w", zarr_format=2)
    for name in [".zfoo", ".zarray_x", "__meta"]:
        g.create_array(name, shape=(2,), dtype="i1")[...] = 1
    assert sorted(g.keys()) == [".zarray_x", ".zfoo", "__meta"]
    assert zarr.open_group(tmp_path / "g.zarr", mode="r")[".zfoo"][...].tolist() == [1, 1]
    with pytest.raises(ValueError, match=r"\.\."):
        oxzarr.create_array(tmp_path / "a.zarr", name="a/../b", shape=(2,), dtype="i1")
    with pytest.raises(ValueError, match="needs a shape"):  # as zarr-python
        oxzarr.create_array(tmp_path / "a.zarr", dtype="i1")
    # Chunks and inner chunks of more bytes than one allocation holds: their size overflowed.
    for chunks, shards in [((2**63,), (2**63,)), ((2**62,), None), ((2, 2**62), (2, 2**62))]:
        with pytest.raises(ValueError, match="chunk_shape"):
            oxzarr.create_array(
                tmp_path / "a.zarr", shape=(7, 7)[: len(chunks)], dtype="f8", chunks=chunks,
                shards=shards, compressors=None, overwrite=True,
            )  # fmt: skip


# Sizes that come from metadata or from the store, beyond what the process can allocate. Each
# scenario runs in a child process whose address space is capped at 8 GiB, so an allocation
# that is not refused cleanly aborts the child (SIGABRT) or fails the same way on any machine,
# whatever its memory and overcommit settings.
# What a child script's call gave: "ok", or the exception's class and message.
_OUTCOME = r"""
def outcome(f):
    try:
        f()
        return "ok"
    except BaseException as e:
        return f"{type(e).__name__}: {e}"
"""

_ALLOCATION_SCENARIOS = (
    _OUTCOME
    + r"""
import json, os, resource, sys, numpy as np, oxzarr
resource.setrlimit(resource.RLIMIT_AS, (8 << 30, 8 << 30))
root, case = sys.argv[1], sys.argv[2]

def edit(path, change):
    doc = json.load(open(path + "/zarr.json"))
    change(doc)
    json.dump(doc, open(path + "/zarr.json", "w"))

p = root + "/a"
zstd = [{"name": "zstd", "configuration": {"level": 1, "checksum": False}}]
if case == "huge chunk file":
    a = oxzarr.create_array(p, shape=(8, 8), dtype="i4", chunks=(8, 8), compressors=zstd)
    a[...] = np.arange(64).reshape(8, 8)
    os.truncate(p + "/c/0/0", 1 << 40)  # sparse: no disk
    b = oxzarr.open_array(p, mode="r+")
    result = [outcome(lambda: b[0, 0]), outcome(lambda: b.__setitem__((0, 0), 1))]
elif case == "huge chunk":
    oxzarr.create_array(p, shape=(4, 4), dtype="i1", chunks=(2, 2))
    edit(p, lambda d: d["chunk_grid"]["configuration"].update(chunk_shape=[1 << 20, 1 << 20]))
    b = oxzarr.open_array(p, mode="r+")
    result = [outcome(lambda: b[0, 0]), outcome(lambda: b.__setitem__((0, 0), 1))]
elif case == "huge shard index":
    # 2^32 inner chunks per shard: a 64 GiB index. Opening costs nothing (as in zarr-python);
    # an absent shard reads as fill; writing one needs its index, and is refused, as is
    # reading one that holds such an index.
    oxzarr.create_array(p, shape=(8, 8), dtype="i1", chunks=(2, 2), shards=(4, 4))
    def change(d):
        d["chunk_grid"]["configuration"]["chunk_shape"] = [65536, 65536]
        d["codecs"][0]["configuration"]["chunk_shape"] = [1, 1]
    edit(p, change)
    b = oxzarr.open_array(p, mode="r+")
    result = [outcome(lambda: oxzarr.open_array(p, mode="r")), outcome(lambda: b[7, 7]),
              outcome(lambda: b.__setitem__((7, 7), 1))]
    os.makedirs(p + "/c/0")
    with open(p + "/c/0/0", "wb") as f:
        f.truncate((1 << 36) + 4)  # sparse: no disk
    result.append(outcome(lambda: b[0, 0]))
elif case == "large shard index":
    # 2^24 inner chunks per shard: opening once built a 256 MiB index to measure it.
    oxzarr.create_array(p, shape=(16,), dtype="i4", chunks=(4,), shards=(8,))
    def change(d):
        d["chunk_grid"]["configuration"]["chunk_shape"] = [1 << 24]
        d["codecs"][0]["configuration"]["chunk_shape"] = [1]
    edit(p, change)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = [outcome(lambda: oxzarr.open_array(p, mode="r")),
              (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024]
elif case == "compressor output":
    # A chunk that fits, whose compressor's output buffer (as large as the chunk) does not:
    # the address space is capped 2.5 GiB above what the process holds, the chunk is 1.5 GiB.
    held = int(next(l for l in open("/proc/self/status") if l.startswith("VmSize")).split()[1])
    cap = (held << 10) + (5 << 29)
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    result = []
    for name, config in [("zstd", {"level": 1, "checksum": False}),
                         ("blosc", {"cname": "lz4", "clevel": 5, "shuffle": "shuffle",
                                    "typesize": 1, "blocksize": 0})]:
        a = oxzarr.create_array(p + name, shape=(3 << 29,), dtype="i1", chunks=(3 << 29,),
                                compressors=[{"name": name, "configuration": config}])
        result.append(outcome(lambda: a.__setitem__(5, 1)))
elif case == "string chunk sizes":
    # A damaged chunk of a string array, whose compressor's header claims 2 GiB (a string
    # chunk's bound, far above a numeric chunk's): the claim was allocated as it stood, and
    # the process aborted where it could not be. The cap leaves 1 GiB to spare.
    import struct
    held = int(next(l for l in open("/proc/self/status") if l.startswith("VmSize")).split()[1])
    cap = (held << 10) + (1 << 30)
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    claim = (1 << 31) - 100
    claims = {
        "zstd": struct.pack("<IBQ", 0xFD2FB528, 0xE0, claim) + bytes([11, 2, 0, 0]),
        "blosc": struct.pack("<BBBBIII", 2, 1, 1, 1, claim, 65536, 64) + bytes(48),
        "gzip": bytes([0x1F, 0x8B, 8, 0, 0, 0, 0, 0, 0, 3, 3, 0]) + struct.pack("<II", 0, claim),
    }
    configs = {"zstd": {"level": 1, "checksum": False}, "gzip": {"level": 1},
               "blosc": {"cname": "lz4", "clevel": 5, "shuffle": "noshuffle", "typesize": 1,
                         "blocksize": 0}}
    result = []
    for name, blob in claims.items():
        a = oxzarr.create_array(p + name, shape=(4,), dtype=str, chunks=(4,),
                                compressors=[{"name": name, "configuration": configs[name]}])
        a[...] = ["a", "b", "c", "d"]
        open(p + name + "/c/0", "wb").write(blob)
        result.append(outcome(lambda: a[...]))
elif case == "huge element":
    oxzarr.create_array(p, shape=(4,), dtype="i4", chunks=(2,))
    def change(d):
        d["data_type"] = {"name": "fixed_length_utf32", "configuration": {"length_bytes": 1 << 40}}
        d["fill_value"] = ""
        d["codecs"] = [{"name": "bytes", "configuration": {"endian": "little"}}]
    edit(p, change)
    result = [outcome(lambda: oxzarr.open_array(p, mode="r"))]
elif case == "missing string chunks":
    # Strings where no chunk is stored, in chunks of 2^40 (and 2^63) elements: the fill
    # value's chunk was allocated whole, and its size overflowed or aborted the process.
    result = []
    for n in (1 << 40, 1 << 62):
        oxzarr.create_array(p + str(n), shape=(4,), dtype=str, chunks=(2,))
        def change(d, n=n):
            d["shape"] = [n]
            d["chunk_grid"]["configuration"]["chunk_shape"] = [n]
        edit(p + str(n), change)
        b = oxzarr.open_array(p + str(n), mode="r")
        result.append(outcome(lambda: b[0]))
elif case == "huge string selection":
    # A selection of 2^40 (2^63) strings: its chunks were listed one by one before any check
    # of the output's size, and that list aborted the process.
    result = []
    for n in (1 << 40, 1 << 63):
        oxzarr.create_array(p + str(n), shape=(4,), dtype=str, chunks=(2,))
        edit(p + str(n), lambda d, n=n: d.update(shape=[n]))
        b = oxzarr.open_array(p + str(n), mode="r")
        result.append(outcome(lambda: b[...]))
    # Lengths whose product passes 2^64: it wrapped to a small count the check let through.
    oxzarr.create_array(p + "2d", shape=(4, 4), dtype=str, chunks=(2, 2))
    edit(p + "2d", lambda d: d.update(shape=[1 << 32, 1 << 32]))
    b = oxzarr.open_array(p + "2d", mode="r")
    result.append(outcome(lambda: b[...]))
print(json.dumps(result))
"""
)


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("huge chunk file", ["MemoryError: c/0/0: cannot allocate the 1099511627776 bytes"] * 2),
        ("huge chunk", ["ok", "MemoryError: chunk c/0/0 in file://"]),
        (
            "huge shard index",
            ["ok", "ok", "MemoryError: chunk c/0/0 in file://", "MemoryError: c/0/0: cannot"],
        ),
        ("large shard index", ["ok", "MiB"]),
        ("compressor output", ["MemoryError: cannot encode chunk c/0"] * 2),
        ("string chunk sizes", ["MemoryError: chunk c/0 in file://"] * 3),
        ("huge element", ["MetadataValidationError: zarr.json in file://"]),
        ("missing string chunks", ["MemoryError: chunk c/0 in file://"] * 2),
        ("huge string selection", ["MemoryError: a selection of"] * 3),
    ],
)
def test_sizes_beyond_memory_raise_instead_of_aborting(
    tmp_path: Path, case: str, expected: list[str]
) -> None:
    import subprocess
    import sys

    run = subprocess.run(
        [sys.executable, "-c", _ALLOCATION_SCENARIOS, str(tmp_path), case],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    outcomes = json.loads(run.stdout)
    assert len(outcomes) == len(expected)
    for got, want in zip(outcomes, expected, strict=True):
        if want == "MiB":  # the growth of the child's peak memory
            assert got < 64, f"{got} MiB"
        else:
            assert got.startswith(want), got


# Files longer than memory and swap together. Linux grants a buffer that size (it overcommits)
# and kills the process as it fills it, so this child runs without an address-space cap (under
# one, asking would fail anyway and the test could not): it is watched instead, and killed if
# its resident memory passes 1 GiB.
_BEYOND_MEMORY = (
    _OUTCOME
    + r"""
import json, os, sys, numpy as np, oxzarr
root, size = sys.argv[1], int(sys.argv[2])

p, q = root + "/a", root + "/b"
a = oxzarr.create_array(p, shape=(64, 64), dtype="i4", chunks=(32, 32), compressors=None)
a[...] = 1
os.truncate(p + "/c/0/0", size)  # sparse: no disk
oxzarr.create_array(q, shape=(4,), dtype="i1")
os.truncate(q + "/zarr.json", size)
print(json.dumps([
    outcome(lambda: oxzarr.open_array(p, mode="r")[...]),
    outcome(lambda: oxzarr.open_array(q, mode="r")),
]))
"""
)


def test_files_beyond_memory_are_refused_before_they_are_read(tmp_path: Path) -> None:
    import subprocess
    import sys
    import time

    meminfo = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
    total = sum(int(meminfo[k].split()[0]) * 1024 for k in ("MemTotal", "SwapTotal"))
    size = 2 * total
    child = subprocess.Popen(
        [sys.executable, "-c", _BEYOND_MEMORY, str(tmp_path), str(size)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    status = Path(f"/proc/{child.pid}/status")
    start = time.monotonic()
    while child.poll() is None:
        try:
            rss = next(ln for ln in status.read_text().splitlines() if ln.startswith("VmRSS"))
        except (OSError, StopIteration):
            rss = "VmRSS: 0 kB"
        if int(rss.split()[1]) > 1 << 20 or time.monotonic() - start > 120:
            child.kill()
            child.wait()
            pytest.fail(f"the child filled memory or hung ({rss}) reading a {size}-byte file")
        time.sleep(0.02)
    out, err = child.communicate()
    assert child.returncode == 0, err[-2000:]
    chunk, metadata = json.loads(out)
    assert chunk.startswith(f"MemoryError: c/0/0: cannot allocate the {size} bytes"), chunk
    assert metadata.startswith(f"MemoryError: zarr.json: cannot allocate the {size}"), metadata


def test_record_dtypes_of_v2_that_numpy_refuses_are_metadata_errors(tmp_path: Path) -> None:
    import zarr

    p = tmp_path / "a.zarr"
    zarr.create_array(p, shape=(4,), dtype="i4", chunks=(2,), zarr_format=2, fill_value=0)
    zarray = p / ".zarray"

    def with_dtype(dtype: object) -> None:
        doc = json.loads(zarray.read_text())
        doc.update(dtype=dtype, fill_value=None)
        zarray.write_text(json.dumps(doc))

    with_dtype([["a", "<i4"], ["a", "<i4"]])
    with pytest.raises(MetadataValidationError, match=r"\.zarray.*field names must differ"):
        oxzarr.open_array(p, mode="r")
    with_dtype([])
    with pytest.raises(MetadataValidationError, match=r"\.zarray.*at least one field"):
        oxzarr.open_array(p, mode="r")
    # A nested record is valid v2, and reads as zarr-python hands it out.
    with_dtype([["a", [["b", "<i4"]]]])
    a = oxzarr.open_array(p, mode="r")
    assert a.dtype == np.dtype([("a", [("b", "<i4")])])
    assert a[...].tolist() == [((0,),)] * 4


def test_v2_dtypes_with_characters_beyond_ascii_are_metadata_errors(tmp_path: Path) -> None:
    # The character after the byte order is the dtype's kind; one of more than one byte in
    # UTF-8 made the engine panic (PanicException, which `except Exception` does not catch).
    # Found by the metadata fuzz target (rust/fuzz).
    p = tmp_path / "a.zarr"
    p.mkdir()
    for dtype in ["\u02ea13", "<\u00e98", "|\U0001f600"]:
        doc = {
            "zarr_format": 2,
            "shape": [4],
            "chunks": [4],
            "dtype": dtype,
            "order": "C",
            "compressor": None,
            "filters": None,
            "fill_value": 0,
        }
        (p / ".zarray").write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
        with pytest.raises(MetadataValidationError, match=r"\.zarray.*dtype"):
            oxzarr.open_array(p, mode="r")


def test_v2_text_dtypes_too_long_for_numpy_are_metadata_errors(tmp_path: Path) -> None:
    # Each length once aborted the process: working out whether the type has a byte order
    # listed every UTF-32 character of an element (found by the metadata fuzz target), and
    # four bytes per character overflowed for the longest.
    p = tmp_path / "a.zarr"
    p.mkdir()
    for dtype in [">U19999999999999999", "<U4611686018427387905", [["a", ">U99999999999"]]]:
        doc = {"zarr_format": 2, "shape": [4], "chunks": [4], "dtype": dtype, "order": "C",
               "compressor": None, "filters": None, "fill_value": None}  # fmt: skip
        (p / ".zarray").write_text(json.dumps(doc))
        with pytest.raises(
            MetadataValidationError, match=r"\.zarray in file://\S+: unsupported (dtype|data_t)"
        ):
            oxzarr.open_array(p, mode="r")


def test_text_that_is_not_utf8_names_its_chunk(tmp_path: Path) -> None:
    p = tmp_path / "a.zarr"
    a = oxzarr.create_array(p, shape=(4,), dtype=str, chunks=(4,), compressors=None)
    a[...] = np.array(["ab", "cd", "ef", "gh"])
    raw = bytearray((p / "c" / "0").read_bytes())
    raw[4 + 4 + 2 + 4] = 0xFF  # the first byte of element 1
    (p / "c" / "0").write_bytes(bytes(raw))
    for key in [Ellipsis, 1, slice(1, 3)]:
        with pytest.raises(CorruptChunkError, match=r"chunk c/0 in .*element 1 is not UTF-8"):
            a[key]


def test_sizes_of_shapes_past_int64_are_exact(tmp_path: Path) -> None:
    _, p = make(tmp_path)
    edit_metadata(p, shape=[2**62, 2**62])
    a = oxzarr.open_array(p, mode="r")
    assert a.size == 2**124
    assert a.nbytes == 4 * 2**124
    assert a.nchunks == (2**62 // 5 + 1) ** 2


def test_axes_longer_than_int64(tmp_path: Path) -> None:
    """Zarr allows axes of up to 2**64 - 1 elements, numpy's arrays up to 2**63 - 1: selections
    of such an axis read, counted from either end, and only an output numpy cannot hold is
    refused."""
    _, p = make(tmp_path)
    n = 2**64 - 1
    edit_metadata(p, shape=[10, n])
    a = oxzarr.open_array(p, mode="r")
    assert a.oindex[[1, 2], [0, 3, -1]].tolist() == [[10, 13, 0], [20, 23, 0]]
    assert a.oindex[1, np.array([3, n - 1], dtype=np.uint64)].tolist() == [13, 0]
    assert a.vindex[[1, 2], [3, -8]].tolist() == [13, 0]
    assert a[1, -n] == 10
    assert a[1, 7:4:-1].tolist() == [17, 16, 15]
    assert a[0, -3:].tolist() == [0, 0, 0]
    with pytest.raises(BoundsCheckError):
        a[0, -n - 1]
    for whole_row in (lambda: a[0, :], lambda: a[0], lambda: next(iter(a))):
        with pytest.raises(ValueError, match=r"more elements along an axis than numpy holds"):
            whole_row()
    # Two elements 2**63 or more apart: numpy's selection, past the engine's int64 steps
    # (it was Python's OverflowError naming nothing).
    assert a[1, :: 2**64].tolist() == [10]
    for step in (2**63, -(2**63) - 1):
        with pytest.raises(IndexError, match=f"a slice step of {step} selecting 2 elements"):
            a[1, ::step]


def test_steps_past_the_axis_and_boolean_blocks(tmp_path: Path) -> None:
    a, _ = make(tmp_path)
    expected = np.arange(100).reshape(10, 10)
    assert a[:: 2**63, 0].tolist() == expected[:: 2**63, 0].tolist() == [0]
    assert a[:: -(2**63), 3].tolist() == expected[:: -(2**63), 3].tolist() == [93]
    with pytest.raises(IndexError, match="block selections take integers and slices"):
        a.blocks[True]


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_bare_nan_and_infinity_as_text(tmp_path: Path, zarr_format: int) -> None:
    # A bare NaN or Infinity as a text array's fill value read as oxzarr's marker of it
    # ("\x00NaN"); zarr-python reads Python's text of the number. As a dimension name, no
    # name: refused (it came back as a float).
    document = tmp_path / "a" / ("zarr.json" if zarr_format == 3 else ".zarray")
    for token, text in (("NaN", "nan"), ("Infinity", "inf"), ("-Infinity", "-inf")):
        zarr.create_array(
            tmp_path / "a",
            shape=(2,),
            chunks=(1,),
            dtype=str,
            zarr_format=zarr_format,
            overwrite=True,
        )
        doc = json.loads(document.read_text())
        document.write_text(json.dumps(doc).replace('"fill_value": ""', f'"fill_value": {token}'))
        theirs = zarr.open_array(tmp_path / "a", mode="r")
        ours = oxzarr.open_array(tmp_path / "a", mode="r")
        assert ours.fill_value == theirs.fill_value == text
        assert ours[...].tolist() == theirs[...].tolist() == [text, text]
    a = oxzarr.create_array(tmp_path / "d", shape=(2, 3), dtype="i1", dimension_names=["x", "y"])
    assert a.metadata.dimension_names == ("x", "y")
    path = tmp_path / "d" / "zarr.json"
    path.write_text(path.read_text().replace('"x"', "NaN"))
    with pytest.raises(ValueError, match="dimension_names"):
        oxzarr.open_array(tmp_path / "d", mode="r")
    # Names holding NULs (one spelling a NaN's marker) or a lone surrogate are kept as they
    # are, through a rewrite of the metadata too, and zarr-python reads them so.
    names = ["\x00NaN", "x\x00\x00y", "\udc80"]
    zarr.create_array(tmp_path / "n", shape=(1, 1, 1), dtype="i1", dimension_names=names)
    named = oxzarr.open_array(tmp_path / "n", mode="r+")
    assert named.metadata.dimension_names == tuple(names)
    named.attrs["k"] = 1
    assert zarr.open_array(tmp_path / "n", mode="r").metadata.dimension_names == tuple(names)
