"""Converting arrays and hierarchies: re-chunking, re-sharding, re-compressing, Zarr v2 to v3
(and back, where v2 can say it), and bringing ``.npy`` files and HDF5 datasets into Zarr.

Between Zarr arrays the engine does the whole job (``oxzarr_core::convert``): it writes the
destination shard by shard (chunk by chunk without shards), decodes each source chunk once, in
parallel on the engine's threads, and holds a bounded amount of decoded data whatever the
array's size (:data:`MEMORY_BOUND_BYTES`). ``.npy`` and HDF5 sources are read block by block
(whole destination shards), the engine encoding each block in parallel.

A destination on the local filesystem is written in a hidden directory beside its final path
and renamed into place once complete: after an error or an interruption it is absent (or, with
``overwrite``, still the old one), never half-written.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import io
import json
import math
import mmap
import os
import queue
import shutil
import signal
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from oxzarr import _core
from oxzarr._dtypes import DEFAULT_FILL_VALUE
from oxzarr._metadata import ARRAY_TO_ARRAY
from oxzarr.api import chunk_key_encoding_of, create_group, open, open_group
from oxzarr.array import Array
from oxzarr.group import Group
from oxzarr.storage import (
    CountingStore,
    MemoryStore,
    Store,
    ZipStore,
    abandon_zip,
    home_expanded,
    make_store,
)

__all__ = [
    "KEEP",
    "MEMORY_BOUND_BYTES",
    "FillValueText",
    "Interrupted",
    "Progress",
    "Report",
    "convert",
]


class _Keep:
    def __repr__(self) -> str:
        return "KEEP"


#: An option left as the source has it.
KEEP: Any = _Keep()

# The engine's budget: decoded source chunks kept between waves of destination units, and the
# units assembled at once (at least one unit, whatever its size).
_CACHE_BYTES = 160 << 20
_WAVE_BYTES = 32 << 20
#: About the most decoded data a conversion holds at once: source chunks awaiting their last
#: use and destination shards in flight (more only when one destination shard needs more
#: source chunks than that).
MEMORY_BOUND_BYTES = _CACHE_BYTES + _WAVE_BYTES
# Blocks read from .npy and HDF5 sources at once.
_BLOCK_BYTES = 64 << 20

_ARRAY_DIMENSIONS = "_ARRAY_DIMENSIONS"


#: Where xarray reads what marks a missing value: this attribute of a Zarr v3 array (in its
#: own encoding); a v2 array's fill_value itself (unless None).
_FILL_VALUE = "_FillValue"


def _an_xarray_variable(source: Array, dimension_names: Any, in_a_dataset: bool = False) -> bool:
    """Whether `source` has the dimension names xarray writes (v2's attribute, v3's field):
    converted into the other format, what xarray takes as missing there must stay the same.
    A 0-d array has none to go by in v3 (xarray writes no dimension_names for it): it is
    xarray's in a group with xarray's variables (`in_a_dataset`)."""
    if source.zarr_format == 2:
        return _names_in(source.attrs.get(_ARRAY_DIMENSIONS), len(source.shape)) is not None
    if not source.shape:
        return in_a_dataset or dimension_names == []
    return dimension_names is not None and any(n is not None for n in dimension_names)


def _of_xarray(source: Array) -> bool:
    """Whether `source` has the dimension names xarray writes, in its own format."""
    return _an_xarray_variable(source, source.metadata.to_dict().get("dimension_names"))


def _names_in(names: Any, ndim: int) -> list[str | None] | None:
    """v2's ``_ARRAY_DIMENSIONS`` attribute, if it holds a name (or None) per dimension."""
    if (
        isinstance(names, list)
        and len(names) == ndim
        and all(isinstance(n, str) or n is None for n in names)
    ):
        return names
    return None


def _v3_missing_value(source: Array, attributes: dict[str, Any]) -> Any:
    """The v2 fill value of an xarray variable of Zarr v3 (see `_an_xarray_variable`): its
    ``_FillValue`` attribute (taken out of `attributes`), the missing-value marker there, as
    v2's fill value is in v2; without one, None (else xarray would take every value equal to
    the v3 fill value, 0 say, as missing). Every chunk is written either way, so the values
    stay."""
    if _FILL_VALUE not in attributes:
        return None
    decoded = _xarray_fill_decoded(attributes[_FILL_VALUE], source.dtype)
    if decoded is None:
        return source.fill_value  # not xarray's encoding: left as it is
    del attributes[_FILL_VALUE]
    return decoded


def _recast_xarray_fill(
    source: Array,
    attributes: dict[str, Any],
    dtype: np.dtype[Any],
    dimension_names: Any,
    in_a_dataset: bool,
) -> None:
    """An xarray variable's v3 ``_FillValue`` in `attributes` cast to `dtype` as the values
    are, in xarray's encoding for it (in the source's, xarray cannot open the copy)."""
    if _FILL_VALUE not in attributes or not _an_xarray_variable(
        source, dimension_names, in_a_dataset
    ):
        return
    decoded = _xarray_fill_decoded(attributes[_FILL_VALUE], source.dtype)
    if decoded is None:
        return  # not xarray's encoding: left as it is
    cast = np.empty((), dtype=dtype)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ComplexWarning: as the values are cast
        cast[()] = _saturating_cast(np.asarray(decoded, dtype=source.dtype), dtype)
    encoded = _xarray_fill_encoded(cast[()], dtype)
    if encoded is not None:
        attributes[_FILL_VALUE] = encoded


def _xarray_fill_encoded(fill: Any, dtype: np.dtype[Any]) -> Any:
    """`fill` as xarray writes a v3 ``_FillValue``: floats as the base64 of a little-endian
    double (so that NaN's bits survive JSON), complex numbers as two of them, bytes in
    base64; None for types it has no encoding for."""

    def double(x: Any) -> str:
        return base64.b64encode(np.array(x, dtype="<f8").tobytes()).decode()

    kind = dtype.kind
    if kind == "f":
        return double(fill)
    if kind == "c":
        return [double(np.real(fill)), double(np.imag(fill))]
    if kind in "iu":
        return int(fill)
    if kind == "b":
        return bool(fill)
    if kind == "S":
        return base64.b64encode(bytes(fill)).decode()
    if kind in "UT":
        return str(fill)
    return None


def _xarray_fill_decoded(value: Any, dtype: np.dtype[Any]) -> Any:
    """A v3 ``_FillValue`` in xarray's encoding (see `_xarray_fill_encoded`) as the value;
    None if it is not in that encoding."""

    def double(text: Any) -> float | None:
        try:
            raw = base64.b64decode(text, validate=True)
        except (ValueError, TypeError):
            return None
        return float(np.frombuffer(raw, dtype="<f8")[0]) if len(raw) == 8 else None

    kind = dtype.kind
    if kind == "f":
        return double(value) if isinstance(value, str) else None
    if kind == "c" and isinstance(value, list) and len(value) == 2:
        parts = [double(v) if isinstance(v, str) else None for v in value]
        return None if None in parts else complex(parts[0] or 0.0, parts[1] or 0.0)
    if kind in "iub" and isinstance(value, int | bool):
        return value
    if kind == "S" and isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except ValueError:
            return None
    if kind in "UT" and isinstance(value, str):
        return value
    return None


class FillValueText(str):
    """A fill value as typed on a command line: read by each array's data type (text stays
    the text typed, ``true``/``false`` are a bool array's, numbers a number array's), since
    the arrays of a group can differ."""


