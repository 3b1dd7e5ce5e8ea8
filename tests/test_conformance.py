"""The shared conformance corpus: stores written by other implementations.

First the v3 nodes of the core data types and codecs (the foundation and sharding issues),
then the whole corpus: every node zarr-python reads must read the same here (shape, dtype and
the sha256 of expected.json); the others read right or are refused with a clear error.
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


# --- The whole corpus (the v2, hierarchy and data types issue) ---

ALL_NODES = (
    json.loads((SHARED / "conformance" / "expected.json").read_text())
    if (SHARED / "conformance" / "expected.json").exists()
    else []
)


def _group(path: str) -> str | None:
    """Nodes that hold the same values through different codecs: zarrs' snapshot matrix (one
    folder per data type) and zarr-python 2's fixtures (one folder per array, one sub-folder
    per compressor)."""
    parts = path.split("/")
    if path.startswith("zarrs_snapshot_data/supported/regular/"):
        return "/".join(parts[:4])
    if path.startswith("zarr-python-v2/fixture/") and len(parts) >= 4:
        return "/".join(parts[:3])
    return None


def _read_all(root: Path) -> dict[str, Any]:
    """Every node read, or the exception it raised."""
    results: dict[str, Any] = {}
    for node in ALL_NODES:
        try:
            values = oxzarr.open_array(root / node["path"], mode="r")[...]
            results[node["path"]] = (list(values.shape), str(values.dtype), digest(values))
        except Exception as e:
            results[node["path"]] = e
    return results


@pytest.fixture(scope="module")
def outcomes() -> dict[str, Any]:
    return _read_all(SHARED / "conformance")


#: The corpus as oxzarr reads it today; a change must be noticed, not absorbed.
EXPECTED_MATCHED = 484 + 17 + 3  # every node zarr-python reads
EXPECTED_BEYOND = 65  # nodes zarr-python refuses that oxzarr reads (and checks)


def test_every_node_zarr_python_reads(shared: Path, outcomes: dict[str, Any]) -> None:
    wrong = []
    for node in ALL_NODES:
        if "sha256" not in node:
            continue
        got = outcomes[node["path"]]
        expected = (node["shape"], node["dtype"], node["sha256"])
        if isinstance(got, Exception) or tuple(got) != expected:
            wrong.append((node["path"], got))
    matched = sum("sha256" in n for n in ALL_NODES) - len(wrong)
    print(f"\nmatched zarr-python on {matched} nodes")
    assert not wrong, wrong[:10]
    assert matched == EXPECTED_MATCHED


def test_nodes_beyond_zarr_python(shared: Path, outcomes: dict[str, Any]) -> None:
    """Nodes zarr-python cannot read: read right (checked against the values their siblings
    hold through other codecs), or refused with an error naming what is not supported."""
    reference: dict[str, str] = {}
    for node in ALL_NODES:
        known = node.get("sha256") or node.get("sha256_by_siblings")
        group = _group(node["path"])
        if known and group:
            reference.setdefault(group, known)
    beyond, refused, unchecked = [], [], []
    for node in ALL_NODES:
        if "sha256" in node:
            continue
        got = outcomes[node["path"]]
        if isinstance(got, Exception):
            # Refused: a ValueError (unsupported codec or data type), never anything else.
            assert isinstance(got, ValueError), (node["path"], got)
            assert "unsupported" in str(got), (node["path"], got)
            refused.append(node["path"])
            continue
        expected = node.get("sha256_by_siblings") or reference.get(_group(node["path"]) or "")
        if expected is None:
            unchecked.append(node["path"])
            continue
        assert got[2] == expected, f"{node['path']} reads wrong values"
        beyond.append(node["path"])
    print(f"\nread beyond zarr-python: {len(beyond)}, refused: {len(refused)}")
    assert not unchecked, unchecked
    assert len(beyond) == EXPECTED_BEYOND
    # What the spec allows and zarr-python refuses must read: extensions named without a
    # configuration, and zarr-python 2's fill value 0 on byte and text types.
    must_read = [
        n["path"]
        for n in ALL_NODES
        if "sha256" not in n
        and (
            n["path"].startswith(("zarr-python-v2/fixture/14/", "zarr-python-v2/fixture/15/"))
            or "Named configuration does not have a 'configuration' key"
            in n.get("oracle_error", "")
        )
    ]
    assert must_read and all(p in beyond for p in must_read), [
        p for p in must_read if p not in beyond
    ]
