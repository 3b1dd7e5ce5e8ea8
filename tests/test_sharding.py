"""Sharding: stores of shards with inner chunks, read in part through range requests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tensorstore as ts
import zarr
import zarr.codecs as zc

import oxzarr
from oxzarr.codecs import Crc32cCodec, GzipCodec, ShardingCodec, ZstdCodec
from oxzarr.storage import CountingStore, LocalStore
from tests.conftest import assert_same, sample

SHAPE = (30, 20, 9)  # shards of (16, 10, 6) overhang the edge on two dimensions
SHARDS = (16, 10, 6)
CHUNKS = (4, 5, 3)


def _index(path: Path, n_inner: int, at_end: bool = True) -> np.ndarray:
    """The (offset, nbytes) pairs of a shard's index (bytes little + crc32c)."""
    raw = path.read_bytes()
    size = n_inner * 16
    body = raw[-size - 4 : -4] if at_end else raw[:size]
    return np.frombuffer(body, dtype="<u8").reshape(n_inner, 2)


@pytest.mark.parametrize("location", ["end", "start"])
@pytest.mark.parametrize(
    "compressors", [None, ZstdCodec(level=3), GzipCodec(level=1)], ids=["raw", "zstd", "gzip"]
)
def test_zarr_python_reads_what_oxzarr_writes(
    tmp_path: Path, location: str, compressors: Any
) -> None:
    data = sample(SHAPE, "f4")
    data[:16, :10, :6] = 0  # the first shard holds only the fill value: not stored
    inner = [{"name": "bytes", "configuration": {"endian": "little"}}]
    if compressors is not None:
        inner.append(compressors.to_dict())
    p = tmp_path / "a.zarr"
    a = oxzarr.create_array(
        p,
        shape=SHAPE,
        dtype="f4",
        serializer=ShardingCodec(chunk_shape=CHUNKS, codecs=inner, index_location=location),  # type: ignore[arg-type]
        compressors=None,
        chunks=SHARDS,
    )
    a[...] = data
    assert not (p / "c" / "0" / "0" / "0").exists()
    assert_same(zarr.open_array(p, mode="r")[...], data)
    t = ts.open({"driver": "zarr3", "kvstore": {"driver": "file", "path": str(p)}}).result()
    assert_same(t.read().result(), data)


@pytest.mark.parametrize(
    "index_codecs",
    [[zc.BytesCodec(), zc.Crc32cCodec()], [zc.BytesCodec(endian="big")]],
    ids=["crc32c", "big-endian"],
)
@pytest.mark.parametrize("location", ["end", "start"])
def test_oxzarr_reads_what_zarr_python_writes(
    tmp_path: Path, index_codecs: list[Any], location: str
) -> None:
    data = sample(SHAPE, "i2")
    p = tmp_path / "a.zarr"
    z = zarr.create_array(
        p,
        shape=SHAPE,
        dtype="i2",
        chunks=SHARDS,
        serializer=zc.ShardingCodec(
            chunk_shape=CHUNKS,
            codecs=[zc.BytesCodec(), zc.BloscCodec(cname="lz4")],
            index_codecs=index_codecs,
            index_location=location,
        ),
        compressors=None,
        fill_value=-1,
    )
    z[...] = data
    z[4:8, 5:10, 0:3] = -1  # an inner chunk left out of its shard
    expected = z[...]
    a = oxzarr.open_array(p, mode="r")
    assert (a.chunks == CHUNKS and a.shards is None) or a.shards == SHARDS
    assert_same(a[...], expected)
    assert_same(a[3:25:4, ::-3, 1], expected[3:25:4, ::-3, 1])


def test_create_array_with_shards_matches_zarr_python(tmp_path: Path) -> None:
    a = oxzarr.create_array(
        tmp_path / "a.zarr", shape=(100, 80), dtype="u2", chunks=(10, 10), shards=(50, 40)
    )
    z = zarr.create_array(
        tmp_path / "z.zarr", shape=(100, 80), dtype="u2", chunks=(10, 10), shards=(50, 40)
    )
    written = [json.loads((tmp_path / n / "zarr.json").read_text()) for n in ("a.zarr", "z.zarr")]
    assert written[0]["codecs"] == written[1]["codecs"]
    assert written[0]["chunk_grid"] == written[1]["chunk_grid"]
    assert (a.chunks, a.shards, a.nchunks, a.cdata_shape) == (
        z.chunks,
        z.shards,
        z.nchunks,
        z.cdata_shape,
    )
    assert a.compressors == (ZstdCodec(),) and a.filters == ()
    with pytest.raises(ValueError, match="multiples"):
        oxzarr.create_array(tmp_path / "b.zarr", shape=(10,), dtype="u2", chunks=(3,), shards=(8,))
    auto = oxzarr.create_array(
        tmp_path / "c.zarr", shape=(1000, 1000), dtype="u1", shards=(500, 500)
    )
    assert all(s % c == 0 for s, c in zip(auto.shards or (), auto.chunks, strict=True))


@pytest.mark.parametrize("where", ["start", "end"])
def test_shards_as_a_mapping_name_the_index_location(tmp_path: Path, where: str) -> None:
    # zarr-python's shards={"shape": ..., "index_location": ...}.
    shards = {"shape": (4,), "index_location": where}
    for lib, name in ((oxzarr, "a.zarr"), (zarr, "z.zarr")):
        lib.create_array(tmp_path / name, shape=(10,), chunks=(2,), shards=shards, dtype="i4")
    written = [json.loads((tmp_path / n / "zarr.json").read_text()) for n in ("a.zarr", "z.zarr")]
    assert written[0]["codecs"] == written[1]["codecs"]
    assert written[0]["codecs"][0]["configuration"]["index_location"] == where
    oxzarr.open_array(tmp_path / "a.zarr")[...] = np.arange(10)
    assert zarr.open_array(tmp_path / "a.zarr")[...].tolist() == list(range(10))
    with pytest.raises(ValueError, match="index_location"):
        oxzarr.create_array(
            tmp_path / "b.zarr", shape=(10,), chunks=(2,), shards={**shards, "index_location": "x"}
        )


