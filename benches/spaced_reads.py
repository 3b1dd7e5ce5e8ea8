"""Full reads as programs make them: the first read of a fresh process, a read that comes
seconds after the last, and a read straight after another. ../shared/bench/peers.py times
three reads back to back in one long process and takes the median, which hides what the
first one costs.

What the first and the spaced reads pay, beyond decoding, is the new output's memory: in a
virtual machine whose balloon device reports free memory to the host, memory freed more than
about two seconds ago has gone back to the host and faults in from it when touched again,
slowly for the 2 MiB huge pages numpy asks for (see rust/core/src/pages.rs). "oxzarr (huge
pages)" is oxzarr with ``output_huge_pages`` set to True (numpy's choice), "oxzarr (small
pages)" with it set to False; plain "oxzarr" is the default.

Stores: the 256 MiB arrays of peers.py's raw_c64, zstd_c64 and zstd_c32 cases, written by
zarr-python. Each round runs every implementation in a process of its own (the order rotates):
it opens the store, reads it whole (first), sleeps --gap seconds, reads it again (spaced) and
once more at once (back to back). A row is the median over the rounds; every read's output is
checked against the data written.

Usage: python benches/spaced_reads.py [--rounds 3] [--gap 3] [--out F]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared" / "bench"))
import peers  # type: ignore[import-not-found]

CASES = ["raw_c64", "zstd_c64", "zstd_c32"]
IMPLS = ["zarrs", "tensorstore", "zarrista", "oxzarr", "oxzarr-huge", "oxzarr-small"]
NAMES = {"oxzarr-huge": "oxzarr (huge pages)", "oxzarr-small": "oxzarr (small pages)"}
HUGE_PAGES = {"oxzarr-huge": True, "oxzarr-small": False}


def digest(a: Any) -> str:
    return hashlib.blake2b(np.ascontiguousarray(a).data, digest_size=16).hexdigest()


def child(impl: str, path: str, gap: float) -> None:
    """One process's reads; prints their times and the outputs' digests as JSON."""
    im = peers.IMPLS[impl.split("-")[0]]()
    if impl in HUGE_PAGES:
        im.m.config.set({"output_huge_pages": HUGE_PAGES[impl]})
    a = im.open(path)
    times, digests = [], []
    for pause in (0.0, gap, 0.0):
        time.sleep(pause)
        t0 = time.perf_counter()
        out = np.asarray(im.read_full(a))
        times.append(time.perf_counter() - t0)
        digests.append(digest(out))  # untimed
        del out
    print(json.dumps({"times": times, "digests": digests}))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--gap", type=float, default=3.0)
    p.add_argument("--out")
    p.add_argument("--child", nargs=2, metavar=("IMPL", "STORE"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.gap)
        return
    arr = peers.data((512,) * 3)
    want = digest(arr)
    root = tempfile.mkdtemp(prefix="spaced-reads-", dir=os.environ.get("BENCH_DIR"))
    rows: list[dict[str, Any]] = []
    try:
        for case in CASES:
            chunks, shards, codec = peers.CASES[case]
            path = os.path.join(root, f"{case}.zarr")
            peers.write_reference(path, arr, chunks, shards, codec)
            times: dict[str, list[list[float]]] = {k: [] for k in IMPLS}
            for r in range(args.rounds):
                for impl in IMPLS[r % len(IMPLS) :] + IMPLS[: r % len(IMPLS)]:
                    cmd = [sys.executable, __file__, "--gap", str(args.gap), "--child", impl, path]
                    run = subprocess.run(cmd, capture_output=True, text=True, check=True)
                    got = json.loads(run.stdout.strip().splitlines()[-1])
                    if any(d != want for d in got["digests"]):
                        raise SystemExit(f"{impl} read {case} wrong")
                    times[impl].append(got["times"])
            for impl, t in times.items():
                first, spaced, back = (statistics.median(col) for col in zip(*t, strict=True))
                row = {"case": case, "impl": NAMES.get(impl, impl), "first_s": first}
                row.update({"spaced_s": spaced, "back_to_back_s": back})
                rows.append(row)
                print(
                    f"{case:9s} {row['impl']:20s} first {first:.3f} s  spaced {spaced:.3f} s  "
                    f"back to back {back:.3f} s",
                    flush=True,
                )
            shutil.rmtree(path)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
