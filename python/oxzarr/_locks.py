"""Locks made afresh in a forked child: a lock another thread of the parent held at the fork
would stay held there, and the child's first use would wait for it forever. The lock of an
array or group handle serialises the changes made through it to its metadata (shape,
attributes, members); the codec pipeline's guard its counts and its engines."""

from __future__ import annotations

import os
import threading
import weakref
from typing import Any

#: The objects holding such a lock, by (id, attribute, reentrant): a forked child gives each
#: a new one.
_HOLDERS: weakref.WeakValueDictionary[tuple[int, str, bool], Any] = weakref.WeakValueDictionary()


def fork_safe_lock(holder: Any, attribute: str, *, reentrant: bool = False) -> Any:
    """A new lock, to be kept as `holder`'s `attribute` (which a forked child sets anew)."""
    _HOLDERS[(id(holder), attribute, reentrant)] = holder
    return threading.RLock() if reentrant else threading.Lock()


def metadata_lock(holder: Any) -> threading.RLock:
    """A new lock for a handle's ``_metadata_lock`` (reentrant: an append resizes, then
    writes)."""
    lock: threading.RLock = fork_safe_lock(holder, "_metadata_lock", reentrant=True)
    return lock


def _fresh_locks_in_child() -> None:
    for (_, attribute, reentrant), holder in list(_HOLDERS.items()):
        setattr(holder, attribute, threading.RLock() if reentrant else threading.Lock())


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_fresh_locks_in_child)
