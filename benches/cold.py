"""Full reads from a cold page cache: the cases of ../shared/bench/peers.py, every peer, with the
operating system's caches dropped before each read, so the chunks come from the device. The
first read of a dataset looks like this; the gate's figures (read straight after the store was
written) do not. Needs root: caches are dropped through /proc/sys/vm/drop_caches.

Each round reads once with every implementation in turn (the order rotates), and a row
reports the median over the rounds. The "files only" row reads every stored file of the case
into one reused buffer, one file at a time on one thread, cold, with no decoding: a reference
for the device, not its limit (the libraries keep several reads in flight).

With --device, no library reads: the rows are the case's stored files read whole, cold, on 1 to
32 threads at once, through the page cache and with O_DIRECT (past it). They say how much more
the device gives with more reads in flight, and whether reading past the page cache would pay.

Usage: python benches/cold.py [--size 512] [--cases raw_c64,...] [--rounds 5] [--device] [--out F]
"""

from __future__ import annotations

import argparse
import json
import mmap
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared" / "bench"))
import peers  # type: ignore[import-not-found]

DROP = "/proc/sys/vm/drop_caches"
# Filesystems whose files live in memory: dropping caches leaves them there.
IN_MEMORY = {"tmpfs", "ramfs"}


def drop_caches() -> None:
    # Readahead that a library asked for and the kernel has not started yet (oxzarr's hints
    # are queued for a background thread) would land after the drop and warm the next read.
    time.sleep(0.2)
    os.sync()
    with open(DROP, "w") as f:
        f.write("3\n")


def filesystem_type(path: str) -> str:
    """The type of the filesystem holding `path`, from /proc/self/mountinfo."""
    path = os.path.realpath(path)
    best, kind = "", ""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            mount = fields[4]
            fs = fields[fields.index("-") + 1]
            inside = path == mount or path.startswith(mount.rstrip("/") + "/")
            if inside and len(mount) >= len(best):
                best, kind = mount, fs
    return kind


def files_only(store: str) -> float:
    files = stored_files(store)
    buf = bytearray(max(os.path.getsize(f) for f in files))
    view = memoryview(buf)
    drop_caches()
    t0 = time.perf_counter()
    for f in files:
        with open(f, "rb", buffering=0) as fh:
            fh.readinto(view)
    return time.perf_counter() - t0


def stored_files(store: str) -> list[str]:
    return sorted(str(p) for p in Path(store).rglob("*") if p.is_file() and "zarr" not in p.name)


def read_files(files: list[str], threads: int, direct: bool) -> float:
    """Reads every file whole from a cold page cache, `threads` at a time, each thread into a
    buffer of its own; `direct` opens them with O_DIRECT, which wants page-aligned buffers
    (anonymous maps are) whose length is a multiple of the device's block."""
    size = -(-max(os.path.getsize(f) for f in files) // mmap.PAGESIZE) * mmap.PAGESIZE
    local = threading.local()
    flags = os.O_RDONLY | (os.O_DIRECT if direct else 0)

    def read(path: str) -> None:
        if not hasattr(local, "buf"):
            local.buf = mmap.mmap(-1, size)
        fd = os.open(path, flags)
        try:
            os.preadv(fd, [local.buf], 0)
        finally:
            os.close(fd)

    drop_caches()
    t0 = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(read, files))
    return time.perf_counter() - t0


def device_rows(case: str, store: str, rounds: int) -> list[dict[str, Any]]:
    files = stored_files(store)
    rows = []
    for direct in (False, True):
        for threads in (1, 2, 4, 8, 16, 32):
            ts = [read_files(files, threads, direct) for _ in range(rounds)]
            how = "O_DIRECT" if direct else "buffered"
            rows.append(
                {
                    "case": case,
                    "impl": f"files, {threads} threads, {how}",
                    "read_full_cold_s": statistics.median(ts),
                    "runs": [round(t, 4) for t in ts],
                }
            )
    return rows


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--cases", default=",".join(peers.CASES))
    p.add_argument("--impl", default="zarrs,tensorstore,zarrista,oxzarr")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--device", action="store_true", help="only the stored files, no library")
    p.add_argument("--out")
    args = p.parse_args()
    if not os.access(DROP, os.W_OK):
        sys.exit(f"cold.py drops the page cache through {DROP}, which needs root")
    arr = peers.data((args.size,) * 3)
    impls = [] if args.device else [peers.IMPLS[k]() for k in args.impl.split(",")]
    root = tempfile.mkdtemp(prefix="zbench-cold-", dir=os.environ.get("BENCH_DIR"))
    kind = filesystem_type(root)
    if kind in IN_MEMORY:
        os.rmdir(root)
        sys.exit(f"{root} is on {kind}: nothing there is ever cold (set BENCH_DIR)")
    rows: list[dict[str, Any]] = []
    try:
        for case in args.cases.split(","):
            chunks, shards, codec = peers.CASES[case]
            ref = os.path.join(root, case + ".zarr")
            # Sets zarr-python's own codec pipeline, so that zarr-python (not the zarrs
            # pipeline a previous case's peer switched to) writes the reference store.
            peers.ZarrPy()
            peers.write_reference(ref, arr, chunks, shards, codec)
            if args.device:
                for row in device_rows(case, ref, args.rounds):
                    rows.append(row)
                    print(json.dumps(row), flush=True)
                shutil.rmtree(ref, ignore_errors=True)
                continue
            times: dict[str, list[float]] = {im.name: [] for im in impls}
            alone = []
            for r in range(args.rounds):
                alone.append(files_only(ref))
                for im in impls[r % len(impls) :] + impls[: r % len(impls)]:
                    im.__init__()
                    drop_caches()
                    a = im.open(ref)
                    t0 = time.perf_counter()
                    out = im.read_full(a)
                    times[im.name].append(time.perf_counter() - t0)
                    if r == 0 and not np.array_equal(np.asarray(out), arr):
                        raise SystemExit(f"{im.name} read {case} wrong")
                    del out, a
            for name, ts in [("files only", alone), *times.items()]:
                row = {
                    "case": case,
                    "impl": name,
                    "read_full_cold_s": statistics.median(ts),
                    "runs": [round(t, 4) for t in ts],
                }
                rows.append(row)
                print(json.dumps(row), flush=True)
            shutil.rmtree(ref, ignore_errors=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
