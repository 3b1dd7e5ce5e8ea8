"""oxzarr arrays under dask: read into dask arrays, written by dask.array.store, from worker
processes of a dask.distributed cluster and from multiprocessing pools (an Array pickles as
its store and path, so every process opens it anew and writes its own chunks)."""

from __future__ import annotations

import multiprocessing
import os
import pickle
from collections.abc import Iterator
from pathlib import Path

import dask.array as da
import distributed
import numpy as np
import pytest
import xarray as xr

import oxzarr

SHAPE = (120, 90)
CHUNKS = (20, 30)


def values(shape: tuple[int, ...] = SHAPE) -> np.ndarray:
    return np.arange(int(np.prod(shape)), dtype="f8").reshape(shape) * 0.5 - 100


@pytest.fixture(scope="module")
def client() -> Iterator[distributed.Client]:
    # dask's nanny sets variables for its workers (MALLOC_TRIM_THRESHOLD_, OMP_NUM_THREADS)
    # in this process's environment before it starts them; the tests after these get it back
    # as it was.
    environment = dict(os.environ)
    # Worker processes, not threads: the data must travel to them as pickles.
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=40,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client
    os.environ.clear()
    os.environ.update(environment)


def test_an_array_has_what_dask_needs(tmp_path: Path) -> None:
    a = oxzarr.create_array(tmp_path / "a.zarr", shape=SHAPE, dtype="f8", chunks=CHUNKS)
    a[...] = values()
    x = da.from_array(a, chunks=a.chunks)
    assert x.shape == SHAPE and x.dtype == np.float64 and x.chunksize == CHUNKS
    # dask takes the array's chunks as the default ones.
    assert da.from_array(a, chunks="auto").chunksize[1] % CHUNKS[1] == 0
    np.testing.assert_array_equal(x[5:47, ::7].compute(scheduler="sync"), values()[5:47, ::7])
    # Pickled, an array is its store and path, not its data.
    assert len(pickle.dumps(a)) < 1000


def test_distributed_workers_read_an_array(tmp_path: Path, client: distributed.Client) -> None:
    a = oxzarr.create_array(tmp_path / "a.zarr", shape=SHAPE, dtype="f8", chunks=CHUNKS)
    a[...] = values()
    x = da.from_array(a, chunks=(40, 30))
    assert len(x.dask) >= 9
    total, column_means = client.compute([x.sum(), x.mean(axis=0)], sync=True)
    assert total == values().sum()
    np.testing.assert_allclose(column_means, values().mean(axis=0))
    # The work ran in the worker processes, which are not this one.
    assert os.getpid() not in client.run(os.getpid).values()


def test_distributed_workers_store_into_an_array(
    tmp_path: Path, client: distributed.Client
) -> None:
    source = da.from_array(values(), chunks=CHUNKS)
    target = oxzarr.create_array(tmp_path / "b.zarr", shape=SHAPE, dtype="f8", chunks=CHUNKS)
    # No lock: each dask chunk is one oxzarr chunk, written by one task only.
    stored = da.store(source + 1, target, lock=False, compute=False)
    client.compute(stored, sync=True)
    np.testing.assert_array_equal(target[...], values() + 1)
    assert target.nchunks_initialized == target.nchunks


def _write_rows(path: str, start: int, stop: int) -> int:
    a = oxzarr.open_array(path, mode="r+")
    a[start:stop] = values()[start:stop]
    return os.getpid()


def _write_with_pickled_array(a: oxzarr.Array, start: int, stop: int) -> int:
    a[:, start:stop] = -values()[:, start:stop]
    return os.getpid()


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_processes_write_disjoint_chunks_of_one_array(tmp_path: Path, method: str) -> None:
    path = tmp_path / "a.zarr"
    a = oxzarr.create_array(path, shape=SHAPE, dtype="f8", chunks=CHUNKS)
    a[...]  # the engine's thread pool exists before the fork
    rows = [(str(path), i, i + CHUNKS[0]) for i in range(0, SHAPE[0], CHUNKS[0])]
    ctx = multiprocessing.get_context(method)
    with ctx.Pool(3) as pool:
        pids = pool.starmap_async(_write_rows, rows, chunksize=1).get(timeout=120)
        assert os.getpid() not in pids
        np.testing.assert_array_equal(a[...], values())
        # The array itself, pickled to the workers, writes as well.
        columns = [(a, j, j + CHUNKS[1]) for j in range(0, SHAPE[1], CHUNKS[1])]
        pool.starmap_async(_write_with_pickled_array, columns, chunksize=1).get(timeout=120)
    np.testing.assert_array_equal(oxzarr.open_array(path, mode="r")[...], -values())


def test_distributed_workers_read_an_xarray_dataset(
    tmp_path: Path, client: distributed.Client
) -> None:
    ds = xr.Dataset(
        {"v": (("t", "x"), values())},
        coords={"t": np.arange(SHAPE[0]), "x": np.arange(SHAPE[1])},
        attrs={"title": "read by dask workers"},
    )
    ds.to_zarr(tmp_path / "a.zarr", encoding={"v": {"chunks": CHUNKS}})
    opened = xr.open_dataset(tmp_path / "a.zarr", engine="oxzarr", chunks={})
    assert opened.v.chunks == ((20,) * 6, (30,) * 3)
    # The lazily indexed oxzarr arrays behind the dask chunks travel to the workers.
    means = client.compute(opened.v.mean("x"), sync=True)
    np.testing.assert_allclose(means.values, values().mean(axis=1))
