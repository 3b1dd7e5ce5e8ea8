"""Reading into numpy allocates the output and at most about one chunk per thread."""

from __future__ import annotations

import contextvars
import ctypes
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import oxzarr
from oxzarr.codecs import ZstdCodec

# The peak resident set (VmHWM) of a fresh process: getrusage's ru_maxrss would carry the
# peak of the parent (pytest) across fork and exec.
MEASURE = """
import json, sys
import numpy as np, oxzarr

def peak():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024

a = oxzarr.open_array(sys.argv[1], mode="r")
oxzarr.config.set({"threads": 2})
a[:1]  # warm up: the thread pool and its scratch buffers exist before the baseline
before = peak()
out = a[...]
after = peak()
print(json.dumps({
    "grown": after - before, "output": out.nbytes, "fortran": out.flags.f_contiguous
}))
"""


def _measure_full_read(path: Path) -> dict[str, Any]:
    """How much a fresh process grows reading the array at `path` whole."""
    run = subprocess.run(
        [sys.executable, "-c", MEASURE, str(path)], capture_output=True, text=True, check=True
    )
    result: dict[str, Any] = json.loads(run.stdout)
    # The measurement sees the output itself, or it measures nothing.
    assert result["grown"] >= 0.9 * result["output"], result
    return result


@pytest.mark.parametrize("shards", [None, (128, 256, 256)])
def test_peak_memory_of_a_full_read(tmp_path: Path, shards: tuple[int, ...] | None) -> None:
    p = tmp_path / "a.zarr"
    chunks = (32, 256, 256)  # 4 MiB chunks, so per-thread buffers would show
    a = oxzarr.create_array(
        p,
        shape=(256, 256, 256),
        dtype="u8",
        chunks=chunks,
        shards=shards,
        compressors=ZstdCodec(level=1),
    )
    a[...] = np.arange(256**3, dtype="u8").reshape((256,) * 3) % 1000
    result = _measure_full_read(p)
    chunk_bytes = 32 * 256 * 256 * 8
    extra = result["grown"] - result["output"]
    # The output (128 MiB), plus a decoded and a stored chunk per thread (2 threads), plus
    # a little slack for the allocator.
    assert extra <= 2 * 2 * chunk_bytes + (16 << 20), (
        f"reading {result['output'] >> 20} MiB grew the process by {result['grown'] >> 20} MiB"
    )


def test_peak_memory_of_a_full_read_of_a_fortran_ordered_array(tmp_path: Path) -> None:
    # A v2 array of order "F" reads into an F-order output, as zarr-python's does. The engine
    # filled a C-order one (transposing every chunk), which was then copied into F order:
    # twice the output's memory at the peak.
    p = tmp_path / "f.zarr"
    a = oxzarr.create_array(
        p,
        shape=(256, 256, 256),
        dtype="u8",
        chunks=(256, 256, 32),  # 16 MiB chunks, contiguous in F order as stored
        zarr_format=2,
        order="F",
        compressors={"id": "zstd", "level": 1},
    )
    a[...] = np.arange(256**3, dtype="u8").reshape((256,) * 3) % 1000
    result = _measure_full_read(p)
    assert result["fortran"], result
    chunk_bytes = 256 * 256 * 32 * 8
    extra = result["grown"] - result["output"]
    assert extra <= 2 * 2 * chunk_bytes + (16 << 20), (
        f"reading {result['output'] >> 20} MiB grew the process by {result['grown'] >> 20} MiB"
    )


def _vm_flags(address: int) -> set[str]:
    """The kernel's flags of the memory mapping holding `address` (`VmFlags` in smaps)."""
    inside = False
    with open("/proc/self/smaps") as smaps:
        for line in smaps:
            first = line.split(maxsplit=1)[0]
            if not first.endswith(":"):  # a mapping's header: "start-end perms ..."
                lo, hi = (int(x, 16) for x in first.split("-"))
                inside = lo <= address < hi
            elif inside and first == "VmFlags:":
                return set(line.split()[1:])
    raise AssertionError(f"no mapping holds {address:#x}")


