"""The shared conformance corpus: stores written by other implementations.

First the v3 nodes of the core data types and codecs (the foundation and sharding issues),
then the whole corpus: every node zarr-python reads must read the same here (shape, dtype and
the sha256 of expected.json); the others read right or are refused with a clear error.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
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
EXPECTED_MATCHED = 288 + 216  # every node zarr-python reads (v3 and v2)
EXPECTED_BEYOND = 98  # nodes zarr-python refuses that oxzarr reads, each checked
EXPECTED_REFUSED = 390  # refused with an error naming the unsupported codec or data type


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


#: Values stated by a node's own documentation (the zarr-extensions bitround sample data,
#: keepbits 3, whose README tables give the rounded values; zarrs keeps a copy).
README_VALUES = {
    "bitround_float32.zarr": np.array(
        [0.0, 0.1015625, 1.25, 12.0, 120.0, 1280.0, np.nan, np.inf, -np.inf], dtype="f4"
    ),
    "bitround_uint8.zarr": np.array([0, 1, 10, 12, 96, 128, 192, 192, 224, 224], dtype="u1"),
}

#: Codecs that change values: their nodes differ from their lossless siblings.
LOSSY = {"numcodecs.fixedscaleoffset", "numcodecs.quantize", "numcodecs.bitround", "bitround"}


def _bitround_integers(values: np.ndarray, keepbits: int) -> np.ndarray:
    """zarr-extensions' bitround of integers (numcodecs rounds only floats): keep `keepbits`
    bits from the most significant set bit of each value's bits, rounding half to even,
    saturating at the type's largest pattern."""
    width = values.dtype.itemsize * 8
    bits = values.view(f"u{values.dtype.itemsize}").astype(object)
    out = []
    for b in bits.reshape(-1):
        drop = b.bit_length() - keepbits
        if drop > 0:
            half, mask = 1 << (drop - 1), (1 << drop) - 1
            rest = b & mask
            b &= ~mask
            if rest > half or (rest == half and (b >> drop) & 1):
                b += 1 << drop
            b = min(b, (1 << width) - 1)
        out.append(b)
    unsigned = np.array(out, dtype=f"u{values.dtype.itemsize}").reshape(values.shape)
    return unsigned.view(values.dtype)


def _lossy_round_trip(values: np.ndarray, node_path: Path) -> np.ndarray:
    """`values` through the lossy array->array codecs of the node, encoded and decoded by
    numcodecs (the reference implementation of those filters)."""
    import numcodecs

    codecs = json.loads((node_path / "zarr.json").read_text())["codecs"]
    for codec in codecs:
        name = codec if isinstance(codec, str) else codec["name"]
        if name not in LOSSY:
            continue
        config = dict(codec.get("configuration") or {}) if isinstance(codec, dict) else {}
        codec_id = name.removeprefix("numcodecs.")
        if codec_id == "fixedscaleoffset" and config.get("astype") is None:
            config.pop("astype", None)
        if codec_id == "bitround" and values.dtype.kind in "iumM":
            ints = values.view(f"i{values.dtype.itemsize}") if values.dtype.kind in "mM" else values
            values = _bitround_integers(ints, int(config["keepbits"])).view(values.dtype)
            continue
        if codec_id == "bitround" and values.dtype.kind == "c":
            parts = values.view(f"f{values.dtype.itemsize // 2}")
            rounded = numcodecs.BitRound(int(config["keepbits"])).encode(parts)
            values = np.asarray(rounded).reshape(parts.shape).view(values.dtype)
            continue
        values = (
            np.asarray(
                numcodecs.get_codec({"id": codec_id, **config}).decode(
                    numcodecs.get_codec({"id": codec_id, **config}).encode(values)
                )
            )
            .reshape(values.shape)
            .astype(values.dtype)
        )
    return values


