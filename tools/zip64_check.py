"""Writes a zip past 4 GiB with oxzarr's ZipStore, then reads it with Python's zipfile and
zarr-python: entries whose local headers start past 4 GiB (ZIP64 offsets) must be found, and
their CRC-32s must match. Too big for the test suite (5 GiB of file, about 10 GiB of memory,
15-25 s on a tmpfs); run it by hand after changing the zip records:

    .venv/bin/python tools/zip64_check.py [DIRECTORY]    # default: the temporary directory
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import zipfile

import numpy as np
import zarr

import oxzarr
from oxzarr.storage import ZipStore


def main() -> None:
    directory = sys.argv[1] if len(sys.argv) > 1 else tempfile.gettempdir()
    with tempfile.TemporaryDirectory(dir=directory) as scratch:
        path = os.path.join(scratch, "big.zip")
        started = time.perf_counter()
        with ZipStore(path, mode="w") as store:
            big = oxzarr.create_array(
                store,
                name="big",
                shape=(9 * 2**29,),
                chunks=(2**30,),
                dtype="u1",
                compressors=None,
            )
            big[...] = np.full(big.shape, 7, dtype="u1")
            small = oxzarr.create_array(store, name="small", shape=(100,), chunks=(10,), dtype="i4")
            small[...] = np.arange(100, dtype="i4")
        seconds = time.perf_counter() - started
        print(f"wrote {os.path.getsize(path) / 2**30:.2f} GiB in {seconds:.1f} s")

        with zipfile.ZipFile(path) as z:
            late = [i for i in z.infolist() if i.header_offset > 2**32]
            assert late, "no entry starts past 4 GiB"
            for info in late:
                z.read(info)  # zipfile checks the CRC-32
        print(f"zipfile read the {len(late)} entries past 4 GiB, CRC-32s checked")

        theirs = zarr.storage.ZipStore(path, mode="r")
        assert (zarr.open_array(theirs, path="small", mode="r")[...] == np.arange(100)).all()
        b = zarr.open_array(theirs, path="big", mode="r")
        assert int(b[2**32 + 5]) == 7 and int(b[-1]) == 7
        theirs.close()
        print("zarr-python read both arrays")


if __name__ == "__main__":
    main()
