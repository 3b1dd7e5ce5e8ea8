"""Round trips: every data type through every codec, and random selections against numpy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import oxzarr
from oxzarr._indexing import indexer, simple_indexer
from oxzarr.codecs import (
    BloscCodec,
    BytesCodec,
    Crc32cCodec,
    GzipCodec,
    TransposeCodec,
    ZstdCodec,
)
from tests.conftest import DTYPES, assert_same, sample

#: (filters, serializer, compressors) chains covering every codec and option.
CHAINS: dict[str, dict[str, Any]] = {
    "raw": {"compressors": None},
    "big-endian": {"serializer": BytesCodec(endian="big"), "compressors": None},
    "transpose": {"filters": [TransposeCodec(order=(1, 0))], "compressors": None},
    "zstd": {"compressors": ZstdCodec(level=3, checksum=True)},
    "zstd-negative": {"compressors": ZstdCodec(level=-5)},
    "gzip": {"compressors": GzipCodec(level=6)},
    "crc32c": {"compressors": Crc32cCodec()},
    **{
        f"blosc-{cname}-{shuffle}": {
            "compressors": BloscCodec(cname=cname, clevel=5, shuffle=shuffle),  # type: ignore[arg-type]
        }
        for cname in ["blosclz", "lz4", "lz4hc", "zlib", "zstd"]
        for shuffle in ["noshuffle", "shuffle", "bitshuffle"]
    },
    "long-chain": {
        "filters": [TransposeCodec(order=(1, 0)), TransposeCodec(order=(1, 0))],
        "serializer": BytesCodec(endian="big"),
        "compressors": [
            BloscCodec(cname="lz4", shuffle="bitshuffle"),
            ZstdCodec(level=1),
            GzipCodec(level=1),
            Crc32cCodec(),
        ],
    },
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("chain", list(CHAINS))
def test_every_dtype_through_every_codec(tmp_path: Path, dtype: str, chain: str) -> None:
    data = sample((13, 9), dtype)
    p = tmp_path / "a.zarr"
    a = oxzarr.create_array(p, shape=data.shape, dtype=dtype, chunks=(5, 4), **CHAINS[chain])
    a[...] = data
    assert_same(oxzarr.open_array(p, mode="r")[...], data)
    # A part of it, touching edge chunks.
    assert_same(a[3:13, 2:9:3], data[3:13, 2:9:3])


@st.composite
def array_and_selection(draw: st.DrawFn) -> tuple[tuple[int, ...], tuple[int, ...], Any]:
    ndim = draw(st.integers(1, 3))
    shape = tuple(draw(st.integers(0, 12)) for _ in range(ndim))
    chunks = tuple(draw(st.integers(1, 6)) for _ in range(ndim))
    key: list[Any] = []
    for n in shape:
        kind = draw(st.sampled_from(["slice", "int", "array", "mask", "all"] if n else ["slice"]))
        if kind == "slice":
            start = draw(st.one_of(st.none(), st.integers(-n - 2, n + 2)))
            stop = draw(st.one_of(st.none(), st.integers(-n - 2, n + 2)))
            step = draw(st.one_of(st.none(), st.integers(-4, 4).filter(lambda s: s != 0)))
            key.append(slice(start, stop, step))
        elif kind == "int":
            key.append(draw(st.integers(-n, n - 1)))
        elif kind == "array":
            key.append(np.array(draw(st.lists(st.integers(-n, n - 1), max_size=6)), dtype=int))
        elif kind == "mask":
            key.append(np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n))))
        else:
            key.append(Ellipsis if not any(k is Ellipsis for k in key) else slice(None))
    if draw(st.booleans()):
        key.insert(draw(st.integers(0, len(key))), None)
    return shape, chunks, tuple(key)


def _numpy_orthogonal(data: np.ndarray, key: tuple[Any, ...]) -> np.ndarray:
    """numpy's answer for an orthogonal selection: apply index arrays one axis at a time."""
    out = data
    axis = 0
    basic: list[Any] = []
    arrays: list[tuple[int, Any]] = []
    real = [k for k in key if k is not None and k is not Ellipsis]
    for k in key:
        if k is Ellipsis:
            n = data.ndim - len(real)
            basic.extend([slice(None)] * n)
            axis += n
        elif k is None:
            basic.append(None)
        elif isinstance(k, np.ndarray):
            arrays.append((axis, k))
            basic.append(slice(None))
            axis += 1
        else:
            basic.append(k)
            axis += 1
    for ax, k in arrays:
        out = np.take(out, np.flatnonzero(k) if k.dtype == bool else k, axis=ax)
    return out[tuple(basic)]


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=array_and_selection(), store_kind=st.sampled_from(["memory", "local"]))
def test_random_selections_match_numpy(
    tmp_path_factory: pytest.TempPathFactory, case: Any, store_kind: str
) -> None:
    shape, chunks, key = case
    data = sample(shape, "i4", seed=1)
    store = (
        oxzarr.storage.MemoryStore()
        if store_kind == "memory"
        else tmp_path_factory.mktemp("h") / "a.zarr"
    )
    a = oxzarr.create_array(store, shape=shape, dtype="i4", chunks=chunks, fill_value=-1)
    a[...] = data
    expected = _numpy_orthogonal(data, key)
    assert_same(a.oindex[key], expected)
    arrays = sum(isinstance(k, np.ndarray) for k in key)
    if arrays > 1:
        return
    # One index array selects orthogonally, as in zarr-python. numpy agrees except when
    # integers and the array are apart (it then moves the array's axis first).
    assert_same(a[key], expected)
    advanced = [i for i, k in enumerate(key) if isinstance(k, int | np.ndarray)]
    if arrays and advanced != list(range(advanced[0], advanced[-1] + 1)):
        return
    assert_same(a[key], data[key])
    # Writing the same selection matches numpy's assignment; repeated indices keep the
    # last value, as in numpy.
    model = data.copy()
    values = (np.arange(expected.size, dtype="i4") + 1000).reshape(expected.shape)
    model[key] = values
    a[key] = values
    assert_same(a[...], model)