def _fill_from_text(path: str, text: str, dtype: np.dtype[Any], data_type: Any) -> Any:
    """The fill value `text` means for an array of `dtype` at `path`, created with
    `data_type` (a ValueError if none)."""
    if dtype.kind in "TUOS":
        # Bytes for variable-length bytes and fixed bytes. Objects are text unless the
        # array is of bytes: h5py's variable-length strings are objects, and numpy 1's text.
        as_text = dtype.kind in "TU" or (dtype.kind == "O" and data_type is not bytes)
        chars: str | bytes = str(text) if as_text else str(text).encode("utf-8")
        # numpy would cut text longer than a fixed-length element without a word.
        length = {"U": dtype.itemsize // 4, "S": dtype.itemsize}.get(dtype.kind)
        if length is not None and len(chars) > length:
            raise ValueError(
                f"{path}: fill value {text!r} is longer than an element of {dtype} holds"
            )
        return chars
    lowered = text.strip().lower()
    if dtype.kind == "b":
        if lowered in ("true", "1"):
            return True
        if lowered in ("false", "0"):
            return False
        raise ValueError(f"{path}: fill value {text!r} is not a bool (true, false, 1 or 0)")
    if dtype.kind == "V":
        # Records and raw bytes: their bytes in base64, as the metadata holds them.
        try:
            raw = base64.b64decode(text.strip(), validate=True)
        except ValueError:
            raise ValueError(f"{path}: fill value {text!r} is not base64") from None
        if len(raw) != dtype.itemsize:
            raise ValueError(
                f"{path}: fill value {text!r} holds {len(raw)} bytes, an element of {dtype} "
                f"{dtype.itemsize}"
            )
        return np.frombuffer(raw, dtype=dtype)[0]
    if dtype.kind not in "iufc":
        # "NaT", a date or a count of units: the array's dtype reads it.
        return str(text)
    if dtype.kind == "c":
        try:
            number: complex = complex(text.strip().replace(" ", ""))
        except ValueError:
            raise ValueError(f"{path}: fill value {text!r} is not a complex number") from None
        return _finite_in(path, text, number, dtype)
    if lowered in ("nan", "inf", "-inf", "+inf", "infinity", "-infinity", "+infinity"):
        return float(lowered.replace("infinity", "inf"))
    try:
        number = int(text)
    except ValueError:
        try:
            number = float(text)
        except ValueError:
            raise ValueError(f"{path}: fill value {text!r} is not a number") from None
    return _finite_in(path, text, number, dtype)


def _finite_in(path: str, text: str, number: complex, dtype: np.dtype[Any]) -> Any:
    """`number`, read from `text`, unless a part of it is infinite where the text wrote none:
    1e400, or 1e39 as float32 and 70000 as float16, which would quietly be inf. Integers
    are checked against their range where the array is made."""
    if dtype.kind not in "fc" and isinstance(number, int):
        return number
    # Infinities and NaNs written out ("inf", "nan+1j") are meant.
    written = "inf" in text.lower() or "nan" in text.lower()
    try:
        before = complex(number)
    except OverflowError:  # an integer too large for any float
        before = complex(math.inf)
    after = before
    if dtype.kind in "fc":
        with np.errstate(over="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # RuntimeWarning: overflow in the cast
            as_dtype = np.asarray(before if dtype.kind == "c" else before.real).astype(dtype)
        after = complex(as_dtype[()])
    for was, part in ((before.real, after.real), (before.imag, after.imag)):
        if not math.isfinite(part) and (math.isfinite(was) or not written):
            raise ValueError(
                f"{path}: fill value {text!r} is out of range (write inf for infinity)"
            )
    return number


@dataclass
class Progress:
    """How far a conversion has got: destination units (shards, or chunks without shards)
    and decoded bytes written, of how many; the array being converted."""

    units_done: int = 0
    units_total: int = 0
    bytes_done: int = 0
    bytes_total: int = 0
    array: str = ""
    started: float = field(default_factory=time.monotonic)


@dataclass
class Report:
    """What a finished conversion did."""

    arrays: int
    groups: int
    units: int
    bytes: int
    source_decodes: int
    seconds: float


class Interrupted(Exception):
    """The conversion was stopped (Ctrl-C) before it finished; the destination was removed
    (or left as it was before)."""

    def __init__(self, progress: Progress, cleaned_up: str) -> None:
        self.progress = progress
        super().__init__(
            f"stopped after {progress.units_done} of {progress.units_total} units; {cleaned_up}"
        )


# --- sources ---


class _NpySource:
    """A ``.npy`` file, read through a memory map whose pages are released after each block
    (so a large file does not stay resident)."""

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            self.data = np.load(path, mmap_mode="r")
        except (EOFError, ValueError, OSError) as e:
            # Empty, cut short, pickled objects, or not a .npy file at all.
            raise ValueError(f"{path}: not a .npy file of an array to map ({e})") from None
        if not isinstance(self.data, np.ndarray):
            raise ValueError(f"{path}: an .npz archive of arrays, not a .npy file of one")
        self.shape: tuple[int, ...] = tuple(self.data.shape)
        self.dtype = self.data.dtype
        self.chunks: tuple[int, ...] | None = None
        self.attributes: dict[str, Any] = {}
        self.data_type: Any = self.dtype
        self.fill_value: Any = DEFAULT_FILL_VALUE

    def read(self, region: tuple[slice, ...]) -> np.ndarray[Any, Any]:
        block = np.array(self.data[region], order="C")
        mapping = getattr(self.data, "_mmap", None)
        if isinstance(mapping, mmap.mmap):
            with contextlib.suppress(OSError, ValueError):
                mapping.madvise(mmap.MADV_DONTNEED)
        return block


class _H5Source:
    """An HDF5 dataset (h5py, an optional dependency)."""

    def __init__(self, h5py: Any, dataset: Any) -> None:
        self.data = dataset
        self.path = f"{dataset.file.filename}:{dataset.name}"
        if dataset.shape is None:
            raise ValueError(f"{self.path}: an HDF5 dataset with a null dataspace holds no array")
        self.shape = tuple(int(n) for n in dataset.shape)
        self.dtype = np.dtype(dataset.dtype)
        if self.dtype.subdtype is not None:
            # h5py reads them with more dimensions than the dataset has.
            raise ValueError(f"{self.path}: array-typed elements have no Zarr data type")
        if self.dtype.fields is not None and any(
            self.dtype[name].hasobject for name in self.dtype.names or ()
        ):
            raise ValueError(
                f"{self.path}: records with variable-length fields have no Zarr data type"
            )
        # What create_array is given: the dtype, or for h5py's object dtypes the
        # variable-length text or bytes they hold (sequences of numbers and references have
        # no Zarr data type).
        self.data_type: Any = self.dtype
        self.fill_value: Any = DEFAULT_FILL_VALUE
        if self.dtype.kind == "O":
            base = h5py.check_vlen_dtype(dataset.dtype)
            if base is str or base is bytes:
                self.data_type = base
            else:
                what = f"variable-length sequences of {np.dtype(base)}" if base else "objects"
                raise ValueError(f"{self.path}: {what} have no Zarr data type")
        elif self.dtype.fields is None:
            self.fill_value = np.asarray(dataset.fillvalue, dtype=self.dtype)[()]
        self.chunks = tuple(int(n) for n in dataset.chunks) if dataset.chunks else None
        self.attributes = _json_attributes(dict(dataset.attrs))

    def read(self, region: tuple[slice, ...]) -> np.ndarray[Any, Any]:
        try:
            # np.array, not ascontiguousarray: a scalar dataset's value stays 0-d.
            return np.array(self.data[region], order="C")
        except (OSError, UnicodeDecodeError) as e:
            # A chunk that fails to decode, text that is not UTF-8: h5py names neither.
            raise ValueError(f"{self.path}: {e}") from None


_Source = Array | _NpySource | _H5Source


def _json_attributes(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """HDF5 attributes as JSON values (numbers, strings, lists); others as their repr."""

    def plain(v: Any) -> Any:
        if isinstance(v, bytes):
            return v.decode("utf-8", "replace")
        if isinstance(v, np.ndarray):
            return [plain(x) for x in v.tolist()]
        if isinstance(v, np.longdouble | np.clongdouble):
            # Their item() is themselves (no Python number holds them): as the nearest
            # float or complex.
            return plain(float(v) if isinstance(v, np.longdouble) else complex(v))
        if isinstance(v, np.generic):
            return plain(v.item())
        if isinstance(v, str | int | float | bool) or v is None:
            return v
        if isinstance(v, list | tuple):
            return [plain(x) for x in v]
        return repr(v)

    return {str(k): plain(v) for k, v in attrs.items()}


def _h5py() -> Any:
    try:
        import h5py  # type: ignore[import-untyped]
    except ImportError:
        raise ValueError("reading HDF5 needs h5py: pip install 'oxzarr[hdf5]' (or h5py)") from None
    return h5py


_HDF5_SUFFIXES = (".h5", ".hdf5", ".he5", ".hdf")
#: The first bytes of HDF5's superblock.
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def _is_hdf5_file(path: str) -> bool:
    """Whether `path` is a regular file holding HDF5's signature where the HDF5 specification
    says to look for it: at byte 0, or after a user block of 512, 1024, 2048... bytes. HDF5
    files go by many names (netCDF-4's ``.nc`` above all), so the name alone cannot tell."""
    # A regular file only: reading a FIFO or a device could wait for ever.
    if not os.path.isfile(path):
        return False
    try:
        with Path(path).open("rb") as f:
            size = os.fstat(f.fileno()).st_size
            offset = 0
            while offset + len(_HDF5_SIGNATURE) <= size:
                f.seek(offset)
                if f.read(len(_HDF5_SIGNATURE)) == _HDF5_SIGNATURE:
                    return True
                offset = 512 if offset == 0 else offset * 2
    except OSError:
        return False
    return False


def _split_hdf5(source: str) -> tuple[str, str] | None:
    """(file, path inside) for an HDF5 source, ``FILE.h5`` or ``FILE.h5:/path/inside``: the
    first ``.h5:`` ends the file's name (a name inside may end in ``.h5`` or ``.npy``). A
    directory is a Zarr store, whatever its name ends in. A file named otherwise is HDF5 by
    its signature, and then the first ":" after which it ends names it in ``FILE:/path``."""
    if os.path.isdir(source):
        return None
    lowered = source.lower()
    markers = [(lowered.find(suffix + ":"), suffix) for suffix in _HDF5_SUFFIXES]
    found = [(at, suffix) for at, suffix in markers if at >= 0]
    if found:
        at, suffix = min(found)
        end = at + len(suffix)
        return source[:end], source[end + 1 :] or "/"
    if lowered.endswith(_HDF5_SUFFIXES):
        return source, "/"
    if "://" in source:
        return None  # a URL: no local file's name
    if _is_hdf5_file(source):
        return source, "/"
    for at, character in enumerate(source):
        if character == ":" and _is_hdf5_file(source[:at]):
            return source[:at], source[at + 1 :] or "/"
    return None


def _not_a_store_or_hdf5(source: str) -> str | None:
    """The regular file that `source` (neither HDF5 nor ``.npy``) is, or names the inside
    of (``FILE:/path``), where a Zarr store is a directory or a zip file."""
    if "://" in source:
        return None
    candidates = [source, *(source[:at] for at, c in enumerate(source) if c == ":")]
    for candidate in candidates:
        if os.path.isfile(candidate) and not candidate.lower().endswith(".zip"):
            return candidate
    return None


# --- planning ---


@dataclass
class _ArrayJob:
    path: str  # in the destination
    source: _Source
    settings: dict[str, Any]


@dataclass
class _GroupJob:
    path: str
    attributes: dict[str, Any]
    zarr_format: int


@dataclass
class _Plan:
    groups: list[_GroupJob] = field(default_factory=list)
    arrays: list[_ArrayJob] = field(default_factory=list)
    consolidate: bool = False
    #: Where the source is (see `_location`), to refuse a destination overlapping it.
    location: str | None = None
    #: The source as messages name it: as given, or a store object's place.
    name: str = ""


@dataclass
class _Options:
    zarr_format: int | None
    chunks: tuple[int, ...] | None
    shards: Any
    compressors: Any
    dtype: np.dtype[Any] | None
    fill_value: Any


def _codec_name(codec: Any) -> str:
    """The name of a codec given as metadata (a dict or a bare name) or as a codec object."""
    if isinstance(codec, str):
        return codec
    if isinstance(codec, Mapping):
        return str(codec.get("name") or codec.get("id"))
    to_dict = getattr(codec, "to_dict", None)
    return str(to_dict()["name"]) if callable(to_dict) else type(codec).__name__


def _split_chain(codecs: list[Any]) -> tuple[list[Any], Any, list[Any]]:
    """(array→array codecs, array→bytes codec, bytes→bytes codecs) of a v3 codec chain."""
    names = [_codec_name(c) for c in codecs]
    split = next((i for i, n in enumerate(names) if n not in ARRAY_TO_ARRAY), len(codecs))
    serializer = codecs[split] if split < len(codecs) else None
    return codecs[:split], serializer, codecs[split + 1 :]


def _check_shape(name: str, value: tuple[int, ...], shape: tuple[int, ...], path: str) -> None:
    if len(value) != len(shape):
        raise ValueError(
            f"{path}: {name} {value} has {len(value)} dimensions, the array {len(shape)}"
        )
    if any(n <= 0 for n in value) and math.prod(shape) > 0:
        raise ValueError(f"{path}: {name} {value} must be positive")


def _layout(
    path: str,
    shape: tuple[int, ...],
    source_chunks: tuple[int, ...] | None,
    source_shards: tuple[int, ...] | None,
    itemsize: int,
    options: _Options,
    zarr_format: int,
) -> tuple[Any, tuple[int, ...] | None]:
    """The destination's (chunks, shards)."""
    shards = source_shards if options.shards is KEEP else options.shards
    if zarr_format == 2:
        if shards is not None and options.shards is not KEEP:
            raise ValueError(f"{path}: Zarr v2 has no shards (drop --shards for a v2 output)")
        shards = None  # v2 cannot shard: the source's inner chunks become the chunks
    # () is a 0-d array's chunk shape, given or not.
    chunks: Any = next((c for c in (options.chunks, source_chunks) if c is not None), "auto")
    if chunks != "auto":
        _check_shape("chunk shape", chunks, shape, path)
    if shards is not None:
        shards = tuple(shards)
        _check_shape("shard shape", shards, shape, path)
        if chunks == "auto":
            raise ValueError(f"{path}: give the inner chunk shape (--chunks) with --shards")
        if any(s % c for s, c in zip(shards, chunks, strict=True)):
            raise ValueError(
                f"{path}: the shard shape {shards} is not a multiple of the chunk shape "
                f"{tuple(chunks)}"
            )
    return chunks, shards


#: The settings of numcodecs filters that name the data type they work in.
_FILTER_DTYPE_KEYS = ("dtype", "astype", "encode_dtype", "decode_dtype")


def _little_endian_filter(codec: Any) -> Any:
    """A v2 filter (Delta, FixedScaleOffset, Quantize, AsType) for a v3 array: a v3 array's
    values reach its filters in the native order, whatever its bytes codec says, so one
    naming a big-endian type (">i4", from a big-endian v2 array) names its little-endian
    twin; zarr-python decodes the filter's output as that type."""
    if not isinstance(codec, dict) or not isinstance(codec.get("configuration"), dict):
        return codec
    config = dict(codec["configuration"])
    for key in _FILTER_DTYPE_KEYS:
        value = config.get(key)
        if isinstance(value, str) and value.startswith(">"):
            config[key] = np.dtype(value).newbyteorder("<").str
    return {**codec, "configuration": config}


def _blosc_resized(codec: Any, old: int, new: int) -> Any:
    """A kept blosc codec whose typesize was the old element size, given the new one: blosc
    shuffles by it (values decode whatever it is, but compress worse)."""
    if not isinstance(codec, dict) or _codec_name(codec) != "blosc":
        return codec
    config = dict(codec.get("configuration") or {})
    if config.get("typesize") != old:
        return codec
    return {**codec, "configuration": {**config, "typesize": new}}


def _own_type_kept(source: np.dtype[Any], options: _Options) -> _Options:
    """`options` for an array of type `source`: a --dtype converts bool, integer, float
    and complex arrays; those of other types (times, text, records) keep their own."""
    if options.dtype is None or source.kind in "biufc":
        return options
    return _Options(**{**options.__dict__, "dtype": None})


def _zarr_settings(
    path: str, source: Array, options: _Options, in_a_dataset: bool = False
) -> dict[str, Any]:
    """create_array arguments for converting the Zarr array `source` (in a group holding
    xarray's variables, if `in_a_dataset`)."""
    options = _own_type_kept(source.dtype, options)
    zarr_format = options.zarr_format or source.zarr_format
    dtype = options.dtype if options.dtype is not None else source.dtype
    if source.dtype.kind == "c" and dtype.kind != "c":
        raise ValueError(f"{path}: complex values are not converted to {dtype}")
    # Variable-length bytes are numpy objects, which create_array reads as text: name them.
    data_type: Any = dtype
    if options.dtype is None and json.loads(source._core.numpy_dtype) == "bytes":
        data_type = bytes
    chain: list[Any] = json.loads(source._core.codecs_json())
    source_chunks, source_shards = source.chunks, source.shards
    # Where a sharded source keeps its shard index, kept for sharded output.
    index_location = "end"
    if source.shards is not None:
        index_location = chain[0]["configuration"].get("index_location", "end")
        chain = list(chain[0]["configuration"]["codecs"])
    else:
        outer_filters, outer, outer_compressors = _split_chain(chain)
        if outer is not None and _codec_name(outer) == "sharding_indexed":
            # Sharding among other codecs (zarr-python writes [sharding, zstd] when given
            # serializer=ShardingCodec(...)): converted as the sharded array it is, its
            # chunks the shards, the codecs around them going to the inner chunks.
            config = outer["configuration"]
            index_location = config.get("index_location", "end")
            source_chunks = tuple(int(n) for n in config["chunk_shape"])
            source_shards = source.chunks
            inner_filters, inner, inner_compressors = _split_chain(list(config["codecs"]))
            chain = [*outer_filters, *inner_filters, inner, *inner_compressors]
            chain += outer_compressors
    chunks, shards = _layout(
        path,
        source.shape,
        source_chunks,
        source_shards,
        dtype.itemsize,
        options,
        zarr_format,
    )
    filters, serializer, compressors = _split_chain(chain)
    if options.compressors is not KEEP:
        compressors = options.compressors
    elif dtype.itemsize != source.dtype.itemsize:
        compressors = [
            _blosc_resized(c, source.dtype.itemsize, dtype.itemsize) for c in compressors
        ]
    # Array-to-array codecs that work on the values (transpose only moves them) tie the
    # chain to the source's data type.
    value_filters = [_codec_name(f) for f in filters if _codec_name(f) != "transpose"]
    order = None
    if zarr_format == 2:
        # v2 has no transpose, bytes or index codecs of its own: F order says the one
        # transpose v2 knows; the dtype says the byte order.
        kept = []
        for f in filters:
            if _codec_name(f) == "transpose":
                axes = list((f.get("configuration") or {}).get("order", []))
                if axes != list(range(len(source.shape)))[::-1]:
                    raise ValueError(f"{path}: the transpose {axes} has no Zarr v2 form")
                order = "F"
            else:
                kept.append(f)
        # v2 has one compressor: the bytes-to-bytes codecs before it (shuffle, say) are
        # v2 filters, applied in the same order.
        if isinstance(compressors, list | tuple) and len(compressors) > 1:
            kept.extend(compressors[:-1])
            compressors = compressors[-1:]
        filters = kept
        for c in [*filters, *(compressors if isinstance(compressors, list | tuple) else [])]:
            if _codec_name(c) in ("crc32c", "sharding_indexed"):
                raise ValueError(
                    f"{path}: the {_codec_name(c)} codec has no Zarr v2 form (choose "
                    "another --compressor)"
                )
    if zarr_format == 3 and source.zarr_format == 2:
        filters = [_little_endian_filter(f) for f in filters]
    if options.dtype is not None and options.dtype != source.dtype and value_filters:
        raise ValueError(
            f"{path}: the source's filters ({', '.join(value_filters)}) "
            f"are for {source.dtype}, not {options.dtype}"
        )
    attributes = dict(source.attrs)
    dimension_names = source.metadata.to_dict().get("dimension_names")
    fill = source.fill_value
    xarray = zarr_format != source.zarr_format and _an_xarray_variable(
        source, dimension_names, in_a_dataset
    )
    if xarray and zarr_format == 2:
        fill = _v3_missing_value(source, attributes)
    if zarr_format == source.zarr_format == 3 and dtype != source.dtype:
        _recast_xarray_fill(source, attributes, dtype, dimension_names, in_a_dataset)
    fill = _fill(path, options, fill, source.dtype, dtype, data_type)
    if xarray and zarr_format == 3 and fill is not None and _FILL_VALUE not in attributes:
        # v2's fill value, xarray's missing-value marker there, is the v3 attribute it
        # reads it from; the fill value stays (in the output's dtype, as the values are).
        encoded = _xarray_fill_encoded(fill, dtype)
        if encoded is not None:
            attributes[_FILL_VALUE] = encoded
    if zarr_format == 3 and dimension_names is None:
        names = _names_in(attributes.get(_ARRAY_DIMENSIONS), len(source.shape))
        # Only names become dimension_names; anything else stays the attribute it was.
        if names is not None:
            dimension_names = names
            del attributes[_ARRAY_DIMENSIONS]
    if zarr_format == 2:
        if dimension_names is not None and any(n is not None for n in dimension_names):
            attributes.setdefault(_ARRAY_DIMENSIONS, list(dimension_names))
        elif xarray and not source.shape:
            # xarray needs the attribute even with no dimensions to name, as it writes it.
            attributes.setdefault(_ARRAY_DIMENSIONS, [])
        dimension_names = None
    settings: dict[str, Any] = {
        "shape": source.shape,
        "dtype": data_type,
        "chunks": chunks,
        "shards": shards
        if shards is None or index_location == "end"
        else {"shape": shards, "index_location": index_location},
        "filters": filters,
        "compressors": compressors,
        "fill_value": fill,
        "zarr_format": zarr_format,
        "attributes": attributes,
        "dimension_names": dimension_names,
    }
    encoding = chunk_key_encoding_of(source)
    if zarr_format == source.zarr_format:
        # Left out, the format is kept, and with it how chunks are named (v2's separator).
        settings["chunk_key_encoding"] = encoding
    elif zarr_format == 2 and isinstance(encoding, dict) and encoding.get("name") == "v2":
        # A v3 array naming its chunks as v2 does is named the same in v2: its separator is
        # v2's dimension_separator ("/" became v2's default "."). Other encodings have no v2
        # form, and a v2 array becomes a v3 one with v3's default, as zarr-python's
        # from_array makes it.
        settings["chunk_key_encoding"] = encoding
    if zarr_format == 3 and serializer is not None:
        settings["serializer"] = serializer
    if order is not None:
        settings["order"] = order
    return settings


def _fill(
    path: str,
    options: _Options,
    fill: Any,
    source: np.dtype[Any],
    dtype: np.dtype[Any],
    data_type: Any,
) -> Any:
    if isinstance(options.fill_value, FillValueText):
        return _fill_from_text(path, options.fill_value, dtype, data_type)
    if options.fill_value is not KEEP:
        return options.fill_value
    if fill is None or fill is DEFAULT_FILL_VALUE or source == dtype:
        return fill
    try:
        old = np.asarray(fill, dtype=source)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ComplexWarning: the check below says it
            new = old.astype(dtype)
            back = new.astype(source)
    # RuntimeError: numpy's, for a date into text too short to hold it.
    except (ValueError, TypeError, OverflowError, RuntimeError):
        raise ValueError(f"{path}: {source} values cannot be converted to {dtype}") from None
    # The data are cast as numpy casts them, but a fill value that changes in the cast (NaN
    # or 0.5 into integers, 300 into uint8) would silently change what "missing" means.
    # Between floats (complex too) a fill is rounded as the values are, and stays their
    # match: only one that overflows to infinity changes.
    rounded = (
        source.kind in "fc"
        and dtype.kind in "fc"
        and bool(np.all(np.isfinite(new) == np.isfinite(old)))
    )
    if (
        dtype.kind not in "OTSUV"
        and not rounded
        and not (back == old or (old != old and back != back))
    ):
        raise ValueError(
            f"{path}: the fill value {old[()]} has no {dtype} form (give --fill-value)"
        )
    return new[()]


def _raw_settings(path: str, source: _NpySource | _H5Source, options: _Options) -> dict[str, Any]:
    """create_array arguments for an .npy or HDF5 source."""
    options = _own_type_kept(source.dtype, options)
    zarr_format = options.zarr_format or 3
    dtype = options.dtype if options.dtype is not None else source.dtype
    if source.dtype.kind == "c" and dtype.kind != "c":
        raise ValueError(f"{path}: complex values are not converted to {dtype}")
    if options.shards is KEEP:
        options = _Options(**{**options.__dict__, "shards": None})
    chunks, shards = _layout(
        path, source.shape, source.chunks, None, dtype.itemsize, options, zarr_format
    )
    data_type = source.data_type if options.dtype is None else dtype
    return {
        "shape": source.shape,
        "dtype": data_type,
        "chunks": chunks,
        "shards": shards,
        "compressors": "auto" if options.compressors is KEEP else options.compressors,
        "fill_value": _fill(path, options, source.fill_value, source.dtype, dtype, data_type),
        "zarr_format": zarr_format,
        "attributes": source.attributes,
    }


def _plan(
    source: Any, options: _Options, storage_options: Mapping[str, Any] | None = None
) -> _Plan:
    """Everything the conversion will create, checked before anything is written: each
    array is made once in memory, so that settings it refuses (a fill value out of the
    dtype's range, say) are refused naming it, before any array is written."""
    plan = _plan_jobs(source, options, storage_options)
    for job in plan.arrays:
        try:
            _create(MemoryStore(), job, overwrite=False)
        except (ValueError, TypeError) as e:
            where = f"{plan.name.rstrip('/')}/{job.path}" if job.path else plan.name
            e.args = (f"{where}: {e}",)  # the same exception, naming the array
            raise
    return plan


def _plan_jobs(source: Any, options: _Options, storage_options: Mapping[str, Any] | None) -> _Plan:
    """The arrays and groups converting `source` (a path, a URL or a store object) creates,
    and their settings."""
    plan = _Plan(name=source if isinstance(source, str) else "")
    if not isinstance(source, str):
        # A store object, oxzarr's or zarr-python's (as the destination may be one): the
        # Zarr node at its root, named by its place.
        node, plan.consolidate = open_as_stored(source, storage_options)
        plan.name = str(node.store)
        return _plan_zarr(node, plan, options)
    hdf5 = _split_hdf5(source)
    npy = hdf5 is None and source.lower().endswith(".npy") and not os.path.isdir(source)
    if storage_options and (hdf5 is not None or npy):
        raise ValueError(f"storage_options apply to Zarr stores at a URL, not to {source!r}")
    if npy:
        if not os.path.exists(source):
            raise FileNotFoundError(f"no such file: {source}")
        npy_source = _NpySource(source)
        plan.location = _location(f"file://{os.path.abspath(source)}")
        plan.arrays.append(_ArrayJob("", npy_source, _raw_settings(source, npy_source, options)))
        return plan
    if hdf5 is not None:
        filename, inside = hdf5
        if not os.path.exists(filename):
            raise FileNotFoundError(f"no such file: {filename}")
        plan.location = _location(f"file://{os.path.abspath(filename)}")
        h5py = _h5py()
        try:
            h5 = h5py.File(filename, "r")
        except OSError as e:
            raise OSError(f"{filename}: not an HDF5 file h5py opens ({e})") from None
        if inside not in h5:
            raise FileNotFoundError(f"no dataset or group {inside!r} in {filename}")
        _plan_hdf5(h5py, h5[inside], "", plan, options, ())
        return plan
    regular = _not_a_store_or_hdf5(source)
    if regular is not None:
        # Opened as a store, it would be a directory holding nothing: "no node found".
        raise ValueError(
            f"{regular}: neither a Zarr store (a directory or a .zip file) nor an HDF5 file"
        )
    node, plan.consolidate = open_as_stored(source, storage_options)
    return _plan_zarr(node, plan, options)


def _plan_zarr(node: Array | Group, plan: _Plan, options: _Options) -> _Plan:
    """`plan` with the jobs of copying the Zarr array or group `node`."""
    plan.location = _store_location(node.store, node.path)
    if isinstance(node, Array):
        plan.arrays.append(_ArrayJob("", node, _zarr_settings(plan.name, node, options)))
        return plan
    _plan_group(node, "", plan, options, plan.name)  # the copy is consolidated afresh
    return plan


def open_as_stored(
    path: Any, storage_options: Mapping[str, Any] | None = None
) -> tuple[Array | Group, bool]:
    """The node at `path` (or in a store object), a group read member by member even when
    it has consolidated metadata (which can be stale: a node added since), and whether it
    had it."""
    node = open(path, mode="r", storage_options=storage_options)
    if isinstance(node, Group) and node.is_consolidated:
        group = open_group(path, mode="r", use_consolidated=False, storage_options=storage_options)
        try:
            list(group.keys())  # a listing of its members
        except io.UnsupportedOperation:
            # A store that cannot list (a static web server): its consolidated metadata is
            # all there is to go by.
            return node, True
        return group, True
    return node, False


def _plan_group(group: Group, path: str, plan: _Plan, options: _Options, where: str) -> None:
    zarr_format = options.zarr_format or group.zarr_format
    plan.groups.append(_GroupJob(path, dict(group.attrs), zarr_format))
    # Its subgroups as stored too, not as consolidated metadata of their own says.
    members = list(group.members(use_consolidated_for_children=False))
    in_a_dataset = any(isinstance(m, Array) and m.shape and _of_xarray(m) for _, m in members)
    for name, member in members:
        child = f"{path}/{name}" if path else name
        if isinstance(member, Array):
            settings = _zarr_settings(f"{where}/{child}", member, options, in_a_dataset)
            plan.arrays.append(_ArrayJob(child, member, settings))
        else:
            _plan_group(member, child, plan, options, where)


def _plan_hdf5(
    h5py: Any, node: Any, path: str, plan: _Plan, options: _Options, above: tuple[Any, ...]
) -> None:
    """Plans `node` and what is below it; `above` holds the groups it lies in, by their
    HDF5 object ids, which links to the same group share."""
    if isinstance(node, h5py.Dataset):
        source = _H5Source(h5py, node)
        plan.arrays.append(_ArrayJob(path, source, _raw_settings(source.path, source, options)))
        return
    if isinstance(node, h5py.Datatype):
        raise ValueError(
            f"{node.file.filename}:{node.name}: an HDF5 named data type holds no array"
        )
    plan.groups.append(
        _GroupJob(path, _json_attributes(dict(node.attrs)), options.zarr_format or 3)
    )
    above = (*above, node.id)
    for name in node:
        where = f"{node.file.filename}:{node.name.rstrip('/')}/{name}"
        try:
            child = node[name]
        except (KeyError, OSError) as e:
            # A soft link to nothing, an external link to a missing file.
            raise ValueError(f"{where}: {e}") from None
        if isinstance(child, h5py.Datatype):
            # A named (committed) data type, as netCDF-4 keeps its record and enum types:
            # no data, only the type datasets beside it take theirs from.
            continue
        if isinstance(child, h5py.Group) and child.id in above:
            # A link back to a group it lies in: a Zarr hierarchy is a tree.
            raise ValueError(f"{where} links back to a group above it; convert a part without it")
        _plan_hdf5(h5py, child, f"{path}/{name}" if path else name, plan, options, above)


# --- running ---


def _units(shape: Sequence[int], unit: Sequence[int]) -> int:
    return math.prod(-(-s // u) for s, u in zip(shape, unit, strict=True)) if shape else 1


def _blocks(
    shape: tuple[int, ...], unit: tuple[int, ...], itemsize: int
) -> Iterator[tuple[slice, ...]]:
    """Destination-unit-aligned blocks of about _BLOCK_BYTES, in C order: the unit grown
    along the last dimensions first (contiguous in a C-order source)."""
    block = block_shape(shape, unit, itemsize)
    starts = [range(0, max(s, 1), max(b, 1)) for s, b in zip(shape, block, strict=True)]
    for corner in np.ndindex(*(len(r) for r in starts)) if shape else [()]:
        yield tuple(
            slice(starts[d][i], min(starts[d][i] + block[d], shape[d]))
            for d, i in enumerate(corner)
        )


def block_shape(shape: tuple[int, ...], unit: tuple[int, ...], itemsize: int) -> list[int]:
    """The shape of :func:`_blocks`' blocks: `unit` doubled along the last dimensions first
    while a block stays within _BLOCK_BYTES (and the array)."""
    block = list(unit)
    for d in reversed(range(len(shape))):
        while block[d] < shape[d] and math.prod(block) * itemsize * 2 <= _BLOCK_BYTES:
            block[d] = min(block[d] * 2, shape[d])
    return block


def copy_values(source: Any, destination: Array) -> None:
    """Copies the values of `source` (an oxzarr Array, or a zarr-python one) into the new,
    empty `destination` of the same shape, in blocks of about _BLOCK_BYTES aligned to the
    destination's shards (or chunks), so that memory stays bounded whatever the array's
    size. Where what the source's unstored chunks read as is the destination's fill value
    and empty chunks are not written, only the blocks holding a stored source chunk are
    copied: elsewhere there is nothing to write (a sparse array of terabytes is copied in the
    time its stored chunks take)."""
    shape = tuple(destination.shape)
    if math.prod(shape) == 0:
        return
    unit = tuple(destination.shards or destination.chunks)
    block = block_shape(shape, unit, destination.dtype.itemsize)
    held = None
    if (
        isinstance(source, Array)
        and not destination._write_empty()
        and read_alike_where_unstored(source, destination)
    ):
        held = blocks_holding_stored_chunks(source, block)
    corners: Iterable[tuple[int, ...]]
    if held is not None:
        corners = sorted(held)
    else:
        corners = np.ndindex(*(-(-n // b) for n, b in zip(shape, block, strict=True)))
    for corner in corners:
        region = block_at(corner, block, shape)
        destination[region] = source[region]


def block_at(
    corner: tuple[int, ...], block: Sequence[int], shape: tuple[int, ...]
) -> tuple[slice, ...]:
    """The region of the block at `corner` (in blocks of `block`) of an array of `shape`."""
    return tuple(
        slice(i * b, min((i + 1) * b, n)) for i, b, n in zip(corner, block, shape, strict=True)
    )


def blocks_holding_stored_chunks(array: Array, block: Sequence[int]) -> set[tuple[int, ...]] | None:
    """The corners (in blocks of `block`) of the blocks of `array` that its stored chunks (or
    shards) overlap: the others hold nothing but what unstored chunks read as. Its cost is
    that of listing the stored chunks, whatever the size of the chunk grid. None where the
    store cannot list them (a web server): every block may hold some."""
    shape = tuple(array.shape)
    grid = array._core.chunk_shape
    corners: set[tuple[int, ...]] = set()
    try:
        stored = array._core.stored_chunks()
    except io.UnsupportedOperation:
        return None
    for cell in stored:
        # The blocks this stored chunk (or shard) overlaps, along each dimension.
        spans = [
            range(c * g // b, (min((c + 1) * g, n) - 1) // b + 1)
            for c, g, b, n in zip(cell, grid, block, shape, strict=True)
        ]
        corners.update(_product(spans))
    return corners


def _product(spans: list[range]) -> Iterator[tuple[int, ...]]:
    """Every index in the product of `spans`, in C order."""
    for offsets in np.ndindex(*(len(r) for r in spans)):
        yield tuple(r[i] for r, i in zip(spans, offsets, strict=True))


def read_alike_where_unstored(a: Array, b: Array) -> bool:
    """Whether the regions of `a` and `b` with no stored chunk read the same: the same data
    type and the same fill bytes."""
    return (
        a._core.numpy_dtype == b._core.numpy_dtype
        and a._core.fill_value_bytes == b._core.fill_value_bytes
    )


class _Runner:
    """Runs a plan into a destination store, reporting progress and watching for Ctrl-C."""

    def __init__(self, progress: Callable[[Progress], None] | None) -> None:
        self.callback = progress
        self.state = Progress()
        # A plain flag, not an Event: setting one takes a lock, which Ctrl-C can leave held.
        self.cancelled = False
        self.decodes = 0
        # The arrays' jobs go to one worker thread, started with the first and kept for the
        # rest of the plan (a thread for each array cost more than copying a small one).
        # SimpleQueue is written in C and takes no lock Ctrl-C could leave held.
        self.tasks: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self.worker: threading.Thread | None = None

    def close(self) -> None:
        """Ends the worker thread, once the job it has (if any) is over."""
        if self.worker is not None:
            self.tasks.put(None)
            self.worker = None

    def report(self) -> None:
        if self.callback is not None:
            self.callback(self.state)

    @staticmethod
    def serve(tasks: queue.SimpleQueue[Callable[[], None] | None]) -> None:
        while (task := tasks.get()) is not None:
            task()
            # Not kept while waiting for the next: it holds the job, and through it the
            # arrays and the store they write to (a zip file kept open).
            del task

    def run_zarr(self, source: Array, destination: Array) -> None:
        # The job runs in the worker thread while this one waits in Python, where Ctrl-C
        # gets in (it does not while the engine runs in this thread) and cancels the job.
        job = _core.ConvertJob(
            source._core,
            destination._core,
            cache_bytes=_CACHE_BYTES,
            wave_bytes=_WAVE_BYTES,
        )
        outcome: list[tuple[bool, int, int]] = []
        failure: list[BaseException] = []
        # The end of the job is told by `finished` (a list the worker appends to), and
        # `woken` wakes the wait at once: no lock is taken here. Ctrl-C's KeyboardInterrupt
        # can land between a `with lock:`'s acquire and its block (CPython 3.11), leaving the
        # lock held; an Event's wait then hung the command for good (1 SIGTERM test in ~50).
        # Nor Thread.join/is_alive: in 3.11 a join interrupted by Ctrl-C can mark a running
        # thread as stopped. Should a Ctrl-C take the wake-up away, `finished` still tells
        # within the wait's timeout.
        finished: list[bool] = []
        woken: queue.SimpleQueue[bool] = queue.SimpleQueue()

        def work() -> None:
            try:
                outcome.append(job.run())
            except BaseException as e:  # re-raised in the caller's thread
                failure.append(e)
            finally:
                finished.append(True)
                woken.put(True)

        def wait(seconds: float) -> None:
            with contextlib.suppress(queue.Empty):
                woken.get(timeout=seconds)

        base_units, base_bytes = self.state.units_done, self.state.bytes_done
        if self.worker is None:
            self.worker = threading.Thread(
                target=self.serve, args=(self.tasks,), name="oxzarr-convert", daemon=True
            )
            self.worker.start()
        self.tasks.put(work)
        try:
            last_report = time.monotonic()
            while not finished:
                wait(max(0.0, last_report + 0.2 - time.monotonic()))
                if finished or time.monotonic() - last_report < 0.2:
                    continue
                last_report = time.monotonic()
                done, _, nbytes, _, _ = job.progress()
                self.state.units_done, self.state.bytes_done = (
                    base_units + done,
                    base_bytes + nbytes,
                )
                self.report()
        except KeyboardInterrupt:
            # The engine stops after the units in flight; a second Ctrl-C, even one while it
            # is told to, must not leave the cleanup after this racing the writes still
            # going on.
            while not finished:
                with contextlib.suppress(KeyboardInterrupt):
                    job.cancel()
                    self.cancelled = True
                    wait(0.01)
            raise
        if failure:
            error = failure.pop()
            try:
                raise error
            finally:
                # The exception's traceback holds this frame: left in a local or in the list,
                # it would make a reference cycle keeping the frames of the conversion (and
                # the partial zip they hold open) alive until the cyclic collector runs.
                del error
        completed, _, decodes = outcome[0]
        self.decodes += decodes
        done, _, nbytes, _, _ = job.progress()
        self.state.units_done, self.state.bytes_done = base_units + done, base_bytes + nbytes
        self.report()
        if not completed:
            raise KeyboardInterrupt

    def run_blocks(self, source: _NpySource | _H5Source, destination: Array) -> None:
        unit = destination.shards or destination.chunks
        dtype = destination.dtype
        for region in _blocks(source.shape, tuple(unit), dtype.itemsize):
            if self.cancelled:
                raise KeyboardInterrupt
            block = _saturating_cast(source.read(region), dtype)
            try:
                destination[region] = block
            except UnicodeDecodeError as e:
                # HDF5 text comes as its bytes: those that are not UTF-8 are the source's.
                raise ValueError(f"{source.path}: {e}") from None
            self.decodes += 1
            self.state.units_done += (
                math.prod(-(-(r.stop - r.start) // u) for r, u in zip(region, unit, strict=True))
                if region
                else 1
            )
            self.state.bytes_done += block.size * dtype.itemsize
            self.report()


def _saturating_cast(block: np.ndarray[Any, Any], dtype: np.dtype[Any]) -> Any:
    """Floats into an integer type as the engine converts them between Zarr arrays: out of
    range saturates and NaN becomes 0 (where numpy's result is undefined). Other casts are
    left to numpy's assignment."""
    if block.dtype.kind != "f" or dtype.kind not in "iu":
        return block
    info = np.iinfo(dtype)
    with np.errstate(invalid="ignore"):
        out = block.astype(dtype)
        out[block >= float(info.max)] = info.max
        out[block <= float(info.min)] = info.min
        out[np.isnan(block)] = 0
    return out


def _location(store: str, path: str = "") -> str:
    """A store's description (``file:///data/x.zarr``, ``s3://bucket/x.zarr``) and a node path
    in it as one location, local directories resolved as `convert` resolves paths, so that
    two spellings of one place compare equal. A zip file's nodes lie inside the file."""
    for local in ("file://", "zip://"):
        if store.startswith(local):
            store = "file://" + os.path.realpath(store[len(local) :])
    return "/".join(part.strip("/") for part in (store, path) if part.strip("/"))


def _store_location(store: Store, path: str = "") -> str:
    """`_location` of the node at `path` in `store`. A MemoryStore made as an object describes
    itself as "memory://", as the one store behind memory:// URLs does, though it shares
    keys with neither that store nor any other MemoryStore: it is told apart by its
    contents, which its views share."""
    while isinstance(store, CountingStore):
        store = store.wrapped
    if isinstance(store, MemoryStore) and store._url is None:
        return _location(f"{_MEMORY_OBJECT}{id(store._shared)}://", path)
    return _location(str(store), path)


#: How `_store_location` begins the place of a MemoryStore made as an object.
_MEMORY_OBJECT = "memory-store-"


def _shown(location: str) -> str:
    """A location as messages show it: a local path as a path, a MemoryStore made as an
    object as its description (its place holds no name a user would know)."""
    if location.startswith(_MEMORY_OBJECT):
        return "memory:// (a MemoryStore object)" + location.partition(":")[2]
    return location.removeprefix("file://")


def _overlap(one: str, other: str) -> bool:
    """Whether one location is the other or lies inside it."""
    return one == other or one.startswith(other + "/") or other.startswith(one + "/")


def _local_path(destination: Any) -> Path | None:
    """The local path `destination` names, if it names one: a leading `~` is the home
    directory, as for every path oxzarr opens (and for the source; see `home_expanded`)."""
    if isinstance(destination, str):
        if destination.startswith("file://"):
            destination = destination[len("file://") :]
        elif "://" in destination:
            return None
    elif not isinstance(destination, os.PathLike):
        return None
    return Path(home_expanded(destination))


def convert(
    source: Any,
    destination: Any,
    *,
    zarr_format: int | None = None,
    chunks: Sequence[int] | None = None,
    shards: Sequence[int] | Any | None = KEEP,
    compressors: Any = KEEP,
    dtype: Any = None,
    fill_value: Any = KEEP,
    overwrite: bool = False,
    progress: Callable[[Progress], None] | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> Report:
    """Copies the array or hierarchy at `source` (a Zarr store's path or URL, a store object
    as the open functions take it, a ``.npy`` file, an HDF5 file or ``FILE.h5:/dataset``)
    into a new `destination`, with the given layout.

    Options left out keep the source's: ``zarr_format``; ``chunks`` (the inner chunks, when
    sharded); ``shards`` (``None`` removes sharding); ``compressors`` (oxzarr codecs or
    their metadata; ``None`` for none); ``dtype`` (values converted as numpy's ``astype``);
    ``fill_value``. Groups convert recursively with their attributes. Into the other format,
    an xarray variable's dimension names and missing-value marker move to where xarray
    reads them there (v2's ``_ARRAY_DIMENSIONS`` and fill value, v3's ``dimension_names``
    and ``_FillValue`` attribute). ``storage_options``
    are those of an ``s3://``, ``gs://`` or ``http(s)://`` `source`; a `destination` at
    such a URL with options of its own is given as a store (``oxzarr.storage.RemoteStore``).
    A local `destination` named ``*.zip`` is written as a zip file (entries stored, as
    zarr-python's ZipStore writes them); other local destinations are directories. Ctrl-C raises
    :class:`Interrupted` once the units in flight are written and the partial destination
    is removed.
    """
    started = time.monotonic()
    options = _Options(
        zarr_format=zarr_format,
        chunks=tuple(int(c) for c in chunks) if chunks is not None else None,
        shards=KEEP
        if shards is KEEP
        else (None if shards is None else tuple(int(s) for s in shards)),
        compressors=compressors,
        dtype=None if dtype is None else np.dtype(dtype),
        fill_value=fill_value,
    )
    if options.zarr_format not in (None, 2, 3):
        raise ValueError(f"zarr_format must be 2 or 3, not {zarr_format!r}")
    if options.dtype is not None and options.dtype.kind not in "biufc":
        # Values convert between these (arrays of other types keep theirs).
        raise ValueError(
            f"dtype {options.dtype} is not a bool, integer, float or complex type, which "
            "values are converted between"
        )
    if isinstance(source, str | os.PathLike):
        source = os.fspath(source)
    named = os.fspath(destination) if isinstance(destination, str | os.PathLike) else None
    if source == "" or named == "":
        # "" would be the working directory, which --overwrite would replace.
        raise ValueError("the source and the destination must not be empty")
    plan = _plan(source, options, storage_options)
    final = _local_path(destination)
    staging: Path | None = None
    staging_dir: Path | None = None
    target: Any = destination
    if final is not None:
        # A symlink stands for where it points; "." and ".." for the directories they name.
        final = Path(os.path.realpath(final))
        where = _location(f"file://{final}")
    else:
        target = make_store(destination)  # a URL or a store object
        where = _store_location(target)
    if plan.location is not None and _overlap(where, plan.location):
        # Replacing the destination would delete the source (or the destination be written
        # into the source it reads).
        shown = [_shown(place) for place in (where, plan.location)]
        raise ValueError(f"{shown[0]} and the source {shown[1]} overlap: choose another place")
    if final is not None:
        if os.path.lexists(final) and not overwrite:
            raise _exists_error(final)
        if not final.parent.is_dir():
            raise FileNotFoundError(f"no such directory: {final.parent}")
        if not os.access(final.parent, os.W_OK):
            raise PermissionError(f"cannot write in {final.parent}")
        # The copy is written one level down, under the destination's own name: the hidden
        # directory holds no metadata of its own, so no reader takes it (or the copy in it)
        # for a member of the group the destination is in, even after a kill that leaves it.
        staging_dir = _sibling(final, "partial")
        staging = staging_dir / final.name
        target = str(staging)
    zipped: ZipStore | None = None
    runner = _Runner(progress)
    try:
        # Made inside the try, so that a Ctrl-C from here on removes it.
        if staging_dir is not None and staging is not None and final is not None:
            try:
                staging_dir.mkdir()
                if final.suffix.lower() == ".zip":
                    # A destination named *.zip is written as a zip file.
                    zipped = ZipStore(staging, mode="x")
                else:
                    staging.mkdir()
            except OSError as e:
                # Even root cannot write everywhere (/proc, read-only mounts): say so in
                # terms of the destination the user named, not of the staging directory.
                raise OSError(e.errno, f"cannot create {final}: {e.strerror or e}") from None
        store = zipped if zipped is not None else make_store(target)
        arrays: list[tuple[Array, _ArrayJob]] = []
        for group in plan.groups:
            create_group(
                store,
                path=group.path,
                zarr_format=group.zarr_format,
                attributes=group.attributes,
                overwrite=final is None and overwrite,
            )
        for job in plan.arrays:
            created = _create(store, job, overwrite=final is None and overwrite)
            arrays.append((created, job))
        runner.state.units_total = sum(_units(a.shape, a.shards or a.chunks) for a, _ in arrays)
        runner.state.bytes_total = sum(a.nbytes for a, _ in arrays)
        for created, job in arrays:
            runner.state.array = job.path or "/"
            if isinstance(job.source, Array):
                runner.run_zarr(job.source, created)
            else:
                runner.run_blocks(job.source, created)
        if plan.consolidate and plan.groups:
            from oxzarr.api import consolidate_metadata

            consolidate_metadata(store)
        if zipped is not None:
            zipped.close()
        if staging_dir is not None and staging is not None and final is not None:
            with _ctrl_c_ignored():
                _move_into_place(staging, final, overwrite=overwrite)
                # Emptied by the rename. Should it stay, it is no node: not worth failing a
                # conversion that is in place.
                with contextlib.suppress(OSError):
                    staging_dir.rmdir()
    except KeyboardInterrupt:
        with _ctrl_c_ignored():
            cleaned = _discard(staging_dir, final, zipped)
        raise Interrupted(runner.state, cleaned) from None
    except BaseException:
        with _ctrl_c_ignored():
            _discard(staging_dir, final, zipped)
        raise
    finally:
        runner.close()
    return Report(
        arrays=len(plan.arrays),
        groups=len(plan.groups),
        units=runner.state.units_done,
        bytes=runner.state.bytes_done,
        source_decodes=runner.decodes,
        seconds=time.monotonic() - started,
    )


def _create(store: Any, job: _ArrayJob, *, overwrite: bool) -> Array:
    from oxzarr.api import create_array

    return create_array(store, name=job.path or None, overwrite=overwrite, **job.settings)


def _remove(path: Path) -> None:
    """Removes the file or directory at `path`, if any."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        # As rmtree's ignore_errors: a leftover that cannot go is reported by what follows.
        with contextlib.suppress(OSError):
            path.unlink()


def _discard(staging_dir: Path | None, final: Path | None, zipped: ZipStore | None = None) -> str:
    if zipped is not None:
        # Ends writing (the file can be opened for writing again) and closes the file, which
        # is removed below: no directory is written for it, and its disk space is freed now,
        # not when the arrays over the store happen to be collected.
        abandon_zip(zipped)
    if staging_dir is None:
        return "the destination holds what was written so far"
    _remove(staging_dir)
    if final is not None and final.exists():
        return f"{final} was left as it was"
    return f"nothing was left at {final}"


@contextlib.contextmanager
def _ctrl_c_ignored() -> Iterator[None]:
    """Ctrl-C (and SIGTERM) ignored for the duration: cleaning up and renaming into place
    must finish, or they would leave the half-written state they exist to prevent."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


#: The most bytes of a file name (NAME_MAX on Linux and most filesystems).
_NAME_MAX = 255


def _sibling(final: Path, what: str) -> Path:
    """A new hidden path beside `final`, for the conversion in progress or the destination it
    replaces: its own to each call, so that conversions to one destination from several
    threads (or processes) never share one. The last to finish wins, whole."""
    suffix = f".oxzarr-{what}-{os.getpid()}-{uuid.uuid4().hex[:12]}"
    # A name holds at most 255 bytes (not characters): the destination's is cut to leave
    # room for the dot and the suffix, at a character's end (os.fsencode gives the bytes
    # the filesystem stores, those of a name that is not UTF-8 too).
    room = _NAME_MAX - 1 - len(os.fsencode(suffix))
    kept = 0
    for character in final.name:
        room -= len(os.fsencode(character))
        if room < 0:
            break
        kept += 1
    return final.parent / f".{final.name[:kept]}{suffix}"


def _exists_error(final: Path) -> FileExistsError:
    return FileExistsError(f"{final} exists (overwrite it with --overwrite)")


def _move_into_place(staging: Path, final: Path, *, overwrite: bool) -> None:
    """Renames the finished conversion to its path, replacing what was there with
    `overwrite`; without, what was made there since the conversion started stays."""
    if not overwrite:
        _move_into_place_new(staging, final)
        return
    if not os.path.lexists(final):
        staging.rename(final)
        return
    # The old destination is moved aside one level down too, for as long as it takes to
    # remove it: beside the destination it would be a member of the group both are in.
    aside = _sibling(final, "old")
    aside.mkdir()
    old = aside / final.name
    try:
        final.rename(old)
    except OSError as e:
        aside.rmdir()
        if e.errno != errno.EXDEV:
            raise
        # An overlay filesystem does not move a directory of its lower layer (one baked
        # into a container image): the old destination is removed where it is instead, as
        # create_array(overwrite=True) removes it.
        if final.is_dir() and not final.is_symlink():
            shutil.rmtree(final)
        else:
            final.unlink()
        staging.rename(final)
        return
    try:
        staging.rename(final)
    except OSError:
        # The old destination comes back. If it cannot, another conversion to the same place
        # put its result there meanwhile: that replaces the old destination, as this one
        # would have, and the old one goes with the directory it was moved to.
        with contextlib.suppress(OSError):
            old.rename(final)
        _remove(aside)
        raise
    shutil.rmtree(aside)


def _move_into_place_new(staging: Path, final: Path) -> None:
    """Renames the finished conversion to its path, where nothing may be: what another
    process made there meanwhile is the user's, and a FileExistsError leaves it alone."""
    if os.path.lexists(final):
        raise _exists_error(final)
    if staging.is_dir():
        # Refused (ENOTEMPTY, ENOTDIR) if a non-empty directory or a file appeared since the
        # check; only an empty directory made in between would be replaced.
        _rename_to_new(staging, final)
        return
    # A zip file: a rename would replace a file made since the check, a hard link never
    # replaces anything.
    try:
        os.link(staging, final)
    except FileExistsError:
        raise _exists_error(final) from None
    except OSError:
        # A filesystem without hard links: a rename, nothing having been there just now.
        _rename_to_new(staging, final)
        return
    staging.unlink()


def _rename_to_new(staging: Path, final: Path) -> None:
    """Renames `staging` to `final`; a failure because something is there now is the
    FileExistsError of a destination that exists."""
    try:
        staging.rename(final)
    except OSError:
        if os.path.lexists(final):
            raise _exists_error(final) from None
        raise
