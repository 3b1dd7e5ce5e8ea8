"""Stores: where arrays and groups live.

A path string (or ``os.PathLike``) means a directory on the local filesystem, ``"file://..."``
too, or an existing ``*.zip`` file (read-only); ``"memory://"`` or ``None`` a new in-memory
store. :class:`LocalStore`, :class:`MemoryStore` and :class:`ZipStore` are the store objects,
named as in zarr-python's ``zarr.storage``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeAlias

from oxzarr import _core

__all__ = [
    "CountingStore",
    "LocalStore",
    "MemoryStore",
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
        return self._core.read_only

    def with_read_only(self, read_only: bool = True) -> Store:
        """The same store, opened read-only (or writable)."""
        raise NotImplementedError

    def get(self, key: str) -> bytes | None:
        """The value at `key`, or None."""
        return self._core.get(key)

    def set(self, key: str, value: bytes) -> None:
        self._core.set(key, bytes(value))

    def delete(self, key: str) -> None:
        self._core.delete(key)

    def exists(self, key: str) -> bool:
        return self._core.exists(key)

    def list_prefix(self, prefix: str = "") -> list[str]:
        """Every key under `prefix` ("" or ending in "/"), sorted."""
        return self._core.list_prefix(prefix)

    def list_dir(self, prefix: str = "") -> tuple[list[str], list[str]]:
        """The keys and sub-prefixes directly under `prefix`."""
        return self._core.list_dir(prefix)

    def __str__(self) -> str:
        return self._core.describe()


class LocalStore(Store):
    """A directory of the local filesystem. Each write goes to a temporary file in the same
    directory and is renamed into place, so a crash never leaves a torn chunk."""

    def __init__(self, root: str | os.PathLike[str], *, read_only: bool = False) -> None:
        self.root = Path(root).expanduser().absolute()
        self._core = _core.Store.local(str(self.root), read_only)

    def with_read_only(self, read_only: bool = True) -> LocalStore:
        return LocalStore(self.root, read_only=read_only)

    def __repr__(self) -> str:
        return f"LocalStore({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, LocalStore)
            and other.root == self.root
            and other.read_only == self.read_only
        )

    def __hash__(self) -> int:
        return hash((LocalStore, self.root, self.read_only))

    def __reduce__(self) -> tuple[Any, ...]:
        return (_local_store, (str(self.root), self.read_only))


def _local_store(root: str, read_only: bool) -> LocalStore:
    return LocalStore(root, read_only=read_only)


class MemoryStore(Store):
    """A store in this process's memory. Pickling copies its contents (another process
    cannot share them)."""

    def __init__(
        self, store_dict: Mapping[str, bytes] | None = None, *, read_only: bool = False
    ) -> None:
        self._writable = _core.Store.memory()
        for key, value in (store_dict or {}).items():
            self._writable.set(key, bytes(value))
        self._core = self._writable.read_only_view() if read_only else self._writable

    def with_read_only(self, read_only: bool = True) -> MemoryStore:
        """A view of the same contents, read-only or writable."""
        view = MemoryStore.__new__(MemoryStore)
        view._writable = self._writable
        view._core = self._writable.read_only_view() if read_only else self._writable
        return view

    def __repr__(self) -> str:
        return f"MemoryStore(<{len(self._core.list_prefix(''))} keys>)"

    def __reduce__(self) -> tuple[Any, ...]:
        contents = {k: self._core.get(k) for k in self._core.list_prefix("")}
        return (_memory_store, (contents, self.read_only))


def _memory_store(contents: dict[str, bytes], read_only: bool) -> MemoryStore:
    return MemoryStore(contents, read_only=read_only)


class ZipStore(Store):
    """A zip file, read-only, as zarr-python's ``ZipStore`` writes them: each key an entry.
    Entries stored uncompressed (zarr-python's way) are read in place, byte ranges too;
    deflated ones are inflated whole. Writing zip files is not supported yet."""

    def __init__(
        self, path: str | os.PathLike[str], *, mode: str = "r", read_only: bool | None = None
    ) -> None:
        if mode != "r" or read_only is False:
            raise ValueError(
                f"oxzarr reads zip files but does not write them yet (mode {mode!r}): "
                "write to a directory, then zip it"
            )
        self.path = Path(path).expanduser().absolute()
        self._core = _core.Store.zip(str(self.path))

    def with_read_only(self, read_only: bool = True) -> ZipStore:
        if not read_only:
            raise ValueError("oxzarr does not write zip files yet")
        return self

    def __repr__(self) -> str:
        return f"ZipStore({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ZipStore) and other.path == self.path

    def __hash__(self) -> int:
        return hash((ZipStore, self.path))

    def __reduce__(self) -> tuple[Any, ...]:
        return (ZipStore, (str(self.path),))


def _is_zip_file(path: str | os.PathLike[str]) -> bool:
    """Whether `path` is an existing file named ``*.zip``."""
    path = os.path.expanduser(os.fspath(path))
    return str(path).endswith(".zip") and os.path.isfile(path)


class CountingStore(Store):
    """Another store, seen through counters of the read requests and bytes it serves: what
    a read really fetched. A whole-value read is one request, a read of n byte ranges n."""

    def __init__(self, store: Store) -> None:
        self.wrapped = store
        self._core = store._core.counting()

    def with_read_only(self, read_only: bool = True) -> Store:
        view = CountingStore.__new__(CountingStore)
        view.wrapped = self.wrapped
        view._core = self._core.read_only_view() if read_only else self._core
        return view

    @property
    def requests(self) -> int:
        """Read requests served since creation or the last reset."""
        return (self._core.read_counters() or (0, 0))[0]

    @property
    def bytes_read(self) -> int:
        """Bytes served since creation or the last reset."""
        return (self._core.read_counters() or (0, 0))[1]

    def reset(self) -> None:
        self._core.reset_counters()

    def __repr__(self) -> str:
        return f"CountingStore({self.wrapped!r})"


StoreLike: TypeAlias = "Store | str | os.PathLike[str] | None"


def make_store(store: Any, *, read_only: bool = False) -> Store:
    """The store `store` names: a Store, a path (of a directory, or of an existing zip file),
    a ``file://`` or ``memory://`` URL, or None (a new memory store); zarr-python's
    LocalStore and ZipStore are accepted too."""
    if isinstance(store, Store):
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
            return MemoryStore(read_only=read_only)
        if store.startswith("file://"):
            return make_store(store[len("file://") :], read_only=read_only)
        if "://" in store:
            scheme = store.split("://", 1)[0]
            raise ValueError(
                f"unsupported store URL {store!r}: oxzarr opens local paths, file:// and "
                f"memory:// (not {scheme}://)"
            )
        return LocalStore(store, read_only=read_only)
    # zarr-python's stores, by duck typing (zarr is never imported here).
    kind = type(store).__name__
    if kind == "LocalStore" and hasattr(store, "root"):
        return LocalStore(store.root, read_only=read_only or bool(store.read_only))
    if kind == "ZipStore" and hasattr(store, "path"):
        return ZipStore(store.path)
    if isinstance(store, dict):
        raise TypeError("a dict is not a store oxzarr can share: use oxzarr.storage.MemoryStore()")
    raise TypeError(f"cannot use {store!r} as a store")