def test_tensorstore_sharded_both_ways(tmp_path: Path) -> None:
    data = sample(SHAPE, "u4")
    p = tmp_path / "ts.zarr"
    codecs = [
        {
            "name": "sharding_indexed",
            "configuration": {
                "chunk_shape": list(CHUNKS),
                "codecs": [
                    {"name": "bytes", "configuration": {"endian": "little"}},
                    {"name": "zstd", "configuration": {"level": 1}},
                ],
                "index_codecs": [
                    {"name": "bytes", "configuration": {"endian": "little"}},
                    {"name": "crc32c"},
                ],
            },
        }
    ]
    t = ts.open(
        {
            "driver": "zarr3",
            "kvstore": {"driver": "file", "path": str(p)},
            "create": True,
            "metadata": {
                "shape": list(SHAPE),
                "data_type": "uint32",
                "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": list(SHARDS)}},
                "codecs": codecs,
            },
        }
    ).result()
    t[2:].write(data[2:]).result()
    assert_same(oxzarr.open_array(p, mode="r")[...], t.read().result())
    q = tmp_path / "ox.zarr"
    a = oxzarr.create_array(q, shape=SHAPE, dtype="u4", chunks=CHUNKS, shards=SHARDS)
    a[2:] = data[2:]
    back = ts.open({"driver": "zarr3", "kvstore": {"driver": "file", "path": str(q)}}).result()
    assert_same(back.read().result(), a[...])


def test_nested_sharding_with_zarr_python(tmp_path: Path) -> None:
    data = sample((16, 16), "u1")
    nested = ShardingCodec(
        chunk_shape=(8, 8),
        codecs=[ShardingCodec(chunk_shape=(2, 4), codecs=[{"name": "bytes"}, ZstdCodec()])],
    )
    p = tmp_path / "n.zarr"
    a = oxzarr.create_array(
        p, shape=(16, 16), dtype="u1", chunks=(16, 8), serializer=nested, compressors=None
    )
    a[...] = data
    assert_same(zarr.open_array(p, mode="r")[...], data)
    a[3:5, 1:9] = 0
    data[3:5, 1:9] = 0
    assert_same(oxzarr.open_array(p, mode="r")[...], data)
    assert_same(zarr.open_array(p, mode="r")[...], data)


def test_partial_reads_of_compressed_shards(tmp_path: Path) -> None:
    p = tmp_path / "a.zarr"
    data = sample((64, 64), "f8")
    a = oxzarr.create_array(p, shape=(64, 64), dtype="f8", chunks=(8, 8), shards=(32, 32))
    a[...] = data
    store = CountingStore(LocalStore(p, read_only=True))
    r = oxzarr.open_array(store, mode="r")
    index = _index(p / "c" / "0" / "0", 16)
    store.reset()
    assert_same(r[9, 17], data[9, 17])  # inner chunk (1, 2) of shard (0, 0)
    assert (store.requests, store.bytes_read) == (2, 16 * 16 + 4 + int(index[1 * 4 + 2][1]))
    store.reset()
    assert_same(r[0:8, 0:8], data[0:8, 0:8])
    assert (store.requests, store.bytes_read) == (1, int(index[0][1]))


def test_partial_reads_fetch_only_what_they_need(tmp_path: Path) -> None:
    p = tmp_path / "a.zarr"
    data = sample((64, 64), "f8")
    a = oxzarr.create_array(
        p, shape=(64, 64), dtype="f8", chunks=(8, 8), shards=(32, 32), compressors=None
    )
    a[...] = data
    store = CountingStore(LocalStore(p, read_only=True))
    r = oxzarr.open_array(store, mode="r")
    store.reset()
    inner_bytes = 8 * 8 * 8
    index_bytes = 16 * 16 + 4
    # First inner chunk of a shard: its index, then the inner chunk.
    assert_same(r[0:8, 0:8], data[0:8, 0:8])
    assert (store.requests, store.bytes_read) == (2, index_bytes + inner_bytes)
    # The index is cached now: one range request per inner chunk, nothing more.
    store.reset()
    assert_same(r[8:16, 8:16], data[8:16, 8:16])
    assert (store.requests, store.bytes_read) == (1, inner_bytes)
    # Uncompressed inner chunks are read in part: a point costs its 8 bytes.
    store.reset()
    assert_same(r[1, 1], data[1, 1])
    assert (store.requests, store.bytes_read) == (1, 8)
    # A box over four inner chunks of that shard: one request each, for the rows it needs.
    store.reset()
    assert_same(r[4:12, 12:20], data[4:12, 12:20])
    assert (store.requests, store.bytes_read) == (4, 8 * 8 * 8)
    # A box over two shards: an index fetch for the new shard and the inner chunks.
    store.reset()
    assert_same(r[30:34, 0:8], data[30:34, 0:8])
    assert (store.requests, store.bytes_read) == (3, index_bytes + 4 * 8 * 8)


