"""Building array metadata from create_array's arguments, with zarr-python's defaults."""

from __future__ import annotations

import math
import operator
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import numpy as np

from oxzarr._dtypes import v2_dtype
from oxzarr.codecs import BytesCodec, Codec, ZstdCodec, to_codec

JSON = Any

#: Codecs that turn arrays into bytes; those before one are filters, those after compressors.
ARRAY_TO_BYTES = {"bytes", "sharding_indexed", "vlen-utf8", "vlen-bytes"}
ARRAY_TO_ARRAY = {
    "transpose",
    "bitround",
    "numcodecs.astype",
    "numcodecs.bitround",
    "numcodecs.delta",
    "numcodecs.fixedscaleoffset",
    "numcodecs.packbits",
    "numcodecs.quantize",
}


def integers(values: Any, what: str) -> tuple[int, ...]:
    """`values`, an integer or a sequence of them, as ints. Anything else, floats included, is
    a TypeError, as in numpy and zarr-python: a shape of 10.7 is a mistake, not 10."""
    if isinstance(values, int | np.integer):
        values = (values,)
    try:
        return tuple(operator.index(v) for v in values)
    except TypeError as e:
        raise TypeError(
            f"{what} must be an integer or a sequence of integers, not {values!r}"
        ) from e


def normalize_shape(shape: Any) -> tuple[int, ...]:
    out = integers(shape, "shape")
    if any(s < 0 for s in out):
        raise ValueError(f"shape cannot be negative: {out}")
    return out


def guess_chunks(
    shape: tuple[int, ...], itemsize: int, max_bytes: int = 64 * 2**20
) -> tuple[int, ...]:
    """The chunk shape zarr-python (and h5py) picks for an array of `shape`: a target size
    that grows with the array (256 KiB at 1 MiB, doubling per tenfold, kept within 128 KiB
    and `max_bytes`), reached by halving the dimensions in turn until the chunk is below
    `max_bytes` and below the target or within half of it."""
    if not shape or itemsize == 0:
        return tuple(shape)
    chunks = [max(s, 1) for s in shape]
    total = math.prod(chunks) * itemsize
    target = 256 * 1024 * 2 ** math.log10(total / 2**20)
    target = min(max(target, 128 * 1024), max_bytes)
    turn = 0
    while True:
        nbytes = math.prod(chunks) * itemsize
        near = nbytes < target or abs(nbytes - target) / target < 0.5
        if (near and nbytes < max_bytes) or math.prod(chunks) == 1:
            return tuple(chunks)
        d = turn % len(chunks)
        chunks[d] = math.ceil(chunks[d] / 2)
        turn += 1


def legacy_chunks(chunks: Any, shape: Any) -> Any:
    """``chunks`` as zarr-python's older creation functions (create, zeros, full,
    open_array) take them, kept from zarr-python 2, in the form `normalize_chunks` takes:
    False for one chunk, dask's chunks (a tuple of sizes per dimension) by their first
    sizes, and a tuple shorter than the shape with the remaining dimensions whole.
    create_array takes none of these, in both libraries."""
    if chunks is False:
        return normalize_shape(shape)
    if isinstance(chunks, tuple | list) and chunks:
        if all(isinstance(c, tuple | list) for c in chunks):
            chunks = tuple(c[0] if c else 0 for c in chunks)
        full = normalize_shape(shape)
        if len(chunks) < len(full):
            chunks = (*chunks, *full[len(chunks) :])
    return chunks


