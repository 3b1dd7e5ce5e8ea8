"""Beyond the gate's five cases: oxzarr and every peer of ../shared/bench/peers.py on other
codecs, data types, shapes and selections, so that a case where a peer is faster shows up.

Each case is an array written by zarr-python (float32 zstd level 5, gzip, blosc zstd with
bitshuffle, a transpose, crc32c, unaligned chunk shapes, shards of uncompressed and blosc inner
chunks, 2-d and 1-d arrays). Every implementation reads it: the whole array, an unaligned box,
every other element along each dimension, a plane (2-d: a column) and a row, and 300 single
elements; then writes it whole into a new store and writes a box into part of its chunks,
which zarr-python reads back and checks. zarrista takes no steps other than 1: those figures
are left out for it. Every read's values are checked against the data written (a wrong read
is reported, not timed).

Each figure is a median of `--reps` in a row; each round runs every implementation in turn
(the order rotates from round to round, since this machine's speed drifts by more than the
differences measured), and a row is the median over the rounds.

Usage: python benches/other_cases.py [--rounds 3] [--reps 3] [--cases a,b] [--impl a,b] [--out F]
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared" / "bench"))
import peers  # type: ignore[import-not-found]

BYTES = {"name": "bytes", "configuration": {"endian": "little"}}


def zstd(level: int, checksum: bool = False) -> dict[str, Any]:
    return {"name": "zstd", "configuration": {"level": level, "checksum": checksum}}


def blosc(cname: str, shuffle: str, typesize: int) -> dict[str, Any]:
    config = {"cname": cname, "clevel": 5, "shuffle": shuffle, "typesize": typesize}
    return {"name": "blosc", "configuration": {**config, "blocksize": 0}}


def metadata(
    shape: tuple[int, ...],
    dtype: str,
    chunks: tuple[int, ...],
    codecs: list[dict[str, Any]],
    shards: tuple[int, ...] | None = None,
) -> dict[str, Any]:
    if shards:
        index = [BYTES, {"name": "crc32c"}]
        config = {"chunk_shape": list(chunks), "codecs": codecs, "index_codecs": index}
        codecs = [
            {"name": "sharding_indexed", "configuration": {**config, "index_location": "end"}}
        ]
    return {
        "zarr_format": 3,
        "node_type": "array",
        "shape": list(shape),
        "data_type": dtype,
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": list(shards or chunks)}},
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
        "fill_value": 0,
        "codecs": codecs,
        "attributes": {},
    }


CUBE = (256, 256, 256)
C64 = (64, 64, 64)
TRANSPOSE = {"name": "transpose", "configuration": {"order": [2, 1, 0]}}
CASES = {
    "f4_zstd5_c64": metadata(CUBE, "float32", C64, [BYTES, zstd(5)]),
    "u2_gzip5_c64": metadata(
        CUBE, "uint16", C64, [BYTES, {"name": "gzip", "configuration": {"level": 5}}]
    ),
    "f4_blosc_zstd_bit_c64": metadata(
        CUBE, "float32", C64, [BYTES, blosc("zstd", "bitshuffle", 4)]
    ),
    "u2_transpose_zstd_c64": metadata(CUBE, "uint16", C64, [TRANSPOSE, BYTES, zstd(0)]),
    "u2_zstd_crc32c_c64": metadata(CUBE, "uint16", C64, [BYTES, zstd(0, True), {"name": "crc32c"}]),
    "f8_raw_c128x128x16": metadata(CUBE, "float64", (128, 128, 16), [BYTES]),
    "u2_shard128_raw_c16": metadata(CUBE, "uint16", (16, 16, 16), [BYTES], shards=(128, 128, 128)),
    "u2_shard128_lz4_c32": metadata(
        CUBE, "uint16", (32, 32, 32), [BYTES, blosc("lz4", "shuffle", 2)], shards=(128, 128, 128)
    ),
    "f4_2d_zstd3_c512": metadata((4096, 8192), "float32", (512, 512), [BYTES, zstd(3)]),
    "f4_2d_raw_c1000": metadata((4000, 6000), "float32", (1000, 1000), [BYTES]),
    "i2_2d_blosc_zstd_c256x1000": metadata(
        (4096, 8000), "int16", (256, 1000), [BYTES, blosc("zstd", "shuffle", 2)]
    ),
    "f8_1d_zstd3_c1M": metadata((1 << 24,), "float64", (1 << 20,), [BYTES, zstd(3)]),
}

SELECTIONS: dict[int, dict[str, tuple[Any, ...]]] = {
    3: {
        "full": (slice(None),) * 3,
        "box": (slice(10, 200), slice(33, 177), slice(5, 250)),
        "every_other": (slice(None, None, 2),) * 3,
        "plane": (slice(None), slice(None), 100),
        "row": (100, 100, slice(None)),
    },
    2: {
        "full": (slice(None),) * 2,
        "box": (slice(100, 3000), slice(333, 4777)),
        "every_other": (slice(None, None, 2),) * 2,
        "plane": (slice(None), 1234),
        "row": (1234, slice(None)),
    },
    1: {
        "full": (slice(None),),
        "box": (slice(123456, 9876543),),
        "every_other": (slice(None, None, 2),),
        "row": (slice(5_000_000, 5_001_000),),
    },
}
WRITE_BOX = {
    3: (slice(50, 90), slice(70, 110), slice(100, 140)),
    2: (slice(500, 900), slice(700, 1100)),
    1: (slice(500_000, 600_000),),
}


def values(shape: tuple[int, ...], dtype: str) -> np.ndarray:
    """Smooth along every dimension, with noise: compressible, no two neighbours alike."""
    rng = np.random.default_rng(1)
    field = np.zeros(shape, dtype="f8")
    for d, n in enumerate(shape):
        grid = np.arange(n, dtype="f8").reshape([-1 if i == d else 1 for i in range(len(shape))])
        field = field + np.sin(grid / (17 + 6 * d))
    if np.dtype(dtype).kind == "f":
        return (field + rng.normal(0, 0.01, shape)).astype(dtype)
    return ((field + len(shape)) * 1000 + rng.integers(0, 16, shape)).astype(dtype)


def write_metadata(path: str, meta: dict[str, Any]) -> None:
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "zarr.json"), "w") as f:
        json.dump(meta, f)


class Peer:
    """One implementation, through peers.py's classes: open, read a selection, write into an
    existing array."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.impl = peers.IMPLS[name]()

    def open(self, path: str, writable: bool = False) -> Any:
        if self.name == "tensorstore":
            spec = {"driver": "zarr3", "kvstore": {"driver": "file", "path": path}}
            return self.impl.ts.open(spec, read=True, write=writable).result()
        if self.name == "zarrs":
            return self.impl.zarr.open_array(path, mode="r+" if writable else "r")
        if self.name == "oxzarr":
            return self.impl.m.open_array(path, mode="r+" if writable else "r")
        return self.impl.open(path)

    def read(self, a: Any, sel: tuple[Any, ...]) -> np.ndarray:
        if self.name == "zarrista":
            if any(isinstance(s, slice) and s.step not in (None, 1) for s in sel):
                raise NotImplementedError("steps")
            sel = tuple(slice(s, s + 1) if isinstance(s, int) else s for s in sel)
        return np.asarray(self.impl.read_box(a, sel))

    def write(self, path: str, data: np.ndarray, sel: tuple[Any, ...]) -> None:
        a = self.open(path, writable=True)
        if self.name == "tensorstore":
            a[sel].write(data).result()
        else:
            a[sel] = data


