"""Stores: where arrays and groups live.

A path string (or ``os.PathLike``) means a directory on the local filesystem, ``"file://..."``
too, or an existing ``*.zip`` file (read-only; :class:`ZipStore` writes zip files);
``None`` a new in-memory store, and ``"memory://a/b"`` the place ``a/b`` in this process's
one in-memory store (as fsspec's memory filesystem, which zarr-python opens those URLs with,
is one per process); ``"s3://bucket/prefix"`` an S3 bucket (or
an S3-compatible service's), ``"gs://bucket/prefix"`` a Google Cloud Storage bucket
(read-only) and ``"http(s)://host/path"`` a web server (read-only), with ``storage_options``
for credentials and endpoints. :class:`LocalStore`, :class:`MemoryStore`
and :class:`ZipStore` are named as in zarr-python's ``zarr.storage``; :class:`RemoteStore`
holds the URLs.
"""

from __future__ import annotations

import json
import numbers
import os
import sys
import urllib.parse
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np

from oxzarr import _aws, _core, _gcs
from oxzarr._locks import fork_safe_lock

__all__ = [
    "CountingStore",
    "LocalStore",
    "MemoryStore",
    "RemoteStore",
    "Store",
    "StoreLike",
    "ZipStore",
    "make_store",
]


class Store:
    """Base of oxzarr's stores: a key-value store that the engine reads and writes."""

    _core: _core.Store

    @property
    def read_only(self) -> bool:
        """Whether the store refuses writes."""
        return self._core.read_only

    def _read_only_because(self) -> str:
        """Why the store takes no writes, for messages."""
        return "was opened read-only"

    def with_read_only(self, read_only: bool = False) -> Store:
        """The same store, writable, or read-only with ``read_only=True`` (zarr-python's
        default too: with no argument, a writable copy)."""
        raise NotImplementedError

    def get(self, key: str) -> bytes | None:
        """The value at `key`, or None."""
        return self._core.get(key)

    def set(self, key: str, value: Any) -> None:
        """Stores `value` (bytes, any object exposing its bytes, such as a bytearray or a
        numpy array, or a zarr-python Buffer) at `key`."""
        self._core.set(key, _value_bytes(key, value))

    def delete(self, key: str) -> None:
        """Deletes the value at `key`; a key holding none is left as it is."""
        self._core.delete(key)

    def exists(self, key: str) -> bool:
        """Whether a value is stored at `key`."""
        return self._core.exists(key)

    def list_prefix(self, prefix: str = "") -> list[str]:
        """Every key under `prefix` ("" or ending in "/"), sorted."""
        return self._core.list_prefix(prefix)

    def list_dir(self, prefix: str = "") -> tuple[list[str], list[str]]:
        """The keys and sub-prefixes directly under `prefix`."""
        return self._core.list_dir(prefix)

    def close(self) -> None:
        """Finishes writing what the store holds back (a zip file's central directory).
        Other stores write everything at once; closing them does nothing."""

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __str__(self) -> str:
        return self._core.describe()


def _value_bytes(key: str, value: Any) -> bytes:
    """The bytes to store of a value given to :meth:`Store.set`. A number is refused (as
    zarr-python refuses anything but its Buffers): ``bytes(5)`` is five zero bytes."""
    if isinstance(value, bytes):
        return value
    if hasattr(value, "as_numpy_array") and callable(getattr(value, "to_bytes", None)):
        # zarr-python's Buffer.
        return bytes(value.to_bytes())
    if not isinstance(value, int | float | complex | str | np.generic):
        try:
            return bytes(memoryview(value))
        except TypeError:
            pass
    raise TypeError(
        f"the value to store at {key!r} must be bytes, an object exposing its bytes or a "
        f"zarr-python Buffer, not {type(value).__name__}"
    )


def home_expanded(path: str | os.PathLike[str]) -> str:
    """`path` with a leading ``~`` (alone or before ``/``) made the user's home directory, as
    the shell makes it. ``~name`` is kept as written, a directory of that name, as
    zarr-python keeps every ``~``: expanded, "~games/x.zarr" was another user's home
    (/usr/games/x.zarr), and "~scratch/x.zarr" raised, there being no such user."""
    path = os.fspath(path)
    if path == "~" or path.startswith("~/"):
        return os.path.expanduser(path)
    return path


class LocalStore(Store):
    """A directory of the local filesystem. Each write goes to a temporary file in the same
    directory and is renamed into place, so a crash never leaves a torn chunk."""

    def __init__(self, root: str | os.PathLike[str], *, read_only: bool = False) -> None:
        self.root = Path(home_expanded(root)).absolute()
        self._core = _core.Store.local(str(self.root), read_only)

    def with_read_only(self, read_only: bool = False) -> LocalStore:
        """The same directory as a store, writable, or read-only with ``read_only=True``."""
        return LocalStore(self.root, read_only=read_only)

    def delete(self, key: str) -> None:
        """Deletes the value at `key`; a directory there is deleted with all it holds, as
        zarr-python's LocalStore deletes it."""
        try:
            self._core.delete(key)
        except IsADirectoryError:
            self._core.delete_prefix(f"{key.rstrip('/')}/")

    def __repr__(self) -> str:
        return f"LocalStore({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        # By the directory alone, as zarr-python's LocalStore: a read-only handle on it is
        # the same store (an array opened with mode "r" equals the one that created it).
        return isinstance(other, LocalStore) and other.root == self.root

    def __hash__(self) -> int:
        return hash((LocalStore, self.root))

    def __reduce__(self) -> tuple[Any, ...]:
        return (_local_store, (str(self.root), self.read_only))


