"""The engine's concurrency: the GIL is released during heavy work, chunks are processed on
several cores, the thread pool survives fork, and a killed writer leaves no torn chunk."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import oxzarr
from oxzarr import _core
from oxzarr.codecs import BloscCodec, Crc32cCodec, GzipCodec, ZstdCodec


def big_array(path: Path, compressors: object = ZstdCodec(level=1)) -> oxzarr.Array:
    a = oxzarr.create_array(
        path, shape=(256, 256, 256), dtype="u2", chunks=(32, 32, 32), compressors=compressors
    )
    a[...] = (np.arange(256**3, dtype=np.uint32) % 1013).astype("u2").reshape((256,) * 3)
    return a


def test_the_gil_is_released_during_reads_and_writes(tmp_path: Path) -> None:
    # gzip is slow enough that a read lasts a good while.
    a = big_array(tmp_path / "a.zarr", GzipCodec(level=1))
    progress = [0]
    stop = threading.Event()

    def count() -> None:
        while not stop.is_set():
            progress[0] += 1

    counter = threading.Thread(target=count)
    counter.start()
    try:
        time.sleep(0.05)
        for work in (lambda: a[...], lambda: a.__setitem__(slice(None), 7)):
            before = progress[0]
            work()
            during = progress[0] - before
            # With the GIL held for the whole call, the counter could not move at all.
            assert during > 1000, f"the Python thread ran only {during} steps during the call"
    finally:
        stop.set()
        counter.join()


def test_reads_and_writes_use_several_cores(tmp_path: Path) -> None:
    a = big_array(tmp_path / "a.zarr")
    with oxzarr.config.set({"threads": 2}):
        a[...]
        assert _core.last_operation_workers() == 2
        a[...] = 3
        assert _core.last_operation_workers() == 2
    with oxzarr.config.set({"threads": 1}):
        a[...]
        assert _core.last_operation_workers() == 1


def _read_in_child(path: str) -> tuple[int, int, int]:
    """Reads the array (reopened from its pickle) and reports the sum, how many workers took
    part and the configured thread count."""
    a = oxzarr.open_array(path, mode="r")
    # Work-stealing decides who takes which chunk; retry if one worker did all 512 of them.
    for _ in range(5):
        total = int(a[...].sum(dtype=np.int64))
        if _core.last_operation_workers() >= 2:
            break
    return total, _core.last_operation_workers(), oxzarr.config.get("threads")


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_multiprocessing_start_methods(tmp_path: Path, method: str) -> None:
    path = tmp_path / "a.zarr"
    a = big_array(path)
    expected = int(a[...].sum(dtype=np.int64))  # the parent's pool exists before the fork
    oxzarr.config.set({"threads": 2})
    a[...]
    ctx = multiprocessing.get_context(method)
    with ctx.Pool(2) as pool:
        results = pool.map_async(_read_in_child, [str(path)] * 4).get(timeout=120)
    for total, workers, threads in results:
        assert total == expected
        assert workers == 2, "the child read serially: its thread pool is missing"
        assert threads == (2 if method == "fork" else os.cpu_count())


def _one_chunk_read_is_split(path: str) -> tuple[bool, bool]:
    """Reads the array's single chunk until the team has helped (a sleeping helper may join
    too late for the first reads, and on a busy machine the scheduler may keep it waiting for
    a while); reports whether it did and whether the values are right."""
    a = oxzarr.open_array(path, mode="r")
    expected = (np.arange(a.size, dtype=np.uint32) % 1013).astype("u2").reshape(a.shape)
    helped = False
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        ok = np.array_equal(a[...], expected)
        if not ok:
            return False, False
        if _core.last_operation_workers() == 2:
            helped = True
            break
    return helped, True


@pytest.mark.parametrize("compressors", [None, BloscCodec(cname="lz4", blocksize=1 << 16)])
def test_a_single_chunk_is_read_on_several_threads_also_after_fork(
    tmp_path: Path, compressors: object
) -> None:
    # One 4 MiB chunk: raw, read in 128 KiB pieces; or blosc, 64 blocks.
    path = tmp_path / "a.zarr"
    a = oxzarr.create_array(
        path, shape=(128, 128, 128), dtype="u2", chunks=(128, 128, 128), compressors=compressors
    )
    a[...] = (np.arange(a.size, dtype=np.uint32) % 1013).astype("u2").reshape(a.shape)
    with oxzarr.config.set({"threads": 2}):
        assert _one_chunk_read_is_split(str(path)) == (True, True)
        ctx = multiprocessing.get_context("fork")
        with ctx.Pool(1) as pool:
            # The child has none of the parent's threads: it builds its own team.
            assert pool.apply_async(_one_chunk_read_is_split, (str(path),)).get(60) == (True, True)
    with oxzarr.config.set({"threads": 1}):
        a[...]
        assert _core.last_operation_workers() == 1


def test_a_pickled_array_works_in_a_forked_child(tmp_path: Path) -> None:
    a = big_array(tmp_path / "a.zarr")
    a[...]
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(1) as pool:
        total = pool.apply_async(_sum, (a,)).get(timeout=60)
    assert total == int(a[...].sum(dtype=np.int64))


def _sum(a: oxzarr.Array) -> int:
    return int(a[...].sum(dtype=np.int64))


WRITER = """
import sys, numpy as np, oxzarr
a = oxzarr.open_array(sys.argv[1], mode="r+")
print("ready", flush=True)
generation = 1
while True:
    a[...] = np.full(a.shape, generation % 60000, dtype=a.dtype)
    generation += 1