@settings(max_examples=60, deadline=None)
@given(
    shape=st.lists(st.integers(1, 9), min_size=1, max_size=3).map(tuple),
    density=st.sampled_from([0.0, 0.02, 0.3, 0.9, 1.0]),
    dtype=st.sampled_from(["u2", ">f8", "U3", "[('a', 'i1'), ('b', '>f4')]"]),
    seed=st.integers(0, 100),
)
def test_mask_reads_match_numpy_sparse_or_dense(
    shape: tuple[int, ...], density: float, dtype: str, seed: int
) -> None:
    # A mask whose true elements are dense enough is read as the region they span, then
    # masked (see _dense_mask_box); a sparse one point by point. Both give numpy's values.
    rng = np.random.default_rng(seed)
    numpy_dtype = np.dtype(eval(dtype) if dtype.startswith("[") else dtype)
    data = rng.integers(0, 100, size=shape).astype(numpy_dtype)
    mask = rng.random(shape) < density
    a = oxzarr.create_array(
        oxzarr.storage.MemoryStore(), shape=shape, dtype=numpy_dtype, chunks=(2,) * len(shape)
    )
    a[...] = data
    expected = data[mask].astype(a.dtype)  # (a v3 array's dtype is in native order)
    assert_same(a.vindex[mask], expected)
    assert_same(a.get_mask_selection(mask), expected)
    assert_same(a.get_coordinate_selection(np.nonzero(mask)), expected)


_BOUND = st.none() | st.integers(-25, 25)


@settings(max_examples=400, deadline=None)
@given(
    shape=st.lists(st.integers(0, 20), min_size=0, max_size=3).map(tuple),
    data=st.data(),
)
def test_the_fast_selection_path_agrees_with_the_general_one(shape: Any, data: Any) -> None:
    key = tuple(
        data.draw(
            st.integers(-25, 25)
            | st.builds(slice, _BOUND, _BOUND, st.none() | st.integers(-4, 4).filter(bool))
        )
        for _ in shape
    )
    fast = simple_indexer(key, shape)
    try:
        general = indexer(key, shape)
    except IndexError:
        assert fast is None  # an out-of-bounds integer is left to the general path's error
        return
    assert fast == general


