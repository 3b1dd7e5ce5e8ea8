"""zarr-python API parity: the same scripts run against zarr-python and oxzarr (imported as
`zarr`) and must give the same results — values, shapes, dtypes, and exceptions of the same
built-in families."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import zarr as zarr_python

import oxzarr
from tests.conftest import attempt, normalize

Script = Callable[[ModuleType, Path], list[Any]]
SCRIPTS: dict[str, Script] = {}


def script(fn: Script) -> Script:
    SCRIPTS[fn.__name__] = fn
    return fn


def data(shape: tuple[int, ...], dtype: str = "i4") -> np.ndarray:
    return (np.arange(int(np.prod(shape))) % 251).astype(dtype).reshape(shape)


@script
def basic_indexing(zarr: ModuleType, path: Path) -> list[Any]:
    a = zarr.create_array(path / "a", shape=(10, 12), dtype="i4", chunks=(3, 5), fill_value=-1)
    a[...] = data((10, 12))
    a[2:5, 7] = 100
    a[-1] = 7
    a[0, 0] = 3.0
    return [
        a[...],
        a[1:9:2, ::3],
        a[3],
        a[-2, -3],
        a[..., 4],
        a.shape,
        a.dtype,
        a.chunks,
        a.ndim,
        a.size,
        a.nbytes,
        a.fill_value,
        np.asarray(a),
        a.nchunks,
        attempt(lambda: a[10]),
        attempt(lambda: a[0, 12]),
        attempt(lambda: a[0, 0, 0]),
    ]


@script
def orthogonal_selections(zarr: ModuleType, path: Path) -> list[Any]:
    a = zarr.create_array(path / "a", shape=(8, 9, 4), dtype="f8", chunks=(3, 4, 2))
    a[...] = data((8, 9, 4), "f8")
    mask = np.array([True, False, True, True, False, False, True, False, True])
    a.oindex[[1, 5], :, [0, 3]] = -1.0
    a.set_orthogonal_selection((slice(0, 2), mask, 1), 9.5)
    # A 0-d integer array among index arrays is an integer: the points broadcast against it.
    a[[1, -2], [3, 4], np.array(1)] = [7.0, 8.0]
    return [
        a[[2, -5], [2, -5], np.array(0)],
        a.oindex[[0, 7, 3], 2:8, [1]],
        a.oindex[:, mask, 2],
        a.oindex[[6, 6], mask, :],
        a.get_orthogonal_selection(([2, 4], slice(None), [0, 2])),
        a[...],
        a.get_basic_selection((slice(1, 4), 5)),
        attempt(lambda: a.oindex[[8], :, :]),
    ]


@script
def coordinate_and_mask_selections(zarr: ModuleType, path: Path) -> list[Any]:
    a = zarr.create_array(path / "a", shape=(7, 11), dtype="u2", chunks=(4, 4))
    a[...] = data((7, 11), "u2")
    a.vindex[[0, 6, 3], [10, 0, 5]] = [1, 2, 3]
    a.set_coordinate_selection(([1, 1], [1, 2]), 77)
    mask = np.zeros((7, 11), dtype=bool)
    mask[2, ::3] = True
    mask[5, 4] = True
    a.vindex[mask] = 500
    return [
        a.vindex[[0, 6, 3, 3], [10, 0, 5, 5]],
        a.vindex[np.array([[1, 2], [3, 4]]), 2],
        a.get_coordinate_selection(([6, 0], [9, 1])),
        a.vindex[mask],
        a.get_mask_selection(mask),
        a[...],
        attempt(lambda: a.vindex[[7], [0]]),
        attempt(lambda: a.vindex[[0, 1], [0, 1, 2]]),
        # Several arrays in a tuple are no mask of the array, even where they stack into one.
        attempt(lambda: a.get_mask_selection((mask[:, 0], mask[0]))),
        attempt(lambda: a.get_mask_selection(tuple(mask))),
    ]


@script
def block_selections(zarr: ModuleType, path: Path) -> list[Any]:
    a = zarr.create_array(path / "a", shape=(10, 10), dtype="i8", chunks=(4, 3))
    a[...] = data((10, 10), "i8")
    a.blocks[1, 2] = 0
    a.set_block_selection((2, slice(0, 2)), -5)
    return [
        a.blocks[0, 0],
        a.blocks[2, 3],
        a.blocks[1:],
        a.blocks[-1, -1],
        a.get_block_selection((slice(0, 2), 1)),
        a[...],
        attempt(lambda: a.blocks[3, 0]),
        a.blocks[..., 1],
        a.blocks[1, ...],
        attempt(lambda: a.blocks[..., 1, ...]),
        # A slice's start must name a block; its stop is clamped.
        a.blocks[2:10],
        a.blocks[:-10],
        a.blocks[2:1],
        attempt(lambda: a.blocks[3:]),
        attempt(lambda: a.blocks[5:10]),
        attempt(lambda: a.blocks[-5:]),
    ]


@script
def reads_into_out(zarr: ModuleType, path: Path) -> list[Any]:
    # zarr-python takes its NDBuffer as `out` (oxzarr numpy arrays too).
    from zarr.core.buffer import default_buffer_prototype

    def buffer(shape: tuple[int, ...], dtype: str = "i4") -> Any:
        return default_buffer_prototype().nd_buffer.create(shape=shape, dtype=np.dtype(dtype))

    a = zarr.create_array(path / "a", shape=(9, 10), dtype="i4", chunks=(4, 3), shards=(8, 6))
    a[...] = data((9, 10))
    results = []
    for method, selection, shape in [
        ("get_basic_selection", (slice(1, 8, 2), slice(None)), (4, 10)),
        ("get_orthogonal_selection", ([0, 8], [9, 1, 2]), (2, 3)),
        ("get_coordinate_selection", ([0, 8, 4], [9, 1, 2]), (3,)),
        ("get_block_selection", (1, 1), (1, 4)),
    ]:
        out = buffer(shape, "i8")
        got = getattr(a, method)(selection, out=out)
        results += [got, out.as_numpy_array()]
    results.append(a.get_basic_selection((2, 3), out=buffer(())))
    results.append(attempt(lambda: a.get_basic_selection(slice(0, 2), out=buffer((3, 10)))))
    return results


@script
def block_selections_of_shards(zarr: ModuleType, path: Path) -> list[Any]:
    # The blocks of a sharded array are its shards, the chunks of its grid.
    a = zarr.create_array(path / "s", shape=(10, 12), dtype="i4", chunks=(2, 3), shards=(4, 6))
    a[...] = data((10, 12))
    a.blocks[0, 1] = -1
    return [a.blocks[0, 0], a.blocks[2, 1], a[...]]


@script
def resize_and_append(zarr: ModuleType, path: Path) -> list[Any]:
    a = zarr.create_array(path / "a", shape=(5, 6), dtype="i4", chunks=(2, 4), fill_value=9)
    a[...] = data((5, 6))
    a.resize((8, 3))
    first = a[...]
    a.resize((8, 6))
    second = a[...]
    a.append(np.full((2, 6), 4, dtype="i4"))
    a.append(np.full((10, 1), 5, dtype="i4"), axis=1)
    reopened = zarr.open_array(path / "a", mode="r")
    return [first, second, a.shape, a[...], reopened.shape, reopened[...], a.nchunks_initialized]


@script
def attributes_and_metadata(zarr: ModuleType, path: Path) -> list[Any]:
    a = zarr.create_array(path / "a", shape=(3,), dtype="f4", attributes={"a": 1})
    a.attrs["b"] = [1, "x"]
    a.update_attributes({"c": {"d": None}})
    del a.attrs["a"]
    reopened = zarr.open_array(path / "a", mode="r")
    return [dict(a.attrs), dict(reopened.attrs), a.attrs.asdict(), a.path, a.name, a.basename]


@script
def metadata_shapes(zarr: ModuleType, path: Path) -> list[Any]:
    plain = zarr.create_array(path / "p", shape=(8, 6), dtype="i4", chunks=(4, 3))
    sharded = zarr.create_array(path / "s", shape=(8, 6), dtype="u2", chunks=(2, 3), shards=(4, 6))
    old = zarr.create_array(path / "v2", shape=(5,), dtype="f8", chunks=(2,), zarr_format=2)
    results: list[Any] = []
    for a in (plain, sharded, old):
        m = a.metadata
        results += [m.ndim, m.shards, getattr(m, "chunks", None)]
    for m in (plain.metadata, sharded.metadata):
        results.append([c.to_dict()["name"] for c in m.inner_codecs])
    return results


@script
def creation_functions(zarr: ModuleType, path: Path) -> list[Any]:
    z = zarr.zeros((4, 3), chunks=(2, 2), store=path / "z", dtype="i2")
    o = zarr.ones((5,), store=path / "o")
    f = zarr.full((2, 2), 7.5, store=path / "f", dtype="f4")
    e = zarr.empty((3,), store=path / "e", dtype="u1")
    arr = zarr.array(data((6, 4)), chunks=(3, 3), store=path / "arr")
    zl = zarr.zeros_like(arr, store=path / "zl")
    ol = zarr.ones_like(arr, store=path / "ol")
    fl = zarr.full_like(arr, fill_value=3, store=path / "fl")
    el = zarr.empty_like(arr, store=path / "el")
    fa = zarr.from_array(path / "fa", data=arr)
    return [
        z[...],
        z.dtype,
        o[...],
        o.dtype,
        f[...],
        e.shape,
        arr[...],
        arr.chunks,
        zl[...],
        zl.chunks,
        ol[...],
        fl[...],
        el.shape,
        el.dtype,
        fa[...],
        fa.chunks,
    ]


@script
def groups(zarr: ModuleType, path: Path) -> list[Any]:
    g = zarr.create_group(path / "g", attributes={"t": 1})
    g.create_array("x", shape=(2,), dtype="i4")[...] = [1, 2]
    sub = g.create_group("s")
    sub.create_array("y", shape=(1,), dtype="u1")
    g.require_group("r")
    opened = zarr.open_group(path / "g", mode="r")
    return [
        sorted(opened.keys()),
        sorted(n for n, _ in opened.arrays()),
        sorted(n for n, _ in opened.groups()),
        "s/y" in opened,
        "nope" in opened,
        len(opened),
        opened["x"][...],
        dict(opened.attrs),
        opened["s"]["y"].shape,
        attempt(lambda: opened["nope"]),
        isinstance(zarr.open(path / "g", mode="r"), zarr.Group),
        isinstance(zarr.open(path / "g/x", mode="r"), zarr.Array),
    ]


@script
def open_modes_and_errors(zarr: ModuleType, path: Path) -> list[Any]:
    results = [attempt(lambda: zarr.open_array(path / "missing", mode="r"))]
    a = zarr.open_array(path / "a", mode="w", shape=(3,), dtype="i4")
    a[...] = [1, 2, 3]
    results += [
        zarr.open_array(path / "a", mode="r")[...],
        zarr.open_array(path / "a", mode="r+")[...],
        attempt(lambda: zarr.open_array(path / "a", mode="w-", shape=(3,), dtype="i4")),
        attempt(lambda: zarr.open_group(path / "missing", mode="r")),
        attempt(lambda: zarr.create_array(path / "a", shape=(3,), dtype="i4")),
        zarr.open_array(path / "a", mode="w", shape=(2,), dtype="i4")[...],
        # No shape and no data: a ValueError.
        attempt(lambda: zarr.create_array(path / "b", dtype="i4")),
        attempt(lambda: zarr.open_group(path / "g", mode="w").create_array("x", dtype="i4")),
    ]
    return results


@script
def zero_dimensional_chunk_counts(zarr: ModuleType, path: Path) -> list[Any]:
    # A 0-d array's one chunk is "0" under v2 keys (as a 1-d array's first chunk is) and "c"
    # under default ones; written, it is initialized whichever names it.
    results = []
    for i, kwargs in enumerate(
        [
            {"zarr_format": 2},
            {"zarr_format": 3, "chunk_key_encoding": {"name": "v2", "separator": "."}},
            {"zarr_format": 3},
        ]
    ):
        a = zarr.create_array(path / str(i), shape=(), dtype="f8", **kwargs)
        results.append((a.nchunks, a.nchunks_initialized))
        a[...] = 5.0
        results += [(a.nchunks, a.nchunks_initialized), a[...]]
    return results


@script
def v2_arrays(zarr: ModuleType, path: Path) -> list[Any]:
    root = zarr.create_group(path / "g", zarr_format=2)
    a = root.create_array("a", shape=(6, 5), dtype="<f8", chunks=(4, 2))
    a[...] = data((6, 5), "f8")
    a.attrs["k"] = "v"
    s = root.create_array("s", shape=(4,), dtype=str, chunks=(3,))
    s[...] = ["a", "bb", "", "ccc"]
    f = root.create_array("f", shape=(3, 4), dtype="i2", chunks=(2, 3), order="F")
    f[...] = data((3, 4), "i2")
    g = zarr.open_group(path / "g", mode="r")
    return [
        a.order,
        g["f"].order,
        g["f"][...],
        a[...],
        a.metadata.zarr_format,
        dict(a.attrs),
        s[...].tolist(),
        sorted(g.keys()),
        g["a"].metadata.zarr_format,
        attempt(lambda: zarr.open_group(path, mode="r")),
    ]


@script
def formats_through_open(zarr: ModuleType, path: Path) -> list[Any]:
    # zarr_format reaches every path that creates a node, and a node of the other format is
    # not what was asked for.
    def listing(p: Path) -> list[str]:
        # zarr-python 3 also writes an empty .zattrs, which oxzarr leaves out.
        return sorted(f.name for f in p.iterdir() if f.name != ".zattrs")

    zarr.open_array(path / "a", mode="w", shape=(3,), dtype="i4", zarr_format=2)
    zarr.open_array(path / "b", mode="a", shape=(3,), dtype="i4", zarr_format=2)
    zarr.open(path / "c", mode="w", shape=(3,), dtype="i4", zarr_format=2)
    zarr.open(path / "d", mode="w", zarr_format=2)
    zarr.open(path / "e", mode="a", zarr_format=2)
    zarr.open(path / "f", mode="a", shape=(2,), dtype="u1", zarr_format=2)
    return [
        [listing(path / n) for n in "abcdef"],
        zarr.open_array(path / "a", mode="r", zarr_format=2).metadata.zarr_format,
        attempt(lambda: zarr.open_array(path / "a", mode="r", zarr_format=3)),
        attempt(lambda: zarr.open(path / "a", mode="r", zarr_format=3)),
        attempt(lambda: zarr.open_group(path / "d", mode="r", zarr_format=3)),
        attempt(lambda: zarr.open(path / "d", mode="r", zarr_format=3)),
    ]


@script
def advanced_indexing_in_brackets(zarr: ModuleType, path: Path) -> list[Any]:
    # A mask of the array's shape, or integer arrays for several dimensions, inside a[...]
    # select points, for reads and writes; one-element selections give numpy scalars except
    # for plain Python integers.
    a = zarr.create_array(path / "a", shape=(10, 8), dtype="i8", chunks=(3, 3))
    a[...] = data((10, 8), "i8")
    out = [a[a[...] % 3 == 0], a[[1, 2], [3, 4]], a[np.array([[1, 2], [3, 4]]), 0]]
    a[a[...] % 2 == 0] = 9
    a[[1, 3], [2, 4]] = 4
    out += [a[...], a[np.int64(1), 2], a[(1, 2)], a[1, ..., 2], a.get_basic_selection((1, 2))]
    out += [a.vindex[2, 3], attempt(lambda: a[[1, 2], :, [3]])]
    # With a boolean array among one index array per dimension, zarr-python selects
    # orthogonally (numpy would pair the true positions up), for reads and writes.
    rows, cols = np.arange(10) % 4 == 1, np.arange(8) % 3 == 0
    out += [a[rows, cols], a[[0, 9], cols], a[rows, np.array([7, 1])]]
    a[rows, cols] = -1
    a[[0, 9], cols] = -2
    out += [a[...]]
    s = zarr.create_array(path / "s", shape=(), dtype="f8")
    s[...] = 5.0
    return [*out, s[()], s[...]]


@script
def python_values_must_fit(zarr: ModuleType, path: Path) -> list[Any]:
    b = zarr.create_array(path / "b", shape=(2,), dtype="i1", fill_value=0)
    results = []
    for value in [300, [300, 1], float("nan"), -1, 1 + 2j, 2.7, np.array([300, 2])]:

        def write(value: Any = value) -> list[int]:
            b[...] = value
            return list(b[...].tolist())

        results.append(attempt(write))
    return results


@script
def group_conveniences(zarr: ModuleType, path: Path) -> list[Any]:
    g = zarr.open_group(path / "g", mode="w")
    g.create_group("a").create_array("b", shape=(2,), dtype="i4")
    g["c"] = np.arange(4, dtype="i8")
    g["c"] = np.arange(3.0)  # replaced
    g.require_groups("a", "z")
    kept = g.require_array("c", shape=(3,), dtype="f8")
    everything = g.members(max_depth=None)
    return [
        g["c"][...],
        sorted(name for name, _ in everything),
        g.nmembers(),
        g.nmembers(max_depth=None),
        sorted(a.path for a in g.array_values()),
        sorted(x.path for x in g.group_values()),
        str(g.tree(level=0)),
        str(g.tree()),
        str(g.tree(plain=True)),
        # Which members a truncated drawing keeps is the listing's order; how many it draws
        # and the note above them are zarr-python's.
        str(g.tree(max_nodes=2)).splitlines()[0],
        len(str(g.tree(max_nodes=2)).splitlines()),
        attempt(lambda: g.tree(expand=True)),
        kept.dtype,
        g.create_array("i", shape=(2,), dtype="i4").dtype,
        g.require_array("i", shape=(2,), dtype="i8").dtype,
        attempt(lambda: g.require_array("i", shape=(2,), dtype="i2")),
        attempt(lambda: g.require_array("i", shape=(2,), dtype="i8", exact=True)),
        list(g.require_group("a", overwrite=True).keys()),
    ]


@script
def resize_and_creation_modes(zarr: ModuleType, path: Path) -> list[Any]:
    a = zarr.zeros((4, 4), store=path / "z", dtype="i4", chunks=(2, 2))
    a[...] = 1
    a.resize(new_shape=(3, 5))
    b = zarr.ones((2,), store=path / "z", dtype="u1", mode="w")
    c = zarr.open_array(path / "c", mode="w", shape=(6,), dtype="i2", chunks=(2,))
    c[...] = np.arange(6)
    c.shape = (3,)
    return [
        a.shape,
        a[...],
        b[...],
        zarr.open_array(path / "z", mode="r").shape,
        c.shape,
        c[...],
        attempt(lambda: zarr.full((2,), 3, store=path / "z", dtype="i4", mode="w-")),
    ]


@script
def older_entry_points(zarr: ModuleType, path: Path) -> list[Any]:
    import json

    import numcodecs
    import zarr.codecs as zc

    def stored(p: Path, name: str) -> Any:
        return json.loads((p / name).read_text())

    a = zarr.create((10, 10), chunks=(5, 5), dtype="i4", store=path / "a", fill_value=3)
    b = zarr.create(
        100,
        chunks=True,
        dtype="f8",
        store=path / "b",
        zarr_format=2,
        compressor=numcodecs.Zlib(level=1),
        dimension_separator="/",
    )
    b[...] = np.arange(100.0)
    zarr.create((6,), dtype="u2", store=path / "c", codecs=[zc.BytesCodec(), zc.GzipCodec()])
    zarr.create((4,), dtype="i8", store=path / "d", chunks=False)
    zarr.save(path / "s", np.arange(5))
    zarr.save(path / "t", np.arange(3), x=np.ones(2))
    zarr.save(path / "t", y=np.ones(3))  # a group is replaced
    return [
        a[0, 0],
        a.chunks,
        b.chunks,
        stored(path / "b", ".zarray")["compressor"],
        stored(path / "b", ".zarray")["dimension_separator"],
        sorted(p.name for p in (path / "b").iterdir() if not p.name.startswith(".")),
        stored(path / "c", "zarr.json")["codecs"],
        stored(path / "d", "zarr.json")["chunk_grid"],
        zarr.load(path / "s"),
        sorted(zarr.open_group(path / "t", mode="r").keys()),
        attempt(lambda: zarr.create((2,), store=path / "a")),
        attempt(lambda: zarr.save_array(path / "s", np.arange(2.0))),
        sorted(zarr.open_group(path / "t", mode="r").keys()),
    ]


@script
def automatic_shards(zarr: ModuleType, path: Path) -> list[Any]:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zarr-python calls automatic shards experimental
        a = zarr.create_array(path / "a", shape=(100,), dtype="i4", chunks=(10,), shards="auto")
        b = zarr.create_array(path / "b", shape=(30, 50), dtype="u1", chunks=(10, 5), shards="auto")
    b[...] = data((30, 50), "u1")
    return [a.chunks, a.shards, b.chunks, b.shards, b[...]]


@script
def configuration(zarr: ModuleType, path: Path) -> list[Any]:
    # zarr-python's settings: default_zarr_format is honoured; the ones about its own
    # machinery are taken (code setting them runs) and read back.
    # (create_array alone keeps its own default of 3, in both.)
    with zarr.config.set({"default_zarr_format": 2, "async.concurrency": 4, "json_indent": 4}):
        made = [
            zarr.create_array(path / "a", shape=(2,), dtype="i4"),
            zarr.zeros((2,), store=path / "z"),
            zarr.array([1, 2], store=path / "q"),
            zarr.open_array(path / "o", mode="w", shape=(2,)),
            zarr.open(path / "p", mode="w", shape=(2,)),
            zarr.create((2,), store=path / "c"),
        ]
        g = zarr.open_group(path / "g", mode="w")
        inside = [zarr.config.get("async.concurrency"), zarr.config.get("json_indent")]
    b = zarr.create_array(path / "b", shape=(2,), dtype="i4")
    return [
        [a.metadata.zarr_format for a in made],
        getattr(g.metadata, "zarr_format", None) or g.metadata["zarr_format"],
        b.metadata.zarr_format,
        inside,
        zarr.config.get("async.concurrency"),
        zarr.config.get("default_zarr_format"),
    ]


@script
def copies_keep_settings(zarr: ModuleType, path: Path) -> list[Any]:
    # The *_like functions, array(Array) and from_array take a source Array's chunks and
    # codecs (none, here), dimension names and format; not its attributes. (oxzarr also keeps
    # a source's fill value and shard shape where zarr-python 3.1.6 drops them.)
    import json

    src = zarr.create_array(
        path / "s",
        shape=(6, 8),
        dtype="i2",
        chunks=(3, 4),
        compressors=None,
        fill_value=5,
        dimension_names=["y", "x"],
        attributes={"a": 1},
    )
    src[...] = data((6, 8), "i2")
    made = [
        zarr.zeros_like(src, store=path / "z"),
        zarr.ones_like(src, store=path / "o"),
        zarr.empty_like(src, store=path / "e"),
        zarr.full_like(src, fill_value=7, store=path / "f"),
        zarr.array(src, store=path / "a"),
        zarr.from_array(path / "fa", data=src),
    ]
    docs = [
        json.loads((path / n / "zarr.json").read_text()) for n in ["z", "o", "e", "f", "a", "fa"]
    ]
    v2 = zarr.create_array(
        path / "v2", shape=(4,), dtype="f4", chunks=(2,), zarr_format=2, order="F"
    )
    zarr.from_array(path / "v2c", data=v2)
    v2doc = json.loads((path / "v2c" / ".zarray").read_text())
    return [
        [m.chunks for m in made],
        [[c["name"] for c in d["codecs"]] for d in docs],
        [d["fill_value"] for d in docs[:4]],
        [d.get("dimension_names") for d in docs[4:]],
        [d.get("attributes") for d in docs[4:]],
        made[4][...],
        [v2doc["compressor"], v2doc["order"], v2doc["dimension_separator"]],
    ]


@script
def group_creation_helpers(zarr: ModuleType, path: Path) -> list[Any]:
    # (In a v2 group zarr-python 3.1.6 creates v3 arrays with these; oxzarr uses the
    # group's format, so the comparison is of a v3 group.)
    g = zarr.open_group(path / "g", mode="w")
    made = [
        g.zeros(name="z", shape=(3,), dtype="i4"),
        g.ones(name="o", shape=(2, 2), dtype="f4"),
        g.full(name="f", shape=(2,), fill_value=7, dtype="u1"),
        g.empty(name="e", shape=(2,), dtype="i2"),
        g.ones_like(name="ol", data=np.arange(4.0)),
        g.full_like(name="fl", data=np.arange(3), fill_value=2),
    ]
    made.append(g.empty_like(name="el", data=made[2]))
    made.append(g.zeros_like(name="zl", data=made[1]))
    return [
        [m[...] for m in made[:3]],
        [m[...] for m in made[4:6]],
        made[6].fill_value,
        [m.shape for m in made],
        sorted(g.keys()),
    ]


@script
def v2_fill_values(zarr: ModuleType, path: Path) -> list[Any]:
    # None is "no fill value" in v2 (stored as null), not the default; times then read NaT.
    results: list[Any] = []
    for i, dtype in enumerate(["i4", "f8", "M8[s]", "m8[ms]", "S3", "U2", "bool"]):
        for fill in ({}, {"fill_value": None}):
            a = zarr.create_array(
                path / f"{i}{len(fill)}", shape=(3,), dtype=dtype, zarr_format=2, **fill
            )
            stored = json.loads((path / f"{i}{len(fill)}" / ".zarray").read_text())
            results += [stored["fill_value"], a.fill_value, a[...]]
    b = zarr.create(shape=(2,), dtype="i2", fill_value=None, zarr_format=2, store=path / "b")
    c = zarr.from_array(path / "c", data=b)
    d = zarr.from_array(path / "d", data=b, zarr_format=3)
    # Without a fill value, zeros written read back as zeros (oxzarr stores them: see
    # test_api.py's test_v2_arrays_without_a_fill_value_store_every_chunk).
    e = zarr.create_array(
        path / "e", shape=(6,), chunks=(2,), dtype="f4", zarr_format=2, fill_value=None
    )
    e[...] = 0
    e[2:4] = [1, 2]
    f = zarr.create_array(path / "f", shape=(4,), chunks=(2,), dtype="u1", fill_value=7)
    g = zarr.from_array(path / "g", data=f, fill_value=None)
    return [
        *results,
        b.fill_value,
        c.fill_value,
        d.fill_value,
        d[...],
        e[...],
        g.fill_value,
    ]


@script
def simple_selections(zarr: ModuleType, path: Path) -> list[Any]:
    """Ints and slices take the engine's direct path; every other key, and every int
    outside the shape, must come out as through the general indexer."""
    keys: list[Any] = [
        (1, 2, 3),
        (-1, -4, -5),
        (0, 3, -1),
        (np.int64(1), 2, 3),
        (np.int32(-1), slice(None), np.uint8(2)),
        (np.int16(-4), 0, 0),
        (np.uint64(2**63), 0, 0),
        (np.int64(2), np.int8(-1), 4),
        np.int64(1),
        (np.bool_(True), 2, 3),
        (True, 2, 3),
        (3, 0, 0),
        (-4, 0, 0),
        (0, 0, 2**70),
        (0, 0, -(2**70)),
        (1, 2),
        (1, 2, 3, 4),
        (1, 2, 3.0),
        (slice(1, 3), 2),
        (slice(None, None, 2), slice(0, 4, 2), -1),
        (slice(-2, None), slice(1, 3), slice(0, 5, 3)),
        (slice(0, 0), 1, slice(None)),
        (slice(0, None, 2**70), slice(2, 3, 2**70), 4),
        (1, slice(None), 10),
        1,
        -3,
        slice(1, None),
        slice(5, 9),
        [0, 2],
        Ellipsis,
        (Ellipsis, 1),
        (),
    ]
    results: list[Any] = []
    for fmt, dtype in [(3, "<u2"), (2, ">i4"), (3, "f8"), (2, "S3")]:
        a = zarr.create_array(
            path / f"{fmt}{dtype}", shape=(3, 4, 5), dtype=dtype, chunks=(2, 3, 2), zarr_format=fmt
        )
        a[...] = data((3, 4, 5), dtype)
        results += [attempt(lambda a=a, key=key: a[key]) for key in keys]
    s = zarr.create_array(path / "s", shape=(2, 3), dtype=str, chunks=(1, 2))
    s[...] = np.array([["a", "bb", "ccc"], ["", "e", "ff"]])
    results += [attempt(lambda: s[1, -1]), attempt(lambda: s[0, 3])]
    z = zarr.create_array(path / "z", shape=(), dtype="i2")
    z[()] = 7
    results += [attempt(lambda: z[()]), attempt(lambda: z[...])]
    return results


def layout(values: Any) -> tuple[Any, bool, bool]:
    """Values with their memory layout: the config's order decides it."""
    return (values, bool(values.flags.f_contiguous), bool(values.flags.c_contiguous))


