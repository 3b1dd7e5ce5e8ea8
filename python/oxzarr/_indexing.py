"""Selections: from what users write inside ``a[...]`` to the engine's orthogonal selection.

The engine takes, per array dimension, either ``(start, step, length)`` or a uint64 array of
indices. The result it fills is shaped by the lengths; integers then drop their dimension and
``np.newaxis`` adds one, as in numpy.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from types import EllipsisType
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt

from oxzarr.errors import BoundsCheckError

DimSelection: TypeAlias = "tuple[int, int, int] | npt.NDArray[np.uint64]"
#: Part of a selection, and where its elements lie in an array shaped as the selection (an
#: index ending in ``...``, so that a 0-d array's stays an array).
Slab: TypeAlias = "tuple[list[DimSelection], tuple[slice | EllipsisType, ...]]"


@dataclass(slots=True)
class Indexer:
    """A normalised selection."""

    #: Per array dimension: (start, step, length) or an index array.
    selection: list[DimSelection]
    #: The shape the engine reads into: one length per array dimension.
    core_shape: tuple[int, ...]
    #: The shape the user sees: integer dimensions dropped, new axes added.
    result_shape: tuple[int, ...]


def is_integer(k: Any) -> bool:
    return isinstance(k, int | np.integer) and not isinstance(k, bool | np.bool_)


def _run(start: int, step: int, length: int) -> tuple[int, int, int]:
    """A slice's (start, step, length) for the engine. A run of at most one element takes any
    step as 1: a step past the axis (numpy allows 2**63 and more) need not fit the engine's
    int64."""
    if length == 0:
        return (0, 1, 0)
    if length > 1 and not -(2**63) <= step < 2**63:
        # Two elements 2**63 or more apart, on an axis longer than that: numpy would take
        # it, the engine's steps are int64.
        raise IndexError(
            f"a slice step of {step} selecting {length} elements is beyond the engine's "
            "(steps must lie within int64)"
        )
    return (start, step if length > 1 else 1, length)


def _expand(key: Any, ndim: int) -> list[Any]:
    """The key as one entry per array dimension (plus any new axes), Ellipsis expanded."""
    if not isinstance(key, tuple):
        key = (key,)
    if sum(k is Ellipsis for k in key) > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    used = sum(1 for k in key if k is not None and k is not Ellipsis)
    if used > ndim:
        raise IndexError(
            f"too many indices for array: array is {ndim}-dimensional, but {used} were indexed"
        )
    out: list[Any] = []
    for k in key:
        if k is Ellipsis:
            out.extend([slice(None)] * (ndim - used))
        else:
            out.append(k)
    if not any(k is Ellipsis for k in key):
        out.extend([slice(None)] * (ndim - used))
    return out


def _slice_length(start: int, stop: int, step: int) -> int:
    """How many positions ``range(start, stop, step)`` holds (``len`` of a range refuses
    more than 2**63 - 1, which an axis of a Zarr array may have)."""
    if step > 0:
        return max(0, (stop - start + step - 1) // step)
    return max(0, (start - stop - step - 1) // -step)


def _integer(k: Any, n: int, axis: int) -> int:
    i = operator.index(k)
    if i < -n or i >= n:
        raise BoundsCheckError(f"index {i} is out of bounds for axis {axis} with size {n}")
    return i + n if i < 0 else i


def _index_array(k: Any, n: int, axis: int) -> npt.NDArray[np.uint64]:
    arr = np.asarray(k)
    if arr.dtype == np.bool_:
        if arr.ndim != 1 or arr.shape[0] != n:
            raise IndexError(
                f"boolean index of shape {arr.shape} does not match axis {axis} of size {n}"
            )
        return np.flatnonzero(arr).astype(np.uint64)
    # Before the empty case: an empty index of two dimensions is one too (numpy would give
    # the result its dimensions; zarr-python refuses them, empty or not).
    if arr.ndim != 1:
        raise IndexError(f"index arrays must be one-dimensional here, not of shape {arr.shape}")
    if not integer_indices(k, arr):
        raise IndexError(
            f"only integers, slices (':'), ellipsis ('...'), numpy.newaxis ('None') and "
            f"integer or boolean arrays are valid indices, not {arr.dtype} arrays"
        )
    if arr.size == 0:
        return np.zeros(0, dtype=np.uint64)
    return in_bounds(arr, n, axis)


def integer_indices(k: Any, arr: npt.NDArray[Any]) -> bool:
    """Whether `arr`, made by ``np.asarray(k)``, holds integer indices. An empty array of
    another dtype does not (numpy and zarr-python refuse ``np.array([])``), but a list of no
    elements does: numpy makes it float64, yet takes ``a[[]]`` as no integer indices."""
    return arr.dtype.kind in "iu" or (arr.size == 0 and isinstance(k, list | tuple))


def in_bounds(arr: npt.NDArray[Any], n: int, axis: int) -> npt.NDArray[np.uint64]:
    """Integer indices along an axis of size `n`, negative ones counted from the end, as
    uint64; an index outside the axis raises."""
    if arr.dtype.kind == "u":
        # Never through int64: 2**64 - 1 would become -1, the last element.
        bad = arr >= n
        wrapped = arr
    else:
        signed = arr.astype(np.int64)
        bad = (signed < -n) | (signed >= n)
        # In uint64, where n - i stays exact past int64 (an axis may be that long).
        unsigned = signed.astype(np.uint64)
        wrapped = np.where(signed < 0, unsigned + np.uint64(n), unsigned)
    if bad.any():
        raise BoundsCheckError(
            f"index {int(arr[bad][0])} is out of bounds for axis {axis} with size {n}"
        )
    return wrapped.astype(np.uint64)


def _is_array_like(k: Any) -> bool:
    return isinstance(k, list | np.ndarray) or (
        hasattr(k, "__array__") and not isinstance(k, str | bytes)
    )


def vectorized_kind(key: Any, shape: tuple[int, ...]) -> str | None:
    """What zarr-python (and numpy) make of `key` inside ``a[...]`` when it is no basic or
    single-array selection: ``"mask"`` for a boolean array of the array's shape,
    ``"coordinate"`` for one integer or integer array per dimension with several arrays (or
    one of more than one dimension), which select points; ``"orthogonal"`` for one index
    array per dimension with a boolean one among them (zarr-python selects those
    orthogonally, where numpy would pair the masks' true positions up); ``None``
    otherwise."""
    single = key[0] if isinstance(key, tuple) and len(key) == 1 else key
    if _is_array_like(single):
        arr = np.asarray(single)
        if arr.dtype == np.bool_ and arr.shape == shape and len(shape) > 1:
            return "mask"
        if len(shape) == 1 and arr.dtype.kind in "iu" and arr.ndim > 1:
            return "coordinate"
    if not isinstance(key, tuple) or len(key) != len(shape) or len(shape) < 2:
        return None
    arrays = []
    masks = 0
    for k in key:
        if _is_array_like(k) and np.ndim(k) > 0:
            arr = np.asarray(k)
            if arr.dtype == np.bool_:
                masks += 1
            elif arr.dtype.kind not in "iu":
                return None
            arrays.append(arr)
        elif not (is_integer(k) or _is_integer_array_0d(k)):
            return None
    if masks:
        return "orthogonal" if len(arrays) == len(shape) else None
    if len(arrays) > 1 or any(arr.ndim != 1 for arr in arrays):
        return "coordinate"
    return None


def _is_integer_array_0d(k: Any) -> bool:
    """A 0-d integer array, which numpy and zarr-python take as an integer among index
    arrays (it broadcasts against them)."""
    return _is_array_like(k) and np.ndim(k) == 0 and np.asarray(k).dtype.kind in "iu"


def plain_integers(key: Any) -> bool:
    """Whether `key` is a Python int or a non-empty tuple of them: zarr-python gives a 0-d
    array for those where other selections of one element give a numpy scalar."""
    if type(key) is int:
        return True
    if type(key) is not tuple or not key:
        return False
    # A loop, not all() over a generator: every point read asks, and making the generator
    # cost more than the rest of this check (and fed the garbage collector's counts).
    for k in key:
        if type(k) is not int:
            return False
    return True


def simple_indexer(key: Any, shape: tuple[int, ...]) -> Indexer | None:
    """The common selection, one int or slice per dimension, normalised in a fraction of the
    general path's time (a read of one chunk in a loop pays it on every call); ``None`` for
    anything else, out-of-bounds integers included, which `indexer` then handles."""
    if type(key) is not tuple or len(key) != len(shape):
        return None
    selection: list[DimSelection] = []
    core_shape: list[int] = []
    result_shape: list[int] = []
    for k, n in zip(key, shape, strict=True):
        if type(k) is slice:
            start, stop, step = k.indices(n)
            length = _slice_length(start, stop, step)
            selection.append(_run(start, step, length))
            core_shape.append(length)
            result_shape.append(length)
        elif (type(k) is int or isinstance(k, np.integer)) and -n <= k < n:
            k = int(k)
            selection.append((k + n if k < 0 else k, 1, 1))
            core_shape.append(1)
        else:
            return None
    return Indexer(selection, tuple(core_shape), tuple(result_shape))


def indexer(key: Any, shape: tuple[int, ...], *, orthogonal: bool = False) -> Indexer:
    """Normalises `key` for an array of `shape`.

    Basic indexing (``a[...]``) allows one index array, which numpy treats the same way;
    orthogonal indexing (``a.oindex[...]``) allows one per dimension.
    """
    selection: list[DimSelection] = []
    core_shape: list[int] = []
    result_shape: list[int] = []
    arrays = 0
    axis = 0
    for k in _expand(key, len(shape)):
        if k is None:
            result_shape.append(1)
            continue
        n = shape[axis]
        if isinstance(k, slice):
            start, stop, step = k.indices(n)
            length = _slice_length(start, stop, step)
            selection.append(_run(start, step, length))
            core_shape.append(length)
            result_shape.append(length)
        elif is_integer(k):
            selection.append((_integer(k, n, axis), 1, 1))
            core_shape.append(1)
        elif _is_array_like(k) and np.ndim(k) == 0 and is_integer(np.asarray(k)[()]):
            if orthogonal:
                # numpy takes a 0-d integer array as an integer, zarr-python's orthogonal
                # selections do not: each array there selects along its own dimension.
                raise IndexError(
                    f"integer arrays in an orthogonal selection must be one-dimensional, not "
                    f"{k!r} (for axis {axis})"
                )
            selection.append((_integer(np.asarray(k)[()], n, axis), 1, 1))
            core_shape.append(1)
        elif _is_array_like(k):
            indices = _index_array(k, n, axis)
            arrays += 1
            selection.append(indices)
            core_shape.append(len(indices))
            result_shape.append(len(indices))
        else:
            raise IndexError(
                "only integers, slices (':'), ellipsis ('...'), numpy.newaxis ('None') and "
                f"integer or boolean arrays are valid indices, not {k!r}"
            )
        axis += 1
    if arrays > 1 and not orthogonal:
        raise IndexError("more than one index array: use a.oindex[...] to select them orthogonally")
    return Indexer(selection, tuple(core_shape), tuple(result_shape))


def _blocks_spanned(selection: DimSelection, block: int) -> int:
    """How many blocks of `block` elements a dimension's selection takes elements from."""
    if isinstance(selection, tuple):
        start, step, length = selection
        if length == 0:
            return 0
        last = start + (length - 1) * step
        return abs(last // block - start // block) + 1
    return int(np.unique(selection // np.uint64(block)).size)


def slabs(
    selection: list[DimSelection], block: tuple[int, ...], target: int, min_blocks: int
) -> list[Slab]:
    """`selection` cut along one of its dimensions into slabs of whole blocks (the array's
    chunks, or shards: a block's elements the selection takes all lie in one slab), each of
    about `target` elements and `min_blocks` blocks or more; with where each slab's elements
    lie in an array shaped as the selection (its core shape). One slab, the selection itself,
    when it has `target` elements or fewer, or no dimension to cut (index arrays are kept
    whole)."""
    lengths = [s[2] if isinstance(s, tuple) else len(s) for s in selection]
    total = math.prod(lengths)
    whole: list[Slab] = [(selection, (...,))]
    if total <= target:
        return whole
    # The outermost dimension whose row of blocks (one block along it, everything along the
    # others) holds `target` elements or fewer, else the one with the smallest rows.
    chosen: tuple[int, int, tuple[int, int, int]] | None = None
    for d, sel in enumerate(selection):
        if not isinstance(sel, tuple) or sel[2] <= 1:
            continue
        per_block = min(sel[2], -(-block[d] // abs(sel[1])))
        row = per_block * (total // sel[2])
        if chosen is None or row < chosen[1]:
            chosen = (d, row, sel)
        if row <= target:
            break
    if chosen is None:
        return whole
    d, row, (start, step, length) = chosen
    spanned = [_blocks_spanned(sel, b) for sel, b in zip(selection, block, strict=True)]
    blocks_in_row = math.prod(spanned[:d] + spanned[d + 1 :])
    per_slab = max(1, target // row, -(-min_blocks // max(1, blocks_in_row)))
    span = per_slab * block[d]  # slabs start and end on multiples of this, as blocks do
    pieces: list[Slab] = []
    i = 0
    while i < length:
        position = start + i * step
        if step > 0:
            end = (position // span + 1) * span
            j = min(length, -(-(end - start) // step))
        else:
            first = position // span * span
            j = min(length, (start - first) // -step + 1)
        piece = list(selection)
        piece[d] = (position, step if j - i > 1 else 1, j - i)
        pieces.append((piece, (*(slice(None),) * d, slice(i, j), ...)))
        i = j
    return pieces
