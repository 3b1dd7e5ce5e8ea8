"""Exceptions raised by oxzarr.

The hierarchy follows zarr-python's ``zarr.errors``, so code that catches zarr-python's
exceptions, or the built-ins they derive from, keeps working: a missing node is a
``FileNotFoundError`` (and a ``ValueError``), bad metadata a ``ValueError``, an out-of-bounds
selection an ``IndexError``, a write that a zip opened with ``allowZip64=False`` cannot hold a
``zipfile.LargeZipFile`` (and an ``OSError``). Every message names the store key or path
involved. A chunk whose metadata or stored size asks for more memory than can be allocated
raises the built-in ``MemoryError``, as numpy does for an array too large to allocate.
"""

from __future__ import annotations

import zipfile

__all__ = [
    "ArrayNotFoundError",
    "BaseZarrError",
    "BoundsCheckError",
    "ContainsArrayError",
    "ContainsGroupError",
    "CorruptChunkError",
    "GroupNotFoundError",
    "LargeZipFileError",
    "MetadataValidationError",
    "NodeNotFoundError",
    "NodeTypeValidationError",
    "ReadOnlyError",
    "UnknownCodecError",
]


class BaseZarrError(ValueError):
    """Base of oxzarr's errors about Zarr data."""


class NodeNotFoundError(BaseZarrError, FileNotFoundError):
    """No array or group at the path."""


class ArrayNotFoundError(NodeNotFoundError):
    """No array at the path."""


class GroupNotFoundError(NodeNotFoundError):
    """No group at the path."""


class ContainsArrayError(BaseZarrError):
    """An array is in the way (or is where a group was expected)."""


class ContainsGroupError(BaseZarrError):
    """A group is in the way."""


class MetadataValidationError(BaseZarrError):
    """Metadata that is invalid or uses something oxzarr does not support."""


class NodeTypeValidationError(MetadataValidationError):
    """The node is of the other type (a group where an array was expected)."""


class UnknownCodecError(BaseZarrError):
    """A codec oxzarr does not know."""


class CorruptChunkError(BaseZarrError):
    """A stored chunk that cannot be decoded: checksum mismatch, truncated or garbled."""


class ReadOnlyError(BaseZarrError):
    """A write to an array, group or store opened read-only."""


class BoundsCheckError(IndexError):
    """A selection outside the array."""


class LargeZipFileError(zipfile.LargeZipFile, OSError):
    """A write to a zip opened with ``allowZip64=False`` that would need ZIP64 records: a value
    or a zip of 2 GiB or more, or 65535 entries."""
