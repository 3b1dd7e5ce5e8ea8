"""A pytest plugin for zarr-python's own test suite run with oxzarr's codec pipeline: at the end
of the session it writes what the pipeline counted (engine calls, fallbacks to zarr-python's
pipeline and why) to the file named by OXZARR_ZARR_SUITE_COUNTS."""

from __future__ import annotations

import json
import os
import sys

import pytest


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    path = os.environ.get("OXZARR_ZARR_SUITE_COUNTS")
    if not path:
        return
    counts: dict[str, dict[str, int]] = {"engine_calls": {}, "fallbacks": {}}
    # Only if zarr-python loaded the pipeline: importing it here would count nothing anyway.
    pipeline = sys.modules.get("oxzarr.zarr_pipeline")
    if pipeline is not None:
        counts = {"engine_calls": pipeline.engine_calls(), "fallbacks": pipeline.fallbacks()}
    with open(path, "w") as f:
        json.dump(counts, f, indent=1, sort_keys=True)