def normalize_chunks(chunks: Any, shape: tuple[int, ...], itemsize: int) -> tuple[int, ...]:
    """Chunks from "auto"/True, an integer (every dimension), or a sequence where -1 or None
    mean the whole dimension."""
    if chunks is None or chunks == "auto" or chunks is True:
        return guess_chunks(shape, itemsize)
    if isinstance(chunks, int | np.integer):
        chunks = (int(chunks),) * len(shape)
    out = []
    for c, s in zip(chunks, shape, strict=False):
        if c is None or c == -1:
            c = max(s, 1)
        try:
            out.append(operator.index(c))
        except TypeError as e:
            raise TypeError(f"chunk sizes must be integers, not {tuple(chunks)!r}") from e
    if len(out) != len(shape) or len(tuple(chunks)) != len(shape):
        raise ValueError(
            f"chunks {tuple(chunks)} do not match the {len(shape)} dimensions of shape {shape}"
        )
    if any(c < 1 for c in out):
        raise ValueError(f"chunk sizes must be positive: {tuple(out)}")
    return tuple(out)


def normalize_shards(
    shards: Any, shape: tuple[int, ...], chunks: tuple[int, ...]
) -> tuple[int, ...]:
    """The shard shape: a sequence (or zarr-python's ``{"shape": ...}``), each entry a
    multiple of the chunk shape."""
    if isinstance(shards, Mapping):
        shards = shards.get("shape")
        if shards is None:
            raise ValueError('a shards mapping takes the shard shape as "shape"')
    if isinstance(shards, int | np.integer):
        shards = (int(shards),) * len(shape)
    out = integers(shards, "shards")
    if len(out) != len(shape):
        raise ValueError(f"shards {out} do not match the {len(shape)} dimensions of shape {shape}")
    if any(s < 1 or s % c for s, c in zip(out, chunks, strict=True)):
        raise ValueError(f"shards {out} must be positive multiples of the chunk shape {chunks}")
    return out


def shard_index_location(shards: Any) -> Literal["start", "end"]:
    """Where the shard index goes: zarr-python's ``{"shape": ..., "index_location": ...}``
    names it; "end" otherwise."""
    where = shards.get("index_location", "end") if isinstance(shards, Mapping) else "end"
    if where not in ("start", "end"):
        raise ValueError(f'index_location must be "start" or "end", not {where!r}')
    return "start" if where == "start" else "end"


def chunks_within(shards: tuple[int, ...], itemsize: int) -> tuple[int, ...]:
    """An inner chunk shape for shards of `shards` ("auto" chunks of a sharded array): the
    usual guess, shrunk to divide the shard evenly."""
    guess = guess_chunks(shards, itemsize)
    out = []
    for g, s in zip(guess, shards, strict=True):
        c = min(g, s)
        while s % c:
            c -= 1
        out.append(c)
    return tuple(out)


def _codec_list(value: Any) -> list[Codec]:
    if value is None:
        return []
    if isinstance(value, str | Mapping) or not isinstance(value, Iterable):
        return [to_codec(value)]
    return [to_codec(v) for v in value]


def codec_chain(
    dtype: np.dtype[Any], filters: Any, serializer: Any, compressors: Any
) -> list[JSON]:
    """The v3 codec list for create_array's filters, serializer and compressors."""
    filter_list = [] if filters == "auto" else _codec_list(filters)
    if serializer == "auto":
        serializer_codec: Codec = BytesCodec()
    else:
        chosen = _codec_list(serializer)
        if len(chosen) != 1:
            raise ValueError(f"serializer must be one codec, not {serializer!r}")
        serializer_codec = chosen[0]
    compressor_list = (
        [ZstdCodec(level=0, checksum=False)] if compressors == "auto" else _codec_list(compressors)
    )
    filter_dicts = [c._for_dtype(dtype).to_dict() for c in filter_list]
    # The serializer takes what the filters give: numcodecs' delta into <i2 makes a one-byte
    # array's elements two bytes, which need a byte order.
    stored = _filtered_dtype(dtype, filter_dicts)
    codecs = [
        *filter_dicts,
        serializer_codec._for_dtype(stored).to_dict(),
        *(c._for_dtype(dtype).to_dict() for c in compressor_list),
    ]
    for at, codec in enumerate(codecs):
        if codec.get("name") == "numcodecs.bitround":
            # It rounds what the filters before it give (numcodecs' astype may turn integers
            # into floats, or floats into integers), not the array's own elements.
            received = _filtered_dtype(dtype, codecs[: min(at, len(filter_dicts))])
            _check_numcodecs_bitround(
                received, "numcodecs.bitround", "bitround", changed=received != dtype
            )
    return codecs


