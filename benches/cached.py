"""oxzarr's decoded-chunk cache on the cases of ../shared/bench/peers.py: repeated reads of the
same chunks, with the cache on (a full read, each chunk, each point, and all the points as one
coordinate selection). These are the rows RESULTS.md reports apart from the gate's,
which are taken with oxzarr's defaults (cache off).

Usage: python benches/cached.py [--size 512] [--cases raw_c64,zstd_c64,...]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import oxzarr

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared" / "bench"))
import peers  # type: ignore[import-not-found]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--cases", default=",".join(peers.CASES))
    p.add_argument("--points", type=int, default=2000)
    args = p.parse_args()
    shape = (args.size,) * 3
    arr = peers.data(shape)
    root = tempfile.mkdtemp(prefix="zbench-cached-", dir=os.environ.get("BENCH_DIR"))
    rng = np.random.default_rng(1)
    pts = [tuple(int(v) for v in rng.integers(0, args.size, 3)) for _ in range(args.points)]
    try:
        for case in args.cases.split(","):
            chunks, shards, codec = peers.CASES[case]
            ref = os.path.join(root, case + ".zarr")
            peers.ZarrPy()
            peers.write_reference(ref, arr, chunks, shards, codec)
            boxes = [
                tuple(slice(i * c, i * c + c) for i, c in zip(ix, chunks, strict=True))
                for ix in np.ndindex(*[s // c for s, c in zip(shape, chunks, strict=True)])
            ]
            with oxzarr.config.set({"chunk_cache_bytes": 2 * arr.nbytes}):
                a = oxzarr.open_array(ref, mode="r")
                a[...]  # fills the cache
                row = {"case": case, "impl": "oxzarr (chunk cache on, warm)"}
                times = []
                for _ in range(3):
                    t0 = time.perf_counter()
                    out = a[...]
                    times.append(time.perf_counter() - t0)
                row["read_full_s"] = statistics.median(times)
                assert np.array_equal(out, arr)
                t0 = time.perf_counter()
                for sl in boxes:
                    a[sl]
                row["read_each_chunk_s"] = time.perf_counter() - t0
                t0 = time.perf_counter()
                for pt in pts:
                    a[pt]
                row["point_read_us"] = (time.perf_counter() - t0) / len(pts) * 1e6
                assert all(a[pt] == arr[pt] for pt in pts[:50])
                # The same points as one coordinate selection (vindex).
                coords = tuple(np.array(c) for c in zip(*pts, strict=True))
                times = []
                for _ in range(3):
                    t0 = time.perf_counter()
                    values = a.vindex[coords]
                    times.append(time.perf_counter() - t0)
                row["vindex_ms"] = statistics.median(times) * 1e3
                assert np.array_equal(values, arr[coords])
            print(
                json.dumps({k: round(v, 6) if isinstance(v, float) else v for k, v in row.items()})
            )
            shutil.rmtree(ref, ignore_errors=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
