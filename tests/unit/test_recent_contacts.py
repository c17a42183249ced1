"""The contacts a worker last read or wrote, kept decoded (stream/agents/applied.py,
stream/tables/recent.py)."""

from __future__ import annotations

from typing import Any

import pytest

from stream.agents import applied
from stream.app import app
from stream.domain.contact import Contact
from stream.tables.codec import encode_contact
from stream.tables.contacts import contact_key
from stream.tables.recent import Recent


def contact(contact_id: str, version: int) -> Contact:
    return Contact("t1", contact_id, "form", 1_000, 1_000 + version, version=version)


class Table:
    """The contacts table as `load` and `store` use it: its reads counted."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.reads = 0

    def get(self, key: str) -> bytes | None:
        self.reads += 1
        return self.data.get(key)

    def set(self, table: Any, key: str, value: bytes) -> None:
        self.data[key] = value


@pytest.fixture
def table(monkeypatch: pytest.MonkeyPatch) -> Table:
    fake = Table()
    monkeypatch.setattr(applied, "contacts", fake)
    monkeypatch.setattr(applied, "contact_writes", fake)
    monkeypatch.setattr(applied.due_index, "schedule", lambda key, due: None)
    monkeypatch.setattr(applied, "recent", Recent(3))
    return fake


def test_a_stored_contact_is_loaded_without_reading_the_table(table: Table) -> None:
    applied.store("t1", "c1", contact("c1", 2))

    assert applied.load("t1", "c1") == contact("c1", 2)
    assert table.reads == 0


def test_a_contact_read_once_is_not_read_again(table: Table) -> None:
    table.data[contact_key("t1", "c1")] = encode_contact(contact("c1", 5))

    assert applied.load("t1", "c1") == contact("c1", 5)
    assert applied.load("t1", "c1") == contact("c1", 5)
    assert table.reads == 1


def test_a_missing_contact_is_read_each_time(table: Table) -> None:
    assert applied.load("t1", "c9") is None
    table.data[contact_key("t1", "c9")] = encode_contact(contact("c9", 1))

    assert applied.load("t1", "c9") == contact("c9", 1)


def test_the_contact_used_longest_ago_goes_first(table: Table) -> None:
    for n in (1, 2, 3):
        applied.store("t1", f"c{n}", contact(f"c{n}", 1))
    applied.store("t1", "c1", contact("c1", 2))  # c1 used again: c2 is now the oldest
    applied.store("t1", "c4", contact("c4", 1))

    assert len(applied.recent) == 3
    reads = table.reads
    assert applied.load("t1", "c1") == contact("c1", 2)
    assert table.reads == reads
    assert applied.load("t1", "c2") == contact("c2", 1)  # from the table again
    assert table.reads == reads + 1


@pytest.mark.parametrize("signal", ["on_partitions_revoked", "on_partitions_assigned"])
async def test_a_rebalance_forgets_what_a_restore_may_change(table: Table, signal: str) -> None:
    applied.store("t1", "c1", contact("c1", 2))
    # Partitions move: a restore from the changelog writes the table behind the cache.
    table.data[contact_key("t1", "c1")] = encode_contact(contact("c1", 7))

    await getattr(app, signal).send(set())

    assert len(applied.recent) == 0
    assert applied.load("t1", "c1") == contact("c1", 7)


def test_size_zero_keeps_nothing(table: Table, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(applied, "recent", Recent(0))
    applied.store("t1", "c1", contact("c1", 2))

    assert len(applied.recent) == 0
    assert applied.load("t1", "c1") == contact("c1", 2)
    assert table.reads == 1
