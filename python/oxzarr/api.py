"""Creating and opening arrays and groups, with zarr-python's function names and defaults."""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from oxzarr import _core
from oxzarr._dtypes import (
    DEFAULT_FILL_VALUE,
    fill_value_json,
    packed,
    requested_dtype,
    zarr_data_type,
)
from oxzarr._metadata import (
    ARRAY_TO_BYTES,
    array_metadata,
    chunk_key_encoding_json,
    chunks_within,
    codec_chain,
    guess_chunks,
    legacy_chunks,
    normalize_chunks,
    normalize_shape,
    normalize_shards,
    shard_index_location,
    v2_document,
)
from oxzarr.array import Array, settings_from
from oxzarr.codecs import ShardingCodec
from oxzarr.config import config as _settings
from oxzarr.errors import (
    ArrayNotFoundError,
    ContainsArrayError,
    ContainsGroupError,
    GroupNotFoundError,
    NodeNotFoundError,
    NodeTypeValidationError,
)
from oxzarr.group import Group, wrap_node
from oxzarr.storage import (
    ZARR_PYTHON_ZIP,
    MemoryStore,
    Store,
    StoreLike,
    is_store_path,
    make_store,
)

#: The key of v2 consolidated metadata.
_ZMETADATA = ".zmetadata"

__all__ = [
    "array",
    "consolidate_metadata",
    "create_array",
    "create_group",
    "create_hierarchy",
    "empty",
    "empty_like",
    "from_array",
    "full",
    "full_like",
    "group",
    "ones",
    "ones_like",
    "open",
    "open_array",
    "open_consolidated",
    "open_group",
    "tree",
    "zeros",
    "zeros_like",
]

JSON = Any
AccessMode = Literal["r", "r+", "a", "w", "w-"]
_MODES = ("r", "r+", "a", "w", "w-", "x")


def _check_format(zarr_format: int | None) -> None:
    if zarr_format not in (None, 2, 3):
        raise ValueError(f"zarr_format must be 2 or 3, not {zarr_format!r}")


def _zarr_format(zarr_format: int | None, kwargs: dict[str, Any]) -> int | None:
    """`zarr_format`, or zarr-python's older name for it, ``zarr_version``, taken out of
    `kwargs` (with zarr-python's deprecation warning)."""
    version = kwargs.pop("zarr_version", None)
    if version is None:
        return zarr_format
    if zarr_format is not None and zarr_format != version:
        raise ValueError(f"zarr_format={zarr_format!r} and zarr_version={version!r} differ")
    warnings.warn("zarr_version is deprecated, use zarr_format", DeprecationWarning, stacklevel=3)
    return int(version)


def _no_other_keywords(function: str, kwargs: Mapping[str, Any], allowed: Iterable[str]) -> None:
    """Refuses keywords `function` does not take (a misspelt one would be dropped unseen),
    as Python refuses them; zarr-python 2's settings of its caches and locks are taken at
    any value, those of layers oxzarr has not when left unset."""
    for name, value in kwargs.items():
        if name in _CREATE_IGNORED:
            continue
        if name in _CREATE_UNSUPPORTED and value is None:
            continue
        if name == "meta_array":
            # It asks for results of its array type: oxzarr gives numpy arrays, so a numpy
            # one asks for what is given anyway.
            if isinstance(value, np.ndarray):
                continue
            raise TypeError(
                f"{function}() takes only a numpy array as meta_array (oxzarr gives numpy "
                f"arrays), not {type(value).__name__}"
            )
        if name == "chunk_store":
            raise TypeError(
                f"{function}() does not support chunk_store={value!r}: oxzarr keeps an "
                "array's chunks in its store=, beside its metadata"
            )
        if name not in allowed:
            raise TypeError(f"{function}() got an unexpected keyword argument {name!r}")


def _check_mode(mode: str) -> None:
    if mode not in _MODES:
        raise ValueError(f"invalid mode {mode!r}: expected one of {', '.join(_MODES)}")


def _store_for_mode(
    store: StoreLike, mode: AccessMode | None, storage_options: Mapping[str, Any] | None
) -> tuple[Store, AccessMode]:
    """The store to open a node in with `mode` (a read-only view for "r"), and the mode. No
    mode given is "a", or "r" for a read-only store object, as zarr-python reads it. A
    read-only store object given with a mode that may write ("a" too) is refused, as
    zarr-python refuses it, rather than failing at the first write; zarr-python's stores
    too, read-only as given or as oxzarr opens them (its ZipStore). (Stores read-only by
    nature, named by a URL or path, such as gs:// or an existing zip file, say why at the
    first write.)"""
    if mode is not None:
        _check_mode(mode)
    target = make_store(store, read_only=mode == "r", storage_options=storage_options)
    named = isinstance(store, str | os.PathLike)
    if mode is None:
        mode = "r" if target.read_only and not named else "a"
    if not named and target.read_only and mode != "r":
        raise ValueError(
            f"{target} is read-only but mode is {mode!r}: give a writable store, or mode 'r'"
            + (f" ({ZARR_PYTHON_ZIP})" if _is_zarr_python_zip(store) else "")
        )
    return target, mode


def _existing_node_mode(store: StoreLike) -> AccessMode:
    """How ``Group.open`` and ``Array.open`` open the node `store` holds, which must exist:
    read-only for a read-only store object, as zarr-python reads it; else for writing."""
    return "r" if getattr(store, "read_only", False) is True else "r+"


def _is_zarr_python_zip(store: Any) -> bool:
    kind = type(store)
    return kind.__name__ == "ZipStore" and kind.__module__.startswith("zarr.")


def _path(path: Any) -> str:
    """A node path as zarr-python takes it: text, a pathlib path or ASCII bytes, with '\\'
    read as '/'; no leading or trailing '/'."""
    if path is None:
        return ""
    if isinstance(path, bytes):
        path = path.decode("ascii")
    elif isinstance(path, os.PathLike):
        path = os.fspath(path)
    if not isinstance(path, str):
        raise TypeError(f"a node path is text, not {type(path).__name__}: {path!r}")
    return path.replace("\\", "/").strip("/")


def _store_and_path(store: Any, path: Any) -> tuple[Any, Any]:
    """`store` and the node path `path` in it, as zarr-python's functions take them: a
    zarr-python StorePath (a store and a node path in it) is its store, and `path` is below
    its node path; anything else is as given. (Opened as a store of its own, the keys below
    its node path, the node made there had the path '' and no parent groups above it, where
    zarr-python makes them.)"""
    if not is_store_path(store):
        return store, path
    above = _path(getattr(store, "path", ""))
    if not above:
        return store.store, path
    below = _path(path)
    return store.store, f"{above}/{below}" if below else above


def _format_or_default(zarr_format: int | None) -> int:
    """`zarr_format`, or the configured default (``default_zarr_format``, 3 unless set)."""
    if zarr_format is not None:
        return zarr_format
    return int(_settings.get("default_zarr_format"))


def _check_found_format(
    found: int, wanted: int | None, kind: str, path: str | None, target: Any
) -> None:
    """As zarr-python: asked for one format, a node of the other is not found."""
    if wanted is not None and found != wanted:
        error = ArrayNotFoundError if kind == "array" else GroupNotFoundError
        raise error(
            f"no Zarr v{wanted} {kind} at {_path(path) or '/'!r} in {target!r} "
            f"(there is a v{found} one)"
        )


