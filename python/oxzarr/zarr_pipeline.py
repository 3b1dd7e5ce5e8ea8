"""oxzarr as zarr-python's codec pipeline.

``zarr.config.set({"codec_pipeline.path": "oxzarr.ZarrCodecPipeline"})`` makes zarr-python
3.1.x fetch chunks through its own stores and hand them to oxzarr's engine: one call per batch
decodes (or merges and encodes) every chunk in parallel with the GIL released, straight into the
output array. zarr-python still plans the selection and does the store I/O, so everything it
supports about stores, indexing and metadata keeps working.

A codec chain or data type the engine does not handle (shards of variable-length strings, a
numcodecs codec without a Rust implementation, a codec class of the user's own even for a name
the engine implements, a GPU buffer) goes through zarr-python's own
``BatchedCodecPipeline``; every such fallback is counted in :func:`fallbacks`, so tests can show
that supported chains never take it.

This module imports zarr; ``import oxzarr`` does not import it (``oxzarr.ZarrCodecPipeline``
loads it on first use).
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import json
import logging
import os
import sys
from collections import Counter, OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy as np
from zarr.abc.codec import Codec, CodecPipeline
from zarr.abc.store import SuffixByteRequest
from zarr.codecs import ShardingCodec
from zarr.codecs._v2 import V2Codec
from zarr.core.buffer import cpu
from zarr.core.codec_pipeline import BatchedCodecPipeline
from zarr.core.common import concurrent_map
from zarr.core.config import config as zarr_config
from zarr.storage import LocalStore, StorePath

from oxzarr import _core
from oxzarr._dtypes import _native
from oxzarr._locks import fork_safe_lock
from oxzarr.array import _from_buffer

if TYPE_CHECKING:
    from typing import Self

    from zarr.abc.store import ByteGetter, ByteSetter
    from zarr.core.array_spec import ArraySpec
    from zarr.core.buffer import Buffer, NDArrayLike, NDBuffer
    from zarr.core.chunk_grids import ChunkGrid
    from zarr.core.dtype.wrapper import TBaseDType, TBaseScalar, ZDType
    from zarr.core.indexing import SelectorTuple

    ReadItem = tuple[ByteGetter, ArraySpec, SelectorTuple, SelectorTuple, bool]
    WriteItem = tuple[ByteSetter, ArraySpec, SelectorTuple, SelectorTuple, bool]

__all__ = ["ZarrCodecPipeline", "engine_calls", "fallbacks", "reset_counts"]

# Why zarr-python's own pipeline ran instead of the engine, and how many times (one count per
# read, write, decode or encode call, or part of one, that fell back); and how many of those
# calls the engine ran, by kind.
_fallbacks: Counter[str] = Counter()
_engine_calls: Counter[str] = Counter()
# Made afresh in a forked child, as the pipelines' own (see oxzarr._locks).
_counts_lock = fork_safe_lock(sys.modules[__name__], "_counts_lock")

_log = logging.getLogger(__name__)

# Chunks per engine call: bounds the stored bytes held at once on a very large selection,
# while keeping every call big enough to spread over the cores.
_BATCH_CHUNKS = 1024

# A chunk's region for the engine: per dimension (start, step, len, start in the other array).
_Dims = list[tuple[int, int, int, int]]


def fallbacks() -> dict[str, int]:
    """How many times each reason sent work to zarr-python's own pipeline."""
    with _counts_lock:
        return dict(_fallbacks)


def engine_calls() -> dict[str, int]:
    """How many reads, writes, decodes and encodes the engine ran."""
    with _counts_lock:
        return dict(_engine_calls)


def reset_counts() -> None:
    """Forgets the fallbacks and engine calls counted so far."""
    with _counts_lock:
        _fallbacks.clear()
        _engine_calls.clear()


def _count_fallback(reason: str) -> None:
    _log.info("zarr-python's pipeline runs this: %s", reason)
    with _counts_lock:
        _fallbacks[reason] += 1


def _count_engine(kind: str) -> None:
    with _counts_lock:
        _engine_calls[kind] += 1


class _Unsupported(Exception):
    """The engine does not handle this codec chain, data type or buffer."""


