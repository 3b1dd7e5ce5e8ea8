"""S3 and HTTP stores, against moto's S3 server on this machine (tests/conftest.py): arrays and
groups written and read through ``s3://`` URLs, zarr-python (through s3fs) reading what
oxzarr writes there and the reverse, the requests a partial read of a shard makes, errors
naming the URL, plain HTTP reads of the same objects, and stores carried into other
processes."""

from __future__ import annotations

import json
import multiprocessing
import pickle
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr

import oxzarr
from oxzarr.convert import convert
from oxzarr.errors import ArrayNotFoundError, ReadOnlyError
from oxzarr.storage import CountingStore, RemoteStore
from tests.conftest import assert_same, s3_client, sample

Bucket = tuple[str, dict[str, Any]]


def _zarr_python_group(url: str, options: dict[str, Any], mode: str) -> Any:
    return zarr.open_group(url, mode=mode, storage_options=options)


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_arrays_round_trip(s3_bucket: Bucket, zarr_format: int) -> None:
    bucket, options = s3_bucket
    url = f"{bucket}/data/a.zarr"
    values = sample((30, 41), "int32")
    a = oxzarr.create_array(
        url,
        shape=values.shape,
        dtype=values.dtype,
        chunks=(8, 16),
        zarr_format=zarr_format,
        storage_options=options,
    )
    a[...] = values
    a[3:5, 7] = -1
    values[3:5, 7] = -1
    b = oxzarr.open_array(url, mode="r", storage_options=options)
    assert_same(b[...], values)
    assert_same(b[29, 3:40:3], values[29, 3:40:3])
    assert b.nchunks_initialized == 4 * 3
    with pytest.raises(ReadOnlyError):
        b[0, 0] = 1
    assert str(b.store) == url


def test_sharded_arrays_and_overwrites(s3_bucket: Bucket) -> None:
    bucket, options = s3_bucket
    url = f"{bucket}/s.zarr"
    values = sample((64, 64), "float32")
    a = oxzarr.create_array(
        url,
        shape=values.shape,
        dtype="float32",
        chunks=(8, 8),
        shards=(32, 32),
        storage_options=options,
    )
    a[...] = values
    assert_same(oxzarr.open_array(url, storage_options=options)[...], values)
    # Written again through another handle: every read after it sees the new values,
    # whatever was fetched before.
    again = oxzarr.open_array(url, mode="r+", storage_options=options)
    assert_same(a[10:20, 40:50], values[10:20, 40:50])
    assert_same(a[...], values)
    again[8:40, 8:40] = 0
    values[8:40, 8:40] = 0
    assert_same(a[9, 8:12], values[9, 8:12])
    assert_same(a[...], values)
    a.resize((16, 64))
    assert_same(oxzarr.open_array(url, storage_options=options)[...], values[:16])


def check_points_of_a_shard(url: str, options: dict[str, Any], create: Any) -> None:
    """`create` (oxzarr's or zarr-python's create_array) writes a 128x128 array in one shard of
    16x16 uncompressed inner chunks at `url`: a point of it read by oxzarr costs two ranged
    requests, and the next point one."""
    values = sample((128, 128), "uint16")
    create(
        url,
        shape=values.shape,
        dtype="uint16",
        chunks=(16, 16),
        shards=(128, 128),
        compressors=None,
        storage_options=options,
    )[...] = values
    counting = CountingStore(RemoteStore(url, storage_options=options, read_only=True))
    b = oxzarr.open_array(counting, mode="r")
    counting.reset()
    assert b[70, 33] == values[70, 33]
    # The shard's index (64 inner chunks, 16 bytes each, and its checksum), then the two
    # bytes of the element: nothing of the 32 KiB shard besides.
    assert counting.requests == 2
    assert counting.bytes_read == 64 * 16 + 4 + 2
    counting.reset()
    assert b[71, 34] == values[71, 34]
    assert counting.requests == 1, "the shard index is cached"


def test_a_point_of_a_shard_costs_ranged_requests(s3_bucket: Bucket) -> None:
    bucket, options = s3_bucket
    check_points_of_a_shard(f"{bucket}/s.zarr", options, oxzarr.create_array)


def test_zarr_python_reads_what_oxzarr_writes(s3_bucket: Bucket) -> None:
    bucket, options = s3_bucket
    root = oxzarr.open_group(f"{bucket}/g.zarr", mode="w", storage_options=options)
    root.attrs["title"] = "written by oxzarr"
    v3 = sample((20, 30), "float64")
    root.create_array("v3", shape=v3.shape, dtype=v3.dtype, chunks=(8, 8), shards=(16, 16))[...] = (
        v3
    )
    sub = root.create_group("sub")
    ints = sample((50,), "int16")
    sub.create_array("ints", shape=ints.shape, dtype=ints.dtype, chunks=(7,))[...] = ints
    oxzarr.consolidate_metadata(RemoteStore(f"{bucket}/g.zarr", storage_options=options))

    theirs = _zarr_python_group(f"{bucket}/g.zarr", options, "r")
    assert theirs.attrs["title"] == "written by oxzarr"
    assert_same(theirs["v3"][...], v3)
    assert_same(theirs["sub/ints"][...], ints)
    assert sorted(theirs.group_keys()) == ["sub"]

    v2 = oxzarr.create_array(
        f"{bucket}/v2.zarr",
        shape=(40,),
        dtype="<u8",
        chunks=(9,),
        zarr_format=2,
        compressors={"id": "blosc", "cname": "lz4", "clevel": 5, "shuffle": 1},
        storage_options=options,
    )
    v2[...] = np.arange(40, dtype="u8") ** 3
    read = zarr.open_array(f"{bucket}/v2.zarr", mode="r", storage_options=options)
    assert_same(read[...], np.arange(40, dtype="<u8") ** 3)


def zarr_python_writes_oxzarr_reads(bucket: str, options: dict[str, Any]) -> dict[str, np.ndarray]:
    """At `bucket`, zarr-python writes a v3 group ``g.zarr`` (a title; arrays ``c`` and ``s``,
    the second sharded; groups ``sub/deeper``, the last with an attribute) and a v2 array
    ``v2.zarr``, which oxzarr reads the same; returns the arrays' values by path."""
    theirs = _zarr_python_group(f"{bucket}/g.zarr", options, "w")
    theirs.attrs["title"] = "written by zarr-python"
    values = {
        "g.zarr/c": sample((33, 17), "complex64"),
        "g.zarr/s": sample((40, 40), "int8"),
        "v2.zarr": np.linspace(0, 1, 25, dtype="f4"),
    }
    c = values["g.zarr/c"]
    theirs.create_array("c", shape=c.shape, dtype=c.dtype, chunks=(10, 10))[...] = c
    s = theirs.create_array("s", shape=(40, 40), dtype="i1", chunks=(5, 5), shards=(20, 20))
    s[...] = values["g.zarr/s"]
    theirs.create_group("sub/deeper").attrs["n"] = 3
    v2 = zarr.create_array(
        f"{bucket}/v2.zarr",
        shape=(25,),
        dtype="f4",
        chunks=(4,),
        zarr_format=2,
        storage_options=options,
    )
    v2[...] = values["v2.zarr"]

    mine = oxzarr.open_group(f"{bucket}/g.zarr", mode="r", storage_options=options)
    assert mine.attrs["title"] == "written by zarr-python"
    assert sorted(mine.keys()) == ["c", "s", "sub"]
    assert_same(mine["c"][...], values["g.zarr/c"])
    assert_same(mine["s"][3:37, 11], values["g.zarr/s"][3:37, 11])
    assert_same(mine["s"][...], values["g.zarr/s"])
    assert mine["sub/deeper"].attrs["n"] == 3
    read = oxzarr.open_array(f"{bucket}/v2.zarr", storage_options=options)
    assert_same(read[...], values["v2.zarr"])
    return values


