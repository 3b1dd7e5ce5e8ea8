"""zarr-python's keywords of the selection methods: `out=` (read into the caller's array,
numpy's or zarr-python's NDBuffer) and `fields=` (fields of record dtypes, also as strings in
the key: ``a["x", 0:2]``)."""

from __future__ import annotations

import importlib
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from zarr.core.buffer import default_buffer_prototype

import oxzarr
from oxzarr.errors import BoundsCheckError
from tests.conftest import assert_same, read_overlapping_tiles, run_together, sample

LAYOUTS = {"chunks": {"chunks": (4, 6)}, "shards": {"chunks": (2, 3), "shards": (4, 6)}}


@pytest.fixture(params=list(LAYOUTS))
def stored(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[oxzarr.Array, np.ndarray]:
    data = sample((10, 13), "f8")
    a = oxzarr.create_array(
        tmp_path / "a.zarr", shape=data.shape, dtype="f8", **LAYOUTS[request.param]
    )
    a[...] = data
    return a, data


def _selections(shape: tuple[int, ...]) -> list[tuple[str, Any, Any]]:
    """(method, selection, what numpy makes of it) for each selection method."""
    rows, cols = np.array([0, 9, 3, 3]), np.array([12, 0, 5, 6])
    mask = np.zeros(shape, bool)
    mask[2:5, 7] = mask[9, 0] = True
    return [
        ("get_basic_selection", (slice(1, 9, 3), slice(None, None, -2)), np.s_[1:9:3, ::-2]),
        ("get_orthogonal_selection", ([0, 4, 9], slice(2, 7)), np.ix_([0, 4, 9], range(2, 7))),
        ("get_coordinate_selection", (rows, cols), (rows, cols)),
        ("get_mask_selection", mask, mask),
        ("get_block_selection", (1, slice(0, 2)), np.s_[4:8, 0:12]),
    ]


def test_out_is_filled_and_returned(stored: tuple[oxzarr.Array, np.ndarray]) -> None:
    a, data = stored
    for method, selection, want in _selections(a.shape):
        expected = data[want]
        # Of the array's dtype and contiguous: the engine reads straight into it.
        out = np.full(expected.shape, -1.0)
        assert getattr(a, method)(selection, out=out) is out, method
        assert_same(out, expected)
        # zarr-python's buffer: the result is the numpy array behind it.
        buffer = default_buffer_prototype().nd_buffer.create(
            shape=expected.shape, dtype=np.dtype("f8")
        )
        got = getattr(a, method)(selection, out=buffer, prototype=default_buffer_prototype())
        assert got is buffer.as_ndarray_like()
        assert_same(buffer.as_numpy_array(), expected)
        # Another dtype, or a strided view: filled as numpy's assignment fills it.
        cast = np.zeros(expected.shape, "f4")
        assert getattr(a, method)(selection, out=cast) is cast
        assert_same(cast, expected.astype("f4"))
        host = np.zeros((*expected.shape, 2))
        view = host[..., 1]
        assert getattr(a, method)(selection, out=view) is view
        assert_same(host[..., 1], expected)
        assert not host[..., 0].any()


def test_out_of_one_element(stored: tuple[oxzarr.Array, np.ndarray]) -> None:
    a, data = stored
    out = np.zeros(())
    value = a.get_basic_selection((3, 4), out=out)
    # As zarr-python: one element is a numpy scalar, and `out` holds it too.
    assert isinstance(value, np.float64) and value == data[3, 4] and out[()] == data[3, 4]


def test_out_of_a_byte_swapped_array(tmp_path: Path) -> None:
    # A v2 array stored big-endian reports that dtype; `out` of either byte order is filled.
    data = sample((6, 7), "i4").astype(">i4")
    a = oxzarr.create_array(
        tmp_path / "a.zarr", shape=(6, 7), dtype=">i4", chunks=(4, 4), zarr_format=2
    )
    a[...] = data
    assert a.dtype == np.dtype(">i4")
    for dtype in [">i4", "<i4", "i8"]:
        out = np.zeros((2, 7), dtype)
        assert a.get_basic_selection(slice(1, 3), out=out) is out
        assert (out == data[1:3]).all(), dtype


def test_bad_out(stored: tuple[oxzarr.Array, np.ndarray]) -> None:
    a, _ = stored
    with pytest.raises(ValueError, match=r"Expected \(2, 13\), got \(3, 13\)"):
        a.get_basic_selection(slice(0, 2), out=np.empty((3, 13)))
    frozen = np.empty((2, 13))
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        a.get_orthogonal_selection((slice(0, 2), slice(None)), out=frozen)
    with pytest.raises(TypeError, match="list"):
        a.get_basic_selection(slice(0, 2), out=[[0.0] * 13] * 2)


def test_a_read_into_out_allocates_no_array(tmp_path: Path) -> None:
    a = oxzarr.create_array(tmp_path / "a.zarr", shape=(1024, 1024), dtype="f8", chunks=(256, 256))
    a[...] = 1.5
    out = np.empty((1024, 1024))  # 8 MiB
    tracemalloc.start()
    try:
        a.get_basic_selection(Ellipsis, out=out)
        a.get_coordinate_selection((np.arange(1024), np.arange(1024)), out=out[0])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (out == 1.5).all()
    # numpy reports its allocations to tracemalloc: an output array would be 8 MiB. The index
    # arrays of the coordinate selection are 8 KiB each.
    assert peak < 256 << 10, peak


RECORD = np.dtype([("x", "<i4"), ("y", "<f8"), ("z", "u1")])


def two_of(data: np.ndarray, *names: str) -> np.dtype:
    """The packed dtype of `names` of `data`'s records."""
    return np.dtype([(n, data.dtype[n]) for n in names])


def _records(shape: tuple[int, ...]) -> np.ndarray:
    rng = np.random.default_rng(3)
    values = np.zeros(shape, RECORD)
    values["x"] = rng.integers(-100, 100, shape)
    values["y"] = rng.random(shape)
    values["z"] = rng.integers(0, 255, shape)
    return values


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_fields_read_as_numpy_selects_them(tmp_path: Path, zarr_format: int) -> None:
    data = _records((9, 7))
    a = oxzarr.create_array(
        tmp_path / "a.zarr",
        shape=data.shape,
        dtype=data.dtype,
        chunks=(4, 3),
        zarr_format=zarr_format,
    )
    a[...] = data
    assert_same(a["x"], data["x"])
    assert_same(a["y", 2:5], data["y"][2:5])
    assert_same(a[1:3, "z", ::2], data["z"][1:3, ::2])
    two = a["z", "x", 4]
    assert two.dtype == np.dtype([("z", "u1"), ("x", "<i4")])  # packed, in the order asked
    assert two.tolist() == data[["z", "x"]][4].tolist()
    listed = a[["z", "x"]]  # numpy's multi-field index
    assert listed.dtype == two.dtype and listed.tolist() == data[["z", "x"]].tolist()
    assert_same(a.get_basic_selection(slice(0, 2), fields="x"), data["x"][0:2])
    assert_same(a.oindex["x", [0, 8], [1, 6]], data["x"][np.ix_([0, 8], [1, 6])])
    assert_same(a.vindex["y", [0, 8], [1, 6]], data["y"][[0, 8], [1, 6]])
    mask = data["x"] > 50
    assert_same(a.vindex["x", mask], data["x"][mask])
    # Points and masks in brackets, as numpy takes them.
    assert_same(a["x", [0, 8], [1, 6]], data["x"][[0, 8], [1, 6]])
    assert_same(a["y", "z", mask], data[["y", "z"]][mask].astype(two_of(data, "y", "z")))
    assert_same(a.get_block_selection((1, 1), fields="z"), data["z"][4:8, 3:6])
    assert_same(a.get_basic_selection((1, 1), fields=[]), data[1, 1])  # no fields: records
    out = np.empty((2, 7), "i8")
    assert a.get_basic_selection(slice(3, 5), out=out, fields="x") is out
    assert_same(out, data["x"][3:5].astype("i8"))


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_fields_write_leaves_the_other_fields(tmp_path: Path, layout: str) -> None:
    data = _records((10, 13))
    a = oxzarr.create_array(
        tmp_path / "a.zarr", shape=data.shape, dtype=data.dtype, **LAYOUTS[layout]
    )
    a[...] = data
    a["x"] = 7
    data["x"] = 7
    a["y", 2:4, 5] = [1.0, 2.0]
    data["y"][2:4, 5] = [1.0, 2.0]
    a.oindex["z", [1, 9], :2] = 3
    data["z"][np.ix_([1, 9], [0, 1])] = 3
    a.vindex["x", "z", [0, 5], [12, 0]] = (-1, 1)
    data[["x", "z"]][[0, 5], [12, 0]] = (-1, 1)
    mask = np.zeros(data.shape, bool)
    mask[6, 6:9] = True
    a.vindex["z", mask] = 200
    data["z"][mask] = 200
    a.set_block_selection((2, 0), 9, fields="x")
    data["x"][8:10, 0:6] = 9
    a["z", [1, 2], [3, 4]] = 5
    data["z"][[1, 2], [3, 4]] = 5
    mask = data["x"] < 0
    a["x", mask] = -7
    data["x"][mask] = -7
    assert_same(a[...], data)
    assert_same(oxzarr.open_array(tmp_path / "a.zarr", mode="r")[...], data)


def test_bad_fields(tmp_path: Path) -> None:
    a = oxzarr.create_array(tmp_path / "r.zarr", shape=(4,), dtype=RECORD, chunks=(2,))
    with pytest.raises(oxzarr.errors.ReadOnlyError):
        oxzarr.open_array(tmp_path / "r.zarr", mode="r")["x"] = 1
    with pytest.raises(IndexError, match="no field 'w'"):
        a["w"]
    with pytest.raises(IndexError, match="no field 'w'"):
        a["w"] = 1
    with pytest.raises(IndexError, match="string or a list"):
        a.get_basic_selection(slice(None), fields=3)  # type: ignore[arg-type]
    plain = oxzarr.create_array(tmp_path / "p.zarr", shape=(4,), dtype="i4", chunks=(2,))
    with pytest.raises(IndexError, match="no fields"):
        plain["x"]


def test_ints_and_slices_skip_the_python_indexer(
    stored: tuple[oxzarr.Array, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`a[...]`, get_basic_selection, get_orthogonal_selection and oindex hand a key of ints
    (Python's or numpy's) and slices to the engine as it is: a loop of small reads pays for
    no indexing in Python (microseconds a call)."""
    a, data = stored

    def no_indexer(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the Python indexer was used")

    module = importlib.import_module("oxzarr.array")  # (`oxzarr.array` is the function)
    monkeypatch.setattr(module, "indexer", no_indexer)
    monkeypatch.setattr(module, "simple_indexer", no_indexer)
    keys: list[Any] = [(3, 4), (slice(1, 9, 3), slice(None, None, -2)), (-1,), 2]
    # Indices taken from numpy arrays are numpy integers.
    keys += [(np.int64(3), np.uint8(4)), (np.int32(-1), slice(2, 5)), np.int16(2)]
    for key in keys:
        expected = np.asarray(data[key])
        assert_same(a[key], expected)
        assert_same(a.get_basic_selection(key), expected)
        assert_same(a.get_orthogonal_selection(key), expected)
        assert_same(a.oindex[key], expected)
    # Other keys, and `out=`, take the indexer.
    with pytest.raises(AssertionError, match="Python indexer"):
        a.get_basic_selection(Ellipsis)
    with pytest.raises(AssertionError, match="Python indexer"):
        a.get_orthogonal_selection((3, 4), out=np.empty((), "f8"))


def test_selections_take_what_zarr_python_takes(tmp_path: Path) -> None:
    import zarr

    values = np.arange(20, dtype="i4").reshape(4, 5)
    ours = oxzarr.create_array(tmp_path / "a", shape=(4, 5), dtype="i4", chunks=(2, 2))
    theirs = zarr.create_array(tmp_path / "z", shape=(4, 5), dtype="i4", chunks=(2, 2))
    for a in (ours, theirs):
        a[...] = values
        # A point of scalars reads as shape (1,), and what is read can be written back.
        a.vindex[1, 2] = a.vindex[1, 2] + 100
        a.vindex[0, 0] = [7]
        # A mask as nested lists.
        mask = (values > 15).tolist()
        assert_same(a.vindex[mask], values[values > 15])
        a.vindex[mask] = -1
    assert_same(ours[...], theirs[...])
    assert (ours[1, 2], ours[0, 0], ours[3, 4]) == (107, 7, -1)
    # Basic selections take no index arrays (they belong to oindex and vindex).
    for a in (ours, theirs):
        with pytest.raises(IndexError):
            a.get_basic_selection(([0, 2], slice(None)))
        with pytest.raises(IndexError):
            a.set_basic_selection((np.array([0, 2]), slice(None)), 1)
    assert_same(ours.get_basic_selection((np.int64(1), slice(1, 3))), theirs[1, 1:3])
    # A block of a 0-d array is a 0-d array, not a scalar.
    for create in (oxzarr.create_array, zarr.create_array):
        zero_d = create(tmp_path / f"{create.__module__}-0d", shape=(), dtype="i4", fill_value=5)
        block = zero_d.blocks[...]
        assert isinstance(block, np.ndarray) and block.shape == () and block == 5


def test_out_as_a_masked_array_or_a_matrix(stored: tuple[oxzarr.Array, np.ndarray]) -> None:
    """Filled as numpy's assignment fills them (the mask cleared where values went): the
    engine flattened them itself, and a masked array's mask refused the reshape, a matrix
    stayed two-dimensional."""
    a, data = stored
    masked = np.ma.masked_all((3, 13), dtype="f8")
    assert a.get_basic_selection(slice(2, 5), out=masked) is masked
    expected = np.ma.masked_all((3, 13), dtype="f8")
    expected[...] = data[2:5]
    assert_same(masked.data, expected.data)
    assert not masked.mask.any() and not expected.mask.any()
    with pytest.warns(PendingDeprecationWarning, match="matrix subclass"):
        matrix = np.asmatrix(np.zeros((3, 13)))
    a.get_basic_selection(slice(2, 5), out=matrix)
    assert_same(np.asarray(matrix), data[2:5])


def test_threads_reading_into_overlapping_views_of_one_out(tmp_path: Path) -> None:
    """Tiles with halos, read by threads into views of one output: the engine's borrow of
    numpy's memory found another thread's, and rust-numpy panicked (a PanicException, which
    `except Exception` lets through), leaving the output part filled."""
    data = sample((800, 300), "f8")
    a = oxzarr.create_array(tmp_path / "a.zarr", shape=data.shape, chunks=(100, 100), dtype="f8")
    a[...] = data
    for _ in range(5):
        out = np.zeros_like(data)

        def read(start: int, stop: int, out: np.ndarray = out) -> None:
            a.get_basic_selection(slice(start, stop), out=out[start:stop])

        read_overlapping_tiles(read, 800, halo=30)
        assert_same(out, data)


def test_writing_from_memory_another_thread_reads_into(tmp_path: Path) -> None:
    """The engine cannot borrow memory another thread's read is decoding into: a write from
    it raised BufferError (a panic before); it is written from a copy, as numpy would race."""
    data = sample((600, 300), "f8")
    a = oxzarr.create_array(tmp_path / "a.zarr", shape=data.shape, chunks=(100, 100), dtype="f8")
    a[...] = data
    b = oxzarr.create_array(tmp_path / "b.zarr", shape=data.shape, chunks=(100, 100), dtype="f8")
    shared = np.zeros_like(data)

    def read() -> None:
        for _ in range(10):
            a.get_basic_selection(Ellipsis, out=shared)

    def write() -> None:
        for _ in range(20):
            b[...] = shared
            b.set_coordinate_selection(([0, 5], [1, 2]), shared[0, :2])

    run_together(read, write)
    b[...] = shared  # after the reads: every value
    assert_same(b[...], data)


def test_nested_lists_with_leading_length_one_dimensions_and_block_step_zero(
    tmp_path: Path,
) -> None:
    # numpy's assignment drops the leading length-1 dimensions of an array, and zarr-python's
    # of a nested list too: [[100, 200]] into two points was refused. A block slice of step
    # 0 is an IndexError as any other step but 1 (it was ValueError).
    a = oxzarr.create_array(tmp_path / "a.zarr", shape=(5, 7), dtype="i4", chunks=(2, 3))
    a[0, [0, 1]] = [[100, 200]]
    a.oindex[1, [0, 1]] = [[3, 4]]
    a.vindex[[2, 3], [0, 1]] = [[5, 6]]
    assert a[:4, :2].tolist() == [[100, 200], [3, 4], [5, 0], [0, 6]]
    with pytest.raises(OverflowError):
        a[0, [0, 1]] = [[1, 2**40]]
    with pytest.raises(ValueError, match="broadcast"):
        a[0, [0, 1]] = [[1, 2, 3]]
    for step_zero in (lambda: a.blocks[::0], lambda: a.get_block_selection(slice(0, 2, 0))):
        with pytest.raises(IndexError, match="step 1"):
            step_zero()
    with pytest.raises(IndexError, match="step 1"):
        a.blocks[::0] = 1


def test_empty_index_arrays_of_floats_are_refused(tmp_path: Path) -> None:
    # An empty index array was taken as no indices before its dtype was looked at: a float
    # (or, in vindex, boolean) one selected nothing where numpy and zarr-python refuse it.
    import zarr

    empty = np.array([], dtype="f8")
    no_mask = np.array([], dtype=bool)
    ours = oxzarr.create_array(tmp_path / "a", shape=(4, 5), dtype="i4", chunks=(2, 2))
    theirs = zarr.create_array(tmp_path / "z", shape=(4, 5), dtype="i4", chunks=(2, 2))
    for a in (ours, theirs):
        for view, key in [
            (a, empty),
            (a.oindex, (empty, 0)),
            (a.vindex, (empty, empty)),
            (a.vindex, (empty, np.array([], dtype="i8"))),
            (a.vindex, (no_mask, no_mask)),
        ]:
            with pytest.raises(IndexError):
                view[key]
            with pytest.raises(IndexError):
                view[key] = 1
        with pytest.raises(IndexError):
            a.get_orthogonal_selection((empty, slice(None)))
    with pytest.raises(IndexError, match="integer"):
        np.zeros((4, 5))[empty]
    # A list of no elements (float64 to np.asarray) still selects nothing, as in numpy.
    assert_same(ours[[]], np.zeros((0, 5), "i4"))
    assert_same(ours.oindex[[], 0], np.zeros(0, "i4"))
    assert_same(ours.vindex[[], []], np.zeros(0, "i4"))


def test_a_sequence_into_one_element_is_refused(tmp_path: Path) -> None:
    # Leading length-1 dimensions were dropped from a value even where a selection of one
    # element left no dimension to fill: a[()] = np.array([9.0]) on a 0-d array, a[...] =
    # [[8]], or a[0] = [9.0] on a 1-d array wrote the number. zarr-python refuses them all,
    # numpy all but a[...] = np.array([9.0]) into a 0-d array.
    import zarr

    for create in (oxzarr.create_array, zarr.create_array):
        name = create.__module__
        zero_d = create(tmp_path / f"{name}-0d", shape=(), dtype="f8", fill_value=0)
        row = create(tmp_path / f"{name}-row", shape=(3,), dtype="f8", fill_value=0)
        grid = create(tmp_path / f"{name}-grid", shape=(2, 3), dtype="i4")
        for view, key, value in [
            (zero_d, (), np.array([9.0])),
            (zero_d, (), [9.0]),
            (zero_d, ..., [[8]]),
            (zero_d, ..., np.array([9.0])),
            (row, 0, [9.0]),
            (row, 0, np.array([9.0])),
            (grid, (0, 0), np.array([[1]])),
            (grid.oindex, (0, 0), [5]),
        ]:
            with pytest.raises(ValueError, match="setting an array element with a sequence"):
                view[key] = value
        assert zero_d[()] == 0 and row[...].tolist() == [0, 0, 0] and not grid[...].any()
        # Where dimensions are left, leading length-1 ones are dropped as before.
        zero_d[()] = np.array(3.0)
        row[...] = np.ones((1, 3))
        row[0:1] = np.full((1, 1, 1), 5.0)
        grid[0] = np.ones((1, 1, 3), "i4")
        grid.vindex[1, 2] = [7]  # a point reads as shape (1,)
        assert zero_d[()] == 3 and row[...].tolist() == [5, 1, 1]
        assert grid[...].tolist() == [[1, 1, 1], [0, 0, 7]]
    expected = np.zeros(3)
    expected[...] = np.ones((1, 3))
    expected[0:1] = np.full((1, 1, 1), 5.0)
    assert expected.tolist() == [5, 1, 1]
    with pytest.raises(ValueError, match="setting an array element with a sequence"):
        expected[0] = [9.0]
    # Text of variable length too (zarr-python stores the list's text, "['x']"); an array of
    # one record still fills one record, as numpy and zarr-python take it.
    text = oxzarr.create_array(tmp_path / "text", shape=(), dtype=str)
    with pytest.raises(ValueError, match=r"one element of <Array .*text"):
        text[()] = ["x"]
    record = np.dtype([("a", "i4"), ("b", "f8")])
    records = oxzarr.create_array(tmp_path / "records", shape=(), dtype=record)
    records[()] = np.array([(1, 2.0)], dtype=record)
    assert records[()].tolist() == (1, 2.0)


def test_orthogonal_selections_refuse_zero_dimensional_index_arrays(tmp_path: Path) -> None:
    # a.oindex[np.array(2), 0] read a 0-d array (and wrote) where zarr-python refuses a 0-d
    # integer array in an orthogonal selection; a[np.array(2), 0] reads a scalar, as numpy.
    import zarr

    values = np.arange(20, dtype="i4").reshape(4, 5)
    ours = oxzarr.create_array(tmp_path / "a", shape=(4, 5), dtype="i4", chunks=(2, 2))
    theirs = zarr.create_array(tmp_path / "z", shape=(4, 5), dtype="i4", chunks=(2, 2))
    for a in (ours, theirs):
        a[...] = values
        for key in [(np.array(2), 0), (np.array(2), slice(None)), (0, np.array(-1))]:
            with pytest.raises(IndexError, match="arrays in an orthogonal selection must be"):
                a.oindex[key]
            with pytest.raises(IndexError, match="arrays in an orthogonal selection must be"):
                a.get_orthogonal_selection(key)
            with pytest.raises(IndexError, match="arrays in an orthogonal selection must be"):
                a.oindex[key] = -1
            with pytest.raises(IndexError, match="arrays in an orthogonal selection must be"):
                a.set_orthogonal_selection(key, -1)
        assert_same(a[...], values)
        # numpy integers are integers there.
        assert a.oindex[np.int64(2), np.uint8(1)] == 11
    assert ours[np.array(2), 0] == values[np.array(2), 0] == 10


def test_coordinate_indices_out_of_bounds_are_found_before_broadcasting(tmp_path: Path) -> None:
    # a.vindex[[0, 1, 2], [0, 9]] raised the ValueError of arrays that do not broadcast;
    # zarr-python checks bounds first (BoundsCheckError, an IndexError), and numpy raises an
    # IndexError too.
    import zarr

    values = np.arange(20, dtype="i4").reshape(4, 5)
    ours = oxzarr.create_array(tmp_path / "a", shape=(4, 5), dtype="i4", chunks=(2, 2))
    theirs = zarr.create_array(tmp_path / "z", shape=(4, 5), dtype="i4", chunks=(2, 2))
    for a in (ours, theirs):
        a[...] = values
        for key in [([0, 1, 2], [0, 9]), ([4, 1, 2], [0, 1])]:
            with pytest.raises(IndexError, match="out of bounds"):
                a.vindex[key]
            with pytest.raises(IndexError, match="out of bounds"):
                a.vindex[key] = 0
        # In bounds, arrays that do not broadcast are still a ValueError.
        with pytest.raises(ValueError, match="broadcast"):
            a.vindex[[0, 1, 2], [0, 1]]
    with pytest.raises(BoundsCheckError, match="index 9 is out of bounds for axis 1"):
        ours.get_coordinate_selection(([0, 1, 2], [0, 9]))
    with pytest.raises(IndexError):
        values[[0, 1, 2], [0, 9]]
    # Arrays that broadcast read and write each point, negative indices from the end.
    rows, cols = np.array([[0], [3]]), [1, -1, 2]
    assert_same(ours.vindex[rows, cols], values[rows, cols])
    ours.vindex[rows, cols] = -values[rows, cols]
    expected = values.copy()
    expected[rows, cols] *= -1
    assert_same(ours[...], expected)
