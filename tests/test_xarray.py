"""The xarray backend: stores written by xarray's to_zarr open with engine="oxzarr" into the
same Datasets as with engine="zarr" (zarr-python), lazily, and chunked with dask on request."""

from __future__ import annotations

import importlib.util
import inspect
import json
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import oxzarr
from oxzarr.storage import CountingStore, LocalStore
from oxzarr.xarray_backend import OxzarrBackendEntrypoint

FORMATS = [2, 3]


def dataset() -> Any:
    """A Dataset with what CF decoding acts on: a time coordinate, packed integers, fill
    values, a non-index coordinate named by a `coordinates` attribute, and text."""
    rng = np.random.default_rng(0)
    packed = np.linspace(-1, 1, 60).reshape(6, 10)
    packed[2, 3] = np.nan
    masked = np.arange(10.0)
    masked[::4] = np.nan
    return xr.Dataset(
        {
            "temp": (
                ("time", "y", "x"),
                rng.normal(280, 5, (4, 6, 10)).astype("f4"),
                {"units": "K", "long_name": "air temperature"},
            ),
            "packed": (("y", "x"), packed, {"long_name": "packed into int16"}),
            "masked": (("x",), masked),
            "fixed_text": (("y",), np.array(["a", "bb", "ccc", "", "ee", "f"])),
            "text": (("y",), np.array(["alpha", "", "γάμμα", "d", "eps", "z"], dtype=object)),
            "flag": (("y",), np.array([True, False, True, True, False, False])),
            "count": (("x",), np.arange(10, dtype="u1")),
            "duration": (("time",), pd.to_timedelta([1, 2, 3, 4], unit="h").to_numpy()),
            "scalar": ((), 3.5, {"note": "a 0-d variable"}),
        },
        coords={
            "x": np.arange(10) * 0.5,
            "y": np.arange(6) * 10,
            "time": pd.date_range("2000-01-01", periods=4, freq="6h"),
            "lat": (("y",), np.linspace(-50, 50, 6), {"units": "degrees_north"}),
        },
        attrs={"title": "oxzarr test", "history": "made by tests/test_xarray.py"},
    )


def encoding(zarr_format: int) -> dict[str, dict[str, Any]]:
    enc: dict[str, dict[str, Any]] = {
        "packed": {"dtype": "i2", "scale_factor": 0.01, "add_offset": 0.5, "_FillValue": -999},
        "masked": {"_FillValue": -1.0},
        "temp": {"chunks": (2, 3, 5)},
    }
    if zarr_format == 3:
        # Sharded: oxzarr reads points of these through outer selections.
        enc["temp"] = {"chunks": (1, 3, 5), "shards": (2, 6, 10)}
    return enc


@pytest.fixture(scope="module", params=[(f, c) for f in FORMATS for c in (True, False)])
def store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, int, bool]:
    zarr_format, consolidated = request.param
    path = tmp_path_factory.mktemp("xr") / f"v{zarr_format}-{consolidated}.zarr"
    dataset().to_zarr(
        path, zarr_format=zarr_format, consolidated=consolidated, encoding=encoding(zarr_format)
    )
    return path, zarr_format, consolidated


def open_both(path: Path, consolidated: bool, **kwargs: Any) -> tuple[Any, Any]:
    """The store opened by zarr-python's backend and by oxzarr's."""
    expected = xr.open_dataset(path, engine="zarr", consolidated=consolidated, **kwargs)
    actual = xr.open_dataset(path, engine="oxzarr", **kwargs)
    return expected, actual


def comparable(value: Any) -> Any:
    """An encoding value in a form both backends' can be compared in: codecs as their
    metadata, dtypes as numpy dtypes."""
    if isinstance(value, tuple):
        return tuple(comparable(v) for v in value)
    if hasattr(value, "get_config"):
        return value.get_config()
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if isinstance(value, float | np.floating) and np.isnan(value):
        return "nan"
    return value


DECODING = [
    {},
    {"decode_cf": False},
    {"mask_and_scale": False},
    {"decode_times": False},
    {"decode_times": xr.coders.CFDatetimeCoder(time_unit="s")},
    {"decode_timedelta": False},
    {"decode_coords": False},
    {"concat_characters": False},
    {"drop_variables": ["temp", "text"]},
]


