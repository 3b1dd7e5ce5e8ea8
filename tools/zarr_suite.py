"""Runs zarr-python's own tests with its default codec pipeline and with oxzarr's, and reports
which tests pass with each.

The tests come from zarr-python's source distribution, fetched with pip for the installed zarr
version into a cache directory (never committed). The run covers tests/test_array.py,
tests/test_indexing.py, tests/test_codecs and tests/test_v2.py, the suites that exercise a
codec pipeline. Usage:

    python tools/zarr_suite.py --report report.json [--cache DIR] [--pipeline default|oxzarr]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SUITES = ["tests/test_array.py", "tests/test_indexing.py", "tests/test_codecs", "tests/test_v2.py"]
PIPELINES = {"default": None, "oxzarr": "oxzarr.ZarrCodecPipeline"}
# A whole run takes under a minute here; a hang (a thread pool inherited across fork, say)
# must end the run, not CI.
RUN_TIMEOUT_S = 900
TEST_TIMEOUT_S = 300


def zarr_sources(cache: Path) -> Path:
    """zarr-python's source tree for the installed version, downloaded and unpacked once."""
    import zarr

    version = zarr.__version__
    tree = cache / f"zarr-{version}"
    if (tree / "tests").is_dir():
        return tree
    cache.mkdir(parents=True, exist_ok=True)
    sdist = cache / f"zarr-{version}.tar.gz"
    if not sdist.exists():
        subprocess.run(
            [
                *(sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"),
                *("--no-binary", ":all:", f"zarr=={version}", "--dest", str(cache)),
            ],
            check=True,
        )
    with tempfile.TemporaryDirectory(dir=cache) as staging, tarfile.open(sdist) as tar:
        tar.extractall(staging, filter="data")
        # Unpacked beside, then renamed: an interrupted unpack is never taken for a tree.
        Path(staging, f"zarr-{version}").rename(tree)
    return tree


def outcomes(junit: Path) -> dict[str, str]:
    """Each test's outcome (passed, failed, skipped) from pytest's JUnit XML."""
    results = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        test_id = f"{case.get('classname')}::{case.get('name')}"
        if case.find("failure") is not None or case.find("error") is not None:
            results[test_id] = "failed"
        elif case.find("skipped") is not None:
            results[test_id] = "skipped"
        else:
            results[test_id] = "passed"
    return results


def run(tree: Path, pipeline: str, workdir: Path) -> dict[str, object]:
    junit = workdir / f"{pipeline}.xml"
    counts = workdir / f"{pipeline}-counts.json"
    env = dict(os.environ)
    env.pop("ZARR_CODEC_PIPELINE__PATH", None)
    if PIPELINES[pipeline] is not None:
        env["ZARR_CODEC_PIPELINE__PATH"] = PIPELINES[pipeline]
    env["OXZARR_ZARR_SUITE_COUNTS"] = str(counts)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "tools"), env.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "pytest", "-o", "addopts=", "-q", "-p", "no:cacheprovider"]
    command += ["-p", "zarr_suite_plugin", f"--junitxml={junit}", f"--timeout={TEST_TIMEOUT_S}"]
    started = time.monotonic()
    proc = subprocess.run(
        command + SUITES,
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
    )
    seconds = time.monotonic() - started
    if not junit.exists():
        raise RuntimeError(f"the {pipeline} run wrote no results:\n{proc.stdout}\n{proc.stderr}")
    results = outcomes(junit)
    summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    return {
        "seconds": round(seconds, 1),
        "summary": summary,
        "passed": sorted(t for t, r in results.items() if r == "passed"),
        "failed": sorted(t for t, r in results.items() if r == "failed"),
        "skipped": sum(r == "skipped" for r in results.values()),
        **(json.loads(counts.read_text()) if counts.exists() else {}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", type=Path, required=True, help="where to write the JSON")
    parser.add_argument("--cache", type=Path, default=ROOT / ".venv" / "zarr-suite")
    parser.add_argument("--pipeline", choices=sorted(PIPELINES), action="append")
    args = parser.parse_args()
    tree = zarr_sources(args.cache)
    report = {}
    with tempfile.TemporaryDirectory() as workdir:
        for pipeline in args.pipeline or list(PIPELINES):
            report[pipeline] = run(tree, pipeline, Path(workdir))
            result = report[pipeline]
            print(
                f"{pipeline}: {len(result['passed'])} passed, {len(result['failed'])} failed, "
                f"{result['skipped']} skipped in {result['seconds']} s"
            )
    args.report.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