@script
def array_config(zarr: ModuleType, path: Path) -> list[Any]:
    """A v3 array's reads come in its config's order, a v2 array's in its stored order."""
    v3 = zarr.create_array(path / "v3", shape=(4, 6), chunks=(2, 3), dtype="i4")
    v3[...] = data((4, 6))
    v2 = zarr.create_array(
        path / "v2", shape=(4, 6), chunks=(2, 3), dtype="i4", zarr_format=2, order="F"
    )
    v2[...] = data((4, 6))
    results: list[Any] = []
    for a in (v3, v3.with_config({"order": "F"}), v2, v2.with_config({"order": "C"})):
        for key in (Ellipsis, (slice(1, 3), slice(None)), 1, (slice(None), 2), (2, 3)):
            results.append(layout(np.asarray(a[key])))
        results += [
            a.order,
            a.config.order,
            a.config.write_empty_chunks,
            layout(a.oindex[[0, 2], [1, 2, 4]]),
            layout(a.get_basic_selection((slice(0, 3), slice(1, 5)))),
            layout(np.asarray(a)),
        ]
    with zarr.config.set({"array.order": "F"}):
        made = zarr.create_array(path / "made_f", shape=(3, 2), dtype="u1")
        made_v2 = zarr.create_array(path / "made_v2_f", shape=(3, 2), dtype="u1", zarr_format=2)
    # The config's order is the array's from when it was made, not what is set later.
    results += [made.config.order, layout(made[...]), made_v2.order, layout(made_v2[...])]
    changed = made.with_config({"write_empty_chunks": True})
    results += [changed.config.write_empty_chunks, changed.config.order, made.config.order]
    results += [
        attempt(lambda: v3.with_config({"order": "K"})),
        attempt(lambda: v3.with_config({"bogus": 1})),
        attempt(lambda: v3.with_config({"write_empty_chunks": "yes"})),
        attempt(lambda: zarr.create_array(path / "k", shape=(2,), config={"order": "K"})),
    ]
    w = zarr.create_array(
        path / "w", shape=(4,), chunks=(2,), dtype="i4", config={"write_empty_chunks": True}
    )
    w[...] = 0
    results += [w.config.write_empty_chunks, w.nchunks_initialized]
    # zarr.open takes the config's order for the array it opens.
    results += [zarr.open(path / "v3", mode="r", config={"order": "F"}).config.order]
    skipping = w.with_config({"write_empty_chunks": False})
    skipping[...] = 0
    results += [skipping.config.write_empty_chunks, w.nchunks_initialized]
    return results