def _local_store(root: str, read_only: bool) -> LocalStore:
    return LocalStore(root, read_only=read_only)


class _MemoryContents:
    """The contents of a memory store, which its views share. Pickled as a copy of them, once
    per pickle (or deep copy): views pickled together stay views of one copy, so a write
    through one is read through the other, as in zarr-python."""

    def __init__(self, core: _core.Store) -> None:
        self.core = core

    def __reduce__(self) -> tuple[Any, ...]:
        contents = {k: self.core.get(k) for k in self.core.list_prefix("")}
        return (_memory_contents, (contents,))


def _memory_contents(contents: dict[str, bytes]) -> _MemoryContents:
    shared = _MemoryContents(_core.Store.memory())
    for key, value in contents.items():
        shared.core.set(key, value)
    return shared


class MemoryStore(Store):
    """A store in this process's memory, starting with a copy of `store_dict`'s contents
    (bytes or zarr-python's Buffers): unlike zarr-python's MemoryStore, it does not write into
    the dict, whose values the engine cannot reach. Pickling copies its contents (another
    process cannot share them), except for a ``memory://`` URL's store, which stays that
    URL's. Views (:meth:`with_read_only`, :func:`copy.copy`) share the contents, and are
    equal when they are of one store and alike read-only."""

    #: The ``memory://`` URL this store was opened with, if any.
    _url: str | None = None

    def __init__(
        self, store_dict: Mapping[str, bytes] | None = None, *, read_only: bool = False
    ) -> None:
        self._shared = _MemoryContents(_core.Store.memory())
        for key, value in (store_dict or {}).items():
            # zarr-python's stores hold Buffers, which give their bytes by to_bytes().
            to_bytes = getattr(value, "to_bytes", None)
            self._shared.core.set(key, to_bytes() if callable(to_bytes) else bytes(value))
        self._core = self._shared.core.read_only_view() if read_only else self._shared.core

    def with_read_only(self, read_only: bool = False) -> MemoryStore:
        """A view of the same contents, read-only or writable."""
        return _memory_view(self._shared, read_only, self._url)

    def __copy__(self) -> MemoryStore:
        return self.with_read_only(self.read_only)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, MemoryStore)
            and other._shared is self._shared
            and other.read_only == self.read_only
        )

    def __hash__(self) -> int:
        return hash((MemoryStore, id(self._shared), self.read_only))

    def __repr__(self) -> str:
        return f"MemoryStore(<{len(self._core.list_prefix(''))} keys>)"

    def __reduce__(self) -> tuple[Any, ...]:
        if self._url is not None:
            return (_named_memory_store, (self._url, self.read_only))
        return (_memory_view, (self._shared, self.read_only))


def _memory_view(shared: _MemoryContents, read_only: bool, url: str | None = None) -> MemoryStore:
    view = MemoryStore.__new__(MemoryStore)
    view._shared = shared
    view._core = shared.core.read_only_view() if read_only else shared.core
    view._url = url
    return view


#: The process's one memory store behind ``memory://`` URLs, as fsspec's memory filesystem
#: (which zarr-python opens them with) is one per process: ``memory://a/b`` is its keys under
#: ``a/b/``, so a node written through ``memory://a`` at path ``b`` opens through
#: ``memory://a/b``. Its contents last as long as the process.
_MEMORY_URLS = _core.Store.memory()
#: The stores of the URLs opened so far, by the path after the scheme (one handle each).
_NAMED_MEMORY: dict[str, MemoryStore] = {}
# (A child forked while another thread held it gets it free.)
_NAMED_MEMORY_LOCK = fork_safe_lock(sys.modules[__name__], "_NAMED_MEMORY_LOCK")


def _named_memory_store(url: str, read_only: bool) -> MemoryStore:
    """The store of `url` (``memory://path``; ``memory://`` is the whole memory store)."""
    name = url[len("memory://") :].strip("/")
    with _NAMED_MEMORY_LOCK:
        store = _NAMED_MEMORY.get(name)
        if store is None:
            url = f"memory://{name}"
            store = _memory_view(_MemoryContents(_MEMORY_URLS.prefixed(name, url)), False, url)
            _NAMED_MEMORY[name] = store
    return store.with_read_only(True) if read_only else store


#: zipfile's compression methods (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED).
_ZIP_STORED, _ZIP_DEFLATED = 0, 8


