"""An xarray backend: ``xr.open_dataset("data.zarr", engine="oxzarr")``.

It opens what xarray's ``to_zarr`` writes (Zarr v2 and v3, consolidated or not) into the same
Dataset as ``engine="zarr"``: dimension names from v3 ``dimension_names`` or the v2
``_ARRAY_DIMENSIONS`` attribute, the same attributes, encodings and fill-value rules. This
module only hands the variables over undecoded; xarray's own CF machinery decodes them (times,
scale and offset, fill values, coordinates). Nothing but metadata is read at open (xarray then
loads the dimension coordinates for its indexes); variables are read through oxzarr when
indexed, or chunk by chunk through dask with ``chunks=``, where ``chunks={}`` follows the
Zarr chunks.

The package registers this module as the ``xarray.backends`` entry point ``oxzarr``. It is the
only module of oxzarr that imports xarray, and ``import oxzarr`` never imports it.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import json
import os
import posixpath
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np
from xarray.backends.common import (
    AbstractDataStore,
    BackendArray,
    BackendEntrypoint,
    T_PathFileOrDataStore,
)
from xarray.backends.store import StoreBackendEntrypoint
from xarray.backends.zarr import FillValueCoder
from xarray.coding.strings import create_vlen_dtype
from xarray.core import indexing
from xarray.core.dataset import Dataset
from xarray.core.datatree import DataTree
from xarray.core.variable import Variable

from oxzarr.api import open_consolidated, open_group
from oxzarr.array import Array
from oxzarr.codecs import Codec, NumcodecsConfig
from oxzarr.errors import ContainsArrayError, GroupNotFoundError, NodeNotFoundError
from oxzarr.group import Group
from oxzarr.storage import Store, make_store

__all__ = ["OxzarrBackendArray", "OxzarrBackendEntrypoint", "OxzarrDataStore"]

#: The attribute in which xarray records a v2 array's dimension names (v2 has no field for
#: them).
DIMENSION_KEY = "_ARRAY_DIMENSIONS"


class OxzarrBackendArray(BackendArray):
    """An oxzarr Array as xarray's lazily indexed backend array: each explicit indexer becomes
    one oxzarr selection (basic, orthogonal or points)."""

    __slots__ = ("_array", "dtype", "shape")

    def __init__(self, array: Array) -> None:
        # Private: xarray evaluates an `array` attribute of the objects it wraps.
        self._array = array
        self.shape = array.shape
        dtype = array.dtype
        if dtype.kind == "O" and _is_vlen_text(array):
            # Without numpy's StringDType, text arrives as objects; xarray recognises text
            # objects by this marked dtype (as zarr-python's and netCDF4's backends give it).
            dtype = create_vlen_dtype(str)  # type: ignore[no-untyped-call]
        self.dtype = dtype

    def get_array(self) -> Array:
        return self._array

    def __getitem__(self, key: indexing.ExplicitIndexer) -> Any:
        array = self._array
        if isinstance(key, indexing.BasicIndexer):
            method: Any = array.__getitem__
            support = indexing.IndexingSupport.BASIC
        elif isinstance(key, indexing.VectorizedIndexer) and self._reads_points(key):
            method = array.get_coordinate_selection
            support = indexing.IndexingSupport.VECTORIZED
        else:
            # Orthogonal selections go to oxzarr as they are. xarray splits any other
            # vectorized one into an orthogonal read of the rows and columns involved and
            # numpy indexing of what that returns.
            method = array.get_orthogonal_selection
            support = indexing.IndexingSupport.OUTER
        value = indexing.explicit_indexing_adapter(key, self.shape, support, method)
        if self.dtype.kind == "T" and isinstance(value, str):
            # A single StringDType element comes back as a str; xarray wants an array.
            return np.asarray(value, dtype=self.dtype)
        return value

    async def async_getitem(self, key: indexing.ExplicitIndexer) -> Any:
        """:meth:`__getitem__` for xarray's ``load_async``: the read runs on a worker thread
        (the engine releases the GIL while it reads), so the event loop goes on meanwhile."""
        return await asyncio.to_thread(self.__getitem__, key)

    def _reads_points(self, key: indexing.VectorizedIndexer) -> bool:
        """Whether a vectorized selection is best read as points: one index array per
        dimension (no slice), from an array whose points oxzarr reads in one engine call
        (it reads those of sharded and variable-length arrays one by one)."""
        return (
            all(isinstance(k, np.ndarray) for k in key.tuple)
            and self._array.shards is None
            and self._array.dtype.kind not in "OT"
        )


def _is_vlen_text(array: Array) -> bool:
    metadata = array.metadata.to_dict()
    if array.zarr_format == 3:
        return metadata.get("data_type") == "string"
    return any(f.get("id") == "vlen-utf8" for f in metadata.get("filters") or ())


def _dimensions(name: str, array: Array) -> tuple[Any, ...]:
    if array.zarr_format == 3:
        names = array.metadata.to_dict().get("dimension_names") or ()
        if len(names) != array.ndim:
            raise KeyError(
                f"the Zarr v3 array {name!r} has no dimension_names, which xarray needs for "
                "the variable's dimensions"
            )
        # A name left null stays None, as xarray's zarr backend has it.
        return tuple(n if n is None else str(n) for n in names)
    try:
        names = array.attrs[DIMENSION_KEY]
    except KeyError:
        names = _nczarr_dimensions(array)
        if names is None:
            raise KeyError(
                f"the Zarr v2 array {name!r} has no {DIMENSION_KEY} attribute, nor NCZarr's "
                "dimension names, which xarray needs for the variable's dimensions"
            ) from None
    if len(names) != array.ndim:
        raise ValueError(
            f"the {DIMENSION_KEY} attribute of {name!r} names {len(names)} dimensions for a "
            f"{array.ndim}-dimensional array"
        )
    return tuple(str(n) for n in names)


def _nczarr_dimensions(array: Array) -> list[str] | None:
    """The dimension names NCZarr (netCDF-C) keeps in the array's .zarray, as full paths
    ("/lat"), by their last part, as xarray's zarr backend reads them; None if none."""
    raw = array.store.get(f"{array.path}/.zarray" if array.path else ".zarray")
    try:
        refs = json.loads(raw or b"null")["_NCZARR_ARRAY"]["dimrefs"]
    except (ValueError, TypeError, KeyError):
        return None
    if not isinstance(refs, list) or not all(isinstance(r, str) for r in refs):
        return None
    return [posixpath.basename(r) for r in refs]