@functools.cache
def _shipped_codec_classes() -> frozenset[type]:
    """The classes zarr-python ships for the codec names it knows: its default ``codecs``
    configuration (which also names the numcodecs wrappers, ``numcodecs.zlib`` and the like)."""
    classes = set()
    for qualname in zarr_config.defaults[0]["codecs"].values():
        module, _, name = qualname.rpartition(".")
        try:
            classes.add(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            continue  # not there in this zarr-python: no array can be made of it
    return frozenset(classes)


def _is_shipped_numcodec(codec: object) -> bool:
    """Whether a numcodecs codec object is of a class numcodecs ships (a user may register a
    class of their own for an id numcodecs knows: numcodecs.registry.codec_registry)."""
    return type(codec).__module__.partition(".")[0] == "numcodecs"


def _describe(codec: object, name: object) -> str:
    cls = type(codec)
    return f"{name!r} is a codec of the user's own ({cls.__module__}.{cls.__qualname__})"


def _users_own_codec(codecs: Iterable[Codec]) -> str | None:
    """Why the engine must not run these codecs, when one of them (or one nested in a shard's
    codecs or index codecs, or in a v2 chain) is of a class of the user's own registered for
    a name the engine also implements: zarr-python runs the user's class for that name, so
    its pipeline must run here too. None when each is the class zarr-python (or numcodecs)
    ships for its name."""
    for codec in codecs:
        if isinstance(codec, V2Codec):
            for numcodec in [*(codec.filters or ()), codec.compressor]:
                if numcodec is not None and not _is_shipped_numcodec(numcodec):
                    return _describe(numcodec, getattr(numcodec, "codec_id", None))
            continue
        if type(codec) not in _shipped_codec_classes():
            return _describe(codec, codec.to_dict().get("name"))
        if isinstance(codec, ShardingCodec):
            nested = _users_own_codec([*codec.codecs, *codec.index_codecs])
            if nested is not None:
                return nested
        # zarr-python's numcodecs wrappers (numcodecs.zlib, ...) run whichever numcodecs
        # class is registered for their id.
        try:
            wrapped = getattr(codec, "_codec", None)
        except (ValueError, ImportError):
            wrapped = None  # numcodecs cannot make it: the engine's is the only one to run
        if wrapped is not None and not _is_shipped_numcodec(wrapped):
            return _describe(wrapped, codec.to_dict().get("name"))
    return None


def _chunk_document(codecs: Sequence[Codec], spec: ArraySpec) -> str:
    """The metadata of an array made of one chunk of `spec`: what the engine builds its codec
    chain from."""
    own = _users_own_codec(codecs)
    if own is not None:
        raise _Unsupported(own)
    shape = [int(n) for n in spec.shape]
    if len(codecs) == 1 and isinstance(codecs[0], V2Codec):
        v2 = codecs[0]
        dtype_json: Any = spec.dtype.to_json(zarr_format=2)
        compressor = v2.compressor
        # Without a fill value zarr-python takes the data type's default scalar, which is not
        # always zeros (a record's bytes field is b"0"): the engine is given that same value,
        # so that it drops and fills chunks as zarr-python reads them.
        fill = spec.dtype.default_scalar() if spec.fill_value is None else spec.fill_value
        v2_doc = {
            "zarr_format": 2,
            "shape": shape,
            "chunks": shape,
            "dtype": dtype_json["name"],
            "compressor": None if compressor is None else compressor.get_config(),
            "filters": None if not v2.filters else [f.get_config() for f in v2.filters],
            "fill_value": spec.dtype.to_json_scalar(fill, zarr_format=2),
            "order": spec.order,
        }
        return json.dumps(v2_doc)
    if any(isinstance(c, V2Codec) for c in codecs):
        raise _Unsupported("V2Codec in a v3 codec chain")
    v3_doc = {
        "zarr_format": 3,
        "node_type": "array",
        "shape": shape,
        "data_type": spec.dtype.to_json(zarr_format=3),
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": shape}},
        "chunk_key_encoding": {"name": "default"},
        "fill_value": spec.dtype.to_json_scalar(spec.fill_value, zarr_format=3),
        "codecs": [c.to_dict() for c in codecs],
    }
    return json.dumps(v3_doc)


class _Engine:
    """The engine's codec chain for one chunk spec, and the numpy dtype its chunks decode to."""

    def __init__(
        self,
        codec: _core.ChunkCodec,
        spec: ArraySpec,
        whole: _Engine | None = None,
        *,
        sharded: bool = False,
    ) -> None:
        self.codec = codec
        # Its chunks are shards, which a write that is no region (index arrays, masks) hands
        # to `encode_written` to keep the inner chunks zarr-python keeps.
        self.sharded = sharded
        # For shards written whole with write_empty_chunks=True: an engine whose shards keep
        # their inner chunks of the fill value, as zarr-python's do when every inner chunk
        # is written. (Writes of regions, index arrays and masks keep those they touch, and
        # those stored before, with either engine; a shard encoded whole from an array keeps
        # none with this one.)
        self.whole = whole
        self.shape: tuple[int, ...] = tuple(int(n) for n in spec.shape)
        # Strings and bytes come as Python objects; anything else as native-endian values
        # (zarr-python's arrays may be big-endian, v2 ">i4", which then takes a converting copy).
        self.variable = codec.variable_length_elements
        self.dtype: np.dtype[Any] = (
            np.dtype(object) if self.variable else _native(np.dtype(spec.dtype.to_native_dtype()))
        )
        self.fill_value = spec.fill_value
        # An array without a fill value (v2's null) is taken to be filled with zeros, as
        # zarr-python 3 takes it: chunks of only zeros are left out unless asked for.
        self.write_empty_chunks = bool(spec.config.write_empty_chunks)
        self.spec = spec

    async def decode_arrays(
        self, stored: Sequence[np.ndarray[Any, Any] | None], keys: Sequence[str]
    ) -> list[np.ndarray[Any, Any] | None]:
        """Whole chunks decoded in parallel, as arrays of `self.dtype` (None: not stored)."""
        work = list(zip(stored, keys, strict=True))
        if self.variable:
            lists = await asyncio.to_thread(self.codec.decode_vlen, work)
            return [None if e is None else _object_array(e, self.shape) for e in lists]
        chunks = await asyncio.to_thread(self.codec.decode, work)
        return [
            None if c is None else np.frombuffer(c, dtype=self.dtype).reshape(self.shape)
            for c in chunks
        ]

    async def encode_arrays(
        self, arrays: Sequence[np.ndarray[Any, Any]], keys: Sequence[str]
    ) -> list[bytes]:
        """Whole chunks (arrays of the chunk shape) encoded in parallel."""
        if self.variable:
            elements = [
                (a.astype(object).ravel().tolist(), k) for a, k in zip(arrays, keys, strict=True)
            ]
            return await asyncio.to_thread(self.codec.encode_vlen, elements)
        flat = [
            (_flat_bytes(np.ascontiguousarray(a, dtype=self.dtype)), k)
            for a, k in zip(arrays, keys, strict=True)
        ]
        return await asyncio.to_thread(self.codec.encode, flat)

    async def encode_written(
        self,
        arrays: Sequence[np.ndarray[Any, Any]],
        stored: Sequence[np.ndarray[Any, Any] | None],
        touched: Sequence[np.ndarray[Any, Any]],
        keys: Sequence[str],
    ) -> list[bytes | None]:
        """Whole chunks (arrays of the chunk shape) a write changed, encoded in parallel from
        their stored bytes before and which of their elements the write touched (boolean
        arrays of the chunk shape): None where nothing is to be stored."""
        work = [
            (_flat_bytes(np.ascontiguousarray(a, dtype=self.dtype)), s, _flat_bytes(t), k)
            for a, s, t, k in zip(arrays, stored, touched, keys, strict=True)
        ]
        return await asyncio.to_thread(self.codec.encode_masked, work, self.write_empty_chunks)


def _object_array(elements: list[Any], shape: tuple[int, ...]) -> np.ndarray[Any, Any]:
    # Filled element by element: numpy would make a 2-d array of equal-length bytes otherwise.
    array = np.empty(len(elements), dtype=object)
    array[:] = elements
    return array.reshape(shape)


def _is_cpu(spec: ArraySpec) -> bool:
    return issubclass(spec.prototype.nd_buffer, cpu.NDBuffer) and issubclass(
        spec.prototype.buffer, cpu.Buffer
    )


def _spec_key(spec: ArraySpec) -> tuple[Any, ...]:
    # repr keeps NaN fill values equal to themselves, and tells 0.0 from -0.0.
    fill = spec.fill_value
    return (
        tuple(spec.shape),
        repr(spec.dtype),
        type(fill).__name__,
        repr(fill),
        spec.config.order,
        spec.config.write_empty_chunks,
        spec.prototype,
    )


def _store_key(byte_getter: object) -> str:
    return str(getattr(byte_getter, "path", byte_getter))


def _chunk_dims(
    chunk_selection: SelectorTuple, chunk_shape: tuple[int, ...]
) -> list[tuple[int, int, int, bool]] | None:
    """Per chunk dimension (start, step, len, kept) for a selection of slices and integers, or
    None for anything else (index arrays, masks)."""
    if not isinstance(chunk_selection, tuple) or len(chunk_selection) != len(chunk_shape):
        return None
    dims = []
    for sel, n in zip(chunk_selection, chunk_shape, strict=True):
        if isinstance(sel, slice):
            start, stop, step = sel.indices(n)
            if step <= 0:
                return None
            dims.append((start, step, len(range(start, stop, step)), True))
        elif isinstance(sel, int | np.integer) and not isinstance(sel, bool | np.bool_):
            index = int(sel) + (n if sel < 0 else 0)
            if not 0 <= index < n:
                return None
            dims.append((index, 1, 1, False))
        else:
            return None
    return dims


def _plan_region(
    chunk_selection: SelectorTuple,
    other_selection: SelectorTuple,
    chunk_shape: tuple[int, ...],
    other_shape: tuple[int, ...],
    drop_axes: tuple[int, ...],
) -> tuple[tuple[int, ...], _Dims] | None:
    """Maps a chunk's region onto the other array (the output of a read, the values of a
    write) as the engine takes it: both with the chunk's dimensions, the dimensions the
    selection drops (integers, `drop_axes`) being of length 1 in the other array. Returns
    (the other array's shape so expanded, the region), or None when the selections are not
    plain slices and integers, as numpy would apply them."""
    dims = _chunk_dims(chunk_selection, chunk_shape)
    if dims is None:
        return None
    kept = [i for i, d in enumerate(dims) if d[3]]
    if drop_axes:
        if any(a >= len(kept) or dims[kept[a]][2] != 1 for a in drop_axes):
            return None
        kept = [k for j, k in enumerate(kept) if j not in drop_axes]
    if not isinstance(other_selection, tuple):
        other_selection = (other_selection,)
    if len(other_selection) != len(kept) or len(other_shape) != len(kept):
        return None
    starts = {}
    for k, sel, n in zip(kept, other_selection, other_shape, strict=True):
        if not isinstance(sel, slice):
            return None
        start, stop, step = sel.indices(n)
        if step != 1 or stop - start != dims[k][2]:
            return None
        starts[k] = start
    expanded = []
    region: _Dims = []
    j = 0
    for i, (start, step, length, _) in enumerate(dims):
        if i in starts:
            expanded.append(other_shape[j])
            region.append((start, step, length, starts[i]))
            j += 1
        else:
            expanded.append(1)
            region.append((start, step, length, 0))
    return tuple(expanded), region


def _plan_batch(
    items: Sequence[tuple[SelectorTuple, SelectorTuple]],
    chunk_shape: tuple[int, ...],
    other_shape: tuple[int, ...],
    drop_axes: tuple[int, ...],
) -> tuple[tuple[int, ...], list[_Dims]] | None:
    """`_plan_region` for every chunk of a batch, which must agree on the expanded shape."""
    expanded: tuple[int, ...] | None = None
    regions = []
    for chunk_selection, other_selection in items:
        plan = _plan_region(chunk_selection, other_selection, chunk_shape, other_shape, drop_axes)
        if plan is None or (expanded is not None and plan[0] != expanded):
            return None
        expanded = plan[0]
        regions.append(plan[1])
    if expanded is None:
        return None
    return expanded, regions


def _stored_array(buffer: Buffer | None) -> np.ndarray[Any, Any] | None:
    """A stored chunk's bytes as the engine takes them: a uint8 array, not copied."""
    return None if buffer is None else buffer.as_numpy_array()


class _LocalStore:
    """A zarr-python LocalStore's directory opened by the engine, so that chunk I/O runs in
    the engine's parallel loop instead of one coroutine per chunk."""

    def __init__(self, root: str) -> None:
        self.store = _core.Store.local(root)

    def codec_read(
        self,
        codec: _core.ChunkCodec,
        items: list[tuple[str, _Dims]],
        out: np.ndarray[Any, np.dtype[np.uint8]],
        out_shape: list[int],
    ) -> None:
        codec.read_regions(self.store, items, out, out_shape)

    def codec_write(
        self,
        codec: _core.ChunkCodec,
        items: list[tuple[str, _Dims]],
        data: np.ndarray[Any, np.dtype[np.uint8]],
        data_shape: list[int],
        write_empty_chunks: bool,
    ) -> None:
        codec.write_regions(self.store, items, data, data_shape, write_empty_chunks)


#: The engine's handles on LocalStore directories, by root, the most recently used last; at
#: most _LOCAL_STORES of them (a service writing to a new directory per request kept one per
#: directory it ever used).
_local_stores: OrderedDict[str, _LocalStore] = OrderedDict()
_LOCAL_STORES = 64


def _local_store(getters: Sequence[object], *, writing: bool) -> _LocalStore | None:
    """The engine's handle on the directory of the zarr-python LocalStore holding every chunk
    of a batch, or None when they are elsewhere (another kind of store, a wrapper such as
    LoggingStore, whose traffic must stay visible) or a write would bypass a read-only
    store's refusal."""
    first = getters[0] if getters else None
    if not isinstance(first, StorePath) or type(first.store) is not LocalStore:
        return None
    store = first.store
    if writing and store.read_only:
        return None
    if any(not isinstance(g, StorePath) or g.store is not store for g in getters):
        return None
    # zarr-python resolves a relative root against the working directory of each call.
    root = os.path.abspath(store.root)
    with _counts_lock:
        local = _local_stores.get(root)
        if local is None:
            local = _local_stores[root] = _LocalStore(root)
            while len(_local_stores) > _LOCAL_STORES:
                _local_stores.popitem(last=False)
        else:
            _local_stores.move_to_end(root)
    return local


def _whole_chunk(chunk_selection: SelectorTuple, chunk_shape: tuple[int, ...]) -> bool:
    """Whether `chunk_selection` selects its whole chunk, each element once."""
    dims = _chunk_dims(chunk_selection, chunk_shape)
    return dims is not None and all(
        start == 0 and length == n and (step == 1 or n == 1)
        for (start, step, length, _), n in zip(dims, chunk_shape, strict=True)
    )


def _covers(region: _Dims, chunk_shape: tuple[int, ...]) -> bool:
    """Whether `region` (per dimension: start, step, length, offset) is its whole chunk."""
    return all(
        start == 0 and length == n
        for (start, _, length, _), n in zip(region, chunk_shape, strict=True)
    )


def _flat_bytes(array: np.ndarray[Any, Any]) -> np.ndarray[Any, np.dtype[np.uint8]]:
    """A C-contiguous array's memory as a flat uint8 array, without a copy."""
    return array.reshape(-1).view(np.uint8)


def _fill(engine: _Engine) -> Any:
    fill = engine.fill_value
    return engine.spec.dtype.default_scalar() if fill is None else fill


def _batched(items: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), _BATCH_CHUNKS):
        yield items[start : start + _BATCH_CHUNKS]