class ZipStore(Store):
    """A zip file as a store, as zarr-python's ``ZipStore``: each key an entry.

    ``mode="r"`` (the default) reads the zip. Entries stored uncompressed (zarr-python's way)
    are read in place, byte ranges too; deflated ones are inflated whole.

    ``mode="w"`` starts a new zip, replacing any file at the path; ``"x"`` starts one where no
    file exists; ``"a"`` adds to the zip there (or starts one). Values are written as stored
    entries (chunks are compressed by their codecs already), or deflated with
    ``compression=zipfile.ZIP_DEFLATED`` (a read of a deflated shard inflates it once, and
    holds it while it reads its inner chunks), many at once from the engine's threads, with
    ZIP64 records where they are needed; with ``allowZip64=False``, a write that would need
    them (a value or a zip of 2 GiB or more, 65535 entries) raises
    ``oxzarr.errors.LargeZipFileError``, a ``zipfile.LargeZipFile``. A rewritten or deleted
    key's old entry leaves the zip's directory, so each key has one entry; its bytes stay in
    the file. One store per process may write a given zip.

    A value read whole is checked against the CRC-32 the zip records, as is a shard of which a
    read takes every inner chunk; parts of values read in place are not.

    The file is a complete zip once the store is closed: ``close()``, or the end of a
    ``with`` block. A store never closed is closed when it is garbage-collected or when the
    interpreter exits, but a process killed before then leaves no readable zip, as with
    Python's ``zipfile``. Reads go on after closing; writes are refused.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        mode: str = "r",
        read_only: bool | None = None,
        compression: int = 0,
        allowZip64: bool = True,  # zarr-python's and zipfile's name
    ) -> None:
        if mode not in ("r", "w", "x", "a"):
            raise ValueError(f"zip mode {mode!r} is not one of 'r', 'w', 'x', 'a'")
        # zarr-python's keywords: entries are written stored (zipfile.ZIP_STORED, 0) or
        # deflated (zipfile.ZIP_DEFLATED, 8); with ZIP64 records where they are needed, or
        # without (allowZip64=False: writes that need them are refused, as zipfile refuses
        # them).
        if mode != "r" and compression not in (_ZIP_STORED, _ZIP_DEFLATED):
            raise ValueError(
                f"oxzarr writes zip entries stored or deflated (compression=zipfile.ZIP_STORED "
                f"or ZIP_DEFLATED, not {compression!r})"
            )
        if read_only is None:
            read_only = mode == "r"
        if read_only != (mode == "r"):
            raise ValueError(
                f"read_only={read_only} contradicts mode {mode!r}: 'r' reads a zip, "
                "'w', 'x' and 'a' write one"
            )
        self.path = Path(home_expanded(path)).absolute()
        self.mode = mode
        # As zarr-python's store has them: what its writes use.
        self.compression = compression
        self.allowZip64 = bool(allowZip64)
        self._writer: _ZipWriter | None = None
        if mode == "r":
            self._core = _core.Store.zip(str(self.path))
        else:
            deflate = compression == _ZIP_DEFLATED
            core = _core.Store.zip_writer(str(self.path), mode, deflate, self.allowZip64)
            self._writer = _ZipWriter(core)
            self._core = self._writer.core

    def close(self) -> None:
        """Writes the zip's central directory and ends writing (reads go on). Should the
        directory fail to be written (a full disk), writing ends all the same: the error is
        raised once, and the unfinished file is left as it is, no longer open."""
        if self._writer is not None:
            try:
                self._writer.core.close()
            finally:
                # A close that fails (a full disk) ends writing all the same, as zarr-python's
                # and zipfile's do: the engine has let go of the file, unfinished.
                self._writer.closed = True

    @property
    def read_only(self) -> bool:
        """Whether the store refuses writes: a zip opened for reading, or one closed."""
        # Once closed, the zip is complete and takes no more writes.
        return self._writer is None or self._writer.closed or self._core.read_only

    def _read_only_because(self) -> str:
        if self._writer is not None and self._writer.closed and not self._core.read_only:
            return "is in a zip file that was closed"
        return super()._read_only_because()

    def with_read_only(self, read_only: bool = False) -> ZipStore:
        """The same zip, read-only (or writable, if it was opened for writing)."""
        if read_only == self.read_only:
            return self
        if self._writer is None or self._writer.closed:
            done = "was opened read-only" if self._writer is None else "is closed"
            raise ValueError(f"{self} {done}: open it with mode='a' to write to it")
        view = ZipStore.__new__(ZipStore)
        view.path, view.mode, view._writer = self.path, self.mode, self._writer
        view.compression, view.allowZip64 = self.compression, self.allowZip64
        view._core = self._writer.core.read_only_view() if read_only else self._writer.core
        return view

    def __repr__(self) -> str:
        return f"ZipStore({str(self)!r}, mode={'r' if self.read_only else self.mode!r})"

    def __eq__(self, other: object) -> bool:
        # By the zip file alone, as zarr-python's ZipStore: its handles for reading and for
        # writing are the same store (and a hash must not change when the store is closed).
        return isinstance(other, ZipStore) and other.path == self.path

    def __hash__(self) -> int:
        return hash((ZipStore, self.path))

    def __reduce__(self) -> tuple[Any, ...]:
        # A zip being written (or a view of one) is not complete on disk: another process
        # could not read it.
        if self._writer is not None and not self._writer.closed:
            raise TypeError(
                f"{self!r} is open for writing and cannot be pickled: close it, then "
                "pickle ZipStore(path) to read it elsewhere"
            )
        # Closed, it is complete on disk: read elsewhere as it is.
        return (ZipStore, (str(self.path),))


class _ZipWriter:
    """The engine's handle on a zip being written, shared by a ZipStore and its views: the
    zip is closed when the last of them is garbage-collected, or at exit."""

    def __init__(self, core: _core.Store) -> None:
        self.core = core
        self.closed = False  # by ZipStore.close, which finished the zip
        self._closing = weakref.finalize(self, core.close)

    def abandon(self) -> None:
        """Ends writing without finishing the zip, and closes its file: for a zip being
        deleted unfinished (a failed conversion's). Its file is closed now, not when the
        last array over the store is collected: a deleted file's disk space is freed only
        once no descriptor is left open on it."""
        self._closing.detach()
        self.core.abandon()
        self.closed = True


def abandon_zip(store: ZipStore) -> None:
    """Ends `store`'s writing without finishing the zip (see `_ZipWriter.abandon`)."""
    if store._writer is not None:
        store._writer.abandon()


def _is_zip_file(path: str | os.PathLike[str]) -> bool:
    """Whether `path` is an existing file named ``*.zip`` (in any case: ``DATA.ZIP`` too, as
    convert writes one)."""
    path = home_expanded(path)
    return path.lower().endswith(".zip") and os.path.isfile(path)


#: URL schemes a RemoteStore opens.
REMOTE_SCHEMES = ("s3://", "s3a://", "gs://", "gcs://", "http://", "https://")
#: Those of Google Cloud Storage (gcsfs's two names).
GCS_SCHEMES = ("gs://", "gcs://")

# fsspec's (s3fs's) names of storage options, as zarr-python users write them, and the
# object_store option each one sets.
_S3FS_OPTIONS = {
    "key": "aws_access_key_id",
    "secret": "aws_secret_access_key",
    "token": "aws_session_token",
    "endpoint_url": "aws_endpoint",
    "region_name": "aws_region",
    "region": "aws_region",
}


#: Options of fsspec's file systems about fsspec itself (its event loop, its caches of
#: listings and file blocks), not the service: oxzarr has no use for them, and takes them
#: without complaint so that storage_options written for zarr-python work unchanged.
_FSSPEC_ONLY = frozenset(
    {
        "asynchronous",
        "loop",
        "skip_instance_cache",
        "use_listings_cache",
        "listings_expiry_time",
        "max_paths",
        "default_block_size",
        "default_fill_cache",
        "default_cache_type",
        "cache_regions",
        "max_concurrency",
    }
)
#: Options of fsspec's HTTP file system about its own client: its reads in blocks and their
#: cache, how it finds links in a page and follows them, whether it quotes URLs again and
#: how it learns a file's size. They tune fsspec's requests, not what is read: taken without
#: complaint for http(s):// URLs, as those above.
_FSSPEC_HTTP_ONLY = frozenset(
    {
        "block_size",
        "simple_links",
        "same_scheme",
        "size_policy",
        "cache_type",
        "cache_options",
        "encoded",
    }
)


#: object_store's options holding a length of time, which it reads as text ("5s", "500ms").
_DURATION_OPTIONS = frozenset(
    {
        "timeout",
        "connect_timeout",
        "read_timeout",
        "pool_idle_timeout",
        "http2_keep_alive_interval",
        "http2_keep_alive_timeout",
    }
)


def _duration_text(name: str, value: Any) -> Any:
    """The value of the option `name`, a number of seconds as object_store's text for a
    length of time: fsspec's clients (aiohttp's) take numbers of seconds, as code written for
    zarr-python gives them, and object_store read "5" as no length of time."""
    if name.lower() not in _DURATION_OPTIONS or isinstance(value, bool):
        return value
    if isinstance(value, numbers.Integral):
        return f"{int(value)}s"
    if isinstance(value, numbers.Real):
        # In nanoseconds, which a fraction of a second of any size is a whole number of.
        return f"{round(float(value) * 1e9)}ns"
    return value


def _option_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _header_text(name: Any, value: Any) -> str:
    """The value of the header `name` as text: obstore gives header values back as bytes
    (str() would send "b'...'")."""
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            raise ValueError(f"the value of the header {name!r} is not UTF-8 text") from None
    return str(value)


def remote_options(url: str, storage_options: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """The object_store options for `url` from zarr-python-style ``storage_options``: s3fs's
    names (``key``, ``secret``, ``token``, ``anon``, ``endpoint_url``, ``client_kwargs``'s
    ``endpoint_url`` and ``region_name``, ``profile``) or object_store's own (``aws_region``,
    ``allow_http``, ``timeout``, ...), which are checked by the engine. For S3, what they leave
    out is looked up as botocore would: the environment, then the AWS shared files. For
    Google Cloud Storage, gcsfs's names (``token``, ``endpoint_url``, ...; see `_gcs`)."""
    web = url.startswith(("http://", "https://"))
    given = {
        # None is s3fs's and gcsfs's way to leave an option unset ({"token": None}).
        name: _duration_text(name, value)
        for name, value in (storage_options or {}).items()
        if value is not None
        and name not in _FSSPEC_ONLY
        and not (web and name in _FSSPEC_HTTP_ONLY)
    }
    if url.startswith(GCS_SCHEMES):
        return sorted((k, _option_text(v)) for k, v in _gcs.options(url, given).items())
    s3 = url.startswith(("s3://", "s3a://"))
    options: dict[str, str] = {}
    # A web server's headers, sent with every request (a bearer token), as fsspec's HTTP
    # file system sends them, given at the top level or in client_kwargs.
    headers: dict[Any, Any] = {}
    profile = None
    for name, value in given.items():
        if s3 and name == "profile":
            profile = str(value)
            continue
        if web and name == "headers":
            headers.update(value)
            continue
        if name == "client_kwargs":
            for inner, inner_value in dict(value).items():
                if web and inner == "headers":
                    headers.update(inner_value)
                    continue
                if inner not in ("endpoint_url", "region_name"):
                    raise ValueError(
                        f"unsupported storage option client_kwargs[{inner!r}] for {url}"
                    )
                options[_S3FS_OPTIONS[inner]] = _option_text(inner_value)
        elif name == "anon":
            if value and web:
                # Named as given: the engine would name the S3 option it stands for.
                raise ValueError(
                    f"unsupported storage option anon={value!r} for "
                    f"{_without_password(url)}: anon is s3fs's option to send S3 requests "
                    "unsigned, and a web server's requests are not signed"
                )
            if value:
                options["aws_skip_signature"] = "true"
        elif s3 and name in _S3FS_OPTIONS:
            options[_S3FS_OPTIONS[name]] = _option_text(value)
        elif s3:
            key = name.lower()
            options[_aws.ALIASES.get(key, key)] = _option_text(value)
        else:
            options[name] = _option_text(value)
    if headers:
        # The engine takes them as one JSON object.
        options["headers"] = json.dumps({str(k): _header_text(k, v) for k, v in headers.items()})
    if s3:
        anonymous = options.get("aws_skip_signature", "").lower() == "true"
        options.update(_aws.profile_options(options, profile, anonymous))
        # The environment's endpoint, as botocore takes it, named here so that the check
        # below sees it (the engine would read it, but refuse it without TLS).
        if not _aws.endpoints_ignored():
            for variable in ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ENDPOINT"):
                if "aws_endpoint" not in options and os.environ.get(variable):
                    options["aws_endpoint"] = os.environ[variable]
    endpoint = options.get("aws_endpoint", "")
    if endpoint.lower().startswith("http://"):
        # A local S3-compatible service (MinIO, moto) without TLS.
        options.setdefault("aws_allow_http", "true")
    if url.startswith("http://"):
        options.setdefault("allow_http", "true")
    return sorted(options.items())


class RemoteStore(Store):
    """An object store: an S3 bucket (``s3://bucket/prefix``; also S3-compatible services,
    with an endpoint), a Google Cloud Storage bucket (``gs://bucket/prefix``, read-only: oxzarr
    does not write there yet), or a web server (``http(s)://host/path``, read-only: a plain
    web server cannot list, so groups there need consolidated metadata).

    ``storage_options`` take s3fs's names, as zarr-python's do (``key``, ``secret``,
    ``token``, ``anon``, ``endpoint_url``, ``client_kwargs``), or object_store's
    (``aws_region``, ...). Credentials, region and endpoint not given come from where
    botocore finds them: the ``AWS_*`` environment variables, the profile (``profile``, or
    ``AWS_PROFILE``) in ``~/.aws/credentials`` and ``~/.aws/config``, or the machine's
    metadata service. For ``gs://`` URLs they take gcsfs's names (``token``,
    ``endpoint_url``); without a token, credentials come from where gcsfs finds them
    (``GOOGLE_APPLICATION_CREDENTIALS``, gcloud's application default credentials, the
    machine's metadata service), else none, for public buckets.
    Chunks are fetched with many requests in flight, and parts of shards with ranged
    requests."""

    def __init__(
        self,
        url: str,
        *,
        storage_options: Mapping[str, Any] | None = None,
        read_only: bool = False,
    ) -> None:
        if not url.startswith(REMOTE_SCHEMES):
            raise ValueError(f"not an s3://, gs:// or http(s):// URL: {url!r}")
        self.url = url.rstrip("/")
        self.storage_options = dict(storage_options or {})
        options = remote_options(url, storage_options)
        # The writable store, kept so that views share its connections.
        self._writable = _core.Store.remote(self.url, options, False)
        self._core = self._writable.read_only_view() if read_only else self._writable

    def with_read_only(self, read_only: bool = False) -> RemoteStore:
        """The same place, read-only or writable; writable is refused (ValueError) where
        oxzarr cannot write: a web server, Google Cloud Storage."""
        if read_only == self.read_only:
            return self
        if not read_only and self._writable.read_only:
            raise ValueError(
                f"oxzarr reads {_without_password(self.url)} but cannot write to it (web "
                "servers take no writes, "
                "and oxzarr does not write to Google Cloud Storage yet)"
            )
        view = RemoteStore.__new__(RemoteStore)
        view.url, view.storage_options, view._writable = (
            self.url,
            self.storage_options,
            self._writable,
        )
        view._core = self._writable.read_only_view() if read_only else self._writable
        return view

    def __repr__(self) -> str:
        return f"RemoteStore({_without_password(self.url)!r})"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, RemoteStore)
            and other.url == self.url
            and other.storage_options == self.storage_options
            and other.read_only == self.read_only
        )

    def __hash__(self) -> int:
        return hash((RemoteStore, self.url))

    def __reduce__(self) -> tuple[Any, ...]:
        return (_remote_store, (self.url, self.storage_options, self.read_only))


