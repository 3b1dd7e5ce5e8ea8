"""Reads from a zip file against the same array in a directory: oxzarr's ZipStore, and
zarr-python's ZipStore for reference. Release build: `make develop-release`, then
`.venv/bin/python benches/zip_reads.py [TMPDIR]`.

Each case is a 512 x 512 x 256 uint16 array (128 MiB) in 64³ chunks, uncompressed or zstd,
written by oxzarr into a directory and zipped as zarr-python zips (entries stored without
compression). Figures: the median of 5 full reads, and of 200 one-chunk reads, in seconds
and microseconds.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import zarr

import oxzarr

SHAPE = (512, 512, 256)
CHUNKS = (64, 64, 64)


def median_time(run: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def zip_directory(directory: Path, target: Path) -> None:
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_STORED) as z:
        for file in sorted(directory.rglob("*")):
            if file.is_file():
                z.write(file, file.relative_to(directory).as_posix())


def main() -> None:
    rng = np.random.default_rng(0)
    data = (rng.standard_normal(SHAPE) * 50 + 1000).astype("u2")
    print("| case | store | full read (s) | one chunk (µs) |\n|---|---|---|---|")
    with tempfile.TemporaryDirectory(dir=sys.argv[1] if len(sys.argv) > 1 else None) as tmp:
        for case, compressors in (("raw_c64", None), ("zstd_c64", "auto")):
            directory = Path(tmp) / f"{case}.zarr"
            a = oxzarr.create_array(
                directory, shape=SHAPE, chunks=CHUNKS, dtype="u2", compressors=compressors
            )
            a[...] = data
            zipped = Path(tmp) / f"{case}.zip"
            zip_directory(directory, zipped)
            opened = {
                "oxzarr, directory": oxzarr.open_array(directory, mode="r"),
                "oxzarr, zip": oxzarr.open_array(zipped, mode="r"),
                "zarr-python, zip": zarr.open_array(
                    zarr.storage.ZipStore(zipped, mode="r"), mode="r"
                ),
            }
            for name, array in opened.items():
                assert np.array_equal(array[...], data)
                full = median_time(lambda array=array: array[...], 5)
                corners = [(i % 8 * 64, i // 8 % 8 * 64, i // 64 % 4 * 64) for i in range(200)]
                times = []
                for z0, y0, x0 in corners:
                    start = time.perf_counter()
                    array[z0 : z0 + 64, y0 : y0 + 64, x0 : x0 + 64]
                    times.append(time.perf_counter() - start)
                chunk = statistics.median(times) * 1e6
                print(f"| {case} | {name} | {full:.3f} | {chunk:.0f} |", flush=True)


if __name__ == "__main__":
    main()
