"""The Array class: a chunked, compressed N-dimensional array in a store."""

from __future__ import annotations

import functools
import json
import math
import warnings
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar, cast

import numpy as np
import numpy.typing as npt

from oxzarr import _core
from oxzarr._dtypes import STRING_DTYPE, refuse_missing_strings, v2_dtype
from oxzarr._indexing import (
    Indexer,
    Slab,
    in_bounds,
    indexer,
    integer_indices,
    is_integer,
    plain_integers,
    simple_indexer,
    slabs,
    vectorized_kind,
)
from oxzarr._locks import metadata_lock
from oxzarr._metadata import ARRAY_TO_ARRAY, ARRAY_TO_BYTES, integers
from oxzarr.codecs import Codec, NumcodecsConfig, ShardingCodec, codec_from_dict
from oxzarr.config import config
from oxzarr.errors import BoundsCheckError, ReadOnlyError
from oxzarr.storage import MemoryStore, RemoteStore, Store, StoreLike

__all__ = ["Array", "ArrayConfig", "ArrayMetadata", "ArrayV2Metadata", "Attributes"]

JSON = Any

#: Elements of a variable-length selection per call to the engine, which takes and gives
#: them as Python objects: a slab of this many strings of 50 characters takes some 15 MiB
#: (their Python objects, and the engine's copy).
_VLEN_SLAB_ELEMENTS = 1 << 16


def node_document(node: Any) -> dict[str, JSON]:
    """The document of `node` (an Array or a Group) as its engine handle holds it: see
    :func:`node_document_view`, whose cache is checked here first (attrs reads every key
    through this)."""
    core = node._core
    cached = node._metadata_cache
    if (
        cached is not None
        and cached[0] is core
        and (not node._shared or cached[1] == core.consolidated_generation)
    ):
        return cast(dict[str, JSON], cached[2])
    return node_document_view(node)[1]


def node_document_view(node: Any) -> tuple[int | None, dict[str, JSON]]:
    """The document of `node` (an Array or a Group), and the generation of the attributes
    shared through consolidated metadata it was read at (None: not shared). Kept with the
    engine handle it was made from: made from one a write (in another thread) has since
    replaced, or before a write through another node sharing its attributes, it is made
    again."""
    core = node._core
    # Read before the document: a write coming between leaves the document newer than the
    # generation, and a write made from it is refused and made again.
    generation = core.consolidated_generation if node._shared else None
    cached = node._metadata_cache
    if cached is None or cached[0] is not core or cached[1] != generation:
        cached = (core, generation, json.loads(core.metadata_json()))
        node._metadata_cache = cached
    return cached[1], cached[2]


class Attributes(MutableMapping[str, JSON]):
    """The user attributes of an array or group. Every change is written to the store at
    once (as zarr-python's ``attrs``)."""

    def __init__(self, node: Array | Any) -> None:
        self._node = node

    def _stored(self) -> Mapping[str, JSON]:
        # The node's own mapping, not a copy: reads go to it straight, as copying it for each
        # key made reading every key cost the square of their number. oxzarr never changes it
        # in place (a write loads a new document). `metadata.attributes` is the same mapping,
        # as zarr-python's is its attrs': a caller changing it there changes what attrs
        # reads and the next write stores, as in zarr-python.
        stored: Mapping[str, JSON] = self._node._metadata_dict.get("attributes") or {}
        return stored

    def _view(self) -> tuple[int | None, Mapping[str, JSON]]:
        """The attributes as :meth:`_stored` gives them, and the generation of the
        attributes shared through consolidated metadata they were read at (see
        ``Array._metadata_view``), for a write to be made from."""
        generation, document = self._node._metadata_view()
        stored: Mapping[str, JSON] = document.get("attributes") or {}
        return generation, stored

    def _current(self) -> dict[str, JSON]:
        """A copy of the attributes, for a write to change."""
        return dict(self._stored())

    def _change(self, change: Callable[[dict[str, JSON]], None]) -> None:
        """Writes the attributes `change` makes of a copy of the current ones."""
        # Each change reads the attributes and writes them back whole: threads changing them
        # through one handle go one at a time, or each would write back what it read and
        # drop the others' keys (nor may a resize write back the attributes it read).
        # Handles opened through one group's consolidated metadata share their attributes
        # (as zarr-python's do): the engine refuses a write made from attributes another
        # handle's write has since replaced, and it is made again from the new ones.
        with self._node._metadata_lock:
            while True:
                generation, stored = self._view()
                attrs = dict(stored)
                change(attrs)
                if self._node._write_attributes(attrs, generation):
                    return

    def __getitem__(self, key: str) -> JSON:
        return self._stored()[key]

    def __setitem__(self, key: str, value: JSON) -> None:
        self.update({key: value})

    def __delitem__(self, key: str) -> None:
        self._change(lambda attrs: attrs.__delitem__(key))

    def __iter__(self) -> Iterator[str]:
        # Over the mapping of the time the iteration began, as over a copy before: a write
        # while iterating loads a new mapping and leaves this one as it was.
        return iter(self._stored())

    def __len__(self) -> int:
        return len(self._stored())

    def __contains__(self, key: object) -> bool:
        return key in self._stored()

    def update(self, *args: Any, **kwargs: JSON) -> None:
        """Changes several attributes with one write."""
        self._change(lambda attrs: attrs.update(*args, **kwargs))

    def put(self, d: Mapping[str, JSON]) -> None:
        """Replaces all attributes."""
        with self._node._metadata_lock:
            self._node._write_attributes(dict(d))

    def asdict(self) -> dict[str, JSON]:
        return self._current()

    def __repr__(self) -> str:
        return repr(dict(self._stored()))


@functools.lru_cache(maxsize=1024)
def _parsed_description(described: str) -> Any:
    # Kept: a hierarchy's many arrays share a few dtypes, and parsing the description for
    # each of them is a good part of the cost of a member's handle. (Not the dtype made from
    # it: a record dtype's field names can be changed in place, so each handle makes its own.)
    return json.loads(described)


def _numpy_dtype(described: str) -> tuple[np.dtype[Any], bool]:
    """The numpy dtype of elements the engine describes as `described` (JSON), and whether
    they are of variable length."""
    parsed = _parsed_description(described)
    # Variable-length elements: text as numpy's StringDType (as zarr-python gives it),
    # bytes as objects.
    if parsed == "string":
        return STRING_DTYPE, True
    if parsed == "bytes":
        return np.dtype(object), True
    return np.dtype(parsed), False


def _broadcast(values: npt.NDArray[Any], shape: tuple[int, ...]) -> npt.NDArray[Any]:
    """`values` broadcast to `shape` as numpy's assignment broadcasts them, which also drops
    leading dimensions of length 1 (a (1, 5) row into a (5,) selection); refused naming
    both shapes."""
    given = values.shape
    extra = values.ndim - len(shape)
    if extra > 0 and all(n == 1 for n in given[:extra]):
        values = values.reshape(given[extra:])
    try:
        return np.broadcast_to(values, shape)
    except ValueError as e:
        raise ValueError(
            f"could not broadcast input array from shape {given} into shape {shape}"
        ) from e


@dataclass(frozen=True)
class ArrayMetadata:
    """An array's ``zarr.json``, with zarr-python's field names."""

    shape: tuple[int, ...]
    data_type: str
    chunk_grid: dict[str, JSON]
    chunk_key_encoding: dict[str, JSON]
    fill_value: JSON
    codecs: tuple[Codec, ...]
    attributes: dict[str, JSON]
    dimension_names: tuple[str | None, ...] | None
    zarr_format: int = 3
    node_type: str = "array"
    storage_transformers: tuple[JSON, ...] = ()
    _document: dict[str, JSON] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, doc: dict[str, JSON]) -> ArrayMetadata:
        names = doc.get("dimension_names")
        return cls(
            shape=tuple(doc["shape"]),
            data_type=doc["data_type"],
            chunk_grid=doc["chunk_grid"],
            chunk_key_encoding=doc["chunk_key_encoding"],
            fill_value=doc["fill_value"],
            codecs=tuple(codec_from_dict(c) for c in doc["codecs"]),
            attributes=doc.get("attributes") or {},
            dimension_names=tuple(names) if names is not None else None,
            storage_transformers=tuple(doc.get("storage_transformers") or ()),
            _document=doc,
        )

    def to_dict(self) -> dict[str, JSON]:
        """The document as stored."""
        doc: dict[str, JSON] = json.loads(json.dumps(self._document))
        return doc

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def _grid_chunk_shape(self, attribute: str) -> tuple[int, ...]:
        config = self.chunk_grid.get("configuration")
        if self.chunk_grid.get("name") != "regular" or not isinstance(config, dict):
            # As zarr-python, which defines these shapes for regular grids only.
            raise NotImplementedError(
                f"The `{attribute}` attribute is only defined for arrays using a regular "
                f"chunk grid; this array has {self.chunk_grid.get('name')!r}"
            )
        return tuple(config["chunk_shape"])

    def _sharding(self) -> ShardingCodec | None:
        # zarr-python calls an array sharded when sharding is its only codec.
        if len(self.codecs) == 1 and isinstance(self.codecs[0], ShardingCodec):
            return self.codecs[0]
        return None

    @property
    def chunks(self) -> tuple[int, ...]:
        """The shape of a chunk, or of an inner chunk of a sharded array (zarr-python's)."""
        grid = self._grid_chunk_shape("chunks")
        sharding = self._sharding()
        return sharding.chunk_shape if sharding is not None else grid

    @property
    def shards(self) -> tuple[int, ...] | None:
        """The shape of a shard, or None for an array that is not sharded."""
        grid = self._grid_chunk_shape("shards")
        return grid if self._sharding() is not None else None

    @property
    def inner_codecs(self) -> tuple[Codec, ...]:
        """The codecs of a chunk, or of an inner chunk of a sharded array."""
        sharding = self._sharding()
        return sharding.codecs if sharding is not None else self.codecs


