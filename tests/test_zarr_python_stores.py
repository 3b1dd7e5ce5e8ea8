"""zarr-python's store objects given to oxzarr: its LocalStore and ZipStore, its FsspecStore
(over local files, S3 and web servers) and its ObjectStore (over obstore's LocalStore,
S3Store and HTTPStore). oxzarr opens each place anew with the same options, reads what
zarr-python wrote there and writes what zarr-python then reads; read-only stores stay
read-only, and stores it cannot reach are refused with a TypeError."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr
from obstore.store import HTTPStore as ObHTTPStore
from obstore.store import LocalStore as ObLocalStore
from obstore.store import MemoryStore as ObMemoryStore
from obstore.store import S3Store as ObS3Store
from zarr.storage import FsspecStore, LocalStore, ObjectStore

import oxzarr
from oxzarr.errors import ReadOnlyError
from tests.conftest import S3_CREDENTIALS, assert_same, sample
from tests.test_remote import _allow_anonymous_reads, _RangeServer

Bucket = tuple[str, dict[str, Any]]
#: A zarr-python store at a place named by a suffix of the test's place (a new array each).
MakeStore = Callable[[str, bool], Any]


def _both_ways(make: MakeStore) -> None:
    """oxzarr reads what zarr-python writes through `make`'s stores, and the reverse."""
    values = sample((30, 20), "int16")
    theirs = zarr.create_array(
        make("zp.zarr", False), shape=values.shape, dtype="i2", chunks=(8, 8)
    )
    theirs[...] = values
    assert_same(oxzarr.open_array(make("zp.zarr", False), mode="r")[...], values)
    # Read-only stays read-only.
    read_only = oxzarr.open_array(make("zp.zarr", True))
    with pytest.raises(ReadOnlyError):
        read_only[0, 0] = 1

    ours = oxzarr.create_array(make("ox.zarr", False), shape=(17,), dtype="f4", chunks=(5,))
    ours[...] = np.arange(17, dtype="f4")
    assert_same(zarr.open_array(make("ox.zarr", False), mode="r")[...], np.arange(17, dtype="f4"))


def test_local_stores(tmp_path: Path) -> None:
    _both_ways(lambda name, ro: LocalStore(tmp_path / "local" / name, read_only=ro))
    _both_ways(
        lambda name, ro: FsspecStore.from_url(
            f"file://{tmp_path}/fsspec/{name}", storage_options={"auto_mkdir": True}, read_only=ro
        )
    )

    def obstore_local(name: str, read_only: bool) -> ObjectStore:
        return ObjectStore(
            ObLocalStore(tmp_path / "obstore" / name, mkdir=True), read_only=read_only
        )

    _both_ways(obstore_local)


def test_s3_stores(s3_bucket: Bucket, s3_endpoint: str) -> None:
    bucket, options = s3_bucket
    # With fsspec's own options, which oxzarr has no use for.
    options = {**options, "default_block_size": 2**20, "use_listings_cache": False}
    _both_ways(
        lambda name, ro: FsspecStore.from_url(
            f"{bucket}/fsspec/{name}", storage_options=options, read_only=ro
        )
    )
    a = oxzarr.open_array(f"{bucket}/fsspec/ox.zarr", storage_options=options)
    assert a.shape == (17,)

    def obstore_s3(name: str, read_only: bool) -> ObjectStore:
        inner = ObS3Store(
            bucket[len("s3://") :],
            prefix=f"obstore/{name}",
            endpoint=s3_endpoint,
            access_key_id=S3_CREDENTIALS["key"],
            secret_access_key=S3_CREDENTIALS["secret"],
            region="us-east-1",
            client_options={"allow_http": True},
        )
        return ObjectStore(inner, read_only=read_only)

    _both_ways(obstore_s3)


def test_web_server_stores(s3_bucket: Bucket, s3_endpoint: str) -> None:
    bucket, options = s3_bucket
    name = bucket[len("s3://") :]
    values = sample((12, 9), "uint8")
    zarr.create_array(
        f"{bucket}/a.zarr", shape=values.shape, dtype="u1", chunks=(5, 5), storage_options=options
    )[...] = values
    _allow_anonymous_reads(s3_endpoint, name)
    url = f"{s3_endpoint}/{name}/a.zarr"
    through_fsspec = oxzarr.open_array(FsspecStore.from_url(url, read_only=True))
    assert_same(through_fsspec[...], values)
    inner = ObHTTPStore.from_url(url, client_options={"allow_http": True})
    through_obstore = oxzarr.open_array(ObjectStore(inner, read_only=True))
    assert_same(through_obstore[...], values)


