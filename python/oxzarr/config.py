"""Runtime settings, shaped like ``zarr.config``.

>>> import oxzarr
>>> oxzarr.config.get("threads")  # doctest: +SKIP
8
>>> with oxzarr.config.set({"threads": 2}):
...     pass  # reads and writes in here use two threads

Keys:

- ``threads``: threads that chunks are read and written on (default: all cores).
- ``validate_checksums``: verify crc32c checksums on read (default: True).
- ``write_empty_chunks``: store chunks that hold only the fill value (default: False, as in
  zarr-python: such chunks are deleted instead, and read back as the fill value).
- ``default_zarr_format``: the format of new arrays and groups when none is given (default:
  3), as in zarr-python.
- ``order``: the memory layout, "C" (the default) or "F", of the arrays that reads of a v3
  array return, fixed for each array when it is opened or created (its ``config``), and the
  ``order`` new v2 arrays store their chunks in when none is given. As in zarr-python, a v2
  array's reads follow the order its metadata names.
- ``chunk_cache_bytes``: the budget of the decoded-chunk cache (default: 0, off). With a
  budget, repeated reads of the same chunks skip fetching and decoding. A cached chunk is
  used only while the store still holds the version it was decoded from (one ``stat`` per
  chunk read, or per shard for each read of a sharded array), so chunks rewritten or deleted
  by any writer, in this process or another, are read afresh. A write through the array
  to part of a shard keeps the cached inner chunks it left as they were.
- ``output_huge_pages``: whether the new arrays that reads return (4 MiB and up) may use the
  kernel's transparent huge pages, which numpy asks for. ``None`` (the default) avoids them
  where the machine is a virtual machine whose balloon device reports free memory to the
  host: there huge pages come from memory the host has taken back, and the first large read
  of a process waits for the host to hand it over again (seconds for a 256 MiB output, where
  small pages take a fraction of one). ``True`` leaves numpy's choice, ``False`` avoids them
  everywhere.

zarr-python's names ``threading.max_workers``, ``array.write_empty_chunks`` and ``array.order``
are accepted too, and so are its settings that mean nothing here (``async.concurrency``,
``codec_pipeline.*``, ``json_indent``, ...): kept for ``get``, without effect. As in
zarr-python (donfig), ``set`` and ``update`` take them nested too (``{"array": {"order": "F"}}``),
keywords name them with ``__`` for ``.`` (``set(array__order="F")``), and ``get`` of a
section (``get("array")``) gives its settings as a dict.

Settings are also read from the environment when oxzarr is imported and at each ``reset`` or
``refresh``, as zarr-python reads its own: ``ZARR_ARRAY__ORDER=F`` is ``array.order``,
``ZARR_DEFAULT_ZARR_FORMAT=2`` is ``default_zarr_format`` (the value read as a Python literal
where it is one, else as text). oxzarr's own keys are read as ``OXZARR_THREADS=4``,
``OXZARR_CHUNK_CACHE_BYTES=...``, and win over a ``ZARR_`` variable naming the same setting.
Variables naming no setting are left alone; a value a setting refuses is ignored with a
RuntimeWarning.
"""

from __future__ import annotations

import ast
import numbers
import os
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from oxzarr import _core
from oxzarr._locks import fork_safe_lock

__all__ = ["Config", "config"]

_ALIASES = {
    "threading.max_workers": "threads",
    "array.write_empty_chunks": "write_empty_chunks",
    "array.order": "order",
}
_DEFAULTS: dict[str, Any] = {
    "threads": None,
    "validate_checksums": True,
    "write_empty_chunks": False,
    "chunk_cache_bytes": 0,
    "default_zarr_format": 3,
    "output_huge_pages": None,
    "order": "C",
}
# zarr-python's settings that have no meaning here (its event loop, buffers, pipeline): taken,
# so that code written for zarr-python runs, and kept for `get`, but they change nothing.
_ZARR_PYTHON_ONLY: dict[str, Any] = {
    "array.target_shard_size_bytes": None,
    "async.concurrency": 10,
    "async.timeout": None,
    "json_indent": 2,
    "codec_pipeline.path": "zarr.core.codec_pipeline.BatchedCodecPipeline",
    "codec_pipeline.batch_size": 1,
    "buffer": "zarr.buffer.cpu.Buffer",
    "ndbuffer": "zarr.buffer.cpu.NDBuffer",
}


