"""Which change events of an outbox batch are not yet published (the change relay's rule).

The contact partitions publish their change events to an outbox topic at least
once: a worker killed before its offsets were committed replays its inputs
and publishes the same events again (same `change_id`, same bytes). The relay
(stream/relay.py) copies the outbox to `contacts.changes.v1` in transactions
and drops those copies. A contact's versions are 1, 2, 3, … in the order its
partition publishes them, so a change at or below the contact's highest
published version is a copy. An event about no contact (version 0, SPEC §2.6)
has no count to compare with: it is a copy when its `change_id` was seen.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import NamedTuple

UNVERSIONED = b"\x00id\x00"


class Outgoing(NamedTuple):
    """A change event from the outbox: its record key, version and id."""

    key: bytes
    version: int
    change_id: str


def mark_of(change: Outgoing) -> bytes:
    """The relay's record of a change: the contact's key, or the id of an unversioned one."""
    return change.key if change.version else UNVERSIONED + change.change_id.encode()


def unpublished(
    changes: Iterable[Outgoing], published: Mapping[bytes, int]
) -> tuple[list[int], dict[bytes, int]]:
    """The positions of the changes to publish, and the marks that publishing them sets.

    `published` maps each mark to the highest version published under it (0 for
    an unversioned event's id). The marks returned are to be stored with the
    publication, in one transaction, and merged into `published` once it commits.
    """
    keep: list[int] = []
    marks: dict[bytes, int] = {}
    for position, change in enumerate(changes):
        mark = mark_of(change)
        head = marks.get(mark, published.get(mark))
        if head is not None and change.version <= head:
            continue
        keep.append(position)
        marks[mark] = change.version
    return keep, marks