def _attributes(array: Array) -> dict[str, Any]:
    attrs = array.attrs.asdict()
    if array.zarr_format == 2:
        # The dimension names, and NCZarr's bookkeeping, are not the user's attributes.
        return {
            k: v for k, v in attrs.items() if k != DIMENSION_KEY and not k.lower().startswith("_nc")
        }
    return attrs


def _codecs(array: Array) -> dict[str, Any]:
    """The array's codecs in the encoding, as zarr-python takes them back when the dataset
    is written with to_zarr: v3 codec metadata, and v2 numcodecs codecs (zarr-python takes
    no other v2 filters) or, without numcodecs, their configurations."""
    filters, serializer, compressors = array.filters, array.serializer, array.compressors
    if array.zarr_format == 2:
        return {
            "compressors": tuple(_numcodecs(c) for c in compressors),
            "filters": tuple(_numcodecs(c) for c in filters),
        }
    return {
        "compressors": tuple(c.to_dict() for c in compressors),
        "filters": tuple(c.to_dict() for c in filters),
        # With the settings the data type implies: a one-byte type's bytes codec has no
        # byte order, as zarr-python reports it.
        "serializer": serializer._for_dtype(array.dtype).to_dict() if serializer else None,
    }


def _numcodecs(codec: Codec) -> Any:
    config = codec.get_config() if isinstance(codec, NumcodecsConfig) else codec.to_dict()
    if importlib.util.find_spec("numcodecs") is None:
        return config
    numcodecs: Any = importlib.import_module("numcodecs")
    try:
        return numcodecs.get_codec(dict(config))
    except (ValueError, TypeError, KeyError):
        return config