def test_an_obstore_http_stores_default_headers_are_sent(tmp_path: Path) -> None:
    # object_store's name for the headers sent with every request, default_headers in an
    # obstore HTTPStore's client options, was refused as an unknown option.
    oxzarr.create_array(tmp_path / "a.zarr", shape=(3,), dtype="i2", fill_value=7)
    server = _RangeServer(tmp_path, authorization="Bearer T0KEN")
    try:
        inner = ObHTTPStore.from_url(
            f"{server.url}/a.zarr",
            client_options={
                "allow_http": True,
                "default_headers": {"Authorization": "Bearer T0KEN"},
            },
        )
        for lib in (oxzarr, zarr):
            read = lib.open_array(ObjectStore(inner, read_only=True), mode="r")
            assert read[...].tolist() == [7, 7, 7], lib.__name__
    finally:
        server.close()


def test_stores_oxzarr_cannot_reach_are_refused() -> None:
    with pytest.raises(TypeError, match=r"memory://.*MemoryStore\(\)"):
        oxzarr.open_group(FsspecStore.from_url("memory://somewhere"))
    with pytest.raises(TypeError, match="obstore's S3Store, GCSStore, HTTPStore and LocalStore"):
        oxzarr.open_group(ObjectStore(ObMemoryStore()))

    def credentials() -> dict[str, Any]:
        return {"access_key_id": "k", "secret_access_key": "s", "expires_at": None}

    inner = ObS3Store("bucket", credential_provider=credentials)
    with pytest.raises(TypeError, match="credential provider"):
        oxzarr.open_group(ObjectStore(inner))
    # Its MemoryStore keeps a dict the engine cannot write into: refused, saying what to use.
    with pytest.raises(TypeError, match=r"oxzarr\.storage\.MemoryStore\(\)"):
        oxzarr.open_group(zarr.storage.MemoryStore())


def test_a_memory_store_starts_from_zarr_pythons_buffers() -> None:
    """zarr-python's MemoryStore holds Buffers, not bytes; copying them failed with numpy's
    'Item key has incorrect type'."""
    theirs: dict[str, Any] = {}
    zarr.create_array(zarr.storage.MemoryStore(theirs), shape=(4,), dtype="i2")[...] = 5
    copied = oxzarr.storage.MemoryStore(theirs)
    assert_same(oxzarr.open_array(copied)[...], np.full(4, 5, dtype="i2"))


def test_unused_storage_options_are_a_type_error(tmp_path: Path) -> None:
    """As zarr-python raises, even for {}: code written for it catches a TypeError."""
    for options in ({"anon": True}, {}):
        with pytest.raises(TypeError, match="storage_options apply to s3://"):
            oxzarr.create_array(
                tmp_path / "a.zarr", shape=(3,), dtype="i4", storage_options=options
            )
        with pytest.raises(TypeError, match="storage_options apply to s3://"):
            oxzarr.open_group(LocalStore(tmp_path), storage_options=options)
    assert not (tmp_path / "a.zarr").exists()
    # fsspec URLs take them, as in zarr-python (auto_mkdir is fsspec's own).
    url = f"memory://{tmp_path.name}/unused"
    assert oxzarr.open_group(url, mode="w", storage_options={}).path == ""


def test_read_only_stores_refuse_writing_modes_at_open(tmp_path: Path) -> None:
    """As with oxzarr's own read-only stores and in zarr-python: refused when opened, not at
    the first write; zarr-python's ZipStore, which oxzarr opens read-only, says what writes."""
    zarr.create_array(tmp_path / "a.zarr", shape=(3,), dtype="i4")[...] = 7
    with pytest.raises(ValueError, match="read-only but mode is 'r\\+'") as refused:
        oxzarr.open_array(LocalStore(tmp_path / "a.zarr", read_only=True), mode="r+")
    assert "ZipStore" not in str(refused.value)
    with pytest.raises(ValueError, match="read-only but mode is 'w'"):
        oxzarr.open_group(LocalStore(tmp_path / "a.zarr", read_only=True), mode="w")
    assert_same(oxzarr.open_array(tmp_path / "a.zarr")[...], np.full(3, 7, dtype="i4"))

    path = tmp_path / "a.zip"
    with zarr.storage.ZipStore(path, mode="w") as theirs:
        zarr.create_array(theirs, shape=(3,), dtype="i4")[...] = 5
    with pytest.raises(ValueError, match=r"ZipStore\(path, mode='w'\) creates a zip"):
        oxzarr.open_array(zarr.storage.ZipStore(path, mode="a"), mode="r+")
    assert_same(oxzarr.open_array(zarr.storage.ZipStore(path, mode="a"))[...], np.full(3, 5, "i4"))
    with pytest.raises(ValueError, match="read-only but mode") as refused:
        oxzarr.open_array(oxzarr.storage.ZipStore(path), mode="r+")
    assert "zarr-python's ZipStore" not in str(refused.value)
    # zarr-python's ZipStore creates its file when first used: oxzarr finds none to open.
    with pytest.raises(FileNotFoundError, match=r"no zip file at .*new\.zip.*mode='w'"):
        oxzarr.create_array(
            zarr.storage.ZipStore(tmp_path / "new.zip", mode="w"), shape=(3,), dtype="i4"
        )