def _open_v2_array(target: Store, path: str | None) -> _core.Array:
    """The v2 array at `path`. As in zarr-python, which reads a v2 array's ``.zarray`` only,
    a v2 group there is no array: an ArrayNotFoundError, not a NodeTypeValidationError (mode
    "a" then creates one, which the group refuses with a ContainsGroupError)."""
    try:
        return _core.Array.open(target._core, _path(path), 2)
    except NodeTypeValidationError:
        raise ArrayNotFoundError(
            f"no Zarr v2 array at {_path(path) or '/'!r} in {target!r} (there is a v2 group)"
        ) from None


def _refuse_existing(
    store: StoreLike, path: str | None, storage_options: Mapping[str, Any] | None = None
) -> None:
    """Mode "w-": a node, or any other value, already at `path` is a FileExistsError, as in
    zarr-python (chunks left there would read as the new node's data)."""
    target = make_store(store, read_only=True, storage_options=storage_options)
    try:
        _core.open_node(target._core, _path(path))
    except NodeNotFoundError:
        prefix = _path(path) + "/" if _path(path) else ""
        keys, prefixes = target.list_dir(prefix)
        if not keys and not prefixes:
            return
        raise FileExistsError(
            f"{_path(path) or '/'!r} in {target} already holds data (mode 'w-')"
        ) from None
    except ValueError:
        pass  # a node there whose metadata does not parse: there all the same
    raise FileExistsError(f"a node exists at {_path(path) or '/'!r} in {target} (mode 'w-')")


def create_array(
    store: StoreLike,
    *,
    name: str | None = None,
    shape: Any = None,
    dtype: npt.DTypeLike | None = None,
    data: npt.ArrayLike | None = None,
    chunks: Any = "auto",
    shards: Any = None,
    filters: Any = "auto",
    compressors: Any = "auto",
    serializer: Any = "auto",
    fill_value: Any = DEFAULT_FILL_VALUE,
    order: Literal["C", "F"] | None = None,
    zarr_format: int | None = 3,
    attributes: Mapping[str, JSON] | None = None,
    chunk_key_encoding: Any = None,
    dimension_names: Iterable[str | None] | None = None,
    storage_options: Mapping[str, Any] | None = None,
    overwrite: bool = False,
    config: Mapping[str, Any] | None = None,
    write_data: bool = True,
) -> Array:
    """Creates an array.

    As zarr-python's ``create_array``: ``chunks="auto"`` picks a chunk shape; with
    ``shards``, chunks are the inner chunks packed into each stored shard;
    ``compressors="auto"`` means zstd (``None``: no compression); the fill value is by default
    the data type's zero (NaT for times), and so is ``fill_value=None`` in v3, while in v2
    it is stored as ``null`` (no fill value). Codecs are oxzarr.codecs objects, their JSON
    metadata, or zarr-python codecs. With ``data``, its shape and dtype are the defaults and
    it is written.
    """
    store, name = _store_and_path(store, name)
    _check_format(zarr_format)
    if order not in (None, "C", "F"):
        raise ValueError(f"order must be 'C' or 'F', not {order!r}")
    if isinstance(compressors, str) and compressors == "default":
        # zarr-python 2's default of create(compressor=), which zarr-python 3 refuses; read as
        # a codec's name, it would be refused as an unknown codec, which hides the way out.
        raise ValueError(
            "compressor 'default' is zarr-python 2's name for its default compressor, which "
            "zarr-python 3 does not take: give 'auto' for the default compressor (zstd), or "
            "None for none"
        )
    settings = settings_from(config, strict=False)
    source = None
    if data is not None:
        source = np.asarray(data)
        shape = source.shape if shape is None else shape
        if dtype is None:
            _refuse_objects_not_text(source)
        dtype = source.dtype if dtype is None else dtype
    if shape is None:
        raise ValueError("create_array() needs a shape (or data)")
    shape_t = normalize_shape(shape)
    fmt = _format_or_default(zarr_format)
    if dimension_names is not None:
        dimension_names = list(dimension_names)
        if not all(n is None or isinstance(n, str) for n in dimension_names):
            # A TypeError, as zarr-python's (the metadata would be refused as invalid).
            raise TypeError(f"dimension_names must be strings or None, not {dimension_names!r}")
    dtype = requested_dtype(dtype if dtype is not None else "float64")
    np_dtype, data_type, object_codec = zarr_data_type(dtype, fmt)
    if fmt == 2:
        if shards is not None:
            raise ValueError("sharding is a Zarr v3 feature: zarr_format=2 takes no shards")
        if serializer not in ("auto", None):
            # A byte order or sharding asked for would be dropped without a word.
            raise ValueError(
                "Zarr format 2 arrays take no serializer (the dtype gives the byte order)"
            )
        if dimension_names is not None:
            raise ValueError(
                "dimension_names are not part of Zarr v2 (xarray keeps them in the "
                "'_ARRAY_DIMENSIONS' attribute)"
            )
        doc = v2_document(
            shape=shape_t,
            dtype=np_dtype,
            dtype_json=data_type,
            object_codec=object_codec,
            # numpy's objects may be text or bytes: the codecs given say which.
            object_codec_given_by_codecs=_is_numpy_object(dtype),
            chunks=normalize_chunks(chunks, shape_t, _item_size(np_dtype, object_codec)),
            filters=filters,
            compressors=compressors,
            # base64 holds a record as stored: its fields in the byte order the dtype gives
            # them, not the machine's order values are decoded into.
            fill_value=fill_value_json(
                fill_value, packed(np.dtype(dtype)) if np_dtype.fields else np_dtype, 2
            ),
            order=order or str(_settings.get("order")),
            chunk_key_encoding=chunk_key_encoding,
            attributes=attributes,
        )
    else:
        itemsize = _item_size(np_dtype, object_codec)
        if object_codec and serializer == "auto":
            serializer = {"name": object_codec}
        codecs = codec_chain(np_dtype, filters, serializer, compressors)
        if shards is None:
            grid_shape = chunk_shape = normalize_chunks(chunks, shape_t, itemsize)
        else:
            # The grid's chunks are the shards; the chunks given are their inner chunks.
            if isinstance(shards, str) and shards == "auto":
                # As zarr-python: chunks guessed for at most 1 MiB, and shards of two chunks
                # along each axis that holds more than eight, of one chunk along the others.
                # (zarr-python's array.target_shard_size_bytes is not followed.)
                if chunks is None or chunks == "auto" or chunks is True:
                    chunk_shape = guess_chunks(shape_t, itemsize, max_bytes=2**20)
                else:
                    chunk_shape = normalize_chunks(chunks, shape_t, itemsize)
                shards = tuple(
                    2 * c if n // c > 8 else c for n, c in zip(shape_t, chunk_shape, strict=True)
                )
            elif chunks is None or chunks == "auto" or chunks is True:
                shard_guess = normalize_shards(shards, shape_t, (1,) * len(shape_t))
                chunk_shape = chunks_within(shard_guess, itemsize)
            else:
                chunk_shape = normalize_chunks(chunks, shape_t, itemsize)
            grid_shape = normalize_shards(shards, shape_t, chunk_shape)
            codecs = [
                ShardingCodec(
                    chunk_shape=chunk_shape,
                    codecs=codecs,
                    index_location=shard_index_location(shards),
                )
                ._for_dtype(np_dtype)
                .to_dict()
            ]
        doc = array_metadata(
            shape=shape_t,
            dtype=np_dtype,
            data_type=data_type,
            chunks=grid_shape,
            codecs=codecs,
            fill_value=fill_value_json(fill_value, np_dtype, 3),
            chunk_key_encoding=chunk_key_encoding_json(chunk_key_encoding),
            attributes=attributes,
            dimension_names=dimension_names,
        )
    target = make_store(store, storage_options=storage_options)
    document = json.dumps(doc)
    if source is not None and write_data:
        # The values readied for the new array before anything is written: data it cannot
        # hold (another shape, values its dtype refuses) is refused with the store as it was,
        # where overwrite=True had deleted the old array and left an empty one.
        scratch = MemoryStore()
        probe = _core.Array.create(scratch._core, "", document, False)
        # Python values (a list) as assigned, so that 300 into uint8 fails as in numpy and
        # zarr-python, not wrapped as the int64 array np.asarray made of them.
        given = data if isinstance(data, list | tuple) else source
        source = _configured(probe, scratch, settings)._whole(given)
    core = _core.Array.create(target._core, _path(name), document, overwrite)
    arr = _configured(core, target, settings)
    if source is not None and write_data:
        arr[...] = source
    return arr