class OxzarrDataStore(AbstractDataStore):
    """One Zarr group as an xarray data store: its arrays are the variables, its attributes
    the dataset's. Read-only."""

    __slots__ = ("_arrays", "_fill_value_as_mask", "group")

    def __init__(self, group: Group, *, use_zarr_fill_value_as_mask: bool | None = None) -> None:
        self.group = group
        if use_zarr_fill_value_as_mask is None:
            # As xarray's zarr backend: v2 data was written treating the array's fill value
            # as the missing-value marker; v3 data keeps that in a _FillValue attribute.
            use_zarr_fill_value_as_mask = group.zarr_format == 2
        self._fill_value_as_mask = use_zarr_fill_value_as_mask
        # The members as they are at open: asking the group again for each would cost a
        # metadata read per array unless the hierarchy is consolidated.
        self._arrays: dict[str, Array] = dict(group.arrays())

    def open_store_variable(self, name: str, array: Array) -> Variable:
        dims = _dimensions(name, array)
        attrs = _attributes(array)
        data = indexing.LazilyIndexedArray(OxzarrBackendArray(array))
        encoding: dict[str, Any] = {
            "chunks": array.chunks,
            # What chunks={} (and dask's auto-chunking) splits along.
            "preferred_chunks": dict(zip(dims, array.chunks, strict=True)),
            **_codecs(array),
            "shards": array.shards,
        }
        if array.dtype.kind == "T":
            encoding["dtype"] = array.dtype
        if self._fill_value_as_mask:
            # CF decoding then masks the fill value, as it does netCDF's _FillValue.
            # None for a v2 array without one ("fill_value": null), as zarr-python has it.
            fill_value = array.fill_value
            if fill_value is not None:
                attrs["_FillValue"] = fill_value
        else:
            if array.zarr_format == 3:
                # Kept so that writing the dataset back keeps the array's fill value.
                encoding["fill_value"] = array.fill_value
            if "_FillValue" in attrs:
                # Encoded by xarray so that NaN survives JSON: decoded by xarray's own coder.
                attrs["_FillValue"] = FillValueCoder.decode(attrs["_FillValue"], array.dtype)
        return Variable(dims, data, attrs, encoding)

    def get_variables(self) -> dict[str, Variable]:
        return {name: self.open_store_variable(name, a) for name, a in self._arrays.items()}

    def get_attrs(self) -> dict[str, Any]:
        return {
            k: v for k, v in self.group.attrs.asdict().items() if not k.lower().startswith("_nc")
        }

    def get_dimensions(self) -> dict[str, int]:
        sizes: dict[str, int] = {}
        for name, array in self._arrays.items():
            for dim, size in zip(_dimensions(name, array), array.shape, strict=True):
                if sizes.setdefault(dim, size) != size:
                    raise ValueError(
                        f"dimension {dim!r} has length {sizes[dim]} in one array and {size} in "
                        f"{name!r}"
                    )
        return sizes

    def close(self) -> None:
        """Nothing to release: oxzarr holds no open files between reads."""


def _check_read_mode(mode: str) -> None:
    """Opening reads, whatever the mode (as with xarray's zarr backend), but a mode that
    would replace or refuse what is stored is refused rather than ignored."""
    if mode not in ("r", "r+", "a"):
        raise ValueError(f"mode {mode!r} does not read a dataset: use 'r' (or 'r+' or 'a')")


class _NoGroupFound(GroupNotFoundError, KeyError):
    """No group at `group=`: zarr-python's GroupNotFoundError (a FileNotFoundError), and the
    KeyError that xarray's zarr engine raises for it when `consolidated` is not given, so that
    code catching either finds it."""