def test_store_paths(tmp_path: Path) -> None:
    """A StorePath (what zarr-python's arrays keep as store_path) is the keys below its path:
    it was refused."""
    from zarr.storage import StorePath

    root = zarr.open_group(LocalStore(tmp_path / "g.zarr"), mode="w")
    root.create_array("sub/a", shape=(4,), dtype="i2")[...] = [1, 2, 3, 4]
    expected = np.array([1, 2, 3, 4], dtype="i2")
    assert_same(oxzarr.open_array(root["sub/a"].store_path)[...], expected)
    at_sub = StorePath(LocalStore(tmp_path / "g.zarr"), "sub")
    assert_same(oxzarr.open_array(at_sub, path="a", mode="r")[...], expected)
    written = oxzarr.create_array(at_sub, name="b", shape=(2,), dtype="u1")
    written[...] = 9
    assert_same(zarr.open_array(tmp_path / "g.zarr", path="sub/b")[...], np.full(2, 9, "u1"))

    zarr_path = tmp_path / "g.zip"
    with zarr.storage.ZipStore(zarr_path, mode="w") as theirs:
        zarr.create_array(theirs, name="x/a", shape=(4,), dtype="i2")[...] = expected
    inside = StorePath(zarr.storage.ZipStore(zarr_path, mode="r"), "x")
    opened = oxzarr.open_array(inside, path="a", mode="r")
    assert_same(opened[...], expected)
    assert_same(pickle.loads(pickle.dumps(opened))[...], expected)
    assert "a" in oxzarr.open_group(inside, mode="r")


def test_nodes_made_at_a_store_path_keep_its_path_and_get_parent_groups(tmp_path: Path) -> None:
    # A StorePath was opened as a store of its own, rooted at its node path: the node made
    # there had the path '' (name '/'), and no group was written above it, so that
    # zarr-python found no group at the store's root.
    from zarr.storage import StorePath

    makers: dict[str, Callable[[Any, Any], Any]] = {
        "create_group": lambda lib, at: lib.create_group(at),
        "open_group": lambda lib, at: lib.open_group(at, mode="w"),
        "open_group path": lambda lib, at: lib.open_group(at, mode="w", path="c"),
        "group": lambda lib, at: lib.group(at),
        "create_array": lambda lib, at: lib.create_array(at, shape=(2,), dtype="i1"),
        "create_array name": lambda lib, at: lib.create_array(at, name="c", shape=(2,), dtype="i1"),
        "open_array": lambda lib, at: lib.open_array(at, mode="a", shape=(2,), dtype="i1"),
        "zeros": lambda lib, at: lib.zeros((2,), store=at, path="c"),
    }
    for what, make in makers.items():
        made = {}
        for lib in (zarr, oxzarr):
            root = tmp_path / what / lib.__name__
            node = make(lib, StorePath(LocalStore(root), "a/b"))
            files = sorted(p.relative_to(root).as_posix() for p in root.rglob("zarr.json"))
            members = [k for k, _ in zarr.open_group(root, mode="r").members(max_depth=None)]
            made[lib.__name__] = (node.path, node.name, files, members)
        assert made["oxzarr"] == made["zarr"], what
        assert made["oxzarr"][0].startswith("a/b"), what
    # What is there is found through the same StorePath, and through the store's root.
    at = StorePath(LocalStore(tmp_path / "zeros" / "oxzarr"), "a/b")
    assert oxzarr.open_array(at, path="c", mode="r").path == "a/b/c"
    assert oxzarr.open_group(at, mode="r").path == "a/b"
    assert oxzarr.open(at, path="c", mode="r").name == "/a/b/c"


