"""Reading into numpy allocates the output and at most about one chunk per thread."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import oxzarr
from oxzarr.codecs import ZstdCodec

# The peak resident set (VmHWM) of a fresh process: getrusage's ru_maxrss would carry the
# peak of the parent (pytest) across fork and exec.
MEASURE = """
import json, sys
import numpy as np, oxzarr

def peak():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024

a = oxzarr.open_array(sys.argv[1], mode="r")
oxzarr.config.set({"threads": 2})
a[:1]  # warm up: the thread pool and its scratch buffers exist before the baseline
before = peak()
out = a[...]
after = peak()
print(json.dumps({"grown": after - before, "output": out.nbytes}))
"""


@pytest.mark.parametrize("shards", [None, (128, 256, 256)])
def test_peak_memory_of_a_full_read(tmp_path: Path, shards: tuple[int, ...] | None) -> None:
    p = tmp_path / "a.zarr"
    chunks = (32, 256, 256)  # 4 MiB chunks, so per-thread buffers would show
    a = oxzarr.create_array(
        p,
        shape=(256, 256, 256),
        dtype="u8",
        chunks=chunks,
        shards=shards,
        compressors=ZstdCodec(level=1),
    )
    a[...] = np.arange(256**3, dtype="u8").reshape((256,) * 3) % 1000
    run = subprocess.run(
        [sys.executable, "-c", MEASURE, str(p)], capture_output=True, text=True, check=True
    )
    result = json.loads(run.stdout)
    chunk_bytes = 32 * 256 * 256 * 8
    # The measurement sees the output itself, or it measures nothing.
    assert result["grown"] >= 0.9 * result["output"], result
    extra = result["grown"] - result["output"]
    # The output (128 MiB), plus a decoded and a stored chunk per thread (2 threads), plus
    # a little slack for the allocator.
    assert extra <= 2 * 2 * chunk_bytes + (16 << 20), (
        f"reading {result['output'] >> 20} MiB grew the process by {result['grown'] >> 20} MiB"
    )
