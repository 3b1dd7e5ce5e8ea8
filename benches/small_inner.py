"""Sharded arrays of small inner chunks: what sharding is for (many small chunks in few stored
objects), and where a read pays per inner chunk more than for its bytes. Every peer of
../shared/bench/peers.py reads the same stores, written by zarr-python (which lays out a
shard's inner chunks in Morton order): a 256³ uint16 array in 128³ shards, with inner chunks of
8³ or 16³ elements, uncompressed or zstd.

Figures: a full read, 20 boxes of 64³ at random places (the mean time per box), and a
coordinate selection (`vindex`) of 20000 random points (zarrista has none: not measured). Each round
reads with every implementation in turn (the order rotates); a row is the median over the
rounds. Every read's values are checked against the data written.

Usage: python benches/small_inner.py [--rounds 5] [--out F]
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
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared" / "bench"))
import peers  # type: ignore[import-not-found]

SHAPE = (256, 256, 256)
SHARDS = (128, 128, 128)
ZSTD = {"name": "zstd", "configuration": {"level": 0, "checksum": False}}
CASES = {
    "inner8_raw": ((8, 8, 8), None),
    "inner16_raw": ((16, 16, 16), None),
    "inner8_zstd": ((8, 8, 8), ZSTD),
    "inner16_zstd": ((16, 16, 16), ZSTD),
}
IMPLS = ["zarrs", "tensorstore", "zarrista", "oxzarr"]
BOX = 64
POINTS = 20000


def read_points(im: Any, a: Any, idx: tuple[np.ndarray, ...]) -> np.ndarray | None:
    """A coordinate selection with the implementation's own call (None: it has none)."""
    if im.name == "tensorstore":
        return np.asarray(a.vindex[idx].read().result())
    if im.name == "zarrista":
        return None
    return np.asarray(a.vindex[idx])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--out")
    args = p.parse_args()
    arr = peers.data(SHAPE)
    rng = np.random.default_rng(2)
    boxes = [
        tuple(slice(int(s), int(s) + BOX) for s in rng.integers(0, 256 - BOX, 3)) for _ in range(20)
    ]
    points = tuple(rng.integers(0, n, POINTS) for n in SHAPE)
    impls = [peers.IMPLS[k]() for k in IMPLS]
    root = tempfile.mkdtemp(prefix="small-inner-", dir=os.environ.get("BENCH_DIR"))
    rows: list[dict[str, Any]] = []
    try:
        for case, (chunks, codec) in CASES.items():
            path = os.path.join(root, f"{case}.zarr")
            peers.write_reference(path, arr, chunks, SHARDS, codec)
            times: dict[str, dict[str, list[float]]] = {
                im.name: {"full_s": [], "box_ms": [], "points_ms": []} for im in impls
            }
            for r in range(args.rounds):
                for im in impls[r % len(impls) :] + impls[: r % len(impls)]:
                    im.__init__()
                    a = im.open(path)
                    t0 = time.perf_counter()
                    out = np.asarray(im.read_full(a))
                    times[im.name]["full_s"].append(time.perf_counter() - t0)
                    if not np.array_equal(out, arr):
                        raise SystemExit(f"{im.name} read {case} wrong")
                    del out
                    t0 = time.perf_counter()
                    got = [im.read_box(a, b) for b in boxes]
                    times[im.name]["box_ms"].append((time.perf_counter() - t0) / len(boxes) * 1e3)
                    if not all(
                        np.array_equal(np.asarray(g), arr[b])
                        for g, b in zip(got, boxes, strict=True)
                    ):
                        raise SystemExit(f"{im.name} read a box of {case} wrong")
                    t0 = time.perf_counter()
                    values = read_points(im, a, points)
                    if values is not None:
                        times[im.name]["points_ms"].append((time.perf_counter() - t0) * 1e3)
                        if not np.array_equal(values, arr[points]):
                            raise SystemExit(f"{im.name} read the points of {case} wrong")
            for name, t in times.items():
                row: dict[str, Any] = {"case": case, "impl": name}
                row.update({k: statistics.median(v) for k, v in t.items() if v})
                rows.append(row)
                pts = f"{row['points_ms']:.1f} ms" if "points_ms" in row else "n/a"
                print(
                    f"{case:13s} {name:18s} full {row['full_s']:.4f} s  box {row['box_ms']:.2f} ms"
                    f"  points {pts}"
                )
            shutil.rmtree(path)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