@settings(max_examples=150, deadline=None)
@given(
    shape=st.lists(st.integers(0, 12), min_size=1, max_size=3).map(tuple),
    chunk=st.integers(1, 5),
    data=st.data(),
)
def test_the_engine_reads_ints_and_slices_as_numpy_does(
    shape: tuple[int, ...], chunk: int, data: Any
) -> None:
    """The engine's direct read (`read_simple`) gives numpy's values and shape for every key
    of ints and slices it takes, and takes every such key inside the shape (a bare one, or a
    tuple leaving dimensions out); an int outside it is left to the general indexer."""
    item = st.integers(-15, 15) | st.builds(
        slice, _BOUND, _BOUND, st.none() | st.integers(-4, 4).filter(bool) | st.just(2**70)
    )
    ndim = data.draw(st.integers(1, len(shape)))
    key: Any = tuple(data.draw(item) for _ in range(ndim))
    if ndim == 1 and data.draw(st.booleans()):
        key = key[0]
    model = sample(shape, "i4", seed=3).astype(">i4")
    a = oxzarr.create_array(
        oxzarr.storage.MemoryStore(),
        shape=shape,
        dtype=">i4",
        chunks=(chunk,) * len(shape),
        zarr_format=2,
    )
    a[...] = model
    got = a._core.read_simple(key, model.dtype.newbyteorder("="))
    try:
        expected = np.asarray(model[key]).astype(model.dtype)
    except IndexError:
        assert got is None
        return
    assert got is not None
    assert got.shape == expected.shape
    assert np.array_equal(got, expected)
    assert_same(a[key], expected)
    # The selection methods give the same for such keys (through the same direct read), each
    # with its own result type: one element from get_basic_selection is a numpy scalar.
    basic = a.get_basic_selection(key)
    if expected.ndim:
        assert_same(basic, expected)
    else:
        assert isinstance(basic, np.generic) and basic == expected[()]
    assert_same(a.get_orthogonal_selection(key), expected)
    assert_same(a.oindex[key], expected)


@pytest.mark.parametrize("compressed", [True, False], ids=["zstd", "uncompressed"])
@settings(max_examples=60, deadline=None)
@given(
    shape=st.tuples(st.integers(1, 20), st.integers(1, 20)),
    chunks=st.tuples(st.integers(1, 7), st.integers(1, 7)),
    writes=st.lists(
        st.tuples(st.integers(0, 19), st.integers(1, 20), st.integers(0, 19), st.integers(1, 20)),
        max_size=6,
    ),
)
def test_partial_writes_read_modify_write(
    compressed: bool,
    shape: tuple[int, int],
    chunks: tuple[int, int],
    writes: list[tuple[int, int, int, int]],
) -> None:
    a = oxzarr.create_array(
        oxzarr.storage.MemoryStore(),
        shape=shape,
        dtype="f4",
        chunks=chunks,
        fill_value=np.nan,
        compressors=ZstdCodec(level=1) if compressed else None,
    )
    model = np.full(shape, np.nan, dtype="f4")
    for i, (r0, rn, c0, cn) in enumerate(writes):
        box = (slice(r0, r0 + rn), slice(c0, c0 + cn))
        model[box] = i
        a[box] = i
        assert_same(a[...], model)


@pytest.mark.parametrize("dtype", ["u1", "i2", "f4", "c16", "V3"])
@pytest.mark.parametrize("sharded", [False, True], ids=["chunks", "shards"])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fortran_ordered_values_into_a_c_ordered_array(
    dtype: str, sharded: bool, data: Any
) -> None:
    # F-order values (a transpose, say) are taken from where they lie as each chunk is
    # written, not copied into C order first: every selection the engine writes (slices with
    # steps, dropped dimensions, edge chunks, whole and partial chunks) reads back as numpy's.
    ndim = data.draw(st.integers(2, 4))
    shape = tuple(data.draw(st.lists(st.integers(1, 9), min_size=ndim, max_size=ndim)))
    chunks = tuple(data.draw(st.integers(1, n)) for n in shape)
    a = oxzarr.create_array(
        oxzarr.storage.MemoryStore(),
        shape=shape,
        dtype=dtype,
        chunks=chunks,
        shards=tuple(2 * c for c in chunks) if sharded else None,
        compressors=None,
    )
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    model = np.zeros(shape, dtype=dtype)
    for _ in range(3):
        key: list[Any] = []
        for n in shape:
            if data.draw(st.booleans()) and n > 1:
                key.append(data.draw(st.integers(0, n - 1)))
            else:
                start = data.draw(st.integers(0, n - 1))
                key.append(
                    slice(start, data.draw(st.integers(start + 1, n)), data.draw(st.integers(1, 3)))
                )
        target = model[tuple(key)]
        size = np.dtype(dtype).itemsize
        raw = rng.integers(0, 256, size=(*target.shape, size), dtype="u1")
        # (np.asfortranarray would make a 0-d value 1-d.)
        values = np.array(raw.view(dtype).reshape(target.shape), order="F")
        model[tuple(key)] = values
        a[tuple(key)] = values
        assert_same(a[...], model)