@script
def class_constructors(zarr: ModuleType, path: Path) -> list[Any]:
    """zarr-python's class methods that open and create: Group.open, Group.from_store,
    Array.open, and a group's create, array and synchronizer."""
    g = zarr.Group.from_store(str(path / "g"), attributes={"a": 1})
    results: list[Any] = [g.attrs.asdict(), type(g).__name__]
    results.append(attempt(lambda: zarr.Group.from_store(str(path / "g"))))
    g = zarr.Group.from_store(str(path / "g"), overwrite=True)
    results.append(g.attrs.asdict())
    a = g.create("a", shape=(3, 4), dtype="i2", chunks=(2, 2))
    a[...] = data((3, 4), "i2")
    results += [a.shape, a.chunks, g.synchronizer]
    results += [zarr.Group.open(str(path / "g")).attrs.asdict(), sorted(g.array_keys())]
    results.append(zarr.Array.open(str(path / "g" / "a"))[...])
    old = zarr.open_group(str(path / "old"), mode="w", zarr_format=2)
    old.create_array("x", shape=(2,), dtype="u1")
    results += [
        attempt(lambda: zarr.Group.open(str(path / "old"))),
        sorted(zarr.Group.open(str(path / "old"), zarr_format=None).array_keys()),
        sorted(zarr.Group.open(str(path / "old"), zarr_format=2).array_keys()),
        attempt(lambda: zarr.Array.open(str(path / "old" / "x"))),
        attempt(lambda: zarr.Array.open(str(path / "g"))),
        attempt(lambda: zarr.Group.open(str(path / "g" / "a"))),
        attempt(lambda: zarr.Group.open(str(path / "nothing"))),
    ]
    with pytest.warns(DeprecationWarning):
        made = g.array("b", shape=(5,), dtype="f4")
    results += [made.shape, made.dtype, sorted(g.array_keys())]
    # The deprecated Array.create: v3 unless asked, chunk_shape (v3) or chunks (v2).
    store = str(path / "created")
    with pytest.warns(DeprecationWarning):
        made = zarr.Array.create(store, shape=(6, 4), dtype="i2", chunk_shape=(4, 2), fill_value=3)
    results += [made.metadata.zarr_format, made.chunks, made[...], made.attrs.asdict()]
    with pytest.warns(DeprecationWarning):
        results.append(attempt(lambda: zarr.Array.create(store, shape=(2,), dtype="u1")))
    with pytest.warns(DeprecationWarning):
        old = zarr.Array.create(
            str(path / "created2"),
            shape=(5,),
            dtype="f4",
            zarr_format=2,
            chunks=(2,),
            attributes={"k": "v"},
            overwrite=True,
        )
    results += [old.metadata.zarr_format, old.chunks, old.attrs.asdict(), old[...]]
    return results