def _remote_store(url: str, storage_options: dict[str, Any], read_only: bool) -> RemoteStore:
    return RemoteStore(url, storage_options=storage_options, read_only=read_only)


class CountingStore(Store):
    """Another store, seen through counters of the read requests and bytes it serves, and of
    its listings: what a read really fetched. A whole-value read is one request, a read of n
    byte ranges n."""

    def __init__(self, store: Any) -> None:
        # Any store-like: a path, a URL, zarr-python's stores (an AttributeError before).
        self.wrapped = store if isinstance(store, Store) else make_store(store)
        self._core = self.wrapped._core.counting()

    def with_read_only(self, read_only: bool = False) -> Store:
        """A read-only view sharing these counters, or, writable, the store it counts for,
        writable and counted anew."""
        if read_only == self.read_only:
            return self
        if not read_only:
            # Writable again: the store it counts for, writable (its read-only view, which
            # it stayed, refused every write), counted anew.
            return CountingStore(self.wrapped.with_read_only(False))
        view = CountingStore.__new__(CountingStore)
        view.wrapped = self.wrapped
        view._core = self._core.read_only_view()
        return view

    @property
    def requests(self) -> int:
        """Read requests served since creation or the last reset."""
        return (self._core.read_counters() or (0, 0))[0]

    @property
    def bytes_read(self) -> int:
        """Bytes served since creation or the last reset."""
        return (self._core.read_counters() or (0, 0))[1]

    @property
    def listings(self) -> int:
        """Listings of keys served since creation or the last reset (on a cloud service,
        each is one request per thousand keys)."""
        return self._core.listings() or 0

    def reset(self) -> None:
        """Sets the counts of requests, bytes and listings back to zero."""
        self._core.reset_counters()

    def close(self) -> None:
        """Closes the store it counts for (see :meth:`Store.close`)."""
        self.wrapped.close()

    def __repr__(self) -> str:
        return f"CountingStore({self.wrapped!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        # The store it counts for, counted anew: counters are of this process's reads.
        return (_counting_store, (self.wrapped, self.read_only))