@pytest.mark.skipif(sys.platform != "linux", reason="memory advice is Linux's (/proc/self/smaps)")
@pytest.mark.parametrize("allowed", [None, True, False])
def test_outputs_huge_pages(tmp_path: Path, allowed: bool | None) -> None:
    """The new outputs of reads (of 4 MiB or more) avoid huge pages (VmFlags "nh") as
    ``output_huge_pages`` says: ``None`` where the host takes free memory back."""
    data = np.arange(4 << 20, dtype="u2").reshape(64, 256, 256)  # 8 MiB
    a = oxzarr.create_array(
        tmp_path / "a.zarr", shape=data.shape, dtype="u2", chunks=(16, 256, 256)
    )
    a[...] = data
    avoided = oxzarr._core.host_reclaims_free_memory() if allowed is None else not allowed
    numpy_asks = np._core.multiarray._get_madvise_hugepage()
    points = (np.arange(4 << 20) % 64, np.arange(4 << 20) % 256, 7)
    reads = {
        "ints and slices": lambda: a[...],
        "indexer": lambda: a.get_orthogonal_selection((np.arange(64), slice(None), slice(None))),
        "points": lambda: a.vindex[points],
    }
    expected = {"ints and slices": data, "indexer": data, "points": data[points]}
    with oxzarr.config.set({"output_huge_pages": allowed}):
        for name, read in reads.items():
            out = read()
            np.testing.assert_array_equal(out, expected[name])
            flags = _vm_flags(out.ctypes.data + out.nbytes // 2)
            assert ("nh" in flags) == avoided, (name, flags)
            if not avoided and numpy_asks:
                assert "hg" in flags, (name, flags)
            del out
    assert oxzarr.config.get("output_huge_pages") is None


def test_output_huge_pages_setting() -> None:
    with pytest.raises(ValueError, match="output_huge_pages"):
        oxzarr.config.set({"output_huge_pages": 1})
    assert oxzarr.config.get("output_huge_pages") is None


def test_large_outputs_start_on_a_page_and_own_their_data(tmp_path: Path) -> None:
    """Outputs of 256 KiB and more start on a page boundary (numpy's malloc puts large blocks
    16 bytes past one), allocated through numpy's handler hook for the one call: the array
    that owns them is freed and grown through that handler, and numpy's own handler is back
    after the read."""
    from numpy._core.multiarray import get_handler_name

    data = np.arange(64**3, dtype="u2").reshape(64, 64, 64)  # 512 KiB
    a = oxzarr.create_array(tmp_path / "a.zarr", shape=data.shape, dtype="u2", chunks=(16,) * 3)
    a[...] = data
    default = get_handler_name()
    points = (np.arange(64**3) % 64, np.arange(64**3) // 64 % 64, 3)
    reads = {
        "ints and slices": (lambda: a[...], data),
        "indexer": (lambda: a.get_orthogonal_selection((np.arange(64), slice(None))), data),
        "points": (lambda: a.vindex[points], data[points]),
    }
    for name, (read, expected) in reads.items():
        out = read()
        np.testing.assert_array_equal(out, expected)
        assert out.ctypes.data % 4096 == 0, name
        assert out.flags.owndata, name  # as zarr-python's outputs: no view of another array
        assert get_handler_name(out) == "oxzarr_page_aligned", name
        assert get_handler_name() == default, name
    out = a[...]
    out.resize(2 * 64**3, refcheck=False)  # through the handler that made it
    np.testing.assert_array_equal(out[: 64**3], data.ravel())
    assert not out[64**3 :].any()
    # Small outputs come from numpy's allocator as before.
    assert get_handler_name(a[0, 0]) == default
    assert get_handler_name(a[0:2]) == default


# A numpy allocator of the caller's own (NEP 49), made with ctypes: plain malloc and friends,
# named "test_allocator". Module-level, so that arrays it allocated can be freed at any time.
_MALLOC = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t)
_CALLOC = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t)
_REALLOC = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t)
_FREE = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t)