def raised(fn: Callable[[], Any]) -> str | None:
    """The name of the exception `fn` raised (both libraries name theirs alike), or None."""
    try:
        fn()
    except Exception as e:
        return type(e).__name__
    return None


@script
def hierarchies_from_metadata(zarr: ModuleType, path: Path) -> list[Any]:
    """create_hierarchy and Group.create_hierarchy, from zarr-python's metadata objects: the
    groups above the named nodes made, existing ones kept, conflicts refused, overwrites."""
    from zarr.core.group import GroupMetadata

    v3 = zarr_python.create_array({}, shape=(4, 5), chunks=(2, 2), dtype="i2", fill_value=7)
    v2 = zarr_python.create_array({}, shape=(3,), chunks=(2,), dtype="f4", zarr_format=2)
    store = zarr.storage.LocalStore(str(path / "h"))

    def summary(made: Any) -> list[Any]:
        return sorted(
            (key, type(node).__name__, node.attrs.asdict(), getattr(node, "shape", None))
            for key, node in made
        )

    nodes = {"/a/b": GroupMetadata(attributes={"x": 1}), "a/arr": v3.metadata}
    lazy = zarr.create_hierarchy(store=store, nodes=nodes)
    results: list[Any] = [attempt(lambda: zarr.open_group(store, mode="r"))]
    results.append(summary(lazy))
    results.append(zarr.open_array(store, path="a/arr")[...])
    results.append(raised(lambda: list(zarr.create_hierarchy(store=store, nodes=nodes))))
    results.append(
        raised(lambda: list(zarr.create_hierarchy(store=store, nodes={"a/arr": v3.metadata})))
    )
    # A new node below existing groups: only it is made; they are kept with their attributes.
    zarr.open_group(store, path="a").attrs["kept"] = True
    added = {"a/c": GroupMetadata(attributes={"y": 2})}
    results.append(summary(zarr.create_hierarchy(store=store, nodes=added)))
    results.append(zarr.open_group(store, path="a").attrs.asdict())
    # Overwritten: the array's chunks go with it.
    zarr.open_array(store, path="a/arr")[...] = 1
    again = {"a/arr": v3.metadata, "a/b": GroupMetadata()}
    results.append(summary(zarr.create_hierarchy(store=store, nodes=again, overwrite=True)))
    results.append(zarr.open_array(store, path="a/arr")[...])
    results.append(sorted(zarr.open_group(store, path="a").keys()))
    # Malformed hierarchies.
    mixed = {"p": GroupMetadata(zarr_format=2), "q": GroupMetadata()}
    results.append(attempt(lambda: list(zarr.create_hierarchy(store=store, nodes=mixed))))
    inside = {"arr": v3.metadata, "arr/x": GroupMetadata()}
    results.append(attempt(lambda: list(zarr.create_hierarchy(store=store, nodes=inside))))
    results.append(list(zarr.create_hierarchy(store=store, nodes={})))
    # Version 2, and a group's own method.
    old = zarr.storage.LocalStore(str(path / "v2"))
    made = zarr.create_hierarchy(store=old, nodes={"g/x": v2.metadata})
    results.append(summary(made))
    g = zarr.open_group(old, path="g")
    results.append(summary(g.create_hierarchy({"sub/y": v2.metadata})))
    results.append(sorted(zarr.open_group(old, path="g/sub").array_keys()))
    results.append(attempt(lambda: list(g.create_hierarchy({"": GroupMetadata(zarr_format=2)}))))
    results.append(attempt(lambda: list(g.create_hierarchy({"z": GroupMetadata()}))))
    return results


