"""Per-identifier locks over Kafka: the protocol that serializes identity decisions.

An operation (an intake, later also commands that add or remove identifiers)
visits the identity entries it reads one hop at a time, in sorted key order,
locking each (SPEC §3.2.9; DESIGN.md "Identity resolution across
partitions"). Sorted order means no operation ever waits for a key smaller
than one it holds, so waits cannot form a cycle: no deadlock. An entry locked
by another operation parks the visitor; the unlock, sent by the contact
partition once the decision is applied, releases the parked visitors in
arrival order.

Every step is idempotent under redelivery: a visit that finds its own lock
goes on, an unlock that finds the lock gone (or held by another operation)
changes nothing. So at-least-once delivery of the hops gives the same result.

Pure: the shell keeps `Entry` in a table keyed by identity key and sends the
returned messages.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from stream.domain.frozen import replace

Message = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Entry:
    """One identifier's identity state: its owner, its lock and who waits for it."""

    owner: str | None = None
    lock: str | None = None
    parked: tuple[Message, ...] = ()

    @property
    def is_empty(self) -> bool:
        return self.owner is None and self.lock is None and not self.parked


@dataclass(frozen=True, slots=True)
class Visit:
    """What a visit did: the entry to store, and where the operation goes next.

    `parked` is true when the operation waits in this entry; else `owner` is
    what the entry says now, and the operation holds the lock.
    """

    entry: Entry
    parked: bool
    owner: str | None = None


@dataclass(frozen=True, slots=True)
class Unlock:
    """The entry to store and the parked visits to deliver again, in order."""

    entry: Entry
    released: tuple[Message, ...] = field(default_factory=tuple)


def visit(entry: Entry, op_id: str, message: Message) -> Visit:
    """An operation arrives at an identifier: lock it, or park behind the holder."""
    if entry.lock is not None and entry.lock != op_id:
        return _park(entry, op_id, message)
    return Visit(replace(entry, lock=op_id), parked=False, owner=entry.owner)


def lookup(entry: Entry, op_id: str, message: Message) -> Visit:
    """A reader of the owner (an engagement): parks behind a lock, never takes one.

    Parked, it is sent again on unlock and reads the owner the holder left.
    """
    if entry.lock is not None and entry.lock != op_id:
        return _park(entry, op_id, message)
    return Visit(entry, parked=False, owner=entry.owner)


def _park(entry: Entry, op_id: str, message: Message) -> Visit:
    """Wait behind the holder, once: a redelivered message is already waiting."""
    if any(parked.get("op") == op_id for parked in entry.parked):
        return Visit(entry, parked=True)
    return Visit(replace(entry, parked=(*entry.parked, message)), parked=True)


def unlock(entry: Entry, op_id: str, set_owner: bool, owner: str | None) -> Unlock:
    """The holder is done: set the new owner if asked, free the lock, release the waiters."""
    if entry.lock != op_id:
        return Unlock(entry)  # a redelivered unlock: the lock was already released
    new_owner = owner if set_owner else entry.owner
    return Unlock(Entry(owner=new_owner, lock=None, parked=()), released=entry.parked)


def lock_order(keys: Sequence[str]) -> tuple[str, ...]:
    """The canonical visiting order: sorted, each key once."""
    return tuple(sorted(set(keys)))


def release(entry: Entry, contact_id: str) -> Entry:
    """A purged contact gives its identifier up, whoever holds the lock.

    An operation holding the lock may have read this owner already; it finds
    the contact purged on its partition and goes on as if unowned, which is
    what the entry now says.
    """
    if entry.owner != contact_id:
        return entry
    return replace(entry, owner=None)
