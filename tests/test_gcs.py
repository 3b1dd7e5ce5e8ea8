"""Google Cloud Storage (``gs://``) stores, read against fake-gcs-server on this machine
(tests/conftest.py): what zarr-python writes there through gcsfs, read by oxzarr through the
same URL and storage_options, through zarr-python's own store objects, and through xarray;
the ranged requests a point of a shard costs; writes refused with a clear error; and
gcsfs's credential options as the engine's.

oxzarr does not write to Google Cloud Storage yet: the emulator takes gcsfs's uploads (the
JSON API) but not object_store's (the XML API), so the engine's would go out untested."""

from __future__ import annotations

import json
import multiprocessing
import pickle
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr

import oxzarr
from oxzarr.errors import ArrayNotFoundError, ReadOnlyError
from oxzarr.storage import RemoteStore, remote_options
from tests.conftest import assert_same, sample
from tests.test_remote import (
    _sum_into,
    _sum_of,
    check_points_of_a_shard,
    check_xarray_dataset,
    zarr_python_writes_oxzarr_reads,
)

Bucket = tuple[str, dict[str, Any]]


def test_oxzarr_reads_what_zarr_python_writes(gcs_bucket: Bucket) -> None:
    bucket, options = gcs_bucket
    values = zarr_python_writes_oxzarr_reads(bucket, options)
    # The other scheme of the same service, and the array opened by its own URL.
    other_scheme = bucket.replace("gs://", "gcs://")
    read = oxzarr.open_array(f"{other_scheme}/v2.zarr", mode="r", storage_options=options)
    assert_same(read[...], values["v2.zarr"])
    # The default mode opens for reading too; a write then fails.
    c = oxzarr.open_array(f"{bucket}/g.zarr/c", storage_options=options)
    assert_same(c[5:9, ::3], values["g.zarr/c"][5:9, ::3])
    with pytest.raises(ReadOnlyError):
        c[0, 0] = 1
    copy = pickle.loads(pickle.dumps(c))
    assert_same(copy[...], values["g.zarr/c"])
    assert copy.store == c.store
    # A forked child makes its own client (its parent's connections are not its to use).
    fork = multiprocessing.get_context("fork")
    results = fork.Queue()
    child = fork.Process(target=_sum_into, args=(read, results))
    child.start()
    assert results.get(timeout=60) == _sum_of(read)
    child.join(timeout=60)
    assert child.exitcode == 0


def test_zarr_python_store_objects_are_read(gcs_bucket: Bucket, gcs_endpoint: str) -> None:
    """zarr-python's FsspecStore over gcsfs and ObjectStore over obstore's GCSStore, given to
    oxzarr: opened anew at the same place, with the same options."""
    from obstore.store import GCSStore

    bucket, options = gcs_bucket
    values = sample((30, 30), "uint16")
    zarr.create_array(
        f"{bucket}/a.zarr", shape=values.shape, dtype="u2", chunks=(8, 8), storage_options=options
    )[...] = values

    fsspec_store = zarr.storage.FsspecStore.from_url(
        f"{bucket}/a.zarr", storage_options=options, read_only=True
    )
    assert_same(oxzarr.open_array(fsspec_store, mode="r")[...], values)
    gcs = GCSStore(
        bucket.removeprefix("gs://"),
        prefix="a.zarr",
        config={"base_url": gcs_endpoint, "skip_signature": True},
    )
    object_store = zarr.storage.ObjectStore(gcs, read_only=True)
    assert_same(oxzarr.open_array(object_store, mode="r")[7:21, 3], values[7:21, 3])


def test_a_point_of_a_shard_costs_ranged_requests(gcs_bucket: Bucket) -> None:
    bucket, options = gcs_bucket
    check_points_of_a_shard(f"{bucket}/s.zarr", options, zarr.create_array)


def test_xarray_datasets_on_gcs(gcs_bucket: Bucket) -> None:
    """A Dataset xarray wrote through zarr-python and gcsfs opens with engine="oxzarr" and
    the same storage_options, identical to engine="zarr"'s."""
    bucket, options = gcs_bucket
    check_xarray_dataset(f"{bucket}/ds.zarr", options, 3)


def test_writes_are_refused_naming_the_url(gcs_bucket: Bucket) -> None:
    bucket, options = gcs_bucket
    url = f"{bucket}/new.zarr"
    refused = re.escape(f"{url} (oxzarr reads Google Cloud Storage but cannot write to it yet)")
    with pytest.raises(ReadOnlyError, match=refused):
        oxzarr.create_array(url, shape=(4,), dtype="u1", storage_options=options)
    with pytest.raises(ReadOnlyError, match=refused):
        oxzarr.open_group(url, mode="w", storage_options=options)
    with pytest.raises(ValueError, match=re.escape(f"oxzarr reads {url} but cannot write")):
        RemoteStore(url, storage_options=options).with_read_only(False)
    # Nothing was written.
    with pytest.raises(FileNotFoundError):
        oxzarr.open_group(url, mode="r", storage_options=options)