def _counting_store(wrapped: Store, read_only: bool) -> Store:
    store = CountingStore(wrapped)
    return store.with_read_only(True) if read_only and not store.read_only else store


def _without_password(url: str) -> str:
    """`url` as shown to users: a password in it (``https://user:pass@host/``) as ``***``."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    user_and_host = parts.netloc.rsplit("@", 1)
    user = user_and_host[0].split(":", 1)[0]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}:***@{user_and_host[1]}"))


StoreLike: TypeAlias = "Store | str | os.PathLike[str] | None"


def make_store(
    store: Any,
    *,
    read_only: bool = False,
    storage_options: Mapping[str, Any] | None = None,
) -> Store:
    """The store `store` names: a Store, a path (of a directory, or of an existing zip file),
    a ``file://``, ``memory://`` (a place in the process's memory store), ``s3://``,
    ``gs://`` or ``http(s)://`` URL (the last three with ``storage_options``), or None (a new
    memory store); zarr-python's LocalStore,
    ZipStore, FsspecStore (over S3, Google Cloud Storage, HTTP or local files) and ObjectStore
    (over obstore's S3Store, GCSStore, HTTPStore or LocalStore) are accepted too, each opened
    anew at the same place, and its StorePath, as the store of the keys below its path; so is
    fsspec's mapping (``fsspec.get_mapper``), as zarr-python takes it."""
    if isinstance(store, str) and store.startswith(REMOTE_SCHEMES):
        return RemoteStore(store, storage_options=storage_options, read_only=read_only)
    local_url = isinstance(store, str) and store.startswith(("file://", "memory://"))
    if storage_options is not None and local_url:
        # zarr-python opens file:// URLs with fsspec, which needs auto_mkdir to create an
        # array there; oxzarr makes directories as it writes.
        if not set(storage_options) <= {"auto_mkdir"}:
            scheme = store.split("://", 1)[0]
            raise ValueError(
                f"storage_options of a {scheme}:// URL: auto_mkdir only, not {storage_options!r}"
            )
        storage_options = None
    if storage_options is not None:
        # A TypeError, even for {}, as zarr-python raises it: code written for it catches it.
        raise TypeError(
            f"storage_options apply to s3://, gs:// and http(s):// URLs, not to {store!r}"
        )
    if isinstance(store, Store):
        _refuse_store_subclass(store)
        return store.with_read_only(True) if read_only and not store.read_only else store
    if store is None:
        return MemoryStore(read_only=read_only)
    if isinstance(store, str | os.PathLike) and _is_zip_file(store):
        # An existing zip file is opened as one (read-only); a new path ending in ".zip"
        # is a directory, as in zarr-python.
        return ZipStore(store)
    if isinstance(store, os.PathLike):
        return LocalStore(os.fspath(store), read_only=read_only)
    if isinstance(store, str):
        if store.startswith("memory://"):
            return _named_memory_store(store, read_only)
        if store.startswith("file://"):
            return make_store(store[len("file://") :], read_only=read_only)
        if "://" in store:
            scheme = store.split("://", 1)[0]
            raise ValueError(
                f"unsupported store URL {store!r}: oxzarr opens local paths, file://, "
                f"memory://, s3://, gs:// and http(s):// (not {scheme}://)"
            )
        return LocalStore(store, read_only=read_only)
    if isinstance(store, dict):
        raise TypeError("a dict is not a store oxzarr can share: use oxzarr.storage.MemoryStore()")
    found = _from_zarr_python(store, read_only or bool(getattr(store, "read_only", False)))
    if found is None:
        known = [c for c in type(store).__mro__[1:] if c.__module__.startswith("zarr.")]
        if known and known[0].__name__ != "Store":
            # Opened anew, its own methods would be passed by.
            raise TypeError(
                f"cannot use {type(store).__name__} (a subclass of zarr-python's "
                f"{known[0].__name__}) as a store: oxzarr opens zarr-python's stores anew at "
                "their place, which would pass its own methods by"
            )
        raise TypeError(f"cannot use {store!r} as a store")
    return found


#: The methods of a store whose keys and values the engine reads and writes itself.
_STORE_METHODS = ("get", "set", "delete", "exists", "list_prefix", "list_dir")


def _refuse_store_subclass(store: Store) -> None:
    """Refuses a store made by subclassing oxzarr's: the engine reads and writes oxzarr's
    stores itself, so methods a subclass overrides (a log, a check) would be passed by
    without a word, and a store of its own making has nothing the engine can use."""
    cls = type(store)
    if cls.__module__ == __name__:
        return
    overridden = [
        name
        for name in _STORE_METHODS
        if any(name in vars(c) for c in cls.__mro__ if c.__module__ != __name__)
    ]
    if overridden or not hasattr(store, "_core"):
        what = f"its own {', '.join(overridden)}" if overridden else "no engine store of its own"
        raise TypeError(
            f"cannot use {cls.__name__} (a subclass of oxzarr's {cls.__mro__[1].__name__}) as "
            f"a store: it has {what}, and oxzarr's engine reads and writes its stores itself"
        )


class _PrefixedStore(Store):
    """The keys of another store under a node path, as a store of their own: zarr-python's
    StorePath over a store with no place of its own to name (a zip file's)."""

    def __init__(self, store: Store, path: str) -> None:
        self.wrapped, self.path = store, path
        self._core = store._core.prefixed(path, f"{store}/{path}")

    def with_read_only(self, read_only: bool = False) -> Store:
        return _PrefixedStore(self.wrapped.with_read_only(read_only), self.path)

    def close(self) -> None:
        self.wrapped.close()

    def __repr__(self) -> str:
        return f"{self.wrapped!r} at {self.path!r}"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_PrefixedStore, (self.wrapped, self.path))