def _is_numpy_object(dtype: Any) -> bool:
    try:
        return bool(np.dtype(dtype).kind == "O")
    except TypeError:
        return False


def _item_size(np_dtype: np.dtype[Any], object_codec: str | None) -> int:
    """The element size that automatic chunk shapes are guessed for: zarr-python's, the
    data type's size, and 1 for variable-length elements."""
    return 1 if object_codec else np_dtype.itemsize


def open_array(
    store: StoreLike = None,
    *,
    mode: AccessMode | None = None,
    path: str | None = None,
    zarr_format: int | None = None,
    storage_options: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> Array:
    """Opens an array. ``mode``: "r" read-only, "r+" read/write (must exist), "a" read/write
    (created from ``kwargs`` if missing), "w" create (replacing), "w-" create (fail if
    present); none given, "r+" ("r" for a read-only store object): an existing array opens
    for writing and a missing one is an ArrayNotFoundError, whatever ``kwargs`` say."""
    zarr_format = _zarr_format(zarr_format, kwargs)
    _check_format(zarr_format)
    store, path = _store_and_path(store, path)
    given = mode
    target, mode = _store_for_mode(store, mode, storage_options)
    if given is None and mode == "a":
        # zarr-python's open_array creates only in the modes "a", "w" and "w-": with none
        # given, shape= and dtype= describe the array expected, and a missing one is an
        # error rather than a new empty array.
        mode = "r+"
    if mode in ("w-", "x"):
        _refuse_existing(target, path)
    if mode in ("w", "w-", "x"):
        return _create_for_open(target, path, mode == "w", zarr_format, kwargs)

    def opened() -> _core.Array:
        # Asked for one format, only its documents are looked at (both can lie at one path).
        if zarr_format == 2:
            return _open_v2_array(target, path)
        return _core.Array.open(target._core, _path(path), zarr_format)

    try:
        core = opened()
    except ArrayNotFoundError:
        if mode != "a" or "shape" not in kwargs:
            raise
        try:
            return _create_for_open(target, path, False, zarr_format, kwargs)
        except ContainsArrayError as blocked:
            # Created by another writer since it was looked for: opened, as it would have
            # been a moment later. (Nothing there: an array above it blocks the way.)
            try:
                core = opened()
            except ArrayNotFoundError:
                raise blocked from None
    return _configured(core, target, settings_from(kwargs.get("config"), strict=False))


# Keywords of create() (zarr-python's older form) that create_array() does not take.
_CREATE_ONLY = ("compressor", "dimension_separator", "codecs", "chunk_shape", "object_codec")


def _create_for_open(
    target: Store, path: str | None, overwrite: bool, zarr_format: int | None, kwargs: Any
) -> Array:
    """The array open() and open_array() create. zarr-python hands their keywords to the
    older create(), so code written for it passes ``compressor=`` or
    ``dimension_separator=``: those go to create(), the rest to create_array()."""
    if any(k in kwargs for k in _CREATE_ONLY):
        return create(
            store=target, path=path, overwrite=overwrite, zarr_format=zarr_format, **kwargs
        )
    kwargs = _older_settings_settled("open_array", kwargs)
    if "chunks" in kwargs and "shape" in kwargs:
        kwargs = {**kwargs, "chunks": legacy_chunks(kwargs["chunks"], kwargs["shape"])}
    return create_array(target, name=path, overwrite=overwrite, zarr_format=zarr_format, **kwargs)


def _configured(core: _core.Array, target: Store, settings: Mapping[str, Any]) -> Array:
    """The array `core` with the settings of a ``config`` argument (checked by
    `settings_from`); those it leaves out follow ``oxzarr.config``."""
    return Array(
        core,
        target,
        write_empty_chunks=settings.get("write_empty_chunks"),
        order=settings.get("order"),
    )


def create_group(
    store: StoreLike,
    *,
    path: str | None = None,
    zarr_format: int | None = None,
    overwrite: bool = False,
    attributes: Mapping[str, JSON] | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> Group:
    """Creates a group (and any missing parent groups), Zarr v3 unless ``zarr_format=2``."""
    _check_format(zarr_format)
    store, path = _store_and_path(store, path)
    target = make_store(store, storage_options=storage_options)
    core = _core.Group.create(
        target._core,
        _path(path),
        json.dumps(dict(attributes or {})),
        overwrite,
        _format_or_default(zarr_format),
    )
    return Group(core, target)


def open_group(
    store: StoreLike = None,
    *,
    mode: AccessMode | None = None,
    path: str | None = None,
    attributes: Mapping[str, JSON] | None = None,
    zarr_format: int | None = None,
    storage_options: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> Group:
    """Opens a group; modes as in :func:`open_array` ("a" creates a missing group), but none
    given is "a" ("r" for a read-only store object), zarr-python's default here."""
    zarr_format = _zarr_format(zarr_format, kwargs)
    _no_other_keywords("open_group", kwargs, ("use_consolidated",))
    _check_format(zarr_format)
    store, path = _store_and_path(store, path)
    target, mode = _store_for_mode(store, mode, storage_options)
    return _open_group_in(
        target, mode, path, attributes, zarr_format, kwargs.get("use_consolidated")
    )


def _open_group_in(
    target: Store,
    mode: AccessMode,
    path: str | None,
    attributes: Mapping[str, JSON] | None,
    zarr_format: int | None,
    use_consolidated: bool | str | None,
) -> Group:
    """open_group in a store `_store_for_mode` has made and checked with `mode` (which needs
    whether the store was named: a store object would be checked again as given)."""
    if isinstance(use_consolidated, str):
        # zarr-python's way to name the key of v2 consolidated metadata. Only its default is
        # read (and written): another key would be read as `.zmetadata`, perhaps stale.
        if zarr_format == 3:
            raise TypeError("use_consolidated must be a bool or None for Zarr format 3")
        if use_consolidated != _ZMETADATA:
            raise ValueError(
                f"use_consolidated={use_consolidated!r}: oxzarr reads v2 consolidated "
                f"metadata under {_ZMETADATA!r} only"
            )
        use_consolidated = True
    if mode in ("w-", "x"):
        _refuse_existing(target, path)
    if mode in ("w", "w-", "x"):
        return create_group(
            target, path=path, overwrite=mode == "w", attributes=attributes, zarr_format=zarr_format
        )
    try:
        return _open_existing_group(target, mode, path, attributes, zarr_format, use_consolidated)
    except ContainsArrayError:
        if zarr_format != 2 or mode == "a":
            raise
        # As in zarr-python, which reads a v2 group's .zgroup only: a v2 array there is no
        # group (mode "a" is refused all the same, as a group cannot be made there).
        raise GroupNotFoundError(
            f"no Zarr v2 group at {_path(path) or '/'!r} in {target!r} (there is a v2 array)"
        ) from None


def _open_existing_group(
    target: Store,
    mode: AccessMode,
    path: str | None,
    attributes: Mapping[str, JSON] | None,
    zarr_format: int | None,
    use_consolidated: bool | None,
) -> Group:
    """The group at `path` (mode "r", "r+" or "a", which creates a missing one)."""
    # Consolidated metadata asked for and not found: raised if there is a group there (mode
    # "a" creates a missing one, as in zarr-python).
    missing: NodeNotFoundError | None = None
    if use_consolidated:
        try:
            core = _core.Group.open_consolidated(target._core, _path(path), zarr_format)
            return Group(core, target)
        except NodeNotFoundError as e:
            if mode != "a":
                raise
            missing = e
    # As zarr-python: consolidated metadata is used when present, unless declined (or
    # found missing above). Left to choose, one open reads the group's document for both.
    opener = _core.Group.open_maybe_consolidated if use_consolidated is None else _core.Group.open
    try:
        core = opener(target._core, _path(path), zarr_format)
    except GroupNotFoundError:
        if mode == "a":
            return create_group(target, path=path, attributes=attributes, zarr_format=zarr_format)
        raise
    if missing is not None:
        raise missing
    _check_found_format(core.zarr_format, zarr_format, "group", path, target)
    return Group(core, target)


def _refuse_objects_not_text(source: np.ndarray[Any, Any]) -> None:
    """Numpy objects given as data with no dtype are text when they are all strings; anything
    else (None, a dict, a generator numpy made a 0-d array of, bytes) would be stored as the
    text of each, so it is refused, as zarr-python refuses objects (all of them)."""
    if source.dtype != object:
        return
    all_text = object()
    other = next((x for x in source.flat if not isinstance(x, str)), all_text)
    if other is all_text:
        return
    raise ValueError(
        f"cannot tell the data type of numpy objects holding {type(other).__name__} (only "
        "strings are read as text): give dtype= (e.g. bytes for variable-length bytes)"
    )


def _is_group_metadata(metadata: Any) -> bool:
    return type(metadata).__name__ == "GroupMetadata"


def _complete_hierarchy(nodes: Mapping[str, Any]) -> dict[str, Any]:
    """`nodes` by normalized path, with the groups above them that are not named (as None);
    as zarr-python, every node must be of one Zarr format, and only groups hold others."""
    parsed = {_path(key): metadata for key, metadata in nodes.items()}
    formats = {metadata.zarr_format for metadata in parsed.values()}
    if len(formats) > 1:
        raise ValueError(
            f"the nodes of a hierarchy must all be of one Zarr format, not {sorted(formats)}"
        )
    complete: dict[str, Any] = dict(parsed)
    for path in parsed:
        if path == "":
            continue
        parts = path.split("/")
        for parent in ["", *("/".join(parts[:n]) for n in range(1, len(parts)))]:
            if parent not in complete:
                complete[parent] = None
            elif complete[parent] is not None and not _is_group_metadata(complete[parent]):
                raise ValueError(
                    f"the node at {parent!r} contains other nodes, but it is not a group: "
                    "only groups can contain other nodes"
                )
    return complete


def create_hierarchy(
    *, store: StoreLike, nodes: Mapping[str, Any], overwrite: bool = False
) -> Iterator[tuple[str, Array | Group]]:
    """Creates the groups and arrays that zarr-python's metadata objects (``GroupMetadata``,
    ``ArrayV3Metadata``, ``ArrayV2Metadata``) describe, keyed by path, and the groups above
    them that are missing; yields each node created, by its path, as zarr-python does (and,
    as there, nothing happens until the result is iterated).

    A node already at a named path is a ``ContainsArrayError``/``ContainsGroupError``, unless
    ``overwrite`` (then it is removed first, with all it holds); an existing group above them
    is kept as it is. Node names are checked as :func:`create_group` checks them (a
    ``ValueError``). A refused hierarchy writes and removes nothing. The metadata documents
    are zarr-python's own serialization."""
    target = make_store(store)
    complete = _complete_hierarchy(nodes)
    if not complete:
        return
    from zarr.core.buffer import default_buffer_prototype
    from zarr.core.group import GroupMetadata

    zarr_format = next(m for m in complete.values() if m is not None).zarr_format
    # Names are checked as every other way of creating a node checks them, before anything
    # is written: a node named "x/zarr.json" failed only once x's document was written.
    for path in complete:
        _core.check_new_node_path(path, zarr_format)
    # Every node is looked at before any is replaced or written, so that a refused hierarchy
    # leaves the store as it was: ancestors first, as the nodes below one replaced are gone
    # once it is.
    decided: dict[str, Any] = {}
    replaced: list[str] = []
    for path in sorted(complete, key=lambda p: (p != "", p.count("/"))):
        metadata = complete[path]
        new = GroupMetadata(zarr_format=zarr_format) if metadata is None else metadata
        if any(r == "" or path.startswith(f"{r}/") for r in replaced):
            decided[path] = new
            continue
        try:
            existing = _core.open_node(target._core, path)
        except NodeNotFoundError:
            decided[path] = new
            continue
        if metadata is None and isinstance(existing, _core.Group):
            continue  # a group above the named nodes, there already
        if overwrite and metadata is not None:
            replaced.append(path)
            decided[path] = metadata
        elif isinstance(existing, _core.Array):
            raise ContainsArrayError(f"an array exists at {path or '/'!r} in {target}")
        else:
            raise ContainsGroupError(f"a group exists at {path or '/'!r} in {target}")
    for path in replaced:
        target._core.delete_prefix(f"{path}/" if path else "")
    to_write = {path: decided[path] for path in complete if path in decided}
    prototype = default_buffer_prototype()
    for path, metadata in to_write.items():
        for key, document in metadata.to_buffer_dict(prototype).items():
            target.set(f"{path}/{key}" if path else key, document.to_bytes())
    for path in to_write:
        yield path, wrap_node(_core.open_node(target._core, path), target)


def consolidate_metadata(
    store: StoreLike, path: str | None = None, zarr_format: int | None = None
) -> Group:
    """Gathers the metadata of every node below the group at `path` into one document
    (v2: ``.zmetadata``; v3: inline in the group's ``zarr.json``), so that opening the
    hierarchy costs one read. Returns the group opened through it."""
    _check_format(zarr_format)
    store, path = _store_and_path(store, path)
    target = make_store(store)
    # As zarr-python: given a format, a group of the other is not found.
    group = _core.Group.open(target._core, _path(path), zarr_format)
    return Group(group.consolidate(), target)


def open_consolidated(
    store: StoreLike,
    *,
    mode: AccessMode | None = None,
    path: str | None = None,
    storage_options: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> Group:
    """Opens a group through its consolidated metadata: opening its members then reads
    nothing more from the store. An error if it has none. Modes as in :func:`open_group`
    ("w" starts an empty group)."""
    kwargs.setdefault("use_consolidated", True)
    return open_group(store, mode=mode, path=path, storage_options=storage_options, **kwargs)


def tree(grp: Group, expand: bool | None = None, level: int | None = None) -> str:
    """The hierarchy below the group `grp`, drawn as text (see :meth:`Group.tree`); the
    arguments are zarr-python's ``zarr.tree(grp, expand=None, level=None)``."""
    return grp.tree(expand=expand, level=level)


def group(
    store: StoreLike = None,
    *,
    overwrite: bool = False,
    path: str | None = None,
    attributes: Mapping[str, JSON] | None = None,
    zarr_format: int | None = None,
    storage_options: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> Group:
    """Opens or creates a group (replacing it if ``overwrite``)."""
    zarr_format = _zarr_format(zarr_format, kwargs)
    _no_other_keywords("group", kwargs, ())
    return open_group(
        store,
        mode="w" if overwrite else "a",
        path=path,
        attributes=attributes,
        zarr_format=zarr_format,
        storage_options=storage_options,
    )


def open(
    store: StoreLike = None,
    *,
    mode: AccessMode | None = None,
    path: str | None = None,
    zarr_format: int | None = None,
    storage_options: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> Array | Group:
    """Opens the array or group the store holds at ``path``. If there is none, mode "a" (the
    default; "r" for a read-only store object) creates an array when ``shape`` is given,
    else a group."""
    zarr_format = _zarr_format(zarr_format, kwargs)
    _check_format(zarr_format)
    fmt = zarr_format
    store, path = _store_and_path(store, path)
    target, mode = _store_for_mode(store, mode, storage_options)

    def as_group() -> None:
        # Where a group is opened or made, a group's keywords only (as zarr-python's open
        # hands them to open_group); an existing array takes an array's.
        _no_other_keywords("open", kwargs, ("attributes", "use_consolidated"))

    if mode in ("w", "w-", "x"):
        if "shape" in kwargs:
            return open_array(target, mode=mode, path=path, zarr_format=fmt, **kwargs)
        as_group()
        return _open_group_in(target, mode, path, kwargs.get("attributes"), fmt, None)
    use_consolidated = kwargs.get("use_consolidated")
    try:
        # A group is opened here as open_group would open it (through its consolidated
        # metadata when it has some, unless declined), so its document is read once.
        node = _core.open_node(
            target._core, _path(path), zarr_format, group_consolidated=use_consolidated is None
        )
    except NodeNotFoundError:
        if mode != "a":
            raise
        if "shape" in kwargs:
            return _create_for_open(target, path, False, fmt, kwargs)
        as_group()
        return create_group(target, path=path, attributes=kwargs.get("attributes"), zarr_format=fmt)
    if isinstance(node, _core.Group):
        if "shape" in kwargs:
            # An array asked for finds a group (zarr-python refuses it too, with a TypeError).
            raise ContainsGroupError(
                f"a group exists at {_path(path) or '/'!r} in {target}: open() with shape= "
                "opens or creates an array"
            )
        as_group()
        if use_consolidated is None or use_consolidated is False:
            _check_found_format(node.zarr_format, zarr_format, "group", path, target)
            return Group(node, target)
        # Consolidated metadata asked for: refused if the group has none.
        return _open_group_in(target, mode, path, None, zarr_format, use_consolidated)
    _check_found_format(node.zarr_format, zarr_format, "array", path, target)
    return _configured(node, target, settings_from(kwargs.get("config"), strict=False))


def _overwrite_for(
    mode: AccessMode | None, store: StoreLike, path: str | None, kwargs: dict[str, Any]
) -> Store:
    """The store to create in (made once, with the ``storage_options`` in `kwargs`), and
    ``overwrite`` set from a creation function's ``mode`` (zarr-python 2's way to ask for
    one): "w" replaces what is there, "w-" refuses a node there (FileExistsError), the
    others create where there is none."""
    target = make_store(store, storage_options=kwargs.pop("storage_options", None))
    if mode is None:
        return target
    _check_mode(mode)
    if mode == "r":
        raise ValueError("cannot create an array with mode='r' (read-only)")
    if mode in ("w-", "x"):
        _refuse_existing(target, path)
    if mode == "w":
        kwargs.setdefault("overwrite", True)
    return target


def _create_filled(
    shape: Any,
    fill_value: Any,
    *,
    store: StoreLike = None,
    path: str | None = None,
    name: str | None = None,
    dtype: npt.DTypeLike | None = None,
    mode: AccessMode | None = None,
    **kwargs: Any,
) -> Array:
    name = name if name is not None else path
    store, name = _store_and_path(store, name)
    target = _overwrite_for(mode, store, name, kwargs)
    # Unlike create_array, these follow the configured default_zarr_format, and take
    # zarr-python 2's forms of chunks.
    kwargs.setdefault("zarr_format", None)
    if "chunks" in kwargs:
        kwargs["chunks"] = legacy_chunks(kwargs["chunks"], shape)
    kwargs.update(
        shape=shape, dtype=dtype if dtype is not None else "float64", fill_value=fill_value
    )
    older = _created_the_older_way(target, name, kwargs)
    if older is not None:
        return older
    return create_array(target, name=name, **_older_settings_settled("create_array", kwargs))


def _older_settings_settled(function: str, given: Mapping[str, Any]) -> dict[str, Any]:
    """`given` with zarr-python 2's settings create_array has in other forms in those forms:
    ``write_empty_chunks=`` in ``config``; those of zarr-python 2's caches and locks
    (``cache_attrs=``, ``synchronizer=``, ...) dropped, and those of layers oxzarr has not
    (``chunk_store=``) when left unset, refused otherwise (as create() does)."""
    kwargs: dict[str, Any] = dict(given)
    if "write_empty_chunks" in kwargs:
        write_empty = kwargs.pop("write_empty_chunks")
        if write_empty is not None:
            kwargs["config"] = {**(kwargs.get("config") or {}), "write_empty_chunks": write_empty}
    ignored = {k: kwargs.pop(k) for k in (*_CREATE_IGNORED, *_CREATE_UNSUPPORTED) if k in kwargs}
    _no_other_keywords(function, ignored, ())
    return kwargs


def _created_the_older_way(target: Store, name: str | None, kwargs: Any) -> Array | None:
    """The array made by create() when `kwargs` hold settings only it takes (zarr-python 2's
    ``compressor=``, ``dimension_separator=``, ...): zarr-python's zeros, full, array, the
    *_like functions and open_array hand their keywords to its create(), so code written for
    zarr-python 2 passes them. None otherwise (see `_older_settings_settled` for the
    others)."""
    if not any(k in kwargs for k in _CREATE_ONLY):
        return None
    kwargs = dict(kwargs)
    data = kwargs.pop("data", None)
    values = None if data is None else np.asarray(data)
    if values is not None:
        kwargs.setdefault("shape", values.shape)
        kwargs.setdefault("dtype", values.dtype)
    array = create(kwargs.pop("shape"), store=target, path=name, **kwargs)
    if values is not None:
        array[...] = values
    return array


def zeros(shape: Any, **kwargs: Any) -> Array:
    """An array of zeros (stores nothing until written)."""
    return _create_filled(shape, 0, **kwargs)


def ones(shape: Any, **kwargs: Any) -> Array:
    """An array of ones (stores nothing until written)."""
    return _create_filled(shape, 1, **kwargs)


def full(shape: Any, fill_value: Any, **kwargs: Any) -> Array:
    """An array filled with `fill_value` (stores nothing until written)."""
    return _create_filled(shape, fill_value, **kwargs)


def empty(shape: Any, **kwargs: Any) -> Array:
    """An array whose values are left unset (they read as the fill value, zero by default)."""
    return _create_filled(shape, kwargs.pop("fill_value", DEFAULT_FILL_VALUE), **kwargs)


def array(data: npt.ArrayLike, **kwargs: Any) -> Array:
    """An array holding a copy of `data` (in memory unless ``store=`` is given); from an
    Array (oxzarr's or zarr-python's), with its settings (see :func:`from_array`)."""
    store = kwargs.pop("store", None)
    # A zarr-python array gives its settings as an oxzarr one does, as zarr-python's own
    # array() takes them from it.
    if isinstance(data, Array) or _is_zarr_python_array(data):
        name = kwargs.pop("name", kwargs.pop("path", None))
        store, name = _store_and_path(store, name)
        target = _overwrite_for(kwargs.pop("mode", None), store, name, kwargs)
        return from_array(target, data=data, name=name, **kwargs)
    name = kwargs.pop("name", kwargs.pop("path", None))
    store, name = _store_and_path(store, name)
    target = _overwrite_for(kwargs.pop("mode", None), store, name, kwargs)
    kwargs.setdefault("zarr_format", None)
    older = _created_the_older_way(target, name, {**kwargs, "data": data})
    if older is not None:
        return older
    kwargs = _older_settings_settled("array", kwargs)
    return create_array(target, name=name, data=np.asarray(data), **kwargs)


def _holds(store: StoreLike, name: str | None, array: Array) -> bool:
    """Whether the node `name` of `store` is `array` or a group holding it (or held by it).
    Local paths are compared resolved, as convert compares them: "sub/../a.zarr" or a path
    through a symbolic link is the same directory, which the copy would empty before
    reading it."""
    from oxzarr.convert import _overlap, _store_location

    if store is None:
        return False
    try:
        here = _store_location(make_store(store), _path(name))
    except (TypeError, ValueError, OSError):
        return False
    return _overlap(here, _store_location(array.store, array.path))


def from_array(
    store: StoreLike,
    *,
    data: Array | npt.ArrayLike,
    name: str | None = None,
    chunks: Any = "keep",
    compressors: Any = "keep",
    filters: Any = "keep",
    serializer: Any = "keep",
    fill_value: Any = DEFAULT_FILL_VALUE,
    write_data: bool = True,
    **kwargs: Any,
) -> Array:
    """A new array with the contents of `data`. From an Array, its settings are kept
    unless given, as in zarr-python: chunks, shards and codecs ("keep"), fill value, format,
    chunk key encoding (same format) and dimension names; not its attributes."""
    data = _settings_source(data)
    _format_none_is_unset(kwargs)
    # shards="keep" (zarr-python's default) is as not given: the source's shards, if any.
    if _is_keep(kwargs.get("shards")):
        del kwargs["shards"]
    if isinstance(data, Array):
        kwargs.setdefault("zarr_format", data.zarr_format)
        same_format = kwargs["zarr_format"] == data.zarr_format
        # Codecs mean the same only within a format (v2's are numcodecs configurations).
        keep_codecs = same_format
        chunks = data.chunks if chunks == "keep" else chunks
        if "shards" not in kwargs and data.shards is not None and kwargs["zarr_format"] == 3:
            kwargs["shards"] = data.shards
        compressors = _keep(compressors, list(data.compressors) or None, keep_codecs)
        filters = _keep(filters, list(data.filters) or None, keep_codecs)
        serializer = _keep(serializer, data.serializer, keep_codecs and data.zarr_format == 3)
        if fill_value is DEFAULT_FILL_VALUE or fill_value is None:
            # As zarr-python; a v2 source without one gives the default.
            fill_value = DEFAULT_FILL_VALUE if data.fill_value is None else data.fill_value
        if same_format:
            kwargs.setdefault("chunk_key_encoding", chunk_key_encoding_of(data))
            if data.zarr_format == 2:
                kwargs.setdefault("order", data.order)
        if kwargs["zarr_format"] == 3:
            kwargs.setdefault("dimension_names", data.metadata.to_dict().get("dimension_names"))
        # Variable-length bytes are numpy objects, which create_array reads as text: named.
        vlen_bytes = json.loads(data._core.numpy_dtype) == "bytes"
        kwargs.setdefault("dtype", bytes if vlen_bytes else data.dtype)
    else:
        if _is_zarr_python_array(data):
            # Its format, grid and fill value; its codecs are zarr-python's objects.
            theirs: Any = data
            kwargs.setdefault("zarr_format", theirs.metadata.zarr_format)
            chunks = theirs.chunks if chunks == "keep" else chunks
            if "shards" not in kwargs and kwargs["zarr_format"] == 3:
                kwargs["shards"] = theirs.shards
            if fill_value is DEFAULT_FILL_VALUE or fill_value is None:
                kept = theirs.fill_value
                fill_value = DEFAULT_FILL_VALUE if kept is None else kept
            # Its data type object says text or bytes where numpy's objects do not.
            metadata = theirs.metadata
            kwargs.setdefault("dtype", getattr(metadata, "data_type", None) or metadata.dtype)
        chunks = "auto" if chunks == "keep" else chunks
        compressors = "auto" if compressors == "keep" else compressors
        filters = "auto" if filters == "keep" else filters
        serializer = "auto" if serializer == "keep" else serializer
    overwritten = kwargs.get("overwrite") and isinstance(data, Array) and _holds(store, name, data)
    if (isinstance(data, Array) or _is_zarr_python_array(data)) and not overwritten:
        # Made empty, then filled block by block from the source (only the blocks holding its
        # stored chunks, where nothing else needs writing), as zarr-python copies an array
        # chunk by chunk. Read whole first, an array larger than memory could not be copied,
        # nor even its metadata alone (write_data=False). (A destination that overwrites the
        # source, or a group holding it, would delete it before it is read: that source is
        # read whole first, below, as zarr-python does not, where the copy reads nothing.)
        array_source: Any = data
        kwargs.setdefault("shape", array_source.shape)
        copy = create_array(
            store,
            name=name,
            chunks=chunks,
            compressors=compressors,
            filters=filters,
            serializer=serializer,
            fill_value=fill_value,
            **kwargs,
        )
        if write_data:
            from oxzarr.convert import copy_values

            copy_values(array_source, copy)
        return copy
    return create_array(
        store,
        name=name,
        data=np.asarray(data),
        chunks=chunks,
        compressors=compressors,
        filters=filters,
        serializer=serializer,
        fill_value=fill_value,
        write_data=write_data,
        **kwargs,
    )


def _format_none_is_unset(kwargs: dict[str, Any]) -> None:
    """Drops ``zarr_format=None`` from `kwargs`: for a copy of an array (from_array, the
    *_like functions) None means the source's format, as zarr-python reads it, so it must
    not override the source's format nor make codecs, shards and dimension names look
    meant for another format."""
    if "zarr_format" in kwargs and kwargs["zarr_format"] is None:
        del kwargs["zarr_format"]


def chunk_key_encoding_of(array: Array) -> JSON:
    """The chunk key encoding of `array`, as create_array takes it (v2: its dimension
    separator as the "v2" encoding): what a copy in the same format keeps."""
    doc = array.metadata.to_dict()
    if array.zarr_format == 2:
        return {"name": "v2", "configuration": {"separator": doc.get("dimension_separator") or "."}}
    return doc.get("chunk_key_encoding")


def _is_keep(given: Any) -> bool:
    """Whether an argument of :func:`from_array` is "keep" (checked as text first: a
    sequence of integers compared with it would be compared element by element)."""
    return isinstance(given, str) and given == "keep"


def _keep(given: Any, kept: Any, keep: bool) -> Any:
    """A codec argument of :func:`from_array`: the source's where "keep" applies."""
    if _is_keep(given):
        return kept if keep else "auto"
    return given


def _is_zarr_python_array(a: Any) -> bool:
    return type(a).__module__.startswith("zarr.") and type(a).__name__ == "Array"


def _settings_source(a: Any) -> Any:
    """`a`, or for a zarr-python array, the same array opened by oxzarr when its store can be
    (see :func:`oxzarr.storage.make_store`), so that its settings are taken as an oxzarr
    array's are (format, fill value, codecs ...) and its values read by the engine."""
    if not _is_zarr_python_array(a):
        return a
    try:
        return open_array(a.store, path=a.path, mode="r")
    except (TypeError, ValueError, OSError, KeyError):
        # A store oxzarr cannot share (zarr-python's MemoryStore): read through zarr-python.
        return a


def _fill_value_of(a: Any) -> Any:
    """The fill value of `a` if it is an array with one (oxzarr's or zarr-python's)."""
    if isinstance(a, Array) or _is_zarr_python_array(a):
        return a.fill_value
    return None


def _like(a: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    """create_array's arguments taken from `a` (an Array or any array-like), unless given:
    from an Array, its chunks, shards, format and codecs (and a v2 array's order), as
    zarr-python's ``*_like`` functions take them."""
    a = _settings_source(a)
    _format_none_is_unset(kwargs)
    # A list or scalar has no dtype: numpy's *_like take the one it would be made into.
    dtype = a.dtype if hasattr(a, "dtype") else np.asarray(a).dtype
    if isinstance(a, np.ndarray) and kwargs.get("dtype") is None:
        # Numpy objects are text only when they are all strings, as `array` takes them.
        _refuse_objects_not_text(a)
    like: dict[str, Any] = {"shape": np.shape(a), "dtype": dtype}
    if _is_zarr_python_array(a):
        # Its format and grid; its codecs are zarr-python's objects.
        like.update(chunks=a.chunks, zarr_format=a.metadata.zarr_format)
        if a.shards is not None and kwargs.get("zarr_format", 3) == 3:
            like["shards"] = a.shards
    if isinstance(a, Array):
        like.update(chunks=a.chunks, zarr_format=a.zarr_format)
        # Codecs, order and shards only into the source's format (a caller or a group may ask
        # for the other): v2's codecs are numcodecs configurations, and v2 has no shards.
        if kwargs.get("zarr_format", a.zarr_format) == a.zarr_format:
            # Empty lists stay: an array without compressors gives one without.
            like["compressors"] = list(a.compressors)
            # Filters and the serializer work on values of a's dtype (vlen-utf8 on text,
            # delta on numbers): given another dtype, they are the defaults for it.
            same_dtype = kwargs.get("dtype") is None or _same_dtype(kwargs["dtype"], a.dtype)
            if same_dtype:
                like["filters"] = list(a.filters)
            if a.zarr_format == 2:
                like["order"] = a.order
            elif same_dtype:
                like["serializer"] = a.serializer
            if a.shards is not None:
                like["shards"] = a.shards
    if any(k in kwargs for k in _CREATE_ONLY):
        # Made by create() (see `_created_the_older_way`), which takes codecs in its own
        # forms: of the source, its layout only.
        like = {k: v for k, v in like.items() if k in ("shape", "dtype", "chunks", "order")}
        like.setdefault("zarr_format", getattr(a, "zarr_format", None))
    return {**{k: v for k, v in like.items() if v is not None}, **kwargs}


def _same_dtype(given: Any, dtype: Any) -> bool:
    """Whether the dtype a caller gave (a numpy or Zarr name, or a zarr-python data type)
    is `dtype`."""
    try:
        return bool(np.dtype(given) == dtype)
    except TypeError:
        return False


def zeros_like(a: Any, **kwargs: Any) -> Array:
    """An array of zeros shaped like `a` (with its dtype and chunks, if an Array)."""
    args = _like(a, kwargs)
    return _create_filled(args.pop("shape"), 0, **args)


def ones_like(a: Any, **kwargs: Any) -> Array:
    """An array of ones shaped like `a`."""
    args = _like(a, kwargs)
    return _create_filled(args.pop("shape"), 1, **args)


#: No value given (None is a value: a v3 array's default fill value, a v2 array's null).
_NOT_GIVEN: Any = object()


def full_like(a: Any, fill_value: Any = _NOT_GIVEN, **kwargs: Any) -> Array:
    """An array filled with `fill_value` (by default, `a`'s fill value) shaped like `a`;
    ``fill_value=None`` is as in :func:`full`, as in zarr-python."""
    if fill_value is _NOT_GIVEN:
        fill_value = _fill_value_of(a)
    args = _like(a, kwargs)
    return _create_filled(args.pop("shape"), fill_value, **args)


def empty_like(a: Any, **kwargs: Any) -> Array:
    """An array shaped like `a` whose values are left unset (they read as the fill value)."""
    args = _like(a, kwargs)
    # As zarr-python: an Array's fill value is kept.
    kept = _fill_value_of(a)
    fill_value = args.pop("fill_value", DEFAULT_FILL_VALUE if kept is None else kept)
    return _create_filled(args.pop("shape"), fill_value, **args)


# --- zarr-python's older entry points: create, save, load, open_like ---

# create() arguments of zarr-python 2 that tuned its in-memory caches of metadata and
# attributes and its locks between writers: they change nothing stored, and oxzarr caches
# and orders its writes its own way, so they are taken at any value and change nothing, as
# zarr-python 3.1.6 takes and ignores them.
_CREATE_IGNORED = ("synchronizer", "cache_metadata", "cache_attrs")
# Arguments of layers oxzarr has not, taken only when left unset: set, they would change
# where chunks are stored (chunk_store) or the kind of array results are (meta_array, taken
# as any numpy array), see `_no_other_keywords`.
_CREATE_UNSUPPORTED = ("chunk_store", "meta_array")


def create(
    shape: Any,
    *,
    chunks: Any = None,
    dtype: npt.DTypeLike | None = None,
    compressor: Any = "auto",
    fill_value: Any = DEFAULT_FILL_VALUE,
    order: Literal["C", "F"] | None = None,
    store: StoreLike = None,
    overwrite: bool = False,
    path: str | None = None,
    filters: Any = None,
    dimension_separator: Literal[".", "/"] | None = None,
    write_empty_chunks: bool | None = None,
    zarr_format: int | None = None,
    attributes: Mapping[str, JSON] | None = None,
    chunk_shape: Any = None,
    chunk_key_encoding: Any = None,
    codecs: Iterable[Any] | None = None,
    dimension_names: Iterable[str | None] | None = None,
    storage_options: Mapping[str, Any] | None = None,
    config: Mapping[str, Any] | None = None,
    object_codec: Any = None,
    **kwargs: Any,
) -> Array:
    """Creates an array with zarr-python's older arguments (``compressor``, ``filters``,
    ``codecs``, ``dimension_separator``, ``chunks=True``, and zarr-python 2's
    ``object_codec``: the v2 codec of variable-length elements), as ``zarr.create`` does;
    :func:`create_array` is the newer form."""
    zarr_format = _zarr_format(zarr_format, kwargs)
    _no_other_keywords("create", kwargs, ("read_only", "mode", "data"))
    if object_codec is not None:
        if _format_or_default(zarr_format) != 2:
            raise ValueError(
                "object_codec is a Zarr v2 setting: Zarr v3 strings and bytes take their "
                "serializer (vlen-utf8, vlen-bytes) from the dtype"
            )
        filters = [object_codec, *(filters or [])]
    store, path = _store_and_path(store, path)
    mode = kwargs.get("mode")
    if mode is not None:
        # As the other creation functions: "w" replaces, "w-" refuses what is there.
        options: dict[str, Any] = {"storage_options": storage_options}
        store, storage_options = _overwrite_for(mode, store, path, options), None
        overwrite = overwrite or bool(options.get("overwrite"))
    fmt = _format_or_default(zarr_format)
    chunks = chunk_shape if chunk_shape is not None else chunks
    if chunks is None or chunks is True:
        chunks = "auto"
    chunks = legacy_chunks(chunks, shape)
    compressors: Any = "auto" if compressor == "auto" else compressor
    serializer: Any = "auto"
    array_filters: Any = "auto" if filters is None else filters
    if codecs is not None:
        # A whole v3 chain: the codecs before its array -> bytes codec are filters, those
        # after it compressors.
        chain = list(codecs)
        names = [_codec_name(c) for c in chain]
        at = next((i for i, n in enumerate(names) if n in ARRAY_TO_BYTES), None)
        if at is None:
            raise ValueError(f"codecs has no array -> bytes codec (such as 'bytes'): {names}")
        array_filters, serializer, compressors = chain[:at], chain[at], chain[at + 1 :]
    if dimension_separator is not None and chunk_key_encoding is None:
        chunk_key_encoding = {
            "name": "v2" if fmt == 2 else "default",
            "separator": dimension_separator,
        }
    elif dimension_separator is not None:
        # Both given: one would be dropped without a word (zarr-python refuses the pair).
        encoding = chunk_key_encoding_json(chunk_key_encoding)
        default = "." if encoding.get("name") == "v2" else "/"
        separator = (encoding.get("configuration") or {}).get("separator", default)
        if separator != dimension_separator:
            raise ValueError(
                f"dimension_separator {dimension_separator!r} and chunk_key_encoding "
                f"{chunk_key_encoding!r} (separator {separator!r}) disagree for the array at "
                f"{_path(path) or '/'!r}: give one of them"
            )
    if write_empty_chunks is not None:
        config = {**(config or {}), "write_empty_chunks": write_empty_chunks}
    return create_array(
        store,
        data=kwargs.get("data"),
        name=path,
        shape=shape,
        dtype=dtype,
        chunks=chunks,
        filters=array_filters,
        compressors=compressors,
        serializer=serializer,
        fill_value=fill_value,
        order=order,
        zarr_format=fmt,
        attributes=attributes,
        chunk_key_encoding=chunk_key_encoding,
        dimension_names=dimension_names,
        storage_options=storage_options,
        overwrite=overwrite,
        config=config,
    )


def _codec_name(codec: Any) -> str:
    from oxzarr.codecs import to_codec

    return str(to_codec(codec).to_dict().get("name"))


def save_array(
    store: StoreLike,
    arr: npt.ArrayLike,
    *,
    zarr_format: int | None = None,
    path: str | None = None,
    storage_options: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> None:
    """Stores `arr` as a new array at `path` (an existing array there is an error, as in
    zarr-python; ``overwrite=True`` or ``mode="w"`` replaces it)."""
    zarr_format = _zarr_format(zarr_format, kwargs)
    kwargs["storage_options"] = storage_options
    store, path = _store_and_path(store, path)
    target = _overwrite_for(kwargs.pop("mode", None), store, path, kwargs)
    create_array(target, name=path, data=np.asarray(arr), zarr_format=zarr_format, **kwargs)


def save_group(
    store: StoreLike,
    *args: npt.ArrayLike,
    zarr_format: int | None = None,
    path: str | None = None,
    storage_options: Mapping[str, Any] | None = None,
    zarr_version: int | None = None,
    **kwargs: npt.ArrayLike,
) -> None:
    """Stores a group at `path` (replacing what is there) holding the arrays given: the
    positional ones as ``arr_0``, ``arr_1``..., the others under their names."""
    zarr_format = _zarr_format(zarr_format, {"zarr_version": zarr_version})
    if not args and not kwargs:
        raise ValueError("at least one array must be provided")
    named = {f"arr_{i}": a for i, a in enumerate(args)} | dict(kwargs)
    root = create_group(
        store, path=path, zarr_format=zarr_format, overwrite=True, storage_options=storage_options
    )
    for name, arr in named.items():
        root.create_array(name, data=np.asarray(arr))


def save(
    store: StoreLike,
    *args: npt.ArrayLike,
    zarr_format: int | None = None,
    path: str | None = None,
    storage_options: Mapping[str, Any] | None = None,
    zarr_version: int | None = None,
    **kwargs: Any,
) -> None:
    """Stores one array (:func:`save_array`) or several in a group (:func:`save_group`):
    the keyword arguments other than these are arrays, as in zarr-python."""
    zarr_format = _zarr_format(zarr_format, {"zarr_version": zarr_version})
    if len(args) == 1 and not kwargs:
        save_array(
            store, args[0], zarr_format=zarr_format, path=path, storage_options=storage_options
        )
    else:
        save_group(
            store,
            *args,
            zarr_format=zarr_format,
            path=path,
            storage_options=storage_options,
            **kwargs,
        )


def load(store: StoreLike, path: str | None = None, zarr_format: int | None = None) -> Any:
    """The contents of the array at `path` as a numpy array; for a group, a dict of its
    arrays' contents by name (zarr-python 3.1 refuses groups)."""
    node = open(store, mode="r", path=path, zarr_format=zarr_format)
    if isinstance(node, Array):
        return node[...]
    return {name: arr[...] for name, arr in node.arrays()}


def open_like(a: Any, path: str, **kwargs: Any) -> Array:
    """Opens (creating if missing) the array at `path` in ``store=`` with `a`'s shape,
    dtype, chunks and fill value unless given. As in zarr-python 3, `path` is the array's
    path in the store, and without a store the array is made in a new memory store."""
    store = kwargs.pop("store", None)
    # Mode "a" unless given, as zarr-python 2's open_like: zarr-python 3.1.6 hands no mode
    # to open_array, which then never creates, so without a store (a new, empty one) its
    # open_like always fails.
    kwargs.setdefault("mode", "a")
    fill_value = _fill_value_of(a)
    if fill_value is not None:
        kwargs.setdefault("fill_value", fill_value)
    return open_array(store, path=path, **_like(a, kwargs))