def test_errors_name_the_url(gcs_bucket: Bucket, gcs_endpoint: str, tmp_path: Path) -> None:
    bucket, options = gcs_bucket
    with pytest.raises(ArrayNotFoundError, match=re.escape(f"{bucket}/nothing")):
        oxzarr.open_array(f"{bucket}/nothing", mode="r", storage_options=options)
    with pytest.raises(FileNotFoundError, match=re.escape(f"{bucket}/nothing")):
        oxzarr.open_group(f"{bucket}/nothing", mode="r", storage_options=options)
    with pytest.raises(ValueError, match=re.escape("google_base_ulr")):
        RemoteStore(bucket, storage_options={"google_base_ulr": gcs_endpoint, "token": "anon"})
    with pytest.raises(ValueError, match="gcsfs's own login"):
        RemoteStore(bucket, storage_options={"token": "browser"})
    with pytest.raises(ValueError, match="requester_pays"):
        RemoteStore(bucket, storage_options={**options, "requester_pays": True})
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "absent.json"))):
        RemoteStore(bucket, storage_options={"token": str(tmp_path / "absent.json")})
    with pytest.raises(ValueError, match="service account's key"):
        RemoteStore(bucket, storage_options={"token": {"type": "authorized_user"}})
    with pytest.raises(OSError, match="cannot read token file"):
        RemoteStore(bucket, storage_options={"token": str(tmp_path)})  # a folder
    not_json = tmp_path / "key.json"
    not_json.write_text("not json")
    with pytest.raises(ValueError, match="not a JSON key file"):
        RemoteStore(bucket, storage_options={"token": str(not_json)})
    # A dead endpoint: an OSError naming the key, within the engine's few retries.
    dead = {"endpoint_url": "http://127.0.0.1:9", "token": "anon"}
    with pytest.raises(OSError, match=re.escape(f"{bucket}/a.zarr/zarr.json")):
        oxzarr.open_array(f"{bucket}/a.zarr", mode="r", storage_options=dead)


def test_a_service_account_key_reaches_the_engine(gcs_bucket: Bucket, gcs_endpoint: str) -> None:
    """A service account key given as gcsfs's token dict is the engine's key. This one has
    object_store's emulator settings (its base URL, and no OAuth: an empty token), so that
    nothing is asked of Google's token service."""
    bucket, options = gcs_bucket
    zarr.create_array(
        f"{bucket}/k.zarr", shape=(6,), dtype="i2", chunks=(4,), storage_options=options
    )[...] = np.arange(6)
    key = {
        "type": "service_account",
        "private_key": "unused",
        "private_key_id": "unused",
        "client_email": "reader@test.iam.gserviceaccount.com",
        "gcs_base_url": gcs_endpoint,
        "disable_oauth": True,
    }
    assert dict(remote_options(bucket, {"token": key})) == {
        "google_service_account_key": json.dumps(key)
    }
    a = oxzarr.open_array(f"{bucket}/k.zarr", mode="r", storage_options={"token": key})
    assert a[...].tolist() == [0, 1, 2, 3, 4, 5]


def test_credentials_are_found_where_gcsfs_finds_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = "gs://bucket/x.zarr"
    anonymous = {"google_skip_signature": "true"}
    # No credentials anywhere (the tests' machine): anonymous, as gcsfs falls back.
    assert dict(remote_options(url, None)) == anonymous
    assert dict(remote_options(url, {"token": None, "project": "p"})) == anonymous
    # token="google_default": the engine looks (the application default credentials, then
    # the metadata service), never anonymous.
    assert dict(remote_options(url, {"token": "google_default"})) == {}
    # Key files by their path: a service account's, or gcloud's login.
    service_account = tmp_path / "sa.json"
    service_account.write_text(json.dumps({"type": "service_account"}))
    assert dict(remote_options(url, {"token": str(service_account)})) == {
        "google_service_account": str(service_account)
    }
    login = tmp_path / "adc.json"
    login.write_text(json.dumps({"type": "authorized_user"}))
    assert dict(remote_options(url, {"token": login})) == {
        "google_application_credentials": str(login)
    }
    # gcloud's file in its folder (CLOUDSDK_CONFIG here) is named to the engine.
    gcloud = tmp_path / "gcloud"
    gcloud.mkdir()
    (gcloud / "application_default_credentials.json").write_text(login.read_text())
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(gcloud))
    assert dict(remote_options(url, None)) == {
        "google_application_credentials": str(gcloud / "application_default_credentials.json")
    }
    # GOOGLE_APPLICATION_CREDENTIALS: the engine reads it itself.
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(login))
    assert dict(remote_options(url, None)) == {}
    # An emulator named in the environment, as gcsfs reads it; endpoint_url comes first.
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", "127.0.0.1:4443")
    assert dict(remote_options(url, {"token": "anon"})) == {
        "google_base_url": "http://127.0.0.1:4443",
        **anonymous,
    }
    given = {"token": "anon", "endpoint_url": "http://127.0.0.1:1/"}
    assert dict(remote_options(url, given))["google_base_url"] == "http://127.0.0.1:1"
    # object_store's own names pass to the engine as they are.
    assert dict(remote_options(url, {"google_bearer_token": "t", "timeout": "20s"})) == {
        "google_bearer_token": "t",
        "google_base_url": "http://127.0.0.1:4443",
        "timeout": "20s",
    }


def test_the_command_converts_from_gcs(
    gcs_bucket: Bucket, gcs_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`oxzarr info` and `oxzarr convert` on a gs:// URL in a fresh process: the emulator
    found through STORAGE_EMULATOR_HOST, no credentials found, so requests go unsigned."""
    from tests.test_cli import cli

    bucket, options = gcs_bucket
    values = sample((40, 30), "int32")
    zarr.create_array(
        f"{bucket}/old.zarr",
        shape=values.shape,
        dtype="i4",
        chunks=(16, 16),
        zarr_format=2,
        storage_options=options,
    )[...] = values
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_endpoint)
    assert "(40, 30)" in cli("info", f"{bucket}/old.zarr").stdout
    cli("convert", f"{bucket}/old.zarr", tmp_path / "new.zarr", "--zarr-format", "3")
    converted = oxzarr.open_array(tmp_path / "new.zarr", mode="r")
    assert converted.metadata.zarr_format == 3
    assert_same(converted[...], values)
