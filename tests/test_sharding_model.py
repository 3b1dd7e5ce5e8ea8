"""Sharded arrays against a numpy model: random layouts (inner chunks, shards overhanging the
edge, compressed or not, the index at either end, with or without its checksum) and random
writes and reads of every kind (with the decoded-chunk cache on or off), each checked as it
goes; at the end, zarr-python reads the store, and exactly the inner chunks holding more than
the fill value are stored."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import zarr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import oxzarr
from oxzarr.codecs import ShardingCodec
from tests.conftest import assert_same

FILL = -1


@st.composite
def layouts(draw: st.DrawFn) -> dict[str, Any]:
    ndim = draw(st.integers(1, 3))
    inner = tuple(draw(st.integers(1, 4)) for _ in range(ndim))
    return {
        "shape": tuple(draw(st.integers(0, 14)) for _ in range(ndim)),
        "inner": inner,
        "shards": tuple(n * draw(st.integers(1, 3)) for n in inner),
        "compressed": draw(st.booleans()),
        "index_location": draw(st.sampled_from(["start", "end"])),
        "checksum": draw(st.booleans()),
        "chunk_cache_bytes": draw(st.sampled_from([0, 1 << 20])),
    }


def _orthogonal_key(draw: st.DrawFn, shape: tuple[int, ...]) -> tuple[Any, ...]:
    """Per dimension a slice, an int, sorted unique indices or a mask."""
    key: list[Any] = []
    for n in shape:
        kind = draw(st.sampled_from(["slice", "int", "array", "mask"] if n else ["slice"]))
        if kind == "slice":
            bound = st.one_of(st.none(), st.integers(-n - 1, n + 1))
            key.append(
                slice(draw(bound), draw(bound), draw(st.one_of(st.none(), st.integers(1, 3))))
            )
        elif kind == "int":
            key.append(draw(st.integers(-n, n - 1)))
        elif kind == "array":
            picked = draw(st.lists(st.integers(0, n - 1), max_size=5, unique=True))
            key.append(np.array(sorted(picked), dtype=int))
        else:
            key.append(np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool))
    return tuple(key)


def _axes(key: tuple[Any, ...], shape: tuple[int, ...]) -> list[np.ndarray]:
    """The indices an orthogonal key picks along each dimension."""
    axes = []
    for k, n in zip(key, shape, strict=True):
        if isinstance(k, np.ndarray):
            axes.append(np.flatnonzero(k) if k.dtype == bool else k)
        else:
            axes.append(np.atleast_1d(np.arange(n)[k]))
    return axes


def _orthogonal(model: np.ndarray, key: tuple[Any, ...]) -> np.ndarray:
    out = model[np.ix_(*_axes(key, model.shape))]
    drop = tuple(d for d, k in enumerate(key) if isinstance(k, int))
    return out.reshape([n for d, n in enumerate(out.shape) if d not in drop])


def _points(draw: st.DrawFn, shape: tuple[int, ...]) -> tuple[np.ndarray, ...]:
    """Random points, repeats included: few, or enough to fill runs of inner chunks."""
    n = draw(st.sampled_from([1, 5, 60, 300]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    return tuple(rng.integers(0, m, n) for m in shape)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(layout=layouts(), data=st.data())
def test_sharded_arrays_behave_as_numpy(
    tmp_path_factory: pytest.TempPathFactory, layout: dict[str, Any], data: Any
) -> None:
    with oxzarr.config.set({"chunk_cache_bytes": layout["chunk_cache_bytes"]}):
        _check_against_numpy(tmp_path_factory, layout, data)


def _check_against_numpy(
    tmp_path_factory: pytest.TempPathFactory, layout: dict[str, Any], data: Any
) -> None:
    shape = layout["shape"]
    little = {"name": "bytes", "configuration": {"endian": "little"}}
    codecs: list[Any] = [little]
    if layout["compressed"]:
        codecs.append({"name": "zstd", "configuration": {"level": 1, "checksum": False}})
    index_codecs: list[Any] = [little] + ([{"name": "crc32c"}] if layout["checksum"] else [])
    path = tmp_path_factory.mktemp("model") / "a.zarr"
    a = oxzarr.create_array(
        path,
        shape=shape,
        dtype="i2",
        chunks=layout["shards"],
        fill_value=FILL,
        compressors=None,
        serializer=ShardingCodec(
            chunk_shape=layout["inner"],
            codecs=codecs,
            index_codecs=index_codecs,
            index_location=layout["index_location"],
        ),
    )
    model = np.full(shape, FILL, dtype="i2")
    empty = any(n == 0 for n in shape)
    for step in range(data.draw(st.integers(1, 6))):
        kind = data.draw(st.sampled_from(["box", "fill", "orthogonal", "points", "mask"]))
        if kind in ("box", "fill"):
            key = tuple(
                slice(
                    data.draw(st.integers(0, n)),
                    data.draw(st.integers(0, n)),
                    data.draw(st.integers(1, 3)),
                )
                for n in shape
            )
            n_values = model[key].size
            values = (
                np.arange(n_values, dtype="i2") + 100 * step
                if kind == "box"
                else np.full(n_values, FILL, "i2")
            )
            a[key] = values.reshape(model[key].shape)
            model[key] = values.reshape(model[key].shape)
        elif kind == "orthogonal":
            key = _orthogonal_key(data.draw, shape)
            region = model[np.ix_(*_axes(key, shape))]
            values = (np.arange(region.size, dtype="i2") * 3 + step).reshape(
                _orthogonal(model, key).shape
            )
            a.oindex[key] = values
            model[np.ix_(*_axes(key, shape))] = values.reshape(region.shape)
        elif kind == "points" and not empty:
            points = _points(data.draw, shape)
            values = np.arange(points[0].size, dtype="i2") - step
            a.vindex[points] = values
            model[points] = values  # a repeated point takes its last value, as in numpy
        elif kind == "mask":
            mask = np.array(
                data.draw(st.lists(st.booleans(), min_size=model.size, max_size=model.size)),
                dtype=bool,
            )
            a[mask.reshape(shape)] = 7
            model[mask.reshape(shape)] = 7
        assert_same(a[...], model)
        key = _orthogonal_key(data.draw, shape)
        assert_same(a.oindex[key], _orthogonal(model, key))
        if not empty:
            points = _points(data.draw, shape)
            assert_same(a.vindex[points], model[points])
    assert_same(zarr.open_array(path, mode="r")[...], model)
    # Exactly the inner chunks holding more than the fill value are stored.
    grid = [-(-n // c) for n, c in zip(shape, layout["inner"], strict=True)]
    held = sum(
        bool(
            (
                model[
                    tuple(
                        slice(i * c, (i + 1) * c) for i, c in zip(ix, layout["inner"], strict=True)
                    )
                ]
                != FILL
            ).any()
        )
        for ix in np.ndindex(*grid)
    )
    assert oxzarr.open_array(path, mode="r").nchunks_initialized == held
