"""Writes into a zip file against the same array into a directory: oxzarr's ZipStore, and
zarr-python's ZipStore (with its own codec pipeline) for reference. Release build:
`make develop-release`, then `.venv/bin/python benches/zip_writes.py [TMPDIR]`.

Each case is a 512 x 512 x 256 uint16 array (128 MiB) in 64³ chunks, uncompressed or zstd
(level 0), the data of `benches/zip_reads.py`; and uncompressed into zips of deflated
entries (`compression=zipfile.ZIP_DEFLATED`). Figures: the median of 3 whole writes, each
into a new directory or zip file (the zip closed, so complete), in seconds; then each zip
is read back by the other library and compared with the data. Each write starts after
`sync`, so that none is throttled by the last one's pages still being written back.
"""

from __future__ import annotations

import itertools
import os
import statistics
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import zarr

import oxzarr
from oxzarr.storage import LocalStore, ZipStore

SHAPE = (512, 512, 256)
CHUNKS = (64, 64, 64)


def write(kind: str, path: Path, data: np.ndarray, compressed: bool, deflated: bool) -> None:
    """`data` written whole, as `kind` writes, into a new directory or zip at `path` (of
    `deflated` entries)."""
    method = zipfile.ZIP_DEFLATED if deflated else zipfile.ZIP_STORED
    if kind == "zarr-python, zip":
        theirs = zarr.storage.ZipStore(path, mode="w", compression=method)
        codec = zarr.codecs.ZstdCodec(level=0) if compressed else None
        z = zarr.create_array(theirs, shape=SHAPE, chunks=CHUNKS, dtype="u2", compressors=codec)
        z[...] = data
        theirs.close()
        return
    store = (
        ZipStore(path, mode="w", compression=method) if kind == "oxzarr, zip" else LocalStore(path)
    )
    compressors = oxzarr.codecs.ZstdCodec(level=0) if compressed else None
    a = oxzarr.create_array(store, shape=SHAPE, chunks=CHUNKS, dtype="u2", compressors=compressors)
    a[...] = data
    store.close()


def main() -> None:
    rng = np.random.default_rng(0)
    data = (rng.standard_normal(SHAPE) * 50 + 1000).astype("u2")
    counter = itertools.count()
    print("| case | store | full write (s) |\n|---|---|---|")
    with tempfile.TemporaryDirectory(dir=sys.argv[1] if len(sys.argv) > 1 else None) as tmp:
        cases = (("raw_c64", False, False), ("zstd_c64", True, False), ("raw_c64", False, True))
        for case, compressed, deflated in cases:
            written = {}
            kinds = ("oxzarr, zip", "zarr-python, zip")
            if not deflated:
                kinds = ("oxzarr, directory", *kinds)
            for kind in kinds:
                suffix = "zarr" if kind == "oxzarr, directory" else "zip"
                times = []
                for _ in range(3):
                    written[kind] = path = Path(tmp) / f"{next(counter)}.{suffix}"
                    # Each write starts with no dirty pages of the last one waiting to be
                    # written back (which would throttle it).
                    os.sync()
                    start = time.perf_counter()
                    write(kind, path, data, compressed, deflated)
                    times.append(time.perf_counter() - start)
                shown = f"{kind} of deflated entries" if deflated else kind
                print(f"| {case} | {shown} | {statistics.median(times):.3f} |", flush=True)
            theirs = zarr.open_array(zarr.storage.ZipStore(written["oxzarr, zip"], mode="r"))
            assert np.array_equal(theirs[...], data)
            assert np.array_equal(oxzarr.open_array(written["zarr-python, zip"])[...], data)


if __name__ == "__main__":
    main()