def _filtered_dtype(dtype: np.dtype[Any], filters: list[JSON]) -> np.dtype[Any]:
    """The dtype of the elements `filters` give, from v3 codec metadata (settings under
    "configuration") or v2 numcodecs configurations (settings beside "id"): numcodecs' delta,
    fixedscaleoffset and quantize store theirs as ``astype``, astype as ``encode_dtype``."""
    for codec in filters:
        if not isinstance(codec, Mapping):
            continue
        configuration = codec if "id" in codec else codec.get("configuration")
        if isinstance(configuration, Mapping):
            given = configuration.get("astype") or configuration.get("encode_dtype")
            if isinstance(given, str):
                try:
                    dtype = np.dtype(given)
                except TypeError:
                    pass  # not numpy's name: the engine says what it makes of it
    return dtype


def _check_numcodecs_bitround(
    dtype: np.dtype[Any], name: str, other_name: str | None, *, changed: bool = False
) -> None:
    """numcodecs' BitRound rounds floats only: `dtype` is the one it receives, after the
    filters before it (`changed`: not the array's). The engine also rounds integers, times
    and complex numbers, as the zarr-extensions codec does, so that what zarrs writes under
    either name reads; but an array made under numcodecs' name keeps to what numcodecs reads
    right. (The engine refuses the other data types itself.)"""
    if dtype.kind in "iucMm":
        given = f"{dtype}, the dtype the filters before it give" if changed else str(dtype)
        instead = f"; the zarr-extensions codec {other_name!r} rounds them" if other_name else ""
        raise ValueError(f"{name} rounds floats only, as numcodecs does, not {given}{instead}")


def chunk_key_encoding_json(value: Any) -> JSON:
    """A chunk_key_encoding: None (default, "/"), a name, a dict in either the spec's form
    or zarr-python's short form ({"name": "v2", "separator": "."}), or the pair zarr-python's
    create() takes (("v2", "."))."""
    if value is None:
        return {"name": "default", "configuration": {"separator": "/"}}
    if isinstance(value, str):
        return {"name": value}
    if isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, str) for v in value):
        return {"name": value[0], "configuration": {"separator": value[1]}}
    if isinstance(value, Mapping):
        if "configuration" in value or "separator" not in value:
            return dict(value)
        return {
            "name": value.get("name", "default"),
            "configuration": {"separator": value["separator"]},
        }
    raise ValueError(f"invalid chunk_key_encoding {value!r}")


#: numcodecs codecs whose configuration depends on the array's data type, and that field,
#: filled in from the array when a v2 array is made without it (v3 metadata is written by the
#: engine, which fills it in itself). numcodecs cannot build the filters without their dtype.
#: It reads a shuffle without an element size as 4, whatever the data type; what the user
#: meant is the data type's size, as zarr-python's v3 shuffle and oxzarr's engine take it.
_DTYPE_FIELDS = {
    "delta": "dtype",
    "fixedscaleoffset": "dtype",
    "quantize": "dtype",
    "astype": "decode_dtype",
    "shuffle": "elementsize",
}


def with_dtype_field(
    codec_id: str, config: Mapping[str, JSON], dtype: np.dtype[Any]
) -> dict[str, JSON]:
    """`config` of the numcodecs codec `codec_id`, with the array's data type (or element
    size) filled in where the codec depends on one and none is given."""
    config = dict(config)
    field_name = _DTYPE_FIELDS.get(codec_id)
    if field_name == "elementsize" and dtype.kind in "OT":
        return config  # variable-length elements have no size to shuffle by
    if field_name is not None and config.get(field_name) is None:
        config[field_name] = dtype.itemsize if field_name == "elementsize" else dtype.str
    return config