@pytest.mark.parametrize("writer", ["oxzarr", "zarr-python"])
@pytest.mark.parametrize("compressors", [None, ZstdCodec(level=3)], ids=["raw", "zstd"])
def test_inner_chunks_that_follow_one_another_are_read_with_one_request(
    tmp_path: Path, writer: str, compressors: Any
) -> None:
    p = tmp_path / "a.zarr"
    data = sample((64, 256), "u2")
    if writer == "oxzarr":
        kw: dict[str, Any] = {"compressors": compressors}
        a = oxzarr.create_array(
            p, shape=data.shape, dtype="u2", chunks=(8, 8), shards=(32, 128), **kw
        )
    else:
        zkw: dict[str, Any] = {"compressors": [zc.ZstdCodec(level=3)] if compressors else None}
        a = zarr.create_array(
            p, shape=data.shape, dtype="u2", chunks=(8, 8), shards=(32, 128), **zkw
        )
    a[...] = data
    store = CountingStore(LocalStore(p, read_only=True))
    r = oxzarr.open_array(store, mode="r")
    shards = sorted((p / "c").rglob("*"))
    stored = sum(f.stat().st_size for f in shards if f.is_file())
    # 4 shards of 4x16 inner chunks: each row of a shard is one request, for exactly its bytes.
    store.reset()
    assert_same(r[...], data)
    assert (store.requests, store.bytes_read) == (4 + 16, stored)
    # Again, the indexes cached.
    store.reset()
    assert_same(r[...], data)
    assert (store.requests, store.bytes_read) == (16, stored - 4 * (64 * 16 + 4))
    # A box of whole inner chunks in one shard: runs that go on from row to row.
    store.reset()
    assert_same(r[8:32, 0:128], data[8:32, 0:128])
    assert store.requests == 48 // 3
    if compressors is None:
        # A box over 4x16 inner chunks, most of them in part: those are read in place, their
        # rows alone; the whole ones inside, in runs.
        store.reset()
        assert_same(r[4:28, 4:124], data[4:28, 4:124])
        assert store.bytes_read == data[4:28, 4:124].nbytes
        assert 36 < store.requests < 64


