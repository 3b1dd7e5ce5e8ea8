"""The newcomer's demo: write a 3-D array to disk with oxzarr, read it back, print the speed.

Run with `make demo` (release build). The array is 512 MiB of uint16 in 64^3 chunks, zstd.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

import oxzarr


def sample(shape: tuple[int, int, int]) -> np.ndarray:
    """Smooth values with a little noise, so that they compress like real data."""
    rng = np.random.default_rng(0)
    z, y, x = (np.arange(n, dtype=np.uint32) for n in shape)
    idx = z[:, None, None] + y[None, :, None] + x[None, None, :]
    noise = rng.integers(0, 16, size=shape, dtype=np.uint16)
    return ((idx * 7) % 4096).astype(np.uint16) + noise


def main() -> None:
    shape = (512, 512, 1024)
    data = sample(shape)
    mib = data.nbytes / 2**20
    root = Path(tempfile.mkdtemp(prefix="oxzarr-demo-"))
    path = root / "demo.zarr"
    try:
        print(f"oxzarr {oxzarr.__version__}: {oxzarr.config.get('threads')} threads")
        z = oxzarr.create_array(
            path,
            shape=shape,
            dtype=data.dtype,
            chunks=(64, 64, 64),
            compressors=oxzarr.codecs.ZstdCodec(level=1),
            dimension_names=["z", "y", "x"],
            attributes={"description": "oxzarr demo"},
        )
        t0 = time.perf_counter()
        z[...] = data
        t_write = time.perf_counter() - t0
        stored = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        print(f"wrote {z} ({z.nchunks} chunks)")
        print(
            f"  {mib:.0f} MiB in {t_write:.2f} s = {mib / t_write:.0f} MiB/s; "
            f"stored {stored / 2**20:.0f} MiB (ratio {data.nbytes / stored:.1f})"
        )
        again = oxzarr.open_array(path, mode="r")
        t0 = time.perf_counter()
        back = again[...]
        t_read = time.perf_counter() - t0
        print(f"read it back: {mib / t_read:.0f} MiB/s ({t_read:.2f} s)")
        t0 = time.perf_counter()
        corner = again[100:164, 200:264, 300:364]
        print(f"read one 64^3 box: {(time.perf_counter() - t0) * 1e3:.2f} ms")
        assert np.array_equal(back, data), "the array read back differs from what was written"
        assert np.array_equal(corner, data[100:164, 200:264, 300:364])
        print("values check out")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