def test_nodes_beyond_zarr_python(shared: Path, outcomes: dict[str, Any]) -> None:
    """Nodes zarr-python cannot read: read right, or refused with an error naming what is not
    supported. "Right" is checked against values known by other means: the sha256 of sibling
    nodes holding the same values through lossless codecs (lossy filters applied to them by
    numcodecs), else the agreement of at least three sibling nodes decoded through different
    codec chains."""
    root = shared / "conformance"
    # A lossless reference node per group: known values, no value-changing codec.
    reference: dict[str, tuple[str, str]] = {}
    for node in ALL_NODES:
        known = node.get("sha256") or node.get("sha256_by_siblings")
        group = _group(node["path"])
        readable = not isinstance(outcomes[node["path"]], Exception)
        if known and group and readable and not LOSSY & set(node.get("codecs", [])):
            reference.setdefault(group, (node["path"], known))
    read_by_group: dict[str, list[str]] = {}
    for node in ALL_NODES:
        group = _group(node["path"])
        if group and not isinstance(outcomes[node["path"]], Exception):
            read_by_group.setdefault(group, []).append(node["path"])
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
        group = _group(node["path"]) or ""
        known = next((v for k, v in README_VALUES.items() if node["path"].endswith(k)), None)
        if known is not None:
            assert got[2] == digest(known), f"{node['path']} reads wrong values"
        elif node.get("sha256_by_siblings"):
            assert got[2] == node["sha256_by_siblings"], f"{node['path']} reads wrong values"
        elif group in reference and LOSSY & set(node.get("codecs", [])):
            ref_path, ref_sha = reference[group]
            ref_values = oxzarr.open_array(root / ref_path, mode="r")[...]
            assert digest(ref_values) == ref_sha
            expected = digest(_lossy_round_trip(ref_values, root / node["path"]))
            assert got[2] == expected, f"{node['path']} reads wrong values"
        elif group in reference:
            assert got[2] == reference[group][1], f"{node['path']} reads wrong values"
        elif group and len(read_by_group[group]) >= 3:
            digests = {
                outcomes[p][2]
                for p in read_by_group[group]
                if not LOSSY & set(next(n for n in ALL_NODES if n["path"] == p).get("codecs", []))
            }
            assert len(digests) == 1, f"the nodes of {group} disagree"
            assert got[2] in digests
        else:
            unchecked.append(node["path"])
            continue
        beyond.append(node["path"])
    print(f"\nread beyond zarr-python: {len(beyond)}, refused: {len(refused)}")
    assert not unchecked, unchecked
    assert len(beyond) == EXPECTED_BEYOND
    assert len(refused) == EXPECTED_REFUSED
    # What the spec allows and zarr-python refuses must read: extensions named without a
    # configuration, and zarr-python 2's fill value 0 on byte and text types.
    must_read = [
        n["path"]
        for n in ALL_NODES
        if "sha256" not in n
        and (
            n["path"].startswith(("zarr-python-v2/fixture/14/", "zarr-python-v2/fixture/15/"))
            or "does not have a 'configuration' key" in n.get("oracle_error", "")
        )
    ]
    missing = [p for p in must_read if p not in beyond]
    assert must_read and not missing, missing


# --- Documents other implementations read ---


def _with_format(path: Path, document: str, text: str) -> None:
    """The document `document` below `path` with its zarr_format given as the JSON `text`."""
    file = path / document
    doc = json.loads(file.read_text())
    doc["zarr_format"] = "FORMAT"
    file.write_text(json.dumps(doc).replace('"FORMAT"', text))


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_zarr_format_as_a_float_reads(tmp_path: Path, zarr_format: int) -> None:
    """A zarr_format written as a float ("zarr_format": 3.0) was refused; zarr-python and
    TensorStore read the node (the number is 3, or 2 in .zarray and .zgroup). Other values
    are still refused, as they are there, and oxzarr writes the integer."""
    import zarr

    array_doc, group_doc = (
        ("zarr.json", "zarr.json") if zarr_format == 3 else (".zarray", ".zgroup")
    )
    for text in (f"{zarr_format}.0", f"{zarr_format}e0"):
        root = tmp_path / f"read-{text}"
        group = oxzarr.open_group(root, mode="w", zarr_format=zarr_format)
        group.attrs["k"] = 1
        group.create_array("a", shape=(2,), chunks=(2,), dtype="i4", fill_value=7)
        _with_format(root / "a", array_doc, text)
        _with_format(root, group_doc, text)
        for lib in (zarr, oxzarr):
            assert lib.open_array(root / "a", mode="r")[...].tolist() == [7, 7], (lib, text)
            opened = lib.open_group(root, mode="r")
            assert dict(opened.attrs) == {"k": 1}, (lib, text)
            assert list(opened.keys()) == ["a"], (lib, text)
        # Rewritten by oxzarr, the number is the integer again.
        oxzarr.open_array(root / "a").resize((3,))
        written = json.loads((root / "a" / array_doc).read_text())["zarr_format"]
        assert type(written) is int and written == zarr_format
        # In consolidated metadata too: the member's document there, and the group's.
        oxzarr.consolidate_metadata(root)
        file = root / ("zarr.json" if zarr_format == 3 else ".zmetadata")
        doc = json.loads(file.read_text())
        if zarr_format == 3:
            doc["zarr_format"] = doc["consolidated_metadata"]["metadata"]["a"]["zarr_format"] = "F"
        else:
            doc["metadata"][".zgroup"]["zarr_format"] = "F"
            doc["metadata"]["a/.zarray"]["zarr_format"] = "F"
        file.write_text(json.dumps(doc).replace('"F"', text))
        for lib in (zarr, oxzarr):
            consolidated = lib.open_consolidated(root, mode="r")
            assert consolidated["a"][...].tolist() == [7, 7, 7], (lib, text)
    for text in (f"{zarr_format}.5", f'"{zarr_format}"', "true", "null"):
        root = tmp_path / f"refused-{text}"
        oxzarr.create_array(root, shape=(2,), dtype="i4", zarr_format=zarr_format)
        _with_format(root, array_doc, text)
        for lib in (zarr, oxzarr):
            with pytest.raises(ValueError, match="zarr_format"):
                lib.open_array(root, mode="r")


def test_attributes_that_are_not_an_object_are_refused(tmp_path: Path) -> None:
    """The spec says attributes are an object; a list is refused (zarr-python takes it)."""
    oxzarr.create_array(tmp_path, shape=(2,), dtype="i4")
    doc = json.loads((tmp_path / "zarr.json").read_text())
    (tmp_path / "zarr.json").write_text(json.dumps({**doc, "attributes": [1]}))
    with pytest.raises(ValueError, match=r"attributes.*expected an object"):
        oxzarr.open_array(tmp_path, mode="r")