def test_oxzarr_reads_what_zarr_python_writes(s3_bucket: Bucket) -> None:
    bucket, options = s3_bucket
    zarr_python_writes_oxzarr_reads(bucket, options)


def test_groups_list_and_delete(s3_bucket: Bucket) -> None:
    bucket, options = s3_bucket
    url = f"{bucket}/h.zarr"
    root = oxzarr.create_group(url, storage_options=options)
    root.create_group("a/b")
    x = root.create_array("x", shape=(10,), dtype="u1", chunks=(3,))
    x[...] = 7
    assert sorted(root.keys()) == ["a", "x"]
    assert sorted(oxzarr.open_group(url, storage_options=options)["a"].keys()) == ["b"]
    store = RemoteStore(url, storage_options=options)
    assert store.list_prefix("x/") == ["x/c/0", "x/c/1", "x/c/2", "x/c/3", "x/zarr.json"]
    del root["x"]
    assert store.list_prefix("x/") == []
    assert sorted(oxzarr.open_group(url, storage_options=options).keys()) == ["a"]


def test_objects_no_key_names_are_left_out_of_listings_and_deleted(
    s3_bucket: Bucket, s3_endpoint: str
) -> None:
    """An object with '\\' in its name (which no store key holds) is not listed, so a
    group beside it lists, but a deleted node takes it along, as zarr-python's does."""
    bucket, options = s3_bucket
    name = bucket.removeprefix("s3://")
    root = oxzarr.create_group(f"{bucket}/w.zarr", storage_options=options)
    root.create_array("sub/arr", shape=(2,), dtype="u1")[...] = 1
    client = s3_client(s3_endpoint)
    for odd in ("w.zarr/sub/notes\\old.txt", "w.zarr/sub/arr/c\\0"):
        client.put_object(Bucket=name, Key=odd, Body=b"x")
    assert sorted(root["sub"].keys()) == ["arr"]
    del root["sub"]
    left = [o["Key"] for o in client.list_objects_v2(Bucket=name, Prefix="w.zarr/")["Contents"]]
    assert left == ["w.zarr/zarr.json"]


def test_folder_markers_are_not_listed_and_go_with_their_node(
    s3_bucket: Bucket, s3_endpoint: str
) -> None:
    # Empty objects named "dir/" (the S3 console's "Create folder") were listed as keys
    # ("sub" from "m.zarr/sub/": object_store drops the final '/'), and a deleted node left
    # them behind; s3fs (zarr-python's) lists none and deletes them with the node.
    bucket, options = s3_bucket
    name = bucket.removeprefix("s3://")
    root = oxzarr.create_group(f"{bucket}/m.zarr", storage_options=options)
    root.create_array("sub/arr", shape=(2,), dtype="u1")[...] = 1
    client = s3_client(s3_endpoint)
    for marker in ("m.zarr/sub/", "m.zarr/sub/arr/", "m.zarr/other/"):
        client.put_object(Bucket=name, Key=marker, Body=b"")
    # An empty value is a key all the same.
    client.put_object(Bucket=name, Key="m.zarr/sub/empty", Body=b"")
    store = RemoteStore(f"{bucket}/m.zarr", storage_options=options)
    assert store.list_prefix("") == [
        "sub/arr/c/0",
        "sub/arr/zarr.json",
        "sub/empty",
        "sub/zarr.json",
        "zarr.json",
    ]
    assert store.get("sub/empty") == b""
    assert sorted(root.keys()) == ["sub"]
    del root["sub"]
    left = [o["Key"] for o in client.list_objects_v2(Bucket=name, Prefix="m.zarr/")["Contents"]]
    assert left == ["m.zarr/other/", "m.zarr/zarr.json"]


def test_errors_name_the_url(s3_bucket: Bucket, s3_endpoint: str) -> None:
    bucket, options = s3_bucket
    with pytest.raises(ArrayNotFoundError, match=re.escape(f"{bucket}/nothing")):
        oxzarr.open_array(f"{bucket}/nothing", mode="r", storage_options=options)
    with pytest.raises(FileNotFoundError):
        oxzarr.open_group(f"{bucket}/nothing", mode="r", storage_options=options)
    # A bucket that does not exist: the service's answer, naming the key.
    with pytest.raises(FileNotFoundError, match=re.escape("s3://no-such-bucket-here/x/zarr.json")):
        oxzarr.create_array(
            "s3://no-such-bucket-here/x", shape=(1,), dtype="u1", storage_options=options
        )
    # Not found when first listed too (mode "w" lists what it replaces), as zarr-python says.
    for mode in ("w", "a"):
        with pytest.raises(FileNotFoundError, match=re.escape("s3://no-such-bucket-here/g")):
            oxzarr.open_group("s3://no-such-bucket-here/g", mode=mode, storage_options=options)
    with pytest.raises(FileNotFoundError, match=re.escape("s3://no-such-bucket-here/x")):
        oxzarr.create_array(
            "s3://no-such-bucket-here/x",
            shape=(1,),
            dtype="u1",
            storage_options=options,
            overwrite=True,
        )
    with pytest.raises(ValueError, match=re.escape("aws_endpiont")):
        RemoteStore(bucket, storage_options={**options, "aws_endpiont": s3_endpoint})
    with pytest.raises(ValueError, match=re.escape("storage_options")):
        oxzarr.open_group("memory://", storage_options=options)
    with pytest.raises(ValueError, match=re.escape("client_kwargs")):
        RemoteStore(bucket, storage_options={"client_kwargs": {"verify": False}})


class _S3Proxy:
    """A proxy in front of the S3 service at `endpoint` that refuses bucket listings
    (ListObjectsV2) with 403 AccessDenied, as S3 refuses them to a role that may read objects
    (s3:GetObject) but not list the bucket (s3:ListBucket); other requests are forwarded."""

    def __init__(self, endpoint: str) -> None:
        import http.client
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        service = endpoint.removeprefix("http://")

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.command == "GET" and "list-type=2" in self.path:
                    denied = (
                        b"<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"
                    )
                    self.send_response(403)
                    self.send_header("Content-Length", str(len(denied)))
                    self.end_headers()
                    self.wfile.write(denied)
                    return
                connection = http.client.HTTPConnection(service)
                connection.request(self.command, self.path, body, dict(self.headers))
                answer = connection.getresponse()
                data = answer.read()
                connection.close()
                self.send_response(answer.status)
                for name, value in answer.getheaders():
                    if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(name, value)
                length = answer.getheader("Content-Length", "0")
                self.send_header(
                    "Content-Length", length if self.command == "HEAD" else str(len(data))
                )
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = forward

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_listing_refused_with_403_is_a_permission_error(s3_bucket: Bucket) -> None:
    # S3's 403 to a listing came through as a plain OSError (object_store reports a refused
    # listing as a generic error); zarr-python (s3fs) raises PermissionError, as oxzarr does
    # for a refused read.
    bucket, options = s3_bucket
    url = f"{bucket}/g.zarr"
    oxzarr.create_group(url, storage_options=options).create_array("x", shape=(2,), dtype="i1")
    proxy = _S3Proxy(options["endpoint_url"])
    try:
        through = {**options, "endpoint_url": proxy.url}
        group = oxzarr.open_group(url, mode="r", storage_options=through)
        assert group["x"][...].tolist() == [0, 0]
        with pytest.raises(PermissionError, match=re.escape(f"{url}/")):
            list(group.keys())
        with pytest.raises(PermissionError, match="AccessDenied"):
            RemoteStore(url, storage_options=through).list_prefix("")
    finally:
        proxy.close()