def _open_group(
    source: Any,
    *,
    group: str | None,
    consolidated: bool | None,
    zarr_format: int | None,
    storage_options: Mapping[str, Any] | None = None,
) -> Group:
    """The group `group` below `source` (a path, store or Group), opened read-only through
    the consolidated metadata at the root if there is some (``consolidated=None``), must be
    (True) or ignoring it (False)."""
    if isinstance(source, Group):
        if storage_options:
            raise TypeError("storage_options apply to URLs, not to an open Group")
        store, root_path = source.store, source.path
    else:
        store = make_store(source, read_only=True, storage_options=storage_options)
        root_path = ""
    path = "/".join(p for p in (root_path, (group or "").strip("/")) if p)
    node: Array | Group
    # The format asked for picks between v2 and v3 metadata at one path (zarr-python's
    # migration to v3 leaves the v2 documents beside the new ones).
    if consolidated is False:
        node = _open_unconsolidated(store, path, zarr_format)
    else:
        try:
            # Consolidated metadata sits at the root of the hierarchy (v2 .zmetadata, v3
            # inline): open the root through it, then walk down without more reads.
            root = open_consolidated(store, mode="r", path=root_path, zarr_format=zarr_format)
        except NodeNotFoundError:
            if consolidated:
                raise
            node = _open_unconsolidated(store, path, zarr_format)
        else:
            try:
                node = root[path[len(root_path) :].strip("/")] if path != root_path else root
            except KeyError:
                raise _NoGroupFound(f"no group found at {path!r} in {store}") from None
    if not isinstance(node, Group):
        raise GroupNotFoundError(f"{node!r} is an array: open_dataset needs a group")
    if zarr_format is not None and node.zarr_format != zarr_format:
        raise GroupNotFoundError(
            f"{node!r} is a Zarr v{node.zarr_format} group, not v{zarr_format}"
        )
    return node


def _open_unconsolidated(store: Store, path: str, zarr_format: int | None) -> Group:
    try:
        return open_group(
            store, mode="r", path=path, use_consolidated=False, zarr_format=zarr_format
        )
    except GroupNotFoundError as missing:
        raise _NoGroupFound(str(missing)) from None
    except ContainsArrayError:
        # The same error whether or not the metadata is consolidated.
        raise GroupNotFoundError(
            f"{path!r} in {store} is an array: open_dataset needs a group"
        ) from None


def _walk_groups(group: Group, path: str) -> Iterator[tuple[str, Group]]:
    yield path, group
    for name, child in group.groups():
        yield from _walk_groups(child, f"{path.rstrip('/')}/{name}")


