"""Reads of part of a compressed chunk: zstd stops decoding once the bytes a read needs are
out, blosc decodes only the blocks holding them. Every such read must give the values a whole
decode gives, at every position in the chunk (its first and last bytes, zstd's 128 KiB block
boundaries, blosc's block boundaries), for chunks written by oxzarr and by zarr-python. A
chunk that is truncated, padded or overwritten fails whichever part of it is read, and one
with a checksum is checked whole by every read; damage inside the blocks a read does not
decode goes unnoticed by it when the chunk has no checksum."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr
import zarr.codecs as zc

import oxzarr
from oxzarr.codecs import BloscCodec, Crc32cCodec, ZstdCodec
from oxzarr.errors import CorruptChunkError
from tests.conftest import assert_same

# Chunks of 64 * 64 * 24 float32 = 384 KiB: three zstd blocks each, and many blosc blocks.
SHAPE = (128, 100, 48)
CHUNKS = (64, 64, 24)
CHUNK_ELEMENTS = 64 * 64 * 24


def _data() -> np.ndarray:
    """Smooth values with noise: compressible, but no two neighbours alike."""
    rng = np.random.default_rng(7)
    idx = np.indices(SHAPE).sum(axis=0).astype("f4")
    return np.sin(idx / 9).astype("f4") + rng.normal(0, 0.01, SHAPE).astype("f4")


CODECS: dict[str, tuple[Any, Any]] = {
    # name: (oxzarr's codec, zarr-python's)
    "zstd": (ZstdCodec(level=3), zc.ZstdCodec(level=3)),
    "zstd-checksum": (ZstdCodec(level=3, checksum=True), zc.ZstdCodec(level=3, checksum=True)),
    "blosc-lz4": (
        BloscCodec(cname="lz4", clevel=5, shuffle="shuffle"),
        zc.BloscCodec(cname="lz4", clevel=5, shuffle="shuffle", typesize=4),
    ),
    "blosc-zstd-bitshuffle-16k": (
        BloscCodec(cname="zstd", clevel=3, shuffle="bitshuffle", blocksize=16384),
        zc.BloscCodec(cname="zstd", clevel=3, shuffle="bitshuffle", typesize=4, blocksize=16384),
    ),
}


def _positions() -> list[tuple[int, int, int]]:
    """Points at the edges of chunk (1, 0, 1)'s bytes and of zstd's and blosc's blocks in it,
    plus points spread over the whole array (edge chunks included)."""
    origin = (64, 0, 24)
    offsets = [0, 1, 2047, 2048, 4095, 4096, 32767, 32768, 32769]
    offsets += [131071 // 4, 131072 // 4, 262143 // 4, 262144 // 4]
    offsets += [CHUNK_ELEMENTS - 2, CHUNK_ELEMENTS - 1]
    pts = []
    for off in offsets:
        k, rest = divmod(off, 64 * 24)
        j, i = divmod(rest, 24)
        pts.append((origin[0] + k, origin[1] + j, origin[2] + i))
    rng = np.random.default_rng(3)
    pts += [tuple(int(rng.integers(0, s)) for s in SHAPE) for _ in range(150)]
    return pts  # type: ignore[return-value]


def _write(path: Path, writer: str, codec: str, data: np.ndarray, shards: Any = None) -> None:
    ours, theirs = CODECS[codec]
    if writer == "oxzarr":
        kw = {"shards": shards} if shards else {}
        oxzarr.create_array(path, shape=SHAPE, dtype="f4", chunks=CHUNKS, compressors=[ours], **kw)[
            ...
        ] = data
    else:
        zarr.create_array(
            store=path,
            shape=SHAPE,
            dtype="f4",
            chunks=CHUNKS,
            shards=shards,
            compressors=[theirs],
            zarr_format=3,
        )[...] = data


@pytest.mark.parametrize("writer", ["oxzarr", "zarr-python"])
@pytest.mark.parametrize("codec", list(CODECS))
def test_parts_of_chunks_read_right(tmp_path: Path, writer: str, codec: str) -> None:
    data = _data()
    path = tmp_path / "a.zarr"
    _write(path, writer, codec, data)
    a = oxzarr.open_array(path, mode="r")
    for p in _positions():
        assert a[p] == data[p], p
    # Short runs, including the chunk's last row and runs that cross blosc blocks.
    for sel in [
        np.s_[64, 0, 24:30],
        np.s_[127, 63, 24:48],
        np.s_[100, 10:12, 30:40],
        np.s_[64:66, 5, 24],
        np.s_[90, 21:23, :],
        np.s_[127, 99, 47],
    ]:
        assert_same(a[sel], data[sel])
    # Points of one chunk, through a coordinate selection.
    rows = np.array([64, 64, 70, 127])
    cols = np.array([0, 63, 20, 63])
    deps = np.array([24, 24, 30, 47])
    assert_same(a.vindex[rows, cols, deps], data[rows, cols, deps])
    assert_same(a[...], data)


@pytest.mark.parametrize("codec", ["zstd", "blosc-lz4"])
def test_parts_of_inner_chunks_read_right(tmp_path: Path, codec: str) -> None:
    data = _data()
    path = tmp_path / "s.zarr"
    _write(path, "zarr-python", codec, data, shards=(128, 128, 48))
    a = oxzarr.open_array(path, mode="r")
    assert a.shards == (128, 128, 48)
    for p in _positions():
        assert a[p] == data[p], p
    assert_same(a[70, 3:9, 40], data[70, 3:9, 40])


@pytest.mark.parametrize("codec", ["zstd", "blosc-lz4"])
def test_writing_part_of_a_chunk_keeps_the_rest(tmp_path: Path, codec: str) -> None:
    data = _data()
    path = tmp_path / "a.zarr"
    _write(path, "oxzarr", codec, data)
    a = oxzarr.open_array(path, mode="r+")
    a[64, 0, 24] = -1.0
    a.vindex[[70, 71], [1, 2], [25, 26]] = np.array([-2.0, -3.0], dtype="f4")
    data[64, 0, 24] = -1.0
    data[[70, 71], [1, 2], [25, 26]] = [-2.0, -3.0]
    assert_same(oxzarr.open_array(path, mode="r")[...], data)


@pytest.mark.parametrize("codec", list(CODECS))
def test_a_damaged_chunk_fails_whichever_part_is_read(tmp_path: Path, codec: str) -> None:
    data = _data()
    path = tmp_path / "a.zarr"
    _write(path, "oxzarr", codec, data)
    chunk = path / "c" / "1" / "0" / "1"
    good = chunk.read_bytes()
    a = oxzarr.open_array(path, mode="r")
    first, last = (64, 0, 24), (127, 63, 47)
    padded = good + b"\x00" * 7
    damaged = [good[: len(good) // 2], good[:20], b"", b"\xff" * len(good)]
    if codec.startswith("blosc"):
        # numcodecs decodes a blosc chunk from its frame alone, so zarr-python reads a chunk
        # with bytes stored after it: so does oxzarr.
        chunk.write_bytes(padded)
        assert a[first] == data[first] and a[last] == data[last]
        assert_same(a.vindex[[64, 65], [0, 1], [24, 25]], data[[64, 65], [0, 1], [24, 25]])
    else:
        damaged.append(padded)
    for broken in damaged:
        chunk.write_bytes(broken)
        for p in [first, last]:
            with pytest.raises(CorruptChunkError, match="c/1/0/1"):
                a[p]
        with pytest.raises(CorruptChunkError, match="c/1/0/1"):
            a.vindex[[64, 65], [0, 1], [24, 25]]
    chunk.write_bytes(good)
    assert a[first] == data[first]


@pytest.mark.parametrize(
    "compressors",
    [[ZstdCodec(level=3, checksum=True)], [BloscCodec(cname="lz4"), Crc32cCodec()]],
    ids=["zstd-checksum", "blosc-crc32c"],
)
def test_a_checksum_is_checked_by_every_read(tmp_path: Path, compressors: list[Any]) -> None:
    """Damage near the end of a chunk, far from the element read: a chunk with a checksum is
    decoded whole, so even a read of its first element finds it."""
    data = _data()
    path = tmp_path / "a.zarr"
    oxzarr.create_array(path, shape=SHAPE, dtype="f4", chunks=CHUNKS, compressors=compressors)[
        ...
    ] = data
    chunk = path / "c" / "1" / "0" / "1"
    raw = bytearray(chunk.read_bytes())
    raw[-40] ^= 0x10
    chunk.write_bytes(bytes(raw))
    a = oxzarr.open_array(path, mode="r")
    with pytest.raises(CorruptChunkError, match="c/1/0/1"):
        a[64, 0, 24]
    with pytest.raises(CorruptChunkError, match="c/1/0/1"):
        a.vindex[[64], [0], [24]]


@pytest.mark.parametrize("shards", [None, (128, 128, 48)], ids=["chunks", "shards"])
def test_short_rows_of_uncompressed_chunks_read_right(tmp_path: Path, shards: Any) -> None:
    """Planes and small boxes of uncompressed chunks are rows of a few elements each, read with
    one request over the bytes they span and copied out of it: every row must land in its
    place, an absent chunk read as the fill value, and a chunk of the wrong size refused."""
    data = _data()
    path = tmp_path / "raw.zarr"
    z = zarr.create_array(
        store=path,
        shape=SHAPE,
        dtype="f4",
        chunks=CHUNKS,
        shards=shards,
        compressors=None,
        fill_value=-1,
        zarr_format=3,
    )
    z[...] = data
    z[0:64, 64:, 0:24] = -1  # not stored (zarr-python skips chunks of the fill value)
    expected = z[...]
    a = oxzarr.open_array(path, mode="r")
    for sel in [
        np.s_[:, :, 5],
        np.s_[:, 7, :],
        np.s_[3:60, 2:62, 11],
        np.s_[::3, 1::5, 2],
        np.s_[::-2, 50, ::-7],
        np.s_[70:80, 70:80, 30:40],
        np.s_[10:20, 60:70, 20:28],
        np.s_[:, 99, 47],
    ]:
        assert_same(a[sel], expected[sel])
    if shards is None:
        chunk = path / "c" / "1" / "0" / "1"
        short = chunk.read_bytes()[:-4]
        chunk.write_bytes(short)
        with pytest.raises(CorruptChunkError, match="c/1/0/1"):
            a[:, :, 30]
        # Writing part of it is refused too, and leaves it as it was.
        with pytest.raises(CorruptChunkError, match="c/1/0/1"):
            oxzarr.open_array(path, mode="r+")[70:72, 5, 30] = 0
        assert chunk.read_bytes() == short
