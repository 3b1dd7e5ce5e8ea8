"""The shared conformance corpus: stores written by other implementations.

This file covers Zarr v3 arrays, sharded or not, whose data type and codecs are all in the
lists below. Every such node must read with the values zarr-python reads (the sha256 in
expected.json).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import oxzarr
from tests.conftest import DTYPES, SHARED, digest

CODECS = {"bytes", "transpose", "gzip", "zstd", "blosc", "crc32c", "sharding_indexed"}
#: How many nodes of the corpus this covers: a change in the corpus or in the selection
#: must be noticed, not silently absorbed.
EXPECTED_COUNT = 164
EXPECTED_SHARDED = 32


def _nodes() -> list[dict[str, Any]]:
    path = SHARED / "conformance" / "expected.json"
    if not path.exists():
        return []
    nodes = json.loads(path.read_text())
    return [
        n
        for n in nodes
        if n["zarr_format"] == 3 and n["data_type"] in DTYPES and set(n["codecs"]) <= CODECS
    ]


NODES = _nodes()


def test_the_selection_is_complete(shared: Path) -> None:
    assert len(NODES) == EXPECTED_COUNT
    assert sum(n["sharded"] for n in NODES) == EXPECTED_SHARDED
    # zarr-python reads every one of them: none is a node only beyond the reference.
    assert all("sha256" in n for n in NODES)


@pytest.mark.parametrize("node", NODES, ids=[n["path"] for n in NODES])
def test_reads_what_zarr_python_reads(shared: Path, node: dict[str, Any]) -> None:
    array = oxzarr.open_array(shared / "conformance" / node["path"], mode="r")
    values = array[...]
    assert list(values.shape) == node["shape"]
    assert str(values.dtype) == node["dtype"]
    assert digest(values) == node["sha256"]