"""


def test_a_killed_writer_leaves_no_torn_chunk(tmp_path: Path) -> None:
    path = tmp_path / "a.zarr"
    oxzarr.create_array(
        path,
        shape=(64, 1024, 64),
        dtype="u2",
        chunks=(16, 1024, 64),  # 2 MiB chunks: writes take long enough to be interrupted
        compressors=[Crc32cCodec()],
    )
    for attempt in range(4):
        with subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True
        ) as proc:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
            time.sleep(0.3 + 0.17 * attempt)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        # Every stored chunk decodes (its checksum holds) and holds one write's values.
        a = oxzarr.open_array(path, mode="r")
        for i in range(4):
            chunk = a[i * 16 : (i + 1) * 16]
            assert (chunk == chunk.flat[0]).all(), f"chunk {i} mixes two writes"
        leftovers = [p.name for p in path.rglob("*") if p.is_file() and "oxzarr-tmp" in p.name]
        chunks = [p for p in (path / "c").rglob("*") if p.is_file() and p.name.isdigit()]
        assert all(p.stat().st_size == 16 * 1024 * 64 * 2 + 4 for p in chunks)
        # An interrupted write leaves at most its temporary file, never a partial chunk.
        assert all(name.startswith(".") for name in leftovers)


# A writer in another PID namespace (a container sharing the volume) with the same process
# id, whose temporary file for zarr.json is open at the name this process's first writes
# would have used: ".zarr.json.{pid}-{n}.oxzarr-tmp", n counting from 0 in each process.
OTHER_WRITERS_TEMPORARY_FILE = """
import json, os, sys
import oxzarr

path = sys.argv[1]
os.makedirs(path)
names = [os.path.join(path, f".zarr.json.{os.getpid()}-{n}.oxzarr-tmp") for n in range(64)]
theirs = open(names[0], "w+b", buffering=0)
for name in names[1:]:
    os.link(names[0], name)
theirs.write(b'{"written": "by the other writer", ')
oxzarr.create_array(path, shape=(2,), dtype="i4")
theirs.write(b'"and": "finished after"}')
theirs.seek(0)
print(json.dumps(theirs.read().decode()))
with open(os.path.join(path, "zarr.json"), "rb") as f:
    print(json.dumps(f.read().decode()))