#: Zarr v3 codecs that numcodecs has no counterpart of (the array's layout in v2 is its
#: `order`; its chunks are not split further).
_V3_ONLY = frozenset({"bytes", "transpose", "sharding_indexed"})


def to_numcodecs(codec: Any, dtype: np.dtype[Any]) -> dict[str, JSON]:
    """A codec as numcodecs configuration (`{"id": ...}`), as v2 metadata holds it: from such a
    dict, a numcodecs object, an oxzarr codec, v3 codec metadata, or a codec's name."""
    config = _to_numcodecs(codec, dtype)
    if config.get("id") == "blosc":
        # numcodecs' Blosc takes a typesize but never writes one (its get_config leaves it
        # out), and TensorStore refuses a .zarray naming one: the chunks' own headers say it.
        config.pop("typesize", None)
    return config


def _to_numcodecs(codec: Any, dtype: np.dtype[Any]) -> dict[str, JSON]:
    if isinstance(codec, str) and codec not in _V3_ONLY:
        # v2 codecs are numcodecs codecs: a name is numcodecs' codec of that id with its
        # defaults, as {"id": name} is (zarr-python writes numcodecs.get_codec's settings).
        codec = {"id": codec.removeprefix("numcodecs.")}
    if isinstance(codec, Mapping) and "id" in codec:
        return with_dtype_field(str(codec["id"]), codec, dtype)
    get_config = getattr(codec, "get_config", None)
    if callable(get_config):
        config = get_config()
        if isinstance(config, Mapping) and "id" in config:
            return with_dtype_field(str(config["id"]), config, dtype)
    metadata = to_codec(codec)._for_dtype(dtype).to_dict()
    name = str(metadata["name"])
    if name in _V3_ONLY:
        # As zarr-python: v2 filters and compressors are numcodecs codecs.
        raise TypeError(
            f"the Zarr v3 codec {name!r} has no Zarr v2 form: v2 filters and compressors are "
            f"numcodecs codecs"
        )
    config = dict(metadata.get("configuration") or {})
    if name == "blosc":
        shuffles = {"noshuffle": 0, "shuffle": 1, "bitshuffle": 2}
        config["shuffle"] = shuffles.get(str(config.get("shuffle")), config.get("shuffle"))
    codec_id = name.removeprefix("numcodecs.")
    return {"id": codec_id, **with_dtype_field(codec_id, config, dtype)}


def _dimension_separator(chunk_key_encoding: Any) -> str:
    if chunk_key_encoding is None:
        return "."
    encoding = chunk_key_encoding_json(chunk_key_encoding)
    if encoding.get("name") != "v2":
        raise ValueError(
            f"Zarr v2 names chunks with the v2 key encoding, not {chunk_key_encoding!r}"
        )
    separator = (encoding.get("configuration") or {}).get("separator", ".")
    if separator not in (".", "/"):
        raise ValueError(f"invalid chunk key separator {separator!r}")
    return str(separator)


