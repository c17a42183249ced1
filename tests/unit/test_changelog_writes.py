"""stream/tables/changelog.py: values stored at once, their changelog records sent when
the operation ends, one per key with its last value, in the order of the last writes,
on the event's partition, with the table's store for its acknowledged offsets
(stream/produce.py stores them: tests/integration/test_produce.py)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from stream.tables import changelog


class Table:
    def __init__(self, name: str) -> None:
        self.name = name
        self.data: dict[str, bytes] = {}
        self.changelog_topic = SimpleNamespace(get_topic_name=lambda: f"cs-{name}-changelog")
        self.faust_writes: list[tuple[str, bytes]] = []

    def __setitem__(self, key: str, value: bytes) -> None:  # Faust's own write
        self.faust_writes.append((key, value))

    def __delitem__(self, key: str) -> None:  # Faust's own delete
        self.faust_writes.append((key, None))  # type: ignore[arg-type]


class Producer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes | None, int]] = []
        self.stores: list[Any] = []
        self.fail_at: int | None = None

    async def send(
        self, topic: str, key: bytes, value: bytes | None, partition: int, offsets: Any
    ) -> None:
        if self.fail_at == len(self.sent):
            raise RuntimeError("producer closed")
        self.sent.append((topic, key, value, partition))
        self.stores.append(offsets)


@pytest.fixture
def producer(monkeypatch: pytest.MonkeyPatch) -> Producer:
    fake = Producer()
    app = SimpleNamespace(in_transaction=False, producer=fake)
    monkeypatch.setattr(changelog, "app", app)

    async def produce(
        topic: str, key: bytes, value: bytes | None, partition: int, offsets: Any
    ) -> None:
        await fake.send(topic, key, value, partition, offsets)

    monkeypatch.setattr(changelog, "produce", produce)
    monkeypatch.setattr(changelog, "current_event", lambda: event(2))
    return fake


def event(partition: int) -> Any:
    return SimpleNamespace(message=SimpleNamespace(partition=partition))


async def test_one_record_per_key_with_its_last_value_in_the_order_of_the_last_writes(
    producer: Producer,
) -> None:
    contacts, other = Table("contacts"), Table("quota")
    writes = changelog.ChangelogWrites()
    writes.set(contacts, "t|e1", b"applied")
    writes.set(contacts, "t:c1", b"v1")
    writes.set(other, "t:c1", b"same key, other table")
    writes.set(contacts, "t:c1", b"v2")
    assert contacts.data == {"t|e1": b"applied", "t:c1": b"v2"}  # stored at once
    assert producer.sent == [] and writes.pending == 3
    await writes.send()
    assert producer.sent == [
        ("cs-contacts-changelog", b"t|e1", b"applied", 2),
        ("cs-quota-changelog", b"t:c1", b"same key, other table", 2),
        ("cs-contacts-changelog", b"t:c1", b"v2", 2),
    ]
    assert writes.pending == 0
    await writes.send()
    assert len(producer.sent) == 3  # nothing twice


async def test_a_delete_removes_the_key_at_once_and_sends_a_tombstone_in_write_order(
    producer: Producer,
) -> None:
    identities = Table("identities")
    writes = changelog.ChangelogWrites()
    writes.set(identities, "t|email|a", b"locked")
    writes.set(identities, "t|email|b", b"locked")
    writes.delete(identities, "t|email|a")
    writes.delete(identities, "t|email|never-written")  # a missing key: nothing to remove
    assert identities.data == {"t|email|b": b"locked"}  # removed at once
    await writes.send()
    assert producer.sent == [
        ("cs-identities-changelog", b"t|email|b", b"locked", 2),
        ("cs-identities-changelog", b"t|email|a", None, 2),
        ("cs-identities-changelog", b"t|email|never-written", None, 2),
    ]
    writes.delete(identities, "t|email|b")
    writes.set(identities, "t|email|b", b"owned")  # written again after its delete
    await writes.send()
    assert producer.sent[-1] == ("cs-identities-changelog", b"t|email|b", b"owned", 2)
    assert len(producer.sent) == 4 and identities.data == {"t|email|b": b"owned"}


async def test_each_record_goes_with_its_table_s_store(producer: Producer) -> None:
    contacts, quota = Table("contacts"), Table("quota")
    writes = changelog.ChangelogWrites()
    writes.set(contacts, "a", b"1")
    writes.set(quota, "a", b"1")
    await writes.send()
    assert producer.stores[0] is contacts.data and producer.stores[1] is quota.data


async def test_a_failed_send_keeps_that_record_and_the_ones_after_it(producer: Producer) -> None:
    contacts = Table("contacts")
    writes = changelog.ChangelogWrites()
    for key in "abc":
        writes.set(contacts, key, b"1")
    producer.fail_at = 1
    with pytest.raises(RuntimeError):
        await writes.send()
    assert [s[1] for s in producer.sent] == [b"a"] and writes.pending == 2
    producer.fail_at = None
    await writes.send()
    assert [s[1] for s in producer.sent] == [b"a", b"b", b"c"]


async def test_under_exactly_once_a_write_goes_faust_s_way(
    producer: Producer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(changelog.app, "in_transaction", True)
    contacts = Table("contacts")
    writes = changelog.ChangelogWrites()
    writes.set(contacts, "a", b"1")
    writes.delete(contacts, "a")
    assert contacts.faust_writes == [("a", b"1"), ("a", None)] and writes.pending == 0


def test_a_write_outside_an_event_is_refused(
    producer: Producer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(changelog, "current_event", lambda: None)
    with pytest.raises(RuntimeError):
        changelog.ChangelogWrites().set(Table("contacts"), "a", b"1")