"""


def test_a_temporary_file_of_another_writer_is_not_written_into(tmp_path: Path) -> None:
    # Temporary files were named by process id and a per-process count only, and opened
    # truncating whatever was there: two writers with the same process id (each alone in its
    # PID namespace) wrote into one file, the first linked it to zarr.json and the second
    # went on writing into it, leaving zarr.json torn (not JSON) for good.
    done = subprocess.run(
        [sys.executable, "-c", OTHER_WRITERS_TEMPORARY_FILE, str(tmp_path / "a.zarr")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    theirs, metadata = (json.loads(line) for line in done.stdout.splitlines())
    assert theirs == '{"written": "by the other writer", "and": "finished after"}'
    assert json.loads(metadata)["shape"] == [2]
    assert oxzarr.open_array(tmp_path / "a.zarr").shape == (2,)


# Threads of one process writing disjoint parts of the same chunks: each partial write reads,
# overlays and stores its chunk (or shard), so without the engine's write claims most of the
# slices were lost (2,400-3,200 of 5,000 elements in every layout below).
WRITE_LAYOUTS = {
    "v3": {"chunks": (1000,)},
    "v2": {"chunks": (1000,), "zarr_format": 2},
    "sharded": {"chunks": (100,), "shards": (1000,)},
    "two chunks per write": {"chunks": (15,)},
    "two shards per write": {"chunks": (5,), "shards": (15,)},
}


@pytest.mark.parametrize("how", ["slice", "vindex", "mask"])
@pytest.mark.parametrize("layout", list(WRITE_LAYOUTS))
def test_threads_writing_parts_of_one_chunk_lose_nothing(
    tmp_path: Path, layout: str, how: str
) -> None:
    path = tmp_path / "a.zarr"
    a = oxzarr.create_array(path, shape=(1000,), dtype="i4", fill_value=0, **WRITE_LAYOUTS[layout])
    # Half the writes go through other handles on the same directory, one opened by a
    # relative path: they write the same chunks, so they must wait for each other too.
    relative = os.path.relpath(path)

    def write(i: int) -> None:
        b = a if i % 2 == 0 else oxzarr.open_array(relative if i % 4 == 1 else path, mode="r+")
        part = slice(i * 10, (i + 1) * 10)
        if how == "slice":
            b[part] = i + 1
        elif how == "vindex":
            b.vindex[np.arange(part.start, part.stop)] = i + 1
        else:
            mask = np.zeros(1000, dtype=bool)
            mask[part] = True
            b.vindex[mask] = i + 1

    for _ in range(3):
        a[...] = 0
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(write, range(100)))
        np.testing.assert_array_equal(
            oxzarr.open_array(path, mode="r")[...], np.repeat(np.arange(1, 101), 10)
        )


def test_threads_writing_parts_of_one_text_chunk_lose_nothing(tmp_path: Path) -> None:
    a = oxzarr.create_array(tmp_path / "s.zarr", shape=(400,), dtype=str, chunks=(400,))

    def write(i: int) -> None:
        a[i * 4 : (i + 1) * 4] = [f"w{i}"] * 4

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(write, range(100)))
    assert list(a[...]) == [f"w{i}" for i in range(100) for _ in range(4)]


def test_a_whole_chunk_write_and_a_partial_one_do_not_mix(tmp_path: Path) -> None:
    # The whole-chunk writes replace the chunk without reading it; a partial write racing one
    # would store its element over the chunk as it was before, undoing the rest of that write.
    # Each whole write is checked right after it: a partial write may have come since, but
    # one that started after the whole write read its values and kept them.
    a = oxzarr.create_array(tmp_path / "a.zarr", shape=(64, 64), dtype="i4", chunks=(64, 64))
    stop = threading.Event()
    undone: list[int] = []

    def whole() -> None:
        for k in range(1, 1000):
            a[...] = np.full((64, 64), k, dtype="i4")
            if not (a[1:, :] == k).all():
                undone.append(k)
        stop.set()

    def partial() -> None:
        while not stop.is_set():
            a[0, 0] = -1

    threads = [threading.Thread(target=whole)] + [
        threading.Thread(target=partial) for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert undone == [], f"{len(undone)} of 999 whole writes undone by a partial one"


def test_handles_rooted_at_different_levels_wait_for_each_other(tmp_path: Path) -> None:
    # One array reached two ways: at "a" in a store at the group, and at the root of a store
    # at the array's own directory.
    root = tmp_path / "g.zarr"
    group = oxzarr.open_group(root, mode="w")
    group.create_array("a", shape=(400,), dtype="i4", chunks=(400,), fill_value=0)

    def write(i: int) -> None:
        b = group["a"] if i % 2 else oxzarr.open_array(root / "a", mode="r+")
        b[i * 4 : (i + 1) * 4] = i + 1

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(write, range(100)))
    np.testing.assert_array_equal(
        oxzarr.open_array(root / "a", mode="r")[...], np.repeat(np.arange(1, 101), 4)
    )


@pytest.mark.parametrize("compressors", [None, ZstdCodec(level=1)], ids=["raw", "zstd"])
@pytest.mark.parametrize("cache", [0, 1 << 24], ids=["no cache", "chunk cache"])
def test_readers_see_whole_inner_chunks_while_a_writer_replaces_shards(
    tmp_path: Path, compressors: object, cache: int
) -> None:
    # A writer replaces every shard again and again (whole-array writes through another
    # handle) while long-lived handles read regions and points. A read is no snapshot of the
    # array, but each inner chunk it returns must be one generation's, whole: the reader's
    # kept shard indexes go stale under it and must be noticed, never read through.
    path = tmp_path / "a.zarr"
    shape, inner = (64, 64), 8
    oxzarr.create_array(
        path,
        shape=shape,
        dtype="i4",
        fill_value=0,
        chunks=(inner, inner),
        shards=(32, 32),
        compressors=compressors,
    )
    rng = np.random.default_rng(0)
    # Generation g holds g * 1000 plus noise that changes the inner chunks' compressed sizes,
    # so their offsets in the shards move from one generation to the next.
    generations = {
        g: g * 1000 + rng.integers(0, 10 * (g % 3) + 1, shape, dtype="i4") for g in range(1, 41)
    }
    writer = oxzarr.open_array(path, mode="r+")
    writer[...] = generations[1]
    stop = threading.Event()
    problems: list[str] = []

    def check(values: np.ndarray, rows: slice, cols: slice) -> None:
        for i in range(rows.start, rows.stop, inner):
            for j in range(cols.start, cols.stop, inner):
                block = values[i - rows.start : i - rows.start + inner, j - cols.start :][:, :inner]
                g = int(block.flat[0]) // 1000
                if g not in generations or not np.array_equal(
                    block, generations[g][i : i + inner, j : j + inner]
                ):
                    problems.append(f"inner chunk at ({i}, {j}) mixes generations")

    reads = [0, 0, 0]

    def read(seed: int) -> None:
        try:
            read_until_stopped(seed)
        except Exception as e:  # reported by the test, not lost with the thread
            problems.append(repr(e))

    def read_until_stopped(seed: int) -> None:
        r = oxzarr.open_array(path, mode="r")
        pick = np.random.default_rng(seed)
        while not stop.is_set():
            reads[seed] += 1
            a0, a1 = sorted(pick.choice(np.arange(0, 65, inner), 2, replace=False))
            b0, b1 = sorted(pick.choice(np.arange(0, 65, inner), 2, replace=False))
            rows, cols = slice(int(a0), int(a1)), slice(int(b0), int(b1))
            check(r[rows, cols], rows, cols)
            points = pick.integers(0, 64, (2, 50))
            g = r.vindex[points[0], points[1]] // 1000
            if not set(g.tolist()) <= set(generations):
                problems.append(f"points read generations {sorted(set(g.tolist()))}")

    with oxzarr.config.set({"threads": 2, "chunk_cache_bytes": cache}):
        readers = [threading.Thread(target=read, args=(seed,)) for seed in range(3)]
        for t in readers:
            t.start()
        try:
            for g in range(2, 41):
                writer[...] = generations[g]
        finally:
            stop.set()
            for t in readers:
                t.join()
    assert problems == []
    assert min(reads) > 1, reads
    np.testing.assert_array_equal(oxzarr.open_array(path, mode="r")[...], generations[40])


def test_many_thread_settings_do_not_gather_idle_threads(tmp_path: Path) -> None:
    # Each setting has its own pool; pools no operation is in are let go once a few are
    # kept (one was kept for every setting ever used: 1 + 2 + ... + 40 threads here).
    a = oxzarr.create_array(tmp_path / "a", shape=(64,), chunks=(4,), dtype="i4")
    a[...] = 1
    for n in range(1, 41):
        with oxzarr.config.set({"threads": n}):
            assert a[...].sum() == 64
    deadline = time.monotonic() + 10
    while len(os.listdir("/proc/self/task")) > 250 and time.monotonic() < deadline:
        time.sleep(0.05)  # the threads of dropped pools end on their own
    assert len(os.listdir("/proc/self/task")) <= 250


def test_threads_appending_through_one_handle_lose_nothing(tmp_path: Path) -> None:
    a = oxzarr.create_array(tmp_path / "a", shape=(0, 4), dtype="i4", chunks=(4, 4), fill_value=-1)

    def append(value: int) -> None:
        for _ in range(60):
            a.append(np.full((1, 4), value, "i4"))

    with ThreadPoolExecutor(3) as pool:
        list(pool.map(append, (1, 2, 3)))
    rows = oxzarr.open_array(tmp_path / "a", mode="r")[...]
    assert rows.shape == (180, 4)
    assert sorted(np.unique(rows[:, 0], return_counts=True)[1].tolist()) == [60, 60, 60]
    assert (rows == rows[:, :1]).all()  # every row whole


def test_threads_appending_and_changing_attributes_through_one_handle(tmp_path: Path) -> None:
    # Each writes the whole document from the handle's copy: a resize and an attribute write
    # at once each wrote back what the other changed (rows appended were lost, and later
    # appends overwrote them).
    a = oxzarr.create_array(tmp_path / "a", shape=(0,), dtype="i4", chunks=(16,), fill_value=-1)

    def append() -> None:
        for i in range(150):
            a.append(np.array([i], "i4"))

    def tag() -> None:
        for i in range(150):
            a.attrs["n"] = i

    with ThreadPoolExecutor(2) as pool:
        for done in [pool.submit(append), pool.submit(tag)]:
            done.result()
    again = oxzarr.open_array(tmp_path / "a", mode="r")
    assert again[...].tolist() == list(range(150)) and again.attrs["n"] == 149


def test_threads_deleting_members_of_a_consolidated_group(tmp_path: Path) -> None:
    # Each deletion writes the consolidated metadata again: at once, one wrote back members
    # another had deleted, which then read as fill values.
    root = oxzarr.open_group(tmp_path / "g", mode="w")
    for i in range(40):
        root.create_array(f"a{i}", shape=(2,), dtype="i1")[...] = 1
    oxzarr.consolidate_metadata(tmp_path / "g")
    group = oxzarr.open_consolidated(tmp_path / "g", mode="r+")
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(group.__delitem__, [f"a{i}" for i in range(40)]))
    assert list(group) == [] and list(oxzarr.open_consolidated(tmp_path / "g")) == []


def _exit_code_of_child_forked_while_held(lock: Any, child: Callable[[], bool]) -> int:
    """Forks while another thread holds `lock`, runs `child` in the child (its truth is the
    exit code, 0 for true; a hang ends it by SIGALRM) and gives the child's exit code."""
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with lock:
            held.set()
            release.wait()

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait()
    pid = os.fork()
    if pid == 0:  # the child: report by exit code, never return into pytest
        code = 1
        try:
            signal.alarm(20)  # a hang ends the child, failing the test
            code = 0 if child() else 2
        finally:
            os._exit(code)
    release.set()
    holder.join()
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_a_forked_child_changes_metadata_a_parents_thread_was_changing(tmp_path: Path) -> None:
    # A handle's lock held by another thread at the fork is the child's own again (it was
    # held there for good, and the child's first attribute write waited forever).
    a = oxzarr.create_array(tmp_path / "a", shape=(2,), dtype="i1")

    def change() -> bool:
        a.attrs["child"] = True
        a.append(np.array([5], "i1"))
        return True

    assert _exit_code_of_child_forked_while_held(a._metadata_lock, change) == 0
    again = oxzarr.open_array(tmp_path / "a", mode="r")
    assert again.attrs["child"] is True and again.shape == (3,)


