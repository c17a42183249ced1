"""The identity entries a worker last read or wrote, kept decoded (stream/tables/identities.py)."""

from __future__ import annotations

from typing import Any

import pytest

from stream.app import app
from stream.domain.locking import Entry
from stream.tables import identities as module
from stream.tables.identities import encode_entry, local_entry, write_entry
from stream.tables.recent import Recent

KEY = "t1|email|ana@example.com"


class Db:
    """A partition's database as `local_entry` reads it, its reads counted; and the writes."""

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}
        self.reads = 0
        self.active = True  # the key's partition is an active one here, and settled

    def get(self, key: bytes) -> bytes | None:
        self.reads += 1
        return self.data.get(key)

    def active_db(self, table: Any, key: str) -> tuple[Db, bytes] | None:
        return (self, key.encode()) if self.active else None

    def set(self, table: Any, key: str, value: bytes) -> None:
        self.data[key.encode()] = value

    def delete(self, table: Any, key: str) -> None:
        self.data.pop(key.encode(), None)


@pytest.fixture
def db(monkeypatch: pytest.MonkeyPatch) -> Db:
    fake = Db()
    monkeypatch.setattr(module, "active_db", fake.active_db)
    monkeypatch.setattr(module, "identity_writes", fake)
    monkeypatch.setattr(module, "recent_entries", Recent(3))
    return fake


def test_a_written_entry_is_read_without_the_database(db: Db) -> None:
    write_entry(KEY, Entry(owner="c1"))

    assert db.data[KEY.encode()] == encode_entry(Entry(owner="c1"))
    assert local_entry(KEY) == Entry(owner="c1")
    assert db.reads == 0


def test_an_entry_read_once_is_not_read_again(db: Db) -> None:
    db.data[KEY.encode()] = encode_entry(Entry(owner="c1", lock="op1"))

    assert local_entry(KEY) == Entry(owner="c1", lock="op1")
    assert local_entry(KEY) == Entry(owner="c1", lock="op1")
    assert db.reads == 1


def test_a_later_write_replaces_the_kept_entry(db: Db) -> None:
    write_entry(KEY, Entry(owner="c1", lock="op1"))
    write_entry(KEY, Entry(owner="c2"))

    assert local_entry(KEY) == Entry(owner="c2")


def test_an_emptied_entry_is_deleted_and_forgotten(db: Db) -> None:
    write_entry(KEY, Entry(owner="c1"))
    write_entry(KEY, Entry())

    assert KEY.encode() not in db.data
    assert local_entry(KEY) is None
    assert db.reads == 1


def test_a_kept_entry_does_not_answer_for_a_partition_not_active_here(db: Db) -> None:
    write_entry(KEY, Entry(owner="c1"))
    db.active = False  # a rebalance under way, a recovery, or the partition moved

    assert local_entry(KEY) is None


@pytest.mark.parametrize("signal", ["on_partitions_revoked", "on_partitions_assigned"])
async def test_a_rebalance_forgets_what_a_restore_may_change(db: Db, signal: str) -> None:
    write_entry(KEY, Entry(owner="c1"))
    # Partitions move: a restore from the changelog writes the table behind the cache.
    db.data[KEY.encode()] = encode_entry(Entry(owner="c7"))

    await getattr(app, signal).send(set())

    assert len(module.recent_entries) == 0
    assert local_entry(KEY) == Entry(owner="c7")