def test_node_paths_put_into_a_web_servers_url_are_quoted(tmp_path: Path) -> None:
    # A StorePath's node path (and an obstore HTTPStore's prefix) was put into the web
    # server's URL as written: '%41' was read as the escape of 'A', '#' began a fragment
    # and '?' a query, so another node (or none) was opened.
    import http.server
    import threading

    from zarr.storage import StorePath

    from oxzarr.storage import CountingStore, make_store

    names = ["a%41", "aA", "a#b", "a", "a?b"]
    group = oxzarr.create_group(tmp_path / "g.zarr")
    for i, name in enumerate(names):
        group.create_array(name, shape=(2,), dtype="i1")[...] = i

    class Handler(http.server.SimpleHTTPRequestHandler):
        # Python's own file server: it unquotes the URL's path into a file name.
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(tmp_path), **kwargs)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"

    class HTTPStore:
        """obstore's HTTPStore as oxzarr reads it (and ObjectStore takes it), with a prefix,
        which obstore 0.12's has not."""

        __module__ = "obstore.store"
        credential_provider = None

        def __init__(self, prefix: str) -> None:
            self.url, self.prefix = url, prefix
            self.client_options = {"allow_http": "true"}

    try:
        for i, name in enumerate(names):
            at = StorePath(FsspecStore.from_url(url, read_only=True), f"g.zarr/{name}")
            assert oxzarr.open_array(at, mode="r")[0] == i, name
            assert oxzarr.open_array(make_store(at), mode="r")[0] == i, name
            assert oxzarr.open_array(CountingStore(at), mode="r")[0] == i, name
            prefixed = ObjectStore(HTTPStore(f"g.zarr/{name}"), read_only=True)  # type: ignore[arg-type]
            assert oxzarr.open_array(prefixed, mode="r")[0] == i, name
    finally:
        server.shutdown()
        server.server_close()


def test_a_tilde_in_another_librarys_store_is_a_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """zarr-python's and obstore's local stores take a leading `~` as a directory of that
    name: oxzarr, opening the same place anew, made it the home directory, and wrote and read
    somewhere else than the store object named."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "~").mkdir()
    local = LocalStore("~/local.zarr")
    oxzarr.create_array(local, shape=(3,), dtype="i4")[...] = [1, 2, 3]
    assert (tmp_path / "~" / "local.zarr" / "zarr.json").is_file()
    assert zarr.open_array(local, mode="r")[...].tolist() == [1, 2, 3]
    obstore = ObjectStore(ObLocalStore("~/ob.zarr", mkdir=True))
    zarr.create_array(obstore, shape=(2,), dtype="i1")[...] = 7
    assert oxzarr.open_array(obstore, mode="r")[...].tolist() == [7, 7]
    with zarr.storage.ZipStore("~/data.zip", mode="w") as zipped:
        zarr.create_array(zipped, shape=(2,), dtype="i1")[...] = 5
    zipped = zarr.storage.ZipStore("~/data.zip", mode="r")
    assert oxzarr.open_array(zipped, mode="r")[...].tolist() == [5, 5]
    assert not (tmp_path / "home").exists()


def test_fsspec_mappings_and_subclasses_of_zarr_python_stores(tmp_path: Path) -> None:
    """fsspec's mapping (get_mapper), which zarr-python and xarray take, was refused naming
    nothing; a subclass of zarr-python's LocalStore was refused as if it were LocalStore."""
    import fsspec
    import xarray as xr

    path = tmp_path / "g.zarr"
    oxzarr.create_group(fsspec.get_mapper(str(path))).create_array(
        "v", shape=(3,), dtype="i4", dimension_names=["x"]
    )[...] = [1, 2, 3]
    assert zarr.open_array(path / "v", mode="r")[...].tolist() == [1, 2, 3]
    mapper = fsspec.get_mapper(str(path))
    assert oxzarr.open_group(mapper, mode="r")["v"][...].tolist() == [1, 2, 3]
    dataset = xr.open_dataset(mapper, engine="oxzarr", consolidated=False)
    assert dataset["v"].values.tolist() == [1, 2, 3]
    with pytest.raises(TypeError, match="FSMap over memory://"):
        oxzarr.open_group(fsspec.get_mapper("memory://g"), mode="r")

    class Logged(LocalStore):
        pass

    with pytest.raises(TypeError, match=r"Logged \(a subclass of zarr-python's LocalStore\)"):
        oxzarr.open_group(Logged(path), mode="r")


def test_an_obstore_store_that_cannot_give_its_configuration() -> None:
    """obstore 0.12 panics giving back a configuration with a client option in it: the
    PanicException (no Exception) went through; it is a TypeError saying what to do."""
    inner = ObS3Store(
        "bucket", config={"allow_http": "true"}, endpoint="http://127.0.0.1:9", skip_signature=True
    )
    with pytest.raises(TypeError, match="client_options"):
        oxzarr.open_group(ObjectStore(inner, read_only=True), mode="r")