def _below(store: Store, path: str) -> Store:
    """`store`'s keys under the node path `path` (a StorePath's), as a store: the same kind of
    store at the place below where it can name one."""
    path = path.strip("/")
    if not path:
        return store
    if isinstance(store, LocalStore):
        return LocalStore(store.root / path, read_only=store.read_only)
    if isinstance(store, RemoteStore):
        url = f"{store.url}/{_in_url(store.url, path)}"
        return RemoteStore(url, storage_options=store.storage_options, read_only=store.read_only)
    return _PrefixedStore(store, path)


def _in_url(url: str, path: str) -> str:
    """The node path `path` as put after `url`: quoted for a web server's URL, whose '%', '#'
    and '?' would otherwise be read as an escape, a fragment or a query (another node, or
    none), as the engine quotes keys; as written in an s3:// or gs:// URL, whose path is
    the objects' names as written (as s3fs takes them)."""
    if url.startswith(("http://", "https://")):
        return urllib.parse.quote(path, safe="/")
    return path


#: Why a zarr-python ZipStore given to oxzarr takes no writes, and what does.
ZARR_PYTHON_ZIP = (
    "oxzarr opens zarr-python's ZipStore read-only; oxzarr.storage.ZipStore(path, mode='w') "
    "creates a zip and mode='a' adds to one"
)