def test_children_forked_while_a_thread_writes_a_memory_store_read_it() -> None:
    """A child forked while another thread held a MemoryStore's lock inherited it held, and
    its first read hung for good (a few children in a hundred). A fork now waits until no
    thread holds it: each child reads the array (chunks of one write or another)."""
    from oxzarr.storage import MemoryStore

    a = oxzarr.create_array(MemoryStore(), shape=(4096,), dtype="i4", chunks=(16,))
    a[...] = 1
    stop = threading.Event()

    def write() -> None:
        k = 1
        while not stop.is_set():
            k += 1
            a[...] = k

    writer = threading.Thread(target=write)
    writer.start()
    hung = 0
    try:
        for _ in range(100):
            time.sleep(0.005)
            pid = os.fork()
            if pid == 0:  # the child: report by exit code, never return into pytest
                code = 1
                try:
                    signal.alarm(10)  # a hang ends the child
                    values = a[...]
                    code = 0 if values.min() >= 1 else 2
                finally:
                    os._exit(code)
            _, status = os.waitpid(pid, 0)
            code = os.waitstatus_to_exitcode(status)
            assert code in (0, -signal.SIGALRM), code
            hung += code != 0
    finally:
        stop.set()
        writer.join()
    assert hung == 0


def test_a_forked_child_changes_settings_a_parents_thread_was_changing() -> None:
    # The settings' lock held by another thread at the fork was held in the child for good:
    # its first config.set waited forever.
    def change() -> bool:
        with oxzarr.config.set({"threads": 1}):
            return bool(oxzarr.config.get("threads") == 1)

    assert _exit_code_of_child_forked_while_held(oxzarr.config._lock, change) == 0


