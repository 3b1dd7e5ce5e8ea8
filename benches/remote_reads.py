"""Reads from an S3 service: oxzarr's ``s3://`` store against zarr-python through s3fs, on
the same objects. The service is moto's S3 server in its own process on this machine, so
requests cost a local round trip and moto's own work, not a cloud's latency. Release build:
`make develop-release`, then `.venv/bin/python benches/remote_reads.py`.

Each case is a 256³ uint16 array (32 MiB) written by zarr-python, zstd level 0: in 32³
chunks (512 objects of 64 KiB before compression), and in 32³ inner chunks packed in 128³
shards (8 objects). Figures: the median of 3 full reads and of 20 one-chunk reads, each
library's values checked against the data.
"""

from __future__ import annotations

import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import zarr

import oxzarr

SHAPE = (256, 256, 256)
CHUNKS = (32, 32, 32)
#: One chunk's box, read again and again.
BOX = (slice(96, 128), slice(32, 64), slice(160, 192))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def median_time(run: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        out = run()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def main() -> None:
    import boto3

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.1)
        boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
            region_name="us-east-1",
        ).create_bucket(Bucket="bench")
        options = {
            "key": "bench",
            "secret": "bench",
            "endpoint_url": endpoint,
            "client_kwargs": {"region_name": "us-east-1"},
        }
        rng = np.random.default_rng(0)
        data = (rng.standard_normal(SHAPE) * 50 + 1000).astype("u2")
        print("| case | library | full read (s) | one chunk (ms) |\n|---|---|---:|---:|")
        for case, shards in (("zstd_c32", None), ("shard128_c32_zstd", (128, 128, 128))):
            url = f"s3://bench/{case}.zarr"
            zarr.create_array(
                url, shape=SHAPE, chunks=CHUNKS, shards=shards, dtype="u2", storage_options=options
            )[...] = data
            opened = {
                "zarr-python (s3fs)": zarr.open_array(url, mode="r", storage_options=options),
                "oxzarr": oxzarr.open_array(url, mode="r", storage_options=options),
            }
            for name, a in opened.items():
                full, out = median_time(lambda a=a: a[...], 3)
                one, piece = median_time(lambda a=a: a[BOX], 20)
                assert np.array_equal(out, data) and np.array_equal(piece, data[BOX]), name
                print(f"| {case} | {name} | {full:.3f} | {one * 1e3:.2f} |")
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