class ZarrCodecPipeline(CodecPipeline):
    """zarr-python's codec pipeline interface, run by oxzarr's engine.

    Pickles by its codecs. The engine's codec chains are built on first use for each chunk
    spec and kept for the pipeline's lifetime.
    """

    def __init__(self, codecs: Iterable[Codec], batch_size: int | None = None) -> None:
        self.codecs: tuple[Codec, ...] = tuple(codecs)
        # zarr-python's pipeline checks the codec order and kinds, and runs what the engine
        # does not handle.
        self._fallback = BatchedCodecPipeline.from_codecs(self.codecs, batch_size=batch_size)
        self._batch_size = batch_size
        self._engines: dict[tuple[Any, ...], _Engine | str] = {}
        self._engines_lock = fork_safe_lock(self, "_engines_lock")

    # Pickling and equality: by codecs, as zarr-python's own pipeline.

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.codecs, self._batch_size))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ZarrCodecPipeline) and self.codecs == other.codecs

    def __hash__(self) -> int:
        return hash(self.codecs)

    def __repr__(self) -> str:
        return f"ZarrCodecPipeline(codecs={self.codecs!r})"

    def __iter__(self) -> Iterator[Codec]:
        return iter(self.codecs)

    # The interface's metadata side: as zarr-python's pipeline does it.

    @classmethod
    def from_codecs(cls, codecs: Iterable[Codec], *, batch_size: int | None = None) -> Self:
        """The pipeline of `codecs` (zarr-python's way to make a pipeline)."""
        return cls(codecs, batch_size=batch_size)

    def evolve_from_array_spec(self, array_spec: ArraySpec) -> Self:
        """This pipeline with each codec evolved for `array_spec`, as zarr-python's
        pipeline does it."""
        return type(self)(
            (c.evolve_from_array_spec(array_spec=array_spec) for c in self.codecs),
            batch_size=self._batch_size,
        )

    @property
    def supports_partial_decode(self) -> bool:
        """False: the interface's partial decodes are not used; :meth:`read` reads the
        parts of chunks asked for."""
        return False

    @property
    def supports_partial_encode(self) -> bool:
        """False: the interface's partial encodes are not used; :meth:`write` merges
        the parts of chunks written."""
        return False

    def validate(
        self,
        *,
        shape: tuple[int, ...],
        dtype: ZDType[TBaseDType, TBaseScalar],
        chunk_grid: ChunkGrid,
    ) -> None:
        """Checks that the codecs suit an array of this shape, dtype and chunk grid, as
        zarr-python's pipeline checks it."""
        self._fallback.validate(shape=shape, dtype=dtype, chunk_grid=chunk_grid)

    def compute_encoded_size(self, byte_length: int, array_spec: ArraySpec) -> int:
        """The size of `byte_length` bytes once encoded, as zarr-python's pipeline
        computes it."""
        return self._fallback.compute_encoded_size(byte_length, array_spec)

    # The engine for a chunk spec.

    def _engine(self, spec: ArraySpec) -> _Engine | str:
        """The engine's chain for `spec`, or why zarr-python's pipeline must run instead."""
        key = _spec_key(spec)
        with self._engines_lock:
            found = self._engines.get(key)
        if found is not None:
            return found
        engine: _Engine | str
        if not _is_cpu(spec):
            engine = "buffer prototype other than the CPU's"
        else:
            try:
                document = _chunk_document(self.codecs, spec)
                codec = _core.ChunkCodec(document)
                sharded = any(isinstance(c, ShardingCodec) for c in self.codecs)
                whole = None
                if spec.config.write_empty_chunks and "sharding_indexed" in document:
                    whole = _Engine(_core.ChunkCodec(document, True), spec, sharded=sharded)
                engine = _Engine(codec, spec, whole, sharded=sharded)
            except _Unsupported as e:
                engine = str(e)
            except (ValueError, TypeError, NotImplementedError) as e:
                # The engine refuses what it does not implement (a codec, a data type) by
                # name; zarr-python's pipeline then runs it.
                engine = f"{type(e).__name__}: {e}"
        with self._engines_lock:
            self._engines[key] = engine
        return engine

    def _groups(self, specs: Sequence[ArraySpec]) -> dict[tuple[Any, ...], list[int]]:
        groups: dict[tuple[Any, ...], list[int]] = {}
        for i, spec in enumerate(specs):
            groups.setdefault(_spec_key(spec), []).append(i)
        return groups

    # Decode and encode: whole chunks.

    async def decode(
        self, chunk_bytes_and_specs: Iterable[tuple[Buffer | None, ArraySpec]]
    ) -> Iterable[NDBuffer | None]:
        """Whole chunks decoded (None where none is stored), in parallel by the engine;
        what the engine does not implement runs on zarr-python's own pipeline."""
        items = list(chunk_bytes_and_specs)
        out: list[NDBuffer | None] = [None] * len(items)
        for indices in self._groups([spec for _, spec in items]).values():
            spec = items[indices[0]][1]
            engine = self._engine(spec)
            if isinstance(engine, str):
                _count_fallback(engine)
                decoded = await self._fallback.decode([items[i] for i in indices])
                for i, chunk in zip(indices, decoded, strict=True):
                    out[i] = chunk
                continue
            _count_engine("decode")
            stored = [_stored_array(items[i][0]) for i in indices]
            arrays = await engine.decode_arrays(stored, [""] * len(indices))
            wanted = np.dtype(spec.dtype.to_native_dtype())
            for i, array in zip(indices, arrays, strict=True):
                if array is None:
                    continue
                if wanted != array.dtype:
                    array = array.astype(wanted)
                if spec.order == "F":
                    array = np.asfortranarray(array)
                out[i] = spec.prototype.nd_buffer.from_ndarray_like(cast("NDArrayLike", array))
        return out

    async def encode(
        self, chunk_arrays_and_specs: Iterable[tuple[NDBuffer | None, ArraySpec]]
    ) -> Iterable[Buffer | None]:
        """Whole chunks encoded (None for none given), in parallel by the engine;
        what the engine does not implement runs on zarr-python's own pipeline."""
        items = list(chunk_arrays_and_specs)
        out: list[Buffer | None] = [None] * len(items)
        for indices in self._groups([spec for _, spec in items]).values():
            spec = items[indices[0]][1]
            engine = self._engine(spec)
            if isinstance(engine, str):
                _count_fallback(engine)
                encoded = await self._fallback.encode([items[i] for i in indices])
                for i, encoded_chunk in zip(indices, encoded, strict=True):
                    out[i] = encoded_chunk
                continue
            _count_engine("encode")
            present = []
            arrays = []
            for i in indices:
                values = items[i][0]
                if values is not None:
                    present.append(i)
                    arrays.append(np.broadcast_to(values.as_ndarray_like(), engine.shape))
            encoded_bytes = await engine.encode_arrays(arrays, [""] * len(arrays))
            for i, b in zip(present, encoded_bytes, strict=True):
                out[i] = spec.prototype.buffer.from_bytes(b)
        return out

    # Read and write: selections of chunks, to and from the caller's array.

    async def read(
        self,
        batch_info: Iterable[ReadItem],
        out: NDBuffer,
        drop_axes: tuple[int, ...] = (),
    ) -> None:
        """Reads the chunks of `batch_info` into `out`: fetched, decoded and copied by the
        engine, straight into `out` where it can; what the engine does not implement runs
        on zarr-python's own pipeline."""
        items = list(batch_info)
        target = out.as_ndarray_like()
        for indices in self._groups([item[1] for item in items]).values():
            group = [items[i] for i in indices]
            engine = self._engine(group[0][1])
            if isinstance(engine, str) or not isinstance(target, np.ndarray):
                _count_fallback(engine if isinstance(engine, str) else "output is not numpy")
                await self._fallback.read(group, out, drop_axes)
                continue
            _count_engine("read")
            for batch in _batched(group):
                await self._read_batch(engine, batch, target, drop_axes)

    async def _fetch(
        self, items: Sequence[tuple[ByteGetter | None, ArraySpec]]
    ) -> list[np.ndarray[Any, Any] | None]:
        async def get(getter: ByteGetter | None, spec: ArraySpec) -> Buffer | None:
            if getter is None:
                return None
            return await getter.get(prototype=spec.prototype)

        buffers = await concurrent_map(items, get, zarr_config.get("async.concurrency"))
        return [_stored_array(b) for b in buffers]

    async def _read_batch(
        self,
        engine: _Engine,
        batch: Sequence[ReadItem],
        target: np.ndarray[Any, Any],
        drop_axes: tuple[int, ...],
    ) -> None:
        keys = [_store_key(item[0]) for item in batch]
        plan = _plan_batch(
            [(c, o) for _, _, c, o, _ in batch], engine.shape, target.shape, drop_axes
        )
        if plan is not None and not engine.variable and _native(target.dtype) == engine.dtype:
            expanded, regions = plan
            local = _local_store([item[0] for item in batch], writing=False)
            if local is not None:
                _count_engine("read from disk")
            stored_or_none = (
                None if local else await self._fetch([(g, spec) for g, spec, *_ in batch])
            )

            def decode(buffer: np.ndarray[Any, Any]) -> None:
                if local is not None:
                    work = list(zip(keys, regions, strict=True))
                    local.codec_read(engine.codec, work, _flat_bytes(buffer), list(expanded))
                else:
                    assert stored_or_none is not None
                    engine.codec.decode_into(
                        list(zip(stored_or_none, keys, regions, strict=True)),
                        _flat_bytes(buffer),
                        list(expanded),
                    )

            direct = (
                target.dtype == engine.dtype
                and target.flags.c_contiguous
                and type(target) in (np.ndarray, np.memmap)  # not a masked array, a matrix
            )
            if direct:
                try:
                    await asyncio.to_thread(decode, target)
                    return
                except BufferError:
                    pass  # another thread's read holds this memory (overlapping views)
            # A big-endian, F-ordered or strided output, or one another read holds: through
            # a native C-ordered copy (which keeps what other batches put there).
            staging = np.array(target, dtype=engine.dtype, order="C")  # always a copy
            await asyncio.to_thread(decode, staging)
            target[...] = staging
            return
        stored = await self._fetch([(getter, spec) for getter, spec, *_ in batch])
        # Strings, index arrays, masks, fields, or an output the engine cannot fill in place:
        # the engine decodes, numpy places each chunk's part as zarr-python would.
        decoded = await engine.decode_arrays(stored, keys)
        for chunk, (_, _, chunk_selection, out_selection, _) in zip(decoded, batch, strict=True):
            if chunk is None:
                target[out_selection] = _fill(engine)
                continue
            part = chunk[chunk_selection]
            if drop_axes:
                part = part.squeeze(axis=drop_axes)
            target[out_selection] = part

    async def write(
        self,
        batch_info: Iterable[WriteItem],
        value: NDBuffer,
        drop_axes: tuple[int, ...] = (),
    ) -> None:
        """Writes `value` into the chunks of `batch_info`, merged into those written in
        part, encoded and stored by the engine; what the engine does not implement runs on
        zarr-python's own pipeline."""
        items = list(batch_info)
        values = value.as_ndarray_like()
        for indices in self._groups([item[1] for item in items]).values():
            group = [items[i] for i in indices]
            engine = self._engine(group[0][1])
            if isinstance(engine, str) or not isinstance(values, np.ndarray):
                _count_fallback(engine if isinstance(engine, str) else "values are not numpy")
                await self._fallback.write(group, value, drop_axes)
                continue
            _count_engine("write")
            for batch in _batched(group):
                if engine.whole is not None:
                    # Shards written whole (zarr-python's is_complete_chunk) go to the
                    # engine that keeps their inner chunks of the fill value.
                    whole = [item for item in batch if item[4]]
                    if whole:
                        await self._write_batch(engine.whole, whole, values, drop_axes)
                    batch = [item for item in batch if not item[4]]
                if batch:
                    await self._write_batch(engine, batch, values, drop_axes)

    async def _write_batch(
        self,
        engine: _Engine,
        batch: Sequence[WriteItem],
        values: np.ndarray[Any, Any],
        drop_axes: tuple[int, ...],
    ) -> None:
        keys = [_store_key(item[0]) for item in batch]
        plan: tuple[tuple[int, ...], list[_Dims]] | None = None
        data: np.ndarray[Any, Any] | None = None
        if engine.variable:
            pass
        elif values.ndim == 0:
            # A scalar fills each region: the engine reads it from a chunk-shaped block.
            dims = [_chunk_dims(c, engine.shape) for _, _, c, _, _ in batch]
            if all(d is not None for d in dims):
                data = np.full(engine.shape, values, dtype=engine.dtype)
                regions = [[(s, st, n, 0) for s, st, n, _ in d] for d in dims if d is not None]
                plan = (engine.shape, regions)
        else:
            plan = _plan_batch(
                [(c, o) for _, _, c, o, _ in batch], engine.shape, values.shape, drop_axes
            )
            if plan is not None and _native(values.dtype) == engine.dtype:
                data = np.ascontiguousarray(values, dtype=engine.dtype)
        # zarr-python merges every shard it writes into the stored one (its partial shard
        # encode), even one whose part inside the array the write covers: the inner chunks
        # a shrink left past the edge stay, and show again when the array grows. A chunk
        # that is no shard is replaced there, past the edge filled with the fill value.
        merges_stored = self._fallback.supports_partial_encode
        local = _local_store([item[0] for item in batch], writing=True)
        if plan is not None and data is not None and local is not None:
            # The engine reads, merges, encodes and stores each chunk itself. An edge chunk
            # (not a shard) whose part inside the array this write covers whole is not
            # merged: the path below writes those.
            expanded, regions = plan
            at_edge = [
                i
                for i, (*_, complete) in enumerate(batch)
                if complete and not merges_stored and not _covers(regions[i], engine.shape)
            ]
            merged = [i for i in range(len(batch)) if i not in at_edge]
            if merged:
                _count_engine("write to disk")
                merging = [(keys[i], regions[i]) for i in merged]
                await asyncio.to_thread(
                    _from_buffer,
                    lambda flat: local.codec_write(
                        engine.codec, merging, flat, list(expanded), engine.write_empty_chunks
                    ),
                    _flat_bytes(data),
                )
            if not at_edge:
                return
            batch = [batch[i] for i in at_edge]
            keys = [keys[i] for i in at_edge]
            plan = (expanded, [regions[i] for i in at_edge])
        # A chunk the write covers whole is not read, nor is an edge chunk that is no shard.
        read = [
            not complete or (merges_stored and not _whole_chunk(selection, engine.shape))
            for _, _, selection, _, complete in batch
        ]
        stored = await self._fetch(
            [
                (setter if r else None, spec)
                for (setter, spec, *_), r in zip(batch, read, strict=True)
            ]
        )
        if merges_stored:
            await self._touch_complete_shards(
                [item for item, r in zip(batch, read, strict=True) if not r]
            )
        encoded: Sequence[bytes | None]
        if plan is not None and data is not None:
            expanded, regions = plan
            work = list(zip(stored, keys, regions, strict=True))
            encoded = await asyncio.to_thread(
                _from_buffer,
                lambda flat: engine.codec.encode_regions(
                    work, flat, list(expanded), engine.write_empty_chunks
                ),
                _flat_bytes(data),
            )
        else:
            encoded = await self._merge_and_encode(engine, batch, stored, keys, values, drop_axes)
        await self._store(batch, encoded)

    async def _touch_complete_shards(self, batch: Sequence[WriteItem]) -> None:
        """zarr-python loads every shard it writes (its partial shard encode starts from the
        stored shard), and its tests pin that store traffic: one read per shard written. A
        shard this write replaces whole needs none of it, so the same request asks for its
        last byte only."""

        async def touch(setter: ByteSetter, spec: ArraySpec) -> None:
            await setter.get(prototype=spec.prototype, byte_range=SuffixByteRequest(1))

        await concurrent_map(
            [(setter, spec) for setter, spec, _, _, complete in batch if complete],
            touch,
            zarr_config.get("async.concurrency"),
        )

    async def _merge_and_encode(
        self,
        engine: _Engine,
        batch: Sequence[WriteItem],
        stored: list[np.ndarray[Any, Any] | None],
        keys: list[str],
        values: np.ndarray[Any, Any],
        drop_axes: tuple[int, ...],
    ) -> list[bytes | None]:
        """Index arrays, masks, broadcasting values: the engine decodes, numpy places the values
        as zarr-python would, the engine encodes."""
        decoded = await engine.decode_arrays(stored, keys)
        fill = _fill(engine)
        if engine.variable:
            # numpy's string arrays do not broadcast into object arrays (a 0-d one assigns as
            # empty): place them as Python objects.
            values = values.astype(object)
        chunks: list[np.ndarray[Any, Any] | None] = []
        merged: list[np.ndarray[Any, Any]] = []
        touched: list[np.ndarray[Any, Any]] = []
        for chunk, (_, _, chunk_selection, out_selection, _) in zip(decoded, batch, strict=True):
            if chunk is None:
                array = np.full(engine.shape, fill, dtype=engine.dtype)
            else:
                array = chunk.copy()
            if values.ndim == 0:
                part = values[()]
            elif chunk_selection == ():
                part = values
            else:
                part = values[out_selection]
                if drop_axes:
                    part = part[
                        tuple(None if i in drop_axes else slice(None) for i in range(array.ndim))
                    ]
            array[chunk_selection] = part
            if engine.sharded:
                # zarr-python writes a shard in part, inner chunk by inner chunk: which ones
                # the write touched decides which it keeps.
                mask = np.zeros(engine.shape, dtype=np.bool_)
                mask[chunk_selection] = True
                merged.append(array)
                touched.append(mask)
                continue
            if not engine.write_empty_chunks and _all_equal(array, fill):
                chunks.append(None)
            else:
                chunks.append(array)
        if engine.sharded:
            return await engine.encode_written(merged, stored, touched, keys)
        present = [i for i, c in enumerate(chunks) if c is not None]
        encoded_present = await engine.encode_arrays(
            [c for c in chunks if c is not None], [keys[i] for i in present]
        )
        result: list[bytes | None] = [None] * len(chunks)
        for i, b in zip(present, encoded_present, strict=True):
            result[i] = b
        return result

    async def _store(self, batch: Sequence[WriteItem], encoded: Sequence[bytes | None]) -> None:
        async def put(setter: ByteSetter, spec: ArraySpec, chunk: bytes | None) -> None:
            if chunk is None:
                await setter.delete()
            else:
                await setter.set(spec.prototype.buffer.from_bytes(chunk))

        await concurrent_map(
            [
                (setter, spec, chunk)
                for (setter, spec, *_), chunk in zip(batch, encoded, strict=True)
            ],
            put,
            zarr_config.get("async.concurrency"),
        )


