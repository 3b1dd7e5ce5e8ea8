"""The conversion job of the issue "The oxzarr command": a uint16 array of n³ (768³ = 864 MiB by
default) in long chunks (n, n/8, 64), zstd level 1, into 32³ inner chunks in 256³ shards with
blosc lz4 + shuffle; by `oxzarr convert`, and shard by shard with zarr-python and with
TensorStore. Each job runs in its own process under /usr/bin/time -v (wall time and peak
resident memory); every output is checked against the source.

Usage: python benches/convert.py [--size 768] [--repeat 1] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

import oxzarr

ZARR_PYTHON_JOB = """
import sys, itertools, zarr
from zarr.codecs import BloscCodec
src = zarr.open_array(sys.argv[1], mode="r")
n = src.shape[0]
dst = zarr.create_array(sys.argv[2], shape=src.shape, dtype=src.dtype, chunks=(32, 32, 32),
                        shards=(256, 256, 256), fill_value=0,
                        compressors=BloscCodec(cname="lz4", clevel=5, shuffle="shuffle"))
for i, j, k in itertools.product(range(0, n, 256), repeat=3):
    region = (slice(i, i + 256), slice(j, j + 256), slice(k, k + 256))
    dst[region] = src[region]
"""

TENSORSTORE_JOB = """
import sys, itertools, tensorstore as ts
src = ts.open({"driver": "zarr3", "kvstore": {"driver": "file", "path": sys.argv[1]}},
              read=True).result()
n = src.shape[0]
blosc = {"name": "blosc", "configuration": {"cname": "lz4", "clevel": 5, "shuffle": "shuffle",
         "typesize": 2, "blocksize": 0}}
dst = ts.open({
    "driver": "zarr3", "kvstore": {"driver": "file", "path": sys.argv[2]},
    "metadata": {"shape": list(src.shape), "data_type": "uint16", "fill_value": 0,
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [256, 256, 256]}},
        "codecs": [{"name": "sharding_indexed", "configuration": {
            "chunk_shape": [32, 32, 32],
            "codecs": [{"name": "bytes", "configuration": {"endian": "little"}}, blosc],
            "index_codecs": [{"name": "bytes", "configuration": {"endian": "little"}},
                             {"name": "crc32c"}]}}]},
    "create": True, "delete_existing": True}).result()
for i, j, k in itertools.product(range(0, n, 256), repeat=3):
    box = tuple(slice(a, min(a + 256, n)) for a in (i, j, k))  # TensorStore does not clip
    dst[box].write(src[box].read().result()).result()
"""


def source_values(n: int, z: int, width: int) -> np.ndarray:
    """The source's values in [:, :, z:z+width] (smooth with noise, as peers.py's)."""
    rng = np.random.default_rng(z)
    i, j, k = np.ogrid[0:n, 0:n, z : z + width]
    idx = (i + j + k).astype(np.uint32)
    noise = rng.integers(0, 16, size=(n, n, width), dtype=np.uint32)
    return ((idx * 7) % 4096 + noise).astype(np.uint16)


def make_source(path: Path, n: int) -> None:
    a = oxzarr.create_array(
        path,
        shape=(n, n, n),
        dtype="u2",
        chunks=(n, n // 8, 64),
        compressors=oxzarr.codecs.ZstdCodec(level=1),
        fill_value=0,
    )
    for z in range(0, n, 64):
        a[:, :, z : z + 64] = source_values(n, z, min(64, n - z))


def timed(command: list[str]) -> dict[str, float]:
    """Wall seconds and peak resident memory of a command, from /usr/bin/time -v."""
    run = subprocess.run(["/usr/bin/time", "-v", *command], capture_output=True, text=True)
    if run.returncode != 0:
        raise RuntimeError(f"{command} failed:\n{run.stderr}")
    wall = re.search(r"Elapsed \(wall clock\) time .*: (?:(\d+):)?(\d+):([\d.]+)", run.stderr)
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", run.stderr)
    assert wall and rss, run.stderr
    hours, minutes, seconds = wall.groups()
    total = int(hours or 0) * 3600 + int(minutes) * 60 + float(seconds)
    return {"seconds": total, "peak_rss_mib": int(rss.group(1)) / 1024}


def check(path: Path, n: int) -> None:
    out = oxzarr.open_array(path, mode="r")
    assert out.shape == (n, n, n) and out.shards == (256, 256, 256), (out.shape, out.shards)
    for z in range(0, n, 64):
        got = out[:, :, z : z + 64]
        if not np.array_equal(got, source_values(n, z, got.shape[2])):
            raise AssertionError(f"{path}: wrong values in [:, :, {z}:{z + 64}]")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=768)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    n = args.size
    root = Path(tempfile.mkdtemp(prefix="zbench-convert-", dir=os.environ.get("BENCH_DIR")))
    python = sys.executable
    oxzarr_cli = [python, "-m", "oxzarr", "convert"]
    jobs = {
        "oxzarr convert": lambda s, d: [
            *oxzarr_cli,
            s,
            d,
            "--chunks",
            "32,32,32",
            "--shards",
            "256,256,256",
            "--compressor",
            "blosc:lz4:5:shuffle",
            "--no-progress",
        ],
        "zarr-python, shard by shard": lambda s, d: [python, "-c", ZARR_PYTHON_JOB, s, d],
        "TensorStore, shard by shard": lambda s, d: [python, "-c", TENSORSTORE_JOB, s, d],
    }
    results: dict[str, dict[str, float]] = {}
    try:
        src = root / "source.zarr"
        make_source(src, n)
        print(
            f"source: {n}^3 uint16 = {n**3 * 2 / 2**20:.0f} MiB, chunks {(n, n // 8, 64)}",
            flush=True,
        )
        for name, command in jobs.items():
            best: dict[str, float] | None = None
            for _ in range(args.repeat):
                dst = root / "dst.zarr"
                shutil.rmtree(dst, ignore_errors=True)
                # The previous job's writes and deletions reach the disk before this one starts.
                os.sync()
                figures = timed(command(str(src), str(dst)))
                check(dst, n)
                if best is None or figures["seconds"] < best["seconds"]:
                    best = figures
            assert best is not None
            results[name] = best
            print(
                f"{name:30} {best['seconds']:7.2f} s   peak RSS {best['peak_rss_mib']:6.0f} MiB",
                flush=True,
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    ts = results["TensorStore, shard by shard"]["seconds"]
    print(f"oxzarr convert vs TensorStore: {ts / results['oxzarr convert']['seconds']:.2f}x")
    if args.out:
        args.out.write_text(json.dumps({"size": n, "results": results}, indent=1))


if __name__ == "__main__":
    main()
