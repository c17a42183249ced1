"""Values of a table kept decoded, for the keys this worker last read or wrote: bounded caches.

A cache is coherent while every write of its table goes through the one
function that also puts the new value in the cache (`applied.store` for the
contacts, `identities.write_entry` for the identity entries), and the values
are immutable. The table then changes behind the caches only when a
partition is restored from its changelog, between a rebalance's start and
its end: every cache is emptied when partitions are revoked and when they
are assigned. Readers use a cache only for keys of partitions this worker
holds as active (`applied.load` runs in the agent of the key's partition;
`identities.local_entry` checks it first), so a standby's copy, written by
its changelog as it comes, never enters one.
"""

from __future__ import annotations

import weakref
from typing import Any, Generic, TypeVar

from stream.app import app

V = TypeVar("V")

_caches: weakref.WeakSet[Recent[Any]] = weakref.WeakSet()


class Recent(Generic[V]):
    """At most `size` values by key; the least recently used goes first."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: dict[str, V] = {}
        _caches.add(self)

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: str) -> V | None:
        return self._items.get(key)

    def put(self, key: str, value: V) -> None:
        """Keep `value` as the newest; a put of a key kept already makes it the newest."""
        if not self.size:
            return
        items = self._items
        items.pop(key, None)
        items[key] = value
        if len(items) > self.size:
            del items[next(iter(items))]

    def discard(self, key: str) -> None:
        self._items.pop(key, None)

    def clear(self) -> None:
        self._items.clear()


async def _forget(sender: Any, /, *args: Any, **kwargs: Any) -> None:
    for cache in list(_caches):
        cache.clear()


app.on_partitions_revoked.connect(_forget)
app.on_partitions_assigned.connect(_forget)