@pytest.mark.parametrize("kwargs", DECODING, ids=lambda kw: ",".join(kw) or "default")
def test_datasets_are_identical_to_zarr_pythons(
    store: tuple[Path, int, bool], kwargs: dict[str, Any]
) -> None:
    path, _, consolidated = store
    expected, actual = open_both(path, consolidated, **kwargs)
    xr.testing.assert_identical(actual, expected)
    for name, variable in expected.variables.items():
        assert actual[name].dtype == variable.dtype, name


def test_encodings_are_zarr_pythons(store: tuple[Path, int, bool]) -> None:
    path, _, consolidated = store
    expected, actual = open_both(path, consolidated)
    for name, variable in expected.variables.items():
        want = {k: comparable(v) for k, v in variable.encoding.items()}
        got = {k: comparable(v) for k, v in actual[name].encoding.items()}
        assert got == want, name
    assert actual.encoding == expected.encoding


def test_values_and_decoding(store: tuple[Path, int, bool]) -> None:
    path, zarr_format, _ = store
    ds = xr.open_dataset(path, engine="oxzarr")
    xr.testing.assert_allclose(ds.packed, dataset().packed, atol=0.006)
    xr.testing.assert_equal(ds.drop_vars("packed"), dataset().drop_vars("packed"))
    assert ds.time.dtype.kind == "M" and ds.duration.dtype.kind == "m"
    assert "lat" in ds.coords and ds.packed.attrs == {"long_name": "packed into int16"}
    assert ds.packed.encoding["scale_factor"] == 0.01
    raw = xr.open_dataset(path, engine="oxzarr", decode_cf=False)
    assert raw.packed.dtype == np.int16 and raw.packed.attrs["_FillValue"] == -999
    assert raw.packed.values[2, 3] == -999
    assert "units" in raw.time.attrs and "lat" not in raw.coords
    # v2 keeps dimension names in an attribute, which is not one of the variable's.
    for name in raw.variables:
        assert "_ARRAY_DIMENSIONS" not in raw[name].attrs
    if zarr_format == 3:
        assert raw.temp.encoding["shards"] == (2, 6, 10)