def median_time(fn: Callable[[], Any], reps: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(reps):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def run_case(
    peer: Peer, case: str, meta: dict[str, Any], data: np.ndarray, root: str, reps: int
) -> dict[str, Any]:
    ref = os.path.join(root, case + ".ref")
    row: dict[str, Any] = {"case": case, "impl": peer.name}
    a = peer.open(ref)
    for name, sel in SELECTIONS[data.ndim].items():
        try:
            t, out = median_time(lambda sel=sel: peer.read(a, sel), reps)
        except NotImplementedError:
            row[f"{name}_ms"] = None
            continue
        ok = np.array_equal(out.reshape(data[sel].shape), data[sel])
        row[f"{name}_ms"] = t * 1e3 if ok else "wrong values"
    rng = np.random.default_rng(2)
    points = [tuple(int(rng.integers(0, n)) for n in data.shape) for _ in range(300)]
    t0 = time.perf_counter()
    for p in points:
        peer.read(a, p)
    row["point_us"] = (time.perf_counter() - t0) / len(points) * 1e6
    dst = os.path.join(root, f"{case}.{peer.name}")

    def write_whole() -> None:
        shutil.rmtree(dst, ignore_errors=True)
        write_metadata(dst, meta)
        peer.write(dst, data, (slice(None),) * data.ndim)

    row["write_ms"] = median_time(write_whole, 3)[0] * 1e3
    box = WRITE_BOX[data.ndim]
    one = np.asarray(1, data.dtype)
    row["write_box_ms"] = median_time(lambda: peer.write(dst, data[box] + one, box), reps)[0] * 1e3
    expected = data.copy()
    expected[box] += one
    peers.ZarrPy()  # zarr-python's own pipeline reads the result back
    import zarr

    if not np.array_equal(zarr.open_array(dst, mode="r")[...], expected):
        row["write_ms"] = row["write_box_ms"] = "wrong values"
    shutil.rmtree(dst, ignore_errors=True)
    return row


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--cases", default=",".join(CASES))
    p.add_argument("--impl", default="zarrs,tensorstore,zarrista,oxzarr")
    p.add_argument("--out")
    args = p.parse_args()
    root = tempfile.mkdtemp(prefix="other_cases")
    rows = []
    try:
        for case in args.cases.split(","):
            meta = CASES[case]
            data = values(tuple(meta["shape"]), meta["data_type"])
            ref = os.path.join(root, case + ".ref")
            write_metadata(ref, meta)
            peers.ZarrPy()
            import zarr

            zarr.open_array(ref, mode="r+")[...] = data
            names = args.impl.split(",")
            runs: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
            for r in range(args.rounds):
                for name in names[r % len(names) :] + names[: r % len(names)]:
                    runs[name].append(run_case(Peer(name), case, meta, data, root, args.reps))
            for name in names:
                row = {"case": case, "impl": name}
                for key in runs[name][0]:
                    got = [run[key] for run in runs[name]]
                    if key in row:
                        continue
                    if any(isinstance(g, str) for g in got):
                        row[key] = next(g for g in got if isinstance(g, str))
                    elif any(g is None for g in got):
                        row[key] = None
                    else:
                        row[key] = statistics.median(got)
                rows.append(row)
                shown = {k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}
                print(json.dumps(shown), flush=True)
            shutil.rmtree(ref, ignore_errors=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=1)
        print(f"wrote {args.out}")
    # Where a peer is faster: the figures a user of oxzarr would want to know about.
    figures = [k for k in rows[0] if k.endswith(("_ms", "_us"))] if rows else []
    for case in dict.fromkeys(r["case"] for r in rows):
        ours = next((r for r in rows if r["case"] == case and r["impl"] == "oxzarr"), None)
        if ours is None:
            continue
        for fig in figures:
            theirs = [
                (r.get(fig), r["impl"]) for r in rows if r["case"] == case and r["impl"] != "oxzarr"
            ]
            best = min(((v, n) for v, n in theirs if isinstance(v, float)), default=None)
            if best and isinstance(ours.get(fig), float) and best[0] < ours[fig]:
                print(f"{case} {fig}: {best[1]} {best[0]:.3f} < oxzarr {ours[fig]:.3f}")


if __name__ == "__main__":
    main()
