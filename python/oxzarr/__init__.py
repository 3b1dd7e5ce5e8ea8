"""oxzarr: fast Zarr arrays for Python, with a parallel Rust engine.

The API follows zarr-python's names and semantics, so porting code is an import change::

    import oxzarr
    z = oxzarr.create_array("data.zarr", shape=(1000, 1000), dtype="f4", chunks=(100, 100))
    z[:10, :] = 1.0
    oxzarr.open_array("data.zarr", mode="r")[0, :5]
"""

from __future__ import annotations

from oxzarr import codecs, errors, storage
from oxzarr._core import __version__
from oxzarr.api import (
    array,
    consolidate_metadata,
    create,
    create_array,
    create_group,
    create_hierarchy,
    empty,
    empty_like,
    from_array,
    full,
    full_like,
    group,
    load,
    ones,
    ones_like,
    open,
    open_array,
    open_consolidated,
    open_group,
    open_like,
    save,
    save_array,
    save_group,
    tree,
    zeros,
    zeros_like,
)
from oxzarr.array import Array
from oxzarr.config import config
from oxzarr.group import Group

__all__ = [
    "Array",
    "Group",
    "ZarrCodecPipeline",
    "__version__",
    "array",
    "codecs",
    "config",
    "consolidate_metadata",
    "create",
    "create_array",
    "create_group",
    "create_hierarchy",
    "empty",
    "empty_like",
    "errors",
    "from_array",
    "full",
    "full_like",
    "group",
    "load",
    "ones",
    "ones_like",
    "open",
    "open_array",
    "open_consolidated",
    "open_group",
    "open_like",
    "save",
    "save_array",
    "save_group",
    "storage",
    "tree",
    "zeros",
    "zeros_like",
]


def __getattr__(name: str) -> object:
    # zarr-python's codec pipeline imports zarr, which `import oxzarr` must not: it loads when
    # first asked for (zarr-python's entry point, `oxzarr.ZarrCodecPipeline`, or unpickling).
    if name == "ZarrCodecPipeline":
        from oxzarr.zarr_pipeline import ZarrCodecPipeline

        return ZarrCodecPipeline
    raise AttributeError(f"module 'oxzarr' has no attribute {name!r}")