def test_opening_reads_no_data_variable(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    ds = xr.Dataset(
        # Random numbers, so compression cannot hide a read of them.
        {"big": (("t", "x"), rng.random((200, 500)))},
        coords={"t": np.arange(200), "x": np.arange(500)},
    )
    ds.to_zarr(tmp_path / "a.zarr", encoding={"big": {"chunks": (50, 500)}})
    store = CountingStore(LocalStore(tmp_path / "a.zarr"))
    opened = xr.open_dataset(store, engine="oxzarr")
    # The index coordinates (a few kB) are read at once, as by any backend; not `big`.
    assert store.bytes_read < 20_000
    store.reset()
    np.testing.assert_array_equal(opened.big[10:20, ::100].values, ds.big[10:20, ::100].values)
    assert store.requests == 1  # one chunk of four
    store.reset()
    opened.big.values  # noqa: B018
    assert store.bytes_read > ds.big.nbytes / 2


def test_lazy_indexing(store: tuple[Path, int, bool]) -> None:
    path, _, consolidated = store
    expected, actual = open_both(path, consolidated)
    points = {"x": xr.DataArray([0, 9, 3, 3], dims="p"), "y": xr.DataArray([5, 0, 2, 1], dims="p")}
    selections: list[dict[str, Any]] = [
        {"x": slice(2, 9, 3), "y": 4},
        {"x": slice(None, None, -2)},
        {"x": [7, 1, 1, 4], "time": [3, 0]},
        {"x": np.array([True, False] * 5)},
        points,
        {**points, "time": slice(1, 3)},
        {"y": xr.DataArray([[0, 1], [5, 4]], dims=("a", "b")), "time": 2},
    ]
    for sel in selections:
        xr.testing.assert_identical(actual.isel(sel), expected.isel(sel))
        xr.testing.assert_identical(actual.isel(sel).load(), expected.isel(sel).load())


def test_loading_asynchronously(store: tuple[Path, int, bool]) -> None:
    """xarray's load_async raised NotImplementedError with engine="oxzarr" (the backend
    array had no async_getitem), where zarr-python's engine loads."""
    import asyncio

    path, _, consolidated = store
    expected, actual = open_both(path, consolidated)
    points = {"x": xr.DataArray([0, 9, 3], dims="p"), "y": xr.DataArray([5, 0, 2], dims="p")}

    async def load(ds: xr.Dataset) -> list[xr.Dataset]:
        return list(await asyncio.gather(ds.load_async(), ds.isel(points).load_async()))

    for ours, theirs in zip(asyncio.run(load(actual)), asyncio.run(load(expected)), strict=True):
        xr.testing.assert_identical(ours, theirs)


@pytest.mark.parametrize(
    ("chunks", "expected"),
    [
        ({}, {"time": (2, 2), "y": (3, 3), "x": (5, 5)}),
        ({"x": 10}, {"time": (2, 2), "y": (3, 3), "x": (10,)}),
        ({"time": -1, "y": 6}, {"time": (4,), "y": (6,), "x": (5, 5)}),
    ],
)
def test_chunks_give_dask_arrays(
    tmp_path: Path, chunks: dict[str, int], expected: dict[str, tuple[int, ...]]
) -> None:
    dataset().to_zarr(tmp_path / "a.zarr", zarr_format=2, encoding=encoding(2))
    ds = xr.open_dataset(tmp_path / "a.zarr", engine="oxzarr", chunks=chunks)
    reference = xr.open_dataset(tmp_path / "a.zarr", engine="zarr", chunks=chunks)
    assert ds.temp.chunks is not None
    assert dict(zip(ds.temp.dims, ds.temp.chunks, strict=True)) == expected
    assert ds.temp.encoding["preferred_chunks"] == {"time": 2, "y": 3, "x": 5}
    assert ds.temp.encoding["chunks"] == (2, 3, 5)
    for name, variable in reference.variables.items():
        assert ds[name].chunks == variable.chunks, name
    xr.testing.assert_identical(ds.compute(), reference.compute())
    mean = ds.temp.mean("time")
    assert mean.chunks is not None
    np.testing.assert_allclose(mean.values, dataset().temp.mean("time").values, rtol=1e-6)


@pytest.mark.parametrize("zarr_format", FORMATS)
@pytest.mark.parametrize("consolidated", [True, False])
def test_a_dataset_in_a_group(tmp_path: Path, zarr_format: int, consolidated: bool) -> None:
    path = tmp_path / "a.zarr"
    dataset().to_zarr(path, zarr_format=zarr_format, consolidated=consolidated)
    sub = dataset().isel(x=slice(0, 4)).assign_attrs(title="in a group")
    sub.to_zarr(
        path, group="models/run1", zarr_format=zarr_format, consolidated=consolidated, mode="a"
    )
    for group in ("models/run1", "/models/run1/"):
        expected, actual = open_both(path, consolidated, group=group)
        xr.testing.assert_identical(actual, expected)
        assert actual.attrs["title"] == "in a group" and actual.sizes["x"] == 4
    root = oxzarr.open_group(path, mode="r")
    opened = xr.open_dataset(root["models"], engine="oxzarr", group="run1")
    xr.testing.assert_identical(opened, actual)
    with pytest.raises(TypeError, match="storage_options"):
        xr.open_dataset(root, engine="oxzarr", storage_options={"anon": True})
    with pytest.raises(FileNotFoundError):
        xr.open_dataset(path, engine="oxzarr", group="models/missing", consolidated=consolidated)
    # What xarray's zarr engine raises for a missing group when `consolidated` is not given,
    # consolidated or not: code probing for groups catches it (oxzarr raised only
    # GroupNotFoundError, a FileNotFoundError).
    for engine in ("zarr", "oxzarr"):
        with pytest.raises(KeyError), warnings.catch_warnings():
            # (xarray's zarr engine warns that the store is not consolidated.)
            warnings.simplefilter("ignore", RuntimeWarning)
            xr.open_dataset(path, engine=engine, group="models/missing")
    with pytest.raises(FileNotFoundError):
        xr.open_dataset(path, engine="oxzarr", group="models/run1/temp")


@pytest.mark.parametrize("zarr_format", FORMATS)
def test_a_datatree(tmp_path: Path, zarr_format: int) -> None:
    path = tmp_path / "a.zarr"
    tree = xr.DataTree.from_dict(
        {
            "/": xr.Dataset({"station": ("n", ["a", "b"])}, attrs={"title": "runs"}),
            "/models/run1": dataset(),
            "/models/run2": xr.Dataset({"v": ("x", np.arange(3.0))}, attrs={"run": 2}),
        }
    )
    tree.to_zarr(path, zarr_format=zarr_format)
    for group in (None, "models"):
        expected = xr.open_datatree(path, engine="zarr", group=group)
        actual = xr.open_datatree(path, engine="oxzarr", group=group)
        xr.testing.assert_identical(actual, expected)
    # Keyed as engine="zarr" keys them: from the root, or from the group given.
    for group in (None, "/", "models", "models/run1"):
        theirs = xr.open_groups(path, engine="zarr", group=group)
        ours = xr.open_groups(path, engine="oxzarr", group=group)
        assert sorted(ours) == sorted(theirs), group
        for key, ds in theirs.items():
            xr.testing.assert_identical(ours[key], ds)


def test_consolidated_metadata(tmp_path: Path) -> None:
    dataset().to_zarr(tmp_path / "c.zarr", consolidated=True)
    dataset().to_zarr(tmp_path / "n.zarr", consolidated=False)
    store = CountingStore(LocalStore(tmp_path / "c.zarr"))
    xr.open_dataset(store, engine="oxzarr", consolidated=True, drop_variables=["x", "y", "time"])
    assert store.requests == 1  # the root's zarr.json holds every node's metadata
    with pytest.raises(FileNotFoundError):
        xr.open_dataset(tmp_path / "n.zarr", engine="oxzarr", consolidated=True)
    for consolidated in (None, False):
        xr.testing.assert_identical(
            xr.open_dataset(tmp_path / "n.zarr", engine="oxzarr", consolidated=consolidated),
            xr.open_dataset(tmp_path / "c.zarr", engine="oxzarr", consolidated=consolidated),
        )


def test_modes_that_read(tmp_path: Path) -> None:
    # xarray's zarr backend takes a mode; opening reads whichever of these it is.
    dataset().to_zarr(tmp_path / "d.zarr")
    expected = xr.open_dataset(tmp_path / "d.zarr", engine="zarr", mode="r")
    for mode in ("r", "r+", "a"):
        actual = xr.open_dataset(tmp_path / "d.zarr", engine="oxzarr", mode=mode)
        xr.testing.assert_identical(actual, expected)
    xr.open_datatree(tmp_path / "d.zarr", engine="oxzarr", mode="r")
    with pytest.raises(ValueError, match="mode 'w'"):
        xr.open_dataset(tmp_path / "d.zarr", engine="oxzarr", mode="w")
    xr.testing.assert_identical(xr.open_dataset(tmp_path / "d.zarr", engine="oxzarr"), expected)


def test_written_back_by_zarr_python(tmp_path: Path) -> None:
    """The encodings oxzarr reports are ones zarr-python takes: a Dataset opened with oxzarr
    round-trips through to_zarr."""
    for zarr_format in FORMATS:
        source = tmp_path / f"v{zarr_format}.zarr"
        copy = tmp_path / f"copy-v{zarr_format}.zarr"
        dataset().to_zarr(source, zarr_format=zarr_format, encoding=encoding(zarr_format))
        opened = xr.open_dataset(source, engine="oxzarr")
        if zarr_format == 2:
            # xarray and zarr-python cannot write back v2 text they read (as StringDType):
            # the copy's `text` is unreadable, whichever backend opened it.
            opened = opened.drop_vars("text")
        opened.to_zarr(copy, zarr_format=zarr_format)
        expected, actual = open_both(copy, True)
        xr.testing.assert_identical(actual, expected)
        xr.testing.assert_identical(actual, opened)
        assert actual.temp.encoding["chunks"] == expected.temp.encoding["chunks"]


def test_arrays_without_dimension_names_are_refused(tmp_path: Path) -> None:
    oxzarr.create_array(tmp_path / "a.zarr", name="v", shape=(3,), dtype="i4")
    with pytest.raises(KeyError, match="dimension_names"):
        xr.open_dataset(tmp_path / "a.zarr", engine="oxzarr")
    oxzarr.create_array(tmp_path / "b.zarr", name="v", shape=(3,), dtype="i4", zarr_format=2)
    with pytest.raises(KeyError, match="_ARRAY_DIMENSIONS"):
        xr.open_dataset(tmp_path / "b.zarr", engine="oxzarr")


def test_null_dimension_names_and_nczarr_dimensions(tmp_path: Path) -> None:
    """As with engine="zarr": a v3 dimension name left null is None (and its variable can be
    dropped); v2 arrays without _ARRAY_DIMENSIONS take NCZarr's dimension paths in .zarray."""
    import zarr

    g = zarr.open_group(tmp_path / "v3.zarr", mode="w")
    g.create_array("v", shape=(2, 3), dtype="f4", dimension_names=["y", None])[...] = 1
    g.create_array("w", shape=(2,), dtype="f4", dimension_names=["y"])[...] = 2
    for kwargs in ({}, {"drop_variables": ["v"]}):
        expected = xr.open_dataset(
            tmp_path / "v3.zarr", engine="zarr", consolidated=False, **kwargs
        )
        actual = xr.open_dataset(tmp_path / "v3.zarr", engine="oxzarr", **kwargs)
        xr.testing.assert_identical(actual, expected)
    assert actual.sizes == {"y": 2}

    path = tmp_path / "nczarr.zarr"
    g = zarr.open_group(path, mode="w", zarr_format=2)
    g.create_array("v", shape=(3, 4), dtype="f4", fill_value=None)[...] = np.ones((3, 4))
    zarray = json.loads((path / "v" / ".zarray").read_text())
    zarray["_NCZARR_ARRAY"] = {"dimrefs": ["/lat", "/lon"], "storage": "chunked"}
    (path / "v" / ".zarray").write_text(json.dumps(zarray))
    expected = xr.open_dataset(path, engine="zarr", consolidated=False)
    actual = xr.open_dataset(path, engine="oxzarr", consolidated=False)
    xr.testing.assert_identical(actual, expected)
    assert actual.sizes == {"lat": 3, "lon": 4}


def test_the_entry_point(monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(xr.backends.list_engines()["oxzarr"], OxzarrBackendEntrypoint)
    backend = OxzarrBackendEntrypoint()
    # A .zarr path is zarr-python's when it is installed (xarray asks oxzarr first).
    assert not backend.guess_can_open("data.zarr")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert backend.guess_can_open("data.zarr") and backend.guess_can_open(Path("a/data.zarr/"))
    assert not backend.guess_can_open("data.nc")
    assert backend.guess_can_open(oxzarr.storage.MemoryStore())
    assert backend.description and backend.url
    # xarray passes on only the arguments it finds here.
    parameters = inspect.signature(backend.open_dataset).parameters
    assert tuple(parameters) == backend.open_dataset_parameters


def test_importing_oxzarr_does_not_import_xarray() -> None:
    code = "import sys, oxzarr; sys.exit('xarray' in sys.modules or 'dask' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


@pytest.mark.parametrize("source_format", [2, 3])
def test_a_dataset_converted_into_the_other_format_reads_the_same(
    tmp_path: Path, source_format: int
) -> None:
    # xarray takes a v2 array's fill value as its missing-value marker, and a v3 array's
    # _FillValue attribute: converted as plain Zarr, 0s of an integer coordinate became
    # missing (v3 -> v2) and encoded fills stopped being masked (v2 -> v3).
    from oxzarr.convert import convert

    ds = xr.Dataset(
        {
            "temp": ("x", np.array([np.nan, 1.5, 2.5])),
            "count": ("x", np.array([0, 1, 2])),
            "flag": ("x", np.array([True, False, True])),
            "name": ("x", np.array(["a", "", "c"], dtype=object)),
            "packed": ("x", np.array([np.nan, 1.5, 2.5])),
            "wave": ("x", np.array([1 + 1j, np.nan, 0j])),
            # 0-d: no dimension_names in v3, and an integer 0 xarray must not mask in v2.
            "scalar": ((), 0),
            "level": ((), 2.5),
        },
        coords={"x": [0, 1, 2]},
    )
    encoding = {"packed": {"dtype": "i2", "scale_factor": 0.5, "_FillValue": -9999}}
    source = tmp_path / "source.zarr"
    ds.to_zarr(source, zarr_format=source_format, encoding=encoding, consolidated=False)
    expected = xr.open_zarr(source, consolidated=False).load()
    converted = tmp_path / "converted.zarr"
    convert(source, converted, zarr_format=5 - source_format)
    seen = xr.open_zarr(converted, consolidated=False).load()
    xr.testing.assert_identical(seen, expected)
    back = tmp_path / "back.zarr"
    convert(converted, back, zarr_format=source_format)
    xr.testing.assert_identical(xr.open_zarr(back, consolidated=False).load(), expected)
    # Into another dtype, the marker is the output's (its v3 attribute in its encoding).
    real = tmp_path / "real.zarr"
    ds.drop_vars("wave").to_zarr(
        real, zarr_format=source_format, encoding=encoding, consolidated=False
    )
    retyped = tmp_path / "retyped.zarr"
    convert(real, retyped, zarr_format=5 - source_format, dtype="f8")
    seen = xr.open_zarr(retyped, consolidated=False).load()
    assert seen["count"].values.tolist() == [0.0, 1.0, 2.0]
    assert np.isnan(seen["packed"].values[0]) and seen["packed"].values[1:].tolist() == [1.5, 2.5]


def test_a_v3_dataset_converted_into_another_dtype_keeps_its_missing_values(
    tmp_path: Path,
) -> None:
    """Within v3, the _FillValue attribute was copied in the source's dtype and encoding, and
    xarray could not open the copy; it is cast as the values are, in xarray's encoding."""
    from oxzarr.convert import KEEP, convert

    ds = xr.Dataset({"v": ("x", np.array([1.0, 2.0, np.nan, 4.0]))})
    source = tmp_path / "source.zarr"
    for dtype, fill in [("f4", -99), ("i2", -1.0)]:
        ds.to_zarr(
            source,
            mode="w",
            zarr_format=3,
            consolidated=False,
            encoding={"v": {"dtype": "i4" if dtype == "f4" else "f8", "_FillValue": fill}},
        )
        converted = tmp_path / f"{dtype}.zarr"
        # (The array's own fill value, NaN for floats, has no integer form: given.)
        convert(source, converted, dtype=dtype, fill_value=0 if dtype == "i2" else KEEP)
        seen = xr.open_zarr(converted, consolidated=False).load()
        assert seen["v"].values.tolist()[:2] == [1.0, 2.0] and np.isnan(seen["v"].values[2])
        raw = xr.open_zarr(converted, consolidated=False, mask_and_scale=False).load()
        assert raw["v"].dtype == np.dtype(dtype) and raw["v"].values[2] == fill


@pytest.mark.parametrize("consolidated", [None, False])
def test_zarr_format_picks_the_metadata_of_a_store_migrated_in_place(
    tmp_path: Path, consolidated: bool | None
) -> None:
    """zarr-python's migration to v3 leaves the v2 documents beside the new ones, and no
    dimension names in them: zarr_format=2 is how xarray reads such a store, and
    engine="oxzarr" opened the v3 group, then refused it as not v2."""
    import warnings

    import zarr
    from zarr.metadata.migrate_v3 import migrate_v2_to_v3

    path = tmp_path / "migrated.zarr"
    xr.Dataset({"v": ("x", np.arange(3.0))}).to_zarr(path, zarr_format=2, consolidated=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        migrate_v2_to_v3(input_store=zarr.storage.LocalStore(path))
    assert (path / "zarr.json").exists() and (path / ".zgroup").exists()
    options: dict[str, Any] = {"zarr_format": 2, "consolidated": consolidated}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # engine="zarr" warns of no consolidated metadata
        expected = xr.open_dataset(path, engine="zarr", **options)
    seen = xr.open_dataset(path, engine="oxzarr", **options)
    xr.testing.assert_identical(seen, expected)
    assert seen["v"].values.tolist() == [0.0, 1.0, 2.0]
    tree = xr.open_datatree(path, engine="oxzarr", **options)
    xr.testing.assert_identical(tree.to_dataset(), expected)