@dataclass(frozen=True)
class ArrayV2Metadata:
    """A v2 array's ``.zarray`` (and ``.zattrs`` as ``attributes``), with zarr-python's names."""

    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    dtype: JSON
    fill_value: JSON
    order: str
    filters: tuple[dict[str, JSON], ...] | None
    compressor: dict[str, JSON] | None
    dimension_separator: str
    attributes: dict[str, JSON]
    zarr_format: int = 2
    _document: dict[str, JSON] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, doc: dict[str, JSON]) -> ArrayV2Metadata:
        filters = doc.get("filters")
        return cls(
            shape=tuple(doc["shape"]),
            chunks=tuple(doc["chunks"]),
            dtype=doc["dtype"],
            fill_value=doc.get("fill_value"),
            order=doc.get("order", "C"),
            filters=tuple(filters) if filters is not None else None,
            compressor=doc.get("compressor"),
            dimension_separator=doc.get("dimension_separator", "."),
            attributes=doc.get("attributes") or {},
            _document=doc,
        )

    def to_dict(self) -> dict[str, JSON]:
        """The document as stored, with the attributes."""
        doc: dict[str, JSON] = json.loads(json.dumps(self._document))
        return doc

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def shards(self) -> None:
        """None: v2 has no sharding."""
        return None


Fields = str | list[str] | tuple[str, ...] | None


@dataclass(frozen=True)
class ArrayConfig:
    """An array's settings for this process, not stored with it (zarr-python's
    ``ArrayConfig``): the memory layout of the arrays its reads return, and whether writes
    store chunks that hold only the fill value."""

    order: str = "C"
    write_empty_chunks: bool = False

    def __post_init__(self) -> None:
        if self.order not in ("C", "F"):
            raise ValueError(f"order must be 'C' or 'F', not {self.order!r}")
        if not isinstance(self.write_empty_chunks, bool | np.bool_):
            raise ValueError(
                f"write_empty_chunks must be True or False, not {self.write_empty_chunks!r}"
            )
        # numpy's bools become Python's, which the engine takes.
        object.__setattr__(self, "write_empty_chunks", bool(self.write_empty_chunks))

    def to_dict(self) -> dict[str, Any]:
        return {"order": self.order, "write_empty_chunks": self.write_empty_chunks}


def settings_from(config: Any, *, strict: bool = True) -> dict[str, Any]:
    """The settings in `config` (a mapping, or an ``ArrayConfig`` of oxzarr's or
    zarr-python's), checked. Other keys raise a TypeError when `strict` (as zarr-python's
    ``with_config``) and are ignored otherwise (as its functions that create or open)."""
    if config is None:
        return {}
    if not isinstance(config, Mapping):
        if not all(hasattr(config, k) for k in ("order", "write_empty_chunks")):
            raise TypeError(f"config must be a dict or an ArrayConfig, not {type(config).__name__}")
        config = {"order": config.order, "write_empty_chunks": config.write_empty_chunks}
    unknown = sorted(set(config) - {"order", "write_empty_chunks"})
    if unknown and strict:
        raise TypeError(
            f"unknown array config {unknown[0]!r} (an array's config takes 'order' and "
            "'write_empty_chunks')"
        )
    config = {k: v for k, v in config.items() if k not in unknown}
    checked = ArrayConfig(**{"order": "C", "write_empty_chunks": False, **config})
    return {k: getattr(checked, k) for k in config}


def pop_fields(key: Any) -> tuple[Fields, Any]:
    """Splits the field names (strings) off a selection, as zarr-python does: ``a["x"]``,
    ``a["x", 0:2]``, ``a["x", "y", 0:2]``, and numpy's ``a[["x", "y"]]``. Returns the fields
    (``None`` for none) and the rest of the selection."""
    if isinstance(key, str):
        return key, ()
    if type(key) is list and key and all(isinstance(k, str) for k in key):
        # numpy's multi-field index, a["y", "x"] as a list.
        return list(key), ()
    if type(key) is not tuple or not any(isinstance(k, str) for k in key):
        return None, key
    names = [k for k in key if isinstance(k, str)]
    rest = tuple(k for k in key if not isinstance(k, str))
    return (names[0] if len(names) == 1 else names), (rest[0] if len(rest) == 1 else rest)


def _wants_fields(fields: Fields) -> bool:
    """Whether `fields` asks for fields (no names, as none, asks for the whole records)."""
    if isinstance(fields, str | list | tuple):
        return len(fields) > 0
    return fields is not None  # anything else is refused by `_field_key`


def _field_key(dtype: np.dtype[Any], fields: Fields) -> str | list[str]:
    """What selects `fields` of records of `dtype` in numpy (one name, or a list of them),
    checked against `dtype` before anything is read."""
    if not isinstance(fields, str | list | tuple):
        raise IndexError(f"fields must be a string or a list of strings, not {fields!r}")
    names = [fields] if isinstance(fields, str) else list(fields)
    if dtype.names is None:
        raise IndexError(f"the array's dtype {dtype} has no fields to select {names}")
    missing = [n for n in names if n not in dtype.names]
    if missing:
        raise IndexError(f"no field {missing[0]!r} in the array's dtype {dtype}")
    return fields if isinstance(fields, str) else names


def _take_fields(records: npt.NDArray[Any], key: str | list[str]) -> npt.NDArray[Any]:
    """A new array of the fields `key` (from `_field_key`) of `records`: one field's values
    (with its subarray dimensions), or records of just those fields, packed, in the order
    asked."""
    if isinstance(key, str):
        return records[key].copy()
    packed = np.empty(records.shape, dtype=[(n, records.dtype[n]) for n in key])
    for n in key:
        packed[n] = records[n]
    return packed


def _out_array(out: Any, shape: tuple[int, ...]) -> npt.NDArray[Any]:
    """The numpy array behind `out` (a numpy array, or zarr-python's ``NDBuffer``), checked
    to have the selection's shape and to be writeable."""
    array = out.as_ndarray_like() if hasattr(out, "as_ndarray_like") else out
    if not isinstance(array, np.ndarray):
        given = type(out).__name__
        if array is not out:
            given = f"an NDBuffer holding {type(array).__name__}"
        raise TypeError(f"out must be a numpy array or an NDBuffer holding one, not {given}")
    if array.shape != shape:
        raise ValueError(
            f"shape of out argument doesn't match. Expected {shape}, got {array.shape}"
        )
    if not array.flags.writeable:
        raise ValueError("out is read-only")
    return array


_T = TypeVar("_T")


def _from_buffer(write: Callable[[npt.NDArray[np.uint8]], _T], flat: npt.NDArray[np.uint8]) -> _T:
    """`write` of the values in `flat` (the caller's own memory, when nothing needed casting),
    from a copy if another thread's read is decoding into that memory meanwhile (the engine
    then cannot borrow it)."""
    try:
        return write(flat)
    except BufferError:
        return write(flat.copy())


def _fortran_ordered(value: Any) -> bool:
    """Whether `value` is a numpy array laid out in F order alone (two or more dimensions
    longer than one)."""
    return (
        isinstance(value, np.ndarray) and value.flags.f_contiguous and not value.flags.c_contiguous
    )


def _deliver(values: npt.NDArray[Any], out: Any) -> npt.NDArray[Any]:
    """`values`, or `out` holding them (cast as numpy's assignment casts)."""
    if out is None:
        return values
    target = _out_array(out, values.shape)
    target[...] = values
    return target