def test_broadcasting_and_scalars(tmp_path: Path) -> None:
    a = oxzarr.create_array(tmp_path / "a.zarr", shape=(4, 5), dtype="i8", chunks=(3, 2))
    a[...] = 3
    a[1] = np.arange(5)
    a[:, 0] = [9, 9, 9, 9]
    expected = np.full((4, 5), 3)
    expected[1] = np.arange(5)
    expected[:, 0] = 9
    assert_same(a[...], expected)
    value = a[2, 3]
    assert isinstance(value, np.ndarray) and value.shape == () and value == 3
    with pytest.raises(ValueError, match="broadcast"):
        a[:2, :2] = np.zeros((3, 3))
    a[0, 0] = 2.7  # cast as numpy does
    assert a[0, 0] == 2


@pytest.mark.parametrize("dtype", ["i4", "f8", str])
def test_values_with_leading_dimensions_of_length_1_broadcast_as_numpy(
    tmp_path: Path, dtype: Any
) -> None:
    # numpy's assignment drops them; a value already in the array's dtype (and every value
    # of a string array) took another path, which refused it.
    model = np.zeros((4, 5), dtype=dtype)
    a = oxzarr.create_array(tmp_path / "a", shape=(4, 5), chunks=(2, 2), dtype=dtype)
    a[...] = model
    writes = [
        ((slice(0, 2), slice(0, 2)), (1, 1, 2, 2)),
        ((0, slice(None)), (1, 5)),
        ((slice(None), 1), (1, 1, 4)),
    ]
    for i, (where, shape) in enumerate(writes):
        value = np.arange(i, i + np.prod(shape)).reshape(shape).astype(model.dtype)
        model[where] = value
        a[where] = value
    points = ([0, 1], [3, 4])
    model[points] = np.array([[7, 8]]).astype(model.dtype)
    a.vindex[points] = np.array([[7, 8]]).astype(model.dtype)
    assert_same(a[...].astype(model.dtype), model)  # str arrays read as StringDType
    with pytest.raises(ValueError, match=r"from shape \(2, 5\) into shape \(5,\)"):
        a[0] = np.zeros((2, 5), dtype=model.dtype)


def test_a_matrix_of_the_arrays_dtype_is_written_as_numpy_assigns_it(tmp_path: Path) -> None:
    # A value of the array's own dtype skips the cast and is broadcast by reshaping it, which
    # leaves an np.matrix 2-d: a (1, 6) matrix was refused for a (6,) selection ("could not
    # broadcast"), while numpy (and oxzarr, for a matrix of another dtype) takes it.
    with pytest.warns(PendingDeprecationWarning, match="matrix subclass"):
        row = np.matrix(np.arange(6, dtype="i4"))
    a = oxzarr.create_array(tmp_path / "a", shape=(6,), dtype="i4", chunks=(3,))
    a[...] = row
    assert_same(a[...], np.arange(6, dtype="i4"))
    a.vindex[[5, 4, 3, 2, 1, 0],] = row
    assert_same(a[...], np.arange(6, dtype="i4")[::-1])
    b = oxzarr.create_array(tmp_path / "b", shape=(2, 6), dtype="i4", chunks=(1, 3))
    b[0] = row
    model = np.zeros((2, 6), dtype="i4")
    model[0] = row
    assert_same(b[...], model)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"compressors": None},
        {"compressors": ZstdCodec(level=1)},
        {"compressors": None, "shards": (128, 128, 128)},
        {"compressors": None, "chunk_cache": True},
    ],
    ids=["raw", "zstd", "sharded", "cached"],
)
def test_reads_past_the_cache_size(tmp_path: Path, kwargs: dict[str, Any]) -> None:
    """Outputs of 32 MiB and more are written with streaming stores (rows of chunks go
    straight to memory): every alignment of rows and both row copies must still be exact."""
    kwargs = dict(kwargs)
    cached = kwargs.pop("chunk_cache", False)
    shape = (192, 256, 384)  # 36 MiB of uint16
    data = sample(shape, "u2")
    a = oxzarr.create_array(
        tmp_path / "big.zarr", shape=shape, dtype="u2", chunks=(64, 64, 64), **kwargs
    )
    a[...] = data
    with oxzarr.config.set({"chunk_cache_bytes": 64 << 20 if cached else 0}):
        for _ in range(2 if cached else 1):
            assert_same(a[...], data)
            # Rows of 118 bytes at odd offsets in the output; a reversed last dimension (rows
            # of one element); the output still over 32 MiB.
            assert_same(a[1:, 3:, 5:-1], data[1:, 3:, 5:-1])
            assert_same(a[:, :, ::-1], data[:, :, ::-1])