def _as_it_names(path: str | os.PathLike[str]) -> str:
    """The absolute form of a path another library's store holds, `~` kept as it is: those
    stores take it as a directory of that name (oxzarr, given a path, as the home
    directory)."""
    return os.path.abspath(os.fspath(path))


def is_store_path(store: Any) -> bool:
    """Whether `store` is zarr-python's StorePath: a store and a node path in it (what
    zarr-python's arrays keep as store_path). Duck-typed: zarr is never imported here."""
    return type(store).__name__ == "StorePath" and hasattr(store, "store")


def _from_zarr_python(store: Any, read_only: bool) -> Store | None:
    """oxzarr's store over what zarr-python's store `store` reaches (its LocalStore, ZipStore,
    FsspecStore or ObjectStore), opened anew with the same location and options; None if
    `store` is none of these. Duck-typed: zarr is never imported here."""
    kind = type(store).__name__
    if is_store_path(store):
        # Taken as a store of its own, the keys below its node path. (oxzarr's functions
        # that take a node path open its store at that path instead: see
        # api._store_and_path.)
        inner = store.store
        found = inner if isinstance(inner, Store) else _from_zarr_python(inner, read_only)
        if found is None:
            return None
        found = found.with_read_only(True) if read_only and not found.read_only else found
        return _below(found, str(getattr(store, "path", "")))
    if kind == "LocalStore" and hasattr(store, "root"):
        return LocalStore(_as_it_names(store.root), read_only=read_only)
    if kind == "ZipStore" and hasattr(store, "path"):
        if not os.path.isfile(store.path):
            # zarr-python's ZipStore(mode="w") creates its file when first used.
            raise FileNotFoundError(f"no zip file at {os.fspath(store.path)!r}: {ZARR_PYTHON_ZIP}")
        return ZipStore(_as_it_names(store.path))
    if kind == "FsspecStore" and hasattr(store, "fs"):
        return _from_fsspec(store.fs, store.path, read_only, "zarr-python's FsspecStore")
    if kind == "FSMap" and hasattr(store, "fs") and hasattr(store, "root"):
        # fsspec's mapping (fsspec.get_mapper), which zarr-python takes as an FsspecStore.
        return _from_fsspec(store.fs, store.root, read_only, "fsspec's FSMap")
    if kind == "ObjectStore" and hasattr(store, "store"):
        return _from_obstore(store.store, read_only)
    if kind == "MemoryStore" and hasattr(store, "_store_dict"):
        # Its contents live in a Python dict the engine cannot write into.
        raise TypeError(
            f"cannot use zarr-python's {store!r} as a store: its dict is out of the engine's "
            "reach; use oxzarr.storage.MemoryStore() (given the dict, it copies its contents)"
        )
    return None