class OxzarrBackendEntrypoint(BackendEntrypoint):
    """``engine="oxzarr"``: Zarr v2 and v3 stores read by oxzarr's engine.

    Takes the keyword arguments of ``engine="zarr"`` that apply to reading: ``group``,
    ``consolidated`` (None: use consolidated metadata if there is some), ``zarr_format``,
    ``use_zarr_fill_value_as_mask``, and xarray's decoding options. ``filename_or_obj`` is a
    path, an ``oxzarr.storage`` store or an ``oxzarr.Group``.
    """

    # xarray passes open_dataset only the arguments named here. It finds them itself for
    # an entry point, but not for the class given as engine=.
    open_dataset_parameters = (
        "filename_or_obj",
        "mask_and_scale",
        "decode_times",
        "concat_characters",
        "decode_coords",
        "drop_variables",
        "use_cftime",
        "decode_timedelta",
        "group",
        "consolidated",
        "zarr_format",
        "use_zarr_fill_value_as_mask",
        "storage_options",
        "mode",
    )
    description = "Open Zarr v2 and v3 stores (.zarr) with oxzarr's Rust engine"
    # oxzarr has no home page of its own yet: the format it implements.
    url = "https://zarr.dev"
    supports_groups = True

    def guess_can_open(self, filename_or_obj: T_PathFileOrDataStore) -> bool:
        if isinstance(filename_or_obj, Store | Group):
            return True
        if isinstance(filename_or_obj, str | os.PathLike):
            path = os.fspath(filename_or_obj)
            if isinstance(path, bytes):
                return False
            # xarray asks backends in name order, oxzarr before zarr: a ".zarr" path stays
            # with zarr-python's backend when it is installed, so that installing oxzarr does
            # not change what open_dataset without an engine does. (A trailing slash, as
            # shell completion leaves, is allowed.)
            ext = os.path.splitext(path.rstrip("/"))[1]
            return ext == ".zarr" and importlib.util.find_spec("zarr") is None
        return False

    def open_dataset(
        self,
        filename_or_obj: T_PathFileOrDataStore | Store | Group,
        *,
        mask_and_scale: bool = True,
        decode_times: Any = True,
        concat_characters: bool = True,
        decode_coords: Any = True,
        drop_variables: str | Iterable[str] | None = None,
        use_cftime: bool | None = None,
        decode_timedelta: Any = None,
        group: str | None = None,
        consolidated: bool | None = None,
        zarr_format: int | None = None,
        use_zarr_fill_value_as_mask: bool | None = None,
        storage_options: Mapping[str, Any] | None = None,
        mode: str = "r",
    ) -> Dataset:
        """The group at `group` (the root by default) as a Dataset."""
        _check_read_mode(mode)
        node = _open_group(
            filename_or_obj,
            group=group,
            consolidated=consolidated,
            zarr_format=zarr_format,
            storage_options=storage_options,
        )
        return _decode(
            OxzarrDataStore(node, use_zarr_fill_value_as_mask=use_zarr_fill_value_as_mask),
            mask_and_scale=mask_and_scale,
            decode_times=decode_times,
            concat_characters=concat_characters,
            decode_coords=decode_coords,
            drop_variables=drop_variables,
            use_cftime=use_cftime,
            decode_timedelta=decode_timedelta,
        )

    def open_groups_as_dict(
        self,
        filename_or_obj: T_PathFileOrDataStore | Store | Group,
        *,
        mask_and_scale: bool = True,
        decode_times: Any = True,
        concat_characters: bool = True,
        decode_coords: Any = True,
        drop_variables: str | Iterable[str] | None = None,
        use_cftime: bool | None = None,
        decode_timedelta: Any = None,
        group: str | None = None,
        consolidated: bool | None = None,
        zarr_format: int | None = None,
        use_zarr_fill_value_as_mask: bool | None = None,
        storage_options: Mapping[str, Any] | None = None,
        mode: str = "r",
    ) -> dict[str, Dataset]:
        """Every group at and below `group`, as Datasets keyed by their path from the root,
        or from `group` if given ("." for `group` itself)."""
        _check_read_mode(mode)
        top = _open_group(
            filename_or_obj,
            group=group,
            consolidated=consolidated,
            zarr_format=zarr_format,
            storage_options=storage_options,
        )
        datasets = {
            path: _decode(
                OxzarrDataStore(node, use_zarr_fill_value_as_mask=use_zarr_fill_value_as_mask),
                mask_and_scale=mask_and_scale,
                decode_times=decode_times,
                concat_characters=concat_characters,
                decode_coords=decode_coords,
                drop_variables=drop_variables,
                use_cftime=use_cftime,
                decode_timedelta=decode_timedelta,
            )
            for path, node in _walk_groups(top, "/")
        }
        # Keyed as xarray's zarr backend keys them: from the root ("/", "/g"), or from
        # `group` if one is given (".", "h").
        if group:
            return {(path.lstrip("/") or "."): ds for path, ds in datasets.items()}
        return datasets

    def open_datatree(
        self,
        filename_or_obj: T_PathFileOrDataStore | Store | Group,
        *,
        mask_and_scale: bool = True,
        decode_times: Any = True,
        concat_characters: bool = True,
        decode_coords: Any = True,
        drop_variables: str | Iterable[str] | None = None,
        use_cftime: bool | None = None,
        decode_timedelta: Any = None,
        group: str | None = None,
        consolidated: bool | None = None,
        zarr_format: int | None = None,
        use_zarr_fill_value_as_mask: bool | None = None,
        storage_options: Mapping[str, Any] | None = None,
        mode: str = "r",
    ) -> DataTree:
        """The hierarchy at and below `group` as a DataTree."""
        groups = self.open_groups_as_dict(
            filename_or_obj,
            mask_and_scale=mask_and_scale,
            decode_times=decode_times,
            concat_characters=concat_characters,
            decode_coords=decode_coords,
            drop_variables=drop_variables,
            use_cftime=use_cftime,
            decode_timedelta=decode_timedelta,
            group=group,
            consolidated=consolidated,
            zarr_format=zarr_format,
            use_zarr_fill_value_as_mask=use_zarr_fill_value_as_mask,
            storage_options=storage_options,
            mode=mode,
        )
        return DataTree.from_dict(groups)


def _decode(store: OxzarrDataStore, **decoding: Any) -> Dataset:
    """The store's variables through xarray's own CF decoding, split into coordinates and
    data variables as every xarray backend does it."""
    return StoreBackendEntrypoint().open_dataset(store, **decoding)
