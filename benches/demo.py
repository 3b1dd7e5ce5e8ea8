"""The newcomer's demo: the main job oxzarr is built for, on a local example.

A Zarr v2 array as many producers write it (512 MiB of uint16 in long chunks, zstd) is
converted with `oxzarr convert` into Zarr v3 with 32³ chunks in 256³ shards and blosc, then
`oxzarr info` describes the result, `oxzarr verify` checks it value by value, and reads show
what the new layout costs and buys. Run with `make demo` (release build).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
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


def oxzarr_command(*args: str) -> None:
    print(f"\n$ oxzarr {' '.join(args)}", flush=True)
    subprocess.run([sys.executable, "-m", "oxzarr", *args], check=True)


def main() -> None:
    shape = (512, 512, 1024)
    data = sample(shape)
    mib = data.nbytes / 2**20
    root = Path(tempfile.mkdtemp(prefix="oxzarr-demo-"))
    source, converted = root / "source.zarr", root / "converted.zarr"
    try:
        print(f"oxzarr {oxzarr.__version__}: {oxzarr.config.get('threads')} threads")
        z = oxzarr.create_array(
            source,
            shape=shape,
            dtype=data.dtype,
            chunks=(512, 64, 128),
            compressors=oxzarr.codecs.ZstdCodec(level=1),
            zarr_format=2,
            attributes={"description": "oxzarr demo", "_ARRAY_DIMENSIONS": ["z", "y", "x"]},
        )
        t0 = time.perf_counter()
        z[...] = data
        t_write = time.perf_counter() - t0
        print(
            f"wrote the source, Zarr v2 in {z.nchunks} long chunks: "
            f"{mib:.0f} MiB in {t_write:.2f} s ({mib / t_write:.0f} MiB/s)"
        )

        t0 = time.perf_counter()
        oxzarr_command(
            "convert",
            str(source),
            str(converted),
            "--zarr-format",
            "3",
            "--chunks",
            "32,32,32",
            "--shards",
            "256,256,256",
            "--compressor",
            "blosc:lz4:5:shuffle",
            "--progress",
        )
        print(f"(the whole command, interpreter start included: {time.perf_counter() - t0:.2f} s)")
        oxzarr_command("info", str(converted))
        oxzarr_command("verify", str(source), str(converted))

        out = oxzarr.open_array(converted, mode="r")
        t0 = time.perf_counter()
        back = out[...]
        t_read = time.perf_counter() - t0
        print(f"\nread the converted array: {mib / t_read:.0f} MiB/s ({t_read:.2f} s)")
        for name, array in (("source", z), ("converted", out)):
            t0 = time.perf_counter()
            box = array[100:132, 200:232, 300:332]
            print(f"read a 32³ box from the {name}: {(time.perf_counter() - t0) * 1e3:.2f} ms")
        assert np.array_equal(back, data), "the array read back differs from what was written"
        assert np.array_equal(box, data[100:132, 200:232, 300:332])
        print("values check out")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
