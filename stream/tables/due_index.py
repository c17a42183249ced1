"""The due-time index of one worker's contacts: what timer fires next, and when.

Faust tables have no TTL. Each worker keeps, in memory, the next due time of
every contact on the partitions it owns (SPEC §3.7): a heap ordered by due
time plus the current due time per contact, so an entry made stale by a later
change is skipped when popped. It is rebuilt from the contacts table after
every rebalance (reading each assigned partition's contacts once) and kept
up to date by the contact agent on every write. The rebuild's scan runs while
the agents already process (stream/agents/timers.py), so every change made
between its start and its end (`begin_rebuild`, `finish_rebuild`) is kept
over what the scan read. Work per tick grows with the number of due items,
not with the number of contacts.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable

# The heap keeps a stale entry per reschedule (skipped when popped); past this
# many stale entries per live one it is rebuilt from the live ones, so its size
# stays proportional to the contacts, however often they are rescheduled.
STALE_FACTOR = 2


class DueIndex:
    def __init__(self) -> None:
        self._heap: list[tuple[int, str]] = []
        self._due: dict[str, int] = {}
        # While a rebuild's scan runs: each contact changed since it began, and
        # its due time then (None: none, or fired).
        self._since_scan: dict[str, int | None] | None = None

    def __len__(self) -> int:
        return len(self._due)

    @property
    def heap_size(self) -> int:
        return len(self._heap)

    def schedule(self, key: str, due: int | None) -> None:
        """Set (or clear, with None) the next due time of a contact."""
        if self._since_scan is not None:
            self._since_scan[key] = due
        if due is None:
            self._due.pop(key, None)
            return
        if self._due.get(key) == due:
            return
        self._due[key] = due
        heapq.heappush(self._heap, (due, key))
        if len(self._heap) > STALE_FACTOR * len(self._due) + 1024:
            self._compact()

    def _compact(self) -> None:
        self._heap = [(due, key) for key, due in self._due.items()]
        heapq.heapify(self._heap)

    def pop_due(self, now: int) -> list[tuple[str, int]]:
        """Every contact due at or before `now`, in due order; they leave the index."""
        fired = []
        while self._heap and self._heap[0][0] <= now:
            due, key = heapq.heappop(self._heap)
            if self._due.get(key) == due:
                del self._due[key]
                fired.append((key, due))
                if self._since_scan is not None:
                    self._since_scan[key] = None
        return fired

    def rebuild(self, entries: Iterable[tuple[str, int | None]]) -> None:
        """Replace everything with `entries` (a scan of the table made now)."""
        self.begin_rebuild()
        self.finish_rebuild(entries)

    def begin_rebuild(self) -> None:
        """A scan of the table starts now: remember what changes until `finish_rebuild`.

        A second call restarts the record (a rebalance during a rebuild
        starts a new scan).
        """
        self._since_scan = {}

    def finish_rebuild(self, entries: Iterable[tuple[str, int | None]]) -> None:
        """Replace everything with the scan's `entries`, each change since it began on top.

        The scan may have read a contact before or after a write made while
        it ran; the change recorded by `schedule` (or a fired entry by
        `pop_due`) is newer than either, so it wins.
        """
        due = {key: at for key, at in entries if at is not None}
        for key, at in (self._since_scan or {}).items():
            if at is None:
                due.pop(key, None)
            else:
                due[key] = at
        self._since_scan = None
        self._due = due
        self._compact()