class _OrthogonalIndex:
    def __init__(self, array: Array) -> None:
        self._array = array

    def __getitem__(self, key: Any) -> npt.NDArray[Any]:
        fields, key = pop_fields(key)
        return self._array.get_orthogonal_selection(key, fields=fields)

    def __setitem__(self, key: Any, value: npt.ArrayLike) -> None:
        fields, key = pop_fields(key)
        self._array.set_orthogonal_selection(key, value, fields=fields)


class _VectorizedIndex:
    def __init__(self, array: Array) -> None:
        self._array = array

    def __getitem__(self, key: Any) -> npt.NDArray[Any]:
        fields, key = pop_fields(key)
        if _is_mask(key, self._array.shape):
            return self._array.get_mask_selection(key, fields=fields)
        return self._array.get_coordinate_selection(key, fields=fields)

    def __setitem__(self, key: Any, value: npt.ArrayLike) -> None:
        fields, key = pop_fields(key)
        if _is_mask(key, self._array.shape):
            self._array.set_mask_selection(key, value, fields=fields)
        else:
            self._array.set_coordinate_selection(key, value, fields=fields)


class _BlockIndex:
    def __init__(self, array: Array) -> None:
        self._array = array

    def __getitem__(self, key: Any) -> npt.NDArray[Any]:
        return self._array.get_block_selection(key)

    def __setitem__(self, key: Any, value: npt.ArrayLike) -> None:
        self._array.set_block_selection(key, value)