def test_a_dead_endpoint_fails_with_an_os_error() -> None:
    # The discard port: nothing listens.
    options = {"key": "k", "secret": "s", "endpoint_url": "http://127.0.0.1:9"}
    with pytest.raises(OSError, match=re.escape("s3://bucket/a.zarr/zarr.json")):
        oxzarr.open_array("s3://bucket/a.zarr", mode="r", storage_options=options)


def _allow_anonymous_reads(endpoint: str, bucket: str) -> None:
    """A bucket policy that lets anyone read its objects, as a public web server does."""
    import json

    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": "*",
                "Action": "s3:GetObject",
                "Resource": f"arn:aws:s3:::{bucket}/*",
            }
        ],
    }
    s3_client(endpoint).put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))


def test_web_servers_are_read(s3_bucket: Bucket, s3_endpoint: str) -> None:
    """The same objects over plain HTTP (moto answers path-style GETs with ranges, as a
    static web server does): arrays, sharded ones in ranges, a group through its
    consolidated metadata; writes are refused."""
    bucket, options = s3_bucket
    values = sample((50, 50), "uint16")
    root = oxzarr.create_group(f"{bucket}/web.zarr", storage_options=options)
    root.create_array("plain", shape=values.shape, dtype="u2", chunks=(16, 16))[...] = values
    root.create_array("sharded", shape=values.shape, dtype="u2", chunks=(5, 5), shards=(25, 25))[
        ...
    ] = values
    oxzarr.consolidate_metadata(RemoteStore(f"{bucket}/web.zarr", storage_options=options))

    name = bucket.removeprefix("s3://")
    http = f"{s3_endpoint}/{name}/web.zarr"
    with pytest.raises(PermissionError, match=re.escape(f"{http}/zarr.json")):
        oxzarr.open_group(http, mode="r")
    _allow_anonymous_reads(s3_endpoint, name)
    group = oxzarr.open_group(http, mode="r")
    assert sorted(group.keys()) == ["plain", "sharded"]
    assert_same(group["plain"][...], values)
    assert_same(group["sharded"][7:33, 40], values[7:33, 40])
    assert_same(oxzarr.open_array(f"{http}/plain")[5], values[5])
    # open() with no mode, as zarr-python's open(url): the group, read-only.
    assert sorted(oxzarr.open(http).keys()) == ["plain", "sharded"]  # type: ignore[union-attr]
    with pytest.raises(ReadOnlyError):
        group["plain"][0, 0] = 1
    with pytest.raises(ValueError, match=re.escape("cannot write")):
        RemoteStore(http).with_read_only(False)
    with pytest.raises(ArrayNotFoundError, match=re.escape(f"{http}/absent")):
        oxzarr.open_array(f"{http}/absent", mode="r")
    # The same public bucket through S3 without credentials.
    anonymous = {"anon": True, "endpoint_url": s3_endpoint}
    assert_same(
        oxzarr.open_array(f"{bucket}/web.zarr/plain", storage_options=anonymous)[...], values
    )


def _sum_of(a: Any) -> float:
    return float(np.asarray(a[...], dtype="float64").sum())


def _sum_into(a: Any, results: Any) -> None:
    results.put(_sum_of(a))


def test_arrays_pickle_and_read_in_other_processes(s3_bucket: Bucket) -> None:
    bucket, options = s3_bucket
    url = f"{bucket}/p.zarr"
    values = sample((40, 40), "int64")
    a = oxzarr.create_array(
        url, shape=values.shape, dtype="int64", chunks=(10, 10), storage_options=options
    )
    a[...] = values
    copy = pickle.loads(pickle.dumps(a))
    assert_same(copy[...], values)
    assert copy.store == a.store
    expected = float(values.astype("float64").sum())
    # A forked child inherits the array (a Process's arguments are not pickled under fork)
    # with a store its parent has used: the parent's runtime and connections are not the
    # child's to use.
    fork = multiprocessing.get_context("fork")
    results = fork.Queue()
    child = fork.Process(target=_sum_into, args=(a, results))
    child.start()
    assert results.get(timeout=60) == expected
    child.join(timeout=60)
    assert child.exitcode == 0
    # Pickled into a fresh interpreter.
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        assert pool.apply(_sum_of, (a,)) == expected


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_xarray_datasets_on_s3(s3_bucket: Bucket, zarr_format: int) -> None:
    """A Dataset xarray wrote to S3 (through zarr-python and s3fs) opens with
    engine="oxzarr" and the same storage_options, identical to engine="zarr"'s."""
    bucket, options = s3_bucket
    check_xarray_dataset(f"{bucket}/ds-v{zarr_format}.zarr", options, zarr_format)


def check_xarray_dataset(url: str, options: dict[str, Any], zarr_format: int) -> None:
    """xarray writes a Dataset at `url` through zarr-python; engine="oxzarr" opens it, with
    the same storage_options, identical to engine="zarr"."""
    import xarray as xr

    from tests.test_xarray import dataset, encoding

    dataset().to_zarr(
        url, zarr_format=zarr_format, encoding=encoding(zarr_format), storage_options=options
    )
    expected = xr.open_dataset(url, engine="zarr", storage_options=options)
    got = xr.open_dataset(url, engine="oxzarr", storage_options=options)
    xr.testing.assert_identical(got.load(), expected.load())


def test_creation_modes_keep_the_storage_options(s3_bucket: Bucket) -> None:
    bucket, options = s3_bucket
    url = f"{bucket}/saved.zarr"
    oxzarr.save_array(url, np.arange(5), storage_options=options, mode="w-")
    with pytest.raises(FileExistsError):
        oxzarr.save_array(url, np.arange(5), storage_options=options, mode="w-")
    with pytest.raises(FileExistsError):
        oxzarr.zeros((3,), store=url, storage_options=options, mode="w-")
    oxzarr.full((4,), 7, store=url, storage_options=options, mode="w")
    assert oxzarr.open_array(url, storage_options=options)[...].tolist() == [7, 7, 7, 7]
    # group() and save() take them too.
    oxzarr.group(f"{bucket}/made-by-group.zarr", storage_options=options).attrs["a"] = 1
    assert (
        oxzarr.open_group(f"{bucket}/made-by-group.zarr", storage_options=options).attrs["a"] == 1
    )
    oxzarr.save(f"{bucket}/by-save.zarr", np.arange(3), storage_options=options)
    assert_same(
        oxzarr.load(RemoteStore(f"{bucket}/by-save.zarr", storage_options=options)), np.arange(3)
    )
    store = RemoteStore(url, storage_options={**options, "token": None})
    assert store.with_read_only(True).with_read_only(False) == store
    assert store.with_read_only(True) != store