class _Allocator(ctypes.Structure):
    _fields_ = [
        ("ctx", ctypes.c_void_p),
        ("malloc", _MALLOC),
        ("calloc", _CALLOC),
        ("realloc", _REALLOC),
        ("free", _FREE),
    ]


class _Handler(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char * 127),
        ("version", ctypes.c_uint8),
        ("allocator", _Allocator),
    ]


_libc = ctypes.CDLL(None)
_libc.malloc.restype = ctypes.c_void_p
_libc.malloc.argtypes = [ctypes.c_size_t]
_libc.calloc.restype = ctypes.c_void_p
_libc.calloc.argtypes = [ctypes.c_size_t, ctypes.c_size_t]
_libc.realloc.restype = ctypes.c_void_p
_libc.realloc.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_libc.free.argtypes = [ctypes.c_void_p]
_TEST_HANDLER = _Handler(
    b"test_allocator",
    1,
    _Allocator(
        None,
        _MALLOC(lambda _ctx, size: _libc.malloc(size)),
        _CALLOC(lambda _ctx, n, size: _libc.calloc(n, size)),
        _REALLOC(lambda _ctx, ptr, size: _libc.realloc(ptr, size)),
        _FREE(lambda _ctx, ptr, _size: _libc.free(ptr)),
    ),
)


def _set_numpy_handler(handler: _Handler | object) -> None:
    """numpy's PyDataMem_SetHandler (slot 304 of its C API) for the current context, given a
    handler or the "mem_handler" capsule of one."""
    if isinstance(handler, _Handler):
        new_capsule = ctypes.pythonapi.PyCapsule_New
        new_capsule.restype = ctypes.py_object
        new_capsule.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]
        capsule = new_capsule(ctypes.addressof(handler), b"mem_handler", None)
    else:
        capsule = handler
    get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
    get_pointer.restype = ctypes.c_void_p
    get_pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
    table = ctypes.cast(
        get_pointer(np._core._multiarray_umath._ARRAY_API, None),
        ctypes.POINTER(ctypes.c_void_p),
    )
    set_handler = ctypes.PYFUNCTYPE(ctypes.py_object, ctypes.py_object)(table[304])
    set_handler(capsule)


def test_a_numpy_allocator_set_by_the_caller_is_kept(tmp_path: Path) -> None:
    from numpy._core.multiarray import get_handler_name

    data = np.arange(64**3, dtype="u2").reshape(64, 64, 64)  # 512 KiB
    a = oxzarr.create_array(tmp_path / "a.zarr", shape=data.shape, dtype="u2", chunks=(16,) * 3)
    a[...] = data

    def read_with_own_allocator() -> np.ndarray:
        _set_numpy_handler(_TEST_HANDLER)
        assert get_handler_name() == "test_allocator"
        out = a[0:64]
        assert get_handler_name() == "test_allocator"
        return out

    out = contextvars.copy_context().run(read_with_own_allocator)
    assert get_handler_name(out) == "test_allocator"
    np.testing.assert_array_equal(out, data)
    del out
    # Outside that context, numpy's default is in force again, and oxzarr's outputs are its own.
    assert get_handler_name(a[0:64]) == "oxzarr_page_aligned"