def v2_document(
    *,
    shape: tuple[int, ...],
    dtype: np.dtype[Any],
    dtype_json: JSON,
    object_codec: str | None,
    chunks: tuple[int, ...],
    filters: Any,
    compressors: Any,
    fill_value: JSON,
    order: str,
    chunk_key_encoding: Any,
    attributes: Mapping[str, JSON] | None,
    object_codec_given_by_codecs: bool = False,
) -> dict[str, JSON]:
    """A complete v2 `.zarray` document (with the attributes under `attributes`), with
    zarr-python's defaults: zstd level 0, no filters, "." separators. `object_codec` is the
    one the dtype asks for, or, with `object_codec_given_by_codecs` (the dtype was numpy's
    objects), the one to take unless the filters or compressor name another."""
    # numcodecs codecs are given the elements as stored, in the dtype's byte order, so that is
    # the dtype filled into their configurations.
    if not object_codec:
        dtype = np.dtype(v2_dtype(dtype_json))
    filter_list: list[dict[str, JSON]] = []
    if filters not in ("auto", None):
        # A codec's name is one codec, as in v3, not a sequence of one-letter names.
        single = isinstance(filters, str | Mapping) or not isinstance(filters, Iterable)
        filter_list = [to_numcodecs(f, dtype) for f in ([filters] if single else filters)]
        for at, given in enumerate(filter_list):
            if given.get("id") == "bitround":
                # It rounds what the filters before it give, not the array's own elements.
                received = _filtered_dtype(dtype, filter_list[:at])
                _check_numcodecs_bitround(received, "bitround", None, changed=received != dtype)
    if compressors == "auto":
        compressor: JSON = {"id": "zstd", "level": 0}
    elif compressors is None:
        compressor = None
    else:
        items = (
            [compressors]
            if isinstance(compressors, str | Mapping) or not isinstance(compressors, Iterable)
            else list(compressors)
        )
        if len(items) > 1:
            raise ValueError("Zarr v2 arrays take one compressor (put the others in filters)")
        compressor = to_numcodecs(items[0], dtype) if items else None
    if object_codec:
        filter_list = _with_object_codec(
            filter_list, compressor, object_codec, object_codec_given_by_codecs
        )
    return {
        "zarr_format": 2,
        "shape": list(shape),
        "chunks": list(chunks),
        "dtype": dtype_json,
        "compressor": compressor,
        "fill_value": fill_value,
        "order": order,
        "filters": filter_list or None,
        "dimension_separator": _dimension_separator(chunk_key_encoding),
        "attributes": dict(attributes or {}),
    }


_OBJECT_CODECS = ("vlen-utf8", "vlen-bytes")


def _with_object_codec(
    filters: list[dict[str, JSON]], compressor: JSON, wanted: str, given_by_codecs: bool
) -> list[dict[str, JSON]]:
    """The filters of a v2 array of variable-length elements: with the object codec that
    turns them into bytes first, unless the filters or the compressor hold it already (as
    zarr-python writes them: a second one made chunks neither library reads the same)."""
    given = [str(f["id"]) for f in filters if f.get("id") in _OBJECT_CODECS]
    if isinstance(compressor, Mapping) and compressor.get("id") in _OBJECT_CODECS:
        given.append(str(compressor["id"]))
    if not given:
        return [{"id": wanted}, *filters]
    if len(given) > 1:
        raise ValueError(f"variable-length elements take one object codec, not {given}")
    if given[0] != wanted and not given_by_codecs:
        kind = "text" if wanted == "vlen-utf8" else "bytes"
        raise ValueError(f"variable-length {kind} is stored with {wanted}, not {given[0]}")
    if filters and filters[0].get("id") not in _OBJECT_CODECS:
        raise ValueError(
            f"{given[0]} turns the elements into the bytes the other codecs take: it comes "
            f"first in the filters, not after {filters[0].get('id')}"
        )
    return filters


def array_metadata(
    *,
    shape: Sequence[int],
    dtype: np.dtype[Any],
    data_type: str,
    chunks: tuple[int, ...],
    codecs: list[JSON],
    fill_value: JSON,
    chunk_key_encoding: JSON,
    attributes: Mapping[str, JSON] | None,
    dimension_names: Iterable[str | None] | None,
) -> dict[str, JSON]:
    """A complete v3 zarr.json document for an array."""
    doc: dict[str, JSON] = {
        "shape": list(shape),
        "data_type": data_type,
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": list(chunks)}},
        "chunk_key_encoding": chunk_key_encoding,
        "fill_value": fill_value,
        "codecs": codecs,
        "attributes": dict(attributes or {}),
        "zarr_format": 3,
        "node_type": "array",
    }
    names = list(dimension_names) if dimension_names is not None else []
    # No names are left out, as zarr-python leaves them: an empty list (a 0-d array's, or
    # one given for any array) is written as no "dimension_names", as None is.
    if names:
        doc["dimension_names"] = names
    return doc