@script
def open_creates_with_the_older_keywords(zarr: ModuleType, path: Path) -> list[Any]:
    """zarr-python's open and open_array create through the older create(): code written for
    it passes compressor= and dimension_separator= (which oxzarr refused)."""
    import numcodecs

    a = zarr.open_array(
        path / "a", mode="w", shape=(4, 6), chunks=(2, 3), dtype="i2", zarr_format=2,
        compressor=numcodecs.Zlib(level=2), dimension_separator="/",
    )  # fmt: skip
    a[...] = data((4, 6), "i2")
    b = zarr.open(
        path / "b", mode="a", shape=(4, 4), chunks=(2, 2), dtype="f4", zarr_format=2,
        compressor=None, fill_value=1.5,
    )  # fmt: skip
    b[0] = 3
    c = zarr.open_array(
        path / "c", mode="w", shape=(6,), chunks=(3,), dtype="u1",
        codecs=[{"name": "bytes"}, {"name": "gzip", "configuration": {"level": 1}}],
    )  # fmt: skip
    c[1] = 4
    return [
        json.loads((path / "a" / ".zarray").read_text()),
        sorted(
            str(p.relative_to(path / "a"))
            for p in (path / "a").rglob("*")
            if p.is_file() and not p.name.startswith(".")
        ),
        a[...],
        json.loads((path / "b" / ".zarray").read_text()),
        b[...],
        json.loads((path / "c" / "zarr.json").read_text())["codecs"],
        c[...],
    ]


@pytest.mark.parametrize("name", list(SCRIPTS))
def test_same_results_as_zarr_python(tmp_path: Path, name: str) -> None:
    theirs = SCRIPTS[name](zarr_python, tmp_path / "zarr")
    ours = SCRIPTS[name](oxzarr, tmp_path / "oxzarr")
    assert len(ours) == len(theirs)
    for i, (o, t) in enumerate(zip(ours, theirs, strict=True)):
        assert normalize(o) == normalize(t), f"{name}, result {i}: oxzarr {o!r} != zarr {t!r}"