def _shard_of_raw_inner_chunks(path: Path, order: list[int], gap: int) -> np.ndarray:
    """An array of one 16x32 shard of 4x4 uint16 inner chunks, stored in `order` with `gap`
    bytes of junk after each; its index (no checksum) at the end."""
    data = sample((16, 32), "u2")
    meta = {
        "zarr_format": 3,
        "node_type": "array",
        "shape": [16, 32],
        "data_type": "uint16",
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [16, 32]}},
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
        "fill_value": 0,
        "codecs": [
            {
                "name": "sharding_indexed",
                "configuration": {
                    "chunk_shape": [4, 4],
                    "codecs": [{"name": "bytes", "configuration": {"endian": "little"}}],
                    "index_codecs": [{"name": "bytes", "configuration": {"endian": "little"}}],
                    "index_location": "end",
                },
            }
        ],
    }
    path.mkdir()
    (path / "zarr.json").write_text(json.dumps(meta))
    body = bytearray()
    index = np.full((32, 2), 2**64 - 1, dtype="<u8")
    for i in order:
        block = data[i // 8 * 4 : i // 8 * 4 + 4, i % 8 * 4 : i % 8 * 4 + 4]
        index[i] = (len(body), block.nbytes)
        body += block.astype("<u2").tobytes() + b"\xee" * gap
    (path / "c" / "0").mkdir(parents=True)
    (path / "c" / "0" / "0").write_bytes(bytes(body) + index.tobytes())
    for i in set(range(32)) - set(order):
        data[i // 8 * 4 : i // 8 * 4 + 4, i % 8 * 4 : i % 8 * 4 + 4] = 0
    return data


@pytest.mark.parametrize(
    ("order", "gap"),
    [
        (list(range(32)), 0),
        (list(range(31, -1, -1)), 0),  # back to front
        (list(range(32)), 3),  # junk between them, not asked for
        ([i for i in range(32) if i % 3], 0),  # absent ones read as the fill value
    ],
    ids=["in-order", "reversed", "gaps", "absent"],
)
def test_a_run_of_inner_chunks_reads_their_bytes_wherever_they_lie(
    tmp_path: Path, order: list[int], gap: int
) -> None:
    p = tmp_path / "a.zarr"
    data = _shard_of_raw_inner_chunks(p, order, gap)
    store = CountingStore(LocalStore(p, read_only=True))
    r = oxzarr.open_array(store, mode="r")
    store.reset()
    assert_same(r[...], data)
    # The index, then 16 runs of two inner chunks (a sixteenth of the read), one request each.
    assert (store.requests, store.bytes_read) == (1 + 16, 32 * 16 + len(order) * 32)
    assert_same(zarr.open_array(p, mode="r")[...], data)


@pytest.mark.parametrize("compressors", [None, ZstdCodec(level=3)], ids=["raw", "zstd"])
def test_coordinate_reads_take_the_inner_chunks_of_a_shard_in_runs(
    tmp_path: Path, compressors: Any
) -> None:
    p = tmp_path / "a.zarr"
    data = sample((64, 64), "i4")
    a = oxzarr.create_array(
        p, shape=data.shape, dtype="i4", chunks=(4, 4), shards=(32, 32), compressors=compressors
    )
    a[...] = data
    a[32:, :4] = 0  # absent inner chunks (the fill value) in the middle of runs
    data[32:, :4] = 0
    store = CountingStore(LocalStore(p, read_only=True))
    r = oxzarr.open_array(store, mode="r")
    # Two points in each of the 256 inner chunks, given in no particular order.
    rows, cols = np.indices((16, 16)).reshape(2, -1) * 4
    rows, cols = np.concatenate([rows, rows + 3]), np.concatenate([cols + 1, cols + 2])
    order = np.random.default_rng(4).permutation(rows.size)
    rows, cols = rows[order], cols[order]
    store.reset()
    assert_same(r.vindex[rows, cols], data[rows, cols])
    # The 4 indexes, then runs of 16 inner chunks (a sixteenth of them) of one shard each.
    assert store.requests == 4 + 256 // 16
    # Points in a few inner chunks: one request each, spread over the threads.
    store.reset()
    assert_same(r.vindex[[0, 5, 63], [0, 40, 63]], data[[0, 5, 63], [0, 40, 63]])
    assert store.requests == 3
    # A mask selection goes the same way.
    mask = np.zeros(data.shape, dtype=bool)
    mask[rows, cols] = True
    store.reset()
    assert_same(r[mask], data[mask])
    assert store.requests == 256 // 16


def test_a_writer_keeps_the_indexes_of_the_shards_it_wrote(tmp_path: Path) -> None:
    p = tmp_path / "a.zarr"
    oxzarr.create_array(p, shape=(64, 64), dtype="f8", chunks=(8, 8), shards=(32, 32))
    store = CountingStore(LocalStore(p))
    a = oxzarr.open_array(store, mode="r+")
    data = sample((64, 64), "f8")
    a[...] = data  # whole shards: nothing read
    a[3, 40] = -1.0  # part of shard (0, 1): that shard read, then rewritten
    data[3, 40] = -1.0
    # Each inner chunk read afterwards is one request: the index each write laid out is kept.
    for box in [(slice(0, 8), slice(0, 8)), (slice(0, 8), slice(40, 48)), (slice(56, 64),) * 2]:
        store.reset()
        assert_same(a[box], data[box])
        assert store.requests == 1, box
    # A shard rewritten by another handle is noticed: its index is read again.
    oxzarr.open_array(p, mode="r+")[0:8, 0:8] = 5.0
    data[0:8, 0:8] = 5.0
    store.reset()
    assert_same(a[0:8, 0:8], data[0:8, 0:8])
    # the read through the kept index finds the shard replaced, then the index and the chunk
    assert store.requests == 3
    assert_same(a[...], data)


def test_threads_that_meet_a_replaced_shard_read_its_new_index_once(tmp_path: Path) -> None:
    p = tmp_path / "a.zarr"
    a = oxzarr.create_array(
        p, shape=(64, 64), dtype="i4", chunks=(8, 8), shards=(64, 64), compressors=ZstdCodec()
    )
    a[...] = sample((64, 64), "i4", seed=1)
    store = CountingStore(LocalStore(p, read_only=True))
    r = oxzarr.open_array(store, mode="r")
    assert r[0, 0] == a[0, 0]  # the reader keeps the shard's index
    second = sample((64, 64), "i4", seed=2)
    oxzarr.open_array(p, mode="r+")[...] = second
    # A region of 48 of the 64 inner chunks: what a reader new to the shard reads.
    box = (slice(0, 48), slice(0, 64))
    new = CountingStore(LocalStore(p, read_only=True))
    fresh = oxzarr.open_array(new, mode="r")
    new.reset()
    assert_same(fresh[box], second[box])
    with oxzarr.config.set({"threads": 4}):
        store.reset()
        assert_same(r[box], second[box])
    # The threads that tried the kept index found the shard replaced (reading nothing); the
    # first of them read the new index, the others took it from that thread.
    assert store.bytes_read == new.bytes_read
    assert new.requests < store.requests <= new.requests + 4


def test_reads_look_for_an_absent_shard_once(tmp_path: Path) -> None:
    p = tmp_path / "a.zarr"
    a = oxzarr.create_array(
        p, shape=(64, 64), dtype="f8", chunks=(8, 8), shards=(32, 32), fill_value=np.nan
    )
    a[:32, :32] = 1.0  # shard (0, 0) stored; the other three absent
    store = CountingStore(LocalStore(p, read_only=True))
    r = oxzarr.open_array(store, mode="r")
    want = np.full((64, 64), np.nan)
    want[:32, :32] = 1.0
    # Shard (1, 1) alone, 16 inner chunks: one failed lookup, not one per inner chunk.
    store.reset()
    assert_same(r[32:, 32:], want[32:, 32:])
    assert (store.requests, store.bytes_read) == (1, 0)
    # Points in all four shards: the stored shard's index and inner chunks, one lookup of
    # each absent shard.
    rows = np.array([1, 9, 40, 41, 50, 60, 5, 20, 63])
    cols = np.array([2, 2, 40, 3, 50, 10, 60, 20, 63])
    store.reset()
    assert_same(r.vindex[rows, cols], want[rows, cols])
    stored_inner = len(
        {(i // 8, j // 8) for i, j in zip(rows, cols, strict=True) if i < 32 and j < 32}
    )
    assert store.requests == 1 + stored_inner + 3
    # Again: the stored shard's index is cached; absent shards are looked for again, as one
    # may have been written since.
    store.reset()
    assert_same(r.vindex[rows, cols], want[rows, cols])
    assert store.requests == stored_inner + 3


SHARD_REWRITERS = ["another oxzarr handle", "zarr-python", "tensorstore"]


def _rewrite(writer: str, path: Path, values: np.ndarray) -> None:
    """Writes `values` over the whole array at `path` with `writer`."""
    if writer == "another oxzarr handle":
        oxzarr.open_array(path, mode="r+")[...] = values
    elif writer == "zarr-python":
        zarr.open_array(path, mode="r+")[...] = values
    else:
        spec = {"driver": "zarr3", "kvstore": {"driver": "file", "path": str(path)}}
        ts.open(spec, open=True).result()[...].write(values).result()


@pytest.mark.parametrize("writer", SHARD_REWRITERS)
@pytest.mark.parametrize("compressors", [None, [ZstdCodec(level=1)]], ids=["raw", "zstd"])
def test_an_open_array_sees_shards_rewritten_since_it_read_them(
    tmp_path: Path, writer: str, compressors: Any
) -> None:
    # The reader's cached shard indexes describe shards that are then replaced: by another
    # handle, or another library. Raw inner chunks keep the shard's size, so only the
    # shard's version (inode, modification time) tells; zstd ones move.
    p = tmp_path / "a.zarr"
    first = sample((32, 32), "i4", seed=1)
    a = oxzarr.create_array(
        p, shape=(32, 32), dtype="i4", chunks=(4, 4), shards=(16, 16), compressors=compressors
    )
    a[...] = first
    a[8:24, 8:24] = 0  # inner chunks absent from every shard
    expected = first.copy()
    expected[8:24, 8:24] = 0
    assert_same(a[...], expected)
    assert a[1, 1] == expected[1, 1]
    second = sample((32, 32), "i4", seed=2)
    _rewrite(writer, p, second)
    assert_same(a[...], second)
    assert a[1, 1] == second[1, 1]
    assert a[9, 9] == second[9, 9]
    assert_same(a[2:6, 3:30], second[2:6, 3:30])


@pytest.mark.parametrize("store", ["local", "memory"])
def test_an_open_array_sees_shards_written_or_deleted_since_it_read_them(
    tmp_path: Path, store: str
) -> None:
    s: Any = tmp_path / "a.zarr" if store == "local" else oxzarr.storage.MemoryStore()
    a = oxzarr.create_array(s, shape=(16,), dtype="u2", chunks=(2,), shards=(8,), fill_value=0)
    b = oxzarr.open_array(s, mode="r+")
    assert_same(a[...], np.zeros(16, "u2"))  # no shard stored yet
    b[...] = np.arange(16, dtype="u2")
    assert_same(a[...], np.arange(16, dtype="u2"))
    assert a[3] == 3
    b[0:8] = 0  # the first shard holds only the fill value: deleted
    assert a[3] == 0
    b[0:8] = np.arange(100, 108, dtype="u2")  # the same size as before, new values
    assert_same(a[0:8], np.arange(100, 108, dtype="u2"))
    assert a.vindex[np.array([3, 12])].tolist() == [103, 12]


def test_a_cached_shard_index_still_costs_nothing_while_the_shard_is_unchanged(
    tmp_path: Path,
) -> None:
    p = tmp_path / "a.zarr"
    a = oxzarr.create_array(p, shape=(64,), dtype="f8", chunks=(8,), shards=(32,))
    a[...] = np.arange(64.0)
    store = CountingStore(LocalStore(p, read_only=True))
    r = oxzarr.open_array(store, mode="r")
    assert r[3] == 3.0
    store.reset()
    for i in range(0, 32, 4):
        assert r[i] == float(i)
    assert store.requests == 8, "one range request per read, the index from the cache"
    oxzarr.open_array(p, mode="r+")[0:4] = -1.0
    store.reset()
    assert r[3] == -1.0
    # A failed read of the inner chunk with the old index, the new index, the inner chunk.
    assert store.requests == 3


def test_partial_writes_keep_the_rest_of_the_shard(tmp_path: Path) -> None:
    p = tmp_path / "a.zarr"
    a = oxzarr.create_array(
        p,
        shape=(16, 16),
        dtype="i4",
        chunks=(4, 4),
        shards=(8, 8),
        compressors=[ZstdCodec(level=1), Crc32cCodec()],
        fill_value=0,
    )
    a[1, 1] = 5
    a[6, 6] = 7
    shard = p / "c" / "0" / "0"
    index = _index(shard, 4)
    stored = [i for i in range(4) if tuple(index[i]) != (2**64 - 1, 2**64 - 1)]
    assert stored == [0, 3], "inner chunks never written stay absent"
    before = shard.read_bytes()
    first = index[0]
    a[7, 7] = 8  # rewrites inner chunk 3 only: inner chunk 0's bytes are kept as they were
    after = shard.read_bytes()
    new_index = _index(shard, 4)
    old_bytes = before[first[0] : first[0] + first[1]]
    new_bytes = after[new_index[0][0] : new_index[0][0] + new_index[0][1]]
    assert old_bytes == new_bytes
    expected = np.zeros((16, 16), "i4")
    expected[1, 1], expected[6, 6], expected[7, 7] = 5, 7, 8
    assert_same(a[...], expected)
    assert_same(zarr.open_array(p, mode="r")[...], expected)
    a[0:8, 0:8] = 0
    assert not shard.exists(), "a shard holding only the fill value is deleted"


def test_a_corrupt_shard_names_its_key(tmp_path: Path) -> None:
    p = tmp_path / "a.zarr"
    a = oxzarr.create_array(p, shape=(16,), dtype="i4", chunks=(4,), shards=(8,))
    a[...] = np.arange(16)
    shard = p / "c" / "1"
    shard.write_bytes(shard.read_bytes()[:-3])
    with pytest.raises(oxzarr.errors.CorruptChunkError, match="c/1"):
        oxzarr.open_array(p, mode="r")[...]
    shard.write_bytes(b"")
    with pytest.raises(oxzarr.errors.CorruptChunkError, match="c/1"):
        oxzarr.open_array(p, mode="r")[8:]
    assert oxzarr.open_array(p, mode="r")[:8].tolist() == list(range(8))


def _rewrite_entry(shard: Path, n_inner: int, inner: int, offset: int, nbytes: int) -> None:
    """Points entry `inner` of a shard's index (bytes little + crc32c, at the end) at
    (offset, nbytes), with a checksum that matches, so only the range is wrong."""
    from numcodecs import CRC32C

    raw = shard.read_bytes()
    size = n_inner * 16 + 4
    entries = np.frombuffer(raw[-size:-4], dtype="<u8").reshape(n_inner, 2).copy()
    entries[inner] = (offset, nbytes)
    shard.write_bytes(raw[:-size] + bytes(CRC32C().encode(entries.tobytes())))


@pytest.mark.parametrize(
    "select",
    [lambda a: a[...], lambda a: a[1, 5], lambda a: a[0:2, 4:6], lambda a: a[1:3, 5]],
    ids=["all", "point", "rows", "column"],
)
def test_an_index_entry_past_the_end_of_the_shard_is_corrupt(tmp_path: Path, select: Any) -> None:
    # Uncompressed inner chunks are read in part (a point, some rows) straight from the shard:
    # those reads must see that the entry reaches past the shard's end, and not return the
    # bytes (here, the index's) that its first part lands on.
    p = tmp_path / "a.zarr"
    a = oxzarr.create_array(
        p, shape=(8, 8), dtype="i4", chunks=(4, 4), shards=(8, 8), compressors=None
    )
    a[...] = np.arange(64, dtype="i4").reshape(8, 8)
    shard = p / "c" / "0" / "0"
    _rewrite_entry(shard, 4, 1, shard.stat().st_size - 24, 64)
    with pytest.raises(oxzarr.errors.CorruptChunkError, match="c/0/0"):
        select(oxzarr.open_array(p, mode="r"))


@pytest.mark.parametrize("offset", [2**62, 2**64 - 65])
def test_an_index_entry_beyond_any_file_offset_is_corrupt(tmp_path: Path, offset: int) -> None:
    p = tmp_path / "a.zarr"
    a = oxzarr.create_array(
        p, shape=(8, 8), dtype="i4", chunks=(4, 4), shards=(8, 8), compressors=None
    )
    a[...] = np.arange(64, dtype="i4").reshape(8, 8)
    _rewrite_entry(p / "c" / "0" / "0", 4, 1, offset, 64)
    for select in (lambda b: b[...], lambda b: b[1, 5]):
        with pytest.raises(oxzarr.errors.CorruptChunkError, match="lies outside the shard"):
            select(oxzarr.open_array(p, mode="r"))


@pytest.mark.parametrize("compressed", [False, True])
def test_points_of_sharded_arrays_like_numpy(tmp_path: Path, compressed: bool) -> None:
    # Coordinate and mask selections of a sharded array go through the engine grouped by inner
    # chunk, shard by shard; shards overhang the array's edge and some inner chunks are absent.
    shape = (37, 29)
    layout: dict[str, Any] = {
        "shape": shape,
        "dtype": "i4",
        "chunks": (5, 4),
        "shards": (10, 12),
        "compressors": [ZstdCodec(level=1)] if compressed else None,
    }
    a = oxzarr.create_array(tmp_path / "p.zarr", fill_value=-1, **layout)
    expected = np.full(shape, -1, dtype="i4")
    expected[:20, :15] = sample((20, 15), "i4")
    a[:20, :15] = expected[:20, :15]
    rng = np.random.default_rng(7)
    rows, cols = rng.integers(0, 37, 500), rng.integers(0, 29, 500)
    assert_same(a.vindex[rows, cols], expected[rows, cols])
    assert_same(a.vindex[rows.reshape(20, 25), 3], expected[rows.reshape(20, 25), 3])
    # Repeated points take the last value written, as in numpy.
    values = np.arange(500, dtype="i4")
    a.vindex[rows, cols] = values
    expected[rows, cols] = values
    assert_same(a[...], expected)
    mask = (np.indices(shape).sum(axis=0) % 7) == 0
    a[mask] = 5
    expected[mask] = 5
    assert_same(a[mask], expected[mask])
    assert_same(a[...], expected)
    # Points written back to the fill value leave their inner chunks absent again.
    b = oxzarr.create_array(tmp_path / "q.zarr", fill_value=0, **layout)
    b.vindex[[0, 36], [0, 28]] = [1, 2]
    assert b.nchunks_initialized == 2
    b.vindex[[0, 36], [0, 28]] = 0
    assert b.nchunks_initialized == 0 and b[...].sum() == 0
    # zarr-python reads what the engine wrote.
    assert_same(zarr.open_array(tmp_path / "p.zarr", mode="r")[...], expected)


def test_sharded_point_writes_rewrite_each_shard_once(tmp_path: Path) -> None:
    p = tmp_path / "w.zarr"
    oxzarr.create_array(p, shape=(40, 40), dtype="u2", chunks=(4, 4), shards=(20, 20))
    store = CountingStore(LocalStore(p))
    a = oxzarr.open_array(store, mode="r+")
    rng = np.random.default_rng(3)
    rows, cols = rng.integers(0, 20, 300), rng.integers(0, 20, 300)  # all in shard (0, 0)
    store.reset()
    a.vindex[rows, cols] = 9
    # One read of the (absent) shard, not one read-modify-write per point.
    assert store.requests == 1
    assert (a.vindex[rows, cols] == 9).all()


def test_nchunks_initialized_counts_inner_chunks(tmp_path: Path) -> None:
    # As nchunks does: inner chunks, each shard's index read (zarr-python 3.1.6 counts every
    # inner chunk of a stored shard, 4 after one element here).
    a = oxzarr.create_array(
        tmp_path / "n.zarr", shape=(16, 16), dtype="i4", chunks=(4, 4), shards=(8, 8)
    )
    assert (a.nchunks, a.nchunks_initialized) == (16, 0)
    a[0, 0] = 1
    assert a.nchunks_initialized == 1
    a[5:9, 0] = 2  # inner chunks (1, 0) of shard (0, 0) and (2, 0) of shard (1, 0)
    assert a.nchunks_initialized == 3
    a[...] = 1
    assert a.nchunks_initialized == 16


def _vlen_layout(kind: str, vlen: dict[str, Any], api: Any) -> dict[str, Any]:
    """A (4, 6) array in one shard of (4, 6), its inner chunks of strings or bytes behind
    another sharding codec, before a compressor, or after a transpose; `api` is zarr.codecs
    or oxzarr.codecs."""
    if api is zc:
        inner = [zc.VLenUTF8Codec() if vlen["name"] == "vlen-utf8" else zc.VLenBytesCodec()]
    else:
        inner = [vlen]
    layout: dict[str, Any] = {"shape": (4, 6), "chunks": (4, 6), "compressors": None}
    if kind == "nested":
        innermost = api.ShardingCodec(chunk_shape=(1, 3), codecs=inner)
        layout["serializer"] = api.ShardingCodec(chunk_shape=(2, 6), codecs=[innermost])
    elif kind == "outer zstd":
        layout["serializer"] = api.ShardingCodec(chunk_shape=(2, 3), codecs=inner)
        layout["compressors"] = [api.ZstdCodec(level=1)]
    else:
        # Inner chunks that divide the shard both ways: zarr-python 3.1.6 checks them against
        # the shard's shape before the transpose, not the (6, 4) the sharding codec receives.
        layout["serializer"] = api.ShardingCodec(chunk_shape=(2, 2), codecs=inner)
        layout["filters"] = [api.TransposeCodec(order=(1, 0))]
    return layout


@pytest.mark.parametrize("kind", ["nested", "outer zstd", "transpose"])
@pytest.mark.parametrize("dtype", ["str", "bytes"])
def test_variable_length_elements_when_sharding_is_not_the_whole_chain(
    tmp_path: Path, kind: str, dtype: str
) -> None:
    # Shards of strings or bytes decoded whole (sharding inside a shard, a codec after the
    # sharding codec, a transpose before it). Rows 0 and 1 hold only the fill value, so some
    # inner chunks are left out.
    texts = [[""] * 6, [""] * 6, ["a", "bb", "", "é" * 3, "x" * 40, "z"], list("uvwxyz")]
    if dtype == "str":
        values = np.array(texts, dtype=object)
        vlen: dict[str, Any] = {"name": "vlen-utf8"}
    else:
        values = np.array([[t.encode() for t in row] for row in texts], dtype=object)
        vlen = {"name": "vlen-bytes"}
    ours = oxzarr.create_array(
        tmp_path / "ox.zarr", dtype=dtype, **_vlen_layout(kind, vlen, oxzarr.codecs)
    )
    ours[...] = values
    assert ours[...].tolist() == values.tolist()
    assert ours[1:3, 2:5].tolist() == values[1:3, 2:5].tolist()
    ours[3, 1:4] = values[2, 1:4]
    expected = values.copy()
    expected[3, 1:4] = values[2, 1:4]
    assert oxzarr.open_array(tmp_path / "ox.zarr")[...].tolist() == expected.tolist()
    theirs = zarr.create_array(tmp_path / "zp.zarr", dtype=dtype, **_vlen_layout(kind, vlen, zc))
    theirs[...] = values
    assert oxzarr.open_array(tmp_path / "zp.zarr")[...].tolist() == values.tolist()
    got = zarr.open_array(tmp_path / "ox.zarr", mode="r")[...]
    assert np.asarray(got).tolist() == expected.tolist()


def test_inner_chunks_left_outside_a_shrunk_array_are_not_initialized_chunks(
    tmp_path: Path,
) -> None:
    # The edge shard is kept when the array shrinks; its inner chunks now outside the array
    # were counted, so nchunks_initialized passed nchunks.
    a = oxzarr.create_array(tmp_path / "a", shape=(4, 4), chunks=(2, 2), shards=(4, 4), dtype="i4")
    a[...] = np.arange(16).reshape(4, 4)
    assert a.nchunks_initialized == 4
    a.resize((2, 3))
    assert (a.nchunks, a.nchunks_initialized) == (2, 2)
    a.resize((2, 2))
    assert (a.nchunks, a.nchunks_initialized) == (1, 1)
    assert "Chunks Initialized : 1" in str(a.info_complete())


@pytest.mark.parametrize("value", [5, 0])
def test_inner_chunks_past_a_shrunk_edge_outlive_a_write_of_the_whole_array(
    tmp_path: Path, value: int
) -> None:
    # A write covering all of a shrunk array's part of an edge shard rewrote the shard from
    # its touched inner chunks alone (or, of the fill value, deleted it), dropping the inner
    # chunks past the edge that a regrown array reads again, as zarr-python's does.
    expected = np.arange(1, 65, dtype="i4").reshape(8, 8)
    results = []
    for lib in (oxzarr, zarr):
        a = lib.create_array(
            tmp_path / lib.__name__, shape=(8, 8), dtype="i4", chunks=(2, 2), shards=(8, 8)
        )
        a[...] = expected
        a.resize((3, 3))
        a[...] = value
        a.resize((8, 8))
        results.append(a[...])
    ours, theirs = results
    # The inner chunk straddling the new edge is rewritten whole (docs/drop-in.md); every
    # other value past the edge is kept, in both libraries.
    kept = np.ones((8, 8), bool)
    kept[:4, :4] = False
    assert_same(ours[kept], expected[kept])
    assert_same(ours[kept], theirs[kept])
    assert (ours[:3, :3] == value).all()
    assert_same(zarr.open_array(tmp_path / "oxzarr", mode="r")[...], ours)


def _stored_inner(raw: bytes, levels: list[tuple[int, bool]]) -> list[Any]:
    """Per inner chunk of a shard of `levels[0][0]` (its index at the end, bytes and crc32c,
    then a crc32c of the whole shard if `levels[0][1]`): None where none is stored, else its
    bytes or, for a shard inside it (`levels[1:]`), the same again."""
    n, checksummed = levels[0]
    if checksummed:
        raw = raw[:-4]
    index = np.frombuffer(raw[-(16 * n + 4) : -4], dtype="<u8").reshape(n, 2)
    out: list[Any] = []
    for offset, nbytes in index.tolist():
        if offset == 2**64 - 1:
            out.append(None)
            continue
        part = raw[offset : offset + nbytes]
        out.append(_stored_inner(part, levels[1:]) if levels[1:] else part)
    return out


def _layout(kind: str, strings: bool = False) -> tuple[dict[str, Any], list[tuple[int, bool]]]:
    """An (8, 8) shard of (4, 4) inner chunks (of strings if `strings`): shards of (2, 2)
    themselves (with a crc32c after each), or followed by a crc32c; with how `_stored_inner`
    reads it."""
    serializer = zc.VLenUTF8Codec() if strings else zc.BytesCodec()
    innermost = zc.ShardingCodec(chunk_shape=(2, 2), codecs=[serializer])
    if kind == "nested":
        ser = zc.ShardingCodec(chunk_shape=(4, 4), codecs=[innermost])
        return {"serializer": ser, "compressors": None}, [(4, False), (4, False)]
    if kind == "nested, crc32c":
        ser = zc.ShardingCodec(chunk_shape=(4, 4), codecs=[innermost, zc.Crc32cCodec()])
        return {"serializer": ser, "compressors": None}, [(4, False), (4, True)]
    ser = zc.ShardingCodec(chunk_shape=(4, 4), codecs=[serializer])
    return {"serializer": ser, "compressors": [zc.Crc32cCodec()]}, [(4, True)]


@pytest.mark.parametrize("kind", ["nested", "nested, crc32c", "crc32c"])
@pytest.mark.parametrize("write_empty_chunks", [False, True])
def test_shards_keep_the_inner_chunks_zarr_python_keeps_at_every_level(
    tmp_path: Path, kind: str, write_empty_chunks: bool
) -> None:
    # zarr-python hands write_empty_chunks down to the innermost chunks, and writes a shard
    # inside a shard in part, keeping the chunks stored before that a write does not touch.
    # Only the outer level followed it: with it on, an inner shard of the fill value was
    # stored as its index alone, as was a shard followed by a crc32c; with it off, the
    # innermost chunks of the fill value stored before were dropped once their inner shard
    # was touched.
    data = np.arange(1, 65, dtype="i4").reshape(8, 8)
    steps = [
        lambda a: a.__setitem__(Ellipsis, 0),
        lambda a: [a.__setitem__(Ellipsis, data), a.__setitem__((slice(0, 4), slice(0, 4)), 0)],
        lambda a: a.__setitem__((0, 0), 7),
        lambda a: a.oindex.__setitem__(([1, 6], [1, 2]), 0),
        lambda a: a.__setitem__((slice(4, 8), slice(0, 8, 5)), 0),
        lambda a: a.vindex.__setitem__(([0, 5], [0, 5]), 0),
        lambda a: a.__setitem__(np.eye(8, dtype=bool), 0),
    ]
    layout, levels = _layout(kind)
    seen: dict[str, list[Any]] = {}
    for lib in (zarr, oxzarr):
        p = tmp_path / lib.__name__
        lib.create_array(p, shape=(8, 8), dtype="i4", chunks=(8, 8), fill_value=0, **layout)
        seen[lib.__name__] = []
        for step in steps:
            for setting in (write_empty_chunks, not write_empty_chunks):
                a = lib.open_array(p, mode="r+").with_config({"write_empty_chunks": setting})
                step(a)
                shard = p / "c" / "0" / "0"
                stored = _stored_inner(shard.read_bytes(), levels) if shard.exists() else None
                seen[lib.__name__].append((stored, a[...].tolist()))
    assert seen["oxzarr"] == seen["zarr"]


@pytest.mark.parametrize("kind", ["nested", "nested, crc32c", "crc32c"])
@pytest.mark.parametrize("write_empty_chunks", [False, True])
def test_shards_of_strings_keep_the_inner_chunks_zarr_python_keeps_at_every_level(
    tmp_path: Path, kind: str, write_empty_chunks: bool
) -> None:
    # As for numbers: shards of strings inside shards, or followed by a crc32c, left out the
    # inner chunks of the fill value with write_empty_chunks on, and with it off dropped the
    # innermost ones stored before once a write touched their inner shard.
    data = np.array([[f"s{i}" * (i % 3) for i in range(8 * r, 8 * r + 8)] for r in range(8)])
    steps = [
        lambda a: a.__setitem__(Ellipsis, ""),
        lambda a: [a.__setitem__(Ellipsis, data), a.__setitem__((slice(0, 4), slice(0, 4)), "")],
        lambda a: a.__setitem__((0, 0), "x"),
        lambda a: a.oindex.__setitem__(([1, 6], [1, 2]), ""),
        lambda a: a.vindex.__setitem__(([0, 5], [0, 5]), ""),
        lambda a: a.__setitem__(np.eye(8, dtype=bool), ""),
    ]
    layout, levels = _layout(kind, strings=True)
    seen: dict[str, list[Any]] = {}
    for lib in (zarr, oxzarr):
        p = tmp_path / lib.__name__
        lib.create_array(p, shape=(8, 8), dtype=str, chunks=(8, 8), fill_value="", **layout)
        seen[lib.__name__] = []
        for step in steps:
            for setting in (write_empty_chunks, not write_empty_chunks):
                a = lib.open_array(p, mode="r+").with_config({"write_empty_chunks": setting})
                step(a)
                shard = p / "c" / "0" / "0"
                stored = _stored_inner(shard.read_bytes(), levels) if shard.exists() else None
                seen[lib.__name__].append((stored, np.asarray(a[...]).tolist()))
    assert seen["oxzarr"] == seen["zarr"]


@pytest.mark.parametrize("shrunk", [(2, 2), (3, 3), (2, 8)])
def test_a_shard_inside_a_shard_keeps_what_a_shrink_left_past_the_edge(
    tmp_path: Path, shrunk: tuple[int, int]
) -> None:
    # zarr-python writes an inner shard in part: what a shrink left in it past the edge stays,
    # and shows again when the array grows. A write covering the inner shard's part inside
    # the array rewrote it whole from the fill value, dropping that.
    layout, levels = _layout("nested")
    seen = []
    for lib in (zarr, oxzarr):
        p = tmp_path / lib.__name__
        a = lib.create_array(p, shape=(8, 8), dtype="i4", chunks=(8, 8), fill_value=0, **layout)
        a[...] = np.arange(1, 65, dtype="i4").reshape(8, 8)
        a.resize(shrunk)
        a[...] = 5
        a.resize((8, 8))
        seen.append((_stored_inner((p / "c" / "0" / "0").read_bytes(), levels), a[...].tolist()))
    assert seen[1] == seen[0]