def _from_fsspec(fs: Any, path: str, read_only: bool, what: str) -> Store:
    """oxzarr's store over the place `path` of the fsspec file system `fs` (`what` holds
    them, named in errors)."""
    fs = getattr(fs, "sync_fs", fs)  # zarr-python wraps synchronous ones
    protocols = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
    options = getattr(fs, "storage_options", {})
    if "s3" in protocols:
        return RemoteStore(f"s3://{path}", storage_options=options, read_only=read_only)
    if "gs" in protocols or "gcs" in protocols:
        return RemoteStore(f"gs://{path}", storage_options=options, read_only=read_only)
    if "http" in protocols or "https" in protocols:
        return RemoteStore(path, storage_options=options, read_only=read_only)
    if "file" in protocols:
        return LocalStore(path, read_only=read_only)
    raise TypeError(
        f"cannot use {what} over {protocols[0]}:// as a store: oxzarr reaches local paths, "
        "s3://, gs:// and http(s):// (for memory://, use oxzarr.storage.MemoryStore())"
    )


def _obstore_config(inner: Any) -> dict[str, Any]:
    """The configuration an obstore store was made with. obstore 0.12 panics giving some
    (a client option such as ``allow_http`` in ``config``): a PanicException, which
    ``except Exception`` misses, becomes a TypeError saying what to do."""
    try:
        return dict(inner.config)
    except BaseException as e:
        if type(e).__name__ != "PanicException":
            raise
        raise TypeError(
            f"cannot use {inner!r} as a store: obstore cannot give back its configuration "
            f"({e}); give client options such as allow_http in client_options"
        ) from None


def _from_obstore(inner: Any, read_only: bool) -> Store:
    """oxzarr's store over what an obstore store reaches (zarr-python's ObjectStore holds one):
    obstore and oxzarr share object_store's names for their options."""
    kind = type(inner).__name__
    if getattr(inner, "credential_provider", None) is not None:
        raise TypeError(
            f"cannot use {inner!r} as a store: its credential provider is Python code that "
            "oxzarr cannot call; give the credentials in its config instead"
        )
    prefix = str(getattr(inner, "prefix", None) or "").strip("/")
    if kind in ("S3Store", "GCSStore"):
        scheme = "s3" if kind == "S3Store" else "gs"
        config = _obstore_config(inner)
        bucket = config.pop("bucket")
        options = {**config, **(inner.client_options or {})}
        url = f"{scheme}://{bucket}/{prefix}" if prefix else f"{scheme}://{bucket}"
        return RemoteStore(url, storage_options=options, read_only=read_only)
    if kind == "HTTPStore":
        url = inner.url.rstrip("/")
        url += f"/{_in_url(url, prefix)}" if prefix else ""
        options = dict(inner.client_options or {})
        if "default_headers" in options:
            # object_store's name (and obstore's) for the headers sent with every request,
            # which oxzarr's web server stores take as `headers`, fsspec's name.
            options["headers"] = options.pop("default_headers")
        return RemoteStore(url, storage_options=options, read_only=read_only)
    if kind == "LocalStore":
        # Its prefix is the directory, absolute; none is the filesystem's root.
        return LocalStore(_as_it_names(inner.prefix or "/"), read_only=read_only)
    raise TypeError(
        f"cannot use zarr-python's ObjectStore over {inner!r} as a store: oxzarr reaches "
        "obstore's S3Store, GCSStore, HTTPStore and LocalStore (for an in-memory one, use "
        "oxzarr.storage.MemoryStore())"
    )