#: zarr-python's sections, the nested dicts its settings are in ("array" holds "array.order").
_SECTIONS = {
    name.rsplit(".", 1)[0] for name in [*_ALIASES, *_ZARR_PYTHON_ONLY, "codecs.x"] if "." in name
}


#: The most threads ``threads`` may ask for: many times the cores of any machine, and as many
#: requests in flight as a remote store serves well.
MAX_THREADS = 1024

#: `Config.get` given no default.
_NO_DEFAULT: Any = object()


def _integer(value: Any) -> int | None:
    """`value` as a Python int where it is an integer (numpy's too: np.int64(2) is one), else
    None; a bool is no integer here."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Integral):
        return None
    return int(value)


def _boolean(value: Any) -> bool | None:
    """`value` as a Python bool where it is one (numpy's np.True_ too), else None."""
    return bool(value) if isinstance(value, bool | np.bool_) else None


def _check(key: str, value: Any) -> Any:
    if key == "threads":
        if value is None:
            return None
        n = _integer(value)
        if n is None or n < 1:
            raise ValueError(f"config 'threads' must be a positive integer or None, not {value!r}")
        if n > MAX_THREADS:
            # Each is an operating-system thread with its own stack, made before any work.
            raise ValueError(f"config 'threads' must be at most {MAX_THREADS}, not {value}")
        return n
    if key == "chunk_cache_bytes":
        n = _integer(value)
        if n is None or not 0 <= n < 2**63:
            raise ValueError(
                f"config 'chunk_cache_bytes' must be an integer from 0 to 2**63 - 1, not {value!r}"
            )
        return n
    if key == "default_zarr_format":
        n = _integer(value)
        if n not in (2, 3):
            raise ValueError(f"config 'default_zarr_format' must be 2 or 3, not {value!r}")
        return n
    if key == "output_huge_pages":
        if value is None:
            return None
        flag = _boolean(value)
        if flag is None:
            raise ValueError(
                f"config 'output_huge_pages' must be None, True or False, not {value!r}"
            )
        return flag
    if key == "order":
        if value not in ("C", "F"):
            raise ValueError(f"config 'order' must be 'C' or 'F', not {value!r}")
        return value
    if key in _ZARR_PYTHON_ONLY or key.startswith("codecs."):
        return value
    flag = _boolean(value)
    if flag is None:
        raise ValueError(f"config {key!r} must be True or False, not {value!r}")
    return flag


def _flatten(changes: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """`changes` with the settings of zarr-python's sections, given nested (``{"array":
    {"order": "F"}}``), named by their dotted keys (``array.order``), as donfig reads them."""
    flat: dict[str, Any] = {}
    for key, value in changes.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and (name in _SECTIONS or name.startswith("codecs.")):
            flat.update(_flatten(value, f"{name}."))
        elif name in _SECTIONS:
            raise ValueError(
                f"config {name!r} is a section of settings: give it a dict of them, not {value!r}"
            )
        else:
            flat[name] = value
    return flat


class _Restore:
    """What `Config.set` returns: a context manager that undoes the change on exit."""

    def __init__(self, config: Config, previous: dict[str, Any]) -> None:
        self._config = config
        self._previous = previous

    def __enter__(self) -> Config:
        return self._config

    def __exit__(self, *exc: object) -> None:
        self._config._apply(self._previous)


#: The prefixes of the environment variables settings are read from, the later winning:
#: zarr-python's (donfig's), then oxzarr's own.
_ENVIRONMENT_PREFIXES = ("ZARR_", "OXZARR_")


def _from_environment(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The settings the environment names, read as zarr-python's donfig reads them: the
    name after the prefix lower-cased, ``__`` for ``.``, the value a Python literal where it
    is one (``2``, ``True``), else its text."""
    environ = os.environ if environ is None else environ
    found: dict[str, Any] = {}
    for prefix in _ENVIRONMENT_PREFIXES:
        for name, text in sorted(environ.items()):
            if not name.startswith(prefix):
                continue
            try:
                value: Any = ast.literal_eval(text)
            except (SyntaxError, ValueError, MemoryError, RecursionError):
                value = text
            try:
                key = Config._key(name[len(prefix) :].lower().replace("__", "."))
            except KeyError:
                continue  # another variable of the prefix (zarr 2's ZARR_V3_EXPERIMENTAL_API)
            try:
                found[key] = _check(key, value)
            except (TypeError, ValueError) as e:
                # Refusing it would make `import oxzarr` fail, whatever the program.
                warnings.warn(f"{name}={text!r} is ignored: {e}", RuntimeWarning, stacklevel=4)
    return found


class Config:
    """The settings of this process."""

    def __init__(self) -> None:
        # A child forked while another thread was changing settings gets a free lock.
        self._lock = fork_safe_lock(self, "_lock")
        self._values: dict[str, Any] = {**_DEFAULTS, **_ZARR_PYTHON_ONLY}
        environment = _from_environment()
        if environment:
            self._apply(environment)

    @staticmethod
    def _key(key: str) -> str:
        key = _ALIASES.get(key, key)
        if key not in _DEFAULTS and key not in _ZARR_PYTHON_ONLY and not key.startswith("codecs."):
            known = ", ".join(sorted([*_DEFAULTS, *_ALIASES]))
            raise KeyError(
                f"unknown oxzarr config key {key!r} (oxzarr's: {known}; zarr-python's own "
                "keys are accepted and ignored)"
            )
        return key

    def get(self, key: str, default: Any = _NO_DEFAULT) -> Any:
        """The value of `key`; for ``threads``, the number in effect; for a section of
        zarr-python's (``array``), its settings as a dict. A key oxzarr does not have is a
        KeyError, as in zarr-python, unless a `default` is given."""
        if key in _SECTIONS or (key not in self._values and self._names_under(key)):
            return self._section(key)
        try:
            key = self._key(key)
        except KeyError:
            if default is _NO_DEFAULT:
                raise
            return default
        if key == "threads":
            return _core.threads()
        return self._values.get(key, None if default is _NO_DEFAULT else default)

    def _names_under(self, section: str) -> list[str]:
        """The dotted names of the settings in `section`, as zarr-python names them."""
        with self._lock:  # a set or reset in another thread changes the keys
            names = [*_ALIASES, *self._values]
        return [name for name in names if name.startswith(f"{section}.")]

    def _section(self, section: str) -> dict[str, Any]:
        """The settings in `section`, nested as zarr-python's config holds them."""
        nested: dict[str, Any] = {}
        for name in self._names_under(section):
            *parents, last = name[len(section) + 1 :].split(".")
            place = nested
            for parent in parents:
                place = place.setdefault(parent, {})
            place[last] = self.get(name)
        return nested

    def set(self, changes: Mapping[str, Any] | None = None, **kwargs: Any) -> _Restore:
        """Changes settings now; used as a context manager, restores them on exit. Keywords
        name settings with ``__`` for ``.`` (``array__order="F"``), as in zarr-python."""
        dotted = {key.replace("__", "."): value for key, value in kwargs.items()}
        updates = {**_flatten(changes or {}), **_flatten(dotted)}
        normalized = {self._key(k): _check(self._key(k), v) for k, v in updates.items()}
        with self._lock:
            previous = {k: self._values.get(k) for k in normalized}
        self._apply(normalized)
        return _Restore(self, previous)

    def update(self, changes: Mapping[str, Any]) -> None:
        """Changes settings (zarr-python's name for a lasting :meth:`set`)."""
        self.set(changes)

    def reset(self) -> None:
        """Back to the defaults, and the settings the environment names (as zarr-python's
        ``reset`` reads them again)."""
        with self._lock:
            # zarr-python's codecs.* keys have no default: they go.
            for key in [k for k in self._values if k.startswith("codecs.")]:
                del self._values[key]
        self._apply({**_DEFAULTS, **_ZARR_PYTHON_ONLY, **_from_environment()})

    def refresh(self) -> None:
        """Back to the defaults and the environment's settings (zarr-python's name for
        :meth:`reset`)."""
        self.reset()

    def _apply(self, values: Mapping[str, Any]) -> None:
        with self._lock:
            previous = {k: self._values.get(k) for k in values}
            try:
                self._to_engine(values)
            except BaseException:
                # A change refused part way leaves every setting as it was.
                self._to_engine(previous)
                raise
            self._values.update(values)

    @staticmethod
    def _to_engine(values: Mapping[str, Any]) -> None:
        """Hands the engine's own settings among `values` to it."""
        if "threads" in values:
            _core.set_threads(values["threads"] or 0)
        if "validate_checksums" in values:
            _core.set_validate_checksums(values["validate_checksums"])
        if "chunk_cache_bytes" in values:
            _core.set_chunk_cache_bytes(values["chunk_cache_bytes"])
        if "output_huge_pages" in values:
            _core.set_output_huge_pages(values["output_huge_pages"])

    def __repr__(self) -> str:
        shown = {**self._values, "threads": _core.threads()}
        return f"oxzarr.config({shown})"


config = Config()