class Summary(str):
    """What ``info`` and ``info_complete`` give: a string of rows that shows as its rows,
    not as a quoted string, when a REPL or notebook displays it (zarr-python's ``info`` is an
    object shown that way)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return str(self)


def _summary(rows: list[tuple[str, Any]], width: int) -> Summary:
    return Summary("\n".join(f"{k:<{width}}: {v}" for k, v in rows))


def _check_basic(selection: Any) -> None:
    """Refuses what a basic selection does not take (index arrays and masks), as zarr-python
    does: they belong to ``oindex``, ``vindex`` or ``[]``."""
    for item in selection if isinstance(selection, tuple) else (selection,):
        if isinstance(item, list | np.ndarray) and np.ndim(item) > 0:
            raise IndexError(
                "a basic selection takes integers, slices, Ellipsis and newaxis, not "
                f"{type(item).__name__}: use oindex, vindex or [] for index arrays and masks"
            )


def _is_mask(key: Any, shape: tuple[int, ...]) -> bool:
    if isinstance(key, tuple) and len(key) == 1:
        key = key[0]
    if isinstance(key, list):
        # A mask as nested lists, as numpy and zarr-python take it.
        try:
            key = np.asarray(key)
        except ValueError:  # ragged: not a mask
            return False
    return isinstance(key, np.ndarray) and key.dtype == np.bool_ and key.shape == shape


def node_store(store: Store) -> Store:
    """`store` as handles on a node compare it, so that a handle opened with mode "r" equals
    the one that created the node: a memory or remote store as its read-only view, as their
    equality counts the mode (as zarr-python's does). Local and zip stores are compared by
    their place alone already (as zarr-python's); other stores as they are."""
    if isinstance(store, MemoryStore | RemoteStore) and not store.read_only:
        return store.with_read_only(True)
    return store


def _check_utf8(elements: list[Any]) -> None:
    """Refuses bytes that are not UTF-8 text, naming the first (as the engine's vlen-utf8
    codec refuses them)."""
    for i, element in enumerate(elements):
        try:
            element.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError(
                f"element {i} of the values is not UTF-8 text ({element!r:.40}), which "
                "vlen-utf8 stores (use vlen-bytes for bytes that are not text)"
            ) from None


def _dense_mask_box(mask: npt.NDArray[np.bool_], itemsize: int) -> tuple[slice, ...] | None:
    """The slices of the box the true elements of `mask` span, where reading that box whole
    takes no more memory than the coordinates of those elements (8 bytes for each, in each
    dimension) would; else None."""
    if mask.ndim == 0:
        return None
    count = int(np.count_nonzero(mask))
    if count == 0:
        return None
    box = []
    for axis in range(mask.ndim):
        others = tuple(a for a in range(mask.ndim) if a != axis)
        hit = np.flatnonzero(mask.any(axis=others))
        box.append(slice(int(hit[0]), int(hit[-1]) + 1))
    elements = math.prod(b.stop - b.start for b in box)
    return tuple(box) if elements * itemsize <= count * 8 * mask.ndim else None


class Array:
    """A Zarr array. Reads and writes go to the engine in one call per selection: every chunk
    involved is fetched, decoded and copied in parallel, with the GIL released."""

    def __init__(
        self,
        core: _core.Array,
        store: Store,
        *,
        write_empty_chunks: bool | None = None,
        order: str | None = None,
    ) -> None:
        self._core = core
        self._store = store
        # As zarr-python's: the configured settings when the array is opened, kept after.
        self._write_empty_chunks = (
            bool(config.get("write_empty_chunks"))
            if write_empty_chunks is None
            else write_empty_chunks
        )
        self._config_order = order or str(config.get("order"))
        # Changes to the metadata through this handle, one at a time: each writes the whole
        # document from the handle's copy, so a resize and an attribute write at once would
        # each write back what the other changed; and each append grows the array from the
        # shape the one before left (threads appending at once would otherwise share rows).
        self._metadata_lock = metadata_lock(self)
        self._load(core)

    @classmethod
    def open(cls, store: StoreLike) -> Array:
        """The v3 array at `store`, which must exist (zarr-python's ``Array.open``; for
        either format, :func:`oxzarr.open_array`)."""
        from oxzarr.api import _existing_node_mode, open_array

        return open_array(store, mode=_existing_node_mode(store), zarr_format=3)

    @classmethod
    def create(
        cls, store: StoreLike, *, shape: Any, dtype: Any, zarr_format: int = 3, **kwargs: Any
    ) -> Array:
        """A new array at `store`, with zarr-python's older arguments, as :func:`oxzarr.create`
        takes them (v3 by default, as zarr-python's ``Array.create``, which is deprecated:
        :func:`oxzarr.create_array` is the newer form)."""
        warnings.warn(
            "Array.create() is deprecated: use oxzarr.create_array()",
            DeprecationWarning,
            stacklevel=2,
        )
        from oxzarr.api import create

        return create(shape, store=store, dtype=dtype, zarr_format=zarr_format, **kwargs)

    def _load(self, core: _core.Array) -> None:
        self._core = core
        # Opened through a group's consolidated metadata, its attributes are shared with the
        # other nodes opened from it: a write through one of them is seen here.
        self._shared = core.consolidated_generation is not None
        # The document as a dict is made when first asked for (attributes, metadata,
        # codecs), from the engine's: the description below comes from the engine's typed
        # values, so that a handle for each of a group's many members costs no serialising
        # and parsing of documents nobody reads.
        self._metadata_cache: tuple[_core.Array, int | None, dict[str, JSON]] | None = None
        self._shape = tuple(int(s) for s in core.shape)
        self._chunks = tuple(int(c) for c in core.inner_chunk_shape)
        shards = core.shard_shape
        self._shards = tuple(int(s) for s in shards) if shards is not None else None
        machine, self._vlen = _numpy_dtype(core.numpy_dtype)
        # The engine works in the machine's byte order; a v2 dtype stored in the other order
        # is what zarr-python hands out. Reads and writes go through `_io`, whose elements
        # are of dtype `_native`: the engine's view of the array in its stored byte order
        # where it has one (">i4", ">f8": nothing swapped, either way), else the array
        # itself, whose values are converted to the stored dtype on the way out (records,
        # whose fields may mix orders; values filtered in the machine's order).
        dtype, native, io = machine, machine, core
        if core.zarr_format == 2 and not self._vlen:
            stored = self._metadata_dict["dtype"]
            stored_dtype = np.dtype(v2_dtype(stored))
            # (One equal to the engine's is not taken: `_as_stored` would copy every result
            # to convert it into the same dtype.)
            if stored_dtype.itemsize == machine.itemsize and stored_dtype != machine:
                dtype = stored_dtype
                view = core.in_stored_byte_order
                if view is not None:
                    native, io = stored_dtype, view
        # Each set once, from its final value: a read in another thread while a resize
        # reloads the handle sees the old value or the new one, and both agree with the
        # others (a buffer of the stored dtype never goes to the array in the machine's).
        self._dtype, self._native, self._core_dtype, self._io = dtype, native, machine, io
        # The layout of the arrays reads return: a v2 array's stored order (whatever the
        # config says, as in zarr-python), a v3 array's config.
        self._fortran = self.order == "F"
        # Whether the chunks are stored in F order (a v2 array of order "F" and two or more
        # dimensions): reads and writes of F-order buffers then copy chunks as they are
        # stored, where C-order ones have every chunk transposed.
        self._stored_fortran = bool(core.stores_fortran_order)

    def _handle(self, dtype: np.dtype[Any]) -> _core.Array:
        """The engine's handle that reads and writes elements of `dtype` as they are: one of
        `_native` (`_io`), or of the machine's byte order (the array itself), which values
        computed in numpy are in: the engine's threads then swap them chunk by chunk, where
        numpy would convert them all into a copy first."""
        return self._io if dtype == self._native else self._core

    @property
    def _metadata_dict(self) -> dict[str, JSON]:
        """The array's document, as the engine holds it."""
        return node_document(self)

    def _metadata_view(self) -> tuple[int | None, dict[str, JSON]]:
        """The array's document, and the generation of the attributes shared through
        consolidated metadata it was read at (None: not shared)."""
        return node_document_view(self)

    # --- description ---

    @property
    def shape(self) -> tuple[int, ...]:
        """The length of each dimension; assigning a new shape resizes the array, as in
        zarr-python."""
        return self._shape

    @shape.setter
    def shape(self, value: Any) -> None:
        # As zarr-python: assigning the shape resizes.
        self.resize(value)

    @property
    def dtype(self) -> np.dtype[Any]:
        """The numpy data type of the array's elements."""
        return self._dtype

    @property
    def ndim(self) -> int:
        """The number of dimensions."""
        return len(self._shape)

    @property
    def size(self) -> int:
        """The number of elements: the product of the shape, as a Python int."""
        # Python integers: a shape's product can pass int64, where numpy's would wrap.
        return math.prod(self._shape)

    @property
    def nbytes(self) -> int:
        """Bytes of the array's data, uncompressed."""
        return self.size * self._dtype.itemsize

    @property
    def chunks(self) -> tuple[int, ...]:
        """The shape of a chunk (of an inner chunk, for a sharded array)."""
        return self._chunks

    @property
    def shards(self) -> tuple[int, ...] | None:
        """The shape of a shard, or None for an array without sharding."""
        return self._shards

    @property
    def cdata_shape(self) -> tuple[int, ...]:
        """The number of chunks (inner chunks, if sharded) along each dimension."""
        return tuple(-(-s // c) for s, c in zip(self._shape, self._chunks, strict=True))

    @property
    def nchunks(self) -> int:
        """The number of chunks (inner chunks, if sharded) in the array."""
        return math.prod(self.cdata_shape)

    @property
    def fill_value(self) -> Any:
        """The value of elements never written, as a numpy scalar; None for a v2 array
        without one (``null``: unwritten elements read as the data type's default)."""
        if self.zarr_format == 2 and self._metadata_dict.get("fill_value") is None:
            return None
        raw = self._io.fill_value_bytes
        if self._vlen:
            return raw.decode() if self._dtype != np.dtype(object) else raw
        return np.frombuffer(raw, dtype=self._native)[0].astype(self._dtype)

    @property
    def order(self) -> str:
        """The memory layout of the arrays reads return: a v2 array's stored ``order``; for
        a v3 array (whose chunks are C order, a transpose codec reorders them), its config's,
        as in zarr-python."""
        if self.zarr_format == 2:
            return str(self._metadata_dict.get("order", "C"))
        return self._config_order

    @property
    def config(self) -> ArrayConfig:
        """This array's settings (see :meth:`with_config`)."""
        return ArrayConfig(order=self._config_order, write_empty_chunks=self._write_empty())

    def with_config(self, config: Any) -> Array:
        """The same array with other settings: ``config`` is a dict (its keys change those
        settings, the others stay) or an ``ArrayConfig``, as in zarr-python."""
        settings = {**self.config.to_dict(), **settings_from(config)}
        return Array(
            self._core,
            self._store,
            write_empty_chunks=settings["write_empty_chunks"],
            order=settings["order"],
        )

    @property
    def metadata(self) -> ArrayMetadata | ArrayV2Metadata:
        """The array's metadata with zarr-python's field names: :class:`ArrayMetadata` for
        v3, :class:`ArrayV2Metadata` for v2."""
        if self.zarr_format == 2:
            return ArrayV2Metadata.from_dict(self._metadata_dict)
        return ArrayMetadata.from_dict(self._metadata_dict)

    @property
    def attrs(self) -> Attributes:
        """The user attributes, a mutable mapping; each change is written to the store at once."""
        return Attributes(self)

    @property
    def path(self) -> str:
        """The array's path in its store ('' at its root)."""
        return str(self._core.path)

    @property
    def name(self) -> str:
        """The path with a leading '/', as zarr-python's ``name``."""
        return "/" + self.path

    @property
    def basename(self) -> str:
        """The last part of the path: the array's name in its group."""
        return self.path.rsplit("/", 1)[-1]

    @property
    def store(self) -> Store:
        """The store holding the array."""
        return self._store

    def __eq__(self, other: object) -> bool:
        # Two handles on one node are equal, as zarr-python's are: the same store, path and
        # metadata (a handle that has not seen another's change of the metadata is not),
        # whichever of them was opened read-only.
        if not isinstance(other, Array):
            return NotImplemented
        return (node_store(self._store), self.path, self.metadata) == (
            node_store(other._store),
            other.path,
            other.metadata,
        )

    def __hash__(self) -> int:
        return hash((node_store(self._store), self.path))

    @property
    def read_only(self) -> bool:
        """Whether writes are refused: the array was opened from a read-only store or with
        mode "r"."""
        return self._store.read_only

    def _refuse_writes_if_read_only(self) -> None:
        if self.read_only:
            raise ReadOnlyError(f"{self!r} {self._store._read_only_because()}: cannot write to it")

    @property
    def zarr_format(self) -> int:
        """The Zarr format of the array's metadata, 2 or 3."""
        return int(self._core.zarr_format)

    def _codecs_by_kind(self) -> tuple[tuple[Codec, ...], Codec | None, tuple[Codec, ...]]:
        if self.zarr_format == 2:
            # v2 keeps numcodecs configurations: filters, and one compressor.
            doc = self._metadata_dict
            filters = tuple(NumcodecsConfig(f) for f in doc.get("filters") or ())
            compressor = doc.get("compressor")
            return filters, None, (NumcodecsConfig(compressor),) if compressor else ()
        codecs = list(self._metadata_dict["codecs"])
        if self._shards is not None:
            # As zarr-python: a sharded array's codecs are those of its inner chunks.
            codecs = list(codecs[0]["configuration"]["codecs"])
        names = [c if isinstance(c, str) else c.get("name") for c in codecs]
        split = next((i for i, n in enumerate(names) if n in ARRAY_TO_BYTES), None)
        if split is None:
            split = next((i for i, n in enumerate(names) if n not in ARRAY_TO_ARRAY), len(codecs))
        objs = [codec_from_dict(c) for c in codecs]
        serializer = objs[split] if split < len(objs) else None
        return tuple(objs[:split]), serializer, tuple(objs[split + 1 :])

    @property
    def filters(self) -> tuple[Codec, ...]:
        """The array→array codecs."""
        return self._codecs_by_kind()[0]

    @property
    def serializer(self) -> Codec | None:
        """The array→bytes codec."""
        return self._codecs_by_kind()[1]

    @property
    def compressors(self) -> tuple[Codec, ...]:
        """The bytes→bytes codecs."""
        return self._codecs_by_kind()[2]

    @property
    def compressor(self) -> Codec | None:
        """Deprecated, as in zarr-python: a v2 array's one compressor (None without one); a
        TypeError for v3 arrays. :attr:`compressors` gives them in both formats."""
        warnings.warn(
            "Array.compressor is deprecated: use Array.compressors",
            DeprecationWarning,
            stacklevel=2,
        )
        if self.zarr_format != 2:
            raise TypeError("`compressor` is not available for Zarr format 3 arrays")
        compressors = self._codecs_by_kind()[2]
        return compressors[0] if compressors else None

    @property
    def info(self) -> Summary:
        """A summary of the array, for people."""
        return _summary(self._info_rows(), 19)

    def _info_rows(self) -> list[tuple[str, Any]]:
        filters, serializer, compressors = self._codecs_by_kind()
        return [
            ("Type", "Array"),
            ("Zarr format", self.zarr_format),
            ("Data type", self._dtype),
            ("Fill value", self.fill_value),
            ("Shape", self._shape),
            ("Chunk shape", self._chunks),
            ("Shard shape", self._shards),
            ("Order", self.order),
            ("Read-only", self.read_only),
            ("Store", self._store),
            ("Filters", filters),
            ("Serializer", serializer),
            ("Compressors", compressors),
            ("No. bytes", self.nbytes),
        ]

    def info_complete(self) -> Summary:
        """:attr:`info` and what is stored: bytes, their ratio to the array's, and the
        chunks initialized (which lists the array's stored keys)."""
        stored = self.nbytes_stored()
        ratio = f"{self.nbytes / stored:.1f}" if stored else "n/a"
        rows = [
            ("No. bytes stored", stored),
            ("Storage ratio", ratio),
            ("Chunks Initialized", self.nchunks_initialized),
        ]
        return _summary(self._info_rows() + rows, 19)

    def __repr__(self) -> str:
        where = str(self._store)
        if self.path:
            where = f"{where}/{self.path}"
        return f"<Array {where} shape={self._shape} dtype={self._dtype}>"

    def __len__(self) -> int:
        if not self._shape:
            raise TypeError("len() of unsized object")
        return self._shape[0]

    def __bool__(self) -> bool:
        # Every array is true, as zarr-python's are: without this, Python would ask
        # __len__, and a 0-d array would raise and an empty one be false
        # (``group.get(name) or default``).
        return True

    def __iter__(self) -> Iterator[Any]:
        if not self._shape:
            raise TypeError("iteration over a 0-d array")
        for i in range(self._shape[0]):
            yield self[i]

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> npt.NDArray[Any]:
        if copy is False:
            raise ValueError("reading a Zarr array always makes a copy")
        # A 0-d array's `self[...]` is a numpy scalar (as in zarr-python); numpy wants an array.
        data = np.asarray(self[...])
        return data.astype(dtype, copy=False) if dtype is not None else data

    # --- attributes ---

    def _write_attributes(self, attributes: dict[str, JSON], seen: int | None = None) -> bool:
        """Writes `attributes`; False if they were made from those of generation `seen` of
        the shared ones and another node's write came since (nothing is written)."""
        core = self._core.with_attributes(json.dumps(attributes), seen)
        if core is None:
            return False
        self._load(core)
        return True

    def update_attributes(self, new_attributes: Mapping[str, JSON]) -> Array:
        """Merges `new_attributes` into the attributes (one write); returns the array."""
        self.attrs.update(new_attributes)
        return self

    # --- reading and writing ---

    def _read(self, ix: Indexer, out: Any = None, fields: Fields = None) -> npt.NDArray[Any]:
        """The selection `ix` as a new array, or in `out`; with `fields`, just those fields
        of its records."""
        if _wants_fields(fields):
            key = _field_key(self._dtype, fields)
            return _deliver(_take_fields(self._read(ix), key), out)
        if out is not None:
            return self._into(
                out,
                ix.result_shape,
                lambda core, buffer: core.read(ix.selection, buffer),
                lambda: self._read(ix),
                lambda core, buffer: core.read(ix.selection, buffer, fortran=True),
            )
        if self._vlen:
            return self._in_order(self._read_vlen(ix).reshape(ix.result_shape))
        # Made in the result's shape (the selection's elements in the same order, less or
        # more dimensions of length 1), so that the array returned owns its data, as
        # zarr-python's do; the engine fills it through a flat view.
        if self._stored_fortran:
            # In the order the chunks are stored, which is the order :attr:`order` asks for.
            values = _core.empty_output(ix.result_shape, self._native, fortran=True)
            flat = values.reshape(-1, order="F").view(np.uint8)
            self._io.read(ix.selection, flat, fortran=True)
        else:
            values = _core.empty_output(ix.result_shape, self._native)
            self._io.read(ix.selection, values.reshape(-1).view(np.uint8))
        return self._in_order(self._as_stored(values))

    def _as_stored(self, values: npt.NDArray[Any]) -> npt.NDArray[Any]:
        """`values`, a new array the engine filled in its dtype, in this array's: a v2 dtype
        stored in the other byte order is swapped in place (a copy would double a read's
        peak memory); records with fields of either order are converted field by field."""
        if self._native is self._dtype:
            return values
        if self._dtype.fields is None and self._dtype.newbyteorder() == self._native:
            return values.byteswap(inplace=True).view(self._dtype)
        return values.astype(self._dtype)

    def _in_order(self, values: npt.NDArray[Any]) -> npt.NDArray[Any]:
        """`values` (a new array) in the layout of :attr:`order`. A v2 array stored in F
        order is read into F order already; a v3 array's results, filled in C order, are
        copied when its config asks for "F" (two dimensions or more)."""
        if self._fortran and values.ndim > 1:
            return np.asfortranarray(values)
        return values

    def _into(
        self,
        out: Any,
        shape: tuple[int, ...],
        read: Callable[[_core.Array, npt.NDArray[np.uint8]], None],
        values: Callable[[], npt.NDArray[Any]],
        read_fortran: Callable[[_core.Array, npt.NDArray[np.uint8]], None] | None = None,
    ) -> npt.NDArray[Any]:
        """`out`, checked to have `shape`, filled by `read` (the engine's read, through the
        handle given, into a byte buffer of its elements) when it can take them as they are:
        C-contiguous, of `_native` or the machine's dtype (see `_handle`), not text; or by
        `read_fortran`, if given, when it is F-contiguous and the chunks are stored in F
        order. Otherwise it gets `values()`, cast as numpy assigns."""
        target = _out_array(out, shape)
        fortran = read_fortran is not None and self._stored_fortran and target.flags.f_contiguous
        if (
            not self._vlen
            and target.dtype in (self._native, self._core_dtype)
            and (fortran or target.flags.c_contiguous)
            # Not a subclass that keeps more than the values (a masked array's mask, a
            # matrix's two dimensions): numpy's assignment fills those.
            and type(target) in (np.ndarray, np.memmap)
        ):
            try:
                # Straight into the caller's buffer: no array allocated, nothing copied.
                core = self._handle(target.dtype)
                if fortran and read_fortran is not None:
                    read_fortran(core, target.reshape(-1, order="F").view(np.uint8))
                else:
                    read(core, target.reshape(-1).view(np.uint8))
                return target
            except BufferError:
                # Another thread's read holds this memory (threads filling overlapping views
                # of one output): read apart, and assigned as numpy assigns.
                pass
        return _deliver(values(), target)

    def _write_fields(
        self,
        fields: Fields,
        value: npt.ArrayLike,
        records: Callable[[], npt.NDArray[Any]],
        write: Callable[[npt.NDArray[Any]], None],
    ) -> None:
        """Writes `value` into `fields` of a selection's `records`: reads them, changes those
        fields and `write`s them back. Another writer's change to the same records between
        the read and the write is lost, as with zarr-python's field writes."""
        self._refuse_writes_if_read_only()
        key = _field_key(self._dtype, fields)
        current = records()
        current[key] = value  # as numpy assigns to fields
        write(current)

    def _write(self, ix: Indexer, value: npt.ArrayLike) -> None:
        self._refuse_writes_if_read_only()
        if self._vlen:
            refuse_missing_strings(getattr(value, "dtype", None), repr(self))
            self._refuse_a_sequence_for_one_element(value, ix.result_shape)
            if self._one_value_into_chunks(ix, value):
                # As below: the engine repeats the one string, where a list of as many
                # elements as the selection cost a Python object each.
                elements = self._vlen_values(self._vlen_input(value, ()))
                if self._dtype == np.dtype(object) and self._bytes_stored_as_text():
                    _check_utf8(elements)
                self._core.write_vlen_value(ix.selection, elements[0], self._write_empty())
                return
            self._write_vlen(ix, self._vlen_input(value, ix.result_shape))
            return
        if self._one_value_into_chunks(ix, value):
            # One value into more than a chunk: written as the value itself, which the engine
            # repeats chunk by chunk, not broadcast by numpy into a buffer the size of the
            # selection (an array's worth of memory to write its fill value over it).
            one = self._assigned(value, ())
            self._handle(one.dtype).write_value(ix.selection, one.tobytes(), self._write_empty())
            return
        if _fortran_ordered(value):
            # F-order values (numpy's layout of a transpose, say) are written as they are laid
            # out, without a copy into C order: straight into F-order chunks, and taken from
            # where they lie, chunk by chunk on the engine's threads, into C-order ones.
            data = self._assigned(value, ix.result_shape, order="F")
            core = self._handle(data.dtype)
            _from_buffer(
                lambda flat: core.write(ix.selection, flat, self._write_empty(), fortran=True),
                data.reshape(-1, order="F").view(np.uint8),
            )
            return
        data = self._assigned(value, ix.result_shape).reshape(ix.core_shape)
        core = self._handle(data.dtype)
        _from_buffer(
            lambda flat: core.write(ix.selection, flat, self._write_empty()),
            data.reshape(-1).view(np.uint8),
        )

    def _one_value_into_chunks(self, ix: Indexer, value: Any) -> bool:
        """Whether `value` is one element written over more than a chunk."""
        return (
            math.prod(ix.core_shape) > math.prod(self._chunks)
            # (np.ndim would convert a list, to be converted again below.)
            and not isinstance(value, list | tuple)
            and np.ndim(value) == 0
        )

    def _whole(self, value: npt.ArrayLike) -> npt.NDArray[Any]:
        """`value` as a write of the whole array takes it (broadcast, cast, checked), ready to
        be written without another copy; refused as that write would refuse it."""
        if self._vlen:
            refuse_missing_strings(getattr(value, "dtype", None), repr(self))
            self._refuse_a_sequence_for_one_element(value, self._shape)
            if isinstance(value, np.ndarray) and value.dtype == self._dtype:
                # Not copied: see _vlen_input.
                values = _broadcast(np.asarray(value), self._shape)
            else:
                values = _broadcast(np.asarray(value, dtype=self._dtype), self._shape)
            if self._dtype == np.dtype(object):
                self._vlen_values(values)  # what a bytes array refuses (text, numbers)
            return values
        return self._assigned(value, self._shape)

    def _refuse_a_sequence_for_one_element(self, value: Any, shape: tuple[int, ...]) -> None:
        """A selection of one element (`shape` ``()``) takes no sequence, not even of one
        element, as numpy's ``a[()] = [9]`` and zarr-python refuse it: the leading length-1
        dimensions dropped from values (a (1, 5) row into a (5,) selection) are dropped only
        where some dimensions are left. An array of one record into a record still fills it,
        as in numpy and zarr-python."""
        if shape or self._native.names is not None or np.ndim(value) == 0:
            return
        raise ValueError(
            f"setting an array element with a sequence: a selection of one element of {self!r} "
            f"takes one value, not one of shape {np.shape(value)}"
        )

    def _assigned(
        self, value: npt.ArrayLike, shape: tuple[int, ...], order: Literal["C", "F"] = "C"
    ) -> npt.NDArray[Any]:
        """`value` as numpy assigns it to an array of this array's dtype and `shape`
        (contiguous in `order`): arrays cast as they are (float to int truncates), Python
        values that do not fit (300 into int8, NaN into an integer type) refused, datetimes
        of a unit into a unitless type refused, values broadcast or refused naming both
        shapes. Its dtype is `_native`, or the machine's one of an array given in it (see
        `_handle`)."""
        self._refuse_a_sequence_for_one_element(value, shape)
        if isinstance(value, np.ndarray) and value.dtype in (self._native, self._core_dtype):
            if type(value) not in (np.ndarray, np.memmap):
                # A subclass reshapes its own way (a matrix stays 2-d, so a (1, n) one would
                # not broadcast into (n,)): its values as a plain array, as numpy assigns them.
                value = np.asarray(value)
            # Nothing to cast: no copy when it is already laid out as the write needs (not
            # ascontiguousarray, which makes a 0-d value 1-d: one of shape (1,) for `()`).
            return np.require(_broadcast(value, shape), requirements=order)
        data = np.empty(shape, dtype=self._native, order=order)
        try:
            data[...] = value
        except ValueError:
            # numpy's assignment drops the leading length-1 dimensions of an array, not of a
            # nested list: [[1, 2]] into two points is written as np.array([[1, 2]]) is
            # (zarr-python's assignment takes it). Cast as Python values: 300 into int8 fails.
            if not isinstance(value, list | tuple):
                raise
            values = np.array(value, dtype=self._native)
            if values.ndim <= len(shape):
                raise
            data[...] = _broadcast(values, shape)
        return data

    def __getitem__(self, key: Any) -> npt.NDArray[Any]:
        # Ints and slices (a point, a chunk) go straight to the engine, which makes the
        # output: in a loop of small reads, microseconds of indexing count. Anything else
        # (None back) takes the general indexer.
        out = self._read_simple(key)
        if out is not None:
            # As zarr-python: one element is a 0-d array for Python ints, a numpy scalar for
            # numpy integers.
            return out if out.ndim or plain_integers(key) else out[()]
        fields, key = pop_fields(key)
        ix = simple_indexer(key, self._shape)
        if ix is None:
            # As zarr-python: a full-shape mask, or integer arrays for several dimensions,
            # select points (numpy's advanced indexing gives the same).
            kind = vectorized_kind(key, self._shape)
            if kind == "mask":
                return self.get_mask_selection(key, fields=fields)
            if kind == "coordinate":
                return self.get_coordinate_selection(key, fields=fields)
            if kind == "orthogonal":
                return self.get_orthogonal_selection(key, fields=fields)
            ix = indexer(key, self._shape)
        values = self._read(ix, fields=fields)
        if values.ndim == 0 and (fields is not None or not plain_integers(key)):
            return values[()]
        return values

    def _read_simple(self, key: Any) -> npt.NDArray[Any] | None:
        """`key` read by the engine alone when it is ints and slices (numpy's result: a
        dimension per slice, none per int); `None` for any other key."""
        out = self._io.read_simple(key, self._native)
        if out is None:
            return out
        out = self._as_stored(out)
        # `_in_order`, inline: this is the path of loops of point reads.
        if self._fortran and out.ndim > 1:
            return np.asfortranarray(out)
        return out

    def __setitem__(self, key: Any, value: npt.ArrayLike) -> None:
        fields, key = pop_fields(key)
        # One int or slice per dimension (a loop writing chunk by chunk) skips the checks
        # for point selections and the general indexer.
        ix = simple_indexer(key, self._shape)
        if ix is None:
            kind = vectorized_kind(key, self._shape)
            if kind == "mask":
                self.set_mask_selection(key, value, fields=fields)
                return
            if kind == "coordinate":
                self.set_coordinate_selection(key, value, fields=fields)
                return
            if kind == "orthogonal":
                self.set_orthogonal_selection(key, value, fields=fields)
                return
            ix = indexer(key, self._shape)
        self._set(ix, value, fields)

    # The selection methods take zarr-python's keywords. `out` is an array of the
    # selection's shape (numpy's, or zarr-python's NDBuffer) to read into: of the array's
    # dtype in the machine's byte order (or the stored one, of a v2 array stored in the
    # other one and not filtered by value) and C-contiguous, the engine decodes straight
    # into it.
    # `fields` names fields of a record dtype. `prototype` (zarr-python's choice of buffer
    # class) changes nothing: results are numpy arrays.

    def get_basic_selection(
        self,
        selection: Any = Ellipsis,
        *,
        out: Any = None,
        prototype: Any = None,
        fields: Fields = None,
    ) -> npt.NDArray[Any]:
        """Reads integers, slices (any step), Ellipsis and newaxis; a selection of one
        element is a numpy scalar."""
        _check_basic(selection)
        values = None
        if out is None and fields is None:
            values = self._read_simple(selection)
        if values is None:
            ix = simple_indexer(selection, self._shape) or indexer(selection, self._shape)
            values = self._read(ix, out, fields)
        return values if values.ndim else values[()]

    def set_basic_selection(
        self, selection: Any, value: npt.ArrayLike, *, fields: Fields = None, prototype: Any = None
    ) -> None:
        """Writes `value` at integers, slices (any step) and Ellipsis, broadcast as numpy
        assigns it."""
        _check_basic(selection)
        self._set(indexer(selection, self._shape), value, fields)

    def get_orthogonal_selection(
        self,
        selection: Any,
        *,
        out: Any = None,
        fields: Fields = None,
        prototype: Any = None,
    ) -> npt.NDArray[Any]:
        """Reads with one index per dimension, each applied on its own (integers, slices,
        integer arrays, boolean masks)."""
        if out is None and fields is None:
            values = self._read_simple(selection)
            if values is not None:
                return values
        return self._read(indexer(selection, self._shape, orthogonal=True), out, fields)

    def set_orthogonal_selection(
        self, selection: Any, value: npt.ArrayLike, *, fields: Fields = None, prototype: Any = None
    ) -> None:
        """Writes `value` with one index per dimension, each applied on its own (integers,
        slices, integer arrays, boolean masks)."""
        self._set(indexer(selection, self._shape, orthogonal=True), value, fields)

    def _set(self, ix: Indexer, value: npt.ArrayLike, fields: Fields) -> None:
        if _wants_fields(fields):
            self._write_fields(
                fields, value, lambda: self._read(ix), lambda records: self._write(ix, records)
            )
        else:
            self._write(ix, value)

    @property
    def oindex(self) -> _OrthogonalIndex:
        """Orthogonal indexing: ``a.oindex[[0, 2], :, mask]``."""
        return _OrthogonalIndex(self)

    @property
    def vindex(self) -> _VectorizedIndex:
        """Coordinate (point) indexing, ``a.vindex[[0, 2], [1, 3]]``, and boolean masks of
        the array's shape, ``a.vindex[a[...] > 0]``."""
        return _VectorizedIndex(self)

    @property
    def blocks(self) -> _BlockIndex:
        """Indexing by chunk: ``a.blocks[1, 0]`` is the second chunk along the first axis."""
        return _BlockIndex(self)

    # --- coordinate, mask and block selections ---

    def _coordinates(self, selection: Any) -> tuple[list[npt.NDArray[np.uint64]], tuple[int, ...]]:
        """The points of a coordinate selection (one integer array per dimension, broadcast
        together), bounds-checked, and the shape of the result."""
        if not isinstance(selection, tuple):
            selection = (selection,)
        if len(selection) != self.ndim:
            raise IndexError(
                f"a coordinate selection needs {self.ndim} index arrays, not {len(selection)}"
            )
        arrays = [np.asarray(s) for s in selection]
        for s, a in zip(selection, arrays, strict=True):
            if not integer_indices(s, a):
                raise IndexError(
                    f"coordinate selections take integer arrays, not {a.dtype} arrays (use a "
                    "boolean mask of the array's shape for a mask selection)"
                )
        # Bounds first, each array as given, as zarr-python checks them: an index past its
        # axis is an IndexError (BoundsCheckError) even among arrays that do not broadcast.
        checked = [
            in_bounds(a.reshape(-1), n, axis).reshape(a.shape)
            for axis, (a, n) in enumerate(zip(arrays, self._shape, strict=True))
        ]
        try:
            broadcast = np.broadcast_arrays(*checked)
        except ValueError as e:
            # A ValueError, as zarr-python raises (numpy raises an IndexError).
            raise ValueError(f"the index arrays do not broadcast together: {e}") from None
        shape = broadcast[0].shape if broadcast else ()
        # Contiguous for the engine: a broadcast array repeats its elements by a stride of 0.
        coords = [np.ascontiguousarray(b).reshape(-1) for b in broadcast]
        return coords, tuple(shape)

    def get_coordinate_selection(
        self,
        selection: Any,
        *,
        out: Any = None,
        fields: Fields = None,
        prototype: Any = None,
    ) -> npt.NDArray[Any]:
        """Reads points: ``selection`` holds one integer array per dimension (numpy's
        fancy indexing, zarr-python's ``vindex``)."""
        if _wants_fields(fields):
            key = _field_key(self._dtype, fields)
            return _deliver(_take_fields(self.get_coordinate_selection(selection), key), out)
        coords, shape = self._coordinates(selection)
        # As zarr-python: a coordinate selection of scalars is one point, not a 0-d array.
        shape = shape or (1,)
        if out is not None:
            return self._into(
                out,
                shape,
                lambda core, buffer: core.read_points(coords, buffer),
                lambda: self.get_coordinate_selection(selection),
            )
        if self._vlen:
            values = self._core.read_points_vlen(coords)
            points = np.empty(len(values), dtype=self._dtype)
            points[:] = values
            return points.reshape(shape)
        # In the result's shape, so that the array returned owns its data (see `_read`).
        points = _core.empty_output(shape, self._native)
        self._io.read_points(coords, points.reshape(-1).view(np.uint8))
        return self._as_stored(points)

    def set_coordinate_selection(
        self, selection: Any, value: npt.ArrayLike, *, fields: Fields = None, prototype: Any = None
    ) -> None:
        """Writes points (the last value wins for a point given twice, as in numpy)."""
        if _wants_fields(fields):
            self._write_fields(
                fields,
                value,
                lambda: self.get_coordinate_selection(selection),
                lambda records: self.set_coordinate_selection(selection, records),
            )
            return
        self._refuse_writes_if_read_only()
        coords, shape = self._coordinates(selection)
        # One point of scalars takes what reading it gives (shape (1,)), or a scalar.
        shape = shape or (1,)
        if self._vlen:
            refuse_missing_strings(getattr(value, "dtype", None), repr(self))
            values = _broadcast(np.asarray(value, dtype=self._native), shape).reshape(-1)
            self._core.write_points_vlen(coords, self._vlen_values(values), self._write_empty())
            return
        data = self._assigned(value, shape).reshape(-1)
        core = self._handle(data.dtype)
        _from_buffer(
            lambda flat: core.write_points(coords, flat, self._write_empty()),
            data.view(np.uint8),
        )

    def get_mask_selection(
        self,
        mask: Any,
        *,
        out: Any = None,
        fields: Fields = None,
        prototype: Any = None,
    ) -> npt.NDArray[Any]:
        """Reads the elements where ``mask`` (a boolean array of the array's shape) is true,
        in C order."""
        if out is None and not _wants_fields(fields):
            checked = self._checked_mask(mask)
            box = _dense_mask_box(checked, self._dtype.itemsize)
            if box is not None:
                # The region the true elements span, read whole and masked by numpy: no
                # larger than their coordinates would be, and read as one region rather
                # than element by element (4x faster for a mask half true).
                return np.asarray(self.get_basic_selection(box))[checked[box]]
            return self.get_coordinate_selection(tuple(np.nonzero(checked)))
        return self.get_coordinate_selection(self._mask_points(mask), out=out, fields=fields)

    def set_mask_selection(
        self, mask: Any, value: npt.ArrayLike, *, fields: Fields = None, prototype: Any = None
    ) -> None:
        """Writes `value` where ``mask`` (a boolean array of the array's shape) is true, in C
        order."""
        self.set_coordinate_selection(self._mask_points(mask), value, fields=fields)

    def _mask_points(self, mask: Any) -> tuple[npt.NDArray[Any], ...]:
        return tuple(np.nonzero(self._checked_mask(mask)))

    def _checked_mask(self, mask: Any) -> npt.NDArray[np.bool_]:
        """`mask` as a boolean array of the array's shape; anything else is refused."""
        if isinstance(mask, tuple) and len(mask) == 1:
            mask = mask[0]
        # A tuple of several arrays (one mask per dimension, as oindex takes) is no mask of
        # the array, even where numpy could stack the arrays into one of its shape.
        if isinstance(mask, tuple):
            raise IndexError(
                f"a mask selection takes one boolean array of shape {self._shape}, "
                f"not a tuple of {len(mask)}: a.oindex[...] takes one mask per dimension"
            )
        checked: npt.NDArray[Any] = np.asarray(mask)
        if checked.dtype != np.bool_ or checked.shape != self._shape:
            raise IndexError(
                f"a mask selection takes a boolean array of shape {self._shape}, "
                f"not {checked.dtype} of shape {checked.shape}"
            )
        return checked

    def _block_key(self, selection: Any) -> tuple[slice, ...]:
        """The array slices that a selection of whole chunks covers: chunks of the grid,
        which for a sharded array are its shards (as in zarr-python)."""
        if not isinstance(selection, tuple):
            selection = (selection,)
        if sum(s is Ellipsis for s in selection) > 1:
            raise IndexError("a block selection can only have a single ellipsis ('...')")
        if any(s is Ellipsis for s in selection):
            at = next(i for i, s in enumerate(selection) if s is Ellipsis)
            fill = (slice(None),) * (self.ndim - len(selection) + 1)
            selection = selection[:at] + fill + selection[at + 1 :]
        if len(selection) > self.ndim:
            raise IndexError(f"too many indices for {self.ndim}-dimensional blocks")
        selection = selection + (slice(None),) * (self.ndim - len(selection))
        grid = self._shards or self._chunks
        key = []
        for axis, (s, n, c) in enumerate(zip(selection, self._shape, grid, strict=True)):
            nblocks = -(-n // c)
            if is_integer(s):
                b = int(s) + nblocks if s < 0 else int(s)
                if not 0 <= b < nblocks:
                    raise BoundsCheckError(
                        f"block {s} is out of bounds for axis {axis} with {nblocks} blocks"
                    )
                key.append(slice(b * c, min((b + 1) * c, n)))
            elif isinstance(s, slice):
                # Before s.indices, which refuses a step of 0 with a ValueError.
                if s.step not in (None, 1):
                    raise IndexError("block selections take slices with step 1")
                start, stop, _ = s.indices(nblocks)
                # As zarr-python: a start past the grid (or before it) names no block and
                # is an error, where the stop, as in any slice, is clamped.
                if s.start is not None:
                    first = int(s.start) + nblocks if s.start < 0 else int(s.start)
                    if not 0 <= first < nblocks:
                        raise BoundsCheckError(
                            f"block {s.start} is out of bounds for axis {axis} "
                            f"with {nblocks} blocks"
                        )
                key.append(slice(start * c, min(stop * c, n)) if stop > start else slice(0, 0))
            else:
                raise IndexError(f"block selections take integers and slices, not {s!r}")
        return tuple(key)

    def get_block_selection(
        self,
        selection: Any,
        *,
        out: Any = None,
        fields: Fields = None,
        prototype: Any = None,
    ) -> npt.NDArray[Any]:
        """Reads whole chunks: ``selection`` indexes the chunk grid. Always an array (a 0-d
        one for a 0-d array, as in zarr-python)."""
        return self._read(indexer(self._block_key(selection), self._shape), out, fields)

    def set_block_selection(
        self, selection: Any, value: npt.ArrayLike, *, fields: Fields = None, prototype: Any = None
    ) -> None:
        """Writes whole chunks (shards, for a sharded array): ``selection`` indexes the chunk
        grid."""
        self._set(indexer(self._block_key(selection), self._shape), value, fields)

    # --- shape changes and storage ---

    def resize(self, *shape: Any, new_shape: Any = None) -> None:
        """Changes the shape (``a.resize((5, 6))``, ``a.resize(5, 6)`` or
        ``a.resize(new_shape=(5, 6))``). Chunks wholly outside the new shape are deleted, and
        growing shows the fill value there; chunks cut in part keep their values, which
        growing again shows (as in zarr-python)."""
        if new_shape is not None:
            if shape:
                raise TypeError("resize() takes the shape once: positionally or as new_shape")
            shape = (new_shape,)
        if len(shape) == 1 and not isinstance(shape[0], int | np.integer):
            shape = tuple(shape[0])
        new_shape = list(integers(shape, "shape"))
        if any(s < 0 for s in new_shape):
            raise ValueError(f"shape cannot be negative: {tuple(new_shape)}")
        if any(s >= 2**64 for s in new_shape):
            # As create_array refuses it: shapes are stored as 64-bit sizes.
            raise ValueError(f"cannot resize {self!r} to {tuple(new_shape)}: sizes past 2**64 - 1")
        if self.read_only:
            raise ReadOnlyError(f"{self!r} {self._store._read_only_because()}: cannot resize it")
        with self._metadata_lock:
            self._load(self._core.resize(new_shape))

    def append(self, data: npt.ArrayLike, axis: int = 0) -> tuple[int, ...]:
        """Appends `data` along `axis`, growing the array; returns the new shape."""
        values = np.asarray(data)
        if values.ndim != self.ndim:
            raise ValueError(
                f"cannot append {values.ndim}-dimensional data to a {self.ndim}-d array"
            )
        if not -self.ndim <= axis < self.ndim:
            # numpy's error for np.concatenate along an axis the arrays do not have.
            raise np.exceptions.AxisError(axis, self.ndim)
        axis %= self.ndim
        with self._metadata_lock:
            for d in range(self.ndim):
                if d != axis and values.shape[d] != self._shape[d]:
                    raise ValueError(
                        f"cannot append data of shape {values.shape} along axis {axis} of an "
                        f"array of shape {self._shape}"
                    )
            old = self._shape[axis]
            new_shape = list(self._shape)
            new_shape[axis] += values.shape[axis]
            self.resize(new_shape)
            end = old + values.shape[axis]
            key = tuple(slice(old, end) if d == axis else slice(None) for d in range(self.ndim))
            self[key] = values
            return tuple(new_shape)

    @property
    def nchunks_initialized(self) -> int:
        """How many chunks are stored: inner chunks, for sharded arrays (as ``nchunks``
        counts them)."""
        return int(self._core.nchunks_initialized())

    def nbytes_stored(self) -> int:
        """Bytes stored for the array: its chunks and metadata documents (a method, as in
        zarr-python)."""
        return int(self._core.nbytes_stored())

    def _vlen_slabs(self, ix: Indexer, *, writing: bool) -> list[Slab]:
        """The selection of `ix` in slabs for the engine, and where each lies in an array of
        the core shape. The engine takes and gives variable-length elements as Python
        objects, and copies them all: a selection of millions of strings taken in one call
        held them all at once, twice (writing 2M strings of 46 characters took 559 MiB, 30
        times zarr-python's). Slabs are made of whole chunks, or whole shards for a write
        (which rewrites every shard it touches), and of two or more of them per thread, so
        that each call keeps every thread busy."""
        block = (self._shards if writing else None) or self._chunks
        return slabs(ix.selection, block, _VLEN_SLAB_ELEMENTS, 2 * _core.threads())

    def _read_vlen(self, ix: Indexer) -> npt.NDArray[Any]:
        """A variable-length selection as a new array of the core shape, read slab by slab
        into it."""
        try:
            values = np.empty(ix.core_shape, dtype=self._dtype)
        except (MemoryError, ValueError):
            # Too many elements for memory: the engine refuses the whole selection naming
            # it (a MemoryError), before it reads anything.
            texts = self._core.read_vlen(ix.selection)
            values = np.empty(len(texts), dtype=self._dtype)
            values[:] = texts
            return values.reshape(ix.core_shape)
        for selection, where in self._vlen_slabs(ix, writing=False):
            texts = self._core.read_vlen(selection)
            part = values[where]
            if part.flags.c_contiguous:
                part.reshape(-1)[:] = texts  # a view: straight into the result
            else:
                flat = np.empty(len(texts), dtype=self._dtype)
                flat[:] = texts
                part[...] = flat.reshape(part.shape)
        return values

    def _vlen_input(self, value: Any, shape: tuple[int, ...]) -> npt.NDArray[Any]:
        """`value` broadcast to `shape` for a write into a variable-length array: of its
        dtype, or, for an object array written into a string array, still objects, which
        :meth:`_vlen_values` converts a slab at a time (a copy of them all as numpy strings
        cost as much memory again as the text)."""
        if isinstance(value, np.ndarray) and (
            value.dtype == self._dtype or value.dtype == np.dtype(object)
        ):
            # As they are: np.asarray(value, dtype=StringDType()) copies every string of an
            # array whose StringDType is another instance (each has its own arena).
            return _broadcast(np.asarray(value), shape)
        return _broadcast(np.asarray(value, dtype=self._dtype), shape)

    def _write_vlen(self, ix: Indexer, values: npt.NDArray[Any]) -> None:
        """Writes `values` (of the selection's result shape) slab by slab."""
        core_values = values.reshape(ix.core_shape)  # a view: only dimensions of 1 differ
        pieces = self._vlen_slabs(ix, writing=True)
        text_as_bytes = self._dtype == np.dtype(object) and self._bytes_stored_as_text()
        if core_values.dtype == np.dtype(object) and (len(pieces) > 1 or text_as_bytes):
            # Every slab's values are checked before the first is written, so that one refused
            # (text in a bytes array, bytes that are not UTF-8 text) leaves the array as it
            # was. (The engine refuses bytes that are not text as it encodes each chunk, after
            # others were stored.)
            for _, where in pieces:
                elements = self._vlen_values(core_values[where])
                if text_as_bytes:
                    _check_utf8(elements)
        for selection, where in pieces:
            elements = self._vlen_values(core_values[where])
            self._core.write_vlen(selection, elements, self._write_empty())

    def _bytes_stored_as_text(self) -> bool:
        """Whether the codec chain stores elements with vlen-utf8 (a bytes array zarrs may
        write so), which takes only UTF-8 text."""
        return '"vlen-utf8"' in json.dumps(self._metadata_dict.get("codecs"))

    def _vlen_values(self, values: npt.NDArray[Any]) -> list[str] | list[bytes]:
        """The elements of `values` as the engine takes a string or bytes array's values."""
        if self._dtype != np.dtype(object) and values.dtype == np.dtype(object):
            # Objects written into a string array: those already text as they are (no copy
            # of the text), any other as numpy converts it to a string.
            elements = values.reshape(-1).tolist()
            if set(map(type, elements)) <= {str}:
                return elements
            values = np.asarray(values, dtype=self._dtype)
        if self._dtype == np.dtype(object):
            elements = values.reshape(-1).tolist()
            # By the set of element types, not element by element: the common case of bytes
            # alone then costs one pass in C.
            kinds = set(map(type, elements))
            if kinds <= {bytes}:
                return elements
            # bytes(85) would be 85 zero bytes: only bytes-like elements are bytes here.
            for v in elements:
                if not isinstance(v, bytes | bytearray | memoryview):
                    raise TypeError(
                        f"a variable-length bytes array takes bytes, not {type(v).__name__} "
                        f"({v!r:.40})"
                    )
            return [bytes(v) for v in elements]
        # numpy's strings come out of tolist() as Python's str.
        texts: list[str] = values.reshape(-1).tolist()
        return texts

    def _write_empty(self) -> bool:
        return self._write_empty_chunks

    # --- pickling: by store, path and metadata, never by data ---

    def __reduce__(self) -> tuple[Any, ...]:
        # With its metadata, as zarr-python pickles an array: the copy is the array this
        # handle holds (its format, shape), not what another writer has since left at the
        # path. A dask graph built from the handle computes the shape it planned for.
        return (
            _reopen,
            (
                self._store,
                self.path,
                self._write_empty_chunks,
                self._config_order,
                self._core.metadata_json(),
            ),
        )


def _reopen(
    store: Store,
    path: str,
    write_empty_chunks: bool | None,
    order: str = "C",
    metadata_json: str | None = None,
) -> Array:
    core = (
        _core.Array.open(store._core, path)
        if metadata_json is None
        else _core.Array.from_metadata(store._core, path, metadata_json)
    )
    return Array(core, store, write_empty_chunks=write_empty_chunks, order=order)