def test_threads_changing_attributes_through_one_handle_lose_nothing(tmp_path: Path) -> None:
    group = oxzarr.open_group(tmp_path / "g", mode="w")
    array = group.create_array("a", shape=(2,), dtype="i1")

    def change(i: int) -> None:
        for node in (group, array):
            for j in range(20):
                node.attrs[f"t{i}-{j}"] = j
            node.attrs.update({f"u{i}": i})
            del node.attrs[f"t{i}-0"]

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(change, range(6)))
    expected = {f"t{i}-{j}": j for i in range(6) for j in range(1, 20)}
    expected.update({f"u{i}": i for i in range(6)})
    for node in (
        group,
        array,
        oxzarr.open_group(tmp_path / "g"),
        oxzarr.open_array(tmp_path / "g/a"),
    ):
        assert node.attrs.asdict() == expected


def _at_once(*jobs: Any) -> list[BaseException | None]:
    """Runs `jobs` on threads released together; what each raised (None if nothing)."""
    start = threading.Barrier(len(jobs))
    raised: list[BaseException | None] = [None] * len(jobs)

    def run(i: int) -> None:
        start.wait()
        try:
            jobs[i]()
        except BaseException as e:  # handed back to the test
            raised[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
        assert not t.is_alive(), "a job still runs after a minute"
    return raised


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_a_parent_group_made_for_a_child_never_replaces_a_node_made_meanwhile(
    tmp_path: Path, zarr_format: int
) -> None:
    # Each round races the creation of a node with that of a child, whose missing parent
    # group is made on the way: the parent's metadata was written whether or not the node
    # had appeared since it was looked for, dropping a new group's attributes or turning a
    # new array into a group (in v2, whose arrays and groups keep their documents under
    # other keys, an array and a group stayed at one path).
    for i in range(150):
        root = oxzarr.open_group(tmp_path / f"r{i}.zarr", mode="w", zarr_format=zarr_format)
        raised = _at_once(
            lambda root=root: root.create_group("g", attributes={"units": "m"}),
            lambda root=root: root.create_array("g/a", shape=(2,), dtype="i4"),
            lambda root=root: root.create_array("x", shape=(4,), dtype="i4"),
            lambda root=root: root.create_array("x/y", shape=(2,), dtype="i4"),
        )
        if raised[0] is None:
            assert oxzarr.open_group(root.store, path="g").attrs.asdict() == {"units": "m"}
        else:
            # The child's parent came first: the group is there, without the attributes.
            assert isinstance(raised[0], oxzarr.errors.ContainsGroupError), raised[0]
        assert raised[1] is None, raised[1]
        x = oxzarr.open(root.store, path="x", mode="r")
        documents = {p.name for p in (tmp_path / f"r{i}.zarr" / "x").iterdir()}
        assert len(documents & {"zarr.json", ".zarray", ".zgroup"}) == 1, documents
        if raised[2] is None:
            assert isinstance(x, oxzarr.Array), i
            assert isinstance(raised[3], oxzarr.errors.ContainsArrayError), raised[3]
            assert "is an array" in str(raised[3])
        else:
            assert isinstance(raised[2], oxzarr.errors.ContainsGroupError), raised[2]
            assert isinstance(x, oxzarr.Group) and raised[3] is None, raised[3]


def test_threads_requiring_one_node_all_get_it(tmp_path: Path) -> None:
    # "Open it, or create it if missing" from several threads at once (pool workers each
    # requiring their output group): those that lose the race get the node made by the
    # winner, as zarr-python's do, not ContainsGroupError/ContainsArrayError.
    group = oxzarr.open_group(tmp_path / "g.zarr", mode="w")
    for i in range(15):
        requires = [
            lambda i=i: group.require_group(f"g{i}"),
            lambda i=i: group.require_array(f"a{i}", shape=(4,), dtype="i4"),
            lambda i=i: oxzarr.open_array(
                tmp_path / "g.zarr", path=f"o{i}", mode="a", shape=(4,), dtype="i4"
            ),
        ]
        for require in requires:
            assert _at_once(*[require] * 6) == [None] * 6
    assert sorted(group.group_keys()) == sorted(f"g{i}" for i in range(15))
    # A node an array above blocks stays that error (the node looked for again is not there).
    group.create_array("arr", shape=(1,), dtype="i1")
    for blocked in (
        lambda: group.require_group("arr/sub"),
        lambda: group.require_array("arr/sub", shape=(1,), dtype="i1"),
        lambda: oxzarr.open_array(
            tmp_path / "g.zarr", path="arr/sub", mode="a", shape=(1,), dtype="i1"
        ),
    ):
        with pytest.raises(oxzarr.errors.ContainsArrayError, match='parent "arr" is an array'):
            blocked()


def test_threads_replacing_one_array_all_finish(tmp_path: Path) -> None:
    # Each replaces the array and writes it whole: a directory emptied by one while another
    # wrote into it failed the removal ("Directory not empty") or the write (ENOENT).
    root = oxzarr.open_group(tmp_path / "r.zarr", mode="w")

    def replace(k: int) -> None:
        for _ in range(8):
            root.create_array("x", shape=(8,), chunks=(2,), dtype="i4", overwrite=True)[...] = k

    assert _at_once(*[lambda k=k: replace(k) for k in range(8)]) == [None] * 8
    values = oxzarr.open_array(root.store, path="x", mode="r")[...]
    assert set(values.tolist()) <= set(range(8))


def test_threads_converting_to_one_destination(tmp_path: Path) -> None:
    from oxzarr.convert import convert

    for k in (1, 2, 3):
        source = oxzarr.create_array(
            tmp_path / f"s{k}.zarr", shape=(64, 64, 16), dtype="f4", chunks=(16, 16, 16)
        )
        source[...] = k
    destination = tmp_path / "d.zarr"

    def run(k: int) -> str:
        try:
            convert(
                str(tmp_path / f"s{k}.zarr"), str(destination), chunks=(8, 8, 8), overwrite=True
            )
        except OSError as e:  # another conversion's destination took the place first
            return type(e).__name__
        return "ok"

    for _ in range(3):
        with ThreadPoolExecutor(3) as pool:
            outcomes = list(pool.map(run, (1, 2, 3)))
        assert "ok" in outcomes
        # Whichever finished last, the destination is one source, whole.
        values = np.unique(oxzarr.open_array(destination, mode="r")[...])
        assert len(values) == 1 and values[0] in (1, 2, 3), (outcomes, values)
        assert oxzarr.open_array(destination, mode="r").chunks == (8, 8, 8)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.zarr", "s1.zarr", "s2.zarr", "s3.zarr"]


def test_ctrl_c_stops_a_write_of_many_chunks(tmp_path: Path) -> None:
    """Ctrl-C during a write of many chunks raises KeyboardInterrupt at the next chunk: the
    chunks written before it are whole, the rest unwritten, and no temporary file is left.
    The write used to go on to its last chunk first."""
    import _thread

    path = tmp_path / "a.zarr"
    rows = 1000
    values = np.random.default_rng(7).integers(0, 256, (rows, 1 << 16), dtype=np.uint8)
    a = oxzarr.create_array(
        path, shape=values.shape, dtype="u1", chunks=(1, 1 << 16), compressors=GzipCodec(level=9)
    )
    done = threading.Event()

    def press_after_a_few_chunks() -> None:
        while not done.is_set():
            if (path / "c").is_dir() and len(os.listdir(path / "c")) >= 3:
                _thread.interrupt_main()
                return
            time.sleep(0.001)

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    presser = threading.Thread(target=press_after_a_few_chunks)
    presser.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            a[...] = values
    finally:
        done.set()
        presser.join()
        signal.signal(signal.SIGINT, previous)
    written = sorted(int(name) for name in os.listdir(path / "c"))
    assert 3 <= len(written) < rows // 2, len(written)
    assert sorted(os.listdir(path)) == ["c", "zarr.json"]
    assert all(os.listdir(path / "c" / str(row)) == ["0"] for row in written)
    read = a[...]
    is_written = np.zeros(rows, dtype=bool)
    is_written[written] = True
    assert (read[is_written] == values[is_written]).all()
    assert not read[~is_written].any()


DAEMON_THREADS_AT_EXIT = """
import sys, threading, time
import oxzarr
a = oxzarr.create_array(sys.argv[1], shape=(256, 256), dtype="u2", chunks=(16, 16))
a[...] = 7

def read():
    while True:
        a[...]
        a[0:20, 0:20]

def write():
    while True:
        a[0:100, 0:100] = 3

for work in (read, write, read, read):
    threading.Thread(target=work, daemon=True).start()
time.sleep(0.3)
print("done", flush=True)
"""


def test_daemon_threads_in_the_engine_at_exit(tmp_path: Path) -> None:
    """A program that ends while daemon threads read and write exits normally. A daemon
    thread ending an engine call after the interpreter began to finalize was ended by Python
    in a way that aborted the process ("FATAL: exception not rethrown", exit status 134)."""
    for run in range(5):
        done = subprocess.run(
            [sys.executable, "-c", DAEMON_THREADS_AT_EXIT, str(tmp_path / f"a{run}.zarr")],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert (done.returncode, done.stdout) == (0, "done\n"), done.stderr[-2000:]


HANDLER_WRITING_DURING_A_WRITE = """
import _thread, os, signal, sys, threading, time
import numpy as np
import oxzarr
from oxzarr.codecs import GzipCodec

path, action = sys.argv[1], sys.argv[2]
values = np.random.default_rng(7).integers(0, 256, (400, 1 << 16), dtype=np.uint8)
a = oxzarr.create_array(
    path, shape=values.shape, dtype="u1", chunks=(1, 1 << 16), compressors=GzipCodec(level=9)
)

def checkpoint(*_):
    if action == "write":
        a[0] = 7
    else:
        a.resize((500, 1 << 16))

def press():
    while not (os.path.isdir(path + "/c") and len(os.listdir(path + "/c")) >= 3):
        time.sleep(0.001)
    _thread.interrupt_main(signal.SIGUSR1)

signal.signal(signal.SIGUSR1, checkpoint)
threading.Thread(target=press).start()
try:
    a[...] = values
except ValueError as e:
    print("refused:", e)
"""


@pytest.mark.parametrize("action", ["write", "resize"])
def test_a_signal_handler_writing_during_the_write_it_interrupted(
    tmp_path: Path, action: str
) -> None:
    """Signal handlers run while the engine works; one that writes to (or resizes) the array
    whose write it interrupted gets a ValueError, which stops that write. It hung: its write
    waited for the chunks the interrupted write holds, on the same thread."""
    done = subprocess.run(
        [sys.executable, "-c", HANDLER_WRITING_DURING_A_WRITE, str(tmp_path / "a.zarr"), action],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("refused: ") and "under way on this thread" in done.stdout


def test_writes_of_both_layouts_into_one_fortran_chunk_lose_nothing(tmp_path: Path) -> None:
    # A v2 array of order "F" takes F-order values through a view of it with its dimensions
    # reversed, and C-order values through itself. Both claim the same stored chunks: the
    # view's claims are its grid coordinates turned back. Claimed as the view sees them, the
    # chunk at (0, 1) would be (1, 0), and the two kinds of writes would overwrite each other.
    a = oxzarr.create_array(
        tmp_path / "f.zarr",
        shape=(8, 400),
        chunks=(8, 200),
        dtype="i4",
        fill_value=0,
        zarr_format=2,
        order="F",
    )

    def write(i: int) -> None:
        part = (slice(None), slice(200 + i * 2, 202 + i * 2))
        values = np.full((8, 2), i + 1, dtype="i4")
        a[part] = np.asfortranarray(values) if i % 2 else np.ascontiguousarray(values)

    expected = np.zeros((8, 400), dtype="i4")
    expected[:, 200:] = np.repeat(np.arange(1, 101), 2)
    for _ in range(3):
        a[...] = 0
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(write, range(100)))
        np.testing.assert_array_equal(a[...], expected)