def test_the_command_takes_storage_options(s3_bucket: Bucket, tmp_path: Path) -> None:
    """`oxzarr info`, `tree`, `convert` and `verify` on s3:// URLs with their storage options
    on the command line (JSON values or text), S3 to S3; bad options name themselves."""
    from tests.test_cli import cli

    bucket, options = s3_bucket
    flags = [f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in options.items()]

    def each(flag: str) -> list[str]:
        return [part for value in flags for part in (flag, value)]

    values = sample((40, 30), "int32")
    oxzarr.create_array(
        f"{bucket}/old.zarr",
        shape=values.shape,
        dtype="i4",
        chunks=(16, 16),
        zarr_format=2,
        storage_options=options,
    )[...] = values
    assert "(40, 30)" in cli("info", f"{bucket}/old.zarr", *each("--storage-option")).stdout
    assert "(40, 30)" in cli("tree", f"{bucket}/old.zarr", *each("--storage-option")).stdout
    cli(
        "convert",
        f"{bucket}/old.zarr",
        f"{bucket}/new.zarr",
        "--zarr-format",
        "3",
        "--shards",
        "32,32",
        "--no-progress",
        *each("--source-option"),
        *each("--destination-option"),
    )
    converted = oxzarr.open_array(f"{bucket}/new.zarr", mode="r", storage_options=options)
    assert converted.metadata.zarr_format == 3 and converted.shards == (32, 32)
    assert_same(converted[...], values)
    cli("convert", f"{bucket}/new.zarr", tmp_path / "local.zarr", *each("--source-option"))
    assert_same(oxzarr.open_array(tmp_path / "local.zarr", mode="r")[...], values)
    for b, b_flags in [(f"{bucket}/new.zarr", each("--option-b")), (tmp_path / "local.zarr", [])]:
        same = cli("verify", f"{bucket}/old.zarr", b, *each("--option-a"), *b_flags)
        assert same.stdout == "equal\n"

    bad = cli("info", f"{bucket}/old.zarr", "--storage-option", "anon", check=False)
    assert bad.returncode == 2 and "expected KEY=VALUE, not 'anon'" in bad.stderr
    misspelt = cli(
        "info",
        f"{bucket}/old.zarr",
        *each("--storage-option"),
        "--storage-option",
        "kee=x",
        check=False,
    )
    assert misspelt.returncode == 2 and "kee" in misspelt.stderr, misspelt.stderr
    local = cli("info", tmp_path / "local.zarr", "--storage-option", "anon=true", check=False)
    assert local.returncode == 2 and "storage_options" in local.stderr, local.stderr
    np.save(tmp_path / "values.npy", values)
    with pytest.raises(ValueError, match="storage_options apply to Zarr stores"):
        convert(tmp_path / "values.npy", tmp_path / "npy.zarr", storage_options=options)
    assert not (tmp_path / "npy.zarr").exists()


def test_a_conversion_onto_its_own_source_is_refused_at_a_url(s3_bucket: Bucket) -> None:
    # Only local destinations were checked for overlapping the source: --overwrite deleted
    # the source before reading it, wrote fill values and reported success.
    bucket, options = s3_bucket
    group = oxzarr.open_group(f"{bucket}/g.zarr", mode="w", storage_options=options)
    group.create_array("a", shape=(4,), dtype="i4")[...] = [1, 2, 3, 4]
    for destination in (f"{bucket}/g.zarr", f"{bucket}/g.zarr/a", f"{bucket}/"):
        with pytest.raises(ValueError, match="overlap"):
            convert(
                f"{bucket}/g.zarr",
                RemoteStore(destination, storage_options=options),
                overwrite=True,
                storage_options=options,
            )
    convert(
        f"{bucket}/g.zarr",
        RemoteStore(f"{bucket}/g.zarr2", storage_options=options),
        storage_options=options,
    )
    for name in ("g.zarr", "g.zarr2"):
        stored = oxzarr.open_group(f"{bucket}/{name}", mode="r", storage_options=options)
        assert stored["a"][...].tolist() == [1, 2, 3, 4]


def test_prefixes_are_object_names_as_written(s3_bucket: Bucket) -> None:
    # As s3fs (zarr-python's way to S3) and the AWS command line take them: "%20" in an
    # s3:// URL is three characters of the objects' names, not a space.
    bucket, options = s3_bucket
    theirs = f"{bucket}/run%2001.zarr"
    zarr.create_array(theirs, shape=(3,), dtype="i4", chunks=(2,), storage_options=options)[...] = 5
    assert oxzarr.open_array(theirs, mode="r", storage_options=options)[...].tolist() == [5] * 3
    ours = f"{bucket}/sp ace%41 ü.zarr"
    oxzarr.create_array(ours, shape=(2,), dtype="u1", storage_options=options)[...] = [7, 8]
    assert zarr.open_array(ours, mode="r", storage_options=options)[...].tolist() == [7, 8]
    keys = RemoteStore(bucket, storage_options=options).list_prefix("")
    assert "run%2001.zarr/zarr.json" in keys and "sp ace%41 ü.zarr/zarr.json" in keys