def test_the_output_allocator_through_numpy() -> None:
    """The allocator of large outputs, in force for numpy's every allocation in one context:
    each block starts on a page, zeroed blocks are zero, a block grown or shrunk keeps what
    it held, and freeing gives back what it made (blocks of many sizes, made and freed out of
    order, would corrupt the heap otherwise)."""
    from numpy._core.multiarray import get_handler_name

    from oxzarr import _core

    rng = np.random.default_rng(7)
    sizes = [1, 15, 16, 17, 4095, 4096, 4097, 300_000, 5 << 20, 33 << 20]
    sizes += [int(n) for n in rng.integers(1, 1 << 21, 40)]

    def exercise() -> None:
        _set_numpy_handler(_core.output_allocator())
        live = []
        for i, n in enumerate(sizes):
            zeroed = i % 2 == 1
            block = np.zeros(n, np.uint8) if zeroed else np.empty(n, np.uint8)
            assert get_handler_name(block) == "oxzarr_page_aligned"
            assert block.ctypes.data % 4096 == 0, n
            if zeroed:
                assert not block.any(), n
            block[:] = np.arange(n, dtype=np.uint64) % 251
            live.append(block)
            if i % 3 == 2:  # free one made earlier, not the last
                live.pop(len(live) // 2)
        for block in live:
            n = len(block)
            expected = np.arange(n, dtype=np.uint64) % 251
            np.testing.assert_array_equal(block, expected)
            for m in (2 * n + 4096, n // 2 + 1):  # grown, then shrunk
                block.resize(m, refcheck=False)
                assert block.ctypes.data % 4096 == 0, (n, m)
                kept = min(n, m)
                np.testing.assert_array_equal(block[:kept], expected[:kept])
                n, expected = m, np.concatenate([expected[:kept], np.zeros(max(0, m - kept))])

    contextvars.copy_context().run(exercise)


REUSE = """
import json, sys
import numpy as np, oxzarr

def in_heap(address):
    for line in open("/proc/self/maps"):
        if line.rstrip().endswith("[heap]"):
            start, end = (int(x, 16) for x in line.split()[0].split("-"))
            if start <= address < end:
                return True
    return False

a = oxzarr.open_array(sys.argv[1], mode="r")
found = []
for _ in range(3):
    out = a[...]
    found.append([out.ctypes.data % 4096 == 0, in_heap(out.ctypes.data)])
    del out
print(json.dumps(found))
"""


@pytest.mark.parametrize("shape", [(64, 64, 64), (256, 256, 128)])
def test_large_outputs_of_a_steady_size_come_back_from_the_heap(
    tmp_path: Path, shape: tuple[int, ...]
) -> None:
    """Reads of 512 KiB and 16 MiB in a fresh process: once the first output is freed, the
    next ones of the same size come from the heap, as numpy's own arrays do, instead of each
    being mapped, faulted in and unmapped again (which glibc did for page-aligned requests of
    such sizes). The first output is usually a fresh mapping (glibc's for large blocks), but
    not always: when Python's start-up leaves a large enough block free in the heap, glibc
    takes it from there, so the test does not assert where the first one lies."""
    data = np.ones(shape, dtype="u2")
    a = oxzarr.create_array(tmp_path / "a.zarr", shape=shape, dtype="u2", chunks=(64, 64, 64))
    a[...] = data
    # glibc's own tuning: setting any of its thresholds turns off the one that rises (dask's
    # nanny sets MALLOC_TRIM_THRESHOLD_ in the environment of the process that starts it).
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "GLIBC_"))}
    run = subprocess.run(
        [sys.executable, "-c", REUSE, str(tmp_path / "a.zarr")],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    found = json.loads(run.stdout)
    assert all(aligned for aligned, _ in found), found
    assert found[1][1] and found[2][1], found


CACHE_OF_SMALL_CHUNKS = """
import ctypes, gc, json, sys
import oxzarr

def rss():
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024

a = oxzarr.open_array(sys.argv[1], mode="r")
a[...]
before = rss()
oxzarr.config.set({"chunk_cache_bytes": 16 << 20})
for _ in range(3):
    for rows in range(0, 1000, 250):
        a[rows : rows + 250]
print(json.dumps({"grown": rss() - before, "budget": 16 << 20}))
"""


def test_the_chunk_cache_keeps_to_its_budget_with_small_chunks(tmp_path: Path) -> None:
    """62,500 chunks of 16 bytes under a 16 MiB budget took 36-62 MiB: an entry's costs
    besides its bytes were counted low, and every use kept a copy of its key."""
    path = tmp_path / "a.zarr"
    a = oxzarr.create_array(path, shape=(1000, 1000), chunks=(4, 4), dtype="u1")
    a[...] = np.random.default_rng(0).integers(0, 255, (1000, 1000), dtype="u1")
    # Freed memory goes back at once: mimalloc otherwise keeps the pool threads' freed
    # pages a while, and the resident set says more of the allocator than of the cache.
    run = subprocess.run(
        [sys.executable, "-c", CACHE_OF_SMALL_CHUNKS, str(path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
        env={**os.environ, "MIMALLOC_PURGE_DELAY": "0"},
    )
    measured = json.loads(run.stdout)
    assert measured["grown"] < 1.6 * measured["budget"], measured


NESTED_OPEN = """
import json, sys
import oxzarr

def peak():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024

before = peak()
a = oxzarr.open_array(sys.argv[1], mode="r")
values = a[...].tolist()
print(json.dumps({"grown": peak() - before, "values": values}))
"""


def test_opening_deeply_nested_sharding_costs_about_its_document(tmp_path: Path) -> None:
    # Each level of a nested sharding codec copied the metadata of all the levels below it,
    # so a 650 kB zarr.json of 300 levels took over 2 GB to open (and aborted the process
    # where memory was capped); zarr-python opens it in under 100 MB.
    p = tmp_path / "a.zarr"
    oxzarr.create_array(p, shape=(4,), dtype="i4", chunks=(4,), compressors=None, fill_value=3)
    document = json.loads((p / "zarr.json").read_text())
    codecs: list[Any] = [{"name": "bytes", "configuration": {"endian": "little"}}]
    index_codecs = [{"name": "bytes", "configuration": {"endian": "little"}}]
    index_codecs += [{"name": "crc32c"}] * 100
    for _ in range(300):
        configuration = {"chunk_shape": [4], "codecs": codecs, "index_codecs": index_codecs}
        codecs = [{"name": "sharding_indexed", "configuration": configuration}]
    document["codecs"] = codecs
    (p / "zarr.json").write_text(json.dumps(document))
    run = subprocess.run(
        [sys.executable, "-c", NESTED_OPEN, str(p)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    result = json.loads(run.stdout)
    assert result["values"] == [3, 3, 3, 3]
    assert result["grown"] < 400 << 20, f"opening grew the process by {result['grown'] >> 20} MiB"


SCALAR_WRITE = """
import json, sys
import oxzarr

def peak():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024

a = oxzarr.create_array(sys.argv[1], shape=(8000, 8000), chunks=(1000, 1000), dtype="i4")
oxzarr.config.set({"threads": 2})
a[:1000, :1000] = 1  # warm up: the thread pool and its scratch buffers
before = peak()
a[...] = 3
a[:, 2000:] = 0  # the fill value: those chunks are deleted
grown = peak() - before
total = int(a[::7, ::9].sum())
print(json.dumps({"grown": grown, "initialized": a.nchunks_initialized, "sum": total}))
"""


def test_writing_one_value_over_an_array_takes_no_buffer_of_its_size(tmp_path: Path) -> None:
    # A scalar was broadcast by numpy into a buffer the size of the selection: 256 MB to
    # write one value over this array (a MemoryError where the array is larger than memory,
    # which zarr-python writes chunk by chunk).
    run = subprocess.run(
        [sys.executable, "-c", SCALAR_WRITE, str(tmp_path / "a.zarr")],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    result = json.loads(run.stdout)
    assert result["initialized"] == 16
    assert result["sum"] == 3 * 1143 * 223  # the 1143 x 223 sampled elements left of column 2000
    # Chunks of 4 MB, decoded and encoded on 2 threads, and the allocator's slack.
    assert result["grown"] < 64 << 20, f"the writes grew the process by {result['grown'] >> 20} MiB"


STRINGS = """
import gc, json, sys
import numpy as np, oxzarr

def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024

def measured(action):
    # The resident set `action` added at its peak, and what it left.
    gc.collect()
    before = status("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # the peak (VmHWM) counts from here
    result = action()
    return status("VmHWM") - before, status("VmRSS") - before, result

path, n, kind = sys.argv[1], int(sys.argv[2]), sys.argv[3]
oxzarr.config.set({"threads": 2})
texts = ["x" * 40 + str(i) for i in range(n)]
size = sum(map(len, texts))
values = np.array(texts, dtype=np.dtypes.StringDType() if kind == "str" else object)
del texts
a = oxzarr.create_array(path, shape=(n,), chunks=(10_000,), dtype=str)
a[:10_000] = values[:10_000]  # warm up: the thread pool and its scratch buffers
write_peak, _, _ = measured(lambda: a.__setitem__(slice(None), values))
del values
read_peak, output, read = measured(lambda: a[...])
assert read[-1] == "x" * 40 + str(n - 1)
print(json.dumps({"text": size, "write": write_peak, "read": read_peak, "output": output}))
"""


@pytest.mark.parametrize("kind", ["str", "object"])
def test_string_writes_and_reads_hold_a_slab_of_python_strings(tmp_path: Path, kind: str) -> None:
    # Every string of a selection was made a Python str and copied into the engine at once:
    # writing 1M strings of 46 characters (46 MB of text) grew the process by some 280 MB,
    # six times the text, and a read held the output and all its strings again (zarr-python
    # writes chunk by chunk).
    run = subprocess.run(
        [sys.executable, "-c", STRINGS, str(tmp_path / "a.zarr"), str(1_000_000), kind],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
        # Freed memory goes back at once: mimalloc otherwise keeps the pool threads' freed
        # pages a while, and the peak says more of the allocator than of the write.
        env={**os.environ, "MIMALLOC_PURGE_DELAY": "0"},
    )
    result = json.loads(run.stdout)
    text = result["text"]
    assert result["write"] < 2 * text, f"writing {text >> 20} MiB of text: {result}"
    # The output, and a slab's strings besides.
    assert result["output"] >= text, result  # the measurement sees the output
    assert result["read"] < result["output"] + text, f"reading {text >> 20} MiB: {result}"


WRITE_ONE_STRING = """
import json, sys
import oxzarr

def peak():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024

a = oxzarr.open_array(sys.argv[1], mode="r+")
value = "hello world" if a.dtype.kind == "T" else b"hello world"
a[:1] = value  # warm up: the thread pool and its scratch buffers exist before the baseline
before = peak()
a[...] = value
grown = peak() - before
print(json.dumps({"grown": grown, "last": str(a[-1, -1]), "stored": a.nchunks_initialized}))
"""


@pytest.mark.parametrize("shards", [None, (1000, 1000)])
@pytest.mark.parametrize("dtype", [str, bytes])
def test_one_string_written_over_a_text_array_takes_no_list_of_it(
    tmp_path: Path, dtype: type, shards: tuple[int, ...] | None
) -> None:
    # One value written over 16M elements of a text or bytes array was broadcast into a list
    # of 16M Python objects for the engine (a slab at a time). The engine
    # now repeats the one value chunk by chunk, as it does for numbers.
    p = tmp_path / "t.zarr"
    oxzarr.create_array(p, shape=(4000, 4000), chunks=(250, 250), shards=shards, dtype=dtype)
    run = subprocess.run(
        [sys.executable, "-c", WRITE_ONE_STRING, str(p)], capture_output=True, text=True, check=True
    )
    result = json.loads(run.stdout)
    assert result["last"] in ("hello world", "b'hello world'") and result["stored"] == 256
    # Measured before: 221 MiB (text) and 105 MiB (bytes), and 809 and 285 MiB sharded. Now
    # about 40 MiB, and 100-130 MiB sharded (two threads' shards of a million elements).
    limit = (80 if shards is None else 200) << 20
    assert result["grown"] < limit, f"the write grew the process by {result['grown'] >> 20} MiB"
