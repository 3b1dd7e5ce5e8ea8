"""zarr-python with its own codec pipeline, with zarrs' and with oxzarr's
(oxzarr.ZarrCodecPipeline), on the arrays of ../shared/bench/peers.py, in one process run;
oxzarr's own API for reference.

Each figure is the best of `--repeat` runs. Reads are of stores zarr-python wrote; every read is
checked against the data, and every store a pipeline wrote is read back by zarr-python's own
pipeline and checked, before its time counts.

Usage: python benches/zarr_pipeline.py [--size 512] [--cases raw_c64,...] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import zarr

import oxzarr

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared" / "bench"))
import peers  # type: ignore[import-not-found]

PIPELINES = {
    "zarr-python": "zarr.core.codec_pipeline.BatchedCodecPipeline",
    "zarr-python+zarrs": "zarrs.ZarrsCodecPipeline",
    "zarr-python+oxzarr": "oxzarr.ZarrCodecPipeline",
}


def best(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--cases", default=",".join(peers.CASES))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    shape = (args.size,) * 3
    data = peers.data(shape)
    box = tuple(slice(s // 3, s // 3 + 64) for s in shape)
    root = Path(tempfile.mkdtemp(prefix="zbench-pipeline-", dir=os.environ.get("BENCH_DIR")))
    results: dict[str, dict[str, dict[str, float]]] = {}
    try:
        for case in args.cases.split(","):
            chunks, shards, codec = peers.CASES[case]
            reference = str(root / f"{case}-reference.zarr")
            with zarr.config.set({"codec_pipeline.path": PIPELINES["zarr-python"]}):
                peers.write_reference(reference, data, chunks, shards, codec)
            results[case] = {}
            for name, pipeline in PIPELINES.items():
                with zarr.config.set({"codec_pipeline.path": pipeline}):
                    a = zarr.open_array(reference, mode="r")
                    t_full, got = best(lambda a=a: a[...], args.repeat)
                    assert np.array_equal(got, data), (case, name)
                    t_box, got = best(lambda a=a: a[box], args.repeat)
                    assert np.array_equal(got, data[box]), (case, name)
                    target = str(root / f"{case}-{name}.zarr")

                    layout = {
                        "shape": shape,
                        "dtype": data.dtype,
                        "chunks": chunks,
                        "shards": shards,
                        "compressors": [peers.zarr_codec(codec)] if codec else None,
                        "fill_value": 0,
                    }

                    def write(target: str = target, layout: dict[str, Any] = layout) -> None:
                        zarr.create_array(target, overwrite=True, **layout)[...] = data

                    t_write, _ = best(write, args.repeat)
                with zarr.config.set({"codec_pipeline.path": PIPELINES["zarr-python"]}):
                    assert np.array_equal(zarr.open_array(target, mode="r")[...], data)
                shutil.rmtree(target)
                results[case][name] = {"read_full": t_full, "read_box": t_box, "write": t_write}
            a = oxzarr.open_array(reference, mode="r")
            t_full, got = best(lambda a=a: a[...], args.repeat)
            assert np.array_equal(got, data)
            t_box, _ = best(lambda a=a: a[box], args.repeat)
            results[case]["oxzarr API"] = {"read_full": t_full, "read_box": t_box}
            shutil.rmtree(reference)
            for name, figures in results[case].items():
                shown = "  ".join(f"{k} {v:.4f} s" for k, v in figures.items())
                print(f"{case:18} {name:20} {shown}", flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if args.out:
        args.out.write_text(json.dumps({"size": args.size, "results": results}, indent=1))


if __name__ == "__main__":
    main()