def _all_equal(array: np.ndarray[Any, Any], fill: Any) -> bool:
    """Whether every element equals the fill value, NaN matching NaN and NaT NaT."""
    if array.dtype == object:
        return all(e == fill for e in array.ravel().tolist())
    if array.dtype.kind in "mM":
        # As their 64-bit counts, where NaT is one value like any other.
        return bool(np.all(array.view(np.int64) == np.full_like(array, fill).view(np.int64)))
    zero_fill = array.dtype.kind in "fc" and np.asarray(fill).dtype.kind in "fc" and fill == 0
    if zero_fill or array.dtype.names is not None:
        # As zarr-python for floats: a zero fill is matched bit for bit, so that -0.0 is
        # kept. Complex numbers and records too, as the engine matches every chunk it
        # merges itself (zarr-python takes -0.0 for 0.0 there: see docs/drop-in.md).
        void = f"V{array.dtype.itemsize}"
        return bool(np.array_equal(array.view(void), np.full_like(array, fill).view(void)))
    if array.dtype.kind in "fc":
        return bool(np.array_equal(array, np.full_like(array, fill), equal_nan=True))
    return bool(np.all(array == fill))


# zarr-python registers pipelines under `__module__.__qualname__`: the name users configure,
# "oxzarr.ZarrCodecPipeline", must be what this class reports.
ZarrCodecPipeline.__module__ = "oxzarr"
