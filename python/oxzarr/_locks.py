"""The lock of an array or group handle, which serialises the changes made through it to its
metadata (shape, attributes, members), and is made afresh in a forked child: a lock another
thread of the parent held at the fork would stay held there, and the child's first change
would wait for it forever."""

from __future__ import annotations

import os
import threading
import weakref
from typing import Any

#: The handles with a lock, by id: a forked child gives each a new one.
_HOLDERS: weakref.WeakValueDictionary[int, Any] = weakref.WeakValueDictionary()


def metadata_lock(holder: Any) -> threading.RLock:
    """A new lock for `holder` (reentrant: an append resizes, then writes)."""
    _HOLDERS[id(holder)] = holder
    return threading.RLock()


def _fresh_locks_in_child() -> None:
    for holder in list(_HOLDERS.values()):
        holder._metadata_lock = threading.RLock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_fresh_locks_in_child)