class _RangeServer:
    """A web server for the files under `root` that answers ranged GETs, as a static web
    server does (or, not `honours_ranges`, with the whole file, as Python's http.server
    does), and keeps the path and Range header of every request. `before_answer`, if given,
    is called with each request's path before it is answered. Listings (WebDAV's PROPFIND)
    are answered with `propfind_status`, 501 unless given. Each file has an entity tag, as
    nginx and Apache give it, unless not `etags` (as Python's http.server); with
    `etag_per_answer`, one of two by turns, whatever the file (two load-balanced servers,
    each with its own entity tags, answering by turns). The paths in
    `refused` are answered with their status alone (a proxy refusing them). With
    `content_encoding` ("gzip", say), every file (those whose path `coded` takes, if given)
    is served coded so, its ranges being ranges of the coded bytes, as S3 serves an object
    uploaded with that Content-Encoding."""

    def __init__(
        self,
        root: Path,
        honours_ranges: bool = True,
        authorization: str | None = None,
        before_answer: Callable[[str], None] | None = None,
        propfind_status: int | None = None,
        etags: bool = True,
        refused: dict[str, int] | None = None,
        etag_per_answer: bool = False,
        content_encoding: str | None = None,
        coded: Callable[[str], bool] | None = None,
    ) -> None:
        import gzip
        import itertools

        answers = itertools.count()
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.requests: list[tuple[str, str | None]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_HEAD(self) -> None:
                # As a static web server answers it: the GET's headers, no body (not kept
                # in `requests`, which are the GETs).
                self.do_GET(head=True)

            def do_GET(self, head: bool = False) -> None:
                asked = None if head else self.headers.get("Range")
                if not head:
                    server.requests.append((self.path, asked))
                if before_answer is not None and not head:
                    before_answer(self.path)
                if authorization and self.headers.get("Authorization") != authorization:
                    self.send_response(401)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if refused and self.path in refused:
                    self.send_error(refused[self.path])
                    return
                path = root / self.path.lstrip("/")
                if not path.is_file():
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                stat = path.stat()
                data = path.read_bytes()
                encoding = content_encoding
                if coded is not None and not coded(self.path):
                    encoding = None
                if encoding == "gzip":
                    data = gzip.compress(data, mtime=0)
                found = re.fullmatch(r"bytes=(\d*)-(\d*)", asked or "")
                if found and honours_ranges:
                    first, last = found.groups()
                    if not first:
                        start, end = max(len(data) - int(last), 0), len(data) - 1
                    else:
                        start = int(first)
                        end = min(int(last), len(data) - 1) if last else len(data) - 1
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
                    data = data[start : end + 1]
                else:
                    self.send_response(200)
                if honours_ranges:
                    self.send_header("Accept-Ranges", "bytes")
                if etag_per_answer:
                    self.send_header("ETag", f'"backend-{next(answers) % 2}"')
                elif etags:
                    tag = f"{stat.st_ino:x}-{stat.st_mtime_ns:x}-{stat.st_size:x}"
                    self.send_header("ETag", f'"{tag}"')
                if encoding:
                    self.send_header("Content-Encoding", encoding)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if not head:
                    self.wfile.write(data)

            def do_PROPFIND(self) -> None:
                # Not given: http.server's own answer to a method it has not (501).
                self.send_error(propfind_status or 501)

            def log_message(self, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:
                # A client gone before its answer (a fetch ahead dropped) is no error here.
                if not isinstance(sys.exc_info()[1], ConnectionError):
                    super().handle_error(request, client_address)

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_web_server_without_entity_tags(tmp_path: Path) -> None:
    """Without entity tags a rewrite of the same size (within a second) looks the same: a
    shard's index was kept and a decoded chunk cached, and both were read stale. Neither is
    kept for such a server; with entity tags (the other tests) both are."""
    import struct

    from numcodecs import CRC32C

    path = tmp_path / "s.zarr"
    oxzarr.create_array(path, shape=(4,), chunks=(2,), shards=(4,), dtype="<i4", compressors=None)[
        ...
    ] = [1, 2, 3, 4]
    oxzarr.create_array(tmp_path / "c.zarr", shape=(4,), dtype="<i4", compressors=None)[...] = [
        1,
        2,
        3,
        4,
    ]
    server = _RangeServer(tmp_path, etags=False)
    try:
        sharded = oxzarr.open_array(f"{server.url}/s.zarr", mode="r")
        assert sharded[...].tolist() == [1, 2, 3, 4]
        # Another writer's shard of the same size, its inner chunks the other way round.
        inner = [np.array(pair, "<i4").tobytes() for pair in ([10, 20], [30, 40])]
        index = CRC32C().encode(struct.pack("<4Q", 8, 8, 0, 8))
        (path / "c" / "new").write_bytes(inner[1] + inner[0] + bytes(index))
        (path / "c" / "new").replace(path / "c" / "0")
        assert sharded[...].tolist() == [10, 20, 30, 40]
        with oxzarr.config.set({"chunk_cache_bytes": 1 << 20}):
            plain = oxzarr.open_array(f"{server.url}/c.zarr", mode="r")
            assert plain[...].tolist() == [1, 2, 3, 4]
            oxzarr.open_array(tmp_path / "c.zarr")[...] = [5, 6, 7, 8]
            assert plain[...].tolist() == [5, 6, 7, 8]
    finally:
        server.close()


def test_a_chunk_a_web_server_refuses_with_405_is_an_error_not_a_fill_value(
    tmp_path: Path,
) -> None:
    # object_store reports a web server's 405 (Method Not Allowed) as not found: a chunk or
    # shard a proxy refused was read as missing, its fill value returned in silence.
    values = np.arange(6, dtype="i4")
    oxzarr.create_array(tmp_path / "a.zarr", shape=(6,), chunks=(2,), dtype="i4")[...] = values
    oxzarr.create_array(tmp_path / "s.zarr", shape=(6,), chunks=(1,), shards=(2,), dtype="i4")[
        ...
    ] = values
    oxzarr.create_array(tmp_path / "m.zarr", shape=(6,), dtype="i4")
    refused = {"/a.zarr/c/1": 405, "/s.zarr/c/1": 405, "/m.zarr/zarr.json": 405}
    server = _RangeServer(tmp_path, refused=refused)
    try:
        for name in ("a.zarr", "s.zarr"):
            a = oxzarr.open_array(f"{server.url}/{name}", mode="r")
            assert_same(a[4:], values[4:])
            for selection in (slice(None), 2):
                with pytest.raises(OSError, match="405 Method Not Allowed") as failed:
                    a[selection]
                assert not isinstance(failed.value, FileNotFoundError)
                assert f"{server.url}/{name}/c/1" in str(failed.value)
        with pytest.raises(OSError, match=re.escape(f"{server.url}/m.zarr/zarr.json")) as failed:
            oxzarr.open_array(f"{server.url}/m.zarr", mode="r")
        assert not isinstance(failed.value, FileNotFoundError)
        # A real 404 is still a missing chunk.
        (tmp_path / "a.zarr" / "c" / "0").unlink()
        assert oxzarr.open_array(f"{server.url}/a.zarr", mode="r")[:2].tolist() == [0, 0]
    finally:
        server.close()


def test_a_sharded_array_from_servers_whose_entity_tags_differ_by_request(
    tmp_path: Path,
) -> None:
    # Each ranged request of a shard came with another version, so its index and inner
    # chunks never agreed: "the shard was replaced while it was read, 8 times in a row".
    # The shard is now read whole, index and inner chunks from one answer.
    values = sample((64, 64), "int32")
    oxzarr.create_array(
        tmp_path / "s.zarr", shape=values.shape, chunks=(8, 8), shards=(32, 32), dtype="i4"
    )[...] = values
    # Reads of several requests a shard (runs of inner chunks, of several shards at once)
    # still ended so: each shard still mixed is read whole, one at a time.
    many = sample((128, 128), "int32")
    kwargs: dict[str, Any] = {"chunks": (8, 8), "shards": (64, 64), "dtype": "i4"}
    oxzarr.create_array(tmp_path / "many.zarr", shape=many.shape, **kwargs)[...] = many
    oxzarr.create_array(tmp_path / "raw.zarr", shape=many.shape, compressors=None, **kwargs)[
        ...
    ] = many
    text = np.array([str(i) for i in range(64 * 64)], dtype=object).reshape(64, 64)
    kwargs.update(dtype=str, shards=(32, 32))
    oxzarr.create_array(tmp_path / "text.zarr", shape=text.shape, **kwargs)[...] = text
    # Many inner chunks of one shard read on many threads: two threads held the shard from
    # two answers, the second replacing the first's under it.
    kwargs.update(chunks=(4, 4), shards=(64, 64))
    oxzarr.create_array(tmp_path / "one.zarr", shape=text.shape, **kwargs)[...] = text
    server = _RangeServer(tmp_path, etag_per_answer=True)
    try:
        a = oxzarr.open_array(f"{server.url}/s.zarr", mode="r")
        assert_same(a[3:40, 5:60], values[3:40, 5:60])
        assert_same(a[...], values)
        assert_same(a[33, 2:9], values[33, 2:9])
        for name in ("many.zarr", "raw.zarr"):
            a = oxzarr.open_array(f"{server.url}/{name}", mode="r")
            for selection in (np.s_[...], np.s_[3:100, 5:120], np.s_[::3, ::5]):
                assert_same(a[selection], many[selection])
            points = (np.arange(0, 127, 3), np.arange(127, 0, -3))
            assert_same(a.vindex[points], many[points])
        t = oxzarr.open_array(f"{server.url}/text.zarr", mode="r")
        assert t[...].tolist() == text.tolist()
        assert t.vindex[[1, 40], [2, 50]].tolist() == text[[1, 40], [2, 50]].tolist()
        one = oxzarr.open_array(f"{server.url}/one.zarr", mode="r")
        for _ in range(3):
            assert one[...].tolist() == text.tolist()
        # With the decoded-chunk cache, a cached inner chunk is checked against the shard's
        # version, which the server gave anew for each question: the shard held whole
        # answers it.
        with oxzarr.config.set({"chunk_cache_bytes": 1 << 26}):
            cached = oxzarr.open_array(f"{server.url}/raw.zarr", mode="r")
            for _ in range(3):
                assert_same(cached[3:100, 5:120], many[3:100, 5:120])
    finally:
        server.close()


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_a_web_server_that_ignores_ranges(tmp_path: Path, zarr_format: int) -> None:
    """Uncompressed chunks and shards are read in parts; a server answering such a request
    with the whole file (Python's http.server) is read all the same, parts cut from whole
    values, and after its first such answer, asked for whole values only."""
    values = sample((200, 200), "float64")
    kwargs: dict[str, Any] = {"dtype": "f8", "chunks": (100, 100), "compressors": None}
    oxzarr.create_array(tmp_path / "raw", shape=(200, 200), zarr_format=zarr_format, **kwargs)[
        ...
    ] = values
    if zarr_format == 3:
        kwargs["chunks"], kwargs["shards"] = (20, 20), (100, 100)
        oxzarr.create_array(tmp_path / "sharded", shape=(200, 200), **kwargs)[...] = values
    server = _RangeServer(tmp_path, honours_ranges=False)
    try:
        for name in ["raw", "sharded"][: zarr_format - 1]:
            a = oxzarr.open_array(f"{server.url}/{name}", mode="r")
            assert_same(a[...], values)
            assert_same(a[150, 3:7], values[150, 3:7])
            server.requests.clear()
            assert_same(a.vindex[[1, 120], [199, 5]], values[[1, 120], [199, 5]])
            assert all(asked is None for _, asked in server.requests), server.requests
    finally:
        server.close()


def test_values_served_gzipped_are_decoded(tmp_path: Path) -> None:
    """Objects uploaded gzipped with `Content-Encoding: gzip` were read coded: "invalid JSON"
    at the first metadata document. They are decoded, as zarr-python's HTTP client decodes
    them; a part of one (a shard's index) is cut from the whole value decoded, the coded
    bytes' ranges being no ranges of the value."""
    values = sample((40, 30), "int32")
    oxzarr.create_array(tmp_path / "plain", shape=values.shape, chunks=(16, 16), dtype="i4")[
        ...
    ] = values
    kwargs: dict[str, Any] = {"dtype": "i4", "chunks": (8, 8), "shards": (16, 16)}
    kwargs["compressors"] = None
    oxzarr.create_array(tmp_path / "sharded", shape=values.shape, **kwargs)[...] = values
    group = oxzarr.open_group(tmp_path / "g", mode="w", zarr_format=2)
    group.create_array("a", shape=values.shape, chunks=(16, 16), dtype="i4")[...] = values
    oxzarr.consolidate_metadata(tmp_path / "g")
    server = _RangeServer(tmp_path, content_encoding="gzip")
    try:
        for name in ("plain", "sharded", "g/a"):
            a = oxzarr.open_array(f"{server.url}/{name}", mode="r")
            assert_same(a[...], values)
            assert_same(a[17, 3:29], values[17, 3:29])
            assert_same(a.vindex[[0, 39], [29, 1]], values[[0, 39], [29, 1]])
            if name != "sharded":
                # zarr-python, through fsspec's HTTP client, reads the same; its client fails
                # on parts of a coded value (a shard's), which it tries to decode alone.
                assert_same(zarr.open_array(f"{server.url}/{name}", mode="r")[...], values)
        g = oxzarr.open_consolidated(f"{server.url}/g", mode="r")
        assert_same(g["a"][...], values)
    finally:
        server.close()
    server = _RangeServer(tmp_path, content_encoding="br")
    try:
        with pytest.raises(OSError, match="Content-Encoding: br") as failed:
            oxzarr.open_array(f"{server.url}/plain", mode="r")
        assert f"{server.url}/plain/zarr.json" in str(failed.value)
    finally:
        server.close()


def test_values_served_gzipped_keep_their_version_and_leave_others_read_in_parts(
    tmp_path: Path,
) -> None:
    """A value served gzipped has its decoded size in a GET and its coded size in a HEAD: the
    decoded-chunk cache took every chunk it had cached from such values for another version,
    and fetched them all again (a sharded array retried its shards). And one shard served
    coded made the store fetch every other value whole, for good, where their parts (an
    inner chunk of a shard) are asked for alone."""
    values = sample((32, 32), "int32")
    kwargs: dict[str, Any] = {"dtype": "i4", "chunks": (8, 8), "shards": (16, 16)}
    made = oxzarr.open_group(tmp_path / "g", mode="w")
    for name in ("coded", "plain"):
        made.create_array(name, shape=values.shape, compressors=None, **kwargs)[...] = values
    server = _RangeServer(tmp_path, content_encoding="gzip", coded=lambda p: "/coded/" in p)
    try:
        # One store, holding both arrays.
        group = oxzarr.open_group(f"{server.url}/g", mode="r")
        with oxzarr.config.set({"chunk_cache_bytes": 1 << 24}):
            coded = group["coded"]
            assert_same(coded[...], values)
            before = len(server.requests)
            for _ in range(3):
                assert_same(coded[...], values)
                assert_same(coded[3:20, 9], values[3:20, 9])
            # Served from the cache: the values' versions (HEAD) are the ones read.
            assert server.requests[before:] == []
        plain = group["plain"]
        before = len(server.requests)
        assert_same(plain[17, 18], values[17, 18])
        # The index and the one inner chunk, each by its range.
        asked = server.requests[before:]
        assert len(asked) == 2 and all(r is not None for _, r in asked), asked
    finally:
        server.close()


def test_a_web_servers_user_and_password_in_the_url(tmp_path: Path) -> None:
    """Sent as Basic authentication, as zarr-python's aiohttp sends them; never shown in
    messages."""
    import base64

    oxzarr.create_array(tmp_path / "a.zarr", shape=(3,), dtype="i2", fill_value=7)
    token = base64.b64encode(b"me:s3c ret").decode()
    server = _RangeServer(tmp_path, authorization=f"Basic {token}")
    try:
        host = server.url.removeprefix("http://")
        a = oxzarr.open_array(f"http://me:s3c%20ret@{host}/a.zarr", mode="r")
        assert a[...].tolist() == [7, 7, 7]
        with pytest.raises(PermissionError) as refused:
            oxzarr.open_array(f"http://me:wrong@{host}/a.zarr", mode="r")
        assert "wrong" not in str(refused.value) and "me:***@" in str(refused.value)
        assert repr(a.store) == f"RemoteStore('http://me:***@{host}/a.zarr')"
    finally:
        server.close()


def test_a_web_servers_headers_query_strings_and_timeouts(tmp_path: Path) -> None:
    """Headers in storage_options (a bearer token) are sent, as fsspec sends them; a query
    string, which would not be sent with the keys' requests (another version of the data
    read in silence), is refused without printing it; a server that never answers is a
    TimeoutError saying so."""
    import socket

    oxzarr.create_array(tmp_path / "a.zarr", shape=(3,), dtype="i2", fill_value=7)
    server = _RangeServer(tmp_path, authorization="Bearer T0KEN")
    try:
        bearer = {"Authorization": "Bearer T0KEN"}
        for options in ({"headers": bearer}, {"client_kwargs": {"headers": bearer}}):
            a = oxzarr.open_array(f"{server.url}/a.zarr", mode="r", storage_options=options)
            assert a[...].tolist() == [7, 7, 7]
        with pytest.raises(PermissionError):
            oxzarr.open_array(f"{server.url}/a.zarr", mode="r")
        server.requests.clear()
        with pytest.raises(ValueError, match="query string") as refused:
            oxzarr.open_array(f"{server.url}/a.zarr?token=SECRET", mode="r")
        assert "SECRET" not in str(refused.value) and server.requests == []
    finally:
        server.close()
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # connections are taken, never answered
    try:
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/a.zarr"
        with pytest.raises(TimeoutError, match="timed out"):
            oxzarr.open_array(url, mode="r", storage_options={"timeout": "1s"})
    finally:
        silent.close()


def test_fsspec_http_file_system_options_are_taken(tmp_path: Path) -> None:
    # The options of fsspec's HTTP file system about its own client (reads in blocks, their
    # cache, links in pages, quoting, learning sizes), written for zarr-python, were refused
    # as unknown options.
    oxzarr.create_array(tmp_path / "a.zarr", shape=(3,), dtype="i2", fill_value=7)
    fsspec_only = {
        "block_size": 0,
        "simple_links": True,
        "same_scheme": True,
        "size_policy": "get",
        "cache_type": "none",
        "cache_options": {},
        "encoded": True,
    }
    server = _RangeServer(tmp_path)
    try:
        url = f"{server.url}/a.zarr"
        for name, value in fsspec_only.items():
            a = oxzarr.open_array(url, mode="r", storage_options={name: value})
            assert a[...].tolist() == [7, 7, 7], name
        # zarr-python's FsspecStore holds them too.
        theirs = zarr.storage.FsspecStore.from_url(url, storage_options=fsspec_only, read_only=True)
        assert oxzarr.open_array(theirs, mode="r")[...].tolist() == [7, 7, 7]
    finally:
        server.close()


def test_timeouts_given_as_numbers_are_seconds() -> None:
    # A number, as fsspec's HTTP client (aiohttp) takes a timeout, was refused: object_store
    # failed to parse "1" as a length of time.
    import socket

    for name in ("timeout", "connect_timeout", "read_timeout", "pool_idle_timeout"):
        for seconds in (2, 0.25):
            RemoteStore("http://127.0.0.1:9/a.zarr", storage_options={name: seconds})
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # connections are taken, never answered
    try:
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/a.zarr"
        started = time.monotonic()
        with pytest.raises(TimeoutError, match="timed out"):
            oxzarr.open_array(url, mode="r", storage_options={"timeout": 1})
        # Seconds, not a smaller unit.
        assert time.monotonic() - started >= 1
    finally:
        silent.close()


def test_anon_for_a_web_server_is_refused_by_its_own_name() -> None:
    # The error named aws_skip_signature, the S3 option anon stands for, which the caller
    # never wrote.
    url = "http://127.0.0.1:9/a.zarr"
    with pytest.raises(ValueError, match=re.escape(f"anon=True for {url}")) as refused:
        oxzarr.open_array(url, mode="r", storage_options={"anon": True})
    assert "aws_skip_signature" not in str(refused.value)


def test_neighbouring_inner_chunks_come_in_one_request(tmp_path: Path) -> None:
    """A few neighbouring inner chunks of a remote shard cost one ranged request between
    them (after the shard's index), not one each; a run of more than a megabyte of them
    comes in a few."""
    values = sample((64, 256), "float64")
    # Shards of 4x16 inner chunks of 16x16 (2 KiB each, compressed: the ranges differ).
    oxzarr.create_array(
        tmp_path / "a.zarr", shape=values.shape, dtype="f8", chunks=(16, 16), shards=(64, 256)
    )[...] = values
    # A shard of one 128 KiB inner chunk per row band, 512 KiB stored in all.
    oxzarr.create_array(
        tmp_path / "big.zarr",
        shape=(512, 256),
        dtype="f8",
        chunks=(64, 256),
        shards=(512, 256),
        compressors=None,
    )[...] = sample((512, 256), "float64")
    server = _RangeServer(tmp_path)
    try:
        a = oxzarr.open_array(f"{server.url}/a.zarr", mode="r")
        assert_same(a[0:4, 0:64], values[0:4, 0:64])
        server.requests.clear()
        # Four neighbouring inner chunks along a row, the index already known.
        assert_same(a[16:20, 0:64], values[16:20, 0:64])
        assert [path for path, _ in server.requests] == ["/a.zarr/c/0/0"]
        server.requests.clear()
        # Rows of 8 inner chunks (16 KiB apart in the shard): still one request.
        assert_same(a[0:64, 100:110], values[0:64, 100:110])
        assert len(server.requests) == 1
        big = oxzarr.open_array(f"{server.url}/big.zarr", mode="r")
        big[0, 0]
        server.requests.clear()
        # 8 inner chunks of 128 KiB: batches of up to 1 MiB, not 8 requests.
        assert_same(big[:, 3], sample((512, 256), "float64")[:, 3])
        assert len(server.requests) == 1
    finally:
        server.close()


def _rows(tmp_path: Path, rows: int) -> np.ndarray:
    """Writes an array of `rows` one-row chunks at `tmp_path`/a.zarr; returns its values."""
    values = sample((rows, 50), "int32")
    a = oxzarr.create_array(tmp_path / "a.zarr", shape=(rows, 50), dtype="i4", chunks=(1, 50))
    a[...] = values
    return values


class _SignalAtThirdChunk:
    """A server's `before_answer`: at the third request for a chunk, sends `signum` to the
    main thread, as a terminal's Ctrl-C does SIGINT; then answers each chunk after
    `before_chunk(path)`."""

    def __init__(self, signum: int, before_chunk: Callable[[str], None]) -> None:
        self.signum, self.before_chunk = signum, before_chunk
        self.chunk_requests = 0
        self.lock = threading.Lock()

    def __call__(self, path: str) -> None:
        import _thread

        if "/c/" not in path:
            return
        with self.lock:
            self.chunk_requests += 1
            send = self.chunk_requests == 3
        if send:
            _thread.interrupt_main(self.signum)
        self.before_chunk(path)


def test_ctrl_c_stops_a_read_of_many_chunks(tmp_path: Path) -> None:
    """Ctrl-C during a read of many chunks raises KeyboardInterrupt once the chunks being read
    are in, leaving the others unasked for: it used to wait for every chunk of the read (here
    a thousand requests of a slow server). The array reads whole afterwards."""
    values = _rows(tmp_path, 1000)
    slow = _SignalAtThirdChunk(signal.SIGINT, lambda _: time.sleep(0.05))
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    server = _RangeServer(tmp_path, before_answer=slow)
    try:
        a = oxzarr.open_array(f"{server.url}/a.zarr", mode="r")
        with pytest.raises(KeyboardInterrupt):
            a[...]
        assert 3 <= slow.chunk_requests < 500, slow.chunk_requests
        assert_same(a[...], values)
    finally:
        server.close()
        signal.signal(signal.SIGINT, previous)


def test_signal_handlers_run_during_a_long_read(tmp_path: Path) -> None:
    """A Python signal handler runs while a read of many chunks is under way, not after it;
    one that does not raise leaves the read to finish with every value. (Here the server
    holds back every chunk until the handler has run: the read used to finish only once
    they had waited the 10 s out.)"""
    values = _rows(tmp_path, 200)
    handled = threading.Event()
    held_back_in_vain = []

    def after_the_handler(path: str) -> None:
        if not handled.wait(10):
            held_back_in_vain.append(path)

    previous = signal.signal(signal.SIGUSR1, lambda *_: handled.set())
    server = _RangeServer(
        tmp_path, before_answer=_SignalAtThirdChunk(signal.SIGUSR1, after_the_handler)
    )
    try:
        a = oxzarr.open_array(f"{server.url}/a.zarr", mode="r")
        assert_same(a[...], values)
        assert handled.is_set()
        assert not held_back_in_vain, held_back_in_vain[:3]
    finally:
        server.close()
        signal.signal(signal.SIGUSR1, previous)


FORK_IN_A_HANDLER = """
import os, signal, sys, threading
sys.path.insert(0, sys.argv[2])
import oxzarr
from tests.test_remote import _RangeServer, _SignalAtThirdChunk
from pathlib import Path

handled = threading.Event()
chunks_after_the_handler = _SignalAtThirdChunk(signal.SIGUSR1, lambda _: handled.wait(10))

child = []

def fork(*_):
    pid = os.fork()
    if pid:
        child.append(pid)
        handled.set()

signal.signal(signal.SIGUSR1, fork)
server = _RangeServer(Path(sys.argv[1]), before_answer=chunks_after_the_handler)
a = oxzarr.open_array(server.url + "/a.zarr", mode="r")
try:
    outcome = "read %d" % int(a[...].sum())
except RuntimeError as e:
    outcome = "refused: %s" % e
if not child:
    print("child", outcome, flush=True)
    os._exit(0)
_, status = os.waitpid(child[0], 0)
print("parent", outcome, os.waitstatus_to_exitcode(status), flush=True)
server.close()
"""


def test_a_signal_handler_forking_during_a_read(tmp_path: Path) -> None:
    """A child forked by a signal handler that ran during a read of many chunks gets an
    error for that read, whose work stayed with the parent; the parent reads on. The child
    waited forever for the parent's pool, which has no threads in it."""
    values = _rows(tmp_path, 200)
    root = str(Path(__file__).resolve().parent.parent)
    done = subprocess.run(
        [sys.executable, "-c", FORK_IN_A_HANDLER, str(tmp_path), root],
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = sorted(done.stdout.splitlines())
    assert len(lines) == 2, (done.stdout, done.stderr[-2000:])
    assert lines[0].startswith("child refused: the process forked during this operation")
    assert lines[1] == f"parent read {int(values.sum())} 0"


def test_a_small_web_server_answering_slowly(tmp_path: Path) -> None:
    """A read of many chunks from Python's http.server (which queues 5 connections) answering
    each in 50 ms gets every value. It kept up to 16 + 256 requests in flight (fetching ahead),
    and the connections the server could not take timed out after 30 s: the read failed."""
    values = _rows(tmp_path, 400)

    def slowly(path: str) -> None:
        if "/c/" in path:
            time.sleep(0.05)

    server = _RangeServer(tmp_path, before_answer=slowly)
    try:
        a = oxzarr.open_array(f"{server.url}/a.zarr", mode="r")
        assert_same(a[...], values)
        assert_same(a[...], values)
    finally:
        server.close()


_ANNOUNCING_TOO_MUCH = """
import http.server, json, sys, threading
from pathlib import Path
import oxzarr

root, size = Path(sys.argv[1]), int(sys.argv[2])

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        path = root / self.path.lstrip("/")
        if path.name == "0" or not path.exists():
            # A value announced larger than memory, of which a little is ever sent.
            self.send_response(200)
            self.send_header("Content-Length", str(size))
            self.end_headers()
            try:
                self.wfile.write(bytes(1 << 16))
            except OSError:
                pass
            return
        data = path.read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass

server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
threading.Thread(target=server.serve_forever, daemon=True).start()
url = f"http://127.0.0.1:{server.server_address[1]}"
results = []
for read in (
    lambda: oxzarr.open_array(f"{url}/a.zarr", mode="r")[...],
    lambda: oxzarr.open_array(f"{url}/missing.zarr", mode="r"),
):
    try:
        read()
        results.append("read")
    except Exception as e:
        results.append(f"{type(e).__name__}: {e}")
print(json.dumps(results))
"""


def test_a_web_server_announcing_more_than_memory_is_refused(tmp_path: Path) -> None:
    """A chunk or a zarr.json whose Content-Length no memory holds aborted the process
    (object_store collects a body into one allocation of that size, and an allocation that
    fails aborts): it is now a MemoryError naming the key, as for files."""
    oxzarr.create_array(tmp_path / "a.zarr", shape=(4,), chunks=(4,), dtype="i4")[...] = 1
    # A petabyte: past any machine's memory, however a container shows it.
    run = subprocess.run(
        [sys.executable, "-c", _ANNOUNCING_TOO_MUCH, str(tmp_path), str(1 << 50)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    chunk, metadata = json.loads(run.stdout)
    assert chunk.startswith("MemoryError: ") and "a.zarr/c/0: cannot allocate" in chunk, chunk
    assert "missing.zarr/zarr.json: cannot allocate" in metadata, metadata


def test_verify_and_from_array_of_a_web_server_that_lists_nothing(tmp_path: Path) -> None:
    """Both look for the stored chunks first, to read no others; a web server cannot list
    them, and both failed where they had read every chunk before."""
    values = np.arange(40, dtype="i4")
    oxzarr.create_array(tmp_path / "a.zarr", shape=(40,), chunks=(8,), dtype="i4")[...] = values
    server = _RangeServer(tmp_path)
    try:
        url = f"{server.url}/a.zarr"
        verified = subprocess.run(
            [sys.executable, "-m", "oxzarr", "verify", url, str(tmp_path / "a.zarr")],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert (verified.returncode, verified.stdout) == (0, "equal\n"), verified.stderr
        copy = oxzarr.from_array(tmp_path / "copy.zarr", data=oxzarr.open_array(url, mode="r"))
        assert_same(copy[...], values)
    finally:
        server.close()


def test_the_last_shards_of_an_axis_of_2_64_inner_chunks_read_from_a_web_server(
    tmp_path: Path,
) -> None:
    # A read from a store that waits hints the shards it will need whole: the end of the last
    # shard's inner chunks, (shard + 1) * inner chunks per shard, passed 2**64 - 1 and
    # overflowed (a PanicException in a debug build).
    n = 2**64 - 1
    a = oxzarr.create_array(
        tmp_path / "a.zarr", shape=(n,), chunks=(1,), shards=(16,), dtype="i2", fill_value=3
    )
    a[n - 40 :] = np.arange(40, dtype="i2")
    values = np.full(64, 3, dtype="i2")
    values[-40:] = np.arange(40)
    server = _RangeServer(tmp_path)
    try:
        r = oxzarr.open_array(f"{server.url}/a.zarr", mode="r")
        assert_same(r[n - 64 :], values)
        assert_same(r[n - 64 :: 5], values[::5])
    finally:
        server.close()
